#!/usr/bin/env python3
"""Interval-join benchmark: evq's `--join` against DuckDB, side by side in
one run, on the same two files, with the row counts (and the pairs) checked
equal.

    python3 benches/join.py [--orders N] [--runs R] [--evq PATH]
                            [--only NAME] [--reader auto|columns]

Input. N orders (default 1,000,000) and N payments, generated here with a
fixed seed and cached as target/bench/join-orders-N.ndjson and
join-payments-N.ndjson, both in time order:

- order: `{"order_id": I, "ts": MS, "user": "uK", "total": CENTS}`, I from
  0 to N-1, MS epoch milliseconds from 2026-11-02T00:00:00Z, increasing by
  0-172 ms (about a day for a million);
- payment: `{"order_id": I, "ts": MS, "amount": CENTS, "method": M}`: 90% of
  the orders are paid 0 to 10 minutes after the order (both ends
  included), 5% 10 to 30 minutes after (too late to pair), 5% never; the
  rest of the N payments are for order ids that do not exist (I >= N), at
  random times.

So the inner join has exactly the orders paid within 10 minutes as rows, and
the unpaid orders are the other 10% (the generator counts both; evq and
DuckDB must agree with it and with each other).

Pipelines (`--only` takes the names):

- inner: `evq --join PAYMENTS --key .order_id --time .ts --within 0s..10m
  ORDERS` against `SELECT o AS "left", p AS "right" FROM ORDERS o JOIN
  PAYMENTS p ON o.order_id = p.order_id AND p.ts BETWEEN o.ts AND o.ts +
  600000`;
- left: the same with `--join-type left` against a LEFT JOIN: every order,
  with its payment or `"right": null` (DuckDB: `CASE WHEN p.order_id IS
  NULL THEN NULL ELSE p END AS "right"`, which would be a struct of nulls);
- unpaid: `--join-type left -f '.right == null' -m .left` (the unpaid
  orders, as they were) against `SELECT o.* FROM ... LEFT JOIN ... WHERE
  p.order_id IS NULL`.

What each writes. Both do the whole job as one process from the two files
to a file of NDJSON results, one row per line: evq to standard output
(redirected to the file), `{"left": ORDER, "right": PAYMENT}` (or the order
alone for unpaid) with the events' fields as they were; DuckDB with `COPY
(query) TO FILE (FORMAT json)`, where `o AS "left"` is the order's row as a
struct, so its lines have the same shape (DuckDB's order of rows is its
own). Wall clock from spawn to exit (startup included), best of R runs
(default 1), alternating evq and DuckDB; peak RSS is the child's ru_maxrss
from os.wait4 (benches/run.py's run_once; the maximum over runs). evq runs
with its default --threads; DuckDB in `python -c` with its Python package,
default threads, no progress bar. `--reader auto` (default) has DuckDB read
with `read_ndjson_auto(FILE)`; `--reader columns` with `read_json(FILE,
columns = {...})` naming the fields (no schema sniffing).

Checks (untimed, after the runs). Row counts: evq's, DuckDB's and the
generator's must be equal. Rows: the sorted (order_id, payment ts) pairs of
both outputs must be equal (for unpaid: the sorted order ids).

The table gives both wall times, DuckDB/evq (above 1: evq is faster), peak
RSS of each, the rows, and whether they agree. Exit status 1 when a result
differs or a tool fails, 2 on bad usage.

DuckDB is found or installed as benches/aggregate.py does (this interpreter,
else a venv in target/bench/venv given `pip install duckdb`). Unless --evq
is given, evq is built with `cargo build --release`. Python 3.9+.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aggregate  # noqa: E402  benches/aggregate.py: find_duckdb_python, md_table, DUCKDB_RUNNER, sql_str
import run as bench  # noqa: E402  benches/run.py: run_once, build_evq, cargo_target_dir, ...

SEED = 42
T0_MS = 1793577600000  # 2026-11-02T00:00:00Z
WITHIN_MS = 600_000
PAID, LATE = 0.90, 0.95  # shares: paid within 10 minutes, then paid too late; the rest never


def log(msg: str) -> None:
    print(f"[join] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 1) -> None:
    print(f"join.py: {msg}", file=sys.stderr)
    sys.exit(code)


# --------------------------------------------------------------------------
# Input


@dataclass
class Data:
    orders: Path
    payments: Path
    paid: int  # orders paid within the bound: the inner join's rows
    unpaid: int  # the others: the unpaid pipeline's rows


def generate(n: int, bench_dir: Path) -> Data:
    orders = bench_dir / f"join-orders-{n}.ndjson"
    payments = bench_dir / f"join-payments-{n}.ndjson"
    meta = bench_dir / f"join-{n}.json"
    if orders.exists() and payments.exists() and meta.exists():
        log(f"using cached {orders.name}, {payments.name}")
        m = json.loads(meta.read_text())
        return Data(orders, payments, m["paid"], m["unpaid"])
    bench_dir.mkdir(parents=True, exist_ok=True)
    log(f"generating {n} orders and {n} payments into {bench_dir}")
    rng = random.Random(SEED)
    methods = ["card", "card", "card", "paypal", "transfer"]
    pays = []  # (ts, order_id, amount, method)
    paid = 0
    tmp_o = orders.with_name(f"{orders.name}.tmp-{os.getpid()}")
    tmp_p = payments.with_name(f"{payments.name}.tmp-{os.getpid()}")
    ts = T0_MS
    last = T0_MS
    with open(tmp_o, "w") as out:
        for i in range(n):
            ts += rng.randint(0, 172)
            total = rng.randint(100, 50_000)
            out.write(f'{{"order_id":{i},"ts":{ts},"user":"u{rng.randrange(50_000)}","total":{total}}}\n')
            r = rng.random()
            if r < PAID:
                pays.append((ts + rng.randint(0, WITHIN_MS), i, total, rng.choice(methods)))
                paid += 1
            elif r < LATE:
                pays.append((ts + rng.randint(WITHIN_MS + 1, 3 * WITHIN_MS), i, total, rng.choice(methods)))
        last = ts
    for k in range(n - len(pays)):
        pays.append((rng.randint(T0_MS, last), n + k, rng.randint(100, 50_000), rng.choice(methods)))
    pays.sort()
    with open(tmp_p, "w") as out:
        for ts, i, amount, method in pays:
            out.write(f'{{"order_id":{i},"ts":{ts},"amount":{amount},"method":"{method}"}}\n')
    os.replace(tmp_o, orders)
    os.replace(tmp_p, payments)
    meta.write_text(json.dumps({"paid": paid, "unpaid": n - paid}))
    return Data(orders, payments, paid, n - paid)


def generate_in_child(n: int, bench_dir: Path) -> Data:
    """generate() in a child process: the driver stays small, so that the
    tools' ru_maxrss (which starts at the driver's own peak) is exact."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import join; from pathlib import Path; "
            "join.generate(int(sys.argv[2]), Path(sys.argv[3]))")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(n), str(bench_dir)],
                   check=True)
    return generate(n, bench_dir)  # cached now


# --------------------------------------------------------------------------
# Pipelines


@dataclass
class Pipeline:
    name: str
    evq_extra: list[str]
    kind: str  # "pairs", "left" or "unpaid"

    def evq_args(self, payments: str, orders: str) -> list[str]:
        return ["--join", payments, "--key", ".order_id", "--time", ".ts", "--within", "0s..10m",
                *self.evq_extra, orders]

    def expected_rows(self, data: Data) -> int:
        return {"pairs": data.paid, "left": data.paid + data.unpaid, "unpaid": data.unpaid}[self.kind]


PIPELINES = [
    Pipeline("inner", [], "pairs"),
    Pipeline("left", ["--join-type", "left"], "left"),
    Pipeline("unpaid", ["--join-type", "left", "-f", ".right == null", "-m", ".left"], "unpaid"),
]


def source(path: Path | str, reader: str, payments: bool) -> str:
    if reader == "auto":
        return f"read_ndjson_auto({aggregate.sql_str(str(path))})"
    if payments:
        columns = "{order_id: 'BIGINT', ts: 'BIGINT', amount: 'BIGINT', method: 'VARCHAR'}"
    else:
        columns = "{order_id: 'BIGINT', ts: 'BIGINT', user: 'VARCHAR', total: 'BIGINT'}"
    return f"read_json({aggregate.sql_str(str(path))}, format = 'newline_delimited', columns = {columns})"


def timed_sql(p: Pipeline, orders: str, payments: str, out: Path | str) -> str:
    on = "o.order_id = p.order_id AND p.ts BETWEEN o.ts AND o.ts + 600000"
    if p.kind == "pairs":
        query = f'SELECT o AS "left", p AS "right" FROM {orders} o JOIN {payments} p ON {on}'
    elif p.kind == "left":
        # An order without payment gets "right": null, as evq writes it
        # (not a struct of nulls).
        query = (f'SELECT o AS "left", CASE WHEN p.order_id IS NULL THEN NULL ELSE p END AS "right" '
                 f"FROM {orders} o LEFT JOIN {payments} p ON {on}")
    else:
        query = f"SELECT o.* FROM {orders} o LEFT JOIN {payments} p ON {on} WHERE p.order_id IS NULL"
    return f"COPY ({query}) TO {aggregate.sql_str(str(out))} (FORMAT json)"


# --------------------------------------------------------------------------
# Checks


def row_keys(p: Pipeline, path: Path) -> tuple[int, list]:
    """(lines, sorted row identities): (order_id, payment ts or None), or
    the order_id for unpaid."""
    keys = []
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            n += 1
            row = json.loads(line)
            if p.kind == "unpaid":
                keys.append(row["order_id"])
            else:
                right = row["right"]
                keys.append((row["left"]["order_id"], None if right is None else right["ts"]))
    keys.sort(key=lambda k: (k[0], -1 if k[1] is None else k[1]) if isinstance(k, tuple) else k)
    return n, keys


@dataclass
class Side:
    cmd: list[str]
    out: Path
    wall: float = float("inf")
    rss_kib: int = 0
    rss_exact: bool = True
    code: int = 0
    stderr: str = ""


def main() -> int:
    ap = argparse.ArgumentParser(
        prog="benches/join.py",
        description="Benchmark evq's interval join against DuckDB and check the results agree.",
    )
    ap.add_argument("--orders", type=int, default=1_000_000, metavar="N",
                    help="orders, and payments, to generate (default 1000000)")
    ap.add_argument("--runs", type=int, default=1, metavar="R", help="runs per side and pipeline; best is kept (default 1)")
    ap.add_argument("--evq", type=Path, metavar="PATH", help="evq binary to use instead of building it")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"run only this pipeline (repeatable, or comma-separated): {', '.join(p.name for p in PIPELINES)}")
    ap.add_argument("--reader", choices=["auto", "columns"], default="auto",
                    help="how DuckDB reads the files: read_ndjson_auto (default) or read_json with the columns named")
    args = ap.parse_args()
    if args.orders <= 0 or args.runs <= 0:
        ap.error("--orders and --runs must be positive")
    pipelines = PIPELINES
    if args.only:
        wanted = [w.strip() for item in args.only for w in item.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in {p.name for p in PIPELINES}]
        if unknown:
            ap.error(f"unknown pipeline {', '.join(unknown)}; known: {', '.join(p.name for p in PIPELINES)}")
        pipelines = [p for p in PIPELINES if p.name in wanted]

    bench_dir = bench.cargo_target_dir() / "bench"
    data = generate_in_child(args.orders, bench_dir)
    o_bytes, o_lines = bench.scan_input(data.orders)
    p_bytes, p_lines = bench.scan_input(data.payments)
    duck_python, duck_version = aggregate.find_duckdb_python(bench_dir)
    evq = bench.chosen_evq(args.evq, "join.py")
    evq_version = bench.capture([str(evq), "--version"])

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print("# evq interval join vs DuckDB\n")
    print(f"- command: `{shlex.join(['python3', 'benches/join.py', *sys.argv[1:]])}`")
    print(f"- machine: {bench.machine()}; {now}")
    print(f"- evq: {evq_version}, default threads; DuckDB {duck_version} (Python package), default threads, "
          f"reader `{'read_ndjson_auto' if args.reader == 'auto' else 'read_json(columns = ...)'}`")
    print(f"- input: {data.orders.name} {o_lines} orders, {o_bytes / 1e6:.1f} MB; {data.payments.name} "
          f"{p_lines} payments, {p_bytes / 1e6:.1f} MB; {data.paid} orders paid within 10 minutes, "
          f"{data.unpaid} not (seed {SEED})")
    print(f"- runs: best of {args.runs}; peak RSS is the maximum over runs")
    print(flush=True)

    tmpdir = Path(tempfile.mkdtemp(prefix="join-", dir=bench_dir))
    rows: list[list[str]] = []
    details: list[str] = []
    failed = False
    try:
        sides: dict[str, dict[str, Side]] = {}
        osrc = source(data.orders, args.reader, payments=False)
        psrc = source(data.payments, args.reader, payments=True)
        for p in pipelines:
            duck_out = tmpdir / f"{p.name}.duckdb.ndjson"
            s = {
                "evq": Side([str(evq), *p.evq_args(str(data.payments), str(data.orders))],
                            tmpdir / f"{p.name}.evq.ndjson"),
                "DuckDB": Side([duck_python, "-c", aggregate.DUCKDB_RUNNER, timed_sql(p, osrc, psrc, duck_out)],
                               duck_out),
            }
            sides[p.name] = s
            for run in range(args.runs):
                for tool, side in s.items():
                    log(f"{p.name}: {tool} (run {run + 1}/{args.runs})")
                    if tool == "DuckDB" and side.out.exists():
                        side.out.unlink()
                    stdout = side.out if tool == "evq" else tmpdir / f"{p.name}.duckdb.stdout"
                    err = tmpdir / f"{p.name}.{tool}.err"
                    wall, rss, exact, code = bench.run_once(side.cmd, stdout, err)
                    if rss >= side.rss_kib:
                        side.rss_kib, side.rss_exact = rss, exact
                    if code != 0:
                        side.code, side.stderr = code, bench.tail(err)
                    elif side.code == 0:
                        side.wall = min(side.wall, wall)

        for p in pipelines:
            e, d = sides[p.name]["evq"], sides[p.name]["DuckDB"]
            for tool, side in (("evq", e), ("DuckDB", d)):
                if side.code != 0:
                    details.append(f"- {p.name}: {tool} exited {side.code}; stderr ends:\n\n```\n{side.stderr}\n```")
            ok = e.code == 0 and d.code == 0
            equal = "n/a (failed)"
            e_rows = d_rows = "—"
            if ok:
                log(f"{p.name}: comparing")
                en, ek = row_keys(p, e.out)
                dn, dk = row_keys(p, d.out)
                e_rows, d_rows = str(en), str(dn)
                want = p.expected_rows(data)
                problems = []
                if not (en == dn == want):
                    problems.append(f"rows: evq {en}, DuckDB {dn}, generator {want}")
                if ek != dk:
                    only_e = sorted(set(ek) - set(dk), key=repr)[:5]
                    only_d = sorted(set(dk) - set(ek), key=repr)[:5]
                    problems.append(f"rows differ; only in evq (first 5): {only_e}; only in DuckDB: {only_d}")
                equal = "yes" if not problems else "NO"
                if problems:
                    details.append(f"- {p.name}: " + "; ".join(problems))
            if not ok or equal != "yes":
                failed = True
            rss = lambda side: ("" if side.rss_exact else "~") + f"{side.rss_kib / 1024:.0f}"  # noqa: E731
            rows.append([
                p.name,
                e_rows,
                d_rows,
                f"{e.wall:.2f}" if e.code == 0 else f"exit {e.code}",
                f"{d.wall:.2f}" if d.code == 0 else f"exit {d.code}",
                f"{d.wall / e.wall:.2f}" if ok else "—",
                rss(e),
                rss(d),
                equal,
            ])
            for side in (e, d):
                if side.out.exists():
                    side.out.unlink()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    header = ["pipeline", "evq rows", "DuckDB rows", "evq s", "DuckDB s", "DuckDB/evq",
              "evq RSS MiB", "DuckDB RSS MiB", "equal"]
    print(aggregate.md_table(header, rows, right={1, 2, 3, 4, 5, 6, 7}))
    print()
    print("DuckDB/evq is DuckDB's wall time over evq's: above 1 evq is faster. Wall times include process "
          "startup; peak RSS is ru_maxrss (\"~\": sampled VmHWM, see benches/run.py). Equal: the same number "
          "of rows as each other and as the generator, and the same (order, payment time) pairs.")
    print()
    print("Commands (ORDERS, PAYMENTS as above; each writes NDJSON rows to a file):\n")
    for p in pipelines:
        print(f"- {p.name}: `evq {shlex.join(p.evq_args('PAYMENTS', 'ORDERS'))}`; "
              f"DuckDB `{timed_sql(p, 'ORDERS', 'PAYMENTS', 'OUT')}`")
    if details:
        print("\nNotes and problems:\n")
        print("\n".join(details))
    if failed:
        print("\nFAILED: results differ or a tool failed")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
