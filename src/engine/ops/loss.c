/*
 * The losses NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, over
 * F32 and F64 scores [N, C, d1, ...] and integer targets [N, d1, ...].
 *
 * Each position's loss is -w[t] * logp[n, t, d] for target t (w = 1
 * without weights); a target equal to ignore_index counts as 0 with
 * weight 0.  reduction "none" keeps the per-position losses, "sum" adds
 * them, "mean" divides the sum by the sum of the weights used.
 * SoftmaxCrossEntropyLoss takes log-softmax over C first and can also
 * return it.  Arithmetic is in double, in scratch memory.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

enum reduction { RED_NONE, RED_SUM, RED_MEAN };

struct loss_params {
    enum reduction red;
    int softmax;                 /* SoftmaxCrossEntropyLoss */
    int has_ignore;
    int64_t ignore;
};


enum bms_status bms__loss_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    int softmax = strcmp(node->op_type, "SoftmaxCrossEntropyLoss") == 0;
    struct loss_params *p;
    enum bms_status rc;
    char red[8] = "mean";

    rc = bms__math_check_arity(node, 2, 3, 1, softmax ? 2 : 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    bms__attr_string(node, "reduction", red, sizeof(red));
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->softmax = softmax;
    p->has_ignore = bms__attr_find(node, "ignore_index") != NULL;
    p->ignore = bms__attr_int(node, "ignore_index", 0);
    if (strcmp(red, "none") == 0) {
        p->red = RED_NONE;
    } else if (strcmp(red, "sum") == 0) {
        p->red = RED_SUM;
    } else if (strcmp(red, "mean") == 0) {
        p->red = RED_MEAN;
    } else {
        free(p);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: reduction '%s' is not none, sum or mean",
                            node->op_type, red);
    }
    node->params = p;
    return BMS_OK;
}


enum bms_status bms__loss_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    const struct loss_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *t = in[1];
    const struct bms_tensor *w = node->n_inputs > 2 ? in[2] : NULL;

    if (bms__elem_kind(x->dtype) != BMS__KIND_FLOAT) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims < 2 || t->n_dims != x->n_dims - 1 ||
        (t->dtype != BMS_DTYPE_I32 && t->dtype != BMS_DTYPE_I64) ||
        t->dims[0] != x->dims[0] ||
        memcmp(t->dims + 1, x->dims + 2,
               sizeof(int64_t) * (size_t)(t->n_dims - 1)) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: target must be int [N, d1, ...] for "
                            "scores [N, C, d1, ...]", node->op_type);
    }
    if (w != NULL && (w->dtype != x->dtype || w->n_dims != 1 ||
                      w->dims[0] != x->dims[1])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: weights must be [C] of the scores' "
                            "datatype", node->op_type);
    }
    out[0].dtype = x->dtype;
    out[0].n_dims = 0;
    if (p->red == RED_NONE) {
        bms__elem_same_shape(&out[0], t);
        out[0].dtype = x->dtype;
    }
    if (node->n_outputs > 1) {
        bms__elem_same_shape(&out[1], x);
    }
    return BMS_OK;
}


/* logp = log-softmax of x over dim 1, viewed as [n, c, inner]. */
static void log_softmax(const struct bms_tensor *x, double *logp)
{
    int64_t n = x->dims[0];
    int64_t c = x->dims[1];
    int64_t inner = bms__math_span(x->dims, 2, x->n_dims);

    for (int64_t b = 0; b < n; b++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = b * c * inner + i;
            double max = -INFINITY;
            double sum = 0;

            for (int64_t j = 0; j < c; j++) {
                double v = bms__elem_get_f(x->data, x->dtype,
                                           base + j * inner);

                max = v > max ? v : max;
            }
            for (int64_t j = 0; j < c; j++) {
                sum += exp(bms__elem_get_f(x->data, x->dtype,
                                           base + j * inner) - max);
            }
            for (int64_t j = 0; j < c; j++) {
                logp[base + j * inner] =
                    bms__elem_get_f(x->data, x->dtype, base + j * inner) -
                    max - log(sum);
            }
        }
    }
}


enum bms_status bms__loss_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    const struct loss_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *t = in[1];
    const struct bms_tensor *w = node->n_inputs > 2 ? in[2] : NULL;
    int64_t n_x = bms_tensor_numel(x);
    int64_t c = x->dims[1];
    int64_t inner = bms__math_span(x->dims, 2, x->n_dims);
    int64_t n_t = bms_tensor_numel(t);
    double *logp = NULL;
    double total = 0;
    double weights = 0;

    if (p->softmax) {
        logp = bms__ctx_scratch(ctx, sizeof(double) * (size_t)(n_x + 1));
        if (logp == NULL) {
            return BMS_ERR_NOMEM;
        }
        log_softmax(x, logp);
    }
    for (int64_t i = 0; i < n_t; i++) {
        int64_t k = bms__elem_get_i(t->data, t->dtype, i);
        int64_t at = (i / inner) * c * inner + k * inner + i % inner;
        double wk;
        double loss;

        if (p->has_ignore && k == p->ignore) {
            if (p->red == RED_NONE) {
                bms__elem_set_f(out[0].data, out[0].dtype, i, 0);
            }
            continue;
        }
        if (k < 0 || k >= c) {
            return BMS_ERR_INVALID;
        }
        wk = w != NULL ? bms__elem_get_f(w->data, w->dtype, k) : 1;
        loss = -wk * (logp != NULL ? logp[at]
                                   : bms__elem_get_f(x->data, x->dtype, at));
        if (p->red == RED_NONE) {
            bms__elem_set_f(out[0].data, out[0].dtype, i, loss);
        }
        total += loss;
        weights += wk;
    }
    if (p->red != RED_NONE) {
        bms__elem_set_f(out[0].data, out[0].dtype, 0,
                        p->red == RED_SUM ? total : total / weights);
    }
    if (node->n_outputs > 1 && logp != NULL) {
        for (int64_t i = 0; i < n_x; i++) {
            bms__elem_set_f(out[1].data, out[1].dtype, i, logp[i]);
        }
    }
    return BMS_OK;
}
