/* cl_debug.h: switches for testing the OpenCL backend (tests/test_opencl.c) and for chasing driver
 * problems. Defined only when the backend is built (TR_HAVE_OPENCL_DEBUG is then set for every
 * target that links transit_lib).
 *
 * Environment variables, read when a backend is created, do the same for the command line:
 *   TRANSIT_OPENCL_DEVICE=N     use device N of `transit info`'s list (as --device N)
 *   TRANSIT_OPENCL_CACHE=DIR    where built programs are kept ("" or "off": no cache); by default
 *                               $XDG_CACHE_HOME/transit/opencl or ~/.cache/transit/opencl
 *   TRANSIT_FAULT=<op>          add 1 to the first element of that op's output (core/parity.h) */
#ifndef TR_CL_DEBUG_H
#define TR_CL_DEBUG_H

#include <stddef.h>

typedef struct tr_opencl_debug {
    int guard_nodes;   /* every node gets its own memory with guard bytes on both sides, filled
                        * with a pattern before and checked after each graph (no reuse) */
    size_t max_alloc;  /* pretend CL_DEVICE_MAX_MEM_ALLOC_SIZE is this many bytes (0: the device's) */
    const char *extra_source; /* appended to the "main" source set: a test's broken kernel */
} tr_opencl_debug;

/* Applies to backends created afterwards (process-wide). */
void tr_opencl_set_debug(const tr_opencl_debug *d);

#endif
