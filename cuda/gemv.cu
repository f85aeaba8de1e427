/* gemv.cu: matrix products for a few tokens (T <= TRC_GEMV_MAX_T, i.e. decoding), where a GEMM
 * library would be far from the memory bound: each warp streams one weight row (two for a GLU)
 * with 16-byte loads, four of them in flight per lane, converts f16/bf16 to f32 in registers, and
 * multiplies it with the T activation rows (read through L1, where every warp of the SM finds
 * them). Accumulation is f32; a warp shuffle reduction finishes each dot product.
 *
 * Epilogues fuse what follows the product in the graph: several products of the same x in one
 * launch (q, k, v), the residual add (out = res + x W^T), and a GLU (act(x Wg^T) * x Wu^T, with
 * the activation of the GLU node: silu, gelu or gelu_tanh, trc_act in common.cuh).
 * Above TRC_GEMV_MAX_T tokens the L1 traffic for x (T loads per weight element) would cap the rate,
 * and the matrix products go to cuBLAS (matmul.cu).
 *
 * With a.pdl the launch is a programmatic dependent of the kernel before it (common.cuh): each warp
 * issues its first weight loads, which no kernel writes, before waiting for that kernel, so the
 * stream of weights starts while the previous kernel (a norm, the attention) still runs.
 *
 * Quantized weights (gemv_q_kernel, quant.cuh): x is first quantized to int8 blocks of 32 (one
 * scale each, in the workspace); the lanes of a row's warp take units of 32 weights (a block, or a
 * k-quant's sub-block), each decoded once to signed bytes for all T tokens and multiplied with x's
 * blocks four bytes at a time (__dp4a); the same matrix selection and epilogues. Q4_K and Q5_K take
 * the two sub-blocks that share their bytes per lane (dq_pair_i8), with 16-byte loads. */
#include "common.cuh"
#include "quant.cuh"

#define GEMV_WARPS 8
#define GEMV_UNROLL 4

/* 16 bytes of weights -> 16 / sizeof(W) floats. */
template <typename W> __device__ __forceinline__ void unpack(const uint4 &u, float *f);
template <> __device__ __forceinline__ void unpack<float>(const uint4 &u, float *f)
{
    f[0] = __uint_as_float(u.x);
    f[1] = __uint_as_float(u.y);
    f[2] = __uint_as_float(u.z);
    f[3] = __uint_as_float(u.w);
}
/* Half-precision words are split with shifts, not by reading the uint4 through a __half2 pointer:
 * that would break strict aliasing, which the compilers' type-based alias analysis may exploit. */
template <> __device__ __forceinline__ void unpack<__half>(const uint4 &u, float *f)
{
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __half2float(__ushort_as_half((unsigned short)(w[i] & 0xffffu)));
        f[2 * i + 1] = __half2float(__ushort_as_half((unsigned short)(w[i] >> 16)));
    }
}
template <> __device__ __forceinline__ void unpack<__nv_bfloat16>(const uint4 &u, float *f)
{
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) { /* bf16 is the top half of an f32 */
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* acc[t] += w . x[t][k .. k + VW) for the t < T token rows. */
template <int VW, int TT>
__device__ __forceinline__ void fma_chunk(float (&acc)[TT], const float *wf, const float *x, int64_t K, int64_t k,
                                          int T)
{
#pragma unroll
    for (int t = 0; t < TT; t++) {
        if (t < T) {
            const float4 *xp = (const float4 *)(x + t * K + k);
#pragma unroll
            for (int v = 0; v < VW / 4; v++) {
                float4 xv = __ldg(xp + v);
                acc[t] = fmaf(wf[4 * v], xv.x, acc[t]);
                acc[t] = fmaf(wf[4 * v + 1], xv.y, acc[t]);
                acc[t] = fmaf(wf[4 * v + 2], xv.z, acc[t]);
                acc[t] = fmaf(wf[4 * v + 3], xv.w, acc[t]);
            }
        }
    }
}

/* Which matrix of the launch row n of this warp belongs to (n becomes the row inside it): explicit
 * selects, so that the argument arrays stay in constant memory. False past the last row. */
__device__ __forceinline__ bool gemv_pick(const trc_gemv_args &a, int64_t &n, const void *&wm, float *&om, int64_t &N)
{
    wm = a.w[0];
    om = a.out[0];
    N = a.N[0];
    if (a.mode != TRC_GEMV_GLU && n >= N && a.n_mats > 1) {
        n -= N;
        wm = a.w[1];
        om = a.out[1];
        N = a.N[1];
        if (n >= N && a.n_mats > 2) {
            n -= N;
            wm = a.w[2];
            om = a.out[2];
            N = a.N[2];
        }
    }
    return n < N;
}

/* Lane 0's epilogue for token t: plain, residual add, or GLU of the two rows' products. */
__device__ __forceinline__ void gemv_epilogue(const trc_gemv_args &a, float *om, int64_t N, int64_t n, int t, float d0,
                                              float d1)
{
    if (a.mode == TRC_GEMV_ADD)
        om[t * N + n] = a.res[t * N + n] + d0;
    else if (a.mode == TRC_GEMV_GLU)
        om[t * N + n] = trc_act(a.act, d0) * d1;
    else
        om[t * N + n] = d0;
}

/* The sums of a row's S warps (the S slices of K, S = 1, 2 or 4, consecutive warps of the block)
 * and the epilogue. With S > 1 the partial sums meet in shared memory, so every warp of the block
 * reaches the barrier, rows past the last (valid false) included. */
template <int TT>
__device__ __forceinline__ void gemv_finish(const trc_gemv_args &a, bool valid, float *om, int64_t N, int64_t n,
                                            int warp, int lane, int S, const float (&acc0)[TT], const float (&acc1)[TT])
{
    __shared__ float part[GEMV_WARPS * 2 * 4]; /* [warp][gate/up][t], TT <= 4 */
    const int glu = a.mode == TRC_GEMV_GLU;
#pragma unroll
    for (int t = 0; t < TT; t++) {
        if (t < a.T) {
            float d0 = warp_sum(acc0[t]);
            float d1 = glu ? warp_sum(acc1[t]) : 0.0f;
            if (S == 1) {
                if (valid && lane == 0)
                    gemv_epilogue(a, om, N, n, t, d0, d1);
            } else if (lane == 0) {
                part[(warp * 2 + 0) * 4 + t] = d0;
                part[(warp * 2 + 1) * 4 + t] = d1;
            }
        }
    }
    if (S == 1)
        return;
    __syncthreads();
    if (!valid || warp % S != 0 || lane != 0)
        return;
    for (int t = 0; t < TT && t < a.T; t++) {
        float d0 = 0.0f, d1 = 0.0f;
        for (int s = 0; s < S; s++) { /* slices in order: the sum does not depend on scheduling */
            d0 += part[((warp + s) * 2 + 0) * 4 + t];
            d1 += part[((warp + s) * 2 + 1) * 4 + t];
        }
        gemv_epilogue(a, om, N, n, t, d0, d1);
    }
}

template <typename W, int TT>
__global__ __launch_bounds__(GEMV_WARPS * 32) void gemv_kernel(const trc_gemv_args a, int vec)
{
    trc_allow_next_grid(); /* a dependent GEMV (down after gate/up) may take the SMs this one frees */
    constexpr int VW = 16 / (int)sizeof(W); /* weights per 16-byte load */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, S = a.split, slice = warp % S;
    const int glu = a.mode == TRC_GEMV_GLU; /* two weight rows per warp: gate and up */
    int64_t n = (int64_t)blockIdx.x * (GEMV_WARPS / S) + warp / S, N;
    const void *wm;
    float *om;
    const bool valid = gemv_pick(a, n, wm, om, N);
    if (!valid && S == 1) {
        trc_wait_prior_grid();
        return; /* the whole warp leaves together (with S > 1 it must reach gemv_finish's barrier) */
    }
    const int64_t K = valid ? a.K : 0; /* a row past the last: no loads, zero sums */
    const W *w0 = valid ? (const W *)wm + n * a.K : (const W *)a.w[0];
    const W *w1 = glu && valid ? (const W *)a.w[1] + n * a.K : w0;
    float acc0[TT], acc1[TT];
#pragma unroll
    for (int t = 0; t < TT; t++)
        acc0[t] = acc1[t] = 0.0f;

    /* the warp's slice of K: chunks of 32 * VW weights (one 16-byte load per lane), every S-th */
    const int64_t step = (int64_t)S * 32 * VW;
    if (vec) {
        int64_t k = ((int64_t)slice * 32 + lane) * VW;
        uint4 u0[GEMV_UNROLL], u1[GEMV_UNROLL];
        /* the first loads go out before the wait for the previous kernel (weights are constant) */
        bool loaded = k + (GEMV_UNROLL - 1) * step < K;
        if (loaded)
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                u0[u] = __ldg((const uint4 *)(w0 + k + u * step));
                if (glu)
                    u1[u] = __ldg((const uint4 *)(w1 + k + u * step));
            }
        trc_wait_prior_grid();
        for (; k + (GEMV_UNROLL - 1) * step < K; k += GEMV_UNROLL * step) {
            if (!loaded)
#pragma unroll
                for (int u = 0; u < GEMV_UNROLL; u++) {
                    u0[u] = __ldg((const uint4 *)(w0 + k + u * step));
                    if (glu)
                        u1[u] = __ldg((const uint4 *)(w1 + k + u * step));
                }
            loaded = false;
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; u++) {
                float wf[VW];
                unpack<W>(u0[u], wf);
                fma_chunk<VW, TT>(acc0, wf, a.x, a.K, k + u * step, a.T);
                if (glu) {
                    unpack<W>(u1[u], wf);
                    fma_chunk<VW, TT>(acc1, wf, a.x, a.K, k + u * step, a.T);
                }
            }
        }
        for (; k < K; k += step) {
            float wf[VW];
            unpack<W>(__ldg((const uint4 *)(w0 + k)), wf);
            fma_chunk<VW, TT>(acc0, wf, a.x, a.K, k, a.T);
            if (glu) {
                unpack<W>(__ldg((const uint4 *)(w1 + k)), wf);
                fma_chunk<VW, TT>(acc1, wf, a.x, a.K, k, a.T);
            }
        }
    } else {
        trc_wait_prior_grid();
        for (int64_t k = (int64_t)slice * 32 + lane; k < K; k += (int64_t)S * 32) {
            float f0 = to_f32(w0[k]), f1 = glu ? to_f32(w1[k]) : 0.0f;
#pragma unroll
            for (int t = 0; t < TT; t++) {
                if (t < a.T) {
                    float xv = a.x[t * a.K + k];
                    acc0[t] = fmaf(f0, xv, acc0[t]);
                    acc1[t] = fmaf(f1, xv, acc1[t]);
                }
            }
        }
    }
    gemv_finish<TT>(a, valid, om, N, n, warp, lane, S, acc0, acc1);
}

/* x [T, K] to int8 blocks of 32 with one f32 scale each (amax / 127, rounded to nearest): one warp
 * per block, one thread per value. K is a multiple of 32 (quantized rows are whole blocks). */
__global__ __launch_bounds__(256) void quantize_x_kernel(const float *x, int64_t n, int8_t *xq, float *xd)
{
    const int64_t i = (int64_t)blockIdx.x * 256 + threadIdx.x;
    float v = i < n ? x[i] : 0.0f, amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(TRC_FULL_MASK, amax, o));
    const float d = amax / 127.0f;
    if (i < n) {
        xq[i] = (int8_t)(d > 0.0f ? __float2int_rn(v / d) : 0);
        if ((threadIdx.x & 31) == 0)
            xd[i / 32] = d;
    }
}

/* Quantized weights: each lane takes units of 32 weights (a block, or a k-quant's sub-block), decodes
 * one as signed bytes once for all T tokens and multiplies it with x's int8 block of the same 32
 * columns by __dp4a; the block scales multiply the integer sums. */
template <int Q, int TT>
__global__ __launch_bounds__(GEMV_WARPS * 32) void gemv_q_kernel(const trc_gemv_args a, int pairs)
{
    trc_allow_next_grid();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, S = a.split, slice = warp % S;
    const int glu = a.mode == TRC_GEMV_GLU;
    int64_t n = (int64_t)blockIdx.x * (GEMV_WARPS / S) + warp / S, N;
    const void *wm;
    float *om;
    const bool valid = gemv_pick(a, n, wm, om, N);
    if (!valid && S == 1) {
        trc_wait_prior_grid();
        return;
    }
    const int64_t K = a.K, units = valid ? K / 32 : 0, rb = K / trc_qblock(Q) * trc_qbytes(Q);
    const uint8_t *w0 = valid ? (const uint8_t *)wm + n * rb : (const uint8_t *)a.w[0];
    const uint8_t *w1 = glu && valid ? (const uint8_t *)a.w[1] + n * rb : w0;
    const int8_t *xq = (const int8_t *)a.xq;
    const float *xd = (const float *)((const char *)a.xq + trc_gemv_xd_offset(a.T, K));
    float acc0[TT], acc1[TT];
#pragma unroll
    for (int t = 0; t < TT; t++)
        acc0[t] = acc1[t] = 0.0f;
    trc_wait_prior_grid();
    if ((Q == TRC_Q4_K || Q == TRC_Q5_K) && pairs) { /* a lane per pair of sub-blocks (dq_pair_i8) */
        for (int64_t p = (int64_t)slice * 32 + lane; p < units / 2; p += (int64_t)S * 32) {
            trc_qunit l0, h0, l1, h1;
            dq_pair_i8<Q>(w0, p, l0, h0);
            if (glu)
                dq_pair_i8<Q>(w1, p, l1, h1);
#pragma unroll
            for (int t = 0; t < TT; t++) {
                if (t < a.T) {
                    const uint4 *xp = (const uint4 *)(xq + t * K + 64 * p);
                    const uint4 xa = __ldg(xp), xb = __ldg(xp + 1), xc = __ldg(xp + 2), xe = __ldg(xp + 3);
                    const unsigned xl[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
                    const unsigned xh[8] = {xc.x, xc.y, xc.z, xc.w, xe.x, xe.y, xe.z, xe.w};
                    const float sl = __ldg(xd + t * (K / 32) + 2 * p), sh = __ldg(xd + t * (K / 32) + 2 * p + 1);
                    acc0[t] = fmaf(sl, qunit_dot<Q>(l0, xl), acc0[t]);
                    acc0[t] = fmaf(sh, qunit_dot<Q>(h0, xh), acc0[t]);
                    if (glu) {
                        acc1[t] = fmaf(sl, qunit_dot<Q>(l1, xl), acc1[t]);
                        acc1[t] = fmaf(sh, qunit_dot<Q>(h1, xh), acc1[t]);
                    }
                }
            }
        }
        gemv_finish<TT>(a, valid, om, N, n, warp, lane, S, acc0, acc1);
        return;
    }
    for (int64_t u = (int64_t)slice * 32 + lane; u < units; u += (int64_t)S * 32) {
        trc_qunit q0, q1;
        dq_unit_i8<Q>(w0, u, q0);
        if (glu)
            dq_unit_i8<Q>(w1, u, q1);
#pragma unroll
        for (int t = 0; t < TT; t++) {
            if (t < a.T) {
                const uint4 *xp = (const uint4 *)(xq + t * K + 32 * u);
                const uint4 xa = __ldg(xp), xb = __ldg(xp + 1);
                const unsigned xw[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
                const float s = __ldg(xd + t * (K / 32) + u);
                acc0[t] = fmaf(s, qunit_dot<Q>(q0, xw), acc0[t]);
                if (glu)
                    acc1[t] = fmaf(s, qunit_dot<Q>(q1, xw), acc1[t]);
            }
        }
    }
    gemv_finish<TT>(a, valid, om, N, n, warp, lane, S, acc0, acc1);
}

/* Launches kern (a gemv_kernel or gemv_q_kernel instance), as a programmatic dependent when a->pdl. */
template <typename Kernel>
static void launch_kernel(Kernel kern, const trc_gemv_args *a, unsigned grid, int vec, cudaStream_t s)
{
    if (!a->pdl) {
        kern<<<grid, GEMV_WARPS * 32, 0, s>>>(*a, vec);
        return;
    }
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    /* grid, block, dynamic shared memory, stream, attributes (positional: cuda/emu defines the
     * kernel-side names gridDim and blockDim as macros) */
    cudaLaunchConfig_t cfg = {dim3(grid), dim3(GEMV_WARPS * 32), 0, s, attr, 1};
    cudaLaunchKernelEx(&cfg, kern, *a, vec);
}

template <typename W, int TT> static void launch_t(const trc_gemv_args *a, unsigned grid, int vec, cudaStream_t s)
{
    launch_kernel(gemv_kernel<W, TT>, a, grid, vec, s);
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <int Q> static void launch_q(const trc_gemv_args *a, unsigned grid, cudaStream_t s)
{
    const int64_t n = (int64_t)a->T * a->K;
    quantize_x_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(
        a->x, n, (int8_t *)a->xq, (float *)((char *)a->xq + trc_gemv_xd_offset(a->T, a->K)));
    /* k-quant pairs read 16 bytes at a time: every matrix 16-byte aligned (rows are, by the block size) */
    int pairs = Q == TRC_Q4_K || Q == TRC_Q5_K;
    for (int i = 0; i < (a->mode == TRC_GEMV_GLU ? 2 : a->n_mats); i++)
        pairs = pairs && aligned16(a->w[i]);
    if (a->T <= 1)
        launch_kernel(gemv_q_kernel<Q, 1>, a, grid, pairs, s);
    else if (a->T <= 2)
        launch_kernel(gemv_q_kernel<Q, 2>, a, grid, pairs, s);
    else
        launch_kernel(gemv_q_kernel<Q, 4>, a, grid, pairs, s);
}

template <typename W> static void launch(const trc_gemv_args *a, unsigned grid, int vec, cudaStream_t s)
{
    if (a->T <= 1)
        launch_t<W, 1>(a, grid, vec, s);
    else if (a->T <= 2)
        launch_t<W, 2>(a, grid, vec, s);
    else
        launch_t<W, 4>(a, grid, vec, s);
}

extern "C" cudaError_t trc_gemv(const trc_gemv_args *a, cudaStream_t s)
{
    if (a->T < 1 || a->T > TRC_GEMV_MAX_T || a->n_mats < 1 || a->n_mats > 3 ||
        (a->split != 1 && a->split != 2 && a->split != 4) || (a->dtype >= TRC_Q8_0 && !a->xq))
        return cudaErrorInvalidValue;
    int64_t rows = a->N[0];
    if (a->mode == TRC_GEMV_PLAIN)
        for (int i = 1; i < a->n_mats; i++)
            rows += a->N[i];
    unsigned grid = (unsigned)((rows * a->split + GEMV_WARPS - 1) / GEMV_WARPS);
    switch (a->dtype) { /* quantized: rows are whole blocks; x goes through a->xq */
    case TRC_Q8_0: launch_q<TRC_Q8_0>(a, grid, s); return cudaGetLastError();
    case TRC_Q4_0: launch_q<TRC_Q4_0>(a, grid, s); return cudaGetLastError();
    case TRC_Q4_1: launch_q<TRC_Q4_1>(a, grid, s); return cudaGetLastError();
    case TRC_Q5_0: launch_q<TRC_Q5_0>(a, grid, s); return cudaGetLastError();
    case TRC_Q5_1: launch_q<TRC_Q5_1>(a, grid, s); return cudaGetLastError();
    case TRC_Q4_K: launch_q<TRC_Q4_K>(a, grid, s); return cudaGetLastError();
    case TRC_Q5_K: launch_q<TRC_Q5_K>(a, grid, s); return cudaGetLastError();
    case TRC_Q6_K: launch_q<TRC_Q6_K>(a, grid, s); return cudaGetLastError();
    default: break;
    }
    int vw = a->dtype == TRC_F32 ? 4 : 8;
    int vec = a->K % vw == 0 && aligned16(a->x);
    for (int i = 0; i < a->n_mats; i++)
        vec = vec && aligned16(a->w[i]);
    if (a->dtype == TRC_F16)
        launch<__half>(a, grid, vec, s);
    else if (a->dtype == TRC_BF16)
        launch<__nv_bfloat16>(a, grid, vec, s);
    else
        launch<float>(a, grid, vec, s);
    return cudaGetLastError();
}
