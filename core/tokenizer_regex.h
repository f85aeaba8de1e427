/* tokenizer_regex.h: the pre-tokenizer's regex (a Hugging Face `Split` pattern, tiktoken's pat_str)
 * compiled and run by PCRE2 with UTF and Unicode properties (\p{L}, \p{N}, \s from PCRE2's Unicode
 * tables, never hand-made ones), JIT compiled when the platform allows.
 *
 * Text that is not valid UTF-8 is accepted (PCRE2_MATCH_INVALID_UTF): invalid bytes never match, so
 * they end up in the gaps between matches, and the splitter reports gaps as pieces too (HF's Split
 * with behavior "Isolated" keeps them), so that every byte of the text reaches the BPE. */
#ifndef TR_TOKENIZER_REGEX_H
#define TR_TOKENIZER_REGEX_H

#include <stddef.h>

#include "transit.h"

typedef struct tr_regex tr_regex;

/* The Llama 3 pre-tokenizer (design §11; llama.cpp's "llama-bpe") and GPT-2's (HF ByteLevel with
 * use_regex=true). */
extern const char tr_regex_llama3[];
extern const char tr_regex_gpt2[];

/* The regex of a GGUF tokenizer.ggml.pre value (llama.cpp's names), or NULL when transit does not
 * implement that pre-tokenizer. */
const char *tr_regex_for_gguf_pre(const char *pre);

/* Compiles pattern[0..len); a pattern PCRE2 rejects is an error naming `name` and the offset. */
tr_status tr_regex_compile(const char *pattern, size_t len, const char *name, tr_regex **out);
void tr_regex_free(tr_regex *re);

/* Receives each piece in order; a nonzero return stops the split and is returned by tr_regex_split. */
typedef int (*tr_regex_piece_fn)(void *ctx, const char *s, size_t len);

/* Splits text[0..len) into the matches of re and the non-empty gaps between them (in text order,
 * together covering every byte). Returns 0, the callback's nonzero value, or a negative tr_status
 * (a PCRE2 failure such as exhausted resources, with tr_last_error set). Thread-safe. */
int tr_regex_split(const tr_regex *re, const char *text, size_t len, tr_regex_piece_fn fn, void *ctx);

#endif
