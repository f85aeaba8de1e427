#version 450
#extension GL_GOOGLE_include_directive : require
/* glu_f32: out = act(gate) * up (core/ir.h GLU), one invocation per element; act is push constant
 * `act` (tr_activation: 0 silu, 1 gelu, 2 gelu_tanh), uniform across the dispatch, so the branch
 * costs nothing.
 *
 * GLSL has no erf. gelu uses 1 + erf(x) from two fits made for this shader (weighted least squares
 * toward minimax, in double): |x| < 1, 1 + x P(x^2) with P of degree 5 (fit error 2e-8); |x| >= 1,
 * erfc(|x|) = exp(R(|x|)), R of degree 6 on [1, 4] (absolute error of erfc 1e-9), and
 * 1 + erf(x) = 2 - erfc(x) above zero, erfc(-x) below it, so that the negative side, where gelu
 * goes to zero, is not 1 - (1 - tiny) in float. Past |x| = 4 erfc < 1.6e-8, below float's
 * resolution of 1: 0. Measured over [-6, 6] in float: 1 + erf within 1.8e-7 (1.5 ulp of the
 * result), gelu within 1 ulp of its value where it is above 1e-6.
 *
 * gelu_tanh is computed as g sigmoid(2u), u = sqrt(2/pi) (g + 0.044715 g^3), the same function as
 * g/2 (1 + tanh(u)) without tanh: lavapipe's tanh gives NaN for large arguments (exp overflows to
 * inf / inf), while g / (1 + exp(-2u)) goes to g or 0 as u grows either way, and it avoids the
 * cancellation of 1 + tanh(u) for u << 0. */
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Gate { float gate[]; };
layout(std430, binding = 1) readonly buffer Up { float up[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push {
    uint n, act;
    uint g_off, u_off, dst_off;
} p;

const uint ACT_SILU = 0u, ACT_GELU = 1u, ACT_GELU_TANH = 2u; /* core/model_file.h tr_activation */

float one_plus_erf(float x)
{
    float t = abs(x);
    if (t < 1.0) {
        float s = x * x;
        float r = -5.462929098e-4;
        r = fma(r, s, 4.870703579e-3);
        r = fma(r, s, -2.666381042e-2);
        r = fma(r, s, 1.127806423e-1);
        r = fma(r, s, -3.761193903e-1);
        r = fma(r, s, 1.128378922);
        return fma(x, r, 1.0);
    }
    float e = 0.0; /* erfc(t) */
    if (t < 4.0) {
        float r = 1.855740712e-4;
        r = fma(r, t, -2.939607888e-3);
        r = fma(r, t, 2.180532060e-2);
        r = fma(r, t, -1.030373734e-1);
        r = fma(r, t, -6.382256721e-1);
        r = fma(r, t, -1.127040039);
        r = fma(r, t, -3.537187601e-4);
        e = exp(r);
    }
    return x > 0.0 ? 2.0 - e : e;
}

float activation(float g)
{
    if (p.act == ACT_GELU)
        return 0.5 * g * one_plus_erf(g * 0.7071067812 /* 1 / sqrt 2 */);
    if (p.act == ACT_GELU_TANH)
        return g / (1.0 + exp(-2.0 * 0.7978845608 /* sqrt(2 / pi) */ * (g + 0.044715 * g * g * g)));
    return g / (1.0 + exp(-g)); /* ACT_SILU */
}

void main()
{
    uint i = group_index() * WG + gl_LocalInvocationID.x;
    if (i >= p.n)
        return;
    dst[p.dst_off + i] = activation(gate[p.g_off + i]) * up[p.u_off + i];
}
