/* quant.cl: quantized weights (core/quant.h has the block layouts) read straight from their blocks,
 * OpenCL C 1.2 with no extension: the host puts this source in front of the kernels that use it.
 * dq_unit_<t>(row, u, w) decodes 32 consecutive weights, unit u of the row whose first block is at
 * row (a whole block of the 32-weight types, the u % 8-th sub-block of 32 of block u / 8 of the
 * k-quants), into the private w[32]. Every value is the one core/quant.c defines (d * q in float32,
 * as the gguf package computes it), bit for bit:
 *   - every product is exact in float32 (an f16 significand of 11 bits times integers of at most 7
 *     and 5 bits: at most 23 bits), so only the one add of w = d q + m rounds: a fused multiply-add
 *     (-cl-mad-enable, FP_CONTRACT) gives the same bits, and so does any order of Q6_K's d sc q;
 *   - no float denormal arises (an f16 scale is at least 2^-24 and every product and sum is 0 or a
 *     nonzero multiple of 2^-24), so devices that flush float denormals agree too;
 *   - f16 fields are read with vload_half (core OpenCL 1.2, no cl_khr_fp16), which assumes a
 *     little-endian device, as the file's bytes are (CL_DEVICE_ENDIAN_LITTLE; every GPU is).
 * Rows start at 2-byte aligned addresses only; every block size is even and every f16 field at an
 * even offset, so vload_half is aligned; everything else is read byte-wise (vloadn of uchar needs
 * no alignment), never through a wider pointer.
 *
 * QB_<T>: weights per block, QS_<T>: bytes per block. DEFINE_FOR_EACH_QUANT(M) expands M(t, T) for
 * the eight types, so a kernel file can stamp out one kernel per type:
 *   #define MATVEC(t, T) kernel void matvec_##t(...) { float w[32]; dq_unit_##t(row, u, w); ... }
 *   DEFINE_FOR_EACH_QUANT(MATVEC) */

#define QB_Q8_0 32u
#define QS_Q8_0 34u
#define QB_Q4_0 32u
#define QS_Q4_0 18u
#define QB_Q4_1 32u
#define QS_Q4_1 20u
#define QB_Q5_0 32u
#define QS_Q5_0 22u
#define QB_Q5_1 32u
#define QS_Q5_1 24u
#define QB_Q4_K 256u
#define QS_Q4_K 144u
#define QB_Q5_K 256u
#define QS_Q5_K 176u
#define QB_Q6_K 256u
#define QS_Q6_K 210u

#define DEFINE_FOR_EACH_QUANT(M)                                                                   \
    M(q8_0, Q8_0) M(q4_0, Q4_0) M(q4_1, Q4_1) M(q5_0, Q5_0) M(q5_1, Q5_1) M(q4_k, Q4_K)            \
    M(q5_k, Q5_K) M(q6_k, Q6_K)

/* The f16 at p (2-byte aligned). */
float dq_f16(global const uchar *p) { return vload_half(0, (global const half *)p); }

/* Bit i of x for i = 0 .. 15, as 0 or 1 in each lane. */
uchar16 dq_bits16(uint x)
{
    return convert_uchar16(((uint16)(x) >> (uint16)(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u,
                                                  14u, 15u)) &
                           (uint16)(1u));
}

/* ---- the 32-weight types ----------------------------------------------------------------------- */

void dq_unit_q8_0(global const uchar *row, uint u, float *w)
{
    global const uchar *b = row + u * QS_Q8_0;
    float d = dq_f16(b);
    global const char *qs = (global const char *)(b + 2);
    vstore16(d * convert_float16(vload16(0, qs)), 0, w);
    vstore16(d * convert_float16(vload16(1, qs)), 0, w + 16);
}

/* The 4-bit types put weight j < 16 in the low nibble of qs[j] and j + 16 in its high nibble; the
 * 5-bit ones add bit j of qh (a little-endian uint32, assembled byte by byte) as the fifth bit. */
uchar16 dq_lo16(global const uchar *qs, uint qh)
{
    return (vload16(0, qs) & (uchar16)(15)) | (dq_bits16(qh) << (uchar16)(4));
}
uchar16 dq_hi16(global const uchar *qs, uint qh)
{
    return (vload16(0, qs) >> (uchar16)(4)) | (dq_bits16(qh >> 16) << (uchar16)(4));
}
uint dq_u32(global const uchar *p) { return (uint)p[0] | (uint)p[1] << 8 | (uint)p[2] << 16 | (uint)p[3] << 24; }

void dq_unit_q4_0(global const uchar *row, uint u, float *w)
{
    global const uchar *b = row + u * QS_Q4_0;
    float d = dq_f16(b);
    vstore16(d * convert_float16(convert_int16(dq_lo16(b + 2, 0u)) - 8), 0, w);
    vstore16(d * convert_float16(convert_int16(dq_hi16(b + 2, 0u)) - 8), 0, w + 16);
}

void dq_unit_q4_1(global const uchar *row, uint u, float *w)
{
    global const uchar *b = row + u * QS_Q4_1;
    float d = dq_f16(b), m = dq_f16(b + 2);
    vstore16(d * convert_float16(dq_lo16(b + 4, 0u)) + m, 0, w);
    vstore16(d * convert_float16(dq_hi16(b + 4, 0u)) + m, 0, w + 16);
}

void dq_unit_q5_0(global const uchar *row, uint u, float *w)
{
    global const uchar *b = row + u * QS_Q5_0;
    float d = dq_f16(b);
    uint qh = dq_u32(b + 2);
    vstore16(d * convert_float16(convert_int16(dq_lo16(b + 6, qh)) - 16), 0, w);
    vstore16(d * convert_float16(convert_int16(dq_hi16(b + 6, qh)) - 16), 0, w + 16);
}

void dq_unit_q5_1(global const uchar *row, uint u, float *w)
{
    global const uchar *b = row + u * QS_Q5_1;
    float d = dq_f16(b), m = dq_f16(b + 2);
    uint qh = dq_u32(b + 4);
    vstore16(d * convert_float16(dq_lo16(b + 8, qh)) + m, 0, w);
    vstore16(d * convert_float16(dq_hi16(b + 8, qh)) + m, 0, w + 16);
}

/* ---- the k-quants ------------------------------------------------------------------------------ */

/* Q4_K / Q5_K sub-block s of the block at b: w = (d sc_s) q - (dmin m_s), as core/quant.c groups it.
 * The 6-bit sc_s, m_s are tr_k_scale_min's; qs holds sub-blocks 2c and 2c + 1 in the low and high
 * nibbles of the same 32 bytes; Q5_K (qh not 0: the offset of qh[32]) adds bit s of qh[l] as weight
 * l's fifth bit. */
void dq_k45(global const uchar *b, uint qh, uint qs, uint s, float *w)
{
    global const uchar *scales = b + 4;
    uint sc, m;
    if (s < 4u) {
        sc = scales[s] & 63u;
        m = scales[s + 4u] & 63u;
    } else {
        sc = (scales[s + 4u] & 15u) | ((uint)(scales[s - 4u] >> 6) << 4);
        m = (scales[s + 4u] >> 4) | ((uint)(scales[s] >> 6) << 4);
    }
    float ds = dq_f16(b) * (float)sc, dm = dq_f16(b + 2) * (float)m;
    global const uchar *q = b + qs + 32u * (s / 2u);
    uchar16 shift = (uchar16)(4u * (s % 2u));
    uchar16 v0 = (vload16(0, q) >> shift) & (uchar16)(15), v1 = (vload16(1, q) >> shift) & (uchar16)(15);
    if (qh) {
        uchar16 hs = (uchar16)(s);
        v0 |= ((vload16(0, b + qh) >> hs) & (uchar16)(1)) << (uchar16)(4);
        v1 |= ((vload16(1, b + qh) >> hs) & (uchar16)(1)) << (uchar16)(4);
    }
    vstore16(ds * convert_float16(v0) - dm, 0, w);
    vstore16(ds * convert_float16(v1) - dm, 0, w + 16);
}

void dq_unit_q4_k(global const uchar *row, uint u, float *w) { dq_k45(row + (u / 8u) * QS_Q4_K, 0u, 16u, u % 8u, w); }
void dq_unit_q5_k(global const uchar *row, uint u, float *w) { dq_k45(row + (u / 8u) * QS_Q5_K, 16u, 48u, u % 8u, w); }

/* Q6_K: unit u covers weights 32 g .. 32 g + 32 of half h of block u / 8 (u % 8 = 4 h + g): weight l
 * takes ql[32 (g % 2) + l]'s low (g < 2) or high nibble and bits 2 g, 2 g + 1 of qh[l], with ql and
 * qh advanced by 64 h and 32 h; its scale is the int8 scales[8 h + 2 g + l / 16]. The d is at the
 * block's end; w = d sc (q - 32). */
void dq_unit_q6_k(global const uchar *row, uint u, float *w)
{
    global const uchar *b = row + (u / 8u) * QS_Q6_K;
    uint h = (u % 8u) / 4u, g = u % 4u;
    float d = dq_f16(b + 208);
    global const uchar *ql = b + 64u * h + 32u * (g % 2u), *qh = b + 128u + 32u * h, *sc = b + 192u + 8u * h + 2u * g;
    uchar16 lshift = (uchar16)(4u * (g / 2u)), hshift = (uchar16)(2u * g);
    float d0 = d * (float)as_char(sc[0]), d1 = d * (float)as_char(sc[1]);
    uchar16 lo = (uchar16)(15), hi = (uchar16)(3), four = (uchar16)(4);
    uchar16 v0 = ((vload16(0, ql) >> lshift) & lo) | (((vload16(0, qh) >> hshift) & hi) << four);
    uchar16 v1 = ((vload16(1, ql) >> lshift) & lo) | (((vload16(1, qh) >> hshift) & hi) << four);
    vstore16(d0 * convert_float16(convert_int16(v0) - 32), 0, w);
    vstore16(d1 * convert_float16(convert_int16(v1) - 32), 0, w + 16);
}
