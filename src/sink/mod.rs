//! Where events go, apart from the stages: the event writer (stdout or
//! `-o FILE`) with its `Formatter` (`format`), and the dead-letter file of
//! failed events. A new sink (a Kafka topic) goes beside `EventWriter`.

mod format;

pub use format::{DEFAULT_COLORS, Formatter, Pretty};

use base64::Engine as _;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Where surviving events go: standard output or the `-o` file, written in
/// large blocks.
pub struct EventWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    /// The `-o` file, to fsync before a checkpoint.
    file: Option<File>,
    /// `stdout` or the `-o` path, for error messages.
    pub name: String,
}

impl EventWriter {
    pub fn stdout() -> EventWriter {
        let out: Box<dyn Write + Send> = Box::new(io::stdout());
        EventWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            file: None,
            name: "stdout".into(),
        }
    }

    pub fn create(path: &Path) -> io::Result<EventWriter> {
        let file = File::create(path)?;
        let out: Box<dyn Write + Send> = Box::new(file.try_clone()?);
        let name = path.display().to_string();
        Ok(EventWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            file: Some(file),
            name,
        })
    }

    /// Writes formatted events (large blocks bypass the buffer).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes, and for a file waits until the data is on disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// One failed event, as a line of the dead-letter file.
#[derive(Serialize)]
struct Record<'a> {
    source: &'a str,
    line: u64,
    stage: Option<&'a str>,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
}

/// The `--dead-letter` file, opened for appending.
pub struct DeadLetter {
    out: BufWriter<File>,
    pub name: String,
}

impl DeadLetter {
    pub fn open(path: &Path) -> io::Result<DeadLetter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DeadLetter {
            out: BufWriter::new(file),
            name: path.display().to_string(),
        })
    }

    /// Appends one record; `raw` is the line as read (without newline or CR).
    /// A line that is not UTF-8 is kept as `raw_base64` so no byte is lost.
    pub fn write(
        &mut self,
        source: &str,
        line: u64,
        stage: Option<&str>,
        error: &str,
        raw: &[u8],
    ) -> io::Result<()> {
        let (raw, raw_base64) = match std::str::from_utf8(raw) {
            Ok(s) => (Some(s), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(raw)),
            ),
        };
        let record = Record {
            source,
            line,
            stage,
            error,
            raw,
            raw_base64,
        };
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and waits until the records are on disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}
