/* cmd_perplexity.c: `transit perplexity`: a model's perplexity on a text, in consecutive windows.
 *
 * The scoring follows llama.cpp's `llama-perplexity`, so that the two engines can be compared on the
 * same GGUF file and text:
 *   - the whole text is tokenized once (BOS at its start if the model adds one);
 *   - it is cut into floor(n / c) consecutive windows of c tokens; the tail is not scored;
 *   - if the model adds BOS, the first token of every window is replaced by BOS (that token is never
 *     scored anyway), and each window is evaluated from an empty KV cache;
 *   - the logits at position i score token i + 1: by default every token after the first of each
 *     window (c - 1 per window); with --second-half only tokens c/2 + 1 .. c - 1 (c - 1 - c/2 per
 *     window), which is what llama-perplexity scores, so each scored token sees at least c/2 tokens of
 *     context.
 * Perplexity = exp(mean negative log-likelihood), with log-softmax computed in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perplexity.h"

static const char help[] =
    "usage: transit perplexity -m MODEL -f TEXT [-c 256] [--batch N] [--second-half] [options]\n"
    "       transit perplexity -m MODEL -f TEXT (--stream | --sinks N [--window W] [--compare])\n"
    "                          [-n TOKENS] [--print-every 256] [--plot FILE.svg] [options]\n"
    "\n"
    "Perplexity of the model on a text, in consecutive windows of -c tokens, each evaluated from an\n"
    "empty context, as llama.cpp's llama-perplexity does: the text is tokenized once, and the first\n"
    "token of every window is replaced by BOS when the model adds BOS. Prints the running perplexity\n"
    "after each window ([window] ppl) and a final line to stdout.\n"
    "\n"
    "  -m, --model MODEL   .gguf file or Hugging Face directory\n"
    "  -f, --file FILE     the text (or -p TEXT, or --ids FILE: token ids, used as given)\n"
    "  -c, --ctx N         window length in tokens (256)\n"
    "  -b, --batch N       evaluate each window in chunks of N tokens (the whole window)\n"
    "      --second-half   score only the second half of each window (llama-perplexity's scoring);\n"
    "                      by default every token after the first of each window is scored\n"
    "      --backend NAME  cpu (default), vulkan, cuda or opencl\n"
    "      --device N      the backend's device N, as transit info lists them (OpenCL)\n"
    "  -t, --threads N     CPU threads (all cores)\n"
    "  -v, --verbose       log what the engine does to stderr\n"
    "\n"
    "Stream mode (--stream, or --sinks): the text is fed as one stream through one context, -b tokens\n"
    "at a time (1, as the attention_sinks benchmark does), each position's logits scoring the next\n"
    "token, and the running perplexity is printed every --print-every scored tokens. --stream alone\n"
    "is plain attention over the whole stream (its KV cache grows with it).\n"
    "  -n TOKENS           the first TOKENS tokens of the text (all)\n"
    CLI_SINKS_HELP
    "      --compare       three columns over the same stream: plain attention, a window of N + W\n"
    "                      recent tokens without sinks, and the sinks; a fourth, the model's own\n"
    "                      perplexity in consecutive windows of N + W tokens over the same prefix\n"
    "      --print-every K a table row every K scored tokens (256)\n"
    "      --plot FILE.svg running perplexity against tokens, one line per column\n";

double ppl_token_nll(const float *logits, int n_vocab, int target)
{
    double mx = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - mx);
    return log(sum) + mx - (double)logits[target];
}

tr_status ppl_window(tr_context *c, int n_vocab, int32_t *win, int n_ctx, int first, int bos, double *sum,
                     double *sum2)
{
    if (bos >= 0)
        win[0] = bos;
    tr_context_reset(c);
    tr_status s = tr_eval(c, win, n_ctx, 1);
    if (s != TR_OK)
        return s;
    for (int i = first; i < n_ctx - 1; i++) {
        double nll = ppl_token_nll(tr_get_logits(c, i), n_vocab, win[i + 1]);
        *sum += nll;
        *sum2 += nll * nll;
    }
    return TR_OK;
}

int cmd_perplexity(int argc, char **argv)
{
    /* this command's own options; the rest goes to the shared parser */
    int second_half = 0, stream = 0, n_args = 0;
    ppl_stream_opts so = {.print_every = 256};
    char **args = malloc((size_t)(argc + 1) * sizeof *args);
    if (!args)
        return cli_fail("perplexity: out of memory");
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && !strcmp(argv[i], "--second-half")) {
            second_half = 1;
        } else if (i >= 2 && !strcmp(argv[i], "--stream")) {
            stream = 1;
        } else if (i >= 2 && !strcmp(argv[i], "--compare")) {
            so.compare = 1;
        } else if (i >= 2 && i + 1 < argc && !strcmp(argv[i], "--plot")) {
            so.plot = argv[++i];
        } else if (i >= 2 && i + 1 < argc && !strcmp(argv[i], "--print-every")) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 24) {
                free(args);
                return cli_fail("--print-every: expected a count of tokens >= 1, got '%s'", argv[i]);
            }
            so.print_every = (int)v;
        } else {
            args[n_args++] = argv[i];
        }
    }
    args[n_args] = NULL;
    cli_opts o;
    int bad = cli_parse(n_args, args, 2, &o, "perplexity");
    free(args); /* o keeps pointers into argv, not into args */
    if (bad)
        return 1;
    if (o.show_help) {
        fputs(help, stdout);
        return 0;
    }
    stream |= o.sinks.enabled || so.compare;
    if (so.compare && !o.sinks.enabled)
        return cli_fail("perplexity: --compare sets plain attention and a window beside the sinks: add --sinks N");
    if (so.plot && (strlen(so.plot) < 4 || strcmp(so.plot + strlen(so.plot) - 4, ".svg")))
        return cli_fail("perplexity: --plot writes an SVG picture: give a FILE.svg (got '%s')", so.plot);
    if (so.plot && !stream)
        return cli_fail("perplexity: --plot draws the stream mode's running perplexity: add --sinks N or --stream");
    if (stream && !o.sinks.enabled && o.n_ctx)
        return cli_fail("perplexity: -c sizes the sink cache; a plain stream's cache holds the whole stream");
    if (stream && second_half)
        return cli_fail("perplexity: --second-half is for windows; the stream scores every token");
    const int n_ctx = o.n_ctx ? o.n_ctx : 256;
    const int first = second_half ? n_ctx / 2 : 0; /* logits at first .. n_ctx-2 are used */
    const int per_window = n_ctx - 1 - first;
    if (per_window < 1)
        return cli_fail("perplexity: -c %d leaves no token to score in a window", n_ctx);

    tr_model *m = NULL;
    tr_context *c = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = 1;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    tr_model_info info;
    tr_model_get_info(m, &info);
    const int n_vocab = info.n_vocab;
    const int bos = info.add_bos && info.bos_id >= 0 ? info.bos_id : -1;
    if (cli_prompt_ids(&o, m, &ids, &n))
        goto done;
    if (stream) {
        if (o.n_given && o.n_predict < n)
            n = o.n_predict; /* -n: the first N tokens of the stream */
        rc = ppl_stream(&o, m, ids, n, &so);
        goto done;
    }
    const int n_windows = n / n_ctx;
    if (n_windows < 1) {
        rc = cli_fail("perplexity: the text has %d tokens, fewer than one window of %d (use a smaller -c)", n, n_ctx);
        goto done;
    }
    tr_context_params cp = tr_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = o.n_batch && o.n_batch < n_ctx ? o.n_batch : n_ctx;
    if ((s = tr_context_create(m, &cp, &c)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    fprintf(stderr, "transit: %d tokens, %d windows of %d, scoring %d tokens per window (%s)%s\n", n, n_windows,
            n_ctx, per_window, second_half ? "second half" : "all after the first",
            bos >= 0 ? ", BOS at the start of every window" : "");

    double sum = 0, sum2 = 0; /* of the per-token negative log-likelihoods */
    long count = 0;
    double t0 = cli_now();
    for (int w = 0; w < n_windows; w++) {
        if ((s = ppl_window(c, n_vocab, ids + (size_t)w * n_ctx, n_ctx, first, bos, &sum, &sum2)) != TR_OK) {
            rc = cli_fail_status(s);
            goto done;
        }
        count += n_ctx - 1 - first;
        printf("[%d] %.4f\n", w + 1, exp(sum / (double)count));
        fflush(stdout);
    }
    double dt = cli_now() - t0;
    double mean = sum / (double)count;
    /* llama-perplexity's uncertainty: the standard error of the mean NLL, carried through exp() */
    double var = count > 1 ? (sum2 / (double)count - mean * mean) * (double)count / (double)(count - 1) : 0;
    double err = exp(mean) * sqrt(var > 0 ? var / (double)count : 0);
    printf("perplexity: %.4f over %ld tokens (mean nll %.6f nats, +/- %.4f, %d windows of %d)\n", exp(mean), count,
           mean, err, n_windows, n_ctx);
    fprintf(stderr, "transit: %.2f s, %.1f tokens/s\n", dt, (double)n_windows * n_ctx / (dt > 0 ? dt : 1e-9));
    rc = 0;
done:
    free(ids);
    tr_context_free(c);
    tr_model_free(m);
    return rc;
}
