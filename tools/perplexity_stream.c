/* perplexity_stream.c: `transit perplexity` over one stream, the experiment of StreamingLLM (design
 * §5, the attention_sinks package's benchmark/perplexity.py): the text is fed through one context,
 * one token at a time by default, and the logits at position i score token i + 1; the running
 * perplexity is printed every --print-every scored tokens. With --compare the same stream goes
 * through three contexts side by side: plain attention over everything (memory grows with the
 * stream), a window of n_sink + window recent tokens without sinks, and the sinks; a fourth column
 * is the model's own perplexity in consecutive windows of that length over the same prefix (what
 * `transit perplexity -c n_sink+window` prints for it), the yardstick sinks are measured against. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perplexity.h"
#include "plot_svg.h"

#define MAX_MODES 3

typedef struct mode {
    char name[48];
    tr_context *ctx;
    double sum; /* NLL of the tokens scored so far */
    double *curve; /* running perplexity at each row */
} mode;

/* Windowed perplexity over the first `upto` tokens: consecutive windows of C, as cmd_perplexity. */
typedef struct windows {
    tr_context *ctx;
    int C, done, bos;
    double sum;
    long count;
} windows;

static tr_status windows_advance(windows *w, int n_vocab, const int32_t *ids, int upto, int32_t *scratch)
{
    while ((w->done + 1) * w->C <= upto) {
        memcpy(scratch, ids + (size_t)w->done * w->C, (size_t)w->C * sizeof *scratch);
        double sum2 = 0;
        tr_status s = ppl_window(w->ctx, n_vocab, scratch, w->C, 0, w->bos, &w->sum, &sum2);
        if (s != TR_OK)
            return s;
        w->count += w->C - 1;
        w->done++;
    }
    return TR_OK;
}

static tr_status make_context(tr_model *m, const cli_opts *o, int n_ctx, const tr_sink_params *sp, int step,
                              tr_context **c)
{
    tr_context_params cp = tr_context_default_params();
    cp.n_ctx = sp->enabled ? o->n_ctx : n_ctx; /* -c: the sink cache's rows, as everywhere */
    cp.n_batch = step;
    cp.sinks = *sp;
    return tr_context_create(m, &cp, c);
}

int ppl_stream(const cli_opts *o, tr_model *m, int32_t *ids, int n, const ppl_stream_opts *so)
{
    tr_model_info info;
    tr_model_get_info(m, &info);
    const int V = info.n_vocab, step = o->n_batch ? o->n_batch : 1;
    if (n < 2)
        return cli_fail("perplexity: the stream has %d token%s: nothing to score", n, n == 1 ? "" : "s");
    tr_context_params resolved = cli_context_params(o, m, 0);
    tr_sink_params sinks = resolved.sinks, window = sinks, plain = {0};
    window.n_sink = 0;
    window.window = sinks.n_sink + sinks.window;
    mode modes[MAX_MODES];
    memset(modes, 0, sizeof modes);
    int n_modes = 0, rc = 1, n_rows_cap = (n - 1) / so->print_every + 2, n_rows = 0;
    const tr_sink_params *params[MAX_MODES];
    if (so->compare || !sinks.enabled) {
        params[n_modes] = &plain;
        snprintf(modes[n_modes++].name, sizeof modes[0].name, "plain");
    }
    if (so->compare) {
        params[n_modes] = &window;
        snprintf(modes[n_modes++].name, sizeof modes[0].name, "window %d", window.window);
    }
    if (sinks.enabled) {
        params[n_modes] = &sinks;
        snprintf(modes[n_modes++].name, sizeof modes[0].name, "sinks %d+%d", sinks.n_sink, sinks.window);
    }
    windows win = {.C = sinks.n_sink + sinks.window,
                   .bos = info.add_bos && info.bos_id >= 0 ? info.bos_id : -1};
    double *xs = malloc((size_t)n_rows_cap * sizeof *xs), *win_curve = malloc((size_t)n_rows_cap * sizeof *win_curve);
    int32_t *scratch = malloc((size_t)(win.C > 0 ? win.C : 1) * sizeof *scratch);
    tr_status s = xs && win_curve && scratch ? TR_OK : TR_ERR_NOMEM;
    for (int i = 0; s == TR_OK && i < n_modes; i++) {
        s = make_context(m, o, n, params[i], step, &modes[i].ctx);
        if (!(modes[i].curve = malloc((size_t)n_rows_cap * sizeof *modes[i].curve)))
            s = TR_ERR_NOMEM;
    }
    if (s == TR_OK && so->compare) {
        tr_sink_params none = {0};
        s = make_context(m, o, win.C, &none, win.C, &win.ctx);
    }
    if (s != TR_OK) {
        rc = s == TR_ERR_NOMEM ? cli_fail("perplexity: out of memory") : cli_fail_status(s);
        goto done;
    }
    fprintf(stderr, "transit: one stream of %d tokens, %d at a time%s\n", n, step,
            so->compare ? "; windowed perplexity (as -c) over the same prefix beside it" : "");
    printf("| tokens |");
    for (int i = 0; i < n_modes; i++)
        printf(" %-14s |", modes[i].name);
    if (so->compare)
        printf(" windows of %-3d |", win.C);
    printf("\n");
    printf("| ------ |");
    for (int i = 0; i < n_modes + so->compare; i++)
        printf(" -------------- |");
    printf("\n");
    fflush(stdout);

    int tty = isatty(2), scored = 0;
    double t0 = cli_now();
    for (int done = 0; s == TR_OK && done < n - 1;) {
        int T = step < n - 1 - done ? step : n - 1 - done; /* the last token is only a target */
        for (int i = 0; s == TR_OK && i < n_modes; i++) {
            s = tr_eval(modes[i].ctx, ids + done, T, 1);
            for (int t = 0; s == TR_OK && t < T; t++)
                modes[i].sum += ppl_token_nll(tr_get_logits(modes[i].ctx, t), V, ids[done + t + 1]);
        }
        done += T;
        int before = scored;
        scored = done;
        if (s == TR_OK && (scored / so->print_every != before / so->print_every || scored == n - 1)) {
            if (so->compare)
                s = windows_advance(&win, V, ids, scored + 1, scratch);
            if (s != TR_OK)
                break;
            if (tty)
                fprintf(stderr, "\r%*s\r", 60, "");
            xs[n_rows] = scored;
            printf("| %6d |", scored);
            for (int i = 0; i < n_modes; i++) {
                modes[i].curve[n_rows] = exp(modes[i].sum / scored);
                printf(" %14.4f |", modes[i].curve[n_rows]);
            }
            if (so->compare) {
                win_curve[n_rows] = win.count ? exp(win.sum / (double)win.count) : NAN;
                if (win.count)
                    printf(" %14.4f |", win_curve[n_rows]);
                else
                    printf(" %14s |", "-");
            }
            printf("\n");
            fflush(stdout);
            n_rows++;
        } else if (s == TR_OK && tty) {
            fprintf(stderr, "\r  %d / %d tokens (%.0f tokens/s per mode)", scored, n - 1, scored / (cli_now() - t0));
        }
    }
    if (s != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    for (int i = 0; i < n_modes; i++) {
        tr_memory_stats mem;
        tr_context_memory(modes[i].ctx, &mem);
        printf("perplexity: %-14s %.4f over %d tokens (KV cache %.2f MB)\n", modes[i].name,
               modes[i].curve[n_rows - 1], scored, (double)mem.kv_cache / 1e6);
    }
    if (so->compare && win.count)
        printf("perplexity: windows of %-4d %.4f over %ld tokens in %d windows\n", win.C, exp(win.sum / win.count),
               win.count, win.done);
    fprintf(stderr, "transit: %.2f s\n", cli_now() - t0);
    rc = 0;
    if (so->plot) {
        plot_series ser[MAX_MODES + 1];
        int n_ser = 0;
        for (int i = 0; i < n_modes; i++)
            ser[n_ser++] = (plot_series){modes[i].name, xs, modes[i].curve, n_rows, 0};
        int first_win = 0; /* the windowed curve starts at its first whole window */
        while (so->compare && first_win < n_rows && isnan(win_curve[first_win]))
            first_win++;
        char wname[48];
        snprintf(wname, sizeof wname, "windows of %d (as -c %d)", win.C, win.C);
        if (so->compare && first_win < n_rows)
            ser[n_ser++] = (plot_series){wname, xs + first_win, win_curve + first_win, n_rows - first_win, 1};
        char title[256];
        snprintf(title, sizeof title, "Running perplexity over one stream, %d token%s at a time", step,
                 step == 1 ? "" : "s");
        rc = plot_svg(so->plot, title, "tokens", "perplexity", ser, n_ser, 1);
        if (!rc)
            fprintf(stderr, "transit: plot -> %s\n", so->plot);
    }
done:
    for (int i = 0; i < n_modes; i++) {
        tr_context_free(modes[i].ctx);
        free(modes[i].curve);
    }
    tr_context_free(win.ctx);
    free(xs);
    free(win_curve);
    free(scratch);
    return rc;
}
