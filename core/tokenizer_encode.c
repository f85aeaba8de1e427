/* tokenizer_encode.c: text -> token ids, for every tokenizer tokenizer.c builds.
 *
 * It reproduces SentencePiece's BPE (normalizer.cc, bpe_model.cc and the processor's byte fallback)
 * for the identity normalizer, and Hugging Face's BPE model (byte fallback, fused <unk>, merges by
 * pair rank) for tokenizer.json:
 *   1. normalize: a malformed UTF-8 byte becomes U+FFFD (one per byte, as SentencePiece does), a U+2581
 *      is prepended to non-empty text, ' ' becomes U+2581 (each as the model's settings say);
 *   2. split into characters; USER_DEFINED pieces stay whole and never merge; Hugging Face turns an
 *      unknown character into its <0xXX> tokens here, or into (a run sharing) one <unk>;
 *   3. merge adjacent symbols through a priority queue: by the score of the merged piece, or by the
 *      rank of the pair; ties go to the leftmost pair. A queue entry remembers the byte size of the two
 *      symbols, so an entry made stale by a neighbouring merge is recognized and dropped: every step is
 *      O(log n) and a line is O(n log n), never a quadratic rescan;
 *   4. emit ids (SentencePiece): a symbol that is no piece becomes its bytes as <0xXX> tokens (byte
 *      fallback) or one <unk> per run; an UNUSED piece is split back into the pair it was merged from.
 * The tokenizer is only read: encoding allocates its scratch per call and is thread-safe. */
#include "tokenizer_bpe.h"
#include "tokenizer_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char kSpaceSymbol[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's visible space */
static const char kReplacementChar[] = "\xEF\xBF\xBD"; /* U+FFFD for malformed UTF-8 */

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
    int starts_with_space = in[i] == ' ' || (len - i >= 3 && memcmp(in + i, kSpaceSymbol, 3) == 0);
    if (r->add_dummy_prefix && !(r->prefix_unless_space && starts_with_space))
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
    for (uint32_t h = ((uint32_t)id * 2654435761u) & e->rev_mask;; h = (h + 1) & e->rev_mask) {
        if (e->rev_id[h] < 0 || e->rev_id[h] == id) {
            e->rev_id[h] = id;
            e->rev_left[h] = left_len;
            return;
        }
    }
}

static int rev_find(const tr_encoder *e, int32_t id, uint32_t *left_len)
{
    for (uint32_t h = ((uint32_t)id * 2654435761u) & e->rev_mask;; h = (h + 1) & e->rev_mask) {
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
        const tr_merge_entry *m = tr_tokenizer_find_merge(t, a->id, b->id);
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

static tr_status encode(const tr_tokenizer *t, const char *text, size_t len, int add_bos, int match_special,
                        int32_t *ids, int cap, int *n)
{
    if (n)
        *n = 0;
    if (!t || !n || (!text && len > 0) || cap < 0 || (!ids && cap > 0))
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_encode: invalid arguments");
    if (len > (size_t)(INT_MAX / 4 - 8))
        return tr_fail(TR_ERR_RANGE, "tr_tokenizer_encode: text of %zu bytes is too long", len);
    if (t->bpe)
        return tr_bpe_encode(t->bpe, text, len, add_bos ? t->bos_id : -1, match_special, ids, cap, n);

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
        size_t rev_cap = 16, rev_n = (size_t)(t->n_unused < 3 * n_sym ? t->n_unused : 3 * n_sym);
        while (rev_cap < 2 * rev_n)
            rev_cap *= 2;
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

tr_status tr_tokenizer_encode(const tr_tokenizer *t, const char *text, size_t len, int add_bos, int32_t *ids, int cap,
                              int *n)
{
    return encode(t, text, len, add_bos, 1, ids, cap, n);
}

tr_status tr_tokenizer_encode_literal(const tr_tokenizer *t, const char *text, size_t len, int32_t *ids, int cap,
                                      int *n)
{
    return encode(t, text, len, 0, 0, ids, cap, n);
}
