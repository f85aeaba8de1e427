/* tokenizer.c: the BPE tokenizer itself: building it from a vocabulary, encoding, decoding.
 *
 * The file readers (tokenizer_spm.c for tokenizer.model, tokenizer_hf.c for tokenizer.json; GGUF comes
 * through tr_tokenizer_from_vocab) only produce a vocabulary and settings; everything that touches
 * text is here, so all three sources encode with one code path.
 *
 * Encoding reproduces SentencePiece's BPE (bpe_model.cc + normalizer.cc + the processor's byte
 * fallback) for the identity normalizer, and Hugging Face's BPE model (byte fallback, fused <unk>,
 * merges by pair rank) for tokenizer.json:
 *   1. normalize: malformed UTF-8 bytes become U+FFFD (one per byte, as SentencePiece does), an optional
 *      U+2581 is prepended, ' ' becomes U+2581;
 *   2. split into characters (USER_DEFINED pieces stay whole and never merge);
 *   3. merge adjacent symbols through a priority queue: by the score of the merged piece (ties: the
 *      leftmost pair) or by the rank of the pair (ties: leftmost); stale queue entries are detected by
 *      the byte sizes of the two symbols, so every step is O(log n) and a line is O(n log n);
 *   4. emit ids: a symbol that is no piece becomes its bytes as <0xXX> tokens (byte fallback) or one
 *      <unk> per run of unknown characters.
 * Decoding maps U+2581 back to ' ', byte tokens to raw bytes, control tokens to nothing, and strips the
 * space the encoder prepended from the first piece of a text. */
#include "tokenizer_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char kSpaceSymbol[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's visible space */
static const char kReplacementChar[] = "\xEF\xBF\xBD"; /* U+FFFD for malformed UTF-8 */
static const char kUnknownSurface[] = " \xE2\x81\x87 "; /* " ⁇ ", how SentencePiece shows <unk> */

/* ---- hashing ----------------------------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t hash_pair(int32_t a, int32_t b)
{
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* Smallest power of two >= 2 * n (at least 16), so tables stay at most half full. */
static size_t table_size(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

static tr_status piece_map_init(tr_piece_map *map, size_t n)
{
    size_t cap = table_size(n);
    map->slots = malloc(cap * sizeof *map->slots);
    if (!map->slots)
        return TR_ERR_NOMEM;
    memset(map->slots, 0xff, cap * sizeof *map->slots); /* all -1 */
    map->mask = (uint32_t)(cap - 1);
    return TR_OK;
}

int32_t tr_piece_map_find(const tr_tokenizer *t, const tr_piece_map *map, const char *s, size_t len)
{
    if (!map->slots)
        return -1;
    for (uint32_t h = hash_bytes(s, len) & map->mask;; h = (h + 1) & map->mask) {
        int32_t id = map->slots[h];
        if (id < 0)
            return -1;
        if (t->piece_len[id] == len && memcmp(t->text + t->piece_off[id], s, len) == 0)
            return id;
    }
}

/* Inserts id unless its piece is already there (the first id of a duplicated piece wins). */
static void piece_map_insert(tr_tokenizer *t, tr_piece_map *map, int32_t id)
{
    const char *s = t->text + t->piece_off[id];
    size_t len = t->piece_len[id];
    for (uint32_t h = hash_bytes(s, len) & map->mask;; h = (h + 1) & map->mask) {
        int32_t other = map->slots[h];
        if (other < 0) {
            map->slots[h] = id;
            return;
        }
        if (t->piece_len[other] == len && memcmp(t->text + t->piece_off[other], s, len) == 0)
            return;
    }
}

tr_status tr_tokenizer_reserve_merges(tr_tokenizer *t, size_t n_merges, const char *name)
{
    size_t cap = table_size(n_merges);
    free(t->merges);
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %zu merges", name, n_merges);
    for (size_t i = 0; i < cap; i++)
        t->merges[i].left = -1;
    t->merge_mask = (uint32_t)(cap - 1);
    return TR_OK;
}

void tr_tokenizer_add_merge(tr_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result)
{
    for (uint32_t h = hash_pair(left, right) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
        tr_merge_entry *e = &t->merges[h];
        if (e->left < 0 || (e->left == left && e->right == right)) {
            *e = (tr_merge_entry){left, right, rank, result};
            return;
        }
    }
}

static const tr_merge_entry *find_merge(const tr_tokenizer *t, int32_t left, int32_t right)
{
    if (!t->merges)
        return NULL;
    for (uint32_t h = hash_pair(left, right) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
        const tr_merge_entry *e = &t->merges[h];
        if (e->left < 0)
            return NULL;
        if (e->left == left && e->right == right)
            return e;
    }
}

/* ---- building ---------------------------------------------------------------------------------- */

/* "<0xAB>" -> 0xAB; -1 for anything else (SentencePiece writes the hex digits in upper case). */
int tr_byte_piece_value(const char *s, size_t len)
{
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int is_mergeable_type(int type)
{
    return type == TR_TOKEN_NORMAL || type == TR_TOKEN_USER_DEFINED || type == TR_TOKEN_UNUSED;
}

/* The decoded form of every token, back to back, so that decoding is a copy. */
static tr_status build_decoded_text(tr_tokenizer *t)
{
    size_t total = 0;
    for (int i = 0; i < t->n_vocab; i++)
        total += t->piece_len[i] + sizeof kUnknownSurface;
    t->dec_text = malloc(total + 1);
    t->dec_off = malloc(((size_t)t->n_vocab + 1) * sizeof *t->dec_off);
    if (!t->dec_text || !t->dec_off)
        return TR_ERR_NOMEM;
    size_t o = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        const char *s = t->text + t->piece_off[i];
        size_t len = t->piece_len[i];
        t->dec_off[i] = (uint32_t)o;
        switch (t->types[i]) {
        case TR_TOKEN_CONTROL:
            break;
        case TR_TOKEN_UNKNOWN:
            memcpy(t->dec_text + o, kUnknownSurface, sizeof kUnknownSurface - 1);
            o += sizeof kUnknownSurface - 1;
            break;
        case TR_TOKEN_BYTE:
            t->dec_text[o++] = (char)tr_byte_piece_value(s, len);
            break;
        default:
            for (size_t k = 0; k < len;) {
                if (k + 3 <= len && memcmp(s + k, kSpaceSymbol, 3) == 0) {
                    t->dec_text[o++] = ' ';
                    k += 3;
                } else {
                    t->dec_text[o++] = s[k++];
                }
            }
        }
    }
    t->dec_off[t->n_vocab] = (uint32_t)o;
    return TR_OK;
}

/* Records the distinct lengths of USER_DEFINED pieces, longest first, for longest-match splitting. */
static tr_status collect_user_defined_lengths(tr_tokenizer *t)
{
    for (int i = 0; i < t->n_vocab; i++) {
        if (t->types[i] != TR_TOKEN_USER_DEFINED)
            continue;
        uint32_t len = t->piece_len[i];
        int k = 0;
        while (k < t->n_ud_lengths && t->ud_lengths[k] > len)
            k++;
        if (k < t->n_ud_lengths && t->ud_lengths[k] == len)
            continue;
        uint32_t *grown = realloc(t->ud_lengths, ((size_t)t->n_ud_lengths + 1) * sizeof *grown);
        if (!grown)
            return TR_ERR_NOMEM;
        t->ud_lengths = grown;
        memmove(grown + k + 1, grown + k, (size_t)(t->n_ud_lengths - k) * sizeof *grown);
        grown[k] = len;
        t->n_ud_lengths++;
    }
    return TR_OK;
}

tr_status tr_tokenizer_build(const tr_vocab_spec *spec, const tr_text_rules *rules, tr_merge_rule rule,
                             const char *name, tr_tokenizer **out)
{
    *out = NULL;
    if (!spec || spec->n <= 0 || !spec->pieces)
        return tr_fail(TR_ERR_FORMAT, "%s: the vocabulary has no pieces", name);
    if (spec->n > (1 << 28))
        return tr_fail(TR_ERR_FORMAT, "%s: the vocabulary has %d pieces, too many", name, spec->n);
    const int n = spec->n;
    size_t text_size = 0;
    for (int i = 0; i < n; i++) {
        if (!spec->pieces[i])
            return tr_fail(TR_ERR_FORMAT, "%s: piece %d is missing", name, i);
        int type = spec->types ? spec->types[i] : TR_TOKEN_NORMAL;
        if (type < TR_TOKEN_UNDEFINED || type > TR_TOKEN_BYTE)
            return tr_fail(TR_ERR_FORMAT, "%s: piece %d has unknown token type %d", name, i, type);
        text_size += strlen(spec->pieces[i]) + 1;
        if (text_size > UINT32_MAX / 2)
            return tr_fail(TR_ERR_FORMAT, "%s: the vocabulary's pieces are too long", name);
    }
    int ids[3] = {spec->bos_id, spec->eos_id, spec->unk_id};
    static const char *const id_names[3] = {"bos", "eos", "unk"};
    for (int k = 0; k < 3; k++)
        if (ids[k] < -1 || ids[k] >= n)
            return tr_fail(TR_ERR_FORMAT, "%s: %s id %d is out of range (%d pieces)", name, id_names[k],
                           ids[k], n);

    tr_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    t->n_vocab = n;
    t->rule = rule;
    t->rules = *rules;
    t->byte_fallback = spec->byte_fallback != 0;
    t->bos_id = spec->bos_id;
    t->eos_id = spec->eos_id;
    t->unk_id = spec->unk_id;
    t->add_bos = spec->add_bos != 0 && spec->bos_id >= 0;
    t->text = malloc(text_size);
    t->piece_off = malloc((size_t)n * sizeof *t->piece_off);
    t->piece_len = malloc((size_t)n * sizeof *t->piece_len);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    t->types = malloc((size_t)n);
    t->flags = calloc((size_t)n, 1);
    if (!t->text || !t->piece_off || !t->piece_len || !t->scores || !t->types || !t->flags)
        goto nomem;

    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(spec->pieces[i]);
        memcpy(t->text + off, spec->pieces[i], len + 1);
        t->piece_off[i] = (uint32_t)off;
        t->piece_len[i] = (uint32_t)len;
        off += len + 1;
        t->scores[i] = spec->scores ? spec->scores[i] : 0.0f;
        int type = spec->types ? spec->types[i] : TR_TOKEN_NORMAL;
        /* GGUF's "undefined" type behaves as a normal piece. */
        t->types[i] = (uint8_t)(type == TR_TOKEN_UNDEFINED ? TR_TOKEN_NORMAL : type);
    }

    /* SentencePiece has exactly one unknown piece and maps every unmatched symbol to it. */
    if (t->unk_id < 0)
        for (int i = 0; i < n && t->unk_id < 0; i++)
            if (t->types[i] == TR_TOKEN_UNKNOWN)
                t->unk_id = i;
    if (t->unk_id >= 0)
        t->types[t->unk_id] = TR_TOKEN_UNKNOWN;
    if (rule == TR_MERGE_BY_SCORE && t->unk_id < 0) {
        tr_tokenizer_free(t);
        return tr_fail(TR_ERR_FORMAT, "%s: the vocabulary has no unknown piece", name);
    }

    for (int b = 0; b < 256; b++)
        t->byte_ids[b] = -1;
    for (int i = 0; i < n; i++) {
        if (t->types[i] != TR_TOKEN_BYTE)
            continue;
        int b = tr_byte_piece_value(t->text + t->piece_off[i], t->piece_len[i]);
        if (b < 0) {
            tr_status s = tr_fail(TR_ERR_FORMAT, "%s: byte piece %d is '%.16s', not <0xXX>", name, i,
                                  t->text + t->piece_off[i]);
            tr_tokenizer_free(t);
            return s;
        }
        if (t->byte_ids[b] < 0)
            t->byte_ids[b] = i;
    }

    if (piece_map_init(&t->normal, (size_t)n) != TR_OK || piece_map_init(&t->reserved, (size_t)n) != TR_OK)
        goto nomem;
    for (int i = 0; i < n; i++) {
        int type = t->types[i];
        if (t->piece_len[i] == 0)
            continue; /* an empty piece can never match text */
        if (is_mergeable_type(type)) {
            t->flags[i] |= TR_TOKFLAG_MERGEABLE;
            if (t->piece_len[i] >= 3 && memcmp(t->text + t->piece_off[i], kSpaceSymbol, 3) == 0)
                t->flags[i] |= TR_TOKFLAG_LEADING_WS;
        }
        /* Hugging Face looks every piece up in one vocabulary; SentencePiece keeps two maps. */
        if (rule == TR_MERGE_BY_RANK || is_mergeable_type(type))
            piece_map_insert(t, &t->normal, i);
        else
            piece_map_insert(t, &t->reserved, i);
        if (type == TR_TOKEN_UNUSED)
            t->n_unused++;
    }
    if (rule == TR_MERGE_BY_SCORE && collect_user_defined_lengths(t) != TR_OK)
        goto nomem;
    if (build_decoded_text(t) != TR_OK)
        goto nomem;
    *out = t;
    return TR_OK;

nomem:
    tr_tokenizer_free(t);
    return tr_fail(TR_ERR_NOMEM, "%s: out of memory building the tokenizer", name);
}

tr_status tr_tokenizer_from_vocab(const tr_vocab_spec *spec, tr_tokenizer **out)
{
    if (!out)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_from_vocab: out is NULL");
    /* LLaMA's SentencePiece settings: dummy prefix, spaces kept as they are, escaped as U+2581. */
    const tr_text_rules llama = {.add_dummy_prefix = 1, .remove_extra_whitespaces = 0, .escape_whitespaces = 1};
    return tr_tokenizer_build(spec, &llama, TR_MERGE_BY_SCORE, "vocabulary", out);
}

void tr_tokenizer_free(tr_tokenizer *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->piece_off);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    free(t->flags);
    free(t->dec_text);
    free(t->dec_off);
    free(t->normal.slots);
    free(t->reserved.slots);
    free(t->merges);
    free(t->ud_lengths);
    free(t);
}

int tr_tokenizer_n_vocab(const tr_tokenizer *t) { return t ? t->n_vocab : 0; }
int tr_tokenizer_bos(const tr_tokenizer *t) { return t ? t->bos_id : -1; }
int tr_tokenizer_eos(const tr_tokenizer *t) { return t ? t->eos_id : -1; }
int tr_tokenizer_add_bos(const tr_tokenizer *t) { return t ? t->add_bos : 0; }

void tr_tokenizer_set_add_bos(tr_tokenizer *t, int add_bos)
{
    if (t)
        t->add_bos = add_bos != 0 && t->bos_id >= 0;
}

/* ---- files ----------------------------------------------------------------------------------- */

/* Reads a whole tokenizer file (at most 1 GiB) into a malloc'ed buffer with a NUL after it. */
tr_status tr_tokenizer_read_file(const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tr_fail(TR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return tr_fail(TR_ERR_IO, "%s: cannot determine its size", path);
    }
    if (len > (1L << 30)) {
        fclose(f);
        return tr_fail(TR_ERR_FORMAT, "%s: %ld bytes is too large for a tokenizer model", path, len);
    }
    uint8_t *buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory reading %ld bytes", path, len);
    }
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(buf);
        return tr_fail(TR_ERR_IO, "%s: short read (%zu of %ld bytes)", path, got, len);
    }
    buf[got] = 0;
    *data = buf;
    *size = got;
    return TR_OK;
}

/* ---- normalizing ------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 character at s (SentencePiece's DecodeUTF8 rules: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0 if the byte at s starts no such character. */
static size_t valid_char_len(const uint8_t *s, size_t n)
{
    uint32_t c = s[0];
    if (c < 0x80)
        return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        return ((s[1] & 0xC0) == 0x80 && cp >= 0x80) ? 2 : 0;
    }
    if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = ((c & 0x0F) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3F);
        return ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000))
                   ? 3
                   : 0;
    }
    if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = ((c & 0x07) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3F);
        return ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 && cp >= 0x10000 &&
                cp <= 0x10FFFF)
                   ? 4
                   : 0;
    }
    return 0;
}

/* SentencePiece's OneCharLen: the length a lead byte announces (the text is valid UTF-8 by now). */
static size_t char_len(const char *s, size_t n)
{
    static const uint8_t len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t len = len_by_high_nibble[(uint8_t)s[0] >> 4];
    return len < n ? len : n;
}

static size_t put_space(const tr_text_rules *r, char *out, size_t o)
{
    if (r->escape_whitespaces) {
        memcpy(out + o, kSpaceSymbol, 3);
        return o + 3;
    }
    out[o] = ' ';
    return o + 1;
}

/* Normalizer::Normalize for an empty precompiled charsmap. out has room for 3 * len + 3 bytes. */
static size_t normalize(const tr_text_rules *r, const uint8_t *in, size_t len, char *out)
{
    size_t i = 0, o = 0;
    if (r->remove_extra_whitespaces)
        while (i < len && in[i] == ' ')
            i++;
    if (i == len)
        return 0; /* empty, or nothing but spaces: no dummy prefix either */
    if (r->add_dummy_prefix)
        o = put_space(r, out, o);
    int prev_space = r->remove_extra_whitespaces;
    while (i < len) {
        size_t n = valid_char_len(in + i, len - i);
        const uint8_t *c = in + i;
        size_t clen = n;
        if (n == 0) { /* a malformed byte: U+FFFD, consuming one byte */
            c = (const uint8_t *)kReplacementChar;
            clen = 3;
            n = 1;
        }
        if (!(prev_space && clen == 1 && c[0] == ' ')) {
            for (size_t k = 0; k < clen; k++) {
                if (c[k] == ' ')
                    o = put_space(r, out, o);
                else
                    out[o++] = (char)c[k];
            }
            prev_space = c[clen - 1] == ' ';
        }
        i += n;
        if (!r->remove_extra_whitespaces)
            prev_space = 0;
    }
    if (r->remove_extra_whitespaces) {
        const char *space = r->escape_whitespaces ? kSpaceSymbol : " ";
        size_t slen = r->escape_whitespaces ? 3 : 1;
        while (o >= slen && memcmp(out + o - slen, space, slen) == 0)
            o -= slen;
    }
    return o;
}

/* ---- merging ----------------------------------------------------------------------------------- */

typedef struct tr_symbol {
    uint32_t start, len; /* bytes of the normalized text; len 0 = merged into its left neighbour */
    int32_t prev, next;  /* live neighbours, -1 at the ends */
    int32_t id;          /* the piece it is, or -1 (SentencePiece: an unknown character) */
    int32_t frozen;      /* a user-defined piece: never merged */
} tr_symbol;

typedef struct tr_candidate {
    double priority; /* higher first: the merged piece's score, or minus the pair's rank */
    int32_t left, right;
    uint32_t size; /* bytes of the merged piece when queued; a mismatch later means stale */
    int32_t result;
} tr_candidate;

/* Scratch of one encode call; the tokenizer itself stays read-only (encode is thread-safe). */
typedef struct tr_encoder {
    const tr_tokenizer *t;
    const char *norm;
    tr_symbol *sym;
    tr_candidate *heap;
    size_t n_heap, cap_heap;
    /* SentencePiece resegmentation: for each UNUSED piece queued, the length of its left part the
     * last time it was queued (rev_merge in bpe_model.cc). Open addressing keyed by token id. */
    int32_t *rev_id;
    uint32_t *rev_left;
    uint32_t rev_mask;
    /* output */
    int32_t *ids;
    int cap, count;
    int prev_unk;
} tr_encoder;

static int candidate_before(const tr_candidate *a, const tr_candidate *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return a->left < b->left;
}

static int heap_push(tr_encoder *e, tr_candidate c)
{
    if (e->n_heap == e->cap_heap) {
        size_t cap = e->cap_heap ? 2 * e->cap_heap : 64;
        tr_candidate *grown = realloc(e->heap, cap * sizeof *grown);
        if (!grown)
            return -1;
        e->heap = grown;
        e->cap_heap = cap;
    }
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_before(&c, &e->heap[parent]))
            break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = c;
    return 0;
}

static tr_candidate heap_pop(tr_encoder *e)
{
    tr_candidate top = e->heap[0];
    tr_candidate last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && candidate_before(&e->heap[child + 1], &e->heap[child]))
            child++;
        if (!candidate_before(&e->heap[child], &last))
            break;
        e->heap[i] = e->heap[child];
        i = child;
    }
    if (n > 0)
        e->heap[i] = last;
    return top;
}

static void rev_record(tr_encoder *e, int32_t id, uint32_t left_len)
{
    for (uint32_t h = hash_pair(id, 0) & e->rev_mask;; h = (h + 1) & e->rev_mask) {
        if (e->rev_id[h] < 0 || e->rev_id[h] == id) {
            e->rev_id[h] = id;
            e->rev_left[h] = left_len;
            return;
        }
    }
}

static int rev_find(const tr_encoder *e, int32_t id, uint32_t *left_len)
{
    for (uint32_t h = hash_pair(id, 0) & e->rev_mask;; h = (h + 1) & e->rev_mask) {
        if (e->rev_id[h] < 0)
            return 0;
        if (e->rev_id[h] == id) {
            *left_len = e->rev_left[h];
            return 1;
        }
    }
}

/* Queues the merge of symbols left and right if the merge rule allows one. */
static int consider_pair(tr_encoder *e, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const tr_tokenizer *t = e->t;
    const tr_symbol *a = &e->sym[left], *b = &e->sym[right];
    if (a->frozen || b->frozen)
        return 0;
    tr_candidate c = {.left = left, .right = right, .size = a->len + b->len};
    if (t->rule == TR_MERGE_BY_SCORE) {
        int32_t id = tr_piece_map_find(t, &t->normal, e->norm + a->start, c.size);
        if (id < 0)
            return 0;
        c.priority = t->scores[id];
        c.result = id;
        if (t->types[id] == TR_TOKEN_UNUSED)
            rev_record(e, id, a->len);
    } else {
        const tr_merge_entry *m = find_merge(t, a->id, b->id);
        if (!m)
            return 0;
        c.priority = -(double)m->rank;
        c.result = m->result;
    }
    return heap_push(e, c);
}

static int merge_all(tr_encoder *e, int32_t n_sym)
{
    for (int32_t i = 1; i < n_sym; i++)
        if (consider_pair(e, i - 1, i) != 0)
            return -1;
    while (e->n_heap > 0) {
        tr_candidate c = heap_pop(e);
        tr_symbol *a = &e->sym[c.left], *b = &e->sym[c.right];
        if (a->len == 0 || b->len == 0 || a->next != c.right || a->len + b->len != c.size)
            continue; /* one side has changed since this pair was queued */
        a->len += b->len;
        a->id = c.result;
        a->next = b->next;
        if (b->next >= 0)
            e->sym[b->next].prev = c.left;
        b->len = 0;
        if (consider_pair(e, a->prev, c.left) != 0 || consider_pair(e, c.left, a->next) != 0)
            return -1;
    }
    return 0;
}

/* ---- emitting ---------------------------------------------------------------------------------- */

static void emit(tr_encoder *e, int32_t id)
{
    if (e->count < e->cap)
        e->ids[e->count] = id;
    e->count++;
}

/* One final piece (SentencePiece): unknown pieces become bytes, or one <unk> per run. */
static void emit_piece(tr_encoder *e, uint32_t start, uint32_t len, int32_t id)
{
    const tr_tokenizer *t = e->t;
    int is_unk = t->types[id] == TR_TOKEN_UNKNOWN;
    if (is_unk && t->byte_fallback) {
        for (uint32_t k = 0; k < len; k++) {
            int32_t b = t->byte_ids[(uint8_t)e->norm[start + k]];
            emit(e, b >= 0 ? b : t->unk_id);
        }
    } else if (!(is_unk && e->prev_unk)) {
        emit(e, id);
    }
    e->prev_unk = is_unk;
}

/* SentencePiece's PieceToId: reserved pieces first, then normal ones, else <unk>. */
static int32_t piece_to_id(const tr_tokenizer *t, const char *s, size_t len, int32_t normal_id)
{
    int32_t id = tr_piece_map_find(t, &t->reserved, s, len);
    if (id >= 0)
        return id;
    if (normal_id < 0)
        normal_id = tr_piece_map_find(t, &t->normal, s, len);
    return normal_id >= 0 ? normal_id : t->unk_id;
}

/* A final symbol (SentencePiece): an UNUSED piece is split back into the two symbols it was last
 * merged from, recursively (left part first), before emitting. */
static int emit_symbol(tr_encoder *e, const tr_symbol *s)
{
    const tr_tokenizer *t = e->t;
    int32_t id = piece_to_id(t, e->norm + s->start, s->len, s->id);
    if (t->types[id] != TR_TOKEN_UNUSED) {
        emit_piece(e, s->start, s->len, id);
        return 0;
    }
    /* Each split leaves two strictly shorter parts, so the stack holds at most len + 1 entries. */
    uint32_t *stack = malloc(2 * ((size_t)s->len + 1) * sizeof *stack);
    if (!stack)
        return -1;
    size_t top = 0;
    stack[top++] = s->start;
    stack[top++] = s->len;
    while (top > 0) {
        uint32_t len = stack[--top], start = stack[--top];
        uint32_t left_len;
        id = piece_to_id(t, e->norm + start, len, -1);
        if (t->types[id] == TR_TOKEN_UNUSED && rev_find(e, id, &left_len) && left_len > 0 && left_len < len) {
            stack[top++] = start + left_len; /* right part, popped second */
            stack[top++] = len - left_len;
            stack[top++] = start;
            stack[top++] = left_len;
        } else {
            emit_piece(e, start, len, id);
        }
    }
    free(stack);
    return 0;
}

/* ---- encoding ---------------------------------------------------------------------------------- */

/* Splits the normalized text into symbols. SentencePiece: one per character, USER_DEFINED pieces
 * whole. Hugging Face: one per character in the vocabulary; an unknown character becomes its byte
 * tokens (byte fallback) or joins a run of them that becomes one <unk>. Returns the count, or -1
 * (as a tr_status in *err) if a character can be neither. */
static int32_t split_symbols(tr_encoder *e, size_t norm_len, tr_status *err)
{
    const tr_tokenizer *t = e->t;
    int32_t n = 0;
    int32_t pending_unk = -1; /* HF: index of the open <unk> run */
    for (size_t i = 0; i < norm_len;) {
        const char *s = e->norm + i;
        size_t clen = char_len(s, norm_len - i);
        int frozen = 0;
        int32_t id = -1;
        for (int k = 0; k < t->n_ud_lengths; k++) {
            size_t len = t->ud_lengths[k];
            if (len > norm_len - i)
                continue;
            int32_t ud = tr_piece_map_find(t, &t->normal, s, len);
            if (ud >= 0 && t->types[ud] == TR_TOKEN_USER_DEFINED) {
                clen = len;
                id = ud;
                frozen = 1;
                break;
            }
        }
        if (!frozen)
            id = tr_piece_map_find(t, &t->normal, s, clen);
        if (t->rule == TR_MERGE_BY_RANK && id < 0) {
            int all_bytes = t->byte_fallback;
            for (size_t k = 0; k < clen && all_bytes; k++)
                all_bytes = t->byte_ids[(uint8_t)s[k]] >= 0;
            if (all_bytes) {
                pending_unk = -1;
                for (size_t k = 0; k < clen; k++, n++)
                    e->sym[n] = (tr_symbol){(uint32_t)(i + k), 1, n - 1, n + 1, t->byte_ids[(uint8_t)s[k]], 0};
                i += clen;
                continue;
            }
            if (t->unk_id < 0) {
                *err = tr_fail(TR_ERR_UNSUPPORTED,
                               "tokenizer: the text has a character with no piece, no byte fallback and no <unk>");
                return -1;
            }
            if (pending_unk >= 0 && t->fuse_unk) { /* consecutive unknown characters share one <unk> */
                e->sym[pending_unk].len += (uint32_t)clen;
                i += clen;
                continue;
            }
            id = t->unk_id;
            pending_unk = n;
        } else if (t->rule == TR_MERGE_BY_RANK) {
            pending_unk = -1;
        }
        e->sym[n] = (tr_symbol){(uint32_t)i, (uint32_t)clen, n - 1, n + 1, id, frozen};
        n++;
        i += clen;
    }
    if (n > 0)
        e->sym[n - 1].next = -1;
    return n;
}

tr_status tr_tokenizer_encode(const tr_tokenizer *t, const char *text, size_t len, int add_bos,
                              int32_t *ids, int cap, int *n)
{
    if (n)
        *n = 0;
    if (!t || !n || (!text && len > 0) || cap < 0 || (!ids && cap > 0))
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_encode: invalid arguments");
    if (len > (size_t)(INT_MAX / 4 - 8))
        return tr_fail(TR_ERR_RANGE, "tr_tokenizer_encode: text of %zu bytes is too long", len);

    tr_encoder e = {.t = t, .ids = ids, .cap = cap};
    tr_status status = TR_OK;
    if (add_bos && t->bos_id >= 0)
        emit(&e, t->bos_id);

    char *norm = malloc(3 * len + 4);
    if (!norm)
        return tr_fail(TR_ERR_NOMEM, "tr_tokenizer_encode: out of memory");
    size_t norm_len = normalize(&t->rules, (const uint8_t *)text, len, norm);
    e.norm = norm;
    if (norm_len == 0)
        goto done;

    int32_t whole = t->ignore_merges ? tr_piece_map_find(t, &t->normal, norm, norm_len) : -1;
    if (whole >= 0) { /* HF ignore_merges: a text that is a piece is that piece */
        emit(&e, whole);
        goto done;
    }

    e.sym = malloc(norm_len * sizeof *e.sym);
    if (!e.sym)
        goto nomem;
    int32_t n_sym = split_symbols(&e, norm_len, &status);
    if (n_sym < 0)
        goto done;
    if (t->n_unused > 0) {
        size_t rev_cap = table_size((size_t)(t->n_unused < 3 * n_sym ? t->n_unused : 3 * n_sym));
        e.rev_id = malloc(rev_cap * sizeof *e.rev_id);
        e.rev_left = malloc(rev_cap * sizeof *e.rev_left);
        if (!e.rev_id || !e.rev_left)
            goto nomem;
        memset(e.rev_id, 0xff, rev_cap * sizeof *e.rev_id);
        e.rev_mask = (uint32_t)(rev_cap - 1);
    }
    if (merge_all(&e, n_sym) != 0)
        goto nomem;
    for (int32_t i = 0; i >= 0 && n_sym > 0; i = e.sym[i].next) {
        if (t->rule == TR_MERGE_BY_RANK)
            emit(&e, e.sym[i].id);
        else if (emit_symbol(&e, &e.sym[i]) != 0)
            goto nomem;
    }
    goto done;

nomem:
    status = tr_fail(TR_ERR_NOMEM, "tr_tokenizer_encode: out of memory");
done:
    free(norm);
    free(e.sym);
    free(e.heap);
    free(e.rev_id);
    free(e.rev_left);
    if (status != TR_OK)
        return status;
    *n = e.count;
    if (e.count > cap)
        return tr_fail(TR_ERR_RANGE, "tr_tokenizer_encode: %d tokens do not fit in %d", e.count, cap);
    return TR_OK;
}

/* ---- decoding ---------------------------------------------------------------------------------- */

/* The bytes of token id after token prev: the encoder's dummy-prefix space is dropped from a piece
 * that starts the text (no previous token, or only control tokens before it). */
static void token_text(const tr_tokenizer *t, int32_t prev, int32_t id, const char **s, size_t *len)
{
    *s = t->dec_text + t->dec_off[id];
    *len = t->dec_off[id + 1] - t->dec_off[id];
    int at_start = prev < 0 || prev >= t->n_vocab || t->types[prev] == TR_TOKEN_CONTROL;
    if (at_start && (t->flags[id] & TR_TOKFLAG_LEADING_WS) &&
        (t->rules.add_dummy_prefix || t->rules.remove_extra_whitespaces) && *len > 0) {
        (*s)++;
        (*len)--;
    }
}

int tr_tokenizer_piece(const tr_tokenizer *t, int32_t prev, int32_t id, char *buf, int cap)
{
    if (!t || cap < 0 || (!buf && cap > 0))
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_piece: invalid arguments");
    if (id < 0 || id >= t->n_vocab)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_piece: token id %d is out of range (vocabulary of %d)",
                       (int)id, t->n_vocab);
    const char *s;
    size_t len;
    token_text(t, prev, id, &s, &len);
    if (len > (size_t)cap)
        return tr_fail(TR_ERR_RANGE, "tr_tokenizer_piece: token %d needs %zu bytes, the buffer has %d",
                       (int)id, len, cap);
    memcpy(buf, s, len);
    if (len < (size_t)cap)
        buf[len] = '\0';
    return (int)len;
}

int tr_tokenizer_decode(const tr_tokenizer *t, const int32_t *ids, int n, char *buf, int cap)
{
    if (!t || n < 0 || (!ids && n > 0) || cap < 0 || (!buf && cap > 0))
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_decode: invalid arguments");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_decode: token id %d at position %d is out of range",
                           (int)ids[i], i);
        const char *s;
        size_t len;
        token_text(t, i > 0 ? ids[i - 1] : -1, ids[i], &s, &len);
        if (total < (size_t)cap) {
            size_t room = (size_t)cap - 1 - total; /* keep one byte for the NUL */
            memcpy(buf + total, s, len < room ? len : room);
        }
        total += len;
        if (total > INT_MAX)
            return tr_fail(TR_ERR_RANGE, "tr_tokenizer_decode: the text is too long");
    }
    if (cap > 0)
        buf[total < (size_t)cap ? total : (size_t)cap - 1] = '\0';
    return (int)total;
}
