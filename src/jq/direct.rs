//! Direct evaluation: the common shapes of filter and map expressions (paths,
//! literals and `--arg`/`--argjson` variables, comparisons, `and`/`or`/`not`,
//! `//`, `test`, `startswith`/`endswith`/`contains`/`has`, pipes from paths,
//! object construction, `.k = EXPR`, `select`) run straight on the tokens of
//! the input line (`json::locate`), with no jaq value built and nothing
//! allocated per event.
//!
//! It is a shortcut, never a second semantics: an expression is taken only
//! when every part of it is understood here, and at run time any case whose
//! answer is not certain to equal jaq's (a type error, an escaped string to
//! compare, a big integer, an object with a repeated key to print…) returns
//! `Unsure`, and the worker runs that event through jaq as usual. What is
//! printed from the line is spelled as jaq spells it (`json::write_canonical`).
//! `tests/it/projection.rs` and the fuzz target compare both paths.

use crate::jq::fields::constant;
use crate::json::{self, Kind, Locate, Located, Token};
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::Cmp;
use jaq_core::path::Part;
use jaq_json::{Num, Val};
use regex_bites::bytes::{Regex, RegexBuilder};
use std::cmp::Ordering;

/// A stage chain evaluated directly: filters, then at most one map.
#[derive(Clone, Debug)]
pub struct Chain {
    pub stages: Vec<Stage>,
    /// The keys every stage reads, each with its slot.
    pub locate: Locate,
    pub slots: usize,
    /// Some stage prints the line itself (`.k = EXPR`): lines are checked
    /// for repeated keys, which a full parse would merge.
    pub check_keys: bool,
    /// After the filters, a keyed stage's expressions (a window's key, time
    /// and aggregate values), evaluated on the line the filters kept.
    pub keyed: Option<Keyed>,
}

/// The expressions of a keyed stage that direct evaluation takes: each
/// `--key`, the `--time`, and each `--agg`'s expression (`None`: `count`)
/// with whether its aggregate takes numbers (else it keeps values).
#[derive(Clone, Debug)]
pub struct Keyed {
    pub keys: Vec<Expr>,
    pub time: Option<Expr>,
    /// Without `time`: whether events take the clock's time (arrival time).
    pub clock: bool,
    pub values: Vec<Option<(Expr, bool)>>,
}

#[derive(Clone, Debug)]
pub enum Stage {
    Filter(Expr),
    Map(Expr),
}

/// An expression direct evaluation understands.
#[derive(Clone, Debug)]
pub enum Expr {
    /// `.a.b`: the slot of each key on the way.
    Path(Vec<usize>),
    /// `.`, the event whole: only as a keyed stage's value (a join's
    /// event, written as jaq writes it).
    Root,
    Lit(Lit),
    Cmp(Box<Expr>, Cmp, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `a // b`
    Alt(Box<Expr>, Box<Expr>),
    /// `EXPR | not`
    Not(Box<Expr>),
    /// `EXPR | test("re")`, `test("re"; "flags")`
    Test(Box<Expr>, Regex),
    /// `{k: EXPR, …}`: each key as jaq writes it, with its colon.
    Obj(Vec<(Vec<u8>, Expr)>),
    /// `.k = EXPR`: the key as jaq writes it, its slot, the value.
    Assign(Vec<u8>, usize, Box<Expr>),
    /// `select(EXPR)`, as a whole filter: the event, when EXPR is truthy.
    Select(Box<Expr>),
    /// `.a | EXPR` where EXPR's paths are made absolute: `.a` is evaluated
    /// first only for its errors.
    After(Box<Expr>, Box<Expr>),
    /// `EXPR | startswith(s)` and the like, with a constant argument.
    StrFn(Box<Expr>, StrFn, Lit),
    /// `PATH | has("k")`: the path's slots (none: the event itself), and
    /// the slot of the key below it.
    Has(Vec<usize>, usize),
}

impl Expr {
    /// Whether evaluating this starts by evaluating the path `slots` (or a
    /// path through it): then an `After` for that path would do it twice.
    fn looks_first_at(&self, slots: &[usize]) -> bool {
        match self {
            Expr::Path(p) => p.starts_with(slots),
            Expr::Has(p, _) => p == slots,
            Expr::Not(e) | Expr::Test(e, _) | Expr::StrFn(e, ..) => e.looks_first_at(slots),
            Expr::Cmp(l, ..) | Expr::And(l, _) | Expr::Or(l, _) | Expr::Alt(l, _) => {
                l.looks_first_at(slots)
            }
            _ => false,
        }
    }
}

/// String filters with a constant argument.
#[derive(Clone, Copy, Debug)]
pub enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// A constant in an expression: its value and how jaq writes it.
#[derive(Clone, Debug)]
pub struct Lit {
    value: Constant,
    text: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Constant {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
}

impl Constant {
    fn scalar(&self) -> Scalar<'_> {
        match self {
            Constant::Null => Scalar::Null,
            Constant::Bool(b) => Scalar::Bool(*b),
            Constant::Int(i) => Scalar::Int(*i),
            Constant::Float(f) => Scalar::Float(*f),
            Constant::Str(s) => Scalar::Str(s),
        }
    }
}

/// A value as far as comparisons need it.
#[derive(Clone, Copy, Debug)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// A number read as jaq reads a decimal: as a float.
    Float(f64),
    /// A string's bytes (no escapes).
    Str(&'a [u8]),
    /// An escaped string, an array or an object, known only by its `rank`:
    /// enough to compare it with a value of another type.
    Opaque(u8),
}

/// The value of an expression on one line.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Null,
    Bool(bool),
    /// A value in the line.
    Token(Token),
    Lit(&'a Lit),
}

/// Compiles a chain of `(is_map, expr)` stages, with the `--arg` and
/// `--argjson` variables they may use, or `None` when some stage is beyond
/// direct evaluation (or a map is not last).
pub fn compile(stages: &[(bool, &str)], vars: &[(String, Val)]) -> Option<Chain> {
    if stages.is_empty() {
        return None;
    }
    compile_with(stages, vars, |_| Some(None))
}

/// Compiles filters followed by a keyed stage: `keys`, `time` (or, without
/// it, whether events take the clock's time: `clock`) and `values`
/// (one per aggregate: its expression, `None` for one without, and whether
/// it takes numbers) as written. `None` when any of them is beyond direct
/// evaluation.
pub fn compile_keyed(
    filters: &[&str],
    keys: &[&str],
    time: Option<&str>,
    clock: bool,
    values: &[(Option<&str>, bool)],
    vars: &[(String, Val)],
) -> Option<Chain> {
    let stages: Vec<(bool, &str)> = filters.iter().map(|f| (false, *f)).collect();
    compile_with(&stages, vars, |c| {
        let mut expr = |code: &str| {
            let term: Term<&str> = jaq_core::load::parse(code, |p| p.term())?;
            c.expr(&term)
        };
        let keys = keys.iter().map(|k| expr(k)).collect::<Option<Vec<_>>>()?;
        let time = match time {
            Some(t) => Some(expr(t)?),
            None => None,
        };
        let values = values
            .iter()
            .map(|(v, numbers)| match v {
                Some(".") => Some(Some((Expr::Root, *numbers))),
                Some(code) => expr(code).map(|e| Some((e, *numbers))),
                None => Some(None),
            })
            .collect::<Option<Vec<_>>>()?;
        // The event written whole: its objects must not repeat a key.
        if values.iter().any(|v| matches!(v, Some((Expr::Root, _)))) {
            c.check_keys = true;
        }
        Some(Some(Keyed {
            keys,
            time,
            clock,
            values,
        }))
    })
}

/// Compiles `stages`, then what `then` adds after them.
fn compile_with(
    stages: &[(bool, &str)],
    vars: &[(String, Val)],
    then: impl FnOnce(&mut Compiler) -> Option<Option<Keyed>>,
) -> Option<Chain> {
    let mut c = Compiler {
        locate: Locate::default(),
        slots: 0,
        check_keys: false,
        vars,
        base: Vec::new(),
    };
    let mut out = Vec::new();
    for (i, (is_map, code)) in stages.iter().enumerate() {
        // A term only: an expression with `import` or `include` goes to jaq.
        let term: Term<&str> = jaq_core::load::parse(code, |p| p.term())?;
        if *is_map {
            if i + 1 != stages.len() {
                return None;
            }
            out.push(Stage::Map(c.map(&term)?));
        } else {
            out.push(Stage::Filter(c.filter(&term)?));
        }
    }
    let keyed = then(&mut c)?;
    Some(Chain {
        stages: out,
        locate: c.locate,
        slots: c.slots,
        check_keys: c.check_keys,
        keyed,
    })
}

struct Compiler<'v> {
    locate: Locate,
    slots: usize,
    check_keys: bool,
    /// Variables by name, without `$`.
    vars: &'v [(String, Val)],
    /// The keys of the current input (`.`) from the event's root: empty at
    /// the top, `a` on the right of `.a | …`.
    base: Vec<Vec<u8>>,
}

impl Compiler<'_> {
    /// A filter's expression: anything `expr` takes, or `select(EXPR)` (as
    /// jq users write it), which keeps the event when EXPR is truthy.
    fn filter(&mut self, term: &Term<&str>) -> Option<Expr> {
        match term {
            Term::Call("select", args) if args.len() == 1 => {
                Some(Expr::Select(Box::new(self.expr(&args[0])?)))
            }
            _ => self.expr(term),
        }
    }

    /// A map's expression: anything `expr` takes, or `.k = EXPR`.
    fn map(&mut self, term: &Term<&str>) -> Option<Expr> {
        if let Term::BinOp(l, BinaryOp::Assign, r) = term {
            let path = self.path(l)?;
            let [key] = &path[..] else { return None };
            let slots = self.slots_of(std::slice::from_ref(key));
            let value = self.expr(r)?;
            self.check_keys = true;
            return Some(Expr::Assign(key_text(key), slots[0], Box::new(value)));
        }
        self.expr(term)
    }

    fn expr(&mut self, term: &Term<&str>) -> Option<Expr> {
        Some(match term {
            Term::Path(..) | Term::Id => {
                let keys = self.path(term)?;
                if keys.is_empty() {
                    // The event itself: printing it would need more care.
                    return None;
                }
                Expr::Path(self.slots_of(&keys))
            }
            Term::Num(n) => Expr::Lit(number(n, false)?),
            Term::Var(name) => {
                let name = name.strip_prefix('$')?;
                let mut bound = self.vars.iter().filter(|(n, _)| n == name);
                // A name given twice is left to jaq's rules.
                match (bound.next(), bound.next()) {
                    (Some((_, value)), None) => Expr::Lit(variable(value)?),
                    _ => return None,
                }
            }
            Term::Neg(t) => match &**t {
                Term::Num(n) => Expr::Lit(number(n, true)?),
                _ => return None,
            },
            Term::Str(None, _) => {
                let s = constant(term)?;
                let text = Val::from(String::from_utf8(s.clone()).ok()?)
                    .to_string()
                    .into_bytes();
                Expr::Lit(Lit {
                    value: Constant::Str(s),
                    text,
                })
            }
            // Filters of the current input.
            Term::Call("not" | "test" | "startswith" | "endswith" | "contains" | "has", _) => {
                let input = self.input();
                self.call(input, Some(self.base.clone()), term)?
            }
            Term::Call(name, args) if args.is_empty() => Expr::Lit(match *name {
                "null" => Lit {
                    value: Constant::Null,
                    text: b"null".to_vec(),
                },
                "true" => Lit {
                    value: Constant::Bool(true),
                    text: b"true".to_vec(),
                },
                "false" => Lit {
                    value: Constant::Bool(false),
                    text: b"false".to_vec(),
                },
                _ => return None,
            }),
            Term::BinOp(l, op, r) => match op {
                BinaryOp::Cmp(cmp) => {
                    Expr::Cmp(Box::new(self.expr(l)?), *cmp, Box::new(self.expr(r)?))
                }
                BinaryOp::And => Expr::And(Box::new(self.expr(l)?), Box::new(self.expr(r)?)),
                BinaryOp::Or => Expr::Or(Box::new(self.expr(l)?), Box::new(self.expr(r)?)),
                BinaryOp::Alt => Expr::Alt(Box::new(self.expr(l)?), Box::new(self.expr(r)?)),
                BinaryOp::Pipe(None) => match self.path(l) {
                    // `.a | f`: f with `.a` as its input, its paths below `.a`.
                    Some(keys) => {
                        let outer = std::mem::replace(&mut self.base, keys);
                        let inner = self.expr(r);
                        let keys = std::mem::replace(&mut self.base, outer);
                        let inner = inner?;
                        if keys.is_empty() {
                            return Some(inner);
                        }
                        let first = self.slots_of(&keys);
                        if inner.looks_first_at(&first) {
                            inner
                        } else {
                            // `.a` is still looked at first: it may fail.
                            Expr::After(Box::new(Expr::Path(first)), Box::new(inner))
                        }
                    }
                    // A computed input: only filters of it.
                    None => {
                        let input = self.expr(l)?;
                        self.calls(input, r)?
                    }
                },
                _ => return None,
            },
            Term::Obj(entries) => {
                let mut fields: Vec<(Vec<u8>, Expr)> = Vec::new();
                for (key, value) in entries {
                    let name = constant(key)?;
                    let value = match value {
                        None => Expr::Path(
                            self.slots_of(&[self.base.clone(), vec![name.clone()]].concat()),
                        ),
                        Some(v) => self.expr(v)?,
                    };
                    let text = key_text(&name);
                    // A repeated key keeps its first place and its last value:
                    // left to jaq.
                    if fields.iter().any(|(k, _)| *k == text) {
                        return None;
                    }
                    fields.push((text, value));
                }
                Expr::Obj(fields)
            }
            _ => return None,
        })
    }

    /// The current input as an expression (`None` for the event itself).
    fn input(&mut self) -> Option<Expr> {
        (!self.base.is_empty()).then(|| Expr::Path(self.slots_of(&self.base.clone())))
    }

    /// `input | term` for a computed input: `term` is filters of it (`not`,
    /// `test`, …) or a pipe of them.
    fn calls(&mut self, input: Expr, term: &Term<&str>) -> Option<Expr> {
        match term {
            Term::BinOp(l, BinaryOp::Pipe(None), r) => {
                let mid = self.calls(input, l)?;
                self.calls(mid, r)
            }
            _ => self.call(Some(input), None, term),
        }
    }

    /// `not`, `test(…)`, `startswith`, `endswith`, `contains` and `has` with
    /// constant arguments, run on `input` (`None`: the event itself), whose
    /// keys are `keys` when it is a path.
    fn call(
        &mut self,
        input: Option<Expr>,
        keys: Option<Vec<Vec<u8>>>,
        term: &Term<&str>,
    ) -> Option<Expr> {
        let Term::Call(name, args) = term else {
            return None;
        };
        let string_fn = |c: &mut Self, f: StrFn| -> Option<Expr> {
            let [arg] = &args[..] else { return None };
            match c.expr(arg)? {
                Expr::Lit(lit) => Some(Expr::StrFn(Box::new(input.clone()?), f, lit)),
                _ => None,
            }
        };
        Some(match *name {
            "not" if args.is_empty() => Expr::Not(Box::new(input?)),
            "test" if (1..=2).contains(&args.len()) => {
                Expr::Test(Box::new(input?), regex(&args[0], args.get(1))?)
            }
            "startswith" => string_fn(self, StrFn::StartsWith)?,
            "endswith" => string_fn(self, StrFn::EndsWith)?,
            "contains" => string_fn(self, StrFn::Contains)?,
            "has" if args.len() == 1 => {
                let keys = keys?;
                let key = constant(&args[0])?;
                let path = if keys.is_empty() {
                    Vec::new()
                } else {
                    self.slots_of(&keys)
                };
                let slot = *self.slots_of(&[keys, vec![key]].concat()).last()?;
                Expr::Has(path, slot)
            }
            _ => return None,
        })
    }

    /// The keys of `.a.b`, `."a"`, `.["a"]` (with or without `?`).
    fn path(&self, term: &Term<&str>) -> Option<Vec<Vec<u8>>> {
        match term {
            Term::Id => Some(self.base.clone()),
            Term::Path(base, path) => {
                let mut keys = self.path(base)?;
                for (part, _optional) in &path.0 {
                    match part {
                        Part::Index(index) => keys.push(constant(index)?),
                        Part::Range(..) => return None,
                    }
                }
                Some(keys)
            }
            _ => None,
        }
    }

    /// The slots of each key along `keys`, adding them to the tree.
    fn slots_of(&mut self, keys: &[Vec<u8>]) -> Vec<usize> {
        let mut node = &mut self.locate;
        let mut out = Vec::new();
        for key in keys {
            let at = match node.keys.iter().position(|(k, _, _)| k == key) {
                Some(at) => at,
                None => {
                    node.keys.push((key.clone(), self.slots, Locate::default()));
                    self.slots += 1;
                    node.keys.len() - 1
                }
            };
            out.push(node.keys[at].1);
            node = &mut node.keys[at].2;
        }
        out
    }
}

/// A number literal as jaq reads it (see `jaq_json::Num::from_str`): a
/// machine integer, or a decimal compared as a float. Big integers and
/// negated decimals are left to jaq.
fn number(text: &str, negate: bool) -> Option<Lit> {
    if let Ok(i) = text.parse::<i64>() {
        let i = if negate { i.checked_neg()? } else { i };
        return Some(Lit {
            value: Constant::Int(i),
            text: i.to_string().into_bytes(),
        });
    }
    if negate || text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let f: f64 = text.parse().ok()?;
    Some(Lit {
        value: Constant::Float(f),
        text: text.as_bytes().to_vec(),
    })
}

/// The value of a variable, when it is a scalar direct evaluation compares
/// as jaq does (`jaq_json::Num`'s kinds, but big integers).
fn variable(value: &Val) -> Option<Lit> {
    let constant = match value {
        Val::Null => Constant::Null,
        Val::Bool(b) => Constant::Bool(*b),
        Val::Num(Num::Int(i)) => Constant::Int(*i as i64),
        Val::Num(Num::Float(f)) => Constant::Float(*f),
        Val::Num(Num::Dec(d)) => Constant::Float(d.parse().ok()?),
        Val::TStr(s) => Constant::Str(s.to_vec()),
        _ => return None,
    };
    Some(Lit {
        value: constant,
        text: value.to_string().into_bytes(),
    })
}

/// `"key":` as jaq writes an object key.
fn key_text(key: &[u8]) -> Vec<u8> {
    let mut text = Val::from(String::from_utf8_lossy(key).into_owned())
        .to_string()
        .into_bytes();
    text.push(b':');
    text
}

/// The regular expression of `test(re)` or `test(re; flags)`, built as
/// jaq-std builds it (regex-bites, the same flags). Flags that change what
/// `test` answers beyond a match (`n`: ignore empty matches) are left to jaq.
fn regex(re: &Term<&str>, flags: Option<&Term<&str>>) -> Option<Regex> {
    let re = String::from_utf8(constant(re)?).ok()?;
    let flags = match flags {
        Some(f) => String::from_utf8(constant(f)?).ok()?,
        None => String::new(),
    };
    let mut builder = RegexBuilder::new(&re);
    for flag in flags.chars() {
        match flag {
            'g' => {}
            'i' => {
                builder.case_insensitive(true);
            }
            'm' => {
                builder.multi_line(true);
            }
            's' => {
                builder.dot_matches_new_line(true);
            }
            'l' => {
                builder.swap_greed(true);
            }
            'x' => {
                builder.ignore_whitespace(true);
            }
            'p' => {
                builder.multi_line(true).dot_matches_new_line(true);
            }
            _ => return None,
        }
    }
    builder.build().ok()
}

/// One line, located: what expressions run on.
pub struct Line<'a> {
    pub raw: &'a [u8],
    pub slots: &'a [Option<Token>],
    pub located: Located,
}

/// The answer was not certain: run this event through jaq.
pub struct Unsure;

type R<T> = Result<T, Unsure>;

impl Line<'_> {
    /// Whether a filter keeps the event.
    pub fn keeps(&self, e: &Expr) -> R<bool> {
        Ok(match e {
            // The event itself is kept unless it is false or null.
            Expr::Select(cond) => {
                truthy(self.eval(cond)?) && truthy(Value::Token(self.located.root))
            }
            e => truthy(self.eval(e)?),
        })
    }

    /// Writes what a map makes of the event as one output line. On `Unsure`,
    /// `out` is left as it was.
    pub fn write(&self, e: &Expr, raw_output: bool, out: &mut Vec<u8>) -> R<()> {
        let start = out.len();
        match self.emit(e, raw_output, out) {
            Ok(()) => {
                out.push(b'\n');
                Ok(())
            }
            Err(Unsure) => {
                out.truncate(start);
                Err(Unsure)
            }
        }
    }

    /// Writes the value of `e` as jaq writes it (for a keyed stage's key and
    /// values) and returns its kind; `Unsure` for an array or an object
    /// unless `compound` allows them.
    pub fn write_value(&self, e: &Expr, compound: bool, out: &mut Vec<u8>) -> R<Kind> {
        let v = self.eval(e)?;
        let kind = match v {
            Value::Null => Kind::Null,
            Value::Bool(true) => Kind::True,
            Value::Bool(false) => Kind::False,
            Value::Token(t) => t.kind,
            Value::Lit(l) => match l.value {
                Constant::Null => Kind::Null,
                Constant::Bool(true) => Kind::True,
                Constant::Bool(false) => Kind::False,
                Constant::Int(_) => Kind::Int,
                Constant::Float(_) => Kind::Dec,
                Constant::Str(_) => Kind::EscapedStr,
            },
        };
        if !compound && matches!(kind, Kind::Object | Kind::Array) {
            return Err(Unsure);
        }
        self.value(v, out)?;
        Ok(kind)
    }

    /// Writes the value of a map's expression, without the newline.
    fn emit(&self, e: &Expr, raw_output: bool, out: &mut Vec<u8>) -> R<()> {
        match e {
            Expr::After(first, then) => {
                self.eval(first)?;
                self.emit(then, raw_output, out)
            }
            Expr::Obj(fields) => self.object(fields, out),
            Expr::Assign(key, slot, value) => self.assign(key, *slot, value, out),
            e => {
                let v = self.eval(e)?;
                match (raw_output, v) {
                    (true, Value::Token(t)) if matches!(t.kind, Kind::Str | Kind::EscapedStr) => {
                        json::write_text(&self.raw[t.start + 1..t.end - 1], out);
                        Ok(())
                    }
                    (
                        true,
                        Value::Lit(Lit {
                            value: Constant::Str(s),
                            ..
                        }),
                    ) => {
                        out.extend_from_slice(s);
                        Ok(())
                    }
                    _ => self.value(v, out),
                }
            }
        }
    }

    fn object(&self, fields: &[(Vec<u8>, Expr)], out: &mut Vec<u8>) -> R<()> {
        out.push(b'{');
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            let v = self.eval(value)?;
            self.value(v, out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// `.k = EXPR` on an object line without repeated keys: the line with
    /// that key's value replaced, or the key added at the end, spelled as jaq
    /// spells it.
    fn assign(&self, key: &[u8], slot: usize, value: &Expr, out: &mut Vec<u8>) -> R<()> {
        let root = self.located.root;
        if !self.located.unique_keys || root.kind != Kind::Object {
            return Err(Unsure);
        }
        let v = self.eval(value)?;
        let json = |piece: &[u8], out: &mut Vec<u8>| {
            if self.located.canonical && no_del(piece) {
                out.extend_from_slice(piece);
            } else {
                json::write_canonical(piece, out);
            }
        };
        match self.slots[slot] {
            Some(old) => {
                json(&self.raw[root.start..old.start], out);
                self.value(v, out)?;
                json(&self.raw[old.end..root.end], out);
            }
            None => {
                let start = out.len();
                json(&self.raw[root.start..root.end - 1], out);
                if out.len() - start > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                self.value(v, out)?;
                out.push(b'}');
            }
        }
        Ok(())
    }

    /// Writes a value as jaq writes it; `Unsure` for an object or array that
    /// repeats a key (jaq would print it merged).
    fn value(&self, v: Value, out: &mut Vec<u8>) -> R<()> {
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Lit(l) => out.extend_from_slice(&l.text),
            Value::Token(t) => {
                let text = &self.raw[t.start..t.end];
                if matches!(t.kind, Kind::Object | Kind::Array)
                    && !(self.located.unique_keys || json::unique_keys(text))
                {
                    return Err(Unsure);
                }
                let as_is = match t.kind {
                    Kind::Null | Kind::True | Kind::False | Kind::Dec => true,
                    Kind::Int => text != b"-0",
                    Kind::Str => no_del(text),
                    Kind::EscapedStr | Kind::Object | Kind::Array => {
                        self.located.canonical && no_del(text)
                    }
                };
                if as_is {
                    out.extend_from_slice(text);
                } else {
                    json::write_canonical(text, out);
                }
            }
        }
        Ok(())
    }

    fn eval<'e>(&self, e: &'e Expr) -> R<Value<'e>> {
        Ok(match e {
            Expr::Path(slots) => self.path(slots)?,
            Expr::Root => Value::Token(self.located.root),
            Expr::Lit(l) => Value::Lit(l),
            Expr::Cmp(l, op, r) => {
                let (l, r) = (self.scalar(self.eval(l)?)?, self.scalar(self.eval(r)?)?);
                Value::Bool(match op {
                    Cmp::Eq => equal(l, r)?,
                    Cmp::Ne => !equal(l, r)?,
                    Cmp::Lt => order(l, r)? == Ordering::Less,
                    Cmp::Le => order(l, r)? != Ordering::Greater,
                    Cmp::Gt => order(l, r)? == Ordering::Greater,
                    Cmp::Ge => order(l, r)? != Ordering::Less,
                })
            }
            Expr::And(l, r) => Value::Bool(truthy(self.eval(l)?) && truthy(self.eval(r)?)),
            Expr::Or(l, r) => Value::Bool(truthy(self.eval(l)?) || truthy(self.eval(r)?)),
            Expr::Alt(l, r) => match self.eval(l)? {
                v if truthy(v) => v,
                _ => self.eval(r)?,
            },
            Expr::Not(e) => Value::Bool(!truthy(self.eval(e)?)),
            Expr::Test(e, re) => match self.scalar(self.eval(e)?)? {
                Scalar::Str(s) => Value::Bool(re.is_match(s)),
                // jaq fails on anything but a string.
                _ => return Err(Unsure),
            },
            Expr::StrFn(e, f, arg) => {
                let (v, arg) = (self.scalar(self.eval(e)?)?, arg.value.scalar());
                Value::Bool(match (f, v, arg) {
                    (StrFn::StartsWith, Scalar::Str(s), Scalar::Str(a)) => s.starts_with(a),
                    (StrFn::EndsWith, Scalar::Str(s), Scalar::Str(a)) => s.ends_with(a),
                    (StrFn::Contains, Scalar::Str(s), Scalar::Str(a)) => {
                        memchr::memmem::find(s, a).is_some()
                    }
                    // jaq-json's `contains` on other values is equality.
                    (StrFn::Contains, v, a) if !matches!(v, Scalar::Opaque(_)) => equal(v, a)?,
                    // Not a string: jaq fails (or compares arrays and objects).
                    _ => return Err(Unsure),
                })
            }
            Expr::Has(path, slot) => {
                let object = match path.is_empty() {
                    true => self.located.root.kind,
                    false => match self.path(path)? {
                        Value::Token(t) => t.kind,
                        _ => return Err(Unsure),
                    },
                };
                if object != Kind::Object {
                    return Err(Unsure);
                }
                Value::Bool(self.slots[*slot].is_some())
            }
            Expr::After(first, then) => {
                self.eval(first)?;
                self.eval(then)?
            }
            Expr::Obj(_) | Expr::Assign(..) | Expr::Select(_) => return Err(Unsure),
        })
    }

    /// `.a.b…`: null through missing keys and nulls; a type error (indexing
    /// a non-object) is left to jaq.
    fn path(&self, slots: &[usize]) -> R<Value<'static>> {
        match self.located.root.kind {
            Kind::Object => {}
            Kind::Null => return Ok(Value::Null),
            _ => return Err(Unsure),
        }
        let (last, on_the_way) = slots.split_last().expect("a path has keys");
        for slot in on_the_way {
            match self.slots[*slot] {
                None => return Ok(Value::Null),
                Some(t) if t.kind == Kind::Object => {}
                Some(t) if t.kind == Kind::Null => return Ok(Value::Null),
                Some(_) => return Err(Unsure),
            }
        }
        Ok(match self.slots[*last] {
            None => Value::Null,
            Some(t) => Value::Token(t),
        })
    }

    fn scalar<'v>(&'v self, v: Value<'v>) -> R<Scalar<'v>> {
        Ok(match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(b),
            Value::Lit(l) => l.value.scalar(),
            Value::Token(t) => {
                let text = &self.raw[t.start..t.end];
                match t.kind {
                    Kind::Null => Scalar::Null,
                    Kind::True => Scalar::Bool(true),
                    Kind::False => Scalar::Bool(false),
                    // Beyond a machine integer jaq uses big integers.
                    Kind::Int => Scalar::Int(parse(text)?),
                    Kind::Dec => Scalar::Float(parse(text)?),
                    Kind::Str => Scalar::Str(&text[1..text.len() - 1]),
                    Kind::EscapedStr => Scalar::Opaque(3),
                    Kind::Array => Scalar::Opaque(4),
                    Kind::Object => Scalar::Opaque(5),
                }
            }
        })
    }
}

/// No DEL character in `json`: jaq writes it as `\u007f`. (Outside strings
/// it would not be valid JSON.)
fn no_del(json: &[u8]) -> bool {
    memchr::memchr(0x7f, json).is_none()
}

fn parse<T: std::str::FromStr>(text: &[u8]) -> R<T> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(Unsure)
}

fn truthy(v: Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Token(t) => !matches!(t.kind, Kind::Null | Kind::False),
        Value::Lit(l) => !matches!(l.value, Constant::Null | Constant::Bool(false)),
        Value::Bool(true) => true,
    }
}

/// jq's order of types: null < booleans < numbers < strings < arrays < objects.
fn rank(s: Scalar) -> u8 {
    match s {
        Scalar::Null => 0,
        Scalar::Bool(_) => 1,
        Scalar::Int(_) | Scalar::Float(_) => 2,
        Scalar::Str(_) => 3,
        Scalar::Opaque(rank) => rank,
    }
}

/// jaq-json's `Ord for Val` and `Ord for Num` on these values; `Unsure` for
/// two opaque values of one type.
fn order(l: Scalar, r: Scalar) -> R<Ordering> {
    Ok(match (l, r) {
        (Scalar::Bool(a), Scalar::Bool(b)) => a.cmp(&b),
        (Scalar::Int(a), Scalar::Int(b)) => a.cmp(&b),
        (Scalar::Int(a), Scalar::Float(b)) => float_cmp(a as f64, b),
        (Scalar::Float(a), Scalar::Int(b)) => float_cmp(a, b as f64),
        (Scalar::Float(a), Scalar::Float(b)) => float_cmp(a, b),
        (Scalar::Str(a), Scalar::Str(b)) => a.cmp(b),
        (l, r) if rank(l) != rank(r) => rank(l).cmp(&rank(r)),
        (Scalar::Null, Scalar::Null) => Ordering::Equal,
        _ => return Err(Unsure),
    })
}

/// jaq-json's `PartialEq for Val` and `Num`: values of different types
/// differ; an integer equals only a finite float.
fn equal(l: Scalar, r: Scalar) -> R<bool> {
    match (l, r) {
        (Scalar::Int(i), Scalar::Float(f)) | (Scalar::Float(f), Scalar::Int(i)) => {
            Ok(f.is_finite() && float_cmp(i as f64, f) == Ordering::Equal)
        }
        (l, r) if rank(l) != rank(r) => Ok(false),
        (l, r) => Ok(order(l, r)? == Ordering::Equal),
    }
}

/// jaq-json's float order: zeros equal, NaN below everything.
fn float_cmp(l: f64, r: f64) -> Ordering {
    if l == 0. && r == 0. {
        Ordering::Equal
    } else if l.is_nan() {
        Ordering::Less
    } else if r.is_nan() {
        Ordering::Greater
    } else {
        l.total_cmp(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(code: &str, line: &str) -> Option<bool> {
        let vars = [
            ("lvl".to_string(), Val::from("x".to_string())),
            ("n".to_string(), Val::Num(Num::Int(100))),
        ];
        let chain = compile(&[(false, code)], &vars)?;
        let mut slots = vec![None; chain.slots];
        let located = crate::json::locate(line.as_bytes(), &chain.locate, &mut slots, false)
            .expect("valid line");
        let line = Line {
            raw: line.as_bytes(),
            slots: &slots,
            located,
        };
        let Stage::Filter(e) = &chain.stages[0] else {
            unreachable!()
        };
        line.keeps(e).ok()
    }

    #[test]
    fn compares_as_jaq_does() {
        let l = r#"{"a":{"n":150,"f":1.5,"z":-0.0,"s":"x"},"b":null,"e":"\u0041"}"#;
        assert_eq!(filter(".a.n > 100", l), Some(true));
        assert_eq!(filter(".a.f == 1.5", l), Some(true));
        assert_eq!(filter(".a.z == 0", l), Some(true));
        assert_eq!(filter(".a.s > 1", l), Some(true));
        assert_eq!(filter(".a.missing < 1", l), Some(true));
        assert_eq!(filter(".b.c == null", l), Some(true));
        assert_eq!(filter(r#".a.s | test("X"; "i")"#, l), Some(true));
        assert_eq!(filter(r#".a.s | test("y") | not"#, l), Some(true));
        assert_eq!(filter(".a.s == $lvl and .a.n > $n", l), Some(true));
        assert_eq!(filter(r#"(.b // .a.s) == "x""#, l), Some(true));
        assert_eq!(filter("select(.a.n > 100)", l), Some(true));
        assert_eq!(filter("select(.a.n > 100)", "null"), Some(false));
        assert_eq!(
            filter(r#"(.a.s | startswith("x")) and (.a.s | endswith("x"))"#, l),
            Some(true)
        );
        assert_eq!(
            filter(
                r#"(.a.s | contains("")) and (.a.s | contains("y") | not)"#,
                l
            ),
            Some(true)
        );
        assert_eq!(filter(r#".a | .n | contains(150)"#, l), Some(true));
        assert_eq!(
            filter(r#"has("a") and (.a | has("z")) and (has("q") | not)"#, l),
            Some(true)
        );
        assert_eq!(filter(r#".a | has("z")"#, l), Some(true));
        // A pipe's right side runs below its input.
        assert_eq!(
            filter(r#".a.s | startswith("x") and endswith("x")"#, l),
            Some(true)
        );
        assert_eq!(
            filter(r#".a | .n > 100 and (.s | . == "x")"#, l),
            Some(true)
        );
        assert_eq!(
            filter(r#". | .a | has("n") and (.none | not)"#, l),
            Some(true)
        );
        assert_eq!(filter(".a.s | true", l), Some(true));
        // `.a.s.t` fails in jaq (a string indexed), even when unused.
        assert_eq!(filter(".a.s.t | true", l), None);
        assert_eq!(filter(r#".a.s | has("z")"#, l), None);
        assert_eq!(filter(r#".e | startswith("A")"#, l), None);
        // Objects, arrays and escaped strings compare with other types.
        assert_eq!(filter(".a != null and .a > \"z\"", l), Some(true));
        assert_eq!(filter(".e > 1", l), Some(true));
        // Left to jaq: an escaped string, indexing a string, test on a number.
        assert_eq!(filter(r#".e == "A""#, l), None);
        assert_eq!(filter(r#".a == .a"#, l), None);
        assert_eq!(filter(".a.s.t == 1", l), None);
        assert_eq!(filter(r#".a.n | test("1")"#, l), None);
    }

    #[test]
    fn takes_only_what_it_understands() {
        for code in [
            ".",
            ".a[0] > 1",
            "$x == 1",
            "$ENV.HOME == 1",
            ".a + 1 > 2",
            r#"test("a"; "n")"#,
            "def f: .a; f",
            "length > 1",
            ".a | length",
            "100000000000000000000 > .a",
        ] {
            assert!(compile(&[(false, code)], &[]).is_none(), "{code}");
        }
        assert!(compile(&[(true, "{a}"), (false, ".a")], &[]).is_none());
        assert!(compile(&[(true, "{a: 1, a: 2}")], &[]).is_none());
    }
}
