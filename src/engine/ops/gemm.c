/*
 * Matrix products: Gemm (Y = alpha * op(A) * op(B) + beta * C, with C
 * broadcast one way to [M, N]) and MatMul (numpy matmul: 1-D operands get
 * a dim of 1 that is dropped again, batch dims broadcast).
 *
 * F32 goes through bms__sgemm; F64 through plain loops, for the models
 * that carry doubles, where speed matters less than being right.  An
 * activation the optimiser fused into the node (node->fused) is applied
 * to the whole output once the product (and Gemm's C) is in.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/act.h"
#include "engine/ops/blas.h"
#include "engine/ops/kernels.h"

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
