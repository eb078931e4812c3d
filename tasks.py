"""Project tasks (Invoke). `invoke --list` shows the menu; every task's docstring is its --help.

    invoke demo                      # build the default model, convert, run, compare with onnxruntime
    invoke test                      # the test suite (what CI runs)
    invoke conformance [--write]     # every ONNX backend node case, with the pass count
    invoke bench --model resnet50    # clawbench on a zoo model
"""
from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Exit, task

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
PASSING_LIST = ROOT / "tests" / "importers" / "onnx" / "onnx_node_passing.txt"
PY = sys.executable


def _zoo_model(c, name: str) -> Path:
    from clawdbot.tools import zoo
    if name not in zoo.MODELS:
        raise Exit(f"unknown model {name!r}; choose one of: {', '.join(sorted(zoo.MODELS))}")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.onnx"
    if not path.exists():
        c.run(f"{PY} -m clawdbot.tools.zoo {name} -o {path}", echo=True)
    return path


@task(help={"model": "zoo model to run (default: mobilenet_v2; see `python -m clawdbot.tools.zoo --list`)",
            "batch": "batch size for the run"})
def demo(c, model="mobilenet_v2", batch=1):
    """Build a model, convert it to .claw, inspect it, run it and check the result against onnxruntime."""
    onnx_path = _zoo_model(c, model)
    claw_path = onnx_path.with_suffix(".claw")
    c.run(f"claw convert {onnx_path} -o {claw_path}", echo=True)
    c.run(f"claw info {claw_path}", echo=True)
    c.run(f"{PY} -m clawdbot.tools.check {claw_path} {onnx_path} --batch {batch}", echo=True)


@task(help={"k": "only tests matching this pytest -k expression", "slow": "include tests marked slow"})
def test(c, k="", slow=True):
    """Run the test suite (CI runs the same command through .ci/run)."""
    args = ["-q"]
    if k:
        args += ["-k", repr(k)]
    if not slow:
        args += ["-m", "'not slow'"]
    c.run(f"{PY} -m pytest {' '.join(args)}", echo=True, pty=False)


@task(help={"write": f"rewrite {PASSING_LIST.relative_to(ROOT)} with the cases that pass now",
            "filter": "only cases whose name matches this regex"})
def conformance(c, write=False, filter=""):
    """Run every ONNX backend node case through clawdbot and print the pass count."""
    cmd = f"{PY} -m clawdbot.tools.onnx_conformance"
    if filter:
        cmd += f" --filter {filter!r}"
    if write:
        if filter:
            raise Exit("--write records the whole suite; drop --filter")
        cmd += f" --write {PASSING_LIST}"
    c.run(cmd, echo=True)


@task(help={"model": "zoo model name", "threads": "threads for both runtimes", "runs": "timed runs each"})
def bench(c, model="resnet50", threads=1, runs=20):
    """clawbench: clawdbot next to onnxruntime on a zoo model."""
    path = _zoo_model(c, model)
    c.run(f"clawbench {path} --threads {threads} --runs {runs}", echo=True)


ns = Collection(demo, test, conformance, bench)
