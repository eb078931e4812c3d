# cython: language_level=3
"""Depthwise 2-D convolution for the CPU driver (compiled kernel).

Covers Conv with group == C and one filter per channel (weight [C, 1, kh, kw]),
the shape MobileNet-style models use everywhere and the one where im2col+GEMM
wastes most: each channel's GEMM would be a single row. Callers go through
clawdbot.hal.cpu.fast, which validates arguments, allocates the output and
falls back to numpy when this extension is unavailable.
"""

from ._typedefs cimport floating, index_t, tap_range


def depthwise_conv2d(const floating[:, :, :, ::1] x,
                     const floating[:, :, :, ::1] w,
                     const floating[::1] bias,
                     index_t sh, index_t sw,
                     index_t dh, index_t dw,
                     index_t pad_top, index_t pad_left,
                     floating[:, :, :, ::1] out):
    """out[n, c, oy, ox] = bias[c] + sum_{ky,kx} w[c,0,ky,kx] * x[n,c,iy,ix].

    iy = oy*sh + ky*dh - pad_top, ix = ox*sw + kx*dw - pad_left; taps that
    land in padding contribute nothing. bias may be None.
    """
    cdef index_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef index_t kh = w.shape[2], kw = w.shape[3]
    cdef index_t oh = out.shape[2], ow = out.shape[3]
    cdef index_t n, c, ky, kx, oy, ox, iy, x_off
    cdef index_t xlo = 0, xhi = 0  # written by tap_range
    cdef bint has_bias = bias is not None
    cdef floating* dst
    cdef const floating* src
    cdef floating b, wv

    if sh < 1 or sw < 1 or dh < 1 or dw < 1:
        raise ValueError("stride and dilation must be >= 1")
    if w.shape[0] != C or w.shape[1] != 1:
        raise ValueError(
            f"depthwise weight must be [C=={C}, 1, kh, kw], "
            f"got [{w.shape[0]}, {w.shape[1]}, {kh}, {kw}]")
    if has_bias and bias.shape[0] != C:
        raise ValueError(f"bias has {bias.shape[0]} entries, expected {C}")
    if out.shape[0] != N or out.shape[1] != C:
        raise ValueError("out batch/channels do not match the input")
    if N == 0 or C == 0 or oh == 0 or ow == 0:
        return

    with nogil:
        for n in range(N):
            for c in range(C):
                b = bias[c] if has_bias else 0
                for oy in range(oh):
                    # One output row stays hot in L1 while all kh*kw taps are
                    # accumulated into it.
                    dst = &out[n, c, oy, 0]
                    for ox in range(ow):
                        dst[ox] = b
                    for ky in range(kh):
                        iy = oy * sh + ky * dh - pad_top
                        if iy < 0 or iy >= H:
                            continue
                        src = &x[n, c, iy, 0]
                        for kx in range(kw):
                            wv = w[c, 0, ky, kx]
                            x_off = kx * dw - pad_left
                            tap_range(x_off, sw, W, ow, &xlo, &xhi)
                            if sw == 1:
                                # Spelled out so the loads are contiguous
                                # without relying on stride versioning.
                                for ox in range(xlo, xhi):
                                    dst[ox] += wv * src[ox + x_off]
                            else:
                                for ox in range(xlo, xhi):
                                    dst[ox] += wv * src[ox * sw + x_off]
