/*
 * Tensors as bms passes them between the engine, the runtime and the
 * server: a datatype, up to BMS_MAX_DIMS dimensions and a pointer to
 * row-major data.  A struct bms_tensor never owns its data; whoever filled
 * it says in its contract how long the data lives.
 */
#ifndef BMS_TENSOR_H
#define BMS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* The values are those of ONNX TensorProto.DataType, so that the loader can
 * take them as they are. */
enum bms_dtype {
    BMS_DTYPE_UNDEFINED = 0,
    BMS_DTYPE_F32 = 1,
    BMS_DTYPE_U8 = 2,
    BMS_DTYPE_I8 = 3,
    BMS_DTYPE_U16 = 4,
    BMS_DTYPE_I16 = 5,
    BMS_DTYPE_I32 = 6,
    BMS_DTYPE_I64 = 7,
    BMS_DTYPE_STRING = 8,
    BMS_DTYPE_BOOL = 9,
    BMS_DTYPE_F16 = 10,
    BMS_DTYPE_F64 = 11,
    BMS_DTYPE_U32 = 12,
    BMS_DTYPE_U64 = 13
};

#define BMS_MAX_DIMS 8

struct bms_tensor {
    enum bms_dtype dtype;
    int n_dims;                  /* 0 for a scalar */
    int64_t dims[BMS_MAX_DIMS];
    void *data;                  /* numel * bms_dtype_size(dtype) bytes */
};

/* Bytes per element; 0 for UNDEFINED and STRING. */
size_t bms_dtype_size(enum bms_dtype dtype);

/* The Open Inference Protocol name ("FP32", "INT64", "BOOL"); "" if none. */
const char *bms_dtype_v2_name(enum bms_dtype dtype);

/* Parse a v2 datatype name; returns 0 on success, -1 if unknown. */
int bms_dtype_from_v2_name(const char *name, size_t len,
                           enum bms_dtype *out);

/* Product of the dims (1 for a scalar). */
int64_t bms_tensor_numel(const struct bms_tensor *t);

/* numel * element size, in bytes. */
size_t bms_tensor_size(const struct bms_tensor *t);

#endif
