"""Shape arithmetic shared by the op families' inference functions. Dims are int, str (symbolic) or None."""
from __future__ import annotations

from typing import Sequence

from ..graph import Dim
from .registry import InferenceError


def broadcast(*shapes: Sequence[Dim] | None) -> tuple[Dim, ...] | None:
    """Numpy-style broadcast of shapes; symbolic dims broadcast with 1 and with themselves."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in dims if d != 1}
        if not known:
            out.append(1)
        elif len(known) == 1:
            out.append(known.pop())
        else:
            ints = {d for d in known if isinstance(d, int)}
            if len(ints) > 1:
                raise InferenceError(f"shapes {[list(s) for s in shapes]} do not broadcast (axis {i})")
            # A symbolic/unknown dim against a concrete one: the concrete one wins at run time or fails.
            out.append(ints.pop() if ints else None)
    return tuple(out)


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise InferenceError(f"{what} {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    if a == 1:
        return b
    if b == 1:
        return a
    return None


def prod(dims: Sequence[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0:
        return b
    if b == 0:
        return a
    return None


def sliding_out(size: Dim, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1,
                ceil_mode: bool = False) -> Dim:
    """Output length of a convolution/pooling window along one axis (ONNX/PyTorch rules)."""
    if not isinstance(size, int):
        return None
    eff = (kernel - 1) * dilation + 1
    span = size + pad_begin + pad_end - eff
    if span < 0:
        raise InferenceError(f"window {eff} larger than padded input {size + pad_begin + pad_end}")
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # With ceil_mode the last window must still start inside the input or its left padding.
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out
