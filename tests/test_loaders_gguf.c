/* test_loaders_gguf.c: the GGUF loader and the real checkpoints.
 *
 * 1. The real checkpoints in ../shared/models load with the hyperparameters MODELS.md states, and
 *    the GGUF and Hugging Face copies of stories260K hold the same weights (q/k after undoing HF's
 *    rotate-half row permutation).
 * 2. Damaged GGUF files, written into a mkdtemp directory: truncations at every header offset and
 *    through the data, and one crafted defect per check the loader makes. Each must fail with a
 *    one-line message naming the file, leave the tr_model_file empty, and leak nothing (ASan). */
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
#include "loader_util.h"
#include "model_file.h"
#include "test_util.h"

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
    X(D_QUANT_ROWS, "Q4_0 rows of 8 weights", TR_ERR_FORMAT) \
    X(D_TYPE_IQ2, "type IQ2_XXS", TR_ERR_UNSUPPORTED) \
    X(D_QUANT_TRUNC, "Q8_0 data cut short", TR_ERR_FORMAT) \
    X(D_QUANT_NORM, "a Q8_0 norm", TR_ERR_UNSUPPORTED) \
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
        memcpy(t[4].name, t[3].name, sizeof t[4].name); /* (snprintf from t[3]: a -Wrestrict false alarm) */
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
    if (d == D_QUANT_ROWS)
        t[4].type = 2;
    if (d == D_TYPE_IQ2)
        t[4].type = 16;
    if (d == D_QUANT_TRUNC) { /* 8 rows of one Q8_0 block: 272 bytes, of which the file holds 64 */
        t[n - 1].type = 8;
        t[n - 1].ne[0] = 32;
    }
    if (d == D_QUANT_NORM) { /* a norm of one Q8_0 block: refused for its type, before its length */
        t[1].type = 8;
        t[1].ne[0] = 32;
    }
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

int main(void)
{
    if (!loader_tmp_init()) {
        perror("mkdtemp");
        return 1;
    }
    size_t gguf_len;
    char *gguf = tr_read_file(tr_shared("models/stories260K/stories260K.gguf"), &gguf_len);
    CHECK(gguf != NULL, "the shared models are missing under %s", tr_shared("models"));
    if (gguf) {
        test_real_models();
        test_gguf_damage();
        tr_gguf g;
        if (tr_gguf_parse((const uint8_t *)gguf, gguf_len, "stories260K.gguf", &g) == TR_OK) {
            const char *p = tmp_path("trunc.gguf");
            truncations("gguf", p, p, (const uint8_t *)gguf, gguf_len, g.data_offset);
            tr_gguf_free(&g);
        }
    }
    free(gguf);
    loader_tmp_remove();
    return tr_test_finish("test_loaders_gguf");
}
