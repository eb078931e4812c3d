# cython: language_level=3
"""2-D max and average pooling for the CPU driver (compiled kernels).

Both work on [N, C, H, W] and write into a preallocated [N, C, oh, ow].
Callers go through clawdbot.hal.cpu.fast, which validates arguments, allocates
the output and falls back to numpy when this extension is unavailable.

Loop order, for both: one output row at a time, and for each kernel tap add
(or max) a whole input row segment into it. The segment bounds come from
tap_range, so the innermost loop has no padding branches and the output row
stays in L1 across the kh*kw taps.
"""

from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

from ._typedefs cimport floating, index_t, tap_range


cdef inline index_t _overlap(index_t start, index_t length,
                             index_t lo, index_t hi) noexcept nogil:
    # Size of [start, start+length) intersected with [lo, hi).
    cdef index_t a = start if start > lo else lo
    cdef index_t b = start + length
    if b > hi:
        b = hi
    return b - a if b > a else 0


def _check_common(index_t kh, index_t kw, index_t sh, index_t sw,
                  index_t dh, index_t dw, x_shape, out_shape):
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or dh < 1 or dw < 1:
        raise ValueError("kernel, stride and dilation must be >= 1")
    if tuple(x_shape[:2]) != tuple(out_shape[:2]):
        raise ValueError(
            f"out batch/channels {tuple(out_shape[:2])} do not match "
            f"input {tuple(x_shape[:2])}")


def max_pool2d(const floating[:, :, :, ::1] x,
               index_t kh, index_t kw,
               index_t sh, index_t sw,
               index_t dh, index_t dw,
               index_t pad_top, index_t pad_left,
               floating[:, :, :, ::1] out):
    """out[n, c, oy, ox] = max of x over the (dilated) window; padding ignored.

    A window with no input element at all (possible only with oversized pads
    or output sizes) yields -inf. NaN inputs are not propagated reliably.
    """
    cdef index_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef index_t oh = out.shape[2], ow = out.shape[3]
    cdef index_t n, c, ky, kx, oy, ox, iy, x_off
    cdef index_t xlo = 0, xhi = 0  # written by tap_range
    cdef floating* dst
    cdef const floating* src
    cdef floating v, m
    cdef floating lowest = -INFINITY

    _check_common(kh, kw, sh, sw, dh, dw, x.shape, out.shape)
    if N == 0 or C == 0 or oh == 0 or ow == 0:
        return

    with nogil:
        for n in range(N):
            for c in range(C):
                for oy in range(oh):
                    dst = &out[n, c, oy, 0]
                    for ox in range(ow):
                        dst[ox] = lowest
                    for ky in range(kh):
                        iy = oy * sh + ky * dh - pad_top
                        if iy < 0 or iy >= H:
                            continue
                        src = &x[n, c, iy, 0]
                        for kx in range(kw):
                            x_off = kx * dw - pad_left
                            tap_range(x_off, sw, W, ow, &xlo, &xhi)
                            # Unconditional store of a select: this form
                            # becomes a vector max, a guarded store does not.
                            # Unit stride is spelled out because gcc does not
                            # reliably version the loop for it.
                            if sw == 1:
                                for ox in range(xlo, xhi):
                                    v = src[ox + x_off]
                                    m = dst[ox]
                                    dst[ox] = v if v > m else m
                            else:
                                for ox in range(xlo, xhi):
                                    v = src[ox * sw + x_off]
                                    m = dst[ox]
                                    dst[ox] = v if v > m else m


def avg_pool2d(const floating[:, :, :, ::1] x,
               index_t kh, index_t kw,
               index_t sh, index_t sw,
               index_t pad_top, index_t pad_left,
               index_t pad_bottom, index_t pad_right,
               bint count_include_pad,
               floating[:, :, :, ::1] out):
    """out[n, c, oy, ox] = sum of x over the window / divisor.

    The divisor counts window positions inside [0, H) x [0, W), or with
    count_include_pad inside [-pad_top, H+pad_bottom) x [-pad_left, W+pad_right):
    as in ONNX, a ceil_mode window that runs past the declared padding only
    counts the declared part. Sums accumulate in the element type.
    """
    cdef index_t H = x.shape[2], W = x.shape[3]
    cdef index_t ow = out.shape[3]
    cdef index_t ox, ylo_count, yhi_count, xlo_count, xhi_count
    cdef floating* col_count

    _check_common(kh, kw, sh, sw, 1, 1, x.shape, out.shape)
    if out.shape[0] == 0 or out.shape[1] == 0 or out.shape[2] == 0 or ow == 0:
        return

    if count_include_pad:
        ylo_count, yhi_count = -pad_top, H + pad_bottom
        xlo_count, xhi_count = -pad_left, W + pad_right
    else:
        ylo_count, yhi_count = 0, H
        xlo_count, xhi_count = 0, W

    # The divisor factorises into a row count times a column count because
    # the window is a rectangle. Column counts are the same for every row and
    # channel: computing them once keeps the division loop branch-free.
    col_count = <floating*>malloc(<size_t>ow * sizeof(floating))
    if col_count == NULL:
        raise MemoryError()
    try:
        for ox in range(ow):
            col_count[ox] = <floating>_overlap(ox * sw - pad_left, kw,
                                               xlo_count, xhi_count)
        with nogil:
            _avg_pool_planes(x, out, kh, kw, sh, sw, pad_top, pad_left,
                             ylo_count, yhi_count, col_count)
    finally:
        free(col_count)


cdef void _avg_pool_planes(const floating[:, :, :, ::1] x,
                           floating[:, :, :, ::1] out,
                           index_t kh, index_t kw, index_t sh, index_t sw,
                           index_t pad_top, index_t pad_left,
                           index_t ylo_count, index_t yhi_count,
                           const floating* col_count) noexcept nogil:
    cdef index_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef index_t oh = out.shape[2], ow = out.shape[3]
    cdef index_t n, c, ky, kx, oy, ox, iy, x_off
    cdef index_t xlo = 0, xhi = 0  # written by tap_range
    cdef floating* dst
    cdef const floating* src
    cdef floating cy

    for n in range(N):
        for c in range(C):
            for oy in range(oh):
                dst = &out[n, c, oy, 0]
                for ox in range(ow):
                    dst[ox] = 0
                for ky in range(kh):
                    iy = oy * sh + ky - pad_top
                    if iy < 0 or iy >= H:
                        continue
                    src = &x[n, c, iy, 0]
                    for kx in range(kw):
                        x_off = kx - pad_left
                        tap_range(x_off, sw, W, ow, &xlo, &xhi)
                        if sw == 1:
                            for ox in range(xlo, xhi):
                                dst[ox] += src[ox + x_off]
                        else:
                            for ox in range(xlo, xhi):
                                dst[ox] += src[ox * sw + x_off]
                # Products of small integers, hence exact: the same as
                # dividing by the integer window count.
                cy = <floating>_overlap(oy * sh - pad_top, kh,
                                        ylo_count, yhi_count)
                for ox in range(ow):
                    dst[ox] = dst[ox] / (cy * col_count[ox])
