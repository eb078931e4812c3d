"""CPU kernels: if, loop, scan.

Each subgraph is compiled once, when the node's kernel is built, into a CpuProgram of its own; an iteration (or
a branch) is then one `program.run` call on a list of arrays. Captures — the node's trailing inputs — are passed
through to every run unchanged.
"""
from __future__ import annotations

import os

import numpy as np

from ....ir.graph import Graph
from .registry import kernel_factory


def _program(node, attr: str):
    """Compile the subgraph in `node.attrs[attr]`, with the same per-kernel checks as the enclosing program."""
    from ..executor import CpuProgram  # here, not at the top: the executor imports this package
    check = os.environ.get("CLAWDBOT_CHECK") == "1"
    return CpuProgram(Graph.from_dict(node.attrs[attr], {}), check=check)


def _truth(x: np.ndarray) -> bool:
    """A one-element bool tensor (shape [] or [1]) as a Python bool."""
    return bool(np.asarray(x).reshape(()))


def _empty_stack(t, axis: int = 0) -> np.ndarray:
    """A scan output of zero iterations: length 0 on the stacked axis, the slice's known dims (0 if unknown)."""
    if t is None or t.shape is None:
        return np.zeros((0,), t.dtype if t is not None else "float32")
    dims = [d if isinstance(d, int) else 0 for d in t.shape]
    dims[axis] = 0
    return np.zeros(dims, t.dtype)


@kernel_factory("if")
def if_factory(node, in_types, out_types):
    then_p, else_p = _program(node, "then_branch"), _program(node, "else_branch")

    def run(cond, *captures):
        program = then_p if _truth(cond) else else_p
        return tuple(program.run(list(captures)))
    return run


@kernel_factory("loop")
def loop_factory(node, in_types, out_types):
    body = _program(node, "body")
    n = node.attrs["num_carried"]
    scan_types = out_types[n:]

    def run(m, cond, *rest):
        carried, captures = list(rest[:n]), list(rest[n:])
        limit = None if m is None else int(np.asarray(m).reshape(()))
        # Without a cond input the body's cond output is ignored (ONNX: "a for loop"); the body still sees true.
        keep_going = True if cond is None else _truth(cond)
        cond_value = np.array(True) if cond is None else cond
        scans: list[list[np.ndarray]] = [[] for _ in scan_types]
        i = 0
        while keep_going and (limit is None or i < limit):
            outs = body.run([np.array(i, np.int64), cond_value, *carried, *captures])
            cond_value, carried = outs[0], outs[1:1 + n]
            for acc, y in zip(scans, outs[1 + n:]):
                acc.append(y)
            if cond is not None:
                keep_going = _truth(cond_value)
            i += 1
        stacked = [np.stack(acc) if acc else _empty_stack(t) for acc, t in zip(scans, scan_types)]
        return (*carried, *stacked)
    return run


@kernel_factory("scan")
def scan_factory(node, in_types, out_types):
    body = _program(node, "body")
    a = node.attrs
    n, m = a["num_states"], a["num_scan_inputs"]
    in_axes, in_dirs = a["scan_input_axes"], a["scan_input_directions"]
    out_axes, out_dirs = a["scan_output_axes"], a["scan_output_directions"]  # negative ones: np.stack's meaning
    scan_types = out_types[n:]

    def run(*args):
        states, xs, captures = list(args[:n]), args[n:n + m], list(args[n + m:])
        # Each scan input viewed with its scan axis first, so a slice is a view: x[t].
        views = [np.moveaxis(x, axis, 0) for x, axis in zip(xs, in_axes)]
        length = views[0].shape[0]
        if any(v.shape[0] != length for v in views):
            raise ValueError(f"scan inputs have different lengths {[v.shape[0] for v in views]} on their axes")
        scans: list[list[np.ndarray]] = [[] for _ in scan_types]
        for t in range(length):
            slices = [v[length - 1 - t] if rev else v[t] for v, rev in zip(views, in_dirs)]
            outs = body.run([*states, *slices, *captures])
            states = outs[:n]
            for acc, y in zip(scans, outs[n:]):
                acc.append(y)
        results = []
        for acc, axis, rev, t in zip(scans, out_axes, out_dirs, scan_types):
            if not acc:
                results.append(_empty_stack(t, axis))
                continue
            results.append(np.stack(acc[::-1] if rev else acc, axis=axis))
        return (*states, *results)
    return run
