#!/usr/bin/env python3
"""An independent reference for evq's pattern stage (--def, --match).

It implements the semantics the README states, by another road than evq's
position automaton: the pattern is parsed into a term and each candidate
sequence is tested with Brzozowski derivatives.

    pattern_reference.py match FILE PATTERN [--within MS] [--timeouts] [--key]
        Reads FILE: one JSON per line, {"key": K, "t": MS, "c": [CLASS, ...]}
        (classes named c0, c1, ... in definition order). Prints each result
        as {"key", "start", "end", "status", "n": [[CLASS, T], ...]} sorted.
    pattern_reference.py matchmany FILE PATTERNS [options as match]
        Each pattern of the file PATTERNS (one a line) in turn, its results
        followed by a line "--".
    pattern_reference.py normalize FILE
        evq's results in FILE in the same form, sorted.
    pattern_reference.py gen SEED N
        Prints N random events (keys, times, classes) and, on stderr, nothing.
    pattern_reference.py patterns SEED N
        Prints N random patterns over c0..c2, one a line.
Times are milliseconds; the input is already valid (no late events).
"""

import json
import random
import sys

EMPTY = ("empty",)
EPS = ("eps",)


def sym(c):
    return ("sym", c)


def cat(a, b):
    if a == EMPTY or b == EMPTY:
        return EMPTY
    if a == EPS:
        return b
    if b == EPS:
        return a
    return ("cat", a, b)


def alt(a, b):
    if a == EMPTY:
        return b
    if b == EMPTY:
        return a
    if a == b:
        return a
    return ("alt",) + tuple(sorted((a, b), key=repr))


def star(a):
    if a in (EMPTY, EPS):
        return EPS
    return ("star", a)


def nullable(r):
    k = r[0]
    if k in ("eps", "star"):
        return True
    if k in ("empty", "sym"):
        return False
    if k == "cat":
        return nullable(r[1]) and nullable(r[2])
    return nullable(r[1]) or nullable(r[2])


def empty(r):
    """Whether r's language is empty (a symbol, eps or star never are)."""
    k = r[0]
    if k == "empty":
        return True
    if k in ("eps", "sym", "star"):
        return False
    if k == "cat":
        return empty(r[1]) or empty(r[2])
    return empty(r[1]) and empty(r[2])


def deriv(r, c):
    k = r[0]
    if k in ("empty", "eps"):
        return EMPTY
    if k == "sym":
        return EPS if r[1] == c else EMPTY
    if k == "cat":
        d = cat(deriv(r[1], c), r[2])
        if nullable(r[1]):
            d = alt(d, deriv(r[2], c))
        return d
    if k == "alt":
        return alt(deriv(r[1], c), deriv(r[2], c))
    return cat(deriv(r[1], c), r)  # star


# --- parsing ---------------------------------------------------------------


def parse(text, classes):
    toks = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch.isalpha() or ch == "_":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(("name", text[i:j]))
            i = j
        elif ch == "{":
            j = text.index("}", i)
            body = text[i + 1 : j].replace(" ", "")
            if "," in body:
                lo, hi = body.split(",")
                toks.append(("count", int(lo), int(hi) if hi else None))
            else:
                toks.append(("count", int(body), int(body)))
            i = j + 1
        else:
            toks.append((ch,))
            i += 1
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def p_alt():
        r = p_cat()
        while peek() == ("|",):
            pos[0] += 1
            r = alt(r, p_cat())
        return r

    def p_cat():
        r = EPS
        while peek() is not None and peek() not in (("|",), (")",)):
            r = cat(r, p_quant(p_atom()))
        return r

    def p_atom():
        t = peek()
        pos[0] += 1
        if t == ("(",):
            r = p_alt()
            assert peek() == (")",)
            pos[0] += 1
            return r
        return sym(classes.index(t[1]))

    def repeat(r, lo, hi):
        out = EPS
        for _ in range(lo):
            out = cat(out, r)
        if hi is None:
            return cat(out, star(r))
        for _ in range(hi - lo):
            out = cat(out, alt(EPS, r))
        return out

    def p_quant(r):
        t = peek()
        if t == ("?",):
            pos[0] += 1
            return alt(EPS, r)
        if t == ("*",):
            pos[0] += 1
            return star(r)
        if t == ("+",):
            pos[0] += 1
            return cat(r, star(r))
        if t is not None and t[0] == "count":
            pos[0] += 1
            return repeat(r, t[1], t[2])
        return r

    r = p_alt()
    assert peek() is None
    return r


# --- matching --------------------------------------------------------------


def step(terms, classes):
    out = set()
    for t in terms:
        for c in classes:
            d = deriv(t, c)
            if not empty(d):
                out.add(d)
    return out


def assign(r, elems, complete):
    """Per element, the smallest class (by definition order) that still
    leaves a way for the rest (to a match's end when complete)."""
    chosen = []
    terms = {r}
    for i, e in enumerate(elems):
        for c in sorted(e["c"]):
            nxt = step(terms, [c])
            if not nxt:
                continue
            rest = nxt
            for f in elems[i + 1 :]:
                rest = step(rest, f["c"])
            if rest and (not complete or any(nullable(t) for t in rest)):
                chosen.append(c)
                terms = nxt
                break
        else:
            raise AssertionError("no way through")
    return chosen


def run(seq, r, within, timeouts):
    out = []
    i = 0
    n = len(seq)
    while i < n:
        s = i
        terms = {r}
        best = 0
        j = s
        cut = False
        while j < n:
            if within is not None and seq[j]["t"] - seq[s]["t"] > within:
                cut = True
                break
            nxt = step(terms, seq[j]["c"])
            if not nxt:
                break
            terms = nxt
            j += 1
            if any(nullable(t) for t in terms):
                best = j - s
        if j == n:
            cut = True  # the end of input passes every bound
        if best:
            out.append(("matched", seq[s : s + best]))
            i = s + best
            continue
        if cut and within is not None and j > s:
            out.append(("timeout", seq[s:j]))
        i = s + 1
    return out


def match(path, pattern, within, timeouts, keyed, events=None):
    events = events or [json.loads(l) for l in open(path)]
    nclasses = 1 + max((max(e["c"]) for e in events if e["c"]), default=0)
    classes = ["c%d" % i for i in range(max(nclasses, 3))]
    r = parse(pattern, classes)
    bykey = {}
    for idx, e in enumerate(events):
        if e["c"]:
            bykey.setdefault(json.dumps(e["key"]), []).append((e["t"], idx, e))
    results = []
    for key, items in bykey.items():
        seq = [e for _, _, e in sorted(items, key=lambda x: (x[0], x[1]))]
        for status, elems in run(seq, r, within, timeouts):
            if status == "timeout" and not timeouts:
                continue
            cs = assign(r, elems, status == "matched")
            res = {
                "start": elems[0]["t"],
                "end": elems[-1]["t"],
                "status": status,
                "n": [[classes[c], e["i"]] for c, e in zip(cs, elems)],
            }
            if keyed:
                res["key"] = json.loads(key)
            results.append(json.dumps(res, sort_keys=True, separators=(",", ":")))
    for line in sorted(results):
        print(line)


def normalize(path):
    """evq's results in the reference's form, sorted."""
    from datetime import datetime

    def ms(text):
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return round(d.timestamp() * 1000)

    out = []
    for line in open(path):
        r = json.loads(line)
        n = [(c, e["t"], e["i"]) for c, es in r["events"].items() for e in es]
        n.sort(key=lambda x: (x[1], x[2]))
        res = {
            "start": ms(r["start"]),
            "end": ms(r["end"]),
            "status": r["status"],
            "n": [[c, i] for c, _, i in n],
        }
        if "key" in r:
            res["key"] = r["key"]
        out.append(json.dumps(res, sort_keys=True, separators=(",", ":")))
    for line in sorted(out):
        print(line)


def gen(seed, n):
    rnd = random.Random(seed)
    keys = rnd.randint(1, 4)
    t = 1000
    for i in range(n):
        t += rnd.choice([0, 1, 1, 2, 3, 5, 8]) * 1000
        c = sorted(rnd.sample(range(3), rnd.choice([0, 1, 1, 1, 2])))
        # Out of order by up to 3 s, kept valid by --lateness 3s.
        jitter = rnd.choice([0, 0, 0, -1000, -2000, -3000])
        print(json.dumps({"i": i, "key": "k%d" % rnd.randrange(keys), "t": max(t + jitter, 0), "c": c}))


def patterns(seed, n):
    rnd = random.Random(seed)

    def item(depth):
        if depth < 2 and rnd.random() < 0.3:
            a = "( " + expr(depth + 1) + " )"
        else:
            a = rnd.choice(["c0", "c1", "c2"])
        q = rnd.choice(["", "", "", "?", "*", "+", "{2}", "{1,}", "{1,3}", "{2,}", "{0,2}"])
        return a + q

    def seq(depth):
        return " ".join(item(depth) for _ in range(rnd.randint(1, 3)))

    def expr(depth):
        return " | ".join(seq(depth) for _ in range(rnd.choice([1, 1, 2])))

    for _ in range(n):
        print(expr(0))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "match":
        args = sys.argv[2:]
        within = None
        if "--within" in args:
            within = int(args[args.index("--within") + 1])
        match(args[0], args[1], within, "--timeouts" in args, "--key" in args)
    elif cmd == "matchmany":
        # matchmany FILE PATTERNS [--within MS] [--timeouts] [--key]: each
        # pattern's results, then a line "--".
        args = sys.argv[2:]
        within = None
        if "--within" in args:
            within = int(args[args.index("--within") + 1])
        events = [json.loads(l) for l in open(args[0])]
        for pattern in open(args[1]).read().splitlines():
            match(None, pattern, within, "--timeouts" in args, "--key" in args, events)
            print("--")
    elif cmd == "normalize":
        normalize(sys.argv[2])
    elif cmd == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "patterns":
        patterns(int(sys.argv[2]), int(sys.argv[3]))
