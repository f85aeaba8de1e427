/* quant.glsl: quantized weights (core/quant.h has the block layouts) read straight from their
 * blocks: a byte-addressed read-only buffer at binding W_BINDING, and dq_unit(), which decodes 32
 * consecutive weights (unit u of a row: a whole block of the 32-weight types, a sub-block of 32 of
 * the k-quants) into w[]. Every value is the one core/quant.c defines (d * q in float32, as the gguf
 * package computes it). The host binds weights at a 4-byte aligned offset and passes byte offsets.
 *
 * Types (one define): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. QB: weights per block, QS:
 * bytes per block. */
layout(std430, binding = W_BINDING) readonly buffer WeightBuf { uint q_buf[]; };

uint q_u8(uint b) { return (q_buf[b >> 2] >> ((b & 3u) * 8u)) & 0xffu; }
int q_i8(uint b) { return (int(q_u8(b)) << 24) >> 24; }
float q_f16(uint b) { return unpackHalf2x16(q_u8(b) | (q_u8(b + 1u) << 8)).x; }
uint q_u32(uint b) { return q_u8(b) | (q_u8(b + 1u) << 8) | (q_u8(b + 2u) << 16) | (q_u8(b + 3u) << 24); }

#if defined(Q8_0)
#define QB 32u
#define QS 34u
#elif defined(Q4_0)
#define QB 32u
#define QS 18u
#elif defined(Q4_1)
#define QB 32u
#define QS 20u
#elif defined(Q5_0)
#define QB 32u
#define QS 22u
#elif defined(Q5_1)
#define QB 32u
#define QS 24u
#elif defined(Q4_K)
#define QB 256u
#define QS 144u
#elif defined(Q5_K)
#define QB 256u
#define QS 176u
#elif defined(Q6_K)
#define QB 256u
#define QS 210u
#else
#error "quant.glsl: define the weight type"
#endif

#if defined(Q4_K) || defined(Q5_K)
/* sub-block s's 6-bit scale and minimum (tr_k_scale_min) */
void k_scale_min(uint sc_at, uint s, out float sc, out float m)
{
    if (s < 4u) {
        sc = float(q_u8(sc_at + s) & 63u);
        m = float(q_u8(sc_at + s + 4u) & 63u);
    } else {
        sc = float((q_u8(sc_at + s + 4u) & 15u) | ((q_u8(sc_at + s - 4u) >> 6) << 4));
        m = float((q_u8(sc_at + s + 4u) >> 4) | ((q_u8(sc_at + s) >> 6) << 4));
    }
}
#endif

/* The 32 weights of unit u of the row whose first block is at byte row. */
void dq_unit(uint row, uint u, out float w[32])
{
#if !defined(Q4_K) && !defined(Q5_K) && !defined(Q6_K)
    uint b = row + u * QS;
#if defined(Q8_0)
    float d = q_f16(b);
    [[unroll]] for (uint j = 0u; j < 32u; j++)
        w[j] = d * float(q_i8(b + 2u + j));
#else
#if defined(Q4_1) || defined(Q5_1)
    float d = q_f16(b), m = q_f16(b + 2u);
    uint qs = b + 4u;
#else
    float d = q_f16(b), m = 0.0;
    uint qs = b + 2u;
#endif
#if defined(Q5_0) || defined(Q5_1)
    uint qh = q_u32(qs);
    qs += 4u;
#else
    uint qh = 0u;
#endif
#if defined(Q4_0)
    const int off = 8;
#elif defined(Q5_0)
    const int off = 16;
#else
    const int off = 0;
#endif
    for (uint j = 0u; j < 16u; j++) {
        uint v = q_u8(qs + j);
        int lo = int((v & 15u) | (((qh >> j) & 1u) << 4)), hi = int((v >> 4) | (((qh >> (j + 16u)) & 1u) << 4));
#if defined(Q4_1) || defined(Q5_1)
        w[j] = d * float(lo) + m;
        w[j + 16u] = d * float(hi) + m;
#else
        w[j] = d * float(lo - off);
        w[j + 16u] = d * float(hi - off);
#endif
    }
#endif
#elif defined(Q4_K) || defined(Q5_K)
    uint b = row + (u / 8u) * QS, s = u % 8u;
    float d = q_f16(b), dmin = q_f16(b + 2u), sc, m;
    k_scale_min(b + 4u, s, sc, m);
    float ds = d * sc, dm = dmin * m;
#if defined(Q5_K)
    uint qh = b + 16u, qs = b + 48u;
#else
    uint qs = b + 16u;
#endif
    uint q = qs + 32u * (s / 2u), shift = 4u * (s % 2u);
    for (uint l = 0u; l < 32u; l++) {
        uint v = (q_u8(q + l) >> shift) & 15u;
#if defined(Q5_K)
        v |= ((q_u8(qh + l) >> s) & 1u) << 4;
#endif
        w[l] = ds * float(v) - dm;
    }
#else /* Q6_K: unit u covers weights 32 g .. 32 g + 32 of half h of block u / 8 */
    uint b = row + (u / 8u) * QS, h = (u % 8u) / 4u, g = u % 4u;
    float d = q_f16(b + 208u);
    uint ql = b + 64u * h + 32u * (g % 2u), qh = b + 128u + 32u * h, sc = b + 192u + 8u * h + 2u * g;
    uint lshift = 4u * (g / 2u), hshift = 2u * g;
    float d0 = d * float(q_i8(sc)), d1 = d * float(q_i8(sc + 1u));
    for (uint l = 0u; l < 32u; l++) {
        int v = int(((q_u8(ql + l) >> lshift) & 15u) | (((q_u8(qh + l) >> hshift) & 3u) << 4)) - 32;
        w[l] = (l < 16u ? d0 : d1) * float(v);
    }
#endif
}
