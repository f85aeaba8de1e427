/* cmd_info.c: `transit info` and `transit tokenize`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "transition.h"

static const char info_help[] =
    "usage: transit info [-m MODEL [--transition -n N [--transition-* ...]]]\n"
    "\n"
    "Lists the backends built and whether each is usable here (the CPU's kernel set; a GPU backend\n"
    "whose module or runtime is missing, with the reason); with -m, the model's\n"
    "hyperparameters, weight type and tokenizer (for DiffLlama, each layer's lambda_init and\n"
    "lambda: design §4); with --transition -n N, the Attention Transition\n"
    "schedule (layer -> row blocks) that a prompt of N tokens gets. The --transition-alpha, -beta,\n"
    "-blocks, -min-len and -strategy options of `transit run` apply.\n";

/* The schedule a prompt of n tokens gets: one line per touched layer. */
static int print_schedule(const tr_model_info *i, const tr_transition_params *tp, int n)
{
    tr_status s = tr_transition_check(tp);
    if (s != TR_OK)
        return cli_fail_status(s);
    int iv = tr_transition_iv(tp, i->n_layers, n);
    printf("transition schedule for a %d-token prompt (%d layers; min_len %d, blocks %d, alpha %g, beta %g, %s):\n",
           n, i->n_layers, tp->min_len, tp->blocks, (double)tp->alpha, (double)tp->beta,
           tp->strategy == TR_TRANSITION_MULTI ? "multi" : "adding");
    if (iv == 0) {
        printf("  none: %s\n", i->n_layers < 4 ? "the model has fewer than 4 layers"
                               : n < tp->min_len ? "the prompt is shorter than min_len"
                                                 : "the block length rounds down to 0");
        return 0;
    }
    printf("  block length iv = %d rows\n", iv);
    for (int l = 0; l < i->n_layers; l++) {
        int32_t starts[TR_MAX_TRANSITION_BLOCKS];
        int nb = tr_transition_blocks(tp, i->n_layers, n, l, starts);
        if (nb == 0)
            continue;
        printf("  layer %2d:", l);
        for (int j = 0; j < nb; j++)
            printf(" [%d, %d)", starts[j], starts[j] + iv);
        printf("\n");
    }
    return 0;
}

static const char tokenize_help[] =
    "usage: transit tokenize [-m MODEL] (-p TEXT | -f FILE) [--chat [--system TEXT]] [-v]\n"
    "\n"
    "Prints the token ids of TEXT on one line, space separated, BOS included as the model's\n"
    "tokenizer config says (as `eval -p` and `run -p` feed them to the model). Special-token text\n"
    "(<|eot_id|>) is that token, as in Hugging Face tokenizers.\n"
    "\n"
    "      --chat             TEXT is a user message: the ids of the chat prompt `run --chat` feeds\n"
    "                         (the model's chat format, ready for the reply; docs/chat.md)\n"
    CLI_CHAT_HELP
    "  -v, --verbose          with --chat, also print the prompt as text to stderr\n";

int cmd_info(int argc, char **argv)
{
    cli_opts o;
    if (cli_parse(argc, argv, 2, &o, "info"))
        return 1;
    if (o.show_help) {
        fputs(info_help, stdout);
        return 0;
    }
    char list[4096];
    tr_backend_list(list, sizeof list);
    printf("backends:\n");
    for (char *line = list, *nl; *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n')))
            break;
        printf("  %.*s\n", (int)(nl - line), line);
    }
    if (!o.model)
        return 0;
    tr_model *m;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    tr_model_info i;
    tr_model_get_info(m, &i);
    printf("model: %s\n", o.model);
    printf("  format           %s\n", i.source);
    printf("  architecture     %s%s\n", i.arch, i.diff_attn ? " (differential attention)" : "");
    printf("  parameters       %lld (%.2f MB of weights, %.2f bits per weight)\n", (long long)i.n_params,
           (double)i.weight_bytes / 1e6, 8.0 * (double)i.weight_bytes / (double)i.n_params);
    const char *tnames[16];
    int tcount[16];
    size_t tbytes[16];
    int nt = tr_model_weight_types(m, tnames, tcount, tbytes, 16);
    printf("  weight types    ");
    for (int k = 0; k < nt && k < 16; k++)
        printf("%s %s %.2f MB (%d tensors)", k ? "," : "", tnames[k], (double)tbytes[k] / 1e6, tcount[k]);
    printf("\n");
    printf("  vocabulary       %d (tokenizer: %s, bos %d, eos %d, add bos %s)\n", i.n_vocab, i.tokenizer, i.bos_id,
           i.eos_id, i.add_bos ? "yes" : "no");
    int32_t eog[16];
    int n_eog = tr_model_eog_ids(m, eog, 16);
    printf("  stop tokens     ");
    for (int k = 0; k < n_eog && k < 16; k++)
        printf(" %d", eog[k]);
    printf("%s\n", n_eog ? "" : " none");
    const char *tmpl_source;
    tr_chat_format fmt;
    if (!tr_model_chat_template(m, &tmpl_source))
        printf("  chat format      none (no chat template; --chat-template names one)\n");
    else if (tr_model_chat_format(m, &fmt) == TR_OK)
        printf("  chat format      %s (from %s)\n", tr_chat_format_name(fmt), tmpl_source);
    else
        printf("  chat format      not recognised: %s\n", tr_last_error());
    printf("  dim              %d\n", i.dim);
    printf("  layers           %d\n", i.n_layers);
    printf("  heads            %d query, %d key/value (head_dim %d)\n", i.n_heads, i.n_kv_heads, i.head_dim);
    printf("  ffn              %d, %s gate\n", i.ffn_dim, i.activation);
    printf("  context (train)  %d\n", i.n_ctx_train);
    printf("  rms_norm_eps     %g\n", (double)i.rms_norm_eps);
    printf("  rope             theta %g, %s layout", (double)i.rope_theta,
           i.rope_layout ? "rotate-half (Hugging Face)" : "adjacent-pair (GGUF)");
    if (!strcmp(i.rope_scaling, "linear"))
        printf(", linear scaling by %g", (double)i.rope_factor);
    else if (!strcmp(i.rope_scaling, "llama3") && i.rope_orig_ctx)
        printf(", llama3 scaling (factor %g, low %g, high %g, original context %d)", (double)i.rope_factor,
               (double)i.rope_low_freq_factor, (double)i.rope_high_freq_factor, i.rope_orig_ctx);
    else if (!strcmp(i.rope_scaling, "llama3"))
        printf(", llama3 scaling (per-pair divisors: rope_freqs.weight)");
    printf("\n");
    printf("  embeddings       %s\n", i.tied_embeddings ? "tied" : "separate output matrix");
    double lambda, lambda_init;
    for (int l = 0; tr_model_diff_lambda(m, l, &lambda, &lambda_init); l++)
        printf(l ? "                   layer %2d: lambda_init %.6f  lambda %.6f\n"
                 : "  lambdas          layer %2d: lambda_init %.6f  lambda %.6f\n",
               l, lambda_init, lambda);
    int rc = 0;
    if (o.transition.enabled)
        rc = o.n_given ? print_schedule(&i, &o.transition, o.n_predict)
                       : cli_fail("info: --transition needs the prompt length, -n N");
    tr_model_free(m);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    cli_opts o;
    if (cli_parse(argc, argv, 2, &o, "tokenize"))
        return 1;
    if (o.show_help) {
        fputs(tokenize_help, stdout);
        return 0;
    }
    tr_model *m;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    int32_t *ids = NULL;
    int n = 0;
    int rc = cli_prompt_ids(&o, m, &ids, &n);
    for (int i = 0; !rc && i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    if (!rc)
        putchar('\n');
    free(ids);
    tr_model_free(m);
    return rc;
}
