"""Provisioning a board from a bundle alone, as on a fresh Raspberry Pi: `install.py --enable-agent` installs
the agent with its own requirements from the bundle's wheels, trusts the build key, holds the bundle's files
as parts and puts the boot files in place; the installed init script then starts the agent, which needs
nothing from the host's site-packages (run with `python -S`), and flashing the same bundle sends nothing
before the agent installs, checks, switches and serves it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_testing import accepts, wait_until

from clawdbot.crossbuild import bundle as bundle_mod
from clawdbot.deploy.board import free_port
from clawdbot.deploy.flash import flash
from deploy.test_ssh import _release, _served, keys  # noqa: F401 - the fixture

pytestmark = pytest.mark.cross


def test_enable_agent_then_boot_script_then_flash(x86_64_docker, keys, tmp_path):  # noqa: F811
    release = _release(x86_64_docker.bundle, keys / "build.pem", tmp_path / "out", "1")
    unpacked = bundle_mod.extract(release, tmp_path / "unpacked")
    root, etc = tmp_path / "var-lib-clawdbot", tmp_path / "etc"
    run = subprocess.run([sys.executable, str(unpacked / "install.py"), "--enable-agent", "--trust",
                          str(keys / "build.pub.pem"), "--agent-root", str(root), "--etc", str(etc), "--no-start"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "installed the agent" in run.stdout and "trusted build.pub.pem" in run.stdout
    lib = root / "agent" / "lib"
    assert {"clawdbot", "numpy", "cryptography", "serial"} <= {p.name for p in lib.iterdir()}
    script = etc / "init.d" / "clawdbot-agent"
    assert os.access(script, os.X_OK) and (etc / "systemd/system/clawdbot-agent.service").is_file()

    # The board's python sees only the stdlib and what install.py put in the agent's lib.
    python = tmp_path / "python3"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    python.chmod(0o755)
    listen, serve_port = free_port(), free_port()
    defaults = tmp_path / "defaults"
    defaults.write_text(f"CLAW_AGENT_PORT=\nCLAW_AGENT_LISTEN=127.0.0.1:{listen}\nCLAW_AGENT_ROOT={root}\n"
                        f"CLAW_AGENT_SERVE_PORT={serve_port}\nCLAW_AGENT_PYTHON={python}\n"
                        f"CLAW_AGENT_LOG={tmp_path / 'agent.log'}\nCLAW_AGENT_PIDFILE={tmp_path / 'agent.pid'}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CLAW_AGENT_DEFAULTS"] = str(defaults)
    started = subprocess.run([str(script), "start"], env=env, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started
    try:
        wait_until(lambda: accepts(listen), timeout=60,
                   what=f"the agent to listen; its log: {(tmp_path / 'agent.log')}")
        result = flash(release, f"socket://127.0.0.1:{listen}", baudrate=4_000_000, say=lambda s: None,
                       progress=lambda *a: None)
        assert result["sent"]["parts"] == 0, result["sent"]  # install.py left the bundle's parts with the agent
        assert result["active"] == "a" and result["slots"]["a"]["bundle_id"] == release.name[:-len(".tar.gz")]
        _served(serve_port, release)
        pid = int((tmp_path / "agent.pid").read_text())
        environ = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
        assert environ["PYTHONPATH"].split(":")[0] == str(lib)
    finally:
        stopped = subprocess.run([str(script), "stop"], env=env, capture_output=True, text=True, timeout=90)
    assert stopped.returncode == 0, stopped
    log = (tmp_path / "agent.log").read_text()
    assert '"event": "agent_start"' in log, log


def test_enable_agent_refuses_without_a_key_to_trust(x86_64_docker, tmp_path):
    unpacked = bundle_mod.extract(x86_64_docker.bundle, tmp_path)
    run = subprocess.run([sys.executable, str(unpacked / "install.py"), "--enable-agent", "--agent-root",
                          str(tmp_path / "root"), "--etc", str(tmp_path / "etc"), "--no-start"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "give --trust KEY.pub.pem" in run.stderr, run.stderr
    assert not (tmp_path / "etc").exists()
