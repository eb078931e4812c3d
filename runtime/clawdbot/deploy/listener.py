"""The agent's loopback TCP listener: what `invoke flash --port ssh://user@board` reaches through an ssh
port forward (deploy/ssh.py). It speaks the same framed protocol as the serial line, so a flash over ssh is
the same offer / push / deploy against the same running agent: one process owns the slots and restarts
`claw serve` after a switch, whichever way the bundle came.

Listen on 127.0.0.1 only: whoever can log in over ssh may reach it, nobody else; and a deploy still has to
carry a signature from a key the board trusts."""
from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

from ..errors import ClawError
from .link import POLL, LinkLost

log = logging.getLogger("clawdbot.agent")

# The link's frames sized as for a fast line: the loopback and the ssh channel move megabytes a second.
LINE_RATE = 4_000_000


class SocketPort:
    """An accepted connection with the part of pyserial's port interface the link uses: read(n) returns
    what arrived within `timeout` (b"" if nothing), and a closed peer is an OSError, as pyserial's is."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.timeout = POLL
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, n: int) -> bytes:
        self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(max(1, n))
        except (socket.timeout, BlockingIOError):
            return b""
        if not data:
            raise ConnectionResetError("the peer closed the connection")
        return data

    def write(self, data: bytes) -> int:
        self.sock.settimeout(10.0)
        self.sock.sendall(data)
        return len(data)

    def close(self) -> None:
        self.sock.close()


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ClawError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:7070")
    return host, int(port)


class Listener:
    """Accepts one host at a time and answers it until it leaves; then the next."""

    def __init__(self, address: tuple[str, int], handler: Any, parts_dir: Path, stop: threading.Event,
                 lock: threading.Lock):
        self.handler, self.parts_dir, self.stop, self.lock = handler, parts_dir, stop, lock
        try:
            self.sock = socket.create_server(address, reuse_port=False)
        except OSError as e:
            raise ClawError(f"--listen {address[0]}:{address[1]}: cannot listen there ({e.strerror or e})") from None
        self.sock.settimeout(0.5)  # so `stop` is noticed between connections
        self.address = self.sock.getsockname()[:2]
        self.thread = threading.Thread(target=self._run, name="agent-listener", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def _run(self) -> None:
        from .transfer import Endpoint
        try:
            while not self.stop.is_set():
                try:
                    conn, peer = self.sock.accept()
                except socket.timeout:
                    continue
                port = SocketPort(conn)
                try:
                    ep = Endpoint(port, baudrate=LINE_RATE, response_timeout=600)
                    ep.serve(self.handler, self.parts_dir, stop=self.stop, lock=self.lock)
                except LinkLost as e:
                    log.info("host %s:%s left: %s", *peer[:2], e)
                except Exception:  # noqa: BLE001 - one host's broken session must not end the listener
                    log.exception("session with %s:%s failed", *peer[:2])
                finally:
                    port.close()
        finally:
            self.sock.close()
