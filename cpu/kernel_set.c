/* kernel_set.c: this build's table of fast kernels (kernel_set.h), compiled once per level with
 * TR_ISA naming it. What the table needs of a CPU is read from the compiler's own macros, so it is
 * exactly what the level's -march let the compiler use. */
#include "kernel_set.h"
#include "kernels.h"
#include "qdot.h"

#ifndef TR_ISA
#error "kernel_set.c is compiled once per kernel set, with TR_ISA naming it (CMakeLists.txt)"
#endif
#define TR_STR2(x) #x
#define TR_STR(x) TR_STR2(x)

enum {
    NEEDS = 0
#ifdef __SSSE3__
            | TR_CPU_SSSE3
#endif
#ifdef __SSE4_1__
            | TR_CPU_SSE41
#endif
#ifdef __SSE4_2__
            | TR_CPU_SSE42
#endif
#ifdef __POPCNT__
            | TR_CPU_POPCNT
#endif
#ifdef __AVX__
            | TR_CPU_AVX
#endif
#ifdef __AVX2__
            | TR_CPU_AVX2
#endif
#ifdef __FMA__
            | TR_CPU_FMA
#endif
#ifdef __F16C__
            | TR_CPU_F16C
#endif
#ifdef __BMI__
            | TR_CPU_BMI1
#endif
#ifdef __BMI2__
            | TR_CPU_BMI2
#endif
#ifdef __LZCNT__
            | TR_CPU_LZCNT
#endif
#ifdef __MOVBE__
            | TR_CPU_MOVBE
#endif
#ifdef __AVX512F__
            | TR_CPU_AVX512F
#endif
#ifdef __AVX512BW__
            | TR_CPU_AVX512BW
#endif
#ifdef __AVX512CD__
            | TR_CPU_AVX512CD
#endif
#ifdef __AVX512DQ__
            | TR_CPU_AVX512DQ
#endif
#ifdef __AVX512VL__
            | TR_CPU_AVX512VL
#endif
#ifdef __AVX512VNNI__
            | TR_CPU_AVX512VNNI
#endif
#ifdef __AVX512BF16__
            | TR_CPU_AVX512BF16
#endif
};

/* What the kernels of this level do, best first (the same conditions as the kernels' own). */
#if TR_QGEMM && TR_BF16_GEMM
#define DOES "AVX-512 with VNNI and BF16: quantized prefill on vpdpbusd, Q4_K decode interleaved, bf16 on vdpbf16ps"
#elif TR_QGEMM
#define DOES "AVX-512 with VNNI: quantized prefill on vpdpbusd, Q4_K decode interleaved"
#elif defined(__AVX512F__)
#define DOES "AVX-512: float prefill with tokens in the lanes, quantized prefill through dequantized panels"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define DOES "AVX2 + FMA + F16C: prefill through sgemm panels"
#else
#define DOES "portable C: prefill through sgemm panels"
#endif

const tr_cpu_kernel_set tr_cpu_kernel_table = {
    .name = TR_STR(TR_ISA),
    .does = DOES,
    .needs = NEEDS,
    .matmul = matmul_fast,
    .attention = attention_f32_fast,
    .rope = rope_f32_fast,
    .glu = glu_f32_fast,
    .rms_norm = rms_norm_f32_fast,
    .attention_scratch_floats = tr_attention_scratch_floats,
    .matmul_panel_floats = tr_matmul_panel_floats,
    .matmul_thread_floats = tr_matmul_thread_floats,
#if TR_QGEMM
    .repack_eligible = tr_repack_eligible,
    .repack = tr_repack,
#endif
    .repack_free = tr_repack_free,
};
