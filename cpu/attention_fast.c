/* attention_fast.c: the CPU fast path of the fused ATTENTION op.
 *
 * Work is split into tasks of (query head or differential head pair, tile of 32 query rows), taken dynamically from the pool
 * (causal rows grow longer towards the end). A task computes its tile's scores and weighted values
 * with two single-threaded sgemm calls, so the inner loops run at BLAS speed; its scratch is one
 * tile of score rows, 32 x n_kv floats per thread: O(n) memory, never the n x n matrix.
 *
 * Attention Transition rows (design §3) take a second pass over their stored row: the weights are
 * only known once the row's max and normaliser are, so pass 1 finds them and pass 2 turns the row
 * into its final weights (elimination, halving, the moved shares) before the tile's P V product.
 * On the CPU a tile's rows are held anyway, so this is the cheapest exact form; GPU kernels, which
 * stream keys without holding rows, use the five-sum form of docs/attention-transition.md. Nothing
 * n x n is ever held. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "simd.h"
#include "transition.h"

#define ROWS_PER_TASK 32 /* query rows per task: the sgemm tile height */

typedef struct {
    tr_cpu_state *st;
    tr_tensor *dst;
    int64_t row_blocks;
} attn_job;

/* Pass 2 of a transition row (design §3): e[0..n_keys) holds exp(s - max) and sum their total;
 * the row becomes its final weights in place (zeros past n_keys are already there), so the tile's
 * P V product then applies them like any other row. The marks m are read from each weight before
 * step 6 changes it; blocks -1 and -2 are disjoint, so each key is visited once. */
static void transition_weights(const tr_attn_params *ap, int64_t start, float *e, float sum, int64_t n_keys)
{
    int64_t iv = ap->transition.iv, end = start + iv, b1 = start - iv, b2 = start - 2 * iv;
    float t = ap->transition.alpha / (float)end, inv = 1.0f / sum, kept = 0;
    for (int64_t c = 0; c < n_keys; c++) { /* 1-2: threshold and elimination */
        float p = e[c] * inv;
        e[c] = p < t ? 0.0f : p;
    }
    e[0] *= 0.5f; /* 3 */
    for (int64_t c = 0; c < n_keys; c++)
        kept += e[c];
    float removed = 1.0f - kept; /* 4 */
    if (ap->transition.strategy == TR_TRANSITION_MULTI) {
        float scale = kept > 0 ? 1.0f + removed / kept : 0.0f;
        for (int64_t c = 0; c < n_keys; c++)
            e[c] *= scale;
        return;
    }
    float m_sum = 0; /* 5: marks over P = [b2, start) */
    for (int64_t c = b2; c < start; c++)
        m_sum += e[c] >= t ? 1.0f : 0.01f;
    float share = ap->transition.beta * removed / m_sum;
    for (int64_t c = b2; c < start; c++) /* 6: 3 shares on block -2, 7 on block -1 */
        e[c] += (c >= b1 ? 7.0f : 3.0f) * share * (e[c] >= t ? 1.0f : 0.01f);
}

/* e[c] = exp(e[c] - max) over the row's n keys; returns their sum (pass 1 of the softmax). At 8K
 * tokens this loop, with libm's scalar expf, cost as much as the two products around it. */
static float exp_row(float *e, int64_t n)
{
    float mx = -INFINITY, sum = 0;
    int64_t c = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vm = _mm256_set1_ps(-INFINITY), vs = _mm256_setzero_ps();
    for (; c + 8 <= n; c += 8)
        vm = _mm256_max_ps(vm, _mm256_loadu_ps(e + c));
    mx = tr_hmax256(vm);
    for (int64_t i = c; i < n; i++)
        mx = e[i] > mx ? e[i] : mx;
    const __m256 m8 = _mm256_set1_ps(mx);
    for (c = 0; c + 8 <= n; c += 8) {
        __m256 v = tr_exp256(_mm256_sub_ps(_mm256_loadu_ps(e + c), m8));
        _mm256_storeu_ps(e + c, v);
        vs = _mm256_add_ps(vs, v);
    }
    sum = tr_hsum256(vs);
#else
    for (int64_t i = 0; i < n; i++)
        mx = e[i] > mx ? e[i] : mx;
#endif
    for (; c < n; c++)
        sum += e[c] = expf(e[c] - mx);
    return sum;
}

/* The probability rows of query head h (kv columns from col) for query rows [t0, t0 + rows) into
 * e (rows x kmax, keys past a row's own position zero). Keys 0 .. kmax-1 are the ones the last row sees.
 *   S = scale * Q K^T            (one sgemm; the causal corner is masked after)
 *   E = exp(S - rowmax), sums    (in place: pass 1)
 *   P = E / sum, or for a transition row its re-weighted row (pass 2, in place) */
static void prob_tile(const tr_tensor *dst, int64_t h, int64_t col, int64_t t0, int64_t rows, int64_t kmax, float *e)
{
    const tr_tensor *q = dst->src[0], *k = dst->src[1];
    const tr_attn_params *ap = &dst->p.attn;
    int lq = (int)(q->nb[2] / sizeof(float)), lk = (int)(k->nb[1] / sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)kmax, (int)q->ne[0], ap->scale,
                tr_at(q, 0, h, t0), lq, tr_at(k, col, 0, 0), lk, 0.0f, e, (int)kmax);
    for (int64_t r = 0; r < rows; r++) {
        float *er = e + r * kmax;
        int64_t n_keys = ap->n_past + t0 + r + 1;
        float sum = exp_row(er, n_keys);
        for (int64_t c = n_keys; c < kmax; c++) /* causal mask */
            er[c] = 0;
        int32_t block = tr_transition_row_block(ap, ap->n_past + t0 + r);
        if (block >= 0) {
            transition_weights(ap, block, er, sum, n_keys);
        } else {
            float inv = 1.0f / sum;
            for (int64_t c = 0; c < n_keys; c++)
                er[c] *= inv;
        }
    }
}

/* One task: query head h (a head pair for differential attention), query rows [t0, t1).
 *   plain:  O = P V                                   (one sgemm, straight into the output rows)
 *   DIFF:   W = P_j - lambda P_{j+H/2}                (the pair's two tiles, combined in place)
 *           O = [W V_a, W V_b], then each row's 2 hd values scaled by out_scale / rms (design §4) */
static void attn_task(void *arg, int task, int thread)
{
    attn_job *j = arg;
    tr_tensor *dst = j->dst;
    const tr_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    const tr_attn_params *ap = &dst->p.attn;
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[0] / hd, rep = H / Hkv;
    int64_t h = task / j->row_blocks, t0 = (task % j->row_blocks) * ROWS_PER_TASK;
    int64_t t1 = t0 + ROWS_PER_TASK < T ? t0 + ROWS_PER_TASK : T, rows = t1 - t0;
    int64_t kmax = ap->n_past + t1;
    float *e = j->st->scratch + (size_t)thread * j->st->scratch_per_thread; /* rows x kmax (x 2 for DIFF) */
    int lk = (int)(k->nb[1] / sizeof(float)), lo = (int)(dst->nb[1] / sizeof(float));
    if (ap->variant != TR_ATTN_DIFF) {
        int64_t col = (h / rep) * hd;
        prob_tile(dst, h, col, t0, rows, kmax, e);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)kmax, 1.0f, e, (int)kmax,
                    tr_at(v, col, 0, 0), lk, 0.0f, tr_at(dst, h * hd, t0, 0), lo);
        return;
    }
    int64_t a = (h / rep) * hd, b = ((h + H / 2) / rep) * hd, n = rows * kmax;
    float *eb = e + n, lambda = ap->diff.lambda;
    prob_tile(dst, h, a, t0, rows, kmax, e);
    prob_tile(dst, h + H / 2, b, t0, rows, kmax, eb);
    for (int64_t i = 0; i < n; i++)
        e[i] -= lambda * eb[i];
    float *out = tr_at(dst, 2 * hd * h, t0, 0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)kmax, 1.0f, e, (int)kmax,
                tr_at(v, a, 0, 0), lk, 0.0f, out, lo);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)kmax, 1.0f, e, (int)kmax,
                tr_at(v, b, 0, 0), lk, 0.0f, out + hd, lo);
    for (int64_t r = 0; r < rows; r++) {
        float *y = out + r * lo, ss = 0;
        for (int64_t i = 0; i < 2 * hd; i++)
            ss += y[i] * y[i];
        float scale = ap->diff.out_scale / sqrtf(ss / (float)(2 * hd) + ap->diff.eps);
        for (int64_t i = 0; i < 2 * hd; i++)
            y[i] *= scale;
    }
}

/* One tile of score rows per thread. */
size_t tr_attention_scratch_floats(const tr_tensor *dst)
{
    return (dst->p.attn.variant == TR_ATTN_DIFF ? 2 : 1) * (size_t)ROWS_PER_TASK * (size_t)dst->p.attn.n_kv;
}

void attention_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    int64_t H = dst->src[0]->ne[1], T = dst->src[0]->ne[2];
    attn_job j = {st, dst, (T + ROWS_PER_TASK - 1) / ROWS_PER_TASK};
    /* every task calls sgemm on its own small tile: OpenBLAS must not start threads of its own */
    openblas_set_num_threads(1);
    int64_t heads = dst->p.attn.variant == TR_ATTN_DIFF ? H / 2 : H; /* DIFF: one task per head pair */
    tr_pool_run(st->pool, (int)(heads * j.row_blocks), attn_task, &j);
    openblas_set_num_threads(st->n_threads);
}
