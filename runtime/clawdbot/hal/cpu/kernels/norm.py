"""CPU kernels: norm family. Statistics are computed in float32 at least (float64 stays float64) and the
result is cast back; per-channel parameters are folded into one multiply-add where possible."""
from __future__ import annotations

import numpy as np

from .conv import compute_dtype
from .registry import kernel, kernel_factory


def _channel_shape(x):
    """Shape that broadcasts a [C] vector over [N, C, ...]."""
    return (1, -1) + (1,) * (x.ndim - 2)


def _centered(x, axes, epsilon):
    """(x - mean, mean, 1 / sqrt(var + epsilon)) over `axes`, statistics kept with size-1 axes."""
    mean = np.mean(x, axis=axes, keepdims=True)
    d = x - mean
    var = np.mean(d * d, axis=axes, keepdims=True)
    return d, mean, 1.0 / np.sqrt(var + epsilon)


@kernel("batch_norm")
def batch_norm(x, scale, bias, mean, var, *, epsilon):
    work = compute_dtype(x.dtype)
    # Fold the four channel vectors into y = x * a + b (two passes over x instead of four).
    a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
    b = bias.astype(np.float64) - mean.astype(np.float64) * a
    y = np.multiply(x, a.astype(work).reshape(_channel_shape(x)), dtype=work)  # the one new array
    y += b.astype(work).reshape(_channel_shape(x))
    return y.astype(x.dtype, copy=False)


@kernel("instance_norm")
def instance_norm(x, scale, bias, *, epsilon):
    work = compute_dtype(x.dtype)
    d, _, inv = _centered(x.astype(work, copy=False), tuple(range(2, x.ndim)), epsilon)
    d *= inv * scale.astype(work).reshape(_channel_shape(x))
    d += bias.astype(work).reshape(_channel_shape(x))
    return d.astype(x.dtype, copy=False)


@kernel("group_norm")
def group_norm(x, scale, bias, *, num_groups, epsilon):
    work = compute_dtype(x.dtype)
    n, c = x.shape[:2]
    grouped = x.astype(work, copy=False).reshape(n, num_groups, -1)
    d, _, inv = _centered(grouped, (2,), epsilon)
    d *= inv
    y = d.reshape(x.shape)

    def per_channel(v):
        # GroupNormalization-18 gives one value per group: each of the group's channels uses it.
        v = v.astype(work, copy=False)
        return np.repeat(v, c // num_groups) if v.shape[0] != c else v
    y *= per_channel(scale).reshape(_channel_shape(x))
    y += per_channel(bias).reshape(_channel_shape(x))
    return y.astype(x.dtype, copy=False)


@kernel_factory("layer_norm")
def layer_norm_factory(node, in_types, out_types):
    axis, epsilon = node.attrs["axis"], node.attrs["epsilon"]
    stash = np.dtype(node.attrs["stash_dtype"])

    def run(x, scale, bias=None):
        work = np.promote_types(compute_dtype(x.dtype), stash)
        axes = tuple(range(axis % x.ndim, x.ndim))
        d, mean, inv = _centered(x.astype(work, copy=False), axes, epsilon)
        d *= inv
        d *= scale.astype(work, copy=False)
        if bias is not None:
            d += bias.astype(work, copy=False)
        return d.astype(x.dtype, copy=False), mean.astype(stash, copy=False), inv.astype(stash, copy=False)
    return run


@kernel("rms_norm")
def rms_norm(x, scale, *, axis, epsilon):
    work = compute_dtype(x.dtype)
    xw = x.astype(work, copy=False)
    axes = tuple(range(axis % x.ndim, x.ndim))
    inv = 1.0 / np.sqrt(np.mean(xw * xw, axis=axes, keepdims=True) + epsilon)
    y = xw * inv
    y *= scale.astype(work, copy=False)
    return y.astype(x.dtype, copy=False)


@kernel("mean_variance_norm")
def mean_variance_norm(x, *, axes, epsilon):
    work = compute_dtype(x.dtype)
    axes = tuple(a % x.ndim for a in axes)
    d, _, inv = _centered(x.astype(work, copy=False), axes, 0.0)
    # ONNX adds epsilon to the standard deviation, not to the variance.
    with np.errstate(divide="ignore"):
        std = 1.0 / inv
    return (d / (std + epsilon)).astype(x.dtype, copy=False)


@kernel("lrn")
def lrn(x, *, size, alpha, beta, bias):
    work = compute_dtype(x.dtype)
    xw = x.astype(work, copy=False)
    sq = xw * xw
    # Channel c sums channels [c - floor((size-1)/2), c + ceil((size-1)/2)]: `size` shifted slices of a
    # zero-padded copy (exact, unlike differences of a cumulative sum).
    before = (size - 1) // 2
    pad = [(0, 0)] * x.ndim
    pad[1] = (before, size - 1 - before)
    sq = np.pad(sq, pad)
    c = x.shape[1]
    total = np.zeros_like(xw)
    for j in range(size):
        total += sq[:, j:j + c]
    denom = bias + (alpha / size) * total
    return (xw / denom ** beta).astype(x.dtype, copy=False)


@kernel("lp_norm")
def lp_norm(x, *, axis, p):
    work = compute_dtype(x.dtype)
    xw = x.astype(work, copy=False)
    norm = np.sum(np.abs(xw), axis=axis, keepdims=True) if p == 1 else np.sqrt(
        np.sum(xw * xw, axis=axis, keepdims=True))
    # A zero vector stays zero instead of becoming NaN.
    out = np.divide(xw, norm, out=np.zeros_like(xw), where=norm != 0)
    return out.astype(x.dtype, copy=False)
