/* kernels_float_gemm.c: prefill with float weights (f32, f16, bf16) on AVX-512, tokens in the lanes.
 *
 * As in kernels_quant_gemm.c the vector lanes are 16 tokens. Each step of a row (one f32 value, or
 * with AVX-512 BF16 a pair of bf16 values) is a 32-bit broadcast from memory; the activations' panel
 * holds that step for 16 tokens; one instruction adds the products into each token's sum:
 * vfmadd231ps (16 products), or vdpbf16ps (32: two bf16 products per lane). Eight rows share each
 * load of the panel. The kernel needs no packing of the weights and, for eight rows, two loads per
 * eight multiplies: on one core of this machine 101-112 GFLOP/s against OpenBLAS's sgemm 97-104 on
 * TinyLlama's and a 15M model's products, close to the core's multiply-add rate.
 *
 *   f32:  rows read in place; the panel holds the activations as they are.
 *   f16:  each task converts its rows to f32 once (its scratch, about 256 KB), then as f32.
 *   bf16: with AVX-512 BF16, rows in place as pairs and the activations rounded to bf16 (nearest
 *         even, 2^-9 relative at most: the op's bound for a bf16 operand allows it, design §6); the
 *         products of two bf16 values are exact in f32 and sum in f32. Decode (fewer than
 *         TR_BF16_GEMV_MAX_TOKENS tokens) reads rows in order with the same rounded activations, so a
 *         prompt gives the same logits prefilled at once or a few tokens at a time. Without it, bf16
 *         as f16.
 * A task is a run of rows; it runs every group of 16 tokens against them, eight rows at a time. */
#include "kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#include <string.h>

#define GROUP 16                       /* tokens per panel: the lanes of a vector */
#define ROWS 8                         /* rows per micro-kernel call */
#define TASK_BYTES ((size_t)256 << 10) /* rows per task: they stay in L2 while the panels pass */

static int pairs_of(const tr_tensor *dst) /* steps are bf16 pairs (vdpbf16ps) */
{
#if TR_BF16_GEMM
    return dst->src[1]->dtype == TR_BF16 && dst->src[0]->ne[0] % 2 == 0;
#else
    (void)dst;
    return 0;
#endif
}

int tr_float_gemm_supports(const tr_tensor *dst)
{
    tr_dtype t = dst->src[1]->dtype;
    int64_t T = dst->src[0]->ne[1];
    if (pairs_of(dst))
        return 1; /* decode included */
    return (t == TR_F32 || t == TR_F16 || t == TR_BF16) && T >= TR_FLOAT_GEMM_MIN_TOKENS;
}

typedef struct {
    tr_cpu_state *st;
    tr_tensor *dst;
    const tr_tensor *x, *w;
    uint32_t *panels; /* [group][step][GROUP]: a step of 16 tokens, f32 or a bf16 pair each */
    int pairs;        /* steps are bf16 pairs */
    int64_t K, N, T, steps, groups, rows; /* rows: per task */
} gemm_job;

/* ---- the activations -------------------------------------------------------------------------- */

#if TR_BF16_GEMM
/* n pairs of a token's activations as bf16 pairs. */
static void round_pairs(const float *x, int64_t n, uint32_t *out)
{
    int64_t p = 0;
    for (; p + 8 <= n; p += 8)
        _mm256_storeu_si256((__m256i *)(out + p), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + 2 * p)));
    for (; p < n; p++) {
        __m128bh h = _mm_cvtneps_pbh(_mm_set_ps(0, 0, x[2 * p + 1], x[2 * p]));
        memcpy(&out[p], &h, 4);
    }
}
#endif

static void pack_task(void *arg, int g, int thread)
{
    (void)thread;
    gemm_job *j = arg;
    uint32_t *panel = j->panels + (size_t)g * (size_t)j->steps * GROUP;
    uint32_t chunk[512]; /* one token's steps, a chunk at a time */
    for (int c = 0; c < GROUP; c++) {
        int64_t t = g * GROUP + c;
        const float *x = t < j->T ? (const float *)tr_at(j->x, 0, t, 0) : NULL;
        for (int64_t s0 = 0; s0 < j->steps; s0 += 512) {
            int64_t n = j->steps - s0 < 512 ? j->steps - s0 : 512;
            if (!x) /* tokens past T: zeros */
                memset(chunk, 0, sizeof chunk);
#if TR_BF16_GEMM
            else if (j->pairs)
                round_pairs(x + 2 * s0, n, chunk);
#endif
            else
                memcpy(chunk, x + s0, (size_t)n * sizeof(float));
            for (int64_t s = 0; s < n; s++)
                panel[(size_t)(s0 + s) * GROUP + (size_t)c] = chunk[s];
        }
    }
}

/* ---- the micro-kernel: R rows x 16 tokens ------------------------------------------------------ */

/* R and pairs are constants at each call site, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void kernel(const uint32_t *const *rows, const uint32_t *panel,
                                                         int64_t steps, const int R, const int pairs,
                                                         float out[][GROUP])
{
    __m512 acc[ROWS];
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < steps; s++) {
        __m512i x = _mm512_loadu_si512(panel + (size_t)s * GROUP);
        for (int r = 0; r < R; r++) {
            __m512i w = _mm512_set1_epi32((int)rows[r][s]);
#if TR_BF16_GEMM
            if (pairs) {
                acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)x, (__m512bh)w);
                continue;
            }
#endif
            acc[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(x), _mm512_castsi512_ps(w), acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        _mm512_storeu_ps(out[r], acc[r]);
}

static void run_kernel(const uint32_t *const *rows, const uint32_t *panel, int64_t steps, int R, int pairs,
                       float out[][GROUP])
{
#define FMA(n) kernel(rows, panel, steps, n, 0, out)
#define DPBF16(n) kernel(rows, panel, steps, n, 1, out)
#define CASES(K) \
    switch (R) { \
    case 1: K(1); break; case 2: K(2); break; case 3: K(3); break; case 4: K(4); break; \
    case 5: K(5); break; case 6: K(6); break; case 7: K(7); break; default: K(8); break; \
    }
#if TR_BF16_GEMM
    if (pairs) {
        CASES(DPBF16)
        return;
    }
#endif
    CASES(FMA)
}

static void gemm_task(void *arg, int task, int thread)
{
    gemm_job *j = arg;
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    /* f16 (and bf16 without AVX-512 BF16): the task's rows converted to f32 once */
    int convert = !j->pairs && j->w->dtype != TR_F32;
    float *converted = j->st->scratch + (size_t)thread * j->st->scratch_per_thread;
    for (int64_t n = n0; convert && n < n1; n++)
        tr_row_to_f32(tr_at(j->w, 0, n, 0), j->w->dtype, converted + (size_t)(n - n0) * (size_t)j->K, j->K);
    float out[ROWS][GROUP];
    for (int64_t g = 0; g < j->groups; g++) {
        const uint32_t *panel = j->panels + (size_t)g * (size_t)j->steps * GROUP;
        int ntok = j->T - g * GROUP < GROUP ? (int)(j->T - g * GROUP) : GROUP;
        for (int64_t r0 = n0; r0 < n1; r0 += ROWS) {
            int R = n1 - r0 < ROWS ? (int)(n1 - r0) : ROWS;
            const uint32_t *rows[ROWS];
            for (int r = 0; r < R; r++)
                rows[r] = convert ? (const uint32_t *)(converted + (size_t)(r0 + r - n0) * (size_t)j->K)
                                  : (const uint32_t *)tr_at(j->w, 0, r0 + r, 0);
            run_kernel(rows, panel, j->steps, R, j->pairs, out);
            for (int c = 0; c < ntok; c++) {
                float *o = tr_at(j->dst, 0, g * GROUP + c, 0);
                for (int r = 0; r < R; r++)
                    o[r0 + r] = out[r][c];
            }
        }
    }
}

/* Rows per task: TASK_BYTES of rows (as f32 when converted), a multiple of ROWS, every thread a few. */
static int64_t task_rows(const tr_tensor *dst, int n_threads)
{
    const tr_tensor *w = dst->src[1];
    size_t row_bytes = pairs_of(dst) ? tr_row_bytes(w->dtype, w->ne[0]) : (size_t)w->ne[0] * sizeof(float);
    int64_t rows = (int64_t)(TASK_BYTES / row_bytes), most = w->ne[1] / (2 * (int64_t)n_threads);
    rows = (rows < most ? rows : most) / ROWS * ROWS;
    return rows < ROWS ? ROWS : rows;
}

/* ---- decode with bf16 pairs ---------------------------------------------------------------------- */

#if TR_BF16_GEMM
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
    gemm_job *j = arg;
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    for (int64_t n = n0; n < n1; n++) {
        const uint32_t *row = tr_at(j->w, 0, n, 0);
        for (int64_t t = 0; t < j->T; t++)
            ((float *)tr_at(j->dst, 0, t, 0))[n] = dot_pairs(j->panels + (size_t)t * (size_t)j->steps, row, j->steps);
    }
}
#endif

/* ---- sizes and the product ---------------------------------------------------------------------- */

static int decode_rows(const tr_tensor *dst)
{
    return pairs_of(dst) && dst->src[0]->ne[1] < TR_BF16_GEMV_MAX_TOKENS;
}

size_t tr_float_gemm_space_floats(const tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0];
    size_t steps = (size_t)(pairs_of(dst) ? x->ne[0] / 2 : x->ne[0]);
    size_t tokens = decode_rows(dst) ? (size_t)x->ne[1] : (size_t)((x->ne[1] + GROUP - 1) / GROUP) * GROUP;
    return tokens * steps; /* one 32-bit step per float */
}

size_t tr_float_gemm_thread_floats(const tr_tensor *dst, int n_threads)
{
    const tr_tensor *w = dst->src[1];
    if (pairs_of(dst) || w->dtype == TR_F32)
        return 0;
    return (size_t)task_rows(dst, n_threads) * (size_t)w->ne[0];
}

void tr_float_gemm(tr_cpu_state *st, tr_tensor *dst, float *space)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    gemm_job j = {st, dst, x, w, (uint32_t *)space, pairs_of(dst), x->ne[0], w->ne[1], x->ne[1], 0, 0, 0};
    j.steps = j.pairs ? j.K / 2 : j.K;
#if TR_BF16_GEMM
    if (decode_rows(dst)) {
        for (int64_t t = 0; t < j.T; t++)
            round_pairs(tr_at(x, 0, t, 0), j.steps, j.panels + (size_t)t * (size_t)j.steps);
        j.rows = tr_gemv_rows_per_task(j.N, st->n_threads);
        tr_pool_run(st->pool, (int)((j.N + j.rows - 1) / j.rows), gemv_task, &j);
        return;
    }
#endif
    j.groups = (j.T + GROUP - 1) / GROUP;
    j.rows = task_rows(dst, st->n_threads);
    tr_pool_run(st->pool, (int)j.groups, pack_task, &j);
    tr_pool_run(st->pool, (int)((j.N + j.rows - 1) / j.rows), gemm_task, &j);
}
#endif
