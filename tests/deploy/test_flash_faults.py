"""A real `claw agent` process behind a faulty line (FaultyLine: cuts, flipped and inserted bytes), flashed
with a real x86_64 bundle by `flash()` as `invoke flash` does. Whatever the line does, nothing is lost: a cut
transfer resumes where the board committed, corruption is resent, and when the host gives up the board
still serves the last good model."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from clawdbot.crossbuild import bundle as bundle_mod
from clawdbot.deploy.flash import flash
from clawdbot.deploy.link import LinkError
from clawdbot.deploy.transfer import COMMIT_EVERY
from deploy.test_link import Faults, FaultyLine, _no_close_nap  # noqa: F401 - the fixture is autouse
from deploy.test_ssh import _release, _served, keys  # noqa: F401 - the fixture
from clawdbot.deploy.board import free_port

pytestmark = pytest.mark.cross
RATE = 4_000_000  # frame sizes for a fast line: the loopback is one, and 16 MB must cross in seconds


@pytest.fixture
def board(x86_64_docker, keys, tmp_path):  # noqa: F811 - the imported fixture
    """A FaultyLine whose board end is `claw agent --port`; yields (line, serve port, root)."""
    root = tmp_path / "board"
    (root / "trusted").mkdir(parents=True)
    shutil.copy(keys / "build.pub.pem", root / "trusted" / "build.pub.pem")
    line = FaultyLine()
    serve_port = free_port()
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "clawdbot.cli", "agent", "--root", str(root), "--port",
                             line.board_url, "--baud", str(RATE), "--serve-port", str(serve_port)],
                            stdout=log, stderr=log)
    try:
        yield line, serve_port, root
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
        line.close()
        assert code == 0, (tmp_path / "agent.log").read_text()


def test_cuts_and_corruption_mid_transfer_resume_and_a_lost_line_keeps_the_last_good_model(
        board, x86_64_docker, keys, tmp_path):  # noqa: F811
    line, serve_port, root = board
    quiet = {"say": lambda s: None, "progress": lambda *a: None}
    first = _release(x86_64_docker.bundle, keys / "build.pem", tmp_path, "1")
    assert flash(first, line.host_url, baudrate=RATE, **quiet)["active"] == "a"
    _served(serve_port, first)
    parts_bytes = sum(m["size"] for m in bundle_mod.read_manifest(first)["files"].values())

    # The board lost its part cache (a wiped data partition): all of release 2 must cross the line again.
    # Its first session is cut at 3 MB, the second has bytes flipped and garbage inserted and is cut at 2 MB,
    # the third is clean; each resumes from the board's last committed offset.
    for part in (root / "parts").iterdir():
        part.unlink()
    line.plans += [(Faults(cut_at=3_000_000), Faults()),
                   (Faults(flip={100_000: 0x20, 900_001: 0x01}, insert={1_500_000: b"\x7e\x00garbage"},
                           cut_at=2_000_000), Faults(flip={300: 0x04})),
                   (Faults(), Faults())]
    second = _release(x86_64_docker.bundle, keys / "build.pem", tmp_path, "2")
    result = flash(second, line.host_url, baudrate=RATE, **quiet)
    assert result["active"] == "b" and result["slots"]["b"]["bundle_id"].endswith("-2"), result
    # Framing costs about 1 %; what the board had not committed when a cut came is sent twice (at most
    # COMMIT_EVERY a cut). A part restarted from zero would cost megabytes more.
    sent = sum(line.h2b[-3:])
    assert sent - parts_bytes < 0.02 * parts_bytes + 2 * COMMIT_EVERY, \
        f"{sent} bytes crossed for {parts_bytes} bytes of parts: a transfer restarted instead of resuming"
    _served(serve_port, second)

    # Release 3 never gets through: every session is cut early and the host gives up with a clear error.
    for part in (root / "parts").iterdir():
        part.unlink()
    line.plans += [(Faults(cut_at=500_000 + i * 100_000), Faults()) for i in range(3)]
    third = _release(x86_64_docker.bundle, keys / "build.pem", tmp_path, "3")
    with pytest.raises(LinkError):
        flash(third, line.host_url, baudrate=RATE, **quiet)
    assert os.readlink(root / "current").endswith("b")
    _served(serve_port, second)
