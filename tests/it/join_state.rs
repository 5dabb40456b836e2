//! The join stage on the keyed-state runtime: its held events and both
//! sides' watermarks survive `kill -9` through `--checkpoint` (the runs
//! together emit what one clean run emits, and no event is emitted
//! unmatched in one run and paired in another); a right-side event that
//! fails is reported and dead-lettered with FILE and its line; the stats
//! name both inputs; the output is the same with direct evaluation off.
//! (`tests/it/join.rs` compares the join with its reference.)

use crate::common::{self, Rng};

use serde_json::Value;
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

/// `n` events of one side, 3 ms apart, one in six up to 900 ms back
/// (within a lateness of 1 s), over `keys` keys, each with a unique id.
fn side(n: u64, keys: u64, seed: u64, prefix: &str) -> String {
    let mut rng = Rng(seed);
    let mut text = String::with_capacity(n as usize * 50);
    for i in 0..n {
        let back = if rng.below(6) == 0 { rng.below(900) } else { 0 };
        let t = BASE_MS + (i * 3) as i64 - back as i64;
        let k = rng.below(keys);
        writeln!(text, r#"{{"id":"{prefix}{i}","k":{k},"t":{t}}}"#).unwrap();
    }
    text
}

const JOIN: &[&str] = &[
    "--join",
    "right.ndjson",
    "--key",
    ".k",
    "--time",
    ".t",
    "--within",
    "-200ms..300ms",
    "--lateness",
    "1s",
    "--join-type",
    "full",
];

#[test]
fn join_state_survives_kill_9() {
    let dir = common::tempdir();
    let events = 200_000;
    std::fs::write(dir.path().join("left.ndjson"), side(events, 400, 7, "L")).unwrap();
    std::fs::write(dir.path().join("right.ndjson"), side(events, 400, 8, "R")).unwrap();
    let started = Instant::now();
    let clean = run_in(dir.path(), &[JOIN, &["left.ndjson"]].concat());
    let clean_time = started.elapsed();
    assert_eq!(common::status(&clean), 0, "{}", common::stderr(&clean));
    let clean_lines: Vec<String> = common::stdout(&clean).lines().map(String::from).collect();
    let clean_set: HashSet<&str> = clean_lines.iter().map(String::as_str).collect();
    assert_eq!(
        clean_set.len(),
        clean_lines.len(),
        "a clean run repeats a line"
    );
    // Both kinds of line are there: pairs and events alone.
    assert!(clean_lines.iter().any(|l| l.contains(r#""right":null"#)));
    assert!(clean_lines.iter().any(|l| !l.contains("null")));

    let args = [JOIN, &["left.ndjson"]].concat();
    let crashes =
        common::kill_9_until_done(dir.path(), &args, clean_time, 0x5eed, 150, |run, line| {
            // A line no clean run writes: a pair that is not one, or an
            // event emitted alone that pairs in a clean run.
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

#[test]
fn failures_and_stats_name_each_side() {
    let dir = common::tempdir();
    std::fs::write(
        dir.path().join("left.ndjson"),
        "{\"k\":1,\"t\":10}\n{\"k\":2,\"t\":\"soon\"}\n{\"k\":3,\"t\":30}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("right.ndjson"),
        "{\"k\":1,\"t\":11}\nnot json\n{\"k\":3,\"t\":[]}\n{\"k\":3,\"t\":31}\n",
    )
    .unwrap();
    let out = run_in(
        dir.path(),
        &[
            "--join",
            "right.ndjson",
            "--key",
            ".k",
            "--time",
            ".t",
            "--within",
            "5s",
            "--dead-letter",
            "dl.ndjson",
            "--stats=json",
            "left.ndjson",
        ],
    );
    assert_eq!(common::status(&out), 3, "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        "{\"left\":{\"k\":1,\"t\":10},\"right\":{\"k\":1,\"t\":11}}\n{\"left\":{\"k\":3,\"t\":30},\"right\":{\"k\":3,\"t\":31}}\n"
    );
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("left.ndjson:2: join#1: --time:"),
        "{stderr}"
    );
    assert!(stderr.contains("right.ndjson:2: "), "{stderr}");
    assert!(
        stderr.contains("right.ndjson:3: join#1: --join-time:"),
        "{stderr}"
    );
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dl.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut places: Vec<(String, u64)> = dead
        .iter()
        .map(|d| {
            (
                d["source"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
            )
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [
            ("left.ndjson".to_string(), 2),
            ("right.ndjson".to_string(), 2),
            ("right.ndjson".to_string(), 3)
        ]
    );
    let stats = common::stats_json(&out);
    let join = &stats["stages"][0];
    assert_eq!(join["name"], "join#1");
    assert_eq!(join["pairs"], 2);
    assert_eq!(join["unmatched_left"], 0);
    assert_eq!(join["unmatched_right"], 0);
    assert_eq!(join["events_late"], 0);
    assert_eq!(join["keys"], 0, "nothing is held at the end");
    let inputs = stats["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0]["path"], "left.ndjson");
    assert_eq!(inputs[0]["failed"], 1);
    assert_eq!(inputs[1]["path"], "right.ndjson");
    assert_eq!(inputs[1]["lines"], 4);
    assert_eq!(inputs[1]["failed"], 2);
}

#[test]
fn direct_evaluation_and_threads_do_not_change_the_pairs() {
    let dir = common::tempdir();
    // Escapes, spaces, repeated keys, numbers spelled two ways, nested keys:
    // what direct evaluation must write as jaq does, or leave to jaq.
    let left = concat!(
        "{\"k\":\"a\",\"t\":1,\"s\":\"caf\\u00e9\"}\n",
        "{ \"k\" : \"a\" , \"t\" : 2 , \"x\" : 1.50 }\n",
        "{\"k\":\"b\",\"t\":3,\"k\":\"a\"}\n",
        "{\"k\":{\"y\":1,\"x\":2},\"t\":4}\n",
        "{\"k\":1.0,\"t\":5,\"n\":-0}\n",
        "{\"k\":null,\"t\":6}\n",
    );
    let right = concat!(
        "{\"k\":\"a\",\"t\":2,\"r\":\"\\/\"}\n",
        "{\"k\":{\"x\":2,\"y\":1},\"t\":4}\n",
        "{\"k\":1.0,\"t\":5}\n",
        "{\"k\":1,\"t\":5}\n",
        "{\"k\":null,\"t\":6}\n",
    );
    std::fs::write(dir.path().join("left.ndjson"), left.repeat(300)).unwrap();
    std::fs::write(dir.path().join("right.ndjson"), right.repeat(300)).unwrap();
    let args = [
        "--join",
        "right.ndjson",
        "--key",
        ".k",
        "--time",
        ".t",
        "--within",
        "0s..1s",
        "--join-type",
        "full",
        "--stats=json",
        "left.ndjson",
    ];
    let direct = common::evq()
        .current_dir(dir.path())
        .env_remove("EVQ_FULL_PARSE")
        .args(args)
        .args(["--threads", "2"])
        .output()
        .unwrap();
    assert_eq!(common::status(&direct), 0, "{}", common::stderr(&direct));
    let stats = common::stats_json(&direct);
    assert!(stats["events_direct"].as_u64().unwrap() > 0, "{stats}");
    for threads in ["1", "3"] {
        let full = common::evq()
            .current_dir(dir.path())
            .env("EVQ_FULL_PARSE", "1")
            .args(args)
            .args(["--threads", threads])
            .output()
            .unwrap();
        assert_eq!(common::status(&full), 0);
        assert_eq!(
            common::stdout(&direct),
            common::stdout(&full),
            "direct evaluation (2 threads) and full parse ({threads} threads) differ"
        );
    }
    // The first left event pairs with the first right one, written as jaq writes them.
    assert!(common::stdout(&direct).starts_with(
        "{\"left\":{\"k\":\"a\",\"t\":1,\"s\":\"café\"},\"right\":{\"k\":\"a\",\"t\":2,\"r\":\"/\"}}\n"
    ));
}
