/*
 * Data movement that reads the input through a strided view: Slice,
 * Split, Expand, Tile, Pad, DepthToSpace and SpaceToDepth.  They copy
 * bytes and so take every datatype bms holds.
 *
 * The shape-giving inputs (Slice's starts and ends, Split's split, Pad's
 * pads, Tile's repeats, Expand's shape) are read in infer: at load, when
 * their data is not known yet, infer answers BMS_ERR_UNAVAILABLE and the
 * shapes wait for the run.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/core.h"
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

/* Most outputs Split serves. */
#define MAX_SPLIT 64


static int dtype_ok(enum bms_dtype dtype)
{
    return bms__elem_kind(dtype) != BMS__KIND_NONE;
}


static enum bms_status read_list(const struct bms__node *node,
                                 const struct bms_tensor *const *in, int k,
                                 const char *what, int64_t *vals, int max_n,
                                 int *n, struct bms_diag *diag)
{
    enum bms_status rc;

    if (node->n_inputs <= k || in[k] == NULL) {
        *n = -1;
        return BMS_OK;
    }
    rc = bms__core_read_ints(in[k], what, vals, max_n, n, diag);
    if (rc != BMS_OK && rc != BMS_ERR_UNAVAILABLE) {
        bms_diag_prefix(diag, "%s", node->op_type);
    }
    return rc;
}


/*
 * Slice.  The view of one call: per input dim, the first index and the
 * step, and the output dims.
 */
struct slice_view {
    int64_t start[BMS_MAX_DIMS];
    int64_t step[BMS_MAX_DIMS];
    int64_t dims[BMS_MAX_DIMS];
};


enum bms_status bms__slice_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    int legacy = node->opset > 0 && node->opset < 10;

    return bms__math_check_arity(node, legacy ? 1 : 3, legacy ? 1 : 5, 1, 1,
                                 diag);
}


/* ONNX Slice-13: negative starts and ends count from the end, then both
 * clamp to [0, dim] for positive steps and [-1, dim - 1] for negative. */
static void slice_axis(int64_t d, int64_t start, int64_t end, int64_t step,
                       int64_t *first, int64_t *len)
{
    start = start < 0 ? start + d : start;
    end = end < 0 ? end + d : end;
    if (step > 0) {
        start = start < 0 ? 0 : start > d ? d : start;
        end = end < 0 ? 0 : end > d ? d : end;
        *len = end > start ? (end - start + step - 1) / step : 0;
    } else {
        start = start < 0 ? 0 : start > d - 1 ? d - 1 : start;
        end = end < -1 ? -1 : end > d - 1 ? d - 1 : end;
        *len = start > end ? (start - end - step - 1) / -step : 0;
    }
    *first = start;
}


static enum bms_status slice_args(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  int64_t *starts, int64_t *ends,
                                  int64_t *axes, int64_t *steps, int *n,
                                  struct bms_diag *diag)
{
    enum bms_status rc;
    int n_ends;
    int n_axes;
    int n_steps;

    if (node->opset > 0 && node->opset < 10) {
        const int64_t *a = bms__attr_ints(node, "starts", n);
        const int64_t *b = bms__attr_ints(node, "ends", &n_ends);
        const int64_t *c = bms__attr_ints(node, "axes", &n_axes);

        if (*n > BMS_MAX_DIMS || *n != n_ends ||
            (c != NULL && n_axes != *n)) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Slice: starts, ends and axes differ in "
                                "length");
        }
        for (int i = 0; i < *n; i++) {
            starts[i] = a[i];
            ends[i] = b[i];
            axes[i] = c != NULL ? c[i] : i;
            steps[i] = 1;
        }
        return BMS_OK;
    }
    rc = read_list(node, in, 1, "starts", starts, BMS_MAX_DIMS, n, diag);
    if (rc == BMS_OK) {
        rc = read_list(node, in, 2, "ends", ends, BMS_MAX_DIMS, &n_ends,
                       diag);
    }
    if (rc == BMS_OK) {
        rc = read_list(node, in, 3, "axes", axes, BMS_MAX_DIMS, &n_axes,
                       diag);
    }
    if (rc == BMS_OK) {
        rc = read_list(node, in, 4, "steps", steps, BMS_MAX_DIMS, &n_steps,
                       diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if (n_ends != *n || (n_axes >= 0 && n_axes != *n) ||
        (n_steps >= 0 && n_steps != *n)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Slice: starts, ends, axes and steps differ in "
                            "length");
    }
    for (int i = 0; i < *n; i++) {
        if (n_axes < 0) {
            axes[i] = i;
        }
        if (n_steps < 0) {
            steps[i] = 1;
        }
    }
    return BMS_OK;
}


static enum bms_status slice_view(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct slice_view *v,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int64_t starts[BMS_MAX_DIMS];
    int64_t ends[BMS_MAX_DIMS];
    int64_t axes[BMS_MAX_DIMS];
    int64_t steps[BMS_MAX_DIMS];
    unsigned char seen[BMS_MAX_DIMS] = {0};
    enum bms_status rc;
    int n;

    rc = slice_args(node, in, starts, ends, axes, steps, &n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int d = 0; d < x->n_dims; d++) {
        v->start[d] = 0;
        v->step[d] = 1;
        v->dims[d] = x->dims[d];
    }
    for (int i = 0; i < n; i++) {
        int a;

        rc = bms__math_axis(node, axes[i], x->n_dims, 0, &a, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        if (steps[i] == 0 || seen[a]) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Slice: axis %d repeated or step 0", a);
        }
        seen[a] = 1;
        if (x->dims[a] < 0) {
            v->dims[a] = -1;
            continue;
        }
        v->step[a] = steps[i];
        slice_axis(x->dims[a], starts[i], ends[i], steps[i], &v->start[a],
                   &v->dims[a]);
    }
    return BMS_OK;
}


enum bms_status bms__slice_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    struct slice_view v;
    enum bms_status rc;

    if (!dtype_ok(in[0]->dtype)) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = slice_view(node, in, &v, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    out->dtype = in[0]->dtype;
    out->n_dims = in[0]->n_dims;
    memcpy(out->dims, v.dims, sizeof(int64_t) * (size_t)out->n_dims);
    return BMS_OK;
}


enum bms_status bms__slice_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int64_t strides[BMS_MAX_DIMS];
    int64_t base = 0;
    struct slice_view v;

    (void)ctx;
    if (slice_view(node, in, &v, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    bms__elem_strides(x->dims, x->n_dims, strides);
    for (int d = 0; d < x->n_dims; d++) {
        base += v.start[d] * strides[d];
        strides[d] *= v.step[d];
    }
    bms__elem_copy_view(out->data, x->data, bms_dtype_size(x->dtype),
                        out->dims, out->n_dims, base, strides);
    return BMS_OK;
}


/*
 * Split: the sizes come from input 1 (opset 13), the attribute split
 * (before), or equal parts: num_outputs of them (opset 18, the last one
 * smaller) or one per output.
 */
enum bms_status bms__split_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    if (node->n_outputs > MAX_SPLIT) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "Split: more than %d outputs", MAX_SPLIT);
    }
    return bms__math_check_arity(node, 1, 2, 1, MAX_SPLIT, diag);
}


static enum bms_status split_sizes(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   int *axis, int64_t *sizes,
                                   struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int n_out = node->n_outputs;
    int64_t total = 0;
    enum bms_status rc;
    int n = -1;

    rc = bms__math_axis(node, bms__attr_int(node, "axis", 0), x->n_dims, 0,
                        axis, diag);
    if (rc == BMS_OK) {
        rc = read_list(node, in, 1, "split", sizes, MAX_SPLIT, &n, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if (n < 0 && bms__attr_find(node, "split") != NULL) {
        const int64_t *a = bms__attr_ints(node, "split", &n);

        if (n > MAX_SPLIT) {
            n = MAX_SPLIT + 1;
        } else if (n > 0) {
            memcpy(sizes, a, sizeof(int64_t) * (size_t)n);
        }
    }
    if (n < 0) {
        int64_t d = x->dims[*axis];
        int64_t part = (d + n_out - 1) / n_out;

        for (int j = 0; j < n_out; j++) {
            int64_t left = d - part * j;

            sizes[j] = d < 0 ? -1 : left < part ? (left > 0 ? left : 0)
                                                : part;
        }
        if (d >= 0 && bms__attr_find(node, "num_outputs") == NULL &&
            d % n_out != 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Split: dim %lld does not split into %d "
                                "equal parts", (long long)d, n_out);
        }
        return BMS_OK;
    }
    for (int j = 0; j < n; j++) {
        total += sizes[j];
    }
    if (n != n_out || (x->dims[*axis] >= 0 && total != x->dims[*axis])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Split: %d sizes summing to %lld for %d outputs "
                            "and dim %lld", n, (long long)total, n_out,
                            (long long)x->dims[*axis]);
    }
    return BMS_OK;
}


enum bms_status bms__split_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    int64_t sizes[MAX_SPLIT + 1];
    enum bms_status rc;
    int axis;

    if (!dtype_ok(in[0]->dtype)) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = split_sizes(node, in, &axis, sizes, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        bms__elem_same_shape(&out[j], in[0]);
        out[j].dims[axis] = sizes[j];
    }
    return BMS_OK;
}


enum bms_status bms__split_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int64_t strides[BMS_MAX_DIMS];
    int64_t offset = 0;
    int axis;

    (void)ctx;
    if (bms__math_axis(node, bms__attr_int(node, "axis", 0), x->n_dims, 0,
                       &axis, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    bms__elem_strides(x->dims, x->n_dims, strides);
    for (int j = 0; j < node->n_outputs; j++) {
        bms__elem_copy_view(out[j].data, x->data, bms_dtype_size(x->dtype),
                            out[j].dims, out[j].n_dims,
                            offset * strides[axis], strides);
        offset += out[j].dims[axis];
    }
    return BMS_OK;
}


/* Expand: numpy broadcast of the input and the shape input. */
enum bms_status bms__expand_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    return bms__math_check_arity(node, 2, 2, 1, 1, diag);
}


enum bms_status bms__expand_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *ops[2];
    struct bms_tensor shape = {0};
    enum bms_status rc;
    int n;

    if (!dtype_ok(in[0]->dtype)) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = read_list(node, in, 1, "shape", shape.dims, BMS_MAX_DIMS, &n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    shape.n_dims = n;
    ops[0] = in[0];
    ops[1] = &shape;
    rc = bms__bcast_dims(node, ops, 2, out, diag);
    out->dtype = in[0]->dtype;
    return rc;
}


enum bms_status bms__expand_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    struct bms__iter it;

    (void)node;
    (void)ctx;
    bms__iter_init(&it, out->dims, out->n_dims, in, 1);
    bms__elem_copy_view(out->data, in[0]->data, bms_dtype_size(out->dtype),
                        out->dims, out->n_dims, 0, it.strides[0]);
    return BMS_OK;
}


/* Tile: out dims are in dims times repeats; out[i] reads in[i mod dim]. */
enum bms_status bms__tile_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    return bms__math_check_arity(node, 2, 3, 1, 1, diag);
}


enum bms_status bms__tile_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    int64_t reps[BMS_MAX_DIMS];
    enum bms_status rc;
    int n;

    if (!dtype_ok(in[0]->dtype)) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = read_list(node, in, 1, "repeats", reps, BMS_MAX_DIMS, &n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (n != in[0]->n_dims) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Tile: %d repeats for rank %d", n,
                            in[0]->n_dims);
    }
    bms__elem_same_shape(out, in[0]);
    for (int d = 0; d < n; d++) {
        if (reps[d] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Tile: repeats[%d] is negative", d);
        }
        out->dims[d] = in[0]->dims[d] < 0 ? -1 : in[0]->dims[d] * reps[d];
    }
    return BMS_OK;
}


/*
 * Tile as a view: out dim d of size r * n splits into (r, n), the first
 * with stride 0, so the 2 * rank dims of the view cover the output in
 * order.
 */
enum bms_status bms__tile_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int64_t strides[BMS_MAX_DIMS];
    int64_t vdims[2 * BMS_MAX_DIMS];
    int64_t vstrides[2 * BMS_MAX_DIMS];
    size_t size = bms_dtype_size(x->dtype);
    int n = x->n_dims;

    (void)node;
    (void)ctx;
    if (bms_tensor_numel(out) == 0) {
        return BMS_OK;
    }
    bms__elem_strides(x->dims, n, strides);
    for (int d = 0; d < n; d++) {
        vdims[2 * d] = out->dims[d] / x->dims[d];
        vstrides[2 * d] = 0;
        vdims[2 * d + 1] = x->dims[d];
        vstrides[2 * d + 1] = strides[d];
    }
    /* The view may have up to 16 dims: copy it in two halves of at most
     * BMS_MAX_DIMS, the outer odometer here and the inner one below. */
    if (2 * n <= BMS_MAX_DIMS) {
        bms__elem_copy_view(out->data, x->data, size, vdims, 2 * n, 0,
                            vstrides);
        return BMS_OK;
    }
    {
        int n_outer = 2 * n - BMS_MAX_DIMS;
        int64_t idx[BMS_MAX_DIMS] = {0};
        int64_t n_rows = 1;
        int64_t row = 1;
        char *o = out->data;

        for (int k = 0; k < n_outer; k++) {
            n_rows *= vdims[k];
        }
        for (int k = n_outer; k < 2 * n; k++) {
            row *= vdims[k];
        }
        for (int64_t r = 0; r < n_rows; r++) {
            int64_t base = 0;

            for (int k = 0; k < n_outer; k++) {
                base += idx[k] * vstrides[k];
            }
            bms__elem_copy_view(o, x->data, size, vdims + n_outer,
                                BMS_MAX_DIMS, base, vstrides + n_outer);
            o += (size_t)row * size;
            for (int k = n_outer - 1; k >= 0; k--) {
                if (++idx[k] < vdims[k]) {
                    break;
                }
                idx[k] = 0;
            }
        }
    }
    return BMS_OK;
}


/*
 * Pad: constant, edge and reflect modes.  Negative pads crop.  From opset
 * 11 pads, the constant value and (opset 18) axes are inputs; before,
 * attributes pads (or paddings) and value.
 */
enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

struct pad_params {
    enum pad_mode mode;
    int legacy;
};


enum bms_status bms__pad_prepare(struct bms__node *node,
                                 struct bms_diag *diag)
{
    int legacy = node->opset > 0 && node->opset < 11;
    struct pad_params *p;
    enum bms_status rc;
    char mode[16] = "constant";

    rc = bms__math_check_arity(node, legacy ? 1 : 2, legacy ? 1 : 4, 1, 1,
                               diag);
    if (rc != BMS_OK) {
        return rc;
    }
    bms__attr_string(node, "mode", mode, sizeof(mode));
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->legacy = legacy;
    if (strcmp(mode, "constant") == 0) {
        p->mode = PAD_CONSTANT;
    } else if (strcmp(mode, "reflect") == 0) {
        p->mode = PAD_REFLECT;
    } else if (strcmp(mode, "edge") == 0) {
        p->mode = PAD_EDGE;
    } else {
        free(p);
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "Pad: mode '%s' not supported", mode);
    }
    node->params = p;
    return BMS_OK;
}


/* Begin pads in pads[0..rank), end pads in pads[rank..2 rank). */
static enum bms_status pad_amounts(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   int64_t *pads, struct bms_diag *diag)
{
    const struct pad_params *p = node->params;
    int rank = in[0]->n_dims;
    int64_t vals[2 * BMS_MAX_DIMS];
    int64_t axes[BMS_MAX_DIMS];
    enum bms_status rc;
    int n_axes = -1;
    int n = 0;

    if (p->legacy) {
        const int64_t *a = bms__attr_ints(node, "pads", &n);

        if (a == NULL) {
            a = bms__attr_ints(node, "paddings", &n);
        }
        if (n > 2 * BMS_MAX_DIMS) {
            n = -1;
        }
        for (int i = 0; i < n; i++) {
            vals[i] = a[i];
        }
    } else {
        rc = read_list(node, in, 1, "pads", vals, 2 * BMS_MAX_DIMS, &n,
                       diag);
        if (rc == BMS_OK) {
            rc = read_list(node, in, 3, "axes", axes, BMS_MAX_DIMS, &n_axes,
                           diag);
        }
        if (rc != BMS_OK) {
            return rc;
        }
    }
    if (n_axes < 0) {
        n_axes = rank;
        for (int d = 0; d < rank; d++) {
            axes[d] = d;
        }
    }
    if (n != 2 * n_axes) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Pad: %d pads for %d axes", n, n_axes);
    }
    memset(pads, 0, sizeof(int64_t) * 2 * (size_t)rank);
    for (int i = 0; i < n_axes; i++) {
        int a;

        rc = bms__math_axis(node, axes[i], rank, 0, &a, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        pads[a] = vals[i];
        pads[rank + a] = vals[n_axes + i];
    }
    return BMS_OK;
}


enum bms_status bms__pad_infer(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms_diag *diag)
{
    const struct pad_params *p = node->params;
    const struct bms_tensor *x = in[0];
    int64_t pads[2 * BMS_MAX_DIMS];
    enum bms_status rc;

    if (!dtype_ok(x->dtype)) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (!p->legacy && node->n_inputs > 2 && in[2] != NULL &&
        (in[2]->dtype != x->dtype || bms_tensor_numel(in[2]) > 1)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Pad: constant_value must be one value of the "
                            "input's datatype");
    }
    rc = pad_amounts(node, in, pads, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    bms__elem_same_shape(out, x);
    for (int d = 0; d < x->n_dims; d++) {
        int64_t n = x->dims[d];

        if (n < 0) {
            continue;
        }
        out->dims[d] = n + pads[d] + pads[x->n_dims + d];
        if (out->dims[d] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Pad: pads crop dim %d below 0", d);
        }
        if (p->mode != PAD_CONSTANT && out->dims[d] > 0 && n == 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Pad: dim %d is empty, nothing to repeat",
                                d);
        }
    }
    return BMS_OK;
}


/* The input index an output coordinate c (already minus the begin pad)
 * reads along a dim of n, or -1 for the constant. */
static int64_t pad_source(enum pad_mode mode, int64_t c, int64_t n)
{
    if (c >= 0 && c < n) {
        return c;
    }
    if (mode == PAD_CONSTANT) {
        return -1;
    }
    if (mode == PAD_EDGE || n == 1) {
        return c < 0 ? 0 : n - 1;
    }
    {
        int64_t period = 2 * (n - 1);

        c = c < 0 ? -c : c;
        c %= period;
        return c >= n ? period - c : c;
    }
}


enum bms_status bms__pad_run(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out,
                             struct bms__ctx *ctx)
{
    const struct pad_params *p = node->params;
    const struct bms_tensor *x = in[0];
    size_t size = bms_dtype_size(x->dtype);
    int64_t n_out = bms_tensor_numel(out);
    int64_t pads[2 * BMS_MAX_DIMS];
    int64_t strides[BMS_MAX_DIMS];
    int64_t idx[BMS_MAX_DIMS] = {0};
    unsigned char value[8] = {0};
    int rank = x->n_dims;

    (void)ctx;
    if (pad_amounts(node, in, pads, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (p->legacy) {
        bms__elem_set_f(value, x->dtype, 0, bms__attr_float(node, "value",
                                                            0));
    } else if (node->n_inputs > 2 && in[2] != NULL &&
               bms_tensor_numel(in[2]) == 1) {
        memcpy(value, in[2]->data, size);
    }
    bms__elem_strides(x->dims, rank, strides);
    for (int64_t i = 0; i < n_out; i++) {
        int64_t off = 0;

        for (int d = 0; d < rank && off >= 0; d++) {
            int64_t s = pad_source(p->mode, idx[d] - pads[d], x->dims[d]);

            off = s < 0 ? -1 : off + s * strides[d];
        }
        if (off >= 0) {
            bms__elem_copy(out->data, i, x->data, off, size);
        } else {
            bms__elem_copy(out->data, i, value, 0, size);
        }
        for (int d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out->dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
    return BMS_OK;
}


/*
 * DepthToSpace and SpaceToDepth as 6-D views of the 4-D input (ONNX's
 * reshape-transpose-reshape definitions).
 */
enum bms_status bms__space_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    char mode[8] = "DCR";
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (bms__attr_int(node, "blocksize", 0) <= 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: blocksize must be positive",
                            node->op_type);
    }
    bms__attr_string(node, "mode", mode, sizeof(mode));
    if (strcmp(mode, "DCR") != 0 && strcmp(mode, "CRD") != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: mode must be DCR or CRD", node->op_type);
    }
    return BMS_OK;
}


enum bms_status bms__space_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int64_t b = bms__attr_int(node, "blocksize", 1);
    int to_space = strcmp(node->op_type, "DepthToSpace") == 0;

    if (!dtype_ok(x->dtype)) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims != 4) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: input must be 4-D, not %d-D",
                            node->op_type, x->n_dims);
    }
    bms__elem_same_shape(out, x);
    if (to_space) {
        if (x->dims[1] >= 0 && x->dims[1] % (b * b) != 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "DepthToSpace: channels %lld not a multiple "
                                "of blocksize^2", (long long)x->dims[1]);
        }
        out->dims[1] = x->dims[1] < 0 ? -1 : x->dims[1] / (b * b);
        out->dims[2] = x->dims[2] < 0 ? -1 : x->dims[2] * b;
        out->dims[3] = x->dims[3] < 0 ? -1 : x->dims[3] * b;
        return BMS_OK;
    }
    for (int d = 2; d < 4; d++) {
        if (x->dims[d] >= 0 && x->dims[d] % b != 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "SpaceToDepth: dim %d not a multiple of "
                                "blocksize", d);
        }
        out->dims[d] = x->dims[d] < 0 ? -1 : x->dims[d] / b;
    }
    out->dims[1] = x->dims[1] < 0 ? -1 : x->dims[1] * b * b;
    return BMS_OK;
}


enum bms_status bms__space_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int64_t b = bms__attr_int(node, "blocksize", 1);
    int64_t n = x->dims[0];
    int64_t c = x->dims[1];
    int64_t h = x->dims[2];
    int64_t w = x->dims[3];
    int64_t dims[6];
    int64_t st[6];
    char mode[8] = "DCR";

    (void)ctx;
    bms__attr_string(node, "mode", mode, sizeof(mode));
    if (strcmp(node->op_type, "DepthToSpace") == 0) {
        int64_t co = c / (b * b);
        /* Output [N, C', H, b, W, b]; input strides of its index parts.
         * DCR splits C as (b, b, C'), CRD as (C', b, b). */
        int dcr = strcmp(mode, "DCR") == 0;
        int64_t s_c = dcr ? h * w : b * b * h * w;
        int64_t s_b1 = dcr ? b * co * h * w : b * h * w;
        int64_t s_b2 = dcr ? co * h * w : h * w;
        int64_t d6[6] = {n, co, h, b, w, b};
        int64_t s6[6] = {c * h * w, s_c, w, s_b1, 1, s_b2};

        memcpy(dims, d6, sizeof(dims));
        memcpy(st, s6, sizeof(st));
    } else {
        int64_t ho = h / b;
        int64_t wo = w / b;
        /* Output [N, b, b, C, H/b, W/b] read from [N, C, H/b, b, W/b, b]. */
        int64_t d6[6] = {n, b, b, c, ho, wo};
        int64_t s6[6] = {c * h * w, w, 1, h * w, b * w, b};

        memcpy(dims, d6, sizeof(dims));
        memcpy(st, s6, sizeof(st));
    }
    bms__elem_copy_view(out->data, x->data, bms_dtype_size(x->dtype), dims,
                        6, 0, st);
    return BMS_OK;
}
