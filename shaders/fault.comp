#version 450
#extension GL_GOOGLE_include_directive : require
/* fault_f32: TRANSIT_FAULT=<op> (core/parity.h): adds 1 to the first element of that op's output,
 * a deliberately broken kernel so that tests can prove `transit parity` notices one. */
#include "common.glsl"

layout(std430, binding = 0) buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint dst_off;
} p;

void main()
{
    if (group_index() == 0u && gl_LocalInvocationID.x == 0u)
        dst[p.dst_off] += 1.0;
}
