#!/usr/bin/env python3
"""Benchmark evq against jaq and jq on a synthetic NDJSON log.

    python3 benches/run.py [--events N] [--file PATH] [--evq PATH]
                           [--threads N] [--runs K] [--only NAME]
                           [--no-compare]

Unless --file is given, the input is N events (default 1,000,000) made by
`cargo run --release --example gen-events -- N` and cached as
target/bench/events-N.ndjson. Unless --evq is given, evq is built with
`cargo build --release`. Each pipeline is then run by evq, jaq and jq (those
found on PATH or in ~/.cargo/bin; missing ones are skipped), with standard
output going to a temporary file. For each run the script measures the wall
time (time.perf_counter around spawn and wait) and the child's peak resident
set size (ru_maxrss from os.wait4), and keeps the fastest of --runs runs.

The report is a Markdown table. "vs evq" is the tool's wall time divided by
evq's: above 1 means evq is faster. "output equal" compares each tool's
output with evq's as JSON values, line by line (so 1.0 == 1 and key order
does not matter); the evq/jaq comparison decides the exit status, the jq one
is informational (jq 1.6 handles large numbers differently). The script
exits 1 when an output differs or a tool fails, 2 on bad usage.

Python 3.9+, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name, evq stage arguments, jq/jaq program
PIPELINES: list[tuple[str, list[str], str]] = [
    ("filter-nested-number", ["-f", ".data.amount > 100"], "select(.data.amount > 100)"),
    (
        "string-eq-regex",
        ["-f", '.level == "error" and (.data.path | test("^/api"))'],
        'select(.level == "error" and (.data.path | test("^/api")))',
    ),
    (
        "pick-fields",
        ["-m", "{ts, level, service, path: .data.path}"],
        "{ts, level, service, path: .data.path}",
    ),
    (
        "update-field",
        ["-m", ".is_high_value = (.data.amount > 100)"],
        ".is_high_value = (.data.amount > 100)",
    ),
    (
        "filter-then-map",
        ["-f", ".data.status >= 500", "-m", "{ts, service, status: .data.status}"],
        "select(.data.status >= 500) | {ts, service, status: .data.status}",
    ),
    ("passthrough", [], "."),
]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 1) -> None:
    print(f"run.py: {msg}", file=sys.stderr)
    sys.exit(code)


# --------------------------------------------------------------------------
# Setup: target directory, input file, evq binary, other tools


def cargo_target_dir() -> Path:
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
        return Path(json.loads(out)["target_directory"])
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        return ROOT / "target"


def ensure_events(n: int, bench_dir: Path) -> Path:
    path = bench_dir / f"events-{n}.ndjson"
    if path.exists():
        log(f"using cached {path}")
        return path
    bench_dir.mkdir(parents=True, exist_ok=True)
    log(f"generating {n} events into {path} (cargo run --release --example gen-events)")
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            subprocess.run(
                ["cargo", "run", "--quiet", "--release", "--example", "gen-events", "--", str(n)],
                cwd=ROOT,
                stdout=out,
                check=True,
            )
        os.replace(tmp, path)  # atomic: a half-written file is never cached
    except subprocess.CalledProcessError as e:
        die(f"generating events failed (exit {e.returncode})")
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def build_evq() -> Path:
    log("building evq (cargo build --release)")
    proc = subprocess.run(
        ["cargo", "build", "--release", "--message-format=json-render-diagnostics"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        die(f"cargo build --release failed (exit {proc.returncode})")
    exe = None
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg.get("target", {}).get("name") == "evq":
                exe = msg["executable"]
    if not exe:
        die("cargo build did not report an evq executable")
    return Path(exe)


def chosen_evq(given: Path | None, script: str) -> Path:
    """The evq a benchmark measures: `--evq PATH` when given (exit 2, named
    by `script`, when it is not an executable), else a fresh release build."""
    if given is None:
        return build_evq()
    evq = given.resolve()
    if not os.access(evq, os.X_OK):
        print(f"{script}: --evq {given}: not an executable", file=sys.stderr)
        sys.exit(2)
    return evq


def machine() -> str:
    """The machine, for a report's header: CPUs available to this process,
    their model, the operating system."""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{nproc} CPUs available, {cpu_model()}, {platform.system()} {platform.release()}"


def find_tool(name: str) -> str | None:
    path = os.environ.get("PATH", "")
    cargo_bin = str(Path.home() / ".cargo" / "bin")
    return shutil.which(name, path=f"{path}{os.pathsep}{cargo_bin}" if path else cargo_bin)


def capture(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        return p.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def scan_input(path: Path) -> tuple[int, int]:
    """(bytes, events) of the input; reading it also warms the page cache so
    that the first tool measured does not pay for the disk."""
    size = lines = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if size and last != b"\n":
        lines += 1
    return size, lines


# --------------------------------------------------------------------------
# Measurement


@dataclass
class Result:
    tool: str
    cmd: list[str]
    wall: float = float("inf")  # best over runs
    rss_kib: int = 0  # max over runs
    rss_exact: bool = True  # False: sampled VmHWM (see run_once)
    exit_code: int = 0
    stderr_tail: str = ""
    out_path: Path | None = None
    out_lines: int | None = None
    equal: str = ""
    stats: dict = field(default_factory=dict)


def _sample_hwm(pid: int, stop: threading.Event, own_name: str, out: list[int]) -> None:
    """Polls VmHWM (peak RSS of the current address space, KiB) of pid until
    stop is set. Samples taken before the exec (when the child still runs on
    Python's address space, under Python's name) are ignored."""
    path = f"/proc/{pid}/status"
    while True:
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError:
            return
        name = hwm = None
        for line in text.splitlines():
            if line.startswith(b"Name:"):
                name = line[5:].strip().decode("utf-8", "replace")
            elif line.startswith(b"VmHWM:"):
                hwm = int(line.split()[1])
        if name is not None and name != own_name and hwm is not None:
            out[0] = max(out[0], hwm)
        if stop.wait(0.005):
            return


def _own_name() -> str:
    try:
        with open("/proc/self/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


OWN_NAME = _own_name()


def run_once(cmd: list[str], out_path: Path, err_path: Path) -> tuple[float, int, bool, int]:
    """Runs cmd with stdout to out_path.

    Returns (wall seconds, peak RSS KiB, whether that peak is exact, exit code).

    The peak is ru_maxrss from os.wait4, which the kernel tracks over the
    child's whole life. But Linux starts a spawned child's counter at the
    spawning process's own peak (here Python's, some 10-20 MiB), so a tool
    that stays below that would all read as Python's size. In that case the
    value sampled from /proc/PID/status VmHWM every 5 ms is used instead (the
    second element is then False).
    """
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sampled = [0]
    stop = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        sampler = threading.Thread(target=_sample_hwm, args=(proc.pid, stop, OWN_NAME, sampled), daemon=True)
        sampler.start()
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # already reaped; keep Popen from waiting again
    maxrss = rusage.ru_maxrss  # KiB on Linux
    if maxrss > floor:
        return wall, max(maxrss, sampled[0]), True, code
    return wall, sampled[0], False, code


def tail(path: Path, limit: int = 600) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace").strip()


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def compare(expected: Path, actual: Path, tool: str) -> tuple[bool, str]:
    """Compares two NDJSON outputs as JSON values, line by line, streaming."""
    with open(expected, "rb") as a, open(actual, "rb") as b:
        for n, (la, lb) in enumerate(zip_longest(a, b), start=1):
            if la is None or lb is None:
                which = "evq" if la is None else tool
                return False, f"NO: line {n}: {which} output ended first"
            if la == lb:
                continue
            try:
                va, vb = json.loads(la), json.loads(lb)
            except ValueError as e:
                return False, f"NO: line {n}: not JSON ({e})"
            if va != vb:
                return False, f"NO: line {n} differs"
    return True, "yes"


def short(line: bytes | None, limit: int = 200) -> str:
    if line is None:
        return "<end of file>"
    s = line.decode("utf-8", "replace").rstrip("\n")
    return s if len(s) <= limit else s[:limit] + "…"


def first_difference(expected: Path, actual: Path, tool: str) -> str:
    with open(expected, "rb") as a, open(actual, "rb") as b:
        for n, (la, lb) in enumerate(zip_longest(a, b), start=1):
            if la == lb:
                continue
            try:
                if la is not None and lb is not None and json.loads(la) == json.loads(lb):
                    continue
            except ValueError:
                pass
            return f"    line {n}:\n      evq: {short(la)}\n      {tool}: {short(lb)}"
    return ""


# --------------------------------------------------------------------------
# Report


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {2, 3, 4, 5, 6}

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def main() -> int:
    ap = argparse.ArgumentParser(
        prog="benches/run.py",
        description="Benchmark evq against jaq and jq on synthetic NDJSON log events.",
    )
    ap.add_argument("--events", type=int, default=1_000_000, metavar="N",
                    help="events to generate (default 1000000; ignored with --file)")
    ap.add_argument("--file", type=Path, metavar="PATH", help="use this NDJSON input instead of generating one")
    ap.add_argument("--evq", type=Path, metavar="PATH", help="evq binary to use instead of building it")
    ap.add_argument("--threads", type=int, metavar="N", help="pass --threads N to evq (if evq supports it)")
    ap.add_argument("--runs", type=int, default=1, metavar="K", help="runs per tool and pipeline; best is kept (default 1)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this pipeline (repeatable, or comma-separated)")
    ap.add_argument("--no-compare", action="store_true", help="do not compare outputs")
    args = ap.parse_args()

    if args.events <= 0:
        ap.error("--events must be positive")
    if args.runs <= 0:
        ap.error("--runs must be positive")
    if args.threads is not None and args.threads <= 0:
        ap.error("--threads must be positive")

    pipelines = PIPELINES
    if args.only:
        wanted = [w.strip() for item in args.only for w in item.split(",") if w.strip()]
        known = {p[0] for p in PIPELINES}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            ap.error(f"unknown pipeline {', '.join(unknown)}; known: {', '.join(p[0] for p in PIPELINES)}")
        pipelines = [p for p in PIPELINES if p[0] in wanted]

    target_dir = cargo_target_dir()
    bench_dir = target_dir / "bench"

    # Input
    if args.file:
        input_path = args.file.resolve()
        if not input_path.is_file():
            die(f"--file {args.file}: no such file", 2)
    else:
        input_path = ensure_events(args.events, bench_dir)
    in_bytes, in_events = scan_input(input_path)

    # Tools
    evq = chosen_evq(args.evq, "run.py")
    evq_help = capture([str(evq), "--help"])
    evq_version = capture([str(evq), "--version"])
    supports_threads = "--threads" in evq_help
    evq_common: list[str] = []
    threads_note = "evq has no --threads option"
    if supports_threads:
        if args.threads is not None:
            evq_common += ["--threads", str(args.threads)]
            threads_note = f"--threads {args.threads}"
        else:
            threads_note = "default (no --threads given)"
    elif args.threads is not None:
        log(f"this evq does not support --threads; ignoring --threads {args.threads}")
        threads_note = f"--threads {args.threads} requested but unsupported; not passed"
    evq_common += ["--stats=json"]

    tools: list[tuple[str, str]] = [("evq", str(evq))]
    notes: list[str] = []
    versions = {"evq": evq_version}
    for name in ("jaq", "jq"):
        exe = find_tool(name)
        if exe:
            tools.append((name, exe))
            versions[name] = (capture([exe, "--version"]).splitlines() or ["?"])[0]
        else:
            notes.append(f"{name} not found on PATH or in ~/.cargo/bin: skipped")
            log(notes[-1])

    # Header
    script = os.path.relpath(Path(__file__).resolve(), Path.cwd())
    if script.startswith(".."):
        script = str(Path(__file__).resolve())
    argv = ["python3", script, *sys.argv[1:]]
    reproduce = f"cd {shlex.quote(str(Path.cwd()))} && {shlex.join(argv)}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print("# evq benchmark\n")
    print(f"- reproduce: `{reproduce}`")
    print(f"- date: {now}")
    print(f"- machine: {machine()}")
    print(f"- evq: {evq_version} ({evq}), threads: {threads_note}")
    for name, _ in tools[1:]:
        print(f"- {name}: {versions[name]}")
    print(f"- input: {input_path} — {in_bytes / 1e6:.1f} MB, {in_events} events, "
          f"{in_bytes / max(in_events, 1):.0f} bytes/event")
    print(f"- runs: best of {args.runs}; RSS is the maximum over runs")
    for n in notes:
        print(f"- note: {n}")
    print(flush=True)

    # Runs
    rows: list[list[str]] = []
    failures: list[str] = []
    details: list[str] = []
    commands: list[str] = []
    try:
        bench_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    tmpdir = Path(tempfile.mkdtemp(prefix="run-", dir=bench_dir if bench_dir.is_dir() else None))
    try:
        for pname, evq_args, program in pipelines:
            results: list[Result] = []
            for tool, exe in tools:
                if tool == "evq":
                    cmd = [exe, *evq_common, *evq_args, str(input_path)]
                else:
                    cmd = [exe, "-c", program, str(input_path)]
                results.append(Result(tool=tool, cmd=cmd))
                commands.append(f"{pname} / {tool}: `{shlex.join(cmd)}`")
            for run in range(args.runs):
                for r in results:
                    out_path = tmpdir / f"{pname}.{r.tool}.out"
                    err_path = tmpdir / f"{pname}.{r.tool}.err"
                    log(f"{pname}: {r.tool} (run {run + 1}/{args.runs})")
                    wall, rss, exact, code = run_once(r.cmd, out_path, err_path)
                    r.out_path = out_path
                    if rss >= r.rss_kib:
                        r.rss_kib, r.rss_exact = rss, exact
                    if code != 0:
                        r.exit_code = code
                        r.stderr_tail = tail(err_path)
                    elif r.exit_code == 0:
                        r.wall = min(r.wall, wall)
                    if r.tool == "evq" and code == 0:
                        try:
                            lines = err_path.read_text("utf-8", "replace").strip().splitlines()
                            r.stats = json.loads(lines[-1]) if lines else {}
                        except ValueError:
                            r.stats = {}
            evq_res = results[0]
            for r in results:
                if r.exit_code != 0:
                    failures.append(f"{pname}/{r.tool} exited {r.exit_code}")
                    details.append(f"- {pname} / {r.tool} exited {r.exit_code}; stderr ends:\n\n```\n{r.stderr_tail}\n```")
                if r.out_path and r.exit_code == 0:
                    r.out_lines = count_lines(r.out_path)
                if r.tool == "evq":
                    r.equal = "(reference)"
                    continue
                if args.no_compare:
                    r.equal = "not compared"
                elif evq_res.exit_code != 0 or r.exit_code != 0:
                    r.equal = "n/a (failed)"
                else:
                    ok, verdict = compare(evq_res.out_path, r.out_path, r.tool)
                    if r.tool == "jq" and not ok:
                        verdict += " (info)"
                    r.equal = verdict
                    if not ok:
                        details.append(f"- {pname}: evq vs {r.tool}: {verdict}\n"
                                       f"{first_difference(evq_res.out_path, r.out_path, r.tool)}")
                        if r.tool == "jaq":
                            failures.append(f"{pname}: evq output differs from jaq ({verdict})")
            for r in results:
                ok = r.exit_code == 0
                ratio = "—"
                if ok and evq_res.exit_code == 0 and evq_res.wall > 0:
                    ratio = f"{r.wall / evq_res.wall:.2f}x"
                out_desc = r.equal
                if r.out_lines is not None and r.tool == "evq":
                    out_desc = f"(reference, {r.out_lines} lines)"
                rows.append([
                    pname,
                    r.tool,
                    f"{r.wall:.3f}" if ok else f"exit {r.exit_code}",
                    f"{in_bytes / 1e6 / r.wall:.1f}" if ok else "—",
                    fmt_rate(in_events / r.wall) if ok else "—",
                    ("" if r.rss_exact else "~") + f"{r.rss_kib / 1024:.1f}",
                    ratio,
                    out_desc,
                ])
                # Cross-check evq's own accounting against the input.
                if r.tool == "evq" and r.stats:
                    ingested = r.stats.get("events_ingested")
                    emitted = r.stats.get("events_emitted")
                    if ingested is not None and ingested != in_events:
                        details.append(f"- {pname} / evq: --stats says {ingested} events ingested, input has {in_events}")
                    if emitted is not None and r.out_lines is not None and emitted != r.out_lines:
                        details.append(f"- {pname} / evq: --stats says {emitted} emitted, output has {r.out_lines} lines")
            # Free the disk space as we go; only one pipeline's outputs are kept.
            for r in results:
                if r.out_path and r.out_path.exists():
                    r.out_path.unlink()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    header = ["pipeline", "tool", "wall s", "MB/s", "events/s", "peak RSS MiB", "vs evq", "output equal"]
    print(md_table(header, rows))
    print()
    print("MB/s and events/s are input size / wall time (MB = 10^6 bytes). "
          "\"vs evq\" = tool wall time / evq wall time (jaq/evq, jq/evq): above 1 means evq is faster. "
          "Outputs are compared with evq's as JSON values, line by line. "
          "Peak RSS is the child's ru_maxrss from wait4; \"~\" marks a value below the Python "
          "driver's own size, which Linux carries into a child's ru_maxrss, so it was sampled from "
          "/proc/PID/status VmHWM every 5 ms instead.")
    print()
    print("Commands:\n")
    for c in commands:
        print(f"- {c}")
    if details:
        print("\nProblems:\n")
        print("\n".join(details))
    if failures:
        print(f"\nFAILED: {'; '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
