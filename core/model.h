/* model.h: the private shape of tr_model and tr_context, shared by the builder and the API. */
#ifndef TR_MODEL_H
#define TR_MODEL_H

#include "backend.h"
#include "ir.h"
#include "kv_cache.h"
#include "model_file.h"
#include "tokenizer.h"
#include "transit.h"

typedef struct tr_llama_layer {
    tr_tensor *attn_norm; /* {dim} */
    tr_tensor *wq;        /* {dim, n_heads*head_dim} */
    tr_tensor *wk;        /* {dim, n_kv_heads*head_dim} */
    tr_tensor *wv;        /* {dim, n_kv_heads*head_dim} */
    tr_tensor *wo;        /* {n_heads*head_dim, dim} */
    tr_tensor *ffn_norm;  /* {dim} */
    tr_tensor *w_gate;    /* {dim, ffn_dim} */
    tr_tensor *w_up;      /* {dim, ffn_dim} */
    tr_tensor *w_down;    /* {ffn_dim, dim} */
    double lambda, lambda_init; /* differential attention (design §4), from the lambda vectors */
} tr_llama_layer;

struct tr_model {
    tr_model_file file;
    tr_hparams hp;
    tr_tokenizer *tok;
    char tokenizer_kind[32];
    tr_backend *backend;
    char backend_name[16];
    int n_threads;
    tr_graph weights;         /* arena owning the weight tensor descriptors */
    tr_buffer **weight_buffers; /* device copy of the weights, in allocations the device allows (none
                                 * on the CPU: weights stay mmapped) */
    int n_weight_buffers;
    tr_tensor *tok_embd;      /* {dim, n_vocab} */
    tr_tensor *output_norm;   /* {dim} */
    tr_tensor *output;        /* {dim, n_vocab}; == tok_embd when tied */
    tr_llama_layer *layers;   /* [n_layers] */
    tr_tensor *rope_freqs;    /* llama3 RoPE scaling: per-pair divisors {head_dim/2}, else NULL */
    float *rope_freqs_data;   /* owned, when computed from config.json rather than read from the file */
    tr_rope_params rope;      /* theta, layout and linear scaling of every ROPE node */
    int64_t n_params;
    size_t weight_bytes;
};

/* One sequence of a context: its own KV-cache rows (n_ctx of them, in a buffer of its own) and where
 * it stands. A context holds n_seq of them; tr_eval works on sequence 0, tr_decode on any. */
typedef struct tr_seq {
    int n_past;
    int n_prompt;     /* announced by tr_seq_set_prompt_length (0: not announced) */
    int schedule_len; /* the prompt length the transition schedule follows (fixed at the first eval) */
    /* attention sinks (kv_cache.h): the live entries are rows [kv_base, kv_base + kv_live) */
    int32_t kv_base, kv_live;
    int64_t n_dropped;  /* entries trimmed from the cache since it was last empty */
    int32_t *move_pos;  /* host positions of the trim's key moves, [n_sink + window] */
    tr_kv_step step;    /* the layout of the step being built */
    tr_buffer *kv_buffer;
    tr_tensor **k_cache; /* [n_layers] {n_kv_heads*head_dim, n_ctx} */
    tr_tensor **v_cache;
} tr_seq;

/* A run of consecutive tokens of one sequence in the batch being built: batch rows [t0, t0 + n). */
typedef struct tr_segment {
    int seq, t0, n;
} tr_segment;

struct tr_context {
    tr_model *model;
    int n_ctx, n_batch, n_seq; /* n_ctx: positions per sequence; n_batch: tokens per step in all */
    tr_progress_fn progress; /* tr_context_set_progress: after each chunk of a long tr_eval */
    void *progress_user;
    tr_graph graph;          /* rebuilt for every batch, memory reused */
    tr_graph cache;          /* owns the KV cache tensor descriptors */
    tr_seq *seq;             /* [n_seq] */
    tr_segment *seg;         /* [n_seq]: the step being built, in batch order */
    int n_seg;
    int32_t *ids, *pos;      /* host inputs, [n_batch] */
    int32_t *out_rows;       /* [n_batch]: batch rows whose logits the step computes, ascending */
    float *logits;           /* [rows kept, n_vocab] */
    int *logit_row;          /* [n_last_eval]: the logits row of each token of the last call, or -1 */
    int logit_row_cap;
    int n_last_eval;
    int logits_cap_rows;
    tr_transition_params transition;
    tr_sink_params sinks;
};

/* The steps of tr_eval and tr_decode that other evaluators (core/parity.c) share, so they cannot
 * drift apart. tr_context_plan checks that the batch's segments (c->seg) fit and that their ids are
 * in the vocabulary, fixes the transition schedule of a sequence whose cache is empty, and decides
 * each segment's cache layout and positions. tr_context_compute builds and computes the graph of
 * the planned step (T <= n_batch tokens) with the logits of the n_out rows c->out_rows (all T when
 * n_out == T), keeping every intermediate if keep_all, and gives the logits node. Neither advances
 * a sequence: tr_context_commit does, once the step's results are taken. */
tr_status tr_context_plan(tr_context *ctx, const int32_t *ids, int T);
tr_status tr_context_compute(tr_context *ctx, const int32_t *ids, int T, int n_out, int keep_all, tr_tensor **logits);
void tr_context_commit(tr_context *ctx);

/* Builds the forward graph for the planned step of n_tokens tokens (ctx->seg, each sequence's step
 * layout, ctx->pos). Returns the logits node {n_vocab, n_out}: the rows ctx->out_rows (all when
 * n_out == n_tokens); NULL with the error set on failure. */
tr_tensor *tr_llama_build(tr_context *ctx, tr_graph *g, int n_tokens, int n_out);

#endif
