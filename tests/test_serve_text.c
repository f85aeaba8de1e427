/* test_serve_text.c: the UTF-8 repair of transit serve's replies (tools/serve/serve_text.c), token
 * by token as the scheduler appends them: stray bytes become U+FFFD, characters split over tokens
 * survive whole, an unfinished character at the end waits, and the result is always well-formed. */
#include <stdlib.h>
#include <string.h>

#include "../tools/serve/serve.h"
#include "test_util.h"

typedef struct reply {
    char *buf;
    size_t len, cap, valid;
} reply;

static void append(reply *r, const char *bytes, size_t n)
{
    CHECK(srv_buf_append(&r->buf, &r->len, &r->cap, bytes, n) == 0, "repair");
    r->valid = srv_utf8_repair(&r->buf, &r->len, &r->cap, r->valid);
}

/* Appends the tokens one by one; the final text (after the end's repair) must equal want. */
static void check_tokens(const char *const *tok, int n, const char *want, size_t want_valid_before_end)
{
    reply r = {0};
    for (int i = 0; i < n; i++)
        append(&r, tok[i], strlen(tok[i]));
    CHECK(r.valid == want_valid_before_end, "repair");
    size_t whole = r.valid; /* the server drops an unfinished character when the reply ends */
    CHECK(whole == strlen(want) && memcmp(r.buf, want, whole) == 0, "repair");
    free(r.buf);
}

int main(void)
{
    { /* a lone continuation byte between words (seen from a random-weight model's byte tokens) */
        const char *t[] = {" t8028", "\x9d", " t16313"};
        check_tokens(t, 3, " t8028\xEF\xBF\xBD t16313", strlen(" t8028\xEF\xBF\xBD t16313"));
    }
    { /* a 3-byte character split over three byte tokens is kept */
        const char *t[] = {"a", "\xE2", "\x82", "\xAC", "b"};
        check_tokens(t, 5, "a\xE2\x82\xAC" "b", 5);
    }
    { /* an unfinished character at the end waits (valid stops before it) */
        const char *t[] = {"ok", "\xF0\x9F"};
        check_tokens(t, 2, "ok", 2);
    }
    { /* an unfinished lead followed by ASCII: the lead alone becomes U+FFFD */
        const char *t[] = {"\xE2\x82", "x"};
        check_tokens(t, 2, "\xEF\xBF\xBD\xEF\xBF\xBD" "x", 7);
    }
    { /* overlong forms, surrogates, values past U+10FFFF, 0xFF: each byte replaced */
        const char *t[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF"};
        reply r = {0};
        for (int i = 0; i < 4; i++)
            append(&r, t[i], strlen(t[i]));
        CHECK(r.valid == r.len && r.len == 3 * (2 + 3 + 4 + 1), "repair");
        for (size_t i = 0; i < r.len; i += 3)
            CHECK(memcmp(r.buf + i, "\xEF\xBF\xBD", 3) == 0, "repair");
        free(r.buf);
    }
    { /* random bytes: the repaired text is always well-formed (checked by re-running the repair,
         which must find nothing to change) */
        unsigned s = 12345;
        for (int round = 0; round < 200; round++) {
            reply r = {0};
            for (int i = 0; i < 40; i++) {
                char b[3];
                int n = 1 + (int)((s = s * 1103515245u + 12345u) >> 16) % 3;
                for (int k = 0; k < n; k++)
                    b[k] = (char)((s = s * 1103515245u + 12345u) >> 16);
                append(&r, b, (size_t)n);
            }
            size_t len = r.valid;
            char *copy = malloc(len + 1);
            memcpy(copy, r.buf, len);
            size_t l2 = len, c2 = len + 1;
            CHECK(srv_utf8_repair(&copy, &l2, &c2, 0) == len && l2 == len && memcmp(copy, r.buf, len) == 0, "repair");
            free(copy);
            free(r.buf);
        }
    }
    return tr_test_finish("serve_text");
}
