//! `--dead-letter FILE`: each failed event as a JSON record (its source,
//! line, stage, error and the line as read), appended to a sink: a file, or
//! a Kafka topic (`--dead-letter kafka://…`, one message a record).

use super::Sink;
use super::file::FileSink;
use base64::Engine as _;
use serde::Serialize;
use std::io;
use std::path::Path;

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

/// The dead letter: records of failed events, written to a sink.
pub struct DeadLetter {
    out: Box<dyn Sink>,
    /// The record being written, kept to reuse its memory.
    record: Vec<u8>,
}

impl DeadLetter {
    /// The buffer of the dead-letter file: records come one at a time.
    const BUFFER: usize = 8 * 1024;

    /// Opens the `--dead-letter` file for appending.
    pub fn open(path: &Path) -> io::Result<DeadLetter> {
        Ok(DeadLetter {
            out: Box::new(FileSink::append(path, Self::BUFFER)?),
            record: Vec::new(),
        })
    }

    /// Writes the records to `out`, each one line (a Kafka sink: one
    /// message each).
    pub fn to_sink(out: Box<dyn Sink>) -> DeadLetter {
        DeadLetter {
            out,
            record: Vec::new(),
        }
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
        self.record.clear();
        serde_json::to_writer(&mut self.record, &record)?;
        self.record.push(b'\n');
        self.out.write(&self.record)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and waits until the records are durable (on disk, or
    /// acknowledged by the broker).
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.sync()
    }

    /// At the end of the run: see `Sink::close`.
    pub fn close(&mut self) -> io::Result<()> {
        self.out.close()
    }

    /// How it is named in error messages: the path or the address.
    pub fn name(&self) -> &str {
        self.out.name()
    }
}
