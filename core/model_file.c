/* model_file.c: opens a checkpoint (a .gguf file or a Hugging Face directory), turns its metadata
 * into tr_hparams and its tensors into tr_weights under canonical GGUF names, and validates every
 * weight's presence, shape and dtype against the hyperparameters.
 *
 * The container parsers (gguf.c, safetensors.c) have already proved that every byte range lies in
 * its file; this file adds the model-level rules: which tensors a LLaMA needs and what shapes they
 * must have. Tensors it does not know (rotary_emb.inv_freq, ...) are ignored. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup under -std=c11 */
#endif
#include "model_file.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "hf_config.h"
#include "mapped_file.h"
#include "safetensors.h"

#define MAX_HPARAM ((1 << 24) - 1)
#define MAX_JSON_FILE ((size_t)100 * 1000 * 1000)
#define MAX_SHARDS 4096

/* ---- canonical names ------------------------------------------------------------------------ */

enum { K_TOKEN_EMBD, K_OUTPUT_NORM, K_OUTPUT, K_ROPE_FREQS, K_LAYER }; /* K_LAYER + per-layer index */
enum { L_ATTN_NORM, L_Q, L_K, L_V, L_O, L_FFN_NORM, L_GATE, L_UP, L_DOWN,
       L_LAMBDA_Q1, L_LAMBDA_K1, L_LAMBDA_Q2, L_LAMBDA_K2, /* differential attention only */
       N_LAYER_TENSORS };
#define N_LLAMA_LAYER_TENSORS L_LAMBDA_Q1

static const char *const global_names[K_LAYER] = {"token_embd.weight", "output_norm.weight", "output.weight",
                                                   "rope_freqs.weight"};
/* Hugging Face has no rope_freqs tensor: its divisors follow from config.json (core/model.c) */
static const char *const hf_global_names[K_LAYER] = {"model.embed_tokens.weight", "model.norm.weight",
                                                      "lm_head.weight", NULL};
static const char *const layer_names[N_LAYER_TENSORS] = {
    "attn_norm.weight", "attn_q.weight",   "attn_k.weight",  "attn_v.weight",   "attn_output.weight",
    "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight",  "ffn_down.weight",
    "attn_lambda_q1",   "attn_lambda_k1",  "attn_lambda_q2", "attn_lambda_k2",
};
static const char *const hf_layer_names[N_LAYER_TENSORS] = {
    "input_layernorm.weight",     "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",    "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",       "mlp.up_proj.weight",      "mlp.down_proj.weight",
    "self_attn.lambda_q1",        "self_attn.lambda_k1",     "self_attn.lambda_q2",
    "self_attn.lambda_k2",
};

const char *tr_activation_name(tr_activation a)
{
    static const char *const names[TR_ACT_COUNT] = {"silu", "gelu", "gelu_pytorch_tanh"};
    return (unsigned)a < TR_ACT_COUNT ? names[a] : "?";
}

/* Parses "<prefix><N>.<suffix>" and returns the index of suffix in table, or -1. N is decimal
 * without leading zeros and below 2^24. */
static int match_layer_name(const char *name, const char *prefix, const char *const table[N_LAYER_TENSORS],
                            int *layer)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0)
        return -1;
    const char *p = name + pl;
    long n = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) {
        n = n * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || *p != '.' || (digits > 1 && name[pl] == '0') || n > MAX_HPARAM)
        return -1;
    for (int i = 0; i < N_LAYER_TENSORS; i++)
        if (strcmp(p + 1, table[i]) == 0) {
            *layer = (int)n;
            return i;
        }
    return -1;
}

/* The kind (K_*) of a tensor name, in GGUF (hf = 0) or Hugging Face (hf = 1) naming; -1 if unknown. */
static int tensor_kind(const char *name, int hf, int *layer)
{
    const char *const *globals = hf ? hf_global_names : global_names;
    *layer = -1;
    for (int k = 0; k < K_LAYER; k++)
        if (globals[k] && strcmp(name, globals[k]) == 0)
            return k;
    int i = hf ? match_layer_name(name, "model.layers.", hf_layer_names, layer)
               : match_layer_name(name, "blk.", layer_names, layer);
    return i < 0 ? -1 : K_LAYER + i;
}

static void canonical_name(int kind, int layer, char *buf, size_t cap)
{
    if (kind < K_LAYER)
        snprintf(buf, cap, "%s", global_names[kind]);
    else
        snprintf(buf, cap, "blk.%d.%s", layer, layer_names[kind - K_LAYER]);
}

/* The shape a weight must have (ne order), from model_file.h's table. Returns ndim. */
static int expected_shape(const tr_hparams *hp, int kind, int64_t ne[2])
{
    int64_t q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    ne[1] = 1;
    switch (kind) {
    case K_TOKEN_EMBD: case K_OUTPUT: ne[0] = hp->dim; ne[1] = hp->n_vocab; return 2;
    case K_OUTPUT_NORM: case K_LAYER + L_ATTN_NORM: case K_LAYER + L_FFN_NORM: ne[0] = hp->dim; return 1;
    case K_ROPE_FREQS: ne[0] = hp->head_dim / 2; return 1;
    case K_LAYER + L_Q: ne[0] = hp->dim; ne[1] = q; return 2;
    case K_LAYER + L_K: case K_LAYER + L_V: ne[0] = hp->dim; ne[1] = kv; return 2;
    case K_LAYER + L_O: ne[0] = q; ne[1] = hp->dim; return 2;
    case K_LAYER + L_GATE: case K_LAYER + L_UP: ne[0] = hp->dim; ne[1] = hp->ffn_dim; return 2;
    case K_LAYER + L_LAMBDA_Q1: case K_LAYER + L_LAMBDA_K1: case K_LAYER + L_LAMBDA_Q2: case K_LAYER + L_LAMBDA_K2:
        ne[0] = hp->head_dim; return 1;
    default: ne[0] = hp->ffn_dim; ne[1] = hp->dim; return 2; /* L_DOWN */
    }
}

/* llama3 RoPE scaling (design §11) as per-pair divisors of the frequency, in double: pairs whose
 * wavelength is below orig/high_freq_factor keep it, those above orig/low_freq_factor are divided by
 * factor, and those between are interpolated (the divisor is inv_freq / the scaled inv_freq). */
void tr_rope_llama3_divisors(const tr_hparams *hp, float *out)
{
    double orig = hp->rope_orig_ctx, lo = hp->rope_low_freq_factor, hi = hp->rope_high_freq_factor;
    for (int i = 0; i < hp->head_dim / 2; i++) {
        double inv = pow((double)hp->rope_theta, -2.0 * i / hp->head_dim), wavelen = 2 * 3.14159265358979323846 / inv;
        double scaled = inv;
        if (wavelen > orig / lo) {
            scaled = inv / hp->rope_factor;
        } else if (wavelen >= orig / hi) {
            double smooth = (orig / wavelen - lo) / (hi - lo);
            scaled = (1 - smooth) * inv / hp->rope_factor + smooth * inv;
        }
        out[i] = (float)(inv / scaled);
    }
}

void tr_hparams_add_eog(tr_hparams *hp, int id)
{
    for (int i = 0; i < hp->n_eog; i++)
        if (hp->eog[i] == id)
            return;
    if (id >= 0 && hp->n_eog < TR_MAX_EOG)
        hp->eog[hp->n_eog++] = id;
}

/* ---- collecting weights --------------------------------------------------------------------- */

/* A weight found in a file, with where it came from (for messages). */
typedef struct entry {
    tr_weight w;
    int kind, layer;
    char *file_name; /* the tensor's name in its file */
    const char *file; /* the file's path, owned by the loader */
} entry;

typedef struct loader {
    tr_model_file *f;
    int hf;            /* names and shapes follow Hugging Face conventions */
    entry *entries;
    size_t n, cap;
    char **paths;      /* file paths the entries point to */
    int n_paths;
    const char *weights_file; /* the file that lists the tensors: .gguf, model.safetensors or the index */
} loader;

static const char *loader_keep_path(loader *L, const char *path)
{
    char **grown = realloc(L->paths, (size_t)(L->n_paths + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    L->paths = grown;
    L->paths[L->n_paths] = strdup(path);
    return L->paths[L->n_paths] ? L->paths[L->n_paths++] : NULL;
}

static void loader_free(loader *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->entries[i].file_name);
    free(L->entries);
    for (int i = 0; i < L->n_paths; i++)
        free(L->paths[i]);
    free(L->paths);
    memset(L, 0, sizeof *L);
}

/* Records a tensor if it is one the model uses. dtype < 0: a dtype transit does not compute with. */
static tr_status loader_add(loader *L, const char *file, const char *name, int dtype, const char *dtype_name,
                            int ndim, const int64_t ne[4], const void *data, size_t nbytes)
{
    int layer, kind = tensor_kind(name, L->hf, &layer);
    char q[80];
    if (kind < 0)
        return TR_OK;
    if (layer >= L->f->hp.n_layers)
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' belongs to layer %d, but the model has %d layers", file,
                       tr_quote(name, strlen(name), q, sizeof q), layer, L->f->hp.n_layers);
    if (dtype < 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 are supported", file,
                       tr_quote(name, strlen(name), q, sizeof q), dtype_name);
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 64;
        entry *grown = realloc(L->entries, cap * sizeof *grown);
        if (!grown)
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
        L->entries = grown;
        L->cap = cap;
    }
    entry *e = &L->entries[L->n];
    memset(e, 0, sizeof *e);
    e->file_name = strdup(name);
    if (!e->file_name)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    L->n++;
    e->kind = kind;
    e->layer = layer;
    e->file = file;
    canonical_name(kind, layer, e->w.name, sizeof e->w.name);
    e->w.dtype = (tr_dtype)dtype;
    e->w.ndim = ndim;
    for (int d = 0; d < 4; d++)
        e->w.ne[d] = ne[d];
    e->w.data = data;
    e->w.nbytes = nbytes;
    return TR_OK;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->w.name, ((const entry *)b)->w.name);
}

static const entry *loader_find(const loader *L, const char *canonical)
{
    entry key;
    snprintf(key.w.name, sizeof key.w.name, "%s", canonical);
    return L->n ? bsearch(&key, L->entries, L->n, sizeof *L->entries, cmp_entry_name) : NULL;
}

/* Shapes print in the file's own order: ne order for GGUF, row-major (reversed) for safetensors. */
static void format_shape(const loader *L, int ndim, const int64_t *ne, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++) {
        int d = L->hf ? ndim - 1 - i : i;
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)ne[d]);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

static tr_status check_weight(const loader *L, int kind, int layer, int required)
{
    char name[96];
    canonical_name(kind, layer, name, sizeof name);
    const entry *e = loader_find(L, name);
    if (!e) {
        if (!required)
            return TR_OK;
        const char *file = L->weights_file ? L->weights_file : L->f->path;
        if (!L->hf)
            return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' is missing", file, name);
        char hf_name[128];
        if (kind < K_LAYER)
            snprintf(hf_name, sizeof hf_name, "%s", hf_global_names[kind]);
        else
            snprintf(hf_name, sizeof hf_name, "model.layers.%d.%s", layer, hf_layer_names[kind - K_LAYER]);
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' (%s) is missing", file, hf_name, name);
    }
    int64_t want[2];
    int ndim = expected_shape(&L->f->hp, kind, want);
    if (ndim == 1 && tr_dtype_is_quant(e->w.dtype)) /* norms and lambdas: llama.cpp never quantizes them */
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; vectors must be F32, F16 or BF16", e->file,
                       e->file_name, tr_dtype_name(e->w.dtype));
    int ok = e->w.ndim == ndim && e->w.ne[0] == want[0] && (ndim == 1 || e->w.ne[1] == want[1]);
    if (!ok) {
        char got_s[96], want_s[64];
        format_shape(L, e->w.ndim, e->w.ne, got_s, sizeof got_s);
        format_shape(L, ndim, want, want_s, sizeof want_s);
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s from the hyperparameters", e->file,
                       e->file_name, got_s, want_s);
    }
    return TR_OK;
}

/* Every weight the model needs is there with exactly its shape; decides tied embeddings. */
static tr_status validate(loader *L)
{
    tr_hparams *hp = &L->f->hp;
    if (L->n)
        qsort(L->entries, L->n, sizeof *L->entries, cmp_entry_name);
    TR_TRY(check_weight(L, K_TOKEN_EMBD, -1, 1));
    TR_TRY(check_weight(L, K_OUTPUT_NORM, -1, 1));
    /* GGUF ties by leaving output.weight out; HF says tie_word_embeddings, but an lm_head present
     * anyway is what the checkpoint holds, so it wins. */
    int has_output = loader_find(L, global_names[K_OUTPUT]) != NULL;
    TR_TRY(check_weight(L, K_OUTPUT, -1, L->hf ? !hp->tied_embeddings : 0));
    hp->tied_embeddings = !has_output;
    /* GGUF: llama.cpp writes llama3 RoPE scaling as this tensor of per-pair divisors */
    if (!L->hf && loader_find(L, global_names[K_ROPE_FREQS])) {
        TR_TRY(check_weight(L, K_ROPE_FREQS, -1, 1));
        const entry *e = loader_find(L, global_names[K_ROPE_FREQS]);
        if (e->w.dtype != TR_F32)
            return tr_fail(TR_ERR_FORMAT, "%s: tensor 'rope_freqs.weight' must be F32, got %s", e->file,
                           tr_dtype_name(e->w.dtype));
        if (hp->rope_scaling == TR_ROPE_SCALING_LINEAR)
            return tr_fail(TR_ERR_FORMAT, "%s: both linear RoPE scaling and a rope_freqs tensor", e->file);
        hp->rope_scaling = TR_ROPE_SCALING_LLAMA3;
    }
    for (int l = 0; l < hp->n_layers; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++)
            if (i < N_LLAMA_LAYER_TENSORS || hp->diff_attn)
                TR_TRY(check_weight(L, K_LAYER + i, l, 1));
    return TR_OK;
}

/* Moves the entries into f->weights, copying any whose data is not aligned to its element size. */
static tr_status finish(loader *L)
{
    tr_model_file *f = L->f;
    f->weights = calloc(L->n ? L->n : 1, sizeof *f->weights);
    if (!f->weights)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < L->n; i++) {
        tr_weight *w = &f->weights[f->n_weights++];
        *w = L->entries[i].w;
        size_t esize = tr_dtype_align(w->dtype);
        if ((uintptr_t)w->data % esize == 0)
            continue;
        void **grown = realloc(f->heap_copies, (size_t)(f->n_heap_copies + 1) * sizeof *grown);
        if (!grown)
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", f->path);
        f->heap_copies = grown;
        void *copy = malloc(w->nbytes ? w->nbytes : 1);
        if (!copy)
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory copying '%s' (%zu bytes)", f->path, w->name, w->nbytes);
        memcpy(copy, w->data, w->nbytes);
        f->heap_copies[f->n_heap_copies++] = copy;
        w->data = copy;
    }
    return TR_OK;
}

static tr_status add_mapping(tr_model_file *f, const tr_mapping *m)
{
    tr_mapping *grown = realloc(f->maps, (size_t)(f->n_maps + 1) * sizeof *grown);
    if (!grown)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", f->path);
    f->maps = grown;
    f->maps[f->n_maps++] = *m;
    return TR_OK;
}

/* ---- GGUF ----------------------------------------------------------------------------------- */

static tr_status gguf_int(const tr_gguf *g, const char *file, const char *key, int required, int dflt, int *out)
{
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, key);
    int64_t v;
    if (!kv) {
        if (required)
            return tr_fail(TR_ERR_FORMAT, "%s: metadata key '%s' is missing", file, key);
        *out = dflt;
        return TR_OK;
    }
    if (!tr_gguf_kv_int(kv, &v))
        return tr_fail(TR_ERR_FORMAT, "%s: %s has type %s, expected an integer", file, key,
                       tr_gguf_vtype_name(kv->type));
    if (v < 1 || v > MAX_HPARAM)
        return tr_fail(TR_ERR_FORMAT, "%s: %s is %lld, expected 1 to %d", file, key, (long long)v, MAX_HPARAM);
    *out = (int)v;
    return TR_OK;
}

static tr_status gguf_float(const tr_gguf *g, const char *file, const char *key, int required, double dflt,
                            double hi, float *out)
{
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, key);
    double v;
    if (!kv) {
        if (required)
            return tr_fail(TR_ERR_FORMAT, "%s: metadata key '%s' is missing", file, key);
        *out = (float)dflt;
        return TR_OK;
    }
    if (!tr_gguf_kv_number(kv, &v))
        return tr_fail(TR_ERR_FORMAT, "%s: %s has type %s, expected a number", file, key, tr_gguf_vtype_name(kv->type));
    if (!(v > 0 && v < hi && (float)v > 0)) /* 1e-50 in a float64 would become 0.0f */
        return tr_fail(TR_ERR_FORMAT, "%s: %s is %g, expected a number between 0 and %g", file, key, v, hi);
    *out = (float)v;
    return TR_OK;
}

static tr_status gguf_hparams(const tr_gguf *g, const char *file, tr_hparams *hp)
{
    const tr_gguf_kv *arch = tr_gguf_find_kv(g, "general.architecture");
    char q[64], key[96];
    if (!arch)
        return tr_fail(TR_ERR_FORMAT, "%s: metadata key 'general.architecture' is missing", file);
    if (arch->type != TR_GGUF_STRING)
        return tr_fail(TR_ERR_FORMAT, "%s: general.architecture has type %s, expected a string", file,
                       tr_gguf_vtype_name(arch->type));
    hp->diff_attn = arch->str_len == 9 && memcmp(arch->str, "diffllama", 9) == 0;
    if (!hp->diff_attn && (arch->str_len != 5 || memcmp(arch->str, "llama", 5) != 0))
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (only 'llama' and 'diffllama')", file,
                       tr_quote(arch->str, (size_t)arch->str_len, q, sizeof q));
    snprintf(hp->arch, sizeof hp->arch, "%s", hp->diff_attn ? "diffllama" : "llama");
    hp->rope_layout = TR_ROPE_ADJACENT;
    /* Every key lives under the architecture's prefix (llama.*, diffllama.*), as llama.cpp names them. */
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", hp->arch, suffix), key)
    TR_TRY(gguf_int(g, file, KEY("context_length"), 1, 0, &hp->n_ctx_train));
    TR_TRY(gguf_int(g, file, KEY("embedding_length"), 1, 0, &hp->dim));
    TR_TRY(gguf_int(g, file, KEY("feed_forward_length"), 1, 0, &hp->ffn_dim));
    TR_TRY(gguf_int(g, file, KEY("block_count"), 1, 0, &hp->n_layers));
    TR_TRY(gguf_int(g, file, KEY("attention.head_count"), 1, 0, &hp->n_heads));
    TR_TRY(gguf_int(g, file, KEY("attention.head_count_kv"), 0, hp->n_heads, &hp->n_kv_heads));
    if (!tr_gguf_find_kv(g, KEY("attention.key_length")) && hp->dim % hp->n_heads != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: %s.embedding_length (%d) is not divisible by the head count (%d)", file,
                       hp->arch, hp->dim, hp->n_heads);
    TR_TRY(gguf_int(g, file, KEY("attention.key_length"), 0, hp->dim / hp->n_heads, &hp->head_dim));
    int value_len = 0, rope_dims = 0;
    TR_TRY(gguf_int(g, file, KEY("attention.value_length"), 0, hp->head_dim, &value_len));
    if (value_len != hp->head_dim)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: value heads of %d differ from key heads of %d; not supported", file,
                       value_len, hp->head_dim);
    TR_TRY(gguf_int(g, file, KEY("rope.dimension_count"), 0, hp->head_dim, &rope_dims));
    if (rope_dims != hp->head_dim)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: %s.rope.dimension_count is %d but heads have %d dimensions; "
                       "partial rotary embeddings are not supported", file, hp->arch, rope_dims, hp->head_dim);
    if (hp->n_heads % hp->n_kv_heads != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: the head count (%d) is not a multiple of the KV head count (%d)", file,
                       hp->n_heads, hp->n_kv_heads);
    if (hp->head_dim % 2 != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: heads of %d dimensions cannot be rotated in pairs", file, hp->head_dim);
    if ((int64_t)hp->n_heads * hp->head_dim > MAX_HPARAM)
        return tr_fail(TR_ERR_FORMAT, "%s: %d heads of %d dimensions is implausibly large", file, hp->n_heads,
                       hp->head_dim);
    TR_TRY(gguf_float(g, file, KEY("attention.layer_norm_rms_epsilon"), 1, 0, 1, &hp->rms_eps));
    TR_TRY(gguf_float(g, file, KEY("rope.freq_base"), 0, 10000, 1e12, &hp->rope_theta));
    /* RoPE scaling: linear by these keys (or the older rope.scale_linear); llama3 by a rope_freqs
     * tensor (validate); any other type is refused */
    const tr_gguf_kv *scaling = tr_gguf_find_kv(g, KEY("rope.scaling.type"));
    int linear = scaling && scaling->type == TR_GGUF_STRING && scaling->str_len == 6 && !memcmp(scaling->str, "linear", 6);
    if (scaling && !linear && !(scaling->type == TR_GGUF_STRING && scaling->str_len == 4 && !memcmp(scaling->str, "none", 4)))
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: %s.rope.scaling.type is %s; only 'linear' (and llama3 as rope_freqs.weight) "
                       "are supported", file, hp->arch,
                       scaling->type == TR_GGUF_STRING ? tr_quote(scaling->str, (size_t)scaling->str_len, q, sizeof q)
                                                       : "not a string");
    if (linear || tr_gguf_find_kv(g, KEY("rope.scale_linear"))) {
        hp->rope_scaling = TR_ROPE_SCALING_LINEAR;
        TR_TRY(gguf_float(g, file, linear ? KEY("rope.scaling.factor") : KEY("rope.scale_linear"), 1, 1, 1e6,
                          &hp->rope_factor));
    }
    if (hp->diff_attn && (hp->n_heads % 2 != 0 || hp->n_kv_heads % 2 != 0))
        return tr_fail(TR_ERR_FORMAT, "%s: differential attention pairs heads, but the head counts (%d, %d kv) are "
                       "not both even", file, hp->n_heads, hp->n_kv_heads);
    /* transit's key (design §4, docs/gguf.md): the feed-forward gate's activation, HF's name for it */
    hp->act = TR_ACT_SILU;
    const tr_gguf_kv *act = tr_gguf_find_kv(g, KEY("hidden_act"));
    if (act) {
        int found = 0;
        for (int a = 0; a < TR_ACT_COUNT && act->type == TR_GGUF_STRING && !found; a++)
            if ((size_t)act->str_len == strlen(tr_activation_name((tr_activation)a)) &&
                memcmp(act->str, tr_activation_name((tr_activation)a), (size_t)act->str_len) == 0) {
                hp->act = (tr_activation)a;
                found = 1;
            }
        if (!found)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: %s is %s; supported are 'silu', 'gelu' and 'gelu_pytorch_tanh'",
                           file, key, act->type == TR_GGUF_STRING ? tr_quote(act->str, (size_t)act->str_len, q, sizeof q)
                                                                  : "not a string");
    }
    hp->n_vocab = 0;
    TR_TRY(gguf_int(g, file, KEY("vocab_size"), 0, 0, &hp->n_vocab));
#undef KEY
    return TR_OK;
}

/* Builds f from a GGUF image; f->path is already set. */
static tr_status load_gguf(const uint8_t *data, size_t len, tr_model_file *f)
{
    const char *file = f->path;
    tr_gguf g;
    loader L = {.f = f, .hf = 0};
    f->is_gguf = 1;
    TR_TRY(tr_gguf_parse(data, len, file, &g));
    tr_status s = gguf_hparams(&g, file, &f->hp);
    if (s == TR_OK)
        s = tr_gguf_read_vocab(&g, file, &f->vocab, &f->has_vocab);
    if (s == TR_OK && f->hp.n_vocab == 0) { /* no llama.vocab_size: the embedding table says */
        const tr_gguf_tensor *embd = tr_gguf_find_tensor(&g, global_names[K_TOKEN_EMBD]);
        if (embd && embd->n_dims == 2 && embd->ne[1] <= MAX_HPARAM)
            f->hp.n_vocab = (int)embd->ne[1];
        else if (f->has_vocab)
            f->hp.n_vocab = f->vocab.n;
        else if (!embd)
            s = tr_fail(TR_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing", file);
        else
            s = tr_fail(TR_ERR_FORMAT, "%s: cannot tell the vocabulary size from token_embd.weight", file);
    }
    if (s == TR_OK && f->has_vocab && f->vocab.n != f->hp.n_vocab)
        s = tr_fail(TR_ERR_FORMAT, "%s: the vocabulary has %d tokens but the model has %d embeddings", file,
                    f->vocab.n, f->hp.n_vocab);
    f->hp.bos_id = f->has_vocab ? f->vocab.bos_id : -1;
    f->hp.eos_id = f->has_vocab ? f->vocab.eos_id : -1;
    f->hp.pad_id = f->has_vocab ? f->vocab.pad_id : -1;
    tr_hparams_add_eog(&f->hp, f->hp.eos_id);
    static const char *const eog_keys[] = {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    for (int i = 0; s == TR_OK && f->has_vocab && i < 2; i++) { /* llama.cpp's keys for Llama 3's other stops */
        const tr_gguf_kv *kv = tr_gguf_find_kv(&g, eog_keys[i]);
        int64_t v;
        if (kv && (!tr_gguf_kv_int(kv, &v) || v < 0 || v >= f->vocab.n))
            s = tr_fail(TR_ERR_FORMAT, "%s: %s is not a token id of the vocabulary", file, eog_keys[i]);
        else if (kv)
            tr_hparams_add_eog(&f->hp, (int)v);
    }
    f->add_bos = f->has_vocab ? f->vocab.add_bos : -1;
    const tr_gguf_kv *tmpl = tr_gguf_find_kv(&g, "tokenizer.chat_template");
    if (s == TR_OK && tmpl) {
        if (tmpl->type != TR_GGUF_STRING || memchr(tmpl->str, 0, (size_t)tmpl->str_len))
            s = tr_fail(TR_ERR_FORMAT, "%s: tokenizer.chat_template is not a string of text", file);
        else if (!(f->chat_template = malloc((size_t)tmpl->str_len + 1)))
            s = tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
        else {
            memcpy(f->chat_template, tmpl->str, (size_t)tmpl->str_len);
            f->chat_template[tmpl->str_len] = '\0';
            snprintf(f->chat_template_source, sizeof f->chat_template_source, "%.1000s: tokenizer.chat_template",
                     file);
        }
    }
    for (size_t i = 0; s == TR_OK && i < g.n_tensors; i++) {
        const tr_gguf_tensor *t = &g.tensors[i];
        s = loader_add(&L, file, t->name, (int)t->dtype, tr_dtype_name(t->dtype), t->n_dims, t->ne, t->data,
                       t->nbytes);
    }
    if (s == TR_OK)
        s = validate(&L);
    if (s == TR_OK)
        s = finish(&L);
    loader_free(&L);
    tr_gguf_free(&g);
    return s;
}

/* ---- Hugging Face directories --------------------------------------------------------------- */

static tr_status join_path(char *buf, size_t cap, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    if ((size_t)snprintf(buf, cap, "%s%s%s", dir, sep, name) >= cap)
        return tr_fail(TR_ERR_INVALID_ARG, "%s: path too long", dir);
    return TR_OK;
}

/* Maps one safetensors file and records the tensors the model uses. With an index, only the
 * tensors the index assigns to this shard count, and each of them must be there. */
static tr_status load_shard(loader *L, const char *path, const tr_st_index *idx, const char *shard_name,
                            const char *index_path)
{
    tr_mapping m;
    tr_status s = tr_map_file(path, &m);
    if (s != TR_OK)
        return index_path ? tr_fail_prefix(s, index_path) : s;
    s = add_mapping(L->f, &m);
    if (s != TR_OK) {
        tr_unmap(&m);
        return s;
    }
    const char *file = loader_keep_path(L, path);
    if (!file)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", path);
    tr_safetensors st;
    TR_TRY(tr_safetensors_parse(m.addr, m.size, file, &st));
    for (size_t i = 0; s == TR_OK && idx && i < idx->n; i++) {
        const tr_st_index_entry *e = &idx->entries[i];
        if (strcmp(e->shard, shard_name) != 0)
            continue;
        const tr_st_tensor *t = tr_safetensors_find(&st, e->tensor);
        char q[80];
        if (!t)
            s = tr_fail(TR_ERR_FORMAT, "%s: weight_map puts tensor '%s' in %s, which does not contain it", index_path,
                        tr_quote(e->tensor, strlen(e->tensor), q, sizeof q), file);
        else
            s = loader_add(L, file, t->name, t->dtype, t->dtype_name, t->ndim, t->ne, t->data, t->nbytes);
    }
    for (size_t i = 0; s == TR_OK && !idx && i < st.n_tensors; i++) {
        const tr_st_tensor *t = &st.tensors[i];
        s = loader_add(L, file, t->name, t->dtype, t->dtype_name, t->ndim, t->ne, t->data, t->nbytes);
    }
    tr_safetensors_free(&st);
    return s;
}

static tr_status load_sharded(loader *L, const char *dir, const char *index_path)
{
    char *text;
    size_t len;
    tr_st_index idx;
    TR_TRY(tr_read_small_file(index_path, MAX_JSON_FILE, &text, &len));
    tr_status s = tr_st_index_parse(text, len, index_path, &idx);
    free(text);
    TR_TRY(s);
    /* Each shard once, in order of first appearance in the (name-sorted) weight map. */
    const char **opened = NULL;
    int n_opened = 0;
    for (size_t i = 0; s == TR_OK && i < idx.n; i++) {
        const char *shard = idx.entries[i].shard;
        int seen = 0;
        for (int k = 0; k < n_opened && !seen; k++)
            seen = strcmp(opened[k], shard) == 0;
        if (seen)
            continue;
        if (n_opened == MAX_SHARDS) {
            s = tr_fail(TR_ERR_FORMAT, "%s: more than %d shards", index_path, MAX_SHARDS);
            break;
        }
        const char **grown = realloc(opened, (size_t)(n_opened + 1) * sizeof *grown);
        if (!grown) {
            s = tr_fail(TR_ERR_NOMEM, "%s: out of memory", index_path);
            break;
        }
        opened = grown;
        opened[n_opened++] = shard;
        char path[2048];
        s = join_path(path, sizeof path, dir, shard);
        if (s == TR_OK)
            s = load_shard(L, path, &idx, shard, index_path);
    }
    free(opened);
    tr_st_index_free(&idx);
    return s;
}

static tr_status load_hf(const char *dir, tr_model_file *f)
{
    char path[2048];
    char *text;
    size_t len;
    loader L = {.f = f, .hf = 1};
    f->is_gguf = 0;
    TR_TRY(join_path(path, sizeof path, dir, "config.json"));
    TR_TRY(tr_read_small_file(path, MAX_JSON_FILE, &text, &len));
    tr_status s = tr_hf_config_parse(text, len, path, &f->hp);
    free(text);
    TR_TRY(s);

    f->add_bos = 1;
    TR_TRY(join_path(path, sizeof path, dir, "tokenizer_config.json"));
    if (tr_is_regular_file(path)) {
        TR_TRY(tr_read_small_file(path, MAX_JSON_FILE, &text, &len));
        s = tr_hf_tokenizer_config_parse(text, len, path, &f->add_bos, &f->chat_template);
        free(text);
        TR_TRY(s);
        if (f->chat_template)
            snprintf(f->chat_template_source, sizeof f->chat_template_source, "%.1000s", path);
    }
    TR_TRY(join_path(path, sizeof path, dir, "chat_template.jinja"));
    if (tr_is_regular_file(path)) { /* where transformers now saves it; it wins over the config's */
        free(f->chat_template);
        f->chat_template = NULL;
        TR_TRY(tr_read_small_file(path, MAX_JSON_FILE, &f->chat_template, &len));
        if (strlen(f->chat_template) != len)
            return tr_fail(TR_ERR_FORMAT, "%s: the template has a NUL byte", path);
        snprintf(f->chat_template_source, sizeof f->chat_template_source, "%.1000s", path);
    }
    TR_TRY(join_path(path, sizeof path, dir, "generation_config.json"));
    if (tr_is_regular_file(path)) { /* the ids that end a reply (Llama 3: <|eot_id|> and more) */
        TR_TRY(tr_read_small_file(path, MAX_JSON_FILE, &text, &len));
        s = tr_hf_eos_ids_parse(text, len, path, &f->hp);
        free(text);
        TR_TRY(s);
    }
    static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer.model"};
    for (int i = 0; i < 2 && !f->tokenizer_path[0]; i++) {
        TR_TRY(join_path(path, sizeof path, dir, tokenizer_files[i]));
        if (tr_is_regular_file(path))
            TR_TRY(join_path(f->tokenizer_path, sizeof f->tokenizer_path, dir, tokenizer_files[i]));
    }

    char index_path[2048];
    TR_TRY(join_path(path, sizeof path, dir, "model.safetensors"));
    TR_TRY(join_path(index_path, sizeof index_path, dir, "model.safetensors.index.json"));
    if (tr_is_regular_file(path)) {
        L.weights_file = path;
        s = load_shard(&L, path, NULL, NULL, NULL);
    } else if (tr_is_regular_file(index_path)) {
        L.weights_file = index_path;
        s = load_sharded(&L, dir, index_path);
    } else {
        TR_TRY(join_path(path, sizeof path, dir, "pytorch_model.bin"));
        if (tr_is_regular_file(path))
            s = tr_fail(TR_ERR_UNSUPPORTED, "%s: only safetensors weights are supported, not pytorch_model.bin", dir);
        else
            s = tr_fail(TR_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json in the directory", dir);
    }
    if (s == TR_OK)
        s = validate(&L);
    if (s == TR_OK)
        s = finish(&L);
    loader_free(&L);
    return s;
}

/* ---- the public entry points ---------------------------------------------------------------- */

static tr_status set_path(tr_model_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->add_bos = -1;
    if (!path || !*path)
        return tr_fail(TR_ERR_INVALID_ARG, "model path is empty");
    if (strlen(path) >= sizeof f->path)
        return tr_fail(TR_ERR_INVALID_ARG, "%.64s...: path longer than %zu bytes", path, sizeof f->path - 1);
    memcpy(f->path, path, strlen(path) + 1);
    return TR_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

tr_status tr_model_file_open(const char *path, tr_model_file *out)
{
    TR_TRY(set_path(out, path));
    tr_status s;
    if (tr_is_directory(path)) {
        s = load_hf(path, out);
    } else {
        tr_mapping m;
        TR_TRY(tr_map_file(path, &m));
        const uint8_t *bytes = m.addr;
        if (m.size >= 4 && memcmp(bytes, "GGUF", 4) == 0) {
            s = add_mapping(out, &m);
            if (s != TR_OK)
                tr_unmap(&m);
            else
                s = load_gguf(bytes, m.size, out);
        } else {
            char q[40];
            if (m.size == 0)
                s = tr_fail(TR_ERR_FORMAT, "%s: empty file", path);
            else if (ends_with(path, ".safetensors"))
                s = tr_fail(TR_ERR_UNSUPPORTED, "%s: a safetensors file needs its config.json: open its directory",
                            path);
            else
                s = tr_fail(TR_ERR_FORMAT, "%s: not a GGUF file (it starts with '%s') or a model directory", path,
                            tr_quote(bytes, m.size < 4 ? m.size : 4, q, sizeof q));
            tr_unmap(&m);
        }
    }
    if (s != TR_OK)
        tr_model_file_close(out);
    return s;
}

tr_status tr_model_file_from_gguf(const uint8_t *data, size_t len, const char *name_for_errors, tr_model_file *out)
{
    TR_TRY(set_path(out, name_for_errors));
    tr_status s = load_gguf(data, len, out);
    if (s != TR_OK)
        tr_model_file_close(out);
    return s;
}

void tr_model_file_close(tr_model_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_maps; i++)
        tr_unmap(&f->maps[i]);
    free(f->maps);
    free(f->weights);
    for (int i = 0; i < f->n_heap_copies; i++)
        free(f->heap_copies[i]);
    free(f->heap_copies);
    tr_vocab_spec_free(&f->vocab);
    free(f->chat_template);
    memset(f, 0, sizeof *f);
}

static int cmp_weight_name(const void *key, const void *w)
{
    return strcmp((const char *)key, ((const tr_weight *)w)->name);
}

const tr_weight *tr_model_file_find(const tr_model_file *f, const char *name)
{
    /* finish() stores weights sorted by name */
    if (!f || !f->weights || !name)
        return NULL;
    return bsearch(name, f->weights, (size_t)f->n_weights, sizeof *f->weights, cmp_weight_name);
}
