//! Command-line definitions: every flag is declared once, here, with the
//! value parser that gives its value a type (durations, window specs,
//! aggregates). `--help`, the man page and completions (`help.rs`) and the
//! run plan all derive from these. A new flag goes in `Args`; its help text
//! is its doc comment.

mod help;

pub use help::{generate, short_usage};

use crate::stage::join::{self, JoinType};
use crate::stage::window::agg::{self, AggSpec};
use crate::stage::window::time::{self, WindowSpec};
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use help::{ABOUT, LONG_ABOUT, after_long_help};
use std::path::PathBuf;
use std::time::Duration;

/// Output format of `--stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// An aligned table for a terminal.
    Text,
    /// One JSON object on one line.
    Json,
}

/// What a failed event does to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Report and count it, go on; exit 3 at the end.
    Skip,
    /// Stop at the first failed event (after writing everything before it); exit 3.
    Abort,
    /// Report and count it, go on; failures do not change the exit status.
    Ignore,
}

/// How the input is read (`--input-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One JSON value per line (NDJSON, JSON Lines).
    Ndjson,
    /// Any JSON text: values separated by white space, each one event (as jq reads).
    Json,
}

/// Where a kafka:// input starts in a partition with no committed offset (`--kafka-start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KafkaStart {
    /// At the oldest message the broker keeps.
    Earliest,
    /// After the last message: only what is produced from now on.
    Latest,
}

/// What a variable binding on the command line binds its name to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarKind {
    /// `--arg NAME VALUE`: the string VALUE.
    Arg,
    /// `--argjson NAME JSON`: the JSON value.
    ArgJson,
    /// `--slurpfile NAME FILE`: an array of the JSON values in FILE.
    SlurpFile,
    /// `--rawfile NAME FILE`: FILE's text as a string.
    RawFile,
}

impl VarKind {
    /// The option, for messages.
    pub fn option(self) -> &'static str {
        match self {
            VarKind::Arg => "--arg",
            VarKind::ArgJson => "--argjson",
            VarKind::SlurpFile => "--slurpfile",
            VarKind::RawFile => "--rawfile",
        }
    }
}

/// What `--generate` writes to standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The roff man page, as committed in man/evq.1.
    Man,
    /// Completion script for bash.
    CompleteBash,
    /// Completion script for zsh.
    CompleteZsh,
    /// Completion script for fish.
    CompleteFish,
    /// Completion script for PowerShell.
    CompletePowershell,
    /// Completion script for elvish.
    CompleteElvish,
}

/// The arguments as clap parses them; `plan` turns them into a run plan.
#[derive(Parser, Debug)]
#[command(
    name = "evq",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = "Exit status: 0 ok, 1 nothing emitted under -e, 2 usage or expression error, 3 events failed, 4 I/O error. See --help for more.",
    after_long_help = after_long_help(),
    max_term_width = 100,
    args_override_self = true
)]
pub struct Args {
    /// Input files, read in order; '-' or none reads standard input; kafka://BROKERS/TOPIC[,TOPIC…] reads Kafka topics in a consumer group (see --group).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Keep the event when EXPR yields at least one value that is not false or null.
    #[arg(short = 'f', long = "filter", value_name = "EXPR", action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub filters: Vec<String>,

    /// Replace the event by every value EXPR yields: none drops it, several fan out.
    #[arg(short = 'm', long = "map", value_name = "EXPR", action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub maps: Vec<String>,

    /// Bind $NAME to the string VALUE in every expression.
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"], action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub arg: Vec<String>,

    /// Bind $NAME to the JSON value JSON in every expression.
    #[arg(long, num_args = 2, value_names = ["NAME", "JSON"], action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub argjson: Vec<String>,

    /// Bind $NAME to an array of all the JSON values in FILE (read before any event; no size limit, unlike --argjson "$(cat FILE)").
    #[arg(long, num_args = 2, value_names = ["NAME", "FILE"], action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub slurpfile: Vec<String>,

    /// Bind $NAME to the text of FILE, as a string.
    #[arg(long, num_args = 2, value_names = ["NAME", "FILE"], action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub rawfile: Vec<String>,

    /// Load FILE once, before any event, and bind $NAME in every expression to its rows keyed by KEY | tostring, as jq's INDEX(rows; KEY): $NAME[.user_id] is the row or null, so -m '.team = $NAME[.user_id].team' is a left join and -f '$NAME[.user_id] != null' an inner one (a number is looked up as $NAME[.id | tostring]). FILE is NDJSON (gzip or zstd by content), or CSV or TSV when its name ends in .csv or .tsv (a header row names the fields; values are strings). A later row with the same key replaces the earlier one; a row that is not valid or whose KEY fails is reported and skipped. With -F a changed FILE is loaded again between batches. Repeat for more tables.
    #[arg(long, num_args = 3, value_names = ["NAME", "FILE", "KEY"], action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Stages")]
    pub lookup: Vec<String>,

    /// Look in DIR for the modules and data files that import and include name (repeat for several, searched in order). Default: ~/.jq, $ORIGIN/../lib/jq, $ORIGIN/../lib ($ORIGIN: the directory of the evq executable).
    #[arg(short = 'L', long = "library-path", value_name = "DIR", action = ArgAction::Append, help_heading = "Stages")]
    pub library_path: Vec<PathBuf>,

    /// Aggregate events per key over windows of event time: tumbling:SIZE, sliding:SIZE/SLIDE or session:GAP (durations like 250ms, 10s, 5m, 1h, 1d). The window stage sits where this option is in the chain.
    #[arg(long, value_name = "SPEC", value_parser = Parsed::parser(time::parse_window), help_heading = "Windows")]
    pub window: Option<Parsed<WindowSpec>>,

    /// Group the window's events by EXPR, or pair --join's events on it (repeat for a composite key; a window result's "key" is then an array).
    #[arg(long = "key", value_name = "EXPR", action = ArgAction::Append, help_heading = "Windows")]
    pub keys: Vec<String>,

    /// Event time: seconds since the epoch (>= 1e11 ms, >= 1e14 µs, >= 1e17 ns) or an RFC 3339 string. Default for windows: arrival time (--join needs it).
    #[arg(long, value_name = "EXPR", help_heading = "Windows")]
    pub time: Option<String>,

    /// An aggregate per window and key: count, sum, avg, min, max, first, last, count_distinct, p50, p90, p95, p99, percentile(EXPR; Q), collect(EXPR; LIMIT) (at most LIMIT values, default 10000; evq says at the end where values were dropped). Without --window: one result per key at the end (group-by).
    #[arg(long = "agg", value_name = "NAME=FUNC(EXPR)", action = ArgAction::Append, value_parser = Parsed::parser(agg::parse_agg), help_heading = "Windows")]
    pub aggs: Vec<Parsed<AggSpec>>,

    /// How far behind the greatest event time an event may come and still count, in a window or a join (default 0); later events are dead-lettered as late, and counted on standard error at the end (unless -q).
    #[arg(long, value_name = "DURATION", value_parser = Parsed::parser(time::parse_lateness), help_heading = "Windows")]
    pub lateness: Option<Parsed<i64>>,

    /// Pair each event with each event of FILE (NDJSON, may be compressed) whose key is equal and whose time is within --within of its own: {"left": EVENT, "right": EVENT OF FILE}. The join stage sits where this option is in the chain; stages before it see only the main input's events, stages after it the pairs. Needs --key and --time (FILE's events use --join-key and --join-time when given).
    #[arg(long, value_name = "FILE", help_heading = "Joins")]
    pub join: Option<PathBuf>,

    /// The key of FILE's events in --join, when it differs from --key (repeat for a composite key, as --key).
    #[arg(long = "join-key", value_name = "EXPR", action = ArgAction::Append, help_heading = "Joins")]
    pub join_keys: Vec<String>,

    /// The time of FILE's events in --join, when it differs from --time.
    #[arg(long, value_name = "EXPR", help_heading = "Joins")]
    pub join_time: Option<String>,

    /// With --join: how far a FILE event's time may be from the event's it pairs with: LOWER..UPPER (FILE's time minus the event's; 0s..10m: up to 10 minutes after), or D for -D..D. Bounds included. With --match: one positive DURATION, the most a match spans from its first event to its last.
    #[arg(long, value_name = "LOWER..UPPER", value_parser = Parsed::parser(join::parse_within), allow_hyphen_values = true, help_heading = "Joins")]
    pub within: Option<Parsed<(i64, i64)>>,

    /// Define an event class for --match: an event belongs to NAME when EXPR yields a value that is not false or null (an event may belong to several classes; one of none is invisible to the pattern). Repeat for more classes (at most 63); the order of the --defs decides which class an event of several is shown as.
    #[arg(long = "def", value_name = "NAME=EXPR", action = ArgAction::Append, allow_hyphen_values = true, help_heading = "Patterns")]
    pub defs: Vec<String>,

    /// Find sequences of events per --key: PATTERN is a regular expression over --def class names (concatenation, ( ), |, ?, *, +, {n}, {n,}, {n,m}; greedy), as 'fail{3,} ok'. Each match is one event {"key", "start", "end", "status": "matched", "events": {CLASS: [EVENT, …], …}}; a match starts at every event of some class, in event time (--time, default arrival), spans at most --within DURATION and is emitted once it cannot grow; the next starts after its last event. The stage sits where this option is in the chain.
    #[arg(
        long = "match",
        value_name = "PATTERN",
        allow_hyphen_values = true,
        help_heading = "Patterns"
    )]
    pub pattern: Option<String>,

    /// With --match and --within: also emit each partial match that --within (or the end of input) cut off before it completed, with "status": "timeout" and the events it had.
    #[arg(long = "match-timeouts", help_heading = "Patterns")]
    pub match_timeouts: bool,

    /// Which events without a partner the join emits too, once the watermark shows none can come: inner (none), left (the main input's, as {"left": E, "right": null}), right (FILE's), full (both).
    #[arg(long, value_name = "TYPE", value_enum, help_heading = "Joins")]
    pub join_type: Option<JoinType>,

    /// Run the chain once, on null, and read no input (no FILE may be given): evq -n -m 'range(3)'.
    #[arg(short = 'n', long, help_heading = "Input")]
    pub null_input: bool,

    /// Each line of input is one string event, as is (blank lines too, no newline; a CR or BOM is kept; bytes that are not UTF-8 become U+FFFD), as jq -R reads: plain-text logs become events with capture.
    #[arg(short = 'R', long, help_heading = "Input")]
    pub raw_input: bool,

    /// ndjson: one JSON value per line. json: any JSON text, as jq reads it: values separated by white space (pretty-printed documents, {"a":1}{"a":2}), each one event, numbered by the line where it starts; after a malformed value evq resumes at the next line that starts a value no deeper indented.
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        default_value_t = InputFormat::Ndjson,
        conflicts_with = "raw_input",
        help_heading = "Input"
    )]
    pub input_format: InputFormat,

    /// Keep reading each FILE as it grows, like tail -F (rotated files are followed to the new file, the old one still read for --rotate-wait; truncated ones are read again from the start), until SIGINT or SIGTERM. A kafka:// input keeps consuming (without -F it stops at the end of its partitions).
    #[arg(short = 'F', long, help_heading = "Input")]
    pub follow: bool,

    /// How often --follow looks for new data when files are idle (it bounds the latency of a followed line).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "50ms",
        value_parser = Parsed::parser(duration),
        help_heading = "Input"
    )]
    pub follow_interval: Parsed<Duration>,

    /// With --follow: after a rotation is seen (the file renamed away, a new file under its name), keep reading the old file alongside the new one for DURATION, so lines its writer still appends are not lost and a partial last line can get its newline; then it is read to its end and closed. The same idea as Fluent Bit's Rotate_Wait.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = Parsed::parser(duration),
        help_heading = "Input"
    )]
    pub rotate_wait: Parsed<Duration>,

    /// Remember in FILE where processing of each input file finished, and resume there on the next run (at-least-once: nothing is lost, at most what came after the last checkpoint is emitted again). With --window or --agg it also holds the open windows, so results come out whole; it is refused by another chain (exit 2).
    #[arg(long, value_name = "FILE", help_heading = "Input")]
    pub checkpoint: Option<PathBuf>,

    /// How often --checkpoint is written while running (it is also written at exit); a large window state is written at most about a third of the time. Also how often a kafka:// input's offsets are committed.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "5s",
        value_parser = Parsed::parser(duration),
        help_heading = "Input"
    )]
    pub checkpoint_every: Parsed<Duration>,

    /// Consumer group of the kafka:// inputs: processes with the same group share the topics' partitions, each read by one of them. Offsets are committed to the group only once the events before them are written (at --checkpoint-every, at exit, and before a rebalance takes a partition away).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "evq",
        help_heading = "Kafka"
    )]
    pub group: String,

    /// Where a kafka:// input starts reading a partition for which the group has no committed offset.
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = KafkaStart::Earliest, help_heading = "Kafka")]
    pub kafka_start: KafkaStart,

    /// The key of each message written to a kafka:// output: EXPR on the output event (a string is used as it is, another value as its JSON text, null or no value: no key). Default: no key.
    #[arg(
        long,
        value_name = "EXPR",
        allow_hyphen_values = true,
        help_heading = "Kafka"
    )]
    pub kafka_key: Option<String>,

    /// Set a librdkafka property (as kcat -X) on every Kafka client, e.g. -X security.protocol=SASL_SSL. evq waits for a broker at most 10 s at start and for delivery reports at most 10 s at a flush (set socket.timeout.ms and message.timeout.ms to change it); then it exits 4 naming the broker and topic.
    #[arg(short = 'X', value_name = "KEY=VALUE", action = ArgAction::Append, value_parser = Parsed::parser(crate::kafka::property), help_heading = "Kafka")]
    pub kafka_properties: Vec<Parsed<(String, String)>>,

    /// Write events to FILE instead of standard output (created or truncated; refused when FILE is also an input); kafka://BROKERS/TOPIC writes each event as one message (see --kafka-key).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,

    /// Write string events without quotes or escapes, as jq -r does.
    #[arg(short, long, help_heading = "Output")]
    pub raw_output: bool,

    /// Like -r, with no newline after each event (jq's -j; in evq -j is --threads).
    #[arg(long, help_heading = "Output")]
    pub join_output: bool,

    /// One event a line, no white space: the default, accepted as jq spells it (the last of -c, --indent and --tab wins).
    #[arg(short = 'c', long, overrides_with_all = ["compact_output", "indent", "tab"], help_heading = "Output")]
    pub compact_output: bool,

    /// Pretty-print each event, indented by N spaces (0 to 7; 0 puts every value on a line of its own, unindented, as jq 1.8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=7), overrides_with_all = ["compact_output", "indent", "tab"], help_heading = "Output")]
    pub indent: Option<u8>,

    /// Pretty-print each event, indented by a tab a level.
    #[arg(long, overrides_with_all = ["compact_output", "indent", "tab"], help_heading = "Output")]
    pub tab: bool,

    /// Write the keys of every object in sorted order.
    #[arg(short = 'S', long, help_heading = "Output")]
    pub sort_keys: bool,

    /// Colour the JSON as jq does (JQ_COLORS sets the colours), also when standard output is not a terminal. Default: colour when the events go to a terminal and NO_COLOR is unset or empty.
    #[arg(short = 'C', long, help_heading = "Output")]
    pub color_output: bool,

    /// Never colour the JSON (wins over -C/--color-output, as in jq).
    #[arg(short = 'M', long, help_heading = "Output")]
    pub monochrome_output: bool,

    /// Write every character beyond ASCII as a \uXXXX escape (a surrogate pair above U+FFFF).
    #[arg(short = 'a', long, help_heading = "Output")]
    pub ascii_output: bool,

    /// Exit 1 when no event was emitted, as grep does.
    #[arg(short, long, help_heading = "Output")]
    pub exit_status: bool,

    /// Print the run's metrics to standard error on exit: a table (text) or one JSON line (json).
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, require_equals = true, default_missing_value = "text", value_enum, help_heading = "Accounting")]
    pub stats: Option<StatsFormat>,

    /// Also print the metrics every DURATION while running (e.g. 10s, 1m), in the --stats format, with rates over the last interval.
    #[arg(long, value_name = "DURATION", value_parser = Parsed::parser(duration), help_heading = "Accounting")]
    pub stats_every: Option<Parsed<Duration>>,

    /// What a failed event does: skip it (exit 3 at the end), abort the run (exit 3), or ignore it (exit status unchanged).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = OnError::Skip, help_heading = "Accounting")]
    pub on_error: OnError,

    /// Append each failed event to FILE as a JSON line {source, line, stage, error, raw} (kafka://BROKERS/TOPIC: one message each).
    #[arg(long, value_name = "FILE", help_heading = "Accounting")]
    pub dead_letter: Option<PathBuf>,

    /// Show a progress bar on standard error even when it is not a terminal, or is the terminal the events go to (they then mix).
    #[arg(long, overrides_with = "no_progress", help_heading = "Accounting")]
    pub progress: bool,

    /// Never show a progress bar (by default it shows when standard error is a terminal and the events go elsewhere: a pipe, a file, -o).
    #[arg(long, overrides_with = "progress", help_heading = "Accounting")]
    pub no_progress: bool,

    /// Do not report failed events on standard error (they are still counted and dead-lettered), nor late events, truncated collects and hints on stage order.
    #[arg(short, long, help_heading = "Accounting")]
    pub quiet: bool,

    /// Worker threads running the stages (default: the number of cores). Output,
    /// dead letter, stats and exit status are the same for every N.
    #[arg(short = 'j', long, value_name = "N", env = "EVQ_THREADS", value_parser = clap::value_parser!(u16).range(1..), help_heading = "Performance")]
    pub threads: Option<u16>,

    /// Parse every event whole even when the stages read only some fields
    /// (for differential tests and benchmarks).
    #[arg(long, env = "EVQ_FULL_PARSE", hide = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub full_parse: bool,

    /// Write a generated file to standard output and exit.
    #[arg(long, value_name = "KIND", value_enum, hide = true)]
    pub generate: Option<Generate>,

    /// The stage expressions in command-line order, filled in by `parse`.
    #[arg(skip)]
    pub stages: Vec<(StageKind, String)>,

    /// `--arg`, `--argjson`, `--slurpfile` and `--rawfile` in command-line
    /// order: (kind, name, value or file).
    #[arg(skip)]
    pub vars: Vec<(VarKind, String, String)>,
}

/// An option's value as its clap value parser read it, once: the text as
/// written and what it means, or why it means nothing. A bad value is not a
/// clap error: the plan reports it in its turn, in evq's words (`evq:
/// --rotate-wait: invalid duration "5x": …`, exit 2), after the checks that
/// come before it and beside the chain's compile errors; and a value that
/// does not matter (`--checkpoint-every` without `--checkpoint`) is no error.
#[derive(Clone, Debug)]
pub struct Parsed<T> {
    pub text: String,
    pub value: Result<T, String>,
}

impl<T: Clone + Send + Sync + 'static> Parsed<T> {
    /// The clap value parser that reads a value with `parse`.
    fn parser(
        parse: fn(&str) -> Result<T, String>,
    ) -> impl Fn(&str) -> Result<Parsed<T>, std::convert::Infallible> + Clone + Send + Sync {
        move |text| {
            Ok(Parsed {
                text: text.to_string(),
                value: parse(text),
            })
        }
    }
}

/// A duration option (`--follow-interval`, `--stats-every`, …): a positive
/// whole number and a unit, as `--window` sizes are written.
fn duration(text: &str) -> Result<Duration, String> {
    time::parse_duration(text).map(|ms| Duration::from_millis(ms as u64))
}

/// The kinds of stage a command line can build, named once in `stage`.
pub use crate::stage::Kind as StageKind;

/// The clap command, for help and man page generation.
pub fn command() -> clap::Command {
    Args::command()
}

/// Parses the process arguments; exits 2 on a usage error (clap's convention).
pub fn parse() -> Args {
    let matches = command().get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // clap keeps -f and -m apart; their indices restore the order the user wrote.
    let mut stages: Vec<(usize, StageKind, String)> = Vec::new();
    for (id, kind) in [("filters", StageKind::Filter), ("maps", StageKind::Map)] {
        if let (Some(values), Some(indices)) =
            (matches.get_many::<String>(id), matches.indices_of(id))
        {
            stages.extend(indices.zip(values).map(|(i, v)| (i, kind, v.clone())));
        }
    }
    // The window stage sits where --window is, or without it the first --agg.
    let window_at = match (matches.indices_of("window"), matches.indices_of("aggs")) {
        (Some(mut at), _) => at.next().map(|i| (i, StageKind::Window)),
        (None, Some(mut at)) => at.next().map(|i| (i, StageKind::Aggregate)),
        _ => None,
    };
    if let Some((i, kind)) = window_at {
        let text = args.window.as_ref().map(|w| w.text.clone());
        stages.push((i, kind, text.unwrap_or_default()));
    }
    if let Some(i) = matches.indices_of("join").and_then(|mut at| at.next()) {
        stages.push((i, StageKind::Join, String::new()));
    }
    if let Some(i) = matches.indices_of("pattern").and_then(|mut at| at.next()) {
        let text = args.pattern.clone().unwrap_or_default();
        stages.push((i, StageKind::Pattern, text));
    }
    stages.sort_by_key(|(i, _, _)| *i);
    args.stages = stages.into_iter().map(|(_, k, v)| (k, v)).collect();
    // Likewise for variables, so a later binding of a name wins, as in jq.
    let mut vars: Vec<(usize, VarKind, String, String)> = Vec::new();
    for (id, kind) in [
        ("arg", VarKind::Arg),
        ("argjson", VarKind::ArgJson),
        ("slurpfile", VarKind::SlurpFile),
        ("rawfile", VarKind::RawFile),
    ] {
        if let (Some(values), Some(indices)) =
            (matches.get_many::<String>(id), matches.indices_of(id))
        {
            let values: Vec<&String> = values.collect();
            let indices: Vec<usize> = indices.collect();
            for (pair, index) in values.chunks(2).zip(indices.chunks(2)) {
                vars.push((index[0], kind, pair[0].clone(), pair[1].clone()));
            }
        }
    }
    vars.sort_by_key(|(i, _, _, _)| *i);
    args.vars = vars.into_iter().map(|(_, j, n, v)| (j, n, v)).collect();
    args
}
