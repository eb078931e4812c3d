"""CPU kernels: matmul_wq, conv_wq, gather_wq — weight-only quantized compute (ir/ops/wquant.py).

The weight is dequantized a block of rows at a time into the kernel's scratch (planned in the arena) and
multiplied there, so no whole fp32 copy of a weight ever exists and the model's resident weights stay 8 or 4
bits. The arithmetic is fp32 GEMM (BLAS); an integer GEMM is the next step for speed.
"""
from __future__ import annotations

import math

import numpy as np

from ....ir.graph import Node, TensorType
from ...driver import NO_TRAITS, MemoryTraits
from . import conv as convk
from .registry import kernel_factory, writes_out

# Rows of a weight dequantized at once: at most this many bytes of fp32 (at least one row).
BLOCK_BYTES = 256 << 10


def _block_rows(rows: int, cols: int) -> int:
    return max(1, min(rows, BLOCK_BYTES // (4 * cols)))


def _dequant_bytes(rows: int, cols: int, bits: int) -> int:
    """Scratch for one block: the fp32 rows, and for 4-bit one byte per value to unpack the nibbles into."""
    b = _block_rows(rows, cols)
    return b * cols * 4 + (b * (cols + 1) if bits == 4 else 0)


def _buffers(scratch, nbytes_f32: int, rows: int, cols: int, bits: int):
    """(fp32 block [rows, cols], uint8 nibble buffer or None) carved from `scratch` (or new arrays)."""
    if scratch is None or scratch.nbytes < nbytes_f32 + (rows * (cols + 1) if bits == 4 else 0):
        f = np.empty((rows, cols), np.float32)
        u = np.empty((rows, cols + 1), np.uint8) if bits == 4 else None
        return f, u
    f = scratch[:rows * cols * 4].view(np.float32).reshape(rows, cols)
    u = scratch[rows * cols * 4:rows * cols * 4 + rows * (cols + 1)].reshape(rows, cols + 1) if bits == 4 else None
    return f, u


def dequantize_into(q, scale, zp, group: int, r0: int, r1: int, out, nibbles) -> np.ndarray:
    """Rows r0..r1 of a row-quantized matrix into the fp32 array `out` [r1 - r0, cols]."""
    rows, cols = out.shape
    if zp is None:
        np.copyto(out, q[r0:r1], casting="unsafe")
    else:
        packed = q[r0:r1]
        half = packed.shape[1]
        lo, hi = nibbles[:rows, :half], nibbles[:rows, half:2 * half]
        np.bitwise_and(packed, 0x0F, out=lo)
        np.right_shift(packed, 4, out=hi)
        np.copyto(out[:, 0::2], lo[:, :(cols + 1) // 2], casting="unsafe")
        np.copyto(out[:, 1::2], hi[:, :cols // 2], casting="unsafe")
    g = out.reshape(rows, cols // group, group)
    if zp is not None:
        np.subtract(g, zp[r0:r1, :, None], out=g)
    np.multiply(g, scale[r0:r1, :, None], out=g)
    return out


def _group(attrs) -> int:
    return attrs["group_size"] or attrs["cols"]


# -- matmul_wq ------------------------------------------------------------------------------------------------
def _matmul_traits(node, in_types, out_types):
    q = in_types[1]
    if q is None or not q.is_static:
        return NO_TRAITS
    return MemoryTraits(scratch_bytes=_dequant_bytes(q.shape[0], node.attrs["cols"], node.attrs["bits"]))


def _matmul_int8_traits(node, in_types, out_types):
    return NO_TRAITS if node.attrs["activations"] == "int8" else _matmul_traits(node, in_types, out_types)


def quantize_rows_u8(x2, cols_padded: int):
    """Each row of x2 [M, K] to uint8 with its own scale and zero point (the row's range widened to hold 0):
    (q [M, cols_padded], zero-padded past K; scale [M]; zero point [M] as float32)."""
    lo = np.minimum(x2.min(axis=1), 0)
    hi = np.maximum(x2.max(axis=1), 0)
    scale = (hi - lo) / np.float32(255)
    scale[scale == 0] = 1
    zp = np.rint(-lo / scale)
    q = np.zeros((x2.shape[0], cols_padded), np.uint8)
    t = np.rint(x2 / scale[:, None])
    t += zp[:, None]
    np.clip(t, 0, 255, out=t)
    q[:, :x2.shape[1]] = t
    return q, scale, zp


class PackedInt8:
    """A weight packed for the int8 GEMM once (constants reach the kernel as the same array every run), with
    each row's sum for the activations' zero-point correction."""

    def __init__(self):
        self._cache = None  # (source, packed, row sums), replaced whole: concurrent runs never see half of it

    def __call__(self, q):
        c = self._cache
        if c is None or c[0] is not q:
            c = (q, convk.fast.pack_int8_weights(q), q.sum(axis=1, dtype=np.int64).astype(np.float32))
            self._cache = c
        return c[1], c[2]


@kernel_factory("matmul_wq", traits=_matmul_int8_traits)
def matmul_wq_factory(node, in_types, out_types):
    cols, bits, group = node.attrs["cols"], node.attrs["bits"], _group(node.attrs)
    if node.attrs["activations"] == "int8":
        return writes_out(_matmul_dynamic(cols))

    def run(x, q, scale, zp=None, out=None, scratch=None):
        n = q.shape[0]
        x2 = x.reshape(-1, cols)
        y = np.empty((*x.shape[:-1], n), np.float32) if out is None else out
        y2 = y.reshape(-1, n)
        block = _block_rows(n, cols)
        wb, nib = _buffers(scratch, block * cols * 4, block, cols, bits)
        for r0 in range(0, n, block):
            r1 = min(n, r0 + block)
            w = dequantize_into(q, scale, zp, group, r0, r1, wb[:r1 - r0], nib)
            np.matmul(x2, w.T, out=y2[:, r0:r1])
        return y
    return writes_out(run)


def _matmul_dynamic(cols: int):
    """y = sx * sw * (xq @ wq.T - zx * rowsum(wq)), xq per-row uint8, wq int8 per output row, int32 sums."""
    packed = PackedInt8()
    padded = -(-cols // 4) * 4

    def run(x, q, scale, out=None):
        n = q.shape[0]
        x2 = x.reshape(-1, cols)
        xq, sx, zx = quantize_rows_u8(x2, padded)
        wp, rowsum = packed(q)
        acc = convk.fast.int8_gemm(xq, wp, q)
        y = np.empty((*x.shape[:-1], n), np.float32) if out is None else out
        y2 = y.reshape(-1, n)
        np.multiply(zx[:, None], rowsum[None, :], out=y2)
        np.subtract(acc, y2, out=y2)   # exact: |values| < 2**24 for rows of up to ~1000 columns at full range
        y2 *= sx[:, None]
        y2 *= scale[:, 0][None, :]
        return y
    return run


# -- conv_wq --------------------------------------------------------------------------------------------------
def _conv_geometry(node, x_shape):
    attrs = dict(node.attrs)
    return convk.resolve_window(x_shape[2:], attrs["kernel_shape"], attrs)


def _conv_traits(node, in_types, out_types):
    x, q = in_types[0], in_types[1]
    if node.attrs["activations"] == "int8":
        return NO_TRAITS
    if x is None or q is None or not x.is_static or not q.is_static or len(x.shape) != 4:
        return NO_TRAITS
    m, cols, bits = q.shape[0], node.attrs["cols"], node.attrs["bits"]
    if node.attrs["group"] != 1:  # grouped / depthwise: the whole (small) weight at once
        return MemoryTraits(scratch_bytes=m * cols * 4 + (m * (cols + 1) if bits == 4 else 0))
    win = _conv_geometry(node, x.shape)
    unrolled = 0 if convk._pointwise(win) else cols * math.prod(win.out) * 4
    return MemoryTraits(scratch_bytes=unrolled + _dequant_bytes(m, cols, bits))


@kernel_factory("conv_wq", traits=_conv_traits)
def conv_wq_factory(node, in_types, out_types):
    attrs = node.attrs
    cols, bits, group, kernel = attrs["cols"], attrs["bits"], _group(attrs), tuple(attrs["kernel_shape"])
    groups = attrs["group"]
    geometry = convk.window_cache(lambda xs: _conv_geometry(node, xs))
    if attrs["activations"] == "int8":
        return writes_out(_conv_dynamic(cols, geometry))

    def run(x, q, scale, zp=None, b=None, out=None, scratch=None):
        m = q.shape[0]
        n = x.shape[0]
        win = geometry(x.shape)
        y = np.empty((n, m, *win.out), np.float32) if out is None else out
        if groups != 1 or len(kernel) != 2:
            # The whole weight (grouped convs' are small), then the fp32 kernel.
            wf, nib = _buffers(scratch, m * cols * 4, m, cols, bits)
            w = dequantize_into(q, scale, zp, group, 0, m, wf, nib).reshape(m, cols // math.prod(kernel), *kernel)
            return _fp32_conv(x, w, b, y)
        x = np.ascontiguousarray(x)
        pointwise = convk._pointwise(win)
        unrolled = 0 if pointwise else cols * math.prod(win.out) * 4
        ys = y.reshape(n, m, -1)
        block = _block_rows(m, cols)
        if scratch is not None and scratch.nbytes >= unrolled:
            cols_buf = None if pointwise else scratch[:unrolled].view(np.float32).reshape(cols, -1)
            rest = scratch[unrolled:]
        else:
            cols_buf, rest = None, None
        wb, nib = _buffers(rest, block * cols * 4, block, cols, bits)
        for i in range(n):
            if pointwise:
                unrolled_x = x[i].reshape(cols, -1)
            elif convk.fast is not None:
                unrolled_x = convk.fast.im2col(x[i], win.kernel, win.strides, win.dilations, win.pads, win.out,
                                               out=cols_buf)
            else:
                unrolled_x = convk._im2col_nd(x[i:i + 1], win)[0]
            for r0 in range(0, m, block):
                r1 = min(m, r0 + block)
                w = dequantize_into(q, scale, zp, group, r0, r1, wb[:r1 - r0], nib)
                np.matmul(w, unrolled_x, out=ys[i, r0:r1])
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    # Grouped convs run the fp32 conv kernel on the dequantized weight.
    conv_node = Node("conv", [], [], {k: attrs[k] for k in ("strides", "dilations", "pads", "auto_pad", "group")})
    fp32 = convk.conv_factory(conv_node, [None, None], [TensorType("float32", None)])

    def _fp32_conv(x, w, b, y):
        return fp32(x, w, b, out=y)
    return writes_out(run)


class PaddedInt8:
    """A conv weight's int8 rows padded to a multiple of 4 columns once, with each row's sum."""

    def __init__(self, padded_cols: int):
        self._cols, self._cache = padded_cols, None

    def __call__(self, q):
        c = self._cache
        if c is None or c[0] is not q:
            w = np.zeros((q.shape[0], self._cols), np.int8)
            w[:, :q.shape[1]] = q
            c = self._cache = (q, w, q.sum(axis=1, dtype=np.int64).astype(np.float32))
        return c[1], c[2]


def _conv_dynamic(cols: int, geometry):
    """2-D conv, group 1: each image quantized to uint8 (its range widened to hold 0, so padding with the
    zero point is exact), and multiplied by the int8 weight in int32, output channels' rows contiguous:
    y = sx * sw * (acc - zx * rowsum(w))."""
    weights = PaddedInt8(-(-cols // 4) * 4)

    def run(x, q, scale, zp=None, b=None, out=None):
        m, n = q.shape[0], x.shape[0]
        win = geometry(x.shape)
        y = np.empty((n, m, *win.out), np.float32) if out is None else out
        ys = y.reshape(n, m, -1)
        w, rowsum = weights(q)
        for i in range(n):
            xp, sx, zx = _padded_u8(x[i], win)
            acc = convk.fast.int8_conv_gemm(w, xp, win)          # [M, L]
            yi = ys[i]
            np.subtract(acc, (rowsum * zx)[:, None], out=yi)
            yi *= (scale[:, 0] * sx)[:, None]
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y
    return run


def _padded_u8(img, win):
    """One image [C, H, W] quantized to uint8 with its own scale and zero point, padded with the zero point
    so that every window lies inside it."""
    lo, hi = min(float(img.min()), 0.0), max(float(img.max()), 0.0)
    scale = np.float32((hi - lo) / 255 if hi > lo else 1.0)
    zp = np.float32(np.rint(-lo / scale))
    (top, left), (bottom, right) = win.begin, win.end
    c, h, w = img.shape
    # rows/columns a ceil-mode window reads past the declared padding are padding too
    need_h = (win.out[0] - 1) * win.strides[0] + (win.kernel[0] - 1) * win.dilations[0] + 1
    need_w = (win.out[1] - 1) * win.strides[1] + (win.kernel[1] - 1) * win.dilations[1] + 1
    xp = np.full((c, max(top + h + bottom, need_h), max(left + w + right, need_w)), int(zp), np.uint8)
    t = img * (np.float32(1) / scale)
    np.rint(t, out=t)
    t += zp
    np.clip(t, 0, 255, out=t)
    xp[:, top:top + h, left:left + w] = t
    return xp, scale, zp


# -- gather_wq ------------------------------------------------------------------------------------------------
@kernel_factory("gather_wq")
def gather_wq_factory(node, in_types, out_types):
    cols, group = node.attrs["cols"], _group(node.attrs)

    def run(q, scale, zp, indices, out=None):
        v = q.shape[0]
        idx = indices.reshape(-1)
        if idx.size and (idx.max() >= v or idx.min() < -v):
            raise IndexError(f"gather_wq: index out of range for a table of {v} rows")
        idx = np.where(idx < 0, idx + v, idx)
        # Only the gathered rows are dequantized: a token batch touches a few rows of a large table.
        sub_q, sub_s = q[idx], scale[idx]
        sub_zp = None if zp is None else zp[idx]
        y = np.empty((*indices.shape, cols), np.float32) if out is None else out
        nib = None if zp is None else np.empty((idx.size, cols + 1), np.uint8)
        dequantize_into(sub_q, sub_s, sub_zp, group, 0, idx.size, y.reshape(idx.size, cols), nib)
        return y
    return writes_out(run)
