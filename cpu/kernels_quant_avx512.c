/* kernels_quant_avx512.c: k-quant rows against up to TR_QTILE tokens, with AVX-512 (qdot.h).
 *
 * Per super-block of 256 weights, a row's levels are unpacked once into four 64-byte vectors of
 * unsigned levels and its sub-block scales spread over four vectors of 16-bit lanes; then, for each
 * token, four maddubs (levels x activations, pairs summed to 16 bits) and four dpwssd (times the
 * scales, summed into 32 bits: VNNI, or madd + add without it) give the super-block's integer sum,
 * scaled once by the row's d and the token's d. The minima (Q4_K, Q5_K) and Q6_K's offset of 32
 * go through the activations' sums of each sub-block. Decode is the case of one token; prefill
 * calls with eight, so the unpacking is paid once per eight tokens.
 *
 * Bounds of the integer steps: levels < 64 times activations in [-127, 127], a pair summed: at most
 * 16002, inside int16; times a scale < 64 (Q6_K's are signed int8), four pairs of 16-bit lanes per
 * 32-bit lane per super-block: under 2^23, exact in the float it is converted to. */
#include "qdot.h"

#if TR_QAVX512
#include <immintrin.h>
#include <string.h>

#include "quant.h"

#if defined(__AVX512VNNI__)
#define DPWSSD(acc, a, b) _mm512_dpwssd_epi32(acc, a, b)
#else
#define DPWSSD(acc, a, b) _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
#endif

#define R8(v) v, v, v, v, v, v, v, v
#define R16(v) R8(v), R8(v)
#define R32(v) R16(v), R16(v)

/* Q4_K / Q5_K: the 16-bit lanes of vector k take the scale of sub-blocks (0 2), (1 3), (4 6), (5 7)
 * (the groups of q8k_permuted order), and vector k's fifth bits are these bits of qh. */
static const int16_t k45_scale_idx[4][32] = {{R16(0), R16(2)}, {R16(1), R16(3)}, {R16(4), R16(6)}, {R16(5), R16(7)}};
static const uint8_t k5_bit[4][64] = {{R32(1), R32(4)}, {R32(2), R32(8)}, {R32(16), R32(64)}, {R32(32), R32(128)}};
/* Q6_K: vector k holds levels 64 k .. 64 k + 64, sub-blocks of 16: 4 k .. 4 k + 3; its high bits
 * are qh's bits (0 1 | 2 3) for the low nibbles of ql and (4 5 | 6 7) for the high ones. */
static const int16_t q6_scale_idx[4][32] = {{R8(0), R8(1), R8(2), R8(3)},
                                            {R8(4), R8(5), R8(6), R8(7)},
                                            {R8(8), R8(9), R8(10), R8(11)},
                                            {R8(12), R8(13), R8(14), R8(15)}};
static const int16_t q6_high_shift[2][32] = {{R16(0), R16(2)}, {R16(4), R16(6)}};

static inline __m512i load512(const void *p)
{
    return _mm512_loadu_si512(p);
}

static inline float hsum128(__m128 v)
{
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* The super-block's four level vectors (u) against token xb: sum over lanes of the result is
 * sum_s sc_s (u . x)_s. */
static inline __m512i superblock_dot(const __m512i u[4], const __m512i s[4], const int8_t *xq)
{
    __m512i acc = _mm512_madd_epi16(_mm512_maddubs_epi16(u[0], load512(xq)), s[0]);
    acc = DPWSSD(acc, _mm512_maddubs_epi16(u[1], load512(xq + 64)), s[1]);
    acc = DPWSSD(acc, _mm512_maddubs_epi16(u[2], load512(xq + 128)), s[2]);
    return DPWSSD(acc, _mm512_maddubs_epi16(u[3], load512(xq + 192)), s[3]);
}

/* n is a constant at each call site below, so acc[] and mins[] live in registers. */
static inline __attribute__((always_inline)) void k45_tile(int five, const uint8_t *row, const q8k_block *x,
                                                           int64_t xs, int64_t nsuper, const int n, float *out)
{
    const size_t bsize = five ? sizeof(tr_block_q5_K) : sizeof(tr_block_q4_K);
    const __m512i low4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(0x10);
    __m512 acc[TR_QTILE];
    __m128 mins[TR_QTILE];
    for (int c = 0; c < n; c++) {
        acc[c] = _mm512_setzero_ps();
        mins[c] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < nsuper; i++) {
        const uint8_t *blk = row + (size_t)i * bsize;
        const tr_block_q4_K *b4 = (const tr_block_q4_K *)blk; /* d, dmin, scales: same offsets in Q5_K */
        const uint8_t *qs = five ? ((const tr_block_q5_K *)blk)->qs : b4->qs;
        uint8_t sc[8], m[8];
        k_scales_unpack(b4->scales, sc, m);
        __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
        __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)m));
        __m512i s[4], u[4];
        for (int k = 0; k < 4; k++)
            s[k] = _mm512_permutexvar_epi16(load512(k45_scale_idx[k]), sc16);
        __m512i v0 = load512(qs), v1 = load512(qs + 64);
        u[0] = _mm512_and_si512(v0, low4);
        u[1] = _mm512_and_si512(_mm512_srli_epi16(v0, 4), low4);
        u[2] = _mm512_and_si512(v1, low4);
        u[3] = _mm512_and_si512(_mm512_srli_epi16(v1, 4), low4);
        if (five) {
            __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)((const tr_block_q5_K *)blk)->qh));
            for (int k = 0; k < 4; k++)
                u[k] = _mm512_mask_add_epi8(u[k], _mm512_test_epi8_mask(h, load512(k5_bit[k])), u[k], sixteen);
        }
        float d = _cvtsh_ss(b4->d), dmin = _cvtsh_ss(b4->dmin);
        for (int c = 0; c < n; c++) {
            const q8k_block *xb = x + c * xs + i;
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(superblock_dot(u, s, xb->qs)), _mm512_set1_ps(d * xb->d), acc[c]);
            __m128i mx = _mm_madd_epi16(m16, _mm_loadu_si128((const __m128i *)xb->bsum32));
            mins[c] = _mm_fmadd_ps(_mm_cvtepi32_ps(mx), _mm_set1_ps(dmin * xb->d), mins[c]);
        }
    }
    for (int c = 0; c < n; c++)
        out[c] = _mm512_reduce_add_ps(acc[c]) - hsum128(mins[c]);
}

static inline __attribute__((always_inline)) void q6_tile(const uint8_t *row, const q8k_block *x, int64_t xs,
                                                          int64_t nsuper, const int n, float *out)
{
    const __m512i low4 = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(3);
    __m512 acc[TR_QTILE];
    __m256 offs[TR_QTILE];
    for (int c = 0; c < n; c++) {
        acc[c] = _mm512_setzero_ps();
        offs[c] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nsuper; i++) {
        const tr_block_q6_K *b = (const tr_block_q6_K *)row + i;
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        __m512i s[4], u[4];
        for (int k = 0; k < 4; k++)
            s[k] = _mm512_permutexvar_epi16(load512(q6_scale_idx[k]), _mm512_castsi256_si512(sc16));
        for (int half = 0; half < 2; half++) {
            __m512i l = load512(b->ql + 64 * half);
            __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * half)));
            __m512i hlo = _mm512_and_si512(_mm512_srlv_epi16(h, load512(q6_high_shift[0])), three);
            __m512i hhi = _mm512_and_si512(_mm512_srlv_epi16(h, load512(q6_high_shift[1])), three);
            u[2 * half] = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_slli_epi16(hlo, 4));
            u[2 * half + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4), _mm512_slli_epi16(hhi, 4));
        }
        float d = _cvtsh_ss(b->d);
        for (int c = 0; c < n; c++) {
            const q8k_block *xb = x + c * xs + i;
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(superblock_dot(u, s, xb->qs)), _mm512_set1_ps(d * xb->d), acc[c]);
            __m256i os = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)xb->bsums));
            offs[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(os), _mm256_set1_ps(32.0f * d * xb->d), offs[c]);
        }
    }
    for (int c = 0; c < n; c++)
        out[c] = _mm512_reduce_add_ps(acc[c]) - _mm512_reduce_add_ps(_mm512_castps256_ps512(offs[c]));
}

#if TR_QGEMM
/* Per sub-block, 8 vpdpbusd (levels unsigned, activations signed and broadcast) into one sum per
 * row, times the rows' scales (vpmulld); the minima through the sub-block's activation sum. All in
 * int32 per super-block (at most 8 x 32 x 15 x 127 x 63 < 2^31), then scaled by d and dmin. */
void tr_q4_K_x16_dot(const q4_K_x16 *w, const q8k_block *x, int64_t nsuper, float out[16])
{
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps(), mins = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsuper; i++) {
        const q4_K_x16 *b = w + i;
        const q8k_block *xb = x + i;
        __m512i sum = _mm512_setzero_si512(), msum = _mm512_setzero_si512();
        for (int s = 0; s < 8; s++) {
            __m512i dot = _mm512_setzero_si512();
            for (int j = 4 * s; j < 4 * s + 4; j++) {
                __m512i v = load512(b->qs[j]);
                int32_t x0, x1;
                memcpy(&x0, xb->qs + 8 * j, 4);
                memcpy(&x1, xb->qs + 8 * j + 4, 4);
                dot = _mm512_dpbusd_epi32(dot, _mm512_and_si512(v, low4), _mm512_set1_epi32(x0));
                dot = _mm512_dpbusd_epi32(dot, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4), _mm512_set1_epi32(x1));
            }
            sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(dot, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->sc[s]))));
            msum = _mm512_add_epi32(msum, _mm512_mullo_epi32(_mm512_set1_epi32(xb->bsum32[s]),
                                                             _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->m[s]))));
        }
        __m512 dx = _mm512_set1_ps(xb->d);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d)), dx), acc);
        mins = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->dmin)), dx), mins);
    }
    _mm512_storeu_ps(out, _mm512_sub_ps(acc, mins));
}
#endif

/* One specialisation per token count, so each keeps its accumulators in registers. */
#define TILE_CASES(CALL) \
    switch (ntok) { \
    case 1: CALL(1); break; \
    case 2: CALL(2); break; \
    case 3: CALL(3); break; \
    case 4: CALL(4); break; \
    case 5: CALL(5); break; \
    case 6: CALL(6); break; \
    case 7: CALL(7); break; \
    default: CALL(8); break; \
    }

void tr_qtile_k45_avx512(int five, const void *row, const q8k_block *x, int64_t x_stride, int64_t nsuper,
                         int ntok, float *out)
{
#define K4(n) k45_tile(0, row, x, x_stride, nsuper, n, out)
#define K5(n) k45_tile(1, row, x, x_stride, nsuper, n, out)
    if (five)
        TILE_CASES(K5)
    else
        TILE_CASES(K4)
}

void tr_qtile_q6_K_avx512(const void *row, const q8k_block *x, int64_t x_stride, int64_t nsuper, int ntok,
                          float *out)
{
#define Q6(n) q6_tile(row, x, x_stride, nsuper, n, out)
    TILE_CASES(Q6)
}
#endif
