//! `--checkpoint`: a later run resumes each file where the last one stopped,
//! recognises a rotated file under its new name, starts a truncated file over,
//! and loses nothing when killed with SIGKILL at any moment (at-least-once).

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    common::evq()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run evq")
}

#[test]
fn a_later_run_resumes_where_the_last_one_stopped() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    common::append(&log, "{\"n\":1}\n{\"n\":2}\n");
    let out = run_in(dir.path(), &["--checkpoint", "cp.json", "app.log"]);
    assert_eq!(common::stdout(&out), "{\"n\":1}\n{\"n\":2}\n");
    // Nothing new: nothing emitted.
    let out = run_in(dir.path(), &["--checkpoint", "cp.json", "app.log"]);
    assert_eq!(common::stdout(&out), "");
    assert_eq!(common::status(&out), 0);
    // New lines, one of them bad: only they are read, with their real line numbers.
    common::append(&log, "oops\n{\"n\":3}\n");
    let out = run_in(dir.path(), &["--checkpoint", "cp.json", "app.log"]);
    assert_eq!(common::stdout(&out), "{\"n\":3}\n");
    assert_eq!(
        common::stderr(&out),
        "app.log:3: invalid JSON: expected value at column 1\n"
    );
    let cp: serde_json::Value =
        serde_json::from_slice(&common::read(&dir.path().join("cp.json"))).unwrap();
    assert_eq!(cp["files"][0]["offset"], 29);
    assert_eq!(cp["files"][0]["line"], 4);
}

#[test]
fn a_rotated_file_is_resumed_under_its_new_name_and_a_truncated_one_starts_over() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    common::append(&log, "{\"n\":1}\n");
    run_in(dir.path(), &["--checkpoint", "cp.json", "app.log"]);
    // Rotation between runs: the old file gets one more line, a new one starts.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    common::append(&dir.path().join("app.log.1"), "{\"n\":2}\n");
    common::append(&log, "{\"n\":3}\n");
    let out = run_in(
        dir.path(),
        &["--checkpoint", "cp.json", "app.log.1", "app.log"],
    );
    assert_eq!(common::stdout(&out), "{\"n\":2}\n{\"n\":3}\n");
    // Truncated and rewritten: read from its start.
    std::fs::write(&log, "{\"n\":4}\n").unwrap();
    let out = run_in(dir.path(), &["--checkpoint", "cp.json", "app.log"]);
    assert_eq!(common::stdout(&out), "{\"n\":4}\n");
}

#[test]
fn compressed_files_resume_after_the_decompressed_offset() {
    let dir = common::tempdir();
    std::fs::copy(
        common::root().join("fixtures/compressed/app.ndjson.gz"),
        dir.path().join("a.gz"),
    )
    .unwrap();
    let first = run_in(dir.path(), &["--checkpoint", "cp.json", "a.gz"]);
    assert_eq!(first.stdout.iter().filter(|b| **b == b'\n').count(), 40);
    let again = run_in(dir.path(), &["--checkpoint", "cp.json", "a.gz"]);
    assert_eq!(common::stdout(&again), "");
}

#[test]
fn what_cannot_be_checkpointed_is_refused() {
    let dir = common::tempdir();
    let out = common::run(
        &["--checkpoint", dir.path().join("cp").to_str().unwrap()],
        b"{}\n",
    );
    assert_eq!(common::status(&out), 2);
    assert_eq!(
        common::stderr(&out),
        "evq: --checkpoint needs files: standard input cannot be resumed\n"
    );
    // A window's state is saved; another chain may not resume it.
    let cp = dir.path().join("cp");
    let window = |agg: &str| {
        let args = [
            "--checkpoint",
            cp.to_str().unwrap(),
            "--window",
            "tumbling:1m",
        ];
        let mut args = args.to_vec();
        args.extend(["--time", ".ts", "--agg", agg, "fixtures/app.ndjson"]);
        common::run(&args, b"")
    };
    assert_eq!(common::status(&window("n=count")), 0);
    let out = window("c=count");
    assert_eq!(common::status(&out), 2);
    assert!(
        common::stderr(&out).contains("was written for another chain"),
        "{}",
        common::stderr(&out)
    );
    std::fs::write(dir.path().join("bad"), "not a checkpoint").unwrap();
    let out = common::run(
        &[
            "--checkpoint",
            dir.path().join("bad").to_str().unwrap(),
            "fixtures/app.ndjson",
        ],
        b"",
    );
    assert_eq!(common::status(&out), 4);
    assert!(common::stderr(&out).contains("not a checkpoint file"));
}

/// SIGKILL at random moments, rerun until a run completes: together the runs
/// emitted every input line (none lost), and nothing that is not one.
#[test]
fn no_line_is_lost_when_killed_at_any_moment() {
    let dir = common::tempdir();
    let input = dir.path().join("in.ndjson");
    let mut text = String::new();
    for i in 0..800_000 {
        text.push_str(&format!(
            "{{\"i\":{i},\"pad\":\"{}\"}}\n",
            "x".repeat(i % 50)
        ));
    }
    std::fs::write(&input, &text).unwrap();
    let expected: HashSet<&str> = text.lines().collect();
    // A clean run's time sets the checkpoint interval (a twentieth of it,
    // 5-20 ms) and the first runs' delays, so that runs save and are killed
    // before they could end however fast the machine is.
    let started = std::time::Instant::now();
    let clean = common::evq()
        .args(["-f", ".i >= 0", "-o"])
        .arg(dir.path().join("clean.ndjson"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(clean.status.success(), "{}", common::stderr(&clean));
    let clean_ms = started.elapsed().as_millis() as u64;
    let every = format!("{}ms", (clean_ms / 20).clamp(5, 20));
    let span = clean_ms.max(100);
    let mut seen: HashSet<String> = HashSet::new();
    // A fixed sequence of "random" delays, so a failure reproduces.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut runs = 0;
    let mut last_run_lines;
    // Multiplies the delays; doubled after each kill from the fourth on that
    // came before any run had saved a checkpoint (a slow or busy machine: a
    // debug build, other tests running, a disk slow to sync the output).
    let mut slow = 1;
    let checkpoint = dir.path().join("cp.json");
    loop {
        runs += 1;
        assert!(runs < 60, "no run completed");
        let out = dir.path().join(format!("out-{runs}.ndjson"));
        let mark = common::saved_mark(&checkpoint);
        let mut child = common::evq()
            .current_dir(dir.path())
            .args([
                "--checkpoint",
                "cp.json",
                "--checkpoint-every",
                &every,
                "-f",
                ".i >= 0",
                "-o",
            ])
            .arg(&out)
            .arg(&input)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Later runs wait longer, so that on a slow or busy machine (a debug
        // build, other tests running) some runs still get past a checkpoint
        // before they are killed.
        let delay = if runs <= 6 {
            // After the run's own save: at most a sixth of a clean run.
            Duration::from_millis(5 + seed % (span / 6))
        } else {
            Duration::from_millis((5 + seed % 120) * (1 + runs / 4) * slow)
        };
        // The first six runs are given their delay once they have saved a
        // checkpoint of their own, so that some kills fall after a save
        // however fast the machine is; later runs may die before theirs.
        let saving = if runs <= 6 {
            common::wait_for_save(&mut child, &checkpoint, mark, Duration::from_secs(60))
        } else {
            None
        };
        // After 20 runs, once some run has saved a checkpoint, one may complete.
        let waited = match saving {
            Some(status) => Some(status),
            None if runs > 20 && checkpoint.exists() => {
                common::wait_timeout(&mut child, Duration::from_secs(60))
            }
            None => common::wait_timeout(&mut child, delay),
        };
        let completed = match waited {
            Some(status) => status.success(),
            None => {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
                if runs >= 4 && !checkpoint.exists() {
                    slow = (slow * 2).min(32);
                }
                false
            }
        };
        let written = std::fs::read_to_string(&out).unwrap_or_default();
        last_run_lines = written.lines().count();
        for line in written.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let line = line.trim_end_matches('\n');
            assert!(
                expected.contains(line),
                "run {runs} emitted a line not in the input: {line}"
            );
            seen.insert(line.to_string());
        }
        if completed {
            break;
        }
    }
    // The first runs were killed: the test exercised the crash path, and the
    // run that completed resumed rather than starting over.
    assert!(
        runs > 3,
        "only {runs} runs: the kills came too late to test anything"
    );
    assert!(
        last_run_lines < expected.len(),
        "the last run emitted {last_run_lines} lines: it did not resume"
    );
    let missing = expected.iter().filter(|l| !seen.contains(**l)).count();
    assert_eq!(missing, 0, "{missing} lines lost over {runs} runs");
}

#[test]
fn a_checkpoint_that_cannot_be_written_is_an_io_error() {
    // The events were written; the position could not be saved: exit 4, named.
    let out = common::run(
        &[
            "--checkpoint",
            "/nonexistent/dir/cp.json",
            "fixtures/app.ndjson",
        ],
        b"",
    );
    assert_eq!(common::status(&out), 4);
    assert_eq!(
        out.stdout,
        common::read(&common::root().join("fixtures/app.ndjson"))
    );
    assert_eq!(
        common::stderr(&out),
        "evq: cannot write checkpoint /nonexistent/dir/cp.json: No such file or directory\n"
    );
    for (args, message) in [
        (
            &[
                "--checkpoint",
                "/tmp/evq-test.cp",
                "--checkpoint-every",
                "5x",
            ][..],
            "evq: --checkpoint-every: invalid duration \"5x\"",
        ),
        (
            &["-F", "--follow-interval", "0s"][..],
            "evq: --follow-interval: duration \"0s\" must be greater than zero",
        ),
    ] {
        let mut all = args.to_vec();
        all.push("fixtures/app.ndjson");
        let out = common::run(&all, b"");
        assert_eq!(common::status(&out), 2, "{args:?}");
        assert!(
            common::stderr(&out).starts_with(message),
            "{}",
            common::stderr(&out)
        );
    }
}

/// A checkpoint whose state this chain cannot take back, and one written by
/// a newer format, are refused before anything is read or written.
#[test]
fn a_checkpoint_with_unusable_state_or_a_newer_format_is_refused() {
    let dir = common::tempdir();
    std::fs::copy(common::fixture("app.ndjson"), dir.path().join("app.ndjson")).unwrap();
    let window = [
        "--window",
        "tumbling:1m",
        "--time",
        ".ts",
        "--key",
        ".service",
        "--agg",
        "n=count",
    ];
    let run = |cp: &str| {
        let args = [&["--checkpoint", cp][..], &window, &["app.ndjson"]].concat();
        run_in(dir.path(), &args)
    };
    // A first run writes a good checkpoint; then its state is spoilt.
    let good = run("cp");
    assert_eq!(common::status(&good), 0, "{}", common::stderr(&good));
    let text = std::fs::read_to_string(dir.path().join("cp")).unwrap();
    let mut cp: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cp["version"], 3);
    // Version 2 (before a percentile kept a few values as they are) is read.
    let mut v2 = cp.clone();
    v2["version"] = serde_json::json!(2);
    std::fs::write(dir.path().join("cp"), v2.to_string()).unwrap();
    let out = run("cp");
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    cp["state"]["stage"]["panes"] = serde_json::json!("spoilt");
    std::fs::write(dir.path().join("cp"), cp.to_string()).unwrap();
    let out = run("cp");
    assert_eq!(common::status(&out), 2);
    assert_eq!(common::stdout(&out), "");
    assert_eq!(
        common::stderr(&out),
        "evq: --checkpoint cp: the state it holds cannot be restored: its panes is not one this window stage saves\n"
    );
    // A format from a later evq.
    cp["version"] = serde_json::json!(99);
    std::fs::write(dir.path().join("cp"), cp.to_string()).unwrap();
    let out = run("cp");
    assert_eq!(common::status(&out), 4);
    assert_eq!(
        common::stderr(&out),
        "evq: --checkpoint cp: written in format 99 by a newer evq (this one reads up to 3)\n"
    );
}

/// Stopped by SIGTERM while following, a window chain with a checkpoint
/// emits only the windows the watermark closed, keeps the open ones in the
/// checkpoint, and the next run goes on with them: together the two runs
/// emit what one run over all the lines does.
#[test]
fn a_signal_keeps_open_windows_in_the_checkpoint() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    let line = |t: u32, k: &str| format!("{{\"t\":{t},\"k\":\"{k}\"}}\n");
    // Two minutes of events; the first minute closes, the second stays open.
    let first: String = [(5, "a"), (20, "b"), (50, "a"), (65, "a"), (80, "b")]
        .iter()
        .map(|&(t, k)| line(t, k))
        .collect();
    common::append(&log, &first);
    let window = [
        "--window",
        "tumbling:1m",
        "--time",
        ".t",
        "--key",
        ".k",
        "--agg",
        "n=count",
    ];
    let out1 = dir.path().join("out1");
    let args = [
        &["-F", "--follow-interval", "20ms", "--checkpoint", "cp"][..],
        &window,
    ];
    let mut child = common::evq()
        .current_dir(dir.path())
        .args(args.concat())
        .arg("-o")
        .arg(&out1)
        .arg("app.log")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first minute's results, then stop it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&out1)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no results");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    let got1 = std::fs::read_to_string(&out1).unwrap();
    assert_eq!(
        got1,
        "{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:01:00Z\",\"key\":\"a\",\"n\":2}\n\
         {\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:01:00Z\",\"key\":\"b\",\"n\":1}\n"
    );
    // More lines, and a run to the end with the same checkpoint.
    common::append(&log, &line(100, "a"));
    let rest = run_in(
        dir.path(),
        &[&["--checkpoint", "cp"][..], &window, &["app.log"]].concat(),
    );
    assert_eq!(common::status(&rest), 0, "{}", common::stderr(&rest));
    let all = run_in(dir.path(), &[&window[..], &["app.log"]].concat());
    assert_eq!(
        format!("{got1}{}", common::stdout(&rest)),
        common::stdout(&all)
    );
}

/// A version-1 checkpoint (positions only, no chain) still resumes a
/// stateless chain, and is refused by a chain with a window, which cannot
/// know what wrote it.
#[test]
fn a_version_1_checkpoint_resumes_a_stateless_chain_only() {
    let dir = common::tempdir();
    std::fs::copy(common::fixture("app.ndjson"), dir.path().join("app.ndjson")).unwrap();
    let first = run_in(
        dir.path(),
        &["--checkpoint", "cp", "-f", "true", "app.ndjson"],
    );
    assert_eq!(common::status(&first), 0, "{}", common::stderr(&first));
    assert!(!common::stdout(&first).is_empty());
    let mut cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cp")).unwrap()).unwrap();
    let map = cp.as_object_mut().unwrap();
    map.remove("chain");
    map.insert("version".into(), serde_json::json!(1));
    std::fs::write(dir.path().join("cp"), cp.to_string()).unwrap();
    let again = run_in(
        dir.path(),
        &["--checkpoint", "cp", "-f", "true", "app.ndjson"],
    );
    assert_eq!(common::status(&again), 0, "{}", common::stderr(&again));
    assert_eq!(common::stdout(&again), "", "resumed at the end");
    std::fs::write(dir.path().join("cp"), cp.to_string()).unwrap();
    let window = run_in(
        dir.path(),
        &[
            "--checkpoint",
            "cp",
            "--key",
            ".service",
            "--agg",
            "n=count",
            "app.ndjson",
        ],
    );
    assert_eq!(common::status(&window), 2);
    assert!(
        common::stderr(&window).starts_with(
            "evq: --checkpoint cp was written for another chain: it holds the state of `a chain of an older evq`"
        ),
        "{}",
        common::stderr(&window)
    );
    assert_eq!(common::stdout(&window), "");
}

/// Output to a device (`-o /dev/null`) is flushed but not fsynced before a
/// checkpoint: fsync refuses devices, and that is no write error.
#[test]
fn output_to_a_device_is_no_error_at_a_checkpoint() {
    let dir = common::tempdir();
    common::append(&dir.path().join("app.log"), "{\"n\":1}\n");
    let out = run_in(
        dir.path(),
        &["--checkpoint", "cp.json", "-o", "/dev/null", "app.log"],
    );
    assert_eq!(common::stderr(&out), "");
    assert_eq!(common::status(&out), 0);
    assert!(dir.path().join("cp.json").exists());
}
