/* host_inputs.c: the inputs a device backend copies in before a graph (host_inputs.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "backend.h"
#include "host_inputs.h"

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

const void *tr_host_data(const tr_tensor *leaf)
{
    if (leaf->buffer && leaf->buffer->host)
        return (const char *)leaf->buffer->host + leaf->offset;
    return leaf->data;
}

static tr_host_input leaf_key(const tr_tensor *leaf) { return (tr_host_input){.key = leaf}; }

static tr_host_input rope_key(const tr_tensor *rope)
{
    return (tr_host_input){.key = rope->src[1], .theta = rope->p.rope.theta, .hd = rope->ne[0],
                           .freq_scale = rope->p.rope.freq_scale, .factors = rope->src[2]};
}

static const tr_host_input *find(const tr_host_inputs *l, const tr_host_input *k)
{
    for (int i = 0; i < l->n; i++) {
        const tr_host_input *in = &l->in[i];
        if (in->key == k->key && in->theta == k->theta && in->hd == k->hd && in->freq_scale == k->freq_scale &&
            in->factors == k->factors)
            return in;
    }
    return NULL;
}

static tr_status add(tr_host_inputs *l, tr_host_input k, size_t size)
{
    if (find(l, &k))
        return TR_OK;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        tr_host_input *ni = realloc(l->in, (size_t)nc * sizeof *ni);
        if (!ni)
            return tr_fail(TR_ERR_NOMEM, "out of memory collecting a graph's inputs");
        l->in = ni;
        l->cap = nc;
    }
    k.off = l->n ? align_up(l->in[l->n - 1].off + l->in[l->n - 1].size, l->align) : 0;
    k.size = size;
    l->in[l->n++] = k;
    return TR_OK;
}

tr_status tr_host_inputs_gather(tr_host_inputs *l, const tr_graph *g, const tr_backend *b)
{
    l->n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const tr_tensor *t = g->nodes[i];
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++) {
            const tr_tensor *r = tr_view_root(t->src[s]);
            if (r->op != TR_OP_NONE || tr_on_backend(r, b))
                continue;
            if (!tr_host_data(r))
                return tr_fail(TR_ERR_INVALID_ARG, "source '%s' of node '%s' has no memory", r->name, t->name);
            TR_TRY(add(l, leaf_key(r), tr_nbytes(r)));
        }
        if (t->op == TR_OP_ROPE)
            TR_TRY(add(l, rope_key(t), (size_t)t->src[1]->ne[0] * (size_t)(t->ne[0] / 2) * 2 * sizeof(float)));
    }
    return TR_OK;
}

void tr_host_inputs_free(tr_host_inputs *l)
{
    free(l->in);
    *l = (tr_host_inputs){0};
}

size_t tr_host_inputs_bytes(const tr_host_inputs *l)
{
    return l->n ? align_up(l->in[l->n - 1].off + l->in[l->n - 1].size, 16) : 0;
}

/* Reads a leaf (or a view of one) a RoPE table is made from: b's buffer, or host memory. */
static tr_status read_leaf(tr_backend *b, const tr_tensor *t, void *out)
{
    size_t extra;
    const tr_tensor *r = tr_view_root_at(t, &extra);
    if (tr_on_backend(r, b))
        return b->iface->download(r->buffer, r->offset + extra, out, tr_nbytes(t));
    const void *src = tr_host_data(r);
    if (!src)
        return tr_fail(TR_ERR_INVALID_ARG, "%s: rope operand '%s' has no memory", b->iface->name, t->name);
    memcpy(out, (const char *)src + extra, tr_nbytes(t));
    return TR_OK;
}

/* (cos, sin) of pos[t] * freq_scale * theta^(-2i/hd) / factors[i] for i < hd/2, as rope_f32_ref
 * computes the angle (the same operations in the same order, in double). */
static tr_status fill_rope_table(const tr_host_input *in, tr_backend *b, float *dst)
{
    const tr_tensor *pos = in->key;
    int64_t T = pos->ne[0], half = in->hd / 2;
    int32_t *p = malloc((size_t)T * sizeof *p);
    float *f = in->factors ? malloc((size_t)half * sizeof *f) : NULL;
    if (!p || (in->factors && !f)) {
        free(p);
        free(f);
        return tr_fail(TR_ERR_NOMEM, "out of memory making a RoPE table");
    }
    tr_status s = read_leaf(b, pos, p);
    if (s == TR_OK && f)
        s = read_leaf(b, in->factors, f);
    for (int64_t t = 0; s == TR_OK && t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)p[t] * (double)in->freq_scale *
                           pow((double)in->theta, -2.0 * (double)i / (double)in->hd) / (f ? (double)f[i] : 1.0);
            dst[2 * (t * half + i)] = (float)cos(angle);
            dst[2 * (t * half + i) + 1] = (float)sin(angle);
        }
    free(p);
    free(f);
    return s;
}

tr_status tr_host_inputs_fill(const tr_host_inputs *l, uint8_t *dst, tr_backend *b)
{
    for (int i = 0; i < l->n; i++) {
        const tr_host_input *in = &l->in[i];
        if (in->hd)
            TR_TRY(fill_rope_table(in, b, (float *)(dst + in->off)));
        else
            memcpy(dst + in->off, tr_host_data(in->key), in->size);
    }
    return TR_OK;
}

size_t tr_host_inputs_leaf(const tr_host_inputs *l, const tr_tensor *leaf)
{
    tr_host_input k = leaf_key(leaf);
    const tr_host_input *in = find(l, &k);
    return in ? in->off : (size_t)-1;
}

size_t tr_host_inputs_rope(const tr_host_inputs *l, const tr_tensor *rope)
{
    tr_host_input k = rope_key(rope);
    const tr_host_input *in = find(l, &k);
    return in ? in->off : (size_t)-1;
}
