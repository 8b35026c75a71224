/*
 * Linear quantisation: QuantizeLinear (F32 or INT32 to UINT8 / INT8),
 * DequantizeLinear (UINT8, INT8 or INT32 to F32) with a per-tensor or
 * per-axis scale and zero point, and DynamicQuantizeLinear (F32 to UINT8
 * with the scale and zero point computed from the data).
 *
 * Rounding is half to even and results saturate to the output range, as
 * ONNX asks; the division by the scale is done in float32, as in the
 * ONNX reference.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"


static int is_op(const struct bms__node *node, const char *name)
{
    return strcmp(node->op_type, name) == 0;
}


enum bms_status bms__quant_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    if (is_op(node, "DynamicQuantizeLinear")) {
        return bms__math_check_arity(node, 1, 1, 3, 3, diag);
    }
    return bms__math_check_arity(node, 2, 3, 1, 1, diag);
}


static int quant_dtype(enum bms_dtype dt)
{
    return dt == BMS_DTYPE_U8 || dt == BMS_DTYPE_I8;
}


/* The scale and zero point: one value, or one per index of x's axis. */
static enum bms_status check_params(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    int *axis, struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *zp = node->n_inputs > 2 ? in[2] : NULL;
    int64_t n = bms_tensor_numel(in[1]);
    enum bms_status rc;

    *axis = 0;
    if (in[1]->dtype != BMS_DTYPE_F32 || in[1]->n_dims > 1 ||
        (zp != NULL && (bms_tensor_numel(zp) != n || zp->n_dims > 1))) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: scale must be F32, zero point of the same "
                            "count, both scalars or 1-D", node->op_type);
    }
    if (in[1]->n_dims == 1 && n != 1) {
        rc = bms__math_axis(node, bms__attr_int(node, "axis", 1), x->n_dims,
                            0, axis, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        if (x->dims[*axis] != n) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: %lld scales for axis %d of %lld",
                                node->op_type, (long long)n, *axis,
                                (long long)x->dims[*axis]);
        }
    }
    return BMS_OK;
}


enum bms_status bms__quant_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *zp = node->n_inputs > 2 ? in[2] : NULL;
    int axis;

    if (is_op(node, "DynamicQuantizeLinear")) {
        if (x->dtype != BMS_DTYPE_F32) {
            return bms__math_bad_dtype(node, x->dtype, diag);
        }
        bms__elem_same_shape(&out[0], x);
        out[0].dtype = BMS_DTYPE_U8;
        out[1].dtype = BMS_DTYPE_F32;
        out[2].dtype = BMS_DTYPE_U8;
        return BMS_OK;
    }
    if (is_op(node, "QuantizeLinear")) {
        if (x->dtype != BMS_DTYPE_F32 && x->dtype != BMS_DTYPE_I32) {
            return bms__math_bad_dtype(node, x->dtype, diag);
        }
        if (zp != NULL && !quant_dtype(zp->dtype)) {
            return bms__math_bad_dtype(node, zp->dtype, diag);
        }
    } else if (!quant_dtype(x->dtype) && x->dtype != BMS_DTYPE_I32) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    } else if (zp != NULL && zp->dtype != x->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "DequantizeLinear: zero point differs from x in "
                            "datatype");
    }
    bms__elem_same_shape(out, x);
    if (is_op(node, "QuantizeLinear")) {
        out->dtype = zp != NULL ? zp->dtype : BMS_DTYPE_U8;
    } else {
        out->dtype = BMS_DTYPE_F32;
    }
    return check_params(node, in, &axis, diag);
}


static double saturate(enum bms_dtype dt, double v)
{
    double lo = dt == BMS_DTYPE_U8 ? 0 : -128;
    double hi = dt == BMS_DTYPE_U8 ? 255 : 127;

    return v < lo ? lo : v > hi ? hi : v;
}


/* ONNX's reference computes in float32; so does this, so that values on
 * a rounding boundary land where the reference puts them. */
static void dynamic_run(const struct bms_tensor *x, struct bms_tensor *out)
{
    const float *px = x->data;
    int64_t n = bms_tensor_numel(x);
    float lo = 0;
    float hi = 0;
    float scale;
    float zp;

    for (int64_t i = 0; i < n; i++) {
        lo = px[i] < lo ? px[i] : lo;
        hi = px[i] > hi ? px[i] : hi;
    }
    scale = (hi - lo) / 255.0f;
    zp = scale > 0 ? (float)saturate(BMS_DTYPE_U8, nearbyintf(-lo / scale))
                   : 0;
    for (int64_t i = 0; i < n; i++) {
        float q = scale > 0 ? nearbyintf(px[i] / scale) + zp : zp;

        ((uint8_t *)out[0].data)[i] = (uint8_t)saturate(BMS_DTYPE_U8, q);
    }
    *(float *)out[1].data = scale;
    *(uint8_t *)out[2].data = (uint8_t)zp;
}


enum bms_status bms__quant_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *zp = node->n_inputs > 2 ? in[2] : NULL;
    int64_t n = bms_tensor_numel(x);
    int quantize = is_op(node, "QuantizeLinear");
    const float *scale;
    int64_t n_params;
    int64_t inner;
    int64_t len;
    int axis = 0;

    (void)ctx;
    if (is_op(node, "DynamicQuantizeLinear")) {
        dynamic_run(x, out);
        return BMS_OK;
    }
    if (check_params(node, in, &axis, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    scale = in[1]->data;
    n_params = bms_tensor_numel(in[1]);
    len = n_params > 1 ? x->dims[axis] : 1;
    inner = n_params > 1 ? bms__math_span(x->dims, axis + 1, x->n_dims) : 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = n_params > 1 ? (i / inner) % len : 0;
        double z = zp != NULL ? bms__elem_get_f(zp->data, zp->dtype, k) : 0;
        double v = bms__elem_get_f(x->data, x->dtype, i);

        if (quantize) {
            v = saturate(out->dtype,
                         nearbyintf((float)v / scale[k]) + z);
        } else {
            v = (v - z) * scale[k];
        }
        bms__elem_set_f(out->data, out->dtype, i, v);
    }
    return BMS_OK;
}
