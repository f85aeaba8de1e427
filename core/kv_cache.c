/* kv_cache.c: the KV cache's layout per step and the attention-sink policy (kv_cache.h says how). */
#include "kv_cache.h"

#include "error.h"
#include "model.h"

#define SINK_DEFAULT_BATCH 512 /* tokens one step may add when neither n_ctx nor n_batch says */
/* Rows beyond the kept ones, at least: the live run moves back to row 0 (copying every kept row)
 * once per this many single-token steps, so the copies cost a few rows per step, not all of them. */
#define SINK_MIN_SLACK 256

tr_status tr_kv_sinks_check(const tr_sink_params *p, int *n_ctx, int *n_batch)
{
    if (p->window < 1)
        return tr_fail(TR_ERR_INVALID_ARG, "sinks: the window must hold at least one token (got %d)", p->window);
    if (p->n_sink < 0 || p->n_sink > p->window)
        return tr_fail(TR_ERR_INVALID_ARG, "sinks: %d sink tokens do not fit a window of %d (0 <= sinks <= window)",
                       p->n_sink, p->window);
    int64_t kept = (int64_t)p->n_sink + p->window;
    if (kept > (1 << 24))
        return tr_fail(TR_ERR_INVALID_ARG, "sinks: %lld kept tokens is more than transit allows (2^24)", (long long)kept);
    if (*n_ctx > 0 && *n_ctx <= kept)
        return tr_fail(TR_ERR_INVALID_ARG,
                       "sinks: %d sink tokens + a window of %d need a KV cache of more than %lld tokens, and %d were "
                       "asked for",
                       p->n_sink, p->window, (long long)kept, *n_ctx);
    /* a step is never cut silently: with sinks, where a call is cut decides what attention sees */
    int64_t room = *n_ctx > 0 ? *n_ctx - kept : INT32_MAX;
    if (*n_batch > room)
        return tr_fail(TR_ERR_INVALID_ARG,
                       "sinks: steps of %d tokens do not fit a KV cache of %d beside the %lld kept (at most %lld)",
                       *n_batch, *n_ctx, (long long)kept, (long long)room);
    int64_t batch = *n_batch > 0 ? *n_batch : room < SINK_DEFAULT_BATCH ? room : SINK_DEFAULT_BATCH;
    if (*n_ctx <= 0) {
        int64_t rows = kept + (batch > SINK_MIN_SLACK ? batch : SINK_MIN_SLACK);
        if (rows > INT32_MAX)
            return tr_fail(TR_ERR_INVALID_ARG, "sinks: steps of %lld tokens make a KV cache too large", (long long)batch);
        *n_ctx = (int)rows;
    }
    *n_batch = (int)batch;
    return TR_OK;
}

static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

int32_t tr_kv_n_kept(const tr_context *c, const tr_seq *q)
{
    return c->sinks.enabled ? min32(q->kv_live, c->sinks.n_sink + c->sinks.window) : q->n_past;
}

void tr_kv_plan(tr_context *c, tr_seq *q, int T, int32_t *pos_out)
{
    tr_kv_step *s = &q->step;
    *s = (tr_kv_step){0};
    if (!c->sinks.enabled) {
        s->n_past = s->row0 = q->n_past;
    } else {
        /* The previous step left n_live entries from row base; its trim keeps the first n_sink
         * and the last window of them, dropping the e in between. */
        int32_t base = q->kv_base, keep = tr_kv_n_kept(c, q), e = q->kv_live - keep;
        int32_t sinks = min32(c->sinks.n_sink, keep);
        int32_t view0 = base + e;
        if (view0 + keep + T > c->n_ctx) {
            /* the run goes back to row 0: sinks first, then the window after the dropped rows */
            view0 = 0;
            if (base != 0 && sinks > 0)
                s->move[s->n_moves++] = (tr_kv_move){base, 0, sinks};
            if (keep > sinks)
                s->move[s->n_moves++] = (tr_kv_move){base + sinks + e, sinks, keep - sinks};
        } else if (e > 0 && sinks > 0) {
            s->move[s->n_moves++] = (tr_kv_move){base, base + e, sinks}; /* sinks up to the window */
        }
        s->view0 = view0;
        s->n_past = keep;
        s->row0 = view0 + keep;
        s->dropped = e;
        /* every move turns its keys by one angle: to - from, one position value per row */
        int32_t *pos = q->move_pos;
        for (int j = 0; j < s->n_moves; j++)
            for (int32_t i = 0; i < s->move[j].n; i++)
                *pos++ = s->move[j].to - s->move[j].from;
    }
    for (int i = 0; i < T; i++)
        pos_out[i] = s->row0 + i;
}

tr_status tr_kv_append(tr_context *c, tr_seq *q, tr_graph *g, int l, tr_tensor *k, tr_tensor *v, tr_tensor **k_seen,
                       tr_tensor **v_seen)
{
    const tr_model *m = c->model;
    const tr_hparams *hp = &m->hp;
    tr_kv_step *s = &q->step;
    tr_tensor *kc = q->k_cache[l], *vc = q->v_cache[l];
    int64_t hd = hp->head_dim, W = kc->ne[0];

    /* The trim's moves: every source row is read into a temporary before any row is written, so
     * moves may overlap each other and their own destinations. */
    tr_tensor *k_moved[TR_KV_MAX_MOVES], *v_moved[TR_KV_MAX_MOVES];
    int32_t *pos = q->move_pos;
    for (int j = 0; j < s->n_moves; j++) {
        const tr_kv_move *mv = &s->move[j];
        if (!s->move_pos[j]) { /* one position leaf per move, shared by every layer */
            s->move_pos[j] = tr_new_tensor_1d(g, TR_I32, mv->n, "kv_move_pos");
            if (!s->move_pos[j])
                return tr_graph_status(g);
            tr_set_name(s->move_pos[j], "kv_move_pos.%d", j);
            s->move_pos[j]->data = pos;
            s->move_pos[j]->is_input = 1;
        }
        pos += mv->n;
        /* angles are linear in the position, scaled or not: turning by to - from moves a key there */
        k_moved[j] = tr_rope_ext(g, tr_reshape_3d(g, tr_view_rows(g, kc, mv->from, mv->n), hd, W / hd, mv->n),
                                 s->move_pos[j], m->rope_freqs, m->rope);
        v_moved[j] = tr_copy(g, tr_view_rows(g, vc, mv->from, mv->n));
        tr_set_name(k_moved[j], "k_moved%d.%d", j, l);
        tr_set_name(v_moved[j], "v_moved%d.%d", j, l);
    }
    for (int j = 0; j < s->n_moves; j++) {
        kc = tr_kv_write(g, kc, tr_reshape_3d(g, k_moved[j], W, s->move[j].n, 1), s->move[j].to);
        vc = tr_kv_write(g, vc, v_moved[j], s->move[j].to);
    }

    kc = tr_kv_write(g, kc, k, s->row0);
    vc = tr_kv_write(g, vc, v, s->row0);
    if (s->view0 > 0 && kc && vc) {
        int64_t rows = c->n_ctx - s->view0;
        kc = tr_view_rows(g, kc, s->view0, rows);
        vc = tr_view_rows(g, vc, s->view0, rows);
    }
    *k_seen = kc;
    *v_seen = vc;
    return tr_graph_status(g);
}

void tr_kv_commit(tr_context *c, tr_seq *q, int T)
{
    q->n_past = q->n_past > INT32_MAX - T ? INT32_MAX : q->n_past + T; /* an endless stream saturates */
    if (!c->sinks.enabled)
        return;
    q->kv_base = q->step.view0;
    q->kv_live = q->step.n_past + T;
    q->n_dropped += q->step.dropped;
}
