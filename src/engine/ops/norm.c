/*
 * BatchNormalization in its inference form, over F32 and F64:
 *
 *   Y = (X - mean) / sqrt(var + epsilon) * scale + B
 *
 * per channel (dim 1 of X), with scale, B, mean and var of dims [C].  The
 * training outputs (running mean and variance, saved statistics) and
 * training_mode=1 are refused as unsupported, as is the spatial=0 form of
 * the old opsets, whose statistics vary per position.
 */
#include <math.h>
#include <stdlib.h>

#include "engine/ops/kernels.h"

struct batchnorm_params {
    float epsilon;
};


enum bms_status bms__batchnorm_prepare(struct bms__node *node,
                                       struct bms_diag *diag)
{
    struct batchnorm_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 5, 5, 1, 5, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int j = 1; j < node->n_outputs; j++) {
        if (node->outputs[j] >= 0) {
            return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                                "BatchNormalization: training outputs "
                                "not supported");
        }
    }
    if (bms__attr_int(node, "training_mode", 0) != 0) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "BatchNormalization: training_mode=1 not "
                            "supported");
    }
    if (bms__attr_int(node, "spatial", 1) == 0) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "BatchNormalization: spatial=0 not supported");
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->epsilon = bms__attr_float(node, "epsilon", 1e-5f);
    node->params = p;
    return BMS_OK;
}


enum bms_status bms__batchnorm_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    static const char *const names[] = {"X", "scale", "B", "mean", "var"};
    const struct bms_tensor *x = in[0];
    int64_t c;

    if (x->dtype != BMS_DTYPE_F32 && x->dtype != BMS_DTYPE_F64) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims < 2) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "BatchNormalization: X has rank %d, needs 2 or "
                            "more", x->n_dims);
    }
    c = x->dims[1];
    for (int i = 1; i < 5; i++) {
        const struct bms_tensor *t = in[i];

        if (t->dtype != x->dtype) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "BatchNormalization: %s has a datatype "
                                "other than X's", names[i]);
        }
        if (t->n_dims != 1 || (c >= 0 && t->dims[0] >= 0 &&
                               t->dims[0] != c)) {
            char text[BMS__DIMS_TEXT_SIZE];

            bms__math_dims_text(t->dims, t->n_dims, text);
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "BatchNormalization: %s has dims %s, "
                                "expected [%lld]", names[i], text,
                                (long long)c);
        }
    }
    *out = *x;
    out->data = NULL;
    return BMS_OK;
}


/* Each (image, channel) plane is one affine map y = a * x + b. */
#define BATCHNORM_KERNEL(fname, T, SQRT)                                    \
    static void fname(const struct bms_tensor *const *in, double eps,       \
                      T *y)                                                 \
    {                                                                       \
        const T *x = in[0]->data;                                           \
        const T *scale = in[1]->data;                                       \
        const T *bias = in[2]->data;                                        \
        const T *mean = in[3]->data;                                        \
        const T *var = in[4]->data;                                         \
        int64_t n = in[0]->dims[0];                                         \
        int64_t c = in[0]->dims[1];                                         \
        int64_t size = bms__math_span(in[0]->dims, 2, in[0]->n_dims);       \
                                                                            \
        for (int64_t i = 0; i < n * c; i++) {                               \
            int64_t ch = i % c;                                             \
            T a = scale[ch] / SQRT(var[ch] + (T)eps);                       \
            T b = bias[ch] - mean[ch] * a;                                  \
            const T *xp = x + i * size;                                     \
            T *yp = y + i * size;                                           \
                                                                            \
            for (int64_t k = 0; k < size; k++) {                            \
                yp[k] = xp[k] * a + b;                                      \
            }                                                               \
        }                                                                   \
    }

BATCHNORM_KERNEL(batchnorm_f32, float, sqrtf)
BATCHNORM_KERNEL(batchnorm_f64, double, sqrt)


enum bms_status bms__batchnorm_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms__ctx *ctx)
{
    const struct batchnorm_params *p = node->params;

    (void)ctx;
    if (out->dtype == BMS_DTYPE_F64) {
        batchnorm_f64(in, p->epsilon, out->data);
    } else {
        batchnorm_f32(in, p->epsilon, out->data);
    }
    return BMS_OK;
}
