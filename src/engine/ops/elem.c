/*
 * Datatype-generic element helpers and the broadcasting odometer the
 * operator files share (declared in ops/elem.h).
 */
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"


enum bms__elem_kind bms__elem_kind(enum bms_dtype dtype)
{
    switch (dtype) {
    case BMS_DTYPE_F32: case BMS_DTYPE_F64:
        return BMS__KIND_FLOAT;
    case BMS_DTYPE_I8: case BMS_DTYPE_I16:
    case BMS_DTYPE_I32: case BMS_DTYPE_I64:
        return BMS__KIND_SIGNED;
    case BMS_DTYPE_U8: case BMS_DTYPE_U16:
    case BMS_DTYPE_U32: case BMS_DTYPE_U64:
        return BMS__KIND_UNSIGNED;
    case BMS_DTYPE_BOOL:
        return BMS__KIND_BOOL;
    default:
        return BMS__KIND_NONE;
    }
}


void bms__iter_init(struct bms__iter *it, const int64_t *dims, int n_dims,
                    const struct bms_tensor *const *ops, int n_ops)
{
    memset(it, 0, sizeof(*it));
    it->n_dims = n_dims;
    it->n_ops = n_ops;
    memcpy(it->dims, dims, sizeof(int64_t) * (size_t)n_dims);
    for (int k = 0; k < n_ops; k++) {
        int64_t step = 1;

        for (int d = n_dims - 1; d >= 0; d--) {
            int od = d - (n_dims - ops[k]->n_dims);
            int64_t n = od >= 0 ? ops[k]->dims[od] : 1;

            it->strides[k][d] = n == 1 ? 0 : step;
            step *= n;
        }
    }
}


enum bms_status bms__bcast_dims(const struct bms__node *node,
                                const struct bms_tensor *const *ops,
                                int n_ops, struct bms_tensor *out,
                                struct bms_diag *diag)
{
    int rank = 0;

    for (int k = 0; k < n_ops; k++) {
        if (ops[k] != NULL && ops[k]->n_dims > rank) {
            rank = ops[k]->n_dims;
        }
    }
    out->n_dims = rank;
    for (int d = 0; d < rank; d++) {
        out->dims[d] = 1;
    }
    for (int k = 0; k < n_ops; k++) {
        const struct bms_tensor *t = ops[k];

        for (int d = 0; t != NULL && d < t->n_dims; d++) {
            int64_t *o = &out->dims[rank - t->n_dims + d];

            if (!bms__math_broadcast_dim(*o, t->dims[d], o)) {
                char text[BMS__DIMS_TEXT_SIZE];

                bms__math_dims_text(t->dims, t->n_dims, text);
                return bms_diag_set(diag, BMS_ERR_INVALID,
                                    "%s: input %d of shape %s does not "
                                    "broadcast with the others",
                                    node->op_type, k, text);
            }
        }
    }
    return BMS_OK;
}


void bms__elem_strides(const int64_t *dims, int n, int64_t *strides)
{
    int64_t step = 1;

    for (int d = n - 1; d >= 0; d--) {
        strides[d] = step;
        step *= dims[d];
    }
}


void bms__elem_same_shape(struct bms_tensor *dst,
                          const struct bms_tensor *src)
{
    dst->dtype = src->dtype;
    dst->n_dims = src->n_dims;
    memcpy(dst->dims, src->dims, sizeof(dst->dims));
}


void bms__elem_copy_view(void *dst, const void *src, size_t size,
                         const int64_t *dims, int n_dims, int64_t base,
                         const int64_t *strides)
{
    int64_t idx[BMS_MAX_DIMS] = {0};
    int64_t n_outer = 1;
    int64_t inner = n_dims > 0 ? dims[n_dims - 1] : 1;
    int64_t step = n_dims > 0 ? strides[n_dims - 1] : 1;
    const char *s = src;
    char *d = dst;

    for (int k = 0; k < n_dims - 1; k++) {
        n_outer *= dims[k];
    }
    if (inner <= 0 || n_outer <= 0) {
        return;
    }
    for (int64_t r = 0; r < n_outer; r++) {
        int64_t off = base;

        for (int k = 0; k < n_dims - 1; k++) {
            off += idx[k] * strides[k];
        }
        if (step == 1) {
            memcpy(d, s + (size_t)off * size, (size_t)inner * size);
        } else {
            for (int64_t i = 0; i < inner; i++) {
                memcpy(d + (size_t)i * size,
                       s + (size_t)(off + i * step) * size, size);
            }
        }
        d += (size_t)inner * size;
        for (int k = n_dims - 2; k >= 0; k--) {
            if (++idx[k] < dims[k]) {
                break;
            }
            idx[k] = 0;
        }
    }
}
