/*
 * Unary operators that elementwise.c does not cover: the activations with
 * attributes (LeakyRelu, Elu, Selu, Celu, ThresholdedRelu, HardSigmoid,
 * HardSwish, Softplus, Softsign, Shrink), the trigonometric and
 * hyperbolic functions, Erf, Round, Sign, the tests IsNaN and IsInf (BOOL
 * out), Not, and Clip.
 *
 * Every value goes through double (ops/elem.h): the functions come from
 * libm in double precision and the result is rounded once to the output
 * datatype, which keeps F32 results within half an ulp of the exact
 * value and never overflows an intermediate.  The one exception is F32
 * Erf, hot in transformers, which takes the vectorised polynomial of
 * vecmath.c (within 2e-7 relative).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"
#include "engine/ops/vecmath.h"

struct act_params {
    double a;            /* alpha, bias, detect_negative (op-specific) */
    double b;            /* beta, gamma, lambd, detect_positive */
};

typedef double (*act_fn)(double x, const struct act_params *p);

/* Which datatypes an entry takes. */
enum act_types {
    TYPES_FLOAT,         /* F32, F64 */
    TYPES_NUMERIC,       /* F32, F64 and the integers */
    TYPES_BOOL           /* BOOL only */
};

struct act_entry {
    const char *name;
    act_fn fn;
    enum act_types types;
    int bool_out;
    const char *a_name;
    double a_dflt;
    const char *b_name;
    double b_dflt;
};


static double leaky_relu(double x, const struct act_params *p)
{
    return x < 0 ? p->a * x : x;
}


static double elu(double x, const struct act_params *p)
{
    return x < 0 ? p->a * expm1(x) : x;
}


/* ONNX Selu: gamma * (alpha * e^x - alpha) for x <= 0, gamma * x above. */
static double selu(double x, const struct act_params *p)
{
    return x <= 0 ? p->b * (p->a * exp(x) - p->a) : p->b * x;
}


static double celu(double x, const struct act_params *p)
{
    double neg = p->a * expm1(x / p->a);

    return (x > 0 ? x : 0) + (neg < 0 ? neg : 0);
}


static double thresholded_relu(double x, const struct act_params *p)
{
    return x > p->a ? x : 0;
}


static double hard_sigmoid(double x, const struct act_params *p)
{
    double y = p->a * x + p->b;

    return y < 0 ? 0 : y > 1 ? 1 : y;
}


static double hard_swish(double x, const struct act_params *p)
{
    struct act_params hs = {1.0 / 6.0, 0.5};

    (void)p;
    return x * hard_sigmoid(x, &hs);
}


/* log(1 + e^x) without overflow for large x. */
static double softplus(double x, const struct act_params *p)
{
    (void)p;
    return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}


static double softsign(double x, const struct act_params *p)
{
    (void)p;
    return x / (1 + fabs(x));
}


static double shrink(double x, const struct act_params *p)
{
    if (x < -p->b) {
        return x + p->a;
    }
    return x > p->b ? x - p->a : 0;
}


static double sign(double x, const struct act_params *p)
{
    (void)p;
    return x > 0 ? 1 : x < 0 ? -1 : x;
}


static double is_nan(double x, const struct act_params *p)
{
    (void)p;
    return isnan(x) != 0;
}


static double is_inf(double x, const struct act_params *p)
{
    return isinf(x) && ((x < 0 && p->a != 0) || (x > 0 && p->b != 0));
}


static double not_fn(double x, const struct act_params *p)
{
    (void)p;
    return x == 0;
}


/* Round half to even, as ONNX Round asks (the default rounding mode). */
static double round_fn(double x, const struct act_params *p)
{
    (void)p;
    return nearbyint(x);
}

#define LIBM(fname, call)                                                   \
    static double fname(double x, const struct act_params *p)              \
    {                                                                       \
        (void)p;                                                            \
        return call(x);                                                     \
    }

LIBM(sin_fn, sin)
LIBM(cos_fn, cos)
LIBM(tan_fn, tan)
LIBM(asin_fn, asin)
LIBM(acos_fn, acos)
LIBM(atan_fn, atan)
LIBM(sinh_fn, sinh)
LIBM(cosh_fn, cosh)
LIBM(asinh_fn, asinh)
LIBM(acosh_fn, acosh)
LIBM(atanh_fn, atanh)
LIBM(erf_fn, erf)

#define PLAIN(name, fn) {name, fn, TYPES_FLOAT, 0, NULL, 0, NULL, 0}

/* ONNX Selu defaults, as the spec writes them. */
#define SELU_ALPHA 1.67326319217681884765625
#define SELU_GAMMA 1.05070102214813232421875

static const struct act_entry act_table[] = {
    {"LeakyRelu", leaky_relu, TYPES_FLOAT, 0, "alpha", 0.01, NULL, 0},
    {"Elu", elu, TYPES_FLOAT, 0, "alpha", 1.0, NULL, 0},
    {"Selu", selu, TYPES_FLOAT, 0, "alpha", SELU_ALPHA, "gamma",
     SELU_GAMMA},
    {"Celu", celu, TYPES_FLOAT, 0, "alpha", 1.0, NULL, 0},
    {"ThresholdedRelu", thresholded_relu, TYPES_FLOAT, 0, "alpha", 1.0,
     NULL, 0},
    {"HardSigmoid", hard_sigmoid, TYPES_FLOAT, 0, "alpha", 0.2, "beta", 0.5},
    {"Shrink", shrink, TYPES_NUMERIC, 0, "bias", 0.0, "lambd", 0.5},
    {"Sign", sign, TYPES_NUMERIC, 0, NULL, 0, NULL, 0},
    {"IsNaN", is_nan, TYPES_FLOAT, 1, NULL, 0, NULL, 0},
    {"IsInf", is_inf, TYPES_FLOAT, 1, NULL, 1, NULL, 1},
    {"Not", not_fn, TYPES_BOOL, 1, NULL, 0, NULL, 0},
    PLAIN("HardSwish", hard_swish),
    PLAIN("Softplus", softplus),
    PLAIN("Softsign", softsign),
    PLAIN("Round", round_fn),
    PLAIN("Sin", sin_fn),
    PLAIN("Cos", cos_fn),
    PLAIN("Tan", tan_fn),
    PLAIN("Asin", asin_fn),
    PLAIN("Acos", acos_fn),
    PLAIN("Atan", atan_fn),
    PLAIN("Sinh", sinh_fn),
    PLAIN("Cosh", cosh_fn),
    PLAIN("Asinh", asinh_fn),
    PLAIN("Acosh", acosh_fn),
    PLAIN("Atanh", atanh_fn),
    PLAIN("Erf", erf_fn),
};

#define N_ACT ((int)(sizeof(act_table) / sizeof(act_table[0])))


static const struct act_entry *act_entry(const char *op_type)
{
    for (int i = 0; i < N_ACT; i++) {
        if (strcmp(act_table[i].name, op_type) == 0) {
            return &act_table[i];
        }
    }
    return NULL;
}


struct act_node {
    const struct act_entry *e;
    struct act_params p;
};


enum bms_status bms__act_prepare(struct bms__node *node,
                                 struct bms_diag *diag)
{
    const struct act_entry *e = act_entry(node->op_type);
    struct act_node *an;
    enum bms_status rc;

    if (e == NULL) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL,
                            "%s: not a unary activation", node->op_type);
    }
    rc = bms__math_check_arity(node, 1, 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    an = malloc(sizeof(*an));
    if (an == NULL) {
        return BMS_ERR_NOMEM;
    }
    an->e = e;
    /* The defaults stay exact doubles; attributes are floats. */
    an->p.a = e->a_dflt;
    an->p.b = e->b_dflt;
    if (e->a_name != NULL && bms__attr_find(node, e->a_name) != NULL) {
        an->p.a = bms__attr_float(node, e->a_name, (float)e->a_dflt);
    }
    if (e->b_name != NULL && bms__attr_find(node, e->b_name) != NULL) {
        an->p.b = bms__attr_float(node, e->b_name, (float)e->b_dflt);
    }
    if (strcmp(e->name, "IsInf") == 0) {
        an->p.a = (double)bms__attr_int(node, "detect_negative", 1);
        an->p.b = (double)bms__attr_int(node, "detect_positive", 1);
    }
    node->params = an;
    return BMS_OK;
}


static int types_ok(enum act_types types, enum bms_dtype dtype)
{
    enum bms__elem_kind k = bms__elem_kind(dtype);

    switch (types) {
    case TYPES_FLOAT: return k == BMS__KIND_FLOAT;
    case TYPES_NUMERIC: return k != BMS__KIND_NONE && k != BMS__KIND_BOOL;
    default: return k == BMS__KIND_BOOL;
    }
}


enum bms_status bms__act_infer(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms_diag *diag)
{
    const struct act_node *an = node->params;

    if (!types_ok(an->e->types, in[0]->dtype)) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    bms__elem_same_shape(out, in[0]);
    if (an->e->bool_out) {
        out->dtype = BMS_DTYPE_BOOL;
    }
    return BMS_OK;
}


enum bms_status bms__act_run(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out,
                             struct bms__ctx *ctx)
{
    const struct act_node *an = node->params;
    const struct bms_tensor *x = in[0];
    int64_t n = bms_tensor_numel(out);

    (void)ctx;
    if (x->dtype == BMS_DTYPE_F32 && an->e->fn == erf_fn) {
        bms__vec_erf(out->data, x->data, n);
        return BMS_OK;
    }
    if (x->dtype == BMS_DTYPE_F32 && out->dtype == BMS_DTYPE_F32) {
        const float *px = x->data;
        float *py = out->data;

        for (int64_t i = 0; i < n; i++) {
            py[i] = (float)an->e->fn(px[i], &an->p);
        }
        return BMS_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = bms__elem_get_f(x->data, x->dtype, i);

        bms__elem_set_f(out->data, out->dtype, i, an->e->fn(v, &an->p));
    }
    return BMS_OK;
}


/*
 * Clip: the bounds are attributes min and max before opset 11 (floats,
 * default unbounded) and optional scalar inputs from opset 11.
 */
struct clip_params {
    int from_inputs;
    double lo;
    double hi;
};


enum bms_status bms__clip_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    struct clip_params *p;
    int from_inputs = node->opset <= 0 || node->opset >= 11;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, from_inputs ? 3 : 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->from_inputs = from_inputs;
    p->lo = bms__attr_float(node, "min", -INFINITY);
    p->hi = bms__attr_float(node, "max", INFINITY);
    node->params = p;
    return BMS_OK;
}


enum bms_status bms__clip_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    enum bms__elem_kind k = bms__elem_kind(in[0]->dtype);

    if (k == BMS__KIND_NONE || k == BMS__KIND_BOOL) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    for (int i = 1; i < node->n_inputs; i++) {
        if (in[i] == NULL) {
            continue;
        }
        if (in[i]->dtype != in[0]->dtype || bms_tensor_numel(in[i]) != 1) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Clip: input %d must be one value of the "
                                "input's datatype", i);
        }
    }
    bms__elem_same_shape(out, in[0]);
    return BMS_OK;
}


static void clip_ints(const struct bms__node *node,
                      const struct bms_tensor *const *in,
                      struct bms_tensor *out)
{
    enum bms_dtype dt = out->dtype;
    int is_u = bms__elem_kind(dt) == BMS__KIND_UNSIGNED;
    int has_lo = node->n_inputs > 1 && in[1] != NULL;
    int has_hi = node->n_inputs > 2 && in[2] != NULL;
    int64_t lo = has_lo ? bms__elem_get_i(in[1]->data, dt, 0) : 0;
    int64_t hi = has_hi ? bms__elem_get_i(in[2]->data, dt, 0) : 0;
    int64_t n = bms_tensor_numel(out);

    for (int64_t i = 0; i < n; i++) {
        int64_t v = bms__elem_get_i(in[0]->data, dt, i);

        if (has_lo && (is_u ? bms__elem_cmp_u(v, lo) < 0 : v < lo)) {
            v = lo;
        }
        if (has_hi && (is_u ? bms__elem_cmp_u(v, hi) > 0 : v > hi)) {
            v = hi;
        }
        bms__elem_set_i(out->data, dt, i, v);
    }
}


enum bms_status bms__clip_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    const struct clip_params *p = node->params;
    enum bms_dtype dt = out->dtype;
    double lo = p->lo;
    double hi = p->hi;
    int64_t n = bms_tensor_numel(out);

    (void)ctx;
    if (bms__elem_kind(dt) != BMS__KIND_FLOAT) {
        clip_ints(node, in, out);
        return BMS_OK;
    }
    if (p->from_inputs) {
        lo = node->n_inputs > 1 && in[1] != NULL
                 ? bms__elem_get_f(in[1]->data, dt, 0) : -INFINITY;
        hi = node->n_inputs > 2 && in[2] != NULL
                 ? bms__elem_get_f(in[2]->data, dt, 0) : INFINITY;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = bms__elem_get_f(in[0]->data, dt, i);

        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        bms__elem_set_f(out->data, dt, i, v);
    }
    return BMS_OK;
}
