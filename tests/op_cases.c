/* op_cases.c: the per-op case table (op_cases.h), each case's graph, and the loop that runs the
 * table on one backend. */
#include "op_cases.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))
#define HOST(i) (1u << (i)) /* op_case.host: leaf i stays in host memory */

/* ---- the table ---------------------------------------------------------------------------------- */

typedef struct list {
    op_case *v;
    int n, cap;
} list;

static void push(list *l, op_case c)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        if (!l->v)
            abort();
    }
    l->v[l->n++] = c;
}

static const tr_dtype weight_types[] = {TR_F32, TR_F16, TR_BF16};

/* Row-wise ops over widths below, at and above a workgroup or warp, a real model's 4096 and past it.
 * Host leaves vary with the width so that every op reads host and device operands somewhere. */
static void add_row_ops(list *l)
{
    const int64_t Ds[] = {1, 8, 67, 300, 4096, 4100}, T = 5;
    const op_kind binary[] = {OP_ADD, OP_MUL, OP_MUL_ROW, OP_GLU};
    for (int i = 0; i < COUNT(Ds); i++) {
        for (int k = 0; k < COUNT(binary); k++)
            for (int act = 0; act < (binary[k] == OP_GLU ? TR_ACT_COUNT : 1); act++)
                push(l, (op_case){.kind = binary[k], .bound = OP_BOUND_ELEMENTWISE,
                                  .host = (i + act) % 3 == 1 ? HOST(0) : (i + act) % 3 == 2 ? HOST(1) : 0,
                                  .rows = {Ds[i], T, TR_F32, act}});
        for (int d = 0; d < COUNT(weight_types); d++) {
            push(l, (op_case){.kind = OP_RMS_NORM, .bound = OP_BOUND_ELEMENTWISE, .host = d == 1 ? HOST(0) : 0,
                              .rows = {Ds[i], T, weight_types[d], 0}});
            /* 9 ids, one of them outside the table: a zero row (ir.h); ids are usually an input */
            push(l, (op_case){.kind = OP_GET_ROWS, .bound = OP_BOUND_ELEMENTWISE, .host = d == 1 ? 0 : HOST(1),
                              .rows = {Ds[i], 9, weight_types[d], 0}});
        }
        /* a write into rows [3, 3 + T) of an 11-row cache: its value is the whole cache */
        push(l, (op_case){.kind = OP_KV_WRITE, .bound = OP_BOUND_EXACT, .host = i % 2 ? HOST(1) : 0,
                          .kv = {Ds[i], 11, T, 3}});
    }
    push(l, (op_case){.kind = OP_KV_WRITE, .bound = OP_BOUND_EXACT, .host = HOST(1), .kv = {48, 20, 5, 7}});
    /* COPY of cache rows, as a sink move reads them: from row 0, from inside, a single row */
    const int64_t copies[][4] = {{8, 11, 5, 0}, {67, 30, 17, 9}, {4096, 6, 1, 5}, {300, 40, 40, 0}};
    for (int i = 0; i < COUNT(copies); i++)
        push(l, (op_case){.kind = OP_COPY, .bound = OP_BOUND_EXACT, .host = i == 1 ? HOST(0) : 0,
                          .kv = {copies[i][0], copies[i][1], copies[i][2], copies[i][3]}});
}

/* CONCAT (2 and 3 pieces, a chain of 7, single rows of a wide tensor) and batches of sequences:
 * decode steps side by side, a prefill chunk among them, a sequence with an empty cache. */
static void add_concat(list *l)
{
    const op_case cats[] = {
        {.cat = {5, 2, {3, 4}}},
        {.cat = {67, 3, {1, 9, 2}}},
        {.cat = {4096, 3, {1, 1, 1}}},
        {.cat = {33, 7, {2, 1, 5, 1, 1, 3, 1}}},
    };
    for (int i = 0; i < COUNT(cats); i++) {
        op_case c = cats[i];
        c.kind = OP_CONCAT;
        c.bound = OP_BOUND_EXACT;
        c.host = i == 1 ? HOST(0) : 0;
        push(l, c);
    }
    const op_case seqs[] = {
        {.cat = {0, 2, {1, 1}, {5, 17}}},
        {.cat = {0, 8, {1, 1, 1, 1, 1, 1, 1, 1}, {0, 3, 40, 7, 1, 100, 12, 64}}},
        {.cat = {0, 3, {1, 21, 1}, {9, 0, 30}}},
        {.cat = {0, 4, {6, 1, 1, 70}, {2, 50, 0, 11}}},
    };
    for (int i = 0; i < COUNT(seqs); i++) {
        op_case c = seqs[i];
        c.kind = OP_SEQ_BATCH;
        c.bound = OP_BOUND_F32;
        push(l, c);
    }
}

/* The attention-sink cache (core/kv_cache.c): sinks moved up onto rows they overlap (a trim of
 * fewer entries than there are sinks), moved further, and a window moved back towards row 0 (keys
 * turned by negative positions); head sizes 8 to 128, GQA, decode and a multi-token step. */
static void add_sink_moves(list *l)
{
    const int cases[][13] = {
        /* hd, H, Hkv, C, from, to, n, view0, keep, T, (second move) from2, to2, n2 */
        {8, 4, 2, 40, 5, 7, 4, 7, 20, 1},     /* 2 entries trimmed, 4 sinks: the move overlaps itself */
        {32, 8, 2, 56, 30, 4, 20, 0, 24, 3},  /* the window back to row 4, turned by -26 */
        {128, 4, 1, 64, 10, 13, 4, 13, 40, 1}, /* head size 128, GQA 4 */
        {64, 4, 4, 60, 2, 9, 4, 9, 30, 9},    /* 7 trimmed: no overlap; a 9-token step after it */
        {16, 2, 1, 300, 0, 200, 1, 200, 60, 2}, /* one sink far up a long cache */
        /* back to row 0 in two moves: the sinks' rows [10, 14) lie where the window lands */
        {32, 4, 2, 40, 10, 0, 4, 0, 16, 2, 16, 4, 12},
    };
    for (int i = 0; i < COUNT(cases); i++) {
        const int *c = cases[i];
        push(l, (op_case){.kind = OP_SINK_MOVE, .bound = OP_BOUND_F32, .host = HOST(5) | HOST(6),
                          .sink = {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12]}});
    }
}

/* Both layouts, the usual base and LLaMA 3's (with positions up to a long context), unscaled and
 * with either RoPE scaling (design §11: per-pair divisors as llama3's, or linear). */
static void add_rope(list *l)
{
    const int hds[] = {8, 64, 128};
    const struct {
        float theta;
        int max_pos;
    } bases[] = {{10000.0f, 5000}, {500000.0f, 32000}};
    for (int layout = 0; layout < 2; layout++)
        for (int a = 0; a < COUNT(hds); a++)
            for (int b = 0; b < COUNT(bases); b++)
                for (int scaling = 0; scaling < 3; scaling++)
                    push(l, (op_case){.kind = OP_ROPE, .bound = OP_BOUND_ELEMENTWISE,
                                      .host = (hds[a] == 64 ? 0 : HOST(1)) | (scaling == 1 && b ? HOST(2) : 0),
                                      .rope = {hds[a], 3, 7, bases[b].max_pos, bases[b].theta, layout, scaling}});
}

/* Decode (T <= 8: matrix-vector kernels) and prefill sizes, around tile edges. K = 4096 (a real
 * model's width) only with small products, which keeps the CUDA emulator's run and Vulkan's with a
 * 64 KiB binding range (where such operands split into many pieces) short. */
static int small_for_wide_k(int64_t N, int64_t T) { return N <= 33 && (T <= 5 || T == 64); }

/* Quantized weights (design §10): every type, decode (the integer kernels, activations rounded to 8
 * bits) and prefill (the CPU's VNNI kernels on rounded activations, or dequantized panels), rows of
 * one block and of many, a real model's width. */
static const tr_dtype quant_types[] = {TR_Q8_0, TR_Q4_0, TR_Q4_1, TR_Q5_0, TR_Q5_1, TR_Q4_K, TR_Q5_K, TR_Q6_K};

static void add_matmul_quant(list *l)
{
    const int64_t Ns[] = {1, 33, 130}, Ts[] = {1, 3, 8, 17, 64};
    for (int d = 0; d < COUNT(quant_types); d++) {
        int64_t blk = tr_dtype_block(quant_types[d]);
        const int64_t Ks[] = {blk, 3 * blk, 4096};
        for (int a = 0; a < COUNT(Ks); a++)
            for (int b = 0; b < COUNT(Ns); b++)
                for (int c = 0; c < COUNT(Ts); c++) {
                    /* the rounded activations' error is noise: an NMSE of a handful of outputs is one
                     * draw of it, not a measure; 32 outputs or more make the bound mean something */
                    if ((Ks[a] == 4096 && !small_for_wide_k(Ns[b], Ts[c])) || Ns[b] * Ts[c] < 32)
                        continue;
                    unsigned host = ((c + b) % 3 == 0 ? HOST(0) : 0) | ((a + b + c) % 3 == 0 ? HOST(1) : 0);
                    push(l, (op_case){.kind = OP_MATMUL, .host = host, .bound = OP_BOUND_QUANT,
                                      .mm = {Ks[a], Ns[b], Ts[c], quant_types[d]}});
                }
        push(l, (op_case){.kind = OP_GET_ROWS, .bound = OP_BOUND_ELEMENTWISE,
                          .rows = {2 * blk, 9, quant_types[d], 0}});
    }
}

static void add_matmul(list *l)
{
    const int64_t Ks[] = {8, 67, 300, 4096}, Ns[] = {1, 33, 130}, Ts[] = {1, 2, 3, 4, 5, 8, 9, 17, 64, 70};
    for (int d = 0; d < COUNT(weight_types); d++)
        for (int a = 0; a < COUNT(Ks); a++)
            for (int b = 0; b < COUNT(Ns); b++)
                for (int c = 0; c < COUNT(Ts); c++) {
                    if (Ks[a] == 4096 && !small_for_wide_k(Ns[b], Ts[c]))
                        continue;
                    unsigned host = ((c + b) % 3 == 0 ? HOST(0) : 0) | ((a + b + c) % 3 == 0 ? HOST(1) : 0);
                    push(l, (op_case){.kind = OP_MATMUL, .host = host,
                                      .bound = weight_types[d] == TR_F32 ? OP_BOUND_F32 : OP_BOUND_HALF,
                                      .mm = {Ks[a], Ns[b], Ts[c], weight_types[d]}});
                }
}

static void add_attention(list *l)
{
    /* n_past, T, cache rows C: decode and prefill, caches longer than the keys in use, keys split
     * over many chunks (700 / 1000 past rows), a cache of 2048 rows of which 304 are used */
    const int shapes[][3] = {{0, 1, 4},     {0, 37, 40},   {11, 1, 14},     {5, 9, 17},
                             {260, 1, 264}, {130, 6, 139}, {3, 70, 76},     {0, 130, 133},
                             {40, 70, 113}, {700, 1, 1024}, {1000, 3, 1100}, {300, 4, 2048}};
    const int hds[] = {8, 64, 128}, ratios[] = {1, 2, 4, 8};
    /* head sizes that are not powers of two, up to 256, and GQA ratios 3, 12 and 16 */
    const struct {
        int hd, ratio, n_past, T, C;
    } extra[] = {
        {6, 2, 0, 37, 40},   {6, 2, 700, 1, 1024},  {16, 2, 0, 37, 40}, {16, 2, 700, 1, 1024},
        {96, 2, 0, 37, 40},  {96, 2, 500, 2, 600},  {256, 2, 0, 37, 40}, {256, 1, 700, 1, 1024},
        {64, 12, 3, 70, 80}, {64, 12, 900, 1, 1024}, {128, 16, 0, 1, 2},  {64, 3, 0, 200, 210},
    };
    int idx = 0;
    for (int a = 0; a < COUNT(hds); a++)
        for (int b = 0; b < COUNT(ratios); b++)
            for (int c = 0; c < COUNT(shapes); c++, idx++)
                push(l, (op_case){.kind = OP_ATTENTION, .bound = OP_BOUND_F32, .host = idx % 2 ? 0 : HOST(0),
                                  .attn = {.hd = hds[a], .H = 2 * ratios[b], .Hkv = 2, .n_past = shapes[c][0],
                                           .T = shapes[c][1], .C = shapes[c][2]}});
    for (int i = 0; i < COUNT(extra); i++, idx++)
        push(l, (op_case){.kind = OP_ATTENTION, .bound = OP_BOUND_F32, .host = idx % 2 ? 0 : HOST(0),
                          .attn = {.hd = extra[i].hd, .H = 2 * extra[i].ratio, .Hkv = 2, .n_past = extra[i].n_past,
                                   .T = extra[i].T, .C = extra[i].C}});
}

/* The transition variant: both strategies, non-default parameters, GQA, and chunks that start or
 * end inside a block. */
static void add_transition(list *l)
{
    const int ADD = TR_TRANSITION_ADDING, MULTI = TR_TRANSITION_MULTI;
    const struct {
        int hd, H, Hkv, n_past, T, C;
        op_transition tr; /* n_blocks, iv, first, gap, alpha, beta, strategy */
    } cases[] = {
        {8, 4, 2, 0, 60, 62, {2, 10, 20, 0, 0.5f, 0.1f, ADD}},
        {64, 8, 2, 0, 75, 77, {3, 10, 20, 0, 0.5f, 0.1f, ADD}},     /* tiled prefill + transition rows */
        {16, 4, 4, 25, 20, 47, {2, 10, 20, 0, 0.9f, 0.3f, ADD}},    /* the chunk cuts both blocks */
        {8, 8, 1, 33, 1, 36, {2, 10, 20, 0, 0.5f, 0.1f, ADD}},      /* one row inside a block */
        {64, 8, 2, 45, 1, 600, {2, 20, 40, 0, 0.5f, 0.1f, ADD}},    /* decode split over the keys */
        {128, 4, 4, 0, 100, 102, {2, 15, 30, 0, 0.5f, 0.1f, ADD}},  /* tiled, head size 128 */
        {128, 8, 1, 0, 150, 152, {2, 40, 80, 0, 0.5f, 0.1f, ADD}},  /* rows over chunks of 128 keys */
        {8, 4, 2, 0, 70, 72, {2, 10, 20, 15, 0.5f, 0.1f, ADD}},     /* blocks not adjacent */
        {6, 4, 2, 3, 50, 60, {2, 10, 20, 0, 0.5f, 0.1f, ADD}},      /* head size 6: scalar row kernels */
        {8, 4, 2, 0, 60, 62, {2, 10, 20, 0, 0.5f, 0.1f, MULTI}},
        {128, 4, 1, 12, 40, 54, {2, 5, 15, 0, 0.25f, 0.1f, MULTI}},
    };
    for (int i = 0; i < COUNT(cases); i++)
        push(l, (op_case){.kind = OP_TRANSITION, .bound = OP_BOUND_F32, .host = i % 2 ? HOST(0) : 0,
                          .attn = {cases[i].hd, cases[i].H, cases[i].Hkv, cases[i].n_past, cases[i].T, cases[i].C,
                                   cases[i].tr, 0, 0}});
}

/* Differential attention (design §4): head sizes 8, 64, 128, GQA 1, 2, 4 (kv heads even, so
 * the pair's two value halves come from different kv heads), the lambdas of shallow and deep layers
 * and ones outside [0, 1], prompts of odd length, chunks at n_past > 0 and decode over long caches. */
static void add_diff(list *l)
{
    const int shapes[][3] = {{0, 1, 4}, {0, 37, 40}, {11, 1, 14}, {5, 9, 17}, {130, 7, 139}, {700, 1, 1024},
                             {3, 70, 76}};
    const int hds[] = {8, 64, 128}, ratios[] = {1, 2, 4};
    const float lambdas[][2] = {{0.2f, 0.2f}, {0.83f, 0.78f}, {-0.35f, 0.45f}, {1.4f, 0.8f}}; /* lambda, lambda_init */
    int idx = 0;
    for (int a = 0; a < COUNT(hds); a++)
        for (int b = 0; b < COUNT(ratios); b++)
            for (int c = 0; c < COUNT(shapes); c++, idx++) {
                int Hkv = idx % 3 == 2 ? 4 : 2;
                push(l, (op_case){.kind = OP_DIFF, .bound = OP_BOUND_F32, .host = idx % 2 ? 0 : HOST(0),
                                  .attn = {.hd = hds[a], .H = Hkv * ratios[b], .Hkv = Hkv, .n_past = shapes[c][0],
                                           .T = shapes[c][1], .C = shapes[c][2], .lambda = lambdas[idx % 4][0],
                                           .lambda_init = lambdas[idx % 4][1]}});
            }
    /* head sizes that are not powers of two, and a head pair over 2 x 6 query heads of GQA 3 */
    const int extra[][6] = {{6, 2, 2, 0, 37, 40}, {16, 4, 2, 700, 1, 1024}, {96, 4, 2, 9, 13, 30}, {32, 12, 4, 0, 33, 40}};
    for (int i = 0; i < COUNT(extra); i++)
        push(l, (op_case){.kind = OP_DIFF, .bound = OP_BOUND_F32, .host = i % 2 ? HOST(0) : 0,
                          .attn = {.hd = extra[i][0], .H = extra[i][1], .Hkv = extra[i][2], .n_past = extra[i][3],
                                   .T = extra[i][4], .C = extra[i][5], .lambda = 0.6f, .lambda_init = 0.5f}});
}

op_case *op_cases_make(int *n)
{
    list l = {0};
    add_row_ops(&l);
    add_rope(&l);
    add_matmul(&l);
    add_matmul_quant(&l);
    add_attention(&l);
    add_transition(&l);
    add_diff(&l);
    add_sink_moves(&l);
    add_concat(&l);
    /* the layer's positions (leaf 8) are an input, as a context passes them */
    push(&l, (op_case){.kind = OP_LAYER_CHAIN, .bound = OP_BOUND_HALF, .host = HOST(8)});
    *n = l.n;
    return l.v;
}

/* ---- names -------------------------------------------------------------------------------------- */

static const char *kind_name(op_kind k)
{
    static const char *names[] = {
        [OP_ADD] = "add",           [OP_MUL] = "mul",           [OP_MUL_ROW] = "mul broadcast",
        [OP_GLU] = "glu",        [OP_RMS_NORM] = "rms_norm", [OP_GET_ROWS] = "get_rows",
        [OP_KV_WRITE] = "kv_write", [OP_ROPE] = "rope",         [OP_MATMUL] = "matmul",
        [OP_ATTENTION] = "attention", [OP_TRANSITION] = "transition", [OP_LAYER_CHAIN] = "layer chain",
        [OP_COPY] = "copy",         [OP_SINK_MOVE] = "sink moves", [OP_DIFF] = "diff attention",
        [OP_CONCAT] = "concat",     [OP_SEQ_BATCH] = "sequence batch",
    };
    return names[k];
}

static int is_transition(const op_case *c) { return c->kind == OP_TRANSITION; }

void op_case_name(const op_case *c, char *buf, size_t cap)
{
    const char *op = kind_name(c->kind);
    switch (c->kind) {
    case OP_RMS_NORM:
    case OP_GET_ROWS:
        snprintf(buf, cap, "%s D=%lld T=%lld %s %s", op, (long long)c->rows.D, (long long)c->rows.T,
                 c->kind == OP_RMS_NORM ? "weight" : "table", tr_dtype_name(c->rows.dt));
        break;
    case OP_KV_WRITE:
    case OP_COPY:
        snprintf(buf, cap, "%s D=%lld C=%lld T=%lld %s=%lld", op, (long long)c->kv.D, (long long)c->kv.C,
                 (long long)c->kv.T, c->kind == OP_COPY ? "row0" : "pos0", (long long)c->kv.pos0);
        break;
    case OP_SINK_MOVE:
        snprintf(buf, cap, "%s hd=%d H=%d Hkv=%d C=%d rows %d+%d -> %d%s, attention from %d over %d+%d", op, c->sink.hd,
                 c->sink.H, c->sink.Hkv, c->sink.C, c->sink.from, c->sink.n, c->sink.to,
                 c->sink.n2 ? " and a second move" : "", c->sink.view0, c->sink.keep, c->sink.T);
        break;
    case OP_ROPE:
        snprintf(buf, cap, "%s %s hd=%d H=%d T=%d theta=%g%s", op, c->rope.layout ? "half" : "adjacent", c->rope.hd,
                 c->rope.H, c->rope.T, (double)c->rope.theta,
                 c->rope.scaling == 1 ? " factors" : c->rope.scaling == 2 ? " linear/8" : "");
        break;
    case OP_MATMUL:
        snprintf(buf, cap, "%s %s K=%lld N=%lld T=%lld", op, tr_dtype_name(c->mm.dt), (long long)c->mm.K,
                 (long long)c->mm.N, (long long)c->mm.T);
        break;
    case OP_GLU:
        snprintf(buf, cap, "%s %s D=%lld T=%lld", op, tr_activation_name((tr_activation)c->rows.act),
                 (long long)c->rows.D, (long long)c->rows.T);
        break;
    case OP_ATTENTION:
    case OP_TRANSITION:
    case OP_DIFF: {
        int n = snprintf(buf, cap, "%s hd=%d H=%d Hkv=%d n_past=%d T=%d C=%d", op, c->attn.hd, c->attn.H, c->attn.Hkv, c->attn.n_past, c->attn.T, c->attn.C);
        if (c->kind == OP_DIFF && n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, " lambda=%g lambda_init=%g", (double)c->attn.lambda,
                     (double)c->attn.lambda_init);
        const op_transition *tr = &c->attn.tr;
        if (is_transition(c) && n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, " %s %dx%d rows from %d (gap %d) alpha=%g beta=%g",
                     tr->strategy == TR_TRANSITION_MULTI ? "multi" : "adding", tr->n_blocks, tr->iv, tr->first, tr->gap,
                     (double)tr->alpha, (double)tr->beta);
        break;
    }
    case OP_LAYER_CHAIN:
        snprintf(buf, cap, "%s D=48 hd=8 H=6 Hkv=2 T=13 C=20 n_past=4", op);
        break;
    case OP_CONCAT:
    case OP_SEQ_BATCH: {
        int n = c->kind == OP_CONCAT ? snprintf(buf, cap, "%s D=%lld rows", op, (long long)c->cat.D)
                                     : snprintf(buf, cap, "%s hd=16 H=4 Hkv=2 (T, n_past)", op);
        for (int i = 0; i < c->cat.n && n > 0 && (size_t)n < cap; i++)
            n += c->kind == OP_CONCAT ? snprintf(buf + n, cap - (size_t)n, " %d", c->cat.T[i])
                                      : snprintf(buf + n, cap - (size_t)n, " (%d, %d)", c->cat.T[i], c->cat.n_past[i]);
        break;
    }
    default:
        snprintf(buf, cap, "%s D=%lld T=%lld", op, (long long)c->rows.D, (long long)c->rows.T);
    }
}

/* The summary's families: by op, weight type and size class (matrix-vector vs tiled products,
 * decode vs prefill attention), which is where the backends switch kernels. */
static void family_of(const op_case *c, char *buf, size_t cap)
{
    if (c->kind == OP_MATMUL)
        snprintf(buf, cap, "matmul %s %s", tr_dtype_name(c->mm.dt), c->mm.T <= 8 ? "T<=8" : "T>8");
    else if (is_transition(c))
        snprintf(buf, cap, "attention transition");
    else if (c->kind == OP_ATTENTION || c->kind == OP_DIFF)
        snprintf(buf, cap, "%s %s", kind_name(c->kind), c->attn.T <= 4 ? "T<=4" : "T>4");
    else
        snprintf(buf, cap, "%s", kind_name(c->kind));
}

/* ---- graphs ------------------------------------------------------------------------------------- */

static op_where where(const op_case *c, int leaf) { return c->host & HOST(leaf) ? OP_HOST : OP_DEVICE; }

static tr_attn_params attn_params(const op_case *c)
{
    const op_transition *tr = &c->attn.tr;
    tr_attn_params ap = {.scale = 1.0f / sqrtf((float)c->attn.hd), .n_past = c->attn.n_past,
                         .n_kv = c->attn.n_past + c->attn.T};
    if (is_transition(c)) {
        ap.variant = TR_ATTN_TRANSITION;
        ap.transition.n_blocks = tr->n_blocks;
        ap.transition.iv = tr->iv;
        for (int j = 0; j < tr->n_blocks; j++)
            ap.transition.start[j] = tr->first + j * (tr->iv + tr->gap);
        ap.transition.alpha = tr->alpha;
        ap.transition.beta = tr->beta;
        ap.transition.strategy = tr->strategy;
    }
    if (c->kind == OP_DIFF) {
        ap.variant = TR_ATTN_DIFF;
        ap.diff.lambda = c->attn.lambda;
        ap.diff.out_scale = 1.0f - c->attn.lambda_init;
        ap.diff.eps = 1e-5f;
    }
    return ap;
}

/* A small layer-shaped chain: the memory plan reuses memory, views (reshape, last row), a KV write
 * read by attention, weights of every type. */
static tr_tensor *layer_chain(const op_case *c, tr_graph *g)
{
    const int D = 48, hd = 8, H = 6, Hkv = 2, T = 13, C = 20, n_past = 4;
    tr_tensor *x = op_leaf(g, TR_F32, 2, (int64_t[]){D, T}, 1, where(c, 0));
    tr_tensor *n = op_leaf(g, TR_F32, 1, (int64_t[]){D}, 1, where(c, 1));
    tr_tensor *wq = op_leaf(g, TR_F16, 2, (int64_t[]){D, H * hd}, 0.3f, where(c, 2));
    tr_tensor *wk = op_leaf(g, TR_F32, 2, (int64_t[]){D, Hkv * hd}, 0.3f, where(c, 3));
    tr_tensor *wv = op_leaf(g, TR_BF16, 2, (int64_t[]){D, Hkv * hd}, 0.3f, where(c, 4));
    tr_tensor *wo = op_leaf(g, TR_F32, 2, (int64_t[]){H * hd, D}, 0.3f, where(c, 5));
    tr_tensor *kc = op_leaf(g, TR_F32, 2, (int64_t[]){Hkv * hd, C}, 1, where(c, 6));
    tr_tensor *vc = op_leaf(g, TR_F32, 2, (int64_t[]){Hkv * hd, C}, 1, where(c, 7));
    tr_tensor *pos = op_int_leaf(g, T, 1, n_past, where(c, 8));
    for (int i = 0; i < T; i++)
        ((int32_t *)pos->data)[i] = n_past + i;
    tr_rope_params rp = {10000.0f, TR_ROPE_ADJACENT, 1.0f};
    tr_tensor *h = tr_rms_norm(g, x, n, 1e-5f);
    tr_tensor *q = tr_rope(g, tr_reshape_3d(g, tr_matmul(g, h, wq), hd, H, T), pos, rp);
    tr_tensor *k = tr_rope(g, tr_reshape_3d(g, tr_matmul(g, h, wk), hd, Hkv, T), pos, rp);
    tr_tensor *kw = tr_kv_write(g, kc, tr_reshape_3d(g, k, hd * Hkv, T, 1), n_past);
    tr_tensor *vw = tr_kv_write(g, vc, tr_matmul(g, h, wv), n_past);
    tr_attn_params ap = {.scale = 1.0f / sqrtf((float)hd), .n_past = n_past, .n_kv = n_past + T};
    tr_tensor *a = tr_attention(g, q, kw, vw, &ap);
    tr_tensor *y = tr_add(g, x, tr_matmul(g, a, wo));
    return tr_rms_norm(g, tr_view_rows(g, y, T - 1, 1), n, 1e-5f);
}

/* The attention-sink cache's moves (core/kv_cache.c) in one graph: key rows turned by RoPE and
 * value rows copied into temporaries, written back onto rows that may overlap their own, the
 * step's new rows after the live run, and attention through a view that starts at view0. */
static tr_tensor *sink_moves(const op_case *c, tr_graph *g)
{
    const int hd = c->sink.hd, H = c->sink.H, Hkv = c->sink.Hkv, C = c->sink.C, T = c->sink.T, n = c->sink.n;
    const int W = hd * Hkv, row0 = c->sink.view0 + c->sink.keep;
    tr_tensor *kc = op_leaf(g, TR_F32, 2, (int64_t[]){W, C}, 1, where(c, 0));
    tr_tensor *vc = op_leaf(g, TR_F32, 2, (int64_t[]){W, C}, 1, where(c, 1));
    tr_tensor *q = op_leaf(g, TR_F32, 3, (int64_t[]){hd, H, T}, 1, where(c, 2));
    tr_tensor *k_new = op_leaf(g, TR_F32, 2, (int64_t[]){W, T}, 1, where(c, 3));
    tr_tensor *v_new = op_leaf(g, TR_F32, 2, (int64_t[]){W, T}, 1, where(c, 4));
    tr_rope_params rp = {10000.0f, TR_ROPE_HALF, 1.0f};
    const int from[2] = {c->sink.from, c->sink.from2}, to[2] = {c->sink.to, c->sink.to2}, rows_of[2] = {n, c->sink.n2};
    tr_tensor *k_moved[2] = {NULL, NULL}, *v_moved[2] = {NULL, NULL};
    for (int j = 0; j < 2 && rows_of[j] > 0; j++) { /* reads first */
        tr_tensor *turn = op_int_leaf(g, rows_of[j], 1, to[j] - from[j], where(c, 5 + j));
        k_moved[j] = tr_rope(g, tr_reshape_3d(g, tr_view_rows(g, kc, from[j], rows_of[j]), hd, Hkv, rows_of[j]), turn, rp);
        v_moved[j] = tr_copy(g, tr_view_rows(g, vc, from[j], rows_of[j]));
    }
    tr_tensor *kw = kc, *vw = vc;
    for (int j = 0; j < 2 && rows_of[j] > 0; j++) {
        kw = tr_kv_write(g, kw, tr_reshape_3d(g, k_moved[j], W, rows_of[j], 1), to[j]);
        vw = tr_kv_write(g, vw, v_moved[j], to[j]);
    }
    kw = tr_kv_write(g, kw, k_new, row0);
    vw = tr_kv_write(g, vw, v_new, row0);
    tr_attn_params ap = {.scale = 1.0f / sqrtf((float)hd), .n_past = c->sink.keep, .n_kv = c->sink.keep + T};
    int64_t rows = C - c->sink.view0;
    return tr_attention(g, q, tr_view_rows(g, kw, c->sink.view0, rows), tr_view_rows(g, vw, c->sink.view0, rows), &ap);
}

/* CONCAT's pieces: piece 1 is a view of rows 2.. of a taller leaf (a source that is not a node). */
static tr_tensor *concat_case(const op_case *c, tr_graph *g)
{
    tr_tensor *piece[8];
    for (int i = 0; i < c->cat.n; i++) {
        if (i == 1) {
            tr_tensor *tall = op_leaf(g, TR_F32, 2, (int64_t[]){c->cat.D, c->cat.T[i] + 3}, 1, where(c, i));
            piece[i] = tr_view_rows(g, tall, 2, c->cat.T[i]);
        } else {
            piece[i] = op_leaf(g, TR_F32, 2, (int64_t[]){c->cat.D, c->cat.T[i]}, 1, where(c, i));
        }
    }
    return tr_concat_n(g, piece, c->cat.n);
}

/* A batch of sequences as core/llama.c builds it: the batch's queries rotated at their own
 * positions by one RoPE, each sequence's keys and values written into its own cache, attention
 * per sequence over its view of the queries, the outputs joined in batch order. */
static tr_tensor *seq_batch(const op_case *c, tr_graph *g)
{
    const int hd = 16, H = 4, Hkv = 2, W = hd * Hkv;
    int Ttot = 0;
    for (int i = 0; i < c->cat.n; i++)
        Ttot += c->cat.T[i];
    tr_tensor *q = op_leaf(g, TR_F32, 3, (int64_t[]){hd, H, Ttot}, 1, where(c, 0));
    tr_tensor *k = op_leaf(g, TR_F32, 2, (int64_t[]){W, Ttot}, 1, where(c, 1));
    tr_tensor *v = op_leaf(g, TR_F32, 2, (int64_t[]){W, Ttot}, 1, where(c, 2));
    tr_tensor *pos = op_int_leaf(g, Ttot, 1, 0, OP_HOST);
    for (int i = 0, t = 0; i < c->cat.n; i++)
        for (int j = 0; j < c->cat.T[i]; j++)
            ((int32_t *)pos->data)[t++] = c->cat.n_past[i] + j;
    q = tr_rope(g, q, pos, (tr_rope_params){10000.0f, TR_ROPE_HALF, 1.0f});
    tr_tensor *out[8];
    for (int i = 0, t0 = 0; i < c->cat.n; t0 += c->cat.T[i], i++) {
        const int T = c->cat.T[i], n_past = c->cat.n_past[i], C = n_past + T + 2;
        tr_tensor *kc = op_leaf(g, TR_F32, 2, (int64_t[]){W, C}, 1, OP_DEVICE);
        tr_tensor *vc = op_leaf(g, TR_F32, 2, (int64_t[]){W, C}, 1, OP_DEVICE);
        kc = tr_kv_write(g, kc, tr_view_rows(g, k, t0, T), n_past);
        vc = tr_kv_write(g, vc, tr_view_rows(g, v, t0, T), n_past);
        tr_attn_params ap = {.scale = 1.0f / sqrtf((float)hd), .n_past = n_past, .n_kv = n_past + T};
        out[i] = tr_attention(g, tr_view_tokens(g, q, t0, T), kc, vc, &ap);
    }
    return tr_concat_n(g, out, c->cat.n);
}

/* The case's leaves (random, in its op's usual ranges) and its output node. Attention's leaves
 * only: the caller adds the node once the inputs keep the transition's margin. */
static tr_tensor *build(const op_case *c, tr_graph *g, tr_tensor **leaves)
{
    int64_t D = c->rows.D, T = c->rows.T;
    switch (c->kind) {
    case OP_ADD:
    case OP_MUL:
    case OP_GLU: {
        tr_tensor *x = op_leaf(g, TR_F32, 2, (int64_t[]){D, T}, 2, where(c, 0));
        tr_tensor *y = op_leaf(g, TR_F32, 2, (int64_t[]){D, T}, 2, where(c, 1));
        return c->kind == OP_ADD   ? tr_add(g, x, y)
               : c->kind == OP_MUL ? tr_mul(g, x, y)
                                   : tr_glu(g, x, y, (tr_activation)c->rows.act);
    }
    case OP_MUL_ROW: {
        tr_tensor *x = op_leaf(g, TR_F32, 2, (int64_t[]){D, T}, 2, where(c, 0));
        return tr_mul(g, x, op_leaf(g, TR_F32, 1, (int64_t[]){D}, 1, where(c, 1)));
    }
    case OP_RMS_NORM: {
        tr_tensor *x = op_leaf(g, TR_F32, 2, (int64_t[]){D, T}, 2, where(c, 0));
        return tr_rms_norm(g, x, op_leaf(g, c->rows.dt, 1, (int64_t[]){D}, 1, where(c, 1)), 1e-5f);
    }
    case OP_GET_ROWS: {
        tr_tensor *table = op_leaf(g, c->rows.dt, 2, (int64_t[]){D, 50}, 1, where(c, 0));
        tr_tensor *ids = op_int_leaf(g, T, 50, 0, where(c, 1));
        ((int32_t *)ids->data)[T / 2] = 50; /* outside the table: a zero row */
        return tr_get_rows(g, table, ids);
    }
    case OP_KV_WRITE: {
        tr_tensor *cache = op_leaf(g, TR_F32, 2, (int64_t[]){c->kv.D, c->kv.C}, 1, where(c, 0));
        tr_tensor *src = op_leaf(g, TR_F32, 2, (int64_t[]){c->kv.D, c->kv.T}, 2, where(c, 1));
        return tr_kv_write(g, cache, src, (int32_t)c->kv.pos0);
    }
    case OP_ROPE: {
        tr_tensor *x = op_leaf(g, TR_F32, 3, (int64_t[]){c->rope.hd, c->rope.H, c->rope.T}, 1, where(c, 0));
        tr_tensor *pos = op_int_leaf(g, c->rope.T, c->rope.max_pos, 0, where(c, 1));
        tr_tensor *factors = NULL;
        if (c->rope.scaling == 1) { /* 1 on the high frequencies, up to 32 on the low, smooth between */
            factors = op_leaf(g, TR_F32, 1, (int64_t[]){c->rope.hd / 2}, 1, where(c, 2));
            float *f = factors->data;
            for (int i = 0; i < c->rope.hd / 2; i++)
                f[i] = 1.0f + 31.0f * (float)i / (float)(c->rope.hd / 2) * (0.75f + 0.25f * f[i]);
        }
        return tr_rope_ext(g, x, pos, factors,
                           (tr_rope_params){.theta = c->rope.theta, .layout = (tr_rope_layout)c->rope.layout,
                                            .freq_scale = c->rope.scaling == 2 ? 0.125f : 1.0f});
    }
    case OP_MATMUL: {
        tr_tensor *x = op_leaf(g, TR_F32, 2, (int64_t[]){c->mm.K, c->mm.T}, 1, where(c, 0));
        return tr_matmul(g, x, op_leaf(g, c->mm.dt, 2, (int64_t[]){c->mm.K, c->mm.N}, 0.5f, where(c, 1)));
    }
    case OP_ATTENTION:
    case OP_TRANSITION:
    case OP_DIFF: {
        /* the transition's scores spread wider (scale 2), so that some weights fall below its threshold */
        float s = is_transition(c) ? 2 : 1;
        int64_t hd = c->attn.hd, W = hd * c->attn.Hkv;
        leaves[0] = op_leaf(g, TR_F32, 3, (int64_t[]){hd, c->attn.H, c->attn.T}, s, where(c, 0));
        leaves[1] = op_leaf(g, TR_F32, 2, (int64_t[]){W, c->attn.C}, s, where(c, 1));
        leaves[2] = op_leaf(g, TR_F32, 2, (int64_t[]){W, c->attn.C}, 1, where(c, 2));
        return NULL;
    }
    case OP_LAYER_CHAIN:
        return layer_chain(c, g);
    case OP_COPY: {
        tr_tensor *cache = op_leaf(g, TR_F32, 2, (int64_t[]){c->kv.D, c->kv.C}, 1, where(c, 0));
        return tr_copy(g, tr_view_rows(g, cache, c->kv.pos0, c->kv.T));
    }
    case OP_SINK_MOVE:
        return sink_moves(c, g);
    case OP_CONCAT:
        return concat_case(c, g);
    case OP_SEQ_BATCH:
        return seq_batch(c, g);
    case OP_KIND_COUNT:
        break;
    }
    return NULL;
}

/* ---- running ------------------------------------------------------------------------------------ */

static void compare_or_refuse(const op_target *t, tr_graph *g, tr_tensor **outs, int n, const op_case *c,
                              const char *what, float **got)
{
    char family[40];
    family_of(c, family, sizeof family);
    if (!outs[0]) {
        CHECK(0, "[%s] %s: the case's graph does not build: %s", t->name, what, tr_last_error());
        return;
    }
    const char *why = t->refusal ? t->refusal(outs[0]) : NULL;
    if (why)
        op_expect_refusal(t, g, outs[0], why, family, what);
    else
        op_compare(t, g, outs, n, c->bound, family, what, got);
}

/* Attention: plain, or the transition on inputs redrawn until every weight of a touched row is at
 * least 1e-5 relative from its threshold (design §6), so that rounding cannot flip an elimination.
 * The transition's output must match, and must differ from plain attention on the same inputs. */
static void run_attention(const op_target *t, const op_case *c, const char *name)
{
    tr_attn_params ap = attn_params(c), plain = ap;
    plain.variant = TR_ATTN_PLAIN;
    int done = 0;
    for (int attempt = 0; attempt < 100 && !done; attempt++) {
        tr_graph g;
        tr_graph_init(&g);
        tr_tensor *in[3];
        build(c, &g, in);
        double margin = is_transition(c) ? tr_test_transition_margin(in[0], in[1], &ap, in[0]->data, in[1]->data) : 1;
        if (margin >= 1e-5) {
            done = 1;
            tr_tensor *outs[2] = {tr_attention(&g, in[0], in[1], in[2], &ap), NULL};
            if (!is_transition(c)) {
                compare_or_refuse(t, &g, outs, 1, c, name, NULL);
            } else {
                char what[256];
                snprintf(what, sizeof what, "%s (margin %.1e)", name, margin);
                outs[1] = tr_attention(&g, in[0], in[1], in[2], &plain);
                float *got[2] = {NULL, NULL};
                compare_or_refuse(t, &g, outs, 2, c, what, got);
                if (got[0] && got[1])
                    CHECK(tr_nmse(got[1], got[0], (size_t)tr_nelements(outs[0])) > 1e-8, "[%s] %s: no effect", t->name,
                          what);
                free(got[0]);
                free(got[1]);
            }
        }
        op_release(&g);
    }
    CHECK(done, "[%s] %s: no inputs with a margin of 1e-5 in 100 draws", t->name, name);
}

void op_cases_run(const op_target *t)
{
    int n;
    op_case *cases = op_cases_make(&n);
    struct {
        int run, skipped;
        double seconds;
    } per[OP_KIND_COUNT] = {{0}};
    for (int i = 0; i < n; i++) {
        const op_case *c = &cases[i];
        char name[192];
        op_case_name(c, name, sizeof name);
        const char *why = t->skip ? t->skip(c) : NULL;
        if (why) {
            printf("  [%s] skipped %s: %s\n", t->name, name, why);
            per[c->kind].skipped++;
            continue;
        }
        double t0 = tr_test_now();
        op_seed(name);
        if (c->kind == OP_ATTENTION || c->kind == OP_TRANSITION || c->kind == OP_DIFF) {
            run_attention(t, c, name);
        } else {
            tr_graph g;
            tr_graph_init(&g);
            tr_tensor *out = build(c, &g, NULL);
            compare_or_refuse(t, &g, &out, 1, c, name, NULL);
            op_release(&g);
        }
        per[c->kind].run++;
        per[c->kind].seconds += tr_test_now() - t0;
    }
    for (int k = 0; k < OP_KIND_COUNT; k++)
        printf("  [%s] %-14s %4d cases, %2d skipped %7.2f s\n", t->name, kind_name((op_kind)k), per[k].run,
               per[k].skipped, per[k].seconds);
    free(cases);
}
