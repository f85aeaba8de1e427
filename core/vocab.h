/* vocab.h: a tokenizer vocabulary as a file describes it, before the tokenizer is built.
 *
 * Filled by the GGUF loader (tokenizer.ggml.*) and by the SentencePiece model reader; consumed by
 * tr_tokenizer_from_vocab(). Strings are copies owned by the spec (tr_vocab_spec_free releases them). */
#ifndef TR_VOCAB_H
#define TR_VOCAB_H

#include <stdint.h>

/* Token types, numbered as SentencePiece and GGUF number them. */
typedef enum tr_token_type {
    TR_TOKEN_UNDEFINED = 0,
    TR_TOKEN_NORMAL = 1,
    TR_TOKEN_UNKNOWN = 2,
    TR_TOKEN_CONTROL = 3,
    TR_TOKEN_USER_DEFINED = 4,
    TR_TOKEN_UNUSED = 5,
    TR_TOKEN_BYTE = 6,
} tr_token_type;

typedef struct tr_vocab_spec {
    int n;           /* number of pieces */
    char **pieces;   /* [n] NUL-terminated UTF-8 (SentencePiece form: ' ' is U+2581) */
    float *scores;   /* [n] merge priority: higher merges first */
    int32_t *types;  /* [n] tr_token_type */
    int bos_id, eos_id, unk_id; /* -1 when absent */
    int add_bos;     /* 1 = prepend BOS when encoding a prompt (LLaMA default) */
    int byte_fallback; /* 1 = unknown bytes become <0xXX> pieces */
} tr_vocab_spec;

void tr_vocab_spec_free(tr_vocab_spec *v);

#endif
