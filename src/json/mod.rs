//! Strict JSON (RFC 8259) for one input line, in one pass: validate it, parse
//! it into a jaq value, or validate it while building only the fields a stage
//! reads (`project`). One scanner serves all three, so a line is valid or not
//! whatever a stage needs of it, and projected values are exactly the full
//! parse's values at those fields.
//!
//! Values are built as jaq-json's own reader builds them: integers as machine
//! or big integers, other numbers as decimal strings (so `1.50` keeps its
//! spelling), and for a repeated key the last value at the first position.

mod write;

pub use write::{write_compact, write_json};

use jaq_json::{Map, Num, Rc, Val};
use std::fmt;

/// Deeper nesting is an error (as in serde_json), so that neither the parser
/// here nor jaq's evaluation can overflow the stack.
pub const MAX_DEPTH: usize = 128;

/// Why a line is not valid JSON, and where.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    Utf8 { offset: usize },
    Syntax { offset: usize, reason: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Utf8 { offset } => write!(f, "invalid UTF-8 at byte {}", offset + 1),
            Error::Syntax { offset, reason } => {
                write!(f, "invalid JSON: {reason} at column {}", offset + 1)
            }
        }
    }
}

/// The fields of an event a stage reads: the whole value, or some keys of an
/// object (each with what is read below it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fields {
    Whole,
    Keys(Vec<(Vec<u8>, Fields)>),
}

impl Fields {
    /// The paths read, in jq syntax (`.data.amount`, `.["a b"]`); `None` for
    /// the whole value.
    pub fn paths(&self) -> Option<Vec<String>> {
        fn walk(f: &Fields, prefix: String, out: &mut Vec<String>) {
            match f {
                Fields::Whole => out.push(prefix),
                Fields::Keys(keys) => {
                    for (key, sub) in keys {
                        let key = String::from_utf8_lossy(key);
                        let plain = key
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        let step = if plain {
                            format!(".{key}")
                        } else {
                            format!(".[{}]", serde_json::to_string(&key).expect("string"))
                        };
                        walk(sub, format!("{prefix}{step}"), out);
                    }
                }
            }
        }
        match self {
            Fields::Whole => None,
            keys => {
                let mut out = Vec::new();
                walk(keys, String::new(), &mut out);
                Some(out)
            }
        }
    }

    /// Adds everything `other` reads.
    pub fn merge(&mut self, other: &Fields) {
        match other {
            Fields::Whole => *self = Fields::Whole,
            Fields::Keys(keys) => {
                for (key, sub) in keys {
                    if let Fields::Keys(mine) = self {
                        match mine.iter_mut().find(|(k, _)| k == key) {
                            Some((_, m)) => m.merge(sub),
                            None => mine.push((key.clone(), sub.clone())),
                        }
                    }
                }
            }
        }
    }

    /// Adds `path` (object keys from the root), read whole at its end.
    pub fn add(&mut self, path: &[Vec<u8>]) {
        let Some((first, rest)) = path.split_first() else {
            *self = Fields::Whole;
            return;
        };
        let Fields::Keys(keys) = self else { return };
        match keys.iter_mut().find(|(k, _)| k == first) {
            Some((_, sub)) => sub.add(rest),
            None => {
                let mut sub = Fields::Keys(Vec::new());
                sub.add(rest);
                keys.push((first.clone(), sub));
            }
        }
    }
}

/// Checks that `line` is exactly one JSON value.
pub fn validate(line: &[u8]) -> Result<(), Error> {
    let mut s = Scanner::new(line);
    let r = s.skip_value(0).and_then(|()| s.end());
    s.finish(r)
}

/// Parses `line` into a jaq value.
pub fn parse(line: &[u8]) -> Result<Val, Error> {
    let mut s = Scanner::new(line);
    let r = s.value(0).and_then(|v| s.end().map(|()| v));
    s.finish(r)
}

/// Parses every JSON value in `text` (as jq reads a data file: values one
/// after another, whitespace between them where needed).
pub fn parse_all(text: &[u8]) -> Result<Vec<Val>, Error> {
    let mut s = Scanner::new(text);
    let mut values = Vec::new();
    while s.peek().is_some() {
        let r = s.value(0);
        values.push(s.finish(r)?);
    }
    Ok(values)
}

/// Validates `line` and builds the part of its value that `fields` names:
/// objects on the way keep only those keys; anything else is built whole.
pub fn project(line: &[u8], fields: &Fields) -> Result<Val, Error> {
    let mut s = Scanner::new(line);
    let r = s.project(fields, 0).and_then(|v| s.end().map(|()| v));
    s.finish(r)
}

/// The keys of a line that direct evaluation (`crate::jq::direct`) reads: a tree
/// like `Fields`, where each key names the slot its value's token goes to.
#[derive(Clone, Debug, Default)]
pub struct Locate {
    pub keys: Vec<(Vec<u8>, usize, Locate)>,
}

impl Locate {
    /// Empties the slots of this tree (the value holding it was seen again:
    /// for a repeated key the last value counts, as in a full parse).
    fn clear(&self, slots: &mut [Option<Token>]) {
        for (_, slot, sub) in &self.keys {
            slots[*slot] = None;
            sub.clear(slots);
        }
    }
}

/// What a token in a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    True,
    False,
    /// A number without fraction or exponent.
    Int,
    /// Any other number.
    Dec,
    /// A string without escapes.
    Str,
    /// A string with escapes.
    EscapedStr,
    Object,
    Array,
}

/// One JSON value in a line: its kind and where it is (quotes included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// A line checked by `locate`.
#[derive(Clone, Copy, Debug)]
pub struct Located {
    /// The whole line, as a token.
    pub root: Token,
    /// The line is spelled as jaq's writer would print its value: no white
    /// space, no `\u` or `\/` escape, no `-0`. (But for DEL characters in
    /// strings, which jaq escapes: look for them in what is copied. And
    /// repeated keys aside: see `unique_keys`.)
    pub canonical: bool,
    /// No object in the line repeats a key (a full parse would keep only the
    /// last value). Only known when asked for; otherwise false.
    pub unique_keys: bool,
}

/// Validates `line` and records in `slots` the token of each key `keys` names
/// (`None`: not there). A key with keys below it records its object and the
/// tokens below; any other value, whole. With `check_keys`, also finds out
/// whether any object repeats a key.
pub fn locate(
    line: &[u8],
    keys: &Locate,
    slots: &mut [Option<Token>],
    check_keys: bool,
) -> Result<Located, Error> {
    slots.fill(None);
    let mut s = Scanner::new(line);
    s.check_keys = check_keys;
    s.ws();
    let start = s.i;
    let kind = if s.peek() == Some(b'{') && !keys.keys.is_empty() {
        s.locate(keys, slots, 0).map(|()| Kind::Object)
    } else {
        s.token(0)
    };
    let r = kind.and_then(|kind| s.end().map(|()| kind));
    let kind = s.finish(r)?;
    let root = Token {
        kind,
        start,
        end: s.i,
    };
    Ok(Located {
        root,
        canonical: s.canonical,
        unique_keys: check_keys && !s.repeated_key,
    })
}

/// Whether no object in `value` (valid JSON) repeats a key.
pub fn unique_keys(value: &[u8]) -> bool {
    let mut s = Scanner::new(value);
    s.check_keys = true;
    s.skip_value(0).is_ok() && !s.repeated_key
}

/// Writes `json` (valid JSON, or a piece of it cut between tokens) as jaq's
/// writer spells the same values: without white space, strings escaped as
/// jaq escapes them, `-0` as `0`. Repeated keys are not merged: see
/// `unique_keys`.
pub fn write_canonical(json: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                let end = string_end(json, i + 1);
                out.push(b'"');
                write_string(&json[i + 1..end], false, out);
                out.push(b'"');
                i = end + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = json.get(i) {
                    i += 1;
                }
                match &json[start..i] {
                    // Read as the integer 0.
                    b"-0" => out.push(b'0'),
                    number => out.extend_from_slice(number),
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// Writes the text of a string (its contents between the quotes, valid), as
/// `-r` prints it: escapes decoded.
pub fn write_text(contents: &[u8], out: &mut Vec<u8>) {
    write_string(contents, true, out);
}

/// Writes `text` as a JSON string, quoted and escaped as jaq's writer
/// escapes it (for text that is not JSON yet: a CSV field).
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f {
            out.extend_from_slice(&bytes[start..i]);
            write_char(char::from(b), false, out);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The index of the closing quote of the string whose contents start at `i`.
fn string_end(json: &[u8], mut i: usize) -> usize {
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', &json[i..]).expect("a valid string");
        if json[at] == b'"' {
            return at;
        }
        // An escape: the byte after the backslash is never the end.
        i = at + 2;
    }
}

/// Writes a string's contents decoded (`raw`) or escaped as jaq escapes.
fn write_string(contents: &[u8], raw: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(at) = memchr::memchr2(b'\\', 0x7f, &contents[i..]) {
        out.extend_from_slice(&contents[i..i + at]);
        i += at;
        if contents[i] == 0x7f {
            write_char('\u{7f}', raw, out);
            i += 1;
            continue;
        }
        let hex = |at: usize| {
            let digits = std::str::from_utf8(&contents[at..at + 4]).expect("hex digits");
            u32::from_str_radix(digits, 16).expect("hex digits")
        };
        let c = match contents[i + 1] {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex(i + 2);
                if (0xD800..0xDC00).contains(&unit) {
                    let low = hex(i + 8);
                    i += 6;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                } else {
                    char::from_u32(unit)
                }
                .expect("checked escape")
            }
            other => other as char,
        };
        i += if contents[i + 1] == b'u' { 6 } else { 2 };
        write_char(c, raw, out);
    }
    out.extend_from_slice(&contents[i..]);
}

/// One character of a string, as is (`raw`) or as jaq's writer escapes it.
fn write_char(c: char, raw: bool, out: &mut Vec<u8>) {
    let escape: &[u8] = match c {
        _ if raw => b"",
        '"' => b"\\\"",
        '\\' => b"\\\\",
        '\u{8}' => b"\\b",
        '\u{c}' => b"\\f",
        '\n' => b"\\n",
        '\r' => b"\\r",
        '\t' => b"\\t",
        '\0'..='\u{1f}' | '\u{7f}' => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let c = c as usize;
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[c >> 4], HEX[c & 0xf]]);
            return;
        }
        _ => b"",
    };
    if escape.is_empty() {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    } else {
        out.extend_from_slice(escape);
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
    /// Look for repeated keys (which costs a comparison per key).
    check_keys: bool,
    /// A repeated key was found (or a key too hard to compare cheaply).
    repeated_key: bool,
    /// Nothing seen so far that jaq would spell differently (see `Located`).
    canonical: bool,
    /// Why the scan stopped (with `Err(Stop)`).
    error: Option<Error>,
}

/// The scan stopped at an error, which is in `Scanner::error`. Results carry
/// only this empty marker so that they fit in registers: with the error in
/// them, every result went through memory, and a string's span or a skipped
/// number was copied back with loads that stalled.
struct Stop;

type R<T> = Result<T, Stop>;

impl<'a> Scanner<'a> {
    fn new(s: &'a [u8]) -> Scanner<'a> {
        Scanner {
            s,
            i: 0,
            check_keys: false,
            repeated_key: false,
            canonical: true,
            error: None,
        }
    }

    /// The error a scan stopped at, for the public functions.
    fn finish<T>(&mut self, r: R<T>) -> Result<T, Error> {
        r.map_err(|Stop| self.error.take().expect("an error is recorded"))
    }

    #[cold]
    fn err<T>(&mut self, reason: &'static str) -> R<T> {
        self.error = Some(Error::Syntax {
            offset: self.i.min(self.s.len().saturating_sub(1)),
            reason,
        });
        Err(Stop)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
            self.canonical = false;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn end(&mut self) -> R<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.err("trailing characters"),
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("expected value")
        }
    }

    /// Skips a value, checking it.
    fn skip_value(&mut self, depth: usize) -> R<()> {
        match self.peek() {
            Some(b'"') => self.string_span().map(|_| ()),
            Some(b'{') => self.object(depth, |s, _key, depth| s.skip_value(depth)),
            Some(b'[') => self.array(depth, |s, depth| s.skip_value(depth)),
            // No value is built (nor dropped) for what is skipped.
            Some(b'-' | b'0'..=b'9') => self.number_span().map(|_| ()),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            None => self.err("EOF while parsing a value"),
            _ => self.err("expected value"),
        }
    }

    /// Skips a value, checking it, and tells what it was.
    fn token(&mut self, depth: usize) -> R<Kind> {
        Ok(match self.peek() {
            Some(b'"') => {
                if self.string_span()?.escaped {
                    Kind::EscapedStr
                } else {
                    Kind::Str
                }
            }
            Some(b'{') => {
                self.skip_value(depth)?;
                Kind::Object
            }
            Some(b'[') => {
                self.skip_value(depth)?;
                Kind::Array
            }
            Some(b'n') => self.literal(b"null").map(|_| Kind::Null)?,
            Some(b't') => self.literal(b"true").map(|_| Kind::True)?,
            Some(b'f') => self.literal(b"false").map(|_| Kind::False)?,
            Some(b'-' | b'0'..=b'9') => {
                if self.number_span()? {
                    Kind::Int
                } else {
                    Kind::Dec
                }
            }
            None => return self.err("EOF while parsing a value"),
            _ => return self.err("expected value"),
        })
    }

    /// At an object: records the tokens `keys` names in `slots`, skipping
    /// (but checking) the rest.
    fn locate(&mut self, keys: &Locate, slots: &mut [Option<Token>], depth: usize) -> R<()> {
        self.object(depth, |s, key, depth| {
            let raw = &s.s[key.start..key.end];
            let found = if key.escaped {
                let unescaped = s.unescape(key);
                keys.keys.iter().find(|(k, _, _)| *k == unescaped)
            } else {
                keys.keys.iter().find(|(k, _, _)| k.as_slice() == raw)
            };
            let Some((_, slot, sub)) = found else {
                return s.skip_value(depth);
            };
            sub.clear(slots);
            let start = s.i;
            let kind = if s.peek() == Some(b'{') && !sub.keys.is_empty() {
                s.locate(sub, slots, depth)?;
                Kind::Object
            } else {
                s.token(depth)?
            };
            slots[*slot] = Some(Token {
                kind,
                start,
                end: s.i,
            });
            Ok(())
        })
    }

    /// Parses a value.
    fn value(&mut self, depth: usize) -> R<Val> {
        match self.peek() {
            Some(b'"') => {
                let span = self.string_span()?;
                Ok(Val::utf8_str(self.unescape(span)))
            }
            Some(b'{') => {
                let mut map = Map::default();
                self.object(depth, |s, key, depth| {
                    let key = Val::utf8_str(s.unescape(key));
                    let value = s.value(depth)?;
                    map.insert(key, value);
                    Ok(())
                })?;
                Ok(Val::obj(map))
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.array(depth, |s, depth| {
                    items.push(s.value(depth)?);
                    Ok(())
                })?;
                Ok(Val::Arr(Rc::new(items)))
            }
            _ => self.scalar(),
        }
    }

    /// Parses what `fields` names of the value here, skipping (but checking) the rest.
    fn project(&mut self, fields: &Fields, depth: usize) -> R<Val> {
        let Fields::Keys(wanted) = fields else {
            return self.value(depth);
        };
        if self.peek() != Some(b'{') {
            return self.value(depth);
        }
        let mut map = Map::default();
        self.object(depth, |s, key, depth| {
            let raw = &s.s[key.start..key.end];
            let found = if key.escaped {
                let unescaped = s.unescape(key);
                wanted.iter().find(|(k, _)| *k == unescaped)
            } else {
                wanted.iter().find(|(k, _)| k.as_slice() == raw)
            };
            match found {
                Some((name, sub)) => {
                    let value = s.project(sub, depth)?;
                    map.insert(Val::utf8_str(name.clone()), value);
                    Ok(())
                }
                None => s.skip_value(depth),
            }
        })?;
        Ok(Val::obj(map))
    }

    /// `{ key: value, ... }`, calling `entry` with the key's span positioned at the value.
    fn object(
        &mut self,
        depth: usize,
        mut entry: impl FnMut(&mut Self, Span, usize) -> R<()>,
    ) -> R<()> {
        if depth >= MAX_DEPTH {
            return self.err("nesting deeper than 128 levels");
        }
        self.i += 1; // {
        // Keys so far, to find a repeated one (with `check_keys` only: the
        // array is not even zeroed otherwise).
        let mut seen = self.check_keys.then(Seen::default);
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            match self.peek() {
                Some(b'"') => {}
                Some(b'}') => return self.err("trailing comma"),
                None => return self.err("EOF while parsing an object"),
                _ => return self.err("key must be a string"),
            }
            let key = self.string_span()?;
            if let Some(seen) = &mut seen {
                self.note_key(seen, key);
            }
            if self.peek() != Some(b':') {
                return if self.peek().is_none() {
                    self.err("EOF while parsing an object")
                } else {
                    self.err("expected `:`")
                };
            }
            self.i += 1;
            if self.peek().is_none() {
                return self.err("EOF while parsing a value");
            }
            entry(self, key, depth + 1)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return self.err("EOF while parsing an object"),
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }

    /// Notes a repeated key when `key` repeats an earlier key of
    /// its object (or the object has too many keys to tell cheaply).
    fn note_key(&mut self, seen: &mut Seen, key: Span) {
        let raw = &self.s[key.start..key.end];
        let earlier = &seen.keys[..seen.len.min(seen.keys.len())];
        // Escaped keys would have to be decoded to compare: counted as repeated.
        if key.escaped
            || seen.len >= seen.keys.len()
            || earlier
                .iter()
                .any(|&(start, end)| &self.s[start..end] == raw)
        {
            self.repeated_key = true;
        } else {
            seen.keys[seen.len] = (key.start, key.end);
        }
        seen.len += 1;
    }

    /// `[ value, ... ]`, calling `item` positioned at each value.
    fn array(&mut self, depth: usize, mut item: impl FnMut(&mut Self, usize) -> R<()>) -> R<()> {
        if depth >= MAX_DEPTH {
            return self.err("nesting deeper than 128 levels");
        }
        self.i += 1; // [
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            match self.peek() {
                None => return self.err("EOF while parsing a list"),
                Some(b']') => return self.err("trailing comma"),
                _ => {}
            }
            item(self, depth + 1)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                None => return self.err("EOF while parsing a list"),
                _ => return self.err("expected `,` or `]`"),
            }
        }
    }

    /// null, true, false or a number, built (`skip_value` skips them
    /// without building).
    fn scalar(&mut self) -> R<Val> {
        match self.peek() {
            Some(b'n') => self.literal(b"null").map(|_| Val::Null),
            Some(b't') => self.literal(b"true").map(|_| Val::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Val::Bool(false)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => self.err("EOF while parsing a value"),
            _ => self.err("expected value"),
        }
    }

    /// A number, built.
    fn number(&mut self) -> R<Val> {
        let start = self.i;
        let integer = self.number_span()?;
        // The span is ASCII digits and signs, so it is a str.
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
        Ok(Val::Num(if integer {
            Num::from_str_radix(text, 10).expect("checked digits")
        } else {
            Num::Dec(Rc::new(text.to_string()))
        }))
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at `self.i`:
    /// checks it and steps over it; whether it is an integer (no fraction,
    /// no exponent).
    fn number_span(&mut self) -> R<bool> {
        let start = self.i;
        let s = self.s;
        let digits = |i: &mut usize| {
            let from = *i;
            while s.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        let mut i = self.i;
        if s[i] == b'-' {
            i += 1;
        }
        match s.get(i) {
            Some(b'0') => {
                i += 1;
                if s.get(i).is_some_and(u8::is_ascii_digit) {
                    self.i = i;
                    return self.err("invalid number: leading zero");
                }
            }
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => {
                self.i = i;
                return self.err("invalid number");
            }
        }
        let mut integer = true;
        if s.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if digits(&mut i) == 0 {
                self.i = i;
                return self.err("invalid number: expected a digit after `.`");
            }
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            integer = false;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                self.i = i;
                return self.err("invalid number: expected a digit in the exponent");
            }
        }
        self.i = i;
        if &s[start..i] == b"-0" {
            // jaq reads it as the integer 0.
            self.canonical = false;
        }
        Ok(integer)
    }

    /// A string at `self.i` (the opening quote): checks it and returns the
    /// span of its contents. One pass over the bytes, eight at a time: most
    /// log strings are short, where this beats setting up a SIMD search. The
    /// usual case (no escape, ASCII) is inlined into the callers.
    #[inline(always)]
    fn string_span(&mut self) -> R<Span> {
        self.i += 1;
        let start = self.i;
        let end = special_at(self.s, start);
        // The span is built here from registers on both paths: merging two
        // spans written to memory made the caller's copy of it a load that
        // store forwarding cannot serve (a stall on every string).
        let escaped = if self.s.get(end) == Some(&b'"') {
            self.i = end + 1;
            false
        } else {
            self.i = end;
            self.string_rest()?
        };
        Ok(Span {
            start,
            end: self.i - 1,
            escaped,
        })
    }

    /// The rest of a string from its first escape, non-ASCII or bad byte at
    /// `self.i`, up to and past its closing quote: whether it held escapes.
    #[inline(never)]
    fn string_rest(&mut self) -> R<bool> {
        let mut escaped = false;
        loop {
            match self.s.get(self.i) {
                None => return self.err("EOF while parsing a string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(&b) if b >= 0x80 => self.utf8()?,
                Some(_) => return self.err("control character in string"),
            }
            self.i = special_at(self.s, self.i);
        }
    }

    /// Checks the run of non-ASCII bytes at `self.i` and steps over it.
    /// (Outside strings such bytes are syntax errors, so only strings check.)
    fn utf8(&mut self) -> R<()> {
        let run = self.s[self.i..]
            .iter()
            .position(|b| b.is_ascii())
            .unwrap_or(self.s.len() - self.i);
        match std::str::from_utf8(&self.s[self.i..self.i + run]) {
            Ok(_) => {
                self.i += run;
                Ok(())
            }
            Err(e) => {
                self.error = Some(Error::Utf8 {
                    offset: self.i + e.valid_up_to(),
                });
                Err(Stop)
            }
        }
    }

    /// Checks one escape sequence at `self.i` (the backslash) and steps over it.
    fn escape(&mut self) -> R<()> {
        self.i += 1;
        match self.s.get(self.i) {
            Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'/') => {
                // jaq writes a plain `/`.
                self.canonical = false;
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                // jaq writes the character itself, or `\u` only for some.
                self.canonical = false;
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if self.s[self.i..].starts_with(b"\\u") {
                            self.i += 1;
                            if let 0xDC00..=0xDFFF = self.hex4()? {
                                return Ok(());
                            }
                        }
                        self.err("lone surrogate in \\u escape")
                    }
                    0xDC00..=0xDFFF => self.err("lone surrogate in \\u escape"),
                    _ => Ok(()),
                }
            }
            None => self.err("EOF while parsing a string"),
            _ => self.err("invalid escape"),
        }
    }

    /// `uXXXX` at `self.i`: returns the code unit and steps over it.
    fn hex4(&mut self) -> R<u32> {
        let digits = self.s.get(self.i + 1..self.i + 5);
        let unit = digits.and_then(|d| {
            d.iter().try_fold(0, |unit, &b| {
                let digit = (b as char).to_digit(16)?;
                Some(unit << 4 | digit)
            })
        });
        match unit {
            Some(u) => {
                self.i += 5;
                Ok(u)
            }
            None => self.err("invalid \\u escape"),
        }
    }

    /// The text of a checked string span.
    fn unescape(&self, span: Span) -> Vec<u8> {
        let raw = &self.s[span.start..span.end];
        let mut out = Vec::with_capacity(raw.len());
        write_text(raw, &mut out);
        out
    }
}

/// Bytes that end the fast scan of a string: quote, backslash, control
/// characters, and the start of a non-ASCII character (checked as UTF-8).
const STRING_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize || b >= 0x80;
        b += 1;
    }
    table
};

/// The index of the first byte of `s` from `i` on that is in
/// `STRING_SPECIAL` (or `s.len()`), eight bytes at a time.
#[inline(always)]
fn special_at(s: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = s.get(i..i + 8) {
        let mask = special(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        if mask != 0 {
            return i + mask.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while i < s.len() && !STRING_SPECIAL[s[i] as usize] {
        i += 1;
    }
    i
}

/// The high bit of each of the eight bytes in `x` (little-endian) that is in
/// `STRING_SPECIAL`: below 0x20, a quote, a backslash, or 0x80 and above (the
/// usual SWAR tests). A borrow may also mark bytes above a marked one, never
/// below: the lowest mark is exact.
#[inline]
fn special(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_0x20 = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let quote = zero_byte(x ^ (ONES * b'"' as u64));
    let backslash = zero_byte(x ^ (ONES * b'\\' as u64));
    below_0x20 | quote | backslash | (x & HIGH)
}

/// The keys of one object seen so far, for `Scanner::note_key`.
#[derive(Default)]
struct Seen {
    keys: [(usize, usize); 32],
    len: usize,
}

/// Where a string's contents are, and whether they hold escapes.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_jaq(line: &str) {
        let ours = parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        let jaq = jaq_json::read::parse_single(line.as_bytes()).unwrap();
        assert_eq!(ours.to_string(), jaq.to_string(), "{line}");
    }

    #[test]
    fn strings_are_written_as_jaq_writes_them() {
        let all: String = (0..0x80u8).map(char::from).collect();
        for text in [
            "",
            "plain",
            "a\"b\\c/d",
            "tab\tnew\nline\r",
            "\u{7f}é😀",
            &all,
        ] {
            let mut ours = Vec::new();
            write_str(text, &mut ours);
            let mut jaq = Vec::new();
            write_compact(&mut jaq, &Val::from(text.to_string()));
            assert_eq!(ours, jaq, "{text:?}");
        }
    }

    #[test]
    fn parses_like_jaq() {
        for line in [
            r#"{"a":[1,2.50,-0,1e2,3E+2,-1.5e-3,100000000000000000000000],"b":{"c":null,"d":true,"e":false}}"#,
            r#"  "caf\u00e9 \"q\" \\ \/ \b\f\n\r\t \ud83d\ude00 é"  "#,
            r#"{"k":1,"k":2,"j":3}"#,
            "[]",
            "{}",
            "[[],{},[{}]]",
            "0",
            "-12",
        ] {
            same_as_jaq(line);
        }
    }

    #[test]
    fn rejects_what_is_not_json() {
        let bad: &[(&[u8], &str)] = &[
            (
                b"{\"a\":1} {\"b\":2}",
                "invalid JSON: trailing characters at column 9",
            ),
            (
                b"{\"a\":",
                "invalid JSON: EOF while parsing a value at column 5",
            ),
            (b"\"caf\xe9\"", "invalid UTF-8 at byte 5"),
            (b"[\"\xc3\xa9\xc3\"]", "invalid UTF-8 at byte 5"),
            (b"[\"\xed\xa0\x80\"]", "invalid UTF-8 at byte 3"),
            (b"\xff", "invalid JSON: expected value at column 1"),
            (b"[1,]", "invalid JSON: trailing comma at column 4"),
            (b"{\"a\":1,}", "invalid JSON: trailing comma at column 8"),
            (
                b"this is not json",
                "invalid JSON: expected value at column 1",
            ),
            (
                b"01",
                "invalid JSON: invalid number: leading zero at column 2",
            ),
            (
                b"\"\\ud800\"",
                "invalid JSON: lone surrogate in \\u escape at column 8",
            ),
            (b"\"\\x\"", "invalid JSON: invalid escape at column 3"),
            (
                b"\"a\tb\"",
                "invalid JSON: control character in string at column 3",
            ),
            (b"{1:2}", "invalid JSON: key must be a string at column 2"),
            (b"NaN", "invalid JSON: expected value at column 1"),
            (
                b"1.",
                "invalid JSON: invalid number: expected a digit after `.` at column 2",
            ),
            (b"", "invalid JSON: EOF while parsing a value at column 1"),
        ];
        for (line, message) in bad {
            let text = String::from_utf8_lossy(line);
            assert_eq!(
                validate(line).unwrap_err().to_string(),
                *message,
                "validate {text}"
            );
            assert_eq!(
                parse(line).unwrap_err().to_string(),
                *message,
                "parse {text}"
            );
            assert_eq!(
                project(line, &Fields::Keys(vec![]))
                    .unwrap_err()
                    .to_string(),
                *message,
                "project {text}"
            );
        }
    }

    #[test]
    fn special_bytes_are_found_in_every_position() {
        let first = |bytes: [u8; 8]| match special(u64::from_le_bytes(bytes)) {
            0 => None,
            mask => Some(mask.trailing_zeros() as usize / 8),
        };
        for plain in [b"abcdefgh", b"        ", b"~~~~}}}}", b"!#$%&'()"] {
            assert_eq!(first(*plain), None);
        }
        // Every byte value at every position, alone and before another
        // special byte (whose borrows must not hide or fake the first).
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = *b"xxxxxxxx";
                bytes[pos] = b;
                let expected = STRING_SPECIAL[b as usize].then_some(pos);
                assert_eq!(first(bytes), expected, "{b:#x} at {pos}");
                for (later, other) in (pos + 1..8).zip([0u8, b'"', 0x1f, 0xff, b'\\', 0, 0x80]) {
                    let mut bytes = bytes;
                    bytes[later] = other;
                    assert_eq!(
                        first(bytes),
                        expected.or(Some(later)),
                        "{b:#x} at {pos}, {other:#x} at {later}"
                    );
                }
            }
        }
    }

    #[test]
    fn nesting_is_limited() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(
            validate(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("nesting deeper than 128 levels")
        );
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn canonical_writing_spells_values_as_jaq_does() {
        for line in [
            r#"{"a":[1,2.50,-0,-0.0,1e2,3E+2,-1.5e-3,100000000000000000000000],"b":{"c":null}}"#,
            r#" { "a" : [ 1 , { } , [ ] ] , "t" : true , "f" : false } "#,
            r#""caf\u00e9 \"q\" \\ \/ \b\f\n\r\t \ud83d\ude00 é \u0000\u001F\u007f\u0080 x""#,
            "\"raw del \u{7f} here\"",
            r#"{"k\u0041":"v\n","e":"","n":[-0,0,-1]}"#,
            "[]",
            "{}",
            "-0",
        ] {
            let mut ours = Vec::new();
            write_canonical(line.as_bytes(), &mut ours);
            let jaq = parse(line.as_bytes()).unwrap().to_string();
            assert_eq!(String::from_utf8(ours).unwrap(), jaq, "{line}");
            let located = locate(line.as_bytes(), &Locate::default(), &mut [], true).unwrap();
            let del = line.contains('\u{7f}');
            assert_eq!(located.canonical && !del, line == jaq, "{line}");
            // An escaped key counts as repeated: it is not decoded to compare.
            assert_eq!(located.unique_keys, !line.contains(r#"k\u0041"#), "{line}");
        }
        for line in [
            r#"{"a":1,"a":2}"#,
            r#"[{"b":{"c":1,"c":1}}]"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            assert!(!unique_keys(line.as_bytes()), "{line}");
        }
        let mut text = Vec::new();
        write_text(br#"a\"b\u00e9\n\ud83d\ude00"#, &mut text);
        assert_eq!(text, "a\"bé\n😀".as_bytes());
    }

    #[test]
    fn projection_keeps_only_the_named_fields() {
        let mut fields = Fields::Keys(vec![]);
        fields.add(&[b"a".to_vec(), b"b".to_vec()]);
        fields.add(&[b"k".to_vec()]);
        let line =
            br#"{"x":[1,{"y":2}],"a":{"b":[1.50],"c":3},"k":"v","a":{"b":7,"z":{}},"\u006b":"w"}"#;
        assert_eq!(
            project(line, &fields).unwrap().to_string(),
            r#"{"a":{"b":7},"k":"w"}"#
        );
        // Not an object where keys are wanted: kept whole, so errors read the same.
        assert_eq!(
            project(br#"{"a":[1,2]}"#, &fields).unwrap().to_string(),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(project(b"[1]", &fields).unwrap().to_string(), "[1]");
        // The skipped parts are still checked.
        assert!(project(br#"{"x":[1,,2],"k":1}"#, &fields).is_err());
    }
}
