//! A worker: runs one batch of lines through its own copy of the stages,
//! depth-first (so output keeps input order and fan-out stays in place), and
//! returns the batch's output bytes, its failed events and its counters. The
//! executor puts batches back in input order and does everything else.

use crate::direct::{self, Unsure};
use crate::input::{Batch, Pool};
use crate::json::{self, Fields};
use crate::output::Formatter;
use crate::stage::{Event, Rejected, Stage};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one stage did with one batch.
#[derive(Default, Clone, Debug)]
pub struct StageCounters {
    pub events_in: u64,
    pub events_out: u64,
    pub events_filtered: u64,
    pub events_failed: u64,
    /// Stateful stages only: events taken into a window, and events too late for theirs.
    pub events_aggregated: u64,
    pub events_late: u64,
    /// Stateful stages only: the stage's own counters so far.
    pub windows: Option<crate::stage::WindowCounters>,
    pub time: Duration,
}

/// A failed (or late) event, for the executor to report and dead-letter in order.
pub struct Failure {
    /// The input line, or 0 for an event a stage emitted at the end of input.
    pub line: u64,
    /// Index of the stage that failed it, or `None` for a line that is not JSON.
    pub stage: Option<usize>,
    pub error: String,
    pub raw: Vec<u8>,
    /// A late event: dead-lettered and counted as late, not as failed.
    pub late: bool,
}

/// The result of one batch.
pub struct Processed {
    pub source: usize,
    pub bytes: u64,
    /// Lines taken from the batch (all of them unless aborted).
    pub events_ingested: u64,
    pub events_emitted: u64,
    pub parse_failed: u64,
    /// Events settled by direct evaluation.
    pub events_direct: u64,
    pub stages: Vec<StageCounters>,
    pub out: Vec<u8>,
    pub failures: Vec<Failure>,
    /// Under `--on-error abort`: the batch stopped at its first failure.
    pub aborted: bool,
    /// False for what a stateful stage emits on its own (idle tick, end of
    /// input), which the reader did not deal out.
    pub from_reader: bool,
    /// What a stateful chain emitted at the end of input: nothing follows.
    pub last: bool,
    /// The source's position after this batch: byte offset and lines.
    pub end: (u64, u64),
}

pub struct Worker {
    stages: Vec<Box<dyn Stage>>,
    /// One reusable output buffer per stage, so no stage allocates per event.
    scratch: Vec<Vec<Event>>,
    formatter: Formatter,
    abort_on_failure: bool,
    /// Build only these fields of each line for the stages (`None`: all).
    projection: Option<Fields>,
    /// The chain as direct evaluation runs it, with its reusable slots.
    direct: Option<(direct::Chain, Vec<Option<json::Token>>)>,
    pool: Arc<Pool>,
}

impl Worker {
    pub fn new(
        stages: Vec<Box<dyn Stage>>,
        formatter: Formatter,
        abort_on_failure: bool,
        projection: Option<Fields>,
        direct: Option<direct::Chain>,
        pool: Arc<Pool>,
    ) -> Worker {
        let scratch = stages.iter().map(|_| Vec::new()).collect();
        Worker {
            stages,
            scratch,
            formatter,
            abort_on_failure,
            projection,
            direct: direct.map(|chain| {
                let slots = vec![None; chain.slots];
                (chain, slots)
            }),
            pool,
        }
    }

    pub fn process(&mut self, batch: &Batch) -> Processed {
        let mut p = self.empty(batch.source, batch.bytes);
        p.end = (batch.end_offset, batch.end_line);
        for line in &batch.lines {
            let raw = batch.line(line);
            p.events_ingested += 1;
            let ok = if self.stages.is_empty() {
                // Nothing needs the value: validating is enough.
                match json::validate(raw) {
                    Ok(()) => {
                        self.formatter.line(&mut p.out, raw);
                        p.events_emitted += 1;
                        true
                    }
                    Err(error) => fail(&mut p, line.number, None, error.to_string(), raw),
                }
            } else if let Some(ok) = self
                .direct
                .is_some()
                .then(|| self.direct_line(raw, line.number, &mut p))
                .flatten()
            {
                ok
            } else {
                let value = match &self.projection {
                    Some(fields) => json::project(raw, fields),
                    None => json::parse(raw),
                };
                match value {
                    Ok(value) => self.stage(
                        0,
                        Event {
                            value,
                            changed: false,
                        },
                        raw,
                        line.number,
                        &mut p,
                    ),
                    Err(error) => fail(&mut p, line.number, None, error.to_string(), raw),
                }
            };
            if !ok && self.abort_on_failure {
                p.aborted = true;
                break;
            }
        }
        p
    }

    /// Runs one line through the chain by direct evaluation. When that settled
    /// the line (it was emitted, dropped, or is not JSON), returns whether it
    /// did not fail; `None` when some stage was not sure: then the line goes
    /// through jaq, and nothing of this attempt but its time is counted.
    fn direct_line(&mut self, raw: &[u8], number: u64, p: &mut Processed) -> Option<bool> {
        let (chain, slots) = self.direct.as_mut().expect("direct chain");
        let located = match json::locate(raw, &chain.locate, slots, chain.check_keys) {
            Ok(located) => located,
            Err(error) => return Some(fail(p, number, None, error.to_string(), raw)),
        };
        let line = direct::Line {
            raw,
            slots,
            located,
        };
        let out_start = p.out.len();
        // Stages passed, and whether the last one run dropped the event.
        let mut passed = 0;
        let mut dropped = false;
        let mut unsure = false;
        let mut clock = Instant::now();
        for (i, stage) in chain.stages.iter().enumerate() {
            let result = match stage {
                direct::Stage::Filter(e) => line.keeps(e),
                direct::Stage::Map(e) => line
                    .write(e, self.formatter.raw_output, &mut p.out)
                    .map(|()| true),
            };
            let now = Instant::now();
            p.stages[i].time += now - clock;
            clock = now;
            match result {
                Ok(true) => passed += 1,
                Ok(false) => {
                    dropped = true;
                    break;
                }
                Err(Unsure) => {
                    unsure = true;
                    break;
                }
            }
        }
        if unsure {
            p.out.truncate(out_start);
            return None;
        }
        for counters in &mut p.stages[..passed] {
            counters.events_in += 1;
            counters.events_out += 1;
        }
        if dropped {
            let counters = &mut p.stages[passed];
            counters.events_in += 1;
            counters.events_filtered += 1;
        } else {
            if !matches!(chain.stages.last(), Some(direct::Stage::Map(_))) {
                // No map: the event is its line.
                self.formatter.line(&mut p.out, raw);
            }
            p.events_emitted += 1;
        }
        p.events_direct += 1;
        Some(true)
    }

    /// Whether the chain holds state across events (then it runs on one
    /// worker, which also gets `tick` and `finish`).
    pub fn stateful(&self) -> bool {
        self.stages.iter().any(|s| s.stateful())
    }

    /// Lets stateful stages emit what has closed by now (arrival time).
    pub fn tick(&mut self, now: i64) -> Processed {
        self.emit_from_stages(|stage, out| stage.tick(now, out))
    }

    /// End of input: stateful stages emit everything they hold.
    pub fn finish(&mut self) -> Processed {
        let mut p = self.emit_from_stages(|stage, out| stage.finish(out));
        p.last = true;
        p
    }

    /// Asks each stage in turn for what it emits on its own, and runs that
    /// through the stages after it. Such events come from no input line.
    fn emit_from_stages(
        &mut self,
        mut emit: impl FnMut(&mut dyn Stage, &mut Vec<Event>),
    ) -> Processed {
        let mut p = self.empty(0, 0);
        p.from_reader = false;
        for i in 0..self.stages.len() {
            let mut out = std::mem::take(&mut self.scratch[i]);
            emit(self.stages[i].as_mut(), &mut out);
            p.stages[i].events_out += out.len() as u64;
            p.stages[i].windows = self.stages[i].window_counters();
            for next in out.drain(..) {
                self.stage(i + 1, next, b"", 0, &mut p);
            }
            self.scratch[i] = out;
        }
        p
    }

    fn empty(&mut self, source: usize, bytes: u64) -> Processed {
        let mut out = self.pool.take();
        out.clear();
        Processed {
            source,
            bytes,
            events_ingested: 0,
            events_emitted: 0,
            parse_failed: 0,
            events_direct: 0,
            stages: vec![StageCounters::default(); self.stages.len()],
            out,
            failures: Vec::new(),
            aborted: false,
            from_reader: true,
            last: false,
            end: (0, 0),
        }
    }

    /// Runs stage `i` on `event`, then what it passes on through the rest.
    /// Returns false when an event failed.
    fn stage(&mut self, i: usize, event: Event, raw: &[u8], line: u64, p: &mut Processed) -> bool {
        if i == self.stages.len() {
            if event.changed {
                self.formatter.value(&mut p.out, &event.value);
            } else {
                self.formatter.line(&mut p.out, raw);
            }
            p.events_emitted += 1;
            return true;
        }
        let mut out = std::mem::take(&mut self.scratch[i]);
        let started = Instant::now();
        let result = self.stages[i].process(event, &mut out);
        let counters = &mut p.stages[i];
        counters.time += started.elapsed();
        counters.events_in += 1;
        let stateful = self.stages[i].stateful();
        let mut ok = true;
        match result {
            Err(Rejected::Failed(error)) => {
                counters.events_failed += 1;
                ok = fail(p, line, Some(i), error, raw);
            }
            Err(Rejected::Late(error)) => {
                counters.events_late += 1;
                p.failures.push(Failure {
                    line,
                    stage: Some(i),
                    error,
                    raw: raw.to_vec(),
                    late: true,
                });
            }
            Ok(()) => {
                counters.events_out += out.len() as u64;
                if stateful {
                    counters.events_aggregated += 1;
                } else if out.is_empty() {
                    counters.events_filtered += 1;
                }
                for next in out.drain(..) {
                    // After a failure under abort, the rest of the fan-out is not run.
                    if ok || !self.abort_on_failure {
                        ok &= self.stage(i + 1, next, raw, line, p);
                    }
                }
            }
        }
        if stateful {
            p.stages[i].windows = self.stages[i].window_counters();
        }
        out.clear();
        self.scratch[i] = out;
        ok
    }
}

/// Records a failed event; always returns false (the event failed).
fn fail(p: &mut Processed, line: u64, stage: Option<usize>, error: String, raw: &[u8]) -> bool {
    if stage.is_none() {
        p.parse_failed += 1;
    }
    p.failures.push(Failure {
        line,
        stage,
        error,
        raw: raw.to_vec(),
        late: false,
    });
    false
}
