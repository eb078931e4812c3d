"""CPU kernels: affine quantize/dequantize (per tensor, per axis, blocked), dynamic uint8 quantization, and
the integer matmul/conv ops with their requantizing (qlinear) forms.

Integer products run on the float BLAS/conv kernels: operands less their zero points are integers of at most
9 bits, so every product and partial sum is an integer that float32 holds exactly while the reduction length
K stays <= 256 (|sum| <= K * 2**16 <= 2**24), and float64 for any realistic K (< 2**37). The exact result is
then wrapped to int32 as an int32 accumulator would be. Requantization multiplies in float32 like
onnxruntime, rounds half to even and saturates.
"""
from __future__ import annotations

import numpy as np

from ....ir.graph import Node, TensorType
from .conv import conv_factory
from .registry import kernel, kernel_factory


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


# -- integer matmul / conv --------------------------------------------------------------------------------------
def _exact_dtype(k: int) -> np.dtype:
    """The float dtype in which a length-k dot product of 9-bit integers is exact."""
    return np.dtype(np.float32 if k <= 256 else np.float64)


def _row_param(p):
    """A per-tensor or per-row parameter of a [..., M, K] operand, broadcastable against it."""
    if p.size == 1:
        return p.reshape(())
    return p.reshape(-1, 1) if p.ndim == 1 else p


def _col_param(p):
    """A per-tensor or per-column parameter of a [..., K, N] operand (a vector already broadcasts)."""
    return p.reshape(()) if p.size == 1 else p


def _channel_param(p, rank: int):
    """A per-tensor or per-output-channel parameter of a conv output [N, M, *spatial] / weight [M, ...]."""
    return p.reshape(()) if p.size == 1 else p.reshape((-1,) + (1,) * (rank - 1))


def _shifted(q, zero_point, shape_param, dtype):
    """q - zero_point as `dtype` (exact: at most 9-bit integers)."""
    out = q.astype(dtype)
    if zero_point is not None:
        out -= shape_param(zero_point).astype(dtype)
    return out


def _wrap_int32(acc):
    """An exact integer-valued float array as int32, wrapping like an int32 accumulator."""
    return acc.astype(np.int64).astype(np.int32)


def _integer_matmul(a, b, a_zp, b_zp):
    dtype = _exact_dtype(a.shape[-1])
    a = _shifted(a, a_zp, _row_param, dtype)
    b = _shifted(b, b_zp, _col_param, dtype)
    return np.matmul(a, b)


@kernel("matmul_integer")
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    return _wrap_int32(_integer_matmul(a, b, a_zero_point, b_zero_point))


class _IntegerConv:
    """conv(x - x_zp, w - w_zp) with the float conv kernel; the shifted weight is kept while the same weight
    and zero point arrays (constants) come back."""

    def __init__(self, node):
        self._node = node
        self._runs: dict = {}
        self._key = self._w = self._refs = None

    def _run_for(self, dtype):
        run = self._runs.get(dtype)
        if run is None:
            conv = Node("conv", ["x", "w"], ["y"], {k: self._node.attrs[k] for k in
                                                    ("strides", "dilations", "pads", "auto_pad", "group")})
            t = TensorType(dtype.name, None)
            run = self._runs[dtype] = conv_factory(conv, [t, t], [t])
        return run

    def __call__(self, x, w, x_zp, w_zp):
        dtype = _exact_dtype(w[0].size)
        key = (id(w), id(w_zp), dtype)
        if key != self._key:
            self._w = _shifted(w, w_zp, lambda p: _channel_param(p, w.ndim), dtype)
            self._key, self._refs = key, (w, w_zp)  # the references keep the ids from being reused
        return self._run_for(dtype)(_shifted(x, x_zp, lambda p: p.reshape(()), dtype), self._w)


@kernel_factory("conv_integer")
def conv_integer_factory(node, in_types, out_types):
    conv = _IntegerConv(node)

    def run(x, w, x_zero_point=None, w_zero_point=None):
        return _wrap_int32(conv(x, w, x_zero_point, w_zero_point))
    return run


def _requantize(acc, multiplier, zero_point):
    """round_half_even(acc * multiplier) + zero_point, saturated to zero_point's dtype (float32 math)."""
    y = np.rint(acc.astype(np.float32) * multiplier)
    y += zero_point.astype(np.float32)
    info = np.iinfo(zero_point.dtype)
    return np.clip(y, info.min, info.max).astype(zero_point.dtype)


def _f32(s):
    return s.astype(np.float32, copy=False)


@kernel("qlinear_matmul")
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    acc = _wrap_int32(_integer_matmul(a, b, a_zero_point, b_zero_point))
    multiplier = _f32(_row_param(a_scale)) * _f32(_col_param(b_scale)) / _f32(y_scale.reshape(()))
    return _requantize(acc, multiplier, y_zero_point.reshape(()))


@kernel_factory("qlinear_conv")
def qlinear_conv_factory(node, in_types, out_types):
    conv = _IntegerConv(node)

    def run(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, bias=None):
        acc = _wrap_int32(conv(x, w, x_zero_point, w_zero_point))
        if bias is not None:
            acc += _channel_param(bias, acc.ndim - 1)
        multiplier = _f32(x_scale.reshape(())) * _f32(_channel_param(w_scale, acc.ndim - 1)) \
            / _f32(y_scale.reshape(()))
        return _requantize(acc, multiplier, y_zero_point.reshape(()))
    return run
