/*
 * Internal to the kernels: single-precision loops over arrays that the
 * transformer operators spend their time in (exp, erf, GELU, row sums and
 * maxima, LayerNorm rows), written so the compiler vectorises them and
 * built for AVX-512 and AVX2 besides the baseline, the best of which is
 * picked once at load time from the CPU.
 *
 * exp and erf are polynomial approximations, not libm: within 2e-7
 * relative of the exact value over the finite range (exp: inputs below
 * -87.3 give 0, above 88.7 give +inf; NaN stays NaN).  Every function
 * reads x[i] before it writes y[i], so y may be x (in place); other
 * overlaps are not allowed.  All are thread-safe and allocate nothing.
 */
#ifndef BMS_ENGINE_OPS_VECMATH_H
#define BMS_ENGINE_OPS_VECMATH_H

#include <stdint.h>

/* y[i] = e^x[i]. */
void bms__vec_exp(float *y, const float *x, int64_t n);

/* y[i] = erf(x[i]). */
void bms__vec_erf(float *y, const float *x, int64_t n);

/* y[i] = x[i] / 2 * (1 + erf(x[i] / sqrt(2))), GELU as ONNX Gelu-20
 * defines it with approximate="none". */
void bms__vec_gelu(float *y, const float *x, int64_t n);

/* The largest of x[0..n), n >= 1, skipping NaNs (-inf when all are). */
float bms__vec_max(const float *x, int64_t n);

/* y[i] = e^(x[i] - shift); returns the sum of the y[i]. */
float bms__vec_exp_sum(float *y, const float *x, int64_t n, float shift);

/* y[i] *= s. */
void bms__vec_scale(float *y, int64_t n, float s);

/* y[i] += b[i]. */
void bms__vec_add(float *y, const float *b, int64_t n);

/*
 * One LayerNormalization row of n >= 1 values v = x + r (r, a residual
 * added first, may be NULL): with the mean and variance of v (two passes
 * in float, 16 partial sums each), y = (v - mean) / sqrt(var + eps) *
 * scale + bias, where bias may be NULL.  Writes the mean and
 * 1 / sqrt(var + eps) to *mean and *inv_std.  y may be x or r.
 */
void bms__vec_layernorm(float *y, const float *x, const float *r,
                        const float *scale, const float *bias, int64_t n,
                        float eps, float *mean, float *inv_std);

#endif
