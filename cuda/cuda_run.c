/* cuda_run.c: the lowered records of a graph (cuda_lower.c) launched on the backend's stream, one
 * kernel or cuBLAS call each, or replayed as a CUDA graph.
 *
 * Decoding repeats the same launch sequence every step: the values that change (a KV write's first
 * row, an attention's n_past) are read by the kernels from device memory, so the records of two
 * steps are byte-identical. When a sequence without cuBLAS calls equals the previous compute's, it
 * is captured into a CUDA graph, and every later compute with the same records is one
 * cudaGraphLaunch. Records are compared whole (memcmp against a copy), never by a hash alone: a
 * collision would replay the wrong launches. TRANSIT_CUDA_GRAPHS=0 turns capture off. */
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

const char *trc_kind_name(trc_kind k)
{
    static const char *names[] = {"get_rows", "rms_norm", "add/mul", "glu", "rope", "kv_write",
                                  "cublasGemmEx", "gemv", "attention_tiled", "attention_rows", "attention_reduce"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static tr_status run_record(cuda_backend *c, const trc_record *r)
{
    cudaError_t e = cudaSuccess;
    switch (r->kind) {
    case TRC_K_GET_ROWS: e = trc_get_rows(&r->u.get_rows, c->stream); break;
    case TRC_K_RMS_NORM: e = trc_rms_norm(&r->u.rms_norm, c->stream); break;
    case TRC_K_BINARY: e = trc_binary(&r->u.binary, c->stream); break;
    case TRC_K_GLU: e = trc_glu(&r->u.binary, c->stream); break;
    case TRC_K_ROPE: e = trc_rope(&r->u.rope, c->stream); break;
    case TRC_K_KV_WRITE: e = trc_kv_write(&r->u.kv_write, c->stream); break;
    case TRC_K_GEMV: e = trc_gemv(&r->u.gemv, c->stream); break;
    case TRC_K_ATTN_TILED: e = trc_attention_tiled(&r->u.attn, c->stream); break;
    case TRC_K_ATTN_ROWS: e = trc_attention_rows(&r->u.attn, c->stream); break;
    case TRC_K_ATTN_REDUCE: e = trc_attention_reduce(&r->u.attn, c->stream); break;
    case TRC_K_GEMM: {
        cublasStatus_t st = trc_gemm(&r->u.gemm, c->cublas, c->stream, &e);
        if (e != cudaSuccess)
            return tr_fail(TR_ERR_BACKEND, "cuda: convert kernel launch failed: %s", cudaGetErrorString(e));
        if (st != CUBLAS_STATUS_SUCCESS)
            return tr_fail(TR_ERR_BACKEND, "cuda: %s failed: %s", r->u.gemm.dtype == TRC_F32 ? "cublasSgemm" : "cublasGemmEx",
                           cublasGetStatusString(st));
        return TR_OK;
    }
    }
    if (e != cudaSuccess)
        return tr_fail(TR_ERR_BACKEND, "cuda: %s kernel launch failed: %s", trc_kind_name(r->kind), cudaGetErrorString(e));
    return TR_OK;
}

static tr_status run_records(cuda_backend *c)
{
    if (c->prof) { /* TRANSIT_CUDA_PROFILE: each launch between two events */
        TR_TRY(trc_profile_begin(c));
        for (int i = 0; i < c->n_rec; i++) {
            TR_TRY(trc_profile_mark(c, i));
            TR_TRY(run_record(c, &c->rec[i]));
        }
        TR_TRY(trc_profile_mark(c, c->n_rec));
        return trc_profile_end(c);
    }
    for (int i = 0; i < c->n_rec; i++)
        TR_TRY(run_record(c, &c->rec[i]));
    return TR_OK;
}

/* Whether the current records equal a saved sequence, byte for byte (records are zeroed before they
 * are filled, so padding compares too). */
static bool same_records(const cuda_backend *c, const trc_record *saved, int n_saved)
{
    return saved && n_saved == c->n_rec && memcmp(saved, c->rec, (size_t)c->n_rec * sizeof *c->rec) == 0;
}

/* Saves the current records into *dst (grown as needed). */
static tr_status save_records(const cuda_backend *c, trc_record **dst, int *n_dst, int *cap)
{
    TR_TRY(trc_reserve((void **)dst, cap, c->n_rec, sizeof **dst));
    memcpy(*dst, c->rec, (size_t)c->n_rec * sizeof *c->rec);
    *n_dst = c->n_rec;
    return TR_OK;
}

/* Captures the records into a CUDA graph (replacing the previous one). */
static tr_status capture(cuda_backend *c)
{
    if (c->exec) {
        cudaGraphExecDestroy(c->exec);
        c->exec = NULL;
    }
    TRC_TRY("cudaStreamBeginCapture", cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    tr_status s = run_records(c);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (s != TR_OK) {
        if (graph)
            cudaGraphDestroy(graph);
        return s;
    }
    if (e != cudaSuccess)
        return trc_fail_cuda("cudaStreamEndCapture", e);
    e = cudaGraphInstantiate(&c->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        c->exec = NULL;
        return trc_fail_cuda("cudaGraphInstantiate", e);
    }
    c->n_captures++;
    return save_records(c, &c->exec_rec, &c->n_exec_rec, &c->cap_exec_rec);
}

tr_status trc_run(cuda_backend *c)
{
    bool graphable = c->use_graphs && c->n_rec > 0;
    for (int i = 0; i < c->n_rec && graphable; i++)
        graphable = c->rec[i].kind != TRC_K_GEMM;
    tr_status s = TR_OK;
    if (graphable && c->exec && same_records(c, c->exec_rec, c->n_exec_rec)) {
        TRC_TRY("cudaGraphLaunch", cudaGraphLaunch(c->exec, c->stream));
        c->n_replays++;
    } else if (graphable && same_records(c, c->last_rec, c->n_last_rec)) {
        s = capture(c);
        if (s == TR_OK)
            TRC_TRY("cudaGraphLaunch", cudaGraphLaunch(c->exec, c->stream));
        else {
            tr_log("cuda: graph capture failed (%s); launching kernel by kernel", tr_last_error());
            cudaGetLastError();
            c->use_graphs = 0;
            s = run_records(c);
        }
    } else {
        s = run_records(c);
    }
    /* what the next compute is compared with (nothing, when it cannot become a graph) */
    if (graphable)
        TR_TRY(save_records(c, &c->last_rec, &c->n_last_rec, &c->cap_last_rec));
    else
        c->n_last_rec = 0;
    return s;
}
