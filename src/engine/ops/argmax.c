/*
 * ArgMax: the INT64 index of the largest value along one axis, over F32,
 * F64 and the integer datatypes.  keepdims (default 1) keeps the reduced
 * dim as 1; select_last_index (opset 12) picks the last of equal maxima
 * instead of the first.  NaN never compares larger, so it is skipped
 * unless it comes first.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/kernels.h"

struct argmax_params {
    int64_t axis;
    int keepdims;
    int select_last;
};


enum bms_status bms__argmax_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    struct argmax_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->axis = bms__attr_int(node, "axis", 0);
    p->keepdims = bms__attr_int(node, "keepdims", 1) != 0;
    p->select_last = bms__attr_int(node, "select_last_index", 0) != 0;
    node->params = p;
    return BMS_OK;
}


/* Over the view [outer, n, inner] of x: y[o, i] = the index of the max of
 * x[o, :, i]. */
#define ARGMAX_KERNEL(fname, T)                                             \
    static void fname(int64_t outer, int64_t n, int64_t inner, int last,    \
                      const void *vx, int64_t *y)                           \
    {                                                                       \
        const T *x = vx;                                                    \
                                                                            \
        for (int64_t o = 0; o < outer; o++) {                               \
            for (int64_t i = 0; i < inner; i++) {                           \
                const T *px = x + o * n * inner + i;                        \
                T best = px[0];                                             \
                int64_t at = 0;                                             \
                                                                            \
                for (int64_t k = 1; k < n; k++) {                           \
                    T v = px[k * inner];                                    \
                                                                            \
                    if (v > best || (last && v == best)) {                  \
                        best = v;                                           \
                        at = k;                                             \
                    }                                                       \
                }                                                           \
                y[o * inner + i] = at;                                      \
            }                                                               \
        }                                                                   \
    }

ARGMAX_KERNEL(argmax_f32, float)
ARGMAX_KERNEL(argmax_f64, double)
ARGMAX_KERNEL(argmax_i8, int8_t)
ARGMAX_KERNEL(argmax_i16, int16_t)
ARGMAX_KERNEL(argmax_i32, int32_t)
ARGMAX_KERNEL(argmax_i64, int64_t)
ARGMAX_KERNEL(argmax_u8, uint8_t)
ARGMAX_KERNEL(argmax_u16, uint16_t)
ARGMAX_KERNEL(argmax_u32, uint32_t)
ARGMAX_KERNEL(argmax_u64, uint64_t)

typedef void (*argmax_fn)(int64_t outer, int64_t n, int64_t inner,
                          int last, const void *x, int64_t *y);


static argmax_fn argmax_kernel(enum bms_dtype dtype)
{
    switch (dtype) {
    case BMS_DTYPE_F32: return argmax_f32;
    case BMS_DTYPE_F64: return argmax_f64;
    case BMS_DTYPE_I8: return argmax_i8;
    case BMS_DTYPE_I16: return argmax_i16;
    case BMS_DTYPE_I32: return argmax_i32;
    case BMS_DTYPE_I64: return argmax_i64;
    case BMS_DTYPE_U8: return argmax_u8;
    case BMS_DTYPE_U16: return argmax_u16;
    case BMS_DTYPE_U32: return argmax_u32;
    case BMS_DTYPE_U64: return argmax_u64;
    default: return NULL;
    }
}


enum bms_status bms__argmax_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct argmax_params *p = node->params;
    const struct bms_tensor *x = in[0];
    enum bms_status rc;
    int axis;
    int r = 0;

    if (argmax_kernel(x->dtype) == NULL) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    rc = bms__math_axis(node, p->axis, x->n_dims, 0, &axis, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (x->dims[axis] == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "ArgMax: axis %d has no elements", axis);
    }
    for (int i = 0; i < x->n_dims; i++) {
        if (i != axis) {
            out->dims[r++] = x->dims[i];
        } else if (p->keepdims) {
            out->dims[r++] = 1;
        }
    }
    out->dtype = BMS_DTYPE_I64;
    out->n_dims = r;
    return BMS_OK;
}


enum bms_status bms__argmax_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    const struct argmax_params *p = node->params;
    const struct bms_tensor *x = in[0];
    argmax_fn fn;
    int64_t outer, n, inner;
    int axis;

    (void)ctx;
    if (bms__math_axis(node, p->axis, x->n_dims, 0, &axis, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    outer = bms__math_span(x->dims, 0, axis);
    n = x->dims[axis];
    inner = bms__math_span(x->dims, axis + 1, x->n_dims);
    if (outer == 0 || inner == 0) {
        return BMS_OK;
    }
    fn = argmax_kernel(x->dtype);
    if (fn == NULL) {
        return BMS_ERR_UNSUPPORTED;
    }
    fn(outer, n, inner, p->select_last, x->data, out->data);
    return BMS_OK;
}
