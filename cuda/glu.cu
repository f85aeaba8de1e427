/* glu.cu: GLU, out = act(gate) * up with act silu, gelu (exact, erf) or gelu_tanh (core/ir.h), in
 * float: trc_act in common.cuh, which the fused gate/up GEMV (gemv.cu) uses too, so that the fused
 * and the lone op compute the same activation. */
#include "common.cuh"

#define GLU_THREADS 256

__global__ void glu_kernel(int act, const float *g, const float *u, float *out, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = trc_act(act, g[i]) * u[i];
}

extern "C" cudaError_t trc_glu(const trc_binary_args *a, cudaStream_t s)
{
    int64_t b = (a->n + GLU_THREADS - 1) / GLU_THREADS;
    unsigned grid = (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536);
    glu_kernel<<<grid, GLU_THREADS, 0, s>>>(a->act, a->x, a->y, a->out, a->n);
    return cudaGetLastError();
}
