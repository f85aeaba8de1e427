#version 450
#extension GL_GOOGLE_include_directive : require
/* rms_norm_<dtype of w>: out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (core/ir.h RMS_NORM).
 * One workgroup per row; the sum of squares is a workgroup reduction (reduce.glsl). The product is
 * taken in the reference's order, (x * inv) * w. */
#include "common.glsl"
#define W_BINDING 1
#include "weights.glsl"
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint D, rows;
    uint x_off, w_off, dst_off;
    float eps;
} p;

void main()
{
    uint r = group_index();
    if (r >= p.rows)
        return;
    uint lid = gl_LocalInvocationID.x, base = p.x_off + r * p.D;
    float ss = 0.0;
    for (uint i = lid; i < p.D; i += WG) {
        float v = x[base + i];
        ss += v * v;
    }
    ss = wg_sum(ss);
    float inv = 1.0 / sqrt(ss / float(p.D) + p.eps);
    for (uint i = lid; i < p.D; i += WG)
        dst[p.dst_off + r * p.D + i] = (x[base + i] * inv) * load_w(p.w_off + i);
}
