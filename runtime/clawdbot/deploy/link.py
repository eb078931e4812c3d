"""Framing and reliable, ordered delivery over a byte stream: a serial line, or anything pyserial opens.

One frame on the wire (little-endian):

    C1 AB    type u8   seq u32   length u32   hcrc u16   payload (length bytes)   crc u32

* The two marker bytes are where a reader starts. Nothing is escaped: the length says where the frame ends,
  so payload bytes equal to the marker are harmless. After a bad frame the reader drops one byte and scans
  for the next marker, so a frame hidden behind garbage or a truncated frame is still found.
* hcrc (low 16 bits of CRC-32 over type, seq, length) is checked before the payload is awaited, and the
  length is bounded by the reader's max payload: a corrupted length is dropped at once, never waited for.
  A frame that stays incomplete for `frame_timeout` (bytes lost on the line) is given up the same way.
* crc is CRC-32 over type, seq, length and payload.
* type bit 7 (MORE) marks a fragment: a message longer than the payload size is sent as several frames.

Delivery. REQUEST, RESPONSE, DATA and ERROR frames are sequenced: a sliding window (Go-Back-N, `window`
frames in flight; 1 makes it stop-and-wait). The receiver takes frames in order only and ACKs each one
cumulatively; it NAKs once when it sees a gap or a frame with a good header and a bad CRC, and the sender
then resends from there. A silent peer makes the sender resend everything unacknowledged every `timeout`
seconds, `retries` times at most (a NAK counts as a try too; any progress starts the count again), then
raise LinkTimeout saying what it was waiting for and end the session: sequenced frames are ignored until
the next HELLO. Duplicates (a resend whose ACK was lost) are re-ACKed and dropped. ACK, NAK, HELLO and
HELLO_ACK are not sequenced.

Sessions. The host's connect() sends HELLO {version, max_payload, window} with a random nonce until a
HELLO_ACK echoes it; both sides then reset their sequence numbers and use the smaller payload and window.
A HELLO with a new nonce (the host reconnected) resets the other side too, and its next recv()/send()
raises PeerRestarted once so that whatever it was in the middle of can save its state and give up.

    link = Link(port, max_payload=1024, window=4, timeout=1.0, retries=5)
    link.connect()                                   # host
    answer = link.request({"cmd": "status"})         # -> dict, or RemoteError if the peer answered ERROR
    mtype, payload = link.recv(timeout, what="...")  # board: take the next message (Msg, bytes)
    link.reply(request, {...}); link.reply_error(request, "why", kind="...")
    link.send(Msg.DATA, payload); link.flush()

Errors (all ClawError): LinkError and its LinkTimeout, LinkLost (the port failed), PeerRestarted; and
RemoteError, the peer's own ERROR answer.

`port` is any object with read(n), write(b) and a `timeout` attribute (every pyserial port): Link polls, and
lowers the port's read timeout to POLL seconds so that no read can block longer than that.
"""
from __future__ import annotations

import enum
import json
import random
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ClawError

PROTOCOL_VERSION = 1
MARKER = b"\xc1\xab"
MORE = 0x80
_HEAD = struct.Struct("<BII")  # type, seq, length
_HCRC = struct.Struct("<H")
_CRC = struct.Struct("<I")
HEADER_SIZE = len(MARKER) + _HEAD.size + _HCRC.size
OVERHEAD = HEADER_SIZE + _CRC.size
MAX_PAYLOAD_LIMIT = 1 << 20
MAX_MESSAGE = 4 << 20  # a reassembled message; JSON commands are small, parts travel as DATA chunks
POLL = 0.05
_MASK = 0xFFFFFFFF


class LinkError(ClawError):
    """The line or the peer failed: no answer, line gone, protocol mismatch."""


class LinkTimeout(LinkError):
    """The peer did not answer in time. The message says what was being waited for."""


class LinkLost(LinkError):
    """The port itself failed (unplugged, socket closed)."""


class PeerRestarted(LinkError):
    """The peer started a new session (a HELLO with a new nonce) while this side was mid-exchange."""


class RemoteError(ClawError):
    """The peer answered a request with ERROR; `kind` is its error class name, `command` the request's."""

    def __init__(self, message: str, kind: str = "error", command: str = "?"):
        super().__init__(message)
        self.kind, self.command = kind, command


class Msg(enum.IntEnum):
    HELLO = 1
    HELLO_ACK = 2
    REQUEST = 3
    RESPONSE = 4
    DATA = 5
    ERROR = 6
    ACK = 7
    NAK = 8


_TYPES = frozenset(int(m) for m in Msg)
_UNSEQUENCED = frozenset({Msg.HELLO, Msg.HELLO_ACK, Msg.ACK, Msg.NAK})


class Frame(NamedTuple):
    type: int
    seq: int
    payload: bytes | None  # None: the header was good but the CRC was not
    more: bool = False


def encode_frame(mtype: int, seq: int, payload: bytes = b"", more: bool = False) -> bytes:
    head = _HEAD.pack(int(mtype) | (MORE if more else 0), seq & _MASK, len(payload))
    hcrc = zlib.crc32(head)
    return b"".join((MARKER, head, _HCRC.pack(hcrc & 0xFFFF), payload, _CRC.pack(zlib.crc32(payload, hcrc))))


def default_payload(baudrate: int) -> int:
    """About a tenth of a second of line time per frame, a power of two in [256, 16384]: 1 KiB at 115200."""
    size = 256
    while size * 2 <= min(baudrate // 100, 16384):
        size *= 2
    return size


def timeouts_for(baudrate: int, max_payload: int, window: int) -> dict[str, float]:
    """Timeouts that fit the line's speed: a full window must be able to drain before a resend."""
    frame_s = (max_payload + OVERHEAD) * 10 / baudrate
    return {"timeout": max(0.5, 2 * window * frame_s + 0.25), "frame_timeout": max(0.25, 4 * frame_s),
            "write_timeout": max(2.0, 4 * window * frame_s)}


def _after(a: int, b: int) -> int:
    """a - b in sequence-number space (wraps at 2**32)."""
    d = (a - b) & _MASK
    return d - (1 << 32) if d & 0x80000000 else d


class FrameReader:
    """Finds frames in a byte stream fed in arbitrary pieces; resynchronises after anything bad."""

    def __init__(self, max_payload: int, frame_timeout: float = 0.5):
        self.buf = bytearray()
        self.max_payload, self.frame_timeout = max_payload, frame_timeout
        self.need = HEADER_SIZE  # bytes that would complete what is buffered
        self._since: float | None = None  # when the frame at the head was first seen incomplete
        self.garbage = self.bad_headers = self.bad_frames = self.stale = 0

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_frame(self) -> Frame | None:
        buf = self.buf
        while True:
            i = buf.find(MARKER)
            if i < 0:
                keep = 1 if buf[-1:] == MARKER[:1] else 0
                self._drop(len(buf) - keep, garbage=True)
                self.need = HEADER_SIZE - keep
                return None
            if i:
                self._drop(i, garbage=True)
            if len(buf) < HEADER_SIZE:
                if self._stale():
                    continue
                self.need = HEADER_SIZE - len(buf)
                return None
            head = memoryview(buf)[2:2 + _HEAD.size]
            code, seq, length = _HEAD.unpack(head)
            hcrc = zlib.crc32(head)
            head.release()
            if (hcrc & 0xFFFF != _HCRC.unpack_from(buf, 2 + _HEAD.size)[0] or length > self.max_payload
                    or code & ~MORE not in _TYPES):
                self.bad_headers += 1
                self._drop(1)
                continue
            end = HEADER_SIZE + length + _CRC.size
            if len(buf) < end:
                if self._stale():
                    continue
                self.need = end - len(buf)
                return None
            payload = bytes(buf[HEADER_SIZE:HEADER_SIZE + length])
            good = zlib.crc32(payload, hcrc) == _CRC.unpack_from(buf, end - _CRC.size)[0]
            if not good:
                # Drop one byte only: the bytes after this marker may hold the next, intact frame.
                self.bad_frames += 1
                self._drop(1)
            else:
                self._drop(end)
            return Frame(code & ~MORE, seq, payload if good else None, bool(code & MORE))

    def _drop(self, n: int, garbage: bool = False) -> None:
        del self.buf[:n]
        self._since = None
        if garbage:
            self.garbage += n

    def _stale(self) -> bool:
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif now - self._since > self.frame_timeout:
            self.stale += 1
            self._drop(1)
            return True
        return False


@dataclass
class LinkStats:
    bytes_in: int = 0
    bytes_out: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    retransmits: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    duplicates: int = 0


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _unjson(payload: bytes, what: str) -> dict:
    try:
        obj = json.loads(payload)
    except ValueError as e:
        raise LinkError(f"malformed JSON in {what}: {e}") from None
    if not isinstance(obj, dict):
        raise LinkError(f"{what} is not a JSON object")
    return obj


class Link:
    def __init__(self, port, *, max_payload: int = 1024, window: int = 4, timeout: float = 1.0,
                 retries: int = 5, frame_timeout: float = 0.5, response_timeout: float = 10.0):
        if not 16 <= max_payload <= MAX_PAYLOAD_LIMIT:
            raise ValueError(f"max_payload must be in [16, {MAX_PAYLOAD_LIMIT}], not {max_payload}")
        if window < 1 or retries < 0:
            raise ValueError("window must be at least 1 and retries at least 0")
        self.port = port
        if getattr(port, "timeout", None) is None or port.timeout > POLL:
            port.timeout = POLL  # every read returns within POLL: deadlines are checked between reads
        self.max_payload, self.max_window = max_payload, window
        self.timeout, self.retries, self.response_timeout = timeout, retries, response_timeout
        self.reader = FrameReader(max_payload, frame_timeout)
        self.stats = LinkStats()
        self.peer: dict = {}
        self._doing = "idle"
        self._req_id = 0
        self._reset(None, max_payload, window)

    def _reset(self, session: int | None, payload: int, window: int) -> None:
        self.session, self.payload_size, self.window = session, payload, window
        self._tx_seq = 0
        self._unacked: deque[tuple[int, int, bytes, float]] = deque()  # seq, type, frame, first sent
        self._timer, self._tries = 0.0, 0
        self._rx_expect, self._nak_for = 0, None
        self._inbox: deque[tuple[Msg, bytes]] = deque()
        self._partial = bytearray()
        self._restarted = False

    def _agree(self, session: int, info: dict) -> None:
        payload = min(self.max_payload, max(16, int(info["max_payload"])))
        self._reset(session, payload, min(self.max_window, max(1, int(info["window"]))))

    # -- sessions -------------------------------------------------------------------------------------
    def connect(self, attempts: int | None = None) -> dict:
        """Host side: HELLO until the peer answers; returns its HELLO_ACK (version, max_payload, window)."""
        attempts = attempts or self.retries + 1
        nonce = random.getrandbits(32) or 1
        hello = _json({"version": PROTOCOL_VERSION, "max_payload": self.max_payload, "window": self.max_window})
        start = time.monotonic()
        for _ in range(attempts):
            self._write(encode_frame(Msg.HELLO, nonce, hello))
            until = time.monotonic() + self.timeout
            while (frame := self._read_frame(until)) is not None:
                if frame.type == Msg.HELLO_ACK and frame.seq == nonce and frame.payload is not None:
                    info = _unjson(frame.payload, "the peer's HELLO_ACK")
                    if "error" in info:
                        raise LinkError(f"the peer refused the connection: {info['error']}")
                    self._agree(nonce, info)
                    self.peer = info
                    return info
                # anything else is left over from an earlier session
        raise LinkTimeout(f"no answer to HELLO after {attempts} attempt(s) over {time.monotonic() - start:.1f} s: "
                          f"is the agent running on the board, on this port, at this baud rate?")

    def _on_hello(self, frame: Frame) -> None:
        try:
            info = json.loads(frame.payload)
            version = int(info["version"])
            int(info["max_payload"]), int(info["window"])
        except (ValueError, KeyError, TypeError):
            return
        if version != PROTOCOL_VERSION:
            why = f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})"
            self._write(encode_frame(Msg.HELLO_ACK, frame.seq, _json({"version": PROTOCOL_VERSION, "error": why})))
            return
        if frame.seq != self.session:  # a new host session, not a repeated HELLO of the current one
            self._agree(frame.seq, info)
            self.peer = info
            self._restarted = True
        answer = {"version": PROTOCOL_VERSION, "max_payload": self.payload_size, "window": self.window}
        self._write(encode_frame(Msg.HELLO_ACK, frame.seq, _json(answer)))

    # -- sending --------------------------------------------------------------------------------------
    def send(self, mtype: Msg, payload: bytes, what: str | None = None) -> None:
        """Queue one message, split into fragments if longer than the payload size. Blocks only while the
        window is full (resending as needed); raises LinkTimeout, naming `what`, when the peer stops
        acknowledging."""
        self._doing = what or f"sending a {Msg(mtype).name} message"
        if self.session is None:
            raise LinkError("no session: connect() first (host), or wait for the peer's HELLO (board)")
        if len(payload) > MAX_MESSAGE:
            raise ValueError(f"a {len(payload)}-byte message is over the {MAX_MESSAGE}-byte limit")
        step = self.payload_size
        pieces = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for n, piece in enumerate(pieces):
            self._check_restart()
            while len(self._unacked) >= self.window:
                self._pump(float("inf"))  # bounded: the resend timer raises after `retries`
                self._check_restart()
            frame = encode_frame(mtype, self._tx_seq, piece, more=n < len(pieces) - 1)
            self._write(frame)
            now = time.monotonic()
            if not self._unacked:
                self._timer, self._tries = now, 0
            self._unacked.append((self._tx_seq, int(mtype), frame, now))
            self._tx_seq = (self._tx_seq + 1) & _MASK

    def flush(self) -> None:
        """Wait until everything sent has been acknowledged."""
        while self._unacked:
            self._pump(float("inf"))
            self._check_restart()

    def request(self, cmd: dict, timeout: float | None = None) -> dict:
        """Send a JSON command and wait for its answer; RemoteError if the peer answers with ERROR."""
        name = str(cmd.get("cmd", "?"))
        self._req_id += 1
        rid = self._req_id
        self.send(Msg.REQUEST, _json({**cmd, "id": rid}), what=f"sending {name!r}")
        timeout = self.response_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            mtype, payload = self.recv(left, what=f"the answer to {name!r}")
            if mtype not in (Msg.RESPONSE, Msg.ERROR):
                continue  # e.g. stray DATA after an aborted transfer
            answer = _unjson(payload, f"the answer to {name!r}")
            if answer.pop("id", None) != rid:
                continue  # the late answer to an earlier request that timed out
            if mtype == Msg.ERROR:
                raise RemoteError(str(answer.get("error", "unspecified error")), str(answer.get("kind", "error")), name)
            return answer

    def reply(self, request: dict, answer: dict) -> None:
        self.send(Msg.RESPONSE, _json({**answer, "id": request.get("id")}))

    def reply_error(self, request: dict, message: str, kind: str = "error") -> None:
        self.send(Msg.ERROR, _json({"error": message, "kind": kind, "id": request.get("id")}))

    # -- receiving ------------------------------------------------------------------------------------
    def recv(self, timeout: float | None = None, what: str = "a message") -> tuple[Msg, bytes]:
        """The next whole message in order. LinkTimeout names `what` if none comes within `timeout`."""
        timeout = self.response_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        doing, self._doing = self._doing, f"waiting for {what}"
        try:
            while True:
                self._check_restart()
                if self._inbox:
                    return self._inbox.popleft()
                if time.monotonic() >= deadline:
                    raise LinkTimeout(f"timed out after {timeout:.1f} s waiting for {what}")
                self._pump(deadline)
        finally:
            self._doing = doing

    def pending(self) -> bool:
        """Whether a whole message is waiting (no I/O)."""
        return bool(self._inbox)

    # -- the engine -----------------------------------------------------------------------------------
    def _check_restart(self) -> None:
        if self._restarted:
            self._restarted = False
            raise PeerRestarted(f"the peer started a new session while this side was {self._doing}")

    def _pump(self, until: float) -> None:
        """Handle at most one incoming frame, waiting until `until` at most; resend on the timer."""
        if self._unacked:
            if time.monotonic() >= self._timer + self.timeout:
                self._resend("no acknowledgement")
            until = min(until, self._timer + self.timeout)
        frame = self._read_frame(until)
        if frame is not None:
            self._dispatch(frame)

    def _read_frame(self, until: float) -> Frame | None:
        while True:
            frame = self.reader.next_frame()
            if frame is not None:
                return frame
            if time.monotonic() >= until:
                return None
            try:
                # Ask for what completes the frame being read: a socket port then returns as soon as it is
                # there (its in_waiting is only 0 or 1), a tty port also hands over what else it has.
                data = self.port.read(max(self.reader.need, getattr(self.port, "in_waiting", 0) or 0))
            except OSError as e:  # pyserial's SerialException is an OSError
                raise LinkLost(f"the line is gone ({e}) while {self._doing}") from e
            if data:
                self.stats.bytes_in += len(data)
                self.reader.feed(data)

    def _write(self, frame: bytes) -> None:
        try:
            self.port.write(frame)
        except OSError as e:
            if "timeout" in type(e).__name__.lower():
                raise LinkTimeout(f"writing to the line timed out while {self._doing}: the peer is not reading") from e
            raise LinkLost(f"the line is gone ({e}) while {self._doing}") from e
        self.stats.bytes_out += len(frame)
        self.stats.frames_sent += 1

    def _resend(self, why: str) -> None:
        seq, mtype, _, first = self._unacked[0]
        if self._tries >= self.retries:
            # The session is over: keeping its frames would make every later call give up at once, and a
            # board must still hear the next host's HELLO. Sequenced frames are ignored until one comes.
            tries, _ = self._tries, self._reset(None, self.max_payload, self.max_window)
            raise LinkTimeout(f"{why} from the peer for {Msg(mtype).name} frame {seq} after {tries} "
                              f"resend(s) over {time.monotonic() - first:.1f} s, while {self._doing}")
        self._tries += 1
        for _, _, frame, _ in self._unacked:
            self._write(frame)
            self.stats.retransmits += 1
        self._timer = time.monotonic()

    def _dispatch(self, frame: Frame) -> None:
        t = frame.type
        if frame.payload is None:  # a good header, a bad body: ask for it again at once
            if t not in _UNSEQUENCED and self.session is not None and _after(frame.seq, self._rx_expect) >= 0:
                self._nak()
            return
        self.stats.frames_received += 1
        if t == Msg.ACK:
            self._on_ack(frame.seq)
        elif t == Msg.NAK:
            self.stats.naks_received += 1
            if self._unacked and _after(frame.seq, self._unacked[0][0]) >= 0 and _after(frame.seq, self._tx_seq) < 0:
                self._on_ack((frame.seq - 1) & _MASK)  # a NAK for n acknowledges everything before n
                self._resend("only NAKs")
        elif t == Msg.HELLO:
            self._on_hello(frame)
        elif t == Msg.HELLO_ACK or self.session is None:
            pass  # a repeated handshake answer; or data from before any session
        else:
            d = _after(frame.seq, self._rx_expect)
            if d == 0:
                self._rx_expect = (self._rx_expect + 1) & _MASK
                self._nak_for = None
                self._write(encode_frame(Msg.ACK, frame.seq))
                self._partial += frame.payload
                if len(self._partial) > MAX_MESSAGE:
                    self._partial.clear()
                    raise LinkError(f"the peer sent a message over {MAX_MESSAGE} bytes")
                if not frame.more:
                    self._inbox.append((Msg(t), bytes(self._partial)))
                    self._partial.clear()
            elif d < 0:  # a resend of something we have: its ACK was lost
                self.stats.duplicates += 1
                self._write(encode_frame(Msg.ACK, (self._rx_expect - 1) & _MASK))
            else:  # a gap: an earlier frame was lost
                self._nak()

    def _nak(self) -> None:
        if self._nak_for != self._rx_expect:  # once per gap: resends are on their way
            self._nak_for = self._rx_expect
            self._write(encode_frame(Msg.NAK, self._rx_expect))
            self.stats.naks_sent += 1

    def _on_ack(self, seq: int) -> None:
        if _after(seq, self._tx_seq) >= 0:
            return  # acknowledges something never sent: not for this session
        progressed = False
        while self._unacked and _after(seq, self._unacked[0][0]) >= 0:
            self._unacked.popleft()
            progressed = True
        if progressed:
            self._timer, self._tries = time.monotonic(), 0
