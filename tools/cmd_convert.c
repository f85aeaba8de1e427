/* cmd_convert.c: `transit convert`, a checkpoint written as GGUF (core/convert.c, docs/gguf.md). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char convert_help[] =
    "usage: transit convert -m MODEL -o OUT.gguf [--type f32|f16|bf16]\n"
    "\n"
    "Writes MODEL (a Hugging Face directory or a GGUF file that transit loads: LLaMA or DiffLlama) as\n"
    "a GGUF file that transit loads with the same logits. LLaMA gets the keys and tensor names of\n"
    "llama.cpp's own converter (q/k rows permuted to GGUF's RoPE order), so llama.cpp loads it too;\n"
    "DiffLlama gets transit's form of it (architecture \"diffllama\", docs/gguf.md). --type sets the\n"
    "matrices' type (default: the source's); norms and lambda vectors stay f32.\n";

static void show_progress(int done, int total, void *arg)
{
    (void)arg;
    if (isatty(2))
        fprintf(stderr, "\rtransit: converting: %d/%d tensors%s", done, total, done == total ? "\n" : "");
}

int cmd_convert(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *type = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(convert_help, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return cli_fail("convert: unknown option or missing value: '%s' (see transit convert --help)", a);
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model = argv[++i];
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            out = argv[++i];
        else if (!strcmp(a, "--type"))
            type = argv[++i];
        else
            return cli_fail("convert: unknown option '%s' (see transit convert --help)", a);
    }
    if (!model || !out)
        return cli_fail("convert: needs -m MODEL and -o OUT.gguf (see transit convert --help)");
    if (type && strcmp(type, "f32") && strcmp(type, "f16") && strcmp(type, "bf16"))
        return cli_fail("convert: --type '%s' is not one of f32, f16, bf16", type);
    struct stat st_in, st_out;
    if (stat(model, &st_in) == 0 && stat(out, &st_out) == 0 && st_in.st_ino == st_out.st_ino &&
        st_in.st_dev == st_out.st_dev)
        return cli_fail("convert: %s: the output would overwrite the model being read", out);
    double t0 = cli_now();
    tr_status s = tr_convert_to_gguf(model, out, type, show_progress, NULL);
    if (s != TR_OK)
        return cli_fail_status(s);
    struct stat st;
    double mb = stat(out, &st) == 0 ? (double)st.st_size / 1e6 : 0;
    fprintf(stderr, "transit: wrote %s (%.2f MB, %s matrices) in %.2f s\n", out, mb, type ? type : "source-typed",
            cli_now() - t0);
    return 0;
}
