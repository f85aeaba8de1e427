/* test_llama3.c: Llama-3-shaped models end to end against transformers (design §11).
 *
 * Two random models with Llama 3's real 128,256-token vocabulary and tokenizer, GQA, llama3 RoPE
 * scaling with Llama 3.1's and 3.2's parameters, tied and untied (tools/make_llama3_golden.py). Their
 * weights are not in the repository: each is a function of its tensor's and element's index (an
 * integer hash, exact in float32) that this test computes the same way as the script, writing the
 * same model.safetensors beside the golden config.json and the shared Llama 3 tokenizer. On every
 * backend usable here, the Hugging Face directory and its GGUF conversion give transformers' logits
 * (every 61st token id of every position) within design §6's 1e-6 NMSE, whole and in steps of 7, and
 * the same argmax at every position. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "test_util.h"

#define BOUND 1e-6
#define VOCAB 128256

static int usable[TR_TEST_N_BACKENDS];

/* tools/make_llama3_golden.py's weight_values */
static void weight_values(int tensor_index, size_t n, double std, int norm, float *out)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t h = ((uint64_t)i * 2654435761u + (uint64_t)tensor_index * 40503u + 12345u) & 0xFFFFFFFFu;
        h = (h ^ (h >> 15)) & 0xFFFFFF;
        float unit = (float)h / (float)(1 << 24) - 0.5f;
        out[i] = unit * (float)(2.0 * std);
        if (norm)
            out[i] = 1.0f + out[i];
    }
}

typedef struct {
    char name[96];
    int64_t rows, cols; /* cols 0: a vector of rows */
    double std;
    int norm;
} spec;

static int tensor_list(const cJSON *cfg, spec *out)
{
    int hidden = cJSON_GetObjectItem(cfg, "hidden_size")->valueint, H = cJSON_GetObjectItem(cfg, "num_attention_heads")->valueint;
    int Hkv = cJSON_GetObjectItem(cfg, "num_key_value_heads")->valueint, hd = cJSON_GetObjectItem(cfg, "head_dim")->valueint;
    int L = cJSON_GetObjectItem(cfg, "num_hidden_layers")->valueint, ffn = 2 * hidden;
    int tied = cJSON_IsTrue(cJSON_GetObjectItem(cfg, "tie_word_embeddings")), n = 0;
    out[n++] = (spec){"model.embed_tokens.weight", VOCAB, hidden, 0.5, 0};
    out[n++] = (spec){"model.norm.weight", hidden, 0, 0.1, 1};
    for (int l = 0; l < L; l++) {
        const struct {
            const char *suffix;
            int64_t rows, cols;
            int norm;
        } parts[] = {
            {"input_layernorm.weight", hidden, 0, 1},          {"self_attn.q_proj.weight", H * hd, hidden, 0},
            {"self_attn.k_proj.weight", Hkv * hd, hidden, 0},  {"self_attn.v_proj.weight", Hkv * hd, hidden, 0},
            {"self_attn.o_proj.weight", hidden, H * hd, 0},    {"post_attention_layernorm.weight", hidden, 0, 1},
            {"mlp.gate_proj.weight", ffn, hidden, 0},          {"mlp.up_proj.weight", ffn, hidden, 0},
            {"mlp.down_proj.weight", hidden, ffn, 0},
        };
        for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
            spec *s = &out[n++];
            snprintf(s->name, sizeof s->name, "model.layers.%d.%s", l, parts[k].suffix);
            s->rows = parts[k].rows;
            s->cols = parts[k].cols;
            s->norm = parts[k].norm;
            s->std = parts[k].norm ? 0.1 : 0.3;
        }
    }
    if (!tied)
        out[n++] = (spec){"lm_head.weight", VOCAB, hidden, 0.5, 0};
    return n;
}

/* The model directory: golden config.json, the shared tokenizer, and the computed safetensors. */
static int write_model(const char *dir, const char *name, cJSON **cfg_out)
{
    char rel[128], p[1024];
    snprintf(rel, sizeof rel, "llama3/%s.config.json", name);
    char *cfg_text = tr_read_file(tr_golden(rel), NULL);
    cJSON *cfg = cfg_text ? cJSON_Parse(cfg_text) : NULL;
    CHECK(cfg != NULL, "%s unreadable", rel);
    if (!cfg) {
        free(cfg_text);
        return 0;
    }
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/config.json", dir);
    int ok = tr_write_file(p, cfg_text, strlen(cfg_text));
    free(cfg_text);
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char from[256];
        snprintf(from, sizeof from, "models/llama3-tokenizer/%s", files[i]);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        ok = ok && tr_copy_file(tr_shared(from), p);
    }
    spec specs[64];
    int n = tensor_list(cfg, specs);
    size_t header_cap = 16384, hl = 0, offset = 0;
    char *header = malloc(header_cap);
    hl += (size_t)snprintf(header + hl, header_cap - hl, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)(specs[i].rows * (specs[i].cols ? specs[i].cols : 1)) * 4;
        if (specs[i].cols)
            hl += (size_t)snprintf(header + hl, header_cap - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],"
                                   "\"data_offsets\":[%zu,%zu]}", i ? "," : "", specs[i].name, (long long)specs[i].rows,
                                   (long long)specs[i].cols, offset, offset + bytes);
        else
            hl += (size_t)snprintf(header + hl, header_cap - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],"
                                   "\"data_offsets\":[%zu,%zu]}", i ? "," : "", specs[i].name, (long long)specs[i].rows,
                                   offset, offset + bytes);
        offset += bytes;
    }
    hl += (size_t)snprintf(header + hl, header_cap - hl, "}");
    while (hl % 8) /* data aligned to 8 bytes, as safetensors writes it */
        header[hl++] = ' ';
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "wb");
    uint64_t hlen = hl;
    ok = ok && f && fwrite(&hlen, 8, 1, f) == 1 && fwrite(header, 1, hl, f) == hl;
    for (int i = 0; ok && i < n; i++) {
        size_t count = (size_t)(specs[i].rows * (specs[i].cols ? specs[i].cols : 1));
        float *v = malloc(count * sizeof *v);
        weight_values(i, count, specs[i].std, specs[i].norm, v);
        ok = fwrite(v, sizeof *v, count, f) == count;
        free(v);
    }
    if (f)
        fclose(f);
    free(header);
    CHECK(ok, "%s: writing the model directory %s", name, dir);
    *cfg_out = cfg;
    return ok;
}

static void check(tr_model *m, const char *what, const int32_t *ids, int n, const float *want, const int *argmax,
                  int n_batch)
{
    float *all = tr_test_eval_all(m, ids, n, n_batch, NULL, 0);
    int kept = (VOCAB + 60) / 61, argmax_ok = 1;
    float *picked = all ? malloc((size_t)n * kept * sizeof *picked) : NULL;
    for (int t = 0; picked && t < n; t++) {
        const float *row = all + (size_t)t * VOCAB;
        int best = 0;
        for (int v = 0; v < VOCAB; v++) {
            if (v % 61 == 0)
                picked[(size_t)t * kept + v / 61] = row[v];
            best = row[v] > row[best] ? v : best;
        }
        argmax_ok &= best == argmax[t];
    }
    double e = picked ? tr_nmse(want, picked, (size_t)n * kept) : INFINITY;
    printf("%-30s NMSE vs transformers %.2e, argmax %s\n", what, e, argmax_ok ? "same" : "DIFFERS");
    CHECK(e <= BOUND && argmax_ok, "%s: NMSE %.3g, argmax %s", what, e, argmax_ok ? "same" : "differs");
    free(picked);
    free(all);
}

static void test_case(const cJSON *c, const char *tmp)
{
    const char *name = c->string;
    char dir[512], gguf[512], rel[128], what[128];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", tmp, name);
    cJSON *cfg = NULL;
    if (!write_model(dir, name, &cfg))
        return;
    const cJSON *prompt = cJSON_GetObjectItem(c, "prompt"), *am = cJSON_GetObjectItem(c, "argmax");
    int n = cJSON_GetArraySize(prompt), nd = 0;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int *argmax = malloc((size_t)n * sizeof *argmax);
    for (int i = 0; i < n; i++) {
        ids[i] = cJSON_GetArrayItem(prompt, i)->valueint;
        argmax[i] = cJSON_GetArrayItem(am, i)->valueint;
    }
    int64_t shape[4];
    char kind;
    snprintf(rel, sizeof rel, "llama3/%s.npy", name);
    float *want = tr_read_npy(tr_golden(rel), &nd, shape, &kind);
    CHECK(want && nd == 2 && shape[0] == n, "%s: golden logits", name);
    tr_status cs = tr_convert_to_gguf(dir, gguf, NULL, NULL, NULL);
    CHECK(cs == TR_OK, "%s: convert: %s", name, tr_last_error());
    for (int b = 1; want && b < TR_TEST_N_BACKENDS; b++) { /* cpu-ref: 128K-wide output rows in double, slow */
        if (!usable[b])
            continue;
        for (int form = 0; form < 2 && (form == 0 || cs == TR_OK); form++) {
            tr_model *m = tr_test_load_path(form ? gguf : dir, tr_test_backends[b]);
            for (int k = 0; m && k < 2; k++) {
                snprintf(what, sizeof what, "%s %s %s %s", name, tr_test_backends[b], form ? "gguf" : "hf",
                         k ? "--batch 7" : "whole");
                check(m, what, ids, n, want, argmax, k ? 7 : 0);
            }
            tr_model_free(m);
        }
    }
    free(ids);
    free(argmax);
    free(want);
    cJSON_Delete(cfg);
}

int main(void)
{
    tr_test_usable_backends("test_llama3", usable);
    char tmp[] = "/tmp/transit_llama3_XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char *json = tr_read_file(tr_golden("llama3/cases.json"), NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(root && cJSON_GetArraySize(root) == 2, "tests/golden/llama3/cases.json missing or short");
    for (const cJSON *c = root ? root->child : NULL; c; c = c->next)
        test_case(c, tmp);
    cJSON_Delete(root);
    free(json);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return tr_test_finish("test_llama3");
}
