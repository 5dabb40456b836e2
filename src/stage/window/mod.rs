//! `--window` / `--agg`: aggregates per key over windows of event time
//! (tumbling, sliding, session), or per key over the whole input (group-by).
//! This file says what a window does with an event; how events reach it
//! (extracted on the workers, applied in input order, watermark, timers,
//! checkpoint) is the runtime's (`runtime::state`).
//!
//! State is kept per pane and key: a pane is the largest span every window
//! is made of (the window size for tumbling windows, gcd(size, slide) for
//! sliding ones), so a sliding window merges its panes instead of holding a
//! copy of every event. Keys are held as their JSON text in hash maps; what
//! is emitted is sorted (window end, then start, then key as jq orders
//! values). When the watermark passes a window's end (a timer), the window
//! is emitted and its state released. An event whose first window was
//! already emitted is late: rejected, never merged.

pub mod agg;
pub mod time;

use super::extract::{Extract, Extracts};
use super::{Emitted, Event, Kind, Rejected, StateStats, StatefulStage, Timers};
use crate::jq::Program;
use agg::{Acc, AggSpec};
use hashbrown::HashMap;
use jaq_json::{Map, Val};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use time::{WindowSpec, format_time};

/// Everything a window stage is built from.
pub struct WindowConfig {
    /// `None`: group-by over the whole input.
    pub spec: Option<WindowSpec>,
    pub keys: Vec<Program>,
    /// `None`: arrival time.
    pub time: Option<Program>,
    pub aggs: Vec<(AggSpec, Option<Program>)>,
    /// Milliseconds.
    pub lateness: i64,
}

/// One key's aggregates in one pane or session.
type Accs = Vec<Acc>;

/// State by key: the key's JSON text (see `stage::extract`).
type Key = Vec<u8>;
type Keyed<T> = HashMap<Key, T, foldhash::fast::FixedState>;

pub struct WindowStage {
    name: String,
    expr: String,
    config: WindowConfig,
    /// Arrival order, for first/last ties.
    seq: u64,
    /// Tumbling and sliding: pane start -> key -> aggregates.
    panes: BTreeMap<i64, Keyed<Accs>>,
    /// The start of the next window to emit (tumbling and sliding).
    next_window: Option<i64>,
    /// Session windows: key -> its open sessions.
    sessions: Keyed<Vec<Session>>,
    /// Group-by: key -> aggregates.
    groups: Keyed<Accs>,
    counters: Counters,
    /// (pane or session) × key states open now.
    open: u64,
    /// The start of a result line for the window last written: its times.
    times: Option<((i64, i64), String)>,
    /// The runtime's event time, for unit tests that drive the stage alone.
    #[cfg(test)]
    test_clock: (Option<i64>, Timers),
}

/// What the stage counts, since the start of the run.
#[derive(Default)]
struct Counters {
    /// Events taken into a window.
    events_aggregated: u64,
    /// Events too late for their window.
    events_late: u64,
    /// Most (window, key) states open at once so far.
    windows_open: u64,
    /// Results emitted so far.
    windows_emitted: u64,
    /// Results emitted so far in which a `collect` dropped values.
    collect_truncated: u64,
    /// The same per `--agg`, in command-line order; empty while none was
    /// truncated.
    truncated_by_agg: Vec<u64>,
}

struct Session {
    start: i64,
    last: i64,
    accs: Accs,
}

impl WindowStage {
    pub fn new(name: String, expr: String, config: WindowConfig) -> WindowStage {
        WindowStage {
            name,
            expr,
            config,
            seq: 0,
            panes: BTreeMap::new(),
            next_window: None,
            sessions: Keyed::default(),
            groups: Keyed::default(),
            counters: Counters::default(),
            open: 0,
            times: None,
            #[cfg(test)]
            test_clock: (None, Timers::default()),
        }
    }

    fn new_accs(&self) -> Accs {
        new_accs(&self.config)
    }

    /// The `--key` values: one, or an array of them; null without `--key`.
    fn key(&self, event: &Val) -> Result<Val, String> {
        super::key_of(&self.config.keys, "--key", event)
    }

    /// Tumbling and sliding: (size, slide, pane).
    fn grid(&self) -> Option<(i64, i64, i64)> {
        match self.config.spec? {
            WindowSpec::Tumbling { size } => Some((size, size, size)),
            WindowSpec::Sliding { size, slide } => Some((size, slide, gcd(size, slide))),
            WindowSpec::Session { .. } => None,
        }
    }

    fn is_late(&self, t: i64, watermark: Option<i64>) -> Option<String> {
        let watermark = watermark?;
        let end = match self.config.spec? {
            WindowSpec::Session { gap } => t.saturating_add(gap),
            _ => {
                let (size, slide, _) = self.grid()?;
                time::first_window(t, size, slide) + size
            }
        };
        (end <= watermark).then(|| {
            format!(
                "late event: time {} is too late for its window ending {}, already emitted (watermark {})",
                format_time(t),
                format_time(end),
                format_time(watermark)
            )
        })
    }

    /// Adds an event's values to one key's aggregates.
    fn add_to(accs: &mut Accs, e: &Extract, seq: u64) {
        for acc in accs.iter_mut() {
            acc.add_event();
        }
        for (agg, input) in e.values() {
            accs[agg].add_input(input, e.time, seq);
        }
    }

    /// The state of `key` in `map`, made if new (counted as open).
    fn entry<'m, T>(
        map: &'m mut Keyed<T>,
        key: &[u8],
        open: &mut u64,
        new: impl FnOnce() -> T,
    ) -> &'m mut T {
        // One lookup for a key already held; the key is copied only when new.
        map.entry_ref(key).or_insert_with(|| {
            *open += 1;
            new()
        })
    }

    fn insert(&mut self, e: &Extract, timers: &mut Timers) {
        self.seq += 1;
        let seq = self.seq;
        match self.config.spec {
            None => {
                let config = &self.config;
                let accs =
                    Self::entry(&mut self.groups, e.key, &mut self.open, || new_accs(config));
                Self::add_to(accs, e, seq);
            }
            Some(WindowSpec::Session { gap }) => {
                let fresh = self.new_accs();
                let sessions = self.sessions.entry(e.key.into()).or_default();
                // Every session this event touches merges with it into one.
                let mut merged = Session {
                    start: e.time,
                    last: e.time,
                    accs: fresh,
                };
                let mut kept = Vec::with_capacity(sessions.len());
                let mut absorbed = 0;
                for s in sessions.drain(..) {
                    if e.time <= s.last.saturating_add(gap) && s.start <= e.time.saturating_add(gap)
                    {
                        merged.start = merged.start.min(s.start);
                        merged.last = merged.last.max(s.last);
                        for (into, from) in merged.accs.iter_mut().zip(&s.accs) {
                            into.merge(from);
                        }
                        absorbed += 1;
                    } else {
                        kept.push(s);
                    }
                }
                Self::add_to(&mut merged.accs, e, seq);
                timers.set(merged.last.saturating_add(gap));
                kept.push(merged);
                kept.sort_by_key(|s| s.start);
                *sessions = kept;
                self.open = self.open + 1 - absorbed;
            }
            Some(_) => {
                let (size, slide, pane) = self.grid().expect("tumbling or sliding");
                let pane_start = time::align(e.time, pane);
                let config = &self.config;
                let keys = self.panes.entry(pane_start).or_default();
                let accs = Self::entry(keys, e.key, &mut self.open, || new_accs(config));
                Self::add_to(accs, e, seq);
                let first = time::first_window(e.time, size, slide);
                if self.next_window.is_none_or(|next| first < next) {
                    self.next_window = Some(first);
                    timers.set(first + size);
                }
            }
        }
        self.counters.windows_open = self.counters.windows_open.max(self.open);
    }

    /// Emits every window whose end is at most `watermark` (all of them for
    /// `None`), setting a timer for the next one.
    fn emit(&mut self, watermark: Option<i64>, timers: &mut Timers, out: &mut Emitted) {
        let closed = |end: i64| watermark.is_none_or(|w| end <= w);
        match self.config.spec {
            None => {
                if watermark.is_none() {
                    let groups = std::mem::take(&mut self.groups);
                    self.open = 0;
                    for (key, accs) in sorted(&groups) {
                        self.result(None, key, accs, out);
                    }
                }
            }
            Some(WindowSpec::Session { gap }) => {
                let mut ready: Vec<(i64, i64, Val, Vec<u8>, Session)> = Vec::new();
                for (key, sessions) in self.sessions.iter_mut() {
                    if !sessions.iter().any(|s| closed(s.last.saturating_add(gap))) {
                        continue;
                    }
                    let (done, open): (Vec<Session>, Vec<Session>) = sessions
                        .drain(..)
                        .partition(|s| closed(s.last.saturating_add(gap)));
                    *sessions = open;
                    let value = key_value(key);
                    ready.extend(done.into_iter().map(|s| {
                        (
                            s.last.saturating_add(gap),
                            s.start,
                            value.clone(),
                            key.clone(),
                            s,
                        )
                    }));
                }
                self.sessions.retain(|_, s| !s.is_empty());
                ready.sort_by(|a, b| (a.0, a.1, &a.2, &a.3).cmp(&(b.0, b.1, &b.2, &b.3)));
                for (end, start, _, key, s) in ready {
                    self.open -= 1;
                    self.result(Some((start, end)), &key, &s.accs, out);
                }
            }
            Some(_) => {
                let (size, slide, pane) = self.grid().expect("tumbling or sliding");
                while let Some(start) = self.next_window {
                    let end = start + size;
                    if self.panes.is_empty() || !closed(end) {
                        break;
                    }
                    if slide == size {
                        // Tumbling: the window is one pane no other window
                        // uses, so its state is emitted as it is.
                        if let Some(keys) = self.panes.remove(&start) {
                            self.open -= keys.len() as u64;
                            for (key, accs) in sorted(&keys) {
                                self.result(Some((start, end)), key, accs, out);
                            }
                        }
                    } else {
                        // Sliding: merge this window's panes per key.
                        let mut merged: Keyed<Accs> = Keyed::default();
                        for keys in self.panes.range(start..end).map(|(_, keys)| keys) {
                            for (key, accs) in keys {
                                let into = merged
                                    .entry(key.clone())
                                    .or_insert_with(|| new_accs(&self.config));
                                into.iter_mut().zip(accs).for_each(|(i, a)| i.merge(a));
                            }
                        }
                        for (key, accs) in sorted(&merged) {
                            self.result(Some((start, end)), key, accs, out);
                        }
                    }
                    // Panes no later window uses are released.
                    let next = start + slide;
                    while let Some(entry) = self.panes.first_entry() {
                        if *entry.key() + pane > next {
                            break;
                        }
                        self.open -= entry.remove().len() as u64;
                    }
                    // Windows before the first one holding a pane are empty: skip them.
                    self.next_window = self
                        .panes
                        .first_key_value()
                        .map(|(&p, _)| next.max(time::first_window(p, size, slide)));
                }
                if let Some(next) = self.next_window {
                    timers.set(next + size);
                }
            }
        }
    }

    /// One result event: `{window_start, window_end, key, NAME: value, …}`
    /// (`key` is the key's text); as a JSON line when `out` takes lines.
    fn result(&mut self, window: Option<(i64, i64)>, key: &[u8], accs: &Accs, out: &mut Emitted) {
        if let Some(line) = &mut out.lines {
            // The window's times are the same for all its keys: written once.
            if let Some(window) = window
                && self.times.as_ref().is_none_or(|(w, _)| *w != window)
            {
                let text = format!(
                    "{{\"window_start\":\"{}\",\"window_end\":\"{}\"",
                    format_time(window.0),
                    format_time(window.1)
                );
                self.times = Some((window, text));
            }
            let mut first = match (window, &self.times) {
                (Some(_), Some((_, text))) => {
                    line.extend_from_slice(text.as_bytes());
                    false
                }
                _ => {
                    line.push(b'{');
                    true
                }
            };
            if !self.config.keys.is_empty() {
                if !first {
                    line.push(b',');
                }
                line.extend_from_slice(b"\"key\":");
                line.extend_from_slice(key);
                first = false;
            }
            for (spec, acc) in self.config.aggs.iter().map(|(s, _)| s).zip(accs) {
                if !first {
                    line.push(b',');
                }
                first = false;
                line.push(b'"');
                line.extend_from_slice(spec.name.as_bytes());
                line.extend_from_slice(b"\":");
                acc.write_result(line);
            }
            line.extend_from_slice(b"}\n");
            out.written += 1;
        } else {
            let mut obj = Map::default();
            let field = |name: &str| Val::from(name.to_string());
            if let Some((start, end)) = window {
                obj.insert(field("window_start"), Val::from(format_time(start)));
                obj.insert(field("window_end"), Val::from(format_time(end)));
            }
            if !self.config.keys.is_empty() {
                obj.insert(field("key"), key_value(key));
            }
            for ((spec, _), acc) in self.config.aggs.iter().zip(accs) {
                obj.insert(field(&spec.name), acc.result());
            }
            out.push(Event {
                value: Val::obj(obj),
                changed: true,
            });
        }
        let mut truncated = false;
        for (i, acc) in accs.iter().enumerate() {
            if acc.truncated() {
                let by_agg = &mut self.counters.truncated_by_agg;
                by_agg.resize(self.config.aggs.len(), 0);
                by_agg[i] += 1;
                truncated = true;
            }
        }
        self.counters.collect_truncated += u64::from(truncated);
        self.counters.windows_emitted += 1;
    }

    /// Distinct keys held, and an estimate of the bytes the state holds.
    fn held(&self) -> (u64, u64) {
        let accs_bytes = |accs: &Accs| {
            (accs.capacity() * std::mem::size_of::<Acc>()
                + accs.iter().map(Acc::heap_bytes).sum::<usize>()) as u64
        };
        // A hash map entry: the boxed key, its text, the value, and the
        // table's own word of control bytes and spare room (about 1/8).
        let entry = |key: &[u8], value: usize| (key.len() + 16 + value + value / 8 + 8) as u64;
        let mut bytes = 0;
        let mut keys = 0;
        for (key, accs) in &self.groups {
            bytes += entry(key, 24) + accs_bytes(accs);
            keys += 1;
        }
        for (key, sessions) in &self.sessions {
            bytes += entry(key, 24);
            bytes += sessions
                .iter()
                .map(|s| std::mem::size_of::<Session>() as u64 + accs_bytes(&s.accs))
                .sum::<u64>();
            keys += 1;
        }
        if self.panes.len() == 1 {
            keys += self.panes.values().map(|k| k.len() as u64).sum::<u64>();
        } else if !self.panes.is_empty() {
            let mut distinct: std::collections::HashSet<&[u8], foldhash::fast::FixedState> =
                Default::default();
            for keys in self.panes.values() {
                distinct.extend(keys.keys().map(|k| &k[..]));
            }
            keys += distinct.len() as u64;
        }
        for pane in self.panes.values() {
            bytes += 64;
            for (key, accs) in pane {
                bytes += entry(key, 24) + accs_bytes(accs);
            }
        }
        (keys, bytes)
    }
}

/// A key's JSON text read back as the value it was written from.
fn key_value(key: &[u8]) -> Val {
    crate::json::parse(key).unwrap_or(Val::Null)
}

/// The states of `map` as (key, state), in jq's order of the keys' values
/// (texts that read back as equal values, as `1` and `1.0`, by their text).
fn sorted<T>(map: &Keyed<T>) -> Vec<(&Key, &T)> {
    let mut items: Vec<(&Key, &T)> = map.iter().collect();
    // The usual keys (strings without escapes, machine integers, null and
    // booleans) sort without reading them back: jq orders null, false,
    // true, numbers, strings, and strings by code point, which is the
    // order of their UTF-8 bytes.
    let quick: Option<Vec<Quick>> = items.iter().map(|(k, _)| Quick::of(k)).collect();
    match quick {
        // (An index takes 32 bits: more keys than that sort the slow way.)
        Some(quick) if u32::try_from(items.len()).is_ok() => {
            // Sorted as plain numbers: rank (kind, then the integer or the
            // string's first eight bytes) above the item's index. Only
            // strings sharing their first eight bytes need more.
            let mut order: Vec<u128> = quick
                .iter()
                .enumerate()
                .map(|(i, q)| (q.rank() << 32) | i as u128)
                .collect();
            order.sort_unstable();
            let index = |o: u128| (o as u32) as usize;
            for run in order.chunk_by_mut(|a, b| a >> 32 == b >> 32) {
                if run.len() > 1 {
                    run.sort_unstable_by(|&a, &b| quick[index(a)].cmp(&quick[index(b)]));
                }
            }
            order.into_iter().map(|o| items[index(o)]).collect()
        }
        _ => {
            let mut keyed: Vec<(Val, &Key, &T)> = items
                .drain(..)
                .map(|(key, state)| (key_value(key), key, state))
                .collect();
            keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            keyed.into_iter().map(|(_, k, s)| (k, s)).collect()
        }
    }
}

/// A key's text as far as sorting the usual keys needs it. A string
/// compares by its first eight bytes as one number first (big-endian, so
/// in byte order; JSON strings hold no raw NUL), then by all its bytes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Quick<'a> {
    Null,
    False,
    True,
    Int(i64),
    Str(u64, &'a [u8]),
}

impl Quick<'_> {
    /// A number in the order of `Quick`'s, but for strings that share
    /// their first eight bytes (equal ranks): the kind above the integer
    /// (its sign bit flipped, so negatives come first) or the string's head.
    fn rank(&self) -> u128 {
        let (kind, low) = match *self {
            Quick::Null => (0u128, 0),
            Quick::False => (1, 0),
            Quick::True => (2, 0),
            Quick::Int(i) => (3, (i as u64) ^ (1 << 63)),
            Quick::Str(head, _) => (4, head),
        };
        (kind << 64) | u128::from(low)
    }

    fn of(key: &[u8]) -> Option<Quick<'_>> {
        Some(match key {
            b"null" => Quick::Null,
            b"false" => Quick::False,
            b"true" => Quick::True,
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                let mut head = [0; 8];
                let n = inner.len().min(8);
                head[..n].copy_from_slice(&inner[..n]);
                Quick::Str(u64::from_be_bytes(head), inner)
            }
            _ => Quick::Int(std::str::from_utf8(key).ok()?.parse().ok()?),
        })
    }
}

fn new_accs(config: &WindowConfig) -> Accs {
    config
        .aggs
        .iter()
        .map(|(spec, _)| Acc::new(&spec.func))
        .collect()
}

impl StatefulStage for WindowStage {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> Kind {
        if self.config.spec.is_some() {
            Kind::Window
        } else {
            Kind::Aggregate
        }
    }
    fn expr(&self) -> &str {
        &self.expr
    }

    /// Key, time and each aggregate's values, checked against their
    /// aggregates, so a failing event leaves no trace in any window.
    fn extract(
        &self,
        event: &Val,
        _side: usize,
        line: u64,
        index: Option<u32>,
        into: &mut Extracts,
    ) -> Result<(), String> {
        let key = self.key(event)?;
        let time = match &self.config.time {
            Some(program) => super::time_of(program, "--time", event)?,
            // Arrival time, for windows; a group-by needs none (first and
            // last go by arrival order).
            None if self.config.spec.is_some() => time::now(),
            None => 0,
        };
        let mark = into.start();
        into.write_key(&key);
        let key_end = into.key_buffer().len();
        for (agg, (spec, program)) in self.config.aggs.iter().enumerate() {
            let Some(program) = program else { continue };
            let mut failed = None;
            let result = program.run(event.clone(), |v| {
                if matches!(v, Val::Null) {
                    return true;
                }
                if let Err(e) = Acc::check(&spec.func, &v) {
                    failed = Some(e);
                    return false;
                }
                match (&v, spec.func.takes_numbers()) {
                    (Val::Num(n), true) => {
                        if into.push_number(agg, n).is_none() {
                            failed = Some(format!("{}: {v} is not a number", spec.func.name()));
                            return false;
                        }
                    }
                    _ => into.push_json(agg, |out| crate::json::write_compact(out, &v)),
                }
                true
            });
            let error = match (result, failed) {
                (Err(e), _) => Some(e),
                (Ok(()), failed) => failed,
            };
            if let Some(e) = error {
                into.abandon(mark);
                return Err(format!("--agg {}: {e}", spec.name));
            }
        }
        into.finish(mark, key_end, line, index, time);
        Ok(())
    }

    fn arrival_time(&self) -> bool {
        self.config.time.is_none() && self.config.spec.is_some()
    }

    fn lateness(&self) -> i64 {
        self.config.lateness
    }

    /// The end of the last window holding `time`; sessions (which grow)
    /// and group-by have no bound.
    fn holds_until(&self, _: usize, time: i64) -> Option<i64> {
        let (size, slide, _) = self.grid()?;
        let last_start = time.div_euclid(slide).saturating_mul(slide);
        Some(last_start.saturating_add(size))
    }

    fn apply(
        &mut self,
        event: &Extract,
        watermark: Option<i64>,
        timers: &mut Timers,
        _out: &mut Emitted,
    ) -> Result<(), Rejected> {
        if let Some(why) = self.is_late(event.time, watermark) {
            self.counters.events_late += 1;
            return Err(Rejected::Late(why));
        }
        self.counters.events_aggregated += 1;
        self.insert(event, timers);
        Ok(())
    }

    /// A group-by: every event counts, whatever its time (`apply` is never
    /// late), and nothing is emitted, nor a timer set, before the end.
    fn apply_all(&mut self, extracts: &Extracts, from: usize) -> bool {
        if self.config.spec.is_some() {
            return false;
        }
        let mut none = Timers::default();
        for i in from..extracts.len() {
            self.insert(&extracts.get(i), &mut none);
        }
        self.counters.events_aggregated += (extracts.len() - from) as u64;
        true
    }

    fn fire(&mut self, watermark: i64, timers: &mut Timers, out: &mut Emitted) {
        if self.config.spec.is_some() {
            self.emit(Some(watermark), timers, out);
        }
    }

    fn finish(&mut self, out: &mut Emitted) {
        self.emit(None, &mut Timers::default(), out);
    }

    /// Keys as their text, aggregates as `Acc::save` writes them.
    fn snapshot(&self) -> Json {
        let accs = |accs: &Accs| Json::Array(accs.iter().map(Acc::save).collect());
        let key = |k: &[u8]| Json::String(String::from_utf8_lossy(k).into_owned());
        let keyed = |map: &Keyed<Accs>| {
            let mut items: Vec<_> = map.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            Json::Array(
                items
                    .iter()
                    .map(|(k, a)| json!([key(k), accs(a)]))
                    .collect(),
            )
        };
        let mut sessions: Vec<_> = self.sessions.iter().collect();
        sessions.sort_by(|a, b| a.0.cmp(b.0));
        let c = &self.counters;
        json!({
            "seq": self.seq,
            "next_window": self.next_window,
            "open": self.open,
            "panes": self.panes.iter().map(|(start, keys)| json!([start, keyed(keys)])).collect::<Vec<_>>(),
            "sessions": sessions.iter().map(|(k, ss)| json!([key(k), ss.iter().map(|s| json!([s.start, s.last, accs(&s.accs)])).collect::<Vec<_>>()])).collect::<Vec<_>>(),
            "groups": keyed(&self.groups),
            "counters": {
                "events_aggregated": c.events_aggregated,
                "events_late": c.events_late,
                "windows_open": c.windows_open,
                "windows_emitted": c.windows_emitted,
                "collect_truncated": c.collect_truncated,
                "truncated_by_agg": c.truncated_by_agg,
            },
        })
    }

    fn restore(&mut self, state: &Json, timers: &mut Timers) -> Result<(), String> {
        let bad = |what: &str| format!("its {what} is not one this window stage saves");
        let funcs: Vec<agg::Func> = self
            .config
            .aggs
            .iter()
            .map(|(s, _)| s.func.clone())
            .collect();
        let accs = |j: &Json| -> Option<Accs> {
            let saved = j.as_array()?;
            if saved.len() != funcs.len() {
                return None;
            }
            funcs
                .iter()
                .zip(saved)
                .map(|(f, s)| Acc::load(f, s))
                .collect()
        };
        let keyed = |j: &Json| -> Option<Keyed<Accs>> {
            j.as_array()?
                .iter()
                .map(|item| {
                    let [k, a] = item.as_array()?.as_slice() else {
                        return None;
                    };
                    Some((k.as_str()?.as_bytes().into(), accs(a)?))
                })
                .collect()
        };
        self.seq = state["seq"].as_u64().ok_or_else(|| bad("seq"))?;
        self.next_window = state["next_window"].as_i64();
        self.open = state["open"].as_u64().ok_or_else(|| bad("open"))?;
        self.panes = state["panes"]
            .as_array()
            .ok_or_else(|| bad("panes"))?
            .iter()
            .map(|p| Some((p.get(0)?.as_i64()?, keyed(p.get(1)?)?)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("panes"))?;
        self.sessions = state["sessions"]
            .as_array()
            .ok_or_else(|| bad("sessions"))?
            .iter()
            .map(|item| {
                let sessions = item
                    .get(1)?
                    .as_array()?
                    .iter()
                    .map(|s| {
                        Some(Session {
                            start: s.get(0)?.as_i64()?,
                            last: s.get(1)?.as_i64()?,
                            accs: accs(s.get(2)?)?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((item.get(0)?.as_str()?.as_bytes().into(), sessions))
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("sessions"))?;
        self.groups = keyed(&state["groups"]).ok_or_else(|| bad("groups"))?;
        let c = &state["counters"];
        let n = |name: &str| c[name].as_u64().ok_or_else(|| bad(name));
        self.counters = Counters {
            events_aggregated: n("events_aggregated")?,
            events_late: n("events_late")?,
            windows_open: n("windows_open")?,
            windows_emitted: n("windows_emitted")?,
            collect_truncated: n("collect_truncated")?,
            truncated_by_agg: c["truncated_by_agg"]
                .as_array()
                .and_then(|a| a.iter().map(Json::as_u64).collect())
                .ok_or_else(|| bad("counters"))?,
        };
        // The timers of what is open.
        if let (Some(next), Some((size, _, _))) = (self.next_window, self.grid()) {
            timers.set(next + size);
        }
        if let Some(WindowSpec::Session { gap }) = self.config.spec {
            for s in self.sessions.values().flatten() {
                timers.set(s.last.saturating_add(gap));
            }
        }
        Ok(())
    }

    /// Its events_in are events_aggregated + events_late + events_failed,
    /// and its events_out the results emitted. The details are the truncated
    /// `collect`s per `--agg` (for the notes).
    fn counters(&self) -> StateStats {
        let c = &self.counters;
        let (keys, state_bytes) = self.held();
        StateStats {
            counters: vec![
                ("events_aggregated", c.events_aggregated),
                ("events_late", c.events_late),
                ("windows_open", c.windows_open),
                ("windows_emitted", c.windows_emitted),
                ("collect_truncated", c.collect_truncated),
                ("keys", keys),
                ("state_bytes", state_bytes),
            ],
            details: c.truncated_by_agg.clone(),
            summary: String::new(),
        }
    }
    fn summary(&self, c: &StateStats) -> String {
        let mut summary = format!(
            "{} aggregated, {} late, {} results emitted, at most {} windows open",
            c.get("events_aggregated"),
            c.get("events_late"),
            c.get("windows_emitted"),
            c.get("windows_open")
        );
        let truncated = c.get("collect_truncated");
        if truncated > 0 {
            summary.push_str(&format!(", {truncated} with a collect truncated"));
        }
        let keys = c.get("keys");
        if keys > 0 {
            let bytes = c.get("state_bytes");
            summary.push_str(&format!(", {keys} keys held in about {bytes} bytes"));
        }
        summary
    }

    /// Late events and truncated `collect`s.
    fn notes(&self, c: &StateStats) -> Vec<String> {
        let mut notes = Vec::new();
        let late = c.get("events_late");
        if late > 0 {
            notes.push(late_note(late));
        }
        let windowed = self.config.spec.is_some();
        for ((spec, _), &n) in self.config.aggs.iter().zip(&c.details) {
            if let (agg::Func::Collect(limit), true) = (&spec.func, n > 0) {
                notes.push(collect_note(&spec.text, *limit, n, windowed));
            }
        }
        notes
    }
}

/// What evq says on standard error at the end of a run (unless `-q`) when
/// `late` events came after their windows were emitted.
fn late_note(late: u64) -> String {
    if late == 1 {
        "1 event came too late for its window and was not counted; see --lateness".into()
    } else {
        format!(
            "{late} events came too late for their windows and were not counted; see --lateness"
        )
    }
}

/// What evq says at the end of a run (unless `-q`) when the aggregate `agg`
/// (the `--agg` as written), a `collect` keeping `limit` values, dropped
/// values in `results` results: windows, or groups without `--window`.
fn collect_note(agg: &str, limit: usize, results: u64, windowed: bool) -> String {
    let what = match (windowed, results) {
        (true, 1) => "window",
        (true, _) => "windows",
        (false, 1) => "group",
        (false, _) => "groups",
    };
    format!(
        "--agg '{agg}': kept the first {limit} values and dropped the rest in {results} {what}; raise the limit with collect(EXPR; LIMIT)"
    )
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jq::Globals;

    /// Keys sort as jq orders their values, whether they take the quick
    /// way (plain strings, integers, null, booleans) or are read back.
    #[test]
    fn keys_sort_as_jq_orders_their_values() {
        let quick = [
            "\"b\"",
            "3",
            "null",
            "\"a!\"",
            "-5",
            "true",
            "\"ab\"",
            "\"\"",
            "false",
            "\"a\"",
            "10",
            "0",
            "\"abcdefghij\"",
            "\"abcdefghi\"",
            "\"\u{e9}\"",
            "\"z\"",
        ];
        // Any of these makes the whole set be read back.
        let slow = [
            "1.5",
            "[1]",
            "{\"a\":1}",
            "\"a\\u0021\"",
            "99999999999999999999",
        ];
        let by_value = |keys: &[&str]| {
            let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            v.sort_by_key(|k| key_value(k.as_bytes()));
            v
        };
        let sort = |keys: &[&str]| {
            let map: Keyed<()> = keys.iter().map(|k| (k.as_bytes().to_vec(), ())).collect();
            sorted(&map)
                .into_iter()
                .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
                .collect::<Vec<_>>()
        };
        assert!(quick.iter().all(|k| Quick::of(k.as_bytes()).is_some()));
        assert_eq!(sort(&quick), by_value(&quick));
        for extra in slow {
            assert!(Quick::of(extra.as_bytes()).is_none(), "{extra}");
            let mut keys = quick.to_vec();
            keys.push(extra);
            assert_eq!(sort(&keys), by_value(&keys), "with {extra}");
        }
        // Generated: strings over a small alphabet that often share their
        // first eight bytes, and integers up to the extremes.
        let mut x = 12345u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut generated: Vec<String> = ["-9223372036854775808", "9223372036854775807"]
            .map(String::from)
            .to_vec();
        for _ in 0..3000 {
            let r = next();
            generated.push(if r % 3 == 0 {
                ((next() as i64) >> (next() % 64)).to_string()
            } else {
                let len = (next() % 13) as usize;
                let text: String = (0..len)
                    .map(|_| ['a', 'b', '~', 'é'][(next() % 4) as usize])
                    .collect();
                format!("\"{text}\"")
            });
        }
        generated.sort();
        generated.dedup();
        let generated: Vec<&str> = generated.iter().map(String::as_str).collect();
        assert_eq!(sort(&generated), by_value(&generated));
    }

    impl WindowStage {
        /// What the runtime does with one event: extract, apply with the
        /// watermark, fire the timers it reached.
        fn process(&mut self, event: Event, out: &mut Emitted) -> Result<(), Rejected> {
            let mut extracts = Extracts::default();
            self.extract(&event.value, 0, 1, None, &mut extracts)?;
            let e = extracts.iter().next().expect("one extraction");
            let watermark = self.test_clock.0.map(|t| t - self.config.lateness);
            let mut timers = std::mem::take(&mut self.test_clock.1);
            self.apply(&e, watermark, &mut timers, out)?;
            let max = self.test_clock.0.map_or(e.time, |m| m.max(e.time));
            self.test_clock.0 = Some(max);
            let watermark = max - self.config.lateness;
            let mut due = false;
            while timers.take_due(watermark).is_some() {
                due = true;
            }
            if due {
                self.fire(watermark, &mut timers, out);
            }
            self.test_clock.1 = timers;
            Ok(())
        }
    }

    /// A window stage over events `{"t": seconds, "k": key, "v": value}`.
    fn stage(spec: Option<&str>, lateness: i64, aggs: &[&str]) -> WindowStage {
        let globals = Globals::new(Vec::new());
        let program = |code: &str| Program::compile(code, "test", &globals).unwrap();
        let config = WindowConfig {
            spec: spec.map(|s| time::parse_window(s).unwrap()),
            keys: vec![program(".k")],
            time: Some(program(".t")),
            aggs: aggs
                .iter()
                .map(|a| {
                    let spec = agg::parse_agg(a).unwrap();
                    let p = spec.expr.as_deref().map(program);
                    (spec, p)
                })
                .collect(),
            lateness,
        };
        WindowStage::new("window#1".into(), "test".into(), config)
    }

    fn event(t: i64, k: &str, v: i64) -> Event {
        let text = format!(r#"{{"t":{t},"k":"{k}","v":{v}}}"#);
        Event {
            value: crate::json::parse(text.as_bytes()).unwrap(),
            changed: false,
        }
    }

    /// Feeds `(t, key, v)` events, then ends the input; returns the results
    /// as text and the late events' times.
    fn run(stage: &mut WindowStage, events: &[(i64, &str, i64)]) -> (Vec<String>, Vec<i64>) {
        let (mut out, mut late) = (Emitted::default(), Vec::new());
        for &(t, k, v) in events {
            match stage.process(event(t, k, v), &mut out) {
                Ok(()) => {}
                Err(Rejected::Late(_)) => late.push(t),
                Err(Rejected::Failed(e)) => panic!("{e}"),
            }
        }
        stage.finish(&mut out);
        (
            out.events.iter().map(|e| e.value.to_string()).collect(),
            late,
        )
    }

    /// `(start s, end s, key, n)` of each result.
    fn windows(results: &[String]) -> Vec<(String, String, String, i64)> {
        results
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(r).unwrap();
                let time = |f: &str| v[f].as_str().unwrap()[14..19].to_string();
                (
                    time("window_start"),
                    time("window_end"),
                    v["key"].as_str().unwrap().into(),
                    v["n"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    fn w(start: &str, end: &str, key: &str, n: i64) -> (String, String, String, i64) {
        (start.into(), end.into(), key.into(), n)
    }

    #[test]
    fn tumbling_windows_in_order_of_end_then_key() {
        let mut s = stage(Some("tumbling:1m"), 0, &["n=count"]);
        let (out, late) = run(
            &mut s,
            &[
                (5, "b", 0),
                (10, "a", 0),
                (59, "b", 0),
                (60, "a", 0),
                (185, "a", 0),
            ],
        );
        assert!(late.is_empty());
        assert_eq!(
            windows(&out),
            [
                w("00:00", "01:00", "a", 1),
                w("00:00", "01:00", "b", 2),
                w("01:00", "02:00", "a", 1),
                w("03:00", "04:00", "a", 1)
            ]
        );
        // State is released as windows close.
        assert_eq!(s.open, 0);
        assert_eq!(s.counters.windows_emitted, 4);
    }

    #[test]
    fn sliding_windows_share_panes() {
        let mut s = stage(Some("sliding:2m/1m"), 0, &["n=count"]);
        let (out, _) = run(&mut s, &[(30, "a", 0), (90, "a", 0), (150, "a", 0)]);
        assert_eq!(
            windows(&out),
            [
                w("59:00", "01:00", "a", 1),
                w("00:00", "02:00", "a", 2),
                w("01:00", "03:00", "a", 2),
                w("02:00", "04:00", "a", 1)
            ]
        );
        // One state per pane (1m) and key, not per window.
        assert_eq!(s.counters.windows_open, 3);
    }

    #[test]
    fn sliding_windows_that_do_not_divide_evenly() {
        // 10s windows every 3s: panes of gcd = 1s.
        let mut s = stage(Some("sliding:10s/3s"), 0, &["n=count"]);
        let (out, _) = run(&mut s, &[(0, "a", 0), (11, "a", 0)]);
        let got: Vec<_> = windows(&out)
            .into_iter()
            .map(|(s, e, _, n)| format!("{s}-{e}:{n}"))
            .collect();
        assert_eq!(
            got,
            [
                "59:51-00:01:1",
                "59:54-00:04:1",
                "59:57-00:07:1",
                "00:00-00:10:1",
                "00:03-00:13:1",
                "00:06-00:16:1",
                "00:09-00:19:1"
            ]
        );
    }

    #[test]
    fn long_gaps_skip_empty_windows() {
        let mut s = stage(Some("sliding:2s/1s"), 0, &["n=count"]);
        let (out, _) = run(&mut s, &[(0, "a", 0), (1_000_000_000, "a", 0)]);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn session_windows_merge_when_an_event_bridges_them() {
        let mut s = stage(Some("session:10s"), 100_000, &["n=count", "s=sum(.v)"]);
        let (out, late) = run(
            &mut s,
            &[(0, "a", 1), (18, "a", 2), (100, "b", 5), (9, "a", 3)],
        );
        assert!(late.is_empty());
        // 0 and 18 are two sessions until 9 comes, within 10s of both.
        assert_eq!(
            out,
            [
                r#"{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:00:28Z","key":"a","n":3,"s":6}"#,
                r#"{"window_start":"1970-01-01T00:01:40Z","window_end":"1970-01-01T00:01:50Z","key":"b","n":1,"s":5}"#
            ]
        );
    }

    #[test]
    fn out_of_order_within_lateness_is_kept_and_later_is_late() {
        let mut s = stage(Some("tumbling:1m"), 30_000, &["n=count"]);
        // 50 arrives after 80 (watermark 50): still on time. 20 arrives after
        // 100 (watermark 70, the first window has closed): late.
        let (out, late) = run(
            &mut s,
            &[
                (10, "a", 0),
                (80, "a", 0),
                (50, "a", 0),
                (100, "a", 0),
                (20, "a", 0),
            ],
        );
        assert_eq!(late, [20]);
        assert_eq!(
            windows(&out),
            [w("00:00", "01:00", "a", 2), w("01:00", "02:00", "a", 2)]
        );
    }

    #[test]
    fn group_by_emits_once_per_key_at_the_end() {
        let mut s = stage(None, 0, &["n=count", "m=max(.v)"]);
        let mut out = Emitted::default();
        s.process(event(5, "b", 1), &mut out).unwrap();
        s.process(event(1, "a", 7), &mut out).unwrap();
        s.process(event(9, "b", 3), &mut out).unwrap();
        assert!(out.is_empty());
        s.finish(&mut out);
        let got: Vec<String> = out.events.iter().map(|e| e.value.to_string()).collect();
        assert_eq!(
            got,
            [r#"{"key":"a","n":1,"m":7}"#, r#"{"key":"b","n":2,"m":3}"#]
        );
    }

    #[test]
    fn failing_events_change_nothing() {
        let mut s = stage(Some("tumbling:1m"), 0, &["n=count", "s=sum(.v)"]);
        let mut out = Emitted::default();
        let bad = crate::json::parse(br#"{"t":5,"k":"a","v":"x"}"#).unwrap();
        assert!(matches!(
            s.process(
                Event {
                    value: bad,
                    changed: false
                },
                &mut out
            ),
            Err(Rejected::Failed(_))
        ));
        let no_time = crate::json::parse(br#"{"k":"a","v":1}"#).unwrap();
        assert!(matches!(
            s.process(
                Event {
                    value: no_time,
                    changed: false
                },
                &mut out
            ),
            Err(Rejected::Failed(_))
        ));
        assert_eq!(s.open, 0);
        let (out, _) = run(&mut s, &[(6, "a", 2)]);
        assert_eq!(
            out,
            [
                r#"{"window_start":"1970-01-01T00:00:00Z","window_end":"1970-01-01T00:01:00Z","key":"a","n":1,"s":2}"#
            ]
        );
    }
}
