//! Accounting: every event is counted, reported, dead-lettered or written;
//! exit statuses, I/O errors, closed pipes, signals and the progress bar.
//! Runs the built evq binary on the fixtures (paths relative to the project root).

use crate::common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MALFORMED: &str = "fixtures/malformed.ndjson";
const APP: &str = "fixtures/app.ndjson";
const BAD_LINES: [u64; 5] = [3, 6, 8, 9, 11];

/// The bytes of fixtures/malformed.ndjson. A colleague may still be writing
/// it: wait (bounded) until it exists with its 12 lines.
fn malformed_bytes() -> Vec<u8> {
    let path = common::root().join(MALFORMED);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(bytes) = std::fs::read(&path)
            && bytes.ends_with(b"\n")
            && bytes.iter().filter(|&&b| b == b'\n').count() == 12
        {
            return bytes;
        }
        assert!(
            Instant::now() < deadline,
            "{MALFORMED} did not appear with 12 lines"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Line `n` (1-based) of `bytes`, without its newline.
fn line_of(bytes: &[u8], n: u64) -> &[u8] {
    bytes
        .split(|&b| b == b'\n')
        .nth(n as usize - 1)
        .expect("line exists")
}

/// The lines of malformed.ndjson that are valid events, in order, with newlines.
fn malformed_valid_output(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in [1, 2, 5, 10, 12] {
        out.extend_from_slice(line_of(bytes, n));
        out.push(b'\n');
    }
    out
}

fn file_size(path: &str) -> u64 {
    std::fs::metadata(common::root().join(path))
        .expect("fixture")
        .len()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Standard base64 (RFC 4648, with padding), decoded independently of evq.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert!(
        text.len().is_multiple_of(4),
        "base64 length not a multiple of 4: {text}"
    );
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("not base64: {text}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Checks the accounting identities every --stats=json must satisfy, and
/// that bytes_read is `bytes` (the size of all inputs).
fn check_sums(stats: &Value, bytes: u64) {
    let ingested = u(stats, "events_ingested");
    let emitted = u(stats, "events_emitted");
    let parse_failed = u(stats, "parse_failed");
    let stages = stats["stages"].as_array().expect("stages array");
    let inputs = stats["inputs"].as_array().expect("inputs array");
    for key in ["elapsed_ms", "events_per_sec"] {
        assert!(stats[key].is_number(), "{key} missing in {stats}");
    }
    if stages.is_empty() {
        assert_eq!(
            ingested,
            parse_failed + emitted,
            "ingested = parse_failed + emitted: {stats}"
        );
    } else {
        assert_eq!(
            ingested,
            parse_failed + u(&stages[0], "events_in"),
            "ingested = parse_failed + stages[0].in: {stats}"
        );
        for (i, s) in stages.iter().enumerate() {
            let kind = s["kind"].as_str().expect("kind");
            assert_eq!(s["name"], format!("{kind}#{}", i + 1), "stage name: {s}");
            assert!(s["expr"].is_string(), "expr: {s}");
            assert!(
                s["processing_time_ms"].is_number(),
                "processing_time_ms: {s}"
            );
            let (inn, out, filtered, failed) = (
                u(s, "events_in"),
                u(s, "events_out"),
                u(s, "events_filtered"),
                u(s, "events_failed"),
            );
            // Each event that produced an output produced at least one.
            let producing = inn
                .checked_sub(filtered + failed)
                .unwrap_or_else(|| panic!("in < filtered + failed: {s}"));
            assert!(
                out >= producing,
                "out {out} < events producing output {producing}: {s}"
            );
            if producing == 0 {
                assert_eq!(out, 0, "{s}");
            }
            if kind == "filter" {
                assert_eq!(out, producing, "a filter passes each kept event once: {s}");
            }
            match stages.get(i + 1) {
                Some(next) => assert_eq!(
                    out,
                    u(next, "events_in"),
                    "stage {} out = stage {} in: {stats}",
                    i + 1,
                    i + 2
                ),
                None => assert_eq!(out, emitted, "last stage out = emitted: {stats}"),
            }
        }
    }
    let filtered: u64 = stages.iter().map(|s| u(s, "events_filtered")).sum();
    assert_eq!(
        u(stats, "events_filtered"),
        filtered,
        "events_filtered = sum of stages: {stats}"
    );
    let stage_failed: u64 = stages.iter().map(|s| u(s, "events_failed")).sum();
    assert_eq!(
        u(stats, "events_failed"),
        parse_failed + stage_failed,
        "events_failed = parse + stages: {stats}"
    );
    let lines: u64 = inputs.iter().map(|i| u(i, "lines")).sum();
    assert_eq!(lines, ingested, "sum of inputs.lines = ingested: {stats}");
    let input_bytes: u64 = inputs.iter().map(|i| u(i, "bytes")).sum();
    assert_eq!(input_bytes, bytes, "sum of inputs.bytes: {stats}");
    assert_eq!(u(stats, "bytes_read"), bytes, "bytes_read: {stats}");
}

// ---------------------------------------------------------------------------
// Failed events: reports on stderr

#[test]
fn malformed_lines_are_reported_with_file_and_line_and_the_rest_goes_on() {
    let bytes = malformed_bytes();
    let out = common::run(&[MALFORMED], b"");
    assert_eq!(common::status(&out), 3, "stderr: {}", common::stderr(&out));
    assert_eq!(
        out.stdout,
        malformed_valid_output(&bytes),
        "valid events pass through byte for byte"
    );
    let err = common::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "one report per failed line: {err}");
    for (line, n) in lines.iter().zip(BAD_LINES) {
        assert!(
            line.starts_with(&format!("{MALFORMED}:{n}: ")),
            "report {line:?} for line {n}"
        );
    }
    assert!(
        lines[0].starts_with(&format!(
            "{MALFORMED}:3: invalid JSON: EOF while parsing a string at column "
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{MALFORMED}:6: invalid JSON: trailing characters")),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("{MALFORMED}:8: invalid JSON: ")),
        "{err}"
    );
    assert!(
        lines[3].starts_with(&format!("{MALFORMED}:9: invalid UTF-8")),
        "{err}"
    );
    assert!(
        lines[4].starts_with(&format!("{MALFORMED}:11: invalid JSON: ")),
        "{err}"
    );
}

#[test]
fn stdin_failures_are_reported_as_stdin() {
    let out = common::run(&["-"], b"{\"a\":1}\n\nnope\n");
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stdout(&out), "{\"a\":1}\n");
    assert_eq!(
        common::stderr(&out),
        "<stdin>:3: invalid JSON: expected value at column 1\n"
    );
}

#[test]
fn only_ten_reports_then_a_count() {
    let input: String = (1..=13).map(|i| format!("bad {i}\n")).collect();
    let out = common::run(&[], input.as_bytes());
    assert_eq!(common::status(&out), 3);
    let err = common::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 11, "{err}");
    for (i, line) in lines[..10].iter().enumerate() {
        assert!(
            line.starts_with(&format!("<stdin>:{}: invalid JSON: ", i + 1)),
            "{line}"
        );
    }
    assert_eq!(
        lines[10],
        "evq: 3 more failed events not shown (--dead-letter keeps every one)"
    );

    // Exactly 10: no count line.
    let input: String = (1..=10).map(|i| format!("bad {i}\n")).collect();
    let out = common::run(&[], input.as_bytes());
    assert_eq!(common::stderr(&out).lines().count(), 10);
}

#[test]
fn quiet_suppresses_reports_but_still_counts_and_dead_letters() {
    let bytes = malformed_bytes();
    let dir = common::tempdir();
    let dl = dir.path().join("dl.ndjson");
    let dl_arg = dl.to_str().unwrap();
    let out = common::run(&["-q", "--dead-letter", dl_arg, MALFORMED], b"");
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stderr(&out), "");
    assert_eq!(out.stdout, malformed_valid_output(&bytes));
    assert_eq!(
        String::from_utf8(common::read(&dl))
            .unwrap()
            .lines()
            .count(),
        5
    );

    let input: String = (1..=13).map(|i| format!("bad {i}\n")).collect();
    let out = common::run(&["-q", "--stats=json"], input.as_bytes());
    assert_eq!(common::status(&out), 3);
    let err = common::stderr(&out);
    assert_eq!(err.lines().count(), 1, "only the stats line: {err}");
    assert_eq!(u(&common::stats_json(&out), "parse_failed"), 13);

    // Stage errors too.
    let out = common::run(&["-q", "-m", ".a + 1"], b"{\"a\":\"s\"}\n");
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stderr(&out), "");
}

#[test]
fn runtime_errors_name_the_stage() {
    let out = common::run(
        &["-m", ".a + 1"],
        b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"a\":\"s\"}\n{\"a\":5}\n",
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stdout(&out), "2\n3\n4\n5\n6\n");
    assert_eq!(
        common::stderr(&out),
        "<stdin>:5: map#1: cannot calculate \"s\" + 1\n"
    );

    // Names are kind#position in the whole chain.
    let out = common::run(
        &["-f", "true", "-m", ".a", "-f", ". + 1 > 0"],
        b"{\"a\":1}\n{\"a\":\"s\"}\n",
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stdout(&out), "1\n");
    assert_eq!(
        common::stderr(&out),
        "<stdin>:2: filter#3: cannot calculate \"s\" + 1\n"
    );

    let out = common::run(
        &["--stats=json", "-f", "true", "-m", ".", "-f", "true"],
        b"1\n",
    );
    let stats = common::stats_json(&out);
    let names: Vec<&str> = stats["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["filter#1", "map#2", "filter#3"]);
    let kinds: Vec<&str> = stats["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["filter", "map", "filter"]);
    assert_eq!(stats["stages"][1]["expr"], ".");
}

// ---------------------------------------------------------------------------
// --on-error

#[test]
fn on_error_skip_is_the_default_and_exits_3() {
    let bytes = malformed_bytes();
    for args in [&[MALFORMED][..], &["--on-error", "skip", MALFORMED][..]] {
        let out = common::run(args, b"");
        assert_eq!(common::status(&out), 3, "{args:?}");
        assert_eq!(out.stdout, malformed_valid_output(&bytes), "{args:?}");
    }
}

#[test]
fn on_error_abort_stops_at_the_first_failed_event() {
    let bytes = malformed_bytes();
    let dir = common::tempdir();
    let dl = dir.path().join("dl.ndjson");
    let out = common::run(
        &[
            "--on-error",
            "abort",
            "--stats=json",
            "--dead-letter",
            dl.to_str().unwrap(),
            MALFORMED,
        ],
        b"",
    );
    assert_eq!(common::status(&out), 3);
    let mut expected = Vec::new();
    for n in [1, 2] {
        expected.extend_from_slice(line_of(&bytes, n));
        expected.push(b'\n');
    }
    assert_eq!(
        out.stdout, expected,
        "lines before the failure written, none after"
    );
    let err = common::stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one report and the stats: {err}");
    assert!(lines[0].starts_with(&format!("{MALFORMED}:3: ")), "{err}");
    let stats = common::stats_json(&out);
    assert_eq!(u(&stats, "events_ingested"), 3, "{stats}");
    assert_eq!(u(&stats, "events_emitted"), 2, "{stats}");
    assert_eq!(u(&stats, "events_failed"), 1, "{stats}");
    let records = String::from_utf8(common::read(&dl)).unwrap();
    assert_eq!(records.lines().count(), 1, "{records}");

    // A stage failure aborts too; to a file output as well.
    let out_file = dir.path().join("out.ndjson");
    let out = common::run(
        &[
            "--on-error",
            "abort",
            "-o",
            out_file.to_str().unwrap(),
            "-m",
            ".a + 1",
        ],
        b"{\"a\":1}\n{\"a\":\"s\"}\n{\"a\":2}\n",
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::read(&out_file), b"2\n");
    assert_eq!(
        common::stderr(&out),
        "<stdin>:2: map#1: cannot calculate \"s\" + 1\n"
    );

    // A bad line aborts a chain run by direct evaluation too.
    let out = common::run(
        &["--on-error", "abort", "-f", ".a > 0"],
        b"{\"a\":1}\nnot json\n{\"a\":2}\n",
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stdout(&out), "{\"a\":1}\n");
    assert_eq!(
        common::stderr(&out),
        "<stdin>:2: invalid JSON: expected value at column 1\n"
    );
}

#[test]
fn on_error_ignore_goes_on_and_exits_0() {
    let bytes = malformed_bytes();
    let out = common::run(&["--on-error", "ignore", MALFORMED], b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(out.stdout, malformed_valid_output(&bytes));
    assert_eq!(
        common::stderr(&out).lines().count(),
        5,
        "failures still reported"
    );

    let out = common::run(
        &["--on-error", "ignore", "--stats=json", "-m", ".a + 1"],
        b"{\"a\":\"s\"}\n{\"a\":1}\n",
    );
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stdout(&out), "2\n");
    assert_eq!(u(&common::stats_json(&out), "events_failed"), 1);
}

// ---------------------------------------------------------------------------
// --dead-letter

#[test]
fn dead_letter_keeps_the_original_bytes_of_every_failed_line() {
    let bytes = malformed_bytes();
    let dir = common::tempdir();
    let dl = dir.path().join("dead.ndjson");
    let out = common::run(&["--dead-letter", dl.to_str().unwrap(), MALFORMED], b"");
    assert_eq!(common::status(&out), 3);
    let text = String::from_utf8(common::read(&dl)).expect("dead-letter file is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "{{\"source\":\"{MALFORMED}\",\"line\":3,\"stage\":null,\"error\":\"invalid JSON: "
        )),
        "keys in order source, line, stage, error: {}",
        lines[0]
    );
    for (line, n) in lines.iter().zip(BAD_LINES) {
        let rec: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = rec.as_object().unwrap();
        assert_eq!(rec["source"], MALFORMED);
        assert_eq!(u(&rec, "line"), n);
        assert_eq!(rec["stage"], Value::Null);
        assert!(
            rec["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{line}"
        );
        // Key order: source, line, stage, error, then raw or raw_base64.
        let pos = |k: &str| {
            line.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no {k} in {line}"))
        };
        let raw_key = if n == 9 { "raw_base64" } else { "raw" };
        assert!(
            pos("source") < pos("line")
                && pos("line") < pos("stage")
                && pos("stage") < pos("error")
                && pos("error") < pos(raw_key),
            "{line}"
        );
        assert_eq!(obj.len(), 5, "{line}");
        let original = line_of(&bytes, n);
        let recovered = if n == 9 {
            assert!(
                !obj.contains_key("raw"),
                "invalid UTF-8 has raw_base64 only: {line}"
            );
            base64_decode(rec["raw_base64"].as_str().expect("raw_base64 string"))
        } else {
            assert!(!obj.contains_key("raw_base64"), "{line}");
            rec["raw"].as_str().expect("raw string").as_bytes().to_vec()
        };
        assert_eq!(
            recovered, original,
            "line {n} bytes recovered from the dead letter"
        );
    }
    assert!(
        line_of(&bytes, 9).contains(&0xE9),
        "line 9 is the invalid UTF-8 one"
    );
}

#[test]
fn dead_letter_appends() {
    malformed_bytes();
    let dir = common::tempdir();
    let dl = dir.path().join("dead.ndjson");
    for _ in 0..2 {
        let out = common::run(
            &["-q", "--dead-letter", dl.to_str().unwrap(), MALFORMED],
            b"",
        );
        assert_eq!(common::status(&out), 3);
    }
    let text = String::from_utf8(common::read(&dl)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "two runs, twice the records: {text}");
    assert_eq!(lines[..5], lines[5..]);

    // Pre-existing content is kept.
    let dl2 = dir.path().join("existing.ndjson");
    std::fs::write(&dl2, b"{\"old\":true}\n").unwrap();
    let out = common::run(&["-q", "--dead-letter", dl2.to_str().unwrap()], b"x\n");
    assert_eq!(common::status(&out), 3);
    let text = String::from_utf8(common::read(&dl2)).unwrap();
    assert!(
        text.starts_with("{\"old\":true}\n{\"source\":\"-\",\"line\":1,"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn dead_letter_records_stage_errors_from_stdin() {
    let dir = common::tempdir();
    let dl = dir.path().join("dead.ndjson");
    let out = common::run(
        &[
            "--dead-letter",
            dl.to_str().unwrap(),
            "-f",
            ".a != null",
            "-m",
            ".a + 1",
        ],
        b"{\"a\":1}\n\n{\"a\":\"s\"}\n{\"a\":null}\n",
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stdout(&out), "2\n");
    assert_eq!(
        common::stderr(&out),
        "<stdin>:3: map#2: cannot calculate \"s\" + 1\n"
    );
    let text = String::from_utf8(common::read(&dl)).unwrap();
    assert_eq!(
        text,
        "{\"source\":\"-\",\"line\":3,\"stage\":\"map#2\",\"error\":\"cannot calculate \\\"s\\\" + 1\",\"raw\":\"{\\\"a\\\":\\\"s\\\"}\"}\n"
    );
}

// ---------------------------------------------------------------------------
// --stats

#[test]
fn stats_json_counts_the_malformed_fixture() {
    let bytes = malformed_bytes();
    let out = common::run(&["--stats=json", MALFORMED], b"");
    assert_eq!(common::status(&out), 3);
    let stats = common::stats_json(&out);
    assert_eq!(u(&stats, "events_ingested"), 10, "{stats}");
    assert_eq!(u(&stats, "parse_failed"), 5, "{stats}");
    assert_eq!(u(&stats, "events_failed"), 5, "{stats}");
    assert_eq!(u(&stats, "events_emitted"), 5, "{stats}");
    assert_eq!(u(&stats, "events_filtered"), 0, "{stats}");
    assert_eq!(stats["stages"], serde_json::json!([]));
    let input = &stats["inputs"][0];
    assert_eq!(input["path"], MALFORMED);
    assert_eq!(u(input, "lines"), 10);
    assert_eq!(u(input, "bytes"), bytes.len() as u64);
    assert_eq!(u(input, "failed"), 5);
    assert!(input.get("error").is_none(), "{input}");
    check_sums(&stats, bytes.len() as u64);
    // The stats line is the last line, after the reports.
    let err = common::stderr(&out);
    assert_eq!(err.lines().count(), 6, "{err}");
}

#[test]
fn stats_json_sums_hold_with_filter_and_fan_out() {
    let bytes = malformed_bytes();
    let out = common::run(
        &[
            "--stats=json",
            "-f",
            ".level == \"error\"",
            "-m",
            ".msg, .msg",
            MALFORMED,
        ],
        b"",
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(
        common::stdout(&out),
        "\"db down\"\n\"db down\"\n\"charge failed\"\n\"charge failed\"\n"
    );
    let stats = common::stats_json(&out);
    check_sums(&stats, bytes.len() as u64);
    let s = &stats["stages"];
    assert_eq!(
        (
            u(&s[0], "events_in"),
            u(&s[0], "events_out"),
            u(&s[0], "events_filtered")
        ),
        (5, 2, 3),
        "{stats}"
    );
    assert_eq!(
        (u(&s[1], "events_in"), u(&s[1], "events_out")),
        (2, 4),
        "{stats}"
    );
    assert_eq!(u(&stats, "events_emitted"), 4);
    assert_eq!(u(&stats, "events_filtered"), 3);
}

#[test]
fn stats_json_sums_hold_with_map_errors_after_fan_out() {
    let input = b"{\"a\":1}\n{\"a\":\"s\"}\n\n{\"a\":[1]}\n{\"a\":5}\n";
    let out = common::run(
        &[
            "-q",
            "--stats=json",
            "-m",
            ".a, .a",
            "-m",
            ". + 1",
            "-f",
            ". > 2",
        ],
        input,
    );
    assert_eq!(common::status(&out), 3);
    assert_eq!(common::stdout(&out), "6\n6\n");
    let stats = common::stats_json(&out);
    check_sums(&stats, input.len() as u64);
    let s = &stats["stages"];
    assert_eq!(u(&stats, "events_ingested"), 4);
    assert_eq!(
        (u(&s[0], "events_in"), u(&s[0], "events_out")),
        (4, 8),
        "{stats}"
    );
    assert_eq!(u(&s[1], "events_in"), 8);
    assert_eq!(u(&s[1], "events_failed"), 4, "{stats}");
    assert_eq!(u(&s[2], "events_filtered"), 2, "{stats}");
    assert_eq!(stats["inputs"][0]["path"], "-");

    // A map that yields nothing filters the event.
    let out = common::run(
        &["--stats=json", "-m", "select(.a > 1)", "-m", "."],
        b"{\"a\":1}\n{\"a\":2}\n",
    );
    assert_eq!(common::status(&out), 0);
    let stats = common::stats_json(&out);
    check_sums(&stats, 16);
    assert_eq!(u(&stats["stages"][0], "events_filtered"), 1, "{stats}");
}

#[test]
fn stats_json_sums_hold_over_multiple_inputs() {
    malformed_bytes();
    let files = [
        APP,
        MALFORMED,
        "fixtures/bom-crlf.ndjson",
        "fixtures/transactions.ndjson",
    ];
    let total: u64 = files.iter().map(|f| file_size(f)).sum();
    let mut args = vec![
        "-q",
        "--stats=json",
        "-f",
        ".level != \"debug\"",
        "-m",
        ".service, .level",
        "-m",
        "select(. != \"info\")",
        "-m",
        "ascii_upcase",
    ];
    args.extend(files);
    let out = common::run(&args, b"");
    assert_eq!(common::status(&out), 3);
    let stats = common::stats_json(&out);
    check_sums(&stats, total);
    let inputs = stats["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 4);
    for (input, file) in inputs.iter().zip(files) {
        assert_eq!(input["path"], file);
        assert_eq!(u(input, "bytes"), file_size(file), "{input}");
    }
    let lines: Vec<u64> = inputs.iter().map(|i| u(i, "lines")).collect();
    assert_eq!(lines, [40, 10, 3, 25]);
    assert_eq!(u(&stats, "parse_failed"), 5);
    assert!(
        u(&stats["stages"][3], "events_failed") > 0,
        "ascii_upcase on null fails: {stats}"
    );
    assert_eq!(
        common::stdout(&out).lines().count() as u64,
        u(&stats, "events_emitted")
    );

    // No stages, several inputs.
    let out = common::run(&["--stats=json", APP, "fixtures/transactions.ndjson"], b"");
    assert_eq!(common::status(&out), 0);
    let stats = common::stats_json(&out);
    check_sums(
        &stats,
        file_size(APP) + file_size("fixtures/transactions.ndjson"),
    );
    assert_eq!(u(&stats, "events_emitted"), 65);
}

#[test]
fn stats_text_shows_a_table_with_stage_rows() {
    malformed_bytes();
    let out = common::run(
        &[
            "--stats",
            "-q",
            "-f",
            ".level == \"error\"",
            "-m",
            ".msg, .msg",
            MALFORMED,
        ],
        b"",
    );
    assert_eq!(common::status(&out), 3);
    let err = common::stderr(&out);
    // The summary wording may change; its counts may not.
    for count in ["10 events ingested", "4 emitted", "3 filtered", "5 failed"] {
        assert!(err.contains(count), "summary lacks {count:?}: {err}");
    }
    assert!(
        err.lines().any(|l| l.contains("533 bytes")),
        "bytes read in the summary: {err}"
    );
    let row = |name: &str| -> Vec<String> {
        let line = err
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {err}"));
        line.split_whitespace().map(String::from).collect()
    };
    // stage, in, out, filtered, failed, time, expr
    assert_eq!(
        row("filter#1")[..5],
        ["filter#1", "5", "2", "3", "0"],
        "{err}"
    );
    assert_eq!(row("map#2")[..5], ["map#2", "2", "4", "0", "0"], "{err}");
    assert_eq!(row(MALFORMED), [MALFORMED, "10", "533", "5"], "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("stage") && l.contains("filtered")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Exit statuses and I/O errors

#[test]
fn exit_statuses() {
    let out = common::run(&[APP], b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(out.stdout, common::read(&common::root().join(APP)));

    let out = common::run(&["-e", "-f", "false", APP], b"");
    assert_eq!(common::status(&out), 1, "nothing emitted under -e");
    assert_eq!(common::stdout(&out), "");
    let out = common::run(&["-e", "-f", ".level == \"error\"", APP], b"");
    assert_eq!(common::status(&out), 0);
    let out = common::run(&["-e", "-f", "false"], b"");
    assert_eq!(common::status(&out), 1, "empty input under -e");

    let out = common::run(&["-f", ".["], b"{}\n");
    assert_eq!(common::status(&out), 2, "expression that does not compile");
    assert_eq!(common::stdout(&out), "");
    let out = common::run(&["--no-such-flag"], b"");
    assert_eq!(common::status(&out), 2, "usage error");

    let out = common::run(&["-e", "-q", "-f", "false", MALFORMED], b"");
    assert_eq!(common::status(&out), 3, "failures win over nothing emitted");
}

#[test]
fn missing_input_is_reported_and_others_still_processed() {
    assert!(!common::root().join("missing.ndjson").exists());
    let app = common::read(&common::root().join(APP));
    let out = common::run(&["--stats=json", APP, "missing.ndjson", APP], b"");
    assert_eq!(common::status(&out), 4);
    assert_eq!(out.stdout, [app.clone(), app.clone()].concat());
    let err = common::stderr(&out);
    assert_eq!(
        err.lines().next(),
        Some("evq: missing.ndjson: No such file or directory"),
        "{err}"
    );
    let stats = common::stats_json(&out);
    let missing = &stats["inputs"][1];
    assert_eq!(missing["path"], "missing.ndjson");
    assert_eq!(missing["error"], "No such file or directory", "{stats}");
    assert_eq!(u(missing, "lines"), 0);
    assert!(stats["inputs"][0].get("error").is_none());
    check_sums(&stats, 2 * app.len() as u64);
}

#[test]
fn directory_input_is_a_read_error() {
    let out = common::run(&["fixtures", APP], b"");
    assert_eq!(common::status(&out), 4);
    let err = common::stderr(&out);
    assert!(
        err.lines().any(|l| l.starts_with("evq: fixtures: ")),
        "message names the directory: {err}"
    );
    assert_eq!(
        out.stdout,
        common::read(&common::root().join(APP)),
        "other inputs still processed"
    );
}

#[test]
fn output_write_error_exits_4() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("no /dev/full here: skipped");
        return;
    }
    let out = common::run(&["-o", "/dev/full", APP], b"");
    assert_eq!(common::status(&out), 4);
    let err = common::stderr(&out);
    assert_eq!(
        err,
        "evq: cannot write to /dev/full: No space left on device\n"
    );
}

#[test]
fn dead_letter_in_missing_directory_fails_before_reading() {
    let dir = common::tempdir();
    let dl = dir.path().join("no-such-dir").join("dead.ndjson");
    let dl_arg = dl.to_str().unwrap();
    let out = common::run(&["--dead-letter", dl_arg], b"{\"a\":1}\nbad\n");
    assert_eq!(common::status(&out), 4);
    assert_eq!(common::stdout(&out), "", "no input processed");
    let err = common::stderr(&out);
    assert!(err.contains(dl_arg), "message names the file: {err}");
    assert!(!err.contains("<stdin>"), "input was not read: {err}");
    assert!(!dl.exists());
}

// ---------------------------------------------------------------------------
// Closed output pipe

/// Kills (and reaps) the child if the test panics before it ended.
struct Guard(Option<Child>);

impl Guard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
    /// Waits at most `limit` for the child to exit; kills it and panics otherwise.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child().try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("evq did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take()
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_to_end_in_thread(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

#[test]
fn closed_pipe_ends_quietly_with_status_0() {
    let dir = common::tempdir();
    let big = dir.path().join("big.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let pad = "x".repeat(60);
        for i in 0..60_000 {
            writeln!(f, "{{\"i\":{i},\"pad\":\"{pad}\"}}").unwrap();
        }
    }
    assert!(std::fs::metadata(&big).unwrap().len() > 4_500_000);
    for stages in [&[][..], &["-m", ".i"][..]] {
        let mut guard = Guard(Some(
            common::evq()
                .args(stages)
                .arg(&big)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn evq"),
        ));
        let stderr = read_to_end_in_thread(guard.child().stderr.take().unwrap());
        let mut stdout = BufReader::new(guard.child().stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let expected_first = if stages.is_empty() {
            format!("{{\"i\":0,\"pad\":\"{}\"}}\n", "x".repeat(60))
        } else {
            "0\n".into()
        };
        assert_eq!(first, expected_first);
        drop(stdout);
        let status = guard.wait(Duration::from_secs(10));
        let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
        assert_eq!(
            status.code(),
            Some(0),
            "{stages:?}: status {status:?}, stderr: {err}"
        );
        assert_eq!(
            err, "",
            "{stages:?}: nothing on stderr (no panic, no error)"
        );
    }
}

// ---------------------------------------------------------------------------
// Signals

fn interrupted(signal: &str, expected: i32) {
    let started = Instant::now();
    let mut guard = Guard(Some(
        common::evq()
            .args(["--stats=json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn evq"),
    ));
    let pid = guard.child().id();
    let stderr = read_to_end_in_thread(guard.child().stderr.take().unwrap());
    let stdout = guard.child().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let mut stdin = guard.child().stdin.take().unwrap();
    stdin.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
    stdin.flush().unwrap();
    // stdin stays open: evq is idle, waiting for more input.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => {
                panic!("{signal}: events not flushed while input is idle ({e:?}); got {lines:?}")
            }
        }
    }
    assert_eq!(lines, ["{\"a\":1}", "{\"a\":2}"]);
    let kill = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = guard.wait(Duration::from_secs(3));
    drop(stdin);
    let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(
        status.code(),
        Some(expected),
        "{signal}: status {status:?}, stderr: {err}"
    );
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
    }
    assert_eq!(lines, ["{\"a\":1}", "{\"a\":2}"], "nothing more written");
    let last = err
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{signal}: no stats on stderr"));
    let stats: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(u(&stats, "events_ingested"), 2, "{stats}");
    assert_eq!(u(&stats, "events_emitted"), 2, "{stats}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{signal} test took {:?}",
        started.elapsed()
    );
}

#[test]
fn sigint_flushes_prints_stats_and_exits_130() {
    interrupted("INT", 130);
}

#[test]
fn sigterm_flushes_prints_stats_and_exits_143() {
    interrupted("TERM", 143);
}

// ---------------------------------------------------------------------------
// Progress

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let out = common::run(&[APP], b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), "", "clean input: stderr empty");
    let out = common::run(
        &["-f", ".level == \"error\""],
        &common::read(&common::root().join(APP)),
    );
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stderr(&out), "");
}

#[test]
fn progress_flag_draws_on_stderr_without_touching_stdout() {
    let app = common::read(&common::root().join(APP));
    let out = common::run(&["--progress", APP], b"");
    assert_eq!(common::status(&out), 0);
    assert!(
        !out.stderr.is_empty(),
        "--progress draws something on stderr"
    );
    assert_eq!(out.stdout, app, "stdout unchanged byte for byte");

    let plain = common::run(&["-m", "{level, msg}", APP], b"");
    let with_bar = common::run(&["--progress", "-m", "{level, msg}", APP], b"");
    assert!(!with_bar.stderr.is_empty());
    assert_eq!(with_bar.stdout, plain.stdout);

    // Last one wins.
    let out = common::run(&["--progress", "--no-progress", APP], b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(
        common::stderr(&out),
        "",
        "--no-progress after --progress wins"
    );
    assert_eq!(out.stdout, app);
    let out = common::run(&["--no-progress", "--progress", APP], b"");
    assert!(
        !out.stderr.is_empty(),
        "--progress after --no-progress wins"
    );
    assert_eq!(out.stdout, app);
}

#[test]
fn deep_nesting_is_a_failed_event_with_or_without_a_stage() {
    // Deeper than the nesting limit of 128: failed, never a stack overflow.
    let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let ok = format!("{}{}\n", "[".repeat(100), "]".repeat(100));
    let input = format!("{ok}{deep}{ok}");
    for stages in [&[][..], &["-f", "true"][..], &["-m", "."][..]] {
        let mut args = vec!["-q", "--stats=json"];
        args.extend_from_slice(stages);
        let out = common::run(&args, input.as_bytes());
        assert_eq!(
            common::status(&out),
            3,
            "{stages:?}: {}",
            common::stderr(&out)
        );
        assert_eq!(common::stdout(&out), format!("{ok}{ok}"), "{stages:?}");
        let stats = common::stats_json(&out);
        assert_eq!(stats["parse_failed"], 1, "{stages:?}");
    }
}

#[test]
fn stats_every_prints_periodic_reports_with_interval_rates() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = common::evq()
        .args(["--stats=json", "--stats-every", "100ms", "-f", ".a > 1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    stdin.write_all(b"{\"a\":3}\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(common::status(&out), 0);
    let reports: Vec<serde_json::Value> = common::stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, periodic) = reports.split_last().unwrap();
    assert!(
        periodic.len() >= 2,
        "expected periodic reports, got {}",
        reports.len()
    );
    assert!(
        last.get("interval").is_none(),
        "the final report has no interval"
    );
    assert_eq!(last["events_ingested"], 3);
    let mut previous = 0;
    let mut summed = 0;
    for r in periodic {
        let interval = &r["interval"];
        assert!(interval["interval_ms"].as_f64().unwrap() >= 100.0, "{r}");
        let now = r["events_ingested"].as_u64().unwrap();
        // The interval counts what came since the previous report.
        assert_eq!(
            interval["events_ingested"].as_u64().unwrap(),
            now - previous,
            "{r}"
        );
        summed += now - previous;
        previous = now;
    }
    assert!(summed <= 3);
    // Some report came while the pipe was still open, between the two writes.
    assert!(
        periodic.iter().any(|r| r["events_ingested"] == 2),
        "{reports:?}"
    );
}

#[test]
fn stats_every_needs_a_duration() {
    let out = common::run(&["--stats-every", "soon"], b"");
    assert_eq!(common::status(&out), 2);
    assert!(common::stderr(&out).starts_with("evq: --stats-every: invalid duration \"soon\""));
}
