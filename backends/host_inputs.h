/* host_inputs.h: what a device backend copies in before a graph runs, shared by the Vulkan and
 * OpenCL backends: the host leaves its nodes read (token ids, positions, in tests any leaf) and the
 * (cos, sin) tables of its ROPE nodes, laid out one after another in one input buffer.
 *
 * Inputs are keyed by their leaf; a RoPE table by everything its angles depend on (positions,
 * theta, head dimension, frequency scale and divisors), so that ROPE nodes rotating by the same
 * angles (a layer's q and k, every layer) share one table and nodes with different scalings never
 * share one. The tables are computed on the host in double precision, as rope_f32_ref computes the
 * angle: shading languages' cos and sin of a large angle are not accurate enough, and not every
 * device has doubles. */
#ifndef TR_HOST_INPUTS_H
#define TR_HOST_INPUTS_H

#include "ir.h"
#include "transit.h"

typedef struct tr_host_input {
    const void *key;  /* the leaf tensor, or the pos tensor of a RoPE table */
    float theta;      /* RoPE tables: theta, head dimension, frequency scale and divisors */
    int64_t hd;
    float freq_scale;
    const tr_tensor *factors; /* NULL: none */
    size_t off, size;         /* place in the input buffer */
} tr_host_input;

typedef struct tr_host_inputs {
    tr_host_input *in;
    int n, cap;
    size_t align; /* of each input's offset */
} tr_host_inputs;

typedef struct tr_backend tr_backend;

/* Collects the inputs of g for backend b: every source whose root is a leaf not in b's buffers
 * (host memory), and a table per distinct RoPE angle set. Forgets the previous graph's list. */
tr_status tr_host_inputs_gather(tr_host_inputs *l, const tr_graph *g, const tr_backend *b);
void tr_host_inputs_free(tr_host_inputs *l);
size_t tr_host_inputs_bytes(const tr_host_inputs *l); /* the buffer they need */
/* Writes every input at its offset of dst (tr_host_inputs_bytes long); the positions and divisors a
 * RoPE table is made from are read from host memory or, when they live there, from b. */
tr_status tr_host_inputs_fill(const tr_host_inputs *l, uint8_t *dst, tr_backend *b);
/* The offset of a leaf's copy, or of a ROPE node's table; (size_t)-1 if the graph has none. */
size_t tr_host_inputs_leaf(const tr_host_inputs *l, const tr_tensor *leaf);
size_t tr_host_inputs_rope(const tr_host_inputs *l, const tr_tensor *rope);
/* The memory of a leaf in host memory (its buffer's host mapping or data), NULL if none. */
const void *tr_host_data(const tr_tensor *leaf);

#endif
