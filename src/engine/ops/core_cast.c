/*
 * Cast and CastLike between the numeric datatypes and bool.  Each element
 * is read as a double (float sources), an int64 or a uint64 (integer
 * sources), then written in the target type:
 *
 *   integer -> integer   keeps the low bits, as C and numpy do;
 *   float -> integer     truncates toward zero; NaN gives 0 and values out
 *                        of range saturate (ONNX leaves both undefined);
 *   anything -> bool     true when not zero (NaN is true);
 *   -> float16           rounds to nearest even from the full-precision
 *                        source, so double -> float16 rounds once.
 */
#include <math.h>
#include <string.h>

#include "engine/ops/core.h"

enum kind {
    KIND_FLOAT,
    KIND_SIGNED,
    KIND_UNSIGNED
};

struct scalar {
    enum kind kind;
    double f;
    int64_t i;
    uint64_t u;
};


static int castable(int64_t dtype)
{
    return dtype >= BMS_DTYPE_F32 && dtype <= BMS_DTYPE_U64 &&
           dtype != BMS_DTYPE_STRING;
}


static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    float f;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else {
        /* Zero or subnormal: mant * 2^-24, exact in float. */
        f = ldexpf((float)mant, -24);
        return sign != 0 ? -f : f;
    }
    memcpy(&f, &bits, sizeof(f));
    return f;
}


/* Round m >> shift to nearest, ties to even. */
static uint64_t shift_round(uint64_t m, int shift)
{
    uint64_t rem = m & (((uint64_t)1 << shift) - 1);
    uint64_t half = (uint64_t)1 << (shift - 1);
    uint64_t q = m >> shift;

    if (rem > half || (rem == half && (q & 1) != 0)) {
        q++;
    }
    return q;
}


static uint16_t f64_to_f16(double d)
{
    uint64_t bits;
    uint16_t sign;
    int exp;
    uint64_t mant;
    int e;
    uint64_t m;

    memcpy(&bits, &d, sizeof(bits));
    sign = (uint16_t)((bits >> 48) & 0x8000);
    exp = (int)((bits >> 52) & 0x7ff);
    mant = bits & (((uint64_t)1 << 52) - 1);
    if (exp == 0x7ff) {
        return (uint16_t)(sign | 0x7c00 | (mant != 0 ? 0x200 : 0));
    }
    e = exp - 1023 + 15;
    if (e <= 0) {
        /* Subnormal half: the value in units of 2^-24. */
        int shift = 1051 - exp;

        if (shift > 54) {
            return sign;
        }
        m = shift_round(mant | ((uint64_t)1 << 52), shift);
        return (uint16_t)(sign | m);
    }
    m = shift_round(mant, 42);
    if (m == 1024) {
        m = 0;
        e++;
    }
    if (e >= 31) {
        return (uint16_t)(sign | 0x7c00);
    }
    return (uint16_t)(sign | (e << 10) | m);
}


static struct scalar load(const void *data, enum bms_dtype dtype, size_t i)
{
    struct scalar s = {KIND_SIGNED, 0.0, 0, 0};

    switch (dtype) {
    case BMS_DTYPE_F32:
        s.kind = KIND_FLOAT;
        s.f = ((const float *)data)[i];
        break;
    case BMS_DTYPE_F64:
        s.kind = KIND_FLOAT;
        s.f = ((const double *)data)[i];
        break;
    case BMS_DTYPE_F16:
        s.kind = KIND_FLOAT;
        s.f = f16_to_f32(((const uint16_t *)data)[i]);
        break;
    case BMS_DTYPE_I8:
        s.i = ((const int8_t *)data)[i];
        break;
    case BMS_DTYPE_I16:
        s.i = ((const int16_t *)data)[i];
        break;
    case BMS_DTYPE_I32:
        s.i = ((const int32_t *)data)[i];
        break;
    case BMS_DTYPE_I64:
        s.i = ((const int64_t *)data)[i];
        break;
    case BMS_DTYPE_U8: case BMS_DTYPE_BOOL:
        s.kind = KIND_UNSIGNED;
        s.u = ((const uint8_t *)data)[i];
        break;
    case BMS_DTYPE_U16:
        s.kind = KIND_UNSIGNED;
        s.u = ((const uint16_t *)data)[i];
        break;
    case BMS_DTYPE_U32:
        s.kind = KIND_UNSIGNED;
        s.u = ((const uint32_t *)data)[i];
        break;
    default:
        s.kind = KIND_UNSIGNED;
        s.u = ((const uint64_t *)data)[i];
        break;
    }
    return s;
}


static double as_double(struct scalar s)
{
    if (s.kind == KIND_FLOAT) {
        return s.f;
    }
    return s.kind == KIND_SIGNED ? (double)s.i : (double)s.u;
}


/* The bits of an integer target: low bits of an integer source, a
 * truncated and saturated float source. */
static uint64_t as_bits(struct scalar s, int is_signed, int width)
{
    double lo;
    double hi;

    if (s.kind == KIND_SIGNED) {
        return (uint64_t)s.i;
    }
    if (s.kind == KIND_UNSIGNED) {
        return s.u;
    }
    if (isnan(s.f)) {
        return 0;
    }
    lo = is_signed ? -ldexp(1.0, width - 1) : 0.0;
    hi = is_signed ? ldexp(1.0, width - 1) : ldexp(1.0, width);
    if (s.f <= lo) {
        return is_signed ? (uint64_t)(int64_t)lo : 0;
    }
    if (s.f >= hi) {
        return is_signed ? ((uint64_t)1 << (width - 1)) - 1
                         : (width == 64 ? UINT64_MAX
                                        : ((uint64_t)1 << width) - 1);
    }
    return is_signed ? (uint64_t)(int64_t)s.f : (uint64_t)s.f;
}


static void store(void *data, enum bms_dtype dtype, size_t i,
                  struct scalar s)
{
    switch (dtype) {
    case BMS_DTYPE_F32:
        ((float *)data)[i] = (float)as_double(s);
        break;
    case BMS_DTYPE_F64:
        ((double *)data)[i] = as_double(s);
        break;
    case BMS_DTYPE_F16:
        ((uint16_t *)data)[i] = f64_to_f16(as_double(s));
        break;
    case BMS_DTYPE_BOOL:
        ((uint8_t *)data)[i] = s.kind == KIND_FLOAT ? s.f != 0.0
                                                    : (s.i | (int64_t)s.u)
                                                      != 0;
        break;
    case BMS_DTYPE_I8:
        ((int8_t *)data)[i] = (int8_t)as_bits(s, 1, 8);
        break;
    case BMS_DTYPE_I16:
        ((int16_t *)data)[i] = (int16_t)as_bits(s, 1, 16);
        break;
    case BMS_DTYPE_I32:
        ((int32_t *)data)[i] = (int32_t)as_bits(s, 1, 32);
        break;
    case BMS_DTYPE_I64:
        ((int64_t *)data)[i] = (int64_t)as_bits(s, 1, 64);
        break;
    case BMS_DTYPE_U8:
        ((uint8_t *)data)[i] = (uint8_t)as_bits(s, 0, 8);
        break;
    case BMS_DTYPE_U16:
        ((uint16_t *)data)[i] = (uint16_t)as_bits(s, 0, 16);
        break;
    case BMS_DTYPE_U32:
        ((uint32_t *)data)[i] = (uint32_t)as_bits(s, 0, 32);
        break;
    default:
        ((uint64_t *)data)[i] = as_bits(s, 0, 64);
        break;
    }
}


enum bms_status bms__cast_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    int64_t to = bms__attr_int(node, "to", 0);

    if (to == BMS_DTYPE_STRING) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "cast to string is not supported");
    }
    if (!castable(to)) {
        return bms_diag_set(diag, to == 0 ? BMS_ERR_INVALID
                                          : BMS_ERR_UNSUPPORTED,
                            "attribute 'to': datatype %lld is not "
                            "supported", (long long)to);
    }
    return BMS_OK;
}


static enum bms_status cast_to(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               int64_t to, struct bms_tensor *out,
                               struct bms_diag *diag)
{
    if (node->n_inputs < 1 || in[0] == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "input 0 is required");
    }
    if (!castable(in[0]->dtype) || !castable(to)) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "cast from datatype %d to %lld is not "
                            "supported", (int)in[0]->dtype, (long long)to);
    }
    out[0] = *in[0];
    out[0].data = NULL;
    out[0].dtype = (enum bms_dtype)to;
    return BMS_OK;
}


enum bms_status bms__cast_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    return cast_to(node, in, bms__attr_int(node, "to", 0), out, diag);
}


/* CastLike (opset 15): the target datatype is that of the second input. */
enum bms_status bms__castlike_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    enum bms_status rc = bms__core_check_inputs(node, in, 2, 2, diag);

    if (rc != BMS_OK) {
        return rc;
    }
    return cast_to(node, in, in[1]->dtype, out, diag);
}


/* The target datatype is the output's, which infer set. */
enum bms_status bms__cast_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx)
{
    int64_t n = bms_tensor_numel(in[0]);

    (void)node;
    (void)ctx;
    if (in[0]->dtype == out[0].dtype) {
        memcpy(out[0].data, in[0]->data, bms_tensor_size(in[0]));
        return BMS_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        store(out[0].data, out[0].dtype, (size_t)i,
              load(in[0]->data, in[0]->dtype, (size_t)i));
    }
    return BMS_OK;
}
