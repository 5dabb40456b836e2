//! The run plan: the validated, high-level form of the command line. Every
//! usage error (bad variable, expression that does not compile, output that
//! cannot be opened) is found here, before any input is read; so are the
//! hints on a legal but likely mistaken chain (a filter after a window that
//! reads fields no result has).

use crate::cli::{Args, InputFormat, OnError, StageKind, StatsFormat, VarKind};
use crate::source::{Format, Source};
use crate::jq::{Globals, Library, Program};
use crate::json::Fields;
use crate::sink::{DeadLetter, EventWriter, Formatter, Pretty};
use crate::stage::window::{WindowConfig, WindowStage, agg, time};
use crate::stage::{FilterStage, MapStage, Step};
use crate::report::status;
use jaq_json::Val;

pub struct Plan {
    pub sources: Vec<Source>,
    /// How input bytes become events (`-n`, `-R`, `--input-format`).
    pub input_format: Format,
    /// The stages, as each worker thread builds them for itself.
    pub chain: Chain,
    /// Worker threads running the stages.
    pub threads: usize,
    /// Build only the fields the stages read (see `fields`), or `None` for whole events.
    pub projection: Option<Fields>,
    /// The chain as direct evaluation runs it (see `direct`), when it can.
    pub direct: Option<crate::jq::direct::Chain>,
    pub formatter: Formatter,
    pub output: EventWriter,
    pub dead_letter: Option<DeadLetter>,
    pub stats: Option<StatsFormat>,
    /// `--checkpoint`: the file, what it held at the start, how often to write it.
    pub checkpoint: Option<(
        std::path::PathBuf,
        crate::source::checkpoint::Checkpoint,
        std::time::Duration,
    )>,
    /// `--follow`: how often to look at idle files and how long to read a
    /// rotated one; `None` without it.
    pub follow: Option<crate::source::Follow>,
    /// Print the stats this often while running (`--stats-every`).
    pub stats_every: Option<std::time::Duration>,
    pub on_error: OnError,
    pub exit_status: bool,
    pub quiet: bool,
    /// Show the progress bar; `progress_forced` draws it even off a terminal
    /// or on the one the events go to.
    pub progress: bool,
    pub progress_forced: bool,
}

/// The stage chain as written on the command line, with its variables. jaq
/// values are not `Send`, so each worker thread compiles its own copy; the
/// plan compiles it once first, so every compile error is reported up front.
#[derive(Clone)]
pub struct Chain {
    stages: Vec<(StageKind, String)>,
    vars: Vec<Binding>,
    window: WindowArgs,
    /// The modules `import` and `include` find (`-L`), shared by every copy,
    /// so each compiles with the same files.
    library: std::sync::Arc<Library>,
}

/// The options of the window stage, as written.
#[derive(Clone, Default)]
struct WindowArgs {
    spec: Option<String>,
    keys: Vec<String>,
    time: Option<String>,
    aggs: Vec<String>,
    lateness: Option<String>,
}

impl WindowArgs {
    /// The jq expressions the window stage runs on each event.
    fn exprs(&self) -> Vec<String> {
        let aggs = self
            .aggs
            .iter()
            .filter_map(|a| agg::parse_agg(a).ok()?.expr);
        self.keys
            .iter()
            .chain(&self.time)
            .cloned()
            .chain(aggs)
            .collect()
    }

    /// What the stage shows as its expression in stats.
    fn describe(&self) -> String {
        let mut parts = vec![self.spec.clone().unwrap_or_else(|| "group".into())];
        parts.extend(self.keys.iter().map(|k| format!("key {k}")));
        parts.extend(self.time.iter().map(|t| format!("time {t}")));
        parts.extend(self.lateness.iter().map(|l| format!("lateness {l}")));
        parts.extend(self.aggs.iter().cloned());
        parts.join("; ")
    }

    fn build(&self, name: String, globals: &Globals, errors: &mut String) -> Option<WindowStage> {
        let spec = match self.spec.as_deref().map(time::parse_window).transpose() {
            Ok(spec) => spec,
            Err(e) => {
                errors.push_str(&format!("evq: --window: {e}\n"));
                return None;
            }
        };
        let lateness = match self
            .lateness
            .as_deref()
            .map(time::parse_lateness)
            .transpose()
        {
            Ok(l) => l.unwrap_or(0),
            Err(e) => {
                errors.push_str(&format!("evq: --lateness: {e}\n"));
                return None;
            }
        };
        let mut compile = |code: &str, label: String| match Program::compile(code, &label, globals)
        {
            Ok(p) => Some(p),
            Err(report) => {
                errors.push_str(&report);
                None
            }
        };
        let keys: Vec<Option<Program>> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| compile(k, format!("--key #{}", i + 1)))
            .collect();
        let time = self.time.as_deref().map(|t| compile(t, "--time".into()));
        let mut aggs = Vec::new();
        let mut ok = keys.iter().all(Option::is_some) && time.as_ref().is_none_or(Option::is_some);
        let mut bad_aggs = String::new();
        for text in &self.aggs {
            match agg::parse_agg(text) {
                Ok(spec) => {
                    let program = spec
                        .expr
                        .as_deref()
                        .map(|e| compile(e, format!("--agg {}", spec.name)));
                    ok &= program.as_ref().is_none_or(Option::is_some);
                    aggs.push((spec, program.flatten()));
                }
                Err(e) => {
                    bad_aggs.push_str(&format!("evq: {e}\n"));
                    ok = false;
                }
            }
        }
        errors.push_str(&bad_aggs);
        if !ok {
            return None;
        }
        let config = WindowConfig {
            spec,
            keys: keys.into_iter().flatten().collect(),
            time: time.flatten(),
            aggs,
            lateness,
        };
        Some(WindowStage::new(name, self.describe(), config))
    }
}

impl Chain {
    /// Hints for stages that read what no result of the window stage before
    /// them has: `--window … -f '.level == "error"'` filters results, not
    /// events, and so drops them all. Checks the filters after the window
    /// stage up to and including the first map (later stages see the map's
    /// output); a stage that reads its input whole gets no hint.
    pub fn hints(&self) -> Vec<String> {
        let Some(at) = self
            .stages
            .iter()
            .position(|(kind, _)| matches!(kind, StageKind::Window | StageKind::Aggregate))
        else {
            return Vec::new();
        };
        let window = &self.window;
        let mut has: Vec<String> = Vec::new();
        if window.spec.is_some() {
            has.extend(["window_start".into(), "window_end".into()]);
        }
        if !window.keys.is_empty() {
            has.push("key".into());
        }
        has.extend(
            window
                .aggs
                .iter()
                .filter_map(|a| Some(agg::parse_agg(a).ok()?.name)),
        );
        let (results, option) = match self.stages[at].0 {
            StageKind::Window => ("window results", "--window"),
            _ => ("aggregate results", "--agg"),
        };
        let mut hints = Vec::new();
        for (i, (kind, expr)) in self.stages.iter().enumerate().skip(at + 1) {
            let flag = match kind {
                StageKind::Filter => "-f",
                StageKind::Map => "-m",
                StageKind::Window | StageKind::Aggregate => break,
            };
            if let Some(Fields::Keys(read)) = crate::jq::fields::read_by(expr) {
                let missing: Vec<String> = read
                    .into_iter()
                    .filter(|(key, _)| !has.iter().any(|h| h.as_bytes() == key.as_slice()))
                    .filter_map(|(key, _)| Fields::Keys(vec![(key, Fields::Whole)]).paths()?.pop())
                    .collect();
                if !missing.is_empty() {
                    hints.push(format!(
                        "hint: --{} #{} reads {}, which {results} do not have (they have {}); stages run in command-line order: put {flag} before {option} to {verb} the events",
                        kind.name(),
                        i + 1,
                        and_list(&missing),
                        has.join(", "),
                        verb = kind.name(),
                    ));
                }
            }
            if *kind == StageKind::Map {
                break;
            }
        }
        hints
    }

    /// The fields of an input line the chain reads: those of the filters up
    /// to and including the first map (later stages see that map's output,
    /// not the line). `None`: the whole event.
    pub fn fields(&self) -> Option<Fields> {
        let mut fields = Fields::Keys(Vec::new());
        for (kind, expr) in &self.stages {
            match kind {
                StageKind::Filter | StageKind::Map => fields.merge(&crate::jq::fields::read_by(expr)?),
                StageKind::Window | StageKind::Aggregate => {
                    for expr in self.window.exprs() {
                        fields.merge(&crate::jq::fields::read_by(&expr)?);
                    }
                }
            }
            // Later stages see this stage's output, not the line.
            if *kind != StageKind::Filter {
                break;
            }
        }
        Some(fields)
    }

    /// The chain for direct evaluation: filters and maps only, each one an
    /// expression `direct` understands.
    pub fn direct(&self) -> Option<crate::jq::direct::Chain> {
        let mut stages = Vec::new();
        for (kind, expr) in &self.stages {
            match kind {
                StageKind::Filter => stages.push((false, expr.as_str())),
                StageKind::Map => stages.push((true, expr.as_str())),
                StageKind::Window | StageKind::Aggregate => return None,
            }
        }
        crate::jq::direct::compile(&stages, &variables(&self.vars).ok()?)
    }

    /// Compiles every stage; the error reports each one that does not compile.
    pub fn build(&self) -> Result<Vec<Step>, Fatal> {
        let globals = Globals::new(variables(&self.vars)?).with_library(self.library.clone());
        let mut stages = Vec::new();
        let mut errors = String::new();
        for (i, (kind, expr)) in self.stages.iter().enumerate() {
            let position = i + 1;
            let label = format!("--{} #{position}", kind.name());
            let name = format!("{}#{position}", kind.name());
            let expr = expr.clone();
            if matches!(kind, StageKind::Window | StageKind::Aggregate) {
                if let Some(stage) = self.window.build(name, &globals, &mut errors) {
                    stages.push(Step::Stateful(Box::new(stage)));
                }
                continue;
            }
            match Program::compile(&expr, &label, &globals) {
                Ok(program) => stages.push(Step::Stateless(match kind {
                    StageKind::Filter => Box::new(FilterStage {
                        name,
                        expr,
                        program,
                    }),
                    _ => Box::new(MapStage {
                        name,
                        expr,
                        program,
                    }),
                })),
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

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
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
        if args.stages.is_empty()
            && args.files.is_empty()
            && !args.null_input
            && std::io::IsTerminal::is_terminal(&std::io::stdin())
        {
            // Nothing to do but wait for a person to type events: say how
            // evq is used instead, as jq and ripgrep do.
            return Err(Fatal::usage(crate::cli::short_usage()));
        }
        let has_window = args.window.is_some() || !args.aggs.is_empty();
        for (given, option) in [
            (!args.keys.is_empty(), "--key"),
            (args.time.is_some(), "--time"),
            (args.lateness.is_some(), "--lateness"),
        ] {
            if given && !has_window {
                return Err(Fatal::usage(format!(
                    "evq: {option} goes with --window or --agg"
                )));
            }
        }
        for (given, option) in [
            (args.time.is_some(), "--time"),
            (args.lateness.is_some(), "--lateness"),
        ] {
            if given && args.window.is_none() {
                return Err(Fatal::usage(format!(
                    "evq: {option} needs --window (--agg alone groups the whole input, with no time)"
                )));
            }
        }
        let window = WindowArgs {
            spec: args.window.clone(),
            keys: args.keys.clone(),
            time: args.time.clone(),
            aggs: args.aggs.clone(),
            lateness: args.lateness.clone(),
        };
        let vars = bindings(&args.vars)?;
        let chain = Chain {
            stages: args.stages.clone(),
            vars: vars.clone(),
            window,
            library: std::sync::Arc::new(Library::new(args.library_path.clone())),
        };
        chain.build()?;

        mistaken_expression(&args, &vars)?;
        let input_format = match (args.null_input, args.raw_input, args.input_format) {
            (true, _, _) => Format::Null,
            (_, true, _) => Format::Raw,
            (_, _, InputFormat::Json) => Format::Json,
            (_, _, InputFormat::Ndjson) => Format::Ndjson,
        };
        let mut sources: Vec<Source> = args
            .files
            .iter()
            .map(|p| Source::new(p).with_format(input_format))
            .collect();
        if input_format == Format::Null {
            null_input_alone(&args)?;
            sources.push(Source::null());
        }
        if sources.is_empty() {
            sources.push(Source::new("-".as_ref()).with_format(input_format));
        }
        refuse_overwriting_inputs(&args, &sources)?;

        let checkpoint = match &args.checkpoint {
            None => None,
            Some(path) => {
                if sources.iter().any(|s| s.path.is_none()) {
                    return Err(Fatal::usage(
                        "evq: --checkpoint needs files: standard input cannot be resumed".into(),
                    ));
                }
                if has_window {
                    return Err(Fatal::usage(
                        "evq: --checkpoint cannot be used with --window or --agg: open windows are not saved in the checkpoint".into(),
                    ));
                }
                let every = time::parse_duration(&args.checkpoint_every)
                    .map_err(|e| Fatal::usage(format!("evq: --checkpoint-every: {e}")))?;
                let loaded = crate::source::checkpoint::Checkpoint::load(path).map_err(Fatal::io)?;
                Some((
                    path.clone(),
                    loaded,
                    std::time::Duration::from_millis(every as u64),
                ))
            }
        };
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

        // Never between events on a terminal, unless asked for (see progress.rs).
        let progress = !args.no_progress
            && (args.progress || crate::report::progress::by_default(args.output.as_deref()));
        // A window keeps state across events: its chain runs on one worker,
        // in input order (reading and writing still run apart).
        let interval = time::parse_duration(&args.follow_interval)
            .map_err(|e| Fatal::usage(format!("evq: --follow-interval: {e}")))?;
        let rotate_wait = time::parse_duration(&args.rotate_wait)
            .map_err(|e| Fatal::usage(format!("evq: --rotate-wait: {e}")))?;
        let follow = args.follow.then(|| crate::source::Follow {
            interval: std::time::Duration::from_millis(interval as u64),
            rotate_wait: std::time::Duration::from_millis(rotate_wait as u64),
        });
        let stats_every = match &args.stats_every {
            None => None,
            Some(text) => Some(std::time::Duration::from_millis(
                time::parse_duration(text)
                    .map_err(|e| Fatal::usage(format!("evq: --stats-every: {e}")))?
                    as u64,
            )),
        };
        let threads = match args.threads {
            _ if has_window => 1,
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        // Everything is in order: the run will start. A hint is not an
        // error; like the failure reports, -q silences it.
        if !args.quiet {
            for hint in chain.hints() {
                eprintln!("evq: {hint}");
            }
        }
        let formatter = formatter(&args);
        // -R events are strings made from the line: nothing to project or
        // evaluate on the line's bytes. Direct evaluation writes compact
        // lines only.
        let whole = args.full_parse || input_format == Format::Raw;
        Ok(Plan {
            sources,
            input_format,
            projection: if whole { None } else { chain.fields() },
            direct: if whole || !formatter.plain() {
                None
            } else {
                chain.direct()
            },
            chain,
            threads,
            formatter,
            output,
            dead_letter,
            stats: args.stats,
            stats_every,
            follow,
            checkpoint,
            on_error: args.on_error,
            exit_status: args.exit_status,
            quiet: args.quiet,
            progress,
            progress_forced: args.progress,
        })
    }
}

/// How events are written, from the output flags: jq's formats, and
/// colour by default only when the events go to a terminal and `NO_COLOR`
/// is unset or empty (as jq 1.7.1 and later decide).
fn formatter(args: &Args) -> Formatter {
    use std::io::IsTerminal;
    let indent = match (args.tab, args.indent) {
        (true, _) => Some("\t".to_string()),
        (false, n) => n.map(|n| " ".repeat(n.into())),
    };
    let color = !args.monochrome_output
        && (args.color_output
            || (args.output.is_none()
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())));
    let colors = color.then(|| {
        let spec = std::env::var("JQ_COLORS").ok();
        Pretty::colors(spec.as_deref()).unwrap_or_else(|| {
            eprintln!(
                "evq: JQ_COLORS: {:?} is not a colon-separated list of colours such as {}; default colours used",
                spec.unwrap_or_default(),
                crate::sink::DEFAULT_COLORS.join(":")
            );
            Pretty::colors(None).expect("no JQ_COLORS is valid")
        })
    });
    let pretty = Pretty {
        indent,
        sort_keys: args.sort_keys,
        ascii: args.ascii_output,
        colors,
    };
    let plain =
        pretty.indent.is_none() && !pretty.sort_keys && !pretty.ascii && pretty.colors.is_none();
    Formatter {
        raw_output: args.raw_output || args.join_output,
        join_output: args.join_output,
        pretty: (!plain).then(|| std::sync::Arc::new(pretty)),
    }
}

/// A variable binding of the command line, with its text: VALUE or JSON as
/// given, or what FILE holds (read once, by `bindings`).
#[derive(Clone)]
struct Binding {
    kind: VarKind,
    name: String,
    text: std::sync::Arc<str>,
    /// FILE, for `--slurpfile` and `--rawfile`.
    file: Option<String>,
}

/// The command line's bindings, with the files of `--slurpfile` and
/// `--rawfile` read: one that cannot be read is an I/O error (exit 4).
fn bindings(args: &[(VarKind, String, String)]) -> Result<Vec<Binding>, Fatal> {
    let mut bindings = Vec::new();
    for (kind, name, value) in args {
        let (text, file) = match kind {
            VarKind::Arg | VarKind::ArgJson => (value.as_str().into(), None),
            VarKind::SlurpFile | VarKind::RawFile => {
                let bytes = std::fs::read(value).map_err(|e| {
                    Fatal::io(format!(
                        "evq: {} {name}: cannot read {value}: {}",
                        kind.option(),
                        status::io_error_text(&e)
                    ))
                })?;
                (String::from_utf8_lossy(&bytes).into(), Some(value.clone()))
            }
        };
        bindings.push(Binding {
            kind: *kind,
            name: name.clone(),
            text,
            file,
        });
    }
    Ok(bindings)
}

/// The variables the bindings give, in command-line order: `--arg` a
/// string, `--argjson` its JSON, `--slurpfile` an array of the JSON values
/// in FILE, `--rawfile` FILE's text.
fn variables(bindings: &[Binding]) -> Result<Vec<(String, Val)>, Fatal> {
    let mut vars = Vec::new();
    for Binding {
        kind,
        name,
        text,
        file,
    } in bindings
    {
        let name = var_name(kind.option(), name)?;
        let value = match kind {
            VarKind::Arg | VarKind::RawFile => Val::from(text.to_string()),
            VarKind::ArgJson => crate::json::parse(text.as_bytes())
                .map_err(|e| Fatal::usage(format!("evq: --argjson {name}: {e}")))?,
            VarKind::SlurpFile => {
                let file = file.as_deref().unwrap_or_default();
                let mut values = Vec::new();
                for (line, value) in crate::source::json_values(text.as_bytes()) {
                    values.push(crate::json::parse(&value).map_err(|e| {
                        Fatal::usage(format!(
                            "evq: --slurpfile {name}: {file}:{line}: {}",
                            crate::source::value_error(&e)
                        ))
                    })?);
                }
                Val::Arr(values.into())
            }
        };
        vars.push((name, value));
    }
    Ok(vars)
}

/// `-n` reads no input: a FILE would go unread, and nothing can be followed
/// or resumed.
fn null_input_alone(args: &Args) -> Result<(), Fatal> {
    if let Some(file) = args.files.first() {
        return Err(Fatal::usage(format!(
            "evq: -n/--null-input reads no input, so FILE {} would not be read (evq has no input or inputs); leave it out, or drop -n to read it",
            file.display()
        )));
    }
    for (given, option) in [
        (args.follow, "--follow"),
        (args.checkpoint.is_some(), "--checkpoint"),
    ] {
        if given {
            return Err(Fatal::usage(format!(
                "evq: {option} cannot be used with -n/--null-input: there is no input"
            )));
        }
    }
    Ok(())
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

/// The jq habit `evq EXPR FILE`: a FILE argument that does not exist but
/// compiles as a jq expression was meant as one. Said before anything is
/// read, rather than failing on a missing file and passing the rest through.
fn mistaken_expression(args: &Args, vars: &[Binding]) -> Result<(), Fatal> {
    for (i, file) in args.files.iter().enumerate() {
        let Some(text) = file.to_str() else { continue };
        if text == "-" || std::fs::symlink_metadata(file).is_ok() {
            continue;
        }
        let globals = Globals::new(variables(vars).unwrap_or_default());
        if Program::compile(text, "FILE", &globals).is_err() {
            continue;
        }
        let n = if args.null_input { "-n " } else { "" };
        let mut example = format!("evq {n}-m '{}'", text.replace('\'', "'\\''"));
        for other in args.files.iter().enumerate().filter(|(j, _)| *j != i) {
            example.push(' ');
            example.push_str(&shell_quote(&other.1.to_string_lossy()));
        }
        return Err(Fatal::usage(format!(
            "evq: '{text}' is not a file; an expression goes after -f (filter) or -m (map), as in: {example}"
        )));
    }
    Ok(())
}

/// `text` as one shell word: bare when that is safe, else in single quotes.
fn shell_quote(text: &str) -> String {
    let bare = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./,:=+@%".contains(&b));
    if bare {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Refuses `-o`, `--dead-letter` or `--checkpoint` naming a file that is also
/// an input (the same device and inode, however spelled, standard input
/// included), before anything is opened for writing: evq would truncate or
/// append to what it is reading.
fn refuse_overwriting_inputs(args: &Args, sources: &[Source]) -> Result<(), Fatal> {
    use std::os::unix::fs::MetadataExt;
    let identity = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()))
    };
    let inputs: Vec<(String, (u64, u64))> = sources
        .iter()
        .filter(|s| s.format != Format::Null)
        .filter_map(|s| {
            let path = s.path.as_deref().unwrap_or("/dev/stdin".as_ref());
            Some((s.display().to_string(), identity(path)?))
        })
        .collect();
    let written = [
        ("-o", args.output.as_ref()),
        ("--dead-letter", args.dead_letter.as_ref()),
        ("--checkpoint", args.checkpoint.as_ref()),
    ];
    for (option, path) in written {
        let Some(path) = path else { continue };
        let Some(id) = identity(path) else { continue };
        if let Some((input, _)) = inputs.iter().find(|(_, i)| *i == id) {
            return Err(Fatal::usage(format!(
                "evq: {option} {} is also an input ({input}): evq would overwrite what it reads; write to another file",
                path.display()
            )));
        }
    }
    Ok(())
}
