/* out_file.c: write to a temporary name, rename when complete (out_file.h). */
#include "out_file.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

tr_status tr_out_open(tr_out_file *o, const char *path, const char *mode)
{
    memset(o, 0, sizeof *o);
    if (strlen(path) >= sizeof o->path)
        return tr_fail(TR_ERR_INVALID_ARG, "%.64s...: the path is too long", path);
    snprintf(o->path, sizeof o->path, "%s", path);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp-%ld", path, (long)getpid());
    o->f = fopen(o->tmp, mode);
    if (!o->f)
        return tr_fail(TR_ERR_IO, "%s: cannot create the file: %s", path, strerror(errno));
    return TR_OK;
}

tr_status tr_out_commit(tr_out_file *o)
{
    if (!o->f)
        return tr_fail(TR_ERR_IO, "%s: the file is not open", o->path);
    int err = 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        err = errno ? errno : EIO;
    if (fclose(o->f) != 0 && !err)
        err = errno ? errno : EIO;
    o->f = NULL;
    if (!err && rename(o->tmp, o->path) != 0)
        err = errno;
    if (err) {
        remove(o->tmp);
        return tr_fail(TR_ERR_IO, "%s: writing failed: %s (nothing was left there)", o->path, strerror(err));
    }
    return TR_OK;
}

void tr_out_abort(tr_out_file *o)
{
    if (o->f)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp[0])
        remove(o->tmp);
}
