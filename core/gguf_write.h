/* gguf_write.h: writes GGUF v3 files, streaming the tensor data.
 *
 * A file is written in three phases, in this order:
 *   1. metadata and tensor descriptions: tr_gguf_put_* and tr_gguf_add_tensor (in memory; a tensor's
 *      offset follows from the sizes of the ones before it, each aligned to 32 bytes);
 *   2. tr_gguf_write_header: the header, the metadata, the tensor infos and the padding;
 *   3. tr_gguf_write_data once per tensor, in the order they were added, with exactly their bytes.
 * tr_gguf_writer_close finishes (or, on any earlier failure, removes) the file. Nothing of a model's
 * weights is held in memory beyond the tensor the caller is writing. */
#ifndef TR_GGUF_WRITE_H
#define TR_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "transit.h"

typedef struct tr_gguf_writer tr_gguf_writer;

tr_status tr_gguf_writer_open(const char *path, tr_gguf_writer **out);
/* Finishes the file; returns the first error of any earlier call (the file is then removed). */
tr_status tr_gguf_writer_close(tr_gguf_writer *w);

/* Metadata (phase 1). Errors are kept and reported by close. */
void tr_gguf_put_str(tr_gguf_writer *w, const char *key, const char *value);
void tr_gguf_put_u32(tr_gguf_writer *w, const char *key, uint32_t value);
void tr_gguf_put_f32(tr_gguf_writer *w, const char *key, float value);
void tr_gguf_put_bool(tr_gguf_writer *w, const char *key, int value);
void tr_gguf_put_str_array(tr_gguf_writer *w, const char *key, const char *const *values, size_t n);
void tr_gguf_put_f32_array(tr_gguf_writer *w, const char *key, const float *values, size_t n);
void tr_gguf_put_i32_array(tr_gguf_writer *w, const char *key, const int32_t *values, size_t n);

/* A tensor of ggml type ggml_type (TR_GGML_F32/F16/BF16), ne[0] innermost, nbytes of data. */
void tr_gguf_add_tensor(tr_gguf_writer *w, const char *name, uint32_t ggml_type, int ndim, const int64_t *ne,
                        size_t nbytes);

tr_status tr_gguf_write_header(tr_gguf_writer *w);
/* The data of the next tensor, exactly its nbytes. */
tr_status tr_gguf_write_data(tr_gguf_writer *w, const void *data, size_t nbytes);

#endif
