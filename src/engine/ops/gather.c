/*
 * Indexed reads and writes: GatherElements, GatherND, ScatterElements
 * (and its opset-9 name Scatter), ScatterND, ReverseSequence, and the
 * data-dependent
 * Compress and NonZero, whose output shapes come from input values (at
 * load, without the data, their infer answers BMS_ERR_UNAVAILABLE).
 *
 * Indices may be negative (counted from the end); an index outside its
 * dim fails the run with BMS_ERR_INVALID, before anything is written
 * where the check can come first.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

enum reduction { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };


static int is_op(const struct bms__node *node, const char *name)
{
    return strcmp(node->op_type, name) == 0;
}


static int index_dtype(enum bms_dtype dt)
{
    return dt == BMS_DTYPE_I32 || dt == BMS_DTYPE_I64;
}


enum bms_status bms__gather_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    char red[8] = "none";
    int scatter = is_op(node, "ScatterElements") || is_op(node, "Scatter") ||
                  is_op(node, "ScatterND");
    int n_in = scatter ? 3 : 2;

    bms__attr_string(node, "reduction", red, sizeof(red));
    if (strcmp(red, "none") != 0 && strcmp(red, "add") != 0 &&
        strcmp(red, "mul") != 0 && strcmp(red, "max") != 0 &&
        strcmp(red, "min") != 0) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: reduction '%s' not supported",
                            node->op_type, red);
    }
    if (is_op(node, "NonZero")) {
        n_in = 1;
    }
    if (is_op(node, "ReverseSequence")) {
        int64_t t = bms__attr_int(node, "time_axis", 0);
        int64_t b = bms__attr_int(node, "batch_axis", 1);

        if (!((t == 0 && b == 1) || (t == 1 && b == 0))) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "ReverseSequence: time_axis and batch_axis "
                                "must be 0 and 1");
        }
    }
    return bms__math_check_arity(node, n_in, n_in, 1, 1, diag);
}


static enum reduction reduction_of(const struct bms__node *node)
{
    static const char *const names[] = {"none", "add", "mul", "max", "min"};
    char red[8] = "none";

    bms__attr_string(node, "reduction", red, sizeof(red));
    for (int i = 0; i < 5; i++) {
        if (strcmp(red, names[i]) == 0) {
            return (enum reduction)i;
        }
    }
    return RED_NONE;
}


static enum bms_status elements_infer(const struct bms__node *node,
                                      const struct bms_tensor *const *in,
                                      struct bms_tensor *out,
                                      struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *idx = in[1];
    int scatter = node->n_inputs == 3;
    int axis;
    enum bms_status rc;

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (!index_dtype(idx->dtype) || idx->n_dims != x->n_dims) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: indices must be int32 or int64 of the "
                            "data's rank", node->op_type);
    }
    if (scatter && (in[2]->dtype != x->dtype ||
                    in[2]->n_dims != idx->n_dims ||
                    memcmp(in[2]->dims, idx->dims,
                           sizeof(int64_t) * (size_t)idx->n_dims) != 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: updates must match indices in shape and "
                            "data in datatype", node->op_type);
    }
    rc = bms__math_axis(node, bms__attr_int(node, "axis", 0), x->n_dims, 0,
                        &axis, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int d = 0; d < x->n_dims; d++) {
        if (d != axis && idx->dims[d] > x->dims[d] && x->dims[d] >= 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: indices dim %d exceeds the data's",
                                node->op_type, d);
        }
    }
    bms__elem_same_shape(out, scatter ? x : idx);
    out->dtype = x->dtype;
    return BMS_OK;
}


/* Fold v into dst[at] with the reduction (numbers through double or
 * int64 by the datatype's kind). */
static void reduce_into(struct bms_tensor *dst, int64_t at,
                        const struct bms_tensor *src, int64_t si,
                        enum reduction red)
{
    enum bms_dtype dt = dst->dtype;

    if (red == RED_NONE) {
        bms__elem_copy(dst->data, at, src->data, si, bms_dtype_size(dt));
    } else if (bms__elem_kind(dt) == BMS__KIND_FLOAT) {
        double a = bms__elem_get_f(dst->data, dt, at);
        double b = bms__elem_get_f(src->data, dt, si);
        double v = red == RED_ADD ? a + b : red == RED_MUL ? a * b :
                   red == RED_MAX ? (b > a ? b : a) : (b < a ? b : a);

        bms__elem_set_f(dst->data, dt, at, v);
    } else {
        int64_t a = bms__elem_get_i(dst->data, dt, at);
        int64_t b = bms__elem_get_i(src->data, dt, si);
        int64_t v = red == RED_ADD ? (int64_t)((uint64_t)a + (uint64_t)b) :
                    red == RED_MUL ? (int64_t)((uint64_t)a * (uint64_t)b) :
                    red == RED_MAX ? (b > a ? b : a) : (b < a ? b : a);

        bms__elem_set_i(dst->data, dt, at, v);
    }
}


/* GatherElements and ScatterElements: walk the indices in order; the
 * data element is the same multi-index with the axis coordinate replaced
 * by the index value. */
static enum bms_status elements_run(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *idx = in[1];
    int scatter = node->n_inputs == 3;
    enum reduction red = reduction_of(node);
    size_t size = bms_dtype_size(x->dtype);
    int64_t n = bms_tensor_numel(idx);
    int64_t xs[BMS_MAX_DIMS];
    int64_t pos[BMS_MAX_DIMS] = {0};
    int axis = 0;

    bms__math_axis(node, bms__attr_int(node, "axis", 0), x->n_dims, 0, &axis,
                   NULL);
    bms__elem_strides(x->dims, x->n_dims, xs);
    for (int64_t i = 0; i < n; i++) {
        if (bms__elem_get_i(idx->data, idx->dtype, i) < -x->dims[axis] ||
            bms__elem_get_i(idx->data, idx->dtype, i) >= x->dims[axis]) {
            return BMS_ERR_INVALID;
        }
    }
    if (scatter) {
        memcpy(out->data, x->data, bms_tensor_size(x));
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t j = bms__elem_get_i(idx->data, idx->dtype, i);
        int64_t off = 0;

        j = j < 0 ? j + x->dims[axis] : j;
        for (int d = 0; d < x->n_dims; d++) {
            off += (d == axis ? j : pos[d]) * xs[d];
        }
        if (scatter) {
            reduce_into(out, off, in[2], i, red);
        } else {
            bms__elem_copy(out->data, i, x->data, off, size);
        }
        for (int d = idx->n_dims - 1; d >= 0; d--) {
            if (++pos[d] < idx->dims[d]) {
                break;
            }
            pos[d] = 0;
        }
    }
    return BMS_OK;
}


/*
 * GatherND and ScatterND.  The last dim of indices, k, addresses data
 * dims [b, b + k) after b batch dims (GatherND's batch_dims); each index
 * tuple selects a slice of the remaining dims.
 */
struct nd_view {
    int b;
    int k;
    int64_t n_rows;              /* index tuples */
    int64_t rows_per_batch;
    int64_t slice;               /* elements per selected slice */
    int64_t batch_stride;        /* data elements per batch */
    int64_t xs[BMS_MAX_DIMS];
};


static enum bms_status nd_view(const struct bms__node *node,
                               const struct bms_tensor *x,
                               const struct bms_tensor *idx,
                               struct nd_view *v, struct bms_diag *diag)
{
    int q = idx->n_dims;

    v->b = (int)bms__attr_int(node, "batch_dims", 0);
    if (!index_dtype(idx->dtype) || q < 1 || v->b < 0 || v->b >= q ||
        v->b >= x->n_dims) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: indices must be int64 of rank above "
                            "batch_dims", node->op_type);
    }
    v->k = (int)idx->dims[q - 1];
    if (v->k < 1 || v->b + v->k > x->n_dims ||
        (q - 1) + (x->n_dims - v->b - v->k) > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: index tuples of %d do not fit rank %d",
                            node->op_type, v->k, x->n_dims);
    }
    for (int d = 0; d < v->b; d++) {
        if (idx->dims[d] != x->dims[d]) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: batch dim %d differs", node->op_type,
                                d);
        }
    }
    v->n_rows = bms__math_span(idx->dims, 0, q - 1);
    v->rows_per_batch = bms__math_span(idx->dims, v->b, q - 1);
    v->slice = bms__math_span(x->dims, v->b + v->k, x->n_dims);
    v->batch_stride = bms__math_span(x->dims, v->b, x->n_dims);
    bms__elem_strides(x->dims, x->n_dims, v->xs);
    return BMS_OK;
}


static enum bms_status nd_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *idx = in[1];
    struct nd_view v;
    enum bms_status rc;

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    rc = nd_view(node, x, idx, &v, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (is_op(node, "ScatterND")) {
        bms__elem_same_shape(out, x);
        return in[2]->dtype == x->dtype ? BMS_OK
            : bms_diag_set(diag, BMS_ERR_INVALID,
                           "ScatterND: updates differ in datatype");
    }
    out->dtype = x->dtype;
    out->n_dims = 0;
    for (int d = 0; d < idx->n_dims - 1; d++) {
        out->dims[out->n_dims++] = idx->dims[d];
    }
    for (int d = v.b + v.k; d < x->n_dims; d++) {
        out->dims[out->n_dims++] = x->dims[d];
    }
    return BMS_OK;
}


static enum bms_status nd_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *idx = in[1];
    int scatter = is_op(node, "ScatterND");
    enum reduction red = reduction_of(node);
    size_t size = bms_dtype_size(x->dtype);
    struct nd_view v;

    if (nd_view(node, x, idx, &v, NULL) != BMS_OK ||
        (scatter && bms_tensor_numel(in[2]) != v.n_rows * v.slice)) {
        return BMS_ERR_INVALID;
    }
    if (scatter) {
        memcpy(out->data, x->data, bms_tensor_size(x));
    }
    for (int64_t r = 0; r < v.n_rows; r++) {
        int64_t off = v.rows_per_batch > 0
                          ? (r / v.rows_per_batch) * v.batch_stride : 0;

        for (int j = 0; j < v.k; j++) {
            int64_t dim = x->dims[v.b + j];
            int64_t t = bms__elem_get_i(idx->data, idx->dtype, r * v.k + j);

            t = t < 0 ? t + dim : t;
            if (t < 0 || t >= dim) {
                return BMS_ERR_INVALID;
            }
            off += t * v.xs[v.b + j];
        }
        for (int64_t e = 0; e < v.slice; e++) {
            if (scatter) {
                reduce_into(out, off + e, in[2], r * v.slice + e, red);
            } else {
                bms__elem_copy(out->data, r * v.slice + e, x->data, off + e,
                               size);
            }
        }
    }
    return BMS_OK;
}


/* Compress: keep the slices along axis (or of the flattened input) whose
 * condition is true; a shorter condition drops the rest. */
static enum bms_status compress_infer(const struct bms__node *node,
                                      const struct bms_tensor *const *in,
                                      struct bms_tensor *out,
                                      struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *c = in[1];
    int has_axis = bms__attr_find(node, "axis") != NULL;
    int64_t len = has_axis ? 0 : bms_tensor_numel(x);
    int64_t kept = 0;
    int axis = 0;
    enum bms_status rc;

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE ||
        c->dtype != BMS_DTYPE_BOOL || c->n_dims != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Compress: condition must be 1-D BOOL");
    }
    if (has_axis) {
        rc = bms__math_axis(node, bms__attr_int(node, "axis", 0), x->n_dims,
                            0, &axis, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        len = x->dims[axis];
    }
    if (c->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    for (int64_t i = 0; i < c->dims[0] && i < len; i++) {
        kept += ((const uint8_t *)c->data)[i] != 0;
    }
    out->dtype = x->dtype;
    if (!has_axis) {
        out->n_dims = 1;
        out->dims[0] = kept;
        return BMS_OK;
    }
    bms__elem_same_shape(out, x);
    out->dims[axis] = kept;
    return BMS_OK;
}


static void compress_run(const struct bms__node *node,
                         const struct bms_tensor *const *in,
                         struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    const uint8_t *c = in[1]->data;
    int has_axis = bms__attr_find(node, "axis") != NULL;
    size_t size = bms_dtype_size(x->dtype);
    int64_t outer = 1;
    int64_t n = bms_tensor_numel(x);
    int64_t inner = 1;
    int64_t at = 0;
    int axis = 0;

    if (has_axis) {
        bms__math_axis(node, bms__attr_int(node, "axis", 0), x->n_dims, 0,
                       &axis, NULL);
        outer = bms__math_span(x->dims, 0, axis);
        n = x->dims[axis];
        inner = bms__math_span(x->dims, axis + 1, x->n_dims);
    }
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < n && j < in[1]->dims[0]; j++) {
            if (!c[j]) {
                continue;
            }
            memcpy((char *)out->data + (size_t)at * size,
                   (const char *)x->data + (size_t)((o * n + j) * inner) *
                                               size,
                   (size_t)inner * size);
            at += inner;
        }
    }
}


/* NonZero: [rank, count] INT64 coordinates of the nonzero elements in
 * row-major order. */
static enum bms_status nonzero_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int64_t n = bms_tensor_numel(x);
    int64_t count = 0;

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    for (int64_t i = 0; i < n; i++) {
        count += bms__elem_get_f(x->data, x->dtype, i) != 0;
    }
    out->dtype = BMS_DTYPE_I64;
    out->n_dims = 2;
    out->dims[0] = x->n_dims;
    out->dims[1] = count;
    return BMS_OK;
}


static void nonzero_run(const struct bms_tensor *x, struct bms_tensor *out)
{
    int64_t n = bms_tensor_numel(x);
    int64_t count = out->dims[1];
    int64_t pos[BMS_MAX_DIMS] = {0};
    int64_t *y = out->data;
    int64_t at = 0;

    for (int64_t i = 0; i < n; i++) {
        if (bms__elem_get_f(x->data, x->dtype, i) != 0 && at < count) {
            for (int d = 0; d < x->n_dims; d++) {
                y[d * count + at] = pos[d];
            }
            at++;
        }
        for (int d = x->n_dims - 1; d >= 0; d--) {
            if (++pos[d] < x->dims[d]) {
                break;
            }
            pos[d] = 0;
        }
    }
}


/* ReverseSequence: along the time axis, the first lens[b] steps of each
 * batch entry b in reverse order, the rest as they are. */
static enum bms_status reverse_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int b_axis = (int)bms__attr_int(node, "batch_axis", 1);

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims < 2 || in[1]->dtype != BMS_DTYPE_I64 ||
        in[1]->n_dims != 1 || in[1]->dims[0] != x->dims[b_axis]) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "ReverseSequence: sequence_lens must be INT64 "
                            "[batch] for an input of rank 2 or more");
    }
    bms__elem_same_shape(out, x);
    return BMS_OK;
}


static enum bms_status reverse_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out)
{
    const struct bms_tensor *x = in[0];
    const int64_t *lens = in[1]->data;
    int time_first = bms__attr_int(node, "time_axis", 0) == 0;
    int64_t n_t = x->dims[time_first ? 0 : 1];
    int64_t n_b = x->dims[time_first ? 1 : 0];
    int64_t inner = bms__math_span(x->dims, 2, x->n_dims);
    size_t row = (size_t)inner * bms_dtype_size(x->dtype);

    for (int64_t b = 0; b < n_b; b++) {
        if (lens[b] < 0 || lens[b] > n_t) {
            return BMS_ERR_INVALID;
        }
        for (int64_t t = 0; t < n_t; t++) {
            int64_t from = t < lens[b] ? lens[b] - 1 - t : t;
            int64_t o = time_first ? t * n_b + b : b * n_t + t;
            int64_t i = time_first ? from * n_b + b : b * n_t + from;

            memcpy((char *)out->data + (size_t)o * row,
                   (const char *)x->data + (size_t)i * row, row);
        }
    }
    return BMS_OK;
}


enum bms_status bms__gather_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    if (is_op(node, "GatherND") || is_op(node, "ScatterND")) {
        return nd_infer(node, in, out, diag);
    }
    if (is_op(node, "Compress")) {
        return compress_infer(node, in, out, diag);
    }
    if (is_op(node, "NonZero")) {
        return nonzero_infer(node, in, out, diag);
    }
    if (is_op(node, "ReverseSequence")) {
        return reverse_infer(node, in, out, diag);
    }
    return elements_infer(node, in, out, diag);
}


enum bms_status bms__gather_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    (void)ctx;
    if (is_op(node, "GatherND") || is_op(node, "ScatterND")) {
        return nd_run(node, in, out);
    }
    if (is_op(node, "Compress")) {
        compress_run(node, in, out);
        return BMS_OK;
    }
    if (is_op(node, "NonZero")) {
        nonzero_run(in[0], out);
        return BMS_OK;
    }
    if (is_op(node, "ReverseSequence")) {
        return reverse_run(node, in, out);
    }
    return elements_run(node, in, out);
}
