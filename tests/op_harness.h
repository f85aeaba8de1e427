/* op_harness.h: what the per-op tests (test_ops, test_vulkan, test_cuda) share to run one graph on
 * the CPU reference kernels and on a backend under test and compare them (design §6):
 *
 *   - random leaves (f32/f16/bf16) and integer leaves, from one seeded generator, whose host memory
 *     the harness tracks and frees with the graph (op_release);
 *   - on a device backend, every leaf not marked OP_HOST gets a copy in its own buffer of that
 *     backend, between guard bytes that must come back unchanged; OP_HOST leaves stay host memory,
 *     the input path of backend.h's host memory rule;
 *   - op_compare: the reference on host leaves, then the backend on its copies, NMSE of each output
 *     against its bound; a failure names the backend and the case (with its shapes);
 *   - a per-family summary of the worst NMSE seen.
 * The op cases themselves are in op_cases.h. */
#ifndef TR_OP_HARNESS_H
#define TR_OP_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* design §6 bounds on NMSE against the reference */
#define OP_BOUND_ELEMENTWISE 1e-7 /* element-wise ops, norms, RoPE */
#define OP_BOUND_HALF 5e-4        /* matrix products and attention with f16/bf16 operands */
#define OP_BOUND_QUANT 5e-4       /* products with quantized weights against the float64 product of the
                                     dequantized weights (design §10) */
#define OP_BOUND_F32 1e-10        /* f32 products and attention: float sums against double ones */
#define OP_BOUND_EXACT 0.0        /* copies (KV_WRITE) */

struct op_case;

/* A backend under test and how to drive it. */
typedef struct op_target {
    const char *name;    /* in every message: "cpu", "vulkan no-16bit-no-subgroup", "cuda" */
    tr_backend *ref;     /* the CPU reference kernels: the definition */
    tr_backend *backend; /* the backend under test */
    int device_copies;   /* 1: leaves not marked OP_HOST get guarded copies in the backend's buffers */
    /* Optional: why this backend cannot run case c (printed, and the case is counted as skipped), or
     * NULL to run it. For what a backend lacks, never for a failure it should fix. */
    const char *(*skip)(const struct op_case *c);
    /* Optional: a text the backend's error must contain when it is expected to refuse the graph of
     * node out with TR_ERR_UNSUPPORTED (say, a cache beyond a binding limit), or NULL to compare. */
    const char *(*refusal)(const tr_tensor *out);
} op_target;

/* Where a leaf lives on a device backend. The reference always reads host memory. */
typedef enum op_where {
    OP_DEVICE = 0, /* a guarded copy in the backend's own buffer (weights, caches) */
    OP_HOST = 1,   /* host memory, copied in by the backend itself (token ids, positions, inputs) */
} op_where;

float op_frand(void); /* uniform in [-1, 1), from a fixed seed: every run draws the same values */
/* Seeds the draws from a case's name: a case gets the same values whatever runs before it (another
 * backend's skips, cases added to the table). */
void op_seed(const char *name);

/* A leaf of shape ne with values uniform in [-scale, scale), stored as dt. */
tr_tensor *op_leaf(tr_graph *g, tr_dtype dt, int ndim, const int64_t *ne, float scale, op_where where);
/* An i32 leaf {n} with values offset + [0, mod). */
tr_tensor *op_int_leaf(tr_graph *g, int64_t n, int32_t mod, int32_t offset, op_where where);
/* Frees the graph, the host data of its leaves and their device copies. */
void op_release(tr_graph *g);

/* Computes g on t->ref (on_backend = 0) or t->backend (1), with the leaves placed for that side,
 * and reads outs[0..n) into fresh arrays vals[i] (zeros where it failed; caller frees). Returns
 * whether it computed. Device copies are made on the first call for a graph, before either side
 * runs, since KV_WRITE changes its cache in place. */
int op_run(const op_target *t, int on_backend, tr_graph *g, tr_tensor **outs, int n, float **vals);

/* The reference, then the backend; CHECKs each output's NMSE <= bound and the guard bytes; records
 * the worst NMSE under family. got (optional) receives the backend's values (caller frees).
 * Returns the worst NMSE. */
double op_compare(const op_target *t, tr_graph *g, tr_tensor **outs, int n, double bound, const char *family,
                  const char *what, float **got);

/* The backend must refuse the graph of out with TR_ERR_UNSUPPORTED and an error containing why,
 * not compute something else; CHECKs that and the guard bytes. */
void op_expect_refusal(const op_target *t, tr_graph *g, tr_tensor *out, const char *why, const char *family,
                       const char *what);

/* Records e under family (also done by op_compare), and prints every family's case count and
 * worst NMSE. */
void op_record(const char *family, double e);
void op_print_summary(void);

#endif
