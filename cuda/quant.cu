/* quant.cu: quantized weights dequantized on the device (quant.cuh): panels of rows as f16 for the
 * tensor-core GEMM of prefill (matmul.cu). One thread per unit of 32 weights. f16 rounds the
 * dequantized values (at most 2^-11 relative), far inside design §10's 5e-4 for the product. */
#include "quant.cuh"

template <int Q>
__global__ void dequant_f16_kernel(const uint8_t *w, int64_t K, int64_t rows, __half *out)
{
    int64_t units = K / 32, i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= units * rows)
        return;
    int64_t r = i / units, u = i % units;
    float v[32];
    dq_unit<Q>(w + r * (K / trc_qblock(Q)) * trc_qbytes(Q), u, v);
    /* 64 bytes per thread as four 16-byte stores: 2-byte stores at a 64-byte stride across the warp
     * left the dequantization, not the GEMM, as the larger part of a quantized prefill (H200) */
    unsigned h[16];
#pragma unroll
    for (int e = 0; e < 16; e++)
        h[e] = (unsigned)__half_as_ushort(__float2half_rn(v[2 * e])) |
               (unsigned)__half_as_ushort(__float2half_rn(v[2 * e + 1])) << 16;
    uint4 *o = (uint4 *)(out + r * K + 32 * u); /* K % 32 == 0 and the workspace is aligned */
#pragma unroll
    for (int e = 0; e < 4; e++)
        o[e] = make_uint4(h[4 * e], h[4 * e + 1], h[4 * e + 2], h[4 * e + 3]);
}

template <int Q> static void launch(const void *w, int64_t K, int64_t n0, int64_t rows, void *out, cudaStream_t s)
{
    const uint8_t *first = (const uint8_t *)w + n0 * (K / trc_qblock(Q)) * trc_qbytes(Q);
    int64_t n = K / 32 * rows;
    dequant_f16_kernel<Q><<<(unsigned)((n + 255) / 256), 256, 0, s>>>(first, K, rows, (__half *)out);
}

extern "C" cudaError_t trc_dequantize_f16(const void *w, int dtype, int64_t K, int64_t n0, int64_t rows, void *out,
                                          cudaStream_t s)
{
    switch (dtype) {
    case TRC_Q8_0: launch<TRC_Q8_0>(w, K, n0, rows, out, s); break;
    case TRC_Q4_0: launch<TRC_Q4_0>(w, K, n0, rows, out, s); break;
    case TRC_Q4_1: launch<TRC_Q4_1>(w, K, n0, rows, out, s); break;
    case TRC_Q5_0: launch<TRC_Q5_0>(w, K, n0, rows, out, s); break;
    case TRC_Q5_1: launch<TRC_Q5_1>(w, K, n0, rows, out, s); break;
    case TRC_Q4_K: launch<TRC_Q4_K>(w, K, n0, rows, out, s); break;
    case TRC_Q5_K: launch<TRC_Q5_K>(w, K, n0, rows, out, s); break;
    case TRC_Q6_K: launch<TRC_Q6_K>(w, K, n0, rows, out, s); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
