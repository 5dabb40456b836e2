//! A worker: runs one batch of lines through its own copy of the stages,
//! depth-first (so output keeps input order and fan-out stays in place), and
//! returns the batch's output bytes, its failed events and its counters. The
//! executor puts batches back in input order and does everything else.

use crate::jq::direct::{self, Unsure};
use crate::source::{Batch, Format, Pool};
use crate::json::{self, Fields};
use crate::sink::Formatter;
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

pub struct Worker {
    stages: Vec<Box<dyn Stage>>,
    /// One reusable output buffer per stage, so no stage allocates per event.
    scratch: Vec<Vec<Event>>,
    formatter: Formatter,
    abort_on_failure: bool,
    /// Build only these fields of each line for the stages (`None`: all).
    projection: Option<Fields>,
    /// The chain as direct evaluation runs it, with its reusable buffers.
    direct: Option<Direct>,
    pool: Arc<Pool>,
    /// How the lines of a batch are events (see `input::Format`).
    format: Format,
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
            direct: direct.map(|chain| Direct {
                chain,
                slots: Vec::new(),
                lines: Vec::new(),
                maps: Vec::new(),
            }),
            pool,
            format: Format::Ndjson,
        }
    }

    /// Lines are read as `format` says: `-R` lines are strings, values of
    /// `--input-format json` are reported without a column (the value was
    /// made compact: its columns are not the file's).
    pub fn with_format(self, format: Format) -> Worker {
        Worker { format, ..self }
    }

    pub fn process(&mut self, batch: &Batch) -> Processed {
        let mut p = self.empty(batch.source, batch.bytes);
        p.end = batch.end;
        crate::jq::builtins::set_source(batch.source);
        if self.format == Format::Raw {
            self.process_raw(batch, &mut p);
            return p;
        }
        if let Some(direct) = self.direct.take() {
            let direct = self.process_direct(direct, batch, &mut p);
            self.direct = Some(direct);
            return p;
        }
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
                    Err(error) => {
                        let error = self.parse_error(&error);
                        fail(&mut p, line.number, None, error, raw)
                    }
                }
            } else {
                self.jaq_line(raw, line.number, &mut p)
            };
            if !ok && self.abort_on_failure {
                p.aborted = true;
                break;
            }
        }
        p
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
    fn process_raw(&mut self, batch: &Batch, p: &mut Processed) {
        for line in &batch.lines {
            let raw = batch.line(line);
            p.events_ingested += 1;
            crate::jq::builtins::set_line(line.number);
            let value = jaq_json::Val::from(String::from_utf8_lossy(raw).into_owned());
            let ok = if self.stages.is_empty() {
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

    /// Runs a batch through the chain by direct evaluation, one stage at a
    /// time over all lines (so each stage's time takes two clock readings a
    /// batch, not two an event): first every line is checked and located,
    /// then each stage runs on the lines still there, then the lines are
    /// settled in order. A line some stage was not sure about goes through
    /// jaq at that point, in order; of the direct attempt only its time counts.
    fn process_direct(&mut self, mut d: Direct, batch: &Batch, p: &mut Processed) -> Direct {
        let width = d.chain.slots;
        // `locate` empties each line's slots itself.
        d.slots.resize(batch.lines.len() * width, None);
        d.lines.clear();
        d.maps.clear();
        for (n, line) in batch.lines.iter().enumerate() {
            let slots = &mut d.slots[n * width..(n + 1) * width];
            let located =
                json::locate(batch.line(line), &d.chain.locate, slots, d.chain.check_keys);
            d.lines.push(match located {
                Ok(located) => Fate::Running(located),
                Err(error) => Fate::Bad(error),
            });
        }
        for (i, stage) in d.chain.stages.iter().enumerate() {
            let started = Instant::now();
            for (n, line) in batch.lines.iter().enumerate() {
                let Fate::Running(located) = d.lines[n] else {
                    continue;
                };
                let line = direct::Line {
                    raw: batch.line(line),
                    slots: &d.slots[n * width..(n + 1) * width],
                    located,
                };
                d.lines[n] = match stage {
                    direct::Stage::Filter(e) => match line.keeps(e) {
                        Ok(true) => Fate::Running(located),
                        Ok(false) => Fate::Dropped(i),
                        Err(Unsure) => Fate::Unsure,
                    },
                    direct::Stage::Map(e) => {
                        let start = d.maps.len();
                        match line.write(e, self.formatter.raw_output, &mut d.maps) {
                            Ok(()) => Fate::Mapped(start, d.maps.len()),
                            Err(Unsure) => Fate::Unsure,
                        }
                    }
                };
            }
            p.stages[i].time += started.elapsed();
        }
        let stages = d.chain.stages.len();
        for (n, line) in batch.lines.iter().enumerate() {
            let raw = batch.line(line);
            p.events_ingested += 1;
            let passed = match d.lines[n] {
                Fate::Bad(ref error) => {
                    let error = self.parse_error(error);
                    fail(p, line.number, None, error, raw);
                    if self.abort_on_failure {
                        p.aborted = true;
                        break;
                    }
                    continue;
                }
                Fate::Unsure => {
                    if !self.jaq_line(raw, line.number, p) && self.abort_on_failure {
                        p.aborted = true;
                        break;
                    }
                    continue;
                }
                Fate::Dropped(at) => at,
                Fate::Running(_) => {
                    // Through every filter, no map: the event is its line.
                    self.formatter.line(&mut p.out, raw);
                    stages
                }
                Fate::Mapped(start, end) => {
                    p.out.extend_from_slice(&d.maps[start..end]);
                    stages
                }
            };
            for counters in &mut p.stages[..passed] {
                counters.events_in += 1;
                counters.events_out += 1;
            }
            if passed < stages {
                let counters = &mut p.stages[passed];
                counters.events_in += 1;
                counters.events_filtered += 1;
            } else {
                p.events_emitted += 1;
            }
            p.events_direct += 1;
        }
        d
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
            end: Default::default(),
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
