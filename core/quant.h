/* quant.h: ggml's block-quantized weight formats (design §10): layouts, dequantization, quantization.
 *
 * The value of a quantized weight is its dequantized value, computed here exactly as the `gguf`
 * package (PyPI) computes it: in float32, each product rounded as numpy rounds it (this file is
 * compiled without contracting a*b+c into a fused multiply-add, so the bits agree). Every kernel of
 * every backend is tested against these values.
 *
 * Layouts (little-endian, blocks back to back along a row; f16 = IEEE half):
 *   Q8_0  32 weights, 34 bytes: d f16, qs[32] int8                      w = d q
 *   Q4_0  32 weights, 18 bytes: d f16, qs[16]                           w = d (q - 8)
 *   Q4_1  32 weights, 20 bytes: d f16, m f16, qs[16]                    w = d q + m
 *   Q5_0  32 weights, 22 bytes: d f16, qh[4], qs[16]                    w = d (q - 16)
 *   Q5_1  32 weights, 24 bytes: d f16, m f16, qh[4], qs[16]             w = d q + m
 *     4-bit q: weight j < 16 is the low nibble of qs[j], weight j + 16 its high nibble; the fifth
 *     bit of weight j is bit j of qh (a little-endian uint32).
 *   Q4_K  256 weights, 144 bytes: d f16, dmin f16, scales[12], qs[128]  w = d sc_s q - dmin m_s
 *   Q5_K  256 weights, 176 bytes: d f16, dmin f16, scales[12], qh[32], qs[128]
 *     8 sub-blocks s of 32 with 6-bit scale sc_s and minimum m_s packed in scales[12] (s < 4:
 *     low 6 bits of scales[s] and scales[s + 4]; s >= 4: scales[s + 4]'s low and high nibbles, with
 *     their top two bits in the top bits of scales[s - 4] and scales[s]). qs holds 64 weights per 32
 *     bytes: sub-block 2c in the low nibbles of qs[32c ..], 2c + 1 in the high ones; Q5_K's fifth bit
 *     of weight l of sub-block s is bit s of qh[l].
 *   Q6_K  256 weights, 210 bytes: ql[128], qh[64], scales[16] int8, d f16    w = d sc_s (q - 32)
 *     16 sub-blocks of 16; in each half of 128 weights, with ql, qh advanced by 64 and 32 bytes,
 *     weight l (l < 32) takes ql[l] low nibble and qh[l] bits 0-1, l + 32: ql[l + 32] low and bits
 *     2-3, l + 64: ql[l] high and bits 4-5, l + 96: ql[l + 32] high and bits 6-7. */
#ifndef TR_QUANT_H
#define TR_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "transit.h"

#define TR_QK 32   /* the 32-weight block */
#define TR_QK_K 256 /* the k-quant super-block */

typedef struct { uint16_t d; int8_t qs[32]; } tr_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[16]; } tr_block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } tr_block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } tr_block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } tr_block_q5_1;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } tr_block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } tr_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } tr_block_q6_K;

_Static_assert(sizeof(tr_block_q8_0) == 34 && sizeof(tr_block_q4_0) == 18 && sizeof(tr_block_q4_1) == 20 &&
                   sizeof(tr_block_q5_0) == 22 && sizeof(tr_block_q5_1) == 24 && sizeof(tr_block_q4_K) == 144 &&
                   sizeof(tr_block_q5_K) == 176 && sizeof(tr_block_q6_K) == 210,
               "block layouts are ggml's");

/* Sub-block s's 6-bit scale and minimum of a Q4_K / Q5_K block. */
static inline void tr_k_scale_min(const uint8_t *scales, int s, int *sc, int *m)
{
    if (s < 4) {
        *sc = scales[s] & 63;
        *m = scales[s + 4] & 63;
    } else {
        *sc = (scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4);
        *m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
    }
}

/* n weights (a multiple of the type's block) of a row of type t at src -> float. */
void tr_dequantize_row(tr_dtype t, const void *src, float *dst, int64_t n);

/* n floats -> type t (n a multiple of its block): transit's own quantizers (docs/quantization.md):
 * the 32-weight types round to the nearest level of a scale set by the block's extremes; the
 * k-quants search each sub-block's scale (and minimum) for the least magnitude-weighted squared
 * error, then quantize the scales. Returns the bytes written. */
size_t tr_quantize_row(tr_dtype t, const float *src, void *dst, int64_t n);

/* The quantized type named by a ggml type id (GGUF), or -1 when transit has no such type. */
int tr_dtype_from_ggml(uint32_t ggml_type);
uint32_t tr_dtype_to_ggml(tr_dtype t);

/* ---- file types: which type each tensor gets (quant_mix.c) ------------------------------------- */

/* A target file type, named as llama-quantize names them: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0,
 * q5_1, q6_k, and the mixes q4_k_m and q5_k_m. */
typedef struct tr_file_type {
    char name[16];
    tr_dtype base;  /* the matrices' type before the mix's exceptions */
    int mix;        /* 0: every matrix base; 1: Q4_K_M's and Q5_K_M's exceptions */
    uint32_t ftype; /* general.file_type (llama.cpp's LLAMA_FTYPE_*) */
} tr_file_type;

tr_status tr_file_type_parse(const char *name, tr_file_type *out); /* case-insensitive */
uint32_t tr_file_type_uniform(tr_dtype t); /* general.file_type of a file whose matrices are all t */
/* The type of matrix `name` ({ne0, rows}) of a model of n_layers layers (tied: the embedding table
 * is also the output) under file type ft, with llama.cpp's rules (docs/quantization.md): the output
 * gets Q6_K (Q8_0 stays Q8_0), Q4_K_M and Q5_K_M give attn_v and ffn_down Q6_K in the first and last
 * eighths of the layers and every third between, and rows that are not a whole number of the type's
 * blocks fall back to a 32-weight type (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; else F16). */
tr_dtype tr_file_type_of(const tr_file_type *ft, const char *name, int64_t ne0, int n_layers, int tied);

#endif
