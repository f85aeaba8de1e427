/* cuda_backend.h: the CUDA backend's entry point (plain C). backends/registry.c calls it when the
 * library is built with TR_HAVE_CUDA; nothing else needs it. The backend itself is described in
 * docs/cuda.md. */
#ifndef TR_CUDA_BACKEND_H
#define TR_CUDA_BACKEND_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates the backend on device 0 (or $TRANSIT_CUDA_DEVICE). Without a usable device it fails
 * with TR_ERR_UNSUPPORTED and the message "no device" (the reason is logged with -v); a device
 * older than compute capability 8.0 is refused with a message saying so. */
tr_status tr_cuda_backend_create(const tr_backend_options *opt, tr_backend **out);

/* How many launch sequences were captured into CUDA graphs, and how many computes replayed one
 * (decoding; docs/cuda.md). For tests, which must see that replay really happens. */
void tr_cuda_graph_counts(tr_backend *b, long *captures, long *replays);

#ifdef __cplusplus
}
#endif

#endif
