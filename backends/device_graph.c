/* device_graph.c: the graph rules the arena-based device backends share (device_graph.h). */
#include "device_graph.h"

#include "error.h"

bool tr_dev_owns_memory(const tr_tensor *t)
{
    return t->op != TR_OP_NONE && t->op != TR_OP_VIEW && t->op != TR_OP_KV_WRITE;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

size_t tr_dev_guard_plan(tr_graph *g, size_t align, size_t guard)
{
    size_t off = guard;
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        if (!tr_dev_owns_memory(t))
            continue;
        off = align_up(off, align);
        t->offset = off;
        off += tr_nbytes(t) + guard;
    }
    return align_up(off, align);
}

tr_status tr_dev_guard_check(const tr_graph *g, const uint8_t *bytes, size_t used, uint8_t pattern, const char *backend)
{
    size_t from = 0;
    const char *after = "the start of the arena";
    for (int i = 0; i <= g->n_nodes; i++) {
        const tr_tensor *t = i < g->n_nodes ? g->nodes[i] : NULL;
        if (t && !tr_dev_owns_memory(t))
            continue;
        size_t to = t ? t->offset : used;
        for (size_t b = from; b < to; b++)
            if (bytes[b] != pattern)
                return tr_fail(TR_ERR_BACKEND, "%s: guard byte %zu after %s was overwritten (0x%02x)", backend, b - from,
                               after, bytes[b]);
        if (t) {
            from = t->offset + tr_nbytes(t);
            after = t->name[0] ? t->name : tr_op_name(t->op);
        }
    }
    return TR_OK;
}

static bool is_float(tr_dtype t) { return t == TR_F32 || t == TR_F16 || t == TR_BF16; }

bool tr_dev_op_supported(const tr_tensor *t, bool has_kernel, const char **why)
{
    if (t->op == TR_OP_NONE || t->op == TR_OP_VIEW)
        return true;
    if (!has_kernel) {
        *why = "no kernel";
        return false;
    }
    if (!tr_is_contiguous(t)) {
        *why = "strided output";
        return false;
    }
    for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++) {
        const tr_tensor *src = t->src[s];
        if (!tr_is_contiguous(src)) {
            *why = "strided operand";
            return false;
        }
        bool matrix = (t->op == TR_OP_GET_ROWS && s == 0) || (t->op == TR_OP_MATMUL && s == 1);
        bool weight = matrix || (t->op == TR_OP_RMS_NORM && s == 1);
        bool ints = (t->op == TR_OP_GET_ROWS || t->op == TR_OP_ROPE) && s == 1;
        bool weight_ok = is_float(src->dtype) || (matrix && tr_dtype_is_quant(src->dtype));
        if (weight ? !weight_ok : ints ? src->dtype != TR_I32 : src->dtype != TR_F32) {
            *why = "operand dtype";
            return false;
        }
    }
    /* a RoPE table is made on the host before the graph runs (host_inputs.c), from leaves only */
    if (t->op == TR_OP_ROPE && tr_view_root(t->src[1])->op != TR_OP_NONE) {
        *why = "positions must be an input";
        return false;
    }
    if (t->op == TR_OP_ROPE && t->src[2] && tr_view_root(t->src[2])->op != TR_OP_NONE) {
        *why = "frequency factors must be a leaf";
        return false;
    }
    if (t->op == TR_OP_ATTENTION && t->p.attn.variant != TR_ATTN_PLAIN && t->p.attn.variant != TR_ATTN_TRANSITION &&
        t->p.attn.variant != TR_ATTN_DIFF) {
        *why = "attention variant";
        return false;
    }
    return true;
}

int tr_dev_transition_rows(const tr_attn_params *ap, int64_t T, int64_t *start, int64_t *lo, int64_t *hi,
                           int64_t *skip_lo, int64_t *skip_hi)
{
    int64_t first = ap->n_past, last = ap->n_past + T;
    int nb = 0;
    for (int j = 0; ap->variant == TR_ATTN_TRANSITION && j < ap->transition.n_blocks; j++) {
        int64_t a = ap->transition.start[j], b = a + ap->transition.iv;
        a = a > first ? a : first;
        b = b < last ? b : last;
        if (a < b) {
            start[nb] = ap->transition.start[j];
            lo[nb] = a;
            hi[nb++] = b;
        }
    }
    *skip_lo = nb ? lo[0] : 0;
    *skip_hi = nb ? hi[0] : 0;
    for (int j = 1; j < nb; j++) {
        if (lo[j] == *skip_hi) {
            *skip_hi = hi[j];
        } else if (hi[j] == *skip_lo) {
            *skip_lo = lo[j];
        } else {
            *skip_lo = *skip_hi = 0;
            break;
        }
    }
    return nb;
}
