/* attention.glsl: what the three attention shaders share: the q/k/v/out bindings, the push
 * constants, and the decode-style row machinery used by attention_decode.comp and
 * attention_transition.comp (one workgroup per query row and head).
 *
 * Layouts (core/ir.h ATTENTION): q {HD, H, T}, caches {HD * Hkv, C} (row stride kv_ld floats),
 * out {HD * H, T}; query row t of this dispatch sits at absolute position n_past + t0 + t and sees
 * keys 0 .. that position; head h reads kv head h / (H / Hkv). The host binds q and out from the
 * dispatch's first row (t0 is that row's index in the node) and the caches from row 0. */
layout(constant_id = 1) const uint HD = 64;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float kc[]; };
layout(std430, binding = 2) readonly buffer V { float vc[]; };
layout(std430, binding = 3) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint H, Hkv, T, t0, n_past, kv_ld;
    uint q_off, k_off, v_off, dst_off;
    float scale;
    uint skip_lo, skip_hi;          /* absolute rows another dispatch computes (transition rows) */
    /* attention_transition only: the block [start, start + iv) and its rows here */
    uint start, iv, strategy;
    float alpha, beta;
} p;

float neg_inf() { return uintBitsToFloat(0xff800000u); }

#ifdef ROW_KERNEL
/* Threads of a row workgroup: groups of TPG invocations, one dimension each (DPT dimensions when
 * HD > WG); group gi takes every NG-th key of a chunk of WG keys. */
const uint TPG = HD < WG ? HD : WG;
const uint NG = WG / TPG;
const uint DPT = (HD + TPG - 1u) / TPG;

shared float qs[HD];

void load_q(uint qrow, uint h)
{
    for (uint i = gl_LocalInvocationID.x; i < HD; i += WG)
        qs[i] = q[p.q_off + (qrow * p.H + h) * HD + i];
    barrier();
}

/* scale * q . k[c] for this workgroup's query and kv head */
float score(uint c, uint kvh)
{
    uint base = p.k_off + c * p.kv_ld + kvh * HD;
    float d = 0.0;
    for (uint i = 0; i < HD; i++)
        d += qs[i] * kc[base + i];
    return d * p.scale;
}
#endif
