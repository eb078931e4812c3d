"""Wheelhouses: wheels downloaded on the build host for another platform, so that neither a toolchain image
build nor a board ever needs to reach a package index (both often can't)."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .progress import Progress


def download(requirements: Path, cache: Path, progress: Progress, *, platforms: Sequence[str],
             python_version: str, abi: str) -> list[Path]:
    """Wheels for `requirements` (exact pins) on the given platform tags and CPython ABI, cached by inputs.

    Exact pins make the download the same files every time, which the bundle's reproducibility relies on."""
    text = requirements.read_bytes()
    key = hashlib.sha256(b"\0".join([text, *map(str.encode, platforms), python_version.encode(),
                                     abi.encode()])).hexdigest()[:16]
    dest = cache / "wheelhouses" / f"{abi}-{platforms[0]}-{key}"
    if dest.is_dir():
        progress.say(f"==> wheelhouse {requirements.name} for {abi} {platforms[0]}: cached")
        return sorted(dest.glob("*.whl"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", str(tmp),
            "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none", "-r", str(requirements)]
    for p in platforms:
        argv += ["--platform", p]
    try:
        with progress.step(f"download {requirements.name} wheels for {abi} {platforms[0]}"):
            progress.run(argv, what=f"pip download for {abi} {platforms[0]} (needs a package index, or a "
                                    f"pip configured for your mirror)")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(dest.glob("*.whl"))


def build_platforms(machine: str) -> list[str]:
    """Platform tags of a Debian bookworm Python (glibc 2.36) on the build machine, best first."""
    return [f"manylinux_2_28_{machine}", f"manylinux_2_17_{machine}", f"manylinux2014_{machine}",
            f"linux_{machine}"]
