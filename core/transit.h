/* transit.h: the public C API of transit, a LLaMA-family inference engine.
 *
 * Threads: a model and its contexts belong to one thread at a time (the model's backend keeps one
 * activation arena and one worker pool); use one model per thread to evaluate in parallel. The
 * library starts its own worker threads for the CPU kernels.
 *
 * Every function that can fail returns a tr_status (TR_OK == 0, errors negative). On failure the
 * text of the problem, naming the file or object at fault, is available from tr_last_error() on the
 * same thread until the next failure. The library never prints (except verbose logs when asked) and
 * never exits. Handles are opaque; each *_free function accepts NULL.
 *
 * Typical use:
 *     tr_model *m; tr_context *c;
 *     if (tr_model_load("model.gguf", NULL, &m) != TR_OK) { puts(tr_last_error()); ... }
 *     tr_context_create(m, NULL, &c);
 *     tr_tokenize(m, text, strlen(text), 1, ids, cap, &n);
 *     tr_eval(c, ids, n, 0);                 // prefill; logits of the last token kept
 *     tok = tr_sample(sampler, tr_get_logits(c, -1));
 */
#ifndef TRANSIT_H
#define TRANSIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tr_status {
    TR_OK = 0,
    TR_ERR_INVALID_ARG = -1, /* a caller passed something meaningless */
    TR_ERR_IO = -2,          /* a file could not be opened, read or mapped */
    TR_ERR_FORMAT = -3,      /* a file is damaged or not what it claims to be */
    TR_ERR_UNSUPPORTED = -4, /* valid input that transit cannot handle yet */
    TR_ERR_NOMEM = -5,       /* an allocation failed */
    TR_ERR_BACKEND = -6,     /* a device API reported an error */
    TR_ERR_RANGE = -7,       /* a context or buffer is too small for the request */
} tr_status;

const char *tr_status_str(tr_status s); /* static text for a code */
const char *tr_last_error(void);         /* this thread's last error message ("" if none) */
void tr_clear_error(void);
void tr_set_verbose(int on);             /* verbose logs to stderr (also TRANSIT_VERBOSE=1) */
/* The OPENBLAS_CORETYPE this CPU should run ("SkylakeX", "Haswell") when the OpenBLAS loaded with
 * the library chose weaker kernels for it (it falls back to SSE3 on CPUs it does not know, and
 * prefill then runs 5-10x slower); NULL when its choice is fine, OPENBLAS_CORETYPE is already set,
 * or TRANSIT_NO_BLAS_TUNE=1. OpenBLAS fixes its kernels when it loads, so a program acts on this
 * by starting again with the variable set, as `transit` does; the CPU backend logs it. */
const char *tr_blas_better_coretype(void);
/* Handles alive now (loaded models, contexts, samplers; each pointer may be NULL), and their sum: a
 * leak check for bindings and long-running programs. */
int tr_live_objects(int *models, int *contexts, int *samplers);

typedef struct tr_model tr_model;
typedef struct tr_context tr_context;
typedef struct tr_sampler tr_sampler;

/* ---- models --------------------------------------------------------------------------------- */

typedef struct tr_model_params {
    const char *backend; /* "cpu" (default), "vulkan", "cuda", "opencl", or NULL for cpu */
    int n_threads;       /* CPU threads; 0 = all cores */
    int device;          /* 1 + the index of the device among the backend's (OpenCL: as `transit info`
                            lists them); 0: the backend's choice */
} tr_model_params;

tr_model_params tr_model_default_params(void);

/* path: a .gguf file or a Hugging Face model directory (config.json + *.safetensors + tokenizer). */
tr_status tr_model_load(const char *path, const tr_model_params *params, tr_model **out);
void tr_model_free(tr_model *model);

typedef struct tr_model_info {
    const char *arch;        /* "llama" or "diffllama" */
    int diff_attn;           /* differential attention (DiffLlama): tr_model_diff_lambda per layer */
    const char *activation;  /* the feed-forward gate: "silu", "gelu" or "gelu_pytorch_tanh" */
    const char *source;      /* "gguf" or "hf" */
    const char *weight_type; /* dtype of the largest matrices: "f32", "f16", "bf16" */
    int n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, n_ctx_train;
    float rms_norm_eps, rope_theta;
    int tied_embeddings;
    int rope_layout; /* 0 = adjacent pairs (GGUF / Meta), 1 = rotate-half (Hugging Face) */
    const char *rope_scaling; /* "none", "linear" or "llama3" */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* when scaled (llama3: all three) */
    int rope_orig_ctx; /* llama3 from config.json: original_max_position_embeddings; 0 from GGUF */
    int64_t n_params;
    size_t weight_bytes;
    size_t decode_bytes; /* weight bytes one decoding step reads: all but the embedding table, of
                            which it reads one row (the whole table when it is also the output) */
    int bos_id, eos_id;
    int add_bos;
    const char *tokenizer; /* "tokenizer.json", "tokenizer.model", "gguf" */
} tr_model_info;

void tr_model_get_info(const tr_model *model, tr_model_info *info);
/* The model's weights by type, largest share first: up to cap entries of the type's name ("q4_K",
 * "f32", ...), how many tensors and how many bytes; returns the number of types. A quantized file
 * mixes several (Q4_K_M: q4_K, q6_K, and f32 norms). */
int tr_model_weight_types(const tr_model *model, const char **names, int *tensors, size_t *bytes, int cap);
/* Differential attention's per-layer scalars (design §4): lambda_init = 0.8 - 0.6 exp(-0.3 layer) and
 * lambda = exp(sum lambda_q1 lambda_k1) - exp(sum lambda_q2 lambda_k2) + lambda_init. Returns 0 when
 * the model has no differential attention or layer is out of range. */
int tr_model_diff_lambda(const tr_model *model, int layer, double *lambda, double *lambda_init);

/* 1 if token ends generation: the tokenizer's EOS or any id the checkpoint lists (config.json's
 * eos_token_id as a list, generation_config.json, GGUF's eos/eot/eom ids; Llama 3 has several). */
int tr_model_is_eog(const tr_model *model, int32_t token);
/* The end-of-generation ids (up to cap into ids); returns how many there are. */
int tr_model_eog_ids(const tr_model *model, int32_t *ids, int cap);

/* Writes the checkpoint at `in` (a Hugging Face directory or a GGUF file transit loads) as the GGUF
 * file `out` (docs/gguf.md): LLaMA with the keys and tensor names of llama.cpp's converter (q/k rows
 * in GGUF's adjacent-pair RoPE order), DiffLlama under architecture "diffllama". type: "f32", "f16"
 * or "bf16" for the matrices, NULL to keep the source's; vectors stay f32. progress (may be NULL) is
 * called after each tensor. On failure no output file is left. */
tr_status tr_convert_to_gguf(const char *in, const char *out, const char *type,
                             void (*progress)(int done, int total, void *arg), void *arg);
/* The same writer with the quantized types (`transit quantize`, docs/quantization.md): type is a file
 * type as llama-quantize names it (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q6_k, q4_k_m,
 * q5_k_m; the _m mixes give some matrices more bits, as llama.cpp does), NULL to keep every
 * matrix's own type. The source may be quantized too (its rows are dequantized first). Rows are
 * quantized by n_threads threads. */
tr_status tr_quantize(const char *in, const char *out, const char *type, int n_threads,
                      void (*progress)(int done, int total, void *arg), void *arg);
int tr_model_n_vocab(const tr_model *model);

/* ---- tokens --------------------------------------------------------------------------------- */

/* Encodes text[0..len) into ids (at most cap), writing the count to *n. add_bos < 0 means "as the
 * model's tokenizer config says". Returns TR_ERR_RANGE (and the needed count in *n) if cap is short. */
tr_status tr_tokenize(const tr_model *model, const char *text, size_t len, int add_bos, int32_t *ids,
                      int cap, int *n);

/* The bytes that token id contributes after token prev (prev < 0: the token starts the text; this
 * decides whether a leading space is stripped). Returns the number of bytes written (at most cap,
 * NUL-terminated when room) or a negative status. */
int tr_token_to_piece(const tr_model *model, int32_t prev, int32_t id, char *buf, int cap);

/* Decodes a whole sequence into buf; returns bytes needed (excluding NUL) or a negative status. */
int tr_detokenize(const tr_model *model, const int32_t *ids, int n, char *buf, int cap);

/* ---- chat ----------------------------------------------------------------------------------- */

/* The chat formats transit writes (docs/chat.md): a conversation becomes the prompt the model was
 * tuned on, as transformers' apply_chat_template renders the checkpoint's Jinja template, written
 * out in C rather than interpreted. Only the format's own markup becomes special tokens: what a
 * message says is encoded as text, so "<|eot_id|>" typed into a message cannot end a turn. */
typedef enum tr_chat_format {
    TR_CHAT_NONE = 0,
    TR_CHAT_LLAMA3 = 1, /* <|start_header_id|>role<|end_header_id|>\n\n text<|eot_id|> (Llama 3, 3.1, 3.2) */
    TR_CHAT_LLAMA2 = 2, /* <s>[INST] <<SYS>>\n system\n<</SYS>>\n\n text [/INST] reply </s> (Llama-2-chat) */
    TR_CHAT_CHATML = 3, /* <|im_start|>role\n text<|im_end|>\n */
} tr_chat_format;

typedef struct tr_chat_message {
    const char *role;    /* "system", "user", "assistant" (Llama 3 and ChatML take any role) */
    const char *content; /* UTF-8 */
} tr_chat_message;

enum {
    TR_CHAT_GENERATION_PROMPT = 1, /* end with the opening of the assistant's reply */
    TR_CHAT_CONTINUE = 2, /* the messages follow a conversation already evaluated, which ended with
                             an assistant turn closed by tr_chat_turn_end: no BOS, and Llama 2's
                             system prompt (first turn only) is refused */
};

const char *tr_chat_format_name(tr_chat_format f); /* "llama3", "llama2", "chatml"; "none" */
tr_status tr_chat_format_from_name(const char *name, tr_chat_format *out);
/* The format a Jinja chat template writes, recognised by its markup. TR_ERR_UNSUPPORTED, naming
 * source, when it is none of the three. */
tr_status tr_chat_format_detect(const char *chat_template, const char *source, tr_chat_format *out);
/* The model's chat template (tokenizer_config.json's chat_template, chat_template.jinja, or GGUF's
 * tokenizer.chat_template) and where it came from; NULL when the checkpoint has none. */
const char *tr_model_chat_template(const tr_model *model, const char **source);
/* The model's format, detected from its template; TR_ERR_UNSUPPORTED when it has none or it is
 * not recognised (callers then let the user name one). */
tr_status tr_model_chat_format(const tr_model *model, tr_chat_format *out);

/* The token ids of messages[0..n) in format f (flags: TR_CHAT_*), BOS included where the format
 * has it. Returns TR_ERR_RANGE (and the needed count in *n_ids) if cap is short. A format whose
 * special tokens the vocabulary lacks, or messages the format cannot express (Llama 2: roles must
 * alternate user, assistant, ...), are errors. */
tr_status tr_chat_tokenize(const tr_model *model, tr_chat_format f, const tr_chat_message *msgs, int n, int flags,
                           int32_t *ids, int cap, int *n_ids);
/* The same prompt as text (special tokens as they are written); returns TR_ERR_RANGE (and the
 * needed length in *len) if cap is short; buf is NUL-terminated when it has room. */
tr_status tr_chat_render(const tr_model *model, tr_chat_format f, const tr_chat_message *msgs, int n, int flags,
                         char *buf, size_t cap, size_t *len);
/* The ids that close an assistant reply the model has just generated, so that the next turn can be
 * appended with TR_CHAT_CONTINUE: ids[0] is the format's end-of-turn token (<|eot_id|>, </s>,
 * <|im_end|>), which also ends generation in chat (whether or not the model lists it). */
tr_status tr_chat_turn_end(const tr_model *model, tr_chat_format f, int32_t *ids, int cap, int *n);

/* ---- attention variants ------------------------------------------------------------------- */

typedef enum tr_transition_strategy {
    TR_TRANSITION_ADDING = 0, /* the paper's default */
    TR_TRANSITION_MULTI = 1,
} tr_transition_strategy;

typedef struct tr_transition_params {
    int enabled;
    int min_len;  /* prompts shorter than this are untouched (400) */
    int blocks;   /* row blocks per touched layer, k (2) */
    float alpha;  /* elimination threshold numerator (0.5) */
    float beta;   /* fraction of the removed mass that is moved (0.1) */
    tr_transition_strategy strategy;
} tr_transition_params;

/* Attention sinks (StreamingLLM, arXiv 2309.17453; design §5; docs/attention-sinks.md): a KV-cache
 * policy. After each evaluation step (a tr_eval call, or each n_batch chunk of one) the cache keeps
 * its first n_sink entries and its last `window` entries; inside a step attention is ordinary
 * causal attention over everything cached plus the step's own tokens, with positions counted by
 * index in the cache, not in the stream. The context then never runs out and its memory is fixed:
 * tr_eval accepts any number of tokens. With sinks on, the transition re-weights only steps that
 * start before any token has left the cache (its schedule is in prompt positions). */
typedef struct tr_sink_params {
    int enabled; /* off by default */
    int n_sink;  /* first entries kept for ever (4); 0 = a plain sliding window */
    int window;  /* most recent entries kept (1020); must be >= 1 and >= n_sink */
} tr_sink_params;

/* ---- contexts ------------------------------------------------------------------------------- */

typedef struct tr_context_params {
    int n_ctx;     /* KV cache length in tokens; 0 = the model's training length (capped at 4096).
                      With sinks: the cache's rows, more than n_sink + window (the rest holds the
                      tokens of one step and room to move the rest rarely); 0 = n_sink + window +
                      max(n_batch, 256) */
    int n_batch;   /* largest number of tokens one tr_eval call computes at once; 0 = n_ctx
                      (with sinks a chunk is a step of the policy: 0 = 512, or n_ctx - n_sink -
                      window if less; more than that is refused) */
    int n_threads; /* 0 = the model's setting */
    tr_transition_params transition;
    tr_sink_params sinks;
    int n_seq;     /* sequences held at once (tr_decode), each with n_ctx positions of its own and its
                      own sink and transition state; 0 = 1, at most TR_MAX_SEQ */
} tr_context_params;

#define TR_MAX_SEQ 256

tr_context_params tr_context_default_params(void);
tr_status tr_context_create(tr_model *model, const tr_context_params *params, tr_context **out);
void tr_context_free(tr_context *ctx);

/* Evaluates n tokens of sequence 0 at its current position (appending to its KV cache). all_logits
 * != 0 keeps the logits of every token, else only of the last. Inputs longer than n_batch are split
 * into chunks. */
tr_status tr_eval(tr_context *ctx, const int32_t *ids, int n, int all_logits);

/* Several sequences in one step (serving, design §12): the matrix products read the weights once
 * for every token of the batch, and each sequence's tokens attend only to its own cache. The
 * tokens of one sequence are consecutive in the batch and continue it where it stands; a step holds
 * at most n_batch tokens (a longer prompt goes in chunks over several steps). Put single decode
 * tokens before long prompt chunks: the per-sequence outputs are joined in batch order, and the
 * first ones are copied more often. Logits come from tr_get_logits(ctx, i), i the token's index in
 * the batch. A failed step leaves every sequence where it stood (with sinks, a sequence of the
 * batch whose rows were moved is emptied). */
typedef struct tr_batch {
    int n_tokens;
    const int32_t *ids;
    const int32_t *seq_id; /* per token, 0 .. n_seq - 1; NULL: every token is sequence 0's */
    const int8_t *logits;  /* per token: nonzero keeps its logits; NULL: the last token of each sequence */
} tr_batch;
tr_status tr_decode(tr_context *ctx, const tr_batch *batch);
int tr_context_n_seq(const tr_context *ctx);
int tr_seq_n_past(const tr_context *ctx, int seq);   /* -1 for a sequence the context does not hold */
int tr_seq_n_cached(const tr_context *ctx, int seq); /* entries its cache holds (== n_past without sinks) */
void tr_seq_reset(tr_context *ctx, int seq);         /* empties one sequence (a finished request) */
/* The prompt length a sequence's transition schedule follows when its prompt comes in chunks over
 * several steps (the first step's length otherwise); for the next prompt of an empty sequence. */
void tr_seq_set_prompt_length(tr_context *ctx, int seq, int n_prompt);

/* For the attention transition: the length of the whole prompt the coming tr_eval calls belong to,
 * so that chunked prefill follows the same schedule as one batch. 0 (default) = the length of each
 * tr_eval call's own input plus the tokens already cached. */
void tr_set_prompt_length(tr_context *ctx, int n_prompt);

/* Progress of a long tr_eval: fn(user, done, total) after each n_batch chunk of a call that takes
 * more than one (the command's prefill progress on a terminal). fn NULL turns it off. */
typedef void (*tr_progress_fn)(void *user, int done, int total);
void tr_context_set_progress(tr_context *ctx, tr_progress_fn fn, void *user);

/* Logits of the i-th token of the last tr_eval or tr_decode call (i < 0 counts from the end), n_vocab
 * floats owned by the context, valid until the next call. NULL if that row was not kept. */
const float *tr_get_logits(const tr_context *ctx, int i);
int tr_context_n_past(const tr_context *ctx);   /* tokens evaluated since the cache was last empty
                                                   (with sinks it saturates at INT32_MAX) */
int tr_context_n_cached(const tr_context *ctx); /* entries the KV cache holds (== n_past without sinks) */
int tr_context_n_ctx(const tr_context *ctx);
void tr_context_reset(tr_context *ctx); /* empties every sequence's KV cache */

/* Memory a context uses, in bytes: what the last evaluation needed, not a guess. */
typedef struct tr_memory_stats {
    size_t kv_cache;    /* keys and values of every layer */
    size_t activations; /* the memory plan of the largest graph computed so far (all intermediates) */
    size_t workspace;   /* kernel scratch: attention score rows and value accumulators, weight panels */
    size_t logits;      /* logits kept for the caller */
} tr_memory_stats;
void tr_context_memory(const tr_context *ctx, tr_memory_stats *stats);

/* The memory bandwidth (bytes/s) that bounds decoding on the model's backend, measured now. On the
 * CPU: the backend's threads reading the very bytes decode reads (every weight but the unused rows of
 * the embedding table), the best of 5 passes, so decode's share of it stays below 100%. On GPUs:
 * the device-to-device copy rate. Decode reads every weight once per token, so tokens/s <=
 * bandwidth / weight bytes. Takes up to a few seconds; 0 if the backend cannot measure it. */
double tr_model_measure_bandwidth(tr_model *model);

/* FLOP/s of the model's backend's matrix-product library (OpenBLAS SGEMM on the CPU, cuBLAS on the
 * tensor cores for f16/bf16 weights on CUDA) on one product of n_tokens x n_out x n_in with the
 * model's weight type, called as prefill calls it, measured now: the rate prefill's matrix
 * products could reach. 0 if the backend cannot measure it. */
double tr_model_measure_gemm(tr_model *model, int n_tokens, int n_out, int n_in);

/* ---- sampling ------------------------------------------------------------------------------- */

typedef struct tr_sampler_params {
    float temp;           /* 0 = greedy (argmax) */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off: drop tokens with p < min_p * p_max */
    float repeat_penalty; /* 1 = off: logits of recent tokens divided (or, if negative, multiplied) */
    int repeat_last_n;    /* how many recent tokens the penalty looks at (64) */
    uint64_t seed;
} tr_sampler_params;

tr_sampler_params tr_sampler_default_params(void);
tr_status tr_sampler_create(const tr_sampler_params *params, int n_vocab, tr_sampler **out);
void tr_sampler_free(tr_sampler *s);
void tr_sampler_accept(tr_sampler *s, int32_t id); /* records a token for the repetition penalty */
int32_t tr_sample(tr_sampler *s, const float *logits);

#ifdef __cplusplus
}
#endif
#endif
