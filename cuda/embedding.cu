/* embedding.cu: GET_ROWS, the embedding lookup: out[t] = table[ids[t]] for f32, f16, bf16 and
 * quantized tables (quant.cuh), converted to f32. An id outside the table gives a zero row (the
 * API checks ids first). */
#include "common.cuh"
#include "quant.cuh"

template <int Q> __global__ void get_rows_q_kernel(const uint8_t *table, const int32_t *ids, float *out, int64_t D, int64_t V)
{
    int64_t t = blockIdx.x;
    int32_t id = ids[t];
    float *o = out + t * D;
    for (int64_t u = threadIdx.x; u < D / 32; u += blockDim.x) {
        float w[32];
        if (id < 0 || id >= V) {
            for (int e = 0; e < 32; e++)
                o[32 * u + e] = 0.0f;
            continue;
        }
        dq_unit<Q>(table + (int64_t)id * (D / trc_qblock(Q)) * trc_qbytes(Q), u, w);
        for (int e = 0; e < 32; e++)
            o[32 * u + e] = w[e];
    }
}

template <int Q> static void launch_q(const trc_get_rows_args *a, cudaStream_t s)
{
    get_rows_q_kernel<Q><<<(unsigned)a->T, 64, 0, s>>>((const uint8_t *)a->table, a->ids, a->out, a->D, a->V);
}

template <typename T>
__global__ void get_rows_kernel(const T *table, const int32_t *ids, float *out, int64_t D, int64_t V)
{
    int64_t t = blockIdx.x;
    int32_t id = ids[t];
    float *o = out + t * D;
    if (id < 0 || id >= V) {
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
            o[i] = 0.0f;
        return;
    }
    const T *row = table + (int64_t)id * D;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = to_f32(row[i]);
}

extern "C" cudaError_t trc_get_rows(const trc_get_rows_args *a, cudaStream_t s)
{
    unsigned threads = a->D >= 256 ? 256 : 64;
    switch (a->dtype) {
    case TRC_Q8_0: launch_q<TRC_Q8_0>(a, s); return cudaGetLastError();
    case TRC_Q4_0: launch_q<TRC_Q4_0>(a, s); return cudaGetLastError();
    case TRC_Q4_1: launch_q<TRC_Q4_1>(a, s); return cudaGetLastError();
    case TRC_Q5_0: launch_q<TRC_Q5_0>(a, s); return cudaGetLastError();
    case TRC_Q5_1: launch_q<TRC_Q5_1>(a, s); return cudaGetLastError();
    case TRC_Q4_K: launch_q<TRC_Q4_K>(a, s); return cudaGetLastError();
    case TRC_Q5_K: launch_q<TRC_Q5_K>(a, s); return cudaGetLastError();
    case TRC_Q6_K: launch_q<TRC_Q6_K>(a, s); return cudaGetLastError();
    default: break;
    }
    if (a->dtype == TRC_F16)
        get_rows_kernel<__half><<<(unsigned)a->T, threads, 0, s>>>((const __half *)a->table, a->ids, a->out, a->D, a->V);
    else if (a->dtype == TRC_BF16)
        get_rows_kernel<__nv_bfloat16><<<(unsigned)a->T, threads, 0, s>>>((const __nv_bfloat16 *)a->table, a->ids, a->out, a->D,
                                                            a->V);
    else
        get_rows_kernel<float><<<(unsigned)a->T, threads, 0, s>>>((const float *)a->table, a->ids, a->out, a->D, a->V);
    return cudaGetLastError();
}
