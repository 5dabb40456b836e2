//! Stages: the steps an event goes through, in command-line order. Each kind
//! lives in its own file behind the `Stage` trait; the executor drives them
//! and keeps their metrics, so a stage only decides what an event becomes.

mod filter;
mod map;

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

/// One step of the chain.
pub trait Stage {
    /// `filter#1`, `map#2`, …: kind and position in the chain.
    fn name(&self) -> &str;
    /// `filter`, `map`, …
    fn kind(&self) -> &'static str;
    /// The expression as the user wrote it.
    fn expr(&self) -> &str;
    /// Runs the stage on one event, pushing the events it passes on to `out`
    /// (none drops it). An error fails the event and pushes nothing.
    fn process(&self, event: Event, out: &mut Vec<Event>) -> Result<(), String>;
}
