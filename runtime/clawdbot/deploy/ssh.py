"""Reaching a board's agent over ssh: `ssh -N -L` forwards a free loopback port here to the agent's loopback
listener there (deploy/listener.py), and the flash then talks to it as to a serial line through pyserial's
socket:// URL.

The user's own OpenSSH client does the connecting, so ~/.ssh/config, keys, agents and jump hosts work as
they do for everything else; CLAW_SSH_COMMAND replaces `ssh` (as GIT_SSH_COMMAND does for git), e.g.
`CLAW_SSH_COMMAND="ssh -i ~/.ssh/board -o StrictHostKeyChecking=accept-new"`. BatchMode is on: a flash
never stops to ask for a password it cannot be given.

    ssh://[user@]host[:port][?agent=7070]        agent: the agent's --listen port on the board
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ..errors import ClawError

AGENT_PORT = 7070  # the agent's default --listen port (on the board's loopback)
CONNECT_TIMEOUT = 30.0


class SshError(ClawError):
    """ssh could not log in to the board or forward to its agent."""


@dataclass(frozen=True)
class SshUrl:
    user: str | None
    host: str
    port: int | None
    agent_port: int

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse(url: str) -> SshUrl:
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise SshError(f"{url!r}: an ssh port is ssh://[user@]host[:port][?agent=PORT]")
    if parts.path not in ("", "/"):
        raise SshError(f"{url!r}: unexpected path {parts.path!r}; the agent is chosen with ?agent=PORT")
    try:
        port = parts.port
    except ValueError:
        raise SshError(f"{url!r}: the ssh port is not a number from 1 to 65535") from None
    query = parse_qs(parts.query)
    unknown = set(query) - {"agent"}
    if unknown:
        raise SshError(f"{url!r}: unknown parameter {sorted(unknown)[0]!r}; the only one is agent=PORT")
    agent = query.get("agent", [str(AGENT_PORT)])[-1]
    if not agent.isdigit() or not 1 <= int(agent) <= 65535:
        raise SshError(f"{url!r}: agent={agent!r} is not a port number")
    return SshUrl(parts.username, parts.hostname, port, int(agent))


def with_defaults(url: str, user: str | None, port: int | None) -> str:
    """`url` with the target file's ssh user and port filled in where it names none (ssh://board.local ->
    ssh://pi@board.local:22 for an rpi4)."""
    t = parse(url)
    host = f"[{t.host}]" if ":" in t.host else t.host
    user, port = t.user or user, t.port or port
    query = urlsplit(url).query
    return (f"ssh://{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
            f"{'?' + query if query else ''}")


def ssh_command() -> list[str]:
    cmd = shlex.split(os.environ.get("CLAW_SSH_COMMAND", "ssh"))
    if not cmd:
        raise SshError("CLAW_SSH_COMMAND is set but empty")
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def tunnel(url: str, timeout: float = CONNECT_TIMEOUT) -> Iterator[str]:
    """A socket:// URL that reaches the agent behind `url` while the `with` block runs."""
    target = parse(url)
    local = _free_port()
    argv = [*ssh_command(), "-N", "-T", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
            "-o", "ServerAliveInterval=15", "-o", f"ConnectTimeout={int(timeout)}",
            "-L", f"127.0.0.1:{local}:127.0.0.1:{target.agent_port}"]
    if target.port:
        argv += ["-p", str(target.port)]
    argv.append(target.destination)
    # stderr to a file, not a pipe: a chatty ssh must never block on a pipe nobody reads during a long flash.
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        except OSError as e:
            raise SshError(f"cannot run {argv[0]!r} ({e.strerror or e}); install an OpenSSH client or set "
                           f"CLAW_SSH_COMMAND") from None
        try:
            yield _wait_logged_in(proc, err, local, target, timeout)
        finally:
            _stop(proc)


def _wait_logged_in(proc: subprocess.Popen, err, local: int, target: SshUrl, timeout: float) -> str:
    # ssh listens on the local end only once it has logged in, so a port that accepts means a session;
    # whether the agent is there shows when the link says hello.
    deadline = time.monotonic() + timeout
    while not _accepts(local):
        if proc.poll() is not None:
            err.seek(0)
            why = err.read().decode(errors="replace").strip().splitlines()
            raise SshError(f"ssh to {target.destination} failed (exit {proc.returncode}): "
                           f"{why[-1] if why else 'no message'}")
        if time.monotonic() > deadline:
            raise SshError(f"ssh to {target.destination} did not log in within {timeout:.0f} s")
        time.sleep(0.1)
    return f"socket://127.0.0.1:{local}"
