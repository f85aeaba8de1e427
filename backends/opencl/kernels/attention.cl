/* attention.cl: the fused ATTENTION op (core/ir.h), built once per head dimension and unit with
 * -DHD=<head dim> -DNH=<1 plain, 2 differential>: private arrays are sized by them.
 *
 * Layouts: q {HD, H, T}, caches {HD * Hkv, C} (row stride kv_ld floats), out {HD * H, T}; the host
 * passes q and out from the launch's first row, whose absolute position is a.n_past; query row t
 * sees keys 0 .. n_past + t; head h reads kv head h / (H / Hkv).
 *
 * Units. Plain attention's unit is one head: NH = 1 softmax row, W = HD output values. With DIFF
 * (differential attention, design §4) the unit is the head pair (u, u + H/2): NH = 2 softmax rows
 * over the same keys, each with its own kv head, and W = 2 HD outputs whose value row is
 * [v_a, v_b]; y = acc_0 / l_0 - lambda acc_1 / l_1, then out_scale * y / rms(y).
 *
 * attention_rows: one work-group per (query row, unit) walks the keys in chunks of WG: each work-item
 * scores one key per head, each head keeps a running (max, normaliser) and rescales its sums when
 * the max grows (online softmax), so any cache length runs in O(W + WG) local memory. For the value
 * sums, work-items form NG groups of TPG (one output value each); group gi takes every NG-th key
 * of the chunk. Rows in [skip_lo, skip_hi) are left to attention_transition.
 *
 * attention_transition (NH = 1): the rows of one Attention Transition block [start, start + iv),
 * exactly and without the N x N matrix (design §3, docs/attention-transition.md): pass 1 finds the
 * row's max and normaliser; pass 2 forms p = exp(s - mu) / Z, eliminates p < alpha / end, halves
 * p[0], and keeps five sums: K = sum kept, M = sum of marks over P = [start - 2 iv, start), A = sum
 * kept v, A1 and A2 = sums of mark v over the two blocks before (mark 1 where kept >= threshold, else
 * 0.01). adding: out = A + beta (1 - K) / M (7 A1 + 3 A2); multi: out = A (1 + (1 - K) / K). */
#ifndef HD
#error "attention.cl is built with -DHD=<head dimension>"
#endif
#ifndef NH
#define NH 1
#endif
#define W (NH * HD)
#define TPG (W < WG ? W : WG)
#define NG (WG / TPG)
#define DPT ((W + TPG - 1) / TPG)
#define DPW ((W + WG - 1) / WG)

/* all 4-byte fields: the host's struct (cl_ops.c) has the same layout */
typedef struct attn_args {
    uint H, Hkv, T, n_past, kv_ld;
    float scale;
    uint skip_lo, skip_hi;
    uint start, iv, strategy;
    float alpha, beta, lambda, out_scale, eps;
} attn_args;

uint unit_head(uint u, uint s, uint H) { return u + s * (H / 2u); }
uint kv_head(uint h, attn_args a) { return h / (a.H / a.Hkv); }

/* scale * q . k[c] for the unit's head s (its query row in qs), whose kv head is kvh */
float score(local const float *qs, global const float *k, uint c, uint kvh, uint s, attn_args a)
{
    global const float *kr = k + (size_t)c * a.kv_ld + kvh * HD;
    float d = 0.0f;
    for (uint i = 0; i < HD; i++)
        d += qs[s * HD + i] * kr[i];
    return d * a.scale;
}

kernel void attention_rows(global const uchar *qb, ulong qo, global const uchar *kb, ulong ko,
                           global const uchar *vb, ulong vo, global uchar *db, ulong dof, attn_args a)
{
    local float qs[NH * HD], ps[NH * WG], comb[NG * W], red[WG];
    uint units = a.H / NH, g = get_group_id(0), lid = get_local_id(0);
    uint u = g % units, t = g / units, pos = a.n_past + t;
    if (pos >= a.skip_lo && pos < a.skip_hi)
        return; /* the whole group leaves together */
    global const float *q = CPTR(float, qb, qo), *k = CPTR(float, kb, ko), *v = CPTR(float, vb, vo);
    for (uint e = lid; e < NH * HD; e += WG)
        qs[e] = q[((size_t)t * a.H + unit_head(u, e / HD, a.H)) * HD + e % HD];
    barrier(CLK_LOCAL_MEM_FENCE);
    uint gi = lid / TPG, i0 = lid % TPG, kvh[NH], col[DPT];
    float m[NH], l[NH], acc[DPT][NH];
    for (uint s = 0; s < NH; s++) {
        kvh[s] = kv_head(unit_head(u, s, a.H), a);
        m[s] = -INFINITY;
        l[s] = 0.0f;
    }
    for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        col[d] = i < W ? kvh[i / HD] * HD + i % HD : 0u; /* the cache column of output value i */
        for (uint s = 0; s < NH; s++)
            acc[d][s] = 0.0f;
    }
    uint n_keys = pos + 1u;
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        for (uint s = 0; s < NH; s++) {
            float sc = c < n_keys ? score(qs, k, c, kvh[s], s, a) : -INFINITY;
            float m_new = fmax(m[s], wg_max(sc, red)); /* finite: every chunk has a visible key */
            float w = c < n_keys ? exp(sc - m_new) : 0.0f;
            ps[s * WG + lid] = w;
            float f = m[s] == -INFINITY ? 0.0f : exp(m[s] - m_new);
            l[s] = l[s] * f + wg_sum(w, red); /* its barriers also publish ps */
            m[s] = m_new;
            for (uint d = 0; d < DPT; d++)
                acc[d][s] *= f;
        }
        if (gi < NG) {
            uint cend = min((uint)WG, n_keys - c0);
            for (uint cc = gi; cc < cend; cc += NG) {
                global const float *vr = v + (size_t)(c0 + cc) * a.kv_ld;
                for (uint d = 0; d < DPT; d++)
                    if (i0 + d * TPG < W) {
                        float val = vr[col[d]];
                        for (uint s = 0; s < NH; s++)
                            acc[d][s] += ps[s * WG + cc] * val;
                    }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* ps is rewritten by the next chunk */
    }
    for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        if (gi < NG && i < W) {
            float y = 0.0f;
            for (uint s = 0; s < NH; s++)
                y += (s == 0u ? 1.0f : -a.lambda) / l[s] * acc[d][s];
            comb[gi * W + i] = y;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float y[DPW], ss = 0.0f;
    for (uint kk = 0; kk < DPW; kk++) {
        uint i = lid + kk * WG;
        y[kk] = 0.0f;
        for (uint gg = 0; i < W && gg < NG; gg++)
            y[kk] += comb[gg * W + i];
        ss += y[kk] * y[kk];
    }
    float norm = 1.0f;
#if NH == 2
    norm = a.out_scale / sqrt(wg_sum(ss, red) / (float)W + a.eps);
#endif
    global float *out = PTR(float, db, dof) + (size_t)t * a.H * HD + u * W;
    for (uint kk = 0; kk < DPW; kk++) {
        uint i = lid + kk * WG;
        if (i < W)
            out[i] = y[kk] * norm;
    }
}

#if NH == 1
kernel void attention_transition(global const uchar *qb, ulong qo, global const uchar *kb, ulong ko,
                                 global const uchar *vb, ulong vo, global uchar *db, ulong dof, attn_args a)
{
    local float qs[HD], ps[WG], ms[WG], comb[3 * NG * HD], red[WG];
    uint g = get_group_id(0), lid = get_local_id(0), h = g % a.H, r = g / a.H;
    uint pos = a.n_past + r, kvh = kv_head(h, a), gi = lid / TPG, i0 = lid % TPG;
    global const float *q = CPTR(float, qb, qo), *k = CPTR(float, kb, ko), *v = CPTR(float, vb, vo);
    for (uint e = lid; e < HD; e += WG)
        qs[e] = q[((size_t)r * a.H + h) * HD + e];
    barrier(CLK_LOCAL_MEM_FENCE);
    uint n_keys = pos + 1u;

    float mu = -INFINITY, z = 0.0f; /* pass 1 */
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        float s = c < n_keys ? score(qs, k, c, kvh, 0u, a) : -INFINITY;
        float m_new = fmax(mu, wg_max(s, red));
        float w = c < n_keys ? exp(s - m_new) : 0.0f;
        float f = mu == -INFINITY ? 0.0f : exp(mu - m_new);
        z = z * f + wg_sum(w, red);
        mu = m_new;
    }

    uint end = a.start + a.iv; /* pass 2 */
    float thr = a.alpha / (float)end;
    uint b1 = a.start >= a.iv ? a.start - a.iv : 0u;         /* block -1: [b1, start) */
    uint b2 = a.start >= 2u * a.iv ? a.start - 2u * a.iv : 0u; /* block -2: [b2, b1) */
    float ksum = 0.0f, msum = 0.0f, a0[DPT], a1[DPT], a2[DPT];
    for (uint d = 0; d < DPT; d++)
        a0[d] = a1[d] = a2[d] = 0.0f;
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        float kept = 0.0f, mark = 0.0f;
        if (c < n_keys) {
            float w = exp(score(qs, k, c, kvh, 0u, a) - mu) / z;
            kept = w < thr ? 0.0f : w;
            if (c == 0u)
                kept *= 0.5f;
            if (c >= b2 && c < a.start)
                mark = kept >= thr ? 1.0f : 0.01f;
        }
        ps[lid] = kept;
        ms[lid] = mark;
        ksum += wg_sum(kept, red);
        msum += wg_sum(mark, red);
        if (gi < NG) {
            uint cend = min((uint)WG, n_keys - c0);
            for (uint cc = gi; cc < cend; cc += NG) {
                uint key = c0 + cc;
                float kw = ps[cc], mk = ms[cc];
                float w1 = key >= b1 && key < a.start ? mk : 0.0f;
                float w2 = key >= b2 && key < b1 ? mk : 0.0f;
                global const float *vr = v + (size_t)key * a.kv_ld + kvh * HD;
                for (uint d = 0; d < DPT; d++) {
                    uint i = i0 + d * TPG;
                    if (i < HD) {
                        a0[d] += kw * vr[i];
                        a1[d] += w1 * vr[i];
                        a2[d] += w2 * vr[i];
                    }
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        if (gi < NG && i < HD) {
            comb[gi * HD + i] = a0[d];
            comb[(NG + gi) * HD + i] = a1[d];
            comb[(2u * NG + gi) * HD + i] = a2[d];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    global float *out = PTR(float, db, dof) + ((size_t)r * a.H + h) * HD;
    for (uint i = lid; i < HD; i += WG) {
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
        for (uint kk = 0; kk < NG; kk++) {
            s0 += comb[kk * HD + i];
            s1 += comb[(NG + kk) * HD + i];
            s2 += comb[(2u * NG + kk) * HD + i];
        }
        out[i] = a.strategy == 0u ? s0 + a.beta * (1.0f - ksum) / msum * (7.0f * s1 + 3.0f * s2)
                                  : ksum > 0.0f ? s0 * (1.0f + (1.0f - ksum) / ksum) : 0.0f;
    }
}
#endif
