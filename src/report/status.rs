//! Exit statuses (part of the interface, documented in README and man page)
//! and the wording of I/O errors in messages.

pub const OK: i32 = 0;
/// Nothing was emitted under `-e`.
pub const NO_OUTPUT: i32 = 1;
/// Usage error or an expression that does not compile.
pub const USAGE: i32 = 2;
/// One or more events failed (`--on-error skip` or `abort`).
pub const FAILED_EVENTS: i32 = 3;
/// An input could not be read or the output could not be written.
pub const IO: i32 = 4;
/// Stopped by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).
pub fn signalled(signal: usize) -> i32 {
    128 + signal as i32
}

/// An I/O error as a person reads it: "No such file or directory", without "(os error 2)".
pub fn io_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
