//! jq's input flags on the built binary: `-n/--null-input`, `-R/--raw-input`,
//! `--input-format json`, `--slurpfile` and `--rawfile`. Expected bytes are
//! what jq 1.7 prints with `-c` (evq writes compact JSON by default), and
//! evq's own reports (FILE:LINE, dead letter, exit status) where jq has none.

use crate::common;

use crate::common::{run, status, stderr, stdout};
use std::io::Write;

fn dead_letter(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("dead letter")
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead-letter record"))
        .collect()
}

// ---- -n/--null-input ----

#[test]
fn null_input_runs_the_chain_once_on_null() {
    let out = run(&["-n", "-m", "range(3) | {i: .}"], b"");
    assert_eq!(stdout(&out), "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
    assert_eq!((status(&out), stderr(&out)), (0, String::new()));
    // No stage: the null event itself, as `jq -n .`.
    let out = run(&["--null-input"], b"{\"not\":\"read\"}\n");
    assert_eq!((stdout(&out), status(&out)), ("null\n".to_string(), 0));
}

#[test]
fn null_input_is_one_event_in_the_accounts() {
    let out = run(&["-n", "-f", ". == null", "--stats=json"], b"");
    assert_eq!(stdout(&out), "null\n");
    let stats = common::stats_json(&out);
    assert_eq!(stats["events_ingested"], 1);
    assert_eq!(stats["events_emitted"], 1);
    assert_eq!(stats["bytes_read"], 0);
    assert_eq!(stats["stages"][0]["events_in"], 1);
    assert_eq!(stats["inputs"][0]["path"], "null");
    assert_eq!(stats["inputs"][0]["lines"], 1);
}

#[test]
fn null_input_keeps_the_exit_status_rules() {
    let out = run(&["-n", "-e", "-f", "false"], b"");
    assert_eq!((stdout(&out), status(&out)), (String::new(), 1));
    let out = run(&["-n", "-e", "-m", "1"], b"");
    assert_eq!((stdout(&out), status(&out)), ("1\n".to_string(), 0));
    let out = run(&["-n", "-m", "error(\"boom\")"], b"");
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "<null>:1: map#1: \"boom\"\n");
    assert_eq!(status(&out), 3);
}

#[test]
fn null_input_works_with_an_aggregate() {
    let out = run(&["-n", "--agg", "n=count"], b"");
    assert_eq!((stdout(&out), status(&out)), ("{\"n\":1}\n".to_string(), 0));
}

#[test]
fn null_input_refuses_what_would_go_unread() {
    let file = common::fixture("app.ndjson");
    let out = run(&["-n", "-m", ".", &file], b"");
    assert_eq!(status(&out), 2);
    assert_eq!(
        stderr(&out),
        "evq: -n/--null-input reads no input, so FILE fixtures/app.ndjson would not be read (evq has no input or inputs); leave it out, or drop -n to read it\n"
    );
    assert_eq!(stdout(&out), "");
    let out = run(&["-n", "-F"], b"");
    assert_eq!(status(&out), 2);
    assert_eq!(
        stderr(&out),
        "evq: --follow cannot be used with -n/--null-input: there is no input\n"
    );
    // jq's `jq -n EXPR`: the expression goes after -m, and the hint keeps -n.
    let out = run(&["-n", "range(3)"], b"");
    assert_eq!(status(&out), 2);
    assert_eq!(
        stderr(&out),
        "evq: 'range(3)' is not a file; an expression goes after -f (filter) or -m (map), as in: evq -n -m 'range(3)'\n"
    );
}

// ---- -R/--raw-input ----

#[test]
fn raw_input_makes_each_line_a_string_as_jq_does() {
    // jq -R keeps a CR and a BOM, gives "" for a blank line, replaces bytes
    // that are not UTF-8 with U+FFFD, and reads a last line without newline.
    let input = b"a\r\n\nb\xff\n\xef\xbb\xbfc\n  \nlast";
    let out = run(&["-R"], input);
    assert_eq!(
        stdout(&out),
        "\"a\\r\"\n\"\"\n\"b\u{fffd}\"\n\"\u{feff}c\"\n\"  \"\n\"last\"\n"
    );
    assert_eq!((status(&out), stderr(&out)), (0, String::new()));
    let out = run(&["-R", "-r"], input);
    assert_eq!(stdout(&out), "a\r\n\nb\u{fffd}\n\u{feff}c\n  \nlast\n");
    // input_line_number and input_filename know each line.
    let out = run(
        &["-R", "-c", "-m", "[input_filename, input_line_number]"],
        b"x\n\ny\n",
    );
    assert_eq!(stdout(&out), "[null,1]\n[null,2]\n[null,3]\n");
}

#[test]
fn raw_input_turns_a_plain_text_log_into_events_with_capture() {
    let out = run(
        &[
            "-R",
            "-m",
            r#"capture("(?<ip>\\S+) \\S+ \\S+ \\[(?<ts>[^]]+)\\]")"#,
            &common::fixture("access.log"),
        ],
        b"",
    );
    assert_eq!(
        stdout(&out),
        concat!(
            "{\"ip\":\"192.0.2.10\",\"ts\":\"02/Nov/2026:08:15:01 +0000\"}\n",
            "{\"ip\":\"198.51.100.7\",\"ts\":\"02/Nov/2026:08:15:02 +0000\"}\n",
            "{\"ip\":\"203.0.113.42\",\"ts\":\"02/Nov/2026:08:15:04 +0000\"}\n",
        )
    );
    assert_eq!((status(&out), stderr(&out)), (0, String::new()));
}

#[test]
fn raw_input_failures_name_file_and_line() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "ok\n\nbad one\nok\n").unwrap();
    let dl = dir.path().join("dl.ndjson");
    let out = run(
        &[
            "-R",
            "-m",
            r#"if startswith("bad") then error("not ok") else ascii_upcase end"#,
            "--dead-letter",
            dl.to_str().unwrap(),
            "--stats=json",
            log.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(stdout(&out), "\"OK\"\n\"\"\n\"OK\"\n");
    assert_eq!(status(&out), 3);
    let first = stderr(&out).lines().next().unwrap().to_string();
    assert_eq!(first, format!("{}:3: map#1: \"not ok\"", log.display()));
    let records = dead_letter(&dl);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["line"], 3);
    assert_eq!(records[0]["raw"], "bad one");
    let stats = common::stats_json(&out);
    assert_eq!(stats["events_ingested"], 4);
    assert_eq!(stats["bytes_read"], 15);
}

// ---- --input-format json ----

#[test]
fn json_input_reads_a_stream_of_values_as_jq_does() {
    let input = b"{\"a\":1}{\"a\":2}[1,2] 3\n{\n  \"x\": [1,\n    2],\n  \"s\": \"a \\\" b\"\n}\n\"s\" true\n  null";
    let out = run(&["--input-format", "json"], input);
    // jq -c . gives the same lines.
    assert_eq!(
        stdout(&out),
        "{\"a\":1}\n{\"a\":2}\n[1,2]\n3\n{\"x\":[1,2],\"s\":\"a \\\" b\"}\n\"s\"\ntrue\nnull\n"
    );
    assert_eq!((status(&out), stderr(&out)), (0, String::new()));
}

#[test]
fn json_input_pretty_printed_kubectl_list() {
    let out = run(
        &[
            "--input-format",
            "json",
            "-m",
            ".items[] | {name: .metadata.name, phase: .status.phase}",
            &common::fixture("pods.json"),
        ],
        b"",
    );
    assert_eq!(
        stdout(&out),
        "{\"name\":\"api-7d4b9c-x2x9z\",\"phase\":\"Running\"}\n{\"name\":\"billing-5f6d8-kq7pl\",\"phase\":\"CrashLoopBackOff\"}\n"
    );
    assert_eq!(status(&out), 0);
    // Filters and maps evaluated directly or on projections see the same values.
    let out = run(
        &[
            "--input-format",
            "json",
            "-f",
            ".kind == \"List\"",
            "-m",
            ".apiVersion",
            &common::fixture("pods.json"),
        ],
        b"",
    );
    assert_eq!(stdout(&out), "\"v1\"\n");
}

#[test]
fn json_input_reports_a_malformed_value_and_resumes_at_the_next_one() {
    let dir = common::tempdir();
    let path = dir.path().join("docs.json");
    std::fs::write(
        &path,
        "{\"a\":1}\n{\"a\": [1, 2}\n{\"b\":2}\n{\n  \"c\": 1,\n  \"d\": [1,\n}\n{\n  \"e\": 5\n}\n[1 2]\n{\"f\":\n  1",
    )
    .unwrap();
    let dl = dir.path().join("dl.ndjson");
    let out = run(
        &[
            "--input-format",
            "json",
            "--dead-letter",
            dl.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(stdout(&out), "{\"a\":1}\n{\"b\":2}\n{\"e\":5}\n");
    let p = path.display();
    assert_eq!(
        stderr(&out),
        format!(
            "{p}:2: invalid JSON: expected `,` or `]`\n{p}:4: invalid JSON: expected value\n{p}:11: invalid JSON: expected `,` or `]`\n{p}:12: invalid JSON: EOF while parsing an object\n"
        )
    );
    assert_eq!(status(&out), 3);
    let raws: Vec<(u64, String)> = dead_letter(&dl)
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["raw"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        raws,
        vec![
            (2, "{\"a\": [1, 2}".to_string()),
            (4, "{\n  \"c\": 1,\n  \"d\": [1,\n}".to_string()),
            (11, "[1 2]".to_string()),
            (12, "{\"f\":\n  1".to_string()),
        ]
    );
}

/// A pretty-printed document of about `items` × 120 bytes.
fn big_document(items: usize) -> (String, String) {
    let mut pretty = String::from("{\n  \"items\": [\n");
    let mut compact = String::from("{\"items\":[");
    for i in 0..items {
        let sep = if i + 1 < items { "," } else { "" };
        pretty.push_str(&format!(
            "    {{\n      \"name\": \"n {i}\",\n      \"tags\": [\"a\", \"b \\\" c\"],\n      \"v\": {i}\n    }}{sep}\n"
        ));
        compact.push_str(&format!(
            "{{\"name\":\"n {i}\",\"tags\":[\"a\",\"b \\\" c\"],\"v\":{i}}}{sep}"
        ));
    }
    pretty.push_str("  ]\n}\n");
    compact.push_str("]}\n");
    (pretty, compact)
}

#[test]
fn json_input_values_larger_than_a_read_and_compressed() {
    // About 3 MB: a value over many 256 KiB reads, then a small one after it.
    let (pretty, compact) = big_document(25_000);
    let input = format!("{pretty}[1,\n 2]\n");
    let out = run(&["--input-format", "json"], input.as_bytes());
    assert_eq!(stdout(&out), format!("{compact}[1,2]\n"));
    assert_eq!(status(&out), 0);
    let out = run(
        &[
            "--input-format",
            "json",
            "-m",
            ".items? // . | length",
            "--stats=json",
        ],
        input.as_bytes(),
    );
    assert_eq!(stdout(&out), "25000\n2\n");
    let stats = common::stats_json(&out);
    assert_eq!(stats["events_ingested"], 2);
    assert_eq!(stats["bytes_read"], input.len());
    // gzip, known by its magic bytes.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(input.as_bytes()).unwrap();
    let out = run(&["--input-format", "json"], &gz.finish().unwrap());
    assert_eq!(stdout(&out), format!("{compact}[1,2]\n"));
}

#[test]
fn json_input_resumes_from_a_checkpoint_at_a_value_boundary() {
    let dir = common::tempdir();
    let path = dir.path().join("docs.json");
    let ck = dir.path().join("ck.json");
    std::fs::write(&path, "{\n  \"n\": 1\n}\n{\"n\": 2} ").unwrap();
    let args = |p: &std::path::Path| {
        vec![
            "--input-format".to_string(),
            "json".into(),
            "--checkpoint".into(),
            ck.display().to_string(),
            p.display().to_string(),
        ]
    };
    let a = args(&path);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(&a, b"");
    assert_eq!(stdout(&out), "{\"n\":1}\n{\"n\":2}\n");
    common::append(&path, "{\n  \"n\": 3\n}\n[\n4]\n");
    let out = run(&a, b"");
    assert_eq!(stdout(&out), "{\"n\":3}\n[4]\n");
    assert_eq!(status(&out), 0);
    // Line numbers go on from where the last run stopped.
    common::append(&path, "{\"n\": }\n");
    let out = run(&a, b"");
    assert_eq!(
        stderr(&out),
        format!("{}:9: invalid JSON: expected value\n", path.display())
    );
}

#[test]
fn input_format_json_refuses_raw_input() {
    let out = run(&["-R", "--input-format", "json"], b"");
    assert_eq!(status(&out), 2);
    assert!(
        stderr(&out).starts_with(
            "error: the argument '--raw-input' cannot be used with '--input-format <FORMAT>'"
        ),
        "{}",
        stderr(&out)
    );
}

// ---- --slurpfile and --rawfile ----

#[test]
fn slurpfile_and_rawfile_bind_files_past_the_argument_limit() {
    let dir = common::tempdir();
    let teams = dir.path().join("teams.json");
    // Over 200 KiB: more than one argument may hold (128 KiB).
    let mut text = String::new();
    for i in 0..6000 {
        text.push_str(&format!(
            "{{\n  \"service\": \"svc-{i}\",\n  \"team\": \"team-{}\"\n}}\n",
            i % 7
        ));
    }
    assert!(text.len() > 200 * 1024);
    std::fs::write(&teams, &text).unwrap();
    let teams = teams.to_str().unwrap();
    let out = run(
        &[
            "--slurpfile",
            "teams",
            teams,
            "-m",
            ".service as $s | $teams[] | select(.service == $s) | .team",
        ],
        b"{\"service\":\"svc-5000\"}\n{\"service\":\"none\"}\n{\"service\":\"svc-13\"}\n",
    );
    assert_eq!(stdout(&out), "\"team-2\"\n\"team-6\"\n");
    assert_eq!(status(&out), 0);
    let out = run(
        &[
            "-n",
            "--rawfile",
            "t",
            teams,
            "-m",
            "($t | length), ($t | split(\"\\n\") | length)",
        ],
        b"",
    );
    assert_eq!(stdout(&out), format!("{}\n{}\n", text.len(), 6000 * 4 + 1));
}

#[test]
fn slurpfile_values_and_args_named_as_jq() {
    let dir = common::tempdir();
    let f = dir.path().join("s.json");
    std::fs::write(&f, "1 2\n[3]").unwrap();
    let f = f.to_str().unwrap();
    // jq 1.7: jq -nc --slurpfile x s.json --rawfile y s.json '$x, $y, $ARGS'
    let out = run(
        &[
            "-n",
            "--slurpfile",
            "x",
            f,
            "--rawfile",
            "y",
            f,
            "-m",
            "$x, $y, $ARGS",
        ],
        b"",
    );
    assert_eq!(
        stdout(&out),
        "[1,2,[3]]\n\"1 2\\n[3]\"\n{\"positional\":[],\"named\":{\"x\":[1,2,[3]],\"y\":\"1 2\\n[3]\"}}\n"
    );
    // In command-line order with --arg and --argjson: the later binding wins.
    let out = run(
        &["-n", "--arg", "x", "1", "--slurpfile", "x", f, "-m", "$x"],
        b"",
    );
    assert_eq!(stdout(&out), "[1,2,[3]]\n");
    let out = run(
        &[
            "-n",
            "--slurpfile",
            "x",
            f,
            "--argjson",
            "x",
            "7",
            "-m",
            "$x",
        ],
        b"",
    );
    assert_eq!(stdout(&out), "7\n");
}

#[test]
fn an_array_variable_is_not_taken_for_a_scalar_by_direct_evaluation() {
    let dir = common::tempdir();
    let f = dir.path().join("a.json");
    std::fs::write(&f, "1\n2\n").unwrap();
    let f = f.to_str().unwrap();
    let input = b"{\"a\":[1,2]}\n{\"a\":1}\n{\"a\":\"1\\n2\\n\"}\n";
    let out = run(&["--slurpfile", "v", f, "-f", ".a == $v"], input);
    assert_eq!(stdout(&out), "{\"a\":[1,2]}\n");
    let out = run(&["--rawfile", "v", f, "-f", ".a == $v"], input);
    assert_eq!(stdout(&out), "{\"a\":\"1\\n2\\n\"}\n");
    let stats = {
        let out = run(
            &["--rawfile", "v", f, "-f", ".a == $v", "--stats=json"],
            input,
        );
        common::stats_json(&out)
    };
    assert_eq!(stats["events_emitted"], 1);
}

#[test]
fn slurpfile_and_rawfile_errors_name_option_file_and_line() {
    let dir = common::tempdir();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let out = run(&["-n", "--slurpfile", "x", missing, "-m", "$x"], b"");
    assert_eq!(status(&out), 4);
    assert_eq!(
        stderr(&out),
        format!("evq: --slurpfile x: cannot read {missing}: No such file or directory\n")
    );
    let out = run(&["-n", "--rawfile", "x", missing, "-m", "$x"], b"");
    assert_eq!(status(&out), 4);
    assert_eq!(
        stderr(&out),
        format!("evq: --rawfile x: cannot read {missing}: No such file or directory\n")
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"a\": 1}\n\n{\"b\": }\n").unwrap();
    let bad = bad.to_str().unwrap();
    let out = run(&["-n", "--slurpfile", "x", bad, "-m", "$x"], b"");
    assert_eq!(status(&out), 2);
    assert_eq!(
        stderr(&out),
        format!("evq: --slurpfile x: {bad}:3: invalid JSON: expected value\n")
    );
    assert_eq!(stdout(&out), "");
}

/// Waits (at most 10 s) until `path` holds exactly `expected`.
fn wait_for(path: &std::path::Path, expected: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(path).unwrap_or_default();
        if got == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for output\n{expected}--- got\n{got}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn json_input_follows_a_growing_file_value_by_value() {
    let dir = common::tempdir();
    let path = dir.path().join("docs.json");
    let out = dir.path().join("out.ndjson");
    common::append(&path, "{\n  \"n\": 1\n}\n");
    let mut child = common::evq()
        .args([
            "-F",
            "--follow-interval",
            "20ms",
            "--input-format",
            "json",
            "-o",
        ])
        .arg(&out)
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn evq");
    // Stop the child whatever happens below.
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(&mut child);
    wait_for(&out, "{\"n\":1}\n");
    // A value written in parts is handed on once complete; a number at the
    // end waits for what follows it.
    common::append(&path, "{\"n\":\n");
    common::append(&path, " 2} 3");
    wait_for(&out, "{\"n\":1}\n{\"n\":2}\n");
    common::append(&path, "4\n[\n");
    wait_for(&out, "{\"n\":1}\n{\"n\":2}\n34\n");
    common::append(&path, "5]\n");
    wait_for(&out, "{\"n\":1}\n{\"n\":2}\n34\n[5]\n");
    drop(child);
}
