//! Which fields of an event a jq expression reads, from jaq's parsed form.
//!
//! When every use of the event goes through constant object keys (`.a.b`,
//! `.["k"]`, `.a?`, `{ts, level}`), the reader can build just those fields
//! (`json::project`) instead of the whole event. Anything that may look at
//! more of a value than its keys (`.`, `keys`, `..`, `tostring`, an index that
//! is not a constant string, assignment…) reads that value whole; at the root
//! that means a full parse. The analysis is conservative: when in doubt, whole.

use crate::json::Fields;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::path::Part;

/// Filters that never look at their input.
const CONSTANTS: &[&str] = &[
    "true", "false", "null", "empty", "nan", "infinite", "now", "env", "halt",
];

/// The fields `code` reads of its input, or `None` when it reads it whole
/// (or the expression is beyond this analysis).
pub fn read_by(code: &str) -> Option<Fields> {
    // A term only: an expression with `import` or `include` is not one, so
    // it reads the event whole (a module's function may read any field).
    let term: Term<&str> = jaq_core::load::parse(code, |p| p.term())?;
    let mut fields = Fields::Keys(Vec::new());
    let mut a = Analysis {
        fields: &mut fields,
    };
    let out = a.term(&term, Some(Vec::new())).ok()?;
    a.whole(out);
    (fields != Fields::Whole).then_some(fields)
}

/// A path of constant keys from the event's root, or `None` for a value that
/// is not (known to be) a part of the event.
type Path = Option<Vec<Vec<u8>>>;

/// The analysis gave up: the caller parses in full.
struct Unsupported;

struct Analysis<'f> {
    fields: &'f mut Fields,
}

impl Analysis<'_> {
    /// Records that the value at `path` is used whole.
    fn whole(&mut self, path: Path) {
        if let Some(path) = path {
            self.fields.add(&path);
        }
    }

    /// Analyses `term` run on the value at `input`; returns the path its
    /// output is, if it is a part of the event (the caller decides how it is used).
    fn term(&mut self, term: &Term<&str>, input: Path) -> Result<Path, Unsupported> {
        Ok(match term {
            Term::Id => input,
            Term::Recurse => {
                self.whole(input);
                None
            }
            Term::Num(_) | Term::Var(_) | Term::Break(_) => None,
            Term::Str(format, parts) => {
                if format.is_some() {
                    // `@base64` alone formats its input.
                    self.whole(input.clone());
                }
                self.str_parts(parts, &input)?;
                None
            }
            Term::Arr(item) => {
                if let Some(item) = item {
                    let out = self.term(item, input)?;
                    self.whole(out);
                }
                None
            }
            Term::Obj(entries) => {
                for (key, value) in entries {
                    match (key, value) {
                        // `{$x}`
                        (Term::Var(_), None) => {}
                        // `{a}` and `{"a"}`: `.a`
                        (key, None) => {
                            let name = constant(key).ok_or(Unsupported)?;
                            self.whole(child(&input, name));
                        }
                        (key, Some(value)) => {
                            if constant(key).is_none() {
                                let out = self.term(key, input.clone())?;
                                self.whole(out);
                            }
                            let out = self.term(value, input.clone())?;
                            self.whole(out);
                        }
                    }
                }
                None
            }
            Term::Neg(t) => {
                let out = self.term(t, input)?;
                self.whole(out);
                None
            }
            Term::BinOp(l, op, r) => match op {
                BinaryOp::Pipe(None) => {
                    let mid = self.term(l, input)?;
                    self.term(r, mid)?
                }
                BinaryOp::Pipe(Some(_)) => {
                    // `l as $x | r`: $x may be used any way at all.
                    let bound = self.term(l, input.clone())?;
                    self.whole(bound);
                    self.term(r, input)?
                }
                BinaryOp::Comma
                | BinaryOp::Alt
                | BinaryOp::Or
                | BinaryOp::And
                | BinaryOp::Math(_)
                | BinaryOp::Cmp(_) => {
                    for t in [l, r] {
                        let out = self.term(t, input.clone())?;
                        self.whole(out);
                    }
                    None
                }
                // Assignments rebuild their input: it is needed whole.
                _ => return Err(Unsupported),
            },
            Term::Label(_, t) => {
                let out = self.term(t, input)?;
                self.whole(out);
                None
            }
            Term::Fold(_, source, _, args) => {
                let out = self.term(source, input.clone())?;
                self.whole(out);
                if let Some(init) = args.first() {
                    let out = self.term(init, input)?;
                    self.whole(out);
                }
                // The update terms run on the accumulator, not on the event.
                for t in &args[1.min(args.len())..] {
                    let out = self.term(t, None)?;
                    self.whole(out);
                }
                None
            }
            Term::TryCatch(body, catch) => {
                let out = self.term(body, input)?;
                self.whole(out);
                if let Some(catch) = catch {
                    let out = self.term(catch, None)?;
                    self.whole(out);
                }
                None
            }
            Term::IfThenElse(branches, otherwise) => {
                for (cond, then) in branches {
                    for t in [cond, then] {
                        let out = self.term(t, input.clone())?;
                        self.whole(out);
                    }
                }
                match otherwise {
                    Some(t) => {
                        let out = self.term(t, input)?;
                        self.whole(out);
                    }
                    // `if c then x end` yields its input otherwise.
                    None => self.whole(input),
                }
                None
            }
            // A definition may shadow `select` or a constant: not analysed.
            Term::Def(..) => return Err(Unsupported),
            Term::Call(name, args) => match (*name, &args[..]) {
                // `select(f)` passes its input on unchanged.
                ("select", [cond]) => {
                    let out = self.term(cond, input.clone())?;
                    self.whole(out);
                    input
                }
                (name, []) if CONSTANTS.contains(&name) => None,
                _ => {
                    // Any other filter may look at all of its input, and runs
                    // its arguments on it or on parts of it.
                    self.whole(input);
                    for arg in args {
                        self.term(arg, None)?;
                    }
                    None
                }
            },
            Term::Path(base, path) => {
                let mut at = self.term(base, input.clone())?;
                for (part, _optional) in &path.0 {
                    match part {
                        Part::Index(index) => match constant(index) {
                            Some(key) => at = child(&at, key),
                            None => {
                                // `.[f]`: f runs on the path's input.
                                let key = self.term(index, input.clone())?;
                                self.whole(key);
                                self.whole(at);
                                at = None;
                            }
                        },
                        Part::Range(from, to) => {
                            for t in [from, to].into_iter().flatten() {
                                let out = self.term(t, input.clone())?;
                                self.whole(out);
                            }
                            self.whole(at);
                            at = None;
                        }
                    }
                }
                at
            }
        })
    }

    fn str_parts(
        &mut self,
        parts: &[StrPart<&str, Term<&str>>],
        input: &Path,
    ) -> Result<(), Unsupported> {
        for part in parts {
            if let StrPart::Term(t) = part {
                let out = self.term(t, input.clone())?;
                self.whole(out);
            }
        }
        Ok(())
    }
}

/// The key of `.k`, `."k"` or `.["k"]`, when it is a constant string
/// (the text of any constant string term).
pub(crate) fn constant(term: &Term<&str>) -> Option<Vec<u8>> {
    let Term::Str(None, parts) = term else {
        return None;
    };
    let mut key = String::new();
    for part in parts {
        match part {
            StrPart::Str(s) => key.push_str(s),
            StrPart::Char(c) => key.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(key.into_bytes())
}

fn child(path: &Path, key: Vec<u8>) -> Path {
    let mut path = path.clone()?;
    path.push(key);
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(code: &str) -> Option<String> {
        fn show(f: &Fields, prefix: &str, out: &mut Vec<String>) {
            match f {
                Fields::Whole => out.push(prefix.to_string()),
                Fields::Keys(keys) => {
                    for (k, sub) in keys {
                        show(
                            sub,
                            &format!("{prefix}.{}", String::from_utf8_lossy(k)),
                            out,
                        );
                    }
                }
            }
        }
        read_by(code).map(|f| {
            let mut out = Vec::new();
            show(&f, "", &mut out);
            out.sort();
            out.join(" ")
        })
    }

    #[test]
    fn constant_paths_are_projected() {
        assert_eq!(
            fields(".data.amount > 100").as_deref(),
            Some(".data.amount")
        );
        assert_eq!(
            fields(r#".level == "error" and (.data.path | test("^/api"))"#).as_deref(),
            Some(".data.path .level")
        );
        assert_eq!(
            fields("{ts, level, service, path: .data.path}").as_deref(),
            Some(".data.path .level .service .ts")
        );
        assert_eq!(
            fields(r#".["a b"].c? // ."d""#).as_deref(),
            Some(".a b.c .d")
        );
        assert_eq!(fields(".a | .b | length").as_deref(), Some(".a.b"));
        assert_eq!(fields("select(.a > 1) | .b").as_deref(), Some(".a .b"));
        assert_eq!(fields(r#""\(.a) \(.b.c)""#).as_deref(), Some(".a .b.c"));
        assert_eq!(fields(".a[0]").as_deref(), Some(".a"));
        assert_eq!(fields(".a as $x | .b + $x").as_deref(), Some(".a .b"));
        assert_eq!(
            fields("if .a then .b else .c end").as_deref(),
            Some(".a .b .c")
        );
        assert_eq!(fields("true").as_deref(), Some(""));
    }

    #[test]
    fn whole_uses_fall_back_to_a_full_parse() {
        for code in [
            ".",
            "keys",
            "..",
            "tostring",
            "del(.a)",
            "to_entries",
            "paths",
            ".a = 1",
            ".is_high_value = (.data.amount > 100)",
            ".[.k]",
            ".[]",
            "if .a then 1 end",
            "@base64",
            ".a, .",
            "length",
            "def f: .a; f",
            "getpath([\"a\"])",
            "(",
        ] {
            assert_eq!(fields(code), None, "{code}");
        }
    }
}
