/* sampler.c: choosing the next token from logits.
 *
 * The chain, in the order llama.cpp applies it so that the same settings mean the same thing:
 * repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw. temp <= 0 is greedy
 * (argmax after the penalty; ties go to the lower id). The generator is a 64-bit PCG-style LCG
 * with an xorshift output, seeded from tr_sampler_params.seed: same seed, same text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "live.h"
#include "transit.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct tr_sampler {
    tr_sampler_params p;
    int n_vocab;
    uint64_t rng;
    cand *cands;
    int32_t *recent; /* ring of the last repeat_last_n accepted tokens */
    int n_recent, recent_head;
};

tr_sampler_params tr_sampler_default_params(void)
{
    return (tr_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                               .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0x5eed};
}

static uint64_t next_u64(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t x = *s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static double next_unit(uint64_t *s) { return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }

tr_status tr_sampler_create(const tr_sampler_params *params, int n_vocab, tr_sampler **out)
{
    *out = NULL;
    tr_sampler_params p = params ? *params : tr_sampler_default_params();
    if (n_vocab <= 0 || p.top_k < 0 || p.repeat_last_n < 0 || !(p.top_p > 0 && p.top_p <= 1) ||
        !(p.min_p >= 0 && p.min_p <= 1) || !(p.repeat_penalty > 0) || isnan(p.temp))
        return tr_fail(TR_ERR_INVALID_ARG,
                       "sampler: need top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1, repeat_penalty > 0");
    tr_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return tr_fail(TR_ERR_NOMEM, "sampler: out of memory");
    tr_live_add(TR_LIVE_SAMPLER, 1);
    s->p = p;
    s->n_vocab = n_vocab;
    s->rng = p.seed ^ 0x9e3779b97f4a7c15ULL;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->recent = malloc((size_t)(p.repeat_last_n > 0 ? p.repeat_last_n : 1) * sizeof *s->recent);
    if (!s->cands || !s->recent) {
        tr_sampler_free(s);
        return tr_fail(TR_ERR_NOMEM, "sampler: out of memory");
    }
    *out = s;
    return TR_OK;
}

void tr_sampler_free(tr_sampler *s)
{
    if (!s)
        return;
    tr_live_add(TR_LIVE_SAMPLER, -1);
    free(s->cands);
    free(s->recent);
    free(s);
}

void tr_sampler_accept(tr_sampler *s, int32_t id)
{
    if (s->p.repeat_last_n == 0)
        return;
    s->recent[s->recent_head] = id;
    s->recent_head = (s->recent_head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n)
        s->n_recent++;
}

static int by_logit_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Applies the repetition penalty to cands (indexed by id), as llama.cpp and CTRL do: a positive
 * logit is divided by the penalty, a negative one multiplied, once per distinct recent token. */
static void penalise(tr_sampler *s)
{
    if (s->p.repeat_penalty == 1.0f)
        return;
    for (int i = 0; i < s->n_recent; i++) {
        int32_t id = s->recent[i];
        if (id < 0 || id >= s->n_vocab)
            continue;
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= s->recent[j] == id;
        if (seen)
            continue;
        float *l = &s->cands[id].logit;
        *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
    }
}

int32_t tr_sample(tr_sampler *s, const float *logits)
{
    int n = s->n_vocab;
    for (int i = 0; i < n; i++)
        s->cands[i] = (cand){isnan(logits[i]) ? -INFINITY : logits[i], i};
    penalise(s);
    if (s->p.temp <= 0) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (s->cands[i].logit > s->cands[best].logit)
                best = i;
        return s->cands[best].id;
    }
    /* top-k: sort only as much as needed (whole vocab when k is off; 32K sorts in ~1 ms) */
    qsort(s->cands, (size_t)n, sizeof *s->cands, by_logit_desc);
    if (s->p.top_k > 0 && s->p.top_k < n)
        n = s->p.top_k;
    /* probabilities at temperature 1 for top-p and min-p */
    double mx = s->cands[0].logit, sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)s->cands[i].logit - mx);
    if (s->p.top_p < 1.0f) {
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += exp((double)s->cands[i].logit - mx) / sum;
            if (cum >= s->p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        /* p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p) */
        double cut = mx + log((double)s->p.min_p);
        int keep = 1;
        while (keep < n && s->cands[keep].logit >= cut)
            keep++;
        n = keep;
    }
    /* temperature, then a draw */
    double total = 0;
    for (int i = 0; i < n; i++)
        total += exp(((double)s->cands[i].logit - mx) / s->p.temp);
    double r = next_unit(&s->rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exp(((double)s->cands[i].logit - mx) / s->p.temp);
        if (r < acc)
            return s->cands[i].id;
    }
    return s->cands[n - 1].id;
}
