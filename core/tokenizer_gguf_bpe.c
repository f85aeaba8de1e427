/* tokenizer_gguf_bpe.c: a GGUF "gpt2" vocabulary (tr_vocab_spec with model TR_VOCAB_BPE) into a
 * byte-level BPE, and back (tr_tokenizer_export_vocab of a byte-level tokenizer).
 *
 * GGUF writes ordinary tokens in GPT-2's byte-level alphabet and CONTROL / USER_DEFINED tokens as
 * their text; those are the ones matched in the text, as llama.cpp does. Merges are "a b" strings
 * ranked by position. tokenizer.ggml.pre picks the regex (vocab.c has refused the unknown ones). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_bpe.h"
#include "tokenizer_internal.h"
#include "tokenizer_regex.h"

static int is_special_type(int32_t type) { return type == TR_TOKEN_CONTROL || type == TR_TOKEN_USER_DEFINED; }

static tr_status build(const tr_vocab_spec *spec, const char *name, const char *pattern, tr_bpe *b)
{
    for (int i = 0; i < spec->n; i++)
        TR_TRY(tr_bpe_set_piece(b, i, spec->pieces[i], strlen(spec->pieces[i]), is_special_type(spec->types[i]), name));
    TR_TRY(tr_bpe_seal(b, name));
    for (int i = 0; i < spec->n_merges; i++) {
        const char *m = spec->merges[i], *sp = strchr(m, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return tr_fail(TR_ERR_FORMAT, "%s: merge %d '%.40s' is not two pieces separated by one space", name, i, m);
        TR_TRY(tr_bpe_add_merge_text(b, m, (size_t)(sp - m), sp + 1, strlen(sp + 1), i, name));
    }
    /* llama.cpp keeps a piece that is itself a token whole for the Llama 3 pre-tokenizer (ignore_merges) */
    return tr_bpe_set_regex(b, pattern, strlen(pattern), 1, name);
}

tr_status tr_tokenizer_from_bpe_vocab(const tr_vocab_spec *spec, const char *name, tr_tokenizer **out)
{
    *out = NULL;
    const char *pattern = tr_regex_for_gguf_pre(spec->pre);
    if (!pattern)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: pre-tokenizer '%.40s' is not supported (only llama-bpe)", name, spec->pre);
    tr_bpe *b;
    TR_TRY(tr_bpe_create(spec->n, name, &b));
    tr_status s = build(spec, name, pattern, b);
    if (s != TR_OK) {
        tr_bpe_free(b);
        return s;
    }
    return tr_tokenizer_from_bpe(b, spec->bos_id, spec->eos_id, spec->add_bos, name, out);
}

/* Token id in the GGUF's form: byte-level characters, or the text of a special token. */
static char *gguf_piece(const tr_bpe *b, int32_t id)
{
    const char *s;
    size_t len;
    tr_bpe_token_bytes(b, id, &s, &len);
    char *out = malloc(2 * len + 1);
    if (!out)
        return NULL;
    if (tr_bpe_is_special(b, id)) {
        memcpy(out, s, len);
        out[len] = '\0';
    } else {
        out[tr_bytelevel_encode((const uint8_t *)s, len, out)] = '\0';
    }
    return out;
}

static tr_status export_merges(const tr_bpe *b, tr_vocab_spec *out)
{
    int32_t *pairs;
    size_t n;
    TR_TRY(tr_bpe_sorted_merges(b, &pairs, &n));
    out->merges = calloc(n + 1, sizeof *out->merges);
    for (size_t i = 0; out->merges && i < n; i++) {
        char *l = gguf_piece(b, pairs[2 * i]), *r = gguf_piece(b, pairs[2 * i + 1]);
        char *m = l && r ? malloc(strlen(l) + strlen(r) + 2) : NULL;
        if (m) {
            strcpy(m, l);
            strcat(m, " ");
            strcat(m, r);
        }
        free(l);
        free(r);
        if (!m)
            break;
        out->merges[i] = m;
        out->n_merges = (int)i + 1;
    }
    free(pairs);
    if ((size_t)out->n_merges != n)
        return tr_fail(TR_ERR_NOMEM, "tokenizer: out of memory exporting %zu merges", n);
    return TR_OK;
}

tr_status tr_bpe_export_vocab(const tr_tokenizer *t, tr_vocab_spec *out)
{
    const tr_bpe *b = t->bpe;
    memset(out, 0, sizeof *out);
    out->bos_id = out->eos_id = out->unk_id = out->pad_id = -1;
    if (strcmp(tr_bpe_pattern(b), tr_regex_llama3) != 0) /* GGUF names regexes; only this one has a name here */
        return tr_fail(TR_ERR_UNSUPPORTED, "tokenizer: only the Llama 3 pre-tokenizer regex can be written as a GGUF "
                       "vocabulary (tokenizer.ggml.pre 'llama-bpe')");
    out->model = TR_VOCAB_BPE;
    snprintf(out->pre, sizeof out->pre, "llama-bpe");
    out->n = t->n_vocab;
    out->bos_id = t->bos_id;
    out->eos_id = t->eos_id;
    out->unk_id = -1;
    out->add_bos = t->add_bos;
    out->pieces = calloc((size_t)out->n, sizeof *out->pieces);
    out->scores = calloc((size_t)out->n, sizeof *out->scores);
    out->types = calloc((size_t)out->n, sizeof *out->types);
    tr_status s = out->pieces && out->scores && out->types ? TR_OK : TR_ERR_NOMEM;
    for (int i = 0; s == TR_OK && i < out->n; i++) {
        out->types[i] = tr_bpe_is_special(b, i) ? TR_TOKEN_CONTROL : TR_TOKEN_NORMAL;
        if (!(out->pieces[i] = gguf_piece(b, i)))
            s = TR_ERR_NOMEM;
    }
    if (s == TR_OK)
        s = export_merges(b, out);
    if (s != TR_OK) {
        tr_vocab_spec_free(out);
        return s == TR_ERR_NOMEM ? tr_fail(s, "tokenizer: out of memory exporting the vocabulary") : s;
    }
    return TR_OK;
}
