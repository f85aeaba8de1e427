/* registry.c: the one place that knows which backends exist and creates them by name. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "error.h"

tr_status tr_cpu_backend_create(const tr_backend_options *opt, tr_backend **out);
#ifdef TR_HAVE_VULKAN
tr_status tr_vulkan_backend_create(const tr_backend_options *opt, tr_backend **out);
#define TR_VULKAN_CREATE tr_vulkan_backend_create
#define TR_VULKAN_MISSING NULL
#else
#define TR_VULKAN_CREATE NULL
#define TR_VULKAN_MISSING "not compiled in (build with Vulkan headers, loader and glslc)"
#endif
#ifdef TR_HAVE_CUDA
tr_status tr_cuda_backend_create(const tr_backend_options *opt, tr_backend **out);
#define TR_CUDA_CREATE tr_cuda_backend_create
#define TR_CUDA_MISSING NULL
#else
#define TR_CUDA_CREATE NULL
#define TR_CUDA_MISSING "not compiled in (build with the CUDA toolkit's nvcc)"
#endif

#ifdef TR_HAVE_OPENCL
tr_status tr_opencl_backend_create(const tr_backend_options *opt, tr_backend **out);
#define TR_OPENCL_CREATE tr_opencl_backend_create
#define TR_OPENCL_MISSING NULL
#else
#define TR_OPENCL_CREATE NULL
#define TR_OPENCL_MISSING "not compiled in (build with the OpenCL headers and ICD loader)"
#endif

typedef struct backend_entry {
    const char *name;
    tr_status (*create)(const tr_backend_options *opt, tr_backend **out); /* NULL: not compiled in */
    const char *missing; /* why it is not available */
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
    {"cpu", tr_cpu_backend_create, NULL},
    {"cpu-ref", cpu_ref_create, NULL},
    {"vulkan", TR_VULKAN_CREATE, TR_VULKAN_MISSING},
    {"cuda", TR_CUDA_CREATE, TR_CUDA_MISSING},
    {"opencl", TR_OPENCL_CREATE, TR_OPENCL_MISSING},
};

tr_status tr_backend_create(const char *name, const tr_backend_options *opt, tr_backend **out)
{
    if (!name || !*name)
        name = "cpu";
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(backends[i].name, name) != 0)
            continue;
        if (!backends[i].create)
            return tr_fail(TR_ERR_UNSUPPORTED, "backend '%s': %s", name, backends[i].missing);
        return backends[i].create(opt, out);
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
        char line[4096];
        if (backends[i].create) {
            tr_backend *b;
            tr_backend_options opt = {0};
            if (backends[i].create(&opt, &b) == TR_OK) {
                b->iface->describe(b, line, sizeof line);
                tr_backend_free(b);
            } else {
                /* the backend's own reason, e.g. "cuda: compiled, no device" */
                snprintf(line, sizeof line, "%s: compiled, %s", backends[i].name, tr_last_error());
            }
        } else {
            snprintf(line, sizeof line, "%s: %s", backends[i].name, backends[i].missing);
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
