/*
 * Load-time shape inference.  The graph is walked twice side by side: once
 * with every dynamic input dim set to 1 and once set to 2.  Each node's
 * infer runs in both passes; nodes whose inputs all carry data and whose
 * outputs are small (the shape arithmetic around Shape, Gather, Concat,
 * Reshape) also run for real, so that shapes computed from shapes are
 * known.  A dim that differs between the passes depends on a dynamic
 * input and becomes -1; one that agrees is fixed.
 *
 * A node whose infer fails in both passes, or whose inputs are the same in
 * both, has an error no batch size could avoid (Gemm weights that do not
 * fit), and refuses the model.  A node that needs data not known at load
 * (BMS_ERR_UNAVAILABLE) or that fails for only one of the guessed sizes
 * leaves its outputs unknown, and the graph's declared shapes stand for
 * them.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"

/* Outputs up to this size are computed at load when their inputs are. */
#define MAX_EVAL_SIZE ((size_t)64 << 10)   /* bytes */

struct pass {
    struct bms_tensor *t;        /* per value */
    unsigned char *known;        /* per value: t's dtype and dims are set */
    void **owned;                /* per value: data this pass allocated */
};

struct infer_state {
    struct bms_model *m;
    struct pass pass[2];
    const struct bms_tensor **in;    /* max_node_inputs pointers */
    struct bms_tensor *out;          /* max_node_outputs */
    struct bms__ctx ctx;
};


static enum bms_status pass_init(struct pass *p, const struct bms_model *m,
                                 int64_t dyn)
{
    size_t n = (size_t)m->n_values + 1;

    p->t = calloc(n, sizeof(*p->t));
    p->known = calloc(n, 1);
    p->owned = calloc(n, sizeof(void *));
    if (p->t == NULL || p->known == NULL || p->owned == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int v = 0; v < m->n_values; v++) {
        const struct bms__value *val = &m->values[v];

        if (val->kind == BMS__VALUE_NODE || !val->known) {
            continue;
        }
        p->t[v] = val->t;
        p->known[v] = 1;
        for (int d = 0; d < p->t[v].n_dims; d++) {
            if (p->t[v].dims[d] < 0) {
                p->t[v].dims[d] = dyn;
            }
        }
    }
    return BMS_OK;
}


static void pass_fini(struct pass *p, int n_values)
{
    for (int v = 0; p->owned != NULL && v < n_values; v++) {
        free(p->owned[v]);
    }
    free(p->owned);
    free(p->known);
    free(p->t);
}


static int same_tensor(const struct bms_tensor *a, const struct bms_tensor *b)
{
    if (a->dtype != b->dtype || a->n_dims != b->n_dims ||
        memcmp(a->dims, b->dims, (size_t)a->n_dims * sizeof(int64_t)) != 0) {
        return 0;
    }
    if ((a->data == NULL) != (b->data == NULL)) {
        return 0;
    }
    return a->data == NULL || a->data == b->data ||
           memcmp(a->data, b->data, bms_tensor_size(a)) == 0;
}


/* Whether every present input is known in both passes; *same is set when
 * they are also identical. */
static int inputs_known(const struct infer_state *st,
                        const struct bms__node *node, int *same)
{
    *same = 1;
    for (int k = 0; k < node->n_inputs; k++) {
        int v = node->inputs[k];

        if (v < 0) {
            continue;
        }
        if (!st->pass[0].known[v] || !st->pass[1].known[v]) {
            return 0;
        }
        if (!same_tensor(&st->pass[0].t[v], &st->pass[1].t[v])) {
            *same = 0;
        }
    }
    return 1;
}


/* Shape reads only its input's dims, so it runs without input data. */
static int can_evaluate(const struct pass *p, const struct bms__node *node)
{
    if (bms__op_runs_graphs(node->op)) {
        return 0;                /* its run allocates its own outputs */
    }
    if (strcmp(node->op_type, "Shape") == 0) {
        return 1;
    }
    for (int k = 0; k < node->n_inputs; k++) {
        int v = node->inputs[k];

        if (v >= 0 && p->t[v].data == NULL) {
            return 0;
        }
    }
    return 1;
}


/* Run the node for real when it is cheap; a failure here only means the
 * outputs stay without data. */
static void evaluate(struct infer_state *st, const struct bms__node *node)
{
    for (int j = 0; j < node->n_outputs; j++) {
        if (node->outputs[j] >= 0 &&
            bms_tensor_size(&st->out[j]) > MAX_EVAL_SIZE) {
            return;
        }
    }
    for (int j = 0; j < node->n_outputs; j++) {
        size_t size = bms_tensor_size(&st->out[j]);

        st->out[j].data = aligned_alloc(64, (size + 64) & ~(size_t)63);
        if (st->out[j].data == NULL) {
            goto fail;
        }
    }
    if (node->op->run(node, st->in, st->out, &st->ctx) == BMS_OK) {
        return;
    }
fail:
    for (int j = 0; j < node->n_outputs; j++) {
        free(st->out[j].data);
        st->out[j].data = NULL;
    }
}


/* Infer (and maybe evaluate) one node in pass p; outputs go to p. */
static enum bms_status infer_in_pass(struct infer_state *st, struct pass *p,
                                     const struct bms__node *node,
                                     struct bms_diag *diag)
{
    enum bms_status rc;

    for (int k = 0; k < node->n_inputs; k++) {
        int v = node->inputs[k];

        st->in[k] = v >= 0 ? &p->t[v] : NULL;
    }
    memset(st->out, 0, (size_t)node->n_outputs * sizeof(*st->out));
    rc = node->op->infer(node, st->in, st->out, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        if (!bms__dims_valid(&st->out[j])) {
            return bms_diag_set(diag, BMS_ERR_LIMIT,
                                "output %d: more than 2^40 elements", j);
        }
    }
    if (can_evaluate(p, node)) {
        evaluate(st, node);
    }
    for (int j = 0; j < node->n_outputs; j++) {
        int v = node->outputs[j];

        if (v < 0) {
            free(st->out[j].data);
            continue;
        }
        p->t[v] = st->out[j];
        p->owned[v] = st->out[j].data;
        p->known[v] = 1;
    }
    return BMS_OK;
}


static enum bms_status infer_node(struct infer_state *st,
                                  const struct bms__node *node,
                                  struct bms_diag *diag)
{
    struct bms_diag local = {{0}};
    struct bms_diag local1 = {{0}};
    enum bms_status rc0;
    enum bms_status rc1;
    char label[160];
    int one_ok;
    int same;

    if (!inputs_known(st, node, &same)) {
        return BMS_OK;
    }
    rc0 = infer_in_pass(st, &st->pass[0], node, &local);
    rc1 = infer_in_pass(st, &st->pass[1], node, &local1);
    if (rc0 == BMS_OK && rc1 == BMS_OK) {
        return BMS_OK;
    }
    one_ok = rc0 == BMS_OK || rc1 == BMS_OK;
    if (rc0 == BMS_OK) {
        rc0 = rc1;
        local = local1;
    }
    /* A data-dependent shape, or an error that only one of the guessed
     * batch sizes causes, leaves the outputs unknown; an error under both
     * guesses (or with inputs that do not depend on them) is the
     * model's. */
    if (rc0 == BMS_ERR_UNAVAILABLE || rc1 == BMS_ERR_UNAVAILABLE ||
        (!same && one_ok &&
         rc0 != BMS_ERR_UNSUPPORTED && rc0 != BMS_ERR_NOMEM)) {
        for (int j = 0; j < node->n_outputs; j++) {
            if (node->outputs[j] >= 0) {
                st->pass[0].known[node->outputs[j]] = 0;
                st->pass[1].known[node->outputs[j]] = 0;
            }
        }
        return BMS_OK;
    }
    if (diag != NULL) {
        *diag = local;
    }
    bms_diag_prefix(diag, "%s",
                    bms__node_label(st->m, node, label, sizeof(label)));
    return rc0;
}


/* Combine the two passes into each value's infer_* fields. */
static void record_values(struct infer_state *st)
{
    struct bms_model *m = st->m;

    for (int v = 0; v < m->n_values; v++) {
        const struct bms_tensor *a = &st->pass[0].t[v];
        const struct bms_tensor *b = &st->pass[1].t[v];
        struct bms__value *val = &m->values[v];

        if (!st->pass[0].known[v] || !st->pass[1].known[v] ||
            a->dtype != b->dtype || a->n_dims != b->n_dims) {
            continue;
        }
        val->infer_dtype = a->dtype;
        val->infer_n_dims = a->n_dims;
        for (int d = 0; d < a->n_dims; d++) {
            val->infer_dims[d] = a->dims[d] == b->dims[d] ? a->dims[d] : -1;
        }
    }
}


/* Keep what the graph declares unless inference knows more: a declared
 * fixed dim stays, a declared unknown dim takes the inferred one. */
static void merge_outputs(struct bms_model *m)
{
    for (int i = 0; i < m->n_outputs; i++) {
        struct bms_value_info *info = &m->outputs[i];
        const struct bms__value *val = &m->values[m->output_values[i]];

        if (val->infer_n_dims < 0) {
            continue;
        }
        if (info->dtype == BMS_DTYPE_UNDEFINED) {
            info->dtype = val->infer_dtype;
        }
        if (info->n_dims != val->infer_n_dims) {
            info->n_dims = val->infer_n_dims;
            memcpy(info->dims, val->infer_dims, sizeof(info->dims));
            continue;
        }
        for (int d = 0; d < info->n_dims; d++) {
            if (info->dims[d] < 0) {
                info->dims[d] = val->infer_dims[d];
            }
        }
    }
}


enum bms_status bms__model_infer_shapes(struct bms_model *model,
                                        struct bms_diag *diag)
{
    struct infer_state st = {0};
    enum bms_status rc;

    st.m = model;
    st.ctx.n_threads = 1;
    st.in = calloc((size_t)model->max_node_inputs + 1, sizeof(*st.in));
    st.out = calloc((size_t)model->max_node_outputs + 1, sizeof(*st.out));
    rc = st.in != NULL && st.out != NULL ? BMS_OK : BMS_ERR_NOMEM;
    if (rc == BMS_OK) {
        rc = pass_init(&st.pass[0], model, 1);
    }
    if (rc == BMS_OK) {
        rc = pass_init(&st.pass[1], model, 2);
    }
    if (rc != BMS_OK) {
        bms_diag_set(diag, rc, "out of memory");
        goto out;
    }
    for (int i = 0; i < model->n_nodes && rc == BMS_OK; i++) {
        rc = infer_node(&st, &model->nodes[i], diag);
    }
    if (rc == BMS_OK) {
        record_values(&st);
        merge_outputs(model);
    }
out:
    pass_fini(&st.pass[0], model->n_values);
    pass_fini(&st.pass[1], model->n_values);
    bms__ctx_fini(&st.ctx);
    free(st.out);
    free(st.in);
    return rc;
}
