"""Cross-build fixtures: real builds through the Docker toolchain and the host cross compiler, shared by the
tests of one session because each costs 30-100 s on a 2-core machine.

Builds use the repository's artifacts/cache (images, sysroots and wheelhouses are keyed by their inputs, so
a stale entry is never reused) and write bundles into a per-session temp dir.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "cache"


def _missing_tools() -> list[str]:
    from clawdbot.crossbuild.engine import Engine
    missing = []
    if os.geteuid() != 0:
        missing.append("root (debootstrap and dockerd need it)")
    for tool in ("debootstrap", "qemu-aarch64", "aarch64-linux-gnu-gcc", "python3.11", "dockerd"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing.append(tool)
    if not missing and not Engine.available():
        from clawdbot.crossbuild.progress import Progress
        try:
            Engine.connect(Progress())
        except Exception as e:  # reported as the reason below
            missing.append(f"a Docker engine ({e})")
    return missing


@pytest.fixture(scope="session")
def cross_tools(request):
    mode = request.config.getoption("--cross")
    if mode == "skip":
        pytest.skip("--cross=skip")
    missing = _missing_tools()
    if missing:
        message = f"cross-build tools missing: {', '.join(missing)} (`invoke setup` installs them)"
        if mode == "require":
            pytest.fail(message)
        pytest.skip(message)


def _build(tmp_path_factory, **kw):
    from clawdbot.crossbuild.build import BuildOptions, build
    from clawdbot.crossbuild.progress import Progress
    out = tmp_path_factory.mktemp("bundles")
    return build(BuildOptions(root=ROOT, out=out, cache=CACHE, **kw), Progress())


@pytest.fixture(scope="session")
def rpi4_docker(cross_tools, tmp_path_factory):
    return _build(tmp_path_factory, target="rpi4", toolchain="docker")


@pytest.fixture(scope="session")
def rpi4_docker_again(cross_tools, tmp_path_factory, rpi4_docker):
    return _build(tmp_path_factory, target="rpi4", toolchain="docker")


@pytest.fixture(scope="session")
def rpi4_host(cross_tools, tmp_path_factory):
    return _build(tmp_path_factory, target="rpi4", toolchain="host")


@pytest.fixture(scope="session")
def x86_64_docker(cross_tools, tmp_path_factory):
    return _build(tmp_path_factory, target="x86_64", toolchain="docker")
