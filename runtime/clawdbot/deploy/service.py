"""`claw agent`: the board side of the serial link, and of ssh through its loopback listener (listener.py).
It answers the host's commands with the Agent:

    status                                -> Agent.status()
    deploy {manifest, signature}          -> assemble the bundle from received parts, Agent.deploy(), restart
                                             `claw serve` on the new slot; an ERROR (DeployError) otherwise
(`have`/`put`/`done` for the parts themselves are answered by transfer.serve.)

Parts are content-addressed (named by sha256) in <root>/parts, so a model-only update sends only the model:
the wheels the board already holds are never sent again. Parts no slot refers to are removed after a deploy.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .agent import BUNDLE_WORK_PREFIX, Agent, DeployError
from .signing import SIGNATURE_FILE


class Server:
    """Keeps one `claw serve` running on the current slot, restarted after each switch."""

    def __init__(self, root: Path, port: int | None, python: str):
        self.root, self.port, self.python = root, port, python
        self.proc: subprocess.Popen | None = None

    def restart(self) -> None:
        self.stop()
        current = self.root / "current"
        if self.port is None or not (current / "manifest.json").is_file():
            return
        env = {**os.environ, "PYTHONPATH": str(current / "lib")}
        # The slot directory, not its model file: serve checks the model's sha256 against the manifest on
        # every start and logs the bundle id, so what a board serves after a reboot is known to be intact.
        self.proc = subprocess.Popen(
            [self.python, "-m", "clawdbot.cli", "serve", str(current), "--host", "0.0.0.0", "--port", str(self.port)],
            env=env, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


class AgentHandler:
    def __init__(self, agent: Agent, server: Server):
        self.agent, self.server = agent, server
        self.parts = agent.root / "parts"

    def cmd_status(self) -> dict:
        serving = self.server.proc is not None and self.server.proc.poll() is None
        return {**self.agent.status(), "serving": serving, "serve_port": self.server.port}

    def cmd_deploy(self, manifest: str, signature: str | None = None) -> dict:
        raw = self._part(manifest).read_bytes()
        listed = json.loads(raw)
        with tempfile.TemporaryDirectory(prefix=BUNDLE_WORK_PREFIX, dir=self.agent.root) as work:
            bundle = Path(work) / listed["bundle_id"]
            bundle.mkdir()
            (bundle / "manifest.json").write_bytes(raw)
            if signature:
                shutil.copyfile(self._part(signature), bundle / SIGNATURE_FILE)
            for rel, meta in listed["files"].items():
                dest = bundle / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(self._part(meta["sha256"]), dest)  # same filesystem: no copy of large parts
            result = self.agent.deploy(bundle)
        self.server.restart()
        self._collect()
        return result

    def _part(self, sha256: str) -> Path:
        path = self.parts / sha256
        if len(sha256) != 64 or not path.is_file():
            raise DeployError(f"part {sha256[:16]}… was not received; push the bundle's parts first")
        return path

    def _collect(self) -> None:
        """Drop parts no slot refers to (a board's storage is small); keep the manifests' own parts too."""
        keep = set()
        for slot in (self.agent.root / "slots").iterdir():
            try:
                m = json.loads((slot / "manifest.json").read_text())
            except (OSError, ValueError):
                continue
            keep |= {meta["sha256"] for meta in m["files"].values()}
        for part in self.parts.iterdir():
            name = part.name.split(".")[0]
            if part.is_file() and len(name) == 64 and name not in keep and not part.name.endswith((".part", ".offset")):
                if part.stat().st_size > 4096:  # manifests and signatures are tiny; keep them for status
                    part.unlink()


def run_agent(root: Path, port: str | None, baudrate: int, serve_port: int | None,
              listen: tuple[str, int] | None = None) -> int:
    """Answer hosts on the serial `port` and/or on the loopback `listen` address until SIGTERM/SIGINT."""
    from .listener import Listener
    from .transfer import Endpoint
    agent = Agent(root)
    state = agent.recover()
    server = Server(agent.root, serve_port, sys.executable)
    handler = AgentHandler(agent, server)
    stop = threading.Event()
    one_at_a_time = threading.Lock()  # serial and ssh hosts share the parts and the slots
    listener = Listener(listen, handler, agent.root / "parts", stop, one_at_a_time) if listen else None
    server.restart()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"event": "agent_start", "root": str(root), "port": port,
                      "listen": "%s:%d" % listener.address if listener else None, **state}), flush=True)
    try:
        if listener:
            listener.start()
        if port:
            with Endpoint(port, baudrate=baudrate, response_timeout=600) as ep:
                ep.serve(handler, agent.root / "parts", stop=stop, lock=one_at_a_time)
        else:
            while not stop.wait(1.0):
                pass
    finally:
        stop.set()
        if listener:
            listener.thread.join(5)
        server.stop()
    return 0
