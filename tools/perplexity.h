/* perplexity.h: the scoring shared by `transit perplexity`'s two ways of reading a text: consecutive
 * windows from an empty context (cmd_perplexity.c, as llama-perplexity) and one stream fed through
 * a single context (perplexity_stream.c, as the attention_sinks benchmark). */
#ifndef TR_PERPLEXITY_H
#define TR_PERPLEXITY_H

#include "cli.h"

/* -log softmax(logits)[target], in double. */
double ppl_token_nll(const float *logits, int n_vocab, int target);

/* Scores one window win[0..n_ctx) from an empty cache (win[0] replaced by bos if bos >= 0): adds
 * the NLL of tokens first + 1 .. n_ctx - 1 to *sum and their squares to *sum2. */
tr_status ppl_window(tr_context *c, int n_vocab, int32_t *win, int n_ctx, int first, int bos, double *sum,
                     double *sum2);

typedef struct ppl_stream_opts {
    int compare;     /* plain attention, a window without sinks, sinks, and windows of n_sink + window */
    int print_every; /* scored tokens between table rows */
    const char *plot; /* an .svg of running perplexity against tokens, or NULL */
} ppl_stream_opts;

/* The stream mode: ids[0..n) fed in steps of -b tokens (1) through one context per mode, the
 * running perplexity printed as a table. Returns the exit status. */
int ppl_stream(const cli_opts *o, tr_model *m, int32_t *ids, int n, const ppl_stream_opts *so);

#endif
