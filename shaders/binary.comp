#version 450
#extension GL_GOOGLE_include_directive : require
/* add_f32 (OP_ADD) and mul_f32 (OP_MUL): out = x + y, out = x * y (core/ir.h ADD, MUL); with
 * bcast != 0, y is one row of ne0 values applied to every row of x. One invocation per element. */
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint n, ne0, bcast;
    uint x_off, y_off, dst_off;
} p;

void main()
{
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= p.n)
        return;
    float b = y[p.y_off + (p.bcast != 0u ? i % p.ne0 : i)];
#if defined(OP_ADD)
    dst[p.dst_off + i] = x[p.x_off + i] + b;
#elif defined(OP_MUL)
    dst[p.dst_off + i] = x[p.x_off + i] * b;
#else
#error "binary.comp: define OP_ADD or OP_MUL"
#endif
}
