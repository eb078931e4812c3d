"""Progress output for long build steps, and the one way build steps run external commands.

Long steps (debootstrap, image builds, compiles) print what they are doing and how long they took, so a
user on a 2-core machine can tell a slow step from a hung one. Command output is relayed indented; when a
command fails, its last lines are repeated in the error, which names the step.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterable, Iterator, Mapping, Sequence, TextIO

from ..errors import BuildError


class Progress:
    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self._step = ""

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def detail(self, line: str) -> None:
        if self.verbose:
            print(f"    {line}", file=self.stream, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        outer, self._step = self._step, title
        self.say(f"==> {title}")
        start = time.monotonic()
        try:
            yield
        finally:
            self._step = outer
        self.say(f"    {title}: done in {time.monotonic() - start:.1f} s")

    def relay(self, lines: Iterable[str], keep: int = 40) -> list[str]:
        """Show each line (all of them when verbose; otherwise one heartbeat every 10 s) and return the tail."""
        tail: deque[str] = deque(maxlen=keep)
        last = time.monotonic()
        for raw in lines:
            line = raw.rstrip()
            if not line:
                continue
            tail.append(line)
            if self.verbose:
                self.detail(line)
            elif time.monotonic() - last > 10:
                print(f"    … {line[:110]}", file=self.stream, flush=True)
                last = time.monotonic()
        return list(tail)

    def run(self, argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike | None = None) -> list[str]:
        """Run a command, relaying its output; on failure raise BuildError with `what` and the output's tail."""
        self.detail("$ " + " ".join(map(str, argv)))
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace", env=None if env is None else dict(env), cwd=cwd)
        except FileNotFoundError:
            raise BuildError(f"{what}: {argv[0]} not found; is it installed?") from None
        assert proc.stdout is not None
        tail = self.relay(proc.stdout)
        if proc.wait() != 0:
            shown = "\n".join("    " + t for t in tail[-25:])
            raise BuildError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, argv[:6]))} …\n{shown}")
        return tail
