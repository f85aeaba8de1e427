/* parity.h: what `transit parity` needs from the engine beyond the public API: the value of every
 * node of one evaluation, so two backends can be compared op by op (design §6). */
#ifndef TR_PARITY_H
#define TR_PARITY_H

#include <stdint.h>

#include "ir.h"
#include "transit.h"

typedef struct tr_node_value {
    char name[64]; /* the builder's name, or "<op>#<index>" */
    tr_op op;
    int64_t count; /* float32 values */
    float *data;
} tr_node_value;

typedef struct tr_node_values {
    int n;
    tr_node_value *nodes;
} tr_node_values;

/* Evaluates ids (at most the context's n_batch, from an empty cache) with every intermediate kept,
 * and copies out the value of each computing node (views and KV writes excluded), in order. */
tr_status tr_eval_capture(tr_context *ctx, const int32_t *ids, int n, tr_node_values *out);
void tr_node_values_free(tr_node_values *v);

/* Fault injection for testing the parity tool: TRANSIT_FAULT=<op name> makes the CPU backend's
 * fast kernels of that op perturb their output. Returns the op, or TR_OP_NONE. */
tr_op tr_fault_op(void);
/* TRANSIT_FAULT=diff_subtract: differential attention's kernels add lambda times the second head's
 * output instead of subtracting it (a broken subtraction, design §4 step 5). */
int tr_fault_diff_subtract(void);

#endif
