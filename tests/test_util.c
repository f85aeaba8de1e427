/* test_util.c: shared helpers for the C tests. */
#include "test_util.h"

#include <cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

int tr_test_passed, tr_test_failed;

int tr_test_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, tr_test_passed, tr_test_failed);
    return tr_test_failed ? 1 : 0;
}

double tr_nmse(const float *ref, const float *got, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(got[i]))
            return INFINITY;
        if (isinf(ref[i]) || isinf(got[i])) {
            if (ref[i] != got[i])
                return INFINITY;
            continue;
        }
        double d = (double)ref[i] - (double)got[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : (num > 0 ? INFINITY : 0);
}

double tr_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double tr_max_abs_diff(const float *ref, const float *got, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ref[i] - (double)got[i]);
        if (d > m || isnan(d))
            m = d;
    }
    return m;
}

static const char *join(const char *dir, const char *rel)
{
    static char slots[4][1024];
    static int next;
    char *buf = slots[next++ & 3];
    snprintf(buf, 1024, "%s/%s", dir, rel);
    return buf;
}

/* The directories are compiled in; TR_TEST_SHARED and TR_TEST_GOLDEN override them where the test
 * binaries run elsewhere than they were built (a GPU machine: tools/gpu/prepare.sh). */
static const char *dir_of(const char *env, const char *built)
{
    const char *e = getenv(env);
    return e && *e ? e : built;
}
const char *tr_shared(const char *rel) { return join(dir_of("TR_TEST_SHARED", TR_SHARED_DIR), rel); }
const char *tr_golden(const char *rel) { return join(dir_of("TR_TEST_GOLDEN", TR_GOLDEN_DIR), rel); }

int tr_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int tr_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    ok &= f && fclose(f) == 0;
    CHECK(ok, "cannot write %s", path);
    return ok;
}

int tr_copy_file(const char *from, const char *to)
{
    size_t n;
    char *data = tr_read_file(from, &n);
    CHECK(data != NULL, "cannot read %s", from);
    int ok = data && tr_write_file(to, data, n);
    free(data);
    return ok;
}

char *tr_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

void *tr_read_npy(const char *path, int *ndim, int64_t shape[4], char *kind)
{
    size_t len;
    char *buf = tr_read_file(path, &len);
    if (!buf || len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        free(buf);
        return NULL;
    }
    int major = (unsigned char)buf[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8);
        hoff = 10;
    } else {
        hlen = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8) | ((size_t)(unsigned char)buf[10] << 16);
        hoff = 12;
    }
    char *hdr = buf + hoff;
    char *descr = strstr(hdr, "'descr':");
    char *sh = strstr(hdr, "'shape':");
    if (!descr || !sh || strstr(hdr, "'fortran_order': True")) {
        free(buf);
        return NULL;
    }
    *kind = strstr(descr, "<f4") ? 'f' : (strstr(descr, "<i4") ? 'i' : '?');
    char *p = strchr(sh, '(') + 1;
    *ndim = 0;
    size_t count = 1;
    while (*p && *p != ')' && *ndim < 4) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        shape[*ndim] = strtoll(p, &p, 10);
        count *= (size_t)shape[*ndim];
        (*ndim)++;
    }
    size_t off = hoff + hlen;
    if (*kind == '?' || off + count * 4 > len) {
        free(buf);
        return NULL;
    }
    void *data = malloc(count * 4 + 1);
    memcpy(data, buf + off, count * 4);
    free(buf);
    return data;
}

/* ---- shared by the model-level tests --------------------------------------------------------- */

int32_t *tr_test_read_ints(const char *path, int *n)
{
    char *text = tr_read_file(path, NULL);
    *n = 0;
    if (!text)
        return NULL;
    int cap = 1024;
    int32_t *v = malloc((size_t)cap * sizeof *v);
    for (char *p = text, *end; v; p = end) {
        long x = strtol(p, &end, 10);
        if (end == p)
            break;
        if (*n == cap) {
            int32_t *bigger = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!bigger) {
                free(v);
                v = NULL;
                break;
            }
            v = bigger;
        }
        v[(*n)++] = (int32_t)x;
    }
    free(text);
    return v;
}

const char *const tr_test_backends[TR_TEST_N_BACKENDS] = {"cpu-ref", "cpu", "vulkan", "cuda", "opencl"};

void tr_test_usable_backends(const char *test, int usable[TR_TEST_N_BACKENDS])
{
    for (int b = 0; b < TR_TEST_N_BACKENDS; b++) {
#ifdef TR_SANITIZE
        /* test_opencl runs the OpenCL host code under the sanitizers; in these loops PoCL would
         * only add minutes of uninstrumented kernels (the normal build runs them) */
        if (!strcmp(tr_test_backends[b], "opencl")) {
            usable[b] = 0;
            printf("%s: opencl left to the normal build under the sanitizers (test_opencl covers it)\n", test);
            continue;
        }
#endif
        tr_backend *be = NULL;
        usable[b] = tr_backend_create(tr_test_backends[b], NULL, &be) == TR_OK;
        if (!usable[b])
            printf("%s: %s not usable here (%s): its cases are not run\n", test, tr_test_backends[b], tr_last_error());
        tr_backend_free(be);
    }
}

tr_model *tr_test_load_path(const char *path, const char *backend)
{
    tr_model *m = NULL;
    tr_model_params p = tr_model_default_params();
    p.backend = backend;
    p.n_threads = 2;
    tr_status s = tr_model_load(path, &p, &m);
    CHECK(s == TR_OK, "load %s on %s: %s", path, backend, tr_last_error());
    return m;
}

tr_model *tr_test_load(const char *rel, const char *backend) { return tr_test_load_path(tr_shared(rel), backend); }

/* A context of n_ctx tokens, chunks of n_batch (0: whole), the transition's tp (NULL: off); NULL and
 * a test failure when it cannot be made. */
static tr_context *test_context(tr_model *m, int n_ctx, int n_batch, const tr_transition_params *tp)
{
    tr_context_params cp = tr_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    if (tp)
        cp.transition = *tp;
    tr_context *c = NULL;
    if (tr_context_create(m, &cp, &c) != TR_OK)
        CHECK(0, "context: %s", tr_last_error());
    return c;
}

float *tr_test_eval_all(tr_model *m, const int32_t *ids, int n, int n_batch, const tr_transition_params *tp,
                        int announce)
{
    tr_context *c = test_context(m, n + 1, n_batch, tp);
    if (!c)
        return NULL;
    if (announce)
        tr_set_prompt_length(c, n);
    tr_status s = tr_eval(c, ids, n, 1);
    CHECK(s == TR_OK, "eval: %s", tr_last_error());
    int V = tr_model_n_vocab(m);
    float *out = s == TR_OK ? malloc((size_t)n * V * sizeof *out) : NULL;
    for (int i = 0; out && i < n; i++)
        memcpy(out + (size_t)i * V, tr_get_logits(c, i), (size_t)V * sizeof *out);
    tr_context_free(c);
    return out;
}

double tr_test_golden_logits(const char *model_rel, const char *name, const char *backend, const int *batches,
                             int n_batches, double bound)
{
    static const char *prompts[] = {"story", "dream", "rand1", "rand7", "rand100"};
    tr_model *m = tr_test_load(model_rel, backend), *r = tr_test_load(model_rel, "cpu-ref");
    double worst = 0;
    for (size_t p = 0; m && r && p < sizeof prompts / sizeof prompts[0]; p++) {
        char rel[256];
        int n = 0;
        snprintf(rel, sizeof rel, "logits/%s.%s.ids", name, prompts[p]);
        int32_t *ids = tr_test_read_ints(tr_golden(rel), &n);
        CHECK(ids && n > 0, "golden %s unreadable", rel);
        if (!ids)
            continue;
        size_t cnt = (size_t)n * tr_model_n_vocab(m);
        float *want = tr_test_eval_all(r, ids, n, 0, NULL, 1);
        for (int b = 0; b < n_batches && want; b++) {
            float *got = tr_test_eval_all(m, ids, n, batches[b], NULL, 1);
            double e = got ? tr_nmse(want, got, cnt) : INFINITY;
            printf("%-36s %-8s %3d tokens batch %d on %s: NMSE vs CPU reference %.2e\n", model_rel, prompts[p], n,
                   batches[b], backend, e);
            CHECK(e <= bound, "%s %s batch %d on %s: NMSE %.3g", model_rel, prompts[p], batches[b], backend, e);
            worst = e > worst ? e : worst;
            free(got);
        }
        free(want);
        free(ids);
    }
    tr_model_free(m);
    tr_model_free(r);
    return worst;
}

double tr_test_transition_margin(const tr_tensor *q, const tr_tensor *k, const tr_attn_params *ap, const float *qd,
                                 const float *kd)
{
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[0] / hd;
    double worst = INFINITY, *p = malloc((size_t)ap->n_kv * sizeof *p);
    for (int64_t t = 0; p && t < T; t++) {
        int64_t pos = ap->n_past + t, start = -1;
        for (int j = 0; j < ap->transition.n_blocks; j++)
            if (pos >= ap->transition.start[j] && pos < ap->transition.start[j] + ap->transition.iv)
                start = ap->transition.start[j];
        if (start < 0)
            continue;
        double thr = ap->transition.alpha / (double)(start + ap->transition.iv);
        for (int64_t h = 0; h < H; h++) {
            const float *qv = qd + (t * H + h) * hd;
            double mx = -INFINITY, sum = 0;
            for (int64_t c = 0; c <= pos; c++) {
                const float *kv = kd + c * k->ne[0] + (h / (H / Hkv)) * hd;
                double d = 0;
                for (int64_t i = 0; i < hd; i++)
                    d += (double)qv[i] * kv[i];
                p[c] = d * ap->scale;
                mx = p[c] > mx ? p[c] : mx;
            }
            for (int64_t c = 0; c <= pos; c++)
                sum += p[c] = exp(p[c] - mx);
            for (int64_t c = 0; c <= pos; c++) {
                double m = fabs(p[c] / sum - thr) / thr;
                worst = m < worst ? m : worst;
                if (c == 0) { /* the halved first weight is compared again in step 5 */
                    m = fabs(p[c] / sum / 2 - thr) / thr;
                    worst = m < worst ? m : worst;
                }
            }
        }
    }
    free(p);
    return worst;
}

tr_transition_params tr_test_transition_params(const cJSON *prm)
{
    tr_transition_params tp = tr_context_default_params().transition;
    const cJSON *strategy = cJSON_GetObjectItem(prm, "strategy");
    tp.enabled = 1;
    tp.min_len = cJSON_GetObjectItem(prm, "min_len")->valueint;
    tp.blocks = cJSON_GetObjectItem(prm, "blocks")->valueint;
    tp.alpha = (float)cJSON_GetObjectItem(prm, "alpha")->valuedouble;
    tp.beta = (float)cJSON_GetObjectItem(prm, "beta")->valuedouble;
    tp.strategy = cJSON_IsString(strategy) && !strcmp(strategy->valuestring, "multi") ? TR_TRANSITION_MULTI
                                                                                       : TR_TRANSITION_ADDING;
    return tp;
}

int32_t *tr_test_greedy(tr_model *m, const int32_t *prompt, int n_prompt, int n, const tr_transition_params *tp,
                        float **steps)
{
    *steps = NULL;
    tr_context *c = test_context(m, n_prompt + n + 1, 0, tp);
    if (!c)
        return NULL;
    int V = tr_model_n_vocab(m);
    int32_t *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    *steps = malloc((size_t)(n > 0 ? n : 1) * (size_t)V * sizeof **steps);
    tr_status s = tr_eval(c, prompt, n_prompt, 0);
    for (int i = 0; i < n && s == TR_OK; i++) {
        const float *l = tr_get_logits(c, -1);
        memcpy(*steps + (size_t)i * V, l, (size_t)V * sizeof *l);
        int best = 0;
        for (int v = 1; v < V; v++)
            best = l[v] > l[best] ? v : best;
        out[i] = best;
        s = tr_eval(c, &out[i], 1, 0);
    }
    CHECK(s == TR_OK, "greedy: %s", tr_last_error());
    tr_context_free(c);
    return out;
}

double tr_test_quantized_model(const char *src, const char *type, const char *backend, int n_greedy, double bound)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/transit_quant_%d_%s_%s.gguf", (int)getpid(), backend, type);
    CHECK(tr_quantize(src, path, type, 2, NULL, NULL) == TR_OK, "quantize %s: %s", type, tr_last_error());
    tr_model *m = tr_test_load_path(path, backend), *r = tr_test_load_path(path, "cpu-ref");
    /* 20 tokens: past every backend's matrix-vector size (16 on the CPU), so prefill takes its
     * prefill kernels (the CPU's VNNI ones, or dequantized panels) */
    const int32_t ids[20] = {1, 403, 281, 7, 99, 300, 12, 45, 260, 31, 77, 150, 200, 5, 88, 410, 333, 64, 128, 256};
    const int n_ids = 20;
    double worst = INFINITY;
    if (m && r) {
        float *a = tr_test_eval_all(r, ids, n_ids, 0, NULL, 0), *b = tr_test_eval_all(m, ids, n_ids, 0, NULL, 0),
              *c = tr_test_eval_all(m, ids, n_ids, 3, NULL, 1);
        size_t n = (size_t)n_ids * (size_t)tr_model_n_vocab(r);
        double e1 = a && b ? tr_nmse(a, b, n) : INFINITY, e2 = a && c ? tr_nmse(a, c, n) : INFINITY;
        worst = e1 > e2 ? e1 : e2;
        CHECK(worst <= bound, "%s as %s on %s: logits NMSE %.3g (prefill) %.3g (chunks of 3)", src, type, backend, e1,
              e2);
        float *la = NULL, *lb = NULL;
        int32_t *want = n_greedy ? tr_test_greedy(r, ids, n_ids, n_greedy, NULL, &la) : NULL;
        int32_t *got = n_greedy ? tr_test_greedy(m, ids, n_ids, n_greedy, NULL, &lb) : NULL;
        int same = 0, V = tr_model_n_vocab(r);
        CHECK(!n_greedy || (want && got), "%s as %s on %s: greedy decoding failed: %s", src, type, backend,
              tr_last_error());
        while (want && got && same < n_greedy && want[same] == got[same])
            same++;
        if (want && got && same < n_greedy) {
            /* Both decodes saw the same tokens up to here, so this step's logits are comparable: they
             * must be within the bound, and the two choices a tie at the noise level the bound allows
             * (4 times the RMS of this step's differences; a backend computing in f16 or on int8
             * activations differs by more than a fixed 1e-4 on logits of magnitude 10). */
            const float *l = la + (size_t)same * V, *lg = lb + (size_t)same * V;
            double step = tr_nmse(l, lg, (size_t)V), sq = 0.0;
            for (int v = 0; v < V; v++)
                sq += ((double)l[v] - lg[v]) * ((double)l[v] - lg[v]);
            double gap = fabs((double)l[want[same]] - (double)l[got[same]]), noise = 4.0 * sqrt(sq / V);
            CHECK(step <= bound && gap <= (noise > 1e-4 ? noise : 1e-4),
                  "%s as %s on %s: greedy token %d is %d, the reference's %d (gap %.3g, noise %.3g, step NMSE %.3g)",
                  src, type, backend, same, got[same], want[same], gap, noise, step);
        }
        printf("%s as %s on %s: logits NMSE %.2e (prefill), %.2e (chunks of 3); %d of %d greedy tokens identical\n",
               src, type, backend, e1, e2, same, n_greedy);
        free(a);
        free(b);
        free(c);
        free(want);
        free(got);
        free(la);
        free(lb);
    }
    tr_model_free(m);
    tr_model_free(r);
    remove(path);
    return worst;
}
