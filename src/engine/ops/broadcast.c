/*
 * The broadcasting operators that elementwise.c does not cover: the
 * comparisons Equal, Less, Greater, LessOrEqual, GreaterOrEqual (BOOL
 * out), the logical And, Or, Xor, and Pow, Mod, BitShift, PRelu and
 * Where; and the variadic Max, Min, Sum, Mean.
 *
 * They go through the datatype-generic accessors of ops/elem.h: floating
 * values are computed in double, integers in 64-bit arithmetic that wraps
 * when stored, so no input reaches undefined behaviour (Mod by 0 gives 0,
 * a shift past the width gives 0).  The variadic ops fold one input at a
 * time into the output, as numpy does pairwise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

enum bop {
    OP_EQ, OP_LT, OP_GT, OP_LE, OP_GE, OP_AND, OP_OR, OP_XOR, OP_POW,
    OP_MOD, OP_SHIFT, OP_PRELU, OP_WHERE
};

static const char *const bop_names[] = {
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And",
    "Or", "Xor", "Pow", "Mod", "BitShift", "PRelu", "Where"
};

#define N_BOPS ((int)(sizeof(bop_names) / sizeof(bop_names[0])))

struct bop_params {
    enum bop op;
    int fmod;            /* Mod: C remainder instead of Python's */
    int shift_left;      /* BitShift direction */
};

enum vop { VOP_MAX, VOP_MIN, VOP_SUM, VOP_MEAN };


static int find_name(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}


enum bms_status bms__bcast_op_prepare(struct bms__node *node,
                                      struct bms_diag *diag)
{
    int op = find_name(bop_names, N_BOPS, node->op_type);
    int n_in = op == OP_WHERE ? 3 : 2;
    struct bop_params *p;
    enum bms_status rc;
    char dir[16] = "";

    if (op < 0) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL,
                            "%s: not a broadcasting op", node->op_type);
    }
    rc = bms__math_check_arity(node, n_in, n_in, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (op == OP_SHIFT &&
        (!bms__attr_string(node, "direction", dir, sizeof(dir)) ||
         (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0))) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "BitShift: direction must be LEFT or RIGHT");
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->op = (enum bop)op;
    p->fmod = bms__attr_int(node, "fmod", 0) != 0;
    p->shift_left = strcmp(dir, "LEFT") == 0;
    node->params = p;
    return BMS_OK;
}


static enum bms_status differ(const struct bms__node *node,
                              enum bms_dtype a, enum bms_dtype b,
                              struct bms_diag *diag)
{
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "%s: datatypes %s and %s differ", node->op_type,
                        bms_dtype_v2_name(a), bms_dtype_v2_name(b));
}


/* The datatype checks of each op; *out_dtype is the output's. */
static enum bms_status check_dtypes(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    enum bms_dtype *out_dtype,
                                    struct bms_diag *diag)
{
    const struct bop_params *p = node->params;
    enum bms_dtype a = in[0]->dtype;
    enum bms_dtype b = in[1]->dtype;
    enum bms__elem_kind ka = bms__elem_kind(a);

    switch (p->op) {
    case OP_WHERE:
        if (a != BMS_DTYPE_BOOL) {
            return bms__math_bad_dtype(node, a, diag);
        }
        if (bms__elem_kind(b) == BMS__KIND_NONE) {
            return bms__math_bad_dtype(node, b, diag);
        }
        if (in[2]->dtype != b) {
            return differ(node, b, in[2]->dtype, diag);
        }
        *out_dtype = b;
        return BMS_OK;
    case OP_POW:
        if (ka != BMS__KIND_FLOAT && ka != BMS__KIND_SIGNED) {
            return bms__math_bad_dtype(node, a, diag);
        }
        if (bms__elem_kind(b) == BMS__KIND_NONE ||
            bms__elem_kind(b) == BMS__KIND_BOOL) {
            return bms__math_bad_dtype(node, b, diag);
        }
        *out_dtype = a;
        return BMS_OK;
    default:
        break;
    }
    if (a != b) {
        return differ(node, a, b, diag);
    }
    if (ka == BMS__KIND_NONE ||
        ((p->op == OP_AND || p->op == OP_OR || p->op == OP_XOR) &&
         ka != BMS__KIND_BOOL) ||
        (p->op == OP_SHIFT && ka != BMS__KIND_UNSIGNED) ||
        ((p->op == OP_MOD || p->op == OP_PRELU) && ka == BMS__KIND_BOOL)) {
        return bms__math_bad_dtype(node, a, diag);
    }
    if (p->op == OP_MOD && ka == BMS__KIND_FLOAT && !p->fmod) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Mod: floating inputs need fmod=1");
    }
    *out_dtype = p->op <= OP_XOR ? BMS_DTYPE_BOOL : a;
    return BMS_OK;
}


/* PRelu before opset 7 takes a 1-D slope of C values per channel (dim 1
 * of X); later ones broadcast the slope into X the numpy way. */
static void prelu_slope(const struct bms__node *node,
                        const struct bms_tensor *x,
                        const struct bms_tensor *slope,
                        struct bms_tensor *view)
{
    *view = *slope;
    if (node->opset > 0 && node->opset < 7 && slope->n_dims == 1 &&
        x->n_dims >= 2 && slope->dims[0] != 1 &&
        slope->dims[0] == x->dims[1]) {
        view->n_dims = x->n_dims - 1;
        for (int d = 1; d < view->n_dims; d++) {
            view->dims[d] = 1;
        }
    }
}


enum bms_status bms__bcast_op_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    const struct bop_params *p = node->params;
    const struct bms_tensor *ops[3] = {in[0], in[1], NULL};
    struct bms_tensor slope;
    enum bms_dtype dtype = BMS_DTYPE_UNDEFINED;
    enum bms_status rc;

    rc = check_dtypes(node, in, &dtype, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (p->op == OP_WHERE) {
        ops[2] = in[2];
    }
    if (p->op == OP_PRELU) {
        prelu_slope(node, in[0], in[1], &slope);
        ops[1] = &slope;
    }
    rc = bms__bcast_dims(node, ops, 3, out, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (p->op == OP_PRELU && (out->n_dims != in[0]->n_dims ||
                              memcmp(out->dims, in[0]->dims,
                                     sizeof(int64_t) *
                                     (size_t)out->n_dims) != 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "PRelu: slope does not broadcast into X");
    }
    out->dtype = dtype;
    return BMS_OK;
}


/* Python's remainder (sign of the divisor) or C's (sign of the dividend);
 * 0 for a zero divisor. */
static int64_t int_mod(int64_t a, int64_t b, int fmod_c, int is_unsigned)
{
    int64_t r;

    if (b == 0) {
        return 0;
    }
    if (is_unsigned) {
        return (int64_t)((uint64_t)a % (uint64_t)b);
    }
    if (b == -1) {
        return 0;
    }
    r = a % b;
    if (!fmod_c && r != 0 && ((r < 0) != (b < 0))) {
        r += b;
    }
    return r;
}


static int64_t shift(int64_t a, int64_t b, int left)
{
    uint64_t ua = (uint64_t)a;
    uint64_t ub = (uint64_t)b;

    if (ub >= 64) {
        return 0;
    }
    return (int64_t)(left ? ua << ub : ua >> ub);
}


/* a compared with b: -1, 0 or 1, by value for the datatype's kind; 2 when
 * either is NaN (unordered). */
static int compare(const void *da, int64_t ia, const void *db, int64_t ib,
                   enum bms_dtype dtype)
{
    enum bms__elem_kind k = bms__elem_kind(dtype);

    if (k == BMS__KIND_FLOAT) {
        double x = bms__elem_get_f(da, dtype, ia);
        double y = bms__elem_get_f(db, dtype, ib);

        if (isnan(x) || isnan(y)) {
            return 2;
        }
        return x < y ? -1 : x > y;
    }
    if (k == BMS__KIND_UNSIGNED) {
        return bms__elem_cmp_u(bms__elem_get_i(da, dtype, ia),
                               bms__elem_get_i(db, dtype, ib));
    }
    {
        int64_t x = bms__elem_get_i(da, dtype, ia);
        int64_t y = bms__elem_get_i(db, dtype, ib);

        return x < y ? -1 : x > y;
    }
}


static int compare_holds(enum bop op, int c)
{
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_LT: return c == -1;
    case OP_GT: return c == 1;
    case OP_LE: return c == -1 || c == 0;
    case OP_GE: return c == 1 || c == 0;
    default: return 0;
    }
}


/* One output element of the two-input ops other than the comparisons. */
static void arith_one(const struct bop_params *p,
                      const struct bms_tensor *a, int64_t ia,
                      const struct bms_tensor *b, int64_t ib,
                      struct bms_tensor *out, int64_t i)
{
    enum bms__elem_kind k = bms__elem_kind(a->dtype);

    if (p->op == OP_POW) {
        double x = bms__elem_get_f(a->data, a->dtype, ia);
        double y = bms__elem_get_f(b->data, b->dtype, ib);

        bms__elem_set_f(out->data, out->dtype, i, pow(x, y));
    } else if (p->op == OP_PRELU && k == BMS__KIND_FLOAT) {
        double x = bms__elem_get_f(a->data, a->dtype, ia);
        double s = bms__elem_get_f(b->data, b->dtype, ib);

        bms__elem_set_f(out->data, out->dtype, i, x < 0 ? s * x : x);
    } else if (p->op == OP_MOD && k == BMS__KIND_FLOAT) {
        double x = bms__elem_get_f(a->data, a->dtype, ia);
        double y = bms__elem_get_f(b->data, b->dtype, ib);

        bms__elem_set_f(out->data, out->dtype, i, fmod(x, y));
    } else {
        int64_t x = bms__elem_get_i(a->data, a->dtype, ia);
        int64_t y = bms__elem_get_i(b->data, b->dtype, ib);
        int64_t v;

        if (p->op == OP_MOD) {
            v = int_mod(x, y, p->fmod, k == BMS__KIND_UNSIGNED);
        } else if (p->op == OP_SHIFT) {
            v = shift(x, y, p->shift_left);
        } else if (p->op == OP_AND) {
            v = x && y;
        } else if (p->op == OP_OR) {
            v = x || y;
        } else if (p->op == OP_XOR) {
            v = (x != 0) != (y != 0);
        } else {
            v = x < 0 ? (int64_t)((uint64_t)x * (uint64_t)y) : x;
        }
        bms__elem_set_i(out->data, out->dtype, i, v);
    }
}


enum bms_status bms__bcast_op_run(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms__ctx *ctx)
{
    const struct bop_params *p = node->params;
    const struct bms_tensor *ops[3] = {in[0], in[1], in[2 % node->n_inputs]};
    int64_t n = bms_tensor_numel(out);
    struct bms_tensor slope;
    struct bms__iter it;

    (void)ctx;
    if (p->op == OP_PRELU) {
        prelu_slope(node, in[0], in[1], &slope);
        ops[1] = &slope;
    }
    bms__iter_init(&it, out->dims, out->n_dims, ops,
                   p->op == OP_WHERE ? 3 : 2);
    for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
        if (p->op == OP_WHERE) {
            const uint8_t *c = ops[0]->data;
            int from = c[it.off[0]] ? 1 : 2;

            bms__elem_copy(out->data, i, ops[from]->data, it.off[from],
                           bms_dtype_size(out->dtype));
        } else if (p->op <= OP_GE) {
            int c = compare(ops[0]->data, it.off[0], ops[1]->data,
                            it.off[1], ops[0]->dtype);

            ((uint8_t *)out->data)[i] = (uint8_t)compare_holds(p->op, c);
        } else {
            arith_one(p, ops[0], it.off[0], ops[1], it.off[1], out, i);
        }
    }
    return BMS_OK;
}


/* The variadic Max, Min, Sum and Mean. */
static const char *const vop_names[] = {"Max", "Min", "Sum", "Mean"};


enum bms_status bms__variadic_prepare(struct bms__node *node,
                                      struct bms_diag *diag)
{
    int op = find_name(vop_names, 4, node->op_type);
    enum bms_status rc;

    if (op < 0) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL,
                            "%s: not a variadic op", node->op_type);
    }
    rc = bms__math_check_arity(node, 1, node->n_inputs, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int k = 0; k < node->n_inputs; k++) {
        if (node->inputs[k] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: input %d is required", node->op_type,
                                k);
        }
    }
    return BMS_OK;
}


enum bms_status bms__variadic_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    enum bms_dtype dtype = in[0]->dtype;
    enum bms__elem_kind k = bms__elem_kind(dtype);
    int op = find_name(vop_names, 4, node->op_type);

    if (k == BMS__KIND_NONE || k == BMS__KIND_BOOL ||
        (op == VOP_MEAN && k != BMS__KIND_FLOAT)) {
        return bms__math_bad_dtype(node, dtype, diag);
    }
    for (int i = 1; i < node->n_inputs; i++) {
        if (in[i]->dtype != dtype) {
            return differ(node, dtype, in[i]->dtype, diag);
        }
    }
    out->dtype = dtype;
    if (node->opset > 0 && node->opset < 8) {
        /* Before opset 8 the inputs had to share one shape. */
        for (int i = 1; i < node->n_inputs; i++) {
            if (in[i]->n_dims != in[0]->n_dims ||
                memcmp(in[i]->dims, in[0]->dims,
                       sizeof(int64_t) * (size_t)in[0]->n_dims) != 0) {
                return bms_diag_set(diag, BMS_ERR_INVALID,
                                    "%s: inputs differ in shape before "
                                    "opset 8", node->op_type);
            }
        }
    }
    return bms__bcast_dims(node, in, node->n_inputs, out, diag);
}


/* out[i] = op(out[i], v) for floating values; NaN propagates through Max
 * and Min as in numpy. */
static double fold_f(enum vop op, double acc, double v)
{
    switch (op) {
    case VOP_MAX:
        return isnan(acc) || isnan(v) ? NAN : (v > acc ? v : acc);
    case VOP_MIN:
        return isnan(acc) || isnan(v) ? NAN : (v < acc ? v : acc);
    default:
        return acc + v;
    }
}


static int64_t fold_i(enum vop op, int is_unsigned, int64_t acc, int64_t v)
{
    int c = is_unsigned ? bms__elem_cmp_u(v, acc) : (v < acc ? -1 : v > acc);

    switch (op) {
    case VOP_MAX: return c > 0 ? v : acc;
    case VOP_MIN: return c < 0 ? v : acc;
    default: return (int64_t)((uint64_t)acc + (uint64_t)v);
    }
}


enum bms_status bms__variadic_run(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms__ctx *ctx)
{
    enum vop op = (enum vop)find_name(vop_names, 4, node->op_type);
    enum bms__elem_kind kind = bms__elem_kind(out->dtype);
    int64_t n = bms_tensor_numel(out);
    size_t size = bms_dtype_size(out->dtype);

    (void)ctx;
    for (int k = 0; k < node->n_inputs; k++) {
        struct bms__iter it;

        bms__iter_init(&it, out->dims, out->n_dims, &in[k], 1);
        for (int64_t i = 0; i < n; i++, bms__iter_next(&it)) {
            if (k == 0) {
                bms__elem_copy(out->data, i, in[0]->data, it.off[0], size);
            } else if (kind == BMS__KIND_FLOAT) {
                double acc = bms__elem_get_f(out->data, out->dtype, i);
                double v = bms__elem_get_f(in[k]->data, out->dtype,
                                           it.off[0]);

                bms__elem_set_f(out->data, out->dtype, i,
                                fold_f(op, acc, v));
            } else {
                int64_t acc = bms__elem_get_i(out->data, out->dtype, i);
                int64_t v = bms__elem_get_i(in[k]->data, out->dtype,
                                            it.off[0]);

                bms__elem_set_i(out->data, out->dtype, i,
                                fold_i(op, kind == BMS__KIND_UNSIGNED, acc,
                                       v));
            }
        }
    }
    if (op == VOP_MEAN) {
        for (int64_t i = 0; i < n; i++) {
            double v = bms__elem_get_f(out->data, out->dtype, i);

            bms__elem_set_f(out->data, out->dtype, i, v / node->n_inputs);
        }
    }
    return BMS_OK;
}
