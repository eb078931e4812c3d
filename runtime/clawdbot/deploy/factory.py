"""A board's factory install: what has to be on a board before the first flash — the runtime and numpy from
a bundle, plus the agent's own needs (cryptography for signatures, pyserial for the link) — installed with
pip for the board's platform into one site directory, which an image (deploy/board.py) or an SD card
carries. After that, everything arrives through the agent."""
from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from ..crossbuild import bundle as bundle_mod
from ..crossbuild import wheelhouse
from ..crossbuild.progress import Progress
from ..crossbuild.targets import Target


def factory_site(bundle: Path, target: Target, root: Path, cache: Path, dest: Path,
                 progress: Progress | None = None) -> Path:
    progress = progress or Progress()
    req = root / "toolchains" / f"board-agent-requirements-{target.python_abi}.txt"
    agent_wheels = wheelhouse.download(req, cache, progress, platforms=target.platforms,
                                       python_version=target.python_version, abi=target.python_abi)
    manifest = bundle_mod.read_manifest(bundle)
    with tempfile.TemporaryDirectory(prefix="clawdbot-factory-") as work:
        top = bundle_mod.extract(bundle, Path(work))
        argv = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                "--root-user-action=ignore", "--no-index", "--find-links", str(top / "wheels"), "--find-links",
                str(agent_wheels[0].parent), "--target", str(dest), "--only-binary=:all:", "--no-compile",
                "--python-version", target.python_version, "--implementation", "cp", "--abi", target.python_abi,
                "--abi", "abi3", "--abi", "none", manifest["install"]["runtime"], *manifest["install"]["requirements"],
                "-r", str(req)]
        for p in target.platforms:
            argv += ["--platform", p]
        with progress.step(f"factory site for {target.name}: {manifest['bundle_id']} + agent requirements"):
            progress.run(argv, what="factory install")
    return dest


AGENT_COMMAND = ["sh", "-c", "exec python3 -m clawdbot.cli agent --root /var/lib/clawdbot --port /dev/ttyAMA0 "
                             "--serve-port 8000 >/var/log/agent.log 2>&1"]


def factory_files(bundle: Path, target: Target, root: Path, cache: Path, work: Path, trusted_key: bytes,
                  hold: Callable[[str], bool] = lambda rel: True, progress: Progress | None = None) -> dict:
    """Guest path -> content for a factory image: the factory site, the trusted public key, and the factory
    bundle's files as content-addressed parts the agent already holds (those `hold` picks by bundle path),
    so flashing the factory bundle, or an update sharing its wheels, sends only what differs."""
    site = factory_site(bundle, target, root, cache, work / "site", progress)
    files: dict = {f"/usr/local/lib/python{target.python_version}/dist-packages": site,
                   "/var/lib/clawdbot/trusted/build.pub.pem": trusted_key}
    manifest = bundle_mod.read_manifest(bundle)
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        for rel, meta in manifest["files"].items():
            if hold(rel):
                files[f"/var/lib/clawdbot/parts/{meta['sha256']}"] = tar.extractfile(f"{top}/{rel}").read()
    return files
