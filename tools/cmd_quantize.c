/* cmd_quantize.c: `transit quantize`, a checkpoint written as a quantized GGUF (core/convert.c,
 * core/quant_mix.c, docs/quantization.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: transit quantize IN OUT.gguf TYPE [--threads N]\n"
    "\n"
    "Writes IN (a Hugging Face directory or a GGUF file transit loads, float or already quantized) as\n"
    "a GGUF file of TYPE, which llama.cpp loads too:\n"
    "  q8_0, q4_0, q4_1, q5_0, q5_1, q6_k   every matrix of that type (the output head at least Q6_K)\n"
    "  q4_k_m, q5_k_m                       Q4_K / Q5_K, with attn_v and ffn_down of the first and last\n"
    "                                       eighths of the layers and every third between in Q6_K, and\n"
    "                                       the output head in Q6_K (llama-quantize's mixes)\n"
    "  f32, f16, bf16                       as transit convert --type\n"
    "Rows that are not a whole number of a type's blocks fall back to a 32-weight type (Q4_K -> Q5_0,\n"
    "Q5_K -> Q5_1, Q6_K -> Q8_0), as llama-quantize does; norms stay f32. docs/quantization.md says\n"
    "how each type is searched and what it costs in perplexity.\n"
    "\n"
    "  -t, --threads N   threads quantizing rows (all cores)\n";

static void show_progress(int done, int total, void *arg)
{
    (void)arg;
    if (isatty(2))
        fprintf(stderr, "\rtransit: quantizing: %d/%d tensors%s", done, total, done == total ? "\n" : "");
}

int cmd_quantize(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            char *end;
            errno = 0;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || errno || *end || v < 1 || v > 64)
                return cli_fail("quantize: --threads needs a number from 1 to 64");
            threads = (int)v;
            i++;
            continue;
        }
        if (a[0] == '-')
            return cli_fail("quantize: unknown option '%s' (see transit quantize --help)", a);
        if (n_pos == 3)
            return cli_fail("quantize: unexpected argument '%s' (see transit quantize --help)", a);
        pos[n_pos++] = a;
    }
    if (n_pos != 3)
        return cli_fail("quantize: needs IN OUT.gguf TYPE (see transit quantize --help)");
    struct stat st_in, st_out;
    if (stat(pos[0], &st_in) == 0 && stat(pos[1], &st_out) == 0 && st_in.st_ino == st_out.st_ino &&
        st_in.st_dev == st_out.st_dev)
        return cli_fail("quantize: %s: the output would overwrite the model being read", pos[1]);
    double t0 = cli_now();
    tr_status s = tr_quantize(pos[0], pos[1], pos[2], threads, show_progress, NULL);
    if (s != TR_OK)
        return cli_fail_status(s);
    struct stat st;
    double mb = stat(pos[1], &st) == 0 ? (double)st.st_size / 1e6 : 0;
    fprintf(stderr, "transit: wrote %s (%.2f MB, %s) in %.2f s\n", pos[1], mb, pos[2], cli_now() - t0);
    return 0;
}
