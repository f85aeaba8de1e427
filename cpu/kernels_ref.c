/* kernels_ref.c: the reference kernel of every op, the definition the other backends are held to.
 * Plain loops, one thread; long sums accumulate in double. Semantics: core/ir.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "kernels.h"
#include "quant.h"
#include "transition.h"

void tr_row_to_f32(const void *src, tr_dtype dt, float *dst, int64_t n)
{
    switch (dt) {
    case TR_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case TR_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = tr_f16_to_f32(((const uint16_t *)src)[i]);
        break;
    case TR_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = tr_bf16_to_f32(((const uint16_t *)src)[i]);
        break;
    case TR_I32:
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)((const int32_t *)src)[i];
        break;
    default:
        tr_dequantize_row(dt, src, dst, n);
    }
}

static float elem_f32(const tr_tensor *t, int64_t i0, int64_t i1)
{
    float v;
    tr_row_to_f32(tr_at(t, i0, i1, 0), t->dtype, &v, 1);
    return v;
}

void get_rows_ref(tr_tensor *dst)
{
    const tr_tensor *table = dst->src[0], *ids = dst->src[1];
    int64_t D = table->ne[0], V = table->ne[1];
    for (int64_t t = 0; t < dst->ne[1]; t++) {
        int32_t id = *(int32_t *)tr_at(ids, t, 0, 0);
        float *out = tr_at(dst, 0, t, 0);
        if (id < 0 || id >= V) { /* the API checks ids; never read outside the table */
            memset(out, 0, (size_t)D * sizeof(float));
            continue;
        }
        tr_row_to_f32(tr_at(table, 0, id, 0), table->dtype, out, D);
    }
}

void rms_norm_f32_ref(tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    int64_t D = x->ne[0];
    for (int64_t r = 0; r < x->ne[1] * x->ne[2]; r++) {
        const float *xr = tr_at(x, 0, r, 0);
        float *out = tr_at(dst, 0, r, 0);
        double ss = 0;
        for (int64_t i = 0; i < D; i++)
            ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / (double)D + dst->p.eps));
        for (int64_t i = 0; i < D; i++)
            out[i] = xr[i] * inv * elem_f32(w, i, 0);
    }
}

void add_f32_ref(tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *y = dst->src[1];
    for (int64_t r = 0; r < x->ne[1] * x->ne[2]; r++)
        for (int64_t i = 0; i < x->ne[0]; i++)
            ((float *)tr_at(dst, i, r, 0))[0] = *(float *)tr_at(x, i, r, 0) + *(float *)tr_at(y, i, r, 0);
}

void mul_f32_ref(tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *y = dst->src[1];
    int broadcast = tr_nelements(y) == y->ne[0] && x->ne[1] * x->ne[2] > 1;
    for (int64_t r = 0; r < x->ne[1] * x->ne[2]; r++)
        for (int64_t i = 0; i < x->ne[0]; i++)
            *(float *)tr_at(dst, i, r, 0) = *(float *)tr_at(x, i, r, 0) * *(float *)tr_at(y, i, broadcast ? 0 : r, 0);
}

void matmul_ref(tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    int64_t K = x->ne[0], N = w->ne[0] == K ? w->ne[1] : 0, T = x->ne[1];
    float *row = malloc((size_t)K * sizeof *row);
    if (!row)
        return;
    for (int64_t n = 0; n < N; n++) {
        tr_row_to_f32(tr_at(w, 0, n, 0), w->dtype, row, K);
        for (int64_t t = 0; t < T; t++) {
            const float *xt = tr_at(x, 0, t, 0);
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)xt[k] * row[k];
            *(float *)tr_at(dst, n, t, 0) = (float)acc;
        }
    }
    free(row);
}

void rope_f32_ref(tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0], *pos = dst->src[1];
    const float *factors = dst->src[2] ? dst->src[2]->data : NULL;
    int64_t hd = x->ne[0], half = hd / 2;
    for (int64_t t = 0; t < x->ne[2]; t++) {
        double p = *(int32_t *)tr_at(pos, t, 0, 0);
        for (int64_t h = 0; h < x->ne[1]; h++) {
            const float *in = tr_at(x, 0, h, t);
            float *out = tr_at(dst, 0, h, t);
            for (int64_t i = 0; i < half; i++) {
                double angle = p * (double)dst->p.rope.freq_scale * pow((double)dst->p.rope.theta, -2.0 * (double)i / (double)hd) /
                               (factors ? (double)factors[i] : 1.0);
                double c = cos(angle), s = sin(angle);
                int64_t ia = dst->p.rope.layout == TR_ROPE_ADJACENT ? 2 * i : i;
                int64_t ib = dst->p.rope.layout == TR_ROPE_ADJACENT ? 2 * i + 1 : i + half;
                double a = in[ia], b = in[ib];
                out[ia] = (float)(a * c - b * s);
                out[ib] = (float)(a * s + b * c);
            }
        }
    }
}

/* The GLU activations of core/ir.h, in double. */
double tr_activation_ref(tr_activation act, double g)
{
    switch (act) {
    case TR_ACT_GELU: return 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
    case TR_ACT_GELU_TANH: return 0.5 * g * (1.0 + tanh(0.79788456080286535588 /* sqrt(2 / pi) */ * (g + 0.044715 * g * g * g)));
    default: return g / (1.0 + exp(-g));
    }
}

void glu_f32_ref(tr_tensor *dst)
{
    const tr_tensor *gate = dst->src[0], *up = dst->src[1];
    for (int64_t r = 0; r < gate->ne[1]; r++)
        for (int64_t i = 0; i < gate->ne[0]; i++) {
            double g = *(float *)tr_at(gate, i, r, 0);
            *(float *)tr_at(dst, i, r, 0) = (float)(tr_activation_ref(dst->p.act, g) * *(float *)tr_at(up, i, r, 0));
        }
}

void kv_write_f32_ref(tr_tensor *dst)
{
    const tr_tensor *src = dst->src[0], *cache = dst->src[1];
    for (int64_t t = 0; t < src->ne[1]; t++)
        memcpy(tr_at(cache, 0, dst->p.pos0 + t, 0), tr_at(src, 0, t, 0), (size_t)src->ne[0] * sizeof(float));
}

void copy_f32_ref(tr_tensor *dst)
{
    const tr_tensor *src = dst->src[0];
    memcpy(dst->data, src->data, tr_nbytes(src)); /* both contiguous (tr_copy checks the source) */
}

void concat_f32_ref(tr_tensor *dst)
{
    char *o = dst->data; /* every source contiguous and as wide as dst (tr_concat checks) */
    for (int i = 0; i < TR_MAX_SRC && dst->src[i]; i++) {
        memcpy(o, dst->src[i]->data, tr_nbytes(dst->src[i]));
        o += tr_nbytes(dst->src[i]);
    }
}

/* Attention Transition on one materialised probability row, design §3 step by step. p[0..end)
 * holds the causal softmax row of query row r (zeros past r); start/iv describe r's block. */
static void transition_row_ref(double *p, int64_t start, const tr_attn_params *ap)
{
    int64_t iv = ap->transition.iv, end = start + iv;
    double t = (double)ap->transition.alpha / (double)end; /* 1. threshold */
    for (int64_t c = 0; c < end; c++)                      /* 2. elimination */
        if (p[c] < t)
            p[c] = 0;
    p[0] /= 2; /* 3. */
    double kept = 0;
    for (int64_t c = 0; c < end; c++)
        kept += p[c];
    double removed = 1 - kept; /* 4. */
    if (ap->transition.strategy == TR_TRANSITION_MULTI) {
        /* kept weights scaled so that the row sums to one again */
        double scale = kept > 0 ? 1 + removed / kept : 0;
        for (int64_t c = 0; c < end; c++)
            p[c] *= scale;
        return;
    }
    /* 5. marks over P = [start - 2 iv, end - iv), taken before any weight changes */
    int64_t p0 = start - 2 * iv, p1 = end - iv;
    double m_sum = 0, *mark = malloc((size_t)(p1 - p0) * sizeof *mark);
    if (!mark)
        return;
    for (int64_t c = p0; c < p1; c++)
        m_sum += mark[c - p0] = p[c] >= t ? 1.0 : 0.01;
    double share = (double)ap->transition.beta * removed / m_sum;
    for (int64_t c = start - iv; c < end - iv; c++) /* 6. the block just before */
        p[c] += 7 * share * mark[c - p0];
    for (int64_t c = start - 2 * iv; c < end - 2 * iv; c++) /* and the one before that */
        p[c] += 3 * share * mark[c - p0];
    free(mark);
}

/* The causal softmax row of query head h at position pos over keys 0..pos into p. */
static void softmax_row_ref(const tr_tensor *q, const tr_tensor *k, const tr_attn_params *ap, int64_t h, int64_t t,
                            int64_t kvh, int64_t n_keys, double *p)
{
    int64_t hd = q->ne[0];
    const float *qv = tr_at(q, 0, h, t);
    double mx = -INFINITY, sum = 0;
    for (int64_t c = 0; c < n_keys; c++) {
        const float *kv = (const float *)tr_at(k, kvh * hd, c, 0);
        double s = 0;
        for (int64_t i = 0; i < hd; i++)
            s += (double)qv[i] * kv[i];
        p[c] = s * ap->scale;
        if (p[c] > mx)
            mx = p[c];
    }
    for (int64_t c = 0; c < n_keys; c++)
        sum += p[c] = exp(p[c] - mx);
    for (int64_t c = 0; c < n_keys; c++)
        p[c] /= sum;
}

/* Differential attention (design §4, core/ir.h DIFF), step by step: both heads' rows, the pair's
 * 2 hd-wide value [v_a, v_b], the subtraction, the weightless RMS norm and the scale. */
static void attention_diff_ref(tr_tensor *dst)
{
    const tr_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    const tr_attn_params *ap = &dst->p.attn;
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[0] / hd, rep = H / Hkv;
    double *pa = malloc((size_t)ap->n_kv * sizeof *pa), *pb = malloc((size_t)ap->n_kv * sizeof *pb);
    double *y = malloc((size_t)(2 * hd) * sizeof *y);
    for (int64_t t = 0; pa && pb && y && t < T; t++) {
        int64_t n_keys = ap->n_past + t + 1;
        for (int64_t j = 0; j < H / 2; j++) {
            int64_t a = j / rep, b = (j + H / 2) / rep;
            softmax_row_ref(q, k, ap, j, t, a, n_keys, pa);
            softmax_row_ref(q, k, ap, j + H / 2, t, b, n_keys, pb);
            double ss = 0;
            for (int64_t i = 0; i < 2 * hd; i++) {
                int64_t col = i < hd ? a * hd + i : b * hd + (i - hd);
                double acc = 0;
                for (int64_t c = 0; c < n_keys; c++)
                    acc += (pa[c] - (double)ap->diff.lambda * pb[c]) * *(const float *)tr_at(v, col, c, 0);
                y[i] = acc;
                ss += acc * acc;
            }
            double norm = (double)ap->diff.out_scale / sqrt(ss / (double)(2 * hd) + (double)ap->diff.eps);
            float *out = tr_at(dst, 2 * hd * j, t, 0);
            for (int64_t i = 0; i < 2 * hd; i++)
                out[i] = (float)(y[i] * norm);
        }
    }
    free(pa);
    free(pb);
    free(y);
}

/* Attention: for each head and query row, the probability row is materialised in full and then
 * used, the literal reading of the definition (and of design §3 for transition rows). */
void attention_f32_ref(tr_tensor *dst)
{
    if (dst->p.attn.variant == TR_ATTN_DIFF) {
        attention_diff_ref(dst);
        return;
    }
    const tr_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    const tr_attn_params *ap = &dst->p.attn;
    int64_t hd = q->ne[0], H = q->ne[1], T = q->ne[2], Hkv = k->ne[0] / hd;
    /* a transition block may end past the last key of this chunk: its row is zero there */
    int64_t row_len = ap->n_kv;
    for (int j = 0; ap->variant == TR_ATTN_TRANSITION && j < ap->transition.n_blocks; j++)
        if (ap->transition.start[j] + ap->transition.iv > row_len)
            row_len = ap->transition.start[j] + ap->transition.iv;
    double *p = malloc((size_t)row_len * sizeof *p);
    if (!p)
        return;
    for (int64_t t = 0; t < T; t++) {
        int64_t pos = ap->n_past + t, n_keys = pos + 1;
        int32_t block = tr_transition_row_block(ap, pos);
        for (int64_t h = 0; h < H; h++) {
            int64_t kvh = h / (H / Hkv);
            softmax_row_ref(q, k, ap, h, t, kvh, n_keys, p);
            if (block >= 0) {
                /* the block's rows see keys up to end - 1 > pos only as zeros */
                for (int64_t c = n_keys; c < block + ap->transition.iv; c++)
                    p[c] = 0;
                transition_row_ref(p, block, ap);
            }
            float *out = tr_at(dst, h * hd, t, 0);
            for (int64_t i = 0; i < hd; i++) {
                double acc = 0;
                for (int64_t c = 0; c < n_keys; c++)
                    acc += p[c] * *(const float *)tr_at(v, kvh * hd + i, c, 0);
                out[i] = (float)acc;
            }
        }
    }
    free(p);
}
