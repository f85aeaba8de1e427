/* fuzz_gguf.c: libFuzzer target for the GGUF path, from memory: the container parser, the metadata
 * accessors, the vocabulary reader and the model-level checks (tr_model_file_from_gguf).
 * Beyond "no crash", it enforces the error contract: a one-line message that starts with the file
 * name, and every accepted weight's bytes readable (ASan checks the bounds). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model_file.h"
#include "quant.h"
#include "tokenizer_exercise.h"

static const char *const NAME = "fuzz.gguf";

static void check_error(void)
{
    const char *e = tr_last_error();
    if (strchr(e, '\n') || strncmp(e, NAME, strlen(NAME)) != 0)
        abort();
}

static volatile unsigned sink;

static void touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += b[i];
    sink += acc;
}

static void walk_metadata(const tr_gguf *g)
{
    for (size_t i = 0; i < g->n_kv; i++) {
        const tr_gguf_kv *kv = &g->kvs[i];
        int64_t iv;
        double dv;
        sink += (unsigned)strlen(kv->key) + (unsigned)tr_gguf_kv_int(kv, &iv) + (unsigned)tr_gguf_kv_number(kv, &dv);
        if (kv->type == TR_GGUF_STRING)
            touch(kv->str, (size_t)kv->str_len);
        if (kv->type != TR_GGUF_ARRAY)
            continue;
        if (kv->arr_type == TR_GGUF_STRING) {
            size_t pos = 0;
            const uint8_t *s;
            uint64_t len, count = 0;
            while (tr_gguf_arr_next_string(kv, &pos, &s, &len)) {
                touch(s, (size_t)len);
                count++;
            }
            if (count != kv->arr_n)
                abort();
        } else {
            for (uint64_t k = 0; k < kv->arr_n; k++)
                sink += (unsigned)tr_gguf_arr_int(kv, k) + (unsigned)(tr_gguf_arr_number(kv, k) != 0);
        }
    }
    for (size_t i = 0; i < g->n_tensors; i++)
        touch(g->tensors[i].data, g->tensors[i].nbytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_gguf g;
    if (tr_gguf_parse(data, size, NAME, &g) == TR_OK)
        walk_metadata(&g);
    else
        check_error();
    tr_gguf_free(&g);

    tr_model_file f;
    if (tr_model_file_from_gguf(data, size, NAME, &f) == TR_OK) {
        /* what the graph builder relies on */
        const tr_hparams *hp = &f.hp;
        if (hp->dim < 1 || hp->n_layers < 1 || hp->n_heads < 1 || hp->n_kv_heads < 1 || hp->head_dim < 2 ||
            hp->head_dim % 2 || hp->n_heads % hp->n_kv_heads || hp->n_vocab < 1 || hp->ffn_dim < 1 ||
            !(hp->rms_eps > 0) || !(hp->rope_theta > 0) || hp->bos_id >= hp->n_vocab || hp->eos_id >= hp->n_vocab ||
            f.n_weights < 2 + 9 * hp->n_layers || (f.has_vocab && f.vocab.n != hp->n_vocab) ||
            (unsigned)hp->act >= TR_ACT_COUNT ||
            (hp->diff_attn && (hp->n_heads % 2 || hp->n_kv_heads % 2 || f.n_weights < 2 + 13 * hp->n_layers)))
            abort();
        for (int i = 0; i < f.n_weights; i++) {
            const tr_weight *w = &f.weights[i];
            if ((uintptr_t)w->data % tr_dtype_align(w->dtype) != 0 || tr_model_file_find(&f, w->name) != w)
                abort();
            touch(w->data, w->nbytes);
            if (tr_dtype_is_quant(w->dtype)) { /* whole blocks, and any bytes dequantize (to anything) */
                int64_t rows = w->ndim > 1 ? w->ne[1] : 1;
                if (w->ne[0] % tr_dtype_block(w->dtype) || w->nbytes != tr_row_bytes(w->dtype, w->ne[0]) * (size_t)rows)
                    abort();
                float *row = malloc((size_t)w->ne[0] * sizeof *row);
                if (row) {
                    tr_dequantize_row(w->dtype, (const char *)w->data + (size_t)(rows - 1) * tr_row_bytes(w->dtype, w->ne[0]),
                                      row, w->ne[0]);
                    sink += (unsigned)(row[0] != 0);
                }
                free(row);
            }
        }
        for (int i = 0; i < f.vocab.n; i++)
            sink += (unsigned)strlen(f.vocab.pieces[i]) + (unsigned)f.vocab.types[i];
        /* the tokenizer the model would get (SentencePiece-style or byte-level), exercised */
        tr_tokenizer *tok = NULL;
        if (f.has_vocab && tr_tokenizer_from_vocab(&f.vocab, &tok) == TR_OK)
            exercise(tok);
        tr_tokenizer_free(tok);
    } else {
        check_error();
    }
    tr_model_file_close(&f);
    return 0;
}
