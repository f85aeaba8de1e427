/* cl_sources.h: the OpenCL C sources of kernels/, embedded in the library at build time
 * (embed_cl.cmake) and compiled by the driver at run time (cl_program.c). */
#ifndef TR_CL_SOURCES_H
#define TR_CL_SOURCES_H

typedef struct tr_cl_source {
    const char *name; /* the file name without .cl */
    const char *text;
} tr_cl_source;

extern const tr_cl_source tr_cl_sources[];
extern const int tr_cl_n_sources;

#endif
