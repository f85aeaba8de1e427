#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_f32_decode: causal attention for few query rows over a long KV cache (decode), core/ir.h
 * ATTENTION. One workgroup per (query row, head) walks the keys in chunks of WG: each invocation
 * scores one key, the chunk's max and weight sum are workgroup reductions (reduce.glsl), and the
 * running output is rescaled when the max grows (online softmax), so any cache length runs in
 * O(HD + WG) shared memory. For the weighted sum of values, invocations form NG groups of TPG (one
 * dimension each, contiguous reads of a value row); group gi takes every NG-th key of the chunk,
 * and the groups' partial outputs are added at the end. Rows in [skip_lo, skip_hi) are left to
 * attention_f32_transition. */
#include "common.glsl"
#define ROW_KERNEL
#include "attention.glsl"
#include "reduce.glsl"

shared float ps[WG];
shared float comb[NG * HD];

void main()
{
    uint g = group_index();
    if (g >= p.T * p.H)
        return;
    uint h = g % p.H, t = g / p.H, lid = gl_LocalInvocationID.x;
    uint pos = p.n_past + p.t0 + t;
    if (pos >= p.skip_lo && pos < p.skip_hi)
        return;
    uint kvh = h / (p.H / p.Hkv), gi = lid / TPG, i0 = lid % TPG;
    load_q(t, h);
    float m = neg_inf(), l = 0.0;
    float acc[DPT];
    for (uint d = 0; d < DPT; d++)
        acc[d] = 0.0;
    uint n_keys = pos + 1u;
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        float s = c < n_keys ? score(c, kvh) : neg_inf();
        float m_new = max(m, wg_max(s)); /* finite: every chunk has a visible key */
        float w = c < n_keys ? exp(s - m_new) : 0.0;
        ps[lid] = w;
        float f = m == neg_inf() ? 0.0 : exp(m - m_new);
        l = l * f + wg_sum(w); /* its barrier also publishes ps */
        m = m_new;
        for (uint d = 0; d < DPT; d++)
            acc[d] *= f;
        if (gi < NG) {
            uint cend = min(WG, n_keys - c0);
            for (uint cc = gi; cc < cend; cc += NG) {
                float pw = ps[cc];
                uint row = p.v_off + (c0 + cc) * p.kv_ld + kvh * HD;
                for (uint d = 0; d < DPT; d++) {
                    uint i = i0 + d * TPG;
                    if (i < HD)
                        acc[d] += pw * vc[row + i];
                }
            }
        }
        barrier(); /* ps is rewritten by the next chunk */
    }
    for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        if (gi < NG && i < HD)
            comb[gi * HD + i] = acc[d];
    }
    barrier();
    for (uint i = lid; i < HD; i += WG) {
        float s = 0.0;
        for (uint k = 0; k < NG; k++)
            s += comb[k * HD + i];
        dst[p.dst_off + (t * p.H + h) * HD + i] = s / l;
    }
}
