//! The jq language, through jaq: compiling a stage's expression with the
//! standard library, the user's variables and the modules it imports (`-L`),
//! running it on one value, and rendering compile errors with a caret under
//! the offending span, in the expression or in the module file at fault.
//! Uses of a `--lookup` table's `$NAME` are rewritten into calls of its
//! natives before compiling (`lookup`).
//! `debug` and `stderr` write on standard error as jq 1.7's do (jaq-std
//! leaves them to the `log` crate, where nothing would be printed).

pub mod builtins;
pub mod direct;
pub mod fields;
pub mod lookup;

use jaq_core::load::{Arena, File, Import, Loader};
use jaq_core::{Compiler, Ctx, Vars, compile, data, load};
use jaq_json::Val;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The kind of data evq's filters run on: plain JSON values and the look-up table.
pub type Data = data::JustLut<Val>;
/// A compiled jq expression.
pub type Filter = jaq_core::Filter<Data>;

/// What every expression compiles with: the global variables (`--arg`,
/// `--argjson`, `$ENV`, `$ARGS`) and the module library (`-L`).
pub struct Globals {
    names: Vec<String>,
    values: Vec<Val>,
    library: Arc<Library>,
}

impl Globals {
    /// Binds `named` (in command-line order) plus `$ENV` and `$ARGS`; modules
    /// come from jq's default search path (see `with_library`).
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
        Globals {
            names,
            values,
            library: Arc::default(),
        }
    }

    /// Modules come from `library` (`-L`).
    pub fn with_library(self, library: Arc<Library>) -> Self {
        Globals { library, ..self }
    }
}

/// jq's search path when no `-L` is given (jq 1.6 and 1.7 alike).
const DEFAULT_SEARCH: [&str; 3] = ["~/.jq", "$ORIGIN/../lib/jq", "$ORIGIN/../lib"];

/// Where `import` and `include` find `.jq` modules and `.json` data files,
/// and what they found. The plan's compile reads each file once; the compiles
/// of every worker thread then see the same texts, even if a file changes or
/// goes away meanwhile (a chain that compiled once compiles again).
#[derive(Default)]
pub struct Library {
    /// `-L` directories, in command-line order; none: `DEFAULT_SEARCH`.
    paths: Vec<PathBuf>,
    /// Each request with the file found and its contents, or why none was.
    found: Mutex<HashMap<Request, Found>>,
}

/// An import: the importing file, the path as written, the metadata (as
/// debug text) and the extension looked for.
type Request = (PathBuf, String, String, &'static str);
type Found = Result<(PathBuf, Arc<[u8]>), String>;

impl Library {
    pub fn new(paths: Vec<PathBuf>) -> Library {
        Library {
            paths,
            found: Mutex::default(),
        }
    }

    fn search_path(&self) -> Vec<PathBuf> {
        if self.paths.is_empty() {
            DEFAULT_SEARCH.iter().map(PathBuf::from).collect()
        } else {
            self.paths.clone()
        }
    }

    /// The file `import` names, with extension `ext`, and its contents.
    fn read(&self, import: Import<&str, PathBuf>, ext: &'static str) -> Found {
        let key = (
            import.parent.clone(),
            import.path.to_string(),
            format!("{:?}", import.meta),
            ext,
        );
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found
            .entry(key)
            .or_insert_with(|| {
                let path = self.find(import, ext)?;
                let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                Ok((path, text.into()))
            })
            .clone()
    }

    /// Finds `PATH.EXT` as jaq does (the import's own `search` metadata, then
    /// the search path; `~` and `$ORIGIN` expanded), or else `PATH/NAME.EXT`
    /// where NAME is the last component of PATH, as jq does.
    fn find(&self, import: Import<&str, PathBuf>, ext: &str) -> Result<PathBuf, String> {
        let paths = self.search_path();
        let Import { parent, path, meta } = import;
        let found = Import { parent, path, meta }.find(&paths, ext);
        let nested = Path::new(path)
            .file_name()
            .map(|name| format!("{path}/{}", name.to_string_lossy()));
        let found = match (found, nested) {
            (Err(_), Some(nested)) => {
                let path = &nested.as_str();
                Import { parent, path, meta }.find(&paths, ext)
            }
            (found, _) => found,
        };
        found.map_err(|e| {
            if e == "file not found" {
                let dirs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "{path}.{ext} not found in the search path {} (set with -L DIR)",
                    dirs.join(", ")
                )
            } else {
                e
            }
        })
    }

    /// A `.jq` module, for the loader.
    fn module(&self, import: Import<&str, PathBuf>) -> Result<File<String, PathBuf>, String> {
        let (path, text) = self.read(import, "jq")?;
        let code = String::from_utf8(text.to_vec()).map_err(|e| {
            format!(
                "{}: not UTF-8 (byte {})",
                path.display(),
                e.utf8_error().valid_up_to() + 1
            )
        })?;
        Ok(File { code, path })
    }

    /// A `.json` data file: all the values in it, as an array (as jq binds it).
    fn data(&self, import: Import<&str, PathBuf>) -> Result<Val, String> {
        let (path, text) = self.read(import, "json")?;
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
        let values = crate::json::parse_all(text).map_err(|e| {
            let (offset, what) = match e {
                crate::json::Error::Utf8 { offset } => (offset, "invalid UTF-8"),
                crate::json::Error::Syntax { offset, reason } => (offset, reason),
            };
            let before = &text[..offset.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.len()
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
                + 1;
            format!("{}:{line}:{column}: invalid JSON: {what}", path.display())
        })?;
        Ok(Val::Arr(values.into()))
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
    /// The uses of `--lookup` tables are rewritten first (see `lookup`); an
    /// error is reported on the expression as written.
    pub fn compile(code: &str, label: &str, globals: &Globals) -> Result<Program, String> {
        let rewritten = lookup::rewrite(code).map_err(|bound| {
            let report = Report {
                message: bound.message,
                span: bound.span,
                label: "bound here".into(),
            };
            let main = File {
                code,
                path: PathBuf::new(),
            };
            render(label, vec![(main, vec![report])])
        })?;
        let Some(rewritten) = rewritten else {
            return Self::compile_as_is(code, label, globals);
        };
        Self::compile_as_is(&rewritten, label, globals).map_err(|report| {
            // The same error on the expression as written, with each table
            // a variable.
            let names = lookup::slots().iter().map(|s| format!("${}", s.name));
            let globals = Globals {
                names: globals.names.iter().cloned().chain(names).collect(),
                values: (globals.values.iter().cloned())
                    .chain(lookup::slots().iter().map(|_| Val::Null))
                    .collect(),
                library: globals.library.clone(),
            };
            Self::compile_as_is(code, label, &globals)
                .err()
                .unwrap_or(report)
        })
    }

    fn compile_as_is(code: &str, label: &str, globals: &Globals) -> Result<Program, String> {
        let defs = defs().iter().cloned();
        let funs: Vec<_> = jaq_core::funs()
            .chain(jaq_std::funs().filter(|(name, ..)| !MESSAGES.contains(name)))
            .chain(jaq_json::funs())
            .chain(messages())
            .chain(crate::jq::builtins::funs())
            .chain(lookup::funs())
            .collect();
        crate::jq::builtins::set_builtins(
            defs.clone()
                .map(|d| (d.name.to_string(), d.args.len()))
                .chain(
                    funs.iter()
                        .map(|(name, args, _)| (name.to_string(), args.len())),
                ),
        );
        // jq's `$__loc__`: where it is written (the first one's line stands
        // for all in the expression; in a module, too).
        let loc_line = code
            .find("$__loc__")
            .map_or(1, |at| code[..at].matches('\n').count() + 1);
        let loc = Val::obj(
            [
                (
                    Val::from("file".to_string()),
                    Val::from("<top-level>".to_string()),
                ),
                (Val::from("line".to_string()), Val::from(loc_line as isize)),
            ]
            .into_iter()
            .collect(),
        );
        let library = &globals.library;
        let arena = Arena::default();
        // The expression itself has no path: its own `search` metadata is
        // relative to the current directory, as jq has it.
        let main = File {
            code,
            path: PathBuf::new(),
        };
        let modules = Loader::new(defs)
            .with_read(|import: Import<&str, PathBuf>| library.module(import))
            .load(&arena, main)
            .map_err(|errs| render(label, load_reports(errs, "module")))?;
        // Imported data comes after the globals, in the order the compiler
        // numbers it (module by module, the expression last), as jaq's does.
        let mut data = Vec::new();
        load::import(&modules, |import| {
            data.push(library.data(import)?);
            Ok(())
        })
        .map_err(|errs| render(label, load_reports(errs, "data file")))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(globals.names.iter().map(|s| s.as_str()).chain(["$__loc__"]))
            .compile(modules)
            .map_err(|errs| render(label, compile_reports(errs)))?;
        let vars = Vars::new(globals.values.iter().cloned().chain([loc]).chain(data));
        Ok(Program { filter, vars })
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

/// The definitions every expression compiles with, parsed once: jaq's
/// standard library, then `prelude.jq` (jq's builtins that jaq lacks or
/// spells differently; see `crate::jq::builtins`), which shadows it.
fn defs() -> &'static [load::parse::Def<&'static str>] {
    static DEFS: std::sync::OnceLock<Vec<load::parse::Def<&'static str>>> =
        std::sync::OnceLock::new();
    DEFS.get_or_init(|| {
        let prelude = load::parse(include_str!("prelude.jq"), |p| p.defs());
        jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .chain(prelude.expect("prelude.jq parses"))
            .collect()
    })
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
    crate::json::write_compact(&mut text, &cv.1);
    text.extend_from_slice(b"]\n");
    crate::report::progress::eprint(&text);
    Box::new(core::iter::empty())
}

fn stderr_empty<'a>(cv: jaq_core::Cv<'a, Data>) -> jaq_core::ValXs<'a, Val> {
    match &cv.1 {
        Val::TStr(s) | Val::BStr(s) => crate::report::progress::eprint(s),
        v => {
            let mut text = Vec::new();
            crate::json::write_compact(&mut text, v);
            crate::report::progress::eprint(&text);
        }
    }
    Box::new(core::iter::empty())
}

/// One compile error: a message and the span of the expression it is about.
struct Report {
    message: String,
    span: std::ops::Range<usize>,
    label: String,
}

/// The reports about one file: the expression (its path is empty) or a module.
type FileReports<'a> = Vec<(File<&'a str, PathBuf>, Vec<Report>)>;

/// Reports of the loader (`what`: "module") or of data imports ("data file").
fn load_reports<'a>(errs: load::Errors<&'a str, PathBuf>, what: &str) -> FileReports<'a> {
    let mut files = Vec::new();
    for (file, err) in errs {
        let code = file.code;
        let mut reports = Vec::new();
        match err {
            load::Error::Io(errs) => {
                for (path, e) in errs {
                    reports.push(Report {
                        span: load::span(code, path),
                        label: format!("this {what}"),
                        message: format!("cannot load {what} \"{path}\": {e}"),
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
                    let span = load::span(code, found);
                    let label = if found.is_empty() {
                        "unexpected end of input".to_string()
                    } else if let Some(var) = data_var_at(code, span.start) {
                        // jq's second name for the data of `import "…" as $d`.
                        format!("write ${var} (jq's ${var}::{var} is not supported)")
                    } else {
                        "unexpected token".to_string()
                    };
                    let message = format!("expected {}", expected.as_str());
                    reports.push(Report {
                        span,
                        label,
                        message,
                    });
                }
            }
        }
        files.push((file, reports));
    }
    files
}

/// `d` when `code` has jq's `$d::d` at `at` (the `::`): the data of
/// `import "…" as $d`, which jaq names `$d` only.
fn data_var_at(code: &str, at: usize) -> Option<&str> {
    let (before, after) = code.split_at(at);
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let start = before.trim_end_matches(is_ident).len();
    let var = &before[start..];
    let name = after.strip_prefix("::")?;
    let name = &name[..name.find(|c| !is_ident(c)).unwrap_or(name.len())];
    (before[..start].ends_with('$') && !var.is_empty() && name == var).then_some(var)
}

fn compile_reports(errs: compile::Errors<&str, PathBuf>) -> FileReports<'_> {
    let mut files = Vec::new();
    for (file, errs) in errs {
        let mut reports = Vec::new();
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
        files.push((file, reports));
    }
    files
}

/// Renders reports as `evq: error in LABEL: MESSAGE` followed by the code
/// with the span underlined (codesnake draws the caret): the expression's,
/// titled LABEL, or a module file's, titled with its path.
fn render(label: &str, files: FileReports) -> String {
    use codesnake::{Block, CodeWidth, Label, LineIndex};
    let mut out = String::new();
    for (file, reports) in files {
        let code = file.code;
        let (title, module) = if file.path.as_os_str().is_empty() {
            (label.to_string(), String::new())
        } else {
            let path = file.path.display().to_string();
            (path.clone(), format!("in module {path}: "))
        };
        let idx = LineIndex::new(code);
        for r in reports {
            let _ = writeln!(out, "evq: error in {label}: {module}{}", r.message);
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
                    let _ = writeln!(out, "{}[{title}]", block.prologue());
                    let _ = writeln!(out, "{}", block.space_vert());
                    let _ = writeln!(out, "{}{}", block, block.epilogue());
                }
                _ => {
                    let _ = writeln!(out, "  expression: {code}");
                }
            }
        }
    }
    out
}

/// Renders one error about a text that is not jq (a `--match` pattern),
/// as compile errors are: `evq: error in LABEL: MESSAGE`, then the text
/// with `span` underlined and `note` under it.
pub fn render_error(
    label: &str,
    code: &str,
    span: std::ops::Range<usize>,
    message: &str,
    note: &str,
) -> String {
    let report = Report {
        message: message.to_string(),
        span,
        label: note.to_string(),
    };
    let main = File {
        code,
        path: PathBuf::new(),
    };
    render(label, vec![(main, vec![report])])
}

/// True when jq would treat `v` as true (anything but false and null).
pub fn truthy(v: &Val) -> bool {
    !matches!(v, Val::Null | Val::Bool(false))
}
