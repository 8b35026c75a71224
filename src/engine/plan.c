/*
 * The memory plan: lifetimes of a run's buffers and their offsets in one
 * arena (engine/plan.h).  Placement is a greedy best fit over lifetimes:
 * largest buffers first, each in the tightest gap that the buffers alive
 * at the same time leave.  Two buffers whose lifetimes share a node never
 * overlap in bytes, so a kernel never writes over its own inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/plan.h"

/* One buffer to place: a slot with its lifetime in node indices. */
struct item {
    int slot;
    int start;
    int end;                     /* n_nodes: lives to the end of the run */
    size_t size;                 /* bytes */
};

/* A byte range already taken by a buffer that overlaps in time. */
struct range {
    size_t offset;
    size_t size;
};


int bms__plan_signature(const struct bms_model *model,
                        const struct bms_tensor *inputs, int64_t *sig)
{
    int n = 0;

    for (int i = 0; i < model->n_inputs; i++) {
        sig[n++] = inputs[i].n_dims;
        for (int d = 0; d < inputs[i].n_dims; d++) {
            sig[n++] = inputs[i].dims[d];
        }
    }
    return n;
}


int bms__plan_matches(const struct bms__plan *plan, const int64_t *sig,
                      int sig_len)
{
    return plan->offset != NULL && plan->sig_len == sig_len &&
           memcmp(plan->sig, sig, (size_t)sig_len * sizeof(int64_t)) == 0;
}


void bms__plan_fini(struct bms__plan *plan)
{
    free(plan->sig);
    free(plan->offset);
    free(plan->size);
    memset(plan, 0, sizeof(*plan));
}


/* Each slot's first and last node.  root[v] is the buffer whose bytes
 * value v is (-1: an input, an initializer or a view of one), so that
 * reading a view extends its buffer's life. */
static void find_lifetimes(const struct bms_model *m,
                           const struct bms__plan_trace *tr, int *root,
                           struct item *items)
{
    for (int v = 0; v < m->n_values; v++) {
        root[v] = -1;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const struct bms__node *node = &m->nodes[i];

        for (int k = 0; k < node->n_inputs; k++) {
            int r = node->inputs[k] >= 0 ? root[node->inputs[k]] : -1;

            if (r >= 0 && items[r].end < i) {
                items[r].end = i;
            }
        }
        for (int j = 0; j < node->n_outputs; j++) {
            int s = tr->first[i] + j;
            int v = node->outputs[j];

            items[s] = (struct item){s, i, i, tr->view[s] ? 0 : tr->size[s]};
            if (v < 0) {
                continue;
            }
            if (!tr->view[s]) {
                root[v] = s;
            } else if (node->n_inputs > 0 && node->inputs[0] >= 0) {
                root[v] = root[node->inputs[0]];
            }
        }
    }
    for (int j = 0; j < m->n_outputs; j++) {
        int r = root[m->output_values[j]];

        if (r >= 0) {
            items[r].end = m->n_nodes;
        }
    }
}


/* Largest first; ties by first use, then slot, so plans are repeatable. */
static int item_cmp(const void *pa, const void *pb)
{
    const struct item *a = pa;
    const struct item *b = pb;

    if (a->size != b->size) {
        return a->size > b->size ? -1 : 1;
    }
    if (a->start != b->start) {
        return a->start < b->start ? -1 : 1;
    }
    return (a->slot > b->slot) - (a->slot < b->slot);
}


static int range_cmp(const void *pa, const void *pb)
{
    const struct range *a = pa;
    const struct range *b = pb;

    return (a->offset > b->offset) - (a->offset < b->offset);
}


/* The offset for item c among the placed items that overlap it in time:
 * the smallest gap that holds it, else the top of them. */
static size_t best_fit(const struct item *c, const struct item *placed,
                       int n_placed, const size_t *offset,
                       struct range *ranges)
{
    size_t best = BMS__PLAN_NONE;
    size_t best_gap = SIZE_MAX;
    size_t cursor = 0;
    int n = 0;

    for (int p = 0; p < n_placed; p++) {
        if (placed[p].start <= c->end && c->start <= placed[p].end) {
            ranges[n].offset = offset[placed[p].slot];
            ranges[n].size = placed[p].size;
            n++;
        }
    }
    qsort(ranges, (size_t)n, sizeof(*ranges), range_cmp);
    for (int r = 0; r < n; r++) {
        if (ranges[r].offset > cursor) {
            size_t gap = ranges[r].offset - cursor;

            if (gap >= c->size && gap < best_gap) {
                best = cursor;
                best_gap = gap;
            }
        }
        if (ranges[r].offset + ranges[r].size > cursor) {
            cursor = ranges[r].offset + ranges[r].size;
        }
    }
    return best != BMS__PLAN_NONE ? best : cursor;
}


/* Place the buffers (items[0 .. n) sorted) and fill plan's offsets. */
static void place(struct item *items, int n, struct range *ranges,
                  struct bms__plan *plan)
{
    for (int a = 0; a < n; a++) {
        size_t at = best_fit(&items[a], items, a, plan->offset, ranges);

        plan->offset[items[a].slot] = at;
        plan->size[items[a].slot] = items[a].size;
        plan->total_size += items[a].size;
        if (at + items[a].size > plan->arena_size) {
            plan->arena_size = at + items[a].size;
        }
    }
    plan->n_buffers = n;
}


enum bms_status bms__plan_build(const struct bms_model *model,
                                const struct bms__plan_trace *trace,
                                const int64_t *sig, int sig_len,
                                struct bms__plan *plan)
{
    size_t n_s = (size_t)trace->n_slots + 1;
    int *root = malloc(((size_t)model->n_values + 1) * sizeof(int));
    struct item *items = malloc(n_s * sizeof(*items));
    struct range *ranges = malloc(n_s * sizeof(*ranges));
    enum bms_status rc = BMS_ERR_NOMEM;
    int n = 0;

    memset(plan, 0, sizeof(*plan));
    plan->sig = malloc(((size_t)sig_len + 1) * sizeof(int64_t));
    plan->offset = malloc(n_s * sizeof(size_t));
    plan->size = calloc(n_s, sizeof(size_t));
    if (root == NULL || items == NULL || ranges == NULL ||
        plan->sig == NULL || plan->offset == NULL || plan->size == NULL) {
        bms__plan_fini(plan);
        goto out;
    }
    memcpy(plan->sig, sig, (size_t)sig_len * sizeof(int64_t));
    plan->sig_len = sig_len;
    plan->n_slots = trace->n_slots;
    find_lifetimes(model, trace, root, items);
    /* Views and empty slots have no bytes of their own: drop them. */
    for (int s = 0; s < trace->n_slots; s++) {
        plan->offset[s] = BMS__PLAN_NONE;
        if (items[s].size > 0) {
            items[n++] = items[s];
        }
    }
    qsort(items, (size_t)n, sizeof(*items), item_cmp);
    place(items, n, ranges, plan);
    rc = BMS_OK;
out:
    free(ranges);
    free(items);
    free(root);
    return rc;
}
