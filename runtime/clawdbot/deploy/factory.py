"""A board's factory install: what has to be on a board before the first flash — the runtime, numpy and the
agent's own needs (cryptography for signatures, pyserial for the link), all from the bundle's wheels —
installed with pip for the board's platform into one site directory, which an image (deploy/board.py) or an
SD card carries. After that, everything arrives through the agent."""
from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from ..crossbuild import bundle as bundle_mod
from ..crossbuild.progress import Progress
from ..crossbuild.boot import SCRIPT
from ..crossbuild.targets import Target
from ..errors import ClawError


def factory_site(bundle: Path, target: Target, dest: Path, progress: Progress | None = None) -> Path:
    progress = progress or Progress()
    manifest = bundle_mod.read_manifest(bundle)
    agent_reqs = manifest["install"].get("agent_requirements")
    if not agent_reqs:
        raise ClawError(f"{bundle}: carries no wheels for the agent's requirements (install.agent_requirements); "
                        f"rebuild it with `invoke build`")
    with tempfile.TemporaryDirectory(prefix="clawdbot-factory-") as work:
        top = bundle_mod.extract(bundle, Path(work))
        argv = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                "--root-user-action=ignore", "--no-index", "--find-links", str(top / "wheels"), "--target",
                str(dest), "--only-binary=:all:", "--no-compile", "--python-version", target.python_version,
                "--implementation", "cp", "--abi", target.python_abi, "--abi", "abi3", "--abi", "none",
                manifest["install"]["runtime"], *manifest["install"]["requirements"], *agent_reqs]
        for p in target.platforms:
            argv += ["--platform", p]
        with progress.step(f"factory site for {target.name}: {manifest['bundle_id']} + agent requirements"):
            progress.run(argv, what="factory install")
    return dest


# The factory bundle's own init script starts the agent, as on a board without systemd; the emulated
# board's console is the virt machine's PL011, not the Pi's UART the script defaults to.
AGENT_COMMAND = ["/etc/init.d/clawdbot-agent", "run"]
EMULATED_DEFAULTS = b"CLAW_AGENT_PORT=/dev/ttyAMA0\nCLAW_AGENT_BAUD=115200\n"


def factory_files(bundle: Path, target: Target, work: Path, trusted_key: bytes,
                  hold: Callable[[str], bool] = lambda rel: True, progress: Progress | None = None) -> dict:
    """Guest path -> content for a factory image: the factory site, the trusted public key, and the factory
    bundle's files as content-addressed parts the agent already holds (those `hold` picks by bundle path),
    so flashing the factory bundle, or an update sharing its wheels, sends only what differs."""
    site = factory_site(bundle, target, work / "site", progress)
    files: dict = {f"/usr/local/lib/python{target.python_version}/dist-packages": site,
                   "/var/lib/clawdbot/trusted/build.pub.pem": trusted_key,
                   "/etc/default/clawdbot-agent": EMULATED_DEFAULTS}
    manifest = bundle_mod.read_manifest(bundle)
    if SCRIPT not in manifest["files"]:
        raise ClawError(f"{bundle}: no {SCRIPT} to start the agent at boot; rebuild it with `invoke build`")
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        files["/etc/init.d/clawdbot-agent"] = tar.extractfile(f"{top}/{SCRIPT}").read()
        for rel, meta in manifest["files"].items():
            if hold(rel):
                files[f"/var/lib/clawdbot/parts/{meta['sha256']}"] = tar.extractfile(f"{top}/{rel}").read()
    return files
