/* cmd_run.c: `transit run`: generate a continuation of a prompt. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static const char help[] =
    "usage: transit run [-m MODEL] [-p TEXT | -f FILE | --ids FILE] [--chat] [options]\n"
    "\n"
    "Generates a continuation of the prompt (without one, a text from the BOS token alone, as\n"
    "llama2.c's run does). The continuation goes to stdout; load time and\n"
    "prompt-processing (pp) and generation (tg) speeds go to stderr. With --chat the prompt is one\n"
    "user message in the model's chat format and the reply ends with the turn (transit chat holds a\n"
    "conversation).\n"
    "\n"
    "  -m, --model MODEL      .gguf file or Hugging Face directory (default: models/default)\n"
    "  -p, --prompt TEXT      prompt text (BOS added as the tokenizer config says)\n"
    "  -f, --file FILE        prompt text from a file\n"
    "      --ids FILE         prompt as token ids (whitespace or comma separated; no BOS added)\n"
    "      --chat             the prompt is a user message: format it as the model's chat template\n"
    "                         says (docs/chat.md) and stop at the end of the reply\n"
    CLI_CHAT_HELP
    "  -n, --n-predict N      tokens to generate (128); stops early at end-of-sequence\n"
    "      --temp T           temperature (0.8); 0 = greedy\n"
    "      --top-k K          keep the K most likely tokens (40); 0 = off\n"
    "      --top-p P          keep the smallest set with probability >= P (0.95); 1 = off\n"
    "      --min-p P          drop tokens below P times the most likely one (0.05); 0 = off\n"
    "      --repeat-penalty R penalise the last --repeat-last-n (64) tokens (1.0 = off)\n"
    "      --seed S           random seed; the same seed gives the same text\n"
    "      --backend NAME     cpu (default), vulkan, cuda or opencl\n"
    "      --device N         the backend's device N, as transit info lists them (OpenCL)\n"
    "  -t, --threads N        CPU threads (all cores)\n"
    "  -b, --batch N          prefill the prompt in chunks of N tokens (512; on a terminal a prefill\n"
    "                         longer than 2 s shows its progress)\n"
    "  -c, --ctx N            context length (prompt + n-predict; with --sinks the cache's rows, more\n"
    "                         than N + W: N + W + max(-b, 256))\n"
    CLI_SINKS_HELP
    "      --transition       Attention Transition during prefill (docs/attention-transition.md)\n"
    "      --transition-alpha A        elimination threshold numerator (0.5)\n"
    "      --transition-beta B         share of the removed weight that is moved (0.1)\n"
    "      --transition-blocks K       row blocks per touched layer (2, at most 8)\n"
    "      --transition-min-len N      shorter prompts are untouched (400)\n"
    "      --transition-strategy S     adding (default) or multi\n"
    "  -v, --verbose          log what the engine does to stderr\n";

int cmd_run(int argc, char **argv)
{
    cli_opts o;
    if (cli_parse(argc, argv, 2, &o, "run"))
        return 1;
    if (o.show_help) {
        fputs(help, stdout);
        return 0;
    }
    double t0 = cli_now();
    tr_model *m = NULL;
    tr_context *c = NULL;
    tr_sampler *smp = NULL;
    int32_t *ids = NULL;
    int n_prompt = 0, rc = 1;
    tr_status s = cli_load_model(&o, NULL, &m);
    if (s != TR_OK)
        return cli_fail_status(s);
    double t_load = cli_now() - t0;
    if (!o.prompt && !o.prompt_file && !o.ids_file && !o.chat)
        o.prompt = ""; /* the BOS token alone */
    if (cli_prompt_ids(&o, m, &ids, &n_prompt))
        goto done;
    if (n_prompt == 0) {
        rc = cli_fail("the prompt is empty and this model's tokenizer adds no BOS token: give -p TEXT");
        goto done;
    }
    if (!o.n_batch && !o.sinks.enabled && n_prompt > CLI_PREFILL_CHUNK)
        o.n_batch = CLI_PREFILL_CHUNK;
    tr_context_params cp = cli_context_params(&o, m, n_prompt + o.n_predict);
    if ((s = tr_context_create(m, &cp, &c)) != TR_OK || (s = tr_sampler_create(&o.sampling, tr_model_n_vocab(m), &smp)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    for (int i = 0; i < n_prompt; i++)
        tr_sampler_accept(smp, ids[i]);
    double t1 = cli_now();
    if ((s = cli_prefill(c, ids, n_prompt)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    double t_prompt = cli_now() - t1;

    cli_generation g = {.n_max = o.n_predict, .stop = -1, .sinks = o.sinks.enabled};
    tr_chat_format fmt;
    int32_t turn_end[8];
    int n_end = 0;
    if (o.chat) { /* the reply ends with the turn, whether or not the model lists that token */
        if (cli_chat_format(&o, m, &fmt))
            goto done;
        if ((s = tr_chat_turn_end(m, fmt, turn_end, 8, &n_end)) != TR_OK) {
            rc = cli_fail_status(s);
            goto done;
        }
        g.stop = turn_end[0];
    }
    if ((s = cli_generate(c, smp, m, ids[n_prompt - 1], &g)) != TR_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    int n_gen = g.n_gen;
    double t_gen = g.seconds;
    fputc('\n', stdout);
    tr_memory_stats mem;
    tr_context_memory(c, &mem);
    fprintf(stderr, "transit: load %.1f ms | pp %d tokens, %.2f tokens/s | tg %d tokens, %.2f tokens/s | KV cache "
            "%zu bytes, %d of %d entries used | peak RSS %.1f MB\n",
            t_load * 1e3, n_prompt, n_prompt / (t_prompt > 0 ? t_prompt : 1e-9), n_gen,
            n_gen > 1 ? (n_gen - 1) / (t_gen > 0 ? t_gen : 1e-9) : 0.0, mem.kv_cache, tr_context_n_cached(c),
            tr_context_n_ctx(c), cli_peak_rss_mb());
    rc = 0;
done:
    free(ids);
    tr_sampler_free(smp);
    tr_context_free(c);
    tr_model_free(m);
    return rc;
}
