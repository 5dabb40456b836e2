//! Metrics of a run: counters the executor keeps, and their rendering for
//! `--stats=json` (one line) and `--stats` (a table for a terminal).

use serde::Serialize;
use std::time::Duration;

#[derive(Serialize, Default, Debug)]
pub struct StageStats {
    pub name: String,
    pub kind: &'static str,
    pub expr: String,
    pub events_in: u64,
    pub events_out: u64,
    pub events_filtered: u64,
    pub events_failed: u64,
    #[serde(rename = "processing_time_ms", serialize_with = "millis")]
    pub processing_time: Duration,
    /// Window and aggregate stages only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowStats>,
}

/// What a window stage adds: its events_in are events_aggregated +
/// events_late + events_failed, and its events_out the results emitted.
#[derive(Serialize, Default, Debug, Clone)]
pub struct WindowStats {
    pub events_aggregated: u64,
    pub events_late: u64,
    /// Most (window, key) states open at once.
    pub windows_open: u64,
    pub windows_emitted: u64,
    /// Results in which a `collect` reached its limit and dropped values.
    pub collect_truncated: u64,
    /// The same per `--agg`, in command-line order (for the note at the end).
    #[serde(skip)]
    pub truncated_by_agg: Vec<u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct InputStats {
    pub path: String,
    /// Events read from this input: its non-blank lines.
    pub lines: u64,
    pub bytes: u64,
    pub failed: u64,
    /// Why the input could not be opened or read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, Default, Debug)]
pub struct Stats {
    /// When the report was taken: RFC 3339, UTC, to the millisecond (so
    /// reports in a log line up with other logs).
    pub time: String,
    pub events_ingested: u64,
    pub events_emitted: u64,
    pub events_filtered: u64,
    pub events_failed: u64,
    pub parse_failed: u64,
    pub bytes_read: u64,
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    pub events_per_sec: f64,
    /// The fields of each event that were parsed (`[]`: none, the lines were
    /// only checked); `null` when events were parsed whole.
    pub fields_read: Option<Vec<String>>,
    /// Events the stages settled by direct evaluation, without jaq.
    pub events_direct: u64,
    pub stages: Vec<StageStats>,
    pub inputs: Vec<InputStats>,
    /// In the reports `--stats-every` prints while running: the last interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// What happened since the previous periodic report.
#[derive(Serialize, Default, Debug, Clone, Copy)]
pub struct Interval {
    #[serde(rename = "interval_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    pub events_ingested: u64,
    pub events_emitted: u64,
    pub events_failed: u64,
    pub events_per_sec: f64,
}

/// Milliseconds with microsecond resolution, so short runs do not show 0.
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round3(d.as_secs_f64() * 1000.0))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Stats {
    /// Fills in the totals derived from the counters.
    pub fn finish(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        self.time = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        self.events_filtered = self.stages.iter().map(|s| s.events_filtered).sum();
        let secs = elapsed.as_secs_f64();
        self.events_per_sec = if secs > 0.0 {
            round3(self.events_ingested as f64 / secs)
        } else {
            0.0
        };
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("stats serialise")
    }

    /// A small aligned table: totals, then one row per stage and per input.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let ms = self.elapsed.as_secs_f64() * 1000.0;
        out.push_str(&format!(
            "evq: {} events ingested, {} emitted, {} filtered, {} failed ({} unparsable)\n",
            self.events_ingested,
            self.events_emitted,
            self.events_filtered,
            self.events_failed,
            self.parse_failed,
        ));
        out.push_str(&format!(
            "evq: {} bytes read in {:.1} ms, {:.0} events/s, at {}\n",
            self.bytes_read, ms, self.events_per_sec, self.time
        ));
        match &self.fields_read {
            Some(fields) if !fields.is_empty() => {
                out.push_str(&format!("evq: fields read: {}\n", fields.join(", ")))
            }
            Some(_) => {}
            None => out.push_str("evq: fields read: whole events\n"),
        }
        if !self.stages.is_empty() {
            let mut rows = vec![row(&[
                "stage", "in", "out", "filtered", "failed", "time ms", "expr",
            ])];
            for s in &self.stages {
                rows.push(vec![
                    s.name.clone(),
                    s.events_in.to_string(),
                    s.events_out.to_string(),
                    s.events_filtered.to_string(),
                    s.events_failed.to_string(),
                    format!("{:.3}", s.processing_time.as_secs_f64() * 1000.0),
                    s.expr.replace('\n', " "),
                ]);
            }
            out.push_str(&table(&rows));
            for s in &self.stages {
                if let Some(w) = &s.window {
                    out.push_str(&format!(
                        "{}: {} aggregated, {} late, {} results emitted, at most {} windows open",
                        s.name,
                        w.events_aggregated,
                        w.events_late,
                        w.windows_emitted,
                        w.windows_open
                    ));
                    if w.collect_truncated > 0 {
                        out.push_str(&format!(
                            ", {} with a collect truncated",
                            w.collect_truncated
                        ));
                    }
                    out.push('\n');
                }
            }
        }
        if let Some(i) = &self.interval {
            out.push_str(&format!(
                "evq: last {:.1} s: {} events ingested, {} emitted, {} failed, {:.0} events/s\n",
                i.elapsed.as_secs_f64(),
                i.events_ingested,
                i.events_emitted,
                i.events_failed,
                i.events_per_sec
            ));
        }
        let mut rows = vec![row(&["input", "lines", "bytes", "failed", ""])];
        for i in &self.inputs {
            rows.push(vec![
                if i.path == "-" {
                    "<stdin>".into()
                } else {
                    i.path.clone()
                },
                i.lines.to_string(),
                i.bytes.to_string(),
                i.failed.to_string(),
                i.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("error: {e}")),
            ]);
        }
        out.push_str(&table(&rows));
        out
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligns the first and last columns, right-aligns the numbers between.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let w = widths[c];
            if c == 0 || c == cols - 1 {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!("{cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
