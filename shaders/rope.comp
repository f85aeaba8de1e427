#version 450
#extension GL_GOOGLE_include_directive : require
/* rope_f32: rotary embedding of every head (core/ir.h ROPE), one invocation per rotated pair.
 * The angles pos[t] * freq_scale * theta^(-2i/hd) / factors[i] (RoPE scaling: linear, llama3's
 * per-pair divisors) are turned into (cos, sin) pairs on the host in double precision, as the
 * reference kernel computes them (positions and divisors are leaves), and bound as a table
 * {2, hd/2, T}: a float32 sin/cos of a large angle on the device would lose the angle's low bits.
 * layout 0 rotates (x[2i], x[2i+1]) (GGUF/Meta), layout 1 (x[i], x[i+hd/2]) (HF). */
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cs[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint hd, H, T, half_layout;
    uint x_off, tab_off, dst_off; /* tab_off counts vec2 entries */
} p;

void main()
{
    uint half_hd = p.hd / 2u;
    uint j = group_index() * WG + gl_LocalInvocationID.x;
    if (j >= half_hd * p.H * p.T)
        return;
    uint i = j % half_hd, row = j / half_hd; /* row = t * H + h */
    uint t = row / p.H;
    uint ia = p.half_layout != 0u ? i : 2u * i;
    uint ib = p.half_layout != 0u ? i + half_hd : 2u * i + 1u;
    vec2 c = cs[p.tab_off + t * half_hd + i];
    float a = x[p.x_off + row * p.hd + ia], b = x[p.x_off + row * p.hd + ib];
    dst[p.dst_off + row * p.hd + ia] = a * c.x - b * c.y;
    dst[p.dst_off + row * p.hd + ib] = a * c.y + b * c.x;
}
