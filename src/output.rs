//! Outputs apart from the stages: the event writer (stdout or `-o FILE`) and
//! the dead-letter file of failed events.

use base64::Engine as _;
use jaq_json::Val;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Buffered writer of surviving events, one per line.
pub struct EventWriter {
    out: BufWriter<Box<dyn Write>>,
    /// `stdout` or the `-o` path, for error messages.
    pub name: String,
    raw_output: bool,
}

impl EventWriter {
    pub fn stdout(raw_output: bool) -> EventWriter {
        let out: Box<dyn Write> = Box::new(io::stdout());
        EventWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            name: "stdout".into(),
            raw_output,
        }
    }

    pub fn create(path: &Path, raw_output: bool) -> io::Result<EventWriter> {
        let out: Box<dyn Write> = Box::new(File::create(path)?);
        let name = path.display().to_string();
        Ok(EventWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            name,
            raw_output,
        })
    }

    /// Writes an event that no map changed: the bytes of its line, or with
    /// `-r` the text of a string line.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.raw_output && line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'"') {
            if let Ok(v) = jaq_json::read::parse_single(line) {
                return self.write_value(&v);
            }
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    /// Writes a value as compact JSON (or a string's text with `-r`).
    pub fn write_value(&mut self, v: &Val) -> io::Result<()> {
        match v {
            Val::TStr(s) | Val::BStr(s) if self.raw_output => self.out.write_all(s)?,
            _ => jaq_json::write::write(&mut self.out, &Default::default(), 0, v)?,
        }
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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
}
