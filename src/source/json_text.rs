//! `--input-format json`: finds the JSON values in a stream of them
//! separated by white space, as jq reads it (`Values`), read after read, and
//! hands each on as one compact line, numbered by the line where it starts.
//! `--slurpfile` reads its files with the same scanner (`json_values`).

use super::batch::Line;

/// One value `Values` found, `buf[start..end]`, or the malformed text from
/// where a value started to where scanning resumes.
#[derive(Debug)]
struct Item {
    start: usize,
    end: usize,
    /// The line of its first byte.
    line: u64,
    /// Malformed: handed on as it was, for the JSON parser to reject.
    bad: bool,
}

/// Where `Values` stands in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between values, or between the tokens of a container.
    Structure,
    String,
    /// After a backslash in a string.
    Escape,
    /// In a number or a literal (`true`, `false`, `null`).
    Scalar,
    /// After a malformed value: looking for the line to resume at.
    Skip,
}

/// Finds the JSON values in a stream of them separated by white space, as
/// jq reads it (pretty-printed documents, `{"a":1}{"a":2}`, `[1,2] 3`), read
/// after read: the state carries over, so a value may span any number of
/// reads. It follows only the structure (strings, brackets, where a number
/// or literal ends); the values' own syntax is left to the JSON parser,
/// which fails a malformed one as an event. A structural error (a closing
/// bracket that does not match, a newline in a string, a value that never
/// ends, text that cannot start a value) ends the value there; scanning
/// resumes at the next line that starts a value (`{ [ " - 0-9 t f n`) no
/// deeper indented than the malformed value was, and the text in between is
/// the failed event.
pub(super) struct Values {
    /// Scanned up to here in the buffer. Positions count from the buffer's
    /// start, which is the first carried byte; `lines` moves them back by
    /// what it hands on.
    pos: usize,
    /// Where the value being scanned starts, its line and column.
    start: Option<usize>,
    start_line: u64,
    start_column: usize,
    /// The closing brackets expected, innermost last.
    stack: Vec<u8>,
    state: State,
    /// Newlines before `pos`.
    lines: u64,
    /// Where `pos`'s line starts (before the buffer when negative).
    line_start: isize,
    /// At the start of the source: a UTF-8 BOM there is dropped, as jq does.
    at_start: bool,
    /// What `scan` found, for `lines`.
    items: Vec<Item>,
}

/// Bytes that end a number or literal.
fn ends_scalar(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b'[' | b']' | b'"' | b',' | b':'
    )
}

/// Bytes a JSON value can start with.
fn starts_value(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

impl Values {
    pub(super) fn new(lines: u64, at_start: bool) -> Values {
        Values {
            pos: 0,
            start: None,
            start_line: 0,
            start_column: 0,
            stack: Vec::new(),
            state: State::Structure,
            lines,
            line_start: 0,
            at_start,
            items: Vec::new(),
        }
    }

    /// Scans `buf` (the carried bytes, then what was read) from where the
    /// last call stopped. `last`: nothing more comes, so every value must end
    /// here. Returns where the values found end: the start of the value
    /// still open, or all of `buf`.
    pub(super) fn scan(&mut self, buf: &[u8], last: bool) -> usize {
        if self.at_start {
            if buf.len() < 3 && !last && b"\xEF\xBB\xBF".starts_with(buf) {
                return 0;
            }
            self.at_start = false;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                self.pos = 3;
            }
        }
        let mut i = self.run(buf, self.pos, last);
        if last {
            loop {
                match (self.start, self.state) {
                    (None, _) => break,
                    (Some(_), State::Scalar) if self.stack.is_empty() => {
                        self.state = State::Structure;
                        self.found(buf.len());
                    }
                    (Some(start), State::Skip) => {
                        self.state = State::Structure;
                        self.stack.clear();
                        self.start = None;
                        self.items.push(Item {
                            start,
                            end: trim_end(buf, start, buf.len()),
                            line: self.start_line,
                            bad: true,
                        });
                    }
                    (Some(start), _) => {
                        // The value never ends: it is malformed. Look for the
                        // line to resume at from its first line on.
                        self.state = State::Skip;
                        self.lines = self.start_line - 1;
                        self.line_start = start as isize - self.start_column as isize;
                        i = self.run(buf, start, last);
                    }
                }
            }
        }
        self.pos = i;
        self.start.unwrap_or(i)
    }

    /// Whether `scan` found no value since the last `lines`.
    pub(super) fn none_found(&self) -> bool {
        self.items.is_empty()
    }

    /// A value ends at `end`.
    fn found(&mut self, end: usize) {
        let start = self.start.take().expect("a value was open");
        self.items.push(Item {
            start,
            end,
            line: self.start_line,
            bad: false,
        });
    }

    /// Scans `buf` from `i` until its end, or until it needs more bytes to
    /// know; returns where it stopped.
    fn run(&mut self, buf: &[u8], mut i: usize, last: bool) -> usize {
        while i < buf.len() {
            match self.state {
                State::String => match memchr::memchr3(b'"', b'\\', b'\n', &buf[i..]) {
                    None => i = buf.len(),
                    Some(k) => {
                        let j = i + k;
                        match buf[j] {
                            b'"' => {
                                i = j + 1;
                                self.state = State::Structure;
                                if self.stack.is_empty() {
                                    self.found(i);
                                }
                            }
                            b'\\' => {
                                i = j + 1;
                                self.state = State::Escape;
                            }
                            // A JSON string never holds a newline: it was
                            // not closed.
                            _ => {
                                i = j;
                                self.state = State::Skip;
                            }
                        }
                    }
                },
                State::Escape => {
                    i += 1;
                    self.state = State::String;
                }
                State::Scalar => match buf[i..].iter().position(|&b| ends_scalar(b)) {
                    Some(k) => {
                        i += k;
                        self.state = State::Structure;
                        if self.stack.is_empty() {
                            self.found(i);
                        }
                    }
                    None => i = buf.len(),
                },
                State::Skip => {
                    let Some(k) = memchr::memchr(b'\n', &buf[i..]) else {
                        i = buf.len();
                        break;
                    };
                    let newline = i + k;
                    let next = newline + 1;
                    let mut t = next;
                    while t < buf.len() && matches!(buf[t], b' ' | b'\t' | b'\r') {
                        t += 1;
                    }
                    if t == buf.len() && !last {
                        // The next line's start is not here yet: look again
                        // from this newline.
                        return newline;
                    }
                    self.lines += 1;
                    self.line_start = next as isize;
                    i = next;
                    if t < buf.len() && starts_value(buf[t]) && t - next <= self.start_column {
                        let start = self.start.take().expect("a value was open");
                        self.items.push(Item {
                            start,
                            end: trim_end(buf, start, newline),
                            line: self.start_line,
                            bad: true,
                        });
                        self.stack.clear();
                        self.state = State::Structure;
                    }
                }
                State::Structure => {
                    let b = buf[i];
                    match b {
                        b' ' | b'\t' | b'\r' => i += 1,
                        b'\n' => {
                            i += 1;
                            self.lines += 1;
                            self.line_start = i as isize;
                        }
                        _ => {
                            if self.start.is_none() {
                                self.start = Some(i);
                                self.start_line = self.lines + 1;
                                self.start_column = (i as isize - self.line_start) as usize;
                            }
                            match b {
                                b'{' | b'[' => {
                                    self.stack.push(if b == b'{' { b'}' } else { b']' });
                                    i += 1;
                                }
                                b'"' => {
                                    self.state = State::String;
                                    i += 1;
                                }
                                b'}' | b']' if self.stack.last() == Some(&b) => {
                                    self.stack.pop();
                                    i += 1;
                                    if self.stack.is_empty() {
                                        self.found(i);
                                    }
                                }
                                b',' | b':' if !self.stack.is_empty() => i += 1,
                                b'}' | b']' | b',' | b':' => self.state = State::Skip,
                                _ if self.stack.is_empty() && !starts_value(b) => {
                                    self.state = State::Skip
                                }
                                _ => self.state = State::Scalar,
                            }
                        }
                    }
                }
            }
        }
        i
    }

    /// The values found in `data[..cut]`, each made compact in place (white
    /// space outside strings dropped, so that it is one line like an NDJSON
    /// event, written byte for byte when no stage changes it); malformed text
    /// stays as it was. Positions move back by `cut`. Returns the lines and
    /// the lines before the first value not handed on.
    pub(super) fn lines(&mut self, data: &mut [u8], cut: usize) -> (Vec<Line>, u64) {
        let mut lines = Vec::with_capacity(self.items.len());
        let mut w = 0;
        for item in self.items.drain(..) {
            let start = w;
            if item.bad {
                data.copy_within(item.start..item.end, w);
                w += item.end - item.start;
            } else {
                w = compact(data, item.start, item.end, w);
            }
            lines.push(Line {
                start,
                end: w,
                number: item.line,
            });
        }
        self.pos -= cut;
        self.line_start -= cut as isize;
        if let Some(start) = &mut self.start {
            *start -= cut;
        }
        let end_line = match self.start {
            Some(_) => self.start_line - 1,
            None => self.lines,
        };
        (lines, end_line)
    }
}

/// The JSON values in `text` as `--input-format json` reads them (for
/// `--slurpfile`): each with the line it starts on, made compact; malformed
/// text comes as it was, for the JSON parser to reject.
pub fn json_values(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut values = Values::new(0, true);
    values.scan(text, true);
    let mut buf = text.to_vec();
    values
        .items
        .drain(..)
        .map(|item| {
            let end = match item.bad {
                true => item.end,
                false => compact(&mut buf, item.start, item.end, item.start),
            };
            (item.line, buf[item.start..end].to_vec())
        })
        .collect()
}

/// What a value of `--input-format json` that is not JSON is reported
/// with: its line is said apart, and a column would count in the value as
/// made compact, not in the file.
pub fn value_error(error: &crate::json::Error) -> String {
    match error {
        crate::json::Error::Syntax { reason, .. } => format!("invalid JSON: {reason}"),
        crate::json::Error::Utf8 { .. } => "invalid UTF-8".to_string(),
    }
}

/// `end` moved back over white space, not before `start`.
fn trim_end(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(buf[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    end
}

/// Copies `data[start..end]` to `data[to..]` (`to <= start`) without the
/// white space outside strings, and returns where the copy ends. One space
/// stays between two numbers or literals, so that text that was not JSON
/// does not become JSON (`[1 2]`, `tru e`).
fn compact(data: &mut [u8], start: usize, end: usize, to: usize) -> usize {
    let word = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-');
    let (mut i, mut w) = (start, to);
    let mut gap = false;
    while i < end {
        match data[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {
                gap = true;
                i += 1;
            }
            b'"' => {
                // The string through its closing quote (or to the end).
                let mut j = i + 1;
                let j = loop {
                    match memchr::memchr2(b'"', b'\\', &data[j..end]) {
                        None => break end,
                        Some(k) if data[j + k] == b'"' => break j + k + 1,
                        Some(k) => j = (j + k + 2).min(end),
                    }
                };
                data.copy_within(i..j, w);
                w += j - i;
                i = j;
                gap = false;
            }
            b => {
                if gap && w > to && word(data[w - 1]) && word(b) {
                    // A space was skipped: `w < i`.
                    data[w] = b' ';
                    w += 1;
                }
                data[w] = b;
                w += 1;
                i += 1;
                gap = false;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurped_values_keep_their_lines() {
        let got = json_values(b"1 [2,\n 3]\n\n{\"a\": \"b c\"} x");
        let got: Vec<(u64, String)> = got
            .into_iter()
            .map(|(l, v)| (l, String::from_utf8(v).unwrap()))
            .collect();
        let want: Vec<(u64, String)> = vec![
            (1, "1".into()),
            (1, "[2,3]".into()),
            (4, r#"{"a":"b c"}"#.into()),
            (4, "x".into()),
        ];
        assert_eq!(got, want);
    }
}
