/* tokenizer_bpe.h: byte-level BPE (GPT-2 / Llama 3 / tiktoken), the engine behind every byte-level
 * tokenizer form (tokenizer.json, tiktoken's tokenizer.model, GGUF "gpt2").
 *
 * Tokens are held as the raw bytes they stand for, so encoding never maps text to GPT-2's printable
 * characters: a text is cut at the special tokens written in it, each remaining segment is split by
 * the pre-tokenizer regex, and each piece starts as one token per byte and is merged pair by pair,
 * the lowest-ranked pair first (the leftmost of equals), exactly as HF `tokenizers` and tiktoken do.
 *
 * Building, in this order: tr_bpe_create, tr_bpe_set_token for every id, tr_bpe_seal, then merges
 * (tr_bpe_add_merge in rank order, or tr_bpe_derive_merges for tiktoken), then tr_bpe_set_regex.
 * Not a public header: the tokenizer files, tests and fuzzers include it. */
#ifndef TR_TOKENIZER_BPE_H
#define TR_TOKENIZER_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "transit.h"

typedef struct tr_bpe tr_bpe;

tr_status tr_bpe_create(int n_vocab, const char *name, tr_bpe **out);
void tr_bpe_free(tr_bpe *b);

/* Token id stands for bytes[0..len). special: matched as a whole where its text appears (HF added
 * tokens, tiktoken special tokens, GGUF control / user-defined tokens) and never made by a merge. */
tr_status tr_bpe_set_token(tr_bpe *b, int id, const uint8_t *bytes, size_t len, int special, const char *name);
int tr_bpe_has_token(const tr_bpe *b, int id); /* set already */
/* The same from a file's piece: byte-level form for an ordinary token, the text itself for a special. */
tr_status tr_bpe_set_piece(tr_bpe *b, int id, const char *piece, size_t len, int special, const char *name);
/* Checks that every id has bytes and every byte value has a token; indexes the vocabulary. */
tr_status tr_bpe_seal(tr_bpe *b, const char *name);

/* Id of the ordinary (non-special) token with these bytes, or -1. */
int32_t tr_bpe_find(const tr_bpe *b, const uint8_t *s, size_t len);
/* Id of the special token with this text, or -1. */
int32_t tr_bpe_find_special(const tr_bpe *b, const char *s);

/* Merge (left, right) with this rank (lower merges first); it makes the token whose bytes are the
 * two concatenated, which must exist. A later merge of the same pair replaces an earlier one. */
tr_status tr_bpe_add_merge(tr_bpe *b, int32_t left, int32_t right, int32_t rank, const char *name);
/* The same, with the two pieces in byte-level form; a piece not in the vocabulary is an error. */
tr_status tr_bpe_add_merge_text(tr_bpe *b, const char *left, size_t llen, const char *right, size_t rlen, int32_t rank,
                                const char *name);
/* tiktoken: every split of a token into two tokens is a merge ranked by the token's own rank (id). */
tr_status tr_bpe_derive_merges(tr_bpe *b, const char *name);

/* The pre-tokenizer regex (see tokenizer_regex.h) and whether a piece that is itself a token is kept
 * whole without merging (HF ignore_merges; tiktoken always). */
tr_status tr_bpe_set_regex(tr_bpe *b, const char *pattern, size_t len, int ignore_merges, const char *name);

/* Encodes text[0..len) (any bytes), bos first when bos >= 0; the tr_tokenizer_encode contract.
 * match_special: special tokens written in the text are those tokens (HF's default); 0: all text. */
tr_status tr_bpe_encode(const tr_bpe *b, const char *text, size_t len, int32_t bos, int match_special, int32_t *ids,
                        int cap, int *n);

/* The bytes of token id (a special token's are its text). */
void tr_bpe_token_bytes(const tr_bpe *b, int32_t id, const char **s, size_t *len);
int tr_bpe_is_special(const tr_bpe *b, int32_t id);
int tr_bpe_n_vocab(const tr_bpe *b);
const char *tr_bpe_pattern(const tr_bpe *b); /* the pre-tokenizer regex's source */
/* Every merge as (left, right) id pairs in rank order (*pairs holds 2 * *n ids; caller frees). */
tr_status tr_bpe_sorted_merges(const tr_bpe *b, int32_t **pairs, size_t *n);

/* GPT-2's byte-level alphabet (tokenizer_bytelevel.c). encode writes at most 2 * len bytes (no NUL);
 * decode writes at most len bytes and returns their count, or -1 if the piece has a character outside
 * the alphabet. */
size_t tr_bytelevel_encode(const uint8_t *bytes, size_t len, char *out);
long tr_bytelevel_decode(const char *piece, size_t len, uint8_t *out);

#endif
