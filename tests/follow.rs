//! `-F/--follow`: files are read as they grow, like `tail -F`, through
//! appends, truncation and rotation, several at once, until SIGTERM. Polling
//! is short (--follow-interval 20ms) and every wait is bounded.

mod common;

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
