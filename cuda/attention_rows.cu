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
 * sum_P m_c (adding), or A (1 + (1 - sum kept) / sum kept) (multi; 0 if nothing is kept).
 *
 * Differential rows (diff = 1, design §4): a block takes up to AR_GB head pairs (j, j + H/2) whose
 * first heads share kv head g; their second heads then share kv head g + Hkv/2 (H/2 is a multiple
 * of the GQA ratio, since Hkv is even). Each key is scored on both sides (the first heads against
 * kv head g's key row, the second against kv head g + Hkv/2's), each head keeps its own online
 * softmax, and both weigh the same 2 hd-wide value [v_g, v_{g+Hkv/2}], into the two accumulators
 * (A for the first heads, B for the second) that the transition's pass 2 uses for its two sums.
 * The end forms y = A / l_j - lambda B / l_{j+H/2} per pair, its sum of squares (a warp per pair),
 * and out_scale * y / sqrt(mean(y^2) + eps). Split over the keys, each head's partial goes to the
 * workspace like a plain head's, 2 hd wide, and trc_attention_reduce merges both heads of a pair
 * (max, normaliser and sums) before the subtraction and the norm. */
#include "common.cuh"

#define AR_THREADS 128
#define AR_WARPS 4
#define AR_TK 64 /* keys per tile */
#define AR_GB 8  /* query heads (differential: head pairs) per block at most */

enum { AR_PLAIN, AR_TRANS, AR_DIFF }; /* what the kernel computes */

/* Dynamic shared memory: the queries (both sides' with DIFF), later reused for the key lanes'
 * partial sums (two sets with TRANS and DIFF), then two weight tiles and per-head statistics. */
__host__ __device__ static inline int rows_front_floats(int hd, int ept, int var)
{
    int vw = var == AR_DIFF ? 2 * hd : hd, r = AR_THREADS / (vw / ept);
    int q = (var == AR_DIFF ? 2 : 1) * AR_GB * hd, red = (var == AR_PLAIN ? 1 : 2) * r * AR_GB * vw;
    return q > red ? q : red;
}
static size_t rows_smem_floats(int hd, int ept, int var)
{
    return (size_t)rows_front_floats(hd, ept, var) + 2 * AR_GB * AR_TK + 2 * 4 * AR_GB;
}

template <int EPT, int VAR>
__global__ __launch_bounds__(AR_THREADS) void attn_rows_kernel(const trc_attn_args a)
{
    constexpr bool TRANS = VAR == AR_TRANS, DIFF = VAR == AR_DIFF;
    constexpr int SIDES = DIFF ? 2 : 1; /* DIFF: a pair's first heads, then its second heads */
    extern __shared__ float4 smem4[];
    trc_allow_next_grid(); /* unsplit decode: the o-projection GEMV may start streaming its weights */
    const int hd = a.hd, vw = DIFF ? 2 * hd : hd, G = a.H / a.Hkv, n_hsub = (G + AR_GB - 1) / AR_GB;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int dg_n = vw / EPT, R = AR_THREADS / dg_n; /* value chunks per row, key lanes */
    const int dg = tid % dg_n, kl = tid / dg_n;
    const bool pv_active = kl < R;

    float *qs = (float *)smem4; /* [SIDES][AR_GB][hd]; later the reduction buffer */
    float *sA = qs + rows_front_floats(hd, EPT, VAR); /* [AR_GB][AR_TK] scores, then weights */
    float *sB = sA + AR_GB * AR_TK; /* [AR_GB][AR_TK] transition: B weights; DIFF: the second side's */
    float *stat = sB + AR_GB * AR_TK; /* [SIDES][AR_GB][4]: m, l (inverse l in pass 2), corr | sum kept, sum marks */

    const int g = blockIdx.y / n_hsub, hsub = blockIdx.y % n_hsub;
    const int h0 = g * G + hsub * AR_GB, gb = min(AR_GB, G - hsub * AR_GB);
    const int hside = a.H / 2, gside = a.Hkv / 2; /* DIFF: heads and kv heads from one side to the other */
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
    if (c_begin >= c_end) { /* an empty split: a neutral partial for every head of the block */
        for (int idx = tid; idx < SIDES * gb * (vw + 2); idx += AR_THREADS) {
            int sj = idx / (vw + 2), d = idx % (vw + 2), h = h0 + (SIDES == 1 ? sj : sj / gb * hside + sj % gb);
            float *p = a.part + (((int64_t)t * a.H + h) * a.n_splits + blockIdx.z) * (vw + 2);
            p[d] = d == vw ? -INFINITY : 0.0f;
        }
        return;
    }

    for (int idx = tid; idx < SIDES * gb * hd; idx += AR_THREADS) {
        int sj = idx / hd, d = idx % hd, side = SIDES == 1 ? 0 : sj / gb, j = SIDES == 1 ? sj : sj % gb;
        qs[(side * AR_GB + j) * hd + d] = a.q[(int64_t)t * a.q_ts + (int64_t)(h0 + side * hside + j) * a.q_hs + d];
    }
    if (tid < SIDES * AR_GB) {
        stat[tid * 4 + 0] = -INFINITY;
        stat[tid * 4 + 1] = 0.0f;
        stat[tid * 4 + 2] = 1.0f;
        stat[tid * 4 + 3] = 0.0f;
    }
    __syncthreads();

    int lpk = 1;
    while (lpk < hd / EPT && lpk < 32)
        lpk <<= 1;
    const int kpw = 32 / lpk, sub = lane % lpk, kslot = lane / lpk;
    const int64_t kv0 = (a.kv_row0 ? (int64_t)*a.kv_row0 : 0) * a.kv_rs + (int64_t)g * hd;
    /* side 1 (DIFF): kv head g + Hkv/2, whose value row is the second half of the 2 hd-wide value */
    const int64_t kv1 = DIFF ? kv0 + (int64_t)gside * hd : kv0;
    float thr = 0.0f;
    if (TRANS)
        thr = a.alpha / (float)(bstart + a.iv);

    float accA[AR_GB][EPT], accB[AR_GB][EPT];
#pragma unroll
    for (int j = 0; j < AR_GB; j++)
#pragma unroll
        for (int e = 0; e < EPT; e++)
            accA[j][e] = accB[j][e] = 0.0f;

    /* TRANS: pass 0 = statistics only, pass 1 = weights and values. Plain, DIFF: one pass. */
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
            /* scores, of each side against its own kv head's keys */
            for (int base = warp * kpw; base < AR_TK; base += AR_WARPS * kpw) {
                const int cl = base + kslot;
                const bool valid = cl < tile_len;
                /* (the 16-byte path rolled: unrolled, DIFF spills at 128 registers) */
#pragma unroll(EPT == 4 ? 1 : SIDES)
                for (int side = 0; side < SIDES; side++) {
                    const float *qv0 = qs + side * AR_GB * hd;
                    float dot[AR_GB];
#pragma unroll
                    for (int j = 0; j < AR_GB; j++)
                        dot[j] = 0.0f;
                    if (valid) {
                        const float *kr = a.k + (side ? kv1 : kv0) + (int64_t)(tile0 + cl) * a.kv_rs;
                        for (int d = sub * EPT; d < hd; d += lpk * EPT) {
                            if constexpr (EPT == 4) {
                                float4 kv = *(const float4 *)(kr + d);
#pragma unroll
                                for (int j = 0; j < AR_GB; j++)
                                    if (j < gb) {
                                        float4 qv = *(const float4 *)(qv0 + j * hd + d);
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
                                        dot[j] = fmaf(qv0[j * hd + d], kv, dot[j]);
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
                                (side ? sB : sA)[j * AR_TK + cl] = valid ? dot[j] * a.scale : -INFINITY;
                }
            }
            __syncthreads();

            /* softmax statistics (plain, DIFF, TRANS pass 0) or transition weights (TRANS pass 1) */
            for (int sj = warp; sj < SIDES * gb; sj += AR_WARPS) {
                const int side = SIDES == 1 ? 0 : sj / gb, j = SIDES == 1 ? sj : sj % gb;
                float *srow = (side ? sB : sA) + j * AR_TK, *st = stat + (side * AR_GB + j) * 4;
                float s0 = srow[lane], s1 = srow[lane + 32];
                float m_old = st[0], l_old = st[1];
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
                        srow[lane] = p0;
                        srow[lane + 32] = p1;
                    }
                    __syncwarp();
                    if (lane == 0) {
                        st[0] = m_new;
                        st[1] = l_new;
                        st[2] = corr;
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
                        st[2] += kept_sum;
                        st[3] += mark_sum;
                    }
                }
            }
            __syncthreads();

            /* values: DIFF's 2 hd-wide row is [kv head g's, kv head g + Hkv/2's] */
            if (pass == 1 && pv_active) {
                if (!TRANS) {
#pragma unroll
                    for (int j = 0; j < AR_GB; j++)
                        if (j < gb) {
                            float corr = stat[j * 4 + 2], corr_b = DIFF ? stat[(AR_GB + j) * 4 + 2] : 1.0f;
#pragma unroll
                            for (int e = 0; e < EPT; e++) {
                                accA[j][e] *= corr;
                                if (DIFF)
                                    accB[j][e] *= corr_b;
                            }
                        }
                }
                const int d0 = dg * EPT, vhalf = DIFF && d0 >= hd;
                const float *vr = a.v + (vhalf ? kv1 + d0 - hd : kv0 + d0) + (int64_t)tile0 * a.kv_rs;
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
                            if (TRANS || DIFF) {
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
                    red[((int64_t)kl * gb + j) * vw + dg * EPT + e] = accA[j][e];
                    if (TRANS || DIFF)
                        red[((int64_t)(R + kl) * gb + j) * vw + dg * EPT + e] = accB[j][e];
                }
    __syncthreads();
    for (int idx = tid; idx < gb * vw; idx += AR_THREADS) {
        const int j = idx / vw, d = idx % vw, h = h0 + j;
        float A = 0.0f, B = 0.0f;
        for (int r = 0; r < R; r++) {
            A += red[((int64_t)r * gb + j) * vw + d];
            if (TRANS || DIFF)
                B += red[((int64_t)(R + r) * gb + j) * vw + d];
        }
        float *out = a.out + (int64_t)t * a.o_ts + (int64_t)h * vw + d;
        if (TRANS) {
            float kept = stat[j * 4 + 2], marks = stat[j * 4 + 3];
            if (a.strategy == 1)
                *out = A * (kept > 0.0f ? 1.0f + (1.0f - kept) / kept : 0.0f);
            else
                *out = A + a.beta * (1.0f - kept) / marks * B;
        } else if (a.n_splits > 1) {
#pragma unroll
            for (int side = 0; side < SIDES; side++) {
                const float *st = stat + (side * AR_GB + j) * 4;
                float *p = a.part + (((int64_t)t * a.H + h + side * hside) * a.n_splits + blockIdx.z) * (vw + 2);
                p[d] = side ? B : A;
                if (d == 0) {
                    p[vw] = st[0];
                    p[vw + 1] = st[1];
                }
            }
        } else if (DIFF) {
            /* y; red[j][d] is read by this thread alone (above), so y may take its place */
            red[idx] = A / stat[j * 4 + 1] - a.lambda * B / stat[(AR_GB + j) * 4 + 1];
        } else {
            *out = A / stat[j * 4 + 1];
        }
    }
    if (DIFF && a.n_splits == 1) { /* each pair's norm over its 2 hd values, then the scaled output */
        __syncthreads();
        for (int j = warp; j < gb; j += AR_WARPS) {
            float ss = 0.0f;
            for (int d = lane; d < vw; d += 32)
                ss = fmaf(red[j * vw + d], red[j * vw + d], ss);
            ss = warp_sum(ss);
            if (lane == 0)
                stat[j * 4 + 3] = a.out_scale / sqrtf(ss / (float)vw + a.eps);
        }
        __syncthreads();
        for (int idx = tid; idx < gb * vw; idx += AR_THREADS)
            a.out[(int64_t)t * a.o_ts + (int64_t)h0 * vw + idx] = red[idx] * stat[idx / vw * 4 + 3];
    }
}

/* The partials of one head (n_splits of them, w sums then max and normaliser each): the overall
 * max and normaliser, and output dimension d = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s. */
__device__ __forceinline__ float2 split_stats(const float *p, int S, int w)
{
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < S; s++)
        M = fmaxf(M, p[s * (w + 2) + w]);
    for (int s = 0; s < S; s++) {
        float m = p[s * (w + 2) + w];
        L += m == -INFINITY ? 0.0f : expf(m - M) * p[s * (w + 2) + w + 1];
    }
    return make_float2(M, L);
}
__device__ __forceinline__ float split_value(const float *p, int S, int w, float2 ML, int d)
{
    float acc = 0.0f;
    for (int s = 0; s < S; s++) {
        float m = p[s * (w + 2) + w];
        if (m != -INFINITY)
            acc += expf(m - ML.x) * p[s * (w + 2) + d];
    }
    return acc / ML.y;
}

/* One block per (row, head): combines the n_splits partials of trc_attention_rows. */
__global__ __launch_bounds__(AR_THREADS) void attn_reduce_kernel(const trc_attn_args a)
{
    trc_allow_next_grid(); /* the o-projection GEMV may start streaming its weights */
    const int64_t row = blockIdx.x, t = row / a.H, h = row % a.H;
    const int hd = a.hd, S = a.n_splits;
    const float *p = a.part + row * S * (hd + 2);
    const float2 ML = split_stats(p, S, hd);
    for (int d = threadIdx.x; d < hd; d += AR_THREADS)
        a.out[t * a.o_ts + h * hd + d] = split_value(p, S, hd, ML, d);
}

#define AR_DIFF_MAX_HD 256 /* the differential reduction keeps 2 hd / AR_THREADS values per thread */

/* One block per (row, head pair j): both heads' partials merged, y = O_j - lambda O_{j+H/2}, its
 * norm over the 2 hd values, the scaled output. */
__global__ __launch_bounds__(AR_THREADS) void attn_reduce_diff_kernel(const trc_attn_args a)
{
    constexpr int PER = 2 * AR_DIFF_MAX_HD / AR_THREADS;
    __shared__ float scratch[32];
    trc_allow_next_grid();
    const int64_t t = blockIdx.x / (a.H / 2), j = blockIdx.x % (a.H / 2);
    const int vw = 2 * a.hd, S = a.n_splits;
    const float *pa = a.part + (t * a.H + j) * S * (vw + 2), *pb = a.part + (t * a.H + j + a.H / 2) * S * (vw + 2);
    const float2 MLa = split_stats(pa, S, vw), MLb = split_stats(pb, S, vw);
    float y[PER], ss = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        const int d = threadIdx.x + i * AR_THREADS;
        y[i] = d < vw ? split_value(pa, S, vw, MLa, d) - a.lambda * split_value(pb, S, vw, MLb, d) : 0.0f;
        ss = fmaf(y[i], y[i], ss);
    }
    const float f = a.out_scale / sqrtf(block_sum(ss, scratch) / (float)vw + a.eps);
#pragma unroll
    for (int i = 0; i < PER; i++) {
        const int d = threadIdx.x + i * AR_THREADS;
        if (d < vw)
            a.out[t * a.o_ts + j * vw + d] = y[i] * f;
    }
}

static int rows_ept(const trc_attn_args *a)
{
    int aligned = (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v) & 15) == 0 && a->kv_rs % 4 == 0 &&
                  a->q_hs % 4 == 0 && a->q_ts % 4 == 0;
    return a->hd % 4 == 0 && aligned ? 4 : 1;
}

/* The head sizes the row kernels cover: every value row must fit the block's threads (hd / EPT
 * chunks, 2 hd / EPT for a differential pair), with 16-byte accesses (EPT 4) above 128 (64 for
 * differential rows), and the differential reduction's registers. */
static int rows_fit(int hd, int ept, int diff)
{
    int vw = diff ? 2 * hd : hd;
    return hd > 0 && vw / ept <= AR_THREADS && (!diff || hd <= AR_DIFF_MAX_HD);
}

extern "C" int trc_attention_rows_ok(int hd, int diff) { return rows_fit(hd, hd % 4 == 0 ? 4 : 1, diff); }

extern "C" cudaError_t trc_attention_rows(const trc_attn_args *a, cudaStream_t s)
{
    const int ept = rows_ept(a), G = a->H / a->Hkv;
    if (!rows_fit(a->hd, ept, a->diff) || (a->trans && (a->n_splits != 1 || a->diff)))
        return cudaErrorInvalidValue;
    int rows = a->T;
    if (a->trans) {
        rows = 0;
        for (int i = 0; i < a->n_ranges; i++)
            rows += a->range_n[i];
        if (rows == 0)
            return cudaSuccess;
    }
    const int var = a->trans ? AR_TRANS : a->diff ? AR_DIFF : AR_PLAIN;
    dim3 grid((unsigned)rows, (unsigned)((a->diff ? a->Hkv / 2 : a->Hkv) * ((G + AR_GB - 1) / AR_GB)),
              (unsigned)a->n_splits);
    size_t smem = rows_smem_floats(a->hd, ept, var) * sizeof(float);
    if (ept == 4 && var == AR_TRANS)
        attn_rows_kernel<4, AR_TRANS><<<grid, AR_THREADS, smem, s>>>(*a);
    else if (ept == 4 && var == AR_DIFF)
        attn_rows_kernel<4, AR_DIFF><<<grid, AR_THREADS, smem, s>>>(*a);
    else if (ept == 4)
        attn_rows_kernel<4, AR_PLAIN><<<grid, AR_THREADS, smem, s>>>(*a);
    else if (var == AR_TRANS)
        attn_rows_kernel<1, AR_TRANS><<<grid, AR_THREADS, smem, s>>>(*a);
    else if (var == AR_DIFF)
        attn_rows_kernel<1, AR_DIFF><<<grid, AR_THREADS, smem, s>>>(*a);
    else
        attn_rows_kernel<1, AR_PLAIN><<<grid, AR_THREADS, smem, s>>>(*a);
    return cudaGetLastError();
}

extern "C" cudaError_t trc_attention_reduce(const trc_attn_args *a, cudaStream_t s)
{
    if (a->diff)
        attn_reduce_diff_kernel<<<(unsigned)(a->T * (a->H / 2)), AR_THREADS, 0, s>>>(*a);
    else
        attn_reduce_kernel<<<(unsigned)(a->T * a->H), AR_THREADS, 0, s>>>(*a);
    return cudaGetLastError();
}
