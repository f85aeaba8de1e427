/* test_batch: several sequences in one step (tr_decode, design §12) against each sequence alone.
 *
 * Nine sequences of different prompt lengths run through a context of eight slots the way a server
 * runs them: each starts at its own step, its prompt goes in chunks beside the other sequences'
 * decode steps, and the last to come waits for a slot that a finished one frees (tr_seq_reset). The
 * tokens after each prompt are the greedy tokens of the sequence run alone (teacher forcing), so
 * the two runs see the same inputs; every logits row of the batched run must match the alone run's
 * within design §6's f32 bound, on every backend here. The same with the Attention Transition on
 * (each sequence its own schedule) and with attention sinks (each sequence its own trims; the alone
 * run takes the same chunks, since with sinks a chunk is a step of the policy). Then what a batch
 * may not be: a sequence in two runs, an unknown sequence, more tokens than a step holds, no
 * logits asked for, a sequence whose cache is full; a refused step leaves every sequence as it was. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "transit.h"

#define N_SLOTS 8
#define N_PLANS 9
#define CHUNK 5  /* prompt tokens per step */
#define N_GEN 6  /* tokens after each prompt */
#define BOUND 1e-6

typedef struct plan {
    int32_t ids[64 + N_GEN]; /* prompt, then the alone run's greedy tokens */
    int n_prompt, start;     /* start: the step at which it joins */
    float *logits;           /* alone: [N_GEN + 1, V], after the prompt and after each token */
} plan;

static int argmax(const float *l, int V)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        best = l[v] > l[best] ? v : best;
    return best;
}

static tr_context *make_context(tr_model *m, int n_seq, int variant)
{
    tr_context_params cp = tr_context_default_params();
    cp.n_seq = n_seq;
    cp.n_ctx = 128;
    cp.n_batch = 64;
    if (variant == 1) {
        cp.transition.enabled = 1;
        cp.transition.min_len = 16;
    } else if (variant == 2) {
        cp.sinks = (tr_sink_params){.enabled = 1, .n_sink = 2, .window = 20};
    }
    tr_context *c = NULL;
    CHECK(tr_context_create(m, &cp, &c) == TR_OK, "context of %d sequences: %s", n_seq, tr_last_error());
    return c;
}

/* The plan alone: its prompt in chunks of CHUNK, then N_GEN greedy tokens one at a time. */
static void run_alone(tr_model *m, plan *p, int variant)
{
    const int V = tr_model_n_vocab(m);
    tr_context *c = make_context(m, 1, variant);
    p->logits = calloc((size_t)(N_GEN + 1) * (size_t)V, sizeof(float));
    if (!c || !p->logits)
        return;
    tr_set_prompt_length(c, p->n_prompt);
    for (int done = 0; done < p->n_prompt; done += CHUNK) {
        int n = p->n_prompt - done < CHUNK ? p->n_prompt - done : CHUNK;
        CHECK(tr_eval(c, p->ids + done, n, 0) == TR_OK, "alone: %s", tr_last_error());
    }
    for (int k = 0; k <= N_GEN; k++) {
        const float *l = tr_get_logits(c, -1);
        if (!l)
            break;
        memcpy(p->logits + (size_t)k * V, l, (size_t)V * sizeof(float));
        if (k == N_GEN)
            break;
        p->ids[p->n_prompt + k] = argmax(l, V);
        CHECK(tr_eval(c, &p->ids[p->n_prompt + k], 1, 0) == TR_OK, "alone: %s", tr_last_error());
    }
    tr_context_free(c);
}

/* Every plan through N_SLOTS slots; returns the worst NMSE against the alone runs. */
static double run_batched(tr_model *m, plan *plans, int variant, const char *backend)
{
    const int V = tr_model_n_vocab(m);
    tr_context *c = make_context(m, N_SLOTS, variant);
    if (!c)
        return INFINITY;
    int fed[N_PLANS] = {0}, plan_in[N_SLOTS];
    for (int i = 0; i < N_SLOTS; i++)
        plan_in[i] = -1;
    double worst = 0;
    int rows = 0, steps = 0, mixed = 0;
    for (int step = 0; step < 200; step++) {
        /* joins: a plan whose step has come takes a free slot */
        for (int i = 0; i < N_PLANS; i++) {
            if (plans[i].start > step || fed[i] > 0)
                continue;
            int already = 0;
            for (int s = 0; s < N_SLOTS; s++)
                already |= plan_in[s] == i;
            for (int s = 0; s < N_SLOTS && !already; s++)
                if (plan_in[s] < 0) {
                    plan_in[s] = i;
                    tr_seq_set_prompt_length(c, s, plans[i].n_prompt);
                    already = 1;
                }
        }
        /* the batch: decode tokens first, then prompt chunks */
        int32_t ids[64], seq[64], want_plan[64];
        int8_t want[64];
        int T = 0, n_decode = 0, n_prompt_runs = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int s = 0; s < N_SLOTS; s++) {
                int i = plan_in[s];
                if (i < 0)
                    continue;
                plan *p = &plans[i];
                int decoding = fed[i] >= p->n_prompt;
                if (decoding != (pass == 0) || fed[i] >= p->n_prompt + N_GEN)
                    continue;
                int n = decoding ? 1 : (p->n_prompt - fed[i] < CHUNK ? p->n_prompt - fed[i] : CHUNK);
                for (int j = 0; j < n; j++, T++) {
                    ids[T] = p->ids[fed[i] + j];
                    seq[T] = s;
                    want[T] = j == n - 1 && fed[i] + n >= p->n_prompt;
                    want_plan[T] = i;
                }
                n_decode += decoding;
                n_prompt_runs += !decoding;
            }
        if (T == 0)
            break;
        mixed |= n_decode > 0 && n_prompt_runs > 0;
        tr_batch b = {.n_tokens = T, .ids = ids, .seq_id = seq, .logits = want};
        tr_status st = tr_decode(c, &b);
        CHECK(st == TR_OK, "[%s] step %d: %s", backend, step, tr_last_error());
        if (st != TR_OK)
            break;
        steps++;
        /* compare the rows, advance the plans */
        for (int t = 0; t < T;) {
            int i = want_plan[t], n = 0;
            while (t + n < T && want_plan[t + n] == i)
                n++;
            fed[i] += n;
            t += n;
            if (!want[t - 1])
                continue;
            int k = fed[i] - plans[i].n_prompt; /* 0: after the prompt */
            const float *got = tr_get_logits(c, t - 1);
            CHECK(got != NULL, "[%s] no logits for token %d", backend, t - 1);
            if (got) {
                double e = tr_nmse(plans[i].logits + (size_t)k * V, got, (size_t)V);
                worst = e > worst ? e : worst;
                rows++;
            }
        }
        CHECK(tr_get_logits(c, 0) == NULL || want[0], "[%s] logits of a row not asked for", backend);
        /* leaves: a finished plan frees its slot */
        for (int s = 0; s < N_SLOTS; s++) {
            int i = plan_in[s];
            if (i >= 0 && fed[i] >= plans[i].n_prompt + N_GEN) {
                CHECK(tr_seq_n_past(c, s) == plans[i].n_prompt + N_GEN, "[%s] slot %d holds %d", backend, s,
                      tr_seq_n_past(c, s));
                tr_seq_reset(c, s);
                plan_in[s] = -1;
            }
        }
    }
    int all_done = 1;
    for (int i = 0; i < N_PLANS; i++)
        all_done &= fed[i] == plans[i].n_prompt + N_GEN;
    CHECK(all_done, "[%s] not every plan ran to its end", backend);
    CHECK(rows == N_PLANS * (N_GEN + 1), "[%s] %d rows compared", backend, rows);
    CHECK(mixed, "[%s] no step mixed prompt chunks with decode steps", backend);
    printf("  %-8s %s: %d plans in %d steps through %d slots, %d logits rows, worst NMSE vs alone %.2e\n", backend,
           variant == 0 ? "plain     " : variant == 1 ? "transition" : "sinks     ", N_PLANS, steps, N_SLOTS, rows,
           worst);
    tr_context_free(c);
    return worst;
}

static void test_refusals(tr_model *m)
{
    tr_context *c = make_context(m, 2, 0);
    if (!c)
        return;
    int32_t ids[70] = {1, 2, 3, 4};
    int32_t split[] = {0, 1, 0}, unknown[] = {0, 2}, both[] = {0, 1};
    int8_t none[] = {0, 0};
    tr_batch b = {.n_tokens = 3, .ids = ids, .seq_id = split};
    CHECK(tr_decode(c, &b) == TR_ERR_INVALID_ARG && strstr(tr_last_error(), "not consecutive"),
          "a sequence in two runs: %s", tr_last_error());
    b = (tr_batch){.n_tokens = 2, .ids = ids, .seq_id = unknown};
    CHECK(tr_decode(c, &b) == TR_ERR_INVALID_ARG && strstr(tr_last_error(), "sequence 2"), "unknown sequence: %s",
          tr_last_error());
    b = (tr_batch){.n_tokens = 65, .ids = ids};
    CHECK(tr_decode(c, &b) == TR_ERR_RANGE, "65 tokens in steps of 64: %s", tr_last_error());
    b = (tr_batch){.n_tokens = 2, .ids = ids, .seq_id = both, .logits = none};
    CHECK(tr_decode(c, &b) == TR_ERR_INVALID_ARG, "no logits asked for: %s", tr_last_error());
    int32_t bad[] = {1, -5};
    b = (tr_batch){.n_tokens = 2, .ids = bad, .seq_id = both};
    CHECK(tr_decode(c, &b) == TR_ERR_INVALID_ARG && strstr(tr_last_error(), "vocabulary"), "bad id: %s",
          tr_last_error());
    /* sequence 1 full: 128 positions; a step that overflows it leaves both sequences as they were */
    int32_t fill[64] = {0};
    int32_t one[64];
    for (int i = 0; i < 64; i++)
        one[i] = 1;
    for (int k = 0; k < 2; k++) {
        b = (tr_batch){.n_tokens = 64, .ids = fill, .seq_id = one};
        CHECK(tr_decode(c, &b) == TR_OK, "filling sequence 1: %s", tr_last_error());
    }
    b = (tr_batch){.n_tokens = 2, .ids = ids, .seq_id = both};
    CHECK(tr_decode(c, &b) == TR_ERR_RANGE && strstr(tr_last_error(), "sequence 1"), "a full sequence: %s",
          tr_last_error());
    CHECK(tr_seq_n_past(c, 0) == 0 && tr_seq_n_past(c, 1) == 128, "after a refused step: %d and %d",
          tr_seq_n_past(c, 0), tr_seq_n_past(c, 1));
    CHECK(tr_seq_n_past(c, 2) == -1 && tr_context_n_seq(c) == 2, "a sequence the context does not hold");
    tr_context_free(c);
    tr_context_params cp = tr_context_default_params();
    cp.n_seq = TR_MAX_SEQ + 1;
    CHECK(tr_context_create(m, &cp, &c) == TR_ERR_INVALID_ARG, "%d sequences accepted", TR_MAX_SEQ + 1);
}

int main(void)
{
    int usable[TR_TEST_N_BACKENDS];
    tr_test_usable_backends("test_batch", usable);
    /* prompts of 1 to 41 tokens; joining at steps 0 to 9; the ninth waits for a free slot */
    const int lens[N_PLANS] = {7, 1, 23, 12, 41, 3, 17, 30, 9}, starts[N_PLANS] = {0, 0, 1, 2, 2, 4, 5, 9, 3};
    float *plain_long = NULL; /* plan 4 alone without a variant: each variant must change it */
    for (int variant = 0; variant < 3; variant++) {
        tr_model *ref = tr_test_load("models/stories260K/stories260K.gguf", "cpu-ref");
        if (!ref)
            break;
        const int V = tr_model_n_vocab(ref);
        plan plans[N_PLANS];
        unsigned rng = 12345u;
        for (int i = 0; i < N_PLANS; i++) {
            plans[i] = (plan){.n_prompt = lens[i], .start = starts[i]};
            for (int j = 0; j < lens[i]; j++) {
                rng = rng * 1664525u + 1013904223u;
                plans[i].ids[j] = j == 0 ? 1 : (int32_t)(rng >> 8) % V; /* BOS first */
            }
            run_alone(ref, &plans[i], variant);
        }
        tr_model_free(ref);
        const size_t n_long = (size_t)(N_GEN + 1) * (size_t)V;
        if (variant == 0) {
            plain_long = malloc(n_long * sizeof(float));
            if (plain_long)
                memcpy(plain_long, plans[4].logits, n_long * sizeof(float));
        } else if (plain_long) {
            double d = tr_nmse(plain_long, plans[4].logits, n_long);
            printf("  variant %d changes the 41-token plan's logits by NMSE %.2e\n", variant, d);
            CHECK(d > 1e-8, "variant %d has no effect on a 41-token prompt (NMSE %.3g)", variant, d);
        }
        for (int b = 0; b < TR_TEST_N_BACKENDS; b++) {
            if (!usable[b])
                continue;
            tr_model *m = tr_test_load("models/stories260K/stories260K.gguf", tr_test_backends[b]);
            if (!m)
                continue;
            double e = run_batched(m, plans, variant, tr_test_backends[b]);
            CHECK(e <= BOUND, "%s, variant %d: batched vs alone NMSE %.3g", tr_test_backends[b], variant, e);
            tr_model_free(m);
        }
        for (int i = 0; i < N_PLANS; i++)
            free(plans[i].logits);
    }
    free(plain_long);
    tr_model *m = tr_test_load("models/stories260K/stories260K.gguf", "cpu");
    if (m)
        test_refusals(m);
    tr_model_free(m);
    return tr_test_finish("test_batch");
}
