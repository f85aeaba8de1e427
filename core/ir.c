/* ir.c: building graphs: the tensor arena, op constructors with their shape checks, views. */
#include "ir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Tensor descriptors come from a chain of fixed-size chunks that tr_graph_reset keeps, so building
 * the graph for each decoded token allocates nothing after the first. */
#define ARENA_CHUNK 256
typedef struct tr_arena {
    tr_tensor *chunk[4096];
    int n_chunks;
    int used; /* tensors handed out in total */
} tr_arena;

static const char *const op_names[] = {
    [TR_OP_NONE] = "none",         [TR_OP_VIEW] = "view",       [TR_OP_GET_ROWS] = "get_rows",
    [TR_OP_RMS_NORM] = "rms_norm", [TR_OP_ADD] = "add",         [TR_OP_MUL] = "mul",
    [TR_OP_MATMUL] = "matmul",     [TR_OP_ROPE] = "rope",       [TR_OP_GLU] = "glu",
    [TR_OP_KV_WRITE] = "kv_write", [TR_OP_ATTENTION] = "attention", [TR_OP_COPY] = "copy",
    [TR_OP_CONCAT] = "concat",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == TR_OP_COUNT, "every op needs a name");

const char *tr_op_name(tr_op op) { return (unsigned)op < TR_OP_COUNT ? op_names[op] : "?"; }

bool tr_is_contiguous(const tr_tensor *t)
{
    /* a quantized row is whole blocks: its first stride is a block's, the next a row's */
    size_t expect = tr_dtype_size(t->dtype);
    for (int i = 0; i < TR_MAX_DIMS; i++) {
        if (t->ne[i] != 1 && t->nb[i] != expect)
            return false;
        expect *= (size_t)(i == 0 ? t->ne[0] / tr_dtype_block(t->dtype) : t->ne[i]);
    }
    return true;
}

tr_status tr_graph_init(tr_graph *g)
{
    memset(g, 0, sizeof *g);
    g->arena = calloc(1, sizeof *g->arena);
    return g->arena ? TR_OK : tr_fail(TR_ERR_NOMEM, "graph: out of memory");
}

void tr_graph_free(tr_graph *g)
{
    if (g->arena) {
        for (int i = 0; i < g->arena->n_chunks; i++)
            free(g->arena->chunk[i]);
        free(g->arena);
    }
    free(g->nodes);
    free(g->leaves);
    memset(g, 0, sizeof *g);
}

void tr_graph_reset(tr_graph *g)
{
    g->arena->used = 0;
    g->n_nodes = g->n_leaves = 0;
    g->failed = 0;
    g->keep_all = 0;
}

tr_status tr_graph_status(const tr_graph *g)
{
    return g->failed ? tr_fail(TR_ERR_INVALID_ARG, "graph: %s", tr_last_error()) : TR_OK;
}

static tr_tensor *arena_alloc(tr_graph *g)
{
    tr_arena *a = g->arena;
    int chunk = a->used / ARENA_CHUNK, slot = a->used % ARENA_CHUNK;
    if (chunk >= a->n_chunks) {
        if (a->n_chunks == (int)(sizeof a->chunk / sizeof a->chunk[0]))
            return NULL;
        a->chunk[a->n_chunks] = malloc(ARENA_CHUNK * sizeof(tr_tensor));
        if (!a->chunk[a->n_chunks])
            return NULL;
        a->n_chunks++;
    }
    a->used++;
    tr_tensor *t = &a->chunk[chunk][slot];
    memset(t, 0, sizeof *t);
    return t;
}

static int push(tr_tensor ***list, int *n, int *cap, tr_tensor *t)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 256;
        tr_tensor **nl = realloc(*list, (size_t)nc * sizeof *nl);
        if (!nl)
            return 0;
        *list = nl;
        *cap = nc;
    }
    (*list)[(*n)++] = t;
    return 1;
}

static void set_contiguous_strides(tr_tensor *t)
{
    t->nb[0] = tr_dtype_size(t->dtype); /* an element, or a block of a quantized type */
    t->nb[1] = tr_row_bytes(t->dtype, t->ne[0]);
    for (int i = 2; i < TR_MAX_DIMS; i++)
        t->nb[i] = t->nb[i - 1] * (size_t)t->ne[i - 1];
}

static tr_tensor *make(tr_graph *g, tr_op op, tr_dtype dt, int ndim, const int64_t *ne)
{
    if (g->failed)
        return NULL;
    tr_tensor *t = arena_alloc(g);
    if (!t) {
        g->failed = 1;
        tr_fail(TR_ERR_NOMEM, "out of memory for tensor descriptors");
        return NULL;
    }
    t->op = op;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < TR_MAX_DIMS; i++)
        t->ne[i] = i < ndim ? ne[i] : 1;
    set_contiguous_strides(t);
    int ok = op == TR_OP_NONE ? push(&g->leaves, &g->n_leaves, &g->cap_leaves, t)
                              : push(&g->nodes, &g->n_nodes, &g->cap_nodes, t);
    if (!ok) {
        g->failed = 1;
        tr_fail(TR_ERR_NOMEM, "out of memory for the node list");
        return NULL;
    }
    return t;
}

/* Marks the graph failed with a shape message; every later constructor then returns NULL. */
static tr_tensor *shape_error(tr_graph *g, const char *op, const char *what)
{
    if (!g->failed)
        tr_fail(TR_ERR_INVALID_ARG, "%s: %s", op, what);
    g->failed = 1;
    return NULL;
}

#define NEED(cond, op, what)                    \
    do {                                        \
        if (g->failed)                          \
            return NULL;                        \
        if (!(cond))                            \
            return shape_error(g, op, what);    \
    } while (0)

void tr_set_name(tr_tensor *t, const char *fmt, ...)
{
    if (!t)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
}

tr_tensor *tr_new_tensor(tr_graph *g, tr_dtype dt, int ndim, const int64_t *ne, const char *name)
{
    NEED(ndim >= 1 && ndim <= TR_MAX_DIMS, "tensor", "1 to 4 dimensions");
    tr_tensor *t = make(g, TR_OP_NONE, dt, ndim, ne);
    if (t && name)
        tr_set_name(t, "%s", name);
    return t;
}

tr_tensor *tr_new_tensor_1d(tr_graph *g, tr_dtype dt, int64_t n0, const char *name)
{
    return tr_new_tensor(g, dt, 1, (int64_t[]){n0}, name);
}

tr_tensor *tr_new_tensor_2d(tr_graph *g, tr_dtype dt, int64_t n0, int64_t n1, const char *name)
{
    return tr_new_tensor(g, dt, 2, (int64_t[]){n0, n1}, name);
}

static bool same_shape(const tr_tensor *a, const tr_tensor *b)
{
    for (int i = 0; i < TR_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i])
            return false;
    return true;
}

static bool is_float(tr_dtype t) { return t == TR_F32 || t == TR_F16 || t == TR_BF16; }
static bool is_weight(tr_dtype t) { return is_float(t) || tr_dtype_is_quant(t); } /* what a matrix may be */

tr_tensor *tr_get_rows(tr_graph *g, tr_tensor *table, tr_tensor *ids)
{
    NEED(table && ids, "get_rows", "missing operand");
    NEED(is_weight(table->dtype) && ids->dtype == TR_I32, "get_rows", "table must be float or quantized, ids i32");
    NEED(table->ne[2] == 1 && ids->ne[1] == 1, "get_rows", "table {D, V} and ids {T} expected");
    tr_tensor *t = make(g, TR_OP_GET_ROWS, TR_F32, 2, (int64_t[]){table->ne[0], ids->ne[0]});
    if (t) {
        t->src[0] = table;
        t->src[1] = ids;
    }
    return t;
}

tr_tensor *tr_rms_norm(tr_graph *g, tr_tensor *x, tr_tensor *w, float eps)
{
    NEED(x && w, "rms_norm", "missing operand");
    NEED(x->dtype == TR_F32 && is_float(w->dtype), "rms_norm", "x must be f32");
    NEED(w->ne[0] == x->ne[0] && tr_nelements(w) == w->ne[0], "rms_norm", "weight must be {D}");
    tr_tensor *t = make(g, TR_OP_RMS_NORM, TR_F32, x->ndim, x->ne);
    if (t) {
        t->src[0] = x;
        t->src[1] = w;
        t->p.eps = eps;
    }
    return t;
}

tr_tensor *tr_add(tr_graph *g, tr_tensor *x, tr_tensor *y)
{
    NEED(x && y, "add", "missing operand");
    NEED(x->dtype == TR_F32 && y->dtype == TR_F32 && same_shape(x, y), "add", "f32 operands of one shape");
    tr_tensor *t = make(g, TR_OP_ADD, TR_F32, x->ndim, x->ne);
    if (t) {
        t->src[0] = x;
        t->src[1] = y;
    }
    return t;
}

tr_tensor *tr_mul(tr_graph *g, tr_tensor *x, tr_tensor *y)
{
    NEED(x && y, "mul", "missing operand");
    NEED(x->dtype == TR_F32 && y->dtype == TR_F32, "mul", "f32 operands");
    NEED(same_shape(x, y) || (y->ne[0] == x->ne[0] && tr_nelements(y) == y->ne[0]), "mul",
         "y must match x or be one row");
    tr_tensor *t = make(g, TR_OP_MUL, TR_F32, x->ndim, x->ne);
    if (t) {
        t->src[0] = x;
        t->src[1] = y;
    }
    return t;
}

tr_tensor *tr_matmul(tr_graph *g, tr_tensor *x, tr_tensor *w)
{
    NEED(x && w, "matmul", "missing operand");
    NEED(x->dtype == TR_F32 && is_weight(w->dtype), "matmul", "x must be f32, W f32/f16/bf16 or quantized");
    NEED(x->ne[0] == w->ne[0], "matmul", "inner dimensions differ");
    NEED(x->ne[2] == 1 && w->ne[2] == 1, "matmul", "2-D operands expected");
    NEED(tr_is_contiguous(x) && tr_is_contiguous(w), "matmul", "contiguous operands expected");
    tr_tensor *t = make(g, TR_OP_MATMUL, TR_F32, 2, (int64_t[]){w->ne[1], x->ne[1]});
    if (t) {
        t->src[0] = x;
        t->src[1] = w;
    }
    return t;
}

tr_tensor *tr_rope_ext(tr_graph *g, tr_tensor *x, tr_tensor *pos, tr_tensor *factors, tr_rope_params p)
{
    NEED(x && pos, "rope", "missing operand");
    NEED(x->dtype == TR_F32 && pos->dtype == TR_I32, "rope", "x f32 and pos i32 expected");
    NEED(x->ne[0] % 2 == 0, "rope", "head dimension must be even");
    NEED(pos->ne[0] == x->ne[2], "rope", "one position per token expected");
    NEED(!factors || (factors->dtype == TR_F32 && tr_nelements(factors) == x->ne[0] / 2 && tr_is_contiguous(factors)),
         "rope", "frequency factors must be f32 {hd/2}");
    NEED(p.freq_scale >= 0, "rope", "negative frequency scale");
    tr_tensor *t = make(g, TR_OP_ROPE, TR_F32, 3, x->ne);
    if (t) {
        t->src[0] = x;
        t->src[1] = pos;
        t->src[2] = factors;
        t->p.rope = p;
        if (t->p.rope.freq_scale == 0) /* kernels always see the scale itself */
            t->p.rope.freq_scale = 1;
    }
    return t;
}

tr_tensor *tr_rope(tr_graph *g, tr_tensor *x, tr_tensor *pos, tr_rope_params p)
{
    return tr_rope_ext(g, x, pos, NULL, p);
}

tr_tensor *tr_glu(tr_graph *g, tr_tensor *gate, tr_tensor *up, tr_activation act)
{
    NEED(gate && up, "glu", "missing operand");
    NEED(gate->dtype == TR_F32 && up->dtype == TR_F32 && same_shape(gate, up), "glu",
         "f32 operands of one shape");
    NEED((unsigned)act < TR_ACT_COUNT, "glu", "unknown activation");
    tr_tensor *t = make(g, TR_OP_GLU, TR_F32, gate->ndim, gate->ne);
    if (t) {
        t->src[0] = gate;
        t->src[1] = up;
        t->p.act = act;
    }
    return t;
}

tr_tensor *tr_kv_write(tr_graph *g, tr_tensor *cache, tr_tensor *src, int32_t pos0)
{
    NEED(cache && src, "kv_write", "missing operand");
    NEED(cache->dtype == TR_F32 && src->dtype == TR_F32, "kv_write", "f32 cache and values expected");
    NEED(cache->ne[0] == src->ne[0], "kv_write", "row widths differ");
    NEED(pos0 >= 0 && pos0 + src->ne[1] <= cache->ne[1], "kv_write", "rows past the end of the cache");
    tr_tensor *t = make(g, TR_OP_KV_WRITE, TR_F32, 2, cache->ne);
    if (t) {
        t->src[0] = src;
        t->src[1] = cache;
        t->p.pos0 = pos0;
    }
    return t;
}

tr_tensor *tr_copy(tr_graph *g, tr_tensor *x)
{
    NEED(x, "copy", "missing operand");
    NEED(x->dtype == TR_F32 && tr_is_contiguous(x), "copy", "a contiguous f32 source expected");
    tr_tensor *t = make(g, TR_OP_COPY, TR_F32, x->ndim, x->ne);
    if (t)
        t->src[0] = x;
    return t;
}

tr_tensor *tr_attention(tr_graph *g, tr_tensor *q, tr_tensor *k_cache, tr_tensor *v_cache,
                        const tr_attn_params *p)
{
    NEED(q && k_cache && v_cache && p, "attention", "missing operand");
    NEED(q->dtype == TR_F32 && q->ndim == 3, "attention", "q must be f32 {hd, H, T}");
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2];
    NEED(k_cache->ne[0] % hd == 0 && same_shape(k_cache, v_cache), "attention", "cache shapes");
    int64_t Hkv = k_cache->ne[0] / hd;
    NEED(Hkv > 0 && H % Hkv == 0, "attention", "query heads must be a multiple of kv heads");
    NEED(p->n_past >= 0 && p->n_kv == p->n_past + T && p->n_kv <= k_cache->ne[1], "attention",
         "n_kv must equal n_past + T and fit the cache");
    NEED(p->variant != TR_ATTN_TRANSITION ||
             (p->transition.n_blocks >= 0 && p->transition.n_blocks <= TR_MAX_TRANSITION_BLOCKS &&
              p->transition.iv > 0),
         "attention", "bad transition blocks");
    NEED(p->variant != TR_ATTN_DIFF || (H % 2 == 0 && Hkv % 2 == 0), "attention",
         "differential attention needs even query and kv head counts");
    tr_tensor *t = make(g, TR_OP_ATTENTION, TR_F32, 2, (int64_t[]){hd * H, T});
    if (t) {
        t->src[0] = q;
        t->src[1] = k_cache;
        t->src[2] = v_cache;
        t->p.attn = *p;
    }
    return t;
}

tr_tensor *tr_concat(tr_graph *g, tr_tensor *const *srcs, int n)
{
    NEED(srcs && n >= 1 && n <= TR_MAX_SRC, "concat", "1 to TR_MAX_SRC sources");
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        NEED(srcs[i], "concat", "missing operand");
        NEED(srcs[i]->dtype == TR_F32 && tr_is_contiguous(srcs[i]) && srcs[i]->ne[2] == 1 && srcs[i]->ne[3] == 1,
             "concat", "contiguous 2-D f32 sources expected");
        NEED(srcs[i]->ne[0] == srcs[0]->ne[0], "concat", "row widths differ");
        rows += srcs[i]->ne[1];
    }
    if (n == 1)
        return srcs[0];
    tr_tensor *t = make(g, TR_OP_CONCAT, TR_F32, 2, (int64_t[]){srcs[0]->ne[0], rows});
    for (int i = 0; t && i < n; i++)
        t->src[i] = srcs[i];
    return t;
}

tr_tensor *tr_concat_n(tr_graph *g, tr_tensor *const *srcs, int n)
{
    NEED(srcs && n >= 1, "concat", "no sources");
    tr_tensor *acc = srcs[0];
    for (int i = 1; i < n && acc;) {
        tr_tensor *group[TR_MAX_SRC] = {acc};
        int k = 1;
        while (k < TR_MAX_SRC && i < n)
            group[k++] = srcs[i++];
        acc = tr_concat(g, group, k);
    }
    return acc;
}

tr_tensor *tr_view_tokens(tr_graph *g, tr_tensor *x, int64_t t0, int64_t n)
{
    NEED(x, "view", "missing operand");
    const int d = x->ndim - 1;
    NEED(tr_is_contiguous(x) && (d == 1 || d == 2) && t0 >= 0 && n > 0 && t0 + n <= x->ne[d], "view",
         "tokens out of range (a contiguous 2-D or 3-D tensor expected)");
    int64_t ne[3] = {x->ne[0], x->ne[1], x->ne[2]};
    ne[d] = n;
    tr_tensor *t = make(g, TR_OP_VIEW, x->dtype, x->ndim, ne);
    if (t) {
        t->src[0] = x;
        t->p.view_offset = (size_t)t0 * x->nb[d];
    }
    return t;
}

tr_tensor *tr_reshape_3d(tr_graph *g, tr_tensor *x, int64_t n0, int64_t n1, int64_t n2)
{
    NEED(x, "reshape", "missing operand");
    NEED(tr_is_contiguous(x) && n0 * n1 * n2 == tr_nelements(x), "reshape", "element counts differ");
    tr_tensor *t = make(g, TR_OP_VIEW, x->dtype, 3, (int64_t[]){n0, n1, n2});
    if (t) {
        t->src[0] = x;
        t->p.view_offset = 0;
    }
    return t;
}

tr_tensor *tr_view_rows(tr_graph *g, tr_tensor *x, int64_t first_row, int64_t n_rows)
{
    NEED(x, "view", "missing operand");
    NEED(x->ne[2] == 1 && first_row >= 0 && n_rows > 0 && first_row + n_rows <= x->ne[1], "view",
         "rows out of range");
    tr_tensor *t = make(g, TR_OP_VIEW, x->dtype, 2, (int64_t[]){x->ne[0], n_rows});
    if (t) {
        t->src[0] = x;
        t->nb[1] = x->nb[1];
        t->p.view_offset = (size_t)first_row * x->nb[1];
    }
    return t;
}
