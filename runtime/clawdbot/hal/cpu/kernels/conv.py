"""CPU kernels: conv family, and the window helpers the pool kernels share.

2-D convolution is a GEMM per image: the input is unrolled with im2col (Cython, hal/cpu/fast.py) into
[C*kh*kw, oh*ow] and multiplied by the weight viewed as [M, C*kh*kw] (one batched matmul over the groups).
1x1 stride-1 unpadded convolutions skip im2col (the image already is that matrix); depthwise convolutions
use the dedicated kernel; 1-D runs as 2-D with a unit height. Other ranks (3-D) use the numpy tap loop below,
which unrolls all images at once. float16 computes in float32 (numpy's float16 matmul has no BLAS).

conv_transpose is the adjoint: one GEMM gives every (output channel, kernel tap, input pixel) product, and
col2im adds each tap's slab into the output at its strided offset.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ....ir.ops._shapes import sliding_out, window_pads
from ....ir.ops.conv import transpose_pads, window_params
from ...driver import NO_TRAITS, MemoryTraits
from .registry import kernel_factory, writes_out

try:  # the Cython kernels; absent only in a half-installed tree
    from .. import fast
except ImportError:  # pragma: no cover
    fast = None


# -- window geometry shared with the pool kernels ---------------------------------------------------------

class Window:
    """Resolved geometry of a window sliding over the spatial axes of one input shape."""

    __slots__ = ("kernel", "strides", "dilations", "pads", "out")

    def __init__(self, kernel, strides, dilations, pads, out):
        self.kernel, self.strides, self.dilations = tuple(kernel), tuple(strides), tuple(dilations)
        self.pads, self.out = tuple(pads), tuple(out)

    @property
    def begin(self):
        return self.pads[:len(self.kernel)]

    @property
    def end(self):
        return self.pads[len(self.kernel):]


def resolve_window(spatial, kernel, attrs, ceil_mode: bool = False) -> Window:
    """Explicit pads (auto_pad resolved for this input) and output sizes."""
    strides, dilations, pads = window_params(attrs, len(kernel))
    pads = window_pads(spatial, kernel, strides, dilations, pads, attrs["auto_pad"])
    n = len(kernel)
    out = [sliding_out(sz, k, s, pads[i], pads[n + i], d, ceil_mode)
           for i, (sz, k, s, d) in enumerate(zip(spatial, kernel, strides, dilations))]
    return Window(kernel, strides, dilations, pads, out)


def window_cache(make, limit: int = 32):
    """Memoise `make(*key)`: the geometry is recomputed only when an input shape changes. The cache is
    dropped when it holds `limit` entries, so ever-changing shapes cannot grow it without bound."""
    cache: dict = {}

    def get(*key):
        g = cache.get(key)
        if g is None:
            if len(cache) >= limit:
                cache.clear()
            g = cache[key] = make(*key)
        return g
    return get


class ConvertedWeight:
    """A weight converted to the compute dtype once: constants reach the kernel as the same array on every
    run, so the conversion is redone only when a different array arrives (the reference to the source keeps
    its id from being reused)."""

    def __init__(self):
        self._cache = None  # (source, converted), replaced whole: concurrent runs never see half of it

    def __call__(self, w, dtype):
        if w.dtype == dtype:
            return w
        c = self._cache
        if c is None or c[0] is not w:
            c = self._cache = (w, np.ascontiguousarray(w, dtype=dtype))
        return c[1]


def padded(x, win: Window, fill):
    """x [..., *spatial] copied into a buffer padded by the window's pads, and further at the end where a
    ceil_mode window runs past them (those cells hold `fill` too)."""
    n = len(win.kernel)
    spatial = x.shape[-n:]
    size = [max(b + s + e, (o - 1) * st + (k - 1) * d + 1)
            for b, s, e, o, st, k, d in zip(win.begin, spatial, win.end, win.out, win.strides, win.kernel,
                                           win.dilations)]
    if all(p == 0 for p in win.pads) and list(size) == list(spatial):
        return x
    buf = np.full(x.shape[:-n] + tuple(size), fill, dtype=x.dtype)
    buf[(Ellipsis,) + tuple(slice(b, b + s) for b, s in zip(win.begin, spatial))] = x
    return buf


def taps(buf, win: Window):
    """Yield (tap index, view): view[..., o...] = buf[..., o*stride + tap*dilation] for each kernel tap."""
    for tap in itertools.product(*(range(k) for k in win.kernel)):
        yield tap, buf[(Ellipsis,) + tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                                            for t, d, o, s in zip(tap, win.dilations, win.out, win.strides))]


def compute_dtype(dtype) -> np.dtype:
    """float16 is computed in float32: numpy has no float16 BLAS and its accumulations lose bits."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


# -- conv -------------------------------------------------------------------------------------------------

def _im2col_nd(x, win: Window):
    """x [N, C, *in] -> [N, C * prod(k), prod(out)], rows ordered (c, taps) like the weight's layout."""
    n, c = x.shape[:2]
    buf = padded(x, win, 0)
    cols = np.empty((n, c, math.prod(win.kernel), *win.out), dtype=x.dtype)
    for i, (_, view) in enumerate(taps(buf, win)):
        cols[:, :, i] = view
    return cols.reshape(n, c * math.prod(win.kernel), -1)


def as_2d(win: Window) -> Window:
    """A 1-D window as a 2-D one over a unit height (so 1-D inputs can use the 2-D kernels)."""
    return Window((1, *win.kernel), (1, *win.strides), (1, *win.dilations),
                  (0, win.pads[0], 0, win.pads[1]), (1, *win.out))


def _pointwise(win: Window) -> bool:
    return win.kernel == (1, 1) and win.strides == (1, 1) and not any(win.pads)


# im2col scratch is taken in bands of whole output rows of at most this many bytes (at least one row): the
# unrolled image of a ResNet stem would be 7 MB, as large as the activations themselves, and a band this
# size also stays in cache for its GEMM.
BAND_BYTES = 1 << 20


def _band_rows(c_kk: int, oh: int, ow: int, itemsize: int) -> int:
    return max(1, min(oh, BAND_BYTES // max(1, c_kk * ow * itemsize)))


def _conv2d_gemm(x, w, group, win: Window, out=None, scratch=None):
    """[N, C, H, W] x [M, C/g, kh, kw] -> [N, M, oh, ow]: im2col + batched GEMM per image, in bands of
    output rows when `scratch` (bytes) is given. Into `out` when given."""
    n, c = x.shape[:2]
    m = w.shape[0]
    oh, ow = win.out
    wg = w.reshape(group, m // group, -1)          # free: the weight is contiguous
    y = np.empty((n, m, oh * ow), dtype=x.dtype) if out is None else out.reshape(n, m, oh * ow)
    pointwise = _pointwise(win)
    c_kk = c * math.prod(win.kernel)
    band = oh
    if scratch is not None and fast is not None and not pointwise:
        band = min(oh, scratch.nbytes // max(1, c_kk * ow * x.itemsize))
    for i in range(n):
        if pointwise:
            _gemm(wg, x[i].reshape(c, -1), y[i], group)
        elif fast is None:
            _gemm(wg, _im2col_nd(x[i:i + 1], win)[0], y[i], group)
        elif band >= oh and scratch is None:
            _gemm(wg, fast.im2col(x[i], win.kernel, win.strides, win.dilations, win.pads, win.out), y[i], group)
        else:
            for r0 in range(0, oh, max(band, 1)):
                rows = min(band, oh - r0)
                cols = scratch[:c_kk * rows * ow * x.itemsize].view(x.dtype).reshape(c_kk, rows * ow)
                fast.im2col(x[i], win.kernel, win.strides, win.dilations, win.pads, (rows, ow), out=cols, row0=r0)
                _gemm(wg, cols, y[i][:, r0 * ow:(r0 + rows) * ow], group)
    return y.reshape(n, m, oh, ow)


def _gemm(wg, cols, y, group):
    """y [M, L] = the grouped weight [g, M/g, K] times cols [g*K, L] (y may be a column band of a row)."""
    if group == 1:
        np.matmul(wg[0], cols, out=y)
    else:
        np.matmul(wg, cols.reshape(group, -1, cols.shape[-1]), out=y.reshape(group, wg.shape[1], -1))


def _conv_nd(x, w, group, win: Window):
    """Any rank: unroll all images at once, then one batched GEMM over images and groups."""
    n = x.shape[0]
    m = w.shape[0]
    cols = _im2col_nd(x, win)                                  # [N, C*K, L]
    cols = cols.reshape(n, group, -1, cols.shape[-1])          # [N, g, C/g*K, L]
    y = np.matmul(w.reshape(group, m // group, -1), cols)      # [N, g, M/g, L]
    return y.reshape(n, m, *win.out)


def _is_depthwise(x, w, group) -> bool:
    return _is_depthwise_shape(x.shape, w.shape, group)


def _is_depthwise_shape(xs, ws, group) -> bool:
    return group > 1 and group == xs[1] == ws[0] and ws[1] == 1


def conv_traits(node, in_types, out_types):
    """Scratch for one image's im2col matrix, when the 2-D GEMM path will unroll into it."""
    x, w = in_types[0], in_types[1]
    if (x is None or w is None or not x.is_static or not w.is_static or len(x.shape) != 4
            or x.dtype not in ("float32", "float64") or _is_depthwise_shape(x.shape, w.shape, node.attrs["group"])):
        return NO_TRAITS
    win = resolve_window(x.shape[2:], w.shape[2:], node.attrs)
    if _pointwise(win):
        return NO_TRAITS
    c_kk, itemsize = x.shape[1] * math.prod(win.kernel), np.dtype(x.dtype).itemsize
    rows = _band_rows(c_kk, win.out[0], win.out[1], itemsize)
    return MemoryTraits(scratch_bytes=c_kk * rows * win.out[1] * itemsize)


@kernel_factory("conv", traits=conv_traits)
def conv_factory(node, in_types, out_types):
    attrs = node.attrs
    group = attrs["group"]
    out_dtype = np.dtype(out_types[0].dtype)
    geometry = window_cache(lambda xs, ws: resolve_window(xs[2:], ws[2:], attrs))
    weight = ConvertedWeight()

    def run(x, w, b=None, out=None, scratch=None):
        win = geometry(x.shape, w.shape)
        work = compute_dtype(x.dtype)
        x, w = x.astype(work, copy=False), weight(w, work)
        b = None if b is None else b.astype(work, copy=False)
        rank = len(win.kernel)
        # The arena's `out` is used directly where the result needs no cast; otherwise it is copied in.
        direct = out if out is not None and out.dtype == work and out.flags.c_contiguous else None
        if rank == 2 and fast is not None and _is_depthwise(x, w, group):
            y = fast.depthwise_conv2d(np.ascontiguousarray(x), w, b, win.strides, win.dilations, win.pads,
                                      win.out, out=direct)
            return _result(y, out, out_dtype)
        if rank == 2:
            y = _conv2d_gemm(np.ascontiguousarray(x), np.ascontiguousarray(w), group, win, direct, scratch)
        elif rank == 1:
            y = _conv2d_gemm(np.ascontiguousarray(x[:, :, None, :]), np.ascontiguousarray(w[:, :, None, :]),
                             group, as_2d(win))[:, :, 0, :]
        else:
            y = _conv_nd(x, w, group, win)
        if b is not None:
            y += b.reshape((1, -1) + (1,) * rank)
        return _result(y, out, out_dtype)
    return writes_out(run)


def _result(y, out, dtype):
    """y as the kernel's result: `out` itself when y was computed there, else y cast (and copied into out)."""
    if out is None:
        return y.astype(dtype, copy=False)
    if y is not out and not np.may_share_memory(y, out):
        np.copyto(out, y, casting="unsafe")
    return out


# -- conv_transpose ---------------------------------------------------------------------------------------

def _tap_ranges(tap, win: Window, in_sizes, out_sizes):
    """For one kernel tap, the input slice and the output slice it lands on (None when it misses).

    Input pixel i of axis a lands on output o = i*s + tap*d - pad_begin; only 0 <= o < out is kept.
    """
    src, dst = [], []
    for t, s, d, b, n_in, n_out in zip(tap, win.strides, win.dilations, win.begin, in_sizes, out_sizes):
        shift = t * d - b
        lo = max(0, -(-(-shift) // s))                 # first i with i*s + shift >= 0
        hi = min(n_in - 1, (n_out - 1 - shift) // s)   # last i with i*s + shift < n_out
        if hi < lo:
            return None
        src.append(slice(lo, hi + 1))
        dst.append(slice(lo * s + shift, hi * s + shift + 1, s))
    return tuple(src), tuple(dst)


@kernel_factory("conv_transpose")
def conv_transpose_factory(node, in_types, out_types):
    attrs = node.attrs
    group = attrs["group"]
    out_dtype = np.dtype(out_types[0].dtype)

    def make(xs, ws):
        spatial, kernel = xs[2:], ws[2:]
        strides, dilations, _ = window_params(attrs, len(kernel))
        pads = transpose_pads(spatial, kernel, attrs)
        out_pad = list(attrs["output_padding"]) or [0] * len(kernel)
        n = len(kernel)
        out = [s * (i - 1) + op + (k - 1) * d + 1 - pads[a] - pads[n + a]
               for a, (i, k, s, d, op) in enumerate(zip(spatial, kernel, strides, dilations, out_pad))]
        win = Window(kernel, strides, dilations, pads, out)
        ranges = [_tap_ranges(tap, win, spatial, out) for tap in itertools.product(*(range(k) for k in kernel))]
        return win, ranges
    geometry = window_cache(make)
    weight = ConvertedWeight()

    def run(x, w, b=None):
        win, ranges = geometry(x.shape, w.shape)
        work = compute_dtype(x.dtype)
        x, w = x.astype(work, copy=False), weight(w, work)
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        mg = w.shape[1]
        # cols[n, g, (m, tap), pixel] = sum over the group's input channels of w[c, m, tap] * x[n, c, pixel]
        wg = w.reshape(group, c // group, -1).transpose(0, 2, 1)
        cols = np.matmul(wg, x.reshape(n, group, c // group, -1))
        cols = cols.reshape(n, mg * group, -1, *spatial)
        y = np.zeros((n, mg * group, *win.out), dtype=work)
        for t, r in enumerate(ranges):
            if r is not None:
                src, dst = r
                y[(slice(None), slice(None)) + dst] += cols[(slice(None), slice(None), t) + src]
        if b is not None:
            y += b.astype(work, copy=False).reshape((1, -1) + (1,) * len(spatial))
        return y.astype(out_dtype, copy=False)
    return run
