/* error.c: the thread-local last-error text and the status strings. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];
static int verbose_flag = -1;

tr_status tr_fail(tr_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

tr_status tr_fail_prefix(tr_status code, const char *prefix)
{
    size_t lp = strlen(prefix) + 2, le = strlen(last_error);
    if (lp >= sizeof last_error)
        lp = sizeof last_error - 1;
    if (lp + le >= sizeof last_error)
        le = sizeof last_error - 1 - lp;
    memmove(last_error + lp, last_error, le);
    memcpy(last_error, prefix, lp - 2);
    memcpy(last_error + lp - 2, ": ", 2);
    last_error[lp + le] = '\0';
    return code;
}

const char *tr_last_error(void) { return last_error; }

void tr_clear_error(void) { last_error[0] = '\0'; }

const char *tr_status_str(tr_status s)
{
    switch (s) {
    case TR_OK: return "ok";
    case TR_ERR_INVALID_ARG: return "invalid argument";
    case TR_ERR_IO: return "i/o error";
    case TR_ERR_FORMAT: return "malformed file";
    case TR_ERR_UNSUPPORTED: return "not supported";
    case TR_ERR_NOMEM: return "out of memory";
    case TR_ERR_BACKEND: return "backend error";
    case TR_ERR_RANGE: return "out of range";
    }
    return "unknown status";
}

void tr_set_verbose(int on) { verbose_flag = on; }

int tr_verbose(void)
{
    if (verbose_flag < 0) {
        const char *e = getenv("TRANSIT_VERBOSE");
        verbose_flag = e && *e && strcmp(e, "0") != 0;
    }
    return verbose_flag;
}

void tr_log(const char *fmt, ...)
{
    if (!tr_verbose())
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("transit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
