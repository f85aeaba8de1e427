/* cmd_eval.c: `transit eval`: prefill a prompt and write every position's logits as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "out_file.h"

static const char help[] =
    "usage: transit eval -m MODEL (-p TEXT | -f FILE | --ids FILE) --logits OUT.npy [options]\n"
    "\n"
    "Prefills the prompt and writes the logits of every prompt position as a float32 .npy array\n"
    "of shape [n_tokens, vocab].\n"
    "\n"
    "  -m, --model MODEL   .gguf file or Hugging Face directory (default: models/default)\n"
    "  -p, --prompt TEXT   prompt text (BOS added as the tokenizer config says)\n"
    "  -f, --file FILE     prompt text from a file\n"
    "      --ids FILE      token ids, whitespace or comma separated (no BOS added)\n"
    "      --logits OUT    output .npy file\n"
    "  -b, --batch N       prefill in chunks of N tokens (default: the whole prompt at once; with\n"
    "                      --sinks each chunk is one step of the cache policy, default 512)\n"
    CLI_SINKS_HELP
    "      --backend NAME  cpu (default), vulkan, cuda or opencl\n"
    "      --device N      the backend's device N, as transit info lists them (OpenCL)\n"
    "  -t, --threads N     CPU threads (all cores)\n"
    "      --transition       Attention Transition during prefill (docs/attention-transition.md)\n"
    "      --transition-alpha A        elimination threshold numerator (0.5)\n"
    "      --transition-beta B         share of the removed weight that is moved (0.1)\n"
    "      --transition-blocks K       row blocks per touched layer (2, at most 8)\n"
    "      --transition-min-len N      shorter prompts are untouched (400)\n"
    "      --transition-strategy S     adding (default) or multi\n"
    "  -v, --verbose       log what the engine does to stderr\n";

/* Writes a C-order float32 .npy of shape [rows, cols]. */
static int write_npy(const char *path, const float *data, int rows, int cols)
{
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows,
                     cols);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    tr_out_file out; /* written whole or not at all (core/out_file.h) */
    if (tr_out_open(&out, path, "wb") != TR_OK)
        return cli_fail("%s", tr_last_error());
    FILE *f = out.f;
    unsigned short hlen = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    size_t count = (size_t)rows * (size_t)cols;
    fwrite(data, sizeof(float), count, f); /* an error stays in f: tr_out_commit reports it */
    return tr_out_commit(&out) == TR_OK ? 0 : cli_fail("%s", tr_last_error());
}

int cmd_eval(int argc, char **argv)
{
    cli_opts o;
    if (cli_parse(argc, argv, 2, &o, "eval"))
        return 1;
    if (o.show_help) {
        fputs(help, stdout);
        return 0;
    }
    if (!o.logits_out)
        return cli_fail("eval: no output given (--logits OUT.npy)");
    tr_model *m = NULL;
    tr_context *c = NULL;
    int32_t *ids = NULL;
    float *all = NULL;
    int n = 0, rc = 1;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    if (cli_prompt_ids(&o, m, &ids, &n))
        goto done;
    tr_context_params cp = cli_context_params(&o, m, n);
    if ((s = tr_context_create(m, &cp, &c)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    tr_set_prompt_length(c, n);
    double t0 = cli_now();
    if ((s = tr_eval(c, ids, n, 1)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    double dt = cli_now() - t0;
    int V = tr_model_n_vocab(m);
    all = malloc((size_t)n * (size_t)V * sizeof *all);
    if (!all) {
        rc = cli_fail("eval: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        memcpy(all + (size_t)i * V, tr_get_logits(c, i), (size_t)V * sizeof *all);
    rc = write_npy(o.logits_out, all, n, V);
    if (!rc)
        fprintf(stderr, "transit: %d tokens, %.2f tokens/s -> %s\n", n, n / (dt > 0 ? dt : 1e-9), o.logits_out);
done:
    free(all);
    free(ids);
    tr_context_free(c);
    tr_model_free(m);
    return rc;
}
