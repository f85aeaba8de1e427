/* test_quant.c: quantized weights (design §10, docs/quantization.md).
 *
 * - Dequantization of every type equals the gguf package's bit for bit (tests/golden/quant/, from
 *   tools/make_quant_golden.py): synthetic blocks with extreme, subnormal, zero and negative scales and
 *   all-zero blocks; rows of files written by llama-quantize and by `transit quantize`.
 * - transit's quantizers: every type's error on Gaussian rows below a ceiling that its bits allow, the
 *   k-quants better than the 32-weight types of as many bits, Q8_0 reproducing its own grid exactly.
 * - The file types' mixes (quant_mix.c) give each tensor llama-quantize's type.
 * - Models: a quantized default model's logits on the CPU fast path within 5e-4 NMSE of the reference
 *   (the float64 product of the dequantized weights), the same greedy tokens, and quantizing a
 *   quantized file again keeps a Q8_0 file's bytes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_file.h"
#include "quant.h"
#include "test_util.h"

static void test_goldens(void)
{
    char *index = tr_read_file(tr_golden("quant/index.txt"), NULL);
    CHECK(index != NULL, "tests/golden/quant/index.txt is missing");
    if (!index)
        return;
    int files = 0, sources[3] = {0, 0, 0};
    char *save = NULL;
    for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char file[128], type[16];
        long long n;
        if (sscanf(line, "%127s %15s %lld", file, type, &n) != 3)
            continue;
        tr_dtype t = TR_DTYPE_COUNT;
        for (int d = TR_Q8_0; d < TR_DTYPE_COUNT; d++)
            if (!strcmp(type, tr_dtype_name((tr_dtype)d)))
                t = (tr_dtype)d;
        CHECK(t != TR_DTYPE_COUNT, "%s: type %s", file, type);
        if (t == TR_DTYPE_COUNT)
            continue;
        char rel[160];
        snprintf(rel, sizeof rel, "quant/%s", file);
        size_t len;
        char *data = tr_read_file(tr_golden(rel), &len);
        size_t raw = tr_row_bytes(t, n);
        CHECK(data && len == raw + (size_t)n * 4, "%s: %zu bytes", file, len);
        if (!data || len != raw + (size_t)n * 4) {
            free(data);
            continue;
        }
        float *got = malloc((size_t)n * sizeof *got);
        tr_dequantize_row(t, data, got, n);
        long long diff = 0;
        for (long long i = 0; i < n; i++) {
            uint32_t a, b;
            memcpy(&a, got + i, 4);
            memcpy(&b, data + raw + 4 * i, 4);
            diff += a != b;
        }
        CHECK(diff == 0, "%s: %lld of %lld values differ from gguf's", file, diff, n);
        printf("%-22s %-5s %6lld weights bit for bit as gguf.quants.dequantize\n", file, type, n);
        sources[!strncmp(file, "llama", 5) ? 1 : !strncmp(file, "transit", 7) ? 2 : 0]++;
        files++;
        free(got);
        free(data);
    }
    CHECK(sources[0] == 8, "synthetic goldens for all 8 types (%d)", sources[0]);
    CHECK(sources[2] == 8, "goldens from transit quantize for all 8 types (%d)", sources[2]);
    CHECK(sources[1] == 8, "goldens from llama-quantize files for all 8 types (%d)", sources[1]);
    free(index);
    (void)files;
}

static double gauss(unsigned *s)
{
    double u = 0;
    for (int i = 0; i < 12; i++) {
        *s = *s * 1103515245u + 12345u;
        u += (double)(*s >> 8) / (double)(1u << 24);
    }
    return u - 6;
}

/* NMSE of quantize-then-dequantize on Gaussian rows (with a few outliers, as weights have). */
static double roundtrip_nmse(tr_dtype t, int64_t n)
{
    unsigned seed = 7;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(0.02 * gauss(&seed) * (i % 97 == 0 ? 6 : 1));
    char *q = malloc(tr_row_bytes(t, n));
    CHECK(tr_quantize_row(t, x, q, n) == tr_row_bytes(t, n), "%s: bytes written", tr_dtype_name(t));
    tr_dequantize_row(t, q, y, n);
    double e = tr_nmse(x, y, (size_t)n);
    free(x);
    free(y);
    free(q);
    return e;
}

static void test_quantizers(void)
{
    static const struct {
        tr_dtype t;
        double ceiling; /* what each type gives these rows today, with a third of margin: a quantizer
                           that breaks lands orders of magnitude above, one that degrades crosses it */
    } types[] = {{TR_Q8_0, 8e-5}, {TR_Q6_K, 8e-4}, {TR_Q5_1, 2.6e-3}, {TR_Q5_0, 5.2e-3}, {TR_Q5_K, 2.6e-3},
                 {TR_Q4_1, 1.15e-2}, {TR_Q4_0, 2.1e-2}, {TR_Q4_K, 1e-2}};
    double e[TR_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        e[types[i].t] = roundtrip_nmse(types[i].t, 4096);
        printf("quantize %-5s round trip NMSE %.3e (ceiling %.1e)\n", tr_dtype_name(types[i].t), e[types[i].t],
               types[i].ceiling);
        CHECK(e[types[i].t] < types[i].ceiling, "%s: NMSE %.3e", tr_dtype_name(types[i].t), e[types[i].t]);
    }
    CHECK(e[TR_Q4_K] < e[TR_Q4_1] && e[TR_Q5_K] < e[TR_Q5_1], "k-quants fit better (%.2e %.2e, %.2e %.2e)", e[TR_Q4_K],
          e[TR_Q4_1], e[TR_Q5_K], e[TR_Q5_1]);
    /* a row on Q8_0's own grid comes back exactly; a zero row stays zero in every type */
    float x[64], y[64], zero[256] = {0}, back[256];
    for (int i = 0; i < 64; i++)
        x[i] = (float)((i * 37) % 255 - 127) * 0.25f;
    x[0] = -127 * 0.25f, x[32] = 127 * 0.25f;
    tr_block_q8_0 b[2];
    tr_quantize_row(TR_Q8_0, x, b, 64);
    tr_dequantize_row(TR_Q8_0, b, y, 64);
    CHECK(!memcmp(x, y, sizeof x), "Q8_0 keeps values on its grid");
    for (int t = TR_Q8_0; t < TR_DTYPE_COUNT; t++) {
        char q[210];
        tr_quantize_row((tr_dtype)t, zero, q, tr_dtype_block((tr_dtype)t));
        tr_dequantize_row((tr_dtype)t, q, back, tr_dtype_block((tr_dtype)t));
        int nonzero = 0;
        for (int i = 0; i < tr_dtype_block((tr_dtype)t); i++)
            nonzero += back[i] != 0;
        CHECK(nonzero == 0, "%s: a zero block comes back with %d non-zero weights", tr_dtype_name((tr_dtype)t),
              nonzero);
    }
}

static void test_mixes(void)
{
    tr_file_type q4m, q5m, q8, q6, q40;
    CHECK(tr_file_type_parse("Q4_K_M", &q4m) == TR_OK && tr_file_type_parse("q5_k_m", &q5m) == TR_OK &&
              tr_file_type_parse("q8_0", &q8) == TR_OK && tr_file_type_parse("q6_k", &q6) == TR_OK &&
              tr_file_type_parse("q4_0", &q40) == TR_OK,
          "file type names");
    CHECK(tr_file_type_parse("q3_k_s", &q8) == TR_ERR_INVALID_ARG && strstr(tr_last_error(), "q4_k_m"), "unknown");
    tr_file_type_parse("q8_0", &q8);
    const int L = 22; /* TinyLlama: more bits for layers 0-1, 19-21 and 4, 7, 10, 13, 16 (10 of 22) */
    int more = 0;
    for (int l = 0; l < L; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        tr_dtype t = tr_file_type_of(&q4m, name, 5632, L, 0);
        more += t == TR_Q6_K;
        int want = l < 2 || l >= 19 || (l - 2) % 3 == 2;
        CHECK((t == TR_Q6_K) == want, "Q4_K_M %s: %s", name, tr_dtype_name(t));
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        CHECK((tr_file_type_of(&q5m, name, 2048, L, 0) == TR_Q6_K) == want, "Q5_K_M %s", name);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        CHECK(tr_file_type_of(&q4m, name, 2048, L, 0) == TR_Q4_K, "Q4_K_M %s", name);
    }
    CHECK(more == 10, "Q4_K_M: %d of 22 ffn_down in Q6_K", more);
    CHECK(tr_file_type_of(&q4m, "output.weight", 2048, L, 0) == TR_Q6_K, "output Q6_K");
    CHECK(tr_file_type_of(&q4m, "token_embd.weight", 2048, L, 0) == TR_Q4_K, "untied embeddings Q4_K");
    CHECK(tr_file_type_of(&q4m, "token_embd.weight", 2048, L, 1) == TR_Q6_K, "tied embeddings: the output's Q6_K");
    CHECK(tr_file_type_of(&q8, "output.weight", 2048, L, 0) == TR_Q8_0, "Q8_0 output stays Q8_0");
    CHECK(tr_file_type_of(&q40, "output.weight", 2048, L, 0) == TR_Q6_K, "Q4_0 output Q6_K");
    /* rows of 640 (the default model's FFN): the 32-weight fallbacks */
    CHECK(tr_file_type_of(&q4m, "blk.3.ffn_down.weight", 640, 6, 0) == TR_Q5_0, "Q4_K -> Q5_0");
    CHECK(tr_file_type_of(&q5m, "blk.3.ffn_down.weight", 640, 6, 0) == TR_Q5_1, "Q5_K -> Q5_1");
    CHECK(tr_file_type_of(&q4m, "blk.2.ffn_down.weight", 640, 6, 0) == TR_Q8_0, "Q6_K -> Q8_0");
    CHECK(tr_file_type_of(&q6, "output.weight", 640, 6, 0) == TR_Q8_0, "output of 640: Q8_0");
    CHECK(tr_file_type_of(&q40, "blk.0.attn_q.weight", 48, 6, 0) == TR_F16, "rows of 48: F16");
}

/* The default model quantized to each file type: the CPU fast path against the reference (every
 * position's logits, prefilled whole and in chunks of 3), and Q8_0's 64 greedy tokens identical (the
 * other types' rounded activations may flip this small model's near ties, which the bound allows). */
static void test_models(void)
{
    static const char *const types[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m", "q5_k_m", "q6_k"};
    char dir[] = "/tmp/transit_quant_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    const char *src = TR_GOLDEN_DIR "/../../models/default";
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        tr_test_quantized_model(src, types[i], "cpu", i == 0 ? 64 : 0, 5e-4);
    char q8[256];
    snprintf(q8, sizeof q8, "%s/default-q8_0.gguf", dir);
    CHECK(tr_quantize(src, q8, "q8_0", 2, NULL, NULL) == TR_OK, "%s", tr_last_error());
    /* a Q8_0 file quantized again keeps its bytes: rows are copied, not requantized */
    char again[256];
    snprintf(again, sizeof again, "%s/again.gguf", dir);
    CHECK(tr_quantize(q8, again, NULL, 1, NULL, NULL) == TR_OK, "%s", tr_last_error());
    tr_model_file fa, fb;
    if (tr_model_file_open(q8, &fa) == TR_OK) {
        if (tr_model_file_open(again, &fb) == TR_OK) {
            int same = fa.n_weights == fb.n_weights;
            for (int i = 0; same && i < fa.n_weights; i++) {
                const tr_weight *w = &fa.weights[i], *v = tr_model_file_find(&fb, w->name);
                same = v && v->dtype == w->dtype && v->nbytes == w->nbytes && !memcmp(v->data, w->data, w->nbytes);
            }
            CHECK(same, "re-writing a Q8_0 file changes its tensors");
            tr_model_file_close(&fb);
        }
        tr_model_file_close(&fa);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    test_goldens();
    test_quantizers();
    test_mixes();
    test_models();
    return tr_test_finish("test_quant");
}
