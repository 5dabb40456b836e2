//! `-F/--follow`: files are read as they grow, like `tail -F`, through
//! appends, truncation and rotation, several at once, until SIGTERM. Polling
//! is short (--follow-interval 20ms) and every wait is bounded.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// evq following `files`, writing events to `out`.
struct Follower {
    child: Option<Child>,
    out: std::path::PathBuf,
}

impl Follower {
    fn start(dir: &Path, files: &[&str], extra: &[&str]) -> Follower {
        let out = dir.join("out.ndjson");
        let mut cmd = common::evq();
        cmd.current_dir(dir)
            .args(["-F", "--follow-interval", "20ms", "--stats=json", "-o"])
            .arg(&out)
            .args(extra)
            .args(files)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Follower {
            child: Some(cmd.spawn().expect("spawn evq")),
            out,
        }
    }

    /// Waits (at most 10 s) until the output holds exactly `expected`.
    fn expect(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&self.out).unwrap_or_default();
            if got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for output\n{expected}--- got\n{got}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; returns exit status and the stats JSON.
    fn stop(mut self) -> (i32, serde_json::Value) {
        let child = self.child.take().expect("running");
        let pid = child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (common::status(&out), common::stats_json(&out))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
        }
    }
}

#[test]
fn appends_and_partial_lines_are_read_as_they_come() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    common::append(&log, "{\"n\":1}\n");
    let f = Follower::start(dir.path(), &["app.log"], &[]);
    f.expect("{\"n\":1}\n");
    common::append(&log, "{\"n\":2}\n{\"n\":");
    f.expect("{\"n\":1}\n{\"n\":2}\n");
    // The rest of a line written in two parts.
    common::append(&log, "3}\n");
    f.expect("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    let (status, stats) = f.stop();
    assert_eq!(status, 143);
    assert_eq!(stats["events_ingested"], 3);
    assert_eq!(stats["inputs"][0]["lines"], 3);
}

#[test]
fn a_truncated_file_is_read_again_from_its_start() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    common::append(&log, "{\"n\":1}\n{\"n\":2}\n");
    let f = Follower::start(dir.path(), &["app.log"], &[]);
    f.expect("{\"n\":1}\n{\"n\":2}\n");
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    common::append(&log, "{\"n\":3}\n");
    f.expect("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    assert_eq!(f.stop().0, 143);
}

#[test]
fn a_rotated_file_is_read_to_its_end_then_the_new_one() {
    let dir = common::tempdir();
    let log = dir.path().join("app.log");
    common::append(&log, "{\"n\":1}\n");
    let f = Follower::start(dir.path(), &["app.log"], &["--dead-letter", "dl.ndjson"]);
    f.expect("{\"n\":1}\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    // The writer still had the old file open: its last line is not lost.
    common::append(&dir.path().join("app.log.1"), "{\"n\":2}\n");
    common::append(&log, "not json\n{\"n\":3}\n");
    f.expect("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    let (status, stats) = f.stop();
    assert_eq!(status, 143);
    assert_eq!(stats["events_failed"], 1);
    // Line numbers start again in the new file.
    let dl = std::fs::read_to_string(dir.path().join("dl.ndjson")).unwrap();
    assert!(
        dl.starts_with("{\"source\":\"app.log\",\"line\":1,"),
        "{dl}"
    );
}

#[test]
fn several_files_and_a_file_that_appears_later() {
    let dir = common::tempdir();
    common::append(&dir.path().join("a.log"), "{\"a\":1}\n");
    common::append(&dir.path().join("b.log"), "{\"b\":1}\n");
    let f = Follower::start(dir.path(), &["a.log", "b.log", "c.log"], &["-q"]);
    f.expect("{\"a\":1}\n{\"b\":1}\n");
    common::append(&dir.path().join("b.log"), "{\"b\":2}\n");
    f.expect("{\"a\":1}\n{\"b\":1}\n{\"b\":2}\n");
    common::append(&dir.path().join("c.log"), "{\"c\":1}\n");
    common::append(&dir.path().join("a.log"), "{\"a\":2}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(&f.out).unwrap();
        if got.lines().count() == 5 {
            assert!(
                got.contains("{\"c\":1}") && got.contains("{\"a\":2}"),
                "{got}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, stats) = f.stop();
    // A signal decides the status; c.log was missing at first and is named.
    assert_eq!(status, 143);
    assert_eq!(stats["inputs"][2]["lines"], 1);
    assert!(
        stats["inputs"][2]["error"]
            .as_str()
            .unwrap()
            .contains("No such file")
    );
}

#[test]
fn compressed_files_are_read_once_not_followed() {
    let dir = common::tempdir();
    std::fs::copy(
        common::root().join("fixtures/compressed/app.ndjson.gz"),
        dir.path().join("old.gz"),
    )
    .unwrap();
    let f = Follower::start(dir.path(), &["old.gz"], &[]);
    f.expect(
        &String::from_utf8(common::read(&common::root().join("fixtures/app.ndjson"))).unwrap(),
    );
    let (status, stats) = f.stop();
    assert_eq!(status, 143);
    assert_eq!(stats["events_ingested"], 40);
}

/// The output's lines, sorted (lines from a rotated file and from the new
/// one may interleave either way).
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

impl Follower {
    /// Waits (at most 10 s) until the output holds exactly `expected`, in any order.
    fn expect_unordered(&self, expected: &[&str]) {
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&self.out).unwrap_or_default();
            if got.ends_with('\n') && sorted_lines(&got) == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for lines {want:?}\n--- got\n{got}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A writer that keeps its descriptor, as a logging process does.
fn writer(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn write(file: &mut std::fs::File, text: &str) {
    use std::io::Write;
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn lines_written_to_a_rotated_file_after_the_new_one_appears_are_read() {
    let dir = common::tempdir();
    let log = dir.path().join("rot.ndjson");
    let mut old = writer(&log);
    let f = Follower::start(dir.path(), &["rot.ndjson"], &[]);
    write(&mut old, "{\"n\":1}\n{\"n\":2}\n");
    f.expect("{\"n\":1}\n{\"n\":2}\n");
    std::fs::rename(&log, dir.path().join("rot.ndjson.1")).unwrap();
    common::append(&log, "{\"n\":100}\n");
    // The new file is read: evq has seen the rotation.
    f.expect("{\"n\":1}\n{\"n\":2}\n{\"n\":100}\n");
    // The writer has not reopened yet: its line goes to the old file.
    write(&mut old, "{\"n\":3}\n");
    common::append(&log, "{\"n\":101}\n");
    f.expect_unordered(&[
        "{\"n\":1}",
        "{\"n\":2}",
        "{\"n\":100}",
        "{\"n\":3}",
        "{\"n\":101}",
    ]);
    let (status, stats) = f.stop();
    assert_eq!(status, 143);
    assert_eq!(stats["events_ingested"], 5);
    assert_eq!(stats["events_failed"], 0);
    assert_eq!(stats["inputs"][0]["lines"], 5);
}

#[test]
fn a_partial_line_at_rotation_waits_for_its_newline() {
    let dir = common::tempdir();
    let log = dir.path().join("rot.ndjson");
    let mut old = writer(&log);
    let f = Follower::start(dir.path(), &["rot.ndjson"], &["--dead-letter", "dl.ndjson"]);
    write(&mut old, "{\"n\":1}\n{\"n\":");
    f.expect("{\"n\":1}\n");
    std::fs::rename(&log, dir.path().join("rot.ndjson.1")).unwrap();
    common::append(&log, "{\"n\":100}\n");
    f.expect("{\"n\":1}\n{\"n\":100}\n");
    write(&mut old, "5}\n");
    f.expect_unordered(&["{\"n\":1}", "{\"n\":100}", "{\"n\":5}"]);
    let (status, stats) = f.stop();
    assert_eq!(status, 143);
    assert_eq!(stats["events_failed"], 0);
    assert_eq!(stats["parse_failed"], 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("dl.ndjson")).unwrap(),
        ""
    );
}

#[test]
fn a_rotated_file_is_read_no_more_after_the_rotate_wait() {
    let dir = common::tempdir();
    let log = dir.path().join("rot.ndjson");
    let dl = dir.path().join("dl.ndjson");
    let mut old = writer(&log);
    let f = Follower::start(
        dir.path(),
        &["rot.ndjson"],
        &["--rotate-wait", "300ms", "--dead-letter", "dl.ndjson"],
    );
    write(&mut old, "{\"n\":1}\n{\"n\":");
    f.expect("{\"n\":1}\n");
    std::fs::rename(&log, dir.path().join("rot.ndjson.1")).unwrap();
    common::append(&log, "{\"n\":100}\n");
    f.expect("{\"n\":1}\n{\"n\":100}\n");
    // When the wait is over, the unterminated last line is read as the
    // file's last line, as at the end of any file: here it is not JSON.
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let text = std::fs::read_to_string(&dl).unwrap_or_default();
        if text.ends_with('\n') {
            break text;
        }
        assert!(Instant::now() < deadline, "no dead letter");
        std::thread::sleep(Duration::from_millis(20));
    };
    let record: serde_json::Value = serde_json::from_str(&failed).unwrap();
    assert_eq!(record["line"], 2);
    assert_eq!(record["raw"], "{\"n\":");
    // The old file is closed: what its writer adds now is not read, while
    // the new file still is.
    write(&mut old, "{\"n\":3}\n");
    common::append(&log, "{\"n\":101}\n");
    f.expect("{\"n\":1}\n{\"n\":100}\n{\"n\":101}\n");
    std::thread::sleep(Duration::from_millis(100));
    f.expect("{\"n\":1}\n{\"n\":100}\n{\"n\":101}\n");
    let (status, stats) = f.stop();
    assert_eq!(status, 143);
    assert_eq!(stats["events_failed"], 1);
}

#[test]
fn a_bad_rotate_wait_is_a_usage_error() {
    let out = common::run(
        &["-F", "--rotate-wait", "5x", &common::fixture("app.ndjson")],
        b"",
    );
    assert_eq!(common::status(&out), 2);
    assert!(
        common::stderr(&out).starts_with("evq: --rotate-wait: invalid duration \"5x\""),
        "{}",
        common::stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_bad_rotate_wait_leaves_the_output_file_alone() {
    // Every usage error is found before -o is opened: the file keeps what
    // it had.
    let dir = common::tempdir();
    let out_path = dir.path().join("out.ndjson");
    std::fs::write(&out_path, "kept\n").unwrap();
    let out = common::run(
        &[
            "-o",
            out_path.to_str().unwrap(),
            "--rotate-wait",
            "5x",
            &common::fixture("app.ndjson"),
        ],
        b"",
    );
    assert_eq!(common::status(&out), 2, "{}", common::stderr(&out));
    assert_eq!(common::read(&out_path), b"kept\n");
}

#[test]
fn a_checkpoint_taken_while_a_rotated_file_is_read_resumes_both_files() {
    let dir = common::tempdir();
    let log = dir.path().join("rot.ndjson");
    let mut old = writer(&log);
    let f = Follower::start(dir.path(), &["rot.ndjson"], &["--checkpoint", "cp.json"]);
    write(&mut old, "{\"n\":1}\n");
    f.expect("{\"n\":1}\n");
    std::fs::rename(&log, dir.path().join("rot.ndjson.1")).unwrap();
    common::append(&log, "{\"n\":100}\n");
    f.expect("{\"n\":1}\n{\"n\":100}\n");
    write(&mut old, "{\"n\":2}\n");
    f.expect_unordered(&["{\"n\":1}", "{\"n\":100}", "{\"n\":2}"]);
    // Stopped while the rotated file is still read (--rotate-wait 5s).
    assert_eq!(f.stop().0, 143);
    write(&mut old, "{\"n\":3}\n");
    common::append(&log, "{\"n\":101}\n");
    // The next run, given the rotated file under its new name too, reads
    // only what is new in each.
    let out = common::evq()
        .current_dir(dir.path())
        .args(["--checkpoint", "cp.json", "rot.ndjson.1", "rot.ndjson"])
        .output()
        .unwrap();
    assert_eq!(common::stderr(&out), "");
    assert_eq!(common::stdout(&out), "{\"n\":3}\n{\"n\":101}\n");
    assert_eq!(common::status(&out), 0);
}
