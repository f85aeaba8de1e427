/* swiglu.cu: SWIGLU, out = silu(gate) * up with silu(g) = g / (1 + exp(-g)), in float with IEEE
 * expf and division (an overflowing exp(-g) gives g / inf = -0, as the reference's double does). */
#include "common.cuh"

#define SW_THREADS 256

__global__ void swiglu_kernel(const float *g, const float *u, float *out, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float x = g[i];
        out[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

extern "C" cudaError_t trc_swiglu(const trc_binary_args *a, cudaStream_t s)
{
    int64_t b = (a->n + SW_THREADS - 1) / SW_THREADS;
    unsigned grid = (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536);
    swiglu_kernel<<<grid, SW_THREADS, 0, s>>>(a->x, a->y, a->out, a->n);
    return cudaGetLastError();
}
