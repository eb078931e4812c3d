"""CPU kernels: shape queries and generated tensors (shape, size, constant_of_shape, range, eye_like)."""
from __future__ import annotations

import numpy as np

from ....ir.ops.shape import range_length
from .registry import kernel


@kernel("shape")
def shape(x, start=0, end=None):
    # Python slicing clamps start/end to the rank exactly as ONNX Shape-15 does.
    return np.array(x.shape[start:end], dtype=np.int64)


@kernel("size")
def size(x):
    return np.array(x.size, dtype=np.int64)


@kernel("constant_of_shape")
def constant_of_shape(shape, value):
    return np.full([int(d) for d in shape.reshape(-1)], value.reshape(-1)[0], dtype=value.dtype)


@kernel("range")
def range_(start, limit, delta):
    start, limit, delta = start.reshape(-1)[0], limit.reshape(-1)[0], delta.reshape(-1)[0]
    n = range_length(start, limit, delta)
    # start + k*delta (not repeated addition), the formula ONNX specifies, in the inputs' dtype.
    return (start + np.arange(n, dtype=start.dtype) * delta).astype(start.dtype, copy=False)


@kernel("eye_like")
def eye_like(x, k=0, dtype=""):
    return np.eye(x.shape[0], x.shape[1], k, dtype=dtype or x.dtype)
