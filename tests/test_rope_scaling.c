/* test_rope_scaling.c: RoPE scaling (design §11) end to end, against transformers.
 *
 * Three random Llama-3-style models and their goldens (tools/make_rope_scaling_golden.py,
 * transformers' LlamaForCausalLM, float32, eager): llama3 scaling with Llama 3.1's parameters
 * (factor 8, original context 8192), with Llama 3.2's factor 32 over an original context of 64 that
 * the 120-token prompt runs past, and linear scaling by 4; GQA 1 to 4, tied and untied. On every
 * backend usable here, the Hugging Face directory and its GGUF conversion (llama3 as llama.cpp's
 * rope_freqs tensor, linear as rope.scaling keys) are within design §6's 1e-6 NMSE of transformers,
 * whole and in steps of 7; the goldens are far from the same models without scaling (checked by the
 * script), so a loader that ignored it could not pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "test_util.h"

#define BOUND 1e-6

static int usable[TR_TEST_N_BACKENDS];

static double case_nmse(tr_model *m, const int32_t *ids, int n, const float *want, int n_batch)
{
    float *got = tr_test_eval_all(m, ids, n, n_batch, NULL, 0);
    double e = got ? tr_nmse(want, got, (size_t)n * tr_model_n_vocab(m)) : INFINITY;
    free(got);
    return e;
}

static void test_case(const char *name, const char *gguf_dir)
{
    char rel[256], gguf[1024];
    snprintf(rel, sizeof rel, "rope_scaling/%s.ids", name);
    int n = 0, nd = 0;
    int64_t shape[4];
    char kind;
    int32_t *ids = tr_test_read_ints(tr_golden(rel), &n);
    snprintf(rel, sizeof rel, "rope_scaling/%s.npy", name);
    float *want = tr_read_npy(tr_golden(rel), &nd, shape, &kind);
    snprintf(rel, sizeof rel, "rope_scaling/models/%s", name);
    const char *dir = tr_golden(rel);
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", gguf_dir, name);
    CHECK(ids && want && nd == 2 && shape[0] == n, "%s: goldens unreadable", name);
    tr_status cs = tr_convert_to_gguf(dir, gguf, NULL, NULL, NULL);
    CHECK(cs == TR_OK, "%s: convert: %s", name, tr_last_error());
    for (int b = 0; ids && want && b < TR_TEST_N_BACKENDS; b++) {
        if (!usable[b])
            continue;
        for (int form = 0; form < 2 && (form == 0 || cs == TR_OK); form++) {
            tr_model *m = tr_test_load_path(form ? gguf : dir, tr_test_backends[b]);
            if (!m)
                continue;
            tr_model_info info;
            tr_model_get_info(m, &info);
            CHECK(strcmp(info.rope_scaling, "none") != 0, "%s: rope scaling not seen (%s)", name, info.rope_scaling);
            for (int k = 0; k < 2; k++) {
                if (b == 0 && k == 1) /* cpu-ref is slow; the chunking is the same code everywhere */
                    continue;
                double e = case_nmse(m, ids, n, want, k ? 7 : 0);
                printf("%-11s %-8s %-4s %-12s NMSE vs transformers %.2e\n", name, tr_test_backends[b], form ? "gguf" : "hf",
                       k ? "--batch 7" : "whole", e);
                CHECK(e <= BOUND, "%s on %s (%s, batch %d): NMSE %.3g", name, tr_test_backends[b], form ? "gguf" : "hf",
                      k ? 7 : 0, e);
            }
            tr_model_free(m);
        }
    }
    free(ids);
    free(want);
    unlink(gguf);
}

int main(void)
{
    tr_test_usable_backends("test_rope_scaling", usable);
    char tmp[] = "/tmp/transit_rope_XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char *json = tr_read_file(tr_golden("rope_scaling/cases.json"), NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(root && cJSON_GetArraySize(root) == 3, "tests/golden/rope_scaling/cases.json missing or short");
    for (const cJSON *c = root ? root->child : NULL; c; c = c->next)
        test_case(c->string, tmp);
    cJSON_Delete(root);
    free(json);
    rmdir(tmp);
    return tr_test_finish("test_rope_scaling");
}
