//! Integration tests of evq's event processing: stages (-f/-m) and their
//! order, variables, byte-exact output, raw output, -o, -e, jaq's standard
//! library, compile errors and the command line. Expectations are computed in
//! Rust from the fixtures (with serde_json) wherever the fixtures are used.

use crate::common;

use serde_json::Value;
use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------- helpers

/// The bytes of a fixture file.
fn fixture_bytes(name: &str) -> Vec<u8> {
    common::read(&common::root().join(common::fixture(name)))
}

/// The events of an NDJSON text as evq should see them: a BOM at the start
/// dropped, lines split on LF, a trailing CR dropped, blank lines skipped.
fn raw_lines(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).expect("fixture is UTF-8");
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Each event of a fixture: the line as read and its parsed value.
fn events(name: &str) -> Vec<(String, Value)> {
    raw_lines(&fixture_bytes(name))
        .into_iter()
        .map(|l| {
            let v = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
            (l, v)
        })
        .collect()
}

/// Lines, each followed by "\n".
fn joined<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> String {
    lines
        .into_iter()
        .map(|l| format!("{}\n", l.as_ref()))
        .collect()
}

/// A JSON string literal as jq -c prints it (the fixtures' strings hold no
/// control characters, where serde_json and jq could differ).
fn json_str(s: &str) -> String {
    assert!(
        !s.chars().any(|c| c.is_control()),
        "unexpected control character in {s:?}"
    );
    serde_json::to_string(s).unwrap()
}

fn str_field<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "evq {args:?}: status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs evq, asserts exit status `code`, returns stdout.
fn run_status(args: &[&str], stdin: &[u8], code: i32) -> String {
    let out = common::run(args, stdin);
    assert_eq!(common::status(&out), code, "{}", describe(args, &out));
    common::stdout(&out)
}

/// Runs evq, asserts success and an empty stderr, returns stdout.
fn run_ok(args: &[&str], stdin: &[u8]) -> String {
    let out = common::run(args, stdin);
    assert_eq!(common::status(&out), 0, "{}", describe(args, &out));
    assert_eq!(common::stderr(&out), "", "{}", describe(args, &out));
    common::stdout(&out)
}

/// Epoch seconds formatted as `YYYY-MM-DDTHH:MM:SSZ` (what `todate` prints).
fn iso8601(epoch: i64) -> String {
    let (days, secs) = (epoch.div_euclid(86400), epoch.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Whole epoch seconds of `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
fn epoch_of(ts: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().unwrap();
    assert!(
        ts.ends_with('Z') && &ts[10..11] == "T",
        "unexpected timestamp {ts}"
    );
    common::days_from_civil(n(0..4), n(5..7), n(8..10)) * 86400
        + n(11..13) * 3600
        + n(14..16) * 60
        + n(17..19)
}

// ---------------------------------------------------------------- passthrough

#[test]
fn no_stage_writes_app_fixture_byte_for_byte() {
    let bytes = fixture_bytes("app.ndjson");
    let out = run_ok(&["fixtures/app.ndjson"], b"");
    assert_eq!(out.as_bytes(), &bytes[..]);
    // Numbers like 12.50 and escapes like \u00e9 are really in there.
    assert!(out.contains("\"latency_ms\":12.50,") && out.contains("r\\u00e9sum\\u00e9"));
}

#[test]
fn transactions_crlf_line_and_missing_final_newline() {
    let bytes = fixture_bytes("transactions.ndjson");
    assert!(
        !bytes.ends_with(b"\n"),
        "fixture should lack a final newline"
    );
    assert!(
        bytes.windows(2).any(|w| w == b"\r\n"),
        "fixture should hold a CRLF line"
    );
    let lines = raw_lines(&bytes);
    assert_eq!(lines.len(), 25);
    let expected = joined(&lines);
    assert!(!expected.contains('\r'));

    assert_eq!(run_ok(&["fixtures/transactions.ndjson"], b""), expected);
    // A filter that keeps everything leaves every event unchanged too.
    assert_eq!(
        run_ok(&["-f", "true", "fixtures/transactions.ndjson"], b""),
        expected
    );
    // The CRLF line (tx-0013) is a normal event.
    assert_eq!(
        run_ok(
            &[
                "-f",
                ".id == \"tx-0013\"",
                "-m",
                ".amount",
                "fixtures/transactions.ndjson"
            ],
            b""
        ),
        "2499.99\n"
    );
}

#[test]
fn bom_and_crlf_fixture() {
    let all = "{\"id\":1,\"level\":\"info\"}\n{\"id\":2,\"level\":\"error\"}\n{\"id\":3,\"level\":\"info\"}\n";
    assert_eq!(run_ok(&["fixtures/bom-crlf.ndjson"], b""), all);
    assert_eq!(
        run_ok(
            &["-f", ".level == \"error\"", "fixtures/bom-crlf.ndjson"],
            b""
        ),
        "{\"id\":2,\"level\":\"error\"}\n"
    );
    // The first event parses despite the BOM in front of it.
    assert_eq!(
        run_ok(&["-m", ".id", "fixtures/bom-crlf.ndjson"], b""),
        "1\n2\n3\n"
    );
    // The same bytes on standard input.
    assert_eq!(run_ok(&[], &fixture_bytes("bom-crlf.ndjson")), all);
}

#[test]
fn blank_lines_skipped_and_last_line_gets_a_newline() {
    let input = b"{\"a\":1}\n\n   \t \n\r\n{\"a\":2}\r\n\n{\"a\":3}";
    assert_eq!(run_ok(&[], input), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    assert_eq!(run_ok(&["-"], input), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    assert_eq!(run_ok(&[], b""), "");
    assert_eq!(run_ok(&[], b"\n\n  \n"), "");
}

#[test]
fn unchanged_events_keep_their_exact_bytes() {
    let lines = [
        r#"{"b": 1.50, "a": 1e2,  "s": "caf\u00e9 \"q\" \/"}"#,
        r#"{"z":[1, 2.0 ,3E+2],"y":{"x" : null}}"#,
        r#"[ 1.10 , "\u0041" ]"#,
    ];
    let input = joined(lines);
    // No stage, and filters only: written as read.
    assert_eq!(run_ok(&[], input.as_bytes()), input);
    assert_eq!(
        run_ok(&["-f", "true", "-f", "length > 0"], input.as_bytes()),
        input
    );
    assert_eq!(
        run_ok(
            &["-f", "type == \"object\" and .a == 100"],
            input.as_bytes()
        ),
        format!("{}\n", lines[0])
    );

    // Filtering app.ndjson: the kept lines are exactly the input lines.
    let app = events("app.ndjson");
    let expected = joined(
        app.iter()
            .filter(|(_, v)| v["level"] == "info")
            .map(|(l, _)| l),
    );
    assert!(expected.contains("3000.0") || expected.contains("0.80"));
    assert_eq!(
        run_ok(&["-f", ".level == \"info\"", "fixtures/app.ndjson"], b""),
        expected
    );
}

// ---------------------------------------------------------------- filters

#[test]
fn filter_truthiness_follows_jq() {
    let event = "{\"a\":1,\"f\":false}\n";
    let cases: &[(&str, bool)] = &[
        ("true", true),
        ("false", false),
        ("null", false),
        ("empty", false),
        ("0", true),
        ("\"\"", true),
        ("[]", true),
        ("{}", true),
        (".f", false),
        (".missing", false),
        ("(null, false)", false),
        ("(false, 0)", true),
        ("(null, empty, \"x\")", true),
        (".a == 1", true),
        (".a > 1", false),
    ];
    for (expr, kept) in cases {
        let got = run_ok(&["-f", expr], event.as_bytes());
        let want = if *kept { event } else { "" };
        assert_eq!(got, want, "-f '{expr}'");
    }
}

#[test]
fn filter_keeps_an_event_once_however_many_truthy_values() {
    assert_eq!(
        run_ok(&["-f", "(true,true)"], b"{\"a\":1}\n"),
        "{\"a\":1}\n"
    );
    assert_eq!(
        run_ok(&["-f", ".[]"], b"[1,2,3]\n[null,false]\n[]\n"),
        "[1,2,3]\n"
    );
    assert_eq!(
        run_ok(&["-f", "range(5)", "-m", ".a"], b"{\"a\":7}\n"),
        "7\n"
    );
}

// ---------------------------------------------------------------- maps

#[test]
fn map_replaces_fans_out_in_order_and_drops_on_empty() {
    let input = b"{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":[3, 4]}\n";
    assert_eq!(run_ok(&["-m", ".a, .b"], input), "1\n\"x\"\n2\n[3,4]\n");
    assert_eq!(run_ok(&["-m", "empty"], input), "");
    assert_eq!(run_ok(&["-m", "select(.a == 2) | .b[]"], input), "3\n4\n");

    // Fan-out over a fixture: one line per item, in order.
    let tx = events("transactions.ndjson");
    let expected: String = tx
        .iter()
        .flat_map(|(_, v)| v["items"].as_array().unwrap().iter())
        .map(|item| format!("{}\n", json_str(item["sku"].as_str().unwrap())))
        .collect();
    assert!(expected.lines().count() > tx.len());
    assert_eq!(
        run_ok(
            &["-m", ".items[] | .sku", "fixtures/transactions.ndjson"],
            b""
        ),
        expected
    );
}

#[test]
fn map_output_is_compact_json_with_jaq_number_spelling() {
    assert_eq!(
        run_ok(&["-m", "{a:.a}"], b"{\"b\":1, \"a\": [1, 2]}\n"),
        "{\"a\":[1,2]}\n"
    );
    assert_eq!(run_ok(&["-m", ".n"], b"{\"n\":1.50}\n"), "1.50\n");
    assert_eq!(
        run_ok(&["-m", "{n}"], b"{ \"n\" : 1.50 , \"m\" : 2 }\n"),
        "{\"n\":1.50}\n"
    );
    assert_eq!(
        run_ok(
            &["-m", "{s, t: [.t]}"],
            b"{\"t\": {\"k\": \"v\"}, \"s\": \"caf\\u00e9\"}\n"
        ),
        "{\"s\":\"caf\u{e9}\",\"t\":[{\"k\":\"v\"}]}\n"
    );

    // Every latency_ms of app.ndjson, spelled as in the file (12.50, 3000.0, 0.80).
    let app = events("app.ndjson");
    let expected: String = app
        .iter()
        .map(|(line, _)| {
            let start = line.find("\"latency_ms\":").expect("latency_ms") + "\"latency_ms\":".len();
            let len = line[start..].find([',', '}']).unwrap();
            format!("{}\n", &line[start..start + len])
        })
        .collect();
    assert!(
        expected.contains("12.50\n")
            && expected.contains("3000.0\n")
            && expected.contains("0.80\n")
    );
    assert_eq!(
        run_ok(&["-m", ".latency_ms", "fixtures/app.ndjson"], b""),
        expected
    );
}

// ---------------------------------------------------------------- stage order

#[test]
fn stages_run_in_command_line_order() {
    let input = b"{\"a\":1}\n{\"a\":3}\n{\"a\":7}\n";
    // The filter reads the field the map builds...
    assert_eq!(
        run_ok(&["-m", "{x: .a}", "-f", ".x > 1"], input),
        "{\"x\":3}\n{\"x\":7}\n"
    );
    // ...and before the map there is no such field: null > 1 is false.
    assert_eq!(run_ok(&["-f", ".x > 1", "-m", "{x: .a}"], input), "");
    // Interleaved, long and attached forms: A, B, C, D in that order.
    assert_eq!(
        run_ok(
            &[
                "--map={x: .a}",
                "-f.x > 1",
                "--filter",
                ".x < 5",
                "-m",
                ".x * 10"
            ],
            input
        ),
        "30\n"
    );
    // Maps compose left to right.
    assert_eq!(
        run_ok(&["-m", ".a", "-m", ". + 1", "-m", ". * 10"], input),
        "20\n40\n80\n"
    );
    assert_eq!(
        run_ok(&["-m", ".a", "-m", ". * 10", "-m", ". + 1"], input),
        "11\n31\n71\n"
    );
    // Fan-out feeds every value through the later stages, in order.
    assert_eq!(
        run_ok(
            &["-m", ".a, .a + 1", "-f", ". % 2 == 0", "-m", "[., . * 3]"],
            input
        ),
        "[2,6]\n[4,12]\n[8,24]\n"
    );
}

// ---------------------------------------------------------------- variables

#[test]
fn values_and_expressions_may_start_with_a_hyphen() {
    let input = b"{\"n\":-3}\n{\"n\":7}\n";
    assert_eq!(
        run_ok(
            &[
                "--argjson",
                "min",
                "-5",
                "--arg",
                "tag",
                "-x",
                "-f",
                ".n > $min and .n < 0",
                "-m",
                "[.n, $tag]"
            ],
            input
        ),
        "[-3,\"-x\"]\n"
    );
    assert_eq!(run_ok(&["-m", "-.n", "-f", "-1 > ."], input), "-7\n");
}

#[test]
fn arg_and_argjson_bind_variables() {
    let input = b"{\"user\":\"bob\",\"n\":5}\n{\"user\":\"ann\",\"n\":50}\n";
    assert_eq!(
        run_ok(&["--arg", "who", "bob", "-f", ".user == $who"], input),
        "{\"user\":\"bob\",\"n\":5}\n"
    );
    assert_eq!(
        run_ok(
            &["--argjson", "min", "10", "-f", ".n >= $min", "-m", ".user"],
            input
        ),
        "\"ann\"\n"
    );
    // --arg is always a string, --argjson a JSON value; both in every stage.
    assert_eq!(
        run_ok(
            &[
                "--arg",
                "s",
                "10",
                "--argjson",
                "j",
                "{\"k\": [1, 2.50]}",
                "-m",
                "[$s, $j]",
                "-f",
                "$j.k[1] > 2",
                "-m",
                "[.[], $s]"
            ],
            b"null\n"
        ),
        "[\"10\",{\"k\":[1,2.50]},\"10\"]\n"
    );
    // $ARGS.named holds them all.
    assert_eq!(
        run_ok(
            &[
                "--arg",
                "a",
                "x",
                "--argjson",
                "b",
                "[true]",
                "-m",
                "$ARGS.named"
            ],
            b"{}\n"
        ),
        "{\"a\":\"x\",\"b\":[true]}\n"
    );
    assert_eq!(run_ok(&["-m", "$ARGS.named"], b"{}\n"), "{}\n");
}

#[test]
fn env_reads_the_environment() {
    let args = [
        "-r",
        "-f",
        ".svc == $ENV.EVQ_TEST_SERVICE",
        "-m",
        "\"\\($ENV.EVQ_TEST_SERVICE):\\(.n)\"",
    ];
    let out =
        common::evq()
            .args(args)
            .arg("-")
            .env("EVQ_TEST_SERVICE", "billing é")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(
                    b"{\"svc\":\"api\",\"n\":1}\n{\"svc\":\"billing \\u00e9\",\"n\":2}\n",
                )?;
                child.wait_with_output()
            })
            .expect("run evq");
    assert_eq!(common::status(&out), 0, "{}", describe(&args, &out));
    assert_eq!(common::stdout(&out), "billing é:2\n");

    let out = common::evq()
        .args(["-m", "$ENV.EVQ_TEST_UNSET_VAR", "fixtures/bom-crlf.ndjson"])
        .env_remove("EVQ_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stdout(&out), "null\nnull\nnull\n");
}

#[test]
fn invalid_argjson_is_a_usage_error() {
    for json in ["{bad", "", "1 2", "[1,]", "NaN"] {
        let args = ["--argjson", "n", json, "-m", "$n"];
        let out = common::run(&args, b"{}\n");
        assert_eq!(common::status(&out), 2, "{}", describe(&args, &out));
        assert_eq!(common::stdout(&out), "", "{}", describe(&args, &out));
        assert!(
            common::stderr(&out).starts_with("evq: --argjson n:"),
            "{}",
            describe(&args, &out)
        );
    }
}

#[test]
fn bad_variable_names_are_usage_errors() {
    let cases: &[&[&str]] = &[
        &["--arg", "1x", "v", "-m", "."],
        &["--arg", "a-b", "v", "-m", "."],
        &["--arg", "", "v", "-m", "."],
        &["--argjson", "1x", "1", "-m", "."],
    ];
    for args in cases {
        let out = common::run(args, b"{}\n");
        assert_eq!(common::status(&out), 2, "{}", describe(args, &out));
        assert_eq!(common::stdout(&out), "", "{}", describe(args, &out));
        assert!(
            common::stderr(&out).starts_with("evq: "),
            "{}",
            describe(args, &out)
        );
    }
    // Names with letters, digits (not first) and _ are fine.
    assert_eq!(
        run_ok(&["--arg", "_a1", "v", "-m", "$_a1"], b"{}\n"),
        "\"v\"\n"
    );
}

// ---------------------------------------------------------------- raw output

#[test]
fn raw_output_writes_strings_without_quotes() {
    let app = events("app.ndjson");
    let expected = joined(app.iter().map(|(_, v)| str_field(v, "/msg")));
    // Escaped quotes and \u00e9 come out as plain text.
    assert!(expected.contains("returned \"card_declined\"") && expected.contains("résumé"));
    assert_eq!(
        run_ok(&["-m", ".msg", "-r", "fixtures/app.ndjson"], b""),
        expected
    );
    assert_eq!(
        run_ok(&["--raw-output", "-m", ".msg", "fixtures/app.ndjson"], b""),
        expected
    );

    // Non-strings stay JSON; with -r, unchanged string lines are unquoted too.
    let input = b"\"a\\tb\"\n{\"s\": \"x\\ty\"}\n[1, \"s\"]\r\n\"caf\\u00e9 \\\"q\\\"\"\r\n3.50\n";
    assert_eq!(
        run_ok(&["-r"], input),
        "a\tb\n{\"s\": \"x\\ty\"}\n[1, \"s\"]\ncafé \"q\"\n3.50\n"
    );
    assert_eq!(
        run_ok(&["-r", "-f", "type == \"string\""], input),
        "a\tb\ncafé \"q\"\n"
    );
    assert_eq!(
        run_ok(&["-r", "-m", ".s? // ."], input),
        "a\tb\nx\ty\n[1,\"s\"]\ncafé \"q\"\n3.50\n"
    );
    // Without -r the same string lines are written as read.
    assert_eq!(
        run_ok(&["-f", "type == \"string\""], input),
        "\"a\\tb\"\n\"caf\\u00e9 \\\"q\\\"\"\n"
    );
}

// ---------------------------------------------------------------- -o

#[test]
fn output_file_receives_events_and_is_truncated() {
    let dir = common::tempdir();
    let path = dir.path().join("out.ndjson");
    std::fs::write(
        &path,
        "old content, longer than what evq will write\nsecond line\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();

    assert_eq!(
        run_ok(&["-o", p, "-m", ".id", "fixtures/bom-crlf.ndjson"], b""),
        ""
    );
    assert_eq!(common::read(&path), b"1\n2\n3\n");

    assert_eq!(
        run_ok(
            &["--output", p, "-f", ".id == 2", "fixtures/bom-crlf.ndjson"],
            b""
        ),
        ""
    );
    assert_eq!(common::read(&path), b"{\"id\":2,\"level\":\"error\"}\n");

    assert_eq!(
        run_ok(&["-o", p, "-r", "-m", ".level"], b"{\"level\":\"info\"}\n"),
        ""
    );
    assert_eq!(common::read(&path), b"info\n");

    // No event: the file is truncated to nothing.
    assert_eq!(
        run_ok(&["-o", p, "-f", "false", "fixtures/app.ndjson"], b""),
        ""
    );
    assert_eq!(common::read(&path), b"");

    // A new file is created.
    let fresh = dir.path().join("fresh.ndjson");
    assert_eq!(
        run_ok(&["-o", fresh.to_str().unwrap(), "fixtures/app.ndjson"], b""),
        ""
    );
    assert_eq!(common::read(&fresh), fixture_bytes("app.ndjson"));
}

#[test]
fn output_file_untouched_on_usage_errors() {
    let dir = common::tempdir();
    let path = dir.path().join("keep.ndjson");
    let missing = dir.path().join("missing.ndjson");
    let content = b"{\"precious\":true}\n";
    let cases: &[&[&str]] = &[
        &["-f", "true", "-m", ".a | foo(1)"],
        &["-f", ".a |"],
        &["--argjson", "x", "{", "-m", "$x"],
        &["--arg", "1x", "v", "-m", "."],
    ];
    for extra in cases {
        std::fs::write(&path, content).unwrap();
        for target in [&path, &missing] {
            let mut args = vec!["-o", target.to_str().unwrap()];
            args.extend_from_slice(extra);
            args.push("fixtures/app.ndjson");
            let out = common::run(&args, b"");
            assert_eq!(common::status(&out), 2, "{}", describe(&args, &out));
            assert_eq!(common::stdout(&out), "");
        }
        assert_eq!(
            common::read(&path),
            content,
            "{extra:?} touched the output file"
        );
        assert!(!missing.exists(), "{extra:?} created the output file");
    }
}

// ---------------------------------------------------------------- -e

#[test]
fn exit_status_flag() {
    let input = b"{\"a\":1}\n{\"a\":2}\n";
    assert_eq!(run_status(&["-e", "-f", ".a == 9"], input, 1), "");
    assert_eq!(run_status(&["--exit-status", "-m", "empty"], input, 1), "");
    assert_eq!(run_status(&["-e"], b"", 1), "");
    assert_eq!(
        run_status(&["-e", "-f", ".a == 2"], input, 0),
        "{\"a\":2}\n"
    );
    assert_eq!(run_status(&["-e"], input, 0), "{\"a\":1}\n{\"a\":2}\n");
    // Without -e nothing emitted is still success.
    assert_eq!(run_status(&["-f", ".a == 9"], input, 0), "");
    // A failed event wins over "nothing emitted".
    assert_eq!(run_status(&["-e", "-q", "-m", ".a + \"x\""], input, 3), "");

    let out = common::run(
        &["-e", "-f", ".level == \"fatal\"", "fixtures/app.ndjson"],
        b"",
    );
    assert_eq!(common::status(&out), 1);
    assert_eq!(common::stdout(&out), "");
    // With -o, -e counts the events written to the file.
    let dir = common::tempdir();
    let path = dir.path().join("5xx.ndjson");
    let args = [
        "-e",
        "-f",
        ".data.status >= 500",
        "-o",
        path.to_str().unwrap(),
        "fixtures/app.ndjson",
    ];
    let out = common::run(&args, b"");
    assert_eq!(common::status(&out), 0, "{}", describe(&args, &out));
    let expected = joined(
        events("app.ndjson")
            .iter()
            .filter(|(_, v)| v["data"]["status"].as_i64().unwrap() >= 500)
            .map(|(l, _)| l),
    );
    assert!(!expected.is_empty());
    assert_eq!(String::from_utf8(common::read(&path)).unwrap(), expected);
}

// ---------------------------------------------------------------- jaq std

#[test]
fn regex_functions() {
    let app = events("app.ndjson");

    let api: Vec<&str> = app
        .iter()
        .map(|(_, v)| str_field(v, "/data/path"))
        .filter(|p| p.starts_with("/api"))
        .collect();
    assert_eq!(api.len(), 10, "fixtures/README.md says 10 /api paths");
    assert_eq!(
        run_ok(
            &[
                "-r",
                "-f",
                ".data.path | test(\"^/api\")",
                "-m",
                ".data.path",
                "fixtures/app.ndjson"
            ],
            b""
        ),
        joined(&api)
    );
    // Unchanged events after a regex filter are the input lines.
    assert_eq!(
        run_ok(
            &["-f", ".data.path | test(\"^/api\")", "fixtures/app.ndjson"],
            b""
        ),
        joined(
            app.iter()
                .filter(|(_, v)| str_field(v, "/data/path").starts_with("/api"))
                .map(|(l, _)| l)
        )
    );

    // capture: named groups as an object; no match yields nothing.
    let captures: String = app
        .iter()
        .filter_map(|(_, v)| {
            let msg = str_field(v, "/msg");
            let rest = &msg[msg.find("shard ")? + "shard ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty()).then(|| format!("{{\"n\":\"{digits}\"}}\n"))
        })
        .collect();
    assert!(!captures.is_empty());
    assert_eq!(
        run_ok(
            &[
                "-m",
                ".msg | capture(\"shard (?<n>[0-9]+)\")",
                "fixtures/app.ndjson"
            ],
            b""
        ),
        captures
    );

    // split and ascii case functions.
    let splits: String = app
        .iter()
        .map(|(_, v)| {
            let parts: Vec<&str> = str_field(v, "/data/path").split('/').collect();
            format!("{}\n", serde_json::to_string(&parts).unwrap())
        })
        .collect();
    assert_eq!(
        run_ok(
            &["-m", ".data.path | split(\"/\")", "fixtures/app.ndjson"],
            b""
        ),
        splits
    );
    let upper = joined(
        app.iter()
            .map(|(_, v)| str_field(v, "/msg").to_ascii_uppercase()),
    );
    assert!(upper.contains("RéSUMé"), "ascii_upcase leaves é alone");
    assert_eq!(
        run_ok(
            &["-r", "-m", ".msg | ascii_upcase", "fixtures/app.ndjson"],
            b""
        ),
        upper
    );
    assert_eq!(
        run_ok(
            &[
                "-r",
                "-m",
                ".service | ascii_upcase | ascii_downcase",
                "fixtures/app.ndjson"
            ],
            b""
        ),
        joined(app.iter().map(|(_, v)| str_field(v, "/service")))
    );
    assert_eq!(
        run_ok(&["-r", "-m", "sub(\"o\"; \"0\"; \"g\")"], b"\"foo boo\"\n"),
        "f00 b00\n"
    );
}

#[test]
fn time_functions() {
    let tx = events("transactions.ndjson");
    let dates = joined(
        tx.iter()
            .map(|(_, v)| json_str(&iso8601(v["ts"].as_i64().unwrap()))),
    );
    assert_eq!(
        run_ok(&["-m", ".ts | todate", "fixtures/transactions.ndjson"], b""),
        dates
    );
    // Round trip.
    assert_eq!(
        run_ok(
            &[
                "-m",
                ".ts | todate | fromdateiso8601",
                "fixtures/transactions.ndjson"
            ],
            b""
        ),
        joined(tx.iter().map(|(_, v)| v["ts"].to_string()))
    );

    let app = events("app.ndjson");
    let epochs = joined(
        app.iter()
            .map(|(_, v)| epoch_of(str_field(v, "/ts")).to_string()),
    );
    assert_eq!(
        run_ok(
            &["-m", ".ts | fromdateiso8601 | floor", "fixtures/app.ndjson"],
            b""
        ),
        epochs
    );
    // Time in a filter: events of the last minute of the log.
    let cutoff = epoch_of("2026-11-02T08:17:00Z");
    let late = joined(
        app.iter()
            .filter(|(_, v)| epoch_of(str_field(v, "/ts")) >= cutoff)
            .map(|(l, _)| l),
    );
    assert!(!late.is_empty());
    assert_eq!(
        run_ok(
            &[
                "--argjson",
                "t",
                &cutoff.to_string(),
                "-f",
                ".ts | fromdateiso8601 >= $t",
                "fixtures/app.ndjson"
            ],
            b""
        ),
        late
    );
}

// ---------------------------------------------------------------- compile errors

#[test]
fn compile_error_names_the_stage_and_underlines_the_error() {
    let args = ["-f", "true", "-m", ".a | foo(1)", "fixtures/app.ndjson"];
    let out = common::run(&args, b"");
    assert_eq!(common::status(&out), 2, "{}", describe(&args, &out));
    assert_eq!(common::stdout(&out), "");
    let err = common::stderr(&out);
    assert!(
        err.starts_with("evq: error in --map #2: undefined filter foo\n"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let code_line = lines
        .iter()
        .position(|l| l.trim_end() == "1 │ .a | foo(1)")
        .unwrap_or_else(|| panic!("no `1 │ .a | foo(1)` line in:\n{err}"));
    // The underline below starts under `foo` and is as wide as it.
    let underline = lines[code_line + 1];
    let col = |s: &str, c: char| s.chars().position(|x| x == c);
    let source = lines[code_line];
    let foo_col = source[..source.find("foo").unwrap()].chars().count();
    assert_eq!(
        col(underline, '─'),
        Some(foo_col),
        "underline misplaced:\n{err}"
    );
    assert_eq!(
        underline.trim_end().chars().count() - foo_col,
        3,
        "underline not 3 wide:\n{err}"
    );
    assert!(err.contains("undefined filter foo"));
    assert!(!err.contains("fixtures/app.ndjson"), "{err}");
}

#[test]
fn compile_errors_name_each_stage_by_position() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["-f", ".a |"], "evq: error in --filter #1: ", "1 │ .a |"),
        (
            &["-m", ".a", "-f", ".b", "-f", "$nope"],
            "evq: error in --filter #3: undefined variable $nope",
            "1 │ $nope",
        ),
        (
            &["--filter", "true", "--map", "nope"],
            "evq: error in --map #2: undefined filter nope",
            "1 │ nope",
        ),
        (
            &["-m", "input"],
            "evq: error in --map #1: undefined filter input",
            "1 │ input",
        ),
    ];
    for (args, first, code) in cases {
        let out = common::run(args, b"{\"a\":1}\n");
        assert_eq!(common::status(&out), 2, "{}", describe(args, &out));
        assert_eq!(common::stdout(&out), "");
        let err = common::stderr(&out);
        assert!(err.starts_with(first), "{}", describe(args, &out));
        assert!(
            err.lines().any(|l| l.trim_end() == *code),
            "{}",
            describe(args, &out)
        );
    }
    // Two broken stages: both reported, in order.
    let args = ["-f", "foo", "-m", ".", "-m", "bar"];
    let out = common::run(&args, b"");
    assert_eq!(common::status(&out), 2);
    let err = common::stderr(&out);
    let (one, three) = (
        err.find("error in --filter #1:"),
        err.find("error in --map #3:"),
    );
    assert!(one.is_some() && three.is_some() && one < three, "{err}");
}

#[test]
fn compile_error_at_a_multibyte_character_is_reported_not_a_crash() {
    // Found by the fuzzer: the caret went under half of a character.
    let out = common::run(&["-f", "#b¡"], b"");
    assert_eq!(common::status(&out), 2);
    assert_eq!(
        common::stderr(&out),
        "evq: error in --filter #1: expected term\n  ╭─[--filter #1]\n  │\n1 │ #b¡\n  ┆   ┬\n  ┆   │\n  ┆   ╰─ unexpected end of input\n──╯\n"
    );
    let out = common::run(&["-m", ".a ¡"], b"");
    assert_eq!(common::status(&out), 2);
    assert!(
        common::stderr(&out).contains("unexpected character ¡"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn compile_error_exits_before_reading_input() {
    // Standard input stays open and empty: evq must not wait for it.
    let mut child = common::evq()
        .args(["-m", ".a | foo(1)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evq");
    let stdin = child.stdin.take();
    let Some(status) = common::wait_timeout(&mut child, Duration::from_secs(20)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("evq read standard input before reporting a compile error");
    };
    drop(stdin);
    assert_eq!(status.code(), Some(2));

    // An input that does not exist is not even opened.
    let args = ["-m", "foo", "fixtures/no-such-file.ndjson"];
    let out = common::run(&args, b"");
    assert_eq!(common::status(&out), 2, "{}", describe(&args, &out));
    assert!(
        !common::stderr(&out).contains("no-such-file"),
        "{}",
        describe(&args, &out)
    );
}

// ---------------------------------------------------------------- command line

#[test]
fn usage_help_and_version() {
    let out = common::run(&["--no-such-option"], b"");
    assert_eq!(common::status(&out), 2);
    assert_eq!(common::stdout(&out), "");
    assert!(
        common::stderr(&out).contains("--no-such-option"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(common::status(&common::run(&["-Z"], b"")), 2);
    assert_eq!(common::status(&common::run(&["--arg", "x"], b"")), 2);

    let out = common::run(&["--help"], b"");
    assert_eq!(common::status(&out), 0);
    let help = common::stdout(&out);
    assert!(help.contains("Usage: evq [OPTIONS] [FILE]..."), "{help}");
    for flag in [
        "--filter",
        "--map",
        "--arg",
        "--argjson",
        "--output",
        "--raw-output",
        "--exit-status",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }

    let out = common::run(&["--version"], b"");
    assert_eq!(common::status(&out), 0);
    assert_eq!(common::stdout(&out), "evq 0.1.0\n");
}

// ---------------------------------------------------------------- several inputs

#[test]
fn files_are_read_in_order() {
    let app = raw_lines(&fixture_bytes("app.ndjson"));
    let tx = raw_lines(&fixture_bytes("transactions.ndjson"));
    let app_then_tx = joined(app.iter().chain(&tx));
    assert_eq!(
        run_ok(
            &["fixtures/app.ndjson", "fixtures/transactions.ndjson"],
            b""
        ),
        app_then_tx
    );
    // The last line of transactions (no final newline) is not glued to the next file.
    let tx_then_app = joined(tx.iter().chain(&app));
    assert_eq!(
        run_ok(
            &["fixtures/transactions.ndjson", "fixtures/app.ndjson"],
            b""
        ),
        tx_then_app
    );

    let keys = joined(
        events("transactions.ndjson")
            .iter()
            .map(|(_, v)| json_str(v["id"].as_str().unwrap()))
            .chain(
                events("app.ndjson")
                    .iter()
                    .map(|(_, v)| json_str(str_field(v, "/service"))),
            ),
    );
    assert_eq!(
        run_ok(
            &[
                "-m",
                ".id // .service",
                "fixtures/transactions.ndjson",
                "fixtures/app.ndjson"
            ],
            b""
        ),
        keys
    );
    // The same file twice is read twice.
    assert_eq!(
        run_ok(
            &[
                "-m",
                ".id",
                "fixtures/bom-crlf.ndjson",
                "fixtures/bom-crlf.ndjson"
            ],
            b""
        ),
        "1\n2\n3\n1\n2\n3\n"
    );
}

#[test]
fn dash_reads_stdin_between_files() {
    let stdin = b"{\"from\":\"stdin\",\"n\":1}\n\n{\"from\":\"stdin\",\"n\":2}";
    let bom = "{\"id\":1,\"level\":\"info\"}\n{\"id\":2,\"level\":\"error\"}\n{\"id\":3,\"level\":\"info\"}\n";
    let tx = joined(raw_lines(&fixture_bytes("transactions.ndjson")));
    let expected =
        format!("{bom}{{\"from\":\"stdin\",\"n\":1}}\n{{\"from\":\"stdin\",\"n\":2}}\n{tx}");
    assert_eq!(
        run_ok(
            &[
                "fixtures/bom-crlf.ndjson",
                "-",
                "fixtures/transactions.ndjson"
            ],
            stdin
        ),
        expected
    );
    assert_eq!(
        run_ok(
            &[
                "-m",
                ".id // .n",
                "fixtures/bom-crlf.ndjson",
                "-",
                "fixtures/bom-crlf.ndjson"
            ],
            stdin
        ),
        "1\n2\n3\n1\n2\n1\n2\n3\n"
    );
    assert_eq!(
        run_ok(
            &[
                "-r",
                "-m",
                ".from // .level",
                "-",
                "fixtures/bom-crlf.ndjson"
            ],
            stdin
        ),
        "stdin\nstdin\ninfo\nerror\ninfo\n"
    );
}

// ---------------------------------------------------------------- larger

#[test]
fn app_errors_projected_to_ts_service_msg() {
    let app = events("app.ndjson");
    assert_eq!(app.len(), 40);
    let expected: Vec<String> = app
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["level"] == "error")
        .map(|v| {
            format!(
                "{{\"ts\":{},\"service\":{},\"msg\":{}}}",
                json_str(str_field(v, "/ts")),
                json_str(str_field(v, "/service")),
                json_str(str_field(v, "/msg"))
            )
        })
        .collect();
    assert_eq!(expected.len(), 8, "fixtures/README.md says 8 errors");
    // The escaped quotes and \u00e9 of the input are re-serialised as jq does.
    assert!(expected.iter().any(|l| l.contains(r#"\"card_declined\""#)));
    assert!(expected.iter().any(|l| l.contains("café")));

    let args = [
        "-f",
        ".level == \"error\"",
        "-m",
        "{ts, service, msg}",
        "fixtures/app.ndjson",
    ];
    assert_eq!(run_ok(&args, b""), joined(&expected));

    // Same through standard input and into -o.
    let dir = common::tempdir();
    let path = dir.path().join("errors.ndjson");
    assert_eq!(
        run_ok(
            &[
                "-o",
                path.to_str().unwrap(),
                "-f",
                ".level == \"error\"",
                "-m",
                "{ts, service, msg}"
            ],
            &fixture_bytes("app.ndjson")
        ),
        ""
    );
    assert_eq!(
        String::from_utf8(common::read(&path)).unwrap(),
        joined(&expected)
    );
}

// ---------------------------------------------------------------- known bugs

#[test]
fn variables_bind_in_command_line_order_and_the_last_binding_wins() {
    // --arg and --argjson interleave as written, as in jq.
    assert_eq!(
        run_ok(
            &[
                "--argjson",
                "b",
                "2",
                "--arg",
                "a",
                "x",
                "-m",
                "$ARGS.named"
            ],
            b"null\n"
        ),
        "{\"b\":2,\"a\":\"x\"}\n"
    );
    assert_eq!(
        run_ok(
            &["--argjson", "x", "3", "--arg", "x", "v", "-m", "$x"],
            b"null\n"
        ),
        "\"v\"\n"
    );
    assert_eq!(
        run_ok(
            &["--arg", "x", "v", "--argjson", "x", "3", "-m", "$x"],
            b"null\n"
        ),
        "3\n"
    );
}
