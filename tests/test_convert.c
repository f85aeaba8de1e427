/* test_convert.c: `transit convert` (core/convert.c): Hugging Face directories and GGUF files written
 * as GGUF, then loaded back.
 *
 * - stories260K's HF directory, converted to f32, holds bit for bit the tensors of llama.cpp's own
 *   stories260K.gguf (q/k rows permuted back to GGUF's order), and its vocabulary tokenizes 300 lines
 *   of both corpora exactly as the directory's tokenizer.json does (aidreams260K's too);
 * - converted models give the logits of the source (1e-12 NMSE: only the order of q.k sums differs)
 *   and the same 64 greedy tokens (1e-10 for DiffLlama's random models); DiffLlama's converted files stay within design §6's 1e-6 of
 *   transformers' goldens, with the same lambdas;
 * - f16 and bf16 files hold the source's values rounded once (re-converting them to f32 and back is
 *   lossless), and a GGUF converted again keeps its rows (no second permutation);
 * - the chat template, padding id and SentencePiece's add_space_prefix travel into the GGUF (and the
 *   GGUF loader honours add_space_prefix = false);
 * - bad types, unreadable input and unwritable output fail with one line and leave no file. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"
#include "model_file.h"
#include "test_util.h"

static char tmpdir[] = "/tmp/transit_convert_XXXXXX";

static const char *out_path(const char *name)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 1024, "%s/%s", tmpdir, name);
    return p;
}

static int convert(const char *in, const char *out, const char *type)
{
    tr_status s = tr_convert_to_gguf(in, out, type, NULL, NULL);
    CHECK(s == TR_OK, "convert %s -> %s (%s): %s", in, out, type ? type : "source type", tr_last_error());
    return s == TR_OK;
}

/* Every tensor of a is in b with the same shape, type and bytes (b may have more). */
static void same_tensors(const char *a_path, const char *b_path)
{
    tr_model_file a, b;
    if (tr_model_file_open(a_path, &a) != TR_OK) {
        CHECK(0, "%s: %s", a_path, tr_last_error());
        return;
    }
    if (tr_model_file_open(b_path, &b) != TR_OK) {
        CHECK(0, "%s: %s", b_path, tr_last_error());
        tr_model_file_close(&a);
        return;
    }
    int same = 0;
    for (int i = 0; i < a.n_weights; i++) {
        const tr_weight *x = &a.weights[i], *y = tr_model_file_find(&b, x->name);
        int ok = y && x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes &&
                 !memcmp(x->ne, y->ne, sizeof x->ne) && !memcmp(x->data, y->data, x->nbytes);
        CHECK(ok, "%s: tensor %s differs from %s's", a_path, x->name, b_path);
        same += ok;
    }
    printf("%s: %d of %d tensors bit for bit as in %s\n", a_path, same, a.n_weights, b_path);
    tr_model_file_close(&a);
    tr_model_file_close(&b);
}

/* Lines of the corpora tokenized by both models (as transit run -p would). */
static void same_tokens(tr_model *a, tr_model *b, const char *what)
{
    static const char *const corpora[] = {"corpus/tinyshakespeare.txt", "corpus/wikitext-2-test.txt"};
    int lines = 0, same = 0;
    int32_t ia[4096], ib[4096];
    for (int c = 0; c < 2; c++) {
        char *text = tr_read_file(tr_shared(corpora[c]), NULL);
        CHECK(text != NULL, "%s unreadable", corpora[c]);
        char *save = NULL;
        for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line && lines < 150 * (c + 1);
             line = strtok_r(NULL, "\n", &save)) {
            int na = 0, nb = 0;
            tr_status s1 = tr_tokenize(a, line, strlen(line), -1, ia, 4096, &na);
            tr_status s2 = tr_tokenize(b, line, strlen(line), -1, ib, 4096, &nb);
            int ok = s1 == TR_OK && s2 == TR_OK && na == nb && !memcmp(ia, ib, (size_t)na * sizeof *ia);
            CHECK(ok, "%s: '%s' tokenizes differently", what, line);
            same += ok;
            lines++;
        }
        free(text);
    }
    printf("%s: %d of %d corpus lines tokenized identically\n", what, same, lines);
}

static tr_model *load(const char *path)
{
    tr_model_params mp = tr_model_default_params();
    mp.n_threads = 2;
    tr_model *m = NULL;
    CHECK(tr_model_load(path, &mp, &m) == TR_OK, "load %s: %s", path, tr_last_error());
    return m;
}

/* Logits of a fixed 40-token prompt on both, and 64 greedy tokens after it. */
static double compare_models(tr_model *a, tr_model *b, const char *what, double bound)
{
    int V = tr_model_n_vocab(a), n = 40;
    int32_t ids[40];
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 131 + 7) % V);
    float *la = tr_test_eval_all(a, ids, n, 0, NULL, 0), *lb = tr_test_eval_all(b, ids, n, 0, NULL, 0);
    double e = la && lb ? tr_nmse(la, lb, (size_t)n * V) : INFINITY;
    printf("%s: logits NMSE %.2e\n", what, e);
    CHECK(e <= bound, "%s: logits NMSE %.3g (bound %.1g)", what, e, bound);
    free(la);
    free(lb);
    /* greedy continuations */
    int32_t seq[2][104];
    for (int k = 0; k < 2; k++) {
        tr_model *m = k ? b : a;
        tr_context_params cp = tr_context_default_params();
        cp.n_ctx = 128;
        tr_context *c = NULL;
        tr_status s = tr_context_create(m, &cp, &c);
        memcpy(seq[k], ids, sizeof ids);
        if (s == TR_OK)
            s = tr_eval(c, ids, n, 0);
        for (int i = n; s == TR_OK && i < n + 64; i++) {
            const float *l = tr_get_logits(c, -1);
            int best = 0;
            for (int v = 1; v < V; v++)
                best = l[v] > l[best] ? v : best;
            seq[k][i] = best;
            s = tr_eval(c, &seq[k][i], 1, 0);
        }
        CHECK(s == TR_OK, "%s: greedy: %s", what, tr_last_error());
        tr_context_free(c);
    }
    CHECK(!memcmp(seq[0], seq[1], sizeof seq[0]), "%s: the 64 greedy tokens differ", what);
    return e;
}

static void test_llama(void)
{
    const char *hf = tr_shared("models/stories260K/hf"), *ref = tr_shared("models/stories260K/stories260K.gguf");
    const char *out = out_path("stories_f32.gguf");
    if (!convert(hf, out, "f32"))
        return;
    same_tensors(out, ref);
    tr_model *a = load(hf), *b = load(out), *r = load(ref);
    if (a && b && r) {
        same_tokens(a, b, "stories260K hf vs converted");
        same_tokens(r, b, "stories260K llama.cpp's gguf vs converted");
        compare_models(a, b, "stories260K hf vs converted", 1e-12);
    }
    tr_model_free(a);
    tr_model_free(b);
    tr_model_free(r);
    /* a GGUF converted again keeps its rows (already in GGUF order) */
    const char *again = out_path("stories_again.gguf");
    if (convert(out, again, NULL))
        same_tensors(again, out);

    const char *adir = tr_shared("models/aidreams260K/hf"), *aout = out_path("aidreams.gguf");
    if (convert(adir, aout, NULL)) {
        tr_model *x = load(adir), *y = load(aout);
        if (x && y) {
            same_tokens(x, y, "aidreams260K hf vs converted");
            compare_models(x, y, "aidreams260K hf vs converted", 1e-12);
        }
        tr_model_free(x);
        tr_model_free(y);
    }
}

/* DiffLlama: converted files within 1e-6 of transformers' goldens, the source's lambdas and logits,
 * the same greedy tokens. */
static void test_diffllama(void)
{
    static const char *const names[] = {"d8_mha", "d16_gqa2", "d16_gqa4_gelu", "d32_gqa2_tanh"};
    for (int i = 0; i < 4; i++) {
        char rel[256], out_name[64], what[128];
        snprintf(rel, sizeof rel, "diffllama/models/%s", names[i]);
        snprintf(out_name, sizeof out_name, "%s.gguf", names[i]);
        const char *src = tr_golden(rel), *out = out_path(out_name);
        if (!convert(src, out, NULL))
            continue;
        tr_model *a = load(src), *b = load(out);
        if (a && b) {
            tr_model_info ia, ib;
            tr_model_get_info(a, &ia);
            tr_model_get_info(b, &ib);
            CHECK(ib.diff_attn && !strcmp(ib.arch, "diffllama") && !strcmp(ia.activation, ib.activation) &&
                      ia.tied_embeddings == ib.tied_embeddings,
                  "%s: converted arch %s, activation %s", names[i], ib.arch, ib.activation);
            for (int l = 0; l < ia.n_layers; l++) {
                double x, xi, y, yi;
                CHECK(tr_model_diff_lambda(a, l, &x, &xi) && tr_model_diff_lambda(b, l, &y, &yi) && x == y && xi == yi,
                      "%s layer %d: lambdas differ after conversion", names[i], l);
            }
            snprintf(what, sizeof what, "%s hf vs converted", names[i]);
            compare_models(a, b, what, 1e-10);
            int n = 0, nd = 0;
            int64_t shape[4];
            char kind;
            snprintf(rel, sizeof rel, "diffllama/%s.prompt.ids", names[i]);
            int32_t *ids = tr_test_read_ints(tr_golden(rel), &n);
            snprintf(rel, sizeof rel, "diffllama/%s.prompt.npy", names[i]);
            float *want = tr_read_npy(tr_golden(rel), &nd, shape, &kind);
            float *got = ids && want ? tr_test_eval_all(b, ids, n, 0, NULL, 0) : NULL;
            double e = got ? tr_nmse(want, got, (size_t)n * tr_model_n_vocab(b)) : INFINITY;
            printf("%s converted: NMSE vs transformers %.2e\n", names[i], e);
            CHECK(e <= 1e-6, "%s converted: NMSE %.3g vs transformers", names[i], e);
            free(ids);
            free(want);
            free(got);
        }
        tr_model_free(a);
        tr_model_free(b);
    }
}

/* f16 / bf16: each value rounded once from the source; f16 -> f32 -> f16 is lossless. */
static void test_half_types(void)
{
    const char *src = tr_golden("diffllama/models/d16_gqa2");
    const char *types[] = {"f16", "bf16"};
    tr_model_file s;
    if (tr_model_file_open(src, &s) != TR_OK) {
        CHECK(0, "%s: %s", src, tr_last_error());
        return;
    }
    for (int t = 0; t < 2; t++) {
        char n1[32], n2[32], n3[32];
        snprintf(n1, sizeof n1, "half_%s.gguf", types[t]);
        snprintf(n2, sizeof n2, "half_%s_f32.gguf", types[t]);
        snprintf(n3, sizeof n3, "half_%s_again.gguf", types[t]);
        const char *half = out_path(n1), *wide = out_path(n2), *again = out_path(n3);
        if (!convert(src, half, types[t]) || !convert(half, wide, "f32") || !convert(wide, again, types[t]))
            continue;
        same_tensors(again, half);
        tr_model_file h;
        if (tr_model_file_open(half, &h) != TR_OK) {
            CHECK(0, "%s: %s", half, tr_last_error());
            continue;
        }
        /* the embedding table: rows are not permuted, so element i is the source's element i */
        const tr_weight *x = tr_model_file_find(&s, "token_embd.weight"), *y = tr_model_file_find(&h, "token_embd.weight");
        const tr_weight *norm = tr_model_file_find(&h, "blk.0.attn_norm.weight"), *lam = tr_model_file_find(&h, "blk.0.attn_lambda_q1");
        int ok = x && y && y->dtype == (t ? TR_BF16 : TR_F16) && norm && norm->dtype == TR_F32 && lam && lam->dtype == TR_F32;
        for (int64_t i = 0; ok && i < x->ne[0] * x->ne[1]; i++) {
            float v = ((const float *)x->data)[i];
            uint16_t want = t ? tr_f32_to_bf16(v) : tr_f32_to_f16(v);
            ok = ((const uint16_t *)y->data)[i] == want;
        }
        CHECK(ok, "%s: not the source rounded once (or vectors not kept f32)", half);
        tr_model_file_close(&h);
        tr_model *a = load(src), *b = load(half);
        if (a && b) {
            char what[64];
            snprintf(what, sizeof what, "d16_gqa2 f32 vs %s", types[t]);
            int V = tr_model_n_vocab(a);
            int32_t ids[20];
            for (int i = 0; i < 20; i++)
                ids[i] = (int32_t)((i * 17 + 3) % V);
            float *la = tr_test_eval_all(a, ids, 20, 0, NULL, 0), *lb = tr_test_eval_all(b, ids, 20, 0, NULL, 0);
            double e = la && lb ? tr_nmse(la, lb, (size_t)20 * V) : INFINITY;
            printf("%s: logits NMSE %.2e\n", what, e);
            CHECK(e < (t ? 1e-3 : 1e-5), "%s: NMSE %.3g", what, e);
            free(la);
            free(lb);
        }
        tr_model_free(a);
        tr_model_free(b);
    }
    tr_model_file_close(&s);
}

static void test_errors(void)
{
    const char *src = tr_golden("diffllama/models/d8_mha");
    struct {
        const char *in, *out, *type, *mention;
    } cases[] = {
        {src, out_path("bad_type.gguf"), "q4_0", "q4_0"},
        {"/nonexistent/model", out_path("missing.gguf"), NULL, "/nonexistent/model"},
        {src, "/nonexistent/dir/out.gguf", NULL, "/nonexistent/dir/out.gguf"},
    };
    for (int i = 0; i < 3; i++) {
        tr_status s = tr_convert_to_gguf(cases[i].in, cases[i].out, cases[i].type, NULL, NULL);
        const char *e = tr_last_error();
        CHECK(s != TR_OK && !strchr(e, '\n') && strstr(e, cases[i].mention), "convert case %d: status %d, '%s'", i, s, e);
        CHECK(access(cases[i].out, F_OK) != 0, "convert case %d left %s behind", i, cases[i].out);
    }
}

/* A directory of stories260K with a chat template and a padding id, converted: the GGUF carries both
 * (llama.cpp's keys), and the same chat prompt comes out of either. Then add_space_prefix = false,
 * patched into the converted file, is honoured: " x" without the prefix is "x" with it. */
static void test_tokenizer_keys(void)
{
    const char *dir = out_path("chatdir"), *gguf = out_path("chat.gguf");
    char from[1100], to[1100];
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    static const char *const links[] = {"model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", tr_shared("models/stories260K/hf"), links[i]);
        snprintf(to, sizeof to, "%s/%s", dir, links[i]);
        CHECK(symlink(from, to) == 0, "symlink %s", to);
    }
    size_t len;
    char *config = tr_read_file(tr_shared("models/stories260K/hf/config.json"), &len);
    char *tmpl = tr_read_file(tr_golden("chat/llama2.jinja"), NULL);
    if (!config || !tmpl || config[0] != '{') {
        CHECK(0, "cannot read stories260K's config.json or the llama2 template");
        free(config);
        free(tmpl);
        return;
    }
    snprintf(to, sizeof to, "%s/config.json", dir);
    char *patched = malloc(len + 64);
    len = (size_t)snprintf(patched, len + 64, "{\"pad_token_id\": 0, %s", config + 1);
    tr_write_file(to, patched, len);
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "chat_template", tmpl);
    char *cfg_text = cJSON_Print(cfg);
    snprintf(to, sizeof to, "%s/tokenizer_config.json", dir);
    tr_write_file(to, cfg_text, strlen(cfg_text));
    free(cfg_text);
    cJSON_Delete(cfg);
    free(patched);
    free(config);
    if (convert(dir, gguf, NULL)) {
        tr_model_file f;
        if (tr_model_file_open(gguf, &f) == TR_OK) {
            CHECK(f.chat_template && !strcmp(f.chat_template, tmpl), "the GGUF's chat template");
            CHECK(f.hp.pad_id == 0, "padding id %d", f.hp.pad_id);
            tr_model_file_close(&f);
        } else {
            CHECK(0, "%s", tr_last_error());
        }
        tr_model *a = load(dir), *b = load(gguf);
        tr_chat_format fa = TR_CHAT_NONE, fb = TR_CHAT_NONE;
        CHECK(a && b && tr_model_chat_format(a, &fa) == TR_OK && tr_model_chat_format(b, &fb) == TR_OK &&
                  fa == TR_CHAT_LLAMA2 && fb == fa,
              "chat formats %d %d: %s", fa, fb, tr_last_error());
        tr_chat_message msgs[] = {{"system", "Tell stories."}, {"user", "A cat"}, {"assistant", "It sat."},
                                  {"user", "Then?"}};
        int32_t ia[256], ib[256];
        int na = 0, nb = 0;
        CHECK(a && b && tr_chat_tokenize(a, fa, msgs, 4, 1, ia, 256, &na) == TR_OK &&
                  tr_chat_tokenize(b, fb, msgs, 4, 1, ib, 256, &nb) == TR_OK && na == nb && na > 10 &&
                  !memcmp(ia, ib, (size_t)na * sizeof *ia),
              "the chat prompt differs between the directory and its GGUF");
        tr_model_free(a);
        tr_model_free(b);

        /* add_space_prefix = false, set in the file's bytes (the bool after the key and its type) */
        uint8_t *bytes = (uint8_t *)tr_read_file(gguf, &len);
        static const char key[] = "tokenizer.ggml.add_space_prefix";
        uint8_t *at = bytes ? memmem(bytes, len, key, sizeof key - 1) : NULL;
        CHECK(at && at[sizeof key - 1] == 7 && at[sizeof key - 1 + 4] == 1, "add_space_prefix = true in the file");
        const char *noprefix = out_path("noprefix.gguf");
        if (at && at[sizeof key - 1] == 7) {
            at[sizeof key - 1 + 4] = 0;
            tr_write_file(noprefix, bytes, len);
            tr_model *p = load(gguf), *q = load(noprefix);
            int32_t ip[64], iq[64];
            int np = 0, nq = 0;
            CHECK(p && q && tr_tokenize(p, "Once upon", 9, 0, ip, 64, &np) == TR_OK &&
                      tr_tokenize(q, " Once upon", 10, 0, iq, 64, &nq) == TR_OK && np == nq &&
                      !memcmp(ip, iq, (size_t)np * sizeof *ip),
                  "without the space prefix, \" x\" is x with it");
            CHECK(p && q && tr_tokenize(q, "Once", 4, 0, iq, 64, &nq) == TR_OK &&
                      tr_tokenize(p, "Once", 4, 0, ip, 64, &np) == TR_OK && (np != nq || ip[0] != iq[0]),
                  "the prefix changes how a word at the start is tokenized");
            tr_model_free(p);
            tr_model_free(q);
        }
        free(bytes);
    }
    free(tmpl);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_llama();
    test_diffllama();
    test_half_types();
    test_tokenizer_keys();
    test_errors();
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tr_test_finish("test_convert");
}
