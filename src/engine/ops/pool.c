/*
 * Pooling: MaxPool (F32, F64, I8, U8; ceil_mode, dilations, storage_order
 * and the optional Indices output), AveragePool (F32, F64; ceil_mode,
 * count_include_pad, dilations) and GlobalAveragePool (F32, F64), for any
 * number of spatial dims.
 *
 * Every output position looks at a box of kernel offsets clipped, per dim,
 * to the offsets that land inside the input; padding never takes part in
 * a maximum.  AveragePool divides by the clipped count, or with
 * count_include_pad by the count clipped to the padded input instead.
 * Indices are flat offsets into X, as ONNX gives them: row-major, or with
 * storage_order 1 column-major within each spatial plane.
 *
 * F32 MaxPool without Indices and F32 AveragePool go to oneDNN's pooling
 * primitive first (ops/dnnl_pool.c, cached in the node's params); what it
 * refuses, and every other case, is computed by the loops here.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/dnnl.h"
#include "engine/ops/kernels.h"
#include "engine/ops/window.h"

/* Window elements below which a pool is not worth a thread team. */
#define PARALLEL_MIN_ELEMS ((int64_t)1 << 22)

struct pool_params {
    struct bms__window w;
    int is_max;
    int count_include_pad;
    int storage_order;
    struct bms__dnnl_pool dnnl;
};

/* The kernel offsets of one output position that stay inside the input,
 * per dim [lo, hi), and the first input element they touch. */
struct pool_box {
    int64_t lo[BMS__MAX_SPATIAL];
    int64_t hi[BMS__MAX_SPATIAL];
    int64_t pos0[BMS__MAX_SPATIAL];   /* input coordinate of offset 0 */
    int64_t n_valid;                  /* offsets inside the input */
    int64_t n_padded;                 /* offsets inside the padded input */
};


static void pool_params_fini(void *params)
{
    struct pool_params *p = params;

    bms__dnnl_pool_fini(&p->dnnl);
}


enum bms_status bms__pool_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    struct pool_params *p;
    enum bms_status rc;
    int is_max = strcmp(node->op_type, "MaxPool") == 0;

    rc = bms__math_check_arity(node, 1, 1, 1, is_max ? 2 : 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->is_max = is_max;
    p->count_include_pad = bms__attr_int(node, "count_include_pad", 0) != 0;
    p->storage_order = (int)bms__attr_int(node, "storage_order", 0);
    rc = bms__window_parse(node, 1, &p->w, diag);
    if (rc == BMS_OK && p->storage_order != 0 && p->storage_order != 1) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID,
                          "MaxPool: attribute storage_order is %d, must be "
                          "0 or 1", p->storage_order);
    }
    if (rc == BMS_OK) {
        rc = bms__dnnl_pool_init(&p->dnnl);
    }
    if (rc != BMS_OK) {
        free(p);
        return rc;
    }
    node->params = p;
    node->params_fini = pool_params_fini;
    return BMS_OK;
}


static int pool_dtype_ok(const struct pool_params *p, enum bms_dtype dt)
{
    if (dt == BMS_DTYPE_F32 || dt == BMS_DTYPE_F64) {
        return 1;
    }
    return p->is_max && (dt == BMS_DTYPE_I8 || dt == BMS_DTYPE_U8);
}


static enum bms_status pool_geom(const struct bms__node *node,
                                 const struct bms_tensor *x,
                                 struct bms__window_geom *g,
                                 struct bms_diag *diag)
{
    const struct pool_params *p = node->params;

    if (x->n_dims < 3) {
        char text[BMS__DIMS_TEXT_SIZE];

        bms__math_dims_text(x->dims, x->n_dims, text);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: X %s must be [N,C,spatial...]",
                            node->op_type, text);
    }
    return bms__window_resolve(node, &p->w, x->n_dims - 2, x->dims + 2,
                               NULL, g, diag);
}


enum bms_status bms__pool_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    const struct pool_params *p = node->params;
    const struct bms_tensor *x = in[0];
    struct bms__window_geom g;
    enum bms_status rc;

    if (!pool_dtype_ok(p, x->dtype)) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    rc = pool_geom(node, x, &g, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    out[0].dtype = x->dtype;
    out[0].n_dims = x->n_dims;
    out[0].dims[0] = x->dims[0];
    out[0].dims[1] = x->dims[1];
    for (int d = 0; d < g.n_spatial; d++) {
        out[0].dims[2 + d] = g.out[d];
    }
    if (node->n_outputs > 1) {
        out[1] = out[0];
        out[1].dtype = BMS_DTYPE_I64;
        out[1].data = NULL;
    }
    return BMS_OK;
}


/* Kernel offsets k in [0, n_k) with start + k * dil in [0, limit). */
static void clip_offsets(int64_t start, int64_t dil, int64_t n_k,
                         int64_t limit, int64_t *lo, int64_t *hi)
{
    /* Most windows lie wholly inside: no division needed. */
    if (start >= 0 && start + (n_k - 1) * dil < limit) {
        *lo = 0;
        *hi = n_k;
        return;
    }
    *lo = start >= 0 ? 0 : (-start + dil - 1) / dil;
    *hi = limit > start ? (limit - start + dil - 1) / dil : 0;
    *hi = *hi < n_k ? *hi : n_k;
    *hi = *hi > *lo ? *hi : *lo;
}


static void pool_box(const struct bms__window_geom *g, const int64_t *oidx,
                     struct pool_box *b)
{
    b->n_valid = 1;
    b->n_padded = 1;
    for (int d = 0; d < g->n_spatial; d++) {
        int64_t start = oidx[d] * g->strides[d] - g->pad_begin[d];
        int64_t plo, phi;

        clip_offsets(start, g->dilations[d], g->kernel[d], g->in[d],
                     &b->lo[d], &b->hi[d]);
        clip_offsets(start + g->pad_begin[d], g->dilations[d],
                     g->kernel[d], g->in[d] + g->pad_begin[d] +
                     g->pad_end[d], &plo, &phi);
        b->pos0[d] = start;
        b->n_valid *= b->hi[d] - b->lo[d];
        b->n_padded *= phi - plo;
    }
}


/* Advance a multi-index over dims[0..n); 0 once it wraps to all zeros. */
static int odometer_next(int64_t *idx, const int64_t *lo, const int64_t *hi,
                         int n)
{
    for (int d = n - 1; d >= 0; d--) {
        if (++idx[d] < hi[d]) {
            return 1;
        }
        idx[d] = lo != NULL ? lo[d] : 0;
    }
    return 0;
}


/* Element offsets of each spatial dim in a plane, row-major (strides) and
 * column-major (cstrides, for storage_order 1). */
static void plane_strides(const struct bms__window_geom *g,
                          int64_t *strides, int64_t *cstrides)
{
    int n = g->n_spatial;

    strides[n - 1] = 1;
    for (int d = n - 2; d >= 0; d--) {
        strides[d] = strides[d + 1] * g->in[d + 1];
    }
    cstrides[0] = 1;
    for (int d = 1; d < n; d++) {
        cstrides[d] = cstrides[d - 1] * g->in[d - 1];
    }
}


/*
 * The maximum over one box of plane x, and where it is (row-major and
 * column-major offsets in the plane).  The box walks its outer dims with
 * an odometer and its last dim as the inner loop.
 */
#define MAX_BOX(fname, T, LOWEST)                                           \
    static T fname(const struct bms__window_geom *g,                        \
                   const struct pool_box *b, const int64_t *strides,        \
                   const int64_t *cstrides, const T *x, int64_t *at,        \
                   int64_t *at_col)                                         \
    {                                                                       \
        int n = g->n_spatial;                                               \
        int last = n - 1;                                                   \
        int64_t dl = g->dilations[last];                                    \
        int64_t kidx[BMS__MAX_SPATIAL];                                     \
        T best = LOWEST;                                                    \
                                                                            \
        *at = -1;                                                           \
        *at_col = -1;                                                       \
        if (b->n_valid == 0) {                                              \
            return best;                                                    \
        }                                                                   \
        memcpy(kidx, b->lo, sizeof(int64_t) * (size_t)n);                   \
        do {                                                                \
            int64_t row = 0;                                                \
            int64_t col = 0;                                                \
                                                                            \
            for (int d = 0; d < last; d++) {                                \
                int64_t pos = b->pos0[d] + kidx[d] * g->dilations[d];       \
                                                                            \
                row += pos * strides[d];                                    \
                col += pos * cstrides[d];                                   \
            }                                                               \
            for (int64_t k = b->lo[last]; k < b->hi[last]; k++) {           \
                int64_t pos = b->pos0[last] + k * dl;                       \
                                                                            \
                if (x[row + pos] > best || *at < 0) {                       \
                    best = x[row + pos];                                    \
                    *at = row + pos;                                        \
                    *at_col = col + pos * cstrides[last];                   \
                }                                                           \
            }                                                               \
        } while (odometer_next(kidx, b->lo, b->hi, last));                  \
        return best;                                                        \
    }

/* The sum over one box of plane x. */
#define SUM_BOX(fname, T)                                                   \
    static double fname(const struct bms__window_geom *g,                   \
                        const struct pool_box *b, const int64_t *strides,   \
                        const T *x)                                         \
    {                                                                       \
        int n = g->n_spatial;                                               \
        int last = n - 1;                                                   \
        int64_t dl = g->dilations[last];                                    \
        int64_t kidx[BMS__MAX_SPATIAL];                                     \
        double sum = 0;                                                     \
                                                                            \
        if (b->n_valid == 0) {                                              \
            return 0;                                                       \
        }                                                                   \
        memcpy(kidx, b->lo, sizeof(int64_t) * (size_t)n);                   \
        do {                                                                \
            int64_t row = 0;                                                \
                                                                            \
            for (int d = 0; d < last; d++) {                                \
                row += (b->pos0[d] + kidx[d] * g->dilations[d]) *           \
                       strides[d];                                          \
            }                                                               \
            for (int64_t k = b->lo[last]; k < b->hi[last]; k++) {           \
                sum += x[row + b->pos0[last] + k * dl];                     \
            }                                                               \
        } while (odometer_next(kidx, b->lo, b->hi, last));                  \
        return sum;                                                         \
    }

/* A whole pool over n_planes planes: max (with optional indices) or
 * average, one output position at a time. */
#define POOL_KERNEL(fname, T, LOWEST, IS_FLOAT)                             \
    MAX_BOX(fname##_max_box, T, LOWEST)                                     \
    SUM_BOX(fname##_sum_box, T)                                             \
    static void fname(const struct pool_params *p,                          \
                      const struct bms__window_geom *g, int64_t n_planes,   \
                      const T *x, T *y, int64_t *indices)                   \
    {                                                                       \
        int64_t strides[BMS__MAX_SPATIAL];                                  \
        int64_t cstrides[BMS__MAX_SPATIAL];                                 \
        int64_t in_size = bms__math_span(g->in, 0, g->n_spatial);           \
        int64_t out_size = bms__math_span(g->out, 0, g->n_spatial);         \
                                                                            \
        plane_strides(g, strides, cstrides);                                \
        for (int64_t pl = 0; pl < n_planes; pl++) {                         \
            const T *xp = x + pl * in_size;                                 \
            int64_t oidx[BMS__MAX_SPATIAL] = {0};                           \
                                                                            \
            for (int64_t t = 0; t < out_size; t++) {                        \
                struct pool_box b;                                          \
                int64_t o = pl * out_size + t;                              \
                                                                            \
                pool_box(g, oidx, &b);                                      \
                if (p->is_max || !IS_FLOAT) {                               \
                    int64_t at, at_col;                                     \
                                                                            \
                    y[o] = fname##_max_box(g, &b, strides, cstrides, xp,    \
                                           &at, &at_col);                   \
                    if (indices != NULL) {                                  \
                        at = p->storage_order ? at_col : at;                \
                        indices[o] = at < 0 ? -1 : pl * in_size + at;       \
                    }                                                       \
                } else {                                                    \
                    int64_t count = p->count_include_pad ? b.n_padded       \
                                                         : b.n_valid;       \
                    double sum = fname##_sum_box(g, &b, strides, xp);       \
                                                                            \
                    y[o] = count > 0 ? (T)(sum / (double)count) : (T)0;     \
                }                                                           \
                odometer_next(oidx, NULL, g->out, g->n_spatial);            \
            }                                                               \
        }                                                                   \
    }

/*
 * The same for 2-D input, the common case, with the box bounds worked out
 * per output row and column instead of through the N-D odometer.
 */
#define POOL2D_KERNEL(fname, T, LOWEST, IS_FLOAT)                           \
    static void fname(const struct pool_params *p,                          \
                      const struct bms__window_geom *g, int64_t n_planes,   \
                      const T *x, T *y, int64_t *indices)                   \
    {                                                                       \
        int64_t h_in = g->in[0], w_in = g->in[1];                           \
        int64_t dh = g->dilations[0], dw = g->dilations[1];                 \
        int avg = !p->is_max && IS_FLOAT;                                   \
                                                                            \
        for (int64_t pl = 0; pl < n_planes; pl++) {                         \
            const T *xp = x + pl * h_in * w_in;                             \
                                                                            \
            for (int64_t oh = 0; oh < g->out[0]; oh++) {                    \
                int64_t h0 = oh * g->strides[0] - g->pad_begin[0];          \
                int64_t hlo, hhi, phlo, phhi;                               \
                                                                            \
                clip_offsets(h0, dh, g->kernel[0], h_in, &hlo, &hhi);       \
                clip_offsets(h0 + g->pad_begin[0], dh, g->kernel[0],        \
                             h_in + g->pad_begin[0] + g->pad_end[0],        \
                             &phlo, &phhi);                                 \
                for (int64_t ow = 0; ow < g->out[1]; ow++) {                \
                    int64_t w0 = ow * g->strides[1] - g->pad_begin[1];      \
                    int64_t o = (pl * g->out[0] + oh) * g->out[1] + ow;     \
                    int64_t wlo, whi, pwlo, pwhi;                           \
                    int64_t at = -1;                                        \
                    T best = LOWEST;                                        \
                    double sum = 0;                                         \
                                                                            \
                    clip_offsets(w0, dw, g->kernel[1], w_in, &wlo, &whi);   \
                    for (int64_t kh = hlo; kh < hhi; kh++) {                \
                        const T *row = xp + (h0 + kh * dh) * w_in;          \
                                                                            \
                        for (int64_t kw = wlo; kw < whi; kw++) {            \
                            T v = row[w0 + kw * dw];                        \
                                                                            \
                            sum += (double)v;                               \
                            if (v > best || at < 0) {                       \
                                best = v;                                   \
                                at = (h0 + kh * dh) * w_in + w0 + kw * dw;  \
                            }                                               \
                        }                                                   \
                    }                                                       \
                    if (avg) {                                              \
                        int64_t count = (hhi - hlo) * (whi - wlo);          \
                                                                            \
                        if (p->count_include_pad) {                         \
                            clip_offsets(w0 + g->pad_begin[1], dw,          \
                                         g->kernel[1], w_in +               \
                                         g->pad_begin[1] + g->pad_end[1],   \
                                         &pwlo, &pwhi);                     \
                            count = (phhi - phlo) * (pwhi - pwlo);          \
                        }                                                   \
                        y[o] = count > 0 ? (T)(sum / (double)count) : (T)0; \
                        continue;                                           \
                    }                                                       \
                    y[o] = best;                                            \
                    if (indices != NULL) {                                  \
                        int64_t r = at / w_in, c = at % w_in;               \
                                                                            \
                        at = p->storage_order ? r + c * h_in : at;          \
                        indices[o] = at < 0 ? -1 : pl * h_in * w_in + at;   \
                    }                                                       \
                }                                                           \
            }                                                               \
        }                                                                   \
    }

POOL_KERNEL(pool_f32, float, -FLT_MAX, 1)
POOL_KERNEL(pool_f64, double, -DBL_MAX, 1)
POOL_KERNEL(pool_i8, int8_t, INT8_MIN, 0)
POOL_KERNEL(pool_u8, uint8_t, 0, 0)
POOL2D_KERNEL(pool2d_f32, float, -FLT_MAX, 1)
POOL2D_KERNEL(pool2d_f64, double, -DBL_MAX, 1)
POOL2D_KERNEL(pool2d_i8, int8_t, INT8_MIN, 0)
POOL2D_KERNEL(pool2d_u8, uint8_t, 0, 0)


/* Whether g is the 2x2, stride 2 max pool without padding that image
 * models use between their convolutions, every window inside the input. */
static int is_max_2x2(const struct pool_params *p,
                      const struct bms__window_geom *g)
{
    if (!p->is_max || g->n_spatial != 2) {
        return 0;
    }
    for (int d = 0; d < 2; d++) {
        if (g->kernel[d] != 2 || g->strides[d] != 2 ||
            g->dilations[d] != 1 || g->pad_begin[d] != 0 ||
            g->out[d] * 2 > g->in[d]) {
            return 0;
        }
    }
    return 1;
}


/*
 * That pool on F32, two input rows at a time.  The window's elements are
 * taken in the order the general kernel takes them, with the same
 * comparison, so the answers (NaN included) are the same.
 */
static void max_2x2_f32(const struct bms__window_geom *g, int64_t n_planes,
                        const float *x, float *y)
{
    int64_t h_in = g->in[0], w_in = g->in[1];
    int64_t oh_n = g->out[0], ow_n = g->out[1];

    for (int64_t pl = 0; pl < n_planes; pl++) {
        const float *xp = x + pl * h_in * w_in;
        float *yp = y + pl * oh_n * ow_n;

        for (int64_t oh = 0; oh < oh_n; oh++) {
            const float *r0 = xp + 2 * oh * w_in;
            const float *r1 = r0 + w_in;
            float *yr = yp + oh * ow_n;

            for (int64_t ow = 0; ow < ow_n; ow++) {
                float best = r0[2 * ow];

                best = r0[2 * ow + 1] > best ? r0[2 * ow + 1] : best;
                best = r1[2 * ow] > best ? r1[2 * ow] : best;
                best = r1[2 * ow + 1] > best ? r1[2 * ow + 1] : best;
                yr[ow] = best;
            }
        }
    }
}


/* The oneDNN problem of geometry g, on one thread when it is small. */
static void dnnl_problem(const struct pool_params *p,
                         const struct bms__window_geom *g,
                         const struct bms_tensor *x, int n_threads,
                         struct bms__pool_problem *pr)
{
    int64_t elems = x->dims[0] * x->dims[1] *
                    bms__math_span(g->out, 0, g->n_spatial) *
                    bms__math_span(g->kernel, 0, g->n_spatial);

    memset(pr, 0, sizeof(*pr));
    pr->n_spatial = g->n_spatial;
    pr->n = x->dims[0];
    pr->c = x->dims[1];
    pr->is_max = p->is_max;
    pr->count_include_pad = p->count_include_pad;
    for (int d = 0; d < g->n_spatial; d++) {
        pr->in[d] = g->in[d];
        pr->out[d] = g->out[d];
        pr->kernel[d] = g->kernel[d];
        pr->strides[d] = g->strides[d];
        pr->dilations[d] = g->dilations[d];
        pr->pad_begin[d] = g->pad_begin[d];
        pr->pad_end[d] = g->pad_end[d];
    }
    pr->n_threads = elems < PARALLEL_MIN_ELEMS || n_threads < 1 ? 1
                                                                : n_threads;
}


enum bms_status bms__pool_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    struct pool_params *p = node->params;
    const struct bms_tensor *x = in[0];
    int64_t *indices = NULL;
    struct bms__window_geom g;
    int64_t n_planes = x->dims[0] * x->dims[1];
    int flat;

    if (pool_geom(node, x, &g, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (node->n_outputs > 1 && node->outputs[1] >= 0) {
        indices = out[1].data;
    }
    if (x->dtype == BMS_DTYPE_F32 && indices == NULL && is_max_2x2(p, &g)) {
        /* oneDNN's plain-layout pooling is several times slower here. */
        max_2x2_f32(&g, n_planes, x->data, out[0].data);
        return BMS_OK;
    }
    if (x->dtype == BMS_DTYPE_F32 && indices == NULL && n_planes > 0 &&
        g.n_spatial <= BMS__DNNL_MAX_SPATIAL &&
        bms__math_span(g.out, 0, g.n_spatial) > 0) {
        struct bms__pool_problem pr;
        enum bms_status rc;

        dnnl_problem(p, &g, x, ctx->n_threads, &pr);
        rc = bms__dnnl_pool_run(&p->dnnl, &pr, x->data, out[0].data, ctx);
        if (rc != BMS_ERR_UNSUPPORTED) {
            return rc;
        }
    }
    flat = g.n_spatial == 2;
    switch (x->dtype) {
    case BMS_DTYPE_F32:
        (flat ? pool2d_f32 : pool_f32)(p, &g, n_planes, x->data,
                                       out[0].data, indices);
        break;
    case BMS_DTYPE_F64:
        (flat ? pool2d_f64 : pool_f64)(p, &g, n_planes, x->data,
                                       out[0].data, indices);
        break;
    case BMS_DTYPE_I8:
        (flat ? pool2d_i8 : pool_i8)(p, &g, n_planes, x->data,
                                       out[0].data, indices);
        break;
    case BMS_DTYPE_U8:
        (flat ? pool2d_u8 : pool_u8)(p, &g, n_planes, x->data,
                                       out[0].data, indices);
        break;
    default:
        return BMS_ERR_UNSUPPORTED;
    }
    return BMS_OK;
}


enum bms_status bms__gap_prepare(struct bms__node *node,
                                 struct bms_diag *diag)
{
    return bms__math_check_arity(node, 1, 1, 1, 1, diag);
}


enum bms_status bms__gap_infer(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms_diag *diag)
{
    const struct bms_tensor *x = in[0];

    if (x->dtype != BMS_DTYPE_F32 && x->dtype != BMS_DTYPE_F64) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims < 3) {
        char text[BMS__DIMS_TEXT_SIZE];

        bms__math_dims_text(x->dims, x->n_dims, text);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "GlobalAveragePool: X %s must be "
                            "[N,C,spatial...]", text);
    }
    out->dtype = x->dtype;
    out->n_dims = x->n_dims;
    out->dims[0] = x->dims[0];
    out->dims[1] = x->dims[1];
    for (int d = 2; d < x->n_dims; d++) {
        out->dims[d] = 1;
    }
    return BMS_OK;
}


#define GAP_KERNEL(fname, T)                                                \
    static void fname(int64_t n_planes, int64_t size, const T *x, T *y)    \
    {                                                                       \
        for (int64_t pl = 0; pl < n_planes; pl++) {                         \
            const T *xp = x + pl * size;                                    \
            double sum = 0;                                                 \
                                                                            \
            for (int64_t i = 0; i < size; i++) {                            \
                sum += xp[i];                                               \
            }                                                               \
            y[pl] = size > 0 ? (T)(sum / (double)size) : (T)0;              \
        }                                                                   \
    }

GAP_KERNEL(gap_f32, float)
GAP_KERNEL(gap_f64, double)


enum bms_status bms__gap_run(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out,
                             struct bms__ctx *ctx)
{
    const struct bms_tensor *x = in[0];
    int64_t n_planes = x->dims[0] * x->dims[1];
    int64_t size = bms__math_span(x->dims, 2, x->n_dims);

    (void)node;
    (void)ctx;
    if (x->dtype == BMS_DTYPE_F64) {
        gap_f64(n_planes, size, x->data, out->data);
    } else {
        gap_f32(n_planes, size, x->data, out->data);
    }
    return BMS_OK;
}
