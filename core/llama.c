/* llama.c: the LLaMA forward pass as a graph. Read top to bottom, it is the model.
 *
 * Per layer (x is the residual stream {dim, T}):
 *     h = rms_norm(x) * attn_norm
 *     q, k, v = h Wq^T, h Wk^T, h Wv^T;  q, k rotated by RoPE at their positions
 *     k, v appended to the layer's KV cache (with attention sinks, after the cache's trim: kv_cache.h)
 *     x = x + attention(q, k_cache, v_cache) Wo^T
 *     h = rms_norm(x) * ffn_norm
 *     x = x + (act(h Wgate^T) * h Wup^T) Wdown^T          act = silu (SwiGLU) unless hidden_act says
 * then logits = rms_norm(x) * output_norm Woutput^T.
 *
 * DiffLlama (design §4) is this graph with the attention op's DIFF variant: the layer's lambda and
 * 1 - lambda_init ride on the node, and the kernels pair the heads, subtract and normalise.
 *
 * A batch may hold several sequences (design §12), each a run of consecutive tokens: the matrix
 * products, norms and RoPE take the whole batch (one read of the weights for every sequence), and
 * only the cache and attention are per sequence: each run's keys and values go to its sequence's
 * cache, its queries attend there, and the runs' outputs are joined in batch order (CONCAT). A
 * batch of one sequence builds exactly the single-sequence graph. */
#include <math.h>

#include "error.h"
#include "model.h"
#include "transition.h"

/* The attention node's parameters for sequence q's step at layer l. */
static tr_attn_params layer_attn_params(const tr_context *ctx, const tr_seq *q, int l, int T)
{
    const tr_model *m = ctx->model;
    const tr_hparams *hp = &m->hp;
    const tr_llama_layer *w = &m->layers[l];
    tr_attn_params ap = {
        .scale = 1.0f / sqrtf((float)hp->head_dim),
        .n_past = q->step.n_past,
        .n_kv = q->step.n_past + T,
        .variant = TR_ATTN_PLAIN,
    };
    if (hp->diff_attn) {
        ap.variant = TR_ATTN_DIFF;
        ap.diff.lambda = (float)w->lambda;
        ap.diff.out_scale = (float)(1.0 - w->lambda_init);
        ap.diff.eps = hp->rms_eps;
    }
    /* Attention Transition (design §3): this layer's scheduled row blocks, absolute rows. Its
     * schedule is in prompt positions, which are cache rows until the first trim. (Refused on
     * differential attention when the context is made: context.c.) */
    int transition_ok = q->n_dropped + q->step.dropped == 0;
    int n_blocks = transition_ok ? tr_transition_blocks(&ctx->transition, hp->n_layers, q->schedule_len, l,
                                                        ap.transition.start)
                                 : 0;
    if (n_blocks > 0) {
        ap.variant = TR_ATTN_TRANSITION;
        ap.transition.n_blocks = n_blocks;
        ap.transition.iv = tr_transition_iv(&ctx->transition, hp->n_layers, q->schedule_len);
        ap.transition.alpha = ctx->transition.alpha;
        ap.transition.beta = ctx->transition.beta;
        ap.transition.strategy = ctx->transition.strategy;
    }
    return ap;
}

/* Layer l's attention for every sequence of the batch: q {hd, H, T} rotated, k {hd*Hkv, T, 1}, v
 * {hd*Hkv, T}; the result {hd*H, T} in batch order. CONCAT folds left, so the first runs are copied
 * most often: decode steps (one row each) come first in a batch, a prompt's chunk last. */
static tr_tensor *batch_attention(tr_context *ctx, tr_graph *g, int l, tr_tensor *q, tr_tensor *k, tr_tensor *v)
{
    tr_tensor *out[ctx->n_seg];
    for (int i = 0; i < ctx->n_seg; i++) {
        const tr_segment *sg = &ctx->seg[i];
        tr_seq *s = &ctx->seq[sg->seq];
        const int whole = ctx->n_seg == 1; /* no views: the single-sequence graph */
        tr_tensor *kc, *vc;
        if (tr_kv_append(ctx, s, g, l, whole ? k : tr_view_rows(g, k, sg->t0, sg->n),
                         whole ? v : tr_view_rows(g, v, sg->t0, sg->n), &kc, &vc) != TR_OK)
            return NULL;
        tr_attn_params ap = layer_attn_params(ctx, s, l, sg->n);
        out[i] = tr_attention(g, whole ? q : tr_view_tokens(g, q, sg->t0, sg->n), kc, vc, &ap);
        if (!whole)
            tr_set_name(out[i], "attn.%d.seq%d", l, sg->seq);
    }
    return tr_concat_n(g, out, ctx->n_seg);
}

/* The rows of x {dim, T} whose logits are wanted: runs of consecutive rows as views, joined. */
static tr_tensor *output_rows(tr_context *ctx, tr_graph *g, tr_tensor *x, int T, int n_out)
{
    if (n_out == T)
        return x;
    tr_tensor *runs[n_out];
    int n_runs = 0;
    for (int i = 0; i < n_out;) {
        int j = i + 1;
        while (j < n_out && ctx->out_rows[j] == ctx->out_rows[j - 1] + 1)
            j++;
        runs[n_runs++] = tr_view_rows(g, x, ctx->out_rows[i], j - i);
        i = j;
    }
    return tr_concat_n(g, runs, n_runs);
}

tr_tensor *tr_llama_build(tr_context *ctx, tr_graph *g, int n_tokens, int n_out)
{
    const tr_model *m = ctx->model;
    const tr_hparams *hp = &m->hp;
    const int T = n_tokens, hd = hp->head_dim;

    /* Inputs: token ids and their positions (cache rows), host memory owned by the context. */
    tr_tensor *ids = tr_new_tensor_1d(g, TR_I32, T, "ids");
    tr_tensor *pos = tr_new_tensor_1d(g, TR_I32, T, "pos");
    if (!ids || !pos)
        return NULL;
    ids->data = ctx->ids;
    pos->data = ctx->pos;
    ids->is_input = pos->is_input = 1;

    tr_tensor *x = tr_get_rows(g, m->tok_embd, ids); /* {dim, T} */
    tr_set_name(x, "embd");
    for (int l = 0; l < hp->n_layers; l++) {
        const tr_llama_layer *w = &m->layers[l];

        /* attention block */
        tr_tensor *h = tr_rms_norm(g, x, w->attn_norm, hp->rms_eps);
        tr_tensor *q = tr_matmul(g, h, w->wq); /* {H*hd, T} */
        tr_tensor *k = tr_matmul(g, h, w->wk); /* {Hkv*hd, T} */
        tr_tensor *v = tr_matmul(g, h, w->wv);
        tr_set_name(h, "attn_norm.%d", l);
        tr_set_name(q, "q.%d", l);
        tr_set_name(k, "k.%d", l);
        tr_set_name(v, "v.%d", l);
        q = tr_rope_ext(g, tr_reshape_3d(g, q, hd, hp->n_heads, T), pos, m->rope_freqs, m->rope);
        k = tr_rope_ext(g, tr_reshape_3d(g, k, hd, hp->n_kv_heads, T), pos, m->rope_freqs, m->rope);
        tr_set_name(q, "q_rope.%d", l);
        tr_set_name(k, "k_rope.%d", l);
        tr_tensor *a = batch_attention(ctx, g, l, q, tr_reshape_3d(g, k, hd * hp->n_kv_heads, T, 1), v);
        if (!a)
            return NULL;
        tr_tensor *o = tr_matmul(g, a, w->wo); /* {dim, T} */
        x = tr_add(g, x, o);
        tr_set_name(a, "attn.%d", l);
        tr_set_name(o, "attn_out.%d", l);
        tr_set_name(x, "resid_attn.%d", l);

        /* feed-forward block */
        h = tr_rms_norm(g, x, w->ffn_norm, hp->rms_eps);
        tr_tensor *gate = tr_matmul(g, h, w->w_gate), *up = tr_matmul(g, h, w->w_up);
        tr_tensor *ff = tr_glu(g, gate, up, hp->act);
        tr_tensor *down = tr_matmul(g, ff, w->w_down);
        x = tr_add(g, x, down);
        tr_set_name(h, "ffn_norm.%d", l);
        tr_set_name(gate, "gate.%d", l);
        tr_set_name(up, "up.%d", l);
        tr_set_name(ff, "glu.%d", l);
        tr_set_name(down, "ffn_out.%d", l);
        tr_set_name(x, "resid_ffn.%d", l);
    }
    /* Only the rows whose logits are wanted go through the (large) output projection. */
    x = output_rows(ctx, g, x, T, n_out);
    x = tr_rms_norm(g, x, m->output_norm, hp->rms_eps);
    tr_set_name(x, "output_norm");
    tr_tensor *logits = tr_matmul(g, x, m->output);
    tr_set_name(logits, "logits");
    if (tr_graph_status(g) != TR_OK)
        return NULL;
    logits->is_output = 1;
    return logits;
}
