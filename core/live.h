/* live.h: counts of the library's live handles, for tr_live_objects (transit.h): a leak check that
 * a binding (the Python package) or a long-running program can make without instrumenting memory. */
#ifndef TR_LIVE_H
#define TR_LIVE_H

typedef enum tr_live_kind { TR_LIVE_MODEL, TR_LIVE_CONTEXT, TR_LIVE_SAMPLER, TR_LIVE_KINDS } tr_live_kind;

/* +1 when a handle is allocated, -1 when it is freed (whatever the outcome of its creation). */
void tr_live_add(tr_live_kind kind, int delta);

#endif
