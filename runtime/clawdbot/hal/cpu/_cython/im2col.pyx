# cython: language_level=3
"""im2col for the CPU driver's convolution path (compiled kernel).

Unrolls the sliding windows of one image [C, H, W] into a matrix
[C*kh*kw, oh*ow] so that a dense convolution becomes one GEMM. Callers go
through clawdbot.hal.cpu.fast, which validates arguments, allocates the
output and falls back to numpy when this extension is unavailable; this module
only checks what it needs to stay memory-safe.
"""

from libc.string cimport memcpy, memset

from ._typedefs cimport floating, index_t, tap_range


def im2col(const floating[:, :, ::1] x,
           index_t kh, index_t kw,
           index_t sh, index_t sw,
           index_t dh, index_t dw,
           index_t pad_top, index_t pad_left,
           index_t oh, index_t ow,
           floating[:, ::1] out):
    """Fill out[(c*kh + ky)*kw + kx, oy*ow + ox] with x[c, iy, ix], 0 in padding.

    iy = oy*sh + ky*dh - pad_top and ix = ox*sw + kx*dw - pad_left. Output
    positions whose window runs past the bottom/right of the input (ceil_mode
    or a large bottom/right pad) read as padding too, so any oh/ow is safe.
    """
    cdef index_t C = x.shape[0]
    cdef index_t H = x.shape[1]
    cdef index_t W = x.shape[2]
    cdef index_t c, ky, kx, oy, ox, iy, row, y_off, x_off
    cdef index_t xlo = 0, xhi = 0  # written by tap_range
    cdef floating* dst
    cdef const floating* src

    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or dh < 1 or dw < 1:
        raise ValueError("kernel, stride and dilation must be >= 1")
    if oh < 0 or ow < 0:
        raise ValueError("output size must be >= 0")
    if out.shape[0] != C * kh * kw or out.shape[1] != oh * ow:
        raise ValueError(
            f"out has shape ({out.shape[0]}, {out.shape[1]}), "
            f"expected ({C * kh * kw}, {oh * ow})")
    if C == 0 or oh == 0 or ow == 0:
        return

    with nogil:
        for c in range(C):
            for ky in range(kh):
                y_off = ky * dh - pad_top
                for kx in range(kw):
                    x_off = kx * dw - pad_left
                    tap_range(x_off, sw, W, ow, &xlo, &xhi)
                    row = (c * kh + ky) * kw + kx
                    for oy in range(oh):
                        dst = &out[row, oy * ow]
                        iy = oy * sh + y_off
                        if iy < 0 or iy >= H or xlo == xhi:
                            memset(dst, 0, <size_t>ow * sizeof(floating))
                            continue
                        src = &x[c, iy, 0]
                        if xlo > 0:
                            memset(dst, 0, <size_t>xlo * sizeof(floating))
                        if sw == 1:
                            # Unit stride: the valid part is one contiguous run.
                            memcpy(dst + xlo, src + (xlo + x_off),
                                   <size_t>(xhi - xlo) * sizeof(floating))
                        else:
                            for ox in range(xlo, xhi):
                                dst[ox] = src[ox * sw + x_off]
                        if xhi < ow:
                            memset(dst + xhi, 0,
                                   <size_t>(ow - xhi) * sizeof(floating))
