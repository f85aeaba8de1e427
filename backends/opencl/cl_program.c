/* cl_program.c: programs built by the driver at run time from the OpenCL C sources embedded in the
 * library (backends/opencl/kernels/, embedded by embed_cl.cmake), and kernels by name.
 *
 * Source sets: "main" (common, quant, elementwise and weight kernels: one program for every op but
 * attention) and "attention" (built once per head dimension and variant, whose -D options size its
 * private arrays). A set's sources are joined in order into one string.
 *
 * Program cache: compiling OpenCL C takes the driver from tenths of a second to seconds per
 * program, on every run. A built program's binary is kept in the cache directory under a name that
 * hashes everything the binary depends on: the platform, device and driver version, the source
 * text and the build options. A binary the driver refuses (another driver version that kept the
 * same strings, a damaged file) is rebuilt from source and rewritten; a cache that cannot be
 * written is only a slower start. Files are written to a temporary name and renamed, so a reader
 * never sees half a binary.
 *
 * A source that fails to build is an error carrying the driver's build log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "cl_internal.h"
#include "cl_sources.h"

static const char *const main_set[] = {"common", "quant", "elementwise", "weights", NULL};
static const char *const attention_set[] = {"common", "attention", NULL};

static const char *source_text(const char *name)
{
    for (int i = 0; i < tr_cl_n_sources; i++)
        if (!strcmp(tr_cl_sources[i].name, name))
            return tr_cl_sources[i].text;
    return NULL;
}

/* The set's sources joined (malloc'd), with the debug source after "main"'s. */
static char *join_sources(const cl_ctx *c, const char *set)
{
    const char *const *names = !strcmp(set, "main") ? main_set : !strcmp(set, "attention") ? attention_set : NULL;
    if (!names) {
        tr_fail(TR_ERR_INVALID_ARG, "opencl: no source set '%s'", set);
        return NULL;
    }
    size_t total = 1;
    for (int i = 0; names[i]; i++) {
        const char *t = source_text(names[i]);
        if (!t) {
            tr_fail(TR_ERR_BACKEND, "opencl: kernel source '%s.cl' is not embedded", names[i]);
            return NULL;
        }
        total += strlen(t) + 1;
    }
    const char *extra = !strcmp(set, "main") && c->dbg.extra_source ? c->dbg.extra_source : "";
    total += strlen(extra) + 1;
    char *all = malloc(total);
    if (!all) {
        tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
        return NULL;
    }
    size_t used = 0;
    for (int i = 0; names[i]; i++)
        used += (size_t)sprintf(all + used, "%s\n", source_text(names[i]));
    sprintf(all + used, "%s\n", extra);
    return all;
}

/* ---- the cache on disk ---------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* a separator, so that ("ab", "c") != ("a", "bc") */
}

static void cache_path(const cl_ctx *c, const char *source, const char *options, char *out, size_t cap)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, c->platform_name);
    h = fnv1a(h, c->device_name);
    h = fnv1a(h, c->driver);
    h = fnv1a(h, c->version);
    h = fnv1a(h, source);
    h = fnv1a(h, options);
    snprintf(out, cap, "%s/%016llx.bin", c->cache_dir, (unsigned long long)h);
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            int ok = mkdir(path, 0755) == 0 || errno == EEXIST;
            *p = '/';
            if (!ok)
                return -1;
        }
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static void choose_cache_dir(cl_ctx *c)
{
    const char *env = getenv("TRANSIT_OPENCL_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    c->cache_dir[0] = '\0';
    if (env && (!*env || !strcmp(env, "off")))
        return;
    if (env)
        snprintf(c->cache_dir, sizeof c->cache_dir, "%s", env);
    else if (xdg && *xdg)
        snprintf(c->cache_dir, sizeof c->cache_dir, "%s/transit/opencl", xdg);
    else if (home && *home)
        snprintf(c->cache_dir, sizeof c->cache_dir, "%s/.cache/transit/opencl", home);
    if (c->cache_dir[0] && mkdirs(c->cache_dir) != 0) {
        tr_log("opencl: program cache %s cannot be made (%s): programs are built on every run", c->cache_dir,
               strerror(errno));
        c->cache_dir[0] = '\0';
    }
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *data = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len > 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)len)) != NULL &&
        fread(data, 1, (size_t)len, f) != (size_t)len) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *n = data ? (size_t)len : 0;
    return data;
}

static void save_binary(cl_program prog, const char *path)
{
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0)
        return;
    unsigned char *bin = malloc(size);
    if (!bin)
        return;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = NULL;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS && (f = fopen(tmp, "wb"))) {
        int ok = fwrite(bin, 1, size, f) == size;
        ok = fclose(f) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) {
            tr_log("opencl: cannot write the program cache %s (%s)", path, strerror(errno));
            remove(tmp);
        }
    }
    free(bin);
}

/* ---- building ------------------------------------------------------------------------------- */

static tr_status build_log_error(cl_ctx *c, cl_program prog, const char *set, const char *options, cl_int err)
{
    size_t n = 0;
    clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *log = malloc(n + 1);
    if (log) {
        log[0] = '\0';
        clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
        log[n] = '\0';
    }
    tr_status s = tr_fail(TR_ERR_BACKEND, "opencl: building the '%s' kernels (options '%s') failed on %s: %s; the "
                                          "driver's build log:\n%s",
                          set, options, c->device_name, cl_error_name(err), log && *log ? log : "(empty)");
    free(log);
    return s;
}

static tr_status build(cl_ctx *c, const char *set, const char *options, cl_program *out)
{
    char *source = join_sources(c, set);
    if (!source)
        return TR_ERR_BACKEND;
    char path[600] = "";
    cl_int err;
    cl_program prog = NULL;
    if (c->cache_dir[0]) {
        cache_path(c, source, options, path, sizeof path);
        size_t n = 0;
        unsigned char *bin = read_all(path, &n);
        if (bin) {
            const unsigned char *bins[1] = {bin};
            cl_int status;
            prog = clCreateProgramWithBinary(c->ctx, 1, &c->device, &n, bins, &status, &err);
            if (err != CL_SUCCESS || status != CL_SUCCESS || clBuildProgram(prog, 1, &c->device, options, NULL, NULL)) {
                tr_log("opencl: cached program %s refused by the driver: rebuilding it", path);
                if (prog)
                    clReleaseProgram(prog);
                prog = NULL;
            }
            free(bin);
        }
    }
    if (!prog) {
        const char *src = source;
        prog = clCreateProgramWithSource(c->ctx, 1, &src, NULL, &err);
        tr_status s = cl_check(err, "clCreateProgramWithSource");
        if (s == TR_OK && (err = clBuildProgram(prog, 1, &c->device, options, NULL, NULL)) != CL_SUCCESS)
            s = build_log_error(c, prog, set, options, err);
        if (s != TR_OK) {
            if (prog)
                clReleaseProgram(prog);
            free(source);
            return s;
        }
        if (path[0])
            save_binary(prog, path);
    }
    free(source);
    *out = prog;
    return TR_OK;
}

/* The index of the program with this key ("set|options"), built on first use; -1 on failure. */
static int program_get(cl_ctx *c, const char *key, const char *set, const char *options)
{
    for (int i = 0; i < c->n_progs; i++)
        if (!strcmp(c->progs[i].key, key))
            return i;
    if (c->n_progs == c->cap_progs) {
        int nc = c->cap_progs ? 2 * c->cap_progs : 16;
        cl_prog *np = realloc(c->progs, (size_t)nc * sizeof *np);
        if (!np) {
            tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
            return -1;
        }
        c->progs = np;
        c->cap_progs = nc;
    }
    cl_program prog;
    if (build(c, set, options, &prog) != TR_OK)
        return -1;
    cl_prog *p = &c->progs[c->n_progs];
    snprintf(p->key, sizeof p->key, "%s", key);
    p->prog = prog;
    return c->n_progs++;
}

cl_kern *cl_kernel_get(cl_ctx *c, const char *set, const char *options, const char *name)
{
    options = options ? options : "";
    char key[192];
    snprintf(key, sizeof key, "%s|%s", set, options);
    for (int i = 0; i < c->n_kerns; i++)
        if (!strcmp(c->kerns[i].name, name) && !strcmp(c->progs[c->kerns[i].prog].key, key))
            return &c->kerns[i];
    int p = program_get(c, key, set, options);
    if (p < 0)
        return NULL;
    if (c->n_kerns == c->cap_kerns) {
        int nc = c->cap_kerns ? 2 * c->cap_kerns : 64;
        cl_kern *nk = realloc(c->kerns, (size_t)nc * sizeof *nk);
        if (!nk) {
            tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
            return NULL;
        }
        c->kerns = nk;
        c->cap_kerns = nc;
    }
    cl_int err;
    cl_kernel k = clCreateKernel(c->progs[p].prog, name, &err);
    if (err != CL_SUCCESS) {
        tr_fail(TR_ERR_BACKEND, "opencl: kernel '%s' of the '%s' programs: %s", name, set, cl_error_name(err));
        return NULL;
    }
    size_t wg = 0;
    clGetKernelWorkGroupInfo(k, c->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    if (wg < CL_WG) {
        clReleaseKernel(k);
        tr_fail(TR_ERR_UNSUPPORTED, "opencl: kernel '%s' can run only %zu work-items per group on %s (needs %d)", name,
                wg, c->device_name, CL_WG);
        return NULL;
    }
    cl_kern *out = &c->kerns[c->n_kerns++];
    *out = (cl_kern){.prog = p, .k = k};
    snprintf(out->name, sizeof out->name, "%s", name);
    return out;
}

tr_status cl_programs_init(cl_ctx *c)
{
    choose_cache_dir(c);
    return TR_OK;
}

void cl_programs_free(cl_ctx *c)
{
    for (int i = 0; i < c->n_kerns; i++)
        clReleaseKernel(c->kerns[i].k);
    for (int i = 0; i < c->n_progs; i++)
        clReleaseProgram(c->progs[i].prog);
    free(c->kerns);
    free(c->progs);
}
