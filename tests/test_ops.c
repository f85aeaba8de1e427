/* test_ops.c: every op's fast CPU kernel against its reference kernel (design §6 bounds), on
 * awkward sizes and every weight dtype; plus checks of the definitions themselves: RoPE's two
 * layouts are the same rotation up to a permutation, half-precision conversions are exact, and
 * the memory plan's reuse never changes a result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "half.h"
#include "test_util.h"

/* design §6 */
#define BOUND_ELEMENTWISE 1e-7
#define BOUND_MATMUL_F16 5e-4
#define BOUND_MATMUL_F32 1e-9 /* f32 GEMM vs the double-accumulating reference: rounding only */
#define BOUND_ATTENTION 1e-9

static uint64_t rng = 42;
static float frand(void) /* uniform in [-1, 1) */
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng >> 40) * (1.0 / (1 << 24)) * 2.0 - 1.0);
}

static tr_backend *ref_backend, *fast_backend;

/* A leaf with random host data in dtype dt (freed with the test's graph list). */
static void *allocs[256];
static int n_allocs;
static tr_tensor *rand_leaf(tr_graph *g, tr_dtype dt, int ndim, const int64_t *ne, float scale)
{
    tr_tensor *t = tr_new_tensor(g, dt, ndim, ne, "leaf");
    size_t n = (size_t)tr_nelements(t);
    void *data = malloc(tr_nbytes(t));
    for (size_t i = 0; i < n; i++) {
        float v = frand() * scale;
        if (dt == TR_F32)
            ((float *)data)[i] = v;
        else if (dt == TR_F16)
            ((uint16_t *)data)[i] = tr_f32_to_f16(v);
        else if (dt == TR_BF16)
            ((uint16_t *)data)[i] = tr_f32_to_bf16(v);
    }
    t->data = data;
    allocs[n_allocs++] = data;
    return t;
}

static tr_tensor *int_leaf(tr_graph *g, int64_t n, int32_t mod, int32_t offset)
{
    tr_tensor *t = tr_new_tensor_1d(g, TR_I32, n, "ints");
    int32_t *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = (int32_t)(((rng = rng * 6364136223846793005ULL + 1) >> 33) % (uint64_t)mod) + offset;
    t->data = d;
    allocs[n_allocs++] = d;
    return t;
}

static void free_allocs(void)
{
    while (n_allocs)
        free(allocs[--n_allocs]);
}

/* Computes g on backend b and copies node out into a fresh buffer. */
static float *compute(tr_backend *b, tr_graph *g, tr_tensor *out)
{
    out->is_output = 1;
    tr_status s = b->iface->graph_compute(b, g);
    CHECK(s == TR_OK, "compute: %s", tr_last_error());
    float *r = malloc(tr_nbytes(out));
    tr_tensor_get(b, out, r);
    return r;
}

/* Runs the same graph on the reference and the fast backend and compares node out. */
static void compare(tr_graph *g, tr_tensor *out, double bound, const char *what)
{
    /* Inputs that an op writes in place (the KV cache) must start equal for both runs. */
    float *ref = compute(ref_backend, g, out);
    float *fast = compute(fast_backend, g, out);
    double e = tr_nmse(ref, fast, (size_t)tr_nelements(out));
    CHECK(e <= bound, "%s: NMSE %.3g > %.3g", what, e, bound);
    free(ref);
    free(fast);
}

static void test_matmul(void)
{
    const int64_t Ks[] = {8, 67, 300};
    const int64_t Ns[] = {1, 33, 130};
    const int64_t Ts[] = {1, 2, 3, 4, 5, 17, 64};
    const tr_dtype dts[] = {TR_F32, TR_F16, TR_BF16};
    for (size_t d = 0; d < 3; d++)
        for (size_t a = 0; a < 3; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < sizeof Ts / sizeof Ts[0]; c++) {
                    tr_graph g;
                    tr_graph_init(&g);
                    tr_tensor *x = rand_leaf(&g, TR_F32, 2, (int64_t[]){Ks[a], Ts[c]}, 1);
                    tr_tensor *w = rand_leaf(&g, dts[d], 2, (int64_t[]){Ks[a], Ns[b]}, 0.5f);
                    char what[96];
                    snprintf(what, sizeof what, "matmul %s K=%lld N=%lld T=%lld", tr_dtype_name(dts[d]),
                             (long long)Ks[a], (long long)Ns[b], (long long)Ts[c]);
                    compare(&g, tr_matmul(&g, x, w), dts[d] == TR_F32 ? BOUND_MATMUL_F32 : BOUND_MATMUL_F16, what);
                    tr_graph_free(&g);
                    free_allocs();
                }
}

static void test_attention(void)
{
    const int hds[] = {8, 64, 128};
    const int ratios[] = {1, 2, 4, 8};
    const int shapes[][2] = {{0, 1}, {0, 37}, {11, 1}, {5, 9}}; /* n_past, T */
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t c = 0; c < 4; c++) {
                int hd = hds[a], Hkv = 2, H = Hkv * ratios[b], n_past = shapes[c][0], T = shapes[c][1];
                int C = n_past + T + 3;
                tr_graph g;
                tr_graph_init(&g);
                tr_tensor *q = rand_leaf(&g, TR_F32, 3, (int64_t[]){hd, H, T}, 1);
                tr_tensor *k = rand_leaf(&g, TR_F32, 2, (int64_t[]){hd * Hkv, C}, 1);
                tr_tensor *v = rand_leaf(&g, TR_F32, 2, (int64_t[]){hd * Hkv, C}, 1);
                tr_attn_params ap = {.scale = 1.0f / sqrtf((float)hd), .n_past = n_past, .n_kv = n_past + T};
                char what[96];
                snprintf(what, sizeof what, "attention hd=%d H=%d Hkv=%d n_past=%d T=%d", hd, H, Hkv, n_past, T);
                compare(&g, tr_attention(&g, q, k, v, &ap), BOUND_ATTENTION, what);
                tr_graph_free(&g);
                free_allocs();
            }
}

/* The transition variant: the literal reference (materialised rows, design §3 step by step) and
 * the fused two-pass kernel agree, for both strategies, non-default parameters, GQA, and chunks
 * that start or end inside a block. Inputs are redrawn until every weight of a touched row is at
 * least 1e-5 relative away from the threshold, so rounding cannot flip an elimination. */
static void test_attention_transition(void)
{
    struct {
        int hd, H, Hkv, n_past, T, iv, n_blocks, first;
        float alpha, beta;
        int strategy;
    } cases[] = {
        {8, 4, 2, 0, 60, 10, 2, 20, 0.5f, 0.1f, TR_TRANSITION_ADDING},
        {64, 8, 2, 0, 75, 10, 3, 20, 0.5f, 0.1f, TR_TRANSITION_ADDING},
        {16, 4, 4, 25, 20, 10, 2, 20, 0.9f, 0.3f, TR_TRANSITION_ADDING}, /* chunk cuts both blocks */
        {8, 8, 1, 33, 1, 10, 2, 20, 0.5f, 0.1f, TR_TRANSITION_ADDING},   /* one row inside a block */
        {8, 4, 2, 0, 60, 10, 2, 20, 0.5f, 0.1f, TR_TRANSITION_MULTI},
        {128, 4, 1, 12, 40, 5, 2, 15, 0.25f, 0.1f, TR_TRANSITION_MULTI},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int hd = cases[i].hd, H = cases[i].H, Hkv = cases[i].Hkv, n_past = cases[i].n_past, T = cases[i].T;
        int C = n_past + T + 2;
        tr_attn_params ap = {.scale = 1.0f / sqrtf((float)hd), .n_past = n_past, .n_kv = n_past + T,
                             .variant = TR_ATTN_TRANSITION};
        ap.transition.n_blocks = cases[i].n_blocks;
        ap.transition.iv = cases[i].iv;
        for (int j = 0; j < cases[i].n_blocks; j++)
            ap.transition.start[j] = cases[i].first + j * cases[i].iv;
        ap.transition.alpha = cases[i].alpha;
        ap.transition.beta = cases[i].beta;
        ap.transition.strategy = cases[i].strategy;
        for (int attempt = 0; attempt < 50; attempt++) {
            tr_graph g;
            tr_graph_init(&g);
            tr_tensor *q = rand_leaf(&g, TR_F32, 3, (int64_t[]){hd, H, T}, 2);
            tr_tensor *k = rand_leaf(&g, TR_F32, 2, (int64_t[]){hd * Hkv, C}, 2);
            tr_tensor *v = rand_leaf(&g, TR_F32, 2, (int64_t[]){hd * Hkv, C}, 1);
            double margin = tr_test_transition_margin(q, k, &ap, q->data, k->data);
            if (margin >= 1e-5) {
                char what[128];
                snprintf(what, sizeof what, "transition %s hd=%d H=%d Hkv=%d n_past=%d T=%d (margin %.1e)",
                         cases[i].strategy ? "multi" : "adding", hd, H, Hkv, n_past, T, margin);
                tr_tensor *plain_q = q;
                tr_attn_params plain = ap;
                plain.variant = TR_ATTN_PLAIN;
                tr_tensor *a = tr_attention(&g, q, k, v, &ap), *b = tr_attention(&g, plain_q, k, v, &plain);
                compare(&g, a, BOUND_ATTENTION, what);
                /* and the variant really changes the touched rows */
                a->is_output = b->is_output = 1;
                fast_backend->iface->graph_compute(fast_backend, &g);
                CHECK(tr_nmse(b->data, a->data, (size_t)tr_nelements(a)) > 1e-8, "%s: no effect", what);
                attempt = 50;
            }
            tr_graph_free(&g);
            free_allocs();
        }
    }
}

/* Elementwise, norm, rope, swiglu, get_rows, kv_write: fast path = reference today, but each runs
 * through both backends so that a future fast kernel is held to the bound automatically. */
static void test_small_ops(void)
{
    const int64_t Ds[] = {1, 8, 67};
    for (size_t i = 0; i < 3; i++) {
        int64_t D = Ds[i], T = 5;
        tr_graph g;
        tr_graph_init(&g);
        tr_tensor *x = rand_leaf(&g, TR_F32, 2, (int64_t[]){D, T}, 2);
        tr_tensor *y = rand_leaf(&g, TR_F32, 2, (int64_t[]){D, T}, 2);
        tr_tensor *w = rand_leaf(&g, TR_F16, 1, (int64_t[]){D}, 1);
        tr_tensor *row = rand_leaf(&g, TR_F32, 1, (int64_t[]){D}, 1);
        compare(&g, tr_add(&g, x, y), BOUND_ELEMENTWISE, "add");
        compare(&g, tr_mul(&g, x, y), BOUND_ELEMENTWISE, "mul");
        compare(&g, tr_mul(&g, x, row), BOUND_ELEMENTWISE, "mul broadcast");
        compare(&g, tr_rms_norm(&g, x, w, 1e-5f), BOUND_ELEMENTWISE, "rms_norm");
        compare(&g, tr_swiglu(&g, x, y), BOUND_ELEMENTWISE, "swiglu");
        tr_tensor *table = rand_leaf(&g, TR_BF16, 2, (int64_t[]){D, 50}, 1);
        compare(&g, tr_get_rows(&g, table, int_leaf(&g, 9, 50, 0)), BOUND_ELEMENTWISE, "get_rows");
        tr_graph_free(&g);
        free_allocs();
    }
    for (int layout = 0; layout < 2; layout++) {
        tr_graph g;
        tr_graph_init(&g);
        tr_tensor *x = rand_leaf(&g, TR_F32, 3, (int64_t[]){64, 3, 7}, 1);
        tr_rope_params rp = {.theta = 10000.0f, .layout = (tr_rope_layout)layout};
        compare(&g, tr_rope(&g, x, int_leaf(&g, 7, 5000, 0), rp), BOUND_ELEMENTWISE, "rope");
        tr_graph_free(&g);
        free_allocs();
    }
}

/* The two RoPE layouts are one rotation applied to differently ordered pairs: permuting the input
 * from adjacent to half order, rotating in the half layout, and permuting back must equal the
 * adjacent-layout rotation. This pins down which elements pair up, not only consistency. */
static void test_rope_layouts(void)
{
    const int hd = 16, H = 2, T = 3;
    tr_graph g;
    tr_graph_init(&g);
    tr_tensor *x = rand_leaf(&g, TR_F32, 3, (int64_t[]){hd, H, T}, 1);
    tr_tensor *pos = int_leaf(&g, T, 100, 1);
    tr_tensor *xh = rand_leaf(&g, TR_F32, 3, (int64_t[]){hd, H, T}, 1);
    float *xa = x->data, *xp = xh->data;
    for (int r = 0; r < H * T; r++)
        for (int i = 0; i < hd / 2; i++) {
            xp[r * hd + i] = xa[r * hd + 2 * i];
            xp[r * hd + hd / 2 + i] = xa[r * hd + 2 * i + 1];
        }
    tr_tensor *ya = tr_rope(&g, x, pos, (tr_rope_params){10000.0f, TR_ROPE_ADJACENT});
    tr_tensor *yh = tr_rope(&g, xh, pos, (tr_rope_params){10000.0f, TR_ROPE_HALF});
    ya->is_output = yh->is_output = 1;
    CHECK(ref_backend->iface->graph_compute(ref_backend, &g) == TR_OK, "rope: %s", tr_last_error());
    float *a = ya->data, *h = yh->data, worst = 0;
    for (int r = 0; r < H * T; r++)
        for (int i = 0; i < hd / 2; i++) {
            worst = fmaxf(worst, fabsf(a[r * hd + 2 * i] - h[r * hd + i]));
            worst = fmaxf(worst, fabsf(a[r * hd + 2 * i + 1] - h[r * hd + hd / 2 + i]));
        }
    CHECK(worst == 0.0f, "rope layouts differ by %g", (double)worst);
    /* and position 0 is the identity */
    tr_graph_free(&g);
    free_allocs();
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
    tr_tensor *x = rand_leaf(&g, TR_F32, 2, (int64_t[]){64, 8}, 1);
    tr_tensor *w = rand_leaf(&g, TR_F32, 2, (int64_t[]){64, 64}, 0.2f);
    tr_tensor *n = rand_leaf(&g, TR_F32, 1, (int64_t[]){64}, 1);
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
    float *a = compute(fast_backend, &g, last);
    float *b = compute(ref_backend, &g, last);
    CHECK(tr_nmse(b, a, 64) < 1e-9, "memory reuse changed the result");
    free(a);
    free(b);
    tr_graph_free(&g);
    free_allocs();
}

int main(void)
{
    tr_backend_options ro = {.n_threads = 1, .reference = 1}, fo = {.n_threads = 3};
    if (tr_backend_create("cpu", &ro, &ref_backend) != TR_OK || tr_backend_create("cpu", &fo, &fast_backend) != TR_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", tr_last_error());
        return 1;
    }
    test_half();
    test_matmul();
    test_attention();
    test_attention_transition();
    test_small_ops();
    test_rope_layouts();
    test_memplan();
    tr_backend_free(ref_backend);
    tr_backend_free(fast_backend);
    return tr_test_finish("test_ops");
}
