//! Stages: the steps an event goes through, in command-line order. A
//! stateless stage (filter, map) implements `Stage`: it sees one event at a
//! time and keeps nothing. A stateful one (the window; a join or a pattern
//! next) implements `StatefulStage`, with hooks of its own: its key, the
//! time when input is idle, the end of input, saving and restoring its
//! state, its counters. A chain is a list of `Step`s of either kind; the
//! runtime drives them and keeps their metrics, so a stage only decides what
//! an event becomes. A new stage is one file here, behind one of the two
//! traits, and one line in `plan` that builds it.

mod filter;
mod map;
pub mod window;

pub use filter::FilterStage;
pub use map::MapStage;

use crate::report::stats::StateStats;
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

/// A step that keeps state across events (a window; a join or a pattern
/// next): what it emits depends on the events before. Its events arrive in
/// input order, it is told the time when input is idle and when input ends,
/// and it keeps counters of its own for the stats.
pub trait StatefulStage {
    /// `window#3`, …: kind and position in the chain.
    fn name(&self) -> &str;
    fn kind(&self) -> Kind;
    /// What the stage shows as its expression in the stats.
    fn expr(&self) -> &str;
    /// Takes one event into the state, pushing to `out` whatever that
    /// completes. A rejection leaves the state as it was.
    fn process(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), Rejected>;

    /// The key an event's state is kept under: events with equal keys must
    /// meet the same copy of the stage (what a partitioned run routes on).
    fn key(&self, event: &Val) -> Result<Val, String>;

    /// Called when no event has come for a while, with the time now (ms since
    /// the epoch): a stage on arrival time may emit what has closed.
    fn tick(&mut self, now: i64, out: &mut Vec<Event>);

    /// Called at the end of input: emits whatever the stage still holds.
    fn finish(&mut self, out: &mut Vec<Event>);

    /// The state, to save with a checkpoint.
    fn snapshot(&self) -> Result<Vec<u8>, StateError>;

    /// Takes back the state `snapshot` saved.
    fn restore(&mut self, state: &[u8]) -> Result<(), StateError>;

    /// The stage's counters: totals since the start of the run, so the
    /// executor keeps the greatest of each without knowing what they count.
    fn counters(&self) -> StateStats;

    /// The stage's line in the text stats (after its name), from its counters
    /// as the executor totalled them.
    fn summary(&self, counters: &StateStats) -> String;

    /// What the stage has to say at the end of a run (unless `-q`), though
    /// nothing failed, from its counters as the executor totalled them.
    fn notes(&self, counters: &StateStats) -> Vec<String>;
}

/// Why a stateful stage's state could not be saved or restored.
#[derive(Debug)]
pub enum StateError {
    /// This kind of stage does not save its state: the plan refuses
    /// `--checkpoint` with it.
    Unsupported(Kind),
    /// The saved state is not one this stage can take back.
    Invalid(String),
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

    pub fn process(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), Rejected> {
        match self {
            Step::Stateless(stage) => stage.process(event, out),
            Step::Stateful(stage) => stage.process(event, out),
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

/// Whether a chain holds state across events. Then it runs on one worker,
/// which sees every event in input order and is told when input is idle and
/// when it ends (until stateful stages are partitioned by key).
pub fn holds_state(chain: &[Step]) -> bool {
    chain.iter().any(|step| step.stateful().is_some())
}
