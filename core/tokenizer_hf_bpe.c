/* tokenizer_hf_bpe.c: a Hugging Face tokenizer.json of the byte-level kind (GPT-2, Llama 3) into a
 * byte-level BPE.
 *
 * Supported: model BPE (no byte_fallback, dropout or affixes: tokenizer_hf.c checks those), vocab
 * pieces in GPT-2's byte-level alphabet, merges as "a b" strings or [a, b] pairs ranked by position,
 * ignore_merges; pre_tokenizer Sequence[Split(Regex, behavior Isolated, invert false), ByteLevel(
 * add_prefix_space false, use_regex false)] (Llama 3), or ByteLevel(add_prefix_space false) alone,
 * whose use_regex means GPT-2's regex. added_tokens are matched in the text before pre-tokenization,
 * leftmost-longest, as `tokenizers` does; lstrip / rstrip / single_word, a normalizer, a String split
 * pattern or any other pre-tokenizer are refused with TR_ERR_UNSUPPORTED, never approximated. The
 * decoder is not read: byte-level decoding gives back the bytes. */
#include <cJSON.h>
#include <string.h>

#include "error.h"
#include "tokenizer_bpe.h"
#include "tokenizer_internal.h"
#include "tokenizer_regex.h"

static const cJSON *member(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }
static int absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

static int has_type(const cJSON *obj, const char *type)
{
    const cJSON *t = member(obj, "type");
    return cJSON_IsObject(obj) && cJSON_IsString(t) && strcmp(t->valuestring, type) == 0;
}

int tr_hf_json_is_byte_level(const cJSON *root)
{
    const cJSON *pre = member(root, "pre_tokenizer");
    if (has_type(pre, "ByteLevel") || has_type(pre, "Split"))
        return 1;
    const cJSON *seq = has_type(pre, "Sequence") ? member(pre, "pretokenizers") : NULL, *p;
    cJSON_ArrayForEach(p, seq) if (has_type(p, "ByteLevel") || has_type(p, "Split")) return 1;
    return 0;
}

/* The regex the pre-tokenizer splits with: Split's own pattern, or GPT-2's for ByteLevel(use_regex). */
static tr_status parse_pre_tokenizer(const char *name, const cJSON *pre, const char **pattern)
{
    const cJSON *parts[2] = {pre, NULL}, *split = NULL, *byte_level = NULL;
    int n = 1;
    if (has_type(pre, "Sequence")) {
        const cJSON *seq = member(pre, "pretokenizers");
        n = cJSON_GetArraySize(seq);
        if (!cJSON_IsArray(seq) || n < 1 || n > 2)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: a pre_tokenizer Sequence of %d parts is not supported "
                           "(only [Split, ByteLevel] or [ByteLevel])", name, cJSON_IsArray(seq) ? n : -1);
        parts[0] = cJSON_GetArrayItem(seq, 0);
        parts[1] = n > 1 ? cJSON_GetArrayItem(seq, 1) : NULL;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *t = member(parts[i], "type");
        if (has_type(parts[i], "Split") && !split && !byte_level)
            split = parts[i];
        else if (has_type(parts[i], "ByteLevel") && !byte_level)
            byte_level = parts[i];
        else
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer '%.40s' is not supported here (only Split then ByteLevel)",
                           name, cJSON_IsString(t) ? t->valuestring : "?");
    }
    int add_prefix_space = 0, use_regex = 1, invert = 0;
    if (byte_level) {
        TR_TRY(tr_hf_get_bool(name, byte_level, "add_prefix_space", 1, &add_prefix_space));
        TR_TRY(tr_hf_get_bool(name, byte_level, "use_regex", 1, &use_regex));
        if (add_prefix_space)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer ByteLevel with add_prefix_space=true is not supported", name);
    }
    if (!split) {
        if (!byte_level || !use_regex)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: a byte-level pre_tokenizer with no regex is not supported", name);
        *pattern = tr_regex_gpt2;
        return TR_OK;
    }
    if (!byte_level)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Split without ByteLevel is not supported", name);
    if (use_regex)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Split followed by ByteLevel(use_regex=true) is not supported",
                       name);
    const cJSON *pat = member(split, "pattern"), *behavior = member(split, "behavior");
    const cJSON *regex = cJSON_IsObject(pat) ? member(pat, "Regex") : NULL;
    if (!cJSON_IsString(regex))
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Split is supported only with a \"Regex\" pattern", name);
    if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated") != 0)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Split is supported only with behavior \"Isolated\"", name);
    TR_TRY(tr_hf_get_bool(name, split, "invert", 0, &invert));
    if (invert)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre_tokenizer Split with invert=true is not supported", name);
    *pattern = regex->valuestring;
    return TR_OK;
}

/* The vocabulary size: one past the largest id of model.vocab and added_tokens. */
static tr_status count_ids(const char *name, const cJSON *vocab, const cJSON *added, int *n)
{
    int max = -1, id;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        TR_TRY(tr_hf_get_id(name, v, "piece", v->string, &id));
        max = id > max ? id : max;
    }
    cJSON_ArrayForEach(v, added) {
        const cJSON *content = member(v, "content");
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return tr_fail(TR_ERR_FORMAT, "%s: an added token has no \"content\" string", name);
        TR_TRY(tr_hf_get_id(name, member(v, "id"), "added token", content->valuestring, &id));
        max = id > max ? id : max;
    }
    *n = max + 1;
    return TR_OK;
}

static tr_status add_tokens(const char *name, const cJSON *vocab, const cJSON *added, tr_bpe *b)
{
    static const char *const unsupported[] = {"lstrip", "rstrip", "single_word"};
    const cJSON *v;
    cJSON_ArrayForEach(v, added) { /* first, so that an added token wins over a vocab piece with its id */
        const cJSON *content = member(v, "content");
        int id, flag;
        TR_TRY(tr_hf_get_id(name, member(v, "id"), "added token", content->valuestring, &id));
        for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
            TR_TRY(tr_hf_get_bool(name, v, unsupported[i], 0, &flag));
            if (flag)
                return tr_fail(TR_ERR_UNSUPPORTED, "%s: added token '%.40s' with %s=true is not supported", name,
                               content->valuestring, unsupported[i]);
        }
        TR_TRY(tr_bpe_set_token(b, id, (const uint8_t *)content->valuestring, strlen(content->valuestring), 1, name));
    }
    cJSON_ArrayForEach(v, vocab) {
        int id;
        TR_TRY(tr_hf_get_id(name, v, "piece", v->string, &id));
        if (!tr_bpe_has_token(b, id)) /* else an added token took the id */
            TR_TRY(tr_bpe_set_piece(b, id, v->string, strlen(v->string), 0, name));
    }
    return TR_OK;
}

static tr_status add_merges(const char *name, const cJSON *merges, tr_bpe *b)
{
    int rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(m)) { /* "a b": pieces never contain ' ' in byte-level form (it is U+0120) */
            l = m->valuestring;
            const char *sp = strchr(l, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return tr_fail(TR_ERR_FORMAT, "%s: merge %d '%.40s' is not two pieces separated by one space", name,
                               rank, l);
            ll = (size_t)(sp - l);
            r = sp + 1;
            rl = strlen(r);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            l = cJSON_GetArrayItem(m, 0)->valuestring;
            r = cJSON_GetArrayItem(m, 1)->valuestring;
            ll = strlen(l);
            rl = strlen(r);
        } else {
            return tr_fail(TR_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", name, rank);
        }
        TR_TRY(tr_bpe_add_merge_text(b, l, ll, r, rl, rank, name));
        rank++;
    }
    return TR_OK;
}

static tr_status build(const char *name, const cJSON *root, tr_bpe *b, int *ignore_merges)
{
    const cJSON *model = member(root, "model"), *added = member(root, "added_tokens");
    const char *pattern = NULL;
    TR_TRY(parse_pre_tokenizer(name, member(root, "pre_tokenizer"), &pattern));
    TR_TRY(add_tokens(name, member(model, "vocab"), absent(added) ? NULL : added, b));
    TR_TRY(tr_bpe_seal(b, name));
    TR_TRY(add_merges(name, member(model, "merges"), b));
    TR_TRY(tr_hf_get_bool(name, model, "ignore_merges", 0, ignore_merges));
    return tr_bpe_set_regex(b, pattern, strlen(pattern), *ignore_merges, name);
}

tr_status tr_bpe_parse_hf_root(const char *name, const cJSON *root, tr_tokenizer **out)
{
    *out = NULL;
    const cJSON *model = member(root, "model"), *added = member(root, "added_tokens");
    const cJSON *vocab = member(model, "vocab"), *merges = member(model, "merges");
    if (!cJSON_IsObject(vocab))
        return tr_fail(TR_ERR_FORMAT, "%s: model.vocab is %s", name, vocab ? "not an object" : "missing");
    if (!cJSON_IsArray(merges))
        return tr_fail(TR_ERR_FORMAT, "%s: model.merges is %s", name, merges ? "not an array" : "missing");
    if (!absent(added) && !cJSON_IsArray(added))
        return tr_fail(TR_ERR_FORMAT, "%s: \"added_tokens\" is not an array", name);
    if (!absent(member(root, "normalizer")))
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: a normalizer before a byte-level pre_tokenizer is not supported", name);
    int byte_fallback = 0, n = 0, ignore_merges = 0;
    TR_TRY(tr_hf_get_bool(name, model, "byte_fallback", 0, &byte_fallback));
    if (byte_fallback)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: byte_fallback with a byte-level pre_tokenizer is not supported", name);
    TR_TRY(count_ids(name, vocab, absent(added) ? NULL : added, &n));
    tr_bpe *b;
    TR_TRY(tr_bpe_create(n, name, &b));
    tr_status s = build(name, root, b, &ignore_merges);
    if (s != TR_OK) {
        tr_bpe_free(b);
        return s;
    }
    return tr_tokenizer_from_bpe(b, -1, -1, 1, name, out);
}
