/* tokenizer_internal.h: the tokenizer's private layout, shared by tokenizer.c (build, decode),
 * tokenizer_encode.c (encode), tokenizer_spm.c (tokenizer.model) and tokenizer_hf.c (tokenizer.json).
 *
 * Not a public header: only the tokenizer files, its tests and its fuzz targets include it. The
 * from-memory entry points at the end exist so that the fuzzers need no files on disk. */
#ifndef TR_TOKENIZER_INTERNAL_H
#define TR_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* How adjacent symbols are chosen for merging. */
typedef enum tr_merge_rule {
    TR_MERGE_BY_SCORE = 0, /* SentencePiece: the pair whose concatenation is the highest-scored piece */
    TR_MERGE_BY_RANK = 1,  /* Hugging Face: the pair listed earliest in `merges` */
} tr_merge_rule;

/* What the text goes through before merging (SentencePiece NormalizerSpec, identity rules only). */
typedef struct tr_text_rules {
    int add_dummy_prefix;         /* prepend U+2581 to non-empty text */
    int remove_extra_whitespaces; /* drop leading/trailing spaces, squeeze runs */
    int escape_whitespaces;       /* ' ' becomes U+2581 */
    int prefix_unless_space;      /* HF Metaspace: no dummy prefix on text that starts with ' ' or U+2581 */
} tr_text_rules;

/* An open-addressing hash table of token ids keyed by their piece bytes (-1 = empty slot). */
typedef struct tr_piece_map {
    int32_t *slots;
    uint32_t mask;
} tr_piece_map;

/* One HF merge rule: (left, right) -> result, with its rank (position in `merges`). */
typedef struct tr_merge_entry {
    int32_t left, right; /* left == -1 marks an empty slot */
    int32_t rank, result;
} tr_merge_entry;

/* Per-token flags, precomputed at build time. */
enum {
    TR_TOKFLAG_LEADING_WS = 1, /* a NORMAL / USER_DEFINED / UNUSED piece starting with U+2581: decoding
                                * drops its space at the start of a text */
};

struct tr_bpe; /* tokenizer_bpe.h */
struct cJSON;  /* cJSON.h: only the tokenizer.json readers pass one */

struct tr_tokenizer {
    int n_vocab;
    struct tr_bpe *bpe;  /* byte-level BPE (Llama 3, GPT-2): encoding and decoding go there, and only
                          * n_vocab, bos_id, eos_id, unk_id and add_bos below are used */
    char *text;          /* all pieces back to back (each also NUL-terminated) */
    uint32_t *piece_off; /* [n_vocab] offset of each piece in text */
    uint32_t *piece_len; /* [n_vocab] its length in bytes */
    float *scores;       /* [n_vocab] */
    uint8_t *types;      /* [n_vocab] tr_token_type */
    uint8_t *flags;      /* [n_vocab] TR_TOKFLAG_* */
    char *dec_text;      /* decoded form of every token: U+2581 -> ' ', <0xXX> -> the byte, control -> "" */
    uint32_t *dec_off;   /* [n_vocab + 1] offsets into dec_text */

    tr_piece_map normal;   /* NORMAL / USER_DEFINED / UNUSED pieces (HF: every piece) */
    tr_piece_map reserved; /* CONTROL / UNKNOWN / BYTE pieces (SentencePiece looks these up first) */
    int32_t byte_ids[256]; /* id of <0xXX>, or -1 */

    tr_merge_rule rule;
    tr_merge_entry *merges; /* TR_MERGE_BY_RANK: open-addressing table of (left, right) pairs */
    uint32_t merge_mask;
    int ignore_merges; /* HF: a text that is itself a piece becomes that piece */
    int fuse_unk;      /* HF: a run of unknown characters becomes one <unk> (SentencePiece: always) */

    tr_text_rules rules;
    int byte_fallback;
    int bos_id, eos_id, unk_id;
    int add_bos;
    int n_unused;         /* UNUSED pieces exist: merged then split again (SentencePiece resegment) */
    int n_ud_lengths;     /* distinct lengths of USER_DEFINED pieces, longest first */
    uint32_t *ud_lengths;
};

/* Builds a tokenizer from a vocabulary with the given text rules and merge rule. For TR_MERGE_BY_RANK
 * the caller then fills the merge table with tr_tokenizer_add_merge. name is used in error messages. */
tr_status tr_tokenizer_build(const tr_vocab_spec *spec, const tr_text_rules *rules, tr_merge_rule rule,
                             const char *name, tr_tokenizer **out);
tr_status tr_tokenizer_reserve_merges(tr_tokenizer *t, size_t n_merges, const char *name);
/* Later duplicates replace earlier ones, as in Hugging Face's merge map. */
void tr_tokenizer_add_merge(tr_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result);
/* "<0xAB>" -> 0xAB; -1 for any other string (upper-case hex digits only, as SentencePiece writes). */
int tr_byte_piece_value(const char *s, size_t len);
/* The merge rule for the pair (left, right), or NULL. */
const tr_merge_entry *tr_tokenizer_find_merge(const tr_tokenizer *t, int32_t left, int32_t right);
/* Id of the piece s[0..len) in map, or -1. */
int32_t tr_piece_map_find(const tr_tokenizer *t, const tr_piece_map *map, const char *s, size_t len);

/* Wraps a built byte-level BPE (owned from then on, freed on failure too). bos / eos: -1 to look for
 * the usual names among its special tokens (<|begin_of_text|>, <s>; <|end_of_text|>, </s>,
 * <|endoftext|>). add_bos is cleared when there is no BOS. */
tr_status tr_tokenizer_from_bpe(struct tr_bpe *b, int bos, int eos, int add_bos, const char *name, tr_tokenizer **out);
/* tokenizer.json of the byte-level kind (tokenizer_hf_bpe.c): pre_tokenizer ByteLevel and/or Split. */
int tr_hf_json_is_byte_level(const struct cJSON *root);
tr_status tr_bpe_parse_hf_root(const char *name, const struct cJSON *root, tr_tokenizer **out);
/* tiktoken's tokenizer.model (tiktoken.c): detect by content, parse from memory. config_json is the
 * tokenizer_config.json beside it (NULL if none), for the special tokens' names. */
int tr_tiktoken_detect(const uint8_t *data, size_t size);
tr_status tr_tokenizer_parse_tiktoken(const uint8_t *data, size_t size, const char *config_json, size_t config_len,
                                      const char *name, tr_tokenizer **out);
/* A GGUF "gpt2" vocabulary (tokenizer_gguf_bpe.c), and a byte-level tokenizer exported as one: the
 * pre-tokenizer is written as "llama-bpe", so only Llama 3 regex tokenizers export faithfully. */
tr_status tr_tokenizer_from_bpe_vocab(const tr_vocab_spec *spec, const char *name, tr_tokenizer **out);
tr_status tr_bpe_export_vocab(const tr_tokenizer *t, tr_vocab_spec *out);
/* JSON helpers shared by the tokenizer.json readers (tokenizer_hf.c). */
tr_status tr_hf_get_bool(const char *name, const struct cJSON *obj, const char *key, int dflt, int *out);
tr_status tr_hf_get_id(const char *name, const struct cJSON *v, const char *what, const char *piece, int *out);

/* Reads a whole file (at most 1 GiB) into *data (caller frees; a NUL follows the *size bytes). */
tr_status tr_tokenizer_read_file(const char *path, uint8_t **data, size_t *size);

/* ---- from memory (tests and fuzzers) ---------------------------------------------------------- */

/* Parses a SentencePiece ModelProto held in memory into spec (caller frees with tr_vocab_spec_free)
 * and, if rules is not NULL, its normalizer settings. name is used in error messages. */
tr_status tr_spm_parse_vocab(const uint8_t *data, size_t size, const char *name, tr_vocab_spec *spec,
                             tr_text_rules *rules);
/* Builds a tokenizer from a SentencePiece ModelProto held in memory. */
tr_status tr_tokenizer_parse_spm(const uint8_t *data, size_t size, const char *name, tr_tokenizer **out);
/* Builds a tokenizer from tokenizer.json text held in memory (need not be NUL-terminated). */
tr_status tr_tokenizer_parse_hf_json(const char *text, size_t len, const char *name, tr_tokenizer **out);

#endif
