//! How events are written: `Formatter` writes compact JSON lines (an
//! unchanged event as the line it was read from), or jq's other formats
//! through `Pretty` (`--indent`, `--tab`, `-S`, `-a`, `-C`).

use crate::json::write_compact;
use jaq_json::{Num, Val};
use std::sync::Arc;

/// Serialises surviving events into a batch's output buffer, one per line.
///
/// The default (`Formatter::default()` with or without `raw_output`) is
/// plain: compact JSON, and an unchanged event written as its line. Any of
/// jq's other output formats (`pretty`) or `--join-output` makes it not
/// plain; then every event is written from its value.
#[derive(Clone, Default)]
pub struct Formatter {
    pub raw_output: bool,
    /// `--join-output`: no newline after an event.
    pub join_output: bool,
    /// Indentation, sorted keys, ASCII or colour: how jq would print.
    pub pretty: Option<Arc<Pretty>>,
}

impl Formatter {
    /// Whether events are written as compact JSON lines, an unchanged event
    /// as the bytes of its line (direct evaluation writes only such output).
    pub fn plain(&self) -> bool {
        self.pretty.is_none() && !self.join_output
    }

    /// An event that no map changed: the bytes of its line, or with `-r` the
    /// text of a string line; in any other format, written from its value.
    pub fn line(&self, out: &mut Vec<u8>, line: &[u8]) {
        if self.pretty.is_some()
            && let Ok(v) = crate::json::parse(line)
        {
            return self.value(out, &v);
        }
        if self.raw_output
            && line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'"')
            && let Ok(v) = jaq_json::read::parse_single(line)
        {
            return self.value(out, &v);
        }
        out.extend_from_slice(line);
        self.end(out);
    }

    /// A value as compact JSON (or a string's text with `-r`).
    pub fn value(&self, out: &mut Vec<u8>, v: &Val) {
        match (v, &self.pretty) {
            // With -a, jq writes a string as JSON even under -r (quoted,
            // escaped, never coloured).
            (Val::TStr(s) | Val::BStr(s), Some(pretty)) if self.raw_output && pretty.ascii => {
                write_string(out, s, true)
            }
            (Val::TStr(s) | Val::BStr(s), _) if self.raw_output => out.extend_from_slice(s),
            (_, Some(pretty)) => pretty.write(out, 0, v),
            // Writing into a Vec cannot fail.
            (_, None) => write_compact(out, v),
        }
        self.end(out);
    }

    fn end(&self, out: &mut Vec<u8>) {
        if !self.join_output {
            out.push(b'\n');
        }
    }
}

/// jq's default colours (jq 1.7.1 and later): null, false, true, numbers,
/// strings, arrays, objects, object keys, as `JQ_COLORS` lists them.
pub const DEFAULT_COLORS: [&str; 8] = [
    "0;90", "0;39", "0;39", "0;39", "0;32", "1;39", "1;39", "1;34",
];

const RESET: &[u8] = b"\x1b[0m";

/// How jq prints a value other than compactly: `--indent N`/`--tab`,
/// `-S/--sort-keys`, `-a/--ascii-output`, `-C/--color-output`. The output
/// is byte for byte jq 1.8's, colour escapes included.
#[derive(Clone, Debug, Default)]
pub struct Pretty {
    /// What indents one level (`None`: compact, on one line).
    pub indent: Option<String>,
    pub sort_keys: bool,
    /// Characters beyond ASCII as `\uXXXX` escapes.
    pub ascii: bool,
    /// Escape sequences to colour null, false, true, numbers, strings,
    /// arrays, objects and object keys (`None`: no colour).
    pub colors: Option<[String; 8]>,
}

impl Pretty {
    /// Colour escapes from `JQ_COLORS` as jq 1.8 reads it: up to eight
    /// colon-separated lists of digits and `;`, each replacing a default
    /// colour in turn (an empty last one is ignored). `None` when the text
    /// has another character (jq then keeps its default colours).
    pub fn colors(jq_colors: Option<&str>) -> Option<[String; 8]> {
        let mut codes: Vec<&str> = Vec::new();
        if let Some(spec) = jq_colors {
            let mut rest = spec;
            loop {
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                    .unwrap_or(rest.len());
                let (code, after) = rest.split_at(end);
                if after.is_empty() || codes.len() + 1 >= DEFAULT_COLORS.len() {
                    if !code.is_empty() {
                        codes.push(code);
                    }
                    break;
                }
                codes.push(code);
                rest = after.strip_prefix(':')?;
            }
        }
        let mut colors = DEFAULT_COLORS.map(|c| format!("\x1b[{c}m"));
        for (color, code) in colors.iter_mut().zip(codes) {
            *color = format!("\x1b[{code}m");
        }
        Some(colors)
    }

    fn newline(&self, out: &mut Vec<u8>, level: usize) {
        if let Some(indent) = &self.indent {
            out.push(b'\n');
            for _ in 0..level {
                out.extend_from_slice(indent.as_bytes());
            }
        }
    }

    /// Writes `v` at nesting `level`, as jq's `jv_dump_term` does.
    pub fn write(&self, out: &mut Vec<u8>, level: usize, v: &Val) {
        let color = self.colors.as_ref().map(|colors| {
            colors[match v {
                Val::Null => 0,
                Val::Bool(false) => 1,
                Val::Bool(true) => 2,
                Val::Num(_) => 3,
                Val::TStr(_) | Val::BStr(_) => 4,
                Val::Arr(_) => 5,
                Val::Obj(_) => 6,
            }]
            .as_bytes()
        });
        let paint = |out: &mut Vec<u8>, bytes: &[u8]| {
            if let Some(color) = color {
                out.extend_from_slice(color);
            }
            out.extend_from_slice(bytes);
        };
        if let Some(color) = color {
            out.extend_from_slice(color);
        }
        match v {
            Val::Null => out.extend_from_slice(b"null"),
            Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            // jq writes NaN as null, coloured as null inside the number's colour.
            Val::Num(Num::Float(f)) if f.is_nan() => self.write(out, level, &Val::Null),
            Val::Num(_) => write_compact(out, v),
            Val::TStr(s) | Val::BStr(s) => write_string(out, s, self.ascii),
            Val::Arr(a) if a.is_empty() => out.extend_from_slice(b"[]"),
            Val::Obj(o) if o.is_empty() => out.extend_from_slice(b"{}"),
            Val::Arr(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        paint(out, b",");
                    }
                    if color.is_some() {
                        out.extend_from_slice(RESET);
                    }
                    self.newline(out, level + 1);
                    self.write(out, level + 1, x);
                }
                self.newline(out, level);
                paint(out, b"]");
            }
            Val::Obj(o) => {
                out.push(b'{');
                let mut entries: Vec<(&Val, &Val)> = o.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                for (i, (k, x)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        paint(out, b",");
                    }
                    if color.is_some() {
                        out.extend_from_slice(RESET);
                    }
                    self.newline(out, level + 1);
                    if let Some(colors) = &self.colors {
                        out.extend_from_slice(colors[7].as_bytes());
                    }
                    match k {
                        Val::TStr(s) | Val::BStr(s) => write_string(out, s, self.ascii),
                        // Not from JSON input: a key jaq computed.
                        k => write_compact(out, k),
                    }
                    if color.is_some() {
                        out.extend_from_slice(RESET);
                    }
                    paint(out, b":");
                    if color.is_some() {
                        out.extend_from_slice(RESET);
                    }
                    if self.indent.is_some() {
                        out.push(b' ');
                    }
                    self.write(out, level + 1, x);
                }
                self.newline(out, level);
                paint(out, b"}");
            }
        }
        if color.is_some() {
            out.extend_from_slice(RESET);
        }
    }
}

/// Writes a string as JSON, escaped as jq escapes it: `\b \t \n \f \r \" \\`,
/// other control characters as `\u00XX`; with `ascii`, every character beyond
/// ASCII as `\uXXXX` (a surrogate pair above U+FFFF). Bytes that are not
/// UTF-8 are kept as they are, except under `ascii` (U+FFFD, as jq reads them).
pub fn write_string(out: &mut Vec<u8>, s: &[u8], ascii: bool) {
    out.push(b'"');
    if ascii && !s.is_ascii() {
        let mut units = [0u16; 2];
        for c in String::from_utf8_lossy(s).chars() {
            if c.is_ascii() {
                escape_byte(out, c as u8);
            } else {
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    } else {
        let mut plain = 0;
        for (i, &b) in s.iter().enumerate() {
            if matches!(b, b'"' | b'\\' | 0x00..=0x1f | 0x7f) {
                out.extend_from_slice(&s[plain..i]);
                escape_byte(out, b);
                plain = i + 1;
            }
        }
        out.extend_from_slice(&s[plain..]);
    }
    out.push(b'"');
}

/// Writes one ASCII character of a JSON string, escaped if it must be.
fn escape_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b'\r' => out.extend_from_slice(b"\\r"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        _ => out.push(b),
    }
}
