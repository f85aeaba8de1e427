/* qdot.h: the activations quantized weights meet, and the AVX-512 kernels that take them.
 *
 * A matrix product with quantized weights rounds its activations to 8 bits first (the op's bound
 * allows it, core/ir.h), so each weight block meets them in integer dot products. Two layouts:
 * per block of 32 (the 32-weight types) and per super-block of 256 (the k-quants, as llama.cpp's
 * Q8_K), each with the sums of its levels so that the weights' offsets and minima are applied
 * through the sums instead of inside the inner loops. kernels_quant.c makes them and runs the
 * threaded product; kernels_quant_avx512.c holds the AVX-512 kernels, which take up to TR_QTILE
 * tokens per weight row, so a row's levels are unpacked once for all of them (prefill's reuse). */
#ifndef TR_CPU_QDOT_H
#define TR_CPU_QDOT_H

#include <stdint.h>
#include <string.h>

#include "dtype.h"
#include "isa_names.h"

/* An activation block: 32 values as d * qs, with the sums of its two halves' levels. */
typedef struct {
    float d;
    int16_t sum[2]; /* sum of qs[0..16) and qs[16..32) */
    int8_t qs[32];
} q8x_block;

/* 256 activations as d * qs, with the sums of each 16 (Q6_K's sub-blocks) and of each 32 (Q4_K's
 * and Q5_K's). For the AVX-512 Q4_K / Q5_K kernels qs holds the 32-level groups in the order
 * 0 2 1 3 4 6 5 7 (q8k_permuted), so that one 64-byte load of weights' low (high) nibbles, which
 * are groups 0 and 2 (1 and 3), meets one 64-byte load of activations. */
typedef struct {
    float d;
    int16_t bsums[16];
    int16_t bsum32[8];
    int8_t qs[256];
} q8k_block;

#define TR_QTILE 8 /* tokens per call of a tile kernel */

/* Sixteen Q4_K rows' super-block i, interleaved for decode (cpu/repack.c): the 16 rows are the
 * 16 lanes of a vector, so one 64-byte load holds 8 levels of every row and one vpdpbusd adds 4
 * of them times 4 broadcast activations to each row's sum; scales, minima and d apply per lane. */
typedef struct {
    uint8_t qs[32][16][4]; /* [j][row][b]: levels 8 j + b (low nibble) and 8 j + 4 + b (high) */
    uint8_t sc[8][16], m[8][16]; /* sub-block scales and minima, unpacked to bytes */
    uint16_t d[16], dmin[16];
} q4_K_x16;

/* n values (a multiple of 16) as d * q with q in [-127, 127], d from the largest magnitude: every
 * path rounds activations this way (kernels_quant.c). Returns d. */
float tr_q8_round(const float *v, int n, int8_t *q);

/* The 12 bytes of Q4_K / Q5_K scales as 8 scales (sc) and 8 minima (m), all at once: the same values
 * as tr_k_scale_min, with 32-bit masks instead of a branch per sub-block. */
static inline void k_scales_unpack(const uint8_t scales[12], uint8_t sc[8], uint8_t m[8])
{
    uint32_t u[3], out[4];
    memcpy(u, scales, 12);
    out[0] = u[0] & 0x3f3f3f3fu;                                                 /* sc 0-3 */
    out[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;            /* sc 4-7 */
    out[2] = u[1] & 0x3f3f3f3fu;                                                 /* m 0-3 */
    out[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;     /* m 4-7 */
    memcpy(sc, out, 8);
    memcpy(m, out + 2, 8);
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
#define TR_QAVX512 1
/* Whether type t's activations are stored in q8k_permuted order for these kernels. */
static inline int q8k_permuted(tr_dtype t)
{
    return t == TR_Q4_K || t == TR_Q5_K;
}
/* One weight row of nsuper super-blocks against ntok (<= TR_QTILE) tokens' activations, token c's
 * at x + c * x_stride (in blocks): out[c] = the row's dot product with token c. */
void tr_qtile_k45_avx512(int five, const void *row, const q8k_block *x, int64_t x_stride, int64_t nsuper,
                         int ntok, float *out);
void tr_qtile_q6_K_avx512(const void *row, const q8k_block *x, int64_t x_stride, int64_t nsuper, int ntok,
                          float *out);
#if defined(__AVX512VNNI__)
#define TR_QGEMM 1 /* kernels_quant_gemm.c: prefill on vpdpbusd; cpu/repack.c: Q4_K for decode */

/* Rows' dot products of 16 interleaved Q4_K rows (nsuper blocks) with one token's activations in
 * natural order (not q8k_permuted): out[r]. */
void tr_q4_K_x16_dot(const q4_K_x16 *w, const q8k_block *x, int64_t nsuper, float out[16]);
#endif
#else
static inline int q8k_permuted(tr_dtype t)
{
    (void)t;
    return 0;
}
#endif

#endif
