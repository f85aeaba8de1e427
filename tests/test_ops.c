/* test_ops.c: the op case table (op_cases.h) on each of the CPU's kernel sets this CPU runs against
 * the reference kernels (design §6 bounds); plus checks of the definitions themselves: RoPE's two layouts are the
 * same rotation up to a permutation, half-precision conversions are exact, and the memory plan's
 * reuse never changes a result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "half.h"
#include "op_cases.h"
#include "kernel_set.h"
#include "qdot.h"
#include "test_util.h"

void test_vector_exp_avx2(void); /* test_ops_avx2.c */

static op_target cpu; /* a fast kernel set ("cpu avx2") against the reference kernels ("cpu" in reference mode) */

/* The two RoPE layouts are one rotation applied to differently ordered pairs: permuting the input
 * from adjacent to half order, rotating in the half layout, and permuting back must equal the
 * adjacent-layout rotation. This pins down which elements pair up, not only consistency. */
static void test_rope_layouts(void)
{
    const int hd = 16, H = 2, T = 3;
    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *x = op_leaf(&g, TR_F32, 3, (int64_t[]){hd, H, T}, 1, OP_HOST);
    tr_tensor *pos = op_int_leaf(&g, T, 100, 1, OP_HOST);
    tr_tensor *xh = op_leaf(&g, TR_F32, 3, (int64_t[]){hd, H, T}, 1, OP_HOST);
    float *xa = x->data, *xp = xh->data;
    for (int r = 0; r < H * T; r++)
        for (int i = 0; i < hd / 2; i++) {
            xp[r * hd + i] = xa[r * hd + 2 * i];
            xp[r * hd + hd / 2 + i] = xa[r * hd + 2 * i + 1];
        }
    tr_tensor *ya = tr_rope(&g, x, pos, (tr_rope_params){10000.0f, TR_ROPE_ADJACENT, 1.0f});
    tr_tensor *yh = tr_rope(&g, xh, pos, (tr_rope_params){10000.0f, TR_ROPE_HALF, 1.0f});
    ya->is_output = yh->is_output = 1;
    CHECK(cpu.ref->iface->graph_compute(cpu.ref, &g) == TR_OK, "rope: %s", tr_last_error());
    float *a = ya->data, *h = yh->data, worst = 0;
    for (int r = 0; r < H * T; r++)
        for (int i = 0; i < hd / 2; i++) {
            worst = fmaxf(worst, fabsf(a[r * hd + 2 * i] - h[r * hd + i]));
            worst = fmaxf(worst, fabsf(a[r * hd + 2 * i + 1] - h[r * hd + hd / 2 + i]));
        }
    CHECK(worst == 0.0f, "rope layouts differ by %g", (double)worst);
    op_release(&g);
}

static void test_half(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tr_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        bad += tr_f32_to_f16(f) != h;
        bad += tr_f32_to_bf16(tr_bf16_to_f32((uint16_t)h)) != h && !isnan(tr_bf16_to_f32((uint16_t)h));
    }
    CHECK(bad == 0, "%d half/bfloat16 values do not round-trip", bad);
    int differ = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = tr_f16_to_f32((uint16_t)h), b = tr_f16_to_f32_nobranch((uint16_t)h);
        differ += memcmp(&a, &b, 4) != 0;
    }
    CHECK(differ == 0, "tr_f16_to_f32_nobranch differs from tr_f16_to_f32 on %d of 65536 halves", differ);
    CHECK(tr_f32_to_f16(1.0f) == 0x3c00 && tr_f32_to_f16(65504.0f) == 0x7bff && tr_f32_to_f16(1e6f) == 0x7c00,
          "f16 encodings");
    CHECK(tr_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "f16 ties round to even");
    CHECK(tr_f32_to_f16(5.9604645e-8f) == 0x0001 && tr_f32_to_f16(2.9e-8f) == 0, "f16 subnormals");
    CHECK(tr_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties round to even");
}

/* A chain long enough for the planner to reuse memory: the result must equal the one computed
 * with every intermediate kept, and the plan must be smaller. */
static void test_memplan(void)
{
    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *x = op_leaf(&g, TR_F32, 2, (int64_t[]){64, 8}, 1, OP_HOST);
    tr_tensor *w = op_leaf(&g, TR_F32, 2, (int64_t[]){64, 64}, 0.2f, OP_HOST);
    tr_tensor *n = op_leaf(&g, TR_F32, 1, (int64_t[]){64}, 1, OP_HOST);
    tr_tensor *h = x;
    for (int i = 0; i < 12; i++)
        h = tr_add(&g, h, tr_matmul(&g, tr_rms_norm(&g, h, n, 1e-5f), w));
    tr_tensor *last = tr_view_rows(&g, h, 7, 1);
    last->is_output = 1;
    size_t reuse = tr_memplan(&g, 64, 0), keep = tr_memplan(&g, 64, 1);
    CHECK(reuse < keep / 4, "memory plan reuses nothing: %zu vs %zu bytes", reuse, keep);
    reuse = tr_memplan(&g, 64, 0);
    for (int i = 0; i < g.n_nodes; i++) {
        const tr_tensor *t = g.nodes[i];
        if (t->op != TR_OP_VIEW)
            CHECK(t->offset + tr_nbytes(t) <= reuse, "node %d ends at %zu, past the plan's %zu bytes", i,
                  t->offset + tr_nbytes(t), reuse);
    }
    float *a, *b;
    op_run(&cpu, 1, &g, &last, 1, &a);
    op_run(&cpu, 0, &g, &last, 1, &b);
    CHECK(tr_nmse(b, a, 64) < 1e-9, "memory reuse changed the result");
    free(a);
    free(b);
    op_release(&g);
}

/* The decode bound `transit bench` reads (cpu_read_rate): ranges of any length, chunks of 1 MiB and
 * tails shorter than one load, spread over the threads; a rate, and none for no ranges. (How fast is
 * a benchmark's business, not a test's.) */
static void test_read_rate(tr_backend *b)
{
    size_t sizes[4] = {(size_t)3 << 20 | 5, 63, 1, (size_t)1 << 20};
    const void *ptr[4];
    char *mem[4];
    for (int i = 0; i < 4; i++) {
        mem[i] = calloc(1, sizes[i]);
        ptr[i] = mem[i];
    }
    double r = b->iface->read_rate(b, ptr, sizes, 4);
    CHECK(r > 0 && r < 1e15, "read rate %g", r);
    CHECK(b->iface->read_rate(b, ptr, sizes, 0) == 0, "no ranges, no rate");
    for (int i = 0; i < 4; i++)
        free(mem[i]);
}

/* Q4_K weights that a decode product meets are interleaved 16 rows at a time (cpu/repack.c) the
 * first time, and prefill then unpacks that copy: one graph with a decode and a prefill product of
 * the same weights, against the reference, on a backend of its own each time (the copies are keyed
 * by the weights' address, which the op cases reuse). Rows not a multiple of 16 keep the file's
 * layout. The workspace the backend reports (which counts the copies) says the copy was made. */
static void test_repacked_q4_K(const tr_cpu_kernel_set *set)
{
    if (!set->repack)
        return;
    {
    const int64_t shapes[][2] = {{256, 16}, {512, 48}, {768, 272}, {256, 40}}; /* K, N */
    for (int i = 0; i < 4; i++) {
        int64_t K = shapes[i][0], N = shapes[i][1];
        tr_backend_options fo = {.n_threads = 2, .cpu_kernels = set->name};
        op_target t = {.name = "cpu repacked", .ref = cpu.ref};
        if (tr_backend_create("cpu", &fo, &t.backend) != TR_OK) {
            CHECK(0, "cpu backend: %s", tr_last_error());
            return;
        }
        char name[96];
        snprintf(name, sizeof name, "matmul q4_K repacked K=%lld N=%lld T=1,3,20", (long long)K, (long long)N);
        op_seed(name);
        tr_graph g;
        tr_graph_init(&g);
        tr_tensor *w = op_leaf(&g, TR_Q4_K, 2, (int64_t[]){K, N}, 0.5f, OP_DEVICE);
        w->is_weight = 1;
        tr_tensor *outs[3];
        const int64_t Ts[] = {1, 3, 20};
        for (int k = 0; k < 3; k++)
            outs[k] = tr_matmul(&g, op_leaf(&g, TR_F32, 2, (int64_t[]){K, Ts[k]}, 1, OP_HOST), w);
        op_compare(&t, &g, outs, 3, OP_BOUND_QUANT, "matmul q4_K repacked", name, NULL);
        size_t act = 0, ws = 0;
        t.backend->iface->memory(t.backend, &act, &ws);
        size_t copy = (size_t)(N / 16) * (size_t)(K / 256) * sizeof(q4_K_x16);
        if (N % 16 == 0) /* (otherwise the results above are the check: the interleaved kernel has no tail) */
            CHECK(ws >= copy, "%s: workspace %zu bytes, less than the interleaved copy's %zu", name, ws, copy);
        op_release(&g);
        tr_backend_free(t.backend);
    }
    }
}

/* The kernel sets (cpu/kernel_set.h): the best this CPU runs is the default, a name picks another
 * (TRANSIT_CPU_KERNELS, the options), and one the CPU cannot run or that is not built is refused by
 * name rather than left to fault. */
static void test_kernel_set_choice(void)
{
    int n, forced;
    const tr_cpu_kernel_set *const *sets = tr_cpu_kernel_sets(&n), *got;
    const char *env = getenv("TRANSIT_CPU_KERNELS");
    CHECK(tr_cpu_kernel_set_choose(NULL, &got, &forced) == TR_OK, "choose: %s", tr_last_error());
    int best = 0;
    while (best < n && !tr_cpu_runs(sets[best]))
        best++;
    if (!env || !*env)
        CHECK(best < n && got == sets[best] && !forced, "the default is the best set this CPU runs, got %s", got->name);
    char have[512];
    tr_cpu_feature_names(tr_cpu_features(), have, sizeof have);
    printf("cpu features: %s\n", have);
    for (int i = 0; i < n; i++) {
        tr_status st = tr_cpu_kernel_set_choose(sets[i]->name, &got, &forced);
        if (i >= best)
            CHECK(st == TR_OK && got == sets[i] && forced, "choosing %s: %s", sets[i]->name, tr_last_error());
        else
            CHECK(st == TR_ERR_UNSUPPORTED && strstr(tr_last_error(), "lacks"), "%s on a CPU without it: %s",
                  sets[i]->name, tr_last_error());
    }
    CHECK(tr_cpu_kernel_set_choose("avx9000", &got, &forced) == TR_ERR_INVALID_ARG &&
              strstr(tr_last_error(), "not built (built: "), "an unknown set: %s", tr_last_error());
}

int main(void)
{
    tr_backend_options ro = {.n_threads = 1, .reference = 1};
    if (tr_backend_create("cpu", &ro, &cpu.ref) != TR_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", tr_last_error());
        return 1;
    }
    test_half();
    test_kernel_set_choice();
#ifdef TR_TEST_AVX2
    if (tr_cpu_features() & TR_CPU_AVX2 && tr_cpu_features() & TR_CPU_FMA)
        test_vector_exp_avx2();
#endif
    /* every kernel set this CPU runs, each against the reference: a lower set is what another CPU gets */
    int n, best = 0;
    const tr_cpu_kernel_set *const *sets = tr_cpu_kernel_sets(&n);
    while (best < n && !tr_cpu_runs(sets[best]))
        best++;
    for (int i = 0; i < n; i++) {
        if (!tr_cpu_runs(sets[i])) {
            printf("kernel set %s: not run (this CPU lacks what it needs)\n", sets[i]->name);
            continue;
        }
#ifdef TR_SANITIZE
        if (i != best && i != n - 1) { /* the best and the lowest under the sanitizers; all in the normal build */
            printf("kernel set %s: left to the normal build under the sanitizers\n", sets[i]->name);
            continue;
        }
#endif
        char name[64];
        snprintf(name, sizeof name, "cpu %s", sets[i]->name);
        tr_backend_options fo = {.n_threads = 3, .cpu_kernels = sets[i]->name};
        if (tr_backend_create("cpu", &fo, &cpu.backend) != TR_OK) {
            CHECK(0, "cpu backend with %s: %s", sets[i]->name, tr_last_error());
            continue;
        }
        cpu.name = name;
        op_cases_run(&cpu);
        test_read_rate(cpu.backend);
        test_repacked_q4_K(sets[i]);
        tr_backend_free(cpu.backend);
    }
    test_rope_layouts();
    tr_backend_options fo = {.n_threads = 3}; /* the set this CPU gets by default */
    if (tr_backend_create("cpu", &fo, &cpu.backend) == TR_OK) {
        cpu.name = "cpu";
        test_memplan();
        tr_backend_free(cpu.backend);
    } else {
        CHECK(0, "cpu backend: %s", tr_last_error());
    }
    op_print_summary();
    tr_backend_free(cpu.ref);
    return tr_test_finish("test_ops");
}
