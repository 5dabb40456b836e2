//! Helpers shared by the integration tests: run the built evq binary on real
//! files and look at exact bytes, stderr and exit statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The project root (fixtures/ and README.md live there).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a fixture, relative to the project root (tests run evq there).
pub fn fixture(name: &str) -> String {
    format!("fixtures/{name}")
}

/// A command running the built evq in the project root, with no progress bar.
pub fn evq() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evq"));
    cmd.current_dir(root());
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs evq with `args`, feeding `stdin`, and returns its output.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = evq();
    cmd.args(args);
    feed(cmd, stdin)
}

/// Runs `cmd` with `stdin` written to its standard input (from a thread, so
/// a child that writes much before reading cannot block) and returns its output.
pub fn feed(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for the child");
    writer.join().unwrap();
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// The exit status, or panics when evq was killed by a signal.
pub fn status(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("evq died by a signal: {:?}", out.status))
}

/// The last line of stderr parsed as JSON (what --stats=json prints).
pub fn stats_json(out: &Output) -> serde_json::Value {
    let err = stderr(out);
    let line = err
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stats on stderr"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("stats line is not JSON ({e}): {line}"))
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Appends `text` to the file at `path`, creating it if needed (a log being written).
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Waits for `child` to exit, at most `limit`; `None` when it is still running.
pub fn wait_timeout(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Collects a spawned child's standard output and error (both piped) while
/// waiting at most `limit` for it to exit; a child still running then is
/// killed, and the status is `None`.
pub fn output_within(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> (Option<std::process::ExitStatus>, Vec<u8>, Vec<u8>) {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_timeout(&mut child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, out.join().unwrap(), err.join().unwrap())
}
