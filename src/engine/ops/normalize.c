/*
 * Normalisations over groups of elements: LayerNormalization,
 * InstanceNormalization, MeanVarianceNormalization, LRN, and the
 * group-wise picks GlobalMaxPool and Hardmax, over F32 and F64.
 *
 * Means and variances are taken in double with two passes over each
 * group (mean first, then the squared deviations), which stays accurate
 * for groups with a large common offset.  F32 LayerNormalization with a
 * scale and bias of one row each (the usual case) runs row by row in
 * float through bms__vec_layernorm, still in two passes, as ONNX's
 * stash_type 1 function body computes it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"
#include "engine/ops/vecmath.h"


static int is_op(const struct bms__node *node, const char *name)
{
    return strcmp(node->op_type, name) == 0;
}


enum bms_status bms__normalize_prepare(struct bms__node *node,
                                       struct bms_diag *diag)
{
    if (is_op(node, "LayerNormalization")) {
        if (bms__attr_int(node, "stash_type", 1) != 1) {
            return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                                "LayerNormalization: stash_type %lld not "
                                "supported",
                                (long long)bms__attr_int(node, "stash_type",
                                                         1));
        }
        return bms__math_check_arity(node, 2, 3, 1, 3, diag);
    }
    if (is_op(node, "InstanceNormalization")) {
        return bms__math_check_arity(node, 3, 3, 1, 1, diag);
    }
    if (is_op(node, "LRN") && bms__attr_int(node, "size", 0) <= 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "LRN: size must be positive");
    }
    return bms__math_check_arity(node, 1, 1, 1, 1, diag);
}


/* The reduced axis as [outer, n, inner]: LayerNormalization normalises
 * over dims [axis, rank) (inner 1); Hardmax before opset 13 too, after it
 * over the one dim at axis. */
static enum bms_status group_axis(const struct bms__node *node,
                                  const struct bms_tensor *x, int *axis,
                                  struct bms_diag *diag)
{
    int64_t dflt = is_op(node, "Hardmax") && node->opset > 0 &&
                   node->opset < 13 ? 1 : -1;

    return bms__math_axis(node, bms__attr_int(node, "axis", dflt),
                          x->n_dims, 0, axis, diag);
}


static enum bms_status layernorm_infer(const struct bms__node *node,
                                       const struct bms_tensor *const *in,
                                       struct bms_tensor *out,
                                       struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    struct bms_tensor inner = {0};
    struct bms_tensor shape;
    enum bms_status rc;
    int axis;

    rc = group_axis(node, x, &axis, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    inner.n_dims = x->n_dims - axis;
    memcpy(inner.dims, x->dims + axis, sizeof(int64_t) * (size_t)inner.n_dims);
    for (int k = 1; k < node->n_inputs; k++) {
        const struct bms_tensor *ops[2] = {&inner, in[k]};

        if (in[k] == NULL) {
            continue;
        }
        rc = bms__bcast_dims(node, ops, 2, &shape, diag);
        if (rc != BMS_OK || in[k]->dtype != x->dtype ||
            shape.n_dims != inner.n_dims ||
            memcmp(shape.dims, inner.dims,
                   sizeof(int64_t) * (size_t)inner.n_dims) != 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "LayerNormalization: input %d does not "
                                "broadcast to the normalised dims", k);
        }
    }
    bms__elem_same_shape(&out[0], x);
    for (int j = 1; j < node->n_outputs; j++) {
        bms__elem_same_shape(&out[j], x);
        for (int d = axis; d < x->n_dims; d++) {
            out[j].dims[d] = 1;
        }
    }
    return BMS_OK;
}


enum bms_status bms__normalize_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int axis;

    if (bms__elem_kind(x->dtype) != BMS__KIND_FLOAT) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (is_op(node, "LayerNormalization")) {
        return layernorm_infer(node, in, out, diag);
    }
    if (is_op(node, "Hardmax")) {
        bms__elem_same_shape(out, x);
        return group_axis(node, x, &axis, diag);
    }
    if (x->n_dims < 2 && !is_op(node, "MeanVarianceNormalization")) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: input must be [N, C, ...]", node->op_type);
    }
    if (is_op(node, "InstanceNormalization")) {
        for (int k = 1; k < 3; k++) {
            if (in[k]->dtype != x->dtype || bms_tensor_numel(in[k]) !=
                                                x->dims[1]) {
                return bms_diag_set(diag, BMS_ERR_INVALID,
                                    "InstanceNormalization: input %d must "
                                    "hold C values", k);
            }
        }
    }
    bms__elem_same_shape(out, x);
    if (is_op(node, "GlobalMaxPool")) {
        for (int d = 2; d < x->n_dims; d++) {
            out->dims[d] = 1;
        }
    }
    return BMS_OK;
}


/* Mean and variance of n values lying stride apart from x[base]. */
static void moments(const struct bms_tensor *x, int64_t base, int64_t n,
                    int64_t stride, double *mean, double *var)
{
    double sum = 0;
    double sq = 0;

    for (int64_t i = 0; i < n; i++) {
        sum += bms__elem_get_f(x->data, x->dtype, base + i * stride);
    }
    *mean = n > 0 ? sum / (double)n : 0;
    for (int64_t i = 0; i < n; i++) {
        double d = bms__elem_get_f(x->data, x->dtype, base + i * stride) -
                   *mean;

        sq += d * d;
    }
    *var = n > 0 ? sq / (double)n : 0;
}


/* F32 LayerNormalization whose scale (and bias) hold exactly one row
 * each, row by row in single precision as the stash_type 1 function body
 * defines it; 0 when the operands take the general path. */
static int layernorm_rows_f32(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, int64_t outer,
                              int64_t n)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *bias = node->n_inputs > 2 ? in[2] : NULL;
    float eps = bms__attr_float(node, "epsilon", 1e-5f);
    float *mean = node->n_outputs > 1 ? out[1].data : NULL;    /* or NULL */
    float *inv_std = node->n_outputs > 2 ? out[2].data : NULL;

    if (x->dtype != BMS_DTYPE_F32 || n < 1 || bms_tensor_numel(in[1]) != n ||
        (bias != NULL && bms_tensor_numel(bias) != n)) {
        return 0;
    }
    for (int64_t o = 0; o < outer; o++) {
        float m;
        float inv;

        bms__vec_layernorm((float *)out[0].data + o * n,
                           (const float *)x->data + o * n, NULL,
                           in[1]->data, bias != NULL ? bias->data : NULL, n,
                           eps, &m, &inv);
        if (mean != NULL) {
            mean[o] = m;
        }
        if (inv_std != NULL) {
            inv_std[o] = inv;
        }
    }
    return 1;
}


static void layernorm_run(const struct bms__node *node,
                          const struct bms_tensor *const *in,
                          struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *ops[2] = {in[1], NULL};
    double eps = bms__attr_float(node, "epsilon", 1e-5f);
    int n_ops = node->n_inputs > 2 && in[2] != NULL ? 2 : 1;
    int axis = 0;
    int64_t outer;
    int64_t n;

    group_axis(node, x, &axis, NULL);
    outer = bms__math_span(x->dims, 0, axis);
    n = bms__math_span(x->dims, axis, x->n_dims);
    if (n_ops == 2) {
        ops[1] = in[2];
    }
    if (layernorm_rows_f32(node, in, out, outer, n)) {
        return;
    }
    for (int64_t o = 0; o < outer; o++) {
        struct bms__iter it;
        double mean;
        double var;
        double inv;

        moments(x, o * n, n, 1, &mean, &var);
        inv = 1 / sqrt(var + eps);
        bms__iter_init(&it, x->dims + axis, x->n_dims - axis, ops, n_ops);
        for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
            double v = bms__elem_get_f(x->data, x->dtype, o * n + i);
            double s = bms__elem_get_f(in[1]->data, x->dtype, it.off[0]);
            double b = n_ops == 2 ? bms__elem_get_f(in[2]->data, x->dtype,
                                                    it.off[1]) : 0;

            bms__elem_set_f(out[0].data, x->dtype, o * n + i,
                            (v - mean) * inv * s + b);
        }
        if (node->n_outputs > 1) {
            bms__elem_set_f(out[1].data, x->dtype, o, mean);
        }
        if (node->n_outputs > 2) {
            bms__elem_set_f(out[2].data, x->dtype, o, inv);
        }
    }
}


/* InstanceNormalization, MeanVarianceNormalization and GlobalMaxPool
 * walk groups of inner elements: one per (n, c) for the first and last,
 * and for MVN one per position outside its axes. */
static void instance_run(const struct bms__node *node,
                         const struct bms_tensor *const *in,
                         struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    double eps = bms__attr_float(node, "epsilon", 1e-5f);
    int64_t c = x->dims[1];
    int64_t groups = x->dims[0] * c;
    int64_t inner = bms__math_span(x->dims, 2, x->n_dims);
    int max_pool = is_op(node, "GlobalMaxPool");

    for (int64_t g = 0; g < groups; g++) {
        double mean;
        double var;
        double s;
        double b;

        if (max_pool) {
            double best = -INFINITY;

            for (int64_t i = 0; i < inner; i++) {
                double v = bms__elem_get_f(x->data, x->dtype, g * inner + i);

                best = v > best || isnan(v) ? v : best;
            }
            bms__elem_set_f(out->data, x->dtype, g, best);
            continue;
        }
        moments(x, g * inner, inner, 1, &mean, &var);
        s = bms__elem_get_f(in[1]->data, x->dtype, g % c);
        b = bms__elem_get_f(in[2]->data, x->dtype, g % c);
        for (int64_t i = 0; i < inner; i++) {
            double v = bms__elem_get_f(x->data, x->dtype, g * inner + i);

            bms__elem_set_f(out->data, x->dtype, g * inner + i,
                            s * (v - mean) / sqrt(var + eps) + b);
        }
    }
}


/* MVN over the axes attribute (default N, H, W): the kept dims index the
 * groups; the reduced ones are visited through an odometer. */
static void mvn_run(const struct bms__node *node, const struct bms_tensor *x,
                    struct bms_tensor *out, double *scratch)
{
    static const int64_t dflt[] = {0, 2, 3};
    struct bms_tensor kept;
    struct bms__iter it;
    const struct bms_tensor *ops[1] = {&kept};
    const int64_t *axes;
    int64_t n = bms_tensor_numel(x);
    int64_t n_groups;
    double *sum;
    double *sq;
    int n_axes;

    axes = bms__attr_ints(node, "axes", &n_axes);
    if (axes == NULL) {
        axes = dflt;
        n_axes = 3;
    }
    bms__elem_same_shape(&kept, x);
    for (int i = 0; i < n_axes; i++) {
        int a;

        if (bms__math_axis(node, axes[i], x->n_dims, 0, &a, NULL) == BMS_OK) {
            kept.dims[a] = 1;
        }
    }
    n_groups = bms_tensor_numel(&kept);
    /* An empty input has no groups to normalise (and kept may count more
     * elements than x: a 0 dim reduced away becomes 1). */
    if (n == 0) {
        return;
    }
    sum = scratch;
    sq = scratch + n_groups;
    memset(scratch, 0, sizeof(double) * 2 * (size_t)n_groups);
    bms__iter_init(&it, x->dims, x->n_dims, ops, 1);
    for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
        sum[it.off[0]] += bms__elem_get_f(x->data, x->dtype, i);
    }
    for (int64_t g = 0; g < n_groups; g++) {
        sum[g] /= (double)(n / n_groups);
    }
    bms__iter_init(&it, x->dims, x->n_dims, ops, 1);
    for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
        double d = bms__elem_get_f(x->data, x->dtype, i) - sum[it.off[0]];

        sq[it.off[0]] += d * d;
    }
    bms__iter_init(&it, x->dims, x->n_dims, ops, 1);
    for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
        double var = sq[it.off[0]] / (double)(n / n_groups);
        double d = bms__elem_get_f(x->data, x->dtype, i) - sum[it.off[0]];

        /* ONNX's function body adds 1e-9 under the root. */
        bms__elem_set_f(out->data, x->dtype, i, d / (sqrt(var) + 1e-9));
    }
}


/* LRN across channels: y = x / (bias + alpha / size * sum x^2)^beta over
 * the window [c - (size - 1) / 2, c + size / 2]. */
static void lrn_run(const struct bms__node *node, const struct bms_tensor *x,
                    struct bms_tensor *out)
{
    double alpha = bms__attr_float(node, "alpha", 1e-4f);
    double beta = bms__attr_float(node, "beta", 0.75f);
    double bias = bms__attr_float(node, "bias", 1.0f);
    int64_t size = bms__attr_int(node, "size", 1);
    int64_t c = x->dims[1];
    int64_t inner = bms__math_span(x->dims, 2, x->n_dims);

    for (int64_t b = 0; b < x->dims[0]; b++) {
        for (int64_t j = 0; j < c; j++) {
            int64_t lo = j - (size - 1) / 2;
            int64_t hi = j + size / 2;

            lo = lo < 0 ? 0 : lo;
            hi = hi > c - 1 ? c - 1 : hi;
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (b * c + j) * inner + i;
                double sq = 0;

                for (int64_t k = lo; k <= hi; k++) {
                    double v = bms__elem_get_f(x->data, x->dtype,
                                               (b * c + k) * inner + i);

                    sq += v * v;
                }
                bms__elem_set_f(out->data, x->dtype, at,
                                bms__elem_get_f(x->data, x->dtype, at) /
                                pow(bias + alpha / (double)size * sq, beta));
            }
        }
    }
}


/* Hardmax: 1 at the first maximum of each group, 0 elsewhere. */
static void hardmax_run(const struct bms__node *node,
                        const struct bms_tensor *x, struct bms_tensor *out)
{
    int coerce = node->opset > 0 && node->opset < 13;
    int axis = 0;
    int64_t outer;
    int64_t n;
    int64_t inner;

    group_axis(node, x, &axis, NULL);
    outer = bms__math_span(x->dims, 0, axis);
    n = coerce ? bms__math_span(x->dims, axis, x->n_dims) : x->dims[axis];
    inner = coerce ? 1 : bms__math_span(x->dims, axis + 1, x->n_dims);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            double best = -INFINITY;
            int64_t at = 0;

            for (int64_t j = 0; j < n; j++) {
                double v = bms__elem_get_f(x->data, x->dtype,
                                           base + j * inner);

                if (v > best) {
                    best = v;
                    at = j;
                }
                bms__elem_set_f(out->data, x->dtype, base + j * inner, 0);
            }
            if (n > 0) {
                bms__elem_set_f(out->data, x->dtype, base + at * inner, 1);
            }
        }
    }
}


enum bms_status bms__normalize_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms__ctx *ctx)
{
    if (is_op(node, "LayerNormalization")) {
        layernorm_run(node, in, out);
    } else if (is_op(node, "Hardmax")) {
        hardmax_run(node, in[0], out);
    } else if (is_op(node, "LRN")) {
        lrn_run(node, in[0], out);
    } else if (is_op(node, "MeanVarianceNormalization")) {
        double *scratch = bms__ctx_scratch(
            ctx, sizeof(double) * 2 * (size_t)(bms_tensor_numel(in[0]) + 1));

        if (scratch == NULL) {
            return BMS_ERR_NOMEM;
        }
        mvn_run(node, in[0], out, scratch);
    } else {
        instance_run(node, in, out);
    }
    return BMS_OK;
}
