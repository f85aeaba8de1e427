/* test_vulkan.c: the Vulkan backend against the CPU reference kernels (design §6).
 *
 *   - the op case table (op_cases.h: every op on awkward sizes, every weight dtype, head sizes 6 to
 *     256, GQA, decode and prefill, long caches, transition rows, RoPE scaling), and RoPE nodes with
 *     each scaling on the same positions in one graph (each its own angle table);
 *   - on three device configurations: the device as it is; without 16-bit storage and subgroup
 *     arithmetic (the packed and shared-memory shader variants); and with maxStorageBufferRange
 *     lowered to 64 KiB so that operands are split into sub-range pieces, and attention over a cache
 *     past that range must be refused by name;
 *   - every device leaf sits in its own buffer between guard bytes that must come back unchanged
 *     (op_harness.h), and the backend's guard mode puts guards around every intermediate node too;
 *   - end to end on ../shared/models (stories260K GGUF and HF, aidreams260K HF): logits within 1e-6
 *     NMSE of the CPU's with and without the Attention Transition, whole and chunked prefill, and 64
 *     identical greedy tokens;
 *   - the Khronos validation layer is on, and any message it reports fails the test.
 * Exits 77 (ctest: skipped) when the backend is not compiled in or there is no Vulkan device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "backend.h"
#include "backend_e2e.h"
#include "model.h"
#include "op_cases.h"
#include "test_util.h"
#include "transition.h"
#ifdef TR_HAVE_VULKAN_DEBUG
#include "vk_debug.h"
#endif

#define BOUND_E2E 1e-6 /* design §6: whole-model logits, f32 weights */

#ifndef TR_HAVE_VULKAN_DEBUG
int main(void)
{
    printf("test_vulkan: skipped: the Vulkan backend is not compiled in (needs Vulkan headers, loader and glslc)\n");
    return 77;
}
#else

static tr_backend *ref, *vk;
static size_t max_range; /* the configuration's storage buffer range (0: the device's) */

/* Attention binds a layer's whole cache (docs/vulkan.md): where it cannot, the backend must refuse
 * with TR_ERR_UNSUPPORTED and say why, not compute something else. */
static const char *cache_too_big(const tr_tensor *out)
{
    if (out->op != TR_OP_ATTENTION || !max_range)
        return NULL;
    size_t cache = (size_t)out->p.attn.n_kv * (size_t)out->src[1]->ne[0] * 4;
    return cache + 64 > max_range ? "storage buffer range" : NULL;
}

/* TRANSIT_FAULT=matmul (core/parity.h) must break this backend's matmul visibly: what `transit
 * parity` relies on to prove it would notice a broken kernel. */
static void test_fault(const tr_vulkan_debug *dbg)
{
    tr_vulkan_set_debug(dbg);
    setenv("TRANSIT_FAULT", "matmul", 1);
    tr_backend_options o = {0};
    tr_status s = tr_backend_create("vulkan", &o, &vk);
    unsetenv("TRANSIT_FAULT");
    if (s != TR_OK) {
        CHECK(0, "vulkan backend: %s", tr_last_error());
        return;
    }
    op_target t = {.name = "vulkan fault", .ref = ref, .backend = vk, .device_copies = 1};
    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *x = op_leaf(&g, TR_F32, 2, (int64_t[]){32, 3}, 1, OP_DEVICE);
    tr_tensor *w = op_leaf(&g, TR_F32, 2, (int64_t[]){32, 5}, 1, OP_DEVICE);
    tr_tensor *y = tr_add(&g, tr_matmul(&g, x, w), tr_matmul(&g, x, w));
    float *a, *b;
    op_run(&t, 0, &g, &y, 1, &a);
    op_run(&t, 1, &g, &y, 1, &b);
    double e = tr_nmse(a, b, (size_t)tr_nelements(y));
    CHECK(e > 1e-3, "TRANSIT_FAULT=matmul left the result intact (NMSE %.3g)", e);
    printf("[fault] TRANSIT_FAULT=matmul: NMSE %.2e (a broken kernel is visible)\n", e);
    free(a);
    free(b);
    op_release(&g);
    tr_backend_free(vk);
    vk = NULL;
}

/* RoPE nodes on the same positions with each scaling (none, llama3 divisors in device and in host
 * memory, linear, both) in one graph: each needs its own (cos, sin) table, never another's. */
static void test_rope_tables(const op_target *t)
{
    const int hd = 64, T = 5;
    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *x = op_leaf(&g, TR_F32, 3, (int64_t[]){hd, 3, T}, 1, OP_DEVICE);
    tr_tensor *pos = op_int_leaf(&g, T, 32000, 0, OP_HOST);
    tr_tensor *f[2];
    for (int j = 0; j < 2; j++) { /* 1 on the high frequencies, up to 32 on the low */
        f[j] = op_leaf(&g, TR_F32, 1, (int64_t[]){hd / 2}, 1, j ? OP_HOST : OP_DEVICE);
        float *v = f[j]->data;
        for (int i = 0; i < hd / 2; i++)
            v[i] = 1.0f + 31.0f * (float)i / (float)(hd / 2) * (0.75f + 0.25f * v[i]);
    }
    tr_rope_params plain = {.theta = 500000.0f, .layout = TR_ROPE_HALF}, linear = plain;
    linear.freq_scale = 0.125f;
    tr_tensor *outs[5] = {tr_rope_ext(&g, x, pos, NULL, plain)};
    outs[1] = tr_rope_ext(&g, x, pos, f[0], plain);
    outs[2] = tr_rope_ext(&g, x, pos, f[1], plain);
    outs[3] = tr_rope_ext(&g, x, pos, NULL, linear);
    outs[4] = tr_rope_ext(&g, x, pos, f[0], linear);
    op_compare(t, &g, outs, 5, OP_BOUND_ELEMENTWISE, "rope tables",
               "rope hd=64 none, factors (device, host), linear/8, factors + linear/8 on one pos", NULL);
    op_release(&g);
}

static void run_ops(const char *name, const tr_vulkan_debug *dbg)
{
    tr_vulkan_set_debug(dbg);
    tr_backend_options o = {0};
    if (tr_backend_create("vulkan", &o, &vk) != TR_OK) {
        CHECK(0, "[%s] vulkan backend: %s", name, tr_last_error());
        return;
    }
    max_range = dbg->max_range;
    char line[1024], label[64];
    vk->iface->describe(vk, line, sizeof line);
    printf("[%s] %s\n", name, line);
    snprintf(label, sizeof label, "vulkan %s", name);
    op_target t = {.name = label, .ref = ref, .backend = vk, .device_copies = 1, .refusal = cache_too_big};
    op_cases_run(&t);
    test_rope_tables(&t);
    tr_backend_free(vk);
    vk = NULL;
}

/* ---- end to end ----------------------------------------------------------------------------- */

static double e2e_worst_plain, e2e_worst_transition;

/* The golden prompts' logits, whole and in chunks of 7. */
static void e2e_logits(const char *model_rel, const char *name)
{
    const int batches[] = {0, 7};
    e2e_worst_plain = fmax(e2e_worst_plain, tr_test_golden_logits(model_rel, name, "vulkan", batches, 2, BOUND_E2E));
}

/* The copy bandwidth `transit bench` holds decode to (vk_measure.c): measurable, and without a
 * validation message (checked at the end with the rest). */
static void test_bandwidth(const tr_vulkan_debug *dbg)
{
    tr_vulkan_set_debug(dbg);
    tr_backend_options o = {0};
    if (tr_backend_create("vulkan", &o, &vk) != TR_OK) {
        CHECK(0, "vulkan backend: %s", tr_last_error());
        return;
    }
    double bw = vk->iface->bandwidth(vk);
    CHECK(bw > 0, "vulkan bandwidth: %g (%s)", bw, tr_last_error());
    printf("[bandwidth] device copies: %.1f GB/s (bytes read + written)\n", bw / 1e9);
    tr_backend_free(vk);
    vk = NULL;
}

int main(void)
{
    const char *want = getenv("TRANSIT_VK_VALIDATION");
    int validation = !(want && !strcmp(want, "0"));
    tr_vulkan_debug dbg = {.validation = validation, .guard_nodes = 1};
    tr_vulkan_set_debug(&dbg);
    tr_backend_options o = {0};
    if (tr_backend_create("vulkan", &o, &vk) != TR_OK) {
        printf("test_vulkan: skipped: %s\n", tr_last_error());
        return 77;
    }
    tr_backend_free(vk);
    vk = NULL;
    if (validation && !tr_vulkan_validation_active())
        printf("test_vulkan: NOTE: VK_LAYER_KHRONOS_validation is not installed; running without it\n");
    tr_backend_options ro = {.n_threads = 1, .reference = 1};
    if (tr_backend_create("cpu", &ro, &ref) != TR_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", tr_last_error());
        return 1;
    }

    run_ops("device", &dbg);
    tr_vulkan_debug plain = dbg;
    plain.no_16bit_storage = plain.no_subgroup = 1;
    run_ops("no-16bit-no-subgroup", &plain);
    tr_vulkan_debug small = dbg;
    small.max_range = 64 << 10;
    run_ops("range-64KiB", &small);

    test_fault(&dbg);
    test_bandwidth(&dbg);

    printf("\n");
    op_print_summary(); /* over all three configurations */

    tr_vulkan_debug e2e = {.validation = validation};
    tr_vulkan_set_debug(&e2e);
    TIMED(e2e_logits("models/stories260K/stories260K.gguf", "stories260K"));
    TIMED(e2e_logits("models/stories260K/hf", "stories260K"));
    TIMED(e2e_logits("models/aidreams260K/hf", "aidreams260K"));
    TIMED(e2e_worst_plain = fmax(e2e_worst_plain, backend_e2e_split_weights("vulkan", BOUND_E2E)));
    TIMED(e2e_worst_transition = fmax(e2e_worst_transition, backend_e2e_transition("stories260K", "vulkan", BOUND_E2E)));
    TIMED(e2e_worst_transition = fmax(e2e_worst_transition, backend_e2e_transition("aidreams260K", "vulkan", BOUND_E2E)));
    TIMED(backend_e2e_greedy("models/stories260K/stories260K.gguf", "models/stories260K/expected_greedy.json", "vulkan"));
    TIMED(backend_e2e_greedy("models/stories260K/hf", "models/stories260K/expected_greedy.json", "vulkan"));
    TIMED(backend_e2e_greedy("models/aidreams260K/hf", "models/aidreams260K/expected_greedy.json", "vulkan"));
    printf("e2e worst logits NMSE: plain %.2e, transition %.2e\n", e2e_worst_plain, e2e_worst_transition);
    /* quantized models (docs/quantization.md): the default model in four types, design §10's bound */
    static const char *const qtypes[] = {"q8_0", "q4_0", "q4_k_m", "q6_k"};
    for (int i = 0; i < 4; i++)
        TIMED(tr_test_quantized_model(TR_GOLDEN_DIR "/../../models/default", qtypes[i], "vulkan", i == 0 ? 64 : 16,
                                      5e-4));

    char last[1024];
    long msgs = tr_vulkan_validation_messages(last, sizeof last);
    CHECK(msgs == 0, "%ld validation messages; the last: %s", msgs, last);
    tr_backend_free(ref);
    return tr_test_finish("test_vulkan");
}
#endif
