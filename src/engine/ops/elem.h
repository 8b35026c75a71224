/*
 * Internal to the kernels: datatype-generic element access and a
 * broadcasting odometer, for operators whose inner loops are not hot
 * enough to earn one specialised loop per datatype (comparisons, Where,
 * reductions, data movement).
 *
 * Element values travel as double for floating datatypes and as int64_t
 * for the integer ones (UINT64 values above INT64_MAX keep their bits, so
 * loads and stores round-trip; compare them with bms__elem_cmp_u).  BOOL
 * is an integer datatype holding 0 or 1.
 */
#ifndef BMS_ENGINE_OPS_ELEM_H
#define BMS_ENGINE_OPS_ELEM_H

#include <string.h>

#include "engine/graph.h"

/* How an element's value is read and computed with. */
enum bms__elem_kind {
    BMS__KIND_NONE = 0,          /* F16, STRING and others bms refuses */
    BMS__KIND_FLOAT,             /* F32, F64 */
    BMS__KIND_SIGNED,            /* I8 .. I64 */
    BMS__KIND_UNSIGNED,          /* U8 .. U64 */
    BMS__KIND_BOOL
};

enum bms__elem_kind bms__elem_kind(enum bms_dtype dtype);


static inline double bms__elem_get_f(const void *data, enum bms_dtype dtype,
                                     int64_t i)
{
    switch (dtype) {
    case BMS_DTYPE_F32: return ((const float *)data)[i];
    case BMS_DTYPE_F64: return ((const double *)data)[i];
    case BMS_DTYPE_I8: return ((const int8_t *)data)[i];
    case BMS_DTYPE_I16: return ((const int16_t *)data)[i];
    case BMS_DTYPE_I32: return ((const int32_t *)data)[i];
    case BMS_DTYPE_I64: return (double)((const int64_t *)data)[i];
    case BMS_DTYPE_U8: return ((const uint8_t *)data)[i];
    case BMS_DTYPE_BOOL: return ((const uint8_t *)data)[i] != 0;
    case BMS_DTYPE_U16: return ((const uint16_t *)data)[i];
    case BMS_DTYPE_U32: return ((const uint32_t *)data)[i];
    case BMS_DTYPE_U64: return (double)((const uint64_t *)data)[i];
    default: return 0;
    }
}


static inline int64_t bms__elem_get_i(const void *data, enum bms_dtype dtype,
                                      int64_t i)
{
    switch (dtype) {
    case BMS_DTYPE_F32: return (int64_t)((const float *)data)[i];
    case BMS_DTYPE_F64: return (int64_t)((const double *)data)[i];
    case BMS_DTYPE_I8: return ((const int8_t *)data)[i];
    case BMS_DTYPE_I16: return ((const int16_t *)data)[i];
    case BMS_DTYPE_I32: return ((const int32_t *)data)[i];
    case BMS_DTYPE_I64: return ((const int64_t *)data)[i];
    case BMS_DTYPE_U8: return ((const uint8_t *)data)[i];
    case BMS_DTYPE_BOOL: return ((const uint8_t *)data)[i] != 0;
    case BMS_DTYPE_U16: return ((const uint16_t *)data)[i];
    case BMS_DTYPE_U32: return ((const uint32_t *)data)[i];
    case BMS_DTYPE_U64: return (int64_t)((const uint64_t *)data)[i];
    default: return 0;
    }
}


/* Store v, converting as C does; integers wrap to the datatype's width. */
static inline void bms__elem_set_f(void *data, enum bms_dtype dtype,
                                   int64_t i, double v)
{
    switch (dtype) {
    case BMS_DTYPE_F32: ((float *)data)[i] = (float)v; break;
    case BMS_DTYPE_F64: ((double *)data)[i] = v; break;
    case BMS_DTYPE_BOOL: ((uint8_t *)data)[i] = v != 0; break;
    default:
        if (v != v) {
            v = 0;
        }
        if (v >= 9.2e18 || v <= -9.2e18) {
            v = v > 0 ? 9.2e18 : -9.2e18;
        }
        switch (dtype) {
        case BMS_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)(int64_t)v; break;
        case BMS_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)(int64_t)v;
            break;
        case BMS_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)(int64_t)v;
            break;
        case BMS_DTYPE_I64: ((int64_t *)data)[i] = (int64_t)v; break;
        case BMS_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)(int64_t)v; break;
        case BMS_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)(int64_t)v;
            break;
        case BMS_DTYPE_U32: ((uint32_t *)data)[i] = (uint32_t)(int64_t)v;
            break;
        case BMS_DTYPE_U64: ((uint64_t *)data)[i] = (uint64_t)(int64_t)v;
            break;
        default: break;
        }
    }
}


static inline void bms__elem_set_i(void *data, enum bms_dtype dtype,
                                   int64_t i, int64_t v)
{
    switch (dtype) {
    case BMS_DTYPE_F32: ((float *)data)[i] = (float)v; break;
    case BMS_DTYPE_F64: ((double *)data)[i] = (double)v; break;
    case BMS_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)v; break;
    case BMS_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)v; break;
    case BMS_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)v; break;
    case BMS_DTYPE_I64: ((int64_t *)data)[i] = v; break;
    case BMS_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case BMS_DTYPE_BOOL: ((uint8_t *)data)[i] = v != 0; break;
    case BMS_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)v; break;
    case BMS_DTYPE_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
    case BMS_DTYPE_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
    default: break;
    }
}


/* Copy element si of src to element di of dst, both of size bytes. */
static inline void bms__elem_copy(void *dst, int64_t di, const void *src,
                                  int64_t si, size_t size)
{
    memcpy((char *)dst + (size_t)di * size,
           (const char *)src + (size_t)si * size, size);
}


/* -1, 0, 1 as a < b, a == b, a > b, reading both as unsigned 64-bit. */
static inline int bms__elem_cmp_u(int64_t a, int64_t b)
{
    uint64_t ua = (uint64_t)a;
    uint64_t ub = (uint64_t)b;

    return ua < ub ? -1 : ua > ub;
}


/*
 * The broadcasting odometer: walks the output's elements in order and
 * keeps, for each operand, the offset of the element that broadcasts to
 * the current one.  Up to BMS__ITER_MAX operands.
 */
#define BMS__ITER_MAX 4

struct bms__iter {
    int n_dims;
    int n_ops;
    int64_t dims[BMS_MAX_DIMS];
    int64_t idx[BMS_MAX_DIMS];
    int64_t strides[BMS__ITER_MAX][BMS_MAX_DIMS];
    int64_t off[BMS__ITER_MAX];    /* element offsets, one per operand */
};

/*
 * Start an odometer over dims[0..n_dims) for operands whose dims
 * right-align with them and are 1 (or missing) where they broadcast.
 */
void bms__iter_init(struct bms__iter *it, const int64_t *dims, int n_dims,
                    const struct bms_tensor *const *ops, int n_ops);


/* Step to the next output element. */
static inline void bms__iter_next(struct bms__iter *it)
{
    for (int d = it->n_dims - 1; d >= 0; d--) {
        for (int k = 0; k < it->n_ops; k++) {
            it->off[k] += it->strides[k][d];
        }
        if (++it->idx[d] < it->dims[d]) {
            return;
        }
        for (int k = 0; k < it->n_ops; k++) {
            it->off[k] -= it->strides[k][d] * it->dims[d];
        }
        it->idx[d] = 0;
    }
}

/*
 * The numpy broadcast of the dims of ops[0..n_ops) (absent ones, NULL,
 * are left out) into out->n_dims and out->dims; -1 dims propagate.
 * BMS_ERR_INVALID naming the op when two do not broadcast.
 */
enum bms_status bms__bcast_dims(const struct bms__node *node,
                                const struct bms_tensor *const *ops,
                                int n_ops, struct bms_tensor *out,
                                struct bms_diag *diag);

/* Row-major strides (elements) of dims[0..n). */
void bms__elem_strides(const int64_t *dims, int n, int64_t *strides);

/*
 * Copy a strided view of src into dst, which is dense and row-major over
 * dims[0..n_dims): element idx of dst is src element base + sum over d of
 * idx[d] * strides[d] (strides in elements, may be 0 or negative).  Elements
 * are size bytes.  Up to BMS_MAX_DIMS dims.
 */
void bms__elem_copy_view(void *dst, const void *src, size_t size,
                         const int64_t *dims, int n_dims, int64_t base,
                         const int64_t *strides);

/* Copy dtype, rank and dims of src into dst. */
void bms__elem_same_shape(struct bms_tensor *dst,
                          const struct bms_tensor *src);

#endif
