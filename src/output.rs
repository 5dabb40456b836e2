//! Outputs apart from the stages: the event writer (stdout or `-o FILE`) and
//! the dead-letter file of failed events.

use base64::Engine as _;
use jaq_json::write::Pp;
use jaq_json::{Num, Val};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Serialises surviving events into a batch's output buffer, one per line.
#[derive(Clone, Copy)]
pub struct Formatter {
    pub raw_output: bool,
}

impl Formatter {
    /// An event that no map changed: the bytes of its line, or with `-r` the
    /// text of a string line.
    pub fn line(&self, out: &mut Vec<u8>, line: &[u8]) {
        if self.raw_output
            && line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'"')
            && let Ok(v) = jaq_json::read::parse_single(line)
        {
            return self.value(out, &v);
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }

    /// A value as compact JSON (or a string's text with `-r`).
    pub fn value(&self, out: &mut Vec<u8>, v: &Val) {
        match v {
            Val::TStr(s) | Val::BStr(s) if self.raw_output => out.extend_from_slice(s),
            // Writing into a Vec cannot fail.
            _ => write_json(out, &Default::default(), 0, v).expect("write to memory"),
        }
        out.push(b'\n');
    }
}

/// Writes `v` as JSON, as jaq-json does except for what JSON cannot hold:
/// infinities are written as the largest finite doubles and NaN as `null`,
/// as jq 1.7 does, so that whatever evq writes can be read back as JSON.
///
/// ```
/// use jaq_json::Val;
/// let mut out = Vec::new();
/// let v = Val::Arr(vec![Val::from(f64::INFINITY), Val::from(-f64::INFINITY), Val::from(f64::NAN)].into());
/// evq::output::write_json(&mut out, &Default::default(), 0, &v).unwrap();
/// assert_eq!(out, b"[1.7976931348623157e+308,-1.7976931348623157e+308,null]");
/// ```
pub fn write_json(w: &mut dyn Write, pp: &Pp, level: usize, v: &Val) -> io::Result<()> {
    use jaq_json::{format_val, style, write_utf8};
    match v {
        Val::Num(Num::Float(f)) if !f.is_finite() => {
            let text = if f.is_nan() {
                "null"
            } else if *f > 0.0 {
                "1.7976931348623157e+308"
            } else {
                "-1.7976931348623157e+308"
            };
            style!(w, pp, num, write!(w, "{text}"))
        }
        _ => jaq_json::write_val!(w, pp, level, v, write_json),
    }
}

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
