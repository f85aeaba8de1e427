/* attention.glsl: what the attention shaders share: the q/k/v/out bindings, the push constants,
 * the unit of work (a head, or a differential head pair), and the decode-style row machinery used
 * by attention_decode.comp and attention_transition.comp (one workgroup per query row and unit).
 *
 * Layouts (core/ir.h ATTENTION): q {HD, H, T}, caches {HD * Hkv, C} (row stride kv_ld floats),
 * out {HD * H, T}; query row t of this dispatch sits at absolute position n_past + t0 + t and sees
 * keys 0 .. that position; head h reads kv head h / (H / Hkv). The host binds q and out from the
 * dispatch's first row (t0 is that row's index in the node) and the caches from row 0.
 *
 * Units. Plain attention's unit is one head: NH = 1 softmax row, an output of W = HD values from its
 * kv head. With DIFF (differential attention, design §4) the unit is the head pair u = (u, u + H/2):
 * NH = 2 softmax rows over the same keys, each with its own kv head, and an output of W = 2 HD
 * values whose value row is [v_a, v_b] (the two kv heads' rows side by side). Both heads' weights
 * multiply that same row, so a kernel keeps NH accumulators per output value, and the unit's output
 * y = acc_0 / l_0 - lambda acc_1 / l_1 (unit_coef) lands in columns [W u, W (u + 1)), exactly where
 * a plain head u's would for W = HD; DIFF kernels then scale it by out_scale / rms(y) (diff_norm). */
layout(constant_id = 1) const uint HD = 64;

#ifdef DIFF
const uint NH = 2u;
#else
const uint NH = 1u;
#endif
const uint W = NH * HD;

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
    float lambda, out_scale, eps;   /* DIFF only (tr_attn_params.diff) */
} p;

float neg_inf() { return uintBitsToFloat(0xff800000u); }

uint n_units() { return p.H / NH; }

/* query head s (< NH) of unit u, and the kv head a query head reads */
uint unit_head(uint u, uint s) { return u + s * (p.H / 2u); }
uint kv_head(uint h) { return h / (p.H / p.Hkv); }

/* the first cache column of the kv head of the unit's head s, and the cache column of the unit's
 * output value i (< W): value i % HD of head i / HD's kv head */
uint kv_col(uint u, uint s) { return kv_head(unit_head(u, s)) * HD; }
uint value_col(uint u, uint i) { return kv_col(u, i / HD) + i % HD; }

/* y = sum_s coef[s] acc[s], from the NH heads' running sums acc (weights exp(s - m_s)) and
 * normalisers l: 1 / l for a plain head, (1 / l_0, -lambda / l_1) for a differential pair. */
float unit_coef(uint s, float l) { return (s == 0u ? 1.0 : -p.lambda) / l; }

/* the DIFF output scale of a unit whose W values have sum of squares ss (design §4 step 5) */
float diff_norm(float ss) { return p.out_scale / sqrt(ss / float(W) + p.eps); }

#ifdef ROW_KERNEL
/* Threads of a row workgroup: groups of TPG invocations, one output value each (DPT values when
 * W > WG); group gi takes every NG-th key of a chunk of WG keys. */
const uint TPG = W < WG ? W : WG;
const uint NG = WG / TPG;
const uint DPT = (W + TPG - 1u) / TPG;

shared float qs[NH * HD];

/* the unit's NH query rows of query row qrow into qs */
void load_q(uint qrow, uint u)
{
    for (uint e = gl_LocalInvocationID.x; e < NH * HD; e += WG)
        qs[e] = q[p.q_off + (qrow * p.H + unit_head(u, e / HD)) * HD + e % HD];
    barrier();
}

/* scale * q . k[c] for the unit's head s, whose kv head is kvh */
float score(uint c, uint kvh, uint s)
{
    uint base = p.k_off + c * p.kv_ld + kvh * HD;
    float d = 0.0;
    for (uint i = 0; i < HD; i++)
        d += qs[s * HD + i] * kc[base + i];
    return d * p.scale;
}
#endif
