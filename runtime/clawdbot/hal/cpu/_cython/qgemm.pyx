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
