/* backend_e2e.c: end-to-end checks every device backend's test runs against the CPU reference
 * (tests/test_vulkan.c, tests/test_opencl.c): the transition goldens and greedy decoding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "backend.h"
#include "backend_e2e.h"
#include "model.h"
#include "test_util.h"
#include "transition.h"

#define N_GREEDY 64

/* The transition goldens' prompts (tests/golden/transition/cases.json), whole and in chunks that cut
 * blocks in two, on backend against cpu-ref; returns the worst NMSE. The bound of 1e-6 could not tell a missing transition from a working one on these
 * models (docs/attention-transition.md), so the backend's logits must also sit 100x closer to the CPU's
 * transition logits than the CPU's plain logits do. */
double backend_e2e_transition(const char *name, const char *backend, double bound)
{
    char *json = tr_read_file(tr_golden("transition/cases.json"), NULL);
    cJSON *cases = json ? cJSON_Parse(json) : NULL;
    CHECK(cases != NULL, "tests/golden/transition/cases.json missing or unreadable");
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/hf", name);
    tr_model *cpu = tr_test_load(rel, "cpu-ref"), *gpu = tr_test_load(rel, backend);
    double worst = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases)
    {
        const char *key = cs->string; /* "<model>.<case>" */
        const cJSON *prm = cJSON_GetObjectItem(cs, "params");
        size_t len = strlen(name);
        if (!cpu || !gpu || !key || !prm || strncmp(key, name, len) || key[len] != '.')
            continue;
        /* keep the run short: the default parameters, and one other case per model */
        if (strcmp(key + len, ".n517") && strcmp(key + len, strcmp(name, "stories260K") ? ".n517_custom" : ".n517_multi"))
            continue;
        tr_transition_params tp = tr_context_default_params().transition;
        tp.enabled = 1;
        tp.min_len = cJSON_GetObjectItem(prm, "min_len")->valueint;
        tp.blocks = cJSON_GetObjectItem(prm, "blocks")->valueint;
        tp.alpha = (float)cJSON_GetObjectItem(prm, "alpha")->valuedouble;
        tp.beta = (float)cJSON_GetObjectItem(prm, "beta")->valuedouble;
        tp.strategy = strcmp(cJSON_GetObjectItem(prm, "strategy")->valuestring, "multi") ? TR_TRANSITION_ADDING
                                                                                           : TR_TRANSITION_MULTI;
        snprintf(rel, sizeof rel, "transition/%s.ids", key);
        int n = 0;
        int32_t *ids = tr_test_read_ints(tr_golden(rel), &n);
        CHECK(ids && n > 0, "missing %s", rel);
        if (!ids)
            continue;
        size_t cnt = (size_t)n * tr_model_n_vocab(cpu);
        int iv = tr_transition_iv(&tp, cpu->hp.n_layers, n), chunk = iv / 2 + 3;
        float *a = tr_test_eval_all(cpu, ids, n, 0, &tp, 1), *plain = tr_test_eval_all(cpu, ids, n, 0, NULL, 1);
        float *b = tr_test_eval_all(gpu, ids, n, 0, &tp, 1), *bc = tr_test_eval_all(gpu, ids, n, chunk, &tp, 1);
        if (a && plain && b && bc) {
            double e = tr_nmse(a, b, cnt), ec = tr_nmse(a, bc, cnt), off = tr_nmse(a, plain, cnt);
            printf("e2e %-12s transition %-16s %3d tokens: NMSE vs cpu %.2e, chunks of %d %.2e (transition off: %.2e)\n",
                   name, key + len + 1, n, e, chunk, ec, off);
            CHECK(e <= bound && ec <= bound, "%s %s: logits NMSE %.3g / %.3g", name, key + len + 1, e, ec);
            CHECK(e * 100 < off && ec * 100 < off, "%s %s: %s is not clearly closer to the transition (%.3g, %.3g) "
                                                   "than plain attention is (%.3g)",
                  name, key + len + 1, backend, e, ec, off);
            worst = fmax(worst, fmax(e, ec));
        }
        free(a);
        free(plain);
        free(b);
        free(bc);
        free(ids);
    }
    tr_model_free(cpu);
    tr_model_free(gpu);
    cJSON_Delete(cases);
    free(json);
    return worst;
}

/* 64 greedy tokens, decoded one at a time on both backends, must be identical; as far as
 * expected_greedy.json goes (its greedy_ids include the prompt), they must also equal it. */
void backend_e2e_greedy(const char *model_rel, const char *expected_rel, const char *backend)
{
    char *json = tr_read_file(tr_shared(expected_rel), NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(root != NULL, "missing %s", expected_rel);
    tr_model *ms[2] = {tr_test_load(model_rel, "cpu-ref"), tr_test_load(model_rel, backend)};
    if (!root || !ms[0] || !ms[1])
        goto out;
    const cJSON *pids = cJSON_GetObjectItem(root, "prompt_ids"), *gids = cJSON_GetObjectItem(root, "greedy_ids");
    int n_prompt = cJSON_GetArraySize(pids), n_expect = cJSON_GetArraySize(gids), n_total = n_prompt + N_GREEDY;
    int32_t expect[512], got[2][512];
    if (n_expect > n_total)
        n_expect = n_total;
    for (int i = 0; i < n_expect; i++)
        expect[i] = cJSON_GetArrayItem(gids, i)->valueint;
    for (int b = 0; b < 2; b++) {
        tr_context *c;
        if (tr_context_create(ms[b], NULL, &c) != TR_OK) {
            CHECK(0, "context: %s", tr_last_error());
            goto out;
        }
        memcpy(got[b], expect, (size_t)n_prompt * sizeof(int32_t));
        tr_status s = tr_eval(c, expect, n_prompt, 0);
        for (int i = n_prompt; s == TR_OK && i < n_total; i++) {
            const float *l = tr_get_logits(c, -1);
            int best = 0;
            for (int v = 1; v < tr_model_n_vocab(ms[b]); v++)
                best = l[v] > l[best] ? v : best;
            got[b][i] = best;
            s = tr_eval(c, &got[b][i], 1, 0);
        }
        CHECK(s == TR_OK, "%s greedy on %s: %s", model_rel, ms[b]->backend->iface->name, tr_last_error());
        tr_context_free(c);
    }
    int same = 0;
    while (same < N_GREEDY && got[0][n_prompt + same] == got[1][n_prompt + same])
        same++;
    int as_expected = memcmp(got[1], expect, (size_t)n_expect * sizeof(int32_t)) == 0;
    printf("e2e %-28s greedy: %d of %d tokens identical to the cpu's; the first %d %s expected_greedy.json\n", model_rel,
           same, N_GREEDY, n_expect - n_prompt, as_expected ? "equal" : "DIFFER FROM");
    CHECK(same == N_GREEDY, "%s: greedy tokens differ at %d", model_rel, same);
    CHECK(as_expected, "%s: the %s greedy continuation is not the expected one", model_rel, backend);
out:
    tr_model_free(ms[0]);
    tr_model_free(ms[1]);
    cJSON_Delete(root);
    free(json);
}

/* Weights over several device buffers (core/model.c: a driver's maxMemoryAllocationSize, 4 GB on
 * NVIDIA's, is below a 7B f16 model's 13.5 GB): stories260K's 1 MB split by a 300 KB limit gives the
 * golden logits as one buffer does; a limit below its largest tensor is refused by name. */
double backend_e2e_split_weights(const char *backend, double bound)
{
    setenv("TRANSIT_WEIGHT_BUFFER_MAX", "300000", 1);
    tr_model *m = tr_test_load("models/stories260K/stories260K.gguf", backend);
    CHECK(m && m->n_weight_buffers >= 3, "split weights: %d buffers, want 3 or more", m ? m->n_weight_buffers : -1);
    tr_model_free(m);
    const int batches[] = {0};
    double worst = tr_test_golden_logits("models/stories260K/stories260K.gguf", "stories260K", backend, batches, 1, bound);
    setenv("TRANSIT_WEIGHT_BUFFER_MAX", "100000", 1); /* below the 131,072-byte embedding table */
    tr_model_params p = tr_model_default_params();
    p.backend = backend;
    m = NULL;
    tr_status s = tr_model_load(tr_shared("models/stories260K/stories260K.gguf"), &p, &m);
    CHECK(s == TR_ERR_NOMEM && strstr(tr_last_error(), "is larger than the largest buffer"),
          "a weight above the buffer limit: status %d, '%s'", (int)s, tr_last_error());
    tr_model_free(m);
    unsetenv("TRANSIT_WEIGHT_BUFFER_MAX");
    return worst;
}
