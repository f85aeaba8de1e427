/* loader_util.c: see loader_util.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "loader_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "test_util.h"

static char tmp_dir[256];

int loader_tmp_init(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/transit_loaders_XXXXXX");
    return mkdtemp(tmp_dir) != NULL;
}

const char *tmp_path(const char *rel)
{
    static char slots[8][1024];
    static int next;
    char *buf = slots[next++ & 7];
    snprintf(buf, 1024, "%s/%s", tmp_dir, rel);
    return buf;
}

void write_file(const char *path, const void *data, size_t n)
{
    if (!tr_write_file(path, data, n))
        exit(1); /* every later check would test the wrong file */
}

void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0 && !tr_file_exists(path)) {
        fprintf(stderr, "cannot create %s\n", path);
        exit(1);
    }
}

int weights_empty(const tr_model_file *f)
{
    return !f->weights && !f->maps && !f->heap_copies && f->n_weights == 0 && f->n_maps == 0 && !f->vocab.pieces;
}

void expect_fail(const char *label, const char *path, const char *mention, tr_status want)
{
    tr_model_file f;
    memset(&f, 0x5a, sizeof f); /* open must not rely on a zeroed struct */
    tr_status s = tr_model_file_open(path, &f);
    const char *e = tr_last_error();
    CHECK(s != TR_OK, "%s: opened a damaged model", label);
    if (want != TR_OK)
        CHECK(s == want, "%s: status %s, expected %s (%s)", label, tr_status_str(s), tr_status_str(want), e);
    CHECK(!strchr(e, '\n') && strstr(e, mention), "%s: error does not name '%s' on one line: %s", label, mention, e);
    CHECK(weights_empty(&f), "%s: failed open left data behind", label);
    if (tr_verbose())
        fprintf(stderr, "  %-28s %s\n", label, e);
    tr_model_file_close(&f);
}

int open_ok(const char *label, const char *path, tr_model_file *f)
{
    tr_status s = tr_model_file_open(path, f);
    CHECK(s == TR_OK, "%s: %s", label, tr_last_error());
    return s == TR_OK;
}

void truncations(const char *label, const char *path, const char *open_path, const uint8_t *data, size_t len,
                 size_t header_end)
{
    write_file(path, data, len);
    int bad = 0, tried = 0;
    size_t step = (len - header_end) / 300 + 1;
    for (size_t cut = len - 1;; cut = cut > header_end + step ? cut - step : cut - 1) {
        if (truncate(path, (off_t)cut) != 0)
            return;
        tr_model_file f;
        tr_status s = tr_model_file_open(open_path, &f);
        const char *e = tr_last_error();
        int wrong = s == TR_OK || strchr(e, '\n') || !strstr(e, path) || !weights_empty(&f);
        if (wrong && bad < 3)
            fprintf(stderr, "%s cut at %zu: status %d: %s\n", label, cut, s, e);
        bad += wrong;
        tried++;
        tr_model_file_close(&f);
        if (cut == 0)
            break;
    }
    CHECK(bad == 0, "%s: %d of %d truncations misbehaved", label, bad, tried);
}


static void remove_tree(const char *path)
{
    char cmd[1200];
    if (strncmp(path, "/tmp/transit_loaders_", 21) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}


void loader_tmp_remove(void) { remove_tree(tmp_dir); }

void put(wbuf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
