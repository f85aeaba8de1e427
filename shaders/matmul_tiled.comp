#version 450
#extension GL_GOOGLE_include_directive : require
/* matmul_<dtype>_tiled: out[t][n] = sum_k x[t][k] * W[n][k] for many tokens (prefill), core/ir.h
 * MATMUL. Each workgroup computes a 64 (n) x 64 (t) tile of the output, stepping through K in
 * slices of 16 that are staged in shared memory (2 x 16 x 64 floats = 8 KiB, half of the 16 KiB
 * every Vulkan device offers). The 128 invocations are a 16 x 8 grid; each accumulates a 4 x 8
 * block with stride 16 in n and 8 in t, so neighbouring invocations read neighbouring shared words.
 * Edges (K, N, T not multiples of the tile) load zeros and skip the stores. W is converted to f32
 * as it is staged. Binding and n0 as in matmul_vec.comp. WG must be 128. */
#include "common.glsl"
#define W_BINDING 1
#include "weights.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint K, N, T;
    uint x_off, w_off, dst_off;
    uint dst_ld, n0;
} p;

#define BN 64u
#define BT 64u
#define BK 16u

shared float ws[BK][BN + 1u];
shared float xs[BK][BT + 1u];

void main()
{
    uint tiles_n = (p.N + BN - 1u) / BN, tiles_t = (p.T + BT - 1u) / BT;
    uint g = group_index();
    if (g >= tiles_n * tiles_t)
        return;
    uint n_base = (g % tiles_n) * BN, t_base = (g / tiles_n) * BT;
    uint lid = gl_LocalInvocationID.x;
    uint tn = lid % 16u, tt = lid / 16u; /* 16 x 8 invocations */
    float acc[4][8];
    [[unroll]] for (uint a = 0; a < 4u; a++)
        [[unroll]] for (uint b = 0; b < 8u; b++)
            acc[a][b] = 0.0;
    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        /* stage 64 x 16 of W and of x: 1024 elements each, 8 per invocation */
        for (uint e = lid; e < BN * BK; e += WG) {
            uint r = e / BK, kk = e % BK;
            uint n = n_base + r, k = k0 + kk;
            ws[kk][r] = (n < p.N && k < p.K) ? load_w(p.w_off + n * p.K + k) : 0.0;
            uint t = t_base + r;
            xs[kk][r] = (t < p.T && k < p.K) ? x[p.x_off + t * p.K + k] : 0.0;
        }
        barrier();
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            float a[4], b[8];
            [[unroll]] for (uint i = 0; i < 4u; i++)
                a[i] = ws[kk][tn + 16u * i];
            [[unroll]] for (uint j = 0; j < 8u; j++)
                b[j] = xs[kk][tt + 8u * j];
            [[unroll]] for (uint i = 0; i < 4u; i++)
                [[unroll]] for (uint j = 0; j < 8u; j++)
                    acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < 4u; i++)
        [[unroll]] for (uint j = 0; j < 8u; j++) {
            uint n = n_base + tn + 16u * i, t = t_base + tt + 8u * j;
            if (n < p.N && t < p.T)
                dst[p.dst_off + t * p.dst_ld + p.n0 + n] = acc[i][j];
        }
}
