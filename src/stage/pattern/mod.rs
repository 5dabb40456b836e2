//! The pattern stage (`--def NAME=EXPR`, `--match PATTERN`): finds, per
//! key, sequences of events that a regular expression over event classes
//! matches, within a time bound. A stateful stage on the keyed-state
//! runtime (`runtime::state`): the workers extract each event's key, time,
//! classes (a bit per `--def`, in order) and JSON text (`extract`); the
//! owner buffers each key's events until the watermark passes their time,
//! then feeds them to the key's matcher in event-time order (ties in input
//! order).
//!
//! The matcher (the semantics the README states): the events of a key that
//! belong to at least one class form its sequence. An attempt starts at an
//! element and takes the following ones while the pattern can still go on
//! (and, with `--within`, while an element is at most DURATION after the
//! attempt's first). When it cannot take the next one (or the watermark
//! has passed the first's time plus DURATION, or the input ended), the
//! attempt ends: its longest match, if it has one, is emitted and the next
//! attempt starts after its last event; else, when `--within` (or the end
//! of input, with `--within`) cut it off while it could go on, it is a
//! timeout (emitted under `--match-timeouts`), and the next attempt starts
//! at the element after its first.
//!
//! State: the buffered events and each key's attempt in progress.

mod keys;
pub mod regex;

use super::extract::{Extract, Extracts, Input};
use super::{Emitted, Event, Kind, Rejected, StateStats, StatefulStage, Timers};
use crate::jq::Program;
use crate::stage::window::time::{self, format_time};
use jaq_json::Val;
use keys::Slab;
use regex::{Nfa, Set};
use serde_json::{Value as Json, json};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

/// At most this many `--def` classes (a bit each).
pub const MAX_CLASSES: usize = 63;

/// The stage's options, compiled.
pub struct PatternConfig {
    /// `--def` names and expressions, in order.
    pub classes: Vec<(String, Program)>,
    pub nfa: Nfa,
    pub keys: Vec<Program>,
    pub time: Option<Program>,
    /// `--within`, milliseconds.
    pub within: Option<i64>,
    pub timeouts: bool,
    pub lateness: i64,
}

/// One element of a key's sequence.
#[derive(Clone)]
struct Elem {
    time: i64,
    mask: u64,
    text: Box<[u8]>,
}

/// Bytes an element costs beside its text.
const ELEM_OVERHEAD: u64 = 64;

/// A key's attempt in progress: its elements, the automaton's positions
/// after them, and the length of its longest match so far (0: none).
#[derive(Default)]
struct Attempt {
    elems: Vec<Elem>,
    set: Set,
    best: usize,
}

#[derive(Default)]
struct KeyState {
    attempt: Attempt,
    /// Events of the key still buffered.
    buffered: usize,
}

#[derive(Default)]
struct Counters {
    matches: u64,
    timeouts: u64,
    late: u64,
    peak: u64,
}

/// A buffered event: when it was taken (its time, then the order of
/// taking), its key and the element it will be. Ordered earliest first in
/// a `BinaryHeap`: in-order events come and go with no allocation, as a
/// `BTreeMap` of one or two entries would make.
struct Buffered {
    at: (i64, u64),
    /// The key's slot (held while it has buffered events).
    slot: u32,
    elem: Elem,
}

impl PartialEq for Buffered {
    fn eq(&self, other: &Buffered) -> bool {
        self.at == other.at
    }
}

impl Eq for Buffered {}

impl PartialOrd for Buffered {
    fn partial_cmp(&self, other: &Buffered) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Buffered {
    /// Reversed: the heap's greatest is the earliest.
    fn cmp(&self, other: &Buffered) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

/// An attempt's deadline: the time, the key's bytes and its slot.
type Deadline = (i64, Rc<[u8]>, u32);

pub struct PatternStage {
    name: String,
    expr: String,
    config: PatternConfig,
    /// Each key's state, in a slot found by the key's bytes once per
    /// event (`keys`).
    keys: Slab<KeyState>,
    /// Events waiting for the watermark to pass their time, by (time, taken).
    buffered: std::collections::BinaryHeap<Buffered>,
    /// Attempts in progress by the time `--within` cuts them off (their
    /// first event's time plus DURATION), earliest first (then by key).
    /// An attempt that ends or starts again leaves its old deadline here:
    /// one is acted on only while it is still its key's (`current`).
    /// With the key's bytes (for the order) and its slot.
    deadlines: BinaryHeap<Reverse<Deadline>>,
    /// Attempts in progress now.
    open: u64,
    /// Room for the automaton's next positions, and its scratch: swapped
    /// with an attempt's, so that a step allocates nothing.
    sets: (Set, Set),
    timer: Option<i64>,
    next: u64,
    bytes: u64,
    counters: Counters,
}

impl PatternStage {
    pub fn new(name: String, expr: String, config: PatternConfig) -> PatternStage {
        PatternStage {
            name,
            expr,
            config,
            keys: Slab::default(),
            buffered: Default::default(),
            deadlines: BinaryHeap::new(),
            sets: Default::default(),
            open: 0,
            timer: None,
            next: 0,
            bytes: 0,
            counters: Counters::default(),
        }
    }

    fn deadline(&self, attempt: &Attempt) -> Option<i64> {
        let first = attempt.elems.first()?;
        Some(first.time.saturating_add(self.config.within?))
    }

    /// Feeds `elem`, then `more`, to the matcher of the key in `slot`, and
    /// whatever an ended attempt gives back; `unbuffered`: `elem` leaves
    /// the key's buffer now.
    fn feed(
        &mut self,
        slot: u32,
        elem: Elem,
        more: Vec<Elem>,
        unbuffered: bool,
        out: &mut Emitted,
    ) {
        let k = &mut self.keys.held(slot).value;
        k.buffered -= usize::from(unbuffered);
        let mut attempt = std::mem::take(&mut k.attempt);
        let old = self.deadline(&attempt);
        let was_open = !attempt.elems.is_empty();
        // Usually the one element, and no queue (it allocates once used).
        let mut first = Some(elem);
        let mut queue = VecDeque::from(more);
        while let Some(e) = first.take().or_else(|| queue.pop_front()) {
            let nfa = &self.config.nfa;
            let (set, mask) = &mut self.sets;
            if attempt.elems.is_empty() {
                nfa.start_into(e.mask, set);
                if Nfa::dead(set) {
                    self.bytes -= e.text.len() as u64 + ELEM_OVERHEAD;
                    continue;
                }
                attempt.best = usize::from(nfa.accepts(set));
                std::mem::swap(&mut attempt.set, set);
                attempt.elems.push(e);
                continue;
            }
            let first = attempt.elems[0].time;
            let inside = self
                .config
                .within
                .is_none_or(|d| e.time.saturating_sub(first) <= d);
            if inside {
                nfa.step_into(&attempt.set, e.mask, set, mask);
                if !Nfa::dead(set) {
                    std::mem::swap(&mut attempt.set, set);
                    attempt.elems.push(e);
                    if nfa.accepts(&attempt.set) {
                        attempt.best = attempt.elems.len();
                    }
                    continue;
                }
            }
            let rest = self.end_attempt(slot, &mut attempt, !inside, out);
            queue.push_front(e);
            for r in rest.into_iter().rev() {
                queue.push_front(r);
            }
        }
        self.put_back(slot, attempt, old, was_open);
    }

    /// Ends an attempt (cut off by `--within` when `cut`): emits its match,
    /// or its timeout, and gives back the elements to feed again.
    fn end_attempt(
        &mut self,
        slot: u32,
        attempt: &mut Attempt,
        cut: bool,
        out: &mut Emitted,
    ) -> Vec<Elem> {
        let mut elems = std::mem::take(&mut attempt.elems);
        let best = attempt.best;
        attempt.best = 0;
        attempt.set.clear();
        let (done, rest) = if best > 0 {
            let rest = elems.split_off(best);
            self.counters.matches += 1;
            self.write(slot, "matched", &elems, true, out);
            (elems, rest)
        } else {
            if cut && self.config.within.is_some() {
                self.counters.timeouts += 1;
                if self.config.timeouts {
                    self.write(slot, "timeout", &elems, false, out);
                }
            }
            let rest = elems.split_off(1);
            (elems, rest)
        };
        for e in &done {
            self.bytes -= e.text.len() as u64 + ELEM_OVERHEAD;
        }
        rest
    }

    /// Puts a key's attempt back, keeping its deadline, the open count and
    /// the key's slot (freed when it holds nothing) in step.
    fn put_back(&mut self, slot: u32, attempt: Attempt, old: Option<i64>, was_open: bool) {
        let new = self.deadline(&attempt);
        if old != new
            && let Some(d) = new
        {
            let key = Rc::clone(&self.keys.held(slot).key);
            self.deadlines.push(Reverse((d, key, slot)));
        }
        let is_open = !attempt.elems.is_empty();
        match (was_open, is_open) {
            (false, true) => self.open += 1,
            (true, false) => self.open -= 1,
            _ => {}
        }
        self.counters.peak = self.counters.peak.max(self.open);
        let entry = &mut self.keys.held(slot).value;
        entry.attempt = attempt;
        if entry.buffered == 0 && entry.attempt.elems.is_empty() {
            let gone = self.keys.remove(slot);
            self.bytes -= gone.key.len() as u64;
        }
    }

    /// Writes one result: `{"key", "start", "end", "status", "events"}`.
    fn write(&self, slot: u32, status: &str, elems: &[Elem], complete: bool, out: &mut Emitted) {
        let key = &self.keys.get(slot).expect("a held key").key;
        let masks: Vec<u64> = elems.iter().map(|e| e.mask).collect();
        let classes = self.config.nfa.assign(&masks, complete);
        let mut line =
            Vec::with_capacity(64 + elems.iter().map(|e| e.text.len() + 1).sum::<usize>());
        line.push(b'{');
        if !self.config.keys.is_empty() {
            line.extend_from_slice(b"\"key\":");
            line.extend_from_slice(&key[..]);
            line.push(b',');
        }
        let (first, last) = (elems[0].time, elems[elems.len() - 1].time);
        line.extend_from_slice(b"\"start\":");
        crate::json::write_str(&format_time(first), &mut line);
        line.extend_from_slice(b",\"end\":");
        crate::json::write_str(&format_time(last), &mut line);
        line.extend_from_slice(b",\"status\":\"");
        line.extend_from_slice(status.as_bytes());
        line.extend_from_slice(b"\",\"events\":{");
        let mut any = false;
        for (c, (name, _)) in self.config.classes.iter().enumerate() {
            if !classes.contains(&c) {
                continue;
            }
            if any {
                line.push(b',');
            }
            any = true;
            crate::json::write_str(name, &mut line);
            line.extend_from_slice(b":[");
            let mut comma = false;
            for (e, _) in elems.iter().zip(&classes).filter(|(_, k)| **k == c) {
                if comma {
                    line.push(b',');
                }
                comma = true;
                line.extend_from_slice(&e.text);
            }
            line.push(b']');
        }
        line.extend_from_slice(b"}}");
        if let Some(lines) = &mut out.lines {
            lines.extend_from_slice(&line);
            lines.push(b'\n');
            out.written += 1;
        } else {
            let value = crate::json::parse(&line).expect("a result is valid JSON");
            out.push(Event {
                value,
                changed: true,
            });
        }
    }

    /// Sets one timer, for the earliest of: the first buffered event's
    /// time, the first attempt's deadline (each passed by one more).
    fn set_timer(&mut self, timers: &mut Timers) {
        let b = self.buffered.peek().map(|b| b.at.0);
        let d = self.deadlines.peek().map(|Reverse((t, _, _))| *t);
        let due = match (b, d) {
            (Some(b), Some(d)) => Some(b.min(d)),
            (b, d) => b.or(d),
        };
        if let Some(due) = due {
            let at = due.saturating_add(1);
            if self.timer.is_none_or(|t| at < t) {
                timers.set(at);
                self.timer = Some(at);
            }
        }
    }

    /// Feeds the buffered events before `watermark`, in time order, then
    /// cuts off the attempts whose deadline is before it.
    fn advance(&mut self, watermark: i64, out: &mut Emitted) {
        while let Some(first) = self.buffered.peek() {
            if first.at.0 >= watermark {
                break;
            }
            let Buffered { slot, elem, .. } = self.buffered.pop().expect("a first");
            self.feed(slot, elem, Vec::new(), true, out);
        }
        while let Some(Reverse(first)) = self.deadlines.peek() {
            if first.0 >= watermark {
                break;
            }
            let Reverse((d, key, slot)) = self.deadlines.pop().expect("a deadline");
            if self.current(slot, &key, d) {
                self.cut(slot, true, out);
            }
        }
    }

    /// Whether `slot` still holds `key`, with an attempt in progress with
    /// deadline `d`.
    fn current(&self, slot: u32, key: &Rc<[u8]>, d: i64) -> bool {
        self.keys
            .get(slot)
            .is_some_and(|k| Rc::ptr_eq(&k.key, key) && self.deadline(&k.value.attempt) == Some(d))
    }

    /// Ends the attempt in progress of the key in `slot` (cut off by
    /// `--within` when `cut`) and feeds again what it gives back, until one
    /// can go on.
    fn cut(&mut self, slot: u32, cut: bool, out: &mut Emitted) {
        let Some(k) = self.keys.get_mut(slot) else {
            return;
        };
        let mut attempt = std::mem::take(&mut k.value.attempt);
        if attempt.elems.is_empty() {
            self.put_back(slot, attempt, None, false);
            return;
        }
        // The deadline is taken off the set by the caller (or is none).
        self.open -= 1;
        let mut rest = self.end_attempt(slot, &mut attempt, cut, out).into_iter();
        match rest.next() {
            None => self.put_back(slot, attempt, None, false),
            Some(first) => {
                // The key stays held (with no attempt) while they are fed.
                self.keys.held(slot).value.attempt = attempt;
                self.feed(slot, first, rest.collect(), false, out);
            }
        }
    }

    fn apply_event(&mut self, key: &[u8], time: i64, mask: u64, text: &[u8]) {
        let seq = self.next;
        self.next += 1;
        let (slot, elem) = self.take_in(key, time, mask, text, 1);
        self.buffered.push(Buffered {
            at: (time, seq),
            slot,
            elem,
        });
    }

    /// An event of `key` as an element, and the key's slot, held (the
    /// event counted among the key's `buffered` ones by `buffered`, 0 or 1).
    fn take_in(
        &mut self,
        key: &[u8],
        time: i64,
        mask: u64,
        text: &[u8],
        buffered: usize,
    ) -> (u32, Elem) {
        let (slot, new) = self.keys.find_or_insert(key, KeyState::default);
        self.keys.held(slot).value.buffered += buffered;
        if new {
            self.bytes += key.len() as u64;
        }
        self.bytes += text.len() as u64 + ELEM_OVERHEAD;
        let elem = Elem {
            time,
            mask,
            text: text.into(),
        };
        (slot, elem)
    }
}

impl StatefulStage for PatternStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Pattern
    }

    fn expr(&self) -> &str {
        &self.expr
    }

    /// The key, the time, the classes (value i: `true` for each class i the
    /// event is in) and, for an
    /// event of some class, its JSON text (value n, after the classes).
    fn extract(
        &self,
        event: &Val,
        _side: usize,
        line: u64,
        index: Option<u32>,
        into: &mut Extracts,
    ) -> Result<(), String> {
        let mut mask = 0u64;
        for (i, (name, program)) in self.config.classes.iter().enumerate() {
            let mut truthy = false;
            program
                .run(event.clone(), |v| {
                    truthy = crate::jq::truthy(&v);
                    !truthy
                })
                .map_err(|e| format!("--def {name}: {e}"))?;
            if truthy {
                mask |= 1 << i;
            }
        }
        let key = super::key_of(&self.config.keys, "--key", event)?;
        let t = match &self.config.time {
            Some(program) => super::time_of(program, "--time", event)?,
            None => time::now(),
        };
        // As direct evaluation hands them over: each class the event is
        // in as value i (`true`), then the event's text as value n.
        let mark = into.start();
        into.write_key(&key);
        let key_end = into.key_buffer().len();
        let n = self.config.classes.len();
        for i in (0..n).filter(|i| mask & (1 << i) != 0) {
            into.push_json(i, |out| out.extend_from_slice(b"true"));
        }
        if mask != 0 {
            into.push_json(n, |out| crate::json::write_compact(out, event));
        }
        into.finish(mark, key_end, line, index, t);
        Ok(())
    }

    fn arrival_time(&self) -> bool {
        self.config.time.is_none()
    }

    fn lateness(&self) -> i64 {
        self.config.lateness
    }

    /// An attempt that holds the event started at most `--within` before
    /// it; without `--within`, no bound.
    fn holds_until(&self, _: usize, time: i64) -> Option<i64> {
        Some(time.saturating_add(self.config.within?))
    }

    fn apply(
        &mut self,
        event: &Extract,
        watermark: Option<i64>,
        timers: &mut Timers,
        _out: &mut Emitted,
    ) -> Result<(), Rejected> {
        // Value i < n: class i's value (truthy: in the class); value n: the
        // event's text.
        let n = self.config.classes.len();
        let mut mask = 0u64;
        let mut text: &[u8] = b"null";
        for (i, v) in event.values() {
            match v {
                Input::Json(t) if i == n => text = t,
                Input::Json(t) if i < n && t != b"false" && t != b"null" => mask |= 1 << i,
                Input::Int(_) | Input::Float(_) if i < n => mask |= 1 << i,
                _ => {}
            }
        }
        // An event of no class is invisible to the pattern.
        if mask == 0 {
            return Ok(());
        }
        if let Some(w) = watermark
            && event.time < w
        {
            self.counters.late += 1;
            return Err(Rejected::Late(format!(
                "late event: time {} is behind the pattern's watermark {}; the sequence of its key is taken up to there (see --lateness)",
                format_time(event.time),
                format_time(w)
            )));
        }
        self.apply_event(event.key, event.time, mask, text);
        self.set_timer(timers);
        Ok(())
    }

    fn fire(&mut self, watermark: i64, timers: &mut Timers, out: &mut Emitted) {
        self.timer = None;
        self.advance(watermark, out);
        self.set_timer(timers);
    }

    fn finish(&mut self, out: &mut Emitted) {
        self.advance(i64::MAX, out);
        // Events at i64::MAX itself.
        while let Some(Buffered { slot, elem, .. }) = self.buffered.pop() {
            self.feed(slot, elem, Vec::new(), true, out);
        }
        // The end of input passes every bound: what is left ends, in key order.
        let mut keys: Vec<(Rc<[u8]>, u32)> = (self.keys.iter())
            .map(|(i, s)| (Rc::clone(&s.key), i))
            .collect();
        keys.sort();
        for (key, slot) in keys {
            loop {
                let open = self
                    .keys
                    .get(slot)
                    .is_some_and(|k| Rc::ptr_eq(&k.key, &key) && !k.value.attempt.elems.is_empty());
                if !open {
                    break;
                }
                self.cut(slot, true, out);
            }
        }
        self.deadlines.clear();
        self.timer = None;
    }

    fn snapshot(&self) -> Json {
        let text = |b: &[u8]| Json::String(String::from_utf8_lossy(b).into_owned());
        let elem = |e: &Elem| json!([e.time, e.mask, text(&e.text)]);
        let mut keys: Vec<(&Rc<[u8]>, &KeyState)> = (self.keys.iter())
            .map(|(_, s)| (&s.key, &s.value))
            .filter(|(_, k)| !k.attempt.elems.is_empty())
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut waiting: Vec<&Buffered> = self.buffered.iter().collect();
        waiting.sort_by_key(|b| b.at);
        let buffered: Vec<Json> = (waiting.iter())
            .map(|b| {
                let key = &self.keys.get(b.slot).expect("a held key").key;
                json!([b.at.1, text(key), elem(&b.elem)])
            })
            .collect();
        let c = &self.counters;
        json!({
            "next": self.next,
            "buffered": buffered,
            "attempts": keys.iter().map(|(key, k)| json!([text(key), k.attempt.elems.iter().map(elem).collect::<Vec<_>>()])).collect::<Vec<_>>(),
            "counters": {
                "matches": c.matches,
                "timeouts": c.timeouts,
                "events_late": c.late,
                "partial_matches_peak": c.peak,
            },
        })
    }

    fn restore(&mut self, state: &Json, timers: &mut Timers) -> Result<(), String> {
        let bad = || "not the state of a pattern".to_string();
        let elem = |j: &Json| -> Result<Elem, String> {
            let f = j.as_array().filter(|f| f.len() == 3).ok_or_else(bad)?;
            let text: Box<[u8]> = f[2].as_str().ok_or_else(bad)?.as_bytes().into();
            crate::json::validate(&text).map_err(|_| bad())?;
            Ok(Elem {
                time: f[0].as_i64().ok_or_else(bad)?,
                mask: f[1].as_u64().ok_or_else(bad)?,
                text,
            })
        };
        let mut buffered = Vec::new();
        for b in state["buffered"].as_array().ok_or_else(bad)? {
            let f = b.as_array().filter(|f| f.len() == 3).ok_or_else(bad)?;
            let seq = f[0].as_u64().ok_or_else(bad)?;
            let key = f[1].as_str().ok_or_else(bad)?.to_string();
            buffered.push((seq, key, elem(&f[2])?));
        }
        let mut attempts = Vec::new();
        for a in state["attempts"].as_array().ok_or_else(bad)? {
            let f = a.as_array().filter(|f| f.len() == 2).ok_or_else(bad)?;
            let key = f[0].as_str().ok_or_else(bad)?.to_string();
            let elems = (f[1].as_array().ok_or_else(bad)?.iter())
                .map(elem)
                .collect::<Result<Vec<_>, _>>()?;
            attempts.push((key, elems));
        }
        let c = &state["counters"];
        let count = |name: &str| c[name].as_u64().ok_or_else(bad);
        let counters = Counters {
            matches: count("matches")?,
            timeouts: count("timeouts")?,
            late: count("events_late")?,
            peak: count("partial_matches_peak")?,
        };
        let next = state["next"].as_u64().ok_or_else(bad)?;
        self.keys.clear();
        self.buffered.clear();
        self.deadlines.clear();
        self.open = 0;
        self.timer = None;
        self.bytes = 0;
        // The attempts in progress first: fed again, they take the same
        // course and emit nothing (each was going on).
        let mut none = Emitted::default();
        for (key, elems) in attempts {
            for e in elems {
                let (slot, e) = self.take_in(key.as_bytes(), e.time, e.mask, &e.text, 0);
                self.feed(slot, e, Vec::new(), false, &mut none);
            }
        }
        for (seq, key, e) in buffered {
            self.next = seq;
            self.apply_event(key.as_bytes(), e.time, e.mask, &e.text);
        }
        self.next = next;
        self.counters = counters;
        self.set_timer(timers);
        Ok(())
    }

    fn counters(&self) -> StateStats {
        let c = &self.counters;
        StateStats {
            counters: vec![
                ("matches", c.matches),
                ("timeouts", c.timeouts),
                ("partial_matches", self.open),
                ("partial_matches_peak", c.peak),
                ("events_late", c.late),
                ("keys", self.keys.len() as u64),
                ("state_bytes", self.bytes),
            ],
            details: Vec::new(),
            summary: String::new(),
        }
    }

    fn summary(&self, c: &StateStats) -> String {
        let mut summary = format!(
            "{} matches, {} timeouts, {} late",
            c.get("matches"),
            c.get("timeouts"),
            c.get("events_late"),
        );
        let keys = c.get("keys");
        if keys > 0 {
            let bytes = c.get("state_bytes");
            summary.push_str(&format!(
                ", {} partial matches open, {keys} keys held in about {bytes} bytes",
                c.get("partial_matches")
            ));
        }
        summary
    }

    fn notes(&self, c: &StateStats) -> Vec<String> {
        match c.get("events_late") {
            0 => Vec::new(),
            1 => vec!["1 event came too late to be matched; see --lateness".into()],
            n => vec![format!(
                "{n} events came too late to be matched; see --lateness"
            )],
        }
    }
}
