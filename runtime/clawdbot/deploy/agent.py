"""The device agent's core: deploy a bundle into the inactive one of two slots, check it, then switch.

    <root>/slots/a, <root>/slots/b    two complete installs (lib/, model/, manifest.json, install.py)
    <root>/current -> slots/a          what serves; replaced by one rename, never edited in place
    <root>/trusted/*.pem               the public keys this board was provisioned with
    <root>/bin/claw                    runs the current slot's clawdbot

A deploy verifies the manifest's signature against the trusted keys and every file's sha256, installs
offline into the inactive slot (staged, fsync'd, renamed: a slot is complete or absent), runs the slot's
health check in a fresh process (load the model, run the build's recorded inputs, compare outputs), and only
then switches `current`. Every failure before the switch leaves `current` as it was; the switch itself is
atomic. So whenever the power goes, the board boots into the last slot that passed its check.

The transport (serial link or ssh) only moves a bundle directory here; see deploy/link.py and transfer.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..crossbuild import installer
from ..errors import ClawError
from . import signing

SLOTS = ("a", "b")
CHECKED = "checked.txt"  # in a slot: it passed its health check (the check's output)
BUNDLE_WORK_PREFIX = "bundle-"  # service.py assembles a received bundle in <root>/bundle-XXXX
PAUSE_MARKER = "clawdbot-agent: paused at"


class DeployError(ClawError):
    """A bundle was refused or failed its check; the board still serves what it served before."""


def _fault(point: str) -> None:
    # Fault injection for the power-loss tests: CLAWDBOT_AGENT_FAULT kills the process here as if the plug
    # were pulled. CLAWDBOT_AGENT_PAUSE stops here and says so on the console, for a test that pulls the
    # emulated board's real plug (the guest's page cache goes too) to hit this point every time; the pause is
    # bounded so that a test which never pulls it leaves no agent stuck.
    if os.environ.get("CLAWDBOT_AGENT_FAULT") == point:
        os._exit(86)
    if os.environ.get("CLAWDBOT_AGENT_PAUSE") == point:
        with open("/dev/console", "w") as console:
            console.write(f"\n{PAUSE_MARKER} {point}\n")
        time.sleep(600)


class Agent:
    def __init__(self, root: Path, python: str | None = None):
        self.root = Path(root)
        self.python = python or sys.executable
        (self.root / "slots").mkdir(parents=True, exist_ok=True)
        (self.root / "trusted").mkdir(exist_ok=True)

    # -- state ------------------------------------------------------------------------------------------
    def active(self) -> str | None:
        link = self.root / "current"
        if not link.is_symlink():
            return None
        slot = (self.root / os.readlink(link)).resolve()
        return slot.name if (slot / "manifest.json").is_file() else None

    def inactive(self) -> str:
        return next(s for s in SLOTS if s != self.active())

    def _manifest(self, slot: str) -> dict | None:
        try:
            return json.loads((self.root / "slots" / slot / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> dict:
        slots = {}
        for s in SLOTS:
            m = self._manifest(s)
            # checked: the slot passed its health check. A slot a deploy was cut short in (installed, never
            # checked) is listed too, but current never points at one.
            slots[s] = None if m is None else {"bundle_id": m["bundle_id"], "model": m["model"]["name"],
                                               "clawdbot": m["clawdbot_version"],
                                               "checked": (self.root / "slots" / s / CHECKED).is_file()}
        return {"active": self.active(), "slots": slots, "mem_available_bytes": _mem_available()}

    def recover(self) -> dict:
        """At start-up: drop half-staged slots and the bundle directories (hard links to parts, which would
        keep deleted parts' data alive) an interrupted deploy left behind. `current` needs no repair: it only
        ever points at a complete slot that passed its check."""
        for leftover in [*(self.root / "slots").glob(".*"), *self.root.glob(f"{BUNDLE_WORK_PREFIX}*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        stale = self.root / ".current.new"
        if stale.is_symlink() or stale.exists():
            stale.unlink()
        return self.status()

    # -- deploy -----------------------------------------------------------------------------------------
    def deploy(self, bundle: Path) -> dict:
        bundle = Path(bundle)
        before = self.active()
        keep = f"; still serving slot {before}" if before else "; nothing was serving before"
        try:
            raw = (bundle / "manifest.json").read_bytes()
            sig_path = bundle / signing.SIGNATURE_FILE
            signer = signing.verify(raw, sig_path.read_bytes() if sig_path.is_file() else None,
                                    self.root / "trusted")
            manifest = json.loads(raw)
            installer.verify(bundle, manifest)
            installer.check_platform(manifest)
        except (OSError, ValueError, installer.InstallError, signing.SignatureError) as e:
            raise DeployError(f"bundle {bundle.name} refused: {e}{keep}") from None
        slot = self.root / "slots" / self.inactive()
        try:
            installer.stage(bundle, slot, manifest)
        except installer.InstallError as e:
            raise DeployError(f"bundle {manifest['bundle_id']} failed to install into slot {slot.name}: {e}{keep}")
        _fault("installed")
        check = subprocess.run([self.python, str(slot / "install.py"), "--check-slot", str(slot)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            why = (check.stderr.strip().splitlines() or ["no output"])[-1]
            raise DeployError(f"bundle {manifest['bundle_id']} failed its health check in slot {slot.name}: "
                              f"{why}{keep}")
        with open(slot / CHECKED, "w") as marker:
            marker.write(check.stdout)
            marker.flush()
            os.fsync(marker.fileno())
        installer.fsync_dir(slot)
        _fault("checked")
        installer.switch(self.root, slot)
        installer.write_launcher(self.root)
        return {**self.status(), "signed_by": signer, "check": check.stdout.strip().splitlines()}


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
