/* weights.glsl: a read-only weight buffer at binding W_BINDING and load_w(i), element i as float.
 * f16 and bf16 come in two forms: with 16-bit storage (float16_t / uint16_t elements) and PACKED
 * (32-bit words, two elements each; element i is the low half of word i/2 when i is even), for
 * devices without storageBuffer16BitAccess. The host binds every weight at a 4-byte aligned offset,
 * so the packed form's words line up with the tensor's elements. */
#if defined(W_F32)
layout(std430, binding = W_BINDING) readonly buffer WeightBuf { float w_buf[]; };
float load_w(uint i) { return w_buf[i]; }
#elif defined(W_F16) && !defined(PACKED)
layout(std430, binding = W_BINDING) readonly buffer WeightBuf { float16_t w_buf[]; };
float load_w(uint i) { return float(w_buf[i]); }
#elif defined(W_F16)
layout(std430, binding = W_BINDING) readonly buffer WeightBuf { uint w_buf[]; };
float load_w(uint i)
{
    vec2 v = unpackHalf2x16(w_buf[i >> 1]);
    return (i & 1u) == 0u ? v.x : v.y;
}
#elif defined(W_BF16) && !defined(PACKED)
layout(std430, binding = W_BINDING) readonly buffer WeightBuf { uint16_t w_buf[]; };
float load_w(uint i) { return uintBitsToFloat(uint(w_buf[i]) << 16); }
#elif defined(W_BF16)
layout(std430, binding = W_BINDING) readonly buffer WeightBuf { uint w_buf[]; };
float load_w(uint i)
{
    uint v = w_buf[i >> 1];
    return uintBitsToFloat((i & 1u) == 0u ? v << 16 : v & 0xffff0000u);
}
#else
#error "weights.glsl: define W_F32, W_F16 or W_BF16"
#endif
