/* cl_graph.c: computing a graph on an OpenCL device: place every node, bring host inputs in, enqueue
 * one kernel (or a few, see cl_ops.c) per node on the in-order queue, wait once.
 *
 * Placement (backends/backend.h): intermediates live in one device buffer, the arena, at the
 * offsets of tr_memplan (memory is reused after a node's last reader; g->keep_all keeps all); a
 * VIEW aliases its root plus view_offset; a KV_WRITE node's value is its cache. An arena larger than
 * the device's largest allocation is refused by name (a shorter batch needs less).
 *
 * Host inputs (backends/host_inputs.h): host leaves and the ROPE nodes' (cos, sin) tables are
 * written into one input buffer with one blocking write before the kernels.
 *
 * Guard mode (tr_opencl_debug.guard_nodes): every node gets its own memory with CL_GUARD bytes on
 * each side, the arena is filled with a pattern before the graph runs, and afterwards every byte
 * outside the nodes must still hold it: a kernel that writes past its output is caught even when
 * nothing reads the damaged bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "device_graph.h"
#include "error.h"
#include "host_inputs.h"
#include "cl_internal.h"

#define GUARD_BYTE 0xA5

static size_t plan_align(const cl_ctx *c)
{
    size_t a = c->lim.align_bits / 8;
    return a > 256 ? a : 256;
}

static tr_status ensure_buffer(cl_ctx *c, tr_buffer **buf, size_t need, const char *what)
{
    if (*buf && (*buf)->size >= need)
        return TR_OK;
    cl_buffer_free(*buf);
    *buf = NULL;
    size_t want = cl_align_up(need + need / 8, 4096);
    if (want > c->lim.max_alloc) /* the slack is a nicety; the need itself must fit */
        want = need;
    tr_status s = cl_buffer_alloc(&c->base, want, buf);
    if (s != TR_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", tr_last_error()); /* tr_fail writes where tr_last_error points */
        return tr_fail(s, "opencl: the graph's %s need %zu bytes (a shorter batch needs less): %s", what, need, why);
    }
    return TR_OK;
}

static tr_status upload_inputs(cl_ctx *c, tr_graph *g)
{
    tr_host_inputs *l = &c->in;
    l->align = plan_align(c);
    TR_TRY(tr_host_inputs_gather(l, g, &c->base));
    size_t total = tr_host_inputs_bytes(l);
    if (total == 0)
        return TR_OK;
    TR_TRY(ensure_buffer(c, &c->inputs, total, "inputs"));
    if (c->staging_cap < total) {
        uint8_t *ns = realloc(c->staging, total);
        if (!ns)
            return tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
        c->staging = ns;
        c->staging_cap = total;
    }
    TR_TRY(tr_host_inputs_fill(l, c->staging, &c->base));
    return cl_write(c, c->inputs, 0, c->staging, total);
}

size_t cl_rope_table(cl_ctx *c, const tr_tensor *rope)
{
    size_t off = tr_host_inputs_rope(&c->in, rope);
    return off == (size_t)-1 ? 0 : off;
}

cl_loc cl_loc_of(cl_ctx *c, const tr_tensor *t)
{
    size_t extra;
    const tr_tensor *r = tr_view_root_at(t, &extra);
    if (r->op == TR_OP_KV_WRITE) {
        cl_loc l = cl_loc_of(c, r->src[1]);
        l.off += extra;
        return l;
    }
    if (r->op != TR_OP_NONE || tr_on_backend(r, &c->base))
        return (cl_loc){r->buffer, r->offset + extra};
    size_t off = tr_host_inputs_leaf(&c->in, r);
    return (cl_loc){off == (size_t)-1 ? NULL : c->inputs, off + extra};
}

static tr_status check_guards(cl_ctx *c, tr_graph *g, size_t used)
{
    uint8_t *bytes = malloc(used);
    if (!bytes)
        return tr_fail(TR_ERR_NOMEM, "opencl: out of memory");
    tr_status s = cl_read(c, c->arena, 0, bytes, used);
    if (s == TR_OK)
        s = tr_dev_guard_check(g, bytes, used, GUARD_BYTE, "opencl");
    free(bytes);
    return s;
}

tr_status cl_graph_compute(cl_ctx *c, tr_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const char *why = NULL;
        if (!cl_op_supported(c, g->nodes[i], &why))
            return tr_fail(TR_ERR_UNSUPPORTED, "opencl: op '%s' (node '%s') is not supported: %s",
                           tr_op_name(g->nodes[i]->op), g->nodes[i]->name, why ? why : "unknown");
    }
    int guard = c->dbg.guard_nodes;
    size_t need = guard ? tr_dev_guard_plan(g, plan_align(c), CL_GUARD) : tr_memplan(g, plan_align(c), g->keep_all);
    if (need == (size_t)-1)
        return tr_fail(TR_ERR_NOMEM, "opencl: out of memory planning the graph");
    TR_TRY(ensure_buffer(c, &c->arena, need ? need : 256, "intermediate values"));
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        if (tr_dev_owns_memory(t))
            t->buffer = c->arena;
        t->data = NULL;
    }
    TR_TRY(upload_inputs(c, g));
    for (int i = 0; i < g->n_nodes; i++) { /* views and KV writes alias their roots */
        tr_tensor *t = g->nodes[i];
        if (!tr_dev_owns_memory(t)) {
            cl_loc l = cl_loc_of(c, t);
            t->buffer = l.buf;
            t->offset = l.off;
        }
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++)
            if (!cl_loc_of(c, t->src[s]).buf)
                return tr_fail(TR_ERR_INVALID_ARG, "opencl: source '%s' of node '%s' has no memory", t->src[s]->name,
                               t->name);
    }
    if (guard) {
        uint8_t pattern = GUARD_BYTE;
        TR_TRY(cl_check(clEnqueueFillBuffer(c->queue, cl_buf_of(c->arena)->mem, &pattern, 1, 0, need, 0, NULL, NULL),
                        "clEnqueueFillBuffer"));
    }
    for (int i = 0; i < g->n_nodes; i++) {
        tr_tensor *t = g->nodes[i];
        if (t->op == TR_OP_VIEW)
            continue;
        tr_status s = cl_op_lower(c, t);
        if (s == TR_OK && t->op == c->fault)
            s = cl_op_fault(c, t);
        if (s != TR_OK) {
            clFinish(c->queue); /* what was enqueued runs on memory that stays valid */
            return s;
        }
    }
    TR_TRY(cl_check(clFinish(c->queue), "clFinish after the graph"));
    return guard ? check_guards(c, g, need) : TR_OK;
}
