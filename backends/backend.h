/* backend.h: the backend interface. A backend is a small table of functions over a device.
 *
 * The contract is the graph (core/ir.h): a backend receives a graph whose leaves are placed (weights
 * and caches in the backend's buffers, or host memory for inputs) and computes every node. It plans
 * the memory of intermediate nodes itself (tr_memplan helps) and may fuse or reorder internally, as
 * long as nodes marked is_output hold their values afterwards.
 *
 * Host memory rule: a leaf with buffer == NULL and data != NULL is ordinary host memory (token ids,
 * positions, or mmapped weights on the CPU backend); a device backend copies it in before use.
 *
 * Fallback rule: an op whose supports_op() is false on a device runs on the CPU backend, and the
 * backend says so through tr_log and in `transit info`; it never fails silently. */
#ifndef TR_BACKEND_H
#define TR_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "ir.h"
#include "transit.h"

typedef struct tr_backend tr_backend;

struct tr_buffer {
    tr_backend *backend;
    void *host;  /* host address of byte 0 when the memory is host-visible, else NULL */
    size_t size;
    void *impl;  /* the backend's own handle */
    int borrowed; /* wraps memory the backend does not own (an mmapped file) */
};

typedef struct tr_backend_iface {
    const char *name;
    void (*free)(tr_backend *b);
    /* One or more lines: the device, its memory and limits. */
    void (*describe)(tr_backend *b, char *buf, size_t cap);
    bool (*supports_op)(tr_backend *b, const tr_tensor *node);
    tr_status (*buffer_alloc)(tr_backend *b, size_t size, tr_buffer **out);
    /* Optional (may be NULL): use host memory in place, without a copy. */
    tr_status (*buffer_from_host)(tr_backend *b, void *ptr, size_t size, tr_buffer **out);
    void (*buffer_free)(tr_buffer *buf);
    tr_status (*upload)(tr_buffer *buf, size_t offset, const void *src, size_t n);
    tr_status (*download)(tr_buffer *buf, size_t offset, void *dst, size_t n);
    tr_status (*graph_compute)(tr_backend *b, tr_graph *g);
    tr_status (*synchronize)(tr_backend *b); /* optional */
    /* Optional: bytes the backend holds for intermediates (*activations) and for kernel scratch and
     * copies of weights in a layout of its own (*workspace: the CPU's repacked Q4_K). */
    void (*memory)(tr_backend *b, size_t *activations, size_t *workspace);
    /* Optional: the memory bandwidth decode is bound by, measured now (bytes/s; <= 0 if unknown):
     * the host's streaming read rate on the CPU, the device-to-device copy rate on a GPU. */
    double (*bandwidth)(tr_backend *b);
    /* Optional, for host-memory backends: the rate at which the backend's threads read the n ranges
     * (ptr[i], len[i]) themselves, as decode reads them: the model's own weights, the best of
     * several passes (bytes/s). Preferred to bandwidth() when the weights stay in host memory. */
    double (*read_rate)(tr_backend *b, const void *const *ptr, const size_t *len, int n);
    /* Optional: FLOP/s of the backend's matrix-product library (OpenBLAS, cuBLAS) on one product of
     * m tokens by n outputs by k inputs with weights of `type`, called as prefill calls it, measured
     * now; <= 0 if unknown. What prefill's products could reach (`transit bench`). */
    double (*gemm_rate)(tr_backend *b, tr_dtype type, int m, int n, int k);
    /* Optional: the largest buffer buffer_alloc can give (bytes; 0 or NULL: no limit of its own). The
     * model splits its weights over several buffers to stay below it. */
    size_t (*max_buffer_size)(tr_backend *b);
} tr_backend_iface;

struct tr_backend {
    const tr_backend_iface *iface;
    void *impl;
};

/* Whether a leaf lives in a buffer of backend b (else host memory, or another backend's). */
static inline int tr_on_backend(const tr_tensor *leaf, const tr_backend *b)
{
    return leaf->buffer && leaf->buffer->backend == b;
}

/* ---- registry (backends/registry.c) -------------------------------------------------------- */

typedef struct tr_backend_options {
    int n_threads;     /* CPU threads, 0 = all cores */
    int reference;     /* CPU: run the plain reference kernels instead of the fast path */
    int device;        /* 1 + the index of the device to use, as `transit info` lists them (OpenCL);
                          0: the backend's own choice */
    const char *cpu_kernels; /* CPU: the kernel set to run by name ("avx2"; cpu/kernel_set.h); NULL or "":
                                TRANSIT_CPU_KERNELS, else the best this CPU runs */
} tr_backend_options;

/* Creates the backend named "cpu", "cpu-ref", "vulkan", "cuda" or "opencl". An unknown or unavailable name is an error
 * that says what is compiled in. */
tr_status tr_backend_create(const char *name, const tr_backend_options *opt, tr_backend **out);
void tr_backend_free(tr_backend *b);
/* Lists compiled-in backends and whether each is usable here, one per line. */
void tr_backend_list(char *buf, size_t cap);

/* TR_ERR_RANGE, naming the backend and `what` ("upload", "download"), unless the n bytes at offset
 * lie inside buf. */
tr_status tr_buffer_check_span(const tr_buffer *buf, size_t offset, size_t n, const char *what);

/* Reads a tensor's value into host memory (dst: tr_nelements * dtype size bytes, contiguous). */
tr_status tr_tensor_get(tr_backend *b, const tr_tensor *t, void *dst);
/* Writes host data into a placed tensor. */
tr_status tr_tensor_set(tr_backend *b, tr_tensor *t, const void *src);

/* ---- memory plan (core/memplan.c) ---------------------------------------------------------- */

/* Assigns t->offset for every non-view node of g inside one scratch region, reusing the memory of
 * a node once its last reader has run (outputs are kept to the end). Returns the bytes needed.
 * Views get the offset of their root plus view_offset. keep_all = 1 disables reuse (for per-node
 * parity checks, where every intermediate must survive). */
size_t tr_memplan(tr_graph *g, size_t align, int keep_all);

#endif
