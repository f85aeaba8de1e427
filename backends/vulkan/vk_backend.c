/* vk_backend.c: the Vulkan backend's tr_backend_iface table and its constructor, which the registry
 * (backends/registry.c) calls when the library is built with TR_HAVE_VULKAN.
 *
 * buffer_from_host is left NULL: model.c then uploads the weights into one device buffer. Every call
 * that reaches the device is synchronous. With the validation layer on, a validation message turns
 * the call that follows it into an error carrying the message. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "parity.h"
#include "vk_internal.h"

tr_status tr_vulkan_backend_create(const tr_backend_options *opt, tr_backend **out);

static void vk_free(tr_backend *b)
{
    vk_ctx *c = vk_of(b);
    if (c->dev) {
        vkDeviceWaitIdle(c->dev);
        if (c->arena)
            vk_tr_buffer_free(c->arena);
        if (c->inputs)
            vk_tr_buffer_free(c->inputs);
        if (c->scratch)
            vk_tr_buffer_free(c->scratch);
        vk_buffer_destroy(c, &c->input_staging);
        vk_pipelines_free(c);
        vk_cmd_free(c);
        vk_memory_free(c);
    }
    vk_device_close(c);
    tr_host_inputs_free(&c->in);
    free(c);
}

static void vk_describe(tr_backend *b, char *buf, size_t cap) { vk_device_describe(vk_of(b), buf, cap); }

static bool vk_supports_op(tr_backend *b, const tr_tensor *node)
{
    const char *why;
    return vk_op_supported(vk_of(b), node, &why);
}

static tr_status vk_upload(tr_buffer *buf, size_t offset, const void *src, size_t n)
{
    TR_TRY(tr_buffer_check_span(buf, offset, n, "upload"));
    return n ? vk_write(vk_of(buf->backend), vk_buf(buf), offset, src, n) : TR_OK;
}

static tr_status vk_download(tr_buffer *buf, size_t offset, void *dst, size_t n)
{
    TR_TRY(tr_buffer_check_span(buf, offset, n, "download"));
    return n ? vk_read(vk_of(buf->backend), vk_buf(buf), offset, dst, n) : TR_OK;
}

static tr_status vk_graph(tr_backend *b, tr_graph *g) { return vk_graph_compute(vk_of(b), g); }

static tr_status vk_sync(tr_backend *b)
{
    vk_ctx *c = vk_of(b);
    VkResult r = vkQueueWaitIdle(c->queue);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkQueueWaitIdle failed: %s", vk_result_name(r));
    return vk_check_validation(c);
}

static void vk_memory(tr_backend *b, size_t *activations, size_t *workspace)
{
    vk_ctx *c = vk_of(b);
    *activations = c->arena ? c->arena->size : 0;
    *workspace = c->inputs ? c->inputs->size : 0;
}

/* maxMemoryAllocationSize: 4 GB on NVIDIA's driver, where a 7B f16 model's weights are 13.5 GB */
static size_t vk_max_buffer(tr_backend *b) { return (size_t)vk_of(b)->lim.max_alloc; }

static const tr_backend_iface vk_iface = {
    .name = "vulkan",
    .free = vk_free,
    .describe = vk_describe,
    .supports_op = vk_supports_op,
    .buffer_alloc = vk_tr_buffer_alloc,
    .buffer_from_host = NULL,
    .buffer_free = vk_tr_buffer_free,
    .upload = vk_upload,
    .download = vk_download,
    .graph_compute = vk_graph,
    .synchronize = vk_sync,
    .memory = vk_memory,
    .bandwidth = vk_bandwidth,
    .max_buffer_size = vk_max_buffer,
};

tr_status tr_vulkan_backend_create(const tr_backend_options *opt, tr_backend **out)
{
    (void)opt; /* threads and reference mode are CPU options */
    *out = NULL;
    vk_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
    c->base.iface = &vk_iface;
    c->base.impl = c;
    tr_status s = vk_device_open(c);
    if (s == TR_OK)
        s = vk_memory_init(c);
    if (s == TR_OK)
        s = vk_pipelines_init(c);
    if (s == TR_OK)
        s = vk_cmd_init(c);
    if (s == TR_OK)
        s = vk_check_validation(c);
    if (s != TR_OK) {
        vk_free(&c->base);
        return s;
    }
    tr_fault_read("vulkan", &c->fault, &c->fault_diff);
    char line[512];
    vk_device_describe(c, line, sizeof line);
    tr_log("%s", line);
    *out = &c->base;
    return TR_OK;
}
