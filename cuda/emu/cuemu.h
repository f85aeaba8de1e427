/* cuemu.h: a CPU emulation of the CUDA C++ the kernels use, for checking their logic on a machine
 * without a GPU (cuda/emu/run.sh). Not part of the build, and no stand-in for a real GPU: it proves
 * index arithmetic, barriers and reductions, not the memory model or speed.
 *
 * Each CUDA thread of a block is a coroutine (ucontext) on one OS thread; blocks run one after the
 * other. __syncthreads and the warp shuffles yield to a scheduler that releases a barrier once every
 * live thread of the block (or warp) waits at it, and reports a deadlock otherwise (a divergent
 * barrier or shuffle). Shared memory, dynamic and static, is filled with NaNs before each block, so
 * that reading it before writing it shows. CUEMU_ORDER (cuemu.cpp) runs threads and blocks forward,
 * backward or shuffled. Launches run at once, or are recorded while a stream is captured. */
#ifndef TR_CUEMU_H
#define TR_CUEMU_H

#include <cuda_runtime_api.h>
#include <vector_functions.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static /* run.sh rewrites `__shared__ T name[N];` to emu_static_smem */

#include "half.h"

struct __half {
    uint16_t x;
};
struct __nv_bfloat16 {
    uint16_t x;
};
struct __half2 {
    __half a, b;
};
struct __nv_bfloat162 {
    __nv_bfloat16 a, b;
};
static inline float __half2float(__half h) { return tr_f16_to_f32(h.x); }
static inline float __bfloat162float(__nv_bfloat16 h) { return tr_bf16_to_f32(h.x); }
static inline __half __float2half_rn(float f) { return __half{tr_f32_to_f16(f)}; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{tr_f32_to_bf16(f)}; }
static inline float2 __half22float2(__half2 h) { return make_float2(__half2float(h.a), __half2float(h.b)); }
static inline float2 __bfloat1622float2(__nv_bfloat162 h)
{
    return make_float2(__bfloat162float(h.a), __bfloat162float(h.b));
}
static inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline float __uint_as_float(unsigned u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
template <class T> static inline T __ldg(const T *p) { return *p; }
/* c + the dot product of the four signed bytes of a and b; a - b byte by byte (no borrow across
 * bytes); round to nearest, ties to even (the default rounding mode: rintf) */
static inline int __dp4a(int a, int b, int c)
{
    for (int i = 0; i < 4; i++)
        c += (int)(int8_t)(uint8_t)((unsigned)a >> 8 * i) * (int)(int8_t)(uint8_t)((unsigned)b >> 8 * i);
    return c;
}
static inline unsigned __vsub4(unsigned a, unsigned b)
{
    unsigned r = 0;
    for (int i = 0; i < 4; i++)
        r |= (unsigned)(uint8_t)((a >> 8 * i) - (b >> 8 * i)) << 8 * i;
    return r;
}
static inline int __float2int_rn(float f) { return (int)rintf(f); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

template <class T> cudaError_t cudaFuncSetAttribute(T *, cudaFuncAttribute, int) { return cudaSuccess; }

/* ---- the scheduler (cuemu.cpp) ---- */
uint3 &emu_thread_idx();
extern dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
void *emu_dyn_smem();
void *emu_static_smem(size_t n);
void emu_syncthreads();
void emu_syncwarp();
float emu_shfl_xor(float v, int o);
void emu_run_grid(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
bool emu_capturing();
void emu_record(std::function<void()> f);

static inline void __syncthreads() { emu_syncthreads(); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu_syncwarp(); }
static inline float __shfl_xor_sync(unsigned, float v, int o) { return emu_shfl_xor(v, o); }

struct emu_launch {
    dim3 grid, block;
    size_t smem;
    emu_launch(dim3 g, dim3 b, size_t s = 0, cudaStream_t = 0) : grid(g), block(b), smem(s) {}
    template <class F, class... A> void run(F f, A... args)
    {
        dim3 g = grid, b = block;
        size_t s = smem;
        auto launch = [=]() { emu_run_grid(g, b, s, [=]() { f(args...); }); };
        if (emu_capturing())
            emu_record(launch);
        else
            launch();
    }
};

/* cudaLaunchKernelEx: the launch attributes (programmatic dependent launch) change nothing here,
 * where every launch finishes before the next begins. */
template <class... E, class... A> cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t *c, void (*k)(E...), A &&...args)
{
    emu_launch(c->gridDim, c->blockDim, c->dynamicSmemBytes).run(k, E(args)...);
    return cudaSuccess;
}

/* last: cudaLaunchConfig_t above has members named like these */
#define threadIdx (emu_thread_idx())
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim

#endif
