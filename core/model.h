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

struct tr_context {
    tr_model *model;
    int n_ctx, n_batch, n_past;
    tr_graph graph;          /* rebuilt for every batch, memory reused */
    tr_graph cache;          /* owns the KV cache tensor descriptors */
    tr_buffer *kv_buffer;
    tr_tensor **k_cache;     /* [n_layers] {n_kv_heads*head_dim, n_ctx} */
    tr_tensor **v_cache;
    int32_t *ids, *pos;      /* host inputs, [n_batch] */
    float *logits;           /* [n_logit_rows, n_vocab] */
    int n_logit_rows, logits_first_row; /* rows kept from the last eval and the index of the first */
    int n_last_eval;
    int logits_cap_rows;
    tr_transition_params transition;
    int n_prompt;     /* announced by tr_set_prompt_length (0: not announced) */
    int schedule_len; /* the prompt length the transition schedule follows (fixed at the first eval) */
    /* attention sinks (kv_cache.h): the live entries are rows [kv_base, kv_base + kv_live) */
    tr_sink_params sinks;
    int32_t kv_base, kv_live;
    int64_t n_dropped;  /* entries trimmed from the cache since it was last empty */
    int32_t *move_pos;  /* host positions of the trim's key moves, [n_sink + window] */
    tr_kv_step step;    /* the layout of the step being built */
};

/* The steps of tr_eval that other evaluators (core/parity.c) share, so they cannot drift apart:
 * tr_context_prepare checks that n tokens fit and are in the vocabulary and, when the cache is
 * empty, fixes the transition schedule to this prompt; tr_context_compute builds and computes the
 * graph of one chunk (n <= n_batch) at n_past, keeping every intermediate if keep_all, and gives the
 * logits node. Neither advances n_past: tr_kv_commit does, once the chunk's results are taken. */
tr_status tr_context_prepare(tr_context *ctx, const int32_t *ids, int n);
tr_status tr_context_compute(tr_context *ctx, const int32_t *ids, int n, int all_logits, int keep_all,
                             tr_tensor **logits);

/* Builds the forward graph for n_tokens tokens at the cache layout of ctx->step (core/llama.c). The
 * ids and pos leaves must be filled by the caller (tr_kv_plan fills pos). Returns the logits node: {n_vocab, n_tokens} if
 * all_logits, else {n_vocab, 1} for the last token; NULL with the error set on failure. */
tr_tensor *tr_llama_build(tr_context *ctx, tr_graph *g, int n_tokens, int all_logits);

#endif
