/* model_file.h: a model checkpoint opened and validated, before any backend sees it.
 *
 * tr_model_file_open() accepts a .gguf file or a Hugging Face directory and produces the same thing:
 * hyperparameters, and weights under canonical GGUF names whose bytes live in read-only mmaps.
 * Every size, offset, shape and dtype has been checked against the file and against the
 * hyperparameters, so later stages may trust them.
 *
 * Canonical names and shapes (ne[0] is the innermost, contiguous dimension, as in GGUF):
 *   token_embd.weight          [dim, n_vocab]
 *   output_norm.weight         [dim]
 *   output.weight              [dim, n_vocab]        (absent when embeddings are tied)
 *   blk.N.attn_norm.weight     [dim]
 *   blk.N.attn_q.weight        [dim, n_heads*head_dim]
 *   blk.N.attn_k.weight        [dim, n_kv_heads*head_dim]
 *   blk.N.attn_v.weight        [dim, n_kv_heads*head_dim]
 *   blk.N.attn_output.weight   [n_heads*head_dim, dim]
 *   blk.N.ffn_norm.weight      [dim]
 *   blk.N.ffn_gate.weight      [dim, ffn_dim]
 *   blk.N.ffn_up.weight        [dim, ffn_dim]
 *   blk.N.ffn_down.weight      [ffn_dim, dim]
 *   blk.N.attn_lambda_q1 (k1, q2, k2) [head_dim]     (differential attention only, design §4)
 *   rope_freqs.weight          [head_dim/2]          (GGUF with llama3 RoPE scaling: per-pair divisors)
 * Hugging Face names map onto these (model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight,
 * model.layers.N.self_attn.lambda_q1 -> blk.N.attn_lambda_q1, ...). HF q/k rows stay in HF's rotate-half order: hp.rope_layout says which RoPE pairing applies. */
#ifndef TR_MODEL_FILE_H
#define TR_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "transit.h"
#include "vocab.h"

typedef enum tr_rope_layout {
    TR_ROPE_ADJACENT = 0, /* rotate (x[2i], x[2i+1]): GGUF, Meta, llama2.c */
    TR_ROPE_HALF = 1,     /* rotate (x[i], x[i + d/2]): Hugging Face */
} tr_rope_layout;

/* The gate activation of the feed-forward GLU (config.json hidden_act). */
typedef enum tr_activation {
    TR_ACT_SILU = 0,      /* "silu": SwiGLU, every LLaMA */
    TR_ACT_GELU = 1,      /* "gelu": exact, erf form */
    TR_ACT_GELU_TANH = 2, /* "gelu_pytorch_tanh": the tanh approximation */
    TR_ACT_COUNT
} tr_activation;
const char *tr_activation_name(tr_activation a);

/* RoPE scaling (design §11). llama3 scales each pair's frequency by a divisor (the model's
 * rope_freqs: computed from these parameters for Hugging Face, a tensor in GGUF); linear divides
 * positions by the factor. */
typedef enum tr_rope_scaling {
    TR_ROPE_SCALING_NONE = 0,
    TR_ROPE_SCALING_LINEAR = 1,
    TR_ROPE_SCALING_LLAMA3 = 2,
} tr_rope_scaling;

typedef struct tr_hparams {
    char arch[32]; /* "llama" or "diffllama" */
    int diff_attn; /* differential attention (design §4): arch "diffllama" */
    tr_activation act; /* the feed-forward gate's activation */
    int n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, n_ctx_train;
    float rms_eps, rope_theta;
    tr_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* llama3: all; linear: factor */
    int rope_orig_ctx; /* llama3: original_max_position_embeddings (0 from a GGUF, whose tensor says it all) */
    int tied_embeddings;
    tr_rope_layout rope_layout;
    int bos_id, eos_id; /* -1 when the file does not say */
    int pad_id;         /* the padding token (config.json pad_token_id, GGUF padding_token_id), or -1 */
#define TR_MAX_EOG 8
    int eog[TR_MAX_EOG]; /* the ids that end generation (Llama 3 has several): eos_token_id as a list,
                            generation_config.json's, GGUF's eos/eot/eom ids */
    int n_eog;
} tr_hparams;

typedef struct tr_weight {
    char name[96]; /* canonical name */
    tr_dtype dtype;
    int ndim;
    int64_t ne[4];    /* elements per dimension, ne[0] innermost; unused dims are 1 */
    const void *data; /* inside a mapping of the file, suitably aligned for dtype */
    size_t nbytes;
} tr_weight;

typedef struct tr_mapping {
    void *addr;
    size_t size;
} tr_mapping;

typedef struct tr_model_file {
    char path[1024];
    int is_gguf;
    tr_hparams hp;
    tr_weight *weights;
    int n_weights;
    tr_mapping *maps; /* the mmaps the weights point into */
    int n_maps;
    int has_vocab;       /* GGUF: vocabulary read from the file into vocab */
    tr_vocab_spec vocab;
    char tokenizer_path[1024]; /* HF: tokenizer.json or tokenizer.model found in the directory, or "" */
    int add_bos;               /* HF: tokenizer_config.json add_bos_token (default 1); -1 unknown */
    char *chat_template;       /* Jinja chat template (malloc'd), or NULL */
    char chat_template_source[1100]; /* the file it came from (GGUF: "<file>: tokenizer.chat_template") */
    /* Tensors whose bytes in the file are not aligned to their element size (safetensors headers
     * can leave them so) are copied here; weights[i].data then points into one of these. */
    void **heap_copies;
    int n_heap_copies;
} tr_model_file;

tr_status tr_model_file_open(const char *path, tr_model_file *out);
void tr_model_file_close(tr_model_file *f);
/* The weight with this canonical name, or NULL. */
const tr_weight *tr_model_file_find(const tr_model_file *f, const char *name);

/* Adds id to hp's end-of-generation set (once; ids < 0 and a full set are ignored). */
void tr_hparams_add_eog(tr_hparams *hp, int id);

/* llama3 RoPE scaling's per-pair frequency divisors ([head_dim / 2]) from hp's parameters, as
 * llama.cpp stores them in rope_freqs.weight and transformers applies them to inv_freq. */
void tr_rope_llama3_divisors(const tr_hparams *hp, float *out);

/* Maps a whole file read-only. An empty file maps to addr NULL, size 0. */
tr_status tr_map_file(const char *path, tr_mapping *out);
void tr_unmap(tr_mapping *m);

#endif
