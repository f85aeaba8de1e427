/* cl_backend.c: the OpenCL backend's tr_backend_iface table, its buffers, and its constructor, which
 * the registry (backends/registry.c) calls when the library is built with TR_HAVE_OPENCL.
 *
 * Buffers are cl_mem objects of at most the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE: a larger request
 * is an error naming both sizes (model.c splits weights below max_buffer_size, and a KV cache or an
 * activation arena beyond it is refused, never wrapped). buffer_from_host is left NULL: the weights
 * are copied into device buffers, as on Vulkan. Reads and writes are blocking. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "parity.h"
#include "cl_internal.h"

tr_status tr_opencl_backend_create(const tr_backend_options *opt, tr_backend **out);

tr_status cl_buffer_alloc(tr_backend *b, size_t size, tr_buffer **out)
{
    cl_ctx *c = cl_of(b);
    *out = NULL;
    size_t rounded = cl_align_up(size ? size : 16, 16);
    if (rounded > c->lim.max_alloc)
        return tr_fail(TR_ERR_NOMEM, "opencl: a buffer of %zu bytes exceeds %s's largest allocation (%llu bytes, "
                                     "CL_DEVICE_MAX_MEM_ALLOC_SIZE)",
                       size, c->device_name, (unsigned long long)c->lim.max_alloc);
    tr_buffer *buf = calloc(1, sizeof *buf);
    cl_buf *cb = calloc(1, sizeof *cb);
    if (!buf || !cb) {
        free(buf);
        free(cb);
        return tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
    }
    cl_int err;
    cb->mem = clCreateBuffer(c->ctx, CL_MEM_READ_WRITE, rounded, NULL, &err);
    cb->size = rounded;
    if (err != CL_SUCCESS) {
        free(buf);
        free(cb);
        return tr_fail(TR_ERR_NOMEM, "opencl: allocating %zu bytes on %s: %s", size, c->device_name, cl_error_name(err));
    }
    *buf = (tr_buffer){.backend = b, .host = NULL, .size = size, .impl = cb};
    *out = buf;
    return TR_OK;
}

void cl_buffer_free(tr_buffer *buf)
{
    if (!buf)
        return;
    cl_buf *cb = cl_buf_of(buf);
    if (cb && cb->mem)
        clReleaseMemObject(cb->mem);
    free(cb);
    free(buf);
}

tr_status cl_write(cl_ctx *c, const tr_buffer *buf, size_t off, const void *src, size_t n)
{
    if (!n)
        return TR_OK;
    return cl_check(clEnqueueWriteBuffer(c->queue, cl_buf_of(buf)->mem, CL_TRUE, off, n, src, 0, NULL, NULL),
                    "clEnqueueWriteBuffer");
}

tr_status cl_read(cl_ctx *c, const tr_buffer *buf, size_t off, void *dst, size_t n)
{
    if (!n)
        return TR_OK;
    return cl_check(clEnqueueReadBuffer(c->queue, cl_buf_of(buf)->mem, CL_TRUE, off, n, dst, 0, NULL, NULL),
                    "clEnqueueReadBuffer");
}

static tr_status cl_upload(tr_buffer *buf, size_t offset, const void *src, size_t n)
{
    TR_TRY(tr_buffer_check_span(buf, offset, n, "upload"));
    return cl_write(cl_of(buf->backend), buf, offset, src, n);
}

static tr_status cl_download(tr_buffer *buf, size_t offset, void *dst, size_t n)
{
    TR_TRY(tr_buffer_check_span(buf, offset, n, "download"));
    return cl_read(cl_of(buf->backend), buf, offset, dst, n);
}

static void cl_free(tr_backend *b)
{
    cl_ctx *c = cl_of(b);
    if (c->queue)
        clFinish(c->queue);
    cl_buffer_free(c->arena);
    cl_buffer_free(c->inputs);
    cl_programs_free(c);
    cl_device_close(c);
    free(c->staging);
    tr_host_inputs_free(&c->in);
    free(c);
}

static void cl_describe(tr_backend *b, char *buf, size_t cap) { cl_device_describe(cl_of(b), buf, cap); }

static bool cl_supports_op(tr_backend *b, const tr_tensor *node)
{
    const char *why;
    return cl_op_supported(cl_of(b), node, &why);
}

static tr_status cl_graph(tr_backend *b, tr_graph *g) { return cl_graph_compute(cl_of(b), g); }

static tr_status cl_sync(tr_backend *b) { return cl_check(clFinish(cl_of(b)->queue), "clFinish"); }

static void cl_memory(tr_backend *b, size_t *activations, size_t *workspace)
{
    cl_ctx *c = cl_of(b);
    *activations = c->arena ? c->arena->size : 0;
    *workspace = c->inputs ? c->inputs->size : 0;
}

static size_t cl_max_buffer(tr_backend *b) { return (size_t)cl_of(b)->lim.max_alloc; }

static const tr_backend_iface cl_iface = {
    .name = "opencl",
    .free = cl_free,
    .describe = cl_describe,
    .supports_op = cl_supports_op,
    .buffer_alloc = cl_buffer_alloc,
    .buffer_from_host = NULL,
    .buffer_free = cl_buffer_free,
    .upload = cl_upload,
    .download = cl_download,
    .graph_compute = cl_graph,
    .synchronize = cl_sync,
    .memory = cl_memory,
    .max_buffer_size = cl_max_buffer,
};

tr_status tr_opencl_backend_create(const tr_backend_options *opt, tr_backend **out)
{
    *out = NULL;
    cl_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
    c->base.iface = &cl_iface;
    c->base.impl = c;
    tr_status s = cl_device_open(c, opt ? opt->device : 0);
    if (s == TR_OK)
        s = cl_programs_init(c);
    if (s != TR_OK) {
        cl_free(&c->base);
        return s;
    }
    tr_fault_read("opencl", &c->fault, &c->fault_diff);
    char line[4096];
    cl_device_describe(c, line, sizeof line);
    tr_log("%s", line);
    *out = &c->base;
    return TR_OK;
}
