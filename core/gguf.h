/* gguf.h: a GGUF (v2/v3) parser that works on bytes in memory.
 *
 * tr_gguf_parse() validates the whole container before it returns: header, every metadata entry
 * (scalars, strings, arrays of them; nested arrays are refused), every tensor info (name, 1..4 dims,
 * element type, offset aligned to general.alignment) and that each tensor's bytes lie inside the
 * buffer without overlapping another's. Counts are checked against the bytes left before anything
 * is allocated, so memory use stays proportional to the input's size. It knows nothing about models:
 * model_file.c reads hyperparameters from the metadata, vocab.c reads the vocabulary.
 *
 * Strings and tensor data point into the caller's buffer, which must outlive the tr_gguf. Keys and
 * tensor names are NUL-terminated heap copies owned by the tr_gguf. */
#ifndef TR_GGUF_H
#define TR_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "model_file.h"
#include "transit.h"

/* Metadata value types, numbered as in the GGUF specification. */
typedef enum tr_gguf_vtype {
    TR_GGUF_UINT8 = 0,
    TR_GGUF_INT8 = 1,
    TR_GGUF_UINT16 = 2,
    TR_GGUF_INT16 = 3,
    TR_GGUF_UINT32 = 4,
    TR_GGUF_INT32 = 5,
    TR_GGUF_FLOAT32 = 6,
    TR_GGUF_BOOL = 7,
    TR_GGUF_STRING = 8,
    TR_GGUF_ARRAY = 9,
    TR_GGUF_UINT64 = 10,
    TR_GGUF_INT64 = 11,
    TR_GGUF_FLOAT64 = 12,
    TR_GGUF_VTYPE_COUNT
} tr_gguf_vtype;

/* ggml tensor type ids this engine reads (the others are named in errors only). */
enum { TR_GGML_F32 = 0, TR_GGML_F16 = 1, TR_GGML_BF16 = 30 };

typedef struct tr_gguf_kv {
    char *key;          /* NUL-terminated copy */
    tr_gguf_vtype type;
    union {
        uint64_t u;     /* UINT8..UINT64 and BOOL (0 or 1) */
        int64_t i;      /* INT8..INT64 */
        double f;       /* FLOAT32, FLOAT64 */
    } num;
    const uint8_t *str; /* STRING: bytes inside the buffer, not NUL-terminated */
    uint64_t str_len;
    tr_gguf_vtype arr_type; /* ARRAY: element type (never ARRAY) */
    uint64_t arr_n;         /* ARRAY: element count */
    const uint8_t *arr_data; /* ARRAY: the raw elements inside the buffer */
    size_t arr_bytes;
} tr_gguf_kv;

typedef struct tr_gguf_tensor {
    char *name;        /* NUL-terminated copy, 1..255 bytes */
    int n_dims;        /* 1..4 */
    int64_t ne[4];     /* ne[0] innermost; unused dims are 1 */
    tr_dtype dtype;    /* F32, F16, BF16 or a quantized type of dtype.h: others are refused by the parser */
    uint64_t offset;   /* from the start of the data section */
    size_t nbytes;
    const uint8_t *data; /* inside the buffer; aligned relative to the buffer start only */
} tr_gguf_tensor;

typedef struct tr_gguf {
    uint32_t version;
    uint64_t alignment;   /* general.alignment, default 32 */
    size_t data_offset;   /* where the data section starts in the buffer */
    tr_gguf_kv *kvs;
    size_t n_kv;
    tr_gguf_tensor *tensors;
    size_t n_tensors;
} tr_gguf;

/* Parses data[0..len). name_for_errors starts every error message. On failure *out is left empty
 * (tr_gguf_free on it is a no-op). */
tr_status tr_gguf_parse(const uint8_t *data, size_t len, const char *name_for_errors, tr_gguf *out);
void tr_gguf_free(tr_gguf *g);

const tr_gguf_kv *tr_gguf_find_kv(const tr_gguf *g, const char *key);
const tr_gguf_tensor *tr_gguf_find_tensor(const tr_gguf *g, const char *name);

/* Integer value of an integer-typed entry (any width, signed or not); 0 if the entry is not an
 * integer or does not fit in int64_t. */
int tr_gguf_kv_int(const tr_gguf_kv *kv, int64_t *out);
/* Numeric value of an integer- or float-typed entry; 0 if not numeric. */
int tr_gguf_kv_number(const tr_gguf_kv *kv, double *out);

/* Element i of a numeric array (caller checks i < arr_n; the parser checked the bytes). */
int64_t tr_gguf_arr_int(const tr_gguf_kv *kv, uint64_t i);
double tr_gguf_arr_number(const tr_gguf_kv *kv, uint64_t i);
/* Walks an array of strings: start with *pos = 0; each call yields the next string and returns 1,
 * or returns 0 at the end. */
int tr_gguf_arr_next_string(const tr_gguf_kv *kv, size_t *pos, const uint8_t **s, uint64_t *len);

const char *tr_gguf_vtype_name(uint32_t vtype); /* "uint32", "string", ...; "?" when unknown */
const char *tr_ggml_type_name(uint32_t type);   /* "F32", "Q4_0", ...; NULL when unknown */

/* Reads tokenizer.ggml.* into a vocabulary spec (vocab.c). *has_vocab is 0 (and spec empty) when
 * the file carries no tokenizer.ggml.tokens. */
tr_status tr_gguf_read_vocab(const tr_gguf *g, const char *name_for_errors, tr_vocab_spec *spec,
                             int *has_vocab);

/* Builds a model file from a GGUF image in memory (model_file.c): the same checks and results as
 * tr_model_file_open() on a .gguf file, without a mapping. data must outlive *out. Fuzzers and
 * tests use it; tr_model_file_close() releases it as usual. */
tr_status tr_model_file_from_gguf(const uint8_t *data, size_t len, const char *name_for_errors,
                                  tr_model_file *out);

#endif
