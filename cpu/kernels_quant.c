/* kernels_quant.c: matrix products with quantized weights on the CPU (design §10).
 *
 * The weights are never expanded to floats: the activations are rounded to 8 bits (qdot.h: one
 * float scale per block of 32 for the 32-weight types, per super-block of 256 for the k-quants, as
 * llama.cpp's CPU path does; the op's bound allows it, core/ir.h), and each weight block's integer
 * levels meet them in integer dot products: AVX2 maddubs / madd here, scaled once per block of 32
 * or, for the k-quants, summed with their sub-block scales in integers over a whole super-block and
 * scaled once; with AVX-512 the k-quants go through kernels_quant_avx512.c, which unpacks a row's
 * levels once for up to eight tokens. Level offsets (Q4_0's -8, Q6_K's -32, the k-quants' minima)
 * are folded in through the activations' block sums, so the inner loops work on unsigned levels.
 * Decode (a few tokens) takes this path for every type; prefill takes it for the types with a tile
 * kernel (quant_tiled) and otherwise goes through kernels_fast.c's dequantized panels and sgemm. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "simd.h"
#include "qdot.h"
#include "quant.h"
#include "half.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define TR_QAVX2 1
/* a block's f16 scale: the hardware conversion (exact, as tr_f16_to_f32's) */
#define F16(h) _cvtsh_ss(h)
#else
#define F16(h) tr_f16_to_f32(h)
#endif

/* qdot.h. The AVX-512 form gives the same bytes as the loop: the same float products, rounded to
 * nearest even as lrintf does. */
float tr_q8_round(const float *v, int n, int8_t *q)
{
#if TR_QAVX512
    if (n % 16 == 0) {
        __m512 amax = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16)
            amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(v + j)));
        float d = _mm512_reduce_max_ps(amax) / 127, id = d > 0 ? 1 / d : 0;
        const __m512i hi = _mm512_set1_epi32(127), lo = _mm512_set1_epi32(-127);
        for (int j = 0; j < n; j += 16) {
            __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(v + j), _mm512_set1_ps(id)));
            _mm_storeu_si128((__m128i *)(q + j), _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(r, lo), hi)));
        }
        return d;
    }
#endif
    float amax = 0;
    for (int j = 0; j < n; j++)
        amax = fmaxf(amax, fabsf(v[j]));
    float d = amax / 127, id = d > 0 ? 1 / d : 0;
    for (int j = 0; j < n; j++) {
        int r = (int)lrintf(v[j] * id);
        q[j] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
    }
    return d;
}

static int sum_int8(const int8_t *q, int n)
{
    int s = 0;
    for (int j = 0; j < n; j++)
        s += q[j];
    return s;
}

static void quantize_x(const float *x, int64_t K, q8x_block *out)
{
    for (int64_t b = 0; b < K / 32; b++) {
        q8x_block *o = &out[b];
        o->d = tr_q8_round(x + 32 * b, 32, o->qs);
        o->sum[0] = (int16_t)sum_int8(o->qs, 16);
        o->sum[1] = (int16_t)sum_int8(o->qs + 16, 16);
    }
}

/* ---- integer dot products of 32 unsigned levels with 32 activations ----------------------------- */

#if TR_QAVX2
static inline __m256i dot32_u8(__m256i w_u8, const int8_t *x) /* 8 int32 partial sums */
{
    __m256i p = _mm256_maddubs_epi16(w_u8, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
static inline __m256i nibbles32(const uint8_t *qs) /* 16 bytes: low nibbles then high nibbles */
{
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}
/* The fifth bits of 32 levels: bit `bit` of each byte of qh32 (Q5_K), or bit j of a uint32 (Q5_0/1). */
static inline __m256i bits_to_16(__m256i bytes, __m256i mask)
{
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask), _mm256_set1_epi8(0x10));
}
static inline __m256i q5_high(const uint8_t qh[4])
{
    uint32_t h;
    memcpy(&h, qh, 4);
    /* byte j of the vector holds bit j of h */
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return bits_to_16(bytes, bit);
}
#endif

#if !TR_QAVX2
static int dot32_scalar(const uint8_t *w, const int8_t *x)
{
    int s = 0;
    for (int j = 0; j < 32; j++)
        s += w[j] * x[j];
    return s;
}
#endif

/* ---- one weight row against the quantized activations -------------------------------------------- */

static float row_q8_0(const void *row, const q8x_block *x, int64_t nb)
{
    const tr_block_q8_0 *w = row;
#if TR_QAVX2
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wq = _mm256_loadu_si256((const __m256i *)w[b].qs), xq = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));
        __m256i s = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(F16(w[b].d) * x[b].d), acc);
    }
    return tr_hsum256(acc);
#else
    float sum = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 32; j++)
            s += w[b].qs[j] * x[b].qs[j];
        sum += F16(w[b].d) * x[b].d * (float)s;
    }
    return sum;
#endif
}

/* Q4_0, Q4_1, Q5_0, Q5_1: levels u in [0, 16) or [0, 32); w = d (u - offset) [+ m]. */
static float row_q4q5(tr_dtype t, const void *row, const q8x_block *x, int64_t nb)
{
    const int five = t == TR_Q5_0 || t == TR_Q5_1, affine = t == TR_Q4_1 || t == TR_Q5_1;
    const size_t bsize = tr_dtype_size(t);
    const int offset = affine ? 0 : five ? 16 : 8;
    float corr = 0;
#if TR_QAVX2
    __m256 acc = _mm256_setzero_ps();
#else
    float acc = 0;
#endif
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = (const uint8_t *)row + (size_t)b * bsize;
        float d = F16((uint16_t)(blk[0] | blk[1] << 8)), m = 0;
        const uint8_t *qh = NULL, *qs;
        if (affine)
            m = F16((uint16_t)(blk[2] | blk[3] << 8));
        qh = five ? blk + (affine ? 4 : 2) : NULL;
        qs = blk + (affine ? 4 : 2) + (five ? 4 : 0);
        float dx = d * x[b].d;
        int xsum = x[b].sum[0] + x[b].sum[1];
        /* sum_j (d (u_j - offset) + m) x_j dx_scale = dx (dot - offset xsum) + m xd xsum */
        corr += -dx * (float)(offset * xsum) + m * x[b].d * (float)xsum;
#if TR_QAVX2
        __m256i u = nibbles32(qs);
        if (qh)
            u = _mm256_or_si256(u, q5_high(qh));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_u8(u, x[b].qs)), _mm256_set1_ps(dx), acc);
#else
        uint8_t u[32];
        uint32_t h = qh ? (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24 : 0;
        for (int j = 0; j < 16; j++) {
            u[j] = (uint8_t)((qs[j] & 0xF) | ((h >> j) & 1) << 4);
            u[j + 16] = (uint8_t)((qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
        }
        acc += dx * (float)dot32_scalar(u, x[b].qs);
#endif
    }
#if TR_QAVX2
    return tr_hsum256(acc) + corr;
#else
    return acc + corr;
#endif
}

static void quantize_x_k(const float *x, int64_t K, int permuted, q8k_block *out)
{
    for (int64_t b = 0; b < K / 256; b++) {
        q8k_block *o = &out[b];
        o->d = tr_q8_round(x + 256 * b, 256, o->qs);
        for (int g = 0; g < 16; g++)
            o->bsums[g] = (int16_t)sum_int8(o->qs + 16 * g, 16);
        for (int s = 0; s < 8; s++)
            o->bsum32[s] = (int16_t)(o->bsums[2 * s] + o->bsums[2 * s + 1]);
        if (permuted) /* groups of 32 in the order 0 2 1 3 4 6 5 7 (qdot.h) */
            for (int g = 1; g < 8; g += 4) {
                int8_t t[32];
                memcpy(t, o->qs + 32 * g, 32);
                memcpy(o->qs + 32 * g, o->qs + 32 * (g + 1), 32);
                memcpy(o->qs + 32 * (g + 1), t, 32);
            }
    }
}

#if TR_QAVX2
/* ---- the k-quants with activations per super-block (AVX2) ----------------------------------------- */

static inline int hsum_epi32_128(__m128i v)
{
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
}

/* Q4_K / Q5_K: per super-block, sum_s sc_s (u . x)_s in integers (madd with the scale), the minima
 * through the sums: w . x = d dx sum_s sc_s (u . x)_s - dmin dx sum_s m_s (sum of x)_s. */
static float row_k45_k(int five, const void *row, const q8k_block *x, int64_t nsuper)
{
    const size_t bsize = five ? sizeof(tr_block_q5_K) : sizeof(tr_block_q4_K);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0;
    for (int64_t i = 0; i < nsuper; i++) {
        const uint8_t *blk = (const uint8_t *)row + (size_t)i * bsize;
        const tr_block_q4_K *b4 = (const tr_block_q4_K *)blk;
        const tr_block_q5_K *b5 = (const tr_block_q5_K *)blk;
        const uint8_t *scales = five ? b5->scales : b4->scales, *qs = five ? b5->qs : b4->qs;
        const q8k_block *xb = x + i;
        uint8_t sc[8], m[8];
        k_scales_unpack(scales, sc, m);
        int msum = hsum_epi32_128(_mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)m)),
                                                 _mm_loadu_si128((const __m128i *)xb->bsum32)));
        mins += F16(b4->dmin) * xb->d * (float)msum; /* d, dmin: the same offsets in both layouts */
        __m256i qh = five ? _mm256_loadu_si256((const __m256i *)b5->qh) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) { /* sub-blocks 2j (low nibbles) and 2j + 1 (high) */
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
            if (five) {
                lo = _mm256_or_si256(lo, bits_to_16(qh, _mm256_set1_epi8((char)(1 << (2 * j)))));
                hi = _mm256_or_si256(hi, bits_to_16(qh, _mm256_set1_epi8((char)(1 << (2 * j + 1)))));
            }
            __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * j)));
            __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * j + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16((short)sc[2 * j])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16((short)sc[2 * j + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b4->d) * xb->d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return tr_hsum256(acc) - mins;
}

/* Q6_K: per super-block, sum_s sc_s (u . x)_s in integers; the levels' offset of 32 through the sums. */
static float row_q6_K_k(const void *row, const q8k_block *x, int64_t nsuper)
{
    const tr_block_q6_K *w = row;
    __m256 acc = _mm256_setzero_ps();
    float offs = 0;
    for (int64_t i = 0; i < nsuper; i++) {
        const q8k_block *xb = x + i;
        __m256i os = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[i].scales)),
                                       _mm256_loadu_si256((const __m256i *)xb->bsums));
        int osum = hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(os), _mm256_extracti128_si256(os, 1)));
        float d = F16(w[i].d) * xb->d;
        offs += 32.0f * d * (float)osum;
        __m256i sumi = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = w[i].ql + 64 * half, *qh = w[i].qh + 32 * half;
            const int8_t *sc = w[i].scales + 8 * half;
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            for (int g = 0; g < 4; g++) { /* levels 32 g .. 32 g + 32 of this half: sub-blocks 2g, 2g + 1 */
                __m256i v = _mm256_loadu_si256((const __m256i *)(ql + (g % 2) * 32));
                __m256i low = _mm256_and_si256(g >= 2 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
                __m256i high = _mm256_and_si256(_mm256_srli_epi16(h, 2 * g), _mm256_set1_epi8(3));
                __m256i u = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
                __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(xb->qs + 128 * half + 32 * g)));
                __m256i scale = _mm256_set_m128i(_mm_set1_epi16((short)sc[2 * g + 1]), _mm_set1_epi16((short)sc[2 * g]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return tr_hsum256(acc) - offs;
}
#else
/* ---- the k-quants, portable: activations per block of 32 ------------------------------------------ */

/* Q4_K / Q5_K: 8 sub-blocks of 32, w = d sc_s u - dmin m_s. x block 8 i + s meets sub-block s. */
static float row_k45(int five, const void *row, const q8x_block *x, int64_t nsuper)
{
    const size_t bsize = five ? sizeof(tr_block_q5_K) : sizeof(tr_block_q4_K);
    float corr = 0, acc = 0;
    for (int64_t i = 0; i < nsuper; i++) {
        const uint8_t *blk = (const uint8_t *)row + (size_t)i * bsize;
        const tr_block_q4_K *b4 = (const tr_block_q4_K *)blk;
        const tr_block_q5_K *b5 = (const tr_block_q5_K *)blk;
        float d = F16(b4->d), dmin = F16(b4->dmin); /* same offsets in both layouts */
        const uint8_t *scales = five ? b5->scales : b4->scales, *qs = five ? b5->qs : b4->qs;
        const q8x_block *xs = x + 8 * i;
        for (int s = 0; s < 8; s++) {
            int sc, m;
            tr_k_scale_min(scales, s, &sc, &m);
            corr -= dmin * (float)m * xs[s].d * (float)(xs[s].sum[0] + xs[s].sum[1]);
            const uint8_t *q = qs + 32 * (s / 2);
            uint8_t u[32];
            for (int l = 0; l < 32; l++) {
                u[l] = (uint8_t)(s % 2 ? q[l] >> 4 : q[l] & 0xF);
                if (five)
                    u[l] |= (uint8_t)(((b5->qh[l] >> s) & 1) << 4);
            }
            acc += d * (float)sc * xs[s].d * (float)dot32_scalar(u, xs[s].qs);
        }
    }
    return acc + corr;
}

/* Q6_K: 16 sub-blocks of 16, w = d sc_s (u - 32); each group of 32 levels spans two sub-blocks. */
static float row_q6_K(const void *row, const q8x_block *x, int64_t nsuper)
{
    const tr_block_q6_K *w = row;
    float corr = 0, acc = 0;
    for (int64_t i = 0; i < nsuper; i++) {
        float d = F16(w[i].d);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = w[i].ql + 64 * half, *qh = w[i].qh + 32 * half;
            const int8_t *sc = w[i].scales + 8 * half;
            for (int g = 0; g < 4; g++) { /* levels 32 g .. 32 g + 32 of this half */
                const q8x_block *xb = x + 8 * i + 4 * half + g;
                int s0 = sc[2 * g], s1 = sc[2 * g + 1];
                corr -= d * xb->d * 32.0f * (float)(s0 * xb->sum[0] + s1 * xb->sum[1]);
                const uint8_t *lo = ql + (g % 2) * 32;
                int shift = 2 * g, dot0 = 0, dot1 = 0;
                for (int l = 0; l < 32; l++) {
                    int u = ((g >= 2 ? lo[l] >> 4 : lo[l] & 0xF) | ((qh[l] >> shift) & 3) << 4);
                    if (l < 16)
                        dot0 += u * xb->qs[l];
                    else
                        dot1 += u * xb->qs[l];
                }
                acc += d * xb->d * (float)(s0 * dot0 + s1 * dot1);
            }
        }
    }
    return acc + corr;
}
#endif

/* Whether type t's activations are rounded per super-block (q8k_block) rather than per 32. */
static int per_super_block(tr_dtype t)
{
#if TR_QAVX2
    return t == TR_Q4_K || t == TR_Q5_K || t == TR_Q6_K;
#else
    (void)t;
    return 0;
#endif
}

/* Bytes of one token's rounded activations. */
static size_t x_bytes(tr_dtype t, int64_t K)
{
    return per_super_block(t) ? (size_t)(K / 256) * sizeof(q8k_block) : (size_t)(K / 32) * sizeof(q8x_block);
}

static float row_dot(tr_dtype t, const void *row, const void *x, int64_t K)
{
    switch (t) {
    case TR_Q8_0: return row_q8_0(row, x, K / 32);
#if TR_QAVX2
    case TR_Q4_K: return row_k45_k(0, row, x, K / 256);
    case TR_Q5_K: return row_k45_k(1, row, x, K / 256);
    case TR_Q6_K: return row_q6_K_k(row, x, K / 256);
#else
    case TR_Q4_K: return row_k45(0, row, x, K / 256);
    case TR_Q5_K: return row_k45(1, row, x, K / 256);
    case TR_Q6_K: return row_q6_K(row, x, K / 256);
#endif
    default: return row_q4q5(t, row, x, K / 32);
    }
}

int tr_quant_tiled(tr_dtype t)
{
#if TR_QAVX512
    return t == TR_Q4_K || t == TR_Q5_K || t == TR_Q6_K;
#else
    (void)t;
    return 0;
#endif
}

/* One weight row against ntok (<= TR_QTILE) tokens' rounded activations, token c's at x + c *
 * stride bytes: out[c]. */
static void row_tile(tr_dtype t, const void *row, const char *x, size_t stride, int64_t K, int ntok, float *out)
{
#if TR_QAVX512
    if (tr_quant_tiled(t)) {
        int64_t xs = (int64_t)(stride / sizeof(q8k_block));
        if (t == TR_Q6_K)
            tr_qtile_q6_K_avx512(row, (const q8k_block *)x, xs, K / 256, ntok, out);
        else
            tr_qtile_k45_avx512(t == TR_Q5_K, row, (const q8k_block *)x, xs, K / 256, ntok, out);
        return;
    }
#endif
    for (int c = 0; c < ntok; c++)
        out[c] = row_dot(t, row, x + (size_t)c * stride, K);
}

/* ---- the threaded product --------------------------------------------------------------------- */

typedef struct {
    tr_tensor *dst;
    const tr_tensor *x, *w;
    char *xq; /* T tokens' rounded activations, x_stride bytes each */
    size_t x_stride;
    int64_t K, N, T, rows; /* rows: per task */
    const void *x16;       /* the weights interleaved 16 rows at a time (cpu/repack.c), or NULL */
} qmatmul_job;

static void quantize_task(void *arg, int task, int thread)
{
    (void)thread;
    qmatmul_job *j = arg;
    tr_dtype t = j->w->dtype;
    char *xq = j->xq + (size_t)task * j->x_stride;
    if (per_super_block(t))
        quantize_x_k(tr_at(j->x, 0, task, 0), j->K, !j->x16 && q8k_permuted(t), (q8k_block *)xq);
    else
        quantize_x(tr_at(j->x, 0, task, 0), j->K, (q8x_block *)xq);
}

/* A task: a run of rows against every token, TR_QTILE tokens at a time (the tile's activations
 * stay in L1 while the run's rows stream from L2). */
static void qmatmul_task(void *arg, int task, int thread)
{
    (void)thread;
    qmatmul_job *j = arg;
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
#if TR_QGEMM
    if (j->x16) { /* rows is a multiple of 16 */
        const int64_t nsuper = j->K / 256;
        float out16[16];
        for (int64_t n = n0; n < n1; n += 16)
            for (int64_t t = 0; t < j->T; t++) {
                tr_q4_K_x16_dot((const q4_K_x16 *)j->x16 + (size_t)(n / 16) * (size_t)nsuper,
                                (const q8k_block *)(j->xq + (size_t)t * j->x_stride), nsuper, out16);
                memcpy((float *)tr_at(j->dst, 0, t, 0) + n, out16, sizeof out16);
            }
        return;
    }
#endif
    float out[TR_QTILE];
    for (int64_t t0 = 0; t0 < j->T; t0 += TR_QTILE) {
        int ntok = j->T - t0 < TR_QTILE ? (int)(j->T - t0) : TR_QTILE;
        for (int64_t n = n0; n < n1; n++) {
            row_tile(j->w->dtype, tr_at(j->w, 0, n, 0), j->xq + (size_t)t0 * j->x_stride, j->x_stride, j->K, ntok, out);
            for (int c = 0; c < ntok; c++)
                ((float *)tr_at(j->dst, 0, t0 + c, 0))[n] = out[c];
        }
    }
}

size_t tr_matmul_quant_scratch_floats(const tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0];
    return ((size_t)x->ne[1] * x_bytes(dst->src[1]->dtype, x->ne[0]) + sizeof(float) - 1) / sizeof(float);
}

void matmul_quant(tr_cpu_state *st, tr_tensor *dst, float *xq_space)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    int64_t K = x->ne[0], N = w->ne[1], T = x->ne[1];
    qmatmul_job j = {dst, x, w, (char *)xq_space, x_bytes(w->dtype, K), K, N, T, tr_gemv_rows_per_task(N, st->n_threads), NULL};
#if TR_QGEMM
    if ((j.x16 = tr_repacked(st, w)) != NULL)
        j.rows = (j.rows + 15) / 16 * 16;
#endif
    tr_pool_run(st->pool, (int)T, quantize_task, &j); /* (one token: run here, no wake-up) */
    tr_pool_run(st->pool, (int)((N + j.rows - 1) / j.rows), qmatmul_task, &j);
}
