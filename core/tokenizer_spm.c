/* tokenizer_spm.c: reads a SentencePiece tokenizer.model (a protobuf ModelProto) without libprotobuf.
 *
 * Only what encoding needs is kept (field numbers from sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec     3 model_type (default UNIGRAM), 24 treat_whitespace_as_suffix, 35 byte_fallback,
 *                   41 bos_id (default 1), 42 eos_id (default 2)
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                   5 escape_whitespaces (the three default to true)
 * Every other field is skipped by its wire type. Every varint and length is checked against the end of
 * its enclosing message, so a damaged file is an error naming it, never a read past the buffer.
 * The checks SentencePiece makes when it loads a model (one <unk>, 256 byte pieces when byte_fallback,
 * no empty piece) are repeated here so that a model it rejects is rejected here too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"

enum { SPM_UNIGRAM = 1, SPM_BPE = 2, SPM_WORD = 3, SPM_CHAR = 4 };
enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

typedef struct spm_cursor {
    const uint8_t *p, *end;
    const uint8_t *base; /* start of the file, for offsets in messages */
    const char *name;
} spm_cursor;

typedef struct spm_model {
    int model_type;
    int byte_fallback, treat_ws_as_suffix;
    int bos_id, eos_id;
    tr_text_rules rules;
    char norm_name[64];
    size_t charsmap_len;
} spm_model;

static size_t offset_of(const spm_cursor *c) { return (size_t)(c->p - c->base); }

static tr_status read_varint(spm_cursor *c, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end)
            return tr_fail(TR_ERR_FORMAT, "%s: varint runs past the end of its message at byte %zu", c->name,
                           offset_of(c));
        uint8_t b = *c->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return TR_OK;
        }
    }
    return tr_fail(TR_ERR_FORMAT, "%s: varint longer than 10 bytes at byte %zu", c->name, offset_of(c));
}

static tr_status read_key(spm_cursor *c, uint32_t *field, int *wire)
{
    uint64_t key = 0;
    TR_TRY(read_varint(c, &key));
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    if (*field == 0 || key >> 3 > 0x1FFFFFFF)
        return tr_fail(TR_ERR_FORMAT, "%s: invalid protobuf field number %llu at byte %zu", c->name,
                       (unsigned long long)(key >> 3), offset_of(c));
    if (*wire != WIRE_VARINT && *wire != WIRE_FIXED64 && *wire != WIRE_LEN && *wire != WIRE_FIXED32)
        return tr_fail(TR_ERR_FORMAT, "%s: field %u has unsupported protobuf wire type %d at byte %zu", c->name,
                       *field, *wire, offset_of(c));
    return TR_OK;
}

/* Reads a length prefix and splits off the sub-message or string it announces. */
static tr_status read_len(spm_cursor *c, spm_cursor *sub)
{
    uint64_t len = 0;
    TR_TRY(read_varint(c, &len));
    if (len > (uint64_t)(c->end - c->p))
        return tr_fail(TR_ERR_FORMAT, "%s: a field of %llu bytes at byte %zu runs past the end of its message",
                       c->name, (unsigned long long)len, offset_of(c));
    *sub = *c;
    sub->end = c->p + len;
    c->p += len;
    return TR_OK;
}

static tr_status skip_field(spm_cursor *c, int wire)
{
    uint64_t v = 0;
    spm_cursor sub;
    size_t need = wire == WIRE_FIXED64 ? 8 : 4;
    switch (wire) {
    case WIRE_VARINT:
        return read_varint(c, &v);
    case WIRE_LEN:
        return read_len(c, &sub);
    default:
        if ((size_t)(c->end - c->p) < need)
            return tr_fail(TR_ERR_FORMAT, "%s: a fixed-size field at byte %zu runs past the end of its message",
                           c->name, offset_of(c));
        c->p += need;
        return TR_OK;
    }
}

static tr_status expect_wire(const spm_cursor *c, const char *what, int wire, int want)
{
    if (wire != want)
        return tr_fail(TR_ERR_FORMAT, "%s: field %s has wire type %d, expected %d (byte %zu)", c->name, what, wire,
                       want, offset_of(c));
    return TR_OK;
}

/* An int32 field: protobuf writes negative values as 10-byte varints of their 64-bit form. */
static tr_status read_int32(spm_cursor *c, const char *what, int wire, int *out)
{
    uint64_t v = 0;
    TR_TRY(expect_wire(c, what, wire, WIRE_VARINT));
    TR_TRY(read_varint(c, &v));
    int64_t s = (int64_t)v;
    if (s < INT32_MIN || s > INT32_MAX)
        return tr_fail(TR_ERR_FORMAT, "%s: field %s = %lld does not fit in int32", c->name, what, (long long)s);
    *out = (int)s;
    return TR_OK;
}

static tr_status read_bool(spm_cursor *c, const char *what, int wire, int *out)
{
    uint64_t v = 0;
    TR_TRY(expect_wire(c, what, wire, WIRE_VARINT));
    TR_TRY(read_varint(c, &v));
    *out = v != 0;
    return TR_OK;
}

/* ---- messages ---------------------------------------------------------------------------------- */

static tr_status parse_piece(spm_cursor c, int index, tr_vocab_spec *spec)
{
    const uint8_t *piece = NULL;
    size_t piece_len = 0;
    float score = 0.0f;
    int type = TR_TOKEN_NORMAL;
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        spm_cursor sub;
        TR_TRY(read_key(&c, &field, &wire));
        switch (field) {
        case 1:
            TR_TRY(expect_wire(&c, "SentencePiece.piece", wire, WIRE_LEN));
            TR_TRY(read_len(&c, &sub));
            piece = sub.p;
            piece_len = (size_t)(sub.end - sub.p);
            break;
        case 2:
            TR_TRY(expect_wire(&c, "SentencePiece.score", wire, WIRE_FIXED32));
            if (c.end - c.p < 4)
                return tr_fail(TR_ERR_FORMAT, "%s: the score of piece %d runs past its end", c.name, index);
            uint32_t bits = (uint32_t)c.p[0] | (uint32_t)c.p[1] << 8 | (uint32_t)c.p[2] << 16 |
                            (uint32_t)c.p[3] << 24;
            memcpy(&score, &bits, 4);
            c.p += 4;
            break;
        case 3:
            TR_TRY(read_int32(&c, "SentencePiece.type", wire, &type));
            if (type < TR_TOKEN_NORMAL || type > TR_TOKEN_BYTE)
                return tr_fail(TR_ERR_FORMAT, "%s: piece %d has unknown type %d", c.name, index, type);
            break;
        default:
            TR_TRY(skip_field(&c, wire));
        }
    }
    if (piece_len == 0)
        return tr_fail(TR_ERR_FORMAT, "%s: piece %d is empty", c.name, index);
    if (memchr(piece, 0, piece_len))
        return tr_fail(TR_ERR_FORMAT, "%s: piece %d contains a NUL byte", c.name, index);
    char *copy = malloc(piece_len + 1);
    if (!copy)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", c.name);
    memcpy(copy, piece, piece_len);
    copy[piece_len] = '\0';
    spec->pieces[index] = copy;
    spec->scores[index] = score;
    spec->types[index] = type;
    return TR_OK;
}

static tr_status parse_trainer_spec(spm_cursor c, spm_model *m)
{
    while (c.p < c.end) {
        uint32_t field;
        int wire, ignored;
        TR_TRY(read_key(&c, &field, &wire));
        switch (field) {
        case 3: TR_TRY(read_int32(&c, "TrainerSpec.model_type", wire, &m->model_type)); break;
        case 24: TR_TRY(read_bool(&c, "TrainerSpec.treat_whitespace_as_suffix", wire, &m->treat_ws_as_suffix)); break;
        case 35: TR_TRY(read_bool(&c, "TrainerSpec.byte_fallback", wire, &m->byte_fallback)); break;
        case 40: TR_TRY(read_int32(&c, "TrainerSpec.unk_id", wire, &ignored)); break; /* from piece types */
        case 41: TR_TRY(read_int32(&c, "TrainerSpec.bos_id", wire, &m->bos_id)); break;
        case 42: TR_TRY(read_int32(&c, "TrainerSpec.eos_id", wire, &m->eos_id)); break;
        default: TR_TRY(skip_field(&c, wire));
        }
    }
    return TR_OK;
}

static tr_status parse_normalizer_spec(spm_cursor c, spm_model *m)
{
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        spm_cursor sub;
        TR_TRY(read_key(&c, &field, &wire));
        switch (field) {
        case 1:
            TR_TRY(expect_wire(&c, "NormalizerSpec.name", wire, WIRE_LEN));
            TR_TRY(read_len(&c, &sub));
            size_t len = (size_t)(sub.end - sub.p);
            if (len >= sizeof m->norm_name)
                len = sizeof m->norm_name - 1;
            for (size_t i = 0; i < len; i++) /* kept for messages only: printable ASCII */
                m->norm_name[i] = (sub.p[i] >= 0x20 && sub.p[i] < 0x7F) ? (char)sub.p[i] : '?';
            m->norm_name[len] = '\0';
            break;
        case 2:
            TR_TRY(expect_wire(&c, "NormalizerSpec.precompiled_charsmap", wire, WIRE_LEN));
            TR_TRY(read_len(&c, &sub));
            m->charsmap_len = (size_t)(sub.end - sub.p);
            break;
        case 3: TR_TRY(read_bool(&c, "NormalizerSpec.add_dummy_prefix", wire, &m->rules.add_dummy_prefix)); break;
        case 4:
            TR_TRY(read_bool(&c, "NormalizerSpec.remove_extra_whitespaces", wire, &m->rules.remove_extra_whitespaces));
            break;
        case 5: TR_TRY(read_bool(&c, "NormalizerSpec.escape_whitespaces", wire, &m->rules.escape_whitespaces)); break;
        default: TR_TRY(skip_field(&c, wire));
        }
    }
    return TR_OK;
}

/* Counts the pieces first so that the spec's arrays are allocated once, at their final size. */
static tr_status count_pieces(spm_cursor c, int *n)
{
    *n = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        TR_TRY(read_key(&c, &field, &wire));
        if (field == 1 && wire == WIRE_LEN) {
            if (*n == (1 << 28))
                return tr_fail(TR_ERR_FORMAT, "%s: too many pieces", c.name);
            (*n)++;
        }
        TR_TRY(skip_field(&c, wire));
    }
    return TR_OK;
}

static tr_status check_model(const char *name, const spm_model *m, const tr_vocab_spec *spec)
{
    static const char *const type_names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
    if (spec->n == 0)
        return tr_fail(TR_ERR_FORMAT, "%s: the model has no pieces", name);
    if (m->model_type != SPM_BPE)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: SentencePiece model type %s (%d) is not supported, only BPE", name,
                       m->model_type >= 1 && m->model_type <= 4 ? type_names[m->model_type] : "unknown",
                       m->model_type);
    if (m->charsmap_len > 0)
        return tr_fail(TR_ERR_UNSUPPORTED,
                       "%s: normalizer '%s' has a precompiled character map (%zu bytes); only the identity "
                       "normalizer is supported",
                       name, m->norm_name, m->charsmap_len);
    if (m->treat_ws_as_suffix)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: treat_whitespace_as_suffix is not supported", name);
    int unk = -1, bytes_seen[256] = {0}, n_bytes = 0;
    for (int i = 0; i < spec->n; i++) {
        if (spec->types[i] == TR_TOKEN_UNKNOWN) {
            if (unk >= 0)
                return tr_fail(TR_ERR_FORMAT, "%s: pieces %d and %d are both the unknown piece", name, unk, i);
            unk = i;
        }
        if (spec->types[i] == TR_TOKEN_BYTE) {
            const char *p = spec->pieces[i];
            int v = tr_byte_piece_value(p, strlen(p));
            if (!m->byte_fallback)
                return tr_fail(TR_ERR_FORMAT, "%s: byte piece %d although byte_fallback is false", name, i);
            if (v < 0)
                return tr_fail(TR_ERR_FORMAT, "%s: byte piece %d is '%.16s', not <0xXX>", name, i, p);
            if (!bytes_seen[v]++)
                n_bytes++;
        }
    }
    if (unk < 0)
        return tr_fail(TR_ERR_FORMAT, "%s: the model has no unknown piece", name);
    if (m->byte_fallback && n_bytes != 256)
        return tr_fail(TR_ERR_FORMAT, "%s: byte_fallback is set but only %d of the 256 byte pieces exist", name,
                       n_bytes);
    return TR_OK;
}

tr_status tr_spm_parse_vocab(const uint8_t *data, size_t size, const char *name, tr_vocab_spec *spec,
                             tr_text_rules *rules)
{
    if (!spec)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_spm_parse_vocab: spec is NULL");
    memset(spec, 0, sizeof *spec);
    spec->bos_id = spec->eos_id = spec->unk_id = spec->pad_id = -1;
    if (!data && size > 0)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_spm_parse_vocab: data is NULL");
    spm_cursor top = {data, data + size, data, name};
    spm_model m = {.model_type = SPM_UNIGRAM, .bos_id = 1, .eos_id = 2, .rules = {1, 1, 1, 0}};
    int n;
    TR_TRY(count_pieces(top, &n));
    if (n > 0) {
        spec->pieces = calloc((size_t)n, sizeof *spec->pieces);
        spec->scores = calloc((size_t)n, sizeof *spec->scores);
        spec->types = calloc((size_t)n, sizeof *spec->types);
        spec->n = n;
        if (!spec->pieces || !spec->scores || !spec->types) {
            tr_vocab_spec_free(spec);
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory for %d pieces", name, n);
        }
    }
    tr_status s = TR_OK;
    int index = 0;
    spm_cursor c = top;
    while (s == TR_OK && c.p < c.end) {
        uint32_t field;
        int wire;
        spm_cursor sub;
        s = read_key(&c, &field, &wire);
        if (s != TR_OK)
            break;
        if (field >= 1 && field <= 3) {
            const char *what = field == 1 ? "ModelProto.pieces" : field == 2 ? "ModelProto.trainer_spec"
                                                                             : "ModelProto.normalizer_spec";
            s = expect_wire(&c, what, wire, WIRE_LEN);
            if (s == TR_OK)
                s = read_len(&c, &sub);
            if (s != TR_OK)
                break;
            if (field == 1)
                s = parse_piece(sub, index++, spec);
            else if (field == 2)
                s = parse_trainer_spec(sub, &m);
            else
                s = parse_normalizer_spec(sub, &m);
        } else {
            s = skip_field(&c, wire);
        }
    }
    if (s == TR_OK)
        s = check_model(name, &m, spec);
    if (s != TR_OK) {
        tr_vocab_spec_free(spec);
        return s;
    }
    for (int i = 0; i < spec->n; i++)
        if (spec->types[i] == TR_TOKEN_UNKNOWN)
            spec->unk_id = i;
    spec->bos_id = m.bos_id >= 0 && m.bos_id < spec->n ? m.bos_id : -1;
    spec->eos_id = m.eos_id >= 0 && m.eos_id < spec->n ? m.eos_id : -1;
    spec->add_bos = spec->bos_id >= 0; /* LLaMA prepends BOS; tokenizer_config.json may say otherwise */
    spec->byte_fallback = m.byte_fallback;
    if (rules)
        *rules = m.rules;
    return TR_OK;
}

/* ---- files ------------------------------------------------------------------------------------- */

tr_status tr_spm_read_vocab(const char *path, tr_vocab_spec *out)
{
    if (!path || !out)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_spm_read_vocab: path or out is NULL");
    uint8_t *data;
    size_t size;
    memset(out, 0, sizeof *out);
    TR_TRY(tr_tokenizer_read_file(path, &data, &size));
    tr_text_rules rules;
    tr_status s = tr_spm_parse_vocab(data, size, path, out, &rules);
    free(data);
    if (s == TR_OK)
        out->no_space_prefix = !rules.add_dummy_prefix;
    return s;
}

tr_status tr_tokenizer_parse_spm(const uint8_t *data, size_t size, const char *name, tr_tokenizer **out)
{
    if (!out)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_parse_spm: out is NULL");
    *out = NULL;
    tr_vocab_spec spec;
    tr_text_rules rules;
    TR_TRY(tr_spm_parse_vocab(data, size, name, &spec, &rules));
    tr_status s = tr_tokenizer_build(&spec, &rules, TR_MERGE_BY_SCORE, name, out);
    tr_vocab_spec_free(&spec);
    return s;
}

tr_status tr_tokenizer_load_spm(const char *path, tr_tokenizer **out)
{
    if (!path || !out)
        return tr_fail(TR_ERR_INVALID_ARG, "tr_tokenizer_load_spm: path or out is NULL");
    *out = NULL;
    uint8_t *data;
    size_t size;
    TR_TRY(tr_tokenizer_read_file(path, &data, &size));
    if (tr_tiktoken_detect(data, size)) { /* Meta's Llama 3 tokenizer.model is tiktoken text, not a protobuf */
        free(data);
        return tr_tokenizer_load_tiktoken(path, out);
    }
    tr_status s = tr_tokenizer_parse_spm(data, size, path, out);
    free(data);
    return s;
}
