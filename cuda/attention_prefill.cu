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
 * Differential attention (design §4) is the same walk for a head pair (j, j + H/2): a block of two
 * groups of 128 threads, one per head, takes 32 query rows; each group scores its head against its
 * own kv head's keys and keeps its own m, l and O, and both weigh the same 2 hd-wide value tile
 * [v_a, v_b] (the values of the two heads' kv heads, side by side). Two rows per thread instead of
 * four keep the accumulators per thread (rows x 2 hd / 8) at the plain kernel's count. At the end
 * the second group leaves lambda O_{j+H/2} / l in shared memory, and the first forms
 * y = O_j / l - that, the sum of y^2 over the row's 2 hd values (the 8 threads of a row, xor
 * shuffles), and writes out_scale * y / sqrt(mean(y^2) + eps). The two softmaxes have their own
 * maxima, so they cannot share one accumulator before their normalisers are final.
 *
 * Specialised for head sizes 64 and 128 (registers: 4 x hd/8 outputs per thread); other sizes use
 * attention_rows.cu. Attention Transition rows are recomputed afterwards by the two-pass row kernel
 * (attention_rows.cu); the rows this kernel wrote for them are overwritten. */
#include "common.cuh"

#define AT_BN 32     /* keys per tile */
#define AT_GROUP 128 /* threads per head: 16 row groups (ty) x 8 key / dimension lanes (tx) */

/* One instantiation's geometry. Plain: 64 query rows of one head per block. Differential: 32 rows
 * of a head pair, a group of AT_GROUP threads per head, values 2 hd wide. */
template <int HD, bool DIFF> struct tiled_shape {
    static constexpr int NG = DIFF ? 2 : 1;       /* heads per block */
    static constexpr int RPT = DIFF ? 2 : 4;      /* query rows per thread */
    static constexpr int BM = 16 * RPT;           /* query rows per block */
    static constexpr int VW = DIFF ? 2 * HD : HD; /* value (and output) width per head */
    static constexpr int PS = BM + 4;             /* row stride of P^T: aligned, spreads the stores over banks */
    static constexpr int THREADS = AT_GROUP * NG;
    /* queries [NG][HD][BM]; keys [NG][HD][AT_BN], then values [AT_BN][VW] (as many floats); P^T [NG][AT_BN][PS] */
    static constexpr size_t SMEM_FLOATS = (size_t)NG * HD * BM + (size_t)NG * HD * AT_BN + (size_t)NG * AT_BN * PS;
};

/* RPT consecutive floats of shared memory as one 16- or 8-byte access. */
template <int N> __device__ __forceinline__ void ld_rows(const float *p, float (&v)[N]);
template <> __device__ __forceinline__ void ld_rows<4>(const float *p, float (&v)[4])
{
    const float4 x = *(const float4 *)p;
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
}
template <> __device__ __forceinline__ void ld_rows<2>(const float *p, float (&v)[2])
{
    const float2 x = *(const float2 *)p;
    v[0] = x.x, v[1] = x.y;
}
template <int N> __device__ __forceinline__ void st_rows(float *p, const float (&v)[N]);
template <> __device__ __forceinline__ void st_rows<4>(float *p, const float (&v)[4])
{
    *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
}
template <> __device__ __forceinline__ void st_rows<2>(float *p, const float (&v)[2])
{
    *(float2 *)p = make_float2(v[0], v[1]);
}

/* The body of both kernels below (the plain one and the differential one, which differ in their
 * launch bounds). */
template <int HD, bool DIFF> __device__ __forceinline__ void attn_tiled(const trc_attn_args &a)
{
    using S = tiled_shape<HD, DIFF>;
    constexpr int NG = S::NG, RPT = S::RPT, BM = S::BM, VW = S::VW, PS = S::PS;
    constexpr int DPT = VW / 8; /* output dimensions per thread and row */
    constexpr int DV = DPT / 4; /* ... as float4 groups: dims 32 j + 4 tx + e */
    extern __shared__ float4 smem4[];
    float *Qs = (float *)smem4;     /* [NG][HD][BM] */
    float *KV = Qs + NG * HD * BM;  /* [NG][HD][AT_BN] keys, transposed; then [AT_BN][VW] values */
    float *Ps = KV + NG * HD * AT_BN; /* [NG][AT_BN][PS] probabilities, transposed */

    /* grp: the thread's head (group); ty, tx: its rows and its key / dimension lane in the group
     * (written so that the plain kernel, one group, sees constants) */
    const int tid = threadIdx.x, grp = NG == 1 ? 0 : tid / AT_GROUP, tx = tid & 7;
    const int ty = (NG == 1 ? tid : tid % AT_GROUP) >> 3;
    /* plain: head blockIdx.y; differential: pair j = blockIdx.y, group i takes head j + i H/2 */
    const int h0 = blockIdx.y, hstep = a.H / 2, rep = a.H / a.Hkv;
    const int t0 = (gridDim.x - 1 - blockIdx.x) * BM; /* the longest rows start first */
    const int rows = min(BM, a.T - t0);
    const int n_past = *a.n_past;
    const int kmax = n_past + t0 + rows; /* keys seen by the tile's last row */
    const int64_t kv0 = (a.kv_row0 ? (int64_t)*a.kv_row0 : 0) * a.kv_rs;
    const float4 zero4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    /* group i's kv head: its keys, and (differential) the i-th half of every value row; selected,
     * not indexed, so that they stay in registers */
    const int64_t col0 = (int64_t)(h0 / rep) * HD, col1 = DIFF ? (int64_t)((h0 + hstep) / rep) * HD : col0;
    const float *kb0 = a.k + kv0 + col0, *kb1 = a.k + kv0 + col1, *vb0 = a.v + kv0 + col0, *vb1 = a.v + kv0 + col1;

    for (int idx = tid; idx < NG * BM * (HD / 4); idx += S::THREADS) {
        const int gi = NG == 1 ? 0 : idx / (BM * (HD / 4)), r = idx % BM, d4 = idx / BM % (HD / 4);
        float4 v = zero4;
        if (r < rows)
            v = *(const float4 *)(a.q + (int64_t)(t0 + r) * a.q_ts + (int64_t)(h0 + gi * hstep) * a.q_hs + d4 * 4);
        float *q = Qs + gi * HD * BM;
        q[(d4 * 4 + 0) * BM + r] = v.x;
        q[(d4 * 4 + 1) * BM + r] = v.y;
        q[(d4 * 4 + 2) * BM + r] = v.z;
        q[(d4 * 4 + 3) * BM + r] = v.w;
    }

    float o[RPT][DPT], m[RPT], l[RPT];
#pragma unroll
    for (int i = 0; i < RPT; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int d = 0; d < DPT; d++)
            o[i][d] = 0.0f;
    }
    const float *Qg = Qs + grp * HD * BM, *Kg = KV + grp * HD * AT_BN;
    float *Pg = Ps + grp * AT_BN * PS;

    for (int c0 = 0; c0 < kmax; c0 += AT_BN) {
        __syncthreads(); /* the previous tile's P V is done with KV and Ps (and Q is stored) */
        for (int idx = tid; idx < NG * AT_BN * (HD / 4); idx += S::THREADS) {
            const int gi = NG == 1 ? 0 : idx / (AT_BN * (HD / 4)), c = idx % AT_BN, d4 = idx / AT_BN % (HD / 4);
            float4 v = zero4;
            if (c0 + c < kmax)
                v = *(const float4 *)((gi ? kb1 : kb0) + (int64_t)(c0 + c) * a.kv_rs + d4 * 4);
            float *k = KV + gi * HD * AT_BN;
            k[(d4 * 4 + 0) * AT_BN + c] = v.x;
            k[(d4 * 4 + 1) * AT_BN + c] = v.y;
            k[(d4 * 4 + 2) * AT_BN + c] = v.z;
            k[(d4 * 4 + 3) * AT_BN + c] = v.w;
        }
        __syncthreads();

        float s[RPT][4];
#pragma unroll
        for (int i = 0; i < RPT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[i][e] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HD; d++) {
            float qa[RPT];
            ld_rows<RPT>(Qg + d * BM + ty * RPT, qa);
            const float4 kv = *(const float4 *)(Kg + d * AT_BN + tx * 4);
            const float ka[4] = {kv.x, kv.y, kv.z, kv.w};
#pragma unroll
            for (int i = 0; i < RPT; i++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[i][e] = fmaf(qa[i], ka[e], s[i][e]);
        }

        float p[RPT][4];
#pragma unroll
        for (int i = 0; i < RPT; i++) {
            const int pos = n_past + t0 + ty * RPT + i;
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
        for (int e = 0; e < 4; e++) {
            float col[RPT];
#pragma unroll
            for (int i = 0; i < RPT; i++)
                col[i] = p[i][e];
            st_rows<RPT>(Pg + (tx * 4 + e) * PS + ty * RPT, col);
        }
        __syncthreads(); /* the keys are no longer needed; P is complete */

        /* the value tile; differential: [v_a, v_b], the two heads' kv heads side by side */
        for (int idx = tid; idx < AT_BN * (VW / 4); idx += S::THREADS) {
            const int c = idx / (VW / 4), d = idx % (VW / 4) * 4, half = DIFF && d >= HD;
            float4 v = zero4;
            if (c0 + c < kmax)
                v = *(const float4 *)((half ? vb1 : vb0) + (int64_t)(c0 + c) * a.kv_rs + (d - half * HD));
            *(float4 *)(KV + c * VW + d) = v;
        }
        __syncthreads();

        /* a differential thread's value row is twice as wide (8 float4 loads at hd 128): enough in
         * flight without unrolling, which would spill at the 128 registers of two blocks per SM */
#pragma unroll(DIFF ? 1 : 4)
        for (int c = 0; c < AT_BN; c++) {
            float pa[RPT];
            ld_rows<RPT>(Pg + c * PS + ty * RPT, pa);
#pragma unroll
            for (int j = 0; j < DV; j++) {
                const float4 vv = *(const float4 *)(KV + c * VW + j * 32 + tx * 4);
                const float va[4] = {vv.x, vv.y, vv.z, vv.w};
#pragma unroll
                for (int i = 0; i < RPT; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        o[i][j * 4 + e] = fmaf(pa[i], va[e], o[i][j * 4 + e]);
            }
        }
    }

    if constexpr (!DIFF) {
#pragma unroll
        for (int i = 0; i < RPT; i++) {
            const int r = ty * RPT + i;
            if (r >= rows)
                continue;
            const float inv = 1.0f / l[i];
            float *out = a.out + (int64_t)(t0 + r) * a.o_ts + (int64_t)h0 * VW + tx * 4;
#pragma unroll
            for (int j = 0; j < DV; j++)
                *(float4 *)(out + j * 32) = make_float4(o[i][j * 4] * inv, o[i][j * 4 + 1] * inv,
                                                        o[i][j * 4 + 2] * inv, o[i][j * 4 + 3] * inv);
        }
    } else {
        /* y = O_j / l_j - lambda O_{j+H/2} / l_{j+H/2}: the second group's part goes through the
         * queries' memory ([BM][VW] floats: exactly its size), the first combines and normalises */
        float *Y = Qs;
        __syncthreads(); /* every thread is past its last use of the queries */
        if (grp == 1)
#pragma unroll
            for (int i = 0; i < RPT; i++) {
                const float w = a.lambda / l[i];
#pragma unroll
                for (int j = 0; j < DV; j++)
                    *(float4 *)(Y + (ty * RPT + i) * VW + j * 32 + tx * 4) =
                        make_float4(o[i][j * 4] * w, o[i][j * 4 + 1] * w, o[i][j * 4 + 2] * w, o[i][j * 4 + 3] * w);
            }
        __syncthreads();
        if (grp == 0)
#pragma unroll
            for (int i = 0; i < RPT; i++) {
                const int r = ty * RPT + i;
                const float inv = 1.0f / l[i];
                float ss = 0.0f;
#pragma unroll
                for (int j = 0; j < DV; j++) {
                    const float4 b = *(const float4 *)(Y + r * VW + j * 32 + tx * 4);
                    const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const float y = o[i][j * 4 + e] * inv - bv[e];
                        o[i][j * 4 + e] = y;
                        ss = fmaf(y, y, ss);
                    }
                }
                ss += __shfl_xor_sync(TRC_FULL_MASK, ss, 1); /* the row's 8 threads hold its 2 hd values */
                ss += __shfl_xor_sync(TRC_FULL_MASK, ss, 2);
                ss += __shfl_xor_sync(TRC_FULL_MASK, ss, 4);
                const float f = a.out_scale / sqrtf(ss / (float)VW + a.eps);
                if (r >= rows)
                    continue;
                float *out = a.out + (int64_t)(t0 + r) * a.o_ts + (int64_t)h0 * VW + tx * 4;
#pragma unroll
                for (int j = 0; j < DV; j++)
                    *(float4 *)(out + j * 32) =
                        make_float4(o[i][j * 4] * f, o[i][j * 4 + 1] * f, o[i][j * 4 + 2] * f, o[i][j * 4 + 3] * f);
            }
    }
}

template <int HD> __global__ __launch_bounds__(AT_GROUP) void attn_tiled_kernel(const trc_attn_args a)
{
    attn_tiled<HD, false>(a);
}
/* two blocks per SM: at most 128 registers (ptxas: no spills at hd 128 with the loop above) */
template <int HD> __global__ __launch_bounds__(2 * AT_GROUP, 2) void attn_tiled_diff_kernel(const trc_attn_args a)
{
    attn_tiled<HD, true>(a);
}

extern "C" int trc_attention_tiled_ok(int hd) { return hd == 64 || hd == 128; }

extern "C" size_t trc_attention_tiled_smem(int hd, int diff)
{
    size_t floats = hd == 64 ? (diff ? tiled_shape<64, true>::SMEM_FLOATS : tiled_shape<64, false>::SMEM_FLOATS)
                             : (diff ? tiled_shape<128, true>::SMEM_FLOATS : tiled_shape<128, false>::SMEM_FLOATS);
    return floats * sizeof(float);
}

template <int HD, bool DIFF> static void launch_tiled(const trc_attn_args *a, cudaStream_t s)
{
    using S = tiled_shape<HD, DIFF>;
    dim3 grid((unsigned)((a->T + S::BM - 1) / S::BM), (unsigned)(DIFF ? a->H / 2 : a->H));
    if constexpr (DIFF)
        attn_tiled_diff_kernel<HD><<<grid, S::THREADS, S::SMEM_FLOATS * sizeof(float), s>>>(*a);
    else
        attn_tiled_kernel<HD><<<grid, S::THREADS, S::SMEM_FLOATS * sizeof(float), s>>>(*a);
}

extern "C" cudaError_t trc_attention_tiled(const trc_attn_args *a, cudaStream_t s)
{
    const int aligned = (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v | (uintptr_t)a->out) & 15) == 0 &&
                        a->kv_rs % 4 == 0 && a->q_hs % 4 == 0 && a->q_ts % 4 == 0 && a->o_ts % 4 == 0;
    if (!trc_attention_tiled_ok(a->hd) || !aligned || a->trans)
        return cudaErrorInvalidValue;
    if (a->hd == 64 && a->diff)
        launch_tiled<64, true>(a, s);
    else if (a->hd == 64)
        launch_tiled<64, false>(a, s);
    else if (a->diff)
        launch_tiled<128, true>(a, s);
    else
        launch_tiled<128, false>(a, s);
    return cudaGetLastError();
}

/* The kernels above 48 KB of dynamic shared memory need the opt-in; it is raised for every
 * instantiation (hd 128: 58 KB plain, 75 KB differential). */
template <int HD, bool DIFF> static cudaError_t allow_smem(void)
{
    const int bytes = (int)(tiled_shape<HD, DIFF>::SMEM_FLOATS * sizeof(float));
    if constexpr (DIFF)
        return cudaFuncSetAttribute(attn_tiled_diff_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    else
        return cudaFuncSetAttribute(attn_tiled_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

extern "C" cudaError_t trc_kernels_init(void)
{
    cudaError_t e = allow_smem<128, false>();
    if (e == cudaSuccess)
        e = allow_smem<64, false>();
    if (e == cudaSuccess)
        e = allow_smem<128, true>();
    if (e == cudaSuccess)
        e = allow_smem<64, true>();
    return e;
}
