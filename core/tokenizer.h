/* tokenizer.h: LLaMA-family tokenizers: SentencePiece BPE with byte fallback (LLaMA 1/2), and
 * byte-level BPE (Llama 3; see tokenizer_bpe.h and docs/tokenizer.md).
 *
 * Byte-level BPE comes from a tokenizer.json with a ByteLevel / Split pre-tokenizer, from Meta's
 * tiktoken tokenizer.model (tr_tokenizer_load_spm tells the formats apart by content) or from a GGUF
 * "gpt2" vocabulary. Its tokens decode to their exact bytes wherever they stand, and special tokens
 * (<|eot_id|>) decode to their text, as in HF `tokenizers` and tiktoken.
 *
 * Three sources build the SentencePiece kind:
 *   - tokenizer.json (Hugging Face, model.type "BPE", byte_fallback), merges ranked by their order;
 *   - tokenizer.model (SentencePiece protobuf, model_type BPE), pieces ranked by score;
 *   - a GGUF vocabulary (tokenizer.ggml.tokens / scores / token_type) through tr_vocab_spec.
 * Encoding follows SentencePiece (legacy LLaMA behaviour): the text gets a leading U+2581 and each ' '
 * becomes U+2581; pieces are merged greedily by priority; bytes with no piece become <0xXX> tokens.
 * Every table access is bounds-checked; a damaged file is an error naming it, never a crash. */
#ifndef TR_TOKENIZER_H
#define TR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "transit.h"
#include "vocab.h"

typedef struct tr_tokenizer tr_tokenizer;

tr_status tr_tokenizer_load_spm(const char *path, tr_tokenizer **out);     /* tokenizer.model (either format) */
tr_status tr_tokenizer_load_tiktoken(const char *path, tr_tokenizer **out); /* tiktoken tokenizer.model */
tr_status tr_tokenizer_load_hf_json(const char *path, tr_tokenizer **out); /* tokenizer.json */
tr_status tr_tokenizer_from_vocab(const tr_vocab_spec *spec, tr_tokenizer **out); /* either model */
/* Reads the SentencePiece protobuf into a spec (used by load_spm; exposed for tests and tools). */
tr_status tr_spm_read_vocab(const char *path, tr_vocab_spec *out);
void tr_tokenizer_free(tr_tokenizer *t);
/* The vocabulary as a SentencePiece-style spec (a GGUF "llama" vocabulary: pieces, types, scores).
 * A tokenizer that merges by rank (tokenizer.json) gets score -(rank + 1) for the piece each merge
 * makes, the first merge counting, and -1e9 for pieces no merge makes: merging by score then picks
 * the pairs merging by rank would. Caller frees with tr_vocab_spec_free. */
tr_status tr_tokenizer_export_vocab(const tr_tokenizer *t, tr_vocab_spec *out);

int tr_tokenizer_n_vocab(const tr_tokenizer *t);
int tr_tokenizer_bos(const tr_tokenizer *t); /* -1 if none */
int tr_tokenizer_eos(const tr_tokenizer *t);
int tr_tokenizer_add_bos(const tr_tokenizer *t);
void tr_tokenizer_set_add_bos(tr_tokenizer *t, int add_bos); /* from tokenizer_config.json */

/* Encodes text[0..len) (any bytes, not necessarily valid UTF-8). add_bos: 1/0. Writes up to cap ids;
 * *n gets the full count; TR_ERR_RANGE if cap was too small. */
tr_status tr_tokenizer_encode(const tr_tokenizer *t, const char *text, size_t len, int add_bos,
                              int32_t *ids, int cap, int *n);

/* The same without BOS, and with special-token text (<|eot_id|>) encoded as the text it is: how chat
 * formats encode what a message says, so that a message cannot forge the format's markup. */
tr_status tr_tokenizer_encode_literal(const tr_tokenizer *t, const char *text, size_t len, int32_t *ids, int cap,
                                      int *n);

/* Id of the special (control or user-defined) token written as text (<|eot_id|>, </s>), or -1; and a
 * special token's text (the piece as written in the vocabulary). */
int32_t tr_tokenizer_find_special(const tr_tokenizer *t, const char *text);
void tr_tokenizer_special_text(const tr_tokenizer *t, int32_t id, const char **s, size_t *len);

/* Bytes of one token as it appears in text following token prev (prev < 0 or BOS: strip the leading
 * space that the encoder added). Control tokens (BOS, EOS) decode to "". Byte tokens <0xXX> decode to
 * the raw byte. Returns the length written (NUL-terminated if room), or a negative tr_status. */
int tr_tokenizer_piece(const tr_tokenizer *t, int32_t prev, int32_t id, char *buf, int cap);

/* Decodes ids into buf; returns the full length (excluding NUL) even if cap was too small. */
int tr_tokenizer_decode(const tr_tokenizer *t, const int32_t *ids, int n, char *buf, int cap);

#endif
