#!/usr/bin/env python3
"""Independent reference implementation of evq's interval join (`--join FILE`),
plus a generator of test data for it (Python 3, standard library only).

It is written for clarity, not speed: it reads both sides whole, merges them
as the spec says, and keeps the held events of each side in plain dicts per
key. tests/it/join.rs runs it next to evq and compares the outputs byte for
byte.

Usage:
    python3 tests/join_reference.py join LEFT RIGHT --key PATH --time PATH
        [--join-key PATH] [--join-time PATH] --within [LOWER..]UPPER
        [--join-type inner|left|right|full] [--lateness DUR]
        [--late FILE] [--stats]
    python3 tests/join_reference.py gen --seed N --left FILE --right FILE
        [--left-events N] [--right-events N] [--keys K] [--lateness DUR]
        [--late-events N] [--right-key PATH] [--right-time PATH]
        [--mixed-times]
    python3 tests/join_reference.py selftest

join: LEFT is the main input (evq's FILE arguments), RIGHT the --join FILE
(either may be gzip-compressed; zstd is not in the standard library).
PATH is a simple path: `.` (the event), `.a`, `.a.b`; on null it yields
null, on anything but an object or null it is an error. DUR is an integer
and one of ms, s, m, h, d; in --within it may be negative, and
`--within UPPER` means `-UPPER..UPPER`.

Standard output gets exactly the lines evq should write. `--late FILE`
writes one line per late event, `SIDE LINE` (SIDE is left or right, LINE the
1-based line of the event in its file), in the order they were taken.
`--stats` writes one JSON line to standard error:
    {"pairs": N, "unmatched_left": N, "unmatched_right": N, "events_late": N,
     "late": [[SIDE, LINE], ...], "failed": [[SIDE, LINE, MESSAGE], ...],
     "left_events": N, "right_events": N, "keys": N}
(left_events/right_events: the events of each side that took part in the
merge, late ones included; keys: distinct keys held at the end, always 0).
Exit status 0, 2 for a usage error, 4 for an unreadable file.

Rules implemented (the spec of evq's join stage):

* A line is an event; blank lines (and a CR before the newline, a BOM at the
  start) are skipped but counted. A line that is not JSON, or whose key or
  time path fails, or whose time is not a time, is FAILED: it is listed in
  "failed" and takes no part in the join. Times are read as the window stage
  reads them (tests/window_reference.py: epoch seconds/ms/us/ns numbers or
  RFC 3339 strings, floored to whole milliseconds).
* Keys are equal when their canonical JSON texts (object keys sorted) are
  equal; a null key (or a missing field) pairs with nothing.
* Sequence A: the left events in file order; B: the right events in file
  order. Merge: take the head of A or B with the smaller time, A's on equal
  times; when one is exhausted, the rest of the other.
* Side watermark: (greatest time of the side's events applied, late ones
  excluded) - lateness; none before the side's first event is applied;
  +infinity once the side's last event has been taken (from the start for a
  side with no events). W = min of both; undefined while either has none.
* Taking e (side s, key k, time t):
  1. W defined and t < W: late (listed, counted); nothing else happens to
     e. If e was the last event of its sequence, its side still becomes
     +infinity ("from the moment its last event is taken") and step 5 runs.
     This cannot change the output: while the other side has events left, a
     late last event's side never held the smaller watermark (so W does not
     move), and when the other side is exhausted too, everything is released
     at once anyway.
  2. For each held event b of the other side with key k (k not null), in
     the order they were taken: if LOWER <= tR - tL <= UPPER, emit
     {"left":L,"right":R}; mark both matched.
  3. Hold e with deadline t + UPPER (left) or t - LOWER (right).
  4. Update the side's greatest time; if e was the last of its sequence,
     the side becomes +infinity; recompute W.
  5. Release every held event with deadline < W, in (deadline, taken order)
     order; one never matched is counted unmatched for its side, and emitted
     ({"left":L,"right":null} or {"left":null,"right":R}) when its side is
     outer (left: left/full; right: right/full).
* At the end everything still held is released as in step 5.
* Events are written as compact JSON in their input key order
  (json.dumps(v, separators=(",", ":"), ensure_ascii=False)).

gen: writes LEFT (orders: {"order_id","ts","n","note"}) and RIGHT (payments:
{"order_id","ts","amount","n"}, or the key/time at --right-key/--right-time)
for a seed. Keys: K shared keys "k0".."k{K-1}", a few keys on one side only,
integer keys, null and missing keys. Times: epoch seconds starting at
2026-11-02T08:00:00Z, advancing by 0-30 s per event on each side (0 often,
and all in whole seconds, so equal times across sides are common), some moved back by up to --lateness (never
late), --late-events moved back 30-60 minutes (late, as far as W allows);
with --mixed-times some times are RFC 3339 strings or epoch milliseconds.
"""

import gzip
import heapq
import json
import os
import random
import re
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from window_reference import Failed, canonical, dumps, get_path, parse_path, rfc3339, time_ms  # noqa: E402

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
JOIN_TYPES = ("inner", "left", "right", "full")
LEFT, RIGHT = 0, 1
SIDES = ("left", "right")
INF = float("inf")


class Usage(Exception):
    pass


# --------------------------------------------------------------------------
# Arguments

def parse_duration(text, signed=False):
    m = re.fullmatch(r"(-?)(\d+)(ms|s|m|h|d)", text)
    if not m or (m.group(1) and not signed):
        raise Usage(f"bad duration: {text!r}")
    ms = int(m.group(2)) * UNITS[m.group(3)]
    return -ms if m.group(1) else ms


def parse_within(text):
    """(LOWER, UPPER) in ms from `LOWER..UPPER` or `UPPER` (= -UPPER..UPPER)."""
    if ".." in text:
        lo, _, hi = text.partition("..")
        lower, upper = parse_duration(lo, signed=True), parse_duration(hi, signed=True)
    else:
        upper = parse_duration(text, signed=True)
        lower = -upper
    if lower > upper:
        raise Usage(f"--within {text}: LOWER > UPPER")
    return lower, upper


def take_options(argv, spec):
    """Parses `--name VALUE` / `--flag` options; spec maps name -> default
    (a bool default marks a flag). Returns (options, positionals)."""
    opts = dict(spec)
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            pos.append(a)
            i += 1
            continue
        name, eq, value = a[2:].partition("=")
        if name not in spec:
            raise Usage(f"unknown option --{name}")
        if isinstance(spec[name], bool):
            opts[name] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise Usage(f"--{name} needs a value")
            value = argv[i + 1]
            i += 1
        opts[name] = value
        i += 1
    return opts, pos


# --------------------------------------------------------------------------
# Reading a side

class Event:
    """One event of one side that takes part in the merge."""

    def __init__(self, side, line, key, t, text):
        self.side = side
        self.line = line
        self.key = key  # canonical JSON text, or None for a null key
        self.t = t  # ms
        self.text = text  # compact JSON as evq writes it
        self.taken = None  # position in the merged order
        self.deadline = None
        self.matched = False


def read_lines(path):
    """The file's lines (decompressed if gzip), as bytes, without newlines."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


EXACT = json.JSONDecoder(parse_float=Decimal)  # numbers as written, for times


def read_side(path, side, key_path, time_path, failed):
    """The side's events in file order; failed lines go to `failed`."""
    events = []
    for lineno, raw in enumerate(read_lines(path), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise Failed(f"invalid UTF-8: {e}")
            try:
                value = json.loads(line)
                exact = EXACT.decode(line)
            except ValueError as e:
                raise Failed(f"invalid JSON: {e}")
            key = get_path(value, key_path)
            t = time_ms(get_path(exact, time_path))
        except Failed as e:
            failed.append([SIDES[side], lineno, str(e)])
            continue
        events.append(Event(side, lineno, None if key is None else canonical(key), t, dumps(value)))
    return events


# --------------------------------------------------------------------------
# The join

class Join:
    """The join's state while the merged events are taken one by one."""

    def __init__(self, lower, upper, join_type, lateness, sizes):
        self.lower, self.upper = lower, upper
        self.outer = (join_type in ("left", "full"), join_type in ("right", "full"))
        self.lateness = lateness
        self.remaining = list(sizes)  # events of each side not taken yet
        self.greatest = [None, None]  # greatest time applied per side
        # held[side][key] = {taken: Event}: insertion order is taken order.
        self.held = ({}, {})
        self.deadlines = []  # heap of (deadline, taken, Event), all held events
        self.taken = 0
        self.out = []
        self.late = []
        self.pairs = 0
        self.unmatched = [0, 0]

    def side_watermark(self, side):
        if self.remaining[side] == 0:
            return INF
        if self.greatest[side] is None:
            return None
        return self.greatest[side] - self.lateness

    def watermark(self):
        a, b = self.side_watermark(LEFT), self.side_watermark(RIGHT)
        if a is None or b is None:
            return None
        return min(a, b)

    def emit(self, left, right):
        self.out.append('{"left":%s,"right":%s}' % (left or "null", right or "null"))

    def take(self, e):
        w = self.watermark()
        e.taken = self.taken
        self.taken += 1
        self.remaining[e.side] -= 1  # the side is +infinity if e was its last
        if w is not None and e.t < w:
            self.late.append([SIDES[e.side], e.line])
            self.release(self.watermark())
            return
        other = 1 - e.side
        if e.key is not None:
            for b in self.held[other].get(e.key, {}).values():
                left, right = (e, b) if e.side == LEFT else (b, e)
                if self.lower <= right.t - left.t <= self.upper:
                    self.emit(left.text, right.text)
                    self.pairs += 1
                    left.matched = right.matched = True
        e.deadline = e.t + self.upper if e.side == LEFT else e.t - self.lower
        heapq.heappush(self.deadlines, (e.deadline, e.taken, e))
        if e.key is not None:
            self.held[e.side].setdefault(e.key, {})[e.taken] = e
        g = self.greatest[e.side]
        self.greatest[e.side] = e.t if g is None else max(g, e.t)
        self.release(self.watermark())

    def release(self, w):
        while self.deadlines and w is not None and self.deadlines[0][0] < w:
            _, _, e = heapq.heappop(self.deadlines)
            if e.key is not None:
                bucket = self.held[e.side][e.key]
                del bucket[e.taken]
                if not bucket:
                    del self.held[e.side][e.key]
            if not e.matched:
                self.unmatched[e.side] += 1
                if self.outer[e.side]:
                    if e.side == LEFT:
                        self.emit(e.text, None)
                    else:
                        self.emit(None, e.text)

    def keys(self):
        return len(set(self.held[LEFT]) | set(self.held[RIGHT]))


def merged(a, b):
    """A and B merged: the smaller time first, A's on equal times."""
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and a[i].t <= b[j].t):
            yield a[i]
            i += 1
        else:
            yield b[j]
            j += 1


def run_join(left_path, right_path, opts):
    """Returns (output lines, summary dict)."""
    key = parse_path(opts["key"])
    time = parse_path(opts["time"])
    join_key = parse_path(opts["join-key"]) if opts["join-key"] else key
    join_time = parse_path(opts["join-time"]) if opts["join-time"] else time
    lower, upper = parse_within(opts["within"])
    if opts["join-type"] not in JOIN_TYPES:
        raise Usage(f"bad --join-type {opts['join-type']!r}")
    lateness = parse_duration(opts["lateness"])
    failed = []
    a = read_side(left_path, LEFT, key, time, failed)
    b = read_side(right_path, RIGHT, join_key, join_time, failed)
    join = Join(lower, upper, opts["join-type"], lateness, (len(a), len(b)))
    for e in merged(a, b):
        join.take(e)
    join.release(INF)
    summary = {
        "pairs": join.pairs,
        "unmatched_left": join.unmatched[LEFT],
        "unmatched_right": join.unmatched[RIGHT],
        "events_late": len(join.late),
        "late": join.late,
        "failed": failed,
        "left_events": len(a),
        "right_events": len(b),
        "keys": join.keys(),
    }
    return join.out, summary


JOIN_OPTIONS = {"key": None, "time": None, "join-key": None, "join-time": None,
                "within": None, "join-type": "inner", "lateness": "0s",
                "late": None, "stats": False}


def cmd_join(argv):
    opts, pos = take_options(argv, JOIN_OPTIONS)
    if len(pos) != 2:
        raise Usage("join needs LEFT and RIGHT files")
    for name in ("key", "time", "within"):
        if opts[name] is None:
            raise Usage(f"--{name} is required")
    lines, summary = run_join(pos[0], pos[1], opts)
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()
    if opts["late"]:
        with open(opts["late"], "w") as f:
            for side, line in summary["late"]:
                f.write(f"{side} {line}\n")
    if opts["stats"]:
        print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------
# Generator

T0 = 1793606400  # 2026-11-02T08:00:00Z
STEPS = (0, 0, 0, 1, 2, 3, 5, 8, 13, 20, 30)  # seconds between events of a side


def set_path(obj, path, value):
    for field in path[:-1]:
        obj = obj.setdefault(field, {})
    obj[path[-1]] = value


def time_value(rng, seconds, mixed):
    """A time of whole seconds, written as seconds, RFC 3339 or ms."""
    if mixed:
        r = rng.random()
        if r < 0.15:
            return rfc3339(seconds * 1000)
        if r < 0.3:
            return seconds * 1000
    return seconds


def gen_times(rng, n, lateness_s, late_events):
    """n times in whole seconds: increasing by 0-30 s (0 often), some moved
    back by up to lateness_s, late_events of them moved back 30-60 minutes."""
    clock = T0 + rng.randrange(0, 3)
    times = []
    for _ in range(n):
        clock += rng.choice(STEPS)
        t = clock
        if lateness_s and rng.random() < 0.2:
            t -= rng.randint(0, lateness_s)
        times.append(t)
    for i in rng.sample(range(n // 4, n), min(late_events, max(0, n - n // 4))):
        times[i] -= rng.randint(1800, 3600)
    return times


def gen_key(rng, keys, side):
    r = rng.random()
    if r < 0.05:
        return ("missing",)
    if r < 0.1:
        return None
    if r < 0.15:
        return f"only-{side}-{rng.randrange(3)}"
    if r < 0.2:
        # An integer key: 1 and "1" are different keys.
        return rng.randrange(3)
    if r < 0.22:
        return str(rng.randrange(3))
    return f"k{rng.randrange(keys)}"


def cmd_gen(argv):
    opts, pos = take_options(argv, {
        "seed": None, "left": None, "right": None, "left-events": "300",
        "right-events": "300", "keys": "6", "lateness": "0s", "late-events": "3",
        "right-key": ".order_id", "right-time": ".ts", "mixed-times": False})
    if pos or opts["seed"] is None or not opts["left"] or not opts["right"]:
        raise Usage("gen --seed N --left FILE --right FILE [options]")
    rng = random.Random(int(opts["seed"]))
    keys = int(opts["keys"])
    lateness_s = parse_duration(opts["lateness"]) // 1000
    late_events = int(opts["late-events"])
    rkey, rtime = parse_path(opts["right-key"]), parse_path(opts["right-time"])
    if not rkey or not rtime:
        raise Usage("--right-key and --right-time must name a field")
    mixed = opts["mixed-times"]
    notes = ["", "café", "naïve ✓", "a\"b", "x/y"]

    with open(opts["left"], "w", encoding="utf-8") as f:
        for n, t in enumerate(gen_times(rng, int(opts["left-events"]), lateness_s, late_events)):
            ev = {}
            k = gen_key(rng, keys, "left")
            if k != ("missing",):
                ev["order_id"] = k
            ev["ts"] = time_value(rng, t, mixed)
            ev["n"] = n
            ev["note"] = rng.choice(notes)
            f.write(dumps(ev) + "\n")
    with open(opts["right"], "w", encoding="utf-8") as f:
        for n, t in enumerate(gen_times(rng, int(opts["right-events"]), lateness_s, late_events)):
            ev = {}
            k = gen_key(rng, keys, "right")
            if k != ("missing",):
                set_path(ev, rkey, k)
            set_path(ev, rtime, time_value(rng, t, mixed))
            ev["amount"] = rng.randrange(1, 500)
            ev["n"] = n
            f.write(dumps(ev) + "\n")
    return 0


# --------------------------------------------------------------------------
# Self test: hand-computed cases

def check(name, left, right, args, want_lines, **want):
    """Runs the join on `left`/`right` (lists of lines) and asserts the
    output lines and the summary's fields in `want`."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        lp, rp = os.path.join(d, "left.ndjson"), os.path.join(d, "right.ndjson")
        for path, lines in ((lp, left), (rp, right)):
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
        opts, pos = take_options(args, JOIN_OPTIONS)
        assert not pos, pos
        lines, summary = run_join(lp, rp, opts)
    assert lines == want_lines, f"{name}: output\n  got:  {lines}\n  want: {want_lines}"
    for k, v in want.items():
        assert summary[k] == v, f"{name}: {k} is {summary[k]!r}, want {v!r}"


def ev(key, t, **more):
    return dumps({"k": key, "t": t, **more})


def pair(left, right):
    return '{"left":%s,"right":%s}' % (left or "null", right or "null")


def cmd_selftest(argv):
    if argv:
        raise Usage("selftest takes no arguments")
    base = ["--key", ".k", "--time", ".t"]  # times below are epoch seconds

    # Durations and bounds.
    assert parse_within("10m") == (-600_000, 600_000)
    assert parse_within("0s..10m") == (0, 600_000)
    assert parse_within("-5m..-1m") == (-300_000, -60_000)
    assert parse_within("250ms..1h") == (250, 3_600_000)
    assert parse_within("0s..0s") == (0, 0)
    for bad in ("10m..0s", "-1m..-2m", "10", "abc", "5m..", "..5m", "1m..2m..3m", "-5m", "5 m", ""):
        try:
            parse_within(bad)
        except Usage:
            continue
        raise AssertionError(f"--within {bad} should be refused")

    # Inner join; the bound holds at both ends; a new event's pairs come in
    # the order its partners were taken.
    l1, l2 = ev("a", 100), ev("a", 200)
    r1, r2, r3, r4 = ev("a", 100), ev("a", 160), ev("a", 700), ev("a", 701)
    # Merged: l1 r1 (equal times: left first) r2 l2 r3 r4. r1 is 0 s after
    # l1, r2 60 s; l2 comes after r1, r2 (-100 s, -40 s: no); r3 is 600 s
    # after l1 (the upper end) and 500 s after l2; r4 601 s (no) and 501 s.
    check("inner, inclusive", [l1, l2], [r1, r2, r3, r4], base + ["--within", "0s..10m"],
          [pair(l1, r1), pair(l1, r2), pair(l1, r3), pair(l2, r3), pair(l2, r4)],
          pairs=5, unmatched_left=0, unmatched_right=0, events_late=0, keys=0)

    # Outer joins: unmatched events come out when released, by deadline.
    la, lb, lc = ev("a", 0), ev("b", 10), ev("c", 20)
    rb, rz = ev("b", 15), ev("z", 2000)
    # Merged: la lb rb lc rz. Deadlines (0s..1m): la 60, lb 70, lc 80, rb 15,
    # rz 2000. rb pairs with lb. After lc the left side is exhausted (+inf),
    # W = 15; after rz both are: everything is released, rb la lb lc rz.
    for join_type, lines in (
            ("left", [pair(lb, rb), pair(la, None), pair(lc, None)]),
            ("right", [pair(lb, rb), pair(None, rz)]),
            ("full", [pair(lb, rb), pair(la, None), pair(lc, None), pair(None, rz)]),
            ("inner", [pair(lb, rb)])):
        check(f"{join_type} join", [la, lb, lc], [rb, rz],
              base + ["--within", "0s..1m", "--join-type", join_type], lines,
              pairs=1, unmatched_left=2, unmatched_right=1)

    # Negative bounds: right events before left ones. A right event's
    # deadline is t - LOWER = t + 300, a left one's t + UPPER = t - 60.
    l1 = ev("a", 1000)
    r1, r2, r3, r4 = ev("a", 690), ev("a", 700), ev("a", 940), ev("a", 941)
    # Merged: r1 r2 r3 r4 (W undefined: no left event yet), then l1: tR - tL
    # is -310 (no), -300, -60 (yes), -59 (no). Both sides exhausted: release
    # by deadline l1 940, r1 990, r2 1000, r3 1240, r4 1241.
    check("-5m..-1m", [l1], [r1, r2, r3, r4], base + ["--within", "-5m..-1m", "--join-type", "full"],
          [pair(l1, r2), pair(l1, r3), pair(None, r1), pair(None, r4)],
          pairs=2, unmatched_left=0, unmatched_right=2)

    # Equal times: the left event is taken first and pairs with the right one
    # when that is taken (tR - tL = 0).
    l1, r1 = ev("a", 50, side="L"), ev("a", 50, side="R")
    check("equal times", [l1], [r1], base + ["--within", "2m"], [pair(l1, r1)], pairs=1)
    check("equal times, 0s..0s", [l1], [r1], base + ["--within", "0s..0s"], [pair(l1, r1)])
    check("equal times, 1s..2s", [l1], [r1], base + ["--within", "1s..2s"], [], pairs=0)

    # Null and missing keys never pair (and are held and released like others).
    ln, lm = ev(None, 10), dumps({"t": 10})
    rn, rm = ev(None, 10), dumps({"t": 10, "x": 1})
    check("null keys", [ln, lm], [rn, rm], base + ["--within", "1m", "--join-type", "full"],
          [pair(ln, None), pair(lm, None), pair(None, rn), pair(None, rm)],
          pairs=0, unmatched_left=2, unmatched_right=2)
    # Keys compare as canonical JSON: object key order does not matter; 1 and
    # "1" differ.
    lo, li = dumps({"k": {"a": 1, "b": 2}, "t": 10}), ev(1, 10)
    ro, rs = dumps({"k": {"b": 2, "a": 1}, "t": 11}), ev("1", 12)
    check("canonical keys", [lo, li], [ro, rs], base + ["--within", "1m", "--join-type", "full"],
          [pair(lo, ro), pair(li, None), pair(None, rs)])

    # A late event. A = l1 l2 l3, B = r1 r2; merged: l1(100) r1(150) l2(200)
    # l3(130) r2(300). Before l3, W = min(200, 150) = 150 > 130: late.
    l1, l2, l3 = ev("a", 100), ev("a", 200), ev("a", 130)
    r1, r2 = ev("a", 150), ev("a", 300)
    check("late left event", [l1, l2, l3], [r1, r2], base + ["--within", "0s..2m"],
          [pair(l1, r1), pair(l2, r2)], late=[["left", 3]], events_late=1, pairs=2)
    # With --lateness 30s, W = min(170, 120) = 120 before l3: not late; it
    # pairs with r1 (20 s), and r2 pairs with l2 (100 s) but not l1 (200 s)
    # nor l3 (170 s).
    check("within lateness", [l1, l2, l3], [r1, r2], base + ["--within", "0s..2m", "--lateness", "30s"],
          [pair(l1, r1), pair(l3, r1), pair(l2, r2)], late=[], pairs=3)
    # A late right event: merged l1(100) r1(400) r2(50) r3(450) l2(500);
    # before r2 W = min(100, 400) = 100 > 50.
    l1, l2 = ev("a", 100), ev("b", 500)
    r1, r2, r3 = ev("a", 400), ev("a", 50), ev("b", 450)
    check("late right event", [l1, l2], [r1, r2, r3], base + ["--within", "10m", "--join-type", "full"],
          [pair(l1, r1), pair(l2, r3)], late=[["right", 2]], pairs=2, unmatched_left=0, unmatched_right=0)

    # Release timing: an unmatched event comes out as soon as W passes its
    # deadline, before the pairs of events taken later. Merged: l1(0) r1(100)
    # l2(200) r2(200). After l2 (left exhausted) W = 100 > 60, l1's deadline.
    l1, l2 = ev("x", 0), ev("a", 200)
    r1, r2 = ev("q", 100), ev("a", 200)
    check("released before later pairs", [l1, l2], [r1, r2],
          base + ["--within", "0s..1m", "--join-type", "left"],
          [pair(l1, None), pair(l2, r2)], pairs=1, unmatched_left=1, unmatched_right=1)

    # A released event cannot pair any more. l1 (deadline 60); r0 at 61 makes
    # W = min(+inf, 61) = 61: l1 is released; r1 at 60 is then late.
    l1 = ev("a", 0)
    r0, r1 = ev("z", 61), ev("a", 60)
    check("released cannot pair", [l1], [r0, r1], base + ["--within", "0s..1m", "--join-type", "full"],
          [pair(l1, None), pair(None, r0)], late=[["right", 2]], pairs=0)

    # A side with no events is exhausted from the start.
    check("empty right side", [ev("a", 0), ev("a", 100)], [],
          base + ["--within", "0s..1m", "--join-type", "left"],
          [pair(ev("a", 0), None), pair(ev("a", 100), None)], unmatched_left=2, right_events=0)
    check("empty left side", [], [ev("a", 0)], base + ["--within", "0s..1m", "--join-type", "full"],
          [pair(None, ev("a", 0))], unmatched_right=1, left_events=0)

    # Several matches per key, keys interleaved. Merged: L0(10) L1(10) R0(15)
    # L2(20) R1(20) R2(25) (L2 before R1: equal times). --within 10s: R0 pairs
    # with L0 (5); L2 with R0 (-5); R1 with L1 (10); R2 with L2 (5), not L0 (15).
    L = [ev("a", 10, i=0), ev("b", 10, i=1), ev("a", 20, i=2)]
    R = [ev("a", 15, j=0), ev("b", 20, j=1), ev("a", 25, j=2)]
    check("several matches", L, R, base + ["--within", "10s"],
          [pair(L[0], R[0]), pair(L[2], R[0]), pair(L[1], R[1]), pair(L[2], R[2])], pairs=4)

    # Failed events take no part: a time that is not a time, a path into a
    # non-object, a line that is not JSON.
    rnull = dumps({"t": 10, "k": None})
    check("failed events", [ev("a", 10), ev("a", "yesterday"), "[1]", "not json"], [ev("a", 10), rnull, "3"],
          base + ["--within", "1m", "--join-type", "full"],
          [pair(ev("a", 10), ev("a", 10)), pair(None, rnull)],
          failed=[["left", 2, "not an RFC 3339 time: 'yesterday'"], ["left", 3, "cannot index list with 'k'"],
                  ["left", 4, "invalid JSON: Expecting value: line 1 column 1 (char 0)"],
                  ["right", 3, "cannot index int with 'k'"]],
          left_events=1, right_events=2)

    # Times in every format the window stage reads, to the millisecond.
    l1 = dumps({"k": "a", "t": "2026-11-02T08:00:00Z"})
    r1 = dumps({"k": "a", "t": 1793606400250})  # 250 ms later, in ms
    r2 = dumps({"k": "a", "t": "2026-11-02T09:00:00.250+01:00"})  # the same instant
    check("time formats", [l1], [r1, r2], base + ["--within", "250ms..250ms"], [pair(l1, r1), pair(l1, r2)])
    check("time formats, 249ms", [l1], [r1, r2], base + ["--within", "0s..249ms"], [])

    # Late events in the middle and at the end of a side. Merged: l1(0)
    # l2(10) r1(100) r2(5) r3(200); after r1, W = 100 releases l1 and l2;
    # r2 is late.
    l1, l2 = ev("a", 0), ev("b", 10)
    r1, r2, r3 = ev("q", 100), ev("a", 5), ev("a", 200)
    check("late in the middle", [l1, l2], [r1, r2, r3], base + ["--within", "0s..1m", "--join-type", "full"],
          [pair(l1, None), pair(l2, None), pair(None, r1), pair(None, r3)], late=[["right", 2]])
    # Merged: l1(0) r1(60) l2(100) l3(10) r2(400). Before l3 W = min(100, 60)
    # = 60: l3, the last left event, is late; W stays 60 (right's); r2 then
    # releases everything: l1 (60) r1 (60, taken after l1) l2 (160) r2.
    l1, l2, l3 = ev("a", 0), ev("b", 100), ev("c", 10)
    r1, r2 = ev("c", 60), ev("c", 400)
    check("last event late", [l1, l2, l3], [r1, r2], base + ["--within", "0s..1m", "--join-type", "full"],
          [pair(l1, None), pair(None, r1), pair(l2, None), pair(None, r2)], late=[["left", 3]])
    # --lateness 10s: merged l1(0) r1(30) r2(5) l2(100); W before r2 is
    # min(-10, 20) = -10: not late, pairs with l1.
    l1, l2 = ev("a", 0), ev("a", 100)
    r1, r2 = ev("a", 30), ev("a", 5)
    check("lateness, not late", [l1, l2], [r1, r2], base + ["--within", "0s..2m", "--lateness", "10s"],
          [pair(l1, r1), pair(l1, r2)], late=[])

    # Left and right paths differ (--join-key / --join-time).
    l1 = dumps({"k": 7, "t": 100})
    r1 = dumps({"data": {"id": 7}, "at": 160})
    check("join-key and join-time", [l1], [r1],
          base + ["--join-key", ".data.id", "--join-time", ".at", "--within", "0s..1m"], [pair(l1, r1)])

    # Output keeps each event's key order, compactly, non-ASCII as is.
    l1 = '{ "z": 1, "k": "a", "t": 5, "s": "café" }'
    r1 = '{"t":5,"k":"a","v":[1, 2]}'
    check("compact output", [l1], [r1], base + ["--within", "0s"],
          ['{"left":{"z":1,"k":"a","t":5,"s":"café"},"right":{"t":5,"k":"a","v":[1,2]}}'])

    # Generated data: deterministic per seed, and the join runs on it.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        files = []
        for run in range(2):
            lp, rp = os.path.join(d, f"l{run}"), os.path.join(d, f"r{run}")
            cmd_gen(["--seed", "7", "--left", lp, "--right", rp, "--lateness", "1m", "--mixed-times"])
            files.append((open(lp, "rb").read(), open(rp, "rb").read()))
        assert files[0] == files[1], "gen is deterministic"
        opts, _ = take_options(["--key", ".order_id", "--time", ".ts", "--within", "0s..10m",
                                "--lateness", "1m", "--join-type", "full"], JOIN_OPTIONS)
        lines, summary = run_join(lp, rp, opts)
        assert summary["pairs"] > 100 and summary["unmatched_left"] > 0 and summary["unmatched_right"] > 0, summary
        assert summary["events_late"] > 0 and not summary["failed"], summary
        assert len(lines) == summary["pairs"] + summary["unmatched_left"] + summary["unmatched_right"]

    print("join_reference.py selftest: ok")
    return 0


# --------------------------------------------------------------------------

COMMANDS = {"join": cmd_join, "gen": cmd_gen, "selftest": cmd_selftest}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        print(f"join_reference.py: the first argument is one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (Usage, ValueError) as e:
        print(f"join_reference.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"join_reference.py: {e}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
