/* context.c: tr_context: the KV cache, batched evaluation and the logits it keeps. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "live.h"
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

/* Sequence s's cache: per layer a key and a value tensor of n_ctx rows, in one buffer. */
static tr_status alloc_cache(tr_context *c, tr_seq *s)
{
    tr_model *m = c->model;
    tr_backend *b = m->backend;
    int L = m->hp.n_layers, width = m->hp.n_kv_heads * m->hp.head_dim;
    s->k_cache = calloc((size_t)L, sizeof *s->k_cache);
    s->v_cache = calloc((size_t)L, sizeof *s->v_cache);
    if (c->sinks.enabled)
        s->move_pos = malloc(((size_t)c->sinks.n_sink + (size_t)c->sinks.window) * sizeof *s->move_pos);
    if (!s->k_cache || !s->v_cache || (c->sinks.enabled && !s->move_pos))
        return tr_fail(TR_ERR_NOMEM, "context: out of memory");
    size_t per = (size_t)width * (size_t)c->n_ctx * sizeof(float);
    TR_TRY(b->iface->buffer_alloc(b, per * 2 * (size_t)L, &s->kv_buffer));
    for (int l = 0; l < L; l++) {
        for (int kv = 0; kv < 2; kv++) {
            tr_tensor *t = tr_new_tensor_2d(&c->cache, TR_F32, width, c->n_ctx, kv ? "v_cache" : "k_cache");
            if (!t)
                return TR_ERR_NOMEM;
            tr_set_name(t, "%s.%d", kv ? "v_cache" : "k_cache", l);
            t->buffer = s->kv_buffer;
            t->offset = per * (size_t)(2 * l + kv);
            t->data = s->kv_buffer->host ? (char *)s->kv_buffer->host + t->offset : NULL;
            (kv ? s->v_cache : s->k_cache)[l] = t;
        }
    }
    return TR_OK;
}

tr_status tr_context_create(tr_model *m, const tr_context_params *params, tr_context **out)
{
    *out = NULL;
    tr_context_params p = params ? *params : tr_context_default_params();
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_seq < 0)
        return tr_fail(TR_ERR_INVALID_ARG, "context: n_ctx, n_batch and n_seq must not be negative");
    if (p.n_seq > TR_MAX_SEQ)
        return tr_fail(TR_ERR_INVALID_ARG, "context: %d sequences asked for, at most %d", p.n_seq, TR_MAX_SEQ);
    tr_context *c = calloc(1, sizeof *c);
    if (!c)
        return tr_fail(TR_ERR_NOMEM, "context: out of memory");
    tr_live_add(TR_LIVE_CONTEXT, 1);
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
        tr_live_add(TR_LIVE_CONTEXT, -1);
        free(c);
        return s;
    }
    c->n_ctx = p.n_ctx ? p.n_ctx : (m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    c->n_batch = p.n_batch && p.n_batch < c->n_ctx ? p.n_batch : c->n_ctx;
    c->n_seq = p.n_seq ? p.n_seq : 1;
    if (c->n_batch < c->n_seq && !p.n_batch) /* a step may hold one token of every sequence */
        c->n_batch = c->n_seq;
    s = tr_graph_init(&c->graph);
    if (s == TR_OK)
        s = tr_graph_init(&c->cache);
    c->seq = calloc((size_t)c->n_seq, sizeof *c->seq);
    c->seg = calloc((size_t)c->n_seq, sizeof *c->seg);
    c->ids = malloc((size_t)c->n_batch * sizeof *c->ids);
    c->pos = malloc((size_t)c->n_batch * sizeof *c->pos);
    c->out_rows = malloc((size_t)c->n_batch * sizeof *c->out_rows);
    if (s == TR_OK && (!c->seq || !c->seg || !c->ids || !c->pos || !c->out_rows))
        s = tr_fail(TR_ERR_NOMEM, "context: out of memory");
    for (int i = 0; s == TR_OK && i < c->n_seq; i++)
        s = alloc_cache(c, &c->seq[i]);
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
    tr_live_add(TR_LIVE_CONTEXT, -1);
    for (int i = 0; c->seq && i < c->n_seq; i++) {
        tr_seq *s = &c->seq[i];
        if (s->kv_buffer)
            c->model->backend->iface->buffer_free(s->kv_buffer);
        free(s->k_cache);
        free(s->v_cache);
        free(s->move_pos);
    }
    if (c->cache.arena)
        tr_graph_free(&c->cache);
    if (c->graph.arena)
        tr_graph_free(&c->graph);
    free(c->seq);
    free(c->seg);
    free(c->ids);
    free(c->pos);
    free(c->out_rows);
    free(c->logits);
    free(c->logit_row);
    free(c);
}

static int seq_ok(const tr_context *c, int seq) { return c && seq >= 0 && seq < c->n_seq; }

void tr_seq_reset(tr_context *c, int seq)
{
    if (!seq_ok(c, seq))
        return;
    tr_seq *s = &c->seq[seq];
    s->n_past = 0;
    s->kv_base = s->kv_live = 0;
    s->n_dropped = 0;
    s->schedule_len = 0;
    s->n_prompt = 0;
}

void tr_context_reset(tr_context *c)
{
    for (int i = 0; i < c->n_seq; i++)
        tr_seq_reset(c, i);
    c->n_last_eval = 0;
}

int tr_context_n_seq(const tr_context *c) { return c->n_seq; }
int tr_seq_n_past(const tr_context *c, int seq) { return seq_ok(c, seq) ? c->seq[seq].n_past : -1; }
int tr_seq_n_cached(const tr_context *c, int seq) { return seq_ok(c, seq) ? tr_kv_n_kept(c, &c->seq[seq]) : -1; }
int tr_context_n_past(const tr_context *c) { return c->seq[0].n_past; }
int tr_context_n_cached(const tr_context *c) { return tr_kv_n_kept(c, &c->seq[0]); }
int tr_context_n_ctx(const tr_context *c) { return c->n_ctx; }
void tr_context_memory(const tr_context *c, tr_memory_stats *st)
{
    const tr_model *m = c->model;
    st->kv_cache = 0;
    for (int i = 0; i < c->n_seq; i++)
        st->kv_cache += c->seq[i].kv_buffer ? c->seq[i].kv_buffer->size : 0;
    st->activations = st->workspace = 0;
    if (m->backend->iface->memory)
        m->backend->iface->memory(m->backend, &st->activations, &st->workspace);
    st->logits = (size_t)c->logits_cap_rows * (size_t)m->hp.n_vocab * sizeof(float);
}

void tr_seq_set_prompt_length(tr_context *c, int seq, int n_prompt)
{
    if (seq_ok(c, seq))
        c->seq[seq].n_prompt = n_prompt > 0 ? n_prompt : 0;
}
void tr_set_prompt_length(tr_context *c, int n_prompt) { tr_seq_set_prompt_length(c, 0, n_prompt); }

/* Room for the logits of `rows` rows, and the row map of a call of n tokens. */
static tr_status reserve_logits(tr_context *c, int rows, int n)
{
    if (rows > c->logits_cap_rows) {
        float *l = realloc(c->logits, (size_t)rows * (size_t)c->model->hp.n_vocab * sizeof(float));
        if (!l)
            return tr_fail(TR_ERR_NOMEM, "context: cannot hold logits for %d tokens", rows);
        c->logits = l;
        c->logits_cap_rows = rows;
    }
    if (n > c->logit_row_cap) {
        int *r = realloc(c->logit_row, (size_t)n * sizeof *r);
        if (!r)
            return tr_fail(TR_ERR_NOMEM, "context: out of memory for %d tokens", n);
        c->logit_row = r;
        c->logit_row_cap = n;
    }
    return TR_OK;
}

tr_status tr_context_plan(tr_context *c, const int32_t *ids, int T)
{
    int V = c->model->hp.n_vocab;
    for (int i = 0; i < T; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return tr_fail(TR_ERR_INVALID_ARG, "eval: token id %d at position %d is outside the vocabulary (0..%d)",
                           ids[i], i, V - 1);
    for (int i = 0; i < c->n_seg; i++) {
        const tr_segment *sg = &c->seg[i];
        tr_seq *s = &c->seq[sg->seq];
        if (!c->sinks.enabled && sg->n > c->n_ctx - s->n_past) /* with sinks every step fits, after a trim */
            return tr_fail(TR_ERR_RANGE, "eval: %d tokens of sequence %d do not fit: %d of %d context positions are used",
                           sg->n, sg->seq, s->n_past, c->n_ctx);
    }
    for (int i = 0; i < c->n_seg; i++) {
        const tr_segment *sg = &c->seg[i];
        tr_seq *s = &c->seq[sg->seq];
        /* The evaluation that starts an empty cache is the prompt: the transition schedule follows its
         * whole length (or the announced one), however it is chunked, and later decoding steps keep it. */
        if (s->n_past == 0)
            s->schedule_len = s->n_prompt > 0 ? s->n_prompt : sg->n;
        tr_kv_plan(c, s, sg->n, c->pos + sg->t0); /* where the run goes in its cache, and its positions */
    }
    return TR_OK;
}

tr_status tr_context_compute(tr_context *c, const int32_t *ids, int T, int n_out, int keep_all, tr_tensor **logits)
{
    tr_model *m = c->model;
    for (int i = 0; i < T; i++)
        c->ids[i] = ids[i];
    tr_graph_reset(&c->graph);
    c->graph.keep_all = keep_all;
    if (!(*logits = tr_llama_build(c, &c->graph, T, n_out)))
        return tr_fail(TR_ERR_INVALID_ARG, "eval: %s", tr_last_error());
    return m->backend->iface->graph_compute(m->backend, &c->graph);
}

void tr_context_commit(tr_context *c)
{
    for (int i = 0; i < c->n_seg; i++)
        tr_kv_commit(c, &c->seq[c->seg[i].seq], c->seg[i].n);
}

/* After a failed step: a sequence whose cache rows a sink trim moved has lost what it held, the
 * others ignore the rows the step wrote. */
static tr_status step_failed(tr_context *c, tr_status s)
{
    int emptied = 0;
    for (int i = 0; i < c->n_seg; i++)
        if (c->sinks.enabled) {
            tr_seq_reset(c, c->seg[i].seq);
            emptied = 1;
        }
    c->n_last_eval = 0;
    return emptied ? tr_fail_prefix(s, "eval: the attention-sink cache was emptied after a failed step") : s;
}

/* One step: the planned segments' T tokens, the logits of the n_out rows c->out_rows stored from
 * logits row `row0` on. */
static tr_status run_step(tr_context *c, const int32_t *ids, int T, int n_out, int row0)
{
    tr_model *m = c->model;
    tr_tensor *logits;
    TR_TRY(tr_context_plan(c, ids, T));
    TR_TRY(tr_context_compute(c, ids, T, n_out, 0, &logits));
    TR_TRY(tr_tensor_get(m->backend, logits, c->logits + (size_t)row0 * (size_t)m->hp.n_vocab));
    tr_context_commit(c);
    return TR_OK;
}

tr_status tr_eval(tr_context *c, const int32_t *ids, int n, int all_logits)
{
    if (!c || (!ids && n > 0) || n < 0)
        return tr_fail(TR_ERR_INVALID_ARG, "eval: bad arguments");
    if (n == 0)
        return TR_OK;
    if (!c->sinks.enabled && n > c->n_ctx - c->seq[0].n_past) /* refused whole, before any chunk runs */
        return tr_fail(TR_ERR_RANGE, "eval: %d tokens do not fit: %d of %d context positions are used", n,
                       c->seq[0].n_past, c->n_ctx);
    TR_TRY(reserve_logits(c, all_logits ? n : 1, n));
    /* a call that starts an empty cache is the prompt: unless announced, the transition schedule
     * follows its whole length, however it is chunked */
    int n_past0 = c->seq[0].n_past, announced = c->seq[0].n_prompt;
    if (n_past0 == 0 && !announced)
        c->seq[0].n_prompt = n;
    for (int done = 0; done < n;) {
        int chunk = n - done < c->n_batch ? n - done : c->n_batch;
        c->n_seg = 1;
        c->seg[0] = (tr_segment){0, 0, chunk};
        c->out_rows[0] = chunk - 1;
        /* without all_logits only the last row of the last chunk is wanted: each chunk's last row
         * goes to logits row 0, and the last chunk's stays */
        tr_status s = run_step(c, ids + done, chunk, all_logits ? chunk : 1, all_logits ? done : 0);
        if (s != TR_OK) {
            c->seq[0].n_prompt = announced;
            if (!c->sinks.enabled)
                c->seq[0].n_past = n_past0; /* the cache rows written so far are ignored */
            return step_failed(c, s);
        }
        done += chunk;
        if (c->progress && chunk < n)
            c->progress(c->progress_user, done, n);
    }
    c->seq[0].n_prompt = announced;
    c->n_last_eval = n;
    for (int i = 0; i < n; i++)
        c->logit_row[i] = all_logits ? i : i == n - 1 ? 0 : -1;
    return TR_OK;
}

void tr_context_set_progress(tr_context *c, tr_progress_fn fn, void *user)
{
    if (!c)
        return;
    c->progress = fn;
    c->progress_user = user;
}

tr_status tr_decode(tr_context *c, const tr_batch *b)
{
    if (!c || !b || b->n_tokens < 1 || !b->ids)
        return tr_fail(TR_ERR_INVALID_ARG, "decode: an empty batch or missing token ids");
    const int T = b->n_tokens;
    if (T > c->n_batch)
        return tr_fail(TR_ERR_RANGE, "decode: %d tokens are more than a step of this context holds (n_batch %d)", T,
                       c->n_batch);
    /* the segments: runs of one sequence, each sequence at most once */
    unsigned char seen[TR_MAX_SEQ] = {0};
    c->n_seg = 0;
    for (int t = 0; t < T;) {
        int seq = b->seq_id ? b->seq_id[t] : 0, u = t + 1;
        if (!seq_ok(c, seq))
            return tr_fail(TR_ERR_INVALID_ARG, "decode: token %d names sequence %d; this context holds 0..%d", t, seq,
                           c->n_seq - 1);
        if (seen[seq])
            return tr_fail(TR_ERR_INVALID_ARG,
                           "decode: the tokens of sequence %d are not consecutive in the batch (token %d)", seq, t);
        seen[seq] = 1;
        while (u < T && (b->seq_id ? b->seq_id[u] : 0) == seq)
            u++;
        c->seg[c->n_seg++] = (tr_segment){seq, t, u - t};
        t = u;
    }
    int n_out = 0;
    for (int i = 0, t = 0; i < c->n_seg; i++)
        for (int j = 0; j < c->seg[i].n; j++, t++)
            if (b->logits ? b->logits[t] != 0 : j == c->seg[i].n - 1)
                c->out_rows[n_out++] = t;
    if (n_out == 0)
        return tr_fail(TR_ERR_INVALID_ARG, "decode: the batch asks for no logits");
    TR_TRY(reserve_logits(c, n_out, T));
    tr_status s = run_step(c, b->ids, T, n_out, 0);
    if (s != TR_OK)
        return step_failed(c, s);
    c->n_last_eval = T;
    for (int t = 0, r = 0; t < T; t++)
        c->logit_row[t] = r < n_out && c->out_rows[r] == t ? r++ : -1;
    return TR_OK;
}

const float *tr_get_logits(const tr_context *c, int i)
{
    if (i < 0)
        i += c->n_last_eval;
    if (i < 0 || i >= c->n_last_eval || c->logit_row[i] < 0)
        return NULL;
    return c->logits + (size_t)c->logit_row[i] * (size_t)c->model->hp.n_vocab;
}
