/* blas_tune.c: make OpenBLAS use kernels that fit this CPU.
 *
 * Debian's OpenBLAS picks its kernels (DYNAMIC_ARCH) when the library loads, from the CPU model
 * number. On CPUs it does not know, virtual ones included, it falls back to "Prescott" (SSE3):
 * sgemm then runs 5-10x slower than with its AVX2 / AVX-512 kernels (measured: 22 vs 123 vs 222
 * GFLOP/s on a 2-core AVX-512 Xeon). The choice cannot be changed after loading, so the command
 * re-executes itself once with OPENBLAS_CORETYPE set from what cpuid reports. A user's own
 * OPENBLAS_CORETYPE always wins, and TRANSIT_NO_BLAS_TUNE=1 turns this off. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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

void cli_tune_blas(char **argv)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("OPENBLAS_CORETYPE") || getenv("TRANSIT_NO_BLAS_TUNE") || !is_weak_core(openblas_get_corename()))
        return;
    __builtin_cpu_init();
    const char *core = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
    if (!core)
        return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("TRANSIT_NO_BLAS_TUNE", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels, which are still correct */
    unsetenv("OPENBLAS_CORETYPE");
#else
    (void)argv;
#endif
}
