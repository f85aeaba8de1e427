#version 450
#extension GL_GOOGLE_include_directive : require
/* kv_write_f32: copies a batch's keys or values {W, T} into rows [pos0, pos0 + T) of a cache
 * (core/ir.h KV_WRITE). The host binds the cache from row pos0, so this is a plain copy of n floats. */
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 1) writeonly buffer Cache { float cache[]; };

layout(push_constant) uniform Push {
    uint n;
    uint src_off, dst_off;
} p;

void main()
{
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i < p.n)
        cache[p.dst_off + i] = src[p.src_off + i];
}
