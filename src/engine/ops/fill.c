/*
 * Operators that make tensors from a few numbers or fill them by
 * position: Range, ConstantOfShape, Size, EyeLike, Trilu, OneHot, CumSum
 * and the windows HannWindow, HammingWindow and BlackmanWindow.
 *
 * Range and ConstantOfShape get their output shape from input data, so
 * at load (no data yet) their infer answers BMS_ERR_UNAVAILABLE unless
 * the inputs are constants.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/core.h"
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

/* Largest Range output bms makes, elements. */
#define MAX_RANGE ((int64_t)1 << 32)


enum bms_status bms__fill_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    static const struct {
        const char *name;
        int min_in;
        int max_in;
    } arity[] = {
        {"Range", 3, 3}, {"ConstantOfShape", 1, 1}, {"Size", 1, 1},
        {"EyeLike", 1, 1}, {"Trilu", 1, 2}, {"OneHot", 3, 3},
        {"CumSum", 2, 2}, {"HannWindow", 1, 1}, {"HammingWindow", 1, 1},
        {"BlackmanWindow", 1, 1},
    };

    for (size_t i = 0; i < sizeof(arity) / sizeof(arity[0]); i++) {
        if (strcmp(arity[i].name, node->op_type) == 0) {
            return bms__math_check_arity(node, arity[i].min_in,
                                         arity[i].max_in, 1, 1, diag);
        }
    }
    return bms_diag_set(diag, BMS_ERR_INTERNAL, "%s: not a fill op",
                        node->op_type);
}


static int is_op(const struct bms__node *node, const char *name)
{
    return strcmp(node->op_type, name) == 0;
}


/* The three scalars of Range, as doubles or exactly as integers. */
static enum bms_status range_count(const struct bms_tensor *const *in,
                                   int64_t *n, struct bms_diag *diag)
{
    enum bms_dtype dt = in[0]->dtype;
    double start;
    double limit;
    double delta;
    double count;

    for (int k = 0; k < 3; k++) {
        if (in[k]->dtype != dt || bms_tensor_numel(in[k]) != 1) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Range: input %d must be one value of the "
                                "start's datatype", k);
        }
        if (in[k]->data == NULL) {
            return BMS_ERR_UNAVAILABLE;
        }
    }
    start = bms__elem_get_f(in[0]->data, dt, 0);
    limit = bms__elem_get_f(in[1]->data, dt, 0);
    delta = bms__elem_get_f(in[2]->data, dt, 0);
    if (delta == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "Range: delta is 0");
    }
    count = ceil((limit - start) / delta);
    if (!(count < (double)MAX_RANGE)) {
        return bms_diag_set(diag, BMS_ERR_LIMIT,
                            "Range: more than 2^32 values");
    }
    *n = count > 0 ? (int64_t)count : 0;
    return BMS_OK;
}


static enum bms_status range_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    enum bms__elem_kind k = bms__elem_kind(in[0]->dtype);
    int64_t n = 0;
    enum bms_status rc;

    if (k != BMS__KIND_FLOAT && k != BMS__KIND_SIGNED) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = range_count(in, &n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    out->dtype = in[0]->dtype;
    out->n_dims = 1;
    out->dims[0] = n;
    return BMS_OK;
}


static void range_run(const struct bms_tensor *const *in,
                      struct bms_tensor *out)
{
    enum bms_dtype dt = out->dtype;
    int64_t n = out->dims[0];

    if (bms__elem_kind(dt) == BMS__KIND_FLOAT) {
        double start = bms__elem_get_f(in[0]->data, dt, 0);
        double delta = bms__elem_get_f(in[2]->data, dt, 0);

        for (int64_t i = 0; i < n; i++) {
            bms__elem_set_f(out->data, dt, i, start + (double)i * delta);
        }
        return;
    }
    {
        int64_t start = bms__elem_get_i(in[0]->data, dt, 0);
        int64_t delta = bms__elem_get_i(in[2]->data, dt, 0);

        for (int64_t i = 0; i < n; i++) {
            bms__elem_set_i(out->data, dt, i, start + i * delta);
        }
    }
}


/* ConstantOfShape's value: the attribute's one element, or F32 0. */
static const struct bms_tensor *cos_value(const struct bms__node *node)
{
    const struct bms__attr *a = bms__attr_find(node, "value");

    return a != NULL && a->type == BMS__ATTR_TENSOR ? a->t : NULL;
}


static enum bms_status cos_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    const struct bms_tensor *v = cos_value(node);
    enum bms_status rc;
    int n;

    if (v != NULL && (bms_tensor_numel(v) != 1 ||
                      bms__elem_kind(v->dtype) == BMS__KIND_NONE)) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "ConstantOfShape: value must be one number");
    }
    rc = bms__core_read_ints(in[0], "input", out->dims, BMS_MAX_DIMS, &n,
                             diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int d = 0; d < n; d++) {
        if (out->dims[d] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "ConstantOfShape: dim %d is negative", d);
        }
    }
    out->n_dims = n;
    out->dtype = v != NULL ? v->dtype : BMS_DTYPE_F32;
    return BMS_OK;
}


static void cos_run(const struct bms__node *node, struct bms_tensor *out)
{
    const struct bms_tensor *v = cos_value(node);
    size_t size = bms_dtype_size(out->dtype);
    int64_t n = bms_tensor_numel(out);

    if (v == NULL) {
        memset(out->data, 0, (size_t)n * size);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        bms__elem_copy(out->data, i, v->data, 0, size);
    }
}


static enum bms_status eyelike_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    enum bms_dtype dt = (enum bms_dtype)bms__attr_int(node, "dtype",
                                                      in[0]->dtype);

    if (bms__elem_kind(dt) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, dt, diag);
    }
    if (in[0]->n_dims != 2) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "EyeLike: input must be 2-D, not %d-D",
                            in[0]->n_dims);
    }
    bms__elem_same_shape(out, in[0]);
    out->dtype = dt;
    return BMS_OK;
}


/* EyeLike (ones on diagonal k) and Trilu (keep on or above/below it). */
static void diag_run(const struct bms__node *node,
                     const struct bms_tensor *const *in,
                     struct bms_tensor *out)
{
    int trilu = is_op(node, "Trilu");
    int upper = bms__attr_int(node, "upper", 1) != 0;
    int64_t k = bms__attr_int(node, "k", 0);
    size_t size = bms_dtype_size(out->dtype);
    int64_t rows = out->n_dims >= 2 ? out->dims[out->n_dims - 2] : 1;
    int64_t cols = out->n_dims >= 1 ? out->dims[out->n_dims - 1] : 1;
    int64_t n = bms_tensor_numel(out);

    if (trilu && node->n_inputs > 1 && in[1] != NULL) {
        k = bms__elem_get_i(in[1]->data, in[1]->dtype, 0);
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = i % cols;
        int64_t r = (i / cols) % rows;
        int on = upper ? c - r >= k : c - r <= k;

        if (!trilu) {
            bms__elem_set_i(out->data, out->dtype, i, c - r == k);
        } else if (on) {
            bms__elem_copy(out->data, i, in[0]->data, i, size);
        } else {
            memset((char *)out->data + (size_t)i * size, 0, size);
        }
    }
}


static enum bms_status onehot_depth(const struct bms_tensor *t, int64_t *n,
                                    struct bms_diag *diag)
{
    if (bms_tensor_numel(t) != 1 ||
        bms__elem_kind(t->dtype) == BMS__KIND_NONE) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "OneHot: depth must be one number");
    }
    if (t->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    *n = bms__elem_get_i(t->data, t->dtype, 0);
    if (*n <= 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "OneHot: depth %lld is not positive",
                            (long long)*n);
    }
    return BMS_OK;
}


static enum bms_status onehot_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    enum bms_status rc;
    int64_t depth;
    int axis;

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE ||
        bms__elem_kind(in[2]->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (bms_tensor_numel(in[2]) != 2 || x->n_dims >= BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "OneHot: values must hold 2 elements");
    }
    rc = bms__math_axis(node, bms__attr_int(node, "axis", -1),
                        x->n_dims + 1, 0, &axis, diag);
    if (rc == BMS_OK) {
        rc = onehot_depth(in[1], &depth, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    out->dtype = in[2]->dtype;
    out->n_dims = x->n_dims + 1;
    for (int d = 0, s = 0; d < out->n_dims; d++) {
        out->dims[d] = d == axis ? depth : x->dims[s++];
    }
    return BMS_OK;
}


static void onehot_run(const struct bms__node *node,
                       const struct bms_tensor *const *in,
                       struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    size_t size = bms_dtype_size(out->dtype);
    int64_t depth = 0;
    int64_t outer;
    int64_t inner;
    int axis = 0;

    bms__math_axis(node, bms__attr_int(node, "axis", -1), out->n_dims, 0,
                   &axis, NULL);
    onehot_depth(in[1], &depth, NULL);
    outer = bms__math_span(out->dims, 0, axis);
    inner = bms__math_span(out->dims, axis + 1, out->n_dims);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < depth; j++) {
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (o * depth + j) * inner + i;
                int64_t v = bms__elem_get_i(x->data, x->dtype,
                                            o * inner + i);

                v = v < 0 ? v + depth : v;
                bms__elem_copy(out->data, at, in[2]->data, v == j, size);
            }
        }
    }
}


/* CumSum along the axis input; exclusive and reverse attributes. */
static void cumsum_run(const struct bms__node *node,
                       const struct bms_tensor *const *in,
                       struct bms_tensor *out, int axis)
{
    const struct bms_tensor *x = in[0];
    int exclusive = bms__attr_int(node, "exclusive", 0) != 0;
    int reverse = bms__attr_int(node, "reverse", 0) != 0;
    int is_float = bms__elem_kind(x->dtype) == BMS__KIND_FLOAT;
    int64_t outer = bms__math_span(x->dims, 0, axis);
    int64_t n = x->dims[axis];
    int64_t inner = bms__math_span(x->dims, axis + 1, x->n_dims);

    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            double fsum = 0;
            int64_t isum = 0;

            for (int64_t s = 0; s < n; s++) {
                int64_t j = reverse ? n - 1 - s : s;
                int64_t at = (o * n + j) * inner + i;

                if (is_float) {
                    double v = bms__elem_get_f(x->data, x->dtype, at);

                    fsum += exclusive ? 0 : v;
                    bms__elem_set_f(out->data, out->dtype, at, fsum);
                    fsum += exclusive ? v : 0;
                } else {
                    int64_t v = bms__elem_get_i(x->data, x->dtype, at);

                    isum += exclusive ? 0 : v;
                    bms__elem_set_i(out->data, out->dtype, at, isum);
                    isum += exclusive ? v : 0;
                }
            }
        }
    }
}


static enum bms_status cumsum_axis(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   int *axis, struct bms_diag *diag)
{
    enum bms__elem_kind k = bms__elem_kind(in[0]->dtype);

    if (k == BMS__KIND_NONE || k == BMS__KIND_BOOL) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    if (bms_tensor_numel(in[1]) != 1 ||
        (in[1]->dtype != BMS_DTYPE_I32 && in[1]->dtype != BMS_DTYPE_I64)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "CumSum: axis must be one int32 or int64");
    }
    if (in[1]->data == NULL) {
        *axis = 0;
        return BMS_OK;
    }
    return bms__math_axis(node, bms__elem_get_i(in[1]->data, in[1]->dtype,
                                                0),
                          in[0]->n_dims, 0, axis, diag);
}


static int is_window(const struct bms__node *node)
{
    return is_op(node, "HannWindow") || is_op(node, "HammingWindow") ||
           is_op(node, "BlackmanWindow");
}


static enum bms_status window_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    enum bms_dtype dt = (enum bms_dtype)bms__attr_int(node,
                                                      "output_datatype", 1);

    if (bms__elem_kind(dt) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, dt, diag);
    }
    if (bms_tensor_numel(in[0]) != 1 ||
        (in[0]->dtype != BMS_DTYPE_I32 && in[0]->dtype != BMS_DTYPE_I64)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: size must be one int32 or int64",
                            node->op_type);
    }
    if (in[0]->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    out->dtype = dt;
    out->n_dims = 1;
    out->dims[0] = bms__elem_get_i(in[0]->data, in[0]->dtype, 0);
    if (out->dims[0] < 0 || out->dims[0] > MAX_RANGE) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: size %lld",
                            node->op_type, (long long)out->dims[0]);
    }
    return BMS_OK;
}


/* The cosine-sum windows of ONNX: a0 - a1 cos(2 pi n / N)
 * + a2 cos(4 pi n / N), N the size (periodic) or size - 1. */
static void window_run(const struct bms__node *node, struct bms_tensor *out)
{
    const double pi = 3.14159265358979323846;
    int64_t size = out->dims[0];
    double n_den = (double)(bms__attr_int(node, "periodic", 1) != 0
                                ? size : size - 1);
    double a0 = 0.5;
    double a1 = 0.5;
    double a2 = 0;

    if (is_op(node, "HammingWindow")) {
        a0 = 25.0 / 46.0;
        a1 = 1 - a0;
    } else if (is_op(node, "BlackmanWindow")) {
        a0 = 0.42;
        a2 = 0.08;
    }
    for (int64_t i = 0; i < size; i++) {
        double x = n_den != 0 ? 2 * pi * (double)i / n_den : 0;

        bms__elem_set_f(out->data, out->dtype, i,
                        a0 - a1 * cos(x) + a2 * cos(2 * x));
    }
}


enum bms_status bms__fill_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    int axis;

    if (is_op(node, "Range")) {
        return range_infer(node, in, out, diag);
    }
    if (is_window(node)) {
        return window_infer(node, in, out, diag);
    }
    if (is_op(node, "ConstantOfShape")) {
        return cos_infer(node, in, out, diag);
    }
    if (is_op(node, "EyeLike")) {
        return eyelike_infer(node, in, out, diag);
    }
    if (is_op(node, "OneHot")) {
        return onehot_infer(node, in, out, diag);
    }
    if (is_op(node, "Size")) {
        out->dtype = BMS_DTYPE_I64;
        out->n_dims = 0;
        return BMS_OK;
    }
    if (is_op(node, "CumSum")) {
        enum bms_status rc = cumsum_axis(node, in, &axis, diag);

        bms__elem_same_shape(out, in[0]);
        return rc;
    }
    /* Trilu */
    if (bms__elem_kind(in[0]->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    if (in[0]->n_dims < 2) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Trilu: input must have 2 dims or more");
    }
    bms__elem_same_shape(out, in[0]);
    return BMS_OK;
}


enum bms_status bms__fill_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    int axis;

    (void)ctx;
    if (is_op(node, "Range")) {
        range_run(in, out);
    } else if (is_window(node)) {
        window_run(node, out);
    } else if (is_op(node, "ConstantOfShape")) {
        cos_run(node, out);
    } else if (is_op(node, "Size")) {
        *(int64_t *)out->data = bms_tensor_numel(in[0]);
    } else if (is_op(node, "OneHot")) {
        onehot_run(node, in, out);
    } else if (is_op(node, "CumSum")) {
        if (cumsum_axis(node, in, &axis, NULL) != BMS_OK) {
            return BMS_ERR_INVALID;
        }
        cumsum_run(node, in, out, axis);
    } else {
        diag_run(node, in, out);
    }
    return BMS_OK;
}
