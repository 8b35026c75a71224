/*
 * Decoding ONNX TensorProto messages into struct bms_tensor: the datatype,
 * the dims and the data, from raw_data (little-endian bytes) or from the
 * typed repeated fields.  Every count is checked against the dims before
 * a byte is copied, so a hostile file cannot make bms read past its data.
 */
#include <string.h>

#include "engine/model.h"
#include "onnx.pb-c.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian; this decoder copies it as it is"
#endif


static enum bms_status decode_dtype(int32_t data_type, const char *what,
                                    enum bms_dtype *out,
                                    struct bms_diag *diag)
{
    switch (data_type) {
    case BMS_DTYPE_F32: case BMS_DTYPE_U8: case BMS_DTYPE_I8:
    case BMS_DTYPE_U16: case BMS_DTYPE_I16: case BMS_DTYPE_I32:
    case BMS_DTYPE_I64: case BMS_DTYPE_BOOL: case BMS_DTYPE_F16:
    case BMS_DTYPE_F64: case BMS_DTYPE_U32: case BMS_DTYPE_U64:
        *out = (enum bms_dtype)data_type;
        return BMS_OK;
    case BMS_DTYPE_UNDEFINED:
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: data_type is not set", what);
    case BMS_DTYPE_STRING:
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: string tensors are not supported", what);
    default:
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: datatype %d is not supported", what,
                            (int)data_type);
    }
}


static enum bms_status decode_dims(const Onnx__TensorProto *tp,
                                   const char *what, struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    if (tp->n_dims > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: %zu dims, bms supports at most %d", what,
                            tp->n_dims, BMS_MAX_DIMS);
    }
    out->n_dims = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) {
        out->dims[i] = tp->dims[i];
    }
    if (!bms__dims_valid(out)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: dims negative or above 2^40 elements",
                            what);
    }
    return BMS_OK;
}


/* The typed field that carries this datatype, and its element count. */
static size_t typed_count(const Onnx__TensorProto *tp, enum bms_dtype dtype)
{
    switch (dtype) {
    case BMS_DTYPE_F32:
        return tp->n_float_data;
    case BMS_DTYPE_I64:
        return tp->n_int64_data;
    case BMS_DTYPE_F64:
        return tp->n_double_data;
    case BMS_DTYPE_U32: case BMS_DTYPE_U64:
        return tp->n_uint64_data;
    default:
        return tp->n_int32_data;
    }
}


/* ONNX keeps the small integer types, bool and fp16 bits in int32_data and
 * the unsigned wide ones in uint64_data; narrowing keeps the low bits. */
static void copy_typed(const Onnx__TensorProto *tp, struct bms_tensor *t,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case BMS_DTYPE_F32:
            ((float *)t->data)[i] = tp->float_data[i];
            break;
        case BMS_DTYPE_I64:
            ((int64_t *)t->data)[i] = tp->int64_data[i];
            break;
        case BMS_DTYPE_F64:
            ((double *)t->data)[i] = tp->double_data[i];
            break;
        case BMS_DTYPE_U64:
            ((uint64_t *)t->data)[i] = tp->uint64_data[i];
            break;
        case BMS_DTYPE_U32:
            ((uint32_t *)t->data)[i] = (uint32_t)tp->uint64_data[i];
            break;
        case BMS_DTYPE_I32:
            ((int32_t *)t->data)[i] = tp->int32_data[i];
            break;
        case BMS_DTYPE_I16:
            ((int16_t *)t->data)[i] = (int16_t)tp->int32_data[i];
            break;
        case BMS_DTYPE_U16: case BMS_DTYPE_F16:
            ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
            break;
        case BMS_DTYPE_I8:
            ((int8_t *)t->data)[i] = (int8_t)tp->int32_data[i];
            break;
        case BMS_DTYPE_BOOL:
            ((uint8_t *)t->data)[i] = tp->int32_data[i] != 0;
            break;
        default:
            ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i];
            break;
        }
    }
}


enum bms_status bms__tensor_decode(const void *proto, const char *what,
                                   struct bms__pool *pool,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    const Onnx__TensorProto *tp = proto;
    struct bms_tensor t = {0};
    enum bms_status rc;
    size_t numel;
    size_t size;

    if (tp->has_data_location &&
        tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: external data is not supported", what);
    }
    rc = decode_dtype(tp->has_data_type ? tp->data_type : 0, what, &t.dtype,
                      diag);
    if (rc != BMS_OK) {
        return rc;
    }
    rc = decode_dims(tp, what, &t, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    numel = (size_t)bms_tensor_numel(&t);
    size = numel * bms_dtype_size(t.dtype);
    if (tp->has_raw_data && tp->raw_data.len != size) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: raw_data has %zu bytes, dims need %zu",
                            what, tp->raw_data.len, size);
    }
    if (!tp->has_raw_data && typed_count(tp, t.dtype) != numel) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: %zu elements given, dims need %zu", what,
                            typed_count(tp, t.dtype), numel);
    }
    t.data = bms__pool_alloc(pool, size > 0 ? size : 1);
    if (t.data == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "%s: out of memory", what);
    }
    if (!tp->has_raw_data) {
        copy_typed(tp, &t, numel);
    } else if (size > 0) {
        memcpy(t.data, tp->raw_data.data, size);
    }
    *out = t;
    return BMS_OK;
}


enum bms_status bms__tensor_read(const void *data, size_t size,
                                 struct bms__pool *pool,
                                 struct bms_tensor *out, const char **name,
                                 struct bms_diag *diag)
{
    Onnx__TensorProto *tp;
    enum bms_status rc;
    const char *copy = NULL;

    tp = onnx__tensor_proto__unpack(NULL, size, data);
    if (tp == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "not a serialized TensorProto");
    }
    rc = bms__tensor_decode(tp, "tensor", pool, out, diag);
    if (rc == BMS_OK && name != NULL) {
        copy = bms__pool_strdup(pool, tp->name);
        if (copy == NULL) {
            rc = bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
        }
    }
    if (rc == BMS_OK && name != NULL) {
        *name = copy;
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}
