#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_f32_transition: the rows of one Attention Transition block [start, start + iv) that lie
 * in this batch (design §3, docs/attention-transition.md), fused and exact, without the N x N
 * matrix. One workgroup per (row, head), two passes over the row's keys:
 *   pass 1: the row max mu and normaliser Z = sum exp(s - mu) (online, as in attention_decode);
 *   pass 2: p = exp(s - mu) / Z; elimination (p < t -> 0, t = alpha / end); p[0] halved; and the
 *           five sums K = sum kept, M = sum_{c in P} m, A = sum kept v, A1 = sum_{block -1} m v,
 *           A2 = sum_{block -2} m v, with m = 1 where the kept weight is >= t, else 0.01, over
 *           P = [start - 2 iv, start).
 * adding: out = A + share (7 A1 + 3 A2), share = beta (1 - K) / M.
 * multi:  out = A (1 + (1 - K) / K) (kept weights scaled to sum to one), 0 if nothing is kept.
 * Keys past the row (up to end) are zeros of the causal row and are eliminated, so only keys
 * 0 .. row contribute. */
#include "common.glsl"
#define ROW_KERNEL
#include "attention.glsl"
#include "reduce.glsl"

shared float ps[WG];
shared float ms[WG];
shared float comb[3u * NG * HD];

void main()
{
    uint g = group_index();
    if (g >= p.T * p.H)
        return;
    uint h = g % p.H, r = g / p.H, lid = gl_LocalInvocationID.x;
    uint pos = p.n_past + p.t0 + r, qrow = r;
    uint kvh = h / (p.H / p.Hkv), gi = lid / TPG, i0 = lid % TPG;
    load_q(qrow, h);
    uint n_keys = pos + 1u;

    /* pass 1: row max and normaliser */
    float mu = neg_inf(), z = 0.0;
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        float s = c < n_keys ? score(c, kvh, 0u) : neg_inf();
        float m_new = max(mu, wg_max(s));
        float w = c < n_keys ? exp(s - m_new) : 0.0;
        float f = mu == neg_inf() ? 0.0 : exp(mu - m_new);
        z = z * f + wg_sum(w);
        mu = m_new;
    }

    /* pass 2: weights, elimination, halving, the five sums */
    uint end = p.start + p.iv;
    float thr = p.alpha / float(end);
    uint b1 = p.start >= p.iv ? p.start - p.iv : 0u;        /* block -1: [b1, start) */
    uint b2 = p.start >= 2u * p.iv ? p.start - 2u * p.iv : 0u; /* block -2: [b2, b1) */
    float ksum = 0.0, msum = 0.0;
    float a0[DPT], a1[DPT], a2[DPT];
    for (uint d = 0; d < DPT; d++) {
        a0[d] = 0.0;
        a1[d] = 0.0;
        a2[d] = 0.0;
    }
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        float kept = 0.0, mark = 0.0;
        if (c < n_keys) {
            float w = exp(score(c, kvh, 0u) - mu) / z;
            kept = w < thr ? 0.0 : w;
            if (c == 0u)
                kept *= 0.5;
            if (c >= b2 && c < p.start)
                mark = kept >= thr ? 1.0 : 0.01;
        }
        ps[lid] = kept;
        ms[lid] = mark;
        ksum += wg_sum(kept);
        msum += wg_sum(mark);
        if (gi < NG) {
            uint cend = min(WG, n_keys - c0);
            for (uint cc = gi; cc < cend; cc += NG) {
                uint key = c0 + cc;
                float kw = ps[cc], mk = ms[cc];
                float w1 = key >= b1 && key < p.start ? mk : 0.0;
                float w2 = key >= b2 && key < b1 ? mk : 0.0;
                uint row = p.v_off + key * p.kv_ld + kvh * HD;
                for (uint d = 0; d < DPT; d++) {
                    uint i = i0 + d * TPG;
                    if (i < HD) {
                        float v = vc[row + i];
                        a0[d] += kw * v;
                        a1[d] += w1 * v;
                        a2[d] += w2 * v;
                    }
                }
            }
        }
        barrier();
    }
    for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        if (gi < NG && i < HD) {
            comb[gi * HD + i] = a0[d];
            comb[(NG + gi) * HD + i] = a1[d];
            comb[(2u * NG + gi) * HD + i] = a2[d];
        }
    }
    barrier();
    for (uint i = lid; i < HD; i += WG) {
        float s0 = 0.0, s1 = 0.0, s2 = 0.0;
        for (uint k = 0; k < NG; k++) {
            s0 += comb[k * HD + i];
            s1 += comb[(NG + k) * HD + i];
            s2 += comb[(2u * NG + k) * HD + i];
        }
        float o;
        if (p.strategy == 0u)
            o = s0 + p.beta * (1.0 - ksum) / msum * (7.0 * s1 + 3.0 * s2);
        else
            o = ksum > 0.0 ? s0 * (1.0 + (1.0 - ksum) / ksum) : 0.0;
        dst[p.dst_off + (qrow * p.H + h) * HD + i] = o;
    }
}
