//! A worker: runs one batch of lines through its own copy of the stages,
//! depth-first (so output keeps input order and fan-out stays in place), and
//! returns the batch's output bytes, its failed events and its counters. The
//! executor puts batches back in input order and does everything else.
//!
//! In a chain with a stateful stage, a worker runs the stages before it and
//! then only extracts what each event brings to it (`stage::extract`): the
//! batch goes back with those extractions, and the state's owner
//! (`runtime::state`) applies them in input order and runs the stages after.

use crate::jq::direct::{self, Unsure};
use crate::json::{self, Fields};
use crate::sink::Formatter;
use crate::source::{Batch, Format, Pool};
use crate::stage::extract::Extracts;
use crate::stage::{Event, Rejected, Step};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one stage did with one batch.
#[derive(Default, Clone, Debug)]
pub struct StageCounters {
    pub events_in: u64,
    pub events_out: u64,
    pub events_filtered: u64,
    pub events_failed: u64,
    pub time: Duration,
}

/// A failed (or late) event, for the executor to report and dead-letter in order.
pub struct Failure {
    /// The input line, or 0 for an event a stage emitted at the end of input.
    pub line: u64,
    /// The input line being processed when it happened (its place among
    /// the batch's failures).
    pub at: u64,
    /// Index of the stage that failed it, or `None` for a line that is not JSON.
    pub stage: Option<usize>,
    pub error: String,
    pub raw: Vec<u8>,
    /// A late event: dead-lettered and counted as late, not as failed.
    pub late: bool,
    /// The source of its line when it is not the batch's (an event a join
    /// took while it applied another side's batch).
    pub source: Option<usize>,
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
    /// The source's position after this batch (`Batch::end`).
    pub end: crate::source::Position,
    /// In a chain with a stateful stage: what the events that reached it
    /// bring, for its owner to apply, and the batch they came from.
    pub keyed: Option<Box<(Extracts, Batch)>>,
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
    /// The `--lookup` tables as this batch sees them.
    tables: Vec<Arc<crate::jq::lookup::Table>>,
}

impl Direct {
    fn new(chain: direct::Chain) -> Direct {
        Direct {
            chain,
            slots: Vec::new(),
            lines: Vec::new(),
            maps: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// Runs a batch through the chain by direct evaluation, one stage at a
    /// time over all lines (so each stage's time takes two clock readings a
    /// batch, not two an event): first every line is checked and located,
    /// then each stage runs on the lines still there, then the lines are
    /// settled in order. A line some stage was not sure about goes through
    /// jaq at that point, in order; of the direct attempt only its time counts.
    fn process(&mut self, batch: &Batch, stages: &mut Stages, p: &mut Processed) {
        let width = self.chain.slots;
        self.tables = crate::jq::lookup::tables();
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
                    tables: &self.tables,
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
                    fail(p, line.number, line.number, None, error, raw);
                    if stages.abort_on_failure {
                        p.aborted = true;
                        break;
                    }
                    continue;
                }
                Fate::Unsure => {
                    stages.index = Some(n as u32);
                    if !stages.jaq_line(raw, line.number, p) && stages.abort_on_failure {
                        p.aborted = true;
                        break;
                    }
                    continue;
                }
                Fate::Dropped(at) => at,
                Fate::Running(located) if self.chain.keyed.is_some() => {
                    let line_ = direct::Line {
                        raw,
                        slots: &self.slots[n * width..(n + 1) * width],
                        located,
                        tables: &self.tables,
                    };
                    let keyed = self.chain.keyed.as_ref().expect("keyed");
                    let extracts = &mut p.keyed.as_mut().expect("a keyed batch").0;
                    if extract(&line_, keyed, line.number, n, extracts).is_err() {
                        stages.index = Some(n as u32);
                        if !stages.jaq_line(raw, line.number, p) && stages.abort_on_failure {
                            p.aborted = true;
                            break;
                        }
                        continue;
                    }
                    // Counted by the state's owner when it applies it.
                    count
                }
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
            } else if self.chain.keyed.is_none() {
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
    /// A join's FILE: its source, and its side of the join as direct
    /// evaluation runs it. Its events go straight to the join stage.
    right: Option<(usize, Option<Direct>)>,
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
    /// Where the stateful stage stands: the worker extracts there, and the
    /// state's owner runs it and the stages after it.
    keyed_at: Option<usize>,
    /// The place in its batch of the line being run (for the dead letter of
    /// an event the state's owner finds late).
    index: Option<u32>,
    /// Where the batch's events enter the chain: 0, or for the other side
    /// of a join, the join stage itself.
    start: usize,
    /// The batch's input side (see `StatefulStage::sides`).
    side: usize,
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
        let keyed_at = crate::stage::stateful_at(&steps);

        Worker {
            direct: direct.map(Direct::new),
            right: None,
            stages: Stages {
                steps,
                scratch,
                formatter,
                abort_on_failure,
                projection,
                format: Format::Ndjson,
                keyed_at,
                index: None,
                start: 0,
                side: 0,
            },
            pool,
        }
    }

    /// Batches of `source` are the other side of the chain's join: their
    /// events go straight to it (by direct evaluation with `direct`, when
    /// given).
    pub fn with_right(mut self, source: usize, direct: Option<direct::Chain>) -> Worker {
        self.right = Some((source, direct.map(Direct::new)));
        self
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
        if self.stages.keyed_at.is_some() {
            p.keyed = Some(Box::new((Extracts::recycled(), Batch::default())));
        }
        crate::jq::builtins::set_source(batch.source);
        // A `--lookup` table loaded again is used from a batch's start on.
        crate::jq::lookup::refresh();
        if let Some((source, direct)) = &mut self.right
            && *source == batch.source
        {
            self.stages.side = 1;
            self.stages.start = self.stages.keyed_at.expect("a join");
            if let Some(keyed) = &mut p.keyed {
                keyed.0.side = 1;
            }
            match direct {
                Some(direct) => direct.process(batch, &mut self.stages, &mut p),
                None => self.stages.lines(batch, &mut p),
            }
            (self.stages.side, self.stages.start) = (0, 0);
            return p;
        }
        match &mut self.direct {
            _ if self.stages.format == Format::Raw => self.stages.raw(batch, &mut p),
            Some(direct) => direct.process(batch, &mut self.stages, &mut p),
            None => self.stages.lines(batch, &mut p),
        }
        p
    }

    /// Where the chain's stateful stage stands, if it has one.
    pub fn keyed_at(&self) -> Option<usize> {
        self.stages.keyed_at
    }

    /// The chain's steps (the state's owner runs its stateful one).
    pub fn steps_mut(&mut self) -> &mut [Step] {
        &mut self.stages.steps
    }

    pub fn steps(&self) -> &[Step] {
        &self.stages.steps
    }

    /// Runs events a stateful stage emitted (from no input line, or while
    /// input line `at` was applied) through the stages from `from` on.
    pub fn run_from(&mut self, from: usize, events: &mut Vec<Event>, at: u64, p: &mut Processed) {
        crate::jq::lookup::refresh();
        for event in events.drain(..) {
            self.stages.stage(from, event, b"", 0, at, p);
        }
    }

    /// A result for what the state's owner does outside any batch (on the
    /// clock, at the end of input).
    pub fn empty(&mut self, source: usize, bytes: u64) -> Processed {
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
            end: Default::default(),
            keyed: None,
        }
    }
}

impl Stages {
    /// Runs each line of a batch through the stages with jaq.
    fn lines(&mut self, batch: &Batch, p: &mut Processed) {
        for (n, line) in batch.lines.iter().enumerate() {
            self.index = Some(n as u32);
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
                        fail(p, line.number, line.number, None, error, raw)
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
                self.start,
                Event {
                    value,
                    changed: false,
                },
                raw,
                number,
                number,
                p,
            ),
            Err(error) => fail(p, number, number, None, self.parse_error(&error), raw),
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
        for (n, line) in batch.lines.iter().enumerate() {
            self.index = Some(n as u32);
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
                self.stage(0, event, raw, line.number, line.number, p)
            };
            if !ok && self.abort_on_failure {
                p.aborted = true;
                break;
            }
        }
    }

    /// Extracts what `event` brings to the stateful stage `i`, for its owner.
    fn extract(
        &mut self,
        i: usize,
        event: &Event,
        raw: &[u8],
        line: u64,
        at: u64,
        p: &mut Processed,
    ) -> bool {
        let started = Instant::now();
        let stage = self.steps[i].stateful().expect("the stateful stage");
        let extracts = &mut p.keyed.as_mut().expect("a keyed batch").0;
        let result = stage.extract(&event.value, self.side, line, self.index, extracts);
        let counters = &mut p.stages[i];
        counters.time += started.elapsed();
        match result {
            Ok(()) => true,
            Err(error) => {
                counters.events_in += 1;
                counters.events_failed += 1;
                fail(p, line, at, Some(i), error, raw)
            }
        }
    }

    /// Runs stage `i` on `event`, then what it passes on through the rest.
    /// Returns false when an event failed.
    fn stage(
        &mut self,
        i: usize,
        event: Event,
        raw: &[u8],
        line: u64,
        at: u64,
        p: &mut Processed,
    ) -> bool {
        if self.keyed_at == Some(i) && p.keyed.is_some() {
            return self.extract(i, &event, raw, line, at, p);
        }
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
        let Step::Stateless(stage) = &mut self.steps[i] else {
            unreachable!("a stateful stage is run by the state's owner")
        };
        let result = stage.process(event, &mut out);
        let counters = &mut p.stages[i];
        counters.time += started.elapsed();
        counters.events_in += 1;
        let mut ok = true;
        match result {
            Err(Rejected::Failed(error)) => {
                counters.events_failed += 1;
                ok = fail(p, line, at, Some(i), error, raw);
            }
            Err(Rejected::Late(_)) => unreachable!("only a stateful stage finds events late"),
            Ok(()) => {
                counters.events_out += out.len() as u64;
                if out.is_empty() {
                    counters.events_filtered += 1;
                }
                for next in out.drain(..) {
                    // After a failure under abort, the rest of the fan-out is not run.
                    if ok || !self.abort_on_failure {
                        ok &= self.stage(i + 1, next, raw, line, at, p);
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
fn fail(
    p: &mut Processed,
    line: u64,
    at: u64,
    stage: Option<usize>,
    error: String,
    raw: &[u8],
) -> bool {
    if stage.is_none() {
        p.parse_failed += 1;
    }
    p.failures.push(Failure {
        line,
        at,
        stage,
        error,
        raw: raw.to_vec(),
        late: false,
        source: None,
    });
    false
}

/// Extracts what a line brings to a keyed stage by direct evaluation:
/// its key, its time, its aggregates' values (numbers for the aggregates
/// that take numbers, JSON text for the others). `Unsure` leaves `into` as
/// it was.
fn extract(
    line: &direct::Line,
    keyed: &direct::Keyed,
    number: u64,
    index: usize,
    into: &mut Extracts,
) -> Result<(), Unsure> {
    let mark = into.start();
    let result = (|| {
        let buf = into.key_buffer();
        // One key is its value; several, an array of them; none, null.
        match keyed.keys.as_slice() {
            [] => buf.extend_from_slice(b"null"),
            [key] => {
                line.write_value(key, false, buf)?;
            }
            keys => {
                buf.push(b'[');
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    line.write_value(key, false, buf)?;
                }
                buf.push(b']');
            }
        }
        let key_end = buf.len();
        let time = match &keyed.time {
            // Arrival time, for windows; a group-by needs none.
            None if keyed.clock => crate::stage::window::time::now(),
            None => 0,
            Some(e) => {
                let start = buf.len();
                let kind = line.write_value(e, false, buf)?;
                let time = crate::stage::window::time::time_of_text(&buf[start..], kind);
                buf.truncate(start);
                time.ok_or(Unsure)?
            }
        };
        for (agg, value) in keyed.values.iter().enumerate() {
            let Some((value, numbers)) = value else {
                continue;
            };
            let buf = into.key_buffer();
            let start = buf.len();
            let kind = line.write_value(value, !numbers, buf)?;
            if kind == json::Kind::Null {
                buf.truncate(start);
                continue;
            }
            if *numbers {
                let text = std::str::from_utf8(&buf[start..]).map_err(|_| Unsure)?;
                let number = match kind {
                    json::Kind::Int => text.parse::<i64>().map(Number::Int).map_err(|_| Unsure)?,
                    json::Kind::Dec => match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Number::Float(f),
                        _ => return Err(Unsure),
                    },
                    // Not a number: jaq says why.
                    _ => return Err(Unsure),
                };
                buf.truncate(start);
                match number {
                    Number::Int(i) => into.push_int(agg, i),
                    Number::Float(f) => into.push_float(agg, f),
                }
            } else {
                into.push_written(agg, start);
            }
        }
        Ok((key_end, time))
    })();
    match result {
        Ok((key_end, time)) => {
            into.finish(mark, key_end, number, Some(index as u32), time);
            Ok(())
        }
        Err(Unsure) => {
            into.abandon(mark);
            Err(Unsure)
        }
    }
}

enum Number {
    Int(i64),
    Float(f64),
}
