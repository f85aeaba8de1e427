/* attention_fast.c: the CPU fast path of the fused ATTENTION op.
 *
 * Work is split into tasks of (query head, block of query rows), handed to the pool; causal rows
 * grow longer towards the end, so tasks are small and taken dynamically. Each row computes its
 * scores into the thread's scratch (n_kv floats: O(n) memory, never the n x n matrix), takes the
 * softmax, and accumulates the weighted values.
 *
 * Attention Transition rows (design §3) take a second pass over the stored scores and the values:
 * the weights are only known once the row's max and normaliser are, so pass 1 finds them and
 * pass 2 applies elimination and halving while accumulating sum(kept), sum_P(m), sum(kept v) and
 * the marked value sums of the two blocks before the row's block. Nothing n x n is ever held. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "transition.h"

#define ROWS_PER_TASK 8

typedef struct {
    tr_cpu_state *st;
    tr_tensor *dst;
    int64_t row_blocks;
} attn_job;

static float dot(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0}, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        s += a[i] * b[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

/* Pass 1 of a row: scores[c] = exp(scale * q.k[c] - max) for c < n_keys; returns their sum. */
static float row_exp_scores(const float *q, const tr_tensor *k, int64_t col, int64_t hd, int64_t n_keys, float scale,
                            float *scores)
{
    float mx = -INFINITY;
    for (int64_t c = 0; c < n_keys; c++) {
        float s = scale * dot(q, (const float *)tr_at(k, col, c, 0), hd);
        scores[c] = s;
        mx = s > mx ? s : mx;
    }
    float sum = 0;
    for (int64_t c = 0; c < n_keys; c++)
        sum += scores[c] = expf(scores[c] - mx);
    return sum;
}

/* axpy: y += a x */
static void axpy(float *y, float a, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* A plain row: out = sum_c (e[c] / sum) v[c]. */
static void row_plain(const tr_tensor *v, int64_t col, int64_t hd, int64_t n_keys, const float *e, float sum,
                      float *out)
{
    float inv = 1.0f / sum;
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int64_t c = 0; c < n_keys; c++)
        axpy(out, e[c] * inv, tr_at(v, col, c, 0), hd);
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

static void attn_task(void *arg, int task, int thread)
{
    attn_job *j = arg;
    tr_tensor *dst = j->dst;
    const tr_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    const tr_attn_params *ap = &dst->p.attn;
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[0] / hd;
    int64_t h = task / j->row_blocks, t0 = (task % j->row_blocks) * ROWS_PER_TASK;
    int64_t t1 = t0 + ROWS_PER_TASK < T ? t0 + ROWS_PER_TASK : T;
    int64_t col = (h / (H / Hkv)) * hd;
    float *scores = j->st->scratch + (size_t)thread * j->st->scratch_per_thread;
    for (int64_t t = t0; t < t1; t++) {
        int64_t pos = ap->n_past + t;
        float *out = tr_at(dst, h * hd, t, 0);
        float sum = row_exp_scores(tr_at(q, 0, h, t), k, col, hd, pos + 1, ap->scale, scores);
        int32_t block = tr_transition_row_block(ap, pos);
        if (block < 0)
            row_plain(v, col, hd, pos + 1, scores, sum, out);
        else
            row_transition(ap, block, v, col, hd, pos + 1, scores, sum, scores + ap->n_kv, out);
    }
}

/* Scores of one row, plus three value accumulators for transition rows. */
size_t tr_attention_scratch_floats(const tr_tensor *dst)
{
    return (size_t)dst->p.attn.n_kv + 3 * (size_t)dst->src[0]->ne[0];
}

void attention_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    int64_t H = dst->src[0]->ne[1], T = dst->src[0]->ne[2];
    attn_job j = {st, dst, (T + ROWS_PER_TASK - 1) / ROWS_PER_TASK};
    tr_pool_run(st->pool, (int)(H * j.row_blocks), attn_task, &j);
}
