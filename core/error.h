/* error.h: how every layer of transit reports a failure.
 *
 * A failing function returns a negative tr_status and leaves a one-line message in a thread-local
 * buffer, shaped "<file or object>: <what is wrong>". tr_fail() does both in one call, so the idiom is
 *     if (n > size) return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' runs past the end", path, name);
 * The buffer is per thread so that two threads loading two models never see each other's errors. */
#ifndef TR_ERROR_H
#define TR_ERROR_H

#include "transit.h"

#if defined(__GNUC__)
#define TR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TR_PRINTF(a, b)
#endif

/* Records the message (printf-style) as the thread's last error and returns code. */
tr_status tr_fail(tr_status code, const char *fmt, ...) TR_PRINTF(2, 3);

/* Prefixes the current last error with "<prefix>: " (for adding the file name one level up). */
tr_status tr_fail_prefix(tr_status code, const char *prefix);

/* Verbose logging to stderr, on when TRANSIT_VERBOSE is set or tr_set_verbose(1) was called. */
void tr_log(const char *fmt, ...) TR_PRINTF(1, 2);
int tr_verbose(void);

#define TR_TRY(expr)                   \
    do {                               \
        tr_status tr_try_s_ = (expr);  \
        if (tr_try_s_ != TR_OK)        \
            return tr_try_s_;          \
    } while (0)

#endif
