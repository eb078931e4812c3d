"""CPU kernels: norm family. Statistics are computed in float32 at least (float64 stays float64) and the
result is cast back; per-channel parameters are folded into one multiply-add where possible."""
from __future__ import annotations

import numpy as np

from .conv import compute_dtype
from ...driver import NO_TRAITS, MemoryTraits
from .registry import kernel, kernel_factory, writes_out


def _channel_shape(x):
    """Shape that broadcasts a [C] vector over [N, C, ...]."""
    return (1, -1) + (1,) * (x.ndim - 2)


def _centered(x, axes, epsilon):
    """(x - mean, mean, 1 / sqrt(var + epsilon)) over `axes`, statistics kept with size-1 axes."""
    mean = np.mean(x, axis=axes, keepdims=True)
    d = x - mean
    var = np.mean(d * d, axis=axes, keepdims=True)
    return d, mean, 1.0 / np.sqrt(var + epsilon)


@kernel_factory("batch_norm", traits=MemoryTraits(inplace=(0,)))
def batch_norm_factory(node, in_types, out_types):
    epsilon = node.attrs["epsilon"]
    folded: list = [None, None]  # (the four vectors it was made from, (a, b)): weights arrive unchanged

    def fold(scale, bias, mean, var, work):
        # Fold the four channel vectors into y = x * a + b (two passes over x instead of four), once.
        key = (scale, bias, mean, var, work)
        if folded[0] is None or any(p is not q for p, q in zip(folded[0], key)):
            a = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
            b = bias.astype(np.float64) - mean.astype(np.float64) * a
            folded[:] = [key, (a.astype(work), b.astype(work))]
        return folded[1]

    def run(x, scale, bias, mean, var, out=None):
        work = compute_dtype(x.dtype)
        a, b = fold(scale, bias, mean, var, work)
        shape = _channel_shape(x)
        if out is not None and x.dtype == work:
            np.multiply(x, a.reshape(shape), out=out)
            out += b.reshape(shape)
            return out
        y = np.multiply(x, a.reshape(shape), dtype=work)  # the one new array
        y += b.reshape(shape)
        y = y.astype(x.dtype, copy=False)
        if out is None:
            return y
        np.copyto(out, y)
        return out
    return writes_out(run)


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


def _layer_norm_traits(node, in_types, out_types):
    """Scratch for the mean and variance rows (work dtype) when the output is computed in place."""
    t = in_types[0]
    if t is None or not t.is_static or t.dtype not in ("float32", "float64") or not t.shape:
        return NO_TRAITS
    rows = int(np.prod(t.shape[:node.attrs["axis"] % len(t.shape)], dtype=np.int64))
    return MemoryTraits(inplace=(0,), scratch_bytes=2 * rows * np.dtype(t.dtype).itemsize)


@kernel_factory("layer_norm", traits=_layer_norm_traits)
def layer_norm_factory(node, in_types, out_types):
    axis, epsilon = node.attrs["axis"], node.attrs["epsilon"]
    stash = np.dtype(node.attrs["stash_dtype"])

    def run(x, scale, bias=None, out=None, scratch=None):
        work = np.promote_types(compute_dtype(x.dtype), stash)
        axes = tuple(range(axis % x.ndim, x.ndim))
        if out is not None and x.dtype == work and x.ndim:
            return _layer_norm_into(x, scale, bias, axis % x.ndim, epsilon, out, scratch, stash)
        d, mean, inv = _centered(x.astype(work, copy=False), axes, epsilon)
        d *= inv
        d *= scale.astype(work, copy=False)
        if bias is not None:
            d += bias.astype(work, copy=False)
        y = d.astype(x.dtype, copy=False)
        if out is not None:
            np.copyto(out, y)
            y = out
        return y, mean.astype(stash, copy=False), inv.astype(stash, copy=False)
    return writes_out(run)


def _layer_norm_into(x, scale, bias, axis, epsilon, out, scratch, stash):
    """Layer norm written into `out` (which may be x) with the statistics in `scratch`: rows x cols views,
    a row mean, x - mean in out, the variance as a row-wise dot product (no squared copy)."""
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    cols = x.size // rows if rows else 0
    kept = x.shape[:axis] + (1,) * (x.ndim - axis)
    if scratch is not None and scratch.nbytes >= 2 * rows * x.itemsize:
        stats = scratch[:2 * rows * x.itemsize].view(x.dtype).reshape(2, rows)
    else:
        stats = np.empty((2, rows), dtype=x.dtype)
    mean, var = stats[0], stats[1]
    x2, y2 = x.reshape(rows, cols), out.reshape(rows, cols)
    np.mean(x2, axis=1, out=mean)
    np.subtract(x2, mean[:, None], out=y2)
    np.einsum("ij,ij->i", y2, y2, out=var)
    var /= x.dtype.type(cols)
    var += x.dtype.type(epsilon)
    np.sqrt(var, out=var)
    np.reciprocal(var, out=var)  # now 1 / sqrt(var + epsilon)
    y2 *= var[:, None]
    out *= scale
    if bias is not None:
        out += bias
    return out, mean.reshape(kept).astype(stash, copy=False), var.reshape(kept).astype(stash, copy=False)


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
