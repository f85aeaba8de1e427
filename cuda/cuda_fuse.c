/* cuda_fuse.c: which adjacent nodes of a graph the CUDA backend computes in one launch (the table
 * in docs/cuda.md): up to three products of the same activations (q, k, v), a product and the
 * residual add after it, the gate and up products with their GLU (all for few tokens, where the
 * GEMV streams weights), the q and k RoPE of a layer, its k and v cache writes. Only nodes that are
 * adjacent in the graph (views between them compute nothing) fuse, so nothing else can observe the
 * intermediate a fused launch skips; a product fused with its reader must have that one reader and
 * not be an output.
 *
 * A fused launch runs where its first node stands and computes its other nodes early. Their
 * results are placed by the memory plan as if each ran at its own place, where the inputs of the
 * first node may already be dead and their memory given to those results: a fused kernel would then
 * overwrite what it reads. So fusions are decided before the plan, and each node that runs early
 * is linked, for the plan only, to the inputs it must not outlive (its src[2]: unused, or a leaf,
 * which the plan ignores: a ROPE's frequency divisors, put back after the plan). */
#include "cuda_internal.h"

static int next_real(const tr_graph *g, int i)
{
    for (i++; i < g->n_nodes; i++)
        if (g->nodes[i]->op != TR_OP_VIEW)
            return i;
    return -1;
}

static bool single_use(const cuda_backend *c, const tr_graph *g, int i)
{
    return c->uses[i] == 1 && !g->nodes[i]->is_output;
}

static bool link_for_plan(tr_tensor *node, tr_tensor *src, trc_link *linked, int *n_linked)
{
    if (node->src[2] && node->src[2]->op != TR_OP_NONE)
        return false;
    linked[(*n_linked)++] = (trc_link){node, node->src[2]};
    node->src[2] = src;
    return true;
}

void trc_unlink(const trc_link *linked, int n_linked)
{
    for (int i = 0; i < n_linked; i++)
        linked[i].node->src[2] = linked[i].saved;
}

/* Decides every fused launch of g (c->fz, c->done) and links nodes for the plan; the caller undoes
 * the links listed in linked[] (at most one per node) after tr_memplan (trc_unlink). A graph that
 * keeps every intermediate (g->keep_all: per-node parity, `transit parity --ops`) fuses nothing,
 * since a fused launch never writes the nodes it skips. */
void trc_plan_fusions(cuda_backend *c, tr_graph *g, trc_link *linked, int *n_linked)
{
    *n_linked = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        c->fz[i] = (trc_fusion){FZ_NONE, {-1, -1}};
        c->done[i] = 0;
    }
    for (int i = 0; i < g->n_nodes && !g->keep_all; i++) {
        tr_tensor *t = g->nodes[i];
        if (t->op == TR_OP_VIEW || c->done[i])
            continue;
        int j = next_real(g, i), k = j >= 0 ? next_real(g, j) : -1;
        tr_tensor *tj = j >= 0 ? g->nodes[j] : NULL, *tk = k >= 0 ? g->nodes[k] : NULL;
        trc_fusion *f = &c->fz[i];
        if (t->op == TR_OP_MATMUL && t->src[0]->ne[1] <= TRC_GEMV_MAX_T) {
            tr_tensor *x = t->src[0];
            bool j_same = tj && tj->op == TR_OP_MATMUL && tj->src[0] == x && tj->src[1]->dtype == t->src[1]->dtype;
            /* gate and up products and their GLU (any activation: the GEMV's epilogue takes it) */
            if (j_same && tk && tk->op == TR_OP_GLU && tj->src[1]->ne[1] == t->src[1]->ne[1] &&
                single_use(c, g, i) && single_use(c, g, j) && trc_src_is(tk, t) >= 0 && trc_src_is(tk, tj) >= 0 &&
                tk->src[0] != tk->src[1] && link_for_plan(tk, x, linked, n_linked)) {
                *f = (trc_fusion){FZ_GLU, {j, k}};
                c->done[j] = c->done[k] = 1;
                continue;
            }
            /* a product and the residual add that reads it */
            if (tj && tj->op == TR_OP_ADD && trc_src_is(tj, t) >= 0 && single_use(c, g, i) && tj->src[0] != tj->src[1] &&
                link_for_plan(tj, x, linked, n_linked)) {
                *f = (trc_fusion){FZ_ADD, {j, -1}};
                c->done[j] = 1;
                continue;
            }
            /* up to three products of the same activations (which they all keep alive) */
            int n = 0;
            for (int u = i; n < 2;) {
                u = next_real(g, u);
                if (u < 0 || g->nodes[u]->op != TR_OP_MATMUL || g->nodes[u]->src[0] != x ||
                    g->nodes[u]->src[1]->dtype != t->src[1]->dtype)
                    break;
                f->m[n++] = u;
                c->done[u] = 1;
            }
            if (n)
                f->kind = FZ_QKV;
        } else if (t->op == TR_OP_ROPE && tj && tj->op == TR_OP_ROPE && tj->src[1] == t->src[1] &&
                   tj->ne[0] == t->ne[0] && tj->ne[2] == t->ne[2] && tj->p.rope.theta == t->p.rope.theta &&
                   tj->p.rope.layout == t->p.rope.layout && tj->p.rope.freq_scale == t->p.rope.freq_scale &&
                   tj->src[2] == t->src[2] && tr_view_root(tj->src[0]) != t &&
                   link_for_plan(tj, t->src[0], linked, n_linked)) {
            /* the layer's other RoPE, at the same positions and frequencies */
            *f = (trc_fusion){FZ_ROPE2, {j, -1}};
            c->done[j] = 1;
        } else if (t->op == TR_OP_KV_WRITE && tj && tj->op == TR_OP_KV_WRITE &&
                   tj->src[0]->ne[0] == t->src[0]->ne[0] && tj->src[0]->ne[1] == t->src[0]->ne[1] &&
                   tj->src[1]->nb[1] == t->src[1]->nb[1] && tr_view_root(tj->src[0]) != t &&
                   tj->src[1] != t->src[1]) {
            /* the layer's other cache write (it allocates nothing) */
            *f = (trc_fusion){FZ_KV2, {j, -1}};
            c->done[j] = 1;
        }
    }
}
