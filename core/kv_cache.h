/* kv_cache.h: where a step's keys and values go in the KV cache, and the attention-sink policy.
 *
 * Without sinks the cache is a plain array: token i of the stream lives in row i, rotated by RoPE
 * at position i, and attention sees rows [0, n_past + T).
 *
 * With sinks (design §5) the cache keeps its first n_sink entries and its last `window` entries
 * after each step, and positions are counted by index in the cache. transit stores keys already
 * rotated and keeps the live entries in one contiguous run of rows [base, base + n_live): the
 * sinks first, the window right after them. A key in row r is rotated by position r. Inside that
 * run the distance between a query and a key is their distance in the reference's cache, which is
 * all a rotated dot product depends on; so when the trim drops e entries from the window's front,
 * the sinks move forward e rows (their keys rotated e positions further) to sit just before the
 * window again, and nothing else moves. When the run reaches the end of the buffer it is moved back
 * to row 0 (its keys rotated back by the same amount: llama.cpp's "K-shift"), so positions stay
 * below the cache length. The moves of a trim are made by the next step's graph, before its own
 * tokens are written: ROPE (keys) or COPY (values) of the rows into temporaries, then KV_WRITE back,
 * so a move may overlap the rows it comes from. docs/attention-sinks.md has the argument and the
 * numbers. */
#ifndef TR_KV_CACHE_H
#define TR_KV_CACHE_H

#include "ir.h"

typedef struct tr_context tr_context;

#define TR_KV_MAX_MOVES 2 /* the sinks, and (when the run goes back to row 0) the window */

typedef struct tr_kv_move {
    int32_t from, to, n; /* rows [from, from + n) go to [to, to + n); keys turn by to - from */
} tr_kv_move;

/* The layout of one step of T tokens, decided before its graph is built. */
typedef struct tr_kv_step {
    int32_t view0;   /* first cache row attention sees */
    int32_t n_past;  /* entries before the step's tokens: attention's n_past, counted from view0 */
    int32_t row0;    /* the step's tokens go to rows row0.. and are rotated by positions row0.. */
    int32_t dropped; /* entries the previous step's trim dropped (made real by this step's moves) */
    int n_moves;
    tr_kv_move move[TR_KV_MAX_MOVES];
    tr_tensor *move_pos[TR_KV_MAX_MOVES]; /* position leaves of the moves' RoPE, in this graph */
} tr_kv_step;

/* Checks the sink parameters against the cache rows; fills n_ctx and n_batch (0 = defaults). */
tr_status tr_kv_sinks_check(const tr_sink_params *p, int *n_ctx, int *n_batch);

typedef struct tr_seq tr_seq;

/* Entries sequence s's cache holds once its last step's trim is made (all of them without sinks). */
int32_t tr_kv_n_kept(const tr_context *c, const tr_seq *s);

/* Decides s->step for T tokens (T <= n_batch) and fills pos[0..T) with the tokens' positions. */
void tr_kv_plan(tr_context *c, tr_seq *s, int T, int32_t *pos);

/* Emits layer l's cache work for sequence s into g: the pending trim's moves, then the step's keys
 * k {hd*Hkv, T} and values v {hd*Hkv, T}. *k_seen and *v_seen are the rows attention reads (from
 * s->step.view0). */
tr_status tr_kv_append(tr_context *c, tr_seq *s, tr_graph *g, int l, tr_tensor *k, tr_tensor *v, tr_tensor **k_seen,
                       tr_tensor **v_seen);

/* After a successful step of T tokens: sequence s's cache holds them; the trim is recorded. */
void tr_kv_commit(tr_context *c, tr_seq *s, int T);

#endif
