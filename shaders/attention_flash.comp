#version 450
#extension GL_GOOGLE_include_directive : require
/* attention_f32_flash: causal attention for a batch of query rows (prefill), core/ir.h ATTENTION,
 * in the flash-attention form: a workgroup takes BR = WG / TPR query rows of one head and walks the
 * keys in tiles of BC, staging each K and V tile in shared memory once for all its rows. Every row
 * belongs to TPR invocations, which keep the row's running max m, normaliser l and HD / TPR of its
 * output dimensions in registers, rescaled by exp(m_old - m_new) when the max grows (online
 * softmax). Nothing of size T x n is ever stored, and there is no reduction across invocations: the
 * TPR invocations of a row each score BC / TPR keys of the tile into shared memory, then each reads
 * the row's BC scores and updates its own dimensions.
 *
 * Specialization constants: 1 HD, 2 TPR (a power of two dividing HD), 3 BC. The Q and K tiles'
 * rows are padded to HD + 1 floats, so that the score loop's reads (same i, rows or keys HD apart)
 * fall in different banks. Shared memory is 4 (BR (HD + 1) + BC (2 HD + 1) + BR BC) bytes; the host
 * picks TPR and BC to fit the device. Rows in
 * [skip_lo, skip_hi) are computed but not written: attention_f32_transition writes them. */
#include "common.glsl"
#include "attention.glsl"

layout(constant_id = 2) const uint TPR = 1;
layout(constant_id = 3) const uint BC = 32;
const uint BR = WG / TPR;
const uint DPT = HD / TPR;
const uint HDP = HD + 1u;

shared float qt[BR * HDP];
shared float kt[BC * HDP];
shared float vt[BC * HD];
shared float st[BR * BC];

void main()
{
    uint tiles = (p.T + BR - 1u) / BR;
    uint g = group_index();
    if (g >= tiles * p.H)
        return;
    uint h = g % p.H, r0 = (g / p.H) * BR, lid = gl_LocalInvocationID.x;
    uint kvh = h / (p.H / p.Hkv);
    uint rows = min(BR, p.T - r0);
    uint pos0 = p.n_past + p.t0 + r0; /* absolute position of the tile's first row */
    if (pos0 >= p.skip_lo && pos0 + rows <= p.skip_hi)
        return;
    uint r = lid / TPR, lane = lid % TPR, pos = pos0 + r;
    bool live = r < rows;
    for (uint e = lid; e < BR * HD; e += WG) {
        uint rr = e / HD, i = e % HD;
        qt[rr * HDP + i] = rr < rows ? q[p.q_off + ((r0 + rr) * p.H + h) * HD + i] : 0.0;
    }
    float m = neg_inf(), l = 0.0;
    float acc[DPT];
    [[unroll]] for (uint j = 0; j < DPT; j++)
        acc[j] = 0.0;
    uint n_keys = pos0 + rows; /* keys the tile's last row sees */
    for (uint c0 = 0; c0 < n_keys; c0 += BC) {
        barrier(); /* the previous tile's readers are done (and qt is written) */
        for (uint e = lid; e < BC * HD; e += WG) {
            uint c = c0 + e / HD, i = e % HD;
            bool inside = c < n_keys;
            kt[(e / HD) * HDP + i] = inside ? kc[p.k_off + c * p.kv_ld + kvh * HD + i] : 0.0;
            vt[e] = inside ? vc[p.v_off + c * p.kv_ld + kvh * HD + i] : 0.0;
        }
        barrier();
        for (uint c = lane; c < BC; c += TPR) {
            float s = neg_inf();
            if (live && c0 + c <= pos) {
                float d = 0.0;
                for (uint i = 0; i < HD; i++)
                    d += qt[r * HDP + i] * kt[c * HDP + i];
                s = d * p.scale;
            }
            st[r * BC + c] = s;
        }
        barrier();
        if (!live || c0 > pos)
            continue;
        float mx = m;
        for (uint c = 0; c < BC; c++)
            mx = max(mx, st[r * BC + c]);
        float f = m == neg_inf() ? 0.0 : exp(m - mx);
        l *= f;
        [[unroll]] for (uint j = 0; j < DPT; j++)
            acc[j] *= f;
        m = mx;
        uint cend = min(BC, pos + 1u - c0);
        for (uint c = 0; c < cend; c++) {
            float w = exp(st[r * BC + c] - m);
            l += w;
            [[unroll]] for (uint j = 0; j < DPT; j++)
                acc[j] += w * vt[c * HD + lane + j * TPR];
        }
    }
    if (live && !(pos >= p.skip_lo && pos < p.skip_hi))
        [[unroll]] for (uint j = 0; j < DPT; j++)
            dst[p.dst_off + (r0 + r) * p.H * HD + h * HD + lane + j * TPR] = acc[j] / l;
}
