/* cuda_lower.c: how the CUDA backend computes a graph.
 *
 *   place    tr_memplan puts every intermediate in one device arena (node->buffer = the arena,
 *            node->offset, node->data = NULL); a VIEW aliases its source, a KV_WRITE is its cache.
 *            Host leaves (token ids, positions; any leaf without a device buffer) are copied into
 *            an io buffer through pinned staging, with one asynchronous copy per compute, together
 *            with the dynamic parameters (below).
 *   lower    each node, or a short run of adjacent nodes that fuse (cuda_fuse.c), becomes one
 *            record: the arguments of a kernel launch or cuBLAS call (cuda_kernels.h).
 *   run      the records are launched on the backend's stream, or replayed as a CUDA graph
 *            (cuda_run.c); nothing waits for them (downloads synchronise).
 *
 * Records are zeroed and then filled field by field (never by struct assignment, which may copy
 * undefined padding), so that equal launches have equal bytes. The values that change from one
 * decoding step to the next, a KV write's first row and an attention's n_past, are not launch
 * arguments: the kernels read them from device memory (the "dynamic parameters", a few int32
 * copied in with the inputs), so consecutive decoding steps produce byte-identical records, which
 * cuda_run.c replays as one CUDA graph. */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

#define ALIGN 256
#define SPLIT_MIN_KEYS 64 /* a split of the keys is at least this long */
#define SPLIT_MAX 32

static size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* ---- what is supported ---------------------------------------------------------------------- */

static bool is_float(tr_dtype t) { return t == TR_F32 || t == TR_F16 || t == TR_BF16; }

/* Why node n cannot run here, or NULL. */
static const char *unsupported(const tr_tensor *n)
{
    if (n->op == TR_OP_NONE || n->op == TR_OP_VIEW)
        return NULL;
    if ((unsigned)n->op >= TR_OP_COUNT)
        return "unknown op";
    for (int s = 0; s < TR_MAX_SRC && n->src[s]; s++) {
        const tr_tensor *x = n->src[s];
        bool cache = n->op == TR_OP_ATTENTION && s > 0;
        if (cache ? x->nb[0] != tr_dtype_size(x->dtype) : !tr_is_contiguous(x))
            return "a strided source";
    }
    if (!tr_is_contiguous(n))
        return "a strided result";
    switch (n->op) {
    case TR_OP_GET_ROWS:
        return (is_float(n->src[0]->dtype) || tr_dtype_is_quant(n->src[0]->dtype)) && n->src[1]->dtype == TR_I32
                   ? NULL
                   : "table or id type";
    case TR_OP_RMS_NORM:
        return is_float(n->src[1]->dtype) ? NULL : "weight type";
    case TR_OP_MATMUL:
        if (!is_float(n->src[1]->dtype) && !tr_dtype_is_quant(n->src[1]->dtype))
            return "weight type";
        return n->src[0]->ne[0] <= INT32_MAX && n->src[1]->ne[1] <= INT32_MAX && n->src[0]->ne[1] <= INT32_MAX
                   ? NULL
                   : "a dimension above 2^31";
    case TR_OP_ROPE:
        return n->p.rope.layout == TR_ROPE_ADJACENT || n->p.rope.layout == TR_ROPE_HALF ? NULL : "layout";
    case TR_OP_GLU:
        return (unsigned)n->p.act < TR_ACT_COUNT ? NULL : "activation";
    case TR_OP_ATTENTION: {
        const tr_attn_params *ap = &n->p.attn;
        if (n->src[1]->dtype != TR_F32 || n->src[2]->dtype != TR_F32)
            return "a cache type other than f32";
        if (n->src[1]->nb[1] != n->src[2]->nb[1])
            return "k and v caches with different row strides";
        const bool diff = ap->variant == TR_ATTN_DIFF;
        const int64_t hd = n->src[0]->ne[0], H = n->src[0]->ne[1], Hkv = n->src[1]->ne[0] / hd;
        if (ap->variant != TR_ATTN_PLAIN && ap->variant != TR_ATTN_TRANSITION && !diff)
            return "attention variant";
        if (!trc_attention_rows_ok((int)hd, diff))
            return diff ? "head size of differential attention (up to 256, a multiple of 4, or up to 64)"
                        : "head size (up to 512, a multiple of 4, or up to 128)";
        if (diff && (H % 2 != 0 || Hkv % 2 != 0))
            return "differential attention with an odd number of query or kv heads";
        /* above 128 (64 for differential attention's 2 hd-wide values) only the 16-byte path
         * exists: rows must start 16-byte aligned (the arena and the cache are; a view at an odd
         * offset is not) */
        for (int s = 0; s < 3 && hd > (diff ? 64 : 128); s++)
            if (n->src[s]->op == TR_OP_VIEW && n->src[s]->p.view_offset % 16 != 0)
                return diff ? "differential attention with a head size above 64 and rows that are not 16-byte aligned"
                            : "a head size above 128 with rows that are not 16-byte aligned";
        if (ap->variant != TR_ATTN_TRANSITION)
            return NULL;
        if (ap->transition.strategy != TR_TRANSITION_ADDING && ap->transition.strategy != TR_TRANSITION_MULTI)
            return "transition strategy";
        for (int i = 0; i < ap->transition.n_blocks; i++)
            for (int j = 0; j < i; j++) {
                int32_t a = ap->transition.start[i], b = ap->transition.start[j];
                if (a < b + ap->transition.iv && b < a + ap->transition.iv)
                    return "overlapping transition blocks";
            }
        return NULL;
    }
    default:
        return NULL;
    }
}

bool trc_supports_op(tr_backend *b, const tr_tensor *n)
{
    (void)b;
    return unsupported(n) == NULL;
}

/* ---- per-compute scratch ---------------------------------------------------------------------- */

tr_status trc_reserve(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return TR_OK;
    int nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q)
        return tr_fail(TR_ERR_NOMEM, "cuda: out of host memory");
    *p = q;
    *cap = nc;
    return TR_OK;
}

void trc_lower_free(cuda_backend *c)
{
    free(c->rec);
    free(c->last_rec);
    free(c->exec_rec);
    free(c->host_leaf);
    free(c->host_off);
    free(c->uses);
    free(c->done);
    free(c->fz);
    free(c->linked);
    free(c->map_key);
    free(c->map_val);
}

/* node -> index map (open addressing on the pointer) */
static size_t hash_ptr(const void *p, int cap) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 7 & (size_t)(cap - 1); }

static tr_status map_build(cuda_backend *c, const tr_graph *g)
{
    int need = 16;
    while (need < 2 * g->n_nodes)
        need *= 2;
    if (need > c->map_cap) {
        free(c->map_key);
        free(c->map_val);
        c->map_key = malloc((size_t)need * sizeof *c->map_key);
        c->map_val = malloc((size_t)need * sizeof *c->map_val);
        c->map_cap = c->map_key && c->map_val ? need : 0;
        if (!c->map_cap)
            return tr_fail(TR_ERR_NOMEM, "cuda: out of host memory");
    }
    memset(c->map_key, 0, (size_t)c->map_cap * sizeof *c->map_key);
    for (int i = 0; i < g->n_nodes; i++) {
        size_t h = hash_ptr(g->nodes[i], c->map_cap);
        while (c->map_key[h])
            h = (h + 1) & (size_t)(c->map_cap - 1);
        c->map_key[h] = g->nodes[i];
        c->map_val[h] = i;
    }
    return TR_OK;
}

static int node_index(const cuda_backend *c, const tr_tensor *t)
{
    if (t->op == TR_OP_NONE)
        return -1;
    for (size_t h = hash_ptr(t, c->map_cap); c->map_key[h]; h = (h + 1) & (size_t)(c->map_cap - 1))
        if (c->map_key[h] == t)
            return c->map_val[h];
    return -1;
}

/* ---- placement -------------------------------------------------------------------------------- */

static bool on_device(const cuda_backend *c, const tr_tensor *leaf)
{
    return leaf->buffer && leaf->buffer->backend == &c->base;
}

static int host_index(const cuda_backend *c, const tr_tensor *leaf)
{
    for (int i = 0; i < c->n_host; i++)
        if (c->host_leaf[i] == leaf)
            return i;
    return -1;
}

/* Collects the host leaves read by g's nodes and gives each a place in io. */
static tr_status collect_host_leaves(cuda_backend *c, const tr_graph *g, size_t *bytes)
{
    size_t off = 0;
    c->n_host = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const tr_tensor *t = g->nodes[i];
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++) {
            const tr_tensor *x = t->src[s];
            if (x->op != TR_OP_NONE || on_device(c, x) || host_index(c, x) >= 0)
                continue;
            if (!x->data)
                return tr_fail(TR_ERR_INVALID_ARG, "cuda: tensor '%s' (read by '%s') has no memory", x->name, t->name);
            if (c->n_host >= c->cap_host) {
                int cap = c->cap_host;
                TR_TRY(trc_reserve((void **)&c->host_leaf, &cap, c->n_host + 1, sizeof *c->host_leaf));
                cap = c->cap_host;
                TR_TRY(trc_reserve((void **)&c->host_off, &cap, c->n_host + 1, sizeof *c->host_off));
                c->cap_host = cap;
            }
            c->host_leaf[c->n_host] = x;
            c->host_off[c->n_host++] = off;
            off += align_up(tr_nbytes(x));
        }
    }
    *bytes = off;
    return TR_OK;
}

/* Where leaf or node t lives: a buffer of this backend and an offset. */
static void locate(cuda_backend *c, const tr_tensor *t, tr_buffer **buf, size_t *off)
{
    if (t->op == TR_OP_NONE && !on_device(c, t)) {
        *buf = &c->io;
        *off = c->host_off[host_index(c, t)];
    } else {
        *buf = t->buffer;
        *off = t->offset;
    }
}

static void *dptr(cuda_backend *c, const tr_tensor *t)
{
    tr_buffer *buf;
    size_t off;
    locate(c, t, &buf, &off);
    return (char *)buf->impl + off;
}

/* ---- lowering ----------------------------------------------------------------------------------- */

typedef struct lower_ctx {
    cuda_backend *c;
    tr_graph *g;
    int32_t *dyn_host; /* dynamic parameters: host values, copied to dyn_dev */
    int32_t *dyn_dev;
    int n_dyn;
    size_t workspace; /* bytes the records need (pass 1) */
} lower_ctx;

static const int32_t *dyn_param(lower_ctx *L, int32_t value)
{
    L->dyn_host[L->n_dyn] = value;
    return L->dyn_dev + L->n_dyn++;
}

/* Whether t is a view of whole rows of a cache (or of a KV write, whose value is its cache) whose
 * rows are row_bytes apart; if so, *root is the cache and *row the view's first row. */
static bool cache_rows(const tr_tensor *t, size_t row_bytes, const tr_tensor **root, int32_t *row)
{
    size_t off = 0;
    const tr_tensor *r = t;
    while (r->op == TR_OP_VIEW) {
        off += r->p.view_offset;
        r = r->src[0];
    }
    if (r == t || (r->op != TR_OP_KV_WRITE && r->op != TR_OP_NONE) || r->ne[2] != 1 || r->nb[1] != row_bytes ||
        off % row_bytes != 0 || off / row_bytes > INT32_MAX)
        return false;
    *root = r;
    *row = (int32_t)(off / row_bytes);
    return true;
}

/* The pointer a kernel reads t through. The attention-sink cache moves its views by a row or more
 * every decoding step; such a view is read as its cache's pointer with the first row as a dynamic
 * parameter in *row0, so the step's records stay byte-identical and it replays as a CUDA graph.
 * Anything else: its own pointer, *row0 = NULL (row 0). */
static void *rows_of(lower_ctx *L, const tr_tensor *t, size_t row_bytes, const int32_t **row0)
{
    const tr_tensor *root;
    int32_t row;
    *row0 = NULL;
    if (!cache_rows(t, row_bytes, &root, &row))
        return dptr(L->c, t);
    *row0 = dyn_param(L, row);
    return dptr(L->c, root);
}

static tr_status push(lower_ctx *L, const trc_record *r)
{
    cuda_backend *c = L->c;
    TR_TRY(trc_reserve((void **)&c->rec, &c->cap_rec, c->n_rec + 1, sizeof *c->rec));
    memcpy(&c->rec[c->n_rec++], r, sizeof *r); /* every byte, padding included */
    return TR_OK;
}

/* Warps per GEMV row: one while the rows are enough to keep every SM's loads in flight, else K split
 * over 2 or 4 warps whose sums meet in shared memory. On the H200 (profile, docs/cuda.md) products
 * of 11008 and 12288 rows streamed 3.1-3.4 TB/s with one warp a row, those of 4096 rows 2.2-2.5. */
static int gemv_split(int sm_count, int64_t rows)
{
    const int64_t enough = (int64_t)(sm_count > 0 ? sm_count : 1) * 48; /* 3/4 of an SM's 64 warps */
    return rows >= enough ? 1 : 2 * rows >= enough ? 2 : 4;
}

/* MATMUL at node i, with what the plan fused to it. */
static tr_status lower_matmul(lower_ctx *L, int i)
{
    tr_graph *g = L->g;
    cuda_backend *c = L->c;
    tr_tensor *t = g->nodes[i];
    const tr_tensor *x = t->src[0], *w = t->src[1];
    const trc_fusion *f = &c->fz[i];
    int64_t K = x->ne[0], T = x->ne[1];
    trc_record r;
    memset(&r, 0, sizeof r);
    if (T > TRC_GEMV_MAX_T) {
        size_t xconv = w->dtype == TR_F32 ? 0 : ((size_t)(K * T) * 2 + 255) / 256 * 256, need = xconv;
        int64_t panel = 0; /* quantized W: rows dequantized to f16 per GEMM (at most 64 MB of them) */
        if (tr_dtype_is_quant(w->dtype)) {
            panel = (int64_t)(((size_t)64 << 20) / ((size_t)K * 2));
            panel = panel < 1 ? 1 : panel > w->ne[1] ? w->ne[1] : panel;
            need += (size_t)panel * (size_t)K * 2;
        }
        if (need > L->workspace)
            L->workspace = need;
        trc_gemm_args *a = &r.u.gemm;
        r.kind = TRC_K_GEMM;
        a->x = dptr(c, x);
        a->w = dptr(c, w);
        a->dtype = (int)w->dtype;
        a->out = dptr(c, t);
        a->xconv = c->workspace;
        a->wconv = panel && c->workspace ? (char *)c->workspace + xconv : NULL;
        a->panel_rows = panel;
        a->K = K;
        a->N = w->ne[1];
        a->T = T;
        return push(L, &r);
    }
    trc_gemv_args *a = &r.u.gemv;
    r.kind = TRC_K_GEMV;
    a->pdl = c->use_pdl;
    a->x = dptr(c, x);
    a->K = K;
    a->T = (int)T;
    a->dtype = (int)w->dtype;
    a->mode = TRC_GEMV_PLAIN;
    a->n_mats = 1;
    a->w[0] = dptr(c, w);
    a->out[0] = dptr(c, t);
    a->N[0] = w->ne[1];
    if (tr_dtype_is_quant(w->dtype)) { /* x to int8 blocks in the workspace, once for every matrix */
        size_t need = trc_gemv_xq_bytes(T, K);
        if (need > L->workspace)
            L->workspace = need;
        a->xq = c->workspace;
    }
    if (f->kind == FZ_GLU) {
        const tr_tensor *tj = g->nodes[f->m[0]], *tk = g->nodes[f->m[1]];
        const tr_tensor *gate = tk->src[0] == t ? t : tj, *up = gate == t ? tj : t;
        a->mode = TRC_GEMV_GLU;
        a->act = (int)tk->p.act;
        a->n_mats = 2;
        a->w[0] = dptr(c, gate->src[1]);
        a->w[1] = dptr(c, up->src[1]);
        a->out[0] = dptr(c, tk);
    } else if (f->kind == FZ_ADD) {
        const tr_tensor *tj = g->nodes[f->m[0]];
        a->mode = TRC_GEMV_ADD;
        a->res = dptr(c, tj->src[1 - trc_src_is(tj, t)]);
        a->out[0] = dptr(c, tj);
    } else if (f->kind == FZ_QKV) {
        for (int n = 0; n < 2 && f->m[n] >= 0; n++) {
            const tr_tensor *tn = g->nodes[f->m[n]];
            a->w[a->n_mats] = dptr(c, tn->src[1]);
            a->out[a->n_mats] = dptr(c, tn);
            a->N[a->n_mats++] = tn->src[1]->ne[1];
        }
    }
    int64_t rows = a->N[0];
    for (int m = 1; m < a->n_mats && a->mode == TRC_GEMV_PLAIN; m++)
        rows += a->N[m];
    a->split = c->gemv_split ? c->gemv_split : gemv_split(c->sm_count, rows);
    return push(L, &r);
}

static tr_status lower_attention(lower_ctx *L, int i)
{
    cuda_backend *c = L->c;
    tr_tensor *t = L->g->nodes[i];
    const tr_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2];
    const tr_attn_params *ap = &t->p.attn;
    int hd = (int)q->ne[0], H = (int)q->ne[1], T = (int)q->ne[2], Hkv = (int)(k->ne[0] / hd);
    trc_record r;
    memset(&r, 0, sizeof r);
    trc_attn_args *a = &r.u.attn;
    a->q = dptr(c, q);
    a->q_hs = (int64_t)(q->nb[1] / sizeof(float));
    a->q_ts = (int64_t)(q->nb[2] / sizeof(float));
    a->kv_rs = (int64_t)(k->nb[1] / sizeof(float));
    /* the sink cache's moving view: the caches' pointers and one dynamic first row for both (they
     * move together; if they ever did not, their own pointers) */
    const tr_tensor *k_root, *v_root;
    int32_t k_row, v_row;
    int64_t cap = k->ne[1];
    if (cache_rows(k, k->nb[1], &k_root, &k_row) && cache_rows(v, v->nb[1], &v_root, &v_row) && k_row == v_row &&
        k_root->ne[1] == v_root->ne[1]) {
        a->k = dptr(c, k_root);
        a->v = dptr(c, v_root);
        a->kv_row0 = dyn_param(L, k_row);
        cap = k_root->ne[1];
    } else {
        a->k = dptr(c, k);
        a->v = dptr(c, v);
    }
    a->out = dptr(c, t);
    a->o_ts = (int64_t)hd * H;
    a->hd = hd;
    a->H = H;
    a->Hkv = Hkv;
    a->T = T;
    a->scale = ap->scale;
    a->n_past = dyn_param(L, ap->n_past);
    a->n_splits = 1;
    /* differential attention: head pairs, 2 hd-wide values, the same kernels (attention_prefill.cu,
     * attention_rows.cu) with their diff epilogues */
    const bool diff = ap->variant == TR_ATTN_DIFF;
    if (diff) {
        a->diff = 1;
        a->lambda = ap->diff.lambda;
        a->out_scale = ap->diff.out_scale;
        a->eps = ap->diff.eps;
    }
    const bool aligned = ((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v | (uintptr_t)a->out) % 16 == 0 &&
                         a->kv_rs % 4 == 0 && a->q_hs % 4 == 0 && a->q_ts % 4 == 0;
    if (T <= TRC_GEMV_MAX_T) {
        /* decode: split the keys so that about two blocks per SM run, sized from the cache's capacity
         * (not from n_kv) so that the launch is the same at every step */
        int G = H / Hkv, blocks = T * (diff ? Hkv / 2 : Hkv) * ((G + 7) / 8); /* a block per 8 heads (pairs) */
        int64_t by_len = (cap + SPLIT_MIN_KEYS - 1) / SPLIT_MIN_KEYS;
        int64_t s = (2 * (int64_t)c->sm_count + blocks - 1) / blocks;
        s = s < by_len ? s : by_len;
        s = s < SPLIT_MAX ? s : SPLIT_MAX;
        a->n_splits = s > 1 ? (int)s : 1;
    }
    if (a->n_splits > 1) {
        size_t need = (size_t)T * H * a->n_splits * ((diff ? 2 * hd : hd) + 2) * sizeof(float);
        if (need > L->workspace)
            L->workspace = need;
        a->part = c->workspace;
        r.kind = TRC_K_ATTN_ROWS;
        TR_TRY(push(L, &r));
        r.kind = TRC_K_ATTN_REDUCE;
        TR_TRY(push(L, &r));
    } else {
        r.kind = T > TRC_GEMV_MAX_T && trc_attention_tiled_ok(hd) && aligned ? TRC_K_ATTN_TILED : TRC_K_ATTN_ROWS;
        TR_TRY(push(L, &r));
    }
    /* Attention Transition: the chunk's rows that lie in a block are recomputed in two passes */
    if (ap->variant == TR_ATTN_TRANSITION) {
        a->n_splits = 1;
        a->part = NULL;
        a->trans = 1;
        a->iv = ap->transition.iv;
        a->alpha = ap->transition.alpha;
        a->beta = ap->transition.beta;
        a->strategy = ap->transition.strategy;
        for (int j = 0; j < ap->transition.n_blocks && j < TRC_MAX_RANGES; j++) {
            int64_t s0 = ap->transition.start[j], s1 = s0 + ap->transition.iv;
            int64_t lo = s0 > ap->n_past ? s0 : ap->n_past, hi = s1 < ap->n_past + T ? s1 : ap->n_past + T;
            if (lo >= hi)
                continue;
            a->range_t0[a->n_ranges] = (int32_t)(lo - ap->n_past);
            a->range_n[a->n_ranges] = (int32_t)(hi - lo);
            a->range_start[a->n_ranges++] = (int32_t)s0;
        }
        if (a->n_ranges > 0) {
            r.kind = TRC_K_ATTN_ROWS;
            TR_TRY(push(L, &r));
        }
    }
    return TR_OK;
}

static tr_status lower_node(lower_ctx *L, int i)
{
    cuda_backend *c = L->c;
    tr_graph *g = L->g;
    tr_tensor *t = g->nodes[i];
    trc_record r;
    memset(&r, 0, sizeof r);
    switch (t->op) {
    case TR_OP_GET_ROWS: {
        trc_get_rows_args *a = &r.u.get_rows;
        r.kind = TRC_K_GET_ROWS;
        a->table = dptr(c, t->src[0]);
        a->dtype = (int)t->src[0]->dtype;
        a->ids = dptr(c, t->src[1]);
        a->out = dptr(c, t);
        a->D = t->src[0]->ne[0];
        a->V = t->src[0]->ne[1];
        a->T = t->src[1]->ne[0];
        return push(L, &r);
    }
    case TR_OP_RMS_NORM: {
        trc_rms_norm_args *a = &r.u.rms_norm;
        r.kind = TRC_K_RMS_NORM;
        a->x = dptr(c, t->src[0]);
        a->w = dptr(c, t->src[1]);
        a->w_dtype = (int)t->src[1]->dtype;
        a->out = dptr(c, t);
        a->D = t->ne[0];
        a->rows = tr_nelements(t) / t->ne[0];
        a->eps = t->p.eps;
        return push(L, &r);
    }
    case TR_OP_ADD:
    case TR_OP_MUL:
    case TR_OP_GLU: {
        const tr_tensor *x = t->src[0], *y = t->src[1];
        int64_t n = tr_nelements(x), rows = n / x->ne[0];
        bool bcast = t->op == TR_OP_MUL && tr_nelements(y) == y->ne[0] && rows > 1;
        trc_binary_args *a = &r.u.binary;
        r.kind = t->op == TR_OP_GLU ? TRC_K_GLU : TRC_K_BINARY;
        a->op = t->op == TR_OP_MUL ? TRC_MUL : TRC_ADD;
        a->act = t->op == TR_OP_GLU ? (int)t->p.act : 0;
        a->x = dptr(c, x);
        a->y = dptr(c, y);
        a->out = dptr(c, t);
        a->n = n;
        a->y_n = bcast ? x->ne[0] : n;
        return push(L, &r);
    }
    case TR_OP_MATMUL:
        return lower_matmul(L, i);
    case TR_OP_ROPE: {
        trc_rope_args *a = &r.u.rope;
        r.kind = TRC_K_ROPE;
        a->n = 1;
        a->pos = dptr(c, t->src[1]);
        a->hd = t->ne[0];
        a->T = t->ne[2];
        a->factors = t->src[2] ? dptr(c, t->src[2]) : NULL; /* a launch argument: replay stays right */
        a->theta = t->p.rope.theta;
        a->freq_scale = t->p.rope.freq_scale;
        a->layout = (int)t->p.rope.layout;
        a->x[0] = rows_of(L, t->src[0], t->src[0]->nb[2], &a->x_row0[0]);
        a->out[0] = dptr(c, t);
        a->H[0] = t->ne[1];
        if (c->fz[i].kind == FZ_ROPE2) { /* the layer's other RoPE, at the same positions */
            const tr_tensor *u = g->nodes[c->fz[i].m[0]];
            a->x[1] = rows_of(L, u->src[0], u->src[0]->nb[2], &a->x_row0[1]);
            a->out[1] = dptr(c, u);
            a->H[1] = u->ne[1];
            a->n = 2;
        }
        return push(L, &r);
    }
    case TR_OP_KV_WRITE: {
        trc_kv_write_args *a = &r.u.kv_write;
        const tr_tensor *src = t->src[0], *cache = t->src[1];
        r.kind = TRC_K_KV_WRITE;
        a->n = 1;
        a->width = src->ne[0];
        a->T = src->ne[1];
        a->cache_rs = (int64_t)(cache->nb[1] / sizeof(float));
        a->src[0] = rows_of(L, src, src->nb[1], &a->src_row0[0]);
        a->cache[0] = dptr(c, cache);
        a->pos0[0] = dyn_param(L, t->p.pos0);
        if (c->fz[i].kind == FZ_KV2) { /* the layer's other cache write */
            const tr_tensor *u = g->nodes[c->fz[i].m[0]];
            a->src[1] = rows_of(L, u->src[0], u->src[0]->nb[1], &a->src_row0[1]);
            a->cache[1] = dptr(c, u->src[1]);
            a->pos0[1] = dyn_param(L, u->p.pos0);
            a->n = 2;
        }
        return push(L, &r);
    }
    case TR_OP_COPY: { /* the cache write's kernel, into the node's own memory from row 0 */
        trc_kv_write_args *a = &r.u.kv_write;
        r.kind = TRC_K_KV_WRITE;
        a->n = 1;
        a->width = t->src[0]->ne[0];
        a->T = tr_nelements(t->src[0]) / a->width;
        a->cache_rs = a->width;
        a->src[0] = rows_of(L, t->src[0], t->src[0]->nb[1], &a->src_row0[0]);
        a->cache[0] = dptr(c, t);
        a->pos0[0] = dyn_param(L, 0);
        return push(L, &r);
    }
    case TR_OP_CONCAT: /* each source is a cache-style row write into the node, after the last */
        for (int s = 0, row0 = 0; s < TR_MAX_SRC && t->src[s]; row0 += (int)t->src[s]->ne[1], s++) {
            trc_record rs = r;
            trc_kv_write_args *a = &rs.u.kv_write;
            rs.kind = TRC_K_KV_WRITE;
            a->n = 1;
            a->width = t->src[s]->ne[0];
            a->T = t->src[s]->ne[1];
            a->cache_rs = a->width;
            a->src[0] = rows_of(L, t->src[s], t->src[s]->nb[1], &a->src_row0[0]);
            a->cache[0] = dptr(c, t);
            a->pos0[0] = dyn_param(L, row0);
            TR_TRY(push(L, &rs));
        }
        return TR_OK;
    case TR_OP_ATTENTION:
        return lower_attention(L, i);
    default:
        return tr_fail(TR_ERR_UNSUPPORTED, "cuda: op %s (node '%s') is not supported", tr_op_name(t->op), t->name);
    }
}

/* ---- graph_compute ----------------------------------------------------------------------------- */

/* Checks every node, counts the readers of each, decides the fusions and plans the arena. */
static tr_status place_and_count(cuda_backend *c, tr_graph *g, size_t *arena_need)
{
    int n = g->n_nodes;
    int cap = c->cap_nodes;
    TR_TRY(trc_reserve((void **)&c->uses, &cap, n, sizeof *c->uses));
    cap = c->cap_nodes;
    TR_TRY(trc_reserve((void **)&c->done, &cap, n, sizeof *c->done));
    cap = c->cap_nodes;
    TR_TRY(trc_reserve((void **)&c->fz, &cap, n, sizeof *c->fz));
    cap = c->cap_nodes;
    TR_TRY(trc_reserve((void **)&c->linked, &cap, n, sizeof *c->linked));
    c->cap_nodes = cap;
    memset(c->uses, 0, (size_t)n * sizeof *c->uses);
    TR_TRY(map_build(c, g));
    for (int i = 0; i < n; i++) {
        const tr_tensor *t = g->nodes[i];
        const char *why = unsupported(t);
        if (why)
            return tr_fail(TR_ERR_UNSUPPORTED, "cuda: op %s (node '%s') is not supported: %s", tr_op_name(t->op),
                           t->name, why);
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++) {
            int j = node_index(c, t->src[s]);
            if (j >= 0)
                c->uses[j]++;
        }
    }
    /* keep_all (per-node parity): no fusion (trc_plan_fusions) and no memory reuse, so that every
     * node's own value can be read back afterwards */
    int n_linked;
    trc_plan_fusions(c, g, c->linked, &n_linked);
    size_t need = tr_memplan(g, ALIGN, g->keep_all);
    trc_unlink(c->linked, n_linked);
    if (need == (size_t)-1)
        return tr_fail(TR_ERR_NOMEM, "cuda: out of host memory planning the graph");
    *arena_need = need;
    return TR_OK;
}

/* Gives every node its buffer and offset (the arena must be allocated). */
static void place_nodes(cuda_backend *c, tr_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        t->data = NULL;
        if (t->op == TR_OP_VIEW || t->op == TR_OP_KV_WRITE) {
            const tr_tensor *src = t->op == TR_OP_VIEW ? t->src[0] : t->src[1];
            tr_buffer *buf;
            size_t off;
            locate(c, src, &buf, &off);
            t->buffer = buf;
            t->offset = off + (t->op == TR_OP_VIEW ? t->p.view_offset : 0);
        } else {
            t->buffer = &c->arena; /* offset: the memory plan's */
        }
    }
}

tr_status trc_graph_compute(tr_backend *b, tr_graph *g)
{
    cuda_backend *c = b->impl;
    size_t arena_need = 0, host_bytes = 0;
    TR_TRY(trc_use_device(c));
    TR_TRY(place_and_count(c, g, &arena_need));
    TR_TRY(collect_host_leaves(c, g, &host_bytes));
    int n_dyn_max = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        /* a first row and a source row each for writes and copies (per source for a concat); n_past
         * and the view's row for attention; a source row for RoPE */
        tr_op op = g->nodes[i]->op;
        n_dyn_max += op == TR_OP_KV_WRITE || op == TR_OP_COPY || op == TR_OP_ATTENTION ? 2
                   : op == TR_OP_CONCAT                                                  ? 2 * TR_MAX_SRC
                                                                                         : op == TR_OP_ROPE;
    }
    size_t io_need = host_bytes + (size_t)n_dyn_max * sizeof(int32_t);

    TR_TRY(trc_grow_device(c, &c->arena.impl, &c->arena.size, arena_need, "activations"));
    TR_TRY(trc_grow_device(c, &c->io.impl, &c->io.size, io_need, "inputs"));
    /* the pinned staging is rewritten below: its previous copy must be finished */
    TRC_TRY("cudaEventSynchronize", cudaEventSynchronize(c->io_done));
    if (io_need > c->staging_size) {
        if (c->staging)
            TRC_TRY("cudaFreeHost", cudaFreeHost(c->staging));
        c->staging = NULL;
        c->staging_size = 0;
        TRC_TRY("cudaHostAlloc", cudaHostAlloc(&c->staging, c->io.size, cudaHostAllocDefault));
        c->staging_size = c->io.size;
    }
    place_nodes(c, g);

    /* pass 1 sizes the workspace, pass 2 (with its pointer final) fills the records */
    lower_ctx L = {.c = c, .g = g, .dyn_host = (int32_t *)((char *)c->staging + host_bytes),
                   .dyn_dev = (int32_t *)((char *)c->io.impl + host_bytes)};
    for (int pass = 0; pass < 2; pass++) {
        c->n_rec = 0;
        L.n_dyn = 0;
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i]->op != TR_OP_VIEW && !c->done[i])
                TR_TRY(lower_node(&L, i));
        if (pass == 0)
            TR_TRY(trc_grow_device(c, &c->workspace, &c->workspace_size, L.workspace, "kernel workspace"));
    }

    for (int i = 0; i < c->n_host; i++)
        memcpy((char *)c->staging + c->host_off[i], c->host_leaf[i]->data, tr_nbytes(c->host_leaf[i]));
    size_t copy = host_bytes + (size_t)L.n_dyn * sizeof(int32_t);
    if (copy > 0) {
        TRC_TRY("cudaMemcpyAsync", cudaMemcpyAsync(c->io.impl, c->staging, copy, cudaMemcpyHostToDevice, c->stream));
        TRC_TRY("cudaEventRecord", cudaEventRecord(c->io_done, c->stream));
    }

    return trc_run(c);
}
