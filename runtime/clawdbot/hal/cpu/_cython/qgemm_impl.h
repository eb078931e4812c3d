/* int8 GEMM for the CPU driver: C[m, n] = sum_k A[m, k] * B[n, k], A uint8 (activations quantized on the fly),
 * B int8 (weights), C int32, exactly.
 *
 * B is packed once per weight into panels of 16 output columns by 4 k's: Bp[panel][k4][16][4], the operand
 * layout of AVX-512 VNNI's vpdpbusd (16 lanes, each adding 4 u8 x s8 products into an int32). Rows of A are
 * padded to a multiple of 4 (the pad is multiplied by zero weights). With VNNI (checked at run time, so the
 * same build runs on any x86-64) four rows and two panels are computed per step in 8 zmm accumulators;
 * elsewhere (older x86, aarch64) a plain loop over the same layout, which compilers vectorise over the 16
 * lanes.
 */
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CLAW_HAVE_VNNI_PATH 1
#endif

static void claw_qgemm_portable(const uint8_t *A, int64_t M, int64_t K4, int64_t lda, const int8_t *Bp,
                                int64_t panels, int32_t *C, int64_t ldc, int64_t N)
{
    for (int64_t m = 0; m < M; m++) {
        const uint8_t *a = A + m * lda;
        for (int64_t p = 0; p < panels; p++) {
            int32_t acc[16] = {0};
            const int8_t *b = Bp + p * K4 * 64;
            for (int64_t k4 = 0; k4 < K4; k4++) {
                for (int j = 0; j < 16; j++) {
                    const int8_t *bj = b + k4 * 64 + j * 4;
                    acc[j] += (int32_t)a[4 * k4] * bj[0] + (int32_t)a[4 * k4 + 1] * bj[1]
                            + (int32_t)a[4 * k4 + 2] * bj[2] + (int32_t)a[4 * k4 + 3] * bj[3];
                }
            }
            int64_t n0 = p * 16, cols = N - n0 < 16 ? N - n0 : 16;
            memcpy(C + m * ldc + n0, acc, (size_t)cols * sizeof(int32_t));
        }
    }
}

#ifdef CLAW_HAVE_VNNI_PATH
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void claw_qgemm_vnni(const uint8_t *A, int64_t M, int64_t K4, int64_t lda, const int8_t *Bp,
                            int64_t panels, int32_t *C, int64_t ldc, int64_t N)
{
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) {
        const uint8_t *a0 = A + m * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        int64_t p = 0;
        for (; p + 2 <= panels; p += 2) {
            const int8_t *b0 = Bp + p * K4 * 64, *b1 = b0 + K4 * 64;
            __m512i c00 = _mm512_setzero_si512(), c01 = _mm512_setzero_si512();
            __m512i c10 = _mm512_setzero_si512(), c11 = _mm512_setzero_si512();
            __m512i c20 = _mm512_setzero_si512(), c21 = _mm512_setzero_si512();
            __m512i c30 = _mm512_setzero_si512(), c31 = _mm512_setzero_si512();
            for (int64_t k4 = 0; k4 < K4; k4++) {
                __m512i w0 = _mm512_loadu_si512((const void *)(b0 + k4 * 64));
                __m512i w1 = _mm512_loadu_si512((const void *)(b1 + k4 * 64));
                int32_t x0, x1, x2, x3;
                memcpy(&x0, a0 + 4 * k4, 4); memcpy(&x1, a1 + 4 * k4, 4);
                memcpy(&x2, a2 + 4 * k4, 4); memcpy(&x3, a3 + 4 * k4, 4);
                __m512i v0 = _mm512_set1_epi32(x0), v1 = _mm512_set1_epi32(x1);
                __m512i v2 = _mm512_set1_epi32(x2), v3 = _mm512_set1_epi32(x3);
                c00 = _mm512_dpbusd_epi32(c00, v0, w0); c01 = _mm512_dpbusd_epi32(c01, v0, w1);
                c10 = _mm512_dpbusd_epi32(c10, v1, w0); c11 = _mm512_dpbusd_epi32(c11, v1, w1);
                c20 = _mm512_dpbusd_epi32(c20, v2, w0); c21 = _mm512_dpbusd_epi32(c21, v2, w1);
                c30 = _mm512_dpbusd_epi32(c30, v3, w0); c31 = _mm512_dpbusd_epi32(c31, v3, w1);
            }
            __m512i acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
            for (int r = 0; r < 4; r++) {
                for (int h = 0; h < 2; h++) {
                    int64_t n0 = (p + h) * 16, cols = N - n0 < 16 ? N - n0 : 16;
                    if (cols == 16) {
                        _mm512_storeu_si512((void *)(C + (m + r) * ldc + n0), acc[r][h]);
                    } else if (cols > 0) {
                        _mm512_mask_storeu_epi32((void *)(C + (m + r) * ldc + n0),
                                                 (__mmask16)((1u << cols) - 1), acc[r][h]);
                    }
                }
            }
        }
        if (p < panels)  /* an odd last panel: the portable loop, four rows */
            for (int r = 0; r < 4; r++)
                claw_qgemm_portable(A + (m + r) * lda, 1, K4, lda, Bp + p * K4 * 64, 1,
                                    C + (m + r) * ldc + p * 16, ldc, N - p * 16);
    }
    if (m < M)
        claw_qgemm_portable(A + m * lda, M - m, K4, lda, Bp, panels, C + m * ldc, ldc, N);
}
#endif

static int claw_qgemm_has_vnni(void)
{
#ifdef CLAW_HAVE_VNNI_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

/* C [M, N] (row stride ldc) = A [M, 4*K4] (row stride lda) x packed B ([panels][K4][16][4]). */
static void claw_qgemm(const uint8_t *A, int64_t M, int64_t K4, int64_t lda, const int8_t *Bp, int64_t panels,
                       int32_t *C, int64_t ldc, int64_t N, int use_vnni)
{
#ifdef CLAW_HAVE_VNNI_PATH
    if (use_vnni) {
        claw_qgemm_vnni(A, M, K4, lda, Bp, panels, C, ldc, N);
        return;
    }
#endif
    (void)use_vnni;
    claw_qgemm_portable(A, M, K4, lda, Bp, panels, C, ldc, N);
}
