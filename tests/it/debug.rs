//! jq's `debug`, `debug(msgs)` and `stderr`: written on standard error as
//! jq 1.7 writes them, whole lines from any number of threads, and nothing
//! of them on standard output.

use crate::common;

use crate::common::{run, status, stderr, stdout};

#[test]
fn debug_writes_the_value_on_standard_error() {
    let out = run(&["-m", ".a | debug | . + 1"], b"{\"a\":1}\n");
    assert_eq!(stdout(&out), "2\n");
    assert_eq!(stderr(&out), "[\"DEBUG:\",1]\n");
    assert_eq!(status(&out), 0);
}

#[test]
fn debug_of_messages_writes_each_one() {
    let out = run(
        &["-m", r#"debug("x: \(.a)", .a, {b: .a})"#],
        b"{\"a\":1}\n{\"a\":[2,\"z\"]}\n",
    );
    assert_eq!(stdout(&out), "{\"a\":1}\n{\"a\":[2,\"z\"]}\n");
    assert_eq!(
        stderr(&out),
        concat!(
            "[\"DEBUG:\",\"x: 1\"]\n",
            "[\"DEBUG:\",1]\n",
            "[\"DEBUG:\",{\"b\":1}]\n",
            "[\"DEBUG:\",\"x: [2,\\\"z\\\"]\"]\n",
            "[\"DEBUG:\",[2,\"z\"]]\n",
            "[\"DEBUG:\",{\"b\":[2,\"z\"]}]\n",
        )
    );
    assert_eq!(status(&out), 0);
}

#[test]
fn stderr_writes_text_raw_and_values_compact_without_newline() {
    let out = run(
        &["-m", r#".a | ("hi\n", {b: .}, 3) | stderr | empty"#],
        b"{\"a\":1}\n",
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "hi\n{\"b\":1}3");
    assert_eq!(status(&out), 0);

    // stderr passes its input on.
    let out = run(&["-f", ".a | stderr | . > 0"], b"{\"a\":1}\n");
    assert_eq!(stdout(&out), "{\"a\":1}\n");
    assert_eq!(stderr(&out), "1");
}

#[test]
fn a_report_after_a_text_without_newline_starts_its_own_line() {
    // halt_error writes its message as stderr does, then fails the event.
    let out = run(&["-m", r#""bye" | halt_error(5)"#], b"{}\n");
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "bye\n<stdin>:1: map#1: halt with exit code 5\n"
    );
    assert_eq!(status(&out), 3);
}

#[test]
fn direct_evaluation_leaves_debug_to_jq() {
    // `.a > 0` alone is evaluated without jaq; with debug before it, jaq runs.
    let out = run(&["-f", "debug | .a > 0"], b"{\"a\":1}\n{\"a\":0}\n");
    assert_eq!(stdout(&out), "{\"a\":1}\n");
    assert_eq!(
        stderr(&out),
        "[\"DEBUG:\",{\"a\":1}]\n[\"DEBUG:\",{\"a\":0}]\n"
    );
    let out = run(&["-f", ".a > 0 | debug"], b"{\"a\":1}\n{\"a\":0}\n");
    assert_eq!(stdout(&out), "{\"a\":1}\n");
    assert_eq!(stderr(&out), "[\"DEBUG:\",true]\n[\"DEBUG:\",false]\n");
}

#[test]
fn debug_lines_from_several_threads_are_whole_and_output_unchanged() {
    let dir = common::tempdir();
    let path = dir.path().join("many.ndjson");
    let events = 20_000;
    let mut text = String::new();
    for n in 0..events {
        text.push_str(&format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "p".repeat(40)));
    }
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap();

    let plain = run(&["-j", "2", "-m", ".n * 2", path], b"");
    let debugged = run(&["-j", "2", "-m", ".n | debug | . * 2", path], b"");
    assert_eq!(status(&plain), 0);
    assert_eq!(status(&debugged), 0);
    assert_eq!(stderr(&plain), "");
    // Standard output is byte for byte the same.
    assert!(plain.stdout == debugged.stdout, "stdout differs with debug");
    assert_eq!(stdout(&plain).lines().count(), events);

    // Every line is there and whole; threads may print in any order.
    let err = stderr(&debugged);
    let mut lines: Vec<&str> = err.lines().collect();
    lines.sort_by_key(|line| {
        line.strip_prefix("[\"DEBUG:\",")
            .and_then(|n| n.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("not a whole debug line: {line:?}"))
    });
    let expected: Vec<String> = (0..events).map(|n| format!("[\"DEBUG:\",{n}]")).collect();
    assert_eq!(lines, expected);
    assert!(err.ends_with('\n'));
}
