//! Stages: the steps an event goes through, in command-line order. Each kind
//! lives in its own file behind the `Stage` trait; the executor drives them
//! and keeps their metrics, so a stage only decides what an event becomes.

mod filter;
mod map;
pub mod window;

pub use filter::FilterStage;
pub use map::MapStage;

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

/// Counters a stateful stage keeps beyond events in and out.
#[derive(Clone, Debug, Default)]
pub struct WindowCounters {
    /// Most (window, key) states open at once so far.
    pub windows_open: u64,
    /// Results emitted so far.
    pub windows_emitted: u64,
    /// Results emitted so far in which a `collect` dropped values.
    pub collect_truncated: u64,
    /// The same per `--agg`, in command-line order; empty while none was
    /// truncated (so copying the counters after each event costs nothing).
    pub truncated_by_agg: Vec<u64>,
}

/// One step of the chain.
pub trait Stage {
    /// `filter#1`, `map#2`, …: kind and position in the chain.
    fn name(&self) -> &str;
    /// `filter`, `map`, …
    fn kind(&self) -> &'static str;
    /// The expression as the user wrote it.
    fn expr(&self) -> &str;
    /// Runs the stage on one event, pushing the events it passes on to `out`
    /// (none drops it). A rejection pushes nothing of this event.
    fn process(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), Rejected>;

    /// Whether the stage keeps state across events (a window): the chain then
    /// runs on one thread, in input order, and is told when input ends.
    fn stateful(&self) -> bool {
        false
    }

    /// Called when no event has come for a while, with the time now (ms since
    /// the epoch): a stage on arrival time may emit what has closed.
    fn tick(&mut self, _now: i64, _out: &mut Vec<Event>) {}

    /// Called at the end of input: emits whatever the stage still holds.
    fn finish(&mut self, _out: &mut Vec<Event>) {}

    /// Window counters, for stateful stages.
    fn window_counters(&self) -> Option<WindowCounters> {
        None
    }
}
