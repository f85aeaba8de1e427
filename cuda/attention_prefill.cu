/* attention_prefill.cu: the ATTENTION op for many query rows at once (prefill), flash-style: a
 * block takes 64 query rows of one head and walks the keys in tiles of 32, keeping the running max
 * m, normaliser l and output O of each row in registers (online softmax), so memory stays O(n) and
 * no score matrix ever reaches device memory.
 *
 * Per key tile (128 threads; thread (ty, tx) owns rows 4ty .. 4ty+3 and, of the tile's keys,
 * columns 4tx .. 4tx+3):
 *   S = Q K^T      from shared memory, Q and K stored transposed so that each thread reads its 4
 *                  rows and 4 keys as two 16-byte loads per dimension (32 FMAs per 2 loads);
 *   softmax        causal mask, row max and sum over the 8 threads sharing the rows (xor shuffles),
 *                  O and l rescaled by e^(m_old - m_new), P written transposed to shared memory;
 *   O += P V       V stored row-major; a thread owns hd/8 output dimensions, interleaved by 32 so
 *                  that a warp's 16-byte loads are contiguous.
 * Everything is f32 on the CUDA cores: the KV cache is f32 and design §6 holds f32 attention to
 * the reference's rounding, which TF32 or f16 tensor cores would not meet.
 *
 * Specialised for head sizes 64 and 128 (registers: 4 x hd/8 outputs per thread); other sizes use
 * attention_rows.cu. Attention Transition rows are recomputed afterwards by the two-pass row kernel
 * (attention_rows.cu); the rows this kernel wrote for them are overwritten. */
#include "common.cuh"

#define AT_BM 64
#define AT_BN 32
#define AT_THREADS 128
#define AT_PS (AT_BM + 4) /* row stride of P^T: 16-byte aligned, spreads the stores over banks */

static size_t tiled_smem_floats(int hd) { return (size_t)hd * AT_BM + (size_t)hd * AT_BN + (size_t)AT_BN * AT_PS; }

template <int HD> __global__ __launch_bounds__(AT_THREADS) void attn_tiled_kernel(const trc_attn_args a)
{
    constexpr int DPT = HD / 8; /* output dimensions per thread */
    constexpr int DV = DPT / 4; /* ... as float4 groups: dims 32 j + 4 tx + e */
    extern __shared__ float4 smem4[];
    float *Qs = (float *)smem4;  /* [HD][AT_BM] */
    float *KV = Qs + HD * AT_BM; /* [HD][AT_BN] keys, transposed; then [AT_BN][HD] values */
    float *Ps = KV + HD * AT_BN; /* [AT_BN][AT_PS] probabilities, transposed */

    const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3;
    const int h = blockIdx.y, g = h / (a.H / a.Hkv);
    const int t0 = (gridDim.x - 1 - blockIdx.x) * AT_BM; /* the longest rows start first */
    const int rows = min(AT_BM, a.T - t0);
    const int n_past = *a.n_past;
    const int kmax = n_past + t0 + rows; /* keys seen by the tile's last row */
    const int64_t kv0 = (a.kv_row0 ? (int64_t)*a.kv_row0 : 0) * a.kv_rs + (int64_t)g * HD;
    const float *kb = a.k + kv0, *vb = a.v + kv0;
    const float4 zero4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

    for (int idx = tid; idx < AT_BM * (HD / 4); idx += AT_THREADS) {
        const int r = idx % AT_BM, d4 = idx / AT_BM;
        float4 v = zero4;
        if (r < rows)
            v = *(const float4 *)(a.q + (int64_t)(t0 + r) * a.q_ts + (int64_t)h * a.q_hs + d4 * 4);
        Qs[(d4 * 4 + 0) * AT_BM + r] = v.x;
        Qs[(d4 * 4 + 1) * AT_BM + r] = v.y;
        Qs[(d4 * 4 + 2) * AT_BM + r] = v.z;
        Qs[(d4 * 4 + 3) * AT_BM + r] = v.w;
    }

    float o[4][DPT], m[4], l[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int d = 0; d < DPT; d++)
            o[i][d] = 0.0f;
    }

    for (int c0 = 0; c0 < kmax; c0 += AT_BN) {
        __syncthreads(); /* the previous tile's P V is done with KV and Ps (and Q is stored) */
        for (int idx = tid; idx < AT_BN * (HD / 4); idx += AT_THREADS) {
            const int c = idx % AT_BN, d4 = idx / AT_BN;
            float4 v = zero4;
            if (c0 + c < kmax)
                v = *(const float4 *)(kb + (int64_t)(c0 + c) * a.kv_rs + d4 * 4);
            KV[(d4 * 4 + 0) * AT_BN + c] = v.x;
            KV[(d4 * 4 + 1) * AT_BN + c] = v.y;
            KV[(d4 * 4 + 2) * AT_BN + c] = v.z;
            KV[(d4 * 4 + 3) * AT_BN + c] = v.w;
        }
        __syncthreads();

        float s[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[i][e] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HD; d++) {
            const float4 qv = *(const float4 *)(Qs + d * AT_BM + ty * 4);
            const float4 kv = *(const float4 *)(KV + d * AT_BN + tx * 4);
            const float qa[4] = {qv.x, qv.y, qv.z, qv.w}, ka[4] = {kv.x, kv.y, kv.z, kv.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[i][e] = fmaf(qa[i], ka[e], s[i][e]);
        }

        float p[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int pos = n_past + t0 + ty * 4 + i;
            float mx = -INFINITY;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int c = c0 + tx * 4 + e;
                s[i][e] = c <= pos && c < kmax ? s[i][e] * a.scale : -INFINITY;
                mx = fmaxf(mx, s[i][e]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(TRC_FULL_MASK, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(TRC_FULL_MASK, mx, 2));
            mx = fmaxf(mx, __shfl_xor_sync(TRC_FULL_MASK, mx, 4));
            const float m_new = fmaxf(m[i], mx), m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float corr = expf(m[i] - m_use);
            float rs = 0.0f;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                p[i][e] = expf(s[i][e] - m_use);
                rs += p[i][e];
            }
            rs += __shfl_xor_sync(TRC_FULL_MASK, rs, 1);
            rs += __shfl_xor_sync(TRC_FULL_MASK, rs, 2);
            rs += __shfl_xor_sync(TRC_FULL_MASK, rs, 4);
            l[i] = l[i] * corr + rs;
            m[i] = m_new;
#pragma unroll
            for (int d = 0; d < DPT; d++)
                o[i][d] *= corr;
        }
#pragma unroll
        for (int e = 0; e < 4; e++)
            *(float4 *)(Ps + (tx * 4 + e) * AT_PS + ty * 4) = make_float4(p[0][e], p[1][e], p[2][e], p[3][e]);
        __syncthreads(); /* the keys are no longer needed; P is complete */

        for (int idx = tid; idx < AT_BN * (HD / 4); idx += AT_THREADS) {
            const int c = idx / (HD / 4), d4 = idx % (HD / 4);
            float4 v = zero4;
            if (c0 + c < kmax)
                v = *(const float4 *)(vb + (int64_t)(c0 + c) * a.kv_rs + d4 * 4);
            *(float4 *)(KV + c * HD + d4 * 4) = v;
        }
        __syncthreads();

#pragma unroll 4
        for (int c = 0; c < AT_BN; c++) {
            const float4 pv = *(const float4 *)(Ps + c * AT_PS + ty * 4);
            const float pa[4] = {pv.x, pv.y, pv.z, pv.w};
#pragma unroll
            for (int j = 0; j < DV; j++) {
                const float4 vv = *(const float4 *)(KV + c * HD + j * 32 + tx * 4);
                const float va[4] = {vv.x, vv.y, vv.z, vv.w};
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        o[i][j * 4 + e] = fmaf(pa[i], va[e], o[i][j * 4 + e]);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = ty * 4 + i;
        if (r >= rows)
            continue;
        const float inv = 1.0f / l[i];
        float *out = a.out + (int64_t)(t0 + r) * a.o_ts + (int64_t)h * HD + tx * 4;
#pragma unroll
        for (int j = 0; j < DV; j++)
            *(float4 *)(out + j * 32) =
                make_float4(o[i][j * 4] * inv, o[i][j * 4 + 1] * inv, o[i][j * 4 + 2] * inv, o[i][j * 4 + 3] * inv);
    }
}

extern "C" int trc_attention_tiled_ok(int hd) { return hd == 64 || hd == 128; }

extern "C" size_t trc_attention_tiled_smem(int hd) { return tiled_smem_floats(hd) * sizeof(float); }

extern "C" cudaError_t trc_attention_tiled(const trc_attn_args *a, cudaStream_t s)
{
    const int aligned = (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v | (uintptr_t)a->out) & 15) == 0 &&
                        a->kv_rs % 4 == 0 && a->q_hs % 4 == 0 && a->q_ts % 4 == 0 && a->o_ts % 4 == 0;
    if (!trc_attention_tiled_ok(a->hd) || !aligned)
        return cudaErrorInvalidValue;
    dim3 grid((unsigned)((a->T + AT_BM - 1) / AT_BM), (unsigned)a->H);
    size_t smem = trc_attention_tiled_smem(a->hd);
    if (a->hd == 64)
        attn_tiled_kernel<64><<<grid, AT_THREADS, smem, s>>>(*a);
    else
        attn_tiled_kernel<128><<<grid, AT_THREADS, smem, s>>>(*a);
    return cudaGetLastError();
}

extern "C" cudaError_t trc_kernels_init(void)
{
    cudaError_t e = cudaFuncSetAttribute(attn_tiled_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)trc_attention_tiled_smem(128));
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(attn_tiled_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)trc_attention_tiled_smem(64));
    return e;
}
