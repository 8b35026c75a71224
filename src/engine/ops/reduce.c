/*
 * The reductions ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
 * ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp and ReduceSumSquare,
 * and ArgMin.
 *
 * The axes come from the attribute `axes` up to opset 17 and from the
 * optional second input from opset 18 (ReduceSum: from opset 13).  No
 * axes means every axis, unless noop_with_empty_axes asks for the input
 * unchanged.  Values accumulate in double in scratch memory, one
 * accumulator per output element, while the input is read once in order;
 * ReduceLogSumExp subtracts each group's maximum first, so large inputs
 * do not overflow exp.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/core.h"
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

enum rop {
    R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LSE,
    R_SUMSQ
};

static const char *const rop_names[] = {
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceSumSquare"
};

#define N_ROPS ((int)(sizeof(rop_names) / sizeof(rop_names[0])))

struct reduce_params {
    enum rop op;
    int axes_input;              /* axes come from input 1 */
    int keepdims;
    int noop_empty;
    int n_axes;                  /* attribute axes */
    int64_t axes[BMS_MAX_DIMS];
};

/* One call's reduction: which axes, and the output with and without the
 * reduced dims kept. */
struct reduce_plan {
    int noop;
    unsigned char reduced[BMS_MAX_DIMS];
    struct bms_tensor kept;      /* input dims, 1 on reduced axes */
};


enum bms_status bms__reduce_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    struct reduce_params *p;
    enum bms_status rc;
    const int64_t *axes;
    int op = -1;
    int n;

    for (int i = 0; i < N_ROPS; i++) {
        if (strcmp(rop_names[i], node->op_type) == 0) {
            op = i;
        }
    }
    if (op < 0) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "%s: not a reduction",
                            node->op_type);
    }
    rc = bms__math_check_arity(node, 1, 2, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    axes = bms__attr_ints(node, "axes", &n);
    if (n > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: attribute axes has %d values, more than "
                            "%d", node->op_type, n, BMS_MAX_DIMS);
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->op = (enum rop)op;
    p->axes_input = node->opset <= 0 || node->opset >= 18 ||
                    (op == R_SUM && node->opset >= 13);
    p->keepdims = bms__attr_int(node, "keepdims", 1) != 0;
    p->noop_empty = bms__attr_int(node, "noop_with_empty_axes", 0) != 0;
    p->n_axes = n;
    if (n > 0) {
        memcpy(p->axes, axes, sizeof(int64_t) * (size_t)n);
    }
    node->params = p;
    return BMS_OK;
}


static enum bms_status reduce_plan(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct reduce_plan *plan,
                                   struct bms_diag *diag)
{
    const struct reduce_params *p = node->params;
    const struct bms_tensor *x = in[0];
    int64_t axes[BMS_MAX_DIMS];
    int n_axes = p->n_axes;
    enum bms_status rc;

    memcpy(axes, p->axes, sizeof(axes));
    if (p->axes_input && node->n_inputs > 1 && in[1] != NULL) {
        rc = bms__core_read_ints(in[1], "axes", axes, BMS_MAX_DIMS, &n_axes,
                                 diag);
        if (rc != BMS_OK) {
            return rc;
        }
    } else if (p->axes_input) {
        n_axes = 0;
    }
    memset(plan, 0, sizeof(*plan));
    plan->noop = n_axes == 0 && p->noop_empty;
    for (int i = 0; i < n_axes; i++) {
        int a;

        rc = bms__math_axis(node, axes[i], x->n_dims, 0, &a, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        plan->reduced[a] = 1;
    }
    bms__elem_same_shape(&plan->kept, x);
    for (int d = 0; d < x->n_dims; d++) {
        if (n_axes == 0 && !plan->noop) {
            plan->reduced[d] = 1;
        }
        if (plan->reduced[d]) {
            plan->kept.dims[d] = 1;
        }
    }
    return BMS_OK;
}


enum bms_status bms__reduce_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct reduce_params *p = node->params;
    enum bms__elem_kind k = bms__elem_kind(in[0]->dtype);
    struct reduce_plan plan;
    enum bms_status rc;

    if (k == BMS__KIND_NONE || k == BMS__KIND_BOOL) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = reduce_plan(node, in, &plan, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (plan.noop || p->keepdims) {
        *out = plan.kept;
        if (plan.noop) {
            bms__elem_same_shape(out, in[0]);
        }
        return BMS_OK;
    }
    out->dtype = in[0]->dtype;
    out->n_dims = 0;
    for (int d = 0; d < in[0]->n_dims; d++) {
        if (!plan.reduced[d]) {
            out->dims[out->n_dims++] = in[0]->dims[d];
        }
    }
    return BMS_OK;
}


static double acc_init(enum rop op)
{
    switch (op) {
    case R_MAX: case R_LSE: return -INFINITY;
    case R_MIN: return INFINITY;
    case R_PROD: return 1;
    default: return 0;
    }
}


static double acc_step(enum rop op, double acc, double x)
{
    switch (op) {
    case R_MAX: case R_LSE:
        return isnan(x) ? x : (x > acc ? x : acc);
    case R_MIN:
        return isnan(x) ? x : (x < acc ? x : acc);
    case R_PROD: return acc * x;
    case R_L1: return acc + fabs(x);
    case R_L2: case R_SUMSQ: return acc + x * x;
    default: return acc + x;
    }
}


static double acc_final(enum rop op, double acc, double count)
{
    switch (op) {
    case R_MEAN: return acc / count;
    case R_L2: return sqrt(acc);
    case R_LOGSUM: return log(acc);
    default: return acc;
    }
}


enum bms_status bms__reduce_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    const struct reduce_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *kept;
    int64_t n_in = bms_tensor_numel(x);
    int64_t n_out = bms_tensor_numel(out);
    struct reduce_plan plan;
    struct bms__iter it;
    double count;
    double *acc;
    double *max;

    if (reduce_plan(node, in, &plan, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (plan.noop) {
        memcpy(out->data, x->data, bms_tensor_size(x));
        return BMS_OK;
    }
    acc = bms__ctx_scratch(ctx, sizeof(double) * (size_t)(2 * n_out + 1));
    if (acc == NULL) {
        return BMS_ERR_NOMEM;
    }
    max = acc + n_out;
    count = n_out > 0 ? (double)n_in / (double)n_out : 0;
    kept = &plan.kept;
    for (int64_t i = 0; i < n_out; i++) {
        acc[i] = acc_init(p->op);
    }
    bms__iter_init(&it, x->dims, x->n_dims, &kept, 1);
    for (int64_t i = 0; i < n_in; i++, bms__iter_next(&it)) {
        double v = bms__elem_get_f(x->data, x->dtype, i);

        acc[it.off[0]] = acc_step(p->op, acc[it.off[0]], v);
    }
    if (p->op == R_LSE) {
        /* Second pass: the sum of e^(x - max) per group. */
        for (int64_t i = 0; i < n_out; i++) {
            max[i] = isinf(acc[i]) ? 0 : acc[i];
            acc[i] = 0;
        }
        bms__iter_init(&it, x->dims, x->n_dims, &kept, 1);
        for (int64_t i = 0; i < n_in; i++, bms__iter_next(&it)) {
            double v = bms__elem_get_f(x->data, x->dtype, i);

            acc[it.off[0]] += exp(v - max[it.off[0]]);
        }
        for (int64_t i = 0; i < n_out; i++) {
            acc[i] = max[i] + log(acc[i]);
        }
    }
    for (int64_t i = 0; i < n_out; i++) {
        bms__elem_set_f(out->data, out->dtype, i,
                        acc_final(p->op, acc[i], count));
    }
    return BMS_OK;
}


/*
 * ArgMin: the INT64 index of the smallest value along axis; keepdims and
 * select_last_index as ArgMax has them.
 */
struct argmin_params {
    int64_t axis;
    int keepdims;
    int select_last;
};


enum bms_status bms__argmin_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    struct argmin_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->axis = bms__attr_int(node, "axis", 0);
    p->keepdims = bms__attr_int(node, "keepdims", 1) != 0;
    p->select_last = bms__attr_int(node, "select_last_index", 0) != 0;
    node->params = p;
    return BMS_OK;
}


enum bms_status bms__argmin_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct argmin_params *p = node->params;
    const struct bms_tensor *x = in[0];
    enum bms__elem_kind k = bms__elem_kind(x->dtype);
    enum bms_status rc;
    int axis;

    if (k == BMS__KIND_NONE || k == BMS__KIND_BOOL) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    rc = bms__math_axis(node, p->axis, x->n_dims, 0, &axis, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (x->dims[axis] == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "ArgMin: axis %d has no elements", axis);
    }
    out->dtype = BMS_DTYPE_I64;
    out->n_dims = 0;
    for (int d = 0; d < x->n_dims; d++) {
        if (d != axis) {
            out->dims[out->n_dims++] = x->dims[d];
        } else if (p->keepdims) {
            out->dims[out->n_dims++] = 1;
        }
    }
    return BMS_OK;
}


enum bms_status bms__argmin_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    const struct argmin_params *p = node->params;
    const struct bms_tensor *x = in[0];
    int64_t *y = out->data;
    int64_t outer;
    int64_t inner;
    int64_t n;
    int axis;

    (void)ctx;
    if (bms__math_axis(node, p->axis, x->n_dims, 0, &axis, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    outer = bms__math_span(x->dims, 0, axis);
    n = x->dims[axis];
    inner = bms__math_span(x->dims, axis + 1, x->n_dims);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            double best = bms__elem_get_f(x->data, x->dtype, base);
            int64_t at = 0;

            for (int64_t j = 1; j < n; j++) {
                double v = bms__elem_get_f(x->data, x->dtype,
                                           base + j * inner);

                if (v < best || (p->select_last && v == best)) {
                    best = v;
                    at = j;
                }
            }
            y[o * inner + i] = at;
        }
    }
    return BMS_OK;
}
