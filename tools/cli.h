/* cli.h: shared pieces of the `transit` command: options, errors, model loading. Only tools/ may
 * print and exit; the library reports through tr_status. */
#ifndef TR_CLI_H
#define TR_CLI_H

#include <signal.h>
#include <stdint.h>

#include "transit.h"

typedef struct cli_opts {
    const char *model, *prompt, *prompt_file, *ids_file, *logits_out, *backend;
    int chat;                   /* --chat: the prompt is a user message in the model's chat format */
    const char *chat_template;  /* --chat-template: llama3, llama2 or chatml instead of the model's */
    const char *system;         /* --system: the chat's system prompt */
    int n_predict, n_threads, n_batch, n_ctx, verbose, show_help;
    int device; /* --device N, plus one (0: not given) */
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

/* The help lines of the chat options, shared by run, tokenize and chat. */
#define CLI_CHAT_HELP                                                                                          \
    "      --system TEXT      the system prompt of the conversation\n"                                          \
    "      --chat-template F  llama3, llama2 or chatml: the chat format, instead of the one the model's\n"     \
    "                         chat template names (docs/chat.md)\n"

/* "q4_K 61%, q6_K 38%, f32 1%": the model's weight bytes by type (one type: its name alone). */
void cli_weight_types(const tr_model *m, char *buf, size_t cap);

/* Parses argv[first..] into o. Returns 0, or prints "transit: ..." and returns 1 on a bad option. */
int cli_parse(int argc, char **argv, int first, cli_opts *o, const char *cmd);
int cli_fail(const char *fmt, ...);     /* prints "transit: <msg>" to stderr; returns 1 */
int cli_fail_status(tr_status s);       /* prints tr_last_error(); returns 1 */
double cli_now(void);                   /* seconds, monotonic */
/* Prompts longer than this are prefilled in chunks of it unless -b says otherwise (run, chat): the
 * same text on a terminal or not, and steps a progress line can follow. */
#define CLI_PREFILL_CHUNK 512
/* tr_eval of a prompt; on a terminal, a prefill that takes more than 2 s shows its progress on
 * stderr (one line, rewritten after each chunk, cleared at the end). */
tr_status cli_prefill(tr_context *c, const int32_t *ids, int n);
double cli_peak_rss_mb(void);           /* the process's peak resident memory so far, MB */
void cli_tune_blas(char **argv);         /* may re-exec with OPENBLAS_CORETYPE set (blas_tune.c) */

/* Loads the model of -m, or the default model (models/default) when -m is absent, on backend (NULL:
 * --backend, else cpu) with -t threads. Prints nothing; returns the status. */
tr_status cli_load_model(const cli_opts *o, const char *backend, tr_model **m);
const char *cli_model_path(const cli_opts *o); /* -m, or the default model's path */

/* Context parameters from the options: -c (else n_ctx, or with --sinks the policy's own size), -b,
 * the transition and the sinks (the window's default fitted to the model's trained context). */
tr_context_params cli_context_params(const cli_opts *o, const tr_model *m, int n_ctx);

/* The prompt's token ids: from --ids (no BOS added) or from -p / -f (BOS as the model says); with
 * --chat, -p / -f is a user message (after --system) in the chat format, ready for the reply.
 * *ids is malloc'd; returns 0 or 1 after printing the error. */
int cli_prompt_ids(const cli_opts *o, tr_model *m, int32_t **ids, int *n);

/* The chat format: --chat-template, else the one the model's template names. Returns 0, or 1 after
 * printing an error that names --chat-template. */
int cli_chat_format(const cli_opts *o, const tr_model *m, tr_chat_format *f);
/* Messages (--system first, when given, then user) as token ids in format f, with the flags given;
 * *ids is malloc'd. Returns 0 or 1 after printing the error. */
int cli_chat_ids(const cli_opts *o, const tr_model *m, tr_chat_format f, const char *user, int flags, int32_t **ids,
                 int *n);

/* Sampling a continuation of what a context holds, streamed to stdout as it comes. */
typedef struct cli_generation {
    int n_max;         /* tokens at most; < 0: until a stop token or a full context */
    int32_t stop;      /* a token that ends it besides the model's end-of-generation ids (a chat
                          format's end of turn), or -1 */
    int eval_last;     /* evaluate the last token kept as well, so the cache holds the whole reply */
    int sinks;         /* the context has attention sinks: it never fills */
    volatile sig_atomic_t *interrupt; /* stops it when set (may be NULL) */
    int32_t *kept;     /* the tokens kept, up to kept_cap of them (may be NULL) */
    int kept_cap;
    /* results */
    int n_gen;         /* tokens kept (and printed) */
    int32_t ended_by;  /* the stop token that ended it, or -1 */
    int context_full;  /* stopped because the next token would not fit */
    double seconds;    /* from the first sample to the end */
} cli_generation;
/* prev: the last token in the context (decides a leading space of the first piece). Returns the status
 * of the first evaluation that failed, else TR_OK. */
tr_status cli_generate(tr_context *c, tr_sampler *smp, const tr_model *m, int32_t prev, cli_generation *g);

int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_parity(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
