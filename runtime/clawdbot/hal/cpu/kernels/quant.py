"""CPU kernels: affine quantize/dequantize (per tensor, per axis, blocked) and dynamic uint8 quantization."""
from __future__ import annotations

import numpy as np

from .registry import kernel


def _compute_dtype(*dtypes) -> np.dtype:
    """float64 when any operand needs it (float64, or int32 which float32 cannot hold exactly), else float32."""
    wide = any(np.dtype(d) in (np.float64, np.int32) for d in dtypes)
    return np.dtype(np.float64 if wide else np.float32)


def _along(param, x_shape, axis: int, block_size: int):
    """Broadcast a scale/zero point to x's shape (per tensor, per axis or blocked)."""
    if param.size == 1 and block_size <= 0:
        return param.reshape(())
    axis %= len(x_shape)
    if block_size > 0:
        # Each scale entry covers block_size consecutive elements along axis (the last block may be short).
        return np.repeat(param, block_size, axis=axis).take(np.arange(x_shape[axis]), axis=axis)
    return param.reshape((-1,) + (1,) * (len(x_shape) - axis - 1))


@kernel("quantize_linear")
def quantize_linear(x, scale, zero_point=None, axis=1, block_size=0, dtype="uint8"):
    ct = _compute_dtype(x.dtype, scale.dtype)
    s = _along(scale, x.shape, axis, block_size).astype(ct)
    q = np.rint(x.astype(ct) / s)  # round half to even, as ONNX specifies
    if zero_point is not None:
        q += _along(zero_point, x.shape, axis, block_size)
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


@kernel("dequantize_linear")
def dequantize_linear(x, scale, zero_point=None, axis=1, block_size=0, dtype="float32"):
    ct = _compute_dtype(dtype)
    q = x.astype(np.int64)  # int64 so that q - zero_point cannot wrap around
    if zero_point is not None:
        q = q - _along(zero_point, x.shape, axis, block_size).astype(np.int64)
    y = q.astype(ct) * _along(scale, x.shape, axis, block_size).astype(ct)
    return y.astype(dtype, copy=False)


@kernel("dynamic_quantize_linear")
def dynamic_quantize_linear(x):
    # The range always includes 0 so that 0.0 is exactly representable (ONNX's definition).
    lo = min(float(x.min()) if x.size else 0.0, 0.0)
    hi = max(float(x.max()) if x.size else 0.0, 0.0)
    # An all-zero input has an empty range; scale 1 (onnxruntime's choice) keeps q = zero point = 0.
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    zp = np.clip(np.rint(np.float32(-lo) / scale), 0, 255)
    q = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return q, np.asarray(scale, np.float32), np.asarray(zp, np.uint8)
