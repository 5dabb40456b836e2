//! The run plan: the validated, typed form of the command line. Every
//! usage error (bad variable, expression that does not compile, output that
//! cannot be opened) is found here, before any input is read; so are the
//! hints on a legal but likely mistaken chain (a filter after a window that
//! reads fields no result has).
//!
//! `Plan::new` takes the parsed flags (`cli`) through named steps: the
//! chain (`chain.rs`, with the variables of `vars.rs`), the sources, the
//! checkpoint, the outputs, the timings, the threads, the hints. Each error
//! is an `Error` (`error.rs`) whose kind is the exit status. The runtime
//! reads the plan and never fails on what was checked here. A new stage is
//! built in `chain.rs`, with one line in `Chain::compile`.

mod chain;
mod error;
mod lookup;
mod vars;

pub use chain::Chain;
pub use error::Error;
pub use lookup::Lookups;

use crate::cli::{Args, InputFormat, OnError, Parsed, StatsFormat};
use crate::jq::{Globals, Program};
use crate::json::Fields;
use crate::kafka::Address;
use crate::sink::{DeadLetter, FileSink, Formatter, Pretty, Sink};
use crate::source::checkpoint::Checkpoint;
use crate::source::{Follow, Format, Source};
use std::path::PathBuf;
use std::time::Duration;
use vars::Binding;

pub struct Plan {
    pub sources: Vec<Source>,
    /// How input bytes become events (`-n`, `-R`, `--input-format`).
    pub input_format: Format,
    /// The stages, compiled once and checked; each worker thread builds its own.
    pub chain: Chain,
    /// Worker threads running the stages.
    pub threads: usize,
    /// Build only the fields the stages read (see `fields`), or `None` for whole events.
    pub projection: Option<Fields>,
    /// The chain as direct evaluation runs it (see `direct`), when it can.
    pub direct: Option<crate::jq::direct::Chain>,
    /// `--join FILE`: its place among the sources (the last one).
    pub join_source: Option<usize>,
    /// The join's FILE side as direct evaluation runs it, when it can.
    pub direct_right: Option<crate::jq::direct::Chain>,
    pub formatter: Formatter,
    pub output: Box<dyn Sink>,
    pub dead_letter: Option<DeadLetter>,
    pub stats: Option<StatsFormat>,
    /// `--checkpoint`: the file, what it held at the start, how often to write it.
    pub checkpoint: Option<(PathBuf, Checkpoint, Duration)>,
    /// `--follow`: how often to look at idle files and how long to read a
    /// rotated one; `None` without it.
    pub follow: Option<Follow>,
    /// Print the stats this often while running (`--stats-every`).
    pub stats_every: Option<Duration>,
    pub on_error: OnError,
    pub exit_status: bool,
    pub quiet: bool,
    /// Show the progress bar; `progress_forced` draws it even off a terminal
    /// or on the one the events go to.
    pub progress: bool,
    pub progress_forced: bool,
    /// `--lookup`: the tables, read and in force; what `-F` reloads.
    pub lookups: Lookups,
    /// How often a `kafka://` input's offsets are committed (`--checkpoint-every`).
    pub commit_every: Duration,
}

impl Plan {
    pub fn new(args: Args) -> Result<Plan, Error> {
        nothing_to_do(&args)?;
        window_options_alone(&args)?;
        let bindings = vars::bindings(&args.vars)?;
        // Declared before the chain compiles: its expressions may use them.
        let mut lookups = lookup::prepare(&args, &bindings)?;
        let chain = Chain::new(&args, bindings)?;
        mistaken_expression(&args, chain.vars())?;
        let (input_format, mut sources) = sources(&args)?;
        let join_source = join_source(&args, &mut sources)?;
        let checkpoint = checkpoint(&args, &sources, &chain)?;
        let (follow, stats_every) = timings(&args)?;
        let commit_every = given("--checkpoint-every", &args.checkpoint_every)?;
        // Read before any output is opened and any input read.
        lookups.load()?;
        // Opened only now, so a usage error never truncates an output file.
        let (output, dead_letter) = outputs(&args, &chain)?;
        // Never between events on a terminal, unless asked for (see progress.rs).
        let progress = !args.no_progress
            && (args.progress || crate::report::progress::by_default(args.output.as_deref()));
        let threads = threads(&args);
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
            // A stateful chain's output comes from its state's owner:
            // direct evaluation only extracts, whatever the format.
            direct: if whole || !(formatter.plain() || chain.stateful()) {
                None
            } else {
                chain.direct()
            },
            direct_right: if whole { None } else { chain.direct_right() },
            join_source,
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
            lookups,
            commit_every,
        })
    }
}

/// Whether the command line has a window stage (`--window` or `--agg`).
fn has_window(args: &Args) -> bool {
    args.window.is_some() || !args.aggs.is_empty()
}

/// No stage, no FILE and standard input a terminal: nothing to do but wait
/// for a person to type events, so say how evq is used instead, as jq and
/// ripgrep do.
fn nothing_to_do(args: &Args) -> Result<(), Error> {
    if args.stages.is_empty()
        && args.files.is_empty()
        && !args.null_input
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        return Err(Error::Usage(crate::cli::short_usage()));
    }
    Ok(())
}

/// `--key`, `--time` and `--lateness` are options of the window, join or
/// pattern stage: refused without one, and `--time` and `--lateness` with `--agg`
/// alone; the join's own options without `--join`, and a join beside a
/// window (their options would mix); `--def` and `--match-timeouts`
/// without `--match`, and a pattern beside a window or a join.
fn window_options_alone(args: &Args) -> Result<(), Error> {
    let join = args.join.is_some();
    let pattern = args.pattern.is_some();
    if pattern && (join || has_window(args)) {
        let other = if join { "--join" } else { "--window/--agg" };
        return Err(Error::Usage(format!(
            "evq: --match and {other} cannot be in one run (they would share --key and --time); pipe the matches into a second evq"
        )));
    }
    for (given, option) in [
        (!args.defs.is_empty(), "--def"),
        (args.match_timeouts, "--match-timeouts"),
    ] {
        if given && !pattern {
            return Err(Error::Usage(format!(
                "evq: {option} goes with --match PATTERN"
            )));
        }
    }
    if pattern {
        for (given, option) in [
            (!args.join_keys.is_empty(), "--join-key"),
            (args.join_time.is_some(), "--join-time"),
            (args.join_type.is_some(), "--join-type"),
        ] {
            if given {
                return Err(Error::Usage(format!("evq: {option} goes with --join FILE")));
            }
        }
        if args.match_timeouts && args.within.is_none() {
            return Err(Error::Usage(
                "evq: --match-timeouts needs --within DURATION: a timeout is a partial match that --within cut off".into(),
            ));
        }
        return Ok(());
    }
    if join && has_window(args) {
        return Err(Error::Usage(
            "evq: --join and --window/--agg cannot be in one run (they would share --key and --time); pipe the join's pairs into a second evq to aggregate them".into(),
        ));
    }
    for (given, option) in [
        (!args.keys.is_empty(), "--key"),
        (args.time.is_some(), "--time"),
        (args.lateness.is_some(), "--lateness"),
    ] {
        if given && !has_window(args) && !join {
            return Err(Error::Usage(format!(
                "evq: {option} goes with --window, --agg, --join or --match"
            )));
        }
    }
    for (given, option) in [
        (args.time.is_some(), "--time"),
        (args.lateness.is_some(), "--lateness"),
    ] {
        if given && args.window.is_none() && !join {
            return Err(Error::Usage(format!(
                "evq: {option} needs --window (--agg alone groups the whole input, with no time)"
            )));
        }
    }
    if args.within.is_some() && !join {
        return Err(Error::Usage(
            "evq: --within goes with --join FILE or --match PATTERN".into(),
        ));
    }
    for (given, option) in [
        (!args.join_keys.is_empty(), "--join-key"),
        (args.join_time.is_some(), "--join-time"),
        (args.join_type.is_some(), "--join-type"),
    ] {
        if given && !join {
            return Err(Error::Usage(format!("evq: {option} goes with --join FILE")));
        }
    }
    Ok(())
}

/// `--join FILE`: the last source, read beside the others; opened now, so
/// a FILE that cannot be read stops the run before anything is (exit 4).
/// Only NDJSON main inputs are joined.
fn join_source(args: &Args, sources: &mut Vec<Source>) -> Result<Option<usize>, Error> {
    let Some(file) = &args.join else {
        return Ok(None);
    };
    for (given, option) in [
        (args.null_input, "-n/--null-input"),
        (args.raw_input, "-R/--raw-input"),
        (
            args.input_format == InputFormat::Json,
            "--input-format json",
        ),
    ] {
        if given {
            return Err(Error::Usage(format!(
                "evq: --join reads NDJSON events on both sides, and cannot be used with {option}"
            )));
        }
    }
    if file.as_os_str() == "-" {
        return Err(Error::Usage(
            "evq: --join needs a FILE: standard input is the main input's".into(),
        ));
    }
    if let Err(e) = std::fs::File::open(file) {
        return Err(Error::io("--join: cannot read", file, &e));
    }
    sources.push(Source::new(file));
    refuse_overwriting_inputs(args, sources)?;
    Ok(Some(sources.len() - 1))
}

/// The inputs, each read in the input format (`-n`: one null event, no
/// input; none: standard input), refused when one is also written to.
fn sources(args: &Args) -> Result<(Format, Vec<Source>), Error> {
    let input_format = match (args.null_input, args.raw_input, args.input_format) {
        (true, _, _) => Format::Null,
        (_, true, _) => Format::Raw,
        (_, _, InputFormat::Json) => Format::Json,
        (_, _, InputFormat::Ndjson) => Format::Ndjson,
    };
    if let Some(kafka) = kafka_input(args, input_format)? {
        let sources: Vec<Source> = (0..kafka.partitions.len())
            .map(|i| Source::kafka(&kafka, i).with_format(input_format))
            .collect();
        return Ok((input_format, sources));
    }
    let mut sources: Vec<Source> = args
        .files
        .iter()
        .map(|p| Source::new(p).with_format(input_format))
        .collect();
    if input_format == Format::Null {
        null_input_alone(args)?;
        sources.push(Source::null());
    }
    if sources.is_empty() {
        sources.push(Source::new("-".as_ref()).with_format(input_format));
    }
    refuse_overwriting_inputs(args, &sources)?;
    Ok((input_format, sources))
}

/// A `kafka://` input among the FILE arguments: checked, then its topics'
/// partitions looked up on the brokers (each becomes a source). It is the
/// only main input of its run, read as NDJSON or `-R` lines, and its
/// offsets are kept by its consumer group, not by `--checkpoint`.
fn kafka_input(
    args: &Args,
    format: Format,
) -> Result<Option<std::sync::Arc<crate::source::kafka::KafkaInput>>, Error> {
    use crate::kafka::Address;
    let named = |p: &PathBuf| p.to_str().filter(|s| Address::is(s)).map(str::to_string);
    let kafka: Vec<String> = args.files.iter().filter_map(named).collect();
    let Some(arg) = kafka.first() else {
        return Ok(None);
    };
    let usage = |message: String| Err(Error::Usage(format!("evq: {message}")));
    if kafka.len() > 1 {
        return usage(format!(
            "{arg}: one kafka:// input per run; name several topics in it as kafka://BROKERS/TOPIC1,TOPIC2"
        ));
    }
    if args.files.len() > 1 {
        return usage(format!(
            "{arg}: a kafka:// input cannot be read together with files or standard input; run one evq for each"
        ));
    }
    if matches!(format, Format::Json | Format::Null) {
        let option = if format == Format::Null {
            "-n"
        } else {
            "--input-format json"
        };
        return usage(format!(
            "{arg}: {option} does not go with a kafka:// input (each message holds NDJSON lines, or -R lines)"
        ));
    }
    if args.checkpoint.is_some() {
        return usage(format!(
            "{arg}: --checkpoint is for files; a kafka:// input keeps its offsets in its consumer group (--group)"
        ));
    }
    let address = Address::parse(arg).map_err(|e| Error::Usage(format!("evq: {e}")))?;
    let properties = kafka_properties(args)?;
    if cfg!(not(feature = "kafka")) {
        return usage(format!(
            "{arg}: this evq was built without Kafka (cargo feature `kafka`)"
        ));
    }
    #[cfg(feature = "kafka")]
    {
        use crate::cli::KafkaStart;
        use crate::source::kafka::{KafkaInput, Start};
        let start = match args.kafka_start {
            KafkaStart::Earliest => Start::Earliest,
            KafkaStart::Latest => Start::Latest,
        };
        let input = KafkaInput::open(address, args.group.clone(), start, properties, 0)
            .map_err(|e| Error::Io(format!("evq: {e}")))?;
        Ok(Some(std::sync::Arc::new(input)))
    }
    #[cfg(not(feature = "kafka"))]
    {
        let _ = (address, properties);
        unreachable!("refused above")
    }
}

/// `-X KEY=VALUE`, each checked.
pub(crate) fn kafka_properties(args: &Args) -> Result<Vec<(String, String)>, Error> {
    args.kafka_properties
        .iter()
        .map(|p| {
            p.value
                .clone()
                .map_err(|e| Error::Usage(format!("evq: -X {e}")))
        })
        .collect()
}

/// `--checkpoint`: the file, what it holds now (where to resume), and how
/// often to write it. Files only. A checkpoint that holds state, or one
/// resumed by a chain with state, must come from the same chain: state
/// saved by one chain means nothing to another.
fn checkpoint(
    args: &Args,
    sources: &[Source],
    chain: &Chain,
) -> Result<Option<(PathBuf, Checkpoint, Duration)>, Error> {
    let Some(path) = &args.checkpoint else {
        return Ok(None);
    };
    if sources.iter().any(|s| s.path().is_none()) {
        return Err(Error::Usage(
            "evq: --checkpoint needs files: standard input cannot be resumed".into(),
        ));
    }
    let every = given("--checkpoint-every", &args.checkpoint_every)?;
    let loaded = Checkpoint::load(path).map_err(Error::Io)?;
    let this = chain.fingerprint();
    let started = !loaded.files.is_empty() || loaded.state.is_some();
    let stateful = loaded.state.is_some() || chain.stateful();
    if started && stateful && loaded.chain.as_deref() != Some(this.as_str()) {
        let before = loaded.chain.as_deref().unwrap_or("a chain of an older evq");
        return Err(Error::Usage(format!(
            "evq: --checkpoint {} was written for another chain: it holds the state of `{before}`, and this run's chain is `{this}`; resuming would mix the two. Run with the same stages and options, or give another --checkpoint file (or delete this one to start over)",
            path.display()
        )));
    }
    // The state must be one this chain's stateful stage takes back: tried
    // on a copy now, so a bad one is refused before any output is opened.
    if let Some(state) = &loaded.state {
        let mut steps = chain.build()?;
        let restored = match steps.iter_mut().find_map(|s| s.stateful_mut()) {
            Some(stage) => stage.restore(&state["stage"], &mut Default::default()),
            None => Err("this chain has no stateful stage".into()),
        };
        if let Err(e) = restored {
            return Err(Error::Usage(format!(
                "evq: --checkpoint {}: the state it holds cannot be restored: {e}",
                path.display()
            )));
        }
    }
    Ok(Some((path.clone(), loaded, every)))
}

/// The event output (`-o FILE`, `-o kafka://…` or standard output) and
/// the dead letter (a file or `kafka://…`), opened: a topic first (opening
/// it changes nothing, and checks that the broker answers and the topic
/// exists), then the files.
fn outputs(args: &Args, chain: &Chain) -> Result<(Box<dyn Sink>, Option<DeadLetter>), Error> {
    let output_topic = kafka_output("-o", args.output.as_deref())?;
    let dead_letter_topic = kafka_output("--dead-letter", args.dead_letter.as_deref())?;
    match &output_topic {
        None if args.kafka_key.is_some() => {
            return Err(Error::Usage(
                "evq: --kafka-key goes with -o kafka://BROKERS/TOPIC: it is the key of each message written there".into(),
            ));
        }
        Some(address) => one_event_a_line(args, address)?,
        None => {}
    }
    let [output_sink, dead_letter_sink] =
        open_kafka_outputs(args, chain, [output_topic, dead_letter_topic])?;
    let output: Box<dyn Sink> = match (&args.output, output_sink) {
        (_, Some(topic)) => topic,
        (None, None) => Box::new(FileSink::stdout()),
        (Some(path), None) => Box::new(
            FileSink::create(path).map_err(|e| Error::io("cannot create output file", path, &e))?,
        ),
    };
    let dead_letter = match (&args.dead_letter, dead_letter_sink) {
        (_, Some(topic)) => Some(DeadLetter::to_sink(topic)),
        (None, None) => None,
        (Some(path), None) => Some(
            DeadLetter::open(path)
                .map_err(|e| Error::io("cannot open dead-letter file", path, &e))?,
        ),
    };
    Ok((output, dead_letter))
}

/// `-o` or `--dead-letter` naming a `kafka://BROKERS/TOPIC` address: the
/// address, checked (one topic); `None` for a file.
fn kafka_output(option: &str, path: Option<&std::path::Path>) -> Result<Option<Address>, Error> {
    let Some(arg) = path.and_then(|p| p.to_str()).filter(|a| Address::is(a)) else {
        return Ok(None);
    };
    if !cfg!(feature = "kafka") {
        return Err(Error::Usage(format!(
            "evq: {arg}: this evq was built without Kafka (cargo feature `kafka`)"
        )));
    }
    let address = Address::parse(arg).map_err(|e| Error::Usage(format!("evq: {option} {e}")))?;
    if address.topics.len() > 1 {
        return Err(Error::Usage(format!(
            "evq: {option} {arg}: a Kafka output writes to one topic; name one"
        )));
    }
    Ok(Some(address))
}

/// A Kafka output takes one event a message, written on one line: the
/// formats that spread an event over lines or run events together are refused.
fn one_event_a_line(args: &Args, address: &Address) -> Result<(), Error> {
    for (given, option) in [
        (args.indent.is_some(), "--indent"),
        (args.tab, "--tab"),
        (args.join_output, "--join-output"),
    ] {
        if given {
            return Err(Error::Usage(format!(
                "evq: {option} cannot be used with -o {}: each event is one message, written on one line",
                address.name()
            )));
        }
    }
    Ok(())
}

/// The Kafka sinks of `-o` and `--dead-letter`, opened (`None` where the
/// address is `None`), with the `-X` settings; `--kafka-key` is compiled
/// here, so that a bad one is a usage error before anything is read.
#[cfg(feature = "kafka")]
fn open_kafka_outputs(
    args: &Args,
    chain: &Chain,
    addresses: [Option<Address>; 2],
) -> Result<[Option<Box<dyn Sink>>; 2], Error> {
    use crate::sink::{KafkaKey, KafkaOpenError, KafkaSink};
    if addresses.iter().all(Option::is_none) {
        return Ok([None, None]);
    }
    let properties = (args.kafka_properties.iter())
        .map(|p| given("-X", p))
        .collect::<Result<Vec<_>, _>>()?;
    let key = match &args.kafka_key {
        None => None,
        Some(expr) => {
            let bindings = chain.vars().to_vec();
            let library = std::sync::Arc::new(crate::jq::Library::new(args.library_path.clone()));
            let compile = {
                let expr = expr.clone();
                move || -> Result<Program, String> {
                    let globals = vars::variables(&bindings)
                        .map(Globals::new)
                        .map_err(|e| e.to_string())?
                        .with_library(library.clone());
                    Program::compile(&expr, "--kafka-key", &globals)
                }
            };
            compile().map_err(|report| Error::Usage(report.trim_end().to_string()))?;
            Some(KafkaKey::new(
                expr,
                &vars::variables(chain.vars())?,
                compile,
            ))
        }
    };
    let [output, dead_letter] = addresses;
    let open = |address: Option<Address>, key| -> Result<Option<Box<dyn Sink>>, Error> {
        let Some(address) = address else {
            return Ok(None);
        };
        match KafkaSink::open(&address, &properties, key) {
            Ok(sink) => Ok(Some(Box::new(sink))),
            Err(KafkaOpenError::Config(e)) => Err(Error::Usage(format!("evq: {e}"))),
            Err(KafkaOpenError::Broker(e)) => Err(Error::Io(format!("evq: {e}"))),
        }
    };
    Ok([open(output, key)?, open(dead_letter, None)?])
}

/// Without the `kafka` feature, `kafka_output` refused every address.
#[cfg(not(feature = "kafka"))]
fn open_kafka_outputs(
    _: &Args,
    _: &Chain,
    _: [Option<Address>; 2],
) -> Result<[Option<Box<dyn Sink>>; 2], Error> {
    Ok([None, None])
}

/// `--follow` with its `--follow-interval` and `--rotate-wait` (checked
/// also without it), and `--stats-every`.
fn timings(args: &Args) -> Result<(Option<Follow>, Option<Duration>), Error> {
    let interval = given("--follow-interval", &args.follow_interval)?;
    let rotate_wait = given("--rotate-wait", &args.rotate_wait)?;
    let follow = args.follow.then_some(Follow {
        interval,
        rotate_wait,
    });
    let stats_every = match &args.stats_every {
        None => None,
        Some(every) => Some(given("--stats-every", every)?),
    };
    Ok((follow, stats_every))
}

/// The value of an option, or its error as evq says it:
/// `evq: --rotate-wait: invalid duration "5x": …`.
fn given<T: Clone>(option: &str, parsed: &Parsed<T>) -> Result<T, Error> {
    parsed
        .value
        .clone()
        .map_err(|e| Error::Usage(format!("evq: {option}: {e}")))
}

/// Worker threads: `-j`, or one per core. A window's chain runs on all of
/// them too: they extract, and its state's owner applies in input order.
fn threads(args: &Args) -> usize {
    match args.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
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

/// `-n` reads no input: a FILE would go unread, and nothing can be followed
/// or resumed.
fn null_input_alone(args: &Args) -> Result<(), Error> {
    if let Some(file) = args.files.first() {
        return Err(Error::Usage(format!(
            "evq: -n/--null-input reads no input, so FILE {} would not be read (evq has no input or inputs); leave it out, or drop -n to read it",
            file.display()
        )));
    }
    for (given, option) in [
        (args.follow, "--follow"),
        (args.checkpoint.is_some(), "--checkpoint"),
    ] {
        if given {
            return Err(Error::Usage(format!(
                "evq: {option} cannot be used with -n/--null-input: there is no input"
            )));
        }
    }
    Ok(())
}

/// The jq habit `evq EXPR FILE`: a FILE argument that does not exist but
/// compiles as a jq expression was meant as one. Said before anything is
/// read, rather than failing on a missing file and passing the rest through.
fn mistaken_expression(args: &Args, vars: &[Binding]) -> Result<(), Error> {
    for (i, file) in args.files.iter().enumerate() {
        let Some(text) = file.to_str() else { continue };
        if text == "-" || std::fs::symlink_metadata(file).is_ok() {
            continue;
        }
        let globals = Globals::new(vars::variables(vars).unwrap_or_default());
        if Program::compile(text, "FILE", &globals).is_err() {
            continue;
        }
        let n = if args.null_input { "-n " } else { "" };
        let mut example = format!("evq {n}-m '{}'", text.replace('\'', "'\\''"));
        for other in args.files.iter().enumerate().filter(|(j, _)| *j != i) {
            example.push(' ');
            example.push_str(&shell_quote(&other.1.to_string_lossy()));
        }
        return Err(Error::Usage(format!(
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
fn refuse_overwriting_inputs(args: &Args, sources: &[Source]) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let identity = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()))
    };
    let inputs: Vec<(String, (u64, u64))> = sources
        .iter()
        .filter(|s| s.format != Format::Null && s.kafka_input().is_none())
        .filter_map(|s| {
            let path = s.path().unwrap_or("/dev/stdin".as_ref());
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
            return Err(Error::Usage(format!(
                "evq: {option} {} is also an input ({input}): evq would overwrite what it reads; write to another file",
                path.display()
            )));
        }
    }
    Ok(())
}
