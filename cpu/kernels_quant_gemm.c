/* kernels_quant_gemm.c: prefill with quantized weights, on AVX-512 VNNI (vpdpbusd).
 *
 * Decode's kernels (kernels_quant.c) put a row's levels in the vector lanes and meet one token at a
 * time; each sub-block's scale then has to be applied lane group by lane group. Here the lanes are
 * 16 tokens instead: one vpdpbusd multiplies 4 levels of a weight row (broadcast from memory) with
 * the same 4 levels of 16 tokens and adds them into each token's sum, so a sub-block's scale is one
 * broadcast for all 16 lanes, and every multiply does 64 useful products.
 *
 * vpdpbusd takes unsigned bytes times signed bytes. The signed side is the weights (the broadcast
 * memory operand): their levels (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63) and Q8_0's values fit int8. The
 * activations, rounded to [-127, 127] as the decode path rounds them, are stored plus 128; the
 * extra 128 * sum(w) of each sub-block is a property of the row alone, subtracted up front (init).
 *
 *   x panel  (per 16 tokens, per block of levels): levels + 128 as [level / 4][token][4] bytes, the 16
 *            tokens' scales, and the pairs of their sub-block sums the minima need (Q4_K, Q5_K: sums
 *            of 32; Q6_K: of 16, for its offset of 32);
 *   row      (per weight row, per block, unpacked once per task into the thread's scratch): int8
 *            levels, per sub-block its init and float scale d * sc, the pairs of minima, dmin.
 * A task is a run of rows; it unpacks them, then runs every group of 16 tokens against them, eight
 * rows at a time (the panel's loads shared by eight rows). */
#include <string.h>

#include "half.h"
#include "kernels.h"
#include "qdot.h"
#include "quant.h"

#if TR_QGEMM
#include <immintrin.h>

#define GROUP 16     /* tokens per panel: the lanes of a vector */
#define ROWS 8       /* rows per micro-kernel call */
#define TASK_BYTES ((size_t)256 << 10) /* unpacked rows per task: they stay in L2 while the panels pass */

/* ---- the layouts -------------------------------------------------------------------------------- */

typedef struct {
    uint8_t q[64][GROUP][4];         /* levels 4 j .. 4 j + 3 of each token, plus 128 */
    float d[GROUP];
    int16_t pairs[8][GROUP][2];      /* sub-block sums, two sub-blocks per 32-bit lane */
} kq_panel;                          /* 256 levels: Q4_K, Q5_K, Q6_K */

typedef struct {
    uint8_t q[8][GROUP][4];
    float d[GROUP];
} q8_panel;                          /* 32 levels: Q8_0 */

typedef struct {
    int8_t w[256];
    int32_t init[16];                /* -128 * sum of the sub-block's levels */
    float scale[16];                 /* d * sc */
    int32_t mins[8];                 /* pairs of int16 minima (Q6_K: of scales, for the offset) */
    float dmin;                      /* Q6_K: 32 d */
} kq_row;

typedef struct {
    int8_t w[32];
    int32_t init;
    float scale;
} q8_row;

/* Shape of a type here: levels per block and per sub-block, pairs of minima. */
typedef struct {
    int block, sub, pairs;
    size_t panel_bytes, row_bytes;
} gemm_shape;

static gemm_shape shape_of(tr_dtype t)
{
    switch (t) {
    case TR_Q8_0: return (gemm_shape){32, 32, 0, sizeof(q8_panel), sizeof(q8_row)};
    case TR_Q6_K: return (gemm_shape){256, 16, 8, sizeof(kq_panel), sizeof(kq_row)};
    default: return (gemm_shape){256, 32, 4, sizeof(kq_panel), sizeof(kq_row)}; /* Q4_K, Q5_K */
    }
}

int tr_qgemm_supports(tr_dtype t)
{
    return t == TR_Q4_K || t == TR_Q5_K || t == TR_Q6_K || t == TR_Q8_0;
}

/* ---- packing the activations -------------------------------------------------------------------- */

/* Token c (of the group) of one block into a panel: rounded as decode rounds (tr_q8_round). */
static void pack_token(tr_dtype t, const gemm_shape *sh, const float *x, int c, void *panel)
{
    int8_t q[256];
    float d = tr_q8_round(x, sh->block, q);
    uint8_t(*pq)[GROUP][4] = t == TR_Q8_0 ? ((q8_panel *)panel)->q : ((kq_panel *)panel)->q;
    for (int j = 0; j < sh->block / 4; j++)
        for (int b = 0; b < 4; b++)
            pq[j][c][b] = (uint8_t)(q[4 * j + b] + 128);
    if (t == TR_Q8_0) {
        ((q8_panel *)panel)->d[c] = d;
        return;
    }
    kq_panel *p = panel;
    p->d[c] = d;
    int sums[16];
    for (int s = 0; s < 256 / sh->sub; s++) {
        sums[s] = 0;
        for (int l = 0; l < sh->sub; l++)
            sums[s] += q[sh->sub * s + l];
    }
    for (int k = 0; k < sh->pairs; k++) {
        p->pairs[k][c][0] = (int16_t)sums[2 * k];
        p->pairs[k][c][1] = (int16_t)sums[2 * k + 1];
    }
}

/* ---- unpacking a weight row --------------------------------------------------------------------- */

/* A Q4_K / Q5_K row block's scales, minima and d, dmin (the file's layout or the interleaved one). */
static void k45_scales(kq_row *r, float d, float dmin, const uint8_t sc[8], const uint8_t m[8])
{
    for (int s = 0; s < 8; s++)
        r->scale[s] = d * (float)sc[s];
    for (int k = 0; k < 4; k++)
        r->mins[k] = (int32_t)m[2 * k] | (int32_t)m[2 * k + 1] << 16;
    r->dmin = dmin;
}

/* Each sub-block's init: -128 times the sum of its levels (the activations' +128, vpdpbusd's
 * unsigned side). */
static void set_inits(kq_row *r, int nsub)
{
    int sub = 256 / nsub;
    for (int s = 0; s < nsub; s++) {
        int sum = 0;
        for (int l = 0; l < sub; l++)
            sum += r->w[sub * s + l];
        r->init[s] = -128 * sum;
    }
}

static void unpack_block(tr_dtype t, const uint8_t *blk, void *out)
{
    if (t == TR_Q8_0) {
        const tr_block_q8_0 *b = (const tr_block_q8_0 *)blk;
        q8_row *r = out;
        int sum = 0;
        for (int l = 0; l < 32; l++)
            sum += r->w[l] = b->qs[l];
        r->init = -128 * sum;
        r->scale = tr_f16_to_f32(b->d);
        return;
    }
    kq_row *r = out;
    int nsub;
    if (t == TR_Q6_K) {
        const tr_block_q6_K *b = (const tr_block_q6_K *)blk;
        float d = tr_f16_to_f32(b->d);
        for (int half = 0; half < 2; half++) /* quant.h's layout of Q6_K */
            for (int l = 0; l < 32; l++) {
                const uint8_t *ql = b->ql + 64 * half, h = b->qh[32 * half + l];
                int8_t *w = r->w + 128 * half;
                w[l] = (int8_t)((ql[l] & 0xF) | (h & 3) << 4);
                w[l + 32] = (int8_t)((ql[l + 32] & 0xF) | ((h >> 2) & 3) << 4);
                w[l + 64] = (int8_t)((ql[l] >> 4) | ((h >> 4) & 3) << 4);
                w[l + 96] = (int8_t)((ql[l + 32] >> 4) | ((h >> 6) & 3) << 4);
            }
        nsub = 16;
        for (int s = 0; s < 16; s++)
            r->scale[s] = d * (float)b->scales[s];
        for (int k = 0; k < 8; k++) /* w = d sc (u - 32): the offset as a "minimum" sc with dmin 32 d */
            r->mins[k] = (int32_t)(uint16_t)b->scales[2 * k] | (int32_t)((uint32_t)(uint16_t)b->scales[2 * k + 1] << 16);
        r->dmin = 32.0f * d;
    } else { /* Q4_K, Q5_K */
        const tr_block_q4_K *b4 = (const tr_block_q4_K *)blk; /* d, dmin, scales: same offsets in Q5_K */
        int five = t == TR_Q5_K;
        const uint8_t *qs = five ? ((const tr_block_q5_K *)blk)->qs : b4->qs;
        const uint8_t *qh = five ? ((const tr_block_q5_K *)blk)->qh : NULL;
        uint8_t sc[8], m[8];
        k_scales_unpack(b4->scales, sc, m);
        float d = tr_f16_to_f32(b4->d);
        for (int s = 0; s < 8; s++)
            for (int l = 0; l < 32; l++) {
                const uint8_t byte = qs[32 * (s / 2) + l];
                int u = s % 2 ? byte >> 4 : byte & 0xF;
                if (qh)
                    u |= ((qh[l] >> s) & 1) << 4;
                r->w[32 * s + l] = (int8_t)u;
            }
        nsub = 8;
        k45_scales(r, d, tr_f16_to_f32(b4->dmin), sc, m);
    }
    set_inits(r, nsub);
}

/* Row r of 16 interleaved Q4_K rows' super-block (cpu/repack.c's layout, once decode made it). */
static void unpack_x16(const q4_K_x16 *b, int r, kq_row *o)
{
    for (int level = 0; level < 256; level++) {
        int jj = level / 8, k = level % 8, byte = b->qs[jj][r][k % 4];
        o->w[level] = (int8_t)(k >= 4 ? byte >> 4 : byte & 0xF);
    }
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; s++) {
        sc[s] = b->sc[s][r];
        m[s] = b->m[s][r];
    }
    k45_scales(o, tr_f16_to_f32(b->d[r]), tr_f16_to_f32(b->dmin[r]), sc, m);
    set_inits(o, 8);
}

/* ---- the micro-kernels: R rows x 16 tokens ------------------------------------------------------ */

static inline __m512i bcast32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* rows[r] + i: row r's block i (unpacked); out[r][c]: row r, token c. sub and pairs are constants. */
static inline __attribute__((always_inline)) void kq_kernel(const kq_row *const *rows, const kq_panel *x,
                                                            int64_t nblocks, const int R, const int sub,
                                                            const int pairs, float out[][GROUP])
{
    __m512 acc[ROWS];
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nblocks; i++) {
        const kq_panel *xp = x + i;
        __m512 d = _mm512_loadu_ps(xp->d);
        for (int s = 0; s < 256 / sub; s++) {
            __m512i dot[ROWS];
            for (int r = 0; r < R; r++)
                dot[r] = _mm512_set1_epi32(rows[r][i].init[s]);
            for (int j = s * sub / 4; j < (s + 1) * sub / 4; j++) {
                __m512i xq = _mm512_loadu_si512(xp->q[j]);
                for (int r = 0; r < R; r++)
                    dot[r] = _mm512_dpbusd_epi32(dot[r], xq, bcast32(rows[r][i].w + 4 * j));
            }
            for (int r = 0; r < R; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(d, _mm512_set1_ps(rows[r][i].scale[s])), acc[r]);
        }
        for (int r = 0; r < R; r++) {
            __m512i m = _mm512_setzero_si512();
            for (int k = 0; k < pairs; k++)
                m = _mm512_dpwssd_epi32(m, _mm512_set1_epi32(rows[r][i].mins[k]), _mm512_loadu_si512(xp->pairs[k]));
            acc[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(d, _mm512_set1_ps(rows[r][i].dmin)), acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        _mm512_storeu_ps(out[r], acc[r]);
}

static inline __attribute__((always_inline)) void q8_kernel(const q8_row *const *rows, const q8_panel *x,
                                                            int64_t nblocks, const int R, float out[][GROUP])
{
    __m512 acc[ROWS];
    for (int r = 0; r < R; r++)
        acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nblocks; i++) {
        const q8_panel *xp = x + i;
        __m512i dot[ROWS];
        for (int r = 0; r < R; r++)
            dot[r] = _mm512_set1_epi32(rows[r][i].init);
        for (int j = 0; j < 8; j++) {
            __m512i xq = _mm512_loadu_si512(xp->q[j]);
            for (int r = 0; r < R; r++)
                dot[r] = _mm512_dpbusd_epi32(dot[r], xq, bcast32(rows[r][i].w + 4 * j));
        }
        __m512 d = _mm512_loadu_ps(xp->d);
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r]), _mm512_mul_ps(d, _mm512_set1_ps(rows[r][i].scale)), acc[r]);
    }
    for (int r = 0; r < R; r++)
        _mm512_storeu_ps(out[r], acc[r]);
}

/* One call for R (1..8) rows: a specialisation per count keeps the accumulators in registers. */
static void run_kernel(tr_dtype t, const void *const *rows, const void *x, int64_t nblocks, int R, float out[][GROUP])
{
#define KQ4(n) kq_kernel((const kq_row *const *)rows, x, nblocks, n, 32, 4, out)
#define KQ6(n) kq_kernel((const kq_row *const *)rows, x, nblocks, n, 16, 8, out)
#define Q8(n) q8_kernel((const q8_row *const *)rows, x, nblocks, n, out)
#define CASES(K) \
    switch (R) { \
    case 1: K(1); break; case 2: K(2); break; case 3: K(3); break; case 4: K(4); break; \
    case 5: K(5); break; case 6: K(6); break; case 7: K(7); break; default: K(8); break; \
    }
    if (t == TR_Q8_0)
        CASES(Q8)
    else if (t == TR_Q6_K)
        CASES(KQ6)
    else
        CASES(KQ4)
}

/* ---- the threaded product ----------------------------------------------------------------------- */

typedef struct {
    tr_cpu_state *st;
    tr_tensor *dst;
    const tr_tensor *x, *w;
    gemm_shape sh;
    char *panels;                    /* [group][block] */
    const q4_K_x16 *x16;             /* Q4_K interleaved for decode (cpu/repack.c), or NULL: the file's */
    int64_t K, N, T, nblocks, groups, rows; /* rows: per task */
} gemm_job;

static void pack_task(void *arg, int g, int thread)
{
    (void)thread;
    gemm_job *j = arg;
    char *panel = j->panels + (size_t)g * (size_t)j->nblocks * j->sh.panel_bytes;
    memset(panel, 0, (size_t)j->nblocks * j->sh.panel_bytes); /* tokens past T: scale 0 */
    for (int c = 0; c < GROUP && g * GROUP + c < j->T; c++) {
        const float *x = tr_at(j->x, 0, g * GROUP + c, 0);
        for (int64_t i = 0; i < j->nblocks; i++)
            pack_token(j->w->dtype, &j->sh, x + i * j->sh.block, c, panel + (size_t)i * j->sh.panel_bytes);
    }
}

static void gemm_task(void *arg, int task, int thread)
{
    gemm_job *j = arg;
    const tr_dtype t = j->w->dtype;
    const size_t wblock = tr_dtype_size(t), row_stride = (size_t)j->nblocks * j->sh.row_bytes;
    int64_t n0 = (int64_t)task * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    char *unpacked = (char *)(j->st->scratch + (size_t)thread * j->st->scratch_per_thread);
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t *row = tr_at(j->w, 0, n, 0);
        char *out = unpacked + (size_t)(n - n0) * row_stride;
        for (int64_t i = 0; i < j->nblocks; i++) {
            if (j->x16)
                unpack_x16(j->x16 + (size_t)(n / 16) * (size_t)j->nblocks + (size_t)i, (int)(n % 16),
                           (kq_row *)(out + (size_t)i * j->sh.row_bytes));
            else
                unpack_block(t, row + (size_t)i * wblock, out + (size_t)i * j->sh.row_bytes);
        }
    }
    float out[ROWS][GROUP];
    for (int64_t g = 0; g < j->groups; g++) {
        const char *panel = j->panels + (size_t)g * (size_t)j->nblocks * j->sh.panel_bytes;
        int ntok = j->T - g * GROUP < GROUP ? (int)(j->T - g * GROUP) : GROUP;
        for (int64_t r0 = n0; r0 < n1; r0 += ROWS) {
            int R = n1 - r0 < ROWS ? (int)(n1 - r0) : ROWS;
            const void *rows[ROWS];
            for (int r = 0; r < R; r++)
                rows[r] = unpacked + (size_t)(r0 - n0 + r) * row_stride;
            run_kernel(t, rows, panel, j->nblocks, R, out);
            for (int c = 0; c < ntok; c++) {
                float *o = tr_at(j->dst, 0, g * GROUP + c, 0);
                for (int r = 0; r < R; r++)
                    o[r0 + r] = out[r][c];
            }
        }
    }
}

/* Rows per task: TASK_BYTES of unpacked rows, a multiple of ROWS, and every thread a few tasks. */
static int64_t task_rows(const gemm_shape *sh, int64_t K, int64_t N, int n_threads)
{
    int64_t per_row = K / sh->block * (int64_t)sh->row_bytes;
    int64_t rows = (int64_t)TASK_BYTES / per_row, most = N / (2 * (int64_t)n_threads);
    rows = rows < most ? rows : most;
    rows = rows / ROWS * ROWS;
    return rows < ROWS ? ROWS : rows;
}

size_t tr_qgemm_space_floats(const tr_tensor *dst)
{
    const tr_tensor *x = dst->src[0];
    gemm_shape sh = shape_of(dst->src[1]->dtype);
    size_t groups = (size_t)((x->ne[1] + GROUP - 1) / GROUP);
    return (groups * (size_t)(x->ne[0] / sh.block) * sh.panel_bytes + sizeof(float) - 1) / sizeof(float);
}

size_t tr_qgemm_thread_floats(const tr_tensor *dst, int n_threads)
{
    const tr_tensor *w = dst->src[1];
    gemm_shape sh = shape_of(w->dtype);
    int64_t rows = task_rows(&sh, w->ne[0], w->ne[1], n_threads);
    return ((size_t)rows * (size_t)(w->ne[0] / sh.block) * sh.row_bytes + sizeof(float) - 1) / sizeof(float);
}

void tr_qgemm(tr_cpu_state *st, tr_tensor *dst, float *space)
{
    const tr_tensor *x = dst->src[0], *w = dst->src[1];
    gemm_job j = {st, dst, x, w, shape_of(w->dtype), (char *)space, tr_repacked(st, w), x->ne[0], w->ne[1], x->ne[1], 0, 0, 0};
    j.nblocks = j.K / j.sh.block;
    j.groups = (j.T + GROUP - 1) / GROUP;
    j.rows = task_rows(&j.sh, j.K, j.N, st->n_threads);
    tr_pool_run(st->pool, (int)j.groups, pack_task, &j);
    tr_pool_run(st->pool, (int)((j.N + j.rows - 1) / j.rows), gemm_task, &j);
}
#endif
