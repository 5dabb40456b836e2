//! Keyed state: how a stateful stage's state is kept, timed and saved. Every
//! stateful stage (a window or group-by, a join; a pattern next) runs on
//! this one mechanism; what the stage does with an event is its own file in
//! `stage/`.
//!
//! - **Partitioning.** The workers run the stages before the stateful one
//!   and extract, in parallel, what each event brings to it (key as bytes,
//!   time, values: `stage::extract`); that is the costly part (parsing,
//!   evaluating). The state has one owner, the executor's thread, which
//!   applies the extractions in input order into hash maps keyed by the
//!   key's bytes. Applying is a hash lookup and a few additions per event,
//!   several times faster than extracting while the state fits in the
//!   cache; with 100,000 keys and more each lookup waits on memory, and the
//!   owner is what limits a run (the state cannot yet be split among
//!   threads: aggregates keep jaq values, which cannot cross them). A stage
//!   that can take a batch's events in one call does (a group-by:
//!   `StatefulStage::apply_all`), sparing the work around each event. And
//!   because the owner applies in input order, which event is late and
//!   what is emitted when never depends on the number of workers.
//! - **Sides.** A stage reads one input side, or two (a join: the main
//!   input and its FILE). With two, a reader thread reads each, kept side
//!   by side by a `Gate`, and the owner queues each side's extractions and
//!   applies them merged in event time (the earlier first, side 0 on a
//!   tie), as far as both sides have events or one has ended: the order is
//!   fixed by the inputs alone, never by timing or `--threads`.
//! - **Event time.** The owner keeps the watermark (greatest event time
//!   applied minus `--lateness`, per side, the smallest of them, a side
//!   whose events are all applied counting as +infinity; on arrival time,
//!   also moved by the clock while input is idle) and the stage's timers, which fire once the
//!   watermark reaches them. End of input is a watermark of +infinity.
//! - **Checkpoint.** The state, the watermark and the input positions are
//!   taken together between two batches (`snapshot`), so a checkpoint holds
//!   exactly the state of the events before its positions: a position
//!   moves past a batch only once all its events are applied (`completed`).

use super::worker::{Failure, Processed, Worker};
use crate::report::stats::StateStats;
use crate::source::{Batch, Pool, Position};
use crate::stage::extract::Extracts;
use crate::stage::{Emitted, Rejected, StatefulStage, Timers};
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Batches of one side dealt out and not yet applied, at most, while the
/// other side is read (see `Gate`).
const AHEAD: usize = 8;

/// How the readers of a join's two sides keep side by side: each side's
/// reader waits while it has `AHEAD` batches dealt out that the owner has
/// not applied, so the side that is behind in event time (whose events the
/// owner is waiting for) is the one read, and the state holds only what
/// the bound requires.
#[derive(Default)]
pub struct Gate {
    outstanding: [AtomicUsize; 2],
}

impl Gate {
    /// A batch of `side` is about to be dealt: waits until that side is
    /// not too far ahead, or `stop` is set.
    pub fn enter(&self, side: usize, stop: &std::sync::atomic::AtomicUsize) {
        while self.outstanding[side].load(Ordering::SeqCst) >= AHEAD
            && stop.load(Ordering::Relaxed) == 0
        {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        self.outstanding[side].fetch_add(1, Ordering::SeqCst);
    }

    fn done(&self, side: usize) {
        self.outstanding[side].fetch_sub(1, Ordering::SeqCst);
    }
}

/// One input side of the stateful stage: its event time and the batches
/// whose extractions wait to be merged with the other side's.
#[derive(Default)]
struct Side {
    /// Greatest event time applied (with `partitions`: the smallest of
    /// the partitions' greatest).
    max_time: Option<i64>,
    /// A Kafka input: the greatest event time of each partition whose time
    /// counts (assigned to this run, not at its end; `None` before its
    /// first event). Partitions are read side by side, each at its own
    /// pace, so the side's time is the smallest of theirs, and there is
    /// none until each has had an event (as Flink does per partition): an
    /// event is late only against its own partition's pace.
    partitions: Option<std::collections::HashMap<usize, Option<i64>>>,
    /// The reader has dealt its last batch.
    ended: bool,
    queue: VecDeque<Pending>,
}

/// A batch's extractions, applied up to `next`.
struct Pending {
    extracts: Extracts,
    batch: Batch,
    next: usize,
    end: Position,
    /// The greatest watermark until which an event applied from it may
    /// still count in what the stage emits (`StatefulStage::holds_until`),
    /// and where that greatest grew: (line number, greatest from the
    /// batch's start to that line). A Kafka commit goes up to the first
    /// event still needed, which may be inside the batch.
    until: i64,
    steps: Vec<(u64, i64)>,
}

impl Pending {
    /// An event of line `line` was applied that may count until watermark
    /// `until` (`None`: the end of input; see `StatefulStage::holds_until`).
    fn hold(&mut self, line: u64, until: Option<i64>) {
        let until = until.unwrap_or(i64::MAX);
        if until > self.until {
            self.until = until;
            self.steps.push((line, until));
        }
    }
}

impl Side {
    /// An event of `source` at `time` was applied.
    fn advance(&mut self, source: usize, time: i64) {
        match &mut self.partitions {
            None => self.max_time = Some(self.max_time.map_or(time, |m| m.max(time))),
            Some(partitions) => {
                if let Some(t) = partitions.get_mut(&source) {
                    *t = Some(t.map_or(time, |t| t.max(time)));
                    self.max_time = onwards(self.max_time, slowest(partitions));
                }
            }
        }
    }

    /// The time of the next event to apply, if it is here.
    fn front(&self) -> Option<i64> {
        let p = self.queue.front()?;
        (p.next < p.extracts.len()).then(|| p.extracts.get(p.next).time)
    }
}

/// The side's time never goes back: a partition that joins (a rebalance
/// gave it, or it has new messages after it was caught up) does not undo
/// what the others moved, and its events behind are late.
fn onwards(before: Option<i64>, now: Option<i64>) -> Option<i64> {
    match (before, now) {
        (Some(b), Some(n)) => Some(b.max(n)),
        (b, None) => b,
        (None, n) => n,
    }
}

/// The smallest of the partitions' times; none while one has none.
fn slowest(partitions: &std::collections::HashMap<usize, Option<i64>>) -> Option<i64> {
    let mut slowest: Option<i64> = None;
    for t in partitions.values() {
        let t = (*t)?;
        slowest = Some(slowest.map_or(t, |s| s.min(t)));
    }
    slowest
}

/// The owner of a chain's state: the chain (compiled on this thread), where
/// its stateful stage stands, the event time of each input side and the
/// timers.
pub struct Owner {
    worker: Worker,
    at: usize,
    sides: Vec<Side>,
    lateness: i64,
    arrival_time: bool,
    timers: Timers,
    scratch: Emitted,
    /// The source of side 1 (a join's FILE); every other source is side 0.
    right: Option<usize>,
    gate: Option<Arc<Gate>>,
    pool: Arc<Pool>,
    /// Batches all of whose events are applied, in order, for the
    /// checkpoint and for Kafka commits.
    completed: Vec<Completed>,
    /// A Kafka input: batches say until when their events may count
    /// (`Completed::until`), for commits to stop before what is needed.
    track_until: bool,
}

/// A batch all of whose events are applied.
pub struct Completed {
    pub source: usize,
    /// Where its source stands after it.
    pub end: Position,
    /// Until which watermark its events may count in what the stage
    /// emits, and where that grew inside it (see `Pending::steps`); kept
    /// for a Kafka input only (`i64::MIN` and none otherwise).
    pub until: i64,
    pub steps: Vec<(u64, i64)>,
}

impl Owner {
    /// The owner of `worker`'s stateful stage; `None` for a chain without
    /// one. With `lines`, results the stage emits are written as compact
    /// JSON lines (say so when the stage is last and that is the format).
    /// Batch buffers go back to `pool` once applied.
    pub fn new(worker: Worker, lines: bool, pool: Arc<Pool>) -> Option<Owner> {
        let at = worker.keyed_at()?;
        let stage = worker.steps()[at].stateful().expect("a stateful stage");
        let (lateness, arrival_time) = (stage.lateness(), stage.arrival_time());
        let sides = (0..stage.sides()).map(|_| Side::default()).collect();
        let worker_len = worker.steps().len();
        Some(Owner {
            worker,
            at,
            sides,
            lateness,
            arrival_time,
            timers: Timers::default(),
            scratch: Emitted {
                lines: (lines && at + 1 == worker_len).then(Vec::new),
                ..Default::default()
            },
            right: None,
            gate: None,
            pool,
            completed: Vec::new(),
            track_until: false,
        })
    }

    /// Side 1 is `source`'s, read beside the others under `gate`.
    pub fn with_right(mut self, source: usize, gate: Arc<Gate>) -> Owner {
        self.right = Some(source);
        self.gate = Some(gate);
        self
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

    /// The smallest of the sides' watermarks (greatest time applied minus
    /// `--lateness`; +infinity for a side whose events are all applied);
    /// `None` while some side has none.
    pub fn watermark(&self) -> Option<i64> {
        let mut watermark = i64::MAX;
        for side in &self.sides {
            if side.ended && side.queue.is_empty() {
                continue;
            }
            watermark = watermark.min(side.max_time?.saturating_sub(self.lateness));
        }
        Some(watermark)
    }

    /// Takes a batch's extractions and applies, in order, those that can
    /// be: with one side, all of them; with two, merged with the other
    /// side's in event time (the earlier first, the main input's on a tie)
    /// as far as both sides have events here, or one has ended. Results,
    /// and the failures of the stages after, go into `p`.
    pub fn apply(&mut self, p: &mut Processed) {
        let Some(keyed) = p.keyed.take() else {
            return;
        };
        let (extracts, batch) = *keyed;
        let side = usize::from(self.right == Some(p.source));
        self.sides[side].queue.push_back(Pending {
            extracts,
            batch,
            next: 0,
            end: p.end,
            until: i64::MIN,
            steps: Vec::new(),
        });
        self.drain(p);
    }

    /// The reader dealt the last batch of `side`: what waited for it is applied.
    pub fn side_ended(&mut self, side: usize) -> Processed {
        let mut p = self.worker.empty(0, 0);
        p.from_reader = false;
        self.sides[side].ended = true;
        self.drain(&mut p);
        let mut out = std::mem::take(&mut self.scratch);
        self.fire_due(&mut out);
        self.emit(&mut out, 0, &mut p);
        self.scratch = out;
        p
    }

    /// Positions of the batches applied whole since the last call, each
    /// with the watermark until which its events may count.
    pub fn completed(&mut self) -> std::vec::Drain<'_, Completed> {
        self.completed.drain(..)
    }

    /// Whether the stage holds nothing now (every event applied is spent).
    pub fn empty(&self) -> bool {
        self.counters().get("keys") == 0 && self.sides.iter().all(|s| s.queue.is_empty())
    }

    /// The main side's sources are a Kafka input's partitions, each with
    /// its own event time.
    pub fn with_partitions(mut self) -> Owner {
        self.sides[0].partitions = Some(Default::default());
        self.track_until = true;
        self
    }

    /// The Kafka partitions whose time counts now: `sources` (assigned to
    /// this run and not at their end).
    pub fn assigned(&mut self, sources: &[usize]) {
        let side = &mut self.sides[0];
        let Some(partitions) = &mut side.partitions else {
            return;
        };
        partitions.retain(|s, _| sources.contains(s));
        for &source in sources {
            partitions.entry(source).or_insert(None);
        }
        side.max_time = onwards(side.max_time, slowest(partitions));
    }

    /// Applies every event that can be, in order (see `apply`).
    fn drain(&mut self, p: &mut Processed) {
        let mut rejected: Vec<Failure> = Vec::new();
        let first_new = p.failures.len();
        let started = std::time::Instant::now();
        loop {
            self.retire();
            let side = match self.sides.as_slice() {
                [one] => match one.front() {
                    Some(_) => 0,
                    None => break,
                },
                [left, right] => match (left.front(), right.front()) {
                    (Some(l), Some(r)) => usize::from(r < l),
                    (Some(_), None) if right.ended && right.queue.is_empty() => 0,
                    (None, Some(_)) if left.ended && left.queue.is_empty() => 1,
                    _ => break,
                },
                _ => unreachable!("a stage reads one or two sides"),
            };
            if !self.take_all(side, p) {
                self.take(side, p, &mut rejected);
            }
        }
        self.retire();
        p.stages[self.at].time += started.elapsed();
        // Failures of the stages after go where their event stands.
        let after: Vec<Failure> = p.failures.drain(first_new..).collect();
        rejected.extend(after);
        if !rejected.is_empty() {
            p.failures.extend(rejected);
            if self.sides.len() == 1 {
                p.failures.sort_by_key(|f| f.at);
            }
        }
    }

    /// Batches applied whole leave their queues, in order.
    fn retire(&mut self) {
        for (side, s) in self.sides.iter_mut().enumerate() {
            while let Some(front) = s.queue.front()
                && front.next >= front.extracts.len()
            {
                let done = s.queue.pop_front().expect("a front");
                self.completed.push(Completed {
                    source: done.batch.source,
                    end: done.end,
                    until: done.until,
                    steps: done.steps,
                });
                done.batch.recycle(&self.pool);
                done.extracts.recycle();
                if let Some(gate) = &self.gate {
                    gate.done(side);
                }
            }
        }
    }

    /// Applies the rest of the front batch of `side` in one call, when there
    /// is one side and the stage takes events so (`StatefulStage::apply_all`):
    /// what `take` does for each event, but the stage's own part.
    fn take_all(&mut self, side: usize, p: &mut Processed) -> bool {
        if self.sides.len() != 1 {
            return false;
        }
        let at = self.at;
        let stage = self.worker.steps_mut()[at]
            .stateful_mut()
            .expect("a stateful stage");
        let s = &mut self.sides[side];
        let pending = s.queue.front_mut().expect("an event");
        let from = pending.next;
        if !stage.apply_all(&pending.extracts, from) {
            return false;
        }
        let count = pending.extracts.len() - from;
        p.stages[at].events_in += count as u64;
        let mut latest = None;
        for i in from..pending.extracts.len() {
            let event = pending.extracts.get(i);
            latest = latest.max(Some(event.time));
            if self.track_until {
                pending.hold(event.line, stage.holds_until(side, event.time));
            }
        }
        pending.next += count;
        let source = pending.batch.source;
        if let Some(time) = latest {
            // The side's time is the greatest applied: one step to the
            // batch's greatest is every step on the way.
            s.advance(source, time);
        }
        // Nothing fires: such a stage sets no timers.
        true
    }

    /// Applies the next event of `side`.
    fn take(&mut self, side: usize, p: &mut Processed, rejected: &mut Vec<Failure>) {
        let watermark = self.watermark();
        let mut out = std::mem::take(&mut self.scratch);
        let at = self.at;
        let stage = self.worker.steps_mut()[at]
            .stateful_mut()
            .expect("a stateful stage");
        let pending = self.sides[side].queue.front_mut().expect("an event");
        let event = pending.extracts.get(pending.next);
        let (line, time, index) = (event.line, event.time, event.index);
        let result = stage.apply(&event, watermark, &mut self.timers, &mut out);
        let applied = result.is_ok();
        if applied && self.track_until {
            pending.hold(line, stage.holds_until(side, time));
        }
        let counters = &mut p.stages[at];
        counters.events_in += 1;
        let (error, late_event) = match result {
            Ok(()) => (None, false),
            Err(Rejected::Late(error)) => (Some(error), true),
            Err(Rejected::Failed(error)) => {
                counters.events_failed += 1;
                (Some(error), false)
            }
        };
        if let Some(error) = error {
            // Dead-lettered as its input line.
            let batch = &pending.batch;
            let raw = index.map_or(&[][..], |i| batch.line(&batch.lines[i as usize]));
            rejected.push(Failure {
                line,
                at: line,
                stage: Some(at),
                error,
                raw: raw.to_vec(),
                late: late_event,
                source: Some(batch.source),
            });
        }
        pending.next += 1;
        if applied {
            let source = self.sides[side].queue.front().map_or(0, |p| p.batch.source);
            self.sides[side].advance(source, time);
        }
        self.fire_due(&mut out);
        self.emit(&mut out, line, p);
        self.scratch = out;
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
        let max_time = &mut self.sides[0].max_time;
        if !self.arrival_time || max_time.is_none() {
            return None;
        }
        *max_time = max_time.map(|m| m.max(now));
        let mut p = self.worker.empty(0, 0);
        p.from_reader = false;
        let mut out = std::mem::take(&mut self.scratch);
        self.fire_due(&mut out);
        self.emit(&mut out, 0, &mut p);
        self.scratch = out;
        Some(p)
    }

    /// End of input: what waits on a side is applied, and the stage emits
    /// everything it holds.
    pub fn finish(&mut self) -> Processed {
        let mut p = self.worker.empty(0, 0);
        p.from_reader = false;
        for side in &mut self.sides {
            side.ended = true;
        }
        self.drain(&mut p);
        let mut out = std::mem::take(&mut self.scratch);
        self.parts().0.finish(&mut out);
        self.timers.clear();
        self.emit(&mut out, 0, &mut p);
        self.scratch = out;
        p
    }

    /// The state as the checkpoint keeps it: the event time of each side
    /// and the stage's state. (Events still waiting for the other side are
    /// not in it: the positions saved with it are those of the batches
    /// applied whole, so they are read again.)
    pub fn snapshot(&self) -> Json {
        let mut state = json!({
            "max_time": self.sides[0].max_time,
            "stage": self.stage().snapshot(),
        });
        if self.sides.len() > 1 {
            let times: Vec<Option<i64>> = self.sides.iter().map(|s| s.max_time).collect();
            state["max_times"] = json!(times);
        }
        state
    }

    /// Takes back what `snapshot` saved.
    pub fn restore(&mut self, state: &Json) -> Result<(), String> {
        self.sides[0].max_time = state["max_time"].as_i64();
        for (i, side) in self.sides.iter_mut().enumerate().skip(1) {
            side.max_time = state["max_times"][i].as_i64();
        }
        let (stage, timers) = self.parts();
        stage.restore(&state["stage"], timers)
    }

    pub fn counters(&self) -> StateStats {
        self.stage().counters()
    }
}
