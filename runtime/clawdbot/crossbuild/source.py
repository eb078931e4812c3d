"""The runtime's source as the wheel build sees it: only the files that go into the wheel, copied from the
checkout, so that build outputs lying in the working tree (x86 .so files, generated .c) never leak into a
cross build, and unrelated edits (tests, docs) don't change what is built."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import BuildError

WHEEL_INPUTS = ("pyproject.toml", "setup.py", "README.md", "runtime/")
# The earliest time a zip entry can carry; used when the checkout has no git history to date it by.
ZIP_EPOCH = 315532800


def _listed(root: Path) -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout
        return [p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (an unpacked source archive): take the files, minus compiled outputs.
        return [str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and p.suffix not in (".so", ".c", ".pyc") and "egg-info" not in str(p)]


def export(root: Path, dest: Path) -> list[str]:
    """Copy the wheel's inputs from `root` to `dest`; returns the relative paths copied, sorted."""
    files = sorted(p for p in _listed(root) if p.startswith(WHEEL_INPUTS) and (root / p).is_file())
    if not any(p.startswith("runtime/") for p in files):
        raise BuildError(f"{root}: no runtime/ sources found; run the build from a clawdbot checkout")
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return files


def source_date_epoch(root: Path) -> int:
    """SOURCE_DATE_EPOCH for the build: an explicit setting, else the last commit's time."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"], check=True,
                             capture_output=True, text=True).stdout.strip()
        return max(int(out), ZIP_EPOCH)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return ZIP_EPOCH
