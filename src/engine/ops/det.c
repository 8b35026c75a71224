/*
 * Det: the determinant of each square matrix in the last two dims of a
 * floating tensor, [..., M, M] to [...].
 *
 * Gaussian elimination with partial pivoting in double precision on a
 * scratch copy of each matrix, the determinant being the product of the
 * pivots with the sign of the row swaps (what LAPACK's getrf gives numpy).
 * A singular matrix gives 0; NaN and infinity propagate.
 */
#include <math.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"


enum bms_status bms__det_prepare(struct bms__node *node,
                                 struct bms_diag *diag)
{
    return bms__math_check_arity(node, 1, 1, 1, 1, diag);
}


enum bms_status bms__det_infer(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out, struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    int r = x->n_dims;

    if (bms__elem_kind(x->dtype) != BMS__KIND_FLOAT) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (r < 2 || (x->dims[r - 1] >= 0 && x->dims[r - 2] >= 0 &&
                  x->dims[r - 1] != x->dims[r - 2])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Det: input must be [..., M, M]");
    }
    out->dtype = x->dtype;
    out->n_dims = r - 2;
    memcpy(out->dims, x->dims, sizeof(int64_t) * (size_t)(r - 2));
    return BMS_OK;
}


/* The determinant of the m x m row-major matrix a, which it overwrites. */
static double det_lu(double *a, int64_t m)
{
    double det = 1.0;

    for (int64_t c = 0; c < m; c++) {
        int64_t piv = c;

        /* Largest magnitude in the column as the pivot; a NaN wins, so
         * that it reaches the result. */
        for (int64_t r = c + 1; r < m; r++) {
            double v = fabs(a[r * m + c]);

            if (v > fabs(a[piv * m + c]) || isnan(v)) {
                piv = r;
            }
        }
        if (a[piv * m + c] == 0) {
            return 0;
        }
        if (piv != c) {
            for (int64_t j = 0; j < m; j++) {
                double t = a[c * m + j];

                a[c * m + j] = a[piv * m + j];
                a[piv * m + j] = t;
            }
            det = -det;
        }
        det *= a[c * m + c];
        for (int64_t r = c + 1; r < m; r++) {
            double f = a[r * m + c] / a[c * m + c];

            for (int64_t j = c; j < m; j++) {
                a[r * m + j] -= f * a[c * m + j];
            }
        }
    }
    return det;
}


enum bms_status bms__det_run(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out, struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int64_t m = x->dims[x->n_dims - 1];
    int64_t n_mat = bms_tensor_numel(out);
    double *a = bms__ctx_scratch(ctx, sizeof(double) * (size_t)(m * m) + 1);

    (void)node;
    if (a == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int64_t t = 0; t < n_mat; t++) {
        for (int64_t i = 0; i < m * m; i++) {
            a[i] = bms__elem_get_f(x->data, x->dtype, t * m * m + i);
        }
        bms__elem_set_f(out->data, out->dtype, t, det_lu(a, m));
    }
    return BMS_OK;
}
