"""Content-addressed parts (files named by their sha256) over a Link, resumably; and Endpoint, the peer API.

Host side:

    with Endpoint("/dev/ttyUSB0", baudrate=115200) as ep:   # or socket://host:port, rfc2217://..., loop://
        ep.connect()
        ep.push({sha256: path, ...}, progress=cb)  # offer, send what is missing, reconnect and resume on failure
        ep.request({"cmd": "status"})             # any handler command -> dict (RemoteError if it failed)

Board side:

    Endpoint("/dev/ttyGS0").serve(handler, parts_dir, stop=event)

The same as functions of a Link: offer(link, parts) -> missing, send_file(link, path, sha256, progress=cb)
-> SendResult, receive_file(link, dest_dir) -> Path, serve(link, handler, parts_dir, stop=event).

serve() answers these commands itself; any other {"cmd": name, **args} calls handler.cmd_<name>(**args)
(handler may be None), whose dict return value is the answer (anything else comes back as {"result": value})
and whose exception becomes an ERROR carrying its message and class name (RemoteError.kind on the host):

    {"cmd": "have", "parts": [sha256, ...]}  -> {"missing": [the ones parts_dir lacks]}
    {"cmd": "put", "sha256": s, "size": n}   -> {"offset": k}: where to go on from; or {"complete": true}
        then DATA messages in order, each a u64 file offset and the bytes from there
    {"cmd": "done", "sha256": s}             -> {"ok": true, "size": n} once the sha256 matched and the part
                                                was renamed into place; else ERROR kind "TransferError"

parts_dir holds <sha256> (complete and checked, renamed into place), <sha256>.part (the bytes so far) and
<sha256>.offset (JSON {"size", "offset"}: how much of .part is known to be on disk; written after an fsync
of .part, replaced atomically). The offset is committed every `commit_every` bytes and whenever a transfer
stops for any reason (timeout, line lost, host reconnected), so a resume re-sends what was in flight only,
or at most commit_every bytes after a power cut. The progress callback gets (bytes_done, total,
bytes_per_second): first (resume offset, total, 0.0), then after each chunk handed to the link (at most a
window ahead of what was ACKed), last (total, total, average rate) once the board confirmed the part.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crossbuild.installer import sha256 as sha256_file
from ..errors import ClawError
from .link import (POLL, Link, LinkError, LinkLost, LinkTimeout, Msg, PeerRestarted, RemoteError, default_payload,
                   timeouts_for)

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_OFFSET = struct.Struct("<Q")
COMMIT_EVERY = 64 * 1024
Progress = Callable[[int, int, float], None]


class TransferError(ClawError):
    """A part failed its end-to-end check, or could not be read, stored or resumed."""


class TransferInterrupted(TransferError):
    """Another command arrived in the middle of a transfer; `request` is that command (serve() runs it)."""

    def __init__(self, message: str, request: dict):
        super().__init__(message)
        self.request = request


@dataclass
class SendResult:
    sha256: str
    size: int
    resumed_from: int  # the receiver's offset when this call started (== size: it held the part already)
    sent: int          # file bytes sent by this call
    seconds: float


def _check_name(sha256: Any) -> str:
    # The name becomes a file name on the board: a strict pattern keeps '../' and friends out.
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise TransferError(f"not a part name (64 lowercase hex digits): {sha256!r}")
    return sha256


def _ask(link: Link, cmd: dict, timeout: float | None = None) -> dict:
    try:
        return link.request(cmd, timeout)
    except RemoteError as e:
        if e.kind == "TransferError":
            raise TransferError(str(e)) from None
        raise


# -- host side ----------------------------------------------------------------------------------------------
def offer(link: Link, parts: Iterable[str]) -> list[str]:
    """Which of `parts` the peer lacks."""
    names = [_check_name(p) for p in parts]
    return [str(p) for p in _ask(link, {"cmd": "have", "parts": names})["missing"]]


def send_file(link: Link, path: str | os.PathLike, sha256: str, *, progress: Progress | None = None,
              check: bool = True, done_timeout: float | None = None) -> SendResult:
    """Send one part, going on from wherever the receiver got to. check=False skips hashing the local file
    first (the receiver checks in any case; the local check only saves sending a wrong file for hours)."""
    path, sha256 = Path(path), _check_name(sha256)
    size = path.stat().st_size
    if check and (local := sha256_file(path)) != sha256:
        raise TransferError(f"{path}: its sha256 is {local}, not {sha256}")
    start = time.monotonic()
    answer = _ask(link, {"cmd": "put", "sha256": sha256, "size": size})
    if answer.get("complete"):
        if progress:
            progress(size, size, 0.0)
        return SendResult(sha256, size, size, 0, time.monotonic() - start)
    offset = answer.get("offset")
    if not isinstance(offset, int) or not 0 <= offset <= size:
        raise TransferError(f"the receiver wants part {sha256[:12]} from byte {offset!r} of {size}")
    if progress:
        progress(offset, size, 0.0)  # the bar starts where the receiver got to
    chunk = link.payload_size - _OFFSET.size
    pos, t0 = offset, time.monotonic()
    with path.open("rb") as f:
        f.seek(offset)
        while pos < size:
            data = f.read(min(chunk, size - pos))
            if not data:
                raise TransferError(f"{path} shrank to {pos} bytes while being sent")
            link.send(Msg.DATA, _OFFSET.pack(pos) + data, what=f"sending part {sha256[:12]} at byte {pos} of {size}")
            pos += len(data)
            while link.pending():  # the receiver gave up (disk full, ...): its ERROR says why
                mtype, payload = link.recv(0.0)
                if mtype == Msg.ERROR:
                    why = json.loads(payload).get("error", "unspecified")
                    raise TransferError(f"the receiver refused part {sha256[:12]} at byte {pos}: {why}")
            if progress:
                progress(pos, size, (pos - offset) / max(time.monotonic() - t0, 1e-6))
    # The receiver hashes the whole part before answering: allow for a slow board's disk and CPU.
    timeout = done_timeout or link.response_timeout + size / 20e6
    _ask(link, {"cmd": "done", "sha256": sha256}, timeout)
    elapsed = time.monotonic() - t0
    if progress:
        progress(size, size, (size - offset) / max(elapsed, 1e-6))
    return SendResult(sha256, size, offset, size - offset, time.monotonic() - start)


# -- board side ---------------------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on every OS; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(f, marker: Path, size: int, pos: int) -> None:
    # Data first, then the offset that vouches for it: a crash between the two loses progress, never data.
    f.flush()
    os.fsync(f.fileno())
    _write_atomic(marker, json.dumps({"size": size, "offset": pos}).encode())


def _resume_offset(part: Path, marker: Path, size: int) -> int:
    try:
        record = json.loads(marker.read_text())
        offset, recorded_size = int(record["offset"]), int(record["size"])
        on_disk = part.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return max(0, min(offset, on_disk)) if recorded_size == size else 0


def receive_file(link: Link, dest_dir: str | os.PathLike, put: dict | None = None, *,
                 commit_every: int = COMMIT_EVERY, idle_timeout: float | None = None) -> Path:
    """Receive one part into dest_dir, answering `put` (or waiting for it) with the offset to go on from.
    Returns the checked part's path. Raises TransferError after telling the sender why; LinkError (its
    progress committed) if the line fails; TransferInterrupted if another command arrives meanwhile."""
    dest = Path(dest_dir)
    if put is None:
        mtype, payload = link.recv(idle_timeout, what="a 'put' request")
        put = json.loads(payload) if mtype == Msg.REQUEST else {}
        if put.get("cmd") != "put":
            raise TransferError(f"expected a 'put' request, got {Msg(mtype).name} {put.get('cmd')!r}")
    sha256, size = put.get("sha256"), put.get("size")
    try:
        _check_name(sha256)
        if not isinstance(size, int) or size < 0:
            raise TransferError(f"part {sha256}: bad size {size!r}")
    except TransferError as e:
        link.reply_error(put, str(e), "TransferError")
        raise
    final, part, marker = dest / sha256, dest / f"{sha256}.part", dest / f"{sha256}.offset"
    if final.is_file():
        link.reply(put, {"complete": True})
        return final
    offset = _resume_offset(part, marker, size)
    if size - offset > (free := shutil.disk_usage(dest).free):
        why = f"part {sha256[:12]} needs {size - offset} more bytes, {dest} has {free} free"
        link.reply_error(put, why, "TransferError")
        raise TransferError(why)
    f = open(part, "r+b" if part.exists() else "w+b")
    pos = offset
    try:
        f.truncate(offset)  # bytes past the committed offset were never vouched for
        f.seek(offset)
        _commit(f, marker, size, offset)
        link.reply(put, {"offset": offset})
        committed, idle = offset, idle_timeout or link.timeout * (link.retries + 2)
        while True:
            mtype, payload = link.recv(idle, what=f"data for part {sha256[:12]} at byte {pos} of {size}")
            if mtype == Msg.DATA:
                (at,) = _OFFSET.unpack_from(payload) if len(payload) >= _OFFSET.size else (-1,)
                n = len(payload) - _OFFSET.size
                if at != pos or pos + n > size:
                    why = f"part {sha256[:12]}: got data for byte {at}, expected byte {pos} (of {size})"
                    link.reply_error(put, why, "TransferError")
                    raise TransferError(why)
                try:
                    f.write(memoryview(payload)[_OFFSET.size:])
                except OSError as e:
                    link.reply_error(put, f"cannot write {part}: {e}", "TransferError")
                    raise TransferError(f"cannot write {part}: {e}") from e
                pos += n
                if pos - committed >= commit_every:
                    _commit(f, marker, size, pos)
                    committed = pos
            elif mtype == Msg.REQUEST:
                done = json.loads(payload)
                if done.get("cmd") == "done" and done.get("sha256") == sha256:
                    break
                raise TransferInterrupted(f"transfer of {sha256[:12]} interrupted at byte {pos} by "
                                          f"{done.get('cmd')!r}", done)
    finally:
        try:
            _commit(f, marker, size, pos)
        except OSError as e:  # keep the error that stopped the transfer
            log.warning("could not commit %s at byte %d: %s", part, pos, e)
        f.close()
    if pos != size:
        why = f"part {sha256[:12]}: 'done' after {pos} of {size} bytes"
        link.reply_error(done, why, "TransferError")
        raise TransferError(why)
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        why = f"part {sha256}: the {size} bytes received hash to {digest}; discarded"
        link.reply_error(done, why, "TransferError")
        raise TransferError(why)
    os.replace(part, final)
    _fsync_dir(dest)
    marker.unlink(missing_ok=True)
    link.reply(done, {"ok": True, "size": size})
    return final


def serve(link: Link, handler: Any, parts_dir: str | os.PathLike, *, stop: threading.Event | None = None,
          idle: float = 0.25, commit_every: int = COMMIT_EVERY, lock: threading.Lock | None = None) -> None:
    """Answer requests until `stop` is set. Timeouts and host reconnects are survived; LinkLost is raised.

    `lock` is held while a request is answered, for a board answering several links (serial and ssh) from
    one parts directory and one pair of slots: their commands then run one at a time."""
    parts_dir = Path(parts_dir)
    lock = lock or contextlib.nullcontext()
    pending: dict | None = None
    while stop is None or not stop.is_set():
        try:
            if pending is not None:
                cmd, pending = pending, None
            else:
                mtype, payload = link.recv(idle, what="a request")
                if mtype != Msg.REQUEST:
                    continue  # e.g. DATA still arriving for a transfer that was given up
                try:
                    cmd = json.loads(payload)
                    assert isinstance(cmd, dict)
                except (ValueError, AssertionError):
                    link.reply_error({}, "a request must be a JSON object", "BadRequest")
                    continue
            with lock:
                pending = _dispatch(link, handler, parts_dir, cmd, commit_every)
        except (LinkTimeout, PeerRestarted) as e:
            if "waiting for a request" not in str(e):
                log.info("%s", e)


def _dispatch(link: Link, handler: Any, parts_dir: Path, cmd: dict, commit_every: int) -> dict | None:
    name = cmd.get("cmd")
    try:
        if name == "put":
            receive_file(link, parts_dir, cmd, commit_every=commit_every)
        elif name == "have":
            wanted = cmd.get("parts")
            if not isinstance(wanted, list):
                raise TransferError("'have' needs a list of parts")
            missing = [p for p in wanted if not (parts_dir / _check_name(p)).is_file()]
            link.reply(cmd, {"missing": missing})
        elif name == "done":
            raise TransferError(f"no transfer of part {cmd.get('sha256')!r} is in progress")
        else:
            fn = getattr(handler, f"cmd_{name}", None) if isinstance(name, str) and name.isidentifier() else None
            if fn is None:
                link.reply_error(cmd, f"unknown command {name!r}", "UnknownCommand")
                return None
            answer = fn(**{k: v for k, v in cmd.items() if k not in ("cmd", "id")})
            link.reply(cmd, answer if isinstance(answer, dict) else {"result": answer})
    except TransferInterrupted as e:
        log.info("%s", e)
        return e.request
    except TransferError as e:
        if name in ("have", "done"):
            link.reply_error(cmd, str(e), "TransferError")
        log.warning("%s", e)  # receive_file has told the sender already
    except (LinkError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - a handler's failure is the host's answer, not the agent's end
        log.exception("command %r failed", name)
        link.reply_error(cmd, str(e) or type(e).__name__, type(e).__name__)
    return None


def _offset(progress: Progress, base: int, total: int) -> Progress:
    """One part's progress as progress over all of them."""
    return lambda done, _size, rate: progress(base + done, total, rate)


# -- the peer API -------------------------------------------------------------------------------------------
class Endpoint:
    """One end of a serial line: opens `port` (a pyserial URL, or an open port-like object) and keeps a Link.

    Defaults follow the baud rate (payload about 0.1 s of line time, resend timeout long enough for a full
    window to drain); any of them can be given. For socket:// URLs baudrate only sets those defaults."""

    def __init__(self, port: str | Any, *, baudrate: int = 115200, max_payload: int | None = None, window: int = 4,
                 timeout: float | None = None, retries: int = 5, frame_timeout: float | None = None,
                 response_timeout: float = 10.0):
        self.url = port if isinstance(port, str) else None
        self.baudrate = baudrate
        payload = max_payload or default_payload(baudrate)
        t = timeouts_for(baudrate, payload, window)
        self._link_args = dict(max_payload=payload, window=window, timeout=timeout or t["timeout"],
                               retries=retries, frame_timeout=frame_timeout or t["frame_timeout"],
                               response_timeout=response_timeout)
        self._write_timeout = t["write_timeout"]
        self.port = self._open() if self.url else port
        self.link = Link(self.port, **self._link_args)

    def _open(self):
        import serial  # pyserial: only the serial link needs it
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=POLL,
                                         write_timeout=self._write_timeout)
        except (OSError, ValueError) as e:
            raise LinkLost(f"cannot open {self.url}: {e}") from e
        sock = getattr(port, "_socket", None)  # socket://: pyserial leaves Nagle on, which holds each
        if isinstance(sock, socket.socket):    # small frame (an ACK) back for up to 40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return port

    def close(self) -> None:
        if self.url:
            try:
                self.port.close()
            except OSError:
                pass

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- host -----------------------------------------------------------------------------------------
    def connect(self, attempts: int | None = None) -> dict:
        return self.link.connect(attempts)

    def reconnect(self) -> dict:
        """Reopen the port (for a URL) and start a new session; the board keeps its partial parts."""
        if self.url:
            self.close()
            self.port = self._open()
        self.link = Link(self.port, **self._link_args)
        return self.link.connect()

    def request(self, cmd: dict, timeout: float | None = None) -> dict:
        return self.link.request(cmd, timeout)

    def offer(self, parts: Iterable[str]) -> list[str]:
        return offer(self.link, parts)

    def send_file(self, path: str | os.PathLike, sha256: str, progress: Progress | None = None,
                  check: bool = True) -> SendResult:
        return send_file(self.link, path, sha256, progress=progress, check=check)

    def push(self, parts: Mapping[str, str | os.PathLike], progress: Progress | None = None,
             attempts: int = 3) -> list[SendResult]:
        """Send every part the board lacks. A failed line is reconnected and the transfer resumed, up to
        `attempts` sessions in all. progress gets (bytes_done, total, bytes_per_second) over all parts."""
        paths = {_check_name(s): Path(p) for s, p in parts.items()}
        sizes: dict[str, int] | None = None
        results: list[SendResult] = []
        for attempt in range(1, attempts + 1):
            try:
                if attempt > 1:
                    self.reconnect()
                elif self.link.session is None:
                    self.connect()
                missing = self.offer(paths)
                if sizes is None:
                    sizes = {s: paths[s].stat().st_size for s in missing}
                total = sum(sizes.values())
                for sha in missing:
                    base = sum(sizes.get(r.sha256, 0) for r in results)
                    each = _offset(progress, base, total) if progress else None
                    results.append(self.send_file(paths[sha], sha, progress=each))
                return results
            except LinkError as e:
                if attempt == attempts:
                    raise
                log.warning("%s; reconnecting (attempt %d of %d)", e, attempt + 1, attempts)
        return results

    # -- board ----------------------------------------------------------------------------------------
    def serve(self, handler: Any, parts_dir: str | os.PathLike, stop: threading.Event | None = None,
              commit_every: int = COMMIT_EVERY, lock: threading.Lock | None = None) -> None:
        """Answer the host until `stop` is set; a port that fails (USB unplugged) is reopened."""
        Path(parts_dir).mkdir(parents=True, exist_ok=True)
        while stop is None or not stop.is_set():
            try:
                serve(self.link, handler, parts_dir, stop=stop, commit_every=commit_every, lock=lock)
                return
            except LinkLost as e:
                if not self.url:
                    raise
                log.warning("%s; reopening %s", e, self.url)
                self.close()
                (stop.wait if stop else time.sleep)(0.5)
                try:
                    self.port = self._open()
                    self.link = Link(self.port, **self._link_args)
                except LinkLost:
                    continue
