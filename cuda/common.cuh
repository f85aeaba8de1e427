/* common.cuh: device helpers shared by the CUDA kernels: warp and block reductions, loads of f32,
 * f16 and bf16 elements, the GLU activations. Kernels use IEEE expf, sqrtf and division (the build
 * has no fast-math), so that element-wise results stay within design §6's 1e-7 NMSE of the
 * double-precision reference. */
#ifndef TR_CUDA_COMMON_CUH
#define TR_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_kernels.h"

#define TRC_FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(TRC_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(TRC_FULL_MASK, v, o));
    return v;
}

/* Element i of an array of dtype TRC_F32 / TRC_F16 / TRC_BF16, as float. */
__device__ __forceinline__ float load_f32(const void *p, int dtype, int64_t i)
{
    if (dtype == TRC_F16)
        return __half2float(((const __half *)p)[i]);
    if (dtype == TRC_BF16)
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

/* The GLU activations of core/ir.h (act: TRC_ACT_*), in float: IEEE expf and division for silu
 * (an overflowing exp(-g) gives g / inf = -0, as the reference's double does), erff for the exact
 * gelu, tanhf for its tanh approximation (each within 2 ulp, far inside design §6's 1e-7). */
__device__ __forceinline__ float trc_act(int act, float g)
{
    if (act == TRC_ACT_GELU)
        return 0.5f * g * (1.0f + erff(g * 0.70710678118654752f));
    if (act == TRC_ACT_GELU_TANH)
        return 0.5f * g * (1.0f + tanhf(0.79788456080286536f * (g + 0.044715f * g * g * g)));
    return g / (1.0f + expf(-g));
}

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

/* Block sum for blockDim.x a multiple of 32 (<= 1024); every thread gets the result. scratch: 32 floats. */
__device__ __forceinline__ float block_sum(float v, float *scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read from a previous call */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

/* Programmatic dependent launch (Hopper and newer; TRANSIT_CUDA_PDL=1, docs/cuda.md). A kernel
 * launched with the programmatic-serialization attribute may start before the previous kernel in
 * the stream has finished: until trc_wait_prior_grid() it may only read what no earlier kernel
 * writes (weights) and must write nothing. trc_allow_next_grid() lets such a successor start once
 * every block of this kernel has called it. Both are no-ops on older GPUs and for launches without
 * the attribute. */
__device__ __forceinline__ void trc_wait_prior_grid()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cudaGridDependencySynchronize();
#endif
}
__device__ __forceinline__ void trc_allow_next_grid()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cudaTriggerProgrammaticLaunchCompletion();
#endif
}

static inline unsigned trc_blocks(int64_t n, int per_block)
{
    return (unsigned)((n + per_block - 1) / per_block);
}

#endif
