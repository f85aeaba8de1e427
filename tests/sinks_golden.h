/* sinks_golden.h: the attention-sink golden cases of tests/golden/sinks (tools/make_sinks_golden.py,
 * from the `attention_sinks` package), shared by test_sinks and test_cuda: load a case, feed its
 * tokens through a context with the same step sizes, compare the recorded rows. */
#ifndef TR_SINKS_GOLDEN_H
#define TR_SINKS_GOLDEN_H

#include <stdint.h>

#include "transit.h"

typedef struct sinks_case {
    char name[64];
    const char *model_path; /* a model directory, under ../shared or in tests/golden/sinks/models */
    int n_sink, window;
    int n;          /* tokens fed */
    int32_t *ids;   /* [n] */
    int *steps;     /* step sizes in order; single tokens after them */
    int n_steps, max_step;
    int32_t *rows;  /* positions whose logits the golden holds */
    int n_rows, n_vocab;
    float *gold;    /* [n_rows, n_vocab] */
} sinks_case;

/* Every case of cases.json (caller frees with sinks_cases_free); a missing file is a test failure. */
sinks_case *sinks_cases_load(int *n);
void sinks_cases_free(sinks_case *cases, int n);
const sinks_case *sinks_case_find(const sinks_case *cases, int n, const char *name);

/* Feeds ids[0..n) in steps (one tr_eval each, never split: n_batch is the largest step; single
 * tokens after the listed steps) through a context with sinks sp (NULL: plain attention over a
 * cache that holds everything) of n_ctx rows (0: the default), and returns every position's logits
 * (caller frees); NULL, with a test failure, on error. */
float *sinks_stream(tr_model *m, const int32_t *ids, int n, const int *steps, int n_steps, const tr_sink_params *sp,
                    int n_ctx);

/* NMSE of the case's golden rows (those below max_tokens; 0 = all) against m streamed with the
 * case's sinks in a cache of n_ctx rows (0: default); plain != 0 streams plain attention instead. */
double sinks_case_nmse(tr_model *m, const sinks_case *c, int n_ctx, int max_tokens, int plain);

#endif
