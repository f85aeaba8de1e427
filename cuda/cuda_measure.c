/* cuda_measure.c: the two physical references `transit bench` holds the CUDA backend to, measured in
 * the same run as the benchmark (machines differ, clocks drift, neighbours share the GPU):
 *
 *   bandwidth: a device-to-device copy, counted as bytes read plus bytes written per second (the
 *     convention of CUDA's bandwidthTest). Decode reads every weight once per token, so
 *     weight bytes / this rate is the shortest a decoding step can take.
 *   gemm_rate: cuBLAS alone on one product of the given sizes, called exactly as matmul.cu calls
 *     it for prefill (trc_gemm_product: weights and activations of the weight type, f32
 *     accumulation and output, tensor cores; SGEMM without TF32 for f32), without the activation
 *     conversion prefill also pays, on random values (zeros run faster on the tensor cores and
 *     would flatter the reference).
 *
 * Both take the median of several timed repetitions after a warm-up, with CUDA events on the
 * backend's stream. Either returns 0 on any CUDA error (with the reason in the verbose log): a
 * missing reference must not fail a benchmark. */
#include <stdint.h>
#include <stdlib.h>

#include "cuda_internal.h"
#include "error.h"
#include "half.h"

#define REPS 9

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The median time in seconds of REPS runs of step(), after one warm-up run; < 0 on error. */
static double time_median(cuda_backend *c, cudaError_t (*step)(cuda_backend *, void *), void *arg, const char **what)
{
    cudaEvent_t ev[REPS + 1] = {0};
    float ms[REPS];
    double result = -1;
    int n_ev = 0;
    cudaError_t e = step(c, arg);
    *what = "the warm-up";
    for (; e == cudaSuccess && n_ev <= REPS; n_ev++)
        e = cudaEventCreate(&ev[n_ev]);
    if (e == cudaSuccess) {
        *what = "a timed run";
        e = cudaEventRecord(ev[0], c->stream);
        for (int r = 0; r < REPS && e == cudaSuccess; r++)
            if ((e = step(c, arg)) == cudaSuccess)
                e = cudaEventRecord(ev[r + 1], c->stream);
    }
    if (e == cudaSuccess)
        e = cudaEventSynchronize(ev[REPS]);
    for (int r = 0; r < REPS && e == cudaSuccess; r++)
        e = cudaEventElapsedTime(&ms[r], ev[r], ev[r + 1]);
    if (e == cudaSuccess) {
        qsort(ms, REPS, sizeof *ms, cmp_float);
        result = ms[REPS / 2] * 1e-3;
    } else {
        tr_log("cuda: measuring %s failed: %s", *what, cudaGetErrorString(e));
        cudaGetLastError();
    }
    for (int i = 0; i < n_ev; i++)
        cudaEventDestroy(ev[i]);
    return result;
}

typedef struct {
    void *src, *dst;
    size_t bytes;
} copy_job;

static cudaError_t copy_step(cuda_backend *c, void *arg)
{
    copy_job *j = arg;
    return cudaMemcpyAsync(j->dst, j->src, j->bytes, cudaMemcpyDeviceToDevice, c->stream);
}

double trc_bandwidth(tr_backend *b)
{
    cuda_backend *c = b->impl;
    if (trc_use_device(c) != TR_OK)
        return 0;
    /* 1 GiB each way, far past the 50 MB L2; a sixteenth of the memory on smaller devices */
    size_t bytes = (size_t)1 << 30;
    while (bytes > ((size_t)16 << 20) && bytes > c->total_mem / 16)
        bytes /= 2;
    copy_job j = {.bytes = bytes};
    double rate = 0;
    if (cudaMalloc(&j.src, bytes) == cudaSuccess && cudaMalloc(&j.dst, bytes) == cudaSuccess &&
        cudaMemsetAsync(j.src, 0x3c, bytes, c->stream) == cudaSuccess) {
        const char *what;
        double t = time_median(c, copy_step, &j, &what);
        if (t > 0)
            rate = 2.0 * (double)bytes / t;
    } else {
        tr_log("cuda: no memory to measure the copy bandwidth with (%zu bytes twice)", bytes);
    }
    cudaGetLastError();
    cudaStreamSynchronize(c->stream);
    cudaFree(j.src);
    cudaFree(j.dst);
    return rate;
}

typedef struct {
    trc_gemm_args args;
    cublasStatus_t status;
} gemm_job;

static cudaError_t gemm_step(cuda_backend *c, void *arg)
{
    gemm_job *j = arg;
    j->status = trc_gemm_product(&j->args, c->cublas, c->stream);
    return j->status == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
}

/* Random values in [-1, 1) of the given type, written by the host and copied up once. */
static cudaError_t upload_random(cuda_backend *c, void *dst, int dtype, size_t n, uint64_t seed)
{
    size_t esize = dtype == TRC_F32 ? 4 : 2;
    void *host = malloc(n * esize);
    if (!host)
        return cudaErrorMemoryAllocation;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        float v = (float)((double)(seed >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
        if (dtype == TRC_F32)
            ((float *)host)[i] = v;
        else
            ((uint16_t *)host)[i] = dtype == TRC_F16 ? tr_f32_to_f16(v) : tr_f32_to_bf16(v);
    }
    cudaError_t e = cudaMemcpyAsync(dst, host, n * esize, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->stream);
    free(host);
    return e;
}

double trc_gemm_rate(tr_backend *b, tr_dtype type, int m, int n, int k)
{
    cuda_backend *c = b->impl;
    int dtype = type == TR_F16 ? TRC_F16 : type == TR_BF16 ? TRC_BF16 : type == TR_F32 ? TRC_F32 : -1;
    if (dtype < 0 || m <= 0 || n <= 0 || k <= 0 || trc_use_device(c) != TR_OK)
        return 0;
    size_t wsize = dtype == TRC_F32 ? 4 : 2;
    gemm_job j = {.args = {.dtype = dtype, .N = n, .T = m, .K = k}};
    void *w = NULL, *x = NULL, *out = NULL; /* x: activations already of the weight type */
    double rate = 0;
    cudaError_t e = cudaMalloc(&w, (size_t)n * k * wsize);
    if (e == cudaSuccess)
        e = cudaMalloc(&x, (size_t)m * k * wsize);
    if (e == cudaSuccess)
        e = cudaMalloc(&out, (size_t)m * n * sizeof(float));
    if (e == cudaSuccess)
        e = upload_random(c, w, dtype, (size_t)n * k, 1);
    if (e == cudaSuccess)
        e = upload_random(c, x, dtype, (size_t)m * k, 2);
    if (e == cudaSuccess) {
        j.args.w = w;
        j.args.x = x; /* read by SGEMM (f32) */
        j.args.xconv = x; /* read by GemmEx (f16, bf16) */
        j.args.out = out;
        const char *what;
        double t = time_median(c, gemm_step, &j, &what);
        if (t > 0)
            rate = 2.0 * m * (double)n * k / t;
        else if (j.status != CUBLAS_STATUS_SUCCESS)
            tr_log("cuda: cuBLAS in %s: %s", what, cublasGetStatusString(j.status));
    } else {
        tr_log("cuda: preparing a %dx%dx%d product to time failed: %s", m, n, k, cudaGetErrorString(e));
    }
    cudaGetLastError();
    cudaStreamSynchronize(c->stream);
    cudaFree(w);
    cudaFree(x);
    cudaFree(out);
    return rate;
}
