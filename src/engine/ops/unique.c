/*
 * Unique: the distinct elements of a tensor (flattened), or the distinct
 * slices along an axis, with the index of each one's first occurrence,
 * the inverse map from every input element or slice to its unique entry,
 * and how often each occurs.  sorted=1 (the default) orders the uniques
 * ascending, slices lexicographically as numpy.unique does; sorted=0
 * keeps the order of first occurrence.
 *
 * The count of uniques is the output's dim, so it comes from the data:
 * without it, at load, infer answers BMS_ERR_UNAVAILABLE.  Floats compare
 * by value with NaN above every number and all NaNs equal (numpy's
 * equal_nan).  Both steps sort an index array, O(n log n): infer with a
 * block of its own, run in scratch memory.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

/* How the input splits into the items that are compared: n_items of
 * item_len elements each, item i's element j at (o * n_items + i) *
 * inner + r where j = o * inner + r (o < outer, r < inner). */
struct items {
    const struct bms_tensor *x;
    enum bms__elem_kind kind;
    int has_axis;
    int axis;
    int64_t n_items;
    int64_t outer;
    int64_t inner;
};

/* A sort key: one item, and the layout to compare it by. */
struct key {
    int64_t i;
    const struct items *it;
};

/* One unique item: its first occurrence, its count and where its
 * members start among the sorted keys. */
struct group {
    int64_t first;
    int64_t count;
    int64_t start;
};


enum bms_status bms__unique_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    return bms__math_check_arity(node, 1, 1, 1, 4, diag);
}


static enum bms_status items_init(const struct bms__node *node,
                                  const struct bms_tensor *x,
                                  struct items *it, struct bms_diag *diag)
{
    const struct bms__attr *a = bms__attr_find(node, "axis");
    enum bms_status rc;

    memset(it, 0, sizeof(*it));
    it->x = x;
    it->kind = bms__elem_kind(x->dtype);
    if (it->kind == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    it->has_axis = a != NULL && a->type == BMS__ATTR_INT;
    if (!it->has_axis) {
        it->n_items = bms_tensor_numel(x);
        it->outer = 1;
        it->inner = 1;
        return BMS_OK;
    }
    rc = bms__math_axis(node, a->i, x->n_dims, 0, &it->axis, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    it->n_items = x->dims[it->axis];
    it->outer = bms__math_span(x->dims, 0, it->axis);
    it->inner = bms__math_span(x->dims, it->axis + 1, x->n_dims);
    return BMS_OK;
}


/* Compare element values of one datatype kind; NaN above all, NaNs
 * equal. */
static int cmp_value(const struct items *it, int64_t ea, int64_t eb)
{
    const void *d = it->x->data;
    enum bms_dtype dt = it->x->dtype;

    if (it->kind == BMS__KIND_FLOAT) {
        double a = bms__elem_get_f(d, dt, ea);
        double b = bms__elem_get_f(d, dt, eb);

        if (isnan(a) || isnan(b)) {
            return isnan(a) - isnan(b);
        }
        return a < b ? -1 : a > b;
    }
    if (it->kind == BMS__KIND_UNSIGNED) {
        return bms__elem_cmp_u(bms__elem_get_i(d, dt, ea),
                               bms__elem_get_i(d, dt, eb));
    }
    {
        int64_t a = bms__elem_get_i(d, dt, ea);
        int64_t b = bms__elem_get_i(d, dt, eb);

        return a < b ? -1 : a > b;
    }
}


/* Items a and b compared element by element. */
static int cmp_items(const struct items *it, int64_t a, int64_t b)
{
    for (int64_t o = 0; o < it->outer; o++) {
        for (int64_t r = 0; r < it->inner; r++) {
            int64_t base = o * it->n_items;
            int c = cmp_value(it, (base + a) * it->inner + r,
                              (base + b) * it->inner + r);

            if (c != 0) {
                return c;
            }
        }
    }
    return 0;
}


/* By value, then by position, so each group starts at its first
 * occurrence. */
static int by_item(const void *pa, const void *pb)
{
    const struct key *a = pa;
    const struct key *b = pb;
    int c = cmp_items(a->it, a->i, b->i);

    if (c != 0) {
        return c;
    }
    return a->i < b->i ? -1 : a->i > b->i;
}


static int by_first(const void *pa, const void *pb)
{
    const struct group *a = pa;
    const struct group *b = pb;

    return a->first < b->first ? -1 : a->first > b->first;
}


/* Sort the keys and collect the groups; returns the number of groups. */
static int64_t find_groups(const struct items *it, struct key *keys,
                           struct group *groups, int sorted)
{
    int64_t n_groups = 0;

    for (int64_t i = 0; i < it->n_items; i++) {
        keys[i].i = i;
        keys[i].it = it;
    }
    qsort(keys, (size_t)it->n_items, sizeof(*keys), by_item);
    for (int64_t i = 0; i < it->n_items; i++) {
        if (i == 0 || cmp_items(it, keys[i - 1].i, keys[i].i) != 0) {
            groups[n_groups].first = keys[i].i;
            groups[n_groups].count = 0;
            groups[n_groups].start = i;
            n_groups++;
        }
        groups[n_groups - 1].count++;
    }
    if (!sorted) {
        qsort(groups, (size_t)n_groups, sizeof(*groups), by_first);
    }
    return n_groups;
}


static size_t work_size(int64_t n_items)
{
    return (size_t)n_items * (sizeof(struct key) + sizeof(struct group));
}


enum bms_status bms__unique_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int sorted = bms__attr_int(node, "sorted", 1) != 0;
    struct items it;
    enum bms_status rc;
    int64_t n_unique;
    void *work;

    rc = items_init(node, x, &it, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (x->data == NULL || it.n_items < 0) {
        return BMS_ERR_UNAVAILABLE;
    }
    work = malloc(work_size(it.n_items) + 1);
    if (work == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "Unique: out of memory");
    }
    n_unique = find_groups(&it, work,
                           (struct group *)((struct key *)work +
                                            it.n_items), sorted);
    free(work);
    if (it.has_axis) {
        bms__elem_same_shape(&out[0], x);
        out[0].dims[it.axis] = n_unique;
    } else {
        out[0].dtype = x->dtype;
        out[0].n_dims = 1;
        out[0].dims[0] = n_unique;
    }
    for (int j = 1; j < node->n_outputs && j < 4; j++) {
        out[j].dtype = BMS_DTYPE_I64;
        out[j].n_dims = 1;
        out[j].dims[0] = j == 2 ? it.n_items : n_unique;
    }
    return BMS_OK;
}


/* Copy item i of the input into slot u of y (which holds n_unique). */
static void copy_item(const struct items *it, struct bms_tensor *y,
                      int64_t n_unique, int64_t i, int64_t u)
{
    size_t size = bms_dtype_size(it->x->dtype);

    for (int64_t o = 0; o < it->outer; o++) {
        memcpy((char *)y->data +
                   (size_t)((o * n_unique + u) * it->inner) * size,
               (const char *)it->x->data +
                   (size_t)((o * it->n_items + i) * it->inner) * size,
               (size_t)it->inner * size);
    }
}


enum bms_status bms__unique_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out, struct bms__ctx *ctx)
{
    int sorted = bms__attr_int(node, "sorted", 1) != 0;
    int64_t *indices = out[1].data;
    int64_t *inverse = out[2].data;
    int64_t *counts = out[3].data;
    struct items it;
    struct key *keys;
    struct group *groups;
    int64_t n_unique;

    if (items_init(node, in[0], &it, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    keys = bms__ctx_scratch(ctx, work_size(it.n_items) + 1);
    if (keys == NULL) {
        return BMS_ERR_NOMEM;
    }
    groups = (struct group *)(keys + it.n_items);
    n_unique = find_groups(&it, keys, groups, sorted);
    if (n_unique != (it.has_axis ? out[0].dims[it.axis] : out[0].dims[0])) {
        return BMS_ERR_INTERNAL;
    }
    for (int64_t u = 0; u < n_unique; u++) {
        const struct group *g = &groups[u];

        copy_item(&it, &out[0], n_unique, g->first, u);
        if (node->n_outputs > 1) {
            indices[u] = g->first;
        }
        if (node->n_outputs > 2) {
            for (int64_t m = 0; m < g->count; m++) {
                inverse[keys[g->start + m].i] = u;
            }
        }
        if (node->n_outputs > 3) {
            counts[u] = g->count;
        }
    }
    return BMS_OK;
}
