/* kv_write.cu: KV_WRITE for up to two caches (a layer's keys and values) in one launch: rows
 * [pos0, pos0 + T) of each cache get the batch's rows. pos0 is read from device memory, so a
 * captured decoding step can be replayed at the next position. */
#include "common.cuh"

#define KV_THREADS 256

__global__ __launch_bounds__(KV_THREADS) void kv_write_kernel(const trc_kv_write_args a, int vec)
{
    const int n = blockIdx.y;
    const int64_t t = blockIdx.x, pos = *a.pos0[n] + t;
    const float *src = a.src[n] + (t + (a.src_row0[n] ? (int64_t)*a.src_row0[n] : 0)) * a.width;
    float *dst = a.cache[n] + pos * a.cache_rs;
    if (vec) {
        for (int64_t i = threadIdx.x; i < a.width / 4; i += KV_THREADS)
            ((float4 *)dst)[i] = ((const float4 *)src)[i];
    } else {
        for (int64_t i = threadIdx.x; i < a.width; i += KV_THREADS)
            dst[i] = src[i];
    }
}

extern "C" cudaError_t trc_kv_write(const trc_kv_write_args *a, cudaStream_t s)
{
    int vec = a->width % 4 == 0 && a->cache_rs % 4 == 0;
    for (int n = 0; n < a->n; n++)
        vec = vec && ((uintptr_t)a->src[n] & 15) == 0 && ((uintptr_t)a->cache[n] & 15) == 0;
    kv_write_kernel<<<dim3((unsigned)a->T, (unsigned)a->n), KV_THREADS, 0, s>>>(*a, vec);
    return cudaGetLastError();
}
