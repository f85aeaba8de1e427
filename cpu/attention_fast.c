/* attention_fast.c: the CPU fast path of the fused ATTENTION op.
 *
 * Work is split into tasks of (query head, tile of 32 query rows), taken dynamically from the pool
 * (causal rows grow longer towards the end). A task computes its tile's scores and weighted values
 * with two single-threaded sgemm calls, so the inner loops run at BLAS speed; its scratch is one
 * tile of score rows, 32 x n_kv floats per thread: O(n) memory, never the n x n matrix.
 *
 * Attention Transition rows (design §3) take a second pass over the stored scores and the values:
 * the weights are only known once the row's max and normaliser are, so pass 1 finds them and
 * pass 2 applies elimination and halving while accumulating sum(kept), sum_P(m), sum(kept v) and
 * the marked value sums of the two blocks before the row's block. Nothing n x n is ever held. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "transition.h"

#define ROWS_PER_TASK 32 /* query rows per task: the sgemm tile height */

typedef struct {
    tr_cpu_state *st;
    tr_tensor *dst;
    int64_t row_blocks;
} attn_job;

/* axpy: y += a x */
static void axpy(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* Pass 2 of a transition row (design §3), from e[c] = exp(s[c] - max) and their sum: weights,
 * elimination and halving, while accumulating sum(kept), sum_P(m), sum(kept v) and the marked value
 * sums of blocks -1 and -2. acc needs 3 * hd floats. */
static void row_transition(const tr_attn_params *ap, int64_t start, const tr_tensor *v, int64_t col, int64_t hd,
                           int64_t n_keys, const float *e, float sum, float *acc, float *out)
{
    int64_t iv = ap->transition.iv, end = start + iv;
    int64_t b1 = start - iv, b2 = start - 2 * iv; /* P = [b2, start) = block -2 then block -1 */
    float t = ap->transition.alpha / (float)end, inv = 1.0f / sum, kept = 0, m_sum = 0;
    float *acc_kept = acc, *acc_b1 = acc + hd, *acc_b2 = acc + 2 * hd;
    memset(acc, 0, (size_t)(3 * hd) * sizeof *acc);
    for (int64_t c = 0; c < n_keys; c++) {
        float p = e[c] * inv;
        if (p < t)
            p = 0;
        if (c == 0)
            p *= 0.5f;
        const float *vr = tr_at(v, col, c, 0);
        if (p != 0) {
            kept += p;
            axpy(acc_kept, p, vr, hd);
        }
        if (c >= b2 && c < start) {
            float m = p >= t ? 1.0f : 0.01f;
            m_sum += m;
            axpy(c >= b1 ? acc_b1 : acc_b2, m, vr, hd);
        }
    }
    float removed = 1.0f - kept;
    if (ap->transition.strategy == TR_TRANSITION_MULTI) {
        float scale = kept > 0 ? 1.0f + removed / kept : 0.0f;
        for (int64_t i = 0; i < hd; i++)
            out[i] = acc_kept[i] * scale;
        return;
    }
    float share = ap->transition.beta * removed / m_sum;
    for (int64_t i = 0; i < hd; i++)
        out[i] = acc_kept[i] + share * (7.0f * acc_b1[i] + 3.0f * acc_b2[i]);
}

/* One task: query head h, query rows [t0, t1). Keys 0 .. kmax-1 are the ones the last row sees.
 *   S = scale * Q K^T            (rows x kmax, one sgemm; the causal corner is masked after)
 *   E = exp(S - rowmax), sums    (in place)
 *   O = (E / sum) V              (one sgemm, written straight into the output rows)
 * then transition rows are recomputed from their E row by the two-pass epilogue. */
static void attn_task(void *arg, int task, int thread)
{
    attn_job *j = arg;
    tr_tensor *dst = j->dst;
    const tr_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    const tr_attn_params *ap = &dst->p.attn;
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[0] / hd;
    int64_t h = task / j->row_blocks, t0 = (task % j->row_blocks) * ROWS_PER_TASK;
    int64_t t1 = t0 + ROWS_PER_TASK < T ? t0 + ROWS_PER_TASK : T, rows = t1 - t0;
    int64_t col = (h / (H / Hkv)) * hd, kmax = ap->n_past + t1;
    float *e = j->st->scratch + (size_t)thread * j->st->scratch_per_thread; /* rows x kmax */
    float *acc = e + (size_t)ROWS_PER_TASK * (size_t)ap->n_kv;
    int lq = (int)(q->nb[2] / sizeof(float)), lk = (int)(k->nb[1] / sizeof(float)), lo = (int)(dst->nb[1] / sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)kmax, (int)hd, ap->scale,
                tr_at(q, 0, h, t0), lq, tr_at(k, col, 0, 0), lk, 0.0f, e, (int)kmax);
    float sums[ROWS_PER_TASK];
    for (int64_t r = 0; r < rows; r++) {
        float *er = e + r * kmax, mx = -INFINITY, sum = 0;
        int64_t n_keys = ap->n_past + t0 + r + 1;
        for (int64_t c = 0; c < n_keys; c++)
            mx = er[c] > mx ? er[c] : mx;
        for (int64_t c = 0; c < n_keys; c++)
            sum += er[c] = expf(er[c] - mx);
        for (int64_t c = n_keys; c < kmax; c++) /* causal mask */
            er[c] = 0;
        sums[r] = sum;
        if (tr_transition_row_block(ap, ap->n_past + t0 + r) < 0)
            for (int64_t c = 0; c < n_keys; c++)
                er[c] /= sum;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)hd, (int)kmax, 1.0f, e, (int)kmax,
                tr_at(v, col, 0, 0), lk, 0.0f, tr_at(dst, h * hd, t0, 0), lo);
    for (int64_t r = 0; ap->variant == TR_ATTN_TRANSITION && r < rows; r++) {
        int64_t pos = ap->n_past + t0 + r;
        int32_t block = tr_transition_row_block(ap, pos);
        if (block >= 0)
            row_transition(ap, block, v, col, hd, pos + 1, e + r * kmax, sums[r], acc, tr_at(dst, h * hd, t0 + r, 0));
    }
}

/* Rows of scores per thread, plus three value accumulators for transition rows. */
size_t tr_attention_scratch_floats(const tr_tensor *dst)
{
    return (size_t)ROWS_PER_TASK * (size_t)dst->p.attn.n_kv + 3 * (size_t)dst->src[0]->ne[0];
}

void attention_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    int64_t H = dst->src[0]->ne[1], T = dst->src[0]->ne[2];
    attn_job j = {st, dst, (T + ROWS_PER_TASK - 1) / ROWS_PER_TASK};
    /* every task calls sgemm on its own small tile: OpenBLAS must not start threads of its own */
    openblas_set_num_threads(1);
    tr_pool_run(st->pool, (int)(H * j.row_blocks), attn_task, &j);
    openblas_set_num_threads(st->n_threads);
}
