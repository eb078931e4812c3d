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

/* The transposed problem, for convolutions: C[m, l] = sum_k W[m, k] * X[l, k] with W int8 rows (row stride
 * ldw, K4*4 bytes each) and X uint8 packed like B above ([panels][K4][16][4], 16 pixels a panel), so each
 * output channel's row of pixels comes out contiguous, as NCHW wants it. */
static void claw_qgemm_wx_portable(const int8_t *Wt, int64_t M, int64_t K4, int64_t ldw, const uint8_t *Xp,
                                   int64_t panels, int32_t *C, int64_t ldc, int64_t L)
{
    for (int64_t m = 0; m < M; m++) {
        const int8_t *w = Wt + m * ldw;
        for (int64_t p = 0; p < panels; p++) {
            int32_t acc[16] = {0};
            const uint8_t *x = Xp + p * K4 * 64;
            for (int64_t k4 = 0; k4 < K4; k4++)
                for (int j = 0; j < 16; j++) {
                    const uint8_t *xj = x + k4 * 64 + j * 4;
                    acc[j] += (int32_t)xj[0] * w[4 * k4] + (int32_t)xj[1] * w[4 * k4 + 1]
                            + (int32_t)xj[2] * w[4 * k4 + 2] + (int32_t)xj[3] * w[4 * k4 + 3];
                }
            int64_t l0 = p * 16, cols = L - l0 < 16 ? L - l0 : 16;
            memcpy(C + m * ldc + l0, acc, (size_t)cols * sizeof(int32_t));
        }
    }
}

#ifdef CLAW_HAVE_VNNI_PATH
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void claw_qgemm_wx_vnni(const int8_t *Wt, int64_t M, int64_t K4, int64_t ldw, const uint8_t *Xp,
                               int64_t panels, int32_t *C, int64_t ldc, int64_t L)
{
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) {
        const int8_t *w0 = Wt + m * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        int64_t p = 0;
        for (; p + 2 <= panels; p += 2) {
            const uint8_t *x0 = Xp + p * K4 * 64, *x1 = x0 + K4 * 64;
            __m512i c00 = _mm512_setzero_si512(), c01 = _mm512_setzero_si512();
            __m512i c10 = _mm512_setzero_si512(), c11 = _mm512_setzero_si512();
            __m512i c20 = _mm512_setzero_si512(), c21 = _mm512_setzero_si512();
            __m512i c30 = _mm512_setzero_si512(), c31 = _mm512_setzero_si512();
            for (int64_t k4 = 0; k4 < K4; k4++) {
                __m512i a0 = _mm512_loadu_si512((const void *)(x0 + k4 * 64));
                __m512i a1 = _mm512_loadu_si512((const void *)(x1 + k4 * 64));
                int32_t q0, q1, q2, q3;
                memcpy(&q0, w0 + 4 * k4, 4); memcpy(&q1, w1 + 4 * k4, 4);
                memcpy(&q2, w2 + 4 * k4, 4); memcpy(&q3, w3 + 4 * k4, 4);
                __m512i v0 = _mm512_set1_epi32(q0), v1 = _mm512_set1_epi32(q1);
                __m512i v2 = _mm512_set1_epi32(q2), v3 = _mm512_set1_epi32(q3);
                /* vpdpbusd: unsigned bytes from the first source (pixels), signed from the second (weights) */
                c00 = _mm512_dpbusd_epi32(c00, a0, v0); c01 = _mm512_dpbusd_epi32(c01, a1, v0);
                c10 = _mm512_dpbusd_epi32(c10, a0, v1); c11 = _mm512_dpbusd_epi32(c11, a1, v1);
                c20 = _mm512_dpbusd_epi32(c20, a0, v2); c21 = _mm512_dpbusd_epi32(c21, a1, v2);
                c30 = _mm512_dpbusd_epi32(c30, a0, v3); c31 = _mm512_dpbusd_epi32(c31, a1, v3);
            }
            __m512i acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
            for (int r = 0; r < 4; r++)
                for (int h = 0; h < 2; h++) {
                    int64_t l0 = (p + h) * 16, cols = L - l0 < 16 ? L - l0 : 16;
                    if (cols == 16)
                        _mm512_storeu_si512((void *)(C + (m + r) * ldc + l0), acc[r][h]);
                    else if (cols > 0)
                        _mm512_mask_storeu_epi32((void *)(C + (m + r) * ldc + l0),
                                                 (__mmask16)((1u << cols) - 1), acc[r][h]);
                }
        }
        if (p < panels)
            for (int r = 0; r < 4; r++)
                claw_qgemm_wx_portable(Wt + (m + r) * ldw, 1, K4, ldw, Xp + p * K4 * 64, 1,
                                       C + (m + r) * ldc + p * 16, ldc, L - p * 16);
    }
    if (m < M)
        claw_qgemm_wx_portable(Wt + m * ldw, M - m, K4, ldw, Xp, panels, C + m * ldc, ldc, L);
}
#endif

static void claw_qgemm_wx(const int8_t *Wt, int64_t M, int64_t K4, int64_t ldw, const uint8_t *Xp, int64_t panels,
                          int32_t *C, int64_t ldc, int64_t L, int use_vnni)
{
#ifdef CLAW_HAVE_VNNI_PATH
    if (use_vnni) {
        claw_qgemm_wx_vnni(Wt, M, K4, ldw, Xp, panels, C, ldc, L);
        return;
    }
#endif
    (void)use_vnni;
    claw_qgemm_wx_portable(Wt, M, K4, ldw, Xp, panels, C, ldc, L);
}

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
