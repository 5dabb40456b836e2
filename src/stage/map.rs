//! `-m/--map EXPR`: replaces an event by every value EXPR yields.

use super::{Event, Kind, Rejected, Stage};
use crate::jq::Program;

pub struct MapStage {
    pub name: String,
    pub expr: String,
    pub program: Program,
}

impl Stage for MapStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> Kind {
        Kind::Map
    }
    fn expr(&self) -> &str {
        &self.expr
    }

    /// All outputs or none: when EXPR fails after yielding some values, the
    /// event fails whole, so the dead letter holds it once and nothing of it
    /// was emitted.
    fn process(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), Rejected> {
        let start = out.len();
        let result = self.program.run(event.value, |value| {
            out.push(Event {
                value,
                changed: true,
            });
            true
        });
        if result.is_err() {
            out.truncate(start);
        }
        Ok(result?)
    }
}
