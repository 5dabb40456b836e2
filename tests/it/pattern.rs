//! The pattern stage (`--def`, `--match`, `--within`, `--match-timeouts`):
//! checked against the independent reference in tests/pattern_reference.py
//! (Brzozowski derivatives, not evq's position automaton) on generated
//! events and patterns (nested groups, alternation, every quantifier), with
//! `--threads 1` and `2`; the README's examples run in `readme`; here too
//! within, lateness, failed events, and every bad input with its message
//! and exit status. Tests needing the reference are skipped without python3.

use crate::common;

use serde_json::{Value, json};
use std::process::{Command, Stdio};

const REFERENCE: &str = "tests/pattern_reference.py";
const LOGINS: &str = "fixtures/patterns/logins.ndjson";
const DEFS: [&str; 6] = [
    "--def",
    "c0=.c | index(0) != null",
    "--def",
    "c1=.c | index(1) != null",
    "--def",
    "c2=.c | index(2) != null",
];

fn python(args: &[&str]) -> Option<String> {
    let out = Command::new("python3")
        .arg(REFERENCE)
        .args(args)
        .current_dir(common::root())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

fn ms(text: &str) -> i64 {
    let ts: jiff::Timestamp = text.parse().expect("a time");
    ts.as_millisecond()
}

/// evq's results in the reference's form (`n`: [class, event's i] in
/// event order), sorted.
fn normalize(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = stdout
        .lines()
        .map(|line| {
            let r: Value = serde_json::from_str(line).expect("a result");
            let mut n: Vec<(i64, i64, String)> = Vec::new();
            for (class, events) in r["events"].as_object().expect("events") {
                for e in events.as_array().expect("a list") {
                    n.push((
                        e["t"].as_i64().unwrap(),
                        e["i"].as_i64().unwrap(),
                        class.clone(),
                    ));
                }
            }
            n.sort();
            let mut res = json!({
                "start": ms(r["start"].as_str().unwrap()),
                "end": ms(r["end"].as_str().unwrap()),
                "status": r["status"],
                "n": n.iter().map(|(_, i, c)| json!([c, i])).collect::<Vec<_>>(),
            });
            if let Some(key) = r.get("key") {
                res["key"] = key.clone();
            }
            res.to_string()
        })
        .collect();
    out.sort();
    out
}

/// Generated events, `count` patterns, with and without `--within`.
fn against_reference(seed: u64, events: usize, count: usize) {
    let Some(data) = python(&["gen", &seed.to_string(), &events.to_string()]) else {
        eprintln!("skipping: python3 not found");
        return;
    };
    let dir = common::tempdir();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, data).unwrap();
    let patterns_file = dir.path().join("patterns.txt");
    let patterns = python(&["patterns", &(seed + 1000).to_string(), &count.to_string()]).unwrap();
    std::fs::write(&patterns_file, &patterns).unwrap();
    let (f, p) = (file.to_str().unwrap(), patterns_file.to_str().unwrap());
    for (run, within) in [None, Some("7")].into_iter().enumerate() {
        let mut args = vec!["matchmany", f, p, "--key"];
        if let Some(w) = within {
            args.extend(["--within", if w == "7" { "7000" } else { w }, "--timeouts"]);
        }
        let expected = python(&args).unwrap();
        let mut blocks = expected.split("--\n");
        for (i, pattern) in patterns.lines().enumerate() {
            let want: Vec<String> = blocks.next().unwrap().lines().map(String::from).collect();
            let threads = if (i + run) % 2 == 0 { "1" } else { "2" };
            let mut cmd = vec!["--threads", threads, "--key", ".key", "--time", ".t / 1000"];
            cmd.extend(["--lateness", "3s", "--match", pattern, f]);
            cmd.extend(DEFS);
            if within.is_some() {
                cmd.extend(["--within", "7s", "--match-timeouts"]);
            }
            let out = common::run(&cmd, b"");
            assert_eq!(
                common::status(&out),
                0,
                "{pattern}: {}",
                common::stderr(&out)
            );
            assert_eq!(
                normalize(&common::stdout(&out)),
                want,
                "pattern {pattern:?} within {within:?} (seed {seed})"
            );
        }
    }
}

#[test]
fn generated_against_reference() {
    against_reference(1, 200, 50);
}

#[test]
fn generated_against_reference_more() {
    against_reference(2, 150, 50);
}

/// With the two above, 250 generated patterns (nested groups, alternation,
/// every quantifier), each with and without `--within`.
#[test]
fn generated_against_reference_many_patterns() {
    against_reference(3, 100, 150);
}

fn login_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--def",
        "fail=.ok == false",
        "--def",
        "ok=.ok",
        "--key",
        ".user",
        "--time",
        ".ts",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn login_match_whole() {
    let out = common::run(
        &login_args(&[
            "--match",
            "fail{3,} ok",
            "--within",
            "5m",
            "-m",
            "[.key, (.events.fail|length), .events.ok[0].ts]",
            "-c",
            LOGINS,
        ]),
        b"",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        "[\"ann\",4,\"2024-05-01T10:02:00Z\"]\n[\"bob\",3,\"2024-05-01T10:10:15Z\"]\n"
    );
    // The result as written: key, start, end, status, events by class.
    let out = common::run(
        &login_args(&["--match", "fail{3,} ok", "--within", "5m", LOGINS]),
        b"",
    );
    let first = common::stdout(&out).lines().next().unwrap().to_string();
    assert!(first.starts_with(r#"{"key":"ann","start":"2024-05-01T10:00:00Z","end":"2024-05-01T10:02:00Z","status":"matched","events":{"fail":[{"ts":"2024-05-01T10:00:00Z","user":"ann","ok":false},"#), "{first}");
}

#[test]
fn within_bounds_the_span() {
    // cid's three failures and success span 6.5 minutes.
    let out = common::run(
        &login_args(&[
            "--match",
            "fail{3,} ok",
            "--within",
            "7m",
            "-m",
            ".key",
            LOGINS,
        ]),
        b"",
    );
    assert_eq!(common::stdout(&out), "\"ann\"\n\"cid\"\n\"bob\"\n");
    let out = common::run(
        &login_args(&[
            "--match",
            "fail{3,} ok",
            "--within",
            "1m",
            "-m",
            ".key",
            LOGINS,
        ]),
        b"",
    );
    assert_eq!(common::stdout(&out), "\"bob\"\n");
    // Without --key: one sequence, no "key" in the result.
    let out = common::run(
        &[
            "--def",
            "ok=.ok",
            "--match",
            "ok ok ok",
            "--time",
            ".ts",
            "-c",
            "-m",
            "[has(\"key\"), (.events.ok | map(.user))]",
            LOGINS,
        ],
        b"",
    );
    assert_eq!(common::stdout(&out), "[false,[\"bob\",\"ann\",\"cid\"]]\n");
}

#[test]
fn stats_and_timeouts() {
    let out = common::run(
        &login_args(&[
            "--match",
            "fail{3,} ok",
            "--within",
            "5m",
            "--match-timeouts",
            "--stats=json",
            "-f",
            ".status == \"timeout\"",
            "-m",
            ".key",
            LOGINS,
        ]),
        b"",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    let stats = common::stats_json(&out);
    let text = stats.to_string();
    for field in [
        "\"matches\":2",
        "\"timeouts\":",
        "\"partial_matches\":0",
        "\"partial_matches_peak\":",
        "\"events_late\":0",
        "\"state_bytes\":0",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert!(common::stdout(&out).contains("\"cid\""));
}

#[test]
fn late_events_are_dead_lettered() {
    let input = b"{\"u\":1,\"t\":10}\n{\"u\":1,\"t\":20}\n{\"u\":1,\"t\":5}\n{\"u\":1,\"t\":30}\n";
    let dir = common::tempdir();
    let dead = dir.path().join("dead.ndjson");
    let out = common::run(
        &[
            "--def",
            "a=true",
            "--match",
            "a a",
            "--key",
            ".u",
            "--time",
            ".t",
            "--dead-letter",
            dead.to_str().unwrap(),
            "-m",
            "[.events.a[].t]",
            "-c",
        ],
        input,
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "[10,20]\n");
    assert!(
        common::stderr(&out).contains("1 event came too late to be matched"),
        "{}",
        common::stderr(&out)
    );
    // The one late event, whole, with where it was and why.
    let dead = String::from_utf8(common::read(&dead)).unwrap();
    assert_eq!(
        dead,
        "{\"source\":\"-\",\"line\":3,\"stage\":\"pattern#1\",\"error\":\"late event: time 1970-01-01T00:00:05Z is behind the pattern's watermark 1970-01-01T00:00:20Z; the sequence of its key is taken up to there (see --lateness)\",\"raw\":\"{\\\"u\\\":1,\\\"t\\\":5}\"}\n"
    );
    // With --lateness it counts.
    let out = common::run(
        &[
            "--def",
            "a=true",
            "--match",
            "a a",
            "--key",
            ".u",
            "--time",
            ".t",
            "--lateness",
            "20s",
            "-m",
            "[.events.a[].t]",
            "-c",
        ],
        input,
    );
    assert_eq!(common::stdout(&out), "[5,10]\n[20,30]\n");
}

#[test]
fn failed_class_expression() {
    let input = b"{\"x\":1}\n{\"x\":\"a\"}\n{\"x\":2}\n";
    let out = common::run(
        &["--def", "a=.x + 1 > 0", "--match", "a a", "--time", "0"],
        input,
    );
    assert_eq!(common::status(&out), 3);
    assert!(
        common::stderr(&out).contains("--def a:"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(common::stdout(&out).lines().count(), 1);
}

fn usage(args: &[&str], message: &str) {
    let out = common::run(args, b"{}\n");
    assert_eq!(common::status(&out), 2, "{args:?}");
    assert!(
        common::stderr(&out).contains(message),
        "{args:?}: {}",
        common::stderr(&out)
    );
    assert!(common::stdout(&out).is_empty());
}

#[test]
fn bad_patterns_have_a_caret() {
    let out = common::run(
        &[
            "--def",
            "fail=.x",
            "--def",
            "ok=.y",
            "--match",
            "fail{3,1} ok",
        ],
        b"",
    );
    assert_eq!(common::status(&out), 2);
    assert_eq!(
        common::stderr(&out),
        "evq: error in --match: {3,1}: the upper count is below the lower one\n  ╭─[--match]\n  │\n1 │ fail{3,1} ok\n  ┆     ──┬──   \n  ┆       │     \n  ┆       ╰────── n > m\n──╯\n"
    );
    let d = ["--def", "fail=.x", "--def", "ok=.y", "--match"];
    for (pattern, message) in [
        ("fail nope", "unknown class \"nope\" (defined: fail, ok)"),
        ("fail (ok", "unbalanced parenthesis: this ( is not closed"),
        ("fail ok)", "unbalanced parenthesis: this ) closes nothing"),
        ("* fail", "must follow a class name or a group"),
        ("fail**", "not another quantifier"),
        ("fail{x}", "a count is {n}, {n,} or {n,m}"),
        ("fail |", "expected a class name or a group"),
        ("fail{0}", "a count of 0"),
        ("fail{5000}", "the pattern is too large"),
        ("fail, ok", "expected a class name or a group"),
    ] {
        let mut args = d.to_vec();
        args.push(pattern);
        usage(&args, message);
    }
}

#[test]
fn bad_options() {
    usage(
        &["--def", "fail", "--match", "fail"],
        "--def \"fail\": expected NAME=EXPR",
    );
    usage(&["--def", "1x=.a", "--match", "x"], "is not a class name");
    usage(
        &["--def", "a=.a", "--def", "a=.b", "--match", "a"],
        "--def a: the class is defined twice",
    );
    usage(
        &["--def", "a=.a ==", "--match", "a"],
        "error in --def a: expected term",
    );
    usage(&["--match", "a"], "--match needs at least one --def");
    usage(&["--def", "a=.a"], "evq: --def goes with --match PATTERN");
    usage(
        &["--def", "a=.a", "--match", "a", "--match-timeouts"],
        "--match-timeouts needs --within",
    );
    usage(
        &["--def", "a=.a", "--match", "a", "--within", "0s..5m"],
        "with --match, --within is one positive duration",
    );
    usage(
        &["--def", "a=.a", "--match", "a", "--window", "1m"],
        "--match and --window/--agg cannot be in one run",
    );
    usage(
        &["--def", "a=.a", "--match", "a", "--join", LOGINS],
        "--match and --join cannot be in one run",
    );
    usage(
        &["--def", "a=.a", "--match", "a", "--join-type", "left"],
        "--join-type goes with --join FILE",
    );
}
