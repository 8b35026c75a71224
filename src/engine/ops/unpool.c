/*
 * MaxUnpool: the partial inverse of MaxPool.  Each element of X goes to
 * the place its INT64 index names in the unpooled tensor, whose spatial
 * dims are (in - 1) * stride - pad_begin - pad_end + kernel; everything
 * else is 0.  The indices are row-major over that whole tensor, batch and
 * channel included, as MaxPool gives them.
 *
 * With the optional output_shape input the result takes that shape, the
 * unpooled tensor at its start and zeros after (the ONNX reference's
 * reading of the input; it must be at least the unpooled shape in every
 * dim).  Its value decides the output's dims, so without its data, at
 * load, infer answers BMS_ERR_UNAVAILABLE.  When two elements name the
 * same place, the later one wins.
 */
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"


enum bms_status bms__unpool_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    int n_k = 0;

    bms__attr_ints(node, "kernel_shape", &n_k);
    if (n_k == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "MaxUnpool: kernel_shape is required");
    }
    return bms__math_check_arity(node, 2, 3, 1, 1, diag);
}


/* The unpooled dims from X's and the attributes. */
static enum bms_status unpooled_dims(const struct bms__node *node,
                                     const struct bms_tensor *x,
                                     int64_t *dims, struct bms_diag *diag)
{
    int n_k = 0;
    int n_s = 0;
    int n_p = 0;
    const int64_t *ks = bms__attr_ints(node, "kernel_shape", &n_k);
    const int64_t *ss = bms__attr_ints(node, "strides", &n_s);
    const int64_t *ps = bms__attr_ints(node, "pads", &n_p);
    int n_sp = x->n_dims - 2;

    if (x->n_dims < 3 || n_k != n_sp || (n_s != 0 && n_s != n_sp) ||
        (n_p != 0 && n_p != 2 * n_sp)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "MaxUnpool: X must be [N, C, D...] with "
                            "kernel_shape, strides and pads for each D");
    }
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < n_sp; i++) {
        int64_t s = n_s > 0 ? ss[i] : 1;
        int64_t pads = n_p > 0 ? ps[i] + ps[n_sp + i] : 0;
        int64_t in = x->dims[2 + i];

        if (ks[i] < 1 || s < 1 || ks[i] > (1 << 30) || s > (1 << 30) ||
            (n_p > 0 && (ps[i] < 0 || ps[n_sp + i] < 0 ||
                         pads > (1 << 30)))) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "MaxUnpool: kernel_shape, strides or pads "
                                "out of range");
        }
        dims[2 + i] = in < 0 ? -1 : (in - 1) * s - pads + ks[i];
        if (in >= 0 && (in < 1 || dims[2 + i] < 0)) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "MaxUnpool: spatial dim %d: no unpooled "
                                "size", i);
        }
    }
    return BMS_OK;
}


enum bms_status bms__unpool_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *shape = node->n_inputs > 2 ? in[2] : NULL;
    int64_t dims[BMS_MAX_DIMS];
    enum bms_status rc;

    if (bms__elem_kind(x->dtype) == BMS__KIND_NONE) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (in[1]->dtype != BMS_DTYPE_I64 || in[1]->n_dims != x->n_dims ||
        memcmp(in[1]->dims, x->dims,
               sizeof(int64_t) * (size_t)x->n_dims) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "MaxUnpool: indices must be INT64 of X's shape");
    }
    rc = unpooled_dims(node, x, dims, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    bms__elem_same_shape(out, x);
    memcpy(out->dims, dims, sizeof(dims));
    if (shape == NULL) {
        return BMS_OK;
    }
    if (shape->dtype != BMS_DTYPE_I64 || shape->n_dims != 1 ||
        shape->dims[0] != x->n_dims) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "MaxUnpool: output_shape must be INT64 [%d]",
                            x->n_dims);
    }
    if (shape->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    for (int d = 0; d < x->n_dims; d++) {
        int64_t v = ((const int64_t *)shape->data)[d];

        if ((dims[d] >= 0 && v < dims[d]) || v < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "MaxUnpool: output_shape dim %d is %lld, "
                                "below the unpooled %lld", d, (long long)v,
                                (long long)dims[d]);
        }
        out->dims[d] = v;
    }
    return BMS_OK;
}


enum bms_status bms__unpool_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out, struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    const int64_t *idx = in[1]->data;
    size_t size = bms_dtype_size(x->dtype);
    int64_t n = bms_tensor_numel(x);
    int64_t dims[BMS_MAX_DIMS];
    int64_t total;

    (void)ctx;
    if (unpooled_dims(node, x, dims, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    total = bms__math_span(dims, 0, x->n_dims);
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= total) {
            return BMS_ERR_INVALID;
        }
    }
    memset(out->data, 0, bms_tensor_size(out));
    for (int64_t i = 0; i < n; i++) {
        int64_t rest = idx[i];
        int64_t at = 0;
        int64_t stride = 1;

        /* The unpooled multi-index, placed at the same one in out. */
        for (int d = x->n_dims - 1; d >= 0; d--) {
            at += (rest % dims[d]) * stride;
            rest /= dims[d];
            stride *= out->dims[d];
        }
        bms__elem_copy(out->data, at, x->data, i, size);
    }
    return BMS_OK;
}
