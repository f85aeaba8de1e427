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

/* Fault injection for testing the parity tool, read by a backend when it is created (`who` names
 * it in the log line each switch gets): TRANSIT_FAULT=<op name> makes that op's kernels perturb
 * their output (*op; TR_OP_NONE when unset); TRANSIT_FAULT=diff_subtract makes differential
 * attention's kernels add lambda times the second head's output instead of subtracting it (a
 * broken subtraction, design §4 step 5; *diff_subtract). */
void tr_fault_read(const char *who, tr_op *op, int *diff_subtract);

#endif
