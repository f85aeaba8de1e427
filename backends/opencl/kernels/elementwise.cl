/* elementwise.cl: ADD, MUL (y one row broadcast over x's rows when bcast), GLU, the row copies of
 * KV_WRITE, COPY and CONCAT, ROPE from a (cos, sin) table the host made, RMS_NORM (one work-group
 * per row), and the fault kernel of TRANSIT_FAULT. One work-item per element unless said. */

kernel void add_f32(global const uchar *xb, ulong xo, global const uchar *yb, ulong yo, global uchar *db, ulong dof,
                    uint n, uint ne0, uint bcast)
{
    uint i = get_global_id(0);
    if (i < n)
        PTR(float, db, dof)[i] = CPTR(float, xb, xo)[i] + CPTR(float, yb, yo)[bcast ? i % ne0 : i];
}

kernel void mul_f32(global const uchar *xb, ulong xo, global const uchar *yb, ulong yo, global uchar *db, ulong dof,
                    uint n, uint ne0, uint bcast)
{
    uint i = get_global_id(0);
    if (i < n)
        PTR(float, db, dof)[i] = CPTR(float, xb, xo)[i] * CPTR(float, yb, yo)[bcast ? i % ne0 : i];
}

/* act: 0 silu, 1 gelu (erf), 2 gelu with the tanh approximation (core/model_file.h tr_activation) */
kernel void glu_f32(global const uchar *gb, ulong go, global const uchar *ub, ulong uo, global uchar *db, ulong dof,
                    uint n, uint act)
{
    uint i = get_global_id(0);
    if (i >= n)
        return;
    float g = CPTR(float, gb, go)[i], a;
    if (act == 1u)
        a = 0.5f * g * (1.0f + erf(g * 0.70710678118654752f));
    else if (act == 2u)
        a = 0.5f * g * (1.0f + tanh(0.79788456080286535588f * (g + 0.044715f * g * g * g)));
    else
        a = g / (1.0f + exp(-g));
    PTR(float, db, dof)[i] = a * CPTR(float, ub, uo)[i];
}

kernel void copy_f32(global const uchar *sb, ulong so, global uchar *db, ulong dof, uint n)
{
    uint i = get_global_id(0);
    if (i < n)
        PTR(float, db, dof)[i] = CPTR(float, sb, so)[i];
}

/* x {hd, H, T}; tab: (cos, sin) of pair i of token t at float 2 (t * hd/2 + i). Pairs are
 * (2i, 2i + 1) in the adjacent layout, (i, i + hd/2) in the half layout. */
kernel void rope_f32(global const uchar *xb, ulong xo, global const uchar *tb, ulong to, global uchar *db, ulong dof,
                     uint hd, uint H, uint T, uint half_layout)
{
    uint half_hd = hd / 2u, j = get_global_id(0);
    if (j >= half_hd * H * T)
        return;
    uint i = j % half_hd, row = j / half_hd, t = row / H;
    uint ia = half_layout ? i : 2u * i, ib = half_layout ? i + half_hd : 2u * i + 1u;
    global const float *x = CPTR(float, xb, xo) + row * hd;
    global float *d = PTR(float, db, dof) + row * hd;
    float2 cs = vload2(t * half_hd + i, CPTR(float, tb, to));
    float a = x[ia], b = x[ib];
    d[ia] = a * cs.x - b * cs.y;
    d[ib] = a * cs.y + b * cs.x;
}

/* One work-group per row of D: out = x / sqrt(mean(x^2) + eps) * w, w of the weight type. */
#define RMS_NORM(WT)                                                                                                 \
    kernel void rms_norm_##WT(global const uchar *xb, ulong xo, global const uchar *wb, ulong wo, global uchar *db,  \
                             ulong dof, uint D, float eps)                                                          \
    {                                                                                                               \
        local float red[WG];                                                                                        \
        uint r = get_group_id(0), lid = get_local_id(0);                                                            \
        global const float *x = CPTR(float, xb, xo) + (size_t)r * D;                                                \
        global float *d = PTR(float, db, dof) + (size_t)r * D;                                                      \
        float ss = 0.0f;                                                                                            \
        for (uint i = lid; i < D; i += WG)                                                                          \
            ss += x[i] * x[i];                                                                                      \
        float inv = 1.0f / sqrt(wg_sum(ss, red) / (float)D + eps);                                                  \
        for (uint i = lid; i < D; i += WG)                                                                          \
            d[i] = x[i] * inv * ld_##WT(wb + wo, i);                                                                 \
    }
DEFINE_FOR_EACH_FLOAT(RMS_NORM)

/* TRANSIT_FAULT: the op's first output element off by one, so that parity checks must notice */
kernel void fault_f32(global uchar *db, ulong dof)
{
    if (get_global_id(0) == 0)
        PTR(float, db, dof)[0] += 1.0f;
}
