/* parity.c: per-node capture for `transit parity`, and the fault-injection switch. */
#include "parity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

void tr_fault_read(const char *who, tr_op *op, int *diff_subtract)
{
    const char *want = getenv("TRANSIT_FAULT");
    *op = TR_OP_NONE;
    for (int i = 1; want && i < TR_OP_COUNT; i++)
        if (strcmp(tr_op_name((tr_op)i), want) == 0)
            *op = (tr_op)i;
    *diff_subtract = want && strcmp(want, "diff_subtract") == 0;
    if (*op != TR_OP_NONE)
        tr_log("%s: TRANSIT_FAULT=%s: its kernel is deliberately broken", who, tr_op_name(*op));
    if (*diff_subtract)
        tr_log("%s: TRANSIT_FAULT=diff_subtract: differential attention adds where it should subtract", who);
}

void tr_node_values_free(tr_node_values *v)
{
    for (int i = 0; v->nodes && i < v->n; i++)
        free(v->nodes[i].data);
    free(v->nodes);
    memset(v, 0, sizeof *v);
}

tr_status tr_eval_capture(tr_context *c, const int32_t *ids, int n, tr_node_values *out)
{
    memset(out, 0, sizeof *out);
    tr_model *m = c->model;
    if (n < 1 || n > c->n_batch)
        return tr_fail(TR_ERR_RANGE, "parity: %d tokens do not fit one batch of %d", n, c->n_batch);
    tr_context_reset(c);
    tr_tensor *logits;
    c->n_seg = 1;
    c->seg[0] = (tr_segment){0, 0, n};
    TR_TRY(tr_context_plan(c, ids, n));
    TR_TRY(tr_context_compute(c, ids, n, n, 1, &logits));
    out->nodes = calloc((size_t)c->graph.n_nodes, sizeof *out->nodes);
    if (!out->nodes)
        return tr_fail(TR_ERR_NOMEM, "parity: out of memory");
    for (int i = 0; i < c->graph.n_nodes; i++) {
        const tr_tensor *t = c->graph.nodes[i];
        if (t->op == TR_OP_VIEW || t->op == TR_OP_KV_WRITE || t->dtype != TR_F32)
            continue;
        tr_node_value *v = &out->nodes[out->n];
        if (t->name[0])
            snprintf(v->name, sizeof v->name, "%s", t->name);
        else
            snprintf(v->name, sizeof v->name, "%s#%d", tr_op_name(t->op), i);
        v->op = t->op;
        v->count = tr_nelements(t);
        v->data = malloc((size_t)v->count * sizeof(float));
        out->n++;
        tr_status s = v->data ? tr_tensor_get(m->backend, t, v->data) : TR_ERR_NOMEM;
        if (s != TR_OK) {
            tr_node_values_free(out);
            return s == TR_ERR_NOMEM ? tr_fail(s, "parity: out of memory") : s;
        }
    }
    tr_context_commit(c);
    return TR_OK;
}
