#!/usr/bin/env python3
"""Independent reference implementation of evq's window stage (Python 3, stdlib only).

It is deliberately simple and slow: it keeps every event of every open window
and key, and recomputes each aggregate from that list when the window is
emitted. tests/it/windows.rs runs it next to evq and compares the results.

Usage:
    python3 tests/window_reference.py (--window SPEC | --group)
        [--key PATH ...] [--time PATH] [--lateness DUR]
        --agg NAME=FUNC(PATH) ... [--bounds] < input.ndjson

FUNC(PATH) is also percentile(PATH; Q) and collect(PATH; LIMIT).

PATH is a simple path: `.` (the event), `.a`, `.a.b`. On null a path yields
null; on anything but an object or null it is an error.

Results go to standard output, one compact JSON object per line. At the end
one JSON line goes to standard error:
    {"late": [LINE, ...], "failed": [LINE, ...], "aggregated": N, "emitted": N,
     "truncated": {NAME: N, ...}}
with 1-based input line numbers; "truncated" counts, per collect aggregate
that dropped values, the results in which it did. Exit status 0, or 2 for a usage error.

Rules implemented (the spec of evq's window stage):

* SPEC: tumbling:SIZE, sliding:SIZE/SLIDE, session:GAP. DUR: an integer and
  one of ms, s, m, h, d. Everything is in whole milliseconds since the epoch.
* Tumbling is sliding with SLIDE = SIZE. Windows are [start, start+SIZE) with
  start a multiple of SLIDE; an event at t is in every window with
  start <= t < start+SIZE.
* Event time (--time): a JSON number is seconds, or milliseconds from 1e11,
  microseconds from 1e14, nanoseconds from 1e17; a string is RFC 3339
  (Z or +hh:mm/-hh:mm, optional fraction). Floor to whole milliseconds; the
  number is taken as written in the JSON text (decimal, exact). Anything else
  (null, a missing field, a bool, a bad string) is unusable: the event FAILS.
* An event also FAILS when an aggregate's path cannot be read in it
  (indexing a non-object), or when sum, avg or a percentile meets a value
  that is neither a number nor null; this is decided before lateness.
* Key: the value of the --key path; an array of the values with several
  --key; no "key" field without --key. A path error makes the event fail.
  A line that is not JSON fails. Blank lines are skipped (but counted).
* Watermark: None until the first event is aggregated, then
  (greatest event time aggregated so far) - lateness.
* For each event in input order: with the watermark BEFORE this event,
  tumbling/sliding: late if the end of its earliest window <= watermark;
  session: late if t + GAP <= watermark. A late event is only recorded in
  "late". Otherwise it is added to its windows, the watermark is updated,
  and every window (of every key) with end <= watermark is emitted, sorted by
  (end, start, key in jq order). At the end of the input every remaining
  window is emitted in the same order.
* Sessions, per key: an event at t is a session [t, t+GAP); while some
  session of the same key has start <= new_end and new_start <= end, they are
  merged. window_start = earliest event time, window_end = latest + GAP.
* --group: no windows; one result per key at the end, sorted by key, without
  window_start/window_end. Lateness is ignored; first/last use --time when
  given (and arrival order otherwise).
* Output: {"window_start", "window_end", "key", NAME...} in this order;
  times as RFC 3339 UTC, "...:SSZ" on whole seconds else "...:SS.mmmZ".
* Aggregates, over the window's events in arrival order; a value of null is
  skipped by every aggregate except count:
    count            number of events (integer)
    sum              integer if every value is an integer, else float; 0 when none
    avg              float; null when none
    min, max         least/greatest in jq order; null when none
    first, last      value of the event with the smallest/greatest time
                     (ties: earliest/latest arrival); null when none
    count_distinct   number of distinct JSON texts (1 and 1.0 differ)
    p50 p90 p95 p99 percentile(PATH; Q)
                     null when none; otherwise the exact value at nearest
                     rank round(Q*(n-1)) as a float, or with --bounds
                     {"$percentile": [v[floor(Q*(n-1))], v[ceil(Q*(n-1))]]}
                     (sorted ascending, 0-based) for a tolerant comparison
    collect          array of the values in arrival order, at most LIMIT of
                     them (10000 unless collect(PATH; LIMIT)); a result with
                     more values keeps the first LIMIT and is "truncated"
"""

import datetime
import json
import math
import re
import sys
from decimal import Decimal
from fractions import Fraction

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
PERCENTILES = {"p50": "0.5", "p90": "0.9", "p95": "0.95", "p99": "0.99"}
FUNCS = {"count", "sum", "avg", "min", "max", "first", "last", "count_distinct",
         "collect", "percentile"} | set(PERCENTILES)
COLLECT_MAX = 10000
NUMERIC = {"sum", "avg", "percentile"} | set(PERCENTILES)


class Usage(Exception):
    pass


class Failed(Exception):
    pass


# --------------------------------------------------------------------------
# Parsing arguments

def parse_duration(text, allow_zero=False):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    if not m or (int(m.group(1)) == 0 and not allow_zero):
        raise Usage(f"bad duration: {text!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def parse_window(spec):
    kind, _, rest = spec.partition(":")
    if kind == "tumbling":
        size = parse_duration(rest)
        return ("sliding", size, size)
    if kind == "sliding":
        size, _, slide = rest.partition("/")
        return ("sliding", parse_duration(size), parse_duration(slide))
    if kind == "session":
        return ("session", parse_duration(rest), None)
    raise Usage(f"bad window: {spec!r}")


def parse_path(text):
    text = text.strip()
    if text == ".":
        return []
    if not re.fullmatch(r"(\.[A-Za-z_][A-Za-z0-9_]*)+", text):
        raise Usage(f"unsupported path: {text!r}")
    return text[1:].split(".")


def parse_agg(text):
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=([a-z_0-9]+)(?:\((.*)\))?", text.strip())
    if not m or m.group(2) not in FUNCS:
        raise Usage(f"bad --agg: {text!r}")
    name, func, inner = m.group(1), m.group(2), m.group(3)
    if func == "count":
        if inner not in (None, ""):
            raise Usage("count takes no expression")
        return (name, func, None, None)
    if inner is None:
        raise Usage(f"{func} needs an expression")
    q = None
    if func == "percentile":
        path, sep, qtext = inner.rpartition(";")
        if not sep:
            raise Usage("percentile(PATH; Q)")
        q = Fraction(qtext.strip())
        inner = path
    elif func in PERCENTILES:
        q = Fraction(PERCENTILES[func])
    elif func == "collect":
        # q is collect's LIMIT.
        path, sep, limit = inner.rpartition(";")
        q = COLLECT_MAX
        if sep:
            if not re.fullmatch(r"\d+", limit.strip()) or int(limit) == 0:
                raise Usage("collect(PATH; LIMIT): LIMIT is a positive integer")
            q, inner = int(limit), path
    return (name, func, parse_path(inner), q)


def parse_args(argv):
    opts = {"window": None, "group": False, "keys": [], "time": None,
            "lateness": 0, "aggs": [], "bounds": False, "truncated": {}}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--group", "--bounds"):
            opts[a[2:]] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            raise Usage(f"{a} needs a value")
        v = argv[i + 1]
        if a == "--window":
            opts["window"] = parse_window(v)
        elif a == "--key":
            opts["keys"].append(parse_path(v))
        elif a == "--time":
            opts["time"] = parse_path(v)
        elif a == "--lateness":
            opts["lateness"] = parse_duration(v, allow_zero=True)
        elif a == "--agg":
            opts["aggs"].append(parse_agg(v))
        else:
            raise Usage(f"unknown option {a}")
        i += 2
    if (opts["window"] is None) == (not opts["group"]):
        raise Usage("exactly one of --window and --group")
    if not opts["aggs"]:
        raise Usage("at least one --agg")
    if opts["window"] is not None and opts["time"] is None:
        raise Usage("the reference needs --time (arrival time is not deterministic)")
    return opts


# --------------------------------------------------------------------------
# Values

def get_path(value, path):
    for field in path:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Failed(f"cannot index {type(value).__name__} with {field!r}")
        value = value.get(field)
    return value


def is_number(v):
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def jq_order(v):
    """A sort key giving jq's order of JSON values."""
    if v is None:
        return (0,)
    if v is False:
        return (1,)
    if v is True:
        return (2,)
    if is_number(v):
        return (3, v)
    if isinstance(v, str):
        return (4, v)
    if isinstance(v, list):
        return (5, [jq_order(x) for x in v])
    if isinstance(v, dict):
        ks = sorted(v)
        return (6, ks, [jq_order(v[k]) for k in ks])
    raise TypeError(v)


def canonical(v):
    """Identity of a key (jq equality, so object key order does not matter)."""
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def dumps(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def time_ms(v):
    """Event time in whole milliseconds since the epoch, or raise Failed."""
    if is_number(v):
        d = Decimal(v) if not isinstance(v, Decimal) else v
        a = abs(d)
        if a >= Decimal("1e17"):
            ms = d / Decimal(1_000_000)
        elif a >= Decimal("1e14"):
            ms = d / Decimal(1000)
        elif a >= Decimal("1e11"):
            ms = d
        else:
            ms = d * 1000
        return math.floor(ms)
    if isinstance(v, str):
        m = RFC3339.fullmatch(v)
        if not m:
            raise Failed(f"not an RFC 3339 time: {v!r}")
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        frac = m.group(7) or ""
        ms = int((frac + "000")[:3])
        tz = m.group(8)
        try:
            dt = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc)
        except ValueError as e:
            raise Failed(str(e))
        offset = 0
        if tz not in ("Z", "z"):
            sign = 1 if tz[0] == "+" else -1
            offset = sign * (int(tz[1:3]) * 60 + int(tz[4:6])) * 60_000
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        whole = (dt - epoch) // datetime.timedelta(milliseconds=1)
        return whole + ms - offset
    raise Failed(f"unusable time: {dumps(v)}")


def rfc3339(ms):
    secs, milli = divmod(ms, 1000)
    dt = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=secs)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{milli:03d}Z" if milli else "Z")


# --------------------------------------------------------------------------
# Aggregates

def aggregate(agg, events, bounds, truncated):
    """events: list of (arrival, time, event) in arrival order; a collect
    that drops values counts one in truncated[name]."""
    name, func, path, q = agg
    if func == "count":
        return len(events)
    vals = []  # (arrival, time, value) for non-null values
    for arrival, t, ev in events:
        v = get_path(ev, path)
        if v is not None:
            vals.append((arrival, t, v))
    values = [v for _, _, v in vals]
    if func == "sum":
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return sum(values)
        total = 0.0
        for v in values:
            total += float(v)
        return total
    if func == "avg":
        if not values:
            return None
        total = 0.0
        for v in values:
            total += float(v)
        return total / len(values)
    if func in ("min", "max"):
        if not values:
            return None
        pick = min if func == "min" else max
        return pick(values, key=jq_order)
    if func == "first":
        if not vals:
            return None
        return min(vals, key=lambda x: (x[1], x[0]))[2]
    if func == "last":
        if not vals:
            return None
        return max(vals, key=lambda x: (x[1], x[0]))[2]
    if func == "count_distinct":
        return len({dumps(v) for v in values})
    if func == "collect":
        if len(values) > q:
            truncated[name] = truncated.get(name, 0) + 1
        return values[:q]
    # percentiles
    if not values:
        return None
    s = sorted(float(v) for v in values)
    rank = q * (len(s) - 1)
    if bounds:
        return {"$percentile": [s[math.floor(rank)], s[math.ceil(rank)]]}
    return s[math.floor(rank + Fraction(1, 2))]


def result(opts, start, end, key, events):
    out = {}
    if start is not None:
        out["window_start"] = rfc3339(start)
        out["window_end"] = rfc3339(end)
    if opts["keys"]:
        out["key"] = key
    for agg in opts["aggs"]:
        out[agg[0]] = aggregate(agg, events, opts["bounds"], opts["truncated"])
    return out


# --------------------------------------------------------------------------
# The simulation

def main(argv):
    try:
        opts = parse_args(argv)
    except (Usage, ValueError, ZeroDivisionError) as e:
        print(f"window_reference.py: {e}", file=sys.stderr)
        return 2

    kind, size, slide = opts["window"] if opts["window"] else (None, None, None)
    late, failed, emitted = [], [], []
    aggregated = 0
    watermark = None
    max_time = None
    # tumbling/sliding: (start, canonical key) -> [start, end, key, events]
    windows = {}
    # session: canonical key -> list of [key, events]
    sessions = {}
    # group-by: canonical key -> [key, events]
    groups = {}

    def session_bounds(events):
        ts = [t for _, t, _ in events]
        return min(ts), max(ts) + size

    def open_windows():
        """Every open window as (end, start, key, events)."""
        if kind == "sliding":
            return [(w[1], w[0], w[2], w[3]) for w in windows.values()]
        out = []
        for lst in sessions.values():
            for key, events in lst:
                start, end = session_bounds(events)
                out.append((end, start, key, events))
        return out

    def emit(limit):
        ready = [w for w in open_windows() if limit is None or w[0] <= limit]
        ready.sort(key=lambda w: (w[0], w[1], jq_order(w[2])))
        for end, start, key, events in ready:
            emitted.append(result(opts, start, end, key, events))
            if kind == "sliding":
                del windows[(start, canonical(key))]
            else:
                lst = sessions[canonical(key)]
                lst[:] = [s for s in lst if s[1] is not events]

    data = sys.stdin.buffer.read().decode("utf-8")
    if data.startswith("\ufeff"):
        data = data[1:]
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            try:
                event = json.loads(line)
                exact = json.loads(line, parse_float=Decimal)
            except ValueError as e:
                raise Failed(f"invalid JSON: {e}")
            keyvals = [get_path(event, p) for p in opts["keys"]]
            key = keyvals[0] if len(keyvals) == 1 else keyvals
            t = None
            if opts["time"] is not None:
                t = time_ms(get_path(exact, opts["time"]))
            # An event whose aggregates cannot take it fails before it
            # counts anywhere (late or not).
            for _, func, path, _ in opts["aggs"]:
                if path is None:
                    continue
                v = get_path(event, path)
                if func in NUMERIC and v is not None and not is_number(v):
                    raise Failed(f"{func}: not a number")
        except Failed:
            failed.append(lineno)
            continue
        item = (lineno, t, event)

        if kind is None:  # group-by
            groups.setdefault(canonical(key), [key, []])[1].append(item)
            aggregated += 1
            continue

        if kind == "sliding":
            first_k = (t - size) // slide + 1
            last_k = t // slide
            starts = [k * slide for k in range(first_k, last_k + 1)]
            assert all(s <= t < s + size for s in starts)
            is_late = watermark is not None and bool(starts) and starts[0] + size <= watermark
        else:
            is_late = watermark is not None and t + size <= watermark
        if is_late:
            late.append(lineno)
            continue

        aggregated += 1
        if kind == "sliding":
            for s in starts:
                w = windows.setdefault((s, canonical(key)), [s, s + size, key, []])
                w[3].append(item)
        else:
            lst = sessions.setdefault(canonical(key), [])
            new = [key, [item]]
            merged = True
            while merged:
                merged = False
                ns, ne = session_bounds(new[1])
                for other in lst:
                    os_, oe = session_bounds(other[1])
                    if ns <= oe and os_ <= ne:
                        new[1] = sorted(new[1] + other[1], key=lambda x: x[0])
                        lst.remove(other)
                        merged = True
                        break
            lst.append(new)

        max_time = t if max_time is None else max(max_time, t)
        watermark = max_time - opts["lateness"]
        emit(watermark)

    if kind is None:
        for key, events in sorted(groups.values(), key=lambda g: jq_order(g[0])):
            if opts["time"] is None:  # first/last by arrival
                events = [(a, a, ev) for a, _, ev in events]
            emitted.append(result(opts, None, None, key, events))
    else:
        emit(None)

    out = sys.stdout
    for r in emitted:
        out.write(dumps(r) + "\n")
    out.flush()
    print(dumps({"late": late, "failed": failed, "aggregated": aggregated,
                 "emitted": len(emitted), "truncated": opts["truncated"]}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
