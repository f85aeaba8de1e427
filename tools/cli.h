/* cli.h: shared pieces of the `transit` command: options, errors, model loading. Only tools/ may
 * print and exit; the library reports through tr_status. */
#ifndef TR_CLI_H
#define TR_CLI_H

#include <stdint.h>

#include "transit.h"

typedef struct cli_opts {
    const char *model, *prompt, *prompt_file, *ids_file, *logits_out, *backend;
    int n_predict, n_threads, n_batch, n_ctx, verbose, show_help;
    int n_given; /* -n appeared on the command line */
    tr_sampler_params sampling;
    tr_transition_params transition;
    tr_sink_params sinks; /* --sinks N turns them on; --window W (window_given) needs it */
    int window_given;
} cli_opts;

/* The help lines of --sinks and --window, shared by every command that takes them. */
#define CLI_SINKS_HELP                                                                                         \
    "      --sinks N          attention sinks (StreamingLLM, docs/attention-sinks.md): the KV cache keeps\n" \
    "                         its first N tokens and a window of the most recent ones, so the context\n"    \
    "                         never runs out and memory stays flat (0: a window without sinks)\n"           \
    "      --window W         recent tokens kept with --sinks (default: 1024 - N, or the model's trained\n" \
    "                         context - N when that is shorter, or what fits -c; at least N)\n"

/* Parses argv[first..] into o. Returns 0, or prints "transit: ..." and returns 1 on a bad option. */
int cli_parse(int argc, char **argv, int first, cli_opts *o, const char *cmd);
int cli_fail(const char *fmt, ...);     /* prints "transit: <msg>" to stderr; returns 1 */
int cli_fail_status(tr_status s);       /* prints tr_last_error(); returns 1 */
double cli_now(void);                   /* seconds, monotonic */
double cli_peak_rss_mb(void);           /* the process's peak resident memory so far, MB */
void cli_tune_blas(char **argv);         /* may re-exec with OPENBLAS_CORETYPE set (blas_tune.c) */

/* Loads the model of -m, or the default model (models/default) when -m is absent, on backend (NULL:
 * --backend, else cpu) with -t threads. Prints nothing; returns the status. */
tr_status cli_load_model(const cli_opts *o, const char *backend, tr_model **m);
const char *cli_model_path(const cli_opts *o); /* -m, or the default model's path */

/* Context parameters from the options: -c (else n_ctx, or with --sinks the policy's own size), -b,
 * the transition and the sinks (the window's default fitted to the model's trained context). */
tr_context_params cli_context_params(const cli_opts *o, const tr_model *m, int n_ctx);

/* The prompt's token ids: from --ids (no BOS added) or from -p / -f (BOS as the model says).
 * *ids is malloc'd; returns 0 or 1 after printing the error. */
int cli_prompt_ids(const cli_opts *o, tr_model *m, int32_t **ids, int *n);

int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_parity(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif
