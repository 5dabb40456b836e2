//! `--threads N`: output, dead letter, failure reports, stats and exit status
//! are the same for every N (only the timings differ).

use crate::common;

use std::fmt::Write as _;

/// ~3 MB of events over many batches, with bad lines and events that fail in a stage.
fn input() -> String {
    let mut s = String::new();
    for i in 0..40_000u32 {
        match i % 997 {
            13 => s.push_str("{\"truncated\": \n"),
            14 => s.push('\n'),
            15 => s.push_str("{\"a\":1} {\"b\":2}\n"),
            _ => {
                let amount = if i % 7 == 0 {
                    format!("\"{i}\"")
                } else {
                    format!("{}.{:02}", i % 300, i % 100)
                };
                writeln!(s, r#"{{"id":{i},"level":"{}","amount":{amount},"tags":["a","b{}"],"msg":"caf\u00e9 {i}"}}"#,
                    ["info", "warn", "error"][i as usize % 3], i % 5).unwrap();
            }
        }
    }
    s
}

struct Run {
    status: i32,
    stdout: Vec<u8>,
    reports: String,
    stats: serde_json::Value,
    dead_letter: Vec<u8>,
}

fn run(threads: &str, args: &[&str], input_path: &str) -> Run {
    let dir = common::tempdir();
    let dl = dir.path().join("dl.ndjson");
    let mut all = vec![
        "--threads",
        threads,
        "--stats=json",
        "--dead-letter",
        dl.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all.push(input_path);
    let out = common::run(&all, b"");
    let stderr = common::stderr(&out);
    let mut stats = common::stats_json(&out);
    // Timings are the one thing allowed to differ.
    for key in ["time", "elapsed_ms", "events_per_sec"] {
        stats.as_object_mut().unwrap().remove(key);
    }
    for stage in stats["stages"].as_array_mut().unwrap() {
        stage.as_object_mut().unwrap().remove("processing_time_ms");
    }
    let reports = stderr
        .lines()
        .filter(|l| !l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n");
    Run {
        status: common::status(&out),
        stdout: out.stdout,
        reports,
        stats,
        dead_letter: common::read(&dl),
    }
}

fn same_for_every_thread_count(args: &[&str]) {
    let dir = common::tempdir();
    let path = dir.path().join("in.ndjson");
    std::fs::write(&path, input()).unwrap();
    let path = path.to_str().unwrap();
    let one = run("1", args, path);
    assert!(one.stats["events_ingested"].as_u64().unwrap() > 0);
    for threads in ["2", "3", "8"] {
        let other = run(threads, args, path);
        assert_eq!(
            other.status, one.status,
            "{args:?} -j{threads}: exit status"
        );
        assert!(
            other.stdout == one.stdout,
            "{args:?} -j{threads}: stdout differs"
        );
        assert_eq!(other.reports, one.reports, "{args:?} -j{threads}: reports");
        assert_eq!(other.stats, one.stats, "{args:?} -j{threads}: stats");
        assert!(
            other.dead_letter == one.dead_letter,
            "{args:?} -j{threads}: dead letter differs"
        );
    }
}

#[test]
fn passthrough_is_the_same_for_every_thread_count() {
    same_for_every_thread_count(&[]);
}

#[test]
fn stages_with_failures_and_fan_out_are_the_same_for_every_thread_count() {
    same_for_every_thread_count(&[
        "-f",
        ".level != \"warn\"",
        "-m",
        ".tags[] as $t | {id, $t, x: (.amount + 1)}",
        "-f",
        ".id % 3 == 0",
    ]);
}

#[test]
fn abort_stops_at_the_same_event_for_every_thread_count() {
    let dir = common::tempdir();
    let path = dir.path().join("in.ndjson");
    // The first failure is far into the input, in a later batch.
    let mut text = String::new();
    for i in 0..30_000 {
        writeln!(text, "{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(40)).unwrap();
    }
    text.push_str("{\"i\":\"bad\"}\n");
    for i in 0..30_000 {
        writeln!(text, "{{\"i\":{i}}}").unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap();
    let args = ["--on-error", "abort", "-m", ".i + 1"];
    let one = run("1", &args, path);
    assert_eq!(one.status, 3);
    assert_eq!(one.stdout.iter().filter(|b| **b == b'\n').count(), 30_000);
    for threads in ["2", "5"] {
        let other = run(threads, &args, path);
        assert_eq!(other.status, one.status);
        assert!(other.stdout == one.stdout, "-j{threads}: stdout differs");
        assert_eq!(other.stats, one.stats, "-j{threads}: stats");
        assert!(other.dead_letter == one.dead_letter);
    }
}

#[test]
fn threads_must_be_a_positive_number() {
    for bad in ["0", "many", "70000"] {
        let out = common::run(&["--threads", bad], b"");
        assert_eq!(common::status(&out), 2, "--threads {bad}");
        assert!(
            common::stderr(&out).contains("--threads"),
            "{}",
            common::stderr(&out)
        );
    }
}

#[test]
fn window_results_are_the_same_for_every_thread_count() {
    let dir = common::tempdir();
    let path = dir.path().join("in.ndjson");
    let mut text = String::new();
    for i in 0..20_000u64 {
        // Out of order within 5 s, a few late ones, a few bad times.
        let t =
            1_762_070_400_000 + i * 37 - (i % 7) * 700 - if i % 1000 == 999 { 60_000 } else { 0 };
        let t = if i % 4999 == 0 {
            "\"bad\"".to_string()
        } else {
            t.to_string()
        };
        writeln!(text, r#"{{"ts":{t},"k":"k{}","v":{}}}"#, i % 13, i % 101).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap();
    let args = [
        "--window",
        "sliding:10s/5s",
        "--time",
        ".ts",
        "--key",
        ".k",
        "--lateness",
        "5s",
        "--agg",
        "n=count",
        "--agg",
        "s=sum(.v)",
        "--agg",
        "p=p90(.v)",
        "-f",
        ".n > 1",
    ];
    let one = run("1", &args, path);
    assert_eq!(one.status, 3, "bad times fail");
    assert!(one.stats["stages"][0]["events_late"].as_u64().unwrap() > 0);
    for threads in ["2", "4"] {
        let other = run(threads, &args, path);
        assert_eq!(other.status, one.status);
        assert!(other.stdout == one.stdout, "-j{threads}: stdout differs");
        assert_eq!(other.reports, one.reports);
        assert_eq!(other.stats, one.stats, "-j{threads}: stats");
        assert!(other.dead_letter == one.dead_letter);
    }
}
