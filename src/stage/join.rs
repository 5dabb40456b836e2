//! The interval join (`--join FILE`): pairs each event of the main input
//! (the left side) with each event of FILE (the right side) that has an
//! equal key and whose time minus the left event's lies within `--within
//! LOWER..UPPER`. A stateful stage on the keyed-state runtime
//! (`runtime::state`): the workers extract each event's key, time and JSON
//! text (`extract`); the runtime reads the two sides side by side, applies
//! their events merged in event time, keeps one watermark per side and
//! gives the stage the smaller (`apply`), and fires the stage's timers.
//!
//! What the stage does with an event, taken in that merged order:
//! - behind the join's watermark: late (its partners may be gone);
//! - else it pairs with every held event of the other side with the same
//!   key whose time fits the bound, in the order they were taken, and is
//!   held until the watermark passes its deadline (a left event's time plus
//!   UPPER, a right one's minus LOWER): after that no partner can come but
//!   a late one. Then it is released, and emitted alone when it never
//!   matched and its side is outer (`--join-type left|right|full`).
//!
//! A `null` key pairs with nothing. The state is what the bound requires:
//! each held event's text, key and time.

use super::extract::{Extract, Extracts, Input};
use super::{Emitted, Event, Kind, Rejected, StateStats, StatefulStage, Timers};
use crate::jq::Program;
use crate::stage::window::time::{self, format_time};
use jaq_json::{Map, Val};
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::rc::Rc;

type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;
use hashbrown::hash_map::EntryRef;

/// Which unmatched events a join emits (`--join-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum JoinType {
    /// Pairs only.
    Inner,
    /// Pairs, and each left event that never matched, with "right": null.
    Left,
    /// Pairs, and each right event that never matched, with "left": null.
    Right,
    /// Pairs, and every event of either side that never matched.
    Full,
}

impl JoinType {
    /// Whether unmatched events of `side` (0 left, 1 right) are emitted.
    fn outer(self, side: usize) -> bool {
        matches!(
            (self, side),
            (JoinType::Full, _) | (JoinType::Left, 0) | (JoinType::Right, 1)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            JoinType::Inner => "inner",
            JoinType::Left => "left",
            JoinType::Right => "right",
            JoinType::Full => "full",
        }
    }
}

/// Parses `--within`: `LOWER..UPPER` or `BOUND` (meaning `-BOUND..BOUND`),
/// each a duration that may be negative or zero. Milliseconds, LOWER <= UPPER.
pub fn parse_within(text: &str) -> Result<(i64, i64), String> {
    let signed = |t: &str| -> Result<i64, String> {
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let ms = time::parse_lateness(t).map_err(|e| {
            format!(
                "{e}; --within is LOWER..UPPER (0s..10m, -5m..5m) or one duration D meaning -D..D"
            )
        })?;
        Ok(if negative { -ms } else { ms })
    };
    let (lower, upper) = match text.split_once("..") {
        Some((l, u)) => (signed(l)?, signed(u)?),
        None => {
            if text.starts_with('-') {
                return Err(format!(
                    "{text:?}: a single bound is a distance, without a sign (--within 10m means -10m..10m)"
                ));
            }
            let d = signed(text)?;
            (-d, d)
        }
    };
    if lower > upper {
        return Err(format!(
            "{text:?}: the lower bound is above the upper one (write LOWER..UPPER, as 0s..10m)"
        ));
    }
    Ok((lower, upper))
}

/// The join's options, compiled: per side (0 left, 1 right) its key
/// expressions and time expression, the bound and the join type.
pub struct JoinConfig {
    pub keys: [Vec<Program>; 2],
    pub time: [Program; 2],
    pub lower: i64,
    pub upper: i64,
    pub kind: JoinType,
    pub lateness: i64,
}

/// One held event.
struct Held {
    side: u8,
    matched: bool,
    time: i64,
    deadline: i64,
    /// `None`: a null key (pairs with nothing).
    key: Option<Rc<[u8]>>,
    text: Box<[u8]>,
}

#[derive(Default)]
struct Counters {
    pairs: u64,
    unmatched: [u64; 2],
    late: u64,
}

pub struct JoinStage {
    name: String,
    expr: String,
    config: JoinConfig,
    /// Held events by the order they were taken (`None`: released), the
    /// first of them taken `first`th.
    held: VecDeque<Option<Held>>,
    first: u64,
    /// Per key, per side, the held events in the order they were taken.
    by_key: HashMap<Rc<[u8]>, [Seqs; 2]>,
    /// What to release, per side, in order of (deadline, taken): events
    /// in time order come last, so keeping each side's in order is a push.
    release: [VecDeque<(i64, u64)>; 2],
    /// The time of the timer set for the earliest deadline, if one is set.
    timer: Option<i64>,
    next: u64,
    bytes: u64,
    counters: Counters,
}

/// Bytes a held event costs beside its text and key: its record, its
/// place in the indexes.
const HELD_OVERHEAD: u64 = 96;

/// What a held event costs: its text, its key (shared by the key's entry)
/// and its records.
fn cost(held: &Held) -> u64 {
    held.text.len() as u64 + held.key.as_ref().map_or(0, |k| k.len() as u64) + HELD_OVERHEAD
}

impl JoinStage {
    pub fn new(name: String, expr: String, config: JoinConfig) -> JoinStage {
        JoinStage {
            name,
            expr,
            config,
            held: VecDeque::new(),
            first: 0,
            by_key: HashMap::default(),
            release: Default::default(),
            timer: None,
            next: 0,
            bytes: 0,
            counters: Counters::default(),
        }
    }

    fn side_name(side: usize) -> &'static str {
        if side == 0 { "--key" } else { "--join-key" }
    }

    /// Holds an event until the watermark passes its deadline: indexed by
    /// its key, then kept.
    fn hold(&mut self, held: Held, timers: &mut Timers) {
        if let Some(key) = &held.key {
            let sides = match self.by_key.entry_ref(&key[..]) {
                EntryRef::Occupied(o) => o.into_mut(),
                EntryRef::Vacant(v) => v.insert_with_key(Rc::clone(key), Default::default()),
            };
            sides[held.side as usize].push_back(self.next);
        }
        self.keep(held, timers);
    }

    /// Keeps an event (already under its key, if it has one) as the next
    /// one taken, to be released at its deadline.
    fn keep(&mut self, held: Held, timers: &mut Timers) {
        let seq = self.next;
        self.next += 1;
        self.bytes += cost(&held);
        let release = &mut self.release[held.side as usize];
        let due = (held.deadline, seq);
        match release.back() {
            Some(last) if *last > due => {
                let at = release.partition_point(|d| *d < due);
                release.insert(at, due);
            }
            _ => release.push_back(due),
        }
        self.set_timer(timers);
        if self.held.is_empty() {
            self.first = seq;
        }
        // Restored events keep their places: released ones are gaps.
        while self.first + (self.held.len() as u64) < seq {
            self.held.push_back(None);
        }
        self.held.push_back(Some(held));
    }

    /// The runtime wakes the stage when the watermark passes the earliest
    /// deadline (one timer, not one per event).
    fn set_timer(&mut self, timers: &mut Timers) {
        if let Some((deadline, _)) = self.next_due() {
            let at = deadline.saturating_add(1);
            if self.timer.is_none_or(|t| at < t) {
                timers.set(at);
                self.timer = Some(at);
            }
        }
    }

    /// Releases every held event whose deadline is before `watermark`, in
    /// order, emitting those an outer side keeps.
    fn release_before(&mut self, watermark: i64, out: &mut Emitted) {
        while let Some((deadline, seq)) = self.next_due() {
            if deadline >= watermark {
                break;
            }
            self.pop_due();
            self.take_out(seq, out);
        }
    }

    /// The side whose first (deadline, taken) is the earliest.
    fn due_side(&self) -> Option<usize> {
        match (self.release[0].front(), self.release[1].front()) {
            (Some(l), Some(r)) => Some(usize::from(r < l)),
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        }
    }

    /// The earliest (deadline, taken) of all.
    fn next_due(&self) -> Option<(i64, u64)> {
        self.due_side()
            .and_then(|side| self.release[side].front().copied())
    }

    fn pop_due(&mut self) {
        if let Some(side) = self.due_side() {
            self.release[side].pop_front();
        }
    }

    fn take_out(&mut self, seq: u64, out: &mut Emitted) {
        let held = self.held[(seq - self.first) as usize]
            .take()
            .expect("a held event");
        while let Some(None) = self.held.front() {
            self.held.pop_front();
            self.first += 1;
        }
        let side = held.side as usize;
        self.bytes -= cost(&held);
        if let Some(key) = &held.key
            && let EntryRef::Occupied(mut o) = self.by_key.entry_ref(&key[..])
        {
            let sides = o.get_mut();
            sides[side].remove(seq);
            if sides[0].is_empty() && sides[1].is_empty() {
                o.remove();
            }
        }
        if !held.matched {
            self.counters.unmatched[side] += 1;
            if self.config.kind.outer(side) {
                let (l, r) = if side == 0 {
                    (Some(&held.text[..]), None)
                } else {
                    (None, Some(&held.text[..]))
                };
                write_pair(l, r, out);
            }
        }
    }
}

/// A key's held events of one side (their `seq`s), in the order taken:
/// most keys hold one, kept inline, so a key held and released costs no
/// allocation; more go into a deque.
#[derive(Default)]
enum Seqs {
    #[default]
    Empty,
    One(u64),
    Many(VecDeque<u64>),
}

impl Seqs {
    fn push_back(&mut self, seq: u64) {
        match self {
            Seqs::Empty => *self = Seqs::One(seq),
            Seqs::One(first) => *self = Seqs::Many(VecDeque::from([*first, seq])),
            Seqs::Many(seqs) => seqs.push_back(seq),
        }
    }

    fn remove(&mut self, seq: u64) {
        match self {
            Seqs::One(s) if *s == seq => *self = Seqs::Empty,
            Seqs::Many(seqs) => {
                if let Some(i) = seqs.iter().position(|&s| s == seq) {
                    seqs.remove(i);
                }
                if seqs.is_empty() {
                    *self = Seqs::Empty;
                }
            }
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Seqs::Empty)
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (one, many) = match self {
            Seqs::Empty => (None, None),
            Seqs::One(s) => (Some(*s), None),
            Seqs::Many(seqs) => (None, Some(seqs.iter().copied())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// Emits `{"left":L,"right":R}` (`null` for a side not given), as a line
/// when the stage writes lines, else as a value.
fn write_pair(left: Option<&[u8]>, right: Option<&[u8]>, out: &mut Emitted) {
    if let Some(line) = &mut out.lines {
        line.extend_from_slice(b"{\"left\":");
        line.extend_from_slice(left.unwrap_or(b"null"));
        line.extend_from_slice(b",\"right\":");
        line.extend_from_slice(right.unwrap_or(b"null"));
        line.extend_from_slice(b"}\n");
        out.written += 1;
    } else {
        let value = |text: Option<&[u8]>| {
            text.map_or(Val::Null, |t| {
                crate::json::parse(t).expect("the join holds valid JSON")
            })
        };
        let mut obj = Map::default();
        obj.insert(Val::from("left".to_string()), value(left));
        obj.insert(Val::from("right".to_string()), value(right));
        out.push(Event {
            value: Val::obj(obj),
            changed: true,
        });
    }
}

impl StatefulStage for JoinStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Join
    }

    fn expr(&self) -> &str {
        &self.expr
    }

    fn sides(&self) -> usize {
        2
    }

    /// The side's key (its expressions' values; several make an array),
    /// its time, and the event's JSON text as value 0.
    fn extract(
        &self,
        event: &Val,
        side: usize,
        line: u64,
        index: Option<u32>,
        into: &mut Extracts,
    ) -> Result<(), String> {
        let key = super::key_of(&self.config.keys[side], JoinStage::side_name(side), event)?;
        let option = if side == 0 { "--time" } else { "--join-time" };
        let t = super::time_of(&self.config.time[side], option, event)?;
        let mark = into.start();
        into.write_key(&key);
        let key_end = into.key_buffer().len();
        into.push_json(0, |out| crate::json::write_compact(out, event));
        into.finish(mark, key_end, line, index, t);
        Ok(())
    }

    fn arrival_time(&self) -> bool {
        false
    }

    fn lateness(&self) -> i64 {
        self.config.lateness
    }

    /// The event's release: its time plus the bound.
    fn holds_until(&self, side: usize, time: i64) -> Option<i64> {
        Some(if side == 0 {
            time.saturating_add(self.config.upper)
        } else {
            time.saturating_sub(self.config.lower)
        })
    }

    fn apply(
        &mut self,
        event: &Extract,
        watermark: Option<i64>,
        timers: &mut Timers,
        out: &mut Emitted,
    ) -> Result<(), Rejected> {
        let side = event.side as usize;
        if let Some(w) = watermark
            && event.time < w
        {
            self.counters.late += 1;
            return Err(Rejected::Late(format!(
                "late event: time {} is behind the join's watermark {}; the events it could pair with may be gone (see --lateness)",
                format_time(event.time),
                format_time(w)
            )));
        }
        let text: &[u8] = match event.values().next() {
            Some((_, Input::Json(text))) => text,
            _ => b"null",
        };
        let key = (event.key != b"null").then_some(event.key);
        let seq = self.next;
        let mut matched = false;
        // One lookup of the key: its partners, and its place for this event.
        let shared = match key {
            None => None,
            Some(key) => {
                let (lower, upper) = (self.config.lower, self.config.upper);
                let (held, first) = (&mut self.held, self.first);
                let (shared, sides) = match self.by_key.entry_ref(key) {
                    EntryRef::Occupied(o) => (Rc::clone(o.key()), o.into_mut()),
                    EntryRef::Vacant(v) => {
                        let o = v.insert_entry_with_key(Rc::from(key), Default::default());
                        (Rc::clone(o.key()), o.into_mut())
                    }
                };
                for partner in sides[1 - side].iter() {
                    let b = held[(partner - first) as usize]
                        .as_mut()
                        .expect("a held event");
                    let d = if side == 0 {
                        b.time.saturating_sub(event.time)
                    } else {
                        event.time.saturating_sub(b.time)
                    };
                    if lower <= d && d <= upper {
                        b.matched = true;
                        matched = true;
                        self.counters.pairs += 1;
                        if side == 0 {
                            write_pair(Some(text), Some(&b.text), out);
                        } else {
                            write_pair(Some(&b.text), Some(text), out);
                        }
                    }
                }
                sides[side].push_back(seq);
                Some(shared)
            }
        };
        let deadline = if side == 0 {
            event.time.saturating_add(self.config.upper)
        } else {
            event.time.saturating_sub(self.config.lower)
        };
        let held = Held {
            side: side as u8,
            matched,
            time: event.time,
            deadline,
            key: shared,
            text: text.into(),
        };
        self.keep(held, timers);
        Ok(())
    }

    fn fire(&mut self, watermark: i64, timers: &mut Timers, out: &mut Emitted) {
        self.timer = None;
        self.release_before(watermark, out);
        self.set_timer(timers);
    }

    fn finish(&mut self, out: &mut Emitted) {
        // A deadline of i64::MAX itself too (a time at the end of the range).
        while let Some((_, seq)) = self.next_due() {
            self.pop_due();
            self.take_out(seq, out);
        }
        self.timer = None;
    }

    fn snapshot(&self) -> Json {
        let held: Vec<(u64, &Held)> = (self.held.iter().enumerate())
            .filter_map(|(i, h)| Some((self.first + i as u64, h.as_ref()?)))
            .collect();
        let text = |b: &[u8]| Json::String(String::from_utf8_lossy(b).into_owned());
        let c = &self.counters;
        json!({
            "next": self.next,
            "held": held.iter().map(|(seq, h)| json!([
                seq, h.side, h.matched, h.time, h.deadline,
                h.key.as_deref().map(text), text(&h.text)
            ])).collect::<Vec<_>>(),
            "counters": {
                "pairs": c.pairs,
                "unmatched_left": c.unmatched[0],
                "unmatched_right": c.unmatched[1],
                "events_late": c.late,
            },
        })
    }

    fn restore(&mut self, state: &Json, timers: &mut Timers) -> Result<(), String> {
        let bad = || "not the state of a join".to_string();
        let held = state["held"].as_array().ok_or_else(bad)?;
        let mut restored = Vec::new();
        for h in held {
            let f = h.as_array().filter(|f| f.len() == 7).ok_or_else(bad)?;
            let seq = f[0].as_u64().ok_or_else(bad)?;
            let side = f[1].as_u64().filter(|s| *s < 2).ok_or_else(bad)? as u8;
            let matched = f[2].as_bool().ok_or_else(bad)?;
            let (time, deadline) = (
                f[3].as_i64().ok_or_else(bad)?,
                f[4].as_i64().ok_or_else(bad)?,
            );
            let key = match &f[5] {
                Json::Null => None,
                k => Some(Rc::from(k.as_str().ok_or_else(bad)?.as_bytes())),
            };
            let text: Box<[u8]> = f[6].as_str().ok_or_else(bad)?.as_bytes().into();
            crate::json::validate(&text).map_err(|_| bad())?;
            restored.push((
                seq,
                Held {
                    side,
                    matched,
                    time,
                    deadline,
                    key,
                    text,
                },
            ));
        }
        let next = state["next"].as_u64().ok_or_else(bad)?;
        let c = &state["counters"];
        let count = |name: &str| c[name].as_u64().ok_or_else(bad);
        let counters = Counters {
            pairs: count("pairs")?,
            unmatched: [count("unmatched_left")?, count("unmatched_right")?],
            late: count("events_late")?,
        };
        self.held.clear();
        self.by_key.clear();
        self.release = Default::default();
        self.timer = None;
        self.bytes = 0;
        for (seq, held) in restored {
            self.next = seq;
            self.hold(held, timers);
        }
        self.next = next;
        self.counters = counters;
        Ok(())
    }

    fn counters(&self) -> StateStats {
        let c = &self.counters;
        StateStats {
            counters: vec![
                ("pairs", c.pairs),
                ("unmatched_left", c.unmatched[0]),
                ("unmatched_right", c.unmatched[1]),
                ("events_late", c.late),
                ("keys", self.by_key.len() as u64),
                ("state_bytes", self.bytes),
            ],
            details: Vec::new(),
            summary: String::new(),
        }
    }

    fn summary(&self, c: &StateStats) -> String {
        let mut summary = format!(
            "{} pairs, {} left and {} right events unmatched, {} late",
            c.get("pairs"),
            c.get("unmatched_left"),
            c.get("unmatched_right"),
            c.get("events_late"),
        );
        let keys = c.get("keys");
        if keys > 0 {
            let bytes = c.get("state_bytes");
            summary.push_str(&format!(", {keys} keys held in about {bytes} bytes"));
        }
        summary
    }

    fn notes(&self, c: &StateStats) -> Vec<String> {
        match c.get("events_late") {
            0 => Vec::new(),
            1 => {
                vec!["1 event came too late to be joined and was not paired; see --lateness".into()]
            }
            n => vec![format!(
                "{n} events came too late to be joined and were not paired; see --lateness"
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_bounds() {
        assert_eq!(parse_within("0s..10m"), Ok((0, 600_000)));
        assert_eq!(parse_within("10m"), Ok((-600_000, 600_000)));
        assert_eq!(parse_within("-5m..-1m"), Ok((-300_000, -60_000)));
        assert!(parse_within("10m..0s").unwrap_err().contains("lower bound"));
        assert!(parse_within("-10m").is_err());
        assert!(parse_within("abc").is_err());
        assert!(parse_within("1m..").is_err());
    }
}
