/* test_ops_avx2.c: checks of the AVX2 helpers of cpu/simd.h, compiled for AVX2 + FMA (x86-64-v3)
 * like the kernels that use them; test_ops calls them only on a CPU that has both. */
#include <math.h>
#include <stdio.h>

#include "simd.h"
#include "test_util.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "test_ops_avx2.c is compiled with -march=x86-64-v3 (tests/CMakeLists.txt)"
#endif

/* tr_exp256 (the softmax's and SiLU's vector exp) against double-precision exp: within 4 ulp over the
 * range it serves, 0 < e^x <= FLT_MIN below it, and the clamp at 88 finite. */
void test_vector_exp_avx2(void)
{
    double worst = 0;
    for (int i = 0; i <= 1000000; i++) {
        float x[8], y[8];
        for (int j = 0; j < 8; j++)
            x[j] = -87.0f + 175.0f * (float)(i * 8 + j) / 8000008.0f;
        _mm256_storeu_ps(y, tr_exp256(_mm256_loadu_ps(x)));
        for (int j = 0; j < 8; j++) {
            double want = exp((double)x[j]), rel = fabs((double)y[j] - want) / want;
            worst = rel > worst ? rel : worst;
        }
    }
    CHECK(worst < 4 * 5.97e-8, "tr_exp256: worst relative error %.3g over [-87, 88]", worst);
    float lo[8] = {-88.0f, -100.0f, -1e30f, -87.5f, 0.0f, 88.0f, 1e30f, -0.0f}, out[8];
    _mm256_storeu_ps(out, tr_exp256(_mm256_loadu_ps(lo)));
    for (int j = 0; j < 4; j++)
        CHECK(out[j] >= 0 && out[j] <= 1.2e-38f, "tr_exp256(%g) = %g, want at most FLT_MIN", lo[j], out[j]);
    CHECK(out[4] == 1.0f && out[7] == 1.0f && isfinite(out[5]) && isfinite(out[6]) && out[6] > 1e38f,
          "tr_exp256 at 0, 88, 1e30: %g %g %g", out[4], out[5], out[6]);
    printf("tr_exp256: worst relative error %.3g over [-87, 88]\n", worst);
}

