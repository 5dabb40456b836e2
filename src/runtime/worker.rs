//! A worker: runs one batch of lines through its own copy of the stages,
//! depth-first (so output keeps input order and fan-out stays in place), and
//! returns the batch's output bytes, its failed events and its counters. The
//! executor puts batches back in input order and does everything else.

use crate::jq::direct::{self, Unsure};
use crate::json::{self, Fields};
use crate::report::stats::StateStats;
use crate::sink::Formatter;
use crate::source::{Batch, Format, Pool};
use crate::stage::{Event, Rejected, StatefulStage, Step};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one stage did with one batch.
#[derive(Default, Clone, Debug)]
pub struct StageCounters {
    pub events_in: u64,
    pub events_out: u64,
    pub events_filtered: u64,
    pub events_failed: u64,
    /// Stateful stages only: the stage's own counters so far (running
    /// totals, taken at the end of the batch).
    pub state: Option<StateStats>,
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
    /// The source's position after this batch (`Batch::end`).
    pub end: crate::source::Position,
}

/// Direct evaluation of a batch: the chain, and buffers kept across batches.
struct Direct {
    chain: direct::Chain,
    /// The tokens each line's expressions read: `chain.slots` per line.
    slots: Vec<Option<json::Token>>,
    /// What became of each line so far.
    lines: Vec<Fate>,
    /// What the map wrote for the lines, one after the other.
    maps: Vec<u8>,
}

impl Direct {
    /// Runs a batch through the chain by direct evaluation, one stage at a
    /// time over all lines (so each stage's time takes two clock readings a
    /// batch, not two an event): first every line is checked and located,
    /// then each stage runs on the lines still there, then the lines are
    /// settled in order. A line some stage was not sure about goes through
    /// jaq at that point, in order; of the direct attempt only its time counts.
    fn process(&mut self, batch: &Batch, stages: &mut Stages, p: &mut Processed) {
        let width = self.chain.slots;
        // `locate` empties each line's slots itself.
        self.slots.resize(batch.lines.len() * width, None);
        self.lines.clear();
        self.maps.clear();
        for (n, line) in batch.lines.iter().enumerate() {
            let slots = &mut self.slots[n * width..(n + 1) * width];
            let located = json::locate(
                batch.line(line),
                &self.chain.locate,
                slots,
                self.chain.check_keys,
            );
            self.lines.push(match located {
                Ok(located) => Fate::Running(located),
                Err(error) => Fate::Bad(error),
            });
        }
        for (i, stage) in self.chain.stages.iter().enumerate() {
            let started = Instant::now();
            for (n, line) in batch.lines.iter().enumerate() {
                let Fate::Running(located) = self.lines[n] else {
                    continue;
                };
                let line = direct::Line {
                    raw: batch.line(line),
                    slots: &self.slots[n * width..(n + 1) * width],
                    located,
                };
                self.lines[n] = match stage {
                    direct::Stage::Filter(e) => match line.keeps(e) {
                        Ok(true) => Fate::Running(located),
                        Ok(false) => Fate::Dropped(i),
                        Err(Unsure) => Fate::Unsure,
                    },
                    direct::Stage::Map(e) => {
                        let start = self.maps.len();
                        match line.write(e, stages.formatter.raw_output, &mut self.maps) {
                            Ok(()) => Fate::Mapped(start, self.maps.len()),
                            Err(Unsure) => Fate::Unsure,
                        }
                    }
                };
            }
            p.stages[i].time += started.elapsed();
        }
        let count = self.chain.stages.len();
        for (n, line) in batch.lines.iter().enumerate() {
            let raw = batch.line(line);
            p.events_ingested += 1;
            let passed = match self.lines[n] {
                Fate::Bad(ref error) => {
                    let error = stages.parse_error(error);
                    fail(p, line.number, None, error, raw);
                    if stages.abort_on_failure {
                        p.aborted = true;
                        break;
                    }
                    continue;
                }
                Fate::Unsure => {
                    if !stages.jaq_line(raw, line.number, p) && stages.abort_on_failure {
                        p.aborted = true;
                        break;
                    }
                    continue;
                }
                Fate::Dropped(at) => at,
                Fate::Running(_) => {
                    // Through every filter, no map: the event is its line.
                    stages.formatter.line(&mut p.out, raw);
                    count
                }
                Fate::Mapped(start, end) => {
                    p.out.extend_from_slice(&self.maps[start..end]);
                    count
                }
            };
            for counters in &mut p.stages[..passed] {
                counters.events_in += 1;
                counters.events_out += 1;
            }
            if passed < count {
                let counters = &mut p.stages[passed];
                counters.events_in += 1;
                counters.events_filtered += 1;
            } else {
                p.events_emitted += 1;
            }
            p.events_direct += 1;
        }
    }
}

/// What became of one line of a batch under direct evaluation.
enum Fate {
    /// Not JSON.
    Bad(json::Error),
    /// Passed the stages so far.
    Running(json::Located),
    /// Dropped by this stage.
    Dropped(usize),
    /// The map wrote `maps[start..end]`.
    Mapped(usize, usize),
    /// Some stage was not sure: jaq decides.
    Unsure,
}

/// A worker's state, in two parts so that direct evaluation can hand lines
/// it is not sure about to jaq while it holds its own buffers.
pub struct Worker {
    /// The chain as direct evaluation runs it, with its reusable buffers.
    direct: Option<Direct>,
    /// The chain as jaq runs it, event by event, and the output it writes.
    stages: Stages,
    pool: Arc<Pool>,
}

/// The steps of the chain as jaq runs them, and where their events go.
struct Stages {
    steps: Vec<Step>,
    /// One reusable output buffer per stage, so no stage allocates per event.
    scratch: Vec<Vec<Event>>,
    formatter: Formatter,
    abort_on_failure: bool,
    /// Build only these fields of each line for the stages (`None`: all).
    projection: Option<Fields>,
    /// How the lines of a batch are events (see `source::Format`).
    format: Format,
}

impl Worker {
    /// A worker for this chain (stateless stages may come as plain
    /// `Box<dyn Stage>`s), writing with `formatter`; `direct` is the same
    /// chain for direct evaluation, when it has one.
    pub fn new(
        steps: impl IntoIterator<Item = impl Into<Step>>,
        formatter: Formatter,
        abort_on_failure: bool,
        projection: Option<Fields>,
        direct: Option<direct::Chain>,
        pool: Arc<Pool>,
    ) -> Worker {
        let steps: Vec<Step> = steps.into_iter().map(Into::into).collect();
        let scratch = steps.iter().map(|_| Vec::new()).collect();
        Worker {
            direct: direct.map(|chain| Direct {
                chain,
                slots: Vec::new(),
                lines: Vec::new(),
                maps: Vec::new(),
            }),
            stages: Stages {
                steps,
                scratch,
                formatter,
                abort_on_failure,
                projection,
                format: Format::Ndjson,
            },
            pool,
        }
    }

    /// Lines are read as `format` says: `-R` lines are strings, values of
    /// `--input-format json` are reported without a column (the value was
    /// made compact: its columns are not the file's).
    pub fn with_format(mut self, format: Format) -> Worker {
        self.stages.format = format;
        self
    }

    pub fn process(&mut self, batch: &Batch) -> Processed {
        let mut p = self.empty(batch.source, batch.bytes);
        p.end = batch.end;
        crate::jq::builtins::set_source(batch.source);
        match &mut self.direct {
            _ if self.stages.format == Format::Raw => self.stages.raw(batch, &mut p),
            Some(direct) => direct.process(batch, &mut self.stages, &mut p),
            None => self.stages.lines(batch, &mut p),
        }
        self.stages.count_state(&mut p);
        p
    }

    /// Whether the chain holds state across events (then it runs on one
    /// worker, which also gets `tick` and `finish`).
    pub fn stateful(&self) -> bool {
        crate::stage::holds_state(&self.stages.steps)
    }

    /// Lets stateful stages emit what has closed by now (arrival time).
    pub fn tick(&mut self, now: i64) -> Processed {
        let mut p = self.empty(0, 0);
        p.from_reader = false;
        self.stages.emit(|stage, out| stage.tick(now, out), &mut p);
        p
    }

    /// End of input: stateful stages emit everything they hold.
    pub fn finish(&mut self) -> Processed {
        let mut p = self.empty(0, 0);
        (p.from_reader, p.last) = (false, true);
        self.stages.emit(|stage, out| stage.finish(out), &mut p);
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
            stages: vec![StageCounters::default(); self.stages.steps.len()],
            out,
            failures: Vec::new(),
            aborted: false,
            from_reader: true,
            last: false,
            end: Default::default(),
        }
    }
}

impl Stages {
    /// Runs each line of a batch through the stages with jaq.
    fn lines(&mut self, batch: &Batch, p: &mut Processed) {
        for line in &batch.lines {
            let raw = batch.line(line);
            p.events_ingested += 1;
            let ok = if self.steps.is_empty() {
                // Nothing needs the value: validating is enough.
                match json::validate(raw) {
                    Ok(()) => {
                        self.formatter.line(&mut p.out, raw);
                        p.events_emitted += 1;
                        true
                    }
                    Err(error) => {
                        let error = self.parse_error(&error);
                        fail(p, line.number, None, error, raw)
                    }
                }
            } else {
                self.jaq_line(raw, line.number, p)
            };
            if !ok && self.abort_on_failure {
                p.aborted = true;
                break;
            }
        }
    }

    /// Runs one line through the stages with jaq. Returns false when an
    /// event failed.
    fn jaq_line(&mut self, raw: &[u8], number: u64, p: &mut Processed) -> bool {
        crate::jq::builtins::set_line(number);
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
                number,
                p,
            ),
            Err(error) => fail(p, number, None, self.parse_error(&error), raw),
        }
    }

    /// What a line that is not JSON is reported with.
    fn parse_error(&self, error: &json::Error) -> String {
        match self.format {
            Format::Json => crate::source::value_error(error),
            _ => error.to_string(),
        }
    }

    /// `-R`: each line is a string event (bytes that are not UTF-8 become
    /// U+FFFD, as in jq), written from its value when no stage changes it.
    fn raw(&mut self, batch: &Batch, p: &mut Processed) {
        for line in &batch.lines {
            let raw = batch.line(line);
            p.events_ingested += 1;
            crate::jq::builtins::set_line(line.number);
            let value = jaq_json::Val::from(String::from_utf8_lossy(raw).into_owned());
            let ok = if self.steps.is_empty() {
                self.formatter.value(&mut p.out, &value);
                p.events_emitted += 1;
                true
            } else {
                let event = Event {
                    value,
                    changed: true,
                };
                self.stage(0, event, raw, line.number, p)
            };
            if !ok && self.abort_on_failure {
                p.aborted = true;
                break;
            }
        }
    }

    /// Asks each stateful stage in turn for what it emits on its own, and
    /// runs that through the stages after it. Such events come from no
    /// input line.
    fn emit(
        &mut self,
        mut emit: impl FnMut(&mut dyn StatefulStage, &mut Vec<Event>),
        p: &mut Processed,
    ) {
        for i in 0..self.steps.len() {
            let Some(stage) = self.steps[i].stateful_mut() else {
                continue;
            };
            let mut out = std::mem::take(&mut self.scratch[i]);
            emit(stage, &mut out);
            p.stages[i].events_out += out.len() as u64;
            for next in out.drain(..) {
                self.stage(i + 1, next, b"", 0, p);
            }
            self.scratch[i] = out;
        }
        self.count_state(p);
    }

    /// Each stateful stage's counters as they stand after the batch.
    fn count_state(&self, p: &mut Processed) {
        for (step, counters) in self.steps.iter().zip(&mut p.stages) {
            if let Some(stage) = step.stateful() {
                counters.state = Some(stage.counters());
            }
        }
    }

    /// Runs stage `i` on `event`, then what it passes on through the rest.
    /// Returns false when an event failed.
    fn stage(&mut self, i: usize, event: Event, raw: &[u8], line: u64, p: &mut Processed) -> bool {
        if i == self.steps.len() {
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
        let result = self.steps[i].process(event, &mut out);
        let counters = &mut p.stages[i];
        counters.time += started.elapsed();
        counters.events_in += 1;
        // A stateful stage takes events in: it filters none.
        let stateful = matches!(self.steps[i], Step::Stateful(_));
        let mut ok = true;
        match result {
            Err(Rejected::Failed(error)) => {
                counters.events_failed += 1;
                ok = fail(p, line, Some(i), error, raw);
            }
            Err(Rejected::Late(error)) => {
                // Counted by the stage itself (its `counters`).
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
                if out.is_empty() && !stateful {
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
