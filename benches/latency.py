#!/usr/bin/env python3
"""Latency of evq on a live input: how long from a line entering evq's
standard input (a pipe that stays open) to its event leaving on evq's
standard output (another pipe). Writes one line every 200 ms and reports the
delays. Usage: python3 benches/latency.py [--evq PATH] [--lines N] [-- EVQ ARGS...]
"""
import argparse, os, select, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--evq", default="target/release/evq")
ap.add_argument("--lines", type=int, default=30)
ap.add_argument("--follow", action="store_true", help="append to a file evq follows instead of a pipe")
ap.add_argument("args", nargs="*", default=["-f", ".n >= 0"])
a = ap.parse_args()
if a.follow:
    import tempfile
    log = os.path.join(tempfile.mkdtemp(), "live.log")
    open(log, "w").close()
    p = subprocess.Popen([a.evq, "-F", *a.args, log], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    sink = open(log, "ab", buffering=0)
else:
    p = subprocess.Popen([a.evq, *a.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    sink = p.stdin
delays = []
for n in range(a.lines):
    line = f'{{"n":{n},"msg":"event {n}"}}\n'.encode()
    t0 = time.perf_counter()
    sink.write(line)
    sink.flush()
    got = b""
    while not got.endswith(b"\n"):
        r, _, _ = select.select([p.stdout], [], [], 5)
        if not r:
            sys.exit(f"no output within 5 s for line {n}")
        got += os.read(p.stdout.fileno(), 65536)
    delays.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.2)
if a.follow:
    p.terminate()
else:
    p.stdin.close()
p.wait()
delays.sort()
print(f"{len(delays)} lines: median {statistics.median(delays):.2f} ms, "
      f"p90 {delays[int(len(delays) * 0.9) - 1]:.2f} ms, max {delays[-1]:.2f} ms")
