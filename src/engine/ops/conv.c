/*
 * Conv over F32, for any number of spatial dims (1-D, 2-D, 3-D and up to
 * BMS__MAX_SPATIAL), with group, strides, dilations, pads or auto_pad, the
 * optional bias and an activation the optimiser folded into the node
 * (node->fused).
 *
 * A 2-D Conv over at most DIRECT_MAX_C input channels with stride 1 on
 * one thread (the first layer of an image model) runs a direct kernel of
 * its own, on the plain layout: oneDNN's blocked kernels fill few of
 * their lanes there and need reorders both ways (fashion_cnn at batch 64
 * runs a quarter faster with it).  Run hands the rest to oneDNN's
 * convolution primitive first (ops/dnnl_conv.c, cached in the node's
 * params, which all sessions of a model share); what that refuses (more
 * than 3 spatial dims, a geometry with no implementation) is computed
 * here.  Each (image, group) is then one matrix product: the input
 * patches are laid out as columns (im2col) in scratch memory,
 * [C/group * prod(kernel)] rows by [prod(out)] columns, and W's rows
 * for the group multiply them into the output, which already holds the
 * bias.  A 1x1 kernel with stride 1 and no
 * padding needs no im2col: the input is its own column matrix.  The fused
 * activation goes over each image's planes once all its groups are done.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/ops/act.h"
#include "engine/ops/blas.h"
#include "engine/ops/dnnl.h"
#include "engine/ops/kernels.h"
#include "engine/ops/window.h"

/* Multiply-adds below which a Conv is not worth a thread team. */
#define PARALLEL_MIN_MACS ((int64_t)1 << 22)

struct conv_params {
    struct bms__window w;
    int64_t group;
    /* W came without data to load-time inference: it is a graph input (or
     * computed from one), so its values may change from run to run and
     * its reordered copy must not be cached.  Set once, at load. */
    atomic_int w_varies;
    struct bms__dnnl_conv dnnl;
};

/* Everything one run needs, derived from the inputs' dims. */
struct conv_shape {
    struct bms__window_geom g;
    int64_t n;           /* images */
    int64_t c;           /* input channels */
    int64_t m;           /* output channels */
    int64_t in_size;     /* prod(input spatial dims) */
    int64_t out_size;    /* prod(output spatial dims) */
    int64_t k_size;      /* prod(kernel dims) */
};


/* Whether run can apply act on the way out: every kind bms__act names. */
static int fused_supported(enum bms__act act)
{
    switch (act) {
    case BMS__ACT_NONE:
    case BMS__ACT_RELU:
    case BMS__ACT_LEAKY_RELU:
    case BMS__ACT_CLIP:
    case BMS__ACT_SIGMOID:
    case BMS__ACT_TANH:
        return 1;
    }
    return 0;
}


static void conv_params_fini(void *params)
{
    struct conv_params *p = params;

    bms__dnnl_conv_fini(&p->dnnl);
}


enum bms_status bms__conv_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    struct conv_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, 2, 3, 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    rc = bms__window_parse(node, 0, &p->w, diag);
    p->group = bms__attr_int(node, "group", 1);
    if (rc == BMS_OK && p->w.ceil_mode) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID,
                          "Conv: attribute ceil_mode is not a Conv "
                          "attribute");
    }
    if (rc == BMS_OK && p->group < 1) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID,
                          "Conv: attribute group is %lld, must be 1 or more",
                          (long long)p->group);
    }
    if (rc == BMS_OK && !fused_supported(node->fused.act)) {
        rc = bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                          "Conv: fused activation %d not supported",
                          (int)node->fused.act);
    }
    if (rc == BMS_OK) {
        rc = bms__dnnl_conv_init(&p->dnnl);
    }
    if (rc != BMS_OK) {
        free(p);
        return rc;
    }
    atomic_init(&p->w_varies, 0);
    node->params = p;
    node->params_fini = conv_params_fini;
    return BMS_OK;
}


/* "Conv: X [..] and W [..] <what>", the dims written out. */
static enum bms_status xw_error(const struct bms_tensor *x,
                                const struct bms_tensor *w,
                                const char *what, struct bms_diag *diag)
{
    char x_text[BMS__DIMS_TEXT_SIZE];
    char w_text[BMS__DIMS_TEXT_SIZE];

    bms__math_dims_text(x->dims, x->n_dims, x_text);
    bms__math_dims_text(w->dims, w->n_dims, w_text);
    return bms_diag_set(diag, BMS_ERR_INVALID, "Conv: X %s and W %s %s",
                        x_text, w_text, what);
}


static enum bms_status conv_shape(const struct bms__node *node,
                                  const struct bms_tensor *x,
                                  const struct bms_tensor *w,
                                  const struct bms_tensor *b,
                                  struct conv_shape *s,
                                  struct bms_diag *diag)
{
    const struct conv_params *p = node->params;
    int n_spatial = x->n_dims - 2;
    enum bms_status rc;

    if (x->n_dims < 3 || w->n_dims != x->n_dims) {
        return xw_error(x, w, "must be [N,C,...] and [M,C/group,...] of "
                        "the same rank", diag);
    }
    s->n = x->dims[0];
    s->c = x->dims[1];
    s->m = w->dims[0];
    if ((s->c >= 0 && (s->c % p->group != 0 ||
                       s->c / p->group != w->dims[1])) ||
        s->m % p->group != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Conv: %lld input and %lld output channels "
                            "with W dim 1 of %lld do not fit group %lld",
                            (long long)s->c, (long long)s->m,
                            (long long)w->dims[1], (long long)p->group);
    }
    for (int d = 0; d < n_spatial; d++) {
        if (w->dims[2 + d] < 1 ||
            (p->w.has_kernel && p->w.kernel[d] != w->dims[2 + d])) {
            return xw_error(x, w, "do not match kernel_shape", diag);
        }
    }
    if (b != NULL && (b->n_dims != 1 || b->dims[0] != s->m)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Conv: B must be [%lld]", (long long)s->m);
    }
    rc = bms__window_resolve(node, &p->w, n_spatial, x->dims + 2,
                             w->dims + 2, &s->g, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    s->in_size = bms__math_span(x->dims, 2, x->n_dims);
    s->out_size = bms__math_span(s->g.out, 0, n_spatial);
    s->k_size = bms__math_span(w->dims, 2, w->n_dims);
    return BMS_OK;
}


enum bms_status bms__conv_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    const struct bms_tensor *b = node->n_inputs > 2 ? in[2] : NULL;
    struct conv_shape s;
    enum bms_status rc;

    if (in[0]->dtype != BMS_DTYPE_F32) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    if (in[1]->dtype != BMS_DTYPE_F32 ||
        (b != NULL && b->dtype != BMS_DTYPE_F32)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Conv: W and B must have X's datatype FP32");
    }
    rc = conv_shape(node, in[0], in[1], b, &s, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (in[1]->data == NULL) {
        struct conv_params *p = node->params;

        atomic_store_explicit(&p->w_varies, 1, memory_order_relaxed);
    }
    out->dtype = BMS_DTYPE_F32;
    out->n_dims = in[0]->n_dims;
    out->dims[0] = s.n;
    out->dims[1] = s.m;
    for (int d = 0; d < s.g.n_spatial; d++) {
        out->dims[2 + d] = s.g.out[d];
    }
    return BMS_OK;
}


/* True when the columns would be the input itself. */
static int is_pointwise(const struct bms__window_geom *g)
{
    for (int d = 0; d < g->n_spatial; d++) {
        if (g->kernel[d] != 1 || g->strides[d] != 1 ||
            g->pad_begin[d] != 0 || g->pad_end[d] != 0) {
            return 0;
        }
    }
    return 1;
}


/* col[o] = src[o * s + off] for o in [lo, hi), 0 elsewhere in [0, n). */
static void copy_line(const float *src, int64_t lo, int64_t hi, int64_t s,
                      int64_t off, int64_t n, float *col)
{
    int64_t o = 0;

    lo = lo < n ? lo : n;
    hi = hi > lo ? hi : lo;
    hi = hi < n ? hi : n;
    for (; o < lo; o++) {
        col[o] = 0.0f;
    }
    if (s == 1) {
        for (; o < hi; o++) {
            col[o] = src[o + off];
        }
    } else {
        for (; o < hi; o++) {
            col[o] = src[o * s + off];
        }
    }
    for (; o < n; o++) {
        col[o] = 0.0f;
    }
}


/*
 * One row of the column matrix: kernel offset kidx of channel plane x,
 * over every output position.  The outer output dims pick an input row
 * (or padding); the last dim is the inner loop.
 */
static void im2col_row(const struct bms__window_geom *g, const float *x,
                       const int64_t *kidx, float *col)
{
    int n = g->n_spatial;
    int last = n - 1;
    int64_t n_outer = 1;
    int64_t oidx[BMS__MAX_SPATIAL] = {0};
    int64_t step[BMS__MAX_SPATIAL];    /* elements per index of dim d */
    int64_t s = g->strides[last];
    int64_t off = kidx[last] * g->dilations[last] - g->pad_begin[last];
    int64_t w_in = g->in[last];
    int64_t w_out = g->out[last];
    int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t hi = w_in - off > 0 ? (w_in - off + s - 1) / s : 0;

    for (int d = last - 1; d >= 0; d--) {
        step[d] = d == last - 1 ? w_in : step[d + 1] * g->in[d + 1];
        n_outer *= g->out[d];
    }
    for (int64_t r = 0; r < n_outer; r++, col += w_out) {
        const float *src = x;
        int inside = 1;

        for (int d = 0; d < last; d++) {
            int64_t pos = oidx[d] * g->strides[d] - g->pad_begin[d] +
                          kidx[d] * g->dilations[d];

            inside = inside && pos >= 0 && pos < g->in[d];
            src += inside ? pos * step[d] : 0;
        }
        copy_line(src, inside ? lo : 0, inside ? hi : 0, s, off, w_out,
                  col);
        for (int d = last - 1; d >= 0; d--) {
            if (++oidx[d] < g->out[d]) {
                break;
            }
            oidx[d] = 0;
        }
    }
}


/* The column matrix of n_c channel planes starting at x. */
static void im2col(const struct conv_shape *s, const float *x, int64_t n_c,
                   float *col)
{
    const struct bms__window_geom *g = &s->g;

    for (int64_t c = 0; c < n_c; c++) {
        int64_t kidx[BMS__MAX_SPATIAL] = {0};

        for (int64_t k = 0; k < s->k_size; k++) {
            im2col_row(g, x + c * s->in_size, kidx, col);
            col += s->out_size;
            for (int d = g->n_spatial - 1; d >= 0; d--) {
                if (++kidx[d] < g->kernel[d]) {
                    break;
                }
                kidx[d] = 0;
            }
        }
    }
}


/* Output planes of one image start as the bias (or zero). */
static void fill_bias(const struct conv_shape *s, const float *bias,
                      float *y)
{
    for (int64_t m = 0; m < s->m; m++) {
        float v = bias != NULL ? bias[m] : 0.0f;

        for (int64_t i = 0; i < s->out_size; i++) {
            y[m * s->out_size + i] = v;
        }
    }
}


/* The im2col path: every case, at matrix-product speed. */
static enum bms_status run_im2col(const struct bms__node *node,
                                  const struct conv_shape *s,
                                  const float *x, const float *w,
                                  const struct bms_tensor *b, float *y,
                                  struct bms__ctx *ctx)
{
    const struct conv_params *p = node->params;
    float *col = NULL;
    int64_t cg, mg, rows;
    int pointwise;

    cg = s->c / p->group;
    mg = s->m / p->group;
    rows = cg * s->k_size;
    pointwise = is_pointwise(&s->g);
    if (!pointwise) {
        col = bms__ctx_scratch(ctx, (size_t)(rows * s->out_size) *
                                        sizeof(float));
        if (col == NULL) {
            return BMS_ERR_NOMEM;
        }
    }
    for (int64_t i = 0; i < s->n; i++) {
        float *yi = y + i * s->m * s->out_size;

        fill_bias(s, b != NULL ? b->data : NULL, yi);
        for (int64_t gi = 0; gi < p->group; gi++) {
            const float *xg = x + (i * s->c + gi * cg) * s->in_size;
            enum bms_status rc;

            if (!pointwise) {
                im2col(s, xg, cg, col);
            }
            rc = bms__sgemm(ctx->n_threads, 0, 0, mg, s->out_size, rows,
                            1.0f, w + gi * mg * rows, rows,
                            pointwise ? xg : col, s->out_size, 1.0f,
                            yi + gi * mg * s->out_size, s->out_size);
            if (rc != BMS_OK) {
                return rc;
            }
        }
        bms__act_apply(&node->fused, yi, (size_t)(s->m * s->out_size));
    }
    return BMS_OK;
}


/* Most input channels (per group) of the direct kernel below: first
 * layers over images, where oneDNN's blocked kernels waste their lanes. */
#define DIRECT_MAX_C 4
#define DIRECT_MAX_K 11        /* largest kernel side it takes */
#define VLEN 16                /* outputs per vector: one AVX-512 register */
#define MBLK 4                 /* output channels per pass */

/* clang before 15 emits only the resolver of a target_clones function,
 * not the symbol itself, so the clones are gcc's (and newer clang's). */
#if defined(__x86_64__) && defined(__ELF__) && \
    ((defined(__GNUC__) && !defined(__clang__)) || \
     (defined(__clang__) && __clang_major__ >= 15))
#define DIRECT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", \
                                 "default")))
#else
#define DIRECT_CLONES
#endif

/* gcc keeps a * b + c unfused in ISO C mode; clang fuses it by default. */
#if defined(__GNUC__) && !defined(__clang__)
#define DIRECT_FMA __attribute__((optimize("fp-contract=fast")))
#else
#define DIRECT_FMA
#endif

typedef float vec16 __attribute__((vector_size(VLEN * sizeof(float))));

/* Geometry of the direct kernel's zero-padded input planes. */
struct direct_geom {
    int64_t c, m, kh, kw;
    int64_t oh, ow;             /* output rows and columns */
    int64_t n_chunks;           /* VLEN-wide column chunks per row */
    int64_t ph, pw;             /* padded plane rows and columns */
    int64_t m_pad;              /* m rounded up to MBLK */
};


/* Whether the direct kernel takes the problem: 2-D, one group, few input
 * channels, stride and dilation 1, a small kernel. */
static int direct_fits(const struct conv_params *p,
                       const struct conv_shape *s)
{
    const struct bms__window_geom *g = &s->g;

    if (g->n_spatial != 2 || p->group != 1 || s->c > DIRECT_MAX_C ||
        s->c < 1) {
        return 0;
    }
    for (int d = 0; d < 2; d++) {
        if (g->strides[d] != 1 || g->dilations[d] != 1 ||
            g->kernel[d] > DIRECT_MAX_K || g->out[d] < 1 ||
            g->out[d] > 4096 || g->pad_begin[d] < 0 ||
            g->pad_end[d] < 0 || g->pad_begin[d] > g->kernel[d]) {
            return 0;
        }
    }
    return 1;
}


/* Copy image x's planes into xp with pad_begin zero rows and columns in
 * front and zeros wherever the windows reach past the input. */
static void direct_pad(const struct direct_geom *dg,
                       const struct bms__window_geom *g, const float *x,
                       float *xp)
{
    memset(xp, 0, (size_t)(dg->c * dg->ph * dg->pw) * sizeof(float));
    for (int64_t c = 0; c < dg->c; c++) {
        for (int64_t r = 0; r < g->in[0]; r++) {
            int64_t pr = r + g->pad_begin[0];
            int64_t n = g->in[1];

            if (pr >= dg->ph) {
                break;
            }
            if (g->pad_begin[1] + n > dg->pw) {
                n = dg->pw - g->pad_begin[1];
            }
            memcpy(xp + (c * dg->ph + pr) * dg->pw + g->pad_begin[1],
                   x + (c * g->in[0] + r) * g->in[1],
                   (size_t)n * sizeof(float));
        }
    }
}


/* Output channels [mb, mb + MBLK) of one image: per output row and column
 * chunk, MBLK accumulators over every channel and kernel offset, in
 * registers.  wp holds the weights as [m_pad / MBLK][c][kh][kw][MBLK]. */
DIRECT_CLONES DIRECT_FMA
static void direct_block(const struct direct_geom *dg, const float *xp,
                         const float *wp, const float *bias, int64_t mb,
                         float *y)
{
    int64_t plane = dg->oh * dg->ow;
    float b[MBLK];

    for (int j = 0; j < MBLK; j++) {
        b[j] = bias != NULL && mb + j < dg->m ? bias[mb + j] : 0.0f;
    }
    for (int64_t r = 0; r < dg->oh; r++) {
        for (int64_t q = 0; q < dg->n_chunks; q++) {
            vec16 a0 = b[0] + (vec16){0};
            vec16 a1 = b[1] + (vec16){0};
            vec16 a2 = b[2] + (vec16){0};
            vec16 a3 = b[3] + (vec16){0};
            float out[MBLK][VLEN];
            const float *w = wp;
            int64_t n_out = dg->ow - q * VLEN;

            for (int64_t c = 0; c < dg->c; c++) {
                const float *row = xp + (c * dg->ph + r) * dg->pw +
                                   q * VLEN;

                for (int64_t ky = 0; ky < dg->kh; ky++, row += dg->pw) {
                    for (int64_t kx = 0; kx < dg->kw; kx++, w += MBLK) {
                        vec16 v;

                        memcpy(&v, row + kx, sizeof(v));
                        a0 += w[0] * v;
                        a1 += w[1] * v;
                        a2 += w[2] * v;
                        a3 += w[3] * v;
                    }
                }
            }
            n_out = n_out < VLEN ? n_out : VLEN;
            memcpy(out[0], &a0, sizeof(a0));
            memcpy(out[1], &a1, sizeof(a1));
            memcpy(out[2], &a2, sizeof(a2));
            memcpy(out[3], &a3, sizeof(a3));
            for (int j = 0; j < MBLK && mb + j < dg->m; j++) {
                memcpy(y + (mb + j) * plane + r * dg->ow + q * VLEN,
                       out[j], (size_t)n_out * sizeof(float));
            }
        }
    }
}


/*
 * Direct convolution for few input channels, in bms's plain layout: each
 * image's planes are padded once, then every vector of VLEN outputs of
 * MBLK channels adds up c * kh * kw shifted input vectors.  The scratch
 * holds the repacked weights and one padded image.
 */
static enum bms_status run_direct(const struct bms__node *node,
                                  const struct conv_shape *s,
                                  const float *x, const float *w,
                                  const struct bms_tensor *b, float *y,
                                  struct bms__ctx *ctx)
{
    const struct bms__window_geom *g = &s->g;
    int64_t macs = s->n * s->m * s->c * s->k_size * s->out_size;
    int n_threads = 1;
    struct direct_geom dg;
    size_t wp_n, xp_n;
    float *wp;
    float *xp;

#ifdef _OPENMP
    /* The images of a big enough batch are shared out between threads,
     * each padding into its own plane buffer. */
    if (ctx->n_threads > 1 && macs >= PARALLEL_MIN_MACS) {
        n_threads = ctx->n_threads < s->n ? ctx->n_threads : (int)s->n;
    }
#else
    (void)macs;
#endif
    dg.c = s->c;
    dg.m = s->m;
    dg.kh = g->kernel[0];
    dg.kw = g->kernel[1];
    dg.oh = g->out[0];
    dg.ow = g->out[1];
    dg.n_chunks = (dg.ow + VLEN - 1) / VLEN;
    dg.ph = dg.oh + dg.kh - 1;
    dg.pw = dg.n_chunks * VLEN + dg.kw - 1;
    dg.m_pad = (dg.m + MBLK - 1) / MBLK * MBLK;
    wp_n = (size_t)(dg.m_pad * dg.c * dg.kh * dg.kw);
    xp_n = (size_t)(dg.c * dg.ph * dg.pw);
    wp = bms__ctx_scratch(ctx, (wp_n + xp_n * (size_t)n_threads) *
                               sizeof(float));
    if (wp == NULL) {
        return BMS_ERR_NOMEM;
    }
    xp = wp + wp_n;
    for (int64_t mb = 0; mb < dg.m_pad; mb += MBLK) {
        int64_t taps = dg.c * dg.kh * dg.kw;

        for (int64_t t = 0; t < taps; t++) {
            for (int j = 0; j < MBLK; j++) {
                wp[(mb * taps) + t * MBLK + j] =
                    mb + j < dg.m ? w[(mb + j) * taps + t] : 0.0f;
            }
        }
    }
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static) \
    if (n_threads > 1)
#endif
    for (int64_t i = 0; i < s->n; i++) {
        float *yi = y + i * s->m * s->out_size;
#ifdef _OPENMP
        float *xpt = xp + (size_t)omp_get_thread_num() * xp_n;
#else
        float *xpt = xp;
#endif

        direct_pad(&dg, g, x + i * s->c * s->in_size, xpt);
        for (int64_t mb = 0; mb < dg.m_pad; mb += MBLK) {
            direct_block(&dg, xpt, wp + mb * dg.c * dg.kh * dg.kw,
                         b != NULL ? b->data : NULL, mb, yi);
        }
        bms__act_apply(&node->fused, yi, (size_t)(s->m * s->out_size));
    }
    return BMS_OK;
}


/* The oneDNN problem of shape s, on one thread when it is small. */
static void dnnl_problem(const struct conv_params *p,
                         const struct conv_shape *s, int has_bias,
                         int n_threads, struct bms__conv_problem *pr)
{
    int64_t macs = s->n * s->m * (s->c / p->group) * s->k_size *
                   s->out_size;

    memset(pr, 0, sizeof(*pr));
    pr->n_spatial = s->g.n_spatial;
    pr->n = s->n;
    pr->c = s->c;
    pr->m = s->m;
    pr->group = p->group;
    for (int d = 0; d < s->g.n_spatial; d++) {
        pr->in[d] = s->g.in[d];
        pr->out[d] = s->g.out[d];
        pr->kernel[d] = s->g.kernel[d];
        pr->strides[d] = s->g.strides[d];
        pr->dilations[d] = s->g.dilations[d];
        pr->pad_begin[d] = s->g.pad_begin[d];
        pr->pad_end[d] = s->g.pad_end[d];
    }
    pr->has_bias = has_bias;
    pr->w_const = !atomic_load_explicit(&p->w_varies, memory_order_relaxed);
    pr->n_threads = macs < PARALLEL_MIN_MACS || n_threads < 1 ? 1
                                                               : n_threads;
}


enum bms_status bms__conv_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx)
{
    struct conv_params *p = node->params;
    const struct bms_tensor *b = node->n_inputs > 2 ? in[2] : NULL;
    struct bms__conv_problem pr;
    struct conv_shape s;
    enum bms_status rc;

    if (conv_shape(node, in[0], in[1], b, &s, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    if (s.n == 0 || s.m == 0 || s.out_size == 0) {
        return BMS_OK;
    }
    if (direct_fits(p, &s)) {
        return run_direct(node, &s, in[0]->data, in[1]->data, b,
                          out->data, ctx);
    }
    if (s.g.n_spatial <= BMS__DNNL_MAX_SPATIAL) {
        dnnl_problem(p, &s, b != NULL, ctx->n_threads, &pr);
        rc = bms__dnnl_conv_run(&p->dnnl, &pr, &node->fused, in[0]->data,
                                in[1]->data, b != NULL ? b->data : NULL,
                                out->data, ctx);
        if (rc != BMS_ERR_UNSUPPORTED) {
            return rc;
        }
    }
    return run_im2col(node, &s, in[0]->data, in[1]->data, b, out->data,
                      ctx);
}
