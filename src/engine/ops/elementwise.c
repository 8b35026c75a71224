/*
 * Elementwise kernels: the binary Add, Sub, Mul, Div with ONNX
 * multidirectional (numpy) broadcasting, and the unary Relu, Sigmoid,
 * Tanh, Neg, Abs, Exp, Log, Sqrt, Reciprocal, Floor and Ceil.
 *
 * A binary run first reduces both operands' shapes to a short list of
 * merged dimensions with a stride of 0 where an operand is broadcast, so
 * that the innermost loop is one long, branch-free run gcc can vectorise.
 * Integer arithmetic wraps (it is done in unsigned 64-bit and cut back), so
 * no input can reach signed overflow; integer division by zero gives 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/kernels.h"

enum binary_op { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

struct binary_params {
    enum binary_op op;
    int legacy;          /* opset < 7: broadcast only when asked, at axis */
    int64_t broadcast;   /* legacy attribute: 1 lets B broadcast into A */
    int64_t axis;        /* legacy attribute: where B aligns, -1: suffix */
};

/* Operand layouts reduced for the loops: dims merged where both operands
 * stay contiguous (or both broadcast) across them; strides in elements. */
struct bcast {
    int n_dims;
    int64_t dims[BMS_MAX_DIMS];
    int64_t sa[BMS_MAX_DIMS];
    int64_t sb[BMS_MAX_DIMS];
};


enum bms_status bms__binary_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    static const char *const names[] = {"Add", "Sub", "Mul", "Div"};
    struct binary_params *p;
    enum bms_status rc;
    int op = -1;

    rc = bms__math_check_arity(node, 2, 2, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int i = 0; i < 4; i++) {
        if (strcmp(node->op_type, names[i]) == 0) {
            op = i;
        }
    }
    if (op < 0) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL,
                            "%s: not a binary elementwise op",
                            node->op_type);
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->op = (enum binary_op)op;
    p->legacy = node->opset > 0 && node->opset < 7;
    p->broadcast = bms__attr_int(node, "broadcast", 0);
    p->axis = bms__attr_int(node, "axis", -1);
    node->params = p;
    return BMS_OK;
}


/*
 * The dims B takes part in broadcasting with.  From opset 7 that is B as it
 * is; before, B broadcasts only with broadcast=1 and then lines up with A
 * at `axis` (ONNX Add-6), which padding B with 1s on both sides expresses.
 */
static enum bms_status legacy_dims(const struct bms__node *node,
                                   const struct bms_tensor *a,
                                   const struct bms_tensor *b,
                                   int64_t *dims, int *n_dims,
                                   struct bms_diag *diag)
{
    const struct binary_params *p = node->params;
    int64_t axis = p->axis;

    memcpy(dims, b->dims, sizeof(b->dims));
    *n_dims = b->n_dims;
    if (!p->legacy || p->broadcast == 0 || axis < 0) {
        return BMS_OK;
    }
    if (axis + b->n_dims > a->n_dims) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: legacy broadcast axis %lld does not fit "
                            "ranks %d and %d", node->op_type,
                            (long long)axis, a->n_dims, b->n_dims);
    }
    for (int i = 0; i < a->n_dims; i++) {
        int bi = i - (int)axis;

        dims[i] = bi >= 0 && bi < b->n_dims ? b->dims[bi] : 1;
    }
    *n_dims = a->n_dims;
    return BMS_OK;
}


static int binary_dtype_ok(enum bms_dtype dtype)
{
    switch (dtype) {
    case BMS_DTYPE_F32: case BMS_DTYPE_F64:
    case BMS_DTYPE_I8: case BMS_DTYPE_I16:
    case BMS_DTYPE_I32: case BMS_DTYPE_I64:
    case BMS_DTYPE_U8: case BMS_DTYPE_U16:
    case BMS_DTYPE_U32: case BMS_DTYPE_U64:
        return 1;
    default:
        return 0;
    }
}


static enum bms_status mismatch(const struct bms__node *node,
                                const int64_t *a_dims, int a_n,
                                const int64_t *b_dims, int b_n,
                                struct bms_diag *diag)
{
    char a_text[BMS__DIMS_TEXT_SIZE];
    char b_text[BMS__DIMS_TEXT_SIZE];

    bms__math_dims_text(a_dims, a_n, a_text);
    bms__math_dims_text(b_dims, b_n, b_text);
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "%s: shapes %s and %s do not broadcast",
                        node->op_type, a_text, b_text);
}


enum bms_status bms__binary_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct binary_params *p = node->params;
    const struct bms_tensor *a = in[0];
    const struct bms_tensor *b = in[1];
    int64_t b_dims[BMS_MAX_DIMS];
    enum bms_status rc;
    int b_n;
    int rank;

    if (!binary_dtype_ok(a->dtype)) {
        return bms__math_bad_dtype(node, a->dtype, diag);
    }
    if (b->dtype != a->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: datatypes %s and %s differ", node->op_type,
                            bms_dtype_v2_name(a->dtype),
                            bms_dtype_v2_name(b->dtype));
    }
    rc = legacy_dims(node, a, b, b_dims, &b_n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (p->legacy && p->broadcast == 0 &&
        (a->n_dims != b_n ||
         memcmp(a->dims, b_dims, sizeof(int64_t) * (size_t)b_n) != 0)) {
        return mismatch(node, a->dims, a->n_dims, b_dims, b_n, diag);
    }
    rank = a->n_dims > b_n ? a->n_dims : b_n;
    out->dtype = a->dtype;
    out->n_dims = rank;
    for (int i = 0; i < rank; i++) {
        int ai = i - (rank - a->n_dims);
        int bi = i - (rank - b_n);
        int64_t da = ai >= 0 ? a->dims[ai] : 1;
        int64_t db = bi >= 0 ? b_dims[bi] : 1;

        if (!bms__math_broadcast_dim(da, db, &out->dims[i])) {
            return mismatch(node, a->dims, a->n_dims, b_dims, b_n, diag);
        }
    }
    return BMS_OK;
}


/* Strides (elements) of an operand of n dims right-aligned to the output's
 * rank, 0 along every dim it broadcasts over. */
static void operand_strides(const int64_t *dims, int n, int rank,
                            int64_t *strides)
{
    int64_t step = 1;

    for (int i = rank - 1; i >= 0; i--) {
        int di = i - (rank - n);
        int64_t d = di >= 0 ? dims[di] : 1;

        strides[i] = d == 1 ? 0 : step;
        step *= d;
    }
}


static void bcast_build(const struct bms_tensor *out, const int64_t *a_dims,
                        int a_n, const int64_t *b_dims, int b_n,
                        struct bcast *bc)
{
    int64_t sa[BMS_MAX_DIMS];
    int64_t sb[BMS_MAX_DIMS];
    int n = 0;

    operand_strides(a_dims, a_n, out->n_dims, sa);
    operand_strides(b_dims, b_n, out->n_dims, sb);
    for (int i = 0; i < out->n_dims; i++) {
        if (out->dims[i] == 1) {
            continue;
        }
        /* Fold dim i into the previous one when both operands step
         * through them as one (contiguous, or both broadcast). */
        if (n > 0 && sa[i] * out->dims[i] == bc->sa[n - 1] &&
            sb[i] * out->dims[i] == bc->sb[n - 1]) {
            bc->dims[n - 1] *= out->dims[i];
            bc->sa[n - 1] = sa[i];
            bc->sb[n - 1] = sb[i];
            continue;
        }
        bc->dims[n] = out->dims[i];
        bc->sa[n] = sa[i];
        bc->sb[n] = sb[i];
        n++;
    }
    if (n == 0) {
        bc->dims[0] = 1;
        bc->sa[0] = 0;
        bc->sb[0] = 0;
        n = 1;
    }
    bc->n_dims = n;
}


/*
 * The kernel body of one (op, type) pair: an odometer over the outer dims
 * and, innermost, one of four loops chosen by which operand is broadcast,
 * so that the hot loop has no stride arithmetic.
 */
#define BINARY_KERNEL(fname, T, EXPR)                                        \
    static void fname(const struct bcast *bc, const void *va,               \
                      const void *vb, void *vo)                             \
    {                                                                       \
        const T *a = va;                                                    \
        const T *b = vb;                                                    \
        T *o = vo;                                                          \
        int last = bc->n_dims - 1;                                          \
        int64_t n = bc->dims[last];                                         \
        int64_t idx[BMS_MAX_DIMS] = {0};                                    \
        int64_t n_outer = 1;                                                \
                                                                            \
        for (int d = 0; d < last; d++) {                                    \
            n_outer *= bc->dims[d];                                         \
        }                                                                   \
        for (int64_t r = 0; r < n_outer; r++) {                             \
            const T *pa = a;                                                \
            const T *pb = b;                                                \
                                                                            \
            for (int d = 0; d < last; d++) {                                \
                pa += idx[d] * bc->sa[d];                                   \
                pb += idx[d] * bc->sb[d];                                   \
            }                                                               \
            if (bc->sa[last] != 0 && bc->sb[last] != 0) {                   \
                for (int64_t i = 0; i < n; i++) {                           \
                    T x = pa[i];                                            \
                    T y = pb[i];                                            \
                                                                            \
                    o[i] = EXPR;                                            \
                }                                                           \
            } else if (bc->sa[last] != 0) {                                 \
                T y = pb[0];                                                \
                                                                            \
                for (int64_t i = 0; i < n; i++) {                           \
                    T x = pa[i];                                            \
                                                                            \
                    o[i] = EXPR;                                            \
                }                                                           \
            } else if (bc->sb[last] != 0) {                                 \
                T x = pa[0];                                                \
                                                                            \
                for (int64_t i = 0; i < n; i++) {                           \
                    T y = pb[i];                                            \
                                                                            \
                    o[i] = EXPR;                                            \
                }                                                           \
            } else {                                                        \
                T x = pa[0];                                                \
                T y = pb[0];                                                \
                T v = EXPR;                                                 \
                                                                            \
                for (int64_t i = 0; i < n; i++) {                           \
                    o[i] = v;                                               \
                }                                                           \
            }                                                               \
            o += n;                                                         \
            for (int d = last - 1; d >= 0; d--) {                           \
                if (++idx[d] < bc->dims[d]) {                               \
                    break;                                                  \
                }                                                           \
                idx[d] = 0;                                                 \
            }                                                               \
        }                                                                   \
    }

/* Wrapping integer arithmetic, and division that is defined everywhere:
 * x / 0 is 0, and MIN / -1 wraps to MIN. */
#define WRAP(T, x, op, y) ((T)((uint64_t)(x) op (uint64_t)(y)))
#define SDIV(T, x, y) \
    ((y) == 0 ? (T)0 : (y) == -1 ? WRAP(T, 0, -, x) : (T)((x) / (y)))
#define UDIV(T, x, y) ((y) == 0 ? (T)0 : (T)((x) / (y)))

#define FLOAT_KERNELS(sfx, T)                                               \
    BINARY_KERNEL(add_##sfx, T, x + y)                                      \
    BINARY_KERNEL(sub_##sfx, T, x - y)                                      \
    BINARY_KERNEL(mul_##sfx, T, x * y)                                      \
    BINARY_KERNEL(div_##sfx, T, x / y)

#define INT_KERNELS(sfx, T, DIV)                                            \
    BINARY_KERNEL(add_##sfx, T, WRAP(T, x, +, y))                           \
    BINARY_KERNEL(sub_##sfx, T, WRAP(T, x, -, y))                           \
    BINARY_KERNEL(mul_##sfx, T, WRAP(T, x, *, y))                           \
    BINARY_KERNEL(div_##sfx, T, DIV(T, x, y))

FLOAT_KERNELS(f32, float)
FLOAT_KERNELS(f64, double)
INT_KERNELS(i8, int8_t, SDIV)
INT_KERNELS(i16, int16_t, SDIV)
INT_KERNELS(i32, int32_t, SDIV)
INT_KERNELS(i64, int64_t, SDIV)
INT_KERNELS(u8, uint8_t, UDIV)
INT_KERNELS(u16, uint16_t, UDIV)
INT_KERNELS(u32, uint32_t, UDIV)
INT_KERNELS(u64, uint64_t, UDIV)

typedef void (*binary_fn)(const struct bcast *bc, const void *a,
                          const void *b, void *o);

#define KERNEL_ROW(sfx) {add_##sfx, sub_##sfx, mul_##sfx, div_##sfx}

static binary_fn binary_kernel(enum bms_dtype dtype, enum binary_op op)
{
    static const binary_fn f32[] = KERNEL_ROW(f32);
    static const binary_fn f64[] = KERNEL_ROW(f64);
    static const binary_fn i8[] = KERNEL_ROW(i8);
    static const binary_fn i16[] = KERNEL_ROW(i16);
    static const binary_fn i32[] = KERNEL_ROW(i32);
    static const binary_fn i64[] = KERNEL_ROW(i64);
    static const binary_fn u8[] = KERNEL_ROW(u8);
    static const binary_fn u16[] = KERNEL_ROW(u16);
    static const binary_fn u32[] = KERNEL_ROW(u32);
    static const binary_fn u64[] = KERNEL_ROW(u64);

    switch (dtype) {
    case BMS_DTYPE_F32: return f32[op];
    case BMS_DTYPE_F64: return f64[op];
    case BMS_DTYPE_I8: return i8[op];
    case BMS_DTYPE_I16: return i16[op];
    case BMS_DTYPE_I32: return i32[op];
    case BMS_DTYPE_I64: return i64[op];
    case BMS_DTYPE_U8: return u8[op];
    case BMS_DTYPE_U16: return u16[op];
    case BMS_DTYPE_U32: return u32[op];
    case BMS_DTYPE_U64: return u64[op];
    default: return NULL;
    }
}


enum bms_status bms__binary_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    const struct binary_params *p = node->params;
    binary_fn fn = binary_kernel(out->dtype, p->op);
    int64_t b_dims[BMS_MAX_DIMS];
    struct bcast bc;
    int b_n;

    (void)ctx;
    if (fn == NULL) {
        return BMS_ERR_UNSUPPORTED;
    }
    if (legacy_dims(node, in[0], in[1], b_dims, &b_n, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (bms_tensor_numel(out) == 0) {
        return BMS_OK;
    }
    bcast_build(out, in[0]->dims, in[0]->n_dims, b_dims, b_n, &bc);
    fn(&bc, in[0]->data, in[1]->data, out->data);
    return BMS_OK;
}


/*
 * The unary kernels: one loop per (op, type), from an expression in x.
 * Integer Neg and Abs wrap at the minimum like the binary ops do.
 */
#define UNARY_KERNEL(fname, T, EXPR)                                        \
    static void fname(const void *vx, void *vy, int64_t n)                  \
    {                                                                       \
        const T *xs = vx;                                                   \
        T *y = vy;                                                          \
                                                                            \
        for (int64_t i = 0; i < n; i++) {                                   \
            T x = xs[i];                                                    \
                                                                            \
            y[i] = EXPR;                                                    \
        }                                                                   \
    }

#define FLOAT_UNARY(name, EXPR_F, EXPR_D)                                   \
    UNARY_KERNEL(name##_f32, float, EXPR_F)                                 \
    UNARY_KERNEL(name##_f64, double, EXPR_D)

#define SIGNED_UNARY(name, EXPR)                                            \
    UNARY_KERNEL(name##_i8, int8_t, EXPR)                                   \
    UNARY_KERNEL(name##_i16, int16_t, EXPR)                                 \
    UNARY_KERNEL(name##_i32, int32_t, EXPR)                                 \
    UNARY_KERNEL(name##_i64, int64_t, EXPR)

#define WRAP_NEG(x) (0 - (uint64_t)(x))   /* cut back to T on store */

/* Sigmoid as 1 / (1 + e^-x): far below 0, e^-x is +inf and y is 0. */
FLOAT_UNARY(relu, x > 0 ? x : 0.0f, x > 0 ? x : 0.0)
FLOAT_UNARY(sigmoid, 1.0f / (1.0f + expf(-x)), 1.0 / (1.0 + exp(-x)))
FLOAT_UNARY(tanh, tanhf(x), tanh(x))
FLOAT_UNARY(neg, -x, -x)
FLOAT_UNARY(abs, fabsf(x), fabs(x))
FLOAT_UNARY(exp, expf(x), exp(x))
FLOAT_UNARY(log, logf(x), log(x))
FLOAT_UNARY(sqrt, sqrtf(x), sqrt(x))
FLOAT_UNARY(reciprocal, 1.0f / x, 1.0 / x)
FLOAT_UNARY(floor, floorf(x), floor(x))
FLOAT_UNARY(ceil, ceilf(x), ceil(x))
SIGNED_UNARY(relu, x > 0 ? x : 0)
SIGNED_UNARY(neg, WRAP_NEG(x))
SIGNED_UNARY(abs, x < 0 ? WRAP_NEG(x) : (uint64_t)x)

typedef void (*unary_fn)(const void *x, void *y, int64_t n);

/* One row per op: its name and kernels for F32, F64, I8, I16, I32, I64
 * (NULL where ONNX or bms has none). */
struct unary_entry {
    const char *name;
    unary_fn fn[6];
};

#define FLOATS_ONLY(name) {name##_f32, name##_f64, NULL, NULL, NULL, NULL}
#define WITH_SIGNED(name)                                                   \
    {name##_f32, name##_f64, name##_i8, name##_i16, name##_i32, name##_i64}

static const struct unary_entry unary_table[] = {
    {"Relu", WITH_SIGNED(relu)},
    {"Sigmoid", FLOATS_ONLY(sigmoid)},
    {"Tanh", FLOATS_ONLY(tanh)},
    {"Neg", WITH_SIGNED(neg)},
    {"Abs", WITH_SIGNED(abs)},
    {"Exp", FLOATS_ONLY(exp)},
    {"Log", FLOATS_ONLY(log)},
    {"Sqrt", FLOATS_ONLY(sqrt)},
    {"Reciprocal", FLOATS_ONLY(reciprocal)},
    {"Floor", FLOATS_ONLY(floor)},
    {"Ceil", FLOATS_ONLY(ceil)},
};

#define N_UNARY ((int)(sizeof(unary_table) / sizeof(unary_table[0])))


static unary_fn unary_kernel(const struct unary_entry *e,
                             enum bms_dtype dtype)
{
    switch (dtype) {
    case BMS_DTYPE_F32: return e->fn[0];
    case BMS_DTYPE_F64: return e->fn[1];
    case BMS_DTYPE_I8: return e->fn[2];
    case BMS_DTYPE_I16: return e->fn[3];
    case BMS_DTYPE_I32: return e->fn[4];
    case BMS_DTYPE_I64: return e->fn[5];
    default: return NULL;
    }
}


/* node->params points into unary_table: the graph frees params with
 * free(), so prepare leaves it NULL and the entry is found again by name
 * (a short scan, cheaper than the loop it picks). */
static const struct unary_entry *unary_entry(const struct bms__node *node)
{
    for (int i = 0; i < N_UNARY; i++) {
        if (strcmp(unary_table[i].name, node->op_type) == 0) {
            return &unary_table[i];
        }
    }
    return NULL;
}


enum bms_status bms__unary_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, 1, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (unary_entry(node) == NULL) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL,
                            "%s: not a unary elementwise op",
                            node->op_type);
    }
    return BMS_OK;
}


enum bms_status bms__unary_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    if (unary_kernel(unary_entry(node), in[0]->dtype) == NULL) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    out->dtype = in[0]->dtype;
    out->n_dims = in[0]->n_dims;
    memcpy(out->dims, in[0]->dims, sizeof(out->dims));
    return BMS_OK;
}


enum bms_status bms__unary_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx)
{
    unary_fn fn = unary_kernel(unary_entry(node), out->dtype);

    (void)ctx;
    if (fn == NULL) {
        return BMS_ERR_UNSUPPORTED;
    }
    fn(in[0]->data, out->data, bms_tensor_numel(out));
    return BMS_OK;
}
