/*
 * Selection operators: TopK (the k largest or smallest along an axis,
 * with their INT64 indices) and NonMaxSuppression (greedy box selection
 * per batch and class).
 *
 * Both have output shapes that depend on input data (TopK's K, the boxes
 * NonMaxSuppression keeps), so at load their infer answers
 * BMS_ERR_UNAVAILABLE unless those inputs are constants.  TopK breaks
 * ties by the lower index, as the ONNX reference does; NaN is ordered
 * below every number.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

struct ranked {
    double v;
    int64_t i;
};


static int is_op(const struct bms__node *node, const char *name)
{
    return strcmp(node->op_type, name) == 0;
}


enum bms_status bms__select_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    if (is_op(node, "TopK")) {
        int legacy = node->opset > 0 && node->opset < 10;

        return bms__math_check_arity(node, legacy ? 1 : 2, legacy ? 1 : 2,
                                     2, 2, diag);
    }
    return bms__math_check_arity(node, 2, 5, 1, 1, diag);
}


static enum bms_status topk_k(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              int64_t *k, struct bms_diag *diag)
{
    if (node->n_inputs < 2) {
        *k = bms__attr_int(node, "k", -1);
        return BMS_OK;
    }
    if (in[1]->dtype != BMS_DTYPE_I64 || bms_tensor_numel(in[1]) != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "TopK: K must be one int64");
    }
    if (in[1]->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    *k = *(const int64_t *)in[1]->data;
    return BMS_OK;
}


static enum bms_status topk_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    enum bms__elem_kind kind = bms__elem_kind(x->dtype);
    enum bms_status rc;
    int64_t k = 0;
    int axis;

    if (kind == BMS__KIND_NONE || kind == BMS__KIND_BOOL) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    rc = bms__math_axis(node, bms__attr_int(node, "axis", -1), x->n_dims, 0,
                        &axis, diag);
    if (rc == BMS_OK) {
        rc = topk_k(node, in, &k, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if (k < 0 || (x->dims[axis] >= 0 && k > x->dims[axis])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "TopK: K %lld outside [0, %lld]", (long long)k,
                            (long long)x->dims[axis]);
    }
    bms__elem_same_shape(&out[0], x);
    out[0].dims[axis] = k;
    bms__elem_same_shape(&out[1], &out[0]);
    out[1].dtype = BMS_DTYPE_I64;
    return BMS_OK;
}


/* Larger first (NaN last), then the lower index. */
static int by_largest(const void *pa, const void *pb)
{
    const struct ranked *a = pa;
    const struct ranked *b = pb;

    if (a->v != b->v) {
        if (isnan(a->v) || isnan(b->v)) {
            return isnan(a->v) ? 1 : -1;
        }
        return a->v > b->v ? -1 : 1;
    }
    return a->i < b->i ? -1 : a->i > b->i;
}


static int by_smallest(const void *pa, const void *pb)
{
    const struct ranked *a = pa;
    const struct ranked *b = pb;

    if (a->v != b->v) {
        if (isnan(a->v) || isnan(b->v)) {
            return isnan(a->v) ? 1 : -1;
        }
        return a->v < b->v ? -1 : 1;
    }
    return a->i < b->i ? -1 : a->i > b->i;
}


static enum bms_status topk_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out, struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int largest = bms__attr_int(node, "largest", 1) != 0;
    int axis = 0;
    int64_t k;
    int64_t outer;
    int64_t n;
    int64_t inner;
    struct ranked *row;

    bms__math_axis(node, bms__attr_int(node, "axis", -1), x->n_dims, 0,
                   &axis, NULL);
    k = out[0].dims[axis];
    outer = bms__math_span(x->dims, 0, axis);
    n = x->dims[axis];
    inner = bms__math_span(x->dims, axis + 1, x->n_dims);
    row = bms__ctx_scratch(ctx, sizeof(*row) * (size_t)(n + 1));
    if (row == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t j = 0; j < n; j++) {
                row[j].v = bms__elem_get_f(x->data, x->dtype,
                                           (o * n + j) * inner + i);
                row[j].i = j;
            }
            qsort(row, (size_t)n, sizeof(*row),
                  largest ? by_largest : by_smallest);
            for (int64_t j = 0; j < k; j++) {
                int64_t at = (o * k + j) * inner + i;

                bms__elem_copy(out[0].data, at, x->data,
                               (o * n + row[j].i) * inner + i,
                               bms_dtype_size(x->dtype));
                ((int64_t *)out[1].data)[at] = row[j].i;
            }
        }
    }
    return BMS_OK;
}


/*
 * NonMaxSuppression.  Boxes [B, N, 4] as corners (y1, x1, y2, x2, either
 * diagonal) or, with center_point_box, (x_center, y_center, w, h); scores
 * [B, C, N].  Per batch and class the candidates above score_threshold
 * are taken by descending score, each kept unless its IoU with a kept box
 * exceeds iou_threshold, up to max_output_boxes_per_class.
 */
struct nms_args {
    int64_t max_out;
    double iou;
    double score;
    int has_score;
};


static enum bms_status nms_args(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct nms_args *a, struct bms_diag *diag)
{
    const struct bms_tensor *boxes = in[0];
    const struct bms_tensor *scores = in[1];

    if (boxes->dtype != BMS_DTYPE_F32 || scores->dtype != BMS_DTYPE_F32 ||
        boxes->n_dims != 3 || boxes->dims[2] != 4 || scores->n_dims != 3 ||
        scores->dims[0] != boxes->dims[0] ||
        scores->dims[2] != boxes->dims[1]) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "NonMaxSuppression: boxes must be F32 [B, N, 4] "
                            "and scores F32 [B, C, N]");
    }
    memset(a, 0, sizeof(*a));
    for (int k = 2; k < node->n_inputs; k++) {
        const struct bms_tensor *t = in[k];

        if (t == NULL) {
            continue;
        }
        if (bms_tensor_numel(t) != 1 ||
            bms__elem_kind(t->dtype) == BMS__KIND_NONE) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "NonMaxSuppression: input %d must be one "
                                "number", k);
        }
        if (t->data == NULL) {
            return BMS_ERR_UNAVAILABLE;
        }
        if (k == 2) {
            a->max_out = bms__elem_get_i(t->data, t->dtype, 0);
        } else if (k == 3) {
            a->iou = bms__elem_get_f(t->data, t->dtype, 0);
        } else {
            a->score = bms__elem_get_f(t->data, t->dtype, 0);
            a->has_score = 1;
        }
    }
    if (boxes->data == NULL || scores->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    return BMS_OK;
}


/* Corners (y1, x1, y2, x2) with y1 <= y2 and x1 <= x2. */
static void box_corners(const float *b, int center, double *c)
{
    if (center) {
        c[0] = b[1] - b[3] / 2.0;
        c[2] = b[1] + b[3] / 2.0;
        c[1] = b[0] - b[2] / 2.0;
        c[3] = b[0] + b[2] / 2.0;
        return;
    }
    c[0] = fmin(b[0], b[2]);
    c[2] = fmax(b[0], b[2]);
    c[1] = fmin(b[1], b[3]);
    c[3] = fmax(b[1], b[3]);
}


static double iou(const float *a, const float *b, int center)
{
    double ca[4];
    double cb[4];
    double h;
    double w;
    double inter;
    double uni;

    box_corners(a, center, ca);
    box_corners(b, center, cb);
    h = fmin(ca[2], cb[2]) - fmax(ca[0], cb[0]);
    w = fmin(ca[3], cb[3]) - fmax(ca[1], cb[1]);
    if (h <= 0 || w <= 0) {
        return 0;
    }
    inter = h * w;
    uni = (ca[2] - ca[0]) * (ca[3] - ca[1]) +
          (cb[2] - cb[0]) * (cb[3] - cb[1]) - inter;
    return uni > 0 ? inter / uni : 0;
}


/*
 * Run the selection; with sel NULL only count.  row is scratch for N
 * candidates and kept for N box indices.
 */
static int64_t nms_select(const struct bms__node *node,
                          const struct bms_tensor *const *in,
                          const struct nms_args *a, struct ranked *row,
                          int64_t *kept, int64_t *sel)
{
    const float *boxes = in[0]->data;
    const float *scores = in[1]->data;
    int center = bms__attr_int(node, "center_point_box", 0) != 0;
    int64_t n_batch = in[0]->dims[0];
    int64_t n_box = in[0]->dims[1];
    int64_t n_class = in[1]->dims[1];
    int64_t total = 0;

    for (int64_t b = 0; b < n_batch; b++) {
        for (int64_t c = 0; c < n_class; c++) {
            const float *s = scores + (b * n_class + c) * n_box;
            int64_t n_cand = 0;
            int64_t n_kept = 0;

            for (int64_t i = 0; i < n_box; i++) {
                if (!a->has_score || s[i] > a->score) {
                    row[n_cand].v = s[i];
                    row[n_cand++].i = i;
                }
            }
            qsort(row, (size_t)n_cand, sizeof(*row), by_largest);
            for (int64_t j = 0; j < n_cand && n_kept < a->max_out; j++) {
                const float *bj = boxes + (b * n_box + row[j].i) * 4;
                int keep = 1;

                for (int64_t q = 0; q < n_kept && keep; q++) {
                    keep = iou(bj, boxes + (b * n_box + kept[q]) * 4,
                               center) <= a->iou;
                }
                if (!keep) {
                    continue;
                }
                kept[n_kept++] = row[j].i;
                if (sel != NULL) {
                    sel[3 * total] = b;
                    sel[3 * total + 1] = c;
                    sel[3 * total + 2] = row[j].i;
                }
                total++;
            }
        }
    }
    return total;
}


static enum bms_status nms_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    struct nms_args a;
    enum bms_status rc;
    int64_t n_box;
    void *mem;

    rc = nms_args(node, in, &a, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    /* The count needs the whole selection, and infer has no scratch
     * memory: a temporary buffer, freed before returning. */
    n_box = in[0]->dims[1];
    mem = malloc((sizeof(struct ranked) + sizeof(int64_t)) *
                 (size_t)(n_box + 1));
    if (mem == NULL) {
        return BMS_ERR_NOMEM;
    }
    out->dtype = BMS_DTYPE_I64;
    out->n_dims = 2;
    out->dims[0] = nms_select(node, in, &a, mem,
                              (int64_t *)((struct ranked *)mem + n_box),
                              NULL);
    out->dims[1] = 3;
    free(mem);
    return BMS_OK;
}


enum bms_status bms__select_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    if (is_op(node, "TopK")) {
        return topk_infer(node, in, out, diag);
    }
    return nms_infer(node, in, out, diag);
}


enum bms_status bms__select_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    struct nms_args a;
    int64_t n_box;
    struct ranked *row;

    if (is_op(node, "TopK")) {
        return topk_run(node, in, out, ctx);
    }
    if (nms_args(node, in, &a, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    n_box = in[0]->dims[1];
    row = bms__ctx_scratch(ctx, (sizeof(*row) + sizeof(int64_t)) *
                                    (size_t)(n_box + 1));
    if (row == NULL) {
        return BMS_ERR_NOMEM;
    }
    nms_select(node, in, &a, row, (int64_t *)(row + n_box), out->data);
    return BMS_OK;
}
