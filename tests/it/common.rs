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
    wait_unless(child, limit, 5, || false)
}

/// Waits for `child` to exit, at most `limit` and while `done()` (asked
/// every `poll_ms`) is false: its exit status if it exited.
fn wait_unless(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    poll_ms: u64,
    mut done: impl FnMut() -> bool,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if done() || std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(poll_ms));
    }
}

/// Which checkpoint file is at `path` (`None`: none): a save replaces the
/// file (a new inode, length or modification time).
pub fn saved_mark(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()?))
}

/// Waits until `child` has saved a checkpoint at `path` other than `before`
/// (see `saved_mark`), exited, or `limit` has passed: its exit status if
/// it exited. A kill after it tests resuming from what this run saved,
/// however fast or slow the machine is.
pub fn wait_for_save(
    child: &mut std::process::Child,
    path: &Path,
    before: Option<(u64, u64, std::time::SystemTime)>,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    wait_unless(child, limit, 2, || {
        let now = saved_mark(path);
        now.is_some() && now != before
    })
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

/// A small deterministic generator (SplitMix64), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// The complete lines of a file (a killed run's last one may be cut off).
pub fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end_matches('\n').to_string())
        .collect()
}

/// What `kill_9_until_done` saw: every complete line of every run, and the
/// stats of the run that completed.
pub struct Crashes {
    pub union: std::collections::HashSet<String>,
    pub last_stats: serde_json::Value,
    pub runs: usize,
    pub kills: usize,
}

/// Crash and resume: runs `args` in `dir` with `--checkpoint ck.json
/// --checkpoint-every T --stats=json` (T a twentieth of `clean`, a clean
/// run's time, 5-50 ms), kills it with SIGKILL after a seeded random delay
/// (up to a sixth of `clean` for the first six runs, then more), and reruns
/// it until a run completes (exit 0). Each of the first six runs is given
/// its delay only once it has saved a checkpoint of its own, so that kills
/// test resuming whether the machine is faster or busier than when `clean`
/// was measured; later runs wait at least `least` ms (a run restores the
/// state and saves it again, slow in a debug build) and may be killed
/// before their first save. Each complete line of each run goes to
/// `check(run, line)`. At least three runs must have been killed, two of
/// them after saving a checkpoint (whose state the next run took over).
pub fn kill_9_until_done(
    dir: &Path,
    args: &[&str],
    clean: std::time::Duration,
    seed: u64,
    least: u64,
    mut check: impl FnMut(usize, &str),
) -> Crashes {
    let mut rng = Rng(seed);
    let span = clean.as_millis().max(100) as u64;
    // Checkpoints come at a twentieth of a clean run (5-50 ms), so that a run
    // saves well before it could end however fast the machine is.
    let every = format!("{}ms", (clean.as_millis() as u64 / 20).clamp(5, 50));
    let mut union = std::collections::HashSet::new();
    let checkpoint = dir.join("ck.json");
    let (mut kills, mut kills_after_save, mut runs) = (0, 0, 0);
    let last_stats = loop {
        runs += 1;
        assert!(runs <= 30, "no run completed in 30 ({kills} killed)");
        let out = dir.join(format!("out-{runs}.ndjson"));
        let err = dir.join(format!("err-{runs}.txt"));
        let saved_before = std::fs::read(&checkpoint).ok();
        let mark = saved_mark(&checkpoint);
        let mut child = evq()
            .current_dir(dir)
            .args(["--stats=json", "--checkpoint", "ck.json"])
            .args(["--checkpoint-every", &every])
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let most = match runs {
            ..=6 => span / 6,
            7..=15 => span * 4 / 5,
            _ => span * 3,
        };
        let random = std::time::Duration::from_millis(rng.below(most));
        let status = if runs <= 6 {
            // Past its save, a run is past restoring the state: `least`
            // is not needed.
            match wait_for_save(
                &mut child,
                &checkpoint,
                mark,
                std::time::Duration::from_secs(60),
            ) {
                Some(status) => Some(status),
                None => wait_timeout(&mut child, random),
            }
        } else {
            wait_timeout(&mut child, std::time::Duration::from_millis(least) + random)
        };
        if status.is_none() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            kills += 1;
            kills_after_save += usize::from(std::fs::read(&checkpoint).ok() != saved_before);
        }
        for line in complete_lines(&out) {
            check(runs, &line);
            union.insert(line);
        }
        if let Some(status) = status {
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            assert_eq!(status.code(), Some(0), "run {runs} failed: {stderr}");
            let last = stderr.lines().last().unwrap_or_default();
            break serde_json::from_str::<serde_json::Value>(last)
                .unwrap_or_else(|e| panic!("run {runs}: stats ({e}): {stderr}"));
        }
    };
    eprintln!(
        "{runs} runs, {kills} killed ({kills_after_save} after saving a checkpoint); a clean run took {clean:?}"
    );
    assert!(
        kills >= 3,
        "only {kills} of {runs} runs were killed: the kills came too late to test anything"
    );
    assert!(
        kills_after_save >= 2,
        "only {kills_after_save} of {kills} killed runs had saved a checkpoint"
    );
    Crashes {
        union,
        last_stats,
        runs,
        kills,
    }
}
