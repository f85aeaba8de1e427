#version 450
#extension GL_GOOGLE_include_directive : require
/* get_rows_<dtype>: out[t] = table[ids[t]] (core/ir.h GET_ROWS), one invocation per output element.
 * The host may bind the table in pieces of rows [v0, v0 + nv) (maxStorageBufferRange); each piece
 * writes the rows whose ids fall inside it, and the first piece writes zeros for ids outside the
 * table (the reference kernel's rule; the API never passes such ids). */
#include "common.glsl"
#define W_BINDING 0
#ifdef W_QUANT
#include "quant.glsl"
#else
#include "weights.glsl"
#endif

layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint D, T;          /* row width, rows to gather */
    uint V, v0, nv;     /* table rows in all; rows in this binding: [v0, v0 + nv) */
    uint tab_off, ids_off, dst_off; /* element offsets inside the bindings */
} p;

#ifdef W_QUANT
/* quantized table (quant.glsl): one invocation per unit of 32 weights; tab_off is in bytes */
void main()
{
    uint units = p.D / 32u, i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= units * p.T)
        return;
    uint t = i / units, u = i % units, o = p.dst_off + t * p.D + 32u * u;
    int id = ids[p.ids_off + t];
    if (id >= int(p.v0) && id < int(p.v0 + p.nv)) {
        float w[32];
        dq_unit(p.tab_off + uint(id - int(p.v0)) * (p.D / QB) * QS, u, w);
        for (uint e = 0u; e < 32u; e++)
            dst[o + e] = w[e];
    } else if ((id < 0 || id >= int(p.V)) && p.v0 == 0u) {
        for (uint e = 0u; e < 32u; e++)
            dst[o + e] = 0.0;
    }
}
#else
void main()
{
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= p.D * p.T)
        return;
    uint t = i / p.D, d = i % p.D;
    int id = ids[p.ids_off + t];
    if (id >= int(p.v0) && id < int(p.v0 + p.nv))
        dst[p.dst_off + i] = load_w(p.tab_off + uint(id - int(p.v0)) * p.D + d);
    else if ((id < 0 || id >= int(p.V)) && p.v0 == 0u)
        dst[p.dst_off + i] = 0.0;
}
#endif
