/* memplan.c: placing a graph's intermediate tensors in one scratch region.
 *
 * Greedy first-fit over a free list, walking the nodes in execution order: a node gets a block
 * when it is produced and returns it after its last reader. On a LLaMA graph this keeps only a
 * layer's working set alive, instead of every layer's, so prefill of long prompts stays small. */
#include <stdlib.h>

#include "backend.h"

typedef struct block {
    size_t off, size;
} block;

typedef struct plan {
    block *free_list;
    int n_free, cap_free;
    size_t top;  /* end of the used region */
    size_t peak; /* the largest top ever reached: the size the region needs */
} plan;

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static size_t take(plan *p, size_t size)
{
    int best = -1;
    for (int i = 0; i < p->n_free; i++)
        if (p->free_list[i].size >= size && (best < 0 || p->free_list[i].size < p->free_list[best].size))
            best = i;
    if (best >= 0) {
        size_t off = p->free_list[best].off;
        p->free_list[best].off += size;
        p->free_list[best].size -= size;
        if (p->free_list[best].size == 0)
            p->free_list[best] = p->free_list[--p->n_free];
        return off;
    }
    size_t off = p->top;
    p->top += size;
    if (p->top > p->peak)
        p->peak = p->top;
    return off;
}

static void give_back(plan *p, size_t off, size_t size)
{
    /* merge with neighbours, else append */
    for (int i = 0; i < p->n_free; i++) {
        block *b = &p->free_list[i];
        if (b->off + b->size == off) {
            b->size += size;
            for (int j = 0; j < p->n_free; j++)
                if (j != i && p->free_list[j].off == b->off + b->size) {
                    b->size += p->free_list[j].size;
                    p->free_list[j] = p->free_list[--p->n_free];
                    break;
                }
            return;
        }
        if (off + size == b->off) {
            b->off = off;
            b->size += size;
            return;
        }
    }
    if (off + size == p->top) {
        p->top = off;
        return;
    }
    if (p->n_free == p->cap_free) {
        int nc = p->cap_free ? p->cap_free * 2 : 64;
        block *nb = realloc(p->free_list, (size_t)nc * sizeof *nb);
        if (!nb)
            return; /* losing a free block only wastes memory */
        p->free_list = nb;
        p->cap_free = nc;
    }
    p->free_list[p->n_free++] = (block){off, size};
}

/* Does node n own memory in the scratch region? Leaves and views do not. */
static int owns_memory(const tr_tensor *n)
{
    return n->op != TR_OP_NONE && n->op != TR_OP_VIEW && n->op != TR_OP_KV_WRITE;
}

size_t tr_memplan(tr_graph *g, size_t align, int keep_all)
{
    /* last_use[i]: index of the last node reading node i (through views too). While it is
     * computed, each node's offset field holds its own index, so a source's index is one load. */
    int n = g->n_nodes;
    int *last_use = malloc((size_t)(n > 0 ? n : 1) * sizeof *last_use);
    if (!last_use)
        return (size_t)-1;
    for (int i = 0; i < n; i++) {
        last_use[i] = g->nodes[i]->is_output || keep_all ? n : i;
        g->nodes[i]->offset = (size_t)i; /* temporary: node index, for the lookup below */
    }
    /* Map a tensor to its node index; leaves are not in nodes[]. */
#define NODE_INDEX(t) ((t)->op == TR_OP_NONE ? -1 : (int)(t)->offset)
    for (int i = 0; i < n; i++) {
        tr_tensor *t = g->nodes[i];
        for (int s = 0; s < TR_MAX_SRC && t->src[s]; s++) {
            const tr_tensor *src = t->src[s];
            int si = NODE_INDEX(src);
            /* a view keeps its whole chain alive */
            while (si >= 0) {
                if (last_use[si] < i)
                    last_use[si] = i;
                if (src->op != TR_OP_VIEW)
                    break;
                src = src->src[0];
                si = NODE_INDEX(src);
            }
        }
    }
    /* A view's last use extends its root's. */
    for (int i = n - 1; i >= 0; i--) {
        tr_tensor *t = g->nodes[i];
        if (t->op == TR_OP_VIEW) {
            int si = NODE_INDEX(t->src[0]);
            if (si >= 0 && last_use[si] < last_use[i])
                last_use[si] = last_use[i];
        }
    }
#undef NODE_INDEX
    /* frees[i]: nodes whose memory is released after node i runs, as a linked list in next[]. */
    int *head = malloc((size_t)(n + 1) * sizeof *head), *next = malloc((size_t)(n > 0 ? n : 1) * sizeof *next);
    if (!head || !next) {
        free(last_use);
        free(head);
        free(next);
        return (size_t)-1;
    }
    for (int i = 0; i <= n; i++)
        head[i] = -1;
    for (int i = 0; i < n; i++) {
        next[i] = head[last_use[i]];
        head[last_use[i]] = i;
    }
    plan p = {0};
    for (int i = 0; i < n; i++) {
        tr_tensor *t = g->nodes[i];
        if (owns_memory(t))
            t->offset = take(&p, align_up(tr_nbytes(t), align));
        else if (t->op == TR_OP_VIEW)
            t->offset = t->src[0]->op == TR_OP_NONE ? 0 : t->src[0]->offset + t->p.view_offset;
        for (int j = head[i]; j >= 0; j = next[j])
            if (owns_memory(g->nodes[j]))
                give_back(&p, g->nodes[j]->offset, align_up(tr_nbytes(g->nodes[j]), align));
    }
    free(p.free_list);
    free(last_use);
    free(head);
    free(next);
    return p.peak;
}
