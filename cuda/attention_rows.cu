/* attention_rows.cu: the ATTENTION op one query row at a time, for decoding (a few rows over a
 * long cache), for prefill with head sizes the tiled kernel does not cover, and for the rows of
 * the Attention Transition (design §3), which need two passes over their keys.
 *
 * A block (128 threads) takes one query row t and up to AR_GB query heads that share a kv head
 * (GQA: the keys and values are read once for all of them) and walks the keys in tiles of AR_TK:
 *   scores   each key's dot products are split over lpk lanes (lpk = hd / EPT rounded up to a power
 *            of two, at most 32), so one warp scores 32 / lpk keys at a time with 16-byte loads of
 *            the key row, finishing each dot with xor shuffles;
 *   softmax  one warp per head: the tile's max, the running max m, the rescale factor and the
 *            normaliser l (online softmax, as flash attention);
 *   values   threads own EPT consecutive dimensions of the value row and a residue class of the
 *            tile's keys (R key lanes), so each value row is read once, coalesced, for all heads.
 * At the end the R key lanes' partial sums are added in shared memory.
 *
 * Split over the keys (decode over a long cache): with n_splits > 1 the keys 0 .. n_kv are cut into
 * n_splits chunks (multiples of AR_TK, sized from n_kv at run time, so the launch shape stays fixed
 * for a replayed CUDA graph), each block writes its unnormalised sums with its max and normaliser,
 * and trc_attention_reduce combines them: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
 *
 * Transition rows (trans = 1): pass 1 is the score and softmax walk without values, giving the
 * row's final max m and normaliser l; pass 2 scores the keys again and, with p = e^(s - m) / l and
 * t = alpha / end, forms the weights of design §3: kept = p >= t ? p : 0 (halved at key 0), marks
 * m_c = kept >= t ? 1 : 0.01 on P = [start - 2 iv, start), and accumulates sum(kept), sum_P(m_c),
 * A = sum kept v and B = sum_P coef m_c v with coef 7 on the block just before the row's block and
 * 3 on the one before that. The row's output is A + share B with share = beta (1 - sum kept) /
 * sum_P m_c (adding), or A (1 + (1 - sum kept) / sum kept) (multi; 0 if nothing is kept). */
#include "common.cuh"

#define AR_THREADS 128
#define AR_WARPS 4
#define AR_TK 64 /* keys per tile */
#define AR_GB 8  /* query heads per block at most */

/* Dynamic shared memory: the queries, later reused for the key lanes' partial sums, then two
 * weight tiles and per-head statistics. */
__host__ __device__ static inline int rows_front_floats(int hd, int ept, bool trans)
{
    int dg = hd / ept, r = AR_THREADS / dg;
    int q = AR_GB * hd, red = (trans ? 2 : 1) * r * AR_GB * hd;
    return q > red ? q : red;
}
static size_t rows_smem_floats(int hd, int ept, bool trans)
{
    return (size_t)rows_front_floats(hd, ept, trans) + 2 * AR_GB * AR_TK + 4 * AR_GB;
}

template <int EPT, bool TRANS>
__global__ __launch_bounds__(AR_THREADS) void attn_rows_kernel(const trc_attn_args a)
{
    extern __shared__ float4 smem4[];
    trc_allow_next_grid(); /* unsplit decode: the o-projection GEMV may start streaming its weights */
    const int hd = a.hd, G = a.H / a.Hkv, n_hsub = (G + AR_GB - 1) / AR_GB;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int dg_n = hd / EPT, R = AR_THREADS / dg_n; /* value chunks per row, key lanes */
    const int dg = tid % dg_n, kl = tid / dg_n;
    const bool pv_active = kl < R;

    float *qs = (float *)smem4; /* [gb][hd]; later the reduction buffer */
    float *sA = qs + rows_front_floats(hd, EPT, TRANS); /* [AR_GB][AR_TK] scores, then weights */
    float *sB = sA + AR_GB * AR_TK; /* [AR_GB][AR_TK] transition: B weights */
    float *stat = sB + AR_GB * AR_TK; /* [AR_GB][4]: m, l (inverse l in pass 2), corr | sum kept, sum marks */

    const int g = blockIdx.y / n_hsub, hsub = blockIdx.y % n_hsub;
    const int h0 = g * G + hsub * AR_GB, gb = min(AR_GB, G - hsub * AR_GB);
    int t, bstart = 0;
    if (TRANS) {
        int r = blockIdx.x, i = 0;
        while (i < a.n_ranges - 1 && r >= a.range_n[i]) {
            r -= a.range_n[i];
            i++;
        }
        t = a.range_t0[i] + r;
        bstart = a.range_start[i];
    } else {
        t = blockIdx.x;
    }
    const int n_past = *a.n_past, n_keys = n_past + t + 1;
    int c_begin = 0, c_end = n_keys;
    if (!TRANS && a.n_splits > 1) {
        int total = n_past + a.T, chunk = (total + a.n_splits - 1) / a.n_splits;
        chunk = (chunk + AR_TK - 1) / AR_TK * AR_TK;
        c_begin = blockIdx.z * chunk;
        c_end = min(c_begin + chunk, n_keys);
    }
    if (c_begin >= c_end) { /* an empty split: a neutral partial */
        for (int idx = tid; idx < gb * (hd + 2); idx += AR_THREADS) {
            int j = idx / (hd + 2), d = idx % (hd + 2);
            float *p = a.part + (((int64_t)t * a.H + h0 + j) * a.n_splits + blockIdx.z) * (hd + 2);
            p[d] = d == hd ? -INFINITY : 0.0f;
        }
        return;
    }

    for (int idx = tid; idx < gb * hd; idx += AR_THREADS) {
        int j = idx / hd, d = idx % hd;
        qs[j * hd + d] = a.q[(int64_t)t * a.q_ts + (int64_t)(h0 + j) * a.q_hs + d];
    }
    if (tid < AR_GB) {
        stat[tid * 4 + 0] = -INFINITY;
        stat[tid * 4 + 1] = 0.0f;
        stat[tid * 4 + 2] = 1.0f;
        stat[tid * 4 + 3] = 0.0f;
    }
    __syncthreads();

    int lpk = 1;
    while (lpk < dg_n && lpk < 32)
        lpk <<= 1;
    const int kpw = 32 / lpk, sub = lane % lpk, kslot = lane / lpk;
    const int64_t kv0 = (a.kv_row0 ? (int64_t)*a.kv_row0 : 0) * a.kv_rs + (int64_t)g * hd;
    const float *kbase = a.k + kv0, *vbase = a.v + kv0;
    float thr = 0.0f;
    if (TRANS)
        thr = a.alpha / (float)(bstart + a.iv);

    float accA[AR_GB][EPT], accB[AR_GB][EPT];
#pragma unroll
    for (int j = 0; j < AR_GB; j++)
#pragma unroll
        for (int e = 0; e < EPT; e++)
            accA[j][e] = accB[j][e] = 0.0f;

    /* TRANS: pass 0 = statistics only, pass 1 = weights and values. Plain: one pass. */
    for (int pass = TRANS ? 0 : 1; pass < 2; pass++) {
        if (TRANS && pass == 1) {
            if (tid < gb) {
                stat[tid * 4 + 1] = 1.0f / stat[tid * 4 + 1];
                stat[tid * 4 + 2] = 0.0f;
                stat[tid * 4 + 3] = 0.0f;
            }
            __syncthreads();
        }
        for (int tile0 = c_begin; tile0 < c_end; tile0 += AR_TK) {
            const int tile_len = min(AR_TK, c_end - tile0);
            /* scores */
            for (int base = warp * kpw; base < AR_TK; base += AR_WARPS * kpw) {
                const int cl = base + kslot;
                const bool valid = cl < tile_len;
                float dot[AR_GB];
#pragma unroll
                for (int j = 0; j < AR_GB; j++)
                    dot[j] = 0.0f;
                if (valid) {
                    const float *kr = kbase + (int64_t)(tile0 + cl) * a.kv_rs;
                    for (int d = sub * EPT; d < hd; d += lpk * EPT) {
                        if constexpr (EPT == 4) {
                            float4 kv = *(const float4 *)(kr + d);
#pragma unroll
                            for (int j = 0; j < AR_GB; j++)
                                if (j < gb) {
                                    float4 qv = *(const float4 *)(qs + j * hd + d);
                                    dot[j] = fmaf(qv.x, kv.x, dot[j]);
                                    dot[j] = fmaf(qv.y, kv.y, dot[j]);
                                    dot[j] = fmaf(qv.z, kv.z, dot[j]);
                                    dot[j] = fmaf(qv.w, kv.w, dot[j]);
                                }
                        } else {
                            float kv = kr[d];
#pragma unroll
                            for (int j = 0; j < AR_GB; j++)
                                if (j < gb)
                                    dot[j] = fmaf(qs[j * hd + d], kv, dot[j]);
                        }
                    }
                }
#pragma unroll
                for (int j = 0; j < AR_GB; j++)
                    if (j < gb)
                        for (int o = lpk >> 1; o > 0; o >>= 1)
                            dot[j] += __shfl_xor_sync(TRC_FULL_MASK, dot[j], o);
                if (sub == 0 && cl < AR_TK)
#pragma unroll
                    for (int j = 0; j < AR_GB; j++)
                        if (j < gb)
                            sA[j * AR_TK + cl] = valid ? dot[j] * a.scale : -INFINITY;
            }
            __syncthreads();

            /* softmax statistics (plain, TRANS pass 0) or transition weights (TRANS pass 1) */
            for (int j = warp; j < gb; j += AR_WARPS) {
                float s0 = sA[j * AR_TK + lane], s1 = sA[j * AR_TK + lane + 32];
                float m_old = stat[j * 4 + 0], l_old = stat[j * 4 + 1];
                if (!TRANS || pass == 0) {
                    float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1))), corr, p0, p1;
                    if (m_new == -INFINITY) {
                        corr = 1.0f;
                        p0 = p1 = 0.0f;
                    } else {
                        corr = expf(m_old - m_new);
                        p0 = expf(s0 - m_new);
                        p1 = expf(s1 - m_new);
                    }
                    float l_new = l_old * corr + warp_sum(p0 + p1);
                    if (!TRANS) {
                        sA[j * AR_TK + lane] = p0;
                        sA[j * AR_TK + lane + 32] = p1;
                    }
                    __syncwarp();
                    if (lane == 0) {
                        stat[j * 4 + 0] = m_new;
                        stat[j * 4 + 1] = l_new;
                        stat[j * 4 + 2] = corr;
                    }
                } else {
                    float kept_sum = 0.0f, mark_sum = 0.0f;
#pragma unroll
                    for (int half = 0; half < 2; half++) {
                        const int cl = lane + 32 * half, c = tile0 + cl;
                        float s = half ? s1 : s0;
                        float p = s == -INFINITY ? 0.0f : expf(s - m_old) * l_old; /* l_old holds 1 / l */
                        float kept = p < thr ? 0.0f : p;
                        if (c == 0)
                            kept *= 0.5f;
                        bool in_p = cl < tile_len && c >= bstart - 2 * a.iv && c < bstart;
                        float mark = in_p ? (kept >= thr ? 1.0f : 0.01f) : 0.0f;
                        float coef = c >= bstart - a.iv ? 7.0f : 3.0f;
                        sA[j * AR_TK + cl] = kept;
                        sB[j * AR_TK + cl] = coef * mark;
                        kept_sum += kept;
                        mark_sum += mark;
                    }
                    kept_sum = warp_sum(kept_sum);
                    mark_sum = warp_sum(mark_sum);
                    if (lane == 0) {
                        stat[j * 4 + 2] += kept_sum;
                        stat[j * 4 + 3] += mark_sum;
                    }
                }
            }
            __syncthreads();

            /* values */
            if (pass == 1 && pv_active) {
                if (!TRANS) {
#pragma unroll
                    for (int j = 0; j < AR_GB; j++)
                        if (j < gb) {
                            float corr = stat[j * 4 + 2];
#pragma unroll
                            for (int e = 0; e < EPT; e++)
                                accA[j][e] *= corr;
                        }
                }
                const float *vr = vbase + (int64_t)tile0 * a.kv_rs + dg * EPT;
#pragma unroll 4
                for (int cl = kl; cl < tile_len; cl += R) {
                    float v[EPT];
                    if constexpr (EPT == 4) {
                        float4 v4 = *(const float4 *)(vr + (int64_t)cl * a.kv_rs);
                        v[0] = v4.x;
                        v[1] = v4.y;
                        v[2] = v4.z;
                        v[3] = v4.w;
                    } else {
                        v[0] = vr[(int64_t)cl * a.kv_rs];
                    }
#pragma unroll
                    for (int j = 0; j < AR_GB; j++)
                        if (j < gb) {
                            float pa = sA[j * AR_TK + cl];
#pragma unroll
                            for (int e = 0; e < EPT; e++)
                                accA[j][e] = fmaf(pa, v[e], accA[j][e]);
                            if (TRANS) {
                                float pb = sB[j * AR_TK + cl];
#pragma unroll
                                for (int e = 0; e < EPT; e++)
                                    accB[j][e] = fmaf(pb, v[e], accB[j][e]);
                            }
                        }
                }
            }
            __syncthreads();
        }
    }

    /* add the key lanes' partial sums: red[r][j][d] (then the B sums after them) */
    float *red = qs;
    if (pv_active)
#pragma unroll
        for (int j = 0; j < AR_GB; j++)
            if (j < gb)
#pragma unroll
                for (int e = 0; e < EPT; e++) {
                    red[((int64_t)kl * gb + j) * hd + dg * EPT + e] = accA[j][e];
                    if (TRANS)
                        red[((int64_t)(R + kl) * gb + j) * hd + dg * EPT + e] = accB[j][e];
                }
    __syncthreads();
    for (int idx = tid; idx < gb * hd; idx += AR_THREADS) {
        const int j = idx / hd, d = idx % hd, h = h0 + j;
        float A = 0.0f, B = 0.0f;
        for (int r = 0; r < R; r++) {
            A += red[((int64_t)r * gb + j) * hd + d];
            if (TRANS)
                B += red[((int64_t)(R + r) * gb + j) * hd + d];
        }
        float *out = a.out + (int64_t)t * a.o_ts + (int64_t)h * hd + d;
        if (TRANS) {
            float kept = stat[j * 4 + 2], marks = stat[j * 4 + 3];
            if (a.strategy == 1)
                *out = A * (kept > 0.0f ? 1.0f + (1.0f - kept) / kept : 0.0f);
            else
                *out = A + a.beta * (1.0f - kept) / marks * B;
        } else if (a.n_splits > 1) {
            float *p = a.part + (((int64_t)t * a.H + h) * a.n_splits + blockIdx.z) * (hd + 2);
            p[d] = A;
            if (d == 0) {
                p[hd] = stat[j * 4 + 0];
                p[hd + 1] = stat[j * 4 + 1];
            }
        } else {
            *out = A / stat[j * 4 + 1];
        }
    }
}

/* One block per (row, head): combines the n_splits partials of trc_attention_rows. */
__global__ __launch_bounds__(AR_THREADS) void attn_reduce_kernel(const trc_attn_args a)
{
    trc_allow_next_grid(); /* the o-projection GEMV may start streaming its weights */
    const int64_t row = blockIdx.x, t = row / a.H, h = row % a.H;
    const int hd = a.hd, S = a.n_splits;
    const float *p = a.part + row * S * (hd + 2);
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < S; s++)
        M = fmaxf(M, p[s * (hd + 2) + hd]);
    for (int s = 0; s < S; s++) {
        float m = p[s * (hd + 2) + hd];
        L += m == -INFINITY ? 0.0f : expf(m - M) * p[s * (hd + 2) + hd + 1];
    }
    for (int d = threadIdx.x; d < hd; d += AR_THREADS) {
        float acc = 0.0f;
        for (int s = 0; s < S; s++) {
            float m = p[s * (hd + 2) + hd];
            if (m != -INFINITY)
                acc += expf(m - M) * p[s * (hd + 2) + d];
        }
        a.out[t * a.o_ts + h * hd + d] = acc / L;
    }
}

static int rows_ept(const trc_attn_args *a)
{
    int aligned = (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v) & 15) == 0 && a->kv_rs % 4 == 0 &&
                  a->q_hs % 4 == 0 && a->q_ts % 4 == 0;
    return a->hd % 4 == 0 && aligned ? 4 : 1;
}

extern "C" int trc_attention_rows_ok(int hd) { return hd > 0 && (hd % 4 == 0 ? hd <= 512 : hd <= 128); }

extern "C" cudaError_t trc_attention_rows(const trc_attn_args *a, cudaStream_t s)
{
    const int ept = rows_ept(a), G = a->H / a->Hkv;
    if (a->hd > (ept == 4 ? 512 : 128) || (a->trans && a->n_splits != 1))
        return cudaErrorInvalidValue;
    int rows = a->T;
    if (a->trans) {
        rows = 0;
        for (int i = 0; i < a->n_ranges; i++)
            rows += a->range_n[i];
        if (rows == 0)
            return cudaSuccess;
    }
    dim3 grid((unsigned)rows, (unsigned)(a->Hkv * ((G + AR_GB - 1) / AR_GB)), (unsigned)a->n_splits);
    size_t smem = rows_smem_floats(a->hd, ept, a->trans != 0) * sizeof(float);
    if (ept == 4 && a->trans)
        attn_rows_kernel<4, true><<<grid, AR_THREADS, smem, s>>>(*a);
    else if (ept == 4)
        attn_rows_kernel<4, false><<<grid, AR_THREADS, smem, s>>>(*a);
    else if (a->trans)
        attn_rows_kernel<1, true><<<grid, AR_THREADS, smem, s>>>(*a);
    else
        attn_rows_kernel<1, false><<<grid, AR_THREADS, smem, s>>>(*a);
    return cudaGetLastError();
}

extern "C" cudaError_t trc_attention_reduce(const trc_attn_args *a, cudaStream_t s)
{
    attn_reduce_kernel<<<(unsigned)(a->T * a->H), AR_THREADS, 0, s>>>(*a);
    return cudaGetLastError();
}
