/* tokenizer_exercise.h: what the tokenizer fuzz targets do with a tokenizer that loaded.
 *
 * It encodes fixed hard strings (malformed UTF-8, space runs, control bytes) and a text made of the
 * vocabulary's own first pieces, so that merges actually happen, and checks that the results agree
 * with themselves: the count is the same with and without room for the ids, every id is in range,
 * and decoding a sequence equals decoding its tokens one by one. A violation aborts, which the fuzzer
 * reports as a crash. Included by the tokenizer fuzz targets (fuzz_spm.c, fuzz_tokenizer_json.c,
 * fuzz_tiktoken.c) and by fuzz_gguf.c for the vocabularies GGUF files carry. */
#ifndef TR_TOKENIZER_EXERCISE_H
#define TR_TOKENIZER_EXERCISE_H

#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define REQUIRE(cond) \
    do {              \
        if (!(cond))  \
            abort();  \
    } while (0)

typedef struct fuzz_text {
    const char *s;
    size_t len;
} fuzz_text;

#define FUZZ_TEXT(literal) {literal, sizeof(literal) - 1}

/* Encodes text (with BOS), checks the ids, decodes them whole and piece by piece. */
static void exercise_text(const tr_tokenizer *t, const char *text, size_t len)
{
    const int n_vocab = tr_tokenizer_n_vocab(t);
    int n = -1;
    tr_status s = tr_tokenizer_encode(t, text, len, 1, NULL, 0, &n);
    if (s != TR_OK && s != TR_ERR_RANGE)
        return; /* e.g. a character with no piece, no byte fallback and no <unk> */
    REQUIRE(n >= 0 && (s == TR_OK) == (n == 0));
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    int n2 = -1;
    REQUIRE(ids && tr_tokenizer_encode(t, text, len, 1, ids, n, &n2) == TR_OK && n2 == n);
    for (int i = 0; i < n; i++)
        REQUIRE(ids[i] >= 0 && ids[i] < n_vocab);
    int need = tr_tokenizer_decode(t, ids, n, NULL, 0);
    REQUIRE(need >= 0);
    char *buf = malloc((size_t)need + 1);
    REQUIRE(buf && tr_tokenizer_decode(t, ids, n, buf, need + 1) == need && buf[need] == '\0');
    int total = 0;
    for (int i = 0; i < n; i++) {
        char piece[4096];
        int len_i = tr_tokenizer_piece(t, i ? ids[i - 1] : -1, ids[i], piece, (int)sizeof piece);
        if (len_i == TR_ERR_RANGE)
            break; /* a piece longer than this buffer: the rest no longer lines up */
        REQUIRE(len_i >= 0 && total + len_i <= need && memcmp(buf + total, piece, (size_t)len_i) == 0);
        total += len_i;
    }
    free(buf);
    free(ids);
}

static void exercise(const tr_tokenizer *t)
{
    static const fuzz_text texts[] = {
        FUZZ_TEXT(""), FUZZ_TEXT(" "), FUZZ_TEXT("   a  b "), FUZZ_TEXT("Hello world"),
        FUZZ_TEXT("\xff\xfe\x80 \xc3"), FUZZ_TEXT("\t\n\x00x"), FUZZ_TEXT("<s>ab</s>"),
        FUZZ_TEXT("<|eot_id|>x<|begin_of_text|"), FUZZ_TEXT("it'S   12345\r\n\t"),
        FUZZ_TEXT("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xe2\x96\x81"),
    };
    const int n_vocab = tr_tokenizer_n_vocab(t);
    REQUIRE(n_vocab > 0);
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
        exercise_text(t, texts[k].s, texts[k].len);
    /* A text made of the vocabulary's own first pieces, some separated by spaces. */
    char made[512];
    size_t made_len = 0;
    for (int id = 0; id < n_vocab && id < 24; id++) {
        char piece[64];
        int len = tr_tokenizer_piece(t, 0, id, piece, (int)sizeof piece);
        if (len > 0 && made_len + (size_t)len + 1 < sizeof made) {
            memcpy(made + made_len, piece, (size_t)len);
            made_len += (size_t)len;
            if (id % 3 == 0)
                made[made_len++] = ' ';
        }
    }
    exercise_text(t, made, made_len);
}

#endif
