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
    /// Stateful stages only: the stage's own counters, after the others.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateStats>,
}

/// What a stateful stage counts besides events in and out (a window: events
/// aggregated and late, windows open and emitted, keys and bytes held), as
/// the state's owner reads them from the stage; the stage names them and
/// says what they mean (its `summary`).
#[derive(Default, Debug, Clone)]
pub struct StateStats {
    /// Named as `--stats=json` shows them, in that order.
    pub counters: Vec<(&'static str, u64)>,
    /// Counts the stats do not show, for the stage's notes at the end (a
    /// window: the truncated `collect`s per `--agg`); empty while all are 0.
    pub details: Vec<u64>,
    /// The stage's line in the text stats, after its name (empty: none).
    pub summary: String,
}

impl StateStats {
    /// The counter named `name`; 0 when there is none.
    pub fn get(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |&(_, value)| value)
    }
}

/// The counters, as fields of the stage's object.
impl Serialize for StateStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.counters.len()))?;
        for (name, value) in &self.counters {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
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
    /// The `--lookup` tables (none: not shown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<LookupStats>,
    /// In the reports `--stats-every` prints while running: the last interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// A `--lookup` table: the one in force (its rows, the rows that replaced
/// an earlier one with the same key, the rows skipped), and under `-F` how
/// often its file was loaded again and how often that failed.
#[derive(Serialize, Default, Debug, Clone)]
pub struct LookupStats {
    pub name: String,
    pub path: String,
    pub rows: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub reloads: u64,
    pub reload_failures: u64,
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
                if let Some(state) = s.state.as_ref().filter(|s| !s.summary.is_empty()) {
                    out.push_str(&format!("{}: {}\n", s.name, state.summary));
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
        for l in &self.lookups {
            out.push_str(&format!(
                "lookup ${} {}: {} rows, {} duplicates, {} failed, {} reloads ({} failed)\n",
                l.name, l.path, l.rows, l.duplicates, l.failed, l.reloads, l.reload_failures
            ));
        }
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
