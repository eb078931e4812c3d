"""Shared fixtures. Tests compare clawdbot with onnxruntime (the oracle), never with stored numbers."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--cross", choices=("auto", "require", "skip"), default="auto",
                     help="cross-build tests (Docker toolchain, host cross compiler, QEMU): auto skips them when "
                          "their tools are missing, require fails instead (CI, via `invoke test`), skip skips them")


@pytest.fixture(autouse=True)
def _kernel_checks(monkeypatch):
    # Every kernel output is checked against its inferred dtype and shape in tests.
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")


def pytest_terminal_summary(terminalreporter):
    """Print how many of the onnx package's node cases pass (the suite's size comes from onnx itself)."""
    passed = [r for r in terminalreporter.stats.get("passed", []) if "OnnxBackendNodeModelTest" in r.nodeid]
    failed = [r for r in terminalreporter.stats.get("failed", []) if "OnnxBackendNodeModelTest" in r.nodeid]
    if not passed and not failed:
        return
    try:
        from clawdbot.tools.onnx_conformance import node_cases
        total = len(node_cases())
    except Exception:  # noqa: BLE001 - the count is informative only
        total = "?"
    terminalreporter.write_line(f"ONNX backend node cases passed: {len(passed)} of {total} "
                                f"({len(failed)} listed cases failed)")


def pytest_collection_modifyitems(config, items):
    """The onnx BackendTest marks every case it was not asked to run as skipped; deselect those instead of
    reporting thousands of skips (the unlisted cases are counted by `invoke conformance`)."""
    keep, drop = [], []
    for item in items:
        why = getattr(getattr(item, "obj", None), "__unittest_skip_why__", "")
        (drop if why == "no matched include pattern" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# -- real bundles (tests/crossbuild, tests/deploy) ---------------------------------------------------------
# Cross-build fixtures: real builds through the Docker toolchain and the host cross compiler, shared by the
# tests of one session because each costs 30-100 s on a 2-core machine. Builds use the repository's
# artifacts/cache (images, sysroots and wheelhouses are keyed by their inputs, so a stale entry is never
# reused) and write bundles into a per-session temp dir.

ROOT = Path(__file__).resolve().parents[1]
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
