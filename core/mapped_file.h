/* mapped_file.h: small file helpers shared by the model loaders (implemented in mapped_file.c).
 *
 * tr_map_file() / tr_unmap() themselves are declared in model_file.h, which is what other layers use;
 * this header is internal: the loaders (gguf.c, safetensors.c, hf_config.c, model_file.c) and the
 * command line's prompt-file reader use it. */
#ifndef TR_MAPPED_FILE_H
#define TR_MAPPED_FILE_H

#include <stddef.h>

#include "transit.h"

/* Reads a whole (small) file into a NUL-terminated heap buffer that the caller frees. Files larger
 * than max_bytes are refused with TR_ERR_FORMAT, unreadable ones with TR_ERR_IO. */
tr_status tr_read_small_file(const char *path, size_t max_bytes, char **out, size_t *len);

/* 1 if path names a regular file (following links), 0 otherwise. */
int tr_is_regular_file(const char *path);
/* 1 if path names a directory. */
int tr_is_directory(const char *path);

/* Writes s[0..n) into buf (capacity cap >= 8) as a printable one-line excerpt for an error message:
 * bytes outside printable ASCII (and quotes and backslashes) become \xNN, and long strings are cut
 * with "...". File content must pass through this before it lands in tr_last_error(). Returns buf. */
const char *tr_quote(const void *s, size_t n, char *buf, size_t cap);

#endif
