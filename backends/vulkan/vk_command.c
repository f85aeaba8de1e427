/* vk_command.c: recording and submitting command buffers.
 *
 * One primary command buffer, recorded for each graph (or transfer piece), submitted once and
 * waited for with a fence: the backend is synchronous, so nothing is in flight between calls.
 *
 * Barriers: the buffer ranges each dispatch binds are remembered until the next barrier; a dispatch
 * that reads or writes a range written since then, or writes a range read since then, gets a
 * compute-to-compute memory barrier first. Independent dispatches (the q, k and v projections of a
 * layer) are therefore left free to overlap. Copies and fills are fenced by full barriers on both
 * sides, and every command buffer starts with a full barrier (ordering it after the previous
 * submission's writes) and ends with one that makes device writes visible to the host. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "vk_internal.h"

#define FENCE_TIMEOUT_NS (300ull * 1000 * 1000 * 1000) /* a graph that runs 5 minutes is a hang */

tr_status vk_cmd_init(vk_ctx *c)
{
    VkCommandPoolCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = c->queue_family,
    };
    VkResult r = vkCreateCommandPool(c->dev, &pi, NULL, &c->cmd_pool);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateCommandPool failed: %s", vk_result_name(r));
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = c->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    r = vkAllocateCommandBuffers(c->dev, &ai, &c->cmd);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkAllocateCommandBuffers failed: %s", vk_result_name(r));
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    r = vkCreateFence(c->dev, &fi, NULL, &c->fence);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkCreateFence failed: %s", vk_result_name(r));
    return TR_OK;
}

void vk_cmd_free(vk_ctx *c)
{
    if (!c->dev)
        return;
    if (c->fence)
        vkDestroyFence(c->dev, c->fence, NULL);
    if (c->cmd_pool)
        vkDestroyCommandPool(c->dev, c->cmd_pool, NULL);
    free(c->pending);
    c->pending = NULL;
}

static void full_barrier(vk_ctx *c, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
        .dstAccessMask = dst_access,
    };
    vkCmdPipelineBarrier(c->cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
    c->n_pending = 0;
}

tr_status vk_cmd_begin(vk_ctx *c)
{
    VkResult r = vkResetCommandBuffer(c->cmd, 0);
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    if (r == VK_SUCCESS)
        r = vkBeginCommandBuffer(c->cmd, &bi);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkBeginCommandBuffer failed: %s", vk_result_name(r));
    vk_desc_reset(c);
    c->recording = 1;
    c->bind_error = TR_OK;
    full_barrier(c, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
    return TR_OK;
}

void vk_cmd_barrier(vk_ctx *c)
{
    full_barrier(c, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
}

void vk_cmd_copy(vk_ctx *c, vk_buffer *src, size_t soff, vk_buffer *dst, size_t doff, size_t n)
{
    vk_cmd_barrier(c);
    VkBufferCopy region = {.srcOffset = soff, .dstOffset = doff, .size = n};
    vkCmdCopyBuffer(c->cmd, src->buf, dst->buf, 1, &region);
    vk_cmd_barrier(c);
}

void vk_cmd_fill(vk_ctx *c, vk_buffer *dst, size_t off, size_t n, uint32_t word)
{
    vk_cmd_barrier(c);
    vkCmdFillBuffer(c->cmd, dst->buf, off, n, word);
    vk_cmd_barrier(c);
}

static int overlaps(const vk_range *a, const vk_binding *b)
{
    return a->buf == b->buf && a->lo < b->offset + b->range && b->offset < a->hi;
}

tr_status vk_cmd_dispatch(vk_ctx *c, const vk_dispatch *d)
{
    if (c->bind_error != TR_OK)
        return c->bind_error;
    if (d->groups == 0)
        return TR_OK;
    const vk_pipeline *p = d->pipe;
    uint32_t gx = d->groups < c->lim.max_groups[0] ? d->groups : c->lim.max_groups[0];
    uint32_t gy = (d->groups + gx - 1) / gx;
    if (gy > c->lim.max_groups[1])
        return tr_fail(TR_ERR_UNSUPPORTED, "vulkan: %u workgroups exceed the device's %u x %u grid", d->groups,
                       c->lim.max_groups[0], c->lim.max_groups[1]);

    /* barrier if this dispatch touches what an unfenced one wrote, or writes what it read */
    int hazard = 0;
    for (int i = 0; i < p->n_bind && !hazard; i++)
        for (int j = 0; j < c->n_pending && !hazard; j++)
            hazard = overlaps(&c->pending[j], &d->bind[i]) && (c->pending[j].write || d->bind[i].write);
    if (hazard || c->n_pending + p->n_bind > 256) {
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
            .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
        };
        vkCmdPipelineBarrier(c->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                             &mb, 0, NULL, 0, NULL);
        c->n_pending = 0;
    }
    if (c->n_pending + p->n_bind > c->cap_pending) {
        int nc = c->cap_pending ? 2 * c->cap_pending : 64;
        while (nc < c->n_pending + p->n_bind)
            nc *= 2;
        vk_range *np = realloc(c->pending, (size_t)nc * sizeof *np);
        if (!np)
            return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
        c->pending = np;
        c->cap_pending = nc;
    }
    for (int i = 0; i < p->n_bind; i++)
        c->pending[c->n_pending++] = (vk_range){d->bind[i].buf, d->bind[i].offset, d->bind[i].offset + d->bind[i].range,
                                                d->bind[i].write};

    VkDescriptorSet set;
    TR_TRY(vk_desc_alloc(c, p->n_bind, &set));
    VkDescriptorBufferInfo info[VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[VK_MAX_BINDINGS];
    for (int i = 0; i < p->n_bind; i++) {
        info[i] = (VkDescriptorBufferInfo){.buffer = d->bind[i].buf->buf, .offset = d->bind[i].offset, .range = d->bind[i].range};
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = (uint32_t)i,
            .descriptorCount = 1,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &info[i],
        };
    }
    vkUpdateDescriptorSets(c->dev, (uint32_t)p->n_bind, w, 0, NULL);
    vkCmdBindPipeline(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->pipe_layout[p->n_bind], 0, 1, &set, 0, NULL);
    vkCmdPushConstants(c->cmd, c->pipe_layout[p->n_bind], VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_BYTES, d->push);
    vkCmdDispatch(c->cmd, gx, gy, 1);
    return TR_OK;
}

tr_status vk_cmd_submit(vk_ctx *c)
{
    if (!c->recording)
        return tr_fail(TR_ERR_BACKEND, "vulkan: submit without a recorded command buffer");
    c->recording = 0;
    full_barrier(c, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    VkResult r = vkEndCommandBuffer(c->cmd);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkEndCommandBuffer failed: %s", vk_result_name(r));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &c->cmd};
    r = vkQueueSubmit(c->queue, 1, &si, c->fence);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: vkQueueSubmit failed: %s", vk_result_name(r));
    r = vkWaitForFences(c->dev, 1, &c->fence, VK_TRUE, FENCE_TIMEOUT_NS);
    if (r != VK_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "vulkan: waiting for the device failed: %s", vk_result_name(r));
    vkResetFences(c->dev, 1, &c->fence);
    return vk_check_validation(c);
}

void vk_cmd_abandon(vk_ctx *c)
{
    if (c->recording)
        vkEndCommandBuffer(c->cmd);
    c->recording = 0;
}
