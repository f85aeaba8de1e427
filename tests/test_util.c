/* test_util.c: shared helpers for the C tests. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int tr_test_passed, tr_test_failed;

int tr_test_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, tr_test_passed, tr_test_failed);
    return tr_test_failed ? 1 : 0;
}

double tr_nmse(const float *ref, const float *got, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(got[i]))
            return INFINITY;
        if (isinf(ref[i]) || isinf(got[i])) {
            if (ref[i] != got[i])
                return INFINITY;
            continue;
        }
        double d = (double)ref[i] - (double)got[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : (num > 0 ? INFINITY : 0);
}

double tr_max_abs_diff(const float *ref, const float *got, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ref[i] - (double)got[i]);
        if (d > m || isnan(d))
            m = d;
    }
    return m;
}

static const char *join(const char *dir, const char *rel)
{
    static char slots[4][1024];
    static int next;
    char *buf = slots[next++ & 3];
    snprintf(buf, 1024, "%s/%s", dir, rel);
    return buf;
}

const char *tr_shared(const char *rel) { return join(TR_SHARED_DIR, rel); }
const char *tr_golden(const char *rel) { return join(TR_GOLDEN_DIR, rel); }

int tr_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *tr_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

void *tr_read_npy(const char *path, int *ndim, int64_t shape[4], char *kind)
{
    size_t len;
    char *buf = tr_read_file(path, &len);
    if (!buf || len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        free(buf);
        return NULL;
    }
    int major = (unsigned char)buf[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8);
        hoff = 10;
    } else {
        hlen = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8) | ((size_t)(unsigned char)buf[10] << 16);
        hoff = 12;
    }
    char *hdr = buf + hoff;
    char *descr = strstr(hdr, "'descr':");
    char *sh = strstr(hdr, "'shape':");
    if (!descr || !sh || strstr(hdr, "'fortran_order': True")) {
        free(buf);
        return NULL;
    }
    *kind = strstr(descr, "<f4") ? 'f' : (strstr(descr, "<i4") ? 'i' : '?');
    char *p = strchr(sh, '(') + 1;
    *ndim = 0;
    size_t count = 1;
    while (*p && *p != ')' && *ndim < 4) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        shape[*ndim] = strtoll(p, &p, 10);
        count *= (size_t)shape[*ndim];
        (*ndim)++;
    }
    size_t off = hoff + hlen;
    if (*kind == '?' || off + count * 4 > len) {
        free(buf);
        return NULL;
    }
    void *data = malloc(count * 4 + 1);
    memcpy(data, buf + off, count * 4);
    free(buf);
    return data;
}
