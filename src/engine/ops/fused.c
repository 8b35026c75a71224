/*
 * The fused element-wise operators the optimiser makes (see fused.h):
 * bms.Gelu, which stands for the five nodes of an exported GELU, and
 * bms.AddLayerNorm, a residual Add and the LayerNormalization after it
 * in one pass over each row.  Both compute in F32 with the loops of
 * vecmath.c.
 */
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/fused.h"
#include "engine/ops/kernels.h"
#include "engine/ops/vecmath.h"


/* ---- bms.Gelu ---------------------------------------------------------- */

enum bms_status bms__gelu_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    return bms__math_check_arity(node, 1, 1, 1, 1, diag);
}


enum bms_status bms__gelu_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    if (in[0]->dtype != BMS_DTYPE_F32) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    bms__elem_same_shape(out, in[0]);
    return BMS_OK;
}


enum bms_status bms__gelu_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    (void)node;
    (void)ctx;
    bms__vec_gelu(out->data, in[0]->data, bms_tensor_numel(out));
    return BMS_OK;
}


/* ---- bms.AddLayerNorm -------------------------------------------------- */

/* Inputs: A, B (added, broadcasting), scale, optional bias. */
enum bms_status bms__addnorm_prepare(struct bms__node *node,
                                     struct bms_diag *diag)
{
    enum bms_status rc = bms__math_check_arity(node, 3, 4, 1, 1, diag);

    if (rc != BMS_OK) {
        return rc;
    }
    if (bms__attr_int(node, "axis", -1) != -1 ||
        bms__attr_int(node, "stash_type", 1) != 1) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: only axis -1 and stash_type 1",
                            node->op_type);
    }
    return BMS_OK;
}


/* scale or bias: F32, as many values as a row, in any rank. */
static int row_vector(const struct bms_tensor *t, int64_t n)
{
    int64_t len = bms__math_span(t->dims, 0, t->n_dims);

    return t->dtype == BMS_DTYPE_F32 && (len == n || len < 0 || n < 0);
}


enum bms_status bms__addnorm_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    const struct bms_tensor *bias = node->n_inputs > 3 ? in[3] : NULL;
    enum bms_status rc;
    int64_t n;

    if (in[0]->dtype != BMS_DTYPE_F32 || in[1]->dtype != BMS_DTYPE_F32) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = bms__bcast_dims(node, in, 2, out, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (out->n_dims < 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: the sum must have rank 1 or more",
                            node->op_type);
    }
    n = out->dims[out->n_dims - 1];
    if (!row_vector(in[2], n) || (bias != NULL && !row_vector(bias, n))) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: scale and bias must hold %lld F32 values",
                            node->op_type, (long long)n);
    }
    out->dtype = BMS_DTYPE_F32;
    return BMS_OK;
}


/* Rows of t when it is shaped as the last dims of out (after leading
 * 1s, the last dim included), so that row i of out adds row i % rows of
 * t; 0 otherwise. */
static int64_t trailing_rows(const struct bms_tensor *t,
                             const struct bms_tensor *out)
{
    int shift = out->n_dims - t->n_dims;
    int first = 0;
    int64_t n = out->dims[out->n_dims - 1];

    if (shift < 0 || t->n_dims == 0 || n <= 0) {
        return 0;
    }
    while (first < t->n_dims - 1 && t->dims[first] == 1) {
        first++;
    }
    for (int d = first; d < t->n_dims; d++) {
        if (t->dims[d] != out->dims[d + shift]) {
            return 0;
        }
    }
    return bms_tensor_numel(t) / n;
}


/* The sum into out by the broadcasting odometer, for shapes the row
 * paths do not cover. */
static void add_broadcast(const struct bms_tensor *a,
                          const struct bms_tensor *b, struct bms_tensor *out)
{
    const struct bms_tensor *ops[2] = {a, b};
    const float *pa = a->data;
    const float *pb = b->data;
    float *y = out->data;
    int64_t count = bms_tensor_numel(out);
    struct bms__iter it;

    bms__iter_init(&it, out->dims, out->n_dims, ops, 2);
    for (int64_t i = 0; i < count; i++, bms__iter_next(&it)) {
        y[i] = pa[it.off[0]] + pb[it.off[1]];
    }
}


enum bms_status bms__addnorm_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms__ctx *ctx)
{
    const struct bms_tensor *bias = node->n_inputs > 3 ? in[3] : NULL;
    const float *pb = bias != NULL ? bias->data : NULL;
    float eps = bms__attr_float(node, "epsilon", 1e-5f);
    int64_t n = out->dims[out->n_dims - 1];
    int64_t rows = n > 0 ? bms_tensor_numel(out) / n : 0;
    int64_t a_rows = trailing_rows(in[0], out);
    int64_t b_rows = trailing_rows(in[1], out);
    const float *x = in[0]->data;
    const float *r = in[1]->data;
    float *y = out->data;

    (void)ctx;
    /* Make x the operand as large as the output and r the other. */
    if (a_rows != rows) {
        const float *t = x;

        x = r;
        r = t;
        a_rows = b_rows;
        b_rows = trailing_rows(in[0], out);
    }
    if (a_rows != rows || b_rows == 0) {
        add_broadcast(in[0], in[1], out);
        x = y;
        r = NULL;
        b_rows = 1;
    }
    for (int64_t i = 0; i < rows; i++) {
        float mean;
        float inv_std;

        bms__vec_layernorm(y + i * n, x + i * n,
                           r != NULL ? r + (i % b_rows) * n : NULL,
                           in[2]->data, pb, n, eps, &mean, &inv_std);
    }
    return BMS_OK;
}
