/* test_cli.c: the `transit` command as a user runs it: exact greedy text from `run`, `eval`
 * logits against the golden transformers logits, `tokenize`, `info`, and one-line errors with exit
 * status 1 on damaged models and bad options. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "test_util.h"
#include "transit.h"

static char tmpdir[] = "/tmp/transit_cli_XXXXXX";

/* Runs "transit ARGS", capturing stdout and stderr; returns the exit status (-1 if it crashed). */
static int run(const char *args, char **out, char **err)
{
    char cmd[4096], o[1200], e[1200];
    snprintf(o, sizeof o, "%s/stdout", tmpdir);
    snprintf(e, sizeof e, "%s/stderr", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s </dev/null", TR_TRANSIT_BIN, args, o, e);
    int st = system(cmd);
    if (out)
        *out = tr_read_file(o, NULL);
    if (err)
        *err = tr_read_file(e, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_run_greedy(const char *model_rel, const char *expected_rel)
{
    char *json = tr_read_file(tr_shared(expected_rel), NULL);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    tr_model *m = NULL;
    CHECK(root && tr_model_load(tr_shared(model_rel), NULL, &m) == TR_OK, "%s: %s", model_rel, tr_last_error());
    if (!root || !m)
        goto out;
    cJSON *pids = cJSON_GetObjectItem(root, "prompt_ids"), *gids = cJSON_GetObjectItem(root, "greedy_ids");
    int32_t ids[1024];
    int n_prompt = cJSON_GetArraySize(pids), n_total = cJSON_GetArraySize(gids);
    for (int i = 0; i < n_total; i++)
        ids[i] = cJSON_GetArrayItem(gids, i)->valueint;
    char prompt[1024], full[8192], args[2048];
    tr_detokenize(m, ids, n_prompt, prompt, sizeof prompt);
    tr_detokenize(m, ids, n_total, full, sizeof full);
    snprintf(args, sizeof args, "run -m %s -p \"%s\" -n %d --temp 0 -t 2", tr_shared(model_rel), prompt,
             n_total - n_prompt);
    char *out = NULL, *err = NULL;
    int rc = run(args, &out, &err);
    CHECK(rc == 0, "%s: exit %d: %s", args, rc, err ? err : "");
    size_t pl = strlen(prompt);
    CHECK(out && strncmp(full, prompt, pl) == 0 && strlen(out) == strlen(full + pl) + 1 &&
              strncmp(out, full + pl, strlen(full + pl)) == 0,
          "%s: stdout\n got  '%s'\n want '%s'", model_rel, out ? out : "", full + pl);
    CHECK(err && strstr(err, "load") && strstr(err, "pp ") && strstr(err, "tg ") && strstr(err, "tokens/s"),
          "run prints no statistics: '%s'", err ? err : "");
    free(out);
    free(err);
out:
    tr_model_free(m);
    cJSON_Delete(root);
    free(json);
}

static void test_eval(const char *model_rel, const char *name, const char *batch)
{
    char args[2048], npy[1200];
    snprintf(npy, sizeof npy, "%s/logits.npy", tmpdir);
    char ids_rel[256], gold_rel[256];
    snprintf(ids_rel, sizeof ids_rel, "logits/%s.story.ids", name);
    snprintf(gold_rel, sizeof gold_rel, "logits/%s.story.npy", name);
    snprintf(args, sizeof args, "eval -m %s --ids %s --logits %s %s", tr_shared(model_rel), tr_golden(ids_rel), npy,
             batch);
    char *err = NULL;
    int rc = run(args, NULL, &err);
    CHECK(rc == 0, "%s: exit %d: %s", args, rc, err ? err : "");
    int nd1, nd2;
    int64_t s1[4], s2[4];
    char k1, k2;
    float *got = tr_read_npy(npy, &nd1, s1, &k1), *gold = tr_read_npy(tr_golden(gold_rel), &nd2, s2, &k2);
    CHECK(got && gold && nd1 == 2 && s1[0] == s2[0] && s1[1] == s2[1], "eval output shape");
    if (got && gold && s1[0] == s2[0] && s1[1] == s2[1]) {
        double e = tr_nmse(gold, got, (size_t)(s1[0] * s1[1]));
        CHECK(e <= 1e-6, "%s: eval logits NMSE %.3g vs transformers", args, e);
    }
    free(got);
    free(gold);
    free(err);
}

static void test_tokenize(void)
{
    char args[1024], *out = NULL;
    snprintf(args, sizeof args, "tokenize -m %s -p \"Once upon a time\"", tr_shared("models/stories260K/stories260K.gguf"));
    CHECK(run(args, &out, NULL) == 0 && out && strcmp(out, "1 403 407 261 378\n") == 0, "tokenize: '%s'", out ? out : "");
    free(out);
}

/* A damaged model must give exit status 1 and exactly one line on stderr naming the file. */
static void expect_one_line_error(const char *args, const char *must_contain)
{
    char *err = NULL;
    int rc = run(args, NULL, &err);
    CHECK(rc == 1, "'%s' exited %d, expected 1", args, rc);
    CHECK(err && count_lines(err) == 1 && strncmp(err, "transit: ", 9) == 0 && strstr(err, must_contain),
          "'%s': stderr should be one line naming '%s', got '%s'", args, must_contain, err ? err : "(none)");
    free(err);
}

static void test_errors(void)
{
    char path[1200], args[2048];
    size_t len;
    char *gguf = tr_read_file(tr_shared("models/stories260K/stories260K.gguf"), &len);
    CHECK(gguf != NULL, "missing stories260K.gguf");
    const size_t cuts[] = {0, 3, 7, 24, 100, 1000, 20000, 500000};
    for (size_t i = 0; gguf && i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(path, sizeof path, "%s/cut%zu.gguf", tmpdir, cuts[i]);
        tr_write_file(path, gguf, cuts[i] < len ? cuts[i] : len - 1);
        snprintf(args, sizeof args, "run -m %s -p hi -n 4", path);
        expect_one_line_error(args, path);
    }
    if (gguf) {
        memcpy(gguf, "GGUX", 4);
        snprintf(path, sizeof path, "%s/magic.gguf", tmpdir);
        tr_write_file(path, gguf, len);
        snprintf(args, sizeof args, "info -m %s", path);
        expect_one_line_error(args, path);
    }
    free(gguf);
    snprintf(path, sizeof path, "%s/emptydir", tmpdir);
    CHECK(mkdir(path, 0700) == 0, "mkdir %s", path);
    snprintf(args, sizeof args, "eval -m %s -p hi --logits %s/x.npy", path, tmpdir);
    expect_one_line_error(args, path);
    expect_one_line_error("run -m /nonexistent/model.gguf -p hi", "/nonexistent/model.gguf");
    snprintf(args, sizeof args, "run -m %s -p hi --temp banana", tr_shared("models/stories260K/stories260K.gguf"));
    expect_one_line_error(args, "--temp");
    snprintf(args, sizeof args, "run -m %s -p hi --backend tpu", tr_shared("models/stories260K/stories260K.gguf"));
    expect_one_line_error(args, "tpu");
    expect_one_line_error("frobnicate", "frobnicate");
    snprintf(path, sizeof path, "%s/bad.ids", tmpdir);
    tr_write_file(path, "1 2 x 4", 7);
    snprintf(args, sizeof args, "eval -m %s --ids %s --logits %s/x.npy", tr_shared("models/stories260K/stories260K.gguf"),
             path, tmpdir);
    expect_one_line_error(args, path);
    tr_write_file(path, "1 2 99999", 9);
    expect_one_line_error(args, path);
    /* DiffLlama: the transition is not defined on differential attention; convert's bad options */
    const char *diff = tr_golden("diffllama/models/d8_mha");
    snprintf(args, sizeof args, "run -m %s -p hi -n 4 --transition", diff);
    expect_one_line_error(args, diff);
    snprintf(args, sizeof args, "convert -m %s -o %s/x.gguf --type q4_0", diff, tmpdir);
    expect_one_line_error(args, "q4_0");
    snprintf(args, sizeof args, "convert -m %s", diff);
    expect_one_line_error(args, "-o");
    snprintf(args, sizeof args, "convert -m %s/nothing -o %s/x.gguf", tmpdir, tmpdir);
    expect_one_line_error(args, "nothing");
}

/* An HF directory made from stories260K/hf with one file replaced by `content`. */
static void damaged_hf_dir(const char *name, const char *bad_file, const char *content, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", tmpdir, name);
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char from[512], to[1400];
        snprintf(from, sizeof from, "models/stories260K/hf/%s", files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (!strcmp(files[i], bad_file)) {
            tr_write_file(to, content, strlen(content));
        } else {
            tr_copy_file(tr_shared(from), to);
        }
    }
}

static void test_damaged_hf(void)
{
    char dir[1200], args[2048], must[1400];
    struct {
        const char *name, *file, *content;
    } cases[] = {
        {"badtokjson", "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2]}}"},
        {"nottokjson", "tokenizer.json", "this is not json"},
        {"badconfig", "config.json", "{\"model_type\": \"llama\", \"hidden_size\": \"64\"}"},
        {"noconfig", "config.json", ""},
        {"badst", "model.safetensors", "\x08\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        damaged_hf_dir(cases[i].name, cases[i].file, cases[i].content, dir, sizeof dir);
        snprintf(args, sizeof args, "run -m %s -p hi -n 2", dir);
        snprintf(must, sizeof must, "%s/%s", dir, cases[i].file);
        expect_one_line_error(args, must);
    }
}

/* The bad inputs of the Llama 3 issue and of chat, as a user meets them: one line, exit status 1. */
static void test_llama3_chat_errors(void)
{
    char dir[1200], args[2048], must[1400];
    size_t len;
    char *config = tr_read_file(tr_shared("models/stories260K/hf/config.json"), &len);
    CHECK(config && config[0] == '{', "stories260K config.json");
    static const char *const scalings[] = {
        "{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}, ",   /* missing fields */
        "{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": -8, \"low_freq_factor\": 1, "
        "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}, ", /* absurd */
        "{\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}, ",       /* unknown */
    };
    for (int i = 0; config && i < 3; i++) {
        char *text = malloc(len + 256);
        snprintf(text, len + 256, "%s%s", scalings[i], config + 1);
        char name[32];
        snprintf(name, sizeof name, "rope%d", i);
        damaged_hf_dir(name, "config.json", text, dir, sizeof dir);
        snprintf(args, sizeof args, "run -m %s -p hi -n 2", dir);
        expect_one_line_error(args, "rope_scaling");
        free(text);
    }
    free(config);
    damaged_hf_dir("chatnum", "tokenizer_config.json", "{\"chat_template\": 7}", dir, sizeof dir);
    snprintf(args, sizeof args, "run -m %s -p hi -n 2", dir);
    snprintf(must, sizeof must, "%s/tokenizer_config.json", dir);
    expect_one_line_error(args, must);
    /* stories260K has no chat template: chat needs the override, and says so */
    const char *hf = tr_shared("models/stories260K/hf");
    snprintf(args, sizeof args, "run --chat -m %s -p hi -n 2", hf);
    expect_one_line_error(args, "--chat-template");
    snprintf(args, sizeof args, "tokenize --chat -m %s -p hi --chat-template mistral", hf);
    expect_one_line_error(args, "mistral");
    snprintf(args, sizeof args, "run -m %s -p hi --system terse", hf);
    expect_one_line_error(args, "--chat");
    char *zephyr = tr_read_file(tr_golden("chat/unknown_zephyr.jinja"), NULL);
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "chat_template", zephyr ? zephyr : "");
    char *cfg_text = cJSON_PrintUnformatted(cfg);
    damaged_hf_dir("zephyr", "tokenizer_config.json", cfg_text, dir, sizeof dir);
    snprintf(args, sizeof args, "run --chat -m %s -p hi -n 2", dir);
    expect_one_line_error(args, "--chat-template");
    char *out = NULL;
    snprintf(args, sizeof args, "run -m %s -p hi -n 2", dir); /* only chat needs the format */
    CHECK(run(args, &out, NULL) == 0, "plain run with an unrecognised template");
    free(out);
    /* the override: Llama 2's format on the same model, ids as tokenize --chat prints them */
    snprintf(args, sizeof args, "tokenize --chat --chat-template llama2 -m %s -p \"Hi there\" --system \"Be nice\"", dir);
    CHECK(run(args, &out, NULL) == 0 && out && !strncmp(out, "1 ", 2), "tokenize --chat: '%s'", out ? out : "");
    free(out);
    cJSON_free(cfg_text);
    cJSON_Delete(cfg);
    free(zephyr);
}

/* Attention sinks from the command line: eval writes what the reference computes one token at a
 * time; run generates far past the context at a fixed KV size; bad sizes are one clear line. */
static void test_sinks_cli(void)
{
    char args[4096], npy[1200];
    const char *model = tr_shared("models/stories260K/hf");
    snprintf(npy, sizeof npy, "%s/sinks.npy", tmpdir);
    snprintf(args, sizeof args, "eval -m %s --ids %s --logits %s --sinks 4 --window 60 --batch 1 -t 2", model,
             tr_golden("sinks/stories260K.stream.ids"), npy);
    char *err = NULL;
    CHECK(run(args, NULL, &err) == 0, "%s: %s", args, err ? err : "");
    free(err);
    int nd = 0, nr = 0, ng = 0;
    int64_t shape[4], gshape[4];
    char kind;
    float *all = tr_read_npy(npy, &nd, shape, &kind), *gold = tr_read_npy(tr_golden("sinks/stories260K.stream.npy"), &ng, gshape, &kind);
    int32_t *rows = tr_test_read_ints(tr_golden("sinks/stories260K.stream.rows"), &nr);
    CHECK(all && gold && rows && shape[1] == gshape[1] && gshape[0] == nr, "eval --sinks output or goldens unreadable");
    if (all && gold && rows) {
        float *picked = malloc((size_t)nr * gshape[1] * sizeof *picked);
        for (int r = 0; r < nr; r++)
            memcpy(picked + (size_t)r * gshape[1], all + (size_t)rows[r] * shape[1], (size_t)gshape[1] * sizeof(float));
        double e = tr_nmse(gold, picked, (size_t)nr * gshape[1]);
        printf("eval --sinks 4 --window 60 --batch 1: NMSE vs attention_sinks %.2e\n", e);
        CHECK(e <= 1e-6, "eval --sinks: NMSE %.3g vs attention_sinks", e);
        free(picked);
    }
    free(all);
    free(gold);
    free(rows);

    /* generation never runs out, and the cache does not grow */
    size_t kv[2] = {0, 0};
    double rss[2] = {0, 0};
    const int lengths[2] = {2000, 8000};
    for (int i = 0; i < 2; i++) {
        char *out = NULL;
        snprintf(args, sizeof args, "run -m %s -p \"Once upon a time\" -n %d --temp 0.9 --seed 3 --sinks 4 --window 252 -t 2",
                 model, lengths[i]);
        int rc = run(args, &out, &err);
        int n_gen = 0;
        const char *tg = err ? strstr(err, "| tg ") : NULL, *kvs = err ? strstr(err, "KV cache ") : NULL,
                   *rs = err ? strstr(err, "peak RSS ") : NULL;
        CHECK(rc == 0 && tg && sscanf(tg, "| tg %d tokens", &n_gen) == 1 && kvs && sscanf(kvs, "KV cache %zu", &kv[i]) == 1 &&
                  rs && sscanf(rs, "peak RSS %lf", &rss[i]) == 1,
              "%s: exit %d: %s", args, rc, err ? err : "");
        /* stories260K ends stories with EOS now and then: far past its 512 positions is what counts */
        CHECK(n_gen > 600, "run --sinks stopped after %d tokens", n_gen);
        free(out);
        free(err);
    }
    CHECK(kv[0] > 0 && kv[0] == kv[1], "KV cache %zu bytes after 2000 tokens, %zu after 8000", kv[0], kv[1]);
    printf("run --sinks 4 --window 252: peak RSS %.1f MB after 2000 tokens, %.1f MB after 8000\n", rss[0], rss[1]);
    CHECK(rss[0] > 0 && rss[1] <= rss[0] * 1.05, "peak RSS grew from %.1f MB (2000 tokens) to %.1f MB (8000)", rss[0],
          rss[1]);

    /* bad sizes, on every command that takes them */
    const char *cmds[] = {"run -p hi -n 2", "eval -p hi --logits /dev/null", "bench -p 8 -n 2 -r 1",
                          "parity -p hi --backends cpu -n 2", "perplexity -p \"hi there\""};
    const struct {
        const char *opts, *says;
    } bad[] = {{"--sinks 4 --window 0", "window"},
               {"--sinks 300 --window 252", "300 sink tokens do not fit a window of 252"},
               {"--sinks 4 --window 1000 -c 500", "need a KV cache of more than 1004 tokens"},
               {"--window 100", "--sinks"}};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            snprintf(args, sizeof args, "%s -m %s %s", cmds[c], model, bad[b].opts);
            expect_one_line_error(args, bad[b].says);
        }
    snprintf(args, sizeof args, "perplexity -m %s -p \"hi there\" --sinks 4 --plot x.png", model);
    expect_one_line_error(args, "SVG");
    snprintf(args, sizeof args, "perplexity -m %s -p \"hi there\" --stream -c 64", model);
    expect_one_line_error(args, "whole stream");
    snprintf(args, sizeof args, "eval -m %s -p \"hi there\" --logits /dev/null --sinks 4 --window 60 -c 80 -b 32", model);
    expect_one_line_error(args, "steps of 32 tokens do not fit");
}

static void test_info_help(void)
{
    char *out = NULL, args[1024];
    /* the CPU line says which kernel set runs and why (design: no silent choice of a slower path) */
    CHECK(run("info", &out, NULL) == 0 && out && strstr(out, "cpu: ") && strstr(out, "kernel set ") &&
              strstr(out, "the best this CPU runs"),
          "info: '%s'", out ? out : "");
    free(out);
    /* TRANSIT_CPU_KERNELS forces the lowest set (any x86-64-v2 CPU's): named in info, and the same
     * greedy text as the set this CPU picks; a set that is not built is an error naming the built */
    char *best = NULL, *low = NULL, *err = NULL;
    CHECK(run("run --temp 0 -n 24 -p \"Once upon a time\"", &best, NULL) == 0, "run with the default kernel set");
#if defined(__x86_64__)
    setenv("TRANSIT_CPU_KERNELS", "v2", 1);
    CHECK(run("info", &out, NULL) == 0 && out && strstr(out, "kernel set v2 (") && strstr(out, "chosen by name"),
          "info with TRANSIT_CPU_KERNELS=v2: '%s'", out ? out : "");
    free(out);
    CHECK(run("run --temp 0 -n 24 -p \"Once upon a time\"", &low, NULL) == 0 && best && low && !strcmp(best, low),
          "v2 kernels: '%s', the default's: '%s'", low ? low : "", best ? best : "");
#endif
    setenv("TRANSIT_CPU_KERNELS", "avx9000", 1);
    CHECK(run("run -n 4", NULL, &err) != 0 && err && strstr(err, "avx9000") && strstr(err, "not built (built: "),
          "an unknown kernel set: '%s'", err ? err : "");
    unsetenv("TRANSIT_CPU_KERNELS");
    free(best);
    free(low);
    free(err);
    snprintf(args, sizeof args, "info -m %s", tr_shared("models/stories260K/hf"));
    CHECK(run(args, &out, NULL) == 0 && out && strstr(out, "layers           5") && strstr(out, "rotate-half"),
          "info -m: '%s'", out ? out : "");
    free(out);
    /* DiffLlama: the architecture and each layer's lambdas */
    snprintf(args, sizeof args, "info -m %s", tr_golden("diffllama/models/d16_gqa4_gelu"));
    CHECK(run(args, &out, NULL) == 0 && out && strstr(out, "diffllama (differential attention)") &&
              strstr(out, "224, gelu gate") && strstr(out, "layer  5: lambda_init 0.666122  lambda 0.700879"),
          "info -m DiffLlama: '%s'", out ? out : "");
    free(out);
    /* convert, then run: the same greedy text as the directory */
    char *a = NULL, *b = NULL;
    snprintf(args, sizeof args, "convert -m %s -o %s/conv.gguf --type f16", tr_shared("models/stories260K/hf"), tmpdir);
    CHECK(run(args, NULL, NULL) == 0, "transit %s", args);
    snprintf(args, sizeof args, "run -m %s/conv.gguf -p \"Once upon a time\" -n 24 --temp 0", tmpdir);
    CHECK(run(args, &a, NULL) == 0, "transit %s", args);
    snprintf(args, sizeof args, "run -m %s -p \"Once upon a time\" -n 24 --temp 0", tr_shared("models/stories260K/hf"));
    CHECK(run(args, &b, NULL) == 0 && a && b && !strcmp(a, b), "converted f16 gguf: '%s' vs '%s'", a ? a : "",
          b ? b : "");
    free(a);
    free(b);
    /* the overview names every command and backend */
    CHECK(run("help", &out, NULL) == 0 && out && strstr(out, "  serve ") && strstr(out, "OpenCL"), "help: '%s'",
          out ? out : "");
    free(out);
    const char *cmds[] = {"help", "run --help", "eval --help", "tokenize --help", "info --help", "convert --help",
                          "chat --help", "serve --help", "parity --help", "bench --help"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        CHECK(run(cmds[i], &out, NULL) == 0 && out && strstr(out, "usage"), "transit %s", cmds[i]);
        free(out);
    }
}

/* No file is left half-written, and every file error names the system's reason: outputs go to a
 * temporary name and are renamed when whole (core/out_file.h). A size limit (ulimit -f, with
 * SIGXFSZ ignored so that the write fails with EFBIG, as on a full disk) stops eval's logits and
 * quantize's GGUF midway: the command fails saying why, the destination keeps its old contents or
 * does not exist, and no temporary file remains. */
static void test_output_files(void)
{
    const char *model = tr_shared("models/stories260K/stories260K.gguf");
    char args[4096], path[1200];
    char *err = NULL;

    snprintf(args, sizeof args, "eval -m %s -p \"Once upon a time\" --logits %s/no/such/dir/out.npy", model, tmpdir);
    expect_one_line_error(args, "No such file or directory");
    snprintf(args, sizeof args, "eval -m %s -p \"Once upon a time\" --logits %s/stdout/out.npy", model, tmpdir);
    expect_one_line_error(args, "Not a directory");

    snprintf(path, sizeof path, "%s/old.npy", tmpdir);
    tr_write_file(path, "old contents", 12);
    snprintf(args, sizeof args, "-c 'ulimit -f 8; trap \"\" XFSZ; exec %s eval -m %s -p \"Once upon a time there was\" "
                                "--logits %s' sh", TR_TRANSIT_BIN, model, path);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "sh %s 2>%s/stderr", args, tmpdir);
    int st = system(cmd);
    snprintf(args, sizeof args, "%s/stderr", tmpdir);
    err = tr_read_file(args, NULL);
    size_t len = 0;
    char *kept = tr_read_file(path, &len);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && err && strstr(err, "File too large"),
          "eval over a size limit: status %d, '%s'", st, err ? err : "");
    CHECK(kept && len == 12 && !memcmp(kept, "old contents", 12), "eval over a size limit damaged the old file");
    free(err);
    free(kept);

    snprintf(path, sizeof path, "%s/q.gguf", tmpdir);
    snprintf(cmd, sizeof cmd, "sh -c 'ulimit -f 64; trap \"\" XFSZ; exec %s quantize %s %s q8_0' sh >/dev/null 2>%s/stderr",
             TR_TRANSIT_BIN, TR_GOLDEN_DIR "/../../models/default", path, tmpdir);
    st = system(cmd);
    err = tr_read_file(args, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 && err && strstr(err, "File too large") && !tr_file_exists(path),
          "quantize over a size limit: status %d, '%s', output %s", st, err ? err : "",
          tr_file_exists(path) ? "left behind" : "absent");
    free(err);
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp-", tmpdir);
    CHECK(system(cmd) != 0, "a temporary file was left in %s", tmpdir);

    /* more threads than cores, and a run past the trained context, are warned about once each */
    char *out = NULL;
    snprintf(args, sizeof args, "run -m %s -p \"First Citizen:\" -n 300 --temp 0 -t 64",
             TR_GOLDEN_DIR "/../../models/default");
    int rc = run(args, &out, &err);
    CHECK(rc == 0 && err && strstr(err, "-t 64 is more threads than the") &&
              strstr(err, "run past the 256 the model was trained on") && strstr(err, "--sinks"),
          "warnings: rc %d, stderr '%s'", rc, err ? err : "");
    free(out);
    free(err);
    err = NULL;

    /* seeds are non-negative: "-1" would wrap to 2^64 - 1 */
    snprintf(args, sizeof args, "run -m %s -p hi -n 2 --seed -1", model);
    expect_one_line_error(args, "--seed: expected a non-negative integer");
}

int main(void)
{
    /* The command's own behaviour, on the CPU: `info` opens no GPU module here (starting lavapipe and
     * PoCL costs seconds a call under the sanitizers; test_modules and test_parity cover the modules) */
    setenv("TRANSIT_BACKEND_DIR", "/nonexistent", 1);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_run_greedy("models/stories260K/stories260K.gguf", "models/stories260K/expected_greedy.json");
    test_run_greedy("models/stories260K/hf", "models/stories260K/expected_greedy.json");
    test_run_greedy("models/aidreams260K/hf", "models/aidreams260K/expected_greedy.json");
    test_eval("models/stories260K/hf", "stories260K", "");
    test_eval("models/stories260K/stories260K.gguf", "stories260K", "--batch 7");
    test_eval("models/aidreams260K/hf", "aidreams260K", "--batch 1");
    test_tokenize();
    test_errors();
    test_damaged_hf();
    test_llama3_chat_errors();
    test_info_help();
    test_sinks_cli();
    test_output_files();
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tr_test_finish("test_cli");
}
