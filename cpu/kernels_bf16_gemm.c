/* kernels_bf16_gemm.c: prefill with bf16 weights, on AVX-512 BF16 (vdpbf16ps).
 *
 * The float path converts bf16 weights to f32 panels for OpenBLAS's sgemm: one fused multiply-add
 * per 16 products. vdpbf16ps does 32 (two bf16 products per float lane, summed into it), once the
 * activations are bf16 too. As in kernels_quant_gemm.c the vector lanes are 16 tokens: a weight
 * row's pair of values k, k + 1 is one 32-bit broadcast from memory, the activations' panel holds
 * the same pair for 16 tokens, so the rows need no unpacking and the panel is loaded once for eight
 * rows. Decode (fewer than TR_BF16_GEMV_MAX_TOKENS tokens) takes rows in order, as kernels_fast.c's
 * float GEMV, with the same rounded activations.
 *
 * Rounding: the activations are rounded to bf16 (nearest even), 2^-9 relative at most, the error
 * the op's bound for a bf16 operand allows (design §6: 5e-4 NMSE; core/ir.h); the products of two
 * bf16 values are exact in f32 and sum in f32, as sgemm's do. */
#include "kernels.h"

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#include <string.h>

#define GROUP 16                         /* tokens per panel: the lanes of a vector */
#define ROWS 8                           /* rows per micro-kernel call */
#define TASK_BYTES ((size_t)256 << 10)   /* weight rows per task: they stay in L2 while the panels pass */

int tr_bf16_gemm_supports(const tr_tensor *dst)
{
    return dst->src[1]->dtype == TR_BF16 && dst->src[0]->ne[0] % 2 == 0;
}

/* Panel of group g: [K / 2][GROUP] 32-bit pairs of bf16 activations. */
typedef struct {
    tr_cpu_state *st;
    tr_tensor *dst;
    const tr_tensor *x, *w;
    uint32_t *panels;
    int64_t K, N, T, groups, rows; /* rows: per task */
} bf16_job;

static void round_token(const float *x, int64_t pairs, uint32_t *out);

static void pack_task(void *arg, int g, int thread)
{
    (void)thread;
    bf16_job *j = arg;
    const int64_t pairs = j->K / 2;
    uint32_t *panel = j->panels + (size_t)g * (size_t)pairs * GROUP;
    uint32_t row[512]; /* one token's pairs, a chunk at a time */
    for (int c = 0; c < GROUP; c++) {
        int64_t t = g * GROUP + c;
        for (int64_t p0 = 0; p0 < pairs; p0 += 512) {
            int64_t n = pairs - p0 < 512 ? pairs - p0 : 512;
            if (t < j->T)
                round_token((const float *)tr_at(j->x, 0, t, 0) + 2 * p0, n, row);
            else /* tokens past T: zeros */
                memset(row, 0, sizeof row);
            for (int64_t p = 0; p < n; p++)
                panel[(size_t)(p0 + p) * GROUP + (size_t)c] = row[p];
        }
    }
}

/* R rows (n is a constant at each call) against one panel: out[r][c]. */
static inline __attribute__((always_inline)) void kernel(const uint32_t *const *rows, const uint32_t *panel,
                                                         int64_t pairs, const int R, float out[][GROUP])
{
    __m512 acc[ROWS];
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; p++) {
        __m512bh x = (__m512bh)_mm512_loadu_si512(panel + (size_t)p * GROUP);
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_dpbf16_ps(acc[r], x, (__m512bh)_mm512_set1_epi32((int)rows[r][p]));
    }
    for (int r = 0; r < R; r++)
        _mm512_storeu_ps(out[r], acc[r]);
}

static void run_kernel(const uint32_t *const *rows, const uint32_t *panel, int64_t pairs, int R, float out[][GROUP])
{
    switch (R) {
    case 1: kernel(rows, panel, pairs, 1, out); break;
    case 2: kernel(rows, panel, pairs, 2, out); break;
    case 3: kernel(rows, panel, pairs, 3, out); break;
    case 4: kernel(rows, panel, pairs, 4, out); break;
    case 5: kernel(rows, panel, pairs, 5, out); break;
    case 6: kernel(rows, panel, pairs, 6, out); break;
    case 7: kernel(rows, panel, pairs, 7, out); break;
    default: kernel(rows, panel, pairs, 8, out); break;
    }
}

static void gemm_task(void *arg, int task, int thread)
{
    (void)thread;
    bf16_job *j = arg;
    const int64_t pairs = j->K / 2;
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    float out[ROWS][GROUP];
    for (int64_t g = 0; g < j->groups; g++) {
        const uint32_t *panel = j->panels + (size_t)g * (size_t)pairs * GROUP;
        int ntok = j->T - g * GROUP < GROUP ? (int)(j->T - g * GROUP) : GROUP;
        for (int64_t r0 = n0; r0 < n1; r0 += ROWS) {
            int R = n1 - r0 < ROWS ? (int)(n1 - r0) : ROWS;
            const uint32_t *rows[ROWS];
            for (int r = 0; r < R; r++)
                rows[r] = tr_at(j->w, 0, r0 + r, 0);
            run_kernel(rows, panel, pairs, R, out);
            for (int c = 0; c < ntok; c++) {
                float *o = tr_at(j->dst, 0, g * GROUP + c, 0);
                for (int r = 0; r < R; r++)
                    o[r0 + r] = out[r][c];
            }
        }
    }
}

/* ---- decode: a few tokens, rows in order --------------------------------------------------------
 * The same rounding of the activations as prefill's, so that a prompt gives the same logits
 * whether it is prefilled at once or a few tokens at a time; the weights' 64 bytes per
 * vdpbf16ps, unconverted, are all the loop reads. */

static float dot_pairs(const uint32_t *x, const uint32_t *w, int64_t pairs)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t p = 0;
    for (; p + 64 <= pairs; p += 64) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + p), (__m512bh)_mm512_loadu_si512(x + p));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + p + 16), (__m512bh)_mm512_loadu_si512(x + p + 16));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(w + p + 32), (__m512bh)_mm512_loadu_si512(x + p + 32));
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(w + p + 48), (__m512bh)_mm512_loadu_si512(x + p + 48));
    }
    for (; p < pairs; p += 16) { /* masked loads read nothing past the row */
        __mmask16 m = pairs - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (pairs - p)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi32(m, w + p), (__m512bh)_mm512_maskz_loadu_epi32(m, x + p));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static void gemv_task(void *arg, int task, int thread)
{
    (void)thread;
    bf16_job *j = arg;
    const int64_t pairs = j->K / 2;
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    for (int64_t n = n0; n < n1; n++) {
        const uint32_t *row = tr_at(j->w, 0, n, 0);
        for (int64_t t = 0; t < j->T; t++)
            ((float *)tr_at(j->dst, 0, t, 0))[n] = dot_pairs(j->panels + (size_t)t * (size_t)pairs, row, pairs);
    }
}

/* One token's activations as bf16 pairs. */
static void round_token(const float *x, int64_t pairs, uint32_t *out)
{
    int64_t p = 0;
    for (; p + 8 <= pairs; p += 8)
        _mm256_storeu_si256((__m256i *)(out + p), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + 2 * p)));
    for (; p < pairs; p++) {
        __m128bh h = _mm_cvtneps_pbh(_mm_set_ps(0, 0, x[2 * p + 1], x[2 * p]));
        memcpy(&out[p], &h, 4);
    }
}

size_t tr_bf16_gemm_space_floats(const tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0];
    size_t tokens = x->ne[1] < TR_BF16_GEMV_MAX_TOKENS ? (size_t)x->ne[1] : (size_t)((x->ne[1] + GROUP - 1) / GROUP) * GROUP;
    return tokens * (size_t)(x->ne[0] / 2); /* one 32-bit pair per float */
}

void tr_bf16_gemm(tr_cpu_state *st, tr_tensor *dst, float *space)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    bf16_job j = {st, dst, x, w, (uint32_t *)space, x->ne[0], w->ne[1], x->ne[1], 0, 0};
    if (j.T < TR_BF16_GEMV_MAX_TOKENS) {
        for (int64_t t = 0; t < j.T; t++)
            round_token(tr_at(x, 0, t, 0), j.K / 2, j.panels + (size_t)t * (size_t)(j.K / 2));
        j.rows = tr_gemv_rows_per_task(j.N, st->n_threads);
        tr_pool_run(st->pool, (int)((j.N + j.rows - 1) / j.rows), gemv_task, &j);
        return;
    }
    j.groups = (j.T + GROUP - 1) / GROUP;
    int64_t rows = (int64_t)(TASK_BYTES / ((size_t)j.K * 2)), most = j.N / (2 * (int64_t)st->n_threads);
    rows = (rows < most ? rows : most) / ROWS * ROWS;
    j.rows = rows < ROWS ? ROWS : rows;
    tr_pool_run(st->pool, (int)j.groups, pack_task, &j);
    tr_pool_run(st->pool, (int)((j.N + j.rows - 1) / j.rows), gemm_task, &j);
}
#endif
