/* ir.h: transit's tensor IR. Tensors, the op set with each op's semantics, and the graph.
 *
 * A graph is built once per evaluation by the model builder (core/llama.c) and handed, unchanged,
 * to a backend: the graph is the contract between the model and every backend. Tensor descriptors
 * live in a graph-owned arena; nodes are appended in creation order, which is a valid execution
 * order because an op's sources always exist before it.
 *
 * Layout: ne[0] is the innermost dimension; nb[i] is the stride of dimension i in bytes. A tensor
 * made by an op is contiguous; views (tr_view_*, tr_reshape_*) alias another tensor's memory.
 * Activations of a batch of T tokens with width D have ne = {D, T}.
 *
 * Op semantics (x, y: activations; W: weights; all math in float32 unless said otherwise):
 *
 *   GET_ROWS   out[t] = table[ids[t]]             table {D, V} (f32/f16/bf16/quantized), ids {T} i32 -> {D, T}
 *   RMS_NORM   out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w      x {D, T}, w {D} (f32/f16/bf16)
 *   ADD        out = x + y                         same shape
 *   MUL        out = x * y                         same shape, or y {D} broadcast over rows
 *   MATMUL     out[t][n] = sum_k x[t][k] * W[n][k] x {K, T}, W {K, N} (f32/f16/bf16/quantized) -> {N, T}
 *              i.e. activations times the transposed weight, as a linear layer is stored.
 *              A quantized W (or table) has the value of its dequantized weights (core/quant.c,
 *              equal to the gguf package's dequantize); a kernel may round x to 8 bits per block of
 *              32 on the way (as llama.cpp's CPU path does), within design §10's 5e-4 NMSE bound.
 *   ROPE       rotary embedding of each head:      x {hd, H, T}, pos {T} i32, optional factors {hd/2} f32
 *              for pair i < hd/2, angle = pos[t] * freq_scale * theta^(-2i/hd) / factors[i]
 *              (factors: 1 when absent; llama3 RoPE scaling, design §11; freq_scale: 1/factor of
 *              linear scaling, else 1), (a, b) -> (a cos - b sin,
 *              a sin + b cos), where (a, b) = (x[2i], x[2i+1]) in the ADJACENT layout (GGUF/Meta)
 *              and (x[i], x[i+hd/2]) in the HALF layout (Hugging Face rotate_half).
 *   GLU        out = act(gate) * up               gate, up {F, T}; act (p.act) is one of
 *              silu(g) = g / (1 + exp(-g))                           (SwiGLU: LLaMA)
 *              gelu(g) = g/2 (1 + erf(g / sqrt 2))                   (GEGLU: hidden_act gelu)
 *              gelu_tanh(g) = g/2 (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))  (gelu_pytorch_tanh)
 *   KV_WRITE   writes src {hd*Hkv, T} into rows [pos0, pos0+T) of cache {hd*Hkv, C}; its value is
 *              the cache itself (so ATTENTION, which reads it, runs after the write).
 *   COPY       out = x                             x {D, T} f32 (a view of a cache, say) -> a copy of
 *              its own: what a row move inside one buffer reads from, so that the write that
 *              follows may overlap the rows it came from (the attention-sink cache moves rows).
 *   ATTENTION  fused causal attention with GQA:    q {hd, H, T}, k_cache, v_cache {hd*Hkv, C}
 *              query t sits at absolute position p = n_past + t and sees keys 0..p;
 *              head h uses kv head h / (H / Hkv);
 *              s[c] = scale * q . k[c], a = softmax(s) over c <= p, out[t][h] = sum_c a[c] v[c]
 *              -> {hd*H, T}. Variants (tr_attn_params.variant) change the weights a[c]; see
 *              docs/architecture.md and docs/attention-transition.md.
 *              DIFF (differential attention, design §4; H even): heads pair as (j, j + H/2),
 *              j < H/2. With a = kv head of j, b = kv head of j + H/2, a_j, a_{j+H/2} the two
 *              heads' softmax rows and lambda, out_scale, eps from p.attn.diff:
 *                y = sum_c (a_j[c] - lambda a_{j+H/2}[c]) [v_a[c], v_b[c]]      (2 hd wide)
 *                out[t][2 hd j .. 2 hd (j+1)) = out_scale * y / sqrt(mean(y^2) + eps)
 *   CONCAT     out = the rows of src[0], src[1], ... in order      each {D, T_i} f32 -> {D, sum T_i}:
 *              joins what was computed per sequence of a batch (attention) or picks rows
 *              (the tokens whose logits are wanted). Up to TR_MAX_SRC sources; longer lists chain.
 *   VIEW       no computation: an alias of src[0] with its own shape/strides/offset.
 */
#ifndef TR_IR_H
#define TR_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "model_file.h"
#include "transit.h"

typedef enum tr_op {
    TR_OP_NONE = 0, /* a leaf: weight, input or cache */
    TR_OP_VIEW,
    TR_OP_GET_ROWS,
    TR_OP_RMS_NORM,
    TR_OP_ADD,
    TR_OP_MUL,
    TR_OP_MATMUL,
    TR_OP_ROPE,
    TR_OP_GLU,
    TR_OP_KV_WRITE,
    TR_OP_ATTENTION,
    TR_OP_COPY,
    TR_OP_CONCAT,
    TR_OP_COUNT
} tr_op;

const char *tr_op_name(tr_op op);

#define TR_MAX_DIMS 4
#define TR_MAX_SRC 3
#define TR_MAX_TRANSITION_BLOCKS 8

typedef enum tr_attn_variant {
    TR_ATTN_PLAIN = 0,
    TR_ATTN_TRANSITION = 1, /* design §3: re-weighted probabilities on scheduled row blocks */
    TR_ATTN_DIFF = 2,       /* design §4: differential attention (DiffLlama), head pairs */
} tr_attn_variant;

typedef struct tr_rope_params {
    float theta;
    tr_rope_layout layout;
    float freq_scale; /* angles times this (linear scaling: 1 / factor); 0 when built means 1 */
} tr_rope_params;

/* Parameters of one ATTENTION node. Room is kept for the variants of design §3-§5: the transition
 * blocks are absolute prompt rows, so a chunk of a prompt carries the blocks that intersect it. */
typedef struct tr_attn_params {
    float scale;     /* usually 1/sqrt(hd) */
    int32_t n_past;  /* absolute position of the first query row */
    int32_t n_kv;    /* keys visible to the last query: n_past + T */
    tr_attn_variant variant;
    struct {
        int32_t n_blocks;
        int32_t start[TR_MAX_TRANSITION_BLOCKS]; /* absolute first row of each block */
        int32_t iv;                               /* block length (rows) */
        float alpha, beta;
        int32_t strategy; /* tr_transition_strategy */
    } transition;
    struct {
        float lambda;    /* the layer's lambda (design §4 step 4) */
        float out_scale; /* 1 - lambda_init */
        float eps;       /* of the weightless RMS norm over each pair's 2 hd values */
    } diff;
} tr_attn_params;

typedef struct tr_buffer tr_buffer; /* backend memory; see backend.h */

typedef struct tr_tensor {
    tr_dtype dtype;
    int ndim;
    int64_t ne[TR_MAX_DIMS];
    size_t nb[TR_MAX_DIMS];
    tr_op op;
    struct tr_tensor *src[TR_MAX_SRC];
    union {
        float eps;           /* RMS_NORM */
        tr_rope_params rope; /* ROPE */
        int32_t pos0;        /* KV_WRITE */
        tr_activation act;   /* GLU */
        size_t view_offset;  /* VIEW: byte offset into src[0] */
        tr_attn_params attn; /* ATTENTION */
    } p;
    /* Placement. For leaves the owner sets these; for nodes the backend's memory plan does.
     * data is a host pointer when the memory is host-visible (CPU), else NULL. */
    void *data;
    tr_buffer *buffer;
    size_t offset;
    int is_input;  /* leaf whose contents the graph's caller supplies (ids, positions) */
    int is_weight; /* leaf of model weights: unchanged while the model lives, so a backend may keep a
                      copy of its own keyed by data (the CPU's repacked Q4_K, cpu/repack.c) */
    int is_output; /* node whose value is read after compute (keeps it out of memory reuse) */
    char name[64];
} tr_tensor;

static inline int64_t tr_nelements(const tr_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}
static inline size_t tr_nbytes(const tr_tensor *t) /* bytes of a contiguous tensor */
{
    return tr_row_bytes(t->dtype, t->ne[0]) * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}
bool tr_is_contiguous(const tr_tensor *t);
/* The tensor owning t's memory, and (tr_view_root_at) the byte offset of t's first byte in it. */
static inline const tr_tensor *tr_view_root_at(const tr_tensor *t, size_t *offset)
{
    *offset = 0;
    while (t->op == TR_OP_VIEW) {
        *offset += t->p.view_offset;
        t = t->src[0];
    }
    return t;
}
static inline const tr_tensor *tr_view_root(const tr_tensor *t)
{
    while (t->op == TR_OP_VIEW)
        t = t->src[0];
    return t;
}

/* ---- graphs --------------------------------------------------------------------------------- */

typedef struct tr_graph {
    tr_tensor **nodes; /* ops in execution order (VIEW nodes included) */
    int n_nodes, cap_nodes;
    tr_tensor **leaves; /* tensors with op NONE */
    int n_leaves, cap_leaves;
    struct tr_arena *arena;
    int failed;   /* an allocation failed while building: tr_graph_status reports it */
    int keep_all; /* backends keep every intermediate (no memory reuse): for per-node parity */
} tr_graph;

tr_status tr_graph_init(tr_graph *g);
void tr_graph_free(tr_graph *g);
void tr_graph_reset(tr_graph *g); /* forgets all tensors, keeps the memory for the next build */
tr_status tr_graph_status(const tr_graph *g);

/* Leaves. */
tr_tensor *tr_new_tensor(tr_graph *g, tr_dtype dt, int ndim, const int64_t *ne, const char *name);
tr_tensor *tr_new_tensor_1d(tr_graph *g, tr_dtype dt, int64_t n0, const char *name);
tr_tensor *tr_new_tensor_2d(tr_graph *g, tr_dtype dt, int64_t n0, int64_t n1, const char *name);

/* Ops (each returns NULL and marks the graph failed on a shape error or allocation failure). */
tr_tensor *tr_get_rows(tr_graph *g, tr_tensor *table, tr_tensor *ids);
tr_tensor *tr_rms_norm(tr_graph *g, tr_tensor *x, tr_tensor *w, float eps);
tr_tensor *tr_add(tr_graph *g, tr_tensor *x, tr_tensor *y);
tr_tensor *tr_mul(tr_graph *g, tr_tensor *x, tr_tensor *y);
tr_tensor *tr_matmul(tr_graph *g, tr_tensor *x, tr_tensor *w);
tr_tensor *tr_rope(tr_graph *g, tr_tensor *x, tr_tensor *pos, tr_rope_params p);
/* ROPE with per-pair frequency divisors (src[2], {hd/2} f32; NULL: none). */
tr_tensor *tr_rope_ext(tr_graph *g, tr_tensor *x, tr_tensor *pos, tr_tensor *factors, tr_rope_params p);
tr_tensor *tr_glu(tr_graph *g, tr_tensor *gate, tr_tensor *up, tr_activation act);
tr_tensor *tr_kv_write(tr_graph *g, tr_tensor *cache, tr_tensor *src, int32_t pos0);
tr_tensor *tr_copy(tr_graph *g, tr_tensor *x);
/* CONCAT of n (1..TR_MAX_SRC) tensors of equal width; n == 1 returns srcs[0] itself. */
tr_tensor *tr_concat(tr_graph *g, tr_tensor *const *srcs, int n);
/* CONCAT of any number of tensors: the list folded left in groups of TR_MAX_SRC (the first rows are
 * copied once per group, so callers put the largest pieces last). */
tr_tensor *tr_concat_n(tr_graph *g, tr_tensor *const *srcs, int n);
tr_tensor *tr_attention(tr_graph *g, tr_tensor *q, tr_tensor *k_cache, tr_tensor *v_cache,
                        const tr_attn_params *p);
/* Views. */
tr_tensor *tr_reshape_3d(tr_graph *g, tr_tensor *x, int64_t n0, int64_t n1, int64_t n2);
tr_tensor *tr_view_rows(tr_graph *g, tr_tensor *x, int64_t first_row, int64_t n_rows); /* 2-D */
/* Tokens [t0, t0 + n) of a contiguous {D, T} or {hd, H, T} tensor (its outermost dimension). */
tr_tensor *tr_view_tokens(tr_graph *g, tr_tensor *x, int64_t t0, int64_t n);

void tr_set_name(tr_tensor *t, const char *fmt, ...);

#endif
