/*
 * Graph optimisations at load.  Each pass walks the sorted nodes once and
 * marks the nodes it makes redundant as dead; a final compaction drops
 * the dead nodes and the values nothing produces or reads any more, and
 * renumbers what is left.
 *
 * Invariants every pass keeps: each value has one source; the nodes stay
 * topologically sorted (a node that takes over a later node's output
 * still runs before that output's readers); a graph output keeps its name
 * and value, so when a node is removed whose output is a graph output, the
 * node before it writes that value instead (its own output is dropped),
 * and a pass that cannot arrange this leaves the node alone.
 *
 * The transformer passes (GELU, MatMul epilogues, Add + LayerNorm) run
 * before any shape is known, so they fuse only what stays exact for every
 * dims a run may bring: scalars of rank 0, which broadcast without
 * changing a shape; a bias as long as the rows of its weight initializer;
 * a LayerNorm scale of more than one value, which only a row of exactly
 * that length accepts.  The fused kernels check the rest at run time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/optimize.h"

/* Outputs larger than this are computed at run time, not stored. */
#define MAX_FOLD_SIZE ((size_t)64 << 20)   /* bytes */

struct opt {
    struct bms_model *m;
    struct bms_diag *diag;
    unsigned char *dead;         /* per node: removed by a pass */
    unsigned char *is_output;    /* per value: a graph output */
    unsigned char *needed;       /* per value: a graph output needs it */
    int *n_readers;              /* per value: input slots of live nodes */
    int *reader;                 /* per value: the last live node reading */
    int *repl;                   /* per value: the value that replaces it */
    int n_dropped;               /* Identity and Dropout nodes */
    int n_folded;                /* nodes computed at load */
    int n_bn_folded;             /* BatchNormalization into Conv */
    int n_fused;                 /* activations into their producer */
    int n_gelu;                  /* GELU patterns into bms.Gelu */
    int n_matmul;                /* MatMuls that took in their neighbours */
    int n_addnorm;               /* Add + LayerNormalization */
    int n_untransposed;          /* Gemm weights stored transposed */
    int n_removed;               /* nodes no output needs */
    int n_freed;                 /* initializers nobody reads */
    size_t freed_size;           /* bytes */
};

/* Operators whose output is not a function of their inputs. */
static const char *const random_ops[] = {
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
    "Multinomial", "Bernoulli",
};


static int optimize_enabled(void)
{
    const char *s = getenv("BMS_OPTIMIZE");

    return s == NULL || strcmp(s, "0") != 0;
}


static int op_is(const struct bms__node *node, const char *op_type)
{
    return strcmp(node->op_type, op_type) == 0;
}


static int is_const(const struct opt *o, int v)
{
    return v >= 0 && o->m->values[v].kind == BMS__VALUE_CONST;
}


/* Whether v is an F32 initializer of dims [n]. */
static int is_f32_vector(const struct opt *o, int v, int64_t n)
{
    const struct bms_tensor *t;

    if (!is_const(o, v)) {
        return 0;
    }
    t = &o->m->values[v].t;
    return t->dtype == BMS_DTYPE_F32 && t->n_dims == 1 && t->dims[0] == n;
}


/* Count, for every value, the input slots of live nodes that read it. */
static void count_readers(struct opt *o)
{
    const struct bms_model *m = o->m;

    memset(o->n_readers, 0, (size_t)m->n_values * sizeof(int));
    for (int i = 0; i < m->n_nodes; i++) {
        const struct bms__node *node = &m->nodes[i];

        if (o->dead[i]) {
            continue;
        }
        for (int k = 0; k < node->n_inputs; k++) {
            if (node->inputs[k] >= 0) {
                o->n_readers[node->inputs[k]]++;
                o->reader[node->inputs[k]] = i;
            }
        }
    }
}


/* The one live node that reads v, when v is no graph output and only one
 * input slot reads it; -1 otherwise. */
static int only_reader(const struct opt *o, int v)
{
    if (v < 0 || o->is_output[v] || o->n_readers[v] != 1) {
        return -1;
    }
    return o->reader[v];
}


/* Node p writes value z from its output slot j, in place of the value it
 * wrote before, whose only reader (the node that wrote z) is gone. */
static void take_over(struct opt *o, int p, int j, int z)
{
    o->m->nodes[p].outputs[j] = z;
    o->m->values[z].index = p;
}


/* Prepare a node again after a pass changed it. */
static enum bms_status prepare_again(struct bms__node *node,
                                     struct bms_diag *diag)
{
    bms__node_params_free(node);
    if (node->op->prepare == NULL) {
        return BMS_OK;
    }
    return node->op->prepare(node, diag);
}


/* ---- Identity and Dropout --------------------------------------------- */

/* Dropout is the identity unless its mask is used or training_mode may be
 * true (ONNX Dropout-12: the mode is input 2). */
static int dropout_is_identity(const struct opt *o,
                               const struct bms__node *node)
{
    const struct bms_tensor *t;
    int mask = node->n_outputs > 1 ? node->outputs[1] : -1;
    int mode = node->n_inputs > 2 ? node->inputs[2] : -1;

    if (mask >= 0 && (o->n_readers[mask] > 0 || o->is_output[mask])) {
        return 0;
    }
    if (mode < 0) {
        return 1;
    }
    if (!is_const(o, mode)) {
        return 0;
    }
    t = &o->m->values[mode].t;
    return t->dtype == BMS_DTYPE_BOOL && bms_tensor_numel(t) == 1 &&
           *(const unsigned char *)t->data == 0;
}


/* Whether node is Identity or an inference Dropout, well formed (a
 * malformed one stays, so that shape inference reports it). */
static int passthrough(const struct opt *o, const struct bms__node *node)
{
    if (op_is(node, "Identity")) {
        return node->n_inputs == 1 && node->n_outputs == 1;
    }
    return op_is(node, "Dropout") && node->n_inputs >= 1 &&
           node->n_inputs <= 3 && node->n_outputs <= 2 &&
           dropout_is_identity(o, node);
}


/* Remove pass-through node i (y = x): readers of y read x instead; when y
 * is a graph output, the node that wrote x writes y, if x has no other
 * use. */
static void drop_passthrough(struct opt *o, int i)
{
    struct bms_model *m = o->m;
    const struct bms__node *node = &m->nodes[i];
    int x = node->n_inputs > 0 ? node->inputs[0] : -1;
    int y = node->outputs[0];
    int p;

    if (x < 0 || y < 0) {
        return;
    }
    if (!o->is_output[y]) {
        o->repl[y] = x;
        o->n_readers[x] += o->n_readers[y] - 1;
        o->n_readers[y] = 0;
        o->dead[i] = 1;
        o->n_dropped++;
        return;
    }
    if (m->values[x].kind != BMS__VALUE_NODE || o->is_output[x] ||
        o->n_readers[x] != 1) {
        return;
    }
    p = m->values[x].index;
    for (int j = 0; j < m->nodes[p].n_outputs; j++) {
        if (m->nodes[p].outputs[j] == x) {
            take_over(o, p, j, y);
            o->n_readers[x] = 0;
            o->dead[i] = 1;
            o->n_dropped++;
            return;
        }
    }
}


static void drop_passthroughs(struct opt *o)
{
    struct bms_model *m = o->m;

    count_readers(o);
    for (int i = 0; i < m->n_nodes; i++) {
        struct bms__node *node = &m->nodes[i];

        /* Inputs first: an earlier removal may have replaced them. */
        for (int k = 0; k < node->n_inputs; k++) {
            if (node->inputs[k] >= 0) {
                node->inputs[k] = o->repl[node->inputs[k]];
            }
        }
        if (passthrough(o, node)) {
            drop_passthrough(o, i);
        }
    }
}


/* ---- Constant folding ------------------------------------------------- */

/* Whether node i depends on initializers only, computes a function of
 * them and writes no graph output (an output keeps session memory, which
 * the caller may write). */
static int foldable(const struct opt *o, const struct bms__node *node)
{
    /* A node that runs subgraphs is left to run time, whatever it reads
     * (its run does not follow the kernel contract fold_node relies on). */
    if (bms__op_runs_graphs(node->op)) {
        return 0;
    }
    for (size_t r = 0; r < sizeof(random_ops) / sizeof(random_ops[0]);
         r++) {
        if (op_is(node, random_ops[r])) {
            return 0;
        }
    }
    for (int k = 0; k < node->n_inputs; k++) {
        if (node->inputs[k] >= 0 && !is_const(o, node->inputs[k])) {
            return 0;
        }
    }
    for (int j = 0; j < node->n_outputs; j++) {
        if (node->outputs[j] >= 0 && o->is_output[node->outputs[j]]) {
            return 0;
        }
    }
    return 1;
}


/* Infer and allocate node's outputs in out; 0 when the node is better
 * left to run time (an error, or an output over MAX_FOLD_SIZE). */
static int fold_outputs(struct opt *o, const struct bms__node *node,
                        const struct bms_tensor *const *in,
                        struct bms_tensor *out, enum bms_status *rc)
{
    if (node->op->infer(node, in, out, NULL) != BMS_OK) {
        return 0;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        if (!bms__dims_valid(&out[j]) ||
            bms_tensor_size(&out[j]) > MAX_FOLD_SIZE) {
            return 0;
        }
    }
    for (int j = 0; j < node->n_outputs; j++) {
        size_t size = bms_tensor_size(&out[j]);

        out[j].data = bms__pool_alloc(&o->m->pool, size > 0 ? size : 1);
        if (out[j].data == NULL) {
            *rc = bms_diag_set(o->diag, BMS_ERR_NOMEM, "out of memory");
            return 0;
        }
    }
    return 1;
}


/* Run node i once and turn its outputs into initializers.  A node that
 * fails here stays for run time, where its error is reported. */
static enum bms_status fold_node(struct opt *o, int i)
{
    struct bms_model *m = o->m;
    const struct bms__node *node = &m->nodes[i];
    struct bms__ctx ctx = {.n_threads = bms__engine_threads()};
    const struct bms_tensor **in;
    struct bms_tensor *out;
    enum bms_status rc = BMS_OK;
    int ok = 0;

    in = calloc((size_t)node->n_inputs + 1, sizeof(*in));
    out = calloc((size_t)node->n_outputs + 1, sizeof(*out));
    if (in == NULL || out == NULL) {
        rc = bms_diag_set(o->diag, BMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < node->n_inputs; k++) {
        in[k] = node->inputs[k] >= 0 ? &m->values[node->inputs[k]].t : NULL;
    }
    if (!fold_outputs(o, node, in, out, &rc) ||
        node->op->run(node, in, out, &ctx) != BMS_OK) {
        goto out;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        struct bms__value *val;

        if (node->outputs[j] < 0) {
            bms__pool_free(&m->pool, out[j].data);
            continue;
        }
        val = &m->values[node->outputs[j]];
        val->kind = BMS__VALUE_CONST;
        val->index = -1;
        val->t = out[j];
        val->known = 1;
    }
    o->dead[i] = 1;
    o->n_folded++;
    ok = 1;
out:
    for (int j = 0; !ok && out != NULL && j < node->n_outputs; j++) {
        bms__pool_free(&m->pool, out[j].data);
    }
    bms__ctx_fini(&ctx);
    free(out);
    free(in);
    return rc;
}


static enum bms_status fold_constants(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    /* In sorted order, so a folded node's readers may fold in turn. */
    for (int i = 0; i < o->m->n_nodes && rc == BMS_OK; i++) {
        if (!o->dead[i] && foldable(o, &o->m->nodes[i])) {
            rc = fold_node(o, i);
        }
    }
    return rc;
}


/* ---- Conv + BatchNormalization ---------------------------------------- */

/* The BatchNormalization node that alone reads Conv node i's output, when
 * both can fold into one Conv: F32 weights only this Conv reads (and no
 * graph output is), a bias initializer or none, and all four BN
 * parameters initializers of dims [M].  -1 otherwise. */
static int foldable_batchnorm(const struct opt *o, int i)
{
    const struct bms_model *m = o->m;
    const struct bms__node *conv = &m->nodes[i];
    const struct bms__node *bn;
    const struct bms_tensor *w;
    int b = conv->n_inputs > 2 ? conv->inputs[2] : -1;
    int r;

    if (!op_is(conv, "Conv") || conv->fused.act != BMS__ACT_NONE ||
        conv->n_inputs < 2 || only_reader(o, conv->inputs[1]) != i ||
        !is_const(o, conv->inputs[1])) {
        return -1;
    }
    w = &m->values[conv->inputs[1]].t;
    if (w->dtype != BMS_DTYPE_F32 || w->n_dims < 3 || w->dims[0] < 1 ||
        (b >= 0 && !is_f32_vector(o, b, w->dims[0]))) {
        return -1;
    }
    r = only_reader(o, conv->outputs[0]);
    if (r < 0) {
        return -1;
    }
    bn = &m->nodes[r];
    if (!op_is(bn, "BatchNormalization") || bn->n_inputs != 5 ||
        bn->inputs[0] != conv->outputs[0] || bn->outputs[0] < 0) {
        return -1;
    }
    for (int k = 1; k < 5; k++) {
        if (!is_f32_vector(o, bn->inputs[k], w->dims[0])) {
            return -1;
        }
    }
    for (int j = 1; j < bn->n_outputs; j++) {
        if (bn->outputs[j] >= 0) {
            return -1;
        }
    }
    return r;
}


/* The bias the folded Conv node i will add, M floats: the Conv's own
 * bias when nothing else reads it (nor is it a graph output), else a new
 * initializer that takes the place of the Conv's output value (free once
 * BN's output is taken over). */
static float *conv_bias(struct opt *o, int i, int64_t n_out)
{
    struct bms_model *m = o->m;
    struct bms__node *conv = &m->nodes[i];
    int b = conv->n_inputs > 2 ? conv->inputs[2] : -1;
    int y = conv->outputs[0];
    struct bms__value *val = &m->values[y];
    size_t size = (size_t)n_out * sizeof(float);
    float *bias;

    if (only_reader(o, b) == i) {
        return m->values[b].t.data;
    }
    bias = bms__pool_alloc(&m->pool, size);
    if (bias == NULL) {
        return NULL;
    }
    if (conv->n_inputs < 3) {
        int *inputs = bms__pool_alloc(&m->pool, 3 * sizeof(int));

        if (inputs == NULL) {
            bms__pool_free(&m->pool, bias);
            return NULL;
        }
        memcpy(inputs, conv->inputs, 2 * sizeof(int));
        conv->inputs = inputs;
        conv->n_inputs = 3;
    } else {
        memcpy(bias, m->values[b].t.data, size);
    }
    val->kind = BMS__VALUE_CONST;
    val->index = -1;
    val->t = (struct bms_tensor){BMS_DTYPE_F32, 1, {n_out}, bias};
    val->known = 1;
    conv->inputs[2] = y;
    return bias;
}


/* Fold BN node r into Conv node i: with s = scale / sqrt(var + epsilon),
 * W' = W * s per output channel and b' = (b - mean) * s + B (ONNX
 * BatchNormalization, inference form). */
static enum bms_status fold_batchnorm(struct opt *o, int i, int r)
{
    struct bms_model *m = o->m;
    struct bms__node *conv = &m->nodes[i];
    const struct bms__node *bn = &m->nodes[r];
    const struct bms_tensor *w = &m->values[conv->inputs[1]].t;
    const float *scale = m->values[bn->inputs[1]].t.data;
    const float *beta = m->values[bn->inputs[2]].t.data;
    const float *mean = m->values[bn->inputs[3]].t.data;
    const float *var = m->values[bn->inputs[4]].t.data;
    double eps = bms__attr_float(bn, "epsilon", 1e-5f);
    int64_t n_out = w->dims[0];
    int64_t per_out = bms_tensor_numel(w) / n_out;
    float *wd = w->data;
    int z = bn->outputs[0];
    float *bias = conv_bias(o, i, n_out);

    if (bias == NULL) {
        return bms_diag_set(o->diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (int64_t c = 0; c < n_out; c++) {
        double s = scale[c] / sqrt((double)var[c] + eps);

        for (int64_t k = 0; k < per_out; k++) {
            wd[c * per_out + k] = (float)(wd[c * per_out + k] * s);
        }
        bias[c] = (float)(((double)bias[c] - mean[c]) * s + beta[c]);
    }
    take_over(o, i, 0, z);
    o->dead[r] = 1;
    o->n_bn_folded++;
    return prepare_again(conv, o->diag);
}


static enum bms_status fold_batchnorms(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    count_readers(o);
    for (int i = 0; i < o->m->n_nodes && rc == BMS_OK; i++) {
        int r = o->dead[i] ? -1 : foldable_batchnorm(o, i);

        if (r >= 0) {
            rc = fold_batchnorm(o, i, r);
        }
    }
    return rc;
}


/* ---- Gemm weights ----------------------------------------------------- */

/*
 * A Gemm with transB = 1 on an F32 initializer only it reads (PyTorch's
 * Linear layers: W is [out, in]) gets W transposed once here and transB
 * 0: the matrix product then reads B row by row, which oneDNN's sgemm
 * packs faster (about 10% on fashion_mlp's first layer).  The values are
 * moved, not computed, so the outputs are unchanged.
 */
static enum bms_status untranspose_gemm(struct opt *o, int i)
{
    struct bms_model *m = o->m;
    struct bms__node *node = &m->nodes[i];
    struct bms__attr *tb = NULL;
    int b = node->n_inputs > 1 ? node->inputs[1] : -1;
    struct bms_tensor *w;
    int64_t rows, cols;
    float *t;

    for (int k = 0; k < node->n_attrs; k++) {
        if (strcmp(node->attrs[k].name, "transB") == 0) {
            tb = &node->attrs[k];
        }
    }
    if (tb == NULL || tb->type != BMS__ATTR_INT || tb->i == 0 ||
        !is_const(o, b) || only_reader(o, b) != i) {
        return BMS_OK;
    }
    w = &m->values[b].t;
    if (w->dtype != BMS_DTYPE_F32 || w->n_dims != 2 || w->data == NULL) {
        return BMS_OK;
    }
    rows = w->dims[0];
    cols = w->dims[1];
    t = bms__pool_alloc(&m->pool, (size_t)(rows * cols) * sizeof(float));
    if (t == NULL) {
        return bms_diag_set(o->diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            t[c * rows + r] = ((const float *)w->data)[r * cols + c];
        }
    }
    w->data = t;
    w->dims[0] = cols;
    w->dims[1] = rows;
    tb->i = 0;
    o->n_untransposed++;
    return prepare_again(node, o->diag);
}


static enum bms_status untranspose_gemms(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    count_readers(o);
    for (int i = 0; i < o->m->n_nodes && rc == BMS_OK; i++) {
        if (!o->dead[i] && op_is(&o->m->nodes[i], "Gemm")) {
            rc = untranspose_gemm(o, i);
        }
    }
    return rc;
}


/* ---- Activation fusion ------------------------------------------------ */

/* Clip's bounds: attributes before opset 11, optional scalar inputs from
 * then on (ONNX Clip-11), which must be F32 initializers here. */
static int clip_bounds(const struct opt *o, const struct bms__node *node,
                       struct bms__fused *f)
{
    float *bound[2] = {&f->alpha, &f->beta};

    f->alpha = bms__attr_float(node, "min", -INFINITY);
    f->beta = bms__attr_float(node, "max", INFINITY);
    if (node->opset > 0 && node->opset < 11) {
        return 1;
    }
    f->alpha = -INFINITY;
    f->beta = INFINITY;
    for (int k = 1; k < node->n_inputs && k < 3; k++) {
        const struct bms_tensor *t;
        int v = node->inputs[k];

        if (v < 0) {
            continue;
        }
        if (!is_const(o, v)) {
            return 0;
        }
        t = &o->m->values[v].t;
        if (t->dtype != BMS_DTYPE_F32 || bms_tensor_numel(t) != 1) {
            return 0;
        }
        *bound[k - 1] = *(const float *)t->data;
    }
    return 1;
}


/* The fused form of activation node act, when it has one. */
static int fused_form(const struct opt *o, const struct bms__node *act,
                      struct bms__fused *f)
{
    *f = (struct bms__fused){BMS__ACT_NONE, 0.0f, 0.0f};
    if (act->n_outputs != 1 || act->outputs[0] < 0) {
        return 0;
    }
    if (op_is(act, "Relu")) {
        f->act = BMS__ACT_RELU;
    } else if (op_is(act, "LeakyRelu")) {
        f->act = BMS__ACT_LEAKY_RELU;
        f->alpha = bms__attr_float(act, "alpha", 0.01f);
    } else if (op_is(act, "Sigmoid")) {
        f->act = BMS__ACT_SIGMOID;
    } else if (op_is(act, "Tanh")) {
        f->act = BMS__ACT_TANH;
    } else if (op_is(act, "Clip") && clip_bounds(o, act, f)) {
        f->act = BMS__ACT_CLIP;
    }
    return f->act != BMS__ACT_NONE;
}


/* Fuse into producer node i the activation that alone reads its output.
 * The producer's prepare may refuse the activation; the node is then
 * prepared as it was and the activation stays. */
static enum bms_status fuse_into(struct opt *o, int i)
{
    struct bms__node *node = &o->m->nodes[i];
    const struct bms__node *act;
    struct bms_diag local;
    struct bms__fused f;
    int r = only_reader(o, node->outputs[0]);

    if (r < 0) {
        return BMS_OK;
    }
    act = &o->m->nodes[r];
    if (act->inputs[0] != node->outputs[0] || !fused_form(o, act, &f)) {
        return BMS_OK;
    }
    node->fused = f;
    if (prepare_again(node, &local) != BMS_OK) {
        node->fused = (struct bms__fused){BMS__ACT_NONE, 0.0f, 0.0f};
        return prepare_again(node, o->diag);
    }
    take_over(o, i, 0, act->outputs[0]);
    o->dead[r] = 1;
    o->n_fused++;
    return BMS_OK;
}


static enum bms_status fuse_activations(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    count_readers(o);
    for (int i = 0; i < o->m->n_nodes && rc == BMS_OK; i++) {
        const struct bms__node *node = &o->m->nodes[i];

        if (o->dead[i] || node->fused.act != BMS__ACT_NONE ||
            node->outputs[0] < 0) {
            continue;
        }
        if (op_is(node, "Conv") || op_is(node, "Gemm") ||
            op_is(node, "MatMul")) {
            rc = fuse_into(o, i);
        }
    }
    return rc;
}


/* ---- Helpers of the transformer passes -------------------------------- */

/* The live node that writes v; -1 for inputs and initializers. */
static int producer(const struct opt *o, int v)
{
    int p;

    if (v < 0 || o->m->values[v].kind != BMS__VALUE_NODE) {
        return -1;
    }
    p = o->m->values[v].index;
    return o->dead[p] ? -1 : p;
}


/* Whether v is an F32 initializer of rank 0 (so that it broadcasts
 * without changing any shape); its value in *f. */
static int scalar_f32(const struct opt *o, int v, float *f)
{
    const struct bms_tensor *t;

    if (!is_const(o, v)) {
        return 0;
    }
    t = &o->m->values[v].t;
    if (t->dtype != BMS_DTYPE_F32 || t->n_dims != 0) {
        return 0;
    }
    *f = *(const float *)t->data;
    return 1;
}


/* Whether v is an F32 scalar initializer within 1e-6 relative of want. */
static int scalar_near(const struct opt *o, int v, float want)
{
    float f;

    return scalar_f32(o, v, &f) && fabsf(f - want) <= 1e-6f * fabsf(want);
}


/* For a node of op_type with inputs {v, w} in either order and one
 * output: w; -1 otherwise. */
static int other_input(const struct bms__node *node, const char *op_type,
                       int v)
{
    if (v < 0 || !op_is(node, op_type) || node->n_inputs != 2 ||
        node->n_outputs != 1 || node->outputs[0] < 0) {
        return -1;
    }
    if (node->inputs[0] == v && node->inputs[1] != v) {
        return node->inputs[1];
    }
    if (node->inputs[1] == v && node->inputs[0] != v) {
        return node->inputs[0];
    }
    return -1;
}


/* The one live node that reads v, when it is a node of op_type with v as
 * input 0 (and, for binary ops, any input); -1 otherwise. */
static int next_node(const struct opt *o, int v, const char *op_type)
{
    int r = only_reader(o, v);

    if (r < 0 || !op_is(&o->m->nodes[r], op_type) ||
        o->m->nodes[r].n_outputs != 1 || o->m->nodes[r].outputs[0] < 0) {
        return -1;
    }
    return r;
}


/* Turn node i into op_type over inputs[0..n_inputs) and attrs, and
 * prepare it again. */
static enum bms_status become(struct opt *o, int i, const char *op_type,
                              const int *inputs, int n_inputs,
                              struct bms__attr *attrs, int n_attrs)
{
    struct bms__node *node = &o->m->nodes[i];
    int *in = bms__pool_alloc(&o->m->pool,
                              (size_t)(n_inputs + 1) * sizeof(int));

    if (in == NULL) {
        return bms_diag_set(o->diag, BMS_ERR_NOMEM, "out of memory");
    }
    memcpy(in, inputs, (size_t)n_inputs * sizeof(int));
    node->op_type = op_type;
    node->op = bms__op_find(op_type);
    node->inputs = in;
    node->n_inputs = n_inputs;
    node->attrs = attrs;
    node->n_attrs = n_attrs;
    node->fused = (struct bms__fused){BMS__ACT_NONE, 0.0f, 0.0f};
    return prepare_again(node, o->diag);
}


/* ---- GELU ------------------------------------------------------------- */

/* x where node d computes x / sqrt(2) or x * (1 / sqrt(2)); -1 if not. */
static int gelu_scaled_input(const struct opt *o, const struct bms__node *d)
{
    if (d->n_inputs != 2 || d->n_outputs != 1) {
        return -1;
    }
    if (op_is(d, "Div")) {
        return scalar_near(o, d->inputs[1], (float)M_SQRT2) ? d->inputs[0]
                                                           : -1;
    }
    if (!op_is(d, "Mul")) {
        return -1;
    }
    if (scalar_near(o, d->inputs[1], (float)M_SQRT1_2)) {
        return d->inputs[0];
    }
    return scalar_near(o, d->inputs[0], (float)M_SQRT1_2) ? d->inputs[1]
                                                         : -1;
}


/*
 * GELU as exported: d = x / sqrt(2), e = Erf(d), a = e + 1, then either
 * (x * a) * 0.5 or (x * 0.5) * a.  For Erf node e, the last node of the
 * pattern (which keeps its output), with x in *x and the four other nodes
 * in dead[]; -1 when the nodes around e are no such GELU.
 */
static int match_gelu(const struct opt *o, int e, int *x, int *dead)
{
    const struct bms__node *nodes = o->m->nodes;
    int d, a, m1, m2, h, c;

    if (nodes[e].n_inputs != 1 || nodes[e].n_outputs != 1 ||
        only_reader(o, nodes[e].inputs[0]) != e) {
        return -1;
    }
    d = producer(o, nodes[e].inputs[0]);
    *x = d >= 0 ? gelu_scaled_input(o, &nodes[d]) : -1;
    a = next_node(o, nodes[e].outputs[0], "Add");
    if (*x < 0 || a < 0 ||
        !scalar_near(o, other_input(&nodes[a], "Add", nodes[e].outputs[0]),
                     1.0f)) {
        return -1;
    }
    m1 = next_node(o, nodes[a].outputs[0], "Mul");
    c = m1 >= 0 ? other_input(&nodes[m1], "Mul", nodes[a].outputs[0]) : -1;
    if (c < 0) {
        return -1;
    }
    dead[0] = d;
    dead[1] = e;
    dead[2] = a;
    if (c == *x) {
        m2 = next_node(o, nodes[m1].outputs[0], "Mul");
        if (m2 < 0 || !scalar_near(o, other_input(&nodes[m2], "Mul",
                                                  nodes[m1].outputs[0]),
                                   0.5f)) {
            return -1;
        }
        dead[3] = m1;
        return m2;
    }
    h = producer(o, c);
    if (h < 0 || only_reader(o, c) != m1 ||
        !scalar_near(o, other_input(&nodes[h], "Mul", *x), 0.5f)) {
        return -1;
    }
    dead[3] = h;
    return m1;
}


static enum bms_status fuse_gelus(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    count_readers(o);
    for (int i = 0; i < o->m->n_nodes && rc == BMS_OK; i++) {
        int dead[4];
        int x;
        int last;

        if (o->dead[i] || !op_is(&o->m->nodes[i], "Erf")) {
            continue;
        }
        last = match_gelu(o, i, &x, dead);
        if (last < 0) {
            continue;
        }
        for (int k = 0; k < 4; k++) {
            o->dead[dead[k]] = 1;
        }
        rc = become(o, last, "bms.Gelu", &x, 1, NULL, 0);
        o->n_gelu++;
        count_readers(o);
    }
    return rc;
}


/* ---- MatMul with transposes, scale, bias and GELU ---------------------- */

/* What fuses into one MatMul (see bms.MatMul in ops/fused.h). */
struct mm_fusion {
    int inputs[3];
    int n_inputs;
    int n_perm[3];               /* perm_a, perm_b, perm_y; 0: none */
    int64_t perm[3][BMS_MAX_DIMS];
    float alpha;
    int gelu;
    int out;                     /* the value the fused node writes */
    int dead[8];
    int n_dead;
};


/* The perm of Transpose node t when it is a permutation bms.MatMul takes
 * for an operand (which 0, 1) or the product (which 2); 0 otherwise. */
static int fusable_perm(const struct bms__node *t, int which, int64_t *perm)
{
    int seen[BMS_MAX_DIMS] = {0};
    const int64_t *v;
    int n;

    if (t->n_inputs != 1 || t->n_outputs != 1 || t->outputs[0] < 0) {
        return 0;
    }
    v = bms__attr_ints(t, "perm", &n);
    if (v == NULL || n < 2 || n > BMS_MAX_DIMS) {
        return 0;
    }
    for (int d = 0; d < n; d++) {
        if (v[d] < 0 || v[d] >= n || seen[v[d]]) {
            return 0;
        }
        seen[v[d]] = 1;
        perm[d] = v[d];
    }
    if (v[n - 1] != n - 1 && (which == 2 || v[n - 2] != n - 1)) {
        return 0;
    }
    return n;
}


/* Operand k of MatMul node i: read through the Transpose that feeds it
 * when only this MatMul reads that Transpose. */
static void mm_operand(const struct opt *o, int i, int k,
                       struct mm_fusion *f)
{
    int v = o->m->nodes[i].inputs[k];
    int t = producer(o, v);

    f->inputs[k] = v;
    f->n_perm[k] = 0;
    if (t < 0 || !op_is(&o->m->nodes[t], "Transpose") ||
        only_reader(o, v) != i) {
        return;
    }
    f->n_perm[k] = fusable_perm(&o->m->nodes[t], k, f->perm[k]);
    if (f->n_perm[k] > 0) {
        f->inputs[k] = o->m->nodes[t].inputs[0];
        f->dead[f->n_dead++] = t;
    }
}


/* Whether v can be bms.MatMul's bias: a 1-D F32 initializer as long as
 * the rows of B, itself an initializer read as it is, so that the Add
 * broadcasts it along rows and changes no shape. */
static int bias_fits_weights(const struct opt *o, const struct mm_fusion *f,
                             int v)
{
    const struct bms_tensor *w;
    const struct bms_tensor *b;

    if (!is_const(o, v) || !is_const(o, f->inputs[1]) || f->n_perm[1] > 0) {
        return 0;
    }
    w = &o->m->values[f->inputs[1]].t;
    b = &o->m->values[v].t;
    return b->dtype == BMS_DTYPE_F32 && b->n_dims == 1 && w->n_dims >= 2 &&
           b->dims[0] == w->dims[w->n_dims - 1];
}


/* Absorb what follows the product, in the order bms.MatMul applies it:
 * a scalar Div or Mul, an Add of a 1-D F32 initializer, bms.Gelu, a
 * Transpose.  Each is optional; the first that does not fit ends it. */
static void mm_epilogue(const struct opt *o, struct mm_fusion *f)
{
    const struct bms__node *nodes = o->m->nodes;
    float s;
    int r;
    int b;

    r = next_node(o, f->out, "Div");
    if (r >= 0 && nodes[r].inputs[0] == f->out &&
        scalar_f32(o, nodes[r].inputs[1], &s) && s != 0.0f && isfinite(s)) {
        f->alpha = 1.0f / s;
    } else {
        r = next_node(o, f->out, "Mul");
        if (r < 0 || !scalar_f32(o, other_input(&nodes[r], "Mul", f->out),
                                 &s)) {
            r = -1;
        } else {
            f->alpha = s;
        }
    }
    if (r >= 0) {
        f->dead[f->n_dead++] = r;
        f->out = nodes[r].outputs[0];
    }
    r = next_node(o, f->out, "Add");
    b = r >= 0 ? other_input(&nodes[r], "Add", f->out) : -1;
    if (bias_fits_weights(o, f, b)) {
        f->inputs[f->n_inputs++] = b;
        f->dead[f->n_dead++] = r;
        f->out = nodes[r].outputs[0];
    }
    r = next_node(o, f->out, "bms.Gelu");
    if (r >= 0) {
        f->gelu = 1;
        f->dead[f->n_dead++] = r;
        f->out = nodes[r].outputs[0];
    }
    r = next_node(o, f->out, "Transpose");
    if (r >= 0) {
        f->n_perm[2] = fusable_perm(&nodes[r], 2, f->perm[2]);
        if (f->n_perm[2] > 0) {
            f->dead[f->n_dead++] = r;
            f->out = nodes[r].outputs[0];
        }
    }
}


/* The attributes of f for bms.MatMul, from the model's pool; NULL when
 * memory runs out. */
static struct bms__attr *mm_attrs(struct opt *o, const struct mm_fusion *f,
                                  int *n_attrs)
{
    static const char *const names[3] = {"perm_a", "perm_b", "perm_y"};
    struct bms__attr *attrs = bms__pool_alloc(&o->m->pool,
                                              5 * sizeof(*attrs));
    int n = 0;

    if (attrs == NULL) {
        return NULL;
    }
    for (int w = 0; w < 3; w++) {
        size_t size = (size_t)f->n_perm[w] * sizeof(int64_t);
        int64_t *ints;

        if (f->n_perm[w] == 0) {
            continue;
        }
        ints = bms__pool_alloc(&o->m->pool, size);
        if (ints == NULL) {
            return NULL;
        }
        memcpy(ints, f->perm[w], size);
        attrs[n++] = (struct bms__attr){.name = names[w],
                                        .type = BMS__ATTR_INTS,
                                        .ints = ints, .n = f->n_perm[w]};
    }
    attrs[n++] = (struct bms__attr){.name = "alpha", .type = BMS__ATTR_FLOAT,
                                    .f = f->alpha};
    attrs[n++] = (struct bms__attr){.name = "gelu", .type = BMS__ATTR_INT,
                                    .i = f->gelu};
    *n_attrs = n;
    return attrs;
}


static enum bms_status fuse_matmul(struct opt *o, int i)
{
    const struct bms__node *node = &o->m->nodes[i];
    struct mm_fusion f = {.n_inputs = 2, .alpha = 1.0f};
    struct bms__attr *attrs;
    enum bms_status rc;
    int n_attrs = 0;

    if (node->n_inputs != 2 || node->n_outputs != 1 ||
        node->outputs[0] < 0 || node->inputs[0] < 0 ||
        node->inputs[1] < 0 || node->fused.act != BMS__ACT_NONE) {
        return BMS_OK;
    }
    f.out = node->outputs[0];
    mm_operand(o, i, 0, &f);
    mm_operand(o, i, 1, &f);
    mm_epilogue(o, &f);
    if (f.n_dead == 0) {
        return BMS_OK;
    }
    attrs = mm_attrs(o, &f, &n_attrs);
    if (attrs == NULL) {
        return bms_diag_set(o->diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < f.n_dead; k++) {
        o->dead[f.dead[k]] = 1;
    }
    rc = become(o, i, "bms.MatMul", f.inputs, f.n_inputs, attrs, n_attrs);
    if (f.out != o->m->nodes[i].outputs[0]) {
        take_over(o, i, 0, f.out);
    }
    o->n_matmul++;
    return rc;
}


static enum bms_status fuse_matmuls(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    count_readers(o);
    for (int i = 0; i < o->m->n_nodes && rc == BMS_OK; i++) {
        int before = o->n_matmul;

        if (o->dead[i] || !op_is(&o->m->nodes[i], "MatMul")) {
            continue;
        }
        rc = fuse_matmul(o, i);
        if (o->n_matmul != before) {
            count_readers(o);
        }
    }
    return rc;
}


/* ---- Add + LayerNormalization ----------------------------------------- */

/* Whether v is an F32 initializer of dims [n] with n > 1 (a LayerNorm
 * scale or bias that can only match a row of exactly n). */
static int row_initializer(const struct opt *o, int v)
{
    const struct bms_tensor *t;

    if (!is_const(o, v)) {
        return 0;
    }
    t = &o->m->values[v].t;
    return t->dtype == BMS_DTYPE_F32 && t->n_dims == 1 && t->dims[0] > 1;
}


/* LayerNormalization node l over the last axis, with only its first
 * output used, scale and bias of one row, fed by an Add it alone reads:
 * that Add; -1 otherwise. */
static int fusable_add(const struct opt *o, int l)
{
    const struct bms__node *ln = &o->m->nodes[l];
    int a;

    if (ln->n_inputs < 2 || ln->n_inputs > 3 ||
        bms__attr_int(ln, "axis", -1) != -1 ||
        bms__attr_int(ln, "stash_type", 1) != 1 ||
        !row_initializer(o, ln->inputs[1]) ||
        (ln->n_inputs == 3 && ln->inputs[2] >= 0 &&
         !row_initializer(o, ln->inputs[2]))) {
        return -1;
    }
    for (int j = 1; j < ln->n_outputs; j++) {
        if (ln->outputs[j] >= 0) {
            return -1;
        }
    }
    a = producer(o, ln->inputs[0]);
    if (a < 0 || only_reader(o, ln->inputs[0]) != l ||
        !op_is(&o->m->nodes[a], "Add") || o->m->nodes[a].n_inputs != 2 ||
        o->m->nodes[a].inputs[0] < 0 || o->m->nodes[a].inputs[1] < 0) {
        return -1;
    }
    return a;
}


static enum bms_status fuse_add_layernorms(struct opt *o)
{
    enum bms_status rc = BMS_OK;

    count_readers(o);
    for (int l = 0; l < o->m->n_nodes && rc == BMS_OK; l++) {
        struct bms__node *ln = &o->m->nodes[l];
        int inputs[4];
        int n = 3;
        int a;

        if (o->dead[l] || !op_is(ln, "LayerNormalization")) {
            continue;
        }
        a = fusable_add(o, l);
        if (a < 0) {
            continue;
        }
        inputs[0] = o->m->nodes[a].inputs[0];
        inputs[1] = o->m->nodes[a].inputs[1];
        inputs[2] = ln->inputs[1];
        if (ln->n_inputs == 3 && ln->inputs[2] >= 0) {
            inputs[n++] = ln->inputs[2];
        }
        o->dead[a] = 1;
        ln->n_outputs = 1;
        rc = become(o, l, "bms.AddLayerNorm", inputs, n, ln->attrs,
                    ln->n_attrs);
        o->n_addnorm++;
        count_readers(o);
    }
    return rc;
}


/* ---- Dead nodes and unread initializers ------------------------------- */

/* Walk back from the graph outputs: a node lives if a needed value is one
 * of its outputs, and then its inputs are needed. */
static void remove_dead(struct opt *o)
{
    struct bms_model *m = o->m;

    for (int j = 0; j < m->n_outputs; j++) {
        o->needed[m->output_values[j]] = 1;
    }
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const struct bms__node *node = &m->nodes[i];
        int live = 0;

        for (int j = 0; j < node->n_outputs && !o->dead[i]; j++) {
            live |= node->outputs[j] >= 0 && o->needed[node->outputs[j]];
        }
        if (!live) {
            o->n_removed += !o->dead[i];
            o->dead[i] = 1;
            continue;
        }
        for (int k = 0; k < node->n_inputs; k++) {
            if (node->inputs[k] >= 0) {
                o->needed[node->inputs[k]] = 1;
            }
        }
    }
    for (int v = 0; v < m->n_values; v++) {
        struct bms__value *val = &m->values[v];

        if (val->kind == BMS__VALUE_CONST && !o->needed[v]) {
            o->freed_size += bms_tensor_size(&val->t);
            o->n_freed++;
            bms__pool_free(&m->pool, val->t.data);
            val->t.data = NULL;
        }
    }
}


/* Map every value index the model holds through remap; a live node that
 * reads a dropped value is a bug in a pass. */
static enum bms_status renumber(struct opt *o, const int *remap)
{
    struct bms_model *m = o->m;

    m->max_node_inputs = 0;
    m->max_node_outputs = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        struct bms__node *node = &m->nodes[i];

        for (int k = 0; k < node->n_inputs; k++) {
            if (node->inputs[k] >= 0 && remap[node->inputs[k]] < 0) {
                return bms_diag_set(o->diag, BMS_ERR_INTERNAL,
                                    "optimiser dropped an input of node "
                                    "%d (%s)", i, node->op_type);
            }
            node->inputs[k] = node->inputs[k] >= 0 ? remap[node->inputs[k]]
                                                   : -1;
        }
        for (int j = 0; j < node->n_outputs; j++) {
            node->outputs[j] = node->outputs[j] >= 0
                                   ? remap[node->outputs[j]] : -1;
        }
        if (node->n_inputs > m->max_node_inputs) {
            m->max_node_inputs = node->n_inputs;
        }
        if (node->n_outputs > m->max_node_outputs) {
            m->max_node_outputs = node->n_outputs;
        }
    }
    for (int i = 0; i < m->n_inputs; i++) {
        m->input_values[i] = remap[m->input_values[i]];
    }
    for (int j = 0; j < m->n_outputs; j++) {
        m->output_values[j] = remap[m->output_values[j]];
    }
    return BMS_OK;
}


/* Drop dead nodes (and their params) and the values that lost their
 * source or their readers; renumber everything that refers to them. */
static enum bms_status compact(struct opt *o, int *remap)
{
    struct bms_model *m = o->m;
    int n_nodes = 0;
    int n_values = 0;

    for (int v = 0; v < m->n_values; v++) {
        remap[v] = -1;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        struct bms__node *node = &m->nodes[i];

        if (o->dead[i]) {
            bms__node_params_free(node);
            continue;
        }
        for (int j = 0; j < node->n_outputs; j++) {
            if (node->outputs[j] >= 0) {
                remap[node->outputs[j]] = 0;
                m->values[node->outputs[j]].index = n_nodes;
            }
        }
        m->nodes[n_nodes++] = *node;
    }
    m->n_nodes = n_nodes;
    for (int v = 0; v < m->n_values; v++) {
        enum bms__value_kind kind = m->values[v].kind;
        int keep = kind == BMS__VALUE_INPUT ||
                   (kind == BMS__VALUE_CONST && o->needed[v]) ||
                   (kind == BMS__VALUE_NODE && remap[v] == 0);

        remap[v] = keep ? n_values : -1;
        if (keep) {
            m->values[n_values++] = m->values[v];
        }
    }
    m->n_values = n_values;
    return renumber(o, remap);
}


/* ---- The driver ------------------------------------------------------- */

static enum bms_status opt_init(struct opt *o, struct bms_model *m,
                                struct bms_diag *diag)
{
    size_t n_v = (size_t)m->n_values + 1;

    o->m = m;
    o->diag = diag;
    o->dead = calloc((size_t)m->n_nodes + 1, 1);
    o->is_output = calloc(n_v, 1);
    o->needed = calloc(n_v, 1);
    o->n_readers = calloc(n_v, sizeof(int));
    o->reader = calloc(n_v, sizeof(int));
    o->repl = calloc(n_v, sizeof(int));
    if (o->dead == NULL || o->is_output == NULL || o->needed == NULL ||
        o->n_readers == NULL || o->reader == NULL || o->repl == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < m->n_values; v++) {
        o->repl[v] = v;
    }
    for (int j = 0; j < m->n_outputs; j++) {
        o->is_output[m->output_values[j]] = 1;
    }
    return BMS_OK;
}


static void opt_fini(struct opt *o)
{
    free(o->repl);
    free(o->reader);
    free(o->n_readers);
    free(o->needed);
    free(o->is_output);
    free(o->dead);
}


enum bms_status bms__model_optimize(struct bms_model *model,
                                    struct bms_diag *diag)
{
    struct opt o = {0};
    int n_before = model->n_nodes;
    enum bms_status rc;

    if (!optimize_enabled()) {
        bms_log(BMS_LOG_DEBUG, "engine",
                "msg=\"optimiser off\" nodes=%d", n_before);
        return BMS_OK;
    }
    rc = opt_init(&o, model, diag);
    if (rc == BMS_OK) {
        drop_passthroughs(&o);
        rc = fold_constants(&o);
    }
    if (rc == BMS_OK) {
        rc = fold_batchnorms(&o);
    }
    if (rc == BMS_OK) {
        rc = fuse_gelus(&o);
    }
    if (rc == BMS_OK) {
        rc = fuse_matmuls(&o);
    }
    if (rc == BMS_OK) {
        rc = fuse_add_layernorms(&o);
    }
    if (rc == BMS_OK) {
        rc = fuse_activations(&o);
    }
    if (rc == BMS_OK) {
        rc = untranspose_gemms(&o);
    }
    if (rc == BMS_OK) {
        remove_dead(&o);
        /* n_readers is free now: compact reuses it as the value map. */
        rc = compact(&o, o.n_readers);
    }
    if (rc == BMS_OK) {
        bms_log(BMS_LOG_DEBUG, "engine",
                "msg=\"optimised\" nodes_before=%d nodes_after=%d "
                "dropped=%d folded=%d bn_folded=%d fused=%d gelu=%d "
                "matmul_fused=%d add_layernorm=%d untransposed=%d "
                "removed=%d "
                "freed_initializers=%d freed_bytes=%zu", n_before,
                model->n_nodes, o.n_dropped, o.n_folded, o.n_bn_folded,
                o.n_fused, o.n_gelu, o.n_matmul, o.n_addnorm,
                o.n_untransposed, o.n_removed,
                o.n_freed, o.freed_size);
    }
    opt_fini(&o);
    return rc;
}
