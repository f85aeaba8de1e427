/* backend_e2e.h: end-to-end checks shared by the device backends' tests (backend_e2e.c). */
#ifndef TR_BACKEND_E2E_H
#define TR_BACKEND_E2E_H

/* The transition goldens of model `name` (tests/golden/transition) on backend against cpu-ref,
 * whole and chunked, within bound and clearly closer to the transition than plain attention is;
 * returns the worst NMSE. */
double backend_e2e_transition(const char *name, const char *backend, double bound);
/* 64 greedy tokens on backend equal cpu-ref's and expected_greedy.json as far as it goes. */
void backend_e2e_greedy(const char *model_rel, const char *expected_rel, const char *backend);
/* stories260K's weights split over buffers of at most 300 KB give the golden logits (within bound;
 * returns the NMSE), and a limit below its largest tensor is refused by name. */
double backend_e2e_split_weights(const char *backend, double bound);

#endif
