//! A Kafka input: `kafka://BROKERS/TOPIC[,TOPIC…]` read in a consumer group.
//! Each partition of the topics is a source of its own (named
//! `kafka://BROKERS/TOPIC/PARTITION` in reports, the dead letter and the
//! stats), whose "lines" are the messages' offsets. One consumer per topic
//! (so that the end of a partition names its topic) joins the group `--group`;
//! messages are cut into lines and handed on in batches per partition, as a
//! file's are, with `Position::Kafka` (the offset after the batch) as where
//! the source stands.
//!
//! Offsets are committed by the executor, never here: only once the output
//! of the events before them is written (`Committer`). A rebalance that
//! takes partitions away waits in its callback until the executor has
//! written everything read so far and handed back the offsets to commit
//! (flush, commit, release); what was read but not yet handed on is dropped,
//! and read again by the partition's next owner.
//!
//! Line numbers: a message at offset N has line number N + 1 in a batch
//! (0 means "no line" to the reports); `Source::line` gives N back.
// Without the `kafka` feature only the types remain, for the plan to refuse.
#![cfg_attr(not(feature = "kafka"), allow(dead_code, unused_imports))]

use super::batch::{Batch, Line, Message, Pool};
use super::position::Position;
use crate::kafka::Address;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// Where a group with no committed offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
}

/// One `kafka://` input: its address, group and settings, the partitions
/// of its topics (each a source), and what the reader and the executor
/// share to commit offsets.
pub struct KafkaInput {
    pub address: Address,
    pub group: String,
    pub start: Start,
    pub properties: Vec<(String, String)>,
    /// Every partition of the topics, in order: source `first + i` is the `i`th.
    pub partitions: Vec<(String, i32)>,
    /// The index of the first partition's source.
    pub first: usize,
    #[cfg(feature = "kafka")]
    shared: Arc<imp::Shared>,
}

impl PartialEq for KafkaInput {
    fn eq(&self, other: &KafkaInput) -> bool {
        self.address == other.address && self.group == other.group
    }
}

impl Eq for KafkaInput {}

impl std::fmt::Debug for KafkaInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address.name())
    }
}

/// A batch being gathered for one partition.
#[derive(Default)]
struct Gathering {
    data: Vec<u8>,
    lines: Vec<Line>,
    bytes: u64,
    /// The offset after the last message taken.
    next: i64,
}

/// Batches are handed on at this size, or when the consumer is idle.
const BATCH: usize = 256 * 1024;

impl Gathering {
    /// Takes one message's value: each of its lines an event (blank ones
    /// dropped, and a trailing CR, unless `raw`).
    fn take(&mut self, offset: i64, value: &[u8], raw: bool) {
        let number = offset as u64 + 1;
        self.bytes += value.len() as u64;
        self.next = offset + 1;
        for piece in value.split(|&b| b == b'\n') {
            let mut piece = piece;
            if !raw {
                if let [rest @ .., b'\r'] = piece {
                    piece = rest;
                }
                if piece.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
            }
            let start = self.data.len();
            self.data.extend_from_slice(piece);
            self.data.push(b'\n');
            self.lines.push(Line {
                start,
                end: start + piece.len(),
                number,
            });
        }
        if raw && value.ends_with(b"\n") {
            // The empty piece after a final newline is no line.
            if let Some(last) = self.lines.pop()
                && last.start != last.end
            {
                self.lines.push(last);
            }
        }
    }

    /// The batch gathered, for source `source`.
    fn batch(&mut self, source: usize, pool: &Pool) -> Option<Batch> {
        if self.bytes == 0 && self.lines.is_empty() {
            return None;
        }
        let mut fresh = pool.take();
        fresh.clear();
        let data = std::mem::replace(&mut self.data, fresh);
        let batch = Batch {
            source,
            data,
            lines: std::mem::take(&mut self.lines),
            bytes: std::mem::take(&mut self.bytes),
            end: Position::Kafka { offset: self.next },
        };
        Some(batch)
    }
}

#[cfg(feature = "kafka")]
pub use imp::Committer;

#[cfg(feature = "kafka")]
mod imp {
    use super::*;
    use crate::kafka::client_config;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message as _;
    use rdkafka::types::RDKafkaErrorCode;
    use rdkafka::{ClientContext, Offset, TopicPartitionList};
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// What the reader's consumers and the executor share.
    pub(super) struct Shared {
        state: Mutex<State>,
        changed: Condvar,
        /// The source of the first partition, and each partition's topic
        /// (by index) and number.
        first: usize,
        layout: Vec<(usize, i32)>,
        topics: Vec<String>,
    }

    #[derive(Default)]
    struct State {
        /// A rebalance waits: the executor is to write everything read and
        /// hand back the offsets to commit.
        wanted: bool,
        /// What the executor handed back: (source, offset after it).
        handed: Option<Vec<(usize, i64)>>,
        /// Rebalances that took partitions away so far (the reader drops
        /// what it gathered before one).
        revocations: u64,
        /// The consumers are being closed: a rebalance no longer waits.
        closing: bool,
        consumers: Vec<Arc<BaseConsumer<Context>>>,
        /// Partitions assigned now, per consumer, and whether each consumer
        /// has been through its first assignment.
        assigned: Vec<HashSet<i32>>,
        joined: Vec<bool>,
        /// An error of a consumer that ends the input (unknown topic, …).
        failed: Option<String>,
        /// Since when every broker is down, and librdkafka's reason; cleared
        /// by the next message.
        down: Option<(std::time::Instant, String)>,
        /// The assignment changed since the reader last said so.
        reassigned: bool,
    }

    /// A consumer's callbacks: rebalances.
    pub(super) struct Context {
        shared: Arc<Shared>,
        /// Which of the input's topics (and consumers) this is.
        topic: usize,
        name: String,
    }

    impl ClientContext for Context {
        fn error(&self, error: KafkaError, reason: &str) {
            // Broker-down and such are retried by librdkafka; the reader
            // ends on errors that are final (see `read`).
            if is_final(&error) {
                let mut state = self.shared.state.lock().expect("kafka state");
                state
                    .failed
                    .get_or_insert(format!("{}: {reason}", self.name));
            } else if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
                // librdkafka retries; the reader says so, and a batch run
                // gives up after the wait (see `read`).
                let mut state = self.shared.state.lock().expect("kafka state");
                state
                    .down
                    .get_or_insert((std::time::Instant::now(), reason.to_string()));
            }
        }
    }

    impl ConsumerContext for Context {
        fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
            let Rebalance::Revoke(list) = rebalance else {
                return;
            };
            let mut state = self.shared.state.lock().expect("kafka state");
            state.revocations += 1;
            state.reassigned = true;
            if state.closing || list.count() == 0 {
                state.assigned[self.topic].clear();
                return;
            }
            // Flush, commit, release: everything read so far is written
            // by the executor before the partitions go.
            state.wanted = true;
            state.handed = None;
            self.shared.changed.notify_all();
            while state.handed.is_none() && !state.closing {
                let (s, _) = self
                    .shared
                    .changed
                    .wait_timeout(state, Duration::from_millis(100))
                    .expect("kafka state");
                state = s;
            }
            let handed = state.handed.take().unwrap_or_default();
            state.assigned[self.topic].clear();
            drop(state);
            let _ = commit_list(consumer, &self.shared, self.topic, &handed);
        }

        fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
            if let Rebalance::Assign(list) = rebalance {
                let mut state = self.shared.state.lock().expect("kafka state");
                state.reassigned = true;
                let assigned = &mut state.assigned[self.topic];
                assigned.clear();
                assigned.extend(list.elements().iter().map(|e| e.partition()));
                state.joined[self.topic] = true;
            }
        }
    }

    /// Commits `offsets` (source, next offset) of `topic`'s consumer, for
    /// the partitions it holds now.
    fn commit_list(
        consumer: &BaseConsumer<Context>,
        shared: &Shared,
        topic: usize,
        offsets: &[(usize, i64)],
    ) -> Result<(), String> {
        let mut list = TopicPartitionList::new();
        for &(source, offset) in offsets {
            let Some((t, p)) = shared.layout.get(source.wrapping_sub(shared.first)) else {
                continue;
            };
            if *t == topic {
                list.add_partition_offset(&shared.topics[topic], *p, Offset::Offset(offset))
                    .map_err(|e| e.to_string())?;
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| e.to_string())
    }

    impl Shared {
        pub(super) fn new(topics: &[String], first: usize, partitions: &[(String, i32)]) -> Shared {
            let layout: Vec<(usize, i32)> = partitions
                .iter()
                .map(|(t, p)| (topics.iter().position(|x| x == t).unwrap_or(0), *p))
                .collect();
            Shared {
                state: Mutex::new(State {
                    assigned: vec![HashSet::new(); topics.len()],
                    joined: vec![false; topics.len()],
                    ..Default::default()
                }),
                changed: Condvar::new(),
                first,
                layout,
                topics: topics.to_vec(),
            }
        }
    }

    /// The executor's side: offsets go to the group only through this, once
    /// the output before them is written.
    pub struct Committer {
        shared: Arc<Shared>,
    }

    impl Committer {
        /// Whether a rebalance waits for everything read to be written.
        pub fn wanted(&self) -> bool {
            self.shared.state.lock().map(|s| s.wanted).unwrap_or(false)
        }

        /// Everything read is written: the waiting rebalance commits
        /// `offsets` and lets its partitions go.
        pub fn hand_back(&self, offsets: Vec<(usize, i64)>) {
            let mut state = self.shared.state.lock().expect("kafka state");
            state.wanted = false;
            state.handed = Some(offsets);
            self.shared.changed.notify_all();
        }

        /// Commits `offsets` (source, offset after what was written) now.
        pub fn commit(&self, offsets: &[(usize, i64)]) -> Result<(), String> {
            let consumers = self
                .shared
                .state
                .lock()
                .expect("kafka state")
                .consumers
                .clone();
            for (topic, consumer) in consumers.iter().enumerate() {
                commit_list(consumer, &self.shared, topic, offsets)?;
            }
            Ok(())
        }

        /// Leaves the group: the consumers close (a rebalance then no
        /// longer waits for this executor).
        pub fn close(&self) {
            let consumers = {
                let mut state = self.shared.state.lock().expect("kafka state");
                state.closing = true;
                self.shared.changed.notify_all();
                std::mem::take(&mut state.consumers)
            };
            drop(consumers);
        }
    }

    impl KafkaInput {
        /// The input `address` in `group`: its topics' partitions are
        /// looked up now (a broker that cannot be reached, or a topic that
        /// does not exist, is an error naming them), to be sources
        /// `first`, `first + 1`, ….
        pub fn open(
            address: Address,
            group: String,
            start: Start,
            properties: Vec<(String, String)>,
            first: usize,
        ) -> Result<KafkaInput, String> {
            let partitions = crate::kafka::partitions(&address, &properties)?;
            let shared = Arc::new(Shared::new(&address.topics, first, &partitions));
            Ok(KafkaInput {
                address,
                group,
                start,
                properties,
                partitions,
                first,
                shared,
            })
        }

        /// The sources of the partitions in `assigned` (per topic).
        fn assigned_sources(&self, assigned: &[HashSet<i32>]) -> Vec<usize> {
            (self.shared.layout.iter().enumerate())
                .filter(|(_, (t, p))| assigned[*t].contains(p))
                .map(|(i, _)| self.first + i)
                .collect()
        }

        /// The sources whose event time counts: assigned, not at their end.
        fn counting(&self, ended: &[HashSet<i32>]) -> Vec<usize> {
            let state = self.shared.state.lock().expect("kafka state");
            let mut sources = self.assigned_sources(&state.assigned);
            drop(state);
            sources.retain(|&s| {
                let (t, p) = self.shared.layout[s - self.first];
                !ended[t].contains(&p)
            });
            sources
        }

        /// What the executor commits through.
        pub fn committer(&self) -> Committer {
            Committer {
                shared: Arc::clone(&self.shared),
            }
        }

        /// Reads the topics: until the end of every partition assigned
        /// (`follow` false), or until `stop`. Returns an error that ends
        /// the input (a broker or topic gone for good).
        pub fn read(
            &self,
            raw: bool,
            follow: bool,
            deliver: &mut dyn FnMut(Message) -> bool,
            stop: &AtomicUsize,
            pool: &Pool,
        ) -> Result<(), String> {
            let mut consumers = Vec::new();
            for (i, topic) in self.address.topics.iter().enumerate() {
                let mut config = client_config(&self.address.brokers, &self.properties);
                config
                    .set("group.id", &self.group)
                    .set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false")
                    // The end of a partition: where a batch run stops, and
                    // under -F where a caught-up partition stops holding
                    // event time back until it has new messages.
                    .set("enable.partition.eof", "true")
                    .set(
                        "auto.offset.reset",
                        match self.start {
                            Start::Earliest => "earliest",
                            Start::Latest => "latest",
                        },
                    );
                for (k, v) in &self.properties {
                    config.set(k, v);
                }
                let context = Context {
                    shared: Arc::clone(&self.shared),
                    topic: i,
                    name: format!("{}{}/{topic}", crate::kafka::SCHEME, self.address.brokers),
                };
                let consumer: BaseConsumer<Context> = config
                    .create_with_context(context)
                    .map_err(|e| format!("{}: {e}", self.address.name()))?;
                consumer
                    .subscribe(&[topic.as_str()])
                    .map_err(|e| format!("{}: {e}", self.address.name()))?;
                consumers.push(Arc::new(consumer));
            }
            self.shared.state.lock().expect("kafka state").consumers = consumers.clone();
            let mut gathering: Vec<Gathering> = (0..self.partitions.len())
                .map(|_| Gathering::default())
                .collect();
            let index: std::collections::HashMap<(usize, i32), usize> = self
                .partitions
                .iter()
                .enumerate()
                .map(|(i, (t, p))| {
                    let topic = self.address.topics.iter().position(|x| x == t).unwrap_or(0);
                    ((topic, *p), i)
                })
                .collect();
            let mut ended: Vec<HashSet<i32>> = vec![HashSet::new(); consumers.len()];
            let wait_down = crate::kafka::wait(&self.properties, "socket.timeout.ms");
            let mut told_down = false;
            let mut revocations = 0;
            let wait = Duration::from_millis((100 / consumers.len().max(1)) as u64);
            loop {
                if stop.load(Ordering::Relaxed) != 0 {
                    break;
                }
                let mut idle = true;
                for (topic, consumer) in consumers.iter().enumerate() {
                    // A burst of messages, then the batches go.
                    let mut taken = 0;
                    while taken < BATCH {
                        let polled = consumer.poll(if taken == 0 { wait } else { Duration::ZERO });
                        {
                            let mut state = self.shared.state.lock().expect("kafka state");
                            if state.revocations != revocations {
                                // Partitions went: what was gathered is read again by their owner.
                                revocations = state.revocations;
                                gathering.iter_mut().for_each(|g| *g = Gathering::default());
                                ended[topic].retain(|p| state.assigned[topic].contains(p));
                            }
                            if let Some(failed) = &state.failed {
                                return Err(failed.clone());
                            }
                            if let Some((since, reason)) = &state.down {
                                if !follow && since.elapsed() >= wait_down {
                                    return Err(format!(
                                        "{}: lost the brokers {} for {} s ({reason})",
                                        self.address.name(),
                                        self.address.brokers,
                                        wait_down.as_secs_f64()
                                    ));
                                }
                                if !told_down {
                                    told_down = true;
                                    crate::report::progress::eprintln(&format!(
                                        "evq: {}: brokers {} unreachable, retrying ({reason}){}",
                                        self.address.name(),
                                        self.address.brokers,
                                        if follow {
                                            ""
                                        } else {
                                            "; giving up after the wait of -X socket.timeout.ms"
                                        }
                                    ));
                                }
                            }
                            if state.reassigned {
                                state.reassigned = false;
                                let sources = self.assigned_sources(&state.assigned);
                                drop(state);
                                if !deliver(Message::Assigned { sources }) {
                                    return Ok(());
                                }
                            }
                        }
                        match polled {
                            None => break,
                            Some(Ok(message)) => {
                                idle = false;
                                if told_down || !follow {
                                    let mut state = self.shared.state.lock().expect("kafka state");
                                    if state.down.take().is_some() && told_down {
                                        told_down = false;
                                        drop(state);
                                        crate::report::progress::eprintln(&format!(
                                            "evq: {}: brokers reachable again",
                                            self.address.name()
                                        ));
                                    }
                                }
                                let key = (topic, message.partition());
                                let Some(&i) = index.get(&key) else { continue };
                                let value = message.payload().unwrap_or_default();
                                taken += value.len() + 1;
                                if ended[topic].remove(&message.partition())
                                    && !deliver(Message::Assigned {
                                        sources: self.counting(&ended),
                                    })
                                {
                                    return Ok(());
                                }
                                gathering[i].take(message.offset(), value, raw);
                                if gathering[i].data.len() >= BATCH
                                    && let Some(batch) = gathering[i].batch(self.first + i, pool)
                                    && !deliver(Message::Batch(batch))
                                {
                                    return Ok(());
                                }
                            }
                            Some(Err(KafkaError::PartitionEOF(p))) => {
                                // At its end, a partition no longer holds event time back.
                                if ended[topic].insert(p) {
                                    // Its last events first.
                                    for (i, g) in gathering.iter_mut().enumerate() {
                                        if let Some(batch) = g.batch(self.first + i, pool)
                                            && !deliver(Message::Batch(batch))
                                        {
                                            return Ok(());
                                        }
                                    }
                                    let sources = self.counting(&ended);
                                    if !deliver(Message::Assigned { sources }) {
                                        return Ok(());
                                    }
                                }
                                break;
                            }
                            Some(Err(e)) => {
                                if is_final(&e) {
                                    return Err(format!(
                                        "{}{}/{}: {e}",
                                        crate::kafka::SCHEME,
                                        self.address.brokers,
                                        self.address.topics[topic]
                                    ));
                                }
                            }
                        }
                    }
                }
                for (i, g) in gathering.iter_mut().enumerate() {
                    if (idle || g.data.len() >= BATCH / 4)
                        && let Some(batch) = g.batch(self.first + i, pool)
                        && !deliver(Message::Batch(batch))
                    {
                        return Ok(());
                    }
                }
                if !follow {
                    let state = self.shared.state.lock().expect("kafka state");
                    let done = (0..consumers.len()).all(|t| {
                        state.joined[t] && state.assigned[t].iter().all(|p| ended[t].contains(p))
                    });
                    if done && gathering.iter().all(|g| g.lines.is_empty() && g.bytes == 0) {
                        break;
                    }
                }
            }
            for (i, g) in gathering.iter_mut().enumerate() {
                if let Some(batch) = g.batch(self.first + i, pool)
                    && !deliver(Message::Batch(batch))
                {
                    return Ok(());
                }
            }
            Ok(())
        }
    }

    /// Errors a consumer does not get over by retrying.
    fn is_final(error: &KafkaError) -> bool {
        use RDKafkaErrorCode as Code;
        matches!(
            error.rdkafka_error_code(),
            Some(
                Code::UnknownTopicOrPartition
                    | Code::UnknownTopic
                    | Code::TopicAuthorizationFailed
                    | Code::GroupAuthorizationFailed
                    | Code::SaslAuthenticationFailed
                    | Code::Authentication
                    | Code::Fatal
            )
        ) || matches!(error, KafkaError::MessageConsumptionFatal(_))
    }
}

#[cfg(not(feature = "kafka"))]
mod imp {
    use super::*;

    /// Without the `kafka` feature there is no Kafka input: the plan
    /// refuses `kafka://` before one could be made.
    pub struct Committer(std::convert::Infallible);

    impl Committer {
        pub fn wanted(&self) -> bool {
            match self.0 {}
        }
        pub fn hand_back(&self, _: Vec<(usize, i64)>) {
            match self.0 {}
        }
        pub fn commit(&self, _: &[(usize, i64)]) -> Result<(), String> {
            match self.0 {}
        }
        pub fn close(&self) {
            match self.0 {}
        }
    }

    impl KafkaInput {
        pub fn committer(&self) -> Committer {
            unreachable!("no Kafka input without the kafka feature")
        }
        pub fn read(
            &self,
            _: bool,
            _: bool,
            _: &mut dyn FnMut(Message) -> bool,
            _: &AtomicUsize,
            _: &Pool,
        ) -> Result<(), String> {
            unreachable!("no Kafka input without the kafka feature")
        }
    }
}

#[cfg(not(feature = "kafka"))]
pub use imp::Committer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_several_lines_is_several_events_numbered_by_its_offset() {
        let mut g = Gathering::default();
        g.take(0, b"{\"a\":1}\n\n{\"a\":2}\r\n", false);
        g.take(7, b"3", false);
        let batch = g.batch(5, &Pool::default()).unwrap();
        let got: Vec<(u64, &[u8])> = batch
            .lines
            .iter()
            .map(|l| (l.number, batch.line(l)))
            .collect();
        assert_eq!(
            got,
            vec![(1, &b"{\"a\":1}"[..]), (1, b"{\"a\":2}"), (8, b"3")]
        );
        assert_eq!(batch.end, Position::Kafka { offset: 8 });
        assert_eq!(batch.source, 5);
        assert!(g.batch(5, &Pool::default()).is_none());
    }
}
