//! The pattern stage on the keyed-state runtime: its buffered events and
//! partial matches survive `kill -9` through `--checkpoint` (the runs
//! together emit what one clean run emits, and never a match or timeout a
//! clean run does not). (`tests/it/pattern.rs` compares the matches with
//! their reference.)

use crate::common::{self, Rng};

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;
use std::time::Instant;

/// 2026-11-02T08:00:00Z in milliseconds since the epoch.
const BASE_MS: i64 = 1_793_606_400_000;

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
    let events = 250_000;
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

    let args = [PATTERN, &["in.ndjson"]].concat();
    let crashes =
        common::kill_9_until_done(dir.path(), &args, clean_time, 0x5eed, 150, |run, line| {
            // A line no clean run writes: a match or timeout with other
            // events (or one cut short by the crash).
            assert!(
                clean_set.contains(line),
                "run {run} emitted a line no clean run does: {line}"
            );
        });
    let (union, last_stats, runs) = (crashes.union, crashes.last_stats, crashes.runs);
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
