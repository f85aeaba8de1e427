/* cuda_profile.c: where the GPU's time goes, per launch kind and shape (TRANSIT_CUDA_PROFILE=1).
 *
 * With the variable set, every lowered record is bracketed by CUDA events, the stream is
 * synchronised after each compute, and the time between a launch's event and the next one is added
 * to the record's label ("gemv f16 plain x3 K=4096 N=4096+1024+1024 T=1"). The label's weight bytes
 * give each matrix product its achieved read rate, the number to hold against the memory bound.
 * When the backend is freed the table goes to stderr, longest total first. Graph replay is turned
 * off (a replayed graph has no per-launch events), so the totals are those of kernel-by-kernel
 * launching: the profile says which kernels to work on, `transit bench` says how fast it all is.
 * The mean includes each kernel's first call, which in a short run can carry the loading of its
 * module (cuBLAS's kernels load lazily: 60 ms spread over the first GEMMs of a pp512 profile on the
 * H200); the best call is the kernel's own time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "dtype.h"
#include "error.h"

#define PROF_MAX_LABELS 256

struct trc_profile {
    struct {
        char label[96];
        long calls;
        double ms, best_ms, bytes, flops; /* best_ms: the fastest call, free of first-call costs */
    } row[PROF_MAX_LABELS];
    int n_rows;
    long dropped; /* launches whose label did not fit the table */
    cudaEvent_t *ev;
    int n_ev;
};

static const char *dtype_name(int dt) { return tr_dtype_name((tr_dtype)dt); }

/* The record's label, and the bytes of weights it reads and the FLOPs of its products. */
static void describe(const trc_record *r, char *label, size_t cap, double *bytes, double *flops)
{
    static const char *modes[] = {"plain", "add", "glu"};
    *bytes = *flops = 0.0;
    switch (r->kind) {
    case TRC_K_GEMV: {
        const trc_gemv_args *a = &r->u.gemv;
        int mats = a->mode == TRC_GEMV_GLU ? 2 : a->n_mats;
        int64_t rows = 0;
        for (int i = 0; i < mats; i++)
            rows += a->mode == TRC_GEMV_GLU ? a->N[0] : a->N[i];
        *bytes = (double)rows * (double)tr_row_bytes((tr_dtype)a->dtype, a->K);
        *flops = 2.0 * (double)rows * (double)a->K * a->T;
        int n = snprintf(label, cap, "gemv %s %s K=%lld N=%lld", dtype_name(a->dtype), modes[a->mode],
                         (long long)a->K, (long long)a->N[0]);
        for (int i = 1; i < a->n_mats && a->mode == TRC_GEMV_PLAIN && n > 0 && (size_t)n < cap; i++)
            n += snprintf(label + n, cap - (size_t)n, "+%lld", (long long)a->N[i]);
        if (n > 0 && (size_t)n < cap)
            snprintf(label + n, cap - (size_t)n, " T=%d", a->T);
        return;
    }
    case TRC_K_GEMM: {
        const trc_gemm_args *a = &r->u.gemm;
        *bytes = (double)a->N * (double)tr_row_bytes((tr_dtype)a->dtype, a->K);
        *flops = 2.0 * (double)a->N * (double)a->K * (double)a->T;
        snprintf(label, cap, "gemm %s K=%lld N=%lld T=%lld", dtype_name(a->dtype), (long long)a->K, (long long)a->N,
                 (long long)a->T);
        return;
    }
    case TRC_K_ATTN_TILED:
    case TRC_K_ATTN_ROWS:
    case TRC_K_ATTN_REDUCE: {
        const trc_attn_args *a = &r->u.attn;
        snprintf(label, cap, "%s hd=%d H=%d/%d T=%d%s%s%s", trc_kind_name(r->kind), a->hd, a->H, a->Hkv, a->T,
                 a->n_splits > 1 ? " split" : "", a->trans ? " transition" : "", a->diff ? " diff" : "");
        return;
    }
    default: snprintf(label, cap, "%s", trc_kind_name(r->kind)); return;
    }
}

tr_status trc_profile_init(cuda_backend *c)
{
    const char *env = getenv("TRANSIT_CUDA_PROFILE");
    if (!env || env[0] == '0' || env[0] == '\0')
        return TR_OK;
    c->prof = calloc(1, sizeof *c->prof);
    if (!c->prof)
        return tr_fail(TR_ERR_NOMEM, "cuda: out of memory for the profile");
    c->use_graphs = 0;
    tr_log("cuda: TRANSIT_CUDA_PROFILE: every launch timed, graph replay off");
    return TR_OK;
}

tr_status trc_profile_begin(cuda_backend *c)
{
    trc_profile *p = c->prof;
    if (p->n_ev < c->n_rec + 1) {
        cudaEvent_t *ev = realloc(p->ev, (size_t)(c->n_rec + 1) * sizeof *ev);
        if (!ev)
            return tr_fail(TR_ERR_NOMEM, "cuda: out of memory for the profile");
        p->ev = ev;
        for (; p->n_ev < c->n_rec + 1; p->n_ev++)
            TRC_TRY("cudaEventCreate", cudaEventCreate(&p->ev[p->n_ev]));
    }
    return TR_OK;
}

tr_status trc_profile_mark(cuda_backend *c, int i)
{
    TRC_TRY("cudaEventRecord", cudaEventRecord(c->prof->ev[i], c->stream));
    return TR_OK;
}

tr_status trc_profile_end(cuda_backend *c)
{
    trc_profile *p = c->prof;
    TRC_TRY("cudaEventSynchronize", cudaEventSynchronize(p->ev[c->n_rec]));
    for (int i = 0; i < c->n_rec; i++) {
        char label[96];
        double bytes, flops;
        float ms = 0.0f;
        describe(&c->rec[i], label, sizeof label, &bytes, &flops);
        TRC_TRY("cudaEventElapsedTime", cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]));
        int j = 0;
        while (j < p->n_rows && strcmp(p->row[j].label, label))
            j++;
        if (j == PROF_MAX_LABELS) {
            p->dropped++;
            continue;
        }
        if (j == p->n_rows) {
            memcpy(p->row[j].label, label, sizeof label);
            p->row[j].best_ms = ms;
            p->n_rows++;
        }
        p->row[j].calls++;
        p->row[j].ms += ms;
        if (ms < p->row[j].best_ms)
            p->row[j].best_ms = ms;
        p->row[j].bytes += bytes;
        p->row[j].flops += flops;
    }
    return TR_OK;
}

static int by_time(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b; /* the entries start with their time */
    return (x < y) - (x > y);
}

void trc_profile_report(cuda_backend *c)
{
    trc_profile *p = c->prof;
    if (!p)
        return;
    /* sort an index by total time */
    struct {
        double ms;
        int i;
    } order[PROF_MAX_LABELS];
    double total = 0.0;
    for (int j = 0; j < p->n_rows; j++) {
        order[j].ms = p->row[j].ms;
        order[j].i = j;
        total += p->row[j].ms;
    }
    qsort(order, (size_t)p->n_rows, sizeof order[0], by_time);
    fprintf(stderr, "cuda profile (%s): %.3f ms in %d kinds of launch%s\n", c->name, total, p->n_rows,
            p->dropped ? " (some launches dropped: table full)" : "");
    fprintf(stderr, "| %-58s | %7s | %10s | %6s | %9s | %9s | %6s | %8s |\n", "launch", "calls", "total ms", "share",
            "mean us", "best us", "GB/s", "TFLOP/s");
    for (int k = 0; k < p->n_rows; k++) {
        const int j = order[k].i;
        double ms = p->row[j].ms, s = ms * 1e-3;
        fprintf(stderr, "| %-58s | %7ld | %10.3f | %5.1f%% | %9.2f | %9.2f | ", p->row[j].label, p->row[j].calls, ms,
                total > 0 ? 100.0 * ms / total : 0.0, 1e3 * ms / (double)p->row[j].calls, 1e3 * p->row[j].best_ms);
        if (p->row[j].bytes > 0 && s > 0)
            fprintf(stderr, "%6.0f | %8.1f |\n", p->row[j].bytes / s * 1e-9, p->row[j].flops / s * 1e-12);
        else
            fprintf(stderr, "%6s | %8s |\n", "-", "-");
    }
    for (int i = 0; i < p->n_ev; i++)
        cudaEventDestroy(p->ev[i]);
    free(p->ev);
    free(p);
    c->prof = NULL;
}
