/*
 * ConvTranspose over F32, 1 to 3 spatial dims (any count up to
 * BMS__MAX_SPATIAL), with groups, strides, dilations, pads, auto_pad,
 * output_padding and output_shape.
 *
 * Per image and group the product W_g^T X_g (bms__sgemm) gives, for every
 * output channel and kernel offset, the contribution of each input
 * position; col2im then adds each one at output position
 * p * stride + k * dilation - pad_begin when that lies inside.  Output
 * size per dim (ONNX ConvTranspose):
 *
 *   out = stride * (in - 1) + output_padding + (k - 1) * dilation + 1
 *         - pad_begin - pad_end
 *
 * and with output_shape (or SAME auto_pad, output_shape = in * stride)
 * the pads are derived from it, the odd one at the end for SAME_UPPER and
 * at the start otherwise.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/blas.h"
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"
#include "engine/ops/window.h"

struct convt_params {
    struct bms__window w;
    int64_t group;
    int n_out_pad;
    int64_t out_pad[BMS__MAX_SPATIAL];
    int n_out_shape;
    int64_t out_shape[BMS__MAX_SPATIAL];
};

/* One call's geometry. */
struct convt_geom {
    int n_sp;
    int64_t in[BMS__MAX_SPATIAL];
    int64_t out[BMS__MAX_SPATIAL];
    int64_t k[BMS__MAX_SPATIAL];
    int64_t pb[BMS__MAX_SPATIAL];
};


static int copy_ints(const struct bms__node *node, const char *name,
                     int64_t *dst)
{
    int n = 0;
    const int64_t *v = bms__attr_ints(node, name, &n);

    if (n > BMS__MAX_SPATIAL) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        dst[i] = v[i];
    }
    return n;
}


enum bms_status bms__convt_prepare(struct bms__node *node,
                                   struct bms_diag *diag)
{
    struct convt_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 2, 3, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    rc = bms__window_parse(node, 0, &p->w, diag);
    p->group = bms__attr_int(node, "group", 1);
    p->n_out_pad = copy_ints(node, "output_padding", p->out_pad);
    p->n_out_shape = copy_ints(node, "output_shape", p->out_shape);
    if (rc == BMS_OK && (p->group < 1 || p->n_out_pad < 0 ||
                         p->n_out_shape < 0)) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID,
                          "ConvTranspose: bad group, output_padding or "
                          "output_shape");
    }
    if (rc != BMS_OK) {
        free(p);
        return rc;
    }
    node->params = p;
    return BMS_OK;
}


static enum bms_status convt_geom(const struct bms__node *node,
                                  const struct bms_tensor *x,
                                  const struct bms_tensor *w,
                                  struct convt_geom *g,
                                  struct bms_diag *diag)
{
    const struct convt_params *p = node->params;
    int n_sp = x->n_dims - 2;

    if (n_sp < 1 || n_sp > BMS__MAX_SPATIAL || w->n_dims != x->n_dims ||
        (p->w.n_spatial != 0 && p->w.n_spatial != n_sp) ||
        (p->n_out_pad > 0 && p->n_out_pad != n_sp) ||
        (p->n_out_shape > 0 && p->n_out_shape != n_sp)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "ConvTranspose: X, W and the attributes "
                            "disagree in rank");
    }
    if (x->dims[1] != w->dims[0] || x->dims[1] % p->group != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "ConvTranspose: %lld input channels for W of "
                            "%lld and group %lld", (long long)x->dims[1],
                            (long long)w->dims[0], (long long)p->group);
    }
    g->n_sp = n_sp;
    for (int i = 0; i < n_sp; i++) {
        int64_t s = p->w.strides[i];
        int64_t d = p->w.dilations[i];
        int64_t op = p->n_out_pad > 0 ? p->out_pad[i] : 0;
        int64_t ext;

        g->in[i] = x->dims[2 + i];
        g->k[i] = p->w.has_kernel ? p->w.kernel[i] : w->dims[2 + i];
        ext = (g->k[i] - 1) * d + 1;
        if (g->k[i] != w->dims[2 + i] || g->in[i] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "ConvTranspose: kernel_shape disagrees with "
                                "W, or the input size is unknown");
        }
        if (p->n_out_shape > 0 || p->w.auto_pad == BMS__AUTO_PAD_SAME_UPPER ||
            p->w.auto_pad == BMS__AUTO_PAD_SAME_LOWER) {
            int64_t want = p->n_out_shape > 0 ? p->out_shape[i]
                                              : g->in[i] * s;
            int64_t total = s * (g->in[i] - 1) + op + ext - want;
            int upper = p->w.auto_pad == BMS__AUTO_PAD_SAME_UPPER;

            total = total > 0 ? total : 0;
            g->pb[i] = upper ? total / 2 : total - total / 2;
            g->out[i] = want;
        } else {
            int64_t pb = p->w.auto_pad == BMS__AUTO_PAD_VALID ? 0
                                                              : p->w.pads[i];
            int64_t pe = p->w.auto_pad == BMS__AUTO_PAD_VALID
                             ? 0 : p->w.pads[n_sp + i];

            g->pb[i] = pb;
            g->out[i] = s * (g->in[i] - 1) + op + ext - pb - pe;
        }
        if (g->out[i] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "ConvTranspose: output dim %d is negative",
                                i);
        }
    }
    return BMS_OK;
}


enum bms_status bms__convt_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag)
{
    const struct convt_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *w = in[1];
    struct convt_geom g;
    enum bms_status rc;

    if (x->dtype != BMS_DTYPE_F32 || w->dtype != BMS_DTYPE_F32) {
        return bms__math_bad_dtype(node, x->dtype != BMS_DTYPE_F32 ? x->dtype
                                                              : w->dtype,
                                   diag);
    }
    rc = convt_geom(node, x, w, &g, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (node->n_inputs > 2 && in[2] != NULL &&
        (in[2]->dtype != BMS_DTYPE_F32 ||
         bms_tensor_numel(in[2]) != w->dims[1] * p->group)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "ConvTranspose: B must hold one F32 per output "
                            "channel");
    }
    out->dtype = BMS_DTYPE_F32;
    out->n_dims = x->n_dims;
    out->dims[0] = x->dims[0];
    out->dims[1] = w->dims[1] * p->group;
    memcpy(out->dims + 2, g.out, sizeof(int64_t) * (size_t)g.n_sp);
    return BMS_OK;
}


/* Add cols [mg * K, P] into y [mg, out spatial] (col2im). */
static void col2im(const struct convt_params *p, const struct convt_geom *g,
                   int64_t mg, const float *cols, float *y)
{
    int64_t n_k = bms__math_span(g->k, 0, g->n_sp);
    int64_t n_p = bms__math_span(g->in, 0, g->n_sp);
    int64_t n_o = bms__math_span(g->out, 0, g->n_sp);
    int64_t ostr[BMS__MAX_SPATIAL];

    bms__elem_strides(g->out, g->n_sp, ostr);
    for (int64_t kk = 0; kk < n_k; kk++) {
        int64_t kpos[BMS__MAX_SPATIAL];
        int64_t rest = kk;

        for (int i = g->n_sp - 1; i >= 0; i--) {
            kpos[i] = rest % g->k[i];
            rest /= g->k[i];
        }
        for (int64_t pp = 0; pp < n_p; pp++) {
            int64_t off = 0;
            int64_t r = pp;
            int inside = 1;

            for (int i = g->n_sp - 1; i >= 0 && inside; i--) {
                int64_t pi = r % g->in[i];
                int64_t o = pi * p->w.strides[i] +
                            kpos[i] * p->w.dilations[i] - g->pb[i];

                r /= g->in[i];
                inside = o >= 0 && o < g->out[i];
                off += o * ostr[i];
            }
            if (!inside) {
                continue;
            }
            for (int64_t m = 0; m < mg; m++) {
                y[m * n_o + off] += cols[(m * n_k + kk) * n_p + pp];
            }
        }
    }
}


enum bms_status bms__convt_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx)
{
    const struct convt_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *w = in[1];
    const float *b = node->n_inputs > 2 && in[2] != NULL ? in[2]->data
                                                         : NULL;
    int64_t cg = x->dims[1] / p->group;
    int64_t mg = w->dims[1];
    int64_t m = mg * p->group;
    struct convt_geom g;
    int64_t n_k;
    int64_t n_p;
    int64_t n_o;
    float *cols;
    float *y = out->data;

    if (convt_geom(node, x, w, &g, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    n_k = bms__math_span(g.k, 0, g.n_sp);
    n_p = bms__math_span(g.in, 0, g.n_sp);
    n_o = bms__math_span(g.out, 0, g.n_sp);
    cols = bms__ctx_scratch(ctx, sizeof(float) *
                                     (size_t)(mg * n_k * n_p + 1));
    if (cols == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < x->dims[0] * m; i++) {
        float v = b != NULL ? b[i % m] : 0.0f;

        for (int64_t j = 0; j < n_o; j++) {
            y[i * n_o + j] = v;
        }
    }
    if (n_p == 0 || cg == 0) {
        return BMS_OK;
    }
    for (int64_t n = 0; n < x->dims[0]; n++) {
        for (int64_t gi = 0; gi < p->group; gi++) {
            const float *xg = (const float *)x->data +
                              (n * x->dims[1] + gi * cg) * n_p;
            const float *wg = (const float *)w->data + gi * cg * mg * n_k;
            enum bms_status rc;

            rc = bms__sgemm(ctx->n_threads, 1, 0, mg * n_k, n_p, cg, 1.0f,
                            wg, mg * n_k, xg, n_p, 0.0f, cols, n_p);
            if (rc != BMS_OK) {
                return rc;
            }
            col2im(p, &g, mg, cols, y + (n * m + gi * mg) * n_o);
        }
    }
    return BMS_OK;
}
