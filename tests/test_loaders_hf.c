/* test_loaders_hf.c: Hugging Face directories: safetensors, config.json / tokenizer_config.json,
 * and sharded checkpoints (model.safetensors.index.json).
 *
 * 1. A synthetic sharded checkpoint (stories260K split in two, one shard with misaligned data) loads
 *    and equals the single-file one.
 * 2. Damaged inputs, written into a mkdtemp directory: safetensors truncated at every header offset
 *    and through the data, and one crafted defect per check the loaders make (safetensors header,
 *    config.json types and values, index files). Each must fail with a one-line message naming the
 *    offending file, leave the tr_model_file empty, and leak nothing (ASan). */
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
        {"rope_scaling yarn", "\"rope_theta\": 10000.0",
         "\"rope_theta\": 10000.0, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", TR_ERR_UNSUPPORTED},
        {"rope_scaling linear, no factor", "\"rope_theta\": 10000.0",
         "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"linear\"}", TR_ERR_FORMAT},
        {"rope_scaling no type", "\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": {\"factor\": 2}",
         TR_ERR_FORMAT},
        {"rope_scaling not an object", "\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": 8",
         TR_ERR_FORMAT},
        {"llama3 without original_max", "\"rope_theta\": 10000.0",
         "\"rope_theta\": 10000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8, "
         "\"low_freq_factor\": 1, \"high_freq_factor\": 4}", TR_ERR_FORMAT},
        {"llama3 negative factor", "\"rope_theta\": 10000.0",
         "\"rope_theta\": 10000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": -8, "
         "\"low_freq_factor\": 1, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}", TR_ERR_FORMAT},
        {"llama3 high below low", "\"rope_theta\": 10000.0",
         "\"rope_theta\": 10000.0, \"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8, "
         "\"low_freq_factor\": 4, \"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}", TR_ERR_FORMAT},
        {"relu", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"relu\"", TR_ERR_UNSUPPORTED},
        {"hidden_act number", "\"hidden_act\": \"silu\"", "\"hidden_act\": 1", TR_ERR_FORMAT},
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

/* A DiffLlama directory (tests/golden/diffllama/models/d16_gqa2: 4 heads, 2 kv heads, head_dim 16)
 * with one defect in config.json or in the safetensors header: odd head counts, an unknown
 * activation, a missing or misshapen lambda vector. */
static void test_diffllama_damage(void)
{
    char p[1024], label[128], want_path[1024];
    const char *src = tr_golden("diffllama/models/d16_gqa2");
    size_t cfg_len = 0, st_len = 0;
    snprintf(p, sizeof p, "%s/config.json", src);
    char *cfg = tr_read_file(p, &cfg_len);
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    char *st = tr_read_file(p, &st_len);
    CHECK(cfg && st, "%s unreadable", src);
    tr_model_file f;
    if (!cfg || !st || !open_ok("diffllama", src, &f)) {
        free(cfg);
        free(st);
        return;
    }
    CHECK(f.hp.diff_attn && !strcmp(f.hp.arch, "diffllama") && tr_model_file_find(&f, "blk.5.attn_lambda_k2"),
          "diffllama: arch %s, lambda tensors", f.hp.arch);
    tr_model_file_close(&f);
    static const struct {
        const char *label, *from, *to, *from2, *to2;
        tr_status want;
    } cfg_edits[] = {
        {"odd kv heads", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 1", NULL, NULL, TR_ERR_FORMAT},
        {"odd heads", "\"num_attention_heads\": 4", "\"num_attention_heads\": 3", "\"num_key_value_heads\": 2",
         "\"num_key_value_heads\": 1", TR_ERR_FORMAT},
        {"relu", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"relu\"", NULL, NULL, TR_ERR_UNSUPPORTED},
        {"lambda_std_dev string", "\"lambda_std_dev\": 0.1", "\"lambda_std_dev\": \"small\"", NULL, NULL, TR_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cfg_edits / sizeof cfg_edits[0]; i++) {
        char *c1 = replace(cfg, cfg_edits[i].from, cfg_edits[i].to);
        char *c2 = cfg_edits[i].from2 ? replace(c1, cfg_edits[i].from2, cfg_edits[i].to2) : NULL;
        snprintf(label, sizeof label, "diff_cfg_%zu", i);
        const char *dir = make_hf_dir(label, c2 ? c2 : c1, st, st_len);
        snprintf(want_path, sizeof want_path, "%s/config.json", dir);
        snprintf(label, sizeof label, "diffllama config: %s", cfg_edits[i].label);
        expect_fail(label, dir, want_path, cfg_edits[i].want);
        free(c1);
        free(c2);
    }
    /* header edits that keep every byte range valid: a renamed tensor, a reshaped one */
    static const struct {
        const char *label, *from, *to, *mention;
    } st_edits[] = {
        {"missing lambda", "\"model.layers.3.self_attn.lambda_k2\"", "\"model.layers.3.self_attn.lambda_kX\"",
         "model.layers.3.self_attn.lambda_k2"},
        {"lambda [16, 1]", "\"model.layers.2.self_attn.lambda_q1\":{\"dtype\":\"F32\",\"shape\":[16]",
         "\"model.layers.2.self_attn.lambda_q1\":{\"dtype\":\"F32\",\"shape\":[16,1]", "model.layers.2.self_attn.lambda_q1"},
        {"lambda [4, 4]", "\"model.layers.0.self_attn.lambda_k1\":{\"dtype\":\"F32\",\"shape\":[16]",
         "\"model.layers.0.self_attn.lambda_k1\":{\"dtype\":\"F32\",\"shape\":[4,4]", "model.layers.0.self_attn.lambda_k1"},
    };
    uint64_t hlen;
    memcpy(&hlen, st, 8);
    char *header = malloc((size_t)hlen + 1);
    memcpy(header, st + 8, (size_t)hlen);
    header[hlen] = 0;
    for (size_t i = 0; i < sizeof st_edits / sizeof st_edits[0]; i++) {
        char *h = replace(header, st_edits[i].from, st_edits[i].to);
        uint64_t nh = strlen(h);
        size_t data_len = st_len - 8 - (size_t)hlen, len = 8 + (size_t)nh + data_len;
        uint8_t *bytes = malloc(len);
        memcpy(bytes, &nh, 8);
        memcpy(bytes + 8, h, (size_t)nh);
        memcpy(bytes + 8 + nh, st + 8 + hlen, data_len);
        snprintf(label, sizeof label, "diff_st_%zu", i);
        const char *dir = make_hf_dir(label, cfg, bytes, len);
        snprintf(want_path, sizeof want_path, "%s/model.safetensors", dir);
        snprintf(label, sizeof label, "diffllama safetensors: %s", st_edits[i].label);
        expect_fail(label, dir, want_path, TR_ERR_FORMAT);
        CHECK(strstr(tr_last_error(), st_edits[i].mention), "%s: '%s' does not name %s", label, tr_last_error(),
              st_edits[i].mention);
        free(bytes);
        free(h);
    }
    free(header);
    free(cfg);
    free(st);
}

/* The stop set: eos_token_id as a list in config.json, and generation_config.json's. */
static void test_stop_ids(void)
{
    char p[1024];
    char *cfg = replace(stories_config, "\"eos_token_id\": 2", "\"eos_token_id\": [2, 3]");
    const char *dir = make_hf_dir("stops", cfg, NULL, 0);
    snprintf(p, sizeof p, "%s/generation_config.json", dir);
    const char *gen = "{\"eos_token_id\": [3, 7, 2]}", *far = "{\"eos_token_id\": [2, 600]}",
               *named = "{\"eos_token_id\": \"</s>\"}";
    write_file(p, gen, strlen(gen));
    tr_model_file f;
    if (open_ok("stop ids", dir, &f)) {
        CHECK(f.hp.eos_id == 2 && f.hp.n_eog == 3 && f.hp.eog[0] == 2 && f.hp.eog[1] == 3 && f.hp.eog[2] == 7,
              "stop ids: eos %d, %d ids (%d %d %d)", f.hp.eos_id, f.hp.n_eog, f.hp.eog[0], f.hp.eog[1], f.hp.eog[2]);
        tr_model_file_close(&f);
    }
    write_file(p, far, strlen(far));
    expect_fail("generation_config: id past the vocabulary", dir, p, TR_ERR_FORMAT);
    write_file(p, named, strlen(named));
    expect_fail("generation_config: id as a string", dir, p, TR_ERR_FORMAT);
    free(cfg);
}

int main(void)
{
    if (!loader_tmp_init()) {
        perror("mkdtemp");
        return 1;
    }
    stories_config = tr_read_file(tr_shared("models/stories260K/hf/config.json"), &stories_config_len);
    stories_st = tr_read_file(tr_shared("models/stories260K/hf/model.safetensors"), &stories_st_len);
    CHECK(stories_config && stories_st, "the shared models are missing under %s", tr_shared("models"));
    if (stories_config && stories_st) {
        test_safetensors_damage();
        test_config_damage();
        test_sharded();
        test_diffllama_damage();
        test_stop_ids();
    }
    free(stories_config);
    free(stories_st);
    loader_tmp_remove();
    return tr_test_finish("test_loaders_hf");
}
