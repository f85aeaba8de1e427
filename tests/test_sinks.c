/* test_sinks.c: attention sinks (design §5) end to end.
 *
 * - Golden logits from the `attention_sinks` 0.4.0 package itself (tools/make_sinks_golden.py):
 *   stories260K, aidreams260K and two random GQA models, streamed one token at a time over three
 *   times n_sink + window, a 100-token prefill longer than the window followed by decoding, other
 *   sink/window sizes, and multi-token steps. Every backend usable here, each with cache sizes that
 *   make the live run go back to row 0 at different steps (at every step, for the tightest), within
 *   design §6's 1e-6 NMSE; plain attention must be far outside that bound, or the test proves nothing.
 * - Before the first trim, sinks change nothing: the logits equal plain attention's bit for bit.
 * - Constant memory: the KV cache, activations and workspace after 2,000 and 8,000 generated tokens
 *   are the same bytes.
 * - With the transition: a prompt step is re-weighted exactly as without sinks (dense inside the
 *   step), decoding after the trim agrees across backends, and a window that never fills changes
 *   nothing at all.
 * - Bad parameters are refused with a message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "sinks_golden.h"
#include "test_util.h"

#define BOUND 1e-6 /* design §6: end-to-end logits with f32 weights */

#define backends tr_test_backends
#define N_BACKENDS TR_TEST_N_BACKENDS
static int usable[N_BACKENDS];

static void test_goldens(void)
{
    int n_cases = 0;
    sinks_case *cases = sinks_cases_load(&n_cases);
    CHECK(n_cases >= 14, "only %d golden cases", n_cases);
    for (int i = 0; i < n_cases; i++) {
        const sinks_case *c = &cases[i];
        /* cache sizes: the default (kept + n_batch), the tightest (the live run goes back to row 0 at
         * almost every step) and one in between */
        int kept = c->n_sink + c->window, ctx_sizes[] = {0, kept + c->max_step, kept + c->max_step + 5};
        for (int b = 0; b < N_BACKENDS; b++) {
            if (!usable[b])
                continue;
            tr_model *m = tr_test_load_path(c->model_path, backends[b]);
            for (int k = 0; m && k < 3; k++) {
                if (b == 0 && k != 1) /* cpu-ref is slow, and the layouts are the same code */
                    continue;
                double e = sinks_case_nmse(m, c, ctx_sizes[k], 0, 0);
                printf("%-28s %-8s n_ctx %-4d NMSE vs attention_sinks %.2e\n", c->name, backends[b], ctx_sizes[k], e);
                CHECK(e <= BOUND, "%s on %s, n_ctx %d: NMSE %.3g vs attention_sinks", c->name, backends[b],
                      ctx_sizes[k], e);
            }
            if (m && b == 1) { /* the test must be able to fail: plain attention is far from the goldens */
                double e = sinks_case_nmse(m, c, 0, 0, 1);
                printf("%-28s %-8s plain attention: NMSE vs attention_sinks %.2e\n", c->name, backends[b], e);
                CHECK(e > 100 * BOUND, "%s: plain attention is within %.3g of the goldens: they cannot tell", c->name,
                      e);
            }
            tr_model_free(m);
        }
    }
    sinks_cases_free(cases, n_cases);
    free(cases);
}

/* Until the first trim the sink cache is the plain cache: same rows, same positions, same kernels. */
static void test_before_first_trim(void)
{
    tr_model *m = tr_test_load("models/stories260K/hf", "cpu");
    if (!m)
        return;
    int n = 4 + 60 + 1, V = tr_model_n_vocab(m);
    int32_t ids[65];
    for (int i = 0; i < n; i++)
        ids[i] = (i * 37 + 11) % V;
    tr_sink_params sp = {.enabled = 1, .n_sink = 4, .window = 60};
    float *a = sinks_stream(m, ids, n, NULL, 0, &sp, 0), *b = sinks_stream(m, ids, n, NULL, 0, NULL, 0);
    CHECK(a && b && memcmp(a, b, (size_t)n * V * sizeof *a) == 0, "sinks before the first trim differ from plain");
    free(a);
    free(b);
    tr_model_free(m);
}

/* Memory is flat however long generation runs: the default model, 4 sinks + 252. */
static void test_constant_memory(void)
{
    tr_model *m = tr_test_load_path(TR_GOLDEN_DIR "/../../models/default", "cpu");
    if (!m)
        return;
    tr_context_params cp = tr_context_default_params();
    cp.sinks = (tr_sink_params){.enabled = 1, .n_sink = 4, .window = 252};
    tr_context *c = NULL;
    CHECK(tr_context_create(m, &cp, &c) == TR_OK, "context: %s", tr_last_error());
    int V = tr_model_n_vocab(m);
    int32_t tok = 1;
    tr_memory_stats at2k = {0}, at8k = {0};
    tr_status s = TR_OK;
    int layout_ok = 1;
    for (int i = 1; c && s == TR_OK && i <= 8000; i++) {
        s = tr_eval(c, &tok, 1, 0);
        /* the live run: never more than what is kept plus the step, always inside the buffer */
        const tr_seq *q = &c->seq[0];
        layout_ok &= q->kv_live <= 256 + 1 && q->kv_base >= 0 && q->kv_base + q->kv_live <= c->n_ctx;
        const float *l = tr_get_logits(c, -1);
        for (int v = 1; s == TR_OK && v < V; v++) /* greedy */
            tok = l[v] > l[tok] ? v : tok;
        if (i == 2000)
            tr_context_memory(c, &at2k);
    }
    CHECK(s == TR_OK, "8000 tokens with sinks: %s", tr_last_error());
    CHECK(layout_ok, "the live run left the kept size or the buffer");
    if (c)
        tr_context_memory(c, &at8k);
    printf("memory after 2000 / 8000 tokens: KV %zu / %zu, activations %zu / %zu, workspace %zu / %zu bytes\n",
           at2k.kv_cache, at8k.kv_cache, at2k.activations, at8k.activations, at2k.workspace, at8k.workspace);
    CHECK(at2k.kv_cache > 0 && at2k.kv_cache == at8k.kv_cache && at2k.activations == at8k.activations &&
              at2k.workspace == at8k.workspace,
          "memory grew between 2000 and 8000 tokens");
    CHECK(c && tr_context_n_cached(c) == 256 && tr_context_n_past(c) == 8000, "cache holds %d after %d",
          c ? tr_context_n_cached(c) : -1, c ? tr_context_n_past(c) : -1);
    tr_context_free(c);
    tr_model_free(m);
}

/* The transition re-weights a prompt step; sinks decide what the cache keeps afterwards. */
static float *prompt_then_decode(tr_model *m, const int32_t *ids, int n, int n_dec, const tr_sink_params *sp)
{
    int V = tr_model_n_vocab(m);
    tr_context_params cp = tr_context_default_params();
    cp.transition.enabled = 1;
    cp.sinks = *sp;
    cp.n_ctx = sp->enabled ? 0 : n + n_dec;
    cp.n_batch = n;
    tr_context *c = NULL;
    float *all = malloc((size_t)(n + n_dec) * V * sizeof *all);
    tr_status s = tr_context_create(m, &cp, &c);
    if (s == TR_OK)
        s = tr_eval(c, ids, n, 1);
    for (int i = 0; s == TR_OK && i < n; i++)
        memcpy(all + (size_t)i * V, tr_get_logits(c, i), (size_t)V * sizeof *all);
    for (int i = 0; s == TR_OK && i < n_dec; i++) {
        int32_t tok = (int32_t)((i * 7 + 3) % V);
        s = tr_eval(c, &tok, 1, 1);
        if (s == TR_OK)
            memcpy(all + (size_t)(n + i) * V, tr_get_logits(c, 0), (size_t)V * sizeof *all);
    }
    CHECK(s == TR_OK, "transition with sinks: %s", tr_last_error());
    tr_context_free(c);
    if (s != TR_OK) {
        free(all);
        return NULL;
    }
    return all;
}

static void test_with_transition(void)
{
    int n = 0, n_dec = 30;
    int32_t *ids = tr_test_read_ints(tr_golden("transition/stories260K.n401.ids"), &n);
    CHECK(ids && n == 401, "transition golden ids");
    if (!ids)
        return;
    tr_sink_params off = {0}, small = {.enabled = 1, .n_sink = 4, .window = 100},
                   large = {.enabled = 1, .n_sink = 4, .window = 1000};
    float *ref = NULL;
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!usable[b])
            continue;
        tr_model *m = tr_test_load("models/stories260K/hf", backends[b]);
        if (!m)
            continue;
        int V = tr_model_n_vocab(m);
        size_t row = (size_t)V;
        float *alone = prompt_then_decode(m, ids, n, n_dec, &off), *trim = prompt_then_decode(m, ids, n, n_dec, &small),
              *never = prompt_then_decode(m, ids, n, n_dec, &large);
        if (alone && trim && never) {
            double prompt = tr_nmse(alone, trim, (size_t)n * row);
            double untrimmed = tr_nmse(alone, never, (size_t)(n + n_dec) * row);
            double decode = tr_nmse(alone + n * row, trim + n * row, (size_t)n_dec * row);
            printf("transition + sinks on %-8s prompt vs transition alone %.2e, window never full %.2e, decode "
                   "after the trim vs untrimmed %.2e\n",
                   backends[b], prompt, untrimmed, decode);
            CHECK(prompt == 0 && untrimmed == 0, "%s: sinks changed the transition's step (%.3g, %.3g)", backends[b],
                  prompt, untrimmed);
            CHECK(decode > 100 * BOUND, "%s: the trim changed nothing (%.3g)", backends[b], decode);
            if (!ref) {
                ref = trim;
                trim = NULL;
            } else {
                double e = tr_nmse(ref, trim, (size_t)(n + n_dec) * row);
                printf("transition + sinks on %-8s vs cpu-ref: %.2e\n", backends[b], e);
                CHECK(e <= BOUND, "%s: transition + sinks NMSE %.3g vs cpu-ref", backends[b], e);
            }
        }
        free(alone);
        free(trim);
        free(never);
        tr_model_free(m);
    }
    free(ref);
    free(ids);
}

static void test_bad_params(void)
{
    tr_model *m = tr_test_load("models/stories260K/hf", "cpu");
    if (!m)
        return;
    struct {
        int n_sink, window, n_ctx, n_batch;
        const char *says;
    } bad[] = {{4, 0, 0, 0, "window"},        {300, 252, 0, 0, "do not fit a window"}, {-1, 10, 0, 0, "do not fit"},
               {4, 1000, 500, 0, "KV cache"}, {4, 60, 64, 0, "KV cache"},
               {4, 60, 80, 32, "steps of 32 tokens do not fit a KV cache of 80 beside the 64 kept (at most 16)"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tr_context_params cp = tr_context_default_params();
        cp.sinks = (tr_sink_params){.enabled = 1, .n_sink = bad[i].n_sink, .window = bad[i].window};
        cp.n_ctx = bad[i].n_ctx;
        cp.n_batch = bad[i].n_batch;
        tr_context *c = NULL;
        tr_status s = tr_context_create(m, &cp, &c);
        CHECK(s == TR_ERR_INVALID_ARG && c == NULL && strstr(tr_last_error(), bad[i].says),
              "sinks %d window %d n_ctx %d: status %d, '%s'", bad[i].n_sink, bad[i].window, bad[i].n_ctx, s,
              tr_last_error());
        tr_context_free(c);
    }
    /* -c alone: steps of what fits beside the kept entries, at most 512 */
    tr_context_params big = tr_context_default_params();
    big.sinks = (tr_sink_params){.enabled = 1, .n_sink = 4, .window = 60};
    big.n_ctx = 1000;
    tr_context *cb = NULL;
    int32_t ids600[600] = {0};
    CHECK(tr_context_create(m, &big, &cb) == TR_OK && tr_eval(cb, ids600, 600, 0) == TR_OK &&
              tr_context_n_cached(cb) == 64 && cb->n_batch == 512,
          "n_ctx 1000 for 4 + 60: steps of %d: %s", cb ? cb->n_batch : -1, tr_last_error());
    tr_context_free(cb);
    /* the smallest cache that works: one row beyond what is kept */
    tr_context_params cp = tr_context_default_params();
    cp.sinks = (tr_sink_params){.enabled = 1, .n_sink = 4, .window = 60};
    cp.n_ctx = 65;
    tr_context *c = NULL;
    CHECK(tr_context_create(m, &cp, &c) == TR_OK, "n_ctx 65 for 4 + 60: %s", tr_last_error());
    int32_t many[100] = {0};
    CHECK(c && tr_eval(c, many, 100, 0) == TR_OK && tr_context_n_cached(c) == 64,
          "100 tokens through a 65-row sink cache (in 1-token steps): %s", tr_last_error());
    tr_context_free(c);
    tr_model_free(m);
}

int main(void)
{
    tr_test_usable_backends("test_sinks", usable);
    test_goldens();
    test_before_first_trim();
    test_constant_memory();
    test_with_transition();
    test_bad_params();
    return tr_test_finish("test_sinks");
}
