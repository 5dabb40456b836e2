//! The pattern stage on the keyed-state runtime: its buffered events and
//! partial matches survive `kill -9` through `--checkpoint` (the runs
//! together emit what one clean run emits, and never a match or timeout a
//! clean run does not). (`tests/it/pattern.rs` compares the matches with
//! their reference.)

use crate::common;

use serde_json::Value;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// 2026-11-02T08:00:00Z in milliseconds since the epoch.
const BASE_MS: i64 = 1_793_606_400_000;

/// SplitMix64, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    common::evq()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run evq")
}

/// `n` login events, 3 ms apart, one in six up to 900 ms back (within a
/// lateness of 1 s), over `keys` users, two in three failures, each with
/// a unique id.
fn logins(n: u64, keys: u64, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut text = String::with_capacity(n as usize * 50);
    for i in 0..n {
        let back = if rng.below(6) == 0 { rng.below(900) } else { 0 };
        let t = BASE_MS + (i * 3) as i64 - back as i64;
        let k = rng.below(keys);
        let r = if rng.below(3) == 0 { "ok" } else { "fail" };
        writeln!(text, r#"{{"id":{i},"u":{k},"t":{t},"r":"{r}"}}"#).unwrap();
    }
    text
}

/// The complete lines of a file (a killed run's last one may be cut off).
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end_matches('\n').to_string())
        .collect()
}

const PATTERN: &[&str] = &[
    "--def",
    "fail=.r == \"fail\"",
    "--def",
    "ok=.r == \"ok\"",
    "--match",
    "fail{2,} ok",
    "--key",
    ".u",
    "--time",
    ".t",
    "--within",
    "2s",
    "--lateness",
    "1s",
    "--match-timeouts",
];

#[test]
fn pattern_state_survives_kill_9() {
    let dir = common::tempdir();
    let events = 100_000;
    std::fs::write(dir.path().join("in.ndjson"), logins(events, 300, 7)).unwrap();
    let started = Instant::now();
    let clean = run_in(dir.path(), &[PATTERN, &["in.ndjson"]].concat());
    let clean_time = started.elapsed();
    assert_eq!(common::status(&clean), 0, "{}", common::stderr(&clean));
    let clean_lines: Vec<String> = common::stdout(&clean).lines().map(String::from).collect();
    let clean_set: HashSet<&str> = clean_lines.iter().map(String::as_str).collect();
    assert_eq!(
        clean_set.len(),
        clean_lines.len(),
        "a clean run repeats a line"
    );
    // Both kinds of line are there: matches and timeouts.
    assert!(
        clean_lines
            .iter()
            .any(|l| l.contains(r#""status":"matched""#))
    );
    assert!(
        clean_lines
            .iter()
            .any(|l| l.contains(r#""status":"timeout""#))
    );

    let mut rng = Rng(0x5eed);
    let span = clean_time.as_millis().max(100) as u64;
    let mut union: HashSet<String> = HashSet::new();
    let checkpoint = dir.path().join("ck.json");
    let (mut kills, mut kills_after_save, mut runs) = (0, 0, 0);
    let last_stats = loop {
        runs += 1;
        assert!(runs <= 30, "no run completed in 30 ({kills} killed)");
        let out = dir.path().join(format!("out-{runs}.ndjson"));
        let err = dir.path().join(format!("err-{runs}.txt"));
        let saved_before = std::fs::read(&checkpoint).ok();
        let mut child = common::evq()
            .current_dir(dir.path())
            .args(["--stats=json", "--checkpoint", "ck.json"])
            .args(["--checkpoint-every", "50ms"])
            .args(PATTERN)
            .arg("in.ndjson")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let most = match runs {
            ..=6 => span / 4,
            7..=15 => span * 4 / 5,
            _ => span * 3,
        };
        // At least long enough to start and save once (every 50 ms).
        let delay = Duration::from_millis(150 + rng.below(most));
        let status = common::wait_timeout(&mut child, delay);
        if status.is_none() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            kills += 1;
            kills_after_save += usize::from(std::fs::read(&checkpoint).ok() != saved_before);
        }
        for line in complete_lines(&out) {
            // A line no clean run writes: a match or timeout with other
            // events (or one cut short by the crash).
            assert!(
                clean_set.contains(line.as_str()),
                "run {runs} emitted a line no clean run does: {line}"
            );
            union.insert(line);
        }
        if let Some(status) = status {
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            assert_eq!(status.code(), Some(0), "run {runs} failed: {stderr}");
            let last = stderr.lines().last().unwrap_or_default();
            break serde_json::from_str::<Value>(last)
                .unwrap_or_else(|e| panic!("run {runs}: stats ({e}): {stderr}"));
        }
    };
    eprintln!(
        "{runs} runs, {kills} killed ({kills_after_save} after saving); clean {clean_time:?}"
    );
    assert!(kills >= 3, "only {kills} of {runs} runs were killed");
    assert!(
        kills_after_save >= 2,
        "only {kills_after_save} of {kills} killed runs had saved a checkpoint"
    );
    let read = last_stats["events_ingested"].as_u64().unwrap();
    assert!(
        read < 2 * events,
        "the last run read {read} events: it did not resume"
    );
    let missing: Vec<&String> = clean_lines.iter().filter(|l| !union.contains(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lines lost over {runs} runs, e.g. {}",
        missing.len(),
        clean_lines.len(),
        missing[0]
    );
}
