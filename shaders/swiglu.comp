#version 450
#extension GL_GOOGLE_include_directive : require
/* swiglu_f32: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)) (core/ir.h SWIGLU). */
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Gate { float gate[]; };
layout(std430, binding = 1) readonly buffer Up { float up[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint n;
    uint g_off, u_off, dst_off;
} p;

void main()
{
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= p.n)
        return;
    float g = gate[p.g_off + i];
    dst[p.dst_off + i] = g / (1.0 + exp(-g)) * up[p.u_off + i];
}
