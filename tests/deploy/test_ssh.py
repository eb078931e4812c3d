"""Flashing over ssh://: the user's OpenSSH client forwards a loopback port to the agent's --listen port, and
the flash runs the same offer / push / deploy as over a serial line. The end-to-end tests log in to a real
sshd (started here on a free loopback port, with keys made here) and flash a real x86_64 bundle into a
`claw agent` process, then query the `claw serve` it restarted with Triton's client."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from serve_testing import accepts, infer_input, wait_until

from clawdbot.crossbuild import bundle as bundle_mod
from clawdbot.deploy import signing
from clawdbot.deploy.board import free_port as _free_port
from clawdbot.deploy.flash import flash
from clawdbot.deploy.link import LinkError
from clawdbot.deploy.ssh import SshError, parse, with_defaults


# -- URLs ---------------------------------------------------------------------------------------------------
def test_urls_parse_with_the_agent_port_defaulting_to_7070():
    u = parse("ssh://pi@board.local:2222?agent=7171")
    assert (u.user, u.host, u.port, u.agent_port, u.destination) == ("pi", "board.local", 2222, 7171,
                                                                    "pi@board.local")
    assert parse("ssh://board.local").agent_port == 7070 and parse("ssh://board.local").destination == "board.local"


@pytest.mark.parametrize("url, expected", [
    ("ssh://", "an ssh port is ssh://[user@]host[:port][?agent=PORT]"),
    ("ssh://pi@board:99999", "the ssh port is not a number from 1 to 65535"),
    ("ssh://pi@board/srv", "unexpected path '/srv'"),
    ("ssh://pi@board?agnet=1", "unknown parameter 'agnet'"),
    ("ssh://pi@board?agent=http", "agent='http' is not a port number"),
])
def test_bad_urls_say_what_is_wrong(url, expected):
    with pytest.raises(SshError, match=None) as e:
        parse(url)
    assert expected in str(e.value) and url in str(e.value)


def test_the_target_files_user_and_port_fill_in_what_the_url_leaves_out():
    assert with_defaults("ssh://board.local", "pi", 22) == "ssh://pi@board.local:22"
    assert with_defaults("ssh://me@board.local:2200?agent=1", "pi", 22) == "ssh://me@board.local:2200?agent=1"
    assert with_defaults("ssh://[fe80::1]", None, None) == "ssh://[fe80::1]"


# -- a real sshd and agent ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sshd(cross_tools, tmp_path_factory):
    """An sshd on a free loopback port that lets in one key; yields (port, CLAW_SSH_COMMAND for that key)."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd_bin).exists() or shutil.which("ssh") is None:
        pytest.fail("OpenSSH is missing (`invoke setup` installs openssh-client and openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "user", "stranger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory; a fresh host may lack it
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: accepts(port) or proc.poll() is not None, timeout=20, what="sshd to listen")
        assert proc.poll() is None, "sshd exited at start"

        def command(key: str = "user") -> str:
            return (f"ssh -i {d / key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
                    f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        yield port, command
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    signing.generate_keypair(d / "build.pem", d / "build.pub.pem")
    return d


def _release(bundle: Path, key: Path, out: Path, version: str) -> Path:
    """The bundle under its own bundle_id (a new release of the same files), signed as a build signs."""
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(files["manifest.json"])
    manifest["bundle_id"] = f"{top}-{version}"
    files["manifest.json"] = bundle_mod.manifest_bytes(manifest)
    files[signing.SIGNATURE_FILE] = signing.sign(files["manifest.json"], key)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{manifest['bundle_id']}.tar.gz"
    path.write_bytes(bundle_mod.deterministic_tar(files, manifest["bundle_id"], 0))
    return path


@pytest.fixture(scope="module")
def agent(x86_64_docker, keys, tmp_path_factory):
    """`claw agent --listen` (no serial line) on a fresh board root; yields (agent port, serve port, root)."""
    root = tmp_path_factory.mktemp("board")
    (root / "trusted").mkdir()
    shutil.copy(keys / "build.pub.pem", root / "trusted" / "build.pub.pem")
    listen, serve_port = _free_port(), _free_port()
    log = open(root.parent / "agent.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "clawdbot.cli", "agent", "--root", str(root), "--listen",
                             f"127.0.0.1:{listen}", "--serve-port", str(serve_port)], stdout=log, stderr=log)
    try:
        wait_until(lambda: accepts(listen) or proc.poll() is not None, timeout=30, what="the agent to listen")
        assert proc.poll() is None, (root.parent / "agent.log").read_text()
        yield listen, serve_port, root
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (root.parent / "agent.log").read_text()
        log.close()


def _served(serve_port: int, bundle: Path) -> None:
    """`claw serve` on the board answers the bundle's recorded check input with its recorded output."""
    manifest = bundle_mod.read_manifest(bundle)
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]

        def npy(rel: str) -> np.ndarray:
            import io
            return np.load(io.BytesIO(tar.extractfile(f"{top}/{rel}").read()))
        (in_name, in_rel), = manifest["check"]["inputs"].items()
        (out_name, out_rel), = manifest["check"]["outputs"].items()
        x, expected = npy(in_rel), npy(out_rel)
    name = manifest["model"]["name"]
    c = triton.InferenceServerClient(f"127.0.0.1:{serve_port}", connection_timeout=30, network_timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:  # the agent restarts `claw serve` after the switch; give it time to load the model
            try:
                if c.is_model_ready(name):
                    break
            except Exception:  # noqa: BLE001 - refused while the new server starts
                pass
            assert time.monotonic() < deadline, "claw serve did not come up after the switch"
            time.sleep(0.2)
        y = c.infer(name, [infer_input(in_name, x)]).as_numpy(out_name)
    finally:
        c.close()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.cross
def test_flash_over_ssh_installs_switches_and_serves(sshd, agent, x86_64_docker, keys, tmp_path, monkeypatch):
    ssh_port, command = sshd
    listen, serve_port, root = agent
    monkeypatch.setenv("CLAW_SSH_COMMAND", command())
    url = f"ssh://root@127.0.0.1:{ssh_port}?agent={listen}"
    first = _release(x86_64_docker.bundle, keys / "build.pem", tmp_path, "1")
    said: list[str] = []
    result = flash(first, url, say=said.append, progress=lambda *a: None)
    assert result["active"] == "a" and result["slots"]["a"]["bundle_id"].endswith("-1"), result
    assert any(f"connected to the agent on {url}" in s for s in said)
    _served(serve_port, first)

    # The next release shares every file: only its manifest and signature travel; the agent switches to b.
    second = _release(x86_64_docker.bundle, keys / "build.pem", tmp_path, "2")
    result = flash(second, url, say=said.append, progress=lambda *a: None)
    assert result["active"] == "b" and result["sent"]["files"] == [] and result["sent"]["parts"] == 2, result
    assert os.readlink(root / "current").endswith("b")
    _served(serve_port, second)


@pytest.mark.cross
def test_a_key_the_board_does_not_accept_is_a_one_line_ssh_error(sshd, x86_64_docker, tmp_path, monkeypatch):
    ssh_port, command = sshd
    monkeypatch.setenv("CLAW_SSH_COMMAND", command("stranger"))
    with pytest.raises(SshError, match=r"ssh to root@127.0.0.1 failed \(exit 255\): .*Permission denied"):
        flash(x86_64_docker.bundle, f"ssh://root@127.0.0.1:{ssh_port}", say=lambda s: None)


@pytest.mark.cross
def test_no_agent_behind_the_forward_says_so(sshd, x86_64_docker, monkeypatch):
    ssh_port, command = sshd
    monkeypatch.setenv("CLAW_SSH_COMMAND", command())
    nobody = _free_port()
    url = f"ssh://root@127.0.0.1:{ssh_port}?agent={nobody}"
    t0 = time.monotonic()
    with pytest.raises(LinkError, match=r"no agent answered on .*is `claw agent --listen 127.0.0.1:PORT` running"):
        flash(x86_64_docker.bundle, url, say=lambda s: None)
    assert time.monotonic() - t0 < 60
