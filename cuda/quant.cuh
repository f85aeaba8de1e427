/* quant.cuh: quantized weights on the device (core/quant.h has the block layouts): dq_unit<Q>
 * decodes unit u of a row (32 consecutive weights: a whole block of the 32-weight types, a
 * sub-block of 32 of the k-quants) into w[32], with the values core/quant.c defines. Block fields
 * are read byte by byte: a block of 18, 22 or 34 bytes is only 2-byte aligned. */
#ifndef TR_CUDA_QUANT_CUH
#define TR_CUDA_QUANT_CUH

#include "common.cuh"

/* weights per block, bytes per block (numbered as tr_dtype) */
__host__ __device__ constexpr int trc_qblock(int q) { return q >= TRC_Q4_K ? 256 : 32; }
__host__ __device__ constexpr int trc_qbytes(int q)
{
    return q == TRC_Q8_0 ? 34 : q == TRC_Q4_0 ? 18 : q == TRC_Q4_1 ? 20 : q == TRC_Q5_0 ? 22 : q == TRC_Q5_1 ? 24
         : q == TRC_Q4_K ? 144 : q == TRC_Q5_K ? 176 : 210;
}

__device__ __forceinline__ float q_f16(const uint8_t *p) { return __half2float(__ushort_as_half((unsigned short)(p[0] | p[1] << 8))); }

/* Sub-block s's 6-bit scale and minimum from a Q4_K / Q5_K block's 12 scale bytes. */
__device__ __forceinline__ void q_k_scale_min(const uint8_t *sc, int s, int &scale, int &mn)
{
    if (s < 4) {
        scale = sc[s] & 63;
        mn = sc[s + 4] & 63;
    } else {
        scale = (sc[s + 4] & 15) | (sc[s - 4] >> 6) << 4;
        mn = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

template <int Q> __device__ __forceinline__ void dq_unit(const uint8_t *row, int64_t u, float (&w)[32])
{
    if (Q == TRC_Q8_0) {
        const uint8_t *b = row + u * 34;
        float d = q_f16(b);
#pragma unroll
        for (int j = 0; j < 32; j++)
            w[j] = d * (float)(int8_t)b[2 + j];
    } else if (Q == TRC_Q4_0 || Q == TRC_Q4_1 || Q == TRC_Q5_0 || Q == TRC_Q5_1) {
        const bool affine = Q == TRC_Q4_1 || Q == TRC_Q5_1, five = Q == TRC_Q5_0 || Q == TRC_Q5_1;
        const uint8_t *b = row + u * trc_qbytes(Q), *qs = b + (affine ? 4 : 2);
        float d = q_f16(b), m = affine ? q_f16(b + 2) : 0.0f;
        unsigned qh = 0;
        if (five) {
            qh = qs[0] | qs[1] << 8 | qs[2] << 16 | (unsigned)qs[3] << 24;
            qs += 4;
        }
        const int off = Q == TRC_Q4_0 ? 8 : Q == TRC_Q5_0 ? 16 : 0;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)((qh >> j) & 1) << 4, hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            if (affine) {
                w[j] = d * (float)lo + m;
                w[j + 16] = d * (float)hi + m;
            } else {
                w[j] = d * (float)(lo - off);
                w[j + 16] = d * (float)(hi - off);
            }
        }
    } else if (Q == TRC_Q4_K || Q == TRC_Q5_K) {
        const uint8_t *b = row + (u / 8) * trc_qbytes(Q), *sc = b + 4;
        const int s = (int)(u % 8);
        int scale, mn;
        q_k_scale_min(sc, s, scale, mn);
        float ds = q_f16(b) * (float)scale, dm = q_f16(b + 2) * (float)mn;
        const uint8_t *qh = b + 16, *q = b + (Q == TRC_Q5_K ? 48 : 16) + 32 * (s / 2);
        const int shift = 4 * (s % 2);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 15;
            if (Q == TRC_Q5_K)
                v |= ((qh[l] >> s) & 1) << 4;
            w[l] = ds * (float)v - dm;
        }
    } else { /* Q6_K: unit u is weights 32 g .. 32 g + 32 of half h of block u / 8 */
        const uint8_t *b = row + (u / 8) * 210;
        const int h = (int)(u % 8) / 4, g = (int)(u % 4);
        const uint8_t *ql = b + 64 * h + 32 * (g % 2), *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192 + 8 * h + 2 * g);
        float d = q_f16(b + 208), d0 = d * (float)sc[0], d1 = d * (float)sc[1];
        const int ls = 4 * (g / 2), hs = 2 * g;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int v = (((ql[l] >> ls) & 15) | ((qh[l] >> hs) & 3) << 4) - 32;
            w[l] = (l < 16 ? d0 : d1) * (float)v;
        }
    }
}

/* ---- the same units as signed bytes, for products with int8 activations (__dp4a) ---- */

/* Unit u of a row as 32 signed bytes q (word i holds weights 4i .. 4i+3), with weight j =
 * (j < 16 ? d0 : d1) * q[j] + m. */
struct trc_qunit {
    unsigned q[8];
    float d0, d1, m;
};

/* 32-bit words from 2-byte aligned blocks (34, 18, 22, 210 bytes) and 4-byte aligned ones. */
__device__ __forceinline__ unsigned q_ld2(const uint8_t *p)
{
    const uint16_t *h = (const uint16_t *)p;
    return (unsigned)__ldg(h) | (unsigned)__ldg(h + 1) << 16;
}
__device__ __forceinline__ unsigned q_ld4(const uint8_t *p) { return __ldg((const unsigned *)p); }

/* bits 0..3 of b to bit 4 of bytes 0..3 (the fifth bits of Q5_0 / Q5_1) */
__device__ __forceinline__ unsigned q_spread4(unsigned b)
{
    return (b & 1u) << 4 | (b & 2u) << 11 | (b & 4u) << 18 | (b & 8u) << 25;
}

template <int Q> __device__ __forceinline__ void dq_unit_i8(const uint8_t *row, int64_t u, trc_qunit &r)
{
    r.m = 0.0f;
    if (Q == TRC_Q8_0) {
        const uint8_t *b = row + u * 34;
        r.d0 = r.d1 = q_f16(b);
#pragma unroll
        for (int i = 0; i < 8; i++)
            r.q[i] = q_ld2(b + 2 + 4 * i);
    } else if (Q == TRC_Q4_0 || Q == TRC_Q4_1 || Q == TRC_Q5_0 || Q == TRC_Q5_1) {
        const bool affine = Q == TRC_Q4_1 || Q == TRC_Q5_1, five = Q == TRC_Q5_0 || Q == TRC_Q5_1;
        const uint8_t *b = row + u * trc_qbytes(Q), *qs = b + (affine ? 4 : 2) + (five ? 4 : 0);
        r.d0 = r.d1 = q_f16(b);
        if (affine)
            r.m = q_f16(b + 2);
        const unsigned qh = five ? (affine ? q_ld4(b + 4) : q_ld2(b + 2)) : 0u;
        const unsigned off = Q == TRC_Q4_0 ? 0x08080808u : Q == TRC_Q5_0 ? 0x10101010u : 0u;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            unsigned w = affine ? q_ld4(qs + 4 * i) : q_ld2(qs + 4 * i);
            unsigned lo = w & 0x0f0f0f0fu, hi = (w >> 4) & 0x0f0f0f0fu;
            if (five) {
                lo |= q_spread4((qh >> (4 * i)) & 15u);
                hi |= q_spread4((qh >> (16 + 4 * i)) & 15u);
            }
            r.q[i] = affine ? lo : __vsub4(lo, off);
            r.q[i + 4] = affine ? hi : __vsub4(hi, off);
        }
    } else if (Q == TRC_Q4_K || Q == TRC_Q5_K) { /* 144- and 176-byte blocks: 4-byte aligned */
        const uint8_t *b = row + (u / 8) * trc_qbytes(Q), *sc = b + 4;
        const int s = (int)(u % 8);
        int scale, mn;
        q_k_scale_min(sc, s, scale, mn);
        r.d0 = r.d1 = q_f16(b) * (float)scale;
        r.m = -q_f16(b + 2) * (float)mn;
        const uint8_t *qh = b + 16, *q = b + (Q == TRC_Q5_K ? 48 : 16) + 32 * (s / 2);
        const int shift = 4 * (s % 2);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            unsigned w = (q_ld4(q + 4 * i) >> shift) & 0x0f0f0f0fu;
            if (Q == TRC_Q5_K)
                w |= ((q_ld4(qh + 4 * i) >> s) & 0x01010101u) << 4;
            r.q[i] = w;
        }
    } else { /* Q6_K: 210-byte blocks, 2-byte aligned; two scales per unit */
        const uint8_t *b = row + (u / 8) * 210;
        const int h = (int)(u % 8) / 4, g = (int)(u % 4);
        const uint8_t *ql = b + 64 * h + 32 * (g % 2), *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192 + 8 * h + 2 * g);
        float d = q_f16(b + 208);
        r.d0 = d * (float)sc[0];
        r.d1 = d * (float)sc[1];
        const int ls = 4 * (g / 2), hs = 2 * g;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            unsigned w = ((q_ld2(ql + 4 * i) >> ls) & 0x0f0f0f0fu) | ((q_ld2(qh + 4 * i) >> hs) & 0x03030303u) << 4;
            r.q[i] = __vsub4(w, 0x20202020u);
        }
    }
}

/* Q4_K / Q5_K for the GEMV: sub-blocks 2j and 2j + 1 of a block share 32 bytes of 4-bit values (their
 * low and high nibbles), so one lane takes both (pair p: units 2p and 2p + 1) and reads the block
 * with words and 16-byte loads, 6 loads for 64 weights (dq_unit_i8 spends 16 on 32). The 144- and
 * 176-byte blocks keep rows 16-byte aligned; the caller checks the base pointers. */
__device__ __forceinline__ int q_k_byte(unsigned w0, unsigned w1, unsigned w2, int i)
{
    return (int)(((i < 4 ? w0 : i < 8 ? w1 : w2) >> (8 * (i & 3))) & 255u);
}
template <int Q> __device__ __forceinline__ void dq_pair_i8(const uint8_t *row, int64_t p, trc_qunit &lo, trc_qunit &hi)
{
    const uint8_t *b = row + (p / 4) * trc_qbytes(Q);
    const int j = (int)(p % 4), s = 2 * j;
    const unsigned dm = q_ld4(b), w0 = q_ld4(b + 4), w1 = q_ld4(b + 8), w2 = q_ld4(b + 12);
    const float d = __half2float(__ushort_as_half((unsigned short)(dm & 0xffffu)));
    const float dmin = __half2float(__ushort_as_half((unsigned short)(dm >> 16)));
    int sc[2], mn[2];
    for (int h = 0; h < 2; h++) { /* q_k_scale_min on the words */
        const int t = s + h;
        if (t < 4) {
            sc[h] = q_k_byte(w0, w1, w2, t) & 63;
            mn[h] = q_k_byte(w0, w1, w2, t + 4) & 63;
        } else {
            sc[h] = (q_k_byte(w0, w1, w2, t + 4) & 15) | (q_k_byte(w0, w1, w2, t - 4) >> 6) << 4;
            mn[h] = (q_k_byte(w0, w1, w2, t + 4) >> 4) | (q_k_byte(w0, w1, w2, t) >> 6) << 4;
        }
    }
    lo.d0 = lo.d1 = d * (float)sc[0];
    hi.d0 = hi.d1 = d * (float)sc[1];
    lo.m = -dmin * (float)mn[0];
    hi.m = -dmin * (float)mn[1];
    const uint4 *q = (const uint4 *)(b + (Q == TRC_Q5_K ? 48 : 16) + 32 * j);
    const uint4 qa = __ldg(q), qb = __ldg(q + 1);
    const unsigned qw[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
    unsigned hw[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (Q == TRC_Q5_K) { /* bit s of byte l of the 32 high-bit bytes is weight l's fifth bit */
        const uint4 *qh = (const uint4 *)(b + 16);
        const uint4 ha = __ldg(qh), hb = __ldg(qh + 1);
        const unsigned h8[8] = {ha.x, ha.y, ha.z, ha.w, hb.x, hb.y, hb.z, hb.w};
#pragma unroll
        for (int i = 0; i < 8; i++)
            hw[i] = h8[i] >> s;
    }
#pragma unroll
    for (int i = 0; i < 8; i++) {
        lo.q[i] = (qw[i] & 0x0f0f0f0fu) | (hw[i] & 0x01010101u) << 4;
        hi.q[i] = ((qw[i] >> 4) & 0x0f0f0f0fu) | ((hw[i] >> 1) & 0x01010101u) << 4;
    }
}

/* sum_j w_j x_j for one unit against x's int8 block xw (scale applied by the caller) */
template <int Q> __device__ __forceinline__ float qunit_dot(const trc_qunit &w, const unsigned (&xw)[8])
{
    int lo = 0, hi = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        lo = __dp4a((int)w.q[i], (int)xw[i], lo);
        hi = __dp4a((int)w.q[i + 4], (int)xw[i + 4], hi);
    }
    float r = w.d0 * (float)lo + w.d1 * (float)hi;
    if (Q == TRC_Q4_1 || Q == TRC_Q5_1 || Q == TRC_Q4_K || Q == TRC_Q5_K) {
        int sx = 0;
#pragma unroll
        for (int i = 0; i < 8; i++)
            sx = __dp4a((int)xw[i], 0x01010101, sx);
        r += w.m * (float)sx;
    }
    return r;
}

#endif
