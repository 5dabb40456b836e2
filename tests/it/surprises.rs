//! What surprised a new user (issue "No surprises"): output that was not
//! JSON, an input overwritten by `-o`, a closed pipe that hid failures, the
//! jq habit `evq EXPR FILE`, evq waiting with nothing to do, and stats with
//! no wall-clock time. Each test runs the built binary.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

// ------------------------------------------------------- valid JSON out

#[test]
fn infinities_and_nan_are_written_as_json() {
    let out = common::run(
        &[
            "-m",
            ".n * 1",
            "-m",
            "[., -., {x: nan}, [infinite, -infinite]]",
        ],
        b"{\"n\":1e400}\n",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        "[1.7976931348623157e+308,-1.7976931348623157e+308,{\"x\":null},[1.7976931348623157e+308,-1.7976931348623157e+308]]\n"
    );
    // A number as read is kept as spelled: 1e400 is valid JSON.
    let out = common::run(&["-m", "{n}"], b"{\"n\":1e400}\n");
    assert_eq!(common::stdout(&out), "{\"n\":1e400}\n");
}

#[test]
fn aggregates_over_infinities_are_json() {
    let input = b"{\"t\":1e400,\"k\":\"a\"}\n{\"t\":-1e400,\"k\":\"b\"}\n{\"t\":1,\"k\":\"b\"}\n";
    let out = common::run(
        &[
            "--key",
            ".k",
            "--agg",
            "s=sum(.t)",
            "--agg",
            "a=avg(.t)",
            "--agg",
            "lo=min(.t * 2)",
        ],
        input,
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    let text = common::stdout(&out);
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
    }
    assert!(text.contains("\"s\":1.7976931348623157e+308"), "{text}");
    assert!(text.contains("\"s\":-1.7976931348623157e+308"), "{text}");
    assert!(
        !text.contains("Infinity") && !text.contains("NaN"),
        "{text}"
    );
}

#[test]
fn evq_reads_its_own_output_back() {
    let first = common::run(&["-m", "{a: (.n * 10), b: nan, c: .n}"], b"{\"n\":1e308}\n");
    assert_eq!(common::status(&first), 0);
    let second = common::run(&["-m", "."], &first.stdout);
    assert_eq!(common::status(&second), 0, "{}", common::stderr(&second));
    assert_eq!(second.stdout, first.stdout);
}

// ------------------------------------------------- inputs never overwritten

fn refusal(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = common::evq()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run evq");
    (
        common::status(&out),
        common::stdout(&out),
        common::stderr(&out),
    )
}

#[test]
fn an_output_that_is_also_an_input_is_refused() {
    let dir = common::tempdir();
    let original = common::read(&common::root().join("fixtures/app.ndjson"));
    std::fs::write(dir.path().join("s.ndjson"), &original).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::hard_link(
        dir.path().join("s.ndjson"),
        dir.path().join("sub/link.ndjson"),
    )
    .unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["-f", ".level==\"error\"", "-o", "s.ndjson", "s.ndjson"],
            "evq: -o s.ndjson is also an input (s.ndjson): evq would overwrite what it reads; write to another file\n",
        ),
        (
            &["-o", "sub/../s.ndjson", "./s.ndjson"],
            "evq: -o sub/../s.ndjson is also an input (./s.ndjson): evq would overwrite what it reads; write to another file\n",
        ),
        (
            &["--output", "sub/link.ndjson", "s.ndjson"],
            "evq: -o sub/link.ndjson is also an input (s.ndjson): evq would overwrite what it reads; write to another file\n",
        ),
        (
            &["--dead-letter", "sub/link.ndjson", "s.ndjson"],
            "evq: --dead-letter sub/link.ndjson is also an input (s.ndjson): evq would overwrite what it reads; write to another file\n",
        ),
        (
            &["--checkpoint", "s.ndjson", "s.ndjson"],
            "evq: --checkpoint s.ndjson is also an input (s.ndjson): evq would overwrite what it reads; write to another file\n",
        ),
    ];
    for (args, expected) in cases {
        let (status, stdout, stderr) = refusal(args, dir.path());
        assert_eq!(
            (status, stdout.as_str(), stderr.as_str()),
            (2, "", *expected),
            "{args:?}"
        );
        assert_eq!(
            common::read(&dir.path().join("s.ndjson")),
            original,
            "{args:?} changed the input"
        );
    }
}

#[test]
fn an_output_that_is_standard_input_is_refused() {
    let dir = common::tempdir();
    let path = dir.path().join("s.ndjson");
    std::fs::write(&path, "{\"a\":1}\n").unwrap();
    let out = common::evq()
        .args(["-o", "s.ndjson"])
        .current_dir(dir.path())
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert_eq!(common::status(&out), 2);
    assert_eq!(
        common::stderr(&out),
        "evq: -o s.ndjson is also an input (<stdin>): evq would overwrite what it reads; write to another file\n"
    );
    assert_eq!(common::read(&path), b"{\"a\":1}\n");
}

#[test]
fn an_output_that_is_another_file_is_written() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join("in.ndjson"), "{\"a\":1}\n").unwrap();
    std::fs::write(dir.path().join("out.ndjson"), "old\n").unwrap();
    let (status, _, stderr) = refusal(&["-o", "out.ndjson", "in.ndjson"], dir.path());
    assert_eq!((status, stderr.as_str()), (0, ""));
    assert_eq!(common::read(&dir.path().join("out.ndjson")), b"{\"a\":1}\n");
}

// ------------------------------------------------- a closed pipe, its status

/// Runs evq on `input` (fed from a thread), reads one line of its output
/// and closes the pipe, as `| head -1` does; returns the exit status and stderr.
fn close_after_first_line(args: &[&str], input: Vec<u8>) -> (i32, String) {
    let mut child = common::evq()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"i\":"), "first line: {first}");
    drop(stdout);
    let Some(status) = common::wait_timeout(&mut child, Duration::from_secs(20)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("evq did not stop after its output was closed");
    };
    let _ = feeder.join();
    (status.code().expect("exit status"), errors.join().unwrap())
}

fn big_input(first: &str) -> Vec<u8> {
    let mut input = first.as_bytes().to_vec();
    let pad = "x".repeat(60);
    for i in 0..100_000 {
        writeln!(input, "{{\"i\":{i},\"pad\":\"{pad}\"}}").unwrap();
    }
    input
}

#[test]
fn a_closed_pipe_keeps_the_status_of_what_was_read() {
    // Line 1 failed: as if the input had ended there, the status is 3.
    let (status, stderr) = close_after_first_line(&["-q"], big_input("bad\n"));
    assert_eq!(status, 3, "stderr: {stderr}");
    assert_eq!(stderr, "");
    let (status, stderr) = close_after_first_line(&[], big_input("bad\n"));
    assert_eq!(status, 3);
    assert_eq!(
        stderr,
        "<stdin>:1: invalid JSON: expected value at column 1\n"
    );
    // Failures ignored: 0.
    let (status, _) = close_after_first_line(&["-q", "--on-error", "ignore"], big_input("bad\n"));
    assert_eq!(status, 0);
    // Nothing failed: 0, quietly.
    let (status, stderr) = close_after_first_line(&["-m", "."], big_input(""));
    assert_eq!((status, stderr.as_str()), (0, ""));
}

// ------------------------------------------------- evq EXPR FILE

#[test]
fn an_expression_where_a_file_goes_is_explained() {
    let out = common::run(&[".level", "fixtures/app.ndjson"], b"");
    assert_eq!(common::status(&out), 2);
    assert_eq!(common::stdout(&out), "");
    assert_eq!(
        common::stderr(&out),
        "evq: '.level' is not a file; an expression goes after -f (filter) or -m (map), as in: evq -m '.level' fixtures/app.ndjson\n"
    );
    let out = common::run(&["fixtures/app.ndjson", "select(.n == 'x')"], b"");
    assert_eq!(
        common::status(&out),
        4,
        "does not compile: an ordinary missing file"
    );
    let out = common::run(
        &["select(.level == \"error\")", "fixtures/app.ndjson", "-"],
        b"",
    );
    assert_eq!(common::status(&out), 2);
    assert_eq!(
        common::stderr(&out),
        "evq: 'select(.level == \"error\")' is not a file; an expression goes after -f (filter) or -m (map), as in: evq -m 'select(.level == \"error\")' fixtures/app.ndjson -\n"
    );
    // A missing file whose name is no expression is an ordinary I/O error.
    let out = common::run(&["no-such.ndjson"], b"");
    assert_eq!(common::status(&out), 4);
    assert_eq!(
        common::stderr(&out),
        "evq: no-such.ndjson: No such file or directory\n"
    );
}

#[test]
fn a_file_that_exists_is_read_whatever_its_name() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join(".level"), "{\"level\":\"info\"}\n").unwrap();
    let out = common::evq()
        .arg(".level")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "{\"level\":\"info\"}\n");
}

// ------------------------------------------------- nothing to do

/// Runs `command` under `script`, in a pseudo-terminal (stdin, stdout and
/// stderr all on it); `None` when `script` is not installed.
fn in_terminal(command: &str) -> Option<(i32, String)> {
    let out = std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .current_dir(common::root())
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => Some((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        )),
        Err(e) => {
            eprintln!("skipped: `script` (util-linux) cannot run: {e}");
            None
        }
    }
}

#[test]
fn nothing_to_do_on_a_terminal_prints_the_usage() {
    let evq = env!("CARGO_BIN_EXE_evq");
    let Some((status, screen)) = in_terminal(&format!("'{evq}' --no-progress")) else {
        return;
    };
    assert_eq!(status, 2, "{screen}");
    assert!(
        screen.starts_with(
            "evq: no stage and no FILE, and standard input is a terminal: nothing to do\nUsage: evq [OPTIONS] [FILE]...\n"
        ),
        "{screen}"
    );
    assert!(screen.contains("Try 'evq --help'"), "{screen}");
    // With a stage it is a filter over what is typed: evq waits for input,
    // so end it with standard input closed instead (no terminal: no usage).
    let out = common::run(&[], b"{\"a\":1}\n");
    assert_eq!(
        (common::status(&out), common::stdout(&out).as_str()),
        (0, "{\"a\":1}\n")
    );
}

// ------------------------------------------------- stats carry the time

fn check_time(time: &str) {
    // RFC 3339, UTC, milliseconds: 2026-11-30T08:15:02.417Z
    let b = time.as_bytes();
    assert_eq!(b.len(), 24, "{time}");
    for (i, c) in b.iter().enumerate() {
        let expected_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23);
        assert_eq!(c.is_ascii_digit(), expected_digit, "{time}");
    }
    assert_eq!(
        (b[4], b[10], b[19], b[23]),
        (b'-', b'T', b'.', b'Z'),
        "{time}"
    );
    let year: i64 = time[..4].parse().unwrap();
    let now_year = 1970
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            / 31_556_952;
    assert!((year - now_year).abs() <= 1, "{time}");
}

#[test]
fn stats_carry_the_wall_clock_time() {
    let out = common::run(&["--stats=json", "-m", ".a"], b"{\"a\":1}\n");
    let stats = common::stats_json(&out);
    check_time(stats["time"].as_str().expect("time is a string"));
    let out = common::run(&["--stats"], b"{\"a\":1}\n");
    let text = common::stderr(&out);
    let at = text.find(", at ").map(|i| &text[i + 5..i + 5 + 24]);
    check_time(at.unwrap_or_else(|| panic!("no time in {text}")));
}

#[test]
fn periodic_stats_carry_the_wall_clock_time() {
    let dir = common::tempdir();
    let path = dir.path().join("live.ndjson");
    common::append(&path, "{\"a\":1}\n");
    let mut child = common::evq()
        .args(["-F", "--stats=json", "--stats-every", "100ms"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let report: serde_json::Value = serde_json::from_str(&line).expect("a JSON report");
    assert!(report["interval"].is_object(), "{line}");
    check_time(report["time"].as_str().expect("time"));
}

// ------------------------------------------------- pipes as FILE

#[test]
fn a_named_pipe_is_read_whole_as_a_stream() {
    let dir = common::tempdir();
    let fifo = dir.path().join("events.pipe");
    match std::process::Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("skipped: mkfifo unavailable ({other:?})");
            return;
        }
    }
    // The writer blocks until evq opens the pipe; the size probe for the
    // progress bar must not open it first and take the data.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, "{\"a\":1}\n{\"a\":2}\n"))
    };
    let mut child = common::evq()
        .args(["--progress", "-m", ".a"])
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let Some(status) = common::wait_timeout(&mut child, Duration::from_secs(20)) else {
        let _ = child.kill();
        let _ = child.wait();
        // Unblock the writer if evq never opened the pipe.
        let _ = std::fs::read(&fifo);
        panic!("evq hung on a named pipe");
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(text, "1\n2\n");
}
