/* serve_text.c: the bytes of a reply as they grow: a buffer that doubles, and the UTF-8 repair that
 * keeps every answer valid JSON text (a model may emit a token of one stray byte, a lone continuation
 * byte say, which no JSON parser accepts). No other dependencies: tests/test_serve_text.c links it
 * alone. */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int srv_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* The length of the well-formed UTF-8 character starting at t[0] of the n bytes there (RFC 3629:
 * no overlong forms, surrogates or values past U+10FFFF); 0 if t[0] cannot begin one, -1 if the n
 * bytes are a valid beginning that needs more. */
static int utf8_char(const unsigned char *t, size_t n)
{
    unsigned char c = t[0];
    int want = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int i = 1; i < want; i++) {
        if ((size_t)i >= n)
            return -1;
        unsigned char lo = 0x80, hi = 0xBF;
        if (i == 1) { /* the second byte's narrower ranges */
            lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        }
        if (t[i] < lo || t[i] > hi)
            return 0;
    }
    return want;
}

size_t srv_utf8_repair(char **buf, size_t *len, size_t *cap, size_t from)
{
    size_t i = from;
    while (i < *len) {
        int k = utf8_char((const unsigned char *)*buf + i, *len - i);
        if (k < 0)
            return i;
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        /* one byte that begins nothing becomes U+FFFD (3 bytes): shift the rest right by 2 */
        static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
        size_t rest = *len - i - 1;
        if (srv_buf_append(buf, len, cap, "  ", 2))
            return i;
        memmove(*buf + i + 3, *buf + i + 1, rest);
        memcpy(*buf + i, fffd, 3);
        i += 3;
    }
    return i;
}
