/* device_graph.h: what the device backends with one arena of intermediates (Vulkan, OpenCL) share
 * about a graph: which nodes own memory, the guard layout that catches a kernel writing past its
 * output, and the rules every such backend applies before lowering an op.
 *
 * Guard mode: every node that owns memory gets its own place, with `guard` bytes before and after
 * it; the backend fills the whole arena with a pattern byte before the graph and, afterwards, every
 * byte outside the nodes must still hold it, even where nothing reads the damaged bytes. */
#ifndef TR_DEVICE_GRAPH_H
#define TR_DEVICE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "transit.h"

/* A node with memory of its own in the arena (not a leaf, a view, or a KV write, whose value is its
 * cache). */
bool tr_dev_owns_memory(const tr_tensor *t);

/* Places the nodes one after another with guard bytes around each (offsets aligned to align);
 * returns the arena bytes needed. */
size_t tr_dev_guard_plan(tr_graph *g, size_t align, size_t guard);

/* Checks the arena's first `used` bytes (read back into bytes) outside the nodes still hold pattern;
 * the error names the backend, the byte and the node the damage follows. */
tr_status tr_dev_guard_check(const tr_graph *g, const uint8_t *bytes, size_t used, uint8_t pattern,
                             const char *backend);

/* The rules of a device backend whose kernels read contiguous f32 activations, weights of any
 * type (f32/f16/bf16, quantized for the matrices of GET_ROWS and MATMUL), i32 ids and positions, RoPE
 * tables made on the host from leaves, and the attention variants PLAIN, TRANSITION and DIFF. False
 * with *why set when t breaks one. has_kernel: whether the backend lowers t->op at all. */
bool tr_dev_op_supported(const tr_tensor *t, bool has_kernel, const char **why);

/* The rows of an ATTENTION node's transition blocks inside its batch of T query rows: for each block
 * that meets the batch, its first row start[k] and the absolute rows [lo[k], hi[k]) it has here, in
 * block order (arrays of TR_MAX_TRANSITION_BLOCKS); returns their count. *skip_lo, *skip_hi: one
 * range covering them all when they are contiguous (a layer's blocks are), which the plain kernel
 * may skip; else 0, 0 (the plain kernel computes every row, the transition's launches overwrite). */
int tr_dev_transition_rows(const tr_attn_params *ap, int64_t T, int64_t *start, int64_t *lo, int64_t *hi,
                           int64_t *skip_lo, int64_t *skip_hi);

#endif
