//! Exit statuses: part of the interface, documented in README and man page.

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
