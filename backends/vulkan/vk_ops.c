/* vk_ops.c: each op of core/ir.h lowered to dispatches of the shaders in shaders/.
 *
 * For every operand the op binds the byte range it reads or writes: the binding starts at the range's
 * offset rounded down to the binding alignment, and the rest of the way is an element offset in the
 * push constants. A binding may cover at most maxStorageBufferRange bytes, so operands larger than
 * that (the output projection of a large vocabulary, a long prefill's activations) are cut into
 * pieces of whole rows, one dispatch per piece, each binding only its rows; the shaders never see
 * the difference. Workgroup counts go through vk_cmd_dispatch's 2-D grid.
 *
 * Kernel choice: matmul_*_vec for up to VEC_MAX_T tokens (decode streams each weight row once),
 * matmul_*_tiled otherwise; attention_f32_decode for up to DECODE_MAX_T query rows, the flash kernel
 * otherwise, and attention_f32_transition for the rows of transition blocks; differential attention
 * takes the _diff builds of the decode and flash kernels (workgroups per head pair). Weight-typed
 * kernels come as _packed when the device lacks 16-bit storage, reductions as _sg with subgroup
 * arithmetic. Quantized weights (shaders/quant.glsl) are bound by the byte: matmul_<q>_vec and
 * get_rows_<q> read their blocks directly, and prefill dequantizes panels of rows into the scratch
 * buffer (vk_op_scratch_bytes sizes it before recording) for matmul_f32_tiled. */
#include <stdio.h>
#include <string.h>

#include "device_graph.h"
#include "error.h"
#include "vk_internal.h"

#define VEC_MAX_T 8
#define DECODE_MAX_T 4

/* ---- bindings and pipelines ----------------------------------------------------------------- */

/* Binds n bytes at byte_off past loc and returns the element offset (in esize units) of that first
 * byte inside the binding. A range the device cannot bind is recorded in c->bind_error. */
static uint32_t bind(vk_ctx *c, vk_binding *b, vk_loc loc, size_t byte_off, size_t n, size_t esize, int write)
{
    vk_buffer *vb = vk_buf(loc.buf);
    size_t start = loc.off + byte_off, base = start / c->lim.bind_align * c->lim.bind_align;
    size_t end = vk_align_up(start + n, 4);
    if (end > vb->size)
        end = vb->size;
    *b = (vk_binding){.buf = vb, .offset = base, .range = end - base, .write = write};
    if (start + n > vb->size || end - base > c->lim.max_range || n == 0)
        c->bind_error = tr_fail(TR_ERR_UNSUPPORTED, "vulkan: cannot bind %zu bytes at %zu of a %llu-byte buffer "
                                                    "(storage buffer range %llu)",
                                n, start, (unsigned long long)vb->size, (unsigned long long)c->lim.max_range);
    return (uint32_t)((start - base) / esize);
}

/* Rows of row_bytes that one binding can hold (0 if not even one). */
static size_t rows_fit(const vk_ctx *c, size_t row_bytes)
{
    size_t room = c->lim.max_range > c->lim.bind_align + 4 ? c->lim.max_range - c->lim.bind_align - 4 : 0;
    return row_bytes ? room / row_bytes : 0;
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static tr_status no_fit(const tr_tensor *t, size_t row_bytes)
{
    return tr_fail(TR_ERR_UNSUPPORTED, "vulkan: a row of %zu bytes of '%s' exceeds the device's storage buffer range",
                   row_bytes, t->name);
}

static vk_pipeline *pipeline(vk_ctx *c, const char *name, int n_bind, uint32_t s1, uint32_t s2, uint32_t s3, int n_spec)
{
    uint32_t spec[4] = {VK_WG, s1, s2, s3};
    return vk_pipeline_get(c, name, n_bind, spec, n_spec);
}

/* The name of a weight-typed variant: <base>_<dtype><variant>[_packed][_sg]. */
static const char *wname(vk_ctx *c, char *buf, size_t cap, const char *base, tr_dtype dt, const char *variant, int sg)
{
    int packed = (dt == TR_F16 || dt == TR_BF16) && !c->lim.storage16;
    snprintf(buf, cap, "%s_%s%s%s%s", base, tr_dtype_name(dt), variant, packed ? "_packed" : "",
             sg && c->lim.subgroup_arith ? "_sg" : "");
    return buf;
}

static tr_status dispatch(vk_ctx *c, vk_dispatch *d, const void *push, size_t push_size)
{
    if (!d->pipe)
        return TR_ERR_UNSUPPORTED; /* vk_pipeline_get set the message */
    memset(d->push, 0, sizeof d->push);
    memcpy(d->push, push, push_size);
    return vk_cmd_dispatch(c, d);
}

static uint32_t groups_for(size_t n) { return (uint32_t)((n + VK_WG - 1) / VK_WG); }

/* ---- element-wise and row-wise ops ---------------------------------------------------------- */

static tr_status op_get_rows(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *tab = dst->src[0], *ids = dst->src[1];
    int quant = tr_dtype_is_quant(tab->dtype);
    size_t D = (size_t)tab->ne[0], V = (size_t)tab->ne[1], T = (size_t)ids->ne[0];
    size_t rb = tr_row_bytes(tab->dtype, (int64_t)D), es = quant ? 1 : tr_dtype_size(tab->dtype); /* binding unit */
    size_t tp = rows_fit(c, D * 4), vp = rows_fit(c, rb);
    if (!tp || !vp)
        return no_fit(tab, D * 4);
    char name[64];
    vk_dispatch d = {.pipe = pipeline(c, wname(c, name, sizeof name, "get_rows", tab->dtype, "", 0), 3, 0, 0, 0, 1)};
    vk_loc lt = vk_loc_of(c, tab), li = vk_loc_of(c, ids), lo = vk_loc_of(c, dst);
    for (size_t t0 = 0; t0 < T; t0 += tp)
        for (size_t v0 = 0; v0 < V; v0 += vp) {
            size_t tn = min_sz(tp, T - t0), vn = min_sz(vp, V - v0);
            struct { uint32_t D, T, V, v0, nv, tab_off, ids_off, dst_off; } p = {
                (uint32_t)D, (uint32_t)tn, (uint32_t)V, (uint32_t)v0, (uint32_t)vn,
                bind(c, &d.bind[0], lt, v0 * rb, vn * rb, es, 0),
                bind(c, &d.bind[1], li, t0 * 4, tn * 4, 4, 0),
                bind(c, &d.bind[2], lo, t0 * D * 4, tn * D * 4, 4, 1),
            };
            d.groups = groups_for(quant ? D / 32 * tn : D * tn);
            TR_TRY(dispatch(c, &d, &p, sizeof p));
        }
    return TR_OK;
}

static tr_status op_rms_norm(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    size_t D = (size_t)x->ne[0], rows = (size_t)(tr_nelements(x) / x->ne[0]), rp = rows_fit(c, D * 4);
    if (!rp)
        return no_fit(x, D * 4);
    char name[64];
    vk_dispatch d = {.pipe = pipeline(c, wname(c, name, sizeof name, "rms_norm", w->dtype, "", 1), 3, 0, 0, 0, 1)};
    vk_loc lx = vk_loc_of(c, x), lw = vk_loc_of(c, w), lo = vk_loc_of(c, dst);
    size_t es = tr_dtype_size(w->dtype);
    for (size_t r0 = 0; r0 < rows; r0 += rp) {
        size_t rn = min_sz(rp, rows - r0);
        struct { uint32_t D, rows, x_off, w_off, dst_off; float eps; } p = {
            (uint32_t)D, (uint32_t)rn,
            bind(c, &d.bind[0], lx, r0 * D * 4, rn * D * 4, 4, 0),
            bind(c, &d.bind[1], lw, 0, D * es, es, 0),
            bind(c, &d.bind[2], lo, r0 * D * 4, rn * D * 4, 4, 1),
            dst->p.eps,
        };
        d.groups = (uint32_t)rn;
        TR_TRY(dispatch(c, &d, &p, sizeof p));
    }
    return TR_OK;
}

/* ADD, MUL (y may be one row broadcast over x's rows, as mul_f32_ref decides) and GLU (its
 * activation a push constant of glu_f32). */
static tr_status op_binary(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *y = dst->src[1];
    size_t ne0 = (size_t)x->ne[0], rows = (size_t)(tr_nelements(x) / x->ne[0]), rp = rows_fit(c, ne0 * 4);
    if (!rp)
        return no_fit(x, ne0 * 4);
    int bcast = dst->op == TR_OP_MUL && tr_nelements(y) == y->ne[0] && rows > 1;
    const char *name = dst->op == TR_OP_ADD ? "add_f32" : dst->op == TR_OP_MUL ? "mul_f32" : "glu_f32";
    vk_dispatch d = {.pipe = pipeline(c, name, 3, 0, 0, 0, 1)};
    vk_loc lx = vk_loc_of(c, x), ly = vk_loc_of(c, y), lo = vk_loc_of(c, dst);
    for (size_t r0 = 0; r0 < rows; r0 += rp) {
        size_t rn = min_sz(rp, rows - r0), n = rn * ne0;
        uint32_t xo = bind(c, &d.bind[0], lx, r0 * ne0 * 4, n * 4, 4, 0);
        uint32_t yo = bcast ? bind(c, &d.bind[1], ly, 0, ne0 * 4, 4, 0) : bind(c, &d.bind[1], ly, r0 * ne0 * 4, n * 4, 4, 0);
        uint32_t oo = bind(c, &d.bind[2], lo, r0 * ne0 * 4, n * 4, 4, 1);
        d.groups = groups_for(n);
        if (dst->op == TR_OP_GLU) {
            struct { uint32_t n, act, g_off, u_off, dst_off; } p = {(uint32_t)n, (uint32_t)dst->p.act, xo, yo, oo};
            TR_TRY(dispatch(c, &d, &p, sizeof p));
        } else {
            struct { uint32_t n, ne0, bcast, x_off, y_off, dst_off; } p = {(uint32_t)n, (uint32_t)ne0, (uint32_t)bcast,
                                                                           xo, yo, oo};
            TR_TRY(dispatch(c, &d, &p, sizeof p));
        }
    }
    return TR_OK;
}

/* Copies T rows of W floats from src to rows [row0, row0 + T) of dst, in chunks that fit the
 * device's binding limits: KV_WRITE (into a cache) and COPY (into the node's own memory). */
static tr_status copy_rows(vk_ctx *c, const tr_tensor *src, vk_loc ls, vk_loc ld, size_t row0)
{
    size_t W = (size_t)src->ne[0], T = (size_t)(tr_nelements(src) / src->ne[0]), rp = rows_fit(c, W * 4);
    if (!rp)
        return no_fit(src, W * 4);
    vk_dispatch d = {.pipe = pipeline(c, "kv_write_f32", 2, 0, 0, 0, 1)};
    for (size_t t0 = 0; t0 < T; t0 += rp) {
        size_t tn = min_sz(rp, T - t0);
        struct { uint32_t n, src_off, dst_off; } p = {
            (uint32_t)(tn * W),
            bind(c, &d.bind[0], ls, t0 * W * 4, tn * W * 4, 4, 0),
            bind(c, &d.bind[1], ld, (row0 + t0) * W * 4, tn * W * 4, 4, 1),
        };
        d.groups = groups_for(tn * W);
        TR_TRY(dispatch(c, &d, &p, sizeof p));
    }
    return TR_OK;
}

static tr_status op_kv_write(vk_ctx *c, tr_tensor *dst)
{
    return copy_rows(c, dst->src[0], vk_loc_of(c, dst->src[0]), vk_loc_of(c, dst->src[1]), (size_t)dst->p.pos0);
}

static tr_status op_copy(vk_ctx *c, tr_tensor *dst)
{
    return copy_rows(c, dst->src[0], vk_loc_of(c, dst->src[0]), vk_loc_of(c, dst), 0);
}

static tr_status op_concat(vk_ctx *c, tr_tensor *dst)
{
    size_t row0 = 0;
    for (int i = 0; i < TR_MAX_SRC && dst->src[i]; i++) {
        TR_TRY(copy_rows(c, dst->src[i], vk_loc_of(c, dst->src[i]), vk_loc_of(c, dst), row0));
        row0 += (size_t)dst->src[i]->ne[1];
    }
    return TR_OK;
}

static tr_status op_rope(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0];
    size_t hd = (size_t)x->ne[0], H = (size_t)x->ne[1], T = (size_t)x->ne[2], half = hd / 2;
    size_t rp = min_sz(rows_fit(c, H * hd * 4), rows_fit(c, half * 8));
    if (!rp)
        return no_fit(x, H * hd * 4);
    vk_dispatch d = {.pipe = pipeline(c, "rope_f32", 3, 0, 0, 0, 1)};
    vk_loc lx = vk_loc_of(c, x), lo = vk_loc_of(c, dst);
    vk_loc lt = {c->inputs, vk_rope_table(c, dst)};
    for (size_t t0 = 0; t0 < T; t0 += rp) {
        size_t tn = min_sz(rp, T - t0);
        struct { uint32_t hd, H, T, half_layout, x_off, tab_off, dst_off; } p = {
            (uint32_t)hd, (uint32_t)H, (uint32_t)tn, dst->p.rope.layout == TR_ROPE_HALF,
            bind(c, &d.bind[0], lx, t0 * H * hd * 4, tn * H * hd * 4, 4, 0),
            bind(c, &d.bind[1], lt, t0 * half * 8, tn * half * 8, 8, 0),
            bind(c, &d.bind[2], lo, t0 * H * hd * 4, tn * H * hd * 4, 4, 1),
        };
        d.groups = groups_for(half * H * tn);
        TR_TRY(dispatch(c, &d, &p, sizeof p));
    }
    return TR_OK;
}

/* ---- matrix products ------------------------------------------------------------------------ */

/* Rows of W one prefill panel dequantizes: what the scratch buffer holds (QUANT_PANEL_BYTES) and one
 * binding can cover. */
#define QUANT_PANEL_BYTES ((size_t)64 << 20)

static size_t quant_panel_rows(const vk_ctx *c, const tr_tensor *w)
{
    size_t K = (size_t)w->ne[0], rows = QUANT_PANEL_BYTES / (K * 4);
    rows = min_sz(rows, min_sz(rows_fit(c, K * 4), rows_fit(c, tr_row_bytes(w->dtype, w->ne[0]))));
    return min_sz(rows, (size_t)w->ne[1]);
}

size_t vk_op_scratch_bytes(const vk_ctx *c, const tr_tensor *t)
{
    if (t->op != TR_OP_MATMUL || !tr_dtype_is_quant(t->src[1]->dtype) || (size_t)t->src[0]->ne[1] <= VEC_MAX_T)
        return 0;
    return quant_panel_rows(c, t->src[1]) * (size_t)t->src[1]->ne[0] * 4;
}

/* Prefill with quantized W: each panel of rows dequantized into scratch, then the f32 tiled product
 * of all tokens with it. */
static tr_status matmul_quant_tiled(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    size_t K = (size_t)x->ne[0], T = (size_t)x->ne[1], N = (size_t)w->ne[1], rb = tr_row_bytes(w->dtype, w->ne[0]);
    size_t np = quant_panel_rows(c, w), tp = min_sz(rows_fit(c, K * 4), rows_fit(c, N * 4));
    if (!np || !tp || !c->scratch)
        return no_fit(w, K * 4);
    char name[64];
    vk_dispatch dq = {.pipe = pipeline(c, wname(c, name, sizeof name, "dequant", w->dtype, "", 0), 2, 0, 0, 0, 1)};
    vk_dispatch mm = {.pipe = pipeline(c, "matmul_f32_tiled", 3, 0, 0, 0, 1)};
    vk_loc lx = vk_loc_of(c, x), lw = vk_loc_of(c, w), lo = vk_loc_of(c, dst), ls = {c->scratch, 0};
    for (size_t n0 = 0; n0 < N; n0 += np) {
        size_t nn = min_sz(np, N - n0);
        struct { uint32_t K, rows, w_off, dst_off; } pd = {
            (uint32_t)K, (uint32_t)nn, bind(c, &dq.bind[0], lw, n0 * rb, nn * rb, 1, 0),
            bind(c, &dq.bind[1], ls, 0, nn * K * 4, 4, 1),
        };
        dq.groups = groups_for(nn * K / 32);
        TR_TRY(dispatch(c, &dq, &pd, sizeof pd));
        for (size_t t0 = 0; t0 < T; t0 += tp) {
            size_t tn = min_sz(tp, T - t0);
            struct { uint32_t K, N, T, x_off, w_off, dst_off, dst_ld, n0, tpr, groups; } p = {
                (uint32_t)K, (uint32_t)nn, (uint32_t)tn,
                bind(c, &mm.bind[0], lx, t0 * K * 4, tn * K * 4, 4, 0),
                bind(c, &mm.bind[1], ls, 0, nn * K * 4, 4, 0),
                bind(c, &mm.bind[2], lo, t0 * N * 4, tn * N * 4, 4, 1),
                (uint32_t)N, (uint32_t)n0, 1, 0,
            };
            mm.groups = (uint32_t)(((nn + 63) / 64) * ((tn + 63) / 64));
            p.groups = mm.groups;
            TR_TRY(dispatch(c, &mm, &p, sizeof p));
        }
    }
    return TR_OK;
}

static tr_status op_matmul(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    int quant = tr_dtype_is_quant(w->dtype);
    if (quant && (size_t)x->ne[1] > VEC_MAX_T)
        return matmul_quant_tiled(c, dst);
    size_t K = (size_t)x->ne[0], T = (size_t)x->ne[1], N = (size_t)w->ne[1];
    size_t rb = tr_row_bytes(w->dtype, w->ne[0]), es = quant ? 1 : tr_dtype_size(w->dtype); /* binding unit */
    size_t tp = min_sz(rows_fit(c, K * 4), rows_fit(c, N * 4)), np = rows_fit(c, rb);
    if (!tp || !np)
        return no_fit(w, N * 4 > rb ? N * 4 : rb);
    int vec = T <= VEC_MAX_T, sg = vec && c->lim.subgroup_arith && c->lim.subgroup_size >= 1 &&
                                   c->lim.subgroup_size <= VK_WG;
    size_t tpr = 1; /* matmul_vec without subgroups: invocations per weight row, about 8 k each (a
                       unit of 32 each for quantized rows) */
    while (tpr < VK_WG && (quant ? tpr * 2 * 32 <= K : tpr * 8 < K))
        tpr *= 2;
    char name[64];
    vk_dispatch d = {.pipe = pipeline(c, wname(c, name, sizeof name, "matmul", w->dtype, vec ? "_vec" : "_tiled", sg), 3,
                                      0, 0, 0, 1)};
    vk_loc lx = vk_loc_of(c, x), lw = vk_loc_of(c, w), lo = vk_loc_of(c, dst);
    for (size_t t0 = 0; t0 < T; t0 += tp)
        for (size_t n0 = 0; n0 < N; n0 += np) {
            size_t tn = min_sz(tp, T - t0), nn = min_sz(np, N - n0);
            struct { uint32_t K, N, T, x_off, w_off, dst_off, dst_ld, n0, tpr, groups; } p = {
                (uint32_t)K, (uint32_t)nn, (uint32_t)tn,
                bind(c, &d.bind[0], lx, t0 * K * 4, tn * K * 4, 4, 0),
                bind(c, &d.bind[1], lw, n0 * rb, nn * rb, es, 0),
                bind(c, &d.bind[2], lo, t0 * N * 4, tn * N * 4, 4, 1),
                (uint32_t)N, (uint32_t)n0, (uint32_t)tpr, 0,
            };
            size_t rows_per_group = sg ? VK_WG / c->lim.subgroup_size : VK_WG / tpr;
            d.groups = vec ? (uint32_t)((nn + rows_per_group - 1) / rows_per_group)
                           : (uint32_t)(((nn + 63) / 64) * ((tn + 63) / 64));
            p.groups = d.groups;
            TR_TRY(dispatch(c, &d, &p, sizeof p));
        }
    return TR_OK;
}

/* ---- attention ------------------------------------------------------------------------------ */

typedef struct attn_push {
    uint32_t H, Hkv, T, t0, n_past, kv_ld;
    uint32_t q_off, k_off, v_off, dst_off;
    float scale;
    uint32_t skip_lo, skip_hi;
    uint32_t start, iv, strategy;
    float alpha, beta;
    float lambda, out_scale, eps;
} attn_push;

/* The flash kernel's invocations per row (tpr: a power of two dividing the row's w = nh * hd output
 * values, so that each keeps at most 16 of them when it can; nh heads per unit, attention.glsl) and
 * key tile (bc), as large as the shared memory allows. */
static int flash_tiles(const vk_ctx *c, size_t hd, size_t nh, uint32_t *tpr, uint32_t *bc)
{
    size_t t = 1, w = nh * hd;
    while (w / t > 16 && w % (2 * t) == 0 && 2 * t <= 32)
        t *= 2;
    for (; t <= VK_WG && (t == 1 || w % t == 0); t *= 2)
        for (size_t k = 32; k >= 1; k /= 2) {
            size_t br = VK_WG / t; /* attention_flash.comp's qt, kt + vt, st */
            if (4 * (nh * br * (hd + 1) + k * (nh * (hd + 1) + w) + nh * br * k) <= c->lim.max_shared) {
                *tpr = (uint32_t)t;
                *bc = (uint32_t)k;
                return 1;
            }
        }
    return 0;
}

/* Shared memory of the row kernels (decode with nh heads per unit, transition), as attention.glsl
 * lays it out: qs, the reduction, the weights ps (and ms), the groups' partial outputs comb. */
static size_t row_kernel_shared(size_t hd, size_t nh, int transition)
{
    size_t w = nh * hd, tpg = w < VK_WG ? w : VK_WG, ng = VK_WG / tpg;
    return 4 * (w + VK_WG + (transition ? 2 : nh) * VK_WG + (transition ? 3 : 1) * ng * w);
}

/* Binds q rows [t0, t0 + tn) and the same rows of out, and the caches' first n_kv rows. */
static void bind_attention(vk_ctx *c, vk_dispatch *d, const tr_tensor *dst, size_t t0, size_t tn, attn_push *p)
{
    const tr_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    size_t row = (size_t)(q->ne[0] * q->ne[1]) * 4, kv_row = (size_t)k->ne[0] * 4, n_kv = (size_t)dst->p.attn.n_kv;
    p->T = (uint32_t)tn;
    p->t0 = (uint32_t)t0;
    p->q_off = bind(c, &d->bind[0], vk_loc_of(c, q), t0 * row, tn * row, 4, 0);
    p->k_off = bind(c, &d->bind[1], vk_loc_of(c, k), 0, n_kv * kv_row, 4, 0);
    p->v_off = bind(c, &d->bind[2], vk_loc_of(c, v), 0, n_kv * kv_row, 4, 0);
    p->dst_off = bind(c, &d->bind[3], vk_loc_of(c, dst), t0 * row, tn * row, 4, 1);
}

static tr_status op_attention(vk_ctx *c, tr_tensor *dst)
{
    const tr_tensor *q = dst->src[0], *k = dst->src[1];
    const tr_attn_params *ap = &dst->p.attn;
    size_t hd = (size_t)q->ne[0], H = (size_t)q->ne[1], T = (size_t)q->ne[2];
    size_t rp = rows_fit(c, H * hd * 4);
    if (!rp)
        return no_fit(q, H * hd * 4);
    if ((size_t)ap->n_kv * (size_t)k->ne[0] * 4 + c->lim.bind_align + 4 > c->lim.max_range)
        return tr_fail(TR_ERR_UNSUPPORTED, "vulkan: attention over %d keys of %lld floats exceeds the device's storage "
                                           "buffer range (%llu bytes)",
                       ap->n_kv, (long long)k->ne[0], (unsigned long long)c->lim.max_range);
    int diff = ap->variant == TR_ATTN_DIFF;
    size_t nh = diff ? 2 : 1, units = H / nh; /* a workgroup's unit: a head, or a DIFF head pair */
    attn_push p = {
        .H = (uint32_t)H, .Hkv = (uint32_t)(k->ne[0] / q->ne[0]), .n_past = (uint32_t)ap->n_past,
        .kv_ld = (uint32_t)k->ne[0], .scale = ap->scale,
        .lambda = c->fault_diff ? -ap->diff.lambda : ap->diff.lambda, /* TRANSIT_FAULT=diff_subtract */
        .out_scale = ap->diff.out_scale, .eps = ap->diff.eps,
    };

    /* transition rows of this batch (device_graph.h): one skip range if they are contiguous */
    int64_t first = ap->n_past, last = ap->n_past + (int64_t)T, skip_lo, skip_hi;
    int64_t start[TR_MAX_TRANSITION_BLOCKS], lo[TR_MAX_TRANSITION_BLOCKS], hi[TR_MAX_TRANSITION_BLOCKS];
    int nb = tr_dev_transition_rows(ap, (int64_t)T, start, lo, hi, &skip_lo, &skip_hi);
    p.skip_lo = (uint32_t)skip_lo;
    p.skip_hi = (uint32_t)skip_hi;

    uint32_t tpr = 0, bc = 0;
    int flash = T > DECODE_MAX_T && flash_tiles(c, hd, nh, &tpr, &bc);
    size_t br = flash ? VK_WG / tpr : 1;
    if (!flash && row_kernel_shared(hd, nh, 0) > c->lim.max_shared)
        return tr_fail(TR_ERR_UNSUPPORTED, "vulkan: head dimension %zu needs more shared memory than the device has", hd);
    int sg = c->lim.subgroup_arith;
    char name[64];
    snprintf(name, sizeof name, "attention_f32%s_%s%s", diff ? "_diff" : "", flash ? "flash" : "decode",
             !flash && sg ? "_sg" : "");
    vk_dispatch d = {.pipe = pipeline(c, name, 4, (uint32_t)hd, tpr, bc, flash ? 4 : 2)};
    if (!(skip_lo <= first && skip_hi >= last)) /* some rows are plain */
        for (size_t t0 = 0; t0 < T; t0 += rp) {
            size_t tn = min_sz(rp, T - t0);
            bind_attention(c, &d, dst, t0, tn, &p);
            d.groups = (uint32_t)((flash ? (tn + br - 1) / br : tn) * units);
            TR_TRY(dispatch(c, &d, &p, sizeof p));
        }
    if (nb == 0)
        return TR_OK;

    if (row_kernel_shared(hd, 1, 1) > c->lim.max_shared)
        return tr_fail(TR_ERR_UNSUPPORTED, "vulkan: head dimension %zu needs more shared memory than the device has", hd);
    vk_dispatch dt = {.pipe = pipeline(c, sg ? "attention_f32_transition_sg" : "attention_f32_transition", 4,
                                       (uint32_t)hd, 0, 0, 2)};
    p.iv = (uint32_t)ap->transition.iv;
    p.strategy = (uint32_t)ap->transition.strategy;
    p.alpha = ap->transition.alpha;
    p.beta = ap->transition.beta;
    p.skip_lo = p.skip_hi = 0;
    for (int j = 0; j < nb; j++) {
        p.start = (uint32_t)start[j];
        for (int64_t r = lo[j]; r < hi[j]; r += (int64_t)rp) {
            size_t tn = min_sz(rp, (size_t)(hi[j] - r));
            bind_attention(c, &dt, dst, (size_t)(r - ap->n_past), tn, &p);
            dt.groups = (uint32_t)(tn * H);
            TR_TRY(dispatch(c, &dt, &p, sizeof p));
        }
    }
    return TR_OK;
}

/* ---- the op table --------------------------------------------------------------------------- */

typedef tr_status (*op_fn)(vk_ctx *c, tr_tensor *dst);

static const op_fn ops[TR_OP_COUNT] = {
    [TR_OP_GET_ROWS] = op_get_rows, [TR_OP_RMS_NORM] = op_rms_norm, [TR_OP_ADD] = op_binary,
    [TR_OP_MUL] = op_binary,        [TR_OP_MATMUL] = op_matmul,     [TR_OP_ROPE] = op_rope,
    [TR_OP_GLU] = op_binary,     [TR_OP_KV_WRITE] = op_kv_write, [TR_OP_ATTENTION] = op_attention,
    [TR_OP_COPY] = op_copy,         [TR_OP_CONCAT] = op_concat,
};
_Static_assert(TR_OP_COUNT == 13, "a new op needs a Vulkan lowering in ops[] (or an explicit 'unsupported')");

bool vk_op_supported(vk_ctx *c, const tr_tensor *t, const char **why)
{
    (void)c;
    return tr_dev_op_supported(t, (unsigned)t->op < TR_OP_COUNT && ops[t->op], why);
}

tr_status vk_op_lower(vk_ctx *c, tr_tensor *node)
{
    if (tr_nelements(node) == 0)
        return TR_OK;
    return ops[node->op](c, node);
}

tr_status vk_op_fault(vk_ctx *c, tr_tensor *node)
{
    vk_dispatch d = {.pipe = pipeline(c, "fault_f32", 1, 0, 0, 0, 1), .groups = 1};
    struct { uint32_t dst_off; } p = {bind(c, &d.bind[0], vk_loc_of(c, node), 0, 4, 4, 1)};
    return dispatch(c, &d, &p, sizeof p);
}
