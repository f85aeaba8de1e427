/* kernels_norm.c: RMSNorm on the CPU's fast path.
 *
 * The reference sums each row's squares in double, one element at a time; here in float, eight
 * lanes and four chains (a row of 8192 values sums with a relative error near 1e-6 at worst, far
 * inside the norms' bound of 1e-7 NMSE on the output, design §6), and prefill's rows are spread over
 * the pool. The scale is formed in double from that sum, as the reference forms it. */
#include <math.h>

#include "kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "simd.h"

#define NORM_BLOCK 16384 /* values per task: a few tasks per thread in prefill, one in decode */

static float sum_squares(const float *x, int64_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float s = tr_hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++)
        s += x[i] * x[i];
    return s;
}

typedef struct {
    tr_tensor *dst;
    int64_t rows; /* per task */
} norm_job;

static void norm_task(void *arg, int task, int thread)
{
    (void)thread;
    norm_job *j = arg;
    const tr_tensor *x = j->dst->src[0];
    const float *w = j->dst->src[1]->data;
    int64_t D = x->ne[0], n = x->ne[1] * x->ne[2];
    int64_t r0 = (int64_t)task * j->rows, r1 = r0 + j->rows < n ? r0 + j->rows : n;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = tr_at(x, 0, r, 0);
        float *out = tr_at(j->dst, 0, r, 0);
        __m256 inv = _mm256_set1_ps((float)(1.0 / sqrt((double)sum_squares(xr, D) / (double)D + j->dst->p.eps)));
        int64_t i = 0;
        for (; i + 8 <= D; i += 8)
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), inv), _mm256_loadu_ps(w + i)));
        for (; i < D; i++)
            out[i] = xr[i] * _mm256_cvtss_f32(inv) * w[i];
    }
}

void rms_norm_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    int rows_contiguous = x->nb[0] == sizeof(float) && x->nb[2] == (size_t)x->ne[1] * x->nb[1] &&
                          dst->nb[2] == (size_t)dst->ne[1] * dst->nb[1];
    if (w->dtype != TR_F32 || !tr_is_contiguous(w) || !rows_contiguous) {
        rms_norm_f32_ref(dst); /* (no model makes these) */
        return;
    }
    int64_t n = x->ne[1] * x->ne[2], rows = NORM_BLOCK / (x->ne[0] > 0 ? x->ne[0] : 1);
    norm_job j = {dst, rows < 1 ? 1 : rows};
    tr_pool_run(st->pool, (int)((n + j.rows - 1) / j.rows), norm_task, &j); /* (decode's one task: run here) */
}
#else
void rms_norm_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    (void)st;
    rms_norm_f32_ref(dst);
}
#endif
