"""Pure-numpy versions of the CPU driver's compiled kernels.

clawdbot.hal.cpu.fast dispatches here when the Cython extensions are missing
(no compiler on the board, CLAWDBOT_PURE_PYTHON=1) or when the input is not a
float32/float64 C-contiguous array. The functions take the same arguments as
the public ones in fast.py, which has already normalised and validated them:
kernel/stride/dilation are (h, w) pairs of ints >= 1, pads is
(top, left, bottom, right) of ints >= 0 and out_hw is (oh, ow).

They share one strategy: copy the input into a buffer padded far enough for
every output window (the declared pads, plus whatever a ceil_mode window runs
past them), then visit the kh*kw kernel taps, each of which is one strided
slice of that buffer with shape [..., oh, ow]. That keeps memory at one
padded copy (a sliding_window_view reduction would materialise kh*kw copies
for the sum) and each tap is a single vectorised numpy operation.
"""

import numpy as np

__all__ = ["im2col", "max_pool2d", "avg_pool2d", "depthwise_conv2d"]


def _padded(x, kernel, stride, dilation, pads, out_hw, fill):
    """x [..., H, W] in a buffer whose (0, 0) is input (-top, -left)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    top, left, bottom, right = pads
    oh, ow = out_hw
    h, w = x.shape[-2:]
    # Rows/columns the last window reaches, measured from the buffer origin.
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1 if oh > 0 else 0
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1 if ow > 0 else 0
    buf_h = max(top + h + bottom, need_h)
    buf_w = max(left + w + right, need_w)
    buf = np.full(x.shape[:-2] + (buf_h, buf_w), fill, dtype=x.dtype)
    buf[..., top:top + h, left:left + w] = x
    return buf


def _taps(buf, kernel, stride, dilation, out_hw):
    """Yield (ky, kx, view) with view[..., oy, ox] = buf[..., oy*sh+ky*dh, ox*sw+kx*dw]."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = out_hw
    for ky in range(kh):
        y0 = ky * dh
        for kx in range(kw):
            x0 = kx * dw
            yield ky, kx, buf[..., y0:y0 + (oh - 1) * sh + 1:sh,
                              x0:x0 + (ow - 1) * sw + 1:sw]


def _accumulator_dtype(dtype):
    # Half-precision sums overflow and lose bits fast; integers cannot hold
    # an average. Both accumulate in a wider float.
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return dtype
    if dtype.kind == "f":
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def lowest(dtype):
    """The value max pooling pads with: below every value of `dtype`."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    if dtype.kind == "b":
        return False
    raise TypeError(f"max pooling is not defined for dtype {dtype}")


def im2col(x, kernel, stride, dilation, pads, out_hw):
    """x [C, H, W] -> [C*kh*kw, oh*ow], row (c*kh + ky)*kw + kx; 0 in padding."""
    (kh, kw), (oh, ow) = kernel, out_hw
    c = x.shape[0]
    buf = _padded(x, kernel, stride, dilation, pads, out_hw, 0)
    out = np.empty((c, kh, kw, oh, ow), dtype=x.dtype)
    for ky, kx, view in _taps(buf, kernel, stride, dilation, out_hw):
        out[:, ky, kx] = view
    return out.reshape(c * kh * kw, oh * ow)


def max_pool2d(x, kernel, stride, dilation, pads, out_hw):
    """[N, C, H, W] -> [N, C, oh, ow]; padding never wins the max."""
    (oh, ow) = out_hw
    fill = lowest(x.dtype)
    buf = _padded(x, kernel, stride, dilation, pads, out_hw, fill)
    out = np.full(x.shape[:2] + (oh, ow), fill, dtype=x.dtype)
    for _, _, view in _taps(buf, kernel, stride, dilation, out_hw):
        # fmax would drop NaNs, maximum propagates them; neither matters for
        # agreement with the compiled kernel, which does not specify NaNs.
        np.maximum(out, view, out=out)
    return out


def _window_counts(n_out, stride, k, pad_begin, lo, hi):
    # Per output position: how many of its k window positions fall in [lo, hi).
    start = np.arange(n_out) * stride - pad_begin
    return np.clip(np.minimum(start + k, hi) - np.maximum(start, lo), 0, None)


def avg_pool2d(x, kernel, stride, pads, out_hw, count_include_pad):
    """[N, C, H, W] -> [N, C, oh, ow]; see fast.avg_pool2d for the divisor."""
    (kh, kw), (sh, sw) = kernel, stride
    top, left, bottom, right = pads
    oh, ow = out_hw
    h, w = x.shape[-2:]
    acc = _accumulator_dtype(x.dtype)
    buf = _padded(x.astype(acc, copy=False), kernel, stride, (1, 1), pads,
                  out_hw, 0)
    total = np.zeros(x.shape[:2] + (oh, ow), dtype=acc)
    for _, _, view in _taps(buf, kernel, stride, (1, 1), out_hw):
        total += view
    if count_include_pad:
        cy = _window_counts(oh, sh, kh, top, -top, h + bottom)
        cx = _window_counts(ow, sw, kw, left, -left, w + right)
    else:
        cy = _window_counts(oh, sh, kh, top, 0, h)
        cx = _window_counts(ow, sw, kw, left, 0, w)
    divisor = np.multiply.outer(cy, cx).astype(acc)
    with np.errstate(invalid="ignore", divide="ignore"):
        total /= divisor
    out_dtype = x.dtype if x.dtype.kind == "f" else acc
    return total.astype(out_dtype, copy=False)


def depthwise_conv2d(x, w, bias, stride, dilation, pads, out_hw):
    """[N, C, H, W] * [C, 1, kh, kw] (+ bias [C]) -> [N, C, oh, ow]."""
    kernel = w.shape[2:]
    oh, ow = out_hw
    out_dtype = np.result_type(x, w) if bias is None else np.result_type(x, w, bias)
    acc = _accumulator_dtype(out_dtype)
    buf = _padded(x.astype(acc, copy=False), kernel, stride, dilation, pads,
                  out_hw, 0)
    taps = w[:, 0].astype(acc, copy=False)
    out = np.zeros(x.shape[:2] + (oh, ow), dtype=acc)
    if bias is not None:
        out += np.asarray(bias, dtype=acc)[:, None, None]
    for ky, kx, view in _taps(buf, kernel, stride, dilation, out_hw):
        out += taps[:, ky, kx][:, None, None] * view
    return out.astype(out_dtype, copy=False)
