/* dtype.h: element types of tensors and their sizes.
 *
 * Float and integer types hold one element per unit. Quantized types (ggml's block formats, design
 * §10; core/quant.h has the layouts) hold a block of elements per unit: a row of n elements of such
 * a type is n / block blocks of `size` bytes, n a multiple of the block. Quantized tensors are only
 * ever weights, read a whole row at a time; their value is their dequantized value (core/quant.c). */
#ifndef TR_DTYPE_H
#define TR_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum tr_dtype {
    TR_F32 = 0,
    TR_F16 = 1,
    TR_BF16 = 2,
    TR_I32 = 3,
    TR_Q8_0 = 4, /* 32 weights: f16 scale, 32 int8 */
    TR_Q4_0 = 5, /* 32 weights: f16 scale, 16 bytes of 4-bit values (q - 8) */
    TR_Q4_1 = 6, /* 32 weights: f16 scale and minimum, 4-bit values */
    TR_Q5_0 = 7, /* 32 weights: f16 scale, 5-bit values (q - 16) */
    TR_Q5_1 = 8, /* 32 weights: f16 scale and minimum, 5-bit values */
    TR_Q4_K = 9, /* 256 weights: f16 scale and minimum scale, 8 sub-blocks with 6-bit scales, 4-bit values */
    TR_Q5_K = 10, /* 256 weights: as Q4_K with 5-bit values */
    TR_Q6_K = 11, /* 256 weights: 16 sub-blocks with int8 scales, 6-bit values (q - 32), f16 scale */
    TR_DTYPE_COUNT
} tr_dtype;

/* Bytes of one unit: an element, or a block of a quantized type. */
static inline size_t tr_dtype_size(tr_dtype t)
{
    static const size_t sizes[TR_DTYPE_COUNT] = {4, 2, 2, 4, 34, 18, 20, 22, 24, 144, 176, 210};
    return (unsigned)t < TR_DTYPE_COUNT ? sizes[t] : 0;
}

/* Elements per unit: 1, or the block length of a quantized type. */
static inline int64_t tr_dtype_block(tr_dtype t)
{
    static const int64_t blocks[TR_DTYPE_COUNT] = {1, 1, 1, 1, 32, 32, 32, 32, 32, 256, 256, 256};
    return (unsigned)t < TR_DTYPE_COUNT ? blocks[t] : 1;
}

static inline int tr_dtype_is_quant(tr_dtype t) { return t >= TR_Q8_0 && t < TR_DTYPE_COUNT; }

/* Bytes of n elements in a row (n a multiple of the block). */
static inline size_t tr_row_bytes(tr_dtype t, int64_t n) { return (size_t)(n / tr_dtype_block(t)) * tr_dtype_size(t); }

/* The alignment the data of a tensor of this type needs: a block's f16 fields need 2. */
static inline size_t tr_dtype_align(tr_dtype t) { return tr_dtype_is_quant(t) ? 2 : tr_dtype_size(t); }

static inline const char *tr_dtype_name(tr_dtype t)
{
    static const char *names[TR_DTYPE_COUNT] = {"f32",  "f16",  "bf16", "i32",  "q8_0", "q4_0",
                                                "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K"};
    return (unsigned)t < TR_DTYPE_COUNT ? names[t] : "?";
}

#endif
