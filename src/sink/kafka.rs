//! `-o kafka://BROKERS/TOPIC` and `--dead-letter kafka://BROKERS/TOPIC`:
//! each line written is one message of the topic (without its newline),
//! keyed by `--kafka-key EXPR` when given. Built on librdkafka's producer,
//! polled on the thread that writes: `flush` serves the delivery reports that
//! are in, `sync` waits until every message written so far is acknowledged
//! by the broker, which is what an offset commit (or a checkpoint) waits
//! for. A message that is not delivered makes every later call fail, with
//! the broker's reason: the run stops (exit 4) rather than lose it.

use super::Sink;
use crate::jq::Program;
use crate::kafka::{Address, describe};
use jaq_json::Val;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::cell::RefCell;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The producer settings evq chooses, each unless `-X` sets it (besides
/// `message.timeout.ms`, see `open`): writing to a topic does not create it.
/// Batching stays librdkafka's (`linger.ms` 5, `batch.size` 1 MB, 10000
/// messages a batch, 100000 queued, no compression): on one broker over
/// loopback, 1M small events took 1.0 to 1.1 s with these and with larger
/// batches and queues alike (only `linger.ms=0` was slower, 1.8 to 2.5 s).
const DEFAULTS: [(&str, &str); 1] = [("allow.auto.create.topics", "false")];

/// Why a Kafka output cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    /// A setting librdkafka refuses (`-X`): a usage error.
    Config(String),
    /// The broker cannot be reached, or the topic does not exist: an I/O error.
    Broker(String),
}

/// A topic written through a Kafka producer: one message a line.
pub struct KafkaSink {
    producer: BaseProducer<Reports>,
    topic: String,
    /// `kafka://BROKERS/TOPIC`, for messages.
    name: String,
    brokers: String,
    /// Messages handed to the producer.
    sent: u64,
    /// How long `sync` waits for the delivery reports.
    wait: Duration,
    key: Option<Key>,
    /// The key of the message being sent, kept to reuse its memory.
    key_bytes: Vec<u8>,
    /// `sync` gave up waiting: dropping does not wait again.
    gave_up: bool,
}

/// What the producer reports, from the thread that polls it.
#[derive(Default)]
struct Reports {
    delivered: AtomicU64,
    undelivered: AtomicU64,
    /// Why the first message that failed was not delivered.
    first_failure: Mutex<Option<String>>,
    /// The last error of the client (a broker that cannot be reached).
    last_error: Mutex<Option<String>>,
    /// librdkafka said that every broker is down.
    all_down: AtomicBool,
}

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        // `1/1 brokers are down` follows the reason they are (refused).
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_down.store(true, Ordering::Relaxed);
            if last.is_some() {
                return;
            }
        }
        *last = Some(text);
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let mut first = self.first_failure.lock().unwrap_or_else(|e| e.into_inner());
                if first.is_none() {
                    let reason = match error {
                        KafkaError::MessageProduction(code) => describe(*code),
                        other => other.to_string(),
                    };
                    let partition = match message.partition() {
                        p if p >= 0 => format!(" (partition {p})"),
                        _ => String::new(),
                    };
                    *first = Some(format!(
                        "a message to topic {}{partition} was not delivered: {reason}",
                        message.topic()
                    ));
                }
                self.undelivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl KafkaSink {
    /// Connects to the brokers of `address` (one topic) with the settings
    /// `properties` (`-X`) and checks that the topic exists, waiting at most
    /// `socket.timeout.ms` (10 s unless set); fails at once when librdkafka
    /// says every broker is down (refused, or a name that does not resolve).
    pub fn open(
        address: &Address,
        properties: &[(String, String)],
        key: Option<Key>,
    ) -> Result<KafkaSink, OpenError> {
        let name = address.name();
        let [topic] = address.topics.as_slice() else {
            return Err(OpenError::Config(format!(
                "{name}: an output writes to one topic"
            )));
        };
        // A message fails after the wait for delivery reports, so that a
        // sync never waits for a report that cannot come.
        let wait = ["message.timeout.ms", "delivery.timeout.ms"]
            .into_iter()
            .find(|k| properties.iter().any(|(p, _)| p == k))
            .map_or(crate::kafka::WAIT, |k| crate::kafka::wait(properties, k));
        let mut config = crate::kafka::client_config(&address.brokers, &[]);
        config.set("message.timeout.ms", wait.as_millis().to_string());
        for (k, v) in DEFAULTS {
            config.set(k, v);
        }
        for (k, v) in properties {
            config.set(k, v);
        }
        // `sync` counts the reports of delivered messages too.
        config.set("delivery.report.only.error", "false");
        let producer: BaseProducer<Reports> = config
            .create_with_context(Reports::default())
            .map_err(|e| OpenError::Config(format!("{name}: {}", kafka_text(&e))))?;
        let brokers = address.brokers.clone();
        let sink = KafkaSink {
            producer,
            topic: topic.clone(),
            name,
            brokers,
            sent: 0,
            wait,
            key,
            key_bytes: Vec::new(),
            gave_up: false,
        };
        sink.check_topic(crate::kafka::wait(properties, "socket.timeout.ms"))?;
        Ok(sink)
    }

    /// Asks the brokers for the topic's metadata until they answer, every
    /// broker is down, or `wait` has passed.
    fn check_topic(&self, wait: Duration) -> Result<(), OpenError> {
        let deadline = Instant::now() + wait;
        let unreachable = |reason: String| {
            OpenError::Broker(format!(
                "{}: cannot reach broker {}: {reason}",
                self.name, self.brokers
            ))
        };
        let mut step = Duration::from_millis(100);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let metadata = self
                .producer
                .client()
                .fetch_metadata(Some(&self.topic), step.min(left));
            // The client's errors (a broker down) arrive as events.
            self.producer.poll(Duration::ZERO);
            let reports = self.producer.context();
            match metadata {
                Ok(metadata) => {
                    return crate::kafka::topic_partitions(&metadata, &self.name, &self.topic)
                        .map(|_| ())
                        .map_err(OpenError::Broker);
                }
                Err(e) => {
                    let code = e.rdkafka_error_code();
                    let timed_out = matches!(
                        code,
                        Some(
                            RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut
                        )
                    );
                    if !timed_out {
                        // A broker failed at once (refused): why, and whether
                        // it was the last one, come as events. Another
                        // broker of the list may still answer.
                        let left = deadline.saturating_duration_since(Instant::now());
                        self.producer.poll(Duration::from_millis(50).min(left));
                    }
                    let last = reports
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let last = last.map(|l| broker_reason(&l));
                    if reports.all_down.load(Ordering::Relaxed) {
                        return Err(unreachable(last.unwrap_or_else(|| kafka_text(&e))));
                    }
                    if Instant::now() >= deadline {
                        let waited = format!("no answer in {}", seconds(wait));
                        return Err(unreachable(match last {
                            Some(last) => format!("{last} ({waited})"),
                            None => waited,
                        }));
                    }
                    step = (step * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Hands one message to the producer; when its queue is full, serves
    /// delivery reports until there is room (never drops one).
    fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        let key = match &mut self.key {
            None => None,
            Some(key) => {
                self.key_bytes.clear();
                let has = key
                    .of(payload, &mut self.key_bytes)
                    .map_err(io::Error::other)?;
                has.then_some(self.key_bytes.as_slice())
            }
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(1));
                    if let Some(failure) = self.failure() {
                        return Err(failure);
                    }
                }
                Err((KafkaError::MessageProduction(code), _)) => {
                    return Err(io::Error::other(format!(
                        "topic {}: a message of {} bytes cannot be sent: {}",
                        self.topic,
                        payload.len(),
                        describe(code)
                    )));
                }
                Err((e, _)) => {
                    return Err(io::Error::other(format!(
                        "topic {}: {}",
                        self.topic,
                        kafka_text(&e)
                    )));
                }
            }
        }
    }

    /// The first delivery that failed, as the error to stop with.
    fn failure(&self) -> Option<io::Error> {
        let reports = self.producer.context();
        if reports.undelivered.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let first = reports
            .first_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        Some(io::Error::other(format!(
            "broker {}: {first}",
            self.brokers
        )))
    }

    /// Messages sent that have no delivery report yet.
    fn outstanding(&self) -> u64 {
        let reports = self.producer.context();
        self.sent
            - reports.delivered.load(Ordering::Relaxed)
            - reports.undelivered.load(Ordering::Relaxed)
    }

    /// Waits until every message sent has its delivery report, at most
    /// `self.wait`: `Ok` only when all were delivered.
    fn wait_for_reports(&mut self) -> io::Result<()> {
        // `message.timeout.ms=0` is librdkafka's "no limit".
        let deadline = (!self.wait.is_zero()).then(|| Instant::now() + self.wait);
        loop {
            if let Some(failure) = self.failure() {
                return Err(failure);
            }
            let outstanding = self.outstanding();
            if outstanding == 0 {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.gave_up = true;
                let last = self.producer.context().last_error.lock();
                let last = last.unwrap_or_else(|e| e.into_inner()).clone();
                let reason = last.map_or(String::new(), |l| format!(" ({})", broker_reason(&l)));
                return Err(io::Error::other(format!(
                    "broker {}: {outstanding} of {} messages to topic {} not acknowledged in {}{reason}",
                    self.brokers,
                    self.sent,
                    self.topic,
                    seconds(self.wait)
                )));
            }
            // Sends what lingers now, without waiting (librdkafka's flush
            // with no time: the batches go, the reports are polled here).
            let _ = self.producer.flush(Duration::ZERO);
            self.producer.poll(Duration::from_millis(1));
        }
    }
}

impl Sink for KafkaSink {
    /// One message a line; a last piece without a newline (`--join-output`
    /// is refused by the plan) is a message too.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        if let Some(key) = &mut self.key {
            key.batch();
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let (line, after) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            self.send(line)?;
            rest = after;
        }
        // Serves the delivery reports that are in: they hold queue room.
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// The messages are with the producer, which sends them within
    /// `linger.ms`: only the delivery reports that are in are served.
    fn flush(&mut self) -> io::Result<()> {
        self.producer.poll(Duration::ZERO);
        match self.failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Waits until the broker has acknowledged every message written.
    fn sync(&mut self) -> io::Result<()> {
        self.wait_for_reports()
    }

    fn close(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for KafkaSink {
    /// Messages still on their way are waited for (librdkafka's producer
    /// would drop them), unless one was not delivered or `sync` gave up
    /// already (the run stopped on that). What is not delivered is said on
    /// standard error: the end of the run should `close` the sink instead,
    /// to stop with exit status 4.
    fn drop(&mut self) {
        if self.gave_up || self.failure().is_some() || self.outstanding() == 0 {
            return;
        }
        if let Err(e) = self.wait_for_reports() {
            crate::report::progress::eprintln(&format!(
                "evq: cannot write to {}: {}",
                self.name,
                crate::report::status::io_error_text(&e)
            ));
        }
    }
}

/// `--kafka-key EXPR`: how the key of each message is made from its event.
/// jaq values stay on the thread that made them, so the sink holds how to
/// compile the program and compiles it on the thread that writes, once.
pub struct Key {
    /// The expression by direct evaluation (`jq::direct`), when it can: no
    /// jaq value is built; an event it is not sure about goes through jaq.
    direct: Option<Direct>,
    compile: Box<dyn Fn() -> Result<Program, String> + Send>,
    /// The fields of the event the expression reads: only they are built
    /// (`None`: the whole event).
    fields: Option<crate::json::Fields>,
    /// This key's program among those compiled on a thread.
    id: u64,
}

thread_local! {
    /// The `--kafka-key` programs compiled on this thread, by `Key::id`.
    static PROGRAMS: RefCell<Vec<(u64, Program)>> = const { RefCell::new(Vec::new()) };
}

impl Key {
    /// A key made by `expr` (with the variables `vars`), run as the program
    /// `compile` returns (compiled once already by the caller, so that a bad
    /// expression is a usage error at start).
    pub fn new(
        expr: &str,
        vars: &[(String, Val)],
        compile: impl Fn() -> Result<Program, String> + Send + 'static,
    ) -> Key {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let direct = crate::jq::direct::compile(&[(true, expr)], vars)
            .filter(|c| c.keyed.is_none() && c.stages.len() == 1)
            .map(|chain| Direct {
                chain,
                slots: Vec::new(),
                tables: Vec::new(),
                out: Vec::new(),
            });
        Key {
            direct,
            compile: Box::new(compile),
            fields: crate::jq::fields::read_by(expr),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Before the lines of a write: the `--lookup` tables as they are now.
    fn batch(&mut self) {
        if let Some(direct) = &mut self.direct {
            direct.tables = crate::jq::lookup::tables();
        }
    }

    /// Writes the key of the output line `line` into `key`: the first value
    /// the program yields on the event (the line as JSON; a line that is not,
    /// as with `-r`, as a string). `false`: no key (null, or no value).
    fn of(&mut self, line: &[u8], key: &mut Vec<u8>) -> Result<bool, String> {
        if let Some(direct) = &mut self.direct
            && let Some(has) = direct.key(line, key)
        {
            return Ok(has);
        }
        key.clear();
        let event = match &self.fields {
            Some(fields) => crate::json::project(line, fields),
            None => crate::json::parse(line),
        };
        let event = event.unwrap_or_else(|_| Val::from(String::from_utf8_lossy(line).into_owned()));
        PROGRAMS.with(|programs| {
            let mut programs = programs.borrow_mut();
            let at = match programs.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    let program = (self.compile)().map_err(|e| format!("--kafka-key: {e}"))?;
                    programs.push((self.id, program));
                    programs.len() - 1
                }
            };
            let mut first = None;
            programs[at]
                .1
                .run(event, |v| {
                    first = Some(v);
                    false
                })
                .map_err(|e| {
                    format!(
                        "--kafka-key: {e} (on the event {})",
                        shorten(&String::from_utf8_lossy(line))
                    )
                })?;
            Ok(key_bytes(first.as_ref(), key))
        })
    }
}

/// `--kafka-key` by direct evaluation, with its buffers.
struct Direct {
    chain: crate::jq::direct::Chain,
    slots: Vec<Option<crate::json::Token>>,
    /// The `--lookup` tables, as this batch of lines sees them.
    tables: Vec<std::sync::Arc<crate::jq::lookup::Table>>,
    /// The value, as jaq would write it.
    out: Vec<u8>,
}

impl Direct {
    /// The key of `line` as `key_bytes` makes it, into `key`; `None` when
    /// direct evaluation is not sure (or the line is not JSON).
    fn key(&mut self, line: &[u8], key: &mut Vec<u8>) -> Option<bool> {
        let [crate::jq::direct::Stage::Map(e)] = self.chain.stages.as_slice() else {
            return None;
        };
        self.slots.resize(self.chain.slots, None);
        let located = crate::json::locate(
            line,
            &self.chain.locate,
            &mut self.slots,
            self.chain.check_keys,
        )
        .ok()?;
        let line = crate::jq::direct::Line {
            raw: line,
            slots: &self.slots,
            located,
            tables: &self.tables,
        };
        self.out.clear();
        line.write(e, false, &mut self.out).ok()?;
        let value = self.out.strip_suffix(b"\n")?;
        match value {
            b"null" => Some(false),
            [b'"', text @ .., b'"'] if !text.contains(&b'\\') => {
                key.extend_from_slice(text);
                Some(true)
            }
            [b'"', ..] => {
                let text: String = serde_json::from_slice(value).ok()?;
                key.extend_from_slice(text.as_bytes());
                Some(true)
            }
            other => {
                key.extend_from_slice(other);
                Some(true)
            }
        }
    }
}

/// A key from the first value of `--kafka-key`: a string as it is, null or
/// no value none, another value its compact JSON.
fn key_bytes(value: Option<&Val>, key: &mut Vec<u8>) -> bool {
    match value {
        None | Some(Val::Null) => false,
        Some(Val::TStr(s) | Val::BStr(s)) => {
            key.extend_from_slice(s);
            true
        }
        Some(other) => {
            crate::json::write_compact(key, other);
            true
        }
    }
}

/// An event in a message: at most 200 characters of it.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A client error as evq says it: the librdkafka description.
fn kafka_text(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, description, _, _) => description.clone(),
        other => match other.rdkafka_error_code() {
            Some(code) => describe(code),
            None => other.to_string(),
        },
    }
}

/// librdkafka's reason for a broker error, without the broker's own naming
/// (`127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection
/// refused (after 0ms in state CONNECT)` says `Connection refused`).
fn broker_reason(reason: &str) -> String {
    let reason = reason.trim();
    let reason = match reason.find(" failed: ") {
        Some(at) => &reason[at + " failed: ".len()..],
        None => reason,
    };
    match reason.find(" (after ") {
        Some(at) => reason[..at].to_string(),
        None => reason.to_string(),
    }
}

/// `10 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: Option<Val>) -> Option<String> {
        let mut out = Vec::new();
        key_bytes(value.as_ref(), &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn keys_of_values() {
        assert_eq!(key(None), None);
        assert_eq!(key(Some(Val::Null)), None);
        assert_eq!(key(Some(Val::from("a b".to_string()))), Some("a b".into()));
        assert_eq!(key(Some(Val::from(12isize))), Some("12".into()));
        let object = crate::json::parse(br#"{"a": [1, "x"]}"#).unwrap();
        assert_eq!(key(Some(object)), Some(r#"{"a":[1,"x"]}"#.into()));
        assert_eq!(key(Some(Val::Bool(false))), Some("false".into()));
    }

    fn compiled(expr: &'static str) -> Key {
        let compile =
            move || Program::compile(expr, "--kafka-key", &crate::jq::Globals::new(Vec::new()));
        compile().unwrap();
        Key::new(expr, &[], compile)
    }

    fn key_of(k: &mut Key, line: &str) -> Result<Option<String>, String> {
        let mut out = Vec::new();
        let has = k.of(line.as_bytes(), &mut out)?;
        Ok(has.then(|| String::from_utf8(out).unwrap()))
    }

    #[test]
    fn key_expression_on_lines() {
        let mut k = compiled(".user.id");
        assert!(k.direct.is_some());
        let mut of = |line| key_of(&mut k, line);
        assert_eq!(of(r#"{"user":{"id":"u1"}}"#), Ok(Some("u1".into())));
        assert_eq!(of(r#"{"user":{"id":7}}"#), Ok(Some("7".into())));
        assert_eq!(of(r#"{"user":{}}"#), Ok(None));
        let e = of(r#"{"user":"u"}"#).unwrap_err();
        assert!(e.starts_with("--kafka-key: "), "{e}");
        assert!(e.contains(r#"(on the event {"user":"u"})"#), "{e}");
        // A line that is not JSON (-r) is a string.
        let mut whole = compiled(".");
        assert_eq!(
            key_of(&mut whole, "plain text"),
            Ok(Some("plain text".into()))
        );
        assert_eq!(key_of(&mut whole, r#""text""#), Ok(Some("text".into())));
        let mut none = compiled("empty");
        assert_eq!(key_of(&mut none, "{}"), Ok(None));
    }

    /// Direct evaluation makes the key jaq makes, or leaves it to jaq.
    #[test]
    fn direct_keys_as_jaq() {
        let lines = [
            r#"{"a":"x","b":1,"c":{"d":[1,2]}}"#,
            r#"{"a":"caf\u00e9 \"q\"","b":1.50,"c":null}"#,
            r#"{"a":"\ud800","b":-0,"c":{"d":"e"}}"#,
            r#"{"a":null,"b":true}"#,
            r#"{"b":100000000000000000000000}"#,
            r#"{"a":"x","a":"y"}"#,
            r#"[1,2]"#,
            r#""plain""#,
            "not json",
        ];
        let exprs = [
            ".a",
            ".b",
            ".c",
            ".c.d",
            "{a, b}",
            ".a // .b",
            ".b == 1",
            r#""k""#,
            "null",
            ".a | test(\"x\")",
        ];
        for expr in exprs {
            let mut direct = compiled(expr);
            let mut jaq = compiled(expr);
            jaq.direct = None;
            for line in lines {
                assert_eq!(
                    key_of(&mut direct, line),
                    key_of(&mut jaq, line),
                    "{expr} on {line}"
                );
            }
        }
        assert!(compiled("{a, b}").direct.is_some());
    }

    #[test]
    fn broker_reasons() {
        assert_eq!(
            broker_reason(
                "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"
            ),
            "Connection refused"
        );
        assert_eq!(
            broker_reason("1/1 brokers are down"),
            "1/1 brokers are down"
        );
        assert_eq!(
            describe(RDKafkaErrorCode::MessageTimedOut),
            "Local: Message timed out"
        );
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_secs(10)), "10 s");
    }
}
