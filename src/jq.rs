//! The jq language, through jaq: compiling a stage's expression with the
//! standard library and the user's variables, running it on one value, and
//! rendering compile errors with a caret under the offending span. `debug`
//! and `stderr` write on standard error as jq 1.7's do (jaq-std leaves them
//! to the `log` crate, where nothing would be printed).

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, compile, data, load};
use jaq_json::Val;
use std::fmt::Write as _;

/// The kind of data evq's filters run on: plain JSON values and the look-up table.
pub type Data = data::JustLut<Val>;
/// A compiled jq expression.
pub type Filter = jaq_core::Filter<Data>;

/// Global variables bound in every expression: `--arg`, `--argjson`, `$ENV`, `$ARGS`.
pub struct Globals {
    names: Vec<String>,
    values: Vec<Val>,
}

impl Globals {
    /// Binds `named` (in command-line order) plus `$ENV` and `$ARGS`.
    pub fn new(named: Vec<(String, Val)>) -> Self {
        let env = std::env::vars_os()
            .map(|(k, v)| {
                let (k, v) = (k.to_string_lossy(), v.to_string_lossy());
                (Val::from(k.into_owned()), Val::from(v.into_owned()))
            })
            .collect();
        let args_named = named
            .iter()
            .map(|(k, v)| (Val::from(k.clone()), v.clone()))
            .collect();
        let args = [
            (
                Val::from("positional".to_string()),
                Val::Arr(Vec::new().into()),
            ),
            (Val::from("named".to_string()), Val::obj(args_named)),
        ];
        let mut names = vec!["$ENV".to_string(), "$ARGS".to_string()];
        let mut values = vec![Val::obj(env), Val::obj(args.into_iter().collect())];
        for (name, value) in named {
            names.push(format!("${name}"));
            values.push(value);
        }
        Globals { names, values }
    }

    fn vars(&self) -> Vars<Val> {
        Vars::new(self.values.iter().cloned())
    }
}

/// A compiled expression, ready to run on events.
pub struct Program {
    filter: Filter,
    vars: Vars<Val>,
}

/// Why an expression failed on one event.
pub type RunError = String;

impl Program {
    /// Compiles `code`; on failure returns a rendered report that names `label`
    /// (for example `--map #2`) and underlines the error in the expression.
    pub fn compile(code: &str, label: &str, globals: &Globals) -> Result<Program, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs().filter(|(name, ..)| !MESSAGES.contains(name)))
            .chain(jaq_json::funs())
            .chain(messages());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errs| render(code, label, load_reports(errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(globals.names.iter().map(|s| s.as_str()))
            .compile(modules)
            .map_err(|errs| render(code, label, compile_reports(errs)))?;
        Ok(Program {
            filter,
            vars: globals.vars(),
        })
    }

    /// Runs the expression on `input`, calling `each` with every output until
    /// it returns false. An error (or `halt`) ends the run with `Err`.
    pub fn run(&self, input: Val, mut each: impl FnMut(Val) -> bool) -> Result<(), RunError> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, self.vars.clone());
        for out in self.filter.id.run((ctx, input)) {
            match out {
                Ok(v) => {
                    if !each(v) {
                        return Ok(());
                    }
                }
                Err(exn) => {
                    return Err(match exn.get_err() {
                        Ok(err) => err.to_string(),
                        Err(exn) => match exn.get_halt() {
                            Ok(code) => format!("halt with exit code {code}"),
                            Err(_) => "uncaught exception".to_string(),
                        },
                    });
                }
            }
        }
        Ok(())
    }
}

/// jaq-std's native filters under `debug`, `debug(msgs)`, `stderr` and
/// `halt_error`, replaced by `messages`.
const MESSAGES: [&str; 2] = ["debug_empty", "stderr_empty"];

/// The filters named in `MESSAGES`, writing what jq 1.7 writes: `debug`, one
/// line `["DEBUG:",VALUE]` in compact JSON; `stderr`, a string's text or any
/// other value's compact JSON, without a newline. They print from the worker
/// threads, above the progress bar, a whole text at a time.
fn messages() -> impl Iterator<Item = jaq_core::native::Fun<Data>> {
    use jaq_core::native::{Filter, run, v};
    let funs: [Filter<jaq_core::RunPtr<Data>>; 2] = [
        (MESSAGES[0], v(0), debug_empty),
        (MESSAGES[1], v(0), stderr_empty),
    ];
    funs.into_iter().map(run::<Data>)
}

fn debug_empty<'a>(cv: jaq_core::Cv<'a, Data>) -> jaq_core::ValXs<'a, Val> {
    let mut text = b"[\"DEBUG:\",".to_vec();
    write_json(&mut text, &cv.1);
    text.extend_from_slice(b"]\n");
    crate::progress::eprint(&text);
    Box::new(core::iter::empty())
}

fn stderr_empty<'a>(cv: jaq_core::Cv<'a, Data>) -> jaq_core::ValXs<'a, Val> {
    match &cv.1 {
        Val::TStr(s) | Val::BStr(s) => crate::progress::eprint(s),
        v => {
            let mut text = Vec::new();
            write_json(&mut text, v);
            crate::progress::eprint(&text);
        }
    }
    Box::new(core::iter::empty())
}

/// Compact JSON, written as the events are (`output::Formatter::value`).
// NOTE: the events' writer is to write infinities and NaN as valid JSON
// (issue 9, item 1); these messages are to follow it when it does.
fn write_json(out: &mut Vec<u8>, v: &Val) {
    jaq_json::write::write(out, &Default::default(), 0, v).expect("write to memory");
}

/// One compile error: a message and the span of the expression it is about.
struct Report {
    message: String,
    span: std::ops::Range<usize>,
    label: String,
}

fn load_reports(errs: load::Errors<&str, ()>) -> Vec<Report> {
    let mut reports = Vec::new();
    for (file, err) in errs {
        let code = file.code;
        match err {
            load::Error::Io(errs) => {
                for (path, e) in errs {
                    let message = format!("cannot load module {path}: {e}");
                    reports.push(Report {
                        span: load::span(code, path),
                        label: e,
                        message,
                    });
                }
            }
            load::Error::Lex(errs) => {
                for (expected, found) in errs {
                    // Underline only the first character of what was found.
                    let end = found.char_indices().nth(1).map_or(found.len(), |(i, _)| i);
                    let found = &found[..end];
                    let label = if found.is_empty() {
                        "unexpected end of input".to_string()
                    } else {
                        format!("unexpected character {found}")
                    };
                    let message = format!("expected {}", expected.as_str());
                    reports.push(Report {
                        span: load::span(code, found),
                        label,
                        message,
                    });
                }
            }
            load::Error::Parse(errs) => {
                for (expected, found) in errs {
                    let label = if found.is_empty() {
                        "unexpected end of input"
                    } else {
                        "unexpected token"
                    };
                    let message = format!("expected {}", expected.as_str());
                    reports.push(Report {
                        span: load::span(code, found),
                        label: label.into(),
                        message,
                    });
                }
            }
        }
    }
    reports
}

fn compile_reports(errs: compile::Errors<&str, ()>) -> Vec<Report> {
    let mut reports = Vec::new();
    for (file, errs) in errs {
        for (found, undefined) in errs {
            let message = match (found, &undefined) {
                ("reduce", compile::Undefined::Filter(n)) => {
                    format!("wrong number of arguments (expected 2, found {n})")
                }
                ("foreach", compile::Undefined::Filter(n)) => {
                    format!("wrong number of arguments (expected 2 or 3, found {n})")
                }
                _ => format!("undefined {} {found}", undefined.as_str()),
            };
            let span = load::span(file.code, found);
            reports.push(Report {
                label: message.clone(),
                message,
                span,
            });
        }
    }
    reports
}

/// Renders reports as `evq: error in LABEL: MESSAGE` followed by the
/// expression with the span underlined (codesnake draws the caret).
fn render(code: &str, label: &str, reports: Vec<Report>) -> String {
    use codesnake::{Block, CodeWidth, Label, LineIndex};
    let idx = LineIndex::new(code);
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "evq: error in {label}: {}", r.message);
        // A zero-width span still needs one character to point at: the one
        // there, or the last one at the end of input (whole characters: a
        // byte range inside one would not render).
        let span = if r.span.is_empty() && r.span.start >= code.len() {
            code.char_indices().last().map_or(0, |(i, _)| i)..code.len()
        } else if r.span.is_empty() {
            let width = code[r.span.start..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
            r.span.start..r.span.start + width
        } else {
            r.span.clone()
        };
        let block = Block::new(
            &idx,
            [Label::new(span).with_text(r.label.clone()).with_style(())],
        );
        match block {
            Some(block) if !code.is_empty() => {
                let block = block.map_code(|c| {
                    let c = c.replace('\t', " ");
                    let w = c.chars().count().max(1);
                    CodeWidth::new(c, w)
                });
                let _ = writeln!(out, "{}[{label}]", block.prologue());
                let _ = writeln!(out, "{}", block.space_vert());
                let _ = writeln!(out, "{}{}", block, block.epilogue());
            }
            _ => {
                let _ = writeln!(out, "  expression: {code}");
            }
        }
    }
    out
}

/// True when jq would treat `v` as true (anything but false and null).
pub fn truthy(v: &Val) -> bool {
    !matches!(v, Val::Null | Val::Bool(false))
}
