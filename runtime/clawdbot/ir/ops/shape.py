"""claw ops: shape queries (shape, size) and tensors generated from shapes or scalars (constant_of_shape,
range, eye_like).

`shape` and `size` are where symbolic values start: their outputs' symbolic values are the input's dims, so
the integer ops downstream (gather, concat, slice, arithmetic, …) can carry dynamic dims like `batch` through
to a reshape or expand.
"""
from __future__ import annotations

import math

from ..dtypes import DTYPES, INT_TYPES, NUMERIC_TYPES
from ..graph import TensorType
from . import _shapes
from .registry import Attr, InferenceError, register

INT64_MAX = 2**63 - 1
# Generated integer vectors up to this length also get a symbolic value (they feed axes/shape inputs).
_SYM_MAX_LEN = 64


@register("shape", "shape",
          "y = the dims of x as int64, from `start` to `end` (clamped to the rank; negative counts from the end).",
          attrs={"start": Attr(int, 0), "end": Attr(int, INT64_MAX, "exclusive; the default means the rank")})
def _shape(ctx):
    shape = ctx.shape(0)
    if shape is None:
        return [TensorType("int64", (None,))]
    dims = list(shape[slice(ctx.attr("start"), ctx.attr("end"))])
    ctx.set_sym(0, dims)
    return [TensorType("int64", (len(dims),))]


@register("size", "shape", "y = the number of elements of x (int64 scalar).")
def _size(ctx):
    shape = ctx.shape(0)
    if shape is not None:
        ctx.set_sym(0, [_shapes.prod(shape)])
    return [TensorType("int64", ())]


@register("constant_of_shape", "generate",
          "y = a tensor of the shape in input 0 (int64) filled with the one element of input 1, whose dtype it "
          "takes.", inputs=(2, 2))
def _constant_of_shape(ctx):
    value = ctx.type(1)
    if value.shape is not None and _shapes.prod(value.shape) not in (1, None):
        raise InferenceError(f"fill value must have one element, got shape {list(value.shape)}")
    dims = ctx.sym(0)
    if dims is None:
        n = ctx.shape(0)
        rank = n[0] if n is not None and len(n) == 1 and isinstance(n[0], int) else None
        return [TensorType(value.dtype, None if rank is None else (None,) * rank)]
    fill = ctx.value(1)
    if fill is not None and value.dtype in INT_TYPES and len(dims) == 1 and isinstance(dims[0], int) \
            and dims[0] <= _SYM_MAX_LEN:
        ctx.set_sym(0, [int(fill.reshape(-1)[0])] * dims[0])
    return [TensorType(value.dtype, tuple(dims))]


def range_length(start, limit, delta) -> int:
    """ONNX Range's element count, max(ceil((limit - start) / delta), 0), computed in the inputs' dtype."""
    return max(int(math.ceil((limit - start) / delta)), 0)


@register("range", "generate",
          "y = [start, start + delta, …] up to (excluding) limit; three scalar inputs of one numeric dtype.",
          inputs=(3, 3))
def _range(ctx):
    dtype = ctx.dtype(0)
    if dtype not in NUMERIC_TYPES or {ctx.dtype(1), ctx.dtype(2)} != {dtype}:
        raise InferenceError(f"start/limit/delta must share one numeric dtype, got "
                             f"{[ctx.dtype(i) for i in range(3)]}")
    vals = [ctx.value(i) for i in range(3)]
    if any(v is None for v in vals):
        return [TensorType(dtype, (None,))]
    start, limit, delta = (v.reshape(-1)[0] for v in vals)
    if delta == 0:
        raise InferenceError("range delta is 0")
    n = range_length(start, limit, delta)
    if dtype in INT_TYPES and n <= _SYM_MAX_LEN:
        ctx.set_sym(0, [int(start + k * delta) for k in range(n)])
    return [TensorType(dtype, (n,))]


@register("eye_like", "generate",
          "y = a 2-D tensor shaped like x with ones on diagonal k (0: main, >0: above) and zeros elsewhere.",
          attrs={"k": Attr(int, 0), "dtype": Attr(str, "", "output dtype; empty: x's dtype")})
def _eye_like(ctx):
    x = ctx.type(0)
    dtype = ctx.attr("dtype") or x.dtype
    if dtype not in DTYPES:
        raise InferenceError(f"unknown dtype {dtype!r}")
    if x.shape is not None and len(x.shape) != 2:
        raise InferenceError(f"input must be 2-D, got rank {len(x.shape)}")
    return [TensorType(dtype, x.shape if x.shape is not None else (None, None))]

