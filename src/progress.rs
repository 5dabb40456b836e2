//! Standard error while a run is under way: the optional progress bar, and
//! diagnostics printed around it so the two never garble each other.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// Redraws per second at most: the bar must cost nothing next to the work.
const HZ: u8 = 10;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` bytes (all inputs regular files) or a spinner with
    /// counts (stdin or anything of unknown size). `forced` draws even when
    /// standard error is not a terminal.
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
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Removes the bar, before the stats are printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
