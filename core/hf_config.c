/* hf_config.c: Hugging Face config.json and tokenizer_config.json for LLaMA checkpoints, and the
 * JSON helpers the loaders share.
 *
 * Every key's JSON type is checked and every value bounded before it becomes a hyperparameter:
 * later stages size buffers from these numbers. Keys that change the model's math in ways transit
 * does not implement (other RoPE scaling types, biases, another activation) are refused rather than ignored, so a
 * checkpoint either runs correctly or fails with a clear reason. */
#include "hf_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mapped_file.h"

#define MAX_HPARAM ((1 << 24) - 1) /* no LLaMA dimension comes near this; it keeps products in range */

const char *tr_json_type_name(const cJSON *j)
{
    if (!j)
        return "nothing";
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsBool(j))
        return "bool";
    if (cJSON_IsNumber(j))
        return "number";
    if (cJSON_IsString(j))
        return "string";
    if (cJSON_IsArray(j))
        return "array";
    if (cJSON_IsObject(j))
        return "object";
    return "invalid";
}

tr_status tr_json_parse(const char *text, size_t len, const char *path, cJSON **out)
{
    *out = NULL;
    const char *nul = memchr(text, 0, len);
    if (nul)
        return tr_fail(TR_ERR_FORMAT, "%s: JSON contains a NUL byte at offset %zu", path, (size_t)(nul - text));
    /* cJSON wants a terminated string; a private copy also keeps it from reading past the input. */
    char *buf = malloc(len + 1);
    if (!buf)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %zu bytes of JSON", path, len);
    memcpy(buf, text, len);
    buf[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 0);
    tr_status s = TR_OK;
    if (!root) {
        size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        s = tr_fail(TR_ERR_FORMAT, "%s: invalid JSON (syntax error near byte %zu of %zu)", path, at, len);
    } else {
        size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : len;
        for (size_t i = at; i < len; i++)
            if (!strchr(" \t\r\n", buf[i])) {
                s = tr_fail(TR_ERR_FORMAT, "%s: unexpected data after the JSON value at byte %zu", path, i);
                break;
            }
    }
    free(buf);
    if (s != TR_OK) {
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return TR_OK;
}

/* ---- typed getters: absent or null means "use the default" unless the key is required -------- */

static int json_integer(const cJSON *j, int64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(fabs(d) <= 9007199254740992.0) || d != floor(d))
        return 0;
    *out = (int64_t)d;
    return 1;
}

static tr_status get_int(const cJSON *root, const char *path, const char *key, int required, int64_t dflt,
                         int64_t lo, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || (cJSON_IsNull(j) && !required)) {
        if (required)
            return tr_fail(TR_ERR_FORMAT, "%s: '%s' is missing", path, key);
        *out = (int)dflt;
        return TR_OK;
    }
    int64_t v;
    const char *kind = lo > 0 ? "a positive integer" : "a non-negative integer";
    if (!cJSON_IsNumber(j))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' must be %s, got %s", path, key, kind, tr_json_type_name(j));
    if (!json_integer(j, &v) || v < lo || v > MAX_HPARAM)
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' must be %s up to %d, got %g", path, key, kind, MAX_HPARAM,
                       j->valuedouble);
    *out = (int)v;
    return TR_OK;
}

static tr_status get_float(const cJSON *root, const char *path, const char *key, double dflt, double lo, double hi,
                           float *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = (float)dflt;
        return TR_OK;
    }
    if (!cJSON_IsNumber(j))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' must be a number, got %s", path, key, tr_json_type_name(j));
    double v = j->valuedouble;
    if (!(v > lo && v < hi && (float)v > (float)lo)) /* the float must stay in range too: 1e-55 is 0.0f */
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' is %g, expected a number between %g and %g", path, key, v, lo, hi);
    *out = (float)v;
    return TR_OK;
}

static tr_status get_bool(const cJSON *root, const char *path, const char *key, int dflt, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = dflt;
        return TR_OK;
    }
    if (!cJSON_IsBool(j))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' must be true or false, got %s", path, key, tr_json_type_name(j));
    *out = cJSON_IsTrue(j);
    return TR_OK;
}

/* bos_token_id / eos_token_id: an id, null, or a list of ids (newer configs; the first one counts). */
static tr_status get_token_id(const cJSON *root, const char *path, const char *key, int n_vocab, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!j || cJSON_IsNull(j))
        return TR_OK;
    if (cJSON_IsArray(j)) {
        if (cJSON_GetArraySize(j) == 0)
            return TR_OK;
        j = cJSON_GetArrayItem(j, 0);
    }
    int64_t v;
    if (!cJSON_IsNumber(j))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' must be a token id, got %s", path, key, tr_json_type_name(j));
    if (!json_integer(j, &v) || v < 0 || v >= n_vocab)
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' is %g, outside the vocabulary of %d tokens", path, key,
                       j->valuedouble, n_vocab);
    *out = (int)v;
    return TR_OK;
}

/* Every id of eos_token_id (an id or a list) into hp's end-of-generation set. */
static tr_status add_eos_ids(const cJSON *root, const char *path, tr_hparams *hp)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (!j || cJSON_IsNull(j))
        return TR_OK;
    int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, i) : j;
        int64_t v;
        if (!cJSON_IsNumber(e) || !json_integer(e, &v) || v < 0 || v >= hp->n_vocab)
            return tr_fail(TR_ERR_FORMAT, "%s: 'eos_token_id' must be token ids below %d", path, hp->n_vocab);
        tr_hparams_add_eog(hp, (int)v);
    }
    return TR_OK;
}

tr_status tr_hf_eos_ids_parse(const char *text, size_t len, const char *path, tr_hparams *hp)
{
    cJSON *root;
    TR_TRY(tr_json_parse(text, len, path, &root));
    tr_status s = cJSON_IsObject(root) ? add_eos_ids(root, path, hp)
                                       : tr_fail(TR_ERR_FORMAT, "%s: must be a JSON object, got %s", path,
                                                 tr_json_type_name(root));
    cJSON_Delete(root);
    return s;
}

/* ---- config.json ---------------------------------------------------------------------------- */

/* Settings of LlamaConfig that would change the computation in ways transit does not implement. */
static tr_status check_unsupported_features(const cJSON *root, const char *path)
{
    static const char *const bias_keys[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        int on = 0;
        TR_TRY(get_bool(root, path, bias_keys[i], 0, &on));
        if (on)
            return tr_fail(TR_ERR_UNSUPPORTED, "%s: '%s' is true; biases are not supported", path, bias_keys[i]);
    }
    return TR_OK;
}

/* A number inside rope_scaling (or rope_parameters), lo < v < hi. */
static tr_status scaling_number(const cJSON *obj, const char *path, const char *where, const char *key, double lo,
                                double hi, float *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' has no '%s'", path, where, key);
    if (!cJSON_IsNumber(j) || !(j->valuedouble > lo && j->valuedouble < hi))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s.%s' must be a number between %g and %g", path, where, key, lo, hi);
    *out = (float)j->valuedouble;
    return TR_OK;
}

/* RoPE scaling (design §11): `rope_scaling` (transformers 4: its type as "rope_type" or the older
 * "type"), or transformers 5's `rope_parameters`, which also carries rope_theta. linear and llama3
 * are computed; any other type is refused, never ignored. */
static tr_status get_rope_scaling(const cJSON *root, const char *path, tr_hparams *hp)
{
    const char *where = "rope_scaling";
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, where);
    if (!s || cJSON_IsNull(s)) {
        where = "rope_parameters";
        s = cJSON_GetObjectItemCaseSensitive(root, where);
    }
    if (!s || cJSON_IsNull(s))
        return TR_OK;
    if (!cJSON_IsObject(s))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' must be an object, got %s", path, where, tr_json_type_name(s));
    const cJSON *theta = cJSON_GetObjectItemCaseSensitive(s, "rope_theta");
    if (theta && !cJSON_GetObjectItemCaseSensitive(root, "rope_theta"))
        TR_TRY(scaling_number(s, path, where, "rope_theta", 0, 1e12, &hp->rope_theta));
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "rope_type");
    if (!type)
        type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (!type && !strcmp(where, "rope_parameters"))
        return TR_OK;
    if (!type || !cJSON_IsString(type))
        return tr_fail(TR_ERR_FORMAT, "%s: '%s' needs a string 'rope_type' (or 'type')", path, where);
    const char *t = type->valuestring;
    if (!strcmp(t, "default"))
        return TR_OK;
    if (!strcmp(t, "linear")) {
        hp->rope_scaling = TR_ROPE_SCALING_LINEAR;
        return scaling_number(s, path, where, "factor", 0, 1e6, &hp->rope_factor);
    }
    if (!strcmp(t, "llama3")) {
        hp->rope_scaling = TR_ROPE_SCALING_LLAMA3;
        float orig;
        TR_TRY(scaling_number(s, path, where, "factor", 0, 1e6, &hp->rope_factor));
        TR_TRY(scaling_number(s, path, where, "low_freq_factor", 0, 1e6, &hp->rope_low_freq_factor));
        TR_TRY(scaling_number(s, path, where, "high_freq_factor", 0, 1e6, &hp->rope_high_freq_factor));
        TR_TRY(scaling_number(s, path, where, "original_max_position_embeddings", 0, MAX_HPARAM + 1.0, &orig));
        hp->rope_orig_ctx = (int)orig;
        if ((float)hp->rope_orig_ctx != orig)
            return tr_fail(TR_ERR_FORMAT, "%s: '%s.original_max_position_embeddings' must be an integer", path, where);
        if (!(hp->rope_high_freq_factor > hp->rope_low_freq_factor))
            return tr_fail(TR_ERR_FORMAT, "%s: '%s' needs high_freq_factor (%g) above low_freq_factor (%g)", path,
                           where, (double)hp->rope_high_freq_factor, (double)hp->rope_low_freq_factor);
        return TR_OK;
    }
    char q[64];
    return tr_fail(TR_ERR_UNSUPPORTED, "%s: '%s' type '%s' is not supported (only 'linear' and 'llama3')", path, where,
                   tr_quote(t, strlen(t), q, sizeof q));
}

/* hidden_act: the activations transformers' ACT2FN defines under these names. */
static tr_status get_activation(const cJSON *root, const char *path, tr_activation *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    *out = TR_ACT_SILU;
    if (!j || cJSON_IsNull(j))
        return TR_OK;
    if (!cJSON_IsString(j))
        return tr_fail(TR_ERR_FORMAT, "%s: 'hidden_act' must be a string, got %s", path, tr_json_type_name(j));
    for (int a = 0; a < TR_ACT_COUNT; a++)
        if (strcmp(j->valuestring, tr_activation_name((tr_activation)a)) == 0) {
            *out = (tr_activation)a;
            return TR_OK;
        }
    char q[64];
    return tr_fail(TR_ERR_UNSUPPORTED, "%s: 'hidden_act' is '%s'; supported are 'silu', 'gelu' and 'gelu_pytorch_tanh'",
                   path, tr_quote(j->valuestring, strlen(j->valuestring), q, sizeof q));
}

static tr_status read_config(const cJSON *root, const char *path, tr_hparams *hp)
{
    if (!cJSON_IsObject(root))
        return tr_fail(TR_ERR_FORMAT, "%s: must be a JSON object, got %s", path, tr_json_type_name(root));
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!mt)
        return tr_fail(TR_ERR_FORMAT, "%s: 'model_type' is missing", path);
    if (!cJSON_IsString(mt))
        return tr_fail(TR_ERR_FORMAT, "%s: 'model_type' must be a string, got %s", path, tr_json_type_name(mt));
    hp->diff_attn = strcmp(mt->valuestring, "diffllama") == 0;
    if (strcmp(mt->valuestring, "llama") != 0 && !hp->diff_attn) {
        char q[64];
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (only 'llama' and 'diffllama')", path,
                       tr_quote(mt->valuestring, strlen(mt->valuestring), q, sizeof q));
    }
    TR_TRY(check_unsupported_features(root, path));
    TR_TRY(get_activation(root, path, &hp->act));
    snprintf(hp->arch, sizeof hp->arch, "%s", hp->diff_attn ? "diffllama" : "llama");
    hp->rope_layout = TR_ROPE_HALF;
    TR_TRY(get_int(root, path, "hidden_size", 1, 0, 1, &hp->dim));
    TR_TRY(get_int(root, path, "intermediate_size", 1, 0, 1, &hp->ffn_dim));
    TR_TRY(get_int(root, path, "num_hidden_layers", 1, 0, 1, &hp->n_layers));
    TR_TRY(get_int(root, path, "num_attention_heads", 1, 0, 1, &hp->n_heads));
    TR_TRY(get_int(root, path, "num_key_value_heads", 0, hp->n_heads, 1, &hp->n_kv_heads));
    TR_TRY(get_int(root, path, "vocab_size", 1, 0, 1, &hp->n_vocab));
    TR_TRY(get_int(root, path, "max_position_embeddings", 0, 2048, 1, &hp->n_ctx_train));
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if ((!hd || cJSON_IsNull(hd)) && hp->dim % hp->n_heads != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: 'hidden_size' (%d) is not divisible by 'num_attention_heads' (%d)", path,
                       hp->dim, hp->n_heads);
    TR_TRY(get_int(root, path, "head_dim", 0, hp->dim / hp->n_heads, 1, &hp->head_dim));
    if (hp->n_heads % hp->n_kv_heads != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: 'num_attention_heads' (%d) is not a multiple of 'num_key_value_heads' (%d)",
                       path, hp->n_heads, hp->n_kv_heads);
    if (hp->head_dim % 2 != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: 'head_dim' (%d) must be even for RoPE", path, hp->head_dim);
    if ((int64_t)hp->n_heads * hp->head_dim > MAX_HPARAM)
        return tr_fail(TR_ERR_FORMAT, "%s: 'num_attention_heads' x 'head_dim' (%d x %d) is implausibly large", path,
                       hp->n_heads, hp->head_dim);
    if (hp->diff_attn && (hp->n_heads % 2 != 0 || hp->n_kv_heads % 2 != 0))
        return tr_fail(TR_ERR_FORMAT, "%s: differential attention pairs heads, but 'num_attention_heads' (%d) and "
                       "'num_key_value_heads' (%d) are not both even", path, hp->n_heads, hp->n_kv_heads);
    if (hp->diff_attn) { /* only initialises the lambda vectors in training; checked, then unused */
        float std_dev;
        TR_TRY(get_float(root, path, "lambda_std_dev", 0.1, -1, 1e6, &std_dev));
    }
    TR_TRY(get_float(root, path, "rms_norm_eps", 1e-6, 0, 1, &hp->rms_eps));
    TR_TRY(get_float(root, path, "rope_theta", 10000, 0, 1e12, &hp->rope_theta));
    TR_TRY(get_rope_scaling(root, path, hp));
    TR_TRY(get_bool(root, path, "tie_word_embeddings", 0, &hp->tied_embeddings));
    TR_TRY(get_token_id(root, path, "bos_token_id", hp->n_vocab, &hp->bos_id));
    TR_TRY(get_token_id(root, path, "eos_token_id", hp->n_vocab, &hp->eos_id));
    TR_TRY(get_token_id(root, path, "pad_token_id", hp->n_vocab, &hp->pad_id));
    TR_TRY(add_eos_ids(root, path, hp));
    return TR_OK;
}

tr_status tr_hf_config_parse(const char *text, size_t len, const char *path, tr_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    cJSON *root;
    TR_TRY(tr_json_parse(text, len, path, &root));
    tr_status s = read_config(root, path, hp);
    cJSON_Delete(root);
    return s;
}

/* chat_template: a string, or (transformers' named templates) a list of {"name", "template"}. */
static tr_status get_chat_template(const cJSON *root, const char *path, char **out)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (!t || cJSON_IsNull(t))
        return TR_OK;
    if (cJSON_IsArray(t)) {
        const cJSON *item, *found = NULL;
        cJSON_ArrayForEach(item, t) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
                found = cJSON_GetObjectItemCaseSensitive(item, "template");
        }
        if (!found)
            return tr_fail(TR_ERR_FORMAT, "%s: chat_template is a list without a template named \"default\"", path);
        t = found;
    }
    if (!cJSON_IsString(t))
        return tr_fail(TR_ERR_FORMAT, "%s: chat_template must be a string, got %s", path, tr_json_type_name(t));
    if (!(*out = strdup(t->valuestring)))
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", path);
    return TR_OK;
}

tr_status tr_hf_tokenizer_config_parse(const char *text, size_t len, const char *path, int *add_bos,
                                       char **chat_template)
{
    *add_bos = 1;
    *chat_template = NULL;
    cJSON *root;
    TR_TRY(tr_json_parse(text, len, path, &root));
    tr_status s = TR_OK;
    if (!cJSON_IsObject(root))
        s = tr_fail(TR_ERR_FORMAT, "%s: must be a JSON object, got %s", path, tr_json_type_name(root));
    else
        s = get_bool(root, path, "add_bos_token", 1, add_bos);
    if (s == TR_OK)
        s = get_chat_template(root, path, chat_template);
    cJSON_Delete(root);
    return s;
}
