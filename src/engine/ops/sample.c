/*
 * Sampling at fractional coordinates: GridSample (a 4-D input read at the
 * normalised (x, y) points of a grid, bilinear, nearest or bicubic) and
 * RoiAlign (average or max of bilinear samples over each region of
 * interest, pooled to a fixed height and width).
 *
 * GridSample follows the ONNX definition, which is PyTorch's grid_sample:
 * for bilinear and nearest the padding mode moves the sample point itself
 * (border clamps it, reflection mirrors it), and taps outside the input
 * read 0; for bicubic the point stays and each of the 16 taps is moved.
 * RoiAlign follows the ONNX reference: samples outside [-1, size] add 0,
 * and "max" takes the largest weighted corner of each sample.  Values are
 * computed in double and stored in the output's datatype (F32 or F64).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

enum grid_mode { GRID_LINEAR, GRID_NEAREST, GRID_CUBIC };
enum grid_pad { PAD_ZEROS, PAD_BORDER, PAD_REFLECTION };

struct grid_params {
    enum grid_mode mode;
    enum grid_pad pad;
    int align_corners;
};

struct roi_params {
    int max_mode;
    int half_pixel;              /* coordinates shifted by -0.5 */
    int64_t out_h;
    int64_t out_w;
    int64_t sampling_ratio;      /* 0: adaptive, ceil(roi / output) */
    double spatial_scale;
};

/* The Keys cubic convolution constant PyTorch's bicubic uses. */
#define CUBIC_A (-0.75)


static int is_op(const struct bms__node *node, const char *name)
{
    return strcmp(node->op_type, name) == 0;
}


static int is_real(enum bms_dtype dt)
{
    return dt == BMS_DTYPE_F32 || dt == BMS_DTYPE_F64;
}


static enum bms_status grid_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    char mode[16] = "bilinear";
    char pad[16] = "zeros";
    struct grid_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 2, 2, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    bms__attr_string(node, "mode", mode, sizeof(mode));
    bms__attr_string(node, "padding_mode", pad, sizeof(pad));
    p->align_corners = bms__attr_int(node, "align_corners", 0) != 0;
    /* Opset 20 renamed bilinear and bicubic to linear and cubic. */
    if (strcmp(mode, "bilinear") == 0 || strcmp(mode, "linear") == 0) {
        p->mode = GRID_LINEAR;
    } else if (strcmp(mode, "nearest") == 0) {
        p->mode = GRID_NEAREST;
    } else if (strcmp(mode, "bicubic") == 0 || strcmp(mode, "cubic") == 0) {
        p->mode = GRID_CUBIC;
    } else {
        free(p);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "GridSample: mode '%s' unknown", mode);
    }
    if (strcmp(pad, "zeros") == 0) {
        p->pad = PAD_ZEROS;
    } else if (strcmp(pad, "border") == 0) {
        p->pad = PAD_BORDER;
    } else if (strcmp(pad, "reflection") == 0) {
        p->pad = PAD_REFLECTION;
    } else {
        free(p);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "GridSample: padding_mode '%s' unknown", pad);
    }
    node->params = p;
    return BMS_OK;
}


static enum bms_status grid_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *g = in[1];

    if (!is_real(x->dtype) || !is_real(g->dtype)) {
        return bms__math_bad_dtype(node, is_real(x->dtype) ? g->dtype :
                                   x->dtype, diag);
    }
    if (x->n_dims != 4 || g->n_dims != 4) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "GridSample: only 4-D input and grid are "
                            "supported, not rank %d and %d", x->n_dims,
                            g->n_dims);
    }
    if ((g->dims[3] >= 0 && g->dims[3] != 2) ||
        (x->dims[0] >= 0 && g->dims[0] >= 0 && x->dims[0] != g->dims[0])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "GridSample: grid must be [N, H_out, W_out, 2] "
                            "with the input's N");
    }
    out->dtype = x->dtype;
    out->n_dims = 4;
    out->dims[0] = x->dims[0];
    out->dims[1] = x->dims[1];
    out->dims[2] = g->dims[1];
    out->dims[3] = g->dims[2];
    return BMS_OK;
}


/* A normalised coordinate in [-1, 1] to pixel units of an axis of size. */
static double unnormalize(double c, int64_t size, int align_corners)
{
    if (align_corners) {
        return (c + 1.0) / 2.0 * (double)(size - 1);
    }
    return ((c + 1.0) * (double)size - 1.0) / 2.0;
}


/* Mirror c into [lo2 / 2, hi2 / 2] (bounds given doubled, so that the
 * half-pixel bounds -0.5 and size - 0.5 stay integers). */
static double reflect(double c, double lo2, double hi2)
{
    double lo = lo2 / 2.0;
    double span = (hi2 - lo2) / 2.0;
    double extra;
    double flips;

    if (span <= 0) {
        return 0;
    }
    c = fabs(c - lo);
    extra = fmod(c, span);
    flips = floor(c / span);
    return fmod(flips, 2.0) == 0 ? lo + extra : lo + span - extra;
}


/* Apply the padding mode to a pixel coordinate: zeros leaves it, border
 * clamps it into [0, size - 1], reflection mirrors then clamps. */
static double pad_coord(double c, int64_t size, enum grid_pad pad,
                        int align_corners)
{
    double hi = (double)(size - 1);

    if (pad == PAD_ZEROS) {
        return c;
    }
    if (pad == PAD_REFLECTION) {
        c = align_corners ? reflect(c, 0, 2.0 * hi) :
                            reflect(c, -1, 2.0 * (double)size - 1);
    }
    return fmin(fmax(c, 0), hi);
}


/* One channel plane of the input and its size. */
struct plane {
    const void *data;
    enum bms_dtype dtype;
    int64_t off;                 /* element offset of the plane */
    int64_t h;
    int64_t w;
};


/* The pixel at integer (y, x), 0 outside the plane. */
static double pixel(const struct plane *pl, int64_t y, int64_t x)
{
    if (y < 0 || y >= pl->h || x < 0 || x >= pl->w) {
        return 0;
    }
    return bms__elem_get_f(pl->data, pl->dtype, pl->off + y * pl->w + x);
}


/* A bicubic tap: the padding mode moves the tap's coordinates. */
static double cubic_tap(const struct plane *pl, const struct grid_params *p,
                        double y, double x)
{
    y = pad_coord(y, pl->h, p->pad, p->align_corners);
    x = pad_coord(x, pl->w, p->pad, p->align_corners);
    if (!(fabs(y) < 1e15 && fabs(x) < 1e15)) {
        return 0;
    }
    return pixel(pl, (int64_t)floor(y), (int64_t)floor(x));
}


/* The four weights of the cubic convolution at fraction t. */
static void cubic_weights(double t, double *w)
{
    double a = CUBIC_A;
    double t1 = t + 1.0;
    double t2 = 1.0 - t;
    double t3 = 2.0 - t;

    w[0] = ((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a;
    w[1] = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    w[2] = ((a + 2.0) * t2 - (a + 3.0)) * t2 * t2 + 1.0;
    w[3] = ((a * t3 - 5.0 * a) * t3 + 8.0 * a) * t3 - 4.0 * a;
}


static double sample_cubic(const struct plane *pl,
                           const struct grid_params *p, double y, double x)
{
    double y0 = floor(y);
    double x0 = floor(x);
    double wy[4];
    double wx[4];
    double sum = 0;

    cubic_weights(y - y0, wy);
    cubic_weights(x - x0, wx);
    for (int i = 0; i < 4; i++) {
        double row = 0;

        for (int j = 0; j < 4; j++) {
            row += wx[j] * cubic_tap(pl, p, y0 - 1 + i, x0 - 1 + j);
        }
        sum += wy[i] * row;
    }
    return sum;
}


static double sample_grid(const struct plane *pl,
                          const struct grid_params *p, double y, double x)
{
    double y0;
    double x0;
    double ly;
    double lx;
    int64_t iy;
    int64_t ix;

    if (y != y || x != x) {
        return 0;
    }
    if (p->mode == GRID_CUBIC) {
        /* Far outside, every tap pads to the same edge or reads 0. */
        return sample_cubic(pl, p, fmin(fmax(y, -1e15), 1e15),
                            fmin(fmax(x, -1e15), 1e15));
    }
    y = pad_coord(y, pl->h, p->pad, p->align_corners);
    x = pad_coord(x, pl->w, p->pad, p->align_corners);
    if (!(fabs(y) < 1e15 && fabs(x) < 1e15)) {
        return 0;
    }
    if (p->mode == GRID_NEAREST) {
        /* nearbyint rounds half to even, as PyTorch does. */
        return pixel(pl, (int64_t)nearbyint(y), (int64_t)nearbyint(x));
    }
    y0 = floor(y);
    x0 = floor(x);
    ly = y - y0;
    lx = x - x0;
    iy = (int64_t)y0;
    ix = (int64_t)x0;
    return (1 - ly) * ((1 - lx) * pixel(pl, iy, ix) +
                       lx * pixel(pl, iy, ix + 1)) +
           ly * ((1 - lx) * pixel(pl, iy + 1, ix) +
                 lx * pixel(pl, iy + 1, ix + 1));
}


static enum bms_status grid_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out)
{
    const struct grid_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *g = in[1];
    int64_t n_batch = x->dims[0];
    int64_t n_ch = x->dims[1];
    int64_t n_pts = g->dims[1] * g->dims[2];
    struct plane pl = {x->data, x->dtype, 0, x->dims[2], x->dims[3]};

    for (int64_t n = 0; n < n_batch; n++) {
        for (int64_t c = 0; c < n_ch; c++) {
            int64_t o = (n * n_ch + c) * n_pts;

            pl.off = (n * n_ch + c) * pl.h * pl.w;
            for (int64_t k = 0; k < n_pts; k++) {
                int64_t gi = (n * n_pts + k) * 2;
                double gx = bms__elem_get_f(g->data, g->dtype, gi);
                double gy = bms__elem_get_f(g->data, g->dtype, gi + 1);
                double v = sample_grid(&pl, p,
                                       unnormalize(gy, pl.h,
                                                   p->align_corners),
                                       unnormalize(gx, pl.w,
                                                   p->align_corners));

                bms__elem_set_f(out->data, out->dtype, o + k, v);
            }
        }
    }
    return BMS_OK;
}


static enum bms_status roi_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    char mode[8] = "avg";
    char ctm[24];
    struct roi_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 3, 3, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    /* Opset 10 had no coordinate_transformation_mode and behaved as
     * output_half_pixel does now. */
    snprintf(ctm, sizeof(ctm), "%s",
             node->opset > 0 && node->opset < 16 ? "output_half_pixel" :
                                                   "half_pixel");
    bms__attr_string(node, "mode", mode, sizeof(mode));
    bms__attr_string(node, "coordinate_transformation_mode", ctm,
                     sizeof(ctm));
    if ((strcmp(mode, "avg") != 0 && strcmp(mode, "max") != 0) ||
        (strcmp(ctm, "half_pixel") != 0 &&
         strcmp(ctm, "output_half_pixel") != 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "RoiAlign: mode '%s' or "
                            "coordinate_transformation_mode '%s' unknown",
                            mode, ctm);
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->max_mode = strcmp(mode, "max") == 0;
    p->half_pixel = strcmp(ctm, "half_pixel") == 0;
    p->out_h = bms__attr_int(node, "output_height", 1);
    p->out_w = bms__attr_int(node, "output_width", 1);
    p->sampling_ratio = bms__attr_int(node, "sampling_ratio", 0);
    p->spatial_scale = bms__attr_float(node, "spatial_scale", 1.0f);
    if (p->out_h < 1 || p->out_w < 1 || p->sampling_ratio < 0 ||
        p->out_h > (1 << 20) || p->out_w > (1 << 20) ||
        p->sampling_ratio > (1 << 10)) {
        free(p);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "RoiAlign: output_height and output_width must "
                            "be in [1, 2^20], sampling_ratio in [0, 1024]");
    }
    node->params = p;
    return BMS_OK;
}


static enum bms_status roi_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    const struct roi_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *rois = in[1];
    const struct bms_tensor *bi = in[2];

    if (!is_real(x->dtype)) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims != 4 || rois->dtype != x->dtype || rois->n_dims != 2 ||
        (rois->dims[1] >= 0 && rois->dims[1] != 4) ||
        (bi->dtype != BMS_DTYPE_I64 && bi->dtype != BMS_DTYPE_I32) ||
        bi->n_dims != 1 ||
        (bi->dims[0] >= 0 && rois->dims[0] >= 0 &&
         bi->dims[0] != rois->dims[0])) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "RoiAlign: X must be [N, C, H, W], rois "
                            "[R, 4] of X's datatype, batch_indices int "
                            "[R]");
    }
    out->dtype = x->dtype;
    out->n_dims = 4;
    out->dims[0] = rois->dims[0];
    out->dims[1] = x->dims[1];
    out->dims[2] = p->out_h;
    out->dims[3] = p->out_w;
    return BMS_OK;
}


/* One bilinear sample of RoiAlign at (y, x): the four corner weights and
 * offsets into the plane; all weights 0 when the point lies outside. */
struct roi_tap {
    int64_t at[4];
    double w[4];
};


static void roi_tap(int64_t h, int64_t w, double y, double x,
                    struct roi_tap *t)
{
    int64_t y0;
    int64_t x0;
    int64_t y1;
    int64_t x1;
    double ly;
    double lx;

    memset(t, 0, sizeof(*t));
    if (h <= 0 || w <= 0 ||
        !(y >= -1.0 && y <= (double)h && x >= -1.0 && x <= (double)w)) {
        return;
    }
    y = fmax(y, 0);
    x = fmax(x, 0);
    y0 = (int64_t)y;
    x0 = (int64_t)x;
    if (y0 >= h - 1) {
        y0 = y1 = h - 1;
        y = (double)y0;
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= w - 1) {
        x0 = x1 = w - 1;
        x = (double)x0;
    } else {
        x1 = x0 + 1;
    }
    ly = y - (double)y0;
    lx = x - (double)x0;
    t->at[0] = y0 * w + x0;
    t->at[1] = y0 * w + x1;
    t->at[2] = y1 * w + x0;
    t->at[3] = y1 * w + x1;
    t->w[0] = (1 - ly) * (1 - lx);
    t->w[1] = (1 - ly) * lx;
    t->w[2] = ly * (1 - lx);
    t->w[3] = ly * lx;
}


/* The region of interest in input pixels and its sampling grid. */
struct roi_box {
    double y0;
    double x0;
    double bin_h;
    double bin_w;
    int64_t grid_h;
    int64_t grid_w;
};


static void roi_box(const struct roi_params *p, const struct bms_tensor *r,
                    int64_t k, struct roi_box *b)
{
    double shift = p->half_pixel ? 0.5 : 0.0;
    double s = p->spatial_scale;
    double x0 = bms__elem_get_f(r->data, r->dtype, k * 4) * s - shift;
    double y0 = bms__elem_get_f(r->data, r->dtype, k * 4 + 1) * s - shift;
    double x1 = bms__elem_get_f(r->data, r->dtype, k * 4 + 2) * s - shift;
    double y1 = bms__elem_get_f(r->data, r->dtype, k * 4 + 3) * s - shift;
    double rh = y1 - y0;
    double rw = x1 - x0;

    if (!p->half_pixel) {
        /* The legacy mode makes malformed regions at least 1x1. */
        rh = fmax(rh, 1.0);
        rw = fmax(rw, 1.0);
    }
    b->y0 = y0;
    b->x0 = x0;
    b->bin_h = rh / (double)p->out_h;
    b->bin_w = rw / (double)p->out_w;
    b->grid_h = p->sampling_ratio > 0 ? p->sampling_ratio :
                (int64_t)ceil(fmin(fmax(b->bin_h, 0), 1024));
    b->grid_w = p->sampling_ratio > 0 ? p->sampling_ratio :
                (int64_t)ceil(fmin(fmax(b->bin_w, 0), 1024));
}


/* One output bin of one channel plane starting at element off. */
static double roi_bin(const struct roi_params *p, const struct roi_box *b,
                      const struct bms_tensor *x, int64_t off, int64_t ph,
                      int64_t pw)
{
    int64_t h = x->dims[2];
    int64_t w = x->dims[3];
    int64_t count = b->grid_h * b->grid_w;
    double acc = 0;
    int first = 1;

    for (int64_t iy = 0; iy < b->grid_h; iy++) {
        double y = b->y0 + (double)ph * b->bin_h +
                   ((double)iy + 0.5) * b->bin_h / (double)b->grid_h;

        for (int64_t ix = 0; ix < b->grid_w; ix++) {
            double xx = b->x0 + (double)pw * b->bin_w +
                        ((double)ix + 0.5) * b->bin_w / (double)b->grid_w;
            struct roi_tap t;
            double v = 0;

            roi_tap(h, w, y, xx, &t);
            for (int c = 0; c < 4; c++) {
                double tv = t.w[c] * bms__elem_get_f(x->data, x->dtype,
                                                     off + t.at[c]);

                v = p->max_mode ? (c == 0 || tv > v ? tv : v) : v + tv;
            }
            acc = p->max_mode ? (first || v > acc ? v : acc) : acc + v;
            first = 0;
        }
    }
    return p->max_mode ? acc : acc / (double)(count > 0 ? count : 1);
}


static enum bms_status roi_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out)
{
    const struct roi_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *bi = in[2];
    int64_t n_rois = out->dims[0];
    int64_t n_ch = x->dims[1];
    int64_t plane = x->dims[2] * x->dims[3];

    for (int64_t k = 0; k < n_rois; k++) {
        int64_t n = bms__elem_get_i(bi->data, bi->dtype, k);

        if (n < 0 || n >= x->dims[0]) {
            return BMS_ERR_INVALID;
        }
    }
    for (int64_t k = 0; k < n_rois; k++) {
        int64_t n = bms__elem_get_i(bi->data, bi->dtype, k);
        struct roi_box b;

        roi_box(p, in[1], k, &b);
        for (int64_t c = 0; c < n_ch; c++) {
            int64_t off = (n * n_ch + c) * plane;
            int64_t o = (k * n_ch + c) * p->out_h * p->out_w;

            for (int64_t ph = 0; ph < p->out_h; ph++) {
                for (int64_t pw = 0; pw < p->out_w; pw++) {
                    bms__elem_set_f(out->data, out->dtype,
                                    o + ph * p->out_w + pw,
                                    roi_bin(p, &b, x, off, ph, pw));
                }
            }
        }
    }
    return BMS_OK;
}


enum bms_status bms__sample_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    if (is_op(node, "GridSample")) {
        return grid_prepare(node, diag);
    }
    return roi_prepare(node, diag);
}


enum bms_status bms__sample_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    if (is_op(node, "GridSample")) {
        return grid_infer(node, in, out, diag);
    }
    return roi_infer(node, in, out, diag);
}


enum bms_status bms__sample_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out, struct bms__ctx *ctx)
{
    (void)ctx;
    if (is_op(node, "GridSample")) {
        return grid_run(node, in, out);
    }
    return roi_run(node, in, out);
}
