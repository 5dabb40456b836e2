#!/usr/bin/env python3
"""Lookup-join benchmark: evq's `--lookup` against DuckDB's LEFT JOIN, side
by side in one run, on the same files, with the results checked equal; and
what a table costs in memory.

    python3 benches/lookup.py [--events N] [--rows R] [--runs K]
                              [--evq PATH] [--memory-rows M]

Input. N events (default 1,000,000) from the repository's generator,
`cargo run --release --example gen-events -- N 42 R`, cached as
target/bench/events-N-keysR.ndjson (the file benches/aggregate.py uses):
`data.user_id` is an integer below R (default 100,000), null in about 25%
of events. The table is target/bench/users-R.csv, written here: a header
`id,name,team` and one row per id 0..R-1, `name` "user-ID", `team`
"team-T" with T = ID * 7919 mod 97. The ids are written as the events
spell them (decimal integers); a CSV value is a string, so evq looks the
integer up as `$users[.data.user_id | tostring]` (jq's INDEX keys by
`tostring`, and indexing an object with a number is an error in jq).

The join. evq: `evq --lookup users users-R.csv .id -m '.team =
$users[.data.user_id | tostring].team' EVENTS`, its default threads, NDJSON
to standard output (a file). DuckDB (its Python package, default threads, no
progress bar): `COPY (SELECT e.*, u.team FROM read_ndjson_auto(EVENTS) e
LEFT JOIN read_csv_auto(USERS) u ON e.data.user_id = u.id) TO OUT (FORMAT
json)`. Both do the whole job as one process from the files to a file of
enriched events, and are timed alike: wall clock from spawn to exit (startup
and loading the table included), best of K runs (default 1), alternating;
peak RSS is the child's ru_maxrss (benches/run.py's run_once; the maximum
over runs).

Checks (untimed). Both outputs have N rows; in each, the number of rows with
a team, and a checksum over the rows of (user_id + 1) * (T + 1) where T is
the team's number (0 without a team), must be equal: every event got the
team of its own id, or none. The counts come from the two output files read
line by line (the user id and team are found by a regular expression; each
writer's spelling of them is checked on the first line).

Memory. Peak RSS of `evq -n --lookup users users-M.csv .id -m empty` (the
table loaded, nothing else) minus that of `evq -n -m empty`, for M rows
(default 1,000,000, a file written like users-R.csv), divided by M: what a
row costs held in evq's table, against the bytes of its compact JSON text.

DuckDB is found, or installed into target/bench/venv, as benches/aggregate.py
does. Unless --evq is given, evq is built with `cargo build --release`. Exits
1 when the results differ or a tool fails, 2 on bad usage. Python 3.9+.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aggregate  # noqa: E402  benches/aggregate.py: ensure_events, find_duckdb_python, md_table, DUCKDB_RUNNER
import run as bench  # noqa: E402  benches/run.py: run_once, build_evq, cargo_target_dir, ...

TEAMS = 97


def log(msg: str) -> None:
    print(f"[lookup] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 1) -> None:
    print(f"lookup.py: {msg}", file=sys.stderr)
    sys.exit(code)


def team_of(i: int) -> int:
    return i * 7919 % TEAMS


def ensure_users(rows: int, bench_dir: Path) -> Path:
    path = bench_dir / f"users-{rows}.csv"
    if path.exists():
        return path
    bench_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write("id,name,team\n")
        for i in range(rows):
            f.write(f"{i},user-{i},team-{team_of(i)}\n")
    os.replace(tmp, path)
    return path


USER_ID = re.compile(rb'"user_id":(null|\d+)')
TEAM = re.compile(rb'"team":(null|"team-(\d+)")')


def checksum(path: Path) -> tuple[int, int, int]:
    """(rows, rows with a team, sum of (user_id + 1) * (team + 1))."""
    rows = teamed = total = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rows += 1
            uid = USER_ID.search(line)
            teams = TEAM.findall(line)
            if uid is None or not teams:
                die(f"{path}: row {rows} has no user_id or team: {line[:300]!r}")
            team = teams[-1]
            if team[0] == b"null":
                continue
            teamed += 1
            u = 0 if uid.group(1) == b"null" else int(uid.group(1)) + 1
            total += u * (int(team[1]) + 1)
    return rows, teamed, total


def expected(events: Path) -> tuple[int, int, int]:
    """The same counts computed from the input, for a third opinion."""
    rows = teamed = total = 0
    with open(events, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rows += 1
            uid = USER_ID.search(line)
            if uid is None or uid.group(1) == b"null":
                continue
            i = int(uid.group(1))
            teamed += 1
            total += (i + 1) * (team_of(i) + 1)
    return rows, teamed, total


def main() -> int:
    ap = argparse.ArgumentParser(prog="benches/lookup.py",
                                 description="Benchmark evq --lookup against DuckDB's LEFT JOIN and check the results agree.")
    ap.add_argument("--events", type=int, default=1_000_000, metavar="N", help="events (default 1000000)")
    ap.add_argument("--rows", type=int, default=100_000, metavar="R", help="table rows, user ids 0..R-1 (default 100000)")
    ap.add_argument("--runs", type=int, default=1, metavar="K", help="runs per side; the best is kept (default 1)")
    ap.add_argument("--evq", type=Path, metavar="PATH", help="evq binary to use instead of building it")
    ap.add_argument("--memory-rows", type=int, default=1_000_000, metavar="M",
                    help="rows of the table whose memory is measured (default 1000000; 0: skip)")
    args = ap.parse_args()
    if args.events <= 0 or args.rows <= 0 or args.runs <= 0 or args.memory_rows < 0:
        ap.error("--events, --rows and --runs must be positive")

    bench_dir = bench.cargo_target_dir() / "bench"
    events = aggregate.ensure_events(args.events, args.rows, bench_dir)
    users = ensure_users(args.rows, bench_dir)
    duck_python, duck_version = aggregate.find_duckdb_python(bench_dir)
    evq = bench.chosen_evq(args.evq, "lookup.py")
    evq_version = bench.capture([str(evq), "--version"])
    in_bytes, in_events = bench.scan_input(events)

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print("# evq --lookup vs DuckDB LEFT JOIN\n")
    print(f"- command: `{shlex.join(['python3', 'benches/lookup.py', *sys.argv[1:]])}`")
    print(f"- machine: {bench.machine()}; {now}")
    print(f"- evq: {evq_version}, default threads; DuckDB {duck_version} (Python package), default threads")
    print(f"- input: {events.name} — {in_events} events, {in_bytes / 1e6:.1f} MB; "
          f"table: {users.name} — {args.rows} rows, {users.stat().st_size / 1e6:.1f} MB")
    print(f"- runs: best of {args.runs}; peak RSS is the maximum over runs")
    print(flush=True)

    tmpdir = Path(tempfile.mkdtemp(prefix="lookup-", dir=bench_dir))
    try:
        evq_out, duck_out = tmpdir / "evq.ndjson", tmpdir / "duckdb.ndjson"
        evq_cmd = [str(evq), "--lookup", "users", str(users), ".id",
                   "-m", ".team = $users[.data.user_id | tostring].team", str(events)]
        sql = (f"COPY (SELECT e.*, u.team FROM read_ndjson_auto({aggregate.sql_str(str(events))}) e "
               f"LEFT JOIN read_csv_auto({aggregate.sql_str(str(users))}) u ON e.data.user_id = u.id) "
               f"TO {aggregate.sql_str(str(duck_out))} (FORMAT json)")
        duck_cmd = [duck_python, "-c", aggregate.DUCKDB_RUNNER, sql]
        sides = {"evq": [evq_cmd, float("inf"), 0, True, 0], "DuckDB": [duck_cmd, float("inf"), 0, True, 0]}
        for run in range(args.runs):
            for tool, side in sides.items():
                log(f"{tool} (run {run + 1}/{args.runs})")
                if duck_out.exists():
                    duck_out.unlink()
                out = evq_out if tool == "evq" else tmpdir / "duckdb.stdout"
                err = tmpdir / f"{tool}.err"
                wall, rss, exact, code = bench.run_once(side[0], out, err)
                if code != 0:
                    die(f"{tool} exited {code}: {bench.tail(err)}")
                side[1] = min(side[1], wall)
                if rss >= side[2]:
                    side[2], side[3] = rss, exact
        log("checking the results (untimed)")
        want = expected(events)
        got = {"evq": checksum(evq_out), "DuckDB": checksum(duck_out)}
        equal = got["evq"] == got["DuckDB"] == want

        memory = None
        if args.memory_rows:
            big = ensure_users(args.memory_rows, bench_dir)
            log(f"memory: evq with {big.name} loaded")
            base = bench.run_once([str(evq), "-n", "-m", "empty"], tmpdir / "m.out", tmpdir / "m.err")
            table = bench.run_once([str(evq), "-n", "--lookup", "users", str(big), ".id", "-m", "empty"],
                                   tmpdir / "m.out", tmpdir / "m.err")
            row_json = len('{"id":"123456","name":"user-123456","team":"team-12"}')
            memory = (base, table, row_json)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    e, d = sides["evq"], sides["DuckDB"]
    rss = lambda s: ("" if s[3] else "~") + f"{s[2] / 1024:.0f}"  # noqa: E731
    print(aggregate.md_table(
        ["join", "events", "table rows", "evq s", "DuckDB s", "DuckDB/evq", "evq RSS MiB", "DuckDB RSS MiB", "equal"],
        [["left join", str(in_events), str(args.rows), f"{e[1]:.2f}", f"{d[1]:.2f}", f"{d[1] / e[1]:.2f}",
          rss(e), rss(d), "yes" if equal else "NO"]],
        right={1, 2, 3, 4, 5, 6, 7}))
    print()
    print(f"Rows, rows with a team, checksum: evq {got['evq']}, DuckDB {got['DuckDB']}, from the input {want}. "
          "DuckDB/evq above 1: evq is faster. Wall times include startup and loading the table.")
    print()
    print(f"- evq: `{shlex.join(evq_cmd)}`")
    print(f"- DuckDB: `{sql}`")
    if memory:
        base, table, row_json = memory
        cost = (table[1] - base[1]) * 1024
        print()
        print(f"Memory: evq's peak RSS {base[1] / 1024:.1f} MiB without a table, {table[1] / 1024:.1f} MiB with "
              f"{args.memory_rows} rows loaded ({table[0]:.2f} s to load): {cost / 2**20:.1f} MiB for the table, "
              f"{cost / args.memory_rows:.0f} bytes a row (a row's compact JSON is {row_json} bytes at most here).")
    if not equal:
        print("\nFAILED: results differ")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
