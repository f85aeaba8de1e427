/* tokenizer_hf.c: reads a Hugging Face tokenizer.json of the LLaMA kind into a tokenizer.
 *
 * Supported: model.type "BPE" with `vocab` {piece: id}, `merges` as "a b" strings or [a, b] pairs
 * (ranked by position), byte_fallback, fuse_unk, unk_token, ignore_merges; added_tokens that are
 * special (<unk>, <s>, </s>); and the text rules of both LLaMA conversions: the legacy normalizer
 * (Prepend("▁") then Replace(" " -> "▁")) with no pre_tokenizer, or no normalizer and a Metaspace
 * pre_tokenizer that does not split (transformers' legacy=false). Anything else (ByteLevel or splitting
 * pre-tokenizers, NFKC, non-special added tokens, subword prefixes, dropout) is rejected with
 * TR_ERR_UNSUPPORTED naming what was found, rather than encoded differently from the library that
 * wrote the file.
 *
 * Special tokens are never matched inside text: "<s>" in a prompt is the three characters, as in
 * SentencePiece and as in `tokenizers` with encode_special_tokens=True. The decoder and post_processor
 * are not read: decoding follows SentencePiece, and add_bos comes from tokenizer_config.json through
 * tr_tokenizer_set_add_bos. Every JSON value used is type-checked; a damaged file is an error. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"

#define MAX_TOKEN_ID (1 << 24)

static const char kSpaceSymbol[] = "\xE2\x96\x81"; /* U+2581 */

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static int absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* Reads an optional boolean; absent or null gives the default. */
tr_status tr_hf_get_bool(const char *name, const cJSON *obj, const char *key, int dflt, int *out)
{
    const cJSON *v = member(obj, key);
    if (absent(v)) {
        *out = dflt;
        return TR_OK;
    }
    if (!cJSON_IsBool(v))
        return tr_fail(TR_ERR_FORMAT, "%s: \"%s\" is not a boolean", name, key);
    *out = cJSON_IsTrue(v);
    return TR_OK;
}

/* A token id: an integral JSON number in [0, MAX_TOKEN_ID). */
tr_status tr_hf_get_id(const char *name, const cJSON *v, const char *what, const char *piece, int *out)
{
    if (!cJSON_IsNumber(v))
        return tr_fail(TR_ERR_FORMAT, "%s: the id of %s '%.40s' is not a number", name, what, piece);
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_TOKEN_ID) || d != floor(d))
        return tr_fail(TR_ERR_FORMAT, "%s: the id %g of %s '%.40s' is out of range", name, d, what, piece);
    *out = (int)d;
    return TR_OK;
}

/* ---- normalizer -------------------------------------------------------------------------------- */

static tr_status parse_one_normalizer(const char *name, const cJSON *n, tr_text_rules *rules)
{
    const cJSON *type = member(n, "type");
    if (!cJSON_IsObject(n) || !cJSON_IsString(type))
        return tr_fail(TR_ERR_FORMAT, "%s: a normalizer has no \"type\" string", name);
    if (strcmp(type->valuestring, "Prepend") == 0) {
        const cJSON *prepend = member(n, "prepend");
        if (!cJSON_IsString(prepend))
            return tr_fail(TR_ERR_FORMAT, "%s: normalizer Prepend has no \"prepend\" string", name);
        if (strcmp(prepend->valuestring, kSpaceSymbol) != 0 || rules->add_dummy_prefix)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: normalizer Prepend('%.20s') is not supported, only one '\u2581'",
                           name, prepend->valuestring);
        rules->add_dummy_prefix = 1;
        return TR_OK;
    }
    if (strcmp(type->valuestring, "Replace") == 0) {
        const cJSON *pattern = member(n, "pattern"), *content = member(n, "content");
        const cJSON *str = cJSON_IsObject(pattern) ? member(pattern, "String") : NULL;
        if (!cJSON_IsObject(pattern) || !cJSON_IsString(content))
            return tr_fail(TR_ERR_FORMAT, "%s: normalizer Replace needs a \"pattern\" object and a \"content\" string",
                           name);
        if (!cJSON_IsString(str) || strcmp(str->valuestring, " ") != 0 ||
            strcmp(content->valuestring, kSpaceSymbol) != 0 || rules->escape_whitespaces)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: normalizer Replace is supported only as ' ' -> '\u2581', once",
                           name);
        rules->escape_whitespaces = 1;
        return TR_OK;
    }
    return tr_fail(TR_ERR_UNSUPPORTED, "%s: normalizer '%.40s' is not supported", name, type->valuestring);
}

static tr_status parse_normalizer(const char *name, const cJSON *n, tr_text_rules *rules)
{
    *rules = (tr_text_rules){0, 0, 0, 0};
    if (absent(n))
        return TR_OK; /* the text is used as it is */
    const cJSON *type = member(n, "type");
    if (!cJSON_IsObject(n) || !cJSON_IsString(type))
        return tr_fail(TR_ERR_FORMAT, "%s: \"normalizer\" is not an object with a \"type\" string", name);
    if (strcmp(type->valuestring, "Sequence") != 0)
        return parse_one_normalizer(name, n, rules);
    const cJSON *list = member(n, "normalizers"), *item;
    if (!cJSON_IsArray(list))
        return tr_fail(TR_ERR_FORMAT, "%s: normalizer Sequence has no \"normalizers\" array", name);
    cJSON_ArrayForEach(item, list) TR_TRY(parse_one_normalizer(name, item, rules));
    return TR_OK;
}

/* The non-legacy LLaMA conversion: no normalizer, and a Metaspace pre-tokenizer that escapes spaces and
 * prepends U+2581 unless the text starts with one, without splitting. Splitting at U+2581 would keep
 * pieces like "▁▁" from forming, so split must be false. */
static tr_status parse_pre_tokenizer(const char *name, const cJSON *pre, const cJSON *normalizer, tr_text_rules *rules)
{
    const cJSON *type = member(pre, "type");
    if (!cJSON_IsObject(pre) || !cJSON_IsString(type))
        return tr_fail(TR_ERR_FORMAT, "%s: \"pre_tokenizer\" is not an object with a \"type\" string", name);
    if (strcmp(type->valuestring, "Metaspace") != 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer '%.40s' is not supported", name, type->valuestring);
    if (!absent(normalizer))
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Metaspace after a normalizer is not supported", name);
    const cJSON *replacement = member(pre, "replacement"), *scheme = member(pre, "prepend_scheme");
    int split, add_prefix_space;
    if (!cJSON_IsString(replacement) || strcmp(replacement->valuestring, kSpaceSymbol) != 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Metaspace is supported only with replacement '\u2581'",
                       name);
    TR_TRY(tr_hf_get_bool(name, pre, "split", 1, &split));
    if (split)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Metaspace with split=true is not supported", name);
    TR_TRY(tr_hf_get_bool(name, pre, "add_prefix_space", 1, &add_prefix_space)); /* before prepend_scheme existed */
    if (!absent(scheme)) {
        if (!cJSON_IsString(scheme))
            return tr_fail(TR_ERR_FORMAT, "%s: Metaspace prepend_scheme is not a string", name);
        if (strcmp(scheme->valuestring, "always") == 0 || strcmp(scheme->valuestring, "first") == 0)
            add_prefix_space = 1; /* "first" = of the whole text, which is one section here */
        else if (strcmp(scheme->valuestring, "never") == 0)
            add_prefix_space = 0;
        else
            return tr_fail(TR_ERR_FORMAT, "%s: Metaspace prepend_scheme '%.20s' is unknown", name, scheme->valuestring);
    }
    *rules = (tr_text_rules){.add_dummy_prefix = add_prefix_space, .escape_whitespaces = 1, .prefix_unless_space = 1};
    return TR_OK;
}

/* ---- model ------------------------------------------------------------------------------------- */

/* Checks the BPE options this reader does not implement. */
static tr_status check_model_options(const char *name, const cJSON *model)
{
    const cJSON *v = member(model, "type");
    if (v && !cJSON_IsString(v))
        return tr_fail(TR_ERR_FORMAT, "%s: model.type is not a string", name);
    if (v && strcmp(v->valuestring, "BPE") != 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: model type '%.40s' is not supported, only BPE", name, v->valuestring);
    v = member(model, "dropout");
    if (!absent(v) && !cJSON_IsNumber(v))
        return tr_fail(TR_ERR_FORMAT, "%s: model.dropout is not a number", name);
    if (!absent(v) && v->valuedouble != 0.0)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: BPE dropout %g is not supported", name, v->valuedouble);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = member(model, affixes[i]);
        if (!absent(v) && !cJSON_IsString(v))
            return tr_fail(TR_ERR_FORMAT, "%s: model.%s is not a string", name, affixes[i]);
        if (!absent(v) && v->valuestring[0])
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: model.%s '%.20s' is not supported", name, affixes[i],
                           v->valuestring);
    }
    return TR_OK;
}

/* Places every piece of `vocab` and `added_tokens` at its id; ids must be unique and leave no gap. */
static tr_status collect_pieces(const char *name, const cJSON *vocab, const cJSON *added, const char *unk_token,
                                tr_vocab_spec *spec)
{
    const cJSON *item;
    int n = 0, id = 0, entries = 0;
    cJSON_ArrayForEach(item, vocab)
    {
        TR_TRY(tr_hf_get_id(name, item, "piece", item->string, &id));
        n = id + 1 > n ? id + 1 : n;
        entries++;
    }
    cJSON_ArrayForEach(item, added)
    {
        const cJSON *content = member(item, "content"), *special = member(item, "special");
        if (!cJSON_IsObject(item) || !cJSON_IsString(content))
            return tr_fail(TR_ERR_FORMAT, "%s: an added token has no \"content\" string", name);
        if (!absent(special) && !cJSON_IsBool(special))
            return tr_fail(TR_ERR_FORMAT, "%s: \"special\" of added token '%.40s' is not a boolean", name,
                           content->valuestring);
        if (!cJSON_IsTrue(special))
            return tr_fail(TR_ERR_UNSUPPORTED,
                           "%s: added token '%.40s' is not special; splitting text on added tokens is not supported",
                           name, content->valuestring);
        TR_TRY(tr_hf_get_id(name, member(item, "id"), "added token", content->valuestring, &id));
        n = id + 1 > n ? id + 1 : n;
        entries++;
    }
    if (n == 0)
        return tr_fail(TR_ERR_FORMAT, "%s: model.vocab is empty", name);
    /* Checked before allocating, so that one large id in a small file cannot claim gigabytes. */
    if (n > entries)
        return tr_fail(TR_ERR_FORMAT, "%s: ids run to %d but there are only %d pieces", name, n - 1, entries);

    spec->n = n;
    spec->pieces = calloc((size_t)n, sizeof *spec->pieces);
    spec->scores = calloc((size_t)n, sizeof *spec->scores);
    spec->types = calloc((size_t)n, sizeof *spec->types);
    if (!spec->pieces || !spec->scores || !spec->types)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %d pieces", name, n);
    cJSON_ArrayForEach(item, vocab)
    {
        tr_hf_get_id(name, item, "piece", item->string, &id); /* checked above */
        if (spec->pieces[id])
            return tr_fail(TR_ERR_FORMAT, "%s: id %d is given to both '%.40s' and '%.40s'", name, id,
                           spec->pieces[id], item->string);
        spec->pieces[id] = strdup(item->string);
        if (!spec->pieces[id])
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
        spec->types[id] = tr_byte_piece_value(item->string, strlen(item->string)) >= 0 ? TR_TOKEN_BYTE
                                                                                       : TR_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(item, added)
    {
        const char *content = member(item, "content")->valuestring;
        tr_hf_get_id(name, member(item, "id"), "added token", content, &id);
        if (spec->pieces[id] && strcmp(spec->pieces[id], content) != 0)
            return tr_fail(TR_ERR_FORMAT, "%s: added token '%.40s' has id %d, which is '%.40s' in the vocabulary",
                           name, content, id, spec->pieces[id]);
        if (!spec->pieces[id] && !(spec->pieces[id] = strdup(content)))
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
        spec->types[id] = unk_token && strcmp(content, unk_token) == 0 ? TR_TOKEN_UNKNOWN : TR_TOKEN_CONTROL;
    }
    for (int i = 0; i < n; i++)
        if (!spec->pieces[i])
            return tr_fail(TR_ERR_FORMAT, "%s: no piece has id %d (ids run to %d)", name, i, n - 1);
    return TR_OK;
}

/* Id of a piece given by name in the spec (linear scan: used for a handful of special tokens). */
static int find_piece(const tr_vocab_spec *spec, const char *piece)
{
    for (int i = 0; i < spec->n; i++)
        if (strcmp(spec->pieces[i], piece) == 0)
            return i;
    return -1;
}

/* Splits merge rank i ("a b" or ["a", "b"]) into its two pieces. */
static tr_status merge_parts(const char *name, const cJSON *m, int i, const char **a, size_t *alen,
                             const char **b, size_t *blen)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *space = strchr(s, ' ');
        if (!space)
            return tr_fail(TR_ERR_FORMAT, "%s: merge %d '%.40s' is not two pieces separated by a space", name, i, s);
        *a = s;
        *alen = (size_t)(space - s);
        *b = space + 1;
        *blen = strlen(space + 1);
        return TR_OK;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
        cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        *a = cJSON_GetArrayItem(m, 0)->valuestring;
        *b = cJSON_GetArrayItem(m, 1)->valuestring;
        *alen = strlen(*a);
        *blen = strlen(*b);
        return TR_OK;
    }
    return tr_fail(TR_ERR_FORMAT, "%s: merge %d is neither a string nor a pair of strings", name, i);
}

static tr_status add_merges(const char *name, const cJSON *merges, tr_tokenizer *t)
{
    TR_TRY(tr_tokenizer_reserve_merges(t, (size_t)cJSON_GetArraySize(merges), name));
    char *joined = NULL;
    size_t joined_cap = 0;
    tr_status s = TR_OK;
    int rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if ((s = merge_parts(name, m, rank, &a, &alen, &b, &blen)) != TR_OK)
            break;
        int32_t left = tr_piece_map_find(t, &t->normal, a, alen);
        int32_t right = tr_piece_map_find(t, &t->normal, b, blen);
        if (left < 0 || right < 0) {
            const char *missing = left < 0 ? a : b;
            int missing_len = (int)(left < 0 ? alen : blen);
            s = tr_fail(TR_ERR_FORMAT, "%s: merge %d names '%.*s', which is not in the vocabulary", name, rank,
                        missing_len < 40 ? missing_len : 40, missing);
            break;
        }
        if (alen + blen > joined_cap) {
            char *grown = realloc(joined, alen + blen);
            if (!grown) {
                s = tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
                break;
            }
            joined = grown;
            joined_cap = alen + blen;
        }
        memcpy(joined, a, alen);
        memcpy(joined + alen, b, blen);
        int32_t result = tr_piece_map_find(t, &t->normal, joined, alen + blen);
        if (result < 0) {
            s = tr_fail(TR_ERR_FORMAT, "%s: merge %d makes '%.*s%.*s', which is not in the vocabulary", name, rank,
                        (int)(alen < 40 ? alen : 40), a, (int)(blen < 40 ? blen : 40), b);
            break;
        }
        tr_tokenizer_add_merge(t, left, right, rank, result);
        rank++;
    }
    free(joined);
    return s;
}

static tr_status parse_root(const char *name, const cJSON *root, tr_tokenizer **out)
{
    if (!cJSON_IsObject(root))
        return tr_fail(TR_ERR_FORMAT, "%s: the top level is not a JSON object", name);
    const cJSON *model = member(root, "model");
    if (!model)
        return tr_fail(TR_ERR_FORMAT, "%s: there is no \"model\"", name);
    if (!cJSON_IsObject(model))
        return tr_fail(TR_ERR_FORMAT, "%s: \"model\" is not an object", name);
    TR_TRY(check_model_options(name, model));
    if (tr_hf_json_is_byte_level(root))
        return tr_bpe_parse_hf_root(name, root, out);
    const cJSON *vocab = member(model, "vocab"), *merges = member(model, "merges");
    if (!cJSON_IsObject(vocab))
        return tr_fail(TR_ERR_FORMAT, "%s: model.vocab is %s", name, vocab ? "not an object" : "missing");
    if (!cJSON_IsArray(merges))
        return tr_fail(TR_ERR_FORMAT, "%s: model.merges is %s", name, merges ? "not an array" : "missing");
    const cJSON *added = member(root, "added_tokens");
    if (!absent(added) && !cJSON_IsArray(added))
        return tr_fail(TR_ERR_FORMAT, "%s: \"added_tokens\" is not an array", name);
    const cJSON *unk = member(model, "unk_token");
    if (!absent(unk) && !cJSON_IsString(unk))
        return tr_fail(TR_ERR_FORMAT, "%s: model.unk_token is not a string", name);
    const char *unk_token = absent(unk) ? NULL : unk->valuestring;
    int byte_fallback = 0, fuse_unk = 0, ignore_merges = 0;
    TR_TRY(tr_hf_get_bool(name, model, "byte_fallback", 0, &byte_fallback));
    TR_TRY(tr_hf_get_bool(name, model, "fuse_unk", 0, &fuse_unk));
    TR_TRY(tr_hf_get_bool(name, model, "ignore_merges", 0, &ignore_merges));
    tr_text_rules rules;
    const cJSON *pre = member(root, "pre_tokenizer"), *normalizer = member(root, "normalizer");
    if (absent(pre))
        TR_TRY(parse_normalizer(name, normalizer, &rules));
    else
        TR_TRY(parse_pre_tokenizer(name, pre, normalizer, &rules));

    tr_vocab_spec spec = {0};
    tr_status s = collect_pieces(name, vocab, absent(added) ? NULL : added, unk_token, &spec);
    if (s == TR_OK) {
        spec.unk_id = unk_token ? find_piece(&spec, unk_token) : -1;
        if (unk_token && spec.unk_id < 0)
            s = tr_fail(TR_ERR_FORMAT, "%s: unk_token '%.40s' is not in the vocabulary", name, unk_token);
    }
    if (s == TR_OK) {
        spec.bos_id = find_piece(&spec, "<s>");
        spec.eos_id = find_piece(&spec, "</s>");
        spec.add_bos = spec.bos_id >= 0;
        spec.byte_fallback = byte_fallback;
        s = tr_tokenizer_build(&spec, &rules, TR_MERGE_BY_RANK, name, out);
    }
    tr_vocab_spec_free(&spec);
    if (s != TR_OK)
        return s;
    (*out)->fuse_unk = fuse_unk;
    (*out)->ignore_merges = ignore_merges;
    s = add_merges(name, merges, *out);
    if (s != TR_OK) {
        tr_tokenizer_free(*out);
        *out = NULL;
    }
    return s;
}

tr_status tr_tokenizer_parse_hf_json(const char *text, size_t len, const char *name, tr_tokenizer **out)
{
    if (!out)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_parse_hf_json: out is NULL");
    *out = NULL;
    if (!text)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_parse_hf_json: text is NULL");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return tr_fail(TR_ERR_FORMAT, "%s: not valid JSON (error near byte %zu)", name, at);
    }
    tr_status s = parse_root(name, root, out);
    cJSON_Delete(root);
    return s;
}

tr_status tr_tokenizer_load_hf_json(const char *path, tr_tokenizer **out)
{
    if (!path || !out)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_load_hf_json: path or out is NULL");
    *out = NULL;
    uint8_t *data;
    size_t size;
    TR_TRY(tr_tokenizer_read_file(path, &data, &size));
    tr_status s = tr_tokenizer_parse_hf_json((const char *)data, size, path, out);
    free(data);
    return s;
}
