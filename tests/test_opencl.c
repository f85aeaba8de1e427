/* test_opencl.c: the OpenCL backend against the CPU reference kernels (design §6), on whatever
 * OpenCL device is here (PoCL on the CPU in CI).
 *
 *   - the op case table (op_cases.h: every op on awkward sizes, every weight dtype, head sizes 6 to
 *     256, GQA, decode and prefill, long caches, transition rows, differential attention, RoPE
 *     scaling, sequence batches), with every device leaf in its own buffer between guard bytes
 *     (op_harness.h) and the backend's guard mode around every intermediate node;
 *   - the device's limits: a buffer or a graph beyond the (lowered) largest allocation is a clear
 *     error; a kernel source that does not build is an error carrying the driver's build log;
 *     TRANSIT_FAULT=matmul is visible;
 *   - end to end on ../shared/models (stories260K GGUF and HF, aidreams260K HF) and the default
 *     model: logits within 1e-6 NMSE of the CPU's with and without the Attention Transition, whole
 *     and chunked, weights split over buffers, 64 identical greedy tokens, and quantized models
 *     within design §10's bound.
 * Exits 77 (ctest: skipped) when the backend is not compiled in or there is no OpenCL device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_e2e.h"
#include "model.h"
#include "op_cases.h"
#include "test_util.h"
#ifdef TR_HAVE_OPENCL_DEBUG
#include "cl_debug.h"
#endif

#define BOUND_E2E 1e-6 /* design §6: whole-model logits, f32 weights */

#ifndef TR_HAVE_OPENCL_DEBUG
int main(void)
{
    printf("test_opencl: skipped: the OpenCL backend is not compiled in (needs the OpenCL headers and ICD loader)\n");
    return 77;
}
#else

static tr_backend *ref;

static tr_backend *create(const tr_opencl_debug *dbg)
{
    tr_opencl_set_debug(dbg);
    tr_backend *b = NULL;
    tr_backend_options o = {0};
    if (tr_backend_create("opencl", &o, &b) != TR_OK) {
        CHECK(0, "opencl backend: %s", tr_last_error());
        return NULL;
    }
    return b;
}

static void run_ops(void)
{
    tr_opencl_debug dbg = {.guard_nodes = 1};
    tr_backend *cl = create(&dbg);
    if (!cl)
        return;
    char line[4096];
    cl->iface->describe(cl, line, sizeof line);
    printf("%s\n", line);
    op_target t = {.name = "opencl", .ref = ref, .backend = cl, .device_copies = 1};
    op_cases_run(&t);
    tr_backend_free(cl);
}

/* A small graph: y = x W + x W, with x {32, 3} and W {32, 5} in device memory (or host memory). */
static tr_tensor *small_graph(tr_graph *g, op_where where)
{
    tr_tensor *x = op_leaf(g, TR_F32, 2, (int64_t[]){32, 3}, 1, where);
    tr_tensor *w = op_leaf(g, TR_F32, 2, (int64_t[]){32, 5}, 1, where);
    return tr_add(g, tr_matmul(g, x, w), tr_matmul(g, x, w));
}

/* TRANSIT_FAULT=matmul must break this backend's matmul visibly: what `transit parity` relies on. */
static void test_fault(void)
{
    setenv("TRANSIT_FAULT", "matmul", 1);
    tr_opencl_debug dbg = {0};
    tr_backend *cl = create(&dbg);
    unsetenv("TRANSIT_FAULT");
    if (!cl)
        return;
    op_target t = {.name = "opencl fault", .ref = ref, .backend = cl, .device_copies = 1};
    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *y = small_graph(&g, OP_DEVICE);
    float *a = NULL, *b = NULL;
    op_run(&t, 0, &g, &y, 1, &a);
    op_run(&t, 1, &g, &y, 1, &b);
    double e = a && b ? tr_nmse(a, b, (size_t)tr_nelements(y)) : 0;
    CHECK(e > 1e-3, "TRANSIT_FAULT=matmul left the result intact (NMSE %.3g)", e);
    printf("[fault] TRANSIT_FAULT=matmul: NMSE %.2e (a broken kernel is visible)\n", e);
    free(a);
    free(b);
    op_release(&g);
    tr_backend_free(cl);
}

/* A kernel source the driver cannot build: the graph fails with the driver's log, naming the
 * undefined identifier, and nothing crashes. */
static void test_build_failure(void)
{
    setenv("TRANSIT_OPENCL_CACHE", "off", 1);
    tr_opencl_debug dbg = {.extra_source = "kernel void broken(global float *x) { x[0] = no_such_identifier; }"};
    tr_backend *cl = create(&dbg);
    unsetenv("TRANSIT_OPENCL_CACHE");
    if (!cl)
        return;
    tr_graph g;
    tr_graph_init(&g);
    small_graph(&g, OP_HOST);
    tr_status s = cl->iface->graph_compute(cl, &g);
    const char *msg = tr_last_error();
    CHECK(s != TR_OK, "a program that cannot build ran");
    CHECK(strstr(msg, "build log") && strstr(msg, "no_such_identifier"),
          "the error does not carry the driver's build log: '%.300s'", msg);
    printf("[build failure] %.160s...\n", msg);
    op_release(&g);
    tr_backend_free(cl);
}

/* The largest allocation (lowered to 64 KiB): a buffer above it is refused with both sizes named,
 * and so is a graph whose intermediates need more; below it all works. */
static void test_alloc_limit(void)
{
    tr_opencl_debug dbg = {.max_alloc = 64 << 10};
    tr_backend *cl = create(&dbg);
    if (!cl)
        return;
    tr_buffer *buf = NULL;
    tr_status s = cl->iface->buffer_alloc(cl, 1 << 20, &buf);
    CHECK(s == TR_ERR_NOMEM && strstr(tr_last_error(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"),
          "a 1 MiB buffer over a 64 KiB limit: status %d, '%s'", (int)s, tr_last_error());
    cl->iface->buffer_free(buf);
    s = cl->iface->buffer_alloc(cl, 32 << 10, &buf);
    CHECK(s == TR_OK, "a 32 KiB buffer under a 64 KiB limit: %s", tr_last_error());
    cl->iface->buffer_free(buf);

    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *x = op_leaf(&g, TR_F32, 2, (int64_t[]){256, 256}, 1, OP_HOST); /* 256 KiB of activations */
    tr_add(&g, x, x);
    s = cl->iface->graph_compute(cl, &g);
    CHECK(s == TR_ERR_NOMEM && strstr(tr_last_error(), "largest allocation"),
          "a graph over the allocation limit: status %d, '%s'", (int)s, tr_last_error());
    printf("[alloc limit] %s\n", tr_last_error());
    op_release(&g);
    tr_backend_free(cl);
}

/* 64 greedy tokens of the default model (models/default, a HF directory in float16), one at a time,
 * identical on both backends. */
static void e2e_default_greedy(void)
{
    const char *path = TR_GOLDEN_DIR "/../../models/default";
    tr_model *a = tr_test_load_path(path, "cpu-ref"), *b = tr_test_load_path(path, "opencl");
    int32_t prompt[16] = {0};
    int n_prompt = 0;
    const char *text = "First Citizen:";
    if (a && b && tr_tokenize(a, text, strlen(text), 1, prompt, 16, &n_prompt) != TR_OK)
        n_prompt = 0;
    CHECK(n_prompt > 0, "tokenizing the prompt: %s", tr_last_error());
    if (n_prompt > 0) {
        float *sa = NULL, *sb = NULL;
        int32_t *ga = tr_test_greedy(a, prompt, n_prompt, 64, NULL, &sa);
        int32_t *gb = tr_test_greedy(b, prompt, n_prompt, 64, NULL, &sb);
        int same = 0;
        while (ga && gb && same < 64 && ga[same] == gb[same])
            same++;
        printf("e2e models/default greedy: %d of 64 tokens identical to the cpu's\n", same);
        CHECK(same == 64, "default model: greedy tokens differ at %d", same);
        free(ga);
        free(gb);
        free(sa);
        free(sb);
    }
    tr_model_free(a);
    tr_model_free(b);
}

int main(void)
{
    tr_opencl_debug none = {0};
    tr_opencl_set_debug(&none);
    tr_backend *probe = NULL;
    tr_backend_options o = {0};
    if (tr_backend_create("opencl", &o, &probe) != TR_OK) {
        printf("test_opencl: skipped: %s\n", tr_last_error());
        return 77;
    }
    tr_backend_free(probe);
    tr_backend_options ro = {.n_threads = 1, .reference = 1};
    if (tr_backend_create("cpu", &ro, &ref) != TR_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", tr_last_error());
        return 1;
    }

    TIMED(run_ops());
    TIMED(test_fault());
    TIMED(test_build_failure());
    TIMED(test_alloc_limit());
    printf("\n");
    op_print_summary();

    tr_opencl_set_debug(&none);
    const int batches[] = {0, 7};
    double plain = 0, transition = 0;
    TIMED(plain = fmax(plain, tr_test_golden_logits("models/stories260K/stories260K.gguf", "stories260K", "opencl",
                                                    batches, 2, BOUND_E2E)));
    TIMED(plain = fmax(plain, tr_test_golden_logits("models/stories260K/hf", "stories260K", "opencl", batches, 2,
                                                    BOUND_E2E)));
    TIMED(plain = fmax(plain, tr_test_golden_logits("models/aidreams260K/hf", "aidreams260K", "opencl", batches, 2,
                                                    BOUND_E2E)));
    TIMED(plain = fmax(plain, backend_e2e_split_weights("opencl", BOUND_E2E)));
    TIMED(transition = fmax(transition, backend_e2e_transition("stories260K", "opencl", BOUND_E2E)));
    TIMED(transition = fmax(transition, backend_e2e_transition("aidreams260K", "opencl", BOUND_E2E)));
    TIMED(backend_e2e_greedy("models/stories260K/stories260K.gguf", "models/stories260K/expected_greedy.json", "opencl"));
    TIMED(backend_e2e_greedy("models/aidreams260K/hf", "models/aidreams260K/expected_greedy.json", "opencl"));
    TIMED(e2e_default_greedy());
    printf("e2e worst logits NMSE: plain %.2e, transition %.2e\n", plain, transition);
    static const char *const qtypes[] = {"q8_0", "q4_0", "q4_k_m", "q6_k"};
    for (int i = 0; i < 4; i++)
        TIMED(tr_test_quantized_model(TR_GOLDEN_DIR "/../../models/default", qtypes[i], "opencl", i == 0 ? 64 : 16,
                                      5e-4));
    tr_backend_free(ref);
    return tr_test_finish("test_opencl");
}
#endif
