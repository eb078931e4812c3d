"""The agent's boot files a bundle carries: the init script is run for real (start, status, a host's hello
through its loopback listener, stop) with /etc/default-style overrides, and the unit runs that script."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_testing import accepts, wait_until

from clawdbot.crossbuild.boot import SCRIPT, UNIT, boot_files
from clawdbot.crossbuild.targets import load_target
from clawdbot.deploy.board import free_port
from clawdbot.deploy.transfer import Endpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, port, baud", [("rpi4", "/dev/ttyS0", "115200"), ("rk3588", "/dev/ttyS2", "1500000")])
def test_the_script_defaults_to_the_targets_serial_line(name, port, baud):
    files = boot_files(load_target(name, ROOT / "targets"))
    script = files[SCRIPT].decode()
    assert f"CLAW_AGENT_PORT={port}\n" in script and f"CLAW_AGENT_BAUD={baud}\n" in script
    assert f"for {name}." in script and "CLAW_AGENT_LISTEN=127.0.0.1:7070\n" in script
    assert "ExecStart=/etc/init.d/clawdbot-agent run\n" in files[UNIT].decode()
    assert "WantedBy=multi-user.target" in files[UNIT].decode()


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "clawdbot-agent"
    path.write_bytes(boot_files(load_target("rpi4", ROOT / "targets"))[SCRIPT])
    path.chmod(0o755)
    return path


def _sh(script: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=90)


def test_start_status_stop_with_a_boards_own_settings(script, tmp_path):
    listen = free_port()
    defaults = tmp_path / "defaults"
    # No serial line here: ssh only, as a board whose UART carries its console would be set up.
    defaults.write_text(f"CLAW_AGENT_PORT=\nCLAW_AGENT_LISTEN=127.0.0.1:{listen}\nCLAW_AGENT_ROOT={tmp_path / 'root'}\n"
                        f"CLAW_AGENT_SERVE_PORT=\nCLAW_AGENT_PYTHON={sys.executable}\n"
                        f"CLAW_AGENT_LOG={tmp_path / 'agent.log'}\nCLAW_AGENT_PIDFILE={tmp_path / 'agent.pid'}\n")
    env = {**os.environ, "CLAW_AGENT_DEFAULTS": str(defaults)}
    started = _sh(script, "start", env=env)
    try:
        assert started.returncode == 0 and "clawdbot-agent: started" in started.stdout, started
        wait_until(lambda: accepts(listen), timeout=60, what="the agent to listen")
        with Endpoint(f"socket://127.0.0.1:{listen}", baudrate=4_000_000) as ep:
            ep.connect()
            status = ep.request({"cmd": "status"})
        assert status["active"] is None and status["serving"] is False
        assert _sh(script, "status", env=env).returncode == 0
        assert _sh(script, "start", env=env).stdout.strip() == "clawdbot-agent: already running"
    finally:
        stopped = _sh(script, "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert _sh(script, "status", env=env).returncode == 3
    log = (tmp_path / "agent.log").read_text()
    assert '"event": "agent_start"' in log and f'"listen": "127.0.0.1:{listen}"' in log and '"port": null' in log


def test_an_unknown_action_prints_usage(script, tmp_path):
    run = _sh(script, "reload", env={**os.environ, "CLAW_AGENT_DEFAULTS": str(tmp_path / "none")})
    assert run.returncode == 2 and "usage:" in run.stderr and "run|start|stop|restart|status" in run.stderr
