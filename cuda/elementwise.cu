/* elementwise.cu: ADD and MUL (MUL may broadcast one row over all rows), and the f32 -> f16/bf16
 * conversion of activations that feeds the tensor-core GEMMs. 16-byte accesses where sizes and
 * addresses allow, scalar otherwise. */
#include "common.cuh"

#define EW_THREADS 256

__global__ void binary_kernel(int op, const float *x, const float *y, float *out, int64_t n, int64_t y_n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float b = y[y_n == n ? i : i % y_n];
        out[i] = op == TRC_ADD ? x[i] + b : x[i] * b;
    }
}

/* n4 float4s; y4_n float4s of y (y4_n == n4: same shape, else one row repeated). */
__global__ void binary_kernel4(int op, const float4 *x, const float4 *y, float4 *out, int64_t n4, int64_t y4_n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 a = x[i], b = y[y4_n == n4 ? i : i % y4_n], r;
        if (op == TRC_ADD)
            r = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
        else
            r = make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
        out[i] = r;
    }
}

static unsigned grid_for(int64_t n)
{
    int64_t b = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536); /* grid-stride loops beyond */
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" cudaError_t trc_binary(const trc_binary_args *a, cudaStream_t s)
{
    if (a->n % 4 == 0 && a->y_n % 4 == 0 && aligned16(a->x) && aligned16(a->y) && aligned16(a->out))
        binary_kernel4<<<grid_for(a->n / 4), EW_THREADS, 0, s>>>(a->op, (const float4 *)a->x, (const float4 *)a->y,
                                                                 (float4 *)a->out, a->n / 4, a->y_n / 4);
    else
        binary_kernel<<<grid_for(a->n), EW_THREADS, 0, s>>>(a->op, a->x, a->y, a->out, a->n, a->y_n);
    return cudaGetLastError();
}

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T> __global__ void convert_kernel(const float *x, T *out, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = from_f32<T>(x[i]);
}

extern "C" cudaError_t trc_convert(const float *x, void *out, int dtype, int64_t n, cudaStream_t s)
{
    if (dtype == TRC_F16)
        convert_kernel<__half><<<grid_for(n), EW_THREADS, 0, s>>>(x, (__half *)out, n);
    else
        convert_kernel<__nv_bfloat16><<<grid_for(n), EW_THREADS, 0, s>>>(x, (__nv_bfloat16 *)out, n);
    return cudaGetLastError();
}
