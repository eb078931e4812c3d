"""The device agent on a real x86_64 bundle (built through the Docker toolchain): A/B slots, signatures,
checksums, the health check, and a process killed between install and switch. After every failure the
board must still serve the last good model — checked by running the current slot's own health check."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clawdbot.crossbuild import bundle as bundle_mod
from clawdbot.deploy import signing
from clawdbot.deploy.agent import Agent, DeployError

pytestmark = pytest.mark.cross


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    signing.generate_keypair(d / "good.pem", d / "good.pub.pem")
    signing.generate_keypair(d / "rogue.pem", d / "rogue.pub.pem")
    return d


def _resign(bundle_dir: Path, key: Path) -> None:
    """Re-list every file's sha256 in the manifest and sign it, as a build would."""
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    manifest["files"] = {rel: _file_entry(bundle_dir / rel) for rel in manifest["files"]}
    raw = bundle_mod.manifest_bytes(manifest)
    (bundle_dir / "manifest.json").write_bytes(raw)
    (bundle_dir / signing.SIGNATURE_FILE).write_bytes(signing.sign(raw, key))


def _file_entry(path: Path) -> dict:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture
def release(x86_64_docker, keys, tmp_path):
    """make(version, key=good) -> an unpacked, signed copy of the x86_64 bundle with its own bundle_id."""
    def make(version: str, key: str = "good") -> Path:
        d = bundle_mod.extract(x86_64_docker.bundle, tmp_path / f"rel-{version}-{key}")
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["bundle_id"] += f"-{version}"
        (d / "manifest.json").write_bytes(bundle_mod.manifest_bytes(manifest))
        _resign(d, keys / f"{key}.pem")
        return d
    return make


@pytest.fixture
def board(tmp_path, keys):
    root = tmp_path / "board"
    agent = Agent(root)
    shutil.copy(keys / "good.pub.pem", root / "trusted" / "build.pub.pem")
    return agent


def _serving(agent: Agent) -> str:
    """The bundle id the board serves, after proving the current slot still loads and runs its model."""
    current = agent.root / "current"
    run = subprocess.run([sys.executable, str(current / "install.py"), "--check-slot", str(current)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads((current / "manifest.json").read_text())["bundle_id"]


def test_deploys_alternate_between_slots(board, release):
    first = board.deploy(release("1"))
    assert first["active"] == "a" and first["signed_by"] == "build.pub.pem"
    assert any("outputs match the build host's" in line for line in first["check"])
    assert _serving(board).endswith("-1")
    second = board.deploy(release("2"))
    assert second["active"] == "b"
    assert second["slots"]["a"]["bundle_id"].endswith("-1")  # the previous release stays for rollback
    assert _serving(board).endswith("-2")
    assert (board.root / "bin" / "claw").is_file()


def test_a_corrupted_file_is_refused_and_the_old_slot_keeps_serving(board, release):
    board.deploy(release("1"))
    bad = release("2")
    claw = bad / "model" / "model.claw"
    data = bytearray(claw.read_bytes())
    data[len(data) // 2] ^= 0x40
    claw.write_bytes(bytes(data))
    with pytest.raises(DeployError, match=r"model/model.claw: sha256 does not match.*still serving slot a"):
        board.deploy(bad)
    assert board.active() == "a" and _serving(board).endswith("-1")


def test_a_bundle_signed_by_an_unknown_key_is_refused(board, release):
    board.deploy(release("1"))
    with pytest.raises(DeployError, match="matches none of the 1 trusted key"):
        board.deploy(release("2", key="rogue"))
    assert _serving(board).endswith("-1")


def test_an_unsigned_bundle_is_refused(board, release):
    unsigned = release("1")
    (unsigned / signing.SIGNATURE_FILE).unlink()
    with pytest.raises(DeployError, match="not signed.*nothing was serving before"):
        board.deploy(unsigned)
    assert board.active() is None


def test_a_failing_health_check_keeps_the_previous_slot(board, release, keys):
    board.deploy(release("1"))
    broken = release("2")
    # A build bug, not an attacker: the recorded outputs are wrong but checksummed and signed.
    manifest = json.loads((broken / "manifest.json").read_text())
    out = broken / next(iter(manifest["check"]["outputs"].values()))
    np.save(out, np.load(out) + 1.0)
    _resign(broken, keys / "good.pem")
    with pytest.raises(DeployError, match="failed its health check in slot b: .*differs from the build host's"):
        board.deploy(broken)
    assert board.active() == "a" and _serving(board).endswith("-1")


@pytest.mark.parametrize("point", ["installed", "checked"])
def test_an_agent_killed_before_the_switch_leaves_the_last_good_slot(board, release, point):
    board.deploy(release("1"))
    nxt = release("2")
    code = ("import sys; from clawdbot.deploy.agent import Agent; "
            "Agent(sys.argv[1]).deploy(sys.argv[2])")
    run = subprocess.run([sys.executable, "-c", code, str(board.root), str(nxt)],
                         env={**os.environ, "CLAWDBOT_AGENT_FAULT": point}, capture_output=True, text=True)
    assert run.returncode == 86, run.stderr
    # what the agent's service leaves when cut mid-deploy: the received bundle, hard-linked to the parts
    (board.root / "bundle-k3x9").mkdir()
    (board.root / "bundle-k3x9" / "manifest.json").write_text("{}")
    restarted = Agent(board.root)
    state = restarted.recover()
    assert state["active"] == "a" and _serving(restarted).endswith("-1")
    assert state["slots"]["a"]["checked"] is True
    assert state["slots"]["b"]["bundle_id"].endswith("-2") and state["slots"]["b"]["checked"] is (point == "checked")
    assert not list(board.root.glob("bundle-*"))
    assert not list((board.root / "slots").glob(".*"))
    # and the next deploy goes through
    assert restarted.deploy(release("3"))["active"] == "b" and _serving(restarted).endswith("-3")
