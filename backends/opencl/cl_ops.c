/* cl_ops.c: each op of core/ir.h lowered to launches of the kernels in kernels/NAME.cl.
 *
 * Every operand is passed as (cl_mem, byte offset); every kernel runs in work-groups of CL_WG on a
 * 1-D range, one launch per node (attention: one for the plain rows and one per transition block).
 * Kernel choice: matvec_<type> for up to MATVEC_MAX_T tokens (decode: each weight row read once for
 * all tokens), matmul_<type> otherwise (32 x 32 tiles through local memory); the weight types share
 * one source through macros (kernels/weights.cl), quantized rows decoded by kernels/quant.cl.
 * Attention: attention_rows (online softmax, one work-group per query row and head or head pair),
 * attention_transition for the rows of transition blocks; the attention program is built per head
 * dimension and unit (-DHD, -DNH), and its local memory is checked against the device's before use. */
#include <stdio.h>
#include <string.h>

#include "device_graph.h"
#include "error.h"
#include "cl_internal.h"

#define MATVEC_MAX_T 8 /* kernels/weights.cl */
#define MAIN_OPTIONS "-cl-std=CL1.2"

typedef struct karg {
    size_t size;
    const void *ptr;
} karg;
#define ARG(x) ((karg){sizeof(x), &(x)})

/* An operand: its buffer and the byte offset of its first element. */
typedef struct operand {
    cl_mem mem;
    cl_ulong off;
} operand;

static operand opnd(cl_ctx *c, const tr_tensor *t)
{
    cl_loc l = cl_loc_of(c, t);
    return (operand){cl_buf_of(l.buf)->mem, (cl_ulong)l.off};
}

static operand at_row(operand o, size_t bytes) { return (operand){o.mem, o.off + bytes}; }

static size_t groups_for(size_t n) { return (n + CL_WG - 1) / CL_WG; }

/* Sets the n arguments and enqueues groups work-groups of CL_WG. */
static tr_status launch(cl_ctx *c, cl_kern *k, size_t groups, const karg *args, int n)
{
    if (!k)
        return TR_ERR_BACKEND; /* cl_kernel_get set the message */
    for (int i = 0; i < n; i++) {
        cl_int e = clSetKernelArg(k->k, (cl_uint)i, args[i].size, args[i].ptr);
        if (e != CL_SUCCESS)
            return tr_fail(TR_ERR_BACKEND, "opencl: argument %d of %s: %s", i, k->name, cl_error_name(e));
    }
    if (groups == 0)
        return TR_OK;
    size_t local = CL_WG, global = groups * CL_WG;
    cl_int e = clEnqueueNDRangeKernel(c->queue, k->k, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS)
        return tr_fail(e == CL_OUT_OF_RESOURCES || e == CL_MEM_OBJECT_ALLOCATION_FAILURE ? TR_ERR_NOMEM : TR_ERR_BACKEND,
                       "opencl: launching %s (%zu work-groups): %s", k->name, groups, cl_error_name(e));
    return TR_OK;
}

static cl_kern *main_kernel(cl_ctx *c, const char *name) { return cl_kernel_get(c, "main", MAIN_OPTIONS, name); }

/* "<base>_<dtype>" with the dtype in lower case, as kernels/NAME.cl's macros name them (q4_k) */
static cl_kern *typed_kernel(cl_ctx *c, const char *base, tr_dtype dt)
{
    char name[64];
    int n = snprintf(name, sizeof name, "%s_%s", base, tr_dtype_name(dt));
    for (int i = 0; i < n; i++)
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');
    return main_kernel(c, name);
}

/* ---- element-wise and row-wise ops ---------------------------------------------------------- */

static tr_status op_get_rows(cl_ctx *c, tr_tensor *dst)
{
    const tr_tensor *tab = dst->src[0], *ids = dst->src[1];
    operand t = opnd(c, tab), i = opnd(c, ids), o = opnd(c, dst);
    cl_uint D = (cl_uint)tab->ne[0], T = (cl_uint)ids->ne[0], V = (cl_uint)tab->ne[1];
    cl_ulong rb = tr_row_bytes(tab->dtype, tab->ne[0]);
    karg a[] = {ARG(t.mem), ARG(t.off), ARG(i.mem), ARG(i.off), ARG(o.mem), ARG(o.off), ARG(D), ARG(T), ARG(V), ARG(rb)};
    return launch(c, typed_kernel(c, "get_rows", tab->dtype), groups_for((size_t)(D + 31) / 32 * T), a, 10);
}

static tr_status op_rms_norm(cl_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    operand ox = opnd(c, x), ow = opnd(c, w), o = opnd(c, dst);
    cl_uint D = (cl_uint)x->ne[0];
    cl_float eps = dst->p.eps;
    karg a[] = {ARG(ox.mem), ARG(ox.off), ARG(ow.mem), ARG(ow.off), ARG(o.mem), ARG(o.off), ARG(D), ARG(eps)};
    return launch(c, typed_kernel(c, "rms_norm", w->dtype), (size_t)(tr_nelements(x) / x->ne[0]), a, 8);
}

/* ADD, MUL (y may be one row broadcast over x's rows, as mul_f32_ref decides) and GLU */
static tr_status op_binary(cl_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *y = dst->src[1];
    operand ox = opnd(c, x), oy = opnd(c, y), o = opnd(c, dst);
    cl_uint n = (cl_uint)tr_nelements(x), ne0 = (cl_uint)x->ne[0];
    cl_uint bcast = dst->op == TR_OP_MUL && tr_nelements(y) == y->ne[0] && n > ne0;
    if (dst->op == TR_OP_GLU) {
        cl_uint act = (cl_uint)dst->p.act;
        karg a[] = {ARG(ox.mem), ARG(ox.off), ARG(oy.mem), ARG(oy.off), ARG(o.mem), ARG(o.off), ARG(n), ARG(act)};
        return launch(c, main_kernel(c, "glu_f32"), groups_for(n), a, 8);
    }
    karg a[] = {ARG(ox.mem), ARG(ox.off), ARG(oy.mem), ARG(oy.off), ARG(o.mem), ARG(o.off), ARG(n), ARG(ne0), ARG(bcast)};
    return launch(c, main_kernel(c, dst->op == TR_OP_ADD ? "add_f32" : "mul_f32"), groups_for(n), a, 9);
}

/* src's rows into dst from row row0 on (KV_WRITE into a cache, COPY, a piece of CONCAT) */
static tr_status copy_rows(cl_ctx *c, const tr_tensor *src, operand d, size_t row0)
{
    operand s = opnd(c, src);
    d = at_row(d, row0 * (size_t)src->ne[0] * sizeof(float));
    cl_uint n = (cl_uint)tr_nelements(src);
    karg a[] = {ARG(s.mem), ARG(s.off), ARG(d.mem), ARG(d.off), ARG(n)};
    return launch(c, main_kernel(c, "copy_f32"), groups_for(n), a, 5);
}

static tr_status op_kv_write(cl_ctx *c, tr_tensor *dst)
{
    return copy_rows(c, dst->src[0], opnd(c, dst->src[1]), (size_t)dst->p.pos0);
}

static tr_status op_copy(cl_ctx *c, tr_tensor *dst) { return copy_rows(c, dst->src[0], opnd(c, dst), 0); }

static tr_status op_concat(cl_ctx *c, tr_tensor *dst)
{
    size_t row0 = 0;
    for (int i = 0; i < TR_MAX_SRC && dst->src[i]; i++) {
        TR_TRY(copy_rows(c, dst->src[i], opnd(c, dst), row0));
        row0 += (size_t)dst->src[i]->ne[1];
    }
    return TR_OK;
}

static tr_status op_rope(cl_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0];
    operand ox = opnd(c, x), o = opnd(c, dst), tab = {cl_buf_of(c->inputs)->mem, (cl_ulong)cl_rope_table(c, dst)};
    cl_uint hd = (cl_uint)x->ne[0], H = (cl_uint)x->ne[1], T = (cl_uint)x->ne[2];
    cl_uint half_layout = dst->p.rope.layout == TR_ROPE_HALF;
    karg a[] = {ARG(ox.mem), ARG(ox.off), ARG(tab.mem), ARG(tab.off), ARG(o.mem), ARG(o.off),
                ARG(hd), ARG(H), ARG(T), ARG(half_layout)};
    return launch(c, main_kernel(c, "rope_f32"), groups_for((size_t)hd / 2 * H * T), a, 10);
}

static tr_status op_matmul(cl_ctx *c, tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    operand ox = opnd(c, x), ow = opnd(c, w), o = opnd(c, dst);
    cl_uint K = (cl_uint)x->ne[0], N = (cl_uint)w->ne[1], T = (cl_uint)x->ne[1];
    cl_ulong rb = tr_row_bytes(w->dtype, w->ne[0]);
    int vec = T <= MATVEC_MAX_T;
    karg a[] = {ARG(ox.mem), ARG(ox.off), ARG(ow.mem), ARG(ow.off), ARG(o.mem), ARG(o.off),
                ARG(K), ARG(N), ARG(T), ARG(rb)};
    size_t groups = vec ? N : (size_t)((N + 31) / 32) * ((T + 31) / 32);
    return launch(c, typed_kernel(c, vec ? "matvec" : "matmul", w->dtype), groups, a, 10);
}

/* ---- attention ------------------------------------------------------------------------------ */

/* kernels/attention.cl's attn_args: all 4-byte fields, so the layouts agree */
typedef struct attn_args {
    cl_uint H, Hkv, T, n_past, kv_ld;
    cl_float scale;
    cl_uint skip_lo, skip_hi;
    cl_uint start, iv, strategy;
    cl_float alpha, beta, lambda, out_scale, eps;
} attn_args;

/* local memory of the two attention kernels (attention.cl's arrays) */
static size_t attention_local_bytes(size_t hd, size_t nh, int transition)
{
    size_t w = nh * hd, tpg = w < CL_WG ? w : CL_WG, ng = CL_WG / tpg;
    return transition ? 4 * (hd + 3 * CL_WG + 3 * ng * hd) : 4 * (w + nh * CL_WG + ng * w + CL_WG);
}

static cl_kern *attention_kernel(cl_ctx *c, size_t hd, size_t nh, const char *name)
{
    size_t need = attention_local_bytes(hd, nh, !strcmp(name, "attention_transition"));
    if (need > c->lim.local_mem) {
        tr_fail(TR_ERR_UNSUPPORTED, "opencl: %s with head dimension %zu needs %zu bytes of local memory; %s has %llu",
                name, hd, need, c->device_name, (unsigned long long)c->lim.local_mem);
        return NULL;
    }
    char options[96];
    snprintf(options, sizeof options, "%s -DHD=%zu -DNH=%zu", MAIN_OPTIONS, hd, nh);
    return cl_kernel_get(c, "attention", options, name);
}

/* Rows [r0, r0 + n) of the node: q and out from row r0, the caches whole. */
static tr_status attention_launch(cl_ctx *c, cl_kern *k, const tr_tensor *dst, size_t r0, size_t n, attn_args *p,
                                  size_t groups_per_row)
{
    const tr_tensor *q = dst->src[0];
    size_t row = (size_t)(q->ne[0] * q->ne[1]) * sizeof(float);
    operand oq = at_row(opnd(c, q), r0 * row), ok = opnd(c, dst->src[1]), ov = opnd(c, dst->src[2]);
    operand o = at_row(opnd(c, dst), r0 * row);
    p->T = (cl_uint)n;
    p->n_past = (cl_uint)(dst->p.attn.n_past + (int64_t)r0);
    karg a[] = {ARG(oq.mem), ARG(oq.off), ARG(ok.mem), ARG(ok.off), ARG(ov.mem), ARG(ov.off), ARG(o.mem), ARG(o.off),
                {sizeof *p, p}};
    return launch(c, k, n * groups_per_row, a, 9);
}

static tr_status op_attention(cl_ctx *c, tr_tensor *dst)
{
    const tr_tensor *q = dst->src[0], *k = dst->src[1];
    const tr_attn_params *ap = &dst->p.attn;
    size_t hd = (size_t)q->ne[0], H = (size_t)q->ne[1], T = (size_t)q->ne[2];
    int diff = ap->variant == TR_ATTN_DIFF;
    size_t nh = diff ? 2 : 1;
    attn_args p = {
        .H = (cl_uint)H, .Hkv = (cl_uint)(k->ne[0] / q->ne[0]), .kv_ld = (cl_uint)k->ne[0], .scale = ap->scale,
        .lambda = c->fault_diff ? -ap->diff.lambda : ap->diff.lambda, /* TRANSIT_FAULT=diff_subtract */
        .out_scale = ap->diff.out_scale, .eps = ap->diff.eps,
    };
    int64_t first = ap->n_past, last = ap->n_past + (int64_t)T, skip_lo, skip_hi;
    int64_t start[TR_MAX_TRANSITION_BLOCKS], lo[TR_MAX_TRANSITION_BLOCKS], hi[TR_MAX_TRANSITION_BLOCKS];
    int nb = tr_dev_transition_rows(ap, (int64_t)T, start, lo, hi, &skip_lo, &skip_hi);
    p.skip_lo = (cl_uint)skip_lo;
    p.skip_hi = (cl_uint)skip_hi;
    if (!(skip_lo <= first && skip_hi >= last))
        TR_TRY(attention_launch(c, attention_kernel(c, hd, nh, "attention_rows"), dst, 0, T, &p, H / nh));
    if (nb == 0)
        return TR_OK;
    cl_kern *kt = attention_kernel(c, hd, 1, "attention_transition");
    p.iv = (cl_uint)ap->transition.iv;
    p.strategy = (cl_uint)ap->transition.strategy;
    p.alpha = ap->transition.alpha;
    p.beta = ap->transition.beta;
    p.skip_lo = p.skip_hi = 0;
    for (int j = 0; j < nb; j++) {
        p.start = (cl_uint)start[j];
        TR_TRY(attention_launch(c, kt, dst, (size_t)(lo[j] - first), (size_t)(hi[j] - lo[j]), &p, H));
    }
    return TR_OK;
}

/* ---- the op table --------------------------------------------------------------------------- */

typedef tr_status (*op_fn)(cl_ctx *c, tr_tensor *dst);

static const op_fn ops[TR_OP_COUNT] = {
    [TR_OP_GET_ROWS] = op_get_rows, [TR_OP_RMS_NORM] = op_rms_norm, [TR_OP_ADD] = op_binary,
    [TR_OP_MUL] = op_binary,        [TR_OP_MATMUL] = op_matmul,     [TR_OP_ROPE] = op_rope,
    [TR_OP_GLU] = op_binary,        [TR_OP_KV_WRITE] = op_kv_write, [TR_OP_ATTENTION] = op_attention,
    [TR_OP_COPY] = op_copy,         [TR_OP_CONCAT] = op_concat,
};
_Static_assert(TR_OP_COUNT == 13, "a new op needs an OpenCL lowering in ops[] (or an explicit 'unsupported')");

bool cl_op_supported(cl_ctx *c, const tr_tensor *t, const char **why)
{
    (void)c;
    return tr_dev_op_supported(t, (unsigned)t->op < TR_OP_COUNT && ops[t->op], why);
}

tr_status cl_op_lower(cl_ctx *c, tr_tensor *node)
{
    if (tr_nelements(node) == 0)
        return TR_OK;
    return ops[node->op](c, node);
}

tr_status cl_op_fault(cl_ctx *c, tr_tensor *node)
{
    operand o = opnd(c, node);
    karg a[] = {ARG(o.mem), ARG(o.off)};
    return launch(c, main_kernel(c, "fault_f32"), 1, a, 2);
}
