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
    void claw_qgemm_wx(const int8_t *Wt, int64_t M, int64_t K4, int64_t ldw, const uint8_t *Xp, int64_t panels,
                       int32_t *C, int64_t ldc, int64_t L, int use_vnni) nogil

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



def qgemm_wx(const int8_t[:, ::1] w, const uint8_t[::1] packed_x, int64_t l, int32_t[:, ::1] out):
    """out[m, j] = sum_k w[m, k] * x[j, k]: int8 weights (rows padded to a multiple of 4) times the pixels
    x [l, k] packed by im2panel_u8; each output channel's row comes out contiguous."""
    cdef int64_t m = w.shape[0], k4 = w.shape[1] // 4
    cdef int64_t panels = (l + 15) // 16
    if w.shape[1] % 4:
        raise ValueError(f"w's rows must be padded to a multiple of 4, got {w.shape[1]}")
    if packed_x.shape[0] != panels * k4 * 64:
        raise ValueError(f"packed pixels have {packed_x.shape[0]} bytes, expected {panels * k4 * 64}")
    if out.shape[0] != m or out.shape[1] < l:
        raise ValueError(f"out has shape ({out.shape[0]}, {out.shape[1]}), expected ({m}, {l})")
    if m == 0 or l == 0:
        return
    with nogil:
        claw_qgemm_wx(&w[0, 0], m, k4, w.shape[1], &packed_x[0], panels, &out[0, 0], out.shape[1], l, _VNNI)


def im2panel_u8(const uint8_t[:, :, ::1] xp, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                int64_t dw, int64_t oh, int64_t ow, int64_t k4, uint8_t[::1] out):
    """As im2row_u8, written straight into qgemm_wx's packed layout: pixel l, column k at
    ((l // 16) * k4 + k // 4) * 64 + (l % 16) * 4 + k % 4. `out` must be zeroed by the caller where
    pixels or columns are padding (past oh*ow, past C*kh*kw). Panel by panel, column by column, so each
    64-byte line is filled by four consecutive columns of the panel's 16 pixels."""
    cdef int64_t C = xp.shape[0], c, ky, kx, col, j, p, nl, l
    cdef int64_t panels = (oh * ow + 15) // 16
    cdef int64_t iy[16]
    cdef int64_t ix[16]
    cdef uint8_t *dst
    if out.shape[0] != panels * k4 * 64 or C * kh * kw > k4 * 4:
        raise ValueError(f"out has {out.shape[0]} bytes, expected {panels * k4 * 64} for k4 {k4}")
    if oh and ow and ((oh - 1) * sh + (kh - 1) * dh >= xp.shape[1] or (ow - 1) * sw + (kw - 1) * dw >= xp.shape[2]):
        raise ValueError("a window runs past the padded image")
    with nogil:
        for p in range(panels):
            nl = min(16, oh * ow - p * 16)
            for j in range(nl):
                l = p * 16 + j
                iy[j] = (l // ow) * sh
                ix[j] = (l % ow) * sw
            col = 0
            for c in range(C):
                for ky in range(kh):
                    for kx in range(kw):
                        dst = &out[(p * k4 + col // 4) * 64 + col % 4]
                        for j in range(nl):
                            dst[j * 4] = xp[c, iy[j] + ky * dh, ix[j] + kx * dw]
                        col += 1
