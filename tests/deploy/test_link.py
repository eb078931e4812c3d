"""The serial link's framing and delivery over real pyserial ports (socket:// URLs), through FaultyLine: a TCP
'cable' between a board and a host that flips bits, drops bytes, inserts garbage, goes silent, cuts the line
or throttles it to a baud rate. FaultyLine and Faults are also used by test_transfer.py."""
from __future__ import annotations

import json
import select
import socket
import threading
import time
import types

import pytest

serial = pytest.importorskip("serial")

from clawdbot.deploy import link as L  # noqa: E402
from clawdbot.deploy.link import (Link, LinkError, LinkTimeout, Msg, PeerRestarted, default_payload,  # noqa: E402
                                  encode_frame)


class Faults:
    """What happens to one direction of one host connection; offsets count bytes sent into the line."""

    def __init__(self, flip=None, drop=(), insert=None, cut_at=None, mute_at=None):
        self.flip = dict(flip or {})      # offset -> xor mask
        self.drop = set(drop)             # offsets of bytes that never arrive
        self.insert = dict(insert or {})  # offset -> garbage that arrives before that byte
        self.cut_at = cut_at              # the line is cut (host socket closed) when this byte is reached
        self.mute_at = mute_at            # from this byte on nothing arrives (a peer that stops answering)
        self._marks = sorted({*self.flip, *self.drop, *self.insert})

    def apply(self, pos: int, data: bytes) -> tuple[bytes, bool]:
        end = pos + len(data)
        quiet = not any(pos <= m < end for m in self._marks)
        if quiet and (self.cut_at is None or self.cut_at >= end) and (self.mute_at is None or self.mute_at >= end):
            return data, False
        out = bytearray()
        for i, b in enumerate(data):
            p = pos + i
            if self.cut_at is not None and p >= self.cut_at:
                return bytes(out), True
            out += self.insert.get(p, b"")
            if (self.mute_at is not None and p >= self.mute_at) or p in self.drop:
                continue
            out.append(b ^ self.flip.get(p, 0))
        return bytes(out), False


class FaultyLine:
    """Board and host connect to their own listening ports (board_url, host_url). The board connects once and
    stays, like a UART; each host connection takes the next of `plans` (host->board Faults, board->host Faults),
    and is clean once they run out. bps throttles both directions to a baud rate (10 bits a byte)."""

    def __init__(self, plans=(), bps: int | None = None):
        self.plans, self.bps = list(plans), bps
        self._board_srv = socket.create_server(("127.0.0.1", 0))
        self._host_srv = socket.create_server(("127.0.0.1", 0))
        self._host_srv.settimeout(0.05)
        self.board_url = f"socket://127.0.0.1:{self._board_srv.getsockname()[1]}"
        self.host_url = f"socket://127.0.0.1:{self._host_srv.getsockname()[1]}"
        self.h2b: list[int] = []  # bytes the host sent into the line, per connection
        self.b2h: list[int] = []
        self._closed = threading.Event()
        self._board: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        for s in (self._board_srv, self._host_srv, self._board):
            if s is not None:
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self) -> None:
        self._board_srv.settimeout(0.05)
        while self._board is None and not self._closed.is_set():
            try:
                self._board, _ = self._board_srv.accept()
                self._board.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except socket.timeout:
                pass
        n = 0
        while not self._closed.is_set():
            try:
                host, _ = self._host_srv.accept()
            except socket.timeout:
                continue
            host.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            h2b, b2h = self.plans.pop(0) if self.plans else (Faults(), Faults())
            self.h2b.append(0)
            self.b2h.append(0)
            done = threading.Event()
            pumps = [threading.Thread(target=self._pump, args=(host, self._board, h2b, self.h2b, n, done)),
                     threading.Thread(target=self._pump, args=(self._board, host, b2h, self.b2h, n, done))]
            for t in pumps:
                t.start()
            for t in pumps:
                t.join()
            host.close()  # the host's next read fails: a cut line
            n += 1

    def _pump(self, src, dst, faults: Faults, counts: list[int], n: int, done: threading.Event) -> None:
        pos, due = 0, time.monotonic()
        while not done.is_set() and not self._closed.is_set():
            if not select.select([src], [], [], 0.02)[0]:
                continue
            try:
                data = src.recv(64 if self.bps else 65536)
            except OSError:
                data = b""
            if not data:
                break
            counts[n] += len(data)
            out, cut = faults.apply(pos, data)
            pos += len(data)
            if self.bps:
                due = max(due, time.monotonic()) + len(out) * 10 / self.bps
                time.sleep(max(0.0, due - time.monotonic()))
            try:
                dst.sendall(out)
            except OSError:
                break
            if cut:
                break
        done.set()


@pytest.fixture(autouse=True)
def _no_close_nap(monkeypatch):
    # pyserial's socket:// port sleeps 0.3 s after every close, for servers slow to re-accept; FaultyLine is not.
    from serial.urlhandler import protocol_socket
    monkeypatch.setattr(protocol_socket, "time", types.SimpleNamespace(sleep=lambda s: None))


def _port(url: str):
    return serial.serial_for_url(url, timeout=L.POLL, write_timeout=2)


class EchoBoard:
    """A board that answers {"cmd": "echo"} and counts DATA messages, on a raw Link."""

    def __init__(self, line: FaultyLine, **link_args):
        self.port = _port(line.board_url)
        self.link = Link(self.port, **link_args)
        self.data: list[bytes] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                mtype, payload = self.link.recv(0.1, "a request")
                if mtype == Msg.DATA:
                    self.data.append(payload)
                elif mtype == Msg.REQUEST:
                    cmd = json.loads(payload)
                    if cmd["cmd"] == "echo":
                        self.link.reply(cmd, {"echo": cmd["data"], "got": len(self.data)})
                    else:
                        self.link.reply_error(cmd, f"no {cmd['cmd']!r} here", "UnknownCommand")
            except LinkTimeout:
                pass
            except PeerRestarted:
                self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def close(self) -> None:
        self.stop()
        self.port.close()


@pytest.fixture
def wire():
    """wire(plans, bps=None, **link_args) -> (line, board, host Link), all torn down afterwards."""
    made = []

    def make(plans=(), bps=None, **link_args):
        line = FaultyLine(plans, bps)
        board = EchoBoard(line, **link_args)
        host_port = _port(line.host_url)
        made.append((line, board, host_port))
        return line, board, Link(host_port, **link_args)

    yield make
    for line, board, host_port in made:
        host_port.close()
        board.close()
        line.close()


FAST = dict(max_payload=256, window=4, timeout=0.2, retries=6, frame_timeout=0.1, response_timeout=3.0)


# -- framing, no I/O ----------------------------------------------------------------------------------------
def test_frames_survive_garbage_and_payloads_that_look_like_markers():
    tricky = L.MARKER * 40 + encode_frame(Msg.ACK, 7)  # a whole frame inside the payload
    frames = [encode_frame(Msg.DATA, 1, tricky), encode_frame(Msg.REQUEST, 2, b'{"cmd":"x"}', more=True),
              encode_frame(Msg.ACK, 3)]
    stream = b"\x00\xc1\xc1\xab junk" + frames[0] + L.MARKER + b"\xff" * 5 + frames[1] + b"\xc1" + frames[2]
    reader = L.FrameReader(max_payload=1024)
    got = []
    for i in range(0, len(stream), 7):  # fed in odd-sized pieces, as a serial port hands them over
        reader.feed(stream[i:i + 7])
        while (f := reader.next_frame()) is not None:
            got.append(f)
    assert [(f.type, f.seq, f.payload, f.more) for f in got if f.payload is not None] == [
        (Msg.DATA, 1, tricky, False), (Msg.REQUEST, 2, b'{"cmd":"x"}', True), (Msg.ACK, 3, b"", False)]
    assert reader.garbage > 0


def test_a_corrupted_length_is_dropped_without_waiting_for_it():
    bad = bytearray(encode_frame(Msg.DATA, 5, b"x" * 100))
    bad[2 + 1 + 4 + 3] ^= 0x40  # the length's top byte: 1 GiB, caught by the header CRC
    huge = L.MARKER + L._HEAD.pack(Msg.DATA, 6, 1 << 30)
    huge += L._HCRC.pack(__import__("zlib").crc32(huge[2:]) & 0xFFFF)  # a good header CRC, an absurd length
    reader = L.FrameReader(max_payload=1024)
    reader.feed(bytes(bad) + huge + encode_frame(Msg.ACK, 9))
    frame = reader.next_frame()
    assert (frame.type, frame.seq, frame.payload) == (Msg.ACK, 9, b"")
    assert reader.bad_headers >= 2


def test_a_truncated_frame_is_given_up_and_the_next_one_found():
    reader = L.FrameReader(max_payload=1024, frame_timeout=0.05)
    reader.feed(encode_frame(Msg.DATA, 1, b"y" * 500)[:-100] + encode_frame(Msg.HELLO, 42, b"{}"))
    assert reader.next_frame() is None  # could still be the DATA frame's missing bytes
    time.sleep(0.08)
    frame = reader.next_frame()
    assert (frame.type, frame.seq, frame.payload) == (Msg.HELLO, 42, b"{}") and reader.stale == 1


def test_default_payload_follows_the_baud_rate():
    assert default_payload(115200) == 1024
    assert default_payload(9600) == 256
    assert default_payload(921600) == 8192
    assert default_payload(12_000_000) == 16384


# -- delivery over pyserial ports ---------------------------------------------------------------------------
def test_requests_and_a_fragmented_answer_on_a_clean_line(wire):
    line, board, host = wire(**FAST)
    info = host.connect()
    assert info["max_payload"] == 256 and info["version"] == L.PROTOCOL_VERSION
    big = "z" * 5000  # twenty frames each way
    assert host.request({"cmd": "echo", "data": big})["echo"] == big
    with pytest.raises(L.RemoteError, match="no 'nope' here") as e:
        host.request({"cmd": "nope"})
    assert e.value.kind == "UnknownCommand"
    assert host.stats.retransmits == 0


def _stream(host: Link, count: int) -> list[bytes]:
    sent = [bytes([i % 256]) * (50 + i * 7 % 200) + i.to_bytes(4, "little") for i in range(count)]
    for payload in sent:
        host.send(Msg.DATA, payload)
    assert host.request({"cmd": "echo", "data": "end"})["got"] == count
    return sent


def test_corruption_both_ways_is_nak_ed_and_resent_and_delivered_once_in_order(wire):
    h2b = Faults(flip={700: 0x01, 1500: 0x80, 2600: 0xFF, 4000: 0x10, 6100: 0x04})
    b2h = Faults(flip={30: 0x20, 90: 0x01, 200: 0x08})  # in the HELLO_ACK and in ACKs: resends, duplicates
    line, board, host = wire([(h2b, b2h)], **FAST)
    host.connect()
    sent = _stream(host, 60)
    assert board.data == sent
    assert board.link.stats.naks_sent >= 1 and host.stats.retransmits >= 1


def test_dropped_bytes_and_inserted_garbage_are_survived(wire):
    h2b = Faults(drop={800, 801, 2000, 5500}, insert={1200: L.MARKER + b"\x05\x00", 3000: b"\xc1" * 300,
                                                      4500: encode_frame(Msg.ACK, 3)[:-1]})
    b2h = Faults(drop={60}, insert={150: b"garbage" + L.MARKER})
    line, board, host = wire([(h2b, b2h)], **FAST)
    host.connect()
    assert board.data == [] and _stream(host, 60) == board.data


def test_a_board_that_never_answers_is_a_clear_timeout(wire):
    line, board, host = wire(**{**FAST, "retries": 3})
    board.stop()  # the port is open at the other end but nobody reads it
    start = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"no answer to HELLO after 4 attempt\(s\).*agent running"):
        host.connect()
    assert time.monotonic() - start < 3


def test_a_board_that_stops_answering_mid_session_is_a_clear_timeout(wire):
    line, board, host = wire([(Faults(), Faults(mute_at=300))], **{**FAST, "retries": 3, "response_timeout": 1.0})
    host.connect()
    host.request({"cmd": "echo", "data": "hi"})
    start = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"(answer to 'echo'|acknowledgement).*"):
        for _ in range(20):
            host.request({"cmd": "echo", "data": "again"})
    assert time.monotonic() - start < 2


def test_a_reconnect_restarts_the_session_on_both_sides(wire):
    line, board, host = wire(**FAST)
    host.connect()
    host.send(Msg.DATA, b"one")
    host.flush()
    again = Link(host.port, **FAST)  # the host program restarted on the same line
    again.connect()
    assert again.request({"cmd": "echo", "data": "two"}) == {"echo": "two", "got": 1}
    assert board.restarts >= 2


def test_a_board_that_gave_up_on_a_vanished_host_serves_the_next_one(wire):
    args = {**FAST, "retries": 2}
    line, board, host = wire(**args)
    host.connect()
    host.send(Msg.REQUEST, json.dumps({"cmd": "echo", "data": "lost", "id": 1}).encode())
    host.port.close()  # the host dies before the answer comes: the board's resends go nowhere
    time.sleep(args["timeout"] * (args["retries"] + 2))
    with _port(line.host_url) as port:
        again = Link(port, **args)
        again.connect()
        assert again.request({"cmd": "echo", "data": "next"})["echo"] == "next"


def test_a_peer_speaking_another_protocol_version_is_refused(wire):
    line, board, host = wire(**FAST)
    host.port.write(encode_frame(Msg.HELLO, 77, json.dumps({"version": 99, "max_payload": 256, "window": 1}).encode()))
    reader = L.FrameReader(1024)
    deadline = time.monotonic() + 2
    while (frame := reader.next_frame()) is None and time.monotonic() < deadline:
        reader.feed(host.port.read(64))
    assert frame.type == Msg.HELLO_ACK and "protocol version 99 is not supported" in json.loads(frame.payload)["error"]
    with pytest.raises(LinkError, match="no session"):
        host.send(Msg.DATA, b"x")


def test_throughput_at_115200_baud(wire):
    """At a simulated 115200 baud (11520 bytes/s of line) the 1 KiB frames and ACK window keep it busy."""
    args = dict(max_payload=1024, window=4, **L.timeouts_for(115200, 1024, 4))
    del args["write_timeout"]
    line, board, host = wire(bps=115200, **args)
    host.connect()
    payload = bytes(range(256)) * 4
    start = time.monotonic()
    for _ in range(16):
        host.send(Msg.DATA, payload)
    host.flush()
    seconds = time.monotonic() - start
    rate = 16 * 1024 / seconds
    print(f"\n115200 baud: {rate:.0f} payload bytes/s = {rate / 11520:.0%} of the line")
    assert len(board.data) == 16 and rate > 0.7 * 11520
