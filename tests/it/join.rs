//! The interval join (`--join FILE --key --time --within --join-type`),
//! checked byte for byte against the independent reference implementation
//! in tests/join_reference.py: on the fixtures in fixtures/join/ (see its
//! README), on data its generator makes for many seeds (every join type,
//! several bounds, `--threads 1` and `2`), and by hand; plus the usage and
//! I/O errors and failed events. Tests needing the reference are skipped
//! without python3.
//!
//! Late and failed events are found in the dead letter by their stage
//! (`join#N`); a late one's error mentions "late". Expected error messages
//! are substrings naming the option, so the exact wording may change.

use crate::common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const ORDERS: &str = "fixtures/join/orders.ndjson";
const PAYMENTS: &str = "fixtures/join/payments.ndjson";
const REFERENCE: &str = "tests/join_reference.py";
const JOIN_TYPES: [&str; 4] = ["inner", "left", "right", "full"];
const KEYS: [&str; 4] = ["--key", ".order_id", "--time", ".ts"];

// ---------------------------------------------------------------------------
// Running the reference

fn python_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// Returns early (skipping the test) when python3 is absent.
macro_rules! require_python {
    () => {
        if !python_available() {
            eprintln!("skipping: python3 not found, the join reference cannot run");
            return;
        }
    };
}

/// What the reference says evq must do.
struct Expected {
    stdout: String,
    pairs: u64,
    unmatched_left: u64,
    unmatched_right: u64,
    /// (side, line) of each late event, sorted.
    late: Vec<(String, u64)>,
    /// (side, line) of each failed event, sorted.
    failed: Vec<(String, u64)>,
}

/// Runs `python3 tests/join_reference.py ARGS` in the project root.
fn python(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(REFERENCE)
        .args(args)
        .current_dir(common::root())
        .stdin(Stdio::null())
        .output()
        .expect("run python3")
}

/// The reference's join of `left` (evq's input) and `right` (the --join
/// FILE) with evq's join options `args`.
fn reference(left: &str, right: &str, args: &[&str]) -> Expected {
    let mut all = vec!["join", left, right, "--stats"];
    all.extend_from_slice(args);
    let out = python(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "reference failed on {args:?}: {stderr}"
    );
    let summary: Value = serde_json::from_str(stderr.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("reference summary ({e}): {stderr}"));
    let u = |k: &str| summary[k].as_u64().unwrap();
    let sides = |k: &str| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = summary[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_str().unwrap().to_owned(), e[1].as_u64().unwrap()))
            .collect();
        v.sort();
        v
    };
    Expected {
        stdout: String::from_utf8(out.stdout).unwrap(),
        pairs: u("pairs"),
        unmatched_left: u("unmatched_left"),
        unmatched_right: u("unmatched_right"),
        late: sides("late"),
        failed: sides("failed"),
    }
}

/// Writes the generator's left and right files for `seed` into `dir`.
fn generate(dir: &Path, seed: u64, extra: &[&str]) -> (String, String) {
    let left = dir.join(format!("left-{seed}.ndjson"));
    let right = dir.join(format!("right-{seed}.ndjson"));
    let (l, r) = (
        left.to_str().unwrap().to_owned(),
        right.to_str().unwrap().to_owned(),
    );
    let seed = seed.to_string();
    let mut args = vec!["gen", "--seed", &seed, "--left", &l, "--right", &r];
    args.extend_from_slice(extra);
    let out = python(&args);
    assert!(
        out.status.success(),
        "generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (l, r)
}

// ---------------------------------------------------------------------------
// Running evq

/// evq's run with --stats=json and a dead letter.
struct Run {
    out: Output,
    dead_letter: Vec<Value>,
    dead_letter_text: String,
}

impl Run {
    fn stdout(&self) -> String {
        common::stdout(&self.out)
    }

    fn stderr(&self) -> String {
        common::stderr(&self.out)
    }

    fn status(&self) -> i32 {
        common::status(&self.out)
    }

    /// The stats object of the stage called `name`.
    fn stage(&self, name: &str) -> Value {
        let stats = common::stats_json(&self.out);
        stats["stages"]
            .as_array()
            .unwrap_or_else(|| panic!("no stages in {stats}"))
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name} in {stats}"))
            .clone()
    }

    /// (side, line) of the dead letter's records of stage `stage` that are
    /// late (`late`) or failed (`!late`), sorted; `left`/`right` are the
    /// sources as given to evq.
    fn records(&self, stage: &str, late: bool, left: &str, right: &str) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .dead_letter
            .iter()
            .filter(|r| r["stage"] == stage)
            .filter(|r| {
                let error = r["error"].as_str().unwrap_or("").to_lowercase();
                error.contains("late") == late
            })
            .map(|r| {
                let source = r["source"].as_str().unwrap_or("");
                let side = if source == left {
                    "left"
                } else if source == right {
                    "right"
                } else {
                    panic!("dead letter source {source:?} is neither {left} nor {right}: {r}")
                };
                (side.to_owned(), r["line"].as_u64().unwrap())
            })
            .collect();
        v.sort();
        v
    }
}

/// Runs evq with `--stats=json --dead-letter DL` then `args`, feeding `stdin`.
fn evq(args: &[&str], stdin: &[u8]) -> Run {
    let dir = common::tempdir();
    let dl = dir.path().join("dead.ndjson");
    let mut all: Vec<&str> = vec!["--stats=json", "--dead-letter", dl.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = common::run(&all, stdin);
    let text = std::fs::read_to_string(&dl).unwrap_or_default();
    let dead_letter = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("dead letter line ({e}): {l}")))
        .collect();
    Run {
        out,
        dead_letter,
        dead_letter_text: text,
    }
}

/// `evq [before] --join RIGHT ARGS [after] [extra] LEFT`.
fn join_args<'a>(
    before: &[&'a str],
    right: &'a str,
    args: &[&'a str],
    after: &[&'a str],
    extra: &[&'a str],
    left: &'a str,
) -> Vec<&'a str> {
    let mut all = before.to_vec();
    all.extend_from_slice(&["--join", right]);
    all.extend_from_slice(args);
    all.extend_from_slice(after);
    all.extend_from_slice(extra);
    all.push(left);
    all
}

// ---------------------------------------------------------------------------
// Comparing

/// Asserts `actual` is `expected` byte for byte; the message shows the first
/// lines that differ.
fn assert_output(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut diffs = Vec::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            diffs.push(format!(
                "line {}:\n  expected: {}\n  evq:      {}",
                i + 1,
                x.unwrap_or(&"(none)"),
                y.unwrap_or(&"(none)")
            ));
            if diffs.len() == 5 {
                break;
            }
        }
    }
    panic!(
        "{what}: output differs ({} lines expected, {} from evq{}); first differences:\n{}",
        e.len(),
        a.len(),
        if actual.is_empty() || actual.ends_with('\n') {
            ""
        } else {
            ", no final newline"
        },
        diffs.join("\n")
    );
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Runs the reference and evq (`evq_extra` before LEFT, e.g. --threads)
/// with the same join options and compares output, exit status, late and
/// failed events in the dead letter, and the join stage's counters.
/// Returns evq's run.
fn check(left: &str, right: &str, args: &[&str], evq_extra: &[&str]) -> Run {
    let expected = reference(left, right, args);
    check_against(&expected, left, right, args, evq_extra)
}

fn check_against(
    expected: &Expected,
    left: &str,
    right: &str,
    args: &[&str],
    evq_extra: &[&str],
) -> Run {
    let run = evq(&join_args(&[], right, args, &[], evq_extra, left), b"");
    let what = format!(
        "evq --join {right} {} {} {left}",
        args.join(" "),
        evq_extra.join(" ")
    );
    let stderr = run.stderr();
    assert_output(&what, &expected.stdout, &run.stdout());
    let want = if expected.failed.is_empty() { 0 } else { 3 };
    assert_eq!(run.status(), want, "{what}: exit status; stderr: {stderr}");
    assert_eq!(
        run.records("join#1", true, left, right),
        expected.late,
        "{what}: late events in the dead letter:\n{}",
        run.dead_letter_text
    );
    assert_eq!(
        run.records("join#1", false, left, right),
        expected.failed,
        "{what}: failed events in the dead letter:\n{}",
        run.dead_letter_text
    );
    let s = run.stage("join#1");
    for (key, want) in [
        ("pairs", expected.pairs),
        ("unmatched_left", expected.unmatched_left),
        ("unmatched_right", expected.unmatched_right),
        ("events_late", expected.late.len() as u64),
        ("keys", 0),
    ] {
        assert_eq!(u(&s, key), want, "{what}: {key} in {s}");
    }
    run
}

// ---------------------------------------------------------------------------
// The reference itself

#[test]
fn reference_passes_its_hand_computed_cases() {
    require_python!();
    let out = python(&["selftest"]);
    assert!(
        out.status.success(),
        "tests/join_reference.py selftest:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// The fixtures, by hand

/// `--within 0s..10m --lateness 1m --join-type full` on the fixtures, worked
/// out step by step (fixtures/join/README.md).
const FULL_BY_HAND: &str = r#"{"left":{"order_id":"o1","ts":"2026-11-02T08:00:00Z","user":"ann","total":30},"right":{"order_id":"o1","ts":1793606400,"amount":30}}
{"left":{"order_id":"o2","ts":"2026-11-02T08:00:30Z","user":"bob","total":12},"right":{"order_id":"o2","ts":1793606490,"amount":12}}
{"left":{"order_id":"o3","ts":"2026-11-02T08:01:00Z","user":"cid","total":7},"right":{"order_id":"o3","ts":1793606460,"amount":7}}
{"left":{"order_id":"o5","ts":"2026-11-02T08:01:40Z","user":"eve","total":9},"right":{"order_id":"o5","ts":1793606520,"amount":9}}
{"left":{"order_id":"o1","ts":"2026-11-02T08:00:00Z","user":"ann","total":30},"right":{"order_id":"o1","ts":1793606580,"amount":1}}
{"left":null,"right":{"order_id":null,"ts":1793606470,"amount":5}}
{"left":{"order_id":"o4","ts":"2026-11-02T08:02:00Z","user":"ann","total":44},"right":{"order_id":"o4","ts":1793607000,"amount":44}}
{"left":{"order_id":"o1","ts":"2026-11-02T08:00:00Z","user":"ann","total":30},"right":{"order_id":"o1","ts":1793607000,"amount":31}}
{"left":{"order_id":"o1","ts":"2026-11-02T08:06:00Z","user":"ann","total":31},"right":{"order_id":"o1","ts":1793607000,"amount":31}}
{"left":{"order_id":"o6","ts":"2026-11-02T08:05:00Z","user":"gus","total":60},"right":{"order_id":"o6","ts":1793607300,"amount":60}}
{"left":null,"right":{"order_id":"x9","ts":1793607010,"amount":99}}
{"left":{"order_id":"o9","ts":"2026-11-02T08:12:00Z","user":"jon","total":25},"right":{"order_id":"o9","ts":1793607121,"amount":25}}
{"left":{"order_id":null,"ts":"2026-11-02T08:01:00Z","user":"dee","total":5},"right":null}
{"left":null,"right":{"order_id":"o9","ts":1793607100,"amount":5}}
{"left":{"order_id":"o8","ts":"2026-11-02T08:02:30Z","user":"ivy","total":3},"right":null}
{"left":{"ts":"2026-11-02T08:03:00Z","user":"fay","total":1},"right":null}
{"left":{"order_id":"o10","ts":"2026-11-02T08:20:00Z","user":"kim","total":70},"right":{"order_id":"o10","ts":1793607960,"amount":70}}
{"left":{"order_id":"o7","ts":"2026-11-02T08:10:00Z","user":"hal","total":18},"right":null}
{"left":{"order_id":"o11","ts":"2026-11-02T08:21:00Z","user":"lee","total":11},"right":{"order_id":"o11","ts":1793608260,"amount":11}}
{"left":null,"right":{"order_id":"o11","ts":1793608261,"amount":1}}
"#;

/// The lines of FULL_BY_HAND a join type emits: the same events are
/// released at the same moments, only the unmatched ones of a side that is
/// not outer are left out.
fn by_hand(join_type: &str) -> String {
    FULL_BY_HAND
        .lines()
        .filter(|l| match join_type {
            "inner" => !l.starts_with(r#"{"left":null"#) && !l.ends_with(r#""right":null}"#),
            "left" => !l.starts_with(r#"{"left":null"#),
            "right" => !l.ends_with(r#""right":null}"#),
            _ => true,
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn every_join_type_on_the_fixtures_by_hand() {
    // Covers: several payments per order and orders per key (o1), equal
    // times across sides (o1, o3), both ends of the bound (o1, o6, o11),
    // keys on one side only (o7, o8; x9), null and missing keys, events out
    // of order within the lateness (order o5, payment o9) and a late one.
    for join_type in JOIN_TYPES {
        let args = [
            &KEYS[..],
            &[
                "--within",
                "0s..10m",
                "--lateness",
                "1m",
                "--join-type",
                join_type,
            ],
        ]
        .concat();
        let run = evq(&join_args(&[], PAYMENTS, &args, &[], &[], ORDERS), b"");
        let what = format!("--join-type {join_type}");
        assert_eq!(run.status(), 0, "{what}: {}", run.stderr());
        assert_output(&what, &by_hand(join_type), &run.stdout());
        let s = run.stage("join#1");
        assert_eq!(s["kind"], "join", "{s}");
        assert_eq!(u(&s, "pairs"), 12, "{what}: {s}");
        assert_eq!(
            u(&s, "unmatched_left"),
            4,
            "{what}: counted for every join type: {s}"
        );
        assert_eq!(u(&s, "unmatched_right"), 4, "{what}: {s}");
        assert_eq!(u(&s, "events_late"), 1, "{what}: {s}");
        assert_eq!(u(&s, "keys"), 0, "{what}: nothing is held at the end: {s}");
        assert!(s["state_bytes"].is_u64(), "{what}: {s}");
        assert_eq!(
            run.records("join#1", true, ORDERS, PAYMENTS),
            [("right".to_owned(), 13)],
            "{what}: {}",
            run.dead_letter_text
        );
        let late = &run.dead_letter[0];
        assert_eq!(
            late["raw"], r#"{"order_id":"o3","ts":1793606500,"amount":2}"#,
            "{late}"
        );
    }
}

#[test]
fn equal_times_take_the_left_event_first() {
    let dir = common::tempdir();
    let left = dir.path().join("left.ndjson");
    let right = dir.path().join("right.ndjson");
    let (l, r) = (left.to_str().unwrap(), right.to_str().unwrap());
    std::fs::write(&left, "{\"k\":\"a\",\"t\":50}\n{\"k\":\"b\",\"t\":60}\n").unwrap();
    std::fs::write(&right, "{\"k\":\"a\",\"t\":50}\n{\"k\":\"c\",\"t\":60}\n").unwrap();
    let keys = ["--key", ".k", "--time", ".t"];
    // tR - tL = 0 is inside 0s..0s, outside 1s..2s.
    for (within, pairs) in [("0s..0s", 1), ("2m", 1), ("1s..2s", 0), ("-2s..-1s", 0)] {
        let args = [&keys[..], &["--within", within]].concat();
        let run = evq(&join_args(&[], r, &args, &[], &[], l), b"");
        assert_eq!(run.status(), 0, "{within}: {}", run.stderr());
        let want = if pairs == 1 {
            "{\"left\":{\"k\":\"a\",\"t\":50},\"right\":{\"k\":\"a\",\"t\":50}}\n"
        } else {
            ""
        };
        assert_eq!(run.stdout(), want, "{within}");
    }
    // Unmatched events of equal deadlines come out in the order they were
    // taken: at t 60 (0s..0s: deadline = time) the left b, then the right c.
    let args = [&keys[..], &["--within", "0s..0s", "--join-type", "full"]].concat();
    let run = evq(&join_args(&[], r, &args, &[], &[], l), b"");
    assert_eq!(
        run.stdout(),
        concat!(
            "{\"left\":{\"k\":\"a\",\"t\":50},\"right\":{\"k\":\"a\",\"t\":50}}\n",
            "{\"left\":{\"k\":\"b\",\"t\":60},\"right\":null}\n",
            "{\"left\":null,\"right\":{\"k\":\"c\",\"t\":60}}\n",
        )
    );
}

// ---------------------------------------------------------------------------
// The fixtures against the reference

#[test]
fn fixtures_match_the_reference_for_every_type_bound_and_lateness() {
    require_python!();
    for join_type in JOIN_TYPES {
        for within in ["0s..10m", "-5m..-1m", "-2m..3m", "10m"] {
            for lateness in ["0s", "1m"] {
                let args = [
                    &KEYS[..],
                    &[
                        "--within",
                        within,
                        "--lateness",
                        lateness,
                        "--join-type",
                        join_type,
                    ],
                ]
                .concat();
                check(ORDERS, PAYMENTS, &args, &[]);
            }
        }
    }
}

#[test]
fn late_events_are_dead_lettered_and_counted_not_failed() {
    require_python!();
    // Lateness 0: order line 11 (7.5 minutes behind), payments 12 and 13.
    let args = [&KEYS[..], &["--within", "0s..10m", "--join-type", "full"]].concat();
    let run = check(ORDERS, PAYMENTS, &args, &[]);
    let late = run.records("join#1", true, ORDERS, PAYMENTS);
    assert_eq!(
        late,
        [
            ("left".to_owned(), 11),
            ("right".to_owned(), 12),
            ("right".to_owned(), 13)
        ],
        "{}",
        run.dead_letter_text
    );
    for r in &run.dead_letter {
        let source = r["source"].as_str().unwrap();
        let line = r["line"].as_u64().unwrap() as usize;
        let text = std::fs::read_to_string(common::root().join(source)).unwrap();
        assert_eq!(r["raw"], text.lines().nth(line - 1).unwrap(), "{r}");
    }
    assert_eq!(run.status(), 0, "late is not failed: {}", run.stderr());
    // With --lateness 1m only payment 13 is late.
    let args = [&KEYS[..], &["--within", "0s..10m", "--lateness", "1m"]].concat();
    let run = check(ORDERS, PAYMENTS, &args, &[]);
    assert_eq!(
        run.records("join#1", true, ORDERS, PAYMENTS),
        [("right".to_owned(), 13)]
    );
}

#[test]
fn asymmetric_and_negative_bounds() {
    require_python!();
    // -5m..-1m: the payment 1 to 5 minutes before the order; written as
    // separate arguments, as a user would (a value starting with '-').
    for within in ["0s..10m", "-5m..-1m", "-2m..3m", "-10m..-10m", "250ms..1h"] {
        for join_type in ["inner", "full"] {
            let args = [
                &KEYS[..],
                &[
                    "--within",
                    within,
                    "--lateness",
                    "2m",
                    "--join-type",
                    join_type,
                ],
            ]
            .concat();
            check(ORDERS, PAYMENTS, &args, &[]);
        }
    }
}

#[test]
fn a_compressed_join_file_reads_like_the_plain_one() {
    require_python!();
    use std::io::Write;
    let dir = common::tempdir();
    let plain = common::read(&common::root().join(PAYMENTS));
    let gz = dir.path().join("payments.ndjson.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&plain).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let zst = dir.path().join("payments.ndjson.zst");
    std::fs::write(&zst, zstd::encode_all(&plain[..], 3).unwrap()).unwrap();
    let args = [&KEYS[..], &["--within", "0s..10m", "--join-type", "full"]].concat();
    // The reference reads the gzip file itself.
    let gz_run = check(ORDERS, gz.to_str().unwrap(), &args, &[]);
    let plain_run = evq(&join_args(&[], PAYMENTS, &args, &[], &[], ORDERS), b"");
    let zst_run = evq(
        &join_args(&[], zst.to_str().unwrap(), &args, &[], &[], ORDERS),
        b"",
    );
    assert_eq!(zst_run.status(), 0, "{}", zst_run.stderr());
    assert_output("gzip", &plain_run.stdout(), &gz_run.stdout());
    assert_output("zstd", &plain_run.stdout(), &zst_run.stdout());
    // Late lines are numbered in the decompressed file.
    assert_eq!(
        zst_run.records("join#1", true, ORDERS, zst.to_str().unwrap()),
        plain_run.records("join#1", true, ORDERS, PAYMENTS)
    );
}

#[test]
fn left_events_from_standard_input_or_several_files() {
    require_python!();
    let args = [&KEYS[..], &["--within", "-2m..3m", "--join-type", "full"]].concat();
    let expected = reference(ORDERS, PAYMENTS, &args);
    let orders = common::read(&common::root().join(ORDERS));
    let mut all = vec!["--join", PAYMENTS];
    all.extend_from_slice(&args);
    let run = evq(&all, &orders);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_output("stdin", &expected.stdout, &run.stdout());
    assert_eq!(run.records("join#1", true, "-", PAYMENTS), expected.late);

    // Sequence A runs on through the files, in order.
    let dir = common::tempdir();
    let text = String::from_utf8(orders).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first = dir.path().join("orders-1.ndjson");
    let second = dir.path().join("orders-2.ndjson");
    std::fs::write(&first, lines[..7].join("\n") + "\n").unwrap();
    std::fs::write(&second, lines[7..].join("\n") + "\n").unwrap();
    all.push(first.to_str().unwrap());
    all.push(second.to_str().unwrap());
    let run = evq(&all, b"");
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_output("two left files", &expected.stdout, &run.stdout());
}

#[test]
fn stages_before_the_join_see_left_events_only_and_stages_after_see_pairs() {
    require_python!();
    let dir = common::tempdir();
    // `-f '.total > 5'` before --join drops orders; the reference gets the
    // orders with those lines blanked (blank lines are counted, so line
    // numbers stay). Payments of 5 or less are not filtered: a filter before
    // the join is not applied to FILE.
    let orders = String::from_utf8(common::read(&common::root().join(ORDERS))).unwrap();
    let kept: String = orders
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["total"].as_u64().unwrap() > 5 {
                format!("{l}\n")
            } else {
                "\n".to_owned()
            }
        })
        .collect();
    let filtered = dir.path().join("orders-filtered.ndjson");
    std::fs::write(&filtered, &kept).unwrap();
    let args = [
        &KEYS[..],
        &[
            "--within",
            "0s..10m",
            "--lateness",
            "1m",
            "--join-type",
            "full",
        ],
    ]
    .concat();
    let expected = reference(filtered.to_str().unwrap(), PAYMENTS, &args);
    assert!(
        expected.stdout.contains(r#""amount":1}"#),
        "payments under 5 stay"
    );
    let before = ["-f", ".total > 5"];
    let run = evq(&join_args(&before, PAYMENTS, &args, &[], &[], ORDERS), b"");
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_output("-f before --join", &expected.stdout, &run.stdout());
    let s = run.stage("join#2");
    assert_eq!(u(&s, "pairs"), expected.pairs, "{s}");
    assert_eq!(u(&s, "unmatched_left"), expected.unmatched_left, "{s}");
    assert_eq!(u(&s, "unmatched_right"), expected.unmatched_right, "{s}");
    assert_eq!(run.records("join#2", true, ORDERS, PAYMENTS), expected.late);

    // A map after the join sees each output event.
    let after = ["-m", "{o: .left.order_id, p: .right.amount}"];
    let mapped: String = expected
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!(
                "{{\"o\":{},\"p\":{}}}\n",
                v["left"]["order_id"], v["right"]["amount"]
            )
        })
        .collect();
    let run = evq(
        &join_args(&before, PAYMENTS, &args, &after, &[], ORDERS),
        b"",
    );
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_output("-f before, -m after", &mapped, &run.stdout());
    let names: Vec<String> = common::stats_json(&run.out)["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["filter#1", "join#2", "map#3"]);
}

// ---------------------------------------------------------------------------
// Generated data

/// Per seed: the generator's options and the join's lateness. Seeds cycle
/// through lateness 0s/30s/2m (disorder up to it, never late), times in
/// several formats (odd seeds), other key and time paths on the right
/// (every fourth), and lateness 0 on disordered data (many late events).
fn seed_setup(seed: u64) -> (Vec<&'static str>, Vec<&'static str>) {
    let lateness = ["0s", "30s", "2m"][(seed % 3) as usize];
    let mut gen_args = vec![
        "--left-events",
        "220",
        "--right-events",
        "240",
        "--keys",
        "8",
        "--late-events",
        "4",
        "--lateness",
        lateness,
    ];
    let mut join = vec!["--key", ".order_id", "--time", ".ts"];
    if seed % 2 == 1 {
        gen_args.push("--mixed-times");
    }
    if seed % 4 == 3 {
        gen_args.extend_from_slice(&["--right-key", ".data.id", "--right-time", ".at"]);
        join.extend_from_slice(&["--join-key", ".data.id", "--join-time", ".at"]);
    }
    let run_lateness = if seed % 5 == 4 { "0s" } else { lateness };
    join.extend_from_slice(&["--lateness", run_lateness]);
    (gen_args, join)
}

const SEEDS: u64 = 5;
const BOUNDS: [&str; 4] = ["0s..10m", "-5m..-1m", "-2m..3m", "1m"];

/// Every seed and bound with `join_type`, evq with 1 and 2 threads.
fn generated(join_type: &str) {
    let dir = common::tempdir();
    let mut late_seen = 0;
    for seed in 0..SEEDS {
        let (gen_args, join) = seed_setup(seed);
        let (left, right) = generate(dir.path(), seed, &gen_args);
        for within in BOUNDS {
            let mut args = join.clone();
            args.extend_from_slice(&["--within", within, "--join-type", join_type]);
            let expected = reference(&left, &right, &args);
            assert!(expected.pairs > 0, "seed {seed}: the data pairs");
            late_seen += expected.late.len();
            for threads in ["1", "2"] {
                check_against(&expected, &left, &right, &args, &["--threads", threads]);
            }
        }
    }
    assert!(late_seen > 0, "the seeds produce late events");
}

#[test]
fn generated_data_inner() {
    require_python!();
    generated("inner");
}

#[test]
fn generated_data_left() {
    require_python!();
    generated("left");
}

#[test]
fn generated_data_right() {
    require_python!();
    generated("right");
}

#[test]
fn generated_data_full() {
    require_python!();
    generated("full");
}

#[test]
fn generated_data_spanning_several_batches() {
    require_python!();
    // About 600 KB a side (10k events): more than one 512 KiB read, so the two sides'
    // events meet across batch boundaries.
    let dir = common::tempdir();
    let (left, right) = generate(
        dir.path(),
        100,
        &[
            "--left-events",
            "10000",
            "--right-events",
            "10250",
            "--keys",
            "300",
            "--lateness",
            "30s",
            "--late-events",
            "30",
            "--mixed-times",
        ],
    );
    assert!(std::fs::metadata(&left).unwrap().len() > 512 * 1024);
    assert!(std::fs::metadata(&right).unwrap().len() > 512 * 1024);
    let args = [
        &KEYS[..],
        &[
            "--within",
            "-2m..10m",
            "--lateness",
            "30s",
            "--join-type",
            "full",
        ],
    ]
    .concat();
    let expected = reference(&left, &right, &args);
    assert!(expected.late.len() > 10, "{:?}", expected.late);
    for threads in ["1", "2"] {
        check_against(&expected, &left, &right, &args, &["--threads", threads]);
    }
}

// ---------------------------------------------------------------------------
// Failed events, usage and I/O errors

#[test]
fn failed_key_or_time_on_either_side_is_a_failed_event_of_the_join() {
    require_python!();
    let dir = common::tempdir();
    let left = dir.path().join("left.ndjson");
    let right = dir.path().join("right.ndjson");
    let (l, r) = (left.to_str().unwrap(), right.to_str().unwrap());
    std::fs::write(
        &left,
        concat!(
            "{\"order_id\":\"o1\",\"ts\":\"2026-11-02T08:00:00Z\"}\n",
            "{\"order_id\":\"o2\",\"ts\":\"soon\"}\n",
            "{\"order_id\":\"o3\",\"ts\":\"2026-11-02T08:00:10Z\"}\n",
            "{\"order_id\":\"o4\"}\n",
        ),
    )
    .unwrap();
    std::fs::write(
        &right,
        concat!(
            "{\"order_id\":\"o1\",\"ts\":1793606430}\n",
            "[1,2]\n",
            "{\"order_id\":\"o3\",\"ts\":1793606440}\n",
            "{\"order_id\":\"o4\",\"ts\":true}\n",
        ),
    )
    .unwrap();
    let args = [&KEYS[..], &["--within", "0s..10m", "--join-type", "full"]].concat();
    let expected = reference(l, r, &args);
    assert_eq!(
        expected.failed,
        [
            ("left".to_owned(), 2),
            ("left".to_owned(), 4),
            ("right".to_owned(), 2),
            ("right".to_owned(), 4)
        ]
    );
    let run = check_against(&expected, l, r, &args, &[]);
    assert_eq!(run.status(), 3);
    let stderr = run.stderr();
    for (file, line) in [(l, 2), (l, 4), (r, 2), (r, 4)] {
        assert!(
            stderr.contains(&format!("{file}:{line}: join#1: ")),
            "{file}:{line} reported: {stderr}"
        );
    }
    let s = run.stage("join#1");
    assert_eq!(u(&s, "events_failed"), 4, "{s}");
}

#[test]
fn a_line_of_the_join_file_that_is_not_json_is_reported() {
    let dir = common::tempdir();
    let right = dir.path().join("right.ndjson");
    let r = right.to_str().unwrap();
    std::fs::write(
        &right,
        "{\"order_id\":\"o1\",\"ts\":1793606430}\nnot json\n",
    )
    .unwrap();
    let args = [&KEYS[..], &["--within", "0s..10m"]].concat();
    let run = evq(&join_args(&[], r, &args, &[], &[], ORDERS), b"");
    assert_eq!(run.status(), 3, "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!("{r}:2: ")),
        "{}",
        run.stderr()
    );
    assert!(
        run.dead_letter
            .iter()
            .any(|d| d["source"] == r && d["line"] == 2 && d["raw"] == "not json"),
        "{}",
        run.dead_letter_text
    );
    assert!(run.stdout().starts_with(
        r#"{"left":{"order_id":"o1","ts":"2026-11-02T08:00:00Z","user":"ann","total":30},"right":{"order_id":"o1","ts":1793606430}}"#
    ));
}

fn assert_usage_error(args: &[&str], option: &str) {
    let out = common::run(args, b"");
    let stderr = common::stderr(&out);
    assert_eq!(common::status(&out), 2, "{args:?}: {stderr}");
    assert_eq!(common::stdout(&out), "", "{args:?}");
    assert!(
        stderr.contains(option),
        "{args:?}: stderr names {option}: {stderr}"
    );
}

#[test]
fn bad_within_is_a_usage_error() {
    for within in [
        "10m..0s",
        "-1m..-2m",
        "1s..999ms",
        "abc",
        "10",
        "10x",
        "5m..",
        "..5m",
        "1m..2m..3m",
        "5 minutes",
        "",
    ] {
        assert_usage_error(
            &[
                "--join",
                PAYMENTS,
                "--key",
                ".order_id",
                "--time",
                ".ts",
                &format!("--within={within}"),
                ORDERS,
            ],
            "--within",
        );
    }
}

#[test]
fn bad_join_type_is_a_usage_error() {
    for join_type in ["outer", "cross", "left,right", ""] {
        assert_usage_error(
            &[
                "--join",
                PAYMENTS,
                "--key",
                ".order_id",
                "--time",
                ".ts",
                "--within",
                "1m",
                &format!("--join-type={join_type}"),
                ORDERS,
            ],
            "--join-type",
        );
    }
}

#[test]
fn join_needs_key_time_and_within() {
    let key = ["--key", ".order_id"];
    let time = ["--time", ".ts"];
    let within = ["--within", "1m"];
    for (args, option) in [
        ([&time[..], &within[..]].concat(), "--key"),
        ([&key[..], &within[..]].concat(), "--time"),
        ([&key[..], &time[..]].concat(), "--within"),
    ] {
        let all = [&["--join", PAYMENTS][..], &args, &[ORDERS]].concat();
        assert_usage_error(&all, option);
    }
}

#[test]
fn join_options_without_join_are_usage_errors() {
    for (option, value) in [
        ("--join-key", ".order_id"),
        ("--join-time", ".ts"),
        ("--within", "10m"),
        ("--join-type", "left"),
    ] {
        assert_usage_error(&[option, value, ORDERS], option);
        // With --key and --time too, the first thing said may be that
        // --key needs a stage to go with, --join among them.
        assert_usage_error(
            &["--key", ".order_id", "--time", ".ts", option, value, ORDERS],
            "--join",
        );
    }
}

#[test]
fn an_unreadable_join_file_is_an_io_error_naming_it() {
    let missing = "fixtures/join/no-such-file.ndjson";
    let out = common::run(
        &[
            "--join",
            missing,
            "--key",
            ".order_id",
            "--time",
            ".ts",
            "--within",
            "10m",
            ORDERS,
        ],
        b"",
    );
    let stderr = common::stderr(&out);
    assert_eq!(common::status(&out), 4, "{stderr}");
    assert!(stderr.contains(missing), "{stderr}");
}
