/* cuda_backend.c: the CUDA backend's table: the device, buffers in device memory (plain cudaMalloc),
 * transfers, description. How a graph becomes kernel launches is cuda_lower.c; the kernels are the
 * .cu files beside it (docs/cuda.md).
 *
 * Every CUDA or cuBLAS error becomes TR_ERR_BACKEND with the API's own message; nothing here exits
 * or asserts. Without a driver or a device, creation fails with "no device" and touches nothing else
 * (the runtime reports the missing driver as an error; only libcudart is linked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "cuda_internal.h"
#include "error.h"

#define UPLOAD_CHUNK ((size_t)16 << 20) /* pinned staging chunk for large uploads (weights) */
#define UPLOAD_DIRECT ((size_t)1 << 20) /* smaller uploads copy straight from pageable memory */

tr_status trc_fail_cuda(const char *call, cudaError_t e)
{
    cudaGetLastError(); /* clear it: the next kernel launch checks cudaGetLastError for its own */
    return tr_fail(e == cudaErrorMemoryAllocation ? TR_ERR_NOMEM : TR_ERR_BACKEND, "cuda: %s failed: %s", call,
                   cudaGetErrorString(e));
}

tr_status trc_use_device(cuda_backend *c)
{
    TRC_TRY("cudaSetDevice", cudaSetDevice(c->device));
    return TR_OK;
}

tr_status trc_grow_device(cuda_backend *c, void **ptr, size_t *size, size_t need, const char *what)
{
    if (need <= *size)
        return TR_OK;
    need = (need + 0xfffff) & ~(size_t)0xfffff; /* whole MiB: fewer regrowths */
    TRC_TRY("cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
    if (*ptr)
        TRC_TRY("cudaFree", cudaFree(*ptr));
    *ptr = NULL;
    *size = 0;
    cudaError_t e = cudaMalloc(ptr, need);
    if (e != cudaSuccess) {
        *ptr = NULL;
        cudaGetLastError();
        return tr_fail(e == cudaErrorMemoryAllocation ? TR_ERR_NOMEM : TR_ERR_BACKEND,
                       "cuda: cudaMalloc of %zu bytes for %s failed: %s", need, what, cudaGetErrorString(e));
    }
    *size = need;
    return TR_OK;
}

static void cuda_free(tr_backend *b)
{
    cuda_backend *c = b->impl;
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    trc_profile_report(c);
    trc_lower_free(c);
    if (c->exec)
        cudaGraphExecDestroy(c->exec);
    cudaFree(c->arena.impl);
    cudaFree(c->workspace);
    cudaFree(c->io.impl);
    if (c->staging)
        cudaFreeHost(c->staging);
    for (int i = 0; i < 2; i++) {
        if (c->up_pinned[i])
            cudaFreeHost(c->up_pinned[i]);
        if (c->up_done[i])
            cudaEventDestroy(c->up_done[i]);
    }
    if (c->io_done)
        cudaEventDestroy(c->io_done);
    if (c->cublas)
        cublasDestroy(c->cublas);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

static void cuda_describe(tr_backend *b, char *buf, size_t cap)
{
    cuda_backend *c = b->impl;
    snprintf(buf, cap,
             "cuda: %s, %.1f GiB, compute capability %d.%d, %d SMs, %d MB L2; CUDA runtime %d.%d, driver %d.%d; "
             "kernels for sm_80/sm_90, cuBLAS for prefill products%s",
             c->name, (double)c->total_mem / (1024.0 * 1024.0 * 1024.0), c->cc_major, c->cc_minor, c->sm_count,
             c->l2_bytes >> 20, c->runtime_version / 1000, c->runtime_version % 1000 / 10, c->driver_version / 1000,
             c->driver_version % 1000 / 10, c->use_pdl ? ", programmatic dependent launch on" : "");
}

static tr_status cuda_buffer_alloc(tr_backend *b, size_t size, tr_buffer **out)
{
    TR_TRY(trc_use_device(b->impl));
    tr_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return tr_fail(TR_ERR_NOMEM, "cuda: out of host memory");
    void *p = NULL;
    size_t sz = size ? size : 1;
    cudaError_t e = cudaMalloc(&p, sz);
    if (e != cudaSuccess) {
        cudaGetLastError();
        free(buf);
        return tr_fail(e == cudaErrorMemoryAllocation ? TR_ERR_NOMEM : TR_ERR_BACKEND,
                       "cuda: cudaMalloc of %zu bytes failed: %s", sz, cudaGetErrorString(e));
    }
    *buf = (tr_buffer){.backend = b, .host = NULL, .size = size, .impl = p};
    *out = buf;
    return TR_OK;
}

static void cuda_buffer_free(tr_buffer *buf)
{
    if (!buf)
        return;
    cuda_backend *c = buf->backend->impl;
    cudaStreamSynchronize(c->stream); /* no kernel may still use it */
    cudaFree(buf->impl);
    free(buf);
}

/* Host to device, ordered after the work already queued. Large copies go through two pinned chunks,
 * so that reading the source (an mmapped file: page faults) overlaps the DMA of the previous chunk. */
static tr_status cuda_upload(tr_buffer *buf, size_t offset, const void *src, size_t n)
{
    cuda_backend *c = buf->backend->impl;
    TR_TRY(tr_buffer_check_span(buf, offset, n, "upload"));
    TR_TRY(trc_use_device(c));
    char *dst = (char *)buf->impl + offset;
    if (n >= UPLOAD_DIRECT && !c->up_pinned[0]) {
        for (int i = 0; i < 2; i++) {
            if (cudaHostAlloc(&c->up_pinned[i], UPLOAD_CHUNK, cudaHostAllocDefault) != cudaSuccess ||
                cudaEventCreateWithFlags(&c->up_done[i], cudaEventDisableTiming) != cudaSuccess) {
                cudaGetLastError();
                tr_log("cuda: no pinned staging memory; uploads copy from pageable memory");
                break;
            }
        }
    }
    if (n < UPLOAD_DIRECT || !c->up_pinned[1] || !c->up_done[1]) {
        TRC_TRY("cudaMemcpyAsync", cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream));
        TRC_TRY("cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
        return TR_OK;
    }
    for (size_t done = 0, k = 0; done < n; k ^= 1) {
        size_t len = n - done < UPLOAD_CHUNK ? n - done : UPLOAD_CHUNK;
        TRC_TRY("cudaEventSynchronize", cudaEventSynchronize(c->up_done[k]));
        memcpy(c->up_pinned[k], (const char *)src + done, len);
        TRC_TRY("cudaMemcpyAsync", cudaMemcpyAsync(dst + done, c->up_pinned[k], len, cudaMemcpyHostToDevice, c->stream));
        TRC_TRY("cudaEventRecord", cudaEventRecord(c->up_done[k], c->stream));
        done += len;
    }
    TRC_TRY("cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
    return TR_OK;
}

/* Device to host, after every queued kernel: this is where asynchronous kernel errors surface. */
static tr_status cuda_download(tr_buffer *buf, size_t offset, void *dst, size_t n)
{
    cuda_backend *c = buf->backend->impl;
    TR_TRY(tr_buffer_check_span(buf, offset, n, "download"));
    TR_TRY(trc_use_device(c));
    TRC_TRY("cudaMemcpyAsync", cudaMemcpyAsync(dst, (const char *)buf->impl + offset, n, cudaMemcpyDeviceToHost,
                                               c->stream));
    TRC_TRY("cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
    return TR_OK;
}

static tr_status cuda_synchronize(tr_backend *b)
{
    cuda_backend *c = b->impl;
    TRC_TRY("cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
    return TR_OK;
}

void tr_cuda_graph_counts(tr_backend *b, long *captures, long *replays)
{
    cuda_backend *c = b->impl;
    *captures = c->n_captures;
    *replays = c->n_replays;
}

static void cuda_memory(tr_backend *b, size_t *activations, size_t *workspace)
{
    cuda_backend *c = b->impl;
    *activations = c->arena.size;
    *workspace = c->workspace_size + c->io.size;
}

static const tr_backend_iface cuda_iface = {
    .name = "cuda",
    .free = cuda_free,
    .describe = cuda_describe,
    .supports_op = trc_supports_op,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_from_host = NULL, /* weights are copied to the device (core/model.c) */
    .buffer_free = cuda_buffer_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .graph_compute = trc_graph_compute,
    .synchronize = cuda_synchronize,
    .memory = cuda_memory,
    .bandwidth = trc_bandwidth,
    .gemm_rate = trc_gemm_rate,
};

static tr_status setup(cuda_backend *c, int device)
{
    struct cudaDeviceProp prop;
    TRC_TRY("cudaSetDevice", cudaSetDevice(device));
    TRC_TRY("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, device));
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    c->device = device;
    c->total_mem = prop.totalGlobalMem;
    c->cc_major = prop.major;
    c->cc_minor = prop.minor;
    c->sm_count = prop.multiProcessorCount;
    c->l2_bytes = prop.l2CacheSize;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    cudaRuntimeGetVersion(&c->runtime_version);
    cudaDriverGetVersion(&c->driver_version);
    if (prop.major < 8)
        return tr_fail(TR_ERR_UNSUPPORTED,
                       "cuda: %s has compute capability %d.%d; the CUDA backend is built for 8.0 and newer",
                       prop.name, prop.major, prop.minor);
    TRC_TRY("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    TRC_TRY("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&c->io_done, cudaEventDisableTiming));
    cublasStatus_t st = cublasCreate(&c->cublas);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetStream(c->cublas, c->stream);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH); /* never TF32 for f32 products */
    if (st != CUBLAS_STATUS_SUCCESS)
        return tr_fail(TR_ERR_BACKEND, "cuda: cublasCreate failed: %s", cublasGetStatusString(st));
    /* the largest block: differential attention's tiles for head size 128 (docs/cuda.md) */
    size_t smem_need = trc_attention_tiled_smem(128, 1);
    if (smem_need > c->smem_optin)
        return tr_fail(TR_ERR_UNSUPPORTED, "cuda: %s allows %zu bytes of shared memory per block, %zu needed",
                       c->name, c->smem_optin, smem_need);
    TRC_TRY("cudaFuncSetAttribute", trc_kernels_init());
    c->arena = (tr_buffer){.backend = &c->base};
    c->io = (tr_buffer){.backend = &c->base};
    const char *g = getenv("TRANSIT_CUDA_GRAPHS");
    c->use_graphs = !(g && g[0] == '0');
    /* experimental until measured on a GPU (docs/cuda.md): off unless asked for */
    const char *pdl = getenv("TRANSIT_CUDA_PDL");
    c->use_pdl = pdl && pdl[0] == '1' && prop.major >= 9;
    if (pdl && pdl[0] == '1' && !c->use_pdl)
        tr_log("cuda: TRANSIT_CUDA_PDL=1 needs compute capability 9.0; %s has %d.%d", prop.name, prop.major,
               prop.minor);
    const char *env_split = getenv("TRANSIT_CUDA_GEMV_SPLIT"); /* the tests cover each GEMV form with it */
    const int split = env_split ? atoi(env_split) : 0;
    c->gemv_split = split == 1 || split == 2 || split == 4 ? split : 0;
    return trc_profile_init(c);
}

tr_status tr_cuda_backend_create(const tr_backend_options *opt, tr_backend **out)
{
    (void)opt; /* n_threads and reference concern the CPU */
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        tr_log("cuda: %s", e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
        cudaGetLastError();
        return tr_fail(TR_ERR_UNSUPPORTED, "no device");
    }
    const char *env = getenv("TRANSIT_CUDA_DEVICE");
    int device = env ? atoi(env) : 0;
    if (device < 0 || device >= n)
        return tr_fail(TR_ERR_INVALID_ARG, "cuda: TRANSIT_CUDA_DEVICE=%s, but there are %d devices", env, n);
    cuda_backend *c = calloc(1, sizeof *c);
    if (!c)
        return tr_fail(TR_ERR_NOMEM, "cuda: out of host memory");
    c->base.iface = &cuda_iface;
    c->base.impl = c;
    tr_status s = setup(c, device);
    if (s != TR_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tr_last_error());
        cuda_free(&c->base);
        return tr_fail(s, "%s", msg);
    }
    *out = &c->base;
    return TR_OK;
}
