"""The memory plan: where every intermediate tensor of a model lives inside one arena, made once at
conversion time for one driver and one binding of the model's symbolic dims, stored in the .claw file and
followed by the executor, which then allocates no tensor memory per inference.

How it is made:

1. Bind the inputs' symbolic dims and infer every value's static type (estimate.py's walk).
2. Group values that share bytes, asking the driver what its kernel for each node allows (MemoryTraits):
   * a view (reshape, flatten, squeeze, ...) joins its input's buffer: no bytes, no work;
   * an in-place kernel (elementwise, activations) writes its output over an input of the same type whose
     buffer nothing reads after this node.
   Graph inputs and constants are never written: they are the caller's arrays and the mapped weights.
3. Each buffer lives from its first member's birth to its last member's last use; each kernel's scratch
   is a buffer living at its node's step alone; a control-flow node's subgraph peak is reserved the same way.
4. arena.plan_offsets places the buffers (greedy by size, best fit) and reports the lower bound.

A value whose size is only known at run time (a data-dependent shape) is *dynamic*: it stays outside the
arena and its kernel allocates it, as do the values computed from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import ClawError
from ..ir.graph import Graph
from .arena import ALIGNMENT, ArenaPlan, plan_offsets
from .estimate import Lifetime, bind_graph, infer_sizes

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Slot:
    """One value's place: `buffer` names the arena buffer holding it, at that buffer's offset."""
    buffer: str
    dtype: str
    shape: tuple[int, ...]


@dataclass
class MemoryPlan:
    driver: str
    dims: dict[str, int]             # every symbolic input dim, bound to what the plan was made for
    assumed: tuple[str, ...]         # dims that were not given and taken as 1
    arena: ArenaPlan                 # offsets of the buffers, arena size, lower bound
    buffers: list[Lifetime]          # tensor buffers, scratch and reserved subgraph peaks, with their steps
    members: dict[str, tuple[str, ...]]  # buffer -> the values it holds, in order of birth
    slots: dict[str, Slot]           # value -> where it lives
    views: tuple[int, ...]           # steps whose node is a view of its input: nothing to run
    scratch: dict[int, str]          # step -> its kernel's scratch buffer
    dynamic: tuple[str, ...]         # values outside the arena (sizes known only at run time)
    weights_bytes: int
    steps: int = 0                   # nodes in the graph the plan was made for
    inputs_bytes: int = 0            # the graph inputs: the caller's arrays, outside the arena but in memory
    notes: dict[str, str] = field(default_factory=dict)  # dynamic value -> why

    @property
    def arena_bytes(self) -> int:
        return self.arena.arena_bytes

    @property
    def lower_bound(self) -> int:
        return self.arena.lower_bound

    @property
    def efficiency(self) -> float:
        return self.arena.efficiency

    def offset(self, value: str) -> int:
        return self.arena.offsets[self.slots[value].buffer]

    def total_bytes(self, overhead_bytes: int = 0) -> int:
        """What running the model needs: weights (mapped) + the arena + the inputs + `overhead_bytes`."""
        return self.weights_bytes + self.arena_bytes + self.inputs_bytes + overhead_bytes

    def summary(self) -> dict:
        return {"driver": self.driver, "dims": dict(self.dims), "assumed": list(self.assumed),
                "weights_bytes": self.weights_bytes, "arena_bytes": self.arena_bytes,
                "inputs_bytes": self.inputs_bytes,
                "lower_bound_bytes": self.lower_bound, "efficiency": round(self.efficiency, 4),
                "buffers": len(self.buffers), "values": len(self.slots), "in_place": self.shared_values(),
                "views": len(self.views), "scratch_bytes": sum(b.size for b in self.buffers
                                                               if b.name.startswith("scratch:")),
                "dynamic": list(self.dynamic)}

    def shared_values(self) -> int:
        """How many values live in a buffer another value opened (views and in-place results)."""
        return sum(len(m) - 1 for m in self.members.values())

    def contributors(self, n: int = 5) -> list[tuple[str, int]]:
        """The biggest buffers live at the arena's busiest step, largest first."""
        peak = self.peak_step()
        live = [(b.name, b.size) for b in self.buffers if b.first <= peak <= b.last]
        return sorted(live, key=lambda x: -x[1])[:n]

    def peak_step(self) -> int:
        best, best_step = -1, 0
        for s in range(self.steps):
            live = sum(b.size for b in self.buffers if b.first <= s <= b.last)
            if live > best:
                best, best_step = live, s
        return best_step

    def format(self) -> str:
        """The plan as text: one line per buffer, by offset (TFLM's PrintMemoryPlan, in spirit)."""
        lines = [f"arena {self.arena_bytes:,} B, lower bound {self.lower_bound:,} B, efficiency "
                 f"{self.efficiency:.3f}, {len(self.buffers)} buffers for {len(self.slots)} values ("
                 f"{self.shared_values()} in place or views), dims {self.dims}"]
        for b in sorted(self.buffers, key=lambda b: (self.arena.offsets[b.name], b.first)):
            off = self.arena.offsets[b.name]
            held = self.members.get(b.name, ())
            lines.append(f"  [{off:>12,} .. {off + b.size:>12,})  steps {b.first:>4}..{b.last:<4} {b.name}"
                         + (f"  (+{len(held) - 1} sharing)" if len(held) > 1 else ""))
        if self.dynamic:
            lines.append(f"  outside the arena (run-time sizes): {', '.join(self.dynamic)}")
        return "\n".join(lines)

    # -- storage in the .claw file ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": PLAN_FORMAT, "clawdbot": _version(), "driver": self.driver, "dims": dict(self.dims),
            "assumed": list(self.assumed),
            "alignment": self.arena.alignment, "arena_bytes": self.arena_bytes, "lower_bound": self.lower_bound,
            "weights_bytes": self.weights_bytes, "steps": self.steps, "inputs_bytes": self.inputs_bytes,
            "buffers": [{"name": b.name, "size": b.size, "first": b.first, "last": b.last,
                         "offset": self.arena.offsets[b.name], "values": list(self.members.get(b.name, ()))}
                        for b in self.buffers],
            "slots": {v: {"dtype": s.dtype, "shape": list(s.shape)} for v, s in self.slots.items()},
            "views": list(self.views), "scratch": {str(k): v for k, v in self.scratch.items()},
            "dynamic": list(self.dynamic),
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "memory plan") -> "MemoryPlan":
        """Rebuild a stored plan, refusing one that is inconsistent (overlapping live buffers, a value in
        no buffer, ...) with a message naming `where`."""
        try:
            if d["format"] != PLAN_FORMAT:
                raise ClawError(f"{where}: plan format {d['format']!r}, this clawdbot reads {PLAN_FORMAT}")
            buffers, offsets, members, slots = [], {}, {}, {}
            for b in d["buffers"]:
                buf = Lifetime(str(b["name"]), int(b["size"]), int(b["first"]), int(b["last"]))
                buffers.append(buf)
                offsets[buf.name] = int(b["offset"])
                if b["values"]:
                    members[buf.name] = tuple(b["values"])
                    for v in b["values"]:
                        s = d["slots"][v]
                        slots[v] = Slot(buf.name, str(s["dtype"]), tuple(int(x) for x in s["shape"]))
            arena = ArenaPlan(offsets, {b.name: b.size for b in buffers}, int(d["arena_bytes"]),
                              int(d["lower_bound"]), int(d["alignment"]))
            plan = cls(str(d["driver"]), {str(k): int(v) for k, v in d["dims"].items()}, tuple(d["assumed"]),
                       arena, buffers, members, slots, tuple(int(s) for s in d["views"]),
                       {int(k): str(v) for k, v in d["scratch"].items()}, tuple(d["dynamic"]),
                       int(d["weights_bytes"]), int(d["steps"]), int(d.get("inputs_bytes", 0)))
        except ClawError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ClawError(f"{where}: malformed ({type(e).__name__}: {e})") from None
        plan.check(where)
        return plan

    def check(self, where: str = "memory plan") -> None:
        """Every buffer inside the arena and aligned, no two live at one step sharing a byte: a sweep over
        the steps keeping the live buffers ordered by offset."""
        a = self.arena
        for b in self.buffers:
            off = a.offsets[b.name]
            if off < 0 or off % a.alignment or off + b.size > a.arena_bytes or b.first > b.last or b.size < 0:
                raise ClawError(f"{where}: buffer {b.name!r} ({b.size} B at {off}, steps {b.first}..{b.last}) "
                                f"does not fit an arena of {a.arena_bytes} B")
        events = sorted(((b.first, 0, b) for b in self.buffers if b.size), key=lambda e: (e[0], e[1]))
        live: list[Lifetime] = []
        for step, _, b in events:
            live = [x for x in live if x.last >= step]
            lo, hi = a.offsets[b.name], a.offsets[b.name] + b.size
            for x in live:
                xo = a.offsets[x.name]
                if lo < xo + x.size and xo < hi:
                    raise ClawError(f"{where}: buffers {x.name!r} and {b.name!r} are live together at step "
                                    f"{step} and overlap")
            live.append(b)
        for v, s in self.slots.items():
            if s.buffer not in a.offsets:
                raise ClawError(f"{where}: value {v!r} is in unknown buffer {s.buffer!r}")


def plan_memory(graph: Graph, dims: Mapping[str, int] | None = None, *, driver: str = "cpu",
                alignment: int = ALIGNMENT) -> MemoryPlan:
    """The memory plan of `graph` on `driver` with its inputs' symbolic dims bound from `dims` (a dim not
    given is taken as 1 and listed in `assumed`). Raises ClawError naming the input when the inputs' ranks
    or dims are unknown, since no plan can be made then."""
    from ..hal import get_driver
    drv = get_driver(driver)
    work, bound, assumed = bind_graph(graph, dims)
    sized = infer_sizes(work, bound, strict=False)
    types = work.types
    outside = set(work.inputs) | set(work.constants)   # the caller's arrays and the mapped weights
    outputs = set(work.outputs)                        # copied out at the end: never overwritten

    group: dict[str, str] = {}        # value -> its buffer (named after the buffer's first value)
    members: dict[str, list[str]] = {}
    views: list[int] = []

    def last_use(buf: str) -> int:
        return max(sized.last[v] for v in members[buf])

    def joinable(src: str, out: str, step: int, dying: bool) -> str | None:
        buf = group.get(src)
        if buf is None or sized.size[src] != sized.size[out]:
            return None
        if dying and (last_use(buf) > step or types[src].dtype != types[out].dtype
                      or any(v in outputs for v in members[buf])):
            return None
        return buf

    scratch: dict[int, str] = {}
    extra: list[Lifetime] = []
    for step, node in enumerate(work.nodes):
        outs = [o for o in node.outputs if o and o in sized.size]
        traits = drv.memory_traits(node, [types.get(i) if i else None for i in node.inputs],
                                   [types[o] for o in node.outputs if o])
        if traits.scratch_bytes:
            scratch[step] = f"scratch:{step}:{node.name or node.outputs[0]}"
            extra.append(Lifetime(scratch[step], int(traits.scratch_bytes), step, step))
        single = len(node.outputs) == 1 and outs == node.outputs
        buf = None
        if single and traits.view_of is not None and traits.view_of < len(node.inputs):
            buf = joinable(node.inputs[traits.view_of], outs[0], step, dying=False)
            if buf is not None:
                views.append(step)
        if buf is None and single:
            for k in traits.inplace:
                if k < len(node.inputs) and node.inputs[k] and node.inputs[k] not in outside:
                    buf = joinable(node.inputs[k], outs[0], step, dying=True)
                    if buf is not None:
                        break
        for o in outs:
            b = buf if buf is not None else o
            group[o] = b
            members.setdefault(b, []).append(o)
            buf = None  # only output 0 may share
    for step, (what, b) in sized.extra.items():
        extra.append(Lifetime(f"subgraph:{step}:{what}", b, step, step))

    buffers = [Lifetime(b, max(sized.size[v] for v in vs), min(sized.born[v] for v in vs), last_use(b))
               for b, vs in members.items()]
    buffers += extra
    arena = plan_offsets(buffers, alignment)
    slots = {v: Slot(group[v], types[v].dtype, tuple(int(d) for d in types[v].shape)) for v in group}
    return MemoryPlan(driver, bound, assumed, arena, buffers, {b: tuple(v) for b, v in members.items()}, slots,
                      tuple(views), scratch, tuple(sized.dynamic), graph.param_bytes(), len(work.nodes),
                      sum(sized.size.get(n, 0) for n in work.inputs), dict(sized.dynamic))


def stored_plan(path, driver: str = "cpu") -> MemoryPlan | None:
    """The plan a .claw file holds for `driver`, checked; None when it holds none (or one for another driver)."""
    from ..ir.clawfile import load_model
    d = load_model(path, verify=False)[1]
    return from_stored(d, str(path), driver)


def _version() -> str:
    from .. import __version__
    return __version__


def from_stored(d: dict | None, path: str, driver: str = "cpu") -> MemoryPlan | None:
    """The stored plan `d`, checked; None when it is for another driver or was made by another clawdbot
    version, whose kernels may share memory differently (the session then plans for itself)."""
    if d is None or d.get("driver") != driver or d.get("clawdbot") != _version():
        return None
    return MemoryPlan.from_dict(d, f"{path}: memory plan")


def plan_if_possible(graph: Graph, dims: Mapping[str, int] | None = None, driver: str = "cpu") -> MemoryPlan | None:
    """plan_memory, or None for a graph no plan can be made for (inputs of unknown rank or unnamed dims):
    such a model still runs, its kernels allocating."""
    try:
        return plan_memory(graph, dims, driver=driver)
    except ClawError:
        if dims:
            raise
        return None
