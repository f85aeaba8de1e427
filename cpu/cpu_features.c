/* cpu_features.c: what this CPU runs, and which of the built kernel sets it gets (kernel_set.h).
 *
 * A CPUID flag alone is not enough: AVX and AVX-512 instructions fault unless the operating system
 * saves their registers on a context switch, which it says in XCR0 (XGETBV). These CPUs advertise
 * AMX, for one, which traps until a process asks the kernel for its state; transit uses no AMX, and
 * counts AVX and AVX-512 only where XCR0 has their state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernel_set.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* The tables, best first: CMake passes TR_CPU_ISAS as TR_X(avx512_bf16) TR_X(avx512_vnni) ... */
#ifndef TR_CPU_ISAS
#error "TR_CPU_ISAS lists the kernel sets built (CMakeLists.txt)"
#endif
#define TR_X(isa) extern const tr_cpu_kernel_set tr_cpu_kernel_table_##isa;
TR_CPU_ISAS
#undef TR_X
#define TR_X(isa) &tr_cpu_kernel_table_##isa,
static const tr_cpu_kernel_set *const sets[] = {TR_CPU_ISAS};
#undef TR_X

static const char *const feature_names[TR_CPU_FEATURE_COUNT] = {
    "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "lzcnt", "movbe",
    "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512vnni", "avx512bf16",
};

const tr_cpu_kernel_set *const *tr_cpu_kernel_sets(int *n)
{
    *n = (int)(sizeof sets / sizeof sets[0]);
    return sets;
}

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static unsigned detect(void)
{
    unsigned a, b, c, d, f = 0, max = __get_cpuid_max(0, NULL);
    if (max < 1 || !__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    f |= (c >> 9 & 1) ? TR_CPU_SSSE3 : 0;
    f |= (c >> 19 & 1) ? TR_CPU_SSE41 : 0;
    f |= (c >> 20 & 1) ? TR_CPU_SSE42 : 0;
    f |= (c >> 23 & 1) ? TR_CPU_POPCNT : 0;
    f |= (c >> 22 & 1) ? TR_CPU_MOVBE : 0;
    f |= (c >> 12 & 1) ? TR_CPU_FMA : 0;
    f |= (c >> 29 & 1) ? TR_CPU_F16C : 0;
    int osxsave = c >> 27 & 1, avx = c >> 28 & 1;
    unsigned long long x = osxsave ? xcr0() : 0;
    int ymm = (x & 0x6) == 0x6, zmm = (x & 0xe6) == 0xe6; /* SSE+AVX state; plus opmask and ZMM */
    if (avx && ymm)
        f |= TR_CPU_AVX;
    else
        f &= ~(unsigned)(TR_CPU_FMA | TR_CPU_F16C); /* VEX-encoded: they need the YMM state too */
    if (max >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f |= (b >> 3 & 1) ? TR_CPU_BMI1 : 0;
        f |= (b >> 8 & 1) ? TR_CPU_BMI2 : 0;
        if (f & TR_CPU_AVX)
            f |= (b >> 5 & 1) ? TR_CPU_AVX2 : 0;
        if ((f & TR_CPU_AVX) && zmm) {
            f |= (b >> 16 & 1) ? TR_CPU_AVX512F : 0;
            f |= (b >> 17 & 1) ? TR_CPU_AVX512DQ : 0;
            f |= (b >> 28 & 1) ? TR_CPU_AVX512CD : 0;
            f |= (b >> 30 & 1) ? TR_CPU_AVX512BW : 0;
            f |= (b >> 31 & 1) ? TR_CPU_AVX512VL : 0;
            f |= (c >> 11 & 1) ? TR_CPU_AVX512VNNI : 0;
            if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
                f |= (a >> 5 & 1) ? TR_CPU_AVX512BF16 : 0;
        }
    }
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &c, &d))
        f |= (c >> 5 & 1) ? TR_CPU_LZCNT : 0;
    return f;
}
#else
static unsigned detect(void)
{
    return 0; /* the one table elsewhere ("generic", "native") needs none of these bits */
}
#endif

unsigned tr_cpu_features(void)
{
    static unsigned cached;
    static int done;
    if (!done) { /* racing first calls compute the same value */
        cached = detect();
        done = 1;
    }
    return cached;
}

void tr_cpu_feature_names(unsigned mask, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < TR_CPU_FEATURE_COUNT && used < cap; i++)
        if (mask >> i & 1)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? " " : "", feature_names[i]);
}

/* The names of the tables this CPU runs, for messages. */
static void runnable_names(char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof sets / sizeof sets[0] && used < cap; i++)
        if (tr_cpu_runs(sets[i]))
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", sets[i]->name);
}

tr_status tr_cpu_kernel_set_choose(const char *want, const tr_cpu_kernel_set **out, int *forced)
{
    const char *from = "TRANSIT_CPU_KERNELS";
    if (want && *want)
        from = "the kernel set asked for";
    else
        want = getenv("TRANSIT_CPU_KERNELS");
    char runs[256];
    runnable_names(runs, sizeof runs);
    *forced = want && *want;
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        unsigned missing = sets[i]->needs & ~tr_cpu_features();
        if (*forced && strcmp(sets[i]->name, want) != 0)
            continue;
        if (tr_cpu_runs(sets[i])) {
            *out = sets[i];
            return TR_OK;
        }
        if (*forced) {
            char names[256];
            tr_cpu_feature_names(missing, names, sizeof names);
            return tr_fail(TR_ERR_UNSUPPORTED, "cpu: %s names kernel set '%s', which needs %s, and this CPU "
                           "lacks it (it runs: %s)", from, want, names, runs[0] ? runs : "none");
        }
    }
    if (*forced) {
        char built[256];
        size_t used = 0;
        built[0] = '\0';
        for (size_t i = 0; i < sizeof sets / sizeof sets[0] && used < sizeof built; i++)
            used += (size_t)snprintf(built + used, sizeof built - used, "%s%s", i ? ", " : "", sets[i]->name);
        return tr_fail(TR_ERR_INVALID_ARG, "cpu: %s names kernel set '%s', which is not built (built: %s)", from,
                       want, built);
    }
    return tr_fail(TR_ERR_UNSUPPORTED, "cpu: this CPU runs none of the kernel sets built (the lowest, '%s', "
                   "needs more)", sets[sizeof sets / sizeof sets[0] - 1]->name);
}
