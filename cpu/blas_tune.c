/* blas_tune.c: whether the loaded OpenBLAS runs kernels that fit this CPU (tr_blas_better_coretype,
 * transit.h).
 *
 * Debian's OpenBLAS picks its kernels (DYNAMIC_ARCH) when the library loads, from the CPU model
 * number. On CPUs it does not know, virtual ones included, it falls back to "Prescott" (SSE3):
 * sgemm then runs 5-10x slower than with its AVX2 / AVX-512 kernels (measured: 22 vs 123 vs 222
 * GFLOP/s on a 2-core AVX-512 Xeon). The choice cannot be changed after loading, so a program can
 * only start again with OPENBLAS_CORETYPE set: `transit` does (tools/blas_tune.c), the Python
 * package sets it before loading the library, and the CPU backend says so in the verbose log. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "transit.h"

#if defined(__x86_64__) && defined(__GNUC__)
/* Cores older than Haswell: no AVX2 / FMA kernels. */
static int is_weak_core(const char *name)
{
    static const char *weak[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge",
                                 "Katmai", "Coppermine", "Northwood", "Banias", "Barcelona", "Bobcat"};
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (name && strcmp(name, weak[i]) == 0)
            return 1;
    return 0;
}
#endif

const char *tr_blas_better_coretype(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("TRANSIT_NO_BLAS_TUNE") || !is_weak_core(openblas_get_corename()))
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}
