/* test_tokenizer.c: the tokenizers against the reference libraries, and against damaged files.
 *
 * Golden data comes from tools/make_tokenizer_golden.py (sentencepiece and tokenizers from pip):
 *   - every line of both corpora through LLaMA's tokenizer.model: count + FNV-1a hash of the ids;
 *   - hard cases (whitespace runs, scripts, emoji, ZWJ, malformed UTF-8, control bytes, long words,
 *     literal "<s>") with full ids, through tokenizer.model, the same vocabulary via
 *     tr_tokenizer_from_vocab, the two 512-piece tokenizer.json files and hand-built models that reach
 *     UNUSED / USER_DEFINED pieces, <unk> runs and other normalizer flags;
 *   - decode(encode(text)) == text for valid UTF-8 (text without U+2581, which decodes to a space).
 *   - the Llama 3 byte-level BPE (tools/make_bpe_golden.py: HF tokenizers and tiktoken, which agree) in
 *     its three forms, tokenizer.json, tiktoken tokenizer.model and a GGUF "gpt2" vocabulary written
 *     here: every corpus line (hashed per block of 64 lines), hard cases, a 1 MB line, and every text
 *     decoding back to its exact bytes (malformed UTF-8 included);
 * Damaged inputs (truncations, bogus wire types, lengths past the end, wrong JSON types, bad ids, bad
 * merges, unsupported kinds) must each give an error status with a one-line message naming the file. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "gguf_write.h"
#include "test_util.h"
#include "tokenizer_bpe.h"
#include "tokenizer_internal.h"

#define MAX_REPORTS 12 /* mismatches printed in full; the rest are only counted */

static int reports;

/* ---- helpers ----------------------------------------------------------------------------------- */

static void print_text(const uint8_t *s, size_t len)
{
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < 160; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '"' && s[i] != '\\')
            fputc(s[i], stderr);
        else
            fprintf(stderr, "\\x%02x", s[i]);
    }
    fputs(len > 160 ? "\"..." : "\"", stderr);
}

static void print_ids(const char *label, const int32_t *ids, int n, int from)
{
    fprintf(stderr, "    %s [%d]:", label, n);
    for (int i = from; i < n && i < from + 12; i++)
        fprintf(stderr, " %d", ids[i]);
    fputs(from + 12 < n ? " ...\n" : "\n", stderr);
}

/* Encodes into a malloc'ed array (caller frees); returns the count, or -1 after a failed CHECK. */
static int encode(const tr_tokenizer *t, const uint8_t *text, size_t len, int add_bos, int32_t **ids)
{
    int cap = (int)(3 * len + 8), n = 0;
    *ids = malloc((size_t)cap * sizeof **ids);
    tr_status s = tr_tokenizer_encode(t, (const char *)text, len, add_bos, *ids, cap, &n);
    CHECK(s == TR_OK, "encode failed: %s", tr_last_error());
    return s == TR_OK ? n : -1;
}

/* Compares ids with the expected ones; on a mismatch prints where, the text and the first difference. */
static int same_ids(const char *where, const uint8_t *text, size_t len, const int32_t *want, int n_want,
                    const int32_t *got, int n_got)
{
    int first = 0;
    while (first < n_want && first < n_got && want[first] == got[first])
        first++;
    if (first == n_want && n_want == n_got)
        return 1;
    if (reports++ < MAX_REPORTS) {
        fprintf(stderr, "MISMATCH %s: first difference at token %d of text ", where, first);
        print_text(text, len);
        fputc('\n', stderr);
        print_ids("expected", want, n_want, first > 4 ? first - 4 : 0);
        print_ids("got     ", got, n_got, first > 4 ? first - 4 : 0);
    }
    return 0;
}

static int valid_utf8_without_u2581(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = s[i] < 0x80 ? 1 : (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3
                 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || i + n > len || (n == 2 && s[i] < 0xC2))
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        if (n == 3 && ((s[i] == 0xE0 && s[i + 1] < 0xA0) || (s[i] == 0xED && s[i + 1] >= 0xA0)))
            return 0;
        if (n == 4 && ((s[i] == 0xF0 && s[i + 1] < 0x90) || s[i] > 0xF4 || (s[i] == 0xF4 && s[i + 1] >= 0x90)))
            return 0;
        if (n == 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* decode(ids) == text; returns 1 if so. */
static int round_trips(const char *where, const tr_tokenizer *t, const uint8_t *text, size_t len, const int32_t *ids,
                       int n)
{
    int need = tr_tokenizer_decode(t, ids, n, NULL, 0);
    char *buf = malloc((size_t)(need > 0 ? need : 0) + 1);
    int got = tr_tokenizer_decode(t, ids, n, buf, need + 1);
    int ok = got == (int)len && memcmp(buf, text, len) == 0;
    if (!ok && reports++ < MAX_REPORTS) {
        fprintf(stderr, "ROUND TRIP %s: ", where);
        print_text(text, len);
        fputs(" decoded as ", stderr);
        print_text((const uint8_t *)buf, got > 0 ? (size_t)got : 0);
        fputc('\n', stderr);
    }
    free(buf);
    return ok;
}

static uint64_t fnv1a64(const int32_t *ids, int n)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) {
            h ^= ((uint32_t)ids[i] >> (8 * b)) & 0xFF;
            h *= 0x100000001B3ull;
        }
    return h;
}

/* The failure must be the expected status (any error if want == 0) with a one-line message that
 * starts with the file's name, and must leave no tokenizer behind. */
static void check_error(const char *what, tr_status s, tr_status want, const char *name, const void *out)
{
    const char *msg = tr_last_error();
    CHECK(s != TR_OK && (want == TR_OK || s == want), "%s: status %d (%s), expected %s; message: %s", what, s,
          tr_status_str(s), want ? tr_status_str(want) : "an error", msg);
    CHECK(strncmp(msg, name, strlen(name)) == 0 && strchr(msg, '\n') == NULL && strlen(msg) > strlen(name) + 2,
          "%s: the message does not name %s on one line: '%s'", what, name, msg);
    CHECK(out == NULL, "%s: a tokenizer was returned with an error", what);
}

/* ---- golden case files: name<TAB>hex<TAB>ids --------------------------------------------------- */

typedef struct golden_case {
    char name[64];
    uint8_t *text;
    size_t len;
    int32_t *ids;
    int n_ids;
} golden_case;

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static golden_case *read_cases(const char *path, int *n_cases)
{
    size_t size;
    char *file = tr_read_file(path, &size);
    *n_cases = 0;
    CHECK(file != NULL, "cannot read %s: run tools/make_tokenizer_golden.py", path);
    if (!file)
        return NULL;
    int cap = 16;
    golden_case *cases = calloc((size_t)cap, sizeof *cases);
    for (char *line = file, *next; *line; line = next) {
        char *end = strchr(line, '\n');
        next = end ? end + 1 : line + strlen(line);
        if (end)
            *end = '\0';
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (line[0] == '#' || !tab2)
            continue;
        if (*n_cases == cap)
            cases = realloc(cases, (size_t)(cap *= 2) * sizeof *cases);
        golden_case *c = &cases[(*n_cases)++];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%.*s", (int)(tab1 - line), line);
        size_t hex_len = (size_t)(tab2 - tab1 - 1);
        c->len = hex_len / 2;
        c->text = malloc(c->len + 1);
        for (size_t i = 0; i < c->len; i++)
            c->text[i] = (uint8_t)(hex_digit(tab1[1 + 2 * i]) * 16 + hex_digit(tab1[2 + 2 * i]));
        c->ids = malloc((strlen(tab2) / 2 + 1) * sizeof *c->ids);
        for (char *p = tab2 + 1; *p;) {
            char *after;
            long v = strtol(p, &after, 10);
            if (after == p)
                break;
            c->ids[c->n_ids++] = (int32_t)v;
            p = after;
        }
    }
    free(file);
    return cases;
}

static void free_cases(golden_case *cases, int n)
{
    for (int i = 0; i < n; i++) {
        free(cases[i].text);
        free(cases[i].ids);
    }
    free(cases);
}

/* Every case of a golden file must encode exactly; with a lossless model (byte fallback, spaces kept)
 * valid text must also decode back, and with a byte-level one (lossless = 2) every text, invalid
 * UTF-8 included. Returns the number of cases. */
static int check_cases(const char *label, const tr_tokenizer *t, const char *golden_rel, int lossless)
{
    int n;
    golden_case *cases = read_cases(tr_golden(golden_rel), &n);
    int bad = 0, bad_trip = 0, trips = 0;
    for (int i = 0; i < n; i++) {
        golden_case *c = &cases[i];
        int32_t *ids;
        int got = encode(t, c->text, c->len, 0, &ids);
        char where[128];
        snprintf(where, sizeof where, "%s case '%s'", label, c->name);
        if (got < 0 || !same_ids(where, c->text, c->len, c->ids, c->n_ids, ids, got))
            bad++;
        else if (lossless == 2 || (lossless && valid_utf8_without_u2581(c->text, c->len))) {
            trips++;
            bad_trip += !round_trips(where, t, c->text, c->len, ids, got);
        }
        free(ids);
    }
    if (lossless == 2)
        printf("  %s: %d hard cases, %d differ, %d do not decode back\n", label, n, bad, bad_trip);
    CHECK(n > 0, "%s: no cases in %s", label, golden_rel);
    CHECK(bad == 0, "%s: %d of %d cases differ from the reference", label, bad, n);
    CHECK(bad_trip == 0, "%s: %d of %d valid texts do not decode back", label, bad_trip, trips);
    free_cases(cases, n);
    return n;
}

/* ---- LLaMA's tokenizer.model on the corpora ---------------------------------------------------- */

static void check_corpus(const char *corpus, const tr_tokenizer *t, const tr_tokenizer *from_vocab)
{
    char rel[128], golden_rel[128];
    snprintf(rel, sizeof rel, "corpus/%s.txt", corpus);
    snprintf(golden_rel, sizeof golden_rel, "tokenizer/llama2_corpus_%s.txt", corpus);
    size_t text_len, golden_len;
    char *text = tr_read_file(tr_shared(rel), &text_len);
    char *golden = tr_read_file(tr_golden(golden_rel), &golden_len);
    CHECK(text && golden, "cannot read %s or %s", rel, golden_rel);
    if (!text || !golden) {
        free(text);
        free(golden);
        return;
    }
    int lines = 0, bad = 0, bad_vocab = 0, bad_trip = 0;
    char *g = golden;
    double t0 = tr_test_now();
    for (char *p = text, *end = text + text_len; p < end; lines++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        const uint8_t *line = (const uint8_t *)p;
        p += len + 1;

        char *gnext = strchr(g, '\n');
        if (!gnext) {
            CHECK(0, "%s: the golden file ends before line %d", golden_rel, lines + 1);
            break;
        }
        *gnext = '\0';
        char *after;
        long want_n = strtol(g, &after, 10);
        uint64_t want_hash = want_n > 0 ? strtoull(after, NULL, 16) : fnv1a64(NULL, 0);
        g = gnext + 1;

        int32_t *ids, *ids2;
        int n = encode(t, line, len, 0, &ids);
        if (n != want_n || fnv1a64(ids, n) != want_hash) {
            if (reports++ < MAX_REPORTS) {
                fprintf(stderr, "MISMATCH %s line %d: expected %ld ids (hash %016llx), got %d (hash %016llx) for ",
                        corpus, lines + 1, want_n, (unsigned long long)want_hash, n,
                        (unsigned long long)fnv1a64(ids, n));
                print_text(line, len);
                fputc('\n', stderr);
                print_ids("got", ids, n, 0);
                fprintf(stderr, "    reference: tools/make_tokenizer_golden.py --show %s %d\n", corpus, lines + 1);
            }
            bad++;
        } else if (valid_utf8_without_u2581(line, len) && !round_trips(corpus, t, line, len, ids, n)) {
            bad_trip++;
        }
        if (lines % 4 == 0) { /* the GGUF path on a quarter of the lines: the same ids */
            int n2 = encode(from_vocab, line, len, 0, &ids2);
            if (!same_ids("tr_tokenizer_from_vocab", line, len, ids, n, ids2, n2))
                bad_vocab++;
            free(ids2);
        }
        free(ids);
    }
    printf("  %s: %d lines (%zu bytes) encoded and decoded in %.2f s\n", corpus, lines, text_len, tr_test_now() - t0);
    CHECK(*g == '\0', "%s: the golden file has more lines than the corpus (%d)", golden_rel, lines);
    CHECK(bad == 0, "%s: %d of %d lines differ from sentencepiece", corpus, bad, lines);
    CHECK(bad_trip == 0, "%s: %d lines do not decode back", corpus, bad_trip);
    CHECK(bad_vocab == 0, "%s: %d lines differ between load_spm and from_vocab", corpus, bad_vocab);
    free(text);
    free(golden);
}

static void test_llama(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", tr_shared("models/llama2-tokenizer/tokenizer.model"));
    tr_tokenizer *t = NULL, *tv = NULL;
    tr_vocab_spec spec;
    tr_status s = tr_tokenizer_load_spm(path, &t);
    CHECK(s == TR_OK, "load_spm: %s", tr_last_error());
    tr_status sv = tr_spm_read_vocab(path, &spec);
    CHECK(sv == TR_OK, "tr_spm_read_vocab: %s", tr_last_error());
    if (sv == TR_OK) {
        CHECK(spec.n == 32000 && spec.bos_id == 1 && spec.eos_id == 2 && spec.unk_id == 0 && spec.byte_fallback,
              "spec: n %d bos %d eos %d unk %d byte_fallback %d", spec.n, spec.bos_id, spec.eos_id, spec.unk_id,
              spec.byte_fallback);
        CHECK(tr_tokenizer_from_vocab(&spec, &tv) == TR_OK, "from_vocab: %s", tr_last_error());
        tr_vocab_spec_free(&spec);
    }
    if (!t || !tv) {
        tr_tokenizer_free(t);
        tr_tokenizer_free(tv);
        return;
    }
    CHECK(tr_tokenizer_n_vocab(t) == 32000 && tr_tokenizer_bos(t) == 1 && tr_tokenizer_eos(t) == 2 &&
              tr_tokenizer_add_bos(t) == 1,
          "llama accessors: n %d bos %d eos %d add_bos %d", tr_tokenizer_n_vocab(t), tr_tokenizer_bos(t),
          tr_tokenizer_eos(t), tr_tokenizer_add_bos(t));
    check_cases("tokenizer.model", t, "tokenizer/llama2_hard.txt", 1);
    check_cases("from_vocab", tv, "tokenizer/llama2_hard.txt", 1);
    check_corpus("tinyshakespeare", t, tv);
    check_corpus("wikitext-2-test", t, tv);

    /* The decode API's edges. */
    int32_t ids[8];
    int n = 0;
    s = tr_tokenizer_encode(t, "Hello world", 11, 1, ids, 8, &n);
    CHECK(s == TR_OK && n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186, "Hello world with BOS: n %d", n);
    s = tr_tokenizer_encode(t, "Hello world", 11, 1, ids, 2, &n);
    CHECK(s == TR_ERR_RANGE && n == 3, "a short id buffer: status %d, n %d", s, n);
    char buf[16];
    CHECK(tr_tokenizer_piece(t, -1, 15043, buf, sizeof buf) == 5 && strcmp(buf, "Hello") == 0, "first piece '%s'", buf);
    CHECK(tr_tokenizer_piece(t, 1, 15043, buf, sizeof buf) == 5 && strcmp(buf, "Hello") == 0, "after BOS '%s'", buf);
    CHECK(tr_tokenizer_piece(t, 15043, 3186, buf, sizeof buf) == 6 && strcmp(buf, " world") == 0, "'%s'", buf);
    CHECK(tr_tokenizer_piece(t, 15043, 1, buf, sizeof buf) == 0 && buf[0] == '\0', "BOS decodes to nothing");
    CHECK(tr_tokenizer_piece(t, 15043, 2, buf, sizeof buf) == 0, "EOS decodes to nothing");
    CHECK(tr_tokenizer_piece(t, -1, 3 + 'A', buf, sizeof buf) == 1 && buf[0] == 'A', "<0x41> decodes to 'A'");
    CHECK(tr_tokenizer_piece(t, -1, 3 + 0xFF, buf, sizeof buf) == 1 && (uint8_t)buf[0] == 0xFF, "<0xFF> is a raw byte");
    CHECK(tr_tokenizer_piece(t, 15043, 3186, buf, 3) == TR_ERR_RANGE, "a short piece buffer is TR_ERR_RANGE");
    CHECK(tr_tokenizer_piece(t, -1, 32000, buf, sizeof buf) < 0, "an id past the vocabulary is an error");
    CHECK(tr_tokenizer_piece(t, -1, -5, buf, sizeof buf) < 0, "a negative id is an error");
    int32_t hw[] = {1, 15043, 3186};
    CHECK(tr_tokenizer_decode(t, hw, 3, buf, 6) == 11 && strcmp(buf, "Hello") == 0, "truncated decode '%s'", buf);
    CHECK(tr_tokenizer_decode(t, hw, 3, NULL, 0) == 11, "decode length only");
    int32_t bad_ids[] = {1, 40000};
    CHECK(tr_tokenizer_decode(t, bad_ids, 2, buf, sizeof buf) < 0, "decoding an invalid id is an error");
    tr_tokenizer_free(t);
    tr_tokenizer_free(tv);
}

/* ---- tokenizer.json ---------------------------------------------------------------------------- */

static void test_hf_json(void)
{
    static const char *const models[] = {"stories260K", "aidreams260K"};
    for (int m = 0; m < 2; m++) {
        char rel[128], golden_rel[128];
        snprintf(rel, sizeof rel, "models/%s/hf/tokenizer.json", models[m]);
        snprintf(golden_rel, sizeof golden_rel, "tokenizer/%s_hf.txt", models[m]);
        tr_tokenizer *t = NULL;
        tr_status s = tr_tokenizer_load_hf_json(tr_shared(rel), &t);
        CHECK(s == TR_OK, "load %s: %s", rel, tr_last_error());
        if (!t)
            continue;
        CHECK(tr_tokenizer_n_vocab(t) == 512 && tr_tokenizer_bos(t) == 1 && tr_tokenizer_eos(t) == 2,
              "%s: n %d bos %d eos %d", models[m], tr_tokenizer_n_vocab(t), tr_tokenizer_bos(t), tr_tokenizer_eos(t));
        check_cases(models[m], t, golden_rel, 1);
        if (m == 0) {
            int32_t ids[8], want[] = {1, 403, 407, 261, 378};
            int n = 0;
            s = tr_tokenizer_encode(t, "Once upon a time", 16, tr_tokenizer_add_bos(t), ids, 8, &n);
            const uint8_t *prompt = (const uint8_t *)"Once upon a time";
            CHECK(s == TR_OK && same_ids("stories260K prompt", prompt, 16, want, 5, ids, n),
                  "\"Once upon a time\" with BOS is not [1, 403, 407, 261, 378]");
            tr_tokenizer_set_add_bos(t, 0);
            CHECK(tr_tokenizer_add_bos(t) == 0, "set_add_bos(0)");
        }
        tr_tokenizer_free(t);
    }
}

/* stories260K's vocabulary with transformers' non-legacy text rules (no normalizer, a Metaspace
 * pre-tokenizer): made here from the shared file, as the golden script makes it. Leading spaces are
 * lost by design of that tokenizer, so no round trip is asked. */
static void test_hf_metaspace(void)
{
    size_t size;
    char *text = tr_read_file(tr_shared("models/stories260K/hf/tokenizer.json"), &size);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(root != NULL, "cannot read stories260K's tokenizer.json");
    free(text);
    if (!root)
        return;
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xE2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", "first");
    cJSON_AddFalseToObject(pre, "split");
    cJSON_ReplaceItemInObjectCaseSensitive(root, "pre_tokenizer", pre);
    cJSON_ReplaceItemInObjectCaseSensitive(root, "normalizer", cJSON_CreateNull());
    char *json = cJSON_PrintUnformatted(root);
    tr_tokenizer *t = NULL;
    CHECK(tr_tokenizer_parse_hf_json(json, strlen(json), "metaspace.json", &t) == TR_OK, "metaspace: %s",
          tr_last_error());
    if (t)
        check_cases("stories260K metaspace", t, "tokenizer/stories260K_metaspace_hf.txt", 0);
    tr_tokenizer_free(t);

    cJSON_ReplaceItemInObjectCaseSensitive(pre, "split", cJSON_CreateTrue());
    free(json);
    json = cJSON_PrintUnformatted(root);
    tr_status s = tr_tokenizer_parse_hf_json(json, strlen(json), "bad.json", &t);
    check_error("a splitting Metaspace", s, TR_ERR_UNSUPPORTED, "bad.json", t);
    free(json);
    cJSON_Delete(root);
}

/* The GGUF vocabulary of stories260K (pieces + scores + types, merged by score) must encode as its
 * tokenizer.json does (merged by rank): the converter ranked the merges by piece score. */
static void test_gguf_vocab(void)
{
    size_t size;
    uint8_t *data = (uint8_t *)tr_read_file(tr_shared("models/stories260K/stories260K.gguf"), &size);
    CHECK(data != NULL, "cannot read stories260K.gguf");
    if (!data)
        return;
    tr_gguf g;
    tr_vocab_spec spec;
    int has_vocab = 0;
    tr_tokenizer *t = NULL;
    if (tr_gguf_parse(data, size, "stories260K.gguf", &g) == TR_OK) {
        if (tr_gguf_read_vocab(&g, "stories260K.gguf", &spec, &has_vocab) == TR_OK && has_vocab) {
            CHECK(tr_tokenizer_from_vocab(&spec, &t) == TR_OK, "from_vocab(stories260K.gguf): %s", tr_last_error());
            tr_vocab_spec_free(&spec);
        }
        tr_gguf_free(&g);
    }
    CHECK(t != NULL, "no tokenizer from stories260K.gguf: %s", tr_last_error());
    if (t) {
        check_cases("stories260K.gguf", t, "tokenizer/stories260K_hf.txt", 1);
        int32_t ids[8], want[] = {1, 403, 407, 261, 378};
        int n = 0;
        tr_status s = tr_tokenizer_encode(t, "Once upon a time", 16, tr_tokenizer_add_bos(t), ids, 8, &n);
        const uint8_t *prompt = (const uint8_t *)"Once upon a time";
        CHECK(s == TR_OK && same_ids("stories260K.gguf prompt", prompt, 16, want, 5, ids, n),
              "\"Once upon a time\" with BOS is not [1, 403, 407, 261, 378] through the GGUF vocabulary");
    }
    tr_tokenizer_free(t);
    free(data);
}

/* ---- hand-built SentencePiece models ----------------------------------------------------------- */

static void test_handmade_spm(void)
{
    static const char *const variants[] = {"unused_bytes", "no_byte_fallback", "squeeze_spaces", "no_prefix_no_escape"};
    for (int v = 0; v < 4; v++) {
        char model_rel[128], golden_rel[128];
        snprintf(model_rel, sizeof model_rel, "tokenizer/spm_%s.model", variants[v]);
        snprintf(golden_rel, sizeof golden_rel, "tokenizer/spm_%s.txt", variants[v]);
        tr_tokenizer *t = NULL;
        CHECK(tr_tokenizer_load_spm(tr_golden(model_rel), &t) == TR_OK, "load %s: %s", model_rel, tr_last_error());
        if (t)
            check_cases(variants[v], t, golden_rel, v == 0);
        tr_tokenizer_free(t);
    }
}

/* ---- damaged inputs ---------------------------------------------------------------------------- */

/* A tiny protobuf writer for damaged models. */
typedef struct pbuf {
    uint8_t b[4096];
    size_t n;
} pbuf;

static void pb_varint(pbuf *p, uint64_t v)
{
    do {
        p->b[p->n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void pb_bytes(pbuf *p, int field, const void *data, size_t len)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, len);
    memcpy(p->b + p->n, data, len);
    p->n += len;
}

static void pb_piece(pbuf *p, const char *piece, int type)
{
    pbuf body = {.n = 0};
    pb_bytes(&body, 1, piece, strlen(piece));
    body.b[body.n++] = 2 << 3 | 5; /* score = 0.0f */
    memset(body.b + body.n, 0, 4);
    body.n += 4;
    pb_varint(&body, 3 << 3);
    pb_varint(&body, (uint64_t)type);
    pb_bytes(p, 1, body.b, body.n);
}

/* A minimal valid model: <unk>, <s>, </s>, a, b, ab; then the trainer and normalizer specs. */
static void pb_model(pbuf *p, int n_pieces, int model_type, const char *charsmap)
{
    static const char *const pieces[] = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
    static const int types[] = {2, 3, 3, 1, 1, 1};
    p->n = 0;
    for (int i = 0; i < n_pieces; i++)
        pb_piece(p, pieces[i], types[i]);
    pbuf trainer = {.n = 0};
    pb_varint(&trainer, 3 << 3);
    pb_varint(&trainer, (uint64_t)model_type);
    pb_bytes(p, 2, trainer.b, trainer.n);
    pbuf norm = {.n = 0};
    pb_bytes(&norm, 1, "identity", 8);
    if (charsmap)
        pb_bytes(&norm, 2, charsmap, strlen(charsmap));
    pb_bytes(p, 3, norm.b, norm.n);
}

static void expect_spm(const char *what, const uint8_t *data, size_t size, tr_status want)
{
    tr_tokenizer *t = NULL;
    tr_status s = tr_tokenizer_parse_spm(data, size, "damaged.model", &t);
    if (want == TR_OK) {
        CHECK(s == TR_OK && t, "%s: %s", what, tr_last_error());
        tr_tokenizer_free(t);
        return;
    }
    check_error(what, s, want, "damaged.model", t);
    tr_tokenizer_free(t);
}

static void test_damaged_spm(void)
{
    pbuf p;
    pb_model(&p, 6, 2, NULL);
    expect_spm("the minimal model", p.b, p.n, TR_OK);
    tr_tokenizer *tiny = NULL;
    if (tr_tokenizer_parse_spm(p.b, p.n, "tiny", &tiny) == TR_OK) {
        int32_t ids[8];
        int n = 0;
        /* remove_extra_whitespaces defaults to true when the spec does not say */
        tr_status s = tr_tokenizer_encode(tiny, "  ab  b", 7, 0, ids, 8, &n);
        CHECK(s == TR_OK && n == 4 && ids[0] == 0 && ids[1] == 5 && ids[2] == 0 && ids[3] == 4,
              "tiny model: n %d", n);
        tr_tokenizer_free(tiny);
    }
    pb_model(&p, 6, 1, NULL);
    expect_spm("a UNIGRAM model", p.b, p.n, TR_ERR_UNSUPPORTED);
    pb_model(&p, 6, 3, NULL);
    expect_spm("a WORD model", p.b, p.n, TR_ERR_UNSUPPORTED);
    pb_model(&p, 0, 2, NULL);
    expect_spm("zero pieces", p.b, p.n, TR_ERR_FORMAT);
    pb_model(&p, 6, 2, "xyz");
    expect_spm("a precompiled charsmap", p.b, p.n, TR_ERR_UNSUPPORTED);
    expect_spm("an empty file", p.b, 0, TR_ERR_FORMAT);

    pb_model(&p, 6, 2, NULL);
    uint8_t bad[4096];
    static const uint8_t wire_types[] = {3, 4, 6, 7};
    for (int i = 0; i < 4; i++) {
        memcpy(bad, p.b, p.n);
        bad[0] = (uint8_t)(1 << 3 | wire_types[i]); /* the first piece's key */
        expect_spm("a bogus wire type", bad, p.n, TR_ERR_FORMAT);
    }
    memcpy(bad, p.b, p.n);
    bad[1] = 0x7F; /* the first piece's length, now past the end of the file */
    expect_spm("a length past the end", bad, p.n, TR_ERR_FORMAT);
    memcpy(bad, p.b, p.n);
    bad[1] = 0xFF; /* a varint that never ends inside the file */
    memset(bad + 2, 0xFF, 12);
    expect_spm("an endless varint", bad, p.n, TR_ERR_FORMAT);
    memcpy(bad, p.b, p.n);
    bad[0] = 0x02; /* field number 0 */
    expect_spm("field number 0", bad, p.n, TR_ERR_FORMAT);
    memcpy(bad, p.b, p.n);
    bad[0] = 1 << 3 | 0; /* pieces as a varint */
    expect_spm("pieces with the wrong wire type", bad, p.n, TR_ERR_FORMAT);

    /* Pieces that SentencePiece would refuse. */
    pbuf q = {.n = 0};
    pb_piece(&q, "<unk>", 2);
    pb_piece(&q, "", 1);
    expect_spm("an empty piece", q.b, q.n, TR_ERR_FORMAT);
    q.n = 0;
    pb_piece(&q, "a", 9);
    expect_spm("an unknown piece type", q.b, q.n, TR_ERR_FORMAT);
    q.n = 0;
    pb_piece(&q, "<unk>", 2);
    pb_piece(&q, "<0x41>", 6);
    expect_spm("a byte piece without byte_fallback", q.b, q.n, TR_ERR_UNSUPPORTED); /* UNIGRAM by default */

    /* LLaMA's real model cut at many lengths: an error everywhere except between top-level fields
     * (where the shorter file is a valid, smaller model or lacks its trainer spec, i.e. UNIGRAM). */
    size_t size;
    uint8_t *model = (uint8_t *)tr_read_file(tr_shared("models/llama2-tokenizer/tokenizer.model"), &size);
    CHECK(model != NULL, "cannot read the LLaMA tokenizer.model");
    if (!model)
        return;
    uint8_t *boundary = calloc(size + 1, 1);
    for (size_t pos = 0; pos < size;) { /* mark where top-level fields end */
        uint64_t len = 0;
        int shift = 0;
        while (model[pos] & 0x80) /* the key: always field 1, 2 or 3, length-delimited */
            pos++;
        pos++;
        while (model[pos] & 0x80)
            len |= (uint64_t)(model[pos++] & 0x7F) << (7 * shift++);
        len |= (uint64_t)model[pos++] << (7 * shift);
        pos += len;
        if (pos <= size)
            boundary[pos] = 1;
    }
    boundary[0] = 1;
    int cuts = 0, failures = 0;
    for (size_t cut = 0; cut < size; cut += cut < 300 ? 1 : cut < size - 400 ? 9973 : 5) {
        tr_tokenizer *t = NULL;
        tr_status s = tr_tokenizer_parse_spm(model, cut, "cut.model", &t);
        cuts++;
        if (s != TR_OK) {
            failures++;
            char what[64];
            snprintf(what, sizeof what, "tokenizer.model cut at %zu", cut);
            check_error(what, s, TR_OK, "cut.model", t);
        } else {
            CHECK(boundary[cut], "tokenizer.model cut at %zu inside a field loads", cut);
        }
        tr_tokenizer_free(t);
    }
    CHECK(failures > cuts / 2, "only %d of %d cuts failed", failures, cuts);
    free(boundary);

    /* The file entry points name the path. */
    char path[] = "/tmp/transit_tokenizer_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (f) {
        fwrite(model, 1, size / 3, f);
        fclose(f);
        tr_tokenizer *t = NULL;
        tr_vocab_spec spec;
        tr_status s = tr_tokenizer_load_spm(path, &t);
        check_error("a truncated tokenizer.model file", s, TR_OK, path, t);
        s = tr_spm_read_vocab(path, &spec);
        check_error("tr_spm_read_vocab of a truncated file", s, TR_OK, path, NULL);
        remove(path);
    }
    free(model);
    tr_tokenizer *t = NULL;
    tr_status s = tr_tokenizer_load_spm("/nonexistent/tokenizer.model", &t);
    check_error("a missing file", s, TR_ERR_IO, "/nonexistent/tokenizer.model", t);
    s = tr_tokenizer_load_hf_json("/nonexistent/tokenizer.json", &t);
    check_error("a missing json file", s, TR_ERR_IO, "/nonexistent/tokenizer.json", t);
}

static void expect_json(const char *what, const char *json, tr_status want)
{
    tr_tokenizer *t = NULL;
    tr_status s = tr_tokenizer_parse_hf_json(json, strlen(json), "bad.json", &t);
    if (want == TR_OK) {
        CHECK(s == TR_OK && t, "%s: %s", what, tr_last_error());
    } else {
        check_error(what, s, want, "bad.json", t);
    }
    tr_tokenizer_free(t);
}

#define VOCAB "\"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3}"
#define MODEL(extra) "{\"model\": {\"type\": \"BPE\", " VOCAB ", \"merges\": [\"a b\"]" extra "}}"

static void test_damaged_json(void)
{
    expect_json("a minimal tokenizer.json", MODEL(""), TR_OK);
    expect_json("merges as pairs", "{\"model\": {" VOCAB ", \"merges\": [[\"a\", \"b\"]]}}", TR_OK);
    expect_json("not JSON", "{\"model\": {\"type\": \"BPE\", \"vocab\": {", TR_ERR_FORMAT);
    expect_json("not JSON at all", "tokenizer", TR_ERR_FORMAT);
    expect_json("an empty file", "", TR_ERR_FORMAT);
    expect_json("a JSON array", "[1, 2]", TR_ERR_FORMAT);
    expect_json("model missing", "{\"version\": \"1.0\"}", TR_ERR_FORMAT);
    expect_json("model not an object", "{\"model\": \"BPE\"}", TR_ERR_FORMAT);
    expect_json("vocab missing", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("vocab an array", "{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"], \"merges\": []}}",
                TR_ERR_FORMAT);
    expect_json("vocab empty", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("merges missing", "{\"model\": {\"type\": \"BPE\", " VOCAB "}}", TR_ERR_FORMAT);
    expect_json("merges an object", "{\"model\": {" VOCAB ", \"merges\": {}}}", TR_ERR_FORMAT);
    expect_json("a negative id", "{\"model\": {\"vocab\": {\"a\": -1}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a fractional id", "{\"model\": {\"vocab\": {\"a\": 0.5}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a huge id", "{\"model\": {\"vocab\": {\"a\": 1e12}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a string id", "{\"model\": {\"vocab\": {\"a\": \"0\"}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a gap in the ids", "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a duplicated id", "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a merge of an unknown piece", "{\"model\": {" VOCAB ", \"merges\": [\"a zz\"]}}", TR_ERR_FORMAT);
    expect_json("a merge into an unknown piece", "{\"model\": {" VOCAB ", \"merges\": [\"b a\"]}}", TR_ERR_FORMAT);
    expect_json("a merge without a space", "{\"model\": {" VOCAB ", \"merges\": [\"ab\"]}}", TR_ERR_FORMAT);
    expect_json("a merge that is a number", "{\"model\": {" VOCAB ", \"merges\": [7]}}", TR_ERR_FORMAT);
    expect_json("a merge of three", "{\"model\": {" VOCAB ", \"merges\": [[\"a\", \"b\", \"c\"]]}}", TR_ERR_FORMAT);
    expect_json("type not a string", "{\"model\": {\"type\": 3, " VOCAB ", \"merges\": []}}", TR_ERR_FORMAT);
    expect_json("a WordPiece model", "{\"model\": {\"type\": \"WordPiece\", " VOCAB ", \"merges\": []}}",
                TR_ERR_UNSUPPORTED);
    expect_json("a Unigram model", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}",
                TR_ERR_UNSUPPORTED);
    expect_json("byte_fallback a string", MODEL(", \"byte_fallback\": \"yes\""), TR_ERR_FORMAT);
    expect_json("unk_token a number", MODEL(", \"unk_token\": 0"), TR_ERR_FORMAT);
    expect_json("unk_token unknown", MODEL(", \"unk_token\": \"<pad>\""), TR_ERR_FORMAT);
    expect_json("dropout", MODEL(", \"dropout\": 0.1"), TR_ERR_UNSUPPORTED);
    expect_json("a subword prefix", MODEL(", \"continuing_subword_prefix\": \"##\""), TR_ERR_UNSUPPORTED);
    expect_json("added_tokens an object", "{\"added_tokens\": {}, \"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_FORMAT);
    expect_json("an added token without content",
                "{\"added_tokens\": [{\"id\": 0, \"special\": true}], \"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_FORMAT);
    expect_json("an added token with another piece's id",
                "{\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true}], \"model\": {" VOCAB
                ", \"merges\": []}}",
                TR_ERR_FORMAT);
    expect_json("an added token that is not special",
                "{\"added_tokens\": [{\"id\": 4, \"content\": \"<x>\", \"special\": false}], \"model\": {" VOCAB
                ", \"merges\": []}}",
                TR_ERR_UNSUPPORTED);
    expect_json("a new special added token",
                "{\"added_tokens\": [{\"id\": 4, \"content\": \"<s>\", \"special\": true}], \"model\": {" VOCAB
                ", \"merges\": []}}",
                TR_OK);
    expect_json("an NFKC normalizer", "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_UNSUPPORTED);
    expect_json("a normalizer without type", "{\"normalizer\": {}, \"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_FORMAT);
    expect_json("a regex Replace",
                "{\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \" \"}, \"content\": \"_\"}, "
                "\"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_UNSUPPORTED);
    expect_json("a Metaspace pre-tokenizer without replacement",
                "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_UNSUPPORTED);
    expect_json("a ByteLevel vocabulary without the 256 byte tokens",
                "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, \"model\": {" VOCAB
                ", \"merges\": []}}",
                TR_ERR_FORMAT);
    expect_json("a pre-tokenizer without type", "{\"pre_tokenizer\": [], \"model\": {" VOCAB ", \"merges\": []}}",
                TR_ERR_FORMAT);

    /* stories260K's tokenizer.json cut at many lengths: never valid JSON. */
    size_t size;
    char *json = tr_read_file(tr_shared("models/stories260K/hf/tokenizer.json"), &size);
    CHECK(json != NULL, "cannot read stories260K's tokenizer.json");
    if (!json)
        return;
    for (size_t cut = 0; cut < size; cut += cut < 200 ? 3 : 211) {
        tr_tokenizer *t = NULL;
        char what[64];
        snprintf(what, sizeof what, "tokenizer.json cut at %zu", cut);
        tr_status s = tr_tokenizer_parse_hf_json(json, cut, "cut.json", &t);
        check_error(what, s, TR_ERR_FORMAT, "cut.json", t);
        tr_tokenizer_free(t);
    }
    free(json);
}


/* ---- Llama 3 byte-level BPE (golden data from tools/make_bpe_golden.py) ---------------------------- */

#define LLAMA3_DIR "models/llama3-tokenizer/"

/* Hard cases: exact ids, and every text (invalid UTF-8 included) decodes back to its bytes. */
static void check_bpe_cases(const char *label, const tr_tokenizer *t)
{
    int n = check_cases(label, t, "bpe/llama3_hard.txt", 2);
    CHECK(n > 40, "%s: only %d cases in bpe/llama3_hard.txt", label, n);
}

/* Every line of a corpus, checked per block of lines against "<lines> <ids> <fnv64>". Returns the
 * number of ids and adds the seconds spent encoding to *secs. */
static long check_bpe_corpus(const char *label, const tr_tokenizer *t, const char *corpus, double *secs)
{
    char rel[128], golden_rel[128];
    snprintf(rel, sizeof rel, "corpus/%s.txt", corpus);
    snprintf(golden_rel, sizeof golden_rel, "bpe/llama3_corpus_%s.txt", corpus);
    size_t text_len, golden_len;
    char *text = tr_read_file(tr_shared(rel), &text_len);
    char *golden = tr_read_file(tr_golden(golden_rel), &golden_len);
    CHECK(text && golden, "cannot read %s or %s", rel, golden_rel);
    long total = 0;
    int lines = 0, bad_blocks = 0, bad_trip = 0;
    char *g = golden, *p = text, *end = text ? text + text_len : NULL;
    while (text && golden && p < end) {
        char *after;
        long block_lines = strtol(g, &after, 10), want_n = strtol(after, &after, 10);
        uint64_t want_hash = strtoull(after, &after, 16);
        if (block_lines <= 0) {
            CHECK(0, "%s: the golden file ends before line %d", golden_rel, lines + 1);
            break;
        }
        g = after;
        uint64_t h = 0xCBF29CE484222325ull;
        long n_block = 0;
        int first = lines + 1;
        for (long k = 0; k < block_lines && p < end; k++, lines++) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = (size_t)((nl ? nl : end) - p);
            int32_t *ids;
            double t0 = tr_test_now();
            int n = encode(t, (const uint8_t *)p, len, 0, &ids);
            *secs += tr_test_now() - t0;
            for (int i = 0; i < n; i++) /* the golden hash: the ids, then -1, continued over the block */
                for (int b = 0; b < 4; b++) {
                    h ^= ((uint32_t)ids[i] >> (8 * b)) & 0xFF;
                    h *= 0x100000001B3ull;
                }
            for (int b = 0; b < 4; b++) {
                h ^= 0xFF;
                h *= 0x100000001B3ull;
            }
            n_block += n > 0 ? n : 0;
            bad_trip += n >= 0 && !round_trips(corpus, t, (const uint8_t *)p, len, ids, n);
            free(ids);
            p += len + 1;
        }
        if (n_block != want_n || h != want_hash) {
            if (reports++ < MAX_REPORTS)
                fprintf(stderr, "MISMATCH %s %s lines %d-%d: expected %ld ids (hash %016llx), got %ld (%016llx)\n",
                        label, corpus, first, lines, want_n, (unsigned long long)want_hash, n_block,
                        (unsigned long long)h);
            bad_blocks++;
        }
        total += n_block;
    }
    while (g && (*g == '\n' || *g == ' '))
        g++;
    printf("  %s %s: %d lines, %ld ids, %d blocks of 64 lines differ, %d lines do not decode back\n", label, corpus,
           lines, total, bad_blocks, bad_trip);
    CHECK(!golden || *g == '\0', "%s: the golden file has more blocks than the corpus (%d lines)", golden_rel, lines);
    CHECK(bad_blocks == 0, "%s %s: %d blocks differ from tokenizers / tiktoken", label, corpus, bad_blocks);
    CHECK(bad_trip == 0, "%s %s: %d lines do not decode back", label, corpus, bad_trip);
    free(text);
    free(golden);
    return total;
}

/* The 1 MB line: a unit repeated (llama3_big.txt). */
static void check_bpe_big(const char *label, const tr_tokenizer *t)
{
    size_t size;
    char *golden = tr_read_file(tr_golden("bpe/llama3_big.txt"), &size);
    CHECK(golden != NULL, "cannot read bpe/llama3_big.txt");
    if (!golden)
        return;
    char *after, *hex;
    long repeat = strtol(golden, &after, 10), want_n = strtol(after, &after, 10);
    uint64_t want_hash = strtoull(after, &hex, 16);
    while (*hex == '\n')
        hex++;
    size_t unit = strcspn(hex, "\n") / 2, len = unit * (size_t)repeat;
    uint8_t *text = malloc(len + 1);
    for (size_t i = 0; i < unit; i++)
        text[i] = (uint8_t)(hex_digit(hex[2 * i]) * 16 + hex_digit(hex[2 * i + 1]));
    for (long r = 1; r < repeat; r++)
        memcpy(text + (size_t)r * unit, text, unit);
    int32_t *ids;
    double t0 = tr_test_now();
    int n = encode(t, text, len, 0, &ids);
    double dt = tr_test_now() - t0;
    printf("  %s: a %zu-byte line, %d ids in %.3f s\n", label, len, n, dt);
    CHECK(n == want_n && fnv1a64(ids, n) == want_hash, "%s: the 1 MB line gives %d ids (hash %016llx), expected %ld (%016llx)",
          label, n, (unsigned long long)fnv1a64(ids, n), want_n, (unsigned long long)want_hash);
    CHECK(n >= 0 && round_trips(label, t, text, len, ids, n), "%s: the 1 MB line does not decode back", label);
    free(ids);
    free(text);
    free(golden);
}

static void check_llama3(const char *label, const tr_tokenizer *t)
{
    CHECK(tr_tokenizer_n_vocab(t) == 128256 && tr_tokenizer_bos(t) == 128000 && tr_tokenizer_eos(t) == 128001,
          "%s: vocabulary %d, BOS %d, EOS %d; expected 128256, 128000, 128001", label, tr_tokenizer_n_vocab(t),
          tr_tokenizer_bos(t), tr_tokenizer_eos(t));
    check_bpe_cases(label, t);
    double secs = 0;
    long n = check_bpe_corpus(label, t, "tinyshakespeare", &secs);
    n += check_bpe_corpus(label, t, "wikitext-2-test", &secs);
    printf("  %s: both corpora, %ld ids in %.3f s: %.0f tokens/s (one thread, line by line)\n", label, n, secs,
           n / (secs > 0 ? secs : 1e-9));
    check_bpe_big(label, t);
    int32_t ids[4];
    int got = 0;
    CHECK(tr_tokenizer_encode(t, "Hi", 2, 1, ids, 4, &got) == TR_OK && got == 2 && ids[0] == 128000 && ids[1] == 13347,
          "%s: \"Hi\" with BOS is not [128000, 13347]", label);
    char piece[32];
    CHECK(tr_tokenizer_piece(t, -1, 128009, piece, sizeof piece) == 10 && strcmp(piece, "<|eot_id|>") == 0,
          "%s: token 128009 does not decode to <|eot_id|>", label);
}

/* The tokenizer's vocabulary written as llama.cpp writes a Llama 3 GGUF (tokenizer.ggml.model "gpt2"). */
static tr_status write_bpe_gguf(const tr_tokenizer *t, const char *path, const char *pre)
{
    tr_vocab_spec v;
    TR_TRY(tr_tokenizer_export_vocab(t, &v));
    tr_gguf_writer *w;
    tr_status s = tr_gguf_writer_open(path, &w);
    if (s == TR_OK) {
        tr_gguf_put_str(w, "general.architecture", "llama");
        tr_gguf_put_str(w, "tokenizer.ggml.model", "gpt2");
        tr_gguf_put_str(w, "tokenizer.ggml.pre", pre);
        tr_gguf_put_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.pieces, (size_t)v.n);
        tr_gguf_put_i32_array(w, "tokenizer.ggml.token_type", v.types, (size_t)v.n);
        tr_gguf_put_str_array(w, "tokenizer.ggml.merges", (const char *const *)v.merges, (size_t)v.n_merges);
        tr_gguf_put_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v.bos_id);
        tr_gguf_put_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v.eos_id);
        tr_gguf_put_bool(w, "tokenizer.ggml.add_bos_token", 1);
        s = tr_gguf_write_header(w);
        tr_status c = tr_gguf_writer_close(w);
        s = s != TR_OK ? s : c;
    }
    tr_vocab_spec_free(&v);
    return s;
}

/* A GGUF file's vocabulary as a tokenizer (the model loader's path). */
static tr_status load_gguf_vocab(const char *path, tr_tokenizer **out)
{
    *out = NULL;
    size_t size;
    uint8_t *data = (uint8_t *)tr_read_file(path, &size);
    if (!data)
        return tr_fail(TR_ERR_IO, "%s: cannot read", path);
    tr_gguf g;
    tr_vocab_spec spec;
    int has_vocab = 0;
    tr_status s = tr_gguf_parse(data, size, path, &g);
    if (s == TR_OK) {
        s = tr_gguf_read_vocab(&g, path, &spec, &has_vocab);
        if (s == TR_OK && has_vocab) {
            s = tr_tokenizer_from_vocab(&spec, out);
            tr_vocab_spec_free(&spec);
        }
        tr_gguf_free(&g);
    }
    free(data);
    return s;
}

static void test_llama3(void)
{
    tr_tokenizer *json = NULL, *tik = NULL, *gguf = NULL;
    double t0 = tr_test_now();
    CHECK(tr_tokenizer_load_hf_json(tr_shared(LLAMA3_DIR "tokenizer.json"), &json) == TR_OK, "llama3 tokenizer.json: %s",
          tr_last_error());
    printf("  llama3 tokenizer.json loaded in %.2f s\n", tr_test_now() - t0);
    t0 = tr_test_now();
    /* through load_spm: the tiktoken format must be told from a SentencePiece protobuf by content */
    CHECK(tr_tokenizer_load_spm(tr_shared(LLAMA3_DIR "tokenizer.model"), &tik) == TR_OK, "llama3 tokenizer.model: %s",
          tr_last_error());
    printf("  llama3 tokenizer.model (tiktoken) loaded in %.2f s\n", tr_test_now() - t0);
    if (json)
        check_llama3("llama3 tokenizer.json", json);
    if (tik)
        check_llama3("llama3 tiktoken", tik);
    char path[256];
    snprintf(path, sizeof path, "%s/transit_test_llama3_%ld.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)tr_test_now() * 1000 % 1000000);
    if (json) {
        CHECK(write_bpe_gguf(json, path, "llama-bpe") == TR_OK, "writing %s: %s", path, tr_last_error());
        CHECK(load_gguf_vocab(path, &gguf) == TR_OK && gguf, "llama3 GGUF vocabulary: %s", tr_last_error());
        if (gguf)
            check_llama3("llama3 GGUF", gguf);
        tr_tokenizer *other = NULL; /* another pre-tokenizer name: refused, never split the Llama 3 way */
        CHECK(write_bpe_gguf(json, path, "qwen2") == TR_OK, "writing %s: %s", path, tr_last_error());
        tr_status s = load_gguf_vocab(path, &other);
        check_error("GGUF pre 'qwen2'", s, TR_ERR_UNSUPPORTED, path, other);
        CHECK(strstr(tr_last_error(), "pre-tokenizer 'qwen2' is not supported") != NULL, "GGUF pre 'qwen2': '%s'",
              tr_last_error());
        remove(path);
    }
    tr_tokenizer_free(json);
    tr_tokenizer_free(tik);
    tr_tokenizer_free(gguf);
}

/* ---- damaged byte-level files ------------------------------------------------------------------- */

/* A byte-level tokenizer.json with the 256 byte tokens, "ab" and one added token, around `pre`. */
static char *bpe_json(const char *pre, const char *merges, const char *extra)
{
    size_t cap = 16384;
    char *j = malloc(cap), *p = j;
    p += sprintf(p, "{\"added_tokens\": [{\"id\": 258, \"content\": \"<|x|>\", \"special\": true%s}], "
                    "\"pre_tokenizer\": %s, \"model\": {\"type\": \"BPE\", \"merges\": %s, \"vocab\": {",
                 extra, pre, merges);
    for (int b = 0; b < 256; b++) {
        char piece[4];
        size_t n = tr_bytelevel_encode(&(uint8_t){(uint8_t)b}, 1, piece);
        piece[n] = 0;
        p += sprintf(p, "%s\"%s%s\": %d", b ? ", " : "", strcmp(piece, "\"") == 0 || strcmp(piece, "\\") == 0 ? "\\" : "",
                     piece, b);
    }
    sprintf(p, ", \"ab\": 256, \"abc\": 257}}}");
    return j;
}

#define LLAMA3_PRE(regex) "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"" regex \
                          "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", " \
                          "\"add_prefix_space\": false, \"use_regex\": false}]}"

static void expect_bpe_json(const char *what, const char *pre, const char *merges, const char *extra, tr_status want)
{
    char *j = bpe_json(pre, merges, extra);
    expect_json(what, j, want);
    free(j);
}

static void expect_tiktoken(const char *what, const char *text, tr_status want)
{
    tr_tokenizer *t = NULL;
    tr_status s = tr_tokenizer_parse_tiktoken((const uint8_t *)text, strlen(text), NULL, 0, "bad.model", &t);
    if (want == TR_OK)
        CHECK(s == TR_OK && t, "%s: %s", what, tr_last_error());
    else
        check_error(what, s, want, "bad.model", t);
    tr_tokenizer_free(t);
}

static void test_damaged_bpe(void)
{
    const char *ok_merges = "[\"a b\", \"ab c\"]";
    expect_bpe_json("a small byte-level tokenizer.json", LLAMA3_PRE("\\\\s+|\\\\S+"), ok_merges, "", TR_OK);
    expect_bpe_json("ByteLevel alone (GPT-2 regex)", "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}", ok_merges, "",
                    TR_OK);
    expect_bpe_json("a regex PCRE2 cannot compile", LLAMA3_PRE("(?i:'s|[a-"), ok_merges, "", TR_ERR_FORMAT);
    expect_bpe_json("a merge naming an unknown piece", LLAMA3_PRE("\\\\S+"), "[\"a zz\"]", "", TR_ERR_FORMAT);
    expect_bpe_json("a merge making an unknown piece", LLAMA3_PRE("\\\\S+"), "[\"b a\"]", "", TR_ERR_FORMAT);
    expect_bpe_json("a merge of one piece", LLAMA3_PRE("\\\\S+"), "[\"ab\"]", "", TR_ERR_FORMAT);
    expect_bpe_json("lstrip on an added token", LLAMA3_PRE("\\\\S+"), ok_merges, ", \"lstrip\": true", TR_ERR_UNSUPPORTED);
    expect_bpe_json("ByteLevel with add_prefix_space", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", ok_merges,
                    "", TR_ERR_UNSUPPORTED);
    expect_bpe_json("Split with a String pattern",
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, "
                    "\"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
                    ok_merges, "", TR_ERR_UNSUPPORTED);
    expect_bpe_json("Split removing matches",
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \" \"}, "
                    "\"behavior\": \"Removed\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
                    ok_merges, "", TR_ERR_UNSUPPORTED);
    expect_bpe_json("a Whitespace pre-tokenizer in the sequence",
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Whitespace\"}, {\"type\": \"ByteLevel\"}]}",
                    ok_merges, "", TR_ERR_UNSUPPORTED);
    char *j = bpe_json(LLAMA3_PRE("\\\\S+"), ok_merges, "");
    char *piece = strstr(j, "\"ab\": 256");
    memcpy(piece, "\"a\xe4\xb8\xad\"", 6); /* a character outside the byte-level alphabet: "a中" */
    expect_json("a piece outside the byte-level alphabet", j, TR_ERR_FORMAT);
    free(j);

    expect_tiktoken("a small tiktoken file", "YQ== 0\nYg== 1\n", TR_ERR_FORMAT); /* only 2 of 256 bytes */
    char *tk = malloc(256 * 16 + 64), *p = tk;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int b = 0; b < 256; b++)
        p += sprintf(p, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    expect_tiktoken("256 byte tokens", tk, TR_OK);
    char *dup = malloc(strlen(tk) + 32);
    sprintf(dup, "%sYWI= 5\n", tk); /* "ab" with rank 5, which "BQ==" has */
    expect_tiktoken("a duplicate rank", dup, TR_ERR_FORMAT);
    CHECK(strstr(tr_last_error(), "rank 5 was already given") != NULL, "duplicate rank: '%s'", tr_last_error());
    sprintf(dup, "%sY*I= 256\n", tk);
    expect_tiktoken("bad base64", dup, TR_ERR_FORMAT);
    CHECK(strstr(tr_last_error(), "bad base64") != NULL, "bad base64: '%s'", tr_last_error());
    sprintf(dup, "%sYWI 256\n", tk);
    expect_tiktoken("base64 of the wrong length", dup, TR_ERR_FORMAT);
    sprintf(dup, "%sYWI= x\n", tk);
    expect_tiktoken("a rank that is not a number", dup, TR_ERR_FORMAT);
    sprintf(dup, "%sYWI= 300\n", tk);
    expect_tiktoken("a gap in the ranks", dup, TR_ERR_FORMAT);
    free(dup);
    free(tk);
}

int main(void)
{
    double t0 = tr_test_now();
    test_llama();
    test_hf_json();
    test_hf_metaspace();
    test_gguf_vocab();
    test_handmade_spm();
    test_damaged_spm();
    test_damaged_json();
    test_llama3();
    test_damaged_bpe();
    if (reports > MAX_REPORTS)
        fprintf(stderr, "(%d more mismatches not shown)\n", reports - MAX_REPORTS);
    printf("  all tokenizer tests took %.2f s\n", tr_test_now() - t0);
    return tr_test_finish("test_tokenizer");
}
