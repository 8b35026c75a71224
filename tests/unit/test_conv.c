/*
 * Unit tests of Conv and the pools on their oneDNN paths (and the loops
 * they fall back to): fused activations, the Winograd algorithm, cached
 * weights against weights that change between runs, several shapes and
 * threads on one node, ceil_mode and count_include_pad.  Every expected
 * value comes from the naive loops in this file, written from the ONNX
 * operator definitions (a direct sum over the window for Conv, a scan of
 * the window for the pools), never from bms's own kernels.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "engine/graph.h"

#define MAX_ATTRS 8
#define MAX_IO 3
#define N_THREADS 2
#define N_THREAD_RUNS 20

/* A node under test with room for its index arrays and attributes. */
struct tnode {
    struct bms__node node;
    int inputs[MAX_IO];
    int outputs[MAX_IO];
    struct bms__attr attrs[MAX_ATTRS];
};

/* One 2-D convolution, NCHW, as the naive reference sees it. */
struct geom2d {
    int n, c, m, group;
    int h, w, kh, kw;
    int stride, pad, dil;
};


static void tnode_init(struct tnode *t, const char *op_type, int n_inputs)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < MAX_IO; i++) {
        t->inputs[i] = i;
        t->outputs[i] = MAX_IO + i;
    }
    t->node.name = "under_test";
    t->node.op_type = op_type;
    t->node.op = bms__op_find(op_type);
    assert_non_null(t->node.op);
    t->node.opset = 13;
    t->node.n_inputs = n_inputs;
    t->node.inputs = t->inputs;
    t->node.n_outputs = 1;
    t->node.outputs = t->outputs;
    t->node.attrs = t->attrs;
}


static void attr_ints(struct tnode *t, const char *name, const int64_t *v,
                      int n)
{
    struct bms__attr *a = &t->attrs[t->node.n_attrs++];

    assert_true(t->node.n_attrs <= MAX_ATTRS);
    memset(a, 0, sizeof(*a));
    a->name = name;
    a->type = BMS__ATTR_INTS;
    a->ints = v;
    a->n = n;
}


static void attr_int(struct tnode *t, const char *name, int64_t v)
{
    struct bms__attr *a = &t->attrs[t->node.n_attrs++];

    assert_true(t->node.n_attrs <= MAX_ATTRS);
    memset(a, 0, sizeof(*a));
    a->name = name;
    a->type = BMS__ATTR_INT;
    a->i = v;
}


/* The window attributes of g on a Conv or pool node. */
static void attr_geom(struct tnode *t, const struct geom2d *g,
                      int64_t *store)
{
    store[0] = store[1] = g->stride;
    store[2] = store[3] = store[4] = store[5] = g->pad;
    store[6] = store[7] = g->dil;
    store[8] = g->kh;
    store[9] = g->kw;
    attr_ints(t, "strides", store, 2);
    attr_ints(t, "pads", store + 2, 4);
    attr_ints(t, "dilations", store + 6, 2);
    attr_ints(t, "kernel_shape", store + 8, 2);
}


static struct bms_tensor tensor(void *data, int n_dims,
                                const int64_t *dims)
{
    struct bms_tensor t;

    memset(&t, 0, sizeof(t));
    t.dtype = BMS_DTYPE_F32;
    t.n_dims = n_dims;
    memcpy(t.dims, dims, sizeof(int64_t) * (size_t)n_dims);
    t.data = data;
    return t;
}


/* Deterministic values in [-1, 1), different for each seed. */
static void fill(float *v, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1u;

    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        v[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}


static int out_dim(int in, int k, int stride, int pad, int dil)
{
    return (in + 2 * pad - ((k - 1) * dil + 1)) / stride + 1;
}


/* ONNX Conv by its definition: a sum over each window, in double. */
static void naive_conv(const struct geom2d *g, const float *x,
                       const float *w, const float *b, float *y)
{
    int oh = out_dim(g->h, g->kh, g->stride, g->pad, g->dil);
    int ow = out_dim(g->w, g->kw, g->stride, g->pad, g->dil);
    int cg = g->c / g->group, mg = g->m / g->group;

    for (int n = 0; n < g->n; n++) {
        for (int m = 0; m < g->m; m++) {
            for (int i = 0; i < oh * ow; i++) {
                int r = i / ow, q = i % ow;
                double sum = b != NULL ? b[m] : 0.0;

                for (int c = 0; c < cg; c++) {
                    int ci = (m / mg) * cg + c;

                    for (int kr = 0; kr < g->kh; kr++) {
                        for (int kq = 0; kq < g->kw; kq++) {
                            int yy = r * g->stride - g->pad + kr * g->dil;
                            int xx = q * g->stride - g->pad + kq * g->dil;

                            if (yy < 0 || yy >= g->h || xx < 0 ||
                                xx >= g->w) {
                                continue;
                            }
                            sum += (double)x[((n * g->c + ci) * g->h + yy) *
                                             g->w + xx] *
                                   w[((m * cg + c) * g->kh + kr) * g->kw +
                                     kq];
                        }
                    }
                }
                y[(n * g->m + m) * oh * ow + i] = (float)sum;
            }
        }
    }
}


/* The ONNX operator each fused activation stands for. */
static float activate(const struct bms__fused *f, float v)
{
    switch (f->act) {
    case BMS__ACT_NONE:
        return v;
    case BMS__ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case BMS__ACT_LEAKY_RELU:
        return v >= 0.0f ? v : f->alpha * v;
    case BMS__ACT_CLIP:
        return fminf(fmaxf(v, f->alpha), f->beta);
    case BMS__ACT_SIGMOID:
        return (float)(1.0 / (1.0 + exp(-(double)v)));
    case BMS__ACT_TANH:
        return (float)tanh((double)v);
    }
    return v;
}


static void assert_close(const float *got, const float *want, size_t n,
                         float tol)
{
    for (size_t i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > tol * (1.0f + fabsf(want[i]))) {
            fail_msg("element %zu: got %g, want %g", i, (double)got[i],
                     (double)want[i]);
        }
    }
}


/* A Conv node for g with W and B given; prepare and load-style infer
 * (w_known 0 leaves W without data, as a graph input is at load). */
struct conv_case {
    struct tnode t;
    struct geom2d g;
    int64_t attrs[10];
    int64_t xd[4], wd[4], bd[1], yd[4];
    float *x, *w, *b, *y, *want;
    size_t x_n, w_n, y_n;
};


static void conv_case_init(struct conv_case *cc, const struct geom2d *g,
                           const struct bms__fused *fused, int w_known)
{
    struct bms_tensor in[3], out[1];
    const struct bms_tensor *inp[3] = {&in[0], &in[1], &in[2]};
    int oh = out_dim(g->h, g->kh, g->stride, g->pad, g->dil);
    int ow = out_dim(g->w, g->kw, g->stride, g->pad, g->dil);

    memset(cc, 0, sizeof(*cc));
    cc->g = *g;
    cc->x_n = (size_t)g->n * g->c * g->h * g->w;
    cc->w_n = (size_t)g->m * (g->c / g->group) * g->kh * g->kw;
    cc->y_n = (size_t)g->n * g->m * oh * ow;
    cc->x = malloc(cc->x_n * sizeof(float));
    cc->w = malloc(cc->w_n * sizeof(float));
    cc->b = malloc((size_t)g->m * sizeof(float));
    cc->y = malloc(cc->y_n * sizeof(float));
    cc->want = malloc(cc->y_n * sizeof(float));
    assert_true(cc->x && cc->w && cc->b && cc->y && cc->want);
    fill(cc->x, cc->x_n, 1);
    fill(cc->w, cc->w_n, 2);
    fill(cc->b, (size_t)g->m, 3);
    tnode_init(&cc->t, "Conv", 3);
    attr_geom(&cc->t, g, cc->attrs);
    attr_int(&cc->t, "group", g->group);
    if (fused != NULL) {
        cc->t.node.fused = *fused;
    }
    assert_int_equal(cc->t.node.op->prepare(&cc->t.node, NULL), BMS_OK);
    cc->xd[0] = g->n, cc->xd[1] = g->c, cc->xd[2] = g->h, cc->xd[3] = g->w;
    cc->wd[0] = g->m, cc->wd[1] = g->c / g->group;
    cc->wd[2] = g->kh, cc->wd[3] = g->kw;
    cc->bd[0] = g->m;
    cc->yd[0] = g->n, cc->yd[1] = g->m, cc->yd[2] = oh, cc->yd[3] = ow;
    in[0] = tensor(NULL, 4, cc->xd);
    in[1] = tensor(w_known ? cc->w : NULL, 4, cc->wd);
    in[2] = tensor(cc->b, 1, cc->bd);
    memset(out, 0, sizeof(out));
    assert_int_equal(cc->t.node.op->infer(&cc->t.node, inp, out, NULL),
                     BMS_OK);
    assert_int_equal(out[0].n_dims, 4);
    assert_int_equal(out[0].dims[2], oh);
    assert_int_equal(out[0].dims[3], ow);
}


/* Run the node on cc's buffers with n_threads; returns run's status. */
static enum bms_status conv_case_run(struct conv_case *cc, float *y,
                                     int n_threads)
{
    struct bms_tensor in[3], out[1];
    const struct bms_tensor *inp[3] = {&in[0], &in[1], &in[2]};
    struct bms__ctx ctx = {NULL, 0, n_threads};
    enum bms_status rc;

    in[0] = tensor(cc->x, 4, cc->xd);
    in[1] = tensor(cc->w, 4, cc->wd);
    in[2] = tensor(cc->b, 1, cc->bd);
    out[0] = tensor(y, 4, cc->yd);
    rc = cc->t.node.op->run(&cc->t.node, inp, out, &ctx);
    bms__ctx_fini(&ctx);
    return rc;
}


/* The reference output of cc, activation included. */
static void conv_case_want(struct conv_case *cc)
{
    naive_conv(&cc->g, cc->x, cc->w, cc->b, cc->want);
    for (size_t i = 0; i < cc->y_n; i++) {
        cc->want[i] = activate(&cc->t.node.fused, cc->want[i]);
    }
}


static void conv_case_fini(struct conv_case *cc)
{
    bms__node_params_free(&cc->t.node);
    assert_null(cc->t.node.params);
    free(cc->x);
    free(cc->w);
    free(cc->b);
    free(cc->y);
    free(cc->want);
}


static void conv_fused_relu_applied_after_bias(void **state)
{
    const struct geom2d g = {1, 2, 3, 1, 5, 5, 3, 3, 1, 1, 1};
    const struct bms__fused relu = {BMS__ACT_RELU, 0.0f, 0.0f};
    struct conv_case cc;

    (void)state;
    conv_case_init(&cc, &g, &relu, 1);
    conv_case_want(&cc);
    assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-5f);
    conv_case_fini(&cc);
}


static void conv_each_fused_activation_matches_its_operator(void **state)
{
    const struct geom2d g = {2, 4, 6, 2, 6, 7, 3, 2, 2, 1, 1};
    const struct bms__fused acts[] = {
        {BMS__ACT_LEAKY_RELU, 0.1f, 0.0f},
        {BMS__ACT_CLIP, -0.5f, 0.7f},
        {BMS__ACT_SIGMOID, 0.0f, 0.0f},
        {BMS__ACT_TANH, 0.0f, 0.0f},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
        struct conv_case cc;

        conv_case_init(&cc, &g, &acts[i], 1);
        conv_case_want(&cc);
        assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
        assert_close(cc.y, cc.want, cc.y_n, 1e-5f);
        conv_case_fini(&cc);
    }
}


static void conv_few_channels_batch_shared_by_threads(void **state)
{
    /* A LeNet first layer at batch 64: 7.5M multiply-adds, so the direct
     * kernel shares the images out between two threads, each with its
     * own padded planes; a fused ReLU too. */
    const struct geom2d g = {64, 1, 6, 1, 28, 28, 5, 5, 1, 2, 1};
    const struct bms__fused relu = {BMS__ACT_RELU, 0.0f, 0.0f};
    struct conv_case cc;

    (void)state;
    conv_case_init(&cc, &g, &relu, 1);
    conv_case_want(&cc);
    assert_int_equal(conv_case_run(&cc, cc.y, 2), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-5f);
    memset(cc.y, 0, cc.y_n * sizeof(float));
    assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-5f);
    conv_case_fini(&cc);
}


static void conv_3x3_wide_channels_matches_direct_sum(void **state)
{
    /* 32 channels, 3x3, stride 1: the shape Winograd takes. */
    const struct geom2d g = {1, 32, 32, 1, 12, 12, 3, 3, 1, 1, 1};
    struct conv_case cc;

    (void)state;
    conv_case_init(&cc, &g, NULL, 1);
    conv_case_want(&cc);
    assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-4f);
    conv_case_fini(&cc);
}


static void conv_weights_from_input_are_reread_every_run(void **state)
{
    const struct geom2d g = {1, 16, 16, 1, 8, 8, 3, 3, 1, 1, 1};
    struct conv_case cc;

    (void)state;
    conv_case_init(&cc, &g, NULL, 0);
    conv_case_want(&cc);
    assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-4f);
    /* New values in the same buffer, as a caller's next request. */
    fill(cc.w, cc.w_n, 9);
    conv_case_want(&cc);
    assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-4f);
    conv_case_fini(&cc);
}


static void conv_serves_two_batch_sizes_from_one_node(void **state)
{
    const struct geom2d g = {3, 8, 16, 1, 9, 9, 3, 3, 2, 1, 1};
    struct conv_case cc;
    size_t one;

    (void)state;
    conv_case_init(&cc, &g, NULL, 1);
    one = cc.y_n / 3;
    conv_case_want(&cc);
    cc.xd[0] = 1;
    cc.yd[0] = 1;
    assert_int_equal(conv_case_run(&cc, cc.y, 1), BMS_OK);
    assert_close(cc.y, cc.want, one, 1e-4f);
    cc.xd[0] = 3;
    cc.yd[0] = 3;
    assert_int_equal(conv_case_run(&cc, cc.y, 2), BMS_OK);
    assert_close(cc.y, cc.want, cc.y_n, 1e-4f);
    conv_case_fini(&cc);
}


struct thread_arg {
    struct conv_case *cc;
    int n_bad;
};


/* Alternate batch 1 and batch 2 runs on the shared node. */
static void *thread_runs(void *arg)
{
    struct thread_arg *ta = arg;
    struct conv_case *cc = ta->cc;
    float *y = malloc(cc->y_n * sizeof(float));
    size_t one = cc->y_n / 2;

    for (int r = 0; r < N_THREAD_RUNS && y != NULL; r++) {
        struct conv_case mine = *cc;
        size_t n = r % 2 ? cc->y_n : one;

        mine.xd[0] = r % 2 ? 2 : 1;
        mine.yd[0] = mine.xd[0];
        if (conv_case_run(&mine, y, 1) != BMS_OK) {
            ta->n_bad++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (fabsf(y[i] - cc->want[i]) >
                1e-4f * (1.0f + fabsf(cc->want[i]))) {
                ta->n_bad++;
                break;
            }
        }
    }
    ta->n_bad += y == NULL;
    free(y);
    return NULL;
}


static void conv_runs_on_threads_share_one_node(void **state)
{
    const struct geom2d g = {2, 16, 16, 1, 10, 10, 3, 3, 1, 1, 1};
    struct thread_arg args[N_THREADS];
    pthread_t th[N_THREADS];
    struct conv_case cc;

    (void)state;
    conv_case_init(&cc, &g, NULL, 1);
    conv_case_want(&cc);
    for (int i = 0; i < N_THREADS; i++) {
        args[i].cc = &cc;
        args[i].n_bad = 0;
        assert_int_equal(pthread_create(&th[i], NULL, thread_runs,
                                        &args[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].n_bad, 0);
    }
    conv_case_fini(&cc);
}


static void conv_4d_spatial_falls_back_and_applies_fused(void **state)
{
    /* Four spatial dims: beyond oneDNN, so the im2col loops run. */
    static const int64_t xd[] = {1, 3, 2, 2, 2, 3};
    static const int64_t wd[] = {2, 3, 1, 1, 1, 1};
    static const int64_t bd[] = {2};
    const struct bms__fused relu = {BMS__ACT_RELU, 0.0f, 0.0f};
    float x[72], w[6], b[2] = {0.25f, -0.5f}, y[48], want[48];
    struct bms_tensor in[3], out[1];
    const struct bms_tensor *inp[3] = {&in[0], &in[1], &in[2]};
    struct bms__ctx ctx = {NULL, 0, 1};
    struct tnode t;

    (void)state;
    fill(x, 72, 4);
    fill(w, 6, 5);
    for (int m = 0; m < 2; m++) {
        for (int p = 0; p < 24; p++) {
            double sum = b[m];

            for (int c = 0; c < 3; c++) {
                sum += (double)w[m * 3 + c] * x[c * 24 + p];
            }
            want[m * 24 + p] = sum > 0.0 ? (float)sum : 0.0f;
        }
    }
    tnode_init(&t, "Conv", 3);
    t.node.fused = relu;
    assert_int_equal(t.node.op->prepare(&t.node, NULL), BMS_OK);
    in[0] = tensor(x, 6, xd);
    in[1] = tensor(w, 6, wd);
    in[2] = tensor(b, 1, bd);
    memset(out, 0, sizeof(out));
    assert_int_equal(t.node.op->infer(&t.node, inp, out, NULL), BMS_OK);
    out[0].data = y;
    assert_int_equal(t.node.op->run(&t.node, inp, out, &ctx), BMS_OK);
    assert_close(y, want, 48, 1e-5f);
    bms__ctx_fini(&ctx);
    bms__node_params_free(&t.node);
}


static void conv_prepare_refuses_unknown_fused_activation(void **state)
{
    struct tnode t;

    (void)state;
    tnode_init(&t, "Conv", 2);
    t.node.fused.act = (enum bms__act)99;
    assert_int_equal(t.node.op->prepare(&t.node, NULL),
                     BMS_ERR_UNSUPPORTED);
    assert_null(t.node.params);
}


/* ONNX MaxPool / AveragePool by their definitions over one plane set:
 * out dims given; count_include_pad counts window positions inside the
 * padded input, otherwise those inside the input. */
static void naive_pool(const struct geom2d *g, int is_max, int include_pad,
                       int oh, int ow, const float *x, float *y)
{
    for (int pl = 0; pl < g->n * g->c; pl++) {
        for (int i = 0; i < oh * ow; i++) {
            int r = i / ow, q = i % ow, count = 0;
            double acc = is_max ? -INFINITY : 0.0;

            for (int kr = 0; kr < g->kh; kr++) {
                for (int kq = 0; kq < g->kw; kq++) {
                    int yy = r * g->stride - g->pad + kr;
                    int xx = q * g->stride - g->pad + kq;
                    int inside = yy >= 0 && yy < g->h && xx >= 0 &&
                                 xx < g->w;
                    int padded = yy < g->h + g->pad && xx < g->w + g->pad;
                    double v;

                    count += include_pad ? padded : inside;
                    if (!inside) {
                        continue;
                    }
                    v = x[(pl * g->h + yy) * g->w + xx];
                    acc = is_max ? fmax(acc, v) : acc + v;
                }
            }
            y[pl * oh * ow + i] = (float)(is_max ? acc : acc / count);
        }
    }
}


/* Run op_type with ceil_mode over g (out oh x ow) against naive_pool. */
static void check_pool(const char *op_type, const struct geom2d *g,
                       int include_pad, int oh, int ow)
{
    int64_t xd[4] = {g->n, g->c, g->h, g->w};
    int64_t store[8];
    size_t x_n = (size_t)g->n * g->c * g->h * g->w;
    size_t y_n = (size_t)g->n * g->c * oh * ow;
    float *x = malloc(x_n * sizeof(float));
    float *y = malloc(y_n * sizeof(float));
    float *want = malloc(y_n * sizeof(float));
    struct bms_tensor in[1], out[1];
    const struct bms_tensor *inp[1] = {&in[0]};
    struct bms__ctx ctx = {NULL, 0, 1};
    struct tnode t;

    assert_true(x != NULL && y != NULL && want != NULL);
    fill(x, x_n, 6);
    naive_pool(g, op_type[0] == 'M', include_pad, oh, ow, x, want);
    store[0] = store[1] = g->stride;
    store[2] = store[3] = store[4] = store[5] = g->pad;
    store[6] = g->kh;
    store[7] = g->kw;
    tnode_init(&t, op_type, 1);
    attr_ints(&t, "strides", store, 2);
    attr_ints(&t, "pads", store + 2, 4);
    attr_ints(&t, "kernel_shape", store + 6, 2);
    attr_int(&t, "ceil_mode", 1);
    if (op_type[0] == 'A') {
        attr_int(&t, "count_include_pad", include_pad);
    }
    assert_int_equal(t.node.op->prepare(&t.node, NULL), BMS_OK);
    in[0] = tensor(x, 4, xd);
    memset(out, 0, sizeof(out));
    assert_int_equal(t.node.op->infer(&t.node, inp, out, NULL), BMS_OK);
    assert_int_equal(out[0].dims[2], oh);
    assert_int_equal(out[0].dims[3], ow);
    out[0].data = y;
    assert_int_equal(t.node.op->run(&t.node, inp, out, &ctx), BMS_OK);
    assert_close(y, want, y_n, 1e-5f);
    bms__ctx_fini(&ctx);
    bms__node_params_free(&t.node);
    free(want);
    free(y);
    free(x);
}


static void maxpool_ceil_mode_adds_partial_window(void **state)
{
    /* 8 wide, kernel 3, stride 2: floor gives 3, ceil 4 outputs. */
    const struct geom2d g = {2, 3, 1, 1, 8, 8, 3, 3, 2, 0, 1};

    (void)state;
    check_pool("MaxPool", &g, 0, 4, 4);
}


static void maxpool_2x2_stride_2_matches_definition(void **state)
{
    /* The shape LeNet-style models pool with (the fast path), and an odd
     * width whose last ceil_mode window is partial (the general one). */
    const struct geom2d even = {3, 5, 1, 1, 28, 28, 2, 2, 2, 0, 1};
    const struct geom2d odd = {2, 3, 1, 1, 8, 9, 2, 2, 2, 0, 1};

    (void)state;
    check_pool("MaxPool", &even, 0, 14, 14);
    check_pool("MaxPool", &odd, 0, 4, 5);
}


static void avgpool_ceil_mode_excludes_padding_from_count(void **state)
{
    const struct geom2d g = {1, 4, 1, 1, 8, 8, 3, 3, 2, 1, 1};

    (void)state;
    check_pool("AveragePool", &g, 0, 5, 5);
}


static void avgpool_count_include_pad_stops_at_padded_edge(void **state)
{
    /* The last ceil_mode window reaches past the padded input: only the
     * positions inside the padding count. */
    const struct geom2d g = {1, 4, 1, 1, 8, 8, 3, 3, 2, 1, 1};

    (void)state;
    check_pool("AveragePool", &g, 1, 5, 5);
}


int bms_test_conv(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_fused_relu_applied_after_bias),
        cmocka_unit_test(conv_each_fused_activation_matches_its_operator),
        cmocka_unit_test(conv_3x3_wide_channels_matches_direct_sum),
        cmocka_unit_test(conv_few_channels_batch_shared_by_threads),
        cmocka_unit_test(conv_weights_from_input_are_reread_every_run),
        cmocka_unit_test(conv_serves_two_batch_sizes_from_one_node),
        cmocka_unit_test(conv_runs_on_threads_share_one_node),
        cmocka_unit_test(conv_4d_spatial_falls_back_and_applies_fused),
        cmocka_unit_test(conv_prepare_refuses_unknown_fused_activation),
        cmocka_unit_test(maxpool_ceil_mode_adds_partial_window),
        cmocka_unit_test(maxpool_2x2_stride_2_matches_definition),
        cmocka_unit_test(avgpool_ceil_mode_excludes_padding_from_count),
        cmocka_unit_test(avgpool_count_include_pad_stops_at_padded_edge),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
