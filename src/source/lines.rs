//! Cutting a buffer of whole lines into `Line`s: NDJSON (blank lines, a
//! trailing CR and a UTF-8 BOM at the start dropped) and `-R` (every line
//! kept as it is). No allocation per line.

use super::batch::Line;

/// Cuts buffers into lines, remembering line numbers across buffers.
pub(super) struct Splitter {
    /// Lines so far (the number of the last line cut).
    pub(super) line_number: u64,
    /// At the start of the source: a UTF-8 BOM there is dropped.
    pub(super) at_start: bool,
    /// `-R`: every line is kept as it is (blank ones, a CR, a BOM).
    pub(super) raw: bool,
}

impl Splitter {
    pub(super) fn new() -> Splitter {
        Splitter {
            line_number: 0,
            at_start: true,
            raw: false,
        }
    }

    /// The lines of `data[..end]`, which holds whole lines only (the last
    /// may lack its newline at EOF).
    pub(super) fn split(&mut self, data: &[u8], end: usize) -> Vec<Line> {
        if self.raw {
            return self.split_raw(data, end);
        }
        let mut lines = super::batch::Batch::lines_buffer();
        let mut start = 0;
        let data_end = end;
        if self.at_start && data_end > 0 {
            self.at_start = false;
            if data[..data_end].starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
        }
        while start < data_end {
            let newline = memchr::memchr(b'\n', &data[start..data_end]).map(|i| start + i);
            let next = newline.map_or(data_end, |i| i + 1);
            let mut end = newline.unwrap_or(data_end);
            if end > start && data[end - 1] == b'\r' {
                end -= 1;
            }
            self.line_number += 1;
            let text = &data[start..end];
            // Most lines start with `{`: only a line starting with white space
            // needs the full look.
            let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
            if text.first().is_some_and(|b| !blank(b)) || !text.iter().all(blank) {
                lines.push(Line {
                    start,
                    end,
                    number: self.line_number,
                });
            }
            start = next;
        }
        lines
    }

    /// `split` for `-R`: every line is an event, as jq -R reads it: blank
    /// lines too, a CR before the newline and a BOM kept.
    fn split_raw(&mut self, data: &[u8], end: usize) -> Vec<Line> {
        let mut lines = super::batch::Batch::lines_buffer();
        let mut start = 0;
        while start < end {
            let newline = memchr::memchr(b'\n', &data[start..end]).map(|i| start + i);
            let line_end = newline.unwrap_or(end);
            self.line_number += 1;
            lines.push(Line {
                start,
                end: line_end,
                number: self.line_number,
            });
            start = line_end + 1;
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, String)> {
        let mut s = Splitter::new();
        s.split(input, input.len())
            .iter()
            .map(|l| {
                let text = &input[l.start..l.end];
                (l.number, String::from_utf8_lossy(text).into_owned())
            })
            .collect()
    }

    #[test]
    fn splits_lines_and_drops_blanks_cr_and_bom() {
        let got = lines(b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \t\n{\"b\":2}\n{\"c\":3}");
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".into()),
                (4, "{\"b\":2}".into()),
                (5, "{\"c\":3}".into())
            ]
        );
    }

    #[test]
    fn line_numbers_continue_across_buffers() {
        let mut s = Splitter::new();
        let a = s.split(b"1\n\nxx", 3);
        let b = s.split(b"2\n", 2);
        assert_eq!(a[0].number, 1);
        assert_eq!(b[0].number, 3);
    }
}
