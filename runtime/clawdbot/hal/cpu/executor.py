"""Compiles a validated claw_ir graph into a flat CPU program and runs it.

Compilation resolves, once: every value name to an integer slot, every node to its kernel callable (with
attributes bound), and the step after which each intermediate can be released. The per-inference loop then
only indexes a list and calls kernels — no graph walking, name lookups or shape inference.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import ClawError
from ...ir.graph import Graph
from ...ir.ops import registry
from ..driver import Executable
from .kernels import KERNELS

_NONE_SLOT = 0  # always holds None: where omitted optional inputs and unused outputs point


class KernelError(ClawError):
    """A kernel failed at run time; names the node."""


class Step:
    __slots__ = ("fn", "ins", "outs", "multi", "free", "node")

    def __init__(self, fn, ins, outs, multi, free, node):
        self.fn, self.ins, self.outs, self.multi, self.free, self.node = fn, ins, outs, multi, free, node


class CpuProgram(Executable):
    def __init__(self, graph: Graph, *, check: bool = False):
        self.graph = graph
        self.check = check
        slot: dict[str, int] = {"": _NONE_SLOT}

        def slot_of(name: str) -> int:
            if name not in slot:
                slot[name] = len(slot)
            return slot[name]

        for name in graph.inputs:
            slot_of(name)
        for name in graph.constants:
            slot_of(name)
        last_use: dict[str, int] = {}
        for k, node in enumerate(graph.nodes):
            for i in node.inputs:
                if i:
                    last_use[i] = k
        keep = set(graph.outputs) | set(graph.constants) | set(graph.inputs)

        steps: list[Step] = []
        missing = sorted({n.op for n in graph.nodes if n.op not in KERNELS})
        if missing:
            raise ClawError(f"CPU driver has no kernel for op(s): {', '.join(missing)}")
        for k, node in enumerate(graph.nodes):
            in_types = [graph.types.get(i) if i else None for i in node.inputs]
            out_types = [graph.types.get(o) for o in node.outputs]
            try:
                fn = KERNELS[node.op](node, in_types, out_types)
            except ClawError:
                raise
            except Exception as e:  # a factory rejecting a configuration it cannot run
                raise ClawError(f"{node}: CPU kernel cannot be built: {e}") from None
            ins = tuple(slot_of(i) if i else _NONE_SLOT for i in node.inputs)
            outs = tuple(slot_of(o) if o else len(slot) + 10**9 for o in node.outputs)
            free = tuple(slot[v] for v in {i for i in node.inputs if i}
                         if last_use.get(v) == k and v not in keep)
            # Outputs nobody reads are dropped at once, unless they are graph outputs.
            free += tuple(slot[o] for o in node.outputs if o and o not in last_use and o not in keep)
            steps.append(Step(fn, ins, outs, registry.OPS[node.op].multi_output, free, node))
        # Unused outputs were given out-of-range slots above; point them at a scratch slot instead.
        scratch = len(slot)
        for s in steps:
            s.outs = tuple(o if o < scratch else scratch for o in s.outs)
        self._steps = steps
        self._template: list[Any] = [None] * (scratch + 1)
        for name, value in graph.constants.items():
            self._template[slot[name]] = value
        self._in_slots = [slot[n] for n in graph.inputs]
        self._out_slots = [slot[n] for n in graph.outputs]
        self._slot = slot

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        vals = list(self._template)
        for s, x in zip(self._in_slots, inputs):
            vals[s] = x
        step = None
        # IEEE results (log(0) = -inf, 0/0 = nan) are what the model computes, as in other runtimes: no warnings.
        with np.errstate(all="ignore"):
            try:
                for step in self._steps:
                    r = step.fn(*[vals[i] for i in step.ins])
                    if step.multi:
                        for o, v in zip(step.outs, r):
                            vals[o] = v
                    else:
                        vals[step.outs[0]] = r
                    if self.check:
                        self._check(step, vals)  # before freeing: an unread output is still checked
                    for f in step.free:
                        vals[f] = None
            except ClawError:
                raise
            except Exception as e:
                raise KernelError(f"{step.node}: {type(e).__name__}: {e}") from e
        return [np.asarray(vals[s]) for s in self._out_slots]

    def run_profiled(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[object, float]]]:
        """Like run(), also returning (node, seconds) per step. Kept apart so run() carries no timing cost."""
        from time import perf_counter
        vals = list(self._template)
        for s, x in zip(self._in_slots, inputs):
            vals[s] = x
        times = []
        for step in self._steps:
            t0 = perf_counter()
            r = step.fn(*[vals[i] for i in step.ins])
            times.append((step.node, perf_counter() - t0))
            if step.multi:
                for o, v in zip(step.outs, r):
                    vals[o] = v
            else:
                vals[step.outs[0]] = r
            for f in step.free:
                vals[f] = None
        return [np.asarray(vals[s]) for s in self._out_slots], times

    def _check(self, step: Step, vals: list) -> None:
        """Debug mode: every kernel output must match the inferred dtype and static dims."""
        for name, s in zip(step.node.outputs, step.outs):
            if not name:
                continue
            t = self.graph.types[name]
            v = np.asarray(vals[s])
            if v.dtype.name != t.dtype:
                raise KernelError(f"{step.node}: output {name!r} has dtype {v.dtype}, inferred {t.dtype}")
            if t.shape is not None:
                ok = len(t.shape) == v.ndim and all(not isinstance(d, int) or d == n
                                                    for d, n in zip(t.shape, v.shape))
                if not ok:
                    raise KernelError(f"{step.node}: output {name!r} has shape {v.shape}, inferred {t}")


def compile_graph(graph: Graph, *, check: bool = False) -> Callable:
    return CpuProgram(graph, check=check)
