/* kernel_set.h: the CPU's fast kernels as one table per instruction-set level, chosen at run time.
 *
 * One build runs anywhere: the fast kernels are compiled once per x86-64 level (CMakeLists.txt,
 * TR_CPU_ISA_LEVELS: v2 = SSE4.2, avx2 = x86-64-v3 with AVX2 + FMA + F16C, avx512 = x86-64-v4,
 * avx512_vnni, avx512_bf16), each into a table of its own (kernel_set.c, names from isa_names.h),
 * and the CPU backend takes the best table this CPU and its operating system can run
 * (cpu_features.c). Elsewhere (other architectures, or -DTR_NATIVE=ON) there is one table, "generic"
 * or "native". Everything outside the kernels (core, loaders, the reference kernels) is built for the
 * architecture's baseline and runs on any CPU of it. */
#ifndef TR_CPU_KERNEL_SET_H
#define TR_CPU_KERNEL_SET_H

#include <stddef.h>

#include "kernels.h"
#include "transit.h"

/* What a table's compiler was allowed to use (kernel_set.c reads its predefined macros) and what a
 * CPU offers (cpu_features.c: CPUID, and XGETBV for the register state the OS saves). */
enum {
    TR_CPU_SSSE3 = 1u << 0,
    TR_CPU_SSE41 = 1u << 1,
    TR_CPU_SSE42 = 1u << 2,
    TR_CPU_POPCNT = 1u << 3,
    TR_CPU_AVX = 1u << 4, /* with YMM state saved by the OS */
    TR_CPU_AVX2 = 1u << 5,
    TR_CPU_FMA = 1u << 6,
    TR_CPU_F16C = 1u << 7,
    TR_CPU_BMI1 = 1u << 8,
    TR_CPU_BMI2 = 1u << 9,
    TR_CPU_LZCNT = 1u << 10,
    TR_CPU_MOVBE = 1u << 11,
    TR_CPU_AVX512F = 1u << 12, /* this and the AVX-512 bits below: with ZMM and mask state saved */
    TR_CPU_AVX512BW = 1u << 13,
    TR_CPU_AVX512CD = 1u << 14,
    TR_CPU_AVX512DQ = 1u << 15,
    TR_CPU_AVX512VL = 1u << 16,
    TR_CPU_AVX512VNNI = 1u << 17,
    TR_CPU_AVX512BF16 = 1u << 18,
    TR_CPU_FEATURE_COUNT = 19
};

typedef void (*tr_cpu_kernel)(tr_cpu_state *st, tr_tensor *dst);

typedef struct tr_cpu_kernel_set {
    const char *name;  /* "avx2": what TRANSIT_CPU_KERNELS and `transit info` call it */
    const char *does;  /* what its kernels do differently, for `transit info` */
    unsigned needs;    /* TR_CPU_* bits the CPU must have */
    tr_cpu_kernel matmul, attention, rope, glu, rms_norm;
    /* sizes the backend reserves before a graph runs (kernels.h) */
    size_t (*attention_scratch_floats)(const tr_tensor *dst);
    size_t (*matmul_panel_floats)(const tr_tensor *dst);
    size_t (*matmul_thread_floats)(const tr_tensor *dst, int n_threads);
    /* Q4_K's decode layout (cpu/repack.c) where the set has one, else NULL; repack_free always */
    int (*repack_eligible)(const tr_tensor *w);
    int (*repack)(tr_cpu_state *st, const tr_tensor *w);
    void (*repack_free)(tr_cpu_state *st);
} tr_cpu_kernel_set;

/* The tables built into this library, best first; *n gets their number. */
const tr_cpu_kernel_set *const *tr_cpu_kernel_sets(int *n);
/* The TR_CPU_* bits of this CPU (computed once). */
unsigned tr_cpu_features(void);
/* Whether this CPU runs set s (has every bit it needs). */
static inline int tr_cpu_runs(const tr_cpu_kernel_set *s)
{
    return (s->needs & ~tr_cpu_features()) == 0;
}
/* Writes the names of the bits of `mask` ("avx2 fma f16c"), space-separated. */
void tr_cpu_feature_names(unsigned mask, char *buf, size_t cap);
/* The table to run: the one named `want` (NULL or "": the TRANSIT_CPU_KERNELS environment variable,
 * else the best this CPU runs). A name this CPU cannot run, or that is not built, is an error naming
 * what is missing and what would run; *forced says whether a name chose it. */
tr_status tr_cpu_kernel_set_choose(const char *want, const tr_cpu_kernel_set **out, int *forced);

#endif
