//! Keyed state: how a stateful stage's state is kept, timed and saved. Every
//! stateful stage (a window or group-by; a join or a pattern next) runs on
//! this one mechanism; what the stage does with an event is its own file in
//! `stage/`.
//!
//! - **Partitioning.** The workers run the stages before the stateful one
//!   and extract, in parallel, what each event brings to it (key as bytes,
//!   time, values: `stage::extract`); that is the costly part (parsing,
//!   evaluating). The state has one owner, the executor's thread, which
//!   applies the extractions in input order into hash maps keyed by the
//!   key's bytes. Applying is a hash lookup and a few additions per event,
//!   several times faster than extracting, so one owner keeps up with every
//!   core; and because it applies in input order, which event is late and
//!   what is emitted when never depends on the number of workers.
//! - **Event time.** The owner keeps the watermark (greatest event time
//!   applied minus `--lateness`; on arrival time, also moved by the clock
//!   while input is idle) and the stage's timers, which fire once the
//!   watermark reaches them. End of input is a watermark of +infinity.
//! - **Checkpoint.** The state, the watermark and the input positions are
//!   taken together between two batches (`snapshot`), so a checkpoint holds
//!   exactly the state of the events before its positions.

use super::worker::{Failure, Processed, Worker};
use crate::report::stats::StateStats;
use crate::source::Pool;
use crate::stage::{Emitted, Rejected, StatefulStage, Timers};
use serde_json::{Value as Json, json};

/// The owner of a chain's state: the chain (compiled on this thread), where
/// its stateful stage stands, the event time and the timers.
pub struct Owner {
    worker: Worker,
    at: usize,
    /// Greatest event time applied.
    max_time: Option<i64>,
    lateness: i64,
    arrival_time: bool,
    timers: Timers,
    scratch: Emitted,
}

impl Owner {
    /// The owner of `worker`'s stateful stage; `None` for a chain without
    /// one. With `lines`, results the stage emits are written as compact
    /// JSON lines (say so when the stage is last and that is the format).
    pub fn new(worker: Worker, lines: bool) -> Option<Owner> {
        let at = worker.keyed_at()?;
        let stage = worker.steps()[at].stateful().expect("a stateful stage");
        let (lateness, arrival_time) = (stage.lateness(), stage.arrival_time());
        let worker_len = worker.steps().len();
        Some(Owner {
            worker,
            at,
            max_time: None,
            lateness,
            arrival_time,
            timers: Timers::default(),
            scratch: Emitted {
                lines: (lines && at + 1 == worker_len).then(Vec::new),
                ..Default::default()
            },
        })
    }

    pub fn stage(&self) -> &dyn StatefulStage {
        self.worker.steps()[self.at]
            .stateful()
            .expect("a stateful stage")
    }

    /// The stage and its timers, to use together.
    fn parts(&mut self) -> (&mut (dyn StatefulStage + 'static), &mut Timers) {
        let stage = self.worker.steps_mut()[self.at]
            .stateful_mut()
            .expect("a stateful stage");
        (stage, &mut self.timers)
    }

    fn watermark(&self) -> Option<i64> {
        self.max_time.map(|t| t.saturating_sub(self.lateness))
    }

    /// Applies a batch's extractions in order: results, and the failures of
    /// the stages after, go into `p` where the event that caused them stands.
    pub fn apply(&mut self, p: &mut Processed, pool: &Pool) {
        let Some(keyed) = p.keyed.take() else {
            return;
        };
        let (extracts, batch) = *keyed;
        let mut rejected: Vec<Failure> = Vec::new();
        let first_new = p.failures.len();
        let started = std::time::Instant::now();
        for event in extracts.iter() {
            let watermark = self.watermark();
            let mut out = std::mem::take(&mut self.scratch);
            let at = self.at;
            let (stage, timers) = self.parts();
            let result = stage.apply(&event, watermark, timers, &mut out);
            let counters = &mut p.stages[at];
            counters.events_in += 1;
            let (error, late_event) = match result {
                Ok(()) => {
                    self.max_time = Some(self.max_time.map_or(event.time, |m| m.max(event.time)));
                    (None, false)
                }
                Err(Rejected::Late(error)) => (Some(error), true),
                Err(Rejected::Failed(error)) => {
                    counters.events_failed += 1;
                    (Some(error), false)
                }
            };
            if let Some(error) = error {
                // Dead-lettered as its input line.
                let raw = event
                    .index
                    .map_or(&[][..], |i| batch.line(&batch.lines[i as usize]));
                rejected.push(Failure {
                    line: event.line,
                    at: event.line,
                    stage: Some(at),
                    error,
                    raw: raw.to_vec(),
                    late: late_event,
                });
            }
            self.fire_due(&mut out);
            self.emit(&mut out, event.line, p);
            self.scratch = out;
        }
        p.stages[self.at].time += started.elapsed();
        pool.give(batch.data);
        // Failures of the stages after go where their event stands.
        let after: Vec<Failure> = p.failures.drain(first_new..).collect();
        rejected.extend(after);
        if !rejected.is_empty() {
            p.failures.extend(rejected);
            p.failures.sort_by_key(|f| f.at);
        }
    }

    /// Fires the timers the watermark has reached, once for all of them.
    fn fire_due(&mut self, out: &mut Emitted) {
        let Some(watermark) = self.watermark() else {
            return;
        };
        let mut due = false;
        while self.timers.take_due(watermark).is_some() {
            due = true;
        }
        if due {
            let (stage, timers) = self.parts();
            stage.fire(watermark, timers, out);
        }
    }

    /// Runs what the stage emitted (while input line `at` was applied;
    /// 0: none) through the stages after it, or writes its lines.
    fn emit(&mut self, out: &mut Emitted, at: u64, p: &mut Processed) {
        if out.is_empty() {
            return;
        }
        p.stages[self.at].events_out += out.len() as u64 + out.written;
        if let Some(lines) = &mut out.lines {
            // Copied, so both buffers keep their room (handing this one over
            // made it grow again from nothing for every window).
            p.out.extend_from_slice(lines);
            lines.clear();
            p.events_emitted += out.written;
            out.written = 0;
        }
        self.worker.run_from(self.at + 1, &mut out.events, at, p);
    }

    /// Input is idle: on arrival time the clock moves the watermark.
    pub fn tick(&mut self, now: i64) -> Option<Processed> {
        if !self.arrival_time || self.max_time.is_none() {
            return None;
        }
        self.max_time = self.max_time.map(|m| m.max(now));
        let mut p = self.worker.empty(0, 0);
        p.from_reader = false;
        let mut out = std::mem::take(&mut self.scratch);
        self.fire_due(&mut out);
        self.emit(&mut out, 0, &mut p);
        self.scratch = out;
        Some(p)
    }

    /// End of input: the stage emits everything it holds.
    pub fn finish(&mut self) -> Processed {
        let mut p = self.worker.empty(0, 0);
        p.from_reader = false;
        let mut out = std::mem::take(&mut self.scratch);
        self.parts().0.finish(&mut out);
        self.timers.clear();
        self.emit(&mut out, 0, &mut p);
        self.scratch = out;
        p
    }

    /// The state as the checkpoint keeps it: the event time and the stage's.
    pub fn snapshot(&self) -> Json {
        json!({
            "max_time": self.max_time,
            "stage": self.stage().snapshot(),
        })
    }

    /// Takes back what `snapshot` saved.
    pub fn restore(&mut self, state: &Json) -> Result<(), String> {
        self.max_time = state["max_time"].as_i64();
        let (stage, timers) = self.parts();
        stage.restore(&state["stage"], timers)
    }

    pub fn counters(&self) -> StateStats {
        self.stage().counters()
    }
}
