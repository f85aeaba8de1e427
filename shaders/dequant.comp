#version 450
#extension GL_GOOGLE_include_directive : require
/* dequant_<qtype>: rows of a quantized weight as floats (quant.glsl), for the tiled matrix product
 * of prefill: the host dequantizes a panel of W's rows into scratch memory, then runs
 * matmul_f32_tiled on it. One invocation per unit of 32 weights. */
#include "common.glsl"
#define W_BINDING 0
#include "quant.glsl"

layout(std430, binding = 1) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint K, rows;  /* row length, rows to dequantize */
    uint w_off;    /* byte offset of the first row inside the binding */
    uint dst_off;  /* element offset inside the output binding */
} p;

void main()
{
    uint units = p.K / 32u, i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= units * p.rows)
        return;
    uint r = i / units, u = i % units;
    float w[32];
    dq_unit(p.w_off + r * (p.K / QB) * QS, u, w);
    uint o = p.dst_off + r * p.K + 32u * u;
    for (uint e = 0u; e < 32u; e++)
        dst[o + e] = w[e];
}
