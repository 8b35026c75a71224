/*
 * Integer and quantised linear algebra: MatMulInteger and ConvInteger
 * (UINT8 / INT8 operands less their zero points, summed exactly into
 * INT32), and QLinearMatMul and QLinearConv (the same sums, rescaled by
 * the input scales over the output scale and requantised).
 *
 * Per ONNX, a zero point or scale is one value for the whole tensor or
 * one per row of A, per column of B, per output channel of W.  Conv
 * padding reads the zero point, that is a real value of 0.  Requantising
 * rounds half to even and saturates to the output datatype, as
 * QuantizeLinear does.  The sums run in 64-bit and are stored as INT32,
 * wrapping as the INT32 accumulators of other runtimes do.
 *
 * TODO: the kernels are direct loops, correct for any shape but slow for
 * real quantised networks; oneDNN's int8 matmul and convolution would
 * make them practical.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

#define MAX_SPATIAL (BMS_MAX_DIMS - 2)

enum int_op { OP_MATMUL_INT, OP_CONV_INT, OP_QMATMUL, OP_QCONV };

enum auto_pad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

/* Where each operand sits among the node's inputs; -1 when the op has
 * no such input. */
struct layout {
    int a;                       /* A or x */
    int a_scale;
    int a_zp;
    int b;                       /* B or w */
    int b_scale;
    int b_zp;
    int y_scale;
    int y_zp;
    int bias;
};

static const struct layout layouts[] = {
    [OP_MATMUL_INT] = {0, -1, 2, 1, -1, 3, -1, -1, -1},
    [OP_CONV_INT] = {0, -1, 2, 1, -1, 3, -1, -1, -1},
    [OP_QMATMUL] = {0, 1, 2, 3, 4, 5, 6, 7, -1},
    [OP_QCONV] = {0, 1, 2, 3, 4, 5, 6, 7, 8},
};

struct int_params {
    enum int_op op;
    enum auto_pad auto_pad;
    int64_t group;
};

/* Convolution geometry over the spatial dims. */
struct geom {
    int n_sp;
    int64_t in[MAX_SPATIAL];
    int64_t k[MAX_SPATIAL];
    int64_t stride[MAX_SPATIAL];
    int64_t dilation[MAX_SPATIAL];
    int64_t pad[MAX_SPATIAL];    /* at the start of each dim */
    int64_t out[MAX_SPATIAL];
};

/* The operands of one run, with the per-row / per-column vectors. */
struct quant {
    const struct bms_tensor *a_zp;
    const struct bms_tensor *b_zp;
    const struct bms_tensor *a_scale;
    const struct bms_tensor *b_scale;
    const struct bms_tensor *y_scale;
    const struct bms_tensor *y_zp;
    const struct bms_tensor *bias;
};


static enum int_op op_of(const struct bms__node *node)
{
    if (strcmp(node->op_type, "MatMulInteger") == 0) {
        return OP_MATMUL_INT;
    }
    if (strcmp(node->op_type, "ConvInteger") == 0) {
        return OP_CONV_INT;
    }
    if (strcmp(node->op_type, "QLinearMatMul") == 0) {
        return OP_QMATMUL;
    }
    return OP_QCONV;
}


static int is_conv(enum int_op op)
{
    return op == OP_CONV_INT || op == OP_QCONV;
}


static int is_quant(enum int_op op)
{
    return op == OP_QMATMUL || op == OP_QCONV;
}


static int int8_dtype(enum bms_dtype dt)
{
    return dt == BMS_DTYPE_U8 || dt == BMS_DTYPE_I8;
}


enum bms_status bms__integer_prepare(struct bms__node *node,
                                     struct bms_diag *diag)
{
    static const int min_in[] = {2, 2, 8, 8};
    static const int max_in[] = {4, 4, 8, 9};
    enum int_op op = op_of(node);
    char pad[16] = "NOTSET";
    struct int_params *p;
    enum bms_status rc;

    rc = bms__math_check_arity(node, min_in[op], max_in[op], 1, 1, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->op = op;
    p->group = bms__attr_int(node, "group", 1);
    bms__attr_string(node, "auto_pad", pad, sizeof(pad));
    if (strcmp(pad, "NOTSET") == 0) {
        p->auto_pad = PAD_NOTSET;
    } else if (strcmp(pad, "SAME_UPPER") == 0) {
        p->auto_pad = PAD_SAME_UPPER;
    } else if (strcmp(pad, "SAME_LOWER") == 0) {
        p->auto_pad = PAD_SAME_LOWER;
    } else if (strcmp(pad, "VALID") == 0) {
        p->auto_pad = PAD_VALID;
    } else {
        free(p);
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: auto_pad '%s' unknown", node->op_type, pad);
    }
    if (p->group < 1) {
        int64_t group = p->group;

        free(p);
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: group %lld < 1",
                            node->op_type, (long long)group);
    }
    node->params = p;
    return BMS_OK;
}


/* Input k of the node, NULL when absent or beyond its inputs. */
static const struct bms_tensor *input(const struct bms__node *node,
                                      const struct bms_tensor *const *in,
                                      int k)
{
    return k >= 0 && k < node->n_inputs ? in[k] : NULL;
}


/* A zero point or scale: absent, or numel 1, or 1-D of n values (n < 0:
 * not known yet, accept any). */
static int vector_ok(const struct bms_tensor *t, int64_t n)
{
    int64_t count;

    if (t == NULL) {
        return 1;
    }
    count = bms_tensor_numel(t);
    if (t->n_dims <= 1 && count == 1) {
        return 1;
    }
    return t->n_dims == 1 && (n < 0 || t->dims[0] < 0 || count == n);
}


/* Element i of a zero point or scale vector (the only one when it holds
 * one); 0 for an absent one. */
static double vector_at(const struct bms_tensor *t, int64_t i)
{
    if (t == NULL) {
        return 0;
    }
    return bms__elem_get_f(t->data, t->dtype,
                           bms_tensor_numel(t) == 1 ? 0 : i);
}


static enum bms_status bad_param(const struct bms__node *node,
                                 const char *what, struct bms_diag *diag)
{
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "%s: %s must be one value or 1-D with one per %s",
                        node->op_type, what,
                        is_conv(op_of(node)) ? "output channel" :
                                               "row or column");
}


/* Datatypes of the operands and the shapes of the scale vectors; m and n
 * are the counts a per-row (per-channel) and per-column vector must have,
 * -1 where none applies. */
static enum bms_status check_quant(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   int64_t m, int64_t n,
                                   struct bms_diag *diag)
{
    const struct layout *l = &layouts[op_of(node)];
    const struct bms_tensor *a = in[l->a];
    const struct bms_tensor *b = in[l->b];
    const struct bms_tensor *a_zp = input(node, in, l->a_zp);
    const struct bms_tensor *b_zp = input(node, in, l->b_zp);
    const struct bms_tensor *y_zp = input(node, in, l->y_zp);
    const struct bms_tensor *bias = input(node, in, l->bias);
    const int scales[] = {l->a_scale, l->b_scale, l->y_scale};

    if (!int8_dtype(a->dtype) || !int8_dtype(b->dtype)) {
        return bms__math_bad_dtype(node, int8_dtype(a->dtype) ? b->dtype :
                                   a->dtype, diag);
    }
    if ((a_zp != NULL && a_zp->dtype != a->dtype) ||
        (b_zp != NULL && b_zp->dtype != b->dtype) ||
        (y_zp != NULL && !int8_dtype(y_zp->dtype)) ||
        (bias != NULL && bias->dtype != BMS_DTYPE_I32)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: zero points must match their operand's "
                            "datatype, the bias must be INT32",
                            node->op_type);
    }
    for (int i = 0; i < 3; i++) {
        const struct bms_tensor *s = input(node, in, scales[i]);

        if (s != NULL && s->dtype != BMS_DTYPE_F32) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: scales must be FP32", node->op_type);
        }
    }
    if (!vector_ok(a_zp, m) ||
        !vector_ok(input(node, in, l->a_scale), m)) {
        return bad_param(node, "the zero point and scale of A", diag);
    }
    if (!vector_ok(b_zp, n) ||
        !vector_ok(input(node, in, l->b_scale), n) ||
        !vector_ok(bias, n)) {
        return bad_param(node, "the zero point, scale and bias of B", diag);
    }
    if (!vector_ok(y_zp, 1) ||
        !vector_ok(input(node, in, l->y_scale), 1)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: the output's scale and zero point must be "
                            "one value", node->op_type);
    }
    return BMS_OK;
}


/*
 * MatMul shapes, numpy style: A [..., M, K] and B [..., K, N] (a 1-D A
 * is [1, K] and a 1-D B [K, 1], their 1 dropped from the result), batch
 * dims broadcast.
 */
static enum bms_status matmul_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag)
{
    const struct bms_tensor *a = in[layouts[op_of(node)].a];
    const struct bms_tensor *b = in[layouts[op_of(node)].b];
    struct bms_tensor ba;
    struct bms_tensor bb;
    const struct bms_tensor *batch[2] = {&ba, &bb};
    int64_t m;
    int64_t ka;
    int64_t kb;
    int64_t n;
    enum bms_status rc;

    if (a->n_dims < 1 || b->n_dims < 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: inputs must have rank 1 or more",
                            node->op_type);
    }
    m = a->n_dims >= 2 ? a->dims[a->n_dims - 2] : 1;
    ka = a->dims[a->n_dims - 1];
    kb = b->n_dims >= 2 ? b->dims[b->n_dims - 2] : b->dims[0];
    n = b->n_dims >= 2 ? b->dims[b->n_dims - 1] : 1;
    if (ka >= 0 && kb >= 0 && ka != kb) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: inner dims %lld and %lld differ",
                            node->op_type, (long long)ka, (long long)kb);
    }
    rc = check_quant(node, in, m, n, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    memset(&ba, 0, sizeof(ba));
    memset(&bb, 0, sizeof(bb));
    ba.n_dims = a->n_dims > 2 ? a->n_dims - 2 : 0;
    bb.n_dims = b->n_dims > 2 ? b->n_dims - 2 : 0;
    memcpy(ba.dims, a->dims, sizeof(int64_t) * (size_t)ba.n_dims);
    memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.n_dims);
    rc = bms__bcast_dims(node, batch, 2, out, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (out->n_dims + 2 > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: result rank above %d", node->op_type,
                            BMS_MAX_DIMS);
    }
    if (a->n_dims >= 2) {
        out->dims[out->n_dims++] = m;
    }
    if (b->n_dims >= 2) {
        out->dims[out->n_dims++] = n;
    }
    out->dtype = BMS_DTYPE_I32;
    if (is_quant(op_of(node))) {
        out->dtype = in[layouts[OP_QMATMUL].y_zp]->dtype;
    }
    return BMS_OK;
}


/* Geometry of ConvInteger and QLinearConv from x [N, C, D...], w [M,
 * C / group, K...] and the attributes, as Conv defines it. */
static enum bms_status conv_geom(const struct bms__node *node,
                                 const struct bms_tensor *x,
                                 const struct bms_tensor *w, struct geom *g,
                                 struct bms_diag *diag)
{
    const struct int_params *p = node->params;
    int n_k = 0;
    int n_s = 0;
    int n_d = 0;
    int n_p = 0;
    const int64_t *ks = bms__attr_ints(node, "kernel_shape", &n_k);
    const int64_t *ss = bms__attr_ints(node, "strides", &n_s);
    const int64_t *ds = bms__attr_ints(node, "dilations", &n_d);
    const int64_t *ps = bms__attr_ints(node, "pads", &n_p);

    g->n_sp = x->n_dims - 2;
    if (x->n_dims < 3 || w->n_dims != x->n_dims) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: x must be [N, C, D...] and w of its rank",
                            node->op_type);
    }
    if ((n_k != 0 && n_k != g->n_sp) || (n_s != 0 && n_s != g->n_sp) ||
        (n_d != 0 && n_d != g->n_sp) || (n_p != 0 && n_p != 2 * g->n_sp)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: kernel_shape, strides, dilations or pads "
                            "do not fit %d spatial dims", node->op_type,
                            g->n_sp);
    }
    for (int i = 0; i < g->n_sp; i++) {
        int64_t in = x->dims[2 + i];
        int64_t eff;
        int64_t total;
        int64_t pad_end;

        g->in[i] = in;
        g->k[i] = w->dims[2 + i];
        g->stride[i] = n_s > 0 ? ss[i] : 1;
        g->dilation[i] = n_d > 0 ? ds[i] : 1;
        g->pad[i] = n_p > 0 ? ps[i] : 0;
        pad_end = n_p > 0 ? ps[g->n_sp + i] : 0;
        if ((n_k > 0 && g->k[i] >= 0 && ks[i] != g->k[i]) || g->k[i] < 1 ||
            g->stride[i] < 1 || g->dilation[i] < 1 || g->pad[i] < 0 ||
            pad_end < 0 || g->stride[i] > (1 << 30) ||
            g->dilation[i] > (1 << 30) || g->pad[i] > (1 << 30) ||
            pad_end > (1 << 30)) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: spatial dim %d: kernel, stride, "
                                "dilation or pads out of range",
                                node->op_type, i);
        }
        eff = (g->k[i] - 1) * g->dilation[i] + 1;
        if (in < 0) {
            g->out[i] = -1;
            continue;
        }
        if (p->auto_pad == PAD_SAME_UPPER || p->auto_pad == PAD_SAME_LOWER) {
            g->out[i] = (in + g->stride[i] - 1) / g->stride[i];
            total = (g->out[i] - 1) * g->stride[i] + eff - in;
            total = total > 0 ? total : 0;
            g->pad[i] = p->auto_pad == PAD_SAME_UPPER ? total / 2 :
                                                        total - total / 2;
            continue;
        }
        if (p->auto_pad == PAD_VALID) {
            g->pad[i] = 0;
            pad_end = 0;
        }
        if (in + g->pad[i] + pad_end < eff) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: spatial dim %d: kernel larger than "
                                "the padded input", node->op_type, i);
        }
        g->out[i] = (in + g->pad[i] + pad_end - eff) / g->stride[i] + 1;
    }
    return BMS_OK;
}


static enum bms_status conv_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    const struct int_params *p = node->params;
    const struct layout *l = &layouts[p->op];
    const struct bms_tensor *x = in[l->a];
    const struct bms_tensor *w = in[l->b];
    struct geom g;
    enum bms_status rc;

    rc = conv_geom(node, x, w, &g, diag);
    if (rc == BMS_OK) {
        rc = check_quant(node, in, 1, w->dims[0], diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if ((x->dims[1] >= 0 && w->dims[1] >= 0 &&
         x->dims[1] != w->dims[1] * p->group) ||
        (w->dims[0] >= 0 && w->dims[0] % p->group != 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: channels %lld, w [%lld, %lld, ...] and "
                            "group %lld do not fit", node->op_type,
                            (long long)x->dims[1], (long long)w->dims[0],
                            (long long)w->dims[1], (long long)p->group);
    }
    out->dtype = is_quant(p->op) ? in[l->y_zp]->dtype : BMS_DTYPE_I32;
    out->n_dims = x->n_dims;
    out->dims[0] = x->dims[0];
    out->dims[1] = w->dims[0];
    memcpy(out->dims + 2, g.out, sizeof(int64_t) * (size_t)g.n_sp);
    return BMS_OK;
}


enum bms_status bms__integer_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag)
{
    if (is_conv(op_of(node))) {
        return conv_infer(node, in, out, diag);
    }
    return matmul_infer(node, in, out, diag);
}


static void quant_init(const struct bms__node *node,
                       const struct bms_tensor *const *in, struct quant *q)
{
    const struct layout *l = &layouts[op_of(node)];

    q->a_zp = input(node, in, l->a_zp);
    q->b_zp = input(node, in, l->b_zp);
    q->a_scale = input(node, in, l->a_scale);
    q->b_scale = input(node, in, l->b_scale);
    q->y_scale = input(node, in, l->y_scale);
    q->y_zp = input(node, in, l->y_zp);
    q->bias = input(node, in, l->bias);
}


/* Store the sum for row m (per-row vectors) and column n (per-column or
 * per-channel vectors) at out[at]: as INT32, or requantised. */
static void store(const struct quant *q, int64_t acc, int64_t m, int64_t n,
                  struct bms_tensor *out, int64_t at)
{
    double scale;
    double v;
    double lo;
    double hi;

    if (q->y_scale == NULL) {
        ((int32_t *)out->data)[at] = (int32_t)(uint32_t)(uint64_t)acc;
        return;
    }
    acc += (int64_t)vector_at(q->bias, n);
    scale = (double)(float)(vector_at(q->a_scale, m) *
                            vector_at(q->b_scale, n));
    scale /= vector_at(q->y_scale, 0);
    v = nearbyint((double)acc * scale) + vector_at(q->y_zp, 0);
    lo = out->dtype == BMS_DTYPE_U8 ? 0 : -128;
    hi = out->dtype == BMS_DTYPE_U8 ? 255 : 127;
    v = v != v ? lo : fmin(fmax(v, lo), hi);
    bms__elem_set_f(out->data, out->dtype, at, v);
}


static void matmul_run(const struct bms__node *node,
                       const struct bms_tensor *const *in,
                       struct bms_tensor *out)
{
    const struct layout *l = &layouts[op_of(node)];
    const struct bms_tensor *a = in[l->a];
    const struct bms_tensor *b = in[l->b];
    int64_t m = a->n_dims >= 2 ? a->dims[a->n_dims - 2] : 1;
    int64_t k = a->dims[a->n_dims - 1];
    int64_t n = b->n_dims >= 2 ? b->dims[b->n_dims - 1] : 1;
    int nb = out->n_dims - (a->n_dims >= 2) - (b->n_dims >= 2);
    int64_t n_batch = bms__math_span(out->dims, 0, nb);
    struct bms_tensor ba;
    struct bms_tensor bb;
    const struct bms_tensor *batch[2] = {&ba, &bb};
    struct bms__iter it;
    struct quant q;

    quant_init(node, in, &q);
    memset(&ba, 0, sizeof(ba));
    memset(&bb, 0, sizeof(bb));
    ba.n_dims = a->n_dims > 2 ? a->n_dims - 2 : 0;
    bb.n_dims = b->n_dims > 2 ? b->n_dims - 2 : 0;
    memcpy(ba.dims, a->dims, sizeof(int64_t) * (size_t)ba.n_dims);
    memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.n_dims);
    bms__iter_init(&it, out->dims, nb, batch, 2);
    for (int64_t t = 0; t < n_batch; t++, bms__iter_next(&it)) {
        int64_t a0 = it.off[0] * m * k;
        int64_t b0 = it.off[1] * k * n;

        for (int64_t i = 0; i < m; i++) {
            int64_t za = (int64_t)vector_at(q.a_zp, i);

            for (int64_t j = 0; j < n; j++) {
                int64_t zb = (int64_t)vector_at(q.b_zp, j);
                int64_t acc = 0;

                for (int64_t s = 0; s < k; s++) {
                    int64_t va = bms__elem_get_i(a->data, a->dtype,
                                                 a0 + i * k + s);
                    int64_t vb = bms__elem_get_i(b->data, b->dtype,
                                                 b0 + s * n + j);

                    acc += (va - za) * (vb - zb);
                }
                store(&q, acc, i, j, out, (t * m + i) * n + j);
            }
        }
    }
}


/* The sum for one output position pos of channel oc, image img: over the
 * group's input channels and the kernel window, padding left out (it
 * holds the zero point, contributing 0). */
static int64_t conv_at(const struct geom *g, const struct bms_tensor *x,
                       const struct bms_tensor *w, const struct quant *q,
                       int64_t img, int64_t oc, int64_t c_per_group,
                       int64_t c0, const int64_t *pos)
{
    int64_t k_size = bms__math_span(g->k, 0, g->n_sp);
    int64_t in_size = bms__math_span(g->in, 0, g->n_sp);
    int64_t zx = (int64_t)vector_at(q->a_zp, 0);
    int64_t zw = (int64_t)vector_at(q->b_zp, oc);
    int64_t acc = 0;

    for (int64_t kk = 0; kk < k_size; kk++) {
        int64_t rest = kk;
        int64_t off = 0;
        int inside = 1;

        /* The input position under kernel tap kk, row-major. */
        for (int d = g->n_sp - 1; d >= 0; d--) {
            int64_t kd = rest % g->k[d];
            int64_t at = pos[d] * g->stride[d] - g->pad[d] +
                         kd * g->dilation[d];
            int64_t span = bms__math_span(g->in, d + 1, g->n_sp);

            rest /= g->k[d];
            inside = inside && at >= 0 && at < g->in[d];
            off += at * span;
        }
        if (!inside) {
            continue;
        }
        for (int64_t c = 0; c < c_per_group; c++) {
            int64_t xi = ((img * x->dims[1]) + c0 + c) * in_size + off;
            int64_t wi = (oc * c_per_group + c) * k_size + kk;

            acc += (bms__elem_get_i(x->data, x->dtype, xi) - zx) *
                   (bms__elem_get_i(w->data, w->dtype, wi) - zw);
        }
    }
    return acc;
}


static enum bms_status conv_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out)
{
    const struct int_params *p = node->params;
    const struct layout *l = &layouts[p->op];
    const struct bms_tensor *x = in[l->a];
    const struct bms_tensor *w = in[l->b];
    int64_t n_oc = w->dims[0];
    int64_t c_per_group = w->dims[1];
    int64_t oc_per_group = n_oc / p->group;
    int64_t out_size;
    struct quant q;
    struct geom g;

    if (conv_geom(node, x, w, &g, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    quant_init(node, in, &q);
    out_size = bms__math_span(g.out, 0, g.n_sp);
    for (int64_t img = 0; img < x->dims[0]; img++) {
        for (int64_t oc = 0; oc < n_oc; oc++) {
            int64_t c0 = (oc / oc_per_group) * c_per_group;
            int64_t base = (img * n_oc + oc) * out_size;

            for (int64_t o = 0; o < out_size; o++) {
                int64_t pos[MAX_SPATIAL];
                int64_t rest = o;

                for (int d = g.n_sp - 1; d >= 0; d--) {
                    pos[d] = rest % g.out[d];
                    rest /= g.out[d];
                }
                store(&q, conv_at(&g, x, w, &q, img, oc, c_per_group, c0,
                                  pos), 0, oc, out, base + o);
            }
        }
    }
    return BMS_OK;
}


enum bms_status bms__integer_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms__ctx *ctx)
{
    (void)ctx;
    if (is_conv(op_of(node))) {
        return conv_run(node, in, out);
    }
    matmul_run(node, in, out);
    return BMS_OK;
}
