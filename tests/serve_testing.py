"""Helpers for tests that talk to servers (`claw serve`, the agent's listener): Triton client inputs, waiting
for a port, and the server's JSON log."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tritonclient.http as triton


def infer_input(name: str, x: np.ndarray, binary: bool = True) -> triton.InferInput:
    datatype = {"float32": "FP32", "float64": "FP64", "int64": "INT64"}[x.dtype.name]
    return triton.InferInput(name, list(x.shape), datatype).set_data_from_numpy(x, binary_data=binary)


def wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def start_line(log_path: Path, proc: subprocess.Popen) -> dict:
    def started() -> bool:
        assert proc.poll() is None, f"the server exited: {log_path.read_text()}"
        return '"event": "start"' in log_path.read_text()
    wait_until(started, timeout=60, what="the server to start")
    return json.loads(log_path.read_text().splitlines()[0])


def log_records(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines()]


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Something listens on host:port (the probe connection is closed at once)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def claw_serve(args: list[str], log_path: Path) -> Iterator[tuple[subprocess.Popen, dict]]:
    """`claw serve ARGS` as its own process, its JSON log in log_path; yields the process and its start line.
    A process still running at the end (a failed test) is killed."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "clawdbot.cli", "serve", *args], stderr=log,
                                stdout=subprocess.DEVNULL)
    try:
        yield proc, start_line(log_path, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
