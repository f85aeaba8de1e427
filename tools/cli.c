/* cli.c: option parsing and the helpers every subcommand shares. */
#include "cli.h"
#include "error.h"
#include "mapped_file.h"

#define TR_CLI_MAX_BLOCKS 8 /* TR_MAX_TRANSITION_BLOCKS in core/ir.h */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("transit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_status(tr_status s)
{
    const char *msg = tr_last_error();
    return cli_fail("%s", msg && *msg ? msg : tr_status_str(s));
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double cli_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024 / 1e6; /* ru_maxrss is in KiB on Linux */
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return cli_fail("%s: expected an integer in [%d, %d], got '%s'", opt, lo, hi, v);
    *out = (int)x;
    return 0;
}

static int parse_float(const char *opt, const char *v, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return cli_fail("%s: expected a number in [%g, %g], got '%s'", opt, (double)lo, (double)hi, v);
    *out = x;
    return 0;
}

int cli_parse(int argc, char **argv, int first, cli_opts *o, const char *cmd)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->sampling = tr_sampler_default_params();
    o->transition = tr_context_default_params().transition;
    o->sinks = tr_context_default_params().sinks;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->show_help = 1;
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
            continue;
        }
        if (!strcmp(a, "--transition")) {
            o->transition.enabled = 1;
            continue;
        }
        if (!strcmp(a, "--chat")) {
            o->chat = 1;
            continue;
        }
        if (a[0] != '-')
            return cli_fail("%s: unexpected argument '%s' (see transit %s --help)", cmd, a, cmd);
        if (i + 1 >= argc)
            return cli_fail("%s: option %s needs a value", cmd, a);
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            o->prompt_file = v;
        else if (!strcmp(a, "--ids"))
            o->ids_file = v;
        else if (!strcmp(a, "--logits"))
            o->logits_out = v;
        else if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "--device")) {
            bad = parse_int(a, v, 0, 63, &o->device);
            o->device++; /* 0 stays "the backend's choice" */
        }
        else if (!strcmp(a, "--system"))
            o->system = v;
        else if (!strcmp(a, "--chat-template")) {
            tr_chat_format f;
            if (tr_chat_format_from_name(v, &f) != TR_OK)
                return cli_fail("--chat-template: expected llama3, llama2 or chatml, got '%s'", v);
            o->chat_template = v;
        }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            bad = parse_int(a, v, 0, 1 << 24, &o->n_predict);
            o->n_given = 1;
        }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            bad = parse_int(a, v, 1, 1024, &o->n_threads);
        else if (!strcmp(a, "--batch") || !strcmp(a, "-b"))
            bad = parse_int(a, v, 1, 1 << 24, &o->n_batch);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx"))
            bad = parse_int(a, v, 1, 1 << 24, &o->n_ctx);
        else if (!strcmp(a, "--temp"))
            bad = parse_float(a, v, 0, 100, &o->sampling.temp);
        else if (!strcmp(a, "--top-k"))
            bad = parse_int(a, v, 0, 1 << 24, &o->sampling.top_k);
        else if (!strcmp(a, "--top-p"))
            bad = parse_float(a, v, 1e-6f, 1, &o->sampling.top_p);
        else if (!strcmp(a, "--min-p"))
            bad = parse_float(a, v, 0, 1, &o->sampling.min_p);
        else if (!strcmp(a, "--repeat-penalty"))
            bad = parse_float(a, v, 1e-3f, 100, &o->sampling.repeat_penalty);
        else if (!strcmp(a, "--repeat-last-n"))
            bad = parse_int(a, v, 0, 1 << 20, &o->sampling.repeat_last_n);
        else if (!strcmp(a, "--sinks")) {
            bad = parse_int(a, v, 0, 1 << 24, &o->sinks.n_sink);
            o->sinks.enabled = 1;
        } else if (!strcmp(a, "--window")) {
            bad = parse_int(a, v, -(1 << 24), 1 << 24, &o->sinks.window); /* the library says what is wrong */
            o->window_given = 1;
        } else if (!strcmp(a, "--transition-alpha"))
            bad = parse_float(a, v, 1e-9f, 1e9f, &o->transition.alpha);
        else if (!strcmp(a, "--transition-beta"))
            bad = parse_float(a, v, 0, 1e9f, &o->transition.beta);
        else if (!strcmp(a, "--transition-blocks"))
            bad = parse_int(a, v, 1, TR_CLI_MAX_BLOCKS, &o->transition.blocks);
        else if (!strcmp(a, "--transition-min-len"))
            bad = parse_int(a, v, 0, 1 << 30, &o->transition.min_len);
        else if (!strcmp(a, "--transition-strategy")) {
            if (!strcmp(v, "adding"))
                o->transition.strategy = TR_TRANSITION_ADDING;
            else if (!strcmp(v, "multi"))
                o->transition.strategy = TR_TRANSITION_MULTI;
            else
                return cli_fail("--transition-strategy: expected adding or multi, got '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10); /* which would take "-1" as 2^64 - 1 */
            if (errno || end == v || *end || strchr(v, '-'))
                return cli_fail("--seed: expected a non-negative integer, got '%s'", v);
            o->sampling.seed = s;
        } else
            return cli_fail("%s: unknown option '%s' (see transit %s --help)", cmd, a, cmd);
        if (bad)
            return 1;
    }
    if (o->window_given && !o->sinks.enabled)
        return cli_fail("%s: --window sets the attention-sink window: add --sinks N (--sinks 0 for a window "
                        "without sinks)", cmd);
    if (o->verbose)
        tr_set_verbose(1);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (o->n_threads > 0 && cores > 0 && o->n_threads > cores)
        fprintf(stderr, "transit: warning: -t %d is more threads than the %ld cores here; they will wait on each "
                        "other (-t %ld or less is faster)\n",
                o->n_threads, cores, cores);
    return 0;
}

tr_context_params cli_context_params(const cli_opts *o, const tr_model *m, int n_ctx)
{
    tr_context_params cp = tr_context_default_params();
    tr_model_info mi;
    tr_model_get_info(m, &mi);
    int positions = o->n_ctx > n_ctx ? o->n_ctx : n_ctx;
    static int warned; /* once per process */
    if (!o->sinks.enabled && mi.n_ctx_train > 0 && positions > mi.n_ctx_train && !warned) {
        warned = 1;
        fprintf(stderr, "transit: warning: %d positions run past the %d the model was trained on; what it says "
                        "there degrades (--sinks 4 keeps a fixed window and goes on for ever)\n",
                positions, mi.n_ctx_train);
    }
    cp.n_ctx = o->n_ctx ? o->n_ctx : o->sinks.enabled ? 0 : n_ctx;
    cp.n_batch = o->n_batch;
    cp.transition = o->transition;
    cp.sinks = o->sinks;
    if (o->sinks.enabled && !o->window_given) {
        /* what fits the model: the reference's 1024 kept tokens, or the trained context if shorter;
         * then what fits -c beside one token of a step; never fewer than the sinks */
        tr_model_info info;
        tr_model_get_info(m, &info);
        int fit = info.n_ctx_train > 0 && info.n_ctx_train < 1024 ? info.n_ctx_train : 1024;
        int w = fit - o->sinks.n_sink;
        if (o->n_ctx && w > o->n_ctx - o->sinks.n_sink - (o->n_batch ? o->n_batch : 1))
            w = o->n_ctx - o->sinks.n_sink - (o->n_batch ? o->n_batch : 1);
        cp.sinks.window = w > o->sinks.n_sink ? w : o->sinks.n_sink > 0 ? o->sinks.n_sink : 1;
    }
    return cp;
}

#ifndef TR_DEFAULT_MODEL
#define TR_DEFAULT_MODEL "models/default"
#endif
#ifndef TR_DATADIR_FROM_BIN
#define TR_DATADIR_FROM_BIN "../share/transit"
#endif

/* The model `transit` uses without -m, found in this order: TRANSIT_DEFAULT_MODEL; an installation,
 * share/transit/models/default beside the binary's bin/ (so a moved prefix still works); the source
 * tree the binary was built from. */
const char *cli_default_model(void)
{
    static char found[4096 + 64];
    const char *env = getenv("TRANSIT_DEFAULT_MODEL");
    if (env && *env)
        return env;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(found, sizeof found, "%s/" TR_DATADIR_FROM_BIN "/models/default", exe);
            if (tr_is_directory(found))
                return found;
        }
    }
    return TR_DEFAULT_MODEL;
}

const char *cli_model_path(const cli_opts *o) { return o->model ? o->model : cli_default_model(); }

tr_status cli_load_model(const cli_opts *o, const char *backend, tr_model **m)
{
    tr_model_params mp = tr_model_default_params();
    mp.backend = backend ? backend : o->backend;
    mp.n_threads = o->n_threads;
    mp.device = o->device;
    if (!o->model)
        tr_log("no -m: the default model, %s", cli_model_path(o));
    tr_status s = tr_model_load(cli_model_path(o), &mp, m);
    if (s != TR_OK && !o->model)
        tr_fail_prefix(s, "no -m MODEL given, and the default model could not be loaded");
    return s;
}

static int parse_ids(const char *path, const char *text, size_t len, int n_vocab, int32_t **ids, int *n)
{
    int cap = 256, count = 0;
    int32_t *out = malloc((size_t)cap * sizeof *out);
    if (!out)
        return cli_fail("%s: out of memory", path);
    size_t i = 0;
    while (i < len) {
        char c = text[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            i++;
            continue;
        }
        long v = 0;
        size_t start = i;
        while (i < len && text[i] >= '0' && text[i] <= '9' && v <= 1L << 31)
            v = v * 10 + (text[i++] - '0');
        if (i == start || (i < len && !strchr(" \t\r\n,", text[i]))) {
            free(out);
            return cli_fail("%s: expected token ids separated by spaces or commas, found '%c' at byte %zu", path,
                            text[i], i);
        }
        if (v >= n_vocab) {
            free(out);
            return cli_fail("%s: token id %ld is outside the vocabulary (0..%d)", path, v, n_vocab - 1);
        }
        if (count == cap) {
            int32_t *no = realloc(out, (size_t)(cap *= 2) * sizeof *out);
            if (!no) {
                free(out);
                return cli_fail("%s: out of memory", path);
            }
            out = no;
        }
        out[count++] = (int32_t)v;
    }
    if (count == 0) {
        free(out);
        return cli_fail("%s: no token ids", path);
    }
    *ids = out;
    *n = count;
    return 0;
}

int cli_chat_format(const cli_opts *o, const tr_model *m, tr_chat_format *f)
{
    if (o->chat_template)
        return tr_chat_format_from_name(o->chat_template, f) == TR_OK ? 0 : cli_fail_status(TR_ERR_INVALID_ARG);
    if (tr_model_chat_format(m, f) != TR_OK)
        return cli_fail("%s; choose a format with --chat-template llama3|llama2|chatml", tr_last_error());
    return 0;
}

int cli_chat_ids(const cli_opts *o, const tr_model *m, tr_chat_format f, const char *user, int flags, int32_t **ids,
                 int *n)
{
    tr_chat_message msgs[2];
    int n_msgs = 0;
    if (o->system && !(flags & TR_CHAT_CONTINUE))
        msgs[n_msgs++] = (tr_chat_message){"system", o->system};
    msgs[n_msgs++] = (tr_chat_message){"user", user};
    int need = 0;
    tr_status s = tr_chat_tokenize(m, f, msgs, n_msgs, flags, NULL, 0, &need);
    *ids = s == TR_OK ? malloc((size_t)(need > 0 ? need : 1) * sizeof **ids) : NULL;
    if (s == TR_OK && !*ids)
        return cli_fail("out of memory");
    if (s == TR_OK)
        s = tr_chat_tokenize(m, f, msgs, n_msgs, flags, *ids, need, n);
    if (s != TR_OK) {
        free(*ids);
        *ids = NULL;
        return cli_fail_status(s);
    }
    size_t len = 0;
    char *text = o->verbose && tr_chat_render(m, f, msgs, n_msgs, flags, NULL, 0, &len) == TR_OK ? malloc(len + 1)
                                                                                                : NULL;
    if (text && tr_chat_render(m, f, msgs, n_msgs, flags, text, len + 1, &len) == TR_OK) /* -v: what the ids say */
        fprintf(stderr, "transit: %s chat prompt, %d tokens:\n%s\n", tr_chat_format_name(f), *n, text);
    free(text);
    return 0;
}

void cli_weight_types(const tr_model *m, char *buf, size_t cap)
{
    const char *names[16];
    int tensors[16];
    size_t bytes[16], total = 0, o = 0;
    int n = tr_model_weight_types(m, names, tensors, bytes, 16);
    for (int i = 0; i < n && i < 16; i++)
        total += bytes[i];
    buf[0] = '\0';
    for (int i = 0; i < n && i < 16 && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, n == 1 ? "%s" : "%s%s %.0f%%", i ? ", " : "", names[i],
                              100.0 * (double)bytes[i] / (double)(total ? total : 1));
}

tr_status cli_generate(tr_context *c, tr_sampler *smp, const tr_model *m, int32_t prev, cli_generation *g)
{
    g->n_gen = 0;
    g->ended_by = -1;
    g->context_full = 0;
    double t0 = cli_now();
    char piece[256];
    tr_status s = TR_OK;
    while ((g->n_max < 0 || g->n_gen < g->n_max) && !(g->interrupt && *g->interrupt)) {
        int32_t tok = tr_sample(smp, tr_get_logits(c, -1));
        if (tr_model_is_eog(m, tok) || tok == g->stop) {
            g->ended_by = tok;
            break;
        }
        tr_sampler_accept(smp, tok);
        if (g->kept && g->n_gen < g->kept_cap)
            g->kept[g->n_gen] = tok;
        int len = tr_token_to_piece(m, prev, tok, piece, sizeof piece);
        if (len > 0)
            fwrite(piece, 1, (size_t)(len < (int)sizeof piece ? len : (int)sizeof piece - 1), stdout);
        fflush(stdout);
        prev = tok;
        g->n_gen++;
        if (!g->eval_last && g->n_gen == g->n_max)
            break;
        if (!g->sinks && tr_context_n_past(c) == tr_context_n_ctx(c)) {
            g->context_full = 1;
            break;
        }
        if ((s = tr_eval(c, &tok, 1, 0)) != TR_OK)
            break;
    }
    g->seconds = cli_now() - t0;
    return s;
}

typedef struct prefill_progress {
    double t0;
    int shown;
} prefill_progress;

static void show_prefill_progress(void *user, int done, int total)
{
    prefill_progress *p = user;
    double dt = cli_now() - p->t0;
    if (dt < 2.0 || done >= total)
        return;
    double rate = done / dt;
    fprintf(stderr, "\r\033[Ktransit: prefill %d / %d tokens (%d%%), %.0f tokens/s, %.0f s left", done, total,
            (int)(100.0 * done / total), rate, (total - done) / rate);
    fflush(stderr);
    p->shown = 1;
}

tr_status cli_prefill(tr_context *c, const int32_t *ids, int n)
{
    prefill_progress p = {cli_now(), 0};
    if (isatty(STDERR_FILENO))
        tr_context_set_progress(c, show_prefill_progress, &p);
    tr_status s = tr_eval(c, ids, n, 0);
    tr_context_set_progress(c, NULL, NULL);
    if (p.shown)
        fputs("\r\033[K", stderr);
    return s;
}

int cli_prompt_ids(const cli_opts *o, tr_model *m, int32_t **ids, int *n)
{
    int given = !!o->prompt + !!o->prompt_file + !!o->ids_file;
    if (given != 1)
        return cli_fail("give exactly one of -p TEXT, -f FILE or --ids FILE");
    if (o->chat && o->ids_file)
        return cli_fail("--chat formats a message: give it with -p TEXT or -f FILE, not --ids");
    if (!o->chat && (o->system || o->chat_template))
        return cli_fail("%s is for chat: add --chat", o->system ? "--system" : "--chat-template");
    size_t len = 0;
    char *text = NULL;
    const char *src = o->prompt;
    if (o->prompt) {
        len = strlen(o->prompt);
    } else {
        const char *path = o->prompt_file ? o->prompt_file : o->ids_file;
        tr_status rs = tr_read_small_file(path, (size_t)1 << 30, &text, &len); /* prompts up to 1 GiB */
        if (rs != TR_OK)
            return cli_fail_status(rs);
        src = text;
    }
    int rc;
    tr_chat_format f;
    if (o->chat) {
        char *user = o->prompt ? NULL : text; /* -f: the file is the message (a NUL inside ends it) */
        rc = cli_chat_format(o, m, &f) || cli_chat_ids(o, m, f, user ? user : o->prompt,
                                                       TR_CHAT_GENERATION_PROMPT, ids, n);
    } else if (o->ids_file) {
        rc = parse_ids(o->ids_file, src, len, tr_model_n_vocab(m), ids, n);
    } else {
        /* a first guess; the tokenizer reports the real count if it is short (byte fallback can
         * turn one byte of text into several tokens) */
        int cap = (int)len + 8;
        *ids = malloc((size_t)cap * sizeof **ids);
        tr_status s = *ids ? tr_tokenize(m, src, len, -1, *ids, cap, n) : TR_ERR_NOMEM;
        if (s == TR_ERR_RANGE && *n > cap) {
            cap = *n;
            int32_t *bigger = realloc(*ids, (size_t)cap * sizeof **ids);
            s = bigger ? tr_tokenize(m, src, len, -1, (*ids = bigger), cap, n) : TR_ERR_NOMEM;
        }
        rc = s == TR_OK ? 0 : cli_fail_status(s);
        if (rc) {
            free(*ids);
            *ids = NULL;
        }
    }
    free(text);
    return rc;
}
