# cython: language_level=3
"""int8 x int8 -> int32 GEMM for the CPU driver (compiled kernel; the loops are in qgemm_impl.h).

Callers go through clawdbot.hal.cpu.fast, which packs the weights (pack_int8_weights) and quantizes the
activations; this module only checks what it needs to stay memory-safe.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

cdef extern from "qgemm_impl.h":
    void claw_qgemm(const uint8_t *A, int64_t M, int64_t K4, int64_t lda, const int8_t *Bp, int64_t panels,
                    int32_t *C, int64_t ldc, int64_t N, int use_vnni) nogil
    int claw_qgemm_has_vnni()

cdef int _VNNI = claw_qgemm_has_vnni()


def has_vnni():
    """Whether this CPU runs the AVX-512 VNNI path (checked once, at import)."""
    return bool(_VNNI)


def qgemm(const uint8_t[:, ::1] a, const int8_t[::1] packed, int64_t n, int32_t[:, ::1] out):
    """out[m, j] = sum_k a[m, k] * w[j, k] for the weight w [n, k] packed by pack_int8_weights; a's row
    length is k rounded up to a multiple of 4."""
    cdef int64_t m = a.shape[0], k4 = a.shape[1] // 4
    cdef int64_t panels = (n + 15) // 16
    if a.shape[1] % 4:
        raise ValueError(f"a's rows must be padded to a multiple of 4, got {a.shape[1]}")
    if packed.shape[0] != panels * k4 * 64:
        raise ValueError(f"packed weight has {packed.shape[0]} bytes, expected {panels * k4 * 64}")
    if out.shape[0] != m or out.shape[1] < n:
        raise ValueError(f"out has shape ({out.shape[0]}, {out.shape[1]}), expected ({m}, {n})")
    if m == 0 or n == 0:
        return
    with nogil:
        claw_qgemm(&a[0, 0], m, k4, a.shape[1], &packed[0], panels, &out[0, 0], out.shape[1], n, _VNNI)


def im2row_u8(const uint8_t[:, :, ::1] xp, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
              int64_t dw, int64_t oh, int64_t ow, uint8_t[:, ::1] out):
    """The int8 GEMM's A operand for a convolution: out[oy*ow + ox, (c*kh + ky)*kw + kx] =
    xp[c, oy*sh + ky*dh, ox*sw + kx*dw], from the image already padded (with its zero point) so that every
    window lies inside it. Columns past C*kh*kw are left to the caller."""
    cdef int64_t C = xp.shape[0], oy, ox, c, ky, kx, col
    cdef uint8_t *row
    cdef const uint8_t *src
    if out.shape[0] != oh * ow or out.shape[1] < C * kh * kw:
        raise ValueError(f"out has shape ({out.shape[0]}, {out.shape[1]}), expected ({oh * ow}, >= {C * kh * kw})")
    if oh and ow and ((oh - 1) * sh + (kh - 1) * dh >= xp.shape[1] or (ow - 1) * sw + (kw - 1) * dw >= xp.shape[2]):
        raise ValueError("a window runs past the padded image")
    with nogil:
        for oy in range(oh):
            for ox in range(ow):
                row = &out[oy * ow + ox, 0]
                col = 0
                for c in range(C):
                    for ky in range(kh):
                        src = &xp[c, oy * sh + ky * dh, ox * sw]
                        for kx in range(kw):
                            row[col] = src[kx * dw]
                            col += 1
