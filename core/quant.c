/* quant.c: dequantization (the definition of a quantized weight's value) and transit's quantizers.
 * Layouts in quant.h. No fused multiply-add here: products are rounded as the gguf package's numpy
 * rounds them, so dequantized values agree bit for bit. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "half.h"
#include "quant.h"

/* ---- dequantization -------------------------------------------------------------------------- */

static void dequant_q8_0(const tr_block_q8_0 *b, float *y)
{
    float d = tr_f16_to_f32(b->d);
    for (int j = 0; j < 32; j++)
        y[j] = d * (float)b->qs[j];
}

static void dequant_q4_0(const tr_block_q4_0 *b, float *y)
{
    float d = tr_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b->qs[j] & 0xF) - 8);
        y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
    }
}

static void dequant_q4_1(const tr_block_q4_1 *b, float *y)
{
    float d = tr_f16_to_f32(b->d), m = tr_f16_to_f32(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b->qs[j] & 0xF) + m;
        y[j + 16] = d * (float)(b->qs[j] >> 4) + m;
    }
}

static uint32_t load_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void dequant_q5_0(const tr_block_q5_0 *b, float *y)
{
    float d = tr_f16_to_f32(b->d);
    uint32_t qh = load_u32(b->qh);
    for (int j = 0; j < 16; j++) {
        int lo = (b->qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void dequant_q5_1(const tr_block_q5_1 *b, float *y)
{
    float d = tr_f16_to_f32(b->d), m = tr_f16_to_f32(b->m);
    uint32_t qh = load_u32(b->qh);
    for (int j = 0; j < 16; j++) {
        int lo = (b->qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

/* Q4_K and Q5_K: qh is NULL for Q4_K. */
static void dequant_k45(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                        float *y)
{
    float d = tr_f16_to_f32(d16), dmin = tr_f16_to_f32(dmin16);
    for (int s = 0; s < 8; s++) {
        int sc, m;
        tr_k_scale_min(scales, s, &sc, &m);
        float ds = d * (float)sc, dm = dmin * (float)m;
        const uint8_t *q = qs + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            int v = s % 2 ? q[l] >> 4 : q[l] & 0xF;
            if (qh)
                v |= ((qh[l] >> s) & 1) << 4;
            y[32 * s + l] = ds * (float)v - dm;
        }
    }
}

static void dequant_q6_K(const tr_block_q6_K *b, float *y)
{
    float d = tr_f16_to_f32(b->d);
    for (int half = 0; half < 2; half++) {
        const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
        const int8_t *sc = b->scales + 8 * half;
        float *out = y + 128 * half;
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            out[l] = d * (float)sc[is] * (float)q1;
            out[l + 32] = d * (float)sc[is + 2] * (float)q2;
            out[l + 64] = d * (float)sc[is + 4] * (float)q3;
            out[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

void tr_dequantize_row(tr_dtype t, const void *src, float *dst, int64_t n)
{
    const int64_t nb = n / tr_dtype_block(t);
    for (int64_t i = 0; i < nb; i++) {
        switch (t) {
        case TR_Q8_0: dequant_q8_0((const tr_block_q8_0 *)src + i, dst + 32 * i); break;
        case TR_Q4_0: dequant_q4_0((const tr_block_q4_0 *)src + i, dst + 32 * i); break;
        case TR_Q4_1: dequant_q4_1((const tr_block_q4_1 *)src + i, dst + 32 * i); break;
        case TR_Q5_0: dequant_q5_0((const tr_block_q5_0 *)src + i, dst + 32 * i); break;
        case TR_Q5_1: dequant_q5_1((const tr_block_q5_1 *)src + i, dst + 32 * i); break;
        case TR_Q4_K: {
            const tr_block_q4_K *b = (const tr_block_q4_K *)src + i;
            dequant_k45(b->d, b->dmin, b->scales, NULL, b->qs, dst + 256 * i);
            break;
        }
        case TR_Q5_K: {
            const tr_block_q5_K *b = (const tr_block_q5_K *)src + i;
            dequant_k45(b->d, b->dmin, b->scales, b->qh, b->qs, dst + 256 * i);
            break;
        }
        case TR_Q6_K: dequant_q6_K((const tr_block_q6_K *)src + i, dst + 256 * i); break;
        default: return;
        }
    }
}

/* ---- quantization: the 32-weight types --------------------------------------------------------- */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void quant_q8_0(const float *x, tr_block_q8_0 *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d > 0 ? 1 / d : 0;
    b->d = tr_f32_to_f16(d);
    for (int j = 0; j < 32; j++)
        b->qs[j] = (int8_t)clampi((int)lrintf(x[j] * id), -127, 127);
}

/* The signed value of largest magnitude: symmetric types give it the extreme level (-8, -16), which
 * spends the level the other side lacks on the larger side. */
static float signed_extreme(const float *x, int n)
{
    float amax = 0, v = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            v = x[j];
        }
    return v;
}

/* Symmetric 4/5-bit (Q4_0, Q5_0): levels q - half for q in [0, 2 half). */
static void quant_sym(const float *x, int half, uint16_t *d16, uint8_t q[32])
{
    float d = signed_extreme(x, 32) / -(float)half, id = d != 0 ? 1 / d : 0;
    *d16 = tr_f32_to_f16(d);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)clampi((int)lrintf(x[j] * id) + half, 0, 2 * half - 1);
}

/* Affine 4/5-bit (Q4_1, Q5_1): d q + m for q in [0, nmax]. */
static void quant_affine(const float *x, int nmax, uint16_t *d16, uint16_t *m16, uint8_t q[32])
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    float d = (hi - lo) / (float)nmax, id = d > 0 ? 1 / d : 0;
    *d16 = tr_f32_to_f16(d);
    *m16 = tr_f32_to_f16(lo);
    for (int j = 0; j < 32; j++)
        q[j] = (uint8_t)clampi((int)lrintf((x[j] - lo) * id), 0, nmax);
}

static void pack_nibbles(const uint8_t q[32], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        h |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    if (qh)
        for (int i = 0; i < 4; i++)
            qh[i] = (uint8_t)(h >> (8 * i));
}

/* ---- quantization: the k-quants ---------------------------------------------------------------- */

/* Least weighted squared error fit of x[0..n) by s l - m with integer levels l in [0, nmax] and m >= 0
 * (an offset of at most the smallest value, 0 when every value is positive): levels from a sweep of
 * candidate scales around (max - min) / nmax, each refitted by weighted least squares. Returns s and
 * writes *m; 0 when the values are all equal. */
static float fit_affine(const float *x, const float *w, int n, int nmax, float *m_out)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    if (lo > 0)
        lo = 0;
    if (hi <= lo) {
        *m_out = -lo;
        return 0;
    }
    float best_s = (hi - lo) / (float)nmax, best_b = lo;
    double best_err = INFINITY;
    for (int k = -10; k <= 10; k++) {
        float is = ((float)nmax + 0.1f * (float)k) / (hi - lo);
        double W = 0, Sl = 0, Sll = 0, Sx = 0, Slx = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi((int)lrintf(is * (x[i] - lo)), 0, nmax);
            W += w[i];
            Sl += w[i] * l;
            Sll += w[i] * (double)l * l;
            Sx += w[i] * x[i];
            Slx += w[i] * (double)l * x[i];
        }
        double det = W * Sll - Sl * Sl, s, b;
        if (det <= 0)
            continue;
        s = (W * Slx - Sl * Sx) / det;
        b = (Sll * Sx - Sl * Slx) / det;
        if (b > 0) { /* the offset may only lower values: refit the scale alone */
            b = 0;
            s = Sll > 0 ? Slx / Sll : 0;
        }
        if (s <= 0)
            continue;
        double err = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi((int)lrint((x[i] - b) / s), 0, nmax);
            double e = s * l + b - x[i];
            err += w[i] * e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_s = (float)s;
            best_b = (float)b;
        }
    }
    *m_out = -best_b;
    return best_s;
}

/* Magnitude weights: errors on large weights cost more (they dominate the products). */
static void magnitude_weights(const float *x, int n, float *w)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float av = (float)sqrt(ss / n);
    for (int i = 0; i < n; i++)
        w[i] = av + fabsf(x[i]);
}

/* Q4_K (qh NULL, nmax 15) and Q5_K (nmax 31). */
static void quant_k45(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t scales[12], uint8_t *qh,
                      uint8_t qs[128])
{
    float s[8], m[8], w[32];
    float smax = 0, mmax = 0;
    for (int b = 0; b < 8; b++) {
        magnitude_weights(x + 32 * b, 32, w);
        s[b] = fit_affine(x + 32 * b, w, 32, nmax, &m[b]);
        smax = fmaxf(smax, s[b]);
        mmax = fmaxf(mmax, m[b]);
    }
    float d = smax / 63, dmin = mmax / 63;
    *d16 = tr_f32_to_f16(d);
    *dmin16 = tr_f32_to_f16(dmin);
    d = tr_f16_to_f32(*d16); /* the levels below use the scales as they are stored */
    dmin = tr_f16_to_f32(*dmin16);
    uint8_t sc[8], mq[8];
    for (int b = 0; b < 8; b++) {
        sc[b] = (uint8_t)(d > 0 ? clampi((int)lrintf(s[b] / d), 0, 63) : 0);
        mq[b] = (uint8_t)(dmin > 0 ? clampi((int)lrintf(m[b] / dmin), 0, 63) : 0);
    }
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)((mq[j] & 63) | (mq[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | (mq[j + 4] & 0xF) << 4);
    }
    if (qh)
        memset(qh, 0, 32);
    memset(qs, 0, 128);
    for (int b = 0; b < 8; b++) {
        float ds = d * (float)sc[b], dm = dmin * (float)mq[b];
        for (int l = 0; l < 32; l++) {
            int v = ds > 0 ? clampi((int)lrintf((x[32 * b + l] + dm) / ds), 0, nmax) : 0;
            qs[32 * (b / 2) + l] |= (uint8_t)((v & 0xF) << (4 * (b % 2)));
            if (qh)
                qh[l] |= (uint8_t)((v >> 4 & 1) << b);
        }
    }
}

/* Least weighted squared error scale for symmetric levels l in [-32, 31] of x[0..16). */
static float fit_symmetric6(const float *x)
{
    float ext = signed_extreme(x, 16);
    if (ext == 0)
        return 0;
    float best = ext / -32.0f;
    double best_err = INFINITY;
    for (int k = -9; k <= 9; k++) {
        float is = -(32.0f + 0.1f * (float)k) / ext;
        double Slx = 0, Sll = 0;
        for (int i = 0; i < 16; i++) {
            int l = clampi((int)lrintf(is * x[i]), -32, 31);
            double w = (double)x[i] * x[i];
            Slx += w * l * x[i];
            Sll += w * (double)l * l;
        }
        if (Sll <= 0)
            continue;
        double s = Slx / Sll, err = 0;
        for (int i = 0; i < 16; i++) {
            int l = clampi((int)lrint(x[i] / s), -32, 31);
            double e = s * l - x[i];
            err += (double)x[i] * x[i] * e * e;
        }
        if (err < best_err) {
            best_err = err;
            best = (float)s;
        }
    }
    return best;
}

static void quant_q6_K(const float *x, tr_block_q6_K *b)
{
    float s[16], amax = 0;
    for (int j = 0; j < 16; j++) {
        s[j] = fit_symmetric6(x + 16 * j);
        amax = fmaxf(amax, fabsf(s[j]));
    }
    float d = amax / 127;
    b->d = tr_f32_to_f16(d);
    d = tr_f16_to_f32(b->d);
    for (int j = 0; j < 16; j++)
        b->scales[j] = (int8_t)(d > 0 ? clampi((int)lrintf(s[j] / d), -127, 127) : 0);
    uint8_t q[256];
    for (int j = 0; j < 16; j++) {
        float ds = d * (float)b->scales[j];
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = (uint8_t)(ds != 0 ? clampi((int)lrintf(x[16 * j + i] / ds), -32, 31) + 32 : 32);
    }
    for (int half = 0; half < 2; half++) {
        uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
        const uint8_t *qq = q + 128 * half;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((qq[l] & 0xF) | (qq[l + 64] & 0xF) << 4);
            ql[l + 32] = (uint8_t)((qq[l + 32] & 0xF) | (qq[l + 96] & 0xF) << 4);
            qh[l] = (uint8_t)((qq[l] >> 4) | (qq[l + 32] >> 4) << 2 | (qq[l + 64] >> 4) << 4 | (qq[l + 96] >> 4) << 6);
        }
    }
}

size_t tr_quantize_row(tr_dtype t, const float *x, void *dst, int64_t n)
{
    const int64_t nb = n / tr_dtype_block(t);
    uint8_t q[32];
    for (int64_t i = 0; i < nb; i++) {
        switch (t) {
        case TR_Q8_0: quant_q8_0(x + 32 * i, (tr_block_q8_0 *)dst + i); break;
        case TR_Q4_0: {
            tr_block_q4_0 *b = (tr_block_q4_0 *)dst + i;
            quant_sym(x + 32 * i, 8, &b->d, q);
            pack_nibbles(q, b->qs, NULL);
            break;
        }
        case TR_Q5_0: {
            tr_block_q5_0 *b = (tr_block_q5_0 *)dst + i;
            quant_sym(x + 32 * i, 16, &b->d, q);
            pack_nibbles(q, b->qs, b->qh);
            break;
        }
        case TR_Q4_1: {
            tr_block_q4_1 *b = (tr_block_q4_1 *)dst + i;
            quant_affine(x + 32 * i, 15, &b->d, &b->m, q);
            pack_nibbles(q, b->qs, NULL);
            break;
        }
        case TR_Q5_1: {
            tr_block_q5_1 *b = (tr_block_q5_1 *)dst + i;
            quant_affine(x + 32 * i, 31, &b->d, &b->m, q);
            pack_nibbles(q, b->qs, b->qh);
            break;
        }
        case TR_Q4_K: {
            tr_block_q4_K *b = (tr_block_q4_K *)dst + i;
            quant_k45(x + 256 * i, 15, &b->d, &b->dmin, b->scales, NULL, b->qs);
            break;
        }
        case TR_Q5_K: {
            tr_block_q5_K *b = (tr_block_q5_K *)dst + i;
            quant_k45(x + 256 * i, 31, &b->d, &b->dmin, b->scales, b->qh, b->qs);
            break;
        }
        case TR_Q6_K: quant_q6_K(x + 256 * i, (tr_block_q6_K *)dst + i); break;
        default: return 0;
        }
    }
    return (size_t)nb * tr_dtype_size(t);
}

/* ---- ggml type ids ------------------------------------------------------------------------------ */

static const struct {
    tr_dtype dtype;
    uint32_t ggml;
} ggml_ids[] = {{TR_F32, 0},   {TR_F16, 1},   {TR_Q4_0, 2},  {TR_Q4_1, 3},  {TR_Q5_0, 6},  {TR_Q5_1, 7},
                {TR_Q8_0, 8},  {TR_Q4_K, 12}, {TR_Q5_K, 13}, {TR_Q6_K, 14}, {TR_BF16, 30}};

int tr_dtype_from_ggml(uint32_t ggml_type)
{
    for (size_t i = 0; i < sizeof ggml_ids / sizeof *ggml_ids; i++)
        if (ggml_ids[i].ggml == ggml_type)
            return (int)ggml_ids[i].dtype;
    return -1;
}

uint32_t tr_dtype_to_ggml(tr_dtype t)
{
    for (size_t i = 0; i < sizeof ggml_ids / sizeof *ggml_ids; i++)
        if (ggml_ids[i].dtype == t)
            return ggml_ids[i].ggml;
    return UINT32_MAX;
}
