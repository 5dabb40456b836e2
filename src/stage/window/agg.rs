//! Aggregates for window stages: parses `--agg NAME=FUNC(EXPR)` and keeps the
//! incremental state of one aggregate for one window (or pane) and key.
//!
//! State stays small where the function allows it: counts, sums, extremes and
//! first/last are constant size, percentiles are a DDSketch (bounded bins, 1%
//! relative error). Two are not: `count_distinct` is exact and keeps one key
//! per distinct value, and `collect` keeps up to its LIMIT of values
//! ([`COLLECT_LIMIT`] unless `collect(EXPR; LIMIT)` says otherwise), noting
//! when it dropped some so the run can say so.
//!
//! Every state can be merged, and merging gives exactly what adding all the
//! values to one state would (panes merged in arrival order), so a sliding
//! window can be built from panes.

use crate::stage::extract::Input;
use base64::Engine as _;
use jaq_json::{Num, Rc, Val};
use serde_json::{Value as Json, json};
use sketches_ddsketch::{Config, DDSketch};
use std::collections::HashSet;
use std::fmt;

/// What an aggregate computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Func {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    CountDistinct,
    /// q in [0, 1]
    Percentile(f64),
    /// The most values kept.
    Collect(usize),
}

impl Func {
    /// Whether the aggregate computes with numbers only (sum, avg,
    /// percentiles): extracted values are then numbers, not JSON text.
    pub fn takes_numbers(&self) -> bool {
        matches!(self, Func::Sum | Func::Avg | Func::Percentile(_))
    }

    /// The function's name as written in `--agg` (used in messages);
    /// percentiles other than the p50/p90/p95/p99 shorthands are `percentile`.
    pub fn name(&self) -> &'static str {
        match self {
            Func::Count => "count",
            Func::Sum => "sum",
            Func::Avg => "avg",
            Func::Min => "min",
            Func::Max => "max",
            Func::First => "first",
            Func::Last => "last",
            Func::CountDistinct => "count_distinct",
            Func::Percentile(q) => SHORTHANDS
                .iter()
                .find(|(_, p)| p == q)
                .map_or("percentile", |(name, _)| name),
            Func::Collect(_) => "collect",
        }
    }
}

/// The percentile shorthands and their quantiles.
const SHORTHANDS: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)];

/// One `--agg NAME=FUNC(EXPR)` as written.
#[derive(Clone, Debug, PartialEq)]
pub struct AggSpec {
    pub name: String,
    pub func: Func,
    /// the jq expression; None for count
    pub expr: Option<String>,
    /// The `--agg` as written (for the notes that quote it).
    pub text: String,
}

const FUNCS: &str = "count, sum, avg, min, max, first, last, count_distinct, p50, p90, p95, p99, percentile(EXPR; Q), collect(EXPR; LIMIT)";

/// Parses `NAME=FUNC(EXPR)`. FUNC is one of `FUNCS`; `count` takes no EXPR
/// (`count` or `count()`), `percentile(EXPR; Q)` and `collect(EXPR; LIMIT)`
/// split at their last top-level `;` so EXPR may itself hold `;` inside
/// brackets or strings (`collect(EXPR)` keeps [`COLLECT_LIMIT`] values). EXPR
/// runs from the first `(` to its matching `)`, which must end the spec.
pub fn parse_agg(spec: &str) -> Result<AggSpec, String> {
    let fail = |msg: &str| format!("--agg '{spec}': {msg}");
    let form = || fail("expected NAME=FUNC(EXPR)");

    let (name, call) = spec.split_once('=').ok_or_else(form)?;
    let name = name.trim();
    // `sum(.a == 1)` splits at the `=` inside the call: it has no NAME.
    if name.is_empty() || name.contains('(') {
        return Err(form());
    }
    if !is_name(name) {
        return Err(fail(&format!(
            "NAME {name} must be letters, digits and _, not starting with a digit"
        )));
    }

    let call = call.trim();
    let (func, args) = match call.find('(') {
        None => (call, None),
        Some(open) => {
            let close = matching_close(&call[open..])
                .ok_or_else(|| fail("unbalanced brackets or quotes"))?
                + open;
            let after = call[close + 1..].trim();
            if !after.is_empty() {
                let func = call[..open].trim();
                return Err(fail(&format!("unexpected {after} after {func}(...)")));
            }
            (call[..open].trim(), Some(call[open + 1..close].trim()))
        }
    };
    if func.is_empty() {
        return Err(form());
    }
    let func = match func {
        "count" => Func::Count,
        "sum" => Func::Sum,
        "avg" => Func::Avg,
        "min" => Func::Min,
        "max" => Func::Max,
        "first" => Func::First,
        "last" => Func::Last,
        "count_distinct" => Func::CountDistinct,
        "percentile" => Func::Percentile(f64::NAN), // NaN until Q is read below
        "collect" => Func::Collect(COLLECT_LIMIT),
        _ => match SHORTHANDS.iter().find(|(name, _)| *name == func) {
            Some((_, q)) => Func::Percentile(*q),
            None => return Err(fail(&format!("unknown function {func} ({FUNCS})"))),
        },
    };
    let args = args.filter(|a| !a.is_empty());
    let spec_of = |func, expr: &str| AggSpec {
        name: name.to_string(),
        func,
        expr: Some(expr.to_string()),
        text: spec.to_string(),
    };

    match (func, args) {
        (Func::Count, None) => Ok(AggSpec {
            name: name.to_string(),
            func: Func::Count,
            expr: None,
            text: spec.to_string(),
        }),
        (Func::Count, Some(_)) => Err(fail("count takes no expression")),
        (Func::Percentile(q), args) if q.is_nan() => {
            let usage =
                || fail("percentile needs an expression and a quantile: percentile(EXPR; Q)");
            let args = args.ok_or_else(usage)?;
            let semi = last_top_level_semicolon(args).ok_or_else(usage)?;
            let expr = args[..semi].trim();
            if expr.is_empty() {
                return Err(usage());
            }
            let q = args[semi + 1..]
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))
                .ok_or_else(|| fail("Q must be a number from 0 to 1"))?;
            Ok(spec_of(Func::Percentile(q), expr))
        }
        (Func::Collect(_), Some(args)) => match last_top_level_semicolon(args) {
            None => Ok(spec_of(Func::Collect(COLLECT_LIMIT), args)),
            Some(semi) => {
                let expr = args[..semi].trim();
                if expr.is_empty() {
                    return Err(fail("collect needs an expression: collect(EXPR; LIMIT)"));
                }
                let limit = args[semi + 1..].trim();
                let limit = limit
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| limit.parse::<usize>().ok())
                    .flatten()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        fail(&format!(
                            "LIMIT must be a positive integer, as in collect(EXPR; {COLLECT_LIMIT})"
                        ))
                    })?;
                Ok(spec_of(Func::Collect(limit), expr))
            }
        },
        (func, None) => Err(fail(&format!("{} needs an expression", func.name()))),
        (func, Some(expr)) => Ok(spec_of(func, expr)),
    }
}

/// Letters, digits and `_`, not starting with a digit.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The chars of a jq expression that are at the top level: outside (), [],
/// {}, strings and string interpolations `"\(...)"`; brackets that open from
/// or close back to the top level count as top level. None when brackets or
/// quotes don't balance. (Comments `#` are not recognised: a flag is one line.)
fn top_level(s: &str) -> Option<Vec<(usize, char)>> {
    // The closer each open level waits for; `"` marks a string.
    let mut stack: Vec<char> = Vec::new();
    let mut top = Vec::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        let was_top = stack.is_empty();
        if stack.last() == Some(&'"') {
            match c {
                '"' => {
                    stack.pop();
                }
                // `\(` opens an interpolation (code up to its `)`); any other
                // escape just hides the next char, e.g. `\"`.
                '\\' => {
                    if let Some((_, '(')) = chars.next() {
                        stack.push(')');
                    }
                }
                _ => {}
            }
        } else {
            match c {
                '(' => stack.push(')'),
                '[' => stack.push(']'),
                '{' => stack.push('}'),
                '"' => stack.push('"'),
                ')' | ']' | '}' if stack.last() != Some(&c) => return None,
                ')' | ']' | '}' => {
                    stack.pop();
                }
                _ => {}
            }
        }
        if was_top || stack.is_empty() {
            top.push((i, c));
        }
    }
    stack.is_empty().then_some(top)
}

/// Where the `)` matching the `(` that starts `s` is.
fn matching_close(s: &str) -> Option<usize> {
    top_level(s)?
        .into_iter()
        .find(|&(_, c)| c == ')')
        .map(|(i, _)| i)
}

/// Where the last `;` outside brackets and strings is.
fn last_top_level_semicolon(s: &str) -> Option<usize> {
    top_level(s)?
        .into_iter()
        .rev()
        .find(|&(_, c)| c == ';')
        .map(|(i, _)| i)
}

/// Largest number of values `collect(EXPR)` keeps per window and key; later
/// values are dropped (documented bound; `collect(EXPR; LIMIT)` sets another).
pub const COLLECT_LIMIT: usize = 10_000;

/// The state of one aggregate for one window (or pane) and key.
#[derive(Clone)]
pub struct Acc {
    func: Func,
    state: State,
}

#[derive(Clone)]
enum State {
    Count(u64),
    /// sum and avg
    Total(Total),
    /// min and max: the extreme so far
    Extreme(Option<Val>),
    /// first and last: the value with the extreme (time, seq) so far
    Stamped(Option<(i64, u64, Val)>),
    /// count_distinct: one key per distinct value seen, so memory grows with
    /// the number of distinct values (the price of an exact count)
    Distinct(HashSet<Box<[u8]>>),
    Sketch(Quantiles),
    /// Values with their arrival sequence, so merged panes keep arrival order,
    /// and whether values beyond the limit were dropped.
    Collect(Vec<(u64, Val)>, bool),
}

impl Acc {
    pub fn new(func: &Func) -> Acc {
        let state = match func {
            Func::Count => State::Count(0),
            Func::Sum | Func::Avg => State::Total(Total::default()),
            Func::Min | Func::Max => State::Extreme(None),
            Func::First | Func::Last => State::Stamped(None),
            Func::CountDistinct => State::Distinct(HashSet::new()),
            Func::Percentile(_) => State::Sketch(Quantiles::Empty),
            Func::Collect(_) => State::Collect(Vec::new(), false),
        };
        Acc {
            func: func.clone(),
            state,
        }
    }

    /// Counts one event (only Count uses it; others ignore it).
    pub fn add_event(&mut self) {
        if let State::Count(n) = &mut self.state {
            *n += 1;
        }
    }

    /// Whether `add` would take `value`, without changing anything: lets a
    /// window check an event's values before any of its state changes.
    pub fn check(func: &Func, value: &Val) -> Result<(), String> {
        let not_a_number = || format!("{}: {} is not a number", func.name(), show(value));
        match func {
            Func::Sum | Func::Avg | Func::Percentile(_) => {
                let x = match value {
                    Val::Num(n) => to_f64(n).ok_or_else(not_a_number)?,
                    _ => return Err(not_a_number()),
                };
                if matches!(func, Func::Percentile(_)) && !x.is_finite() {
                    return Err(format!(
                        "{}: {} is not a finite number",
                        func.name(),
                        show(value)
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Adds one value of EXPR for an event with event time `time` (ms) and
    /// arrival sequence `seq` (for first/last ties). The caller skips null
    /// values. Errors for sum/avg/percentiles on a non-number, and for
    /// percentiles on a non-finite number (a sketch can't place it).
    pub fn add(&mut self, value: &Val, time: i64, seq: u64) -> Result<(), String> {
        // One place decides what each aggregate accepts.
        Self::check(&self.func, value)?;
        let number = || match value {
            Val::Num(n) => to_f64(n).expect("checked"),
            _ => unreachable!("checked: a number"),
        };
        match &mut self.state {
            State::Count(_) => {}
            State::Total(total) => {
                if let Val::Num(n) = value {
                    total.add(n).expect("checked");
                }
            }
            State::Extreme(best) => {
                // Strictly better only: among equal values the earliest stays.
                let better = match best {
                    None => true,
                    Some(b) if self.func == Func::Min => *value < *b,
                    Some(b) => *value > *b,
                };
                if better {
                    *best = Some(value.clone());
                }
            }
            State::Stamped(best) => {
                let better = match best {
                    None => true,
                    Some((t, s, _)) if self.func == Func::First => (time, seq) < (*t, *s),
                    Some((t, s, _)) => (time, seq) > (*t, *s),
                };
                if better {
                    *best = Some((time, seq, value.clone()));
                }
            }
            State::Distinct(seen) => {
                seen.insert(distinct_key(value));
            }
            State::Sketch(sketch) => sketch.add(number()),
            State::Collect(values, dropped) => {
                let Func::Collect(limit) = self.func else {
                    unreachable!("collect state for {:?}", self.func)
                };
                if values.len() < limit {
                    values.push((seq, value.clone()));
                } else {
                    *dropped = true;
                }
            }
        }
        Ok(())
    }

    /// Merges `other` (same func) into self: used to combine panes of a
    /// sliding window. Gives exactly the result of adding all values to one
    /// Acc, when `other` holds the later values (min/max ties, collect order).
    pub fn merge(&mut self, other: &Acc) {
        debug_assert_eq!(self.func, other.func, "merging different aggregates");
        match (&mut self.state, &other.state) {
            (State::Count(a), State::Count(b)) => *a += b,
            (State::Total(a), State::Total(b)) => a.merge(b),
            (State::Extreme(a), State::Extreme(Some(b))) => {
                let better = match a {
                    None => true,
                    Some(a) if self.func == Func::Min => *b < *a,
                    Some(a) => *b > *a,
                };
                if better {
                    *a = Some(b.clone());
                }
            }
            (State::Stamped(a), State::Stamped(Some((bt, bs, bv)))) => {
                let better = match a {
                    None => true,
                    Some((t, s, _)) if self.func == Func::First => (*bt, *bs) < (*t, *s),
                    Some((t, s, _)) => (*bt, *bs) > (*t, *s),
                };
                if better {
                    *a = Some((*bt, *bs, bv.clone()));
                }
            }
            (State::Distinct(a), State::Distinct(b)) => a.extend(b.iter().cloned()),
            (State::Sketch(a), State::Sketch(b)) => a.merge(b),
            (State::Collect(a, a_dropped), State::Collect(b, b_dropped)) => {
                // Panes merge in time order, not arrival order: sort back,
                // and keep the first LIMIT to arrive.
                let Func::Collect(limit) = self.func else {
                    unreachable!("collect state for {:?}", self.func)
                };
                a.extend(b.iter().cloned());
                a.sort_by_key(|(seq, _)| *seq);
                *a_dropped |= *b_dropped || a.len() > limit;
                a.truncate(limit);
            }
            // `other` is empty (Extreme/Stamped None): nothing to merge.
            _ => {}
        }
    }

    /// The aggregate's value: see [`Func`] and the `--agg` documentation.
    /// count and count_distinct are integers; sum is an integer while every
    /// value was an integer and the total fits, else a float (0 with no
    /// values); avg and percentiles are floats (null with no values);
    /// min/max/first/last are a value (null with no values); collect is an
    /// array in arrival order.
    pub fn result(&self) -> Val {
        let int = |n: usize| Val::Num(Num::Int(isize::try_from(n).unwrap_or(isize::MAX)));
        match &self.state {
            State::Count(n) => int(usize::try_from(*n).unwrap_or(usize::MAX)),
            State::Total(t) if self.func == Func::Sum => match isize::try_from(t.ints) {
                Ok(i) if !t.floaty => Val::Num(Num::Int(i)),
                _ => Val::Num(Num::Float(t.value())),
            },
            State::Total(t) => match t.n {
                0 => Val::Null,
                n => Val::Num(Num::Float(t.value() / n as f64)),
            },
            State::Extreme(v) => v.clone().unwrap_or(Val::Null),
            State::Stamped(v) => v.as_ref().map_or(Val::Null, |(_, _, v)| v.clone()),
            State::Distinct(seen) => int(seen.len()),
            State::Sketch(sketch) => {
                let q = match self.func {
                    Func::Percentile(q) => q,
                    _ => unreachable!("a sketch is only made for a percentile"),
                };
                match sketch.quantile(q) {
                    Some(x) => Val::Num(Num::Float(x)),
                    // No values, or a q outside [0, 1] built by hand.
                    None => Val::Null,
                }
            }
            State::Collect(values, _) => {
                Val::Arr(Rc::new(values.iter().map(|(_, v)| v.clone()).collect()))
            }
        }
    }

    /// Adds one extracted value (see `Func::takes_numbers`): numbers go
    /// straight into sums and sketches, JSON text is read back into a value
    /// for the aggregates that keep values.
    pub fn add_input(&mut self, input: Input, time: i64, seq: u64) {
        match (&mut self.state, input) {
            (State::Total(total), Input::Int(i)) => total.add_int(i),
            (State::Total(total), Input::Float(f)) => total.add_f64(f),
            (State::Sketch(sketch), Input::Float(f)) => sketch.add(f),
            (State::Sketch(sketch), Input::Int(i)) => sketch.add(i as f64),
            (_, Input::Json(text)) => {
                // Written by evq's writer from a value it checked.
                if let Ok(v) = crate::json::parse(text) {
                    let _ = self.add(&v, time, seq);
                }
            }
            (_, Input::Int(i)) => {
                let _ = self.add(&Val::Num(Num::Int(i as isize)), time, seq);
            }
            (_, Input::Float(f)) => {
                let _ = self.add(&Val::Num(Num::Float(f)), time, seq);
            }
        }
    }

    /// The state as the checkpoint keeps it (JSON; see `load`).
    pub fn save(&self) -> Json {
        let text = |v: &Val| {
            let mut out = Vec::new();
            crate::json::write_compact(&mut out, v);
            Json::String(String::from_utf8_lossy(&out).into_owned())
        };
        match &self.state {
            State::Count(n) => json!(n),
            // [n, ints, floaty, partials, special]: the exact running sum.
            State::Total(t) => json!([
                t.n,
                t.ints.to_string(),
                t.floaty,
                t.all_partials(),
                t.special.to_string()
            ]),
            State::Extreme(v) => v.as_ref().map_or(Json::Null, text),
            State::Stamped(v) => v
                .as_ref()
                .map_or(Json::Null, |(t, s, v)| json!([t, s, text(v)])),
            State::Distinct(seen) => {
                let mut keys: Vec<String> = seen
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect();
                keys.sort();
                json!(keys)
            }
            State::Sketch(Quantiles::Empty) => Json::Null,
            State::Sketch(Quantiles::One(x)) => json!({ "one": x }),
            State::Sketch(Quantiles::Few(values)) => json!({ "few": values }),
            State::Sketch(Quantiles::Sketch(sketch)) => Json::String(
                base64::engine::general_purpose::STANDARD.encode(sketch.to_java_bytes()),
            ),
            State::Collect(values, dropped) => json!({
                "values": values.iter().map(|(seq, v)| json!([seq, text(v)])).collect::<Vec<_>>(),
                "dropped": dropped,
            }),
        }
    }

    /// The state `save` wrote, for `func`; `None` when it is not one.
    pub fn load(func: &Func, saved: &Json) -> Option<Acc> {
        let value = |j: &Json| crate::json::parse(j.as_str()?.as_bytes()).ok();
        let mut acc = Acc::new(func);
        acc.state = match (&acc.state, saved) {
            (State::Count(_), n) => State::Count(n.as_u64()?),
            (State::Total(_), t) => {
                let [n, ints, floaty, partials, special] = t.as_array()?.as_slice() else {
                    return None;
                };
                State::Total(Total {
                    n: n.as_u64()?,
                    ints: ints.as_str()?.parse().ok()?,
                    floaty: floaty.as_bool()?,
                    fixed: 0,
                    partials: partials
                        .as_array()?
                        .iter()
                        .map(Json::as_f64)
                        .collect::<Option<_>>()?,
                    special: special.as_str()?.parse().ok()?,
                })
            }
            (State::Extreme(_), Json::Null) | (State::Stamped(_), Json::Null) => acc.state,
            (State::Extreme(_), v) => State::Extreme(Some(value(v)?)),
            (State::Stamped(_), v) => {
                let [t, s, v] = v.as_array()?.as_slice() else {
                    return None;
                };
                State::Stamped(Some((t.as_i64()?, s.as_u64()?, value(v)?)))
            }
            (State::Distinct(_), keys) => State::Distinct(
                keys.as_array()?
                    .iter()
                    .map(|k| Some(k.as_str()?.as_bytes().into()))
                    .collect::<Option<_>>()?,
            ),
            (State::Sketch(_), Json::Null) => acc.state,
            (State::Sketch(_), Json::Object(saved)) => State::Sketch(match saved.get("few") {
                Some(few) => {
                    let values: Vec<f64> = few
                        .as_array()?
                        .iter()
                        .map(Json::as_f64)
                        .collect::<Option<_>>()?;
                    if !(2..=FEW).contains(&values.len()) {
                        return None;
                    }
                    Quantiles::Few(values)
                }
                None => Quantiles::One(saved.get("one")?.as_f64()?),
            }),
            (State::Sketch(_), bytes) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(bytes.as_str()?)
                    .ok()?;
                let sketch = DDSketch::from_java_bytes(&bytes).ok()?;
                State::Sketch(Quantiles::Sketch(Box::new(sketch)))
            }
            (State::Collect(..), c) => State::Collect(
                c["values"]
                    .as_array()?
                    .iter()
                    .map(|sv| {
                        let [seq, v] = sv.as_array()?.as_slice() else {
                            return None;
                        };
                        Some((seq.as_u64()?, value(v)?))
                    })
                    .collect::<Option<_>>()?,
                c["dropped"].as_bool()?,
            ),
        };
        Some(acc)
    }

    /// An estimate of the memory this state holds beyond its own size.
    pub fn heap_bytes(&self) -> usize {
        // A value kept: its text's length is a fair measure of its tree.
        let value = |v: &Val| 16 + v.to_string().len();
        match &self.state {
            State::Count(_) => 0,
            State::Total(t) => t.partials.capacity() * 8,
            State::Extreme(v) => v.as_ref().map_or(0, value),
            State::Stamped(v) => v.as_ref().map_or(0, |(_, _, v)| value(v)),
            State::Distinct(seen) => {
                seen.iter().map(|k| k.len() + 24).sum::<usize>() + seen.capacity() * 8
            }
            State::Sketch(Quantiles::Sketch(sketch)) => {
                std::mem::size_of::<DDSketch>() + sketch.length() * 8 + 64
            }
            State::Sketch(Quantiles::Few(values)) => values.capacity() * 8,
            State::Sketch(_) => 0,
            State::Collect(values, _) => values.iter().map(|(_, v)| 8 + value(v)).sum(),
        }
    }

    /// Writes `result()` as compact JSON, exactly as evq's writer would,
    /// without building the value for the numeric aggregates.
    pub fn write_result(&self, out: &mut Vec<u8>) {
        let float = |out: &mut Vec<u8>, x: f64| {
            if x.is_finite() {
                out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
            } else {
                crate::json::write_compact(out, &Val::Num(Num::Float(x)));
            }
        };
        match &self.state {
            State::Count(n) if isize::try_from(*n).is_ok() => write_u64(out, *n),
            State::Total(t) if self.func == Func::Sum => match isize::try_from(t.ints) {
                Ok(i) if !t.floaty => {
                    if i < 0 {
                        out.push(b'-');
                    }
                    write_u64(out, i.unsigned_abs() as u64);
                }
                _ => float(out, t.value()),
            },
            State::Total(t) if t.n > 0 => float(out, t.value() / t.n as f64),
            State::Sketch(sketch) => {
                let Func::Percentile(q) = self.func else {
                    unreachable!("a sketch is only made for a percentile")
                };
                match sketch.quantile(q) {
                    Some(x) => float(out, x),
                    None => out.extend_from_slice(b"null"),
                }
            }
            _ => crate::json::write_compact(out, &self.result()),
        }
    }

    /// Whether values were dropped: `collect` was given more than its LIMIT.
    pub fn truncated(&self) -> bool {
        matches!(self.state, State::Collect(_, true))
    }
}

impl fmt::Debug for Acc {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Acc")
            .field("func", &self.func)
            .field("result", &self.result().to_string())
            .finish()
    }
}

/// The decimal digits of `n`.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A value in an error message, shortened so a huge object can't flood it.
fn show(v: &Val) -> String {
    const MAX: usize = 60;
    let s = v.to_string();
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// count_distinct's key for a value: its compact serialisation with object
/// keys sorted, so values are distinct exactly when they print differently.
/// `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same value, but 1 and 1.0 are
/// two values (jq's `==` says they are equal; their text differs), and so
/// are `12.50` and `12.5` (a decimal keeps its text as written).
fn distinct_key(v: &Val) -> Box<[u8]> {
    let pp = jaq_json::write::Pp {
        sort_keys: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    jaq_json::write::write(&mut out, &pp, 0, v).expect("writing to a Vec can't fail");
    out.into_boxed_slice()
}

/// A number as f64; None for a decimal whose text doesn't parse.
fn to_f64(n: &Num) -> Option<f64> {
    match n {
        Num::Int(i) => Some(*i as f64),
        // Through its digits: saturates to ±infinity beyond f64's range.
        Num::BigInt(b) => b.to_string().parse().ok(),
        Num::Float(f) => Some(*f),
        Num::Dec(s) => s.parse().ok(),
    }
}

/// Values a percentile keeps as they are before it makes a sketch: a
/// sketch's bins span its values' keys (latencies from 1 ms to 1 s take 350
/// bins, 2.8 KB), where 16 values take 128 bytes.
const FEW: usize = 16;

/// A percentile's state: no value, a few values, or a DDSketch. In a busy
/// key space most window × key states hold one value, and a group-by over
/// many keys holds a few per key; those need no sketch, and answer exactly
/// as a sketch of those values would (`few_quantile`).
#[derive(Clone)]
enum Quantiles {
    Empty,
    One(f64),
    /// 2 to `FEW` values, in arrival order.
    Few(Vec<f64>),
    Sketch(Box<DDSketch>),
}

impl Quantiles {
    fn add(&mut self, x: f64) {
        match self {
            Quantiles::Empty => *self = Quantiles::One(x),
            Quantiles::One(a) => *self = Quantiles::Few(vec![*a, x]),
            Quantiles::Few(values) if values.len() < FEW => values.push(x),
            Quantiles::Few(values) => {
                let mut sketch = sketch_of(values);
                sketch.add(x);
                *self = Quantiles::Sketch(Box::new(sketch));
            }
            Quantiles::Sketch(sketch) => sketch.add(x),
        }
    }

    /// Takes in `other`'s values (a sketch's bins do not depend on order).
    fn merge(&mut self, other: &Quantiles) {
        match (&mut *self, other) {
            (_, Quantiles::Empty) => {}
            (_, Quantiles::One(b)) => self.add(*b),
            (_, Quantiles::Few(b)) => b.iter().for_each(|&x| self.add(x)),
            (Quantiles::Empty, Quantiles::Sketch(b)) => *self = Quantiles::Sketch(b.clone()),
            (Quantiles::One(a), Quantiles::Sketch(b)) => {
                let mut sketch = b.clone();
                sketch.add(*a);
                *self = Quantiles::Sketch(sketch);
            }
            (Quantiles::Few(a), Quantiles::Sketch(b)) => {
                let mut sketch = b.clone();
                a.iter().for_each(|&x| sketch.add(x));
                *self = Quantiles::Sketch(sketch);
            }
            (Quantiles::Sketch(a), Quantiles::Sketch(b)) => {
                // Fails only for different configs; both are the defaults.
                let merged = a.merge(b);
                debug_assert!(merged.is_ok());
            }
        }
    }

    /// The `q` quantile as DDSketch answers it; `None` without values.
    fn quantile(&self, q: f64) -> Option<f64> {
        match self {
            Quantiles::Empty => None,
            Quantiles::Sketch(sketch) => sketch.quantile(q).ok().flatten(),
            Quantiles::Few(values) => few_quantile(values, q),
            Quantiles::One(_) if !(0.0..=1.0).contains(&q) => None,
            // The sketch keeps the extremes exactly, and puts the value in
            // the bin of its key (negative values mirrored, tiny ones zero).
            Quantiles::One(x) if q == 0.0 || q == 1.0 => Some(*x),
            Quantiles::One(x) => {
                let config = Config::defaults();
                Some(if *x > config.min_possible() {
                    config.value(config.key(*x))
                } else if *x < -config.min_possible() {
                    -config.value(config.key(-*x))
                } else {
                    0.0
                })
            }
        }
    }
}

/// A sketch of `values`, added in their order.
fn sketch_of(values: &[f64]) -> DDSketch {
    let mut sketch = DDSketch::new(Config::defaults());
    values.iter().for_each(|&x| sketch.add(x));
    sketch
}

/// The `q` quantile of `values` as a sketch of them answers it, without
/// making one. The sketch files a value under a key (its bin): values above
/// its smallest magnitude by their own key, those below minus it by the key
/// of their magnitude, the rest as zero; the quantile is the representative
/// value of the key of rank floor(q * (n - 1)) in that order, and q = 0 and
/// q = 1 are the exact extremes. Bins only count, so the order of the values
/// does not matter, but for what a sketch does past `max_num_bins` keys
/// apart (it merges its lowest bins): then a sketch is made and asked.
/// (Values are finite: `Acc::check` refuses others for percentiles.)
fn few_quantile(values: &[f64], q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let config = Config::defaults();
    let tiny = config.min_possible();
    let (mut negative, mut positive, mut zeros) = (Vec::new(), Vec::new(), 0u64);
    // The extremes as the sketch keeps them (the first of equal values).
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in values {
        if x > tiny {
            positive.push(config.key(x));
        } else if x < -tiny {
            negative.push(config.key(-x));
        } else {
            zeros += 1;
        }
        if x < min {
            min = x;
        }
        if max < x {
            max = x;
        }
    }
    let span = |keys: &[i32]| match (keys.iter().min(), keys.iter().max()) {
        (Some(&lo), Some(&hi)) => i64::from(hi) - i64::from(lo) + 1,
        _ => 0,
    };
    let bins = i64::from(config.max_num_bins);
    if span(&positive) > bins || span(&negative) > bins {
        return sketch_of(values).quantile(q).ok().flatten();
    }
    if q == 0.0 {
        return Some(min);
    } else if q == 1.0 {
        return Some(max);
    }
    let rank = (q * (values.len() as f64 - 1.0)) as u64;
    let below = negative.len() as u64;
    Some(if rank < below {
        // Negative values: the sketch counts their magnitudes' keys from
        // the largest magnitude down.
        negative.sort_unstable();
        -config.value(negative[(below - rank - 1) as usize])
    } else if rank < below + zeros {
        0.0
    } else {
        positive.sort_unstable();
        config.value(positive[(rank - below - zeros) as usize])
    })
}

/// An exact running sum, so the total doesn't depend on the order values
/// come in: merging panes gives the same bits as one pass. Integers add up
/// in an i128 (no overflow before 2^64 values); floats keep Shewchuk's
/// non-overlapping partials (at most a few dozen for f64), rounded once at
/// the end like Python's `math.fsum`. Most floats in events (amounts,
/// latencies: `73.41` is an integer times 2^-46) are whole multiples of
/// 2^-64 below 2^36: those add up exactly in a fixed-point i128 instead,
/// an integer addition where a partials update is a loop.
#[derive(Clone, Default)]
struct Total {
    /// values added
    n: u64,
    /// exact sum of the machine integers
    ints: i128,
    /// whether any value was not a machine integer (float, decimal, big)
    floaty: bool,
    /// exact sum of the floats `fixed_of` takes, in units of 2^-64 (kept
    /// below `FIXED_MAX` in magnitude; beyond it moves to the partials)
    fixed: i128,
    /// exact sum of the other finite non-integers, as non-overlapping partials
    partials: Vec<f64>,
    /// sum of the infinities and NaNs, kept out of the partials
    special: f64,
}

impl Total {
    /// None when `n` is a decimal whose text doesn't parse.
    fn add(&mut self, n: &Num) -> Option<()> {
        match n {
            Num::Int(i) => self.ints += *i as i128,
            n => {
                let x = to_f64(n)?;
                self.floaty = true;
                self.add_float(x);
            }
        }
        self.n += 1;
        Some(())
    }

    fn add_int(&mut self, i: i64) {
        self.ints += i as i128;
        self.n += 1;
    }

    /// A number that is not a machine integer, as its f64.
    fn add_f64(&mut self, x: f64) {
        self.floaty = true;
        self.add_float(x);
        self.n += 1;
    }

    fn add_float(&mut self, x: f64) {
        if let Some(f) = fixed_of(x) {
            match self.fixed.checked_add(f) {
                Some(sum) if sum.abs() < FIXED_MAX => self.fixed = sum,
                _ => {
                    let _ = add_partial(&mut self.partials, fixed_float(f));
                    self.fold_fixed();
                }
            }
        } else if x.is_finite() {
            if let Some(overflow) = add_partial(&mut self.partials, x) {
                self.special += overflow;
            }
        } else {
            self.special += x;
        }
    }

    fn merge(&mut self, other: &Total) {
        self.n += other.n;
        self.ints += other.ints;
        self.floaty |= other.floaty;
        self.special += other.special;
        for &p in &other.partials {
            self.add_float(p);
        }
        match self.fixed.checked_add(other.fixed) {
            Some(sum) if sum.abs() < FIXED_MAX => self.fixed = sum,
            _ => {
                add_wide(&mut self.partials, other.fixed, FIXED_UNIT);
                self.fold_fixed();
            }
        }
    }

    /// Moves the fixed-point sum into the partials, exactly.
    fn fold_fixed(&mut self) {
        add_wide(
            &mut self.partials,
            std::mem::take(&mut self.fixed),
            FIXED_UNIT,
        );
    }

    /// The partials with the fixed-point sum folded in: the whole exact sum
    /// of the floats, as a checkpoint keeps it.
    fn all_partials(&self) -> Vec<f64> {
        let mut whole = self.clone();
        whole.fold_fixed();
        whole.partials
    }

    /// The total, rounded once.
    fn value(&self) -> f64 {
        let exact = if self.partials.is_empty() {
            // Integers and fixed-point floats only (the usual case): one
            // exact i128 in units of 2^-64, rounded once by the conversion.
            match self
                .ints
                .checked_mul(1 << 64)
                .and_then(|units| units.checked_add(self.fixed))
            {
                Some(units) => fixed_float(units),
                None => self.joined(),
            }
        } else if self.ints == 0 && self.fixed == 0 {
            // No integers to join: the partials as they are (no copy).
            round_partials(&self.partials)
        } else {
            self.joined()
        };
        if self.special == 0.0 {
            exact
        } else {
            exact + self.special
        }
    }

    /// The exact sum of the integers, the fixed-point floats and the
    /// partials, rounded once.
    fn joined(&self) -> f64 {
        let mut whole = self.clone();
        whole.fold_fixed();
        add_wide(&mut whole.partials, whole.ints, 1.0);
        round_partials(&whole.partials)
    }
}

/// The bound of `Total::fixed`: far below i128's, so that a sum converted to
/// f64 (rounded) still converts back to an i128 exactly.
const FIXED_MAX: i128 = 1 << 120;

/// `x` in units of 2^-64 when that is a whole number below 2^100 (`x` below
/// 2^36): most decimal data. Zeros (whose sign a sum keeps), subnormals,
/// infinities and NaN are not taken.
fn fixed_of(x: f64) -> Option<i128> {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 || biased == 0x7ff {
        return None;
    }
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    // x = ±mantissa * 2^(biased - 1075): shifted by 64, where it lands.
    let zeros = mantissa.trailing_zeros();
    let shift = biased - 1075 + 64 + zeros as i32;
    let mantissa = mantissa >> zeros;
    let width = 64 - mantissa.leading_zeros() as i32;
    if shift < 0 || shift + width > 100 {
        return None;
    }
    let units = i128::from(mantissa) << shift;
    Some(if x < 0.0 { -units } else { units })
}

/// The value of one unit of `Total::fixed`: 2^-64.
const FIXED_UNIT: f64 = 1.0 / 18_446_744_073_709_551_616.0;

/// A fixed-point amount (units of 2^-64) as a float, rounded once (the
/// power-of-two scaling is exact for anything `Total` holds).
fn fixed_float(units: i128) -> f64 {
    units as f64 * FIXED_UNIT
}

/// Adds `wide * scale` (`scale` a power of two) to `partials` exactly: each
/// step takes the next 53 bits of `wide`.
fn add_wide(partials: &mut Vec<f64>, mut wide: i128, scale: f64) {
    while wide != 0 {
        let f = wide as f64;
        let _ = add_partial(partials, f * scale);
        wide -= f as i128;
    }
}

/// Adds finite `x` to non-overlapping `partials` exactly (Shewchuk). Returns
/// the infinity when an intermediate sum overflows (values near f64::MAX);
/// the two operands are then dropped, as a plain float sum would be ±inf.
fn add_partial(partials: &mut Vec<f64>, mut x: f64) -> Option<f64> {
    let mut i = 0;
    for j in 0..partials.len() {
        let mut y = partials[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        if hi.is_infinite() {
            partials.drain(i..=j);
            return Some(hi);
        }
        let lo = y - (hi - x);
        if lo != 0.0 {
            partials[i] = lo;
            i += 1;
        }
        x = hi;
    }
    partials.truncate(i);
    partials.push(x);
    None
}

/// The correctly rounded sum of non-overlapping partials (as `math.fsum`).
fn round_partials(partials: &[f64]) -> f64 {
    let Some((&last, rest)) = partials.split_last() else {
        return 0.0;
    };
    let mut hi = last;
    let mut lo = 0.0;
    let mut n = rest.len();
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    // Round half to even: if the next partial has the same sign as the
    // rounding error, the error was a tie broken the wrong way.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

#[cfg(test)]
mod check_tests {
    use super::*;

    /// `check` accepts exactly what `add` accepts.
    #[test]
    fn check_agrees_with_add() {
        let values = [
            "1",
            "2.50",
            "-0",
            "1e400",
            "\"x\"",
            "true",
            "[1]",
            "{}",
            "100000000000000000000000",
        ];
        let funcs = [
            Func::Count,
            Func::Sum,
            Func::Avg,
            Func::Min,
            Func::Max,
            Func::First,
            Func::Last,
            Func::CountDistinct,
            Func::Percentile(0.5),
            Func::Collect(COLLECT_LIMIT),
        ];
        for func in &funcs {
            for text in values {
                let v = crate::json::parse(text.as_bytes()).unwrap();
                let mut acc = Acc::new(func);
                assert_eq!(
                    Acc::check(func, &v).is_ok(),
                    acc.add(&v, 0, 0).is_ok(),
                    "{func:?} {text}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value answers every quantile as a sketch of that value does.
    #[test]
    fn one_value_answers_as_its_sketch() {
        let values = [
            0.0, 1.0, -1.0, 0.5, 123.456, -987.25, 1e-12, -1e-12, 1e-9, 1e300, -1e300, 3e-8,
            999.99, 42.0,
        ];
        for x in values {
            let mut sketch = DDSketch::new(Config::defaults());
            sketch.add(x);
            let mut one = Quantiles::Empty;
            one.add(x);
            for q in [0.0, 0.01, 0.3, 0.5, 0.9, 0.99, 1.0, 1.5] {
                assert_eq!(
                    one.quantile(q).map(f64::to_bits),
                    sketch.quantile(q).ok().flatten().map(f64::to_bits),
                    "{x} at {q}"
                );
            }
        }
    }

    /// A few values answer every quantile as a sketch of them does, for
    /// values of every sign and size (tiny ones counted as zero, keys more
    /// than a sketch's bins apart), one by one, merged in any
    /// order, and saved and loaded back.
    #[test]
    fn few_values_answer_as_their_sketch() {
        let mut rng = Rng(7);
        let special = [
            0.0,
            -0.0,
            1e-9,
            -1e-9,
            2e-9,
            1e-10,
            1e300,
            -1e300,
            5e-324,
            -f64::MAX,
        ];
        let qs = [
            0.0, 1e-9, 0.01, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0, -0.5, 1.5,
        ];
        let mut sketched = 0;
        for case in 0..3000 {
            let n = 2 + (rng.next() % (FEW as u64 + 6)) as usize;
            let values: Vec<f64> = (0..n)
                .map(|_| match (case % 5, rng.next() % 8) {
                    (_, 0) => special[(rng.next() % special.len() as u64) as usize],
                    (0, _) => 1000.0 * rng.unit(),
                    (1, _) => 1000.0 * rng.unit() - 500.0,
                    (2, _) => {
                        rng.lognormal()
                            * if rng.next().is_multiple_of(2) {
                                1.0
                            } else {
                                -1.0
                            }
                    }
                    // Keys far apart: magnitudes from 1e-8 to 1e40.
                    (3, _) => 10f64.powf(48.0 * rng.unit() - 8.0),
                    // Repeats of a few values.
                    _ => (rng.next() % 4) as f64 * 2.5,
                })
                .collect();
            let sketch = sketch_of(&values);
            let mut one_by_one = Quantiles::Empty;
            values.iter().for_each(|&x| one_by_one.add(x));
            sketched += matches!(one_by_one, Quantiles::Sketch(_)) as u32;
            // Two halves merged, either way round, and each half saved and loaded.
            let cut = (rng.next() % n as u64) as usize;
            let half = |values: &[f64]| {
                let mut acc = Acc::new(&Func::Percentile(0.5));
                for &x in values {
                    acc.add_input(Input::Float(x), 0, 0);
                }
                Acc::load(&Func::Percentile(0.5), &acc.save()).expect("loads back")
            };
            let (a, b) = (half(&values[..cut]), half(&values[cut..]));
            let (State::Sketch(a), State::Sketch(b)) = (a.state, b.state) else {
                unreachable!()
            };
            let (mut ab, mut ba) = (a.clone(), b.clone());
            ab.merge(&b);
            ba.merge(&a);
            for q in qs {
                let want = sketch.quantile(q).ok().flatten();
                let got = one_by_one.quantile(q);
                assert_eq!(
                    got.map(f64::to_bits),
                    want.map(f64::to_bits),
                    "{values:?} at {q}"
                );
                // Merged, the extremes' zero may take the other sign (as
                // merged sketches' do): -0.0 + 0.0 is 0.0.
                let zeroed = |x: Option<f64>| x.map(|x| (x + 0.0).to_bits());
                for (how, got) in [("merged", &ab), ("merged back", &ba)] {
                    assert_eq!(
                        zeroed(got.quantile(q)),
                        zeroed(want),
                        "{how} {values:?} at {q}"
                    );
                }
            }
        }
        // Both ways were taken: a few values, and more than FEW made a sketch.
        assert!((500..2500).contains(&sketched), "{sketched}");
    }

    /// `write_result` writes what writing `result()` would, for every
    /// aggregate and every kind of number a sum meets.
    #[test]
    fn results_are_written_as_their_values_are() {
        let inputs: &[&[&str]] = &[
            &[],
            &["1", "2", "3"],
            &["1.5", "2.25"],
            &["1", "0.1", "0.2"],
            &["1e308", "1e308"],
            &["-1e308", "-1e308", "5"],
            &["9223372036854775807", "9223372036854775807"],
            &["1e-320", "3"],
            &["-7", "3"],
            &["-9223372036854775807", "-1"],
            &["-2.5", "-1", "0"],
            &["\"x\"", "null", "{\"a\":1}"],
        ];
        let specs = [
            "n=count",
            "s=sum(.)",
            "a=avg(.)",
            "lo=min(.)",
            "f=first(.)",
            "d=count_distinct(.)",
            "p=p99(.)",
            "c=collect(.; 2)",
        ];
        for spec in specs {
            let func = parse_agg(spec).unwrap().func;
            for values in inputs {
                let mut acc = Acc::new(&func);
                for (i, text) in values.iter().enumerate() {
                    let v = crate::json::parse(text.as_bytes()).unwrap();
                    acc.add_event();
                    if Acc::check(&func, &v).is_ok() {
                        acc.add(&v, i as i64, i as u64).unwrap();
                    }
                }
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                acc.write_result(&mut fast);
                crate::json::write_compact(&mut slow, &acc.result());
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(slow).unwrap(),
                    "{spec} over {values:?}"
                );
            }
        }
    }

    /// Every aggregate's state, saved and loaded back (as a checkpoint
    /// does), gives the same result, and goes on the same afterwards.
    /// A percentile's saved few values load back only as `save` writes
    /// them: 2 to FEW numbers.
    #[test]
    fn saved_few_values_are_checked() {
        let func = Func::Percentile(0.5);
        let load = |text: &str| Acc::load(&func, &serde_json::from_str(text).unwrap());
        let two = load(r#"{"few":[1.5,2.5]}"#).expect("two values");
        assert_eq!(
            two.result().to_string(),
            acc(func.clone(), &["1.5", "2.5"]).result().to_string()
        );
        let sixteen = format!("{{\"few\":{:?}}}", vec![1.0; FEW]);
        assert!(load(&sixteen).is_some(), "{sixteen}");
        let seventeen = format!("{{\"few\":{:?}}}", vec![1.0; FEW + 1]);
        for bad in [
            r#"{"few":[1.5]}"#,
            r#"{"few":[]}"#,
            r#"{"few":"x"}"#,
            r#"{"few":[1,"x"]}"#,
            &seventeen,
        ] {
            assert!(load(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn saved_floats_load_back_bit_for_bit() {
        // Floats serde_json reads back an ulp off without float_roundtrip.
        let awkward = [
            2.291712365432881e-9,
            -1.527077339613215e-236,
            3.0328247929935305e-68,
            0.1,
            1e300,
            -1e300,
        ];
        for spec in ["s=sum(.)", "a=avg(.)", "lo=percentile(.; 0)", "p=p50(.)"] {
            let func = parse_agg(spec).unwrap().func;
            let mut acc = Acc::new(&func);
            for &x in &awkward {
                acc.add_event();
                acc.add_input(Input::Float(x), 0, 0);
            }
            let text = serde_json::to_string(&acc.save()).unwrap();
            let loaded = Acc::load(&func, &serde_json::from_str(&text).unwrap()).unwrap();
            let bits = |acc: &Acc| match acc.result() {
                Val::Num(Num::Float(x)) => x.to_bits(),
                other => panic!("{other}"),
            };
            assert_eq!(bits(&loaded), bits(&acc), "{spec}: {text}");
        }
    }

    #[test]
    fn saved_states_load_back_the_same() {
        let values = ["1", "2.5", "-7", "1e3", "\"x\"", "{\"a\":[1,2]}", "3"];
        let specs = [
            "n=count",
            "s=sum(.)",
            "a=avg(.)",
            "lo=min(.)",
            "hi=max(.)",
            "f=first(.)",
            "l=last(.)",
            "d=count_distinct(.)",
            "p=p99(.)",
            "q=percentile(.; 0.3)",
            "c=collect(.; 3)",
        ];
        for spec in specs {
            let func = parse_agg(spec).unwrap().func;
            let mut acc = Acc::new(&func);
            for (i, text) in values.iter().enumerate() {
                let v = crate::json::parse(text.as_bytes()).unwrap();
                acc.add_event();
                if Acc::check(&func, &v).is_ok() {
                    acc.add(&v, i as i64, i as u64).unwrap();
                }
            }
            let saved = acc.save();
            let text = serde_json::to_string(&saved).unwrap();
            let mut loaded = Acc::load(&func, &serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(loaded.result(), acc.result(), "{spec}");
            let more = crate::json::parse(b"4").unwrap();
            acc.add(&more, 9, 9).unwrap();
            loaded.add(&more, 9, 9).unwrap();
            assert_eq!(loaded.result(), acc.result(), "{spec} after one more");
            // And an empty state too.
            let empty = Acc::new(&func);
            let loaded = Acc::load(&func, &empty.save()).unwrap();
            assert_eq!(loaded.result(), empty.result(), "{spec} empty");
        }
    }

    fn v(json: &str) -> Val {
        crate::json::parse(json.as_bytes()).expect("test JSON")
    }

    /// The spec `parse_agg` makes, but for the text as written.
    fn spec(name: &str, func: Func, expr: Option<&str>) -> AggSpec {
        AggSpec {
            name: name.into(),
            func,
            expr: expr.map(String::from),
            text: String::new(),
        }
    }

    /// An Acc with `values` (JSON texts) added at times 0, 1, 2, ….
    fn acc(func: Func, values: &[&str]) -> Acc {
        let mut a = Acc::new(&func);
        for (i, x) in values.iter().enumerate() {
            a.add_event();
            a.add(&v(x), i as i64, i as u64).unwrap();
        }
        a
    }

    /// The result as printed: tells `2` (integer) from `2.0` (float).
    fn res(func: Func, values: &[&str]) -> String {
        acc(func, values).result().to_string()
    }

    // ---- parse_agg: accepted forms ----

    #[test]
    fn parses_every_function() {
        let ok = |s: &str| AggSpec {
            text: String::new(),
            ..parse_agg(s).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(ok("n=count"), spec("n", Func::Count, None));
        assert_eq!(ok("n=count()"), spec("n", Func::Count, None));
        assert_eq!(ok("n=count( )"), spec("n", Func::Count, None));
        assert_eq!(ok("s=sum(.a)"), spec("s", Func::Sum, Some(".a")));
        assert_eq!(ok("s=avg(.a)"), spec("s", Func::Avg, Some(".a")));
        assert_eq!(ok("s=min(.a)"), spec("s", Func::Min, Some(".a")));
        assert_eq!(ok("s=max(.a)"), spec("s", Func::Max, Some(".a")));
        assert_eq!(ok("s=first(.a)"), spec("s", Func::First, Some(".a")));
        assert_eq!(ok("s=last(.a)"), spec("s", Func::Last, Some(".a")));
        assert_eq!(
            ok("u=count_distinct(.user)"),
            spec("u", Func::CountDistinct, Some(".user"))
        );
        assert_eq!(
            ok("c=collect(.id)"),
            spec("c", Func::Collect(COLLECT_LIMIT), Some(".id"))
        );
        for (f, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
            assert_eq!(
                ok(&format!("x={f}(.ms)")),
                spec("x", Func::Percentile(q), Some(".ms"))
            );
        }
    }

    #[test]
    fn parses_percentile_with_q() {
        let ok = |s: &str| AggSpec {
            text: String::new(),
            ..parse_agg(s).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            ok("p=percentile(.a; 0.9)"),
            spec("p", Func::Percentile(0.9), Some(".a"))
        );
        assert_eq!(
            ok("p=percentile(.a;0)"),
            spec("p", Func::Percentile(0.0), Some(".a"))
        );
        assert_eq!(
            ok("p=percentile(.a; 1)"),
            spec("p", Func::Percentile(1.0), Some(".a"))
        );
        assert_eq!(
            ok("p=percentile(.a; 1e-1)"),
            spec("p", Func::Percentile(0.1), Some(".a"))
        );
        // `;` nested in parentheses, brackets, objects and strings belongs to EXPR.
        assert_eq!(
            ok("x=percentile((.a; .b) | max; 0.5)"),
            spec("x", Func::Percentile(0.5), Some("(.a; .b) | max"))
        );
        assert_eq!(
            ok("x=percentile([.a; .b][0]; 0.25)"),
            spec("x", Func::Percentile(0.25), Some("[.a; .b][0]"))
        );
        assert_eq!(
            ok(r#"x=percentile(if .s == ";" then .a else .b end ; 0.75)"#),
            spec(
                "x",
                Func::Percentile(0.75),
                Some(r#"if .s == ";" then .a else .b end"#)
            )
        );
        // The last top-level `;` is the one before Q.
        assert_eq!(
            ok("x=percentile(def f: .a; f; 0.5)"),
            spec("x", Func::Percentile(0.5), Some("def f: .a; f"))
        );
    }

    #[test]
    fn parses_collect_with_limit() {
        let ok = |s: &str| AggSpec {
            text: String::new(),
            ..parse_agg(s).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            ok("c=collect(.id; 50)"),
            spec("c", Func::Collect(50), Some(".id"))
        );
        assert_eq!(
            ok("c=collect(.id;1)"),
            spec("c", Func::Collect(1), Some(".id"))
        );
        assert_eq!(
            ok("c=collect([.a; .b]; 20000)"),
            spec("c", Func::Collect(20_000), Some("[.a; .b]"))
        );
        // As for percentile, the last top-level `;` is the one before LIMIT.
        assert_eq!(
            ok("c=collect(def f: .a; f; 7)"),
            spec("c", Func::Collect(7), Some("def f: .a; f"))
        );
        let err = |s: &str| parse_agg(s).expect_err(s);
        for bad in [
            "c=collect(.a; 0)",
            "c=collect(.a; -3)",
            "c=collect(.a; +3)",
            "c=collect(.a; 2.5)",
            "c=collect(.a; 1e4)",
            "c=collect(.a; )",
            "c=collect(.a; ten)",
            "c=collect(.a; 99999999999999999999999)",
            "c=collect(def f: .a; f)",
        ] {
            assert_eq!(
                err(bad),
                format!(
                    "--agg '{bad}': LIMIT must be a positive integer, as in collect(EXPR; 10000)"
                )
            );
        }
        assert_eq!(
            err("c=collect( ; 5)"),
            "--agg 'c=collect( ; 5)': collect needs an expression: collect(EXPR; LIMIT)"
        );
    }

    #[test]
    fn parses_nesting_and_spaces() {
        let ok = |s: &str| AggSpec {
            text: String::new(),
            ..parse_agg(s).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            ok("t=sum((.a + (.b // 0)) * 2)"),
            spec("t", Func::Sum, Some("(.a + (.b // 0)) * 2"))
        );
        assert_eq!(
            ok("  total = sum( .a.b )  "),
            spec("total", Func::Sum, Some(".a.b"))
        );
        assert_eq!(ok("t=sum (.a)"), spec("t", Func::Sum, Some(".a")));
        assert_eq!(ok("_x1=max(.a)"), spec("_x1", Func::Max, Some(".a")));
        // Brackets and quotes inside strings, escapes, interpolations.
        assert_eq!(
            ok(r#"f=first(.msg | ltrimstr(")"))"#),
            spec("f", Func::First, Some(r#".msg | ltrimstr(")")"#))
        );
        assert_eq!(
            ok(r#"f=first("a\")b")"#),
            spec("f", Func::First, Some(r#""a\")b""#))
        );
        assert_eq!(
            ok(r#"c=collect("\(.a + ("(" | length)))")"#),
            spec(
                "c",
                Func::Collect(COLLECT_LIMIT),
                Some(r#""\(.a + ("(" | length)))""#)
            )
        );
        // `==` inside EXPR: the NAME ends at the first `=`.
        assert_eq!(
            ok("e=count_distinct(.a == 1)"),
            spec("e", Func::CountDistinct, Some(".a == 1"))
        );
    }

    // ---- parse_agg: rejected forms ----

    #[test]
    fn rejects_with_clear_messages() {
        let err = |s: &str| parse_agg(s).expect_err(s);
        assert_eq!(
            err("x=median(.a)"),
            "--agg 'x=median(.a)': unknown function median (count, sum, avg, min, max, first, last, count_distinct, p50, p90, p95, p99, percentile(EXPR; Q), collect(EXPR; LIMIT))"
        );
        assert_eq!(err("sum(.a)"), "--agg 'sum(.a)': expected NAME=FUNC(EXPR)");
        assert_eq!(
            err("sum(.a == 1)"),
            "--agg 'sum(.a == 1)': expected NAME=FUNC(EXPR)"
        );
        assert_eq!(
            err("=sum(.a)"),
            "--agg '=sum(.a)': expected NAME=FUNC(EXPR)"
        );
        assert_eq!(err("x="), "--agg 'x=': expected NAME=FUNC(EXPR)");
        assert_eq!(err("x=(.a)"), "--agg 'x=(.a)': expected NAME=FUNC(EXPR)");
        assert_eq!(err("n=sum()"), "--agg 'n=sum()': sum needs an expression");
        assert_eq!(err("n=sum"), "--agg 'n=sum': sum needs an expression");
        assert_eq!(err("n=p99( )"), "--agg 'n=p99( )': p99 needs an expression");
        assert_eq!(
            err("n=count(.a)"),
            "--agg 'n=count(.a)': count takes no expression"
        );
        assert_eq!(
            err("q=percentile(.a; 2)"),
            "--agg 'q=percentile(.a; 2)': Q must be a number from 0 to 1"
        );
        for bad in [
            "q=percentile(.a; -0.1)",
            "q=percentile(.a; x)",
            "q=percentile(.a; )",
            "q=percentile(.a; nan)",
        ] {
            assert_eq!(
                err(bad),
                format!("--agg '{bad}': Q must be a number from 0 to 1")
            );
        }
        for usage in [
            "q=percentile(.a)",
            "q=percentile(; 0.5)",
            "q=percentile",
            "q=percentile((.a; 0.5))",
        ] {
            assert_eq!(
                err(usage),
                format!(
                    "--agg '{usage}': percentile needs an expression and a quantile: percentile(EXPR; Q)"
                )
            );
        }
        assert_eq!(
            err("1x=sum(.a)"),
            "--agg '1x=sum(.a)': NAME 1x must be letters, digits and _, not starting with a digit"
        );
        assert_eq!(
            err("x-y=sum(.a)"),
            "--agg 'x-y=sum(.a)': NAME x-y must be letters, digits and _, not starting with a digit"
        );
        assert_eq!(
            err("x=sum(.a"),
            "--agg 'x=sum(.a': unbalanced brackets or quotes"
        );
        assert_eq!(
            err("x=sum(.a))"),
            "--agg 'x=sum(.a))': unbalanced brackets or quotes"
        );
        assert_eq!(
            err("x=sum(.a]"),
            "--agg 'x=sum(.a]': unbalanced brackets or quotes"
        );
        assert_eq!(
            err(r#"x=sum(".a)"#),
            r#"--agg 'x=sum(".a)': unbalanced brackets or quotes"#
        );
        assert_eq!(
            err("x=sum(.a) + 1"),
            "--agg 'x=sum(.a) + 1': unexpected + 1 after sum(...)"
        );
        assert!(err("x=SUM(.a)").contains("unknown function SUM"));
    }

    // ---- results ----

    #[test]
    fn count_counts_events_not_values() {
        let mut a = Acc::new(&Func::Count);
        assert_eq!(a.result().to_string(), "0");
        a.add(&v("5"), 0, 0).unwrap(); // ignored
        for _ in 0..3 {
            a.add_event();
        }
        assert_eq!(a.result().to_string(), "3");
        // Other functions ignore add_event.
        let mut s = Acc::new(&Func::Sum);
        s.add_event();
        assert_eq!(s.result().to_string(), "0");
    }

    #[test]
    fn sum_int_or_float() {
        assert_eq!(res(Func::Sum, &[]), "0");
        assert_eq!(res(Func::Sum, &["1", "2", "3"]), "6");
        assert_eq!(res(Func::Sum, &["-4", "4"]), "0");
        assert_eq!(res(Func::Sum, &["1", "2.5"]), "3.5");
        assert_eq!(res(Func::Sum, &["12.50", "1"]), "13.5"); // a decimal is a float
        assert_eq!(res(Func::Sum, &["1.0", "1"]), "2.0");
        // Exact, correctly rounded: a plain float sum says 0.6000000000000001.
        assert_eq!(res(Func::Sum, &["0.1", "0.2", "0.3"]), "0.6");
        assert_eq!(res(Func::Sum, &["1e100", "1", "-1e100"]), "1.0");
    }

    #[test]
    fn sum_overflow_becomes_float() {
        let max = isize::MAX.to_string();
        assert_eq!(res(Func::Sum, &[&max, "1"]), "9.223372036854776e18");
        // The total decides, not the order: it fits again, so stays an integer.
        assert_eq!(res(Func::Sum, &[&max, "1", "-1"]), max);
        // A big integer counts as a float.
        assert_eq!(res(Func::Sum, &["100000000000000000000", "1"]), "1e20");
    }

    #[test]
    fn sum_avg_percentile_reject_non_numbers() {
        let mut s = Acc::new(&Func::Sum);
        assert_eq!(
            s.add(&v(r#""abc""#), 0, 0).unwrap_err(),
            r#"sum: "abc" is not a number"#
        );
        assert_eq!(
            s.add(&v("true"), 0, 0).unwrap_err(),
            "sum: true is not a number"
        );
        let mut a = Acc::new(&Func::Avg);
        assert_eq!(
            a.add(&v("[1]"), 0, 0).unwrap_err(),
            "avg: [1] is not a number"
        );
        let mut p = Acc::new(&Func::Percentile(0.99));
        assert_eq!(
            p.add(&v(r#"{"a":1}"#), 0, 0).unwrap_err(),
            r#"p99: {"a":1} is not a number"#
        );
        let mut p = Acc::new(&Func::Percentile(0.3));
        assert_eq!(
            p.add(&v(r#""x""#), 0, 0).unwrap_err(),
            r#"percentile: "x" is not a number"#
        );
        let inf = Val::Num(Num::Float(f64::INFINITY));
        assert_eq!(
            p.add(&inf, 0, 0).unwrap_err(),
            "percentile: Infinity is not a finite number"
        );
        // A failed add leaves the state as it was.
        assert_eq!(s.result().to_string(), "0");
        assert_eq!(p.result(), Val::Null);
        // Long values are shortened in the message.
        let long = format!(r#""{}""#, "x".repeat(500));
        assert!(s.add(&v(&long), 0, 0).unwrap_err().len() < 100);
    }

    #[test]
    fn avg() {
        assert_eq!(res(Func::Avg, &[]), "null");
        assert_eq!(res(Func::Avg, &["1", "2"]), "1.5");
        assert_eq!(res(Func::Avg, &["2", "2"]), "2.0");
        assert_eq!(res(Func::Avg, &["1", "2", "3", "4.0"]), "2.5");
        assert_eq!(res(Func::Avg, &["-1", "1"]), "0.0");
    }

    #[test]
    fn min_max_in_jq_order() {
        let vals = ["3", "1.5", "10", r#""x""#, "[1]", "false", r#"{"a":1}"#];
        assert_eq!(res(Func::Min, &vals), "false");
        assert_eq!(res(Func::Max, &vals), r#"{"a":1}"#);
        assert_eq!(res(Func::Min, &["3", "1.5", "10"]), "1.5");
        assert_eq!(res(Func::Max, &["3", "1.5", "10"]), "10");
        assert_eq!(res(Func::Max, &[r#""b""#, r#""ab""#]), r#""b""#);
        assert_eq!(res(Func::Min, &[]), "null");
        assert_eq!(res(Func::Max, &[]), "null");
        // Among equal values (1 == 1.0 in jq) the earliest is kept.
        assert_eq!(res(Func::Min, &["1.0", "1", "2"]), "1.0");
        assert_eq!(res(Func::Max, &["1", "1.0", "0"]), "1");
    }

    #[test]
    fn first_last_by_time_then_seq() {
        let add = |a: &mut Acc, x: &str, t, s| a.add(&v(x), t, s).unwrap();
        for func in [Func::First, Func::Last] {
            let mut a = Acc::new(&func);
            assert_eq!(a.result(), Val::Null);
            // Arrival order (seq) differs from event time.
            add(&mut a, r#""b""#, 20, 0);
            add(&mut a, r#""a""#, 10, 1);
            add(&mut a, r#""d""#, 40, 2);
            add(&mut a, r#""c""#, 30, 3);
            add(&mut a, r#""a2""#, 10, 4); // same time as "a", later seq
            add(&mut a, r#""d0""#, 40, 5); // same time as "d", later seq
            let want = if func == Func::First {
                r#""a""#
            } else {
                r#""d0""#
            };
            assert_eq!(a.result().to_string(), want, "{func:?}");
        }
        // Seq breaks ties even when the lower seq arrives second.
        let mut f = Acc::new(&Func::First);
        add(&mut f, "2", 5, 9);
        add(&mut f, "1", 5, 3);
        assert_eq!(f.result().to_string(), "1");
    }

    #[test]
    fn count_distinct_by_serialisation() {
        assert_eq!(res(Func::CountDistinct, &[]), "0");
        assert_eq!(res(Func::CountDistinct, &["1", "2", "1", "2", "3"]), "3");
        // 1 and 1.0 print differently, so they count as two (though jq's
        // `==` says equal); "1" is a string; objects ignore key order.
        let vals = [
            "1",
            "1.0",
            "1",
            r#""1""#,
            r#"{"a":1,"b":[2]}"#,
            r#"{"b":[2],"a":1}"#,
        ];
        assert_eq!(res(Func::CountDistinct, &vals), "4");
        // Decimals keep their text: 12.50 and 12.5 are two.
        assert_eq!(res(Func::CountDistinct, &["12.50", "12.5", "12.50"]), "2");
        assert_eq!(res(Func::CountDistinct, &["[1,2]", "[2,1]", "[1,2]"]), "2");
    }

    #[test]
    fn percentiles_small() {
        let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
        let hundred: Vec<&str> = hundred.iter().map(String::as_str).collect();
        let p = |q, vals: &[&str]| match acc(Func::Percentile(q), vals).result() {
            Val::Num(Num::Float(x)) => x,
            other => panic!("not a float: {other}"),
        };
        // 1% of the value, plus float rounding at exactly 1% (1 can come back as 1.01).
        let near = |got: f64, want: f64| {
            assert!(
                (got - want).abs() <= 0.01 * want.abs() + 1e-9,
                "{got} vs {want}"
            )
        };
        near(p(0.5, &hundred), 50.0);
        near(p(0.9, &hundred), 90.0);
        near(p(0.99, &hundred), 99.0);
        assert_eq!(p(0.0, &hundred), 1.0); // the exact min and max
        assert_eq!(p(1.0, &hundred), 100.0);
        near(p(0.5, &["-5", "-3", "-1", "0", "2"]), -1.0);
        assert_eq!(p(0.5, &["0", "0", "0"]), 0.0);
        near(p(0.5, &["12.50"]), 12.5);
        assert_eq!(res(Func::Percentile(0.5), &[]), "null");
    }

    /// splitmix64: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        /// exp of a standard normal (Box–Muller), times 100.
        fn lognormal(&mut self) -> f64 {
            let (u, w) = (1.0 - self.unit(), self.unit());
            let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * w).cos();
            100.0 * (1.5 * normal).exp()
        }
    }

    /// Checks every quantile of a sketch, built in one Acc and from ten
    /// merged panes, against the exact value at the same rank.
    fn check_percentiles(values: &[f64]) {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let func = Func::Percentile(q);
            let mut whole = Acc::new(&func);
            let mut merged = Acc::new(&func);
            for chunk in values.chunks(values.len() / 10) {
                let mut pane = Acc::new(&func);
                for &x in chunk {
                    let x = Val::Num(Num::Float(x));
                    whole.add(&x, 0, 0).unwrap();
                    pane.add(&x, 0, 0).unwrap();
                }
                merged.merge(&pane);
            }
            // The sketch's rank: floor(q * (n - 1)).
            let exact = sorted[(q * (sorted.len() - 1) as f64) as usize];
            for acc in [&whole, &merged] {
                let Val::Num(Num::Float(got)) = acc.result() else {
                    panic!("not a float")
                };
                assert!(
                    (got - exact).abs() <= 0.01 * exact.abs() + 1e-9,
                    "q={q}: {got} vs exact {exact}"
                );
            }
            assert_eq!(whole.result().to_string(), merged.result().to_string());
        }
    }

    #[test]
    fn percentiles_within_one_percent_uniform() {
        let mut rng = Rng(1);
        let values: Vec<f64> = (0..10_000).map(|_| 1000.0 * rng.unit()).collect();
        check_percentiles(&values);
    }

    #[test]
    fn percentiles_within_one_percent_lognormal() {
        let mut rng = Rng(2);
        let values: Vec<f64> = (0..10_000).map(|_| rng.lognormal()).collect();
        check_percentiles(&values);
    }

    #[test]
    fn percentiles_within_one_percent_negative() {
        let mut rng = Rng(3);
        let values: Vec<f64> = (0..10_000).map(|_| 1000.0 * rng.unit() - 500.0).collect();
        check_percentiles(&values);
    }

    #[test]
    fn collect_in_arrival_order() {
        assert_eq!(res(Func::Collect(COLLECT_LIMIT), &[]), "[]");
        assert_eq!(
            res(Func::Collect(COLLECT_LIMIT), &["3", r#""a""#, "1", "3"]),
            r#"[3,"a",1,3]"#
        );
    }

    #[test]
    fn collect_is_bounded() {
        let mut a = Acc::new(&Func::Collect(COLLECT_LIMIT));
        for i in 0..COLLECT_LIMIT + 5 {
            a.add(&Val::Num(Num::Int(i as isize)), 0, i as u64).unwrap();
        }
        let Val::Arr(kept) = a.result() else {
            panic!("not an array")
        };
        assert_eq!(kept.len(), COLLECT_LIMIT);
        assert_eq!(
            kept.last(),
            Some(&Val::Num(Num::Int(COLLECT_LIMIT as isize - 1)))
        );
        // Merging also stops at the limit, keeping the values that arrived
        // first, whichever side of the merge they are on.
        let mut late = Acc::new(&Func::Collect(COLLECT_LIMIT));
        late.add(&v("\"late\""), 0, COLLECT_LIMIT as u64 + 100)
            .unwrap();
        for (mut x, y) in [(a.clone(), &late), (late.clone(), &a)] {
            x.merge(y);
            assert_eq!(x.result().to_string(), a.result().to_string());
        }
        let mut early = Acc::new(&Func::Collect(COLLECT_LIMIT));
        early.add(&v("\"early\""), 0, 0).unwrap();
        let mut c = a.clone();
        c.merge(&early);
        let Val::Arr(kept) = c.result() else {
            panic!("not an array")
        };
        assert_eq!(kept.len(), COLLECT_LIMIT);
        // Ties in arrival keep the receiving side first.
        assert_eq!(kept[0].to_string(), "0");
        assert_eq!(kept[1].to_string(), "\"early\"");
    }

    #[test]
    fn collect_says_when_it_dropped_values() {
        let func = Func::Collect(3);
        let add = |a: &mut Acc, seq: u64| a.add(&v(&seq.to_string()), 0, seq).unwrap();
        let mut a = Acc::new(&func);
        for seq in 0..3 {
            add(&mut a, seq);
        }
        assert!(!a.truncated(), "exactly LIMIT values: nothing dropped");
        assert_eq!(a.result().to_string(), "[0,1,2]");
        add(&mut a, 3);
        assert!(a.truncated());
        assert_eq!(a.result().to_string(), "[0,1,2]");
        // Panes: two of 2 values merge into 4 > 3, and the window is
        // truncated though neither pane was; a truncated pane truncates the
        // window it is merged into.
        let (mut p, mut q) = (Acc::new(&func), Acc::new(&func));
        add(&mut p, 0);
        add(&mut p, 2);
        add(&mut q, 1);
        let mut w = p.clone();
        w.merge(&q);
        assert!(!w.truncated());
        assert_eq!(w.result().to_string(), "[0,1,2]");
        add(&mut q, 3);
        let mut w = p.clone();
        w.merge(&q);
        assert!(w.truncated());
        assert_eq!(w.result().to_string(), "[0,1,2]");
        let mut w = Acc::new(&func);
        w.merge(&a);
        assert!(w.truncated());
        // Other aggregates never truncate.
        assert!(!acc(Func::Sum, &["1", "2", "3", "4"]).truncated());
    }

    // ---- merge ----

    /// Every split of `values` into two panes, merged, equals one Acc.
    fn check_merge(func: Func, values: &[&str]) {
        let whole = acc(func.clone(), values);
        for k in 0..=values.len() {
            let mut left = Acc::new(&func);
            let mut right = Acc::new(&func);
            for (i, x) in values.iter().enumerate() {
                let pane = if i < k { &mut left } else { &mut right };
                pane.add_event();
                pane.add(&v(x), i as i64, i as u64).unwrap();
            }
            left.merge(&right);
            assert_eq!(
                left.result().to_string(),
                whole.result().to_string(),
                "{func:?} split at {k}"
            );
        }
    }

    #[test]
    fn merge_equals_one_acc_for_every_func() {
        let numbers = [
            "3", "0.1", "0.2", "-7", "0.3", "12.50", "1e16", "1", "-1e16", "2",
        ];
        let ints = ["3", "4", "-2", "9223372036854775807", "1", "-1", "-9"];
        let mixed = [
            "3",
            r#""a""#,
            "1",
            "1.0",
            r#"{"b":1,"a":2}"#,
            "[1,2]",
            r#""a""#,
            "false",
            r#"{"a":2,"b":1}"#,
        ];
        for func in [
            Func::Count,
            Func::Sum,
            Func::Avg,
            Func::Min,
            Func::Max,
            Func::First,
            Func::Last,
            Func::CountDistinct,
            Func::Percentile(0.5),
            Func::Percentile(0.9),
            Func::Collect(COLLECT_LIMIT),
        ] {
            check_merge(func.clone(), &numbers);
            check_merge(func.clone(), &ints);
            if !matches!(func, Func::Sum | Func::Avg | Func::Percentile(_)) {
                check_merge(func, &mixed);
            }
        }
    }

    #[test]
    fn merge_first_last_out_of_order_panes() {
        // A later pane can hold an earlier event time.
        for (func, want) in [(Func::First, "\"early\""), (Func::Last, "\"late\"")] {
            let mut a = Acc::new(&func);
            a.add(&v(r#""mid""#), 50, 0).unwrap();
            let mut b = Acc::new(&func);
            b.add(&v(r#""early""#), 10, 1).unwrap();
            b.add(&v(r#""late""#), 90, 2).unwrap();
            a.merge(&b);
            assert_eq!(a.result().to_string(), want);
        }
    }

    #[test]
    fn merge_with_empty() {
        for func in [
            Func::Sum,
            Func::Avg,
            Func::Min,
            Func::First,
            Func::CountDistinct,
            Func::Percentile(0.5),
            Func::Collect(COLLECT_LIMIT),
        ] {
            let full = acc(func.clone(), &["2", "5"]);
            let mut a = full.clone();
            a.merge(&Acc::new(&func));
            assert_eq!(
                a.result().to_string(),
                full.result().to_string(),
                "{func:?}"
            );
            let mut e = Acc::new(&func);
            e.merge(&full);
            assert_eq!(
                e.result().to_string(),
                full.result().to_string(),
                "{func:?}"
            );
        }
    }

    #[test]
    fn float_sum_is_order_independent() {
        let mut rng = Rng(4);
        let values: Vec<f64> = (0..1000)
            .map(|_| (rng.unit() - 0.5) * 10f64.powi((rng.next() % 30) as i32 - 15))
            .collect();
        let sum = |xs: &mut dyn Iterator<Item = &f64>| {
            let mut a = Acc::new(&Func::Sum);
            for &x in xs {
                a.add(&Val::Num(Num::Float(x)), 0, 0).unwrap();
            }
            a.result().to_string()
        };
        assert_eq!(sum(&mut values.iter()), sum(&mut values.iter().rev()));
    }

    #[test]
    fn non_finite_sums() {
        let inf = Val::Num(Num::Float(f64::INFINITY));
        let mut a = Acc::new(&Func::Sum);
        a.add(&v("1"), 0, 0).unwrap();
        a.add(&inf, 0, 0).unwrap();
        assert_eq!(a.result().to_string(), "Infinity");
        a.add(&Val::Num(Num::Float(f64::NEG_INFINITY)), 0, 0)
            .unwrap();
        assert_eq!(a.result().to_string(), "NaN");
        // Overflowing f64 gives infinity, as a plain sum would.
        assert_eq!(res(Func::Sum, &["1.7e308", "1.7e308"]), "Infinity");
    }

    /// The fixed-point path of `Total` gives the bits of Shewchuk's partials
    /// alone (rounded once): for amounts, for floats of every exponent and
    /// sign, mixed, through merges (as panes merge), through a checkpoint's
    /// partials, and past the fixed-point bound.
    #[test]
    fn fixed_point_sums_equal_partials() {
        let reference = |xs: &[f64]| {
            let mut partials = Vec::new();
            let mut special = 0.0;
            for &x in xs {
                if !x.is_finite() {
                    special += x;
                } else if let Some(o) = add_partial(&mut partials, x) {
                    special += o;
                }
            }
            let exact = round_partials(&partials);
            if special == 0.0 {
                exact
            } else {
                exact + special
            }
        };
        let mut rng = Rng(7);
        let draw = |kind: u64, rng: &mut Rng| -> f64 {
            let sign = if rng.next().is_multiple_of(2) {
                1.0
            } else {
                -1.0
            };
            sign * match kind {
                // cents and thousandths, as amounts and latencies are written
                0 => (rng.next() % 1_000_000) as f64 / 100.0,
                1 => format!("{}.{:03}", rng.next() % 5000, rng.next() % 1000)
                    .parse::<f64>()
                    .unwrap(),
                // any exponent: from subnormals to near the bound and beyond
                2 => f64::from_bits(rng.next() & 0x7fff_ffff_ffff_ffff)
                    .abs()
                    .min(1e300),
                3 => rng.unit() * 2f64.powi((rng.next() % 160) as i32 - 80),
                4 => 2f64.powi(35) + rng.unit(),
                _ => [0.0, -0.0, 5e-324, 1e-20, 68719476736.0][(rng.next() % 5) as usize],
            }
        };
        for round in 0..400u64 {
            let n = (rng.next() % 300) as usize + 1;
            let kinds = 1 + rng.next() % 6;
            let xs: Vec<f64> = (0..n)
                .map(|_| {
                    let kind = rng.next() % kinds;
                    draw(kind, &mut rng)
                })
                .filter(|x| x.is_finite())
                .collect();
            let mut whole = Total::default();
            for &x in &xs {
                whole.add_f64(x);
            }
            // Some rounds add machine integers too (each exact as a float).
            let ints: Vec<i64> = (0..rng.next() % 3 * 20)
                .map(|_| {
                    (rng.next() >> (11 + rng.next() % 50)) as i64
                        * if rng.next().is_multiple_of(2) { 1 } else { -1 }
                })
                .collect();
            for &i in &ints {
                whole.add_int(i);
            }
            let all: Vec<f64> = xs
                .iter()
                .copied()
                .chain(ints.iter().map(|&i| i as f64))
                .collect();
            let want = reference(&all);
            assert_eq!(
                whole.value().to_bits(),
                want.to_bits(),
                "round {round}: {xs:?}"
            );
            // Split in three and merged, as panes are.
            let a = rng.next() as usize % (xs.len() + 1);
            let b = (rng.next() as usize % (xs.len() + 1)).max(a);
            let mut parts: Vec<Total> = [&xs[..a], &xs[a..b], &xs[b..]]
                .iter()
                .map(|part| {
                    let mut t = Total::default();
                    for &x in *part {
                        t.add_f64(x);
                    }
                    t
                })
                .collect();
            for &i in &ints {
                parts[1].add_int(i);
            }
            let mut merged = parts.remove(0);
            for p in &parts {
                merged.merge(p);
            }
            assert_eq!(
                merged.value().to_bits(),
                want.to_bits(),
                "round {round}: merged"
            );
            // A checkpoint keeps the partials with the fixed sum folded in.
            let saved = Total {
                fixed: 0,
                partials: whole.all_partials(),
                ..whole.clone()
            };
            assert_eq!(
                saved.value().to_bits(),
                want.to_bits(),
                "round {round}: saved"
            );
        }
        // Past the bound: 2^35 added 2^30 times is 2^65, beyond the fixed sum.
        let mut t = Total::default();
        let mut xs = Vec::new();
        for i in 0..40_000u64 {
            let x = 2f64.powi(35) - (i % 7) as f64 * 0.25;
            t.add_f64(x);
            xs.push(x);
        }
        let mut big = t.clone();
        for _ in 0..20 {
            let copy = big.clone();
            big.merge(&copy);
        }
        let mut want = Total {
            partials: vec![reference(&xs)],
            ..Total::default()
        };
        for _ in 0..20 {
            let copy = want.clone();
            want.merge(&copy);
        }
        assert_eq!(t.value().to_bits(), reference(&xs).to_bits());
        assert_eq!(big.value().to_bits(), want.value().to_bits());
        assert!(fixed_of(2f64.powi(36)).is_none());
        assert_eq!(fixed_of(0.5), Some(1 << 63));
        assert_eq!(fixed_of(-0.0), None);
    }

    #[test]
    fn func_names() {
        assert_eq!(Func::Percentile(0.95).name(), "p95");
        assert_eq!(Func::Percentile(0.42).name(), "percentile");
        assert_eq!(Func::CountDistinct.name(), "count_distinct");
    }
}
