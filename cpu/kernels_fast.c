/* kernels_fast.c: the CPU fast path for matrix products.
 *
 * Prefill (many tokens): OpenBLAS sgemm. f16/bf16 and quantized weights are converted to f32 one
 * panel of rows at a time (up to 16 MB of floats per call, in the backend's scratch), so no f32 copy
 * of the model is ever held: the memory cost is one panel.
 * Decode (a few tokens): a threaded matrix-vector product over rows of W that reads each weight
 * once, converting f16/bf16 on the fly in registers. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "half.h"
#include "kernels.h"
#include "simd.h"
#include "qdot.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define TR_HAVE_AVX2 1
#endif

#define PANEL_FLOATS ((int64_t)4 << 20) /* 16 MB of converted rows per sgemm call, at least 128 rows */
#define GEMV_MAX_TOKENS 4 /* below this many tokens, stream W once per token batch */
#define CONVERT_TASKS 8

#if TR_HAVE_AVX2
static inline __m256 load8(const void *w, tr_dtype dt, int64_t i)
{
    switch (dt) {
    case TR_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    case TR_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))), 16));
    default:
        return _mm256_loadu_ps((const float *)w + i);
    }
}
#endif

#if !defined(__AVX512F__) /* (with AVX-512: the dot_row below) */
/* sum_k x[k] * w[k] for a weight row of any float dtype. */
static float dot_row(const float *x, const void *w, tr_dtype dt, int64_t K)
{
    int64_t k = 0;
    float sum = 0;
#if TR_HAVE_AVX2
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), load8(w, dt, k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), load8(w, dt, k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 16), load8(w, dt, k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 24), load8(w, dt, k + 24), a3);
    }
    for (; k + 8 <= K; k += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), load8(w, dt, k), a0);
    sum = tr_hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#else
    /* 16 sums the compiler keeps in vector registers (SSE on x86-64-v2) */
    float acc[16] = {0};
    if (dt == TR_F32) {
        const float *wf = w;
        for (; k + 16 <= K; k += 16)
            for (int j = 0; j < 16; j++)
                acc[j] += x[k + j] * wf[k + j];
    } else if (dt == TR_F16) {
        const uint16_t *wh = w;
        for (; k + 16 <= K; k += 16)
            for (int j = 0; j < 16; j++)
                acc[j] += x[k + j] * tr_f16_to_f32_nobranch(wh[k + j]);
    } else if (dt == TR_BF16) {
        const uint16_t *wh = w;
        for (; k + 16 <= K; k += 16)
            for (int j = 0; j < 16; j++)
                acc[j] += x[k + j] * tr_bf16_to_f32(wh[k + j]);
    }
    for (int j = 0; j < 16; j++)
        sum += acc[j];
#endif
    if (k < K) {
        float tail[32];
        while (k < K) {
            int64_t m = K - k < 32 ? K - k : 32;
            tr_row_to_f32((const char *)w + k * (int64_t)tr_dtype_size(dt), dt, tail, m);
            for (int64_t j = 0; j < m; j++)
                sum += x[k + j] * tail[j];
            k += m;
        }
    }
    return sum;
}
#endif

#if defined(__AVX512F__)
/* One row at a time with 16-wide AVX-512 loads and four accumulator chains. Rows are taken in order,
 * so each thread reads one sequential stream: on this machine that decoded TinyLlama f16 at 13.4-14.1
 * t/s (2 threads) where four rows interleaved (x loaded once for four rows) gave 12.6-12.8, the
 * hardware prefetcher following one stream better than four 4 KB ones. One function per weight
 * dtype, so the conversion is not re-decided in the loop. */
#define LOAD_F32(p, k) _mm512_loadu_ps((const float *)(p) + (k))
#define LOAD_F16(p, k) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)(p) + (k))))
#define LOAD_BF16(p, k)                                                                                    \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                                \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)(p) + (k)))), 16))
#define DEFINE_DOT512(NAME, LOAD)                                                                          \
    static int64_t NAME(const float *x, const void *w, int64_t K, float *out)                             \
    {                                                                                                      \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                        \
        int64_t k = 0;                                                                                     \
        for (; k + 64 <= K; k += 64) {                                                                     \
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), LOAD(w, k), a0);                                  \
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), LOAD(w, k + 16), a1);                        \
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), LOAD(w, k + 32), a2);                        \
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), LOAD(w, k + 48), a3);                        \
        }                                                                                                  \
        for (; k + 16 <= K; k += 16)                                                                       \
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), LOAD(w, k), a0);                                  \
        *out = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));          \
        return k; /* elements done; the caller finishes the tail */                                        \
    }
DEFINE_DOT512(dot512_f32, LOAD_F32)
DEFINE_DOT512(dot512_f16, LOAD_F16)
DEFINE_DOT512(dot512_bf16, LOAD_BF16)

/* x . w for one row; the K % 16 tail is converted element by element. */
static float dot_row(const float *x, const void *w, tr_dtype dt, int64_t K)
{
    float out;
    int64_t k = dt == TR_F16 ? dot512_f16(x, w, K, &out) : dt == TR_BF16 ? dot512_bf16(x, w, K, &out)
                                                                       : dot512_f32(x, w, K, &out);
    if (k < K) {
        float tail[16];
        tr_row_to_f32((const char *)w + k * (int64_t)tr_dtype_size(dt), dt, tail, K - k);
        for (int64_t i = 0; i < K - k; i++)
            out += x[k + i] * tail[i];
    }
    return out;
}
#endif

typedef struct {
    tr_tensor *dst;
    const tr_tensor *x, *w;
    int64_t rows; /* per task */
} gemv_job;

static void gemv_task(void *arg, int task, int thread)
{
    gemv_job *j = arg;
    int64_t K = j->x->ne[0], N = j->w->ne[1], T = j->x->ne[1];
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < N ? n0 + j->rows : N;
    for (int64_t n = n0; n < n1; n++) {
        const void *row = tr_at(j->w, 0, n, 0);
        for (int64_t t = 0; t < T; t++)
            ((float *)tr_at(j->dst, 0, t, 0))[n] = dot_row(tr_at(j->x, 0, t, 0), row, j->w->dtype, K);
    }
}

typedef struct {
    const tr_tensor *w;
    float *panel;
    int64_t n0, rows;
} convert_job;

static void convert_task(void *arg, int task, int thread)
{
    convert_job *j = arg;
    int64_t K = j->w->ne[0];
    for (int64_t r = task; r < j->rows; r += CONVERT_TASKS)
        tr_row_to_f32(tr_at(j->w, 0, j->n0 + r, 0), j->w->dtype, j->panel + r * K, K);
}

/* Rows of W converted per sgemm call. Each call packs all of x again (T x K floats: 4 MB for 512
 * tokens of 2048), so few, tall panels: 128-row panels made TinyLlama's f16 prefill half as fast as
 * its f32 one. */
static int64_t panel_rows_of(int64_t K, int64_t N)
{
    int64_t rows = PANEL_FLOATS / (K > 0 ? K : 1);
    rows = rows < 128 ? 128 : rows;
    return rows < N ? rows : N;
}

/* How a product runs, decided once for the kernel, its panel and its per-thread scratch:
 * kernels_quant_gemm.c's tokens-in-lanes GEMM for quantized prefill (AVX-512 VNNI); kernels_quant.c's
 * integer dot products (decode, or prefill with an AVX-512 tile kernel); kernels_float_gemm.c for float
 * weights on AVX-512; else the float GEMV for decode and sgemm on float panels for prefill. */
typedef enum { PATH_QGEMM, PATH_QUANT, PATH_FLOAT_GEMM, PATH_GEMV, PATH_SGEMM } matmul_path;

static matmul_path path_of(const tr_tensor *dst)
{
    tr_dtype t = dst->src[1]->dtype;
    int64_t T = dst->src[0]->ne[1];
#if TR_QGEMM
    if (T >= TR_QGEMV_MAX_TOKENS && tr_qgemm_supports(t))
        return PATH_QGEMM;
#endif
    if (tr_dtype_is_quant(t) && (T < TR_QGEMV_MAX_TOKENS || tr_quant_tiled(t)))
        return PATH_QUANT;
#if defined(__AVX512F__)
    if (tr_float_gemm_supports(dst))
        return PATH_FLOAT_GEMM;
#endif
    /* 16-bit rows below the float GEMM's size: converting the whole matrix for sgemm would cost more
     * than the products (several sequences decoded together give such batches: 4 tokens of TinyLlama
     * f16 took 4x longer than 1); the GEMV reads each row once and keeps it in L1 for every token */
    if (T < GEMV_MAX_TOKENS || (t != TR_F32 && T < TR_FLOAT_GEMM_MIN_TOKENS))
        return PATH_GEMV;
    return PATH_SGEMM;
}

size_t tr_matmul_thread_floats(const tr_tensor *dst, int n_threads)
{
    switch (path_of(dst)) {
#if TR_QGEMM
    case PATH_QGEMM: return tr_qgemm_thread_floats(dst, n_threads);
#endif
#if defined(__AVX512F__)
    case PATH_FLOAT_GEMM: return tr_float_gemm_thread_floats(dst, n_threads);
#endif
    default: return 0;
    }
}

void matmul_fast(tr_cpu_state *st, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    int64_t K = x->ne[0], N = w->ne[1], T = x->ne[1];
    switch (path_of(dst)) {
#if TR_QGEMM
    case PATH_QGEMM:
        tr_qgemm(st, dst, st->panel);
        return;
#endif
    case PATH_QUANT:
        matmul_quant(st, dst, st->panel);
        return;
#if defined(__AVX512F__)
    case PATH_FLOAT_GEMM:
        tr_float_gemm(st, dst, st->panel);
        return;
#endif
    case PATH_GEMV: {
        gemv_job j = {dst, x, w, tr_gemv_rows_per_task(N, st->n_threads)};
        tr_pool_run(st->pool, (int)((N + j.rows - 1) / j.rows), gemv_task, &j);
        return;
    }
    default:
        break; /* PATH_SGEMM */
    }
    /* out {N, T} row-major is T x N; X is T x K; W is N x K: out = X * W^T */
    if (w->dtype == TR_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)N, (int)K, 1.0f, x->data, (int)K,
                    w->data, (int)K, 0.0f, dst->data, (int)N);
        return;
    }
    float *panel = st->panel; /* reserved by the backend: tr_matmul_panel_floats() */
    const int64_t panel_rows = panel_rows_of(K, N);
    for (int64_t n0 = 0; n0 < N; n0 += panel_rows) {
        int64_t rows = N - n0 < panel_rows ? N - n0 : panel_rows;
        convert_job cj = {w, panel, n0, rows};
        tr_pool_run(st->pool, CONVERT_TASKS, convert_task, &cj);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)rows, (int)K, 1.0f, x->data, (int)K,
                    panel, (int)K, 0.0f, (float *)dst->data + n0, (int)N);
    }
}

size_t tr_matmul_panel_floats(const tr_tensor *dst)
{
    const tr_tensor *w = dst->src[1];
    switch (path_of(dst)) {
#if TR_QGEMM
    case PATH_QGEMM: return tr_qgemm_space_floats(dst); /* the activations' panels */
#endif
    case PATH_QUANT: return tr_matmul_quant_scratch_floats(dst); /* the rounded activations */
#if defined(__AVX512F__)
    case PATH_FLOAT_GEMM: return tr_float_gemm_space_floats(dst);
#endif
    case PATH_SGEMM: return w->dtype == TR_F32 ? 0 : (size_t)panel_rows_of(w->ne[0], w->ne[1]) * (size_t)w->ne[0];
    default: return 0; /* the GEMV needs none */
    }
}

/* RoPE: the angles of a token are the same for every head, so cos and sin are computed once per
 * (token, pair) in double and applied to all heads, instead of once per element; the inverse
 * frequencies theta^(-2i/hd) depend only on the pair, so they are computed once per call. */
void rope_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *pos = dst->src[1];
    int64_t hd = x->ne[0], half = hd / 2, H = x->ne[1];
    int adjacent = dst->p.rope.layout == TR_ROPE_ADJACENT;
    /* thread 0's scratch: cos[half], sin[half] as floats, then inv_freq[half] as doubles (hd floats
     * in, so 8-byte aligned since hd is even) */
    if (!tr_cpu_scratch_reserve(st, (size_t)(2 * hd))) {
        rope_f32_ref(dst);
        return;
    }
    float *cs = st->scratch;
    double *inv_freq = (double *)(st->scratch + hd);
    const float *factors = dst->src[2] ? dst->src[2]->data : NULL;
    for (int64_t i = 0; i < half; i++)
        inv_freq[i] = (double)dst->p.rope.freq_scale * pow((double)dst->p.rope.theta, -2.0 * (double)i / (double)hd) /
                      (factors ? (double)factors[i] : 1.0);
    for (int64_t t = 0; t < x->ne[2]; t++) {
        double p = *(int32_t *)tr_at(pos, t, 0, 0);
        for (int64_t i = 0; i < half; i++) {
            double angle = p * inv_freq[i];
            cs[i] = (float)cos(angle);
            cs[half + i] = (float)sin(angle);
        }
        for (int64_t h = 0; h < H; h++) {
            const float *in = tr_at(x, 0, h, t);
            float *out = tr_at(dst, 0, h, t);
            for (int64_t i = 0; i < half; i++) {
                int64_t ia = adjacent ? 2 * i : i, ib = adjacent ? 2 * i + 1 : i + half;
                float a = in[ia], b = in[ib];
                out[ia] = a * cs[i] - b * cs[half + i];
                out[ib] = a * cs[half + i] + b * cs[i];
            }
        }
    }
}

/* GLU in float, threaded over blocks of elements (both operands contiguous: ir.c made them so).
 * gelu_tanh is written as g / (1 + exp(-2u)), the same function as g/2 (1 + tanh u) without tanh. */
#define GLU_BLOCK 4096

static void glu_task(void *arg, int task, int thread)
{
    (void)thread;
    tr_tensor *dst = arg;
    const float *g = dst->src[0]->data, *u = dst->src[1]->data;
    float *out = dst->data;
    int64_t n = tr_nelements(dst), i0 = (int64_t)task * GLU_BLOCK, i1 = i0 + GLU_BLOCK < n ? i0 + GLU_BLOCK : n;
    switch (dst->p.act) {
    case TR_ACT_GELU:
        for (int64_t i = i0; i < i1; i++)
            out[i] = 0.5f * g[i] * (1.0f + erff(g[i] * 0.70710678118654752f)) * u[i];
        break;
    case TR_ACT_GELU_TANH:
        for (int64_t i = i0; i < i1; i++) {
            float x = g[i], t = 0.79788456080286536f * (x + 0.044715f * x * x * x);
            out[i] = x / (1.0f + expf(-2.0f * t)) * u[i];
        }
        break;
    default: { /* silu, 8 at a time (tr_exp256) */
        int64_t i = i0;
#if TR_HAVE_AVX2
        const __m256 one = _mm256_set1_ps(1.0f);
        for (; i + 8 <= i1; i += 8) {
            __m256 gv = _mm256_loadu_ps(g + i);
            __m256 den = _mm256_add_ps(one, tr_exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + i)));
        }
#endif
        for (; i < i1; i++)
            out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
    }
}

void glu_f32_fast(tr_cpu_state *st, tr_tensor *dst)
{
    if (!tr_is_contiguous(dst->src[0]) || !tr_is_contiguous(dst->src[1])) {
        glu_f32_ref(dst);
        return;
    }
    tr_pool_run(st->pool, (int)((tr_nelements(dst) + GLU_BLOCK - 1) / GLU_BLOCK), glu_task, dst);
}
