/* vocab.c: tr_vocab_spec's memory, and reading a GGUF file's tokenizer.ggml.* metadata into one.
 *
 * Two tokenizer.ggml.model values are accepted: "llama" (SentencePiece) and "gpt2" (byte-level BPE,
 * with tokenizer.ggml.merges and tokenizer.ggml.pre; which `pre` values are supported is the
 * tokenizer's decision, so it is only carried here). Everything the tokenizer will index (ids, types, scores) is
 * range-checked here, so the tokenizer can trust the spec. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "mapped_file.h"
#include "tokenizer_regex.h"
#include "vocab.h"

#define MAX_VOCAB (1 << 24)

void tr_vocab_spec_free(tr_vocab_spec *v)
{
    if (!v)
        return;
    if (v->pieces)
        for (int i = 0; i < v->n; i++)
            free(v->pieces[i]);
    free(v->pieces);
    if (v->merges)
        for (int i = 0; i < v->n_merges; i++)
            free(v->merges[i]);
    free(v->merges);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
    v->bos_id = v->eos_id = v->unk_id = -1;
}

static int is_integer_type(tr_gguf_vtype t)
{
    return t == TR_GGUF_UINT8 || t == TR_GGUF_INT8 || t == TR_GGUF_UINT16 || t == TR_GGUF_INT16 ||
           t == TR_GGUF_UINT32 || t == TR_GGUF_INT32 || t == TR_GGUF_UINT64 || t == TR_GGUF_INT64;
}

/* A special token id: absent, -1 or 0xFFFFFFFF (how converters write "none") give -1; anything
 * else must be a valid index. */
static tr_status read_token_id(const tr_gguf *g, const char *file, const char *key, int n, int *out)
{
    *out = -1;
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, key);
    if (!kv)
        return TR_OK;
    int64_t v;
    if (!tr_gguf_kv_int(kv, &v))
        return tr_fail(TR_ERR_FORMAT, "%s: %s has type %s, expected an integer", file, key,
                       tr_gguf_vtype_name(kv->type));
    if (v == -1 || v == 0xFFFFFFFFll)
        return TR_OK;
    if (v < 0 || v >= n)
        return tr_fail(TR_ERR_FORMAT, "%s: %s is %lld, outside the vocabulary of %d tokens", file, key,
                       (long long)v, n);
    *out = (int)v;
    return TR_OK;
}

static tr_status read_pieces(const tr_gguf_kv *kv, const char *file, tr_vocab_spec *spec)
{
    size_t pos = 0;
    const uint8_t *s;
    uint64_t len;
    for (int i = 0; i < spec->n; i++) {
        if (!tr_gguf_arr_next_string(kv, &pos, &s, &len)) /* cannot happen: the parser counted them */
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.tokens ends after %d strings", file, i);
        if (memchr(s, 0, (size_t)len)) {
            char q[80];
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%d] '%s' contains a NUL byte", file, i,
                           tr_quote(s, (size_t)len, q, sizeof q));
        }
        spec->pieces[i] = malloc((size_t)len + 1);
        if (!spec->pieces[i])
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
        memcpy(spec->pieces[i], s, (size_t)len);
        spec->pieces[i][len] = '\0';
    }
    return TR_OK;
}

static tr_status read_scores(const tr_gguf *g, const char *file, tr_vocab_spec *spec)
{
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, "tokenizer.ggml.scores");
    if (!kv)
        return TR_OK; /* scores stay 0 */
    if (kv->type != TR_GGUF_ARRAY || (kv->arr_type != TR_GGUF_FLOAT32 && kv->arr_type != TR_GGUF_FLOAT64))
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.scores has type %s of %s, expected an array of float32",
                       file, tr_gguf_vtype_name(kv->type),
                       kv->type == TR_GGUF_ARRAY ? tr_gguf_vtype_name(kv->arr_type) : "-");
    if (kv->arr_n != (uint64_t)spec->n)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu entries for %d tokens", file,
                       (unsigned long long)kv->arr_n, spec->n);
    for (int i = 0; i < spec->n; i++) {
        double v = tr_gguf_arr_number(kv, (uint64_t)i);
        if (isnan(v))
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.scores[%d] is NaN", file, i);
        spec->scores[i] = (float)v;
    }
    return TR_OK;
}

static tr_status read_types(const tr_gguf *g, const char *file, tr_vocab_spec *spec)
{
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, "tokenizer.ggml.token_type");
    for (int i = 0; i < spec->n; i++)
        spec->types[i] = TR_TOKEN_NORMAL;
    if (!kv)
        return TR_OK;
    if (kv->type != TR_GGUF_ARRAY || !is_integer_type(kv->arr_type))
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.token_type has type %s of %s, expected an array of int32",
                       file, tr_gguf_vtype_name(kv->type),
                       kv->type == TR_GGUF_ARRAY ? tr_gguf_vtype_name(kv->arr_type) : "-");
    if (kv->arr_n != (uint64_t)spec->n)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %d tokens", file,
                       (unsigned long long)kv->arr_n, spec->n);
    for (int i = 0; i < spec->n; i++) {
        int64_t t = tr_gguf_arr_int(kv, (uint64_t)i);
        if (t < TR_TOKEN_UNDEFINED || t > TR_TOKEN_BYTE)
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.token_type[%d] is %lld, expected 0 to 6", file, i,
                           (long long)t);
        spec->types[i] = (int32_t)t;
    }
    return TR_OK;
}

/* tokenizer.ggml.merges (strings, ranked by position) and tokenizer.ggml.pre of a "gpt2" vocabulary. */
static tr_status read_bpe_extras(const tr_gguf *g, const char *file, tr_vocab_spec *spec)
{
    char q[80];
    const tr_gguf_kv *pre = tr_gguf_find_kv(g, "tokenizer.ggml.pre");
    if (!pre) /* llama.cpp falls back to GPT-2's regex ("default"), which would split Llama 3 text wrongly */
        return tr_fail(TR_ERR_UNSUPPORTED,
                       "%s: a 'gpt2' vocabulary without tokenizer.ggml.pre: pre-tokenizer 'default' is not supported", file);
    if (pre->type != TR_GGUF_STRING)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.pre has type %s, expected a string", file,
                       tr_gguf_vtype_name(pre->type));
    if (pre->str_len >= sizeof spec->pre || memchr(pre->str, 0, (size_t)pre->str_len))
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported", file,
                       tr_quote(pre->str, (size_t)pre->str_len, q, sizeof q));
    memcpy(spec->pre, pre->str, (size_t)pre->str_len);
    spec->pre[pre->str_len] = '\0';
    if (!tr_regex_for_gguf_pre(spec->pre)) /* a different split would give different ids silently */
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported (only llama-bpe)", file,
                       tr_quote(pre->str, (size_t)pre->str_len, q, sizeof q));
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, "tokenizer.ggml.merges");
    if (!kv)
        return tr_fail(TR_ERR_FORMAT, "%s: a 'gpt2' vocabulary without tokenizer.ggml.merges", file);
    if (kv->type != TR_GGUF_ARRAY || kv->arr_type != TR_GGUF_STRING)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.merges has type %s of %s, expected an array of strings", file,
                       tr_gguf_vtype_name(kv->type), kv->type == TR_GGUF_ARRAY ? tr_gguf_vtype_name(kv->arr_type) : "-");
    if (kv->arr_n > MAX_VOCAB)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.merges has %llu entries, at most %d are supported", file,
                       (unsigned long long)kv->arr_n, MAX_VOCAB);
    spec->merges = calloc((size_t)kv->arr_n + 1, sizeof *spec->merges);
    if (!spec->merges)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %llu merges", file, (unsigned long long)kv->arr_n);
    size_t pos = 0;
    const uint8_t *s;
    uint64_t len;
    for (int i = 0; i < (int)kv->arr_n; i++) {
        if (!tr_gguf_arr_next_string(kv, &pos, &s, &len))
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.merges ends after %d strings", file, i);
        if (memchr(s, 0, (size_t)len))
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.merges[%d] contains a NUL byte", file, i);
        if (!(spec->merges[i] = malloc((size_t)len + 1)))
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
        memcpy(spec->merges[i], s, (size_t)len);
        spec->merges[i][len] = '\0';
        spec->n_merges = i + 1;
    }
    return TR_OK;
}

static tr_status read_vocab(const tr_gguf *g, const char *file, const tr_gguf_kv *tokens, tr_vocab_spec *spec)
{
    const tr_gguf_kv *model = tr_gguf_find_kv(g, "tokenizer.ggml.model");
    if (model) {
        char q[80];
        if (model->type != TR_GGUF_STRING)
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.model has type %s, expected a string", file,
                           tr_gguf_vtype_name(model->type));
        if (model->str_len == 4 && memcmp(model->str, "gpt2", 4) == 0)
            spec->model = TR_VOCAB_BPE;
        else if (model->str_len != 5 || memcmp(model->str, "llama", 5) != 0)
            return tr_fail(TR_ERR_UNSUPPORTED,
                           "%s: tokenizer.ggml.model is '%s'; only 'llama' (SentencePiece) and 'gpt2' (byte-level BPE) "
                           "are supported",
                           file, tr_quote(model->str, (size_t)model->str_len, q, sizeof q));
    }
    if (tokens->type != TR_GGUF_ARRAY || tokens->arr_type != TR_GGUF_STRING)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.tokens has type %s of %s, expected an array of strings",
                       file, tr_gguf_vtype_name(tokens->type),
                       tokens->type == TR_GGUF_ARRAY ? tr_gguf_vtype_name(tokens->arr_type) : "-");
    if (tokens->arr_n < 1 || tokens->arr_n > MAX_VOCAB)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries, expected 1 to %d", file,
                       (unsigned long long)tokens->arr_n, MAX_VOCAB);
    spec->n = (int)tokens->arr_n;
    spec->pieces = calloc((size_t)spec->n, sizeof *spec->pieces);
    spec->scores = calloc((size_t)spec->n, sizeof *spec->scores);
    spec->types = calloc((size_t)spec->n, sizeof *spec->types);
    if (!spec->pieces || !spec->scores || !spec->types)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %d tokens", file, spec->n);
    TR_TRY(read_pieces(tokens, file, spec));
    TR_TRY(read_scores(g, file, spec));
    TR_TRY(read_types(g, file, spec));
    TR_TRY(read_token_id(g, file, "tokenizer.ggml.bos_token_id", spec->n, &spec->bos_id));
    TR_TRY(read_token_id(g, file, "tokenizer.ggml.eos_token_id", spec->n, &spec->eos_id));
    TR_TRY(read_token_id(g, file, "tokenizer.ggml.unknown_token_id", spec->n, &spec->unk_id));
    TR_TRY(read_token_id(g, file, "tokenizer.ggml.padding_token_id", spec->n, &spec->pad_id));
    const tr_gguf_kv *prefix = tr_gguf_find_kv(g, "tokenizer.ggml.add_space_prefix");
    if (prefix && prefix->type != TR_GGUF_BOOL)
        return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.add_space_prefix has type %s, expected bool", file,
                       tr_gguf_vtype_name(prefix->type));
    spec->no_space_prefix = prefix && !prefix->num.u;
    spec->add_bos = 1;
    const tr_gguf_kv *add_bos = tr_gguf_find_kv(g, "tokenizer.ggml.add_bos_token");
    if (add_bos) {
        if (add_bos->type != TR_GGUF_BOOL)
            return tr_fail(TR_ERR_FORMAT, "%s: tokenizer.ggml.add_bos_token has type %s, expected bool", file,
                           tr_gguf_vtype_name(add_bos->type));
        spec->add_bos = (int)add_bos->num.u;
    }
    spec->byte_fallback = spec->model == TR_VOCAB_SPM; /* SentencePiece LLaMA vocabularies carry <0xXX> pieces */
    if (spec->model == TR_VOCAB_BPE)
        TR_TRY(read_bpe_extras(g, file, spec));
    return TR_OK;
}

tr_status tr_gguf_read_vocab(const tr_gguf *g, const char *name_for_errors, tr_vocab_spec *spec, int *has_vocab)
{
    memset(spec, 0, sizeof *spec);
    spec->bos_id = spec->eos_id = spec->unk_id = spec->pad_id = -1;
    *has_vocab = 0;
    const tr_gguf_kv *tokens = tr_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!tokens)
        return TR_OK;
    tr_status s = read_vocab(g, name_for_errors, tokens, spec);
    if (s != TR_OK) {
        tr_vocab_spec_free(spec);
        return s;
    }
    *has_vocab = 1;
    return TR_OK;
}
