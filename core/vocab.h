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

/* Which tokenizer a vocabulary is for (GGUF tokenizer.ggml.model). */
typedef enum tr_vocab_model {
    TR_VOCAB_SPM = 0, /* "llama": SentencePiece BPE, merged by score */
    TR_VOCAB_BPE = 1, /* "gpt2": byte-level BPE, merged by rank (Llama 3) */
} tr_vocab_model;

typedef struct tr_vocab_spec {
    tr_vocab_model model;
    int n;           /* number of pieces */
    char **pieces;   /* [n] NUL-terminated UTF-8 (SentencePiece form: ' ' is U+2581; byte-level form:
                      * GPT-2's bytes-to-unicode characters, except CONTROL / USER_DEFINED tokens, which
                      * are their text) */
    float *scores;   /* [n] merge priority: higher merges first */
    int32_t *types;  /* [n] tr_token_type */
    int bos_id, eos_id, unk_id; /* -1 when absent */
    int pad_id;      /* tokenizer.ggml.padding_token_id: kept for conversion, unused by the tokenizer */
    int no_space_prefix; /* SentencePiece only: no dummy prefix (GGUF add_space_prefix false; the
                            normalizer's add_dummy_prefix false); 0, the LLaMA default, adds it */
    int add_bos;     /* 1 = prepend BOS when encoding a prompt (LLaMA default) */
    int byte_fallback; /* 1 = unknown bytes become <0xXX> pieces */
    /* TR_VOCAB_BPE only (NULL / 0 / "" otherwise): */
    int n_merges;
    char **merges;     /* [n_merges] "left right" in byte-level form, ranked by position */
    char pre[64];      /* tokenizer.ggml.pre: which pre-tokenizer regex ("llama-bpe") */
} tr_vocab_spec;

void tr_vocab_spec_free(tr_vocab_spec *v);

#endif
