/*
 * Sliding-window geometry for Conv and the pools: attribute parsing and
 * the output size and padding rules of the ONNX spec, per spatial dim:
 *
 *   explicit pads   out = floor((in + pb + pe - ek) / s) + 1
 *                   (ceil with ceil_mode, where a last window that would
 *                   start in the end padding is dropped)
 *   VALID           the same with no padding
 *   SAME_UPPER/LOWER  out = ceil(in / s); the padding that needs is split
 *                   evenly, the odd one at the end (UPPER) or start (LOWER)
 *
 * where ek = (k - 1) * dilation + 1 is the extent of the dilated kernel.
 */
#include <string.h>

#include "engine/ops/kernels.h"
#include "engine/ops/window.h"


/* Copy an INTS attribute of n values into dst; sets *n_spatial from the
 * first such attribute.  Absent: dst untouched. */
static enum bms_status read_ints(const struct bms__node *node,
                                 const char *name, int per_dim,
                                 int64_t min, int64_t *dst, int *n_spatial,
                                 struct bms_diag *diag)
{
    int n = 0;
    const int64_t *v = bms__attr_ints(node, name, &n);

    if (v == NULL) {
        return BMS_OK;
    }
    if (n % per_dim != 0 || n / per_dim < 1 ||
        n / per_dim > BMS__MAX_SPATIAL ||
        (*n_spatial != 0 && n / per_dim != *n_spatial)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: attribute %s has %d values", node->op_type,
                            name, n);
    }
    for (int i = 0; i < n; i++) {
        if (v[i] < min) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: attribute %s value %lld below %lld",
                                node->op_type, name, (long long)v[i],
                                (long long)min);
        }
        dst[i] = v[i];
    }
    *n_spatial = n / per_dim;
    return BMS_OK;
}


static enum bms_status read_auto_pad(const struct bms__node *node,
                                     struct bms__window *w,
                                     struct bms_diag *diag)
{
    static const char *const names[] = {
        "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"
    };
    char buf[16];

    w->auto_pad = BMS__AUTO_PAD_NOTSET;
    if (!bms__attr_string(node, "auto_pad", buf, sizeof(buf))) {
        return BMS_OK;
    }
    for (int i = 0; i < 4; i++) {
        if (strcmp(buf, names[i]) == 0) {
            w->auto_pad = (enum bms__auto_pad)i;
            return BMS_OK;
        }
    }
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "%s: attribute auto_pad has unknown value %s",
                        node->op_type, buf);
}


enum bms_status bms__window_parse(const struct bms__node *node,
                                  int need_kernel, struct bms__window *w,
                                  struct bms_diag *diag)
{
    enum bms_status rc;

    memset(w, 0, sizeof(*w));
    for (int i = 0; i < BMS__MAX_SPATIAL; i++) {
        w->strides[i] = 1;
        w->dilations[i] = 1;
    }
    rc = read_ints(node, "kernel_shape", 1, 1, w->kernel, &w->n_spatial,
                   diag);
    if (rc != BMS_OK) {
        return rc;
    }
    w->has_kernel = w->n_spatial > 0;
    if (need_kernel && !w->has_kernel) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: attribute kernel_shape is required",
                            node->op_type);
    }
    rc = read_ints(node, "strides", 1, 1, w->strides, &w->n_spatial, diag);
    if (rc == BMS_OK) {
        rc = read_ints(node, "dilations", 1, 1, w->dilations,
                       &w->n_spatial, diag);
    }
    if (rc == BMS_OK) {
        rc = read_ints(node, "pads", 2, 0, w->pads, &w->n_spatial, diag);
    }
    if (rc == BMS_OK) {
        rc = read_auto_pad(node, w, diag);
    }
    w->ceil_mode = bms__attr_int(node, "ceil_mode", 0) != 0;
    return rc;
}


/* Output size along one dim from explicit pads (see the file comment). */
static int64_t explicit_out(const struct bms__window *w, int64_t in,
                            int64_t ek, int64_t s, int64_t pb, int64_t pe)
{
    int64_t span = in + pb + pe - ek;
    int64_t out;

    if (span < 0) {
        return 0;
    }
    out = span / s + 1;
    if (w->ceil_mode && span % s != 0) {
        out++;
        if ((out - 1) * s >= in + pb) {
            out--;
        }
    }
    return out;
}


static enum bms_status resolve_dim(const struct bms__node *node,
                                   const struct bms__window *w, int d,
                                   struct bms__window_geom *g,
                                   struct bms_diag *diag)
{
    int n = g->n_spatial;
    int64_t in = g->in[d];
    int64_t s = g->strides[d];
    int64_t ek = (g->kernel[d] - 1) * g->dilations[d] + 1;

    g->pad_begin[d] = w->pads[d];
    g->pad_end[d] = w->pads[n + d];
    if (w->auto_pad != BMS__AUTO_PAD_NOTSET) {
        g->pad_begin[d] = 0;
        g->pad_end[d] = 0;
    }
    if (in < 0) {
        g->out[d] = -1;
        return BMS_OK;
    }
    if (w->auto_pad == BMS__AUTO_PAD_SAME_UPPER ||
        w->auto_pad == BMS__AUTO_PAD_SAME_LOWER) {
        int64_t total;

        g->out[d] = (in + s - 1) / s;
        total = (g->out[d] - 1) * s + ek - in;
        total = total > 0 ? total : 0;
        g->pad_begin[d] = w->auto_pad == BMS__AUTO_PAD_SAME_UPPER
                              ? total / 2 : total - total / 2;
        g->pad_end[d] = total - g->pad_begin[d];
    } else {
        g->out[d] = explicit_out(w, in, ek, s, g->pad_begin[d],
                                 g->pad_end[d]);
    }
    if (g->out[d] < 1 && in > 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: window of extent %lld does not fit input "
                            "dim %lld with pads %lld+%lld", node->op_type,
                            (long long)ek, (long long)in,
                            (long long)g->pad_begin[d],
                            (long long)g->pad_end[d]);
    }
    return BMS_OK;
}


enum bms_status bms__window_resolve(const struct bms__node *node,
                                    const struct bms__window *w,
                                    int n_spatial, const int64_t *in,
                                    const int64_t *kernel,
                                    struct bms__window_geom *g,
                                    struct bms_diag *diag)
{
    if (n_spatial < 1 || n_spatial > BMS__MAX_SPATIAL ||
        (w->n_spatial != 0 && w->n_spatial != n_spatial)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: input has %d spatial dims, attributes "
                            "give %d", node->op_type, n_spatial,
                            w->n_spatial);
    }
    g->n_spatial = n_spatial;
    for (int d = 0; d < n_spatial; d++) {
        enum bms_status rc;

        g->in[d] = in[d];
        g->kernel[d] = w->has_kernel ? w->kernel[d] : kernel[d];
        g->strides[d] = w->strides[d];
        g->dilations[d] = w->dilations[d];
        rc = resolve_dim(node, w, d, g, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    return BMS_OK;
}
