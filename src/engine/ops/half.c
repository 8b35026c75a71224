/*
 * FP16 for the variadic Max and Min and for Mod: the values are widened
 * to float, computed as the FP32 kernels compute them, and rounded back
 * to the nearest half (ties to even), which is exact for Max and Min and
 * what numpy's float16 fmod gives.  Every other datatype goes to the
 * general kernels, bms__variadic and bms__bcast_op, unchanged.
 *
 * Only Mod with fmod=1 takes FP16: ONNX requires fmod=1 for floating
 * inputs.
 */
#include <math.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"


static int is_mod(const struct bms__node *node)
{
    return strcmp(node->op_type, "Mod") == 0;
}


/* IEEE 754 binary16 to float, exactly. */
static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    float f;

    if (exp == 0) {
        f = ldexpf((float)mant, -24);
    } else if (exp == 31) {
        f = mant != 0 ? NAN : INFINITY;
    } else {
        f = ldexpf((float)(mant | 0x400), exp - 25);
    }
    return (h & 0x8000) != 0 ? -f : f;
}


/* float to binary16, rounding to nearest with ties to even; overflow goes
 * to infinity and NaN stays NaN. */
static uint16_t float_to_half(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    float a = fabsf(f);
    int exp;
    float m;
    long q;

    if (isnan(f)) {
        return (uint16_t)(sign | 0x7e00);
    }
    if (a >= 65520.0f) {
        return (uint16_t)(sign | 0x7c00);
    }
    if (a < ldexpf(1.0f, -14)) {
        /* Subnormal: a multiple of 2^-24. */
        q = lrintf(ldexpf(a, 24));
        return (uint16_t)(sign | (uint16_t)q);
    }
    m = frexpf(a, &exp);              /* a = m * 2^exp, m in [0.5, 1) */
    q = lrintf(ldexpf(m, 11));        /* 11 significant bits */
    if (q == 2048) {
        q = 1024;
        exp++;
    }
    /* The biased exponent of 2^(exp - 1) is exp + 14. */
    return (uint16_t)(sign | (uint16_t)((exp + 14) << 10) |
                      (uint16_t)(q - 1024));
}


enum bms_status bms__half_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    if (is_mod(node)) {
        return bms__bcast_op_prepare(node, diag);
    }
    return bms__variadic_prepare(node, diag);
}


enum bms_status bms__half_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    if (in[0]->dtype != BMS_DTYPE_F16) {
        return is_mod(node) ? bms__bcast_op_infer(node, in, out, diag) :
                              bms__variadic_infer(node, in, out, diag);
    }
    for (int k = 1; k < node->n_inputs; k++) {
        if (in[k]->dtype != BMS_DTYPE_F16) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: input %d is not FP16 like input 0",
                                node->op_type, k);
        }
    }
    if (is_mod(node) && bms__attr_int(node, "fmod", 0) != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Mod: floating inputs need fmod=1");
    }
    out->dtype = BMS_DTYPE_F16;
    return bms__bcast_dims(node, in, node->n_inputs, out, diag);
}


/* acc op v for Max, Min (NaN propagates, as numpy's maximum does) and
 * fmod (the sign of the dividend, as C's fmodf). */
static float fold(const struct bms__node *node, float acc, float v)
{
    if (is_mod(node)) {
        return fmodf(acc, v);
    }
    if (isnan(acc) || isnan(v)) {
        return NAN;
    }
    if (strcmp(node->op_type, "Max") == 0) {
        return v > acc ? v : acc;
    }
    return v < acc ? v : acc;
}


enum bms_status bms__half_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx)
{
    uint16_t *y = out->data;
    int64_t n = bms_tensor_numel(out);

    if (out->dtype != BMS_DTYPE_F16) {
        return is_mod(node) ? bms__bcast_op_run(node, in, out, ctx) :
                              bms__variadic_run(node, in, out, ctx);
    }
    /* Fold the inputs into the output one at a time, as the general
     * kernels do; each step rounds to half, as numpy's pairwise
     * float16 operations do. */
    for (int k = 0; k < node->n_inputs; k++) {
        const uint16_t *x = in[k]->data;
        struct bms__iter it;

        bms__iter_init(&it, out->dims, out->n_dims, &in[k], 1);
        for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
            float v = half_to_float(x[it.off[0]]);

            y[i] = k == 0 ? x[it.off[0]] :
                   float_to_half(fold(node, half_to_float(y[i]), v));
        }
    }
    return BMS_OK;
}
