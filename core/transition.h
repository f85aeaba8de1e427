/* transition.h: the Attention Transition schedule (design §3; docs/attention-transition.md).
 *
 * For a prompt of n tokens and a model of L layers: B = (L - 3) + 2 + k, iv = floor(n / B) rounded
 * down to a multiple of 5; layer l in 1 .. L-3 re-weights the k row blocks starting at
 * (l - 1 + j + 2) * iv, j = 0 .. k-1, each iv rows long. Nothing happens when n < min_len, iv == 0,
 * or for other layers. */
#ifndef TR_TRANSITION_H
#define TR_TRANSITION_H

#include <stdint.h>

#include "ir.h"
#include "transit.h"

/* Checks the parameters; returns TR_OK or TR_ERR_INVALID_ARG with a message naming the bad one. */
tr_status tr_transition_check(const tr_transition_params *p);

/* Block length iv for a prompt of n tokens (0: the transition does nothing for this prompt). */
int tr_transition_iv(const tr_transition_params *p, int n_layers, int n_prompt);

/* Fills starts[] with the first rows of layer's blocks and returns how many (0 when untouched). */
int tr_transition_blocks(const tr_transition_params *p, int n_layers, int n_prompt, int layer,
                         int32_t starts[TR_MAX_TRANSITION_BLOCKS]);

/* The first row of the block of p that contains row, or -1 (a row is in at most one block of a layer). */
static inline int32_t tr_transition_row_block(const tr_attn_params *p, int64_t row)
{
    if (p->variant != TR_ATTN_TRANSITION)
        return -1;
    for (int j = 0; j < p->transition.n_blocks; j++)
        if (row >= p->transition.start[j] && row < p->transition.start[j] + p->transition.iv)
            return p->transition.start[j];
    return -1;
}

#endif
