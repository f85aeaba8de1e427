/* tokenizer_bytelevel.c: GPT-2's bytes-to-unicode alphabet, in which tokenizer.json and GGUF "gpt2"
 * vocabularies write their pieces: the printable bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for
 * themselves (as code points), the other 68 bytes for U+0100 onwards in byte order. Only the files use
 * this form; the tokenizer itself works on raw bytes. */
#include "tokenizer_bpe.h"

static int printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

/* The code point standing for byte b: the non-printable bytes are 0x00-0x20, 0x7F-0xA0 and 0xAD. */
static unsigned byte_char(unsigned b)
{
    if (printable(b))
        return b;
    return b <= 0x20 ? 256 + b : b <= 0xA0 ? 256 + 33 + (b - 0x7F) : 256 + 67;
}

/* The byte a code point stands for, or -1. */
static int char_byte(unsigned cp)
{
    if (cp < 256)
        return printable(cp) ? (int)cp : -1;
    unsigned k = cp - 256;
    return k < 33 ? (int)k : k < 67 ? (int)(0x7F + k - 33) : k == 67 ? 0xAD : -1;
}

size_t tr_bytelevel_encode(const uint8_t *bytes, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned cp = byte_char(bytes[i]);
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else {
            out[o++] = (char)(0xC0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

long tr_bytelevel_decode(const char *piece, size_t len, uint8_t *out)
{
    const uint8_t *s = (const uint8_t *)piece;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        if (s[i] < 0x80) {
            cp = s[i++];
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
            cp = (unsigned)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; /* three- and four-byte characters are never in the alphabet */
        }
        int byte = char_byte(cp);
        if (byte < 0)
            return -1;
        out[o++] = (uint8_t)byte;
    }
    return (long)o;
}
