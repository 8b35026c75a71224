/*
 * Datatype tables and tensor sizes.
 */
#include <string.h>

#include "bms/tensor.h"

static const struct {
    enum bms_dtype dtype;
    size_t size;
    const char *v2_name;
} dtype_table[] = {
    {BMS_DTYPE_F32, 4, "FP32"},   {BMS_DTYPE_U8, 1, "UINT8"},
    {BMS_DTYPE_I8, 1, "INT8"},    {BMS_DTYPE_U16, 2, "UINT16"},
    {BMS_DTYPE_I16, 2, "INT16"},  {BMS_DTYPE_I32, 4, "INT32"},
    {BMS_DTYPE_I64, 8, "INT64"},  {BMS_DTYPE_BOOL, 1, "BOOL"},
    {BMS_DTYPE_F16, 2, "FP16"},   {BMS_DTYPE_F64, 8, "FP64"},
    {BMS_DTYPE_U32, 4, "UINT32"}, {BMS_DTYPE_U64, 8, "UINT64"},
};

#define N_DTYPES (sizeof(dtype_table) / sizeof(dtype_table[0]))


size_t bms_dtype_size(enum bms_dtype dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (dtype_table[i].dtype == dtype) {
            return dtype_table[i].size;
        }
    }
    return 0;
}


const char *bms_dtype_v2_name(enum bms_dtype dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (dtype_table[i].dtype == dtype) {
            return dtype_table[i].v2_name;
        }
    }
    return "";
}


int bms_dtype_from_v2_name(const char *name, size_t len, enum bms_dtype *out)
{
    for (size_t i = 0; i < N_DTYPES; i++) {
        const char *v2 = dtype_table[i].v2_name;

        if (strlen(v2) == len && memcmp(v2, name, len) == 0) {
            *out = dtype_table[i].dtype;
            return 0;
        }
    }
    return -1;
}


int64_t bms_tensor_numel(const struct bms_tensor *t)
{
    int64_t n = 1;

    for (int i = 0; i < t->n_dims; i++) {
        n *= t->dims[i];
    }
    return n;
}


size_t bms_tensor_size(const struct bms_tensor *t)
{
    return (size_t)bms_tensor_numel(t) * bms_dtype_size(t->dtype);
}
