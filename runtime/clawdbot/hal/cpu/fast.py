"""Dispatcher for the CPU driver's hot kernels: compiled when possible, numpy otherwise.

The CPU driver calls these functions for the ops where plain numpy is slow
(im2col for convolution, pooling, depthwise convolution). Each one validates
and normalises its arguments, allocates a new C-contiguous output (or fills the caller's `out=`), and runs
either the Cython kernel from clawdbot.hal.cpu._cython or the pure-numpy
version from clawdbot.hal.cpu._numpy_kernels (also reachable as
``fast.numpy_impl`` so tests can exercise both).

The compiled kernel is used when it imported and the input is a float32 or
float64, native-endian, C-contiguous array; anything else (float16, integers,
strided views) goes to numpy. Setting CLAWDBOT_PURE_PYTHON=1 before this
module is imported forces numpy everywhere. ``BACKEND`` says which one the
float32/float64 path uses ("cython" or "numpy") and ``IMPORT_ERROR`` keeps
the reason when the extensions could not be loaded.

Geometry arguments follow ONNX: kernel/stride/dilation are (h, w) or one int
for both, pads is (top, left, bottom, right) (ONNX's begin..., end... order)
or one int for all four, and out_hw is the output (oh, ow) the caller already
computed (so ceil_mode is just a larger out_hw; windows that run past the
padded input read padding).
"""

import operator
import os

import numpy as np

from . import _numpy_kernels as numpy_impl

__all__ = [
    "BACKEND",
    "IMPORT_ERROR",
    "build_config",
    "numpy_impl",
    "im2col",
    "max_pool2d",
    "avg_pool2d",
    "depthwise_conv2d",
    "int8_gemm",
    "pack_int8_weights",
    "im2row_u8",
    "int8_conv_gemm",
]

IMPORT_ERROR = None

if os.environ.get("CLAWDBOT_PURE_PYTHON", "").strip() == "1":
    BACKEND = "numpy"
else:
    try:
        from ._cython import depthwise as _c_depthwise
        from ._cython import im2col as _c_im2col
        from ._cython import pool as _c_pool
    except ImportError as exc:  # not built, or built for another interpreter
        IMPORT_ERROR = exc
        BACKEND = "numpy"
    else:
        BACKEND = "cython"



def build_config() -> dict | None:
    """The flags the compiled kernels were built with (written by setup.py into built wheels); None for
    an in-place/editable build or no compiled kernels."""
    import json
    path = os.path.join(os.path.dirname(__file__), "_cython", "build_config.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _compiled_ok(x):
    # dtype equality also rejects byte-swapped floats, which the kernels
    # would misread.
    return (BACKEND == "cython" and x.dtype in _COMPILED_DTYPES
            and x.flags.c_contiguous)


def _ints(value, n, name, minimum):
    if isinstance(value, (int, np.integer)):
        items = (value,) * n
    else:
        items = tuple(value)
        if len(items) != n:
            raise ValueError(f"{name} must have {n} entries, got {value!r}")
    try:
        items = tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{name} must be integers, got {value!r}") from None
    if any(v < minimum for v in items):
        raise ValueError(f"{name} entries must be >= {minimum}, got {value!r}")
    return items


def _geometry(kernel, stride, dilation, pads, out_hw):
    return (_ints(kernel, 2, "kernel", 1), _ints(stride, 2, "stride", 1),
            _ints(dilation, 2, "dilation", 1), _ints(pads, 4, "pads", 0),
            _ints(out_hw, 2, "out_hw", 0))


def _array(x, ndim, layout):
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D {layout} array, got shape {x.shape}")
    return x


def _into(out, result):
    """`result` written into the caller's `out` (the numpy fallbacks allocate their own)."""
    if out is None:
        return result
    np.copyto(out, result)
    return out


def _target(out, shape, dtype):
    """The caller's `out`, checked, or a new array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, got "
                         f"{out.dtype} {out.shape}")
    return out


def im2col(x, kernel, stride, dilation, pads, out_hw, out=None, row0=0):
    """Unroll the windows of x [C, H, W] into [C*kh*kw, oh*ow] (into `out` when given).

    Row (c*kh + ky)*kw + kx, column oy*ow + ox holds
    x[c, oy*sh + ky*dh - top, ox*sw + kx*dw - left], or 0 in padding. With row0, output rows
    row0 .. row0+oh-1 of the full unrolling (a band: the convolution's scratch stays small).
    """
    x = _array(x, 3, "[C, H, W]")
    kernel, stride, dilation, pads, out_hw = _geometry(
        kernel, stride, dilation, pads, out_hw)
    row0 = operator.index(row0)
    if not _compiled_ok(x):
        if row0:
            full = numpy_impl.im2col(x, kernel, stride, dilation, pads, (row0 + out_hw[0], out_hw[1]))
            return _into(out, full[:, row0 * out_hw[1]:])
        return _into(out, numpy_impl.im2col(x, kernel, stride, dilation, pads, out_hw))
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    out = _target(out, (x.shape[0] * kh * kw, oh * ow), x.dtype)
    # The kernel bounds-checks every input row, so a band is the same call with the top padding shifted
    # (negative: the band starts inside the image).
    _c_im2col.im2col(x, kh, kw, sh, sw, dh, dw, pads[0] - row0 * sh, pads[1], oh, ow, out)
    return out


def max_pool2d(x, kernel, stride, dilation, pads, out_hw, out=None):
    """Max over each (dilated) window of x [N, C, H, W] -> [N, C, oh, ow].

    Padding never contributes. NaN propagation is unspecified (the compiled
    and numpy versions differ).
    """
    x = _array(x, 4, "[N, C, H, W]")
    kernel, stride, dilation, pads, out_hw = _geometry(
        kernel, stride, dilation, pads, out_hw)
    if not _compiled_ok(x):
        return _into(out, numpy_impl.max_pool2d(x, kernel, stride, dilation, pads, out_hw))
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    out = _target(out, x.shape[:2] + out_hw, x.dtype)
    _c_pool.max_pool2d(x, kh, kw, sh, sw, dh, dw, pads[0], pads[1], out)
    return out


def avg_pool2d(x, kernel, stride, pads, out_hw, count_include_pad):
    """Mean over each window of x [N, C, H, W] -> [N, C, oh, ow].

    The divisor is the number of window positions inside the input or, with
    count_include_pad, inside the padded extent [-top, H+bottom) x
    [-left, W+right). As in ONNX, a ceil_mode window running past the declared
    padding does not count the part beyond it. Float inputs keep their dtype
    (float16 accumulates in float32); integer inputs give float64.
    """
    x = _array(x, 4, "[N, C, H, W]")
    kernel, stride, _, pads, out_hw = _geometry(kernel, stride, 1, pads, out_hw)
    count_include_pad = bool(count_include_pad)
    if not _compiled_ok(x):
        return numpy_impl.avg_pool2d(x, kernel, stride, pads, out_hw,
                                     count_include_pad)
    (kh, kw), (sh, sw) = kernel, stride
    out = np.empty(x.shape[:2] + out_hw, dtype=x.dtype)
    _c_pool.avg_pool2d(x, kh, kw, sh, sw, pads[0], pads[1], pads[2], pads[3],
                       count_include_pad, out)
    return out


def depthwise_conv2d(x, w, bias, stride, dilation, pads, out_hw, out=None):
    """Depthwise convolution: x [N, C, H, W], w [C, 1, kh, kw], bias [C] or None.

    out[n, c] = bias[c] + correlation of x[n, c] with w[c, 0] (ONNX Conv with
    group == C). The result dtype is the promotion of x, w and bias; the
    compiled kernel runs when that is x's own float32/float64 dtype.
    """
    x = _array(x, 4, "[N, C, H, W]")
    w = _array(w, 4, "[C, 1, kh, kw]")
    channels = x.shape[1]
    if w.shape[0] != channels or w.shape[1] != 1:
        raise ValueError(
            f"depthwise weight must be [{channels}, 1, kh, kw], got {w.shape}")
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (channels,):
            raise ValueError(f"bias must be [{channels}], got {bias.shape}")
    _, stride, dilation, pads, out_hw = _geometry(
        w.shape[2:], stride, dilation, pads, out_hw)
    arrays = (x, w) if bias is None else (x, w, bias)
    if not (_compiled_ok(x) and np.result_type(*arrays) == x.dtype):
        return _into(out, numpy_impl.depthwise_conv2d(x, w, bias, stride, dilation, pads,
                                                      out_hw))
    # Weights and bias are small: converting them costs nothing next to x.
    w = np.ascontiguousarray(w, dtype=x.dtype)
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=x.dtype)
    (sh, sw), (dh, dw) = stride, dilation
    out = _target(out, x.shape[:2] + out_hw, x.dtype)
    _c_depthwise.depthwise_conv2d(x, w, bias, sh, sw, dh, dw, pads[0], pads[1],
                                  out)
    return out


try:
    from ._cython import qgemm as _c_qgemm
except ImportError:  # not built: the int8 GEMM below runs in numpy (exact, slow)
    _c_qgemm = None


def int8_gemm_backend() -> str:
    """"vnni" (AVX-512 VNNI), "compiled" (the portable C loop) or "numpy"."""
    if _c_qgemm is None or BACKEND != "cython":
        return "numpy"
    return "vnni" if _c_qgemm.has_vnni() else "compiled"


def pack_int8_weights(w):
    """int8 w [N, K] -> the GEMM's packed layout: panels of 16 rows by 4 columns, [N/16][K/4][16][4] (zero
    padded), as a flat int8 array."""
    w = np.asarray(w, dtype=np.int8)
    n, k = w.shape
    k4, panels = -(-k // 4), -(-n // 16)
    padded = np.zeros((panels * 16, k4 * 4), np.int8)
    padded[:n, :k] = w
    return np.ascontiguousarray(padded.reshape(panels, 16, k4, 4).transpose(0, 2, 1, 3)).reshape(-1)


def int8_gemm(a, packed, w, out=None):
    """out [M, N] int32 = a [M, Kp] (uint8, rows padded to a multiple of 4) x w[N, K].T exactly; `packed` is
    pack_int8_weights(w) (the compiled kernel reads it, the numpy fallback reads w)."""
    n = w.shape[0]
    out = np.empty((a.shape[0], n), np.int32) if out is None else out
    if int8_gemm_backend() == "numpy":
        np.matmul(a[:, :w.shape[1]].astype(np.int32), w.T.astype(np.int32), out=out)
    else:
        _c_qgemm.qgemm(a, packed, n, out)
    return out


def im2row_u8(xp, win, out):
    """Unroll the uint8 image xp [C, Hp, Wp] (already padded so every window lies inside it) into out
    [oh*ow, >= C*kh*kw], a row per output pixel: the int8 GEMM's A operand for a convolution."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.kernel, win.strides, win.dilations, win.out
    if _c_qgemm is not None and BACKEND == "cython":
        _c_qgemm.im2row_u8(np.ascontiguousarray(xp), kh, kw, sh, sw, dh, dw, oh, ow, out)
        return out
    c = xp.shape[0]
    view = out[:, :c * kh * kw].reshape(oh, ow, c, kh, kw)
    for ky in range(kh):
        for kx in range(kw):
            tap = xp[:, ky * dh:ky * dh + (oh - 1) * sh + 1:sh, kx * dw:kx * dw + (ow - 1) * sw + 1:sw]
            view[:, :, :, ky, kx] = tap.transpose(1, 2, 0)
    return out


def int8_conv_gemm(w, xp, win, out=None):
    """out [M, oh*ow] int32 = the int8 weight rows w [M, Kp] (Kp a multiple of 4, zero past C*kh*kw) times
    every window of the padded uint8 image xp [C, Hp, Wp]: a convolution's GEMM with the output channels'
    rows contiguous. The pixels are unrolled straight into the kernel's packed layout."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = win.kernel, win.strides, win.dilations, win.out
    m, kp, npix = w.shape[0], w.shape[1], oh * ow
    out = np.empty((m, npix), np.int32) if out is None else out
    if int8_gemm_backend() == "numpy":
        rows = im2row_u8(xp, win, np.zeros((npix, kp), np.uint8))
        np.matmul(w.astype(np.int32), rows.T.astype(np.int32), out=out)
        return out
    packed = np.zeros(-(-npix // 16) * (kp // 4) * 64, np.uint8)
    _c_qgemm.im2panel_u8(np.ascontiguousarray(xp), kh, kw, sh, sw, dh, dw, oh, ow, kp // 4, packed)
    _c_qgemm.qgemm_wx(w, packed, npix, out)
    return out
