/* registry.c: the one place that knows which backends exist and creates them by name.
 *
 * The CPU backend is always linked in. A GPU backend is either linked in too (TR_HAVE_<NAME>: a
 * build with TR_BACKEND_MODULES=OFF, or the CUDA emulation) or a module, libtransit-NAME.so in
 * transit-backends/ beside libtransit.so (TR_MODULE_DIR; TRANSIT_BACKEND_DIR names another
 * directory), opened the first time that backend is asked for. The module links the GPU runtime
 * (libcuda and cuBLAS, the Vulkan loader, the OpenCL ICD loader), so a run that never asks for it
 * never maps them, and a machine without them runs on the CPU; the reason a module did not load
 * (missing, or the loader's message about its runtime) is what `transit info` and the error say. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"

typedef tr_status (*backend_create_fn)(const tr_backend_options *opt, tr_backend **out);

tr_status tr_cpu_backend_create(const tr_backend_options *opt, tr_backend **out);
#ifdef TR_HAVE_VULKAN
tr_status tr_vulkan_backend_create(const tr_backend_options *opt, tr_backend **out);
#define TR_VULKAN_CREATE tr_vulkan_backend_create
#else
#define TR_VULKAN_CREATE NULL
#endif
#ifdef TR_HAVE_CUDA
tr_status tr_cuda_backend_create(const tr_backend_options *opt, tr_backend **out);
#define TR_CUDA_CREATE tr_cuda_backend_create
#else
#define TR_CUDA_CREATE NULL
#endif
#ifdef TR_HAVE_OPENCL
tr_status tr_opencl_backend_create(const tr_backend_options *opt, tr_backend **out);
#define TR_OPENCL_CREATE tr_opencl_backend_create
#else
#define TR_OPENCL_CREATE NULL
#endif

typedef struct backend_entry {
    const char *name;
    backend_create_fn create; /* linked in; NULL: a module, if there is one */
    const char *symbol;       /* the module's entry point */
    const char *needs;        /* what building it takes, for the message when it is not there */
} backend_entry;

/* The CPU backend running only its plain reference kernels: the definition others are held to. */
static tr_status cpu_ref_create(const tr_backend_options *opt, tr_backend **out)
{
    tr_backend_options o = opt ? *opt : (tr_backend_options){0};
    o.reference = 1;
    o.n_threads = 1;
    return tr_cpu_backend_create(&o, out);
}

static const backend_entry backends[] = {
    {"cpu", tr_cpu_backend_create, NULL, NULL},
    {"cpu-ref", cpu_ref_create, NULL, NULL},
    {"vulkan", TR_VULKAN_CREATE, "tr_vulkan_backend_create", "Vulkan headers, loader and glslc"},
    {"cuda", TR_CUDA_CREATE, "tr_cuda_backend_create", "the CUDA toolkit's nvcc"},
    {"opencl", TR_OPENCL_CREATE, "tr_opencl_backend_create", "the OpenCL headers and ICD loader"},
};

/* The directory modules are looked for in: TRANSIT_BACKEND_DIR, else transit-backends/ beside the
 * file this code was loaded from (libtransit.so). Empty when this code is not libtransit.so (a
 * program linked with libtransit.a): a module would bring a second copy of the library with it. */
static void module_dir(char *dir, size_t cap, char *why, size_t why_cap)
{
    dir[0] = why[0] = '\0';
    const char *env = getenv("TRANSIT_BACKEND_DIR");
    if (env && *env) {
        snprintf(dir, cap, "%s", env);
        return;
    }
#ifdef TR_MODULE_DIR
    Dl_info info;
    if (!dladdr((void *)tr_backend_create, &info) || !info.dli_fname) {
        snprintf(why, why_cap, "cannot tell where libtransit.so is (dladdr)");
        return;
    }
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    if (strncmp(base, "libtransit.so", 13) != 0) {
        snprintf(why, why_cap, "built as a module, which needs libtransit.so, and this program has the library "
                 "linked in (%s); build with -DTR_BACKEND_MODULES=OFF for one file with every backend", base);
        return;
    }
    int len = (int)(base - info.dli_fname);
    snprintf(dir, cap, "%.*s%s", len, info.dli_fname, TR_MODULE_DIR);
#else
    snprintf(why, why_cap, "not built");
#endif
}

/* The entry point of backend e's module, opened once (modules stay loaded: the GPU runtimes they
 * link do not unload cleanly). NULL with *why set when there is none. */
static backend_create_fn module_create(const backend_entry *e, char *why, size_t why_cap)
{
    static void *handles[sizeof backends / sizeof backends[0]];
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* (contexts may be made on several threads) */
    size_t idx = (size_t)(e - backends);
    char dir[PATH_MAX], path[PATH_MAX + 64];
    pthread_mutex_lock(&lock);
    void *handle = handles[idx];
    pthread_mutex_unlock(&lock);
    if (!handle) {
        module_dir(dir, sizeof dir, why, why_cap);
        if (!dir[0]) {
            if (!strcmp(why, "not built"))
                snprintf(why, why_cap, "not built (it needs %s)", e->needs);
            return NULL;
        }
        snprintf(path, sizeof path, "%s/libtransit-%s.so", dir, e->name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            snprintf(why, why_cap, "not built: no %s (it needs %s)", path, e->needs);
            return NULL;
        }
        fclose(f);
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* (a second dlopen of the file gives the same handle) */
        if (!handle) {
            const char *err = dlerror();
            snprintf(why, why_cap, "cannot load its module: %s", err ? err : path);
            return NULL;
        }
        pthread_mutex_lock(&lock);
        if (!handles[idx])
            tr_log("registry: %s backend loaded from %s", e->name, path);
        handles[idx] = handle;
        pthread_mutex_unlock(&lock);
    }
    backend_create_fn fn;
    void *sym = dlsym(handle, e->symbol);
    memcpy(&fn, &sym, sizeof fn); /* (ISO C has no cast from object to function pointer) */
    if (!fn)
        snprintf(why, why_cap, "its module has no %s", e->symbol);
    return fn;
}

/* The create function of e, linked in or from its module; NULL with *why set. */
static backend_create_fn creator(const backend_entry *e, char *why, size_t why_cap)
{
    if (e->create)
        return e->create;
    return module_create(e, why, why_cap);
}

tr_status tr_backend_create(const char *name, const tr_backend_options *opt, tr_backend **out)
{
    if (!name || !*name)
        name = "cpu";
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(backends[i].name, name) != 0)
            continue;
        char why[PATH_MAX + 256];
        backend_create_fn create = creator(&backends[i], why, sizeof why);
        if (!create)
            return tr_fail(TR_ERR_UNSUPPORTED, "backend '%s': %s", name, why);
        return create(opt, out);
    }
    return tr_fail(TR_ERR_INVALID_ARG, "unknown backend '%s' (expected cpu, cpu-ref, vulkan, cuda or opencl)", name);
}

void tr_backend_free(tr_backend *b)
{
    if (b)
        b->iface->free(b);
}

void tr_backend_list(char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof backends / sizeof backends[0] && used < cap; i++) {
        char line[PATH_MAX + 512], why[PATH_MAX + 256];
        backend_create_fn create = creator(&backends[i], why, sizeof why);
        if (create) {
            tr_backend *b;
            tr_backend_options opt = {0};
            if (create(&opt, &b) == TR_OK) {
                b->iface->describe(b, line, sizeof line);
                tr_backend_free(b);
            } else {
                /* the backend's own reason, e.g. "cuda: unavailable: no device" */
                snprintf(line, sizeof line, "%s: unavailable: %s", backends[i].name, tr_last_error());
            }
        } else {
            snprintf(line, sizeof line, "%s: unavailable: %s", backends[i].name, why);
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s\n", line);
    }
}

tr_status tr_buffer_check_span(const tr_buffer *buf, size_t offset, size_t n, const char *what)
{
    if (offset > buf->size || n > buf->size - offset)
        return tr_fail(TR_ERR_RANGE, "%s: %s past the end of a buffer (%zu bytes at %zu of %zu)",
                       buf->backend->iface->name, what, n, offset, buf->size);
    return TR_OK;
}

tr_status tr_tensor_get(tr_backend *b, const tr_tensor *t, void *dst)
{
    if (!tr_is_contiguous(t))
        return tr_fail(TR_ERR_INVALID_ARG, "tensor '%s': reading a strided tensor", t->name);
    if (t->data && (!t->buffer || t->buffer->host)) {
        memcpy(dst, t->data, tr_nbytes(t));
        return TR_OK;
    }
    size_t off;
    const tr_tensor *r = tr_view_root_at(t, &off);
    if (!r->buffer)
        return tr_fail(TR_ERR_INVALID_ARG, "tensor '%s' has no memory", t->name);
    return b->iface->download(r->buffer, r->offset + off, dst, tr_nbytes(t));
}

tr_status tr_tensor_set(tr_backend *b, tr_tensor *t, const void *src)
{
    if (t->buffer)
        return t->buffer->backend->iface->upload(t->buffer, t->offset, src, tr_nbytes(t));
    if (!t->data)
        return tr_fail(TR_ERR_INVALID_ARG, "tensor '%s' has no memory", t->name);
    memcpy(t->data, src, tr_nbytes(t));
    return TR_OK;
}
