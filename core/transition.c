/* transition.c: the Attention Transition schedule; see transition.h. */
#include "transition.h"

#include <math.h>

#include "error.h"

tr_status tr_transition_check(const tr_transition_params *p)
{
    if (p->min_len < 0)
        return tr_fail(TR_ERR_INVALID_ARG, "transition: min_len must be >= 0, got %d", p->min_len);
    if (p->blocks < 1 || p->blocks > TR_MAX_TRANSITION_BLOCKS)
        return tr_fail(TR_ERR_INVALID_ARG, "transition: blocks must be 1..%d, got %d", TR_MAX_TRANSITION_BLOCKS,
                       p->blocks);
    if (!(p->alpha > 0) || !isfinite(p->alpha))
        return tr_fail(TR_ERR_INVALID_ARG, "transition: alpha must be > 0, got %g", (double)p->alpha);
    if (!(p->beta >= 0) || !isfinite(p->beta))
        return tr_fail(TR_ERR_INVALID_ARG, "transition: beta must be >= 0, got %g", (double)p->beta);
    if (p->strategy != TR_TRANSITION_ADDING && p->strategy != TR_TRANSITION_MULTI)
        return tr_fail(TR_ERR_INVALID_ARG, "transition: unknown strategy %d", (int)p->strategy);
    return TR_OK;
}

int tr_transition_iv(const tr_transition_params *p, int n_layers, int n_prompt)
{
    int touched = n_layers - 3; /* layers 1 .. L-3 */
    if (!p->enabled || touched < 1 || n_prompt < p->min_len)
        return 0;
    int n_blocks = touched + 2 + p->blocks;
    int iv = n_prompt / n_blocks;
    return iv - iv % 5;
}

int tr_transition_blocks(const tr_transition_params *p, int n_layers, int n_prompt, int layer,
                         int32_t starts[TR_MAX_TRANSITION_BLOCKS])
{
    int iv = tr_transition_iv(p, n_layers, n_prompt);
    if (iv == 0 || layer < 1 || layer > n_layers - 3)
        return 0;
    for (int j = 0; j < p->blocks; j++)
        starts[j] = (layer - 1 + j + 2) * iv;
    return p->blocks;
}
