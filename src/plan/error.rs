//! The plan's error: what ends evq before the run, of the kind that decides
//! the exit status, with the message to print as it is.

use crate::report::status;
use std::fmt;

/// An error that ends evq before any input is read.
#[derive(Debug)]
pub enum Error {
    /// A bad command line or an expression that does not compile: exit 2.
    Usage(String),
    /// A file the plan reads or creates cannot be (`--slurpfile`,
    /// `--checkpoint`, `-o`, `--dead-letter`): exit 4.
    Io(String),
}

impl Error {
    /// The exit status this error ends evq with.
    pub fn status(&self) -> i32 {
        match self {
            Error::Usage(_) => status::USAGE,
            Error::Io(_) => status::IO,
        }
    }

    /// `evq: cannot create output file out.ndjson: Permission denied`:
    /// what could not be done to which file, and the system's reason.
    pub(super) fn io(what: &str, path: &std::path::Path, e: &std::io::Error) -> Error {
        Error::Io(format!(
            "evq: {what} {}: {}",
            path.display(),
            status::io_error_text(e)
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Usage(message) | Error::Io(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}
