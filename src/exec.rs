//! The executor: takes batches from the reader thread, drives every line
//! through the stages depth-first (so output keeps input order and fan-out
//! stays in place), writes survivors, and accounts for every event.

use crate::cli::{OnError, StatsFormat};
use crate::event;
use crate::input::{self, Batch, Message};
use crate::output::{DeadLetter, EventWriter};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::stage::{Event, Stage};
use crate::stats::{InputStats, StageStats, Stats};
use crate::status;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Failure reports printed on standard error before evq only counts them.
const REPORT_LIMIT: u64 = 10;

/// Why a run stopped before its inputs ended.
enum Stop {
    /// `--on-error abort` met a failed event.
    Abort,
    /// The reader of standard output went away: end quietly.
    BrokenPipe,
    /// Output or dead letter could not be written: the message to print.
    Io(String),
}

/// Where the event being processed came from.
struct Origin<'a> {
    source: usize,
    line: u64,
    raw: &'a [u8],
}

struct Executor {
    stages: Vec<Box<dyn Stage>>,
    /// One reusable output buffer per stage, so no stage allocates per event.
    scratch: Vec<Vec<Event>>,
    sources: Vec<input::Source>,
    output: EventWriter,
    dead_letter: Option<DeadLetter>,
    on_error: OnError,
    quiet: bool,
    progress: Progress,
    stats: Stats,
    reported: u64,
    input_errors: u64,
}

/// Runs the plan to the end of its inputs (or a stop) and returns the exit status.
pub fn run(plan: Plan, stop: Arc<AtomicUsize>, started: Instant) -> i32 {
    let total = plan.sources.iter().map(|s| s.size()).sum::<Option<u64>>();
    let mut ex = Executor {
        scratch: plan.stages.iter().map(|_| Vec::new()).collect(),
        stats: Stats {
            stages: plan
                .stages
                .iter()
                .map(|s| StageStats {
                    name: s.name().into(),
                    kind: s.kind(),
                    expr: s.expr().into(),
                    ..Default::default()
                })
                .collect(),
            inputs: plan
                .sources
                .iter()
                .map(|s| InputStats {
                    path: s.name.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        stages: plan.stages,
        sources: plan.sources,
        output: plan.output,
        dead_letter: plan.dead_letter,
        on_error: plan.on_error,
        quiet: plan.quiet,
        progress: Progress::new(plan.progress, plan.progress_forced, total),
        reported: 0,
        input_errors: 0,
    };

    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let sources = ex.sources.clone();
    let reader_stop = Arc::clone(&stop);
    std::thread::spawn(move || input::read_all(&sources, tx, reader_stop));

    let mut stopped = None;
    loop {
        let message = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // Input is idle: whatever is written so far goes out now.
                if let Err(s) = ex.flush() {
                    stopped = Some(s);
                    break;
                }
                if stop.load(Ordering::Relaxed) != 0 {
                    break;
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let result = match message {
            Message::Batch(batch) => ex.batch(&batch),
            Message::Failed { source, error } => {
                ex.input_failed(source, error);
                Ok(())
            }
        };
        if let Err(s) = result {
            stopped = Some(s);
            break;
        }
    }
    if stopped.is_none() {
        stopped = ex.flush().err();
    }
    ex.finish(
        stopped,
        stop.load(Ordering::Relaxed),
        plan.stats,
        plan.exit_status,
        started,
    )
}

impl Executor {
    fn batch(&mut self, batch: &Batch) -> Result<(), Stop> {
        self.stats.bytes_read += batch.bytes;
        self.stats.inputs[batch.source].bytes += batch.bytes;
        let result = batch.lines.iter().try_for_each(|line| {
            let origin = Origin {
                source: batch.source,
                line: line.number,
                raw: batch.line(line),
            };
            self.line(&origin)
        });
        self.progress.update(
            self.stats.bytes_read,
            self.stats.events_ingested,
            self.stats.events_emitted,
        );
        result
    }

    fn line(&mut self, origin: &Origin) -> Result<(), Stop> {
        self.stats.events_ingested += 1;
        self.stats.inputs[origin.source].lines += 1;
        if self.stages.is_empty() {
            // Nothing needs the value: validating is enough.
            return match event::validate(origin.raw) {
                Ok(()) => self.emit(
                    Event {
                        value: Default::default(),
                        changed: false,
                    },
                    origin,
                ),
                Err(e) => self.fail(origin, None, e),
            };
        }
        match event::parse(origin.raw) {
            Ok(value) => self.stage(
                0,
                Event {
                    value,
                    changed: false,
                },
                origin,
            ),
            Err(e) => self.fail(origin, None, e),
        }
    }

    /// Runs stage `i` on `event`, then what it passes on through the rest.
    fn stage(&mut self, i: usize, event: Event, origin: &Origin) -> Result<(), Stop> {
        if i == self.stages.len() {
            return self.emit(event, origin);
        }
        let mut out = std::mem::take(&mut self.scratch[i]);
        let started = Instant::now();
        let result = self.stages[i].process(event, &mut out);
        let stats = &mut self.stats.stages[i];
        stats.processing_time += started.elapsed();
        stats.events_in += 1;
        let mut flow = Ok(());
        match result {
            Err(e) => {
                stats.events_failed += 1;
                flow = self.fail(origin, Some(i), e);
            }
            Ok(()) => {
                stats.events_out += out.len() as u64;
                if out.is_empty() {
                    stats.events_filtered += 1;
                }
                for next in out.drain(..) {
                    if flow.is_ok() {
                        flow = self.stage(i + 1, next, origin);
                    }
                }
            }
        }
        out.clear();
        self.scratch[i] = out;
        flow
    }

    fn emit(&mut self, event: Event, origin: &Origin) -> Result<(), Stop> {
        let written = if event.changed {
            self.output.write_value(&event.value)
        } else {
            self.output.write_line(origin.raw)
        };
        written.map_err(|e| write_error(&self.output.name, e))?;
        self.stats.events_emitted += 1;
        Ok(())
    }

    /// Accounts for a failed event: count, report, dead-letter, maybe abort.
    fn fail(&mut self, origin: &Origin, stage: Option<usize>, error: String) -> Result<(), Stop> {
        self.stats.events_failed += 1;
        self.stats.inputs[origin.source].failed += 1;
        if stage.is_none() {
            self.stats.parse_failed += 1;
        }
        let stage_name = stage.map(|i| self.stages[i].name());
        if !self.quiet {
            self.reported += 1;
            if self.reported <= REPORT_LIMIT {
                let display = self.sources[origin.source].display();
                let prefix = stage_name.map_or(String::new(), |n| format!("{n}: "));
                self.progress
                    .eprintln(&format!("{display}:{}: {prefix}{error}", origin.line));
            }
        }
        if let Some(dl) = &mut self.dead_letter {
            let source = &self.sources[origin.source].name;
            dl.write(source, origin.line, stage_name, &error, origin.raw)
                .map_err(|e| {
                    Stop::Io(format!(
                        "evq: cannot write dead-letter file {}: {}",
                        dl.name,
                        status::io_error_text(&e)
                    ))
                })?;
        }
        if self.on_error == OnError::Abort {
            Err(Stop::Abort)
        } else {
            Ok(())
        }
    }

    fn input_failed(&mut self, source: usize, error: std::io::Error) {
        let name = self.sources[source].display();
        let error = status::io_error_text(&error);
        self.progress.eprintln(&format!("evq: {name}: {error}"));
        self.stats.inputs[source].error = Some(error);
        self.input_errors += 1;
    }

    fn flush(&mut self) -> Result<(), Stop> {
        self.output
            .flush()
            .map_err(|e| write_error(&self.output.name, e))?;
        if let Some(dl) = &mut self.dead_letter {
            dl.flush().map_err(|e| {
                Stop::Io(format!(
                    "evq: cannot write dead-letter file {}: {}",
                    dl.name,
                    status::io_error_text(&e)
                ))
            })?;
        }
        Ok(())
    }

    /// Prints what is left to say and decides the exit status.
    fn finish(
        mut self,
        stopped: Option<Stop>,
        signal: usize,
        stats_format: Option<StatsFormat>,
        exit_status: bool,
        started: Instant,
    ) -> i32 {
        // After a write error the output may still hold unwritten bytes; a
        // second flush attempt would fail the same way, so drop them quietly.
        self.progress.finish();
        if self.reported > REPORT_LIMIT {
            eprintln!(
                "evq: {} more failed events not shown (--dead-letter keeps every one)",
                self.reported - REPORT_LIMIT
            );
        }
        if let Some(Stop::Io(message)) = &stopped {
            eprintln!("{message}");
        }
        if let Some(format) = stats_format {
            self.stats.finish(started.elapsed());
            match format {
                StatsFormat::Json => eprintln!("{}", self.stats.to_json()),
                StatsFormat::Text => eprint!("{}", self.stats.to_text()),
            }
        }
        match stopped {
            Some(Stop::BrokenPipe) => return status::OK,
            Some(Stop::Io(_)) => return status::IO,
            Some(Stop::Abort) | None => {}
        }
        if signal != 0 {
            status::signalled(signal)
        } else if self.input_errors > 0 {
            status::IO
        } else if self.stats.events_failed > 0 && self.on_error != OnError::Ignore {
            status::FAILED_EVENTS
        } else if exit_status && self.stats.events_emitted == 0 {
            status::NO_OUTPUT
        } else {
            status::OK
        }
    }
}

fn write_error(name: &str, e: std::io::Error) -> Stop {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Stop::BrokenPipe
    } else {
        Stop::Io(format!(
            "evq: cannot write to {name}: {}",
            status::io_error_text(&e)
        ))
    }
}
