//! The executor: a reader thread cuts the inputs into batches and deals them
//! round-robin to the worker threads; this thread takes the results back in
//! the same order, so output, dead letter, reports, stats and exit status are
//! the same for any number of workers. Every queue is bounded, so memory stays
//! flat whatever the input size and however slowly stdout drains.
//!
//! `run` sets up the three: `spawn_workers` (each thread's loop is `work`,
//! one batch at a time through `worker::Worker`), `spawn_reader`, and the
//! `Collector` here. In a chain with a stateful stage the workers run what
//! comes before it and extract what each event brings to it; the collector
//! owns the state (`state::Owner`), applies each batch's extractions as it
//! takes the batch back in order, tells the state when input is idle and
//! when it ends, and saves it with the checkpoint. The collector totals
//! every stage's counters, a stateful stage's own ones without knowing what
//! they count.

pub mod signal;
pub mod state;
pub mod worker;

use crate::cli::{OnError, StatsFormat};
use crate::plan::Plan;
use crate::report::progress::Progress;
use crate::report::stats::{InputStats, Interval, StageStats, Stats};
use crate::report::status;
use crate::runtime::worker::{Processed, Worker};
use crate::sink::{DeadLetter, Sink};
use crate::source::Position;
use crate::source::{self, Message};
use crate::stage::Step;
use state::Owner;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

/// Failure reports printed on standard error before evq only counts them.
const REPORT_LIMIT: u64 = 10;
/// Batches queued per worker, in each direction.
const QUEUE: usize = 2;

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
    Ended {
        side: usize,
    },
    Assigned {
        sources: Vec<usize>,
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
    /// A `kafka://` input: the offsets to commit to its group.
    committing: Option<Committing>,
    /// The owner of the chain's state, when it has a stateful stage.
    owner: Option<Owner>,
    /// `--stats`, `--exit-status`, and when the run started.
    stats_format: Option<StatsFormat>,
    exit_status: bool,
    started: Instant,
}

/// `--checkpoint`: where each input stands in what was written, and when to
/// write the checkpoint next.
struct Saving {
    path: std::path::PathBuf,
    /// What the chain is (`plan::Chain::fingerprint`), saved so that a
    /// checkpoint is never resumed by another chain.
    chain: String,
    every: Duration,
    /// How long the last save took.
    cost: Duration,
    /// Whether any input was taken since the last save.
    moved: bool,
    last: Instant,
    entries: Vec<Entries>,
    /// The files of the checkpoint this run resumed: saved again as they
    /// were until this run opens them (a save before then must not forget
    /// where they stand, or the state saved with it would be applied twice).
    carried: Vec<crate::source::checkpoint::Entry>,
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
    /// The entry of the file with this device and inode. Lines of a rotated
    /// file may come before the new file's `Opened`: then it is still current.
    fn of(
        &mut self,
        at: &crate::source::Position,
    ) -> Option<&mut crate::source::checkpoint::Entry> {
        let is = |e: &crate::source::checkpoint::Entry| e.at.same_stream(at);
        match (&mut self.current, &mut self.rotated) {
            (Some(e), _) if is(e) => Some(e),
            (_, Some(e)) if is(e) => Some(e),
            _ => None,
        }
    }
}

/// A `kafka://` input's offsets: committed to its consumer group only once
/// the output of everything before them is written (synced), every
/// `--checkpoint-every`, at the end, and when a rebalance takes partitions
/// away (it waits for this).
struct Committing {
    committer: crate::source::kafka::Committer,
    /// The input as named, for messages.
    name: String,
    every: Duration,
    last: Instant,
    /// Per source (partition): the offset after the last message written,
    /// not yet committed.
    reached: std::collections::BTreeMap<usize, i64>,
    /// With a stateful stage, per source: the batches its state has taken
    /// that are not yet safe to commit past.
    applied: std::collections::BTreeMap<usize, std::collections::VecDeque<state::Completed>>,
}

impl Committing {
    /// With a stateful stage: commits may go up to the first event that
    /// something open still needs (the watermark has not passed what it
    /// may count in), or past everything when the state is empty.
    fn settle(&mut self, owner: &Owner) {
        let empty = owner.empty();
        let watermark = owner.watermark().unwrap_or(i64::MIN);
        for (source, queue) in &mut self.applied {
            while let Some(front) = queue.front() {
                let Position::Kafka { offset } = front.end else {
                    queue.pop_front();
                    continue;
                };
                if empty || front.until < watermark {
                    self.reached.insert(*source, offset);
                    queue.pop_front();
                    continue;
                }
                // Inside the batch: up to its first event still needed
                // (line numbers are offsets + 1).
                if let Some(&(line, _)) = front.steps.iter().find(|(_, until)| *until >= watermark)
                {
                    let first_needed = line as i64 - 1;
                    let before = self.reached.get(source).copied().unwrap_or(i64::MIN);
                    if first_needed > before {
                        self.reached.insert(*source, first_needed);
                    }
                }
                break;
            }
        }
    }

    /// The offsets to commit: (source, offset of the next message).
    fn offsets(&self) -> Vec<(usize, i64)> {
        self.reached.iter().map(|(&s, &o)| (s, o)).collect()
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
pub fn run(mut plan: Plan, stop: Arc<AtomicUsize>, started: Instant) -> i32 {
    let steps = plan
        .chain
        .build()
        .expect("the plan compiled this chain already");
    let threads = plan.threads.max(1);
    // The checkpoint as the last run left it goes to the reader (where to
    // resume) and to the state's owner; what this run reaches is kept by
    // the collector and written as it goes.
    let (resume, saving) = match plan.checkpoint.take() {
        Some((path, loaded, every)) => {
            let mut saving = Saving::new(path, plan.chain.fingerprint(), every, plan.sources.len());
            saving.carried = loaded.files.clone();
            (Some(loaded), Some(saving))
        }
        None => (None, None),
    };
    // Batch buffers go reader -> worker -> reader; output buffers worker ->
    // this thread -> worker. Two pools, so each keeps buffers of its own size.
    let read_pool = Arc::new(source::Pool::default());
    let out_pool = Arc::new(source::Pool::default());
    let state = resume.as_ref().and_then(|r| r.state.clone());
    let gate = plan.join_source.map(|_| Arc::new(state::Gate::default()));
    let (to_workers, from_workers) = spawn_workers(&plan, threads, &read_pool, &out_pool);
    let dealt = spawn_reader(&plan, resume, to_workers, &read_pool, &stop, gate.clone());
    // `-F`: changed `--lookup` files are loaded again while the run lasts.
    let reloads = plan.follow.and_then(|f| plan.lookups.watch(f.interval));
    let mut collector = Collector::new(plan, steps, saving, started, Arc::clone(&read_pool), gate);
    if let (Some(owner), Some(state)) = (&mut collector.owner, &state) {
        // The plan refused a state this chain cannot take back.
        let restored = owner.restore(state);
        restored.expect("the plan restored this state once already");
    }

    let stopped = collector
        .collect(&from_workers, &stop, &dealt, &out_pool)
        .err()
        .or_else(|| collector.end(&stop, &out_pool).err())
        .or_else(|| collector.close().err());
    // The last checkpoint, unless the output failed (then what it would
    // record was not delivered).
    let stopped = match stopped {
        None | Some(Stop::Abort) => collector.save_checkpoint().err().or(stopped),
        other => other,
    };
    // And the last commit of a Kafka input's offsets, on the same terms;
    // then its consumers leave the group.
    let stopped = match stopped {
        None | Some(Stop::Abort) => collector.commit().err().or(stopped),
        other => other,
    };
    if let Some(c) = &collector.committing {
        c.committer.close();
    }
    drop(reloads);
    collector.finish(stopped, stop.load(Ordering::Relaxed))
}

/// Starts `threads` workers, each with its own copy of the chain (jaq
/// values are not `Send`, so each thread compiles its own); returns the
/// queue of batches into each and the queue of results out of each.
fn spawn_workers(
    plan: &Plan,
    threads: usize,
    read_pool: &Arc<source::Pool>,
    out_pool: &Arc<source::Pool>,
) -> (Vec<SyncSender<Message>>, Vec<Receiver<Outcome>>) {
    // For `input_filename`: each source's file, `None` for standard input.
    let files: Vec<Option<String>> = plan
        .sources
        .iter()
        .map(|s| s.path().map(|_| s.name.clone()))
        .collect();
    let mut to_workers = Vec::new();
    let mut from_workers = Vec::new();
    for _ in 0..threads {
        let (batch_tx, batch_rx) = sync_channel::<Message>(QUEUE);
        let (result_tx, result_rx) = sync_channel::<Outcome>(QUEUE);
        let files = files.clone();
        let chain = plan.chain.clone();
        let (formatter, abort) = (plan.formatter.clone(), plan.on_error == OnError::Abort);
        let projection = plan.projection.clone();
        let direct = plan.direct.clone();
        let right = plan
            .join_source
            .map(|source| (source, plan.direct_right.clone()));
        let format = plan.input_format;
        let (read_pool, out_pool) = (Arc::clone(read_pool), Arc::clone(out_pool));
        let worker = std::thread::Builder::new().stack_size(WORKER_STACK);
        let spawned = worker.spawn(move || {
            crate::jq::builtins::set_files(&files);
            let steps = chain.build().expect("the plan compiled this chain already");
            let mut worker = Worker::new(steps, formatter, abort, projection, direct, out_pool)
                .with_format(format);
            if let Some((source, direct)) = right {
                worker = worker.with_right(source, direct);
            }
            work(worker, &batch_rx, &result_tx, &read_pool);
        });
        spawned.expect("spawn a worker thread");
        to_workers.push(batch_tx);
        from_workers.push(result_rx);
    }
    (to_workers, from_workers)
}

/// A worker thread's loop: runs each batch dealt to it and hands back the
/// result. In a chain with a stateful stage the batch goes along with it
/// (its lines are the dead letter of events the state's owner finds late).
fn work(
    mut worker: Worker,
    batches: &Receiver<Message>,
    results: &SyncSender<Outcome>,
    read_pool: &source::Pool,
) {
    while let Ok(message) = batches.recv() {
        let outcome = match message {
            Message::Batch(batch) => {
                let mut processed = worker.process(&batch);
                match &mut processed.keyed {
                    Some(keyed) => keyed.1 = batch,
                    None => batch.recycle(read_pool),
                }
                Outcome::Batch(processed)
            }
            Message::Failed { source, error } => Outcome::Failed { source, error },
            Message::Opened { source, entry } => Outcome::Opened { source, entry },
            Message::Ended { side } => Outcome::Ended { side },
            Message::Assigned { sources } => Outcome::Assigned { sources },
        };
        if results.send(outcome).is_err() {
            return;
        }
    }
}

/// Starts the reader thread, which reads the inputs (from where `resume`
/// says, with `--checkpoint`) and deals the batches round-robin to the
/// workers. A join's FILE has a reader thread of its own, which deals into
/// the same round: `gate` keeps the two sides side by side. Returns the
/// count of messages dealt so far, so that after a signal the collector
/// knows when it has taken back everything read.
fn spawn_reader(
    plan: &Plan,
    resume: Option<crate::source::checkpoint::Checkpoint>,
    to_workers: Vec<SyncSender<Message>>,
    read_pool: &Arc<source::Pool>,
    stop: &Arc<AtomicUsize>,
    gate: Option<Arc<state::Gate>>,
) -> Arc<AtomicU64> {
    let dealt = Arc::new(AtomicU64::new(0));
    let dealer = Arc::new(std::sync::Mutex::new((to_workers, 0usize)));
    let resume = Arc::new(resume);
    // Side 0 reads the inputs before a join's FILE, side 1 the FILE.
    let split = plan.join_source.unwrap_or(plan.sources.len());
    let sides = [(0, split), (split, plan.sources.len())];
    let readers = if gate.is_some() { 2 } else { 1 };
    for (side, (first, end)) in sides.into_iter().enumerate().take(readers) {
        let sources = plan.sources[first..end].to_vec();
        let follow = plan.follow;
        let (stop, counted, pool) = (Arc::clone(stop), Arc::clone(&dealt), Arc::clone(read_pool));
        let (dealer, resume, gate) = (Arc::clone(&dealer), Arc::clone(&resume), gate.clone());
        std::thread::spawn(move || {
            let mut deal = |message: Message| {
                if let (Some(gate), Message::Batch(_)) = (&gate, &message) {
                    gate.enter(side, &stop);
                }
                let mut dealer = dealer.lock().expect("the dealer");
                let (to_workers, next) = &mut *dealer;
                counted.fetch_add(1, Ordering::SeqCst);
                let sent = to_workers[*next].send(message).is_ok();
                *next = (*next + 1) % to_workers.len();
                sent
            };
            let resume = resume.as_ref().as_ref();
            let kafka = sources.first().and_then(|s| s.kafka_input().cloned());
            match (kafka, follow) {
                (Some(input), follow) => {
                    let raw = sources[0].format == source::Format::Raw;
                    if let Err(e) = input.read(raw, follow.is_some(), &mut deal, &stop, &pool) {
                        let error = std::io::Error::other(e);
                        deal(Message::Failed {
                            source: first,
                            error,
                        });
                    }
                }
                (None, follow) => match follow {
                    Some(follow) => source::follow_all(
                        &sources, first, &mut deal, &stop, &pool, &follow, resume,
                    ),
                    None => source::read_all(&sources, first, &mut deal, &stop, &pool, resume),
                },
            }
            if gate.is_some() {
                deal(Message::Ended { side });
            }
        });
    }
    dealt
}

impl Saving {
    /// Nothing reached yet in any of `sources` inputs.
    fn new(path: std::path::PathBuf, chain: String, every: Duration, sources: usize) -> Saving {
        Saving {
            path,
            chain,
            every,
            cost: Duration::ZERO,
            moved: false,
            last: Instant::now(),
            entries: vec![Entries::default(); sources],
            carried: Vec::new(),
        }
    }
}

impl Collector {
    /// The collector of a run of `plan`, with no event accounted for yet.
    fn new(
        plan: Plan,
        steps: Vec<Step>,
        saving: Option<Saving>,
        started: Instant,
        read_pool: Arc<source::Pool>,
        gate: Option<Arc<state::Gate>>,
    ) -> Collector {
        let total = plan.sources.iter().map(|s| s.size()).sum::<Option<u64>>();
        let stats = Stats {
            stages: steps
                .iter()
                .map(|step| StageStats {
                    name: step.name().into(),
                    kind: step.kind().name(),
                    expr: step.expr().into(),
                    state: step.stateful().map(|stage| stage.counters()),
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
            fields_read: if steps.is_empty() {
                Some(Vec::new())
            } else {
                plan.projection.as_ref().and_then(|f| f.paths())
            },
            ..Default::default()
        };
        // The state is owned here, by a copy of the chain that runs the
        // stateful stage and the stages after it with jaq.
        let owner = crate::stage::stateful_at(&steps).and_then(|_| {
            let abort = plan.on_error == OnError::Abort;
            let pool = Arc::new(source::Pool::default());
            let lines = plan.formatter.plain();
            let worker = Worker::new(steps, plan.formatter.clone(), abort, None, None, pool);
            let owner = Owner::new(worker, lines, Arc::clone(&read_pool))?;
            let owner = match plan.sources.first().and_then(|s| s.kafka_input()) {
                Some(_) => owner.with_partitions(),
                None => owner,
            };
            Some(match (plan.join_source, gate) {
                (Some(source), Some(gate)) => owner.with_right(source, gate),
                _ => owner,
            })
        });
        let committing = plan
            .sources
            .first()
            .and_then(|s| s.kafka_input())
            .map(|input| Committing {
                committer: input.committer(),
                name: input.address.name(),
                every: plan.commit_every,
                last: Instant::now(),
                reached: Default::default(),
                applied: Default::default(),
            });
        Collector {
            stats,
            committing,
            sources: plan.sources,
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
            saving,
            owner,
            stats_format: plan.stats,
            exit_status: plan.exit_status,
            started,
        }
    }

    /// Takes the workers' results in dealing order until the inputs end, a
    /// signal arrives (then everything already read is still taken), or a stop.
    fn collect(
        &mut self,
        workers: &[Receiver<Outcome>],
        stop: &AtomicUsize,
        dealt: &AtomicU64,
        pool: &source::Pool,
    ) -> Result<(), Stop> {
        let mut taken: u64 = 0;
        loop {
            self.report_if_due();
            self.checkpoint_if_due()?;
            self.commit_if_due(taken >= dealt.load(Ordering::SeqCst))?;
            let from = &workers[(taken % workers.len() as u64) as usize];
            let outcome = match from.try_recv() {
                Ok(outcome) => outcome,
                Err(TryRecvError::Disconnected) => return Ok(()),
                Err(TryRecvError::Empty) => {
                    // Nothing ready: whatever is written so far goes out now.
                    self.flush()?;
                    if stop.load(Ordering::Relaxed) != 0 && taken >= dealt.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    match from.recv_timeout(Duration::from_millis(100)) {
                        Ok(outcome) => outcome,
                        Err(RecvTimeoutError::Timeout) => {
                            // Input is idle: on arrival time, windows close by the clock.
                            let now = crate::stage::window::time::now();
                            if let Some(p) = self.owner.as_mut().and_then(|o| o.tick(now)) {
                                self.processed(p, pool)?;
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
            };
            match outcome {
                Outcome::Batch(mut batch) => {
                    taken += u64::from(batch.from_reader);
                    if let Some(owner) = &mut self.owner {
                        owner.apply(&mut batch);
                    }
                    self.processed(batch, pool)?;
                    self.record_applied();
                }
                Outcome::Ended { side } => {
                    taken += 1;
                    if let Some(owner) = &mut self.owner {
                        let p = owner.side_ended(side);
                        self.processed(p, pool)?;
                        self.record_applied();
                    }
                }
                Outcome::Failed { source, error } => {
                    taken += 1;
                    self.input_failed(source, error)
                }
                Outcome::Assigned { sources } => {
                    taken += 1;
                    if let Some(owner) = &mut self.owner {
                        owner.assigned(&sources);
                    }
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

    /// Accounts for a processed batch and writes its output.
    fn processed(&mut self, mut batch: Processed, pool: &source::Pool) -> Result<(), Stop> {
        let out = std::mem::take(&mut batch.out);
        let result = self.batch(batch, &out);
        pool.give(out);
        result
    }

    /// After the last batch: at the end of input, the state emits what it
    /// holds. After a signal it does so too, unless the state goes into the
    /// checkpoint (then the next run goes on with the same windows).
    fn end(&mut self, stop: &AtomicUsize, pool: &source::Pool) -> Result<(), Stop> {
        let signalled = stop.load(Ordering::Relaxed) != 0;
        // With a Kafka input, what a signal leaves open is read again by
        // the next run from the offsets committed (see `commit_if_due`).
        if signalled && (self.saving.is_some() || self.committing.is_some()) {
            return Ok(());
        }
        match self.owner.as_mut().map(Owner::finish) {
            Some(p) => {
                self.processed(p, pool)?;
                self.record_applied();
                // Everything the state held is emitted: all it took may be committed.
                if let (Some(c), Some(owner)) = (&mut self.committing, &self.owner) {
                    c.settle(owner);
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// With a stateful stage, the checkpoint's positions move only past
    /// batches whose events its state has taken (a join's events may wait
    /// for the other side's).
    fn record_applied(&mut self) {
        let Some(owner) = &mut self.owner else { return };
        for done in owner.completed() {
            let (source, end) = (done.source, done.end);
            if let (Some(c), Position::Kafka { .. }) = (&mut self.committing, end) {
                c.applied.entry(source).or_default().push_back(done);
                continue;
            }
            if let Some(saving) = &mut self.saving
                && let Some(entry) = saving.entries[source].of(&end)
            {
                entry.at = end;
                saving.moved = true;
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
        let format = p.format;
        (p.last, p.counts) = (now, counts);
        let text = self.render(format);
        self.stats.interval = None;
        self.progress.eprintln(&text);
    }

    /// The stats as `--stats` shows them, each stateful stage's line said
    /// by the stage.
    fn render(&mut self, format: StatsFormat) -> String {
        self.take_state_counters();
        self.stats.lookups = crate::jq::lookup::stats();
        match format {
            StatsFormat::Json => self.stats.to_json(),
            StatsFormat::Text => {
                if let Some(owner) = &self.owner {
                    for stats in &mut self.stats.stages {
                        if let Some(state) = &mut stats.state {
                            state.summary = owner.stage().summary(state);
                        }
                    }
                }
                self.stats.to_text().trim_end_matches('\n').to_string()
            }
        }
    }

    /// The stateful stage's counters as they stand now, into the stats.
    fn take_state_counters(&mut self) {
        if let Some(owner) = &self.owner {
            for stats in &mut self.stats.stages {
                if stats.state.is_some() {
                    stats.state = Some(owner.counters());
                }
            }
        }
    }

    fn checkpoint_if_due(&mut self) -> Result<(), Stop> {
        match &self.saving {
            // However often asked, saving takes at most about a third of
            // the time: a large state waits twice its last save.
            Some(saving)
                if saving.moved && saving.last.elapsed() >= saving.every.max(saving.cost * 2) =>
            {
                self.save_checkpoint()
            }
            _ => Ok(()),
        }
    }

    /// With a `kafka://` input: when a rebalance waits and everything dealt
    /// is `all_taken` (and written), or every `--checkpoint-every`, the
    /// output is synced and the offsets reached are committed.
    fn commit_if_due(&mut self, all_taken: bool) -> Result<(), Stop> {
        let Some(c) = &self.committing else {
            return Ok(());
        };
        if c.committer.wanted() {
            if all_taken {
                self.sync_outputs()?;
                let c = self.committing.as_mut().expect("committing");
                if let Some(owner) = &self.owner {
                    c.settle(owner);
                }
                let offsets = c.offsets();
                // The partitions go: nothing of them is committed by this run again.
                c.reached.clear();
                c.applied.clear();
                c.committer.hand_back(offsets);
                c.last = Instant::now();
            }
            return Ok(());
        }
        if c.last.elapsed() >= c.every {
            self.commit()?;
        }
        Ok(())
    }

    /// Syncs the output and the dead letter, then commits the offsets
    /// reached (at-least-once: a crash before the commit reads them again).
    fn commit(&mut self) -> Result<(), Stop> {
        let Some(c) = &mut self.committing else {
            return Ok(());
        };
        if let Some(owner) = &self.owner {
            c.settle(owner);
        }
        if c.reached.is_empty() {
            c.last = Instant::now();
            return Ok(());
        }
        self.sync_outputs()?;
        let c = self.committing.as_mut().expect("committing");
        let offsets = c.offsets();
        c.committer.commit(&offsets).map_err(|e| {
            Stop::Io(format!(
                "evq: cannot commit offsets of {} to group: {e}",
                c.name
            ))
        })?;
        c.reached.clear();
        c.last = Instant::now();
        Ok(())
    }

    /// Flushes the output and the dead letter and waits until they are
    /// durable (on disk, or acknowledged by a broker).
    fn sync_outputs(&mut self) -> Result<(), Stop> {
        self.output
            .sync()
            .map_err(|e| write_error(self.output.name(), e))?;
        if let Some(dl) = &mut self.dead_letter {
            dl.sync().map_err(|e| dead_letter_error(dl.name(), e))?;
        }
        Ok(())
    }

    /// Writes the checkpoint: first the output and the dead letter it
    /// accounts for go to disk, then the checkpoint replaces the old one.
    fn save_checkpoint(&mut self) -> Result<(), Stop> {
        let Some(saving) = &mut self.saving else {
            return Ok(());
        };
        let started = Instant::now();
        self.output
            .sync()
            .map_err(|e| write_error(self.output.name(), e))?;
        if let Some(dl) = &mut self.dead_letter {
            dl.sync().map_err(|e| dead_letter_error(dl.name(), e))?;
        }
        let mut files: Vec<_> = saving
            .entries
            .iter()
            .flat_map(|e| e.current.iter().chain(&e.rotated))
            .cloned()
            .collect();
        let opened = files.clone();
        files.extend(
            (saving.carried.iter())
                .filter(|c| !opened.iter().any(|e| e.at.same_stream(&c.at)))
                .cloned(),
        );
        let checkpoint = crate::source::checkpoint::Checkpoint {
            version: crate::source::checkpoint::VERSION,
            chain: Some(saving.chain.clone()),
            files,
            state: self.owner.as_ref().map(Owner::snapshot),
        };
        checkpoint.save(&saving.path).map_err(|e| {
            Stop::Io(format!(
                "evq: cannot write checkpoint {}: {}",
                saving.path.display(),
                status::io_error_text(&e)
            ))
        })?;
        saving.last = Instant::now();
        saving.cost = started.elapsed();
        saving.moved = false;
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
        for failure in batch.failures.iter().filter(|f| !f.late) {
            stats.inputs[failure.source.unwrap_or(batch.source)].failed += 1;
        }
        for (total, counters) in stats.stages.iter_mut().zip(&batch.stages) {
            total.events_in += counters.events_in;
            total.events_out += counters.events_out;
            total.events_filtered += counters.events_filtered;
            total.events_failed += counters.events_failed;
            total.processing_time += counters.time;
        }
        self.output
            .write(out)
            .map_err(|e| write_error(self.output.name(), e))?;
        for failure in &batch.failures {
            let source = failure.source.unwrap_or(batch.source);
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
                        let source = &self.sources[source];
                        let line = source.line(failure.line);
                        format!("{}:{line}: {prefix}{}", source.display(), failure.error)
                    });
                }
            }
            if let Some(dl) = &mut self.dead_letter {
                let line = self.sources[source].line(failure.line);
                let source = &self.sources[source].name;
                dl.write(source, line, stage, &failure.error, &failure.raw)
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
        if let (Some(saving), true, None) = (&mut self.saving, batch.from_reader, &self.owner)
            && let Some(entry) = saving.entries[batch.source].of(&batch.end)
        {
            entry.at = batch.end;
            saving.moved = true;
        }
        if let (Some(c), true, None) = (&mut self.committing, batch.from_reader, &self.owner)
            && let crate::source::Position::Kafka { offset } = batch.end
        {
            c.reached.insert(batch.source, offset);
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

    /// At the end of the run: what is written reaches its destination (a
    /// Kafka output waits for every delivery report).
    fn close(&mut self) -> Result<(), Stop> {
        self.output
            .close()
            .map_err(|e| write_error(self.output.name(), e))?;
        if let Some(dl) = &mut self.dead_letter {
            dl.close().map_err(|e| dead_letter_error(dl.name(), e))?;
        }
        Ok(())
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
    fn finish(mut self, stopped: Option<Stop>, signal: usize) -> i32 {
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
        if let Some(format) = self.stats_format {
            self.stats.finish(self.started.elapsed());
            crate::report::progress::eprintln(&self.render(format));
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
        } else if self.exit_status && self.stats.events_emitted == 0 {
            status::NO_OUTPUT
        } else {
            status::OK
        }
    }

    /// What the stateful stage has to say at the end, though nothing
    /// failed (a window: late events, truncated `collect`s).
    fn notes(&mut self) -> Vec<String> {
        self.take_state_counters();
        let Some(owner) = &self.owner else {
            return Vec::new();
        };
        let counters = owner.counters();
        owner.stage().notes(&counters)
    }
}

fn dead_letter_error(name: &str, e: std::io::Error) -> Stop {
    let what = if crate::kafka::Address::is(name) {
        "to"
    } else {
        "file"
    };
    Stop::Io(format!(
        "evq: cannot write dead-letter {what} {name}: {}",
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
