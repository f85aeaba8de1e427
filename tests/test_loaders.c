/* test_loaders.c: the model-file loaders (GGUF, safetensors + config.json, sharded checkpoints).
 *
 * 1. The real checkpoints in ../shared/models load with the hyperparameters MODELS.md states, and
 *    the GGUF and Hugging Face copies of stories260K hold the same weights (q/k after undoing HF's
 *    rotate-half row permutation).
 * 2. A synthetic sharded checkpoint (stories260K split in two, one shard with misaligned data) loads
 *    and equals the single-file one.
 * 3. Damaged inputs, written into a mkdtemp directory: truncations at every header offset and through
 *    the data, and one crafted defect per check the loaders make. Each must fail with a one-line
 *    message naming the offending file, leave the tr_model_file empty, and leak nothing (ASan). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "gguf.h"
#include "model_file.h"
#include "test_util.h"

static char tmp_dir[256];

static const char *tmp_path(const char *rel)
{
    static char slots[8][1024];
    static int next;
    char *buf = slots[next++ & 7];
    snprintf(buf, 1024, "%s/%s", tmp_dir, rel);
    return buf;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0 && !tr_file_exists(path)) {
        fprintf(stderr, "cannot create %s\n", path);
        exit(1);
    }
}

static int weights_empty(const tr_model_file *f)
{
    return !f->weights && !f->maps && !f->heap_copies && f->n_weights == 0 && f->n_maps == 0 && !f->vocab.pieces;
}

/* Opening path must fail (with status want, if want != TR_OK) with a one-line error that mentions
 * `mention`, and leave the struct empty. */
static void expect_fail(const char *label, const char *path, const char *mention, tr_status want)
{
    tr_model_file f;
    memset(&f, 0x5a, sizeof f); /* open must not rely on a zeroed struct */
    tr_status s = tr_model_file_open(path, &f);
    const char *e = tr_last_error();
    CHECK(s != TR_OK, "%s: opened a damaged model", label);
    if (want != TR_OK)
        CHECK(s == want, "%s: status %s, expected %s (%s)", label, tr_status_str(s), tr_status_str(want), e);
    CHECK(!strchr(e, '\n') && strstr(e, mention), "%s: error does not name '%s' on one line: %s", label, mention, e);
    CHECK(weights_empty(&f), "%s: failed open left data behind", label);
    if (tr_verbose())
        fprintf(stderr, "  %-28s %s\n", label, e);
    tr_model_file_close(&f);
}

static int open_ok(const char *label, const char *path, tr_model_file *f)
{
    tr_status s = tr_model_file_open(path, f);
    CHECK(s == TR_OK, "%s: %s", label, tr_last_error());
    return s == TR_OK;
}

/* ---- the real checkpoints ------------------------------------------------------------------- */

static void check_stories_hparams(const char *label, const tr_hparams *hp)
{
    CHECK(strcmp(hp->arch, "llama") == 0, "%s: arch %s", label, hp->arch);
    CHECK(hp->dim == 64 && hp->n_layers == 5 && hp->n_heads == 8 && hp->n_kv_heads == 4 && hp->head_dim == 8,
          "%s: dim %d layers %d heads %d/%d head_dim %d", label, hp->dim, hp->n_layers, hp->n_heads, hp->n_kv_heads,
          hp->head_dim);
    CHECK(hp->ffn_dim == 172 && hp->n_vocab == 512, "%s: ffn %d vocab %d", label, hp->ffn_dim, hp->n_vocab);
    CHECK(fabsf(hp->rms_eps - 1e-5f) < 1e-12f && hp->rope_theta == 10000.0f, "%s: eps %g theta %g", label,
          hp->rms_eps, hp->rope_theta);
    CHECK(hp->bos_id == 1 && hp->eos_id == 2, "%s: bos %d eos %d", label, hp->bos_id, hp->eos_id);
}

/* HF row h*d + i (i < d/2) holds GGUF row h*d + 2i; HF row h*d + d/2 + i holds GGUF row h*d + 2i + 1. */
static int equal_after_unpermute(const tr_weight *hf, const tr_weight *gg, int n_heads, int d)
{
    size_t row = (size_t)hf->ne[0] * tr_dtype_size(hf->dtype);
    const char *a = hf->data, *b = gg->data;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < d / 2; i++) {
            if (memcmp(a + (size_t)(h * d + i) * row, b + (size_t)(h * d + 2 * i) * row, row) != 0 ||
                memcmp(a + (size_t)(h * d + d / 2 + i) * row, b + (size_t)(h * d + 2 * i + 1) * row, row) != 0)
                return 0;
        }
    return 1;
}

static void test_real_models(void)
{
    tr_model_file gg, hf, ad;
    const char *gguf_path = tr_shared("models/stories260K/stories260K.gguf");
    const char *hf_path = tr_shared("models/stories260K/hf");
    if (!open_ok("stories260K.gguf", gguf_path, &gg))
        return;
    check_stories_hparams("gguf", &gg.hp);
    CHECK(gg.is_gguf && gg.hp.rope_layout == TR_ROPE_ADJACENT && gg.hp.n_ctx_train == 2048, "gguf: layout/ctx");
    CHECK(gg.n_weights == 48, "gguf: %d weights", gg.n_weights);
    /* The GGUF stores output.weight as a copy of token_embd (so it loads untied, with equal data). */
    const tr_weight *out = tr_model_file_find(&gg, "output.weight");
    const tr_weight *emb = tr_model_file_find(&gg, "token_embd.weight");
    CHECK(out && emb && !gg.hp.tied_embeddings && memcmp(out->data, emb->data, emb->nbytes) == 0,
          "gguf: output.weight should equal token_embd.weight");
    CHECK(gg.has_vocab && gg.vocab.n == 512 && gg.vocab.bos_id == 1 && gg.vocab.eos_id == 2 && gg.vocab.unk_id == 0,
          "gguf vocab: n %d bos %d eos %d unk %d", gg.vocab.n, gg.vocab.bos_id, gg.vocab.eos_id, gg.vocab.unk_id);
    CHECK(gg.vocab.add_bos == 1 && gg.vocab.byte_fallback == 1 && gg.add_bos == 1, "gguf vocab flags");
    CHECK(strcmp(gg.vocab.pieces[1], "<s>") == 0 && strcmp(gg.vocab.pieces[3], "<0x00>") == 0 &&
              gg.vocab.types[3] == TR_TOKEN_BYTE && gg.vocab.types[1] == TR_TOKEN_CONTROL,
          "gguf vocab pieces/types");
    CHECK(tr_model_file_find(&gg, "blk.5.attn_q.weight") == NULL && tr_model_file_find(&gg, "nope") == NULL,
          "find of absent names");

    if (open_ok("stories260K/hf", hf_path, &hf)) {
        check_stories_hparams("hf", &hf.hp);
        CHECK(!hf.is_gguf && hf.hp.rope_layout == TR_ROPE_HALF && hf.hp.n_ctx_train == 512 && hf.hp.tied_embeddings,
              "hf: layout/ctx/tied");
        CHECK(hf.n_weights == 47 && !tr_model_file_find(&hf, "output.weight"), "hf: %d weights", hf.n_weights);
        CHECK(hf.add_bos == 1 && strstr(hf.tokenizer_path, "stories260K/hf/tokenizer.json") && !hf.has_vocab,
              "hf: tokenizer '%s' add_bos %d", hf.tokenizer_path, hf.add_bos);
        int same = 0;
        for (int i = 0; i < hf.n_weights; i++) {
            const tr_weight *a = &hf.weights[i], *b = tr_model_file_find(&gg, a->name);
            if (!b || a->dtype != b->dtype || a->ndim != b->ndim || memcmp(a->ne, b->ne, sizeof a->ne) != 0 ||
                a->nbytes != b->nbytes) {
                CHECK(0, "%s: missing or different shape in the GGUF", a->name);
                continue;
            }
            int eq;
            if (strstr(a->name, "attn_q.weight"))
                eq = equal_after_unpermute(a, b, hf.hp.n_heads, hf.hp.head_dim);
            else if (strstr(a->name, "attn_k.weight"))
                eq = equal_after_unpermute(a, b, hf.hp.n_kv_heads, hf.hp.head_dim);
            else
                eq = memcmp(a->data, b->data, a->nbytes) == 0;
            CHECK(eq, "%s differs between GGUF and HF", a->name);
            same += eq;
        }
        CHECK(same == 47, "%d of 47 weights equal", same);
        tr_model_file_close(&hf);
    }
    tr_model_file_close(&gg);
    tr_model_file_close(&gg); /* closing twice is harmless */

    if (open_ok("aidreams260K/hf", tr_shared("models/aidreams260K/hf"), &ad)) {
        const tr_hparams *hp = &ad.hp;
        CHECK(hp->dim == 64 && hp->n_layers == 4 && hp->n_heads == 4 && hp->n_kv_heads == 4 && hp->head_dim == 16 &&
                  hp->n_ctx_train == 128 && hp->ffn_dim == 172 && hp->n_vocab == 512 && hp->tied_embeddings,
              "aidreams: dim %d layers %d heads %d/%d head_dim %d ctx %d", hp->dim, hp->n_layers, hp->n_heads,
              hp->n_kv_heads, hp->head_dim, hp->n_ctx_train);
        tr_model_file_close(&ad);
    }

    tr_model_file zero;
    memset(&zero, 0, sizeof zero);
    tr_model_file_close(&zero); /* a zeroed struct is a no-op */
    tr_model_file_close(NULL);
    CHECK(weights_empty(&zero), "close of a zeroed struct");
}

/* ---- a synthetic GGUF, written with one chosen defect ----------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(wbuf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_head(wbuf *b, const char *key, uint32_t type) { put_str(b, key); put_u32(b, type); }
static void kv_u32(wbuf *b, const char *key, uint32_t v) { kv_head(b, key, TR_GGUF_UINT32); put_u32(b, v); }
static void kv_f32(wbuf *b, const char *key, float v) { kv_head(b, key, TR_GGUF_FLOAT32); put(b, &v, 4); }
static void kv_str(wbuf *b, const char *key, const char *v) { kv_head(b, key, TR_GGUF_STRING); put_str(b, v); }

/* Each defect: its name and the status opening must give (TR_OK for the valid variants). */
#define DAMAGES(X) \
    X(D_NONE, "valid", TR_OK) \
    X(D_F16_BF16, "valid f16/bf16", TR_OK) \
    X(D_TIED, "valid tied", TR_OK) \
    X(D_ALIGN_8, "valid alignment 8", TR_OK) \
    X(D_ALIGN_1, "valid alignment 1", TR_OK) \
    X(D_MAGIC, "wrong magic", TR_ERR_FORMAT) \
    X(D_VERSION_1, "version 1", TR_ERR_UNSUPPORTED) \
    X(D_VERSION_9, "version 9", TR_ERR_FORMAT) \
    X(D_HUGE_TENSOR_COUNT, "tensor count 2^60", TR_ERR_FORMAT) \
    X(D_HUGE_KV_COUNT, "kv count 2^60", TR_ERR_FORMAT) \
    X(D_HUGE_KEY_LEN, "key length 2^60", TR_ERR_FORMAT) \
    X(D_HUGE_STRING_LEN, "string length 2^60", TR_ERR_FORMAT) \
    X(D_HUGE_ARRAY, "array of 2^60 strings", TR_ERR_FORMAT) \
    X(D_NESTED_ARRAY, "nested array", TR_ERR_UNSUPPORTED) \
    X(D_BAD_VTYPE, "value type 13", TR_ERR_FORMAT) \
    X(D_BAD_BOOL, "bool value 2", TR_ERR_FORMAT) \
    X(D_DUP_KEY, "duplicate key", TR_ERR_FORMAT) \
    X(D_ALIGN_3, "alignment 3", TR_ERR_FORMAT) \
    X(D_NDIMS_0, "n_dims 0", TR_ERR_FORMAT) \
    X(D_NDIMS_5, "n_dims 5", TR_ERR_FORMAT) \
    X(D_DIM_0, "dimension 0", TR_ERR_FORMAT) \
    X(D_DIM_OVERFLOW, "dims overflow", TR_ERR_FORMAT) \
    X(D_DIM_HUGE, "dimension 2^62", TR_ERR_FORMAT) \
    X(D_TYPE_99, "type id 99", TR_ERR_FORMAT) \
    X(D_TYPE_Q4_0, "type Q4_0", TR_ERR_UNSUPPORTED) \
    X(D_TYPE_I32, "type I32", TR_ERR_UNSUPPORTED) \
    X(D_OFFSET_MISALIGNED, "misaligned offset", TR_ERR_FORMAT) \
    X(D_OFFSET_PAST_END, "offset past end", TR_ERR_FORMAT) \
    X(D_OVERLAP, "overlapping tensors", TR_ERR_FORMAT) \
    X(D_DUP_TENSOR, "duplicate tensor", TR_ERR_FORMAT) \
    X(D_LONG_NAME, "300-byte tensor name", TR_ERR_FORMAT) \
    X(D_ARCH_GPT2, "architecture gpt2", TR_ERR_UNSUPPORTED) \
    X(D_NO_ARCH, "no architecture", TR_ERR_FORMAT) \
    X(D_NO_BLOCK_COUNT, "no block_count", TR_ERR_FORMAT) \
    X(D_BLOCK_COUNT_STRING, "block_count is a string", TR_ERR_FORMAT) \
    X(D_HEADS_NOT_DIVIDING, "heads 2, kv heads 3", TR_ERR_FORMAT) \
    X(D_ROPE_DIMS, "partial rotary", TR_ERR_UNSUPPORTED) \
    X(D_EPS_NEGATIVE, "negative rms eps", TR_ERR_FORMAT) \
    X(D_MISSING_TENSOR, "missing ffn_up", TR_ERR_FORMAT) \
    X(D_WRONG_SHAPE, "attn_k of wrong shape", TR_ERR_FORMAT) \
    X(D_EXTRA_LAYER, "tensor of layer 7", TR_ERR_FORMAT) \
    X(D_SCORES_COUNT, "scores count", TR_ERR_FORMAT) \
    X(D_TOKEN_TYPE, "token type 9", TR_ERR_FORMAT) \
    X(D_BOS_RANGE, "bos id 600", TR_ERR_FORMAT) \
    X(D_TOKENIZER_GPT2, "tokenizer gpt2", TR_ERR_UNSUPPORTED) \
    X(D_TOKEN_NUL, "token with NUL", TR_ERR_FORMAT) \
    X(D_TOKENS_NOT_STRINGS, "tokens of int32", TR_ERR_FORMAT) \
    X(D_VOCAB_MISMATCH, "7 tokens, 6 embeddings", TR_ERR_FORMAT)

#define AS_ENUM(id, name, want) id,
enum damage { DAMAGES(AS_ENUM) D_COUNT };
#define AS_ENTRY(id, name, want) {name, want},
static const struct {
    const char *name;
    tr_status want;
} damages[D_COUNT] = {DAMAGES(AS_ENTRY)};

enum { S_DIM = 8, S_FFN = 12, S_VOCAB = 6, S_HEADS = 2, S_KV = 1, S_HD = 4 };

typedef struct synth_tensor {
    char name[320];
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
} synth_tensor;

static int synth_tensors(enum damage d, synth_tensor *t)
{
    static const struct { const char *name; int ne0, ne1; } table[] = {
        {"token_embd.weight", S_DIM, S_VOCAB},      {"output_norm.weight", S_DIM, 0},
        {"output.weight", S_DIM, S_VOCAB},          {"blk.0.attn_norm.weight", S_DIM, 0},
        {"blk.0.attn_q.weight", S_DIM, S_HEADS * S_HD}, {"blk.0.attn_k.weight", S_DIM, S_KV * S_HD},
        {"blk.0.attn_v.weight", S_DIM, S_KV * S_HD},    {"blk.0.attn_output.weight", S_HEADS * S_HD, S_DIM},
        {"blk.0.ffn_norm.weight", S_DIM, 0},        {"blk.0.ffn_gate.weight", S_DIM, S_FFN},
        {"blk.0.ffn_up.weight", S_DIM, S_FFN},      {"blk.0.ffn_down.weight", S_FFN, S_DIM},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if ((d == D_TIED && i == 2) || (d == D_MISSING_TENSOR && i == 10))
            continue;
        synth_tensor *x = &t[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s", table[i].name);
        x->n_dims = table[i].ne1 ? 2 : 1;
        x->ne[0] = (uint64_t)table[i].ne0;
        x->ne[1] = table[i].ne1 ? (uint64_t)table[i].ne1 : 1;
        x->type = TR_GGML_F32;
        if (d == D_F16_BF16 && x->n_dims == 2)
            x->type = i % 2 ? TR_GGML_F16 : TR_GGML_BF16;
    }
    if (d == D_WRONG_SHAPE)
        t[5].ne[1] = 8;
    if (d == D_EXTRA_LAYER)
        snprintf(t[n - 1].name, sizeof t[n - 1].name, "blk.7.ffn_down.weight");
    if (d == D_DUP_TENSOR)
        snprintf(t[4].name, sizeof t[4].name, "%s", t[3].name);
    if (d == D_LONG_NAME)
        memset(t[4].name, 'x', 300);
    if (d == D_NDIMS_5)
        t[0].n_dims = 5;
    if (d == D_DIM_0)
        t[1].ne[0] = 0;
    if (d == D_DIM_OVERFLOW)
        t[0].ne[0] = t[0].ne[1] = (uint64_t)1 << 40;
    if (d == D_DIM_HUGE)
        t[1].ne[0] = (uint64_t)1 << 62;
    if (d == D_TYPE_99)
        t[2].type = 99;
    if (d == D_TYPE_Q4_0)
        t[4].type = 2;
    if (d == D_TYPE_I32)
        t[4].type = 26;
    return n;
}

static void put_vocab(wbuf *kv, enum damage d, uint64_t *n_kv)
{
    static const char *pieces[S_VOCAB + 1] = {"<unk>", "<s>", "</s>", "a", "b", "\xe2\x96\x81", "c"};
    int n_tok = d == D_VOCAB_MISMATCH ? S_VOCAB + 1 : S_VOCAB;
    kv_str(kv, "tokenizer.ggml.model", d == D_TOKENIZER_GPT2 ? "gpt2" : "llama");
    kv_head(kv, "tokenizer.ggml.tokens", TR_GGUF_ARRAY);
    if (d == D_TOKENS_NOT_STRINGS) {
        put_u32(kv, TR_GGUF_INT32);
        put_u64(kv, (uint64_t)n_tok);
        for (int i = 0; i < n_tok; i++)
            put_u32(kv, (uint32_t)i);
    } else {
        put_u32(kv, TR_GGUF_STRING);
        put_u64(kv, d == D_HUGE_ARRAY ? (uint64_t)1 << 60 : (uint64_t)n_tok);
        for (int i = 0; i < n_tok; i++) {
            if (d == D_TOKEN_NUL && i == 3) {
                put_u64(kv, 3);
                put(kv, "a\0b", 3);
            } else {
                put_str(kv, pieces[i]);
            }
        }
    }
    kv_head(kv, "tokenizer.ggml.scores", TR_GGUF_ARRAY);
    put_u32(kv, TR_GGUF_FLOAT32);
    int n_scores = d == D_SCORES_COUNT ? n_tok - 1 : n_tok;
    put_u64(kv, (uint64_t)n_scores);
    for (int i = 0; i < n_scores; i++) {
        float s = -(float)i;
        put(kv, &s, 4);
    }
    kv_head(kv, "tokenizer.ggml.token_type", TR_GGUF_ARRAY);
    put_u32(kv, TR_GGUF_INT32);
    put_u64(kv, (uint64_t)n_tok);
    for (int i = 0; i < n_tok; i++)
        put_u32(kv, d == D_TOKEN_TYPE && i == 4 ? 9
                    : i == 0                    ? TR_TOKEN_UNKNOWN
                    : i < 3                     ? TR_TOKEN_CONTROL
                                                : TR_TOKEN_NORMAL);
    kv_u32(kv, "tokenizer.ggml.bos_token_id", d == D_BOS_RANGE ? 600 : 1);
    kv_u32(kv, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(kv, "tokenizer.ggml.unknown_token_id", 0);
    *n_kv += 7;
}

/* A tiny valid LLaMA GGUF (dim 8, 1 layer, 2 heads of 4, 1 KV head, ffn 12, 6 tokens) with one defect. */
static uint8_t *make_gguf(enum damage d, size_t *len)
{
    wbuf kv = {0}, out = {0};
    uint64_t n_kv = 0;
    uint32_t alignment = d == D_ALIGN_8 ? 8 : d == D_ALIGN_1 ? 1 : 32;
    kv_str(&kv, "general.architecture", d == D_ARCH_GPT2 ? "gpt2" : d == D_NO_ARCH ? "" : "llama");
    if (d == D_NO_ARCH) { /* rename the key instead of writing an empty value */
        kv.n = 0;
        kv_str(&kv, "general.name", "synthetic");
    }
    n_kv++;
    if (d == D_ALIGN_8 || d == D_ALIGN_1 || d == D_ALIGN_3) {
        kv_u32(&kv, "general.alignment", d == D_ALIGN_3 ? 3 : alignment);
        n_kv++;
    }
    kv_u32(&kv, "llama.context_length", 64);
    kv_u32(&kv, "llama.embedding_length", S_DIM);
    kv_u32(&kv, "llama.feed_forward_length", S_FFN);
    kv_u32(&kv, "llama.attention.head_count", S_HEADS);
    kv_u32(&kv, "llama.attention.head_count_kv", d == D_HEADS_NOT_DIVIDING ? 3 : S_KV);
    kv_u32(&kv, "llama.rope.dimension_count", d == D_ROPE_DIMS ? S_HD / 2 : S_HD);
    kv_f32(&kv, "llama.attention.layer_norm_rms_epsilon", d == D_EPS_NEGATIVE ? -1e-5f : 1e-5f);
    n_kv += 7;
    if (d == D_BLOCK_COUNT_STRING)
        kv_str(&kv, "llama.block_count", "1");
    else if (d != D_NO_BLOCK_COUNT)
        kv_u32(&kv, "llama.block_count", 1);
    n_kv += d != D_NO_BLOCK_COUNT;
    if (d == D_DUP_KEY) {
        kv_u32(&kv, "llama.context_length", 128);
        n_kv++;
    }
    if (d == D_BAD_BOOL) {
        kv_head(&kv, "general.flag", TR_GGUF_BOOL);
        put(&kv, "\x02", 1);
        n_kv++;
    }
    if (d == D_NESTED_ARRAY) {
        kv_head(&kv, "general.nested", TR_GGUF_ARRAY);
        put_u32(&kv, TR_GGUF_ARRAY);
        put_u64(&kv, 1);
        n_kv++;
    }
    if (d == D_BAD_VTYPE) {
        kv_head(&kv, "general.odd", 13);
        put_u32(&kv, 0);
        n_kv++;
    }
    if (d == D_HUGE_STRING_LEN) {
        kv_head(&kv, "general.name", TR_GGUF_STRING);
        put_u64(&kv, (uint64_t)1 << 60);
        n_kv++;
    }
    if (d == D_HUGE_KEY_LEN) {
        put_u64(&kv, (uint64_t)1 << 60);
        n_kv++;
    }
    put_vocab(&kv, d, &n_kv);

    synth_tensor t[16];
    int nt = synth_tensors(d, t);
    put(&out, d == D_MAGIC ? "GGUX" : "GGUF", 4);
    put_u32(&out, d == D_VERSION_1 ? 1 : d == D_VERSION_9 ? 9 : 3);
    put_u64(&out, d == D_HUGE_TENSOR_COUNT ? (uint64_t)1 << 60 : (uint64_t)nt);
    put_u64(&out, d == D_HUGE_KV_COUNT ? (uint64_t)1 << 60 : n_kv);
    put(&out, kv.p, kv.n);
    uint64_t offset = 0, first_offset = 0;
    for (int i = 0; i < nt; i++) {
        put_str(&out, t[i].name);
        put_u32(&out, d == D_NDIMS_0 && i == 0 ? 0 : t[i].n_dims);
        for (uint32_t k = 0; k < t[i].n_dims; k++)
            put_u64(&out, k < 4 ? t[i].ne[k] : 1);
        put_u32(&out, t[i].type);
        uint64_t off = offset;
        if (d == D_OFFSET_MISALIGNED && i == 3)
            off += 4;
        if (d == D_OFFSET_PAST_END && i == 3)
            off = (uint64_t)1 << 40;
        if (d == D_OVERLAP && i == 3)
            off = first_offset;
        put_u64(&out, off);
        uint64_t bytes = t[i].ne[0] * t[i].ne[1] * (t[i].type == TR_GGML_F32 ? 4 : 2);
        if (t[i].type != TR_GGML_F32 && t[i].type != TR_GGML_F16 && t[i].type != TR_GGML_BF16)
            bytes = 64; /* never read: the type is refused first */
        if (t[i].ne[0] > 1000000 || t[i].ne[1] > 1000000)
            bytes = 0;
        if (i == 0)
            first_offset = offset;
        offset += (bytes + alignment - 1) / alignment * alignment;
        if (d == D_ALIGN_1)
            offset += 1; /* leaves most tensors misaligned for their element size */
        if (i == nt - 1)
            offset = off + bytes; /* the file ends exactly where the last tensor ends */
    }
    while (out.n % alignment)
        put(&out, "\0", 1);
    for (uint64_t i = 0; i < offset; i += 2) { /* deterministic data: 0x3c00 (1.0 in f16) patterns */
        uint16_t v = (uint16_t)(0x3c00 + i % 97);
        put(&out, &v, 2);
    }
    free(kv.p);
    *len = out.n;
    return out.p;
}

static void test_gguf_damage(void)
{
    for (int d = 0; d < D_COUNT; d++) {
        size_t len;
        uint8_t *img = make_gguf((enum damage)d, &len);
        char rel[64];
        snprintf(rel, sizeof rel, "synth_%02d.gguf", d);
        const char *path = tmp_path(rel);
        write_file(path, img, len);
        if (damages[d].want == TR_OK) {
            tr_model_file f;
            if (open_ok(damages[d].name, path, &f)) {
                CHECK(f.hp.dim == S_DIM && f.hp.n_layers == 1 && f.hp.n_heads == S_HEADS && f.hp.n_kv_heads == S_KV &&
                          f.hp.head_dim == S_HD && f.hp.ffn_dim == S_FFN && f.hp.n_vocab == S_VOCAB &&
                          f.hp.n_ctx_train == 64,
                      "%s: hparams", damages[d].name);
                CHECK(f.hp.tied_embeddings == (d == D_TIED), "%s: tied %d", damages[d].name, f.hp.tied_embeddings);
                CHECK(f.vocab.n == S_VOCAB && strcmp(f.vocab.pieces[5], "\xe2\x96\x81") == 0 &&
                          f.vocab.scores[4] == -4.0f && f.vocab.types[0] == TR_TOKEN_UNKNOWN,
                      "%s: vocab", damages[d].name);
                const tr_weight *q = tr_model_file_find(&f, "blk.0.attn_q.weight");
                CHECK(q && q->dtype == (d == D_F16_BF16 ? TR_BF16 : TR_F32) && q->ne[0] == S_DIM && q->ne[1] == 8,
                      "%s: attn_q dtype %d", damages[d].name, q ? (int)q->dtype : -1);
                int aligned = 1;
                for (int i = 0; i < f.n_weights; i++)
                    aligned &= (uintptr_t)f.weights[i].data % tr_dtype_size(f.weights[i].dtype) == 0;
                CHECK(aligned, "%s: weight data misaligned", damages[d].name);
                if (d == D_ALIGN_1)
                    CHECK(f.n_heap_copies >= f.n_weights / 2, "alignment 1: %d heap copies", f.n_heap_copies);
                if (d == D_F16_BF16) {
                    const tr_weight *k = tr_model_file_find(&f, "blk.0.attn_k.weight");
                    CHECK(k && k->dtype == TR_F16 && k->nbytes == S_DIM * S_KV * S_HD * 2, "f16 attn_k");
                }
                tr_model_file_close(&f);
            }
        } else {
            expect_fail(damages[d].name, path, path, damages[d].want);
        }
        /* The same bytes parsed from memory give the same verdict. */
        tr_model_file m;
        tr_status s = tr_model_file_from_gguf(img, len, "memory.gguf", &m);
        CHECK((s == TR_OK) == (damages[d].want == TR_OK), "%s from memory: %s", damages[d].name, tr_last_error());
        CHECK(s == TR_OK || strncmp(tr_last_error(), "memory.gguf: ", 13) == 0, "%s: %s", damages[d].name,
              tr_last_error());
        tr_model_file_close(&m);
        /* Every truncation of the valid synthetic file fails, from memory (fast) and cleanly. */
        if (d == D_NONE) {
            int bad = 0;
            for (size_t cut = 0; cut < len; cut++) {
                tr_model_file c;
                tr_status cs = tr_model_file_from_gguf(img, cut, "cut.gguf", &c);
                bad += cs == TR_OK || strchr(tr_last_error(), '\n') || strncmp(tr_last_error(), "cut.gguf: ", 10) != 0;
                tr_model_file_close(&c);
            }
            CHECK(bad == 0, "%d of %zu truncations of the synthetic GGUF misbehaved", bad, len);
        }
        free(img);
    }
}

/* ---- truncations of the real files ---------------------------------------------------------- */

/* Writes data to path, then shrinks it to each cut in turn (largest first: ~300 cuts through the
 * data, then every offset of the header) and opens open_path, which must fail cleanly naming path. */
static void truncations(const char *label, const char *path, const char *open_path, const uint8_t *data,
                        size_t len, size_t header_end)
{
    write_file(path, data, len);
    int bad = 0, tried = 0;
    size_t step = (len - header_end) / 300 + 1;
    for (size_t cut = len - 1;; cut = cut > header_end + step ? cut - step : cut - 1) {
        if (truncate(path, (off_t)cut) != 0)
            return;
        tr_model_file f;
        tr_status s = tr_model_file_open(open_path, &f);
        const char *e = tr_last_error();
        int wrong = s == TR_OK || strchr(e, '\n') || !strstr(e, path) || !weights_empty(&f);
        if (wrong && bad < 3)
            fprintf(stderr, "%s cut at %zu: status %d: %s\n", label, cut, s, e);
        bad += wrong;
        tried++;
        tr_model_file_close(&f);
        if (cut == 0)
            break;
    }
    CHECK(bad == 0, "%s: %d of %d truncations misbehaved", label, bad, tried);
}

/* ---- Hugging Face directories --------------------------------------------------------------- */

static char *stories_config, *stories_st;
static size_t stories_config_len, stories_st_len;

/* A model directory in the temp dir with this config.json (NULL: the real one) and safetensors
 * bytes (NULL: a link to the real file). */
static const char *make_hf_dir(const char *name, const char *config, const void *st, size_t st_len)
{
    const char *dir = tmp_path(name);
    make_dir(dir);
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, config ? config : stories_config, config ? strlen(config) : stories_config_len);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    if (st)
        write_file(p, st, st_len);
    else if (symlink(tr_shared("models/stories260K/hf/model.safetensors"), p) != 0)
        write_file(p, stories_st, stories_st_len);
    return dir;
}

/* Replaces the first `from` in s with `to` (a new heap string). */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    if (!at) {
        fprintf(stderr, "test bug: '%s' not found\n", from);
        exit(1);
    }
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    size_t pre = (size_t)(at - s);
    memcpy(r, s, pre);
    strcpy(r + pre, to);
    strcat(r, at + strlen(from));
    return r;
}

/* The real safetensors file with its JSON header replaced and `extra` bytes appended to the data;
 * hlen_override != 0 writes that header length instead of the true one. */
static uint8_t *rebuild_st_extra(const char *header, uint64_t hlen_override, const void *extra, size_t extra_len,
                                 size_t *len)
{
    uint64_t old_hlen;
    memcpy(&old_hlen, stories_st, 8);
    size_t data_len = stories_st_len - 8 - (size_t)old_hlen, hlen = strlen(header);
    uint8_t *out = malloc(8 + hlen + data_len + extra_len);
    uint64_t h = hlen_override ? hlen_override : hlen;
    memcpy(out, &h, 8);
    memcpy(out + 8, header, hlen);
    memcpy(out + 8 + hlen, stories_st + 8 + old_hlen, data_len);
    if (extra_len)
        memcpy(out + 8 + hlen + data_len, extra, extra_len);
    *len = 8 + hlen + data_len + extra_len;
    return out;
}

static uint8_t *rebuild_st(const char *header, uint64_t hlen_override, size_t *len)
{
    return rebuild_st_extra(header, hlen_override, NULL, 0, len);
}

static void test_safetensors_damage(void)
{
    uint64_t hlen;
    memcpy(&hlen, stories_st, 8);
    char *header = strndup(stories_st + 8, (size_t)hlen);
    const char *dir = make_hf_dir("st_trunc", NULL, stories_st, stories_st_len);
    char st_path[1024];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    truncations("safetensors", st_path, dir, (const uint8_t *)stories_st, stories_st_len, 8 + (size_t)hlen);

    static const struct {
        const char *label, *from, *to;
        tr_status want;
    } edits[] = {
        {"dtype not a string", "\"dtype\":\"F32\"", "\"dtype\":5", TR_ERR_FORMAT},
        {"dtype I32 (needed)", "\"dtype\":\"F32\"", "\"dtype\":\"I32\"", TR_ERR_UNSUPPORTED},
        {"dtype unknown", "\"dtype\":\"F32\"", "\"dtype\":\"Q9\"", TR_ERR_UNSUPPORTED},
        {"shape not an array", "\"shape\":[512,64]", "\"shape\":\"512x64\"", TR_ERR_FORMAT},
        {"shape negative", "\"shape\":[512,64]", "\"shape\":[512,-64]", TR_ERR_FORMAT},
        {"shape fractional", "\"shape\":[512,64]", "\"shape\":[512.5,64]", TR_ERR_FORMAT},
        {"shape of strings", "\"shape\":[512,64]", "\"shape\":[\"512\",64]", TR_ERR_FORMAT},
        {"shape of 5 dims", "\"shape\":[512,64]", "\"shape\":[1,1,1,512,64]", TR_ERR_UNSUPPORTED},
        {"shape vs size", "\"shape\":[512,64]", "\"shape\":[512,63]", TR_ERR_FORMAT},
        {"shape of 3 dims", "\"shape\":[512,64]", "\"shape\":[2,256,64]", TR_ERR_FORMAT},
        {"zero dim", "\"shape\":[512,64]", "\"shape\":[0,64]", TR_ERR_FORMAT},
        {"offsets one number", "\"data_offsets\":[0,131072]", "\"data_offsets\":[0]", TR_ERR_FORMAT},
        {"offsets not array", "\"data_offsets\":[0,131072]", "\"data_offsets\":{}", TR_ERR_FORMAT},
        {"offsets reversed", "\"data_offsets\":[0,131072]", "\"data_offsets\":[131072,0]", TR_ERR_FORMAT},
        {"offsets past end", "\"data_offsets\":[0,131072]", "\"data_offsets\":[99999999,100130271]", TR_ERR_FORMAT},
        {"offsets overlap", "\"data_offsets\":[0,131072]", "\"data_offsets\":[4,131076]", TR_ERR_FORMAT},
        {"offsets huge", "\"data_offsets\":[0,131072]", "\"data_offsets\":[0,1e300]", TR_ERR_FORMAT},
        {"entry not an object", "{\"dtype\":\"F32\",\"shape\":[512,64],\"data_offsets\":[0,131072]}", "7",
         TR_ERR_FORMAT},
        {"missing dtype", "\"dtype\":\"F32\",", "", TR_ERR_FORMAT},
        {"duplicate tensor", "model.layers.0.input_layernorm.weight", "model.embed_tokens.weight", TR_ERR_FORMAT},
        {"metadata not an object", "\"__metadata__\":{\"format\":\"pt\"}", "\"__metadata__\":\"pt\"", TR_ERR_FORMAT},
        {"not JSON", "{\"model.embed", "{model.embed", TR_ERR_FORMAT},
        {"trailing garbage", "\"pt\"}}", "\"pt\"}}xx", TR_ERR_FORMAT},
        {"missing tensor", "model.layers.3.mlp.up_proj.weight", "model.layers.3.mlp.up_proj.other", TR_ERR_FORMAT},
        {"layer beyond config", "model.layers.3.mlp.up_proj.weight", "model.layers.9.mlp.up_proj.weight",
         TR_ERR_FORMAT},
        {"wrong shape for model", "\"shape\":[32,64],", "\"shape\":[64,32],", TR_ERR_FORMAT},
    };
    char label[128];
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *h = replace(header, edits[i].from, edits[i].to);
        size_t len;
        uint8_t *img = rebuild_st(h, 0, &len);
        snprintf(label, sizeof label, "st_edit_%02zu", i);
        dir = make_hf_dir(label, NULL, img, len);
        snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
        snprintf(label, sizeof label, "safetensors: %s", edits[i].label);
        expect_fail(label, dir, st_path, edits[i].want);
        free(img);
        free(h);
    }

    /* An extra tensor of a dtype transit does not use is ignored; a NUL in the header is not. */
    char *h = replace(header, "\"__metadata__\"",
                      "\"position_ids\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[0,0]},\"__metadata__\"");
    size_t len;
    uint8_t *img = rebuild_st(h, 0, &len);
    dir = make_hf_dir("st_extra", NULL, img, len);
    tr_model_file f;
    if (open_ok("safetensors with an extra I64 tensor", dir, &f))
        tr_model_file_close(&f);
    free(img);
    free(h);

    /* tie_word_embeddings is true, but an lm_head present anyway is what the model uses. */
    size_t data_len = stories_st_len - 8 - (size_t)hlen;
    h = replace(header, "\"__metadata__\"",
                "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[512,64],\"data_offsets\":[1040128,1171200]},"
                "\"__metadata__\"");
    CHECK(data_len == 1040128, "stories260K data size %zu", data_len);
    img = rebuild_st_extra(h, 0, stories_st + 8 + hlen, 131072, &len); /* a copy of embed_tokens */
    dir = make_hf_dir("st_lm_head", NULL, img, len);
    if (open_ok("tied config with an lm_head", dir, &f)) {
        const tr_weight *o = tr_model_file_find(&f, "output.weight"), *e = tr_model_file_find(&f, "token_embd.weight");
        CHECK(!f.hp.tied_embeddings && o && e && o->data != e->data && memcmp(o->data, e->data, e->nbytes) == 0,
              "lm_head should be used (tied %d)", f.hp.tied_embeddings);
        tr_model_file_close(&f);
    }
    free(img);
    free(h);

    static const struct {
        const char *label;
        uint64_t hlen;
    } lengths[] = {{"header length 2^63", (uint64_t)1 << 63}, {"header length past end", 0},
                   {"header length 0", 1}, {"header length 200MB", 200000000}};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        img = rebuild_st(header, lengths[i].hlen, &len);
        if (lengths[i].hlen == 0) { /* one past the end of the file */
            uint64_t v = len - 8 + 1;
            memcpy(img, &v, 8);
        }
        if (lengths[i].hlen == 1) {
            uint64_t v = 0;
            memcpy(img, &v, 8);
        }
        snprintf(label, sizeof label, "st_len_%zu", i);
        dir = make_hf_dir(label, NULL, img, len);
        snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
        snprintf(label, sizeof label, "safetensors: %s", lengths[i].label);
        expect_fail(label, dir, st_path, TR_ERR_FORMAT);
        free(img);
    }
    static const char *const whole_headers[] = {"[1, 2]", "\"text\"", "null", "{\"t\": {\"dtype\": \"F32\"}}", ""};
    for (size_t i = 0; i < sizeof whole_headers / sizeof whole_headers[0]; i++) {
        img = rebuild_st(whole_headers[i], 0, &len);
        snprintf(label, sizeof label, "st_whole_%zu", i);
        dir = make_hf_dir(label, NULL, img, len);
        snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
        snprintf(label, sizeof label, "safetensors header: %s", whole_headers[i]);
        expect_fail(label, dir, st_path, TR_ERR_FORMAT);
        free(img);
    }
    img = rebuild_st(header, 0, &len);
    img[8 + 20] = '\0';
    dir = make_hf_dir("st_nul", NULL, img, len);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    expect_fail("safetensors: NUL in header", dir, st_path, TR_ERR_FORMAT);
    free(img);
    free(header);
}

static void test_config_damage(void)
{
    static const struct {
        const char *label, *from, *to;
        tr_status want;
    } edits[] = {
        {"hidden_size string", "\"hidden_size\": 64", "\"hidden_size\": \"64\"", TR_ERR_FORMAT},
        {"hidden_size negative", "\"hidden_size\": 64", "\"hidden_size\": -64", TR_ERR_FORMAT},
        {"hidden_size fractional", "\"hidden_size\": 64", "\"hidden_size\": 64.5", TR_ERR_FORMAT},
        {"hidden_size huge", "\"hidden_size\": 64", "\"hidden_size\": 1e30", TR_ERR_FORMAT},
        {"layers missing", "\"num_hidden_layers\": 5,", "", TR_ERR_FORMAT},
        {"vocab missing", "\"vocab_size\": 512,", "", TR_ERR_FORMAT},
        {"layers null", "\"num_hidden_layers\": 5", "\"num_hidden_layers\": null", TR_ERR_FORMAT},
        {"model_type mistral", "\"model_type\": \"llama\"", "\"model_type\": \"mistral\"", TR_ERR_UNSUPPORTED},
        {"model_type number", "\"model_type\": \"llama\"", "\"model_type\": 7", TR_ERR_FORMAT},
        {"model_type missing", "\"model_type\": \"llama\",", "", TR_ERR_FORMAT},
        {"kv heads 3", "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 3", TR_ERR_FORMAT},
        {"heads 7, no head_dim", "\"num_attention_heads\": 8,\n  \"num_key_value_heads\": 4,\n  \"head_dim\": 8,",
         "\"num_attention_heads\": 7,\n  \"num_key_value_heads\": 7,", TR_ERR_FORMAT},
        {"odd head_dim", "\"head_dim\": 8", "\"head_dim\": 7", TR_ERR_FORMAT},
        {"eps string", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": \"small\"", TR_ERR_FORMAT},
        {"eps zero", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0", TR_ERR_FORMAT},
        {"eps 0 as a float", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e-55", TR_ERR_FORMAT},
        {"theta array", "\"rope_theta\": 10000.0", "\"rope_theta\": [10000]", TR_ERR_FORMAT},
        {"tie string", "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": \"yes\"", TR_ERR_FORMAT},
        {"untied, no lm_head", "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", TR_ERR_FORMAT},
        {"bos out of range", "\"bos_token_id\": 1", "\"bos_token_id\": 512", TR_ERR_FORMAT},
        {"rope_scaling", "\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"linear\"}",
         TR_ERR_UNSUPPORTED},
        {"gelu", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", TR_ERR_UNSUPPORTED},
        {"attention bias", "\"attention_bias\": false", "\"attention_bias\": true", TR_ERR_UNSUPPORTED},
        {"dim vs tensors", "\"hidden_size\": 64", "\"hidden_size\": 32", TR_ERR_FORMAT},
        {"ffn vs tensors", "\"intermediate_size\": 172", "\"intermediate_size\": 171", TR_ERR_FORMAT},
        {"layers vs tensors", "\"num_hidden_layers\": 5", "\"num_hidden_layers\": 6", TR_ERR_FORMAT},
        {"not JSON", "{", "{{", TR_ERR_FORMAT},
    };
    char label[128], cfg_path[1024];
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *cfg = replace(stories_config, edits[i].from, edits[i].to);
        snprintf(label, sizeof label, "cfg_%02zu", i);
        const char *dir = make_hf_dir(label, cfg, NULL, 0);
        /* missing or misshapen tensors name the safetensors file; everything else names config.json */
        int about_tensors = strstr(edits[i].label, "vs tensors") || strstr(edits[i].label, "lm_head");
        snprintf(cfg_path, sizeof cfg_path, "%s/%s", dir, about_tensors ? "model.safetensors" : "config.json");
        snprintf(label, sizeof label, "config: %s", edits[i].label);
        expect_fail(label, dir, cfg_path, edits[i].want);
        free(cfg);
    }
    static const char *const whole_configs[] = {"[1, 2]", "\"llama\"", "", "{}"};
    for (size_t i = 0; i < sizeof whole_configs / sizeof whole_configs[0]; i++) {
        snprintf(label, sizeof label, "cfg_whole_%zu", i);
        const char *dir = make_hf_dir(label, whole_configs[i], NULL, 0);
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
        snprintf(label, sizeof label, "config: %s", whole_configs[i]);
        expect_fail(label, dir, cfg_path, TR_ERR_FORMAT);
    }
    /* tokenizer_config.json: a wrong type is an error; add_bos_token false is honoured. */
    const char *dir = make_hf_dir("tokcfg_bad", NULL, NULL, 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    write_file(p, "{\"add_bos_token\": \"yes\"}", 24);
    expect_fail("tokenizer_config: add_bos string", dir, p, TR_ERR_FORMAT);
    dir = make_hf_dir("tokcfg_false", NULL, NULL, 0);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    write_file(p, "{\"add_bos_token\": false}", 24);
    tr_model_file f;
    if (open_ok("add_bos false", dir, &f)) {
        CHECK(f.add_bos == 0 && f.tokenizer_path[0] == '\0', "add_bos %d, tokenizer '%s'", f.add_bos, f.tokenizer_path);
        tr_model_file_close(&f);
    }
    /* Directories and files that are not models. */
    dir = tmp_path("empty_dir");
    make_dir(dir);
    expect_fail("directory without config", dir, dir, TR_ERR_IO);
    dir = make_hf_dir("no_weights", NULL, NULL, 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    expect_fail("directory without weights", dir, dir, TR_ERR_IO);
    expect_fail("missing file", tmp_path("nonexistent.gguf"), tmp_path("nonexistent.gguf"), TR_ERR_IO);
    write_file(tmp_path("empty.gguf"), "", 0);
    expect_fail("empty file", tmp_path("empty.gguf"), tmp_path("empty.gguf"), TR_ERR_FORMAT);
    if (mkfifo(tmp_path("fifo.gguf"), 0600) == 0)
        expect_fail("fifo", tmp_path("fifo.gguf"), tmp_path("fifo.gguf"), TR_ERR_IO);
    write_file(tmp_path("text.gguf"), "hello\n", 6);
    expect_fail("text file", tmp_path("text.gguf"), tmp_path("text.gguf"), TR_ERR_FORMAT);
}

/* ---- a sharded checkpoint ------------------------------------------------------------------- */

/* Splits the real model.safetensors into two shards; the first shard's header length leaves its data
 * misaligned for f32, which the loader must repair with heap copies. */
static void write_shards(const char *dir, const char *index_text)
{
    uint64_t hlen;
    memcpy(&hlen, stories_st, 8);
    const char *data = stories_st + 8 + hlen;
    cJSON *src = cJSON_ParseWithLength(stories_st + 8, (size_t)hlen);
    cJSON *shard[2] = {cJSON_CreateObject(), cJSON_CreateObject()};
    cJSON *map = cJSON_CreateObject();
    char *blob[2] = {malloc(stories_st_len), malloc(stories_st_len)};
    size_t used[2] = {0, 0};
    int n = 0, total = cJSON_GetArraySize(src) - 1;
    const cJSON *t;
    cJSON_ArrayForEach(t, src)
    {
        if (strcmp(t->string, "__metadata__") == 0)
            continue;
        int s = n++ < total / 2 ? 0 : 1;
        const cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        cJSON *entry = cJSON_Duplicate(t, 1);
        cJSON *no = cJSON_CreateArray();
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)used[s]));
        cJSON_AddItemToArray(no, cJSON_CreateNumber((double)(used[s] + e - b)));
        cJSON_ReplaceItemInObject(entry, "data_offsets", no);
        cJSON_AddItemToObject(shard[s], t->string, entry);
        memcpy(blob[s] + used[s], data + b, e - b);
        used[s] += e - b;
        cJSON_AddStringToObject(map, t->string,
                                s ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors");
    }
    for (int s = 0; s < 2; s++) {
        char *h = cJSON_PrintUnformatted(shard[s]);
        size_t hl = strlen(h), pad = 0;
        while ((8 + hl + pad) % 4 != (s == 0 ? 2u : 0u)) /* spaces are valid JSON padding */
            pad++;
        wbuf out = {0};
        uint64_t v = hl + pad;
        put(&out, &v, 8);
        put(&out, h, hl);
        for (size_t k = 0; k < pad; k++)
            put(&out, " ", 1);
        put(&out, blob[s], used[s]);
        char p[1024];
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
        write_file(p, out.p, out.n);
        free(out.p);
        free(h);
        free(blob[s]);
        cJSON_Delete(shard[s]);
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (index_text) {
        write_file(p, index_text, strlen(index_text));
    } else {
        cJSON *index = cJSON_CreateObject();
        cJSON_AddItemToObject(index, "metadata", cJSON_CreateObject());
        cJSON_AddItemToObject(index, "weight_map", map);
        map = NULL;
        char *text = cJSON_Print(index);
        write_file(p, text, strlen(text));
        free(text);
        cJSON_Delete(index);
    }
    cJSON_Delete(map);
    cJSON_Delete(src);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_file(p, stories_config, stories_config_len);
}

static void test_sharded(void)
{
    const char *dir = tmp_path("sharded");
    make_dir(dir);
    write_shards(dir, NULL);
    tr_model_file sh, one;
    if (!open_ok("sharded", dir, &sh))
        return;
    if (open_ok("single", tr_shared("models/stories260K/hf"), &one)) {
        CHECK(sh.n_weights == one.n_weights && sh.n_maps == 2 && sh.n_heap_copies > 0,
              "sharded: %d weights, %d maps, %d heap copies", sh.n_weights, sh.n_maps, sh.n_heap_copies);
        CHECK(memcmp(&sh.hp, &one.hp, sizeof sh.hp) == 0, "sharded hparams differ");
        int equal = 0;
        for (int i = 0; i < one.n_weights; i++) {
            const tr_weight *a = &one.weights[i], *b = tr_model_file_find(&sh, a->name);
            int eq = b && a->dtype == b->dtype && a->ndim == b->ndim && memcmp(a->ne, b->ne, sizeof a->ne) == 0 &&
                     a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0 &&
                     (uintptr_t)b->data % tr_dtype_size(b->dtype) == 0;
            CHECK(eq, "sharded %s differs or is misaligned", a->name);
            equal += eq;
        }
        CHECK(equal == one.n_weights, "%d of %d sharded weights equal", equal, one.n_weights);
        tr_model_file_close(&one);
    }
    tr_model_file_close(&sh);

    /* Damaged indexes. The first shard holds embed_tokens; point elsewhere or at bad names. */
    static const struct {
        const char *label, *to;
        tr_status want;
    } edits[] = {
        {"index: missing shard", "model-00003-of-00002.safetensors", TR_ERR_IO},
        {"index: shard with ..", "../sharded/model-00001-of-00002.safetensors", TR_ERR_FORMAT},
        {"index: shard with /", "/etc/passwd", TR_ERR_FORMAT},
        {"index: empty shard name", "", TR_ERR_FORMAT},
        {"index: wrong shard", "model-00002-of-00002.safetensors", TR_ERR_FORMAT},
    };
    char idx_path[1024], label[64];
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        snprintf(label, sizeof label, "shard_bad_%zu", i);
        const char *d = tmp_path(label);
        make_dir(d);
        char text[512];
        snprintf(text, sizeof text,
                 "{\"weight_map\": {\"model.embed_tokens.weight\": \"%s\", \"model.norm.weight\": "
                 "\"model-00002-of-00002.safetensors\"}}",
                 edits[i].to);
        write_shards(d, text);
        snprintf(idx_path, sizeof idx_path, "%s/model.safetensors.index.json", d);
        expect_fail(edits[i].label, d, idx_path, edits[i].want);
    }
    static const char *const bad_indexes[] = {
        "{\"weight_map\": []}", "{\"weight_map\": {\"model.norm.weight\": 3}}", "{\"metadata\": {}}",
        "{\"weight_map\": {}}", "not json", "[1, 2]",
    };
    for (size_t i = 0; i < sizeof bad_indexes / sizeof bad_indexes[0]; i++) {
        snprintf(label, sizeof label, "index_bad_%zu", i);
        const char *d = tmp_path(label);
        make_dir(d);
        write_shards(d, bad_indexes[i]);
        snprintf(idx_path, sizeof idx_path, "%s/model.safetensors.index.json", d);
        snprintf(label, sizeof label, "index: %s", bad_indexes[i]);
        expect_fail(label, d, idx_path, TR_ERR_FORMAT);
    }
}

/* ---- cleanup -------------------------------------------------------------------------------- */

static void remove_tree(const char *path)
{
    char cmd[1200];
    if (strncmp(path, "/tmp/transit_loaders_", 21) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/transit_loaders_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    stories_config = tr_read_file(tr_shared("models/stories260K/hf/config.json"), &stories_config_len);
    stories_st = tr_read_file(tr_shared("models/stories260K/hf/model.safetensors"), &stories_st_len);
    size_t gguf_len;
    char *gguf = tr_read_file(tr_shared("models/stories260K/stories260K.gguf"), &gguf_len);
    CHECK(stories_config && stories_st && gguf, "the shared models are missing under %s", tr_shared("models"));
    if (stories_config && stories_st && gguf) {
        test_real_models();
        test_gguf_damage();
        tr_gguf g;
        if (tr_gguf_parse((const uint8_t *)gguf, gguf_len, "stories260K.gguf", &g) == TR_OK) {
            const char *p = tmp_path("trunc.gguf");
            truncations("gguf", p, p, (const uint8_t *)gguf, gguf_len, g.data_offset);
            tr_gguf_free(&g);
        }
        test_safetensors_damage();
        test_config_damage();
        test_sharded();
    }
    free(gguf);
    free(stories_config);
    free(stories_st);
    remove_tree(tmp_dir);
    return tr_test_finish("test_loaders");
}
