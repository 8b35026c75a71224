/*
 * Matrix products: Gemm (Y = alpha * op(A) * op(B) + beta * C, with C
 * broadcast one way to [M, N]) and MatMul (numpy matmul: 1-D operands get
 * a dim of 1 that is dropped again, batch dims broadcast).
 *
 * F32 goes through bms__sgemm; F64 through plain loops, for the models
 * that carry doubles, where speed matters less than being right.  An
 * activation the optimiser fused into the node (node->fused) is applied
 * to the whole output once the product (and Gemm's C) is in.
 *
 * bms.MatMul (fused.h) is MatMul with the optimiser's additions: the
 * transposes around it become strides the matrix library walks (no copy),
 * a scale becomes sgemm's alpha, and the bias and GELU run on each output
 * row in one pass after the product.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/act.h"
#include "engine/ops/blas.h"
#include "engine/ops/fused.h"
#include "engine/ops/kernels.h"
#include "engine/ops/vecmath.h"

struct gemm_params {
    int trans_a;
    int trans_b;
    float alpha;
    float beta;
};

/* A MatMul's shapes as the loops see them: batch dims of the output, and
 * each operand's strides over them in whole matrices (0: broadcast). */
struct matmul_shape {
    int64_t m, n, k;
    int n_batch;
    int64_t batch[BMS_MAX_DIMS];
    int64_t a_step[BMS_MAX_DIMS];
    int64_t b_step[BMS_MAX_DIMS];
};


/* node->fused over n doubles, as bms__act_apply does over floats; the
 * attribute bounds are floats in ONNX, widened here as the standalone
 * operators widen them. */
static void act_apply_f64(const struct bms__fused *fused, double *y,
                          size_t n)
{
    const double alpha = fused->alpha;
    const double beta = fused->beta;

    for (size_t i = 0; i < n && fused->act != BMS__ACT_NONE; i++) {
        double v = y[i];

        switch (fused->act) {
        case BMS__ACT_NONE:
            break;
        case BMS__ACT_RELU:
            v = v > 0.0 ? v : 0.0;
            break;
        case BMS__ACT_LEAKY_RELU:
            v = v >= 0.0 ? v : alpha * v;
            break;
        case BMS__ACT_CLIP:
            v = v < alpha ? alpha : v;
            v = v > beta ? beta : v;
            break;
        case BMS__ACT_SIGMOID:
            v = 1.0 / (1.0 + exp(-v));
            break;
        case BMS__ACT_TANH:
            v = tanh(v);
            break;
        }
        y[i] = v;
    }
}


/* Apply the fused activation to a finished output. */
static void apply_fused(const struct bms__node *node, struct bms_tensor *out)
{
    size_t n = (size_t)bms_tensor_numel(out);

    if (node->fused.act == BMS__ACT_NONE) {
        return;
    }
    if (out->dtype == BMS_DTYPE_F64) {
        act_apply_f64(&node->fused, out->data, n);
    } else {
        bms__act_apply(&node->fused, out->data, n);
    }
}


enum bms_status bms__gemm_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    struct gemm_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 2, 3, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->trans_a = bms__attr_int(node, "transA", 0) != 0;
    p->trans_b = bms__attr_int(node, "transB", 0) != 0;
    p->alpha = bms__attr_float(node, "alpha", 1.0f);
    p->beta = bms__attr_float(node, "beta", 1.0f);
    node->params = p;
    return BMS_OK;
}


static int float_dtype(enum bms_dtype dtype)
{
    return dtype == BMS_DTYPE_F32 || dtype == BMS_DTYPE_F64;
}


static enum bms_status dims_error(const struct bms__node *node,
                                  const char *what,
                                  const struct bms_tensor *a,
                                  const struct bms_tensor *b,
                                  struct bms_diag *diag)
{
    char a_text[BMS__DIMS_TEXT_SIZE];
    char b_text[BMS__DIMS_TEXT_SIZE];

    bms__math_dims_text(a->dims, a->n_dims, a_text);
    bms__math_dims_text(b->dims, b->n_dims, b_text);
    return bms_diag_set(diag, BMS_ERR_INVALID, "%s: %s: %s and %s",
                        node->op_type, what, a_text, b_text);
}


/* Whether dim d (-1: unknown) can stand where e is expected. */
static int dim_fits(int64_t d, int64_t e)
{
    return d == e || d < 0 || e < 0;
}


/* ONNX Gemm: C broadcasts one way to [M, N]: rank at most 2, each dim 1
 * or equal to the output's. */
static int bias_fits(const struct bms_tensor *c, int64_t m, int64_t n)
{
    int64_t want[2] = {m, n};

    if (c->n_dims > 2) {
        return 0;
    }
    for (int i = 0; i < c->n_dims; i++) {
        int64_t e = want[2 - c->n_dims + i];

        if (c->dims[i] != 1 && !dim_fits(c->dims[i], e)) {
            return 0;
        }
    }
    return 1;
}


enum bms_status bms__gemm_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    const struct gemm_params *p = node->params;
    const struct bms_tensor *a = in[0];
    const struct bms_tensor *b = in[1];
    const struct bms_tensor *c = node->n_inputs > 2 ? in[2] : NULL;
    int64_t m, n, ka, kb;

    if (!float_dtype(a->dtype)) {
        return bms__math_bad_dtype(node, a->dtype, diag);
    }
    if (b->dtype != a->dtype || (c != NULL && c->dtype != a->dtype)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Gemm: inputs of different datatypes");
    }
    if (a->n_dims != 2 || b->n_dims != 2) {
        return dims_error(node, "A and B must be 2-D", a, b, diag);
    }
    m = a->dims[p->trans_a ? 1 : 0];
    ka = a->dims[p->trans_a ? 0 : 1];
    kb = b->dims[p->trans_b ? 1 : 0];
    n = b->dims[p->trans_b ? 0 : 1];
    if (!dim_fits(ka, kb)) {
        return dims_error(node, "inner dims differ", a, b, diag);
    }
    if (c != NULL && !bias_fits(c, m, n)) {
        char c_text[BMS__DIMS_TEXT_SIZE];

        bms__math_dims_text(c->dims, c->n_dims, c_text);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Gemm: C of dims %s does not broadcast to "
                            "[%lld,%lld]", c_text, (long long)m,
                            (long long)n);
    }
    out->dtype = a->dtype;
    out->n_dims = 2;
    out->dims[0] = m;
    out->dims[1] = n;
    return BMS_OK;
}


/* Y = C broadcast to [m, n], as T. */
#define FILL_BIAS(fname, T)                                                 \
    static void fname(const struct bms_tensor *c, int64_t m, int64_t n,    \
                      T *y)                                                 \
    {                                                                       \
        const T *cv = c->data;                                              \
        int64_t rows = c->n_dims == 2 ? c->dims[0] : 1;                     \
        int64_t cols = c->n_dims >= 1 ? c->dims[c->n_dims - 1] : 1;         \
                                                                            \
        for (int64_t i = 0; i < m; i++) {                                   \
            const T *row = cv + (rows == 1 ? 0 : i) * cols;                 \
                                                                            \
            for (int64_t j = 0; j < n; j++) {                               \
                y[i * n + j] = row[cols == 1 ? 0 : j];                      \
            }                                                               \
        }                                                                   \
    }

FILL_BIAS(fill_bias_f32, float)
FILL_BIAS(fill_bias_f64, double)


/* Row-major C = alpha * op(A) op(B) + beta * C in doubles; C is not read
 * when beta is 0. */
static void dgemm_naive(int trans_a, int trans_b, int64_t m, int64_t n,
                        int64_t k, double alpha, const double *a,
                        const double *b, double beta, double *c)
{
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            double prev = beta == 0 ? 0 : beta * c[i * n + j];

            for (int64_t l = 0; l < k; l++) {
                double x = trans_a ? a[l * m + i] : a[i * k + l];
                double w = trans_b ? b[j * k + l] : b[l * n + j];

                acc += x * w;
            }
            c[i * n + j] = alpha * acc + prev;
        }
    }
}


enum bms_status bms__gemm_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    const struct gemm_params *p = node->params;
    const struct bms_tensor *a = in[0];
    const struct bms_tensor *b = in[1];
    const struct bms_tensor *c = node->n_inputs > 2 ? in[2] : NULL;
    int64_t m = out->dims[0];
    int64_t n = out->dims[1];
    int64_t k = a->dims[p->trans_a ? 0 : 1];
    float beta = c != NULL ? p->beta : 0.0f;
    enum bms_status rc = BMS_OK;

    if (m == 0 || n == 0) {
        return BMS_OK;
    }
    if (out->dtype == BMS_DTYPE_F64) {
        if (beta != 0.0f) {
            fill_bias_f64(c, m, n, out->data);
        }
        dgemm_naive(p->trans_a, p->trans_b, m, n, k, p->alpha, a->data,
                    b->data, beta, out->data);
    } else {
        if (beta != 0.0f) {
            fill_bias_f32(c, m, n, out->data);
        }
        rc = bms__sgemm(ctx->n_threads, p->trans_a, p->trans_b, m, n, k,
                        p->alpha, a->data, p->trans_a ? m : k, b->data,
                        p->trans_b ? k : n, beta, out->data, n);
    }
    if (rc == BMS_OK) {
        apply_fused(node, out);
    }
    return rc;
}


enum bms_status bms__matmul_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    return bms__math_check_arity(node, 2, 2, 1, 1, diag);
}


/* Strides in whole matrices of an operand's batch dims (bdims, nb of
 * them), right-aligned to the output's n_batch dims. */
static void batch_steps(const int64_t *bdims, int nb, int n_batch,
                        int64_t *steps)
{
    int64_t step = 1;

    for (int i = n_batch - 1; i >= 0; i--) {
        int bi = i - (n_batch - nb);
        int64_t d = bi >= 0 ? bdims[bi] : 1;

        steps[i] = d == 1 ? 0 : step;
        step *= d;
    }
}


static enum bms_status matmul_shape(const struct bms__node *node,
                                    const struct bms_tensor *a,
                                    const struct bms_tensor *b,
                                    struct matmul_shape *s,
                                    struct bms_diag *diag)
{
    int a_nb = a->n_dims >= 2 ? a->n_dims - 2 : 0;
    int b_nb = b->n_dims >= 2 ? b->n_dims - 2 : 0;
    int64_t kb;

    if (a->n_dims < 1 || b->n_dims < 1) {
        return dims_error(node, "operands must have rank 1 or more", a, b,
                          diag);
    }
    s->m = a->n_dims >= 2 ? a->dims[a->n_dims - 2] : 1;
    s->k = a->dims[a->n_dims - 1];
    kb = b->n_dims >= 2 ? b->dims[b->n_dims - 2] : b->dims[0];
    s->n = b->n_dims >= 2 ? b->dims[b->n_dims - 1] : 1;
    if (!dim_fits(s->k, kb)) {
        return dims_error(node, "inner dims differ", a, b, diag);
    }
    s->n_batch = a_nb > b_nb ? a_nb : b_nb;
    for (int i = 0; i < s->n_batch; i++) {
        int ai = i - (s->n_batch - a_nb);
        int bi = i - (s->n_batch - b_nb);
        int64_t da = ai >= 0 ? a->dims[ai] : 1;
        int64_t db = bi >= 0 ? b->dims[bi] : 1;

        if (!bms__math_broadcast_dim(da, db, &s->batch[i])) {
            return dims_error(node, "batch dims do not broadcast", a, b,
                              diag);
        }
    }
    batch_steps(a->dims, a_nb, s->n_batch, s->a_step);
    batch_steps(b->dims, b_nb, s->n_batch, s->b_step);
    return BMS_OK;
}


enum bms_status bms__matmul_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *a = in[0];
    const struct bms_tensor *b = in[1];
    struct matmul_shape s;
    enum bms_status rc;
    int r = 0;

    if (!float_dtype(a->dtype)) {
        return bms__math_bad_dtype(node, a->dtype, diag);
    }
    if (b->dtype != a->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "MatMul: inputs of different datatypes");
    }
    rc = matmul_shape(node, a, b, &s, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (s.n_batch + 2 > BMS_MAX_DIMS) {
        return dims_error(node, "too many dims", a, b, diag);
    }
    for (int i = 0; i < s.n_batch; i++) {
        out->dims[r++] = s.batch[i];
    }
    if (a->n_dims >= 2) {
        out->dims[r++] = s.m;
    }
    if (b->n_dims >= 2) {
        out->dims[r++] = s.n;
    }
    out->dtype = a->dtype;
    out->n_dims = r;
    return BMS_OK;
}


/* Offsets (in whole matrices) of batch t in A and B. */
static void batch_offsets(const struct matmul_shape *s, int64_t t,
                          int64_t *a_off, int64_t *b_off)
{
    *a_off = 0;
    *b_off = 0;
    for (int i = s->n_batch - 1; i >= 0; i--) {
        int64_t idx = t % s->batch[i];

        t /= s->batch[i];
        *a_off += idx * s->a_step[i];
        *b_off += idx * s->b_step[i];
    }
}


static enum bms_status matmul_f32(const struct matmul_shape *s,
                                  int64_t n_batch, int n_threads,
                                  const float *a, const float *b, float *y)
{
    int b_shared = 1;

    for (int i = 0; i < s->n_batch; i++) {
        b_shared = b_shared && s->b_step[i] == 0;
    }
    /* One B for every batch: the batches of A stack into one tall A. */
    if (b_shared) {
        return bms__sgemm(n_threads, 0, 0, n_batch * s->m, s->n, s->k,
                          1.0f, a, s->k, b, s->n, 0.0f, y, s->n);
    }
    for (int64_t t = 0; t < n_batch; t++) {
        int64_t a_off, b_off;
        enum bms_status rc;

        batch_offsets(s, t, &a_off, &b_off);
        rc = bms__sgemm(n_threads, 0, 0, s->m, s->n, s->k, 1.0f,
                        a + a_off * s->m * s->k, s->k,
                        b + b_off * s->k * s->n, s->n, 0.0f,
                        y + t * s->m * s->n, s->n);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    return BMS_OK;
}


enum bms_status bms__matmul_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    struct matmul_shape s;
    int64_t n_batch;
    enum bms_status rc;

    if (matmul_shape(node, in[0], in[1], &s, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    n_batch = bms__math_span(s.batch, 0, s.n_batch);
    if (n_batch == 0 || s.m == 0 || s.n == 0) {
        return BMS_OK;
    }
    if (out->dtype == BMS_DTYPE_F32) {
        rc = matmul_f32(&s, n_batch, ctx->n_threads, in[0]->data,
                        in[1]->data, out->data);
        if (rc == BMS_OK) {
            apply_fused(node, out);
        }
        return rc;
    }
    for (int64_t t = 0; t < n_batch; t++) {
        const double *a = in[0]->data;
        const double *b = in[1]->data;
        double *y = out->data;
        int64_t a_off, b_off;

        batch_offsets(&s, t, &a_off, &b_off);
        dgemm_naive(0, 0, s.m, s.n, s.k, 1.0, a + a_off * s.m * s.k,
                    b + b_off * s.k * s.n, 0.0, y + t * s.m * s.n);
    }
    apply_fused(node, out);
    return BMS_OK;
}


/* ---- bms.MatMul: transposes, scale, bias and GELU around a MatMul --- */

struct fmatmul_params {
    int n_perm[3];               /* axes of perm_a, perm_b, perm_y; 0: none */
    int perm[3][BMS_MAX_DIMS];
    float alpha;
    int gelu;
};

/* A tensor as a matmul operand sees it: dims and element strides. */
struct view {
    int n_dims;
    int64_t dims[BMS_MAX_DIMS];
    int64_t strides[BMS_MAX_DIMS];
};

/* One product's geometry: each matrix as rows and columns some element
 * strides apart, and each operand's stride over every batch dim of the
 * output (0 where it broadcasts). */
struct fm_plan {
    int64_t m, n, k;
    int n_batch;
    int64_t batch[BMS_MAX_DIMS];
    int64_t a_bs[BMS_MAX_DIMS];
    int64_t b_bs[BMS_MAX_DIMS];
    int64_t y_bs[BMS_MAX_DIMS];
    int64_t a_rs, a_cs, b_rs, b_cs, y_rs, y_cs;
};

static const char *const perm_names[3] = {"perm_a", "perm_b", "perm_y"};


/* Read perm_<which>: a permutation that brings the last axis to one of
 * the last two places (operands) or keeps it last (the output). */
static enum bms_status perm_attr(struct bms__node *node, int which,
                                 struct fmatmul_params *p,
                                 struct bms_diag *diag)
{
    int seen[BMS_MAX_DIMS] = {0};
    const int64_t *v;
    int n;

    v = bms__attr_ints(node, perm_names[which], &n);
    p->n_perm[which] = 0;
    if (v == NULL) {
        return BMS_OK;
    }
    if (n < 2 || n > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: %s must have 2 to %d axes", node->op_type,
                            perm_names[which], BMS_MAX_DIMS);
    }
    for (int d = 0; d < n; d++) {
        if (v[d] < 0 || v[d] >= n || seen[v[d]]) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: %s is not a permutation",
                                node->op_type, perm_names[which]);
        }
        seen[v[d]] = 1;
        p->perm[which][d] = (int)v[d];
    }
    if (p->perm[which][n - 1] != n - 1 &&
        (which == 2 || p->perm[which][n - 2] != n - 1)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: %s moves the last axis too far",
                            node->op_type, perm_names[which]);
    }
    p->n_perm[which] = n;
    return BMS_OK;
}


enum bms_status bms__fmatmul_prepare(struct bms__node *node,
                                     struct bms_diag *diag)
{
    struct fmatmul_params *p;
    enum bms_status rc;
    int64_t gelu = bms__attr_int(node, "gelu", 0);

    rc = bms__math_check_arity(node, 2, 3, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (node->fused.act != BMS__ACT_NONE || (gelu != 0 && gelu != 1)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: gelu must be 0 or 1, and no other "
                            "activation fused", node->op_type);
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int w = 0; w < 3; w++) {
        rc = perm_attr(node, w, p, diag);
        if (rc != BMS_OK) {
            free(p);
            return rc;
        }
    }
    p->alpha = bms__attr_float(node, "alpha", 1.0f);
    p->gelu = (int)gelu;
    node->params = p;
    return BMS_OK;
}


/* x's dims through perm (none when n_perm is 0) into t, data NULL. */
static enum bms_status permuted(const struct bms__node *node, int which,
                                const struct bms_tensor *x,
                                struct bms_tensor *t, struct bms_diag *diag)
{
    const struct fmatmul_params *p = node->params;
    int n = p->n_perm[which];

    *t = *x;
    t->data = NULL;
    if (n == 0) {
        return BMS_OK;
    }
    if (x->n_dims != n) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: rank %d does not match %s of %d axes",
                            node->op_type, x->n_dims, perm_names[which], n);
    }
    for (int d = 0; d < n; d++) {
        t->dims[d] = x->dims[p->perm[which][d]];
    }
    return BMS_OK;
}


/* The bias: 1-D, of the product's datatype, 1 or n values. */
static enum bms_status check_bias(const struct bms__node *node,
                                  const struct bms_tensor *c,
                                  const struct bms_tensor *y,
                                  struct bms_diag *diag)
{
    int64_t n = y->n_dims > 0 ? y->dims[y->n_dims - 1] : 1;

    if (c->dtype != y->dtype || c->n_dims != 1 ||
        (c->dims[0] != 1 && !dim_fits(c->dims[0], n))) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: bias must be 1 or %lld values of the "
                            "product's datatype", node->op_type,
                            (long long)n);
    }
    return BMS_OK;
}


enum bms_status bms__fmatmul_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    const struct fmatmul_params *p = node->params;
    const struct bms_tensor *c = node->n_inputs > 2 ? in[2] : NULL;
    struct bms_tensor ta, tb;
    struct bms_tensor y = {0};
    const struct bms_tensor *ops[2] = {&ta, &tb};
    enum bms_status rc;
    int n = p->n_perm[2];

    rc = permuted(node, 0, in[0], &ta, diag);
    if (rc == BMS_OK) {
        rc = permuted(node, 1, in[1], &tb, diag);
    }
    if (rc == BMS_OK) {
        rc = bms__matmul_infer(node, ops, &y, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if (p->gelu && y.dtype != BMS_DTYPE_F32) {
        return bms__math_bad_dtype(node, y.dtype, diag);
    }
    if (c != NULL) {
        rc = check_bias(node, c, &y, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    out->dtype = y.dtype;
    out->n_dims = y.n_dims;
    memcpy(out->dims, y.dims, sizeof(out->dims));
    if (n == 0) {
        return BMS_OK;
    }
    if (y.n_dims != n) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: product of rank %d does not match perm_y "
                            "of %d axes", node->op_type, y.n_dims, n);
    }
    for (int d = 0; d < n; d++) {
        out->dims[d] = y.dims[p->perm[2][d]];
    }
    return BMS_OK;
}


static void contiguous_strides(const int64_t *dims, int n, int64_t *s)
{
    int64_t step = 1;

    for (int d = n - 1; d >= 0; d--) {
        s[d] = step;
        step *= dims[d];
    }
}


/* Operand x as the product reads it: through perm, and a 1-D operand as
 * one row (A) or one column (B), as numpy matmul does. */
static void operand_view(const struct fmatmul_params *p, int which,
                         const struct bms_tensor *x, struct view *v)
{
    int64_t s[BMS_MAX_DIMS];
    int n = p->n_perm[which];

    contiguous_strides(x->dims, x->n_dims, s);
    v->n_dims = x->n_dims;
    for (int d = 0; d < x->n_dims; d++) {
        int from = n > 0 ? p->perm[which][d] : d;

        v->dims[d] = x->dims[from];
        v->strides[d] = s[from];
    }
    if (x->n_dims == 1) {
        int at = which == 0 ? 0 : 1;

        v->n_dims = 2;
        v->dims[1 - at] = v->dims[0];
        v->strides[1 - at] = v->strides[0];
        v->dims[at] = 1;
        v->strides[at] = 0;
    }
}


/* The product's matrices inside out: the strides each of its elements
 * has in the output, which is the product transposed by perm_y. */
static void output_view(const struct fmatmul_params *p,
                        const struct bms_tensor *out, struct view *v)
{
    int64_t s[BMS_MAX_DIMS];
    int n = p->n_perm[2];

    contiguous_strides(out->dims, out->n_dims, s);
    v->n_dims = out->n_dims;
    for (int d = 0; d < out->n_dims; d++) {
        int to = n > 0 ? p->perm[2][d] : d;

        v->dims[to] = out->dims[d];
        v->strides[to] = s[d];
    }
}


/* Batch strides of an operand view, right-aligned to n_batch dims. */
static void batch_strides(const struct view *v, int n_batch, int64_t *bs)
{
    int nb = v->n_dims - 2;

    for (int i = 0; i < n_batch; i++) {
        int vi = i - (n_batch - nb);

        bs[i] = vi >= 0 && v->dims[vi] != 1 ? v->strides[vi] : 0;
    }
}


static void fm_plan_build(const struct fmatmul_params *p,
                          const struct bms_tensor *a,
                          const struct bms_tensor *b,
                          const struct bms_tensor *out, struct fm_plan *f)
{
    struct view va, vb, vy;
    int a_nb, b_nb;

    operand_view(p, 0, a, &va);
    operand_view(p, 1, b, &vb);
    output_view(p, out, &vy);
    a_nb = va.n_dims - 2;
    b_nb = vb.n_dims - 2;
    f->m = va.dims[a_nb];
    f->k = va.dims[a_nb + 1];
    f->n = vb.dims[b_nb + 1];
    f->a_rs = va.strides[a_nb];
    f->a_cs = va.strides[a_nb + 1];
    f->b_rs = vb.strides[b_nb];
    f->b_cs = vb.strides[b_nb + 1];
    f->n_batch = a_nb > b_nb ? a_nb : b_nb;
    batch_strides(&va, f->n_batch, f->a_bs);
    batch_strides(&vb, f->n_batch, f->b_bs);
    for (int i = 0; i < f->n_batch; i++) {
        int ai = i - (f->n_batch - a_nb);
        int bi = i - (f->n_batch - b_nb);
        int64_t da = ai >= 0 ? va.dims[ai] : 1;

        f->batch[i] = da != 1 ? da : (bi >= 0 ? vb.dims[bi] : 1);
        f->y_bs[i] = vy.strides[i];
    }
    /* A 1-D operand left no row (A) or column (B) dim in the output. */
    f->y_rs = a->n_dims >= 2 ? vy.strides[f->n_batch] : 0;
    f->y_cs = b->n_dims >= 2 ? vy.strides[vy.n_dims - 1] : 0;
    if (a->n_dims < 2 && b->n_dims >= 2) {
        f->y_cs = vy.strides[f->n_batch];
    } else if (b->n_dims < 2 && a->n_dims >= 2) {
        f->y_rs = vy.strides[f->n_batch];
    }
}


/* How the matrix library reads a rows x cols matrix whose elements lie
 * rs and cs apart: as stored (ld = rs) when cs is 1, transposed (ld =
 * cs) when rs is 1; the stride of a dim of 1 does not matter.  0 when
 * neither fits, which no permuted operand can cause. */
static int matrix_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                         int *trans, int64_t *ld)
{
    if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols)) {
        *trans = 0;
        *ld = rows == 1 ? cols : rs;
        return 1;
    }
    if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows)) {
        *trans = 1;
        *ld = cols == 1 ? rows : cs;
        return 1;
    }
    return 0;
}


/* Whether the batches of a matrix with row stride ld stack into one
 * matrix of n_batch * rows rows with that row stride. */
static int batches_stack(const struct fm_plan *f, const int64_t *bs,
                         int64_t rows, int64_t ld)
{
    int64_t expect = rows * ld;

    for (int i = f->n_batch - 1; i >= 0; i--) {
        if (f->batch[i] == 1) {
            continue;
        }
        if (bs[i] != expect) {
            return 0;
        }
        expect *= f->batch[i];
    }
    return 1;
}


/* Element offsets of batch t in A, B and Y. */
static void fm_offsets(const struct fm_plan *f, int64_t t, int64_t *off)
{
    off[0] = 0;
    off[1] = 0;
    off[2] = 0;
    for (int i = f->n_batch - 1; i >= 0; i--) {
        int64_t idx = t % f->batch[i];

        t /= f->batch[i];
        off[0] += idx * f->a_bs[i];
        off[1] += idx * f->b_bs[i];
        off[2] += idx * f->y_bs[i];
    }
}


/* The epilogue on every row of every output matrix, while the product
 * is fresh: the bias, then GELU. */
static void fm_rows(const struct fm_plan *f, int64_t n_batch, float *y,
                    const struct bms_tensor *bias, int gelu)
{
    const float *c = bias != NULL ? bias->data : NULL;
    int scalar = bias != NULL && bias->dims[0] == 1;

    for (int64_t t = 0; t < n_batch; t++) {
        int64_t off[3];

        fm_offsets(f, t, off);
        for (int64_t i = 0; i < f->m; i++) {
            float *row = y + off[2] + i * f->y_rs;

            if (scalar) {
                for (int64_t j = 0; j < f->n; j++) {
                    row[j] += c[0];
                }
            } else if (c != NULL) {
                bms__vec_add(row, c, f->n);
            }
            if (gelu) {
                bms__vec_gelu(row, row, f->n);
            }
        }
    }
}


static enum bms_status fmatmul_f32(const struct fmatmul_params *p,
                                   const struct fm_plan *f, int64_t n_batch,
                                   const struct bms_tensor *const *in,
                                   float *y, int n_threads)
{
    const float *a = in[0]->data;
    const float *b = in[1]->data;
    int64_t lda, ldb, ldc;
    int ta, tb, tc;
    int b_shared = 1;

    if (!matrix_layout(f->m, f->k, f->a_rs, f->a_cs, &ta, &lda) ||
        !matrix_layout(f->k, f->n, f->b_rs, f->b_cs, &tb, &ldb) ||
        !matrix_layout(f->m, f->n, f->y_rs, f->y_cs, &tc, &ldc) || tc) {
        return BMS_ERR_INTERNAL;
    }
    for (int i = 0; i < f->n_batch; i++) {
        b_shared = b_shared && (f->b_bs[i] == 0 || f->batch[i] == 1);
    }
    /* One B for every batch: stacked batches of A make one tall A. */
    if (b_shared && !ta && batches_stack(f, f->a_bs, f->m, lda) &&
        batches_stack(f, f->y_bs, f->m, ldc)) {
        return bms__sgemm(n_threads, 0, tb, n_batch * f->m, f->n, f->k,
                          p->alpha, a, lda, b, ldb, 0.0f, y, ldc);
    }
    for (int64_t t = 0; t < n_batch; t++) {
        int64_t off[3];
        enum bms_status rc;

        fm_offsets(f, t, off);
        rc = bms__sgemm(n_threads, ta, tb, f->m, f->n, f->k, p->alpha,
                        a + off[0], lda, b + off[1], ldb, 0.0f, y + off[2],
                        ldc);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    return BMS_OK;
}


/* F64 in plain loops over the strided views. */
static void fmatmul_f64(const struct fmatmul_params *p,
                        const struct fm_plan *f, int64_t n_batch,
                        const struct bms_tensor *const *in,
                        const struct bms_tensor *bias, double *y)
{
    const double *a = in[0]->data;
    const double *b = in[1]->data;
    const double *c = bias != NULL ? bias->data : NULL;

    for (int64_t t = 0; t < n_batch; t++) {
        int64_t off[3];

        fm_offsets(f, t, off);
        for (int64_t i = 0; i < f->m; i++) {
            for (int64_t j = 0; j < f->n; j++) {
                const double *pa = a + off[0] + i * f->a_rs;
                const double *pb = b + off[1] + j * f->b_cs;
                double acc = 0;

                for (int64_t l = 0; l < f->k; l++) {
                    acc += pa[l * f->a_cs] * pb[l * f->b_rs];
                }
                acc *= p->alpha;
                if (c != NULL) {
                    acc += c[bias->dims[0] == 1 ? 0 : j];
                }
                y[off[2] + i * f->y_rs + j * f->y_cs] = acc;
            }
        }
    }
}


enum bms_status bms__fmatmul_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms__ctx *ctx)
{
    const struct fmatmul_params *p = node->params;
    const struct bms_tensor *bias = node->n_inputs > 2 ? in[2] : NULL;
    struct fm_plan f;
    int64_t n_batch;
    enum bms_status rc;

    fm_plan_build(p, in[0], in[1], out, &f);
    n_batch = bms__math_span(f.batch, 0, f.n_batch);
    if (n_batch == 0 || f.m == 0 || f.n == 0) {
        return BMS_OK;
    }
    if (out->dtype == BMS_DTYPE_F64) {
        fmatmul_f64(p, &f, n_batch, in, bias, out->data);
        return BMS_OK;
    }
    rc = fmatmul_f32(p, &f, n_batch, in, out->data, ctx->n_threads);
    if (rc == BMS_OK && (bias != NULL || p->gelu)) {
        fm_rows(&f, n_batch, out->data, bias, p->gelu);
    }
    return rc;
}
