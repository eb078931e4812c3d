"""Shared fixtures. Tests compare clawdbot with onnxruntime (the oracle), never with stored numbers."""
from __future__ import annotations

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
