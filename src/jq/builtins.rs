//! jq builtins that jaq lacks or spells differently, written in Rust where
//! jq's semantics or speed need it; the rest are jq definitions in
//! `prelude.jq`, compiled after jaq's standard library so that they shadow it.
//!
//! - `input_filename` and `input_line_number`: the file and line of the event
//!   being run, which the worker sets per batch and per line in thread-locals
//!   (no allocation: the file names are made once per worker thread).
//! - `_setpath` and `_delpaths` (behind `setpath`, `delpaths`, `del`, `pick`):
//!   jq's path semantics, where jaq's differ: `null` grows into an object or
//!   an array, an array grows with nulls past its end, deleting a path that is
//!   not there does nothing, several paths are deleted from the last.
//! - `tonumber` (jq 1.8's strict number syntax), `@base32`, `@base32d`,
//!   `builtins`.

use crate::jq::Data;
use jaq_core::native::{Filter, Fun, run, v};
use jaq_core::{Cv, Error, Exn, RunPtr, ValXs};
use jaq_json::Val;
use jaq_std::ValT as _;
use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

thread_local! {
    /// The names of the sources (a string, or null for standard input).
    static FILES: RefCell<Vec<Val>> = const { RefCell::new(Vec::new()) };
    /// Which source the events being run come from.
    static SOURCE: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The line of the event being run (0: an event no line gave).
    static LINE: Cell<u64> = const { Cell::new(0) };
}

/// Names the sources for this thread: `None` is standard input.
pub fn set_files(files: &[Option<String>]) {
    let files = files
        .iter()
        .map(|f| f.clone().map_or(Val::Null, Val::from))
        .collect();
    FILES.with(|f| *f.borrow_mut() = files);
}

/// The events run next come from source `source`.
pub fn set_source(source: usize) {
    SOURCE.with(|s| s.set(source));
}

/// The event run next is on line `line`.
pub fn set_line(line: u64) {
    LINE.with(|l| l.set(line));
}

/// Every `name/arity` the language knows, for `builtins` (set once by the
/// first compile).
static BUILTINS: OnceLock<Vec<String>> = OnceLock::new();

/// Records the names for `builtins`: public names only (no `_` prefix, no
/// `@format`, not jaq's internal helpers).
pub fn set_builtins(sigs: impl Iterator<Item = (String, usize)>) {
    BUILTINS.get_or_init(|| {
        let mut names: Vec<String> = sigs
            .filter(|(name, _)| {
                name.starts_with(|c: char| c.is_ascii_alphabetic())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.ends_with('_')
                    && !name.ends_with("_empty")
                    && !name.ends_with("_or_empty")
            })
            .map(|(name, arity)| format!("{name}/{arity}"))
            .collect();
        names.sort();
        names.dedup();
        names
    });
}

type Out<'a> = ValXs<'a, Val>;

fn one<'a>(v: Val) -> Out<'a> {
    Box::new(core::iter::once(Ok(v)))
}

fn fail<'a>(msg: String) -> Out<'a> {
    Box::new(core::iter::once(Err(Exn::from(Error::str(msg)))))
}

/// The natives, for `Compiler::with_funs`.
pub fn funs() -> impl Iterator<Item = Fun<Data>> {
    let funs: [Filter<RunPtr<Data>>; 8] = [
        ("input_filename", v(0), |_| {
            let source = SOURCE.with(Cell::get);
            one(FILES.with(|f| f.borrow().get(source).cloned().unwrap_or(Val::Null)))
        }),
        ("input_line_number", v(0), |_| {
            one(Val::from(LINE.with(Cell::get) as isize))
        }),
        ("builtins", v(0), |_| {
            let names = BUILTINS.get().map(Vec::as_slice).unwrap_or_default();
            one(names.iter().cloned().map(Val::from).collect())
        }),
        ("_tonumber", v(0), tonumber),
        ("@base32", v(0), |cv: Cv<Data>| {
            let text = to_text(&cv.1);
            one(Val::from(base32_encode(text.as_bytes())))
        }),
        ("@base32d", v(0), |cv: Cv<Data>| {
            let text = to_text(&cv.1);
            match base32_decode(text.as_bytes()) {
                Some(bytes) => one(Val::from(String::from_utf8_lossy(&bytes).into_owned())),
                None => fail(format!("{} is not valid base32 data", describe(&cv.1))),
            }
        }),
        ("_setpath", v(0), |cv: Cv<Data>| match args3(cv.1) {
            Some((v, Val::Arr(p), x)) => result(setpath(v, &p, x)),
            Some(_) => fail("Path must be specified as an array".into()),
            None => fail("_setpath: bad arguments".into()),
        }),
        ("_delpaths", v(0), |cv: Cv<Data>| match args3(cv.1) {
            Some((v, paths, _)) => result(delpaths(v, paths)),
            None => fail("_delpaths: bad arguments".into()),
        }),
    ];
    funs.into_iter().map(run::<Data>)
}

fn result<'a>(r: Result<Val, String>) -> Out<'a> {
    match r {
        Ok(v) => one(v),
        Err(e) => fail(e),
    }
}

/// `[a, b, c]` (or `[a, b]`) as a triple.
fn args3(v: Val) -> Option<(Val, Val, Val)> {
    let Val::Arr(a) = v else { return None };
    let mut it = a.iter().cloned();
    Some((it.next()?, it.next()?, it.next().unwrap_or(Val::Null)))
}

/// jq's name of a value's type.
fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::BStr(_) | Val::TStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

fn json(v: &Val) -> String {
    let mut out = Vec::new();
    crate::json::write_compact(&mut out, v);
    String::from_utf8_lossy(&out).into_owned()
}

/// `TYPE (VALUE)`, as jq's messages show a value (at most 28 bytes of it).
pub fn describe(v: &Val) -> String {
    let mut text = json(v);
    if text.len() > 28 {
        let mut end = 25;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    format!("{} ({text})", type_name(v))
}

/// A string's text, or any other value's JSON (as jq's formats take them).
fn to_text(v: &Val) -> String {
    match v {
        Val::BStr(b) | Val::TStr(b) => String::from_utf8_lossy(b).into_owned(),
        v => json(v),
    }
}

fn tonumber(cv: Cv<Data>) -> Out {
    let v = cv.1;
    let s = match &v {
        Val::Num(_) => return one(v),
        Val::BStr(b) | Val::TStr(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return fail(format!("{} cannot be parsed as a number", describe(&v))),
    };
    // jq 1.8: an optional sign, digits with at most one point (at least one
    // digit), an optional exponent; nothing around it.
    let body = s.strip_prefix(['-', '+']).unwrap_or(&s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let valid = digits(int)
        && digits(frac)
        && !(int.is_empty() && frac.is_empty())
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !valid {
        return fail(format!("{} cannot be parsed as a number", describe(&v)));
    }
    // As JSON: no plus sign, a digit on each side of the point.
    let negative = s.starts_with('-');
    let int = int.trim_start_matches('0');
    let mut text = String::from(if negative { "-" } else { "" });
    text.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        text.push('.');
        text.push_str(frac);
    }
    if let Some(e) = exponent {
        text.push('e');
        text.push_str(e);
    }
    match crate::json::parse(text.as_bytes()) {
        Ok(n) => one(n),
        Err(_) => fail(format!("{} cannot be parsed as a number", describe(&v))),
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(BASE32[(n >> (35 - 5 * i) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base32_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &c in text.iter().take_while(|&&c| c != b'=') {
        let d = BASE32.iter().position(|&b| b == c)? as u64;
        acc = acc << 5 | d;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// An array index as jq takes it: a number, truncated.
fn index(k: &Val) -> Option<f64> {
    match k {
        Val::Num(_) => k.as_f64().map(f64::trunc),
        _ => None,
    }
}

fn key_error(v: &Val, k: &Val) -> String {
    format!(
        "Cannot index {} with {}",
        type_name(v),
        match k {
            Val::BStr(_) | Val::TStr(_) => format!("string ({})", json(k)),
            k => describe(k),
        }
    )
}

/// A slice key `{"start": s, "end": e}` as bounds in an array of `len`.
fn slice(k: &Val, len: usize) -> Option<(usize, usize)> {
    let Val::Obj(o) = k else { return None };
    let bound = |name: &str, default: usize| -> Option<usize> {
        match o.get(&Val::from(name.to_string())) {
            None | Some(Val::Null) => Some(default),
            Some(n) => {
                let n = n.as_f64()?;
                let n = if n < 0.0 { len as f64 + n } else { n };
                Some(n.clamp(0.0, len as f64) as usize)
            }
        }
    };
    let start = bound("start", 0)?;
    let end = bound("end", len)?.max(start);
    Some((start, end))
}

/// jq's `setpath`: `v` with the value at `path` replaced by `x`.
fn setpath(v: Val, path: &[Val], x: Val) -> Result<Val, String> {
    let Some((k, rest)) = path.split_first() else {
        return Ok(x);
    };
    match (v, k) {
        (Val::Null, Val::BStr(_) | Val::TStr(_)) => {
            let mut m = jaq_json::Map::default();
            m.insert(k.clone(), setpath(Val::Null, rest, x)?);
            Ok(Val::obj(m))
        }
        (Val::Null, Val::Num(_) | Val::Obj(_)) => setpath(Val::Arr(Vec::new().into()), path, x),
        (Val::Obj(o), Val::BStr(_) | Val::TStr(_)) => {
            let mut o = jaq_json::Rc::unwrap_or_clone(o);
            let old = o.get_mut(k).map(std::mem::take).unwrap_or(Val::Null);
            let new = setpath(old, rest, x)?;
            o.insert(k.clone(), new);
            Ok(Val::Obj(o.into()))
        }
        (Val::Arr(a), Val::Num(_)) => {
            let i = index(k).unwrap_or(f64::NAN);
            if i.is_nan() {
                return Err("Cannot set array element at NaN index".into());
            }
            let mut a = jaq_json::Rc::unwrap_or_clone(a);
            let i = if i < 0.0 { a.len() as f64 + i } else { i };
            if i < 0.0 {
                return Err("Out of bounds negative array index".into());
            }
            if i >= 536_870_912.0 {
                return Err("Array index too large".into());
            }
            let i = i as usize;
            if i >= a.len() {
                a.resize(i + 1, Val::Null);
            }
            let old = std::mem::take(&mut a[i]);
            a[i] = setpath(old, rest, x)?;
            Ok(Val::Arr(a.into()))
        }
        (Val::Arr(a), Val::Obj(_)) => {
            let (start, end) = slice(k, a.len()).ok_or_else(|| {
                "Start and end indices of an array slice must be numbers".to_string()
            })?;
            let mut a = jaq_json::Rc::unwrap_or_clone(a);
            let part: Vec<Val> = a[start..end].to_vec();
            let new = setpath(Val::Arr(part.into()), rest, x)?;
            let Val::Arr(new) = new else {
                return Err("A slice of an array can only be assigned another array".into());
            };
            a.splice(start..end, new.iter().cloned());
            Ok(Val::Arr(a.into()))
        }
        (Val::Arr(_), Val::Arr(_)) => Err("Cannot update field at array index of array".into()),
        (v, k) => Err(key_error(&v, k)),
    }
}

/// jq's `delpaths`: the paths sorted, deleted from the last.
fn delpaths(v: Val, paths: Val) -> Result<Val, String> {
    let Val::Arr(paths) = paths else {
        return Err("Paths must be specified as an array".into());
    };
    // Negative indices count from the end of the arrays as they are before
    // any deletion (jq's `del(.[1], .[-1])` deletes two elements).
    let mut paths: Vec<Val> = paths.iter().map(|p| absolute(&v, p)).collect();
    paths.sort();
    let mut v = v;
    for path in paths.iter().rev() {
        let Val::Arr(p) = path else {
            return Err("Path must be specified as an array".into());
        };
        v = delpath(v, p)?;
    }
    Ok(v)
}

/// `path` in `v` with its negative array indices made non-negative.
fn absolute(v: &Val, path: &Val) -> Val {
    let Val::Arr(keys) = path else {
        return path.clone();
    };
    let mut at = Some(v);
    let mut out = Vec::with_capacity(keys.len());
    for k in keys.iter() {
        let mut k = k.clone();
        match (at, index(&k)) {
            (Some(Val::Arr(a)), Some(i)) if i < 0.0 && a.len() as f64 + i >= 0.0 => {
                k = Val::from((a.len() as f64 + i) as isize);
            }
            _ => {}
        }
        at = match at {
            Some(Val::Arr(a)) => index(&k).and_then(|i| a.get(i as usize)),
            Some(Val::Obj(o)) => o.get(&k),
            _ => None,
        };
        out.push(k);
    }
    Val::Arr(out.into())
}

fn delpath(v: Val, path: &[Val]) -> Result<Val, String> {
    let Some((k, rest)) = path.split_first() else {
        return Ok(Val::Null);
    };
    match (v, k) {
        (Val::Null, _) => Ok(Val::Null),
        (Val::Obj(o), Val::BStr(_) | Val::TStr(_)) => {
            if !o.contains_key(k) {
                return Ok(Val::Obj(o));
            }
            let mut o = jaq_json::Rc::unwrap_or_clone(o);
            if rest.is_empty() {
                o.shift_remove(k);
            } else {
                let old = o.get_mut(k).map(std::mem::take).unwrap_or(Val::Null);
                o.insert(k.clone(), delpath(old, rest)?);
            }
            Ok(Val::Obj(o.into()))
        }
        (Val::Arr(a), Val::Num(_)) => {
            let i = index(k).unwrap_or(f64::NAN);
            let i = if i < 0.0 { a.len() as f64 + i } else { i };
            if i.is_nan() || i < 0.0 || i >= a.len() as f64 {
                return Ok(Val::Arr(a));
            }
            let i = i as usize;
            let mut a = jaq_json::Rc::unwrap_or_clone(a);
            if rest.is_empty() {
                a.remove(i);
            } else {
                let old = std::mem::take(&mut a[i]);
                a[i] = delpath(old, rest)?;
            }
            Ok(Val::Arr(a.into()))
        }
        (Val::Arr(a), Val::Obj(_)) => {
            let (start, end) = slice(k, a.len()).ok_or_else(|| {
                "Start and end indices of an array slice must be numbers".to_string()
            })?;
            let mut a = jaq_json::Rc::unwrap_or_clone(a);
            if rest.is_empty() {
                a.drain(start..end);
            } else {
                let part = Val::Arr(a[start..end].to_vec().into());
                let Val::Arr(new) = delpath(part, rest)? else {
                    unreachable!("deleting in an array leaves an array")
                };
                a.splice(start..end, new.iter().cloned());
            }
            Ok(Val::Arr(a.into()))
        }
        (v, k) => Err(key_error(&v, k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips() {
        for (plain, coded) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), coded);
            assert_eq!(base32_decode(coded.as_bytes()).unwrap(), plain.as_bytes());
        }
    }
}
