/* cmd_bench.c: `transit bench`: prompt processing (pp) and generation (tg) speed, mean +- sd over
 * repetitions, in the shape of llama-bench's pp512 / tg128 so both can run on one GGUF file; plus
 * the memory the engine planned (activations, kernel workspace, KV cache) and the peak RSS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: transit bench -m MODEL [-p 512[,2048,...]] [-n 128] [-r 5] [options]\n"
    "\n"
    "Measures prompt processing (ppN: one prefill of N random tokens) and generation (tgN: N\n"
    "tokens decoded one at a time from an empty context), each repeated -r times after one warm-up\n"
    "run, and prints tokens/s as mean +- standard deviation. Each pp row also shows the memory the\n"
    "engine planned for that prompt: activations (all intermediates of the graph), workspace (kernel\n"
    "scratch: attention rows, weight panels; on the CPU also Q4_K weights interleaved for decode)\n"
    "and the KV cache, and the process's peak RSS. After tg,\n"
    "the weight bytes read per second as a share of the memory bandwidth the backend measures in the\n"
    "same run (decode's physical limit). After each pp, its FLOP rate (matrix products and causal\n"
    "attention) as a share of the rate the backend's GEMM library (OpenBLAS, cuBLAS) reaches in the\n"
    "same run on the model's largest product at that length and on a 4096^3 product.\n"
    "\n"
    "  -m, --model MODEL   .gguf file or Hugging Face directory\n"
    "  -p LIST             prompt lengths, comma separated (512); 0 = none\n"
    "  -n N                generated tokens (128); 0 = none\n"
    "  -r N                repetitions (5)\n"
    "      --backend NAME  cpu (default), vulkan, cuda or opencl\n"
    "      --device N      the backend's device N, as transit info lists them (OpenCL)\n"
    "  -t, --threads N     CPU threads (all cores)\n"
    "  -b, --batch N       prefill in chunks of N tokens (whole prompt)\n"
    "      --transition    Attention Transition during prefill, with the --transition-* options\n"
    "                      of `transit run`\n"
    "      --ab            with --transition: run plain and transition prefills alternately and\n"
    "                      report the median time ratio of the pairs (robust to a busy machine)\n"
    "      --vs MODEL      A/B against a second model of the same shape (e.g. a DiffLlama against a\n"
    "                      LLaMA: the cost of differential attention): pp of each -p length and tg\n"
    "                      after each --depth, alternated, with the median time ratio of the pairs\n"
    "      --depth LIST    with --vs: cached tokens before each tg, comma separated (0)\n"
    CLI_SINKS_HELP
    "                      with --sinks, bench also compares decode with sinks (cache full, one entry\n"
    "                      trimmed per token) against plain decode at the same number of cached tokens\n";

typedef struct {
    double mean, sd;
} stat;

static stat summarise(const double *x, int n)
{
    stat s = {0, 0};
    for (int i = 0; i < n; i++)
        s.mean += x[i] / n;
    for (int i = 0; n > 1 && i < n; i++)
        s.sd += (x[i] - s.mean) * (x[i] - s.mean) / (n - 1);
    s.sd = sqrt(s.sd);
    return s;
}

/* One timed run: pp of n_prompt tokens (n_gen == 0) or tg of n_gen tokens, after an untimed
 * prefill of depth tokens. Returns tokens/s or -1. */
static double run_once(tr_model *m, const cli_opts *o, int n_prompt, int n_gen, int depth, tr_memory_stats *mem)
{
    int n = depth + n_prompt + n_gen, V = tr_model_n_vocab(m);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    uint64_t r = 12345;
    for (int i = 0; i < n; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = (int32_t)((r >> 33) % (uint64_t)V);
    }
    tr_context_params cp = cli_context_params(o, m, n);
    tr_context *c;
    tr_status s = tr_context_create(m, &cp, &c);
    double rate = -1;
    if (s == TR_OK && depth > 0)
        s = tr_eval(c, ids, depth, 0);
    if (s == TR_OK) {
        double t0 = cli_now();
        if (n_prompt > 0) {
            s = tr_eval(c, ids + depth, n_prompt, 0);
        } else {
            for (int i = 0; i < n_gen && s == TR_OK; i++)
                s = tr_eval(c, ids + depth + i, 1, 0);
        }
        double dt = cli_now() - t0;
        if (s == TR_OK)
            rate = (n_prompt + n_gen) / dt;
        if (mem)
            tr_context_memory(c, mem);
    }
    if (s != TR_OK)
        cli_fail_status(s);
    tr_context_free(c);
    free(ids);
    return rate;
}

/* FLOPs of one prefill of T tokens: the layers' matrix products for every token, the output head
 * for the last one (prefill keeps only its logits), and causal attention (row i sees i + 1 keys:
 * QK^T and PV each cost 2 hd FLOPs per key). */
static double prefill_flops(const tr_model_info *m, int T, double *attention)
{
    double q = (double)m->n_heads * m->head_dim, kv = (double)m->n_kv_heads * m->head_dim;
    double per_token = m->n_layers * (m->dim * (q + 2 * kv) + q * m->dim + 3.0 * m->dim * m->ffn_dim);
    *attention = m->n_layers * m->n_heads * 4.0 * m->head_dim * ((double)T * (T + 1) / 2);
    return 2.0 * T * per_token + 2.0 * m->dim * m->n_vocab + *attention;
}

/* Prefill against the GEMM library's rate, measured now on the model's largest product (the FFN's
 * T x ffn x dim) and, by the caller once for all lengths, on a 4096^3 product (near the library's
 * peak; <= 0 if unknown). */
static void pp_against_gemm(tr_model *m, const tr_model_info *info, int T, double rate, double square)
{
    double attention, flops = prefill_flops(info, T, &attention), achieved = flops * rate / T;
    double at_shape = tr_model_measure_gemm(m, T, info->ffn_dim, info->dim);
    printf("pp%d: %.3g TFLOP per prompt (attention %.1f%%): %.3g TFLOP/s", T, flops / 1e12, 100 * attention / flops,
           achieved / 1e12);
    if (at_shape > 0)
        printf(", %.0f%% of the %.3g TFLOP/s of a %dx%dx%d %s GEMM", 100 * achieved / at_shape, at_shape / 1e12, T,
               info->ffn_dim, info->dim, info->weight_type);
    if (square > 0)
        printf(", %.0f%% of 4096^3 (%.3g TFLOP/s)", 100 * achieved / square, square / 1e12);
    printf("%s\n", at_shape > 0 || square > 0 ? " measured now" : " (the backend measures no GEMM rate)");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of x[0..n) (sorted in place). */
static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

/* A/B pairs: a run of (ma, oa) then one of (mb, ob), reps times after a warm-up of each, so both
 * see the same machine load; rates in a[], b[], and the median over pairs of time(b) / time(a). */
static int ab_pairs(tr_model *ma, const cli_opts *oa, tr_model *mb, const cli_opts *ob, int np, int ng, int depth,
                    int reps, double *a, double *b, double *ratio, tr_memory_stats *mem_b, double *med)
{
    if (run_once(ma, oa, np, ng, depth, NULL) < 0 || run_once(mb, ob, np, ng, depth, mem_b) < 0)
        return 1;
    for (int r = 0; r < reps; r++) {
        a[r] = run_once(ma, oa, np, ng, depth, NULL);
        b[r] = run_once(mb, ob, np, ng, depth, NULL);
        if (a[r] < 0 || b[r] < 0)
            return 1;
        ratio[r] = a[r] / b[r]; /* rates: time ratio = rate(a) / rate(b) */
    }
    *med = median(ratio, reps);
    return 0;
}

/* A/B: plain and transition prefills alternate; the cost of the transition is the median over pairs
 * of time(transition) / time(plain). */
static int ab_transition(tr_model *m, const cli_opts *o, const int *pp, int n_pp, int reps)
{
    if (!o->transition.enabled)
        return cli_fail("bench: --ab compares against --transition; add it");
    cli_opts plain = *o;
    plain.transition.enabled = 0;
    printf("| test    | plain t/s      | transition t/s | time ratio (median of %d pairs) | workspace MB | activations MB |\n",
           reps);
    printf("| ------- | -------------- | -------------- | ------------------------------- | ------------ | -------------- |\n");
    double *ratio = malloc((size_t)reps * sizeof *ratio), *a = malloc((size_t)reps * sizeof *a),
           *b = malloc((size_t)reps * sizeof *b);
    int rc = 0;
    for (int t = 0; t < n_pp && !rc; t++) {
        tr_memory_stats mem = {0};
        double med;
        if ((rc = ab_pairs(m, &plain, m, o, pp[t], 0, 0, reps, a, b, ratio, &mem, &med)))
            break;
        stat sa = summarise(a, reps), sb = summarise(b, reps);
        printf("| pp%-5d | %7.2f ± %5.2f | %7.2f ± %5.2f | %31.3f | %12.2f | %14.1f |\n", pp[t], sa.mean, sa.sd,
               sb.mean, sb.sd, med, (double)mem.workspace / 1e6, (double)mem.activations / 1e6);
        fflush(stdout);
    }
    free(ratio);
    free(a);
    free(b);
    return rc;
}

/* A/B against a second model (--vs), meant for two models of one shape that differ in one thing,
 * e.g. LLaMA against DiffLlama: prefills of each -p length, and decoding of -n tokens after each
 * --depth of cached tokens, alternated; the cost of the second is the median time ratio of pairs. */
static int ab_models(tr_model *ma, tr_model *mb, const char *name_b, const cli_opts *o, const int *pp, int n_pp,
                     int tg, const int *depths, int n_depths, int reps)
{
    tr_model_info ia, ib;
    tr_model_get_info(ma, &ia);
    tr_model_get_info(mb, &ib);
    if (ia.n_layers != ib.n_layers || ia.dim != ib.dim || ia.n_heads != ib.n_heads || ia.n_kv_heads != ib.n_kv_heads ||
        ia.head_dim != ib.head_dim || ia.ffn_dim != ib.ffn_dim || ia.n_vocab != ib.n_vocab)
        return cli_fail("bench: --vs %s: the models differ in shape (layers, dim, heads, head_dim, ffn or vocab)", name_b);
    printf("A: %s (%s%s)   B: %s (%s%s), %d pairs alternated\n", cli_model_path(o), ia.arch,
           ia.diff_attn ? ", differential attention" : "", name_b, ib.arch, ib.diff_attn ? ", differential attention" : "",
           reps);
    printf("| test          | A t/s             | B t/s             | B time / A time (median) | range         |\n");
    printf("| ------------- | ----------------- | ----------------- | ------------------------ | ------------- |\n");
    double *ratio = malloc((size_t)reps * sizeof *ratio), *a = malloc((size_t)reps * sizeof *a),
           *b = malloc((size_t)reps * sizeof *b);
    int rc = !ratio || !a || !b;
    for (int t = 0; t < n_pp + n_depths && !rc; t++) {
        int np = t < n_pp ? pp[t] : 0, ng = t < n_pp ? 0 : tg, depth = t < n_pp ? 0 : depths[t - n_pp];
        if (np + ng == 0)
            continue;
        tr_memory_stats mem = {0};
        double med;
        if ((rc = ab_pairs(ma, o, mb, o, np, ng, depth, reps, a, b, ratio, &mem, &med)))
            break;
        char name[32];
        if (np)
            snprintf(name, sizeof name, "pp%d", np);
        else
            snprintf(name, sizeof name, "tg%d @ d%d", ng, depth);
        stat sa = summarise(a, reps), sb = summarise(b, reps);
        printf("| %-13s | %8.2f ± %6.2f | %8.2f ± %6.2f | %24.3f | %5.3f - %5.3f |\n", name, sa.mean, sa.sd, sb.mean,
               sb.sd, med, ratio[0], ratio[reps - 1]);
        fflush(stdout);
    }
    free(ratio);
    free(a);
    free(b);
    return rc;
}

/* Decode with attention sinks against plain decode at the same number of cached tokens: both
 * prefill n_sink + window tokens untimed, then decode n_gen; sinks trim one entry per step (the cache
 * stays at n_sink + window), plain grows from there. Alternated, so both see the same machine load. */
static int sinks_vs_plain(tr_model *m, const cli_opts *o, int n_gen, int reps)
{
    tr_context_params cp = cli_context_params(o, m, 0);
    int depth = cp.sinks.n_sink + cp.sinks.window;
    cli_opts plain = *o;
    plain.sinks.enabled = 0;
    plain.n_ctx = 0;
    double *a = malloc((size_t)reps * sizeof *a), *b = malloc((size_t)reps * sizeof *b),
           *ratio = malloc((size_t)reps * sizeof *ratio);
    tr_memory_stats ma = {0}, mb = {0};
    int rc = !a || !b || !ratio || run_once(m, &plain, 0, n_gen, depth, &ma) < 0 ||
             run_once(m, o, 0, n_gen, depth, &mb) < 0;
    for (int r = 0; r < reps && !rc; r++) {
        a[r] = run_once(m, &plain, 0, n_gen, depth, NULL);
        b[r] = run_once(m, o, 0, n_gen, depth, NULL);
        rc = a[r] < 0 || b[r] < 0;
        ratio[r] = b[r] / a[r];
    }
    if (!rc) {
        stat sa = summarise(a, reps), sb = summarise(b, reps);
        double med = median(ratio, reps); /* ratio is sorted now: its range is its ends */
        printf("\ndecode after %d cached tokens (the sinks' %d + %d): tg%d, %d repetitions alternated\n", depth,
               cp.sinks.n_sink, cp.sinks.window, n_gen, reps);
        printf("| cache                         |              t/s | kv MB |\n");
        printf("| ----------------------------- | ---------------- | ----- |\n");
        printf("| plain, %5d -> %5d entries | %7.2f ± %6.2f | %5.1f |\n", depth, depth + n_gen, sa.mean, sa.sd,
               (double)ma.kv_cache / 1e6);
        printf("| sinks, %5d entries, trimmed | %7.2f ± %6.2f | %5.1f |\n", depth, sb.mean, sb.sd,
               (double)mb.kv_cache / 1e6);
        printf("sinks / plain decode speed: %.3f (median of %d pairs; range %.3f .. %.3f)\n", med, reps, ratio[0],
               ratio[reps - 1]);
    }
    free(a);
    free(b);
    free(ratio);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    int pp[16] = {512}, n_pp = 1, tg = 128, reps = 5, ab = 0, depths[16] = {0}, n_depths = 1;
    const char *vs = NULL;
    /* bench's own options first (-p here is a length, not a prompt); the rest are the common ones */
    char **rest = malloc((size_t)argc * sizeof *rest);
    int n_rest = 2;
    rest[0] = argv[0];
    rest[1] = argv[1];
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "-p")) {
            n_pp = 0;
            for (char *tok = strtok(argv[++i], ","); tok && n_pp < 16; tok = strtok(NULL, ","))
                pp[n_pp++] = atoi(tok);
        } else if (i + 1 < argc && (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--n-gen"))) {
            tg = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "-r")) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--ab")) {
            ab = 1;
        } else if (i + 1 < argc && !strcmp(argv[i], "--vs")) {
            vs = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--depth")) {
            n_depths = 0;
            for (char *tok = strtok(argv[++i], ","); tok && n_depths < 16; tok = strtok(NULL, ","))
                depths[n_depths++] = atoi(tok);
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    cli_opts o;
    int bad = cli_parse(n_rest, rest, 2, &o, "bench");
    free(rest);
    if (bad)
        return 1;
    if (o.show_help) {
        fputs(help, stdout);
        return 0;
    }
    if (reps < 1 || reps > 1000 || tg < 0)
        return cli_fail("bench: need 1 <= -r <= 1000 and -n >= 0");
    for (int i = 0; i < n_pp; i++)
        if (pp[i] < 0)
            return cli_fail("bench: prompt lengths must be >= 0");
    for (int i = 0; i < n_depths; i++)
        if (depths[i] < 0)
            return cli_fail("bench: depths must be >= 0");
    tr_model *m;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    tr_model_info info;
    tr_model_get_info(m, &info);
    char types[160];
    cli_weight_types(m, types, sizeof types);
    printf("model: %s (%s, %.2f GB, %.2f B params), backend %s, transition %s, sinks %s\n", cli_model_path(&o),
           types, (double)info.weight_bytes / 1e9, (double)info.n_params / 1e9,
           o.backend ? o.backend : "cpu", o.transition.enabled ? "on" : "off", o.sinks.enabled ? "on" : "off");
    double *rates = malloc((size_t)reps * sizeof *rates), tg_rate = 0, pp_rate[16] = {0};
    int rc = 0;
    if (ab || vs) {
        tr_model *other = NULL;
        if (vs) {
            cli_opts ov = o;
            ov.model = vs;
            if ((s = cli_load_model(&ov, NULL, &other)) != TR_OK)
                rc = cli_fail_status(s);
        }
        if (!rc)
            rc = vs ? ab_models(m, other, vs, &o, pp, n_pp, tg, depths, n_depths, reps)
                    : ab_transition(m, &o, pp, n_pp, reps);
        tr_model_free(other);
        free(rates);
        tr_model_free(m);
        return rc;
    }
    printf("| test    |          t/s | activations MB | workspace MB | kv MB | peak RSS MB |\n");
    printf("| ------- | ------------ | -------------- | ------------ | ----- | ----------- |\n");

    for (int t = 0; t <= n_pp && !rc; t++) {
        int np = t < n_pp ? pp[t] : 0, ng = t < n_pp ? 0 : tg;
        if (np + ng == 0)
            continue;
        tr_memory_stats mem = {0};
        if (run_once(m, &o, np, ng, 0, &mem) < 0) { /* warm-up */
            rc = 1;
            break;
        }
        for (int r = 0; r < reps && !rc; r++)
            rc = (rates[r] = run_once(m, &o, np, ng, 0, NULL)) < 0;
        if (rc)
            break;
        stat st = summarise(rates, reps);
        char name[16];
        snprintf(name, sizeof name, "%s%d", np ? "pp" : "tg", np ? np : ng);
        printf("| %-7s | %6.2f ± %4.2f | %14.1f | %12.2f | %5.1f | %11.1f |\n", name, st.mean, st.sd,
               (double)mem.activations / 1e6, (double)mem.workspace / 1e6, (double)mem.kv_cache / 1e6,
               cli_peak_rss_mb());
        if (ng > 0)
            tg_rate = st.mean;
        else
            pp_rate[t] = st.mean;
        fflush(stdout);
    }
    int any_pp = 0;
    for (int t = 0; t < n_pp; t++)
        any_pp |= pp_rate[t] > 0;
    double square = !rc && any_pp ? tr_model_measure_gemm(m, 4096, 4096, 4096) : 0;
    for (int t = 0; t < n_pp && !rc; t++)
        if (pp_rate[t] > 0)
            pp_against_gemm(m, &info, pp[t], pp_rate[t], square);
    if (!rc && tg > 0 && o.sinks.enabled)
        rc = sinks_vs_plain(m, &o, tg, reps);
    /* decode against its physical limit: every weight it uses is read once per generated token */
    if (!rc && tg_rate > 0) {
        double bw = tr_model_measure_bandwidth(m), used = tg_rate * (double)info.decode_bytes;
        if (bw > 0)
            printf("tg%d reads %.2f GB of weights per token: %.1f GB/s, %.0f%% of the %.1f GB/s measured now "
                   "(bound: %.2f t/s)\n", tg, (double)info.decode_bytes / 1e9, used / 1e9, 100 * used / bw, bw / 1e9,
                   bw / (double)info.decode_bytes);
    }
    free(rates);
    tr_model_free(m);
    return rc;
}
