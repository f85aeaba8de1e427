/* vk_memory.c: device buffers and their memory; upload and download through a staging buffer.
 *
 * Every tr_buffer of this backend is one VkBuffer in its own allocation, in a DEVICE_LOCAL memory
 * type where the device has one, usable as a storage buffer and as a copy source and destination.
 * A buffer may be larger than maxStorageBufferRange: shaders see sub-ranges of it (vk_ops.c), and
 * only maxMemoryAllocationSize bounds it. tr_buffer.host stays NULL (the memory is not assumed to be
 * host-visible), so tensors on this backend have data == NULL and are read with download.
 *
 * Transfers go through one host-visible, coherent staging buffer of STAGING_BYTES, in pieces; each
 * piece is one command buffer, submitted and waited for, so upload and download are synchronous. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "vk_internal.h"

#define STAGING_BYTES ((size_t)16 << 20)

static int find_type(const vk_ctx *c, uint32_t bits, VkMemoryPropertyFlags need, VkMemoryPropertyFlags want)
{
    int fallback = -1;
    for (uint32_t i = 0; i < c->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = c->mem_props.memoryTypes[i].propertyFlags;
        if (!(bits & (1u << i)) || (f & need) != need)
            continue;
        if ((f & want) == want)
            return (int)i;
        if (fallback < 0)
            fallback = (int)i;
    }
    return fallback;
}

tr_status vk_buffer_create(vk_ctx *c, size_t size, int host_visible, vk_buffer *out)
{
    memset(out, 0, sizeof *out);
    VkDeviceSize bytes = vk_align_up(size ? size : 16, 16);
    if (bytes > c->lim.max_alloc)
        return tr_fail(TR_ERR_NOMEM, "vulkan: a buffer of %llu bytes exceeds the device's maxMemoryAllocationSize (%llu)",
                       (unsigned long long)bytes, (unsigned long long)c->lim.max_alloc);
    VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = bytes,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(c->dev, &bi, NULL, &out->buf);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateBuffer (%llu bytes) failed: %s", (unsigned long long)bytes,
                       vk_result_name(r));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, out->buf, &req);
    VkMemoryPropertyFlags need = host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT : 0;
    VkMemoryPropertyFlags want = host_visible ? VK_MEMORY_PROPERTY_HOST_CACHED_BIT : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    int type = find_type(c, req.memoryTypeBits, need, want);
    if (type < 0) {
        vkDestroyBuffer(c->dev, out->buf, NULL);
        out->buf = VK_NULL_HANDLE;
        return tr_fail(TR_ERR_BACKEND, "vulkan: no %s memory type for a buffer", host_visible ? "host-visible" : "device");
    }
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)type,
    };
    r = vkAllocateMemory(c->dev, &ai, NULL, &out->mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, out->buf, NULL);
        out->buf = VK_NULL_HANDLE;
        return tr_fail(r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? TR_ERR_NOMEM : TR_ERR_BACKEND,
                       "vulkan: vkAllocateMemory (%llu bytes) failed: %s", (unsigned long long)req.size,
                       vk_result_name(r));
    }
    r = vkBindBufferMemory(c->dev, out->buf, out->mem, 0);
    if (r == VK_SUCCESS && host_visible)
        r = vkMapMemory(c->dev, out->mem, 0, VK_WHOLE_SIZE, 0, &out->mapped);
    if (r != VK_SUCCESS) {
        vk_buffer_destroy(c, out);
        return tr_fail(TR_ERR_BACKEND, "vulkan: binding or mapping buffer memory failed: %s", vk_result_name(r));
    }
    out->size = bytes;
    return TR_OK;
}

void vk_buffer_destroy(vk_ctx *c, vk_buffer *b)
{
    if (!b)
        return;
    if (b->mapped)
        vkUnmapMemory(c->dev, b->mem);
    if (b->buf)
        vkDestroyBuffer(c->dev, b->buf, NULL);
    if (b->mem)
        vkFreeMemory(c->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

tr_status vk_memory_init(vk_ctx *c)
{
    return vk_buffer_create(c, STAGING_BYTES, 1, &c->staging);
}

void vk_memory_free(vk_ctx *c) { vk_buffer_destroy(c, &c->staging); }

static tr_status check_range(const vk_buffer *b, size_t off, size_t n, const char *what)
{
    if (off > b->size || n > b->size - off)
        return tr_fail(TR_ERR_RANGE, "vulkan: %s of %zu bytes at %zu runs past the end of a %llu-byte buffer", what, n,
                       off, (unsigned long long)b->size);
    return TR_OK;
}

tr_status vk_write(vk_ctx *c, vk_buffer *dst, size_t off, const void *src, size_t n)
{
    TR_TRY(check_range(dst, off, n, "upload"));
    if (dst->mapped) {
        memcpy((char *)dst->mapped + off, src, n);
        return TR_OK;
    }
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < STAGING_BYTES ? n - done : STAGING_BYTES;
        memcpy(c->staging.mapped, (const char *)src + done, piece);
        TR_TRY(vk_cmd_begin(c));
        vk_cmd_copy(c, &c->staging, 0, dst, off + done, piece);
        TR_TRY(vk_cmd_submit(c));
        done += piece;
    }
    return TR_OK;
}

tr_status vk_read(vk_ctx *c, vk_buffer *src, size_t off, void *dst, size_t n)
{
    TR_TRY(check_range(src, off, n, "download"));
    if (src->mapped) {
        memcpy(dst, (const char *)src->mapped + off, n);
        return TR_OK;
    }
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < STAGING_BYTES ? n - done : STAGING_BYTES;
        TR_TRY(vk_cmd_begin(c));
        vk_cmd_copy(c, src, off + done, &c->staging, 0, piece);
        TR_TRY(vk_cmd_submit(c)); /* ends with a barrier that makes the copy visible to the host */
        memcpy((char *)dst + done, c->staging.mapped, piece);
        done += piece;
    }
    return TR_OK;
}

/* ---- tr_buffer ------------------------------------------------------------------------------ */

tr_status vk_tr_buffer_alloc(tr_backend *b, size_t size, tr_buffer **out)
{
    vk_ctx *c = vk_of(b);
    tr_buffer *buf = calloc(1, sizeof *buf);
    vk_buffer *vb = calloc(1, sizeof *vb);
    if (!buf || !vb) {
        free(buf);
        free(vb);
        return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
    }
    tr_status s = vk_buffer_create(c, size, 0, vb);
    if (s != TR_OK) {
        free(buf);
        free(vb);
        return s;
    }
    *buf = (tr_buffer){.backend = b, .host = NULL, .size = size, .impl = vb};
    *out = buf;
    return vk_check_validation(c);
}

void vk_tr_buffer_free(tr_buffer *buf)
{
    if (!buf)
        return;
    vk_ctx *c = vk_of(buf->backend);
    vkDeviceWaitIdle(c->dev); /* the buffer may still be read by a submitted command buffer */
    vk_buffer_destroy(c, vk_buf(buf));
    free(buf->impl);
    free(buf);
}
