/* cl_internal.h: the OpenCL backend's shared types, between its files of one concern each:
 *
 *   cl_device.c    platforms and devices, the choice (--device N, TRANSIT_OPENCL_DEVICE), the limits
 *                  the backend respects, the optional features it uses, and `transit info`'s lines
 *   cl_program.c   programs built by the driver from the OpenCL C sources embedded in the library
 *                  (kernels/NAME.cl), a cache of built binaries on disk keyed by device and source
 *                  hash, kernels looked up by name, the driver's build log on failure
 *   cl_graph.c     graph computation: memory plan, placement, host inputs and RoPE tables, guards
 *   cl_ops.c       one lowering function per op: kernel choice, arguments, launch sizes
 *   cl_backend.c   the tr_backend_iface table, buffers, and tr_opencl_backend_create
 *
 * OpenCL 1.2 is the floor: buffers are whole cl_mem objects (no SVM), a tensor is (cl_mem, byte
 * offset) and kernels take the offset as an argument, so nothing depends on sub-buffer alignment.
 * Every enqueue goes to one in-order queue; a graph is one batch of enqueues and one clFinish.
 *
 * Not a public header: only backends/opencl/ includes it (tests use cl_debug.h). */
#ifndef TR_CL_INTERNAL_H
#define TR_CL_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "host_inputs.h"
#include "cl_debug.h"

#define CL_WG 64      /* work-group size of every kernel: every OpenCL GPU and CPU device offers it */
#define CL_GUARD 256  /* guard bytes around nodes in guard mode */

/* The device limits the backend respects (some lowered by tr_opencl_debug for tests). */
typedef struct cl_limits {
    cl_ulong max_alloc;     /* CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest buffer */
    cl_ulong global_mem;    /* CL_DEVICE_GLOBAL_MEM_SIZE */
    cl_ulong local_mem;     /* CL_DEVICE_LOCAL_MEM_SIZE */
    size_t max_wg;          /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    cl_uint align_bits;     /* CL_DEVICE_MEM_BASE_ADDR_ALIGN */
    int subgroups;          /* cl_khr_subgroups or cl_intel_subgroups (reported; reductions use local memory) */
    int fp16;               /* cl_khr_fp16 (reported; 16-bit loads go through vload_half on every device) */
    int fp64;               /* cl_khr_fp64 (reported) */
} cl_limits;

/* A buffer: the impl of a tr_buffer. */
typedef struct cl_buf {
    cl_mem mem;
    size_t size;
} cl_buf;

/* A built program: one source set with one option string. */
typedef struct cl_prog {
    char key[192]; /* the source set's name and the build options */
    cl_program prog;
} cl_prog;

/* A kernel by name, from one program. */
typedef struct cl_kern {
    int prog; /* index in cl_ctx.progs */
    char name[64];
    cl_kernel k;
} cl_kern;

/* Where a tensor's byte 0 lives. */
typedef struct cl_loc {
    tr_buffer *buf;
    size_t off;
} cl_loc;

typedef struct cl_ctx {
    tr_backend base;
    /* device (cl_device.c) */
    cl_platform_id platform;
    cl_device_id device;
    int device_index; /* in the order `transit info` lists devices */
    char device_name[256], platform_name[256], driver[128], version[128];
    cl_limits lim;
    cl_context ctx;
    cl_command_queue queue;
    /* programs (cl_program.c) */
    cl_prog *progs;
    int n_progs, cap_progs;
    cl_kern *kerns;
    int n_kerns, cap_kerns;
    char cache_dir[512]; /* "" when there is no program cache */
    /* graph (cl_graph.c) */
    tr_buffer *arena;   /* intermediates */
    tr_buffer *inputs;  /* host leaves and RoPE tables of the current graph */
    uint8_t *staging;   /* host copy of the inputs before one write */
    size_t staging_cap;
    tr_host_inputs in;  /* the current graph's host leaves and RoPE tables */
    tr_op fault;    /* TRANSIT_FAULT */
    int fault_diff; /* TRANSIT_FAULT=diff_subtract */
    tr_opencl_debug dbg;
} cl_ctx;

static inline cl_ctx *cl_of(tr_backend *b) { return (cl_ctx *)b->impl; }
static inline cl_buf *cl_buf_of(const tr_buffer *b) { return (cl_buf *)b->impl; }
static inline size_t cl_align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

const char *cl_error_name(cl_int e);
/* Fails with "opencl: <what>: <error name>" when e is not CL_SUCCESS. */
tr_status cl_check(cl_int e, const char *what);

/* cl_device.c */
tr_status cl_device_open(cl_ctx *c, int want_device);
void cl_device_close(cl_ctx *c);
void cl_device_describe(cl_ctx *c, char *buf, size_t cap);

/* cl_program.c */
tr_status cl_programs_init(cl_ctx *c);
void cl_programs_free(cl_ctx *c);
/* The kernel `name` of source set `set` ("main" or "attention") built with `options` (NULL: none),
 * built on first use; NULL with the error set (the build log included) if it cannot be. The pointer
 * is valid until the next call (the table may grow). */
cl_kern *cl_kernel_get(cl_ctx *c, const char *set, const char *options, const char *name);

/* cl_backend.c: buffers */
tr_status cl_buffer_alloc(tr_backend *b, size_t size, tr_buffer **out);
void cl_buffer_free(tr_buffer *buf);
tr_status cl_write(cl_ctx *c, const tr_buffer *buf, size_t off, const void *src, size_t n);
tr_status cl_read(cl_ctx *c, const tr_buffer *buf, size_t off, void *dst, size_t n);

/* cl_graph.c */
tr_status cl_graph_compute(cl_ctx *c, tr_graph *g);
cl_loc cl_loc_of(cl_ctx *c, const tr_tensor *t);
size_t cl_rope_table(cl_ctx *c, const tr_tensor *rope); /* offset in inputs of a ROPE node's table */

/* cl_ops.c */
bool cl_op_supported(cl_ctx *c, const tr_tensor *node, const char **why);
tr_status cl_op_lower(cl_ctx *c, tr_tensor *node);
tr_status cl_op_fault(cl_ctx *c, tr_tensor *node);

#endif
