"""Debian userlands made from Debian's packages: a rootfs for a local base image, and arm64 sysroots for
the host cross compiler and for QEMU. debootstrap does the dependency resolution; with --foreign it runs no
target code, so an arm64 userland can be made on x86 without binfmt; every .deb is then unpacked with
dpkg -x (no maintainer scripts run, which a sysroot doesn't need)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from ..errors import BuildError
from .progress import Progress

_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))
# Installed versions of named packages, one "name version" line each (for manifests), on the host or in an image.
DPKG_VERSIONS = ["dpkg-query", "-W", "-f", "${binary:Package} ${Version}\\n"]


def parse_versions(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def host_package_versions(names: Sequence[str]) -> dict[str, str]:
    try:
        return parse_versions(subprocess.run([*DPKG_VERSIONS, *names], capture_output=True, text=True).stdout)
    except OSError:  # not a Debian host
        return {}


def apt_mirrors() -> tuple[str, str | None]:
    """(archive mirror, security mirror) that the host's apt uses, so image and sysroot builds reach the same
    archive as apt does here (air-gapped sites point apt at their own mirror). CLAWDBOT_DEBIAN_MIRROR and
    CLAWDBOT_DEBIAN_SECURITY_MIRROR override."""
    mirror = os.environ.get("CLAWDBOT_DEBIAN_MIRROR")
    security = os.environ.get("CLAWDBOT_DEBIAN_SECURITY_MIRROR")
    uris: list[str] = []
    files = sorted(_SOURCES[0].glob("*.sources")) + sorted(_SOURCES[0].glob("*.list")) + [_SOURCES[1]]
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        uris += re.findall(r"^URIs:\s*(\S+)", text, flags=re.M)
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.M)
    if not mirror:
        mirror = next((u for u in uris if "security" not in u), None)
    if not security:
        security = next((u for u in uris if "security" in u), None)
    if not mirror:
        raise BuildError("no Debian mirror: the host's apt sources name none; set CLAWDBOT_DEBIAN_MIRROR "
                         "to your Debian archive mirror's URL")
    return mirror.rstrip("/"), security.rstrip("/") if security else None


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise BuildError(f"{what} runs debootstrap, which needs root; run it as root (or use a machine where "
                         f"you are)")
    if shutil.which("debootstrap") is None:
        raise BuildError(f"{what} needs debootstrap: apt-get install debootstrap (or `invoke setup`)")


def debootstrap(dest: Path, suite: str, mirror: str, progress: Progress, *, arch: str | None = None,
                include: Sequence[str] = (), foreign: bool = False, what: str = "debootstrap") -> None:
    _need_root(what)
    argv = ["debootstrap", "--variant=minbase"]
    if arch:
        argv.append(f"--arch={arch}")
    if foreign:
        argv.append("--foreign")
    if include:
        argv.append("--include=" + ",".join(include))
    progress.run([*argv, suite, str(dest), mirror], what=what)


def make_base_rootfs(work: Path, suite: str, progress: Progress) -> Path:
    """A minbase rootfs of the build machine's architecture, ready for `docker import`."""
    mirror, _ = apt_mirrors()
    root = work / "rootfs"
    debootstrap(root, suite, mirror, progress, what=f"base image rootfs ({suite})")
    # The downloaded .debs are half the rootfs and the image never needs them again.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    return root


def sysroot(cache: Path, arch: str, suite: str, packages: Sequence[str], progress: Progress) -> Path:
    """An unpacked Debian `arch` userland with `packages` (and their dependencies), cached by its inputs.

    Returns the directory; `packages.json` in it records every unpacked package's version."""
    mirror, _ = apt_mirrors()
    key = hashlib.sha256(json.dumps([arch, suite, sorted(packages), mirror]).encode()).hexdigest()[:16]
    dest = cache / "sysroots" / f"{suite}-{arch}-{key}"
    if (dest / "packages.json").is_file():
        progress.say(f"==> sysroot {dest.name}: cached")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with progress.step(f"sysroot: Debian {suite} {arch} with {', '.join(packages)} (about 30 s)"):
        # Unpack next to the final place, then rename: an interrupted run never leaves a half sysroot
        # that a later run would take for complete.
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            debootstrap(tmp, suite, mirror, progress, arch=arch, include=packages, foreign=True,
                        what=f"sysroot {arch}")
            versions = {}
            for deb in sorted((tmp / "var/cache/apt/archives").glob("*.deb")):
                progress.run(["dpkg-deb", "-x", str(deb), str(tmp)], what=f"unpack {deb.name}")
                name, version, _ = deb.name[:-4].split("_")
                versions[name] = version.replace("%3a", ":")
                deb.unlink()
            (tmp / "packages.json").write_text(json.dumps(versions, indent=1, sort_keys=True))
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest
