"""The static arena plan: one offset inside one buffer for every intermediate tensor, so that two tensors
live at the same step never share a byte.

Placement is greedy with best fit: buffers are taken largest first (ties: longest-lived, then earliest),
and each goes into the smallest gap, among the buffers already placed whose lifetimes overlap its own, that
holds it; with no such gap it goes after the highest of them. Large tensors placed first shape the arena and
the small ones fill their gaps, which is why the result stays close to the lower bound: the most bytes live
at any one step, which no plan can go below. The greedy is not optimal, so a few other orders (ORDERS) and
first fit are tried as well and the smallest arena is kept; it costs milliseconds at conversion time.

plan/memory.py decides what the buffers are (in-place results and views share one; kernel scratch is a
buffer of its own) and calls plan_offsets; plan_arena is the activations-only plan of estimate.py's values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import ClawError
from ..ir.graph import Graph
from .estimate import Lifetime, lifetimes

ALIGNMENT = 64  # a cache line, and what SIMD loads of any width want


@dataclass(frozen=True)
class ArenaPlan:
    offsets: dict[str, int]   # buffer name -> byte offset in the arena, a multiple of `alignment`
    sizes: dict[str, int]     # buffer name -> bytes
    arena_bytes: int          # the arena's size: the end of the highest buffer
    lower_bound: int          # max over steps of the bytes live at that step
    alignment: int

    @property
    def efficiency(self) -> float:
        """arena bytes / lower bound: 1.0 is a perfect plan."""
        return self.arena_bytes / self.lower_bound if self.lower_bound else 1.0

    def to_dict(self) -> dict:
        return {"arena_bytes": self.arena_bytes, "lower_bound_bytes": self.lower_bound,
                "efficiency": round(self.efficiency, 4), "alignment": self.alignment,
                "buffers": len(self.offsets)}


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def lower_bound(buffers: Sequence[Lifetime]) -> int:
    """The most bytes live at one step."""
    if not buffers:
        return 0
    end = max(b.last for b in buffers)
    delta = [0] * (end + 2)
    for b in buffers:
        delta[b.first] += b.size
        delta[b.last + 1] -= b.size
    running = peak = 0
    for d in delta:
        running += d
        peak = max(peak, running)
    return peak


def plan_offsets(buffers: Sequence[Lifetime], alignment: int = ALIGNMENT) -> ArenaPlan:
    """Offsets for `buffers` (names unique, first <= last) such that buffers whose lifetimes overlap do not
    overlap in the arena."""
    if alignment < 1 or alignment & (alignment - 1):
        raise ClawError(f"arena alignment must be a power of two, not {alignment}")
    seen: set[str] = set()
    for b in buffers:
        if b.name in seen:
            raise ClawError(f"arena plan: buffer {b.name!r} is listed twice")
        if b.size < 0 or b.first > b.last:
            raise ClawError(f"arena plan: buffer {b.name!r} has size {b.size} and steps {b.first}..{b.last}")
        seen.add(b.name)
    offsets = min((_place(sorted(buffers, key=key), alignment, fit) for key in ORDERS.values()
                   for fit in ("best", "first")), key=lambda o: _extent(o, buffers))
    arena = max((offsets[b.name] + b.size for b in buffers), default=0)
    return ArenaPlan(offsets, {b.name: b.size for b in buffers}, _align(arena, alignment),
                     lower_bound(buffers), alignment)


# The orders the greedy placement is tried in; the smallest arena wins. Largest first is TFLM's and usually
# best; on ResNet-style graphs, where one-step im2col scratch is as large as the long-lived block inputs,
# placing the longest-lived or earliest buffers first avoids stacking a block's tensors on top of scratch.
ORDERS = {
    "size": lambda b: (-b.size, -(b.last - b.first), b.first, b.name),
    "area": lambda b: (-b.size * (b.last - b.first + 1), b.first, b.name),
    "lifetime": lambda b: (-(b.last - b.first), -b.size, b.first, b.name),
    "first use": lambda b: (b.first, -b.size, b.name),
}


def _extent(offsets: dict[str, int], buffers: Sequence[Lifetime]) -> int:
    return max((offsets[b.name] + b.size for b in buffers), default=0)


def _place(order: Sequence[Lifetime], alignment: int, fit: str) -> dict[str, int]:
    """Each buffer, in `order`, into the smallest ("best") or lowest ("first") gap among the placed buffers
    whose lifetimes overlap its own that holds it, else on top of them."""
    placed: list[tuple[Lifetime, int]] = []
    offsets: dict[str, int] = {}
    for b in order:
        need = _align(b.size, alignment)
        taken = sorted((off, off + _align(p.size, alignment)) for p, off in placed
                       if p.first <= b.last and b.first <= p.last)
        best, best_gap, top = None, None, 0
        for start, end in taken:
            gap = start - top
            if gap >= need and (best_gap is None or gap < best_gap):
                best, best_gap = top, gap
                if fit == "first":
                    break
            top = max(top, end)
        offset = best if best is not None else top
        offsets[b.name] = offset
        placed.append((b, offset))
    return offsets


def plan_arena(graph: Graph, dims: Mapping[str, int] | None = None, alignment: int = ALIGNMENT) -> ArenaPlan:
    """The arena plan of `graph` with its inputs' symbolic dims bound from `dims` (a dim not given is 1)."""
    return plan_offsets(lifetimes(graph, dims), alignment)
