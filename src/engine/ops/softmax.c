/*
 * Softmax and LogSoftmax over F32 and F64.
 *
 * Both are computed on a view of the input as [outer, n, inner], reducing
 * over n.  From opset 13 the reduced dim is the one at `axis` (default -1);
 * before, the input is coerced to 2-D at `axis` (default 1), so n spans
 * every dim from axis on and inner is 1.  The maximum is subtracted first,
 * so large inputs do not overflow exp.  The kernels read each input value
 * before writing its output, so they also run in place.  F32 Softmax over
 * the last dim (inner 1) uses the vectorised loops of vecmath.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/kernels.h"
#include "engine/ops/vecmath.h"

struct softmax_params {
    int log;             /* LogSoftmax */
    int coerce_2d;       /* opset < 13 semantics */
    int64_t axis;
};

/* The input viewed as [outer, n, inner]. */
struct softmax_view {
    int64_t outer;
    int64_t n;
    int64_t inner;
};


enum bms_status bms__softmax_prepare(struct bms__node *node,
                                     struct bms_diag *diag)
{
    struct softmax_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->log = strcmp(node->op_type, "LogSoftmax") == 0;
    p->coerce_2d = node->opset > 0 && node->opset < 13;
    p->axis = bms__attr_int(node, "axis", p->coerce_2d ? 1 : -1);
    node->params = p;
    return BMS_OK;
}


static enum bms_status softmax_view(const struct bms__node *node,
                                    const struct bms_tensor *x,
                                    struct softmax_view *v,
                                    struct bms_diag *diag)
{
    const struct softmax_params *p = node->params;
    int rank = x->n_dims;
    enum bms_status rc;
    int axis;

    rc = bms__math_axis(node, p->axis, rank, p->coerce_2d, &axis, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    v->outer = bms__math_span(x->dims, 0, axis);
    if (p->coerce_2d) {
        v->n = bms__math_span(x->dims, axis, rank);
        v->inner = 1;
    } else {
        v->n = x->dims[axis];
        v->inner = bms__math_span(x->dims, axis + 1, rank);
    }
    return BMS_OK;
}


enum bms_status bms__softmax_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    struct softmax_view v;
    enum bms_status rc;

    if (x->dtype != BMS_DTYPE_F32 && x->dtype != BMS_DTYPE_F64) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    rc = softmax_view(node, x, &v, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    out->dtype = x->dtype;
    out->n_dims = x->n_dims;
    memcpy(out->dims, x->dims, sizeof(out->dims));
    return BMS_OK;
}


/*
 * One kernel per type.  Each (outer, inner) position reduces n values that
 * lie inner apart: max, then the sum of exp(x - max), then the outputs.
 * For inner 1 (the common case) the three passes run over contiguous data.
 */
#define SOFTMAX_KERNEL(fname, T, EXP, LOG)                                  \
    static void fname(const struct softmax_view *v, int log_out,            \
                      const T *x, T *y)                                     \
    {                                                                       \
        for (int64_t o = 0; o < v->outer; o++) {                            \
            for (int64_t in = 0; in < v->inner; in++) {                     \
                const T *px = x + o * v->n * v->inner + in;                 \
                T *py = y + o * v->n * v->inner + in;                       \
                T max = px[0];                                              \
                T sum = 0;                                                  \
                                                                            \
                for (int64_t i = 1; i < v->n; i++) {                        \
                    T e = px[i * v->inner];                                 \
                                                                            \
                    max = e > max ? e : max;                                \
                }                                                           \
                if (log_out) {                                              \
                    T shift;                                                \
                                                                            \
                    for (int64_t i = 0; i < v->n; i++) {                    \
                        sum += EXP(px[i * v->inner] - max);                 \
                    }                                                       \
                    shift = max + LOG(sum);                                 \
                    for (int64_t i = 0; i < v->n; i++) {                    \
                        py[i * v->inner] = px[i * v->inner] - shift;        \
                    }                                                       \
                } else {                                                    \
                    T scale;                                                \
                                                                            \
                    for (int64_t i = 0; i < v->n; i++) {                    \
                        T e = EXP(px[i * v->inner] - max);                  \
                                                                            \
                        py[i * v->inner] = e;                               \
                        sum += e;                                           \
                    }                                                       \
                    scale = 1 / sum;                                        \
                    for (int64_t i = 0; i < v->n; i++) {                    \
                        py[i * v->inner] *= scale;                          \
                    }                                                       \
                }                                                           \
            }                                                               \
        }                                                                   \
    }

SOFTMAX_KERNEL(softmax_f32, float, expf, logf)
SOFTMAX_KERNEL(softmax_f64, double, exp, log)


/* Softmax over contiguous rows in float, with the vectorised exp. */
static void softmax_rows_f32(const struct softmax_view *v, const float *x,
                             float *y)
{
    for (int64_t o = 0; o < v->outer; o++) {
        const float *px = x + o * v->n;
        float *py = y + o * v->n;
        float max = bms__vec_max(px, v->n);
        float sum = bms__vec_exp_sum(py, px, v->n, max);

        bms__vec_scale(py, v->n, 1.0f / sum);
    }
}


enum bms_status bms__softmax_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms__ctx *ctx)
{
    const struct softmax_params *p = node->params;
    struct softmax_view v;

    (void)ctx;
    if (softmax_view(node, in[0], &v, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (v.n == 0 || v.outer == 0 || v.inner == 0) {
        return BMS_OK;
    }
    if (out->dtype == BMS_DTYPE_F64) {
        softmax_f64(&v, p->log, in[0]->data, out->data);
    } else if (!p->log && v.inner == 1) {
        softmax_rows_f32(&v, in[0]->data, out->data);
    } else {
        softmax_f32(&v, p->log, in[0]->data, out->data);
    }
    return BMS_OK;
}
