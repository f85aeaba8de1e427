/* tokenizer_bpe.c: the byte-level BPE engine (see tokenizer_bpe.h): vocabulary and merge tables,
 * special-token matching, pair merging, decoding. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mapped_file.h"
#include "tokenizer_bpe.h"
#include "tokenizer_regex.h"

#define NO_OFFSET UINT32_MAX

typedef struct bpe_merge {
    int32_t left, right; /* left == -1: empty slot */
    int32_t rank, result;
} bpe_merge;

struct tr_bpe {
    int n;
    char *text; /* every token's bytes back to back */
    size_t text_len, text_cap;
    uint32_t *off, *len; /* [n]; off == NO_OFFSET: not set yet */
    uint8_t *special;    /* [n] */

    int32_t *map; /* open addressing over ordinary tokens' bytes, -1 = empty */
    uint32_t map_mask;
    int32_t byte_id[256];

    bpe_merge *merges;
    uint32_t merge_mask;
    size_t n_merges;

    int32_t *specials; /* special token ids, longest text first (leftmost-longest matching) */
    int n_specials;
    uint8_t special_first[256]; /* 1: some special token starts with this byte */

    tr_regex *re;
    char *pattern; /* the regex's source, for export */
    int ignore_merges;
};

/* ---- hashing ----------------------------------------------------------------------------------- */

static uint32_t hash_bytes(const uint8_t *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

static uint32_t hash_pair(int32_t a, int32_t b)
{
    uint64_t x = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32);
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* ---- building ---------------------------------------------------------------------------------- */

tr_status tr_bpe_create(int n_vocab, const char *name, tr_bpe **out)
{
    *out = NULL;
    if (n_vocab < 256 || n_vocab > (1 << 24))
        return tr_fail(TR_ERR_FORMAT, "%s: a byte-level vocabulary of %d tokens (expected 256 to %d)", name, n_vocab,
                       1 << 24);
    tr_bpe *b = calloc(1, sizeof *b);
    if (!b)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    b->n = n_vocab;
    b->off = malloc((size_t)n_vocab * sizeof *b->off);
    b->len = calloc((size_t)n_vocab, sizeof *b->len);
    b->special = calloc((size_t)n_vocab, 1);
    if (!b->off || !b->len || !b->special) {
        tr_bpe_free(b);
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %d tokens", name, n_vocab);
    }
    for (int i = 0; i < n_vocab; i++)
        b->off[i] = NO_OFFSET;
    *out = b;
    return TR_OK;
}

void tr_bpe_free(tr_bpe *b)
{
    if (!b)
        return;
    free(b->text);
    free(b->off);
    free(b->len);
    free(b->special);
    free(b->map);
    free(b->merges);
    free(b->specials);
    tr_regex_free(b->re);
    free(b->pattern);
    free(b);
}

tr_status tr_bpe_set_token(tr_bpe *b, int id, const uint8_t *bytes, size_t len, int special, const char *name)
{
    char q[80];
    if (id < 0 || id >= b->n)
        return tr_fail(TR_ERR_FORMAT, "%s: token id %d of '%s' is outside the vocabulary of %d", name, id,
                       tr_quote(bytes, len, q, sizeof q), b->n);
    if (b->off[id] != NO_OFFSET)
        return tr_fail(TR_ERR_FORMAT, "%s: token id %d is given twice ('%s')", name, id,
                       tr_quote(bytes, len, q, sizeof q));
    if (len == 0)
        return tr_fail(TR_ERR_FORMAT, "%s: token %d is empty", name, id);
    if (len > 65536 || b->text_len + len > (size_t)UINT32_MAX - 1)
        return tr_fail(TR_ERR_FORMAT, "%s: token %d is too long", name, id);
    if (b->text_len + len > b->text_cap) {
        size_t cap = b->text_cap ? b->text_cap : 4096;
        while (cap < b->text_len + len)
            cap *= 2;
        char *t = realloc(b->text, cap);
        if (!t)
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory for the token texts", name);
        b->text = t;
        b->text_cap = cap;
    }
    memcpy(b->text + b->text_len, bytes, len);
    b->off[id] = (uint32_t)b->text_len;
    b->len[id] = (uint32_t)len;
    b->special[id] = special != 0;
    b->text_len += len;
    return TR_OK;
}

int tr_bpe_has_token(const tr_bpe *b, int id) { return id >= 0 && id < b->n && b->off[id] != NO_OFFSET; }

int32_t tr_bpe_find(const tr_bpe *b, const uint8_t *s, size_t len)
{
    for (uint32_t h = hash_bytes(s, len) & b->map_mask;; h = (h + 1) & b->map_mask) {
        int32_t id = b->map[h];
        if (id < 0)
            return -1;
        if (b->len[id] == len && memcmp(b->text + b->off[id], s, len) == 0)
            return id;
    }
}

int32_t tr_bpe_find_special(const tr_bpe *b, const char *s)
{
    size_t len = strlen(s);
    for (int i = 0; i < b->n_specials; i++) {
        int32_t id = b->specials[i];
        if (b->len[id] == len && memcmp(b->text + b->off[id], s, len) == 0)
            return id;
    }
    return -1;
}

typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

static int longer_first(const void *pa, const void *pb)
{
    const len_id *a = pa, *b = pb;
    return a->len != b->len ? (a->len > b->len ? -1 : 1) : (a->id > b->id) - (a->id < b->id);
}

/* Longest first, so the first special token that matches at a position is the longest one there
 * (HF's leftmost-longest matching of added tokens). */
static tr_status sort_specials(tr_bpe *b, const char *name)
{
    len_id *tmp = malloc(((size_t)b->n_specials + 1) * sizeof *tmp);
    if (!tmp)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    for (int i = 0; i < b->n_specials; i++)
        tmp[i] = (len_id){b->len[b->specials[i]], b->specials[i]};
    qsort(tmp, (size_t)b->n_specials, sizeof *tmp, longer_first);
    for (int i = 0; i < b->n_specials; i++)
        b->specials[i] = tmp[i].id;
    free(tmp);
    return TR_OK;
}

tr_status tr_bpe_seal(tr_bpe *b, const char *name)
{
    uint32_t size = pow2_at_least((size_t)b->n * 2);
    b->map = malloc(size * sizeof *b->map);
    b->specials = malloc((size_t)b->n * sizeof *b->specials);
    if (!b->map || !b->specials)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory indexing %d tokens", name, b->n);
    memset(b->map, 0xff, size * sizeof *b->map);
    b->map_mask = size - 1;
    for (int id = 0; id < b->n; id++) {
        if (b->off[id] == NO_OFFSET)
            return tr_fail(TR_ERR_FORMAT, "%s: token id %d has no piece (ids must run from 0 to %d)", name, id,
                           b->n - 1);
        const uint8_t *s = (const uint8_t *)b->text + b->off[id];
        if (b->special[id]) {
            b->specials[b->n_specials++] = id;
            b->special_first[s[0]] = 1;
            continue;
        }
        if (tr_bpe_find(b, s, b->len[id]) >= 0)
            continue; /* a duplicate piece: the first id keeps it, as a converter's token map would */
        uint32_t h = hash_bytes(s, b->len[id]) & b->map_mask;
        while (b->map[h] >= 0)
            h = (h + 1) & b->map_mask;
        b->map[h] = id;
    }
    for (int c = 0; c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        if ((b->byte_id[c] = tr_bpe_find(b, &byte, 1)) < 0)
            return tr_fail(TR_ERR_FORMAT, "%s: byte 0x%02X has no token (a byte-level vocabulary needs all 256)", name,
                           c);
    }
    return sort_specials(b, name);
}

static tr_status grow_merges(tr_bpe *b, const char *name)
{
    uint32_t old_size = b->merges ? b->merge_mask + 1 : 0, size = old_size ? old_size * 2 : 1u << 16;
    bpe_merge *old = b->merges, *t = malloc(size * sizeof *t);
    if (!t)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory for the merges", name);
    for (uint32_t i = 0; i < size; i++)
        t[i].left = -1;
    b->merges = t;
    b->merge_mask = size - 1;
    for (uint32_t i = 0; i < old_size; i++) {
        if (old[i].left < 0)
            continue;
        uint32_t h = hash_pair(old[i].left, old[i].right) & b->merge_mask;
        while (t[h].left >= 0)
            h = (h + 1) & b->merge_mask;
        t[h] = old[i];
    }
    free(old);
    return TR_OK;
}

static const bpe_merge *find_merge(const tr_bpe *b, int32_t left, int32_t right)
{
    if (!b->merges)
        return NULL;
    for (uint32_t h = hash_pair(left, right) & b->merge_mask;; h = (h + 1) & b->merge_mask) {
        const bpe_merge *m = &b->merges[h];
        if (m->left < 0)
            return NULL;
        if (m->left == left && m->right == right)
            return m;
    }
}

static tr_status put_merge(tr_bpe *b, int32_t left, int32_t right, int32_t rank, int32_t result, const char *name)
{
    if (!b->merges || 2 * (b->n_merges + 1) > (size_t)b->merge_mask + 1)
        TR_TRY(grow_merges(b, name));
    uint32_t h = hash_pair(left, right) & b->merge_mask;
    while (b->merges[h].left >= 0 && !(b->merges[h].left == left && b->merges[h].right == right))
        h = (h + 1) & b->merge_mask;
    if (b->merges[h].left < 0)
        b->n_merges++;
    b->merges[h] = (bpe_merge){left, right, rank, result};
    return TR_OK;
}

tr_status tr_bpe_add_merge(tr_bpe *b, int32_t left, int32_t right, int32_t rank, const char *name)
{
    uint32_t ll = b->len[left], lr = b->len[right];
    uint8_t *cat = malloc((size_t)ll + lr);
    if (!cat)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    memcpy(cat, b->text + b->off[left], ll);
    memcpy(cat + ll, b->text + b->off[right], lr);
    int32_t result = b->special[left] || b->special[right] ? -1 : tr_bpe_find(b, cat, (size_t)ll + lr);
    char q[80];
    if (result < 0) {
        tr_status s = tr_fail(TR_ERR_FORMAT, "%s: merge %d makes '%s', which is not an ordinary token of the vocabulary",
                              name, rank, tr_quote(cat, (size_t)ll + lr, q, sizeof q));
        free(cat);
        return s;
    }
    free(cat);
    return put_merge(b, left, right, rank, result, name);
}

tr_status tr_bpe_set_piece(tr_bpe *b, int id, const char *piece, size_t len, int special, const char *name)
{
    if (special)
        return tr_bpe_set_token(b, id, (const uint8_t *)piece, len, 1, name);
    uint8_t *bytes = malloc(len + 1);
    if (!bytes)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    long n = tr_bytelevel_decode(piece, len, bytes);
    char q[80];
    tr_status s = n < 0 ? tr_fail(TR_ERR_FORMAT, "%s: token %d '%s' has a character outside GPT-2's byte-level alphabet",
                                  name, id, tr_quote(piece, len, q, sizeof q))
                        : tr_bpe_set_token(b, id, bytes, (size_t)n, 0, name);
    free(bytes);
    return s;
}

/* The ordinary token written as piece[0..len) in byte-level form, or -1. */
static int32_t find_piece(const tr_bpe *b, const char *piece, size_t len, uint8_t *scratch)
{
    long n = tr_bytelevel_decode(piece, len, scratch);
    return n <= 0 ? -1 : tr_bpe_find(b, scratch, (size_t)n);
}

tr_status tr_bpe_add_merge_text(tr_bpe *b, const char *left, size_t llen, const char *right, size_t rlen, int32_t rank,
                                const char *name)
{
    uint8_t *scratch = malloc(llen + rlen + 1);
    if (!scratch)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    int32_t l = find_piece(b, left, llen, scratch), r = find_piece(b, right, rlen, scratch);
    free(scratch);
    char q[80];
    if (l < 0 || r < 0)
        return tr_fail(TR_ERR_FORMAT, "%s: merge %d names '%s', which is not in the vocabulary", name, (int)rank,
                       l < 0 ? tr_quote(left, llen, q, sizeof q) : tr_quote(right, rlen, q, sizeof q));
    return tr_bpe_add_merge(b, l, r, rank, name);
}

tr_status tr_bpe_derive_merges(tr_bpe *b, const char *name)
{
    for (int32_t id = 0; id < b->n; id++) {
        const uint8_t *s = (const uint8_t *)b->text + b->off[id];
        if (b->special[id] || tr_bpe_find(b, s, b->len[id]) != id)
            continue;
        for (uint32_t k = 1; k < b->len[id]; k++) {
            int32_t l = tr_bpe_find(b, s, k), r = tr_bpe_find(b, s + k, b->len[id] - k);
            if (l >= 0 && r >= 0)
                TR_TRY(put_merge(b, l, r, id, id, name));
        }
    }
    return TR_OK;
}

tr_status tr_bpe_set_regex(tr_bpe *b, const char *pattern, size_t len, int ignore_merges, const char *name)
{
    tr_regex_free(b->re);
    free(b->pattern);
    b->re = NULL;
    b->ignore_merges = ignore_merges;
    if (!(b->pattern = malloc(len + 1)))
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    memcpy(b->pattern, pattern, len);
    b->pattern[len] = '\0';
    return tr_regex_compile(pattern, len, name, &b->re);
}

void tr_bpe_token_bytes(const tr_bpe *b, int32_t id, const char **s, size_t *len)
{
    *s = b->text + b->off[id];
    *len = b->len[id];
}

int tr_bpe_is_special(const tr_bpe *b, int32_t id) { return b->special[id]; }
int tr_bpe_n_vocab(const tr_bpe *b) { return b->n; }
const char *tr_bpe_pattern(const tr_bpe *b) { return b->pattern ? b->pattern : ""; }

static int by_rank(const void *pa, const void *pb)
{
    const bpe_merge *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    return a->left != b->left ? (a->left < b->left ? -1 : 1) : (a->right > b->right) - (a->right < b->right);
}

tr_status tr_bpe_sorted_merges(const tr_bpe *b, int32_t **pairs, size_t *n)
{
    *pairs = NULL;
    *n = 0;
    bpe_merge *all = malloc((b->n_merges + 1) * sizeof *all);
    int32_t *out = malloc((2 * b->n_merges + 1) * sizeof *out);
    if (!all || !out) {
        free(all);
        free(out);
        return tr_fail(TR_ERR_NOMEM, "tokenizer: out of memory listing %zu merges", b->n_merges);
    }
    size_t k = 0;
    for (uint32_t h = 0; b->merges && h <= b->merge_mask; h++)
        if (b->merges[h].left >= 0)
            all[k++] = b->merges[h];
    qsort(all, k, sizeof *all, by_rank);
    for (size_t i = 0; i < k; i++) {
        out[2 * i] = all[i].left;
        out[2 * i + 1] = all[i].right;
    }
    free(all);
    *pairs = out;
    *n = k;
    return TR_OK;
}

/* ---- encoding ---------------------------------------------------------------------------------- */

/* A candidate merge of the symbol starting at byte pos with the one after it. */
typedef struct bpe_cand {
    int32_t rank, pos;
} bpe_cand;

typedef struct bpe_encoder {
    const tr_bpe *b;
    int32_t *ids;
    int cap, count;
    /* scratch, grown to the longest piece: per byte position, the symbol starting there */
    size_t scratch;
    int32_t *sym_id, *next, *prev;
    bpe_cand *heap;
    int n_heap;
} bpe_encoder;

static void emit(bpe_encoder *e, int32_t id)
{
    if (e->count < e->cap)
        e->ids[e->count] = id;
    if (e->count < INT_MAX)
        e->count++;
}

static int cand_less(bpe_cand a, bpe_cand b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static void heap_push(bpe_encoder *e, bpe_cand c)
{
    int i = e->n_heap++;
    while (i > 0 && cand_less(c, e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = c;
}

static bpe_cand heap_pop(bpe_encoder *e)
{
    bpe_cand top = e->heap[0], last = e->heap[--e->n_heap];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= e->n_heap)
            break;
        if (c + 1 < e->n_heap && cand_less(e->heap[c + 1], e->heap[c]))
            c++;
        if (!cand_less(e->heap[c], last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    e->heap[i] = last;
    return top;
}

static void consider(bpe_encoder *e, int32_t pos)
{
    int32_t nx = e->next[pos];
    if (nx < 0)
        return;
    const bpe_merge *m = find_merge(e->b, e->sym_id[pos], e->sym_id[nx]);
    if (m)
        heap_push(e, (bpe_cand){m->rank, pos});
}

static int reserve(bpe_encoder *e, size_t n)
{
    if (n <= e->scratch)
        return 0;
    size_t cap = e->scratch ? e->scratch : 64;
    while (cap < n)
        cap *= 2;
    free(e->sym_id);
    free(e->next);
    free(e->prev);
    free(e->heap);
    e->sym_id = malloc(cap * sizeof *e->sym_id);
    e->next = malloc(cap * sizeof *e->next);
    e->prev = malloc(cap * sizeof *e->prev);
    e->heap = malloc(3 * cap * sizeof *e->heap); /* n - 1 pairs, then at most 2 per merge */
    e->scratch = e->sym_id && e->next && e->prev && e->heap ? cap : 0;
    return e->scratch ? 0 : -1;
}

/* One pre-tokenized piece: byte tokens, then merges by rank until none applies. Symbols are kept at
 * the byte position where they start; a heap entry is stale when the pair there has changed, which
 * a fresh lookup of the pair's merge detects. */
static int encode_piece(void *ctx, const char *s, size_t len)
{
    bpe_encoder *e = ctx;
    const tr_bpe *b = e->b;
    if (b->ignore_merges || len == 1) {
        int32_t whole = tr_bpe_find(b, (const uint8_t *)s, len);
        if (whole >= 0) {
            emit(e, whole);
            return 0;
        }
    }
    if (len > INT32_MAX / 2 || reserve(e, len) != 0)
        return tr_fail(TR_ERR_NOMEM, "tr_tokenizer_encode: out of memory");
    const int32_t n = (int32_t)len;
    for (int32_t i = 0; i < n; i++) {
        e->sym_id[i] = b->byte_id[(uint8_t)s[i]];
        e->prev[i] = i - 1;
        e->next[i] = i + 1 < n ? i + 1 : -1;
    }
    e->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        consider(e, i);
    while (e->n_heap > 0) {
        bpe_cand c = heap_pop(e);
        int32_t nx = e->sym_id[c.pos] >= 0 ? e->next[c.pos] : -1;
        if (nx < 0)
            continue;
        const bpe_merge *m = find_merge(b, e->sym_id[c.pos], e->sym_id[nx]);
        if (!m || m->rank != c.rank)
            continue; /* stale */
        e->sym_id[c.pos] = m->result;
        e->sym_id[nx] = -1; /* absorbed */
        e->next[c.pos] = e->next[nx];
        if (e->next[nx] >= 0)
            e->prev[e->next[nx]] = c.pos;
        if (e->prev[c.pos] >= 0)
            consider(e, e->prev[c.pos]);
        consider(e, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = e->next[i])
        emit(e, e->sym_id[i]);
    return 0;
}

static int encode_segment(bpe_encoder *e, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (!e->b->re)
        return encode_piece(e, s, len);
    return tr_regex_split(e->b->re, s, len, encode_piece, e);
}

/* The longest special token whose text starts at s, or -1. */
static int32_t special_at(const tr_bpe *b, const char *s, size_t avail)
{
    for (int i = 0; i < b->n_specials; i++) {
        int32_t id = b->specials[i];
        if (b->len[id] <= avail && memcmp(b->text + b->off[id], s, b->len[id]) == 0)
            return id;
    }
    return -1;
}

tr_status tr_bpe_encode(const tr_bpe *b, const char *text, size_t len, int32_t bos, int match_special, int32_t *ids,
                        int cap, int *n)
{
    bpe_encoder e = {.b = b, .ids = ids, .cap = cap};
    if (bos >= 0)
        emit(&e, bos);
    size_t seg = 0;
    int rc = 0;
    for (size_t i = 0; match_special && i < len && rc == 0; i++) {
        if (!b->special_first[(uint8_t)text[i]])
            continue;
        int32_t id = special_at(b, text + i, len - i);
        if (id < 0)
            continue;
        rc = encode_segment(&e, text + seg, i - seg);
        emit(&e, id);
        seg = i + b->len[id];
        i = seg - 1;
    }
    if (rc == 0)
        rc = encode_segment(&e, text + seg, len - seg);
    free(e.sym_id);
    free(e.next);
    free(e.prev);
    free(e.heap);
    if (rc != 0)
        return rc < 0 ? rc : TR_ERR_INVALID_ARG;
    if (e.count == INT_MAX)
        return tr_fail(TR_ERR_RANGE, "tr_tokenizer_encode: too many tokens");
    *n = e.count;
    if (e.count > cap)
        return tr_fail(TR_ERR_RANGE, "tr_tokenizer_encode: %d tokens do not fit in %d", e.count, cap);
    return TR_OK;
}
