/* out_file.h: files transit writes (quantize and convert's GGUF, eval's logits, plots) go to a
 * temporary name beside their destination and are renamed over it only when every byte is written
 * and closed: a failed write (a full disk, a size limit, a missing directory) leaves no truncated
 * file behind, and the error carries the system's reason (strerror). */
#ifndef TR_OUT_FILE_H
#define TR_OUT_FILE_H

#include <stdio.h>

#include "transit.h"

typedef struct tr_out_file {
    FILE *f;
    char path[4096]; /* the destination */
    char tmp[4160];  /* where the bytes go until commit */
} tr_out_file;

/* Opens a temporary file in path's directory (mode "wb" or "w"). */
tr_status tr_out_open(tr_out_file *o, const char *path, const char *mode);
/* Flushes, closes and renames onto path; on any failure removes the temporary file. */
tr_status tr_out_commit(tr_out_file *o);
/* Closes and removes the temporary file (nothing is written to path). */
void tr_out_abort(tr_out_file *o);

#endif
