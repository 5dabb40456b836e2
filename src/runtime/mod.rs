//! The executor: a reader thread cuts the inputs into batches and deals them
//! round-robin to the worker threads; this thread takes the results back in
//! the same order, so output, dead letter, reports, stats and exit status are
//! the same for any number of workers. Every queue is bounded, so memory stays
//! flat whatever the input size and however slowly stdout drains.

pub mod signal;
pub mod worker;

use crate::cli::{OnError, StatsFormat};
use crate::source::{self, Message};
use crate::sink::{DeadLetter, Sink};
use crate::plan::Plan;
use crate::report::progress::Progress;
use crate::report::stats::{InputStats, Interval, StageStats, Stats, WindowStats};
use crate::report::status;
use crate::runtime::worker::{Processed, Worker};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

/// Failure reports printed on standard error before evq only counts them.
const REPORT_LIMIT: u64 = 10;
/// Batches queued per worker, in each direction.
const QUEUE: usize = 2;
/// How often an idle stateful worker looks at the clock (windows on arrival time).
const TICK: Duration = Duration::from_millis(100);

/// Stack of each worker thread: jaq recurses into nested values, and jq
/// handles 10000 levels (only the pages used are committed).
const WORKER_STACK: usize = 256 << 20;

/// Why a run stopped before its inputs ended.
enum Stop {
    /// `--on-error abort` met a failed event.
    Abort,
    /// The reader of standard output went away: end quietly, with the exit
    /// status of what was read so far.
    BrokenPipe,
    /// Output or dead letter could not be written: the message to print.
    Io(String),
}

/// What a worker hands back, in the order the reader dealt it out.
enum Outcome {
    Batch(Processed),
    Opened {
        source: usize,
        entry: crate::source::checkpoint::Entry,
    },
    Failed {
        source: usize,
        error: std::io::Error,
    },
}

/// This thread's state: the outputs and the accounts.
struct Collector {
    sources: Vec<source::Source>,
    output: Box<dyn Sink>,
    dead_letter: Option<DeadLetter>,
    on_error: OnError,
    quiet: bool,
    progress: Progress,
    stats: Stats,
    reported: u64,
    input_errors: u64,
    periodic: Option<Periodic>,
    saving: Option<Saving>,
    /// Every `--agg` as written, for the note on a truncated `collect`.
    aggs: Vec<String>,
}

/// `--checkpoint`: where each input stands in what was written, and when to
/// write the checkpoint next.
struct Saving {
    path: std::path::PathBuf,
    every: Duration,
    last: Instant,
    entries: Vec<Entries>,
}

/// Where one input stands: the file under its name, and under `--follow` the
/// last file rotated away from it, which may still be read (`--rotate-wait`).
/// Both are saved, so a later run given the rotated file under its new name
/// too resumes each where this one stopped.
#[derive(Clone, Default)]
struct Entries {
    current: Option<crate::source::checkpoint::Entry>,
    rotated: Option<crate::source::checkpoint::Entry>,
}

impl Entries {
    /// The entry of the file a position is in. Lines of a rotated file may
    /// come before the new file's `Opened`: then it is still current.
    fn of(&mut self, at: &source::Position) -> Option<&mut crate::source::checkpoint::Entry> {
        let is = |e: &crate::source::checkpoint::Entry| e.at.same_stream(at);
        match (&mut self.current, &mut self.rotated) {
            (Some(e), _) if is(e) => Some(e),
            (_, Some(e)) if is(e) => Some(e),
            _ => None,
        }
    }
}

/// `--stats-every`: when to print next, and the counts at the last report.
struct Periodic {
    every: Duration,
    format: StatsFormat,
    started: Instant,
    last: Instant,
    counts: (u64, u64, u64),
}

/// Runs the plan to the end of its inputs (or a stop) and returns the exit status.
pub fn run(plan: Plan, stop: Arc<AtomicUsize>, started: Instant) -> i32 {
    let stages = plan.chain.stages();
    let stateful = stages.iter().any(|s| s.stateful());
    let total = plan.sources.iter().map(|s| s.size()).sum::<Option<u64>>();
    let mut collector = Collector {
        stats: Stats {
            stages: stages
                .iter()
                .map(|s| StageStats {
                    name: s.name().into(),
                    kind: s.kind(),
                    expr: s.expr().into(),
                    window: s.stateful().then(WindowStats::default),
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
            fields_read: if stages.is_empty() {
                Some(Vec::new())
            } else {
                plan.projection.as_ref().and_then(|f| f.paths())
            },
            ..Default::default()
        },
        sources: plan.sources.clone(),
        output: plan.output,
        dead_letter: plan.dead_letter,
        on_error: plan.on_error,
        quiet: plan.quiet,
        progress: Progress::new(plan.progress, plan.progress_forced, total),
        reported: 0,
        input_errors: 0,
        periodic: plan.stats_every.map(|every| Periodic {
            every,
            format: plan.stats.unwrap_or(StatsFormat::Text),
            started,
            last: Instant::now(),
            counts: (0, 0, 0),
        }),
        saving: None,
        aggs: plan.chain.aggs().to_vec(),
    };

    // The checkpoint as the last run left it goes to the reader (where to
    // resume); what this run reaches is kept here and written as it goes.
    let (loaded_checkpoint, saving) = match plan.checkpoint {
        Some((path, loaded, every)) => {
            let entries = vec![Entries::default(); plan.sources.len()];
            (
                Some(loaded),
                Some(Saving {
                    path,
                    every,
                    last: Instant::now(),
                    entries,
                }),
            )
        }
        None => (None, None),
    };
    collector.saving = saving;
    let threads = plan.threads.max(1);
    // Batch buffers go reader -> worker -> reader; output buffers worker ->
    // this thread -> worker. Two pools, so each keeps buffers of its own size.
    let read_pool = Arc::new(source::Pool::default());
    let out_pool = Arc::new(source::Pool::default());
    let mut to_workers = Vec::new();
    let mut from_workers = Vec::new();
    // For `input_filename`: each source's file, `None` for standard input.
    let files: Vec<Option<String>> = plan
        .sources
        .iter()
        .map(|s| s.path().map(|_| s.name.clone()))
        .collect();
    for _ in 0..threads {
        let files = files.clone();
        let (batch_tx, batch_rx) = sync_channel::<Message>(QUEUE);
        let (result_tx, result_rx) = sync_channel::<Outcome>(QUEUE);
        let chain = plan.chain.clone();
        let (formatter, abort) = (plan.formatter.clone(), plan.on_error == OnError::Abort);
        let projection = plan.projection.clone();
        let direct = plan.direct.clone();
        let format = plan.input_format;
        let (read_pool, out_pool) = (Arc::clone(&read_pool), Arc::clone(&out_pool));
        let stop = Arc::clone(&stop);
        let worker = std::thread::Builder::new().stack_size(WORKER_STACK);
        let spawned = worker.spawn(move || {
            crate::jq::builtins::set_files(&files);
            let stages = chain.build().expect("the plan compiled this chain already");
            let mut worker = Worker::new(stages, formatter, abort, projection, direct, out_pool)
                .with_format(format);
            let stateful = worker.stateful();
            loop {
                let outcome = match batch_rx.recv_timeout(TICK) {
                    Ok(Message::Batch(batch)) => {
                        let processed = worker.process(&batch);
                        read_pool.give(batch.data);
                        Outcome::Batch(processed)
                    }
                    Ok(Message::Failed { source, error }) => Outcome::Failed { source, error },
                    Ok(Message::Opened { source, entry }) => Outcome::Opened { source, entry },
                    Err(RecvTimeoutError::Timeout) if stateful => {
                        // Input is idle. After a signal the reader may never
                        // return from its read: what came in is all there is.
                        if stop.load(Ordering::Relaxed) != 0 {
                            break;
                        }
                        Outcome::Batch(worker.tick(crate::stage::window::time::now()))
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                if result_tx.send(outcome).is_err() {
                    return;
                }
            }
            if stateful {
                let _ = result_tx.send(Outcome::Batch(worker.finish()));
            }
        });
        spawned.expect("spawn a worker thread");
        to_workers.push(batch_tx);
        from_workers.push(result_rx);
    }

    // Messages the reader has dealt out, so that after a signal this thread
    // knows when it has taken back everything that was read.
    let dealt = Arc::new(AtomicU64::new(0));
    {
        let follow = plan.follow;
        let checkpoint = loaded_checkpoint;
        let (sources, stop, dealt, pool) = (
            plan.sources,
            Arc::clone(&stop),
            Arc::clone(&dealt),
            Arc::clone(&read_pool),
        );
        std::thread::spawn(move || {
            let mut next = 0;
            let mut deal = |message| {
                dealt.fetch_add(1, Ordering::SeqCst);
                let sent = to_workers[next].send(message).is_ok();
                next = (next + 1) % to_workers.len();
                sent
            };
            let checkpoint = checkpoint.as_ref();
            match follow {
                Some(follow) => {
                    source::follow_all(&sources, &mut deal, &stop, &pool, &follow, checkpoint)
                }
                None => source::read_all(&sources, &mut deal, &stop, &pool, checkpoint),
            }
        });
    }

    let stopped = collector
        .collect(&from_workers, &stop, &dealt, &out_pool, stateful)
        .err()
        .or_else(|| collector.flush().err());
    // The last checkpoint, unless the output failed (then what it would
    // record was not delivered).
    let stopped = match stopped {
        None | Some(Stop::Abort) => collector.save_checkpoint().err().or(stopped),
        other => other,
    };
    collector.finish(
        stopped,
        stop.load(Ordering::Relaxed),
        plan.stats,
        plan.exit_status,
        started,
    )
}

impl Collector {
    /// Takes the workers' results in dealing order until the inputs end, a
    /// signal arrives (then everything already read is still taken), or a stop.
    fn collect(
        &mut self,
        workers: &[Receiver<Outcome>],
        stop: &AtomicUsize,
        dealt: &AtomicU64,
        pool: &source::Pool,
        stateful: bool,
    ) -> Result<(), Stop> {
        let mut taken: u64 = 0;
        // A stateful chain sends what it still holds after the last batch.
        let mut waiting_for_last = stateful;
        loop {
            self.report_if_due();
            self.checkpoint_if_due()?;
            let from = &workers[(taken % workers.len() as u64) as usize];
            let outcome = match from.try_recv() {
                Ok(outcome) => outcome,
                Err(TryRecvError::Disconnected) => return Ok(()),
                Err(TryRecvError::Empty) => {
                    // Nothing ready: whatever is written so far goes out now.
                    self.flush()?;
                    if stop.load(Ordering::Relaxed) != 0
                        && taken >= dealt.load(Ordering::SeqCst)
                        && !waiting_for_last
                    {
                        return Ok(());
                    }
                    match from.recv_timeout(Duration::from_millis(100)) {
                        Ok(outcome) => outcome,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
            };
            match outcome {
                Outcome::Batch(mut batch) => {
                    taken += u64::from(batch.from_reader);
                    waiting_for_last &= !batch.last;
                    let out = std::mem::take(&mut batch.out);
                    let result = self.batch(batch, &out);
                    pool.give(out);
                    result?
                }
                Outcome::Failed { source, error } => {
                    taken += 1;
                    self.input_failed(source, error)
                }
                Outcome::Opened { source, entry } => {
                    taken += 1;
                    if let Some(saving) = &mut self.saving {
                        // A second file for a source is the new one after a
                        // rotation: the one before is the rotated one now.
                        let entries = &mut saving.entries[source];
                        if let Some(before) = entries.current.replace(entry) {
                            entries.rotated = Some(before);
                        }
                    }
                }
            }
        }
    }

    /// Prints the stats when `--stats-every` says it is time, with the
    /// counts and rate of the interval since the last report.
    fn report_if_due(&mut self) {
        let Some(p) = &mut self.periodic else { return };
        let now = Instant::now();
        let elapsed = now - p.last;
        if elapsed < p.every {
            return;
        }
        let s = &mut self.stats;
        let counts = (s.events_ingested, s.events_emitted, s.events_failed);
        let ingested = counts.0 - p.counts.0;
        s.interval = Some(Interval {
            elapsed,
            events_ingested: ingested,
            events_emitted: counts.1 - p.counts.1,
            events_failed: counts.2 - p.counts.2,
            events_per_sec: ((ingested as f64 / elapsed.as_secs_f64()) * 1000.0).round() / 1000.0,
        });
        s.finish(now - p.started);
        let text = match p.format {
            StatsFormat::Json => s.to_json(),
            StatsFormat::Text => s.to_text().trim_end().to_string(),
        };
        s.interval = None;
        (p.last, p.counts) = (now, counts);
        self.progress.eprintln(&text);
    }

    fn checkpoint_if_due(&mut self) -> Result<(), Stop> {
        match &self.saving {
            Some(saving) if saving.last.elapsed() >= saving.every => self.save_checkpoint(),
            _ => Ok(()),
        }
    }

    /// Writes the checkpoint: first the output and the dead letter it
    /// accounts for go to disk, then the checkpoint replaces the old one.
    fn save_checkpoint(&mut self) -> Result<(), Stop> {
        let Some(saving) = &mut self.saving else {
            return Ok(());
        };
        self.output
            .sync()
            .map_err(|e| write_error(self.output.name(), e))?;
        if let Some(dl) = &mut self.dead_letter {
            dl.sync().map_err(|e| dead_letter_error(dl.name(), e))?;
        }
        let checkpoint = crate::source::checkpoint::Checkpoint {
            version: 1,
            files: saving
                .entries
                .iter()
                .flat_map(|e| e.current.iter().chain(&e.rotated))
                .cloned()
                .collect(),
        };
        checkpoint.save(&saving.path).map_err(|e| {
            Stop::Io(format!(
                "evq: cannot write checkpoint {}: {}",
                saving.path.display(),
                status::io_error_text(&e)
            ))
        })?;
        saving.last = Instant::now();
        Ok(())
    }

    fn batch(&mut self, batch: Processed, out: &[u8]) -> Result<(), Stop> {
        let stats = &mut self.stats;
        stats.bytes_read += batch.bytes;
        stats.events_ingested += batch.events_ingested;
        stats.events_emitted += batch.events_emitted;
        stats.parse_failed += batch.parse_failed;
        stats.events_direct += batch.events_direct;
        let failed = batch.failures.iter().filter(|f| !f.late).count() as u64;
        stats.events_failed += failed;
        let input = &mut stats.inputs[batch.source];
        input.bytes += batch.bytes;
        input.lines += batch.events_ingested;
        input.failed += failed;
        for (total, counters) in stats.stages.iter_mut().zip(&batch.stages) {
            total.events_in += counters.events_in;
            total.events_out += counters.events_out;
            total.events_filtered += counters.events_filtered;
            total.events_failed += counters.events_failed;
            total.processing_time += counters.time;
            if let Some(w) = &mut total.window {
                w.events_aggregated += counters.events_aggregated;
                w.events_late += counters.events_late;
                if let Some(c) = &counters.windows {
                    w.windows_open = w.windows_open.max(c.windows_open);
                    w.windows_emitted = w.windows_emitted.max(c.windows_emitted);
                    w.collect_truncated = w.collect_truncated.max(c.collect_truncated);
                    let by_agg = &mut w.truncated_by_agg;
                    by_agg.resize(by_agg.len().max(c.truncated_by_agg.len()), 0);
                    for (total, &n) in by_agg.iter_mut().zip(&c.truncated_by_agg) {
                        *total = (*total).max(n);
                    }
                }
            }
        }
        self.output
            .write(out)
            .map_err(|e| write_error(self.output.name(), e))?;
        for failure in &batch.failures {
            let stage = failure.stage.map(|i| self.stats.stages[i].name.as_str());
            // Late events are accounted for in the stage's stats and the dead
            // letter; they are not failures to report.
            if !self.quiet && !failure.late {
                self.reported += 1;
                if self.reported <= REPORT_LIMIT {
                    let prefix = stage.map_or(String::new(), |n| format!("{n}: "));
                    self.progress.eprintln(&if failure.line == 0 {
                        // An event a window emitted at the end of input or when idle.
                        format!(
                            "evq: {prefix}{} (on a result emitted by an earlier stage)",
                            failure.error
                        )
                    } else {
                        let display = self.sources[batch.source].display();
                        format!("{display}:{}: {prefix}{}", failure.line, failure.error)
                    });
                }
            }
            if let Some(dl) = &mut self.dead_letter {
                let source = &self.sources[batch.source].name;
                dl.write(source, failure.line, stage, &failure.error, &failure.raw)
                    .map_err(|e| dead_letter_error(dl.name(), e))?;
            }
        }
        self.progress.update(
            self.stats.bytes_read,
            self.stats.events_ingested,
            self.stats.events_emitted,
        );
        if batch.aborted {
            // The checkpoint stays before this batch: a rerun meets the failure again.
            return Err(Stop::Abort);
        }
        if let (Some(saving), true) = (&mut self.saving, batch.from_reader)
            && let Some(entry) = saving.entries[batch.source].of(&batch.end)
        {
            entry.at = batch.end;
        }
        Ok(())
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
            .map_err(|e| write_error(self.output.name(), e))?;
        if let Some(dl) = &mut self.dead_letter {
            dl.flush().map_err(|e| dead_letter_error(dl.name(), e))?;
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
        self.progress.finish();
        if self.reported > REPORT_LIMIT {
            crate::report::progress::eprintln(&format!(
                "evq: {} more failed events not shown (--dead-letter keeps every one)",
                self.reported - REPORT_LIMIT
            ));
        }
        if !self.quiet {
            for note in self.notes() {
                crate::report::progress::eprintln(&format!("evq: {note}"));
            }
        }
        if let Some(Stop::Io(message)) = &stopped {
            crate::report::progress::eprintln(message);
        }
        if let Some(format) = stats_format {
            self.stats.finish(started.elapsed());
            match format {
                StatsFormat::Json => crate::report::progress::eprintln(&self.stats.to_json()),
                StatsFormat::Text => {
                    crate::report::progress::eprintln(self.stats.to_text().trim_end_matches('\n'))
                }
            }
        }
        // A closed output pipe ends the run quietly, with the status the
        // input read so far gives (as if it had ended there).
        if let Some(Stop::Io(_)) = stopped {
            return status::IO;
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

    /// What the window stages have to say at the end, though nothing failed:
    /// late events and truncated `collect`s. A note names its stage only
    /// when the chain has several window stages.
    fn notes(&self) -> Vec<String> {
        use crate::stage::window::{agg, collect_note, late_note};
        let windows: Vec<_> = self
            .stats
            .stages
            .iter()
            .filter_map(|s| Some((s, s.window.as_ref()?)))
            .collect();
        let mut notes = Vec::new();
        for (stage, w) in &windows {
            let prefix = if windows.len() > 1 {
                format!("{}: ", stage.name)
            } else {
                String::new()
            };
            if w.events_late > 0 {
                notes.push(format!("{prefix}{}", late_note(w.events_late)));
            }
            for (text, &n) in self.aggs.iter().zip(&w.truncated_by_agg) {
                if let (Ok(spec), true) = (agg::parse_agg(text), n > 0)
                    && let agg::Func::Collect(limit) = spec.func
                {
                    let windowed = stage.kind == "window";
                    notes.push(format!(
                        "{prefix}{}",
                        collect_note(text, limit, n, windowed)
                    ));
                }
            }
        }
        notes
    }
}

fn dead_letter_error(name: &str, e: std::io::Error) -> Stop {
    Stop::Io(format!(
        "evq: cannot write dead-letter file {name}: {}",
        status::io_error_text(&e)
    ))
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
