"""Compiles a validated claw_ir graph into a flat CPU program and runs it.

Compilation resolves, once: every value name to an integer slot, every node to its kernel callable (with
attributes bound), and the step after which each intermediate can be released. The per-inference loop then
only indexes a list and calls kernels — no graph walking, name lookups or shape inference.

With a memory plan (plan/memory.py) every intermediate is a view into one arena buffer: kernels that take
`out=` write there directly, the others' results are copied in, views of a planned value are made once and
their nodes skipped. A plan holds for one binding of the symbolic dims; the program plans again for other
input sizes (kept per binding) and reuses its arena when the new plan fits. Each concurrent run takes an
arena from a pool, so one program can serve several threads; a single thread reuses one arena, so after
the first run an inference allocates nothing but the outputs it returns.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from ...errors import ClawError
from ...ir.graph import Graph
from ...ir.ops import registry
from ..driver import Executable
from .kernels import KERNELS

_NONE_SLOT = 0  # always holds None: where omitted optional inputs and unused outputs point

# How a step runs under a plan.
_CALL, _OUT, _COPY, _VIEW = 0, 1, 2, 3


class KernelError(ClawError):
    """A kernel failed at run time; names the node."""


class Step:
    __slots__ = ("fn", "ins", "outs", "multi", "free", "node")

    def __init__(self, fn, ins, outs, multi, free, node):
        self.fn, self.ins, self.outs, self.multi, self.free, self.node = fn, ins, outs, multi, free, node


class Layout:
    """One memory plan applied to a program: per step how it runs, and the views an arena holds."""

    def __init__(self, program: "CpuProgram", plan):
        self.plan = plan
        self.nbytes = plan.arena_bytes
        slot = program._slot
        offsets = plan.arena.offsets
        self.values = [(slot[v], offsets[s.buffer], np.dtype(s.dtype), s.shape) for v, s in plan.slots.items()
                       if v in slot]
        planned = {slot[v] for v in plan.slots if v in slot}
        views = set(plan.views)
        self.modes: list[int] = []
        self.scratch: list[tuple[int, int] | None] = []
        for k, step in enumerate(program._steps):
            outs_planned = [o in planned for o in step.outs]
            if k in views:
                mode = _VIEW
            elif outs_planned[0] and getattr(step.fn, "writes_out", False):
                mode = _OUT
            elif any(outs_planned):
                mode = _COPY
            else:
                mode = _CALL
            self.modes.append(mode)
            buf = plan.scratch.get(k)
            self.scratch.append(None if buf is None or mode != _OUT else (offsets[buf], plan.arena.sizes[buf]))
        self.planned = frozenset(planned)
        # Planned slots keep their views all run long: only the heap values are released.
        self.free = [tuple(f for f in step.free if f not in planned) for step in program._steps]

    def bind(self, arena: np.ndarray, template: list) -> tuple[list, list]:
        """The slot template with this plan's views into `arena`, and each step's scratch view."""
        vals = list(template)
        for s, off, dtype, shape in self.values:
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            vals[s] = arena[off:off + n].view(dtype).reshape(shape)
        scratch = [None if sc is None else arena[sc[0]:sc[0] + sc[1]] for sc in self.scratch]
        return vals, scratch


class CpuProgram(Executable):
    def __init__(self, graph: Graph, *, check: bool = False, plan=None):
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
        self._unplanned_free = [s.free for s in steps]
        self._call_modes, self._no_scratch = [_CALL] * len(steps), [None] * len(steps)
        # Symbolic dims: (name, input index, axis) of each one's first appearance, to key plans by binding.
        self._dim_axes: list[tuple[str, int, int]] = []
        self._plannable = True
        seen: set[str] = set()
        for j, (_, t) in enumerate(graph.input_types()):
            if t.shape is None or any(d is None for d in t.shape):
                self._plannable = False  # unknown rank or unnamed dims: no plan can be made
                break
            for axis, d in enumerate(t.shape):
                if isinstance(d, str) and d not in seen:
                    seen.add(d)
                    self._dim_axes.append((d, j, axis))
        self._layouts: dict[tuple, Layout | None] = {}
        self._pool: list[tuple[np.ndarray, Layout | None, list, list]] = []
        self._lock = threading.Lock()
        if plan is not None:
            self.use_plan(plan)

    # -- plans ----------------------------------------------------------------------------------------------
    def use_plan(self, plan) -> None:
        """Follow `plan` (made for this graph on the CPU driver) when the inputs bind its dims."""
        if plan.steps != len(self._steps) or plan.driver != "cpu":
            raise ClawError(f"memory plan for {plan.driver!r} with {plan.steps} steps does not fit this "
                            f"{len(self._steps)}-step CPU program")
        # A stored plan must describe this graph: every slot a node output of the declared dtype and rank,
        # with the static and bound symbolic dims it was planned for.
        produced = {o for n in self.graph.nodes for o in n.outputs if o}
        for v, s in plan.slots.items():
            t = self.graph.types.get(v)
            ok = v in produced and t is not None and t.dtype == s.dtype and (
                t.shape is None or (len(t.shape) == len(s.shape) and all(
                    d is None or (plan.dims.get(d) if isinstance(d, str) else d) in (None, n)
                    for d, n in zip(t.shape, s.shape))))
            if not ok:
                raise ClawError(f"memory plan: value {v!r} planned as {s.dtype}{list(s.shape)} is not a node "
                                f"output of that type in this graph ({t})")
        self._layouts[tuple(plan.dims.get(d, 1) for d, _, _ in self._dim_axes)] = Layout(self, plan)

    def layout_for(self, inputs: list[np.ndarray]) -> Layout | None:
        if not self._plannable:
            return None
        key = tuple(inputs[j].shape[axis] for _, j, axis in self._dim_axes)
        try:
            return self._layouts[key]
        except KeyError:
            pass
        from ...plan.memory import plan_memory
        dims = {d: int(n) for (d, _, _), n in zip(self._dim_axes, key)}
        try:
            layout = Layout(self, plan_memory(self.graph, dims, driver="cpu"))
        except ClawError:
            layout = None  # e.g. a size inference cannot bound: run on the heap
        with self._lock:
            if len(self._layouts) >= 16:  # ever-changing input sizes must not grow this without bound
                self._layouts.clear()
            self._layouts[key] = layout
        return layout

    def _take(self, layout: Layout) -> tuple[np.ndarray, Layout, list, list]:
        """An arena bound to `layout`, from the pool when one is free (rebinding it if it was bound to
        another layout and is large enough)."""
        with self._lock:
            for k, entry in enumerate(self._pool):
                if entry[1] is layout:
                    return self._pool.pop(k)
            entry = self._pool.pop() if self._pool else None
        if entry is not None and entry[0].nbytes >= layout.nbytes:
            arena = entry[0]
        else:
            # 64-byte aligned start: the plan's offsets are multiples of 64 from here.
            raw = np.empty(layout.nbytes + 64, dtype=np.uint8)
            start = (-raw.ctypes.data) % 64
            arena = raw[start:start + layout.nbytes]
        vals, scratch = layout.bind(arena, self._template)
        return arena, layout, vals, scratch

    # -- running --------------------------------------------------------------------------------------------
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self._run(inputs, None)

    def run_profiled(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[object, float]]]:
        """Like run(), also returning (node, seconds) per step."""
        times: list[tuple[object, float]] = []
        return self._run(inputs, times), times

    def _run(self, inputs: list[np.ndarray], times: list | None) -> list[np.ndarray]:
        layout = self.layout_for(inputs)
        if layout is None:
            vals = list(self._template)
            outs = self._execute(vals, inputs, None, None, None, times)
            return [np.asarray(vals[s]) for s in outs]
        entry = self._take(layout)
        try:
            arena, _, bound, scratch = entry
            vals = list(bound)
            outs = self._execute(vals, inputs, layout, arena, scratch, times)
            return [np.array(vals[s]) if s in layout.planned else np.asarray(vals[s]) for s in outs]
        finally:
            with self._lock:
                self._pool.append(entry)

    def _execute(self, vals: list, inputs: list, layout: Layout | None, arena, scratch: list | None,
                 times: list | None) -> list[int]:
        for s, x in zip(self._in_slots, inputs):
            vals[s] = x
        if layout is None:
            modes, frees, scratch = self._call_modes, self._unplanned_free, self._no_scratch
        else:
            modes, frees = layout.modes, layout.free
        if times is not None:
            from time import perf_counter
        step = None
        # IEEE results (log(0) = -inf, 0/0 = nan) are what the model computes, as in other runtimes: no warnings.
        with np.errstate(all="ignore"):
            try:
                for step, mode, free, scr in zip(self._steps, modes, frees, scratch):
                    if mode == _VIEW:
                        continue
                    if times is not None:
                        t0 = perf_counter()
                    if mode == _OUT:
                        if scr is None:
                            r = step.fn(*[vals[i] for i in step.ins], out=vals[step.outs[0]])
                        else:
                            r = step.fn(*[vals[i] for i in step.ins], out=vals[step.outs[0]], scratch=scr)
                        if step.multi:  # output 0 is in place; the others are stored as below
                            self._store(step, step.outs[1:], r[1:], vals, layout, arena)
                    else:
                        r = step.fn(*[vals[i] for i in step.ins])
                        self._store(step, step.outs, r if step.multi else (r,), vals, layout, arena)
                    if times is not None:
                        times.append((step.node, perf_counter() - t0))
                    if self.check:
                        self._check(step, vals)  # before freeing: an unread output is still checked
                    for f in free:
                        vals[f] = None
            except ClawError:
                raise
            except Exception as e:
                raise KernelError(f"{step.node}: {type(e).__name__}: {e}") from e
        return self._out_slots

    @staticmethod
    def _store(step: Step, outs, results, vals: list, layout: Layout | None, arena=None) -> None:
        """Results into their slots: copied into the arena where planned, else kept as they are — unless a
        kept result is a view into the arena (expand, split, ... return views of their input): the plan
        does not know it is alive and may reuse those bytes, so it gets its own copy."""
        for o, v in zip(outs, results):
            if layout is not None and o in layout.planned:
                dst = vals[o]
                if v is not dst:
                    if np.shape(v) != dst.shape:
                        raise KernelError(f"{step.node}: output has shape {np.shape(v)}, planned {dst.shape}")
                    np.copyto(dst, v, casting="no")
            elif arena is not None and isinstance(v, np.ndarray) and np.may_share_memory(v, arena):
                vals[o] = v.copy()
            else:
                vals[o] = v

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
