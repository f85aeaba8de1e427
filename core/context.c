/* context.c: tr_context: the KV cache, batched evaluation and the logits it keeps. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "transition.h"

tr_context_params tr_context_default_params(void)
{
    return (tr_context_params){
        .n_ctx = 0,
        .n_batch = 0,
        .n_threads = 0,
        .transition = {.enabled = 0, .min_len = 400, .blocks = 2, .alpha = 0.5f, .beta = 0.1f,
                       .strategy = TR_TRANSITION_ADDING},
        .sinks = {.enabled = 0, .n_sink = 4, .window = 1020},
    };
}

static tr_status alloc_cache(tr_context *c)
{
    tr_model *m = c->model;
    tr_backend *b = m->backend;
    int L = m->hp.n_layers, width = m->hp.n_kv_heads * m->hp.head_dim;
    TR_TRY(tr_graph_init(&c->cache));
    c->k_cache = calloc((size_t)L, sizeof *c->k_cache);
    c->v_cache = calloc((size_t)L, sizeof *c->v_cache);
    if (!c->k_cache || !c->v_cache)
        return tr_fail(TR_ERR_NOMEM, "context: out of memory");
    size_t per = (size_t)width * (size_t)c->n_ctx * sizeof(float);
    TR_TRY(b->iface->buffer_alloc(b, per * 2 * (size_t)L, &c->kv_buffer));
    for (int l = 0; l < L; l++) {
        for (int kv = 0; kv < 2; kv++) {
            tr_tensor *t = tr_new_tensor_2d(&c->cache, TR_F32, width, c->n_ctx, kv ? "v_cache" : "k_cache");
            if (!t)
                return TR_ERR_NOMEM;
            tr_set_name(t, "%s.%d", kv ? "v_cache" : "k_cache", l);
            t->buffer = c->kv_buffer;
            t->offset = per * (size_t)(2 * l + kv);
            t->data = c->kv_buffer->host ? (char *)c->kv_buffer->host + t->offset : NULL;
            (kv ? c->v_cache : c->k_cache)[l] = t;
        }
    }
    return TR_OK;
}

tr_status tr_context_create(tr_model *m, const tr_context_params *params, tr_context **out)
{
    *out = NULL;
    tr_context_params p = params ? *params : tr_context_default_params();
    if (p.n_ctx < 0 || p.n_batch < 0)
        return tr_fail(TR_ERR_INVALID_ARG, "context: n_ctx and n_batch must not be negative");
    tr_context *c = calloc(1, sizeof *c);
    if (!c)
        return tr_fail(TR_ERR_NOMEM, "context: out of memory");
    c->model = m;
    c->transition = p.transition;
    c->sinks = p.sinks;
    tr_status s = tr_transition_check(&c->transition);
    /* The transition re-weights one softmax row per head; a differential head is the difference of
     * two rows, and the paper says nothing of which to re-weight (docs/architecture.md). */
    if (s == TR_OK && c->transition.enabled && m->hp.diff_attn)
        s = tr_fail(TR_ERR_UNSUPPORTED, "%s: the Attention Transition is not defined for differential attention "
                    "(DiffLlama); leave it off for this model", m->file.path);
    if (s == TR_OK && c->sinks.enabled) {
        s = tr_kv_sinks_check(&c->sinks, &p.n_ctx, &p.n_batch);
    } else {
        c->sinks.enabled = 0;
    }
    if (s != TR_OK) {
        free(c);
        return s;
    }
    c->n_ctx = p.n_ctx ? p.n_ctx : (m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    c->n_batch = p.n_batch && p.n_batch < c->n_ctx ? p.n_batch : c->n_ctx;
    s = tr_graph_init(&c->graph);
    if (s == TR_OK)
        s = alloc_cache(c);
    c->ids = malloc((size_t)c->n_batch * sizeof *c->ids);
    c->pos = malloc((size_t)c->n_batch * sizeof *c->pos);
    if (c->sinks.enabled)
        c->move_pos = malloc(((size_t)c->sinks.n_sink + (size_t)c->sinks.window) * sizeof *c->move_pos);
    if (s == TR_OK && (!c->ids || !c->pos || (c->sinks.enabled && !c->move_pos)))
        s = tr_fail(TR_ERR_NOMEM, "context: out of memory");
    if (s != TR_OK) {
        tr_context_free(c);
        return s;
    }
    *out = c;
    return TR_OK;
}

void tr_context_free(tr_context *c)
{
    if (!c)
        return;
    if (c->kv_buffer)
        c->model->backend->iface->buffer_free(c->kv_buffer);
    if (c->cache.arena)
        tr_graph_free(&c->cache);
    if (c->graph.arena)
        tr_graph_free(&c->graph);
    free(c->k_cache);
    free(c->v_cache);
    free(c->ids);
    free(c->pos);
    free(c->move_pos);
    free(c->logits);
    free(c);
}

void tr_context_reset(tr_context *c)
{
    c->n_past = 0;
    c->kv_base = c->kv_live = 0;
    c->n_dropped = 0;
    c->schedule_len = 0;
    c->n_logit_rows = 0;
    c->n_last_eval = 0;
}

int tr_context_n_past(const tr_context *c) { return c->n_past; }
int tr_context_n_cached(const tr_context *c) { return tr_kv_n_kept(c); }
int tr_context_n_ctx(const tr_context *c) { return c->n_ctx; }
void tr_context_memory(const tr_context *c, tr_memory_stats *st)
{
    const tr_model *m = c->model;
    st->kv_cache = c->kv_buffer ? c->kv_buffer->size : 0;
    st->activations = st->workspace = 0;
    if (m->backend->iface->memory)
        m->backend->iface->memory(m->backend, &st->activations, &st->workspace);
    st->logits = (size_t)c->logits_cap_rows * (size_t)m->hp.n_vocab * sizeof(float);
}

void tr_set_prompt_length(tr_context *c, int n_prompt) { c->n_prompt = n_prompt > 0 ? n_prompt : 0; }

static tr_status reserve_logits(tr_context *c, int rows)
{
    if (rows <= c->logits_cap_rows)
        return TR_OK;
    float *l = realloc(c->logits, (size_t)rows * (size_t)c->model->hp.n_vocab * sizeof(float));
    if (!l)
        return tr_fail(TR_ERR_NOMEM, "context: cannot hold logits for %d tokens", rows);
    c->logits = l;
    c->logits_cap_rows = rows;
    return TR_OK;
}

tr_status tr_context_prepare(tr_context *c, const int32_t *ids, int n)
{
    if (!c->sinks.enabled && n > c->n_ctx - c->n_past) /* with sinks every chunk fits, after a trim */
        return tr_fail(TR_ERR_RANGE, "eval: %d tokens do not fit: %d of %d context positions are used", n,
                       c->n_past, c->n_ctx);
    int V = c->model->hp.n_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return tr_fail(TR_ERR_INVALID_ARG, "eval: token id %d at position %d is outside the vocabulary (0..%d)",
                           ids[i], i, V - 1);
    /* The evaluation that starts an empty cache is the prompt: the transition schedule follows its
     * whole length (or the announced one), however it is chunked, and later decoding steps keep it. */
    if (c->n_past == 0)
        c->schedule_len = c->n_prompt > 0 ? c->n_prompt : n;
    return TR_OK;
}

tr_status tr_context_compute(tr_context *c, const int32_t *ids, int n, int all_logits, int keep_all,
                             tr_tensor **logits)
{
    tr_model *m = c->model;
    for (int i = 0; i < n; i++)
        c->ids[i] = ids[i];
    tr_kv_plan(c, n); /* where the chunk goes in the cache, and its positions */
    tr_graph_reset(&c->graph);
    c->graph.keep_all = keep_all;
    if (!(*logits = tr_llama_build(c, &c->graph, n, all_logits)))
        return tr_fail(TR_ERR_INVALID_ARG, "eval: %s", tr_last_error());
    return m->backend->iface->graph_compute(m->backend, &c->graph);
}

/* One chunk of at most n_batch tokens. */
static tr_status eval_chunk(tr_context *c, const int32_t *ids, int n, int all_logits, int keep_last, int row0)
{
    tr_model *m = c->model;
    tr_tensor *logits;
    TR_TRY(tr_context_compute(c, ids, n, all_logits, 0, &logits));
    if (all_logits)
        TR_TRY(tr_tensor_get(m->backend, logits, c->logits + (size_t)row0 * (size_t)m->hp.n_vocab));
    else if (keep_last)
        TR_TRY(tr_tensor_get(m->backend, logits, c->logits));
    tr_kv_commit(c, n);
    return TR_OK;
}

tr_status tr_eval(tr_context *c, const int32_t *ids, int n, int all_logits)
{
    if (!c || (!ids && n > 0) || n < 0)
        return tr_fail(TR_ERR_INVALID_ARG, "eval: bad arguments");
    if (n == 0)
        return TR_OK;
    TR_TRY(tr_context_prepare(c, ids, n));
    TR_TRY(reserve_logits(c, all_logits ? n : 1));
    int n_past0 = c->n_past;
    for (int done = 0; done < n;) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch;
        tr_status s = eval_chunk(c, ids + done, chunk, all_logits, done + chunk == n, done);
        if (s != TR_OK) {
            c->n_logit_rows = 0;
            if (c->sinks.enabled) {
                /* a step moves rows of the cache before it writes its own: what it held is gone */
                tr_context_reset(c);
                return tr_fail_prefix(s, "eval: the attention-sink cache was emptied after a failed step");
            }
            c->n_past = n_past0; /* the cache rows written so far are ignored */
            return s;
        }
        done += chunk;
    }
    c->n_last_eval = n;
    c->n_logit_rows = all_logits ? n : 1;
    c->logits_first_row = all_logits ? 0 : n - 1;
    return TR_OK;
}

const float *tr_get_logits(const tr_context *c, int i)
{
    if (i < 0)
        i += c->n_last_eval;
    if (i < c->logits_first_row || i >= c->logits_first_row + c->n_logit_rows)
        return NULL;
    return c->logits + (size_t)(i - c->logits_first_row) * (size_t)c->model->hp.n_vocab;
}
