/* half.h: IEEE half (f16) and bfloat16 conversions, exact and branch-light, and element access to
 * float arrays of any of the three types. */
#ifndef TR_HALF_H
#define TR_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"

static inline float tr_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even. */
static inline uint16_t tr_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (ax < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14 .. 24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((ax >> 13) - (112u << 10)), rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
        r++;
    return (uint16_t)(sign | r);
}

/* tr_f16_to_f32 without branches, so that a loop of them vectorizes (the CPU's portable kernels): the
 * half's exponent and mantissa shifted into a float's place and scaled by 2^112 (the bias difference,
 * 127 - 15) is the value, exactly, for normal and subnormal halves alike; infinities and NaNs get the
 * float's all-ones exponent. The same bits for all 65536 inputs (test_ops), unless the FPU is told to
 * treat subnormal inputs as zero, which transit never does. */
static inline float tr_f16_to_f32_nobranch(uint16_t h)
{
    uint32_t bits = (uint32_t)(h & 0x7fff) << 13, sign = (uint32_t)(h & 0x8000) << 16;
    float f;
    memcpy(&f, &bits, 4);
    f *= 0x1p112f;
    memcpy(&bits, &f, 4);
    if ((h & 0x7c00) == 0x7c00)
        bits |= 0x7f800000u;
    bits |= sign;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float tr_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t tr_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Element i of a float array of type dt (f32, f16 or bf16) as a float, and the other way. */
static inline float tr_float_load(tr_dtype dt, const void *p, size_t i)
{
    switch (dt) {
    case TR_F16: return tr_f16_to_f32(((const uint16_t *)p)[i]);
    case TR_BF16: return tr_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static inline void tr_float_store(tr_dtype dt, void *p, size_t i, float v)
{
    switch (dt) {
    case TR_F16: ((uint16_t *)p)[i] = tr_f32_to_f16(v); break;
    case TR_BF16: ((uint16_t *)p)[i] = tr_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v;
    }
}

#endif
