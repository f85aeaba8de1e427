/* simd.h: x86 vector helpers the CPU kernels share (kernels_fast.c, kernels_quant.c). */
#ifndef TR_CPU_SIMD_H
#define TR_CPU_SIMD_H

#if defined(__AVX2__)
#include <immintrin.h>

/* The sum of a vector's 8 floats. */
static inline float tr_hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}
#endif

#endif
