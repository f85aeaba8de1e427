/* kernels.h: the CPU backend's kernels.
 *
 * Reference kernels (kernels_ref.c) are the definition of each op in core/ir.h: plain loops, one
 * thread, double accumulators where a sum is long. Everything else in transit, the CPU fast path
 * included, is tested against them. Fast kernels (kernels_fast.c, attention_fast.c) use OpenBLAS
 * for prefill matrix products, a threaded matrix-vector path for decode, and threads over heads and
 * rows in attention.
 *
 * Every kernel takes the destination node; its sources and every data pointer are already placed. */
#ifndef TR_CPU_KERNELS_H
#define TR_CPU_KERNELS_H

#include "ir.h"
#include "isa_names.h"
#include "threadpool.h"

/* Per-backend state the fast kernels share: the pool and per-thread scratch. */
typedef struct tr_cpu_state {
    tr_pool *pool;
    int n_threads;
    float *scratch;        /* n_threads * scratch_per_thread floats */
    size_t scratch_per_thread;
    float *panel;          /* f16/bf16 -> f32 weight panel for prefill sgemm */
    size_t panel_floats;
    struct {
        const void *src; /* a weight's data */
        void *data;      /* its copy in the backend's own layout */
    } *repacked;         /* cpu/repack.c */
    int n_repacked, cap_repacked;
    size_t repacked_bytes;
} tr_cpu_state;

/* Weights in a layout of the CPU backend's own, for decode (cpu/repack.c; where TR_QGEMM): whether
 * w qualifies, its copy (NULL if none yet), making it (0 if out of memory), and freeing them all. */
int tr_repack_eligible(const tr_tensor *w);
const void *tr_repacked(const tr_cpu_state *st, const tr_tensor *w);
int tr_repack(tr_cpu_state *st, const tr_tensor *w);
void tr_repack_free(tr_cpu_state *st);

/* Weight rows per task of a decode GEMV (float and quantized): long runs of consecutive rows stream
 * best (TinyLlama Q4_K_M, 2 threads: 16 rows a task 23.4 t/s, 64 to 256 rows 28-31 t/s), but every
 * thread needs a couple of tasks of each matrix: N / (2 threads), between 8 and 128. */
static inline int64_t tr_gemv_rows_per_task(int64_t N, int n_threads)
{
    int64_t r = N / (2 * (int64_t)(n_threads > 0 ? n_threads : 1));
    return r < 8 ? 8 : r > 128 ? 128 : r;
}

/* Ensures each thread has at least n floats of scratch. */
int tr_cpu_scratch_reserve(tr_cpu_state *st, size_t n);

/* Converts n elements of a row of any supported dtype to f32 (a quantized row: whole blocks from a
 * block boundary, dequantized as core/quant.c defines). */
void tr_row_to_f32(const void *src, tr_dtype dt, float *dst, int64_t n);

void get_rows_ref(tr_tensor *dst);
void rms_norm_f32_ref(tr_tensor *dst);
void add_f32_ref(tr_tensor *dst);
void mul_f32_ref(tr_tensor *dst);
void matmul_ref(tr_tensor *dst);
void rope_f32_ref(tr_tensor *dst);
void glu_f32_ref(tr_tensor *dst);
double tr_activation_ref(tr_activation act, double g);
void kv_write_f32_ref(tr_tensor *dst);
void copy_f32_ref(tr_tensor *dst);
void concat_f32_ref(tr_tensor *dst);
void attention_f32_ref(tr_tensor *dst);

void matmul_fast(tr_cpu_state *st, tr_tensor *dst);
/* Quantized weights against activations rounded to 8 bits (kernels_quant.c), for a few tokens of
 * any type and for many with a type that has a tile kernel (tr_quant_tiled). xq_space holds
 * tr_matmul_quant_scratch_floats(dst) floats: the rounded activations. */
void matmul_quant(tr_cpu_state *st, tr_tensor *dst, float *xq_space);
size_t tr_matmul_quant_scratch_floats(const tr_tensor *dst);
int tr_quant_tiled(tr_dtype t);
/* Prefill with Q4_K, Q5_K, Q6_K or Q8_0 weights on AVX-512 VNNI (kernels_quant_gemm.c, where
 * qdot.h defines TR_QGEMM): space holds tr_qgemm_space_floats(dst) floats (the activations' panels),
 * and each thread's scratch tr_qgemm_thread_floats (its rows, unpacked). */
int tr_qgemm_supports(tr_dtype t);
void tr_qgemm(tr_cpu_state *st, tr_tensor *dst, float *space);
size_t tr_qgemm_space_floats(const tr_tensor *dst);
size_t tr_qgemm_thread_floats(const tr_tensor *dst, int n_threads);
/* Products with float weights on AVX-512 with the tokens in the vector lanes (kernels_float_gemm.c,
 * built where __AVX512F__): prefill with f32, f16 or bf16 weights, and with AVX-512 BF16 (TR_BF16_GEMM)
 * every product with bf16 weights, decode included. space holds tr_float_gemm_space_floats(dst)
 * floats (the activations' panels), each thread's scratch tr_float_gemm_thread_floats (its rows as
 * f32, for f16 weights). */
#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define TR_BF16_GEMM 1
#endif
#define TR_BF16_GEMV_MAX_TOKENS 4   /* bf16 pairs below this: rows in order, one token at a time */
#define TR_FLOAT_GEMM_MIN_TOKENS 16 /* f32 / f16 from this many tokens (fewer: half-empty lanes) */
int tr_float_gemm_supports(const tr_tensor *dst);
void tr_float_gemm(tr_cpu_state *st, tr_tensor *dst, float *space);
size_t tr_float_gemm_space_floats(const tr_tensor *dst);
size_t tr_float_gemm_thread_floats(const tr_tensor *dst, int n_threads);
size_t tr_matmul_thread_floats(const tr_tensor *dst, int n_threads); /* per-thread scratch a matmul needs */
#define TR_QGEMV_MAX_TOKENS 16 /* from this many tokens, untiled types go through dequantized panels and sgemm */
size_t tr_matmul_panel_floats(const tr_tensor *dst); /* panel the fast matmul needs */
size_t tr_attention_scratch_floats(const tr_tensor *dst); /* per thread */
void attention_f32_fast(tr_cpu_state *st, tr_tensor *dst);
void glu_f32_fast(tr_cpu_state *st, tr_tensor *dst);
void rms_norm_f32_fast(tr_cpu_state *st, tr_tensor *dst); /* kernels_norm.c */
void rope_f32_fast(tr_cpu_state *st, tr_tensor *dst);

/* Element at (i0, i1, i2) of a placed tensor. */
static inline void *tr_at(const tr_tensor *t, int64_t i0, int64_t i1, int64_t i2)
{
    return (char *)t->data + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2];
}

#endif
