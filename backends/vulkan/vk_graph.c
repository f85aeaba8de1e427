/* vk_graph.c: computing a graph on the device: place every node, bring host inputs in, record one
 * dispatch (or a few, see vk_ops.c) per node into one command buffer, submit, wait.
 *
 * Placement (backends/backend.h): intermediates live in one device buffer, the arena, at the
 * offsets of tr_memplan (memory is reused after a node's last reader; g->keep_all keeps all);
 * a VIEW aliases its root plus view_offset; a KV_WRITE node's value is its cache. Every placed node
 * gets buffer/offset and data = NULL (the graph may have run on the CPU backend before).
 *
 * Host inputs (backends/host_inputs.h): leaves with no buffer of this backend (token ids,
 * positions; in tests any leaf) and the (cos, sin) tables of the ROPE nodes are written into a
 * staging buffer and, at the start of the command buffer, copied into the device input buffer.
 *
 * Guard mode (tr_vulkan_debug.guard_nodes): every node gets its own memory with VK_GUARD bytes on
 * each side, the whole arena is filled with a pattern before the graph runs, and afterwards every
 * byte outside the nodes must still hold it: a kernel that writes past its output is caught even
 * when nothing reads the damaged bytes. */
#include <math.h>
#include <stdlib.h>

#include "device_graph.h"
#include "error.h"
#include "host_inputs.h"
#include "vk_internal.h"

#define GUARD_WORD 0xA5A5A5A5u

static size_t plan_align(const vk_ctx *c) { return c->lim.bind_align > 256 ? c->lim.bind_align : 256; }

static tr_status ensure_buffer(vk_ctx *c, tr_buffer **buf, size_t need)
{
    if (*buf && (*buf)->size >= need)
        return TR_OK;
    if (*buf)
        vk_tr_buffer_free(*buf);
    *buf = NULL;
    return vk_tr_buffer_alloc(&c->base, vk_align_up(need + need / 8, 4096), buf);
}

/* ---- host inputs (backends/host_inputs.h) -------------------------------------------------- */

/* Finds every host leaf the nodes read and every RoPE table they need, and stages them. */
static tr_status gather_inputs(vk_ctx *c, tr_graph *g)
{
    c->in.align = plan_align(c);
    TR_TRY(tr_host_inputs_gather(&c->in, g, &c->base));
    size_t total = tr_host_inputs_bytes(&c->in);
    if (total == 0)
        return TR_OK;
    TR_TRY(ensure_buffer(c, &c->inputs, total));
    if (c->input_staging.size < total) {
        vk_buffer_destroy(c, &c->input_staging);
        TR_TRY(vk_buffer_create(c, c->inputs->size, 1, &c->input_staging));
    }
    return tr_host_inputs_fill(&c->in, c->input_staging.mapped, &c->base);
}

size_t vk_rope_table(vk_ctx *c, const tr_tensor *rope)
{
    size_t off = tr_host_inputs_rope(&c->in, rope);
    return off == (size_t)-1 ? 0 : off; /* gather_inputs made it */
}

vk_loc vk_loc_of(vk_ctx *c, const tr_tensor *t)
{
    size_t extra;
    const tr_tensor *r = tr_view_root_at(t, &extra);
    if (r->op == TR_OP_KV_WRITE) {
        vk_loc l = vk_loc_of(c, r->src[1]);
        l.off += extra;
        return l;
    }
    if (r->op != TR_OP_NONE || tr_on_backend(r, &c->base))
        return (vk_loc){r->buffer, r->offset + extra};
    size_t off = tr_host_inputs_leaf(&c->in, r);
    return (vk_loc){c->inputs, (off == (size_t)-1 ? 0 : off) + extra};
}

/* ---- the graph ------------------------------------------------------------------------------ */

static tr_status check_guards(vk_ctx *c, tr_graph *g, size_t used)
{
    uint8_t *bytes = malloc(used);
    if (!bytes)
        return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory");
    tr_status s = vk_read(c, vk_buf(c->arena), 0, bytes, used);
    if (s == TR_OK)
        s = tr_dev_guard_check(g, bytes, used, GUARD_WORD & 0xff, "vulkan");
    free(bytes);
    return s;
}

tr_status vk_graph_compute(vk_ctx *c, tr_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const char *why = NULL;
        if (!vk_op_supported(c, g->nodes[i], &why))
            return tr_fail(TR_ERR_UNSUPPORTED, "vulkan: op '%s' (node '%s') is not supported: %s",
                           tr_op_name(g->nodes[i]->op), g->nodes[i]->name, why ? why : "unknown");
    }
    int guard = c->dbg.guard_nodes;
    size_t need = guard ? tr_dev_guard_plan(g, plan_align(c), VK_GUARD) : tr_memplan(g, plan_align(c), g->keep_all);
    if (need == (size_t)-1)
        return tr_fail(TR_ERR_NOMEM, "vulkan: out of memory planning the graph");
    TR_TRY(ensure_buffer(c, &c->arena, need ? need : 256));
    size_t scratch = 0; /* sized before recording: a buffer freed by a resize would still be in use */
    for (int i = 0; i < g->n_nodes; i++)
        if (vk_op_scratch_bytes(c, g->nodes[i]) > scratch)
            scratch = vk_op_scratch_bytes(c, g->nodes[i]);
    if (scratch)
        TR_TRY(ensure_buffer(c, &c->scratch, scratch));
    c->arena_size = c->arena->size;
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        if (tr_dev_owns_memory(t))
            t->buffer = c->arena;
        t->data = NULL;
    }
    TR_TRY(gather_inputs(c, g));
    for (int i = 0; i < g->n_nodes; i++) { /* views and KV writes alias their roots */
        tr_tensor *t = g->nodes[i];
        if (!tr_dev_owns_memory(t)) {
            vk_loc l = vk_loc_of(c, t);
            t->buffer = l.buf;
            t->offset = l.off;
        }
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++)
            if (!vk_loc_of(c, t->src[s]).buf)
                return tr_fail(TR_ERR_INVALID_ARG, "vulkan: source '%s' of node '%s' has no memory", t->src[s]->name,
                               t->name);
    }

    TR_TRY(vk_cmd_begin(c));
    if (c->in.n)
        vk_cmd_copy(c, &c->input_staging, 0, vk_buf(c->inputs), 0, tr_host_inputs_bytes(&c->in));
    if (guard)
        vk_cmd_fill(c, vk_buf(c->arena), 0, need, GUARD_WORD);
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        if (t->op == TR_OP_VIEW)
            continue;
        tr_status s = vk_op_lower(c, t);
        if (s == TR_OK && t->op == c->fault)
            s = vk_op_fault(c, t);
        if (s != TR_OK) {
            vk_cmd_abandon(c); /* nothing recorded so far runs */
            return s;
        }
    }
    TR_TRY(vk_cmd_submit(c));
    return guard ? check_guards(c, g, need) : TR_OK;
}
