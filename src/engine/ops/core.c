/*
 * The structural operators: those that make, copy or re-index tensors
 * without arithmetic (Constant, Identity, Dropout at inference, Shape,
 * Reshape, Flatten, Squeeze, Unsqueeze, Concat, Gather, Transpose), and
 * the table bms__ops_core that lists them with Cast (ops/core_cast.c).
 *
 * Every kernel here moves bytes, so each works for every datatype.
 * Semantics follow the ONNX operator documents; the opset where an
 * attribute became an input is noted where it matters.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/core.h"

/* The most axes or shape entries an operator may name. */
#define MAX_LIST 64

/* Reshape's products stay below this (2^40), so they cannot overflow. */
#define MAX_NUMEL ((int64_t)1 << 40)


enum bms_status bms__core_check_inputs(const struct bms__node *node,
                                       const struct bms_tensor *const *in,
                                       int n_min, int n_max,
                                       struct bms_diag *diag)
{
    if (node->n_inputs < n_min || node->n_inputs > n_max) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%d inputs, %s takes %d to %d", node->n_inputs,
                            node->op_type, n_min, n_max);
    }
    for (int k = 0; in != NULL && k < n_min; k++) {
        if (in[k] == NULL) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "input %d is required", k);
        }
    }
    return BMS_OK;
}


enum bms_status bms__core_read_ints(const struct bms_tensor *t,
                                    const char *what, int64_t *vals,
                                    int max_n, int *n,
                                    struct bms_diag *diag)
{
    int64_t numel = bms_tensor_numel(t);

    if (t->dtype != BMS_DTYPE_I64 && t->dtype != BMS_DTYPE_I32) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: expected int64 or int32 data", what);
    }
    if (t->n_dims > 1 || numel > max_n) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: expected a list of at most %d values",
                            what, max_n);
    }
    if (t->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    for (int64_t i = 0; i < numel; i++) {
        vals[i] = t->dtype == BMS_DTYPE_I64 ? ((const int64_t *)t->data)[i]
                                            : ((const int32_t *)t->data)[i];
    }
    *n = (int)numel;
    return BMS_OK;
}


/* Normalise a possibly negative axis against rank; -1 when out of range. */
static int norm_axis(int64_t axis, int rank)
{
    if (axis < 0) {
        axis += rank;
    }
    return axis >= 0 && axis < rank ? (int)axis : -1;
}


static enum bms_status copy_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out, struct bms__ctx *ctx)
{
    size_t size = bms_tensor_size(in[0]);

    (void)node;
    (void)ctx;
    if (size > 0 && out[0].data != in[0]->data) {
        memcpy(out[0].data, in[0]->data, size);
    }
    return BMS_OK;
}


/* ---- Constant ---------------------------------------------------------- */

static const char *const constant_attrs[] = {
    "value", "value_float", "value_floats", "value_int", "value_ints",
    "value_string", "value_strings", "sparse_value",
};


/* ONNX Constant: exactly one of the value attributes; params gets the
 * tensor, its data pointing into the graph's attribute. */
static enum bms_status constant_prepare(struct bms__node *node,
                                        struct bms_diag *diag)
{
    const struct bms__attr *a = NULL;
    struct bms_tensor *t;
    int n_found = 0;

    for (size_t i = 0; i < sizeof(constant_attrs) / sizeof(char *); i++) {
        if (bms__attr_find(node, constant_attrs[i]) != NULL) {
            a = bms__attr_find(node, constant_attrs[i]);
            n_found++;
        }
    }
    if (n_found != 1 || node->n_outputs != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "needs one output and exactly one value "
                            "attribute, has %d", n_found);
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    node->params = t;
    if (a->type == BMS__ATTR_TENSOR && strcmp(a->name, "value") == 0) {
        *t = *a->t;
    } else if (a->type == BMS__ATTR_FLOAT) {
        *t = (struct bms_tensor){BMS_DTYPE_F32, 0, {0}, (void *)&a->f};
    } else if (a->type == BMS__ATTR_INT) {
        *t = (struct bms_tensor){BMS_DTYPE_I64, 0, {0}, (void *)&a->i};
    } else if (a->type == BMS__ATTR_FLOATS) {
        *t = (struct bms_tensor){BMS_DTYPE_F32, 1, {a->n},
                                 (void *)a->floats};
    } else if (a->type == BMS__ATTR_INTS) {
        *t = (struct bms_tensor){BMS_DTYPE_I64, 1, {a->n}, (void *)a->ints};
    } else {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "attribute '%s' is not supported", a->name);
    }
    return BMS_OK;
}


static enum bms_status constant_infer(const struct bms__node *node,
                                      const struct bms_tensor *const *in,
                                      struct bms_tensor *out,
                                      struct bms_diag *diag)
{
    const struct bms_tensor *t = node->params;

    (void)in;
    (void)diag;
    out[0] = *t;
    out[0].data = NULL;
    return BMS_OK;
}


static enum bms_status constant_run(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms__ctx *ctx)
{
    const struct bms_tensor *t = node->params;
    size_t size = bms_tensor_size(t);

    (void)in;
    (void)ctx;
    if (size > 0) {
        memcpy(out[0].data, t->data, size);
    }
    return BMS_OK;
}


/* ---- Identity ---------------------------------------------------------- */

static enum bms_status same_shape_infer(const struct bms__node *node,
                                        const struct bms_tensor *const *in,
                                        struct bms_tensor *out,
                                        struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 1, 1, diag);

    if (rc != BMS_OK) {
        return rc;
    }
    out[0] = *in[0];
    out[0].data = NULL;
    return BMS_OK;
}


/* ---- Dropout ----------------------------------------------------------- */

/* Whether the optional training_mode input (opset 12) is known true with
 * a non-zero ratio, which needs random numbers bms does not draw. */
static int dropout_training(const struct bms_tensor *const *in, int n_in)
{
    float ratio = 0.5f;

    if (n_in < 3 || in[2] == NULL || in[2]->data == NULL ||
        *(const uint8_t *)in[2]->data == 0) {
        return 0;
    }
    if (n_in >= 2 && in[1] != NULL && in[1]->data != NULL) {
        if (in[1]->dtype == BMS_DTYPE_F32) {
            ratio = *(const float *)in[1]->data;
        } else if (in[1]->dtype == BMS_DTYPE_F64) {
            ratio = (float)*(const double *)in[1]->data;
        }
    }
    return ratio != 0.0f;
}


static enum bms_status dropout_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 1, 3, diag);

    if (rc != BMS_OK) {
        return rc;
    }
    if (node->n_outputs < 1 || node->n_outputs > 2) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "1 or 2 outputs");
    }
    if (dropout_training(in, node->n_inputs)) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "training mode is not supported");
    }
    out[0] = *in[0];
    out[0].data = NULL;
    if (node->n_outputs == 2) {
        /* The mask is bool from opset 10, the input's type before. */
        out[1] = out[0];
        out[1].dtype = node->opset >= 10 ? BMS_DTYPE_BOOL : in[0]->dtype;
    }
    return BMS_OK;
}


/* Write the value 1 of t's datatype into every element. */
static void fill_one(struct bms_tensor *t)
{
    int64_t n = bms_tensor_numel(t);
    size_t esize = bms_dtype_size(t->dtype);
    unsigned char one[8] = {0};

    switch (t->dtype) {
    case BMS_DTYPE_F32: {
        float f = 1.0f;

        memcpy(one, &f, sizeof(f));
        break;
    }
    case BMS_DTYPE_F64: {
        double d = 1.0;

        memcpy(one, &d, sizeof(d));
        break;
    }
    case BMS_DTYPE_F16:
        one[1] = 0x3c;           /* 0x3c00, little-endian */
        break;
    default:
        one[0] = 1;
        break;
    }
    for (int64_t i = 0; i < n; i++) {
        memcpy((char *)t->data + (size_t)i * esize, one, esize);
    }
}


static enum bms_status dropout_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms__ctx *ctx)
{
    if (dropout_training(in, node->n_inputs)) {
        return BMS_ERR_UNSUPPORTED;
    }
    copy_run(node, in, out, ctx);
    if (node->n_outputs == 2) {
        fill_one(&out[1]);
    }
    return BMS_OK;
}


/* ---- Shape ------------------------------------------------------------- */

/* The [start, end) range of dims Shape reports (opset 15 attributes,
 * clamped to the rank as the operator document says). */
static void shape_range(const struct bms__node *node, int rank, int *start,
                        int *end)
{
    int64_t s = bms__attr_int(node, "start", 0);
    int64_t e = bms__attr_int(node, "end", rank);

    if (node->opset < 15) {
        s = 0;
        e = rank;
    }
    s = s < 0 ? s + rank : s;
    e = e < 0 ? e + rank : e;
    s = s < 0 ? 0 : (s > rank ? rank : s);
    e = e < 0 ? 0 : (e > rank ? rank : e);
    *start = (int)s;
    *end = (int)(e > s ? e : s);
}


static enum bms_status shape_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 1, 1, diag);
    int start;
    int end;

    if (rc != BMS_OK) {
        return rc;
    }
    shape_range(node, in[0]->n_dims, &start, &end);
    out[0].dtype = BMS_DTYPE_I64;
    out[0].n_dims = 1;
    out[0].dims[0] = end - start;
    return BMS_OK;
}


static enum bms_status shape_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out, struct bms__ctx *ctx)
{
    int64_t *dst = out[0].data;
    int start;
    int end;

    (void)ctx;
    shape_range(node, in[0]->n_dims, &start, &end);
    for (int d = start; d < end; d++) {
        dst[d - start] = in[0]->dims[d];
    }
    return BMS_OK;
}


/* ---- Reshape ----------------------------------------------------------- */

/* The requested shape: the second input from opset 5, an attribute
 * before. */
static enum bms_status reshape_target(const struct bms__node *node,
                                      const struct bms_tensor *const *in,
                                      int64_t *shape, int *n,
                                      struct bms_diag *diag)
{
    const int64_t *attr;
    enum bms_status rc;

    if (node->opset >= 5) {
        rc = bms__core_check_inputs(node, in, 2, 2, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        return bms__core_read_ints(in[1], "shape", shape, BMS_MAX_DIMS, n,
                                   diag);
    }
    rc = bms__core_check_inputs(node, in, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    attr = bms__attr_ints(node, "shape", n);
    if (*n > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "more than %d dims",
                            BMS_MAX_DIMS);
    }
    if (*n > 0) {
        memcpy(shape, attr, (size_t)*n * sizeof(int64_t));
    }
    return BMS_OK;
}


static enum bms_status reshape_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    int allowzero = node->opset >= 14 &&
                    bms__attr_int(node, "allowzero", 0) != 0;
    int64_t shape[BMS_MAX_DIMS];
    int64_t known = 1;
    int infer_at = -1;
    enum bms_status rc;
    int n;

    rc = reshape_target(node, in, shape, &n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int d = 0; d < n; d++) {
        if (shape[d] == 0 && !allowzero) {
            if (d >= in[0]->n_dims) {
                return bms_diag_set(diag, BMS_ERR_INVALID,
                                    "shape[%d] is 0 but the input has "
                                    "only %d dims", d, in[0]->n_dims);
            }
            shape[d] = in[0]->dims[d];
        }
        if (shape[d] == -1 && infer_at < 0) {
            infer_at = d;
        } else if (shape[d] < 0 || shape[d] > MAX_NUMEL ||
                   (shape[d] > 0 && known > MAX_NUMEL / shape[d])) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "shape[%d] is %lld", d,
                                (long long)shape[d]);
        } else {
            known *= shape[d];
        }
    }
    if (infer_at >= 0) {
        if (known == 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "-1 in a shape with a zero dim");
        }
        shape[infer_at] = bms_tensor_numel(in[0]) / known;
        known *= shape[infer_at];
    }
    if (known != bms_tensor_numel(in[0])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "cannot reshape %lld elements to %lld",
                            (long long)bms_tensor_numel(in[0]),
                            (long long)known);
    }
    out[0].dtype = in[0]->dtype;
    out[0].n_dims = n;
    memcpy(out[0].dims, shape, (size_t)n * sizeof(int64_t));
    return BMS_OK;
}


/* ---- Flatten ----------------------------------------------------------- */

static enum bms_status flatten_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 1, 1, diag);
    int64_t axis = bms__attr_int(node, "axis", 1);
    int64_t outer = 1;
    int rank;

    if (rc != BMS_OK) {
        return rc;
    }
    rank = in[0]->n_dims;
    axis = axis < 0 ? axis + rank : axis;
    if (axis < 0 || axis > rank) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "axis %lld out of range for %d dims",
                            (long long)bms__attr_int(node, "axis", 1), rank);
    }
    for (int d = 0; d < axis; d++) {
        outer *= in[0]->dims[d];
    }
    out[0].dtype = in[0]->dtype;
    out[0].n_dims = 2;
    out[0].dims[0] = outer;
    out[0].dims[1] = outer == 0 ? 0 : bms_tensor_numel(in[0]) / outer;
    if (outer == 0) {
        int64_t inner = 1;

        for (int d = (int)axis; d < rank; d++) {
            inner *= in[0]->dims[d];
        }
        out[0].dims[1] = inner;
    }
    return BMS_OK;
}


/* ---- Squeeze and Unsqueeze --------------------------------------------- */

/* The axes: an input from opset 13, an attribute before.  *given is 0
 * when neither names any. */
static enum bms_status read_axes(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 int64_t *axes, int *n, int *given,
                                 struct bms_diag *diag)
{
    const int64_t *attr;

    *n = 0;
    *given = 0;
    if (node->opset >= 13) {
        if (node->n_inputs < 2 || in[1] == NULL) {
            return BMS_OK;
        }
        *given = 1;
        return bms__core_read_ints(in[1], "axes", axes, MAX_LIST, n, diag);
    }
    attr = bms__attr_ints(node, "axes", n);
    if (*n > MAX_LIST) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "too many axes");
    }
    *given = attr != NULL;
    if (*n > 0) {
        memcpy(axes, attr, (size_t)*n * sizeof(int64_t));
    }
    return BMS_OK;
}


static enum bms_status squeeze_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    int drop[BMS_MAX_DIMS] = {0};
    int64_t axes[MAX_LIST];
    enum bms_status rc;
    int rank;
    int given;
    int n;

    rc = bms__core_check_inputs(node, in, 1, 2, diag);
    if (rc == BMS_OK) {
        rc = read_axes(node, in, axes, &n, &given, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    rank = in[0]->n_dims;
    for (int i = 0; i < n; i++) {
        int a = norm_axis(axes[i], rank);

        if (a < 0 || in[0]->dims[a] != 1) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "axis %lld is not a dim of size 1",
                                (long long)axes[i]);
        }
        drop[a] = 1;
    }
    out[0].dtype = in[0]->dtype;
    out[0].n_dims = 0;
    for (int d = 0; d < rank; d++) {
        if (drop[d] || (!given && in[0]->dims[d] == 1)) {
            continue;
        }
        out[0].dims[out[0].n_dims++] = in[0]->dims[d];
    }
    return BMS_OK;
}


static enum bms_status unsqueeze_infer(const struct bms__node *node,
                                       const struct bms_tensor *const *in,
                                       struct bms_tensor *out,
                                       struct bms_diag *diag)
{
    int add[BMS_MAX_DIMS] = {0};
    int64_t axes[MAX_LIST];
    enum bms_status rc;
    int rank;
    int given;
    int n;
    int src = 0;

    rc = bms__core_check_inputs(node, in, node->opset >= 13 ? 2 : 1, 2,
                                diag);
    if (rc == BMS_OK) {
        rc = read_axes(node, in, axes, &n, &given, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    rank = in[0]->n_dims + n;
    if (rank > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "more than %d dims",
                            BMS_MAX_DIMS);
    }
    for (int i = 0; i < n; i++) {
        int a = norm_axis(axes[i], rank);

        if (a < 0 || add[a]) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "axis %lld out of range or repeated",
                                (long long)axes[i]);
        }
        add[a] = 1;
    }
    out[0].dtype = in[0]->dtype;
    out[0].n_dims = rank;
    for (int d = 0; d < rank; d++) {
        out[0].dims[d] = add[d] ? 1 : in[0]->dims[src++];
    }
    return BMS_OK;
}


/* ---- Concat ------------------------------------------------------------ */

static enum bms_status concat_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    const struct bms_tensor *first = node->n_inputs > 0 ? in[0] : NULL;
    int64_t axis_attr = bms__attr_int(node, "axis", 1);
    int64_t total = 0;
    int axis;

    if (first == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "no inputs");
    }
    axis = norm_axis(axis_attr, first->n_dims);
    if (axis < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "axis %lld out of range for %d dims",
                            (long long)axis_attr, first->n_dims);
    }
    for (int k = 0; k < node->n_inputs; k++) {
        const struct bms_tensor *t = in[k];

        if (t == NULL || t->dtype != first->dtype ||
            t->n_dims != first->n_dims) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "input %d: datatype or rank differs from "
                                "input 0", k);
        }
        for (int d = 0; d < t->n_dims; d++) {
            if (d != axis && t->dims[d] != first->dims[d]) {
                return bms_diag_set(diag, BMS_ERR_INVALID,
                                    "input %d: dims[%d] is %lld, input 0 "
                                    "has %lld", k, d, (long long)t->dims[d],
                                    (long long)first->dims[d]);
            }
        }
        total += t->dims[axis];
    }
    out[0] = *first;
    out[0].data = NULL;
    out[0].dims[axis] = total;
    return BMS_OK;
}


static enum bms_status concat_run(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms__ctx *ctx)
{
    int axis = norm_axis(bms__attr_int(node, "axis", 1), out[0].n_dims);
    size_t esize = bms_dtype_size(out[0].dtype);
    int64_t outer = 1;
    int64_t inner = 1;
    char *dst = out[0].data;

    (void)ctx;
    for (int d = 0; d < axis; d++) {
        outer *= out[0].dims[d];
    }
    for (int d = axis + 1; d < out[0].n_dims; d++) {
        inner *= out[0].dims[d];
    }
    /* Output row o is each input's row o, one after the other. */
    for (int64_t o = 0; o < outer; o++) {
        for (int k = 0; k < node->n_inputs; k++) {
            size_t chunk = (size_t)(in[k]->dims[axis] * inner) * esize;

            if (chunk > 0) {
                memcpy(dst, (const char *)in[k]->data + (size_t)o * chunk,
                       chunk);
            }
            dst += chunk;
        }
    }
    return BMS_OK;
}


/* ---- Gather ------------------------------------------------------------ */

static enum bms_status gather_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 2, 2, diag);
    int64_t axis_attr = bms__attr_int(node, "axis", 0);
    const struct bms_tensor *data;
    const struct bms_tensor *idx;
    int axis;
    int n = 0;

    if (rc != BMS_OK) {
        return rc;
    }
    data = in[0];
    idx = in[1];
    axis = norm_axis(axis_attr, data->n_dims);
    if (axis < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "axis %lld out of range for %d dims",
                            (long long)axis_attr, data->n_dims);
    }
    if (idx->dtype != BMS_DTYPE_I64 && idx->dtype != BMS_DTYPE_I32) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "indices must be int64 or int32");
    }
    if (data->n_dims - 1 + idx->n_dims > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "more than %d dims",
                            BMS_MAX_DIMS);
    }
    out[0].dtype = data->dtype;
    for (int d = 0; d < axis; d++) {
        out[0].dims[n++] = data->dims[d];
    }
    for (int d = 0; d < idx->n_dims; d++) {
        out[0].dims[n++] = idx->dims[d];
    }
    for (int d = axis + 1; d < data->n_dims; d++) {
        out[0].dims[n++] = data->dims[d];
    }
    out[0].n_dims = n;
    return BMS_OK;
}


static enum bms_status gather_run(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms__ctx *ctx)
{
    const struct bms_tensor *data = in[0];
    const struct bms_tensor *idx = in[1];
    int axis = norm_axis(bms__attr_int(node, "axis", 0), data->n_dims);
    int64_t n_idx = bms_tensor_numel(idx);
    int64_t dim = data->dims[axis];
    int64_t outer = 1;
    size_t block = bms_dtype_size(data->dtype);
    char *dst = out[0].data;

    (void)ctx;
    for (int d = 0; d < axis; d++) {
        outer *= data->dims[d];
    }
    for (int d = axis + 1; d < data->n_dims; d++) {
        block *= (size_t)data->dims[d];
    }
    for (int64_t o = 0; o < outer; o++) {
        const char *src = (const char *)data->data +
                          (size_t)(o * dim) * block;

        for (int64_t i = 0; i < n_idx; i++) {
            int64_t j = idx->dtype == BMS_DTYPE_I64
                            ? ((const int64_t *)idx->data)[i]
                            : ((const int32_t *)idx->data)[i];

            j = j < 0 ? j + dim : j;
            if (j < 0 || j >= dim) {
                return BMS_ERR_INVALID;
            }
            if (block > 0) {
                memcpy(dst, src + (size_t)j * block, block);
            }
            dst += block;
        }
    }
    return BMS_OK;
}


/* ---- Transpose --------------------------------------------------------- */

/* perm, defaulting to the reversed axes; -1 if it is not a permutation. */
static int transpose_perm(const struct bms__node *node, int rank, int *perm)
{
    int seen[BMS_MAX_DIMS] = {0};
    const int64_t *attr;
    int n;

    attr = bms__attr_ints(node, "perm", &n);
    if (attr == NULL) {
        for (int d = 0; d < rank; d++) {
            perm[d] = rank - 1 - d;
        }
        return 0;
    }
    if (n != rank) {
        return -1;
    }
    for (int d = 0; d < rank; d++) {
        if (attr[d] < 0 || attr[d] >= rank || seen[attr[d]]) {
            return -1;
        }
        seen[attr[d]] = 1;
        perm[d] = (int)attr[d];
    }
    return 0;
}


static enum bms_status transpose_infer(const struct bms__node *node,
                                       const struct bms_tensor *const *in,
                                       struct bms_tensor *out,
                                       struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 1, 1, diag);
    int perm[BMS_MAX_DIMS];

    if (rc != BMS_OK) {
        return rc;
    }
    if (transpose_perm(node, in[0]->n_dims, perm) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "perm is not a permutation of %d axes",
                            in[0]->n_dims);
    }
    out[0].dtype = in[0]->dtype;
    out[0].n_dims = in[0]->n_dims;
    for (int d = 0; d < in[0]->n_dims; d++) {
        out[0].dims[d] = in[0]->dims[perm[d]];
    }
    return BMS_OK;
}


/* The transpose reduced to its essentials: output axes of size 1 dropped
 * and runs of output axes that are adjacent in the input too merged.
 * Fills the output dims and each one's input stride (elements); returns
 * their count, at least 1. */
static int transpose_merge(const struct bms_tensor *in, const int *perm,
                           int64_t *dims, int64_t *strides)
{
    int64_t in_stride[BMS_MAX_DIMS];
    int rank = in->n_dims;
    int n = 0;

    in_stride[rank - 1] = 1;
    for (int d = rank - 2; d >= 0; d--) {
        in_stride[d] = in_stride[d + 1] * in->dims[d + 1];
    }
    for (int d = 0; d < rank; d++) {
        int64_t size = in->dims[perm[d]];
        int64_t stride = in_stride[perm[d]];

        if (size == 1) {
            continue;
        }
        if (n > 0 && strides[n - 1] == stride * size) {
            dims[n - 1] *= size;
            strides[n - 1] = stride;
            continue;
        }
        dims[n] = size;
        strides[n] = stride;
        n++;
    }
    if (n == 0) {
        dims[0] = 1;
        strides[0] = 1;
        n = 1;
    }
    return n;
}


/* Output rows x cols from src, whose rows and columns lie rs and cs
 * elements apart, in square tiles so that both sides stay in cache. */
#define TILE 16
#define TILE_COPY(fname, T)                                                 \
    static void fname(T *dst, const T *src, int64_t rows, int64_t cols,     \
                      int64_t rs, int64_t cs)                               \
    {                                                                       \
        for (int64_t i0 = 0; i0 < rows; i0 += TILE) {                       \
            int64_t i1 = i0 + TILE < rows ? i0 + TILE : rows;               \
                                                                            \
            for (int64_t j0 = 0; j0 < cols; j0 += TILE) {                   \
                int64_t j1 = j0 + TILE < cols ? j0 + TILE : cols;           \
                                                                            \
                for (int64_t i = i0; i < i1; i++) {                         \
                    for (int64_t j = j0; j < j1; j++) {                     \
                        dst[i * cols + j] = src[i * rs + j * cs];           \
                    }                                                       \
                }                                                           \
            }                                                               \
        }                                                                   \
    }

TILE_COPY(tile_copy_1, uint8_t)
TILE_COPY(tile_copy_2, uint16_t)
TILE_COPY(tile_copy_4, uint32_t)
TILE_COPY(tile_copy_8, uint64_t)


/* One output matrix of the transpose, elements of esize bytes. */
static void copy_matrix(char *dst, const char *src, size_t esize,
                        int64_t rows, int64_t cols, int64_t rs, int64_t cs)
{
    switch (esize) {
    case 1:
        tile_copy_1((void *)dst, (const void *)src, rows, cols, rs, cs);
        break;
    case 2:
        tile_copy_2((void *)dst, (const void *)src, rows, cols, rs, cs);
        break;
    case 4:
        tile_copy_4((void *)dst, (const void *)src, rows, cols, rs, cs);
        break;
    case 8:
        tile_copy_8((void *)dst, (const void *)src, rows, cols, rs, cs);
        break;
    default:
        for (int64_t i = 0; i < rows; i++) {
            for (int64_t j = 0; j < cols; j++) {
                memcpy(dst + (size_t)(i * cols + j) * esize,
                       src + (size_t)(i * rs + j * cs) * esize, esize);
            }
        }
        break;
    }
}


/* dst walks the output in order.  When the last output axis is
 * contiguous in the input too, each output row is one memcpy; otherwise
 * the last two output axes are copied as tiled matrices. */
static void transpose_copy(const struct bms_tensor *in,
                           struct bms_tensor *out, const int *perm)
{
    size_t esize = bms_dtype_size(in->dtype);
    int64_t dims[BMS_MAX_DIMS];
    int64_t strides[BMS_MAX_DIMS];
    int64_t pos[BMS_MAX_DIMS] = {0};
    int n = transpose_merge(in, perm, dims, strides);
    int inner = strides[n - 1] == 1 || n == 1 ? 1 : 2;
    int64_t rows = inner == 2 ? dims[n - 2] : 1;
    int64_t cols = dims[n - 1];
    int64_t n_outer = 1;
    const char *src = in->data;
    char *dst = out->data;

    for (int d = 0; d < n - inner; d++) {
        n_outer *= dims[d];
    }
    for (int64_t t = 0; t < n_outer; t++) {
        int64_t off = 0;

        for (int d = 0; d < n - inner; d++) {
            off += pos[d] * strides[d];
        }
        if (inner == 1) {
            memcpy(dst, src + (size_t)off * esize, (size_t)cols * esize);
        } else {
            copy_matrix(dst, src + (size_t)off * esize, esize, rows, cols,
                        strides[n - 2], strides[n - 1]);
        }
        dst += (size_t)(rows * cols) * esize;
        for (int d = n - inner - 1; d >= 0; d--) {
            if (++pos[d] < dims[d]) {
                break;
            }
            pos[d] = 0;
        }
    }
}


static enum bms_status transpose_run(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms__ctx *ctx)
{
    int perm[BMS_MAX_DIMS];

    (void)ctx;
    if (in[0]->n_dims == 0 || bms_tensor_numel(in[0]) == 0) {
        return copy_run(node, in, out, ctx);
    }
    transpose_perm(node, in[0]->n_dims, perm);
    transpose_copy(in[0], &out[0], perm);
    return BMS_OK;
}


const struct bms__op bms__ops_core[] = {
    {"Constant", constant_prepare, constant_infer, constant_run},
    {"Identity", NULL, same_shape_infer, copy_run},
    {"Dropout", NULL, dropout_infer, dropout_run},
    {"Shape", NULL, shape_infer, shape_run},
    {"Reshape", NULL, reshape_infer, copy_run},
    {"Flatten", NULL, flatten_infer, copy_run},
    {"Squeeze", NULL, squeeze_infer, copy_run},
    {"Unsqueeze", NULL, unsqueeze_infer, copy_run},
    {"Concat", NULL, concat_infer, concat_run},
    {"Gather", NULL, gather_infer, gather_run},
    {"Transpose", NULL, transpose_infer, transpose_run},
    {"Cast", bms__cast_prepare, bms__cast_infer, bms__cast_run},
    {"CastLike", NULL, bms__castlike_infer, bms__cast_run},
    {NULL, NULL, NULL, NULL},
};
