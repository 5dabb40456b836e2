//! The window stage (`--window`, `--key`, `--time`, `--agg`, `--lateness`) and
//! group-by (`--agg` without `--window`), checked against the independent
//! reference implementation in tests/window_reference.py on the fixtures in
//! fixtures/windows/ (see its README), plus hand-computed expectations.
//!
//! Results are compared as JSON values, key order included; floats within a
//! relative 1e-9 (summation order may differ), integers exactly (an integer is
//! never equal to a float: sum of integers must be an integer, avg a float);
//! percentiles within the exact values at ranks floor/ceil(q*(n-1)) widened by
//! 1% (DDSketch). Tests needing the reference are skipped without python3.

use crate::common;

use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};

const REQUESTS: &str = "fixtures/windows/requests.ndjson";
const OUT_OF_ORDER: &str = "fixtures/windows/out_of_order.ndjson";
const SESSIONS: &str = "fixtures/windows/sessions.ndjson";
const PURCHASES: &str = "fixtures/windows/purchases.ndjson";
const BAD_VALUES: &str = "fixtures/windows/bad_values.ndjson";
const REFERENCE: &str = "tests/window_reference.py";

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
            eprintln!("skipping: python3 not found, the window reference cannot run");
            return;
        }
    };
}

struct Reference {
    /// Result lines (percentiles as {"$percentile": [lo, hi]}).
    lines: Vec<String>,
    late: Vec<u64>,
    failed: Vec<u64>,
    aggregated: u64,
    /// Per collect aggregate that dropped values: in how many results.
    truncated: Vec<(String, u64)>,
}

/// Runs tests/window_reference.py with `args` on `input`.
fn reference(args: &[&str], input: &[u8]) -> Reference {
    let mut cmd = Command::new("python3");
    cmd.arg(REFERENCE)
        .arg("--bounds")
        .args(args)
        .current_dir(common::root());
    let out = common::feed(cmd, input);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "reference failed on {args:?}: {stderr}"
    );
    let summary: Value = serde_json::from_str(stderr.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("reference summary ({e}): {stderr}"));
    let nums = |k: &str| -> Vec<u64> {
        summary[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    Reference {
        lines: String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        late: nums("late"),
        failed: nums("failed"),
        aggregated: summary["aggregated"].as_u64().unwrap(),
        truncated: summary["truncated"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, n)| (name.clone(), n.as_u64().unwrap()))
            .collect(),
    }
}

/// The note evq prints at the end when `late` events came too late.
fn late_note(late: usize) -> String {
    if late == 1 {
        "evq: 1 event came too late for its window and was not counted; see --lateness\n".into()
    } else {
        format!(
            "evq: {late} events came too late for their windows and were not counted; see --lateness\n"
        )
    }
}

/// The note evq prints at the end when `--agg AGG`, a collect keeping
/// `limit` values, dropped values in `n` results (`what`: window or group).
fn collect_note(agg: &str, limit: u64, n: u64, what: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!(
        "evq: --agg '{agg}': kept the first {limit} values and dropped the rest in {n} {what}{plural}; raise the limit with collect(EXPR; LIMIT)\n"
    )
}

fn fixture_bytes(path: &str) -> Vec<u8> {
    common::read(&common::root().join(path))
}

/// evq with `args` then `file`, plus --stats=json and a dead letter.
struct Run {
    out: Output,
    dead_letter: Vec<Value>,
    dead_letter_text: String,
}

fn evq_with_dl(args: &[&str], file: Option<&str>, stdin: &[u8]) -> Run {
    let dir = common::tempdir();
    let dl = dir.path().join("dead.ndjson");
    let mut all: Vec<&str> = vec!["--stats=json", "--dead-letter", dl.to_str().unwrap()];
    all.extend_from_slice(args);
    if let Some(f) = file {
        all.push(f);
    }
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

/// The stdout lines of evq, without the stats (stats go to stderr).
fn result_lines(out: &Output) -> Vec<String> {
    common::stdout(out).lines().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// Comparing results

/// The top-level keys of a JSON object, in the order written.
struct TopKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<TopKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(TopKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fn top_keys(line: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<TopKeys>(line)
        .map(|k| k.0)
        .map_err(|e| format!("not a JSON object ({e})"))
}

fn close(e: f64, a: f64) -> bool {
    (e - a).abs() <= 1e-9 * e.abs().max(a.abs()).max(1.0)
}

/// `actual` matches `expected`: see the module comment. Err says where not.
fn same(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), _) if e.len() == 1 && e.contains_key("$percentile") => {
            let b = e["$percentile"].as_array().unwrap();
            let (lo, hi) = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
            let lo = (lo * 0.99).min(lo * 1.01) - 1e-9;
            let hi = (hi * 0.99).max(hi * 1.01) + 1e-9;
            match actual {
                Value::Number(n) if n.is_f64() => {
                    let a = n.as_f64().unwrap();
                    if lo <= a && a <= hi {
                        Ok(())
                    } else {
                        Err(format!("{at}: percentile {a} outside [{lo}, {hi}]"))
                    }
                }
                _ => Err(format!(
                    "{at}: expected a float percentile in [{lo}, {hi}], got {actual}"
                )),
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            if e.is_f64() != a.is_f64() {
                return Err(format!(
                    "{at}: expected {} {e}, got {} {a}",
                    if e.is_f64() { "float" } else { "integer" },
                    if a.is_f64() { "float" } else { "integer" }
                ));
            }
            let ok = if e.is_f64() {
                close(e.as_f64().unwrap(), a.as_f64().unwrap())
            } else {
                e == a
            };
            if ok {
                Ok(())
            } else {
                Err(format!("{at}: expected {e}, got {a}"))
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{at}: expected {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                same(x, y, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<_> = e.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            if ek != ak {
                return Err(format!("{at}: keys {ek:?} != {ak:?}"));
            }
            for (k, x) in e {
                same(x, &a[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at}: expected {expected}, got {actual}")),
    }
}

fn line_matches(expected: &str, actual: &str) -> Result<(), String> {
    let ek = top_keys(expected).map_err(|e| format!("reference: {e}"))?;
    let ak = top_keys(actual)?;
    if ek != ak {
        return Err(format!("key order {ak:?}, expected {ek:?}"));
    }
    let e: Value = serde_json::from_str(expected).unwrap();
    let a: Value = serde_json::from_str(actual).unwrap();
    same(&e, &a, "")
}

/// Asserts evq's result lines match the reference's, one by one, in order;
/// the message lists every difference.
fn assert_results(what: &str, expected: &[String], actual: &[String]) {
    let mut diffs = Vec::new();
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) => {
                if let Err(why) = line_matches(e, a) {
                    diffs.push(format!(
                        "line {}: {why}\n  expected: {e}\n  evq:      {a}",
                        i + 1
                    ));
                }
            }
            (Some(e), None) => diffs.push(format!("line {}: missing\n  expected: {e}", i + 1)),
            (None, Some(a)) => diffs.push(format!("line {}: extra\n  evq:      {a}", i + 1)),
            (None, None) => unreachable!(),
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} expected lines differ ({} from evq):\n{}",
        diffs.len(),
        expected.len(),
        actual.len(),
        diffs.join("\n")
    );
}

/// The stage called `name` in evq's --stats=json.
fn stage<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("no stages in {stats}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {stats}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Runs evq and the reference on a fixture with the same window arguments
/// (`ref_extra` goes to the reference only, e.g. --group), compares the
/// results and the late/failed lines, checks the stage's stats, and returns
/// evq's run.
fn check_fixture(args: &[&str], ref_extra: &[&str], file: &str, stage_name: &str) -> Run {
    let input = fixture_bytes(file);
    let mut ref_args = ref_extra.to_vec();
    ref_args.extend_from_slice(args);
    let expected = reference(&ref_args, &input);
    let run = evq_with_dl(args, Some(file), b"");
    let what = format!("evq {} {file}", args.join(" "));
    let stderr = common::stderr(&run.out);
    assert_results(&what, &expected.lines, &result_lines(&run.out));
    assert!(
        !expected.lines.is_empty(),
        "{what}: the fixture yields results"
    );
    let status = common::status(&run.out);
    let want_status = if expected.failed.is_empty() { 0 } else { 3 };
    assert_eq!(status, want_status, "{what}: exit status; stderr: {stderr}");
    let late_lines: Vec<u64> = run
        .dead_letter
        .iter()
        .filter(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("late event"))
        })
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        late_lines, expected.late,
        "{what}: late lines in the dead letter"
    );
    let stats = common::stats_json(&run.out);
    let s = stage(&stats, stage_name);
    assert_eq!(
        u(s, "events_late"),
        expected.late.len() as u64,
        "{what}: {s}"
    );
    assert_eq!(
        u(s, "events_failed"),
        expected.failed.len() as u64,
        "{what}: {s}"
    );
    assert_eq!(
        u(s, "events_in"),
        expected.aggregated + expected.late.len() as u64 + expected.failed.len() as u64,
        "{what}: events_in = aggregated + late + failed: {s}"
    );
    if let Some(agg) = s.get("events_aggregated") {
        assert_eq!(agg.as_u64(), Some(expected.aggregated), "{what}: {s}");
    }
    // Late events and truncated collects are said once, at the end (before
    // the stats line); each truncated collect names itself and its count.
    let late_said = stderr.contains("came too late");
    assert_eq!(late_said, !expected.late.is_empty(), "{what}: {stderr}");
    if late_said {
        assert!(
            stderr.contains(&late_note(expected.late.len())),
            "{what}: {stderr}"
        );
    }
    let dropped: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("dropped the rest"))
        .collect();
    assert_eq!(dropped.len(), expected.truncated.len(), "{what}: {stderr}");
    let unit = if args.contains(&"--window") {
        "window"
    } else {
        "group"
    };
    for (name, n) in &expected.truncated {
        let plural = if *n == 1 { "" } else { "s" };
        assert!(
            dropped
                .iter()
                .any(|l| l.starts_with(&format!("evq: --agg '{name}="))
                    && l.contains(&format!(" in {n} {unit}{plural};"))),
            "{what}: {name} truncated in {n}: {stderr}"
        );
    }
    if expected.truncated.len() <= 1 {
        let n = expected.truncated.first().map_or(0, |(_, n)| *n);
        assert_eq!(u(s, "collect_truncated"), n, "{what}: {s}");
    }
    assert_eq!(
        u(s, "events_out"),
        expected.lines.len() as u64,
        "{what}: {s}"
    );
    assert_eq!(
        u(s, "windows_emitted"),
        expected.lines.len() as u64,
        "{what}: {s}"
    );
    run
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Milliseconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.mmm]Z" (as evq writes).
fn utc_ms(text: &str) -> i64 {
    let b = text.as_bytes();
    assert!(
        text.ends_with('Z') && (b.len() == 20 || b.len() == 24),
        "RFC 3339 UTC: {text}"
    );
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let ms = if b.len() == 24 {
        assert_eq!(b[19], b'.', "{text}");
        let v = n(20..23);
        assert_ne!(v, 0, "whole seconds are written without a fraction: {text}");
        v
    } else {
        0
    };
    let days = common::days_from_civil(y, m, d);
    ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms
}

// ---------------------------------------------------------------------------
// Tumbling windows

#[test]
fn utc_ms_helper_is_right() {
    assert_eq!(utc_ms("1970-01-01T00:00:00Z"), 0);
    assert_eq!(utc_ms("2026-11-02T08:00:00Z"), 1_793_606_400_000);
    assert_eq!(utc_ms("2026-11-02T08:00:00.250Z"), 1_793_606_400_250);
}

#[test]
fn tumbling_per_service_matches_the_reference() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "tumbling:1m",
            "--time",
            ".ts",
            "--key",
            ".service",
            "--agg",
            "n=count",
            "--agg",
            "total=sum(.latency_ms)",
            "--agg",
            "mean=avg(.latency_ms)",
            "--agg",
            "lo=min(.latency_ms)",
            "--agg",
            "hi=max(.latency_ms)",
            "--agg",
            "first_path=first(.path)",
            "--agg",
            "last_path=last(.path)",
            "--agg",
            "statuses=count_distinct(.status)",
            "--agg",
            "p50=p50(.latency_ms)",
            "--agg",
            "p99=p99(.latency_ms)",
        ],
        &[],
        REQUESTS,
        "window#1",
    );
    assert_eq!(common::status(&run.out), 0);
    // Independent of the reference: every event is counted once, windows are
    // whole minutes, and the first and last minute are the right ones.
    let lines = result_lines(&run.out);
    let values: Vec<Value> = lines.iter().map(|l| parse(l)).collect();
    let total: u64 = values.iter().map(|v| v["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 89);
    for v in &values {
        let (s, e) = (
            utc_ms(v["window_start"].as_str().unwrap()),
            utc_ms(v["window_end"].as_str().unwrap()),
        );
        assert_eq!(s % 60_000, 0, "{v}");
        assert_eq!(e - s, 60_000, "{v}");
    }
    assert_eq!(values[0]["window_start"], "2026-11-02T08:10:00Z");
    assert_eq!(values.last().unwrap()["window_end"], "2026-11-02T08:20:00Z");
    // No failure, nothing late: stderr holds only the stats line.
    assert_eq!(common::stderr(&run.out).lines().count(), 1);
}

/// Events an aggregate cannot take (a non-number for sum, avg or a
/// percentile; a line that is no object) fail, before lateness is decided,
/// in windows and group-bys alike, and the rest are aggregated as the
/// reference says.
#[test]
fn events_the_aggregates_cannot_take_fail_as_the_reference_says() {
    require_python!();
    let aggs = [
        "--agg",
        "n=count",
        "--agg",
        "s=sum(.v)",
        "--agg",
        "m=avg(.v)",
        "--agg",
        "p=p50(.v)",
        "--agg",
        "c=collect(.w)",
        "--agg",
        "hi=max(.w)",
    ];
    let window = [
        &["--window", "tumbling:1m", "--time", ".ts", "--key", ".k"][..],
        &aggs,
    ]
    .concat();
    let grouped = [&["--key", ".k"][..], &aggs].concat();
    for (args, ref_extra, name) in [
        (&window[..], &[][..], "window#1"),
        (&grouped[..], &["--group"][..], "aggregate#1"),
        (&aggs[..], &["--group"][..], "aggregate#1"),
    ] {
        let run = check_fixture(args, ref_extra, BAD_VALUES, name);
        let failed: Vec<u64> = run
            .dead_letter
            .iter()
            .filter(|r| !r["error"].as_str().unwrap().starts_with("late event"))
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        assert_eq!(failed, [3, 4, 5, 8, 9], "{args:?}");
        let stderr = common::stderr(&run.out);
        assert!(
            stderr.contains(":4: ") && stderr.contains("--agg s: sum: \"three\" is not a number"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn tumbling_without_key_has_no_key_field() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "tumbling:5m",
            "--time",
            ".ts",
            "--agg",
            "n=count",
            "--agg",
            "mean=avg(.latency_ms)",
            "--agg",
            "p90=p90(.latency_ms)",
            "--agg",
            "paths=collect(.path)",
        ],
        &[],
        REQUESTS,
        "window#1",
    );
    let lines = result_lines(&run.out);
    assert_eq!(lines.len(), 2, "08:10 and 08:15: {lines:?}");
    for l in &lines {
        assert_eq!(
            top_keys(l).unwrap(),
            ["window_start", "window_end", "n", "mean", "p90", "paths"],
            "{l}"
        );
    }
    // 03:14:59.999-05:00 is the last event of the first window, 08:15:00Z the
    // first of the second.
    let first = parse(&lines[0]);
    let second = parse(&lines[1]);
    assert_eq!(first["n"], 48, "{first}");
    assert_eq!(second["n"], 41, "{second}");
}

#[test]
fn composite_key_is_an_array_in_key_order() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "tumbling:2m",
            "--time",
            ".ts",
            "--key",
            ".service",
            "--key",
            ".status",
            "--agg",
            "n=count",
            "--agg",
            "total=sum(.latency_ms)",
            "--agg",
            "mean=avg(.latency_ms)",
            "--agg",
            "lo=min(.latency_ms)",
            "--agg",
            "p95=p95(.latency_ms)",
            "--agg",
            "lats=collect(.latency_ms)",
        ],
        &[],
        REQUESTS,
        "window#1",
    );
    let values: Vec<Value> = result_lines(&run.out).iter().map(|l| parse(l)).collect();
    for v in &values {
        let key = v["key"]
            .as_array()
            .unwrap_or_else(|| panic!("key is an array: {v}"));
        assert_eq!(key.len(), 2, "{v}");
    }
    // search/504 has only null latencies: sum 0, avg/min/p95 null, collect
    // [] (null is skipped by every aggregate but count).
    let timeouts: Vec<&Value> = values
        .iter()
        .filter(|v| v["key"] == json!(["search", 504]))
        .collect();
    assert!(!timeouts.is_empty());
    for v in timeouts {
        assert_eq!(v["total"], json!(0), "{v}");
        assert_eq!(v["mean"], Value::Null, "{v}");
        assert_eq!(v["lo"], Value::Null, "{v}");
        assert_eq!(v["p95"], Value::Null, "{v}");
        assert_eq!(v["lats"], json!([]), "{v}");
        assert!(v["n"].as_u64().unwrap() > 0, "{v}");
    }
}

// ---------------------------------------------------------------------------
// Sliding windows

#[test]
fn sliding_5m_every_1m() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "sliding:5m/1m",
            "--time",
            ".ts",
            "--key",
            ".path",
            "--agg",
            "n=count",
            "--agg",
            "p95=p95(.latency_ms)",
            "--agg",
            "hi=max(.latency_ms)",
            "--agg",
            "last_status=last(.status)",
        ],
        &[],
        REQUESTS,
        "window#1",
    );
    let values: Vec<Value> = result_lines(&run.out).iter().map(|l| parse(l)).collect();
    for v in &values {
        let (s, e) = (
            utc_ms(v["window_start"].as_str().unwrap()),
            utc_ms(v["window_end"].as_str().unwrap()),
        );
        assert_eq!(s % 60_000, 0, "{v}");
        assert_eq!(e - s, 300_000, "{v}");
    }
    // The first event (08:10:01.2) is in the windows starting 08:06 to 08:10.
    assert_eq!(values[0]["window_start"], "2026-11-02T08:06:00Z");
    // Each event is in exactly 5 windows.
    let total: u64 = values.iter().map(|v| v["n"].as_u64().unwrap()).sum();
    assert_eq!(total, 89 * 5);
}

#[test]
fn sliding_10s_every_3s_size_not_a_multiple_of_slide() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "sliding:10s/3s",
            "--time",
            ".ts",
            "--key",
            ".service",
            "--agg",
            "n=count",
            "--agg",
            "total=sum(.latency_ms)",
            "--agg",
            "q75=percentile(.latency_ms; 0.75)",
        ],
        &[],
        REQUESTS,
        "window#1",
    );
    for l in result_lines(&run.out) {
        let v = parse(&l);
        let (s, e) = (
            utc_ms(v["window_start"].as_str().unwrap()),
            utc_ms(v["window_end"].as_str().unwrap()),
        );
        assert_eq!(
            s % 3_000,
            0,
            "starts are multiples of 3 s since the epoch: {v}"
        );
        assert_eq!(e - s, 10_000, "{v}");
    }
}

#[test]
fn sliding_with_lateness_uses_the_earliest_window() {
    require_python!();
    check_fixture(
        &[
            "--window",
            "sliding:2m/1m",
            "--lateness",
            "30s",
            "--time",
            ".ts",
            "--key",
            ".host",
            "--agg",
            "n=count",
            "--agg",
            "mean=avg(.cpu)",
            "--agg",
            "first=first(.cpu)",
            "--agg",
            "last=last(.cpu)",
        ],
        &[],
        OUT_OF_ORDER,
        "window#1",
    );
}

#[test]
fn sliding_collect_keeps_arrival_order_across_panes() {
    require_python!();
    // Line 10 (08:00:48) arrives after lines 7 and 9 (08:01:03, 08:01:10):
    // in the window 08:00-08:02 collect lists it after them.
    let run = check_fixture(
        &[
            "--window",
            "sliding:2m/1m",
            "--lateness",
            "30s",
            "--time",
            ".ts",
            "--key",
            ".host",
            "--agg",
            "seqs=collect(.seq)",
        ],
        &[],
        OUT_OF_ORDER,
        "window#1",
    );
    assert!(
        common::stdout(&run.out).contains(
            r#"{"window_start":"2026-11-02T08:00:00Z","window_end":"2026-11-02T08:02:00Z","key":"web-1","seqs":[1,3,5,7,9,10,12,15]}"#
        ),
        "{}",
        common::stdout(&run.out)
    );
}

#[test]
fn collect_keeps_at_most_10000_values_in_arrival_order() {
    // 6000 events in each of two seconds; the tumbling 2 s window and the
    // sliding 2s/1s window over both hold 12000 events.
    let mut input = String::new();
    for i in 0..12_000u32 {
        let t = 1_793_606_400 + i / 6000;
        input.push_str(&format!("{{\"t\":{t},\"i\":{i}}}\n"));
    }
    for spec in ["tumbling:2s", "sliding:2s/1s"] {
        let out = common::run(
            &[
                "--window",
                spec,
                "--time",
                ".t",
                "--agg",
                "n=count",
                "--agg",
                "all=collect(.i)",
            ],
            input.as_bytes(),
        );
        assert_eq!(common::status(&out), 0, "{spec}: {}", common::stderr(&out));
        let lines = result_lines(&out);
        let full = lines
            .iter()
            .map(|l| parse(l))
            .find(|v| v["window_start"] == "2026-11-02T08:00:00Z" && v["n"] == 12_000)
            .unwrap_or_else(|| panic!("{spec}: no window of 12000 events"));
        let all: Vec<u64> = full["all"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(all.len(), 10_000, "{spec}");
        assert!(
            all.iter().copied().eq(0..10_000),
            "{spec}: the first 10000 values in arrival order"
        );
        // Said once at the end: only the window of 12000 dropped values.
        assert_eq!(
            common::stderr(&out),
            collect_note("all=collect(.i)", 10_000, 1, "window"),
            "{spec}"
        );
    }
}

/// 6000 events `{"t", "i"}` in each of two seconds: 12000 in all.
fn twelve_thousand() -> String {
    (0..12_000u32)
        .map(|i| format!("{{\"t\":{},\"i\":{i}}}\n", 1_793_606_400 + i / 6000))
        .collect()
}

#[test]
fn collect_limit_is_an_argument() {
    let input = twelve_thousand();
    let run = |args: &[&str]| {
        let all = [&["--stats=json"], args].concat();
        let out = common::run(&all, input.as_bytes());
        assert_eq!(
            common::status(&out),
            0,
            "{args:?}: {}",
            common::stderr(&out)
        );
        out
    };
    let collected = |out: &Output| -> Vec<usize> {
        result_lines(out)
            .iter()
            .map(|l| parse(l)["all"].as_array().unwrap().len())
            .collect()
    };
    // A higher limit keeps all 12000, and nothing is said.
    let out = run(&[
        "--window",
        "tumbling:2s",
        "--time",
        ".t",
        "--agg",
        "all=collect(.i; 12000)",
    ]);
    assert_eq!(collected(&out), [12_000]);
    assert_eq!(common::stderr(&out).lines().count(), 1, "only the stats");
    assert_eq!(
        u(
            stage(&common::stats_json(&out), "window#1"),
            "collect_truncated"
        ),
        0
    );
    // A lower one: the three sliding windows hold 6000, 12000 and 6000
    // events; each keeps its first 3 (in arrival order) and says so.
    let out = run(&[
        "--window",
        "sliding:2s/1s",
        "--time",
        ".t",
        "--agg",
        "n=count",
        "--agg",
        "all=collect(.i;3)",
    ]);
    let values: Vec<Value> = result_lines(&out).iter().map(|l| parse(l)).collect();
    let kept: Vec<(u64, Value)> = values
        .iter()
        .map(|v| (v["n"].as_u64().unwrap(), v["all"].clone()))
        .collect();
    assert_eq!(
        kept,
        [
            (6000, json!([0, 1, 2])),
            (12_000, json!([0, 1, 2])),
            (6000, json!([6000, 6001, 6002]))
        ]
    );
    let stderr = common::stderr(&out);
    let (note, stats) = stderr.split_once('\n').unwrap();
    assert_eq!(
        format!("{note}\n"),
        collect_note("all=collect(.i;3)", 3, 3, "window")
    );
    assert!(stats.starts_with('{'), "the stats come last: {stderr}");
    assert_eq!(
        u(
            stage(&common::stats_json(&out), "window#1"),
            "collect_truncated"
        ),
        3
    );
    // Group-by: counted in groups; -q says nothing.
    let group = ["--key", ".i % 2", "--agg", "all=collect(.i; 5)"];
    let out = common::run(&group, input.as_bytes());
    assert_eq!(common::status(&out), 0);
    assert_eq!(collected(&out), [5, 5]);
    assert_eq!(
        common::stderr(&out),
        collect_note("all=collect(.i; 5)", 5, 2, "group")
    );
    let out = common::run(&[&["-q"], &group[..]].concat(), input.as_bytes());
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), "");
    assert_eq!(collected(&out), [5, 5]);
}

#[test]
fn collect_limit_matches_the_reference() {
    require_python!();
    // Per service and minute, several windows hold more than 3 latencies.
    for window in ["tumbling:1m", "sliding:2m/1m"] {
        let run = check_fixture(
            &[
                "--window",
                window,
                "--time",
                ".ts",
                "--key",
                ".service",
                "--agg",
                "lats=collect(.latency_ms; 3)",
                "--agg",
                "paths=collect(.path)",
            ],
            &[],
            REQUESTS,
            "window#1",
        );
        assert!(
            common::stderr(&run.out).contains("evq: --agg 'lats=collect(.latency_ms; 3)'"),
            "{window}: {}",
            common::stderr(&run.out)
        );
    }
    // Group-by.
    let args = ["--key", ".user", "--agg", "amounts=collect(.amount; 7)"];
    let expected = reference(&args_with_group(&args), &fixture_bytes(PURCHASES));
    let out = common::run(&[&args[..], &[PURCHASES]].concat(), b"");
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_results("group-by collect", &expected.lines, &result_lines(&out));
    let [(name, n)] = &expected.truncated[..] else {
        panic!("the reference truncates: {:?}", expected.truncated)
    };
    assert_eq!(name, "amounts");
    assert_eq!(
        common::stderr(&out),
        collect_note("amounts=collect(.amount; 7)", 7, *n, "group")
    );
}

#[test]
fn keys_are_emitted_in_jq_order() {
    require_python!();
    let input = br#"{"t":1793606401,"k":"b"}
{"t":1793606402,"k":"a"}
{"t":1793606403,"k":10}
{"t":1793606404,"k":2}
{"t":1793606405}
{"t":1793606406,"k":true}
{"t":1793606407,"k":false}
{"t":1793606408,"k":[1]}
{"t":1793606409,"k":{"a":1}}
{"t":1793606410,"k":"B"}
{"t":1793606411,"k":"\u00e9"}
{"t":1793606412,"k":"z"}
{"t":1793606413,"k":[0,5]}
{"t":1793606414,"k":"b"}
"#;
    let args = [
        "--window",
        "tumbling:1m",
        "--time",
        ".t",
        "--key",
        ".k",
        "--agg",
        "n=count",
    ];
    let expected = reference(&args, input);
    let out = common::run(&args, input);
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_results("jq key order", &expected.lines, &result_lines(&out));
    let keys: Vec<Value> = result_lines(&out)
        .iter()
        .map(|l| parse(l)["key"].clone())
        .collect();
    assert_eq!(
        keys,
        [
            json!(null),
            json!(false),
            json!(true),
            json!(2),
            json!(10),
            json!("B"),
            json!("a"),
            json!("b"),
            json!("z"),
            json!("é"),
            json!([0, 5]),
            json!([1]),
            json!({"a": 1}),
        ]
    );
}

// ---------------------------------------------------------------------------
// Session windows

const SESSION_AGGS: [&str; 8] = [
    "--agg",
    "clicks=count",
    "--agg",
    "pages=collect(.page)",
    "--agg",
    "first_page=first(.page)",
    "--agg",
    "last_page=last(.page)",
];

#[test]
fn session_bridging_event_merges_two_sessions() {
    require_python!();
    let mut args = vec![
        "--window",
        "session:1m",
        "--lateness",
        "2m",
        "--time",
        ".ts",
        "--key",
        ".user",
    ];
    args.extend_from_slice(&SESSION_AGGS);
    let run = check_fixture(&args, &[], SESSIONS, "window#1");
    let values: Vec<Value> = result_lines(&run.out).iter().map(|l| parse(l)).collect();
    // Hand-computed: u1's two sessions and the bridging click (line 10).
    let u1: Vec<&Value> = values.iter().filter(|v| v["key"] == "u1").collect();
    assert_eq!(
        *u1[0],
        json!({
            "window_start": "2026-11-02T08:00:00Z",
            "window_end": "2026-11-02T08:02:50.250Z",
            "key": "u1",
            "clicks": 5,
            "pages": ["/home", "/products", "/cart", "/checkout", "/products/7"],
            "first_page": "/home",
            "last_page": "/checkout"
        })
    );
    // Touching sessions merge: u2's click at +60 s exactly (line 5).
    let u2 = values.iter().find(|v| v["key"] == "u2").unwrap();
    assert_eq!(u2["window_start"], "2026-11-02T08:00:05Z", "{u2}");
    assert_eq!(u2["window_end"], "2026-11-02T08:02:52Z", "{u2}");
    assert_eq!(u2["clicks"], 3, "{u2}");
    // Line 14 is late.
    assert_eq!(run.dead_letter.len(), 1, "{}", run.dead_letter_text);
    assert_eq!(run.dead_letter[0]["line"], 14);
    assert_eq!(common::status(&run.out), 0);
}

#[test]
fn session_without_lateness() {
    require_python!();
    let mut args = vec!["--window", "session:1m", "--time", ".ts", "--key", ".user"];
    args.extend_from_slice(&SESSION_AGGS);
    let run = check_fixture(&args, &[], SESSIONS, "window#1");
    // The first u1 session was emitted before the bridging click came.
    let values: Vec<Value> = result_lines(&run.out).iter().map(|l| parse(l)).collect();
    let u1: Vec<&Value> = values.iter().filter(|v| v["key"] == "u1").collect();
    assert_eq!(u1[0]["window_end"], "2026-11-02T08:01:20.500Z", "{}", u1[0]);
    assert_eq!(u1[1]["window_start"], "2026-11-02T08:01:00Z", "{}", u1[1]);
    assert_eq!(u1[1]["clicks"], 3, "{}", u1[1]);
}

#[test]
fn session_windows_keep_milliseconds_of_fractional_seconds() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "session:10m",
            "--time",
            ".ts",
            "--key",
            ".user",
            "--agg",
            "n=count",
            "--agg",
            "spent=sum(.amount)",
        ],
        &[],
        PURCHASES,
        "window#1",
    );
    let stdout = common::stdout(&run.out);
    // 1793613700.1 s is 10:01:40.100, not .099.
    assert!(
        stdout.contains("\"window_start\":\"2026-11-02T10:01:40.100Z\""),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------
// Lateness and late events

const OOO_ARGS: [&str; 14] = [
    "--window",
    "tumbling:1m",
    "--time",
    ".ts",
    "--key",
    ".host",
    "--agg",
    "n=count",
    "--agg",
    "first=first(.cpu)",
    "--agg",
    "last=last(.cpu)",
    "--agg",
    "seqs=collect(.seq)",
];

#[test]
fn out_of_order_within_lateness_is_aggregated() {
    require_python!();
    let mut args = OOO_ARGS.to_vec();
    args.extend_from_slice(&["--lateness", "30s", "--agg", "mean=avg(.cpu)"]);
    let run = check_fixture(&args, &[], OUT_OF_ORDER, "window#1");
    let values: Vec<Value> = result_lines(&run.out).iter().map(|l| parse(l)).collect();
    // Hand-computed: line 10 (08:00:48, 22 s behind) still counts; first and
    // last are by event time, not arrival.
    assert_eq!(
        values[0],
        json!({
            "window_start": "2026-11-02T08:00:00Z",
            "window_end": "2026-11-02T08:01:00Z",
            "key": "web-1",
            "n": 4,
            "first": 12.5,
            "last": 18,
            "seqs": [1, 3, 5, 10],
            "mean": 16.9375
        })
    );
    // Lines 29 and 31 have the same time: first is the earlier arrival.
    let last = values.last().unwrap();
    assert_eq!(last["key"], "web-2");
    assert_eq!((&last["first"], &last["last"]), (&json!(50), &json!(49)));
    // Late events (13 and 20) are not failures: exit 0, not reported one by
    // one; one note counts them, then the stats line.
    assert_eq!(common::status(&run.out), 0);
    let stderr = common::stderr(&run.out);
    assert!(stderr.starts_with(&late_note(2)), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        2,
        "the note and the stats: {stderr}"
    );
    let stats = common::stats_json(&run.out);
    let s = stage(&stats, "window#1");
    assert_eq!(s["kind"], "window", "{s}");
    assert_eq!(u(s, "events_in"), 31, "{s}");
    assert_eq!(u(s, "events_late"), 2, "{s}");
    assert_eq!(u(s, "events_failed"), 0, "{s}");
    assert_eq!(u(s, "events_out"), 10, "{s}");
    assert_eq!(u(s, "windows_emitted"), 10, "{s}");
    assert!(u(s, "windows_open") > 0, "{s}");
}

#[test]
fn late_events_are_dead_lettered_not_failed() {
    require_python!();
    let run = check_fixture(&OOO_ARGS, &[], OUT_OF_ORDER, "window#1");
    let bytes = String::from_utf8(fixture_bytes(OUT_OF_ORDER)).unwrap();
    let input_lines: Vec<&str> = bytes.lines().collect();
    let late = [8u64, 10, 13, 17, 20, 27, 28];
    assert_eq!(
        run.dead_letter.len(),
        late.len(),
        "{}",
        run.dead_letter_text
    );
    let records = run.dead_letter_text.lines().zip(&run.dead_letter);
    for ((text, rec), n) in records.zip(late) {
        assert_eq!(rec["source"], OUT_OF_ORDER, "{text}");
        assert_eq!(rec["line"], n, "{text}");
        assert_eq!(rec["stage"], "window#1", "{text}");
        assert!(
            rec["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("late event")),
            "{text}"
        );
        assert_eq!(rec["raw"], input_lines[n as usize - 1], "{text}");
        assert_eq!(
            top_keys(text).unwrap(),
            ["source", "line", "stage", "error", "raw"],
            "{text}"
        );
    }
    assert_eq!(
        common::status(&run.out),
        0,
        "late events do not make evq exit 3"
    );
    // Without --stats, late events are not reported one by one: one note
    // at the end counts them; -q silences it.
    let out = common::run(&[&OOO_ARGS[..], &[OUT_OF_ORDER]].concat(), b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), late_note(late.len()));
    let out = common::run(&[&["-q"], &OOO_ARGS[..], &[OUT_OF_ORDER]].concat(), b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), "");
}

/// `n` events `{"t": RFC 3339, "v": i}` from `start` (seconds since the
/// epoch), one every 10 s.
fn timed_events(start: i64, n: usize) -> String {
    (0..n)
        .map(|i| {
            let t = start + 10 * i as i64;
            let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
            // 2026-11-02 is day 20759 since the epoch.
            assert_eq!(days, 20_759, "the events stay on 2026-11-02");
            format!(
                "{{\"t\":\"2026-11-02T{:02}:{:02}:{:02}Z\",\"v\":{i}}}\n",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )
        })
        .collect()
}

#[test]
fn late_events_from_files_out_of_time_order_are_said_once_at_the_end() {
    // The files are given newest first: every event of the older one comes
    // after the watermark passed its window.
    let day = 20_759 * 86_400;
    let dir = common::tempdir();
    let new = dir.path().join("app.ndjson");
    let old = dir.path().join("app.ndjson.1");
    std::fs::write(&new, timed_events(day + 9 * 3600, 13)).unwrap();
    std::fs::write(&old, timed_events(day + 8 * 3600, 177)).unwrap();
    let (new, old) = (new.to_str().unwrap(), old.to_str().unwrap());
    let window = [
        "--window",
        "tumbling:1m",
        "--time",
        ".t",
        "--agg",
        "n=count",
    ];
    let out = common::run(&[&window[..], &[new, old]].concat(), b"");
    assert_eq!(common::status(&out), 0, "late events are not failures");
    assert_eq!(
        common::stderr(&out),
        "evq: 177 events came too late for their windows and were not counted; see --lateness\n"
    );
    assert_eq!(result_lines(&out).len(), 3, "09:00, 09:01, 09:02");
    // -q: nothing said.
    let out = common::run(&[&["-q"], &window[..], &[new, old]].concat(), b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), "");
    assert_eq!(result_lines(&out).len(), 3);
    // In the right order, nothing is late and nothing is said.
    let out = common::run(&[&window[..], &[old, new]].concat(), b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), "");

    // One late event; and the note comes after the failure reports and
    // before the stats.
    std::fs::write(
        dir.path().join("app.ndjson.1"),
        timed_events(day + 8 * 3600, 1),
    )
    .unwrap();
    common::append(std::path::Path::new(new), "not json\n");
    let out = common::run(&[&["--stats=json"], &window[..], &[new, old]].concat(), b"");
    assert_eq!(common::status(&out), 3, "the bad line fails");
    let stderr = common::stderr(&out);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{new}:14: invalid JSON")),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        "evq: 1 event came too late for its window and was not counted; see --lateness"
    );
    assert_eq!(
        u(stage(&common::stats_json(&out), "window#1"), "events_late"),
        1
    );
}

#[test]
fn durations_in_every_unit() {
    require_python!();
    for (spec, file) in [
        ("tumbling:250ms", REQUESTS),
        ("tumbling:1d", PURCHASES),
        ("sliding:1h/30m", PURCHASES),
        ("session:1h", PURCHASES),
    ] {
        check_fixture(
            &[
                "--window",
                spec,
                "--lateness",
                "1s",
                "--time",
                ".ts",
                "--agg",
                "n=count",
                "--agg",
                "first=first(.ts)",
                "--agg",
                "last=last(.ts)",
            ],
            &[],
            file,
            "window#1",
        );
    }
}

#[test]
fn explicit_zero_lateness_is_the_default() {
    // The default lateness is 0: an explicit --lateness 0s (or 0ms) is the same.
    let out = common::run(&[&OOO_ARGS[..], &[OUT_OF_ORDER]].concat(), b"");
    assert_eq!(common::status(&out), 0);
    for zero in ["0s", "0ms"] {
        let out0 = common::run(
            &[&OOO_ARGS[..], &["--lateness", zero, OUT_OF_ORDER]].concat(),
            b"",
        );
        assert_eq!(
            common::status(&out0),
            0,
            "--lateness {zero}: {}",
            common::stderr(&out0)
        );
        assert_eq!(
            common::stdout(&out0),
            common::stdout(&out),
            "--lateness {zero}"
        );
    }
}

#[test]
fn window_stage_sits_where_window_is_written() {
    require_python!();
    let run = evq_with_dl(
        &[&["-f", ".host != null"][..], &OOO_ARGS[..]].concat(),
        Some(OUT_OF_ORDER),
        b"",
    );
    assert_eq!(common::status(&run.out), 0, "{}", common::stderr(&run.out));
    let expected = reference(&OOO_ARGS, &fixture_bytes(OUT_OF_ORDER));
    assert_results(
        "-f before --window",
        &expected.lines,
        &result_lines(&run.out),
    );
    let stats = common::stats_json(&run.out);
    let names: Vec<&str> = stats["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["filter#1", "window#2"], "{stats}");
    assert_eq!(stage(&stats, "window#2")["kind"], "window");
    assert!(!run.dead_letter.is_empty());
    for rec in &run.dead_letter {
        assert_eq!(rec["stage"], "window#2", "{rec}");
    }
}

#[test]
fn a_later_filter_sees_the_results() {
    require_python!();
    let window = [
        "--window",
        "tumbling:1m",
        "--time",
        ".ts",
        "--key",
        ".service",
        "--agg",
        "n=count",
        "--agg",
        "mean=avg(.latency_ms)",
    ];
    let expected = reference(&window, &fixture_bytes(REQUESTS));
    let kept: Vec<String> = expected
        .lines
        .iter()
        .filter(|l| parse(l)["n"].as_u64().unwrap() >= 4)
        .cloned()
        .collect();
    assert!(!kept.is_empty() && kept.len() < expected.lines.len());
    let run = evq_with_dl(
        &[&window[..], &["-f", ".n >= 4"]].concat(),
        Some(REQUESTS),
        b"",
    );
    assert_eq!(common::status(&run.out), 0);
    assert_results("--window ... -f '.n >= 4'", &kept, &result_lines(&run.out));
    let stats = common::stats_json(&run.out);
    let w = stage(&stats, "window#1");
    let f = stage(&stats, "filter#2");
    assert_eq!(u(w, "events_out"), expected.lines.len() as u64, "{stats}");
    assert_eq!(u(f, "events_in"), expected.lines.len() as u64, "{stats}");
    assert_eq!(u(f, "events_out"), kept.len() as u64, "{stats}");
}

#[test]
fn a_filter_after_the_window_reading_event_fields_gets_a_hint() {
    let input = b"{\"t\":1,\"level\":\"error\"}\n{\"t\":2,\"level\":\"info\"}\n";
    let window = [
        "--window",
        "tumbling:1m",
        "--time",
        ".t",
        "--agg",
        "n=count",
    ];
    let with = |before: &[&str], after: &[&str]| {
        let out = common::run(&[before, &window[..], after].concat(), input);
        assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
        out
    };
    // The filter was meant for the events: it drops every result.
    let out = with(&[], &["-f", ".level==\"error\""]);
    assert_eq!(common::stdout(&out), "");
    assert_eq!(
        common::stderr(&out),
        "evq: hint: --filter #2 reads .level, which window results do not have (they have window_start, window_end, n); stages run in command-line order: put -f before --window to filter the events\n"
    );
    // Where it belongs, or reading a result's field: no hint.
    let out = with(&["-f", ".level==\"error\""], &[]);
    assert_eq!(
        common::stdout(&out),
        "{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:01:00Z\",\"n\":1}\n"
    );
    assert_eq!(common::stderr(&out), "");
    let out = with(&[], &["-f", ".n > 1"]);
    assert_eq!(common::stdout(&out).lines().count(), 1);
    assert_eq!(common::stderr(&out), "");
    // A stage that reads the whole result, or one after a map (it reads
    // the map's output): no hint.
    for after in [
        &["-f", "has(\"level\")"][..],
        &["-m", "{n, level: \"x\"}", "-f", ".level == \"x\""][..],
    ] {
        let out = with(&[], after);
        assert_eq!(common::stderr(&out), "", "{after:?}");
    }
    // A map is hinted too; several fields are listed; -q silences hints.
    let out = with(&[], &["-m", "{msg, level}"]);
    assert_eq!(
        common::stderr(&out),
        "evq: hint: --map #2 reads .msg and .level, which window results do not have (they have window_start, window_end, n); stages run in command-line order: put -m before --window to map the events\n"
    );
    let out = with(&["-q"], &["-f", ".level==\"error\""]);
    assert_eq!(common::stderr(&out), "");
    // Group-by results have the key and the aggregates.
    let out = common::run(
        &[
            "--key",
            ".level",
            "--agg",
            "n=count",
            "-f",
            ".key == \"error\"",
            "-f",
            ".t > 1",
        ],
        input,
    );
    assert_eq!(common::status(&out), 0);
    assert_eq!(
        common::stderr(&out),
        "evq: hint: --filter #3 reads .t, which aggregate results do not have (they have key, n); stages run in command-line order: put -f before --agg to filter the events\n"
    );
}

// ---------------------------------------------------------------------------
// Event time

#[test]
fn purchases_per_user_per_hour_with_epoch_seconds() {
    require_python!();
    let run = check_fixture(
        &[
            "--window",
            "tumbling:1h",
            "--time",
            ".ts",
            "--key",
            ".user",
            "--agg",
            "orders=count",
            "--agg",
            "spent=sum(.amount)",
            "--agg",
            "avg_amount=avg(.amount)",
            "--agg",
            "smallest=min(.amount)",
            "--agg",
            "largest=max(.amount)",
            "--agg",
            "first=first(.amount)",
            "--agg",
            "last=last(.amount)",
            "--agg",
            "distinct=count_distinct(.amount)",
            "--agg",
            "amounts=collect(.amount)",
        ],
        &[],
        PURCHASES,
        "window#1",
    );
    let values: Vec<Value> = result_lines(&run.out).iter().map(|l| parse(l)).collect();
    let find = |start: &str, user: &str| {
        values
            .iter()
            .find(|v| v["window_start"] == start && v["key"] == user)
            .unwrap_or_else(|| panic!("no {start} {user} in {values:?}"))
    };
    // 08:59:59.750 is in the 08:00 hour, 09:00:00 in the 09:00 hour.
    let u02_8 = find("2026-11-02T08:00:00Z", "u02");
    assert_eq!(u02_8["amounts"], json!([97, 15]), "{u02_8}");
    assert_eq!(
        u02_8["spent"],
        json!(112),
        "integers sum to an integer: {u02_8}"
    );
    let u02_9 = find("2026-11-02T09:00:00Z", "u02");
    assert_eq!(u02_9["first"], json!(30), "{u02_9}");
    // 184, 20, 20.0, 247, 199, 120: 20 and 20.0 are two distinct JSON texts.
    let u03_9 = find("2026-11-02T09:00:00Z", "u03");
    assert_eq!(u03_9["distinct"], json!(6), "{u03_9}");
    assert_eq!(
        u03_9["amounts"],
        json!([184, 20, 20.0, 247, 199, 120]),
        "{u03_9}"
    );
    // Same time twice: first is the earlier arrival, last the later.
    let u04_9 = find("2026-11-02T09:00:00Z", "u04");
    assert_eq!(u04_9["first"], json!(9.99), "{u04_9}");
    // A null amount is skipped by every aggregate but count.
    let u05_10 = find("2026-11-02T10:00:00Z", "u05");
    assert_eq!(u05_10["orders"], json!(3), "{u05_10}");
    assert_eq!(u05_10["amounts"], json!([19.99, 115.79]), "{u05_10}");
}

#[test]
fn first_and_last_ties_go_by_arrival() {
    require_python!();
    // u04's two purchases at 09:23:20.125 (75, then 12.5) in a 1s window.
    let run = check_fixture(
        &[
            "--window",
            "tumbling:1s",
            "--time",
            ".ts",
            "--key",
            ".user",
            "--agg",
            "first=first(.amount)",
            "--agg",
            "last=last(.amount)",
        ],
        &[],
        PURCHASES,
        "window#1",
    );
    let stdout = common::stdout(&run.out);
    assert!(
        stdout.contains(
            r#"{"window_start":"2026-11-02T09:23:20Z","window_end":"2026-11-02T09:23:21Z","key":"u04","first":75,"last":12.5}"#
        ),
        "{stdout}"
    );
}

#[test]
fn epoch_seconds_milliseconds_microseconds_nanoseconds_and_rfc3339() {
    require_python!();
    let input = br#"{"t":1793606400,"v":1}
{"t":1793606400.25,"v":2}
{"t":1793606400999,"v":3}
{"t":1793606401500.7,"v":4}
{"t":1793606402000123,"v":5}
{"t":1793606403123456789,"v":6}
{"t":"2026-11-02T08:00:04.5Z","v":7}
{"t":"2026-11-02T09:00:05.123456+01:00","v":8}
{"t":"2026-11-02T02:30:06-05:30","v":9}
{"t":1793606406.75,"v":10}
"#;
    let args = [
        "--window",
        "tumbling:1ms",
        "--time",
        ".t",
        "--agg",
        "v=collect(.v)",
    ];
    let expected = reference(&args, input);
    let out = common::run(&args, input);
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_results("epoch units", &expected.lines, &result_lines(&out));
    // Hand-computed window starts (1 ms windows start at the event's ms).
    let starts: Vec<String> = result_lines(&out)
        .iter()
        .map(|l| parse(l)["window_start"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-11-02T08:00:00Z",
            "2026-11-02T08:00:00.250Z",
            "2026-11-02T08:00:00.999Z",
            "2026-11-02T08:00:01.500Z",
            "2026-11-02T08:00:02Z",
            "2026-11-02T08:00:03.123Z",
            "2026-11-02T08:00:04.500Z",
            "2026-11-02T08:00:05.123Z",
            "2026-11-02T08:00:06Z",
            "2026-11-02T08:00:06.750Z",
        ]
    );
}

#[test]
fn rfc3339_offsets_put_events_in_the_right_window() {
    require_python!();
    let input = br#"{"ts":"2026-11-02T10:14:59.999+02:00","id":1}
{"ts":"2026-11-02T03:15:00-05:00","id":2}
{"ts":"2026-11-02T08:15:00.000Z","id":3}
{"ts":"2026-11-02T09:15:59.9999+01:00","id":4}
{"ts":"2026-11-03T01:00:00+02:00","id":5}
"#;
    let args = [
        "--window",
        "tumbling:1m",
        "--time",
        ".ts",
        "--agg",
        "ids=collect(.id)",
    ];
    let expected = reference(&args, input);
    let out = common::run(&args, input);
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_results("offsets", &expected.lines, &result_lines(&out));
    assert_eq!(
        common::stdout(&out),
        concat!(
            r#"{"window_start":"2026-11-02T08:14:00Z","window_end":"2026-11-02T08:15:00Z","ids":[1]}"#,
            "\n",
            r#"{"window_start":"2026-11-02T08:15:00Z","window_end":"2026-11-02T08:16:00Z","ids":[2,3,4]}"#,
            "\n",
            r#"{"window_start":"2026-11-02T23:00:00Z","window_end":"2026-11-02T23:01:00Z","ids":[5]}"#,
            "\n",
        )
    );
}

#[test]
fn without_time_windows_use_arrival_time_and_close_at_the_end() {
    let out = common::run(
        &[
            "--window",
            "tumbling:1h",
            "--key",
            ".service",
            "--agg",
            "n=count",
            REQUESTS,
        ],
        b"",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    let lines = result_lines(&out);
    assert!(!lines.is_empty());
    let mut total = 0;
    for l in &lines {
        assert_eq!(
            top_keys(l).unwrap(),
            ["window_start", "window_end", "key", "n"],
            "{l}"
        );
        let v = parse(l);
        total += v["n"].as_u64().unwrap();
        let (s, e) = (
            utc_ms(v["window_start"].as_str().unwrap()),
            utc_ms(v["window_end"].as_str().unwrap()),
        );
        assert_eq!((s % 3_600_000, e - s), (0, 3_600_000), "{v}");
    }
    assert_eq!(total, 89);
}

// ---------------------------------------------------------------------------
// Failed events

#[test]
fn a_missing_time_fails_every_event() {
    let run = evq_with_dl(
        &[
            "--window",
            "tumbling:1m",
            "--time",
            ".nope",
            "--agg",
            "n=count",
        ],
        Some(REQUESTS),
        b"",
    );
    assert_eq!(common::status(&run.out), 3);
    assert_eq!(common::stdout(&run.out), "");
    let stderr = common::stderr(&run.out);
    let reports: Vec<&str> = stderr.lines().collect();
    assert!(
        reports[0].starts_with(&format!("{REQUESTS}:1: window#1: ")),
        "{stderr}"
    );
    assert!(
        reports[9].starts_with(&format!("{REQUESTS}:10: window#1: ")),
        "{stderr}"
    );
    assert_eq!(run.dead_letter.len(), 89);
    for (i, rec) in run.dead_letter.iter().enumerate() {
        assert_eq!(rec["line"], i as u64 + 1, "{rec}");
        assert_eq!(rec["stage"], "window#1", "{rec}");
    }
    let stats = common::stats_json(&run.out);
    let s = stage(&stats, "window#1");
    assert_eq!(u(s, "events_in"), 89, "{s}");
    assert_eq!(u(s, "events_failed"), 89, "{s}");
    assert_eq!(u(s, "events_out"), 0, "{s}");
    assert_eq!(u(s, "events_late"), 0, "{s}");
}

#[test]
fn bad_times_and_keys_are_failed_events_the_rest_still_counts() {
    require_python!();
    let input = br#"{"ts":"2026-11-02T08:00:01Z","user":{"name":"ann"}}
{"ts":"yesterday","user":{"name":"ann"}}
{"ts":null,"user":{"name":"bob"}}
{"user":{"name":"bob"}}
{"ts":true,"user":{"name":"bob"}}
{"ts":"2026-11-02T08:00:30Z","user":"bob"}
{"ts":"2026-11-02T08:00:30Z","user":{"name":"bob"}}
{"ts":"2026-11-02T08:01:10Z","user":{}}
{"ts":"2026-11-02T25:00:00Z","user":{"name":"ann"}}
{"ts":"1793606400","user":{"name":"ann"}}
{"ts":"2026-11-02T08:00:02","user":{"name":"ann"}}
{"ts":"2026-11-02T08:00:03Z","user":{"name":"ann"}}
"#;
    let args = [
        "--window",
        "tumbling:1m",
        "--time",
        ".ts",
        "--key",
        ".user.name",
        "--agg",
        "n=count",
    ];
    let expected = reference(&args, input);
    // 2: not a time, 3: null, 4: missing, 5: a bool, 6: key error (cannot
    // index a string), 9: hour 25, 10: digits in a string, 11: no offset.
    assert_eq!(expected.failed, [2, 3, 4, 5, 6, 9, 10, 11]);
    let run = evq_with_dl(&args, None, input);
    assert_eq!(common::status(&run.out), 3);
    assert_results("bad times", &expected.lines, &result_lines(&run.out));
    let stderr = common::stderr(&run.out);
    let reported: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("<stdin>:"))
        .collect();
    assert_eq!(reported.len(), 8, "{stderr}");
    for (l, n) in reported.iter().zip(&expected.failed) {
        assert!(
            l.starts_with(&format!("<stdin>:{n}: window#1: ")),
            "{stderr}"
        );
    }
    // Line 12 (08:00:03 after 08:01:10) is late, not failed: the dead letter
    // holds both kinds, the reports only the failures.
    assert_eq!(expected.late, [12]);
    let lines: Vec<u64> = run
        .dead_letter
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        [2, 3, 4, 5, 6, 9, 10, 11, 12],
        "{}",
        run.dead_letter_text
    );
    for rec in &run.dead_letter {
        assert_eq!(rec["stage"], "window#1", "{rec}");
        let late = rec["error"].as_str().unwrap().starts_with("late event");
        assert_eq!(late, rec["line"] == 12, "{rec}");
    }
    let stats = common::stats_json(&run.out);
    let s = stage(&stats, "window#1");
    assert_eq!(u(s, "events_in"), 12, "{s}");
    assert_eq!(u(s, "events_failed"), 8, "{s}");
    assert_eq!(u(s, "events_late"), 1, "{s}");
    assert_eq!(u(s, "events_out"), 3, "{s}");
}

#[test]
fn time_or_key_yielding_no_value_or_several_is_a_failed_event() {
    let input = br#"{"t":[1793606400],"k":["a"]}
{"t":[],"k":["a"]}
{"t":[1793606401,1793606402],"k":["a"]}
{"t":[1793606403],"k":[]}
{"t":[1793606404],"k":["a","b"]}
{"t":[1793606405],"k":["b"]}
"#;
    let out = common::run(
        &[
            "--window",
            "tumbling:1m",
            "--time",
            ".t[]",
            "--key",
            ".k[]",
            "--agg",
            "n=count",
        ],
        input,
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(
        common::stdout(&out),
        concat!(
            r#"{"window_start":"2026-11-02T08:00:00Z","window_end":"2026-11-02T08:01:00Z","key":"a","n":1}"#,
            "\n",
            r#"{"window_start":"2026-11-02T08:00:00Z","window_end":"2026-11-02T08:01:00Z","key":"b","n":1}"#,
            "\n",
        )
    );
    let stderr = common::stderr(&out);
    let reported: Vec<&str> = stderr.lines().collect();
    assert_eq!(reported.len(), 4, "{stderr}");
    for (l, n) in reported.iter().zip([2, 3, 4, 5]) {
        assert!(
            l.starts_with(&format!("<stdin>:{n}: window#1: ")),
            "{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------
// Empty input, group-by

#[test]
fn empty_input_emits_nothing() {
    for input in [&b""[..], b"\n\n  \n"] {
        for args in [
            &[
                "--window",
                "tumbling:1m",
                "--time",
                ".ts",
                "--key",
                ".service",
                "--agg",
                "n=count",
            ][..],
            &[
                "--window",
                "session:5m",
                "--time",
                ".ts",
                "--agg",
                "n=count",
            ][..],
            &["--key", ".service", "--agg", "n=count"][..],
        ] {
            let out = common::run(&[&["--stats=json"], args].concat(), input);
            assert_eq!(
                common::status(&out),
                0,
                "{args:?}: {}",
                common::stderr(&out)
            );
            assert_eq!(common::stdout(&out), "", "{args:?}");
            let stats = common::stats_json(&out);
            let s = &stats["stages"][0];
            assert_eq!(u(s, "events_in"), 0, "{s}");
            assert_eq!(u(s, "events_out"), 0, "{s}");
        }
    }
}

#[test]
fn group_by_without_window() {
    require_python!();
    let args = [
        "--key",
        ".user",
        "--agg",
        "orders=count",
        "--agg",
        "spent=sum(.amount)",
        "--agg",
        "top=max(.amount)",
        "--agg",
        "distinct=count_distinct(.amount)",
        "--agg",
        "first=first(.amount)",
        "--agg",
        "last=last(.amount)",
        "--agg",
        "p50=p50(.amount)",
    ];
    let expected = reference(&args_with_group(&args), &fixture_bytes(PURCHASES));
    let run = evq_with_dl(&args, Some(PURCHASES), b"");
    assert_eq!(common::status(&run.out), 0, "{}", common::stderr(&run.out));
    assert_results("group-by", &expected.lines, &result_lines(&run.out));
    let lines = result_lines(&run.out);
    assert_eq!(lines.len(), 5, "u01..u05");
    for l in &lines {
        assert_eq!(top_keys(l).unwrap()[0], "key", "no window fields: {l}");
    }
    let stats = common::stats_json(&run.out);
    let s = stage(&stats, "aggregate#1");
    assert_eq!(s["kind"], "aggregate", "{s}");
    assert_eq!(u(s, "events_in"), 42, "{s}");
    assert_eq!(u(s, "events_out"), 5, "{s}");
    assert_eq!(u(s, "events_aggregated"), 42, "{s}");
    // All five users' states were open at once, before the end emptied them.
    assert_eq!(u(s, "windows_open"), 5, "{s}");
    assert_eq!(u(s, "windows_emitted"), 5, "{s}");
    assert_eq!(u(s, "keys"), 0, "{s}");

    // Without --key: one result, no "key" field.
    let args = ["--agg", "orders=count", "--agg", "spent=sum(.amount)"];
    let expected = reference(&args_with_group(&args), &fixture_bytes(PURCHASES));
    let out = common::run(&[&args[..], &[PURCHASES]].concat(), b"");
    assert_eq!(common::status(&out), 0);
    assert_results(
        "group-by without --key",
        &expected.lines,
        &result_lines(&out),
    );
    assert_eq!(
        top_keys(&result_lines(&out)[0]).unwrap(),
        ["orders", "spent"]
    );
}

fn args_with_group<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--group"];
    v.extend_from_slice(args);
    v
}

#[test]
fn group_by_stage_sits_at_the_first_agg() {
    let out = common::run(
        &[
            "--stats=json",
            "-f",
            ".amount != null",
            "--key",
            ".user",
            "--agg",
            "n=count",
            "-f",
            ".n > 7",
            PURCHASES,
        ],
        b"",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    let stats = common::stats_json(&out);
    let names: Vec<&str> = stats["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["filter#1", "aggregate#2", "filter#3"], "{stats}");
    // Per user, non-null amounts: u01 8, u02 7, u03 12, u04 7, u05 7.
    assert_eq!(
        common::stdout(&out),
        "{\"key\":\"u01\",\"n\":8}\n{\"key\":\"u03\",\"n\":12}\n"
    );
}

// ---------------------------------------------------------------------------
// Usage errors

fn assert_usage_error(args: &[&str], option: &str) {
    let out = common::run(args, b"{\"ts\":1}\n");
    let stderr = common::stderr(&out);
    assert_eq!(common::status(&out), 2, "{args:?}: {stderr}");
    assert_eq!(common::stdout(&out), "", "{args:?}");
    assert!(
        stderr.contains(option),
        "{args:?}: stderr names {option}: {stderr}"
    );
}

#[test]
fn bad_window_specs_are_usage_errors() {
    for spec in [
        "hopping:1m",
        "tumbling",
        "tumbling:",
        "tumbling:10x",
        "tumbling:-5s",
        "sliding:5m",
        "sliding:5m/",
        "sliding:/1m",
        "session:",
        "session:abc",
        "",
    ] {
        assert_usage_error(
            &["--window", spec, "--time", ".ts", "--agg", "n=count"],
            "--window",
        );
    }
}

#[test]
fn bad_lateness_is_a_usage_error() {
    for dur in ["5 minutes", "5min", "ten", "-1s", "s", ""] {
        assert_usage_error(
            &[
                "--window",
                "tumbling:1m",
                "--time",
                ".ts",
                "--agg",
                "n=count",
                &format!("--lateness={dur}"),
            ],
            "--lateness",
        );
    }
}

#[test]
fn bad_aggregates_are_usage_errors() {
    for agg in [
        "n=median(.x)",
        "n=sum",
        "n=sum()",
        "n",
        "=count",
        "n=percentile(.x)",
        "n=percentile(.x; 2)",
        "n=collect(.x; 0)",
        "n=collect(.x; -1)",
        "n=collect(.x; 1.5)",
        "n=collect(.x; 1e3)",
        "n=collect(.x; )",
        "n=collect(; 5)",
        "n=collect(.x; 99999999999999999999999)",
    ] {
        assert_usage_error(
            &["--window", "tumbling:1m", "--time", ".ts", "--agg", agg],
            "--agg",
        );
        assert_usage_error(&["--key", ".k", "--agg", agg], "--agg");
    }
}

#[test]
fn a_bad_collect_limit_is_named() {
    let out = common::run(
        &[
            "--window",
            "tumbling:1m",
            "--time",
            ".ts",
            "--agg",
            "all=collect(.x; many)",
        ],
        b"{\"ts\":1}\n",
    );
    assert_eq!(common::status(&out), 2);
    assert_eq!(common::stdout(&out), "");
    assert_eq!(
        common::stderr(&out),
        "evq: --agg 'all=collect(.x; many)': LIMIT must be a positive integer, as in collect(EXPR; 10000)\n"
    );
}

#[test]
fn key_without_window_or_agg_is_a_usage_error() {
    assert_usage_error(&["--key", ".service"], "--key");
    assert_usage_error(
        &["-f", "true", "--key", ".service", "--key", ".path"],
        "--key",
    );
}
