//! Standard error while a run is under way: the optional progress bar, and
//! everything else printed there (diagnostics, the `debug` and `stderr` jq
//! filters) printed around it so the two never garble each other.
//!
//! The bar is drawn only where it cannot mix with events: by default when
//! standard error is a terminal and the events do not go to that same
//! terminal (`by_default`); `--progress` draws it whatever the terminals are.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Redraws per second at most: the bar must cost nothing next to the work.
const HZ: u8 = 10;

/// Standard error as shared by all threads: worker threads print `debug`
/// output while the collector thread owns the bar. Holding the lock while
/// writing keeps each text whole.
static ABOVE: Mutex<Above> = Mutex::new(Above {
    bar: None,
    line_open: false,
});

struct Above {
    /// The bar of the run, if one is shown.
    bar: Option<ProgressBar>,
    /// The last text did not end its line (jq's `stderr` writes no newline).
    line_open: bool,
}

fn above() -> std::sync::MutexGuard<'static, Above> {
    ABOVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the bar shows without `--progress` or `--no-progress`: standard
/// error is a terminal, and the events (standard output, or the `-o` file)
/// do not go to that same terminal, where the bar would be drawn between
/// them and leave its remains on screen.
pub fn by_default(output: Option<&Path>) -> bool {
    let stderr = io::stderr();
    if !stderr.is_terminal() {
        return false;
    }
    let events = match output {
        None => identity(io::stdout().as_fd()),
        Some(path) => std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino())),
    };
    // A closed standard output cannot show anything.
    events.is_none() || events != identity(stderr.as_fd())
}

/// The device and inode a descriptor is open on (fstat of a duplicate).
fn identity(fd: BorrowedFd) -> Option<(u64, u64)> {
    let meta = File::from(fd.try_clone_to_owned().ok()?).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Writes `text` on standard error, above the bar if there is one, from any
/// thread; texts from different threads never interleave. Above the bar, a
/// text that does not end a line gets a newline (the bar would be drawn
/// over it otherwise). Write errors are ignored: standard error is the last
/// resort.
pub fn eprint(text: &[u8]) {
    write(&mut above(), text);
}

/// Writes one line of evq's own (a diagnostic) as `eprint` does, starting a
/// new line first if a `stderr` text left one open.
pub fn eprintln(text: &str) {
    let mut above = above();
    let open = if above.line_open { "\n" } else { "" };
    write(&mut above, format!("{open}{text}\n").as_bytes());
}

fn write(above: &mut Above, text: &[u8]) {
    if text.is_empty() {
        return;
    }
    let write = |newline: bool| {
        let mut err = io::stderr().lock();
        let _ = err.write_all(text);
        if newline && !text.ends_with(b"\n") {
            let _ = err.write_all(b"\n");
        }
        let _ = err.flush();
    };
    match &above.bar {
        Some(bar) if !bar.is_hidden() => bar.suspend(|| write(true)),
        _ => {
            write(false);
            above.line_open = !text.ends_with(b"\n");
        }
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` bytes (all inputs regular files) or a spinner with
    /// counts (stdin or anything of unknown size). `forced` draws even when
    /// standard error is not a terminal, or is the terminal the events go to.
    pub fn new(enabled: bool, forced: bool, total: Option<u64>) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let target = if forced {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), HZ)
        } else {
            ProgressDrawTarget::stderr_with_hz(HZ)
        };
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), target).with_style(
                ProgressStyle::with_template(
                    "{bar:20} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid template"),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
                    .expect("valid template"),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(1000 / HZ as u64));
        above().bar = Some(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// Called once per batch: cheap, indicatif throttles the drawing.
    pub fn update(&self, bytes: u64, events: u64, emitted: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(format!("{events} in, {emitted} out"));
        }
    }

    /// Prints a diagnostic line on standard error, above the bar if there is one.
    pub fn eprintln(&self, text: &str) {
        eprintln(text);
    }

    /// Removes the bar, before the stats are printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            let mut above = above();
            above.bar = None;
            bar.finish_and_clear();
        }
    }
}
