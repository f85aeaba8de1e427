#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_f32_decode: causal attention for few query rows over a long KV cache (decode), core/ir.h
 * ATTENTION; attention_f32_diff_decode (DIFF): the same for differential attention's head pairs.
 * One workgroup per (query row, unit: a head or a head pair, attention.glsl) walks the keys in
 * chunks of WG: each invocation scores one key for each of the unit's NH heads, each head's chunk
 * max and weight sum are workgroup reductions (reduce.glsl), and its running sums are rescaled when
 * its max grows (online softmax, one (max, normaliser) pair per head), so any cache length runs in
 * O(W + WG) shared memory. For the weighted sums of values, invocations form NG groups of TPG (one
 * output value each, contiguous reads of a value row); group gi takes every NG-th key of the chunk
 * and keeps NH sums per value, one per head's weights. At the end each group combines its sums
 * into y (unit_coef), the groups' partial y are added, and a pair's y is scaled by
 * out_scale / rms(y), its sum of squares one more workgroup reduction. Rows in [skip_lo, skip_hi)
 * are left to attention_f32_transition. */
#include "common.glsl"
#define ROW_KERNEL
#include "attention.glsl"
#include "reduce.glsl"

const uint DPW = (W + WG - 1u) / WG; /* output values per invocation in the final sum */

shared float ps[NH * WG];
shared float comb[NG * W];

void main()
{
    uint g = group_index();
    if (g >= p.T * n_units())
        return;
    uint u = g % n_units(), t = g / n_units(), lid = gl_LocalInvocationID.x;
    uint pos = p.n_past + p.t0 + t;
    if (pos >= p.skip_lo && pos < p.skip_hi)
        return;
    uint gi = lid / TPG, i0 = lid % TPG;
    load_q(t, u);
    uint kvh[NH];
    float m[NH], l[NH];
    [[unroll]] for (uint s = 0; s < NH; s++) {
        kvh[s] = kv_head(unit_head(u, s));
        m[s] = neg_inf();
        l[s] = 0.0;
    }
    uint col[DPT]; /* cache columns of this invocation's output values i0 + d TPG (< W) */
    float acc[DPT][NH];
    [[unroll]] for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        col[d] = i < W ? value_col(u, i) : 0u;
        [[unroll]] for (uint s = 0; s < NH; s++)
            acc[d][s] = 0.0;
    }
    uint n_keys = pos + 1u;
    for (uint c0 = 0; c0 < n_keys; c0 += WG) {
        uint c = c0 + lid;
        [[unroll]] for (uint s = 0; s < NH; s++) {
            float sc = c < n_keys ? score(c, kvh[s], s) : neg_inf();
            float m_new = max(m[s], wg_max(sc)); /* finite: every chunk has a visible key */
            float w = c < n_keys ? exp(sc - m_new) : 0.0;
            ps[s * WG + lid] = w;
            float f = m[s] == neg_inf() ? 0.0 : exp(m[s] - m_new);
            l[s] = l[s] * f + wg_sum(w); /* its barrier also publishes ps */
            m[s] = m_new;
            [[unroll]] for (uint d = 0; d < DPT; d++)
                acc[d][s] *= f;
        }
        if (gi < NG) {
            uint cend = min(WG, n_keys - c0);
            for (uint cc = gi; cc < cend; cc += NG) {
                uint row = p.v_off + (c0 + cc) * p.kv_ld;
                [[unroll]] for (uint d = 0; d < DPT; d++)
                    if (i0 + d * TPG < W) {
                        float v = vc[row + col[d]];
                        [[unroll]] for (uint s = 0; s < NH; s++)
                            acc[d][s] += ps[s * WG + cc] * v;
                    }
            }
        }
        barrier(); /* ps is rewritten by the next chunk */
    }
    [[unroll]] for (uint d = 0; d < DPT; d++) {
        uint i = i0 + d * TPG;
        if (gi < NG && i < W) {
            float y = 0.0;
            [[unroll]] for (uint s = 0; s < NH; s++)
                y += unit_coef(s, l[s]) * acc[d][s];
            comb[gi * W + i] = y;
        }
    }
    barrier();
    float y[DPW];
    float ss = 0.0;
    [[unroll]] for (uint k = 0; k < DPW; k++) {
        uint i = lid + k * WG;
        y[k] = 0.0;
        for (uint gg = 0; i < W && gg < NG; gg++)
            y[k] += comb[gg * W + i];
        ss += y[k] * y[k];
    }
    float norm = 1.0;
    if (NH == 2u) /* a constant: uniform control flow for the reduction */
        norm = diff_norm(wg_sum(ss));
    [[unroll]] for (uint k = 0; k < DPW; k++) {
        uint i = lid + k * WG;
        if (i < W)
            dst[p.dst_off + t * p.H * HD + u * W + i] = y[k] * norm;
    }
}
