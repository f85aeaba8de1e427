/* op_harness.c: leaves, guarded device copies and the reference-vs-backend comparison of the per-op
 * tests (op_harness.h). */
#include "op_harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "quant.h"
#include "test_util.h"

#define GUARD 256      /* bytes on each side of a device copy */
#define MAX_LEAVES 512 /* per graph */

/* ---- random values ------------------------------------------------------------------------------ */

static uint64_t rng = 42;

static uint64_t next(void) { return rng = rng * 6364136223846793005ULL + 1442695040888963407ULL; }

float op_frand(void) { return (float)((next() >> 40) * (1.0 / (1 << 24)) * 2.0 - 1.0); }

void op_seed(const char *name)
{
    uint64_t h = 0xCBF29CE484222325ULL; /* FNV-1a of the case's name */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001B3ULL;
    rng = h;
}

/* ---- leaves ------------------------------------------------------------------------------------- */

typedef struct leaf {
    tr_tensor *t;
    void *host;     /* what the reference reads; the device copy starts equal to it */
    tr_buffer *buf; /* the device copy: GUARD bytes, the tensor, GUARD bytes */
    op_where where;
} leaf;
static leaf leaves[MAX_LEAVES];
static int n_leaves;

static tr_tensor *add_leaf(tr_graph *g, tr_dtype dt, int ndim, const int64_t *ne, void *data, op_where where)
{
    if (n_leaves == MAX_LEAVES) {
        fprintf(stderr, "op_harness: more than %d leaves in one graph\n", MAX_LEAVES);
        abort();
    }
    tr_tensor *t = tr_new_tensor(g, dt, ndim, ne, "leaf");
    t->data = data;
    leaves[n_leaves++] = (leaf){.t = t, .host = data, .where = where};
    return t;
}

tr_tensor *op_leaf(tr_graph *g, tr_dtype dt, int ndim, const int64_t *ne, float scale, op_where where)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)ne[i];
    if (tr_dtype_is_quant(dt)) { /* random floats quantized row by row (transit's quantizer) */
        float *f = malloc(n * sizeof *f);
        for (size_t i = 0; i < n; i++)
            f[i] = op_frand() * scale;
        size_t rows = n / (size_t)ne[0], row_bytes = tr_row_bytes(dt, ne[0]);
        char *q = malloc(rows * row_bytes);
        for (size_t r = 0; r < rows; r++)
            tr_quantize_row(dt, f + r * (size_t)ne[0], q + r * row_bytes, ne[0]);
        free(f);
        return add_leaf(g, dt, ndim, ne, q, where);
    }
    void *data = malloc(n * tr_dtype_size(dt));
    for (size_t i = 0; i < n; i++) {
        float v = op_frand() * scale;
        if (dt == TR_F32)
            ((float *)data)[i] = v;
        else if (dt == TR_F16)
            ((uint16_t *)data)[i] = tr_f32_to_f16(v);
        else
            ((uint16_t *)data)[i] = tr_f32_to_bf16(v);
    }
    return add_leaf(g, dt, ndim, ne, data, where);
}

tr_tensor *op_int_leaf(tr_graph *g, int64_t n, int32_t mod, int32_t offset, op_where where)
{
    int32_t *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++)
        d[i] = (int32_t)((next() >> 33) % (uint64_t)mod) + offset;
    return add_leaf(g, TR_I32, 1, (int64_t[]){n}, d, where);
}

void op_release(tr_graph *g)
{
    tr_graph_free(g);
    while (n_leaves) {
        leaf *l = &leaves[--n_leaves];
        if (l->buf)
            l->buf->backend->iface->buffer_free(l->buf);
        free(l->host);
    }
}

/* ---- device copies between guard bytes ---------------------------------------------------------- */

/* Position-dependent, so that a write shifted by a few bytes shows too. */
static unsigned char guard_byte(size_t i) { return (unsigned char)(0xA5 ^ (i * 7)); }

static void make_copies(const op_target *t)
{
    for (int i = 0; t->device_copies && i < n_leaves; i++) {
        leaf *l = &leaves[i];
        if (l->where == OP_HOST || l->buf)
            continue;
        size_t n = tr_nbytes(l->t);
        tr_backend *b = t->backend;
        if (b->iface->buffer_alloc(b, n + 2 * GUARD, &l->buf) != TR_OK) {
            CHECK(0, "[%s] buffer_alloc: %s", t->name, tr_last_error());
            l->buf = NULL;
            continue;
        }
        unsigned char *img = malloc(n + 2 * GUARD);
        for (size_t j = 0; j < GUARD; j++)
            img[j] = img[GUARD + n + j] = guard_byte(j);
        memcpy(img + GUARD, l->host, n);
        CHECK(b->iface->upload(l->buf, 0, img, n + 2 * GUARD) == TR_OK, "[%s] upload: %s", t->name, tr_last_error());
        free(img);
    }
}

static void check_guards(const op_target *t, const char *what)
{
    unsigned char got[GUARD];
    for (int i = 0; i < n_leaves; i++) {
        leaf *l = &leaves[i];
        if (!l->buf)
            continue;
        size_t n = tr_nbytes(l->t);
        for (int side = 0; side < 2; side++) {
            size_t bad = 0;
            tr_status s = t->backend->iface->download(l->buf, side ? GUARD + n : 0, got, GUARD);
            for (size_t j = 0; j < GUARD; j++)
                bad += got[j] != guard_byte(j);
            CHECK(s == TR_OK && bad == 0, "[%s] %s: %zu guard bytes %s leaf %d changed", t->name, what, bad,
                  side ? "after" : "before", i);
        }
    }
}

/* Leaves read host memory (device = 0) or their device copies; nodes keep no placement from the
 * other side's run, so that neither can leak into the next. */
static void place(tr_graph *g, int device)
{
    for (int i = 0; i < n_leaves; i++) {
        leaf *l = &leaves[i];
        int dev = device && l->buf;
        l->t->buffer = dev ? l->buf : NULL;
        l->t->offset = dev ? GUARD : 0;
        l->t->data = dev ? NULL : l->host;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i]->buffer = NULL;
        g->nodes[i]->data = NULL;
    }
}

/* ---- running and comparing ---------------------------------------------------------------------- */

int op_run(const op_target *t, int on_backend, tr_graph *g, tr_tensor **outs, int n, float **vals)
{
    tr_backend *b = on_backend ? t->backend : t->ref;
    make_copies(t);
    place(g, on_backend);
    for (int i = 0; i < n; i++)
        outs[i]->is_output = 1;
    tr_status s = b->iface->graph_compute(b, g);
    CHECK(s == TR_OK, "[%s] %s compute: %s", t->name, b->iface->name, tr_last_error());
    for (int i = 0; i < n; i++) {
        vals[i] = calloc((size_t)tr_nelements(outs[i]), sizeof(float));
        if (s == TR_OK)
            CHECK(tr_tensor_get(b, outs[i], vals[i]) == TR_OK, "[%s] %s read: %s", t->name, b->iface->name,
                  tr_last_error());
    }
    return s == TR_OK;
}

/* A graph may write its leaves (a KV write, the sink cache's row moves, which are not idempotent):
 * the reference's run must not change what the backend's run starts from. */
static void **save_leaves(void)
{
    void **saved = calloc((size_t)n_leaves + 1, sizeof *saved);
    for (int i = 0; saved && i < n_leaves; i++)
        if ((saved[i] = malloc(tr_nbytes(leaves[i].t))))
            memcpy(saved[i], leaves[i].host, tr_nbytes(leaves[i].t));
    return saved;
}

static void restore_leaves(void **saved)
{
    for (int i = 0; saved && i < n_leaves; i++) {
        if (saved[i])
            memcpy(leaves[i].host, saved[i], tr_nbytes(leaves[i].t));
        free(saved[i]);
    }
    free(saved);
}

double op_compare(const op_target *t, tr_graph *g, tr_tensor **outs, int n, double bound, const char *family,
                  const char *what, float **got)
{
    float *want[8], *have[8];
    if (n > 8)
        n = 8;
    void **saved = save_leaves();
    op_run(t, 0, g, outs, n, want);
    restore_leaves(saved);
    op_run(t, 1, g, outs, n, have);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = tr_nmse(want[i], have[i], (size_t)tr_nelements(outs[i]));
        if (n > 1)
            CHECK(e <= bound, "[%s] %s (output %d): NMSE %.3g > %.3g", t->name, what, i, e, bound);
        else
            CHECK(e <= bound, "[%s] %s: NMSE %.3g > %.3g", t->name, what, e, bound);
        if (e > worst || isnan(e))
            worst = e;
        free(want[i]);
        if (got)
            got[i] = have[i];
        else
            free(have[i]);
    }
    op_record(family, worst);
    check_guards(t, what);
    place(g, 0);
    return worst;
}

void op_expect_refusal(const op_target *t, tr_graph *g, tr_tensor *out, const char *why, const char *family,
                       const char *what)
{
    make_copies(t);
    place(g, 1);
    out->is_output = 1;
    tr_status s = t->backend->iface->graph_compute(t->backend, g);
    CHECK(s == TR_ERR_UNSUPPORTED && strstr(tr_last_error(), why), "[%s] %s: expected a refusal (%s), got status %d (%s)",
          t->name, what, why, s, s == TR_OK ? "computed" : tr_last_error());
    char key[64];
    snprintf(key, sizeof key, "%s refused", family);
    op_record(key, 0);
    check_guards(t, what);
    place(g, 0);
}

/* ---- per-family summary ------------------------------------------------------------------------- */

typedef struct family {
    char name[64];
    int cases;
    double worst;
} family;
static family families[64];
static int n_families;

void op_record(const char *name, double e)
{
    family *f = NULL;
    for (int i = 0; i < n_families && !f; i++)
        if (!strncmp(families[i].name, name, sizeof families[i].name - 1))
            f = &families[i];
    if (!f && n_families < 64) {
        f = &families[n_families++];
        snprintf(f->name, sizeof f->name, "%s", name);
    }
    if (f) {
        f->cases++;
        if (e > f->worst || isnan(e))
            f->worst = e;
    }
}

void op_print_summary(void)
{
    printf("per-op NMSE against the CPU reference (worst over all cases%s):\n", n_families ? "" : ": none run");
    for (int i = 0; i < n_families; i++)
        printf("  %-26s %4d cases  worst %.2e\n", families[i].name, families[i].cases, families[i].worst);
}
