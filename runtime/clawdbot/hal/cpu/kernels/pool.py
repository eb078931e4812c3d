"""CPU kernels: pool family.

2-D max/avg pooling run the Cython kernels in hal/cpu/fast.py (1-D runs as 2-D with a unit height). Other
ranks, dilated average pooling, lp pooling and max pooling with indices visit the kernel taps, each one
strided view of a padded copy of the input, reducing as they go (conv.py's window helpers).
"""
from __future__ import annotations

import numpy as np

from .._numpy_kernels import lowest
from .conv import Window, as_2d, compute_dtype, fast, padded, resolve_window, taps, window_cache
from .registry import kernel, kernel_factory, writes_out


def _fast_2d(win: Window):
    """The 2-D view of a 1-D/2-D window for the Cython kernels, or None when they do not apply."""
    if fast is None or len(win.kernel) > 2:
        return None
    return win if len(win.kernel) == 2 else as_2d(win)


def _geometry(attrs):
    return window_cache(lambda xs: resolve_window(xs[2:], attrs["kernel_shape"], attrs, attrs["ceil_mode"]))


# -- max --------------------------------------------------------------------------------------------------

def _flat_index(spatial_idx, x_shape, column_major: bool):
    """Flattened input index of (n, c, spatial...) positions; spatial_idx are per-axis index arrays that
    broadcast against [N, C, *out]."""
    n, c = x_shape[:2]
    spatial = x_shape[2:]
    flat = np.zeros((), dtype=np.int64)
    order = range(len(spatial) - 1, -1, -1) if column_major else range(len(spatial))
    for a in order:
        flat = flat * spatial[a] + spatial_idx[a]
    plane = int(np.prod(spatial, dtype=np.int64))
    nc = np.arange(n * c, dtype=np.int64).reshape((n, c) + (1,) * len(spatial))
    return nc * plane + flat


def _max_pool_with_indices(x, win: Window, column_major: bool):
    buf = padded(x, win, lowest(x.dtype))
    best = None
    best_tap = np.zeros(x.shape[:2] + win.out, dtype=np.int64)
    tap_list = []
    for t, (tap, view) in enumerate(taps(buf, win)):
        tap_list.append(tap)
        if best is None:
            best = view.copy()
            continue
        better = view > best          # strict: the first maximum in scan order wins, like ONNX/onnxruntime
        np.copyto(best, view, where=better)
        best_tap[better] = t
    # Input coordinate of the winning tap along each axis: o*stride + tap*dilation - pad_begin.
    taps_arr = np.array(tap_list, dtype=np.int64).reshape(len(tap_list), -1)
    coords = []
    for a, (s, d, b) in enumerate(zip(win.strides, win.dilations, win.begin)):
        shape = [1] * len(win.out)
        shape[a] = win.out[a]
        o = np.arange(win.out[a], dtype=np.int64).reshape(shape)
        coords.append(o * s + taps_arr[best_tap, a] * d - b)
    return best, _flat_index(coords, x.shape, column_major)


@kernel_factory("max_pool")
def max_pool_factory(node, in_types, out_types):
    attrs = node.attrs
    geometry = _geometry(attrs)
    want_indices = len(node.outputs) > 1 and bool(node.outputs[1])
    column_major = attrs["storage_order"] == 1

    def run(x, out=None):
        win = geometry(x.shape)
        if want_indices:
            y, idx = _max_pool_with_indices(x, win, column_major)
            return _into(y, out), idx
        w2 = _fast_2d(win)
        if w2 is not None:
            x4 = x.reshape(x.shape[:2] + (1,) * (4 - x.ndim) + x.shape[2:])
            direct = out if out is not None and x.ndim == 4 and out.dtype == x.dtype else None
            y = fast.max_pool2d(np.ascontiguousarray(x4), w2.kernel, w2.strides, w2.dilations, w2.pads, w2.out,
                                out=direct)
            return _into(y.reshape(x.shape[:2] + win.out), out), None
        buf = padded(x, win, lowest(x.dtype))
        y = None
        for _, view in taps(buf, win):
            y = view.copy() if y is None else np.maximum(y, view, out=y)
        return _into(y, out), None
    return writes_out(run)


def _into(y, out):
    """y, copied into the arena's `out` unless it was computed there."""
    if out is None or y is out:
        return y
    if not np.may_share_memory(y, out):
        np.copyto(out, y)
    return out


# -- average and lp ---------------------------------------------------------------------------------------

def _divisor(spatial, win: Window, include_pad: bool, dtype):
    """How many window cells count at each output position: those inside the input, or inside the declared
    padding with include_pad (a ceil_mode window's overrun past the padding never counts)."""
    mask = np.ones(spatial, dtype=dtype)
    if include_pad:
        # The declared padding becomes part of the counted area; only the overrun remains padding.
        mask = np.pad(mask, [(b, e) for b, e in zip(win.begin, win.end)], constant_values=1)
        win = Window(win.kernel, win.strides, win.dilations, (0,) * len(win.pads), win.out)
    count = np.zeros(win.out, dtype=dtype)
    for _, view in taps(padded(mask, win, 0), win):
        count += view
    return count


@kernel_factory("avg_pool")
def avg_pool_factory(node, in_types, out_types):
    attrs = node.attrs
    include_pad = attrs["count_include_pad"]
    out_dtype = np.dtype(out_types[0].dtype)
    geometry = _geometry(attrs)
    divisor = window_cache(lambda xs, dt: _divisor(xs[2:], geometry(xs), include_pad, dt))

    def run(x):
        win = geometry(x.shape)
        w2 = _fast_2d(win)
        if w2 is not None and set(win.dilations) == {1}:
            x4 = x.reshape(x.shape[:2] + (1,) * (4 - x.ndim) + x.shape[2:])
            y = fast.avg_pool2d(np.ascontiguousarray(x4), w2.kernel, w2.strides, w2.pads, w2.out, include_pad)
            return y.reshape(x.shape[:2] + win.out).astype(out_dtype, copy=False)
        work = compute_dtype(x.dtype)
        buf = padded(x.astype(work, copy=False), win, 0)
        total = np.zeros(x.shape[:2] + win.out, dtype=work)
        for _, view in taps(buf, win):
            total += view
        total /= divisor(x.shape, work)
        return total.astype(out_dtype, copy=False)
    return run


def _pow_abs(x, p):
    return np.abs(x) if p == 1 else (x * x if p == 2 else np.abs(x) ** p)


def _root(s, p):
    return s if p == 1 else (np.sqrt(s) if p == 2 else s ** (1.0 / p))


@kernel_factory("lp_pool")
def lp_pool_factory(node, in_types, out_types):
    attrs = node.attrs
    p = attrs["p"]
    out_dtype = np.dtype(out_types[0].dtype)
    geometry = _geometry(attrs)

    def run(x):
        win = geometry(x.shape)
        work = compute_dtype(x.dtype)
        buf = padded(_pow_abs(x.astype(work, copy=False), p), win, 0)
        total = np.zeros(x.shape[:2] + win.out, dtype=work)
        for _, view in taps(buf, win):
            total += view
        return _root(total, p).astype(out_dtype, copy=False)
    return run


# -- global -----------------------------------------------------------------------------------------------

def _spatial_axes(x):
    return tuple(range(2, x.ndim))


@kernel("global_avg_pool", out=True)
def global_avg_pool(x, out=None):
    work = compute_dtype(x.dtype)
    if out is not None and work == x.dtype:
        return np.mean(x, axis=_spatial_axes(x), keepdims=True, out=out)
    y = np.mean(x, axis=_spatial_axes(x), keepdims=True, dtype=work).astype(x.dtype, copy=False)
    if out is None:
        return y
    np.copyto(out, y)
    return out


@kernel("global_max_pool")
def global_max_pool(x):
    return np.max(x, axis=_spatial_axes(x), keepdims=True)


@kernel("global_lp_pool")
def global_lp_pool(x, *, p):
    work = compute_dtype(x.dtype)
    s = np.sum(_pow_abs(x.astype(work, copy=False), p), axis=_spatial_axes(x), keepdims=True)
    return _root(s, p).astype(x.dtype, copy=False)
