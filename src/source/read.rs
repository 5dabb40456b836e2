//! Reading a stream of bytes into batches: `LineReader` reads large chunks
//! into pooled buffers and cuts each at its last complete line (or value,
//! under `--input-format json`), carrying the partial rest over to the next
//! read, so a followed file can grow between calls. No work per line here:
//! the cutting is in `lines` and `json_text`.

use super::Format;
use super::batch::{Batch, Message, Pool};
use super::json_text::Values;
use super::lines::Splitter;
use super::position::Position;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How much one read asks for; a batch holds the complete lines of one or more reads.
pub(super) const CHUNK: usize = 512 * 1024;

/// Splits one source into batches. Returns `Ok(false)` when the receiver hung up.
pub(super) fn read_source(
    source: usize,
    format: Format,
    reader: impl Read,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
) -> io::Result<bool> {
    let mut lines = LineReader::new(source, format);
    Ok(lines.read_available(reader, deliver, stop, pool, true)? != Ended::HungUp)
}

/// How a `read_available` call ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// End of the data for now; `bool`: whether any bytes came.
    End(bool),
    /// The receiver hung up.
    HungUp,
}

/// Cuts what a reader yields into batches of whole lines, keeping the
/// partial line and the line count between calls (a followed file grows).
pub(super) struct LineReader {
    source: usize,
    splitter: Splitter,
    /// Under `--input-format json`: where the values are (batches then hold
    /// whole values, not lines).
    values: Option<Values>,
    /// Source offset of the first carried byte (the end of the last delivered line).
    offset: u64,
    carry: Vec<u8>,
    /// Bytes read but not yet reported in a batch.
    unsent: u64,
    /// Device and inode of the file read (in `Batch::end`; (0, 0) for
    /// standard input and pipes read as a stream).
    pub(super) file: (u64, u64),
}

impl LineReader {
    pub(super) fn new(source: usize, format: Format) -> LineReader {
        LineReader::resumed(source, format, (0, 0), 0, 0)
    }

    /// A reader that starts `offset` bytes and `line` lines into its source.
    pub(super) fn resumed(
        source: usize,
        format: Format,
        file: (u64, u64),
        offset: u64,
        line: u64,
    ) -> LineReader {
        let mut splitter = Splitter::new();
        splitter.line_number = line;
        splitter.at_start = offset == 0;
        splitter.raw = format == Format::Raw;
        LineReader {
            source,
            offset,
            splitter,
            values: (format == Format::Json).then(|| Values::new(line, offset == 0)),
            carry: Vec::new(),
            unsent: 0,
            file,
        }
    }

    /// Reads until `reader` reports its end (or a signal), delivering whole
    /// lines. At the end, `final_line` delivers an unterminated last line
    /// (a file that is done) instead of keeping it for more data to come.
    pub(super) fn read_available(
        &mut self,
        mut reader: impl io::Read,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        final_line: bool,
    ) -> io::Result<Ended> {
        let mut any = false;
        loop {
            if stop.load(Ordering::Relaxed) != 0 {
                return Ok(Ended::End(any));
            }
            // A recycled buffer is already initialised: only growing it zeroes memory.
            let mut data = pool.take();
            let filled = self.carry.len();
            if data.len() < filled + CHUNK {
                // Room for a usual carried-over tail too, so the buffer is not
                // grown (and copied) again on its next use.
                data.resize((filled + CHUNK).max(CHUNK + CHUNK / 4), 0);
            }
            data[..filled].copy_from_slice(&self.carry);
            self.carry.clear();
            let n = loop {
                match reader.read(&mut data[filled..filled + CHUNK]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            any |= n > 0;
            let valid = filled + n;
            self.unsent += n as u64;
            let at_end = n == 0;
            let cut = if let Some(values) = &mut self.values {
                let cut = values.scan(&data[..valid], at_end && final_line);
                if cut == 0 && values.none_found() {
                    // A value longer than what we have: keep reading into it.
                    self.carry.extend_from_slice(&data[..valid]);
                    pool.give(data);
                    if at_end {
                        return Ok(Ended::End(any));
                    }
                    continue;
                }
                cut
            } else if at_end && final_line {
                valid
            } else {
                match memchr::memrchr(b'\n', &data[..valid]) {
                    Some(i) => i + 1,
                    None => {
                        // A line longer than what we have: keep reading into it.
                        self.carry.extend_from_slice(&data[..valid]);
                        pool.give(data);
                        if at_end {
                            return Ok(Ended::End(any));
                        }
                        continue;
                    }
                }
            };
            self.carry.extend_from_slice(&data[cut..valid]);
            let bytes = std::mem::take(&mut self.unsent);
            let (lines, line) = match &mut self.values {
                Some(values) => values.lines(&mut data, cut),
                None => (self.splitter.split(&data, cut), self.splitter.line_number),
            };
            self.offset += cut as u64;
            let (dev, ino) = self.file;
            let batch = Batch {
                source: self.source,
                data,
                lines,
                bytes,
                end: Position::File {
                    dev,
                    ino,
                    offset: self.offset,
                    line,
                },
            };
            if (!batch.lines.is_empty() || batch.bytes > 0) && !deliver(Message::Batch(batch)) {
                return Ok(Ended::HungUp);
            }
            if at_end {
                return Ok(Ended::End(any));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_handles_lines_longer_than_a_chunk() {
        let long = format!("\"{}\"", "x".repeat(CHUNK * 2 + 17));
        let input = format!("1\n{long}\n2");
        let mut messages = Vec::new();
        let stop = AtomicUsize::new(0);
        read_source(
            0,
            Format::Ndjson,
            input.as_bytes(),
            &mut |m| {
                messages.push(m);
                true
            },
            &stop,
            &Pool::default(),
        )
        .unwrap();
        let mut got = Vec::new();
        let mut bytes = 0;
        for m in messages {
            if let Message::Batch(b) = m {
                bytes += b.bytes;
                got.extend(b.lines.iter().map(|l| (l.number, b.line(l).len())));
            }
        }
        assert_eq!(got, vec![(1, 1), (2, long.len()), (3, 1)]);
        assert_eq!(bytes, input.len() as u64);
    }

    /// A reader that yields at most `step` bytes a read.
    struct Trickle<'a>(&'a [u8], usize);

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Events as `read_source` cuts them in `format`, `step` bytes a read.
    fn events(format: Format, input: &[u8], step: usize) -> (Vec<(u64, String)>, u64) {
        let mut got = Vec::new();
        let mut bytes = 0;
        let stop = AtomicUsize::new(0);
        let mut deliver = |m| {
            if let Message::Batch(b) = m {
                bytes += b.bytes;
                got.extend(
                    b.lines
                        .iter()
                        .map(|l| (l.number, String::from_utf8_lossy(b.line(l)).into_owned())),
                );
            }
            true
        };
        let reader = Trickle(input, step);
        read_source(0, format, reader, &mut deliver, &stop, &Pool::default()).unwrap();
        (got, bytes)
    }

    #[test]
    fn json_values_are_found_across_reads_and_made_compact() {
        let input = "\u{feff}{\"a\":1}{\"a\":2}[1,2] 3\n{\n  \"x\": [1,\n  2], \"s\": \"a \\\" b\\\\\"\n}\n\"s\" -1.5e3 true\nnull";
        let want = vec![
            (1, r#"{"a":1}"#.to_string()),
            (1, r#"{"a":2}"#.to_string()),
            (1, "[1,2]".to_string()),
            (1, "3".to_string()),
            (2, r#"{"x":[1,2],"s":"a \" b\\"}"#.to_string()),
            (6, r#""s""#.to_string()),
            (6, "-1.5e3".to_string()),
            (6, "true".to_string()),
            (7, "null".to_string()),
        ];
        for step in [1, 2, 3, 7, 1 << 20] {
            let (got, bytes) = events(Format::Json, input.as_bytes(), step);
            assert_eq!(got, want, "step {step}");
            assert_eq!(bytes, input.len() as u64);
        }
    }

    #[test]
    fn malformed_json_values_resume_at_a_line_that_starts_a_value() {
        let input = "{\"a\": [1, 2}\n{\"b\":2}\n{\n  \"c\": 1,\n  \"d\": [1,\n}\n  [1 2]\n] 4\n{\"e\":\n  1";
        let want = vec![
            (1, "{\"a\": [1, 2}".to_string()),
            (2, r#"{"b":2}"#.to_string()),
            (
                3,
                "{\n  \"c\": 1,\n  \"d\": [1,\n}\n  [1 2]\n] 4".to_string(),
            ),
            (9, "{\"e\":\n  1".to_string()),
        ];
        for step in [1, 5, 1 << 20] {
            assert_eq!(events(Format::Json, input.as_bytes(), step).0, want);
        }
    }

    #[test]
    fn raw_lines_keep_blank_lines_cr_and_bom() {
        let input = b"\xEF\xBB\xBFa\r\n\n  \nb";
        let (got, bytes) = events(Format::Raw, input, 3);
        let want: Vec<(u64, String)> = vec![
            (1, "\u{feff}a\r".into()),
            (2, "".into()),
            (3, "  ".into()),
            (4, "b".into()),
        ];
        assert_eq!(got, want);
        assert_eq!(bytes, input.len() as u64);
    }
}
