/* cmd_chat.c: `transit chat`: a conversation in the terminal.
 *
 * Each line read is a user message; the reply streams as it is sampled. The conversation lives in
 * the KV cache: a turn evaluates only its new tokens (the user message in the chat format, with the
 * opening of the reply), and after the reply the format's end-of-turn tokens, so the cache always
 * holds the conversation as the whole prompt would be (tests/test_chat.c checks that identity for
 * the formats; tests/chat_pty.sh drives this loop through a pseudo-terminal). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: transit chat [-m MODEL] [--system TEXT] [--chat-template F] [options]\n"
    "\n"
    "Talk with a model: each line you type is your message, and the reply streams back. The\n"
    "conversation stays in the KV cache, so each turn computes only its own tokens. End a line with\n"
    "\\ to continue the message on the next one. The chat format comes from the model's chat template\n"
    "(docs/chat.md). Ctrl-C stops a reply; Ctrl-D leaves.\n"
    "\n"
    "  /reset                 start a new conversation (the system prompt stays)\n"
    "  /exit                  leave\n"
    "\n"
    "  -m, --model MODEL      .gguf file or Hugging Face directory with a chat template\n"
    CLI_CHAT_HELP
    "  -n, --n-predict N      tokens per reply at most (until the end of the turn)\n"
    "  -c, --ctx N            context length in tokens (the model's, at most 4096); when the\n"
    "                         conversation fills it, /reset starts over\n"
    CLI_SINKS_HELP
    "      --temp T, --top-k K, --top-p P, --min-p P, --repeat-penalty R, --seed S\n"
    "                         sampling, as for transit run\n"
    "      --backend NAME     cpu (default), vulkan, cuda or opencl\n"
    "      --device N         the backend's device N, as transit info lists them (OpenCL)\n"
    "  -t, --threads N        CPU threads (all cores)\n"
    "  -v, --verbose          each turn's token ids and position, and speeds, to stderr\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* One message from stdin: a line, or several joined where a line ends in a backslash. NULL at
 * the end of input. */
static char *read_message(int tty)
{
    char *msg = NULL, *line = NULL;
    size_t msg_len = 0, line_cap = 0;
    for (;;) {
        if (tty)
            fputs(msg ? ". " : "> ", stdout);
        fflush(stdout);
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        int more = n > 0 && line[n - 1] == '\\';
        if (more)
            line[--n] = '\n'; /* the continuation keeps its line break */
        char *grown = realloc(msg, msg_len + (size_t)n + 1);
        if (!grown)
            break;
        msg = grown;
        memcpy(msg + msg_len, line, (size_t)n + 1);
        msg_len += (size_t)n;
        if (!more)
            break;
    }
    free(line);
    return msg;
}

static void log_ids(const char *what, const int32_t *ids, int n, int at)
{
    fprintf(stderr, "transit: %s: %d tokens at position %d:", what, n, at);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Evaluates a turn's tokens unless they do not fit what is left of the context. */
static int feed(tr_context *c, tr_sampler *smp, const cli_opts *o, const int32_t *ids, int n, const char *what)
{
    int at = tr_context_n_past(c);
    if (!o->sinks.enabled && at + n > tr_context_n_ctx(c)) {
        fprintf(stderr, "transit: the conversation fills the context (%d + %d of %d tokens): /reset starts a new one%s\n",
                at, n, tr_context_n_ctx(c), o->n_ctx ? "" : " (or give a larger -c, or --sinks)");
        return 1;
    }
    if (o->verbose)
        log_ids(what, ids, n, at);
    tr_status s = cli_prefill(c, ids, n);
    if (s != TR_OK)
        return cli_fail_status(s);
    for (int i = 0; i < n; i++)
        tr_sampler_accept(smp, ids[i]);
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    cli_opts o;
    if (cli_parse(argc, argv, 2, &o, "chat"))
        return 1;
    if (o.show_help) {
        fputs(help, stdout);
        return 0;
    }
    if (o.prompt || o.prompt_file || o.ids_file || o.chat)
        return cli_fail("chat reads its messages from the terminal; for one reply to -p use transit run --chat");
    tr_model *m = NULL;
    tr_context *c = NULL;
    tr_sampler *smp = NULL;
    tr_chat_format fmt;
    int32_t turn_end[8];
    int n_end = 0, rc = 1;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    if (cli_chat_format(&o, m, &fmt))
        goto done;
    if ((s = tr_chat_turn_end(m, fmt, turn_end, 8, &n_end)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    if (!o.n_batch && !o.sinks.enabled)
        o.n_batch = CLI_PREFILL_CHUNK; /* a long pasted turn is prefilled in steps, with progress */
    tr_context_params cp = cli_context_params(&o, m, 0);
    if ((s = tr_context_create(m, &cp, &c)) != TR_OK || (s = tr_sampler_create(&o.sampling, tr_model_n_vocab(m), &smp)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    int tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "transit chat: %s, %s format, %d tokens of context%s. /reset starts over, /exit or Ctrl-D "
                "leaves.\n", cli_model_path(&o), tr_chat_format_name(fmt), tr_context_n_ctx(c),
                o.sinks.enabled ? " (attention sinks: it never fills)" : "");

    int turns = 0, n_gen_total = 0;
    double gen_seconds = 0;
    char *msg;
    while ((msg = read_message(tty))) {
        if (!strcmp(msg, "/exit")) {
            free(msg);
            break;
        }
        if (!strcmp(msg, "/reset")) {
            tr_context_reset(c);
            tr_sampler_free(smp); /* and forget the penalised history: the same start, the same reply */
            smp = NULL;
            if ((s = tr_sampler_create(&o.sampling, tr_model_n_vocab(m), &smp)) != TR_OK) {
                free(msg);
                rc = cli_fail_status(s);
                goto done;
            }
            turns = 0;
            free(msg);
            fprintf(stderr, "transit: a new conversation\n");
            continue;
        }
        if (!*msg) {
            free(msg);
            continue;
        }
        int32_t *ids = NULL;
        int n = 0;
        int flags = TR_CHAT_GENERATION_PROMPT | (turns > 0 ? TR_CHAT_CONTINUE : 0);
        int bad = cli_chat_ids(&o, m, fmt, msg, flags, &ids, &n) || feed(c, smp, &o, ids, n, "user turn");
        free(msg);
        if (bad) {
            free(ids);
            if (!tty) /* a script gets the failure as the exit status */
                goto done;
            continue;
        }
        struct sigaction sa = {.sa_handler = on_sigint}, old;
        sigemptyset(&sa.sa_mask);
        interrupted = 0;
        sigaction(SIGINT, &sa, &old); /* Ctrl-C stops this reply, not the program */
        static int32_t reply[4096];
        cli_generation g = {.n_max = o.n_given ? o.n_predict : -1, .stop = turn_end[0], .eval_last = 1,
                            .sinks = o.sinks.enabled, .interrupt = &interrupted, .kept = reply, .kept_cap = 4096};
        s = cli_generate(c, smp, m, ids[n - 1], &g);
        sigaction(SIGINT, &old, NULL);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (s != TR_OK) {
            rc = cli_fail_status(s);
            goto done;
        }
        turns++;
        n_gen_total += g.n_gen;
        gen_seconds += g.seconds;
        if (o.verbose) {
            log_ids("reply", reply, g.n_gen < 4096 ? g.n_gen : 4096, tr_context_n_past(c) - g.n_gen + g.context_full);
            fprintf(stderr, "transit: reply of %d tokens, %.2f tokens/s%s\n", g.n_gen,
                    g.n_gen / (g.seconds > 0 ? g.seconds : 1e-9),
                    g.context_full ? ", stopped: the context is full" : interrupted ? ", interrupted" : "");
        }
        else if (g.context_full)
            fprintf(stderr, "transit: the reply stopped: the context is full (/reset starts a new conversation)\n");
        /* close the reply as the format does, so the next turn continues the same conversation */
        if (!g.context_full && feed(c, smp, &o, turn_end, n_end, "end of turn")) {
            if (!tty)
                goto done;
        }
    }
    if (o.verbose && n_gen_total)
        fprintf(stderr, "transit: %d tokens generated, %.2f tokens/s\n", n_gen_total,
                n_gen_total / (gen_seconds > 0 ? gen_seconds : 1e-9));
    rc = 0;
done:
    tr_sampler_free(smp);
    tr_context_free(c);
    tr_model_free(m);
    return rc;
}
