/* cmd_serve.c: `transit serve`: options, start-up, /metrics, and the shutdown on SIGINT / SIGTERM. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cli.h"
#include "serve.h"

static const char help[] =
    "usage: transit serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [options]\n"
    "\n"
    "An HTTP server speaking the OpenAI API: POST /v1/completions and /v1/chat/completions (\"stream\":\n"
    "true answers as server-sent events ending with data: [DONE]), GET /v1/models, /health and /metrics\n"
    "(Prometheus text). Up to --parallel requests are decoded together, one step advancing all of them\n"
    "(the weights are read once per step); requests join and leave between steps, and prompts go in\n"
    "chunks beside the others' decoding. Further requests wait in a queue; past it the answer is 503\n"
    "with Retry-After. SIGINT or SIGTERM: no new requests, the running ones get --grace seconds to\n"
    "finish, then the server exits with 0. docs/serve.md has the details.\n"
    "\n"
    "  -m, --model MODEL      .gguf file or Hugging Face directory (default: models/default)\n"
    "      --host ADDR        IPv4 address to listen on (127.0.0.1)\n"
    "      --port N           TCP port (8080)\n"
    "      --parallel N       requests decoded at once, each a sequence of the context (4)\n"
    "  -c, --ctx-size N       positions per sequence: prompt + reply (the model's trained context,\n"
    "                         at most 4096)\n"
    "      --queue N          requests that may wait for a sequence (4 x --parallel)\n"
    "  -b, --batch N          tokens one step may hold in all (512)\n"
    "      --chunk N          prompt tokens a sequence adds per step (128)\n"
    "      --max-tokens N     the largest max_tokens a request may ask for, and the default of chat\n"
    "                         requests (2048)\n"
    "      --max-body N       bytes a request body may have (1048576); more: 413\n"
    "      --timeout S        seconds a request may take, waiting and running (600); more: 408\n"
    "      --grace S          seconds running requests get to finish at shutdown (10)\n"
    "      --api-key KEY      every route but /health wants Authorization: Bearer KEY (also\n"
    "                         TRANSIT_API_KEY)\n"
    "      --model-id NAME    the model's name in the API (the file's name)\n"
    "      --chat-template F  llama3, llama2 or chatml, instead of the one the model's template names\n"
    CLI_SINKS_HELP
    "      --backend NAME     cpu (default), vulkan, cuda or opencl\n"
    "      --device N         the backend's device N, as transit info lists them (OpenCL)\n"
    "  -t, --threads N        CPU threads (all cores)\n"
    "  -v, --verbose          log each refused request and what the engine does\n";

typedef struct serve_args {
    const char *host, *api_key, *model_id;
    double port, parallel, queue, chunk, max_tokens, max_body, timeout, grace; /* checked ranges below */
} serve_args;

/* Takes serve's own options out of argv (the rest goes to cli_parse). 0, or 1 after an error. */
static int take_serve_args(int *argc, char **argv, serve_args *a)
{
    const struct {
        const char *name;
        double lo, hi, *v; /* integers but --timeout and --grace */
    } nums[] = {
        {"--port", 0, 65535, &a->port},          {"--parallel", 1, TR_MAX_SEQ, &a->parallel},
        {"--queue", 0, 1e6, &a->queue},          {"--chunk", 1, 1 << 20, &a->chunk},
        {"--max-tokens", 1, 1 << 24, &a->max_tokens}, {"--max-body", 64, 1 << 30, &a->max_body},
        {"--timeout", 0.001, 1e7, &a->timeout},  {"--grace", 0, 1e6, &a->grace},
    };
    const struct {
        const char *name, **v;
    } strs[] = {{"--host", &a->host}, {"--api-key", &a->api_key}, {"--model-id", &a->model_id}};
    int out = 2;
    for (int i = 2; i < *argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--ctx-size")) { /* the name for -c */
            argv[out++] = "-c";
            continue;
        }
        int num = -1, str = -1;
        for (int k = 0; k < (int)(sizeof nums / sizeof nums[0]); k++)
            num = strcmp(o, nums[k].name) ? num : k;
        for (int k = 0; k < (int)(sizeof strs / sizeof strs[0]); k++)
            str = strcmp(o, strs[k].name) ? str : k;
        if (num < 0 && str < 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc)
            return cli_fail("serve: option %s needs a value", o);
        const char *v = argv[++i];
        if (str >= 0) {
            *strs[str].v = v;
            continue;
        }
        char *end;
        double x = strtod(v, &end);
        int integer = strcmp(o, "--timeout") && strcmp(o, "--grace");
        if (end == v || *end || !(x >= nums[num].lo && x <= nums[num].hi) || (integer && x != (double)(long)x))
            return cli_fail("serve: %s: expected %s in [%g, %g], got '%s'", o, integer ? "an integer" : "a number",
                            nums[num].lo, nums[num].hi, v);
        *nums[num].v = x;
    }
    *argc = out;
    return 0;
}

char *srv_metrics(srv_state *s)
{
    static const char *outcomes[] = {"ok", "bad_request", "busy", "timeout", "cancelled", "failed"};
    size_t cap = 4096, n = 0;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    pthread_mutex_lock(&s->mu);
    size_t kv_used = 0;
    for (int i = 0; i < s->o.parallel; i++)
        kv_used += (size_t)tr_seq_n_cached(s->ctx, i);
    double up = cli_now() - s->t_start;
#define LINE(...) (n += (size_t)snprintf(t + n, n < cap ? cap - n : 0, __VA_ARGS__))
    LINE("# HELP transit_requests_total Requests answered, by outcome.\n# TYPE transit_requests_total counter\n");
    for (int i = 0; i < 6; i++)
        LINE("transit_requests_total{outcome=\"%s\"} %llu\n", outcomes[i], (unsigned long long)s->requests[i]);
    LINE("# HELP transit_prompt_tokens_total Prompt tokens evaluated.\n# TYPE transit_prompt_tokens_total counter\n"
         "transit_prompt_tokens_total %llu\n", (unsigned long long)s->prompt_tokens);
    LINE("# HELP transit_generated_tokens_total Tokens generated.\n# TYPE transit_generated_tokens_total counter\n"
         "transit_generated_tokens_total %llu\n", (unsigned long long)s->gen_tokens);
    LINE("# HELP transit_steps_total Batched evaluation steps.\n# TYPE transit_steps_total counter\n"
         "transit_steps_total %llu\n", (unsigned long long)s->n_steps);
    LINE("# HELP transit_busy_seconds_total Seconds spent in evaluation steps.\n"
         "# TYPE transit_busy_seconds_total counter\ntransit_busy_seconds_total %.3f\n", s->busy_seconds);
    LINE("# HELP transit_tokens_per_second Prompt and generated tokens per second of evaluation.\n"
         "# TYPE transit_tokens_per_second gauge\ntransit_tokens_per_second %.2f\n",
         s->busy_seconds > 0 ? (double)(s->prompt_tokens + s->gen_tokens) / s->busy_seconds : 0.0);
    LINE("# HELP transit_generated_tokens_per_second Generated tokens per second since start.\n"
         "# TYPE transit_generated_tokens_per_second gauge\ntransit_generated_tokens_per_second %.2f\n",
         up > 0 ? (double)s->gen_tokens / up : 0.0);
    LINE("# HELP transit_sequences_active Requests being decoded.\n# TYPE transit_sequences_active gauge\n"
         "transit_sequences_active %d\n", s->n_active);
    LINE("# HELP transit_sequences_queued Requests waiting for a sequence.\n# TYPE transit_sequences_queued gauge\n"
         "transit_sequences_queued %d\n", s->n_queued);
    LINE("# HELP transit_kv_cache_tokens Entries the KV caches hold.\n# TYPE transit_kv_cache_tokens gauge\n"
         "transit_kv_cache_tokens %zu\n", kv_used);
    LINE("# HELP transit_kv_cache_usage_ratio Share of the KV cache in use.\n# TYPE transit_kv_cache_usage_ratio gauge\n"
         "transit_kv_cache_usage_ratio %.4f\n",
         (double)kv_used / ((double)s->o.parallel * (double)tr_context_n_ctx(s->ctx)));
#undef LINE
    pthread_mutex_unlock(&s->mu);
    if (n >= cap) { /* cannot happen with these lines; keep the text whole rather than cut */
        free(t);
        return strdup("# metrics too long\n");
    }
    return t;
}

static const char *base_name(const char *path)
{
    const char *b = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' && p[1])
            b = p + 1;
    return b;
}

int cmd_serve(int argc, char **argv)
{
    serve_args a = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = -1, .chunk = 128, .max_tokens = 2048,
                    .max_body = 1 << 20, .timeout = 600, .grace = 10};
    if (take_serve_args(&argc, argv, &a))
        return 1;
    cli_opts o;
    if (cli_parse(argc, argv, 2, &o, "serve"))
        return 1;
    if (o.show_help) {
        fputs(help, stdout);
        return 0;
    }
    if (o.prompt || o.prompt_file || o.ids_file || o.chat || o.transition.enabled)
        return cli_fail("serve: prompts come with the requests (-p, -f, --ids, --chat and --transition are for run)");
    if (!a.api_key)
        a.api_key = getenv("TRANSIT_API_KEY");
    tr_set_verbose(o.verbose);

    /* SIGINT and SIGTERM go to sigwait below, not to whichever thread runs */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_state s = {0};
    tr_status st = cli_load_model(&o, NULL, &s.model);
    if (st != TR_OK)
        return cli_fail_status(st);
    tr_model_info info;
    tr_model_get_info(s.model, &info);
    int ctx_size = o.n_ctx ? o.n_ctx : info.n_ctx_train > 0 && info.n_ctx_train < 4096 ? info.n_ctx_train : 4096;
    tr_context_params cp = cli_context_params(&o, s.model, ctx_size);
    const int parallel = (int)a.parallel, chunk = (int)a.chunk;
    cp.n_seq = parallel;
    cp.n_batch = o.n_batch ? o.n_batch : 512;
    if (!o.sinks.enabled && cp.n_batch > ctx_size * parallel)
        cp.n_batch = ctx_size * parallel;
    tr_chat_format fmt = TR_CHAT_NONE;
    if (o.chat_template)
        tr_chat_format_from_name(o.chat_template, &fmt);
    else if (tr_model_chat_format(s.model, &fmt) != TR_OK)
        fmt = TR_CHAT_NONE; /* chat requests are refused with a message naming --chat-template */
    tr_clear_error();
    if ((st = tr_context_create(s.model, &cp, &s.ctx)) != TR_OK) {
        tr_model_free(s.model);
        return cli_fail_status(st);
    }
    s.o = (srv_opts){
        .host = a.host, .port = (int)a.port, .parallel = parallel, .ctx_size = tr_context_n_ctx(s.ctx),
        .queue_max = a.queue >= 0 ? (int)a.queue : 4 * parallel, .n_batch = cp.n_batch,
        .chunk = chunk < cp.n_batch ? chunk : cp.n_batch, .max_tokens = (int)a.max_tokens, .max_body = (size_t)a.max_body,
        .timeout = a.timeout, .api_key = a.api_key && *a.api_key ? a.api_key : NULL,
        .model_id = a.model_id ? a.model_id : base_name(cli_model_path(&o)), .chat_format = fmt,
        .sinks = o.sinks.enabled, .verbose = o.verbose,
    };
    s.slot = calloc((size_t)parallel, sizeof *s.slot);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.work, NULL);
    pthread_cond_init(&s.progress, NULL);
    s.created = (long)time(NULL);
    int rc = 1;
    struct MHD_Daemon *d = NULL;
    if (!s.slot || srv_start(&s)) {
        cli_fail("serve: cannot start the scheduler");
        goto done;
    }
    if (!(d = srv_http_start(&s))) {
        srv_stop(&s, 0);
        goto done;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr,
            "transit serve: %s on http://%s:%d (model '%s', backend %s, %d sequences of %d positions, steps of %d "
            "tokens, chat format %s%s)\n",
            cli_model_path(&o), s.o.host, di ? (int)di->port : s.o.port, s.o.model_id,
            o.backend ? o.backend : "cpu", s.o.parallel, s.o.ctx_size, s.o.n_batch, tr_chat_format_name(fmt),
            s.o.api_key ? ", API key required" : "");
    fflush(stderr);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "transit serve: %s: finishing the running requests (at most %g s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", a.grace);
    MHD_quiesce_daemon(d); /* no new connections */
    srv_stop(&s, a.grace);
    MHD_stop_daemon(d);
    rc = 0;
done:
    /* the queue is empty and no request is held once the scheduler and the daemon are stopped */
    tr_context_free(s.ctx);
    tr_model_free(s.model);
    free(s.slot);
    pthread_cond_destroy(&s.progress);
    pthread_cond_destroy(&s.work);
    pthread_mutex_destroy(&s.mu);
    if (rc == 0)
        fprintf(stderr, "transit serve: stopped\n");
    return rc;
}
