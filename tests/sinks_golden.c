/* sinks_golden.c: the attention-sink golden cases (sinks_golden.h). */
#include "sinks_golden.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "test_util.h"

static int json_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* "shared:stories260K/hf" (../shared/models) or "repo:tests/golden/sinks/models/x" (this checkout) */
static const char *model_path(const char *spec)
{
    char rel[512];
    const char *repo = "repo:tests/golden/";
    if (!strncmp(spec, "shared:", 7)) {
        snprintf(rel, sizeof rel, "models/%s", spec + 7);
        return strdup(tr_shared(rel));
    }
    return strdup(!strncmp(spec, repo, strlen(repo)) ? tr_golden(spec + strlen(repo)) : spec);
}

static int load_one(const cJSON *c, sinks_case *sc)
{
    const cJSON *model = cJSON_GetObjectItem(c, "model"), *st = cJSON_GetObjectItem(c, "steps");
    int prefill = json_int(c, "prefill");
    sc->n_sink = json_int(c, "n_sink");
    sc->window = json_int(c, "window");
    if (!cJSON_IsString(model) || sc->n_sink < 0 || sc->window < 1)
        return 0; /* not a case */
    snprintf(sc->name, sizeof sc->name, "%s", c->string);
    sc->model_path = model_path(model->valuestring);
    char rel[256];
    int nd = 0;
    int64_t shape[4] = {0};
    char kind;
    snprintf(rel, sizeof rel, "sinks/%s.ids", c->string);
    sc->ids = tr_test_read_ints(tr_golden(rel), &sc->n);
    snprintf(rel, sizeof rel, "sinks/%s.rows", c->string);
    sc->rows = tr_test_read_ints(tr_golden(rel), &sc->n_rows);
    snprintf(rel, sizeof rel, "sinks/%s.npy", c->string);
    sc->gold = tr_read_npy(tr_golden(rel), &nd, shape, &kind);
    sc->n_vocab = (int)shape[1];
    sc->steps = malloc((size_t)(cJSON_IsArray(st) ? cJSON_GetArraySize(st) + 1 : 1) * sizeof *sc->steps);
    if (sc->steps && cJSON_IsArray(st)) {
        for (const cJSON *x = st->child; x; x = x->next)
            sc->steps[sc->n_steps++] = x->valueint;
    } else if (sc->steps && prefill > 0) {
        sc->steps[sc->n_steps++] = prefill;
    }
    sc->max_step = 1;
    for (int i = 0; i < sc->n_steps; i++)
        sc->max_step = sc->steps[i] > sc->max_step ? sc->steps[i] : sc->max_step;
    int ok = sc->ids && sc->rows && sc->gold && sc->steps && nd == 2 && shape[0] == sc->n_rows;
    CHECK(ok, "%s: golden files", sc->name);
    return ok ? 1 : -1;
}

sinks_case *sinks_cases_load(int *n)
{
    *n = 0;
    char *json = tr_read_file(tr_golden("sinks/cases.json"), NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    CHECK(root != NULL, "tests/golden/sinks/cases.json missing or unreadable");
    sinks_case *cases = root ? calloc((size_t)cJSON_GetArraySize(root), sizeof *cases) : NULL;
    for (const cJSON *c = root && cases ? root->child : NULL; c; c = c->next) {
        int r = load_one(c, &cases[*n]);
        if (r > 0)
            (*n)++;
        else if (r < 0) { /* reported; its slot is reused */
            sinks_cases_free(&cases[*n], 1);
            memset(&cases[*n], 0, sizeof cases[*n]);
        }
    }
    cJSON_Delete(root);
    free(json);
    return cases;
}

void sinks_cases_free(sinks_case *cases, int n)
{
    for (int i = 0; cases && i < n; i++) {
        free((void *)cases[i].model_path);
        free(cases[i].ids);
        free(cases[i].steps);
        free(cases[i].rows);
        free(cases[i].gold);
    }
}

const sinks_case *sinks_case_find(const sinks_case *cases, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(cases[i].name, name))
            return &cases[i];
    CHECK(0, "no golden sinks case '%s'", name);
    return NULL;
}

float *sinks_stream(tr_model *m, const int32_t *ids, int n, const int *steps, int n_steps, const tr_sink_params *sp,
                    int n_ctx)
{
    int V = tr_model_n_vocab(m), max_step = 1;
    for (int i = 0; i < n_steps; i++)
        max_step = steps[i] > max_step ? steps[i] : max_step;
    tr_context_params cp = tr_context_default_params();
    if (sp)
        cp.sinks = *sp;
    cp.n_ctx = sp ? n_ctx : n;
    cp.n_batch = max_step;
    tr_context *c = NULL;
    float *all = malloc((size_t)n * V * sizeof *all);
    tr_status s = all ? tr_context_create(m, &cp, &c) : TR_ERR_NOMEM;
    int done = 0;
    for (int i = 0; s == TR_OK && done < n; i++) {
        int want = i < n_steps ? steps[i] : 1, T = want < n - done ? want : n - done;
        s = tr_eval(c, ids + done, T, 1);
        for (int t = 0; s == TR_OK && t < T; t++)
            memcpy(all + (size_t)(done + t) * V, tr_get_logits(c, t), (size_t)V * sizeof *all);
        done += T;
    }
    CHECK(s == TR_OK, "stream of %d tokens (sinks %d + %d, n_ctx %d): %s", n, sp ? sp->n_sink : 0,
          sp ? sp->window : 0, n_ctx, tr_last_error());
    if (s == TR_OK && sp) {
        int kept = sp->n_sink + sp->window;
        CHECK(tr_context_n_past(c) == n && tr_context_n_cached(c) == (n < kept ? n : kept),
              "after %d tokens: n_past %d, cached %d", n, tr_context_n_past(c), tr_context_n_cached(c));
    }
    tr_context_free(c);
    if (s != TR_OK) {
        free(all);
        return NULL;
    }
    return all;
}

double sinks_case_nmse(tr_model *m, const sinks_case *c, int n_ctx, int max_tokens, int plain)
{
    int n = max_tokens > 0 && max_tokens < c->n ? max_tokens : c->n, V = c->n_vocab, n_rows = 0;
    CHECK(tr_model_n_vocab(m) == V, "%s: vocabulary %d, model %d", c->name, V, tr_model_n_vocab(m));
    tr_sink_params sp = {.enabled = 1, .n_sink = c->n_sink, .window = c->window};
    float *all = tr_model_n_vocab(m) == V ? sinks_stream(m, c->ids, n, c->steps, c->n_steps, plain ? NULL : &sp, n_ctx)
                                           : NULL;
    float *picked = all ? malloc((size_t)c->n_rows * V * sizeof *picked) : NULL;
    for (int r = 0; picked && r < c->n_rows && c->rows[r] < n; r++, n_rows++)
        memcpy(picked + (size_t)r * V, all + (size_t)c->rows[r] * V, (size_t)V * sizeof *picked);
    double e = picked ? tr_nmse(c->gold, picked, (size_t)n_rows * V) : INFINITY;
    free(picked);
    free(all);
    return e;
}
