/* test_util.h: a tiny test harness. CHECK records a failure and goes on; tests end with
 * tr_test_finish(), which prints "N passed, M failed" and returns the exit status. */
#ifndef TR_TEST_UTIL_H
#define TR_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int tr_test_passed, tr_test_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            tr_test_passed++;                                              \
        } else {                                                           \
            tr_test_failed++;                                              \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

int tr_test_finish(const char *name);

/* NMSE = sum((a-b)^2) / sum(a^2) in double; returns INFINITY if a NaN or one-sided inf appears. */
double tr_nmse(const float *ref, const float *got, size_t n);
double tr_max_abs_diff(const float *ref, const float *got, size_t n);

/* Path under ../shared or tests/golden, in a static buffer per call slot (0..3). */
const char *tr_shared(const char *rel);
const char *tr_golden(const char *rel);
int tr_file_exists(const char *path);

/* Reads a whole file (NUL-terminated copy); returns NULL if unreadable. Caller frees. */
char *tr_read_file(const char *path, size_t *len);
/* Reads a float32 or int32 .npy (C order); returns data (caller frees) and the shape. */
void *tr_read_npy(const char *path, int *ndim, int64_t shape[4], char *kind /* 'f' or 'i' */);

#endif
