/* op_cases.h: the one table of per-op test cases, in the spirit of ggml's test-backend-ops. Each
 * case is an op with its shapes, dtypes and parameters, the design §6 bound its output is held to,
 * and which of its leaves stay in host memory on a device backend. test_ops (the CPU fast path),
 * test_vulkan and test_cuda each run the whole table against the CPU reference kernels on their
 * backend (op_cases_run); a backend that cannot run a case says why through op_target.skip.
 *
 * The table is the union of what the three tests checked before they shared it: awkward sizes
 * (not multiples of a workgroup or warp), every weight dtype, head sizes 6 to 256, GQA ratios 1 to
 * 16, decode and prefill, n_past > 0, caches longer than the keys in use, and Attention Transition
 * rows (inputs redrawn until every weight of a touched row is >= 1e-5 relative from its threshold:
 * tr_test_transition_margin, docs/attention-transition.md), differential attention (head dims 8 to
 * 128, GQA 1 to 4, lambdas either side of 0 and 1, odd token counts, chunks at n_past > 0, decode). */
#ifndef TR_OP_CASES_H
#define TR_OP_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "op_harness.h"

typedef enum op_kind {
    OP_ADD,
    OP_MUL,
    OP_MUL_ROW, /* MUL with a {D} row broadcast over the rows */
    OP_GLU,
    OP_RMS_NORM,
    OP_GET_ROWS,
    OP_KV_WRITE,
    OP_ROPE,
    OP_MATMUL,
    OP_ATTENTION,   /* plain */
    OP_TRANSITION,  /* attention with the Attention Transition variant */
    OP_DIFF,        /* differential attention (design §4) */
    OP_LAYER_CHAIN, /* one small layer: memory reuse, views, a KV write read by attention */
    OP_COPY,        /* COPY of a view of cache rows */
    OP_SINK_MOVE,   /* the attention-sink cache's row moves, new rows, attention through a view */
    OP_CONCAT,      /* CONCAT of pieces (leaves, a view of rows, a chain longer than TR_MAX_SRC) */
    OP_SEQ_BATCH,   /* a batch of several sequences: one RoPE, per-sequence KV writes and attention on
                       each sequence's own cache, the outputs joined by CONCAT (core/llama.c) */
    OP_KIND_COUNT
} op_kind;

/* The transition's blocks: n_blocks blocks of iv rows, the first at row `first`, each next one
 * iv + gap rows later (gap > 0: blocks that are not adjacent). */
typedef struct op_transition {
    int n_blocks, iv, first, gap;
    float alpha, beta;
    int strategy; /* TR_TRANSITION_ADDING or TR_TRANSITION_MULTI */
} op_transition;

typedef struct op_case {
    op_kind kind;
    double bound;  /* NMSE against the reference, design §6 */
    unsigned host; /* bit i: the case's i-th leaf (in the order it makes them) is OP_HOST */
    union {
        struct { /* ADD, MUL, MUL_ROW, GLU: x, y; RMS_NORM: x, w; GET_ROWS: table {D, 50}, ids {T} */
            int64_t D, T;
            tr_dtype dt; /* RMS_NORM's weight, GET_ROWS' table */
            int act;     /* GLU: tr_activation */
        } rows;
        struct { /* KV_WRITE: src {D, T} into rows [pos0, pos0 + T) of cache {D, C};
                    COPY: rows [pos0, pos0 + T) of a {D, C} leaf */
            int64_t D, C, T, pos0;
        } kv;
        struct { /* SINK_MOVE (core/kv_cache.c): rows [from, from + n) of key and value caches
                    {hd * Hkv, C} move to [to, to + n) (keys turned by to - from), and so do
                    [from2, from2 + n2) to [to2, ..) when n2 > 0, all read before any is written;
                    T new rows follow at view0 + keep; queries q {hd, H, T} attend from view0 */
            int hd, H, Hkv, C, from, to, n, view0, keep, T, from2, to2, n2;
        } sink;
        struct { /* CONCAT: n pieces {D, T[i]} (piece 1 a view of rows 2.. of a taller leaf);
                    SEQ_BATCH: n sequences of T[i] tokens after n_past[i] cached, hd 16, H 4, Hkv 2 */
            int64_t D;
            int n, T[8], n_past[8];
        } cat;
        struct { /* ROPE: x {hd, H, T}, positions in [0, max_pos) */
            int hd, H, T, max_pos;
            float theta;
            int layout;  /* tr_rope_layout */
            int scaling; /* 0 none; 1 per-pair factors in [1, 32] (llama3, a leaf); 2 linear (freq_scale 1/8) */
        } rope;
        struct { /* MATMUL: x {K, T} times w {K, N} */
            int64_t K, N, T;
            tr_dtype dt;
        } mm;
        struct { /* ATTENTION, TRANSITION, DIFF: q {hd, H, T}, caches {hd * Hkv, C}, queries at n_past.. */
            int hd, H, Hkv, n_past, T, C;
            op_transition tr; /* TRANSITION only */
            float lambda, lambda_init; /* DIFF only */
        } attn;
    };
} op_case;

/* Every case, in a fresh array (caller frees); *n gets the count. */
op_case *op_cases_make(int *n);

/* "matmul bf16 K=67 N=33 T=5": the case's op and shapes, for messages. */
void op_case_name(const op_case *c, char *buf, size_t cap);

/* Runs every case of the table on t: compared with the reference within its bound, refused where
 * t->refusal expects it, or skipped with t->skip's reason. Prints a line per op with its count of
 * cases, skips and time. */
void op_cases_run(const op_target *t);

#endif
