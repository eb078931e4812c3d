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


def known_ints(ctx, i: int) -> list[int] | None:
    """Input i's entries (flattened) as Python ints when it is present and fully known at conversion time."""
    if not ctx.has_input(i):
        return None
    v = ctx.value(i)
    if v is None:
        return None
    return [int(x) for x in v.reshape(-1)]


def clamp_slice(dim: int, start: int, end: int, step: int) -> int:
    """Length of x[start:end:step] along an axis of length `dim` (ONNX clamps bounds like Python does)."""
    return len(range(*slice(start, end, step).indices(dim)))


def auto_pad(size: Dim, kernel: int, stride: int, dilation: int, mode: str) -> tuple[int, int] | None:
    """(begin, end) padding of one axis for ONNX auto_pad SAME_UPPER / SAME_LOWER / VALID.

    SAME keeps ceil(size / stride) outputs; the odd pixel of padding goes to the end (UPPER) or the
    beginning (LOWER). None when `size` is not a known int.
    """
    if mode == "VALID":
        return 0, 0
    if not isinstance(size, int):
        return None
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small, large = total // 2, total - total // 2
    return (small, large) if mode == "SAME_UPPER" else (large, small)


def window_pads(sizes: Sequence[Dim], kernel: Sequence[int], strides: Sequence[int],
                dilations: Sequence[int], pads: Sequence[int], mode: str) -> list[int] | None:
    """Explicit pads (begin..., end...) of a conv/pool window; `pads` when mode is NOTSET, None when
    auto padding needs a spatial size that is not known."""
    if mode in ("NOTSET", ""):
        return list(pads)
    per_axis = [auto_pad(n, k, s, d, mode) for n, k, s, d in zip(sizes, kernel, strides, dilations)]
    if any(p is None for p in per_axis):
        return None
    return [p[0] for p in per_axis] + [p[1] for p in per_axis]
