/* mapped_file.c: read-only mappings of model files, plus the small-file and message helpers the
 * loaders share. Weights are never copied on load: they stay in these mappings (the page cache). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup, O_CLOEXEC under -std=c11 */
#endif
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "model_file.h"

tr_status tr_map_file(const char *path, tr_mapping *out)
{
    out->addr = NULL;
    out->size = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused as not regular. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return tr_fail(TR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tr_fail(TR_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return tr_fail(TR_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tr_fail(TR_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) { /* mmap of length 0 is an error; an empty file is simply empty */
        close(fd);
        return TR_OK;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return tr_fail(TR_ERR_IO, "%s: file of %lld bytes is too large to map", path, (long long)st.st_size);
    }
    void *addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (addr == MAP_FAILED)
        return tr_fail(TR_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size, strerror(e));
    out->addr = addr;
    out->size = (size_t)st.st_size;
    return TR_OK;
}

void tr_unmap(tr_mapping *m)
{
    if (m && m->addr && m->size)
        munmap(m->addr, m->size);
    if (m) {
        m->addr = NULL;
        m->size = 0;
    }
}

tr_status tr_read_small_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return tr_fail(TR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tr_fail(TR_ERR_IO, "%s: not a regular file", path);
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return tr_fail(TR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return tr_fail(TR_ERR_FORMAT, "%s: file of %lld bytes is larger than the %zu bytes allowed", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    if (got != n) {
        free(buf);
        return tr_fail(TR_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return TR_OK;
}

int tr_is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tr_is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *tr_quote(const void *s, size_t n, char *buf, size_t cap)
{
    const unsigned char *p = s;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (o + 5 + 4 > cap) { /* room for one escape plus "..." and NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '"' && c != '\\') {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, cap - o, "\\x%02x", c);
            o += 4;
        }
    }
    buf[o] = '\0';
    return buf;
}
