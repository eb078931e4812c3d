"""Parts over the serial link end to end: a board Endpoint serving a parts directory, a host Endpoint pushing
files to it, and FaultyLine (test_link.py) between them corrupting, dropping, muting and cutting the line."""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("serial")

from clawdbot.deploy.link import OVERHEAD, LinkTimeout, RemoteError  # noqa: E402
from clawdbot.deploy.transfer import Endpoint, TransferError, sha256_file  # noqa: E402
from clawdbot.errors import ClawError  # noqa: E402
from deploy.test_link import Faults, FaultyLine, _no_close_nap  # noqa: E402,F401 - the fixture is autouse

FAST = dict(max_payload=1024, window=4, timeout=0.2, retries=5, frame_timeout=0.1, response_timeout=3.0)


class Handler:
    def cmd_status(self):
        return {"slot": "a", "ok": True}

    def cmd_add(self, a, b):
        return {"sum": a + b}

    def cmd_broken(self):
        raise ValueError("the handler failed on purpose")

    def cmd_hang(self):
        time.sleep(1.0)
        return {}


class Rig:
    """A line, a board serving parts_dir in a thread, and a host Endpoint."""

    def __init__(self, parts_dir: Path, plans=(), **args):
        self.args = {**FAST, **args}
        self.line = FaultyLine(plans)
        self.parts = parts_dir
        parts_dir.mkdir(parents=True, exist_ok=True)
        self.board = Endpoint(self.line.board_url, **self.args)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.board.serve, args=(Handler(), parts_dir, self._stop),
                                        daemon=True)
        self._thread.start()
        self.host = Endpoint(self.line.host_url, **self.args)

    def new_host(self) -> Endpoint:
        self.host.close()
        self.host = Endpoint(self.line.host_url, **self.args)
        return self.host

    def close(self) -> None:
        self.host.close()
        self._stop.set()
        self._thread.join(5)
        self.board.close()
        self.line.close()

    def line_bytes(self) -> int:
        """Bytes the host put on the line, over every connection so far."""
        return sum(self.line.h2b)


@pytest.fixture
def rig(tmp_path):
    made = []

    def make(plans=(), **args) -> Rig:
        made.append(Rig(tmp_path / f"parts{len(made)}", plans, **args))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _part(tmp_path: Path, size: int, seed: int = 0) -> tuple[Path, str]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / f"src-{seed}-{size}.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _clean_line_bytes(size: int, payload: int) -> float:
    """What a clean transfer puts on the line: DATA frames (8-byte offset + chunk), a few small requests."""
    chunk = payload - 8
    return size + -(-size // chunk) * (8 + OVERHEAD)


def _assert_no_wrong_part(parts_dir: Path) -> None:
    for p in parts_dir.iterdir():
        if re.fullmatch(r"[0-9a-f]{64}", p.name):
            assert sha256_file(p) == p.name, f"{p.name} holds the wrong bytes"


def test_a_clean_transfer_of_a_few_megabytes(rig, tmp_path):
    r = rig(max_payload=4096)
    path, sha = _part(tmp_path, 3 << 20)
    seen = []
    r.host.connect()
    [result] = r.host.push({sha: path}, progress=lambda done, total, rate: seen.append((done, total, rate)))
    assert sha256_file(r.parts / sha) == sha and result.sent == 3 << 20 and result.resumed_from == 0
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen) and seen[-1][:2] == (3 << 20, 3 << 20)
    assert all(rate >= 0 for _, _, rate in seen) and seen[-1][2] > 0
    assert not list(r.parts.glob("*.part")) and not list(r.parts.glob("*.offset"))
    print(f"\nclean 3 MiB over localhost: {result.size / result.seconds / 1e6:.1f} MB/s")


def test_corruption_is_nak_ed_and_resent_and_the_part_is_right(rig, tmp_path):
    path, sha = _part(tmp_path, 200_000, seed=1)
    flips = {o: 1 << (o % 8) for o in (600, 5_000, 5_001, 40_000, 90_000, 150_000, 190_000)}
    r = rig([(Faults(flip=flips, insert={70_000: b"\xc1\xab" * 10}), Faults(flip={200: 0x10, 900: 0x01}))])
    r.host.connect()
    r.host.push({sha: path})
    assert sha256_file(r.parts / sha) == sha
    assert r.board.link.stats.naks_sent >= 3 and r.host.link.stats.retransmits >= 3


def test_a_line_cut_several_times_resumes_where_the_board_got_to(rig, tmp_path):
    size = 1 << 20
    path, sha = _part(tmp_path, size, seed=2)
    # Three hard cuts (the host's socket closes), then one silent one (the host only sees no answer).
    plans = [(Faults(cut_at=150_000), Faults()), (Faults(cut_at=333_333), Faults()),
             (Faults(cut_at=200_001), Faults()), (Faults(mute_at=100_000), Faults())]
    r = rig(plans)
    r.host.connect()
    seen: list[tuple[int, float]] = []
    results = r.host.push({sha: path}, attempts=5, progress=lambda done, total, rate: seen.append((done, rate)))
    assert sha256_file(r.parts / sha) == sha and len(r.line.h2b) == 5
    # Each session reports where the board got to first (rate 0), then what it hands to the link.
    starts = [i for i, (_, rate) in enumerate(seen) if rate == 0.0]
    assert len(starts) == 5 and seen[0][0] == 0
    again = [max(d for d, _ in seen[a:b]) - seen[b][0] for a, b in itertools.pairwise(starts)]
    print(f"\n4 cuts in 1 MiB: file bytes sent again after each: {again}; "
          f"line bytes over a clean transfer: {r.line_bytes() - _clean_line_bytes(size, 1024):.0f}")
    assert all(0 <= n <= 4 * 1016 for n in again)  # at most the window that was in flight
    assert results[-1].resumed_from > 600_000  # the last session only finished the job


def test_a_part_that_fails_its_checksum_leaves_nothing_behind(rig, tmp_path):
    path, _ = _part(tmp_path, 50_000, seed=3)
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = rig()
    r.host.connect()
    with pytest.raises(TransferError, match=f"part {wrong}: the 50000 bytes received hash to [0-9a-f]{{64}}; discard"):
        r.host.send_file(path, wrong, check=False)
    assert list(r.parts.iterdir()) == []
    with pytest.raises(TransferError, match="its sha256 is"):  # and the host checks before sending at all
        r.host.send_file(path, wrong)


def test_parts_the_board_holds_are_not_sent_again(rig, tmp_path):
    a, sha_a = _part(tmp_path, 30_000, seed=4)
    b, sha_b = _part(tmp_path, 20_000, seed=5)
    r = rig()
    r.host.connect()
    assert r.host.offer([sha_a, sha_b]) == [sha_a, sha_b]
    r.host.push({sha_a: a})
    assert r.host.offer([sha_a, sha_b]) == [sha_b]
    before = r.line_bytes()
    results = r.host.push({sha_a: a, sha_b: b})
    assert [x.sha256 for x in results] == [sha_b]
    assert r.line_bytes() - before < _clean_line_bytes(20_000, 1024) + 1000
    before = r.line_bytes()
    assert r.host.push({sha_a: a, sha_b: b}) == [] and r.line_bytes() - before < 1000
    assert r.host.send_file(a, sha_a).sent == 0  # asked directly, it is still not sent


def test_an_interrupted_part_on_the_board_is_resumed_from_its_committed_offset(rig, tmp_path):
    path, sha = _part(tmp_path, 100_000, seed=6)
    r = rig()
    r.parts.joinpath(f"{sha}.part").write_bytes(path.read_bytes()[:70_000])  # power went after 70000 bytes,
    r.parts.joinpath(f"{sha}.offset").write_text(json.dumps({"size": 100_000, "offset": 60_000}))  # 60000 synced
    r.host.connect()
    [result] = r.host.push({sha: path})
    assert result.resumed_from == 60_000 and result.sent == 40_000 and sha256_file(r.parts / sha) == sha


def test_commands_go_to_the_handler(rig):
    r = rig()
    r.host.connect()
    assert r.host.request({"cmd": "status"}) == {"slot": "a", "ok": True}
    assert r.host.request({"cmd": "add", "a": 2, "b": 40}) == {"sum": 42}
    with pytest.raises(RemoteError, match="failed on purpose") as e:
        r.host.request({"cmd": "broken"})
    assert e.value.kind == "ValueError"
    with pytest.raises(RemoteError, match="unknown command '_secret'"):
        r.host.request({"cmd": "_secret"})
    with pytest.raises(RemoteError, match="not a part name") as e:
        r.host.request({"cmd": "put", "sha256": "../../etc/passwd", "size": 1})
    assert e.value.kind == "TransferError"
    assert r.host.request({"cmd": "status"})["ok"]  # and the board still answers


def test_a_board_that_stops_answering_is_a_timeout_naming_what_was_awaited(rig, tmp_path):
    r = rig(response_timeout=0.5)
    r.host.connect()
    start = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"timed out after 0\.5 s waiting for the answer to 'hang'"):
        r.host.request({"cmd": "hang"})
    assert time.monotonic() - start < 1.0

    path, sha = _part(tmp_path, 100_000, seed=7)
    r.line.plans.append((Faults(), Faults(mute_at=2_000)))  # the board's answers stop mid-transfer
    host = r.new_host()
    host.connect()
    start = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"no acknowledgement from the peer for DATA frame \d+ after 5 resend"):
        host.push({sha: path}, attempts=1)
    assert time.monotonic() - start < 3
    assert not (r.parts / sha).exists()


_fault = st.tuples(st.sampled_from(["flip", "drop", "insert"]), st.integers(0, 30_000), st.integers(1, 255),
                   st.binary(min_size=1, max_size=40))


@pytest.fixture(scope="module")
def shared_rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("parts"), timeout=0.1, retries=4, frame_timeout=0.05, max_payload=512)
    yield r
    r.close()


def _faults(spec) -> Faults:
    flip, drop, insert = {}, set(), {}
    for kind, at, mask, junk in spec:
        if kind == "flip":
            flip[at] = mask
        elif kind == "drop":
            drop.add(at)
        else:
            insert[at] = junk
    return Faults(flip=flip, drop=drop, insert=insert)


_examples = iter(range(10**9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h2b=st.lists(_fault, max_size=16), b2h=st.lists(_fault.map(lambda f: (f[0], f[1] % 1500, *f[2:])), max_size=6),
       size=st.integers(1, 24_000))
def test_random_line_faults_give_the_exact_part_or_a_clear_error(shared_rig, tmp_path_factory, h2b, b2h, size):
    r = shared_rig
    path, sha = _part(tmp_path_factory.getbasetemp(), size, seed=next(_examples))
    r.line.plans[:] = [(_faults(h2b), _faults(b2h))]
    host = r.new_host()
    try:
        host.push({sha: path}, attempts=2)
    except ClawError as e:  # a clear error is allowed; a wrong part never is
        assert str(e)
    else:
        assert sha256_file(r.parts / sha) == sha
    _assert_no_wrong_part(r.parts)
    # Whatever happened, the board is not stuck: a clean line gets the part across (or it is there already).
    r.line.plans.clear()
    r.new_host().push({sha: path})
    assert sha256_file(r.parts / sha) == sha
