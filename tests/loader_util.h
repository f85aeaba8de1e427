/* loader_util.h: what the loader tests share: a scratch directory, file writers, and the checks
 * that a damaged model fails cleanly (one line naming the file, nothing left behind). */
#ifndef TR_LOADER_UTIL_H
#define TR_LOADER_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "model_file.h"
#include "transit.h"

/* Creates /tmp/transit_loaders_XXXXXX (0 on failure). */
int loader_tmp_init(void);
void loader_tmp_remove(void);
const char *tmp_path(const char *rel); /* a path inside it (8 rotating static buffers) */
void write_file(const char *path, const void *data, size_t n);
void make_dir(const char *path);
int weights_empty(const tr_model_file *f);
/* Opening path must fail (with status want, if want != TR_OK) with a one-line error that mentions
 * `mention`, and leave the struct empty. */
void expect_fail(const char *label, const char *path, const char *mention, tr_status want);
int open_ok(const char *label, const char *path, tr_model_file *f);
/* Writes data to path, then shrinks it to each cut in turn (largest first: ~300 cuts through the
 * data, then every offset of the header) and opens open_path, which must fail cleanly naming path. */
void truncations(const char *label, const char *path, const char *open_path, const uint8_t *data, size_t len,
                 size_t header_end);

/* A growing byte buffer, for writing files with one chosen defect. */
typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;
void put(wbuf *b, const void *src, size_t n);

#endif
