/* cuda_internal.h: the CUDA backend's state, shared by its C files: cuda_backend.c (device, buffers,
 * transfers), cuda_lower.c (a graph placed and lowered to records), cuda_fuse.c (which nodes share
 * a launch), cuda_run.c (records launched, or replayed as a CUDA graph), cuda_measure.c (bench's
 * references). */
#ifndef TR_CUDA_INTERNAL_H
#define TR_CUDA_INTERNAL_H

#include <stdint.h>

#include "backend.h"
#include "cuda_kernels.h"

/* One kernel launch (or cuBLAS call) of a lowered graph. Records are zeroed before they are
 * filled, so that their bytes identify a launch sequence (cuda_lower.c, cuda_run.c). */
typedef enum trc_kind {
    TRC_K_GET_ROWS,
    TRC_K_RMS_NORM,
    TRC_K_BINARY,
    TRC_K_GLU,
    TRC_K_ROPE,
    TRC_K_KV_WRITE,
    TRC_K_GEMM,
    TRC_K_GEMV,
    TRC_K_ATTN_TILED,
    TRC_K_ATTN_ROWS,
    TRC_K_ATTN_REDUCE,
} trc_kind;

typedef struct trc_record {
    trc_kind kind;
    union {
        trc_get_rows_args get_rows;
        trc_rms_norm_args rms_norm;
        trc_binary_args binary;
        trc_rope_args rope;
        trc_kv_write_args kv_write;
        trc_gemm_args gemm;
        trc_gemv_args gemv;
        trc_attn_args attn;
    } u;
} trc_record;

/* A launch that computes several adjacent nodes (cuda_fuse.c), recorded at its first node. */
enum { FZ_NONE, FZ_QKV, FZ_ADD, FZ_GLU, FZ_ROPE2, FZ_KV2 };
typedef struct trc_fusion {
    int kind;
    int m[2]; /* the other nodes of the launch, or -1 */
} trc_fusion;

/* A node given a temporary src[2] for the memory plan (cuda_fuse.c), and what that slot held. */
typedef struct trc_link {
    tr_tensor *node, *saved;
} trc_link;

typedef struct cuda_backend {
    tr_backend base;
    int device;
    char name[256];
    size_t total_mem, smem_optin;
    int cc_major, cc_minor, sm_count, l2_bytes, runtime_version, driver_version;
    cudaStream_t stream;
    cublasHandle_t cublas;

    tr_buffer arena; /* intermediates of the current graph (impl: device pointer) */
    void *workspace; /* kernel scratch: converted activations, split-K partials */
    size_t workspace_size;
    tr_buffer io;        /* device copies of host leaves (ids, positions) and dynamic parameters */
    void *staging;       /* pinned host mirror of io */
    size_t staging_size;
    cudaEvent_t io_done; /* the last copy out of staging has finished */
    void *up_pinned[2];  /* double-buffered pinned chunks for large uploads */
    cudaEvent_t up_done[2];

    /* per-compute scratch of the lowering */
    trc_record *rec;
    int n_rec, cap_rec;
    const tr_tensor **host_leaf;
    size_t *host_off;
    int n_host, cap_host;
    int *uses;
    unsigned char *done; /* node computed by an earlier node's fused launch */
    trc_fusion *fz;        /* per node: the launch it leads (cuda_fuse.c) */
    trc_link *linked;      /* nodes given a temporary source for the memory plan */
    int cap_nodes;
    const tr_tensor **map_key; /* node -> index, open addressing */
    int *map_val;
    int map_cap;

    /* CUDA graph replay of repeated launch sequences (decoding) */
    int use_graphs;
    int use_pdl; /* GEMVs as programmatic dependent launches (TRANSIT_CUDA_PDL=1, sm_90+) */
    int gemv_split; /* warps per GEMV row forced by TRANSIT_CUDA_GEMV_SPLIT=1|2|4 (tests); 0: by size */
    cudaGraphExec_t exec;
    trc_record *exec_rec, *last_rec; /* the captured sequence; the previous compute's */
    int n_exec_rec, cap_exec_rec, n_last_rec, cap_last_rec;
    long n_replays, n_captures;
    struct trc_profile *prof; /* TRANSIT_CUDA_PROFILE=1: per-launch times (cuda_profile.c) */
} cuda_backend;

typedef struct trc_profile trc_profile;

tr_status trc_fail_cuda(const char *call, cudaError_t e);
const char *trc_kind_name(trc_kind k);

/* cuda_profile.c: init reads TRANSIT_CUDA_PROFILE (and turns graph replay off); begin, mark(i) before
 * record i and mark(n_rec) after the last, end (synchronises and adds up); report prints the table
 * to stderr and frees it. */
tr_status trc_profile_init(cuda_backend *c);
tr_status trc_profile_begin(cuda_backend *c);
tr_status trc_profile_mark(cuda_backend *c, int i);
tr_status trc_profile_end(cuda_backend *c);
void trc_profile_report(cuda_backend *c);
#define TRC_TRY(name, expr)                                        \
    do {                                                           \
        cudaError_t trc_e_ = (expr);                               \
        if (trc_e_ != cudaSuccess)                                 \
            return trc_fail_cuda(name, trc_e_);                    \
    } while (0)

/* Makes the backend's device current for this thread (the library may be called from several
 * threads, or beside other CUDA code that selects another device). */
tr_status trc_use_device(cuda_backend *c);

/* Grows a device buffer (contents not kept); the stream is synchronised first. */
tr_status trc_grow_device(cuda_backend *c, void **ptr, size_t *size, size_t need, const char *what);

/* cuda_measure.c: the references of `transit bench` (backend.h's bandwidth and gemm_rate) */
double trc_bandwidth(tr_backend *b);
double trc_gemm_rate(tr_backend *b, tr_dtype type, int m, int n, int k);

/* cuda_lower.c */
bool trc_supports_op(tr_backend *b, const tr_tensor *n);
tr_status trc_graph_compute(tr_backend *b, tr_graph *g);
void trc_lower_free(cuda_backend *c);
tr_status trc_reserve(void **p, int *cap, int need, size_t elem); /* grows an array to need elements */

/* cuda_fuse.c: decides every fused launch of g (c->fz, c->done; c->uses counted; none when
 * g->keep_all) and links nodes for the memory plan; the caller undoes the links in linked[] after
 * tr_memplan, with trc_unlink (which puts back what the linked slots held). */
void trc_plan_fusions(cuda_backend *c, tr_graph *g, trc_link *linked, int *n_linked);
void trc_unlink(const trc_link *linked, int n_linked);
/* Which source of t is x: 0, 1, or -1. */
static inline int trc_src_is(const tr_tensor *t, const tr_tensor *x)
{
    return t->src[0] == x ? 0 : t->src[1] == x ? 1 : -1;
}

/* cuda_run.c: launches the current records (c->rec), or replays them as a CUDA graph. */
tr_status trc_run(cuda_backend *c);

#endif
