/* weights.cl: the ops that read weights of any type: GET_ROWS and MATMUL, one kernel per weight type
 * stamped out by macros. Every type is read in units of 32 consecutive weights of a row (unit_<t>:
 * dq_unit_<t> of quant.cl for the quantized types; f32, f16 and bf16 element by element, zero past
 * the row's K, as float rows need not be a multiple of 32 long). rb: bytes per weight row.
 *
 *   get_rows_<t>  one work-item per (token, unit)
 *   matvec_<t>    decode, up to MATVEC_MAX_T tokens: one work-group per weight row; each work-item
 *                 takes every WG-th unit for all tokens, then one local-memory tree per token
 *   matmul_<t>    prefill: 32 x 32 output tiles (tokens x rows), each work-item 4 x 4 of them; per
 *                 step of 32 k, the tokens' and the rows' values go through local memory (32 work-
 *                 items decode one row unit each) */
#define MATVEC_MAX_T 8

#define FLOAT_UNIT(WT)                                                                                               \
    void unit_##WT(global const uchar *row, uint u, uint K, float *w)                                               \
    {                                                                                                               \
        for (uint j = 0; j < 32u; j++)                                                                              \
            w[j] = 32u * u + j < K ? ld_##WT(row, 32u * u + j) : 0.0f;                                               \
    }
DEFINE_FOR_EACH_FLOAT(FLOAT_UNIT)

#define QUANT_UNIT(WT, WTU)                                                                                            \
    void unit_##WT(global const uchar *row, uint u, uint K, float *w) { dq_unit_##WT(row, u, w); }
DEFINE_FOR_EACH_QUANT(QUANT_UNIT)

#define WEIGHT_KERNELS(WT)                                                                                           \
    kernel void get_rows_##WT(global const uchar *tab, ulong tab_off, global const uchar *idb, ulong id_off,          \
                             global uchar *db, ulong dof, uint D, uint T, uint V, ulong rb)                         \
    {                                                                                                               \
        uint units = (D + 31u) / 32u, g = get_global_id(0);                                                         \
        if (g >= units * T)                                                                                         \
            return;                                                                                                 \
        uint t = g / units, u = g % units;                                                                          \
        int id = CPTR(int, idb, id_off)[t];                                                                         \
        float w[32];                                                                                                \
        if (id >= 0 && (uint)id < V) /* an id outside the table gives a row of zeros (core/ir.h) */                 \
            unit_##WT(tab + tab_off + (ulong)id * rb, u, D, w);                                                     \
        else                                                                                                        \
            for (uint j = 0; j < 32u; j++)                                                                          \
                w[j] = 0.0f;                                                                                        \
        global float *d = PTR(float, db, dof) + (size_t)t * D;                                                      \
        for (uint j = 0; j < 32u && 32u * u + j < D; j++)                                                           \
            d[32u * u + j] = w[j];                                                                                  \
    }                                                                                                               \
                                                                                                                    \
    kernel void matvec_##WT(global const uchar *xb, ulong xo, global const uchar *wb, ulong wo, global uchar *db,     \
                           ulong dof, uint K, uint N, uint T, ulong rb)                                             \
    {                                                                                                               \
        local float red[MATVEC_MAX_T * WG];                                                                         \
        uint n = get_group_id(0), lid = get_local_id(0), units = (K + 31u) / 32u;                                   \
        global const uchar *row = wb + wo + (ulong)n * rb;                                                          \
        global const float *x = CPTR(float, xb, xo);                                                                \
        float acc[MATVEC_MAX_T];                                                                                    \
        for (uint t = 0; t < MATVEC_MAX_T; t++)                                                                     \
            acc[t] = 0.0f;                                                                                          \
        for (uint u = lid; u < units; u += WG) {                                                                    \
            float w[32];                                                                                            \
            unit_##WT(row, u, K, w);                                                                                 \
            uint kn = K - 32u * u < 32u ? K - 32u * u : 32u;                                                        \
            for (uint t = 0; t < T; t++) {                                                                          \
                global const float *xr = x + (size_t)t * K + 32u * u;                                               \
                float s = 0.0f;                                                                                     \
                for (uint j = 0; j < kn; j++)                                                                       \
                    s += w[j] * xr[j];                                                                              \
                acc[t] += s;                                                                                        \
            }                                                                                                       \
        }                                                                                                           \
        for (uint t = 0; t < MATVEC_MAX_T; t++)                                                                     \
            red[t * WG + lid] = acc[t];                                                                             \
        barrier(CLK_LOCAL_MEM_FENCE);                                                                               \
        for (uint s = WG / 2; s > 0; s >>= 1) {                                                                     \
            if (lid < s)                                                                                            \
                for (uint t = 0; t < T; t++)                                                                        \
                    red[t * WG + lid] += red[t * WG + lid + s];                                                     \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                           \
        }                                                                                                           \
        if (lid < T)                                                                                                \
            PTR(float, db, dof)[(size_t)lid * N + n] = red[lid * WG];                                               \
    }                                                                                                               \
                                                                                                                    \
    kernel void matmul_##WT(global const uchar *xb, ulong xo, global const uchar *wb, ulong wo, global uchar *db,     \
                           ulong dof, uint K, uint N, uint T, ulong rb)                                             \
    {                                                                                                               \
        local float xs[32][33], ws[32][33];                                                                         \
        uint tiles_n = (N + 31u) / 32u, g = get_group_id(0), lid = get_local_id(0);                                 \
        uint n0 = (g % tiles_n) * 32u, t0 = (g / tiles_n) * 32u, tx = lid % 8u, ty = lid / 8u;                      \
        global const float *x = CPTR(float, xb, xo);                                                                \
        float acc[4][4];                                                                                            \
        for (uint i = 0; i < 4u; i++)                                                                               \
            for (uint j = 0; j < 4u; j++)                                                                           \
                acc[i][j] = 0.0f;                                                                                   \
        for (uint k0 = 0; k0 < K; k0 += 32u) {                                                                      \
            for (uint e = lid; e < 32u * 32u; e += WG) {                                                            \
                uint r = e / 32u, kk = e % 32u;                                                                     \
                xs[r][kk] = t0 + r < T && k0 + kk < K ? x[(size_t)(t0 + r) * K + k0 + kk] : 0.0f;                   \
            }                                                                                                       \
            if (lid < 32u) {                                                                                        \
                float w[32];                                                                                        \
                if (n0 + lid < N)                                                                                   \
                    unit_##WT(wb + wo + (ulong)(n0 + lid) * rb, k0 / 32u, K, w);                                     \
                else                                                                                                \
                    for (uint j = 0; j < 32u; j++)                                                                  \
                        w[j] = 0.0f;                                                                                \
                for (uint j = 0; j < 32u; j++)                                                                      \
                    ws[lid][j] = w[j];                                                                              \
            }                                                                                                       \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                           \
            for (uint kk = 0; kk < 32u; kk++) {                                                                     \
                float a[4], b[4];                                                                                   \
                for (uint i = 0; i < 4u; i++) {                                                                     \
                    a[i] = xs[ty * 4u + i][kk];                                                                     \
                    b[i] = ws[tx * 4u + i][kk];                                                                     \
                }                                                                                                   \
                for (uint i = 0; i < 4u; i++)                                                                       \
                    for (uint j = 0; j < 4u; j++)                                                                   \
                        acc[i][j] += a[i] * b[j];                                                                   \
            }                                                                                                       \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                           \
        }                                                                                                           \
        for (uint i = 0; i < 4u; i++)                                                                               \
            for (uint j = 0; j < 4u; j++)                                                                           \
                if (t0 + ty * 4u + i < T && n0 + tx * 4u + j < N)                                                   \
                    PTR(float, db, dof)[(size_t)(t0 + ty * 4u + i) * N + n0 + tx * 4u + j] = acc[i][j];             \
    }
DEFINE_FOR_EACH_FLOAT(WEIGHT_KERNELS)
#define WEIGHT_KERNELS_Q(WT, WTU) WEIGHT_KERNELS(WT)
DEFINE_FOR_EACH_QUANT(WEIGHT_KERNELS_Q)
