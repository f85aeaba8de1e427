/* tokenizer_regex.c: PCRE2 behind tr_regex (see tokenizer_regex.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_regex.h"

const char tr_regex_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tr_regex_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char *tr_regex_for_gguf_pre(const char *pre)
{
    /* llama.cpp reads these three names as its LLAMA3 pre-tokenizer; others split differently */
    static const char *const llama3[] = {"llama-bpe", "llama3", "llama-v3"};
    for (size_t i = 0; i < sizeof llama3 / sizeof *llama3; i++)
        if (strcmp(pre, llama3[i]) == 0)
            return tr_regex_llama3;
    return NULL;
}

struct tr_regex {
    pcre2_code *code;
};

tr_status tr_regex_compile(const char *pattern, size_t len, const char *name, tr_regex **out)
{
    *out = NULL;
    int err;
    PCRE2_SIZE at;
    /* UCP: \s, \d and [[:classes:]] use Unicode properties, as Oniguruma (HF) and Rust's regex
     * (tiktoken) do. MATCH_INVALID_UTF: arbitrary bytes are text too (they never match). */
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                     &err, &at, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return tr_fail(TR_ERR_FORMAT, "%s: the pre-tokenizer regex does not compile (PCRE2, at offset %zu): %s",
                       name, (size_t)at, (const char *)msg);
    }
    /* JIT is an optimisation: where it is unavailable (or refused), the interpreter gives the same matches. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    tr_regex *re = malloc(sizeof *re);
    if (!re) {
        pcre2_code_free(code);
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory compiling the pre-tokenizer regex", name);
    }
    re->code = code;
    *out = re;
    return TR_OK;
}

void tr_regex_free(tr_regex *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    free(re);
}

/* Length of the UTF-8 character at s (1 for an invalid byte), for stepping past an empty match. */
static size_t step(const unsigned char *s, size_t n)
{
    size_t k = s[0] < 0xC0 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    if (k > n)
        return 1;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return k;
}

int tr_regex_split(const tr_regex *re, const char *text, size_t len, tr_regex_piece_fn fn, void *ctx)
{
    /* Match data per call, so that one compiled tokenizer can encode on several threads at once. */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md)
        return tr_fail(TR_ERR_NOMEM, "tokenizer: out of memory for the regex match data");
    const PCRE2_SPTR subject = (PCRE2_SPTR)text;
    size_t gap = 0, pos = 0; /* gap: start of text not yet reported */
    int rc = 0;
    while (pos < len && rc == 0) {
        int m = pcre2_match(re->code, subject, len, pos, 0, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = tr_fail(TR_ERR_RANGE, "tokenizer: the pre-tokenizer regex failed at byte %zu: %s", pos,
                         (const char *)msg);
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (e == s) { /* an empty match splits nothing: look again one character further */
            pos = s + step(subject + s, len - s);
            continue;
        }
        if (s > gap)
            rc = fn(ctx, text + gap, s - gap);
        if (rc == 0)
            rc = fn(ctx, text + s, e - s);
        gap = pos = e;
    }
    if (rc == 0 && gap < len)
        rc = fn(ctx, text + gap, len - gap);
    pcre2_match_data_free(md);
    return rc;
}
