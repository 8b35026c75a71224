/*
 * Vectorisable single-precision loops (see vecmath.h).  Each exported
 * loop is compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2,
 * FMA) and the baseline, and the loader's resolver picks one per process
 * from the CPU; elsewhere only the baseline exists.
 *
 * The loop bodies are branch-free: both sides of every case are computed
 * and one is selected, which is what lets gcc turn them into vector code.
 * Reductions keep LANES partial sums in an array the inner loop walks in
 * step, so they vectorise without reassociating floating-point sums.
 *
 * Polynomial coefficients are least-squares fits on Chebyshev nodes of
 * the double-precision functions, checked in float against libm:
 *   exp: e^r on [-ln2/2, ln2/2], degree 6;
 *   erf: erf(x)/x as a polynomial in x^2 on [0, 1], degree 5;
 *        log(erfc(x)) on [1, 4], degree 8 (erf(x) rounds to 1 beyond 4).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/ops/kernels.h"
#include "engine/ops/vecmath.h"

/* Let a * b + c become one fused multiply-add where the CPU has it (the
 * AVX2 and AVX-512 builds): faster, and rounded once instead of twice.
 * The error bounds above hold either way. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* clang before 15 emits only the resolver of a target_clones function,
 * not the symbol itself, so the clones are gcc's (and newer clang's). */
#if defined(__x86_64__) && defined(__ELF__) && \
    ((defined(__GNUC__) && !defined(__clang__)) || \
     (defined(__clang__) && __clang_major__ >= 15))
#define VEC_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", \
                                 "default")))
#else
#define VEC_CLONES
#endif

#define LANES 16                 /* partial sums: one AVX-512 register */

#define EXP_LO (-87.336544f)     /* e^x is below FLT_MIN under this */
#define EXP_HI 88.722839f        /* and above FLT_MAX over this */
#define LOG2E 1.44269504f
#define LN2_HI 0.693359375f      /* ln 2 in few bits, so k * LN2_HI is exact */
#define LN2_LO (-2.12194440e-4f)
#define ROUND_MAGIC 12582912.0f  /* 1.5 * 2^23: adding it rounds to int */
#define SQRT1_2 0.707106781f


static inline float float_of_bits(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}


static inline uint32_t bits_of_float(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}


/* 2^k for k in [-126, 127]. */
static inline float pow2i(int32_t k)
{
    return float_of_bits((uint32_t)(k + 127) << 23);
}


/* e^x by x = k ln2 + r, |r| <= ln2 / 2: e^x = 2^k e^r.  2^k is applied
 * in two halves so that k = 128 (x near EXP_HI) stays finite. */
static inline float exp_core(float x)
{
    float c = x < EXP_LO ? EXP_LO : x;
    float t;
    float k;
    float r;
    float p;
    int32_t ki;

    c = c > EXP_HI ? EXP_HI : c;
    t = c * LOG2E + ROUND_MAGIC;
    k = t - ROUND_MAGIC;
    r = c - k * LN2_HI;
    r = r - k * LN2_LO;
    p = 1.393364975e-03f;
    p = p * r + 8.363175206e-03f;
    p = p * r + 4.166646674e-02f;
    p = p * r + 1.666657627e-01f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    ki = (int32_t)(bits_of_float(t) - bits_of_float(ROUND_MAGIC));
    p = p * pow2i(ki / 2) * pow2i(ki - ki / 2);
    p = x < EXP_LO ? 0.0f : p;
    return x > EXP_HI ? INFINITY : p;
}


/* erf(x) / x for |x| <= 1, as a polynomial in u = x^2. */
static inline float erf_small(float u)
{
    float p = -5.696713342e-04f;

    p = p * u + 4.934519064e-03f;
    p = p * u - 2.672698908e-02f;
    p = p * u + 1.128078923e-01f;
    p = p * u - 3.761241436e-01f;
    return p * u + 1.128379107e+00f;
}


/* erfc(a) for a in [1, 4], as e^Q(a). */
static inline float erfc_large(float a)
{
    float q = 1.614061603e-06f;

    q = q * a - 4.559062290e-05f;
    q = q * a + 5.927695311e-04f;
    q = q * a - 4.740222357e-03f;
    q = q * a + 2.636471763e-02f;
    q = q * a - 1.099782437e-01f;
    q = q * a - 6.319370866e-01f;
    q = q * a - 1.130166650e+00f;
    q = q * a + 3.032129898e-04f;
    return exp_core(q);
}


static inline float erf_core(float x)
{
    float a = fabsf(x);
    float small = x * erf_small(x * x);
    float large = 1.0f - erfc_large(a < 4.0f ? (a > 1.0f ? a : 1.0f) : 4.0f);
    float y = a < 1.0f ? small : copysignf(large, x);

    return x != x ? x : y;
}


/* 1 + erf(u), taking erfc directly below -1 so that small results keep
 * their precision; below -4 it is under 1.6e-8, taken as 0. */
static inline float one_plus_erf(float u)
{
    float a = fabsf(u);
    float small = 1.0f + u * erf_small(u * u);
    float e = erfc_large(a < 4.0f ? (a > 1.0f ? a : 1.0f) : 4.0f);
    float large = u > 0.0f ? 2.0f - e : (a < 4.0f ? e : 0.0f);

    return a < 1.0f ? small : large;
}


VEC_CLONES
void bms__vec_exp(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = exp_core(x[i]);
    }
}


VEC_CLONES
void bms__vec_erf(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = erf_core(x[i]);
    }
}


VEC_CLONES
void bms__vec_gelu(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float g = 0.5f * v * one_plus_erf(v * SQRT1_2);

        y[i] = v != v ? v : g;
    }
}


VEC_CLONES
float bms__vec_max(const float *x, int64_t n)
{
    float acc[LANES];
    float m = -INFINITY;
    int64_t i = 0;

    for (int j = 0; j < LANES; j++) {
        acc[j] = -INFINITY;
    }
    for (; i + LANES <= n; i += LANES) {
        for (int j = 0; j < LANES; j++) {
            acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
        }
    }
    for (; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    for (int j = 0; j < LANES; j++) {
        m = acc[j] > m ? acc[j] : m;
    }
    return m;
}


/* The sum of acc[0..LANES) and tail, pairwise. */
static inline float lanes_sum(float *acc, float tail)
{
    for (int w = LANES / 2; w > 0; w /= 2) {
        for (int j = 0; j < w; j++) {
            acc[j] += acc[j + w];
        }
    }
    return acc[0] + tail;
}


VEC_CLONES
float bms__vec_exp_sum(float *y, const float *x, int64_t n, float shift)
{
    float acc[LANES] = {0};
    float tail = 0.0f;
    int64_t i = 0;

    for (; i + LANES <= n; i += LANES) {
        for (int j = 0; j < LANES; j++) {
            float e = exp_core(x[i + j] - shift);

            y[i + j] = e;
            acc[j] += e;
        }
    }
    for (; i < n; i++) {
        y[i] = exp_core(x[i] - shift);
        tail += y[i];
    }
    return lanes_sum(acc, tail);
}


VEC_CLONES
void bms__vec_scale(float *y, int64_t n, float s)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] *= s;
    }
}


VEC_CLONES
void bms__vec_add(float *y, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] += b[i];
    }
}


/* The sum of x[0..n). */
static inline float row_sum(const float *x, int64_t n)
{
    float acc[LANES] = {0};
    float tail = 0.0f;
    int64_t i = 0;

    for (; i + LANES <= n; i += LANES) {
        for (int j = 0; j < LANES; j++) {
            acc[j] += x[i + j];
        }
    }
    for (; i < n; i++) {
        tail += x[i];
    }
    return lanes_sum(acc, tail);
}


/* The sum of (x[i] - mean)^2 over x[0..n). */
static inline float row_sq_dev(const float *x, int64_t n, float mean)
{
    float acc[LANES] = {0};
    float tail = 0.0f;
    int64_t i = 0;

    for (; i + LANES <= n; i += LANES) {
        for (int j = 0; j < LANES; j++) {
            float d = x[i + j] - mean;

            acc[j] += d * d;
        }
    }
    for (; i < n; i++) {
        float d = x[i] - mean;

        tail += d * d;
    }
    return lanes_sum(acc, tail);
}


VEC_CLONES
void bms__vec_layernorm(float *y, const float *x, const float *r,
                        const float *scale, const float *bias, int64_t n,
                        float eps, float *mean, float *inv_std)
{
    float m;
    float inv;

    /* The residual goes in first, so the passes below read one row. */
    if (r != NULL) {
        for (int64_t i = 0; i < n; i++) {
            y[i] = x[i] + r[i];
        }
        x = y;
    }
    m = row_sum(x, n) / (float)n;
    inv = 1.0f / sqrtf(row_sq_dev(x, n, m) / (float)n + eps);
    if (bias != NULL) {
        for (int64_t i = 0; i < n; i++) {
            y[i] = (x[i] - m) * inv * scale[i] + bias[i];
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            y[i] = (x[i] - m) * inv * scale[i];
        }
    }
    *mean = m;
    *inv_std = inv;
}
