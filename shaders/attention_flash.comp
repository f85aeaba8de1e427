#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_f32_flash: causal attention for a batch of query rows (prefill), core/ir.h ATTENTION,
 * in the flash-attention form; attention_f32_diff_flash (DIFF): the same for differential
 * attention's head pairs (attention.glsl's units). A workgroup takes BR = WG / TPR query rows of
 * one unit and walks the keys in tiles of BC, staging each tile's keys (NH kv heads) and value rows
 * (W wide: [v_a, v_b] for a pair) in shared memory once for all its rows. Every row belongs to TPR
 * invocations, which keep, for each of the unit's NH heads, the row's running max m and normaliser
 * l, and for each of their W / TPR output values one running sum per head, rescaled by
 * exp(m_old - m_new) when that head's max grows (online softmax). Nothing of size T x n is ever
 * stored, and during the walk there is no reduction across invocations: the TPR invocations of a
 * row each score NH BC / TPR (head, key) pairs of the tile into shared memory, then each reads the
 * row's NH BC scores and updates its own values. At the end each invocation combines its sums into
 * y (unit_coef); for a pair, the sum of squares of the row's W values is added up over its TPR
 * invocations through shared memory and y is scaled by out_scale / rms(y).
 *
 * Specialization constants: 1 HD, 2 TPR (a power of two dividing W), 3 BC. The Q and K tiles'
 * rows are padded to HD + 1 floats, so that the score loop's reads (same i, rows or keys HD apart)
 * fall in different banks. Shared memory is 4 (NH BR (HD + 1) + BC (NH (HD + 1) + W) + NH BR BC)
 * bytes; the host picks TPR and BC to fit the device (vk_ops.c flash_tiles). Rows in
 * [skip_lo, skip_hi) are computed but not written: attention_f32_transition writes them. */
#include "common.glsl"
#include "attention.glsl"

layout(constant_id = 2) const uint TPR = 1;
layout(constant_id = 3) const uint BC = 32;
const uint BR = WG / TPR;
const uint DPT = W / TPR;
const uint HDP = HD + 1u;

shared float qt[NH * BR * HDP]; /* [head][row][i] */
shared float kt[NH * BC * HDP]; /* [head][key][i] */
shared float vt[BC * W];        /* [key][value] */
shared float st[NH * BR * BC];  /* [head][row][key] */

void main()
{
    uint tiles = (p.T + BR - 1u) / BR;
    uint g = group_index();
    if (g >= tiles * n_units())
        return;
    uint u = g % n_units(), r0 = (g / n_units()) * BR, lid = gl_LocalInvocationID.x;
    uint rows = min(BR, p.T - r0);
    uint pos0 = p.n_past + p.t0 + r0; /* absolute position of the tile's first row */
    if (pos0 >= p.skip_lo && pos0 + rows <= p.skip_hi)
        return;
    uint r = lid / TPR, lane = lid % TPR, pos = pos0 + r;
    bool live = r < rows;
    for (uint e = lid; e < NH * BR * HD; e += WG) {
        uint s = e / (BR * HD), rr = e / HD % BR, i = e % HD;
        qt[(s * BR + rr) * HDP + i] = rr < rows ? q[p.q_off + ((r0 + rr) * p.H + unit_head(u, s)) * HD + i] : 0.0;
    }
    uint kvb[NH]; /* kv_col of each head: hoisted out of the staging loops */
    float m[NH], l[NH];
    float acc[DPT][NH];
    [[unroll]] for (uint s = 0; s < NH; s++) {
        kvb[s] = kv_col(u, s);
        m[s] = neg_inf();
        l[s] = 0.0;
        [[unroll]] for (uint j = 0; j < DPT; j++)
            acc[j][s] = 0.0;
    }
    uint n_keys = pos0 + rows; /* keys the tile's last row sees */
    for (uint c0 = 0; c0 < n_keys; c0 += BC) {
        barrier(); /* the previous tile's readers are done (and qt is written) */
        for (uint e = lid; e < NH * BC * HD; e += WG) {
            uint s = e / (BC * HD), c = e / HD % BC, i = e % HD;
            uint key = c0 + c;
            kt[(s * BC + c) * HDP + i] = key < n_keys ? kc[p.k_off + key * p.kv_ld + kvb[s] + i] : 0.0;
        }
        for (uint e = lid; e < BC * W; e += WG) {
            uint key = c0 + e / W, i = e % W;
            vt[e] = key < n_keys ? vc[p.v_off + key * p.kv_ld + kvb[i / HD] + i % HD] : 0.0;
        }
        barrier();
        for (uint e = lane; e < NH * BC; e += TPR) {
            uint s = e / BC, c = e % BC;
            float sc = neg_inf();
            if (live && c0 + c <= pos) {
                float d = 0.0;
                for (uint i = 0; i < HD; i++)
                    d += qt[(s * BR + r) * HDP + i] * kt[(s * BC + c) * HDP + i];
                sc = d * p.scale;
            }
            st[(s * BR + r) * BC + c] = sc;
        }
        barrier();
        if (!live || c0 > pos)
            continue;
        [[unroll]] for (uint s = 0; s < NH; s++) {
            float mx = m[s];
            for (uint c = 0; c < BC; c++)
                mx = max(mx, st[(s * BR + r) * BC + c]);
            float f = m[s] == neg_inf() ? 0.0 : exp(m[s] - mx);
            l[s] *= f;
            [[unroll]] for (uint j = 0; j < DPT; j++)
                acc[j][s] *= f;
            m[s] = mx;
        }
        uint cend = min(BC, pos + 1u - c0);
        for (uint c = 0; c < cend; c++) {
            float w[NH];
            [[unroll]] for (uint s = 0; s < NH; s++) {
                w[s] = exp(st[(s * BR + r) * BC + c] - m[s]);
                l[s] += w[s];
            }
            [[unroll]] for (uint j = 0; j < DPT; j++) {
                float v = vt[c * W + lane + j * TPR];
                [[unroll]] for (uint s = 0; s < NH; s++)
                    acc[j][s] += w[s] * v;
            }
        }
    }
    float y[DPT];
    float ss = 0.0;
    [[unroll]] for (uint j = 0; j < DPT; j++) {
        y[j] = 0.0;
        [[unroll]] for (uint s = 0; s < NH; s++)
            y[j] += unit_coef(s, l[s]) * acc[j][s];
        ss += y[j] * y[j];
    }
    float norm = 1.0;
    if (NH == 2u) {
        /* The row's sum of squares over its TPR invocations, through qt: every invocation has
         * passed the last tile's second barrier, after which nothing reads qt, and qt holds at
         * least WG floats (TPR <= W < NH (HD + 1)). Rows that are not live add NaNs only to
         * their own sums. */
        qt[lid] = ss;
        barrier();
        float tot = 0.0;
        for (uint k = 0; k < TPR; k++)
            tot += qt[r * TPR + k];
        norm = diff_norm(tot);
    }
    if (live && !(pos >= p.skip_lo && pos < p.skip_hi))
        [[unroll]] for (uint j = 0; j < DPT; j++)
            dst[p.dst_off + (r0 + r) * p.H * HD + u * W + lane + j * TPR] = y[j] * norm;
}
