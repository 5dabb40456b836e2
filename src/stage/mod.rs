//! Stages: the steps an event goes through, in command-line order. A
//! stateless stage (filter, map) implements `Stage`: it sees one event at a
//! time and keeps nothing. A stateful one (the window, the join; a pattern
//! next) implements `StatefulStage`, with hooks of its own: its key, the
//! extraction on the workers and its state on one owner, timers on the
//! watermark, the end of input, saving and restoring its state, counters. A chain is a list of `Step`s of either kind; the
//! runtime drives them and keeps their metrics, so a stage only decides what
//! an event becomes. A new stage is one file here, behind one of the two
//! traits, and one line in `plan` that builds it.

pub mod extract;
mod filter;
pub mod join;
mod map;
pub mod pattern;
pub mod window;

pub use filter::FilterStage;
pub use map::MapStage;

use crate::report::stats::StateStats;
use extract::{Extract, Extracts};
use jaq_json::Val;

/// An event on its way through the stages.
pub struct Event {
    pub value: Val,
    /// False while the event is the value of its input line as read: then the
    /// output writes the line's own bytes instead of re-serialising.
    pub changed: bool,
}

/// Why a stage did not pass an event on, other than dropping it.
#[derive(Debug)]
pub enum Rejected {
    /// The event failed in this stage (an expression error, an unusable time…).
    Failed(String),
    /// The event came after its window was emitted: accounted for, not a failure.
    Late(String),
}

impl From<String> for Rejected {
    fn from(error: String) -> Rejected {
        Rejected::Failed(error)
    }
}

/// The kinds of stage, named once: the command line builds them, the plan
/// hints with their names, the stats show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Filter,
    Map,
    /// `--window` with its `--key`, `--time`, `--agg` and `--lateness`.
    Window,
    /// `--agg` without `--window`: group-by over the whole input.
    Aggregate,
    /// `--join FILE` with its `--key`, `--time`, `--within`, …: an interval join.
    Join,
    /// `--match PATTERN` with its `--def`s, `--key`, `--time`, `--within`, …
    Pattern,
}

impl Kind {
    /// `filter`, `map`, `window`, `aggregate`: in stage names (`map#2`),
    /// option labels (`--map #2`) and the stats.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Map => "map",
            Kind::Window => "window",
            Kind::Aggregate => "aggregate",
            Kind::Join => "join",
            Kind::Pattern => "pattern",
        }
    }
}

/// A stateless step of the chain: what it makes of an event depends on that
/// event alone, so any worker may run it on any batch.
pub trait Stage {
    /// `filter#1`, `map#2`, …: kind and position in the chain.
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    /// The expression as the user wrote it.
    fn expr(&self) -> &str;
    /// Runs the stage on one event, pushing the events it passes on to `out`
    /// (none drops it). A rejection pushes nothing of this event.
    fn process(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), Rejected>;
}

/// A step that keeps state across events, per key (a window, a join; a
/// pattern next): what it emits depends on the events before. It works in
/// two halves on two sides of the runtime (`runtime::state`):
///
/// - on every worker, in parallel, `extract` reads what an event brings
///   (its key, its time, its values) into plain data (direct evaluation
///   does the same for the common shapes, without calling it);
/// - on the one thread that owns the state, `apply` takes those in input
///   order. The runtime keeps the event time: it gives `apply` the
///   watermark, fires the timers the stage sets (`fire`) when the
///   watermark reaches them, ends the input (`finish`), and saves and
///   restores the state with the checkpoint.
pub trait StatefulStage {
    /// `window#3`, …: kind and position in the chain.
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    /// What the stage shows as its expression in the stats.
    fn expr(&self) -> &str;

    /// How many inputs the stage reads side by side: 1, or 2 for a join
    /// (side 0 the main input, side 1 the join's FILE). The runtime merges
    /// the sides in event time and keeps a watermark for each.
    fn sides(&self) -> usize {
        1
    }

    /// Worker side: evaluates what `event` (of input `side`) brings and
    /// adds it to `into` (from `line`, the `index`th line of its batch). On
    /// an error `into` is left as it was.
    fn extract(
        &self,
        event: &Val,
        side: usize,
        line: u64,
        index: Option<u32>,
        into: &mut Extracts,
    ) -> Result<(), String>;

    /// Whether event times are arrival times (then the runtime moves the
    /// watermark with the clock while input is idle).
    fn arrival_time(&self) -> bool;

    /// How far behind the greatest event time the watermark stays.
    fn lateness(&self) -> i64;

    /// Until which watermark an event of `side` at `time`, once applied,
    /// may still count in what the stage emits (its last window's end, its
    /// join bound, its `--within`): after that, reading it again could
    /// change nothing still open. `None`: no bound (it may count until the
    /// end of input). A Kafka input commits offsets only past events that
    /// nothing open needs.
    fn holds_until(&self, side: usize, time: i64) -> Option<i64> {
        let _ = (side, time);
        None
    }

    /// Owner side: takes one event into the state, pushing to `out`
    /// whatever that completes. `watermark` is the runtime's before this
    /// event (`None` before any). A rejection leaves the state as it was.
    fn apply(
        &mut self,
        event: &Extract,
        watermark: Option<i64>,
        timers: &mut Timers,
        out: &mut Emitted,
    ) -> Result<(), Rejected>;

    /// Owner side: takes the extractions `from..` of `extracts` into the
    /// state at once and says so, when the stage can: when applying an
    /// event depends on no watermark, never rejects it, sets no timer and
    /// emits nothing (a group-by). One call for a batch spares the runtime's
    /// work around each event, which is most of the owner's time when the
    /// state is small. Else `false`: the runtime calls `apply` for each.
    fn apply_all(&mut self, extracts: &Extracts, from: usize) -> bool {
        let _ = (extracts, from);
        false
    }

    /// The watermark reached a time set in `timers`: emits what it closes.
    fn fire(&mut self, watermark: i64, timers: &mut Timers, out: &mut Emitted);

    /// End of input: emits whatever the stage still holds.
    fn finish(&mut self, out: &mut Emitted);

    /// The state, to save with a checkpoint.
    fn snapshot(&self) -> serde_json::Value;

    /// Takes back the state `snapshot` saved, setting its timers again.
    fn restore(&mut self, state: &serde_json::Value, timers: &mut Timers) -> Result<(), String>;

    /// The stage's counters now: totals since the start of the run, and
    /// `keys` and `state_bytes` for what it holds.
    fn counters(&self) -> StateStats;

    /// The stage's line in the text stats (after its name), from its counters.
    fn summary(&self, counters: &StateStats) -> String;

    /// What the stage has to say at the end of a run (unless `-q`), though
    /// nothing failed, from its counters.
    fn notes(&self, counters: &StateStats) -> Vec<String>;
}

/// What a stateful stage emits: events, or, when nothing after it needs
/// them as values and they are printed as compact JSON lines, those lines
/// written straight away (`lines`), which spares building each result.
#[derive(Default)]
pub struct Emitted {
    pub events: Vec<Event>,
    /// `Some`: write each result here as one JSON line instead.
    pub lines: Option<Vec<u8>>,
    /// Results written to `lines`.
    pub written: u64,
}

impl Emitted {
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.written == 0
    }
}

/// Event times at which a stateful stage wants to be told that the
/// watermark reached them. The runtime holds them and, once the watermark
/// reaches some, takes them all and fires the stage once; a time set twice
/// is taken twice and still fires once. A heap: a stage that sets a timer
/// for nearly every event (a pattern, in time order) neither allocates nor
/// frees per event, as a B-tree of one entry did.
#[derive(Default, Debug)]
pub struct Timers {
    due: std::collections::BinaryHeap<std::cmp::Reverse<i64>>,
}

impl Timers {
    pub fn set(&mut self, time: i64) {
        self.due.push(std::cmp::Reverse(time));
    }

    /// Takes the earliest time set at or before `watermark`.
    pub fn take_due(&mut self, watermark: i64) -> Option<i64> {
        match self.due.peek() {
            Some(&std::cmp::Reverse(t)) if t <= watermark => {
                self.due.pop();
                Some(t)
            }
            _ => None,
        }
    }

    pub fn clear(&mut self) {
        self.due.clear();
    }
}

/// One step of the chain, of either kind. The runtime drives both alike for
/// each event, and reads from the chain whether it holds state.
pub enum Step {
    Stateless(Box<dyn Stage>),
    Stateful(Box<dyn StatefulStage>),
}

impl Step {
    pub fn name(&self) -> &str {
        match self {
            Step::Stateless(stage) => stage.name(),
            Step::Stateful(stage) => stage.name(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Step::Stateless(stage) => stage.kind(),
            Step::Stateful(stage) => stage.kind(),
        }
    }

    pub fn expr(&self) -> &str {
        match self {
            Step::Stateless(stage) => stage.expr(),
            Step::Stateful(stage) => stage.expr(),
        }
    }

    /// The stateful stage, if this step is one.
    pub fn stateful(&self) -> Option<&dyn StatefulStage> {
        match self {
            Step::Stateless(_) => None,
            Step::Stateful(stage) => Some(stage.as_ref()),
        }
    }

    pub fn stateful_mut(&mut self) -> Option<&mut (dyn StatefulStage + 'static)> {
        match self {
            Step::Stateless(_) => None,
            Step::Stateful(stage) => Some(stage.as_mut()),
        }
    }
}

impl From<Box<dyn Stage>> for Step {
    fn from(stage: Box<dyn Stage>) -> Step {
        Step::Stateless(stage)
    }
}

impl From<Box<dyn StatefulStage>> for Step {
    fn from(stage: Box<dyn StatefulStage>) -> Step {
        Step::Stateful(stage)
    }
}

/// Where the chain's stateful stage stands, if it has one: the stages
/// before it run on the workers, it and those after it on the state's owner.
pub fn stateful_at(chain: &[Step]) -> Option<usize> {
    chain.iter().position(|step| step.stateful().is_some())
}

/// The one value `program` yields for `event`: no value or several is an
/// error (a key or a time must be one value).
pub(crate) fn single(program: &crate::jq::Program, event: &Val) -> Result<Val, String> {
    let mut values = Vec::new();
    program.run(event.clone(), |v| {
        values.push(v);
        values.len() < 2
    })?;
    match values.len() {
        1 => Ok(values.pop().expect("one value")),
        0 => Err("yielded no value".into()),
        _ => Err("yielded more than one value".into()),
    }
}

/// A stateful stage's key for `event`: the value of each of `programs`
/// (errors name them as `OPTION #N`); none is `null`, several an array.
pub(crate) fn key_of(
    programs: &[crate::jq::Program],
    option: &str,
    event: &Val,
) -> Result<Val, String> {
    let mut keys = Vec::with_capacity(programs.len());
    for (i, program) in programs.iter().enumerate() {
        keys.push(single(program, event).map_err(|e| format!("{option} #{}: {e}", i + 1))?);
    }
    Ok(match keys.len() {
        0 => Val::Null,
        1 => keys.pop().expect("one key"),
        _ => Val::Arr(keys.into()),
    })
}

/// An event's time from `program` (errors name `option`), in milliseconds.
pub(crate) fn time_of(
    program: &crate::jq::Program,
    option: &str,
    event: &Val,
) -> Result<i64, String> {
    let v = single(program, event).map_err(|e| format!("{option}: {e}"))?;
    window::time::event_time(&v).map_err(|e| format!("{option}: {e}"))
}
