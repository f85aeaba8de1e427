/* dtype.h: element types of tensors and their sizes. */
#ifndef TR_DTYPE_H
#define TR_DTYPE_H

#include <stddef.h>

typedef enum tr_dtype {
    TR_F32 = 0,
    TR_F16 = 1,
    TR_BF16 = 2,
    TR_I32 = 3,
    TR_DTYPE_COUNT
} tr_dtype;

static inline size_t tr_dtype_size(tr_dtype t)
{
    static const size_t sizes[TR_DTYPE_COUNT] = {4, 2, 2, 4};
    return (unsigned)t < TR_DTYPE_COUNT ? sizes[t] : 0;
}

static inline const char *tr_dtype_name(tr_dtype t)
{
    static const char *names[TR_DTYPE_COUNT] = {"f32", "f16", "bf16", "i32"};
    return (unsigned)t < TR_DTYPE_COUNT ? names[t] : "?";
}

#endif
