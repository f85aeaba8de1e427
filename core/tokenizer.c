/* tokenizer.c: building a tokenizer from a vocabulary, its accessors, and decoding.
 *
 * The file readers (tokenizer_spm.c for tokenizer.model, tokenizer_hf.c for tokenizer.json; GGUF comes
 * through tr_tokenizer_from_vocab) only produce a vocabulary and settings; everything built from it is
 * here, and encoding is in tokenizer_encode.c, so all three sources share one code path.
 *
 * Building precomputes what encoding and decoding look up: two piece -> id hash maps (SentencePiece
 * keeps NORMAL / USER_DEFINED / UNUSED pieces apart from CONTROL / UNKNOWN / BYTE ones), the byte
 * tokens, the Hugging Face merge table, and the decoded text of every token. Decoding maps U+2581 back
 * to ' ', byte tokens to raw bytes, control tokens to nothing, <unk> to " ⁇ " as SentencePiece
 * does, and strips the space the encoder prepended from the first piece of a text. */
#include "tokenizer_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_bpe.h"

static const char kSpaceSymbol[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's visible space */
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

const tr_merge_entry *tr_tokenizer_find_merge(const tr_tokenizer *t, int32_t left, int32_t right)
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
        const char *piece = t->text + t->piece_off[i];
        if (is_mergeable_type(type) && t->piece_len[i] >= 3 && memcmp(piece, kSpaceSymbol, 3) == 0)
            t->flags[i] |= TR_TOKFLAG_LEADING_WS;
        /* Hugging Face looks every piece up in one vocabulary; SentencePiece keeps two maps. */
        if (rule == TR_MERGE_BY_RANK || is_mergeable_type(type))
            piece_map_insert(t, &t->normal, i);
        else
            piece_map_insert(t, &t->reserved, i);
        if (type == TR_TOKEN_UNUSED && rule == TR_MERGE_BY_SCORE)
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
    if (spec->model == TR_VOCAB_BPE)
        return tr_tokenizer_from_bpe_vocab(spec, "vocabulary", out);
    /* LLaMA's SentencePiece settings: dummy prefix, spaces kept as they are, escaped as U+2581. */
    const tr_text_rules llama = {.add_dummy_prefix = !spec->no_space_prefix, .remove_extra_whitespaces = 0,
                                 .escape_whitespaces = 1};
    return tr_tokenizer_build(spec, &llama, TR_MERGE_BY_SCORE, "vocabulary", out);
}

tr_status tr_tokenizer_from_bpe(struct tr_bpe *b, int bos, int eos, int add_bos, const char *name, tr_tokenizer **out)
{
    *out = NULL;
    tr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        tr_bpe_free(b);
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", name);
    }
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>"};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>"};
    for (size_t i = 0; bos < 0 && i < sizeof bos_names / sizeof *bos_names; i++)
        bos = tr_bpe_find_special(b, bos_names[i]);
    for (size_t i = 0; eos < 0 && i < sizeof eos_names / sizeof *eos_names; i++)
        eos = tr_bpe_find_special(b, eos_names[i]);
    t->bpe = b;
    t->n_vocab = tr_bpe_n_vocab(b);
    t->bos_id = bos;
    t->eos_id = eos;
    t->unk_id = -1; /* every byte has a token */
    t->add_bos = add_bos && bos >= 0;
    *out = t;
    return TR_OK;
}

void tr_tokenizer_free(tr_tokenizer *t)
{
    if (!t)
        return;
    tr_bpe_free(t->bpe);
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

int32_t tr_tokenizer_find_special(const tr_tokenizer *t, const char *text)
{
    if (!t || !text)
        return -1;
    if (t->bpe)
        return tr_bpe_find_special(t->bpe, text);
    size_t len = strlen(text);
    int32_t id = tr_piece_map_find(t, &t->reserved, text, len);
    if (id >= 0 && t->types[id] == TR_TOKEN_CONTROL)
        return id;
    id = tr_piece_map_find(t, &t->normal, text, len);
    return id >= 0 && t->types[id] == TR_TOKEN_USER_DEFINED ? id : -1;
}

void tr_tokenizer_special_text(const tr_tokenizer *t, int32_t id, const char **s, size_t *len)
{
    if (t->bpe) {
        tr_bpe_token_bytes(t->bpe, id, s, len);
        return;
    }
    *s = t->text + t->piece_off[id];
    *len = t->piece_len[id];
}

/* ---- decoding ---------------------------------------------------------------------------------- */

/* The bytes of token id after token prev: the encoder's dummy-prefix space is dropped from a piece
 * that starts the text (no previous token, or only control tokens before it). */
static void token_text(const tr_tokenizer *t, int32_t prev, int32_t id, const char **s, size_t *len)
{
    if (t->bpe) { /* byte-level: every token is its bytes, wherever it stands */
        tr_bpe_token_bytes(t->bpe, id, s, len);
        return;
    }
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

tr_status tr_tokenizer_export_vocab(const tr_tokenizer *t, tr_vocab_spec *out)
{
    memset(out, 0, sizeof *out);
    if (t->bpe)
        return tr_bpe_export_vocab(t, out);
    out->n = t->n_vocab;
    out->pieces = calloc((size_t)t->n_vocab, sizeof *out->pieces);
    out->scores = calloc((size_t)t->n_vocab, sizeof *out->scores);
    out->types = calloc((size_t)t->n_vocab, sizeof *out->types);
    out->bos_id = t->bos_id;
    out->eos_id = t->eos_id;
    out->unk_id = t->unk_id;
    out->add_bos = t->add_bos;
    out->byte_fallback = t->byte_fallback;
    out->no_space_prefix = !t->rules.add_dummy_prefix;
    out->pad_id = -1;
    for (int i = 0; out->pieces && out->scores && out->types && i < t->n_vocab; i++) {
        if (!(out->pieces[i] = malloc(t->piece_len[i] + 1)))
            break;
        memcpy(out->pieces[i], t->text + t->piece_off[i], t->piece_len[i]);
        out->pieces[i][t->piece_len[i]] = 0;
        out->types[i] = t->types[i];
        /* merged by rank: pieces no merge makes come last */
        out->scores[i] = t->rule == TR_MERGE_BY_RANK ? -1e9f : t->scores[i];
    }
    if (!out->pieces || !out->scores || !out->types || (t->n_vocab && !out->pieces[t->n_vocab - 1])) {
        tr_vocab_spec_free(out);
        return tr_fail(TR_ERR_NOMEM, "tokenizer: out of memory exporting the vocabulary");
    }
    /* The earlier a merge's rank, the higher the score of the piece it makes (its first merge counts). */
    for (uint32_t h = 0; t->rule == TR_MERGE_BY_RANK && t->merges && h <= t->merge_mask; h++) {
        const tr_merge_entry *e = &t->merges[h];
        if (e->left >= 0 && -(float)e->rank - 1 > out->scores[e->result])
            out->scores[e->result] = -(float)e->rank - 1;
    }
    return TR_OK;
}
