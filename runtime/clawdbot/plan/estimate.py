"""An estimate of a model's memory need at run time: its weights plus the peak of its live activations, and
the liveness walk (bind dims, infer static types, size every value) that the memory plan (memory.py) is
built on. The model of execution is nodes in the graph's order, a value freed after its last use. What the
estimate leaves out, and why the memory plan differs:

* every value gets its own buffer: a reshape or identity is counted as a copy though kernels may return a
  view, and no in-place reuse is assumed — this errs on the high side;
* kernel scratch (im2col buffers, packed GEMM panels) is not counted — this errs on the low side, and is what
  a caller's `overhead_bytes` is for;
* constants are the weights, counted once: a .claw file memory-maps them, so they are never activations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import ClawError
from ..ir.dtypes import itemsize
from ..ir.graph import Graph, Node, TensorType
from ..ir.infer import infer_node, merge
from ..ir.ops.control import subgraphs
from ..ir.ops.registry import InferenceError


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int             # constants (memory-mapped from the .claw file)
    peak_activation_bytes: int     # max over the schedule of the bytes of simultaneously live non-constant values
    peak_step: int                 # index of the node where the peak occurs
    peak_node: str                 # that node's str()
    dims: dict[str, int]           # every symbolic dim bound, and to what
    assumed: tuple[str, ...]       # symbolic dims that were not given and defaulted to 1 (say so in reports)
    live_at_peak: tuple[tuple[str, int], ...]     # (value name, bytes) live at the peak, largest first
    largest_weights: tuple[tuple[str, int], ...]  # the top-10 constants by size

    def total_bytes(self, overhead_bytes: int = 0) -> int:
        """Weights + peak activations + `overhead_bytes` (the runtime itself, kernel scratch, ...)."""
        return self.weights_bytes + self.peak_activation_bytes + overhead_bytes

    def contributors(self, n: int = 5) -> list[tuple[str, int]]:
        """The `n` biggest items overall — weights and activations live at the peak — largest first, for a
        "does not fit" message. (Only the 10 largest weights are kept, so n > 10 may miss some.)"""
        items = [*self.largest_weights, *self.live_at_peak]
        return sorted(items, key=lambda item: -item[1])[:n]

    def to_dict(self) -> dict:
        """JSON-able, for a build manifest."""
        return {
            "weights_bytes": self.weights_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "total_bytes": self.total_bytes(),
            "peak_step": self.peak_step,
            "peak_node": self.peak_node,
            "dims": dict(self.dims),
            "assumed": list(self.assumed),
            "live_at_peak": [{"name": n, "bytes": b} for n, b in self.live_at_peak],
            "largest_weights": [{"name": n, "bytes": b} for n, b in self.largest_weights],
        }


def estimate_memory(graph: Graph, dims: Mapping[str, int] | None = None) -> MemoryEstimate:
    """Estimate `graph`'s memory need with its inputs' symbolic dims bound from `dims` (a dim not given is
    taken as 1 and listed in `assumed`). The graph is not modified. Raises ClawError, naming the value and the
    node producing it, when a size cannot be known before run time (a data-dependent shape)."""
    dims = dict(dims or {})
    bound, assumed = _bind_dims(graph, dims)
    work = _copy(graph, bound)
    peak, step, live = _profile(work, bound, known={}, skip=frozenset())
    weights = sorted(((n, int(c.nbytes)) for n, c in graph.constants.items()), key=lambda w: (-w[1], w[0]))
    return MemoryEstimate(
        weights_bytes=graph.param_bytes(),
        peak_activation_bytes=peak,
        peak_step=step,
        peak_node=str(work.nodes[step]) if work.nodes else "(no nodes)",
        dims=bound,
        assumed=assumed,
        live_at_peak=tuple(live),
        largest_weights=tuple(weights[:10]),
    )


# -- binding symbolic dims ------------------------------------------------------------------------------------
def _bind_dims(graph: Graph, dims: dict[str, int]) -> tuple[dict[str, int], tuple[str, ...]]:
    """Every named dim of the graph's inputs with its size, and those not in `dims` (taken as 1)."""
    names: list[str] = []
    for name, t in graph.input_types():
        if t.shape is None:
            raise ClawError(f"graph input {name!r} ({t}) has an unknown rank: its size, and the memory the model "
                            f"needs, cannot be estimated")
        for axis, d in enumerate(t.shape):
            if d is None:
                raise ClawError(f"graph input {name!r} ({t}) has an unnamed unknown dim at axis {axis}: only "
                                f"named symbolic dims can be bound to estimate memory")
            if isinstance(d, str) and d not in names:
                names.append(d)
    # A misspelt name would otherwise be ignored and the real dim silently taken as 1.
    unknown = sorted(set(dims) - set(names))
    if unknown:
        raise ClawError(f"dims {unknown} are not symbolic dims of the model's inputs; it has "
                        f"{names if names else 'none'}")
    for d, size in dims.items():
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ClawError(f"dim {d!r} must be bound to a positive integer, got {size!r}")
    return {d: int(dims.get(d, 1)) for d in names}, tuple(d for d in names if d not in dims)


def _bind(t: TensorType, dims: Mapping[str, int]) -> TensorType:
    """`t` with its named dims replaced by their sizes. Named dims are shared across a whole model (subgraphs
    included), so a declared type may be bound as well as an input's."""
    if t.shape is None:
        return t
    return TensorType(t.dtype, tuple(dims.get(d, d) if isinstance(d, str) else d for d in t.shape), t.quant)


def _copy(graph: Graph, dims: Mapping[str, int]) -> Graph:
    """A copy to infer on: its own types and node attributes (subgraphs are rewritten), the same weight arrays."""
    nodes = [Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name) for n in graph.nodes]
    types = {n: _bind(t, dims) for n, t in graph.types.items()}
    return Graph(graph.name, list(graph.inputs), list(graph.outputs), nodes, graph.constants, types,
                 dict(graph.metadata))


# -- sizes and liveness ---------------------------------------------------------------------------------------
def _nbytes(name: str, t: TensorType, origin: str) -> int:
    # Dims may come out of inference as numpy integers; anything else non-integral is unknown until run time.
    if t.shape is None or not all(isinstance(d, (int, np.integer)) for d in t.shape):
        raise ClawError(f"the size of {name!r} ({origin}) is not known before run time: its type is {t} (a "
                        f"data-dependent shape, or a dim inference cannot work out), so its memory cannot be "
                        f"estimated")
    return int(np.prod([int(d) for d in t.shape], dtype=np.int64)) * itemsize(t.dtype)


@dataclass(frozen=True)
class Lifetime:
    """A buffer the schedule needs: `size` bytes from step `first` to step `last`, both included."""
    name: str
    size: int
    first: int
    last: int


def lifetimes(graph: Graph, dims: Mapping[str, int] | None = None) -> list[Lifetime]:
    """Every non-constant value of `graph` (inputs' symbolic dims bound from `dims`, as estimate_memory) with
    its size and the steps it is live, in the CPU executor's order; a subgraph's peak is one buffer living at
    its node's step. The arena planner places these."""
    bound, _ = _bind_dims(graph, dict(dims or {}))
    return _lifetimes(_copy(graph, bound), bound, known={}, skip=frozenset())


def _profile(graph: Graph, dims: Mapping[str, int], known: Mapping[str, np.ndarray],
             skip: frozenset[str]) -> tuple[int, int, list[tuple[str, int]]]:
    """Re-infer `graph`'s types in place (its inputs' types already static) and walk its schedule: returns
    (peak bytes, step of the peak, [(value, bytes) live there, largest first])."""
    spans = _lifetimes(graph, dims, known, skip)
    end = max(len(graph.nodes) - 1, 0)
    # Sweep the steps: +bytes at a value's birth, -bytes the step after its last use.
    delta = [0] * (end + 2)
    for b in spans:
        delta[b.first] += b.size
        delta[b.last + 1] -= b.size
    running, peak, peak_step = 0, -1, 0
    for step in range(end + 1):
        running += delta[step]
        if running > peak:
            peak, peak_step = running, step
    live = [(b.name, b.size) for b in spans if b.first <= peak_step <= b.last]
    live.sort(key=lambda item: -item[1])
    return peak, peak_step, live


def _lifetimes(graph: Graph, dims: Mapping[str, int], known: Mapping[str, np.ndarray],
               skip: frozenset[str]) -> list[Lifetime]:
    """Re-infer `graph`'s types in place (its inputs' types already static) and walk its schedule.

    known: values of inputs known at conversion time (subgraph inputs capturing a constant), for inference.
    skip: inputs that are no new memory — a subgraph's captures are an enclosing value, live at the holding
    node's step anyway, or a weight."""
    sized = infer_sizes(graph, dims, known, skip)
    spans = [Lifetime(name, b, sized.born[name], sized.last[name]) for name, b in sized.size.items()]
    spans += [Lifetime(what, b, step, step) for step, (what, b) in sized.extra.items()]
    return spans


@dataclass
class Sizes:
    """What one walk of a graph with bound dims finds: every value's bytes, birth and last use."""
    size: dict[str, int]               # value -> bytes (graph inputs not skipped, node outputs)
    born: dict[str, int]               # value -> step producing it (0 for graph inputs)
    last: dict[str, int]               # value -> last step reading it (the last step for graph outputs)
    extra: dict[int, tuple[str, int]]  # step -> (what, bytes): the peak of a subgraph that step's node runs
    dynamic: dict[str, str]            # value -> why its size is unknown before run time (strict=False only)


def infer_sizes(graph: Graph, dims: Mapping[str, int], known: Mapping[str, np.ndarray] | None = None,
                skip: frozenset[str] = frozenset(), *, strict: bool = True) -> Sizes:
    """Re-infer `graph`'s types in place (its inputs' types already static, e.g. a copy from `bind_graph`)
    and size every value. strict: a size unknown before run time raises ClawError naming the value; else
    the value is listed in `dynamic` (and left out of the sizes)."""
    values = {**(known or {}), **graph.constants}
    syms: dict = {}
    dynamic: dict[str, str] = {}

    def nbytes(name: str, origin: str) -> int | None:
        try:
            return _nbytes(name, graph.types[name], origin)
        except ClawError as e:
            if strict:
                raise
            dynamic[name] = str(e)
            return None

    for name, c in graph.constants.items():
        graph.types[name] = TensorType.of(c)
    size: dict[str, int] = {}
    for n in graph.inputs:
        if n not in skip and (b := nbytes(n, "a graph input")) is not None:
            size[n] = b
    born = dict.fromkeys(size, 0)
    extra: dict[int, tuple[str, int]] = {}
    for step, node in enumerate(graph.nodes):
        sub = _subgraph_peak(node, graph.types, values, dims)
        if sub is not None:
            extra[step] = sub
        # As infer_graph, keeping a graph output's declared dims where inference knows less.
        for name, t in zip(node.outputs, infer_node(node, graph.types, values, syms)):
            if name:
                graph.types[name] = merge(graph.types.get(name) if name in graph.outputs else None, t)
                if (b := nbytes(name, f"produced by {node}")) is not None:
                    size[name] = b
                    born[name] = step

    # A value lives from its birth to its last use, both included: a node reads its inputs while it writes its
    # outputs. Graph outputs live to the end. Constants and skipped inputs are not in `size`, so never counted.
    last = dict(born)
    for step, node in enumerate(graph.nodes):
        for name in node.inputs:
            if name in size:
                last[name] = step
    end = max(len(graph.nodes) - 1, 0)
    for name in graph.outputs:
        if name in size:
            last[name] = end
    return Sizes(size, born, last, extra, dynamic)


def bind_graph(graph: Graph, dims: Mapping[str, int] | None = None) -> tuple[Graph, dict[str, int], tuple[str, ...]]:
    """A copy of `graph` with its inputs' symbolic dims bound (a dim not in `dims` is 1 and listed as assumed),
    ready for `infer_sizes`: (copy, every dim's size, the assumed dims)."""
    bound, assumed = _bind_dims(graph, dict(dims or {}))
    return _copy(graph, bound), bound, assumed


def _subgraph_peak(node: Node, types: dict[str, TensorType], values: Mapping[str, np.ndarray],
                   dims: Mapping[str, int]) -> tuple[str, int] | None:
    """The peak of the subgraph(s) `node` runs, estimated with the types its inputs have here, as one extra
    live item of the node's step; None for a node without subgraphs. Rewrites the node's subgraph attributes
    with the static types found, so the node's own inference derives static outputs from them."""
    try:
        found = subgraphs(node)
    except InferenceError as e:
        raise ClawError(f"{node}: {e}") from None
    best: tuple[str, int] | None = None
    for attr, sub, captures in found:
        sub.types = {n: _bind(t, dims) for n, t in sub.types.items()}
        for j, name in enumerate(sub.inputs):
            sub.types[name] = _formal_type(node, j, sub.types[name], types)
        known = {inner: values[outer] for inner, outer in captures.items() if outer in values}
        try:
            peak, _, _ = _profile(sub, dims, known, frozenset(captures))
        except ClawError as e:
            raise ClawError(f"{node}: subgraph {attr!r}: {e}") from None
        node.attrs[attr] = sub.to_dict()
        # An if runs one of its branches, so the larger one counts; loop and scan have a single body, whose
        # values of one iteration are freed before the next.
        if best is None or peak > best[1]:
            best = (f"peak inside subgraph {attr!r} of {node}", peak)
    return best


def _formal_type(node: Node, j: int, declared: TensorType, types: Mapping[str, TensorType]) -> TensorType:
    """The type subgraph input `j` of `node` has when the node runs (see ir/ops/control.py for the layouts)."""
    if node.op == "loop" and j < 2:
        return TensorType(declared.dtype, ())  # the iteration number and cond: scalars made by the kernel
    k = j + 1 if node.op == "if" else j        # an if's branches take no cond input
    outer = node.inputs[k] if k < len(node.inputs) else ""
    if not outer:
        return declared
    t = types[outer]
    if node.op == "scan" and t.shape:
        n, m = node.attrs["num_states"], node.attrs["num_scan_inputs"]
        if n <= j < n + m:  # the body sees one slice of a scan input: its type less the scanned axis
            axis = node.attrs["scan_input_axes"][j - n] % len(t.shape)
            t = TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1:], t.quant)
    return t
