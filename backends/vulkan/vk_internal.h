/* vk_internal.h: the Vulkan backend's shared types, between its files of one concern each:
 *
 *   vk_device.c    instance (validation layer, debug messenger), device choice, limits, describe
 *   vk_memory.c    buffers and device memory, staging, upload and download
 *   vk_pipeline.c  shader modules from the embedded SPIR-V, pipelines (specialization constants),
 *                  descriptor set layouts and pools
 *   vk_command.c   command recording: barriers from a hazard list, dispatches, submission
 *   vk_graph.c     graph lowering: memory plan, placement, host inputs, guard checks
 *   vk_ops.c       one lowering function per op: kernel choice, bindings, push constants, pieces
 *   vk_backend.c   the tr_backend_iface table and tr_vulkan_backend_create
 *
 * Not a public header: only backends/vulkan/ includes it (tests use vk_debug.h). */
#ifndef TR_VK_INTERNAL_H
#define TR_VK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "backend.h"
#include "host_inputs.h"
#include "vk_debug.h"
#include "vk_shaders.h"

#define VK_MAX_BINDINGS 4
#define VK_PUSH_BYTES 128   /* the minimum maxPushConstantsSize every device offers */
#define VK_WG 128           /* workgroup size of every shader (the minimum every device offers) */
#define VK_GUARD 256        /* guard bytes around nodes in guard mode */

/* A device buffer: the impl of a tr_buffer. */
typedef struct vk_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size; /* bytes allocated: the request rounded up to 16 */
    void *mapped;      /* host mapping of a host-visible (staging) buffer, else NULL */
} vk_buffer;

/* The device limits the backend respects (some may be lowered by tr_vulkan_debug). */
typedef struct vk_limits {
    VkDeviceSize max_range;  /* maxStorageBufferRange: the largest range one binding may cover */
    VkDeviceSize bind_align; /* binding offsets: max(minStorageBufferOffsetAlignment, 16) */
    VkDeviceSize max_alloc;  /* maxMemoryAllocationSize */
    uint32_t max_groups[3];  /* maxComputeWorkGroupCount */
    uint32_t max_invocations, max_wg_x;
    uint32_t max_shared;     /* maxComputeSharedMemorySize */
    uint32_t subgroup_size;
    int subgroup_arith;      /* subgroup arithmetic in compute shaders: the _sg variants */
    int storage16;           /* storageBuffer16BitAccess: float16_t / uint16_t weight loads */
    int float16;             /* shaderFloat16 (reported, not needed) */
} vk_limits;

typedef struct vk_pipeline {
    int shader;         /* index in tr_vk_shaders */
    int n_spec;
    uint32_t spec[4];   /* specialization constants 0..n_spec-1 (0 is the workgroup size) */
    int n_bind;
    VkPipeline pipe;
} vk_pipeline;

typedef struct vk_binding {
    vk_buffer *buf;
    VkDeviceSize offset, range;
    int write;
} vk_binding;

/* One compute dispatch, as the ops build it. */
typedef struct vk_dispatch {
    vk_pipeline *pipe;
    vk_binding bind[VK_MAX_BINDINGS];
    uint32_t push[VK_PUSH_BYTES / 4];
    uint32_t groups; /* workgroups, laid out as a 2-D grid by vk_cmd_dispatch */
} vk_dispatch;

/* Where a tensor's byte 0 lives. */
typedef struct vk_loc {
    tr_buffer *buf;
    size_t off;
} vk_loc;

typedef struct vk_range {
    vk_buffer *buf;
    VkDeviceSize lo, hi;
    int write;
} vk_range;

typedef struct vk_ctx {
    tr_backend base;
    /* instance and device (vk_device.c) */
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    int validation;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    char driver[2 * VK_MAX_DRIVER_NAME_SIZE + 2];
    vk_limits lim;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    /* memory (vk_memory.c) */
    uint32_t device_type, staging_type; /* memory type indices */
    int device_type_host_visible;
    vk_buffer staging;
    /* pipelines and descriptors (vk_pipeline.c) */
    VkDescriptorSetLayout set_layout[VK_MAX_BINDINGS + 1];
    VkPipelineLayout pipe_layout[VK_MAX_BINDINGS + 1];
    VkPipelineCache pipe_cache;
    vk_pipeline **pipes;
    int n_pipes, cap_pipes;
    VkDescriptorPool *pools;
    int n_pools, cur_pool, cur_pool_sets;
    /* commands (vk_command.c) */
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    int recording;
    vk_range *pending; /* accesses since the last barrier */
    int n_pending, cap_pending;
    long validation_seen; /* validation messages already reported */
    tr_status bind_error;  /* a binding that broke a limit while building dispatches */
    /* graph (vk_graph.c) */
    tr_buffer *arena;      /* intermediates */
    size_t arena_size;
    tr_buffer *inputs;     /* host leaves and RoPE tables of the current graph (device) */
    tr_buffer *scratch;    /* dequantized weight panels of quantized prefill products (vk_ops.c) */
    vk_buffer input_staging;
    tr_host_inputs in;     /* the current graph's host leaves and RoPE tables */
    tr_op fault;           /* TRANSIT_FAULT */
    int fault_diff;        /* TRANSIT_FAULT=diff_subtract: DIFF attention adds lambda O_{j+H/2} */
    tr_vulkan_debug dbg;
} vk_ctx;

static inline vk_ctx *vk_of(tr_backend *b) { return (vk_ctx *)b->impl; }
static inline vk_buffer *vk_buf(const tr_buffer *b) { return (vk_buffer *)b->impl; }
static inline size_t vk_align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* vk_device.c */
const char *vk_result_name(VkResult r);
tr_status vk_device_open(vk_ctx *c);
void vk_device_close(vk_ctx *c);
void vk_device_describe(vk_ctx *c, char *buf, size_t cap);
/* Fails with the newest validation message if one arrived since the last check. */
tr_status vk_check_validation(vk_ctx *c);

/* vk_memory.c */
tr_status vk_memory_init(vk_ctx *c);
void vk_memory_free(vk_ctx *c);
tr_status vk_buffer_create(vk_ctx *c, size_t size, int host_visible, vk_buffer *out);
void vk_buffer_destroy(vk_ctx *c, vk_buffer *b);
tr_status vk_write(vk_ctx *c, vk_buffer *dst, size_t off, const void *src, size_t n);
tr_status vk_read(vk_ctx *c, vk_buffer *src, size_t off, void *dst, size_t n);
tr_status vk_tr_buffer_alloc(tr_backend *b, size_t size, tr_buffer **out);
void vk_tr_buffer_free(tr_buffer *buf);

/* vk_pipeline.c */
tr_status vk_pipelines_init(vk_ctx *c);
void vk_pipelines_free(vk_ctx *c);
/* The pipeline of shader `name` with specialization constants spec[0..n_spec) (spec[0] = workgroup
 * size), created on first use; NULL with the error set if the shader or the pipeline is missing. */
vk_pipeline *vk_pipeline_get(vk_ctx *c, const char *name, int n_bind, const uint32_t *spec, int n_spec);
void vk_desc_reset(vk_ctx *c);
tr_status vk_desc_alloc(vk_ctx *c, int n_bind, VkDescriptorSet *out);

/* vk_command.c */
tr_status vk_cmd_init(vk_ctx *c);
void vk_cmd_free(vk_ctx *c);
tr_status vk_cmd_begin(vk_ctx *c);
void vk_cmd_barrier(vk_ctx *c);
void vk_cmd_copy(vk_ctx *c, vk_buffer *src, size_t soff, vk_buffer *dst, size_t doff, size_t n);
void vk_cmd_fill(vk_ctx *c, vk_buffer *dst, size_t off, size_t n, uint32_t word);
tr_status vk_cmd_dispatch(vk_ctx *c, const vk_dispatch *d);
tr_status vk_cmd_submit(vk_ctx *c); /* ends, submits, waits */
void vk_cmd_abandon(vk_ctx *c);     /* ends without submitting */

/* vk_measure.c: device-to-device copy bandwidth, bytes read + written per second (0 if unknown) */
double vk_bandwidth(tr_backend *b);

/* vk_graph.c */
tr_status vk_graph_compute(vk_ctx *c, tr_graph *g);
vk_loc vk_loc_of(vk_ctx *c, const tr_tensor *t);
size_t vk_rope_table(vk_ctx *c, const tr_tensor *rope); /* offset in inputs of a ROPE node's table */

/* vk_ops.c */
bool vk_op_supported(vk_ctx *c, const tr_tensor *node, const char **why);
tr_status vk_op_lower(vk_ctx *c, tr_tensor *node);
size_t vk_op_scratch_bytes(const vk_ctx *c, const tr_tensor *node); /* scratch the node's lowering uses */
tr_status vk_op_fault(vk_ctx *c, tr_tensor *node);

#endif
