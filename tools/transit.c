/* transit.c: the `transit` command: dispatch to subcommands and the help text. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "transit: LLaMA-family inference on CPU (OpenBLAS), Vulkan, CUDA and OpenCL\n"
    "\n"
    "usage: transit <command> [options]\n"
    "\n"
    "commands:\n"
    "  run        generate text from a prompt (--chat: one reply in the model's chat format)\n"
    "  chat       talk with a model in the terminal; the conversation stays in the KV cache\n"
    "  eval       prefill a prompt and write the logits of every position to a .npy file\n"
    "  tokenize   print the token ids of a text (--chat: of a chat prompt)\n"
    "  info       list the backends usable here and, with -m, a model's hyperparameters\n"
    "  bench      prompt-processing and generation speed (pp512 / tg128), and memory\n"
    "  perplexity perplexity of a model on a text, in windows of -c tokens (llama-perplexity's scoring)\n"
    "             or as one stream, with attention sinks beside plain attention (--sinks, --compare)\n"
    "  convert    write a Hugging Face directory (LLaMA, DiffLlama) or GGUF file as GGUF (f32/f16/bf16)\n"
    "  quantize   write a model as a quantized GGUF (q8_0, q4_0, q4_k_m, q5_k_m, q6_k, ...)\n"
    "  parity     the same prompt on every backend against the CPU reference; non-zero exit on a\n"
    "             broken bound (for CI)\n"
    "  serve      the OpenAI HTTP API (completions, chat, streams), many requests decoded together\n"
    "  help       this text; `transit <command> --help` explains one command\n"
    "\n"
    "MODEL is a .gguf file or a Hugging Face model directory (config.json, *.safetensors,\n"
    "tokenizer.json or tokenizer.model). Without -m, commands use the model shipped with transit\n"
    "(models/default, installed under share/transit; TRANSIT_DEFAULT_MODEL overrides: a\n"
    "3.8M-parameter LLaMA trained on Shakespeare). --backend NAME picks cpu, vulkan, cuda or opencl.\n"
    "\n"
    "environment:\n"
    "  TRANSIT_CPU_KERNELS=SET   the CPU kernel set to run (v2, avx2, avx512, avx512_vnni, avx512_bf16 on\n"
    "                            x86-64); default: the best this CPU runs (transit info names it)\n"
    "  TRANSIT_BACKEND_DIR=DIR   where the GPU backend modules are (default: transit-backends/ beside\n"
    "                            libtransit.so); a backend whose module or runtime is missing is\n"
    "                            listed by transit info as unavailable, with the reason\n"
    "  TRANSIT_VERBOSE=1         log what the engine does to stderr (as -v)\n";

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, stdout);
        return argc < 2 ? 1 : 0;
    }
    cli_tune_blas(argv);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return cmd_run(argc, argv);
    if (!strcmp(cmd, "chat"))
        return cmd_chat(argc, argv);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc, argv);
    if (!strcmp(cmd, "tokenize"))
        return cmd_tokenize(argc, argv);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc, argv);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc, argv);
    if (!strcmp(cmd, "parity"))
        return cmd_parity(argc, argv);
    if (!strcmp(cmd, "perplexity"))
        return cmd_perplexity(argc, argv);
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc, argv);
    if (!strcmp(cmd, "quantize"))
        return cmd_quantize(argc, argv);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc, argv);
    return cli_fail("unknown command '%s' (see transit help)", cmd);
}
