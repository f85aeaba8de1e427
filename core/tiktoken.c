/* tiktoken.c: Meta's Llama 3 tokenizer.model, tiktoken's format: one "base64(piece) rank" per line,
 * ranks 0..n-1 (the rank is the token id and the merge priority), then the 256 special tokens Meta's
 * tokenizer appends at ids n..n+255. Their names come from tokenizer_config.json's
 * added_tokens_decoder when the directory has one that names them, else Meta's defaults
 * (llama_models/llama3/tokenizer.py). The pre-tokenizer is the Llama 3 regex; merges are derived from
 * the ranks (tr_bpe_derive_merges), which is how tiktoken merges.
 *
 * A SentencePiece protobuf never looks like this (its first byte is a field tag, 0x0A), so the
 * format is told by content; the first line must parse for a file to count as tiktoken. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_bpe.h"
#include "tokenizer_internal.h"
#include "tokenizer_regex.h"

#define N_SPECIAL 256
#define MAX_RANKS (1 << 24)

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict base64 (padded, length a multiple of 4) of s[0..n) into out; returns the byte count or -1. */
static long b64_decode(const uint8_t *s, size_t n, uint8_t *out)
{
    if (n == 0 || n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pad = (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=');
        if (pad && i + 4 != n)
            return -1;
        int v[4];
        for (int k = 0; k < 4 - pad; k++)
            if ((v[k] = b64_value(s[i + k])) < 0)
                return -1;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (pad < 2 ? (uint32_t)v[2] << 6 : 0) |
                     (pad < 1 ? (uint32_t)v[3] : 0);
        out[o++] = (uint8_t)(x >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(x >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)x;
    }
    return (long)o;
}

/* One line: base64, one space, decimal rank. Returns 0 and the parts, or -1. */
static int split_line(const uint8_t *s, size_t n, size_t *b64_len, long *rank)
{
    const uint8_t *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp + 1 == s + n)
        return -1;
    long r = 0;
    for (const uint8_t *p = sp + 1; p < s + n; p++) {
        if (*p < '0' || *p > '9' || r >= MAX_RANKS)
            return -1;
        r = r * 10 + (*p - '0');
    }
    *b64_len = (size_t)(sp - s);
    *rank = r;
    return 0;
}

static size_t line_len(const uint8_t *s, size_t n, size_t *next)
{
    const uint8_t *nl = memchr(s, '\n', n);
    size_t len = nl ? (size_t)(nl - s) : n;
    *next = nl ? len + 1 : n;
    return len > 0 && s[len - 1] == '\r' ? len - 1 : len;
}

int tr_tiktoken_detect(const uint8_t *data, size_t size)
{
    size_t next, b64_len;
    long rank;
    size_t len = line_len(data, size, &next);
    uint8_t buf[256];
    return len > 0 && len < sizeof buf && split_line(data, len, &b64_len, &rank) == 0 &&
           b64_decode(data, b64_len, buf) > 0;
}

/* Meta's names for the special tokens at n + i. */
static void default_special_name(int i, char *buf, size_t cap)
{
    static const char *const named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                        "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                        "<|python_tag|>", "<|image|>"};
    const int n_named = (int)(sizeof named / sizeof *named);
    if (i < n_named)
        snprintf(buf, cap, "%s", named[i]);
    else
        snprintf(buf, cap, "<|reserved_special_token_%d|>", 2 + i - n_named);
}

/* added_tokens_decoder {"128000": {"content": "<|begin_of_text|>", ...}} from tokenizer_config.json. */
static const char *configured_name(const cJSON *decoder, int id)
{
    char key[16];
    snprintf(key, sizeof key, "%d", id);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(decoder, key);
    const cJSON *c = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "content") : NULL;
    return cJSON_IsString(c) && c->valuestring[0] ? c->valuestring : NULL;
}

static tr_status read_ranks(const uint8_t *data, size_t size, const char *name, tr_bpe *b, int n)
{
    uint8_t *piece = malloc(size + 1);
    int32_t *seen_line = piece ? malloc((size_t)n * sizeof *seen_line) : NULL;
    if (!piece || !seen_line) {
        free(piece);
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    }
    tr_status s = TR_OK;
    int line = 0;
    for (size_t i = 0; i < (size_t)n; i++)
        seen_line[i] = 0;
    for (size_t pos = 0, next; pos < size && s == TR_OK; pos += next) {
        size_t len = line_len(data + pos, size - pos, &next), b64_len;
        long rank;
        line++;
        if (len == 0)
            continue;
        long plen;
        if (split_line(data + pos, len, &b64_len, &rank) != 0)
            s = tr_fail(TR_ERR_FORMAT, "%s: line %d is not \"<base64> <rank>\"", name, line);
        else if ((plen = b64_decode(data + pos, b64_len, piece)) <= 0)
            s = tr_fail(TR_ERR_FORMAT, "%s: line %d: bad base64 '%.*s'", name, line, (int)(b64_len < 40 ? b64_len : 40),
                        (const char *)data + pos);
        else if (seen_line[rank])
            s = tr_fail(TR_ERR_FORMAT, "%s: line %d: rank %ld was already given on line %d", name, line, rank,
                        seen_line[rank]);
        else {
            seen_line[rank] = line;
            s = tr_bpe_set_token(b, (int)rank, piece, (size_t)plen, 0, name);
        }
    }
    free(piece);
    free(seen_line);
    return s;
}

/* The largest rank in the file (its lines are checked again, properly, by read_ranks). */
static long max_rank(const uint8_t *data, size_t size)
{
    long max = -1;
    for (size_t pos = 0, next; pos < size; pos += next) {
        size_t len = line_len(data + pos, size - pos, &next), b64_len;
        long rank;
        if (len && split_line(data + pos, len, &b64_len, &rank) == 0 && rank > max)
            max = rank;
    }
    return max;
}

static tr_status build(const uint8_t *data, size_t size, const cJSON *decoder, const char *name, tr_bpe *b, int n)
{
    TR_TRY(read_ranks(data, size, name, b, n));
    for (int i = 0; i < N_SPECIAL; i++) {
        char buf[64];
        const char *text = configured_name(decoder, n + i);
        if (!text) {
            default_special_name(i, buf, sizeof buf);
            text = buf;
        }
        TR_TRY(tr_bpe_set_token(b, n + i, (const uint8_t *)text, strlen(text), 1, name));
    }
    TR_TRY(tr_bpe_seal(b, name));
    TR_TRY(tr_bpe_derive_merges(b, name));
    return tr_bpe_set_regex(b, tr_regex_llama3, strlen(tr_regex_llama3), 1, name);
}

tr_status tr_tokenizer_parse_tiktoken(const uint8_t *data, size_t size, const char *config_json, size_t config_len,
                                      const char *name, tr_tokenizer **out)
{
    *out = NULL;
    if (!tr_tiktoken_detect(data, size))
        return tr_fail(TR_ERR_FORMAT, "%s: not a tiktoken file (the first line is not \"<base64> <rank>\")", name);
    long n = max_rank(data, size) + 1;
    if (n < 256 || n > MAX_RANKS)
        return tr_fail(TR_ERR_FORMAT, "%s: %ld ranks, expected 256 to %d", name, n, MAX_RANKS);
    cJSON *config = config_json ? cJSON_ParseWithLength(config_json, config_len) : NULL;
    if (config_json && !config)
        return tr_fail(TR_ERR_FORMAT, "%s: the tokenizer_config.json beside it is not valid JSON", name);
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder");
    tr_bpe *b;
    tr_status s = tr_bpe_create((int)n + N_SPECIAL, name, &b);
    if (s == TR_OK && (s = build(data, size, cJSON_IsObject(decoder) ? decoder : NULL, name, b, (int)n)) != TR_OK)
        tr_bpe_free(b);
    cJSON_Delete(config);
    return s == TR_OK ? tr_tokenizer_from_bpe(b, -1, -1, 1, name, out) : s;
}

tr_status tr_tokenizer_load_tiktoken(const char *path, tr_tokenizer **out)
{
    *out = NULL;
    uint8_t *data, *config = NULL;
    size_t size, config_size = 0;
    TR_TRY(tr_tokenizer_read_file(path, &data, &size));
    /* tokenizer_config.json beside the file names the special tokens; without it, Meta's names */
    const char *slash = strrchr(path, '/');
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
    FILE *f = fopen(cfg_path, "rb");
    if (f) {
        fclose(f);
        tr_status s = tr_tokenizer_read_file(cfg_path, &config, &config_size);
        if (s != TR_OK) {
            free(data);
            return s;
        }
    }
    tr_status s = tr_tokenizer_parse_tiktoken(data, size, (const char *)config, config_size, path, out);
    free(data);
    free(config);
    return s;
}
