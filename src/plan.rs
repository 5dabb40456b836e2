//! The run plan: the validated, high-level form of the command line. Every
//! usage error (bad variable, expression that does not compile, output that
//! cannot be opened) is found here, before any input is read.

use crate::cli::{Args, OnError, StageKind, StatsFormat};
use crate::input::Source;
use crate::jq::{Globals, Program};
use crate::json::Fields;
use crate::output::{DeadLetter, EventWriter, Formatter};
use crate::stage::{FilterStage, MapStage, Stage};
use crate::status;
use jaq_json::Val;
use std::io::IsTerminal;

pub struct Plan {
    pub sources: Vec<Source>,
    /// The stages, as each worker thread builds them for itself.
    pub chain: Chain,
    /// Worker threads running the stages.
    pub threads: usize,
    /// Build only the fields the stages read (see `fields`), or `None` for whole events.
    pub projection: Option<Fields>,
    pub formatter: Formatter,
    pub output: EventWriter,
    pub dead_letter: Option<DeadLetter>,
    pub stats: Option<StatsFormat>,
    pub on_error: OnError,
    pub exit_status: bool,
    pub quiet: bool,
    /// Show the progress bar; `progress_forced` draws it even off a terminal.
    pub progress: bool,
    pub progress_forced: bool,
}

/// The stage chain as written on the command line, with its variables. jaq
/// values are not `Send`, so each worker thread compiles its own copy; the
/// plan compiles it once first, so every compile error is reported up front.
#[derive(Clone)]
pub struct Chain {
    stages: Vec<(StageKind, String)>,
    vars: Vec<(bool, String, String)>,
}

impl Chain {
    /// The fields of an input line the chain reads: those of the filters up
    /// to and including the first map (later stages see that map's output,
    /// not the line). `None`: the whole event.
    pub fn fields(&self) -> Option<Fields> {
        let mut fields = Fields::Keys(Vec::new());
        for (kind, expr) in &self.stages {
            fields.merge(&crate::fields::read_by(expr)?);
            if *kind == StageKind::Map {
                break;
            }
        }
        Some(fields)
    }

    /// Compiles every stage; the error reports each one that does not compile.
    pub fn build(&self) -> Result<Vec<Box<dyn Stage>>, Fatal> {
        let globals = Globals::new(variables(&self.vars)?);
        let mut stages: Vec<Box<dyn Stage>> = Vec::new();
        let mut errors = String::new();
        for (i, (kind, expr)) in self.stages.iter().enumerate() {
            let position = i + 1;
            let label = format!("--{} #{position}", kind.name());
            let name = format!("{}#{position}", kind.name());
            let expr = expr.clone();
            match Program::compile(&expr, &label, &globals) {
                Ok(program) => stages.push(match kind {
                    StageKind::Filter => Box::new(FilterStage {
                        name,
                        expr,
                        program,
                    }),
                    StageKind::Map => Box::new(MapStage {
                        name,
                        expr,
                        program,
                    }),
                }),
                Err(report) => errors.push_str(&report),
            }
        }
        if errors.is_empty() {
            Ok(stages)
        } else {
            Err(Fatal::usage(errors.trim_end().to_string()))
        }
    }
}

/// An error that ends evq before the run: the message and the exit status.
#[derive(Debug)]
pub struct Fatal {
    pub status: i32,
    pub message: String,
}

impl Fatal {
    fn usage(message: String) -> Fatal {
        Fatal {
            status: status::USAGE,
            message,
        }
    }
    fn io(message: String) -> Fatal {
        Fatal {
            status: status::IO,
            message,
        }
    }
}

impl Plan {
    pub fn new(args: Args) -> Result<Plan, Fatal> {
        let chain = Chain {
            stages: args.stages.clone(),
            vars: args.vars.clone(),
        };
        chain.build()?;

        let mut sources: Vec<Source> = args.files.iter().map(|p| Source::new(p)).collect();
        if sources.is_empty() {
            sources.push(Source::new("-".as_ref()));
        }

        // Opened only now, so a usage error never truncates an output file.
        let output = match &args.output {
            None => EventWriter::stdout(),
            Some(path) => EventWriter::create(path).map_err(|e| {
                Fatal::io(format!(
                    "evq: cannot create output file {}: {}",
                    path.display(),
                    status::io_error_text(&e)
                ))
            })?,
        };
        let dead_letter = match &args.dead_letter {
            None => None,
            Some(path) => Some(DeadLetter::open(path).map_err(|e| {
                Fatal::io(format!(
                    "evq: cannot open dead-letter file {}: {}",
                    path.display(),
                    status::io_error_text(&e)
                ))
            })?),
        };

        let progress = !args.no_progress && (args.progress || std::io::stderr().is_terminal());
        let threads = match args.threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(Plan {
            sources,
            projection: if args.full_parse {
                None
            } else {
                chain.fields()
            },
            chain,
            threads,
            formatter: Formatter {
                raw_output: args.raw_output,
            },
            output,
            dead_letter,
            stats: args.stats,
            on_error: args.on_error,
            exit_status: args.exit_status,
            quiet: args.quiet,
            progress,
            progress_forced: args.progress,
        })
    }
}

/// `--arg NAME VALUE` and `--argjson NAME JSON`, in command-line order.
fn variables(args: &[(bool, String, String)]) -> Result<Vec<(String, Val)>, Fatal> {
    let mut vars = Vec::new();
    for (json, name, value) in args {
        if *json {
            let name = var_name("--argjson", name)?;
            let value = crate::json::parse(value.as_bytes())
                .map_err(|e| Fatal::usage(format!("evq: --argjson {name}: {e}")))?;
            vars.push((name, value));
        } else {
            vars.push((var_name("--arg", name)?, Val::from(value.clone())));
        }
    }
    Ok(vars)
}

fn var_name(option: &str, name: &str) -> Result<String, Fatal> {
    let name = name.strip_prefix('$').unwrap_or(name);
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(Fatal::usage(format!(
            "evq: {option}: '{name}' is not a variable name (letters, digits and _, not starting with a digit)"
        )))
    }
}
