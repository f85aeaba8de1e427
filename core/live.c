/* live.c: the counts behind tr_live_objects (live.h, transit.h). */
#include <stdatomic.h>

#include "live.h"
#include "transit.h"

static atomic_int live[TR_LIVE_KINDS];

void tr_live_add(tr_live_kind kind, int delta) { atomic_fetch_add(&live[kind], delta); }

int tr_live_objects(int *models, int *contexts, int *samplers)
{
    int m = atomic_load(&live[TR_LIVE_MODEL]), c = atomic_load(&live[TR_LIVE_CONTEXT]);
    int s = atomic_load(&live[TR_LIVE_SAMPLER]);
    if (models)
        *models = m;
    if (contexts)
        *contexts = c;
    if (samplers)
        *samplers = s;
    return m + c + s;
}
