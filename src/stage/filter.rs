//! `-f/--filter EXPR`: keeps an event when EXPR yields a truthy value.

use super::{Event, Kind, Rejected, Stage};
use crate::jq::{Program, truthy};

pub struct FilterStage {
    pub name: String,
    pub expr: String,
    pub program: Program,
}

impl Stage for FilterStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> Kind {
        Kind::Filter
    }
    fn expr(&self) -> &str {
        &self.expr
    }

    /// Keeps the event once when EXPR yields at least one value that is not
    /// false or null. Evaluation stops at the first truthy value, so an error
    /// after it does not fail the event; an error before it does.
    fn process(&mut self, event: Event, out: &mut Vec<Event>) -> Result<(), Rejected> {
        let mut keep = false;
        self.program.run(event.value.clone(), |v| {
            keep = truthy(&v);
            !keep
        })?;
        if keep {
            out.push(event);
        }
        Ok(())
    }
}
