/*
 * Resize (opsets 10 to 17) and Upsample: nearest, linear and cubic
 * interpolation over every axis, F32 and F64.
 *
 * Interpolation is separable: for each axis and output coordinate a small
 * table gives the input taps and their weights (1 tap for nearest, 2 for
 * linear, 4 for cubic), following the ONNX reference: the original
 * coordinate x comes from the coordinate_transformation_mode, the taps
 * are the nearest input positions to x (edge positions repeat past the
 * ends), and an integral x takes its own position with weight 1.  An
 * output element is the sum over the product of its axes' taps.  The
 * tables live in scratch memory.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/core.h"
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

#define MAX_TAPS 4

enum mode { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC };

enum coord {
    CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_FOR_NN, CT_TF_CROP_AND_RESIZE
};

enum nearest { NR_ROUND_PREFER_FLOOR, NR_ROUND_PREFER_CEIL, NR_FLOOR,
               NR_CEIL };

struct resize_params {
    enum mode mode;
    enum coord coord;
    enum nearest nearest;
    double cubic_a;
    double extrapolation;
    int exclude_outside;
    int inputs_from;             /* 10: X, scales; 11+: X, roi, scales, .. */
};

/* One output coordinate's taps along one axis. */
struct tap {
    int64_t idx[MAX_TAPS];
    double w[MAX_TAPS];
    int n;
    int outside;                 /* tf_crop_and_resize: extrapolate */
};


static int pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}


enum bms_status bms__resize_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const coords[] = {
        "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
        "tf_half_pixel_for_nn", "tf_crop_and_resize"
    };
    static const char *const nearests[] = {
        "round_prefer_floor", "round_prefer_ceil", "floor", "ceil"
    };
    int upsample = strcmp(node->op_type, "Upsample") == 0;
    int legacy = upsample || (node->opset > 0 && node->opset < 11);
    char mode[32] = "nearest";
    char coord[32] = "half_pixel";
    char nearest[32] = "round_prefer_floor";
    struct resize_params *p;
    int m;
    int c;
    int r;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 1, legacy ? 2 : 4, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    bms__attr_string(node, "mode", mode, sizeof(mode));
    bms__attr_string(node, "coordinate_transformation_mode", coord,
                     sizeof(coord));
    bms__attr_string(node, "nearest_mode", nearest, sizeof(nearest));
    if (strcmp(mode, "bilinear") == 0) {
        memcpy(mode, "linear", sizeof("linear"));
    }
    m = pick(mode, modes, 3);
    c = legacy ? CT_ASYMMETRIC : pick(coord, coords, 6);
    r = legacy ? NR_FLOOR : pick(nearest, nearests, 4);
    if (m < 0 || c < 0 || r < 0 || (legacy && m == MODE_CUBIC)) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: mode '%s', coordinate_transformation_mode "
                            "'%s' or nearest_mode '%s' not supported",
                            node->op_type, mode, coord, nearest);
    }
    if (bms__attr_find(node, "antialias") != NULL ||
        bms__attr_find(node, "axes") != NULL ||
        bms__attr_find(node, "keep_aspect_ratio_policy") != NULL) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: antialias, axes and "
                            "keep_aspect_ratio_policy not supported",
                            node->op_type);
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->mode = (enum mode)m;
    p->coord = (enum coord)c;
    p->nearest = (enum nearest)r;
    p->cubic_a = bms__attr_float(node, "cubic_coeff_a", -0.75f);
    p->extrapolation = bms__attr_float(node, "extrapolation_value", 0);
    p->exclude_outside = bms__attr_int(node, "exclude_outside", 0) != 0;
    p->inputs_from = legacy ? 10 : 11;
    node->params = p;
    return BMS_OK;
}


/* A float list input (scales, roi); n is -1 when absent or empty. */
static enum bms_status read_floats(const struct bms__node *node,
                                   const struct bms_tensor *const *in, int k,
                                   double *vals, int max_n, int *n,
                                   struct bms_diag *diag)
{
    const struct bms_tensor *t = node->n_inputs > k ? in[k] : NULL;
    int64_t numel;

    *n = -1;
    if (t == NULL || (numel = bms_tensor_numel(t)) == 0) {
        return BMS_OK;
    }
    if (bms__elem_kind(t->dtype) != BMS__KIND_FLOAT || numel > max_n) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: input %d must be a float list of at most "
                            "%d values", node->op_type, k, max_n);
    }
    if (t->data == NULL) {
        return BMS_ERR_UNAVAILABLE;
    }
    for (int64_t i = 0; i < numel; i++) {
        vals[i] = bms__elem_get_f(t->data, t->dtype, i);
    }
    *n = (int)numel;
    return BMS_OK;
}


/* Per axis: the scale, the output length, and for tf_crop_and_resize the
 * roi start and end (fractions of the input). */
struct resize_geom {
    double scale[BMS_MAX_DIMS];
    int64_t out[BMS_MAX_DIMS];
    double roi[2 * BMS_MAX_DIMS];
};


static enum bms_status resize_geom(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct resize_geom *g,
                                   struct bms_diag *diag)
{
    const struct resize_params *p = node->params;
    const struct bms_tensor *x = in[0];
    int rank = x->n_dims;
    int64_t sizes[BMS_MAX_DIMS];
    enum bms_status rc = BMS_OK;
    int n_scales = -1;
    int n_sizes = -1;
    int n_roi = -1;

    if (p->inputs_from == 10) {
        int n_attr;
        const float *a = bms__attr_floats(node, "scales", &n_attr);

        if (node->n_inputs > 1) {
            rc = read_floats(node, in, 1, g->scale, rank, &n_scales, diag);
        } else if (a != NULL && n_attr <= rank) {
            n_scales = n_attr;
            for (int i = 0; i < n_attr; i++) {
                g->scale[i] = a[i];
            }
        }
    } else {
        rc = read_floats(node, in, 1, g->roi, 2 * rank, &n_roi, diag);
        if (rc == BMS_OK) {
            rc = read_floats(node, in, 2, g->scale, rank, &n_scales, diag);
        }
        if (rc == BMS_OK && node->n_inputs > 3 && in[3] != NULL) {
            rc = bms__core_read_ints(in[3], "sizes", sizes, BMS_MAX_DIMS,
                                     &n_sizes, diag);
        }
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if ((n_scales >= 0) == (n_sizes >= 0) ||
        (n_scales >= 0 && n_scales != rank) ||
        (n_sizes >= 0 && n_sizes != rank) ||
        (p->coord == CT_TF_CROP_AND_RESIZE && n_roi != 2 * rank)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: needs one of scales and sizes, with one "
                            "value per dim (and roi for tf_crop_and_resize)",
                            node->op_type);
    }
    for (int d = 0; d < rank; d++) {
        double crop = p->coord == CT_TF_CROP_AND_RESIZE
                          ? g->roi[rank + d] - g->roi[d] : 1;

        if (x->dims[d] < 0) {
            g->out[d] = -1;
        } else if (n_sizes >= 0) {
            g->out[d] = sizes[d];
            g->scale[d] = x->dims[d] > 0 ? (double)sizes[d] /
                                               (double)x->dims[d] : 1;
        } else {
            g->out[d] = (int64_t)floor((double)x->dims[d] * crop *
                                       g->scale[d]);
        }
        if (g->out[d] < -1 || (n_scales >= 0 && !(g->scale[d] > 0))) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: scale or size of dim %d is not "
                                "positive", node->op_type, d);
        }
    }
    return BMS_OK;
}


enum bms_status bms__resize_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    struct resize_geom g;
    enum bms_status rc;

    if (bms__elem_kind(in[0]->dtype) != BMS__KIND_FLOAT) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    rc = resize_geom(node, in, &g, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    bms__elem_same_shape(out, in[0]);
    memcpy(out->dims, g.out, sizeof(int64_t) * (size_t)out->n_dims);
    return BMS_OK;
}


/* The original coordinate of output position x along an axis. */
static double original_coord(const struct resize_params *p, double x,
                             double scale, int64_t in_len, int64_t out_len,
                             double roi_start, double roi_end)
{
    /* The reference measures align_corners and pytorch_half_pixel with
     * scale * in_len, which differs from out_len for scales that do not
     * divide evenly. */
    double out_f = scale * (double)in_len;

    (void)out_len;
    switch (p->coord) {
    case CT_HALF_PIXEL:
        return (x + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL:
        return out_f != 1 ? (x + 0.5) / scale - 0.5 : -0.5;
    case CT_ALIGN_CORNERS:
        return out_f == 1 ? 0 : x * (double)(in_len - 1) / (out_f - 1);
    case CT_ASYMMETRIC:
        return x / scale;
    case CT_TF_HALF_PIXEL_FOR_NN:
        return (x + 0.5) / scale;
    default:
        return out_f > 1
            ? roi_start * (double)(in_len - 1) +
                  x * (roi_end - roi_start) * (double)(in_len - 1) /
                      (out_f - 1)
            : 0.5 * (roi_start + roi_end) * (double)(in_len - 1);
    }
}


static void cubic_weights(double r, double a, double *w)
{
    double s = 1 - r;

    w[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
    w[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
    w[2] = ((a + 2) * s - (a + 3)) * s * s + 1;
    w[3] = ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a;
}


static int nearest_takes_right(enum nearest mode, double r)
{
    switch (mode) {
    case NR_ROUND_PREFER_FLOOR: return r > 0.5;
    case NR_ROUND_PREFER_CEIL: return r >= 0.5;
    case NR_FLOOR: return 0;
    default: return 1;
    }
}


static void make_tap(const struct resize_params *p, double x, int64_t len,
                     struct tap *t)
{
    double x0 = floor(x);
    double r = x - x0;
    double sum = 0;
    int64_t first;

    /* An integral x: the taps end at x itself, with the full weight. */
    if (r == 0) {
        x0 -= 1;
        r = 1;
    }
    memset(t, 0, sizeof(*t));
    if (p->mode == MODE_NEAREST) {
        t->n = 1;
        t->idx[0] = (int64_t)x0 + (r == 1 || nearest_takes_right(p->nearest,
                                                                 r));
        t->w[0] = 1;
    } else if (p->mode == MODE_LINEAR) {
        t->n = 2;
        t->idx[0] = (int64_t)x0;
        t->idx[1] = (int64_t)x0 + 1;
        t->w[0] = 1 - r;
        t->w[1] = r;
    } else {
        t->n = 4;
        first = (int64_t)x0 - 1;
        cubic_weights(r, p->cubic_a, t->w);
        for (int i = 0; i < 4; i++) {
            t->idx[i] = first + i;
            if (p->exclude_outside && (t->idx[i] < 0 || t->idx[i] >= len)) {
                t->w[i] = 0;
            }
            sum += t->w[i];
        }
        for (int i = 0; p->exclude_outside && sum != 0 && i < 4; i++) {
            t->w[i] /= sum;
        }
    }
    for (int i = 0; i < t->n; i++) {
        t->idx[i] = t->idx[i] < 0 ? 0 : t->idx[i] >= len ? len - 1
                                                         : t->idx[i];
    }
}


static void axis_taps(const struct resize_params *p,
                      const struct resize_geom *g, int rank, int d,
                      int64_t in_len, struct tap *taps)
{
    for (int64_t o = 0; o < g->out[d]; o++) {
        double x = original_coord(p, (double)o, g->scale[d], in_len,
                                  g->out[d], g->roi[d], g->roi[rank + d]);

        make_tap(p, x, in_len, &taps[o]);
        if (p->coord == CT_TF_CROP_AND_RESIZE &&
            (x < 0 || x > (double)(in_len - 1))) {
            taps[o].outside = 1;
        }
    }
}


/* One output element: the weighted sum over the product of the taps of
 * its coordinates pos[0..rank). */
static double interpolate(const struct bms_tensor *x, struct tap **axes,
                          const int64_t *pos, const int64_t *strides)
{
    int rank = x->n_dims;
    int k[BMS_MAX_DIMS] = {0};
    double sum = 0;

    for (;;) {
        double w = 1;
        int64_t off = 0;
        int d;

        for (d = 0; d < rank; d++) {
            const struct tap *t = &axes[d][pos[d]];

            w *= t->w[k[d]];
            off += t->idx[k[d]] * strides[d];
        }
        if (w != 0) {
            sum += w * bms__elem_get_f(x->data, x->dtype, off);
        }
        for (d = rank - 1; d >= 0; d--) {
            if (++k[d] < axes[d][pos[d]].n) {
                break;
            }
            k[d] = 0;
        }
        if (d < 0) {
            return sum;
        }
    }
}


enum bms_status bms__resize_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    const struct resize_params *p = node->params;
    const struct bms_tensor *x = in[0];
    int rank = x->n_dims;
    struct tap *axes[BMS_MAX_DIMS];
    int64_t strides[BMS_MAX_DIMS];
    int64_t pos[BMS_MAX_DIMS] = {0};
    int64_t n_out = bms_tensor_numel(out);
    int64_t n_taps = 0;
    struct resize_geom g;
    struct tap *all;

    if (resize_geom(node, in, &g, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (n_out == 0) {
        return BMS_OK;
    }
    for (int d = 0; d < rank; d++) {
        n_taps += g.out[d];
    }
    all = bms__ctx_scratch(ctx, sizeof(struct tap) * (size_t)(n_taps + 1));
    if (all == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int d = 0; d < rank; d++) {
        axes[d] = all;
        axis_taps(p, &g, rank, d, x->dims[d], all);
        all += g.out[d];
    }
    bms__elem_strides(x->dims, rank, strides);
    for (int64_t i = 0; i < n_out; i++) {
        int outside = 0;
        double v;

        for (int d = 0; d < rank; d++) {
            outside |= axes[d][pos[d]].outside;
        }
        v = outside ? p->extrapolation : interpolate(x, axes, pos, strides);
        bms__elem_set_f(out->data, out->dtype, i, v);
        for (int d = rank - 1; d >= 0; d--) {
            if (++pos[d] < out->dims[d]) {
                break;
            }
            pos[d] = 0;
        }
    }
    return BMS_OK;
}
