/* cuda_kernels.h: the line between the CUDA backend's C host code (cuda_backend.c, cuda_lower.c)
 * and its kernels (*.cu). Only plain structs of device pointers and sizes cross it; no IR type
 * does. Every launcher enqueues on the given stream and returns the launch's error (or, for the
 * cuBLAS product, its status); none synchronises.
 *
 * Layouts are the IR's (core/ir.h): a {D, T} activation is T rows of D floats; a weight {K, N} is N
 * rows of K elements; caches are rows of kv_rs floats. Values that change from one decoding step to
 * the next (n_past, a KV write's first row, the first row of a moving view of a cache) are read by
 * the kernels from device memory (`dyn` pointers), so that a captured CUDA graph can be replayed for
 * every step (cuda_lower.c). */
#ifndef TR_CUDA_KERNELS_H
#define TR_CUDA_KERNELS_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as tr_dtype (core/dtype.h); the quantized ones are ggml's blocks
 * (core/quant.h), decoded on the device by quant.cuh. */
enum {
    TRC_F32 = 0, TRC_F16 = 1, TRC_BF16 = 2,
    TRC_Q8_0 = 4, TRC_Q4_0 = 5, TRC_Q4_1 = 6, TRC_Q5_0 = 7, TRC_Q5_1 = 8, TRC_Q4_K = 9, TRC_Q5_K = 10, TRC_Q6_K = 11
};

/* out[t] = table[ids[t]] (zeros for an id outside 0..V-1). */
typedef struct trc_get_rows_args {
    const void *table;
    int dtype;
    const int32_t *ids;
    float *out;
    int64_t D, V, T;
} trc_get_rows_args;
cudaError_t trc_get_rows(const trc_get_rows_args *a, cudaStream_t s);

/* out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, for each of rows rows of D floats. */
typedef struct trc_rms_norm_args {
    const float *x;
    const void *w;
    int w_dtype;
    float *out;
    int64_t D, rows;
    float eps;
} trc_rms_norm_args;
cudaError_t trc_rms_norm(const trc_rms_norm_args *a, cudaStream_t s);

/* GLU activations, numbered as tr_activation (core/model_file.h): silu, exact (erf) gelu, tanh gelu. */
enum { TRC_ACT_SILU = 0, TRC_ACT_GELU = 1, TRC_ACT_GELU_TANH = 2 };

/* Element-wise: ADD out = x + y, MUL out = x * y (y of y_n elements repeats when y_n < n);
 * trc_glu: out = act(x) * y (op and y_n unused). */
enum { TRC_ADD = 0, TRC_MUL = 1 };
typedef struct trc_binary_args {
    int op;
    int act; /* trc_glu: TRC_ACT_* */
    const float *x, *y;
    float *out;
    int64_t n, y_n;
} trc_binary_args;
cudaError_t trc_binary(const trc_binary_args *a, cudaStream_t s);
cudaError_t trc_glu(const trc_binary_args *a, cudaStream_t s);

/* RoPE of up to two tensors {hd, H_i, T} at the same positions (q and k of one layer). x[i] starts
 * at row *x_row0[i] (device; NULL: 0) of rows of H_i * hd floats: a moving view of cache rows. */
typedef struct trc_rope_args {
    int n;
    const float *x[2];
    const int32_t *x_row0[2];
    float *out[2];
    int64_t H[2];
    const int32_t *pos; /* device, [T] */
    const float *factors; /* device, [hd/2] frequency divisors (llama3 scaling); NULL: none */
    int64_t hd, T;
    float theta;
    float freq_scale; /* angles times this (linear scaling); 1: none */
    int layout;       /* tr_rope_layout: 0 adjacent pairs, 1 halves */
} trc_rope_args;
cudaError_t trc_rope(const trc_rope_args *a, cudaStream_t s);

/* KV_WRITE of up to two caches (k and v of one layer): rows [*pos0, *pos0 + T) of cache get src,
 * whose rows start at row *src_row0[i] (device; NULL: 0) of rows of width floats. COPY is the same
 * kernel with the node's own memory as the cache. */
typedef struct trc_kv_write_args {
    int n;
    const float *src[2];
    const int32_t *src_row0[2];
    float *cache[2];
    const int32_t *pos0[2]; /* device */
    int64_t width, T, cache_rs; /* floats per source row, rows, floats per cache row */
} trc_kv_write_args;
cudaError_t trc_kv_write(const trc_kv_write_args *a, cudaStream_t s);

/* Converts n floats to f16 or bf16 (round to nearest even): the activations of a tensor-core GEMM. */
cudaError_t trc_convert(const float *x, void *out, int dtype, int64_t n, cudaStream_t s);

/* Matrix products out[t][n] = sum_k x[t][k] W[n][k] with cuBLAS (prefill). f16/bf16 weights:
 * x is converted to the weight's type in xconv (T*K elements) and multiplied on the tensor cores
 * with f32 accumulation; f32 weights: SGEMM (no TF32); quantized weights: x to f16, and W
 * dequantized to f16 a panel of rows at a time (wconv) for the same tensor-core GEMM. Returns the cuBLAS status, or
 * CUBLAS_STATUS_EXECUTION_FAILED with *launch set when the conversion kernel failed to launch. */
typedef struct trc_gemm_args {
    const float *x;
    const void *w;
    int dtype;
    float *out;
    void *xconv;
    int64_t K, N, T;
    void *wconv;        /* quantized W: panel_rows rows dequantized to f16 at a time */
    int64_t panel_rows;
} trc_gemm_args;
/* Rows [n0, n0 + rows) of a quantized W {K, N} of dtype as f16 values (row-major, K each). */
cudaError_t trc_dequantize_f16(const void *w, int dtype, int64_t K, int64_t n0, int64_t rows, void *out,
                               cudaStream_t s);
cublasStatus_t trc_gemm(const trc_gemm_args *a, cublasHandle_t h, cudaStream_t s, cudaError_t *launch);
/* The cuBLAS call of trc_gemm alone, xconv already filled (what `transit bench` times as the
 * GEMM rate cuBLAS reaches: cuda_measure.c). */
cublasStatus_t trc_gemm_product(const trc_gemm_args *a, cublasHandle_t h, cudaStream_t s);

/* Matrix-vector products for a few tokens (decode), reading each weight row once, f16/bf16
 * converted in registers. One launch computes up to three products of the same x (q, k, v), or
 * one product plus a residual (out = res + x W^T), or the gate and up products of a GLU
 * (out = act(x Wg^T) * x Wu^T). */
enum { TRC_GEMV_PLAIN = 0, TRC_GEMV_ADD = 1, TRC_GEMV_GLU = 2 };
#define TRC_GEMV_MAX_T 4
typedef struct trc_gemv_args {
    const float *x;
    int64_t K;
    int T;     /* 1 .. TRC_GEMV_MAX_T */
    int dtype; /* of every weight */
    int mode;
    int n_mats; /* PLAIN: 1..3; ADD: 1; GLU: 2 (gate, up) */
    int act;    /* GLU: TRC_ACT_* */
    const void *w[3];
    float *out[3];
    int64_t N[3];
    const float *res; /* ADD: {N[0], T} */
    int pdl;          /* launch as a programmatic dependent of the previous kernel (sm_90+) */
    void *xq;         /* quantized weights: x as int8 blocks of 32 (trc_gemv_xq_bytes) */
    int split;        /* warps per row: 1, 2 or 4 (each a slice of K; cuda_lower.c decides) */
} trc_gemv_args;
/* Quantized weights multiply x quantized to int8 per block of 32 values (one scale each, as ggml's
 * q8_1 without its sums): T*K int8, then T*K/32 f32 scales from the 16-byte aligned offset
 * trc_gemv_xd_offset. */
#ifdef __CUDACC__
#define TRC_HOST_DEVICE __host__ __device__
#else
#define TRC_HOST_DEVICE
#endif
static inline TRC_HOST_DEVICE size_t trc_gemv_xd_offset(int64_t T, int64_t K) { return ((size_t)(T * K) + 15) / 16 * 16; }
static inline TRC_HOST_DEVICE size_t trc_gemv_xq_bytes(int64_t T, int64_t K)
{
    return trc_gemv_xd_offset(T, K) + (size_t)(T * (K / 32)) * sizeof(float);
}
cudaError_t trc_gemv(const trc_gemv_args *a, cudaStream_t s);

/* Fused causal attention with GQA over f32 caches (core/ir.h ATTENTION).
 * Query row t (0..T-1) sits at position *n_past + t and sees keys 0 .. *n_past + t.
 *
 * trc_attention_tiled: flash-style, 64 query rows of one head per block (32 rows of a head pair
 *   with diff = 1), online softmax, for hd 64 and 128 (trc_attention_tiled_ok). Plain or
 *   differential rows.
 * trc_attention_rows: one query row of up to 8 heads sharing a kv head per block (8 head pairs with
 *   diff = 1). Plain or differential rows, split over the keys into n_splits parts when
 *   n_splits > 1 (partials in part, combined by trc_attention_reduce); or, with trans = 1, the
 *   Attention Transition's two-pass rows (design §3) listed in ranges, n_splits = 1.
 *
 * Differential attention (diff = 1, design §4): query heads pair as (j, j + H/2); both heads of pair
 * j weigh the 2 hd-wide values [v_a, v_b] (a, b: the kv heads of j and j + H/2) by their own softmax,
 * and out[t][2 hd j ..) = out_scale * y / sqrt(mean(y^2) + eps) with y = O_j - lambda O_{j+H/2}. */
#define TRC_MAX_RANGES 8
typedef struct trc_attn_args {
    const float *q;
    int64_t q_hs, q_ts; /* floats between heads, between tokens */
    const float *k, *v;
    const int32_t *kv_row0; /* device (NULL: 0): the keys and values start at this row of k and v */
    int64_t kv_rs; /* floats between cache rows */
    float *out;
    int64_t o_ts; /* floats between output rows (hd * H) */
    int hd, H, Hkv, T;
    float scale;
    const int32_t *n_past; /* device */
    int n_splits;
    float *part; /* [T][H][n_splits][w + 2]: unnormalised sums (w = hd, 2 hd with diff), max, normaliser */
    /* transition rows */
    int trans;
    int n_ranges;
    int32_t range_t0[TRC_MAX_RANGES]; /* first chunk-local row of each range */
    int32_t range_n[TRC_MAX_RANGES];  /* rows in it */
    int32_t range_start[TRC_MAX_RANGES]; /* the absolute first row of its block */
    int32_t iv;
    float alpha, beta;
    int strategy; /* tr_transition_strategy: 0 adding, 1 multi */
    /* differential attention */
    int diff;
    float lambda, out_scale, eps;
} trc_attn_args;
int trc_attention_tiled_ok(int hd);
size_t trc_attention_tiled_smem(int hd, int diff);
cudaError_t trc_attention_tiled(const trc_attn_args *a, cudaStream_t s);
cudaError_t trc_attention_rows(const trc_attn_args *a, cudaStream_t s);
cudaError_t trc_attention_reduce(const trc_attn_args *a, cudaStream_t s);
int trc_attention_rows_ok(int hd, int diff);

/* Raises the dynamic shared-memory limits of the kernels that need more than 48 KB; called once
 * per device. Returns the first error. */
cudaError_t trc_kernels_init(void);

#ifdef __cplusplus
}
#endif

#endif
