/* attention_fast.c: the CPU fast path of the fused ATTENTION op.
 *
 * Work is split into tasks of (query head, block of query rows), handed to the pool; causal rows
 * grow longer towards the end, so tasks are small and taken dynamically. Each row computes its
 * scores into the thread's scratch (n_kv floats: O(n) memory, never the n x n matrix), takes the
 * softmax, and accumulates the weighted values. */
#include <math.h>
#include <string.h>

#include "kernels.h"

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

/* One query row of one head: out = softmax(scale * q.K^T) V over keys 0..n_keys-1. */
static void attend_row(const float *q, const tr_tensor *k, const tr_tensor *v, int64_t col, int64_t hd,
                       int64_t n_keys, float scale, float *scores, float *out)
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
    float inv = 1.0f / sum;
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int64_t c = 0; c < n_keys; c++) {
        const float *vr = tr_at(v, col, c, 0);
        float pc = scores[c] * inv;
        for (int64_t i = 0; i < hd; i++)
            out[i] += pc * vr[i];
    }
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
    for (int64_t t = t0; t < t1; t++)
        attend_row(tr_at(q, 0, h, t), k, v, col, hd, ap->n_past + t + 1, ap->scale, scores,
                   tr_at(dst, h * hd, t, 0));
}

size_t tr_attention_scratch_floats(const tr_tensor *dst) { return (size_t)dst->p.attn.n_kv; }

void attention_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    int64_t H = dst->src[0]->ne[1], T = dst->src[0]->ne[2];
    attn_job j = {st, dst, (T + ROWS_PER_TASK - 1) / ROWS_PER_TASK};
    tr_pool_run(st->pool, (int)(H * j.row_blocks), attn_task, &j);
}
