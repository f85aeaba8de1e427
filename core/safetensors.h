/* safetensors.h: the safetensors container, parsed from memory, and the index of a sharded
 * checkpoint (model.safetensors.index.json).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data; offsets count from the end of the header. tr_safetensors_parse() checks every field's
 * JSON type, that each tensor's byte range matches its shape and dtype, lies inside the file and
 * overlaps no other. Shapes are reversed into ne[] (ne[0] innermost), as GGUF writes them.
 *
 * Tensors whose dtype is valid safetensors but not F32/F16/BF16 (an I64 buffer, say) are kept with
 * dtype -1 and their dtype name, so a checkpoint carrying such an unused extra tensor still loads;
 * model_file.c refuses them only where a weight is needed. */
#ifndef TR_SAFETENSORS_H
#define TR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "transit.h"

#define TR_SAFETENSORS_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct tr_st_tensor {
    char *name;          /* as in the header (NUL-terminated copy) */
    int dtype;           /* a tr_dtype, or -1 for a dtype transit does not compute with */
    char dtype_name[12]; /* as written: "F32", "I64", ... */
    int ndim;            /* 0..4 (0: a scalar) */
    int64_t ne[4];       /* reversed shape: ne[0] innermost; unused dims are 1 */
    const uint8_t *data; /* inside the caller's buffer (any alignment) */
    size_t nbytes;
} tr_st_tensor;

typedef struct tr_safetensors {
    tr_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
    size_t data_offset;    /* 8 + header length */
} tr_safetensors;

/* Parses data[0..len); pointers refer into data, which must outlive *out. On failure *out is empty. */
tr_status tr_safetensors_parse(const uint8_t *data, size_t len, const char *name_for_errors, tr_safetensors *out);
void tr_safetensors_free(tr_safetensors *st);
const tr_st_tensor *tr_safetensors_find(const tr_safetensors *st, const char *name);

/* model.safetensors.index.json: weight_map {tensor name: shard file name}. Shard names are checked
 * to be plain file names (no '/', no "..", not empty). */
typedef struct tr_st_index_entry {
    char *tensor;
    char *shard;
} tr_st_index_entry;

typedef struct tr_st_index {
    tr_st_index_entry *entries;
    size_t n;
} tr_st_index;

tr_status tr_st_index_parse(const char *text, size_t len, const char *name_for_errors, tr_st_index *out);
void tr_st_index_free(tr_st_index *idx);

#endif
