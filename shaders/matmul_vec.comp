#version 450
#extension GL_GOOGLE_include_directive : require
/* matmul_<dtype>_vec: out[t][n] = sum_k x[t][k] * W[n][k] for few tokens (decode), core/ir.h MATMUL.
 * Matrix-vector form: each weight row is streamed once for up to 8 tokens at a time (TB), with the
 * partial sums of a row spread over several invocations and then added:
 *   USE_SUBGROUP: one row per subgroup; its invocations take every gl_SubgroupSize-th k and
 *     subgroupAdd finishes the sums: no shared memory, no barrier. Rows are walked grid-stride, so
 *     the result does not depend on the subgroup size the driver picks.
 *   otherwise: WG / tpr rows per workgroup, tpr invocations per row (a power of two the host picks
 *     from K), and the partial sums of all 8 tokens added in one shared-memory tree.
 * The host binds W from the first row of this dispatch (pieces of N rows when W exceeds
 * maxStorageBufferRange) and out from the first token; n0 is the piece's first output column.
 * W_QUANT (quantized W, quant.glsl): the invocations of a row take units of 32 weights instead of
 * single ones, each decoded from its block once for all the tokens; w_off is then in bytes. */
#include "common.glsl"
#define W_BINDING 1
#ifdef W_QUANT
#include "quant.glsl"
#else
#include "weights.glsl"
#endif

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint K, N, T;          /* N: rows of W in this dispatch */
    uint x_off, w_off, dst_off;
    uint dst_ld, n0;       /* out row stride (all of N), first output column */
    uint tpr;              /* invocations per row (shared-memory form) */
    uint groups;           /* workgroups dispatched (subgroup form: the grid stride) */
} p;

#define TB 8u

/* acc[j] += W[n][k] x[t0 + j][k] over this invocation's k; constant trip counts keep acc in
 * registers */
void row_sums(uint n, uint t0, uint nt, uint first, uint stride, inout float acc[TB])
{
#ifdef W_QUANT
    uint row = p.w_off + n * (p.K / QB) * QS;
    for (uint u = first; u < p.K / 32u; u += stride) {
        float w[32];
        dq_unit(row, u, w);
        uint xi = p.x_off + t0 * p.K + 32u * u;
        [[unroll]] for (uint j = 0; j < TB; j++)
            if (j < nt) {
                float s = 0.0;
                for (uint e = 0u; e < 32u; e++)
                    s += w[e] * x[xi + j * p.K + e];
                acc[j] += s;
            }
    }
#else
    uint wrow = p.w_off + n * p.K;
    for (uint k = first; k < p.K; k += stride) {
        float w = load_w(wrow + k);
        uint xi = p.x_off + t0 * p.K + k;
        [[unroll]] for (uint j = 0; j < TB; j++)
            if (j < nt)
                acc[j] += w * x[xi + j * p.K];
    }
#endif
}

#ifdef USE_SUBGROUP
void main()
{
    uint stride = p.groups * gl_NumSubgroups;
    for (uint n = group_index() * gl_NumSubgroups + gl_SubgroupID; n < p.N; n += stride)
        for (uint t0 = 0; t0 < p.T; t0 += TB) {
            uint nt = min(TB, p.T - t0);
            float acc[TB];
            [[unroll]] for (uint j = 0; j < TB; j++)
                acc[j] = 0.0;
            row_sums(n, t0, nt, gl_SubgroupInvocationID, gl_SubgroupSize, acc);
            [[unroll]] for (uint j = 0; j < TB; j++) {
                float s = subgroupAdd(acc[j]);
                if (j < nt && subgroupElect())
                    dst[p.dst_off + (t0 + j) * p.dst_ld + p.n0 + n] = s;
            }
        }
}
#else
shared float part[TB * WG];

void main()
{
    uint lid = gl_LocalInvocationID.x, lane = lid % p.tpr;
    uint n = group_index() * (WG / p.tpr) + lid / p.tpr;
    bool live = n < p.N;
    for (uint t0 = 0; t0 < p.T; t0 += TB) {
        uint nt = min(TB, p.T - t0);
        float acc[TB];
        [[unroll]] for (uint j = 0; j < TB; j++)
            acc[j] = 0.0;
        if (live)
            row_sums(n, t0, nt, lane, p.tpr, acc);
        [[unroll]] for (uint j = 0; j < TB; j++)
            part[j * WG + lid] = acc[j];
        barrier();
        for (uint s = p.tpr / 2u; s > 0u; s >>= 1) {
            if (lane < s)
                [[unroll]] for (uint j = 0; j < TB; j++)
                    part[j * WG + lid] += part[j * WG + lid + s];
            barrier();
        }
        if (lane == 0u && live)
            for (uint j = 0; j < nt; j++)
                dst[p.dst_off + (t0 + j) * p.dst_ld + p.n0 + n] = part[j * WG + lid];
        barrier();
    }
}
#endif
