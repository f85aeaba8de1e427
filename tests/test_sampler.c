/* test_sampler.c: each sampling stage does what its definition says, measured on known
 * distributions with enough draws that the expected frequencies are tight (seeded, so exact). */
#include <math.h>
#include <string.h>

#include "test_util.h"
#include "transit.h"

#define DRAWS 40000

static void freq(const tr_sampler_params *p, const float *logits, int n, double *f)
{
    tr_sampler *s;
    CHECK(tr_sampler_create(p, n, &s) == TR_OK, "create: %s", tr_last_error());
    memset(f, 0, (size_t)n * sizeof *f);
    for (int i = 0; i < DRAWS; i++)
        f[tr_sample(s, logits)] += 1.0 / DRAWS;
    tr_sampler_free(s);
}

static tr_sampler_params plain(void)
{
    tr_sampler_params p = tr_sampler_default_params();
    p.temp = 1;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.repeat_penalty = 1;
    return p;
}

int main(void)
{
    const float probs[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    float logits[4];
    for (int i = 0; i < 4; i++)
        logits[i] = logf(probs[i]) + 3.0f; /* any offset: softmax is shift-invariant */
    double f[4];

    tr_sampler_params p = plain();
    freq(&p, logits, 4, f);
    for (int i = 0; i < 4; i++)
        CHECK(fabs(f[i] - probs[i]) < 0.01, "temp 1: token %d frequency %.3f, expected %.3f", i, f[i], probs[i]);

    p.temp = 0.5f; /* p^2, renormalised */
    freq(&p, logits, 4, f);
    double z = 0.25 + 0.09 + 0.0225 + 0.0025;
    CHECK(fabs(f[0] - 0.25 / z) < 0.01 && fabs(f[1] - 0.09 / z) < 0.01, "temp 0.5: %.3f %.3f", f[0], f[1]);

    p = plain();
    p.top_k = 2;
    freq(&p, logits, 4, f);
    CHECK(f[2] == 0 && f[3] == 0 && fabs(f[0] - 0.625) < 0.01, "top-k 2: %.3f %.3f %.3f", f[0], f[1], f[2]);

    p = plain();
    p.top_p = 0.7f; /* 0.5 + 0.3 reaches 0.7: two tokens */
    freq(&p, logits, 4, f);
    CHECK(f[2] == 0 && f[3] == 0 && fabs(f[1] - 0.375) < 0.01, "top-p 0.7: %.3f %.3f %.3f", f[0], f[1], f[2]);

    p = plain();
    p.min_p = 0.25f; /* keep p >= 0.125: three tokens */
    freq(&p, logits, 4, f);
    CHECK(f[2] > 0.1 && f[3] == 0, "min-p 0.25: %.3f %.3f", f[2], f[3]);

    /* greedy: argmax, ties to the lower id */
    tr_sampler *s;
    p = plain();
    p.temp = 0;
    tr_sampler_create(&p, 4, &s);
    CHECK(tr_sample(s, logits) == 0, "greedy");
    float tie[4] = {1, 3, 3, 0};
    CHECK(tr_sample(s, tie) == 1, "greedy tie");
    tr_sampler_free(s);

    /* repetition penalty: a positive logit is divided, a negative one multiplied */
    p.repeat_penalty = 2.0f;
    tr_sampler_create(&p, 4, &s);
    float rp[4] = {2.0f, 1.5f, -1.0f, -1.5f};
    tr_sampler_accept(s, 0);
    CHECK(tr_sample(s, rp) == 1, "penalised token 0 (2 -> 1) loses to 1.5");
    tr_sampler_free(s);
    p.repeat_penalty = 1.0f;

    /* seeds */
    int32_t a[64], b[64];
    for (int run = 0; run < 2; run++) {
        p = plain();
        p.seed = 99;
        tr_sampler_create(&p, 4, &s);
        for (int i = 0; i < 64; i++)
            (run ? b : a)[i] = tr_sample(s, logits);
        tr_sampler_free(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, same draws");

    /* bad parameters are errors, not crashes */
    p = plain();
    p.top_p = 0;
    CHECK(tr_sampler_create(&p, 4, &s) == TR_ERR_INVALID_ARG && strstr(tr_last_error(), "top_p"), "top_p 0 rejected");
    return tr_test_finish("test_sampler");
}
