/*
 * Control flow: If, Loop and Scan, the operators that run subgraphs.
 *
 * Each subgraph is a struct bms_model of its own (built by the loader
 * from the node's GRAPH attributes); the values it reads from enclosing
 * graphs arrive as the node's trailing inputs (node->n_captures of them).
 * A kernel call runs its subgraph in sessions it creates for the call.
 * Loop and Scan alternate between two sessions, so that the outputs of
 * one iteration (which live in one session's memory) stay valid while
 * the next iteration reads them on the other.  Results are malloc'ed and
 * handed to the executor (bms__op_runs_graphs in engine/model.h).
 *
 * Output dims are known only once the subgraph ran, so the load-time
 * infer reports them unknown, except for an If whose branches declare
 * the same fixed shapes.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/ops/control.h"
#include "engine/ops/kernels.h"

/* Most iterations one Loop or Scan runs: a loop whose condition never
 * turns false must not hold a worker for ever. */
#define MAX_ITERATIONS ((int64_t)1 << 24)

/* The sessions one kernel call runs a subgraph in, used in turn. */
struct runner {
    const struct bms_model *g;
    const struct bms_tensor *const *captures;
    struct bms_session *sess[2];
    int turn;
};

/* Tensors of the same shape stacked along a new leading axis. */
struct stack {
    struct bms_tensor first;     /* dtype and dims of the first; no data */
    char *data;
    size_t size;                 /* bytes used */
    size_t cap;                  /* bytes allocated */
    int64_t n;
};


int bms__op_runs_graphs(const struct bms__op *op)
{
    return op != NULL && op->run != NULL &&
           (op->run == bms__if_run || op->run == bms__loop_run ||
            op->run == bms__scan_run);
}


static const struct bms_model *graph_attr(const struct bms__node *node,
                                          const char *name)
{
    const struct bms__attr *a = bms__attr_find(node, name);

    return a != NULL && a->type == BMS__ATTR_GRAPH ? a->g : NULL;
}


/* The operator's own inputs, before the captured outer values. */
static int own_inputs(const struct bms__node *node)
{
    return node->n_inputs - node->n_captures;
}


static enum bms_status runner_run(struct runner *r,
                                  const struct bms_tensor *inputs,
                                  struct bms_tensor *outputs)
{
    struct bms_session **s = &r->sess[r->turn];
    enum bms_status rc;

    if (*s == NULL) {
        rc = bms_session_create(r->g, s, NULL);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    r->turn ^= 1;
    return bms__session_run_graph(*s, inputs, r->captures, outputs, NULL);
}


static void runner_fini(struct runner *r)
{
    bms_session_destroy(r->sess[0]);
    bms_session_destroy(r->sess[1]);
}


static int same_shape(const struct bms_tensor *a, const struct bms_tensor *b)
{
    return a->dtype == b->dtype && a->n_dims == b->n_dims &&
           memcmp(a->dims, b->dims,
                  (size_t)a->n_dims * sizeof(int64_t)) == 0;
}


/* A malloc'ed copy of t in *out. */
static enum bms_status copy_result(const struct bms_tensor *t,
                                   struct bms_tensor *out)
{
    size_t size = bms_tensor_size(t);

    *out = *t;
    out->data = malloc(size > 0 ? size : 1);
    if (out->data == NULL) {
        return BMS_ERR_NOMEM;
    }
    if (size > 0) {
        memcpy(out->data, t->data, size);
    }
    return BMS_OK;
}


/* The value of a one-element bool tensor into *out. */
static enum bms_status read_bool(const struct bms_tensor *t,
                                 unsigned char *out)
{
    if (t == NULL || t->dtype != BMS_DTYPE_BOOL || bms_tensor_numel(t) != 1) {
        return BMS_ERR_INVALID;
    }
    *out = *(const unsigned char *)t->data != 0;
    return BMS_OK;
}


/* A declared shape with every dim fixed into *t (no data); 0 if not. */
static int declared_shape(const struct bms_value_info *info,
                          struct bms_tensor *t)
{
    if (info->dtype == BMS_DTYPE_UNDEFINED || info->n_dims < 0) {
        return 0;
    }
    for (int d = 0; d < info->n_dims; d++) {
        if (info->dims[d] < 0) {
            return 0;
        }
    }
    memset(t, 0, sizeof(*t));
    t->dtype = info->dtype;
    t->n_dims = info->n_dims;
    memcpy(t->dims, info->dims, (size_t)info->n_dims * sizeof(int64_t));
    return 1;
}


/* Insert a dim of size n at axis of t (rank + 1 must fit). */
static enum bms_status insert_dim(struct bms_tensor *t, int axis, int64_t n)
{
    if (t->n_dims + 1 > BMS_MAX_DIMS || axis < 0 || axis > t->n_dims) {
        return BMS_ERR_UNSUPPORTED;
    }
    memmove(t->dims + axis + 1, t->dims + axis,
            (size_t)(t->n_dims - axis) * sizeof(int64_t));
    t->dims[axis] = n;
    t->n_dims++;
    return BMS_OK;
}


/* ---- Stacking per-iteration outputs ----------------------------------- */

static enum bms_status stack_push(struct stack *st,
                                  const struct bms_tensor *t)
{
    size_t size = bms_tensor_size(t);

    if (st->n == 0) {
        st->first = *t;
        st->first.data = NULL;
    } else if (!same_shape(&st->first, t)) {
        return BMS_ERR_INVALID;     /* ONNX: every iteration alike */
    }
    if (size > st->cap - st->size) {
        size_t cap = st->cap * 2 > st->size + size ? st->cap * 2
                                                   : st->size + size;
        char *data = realloc(st->data, cap);

        if (data == NULL) {
            return BMS_ERR_NOMEM;
        }
        st->data = data;
        st->cap = cap;
    }
    if (size > 0) {
        memcpy(st->data + st->size, t->data, size);
    }
    st->size += size;
    st->n++;
    return BMS_OK;
}


/* The stacked tensor [n, dims...] into *out, which takes the data.  With
 * no iterations, the dims come from the body's declaration of the
 * output. */
static enum bms_status stack_finish(struct stack *st,
                                    const struct bms_value_info *info,
                                    struct bms_tensor *out)
{
    struct bms_tensor t = st->first;
    enum bms_status rc;

    if (st->n == 0 && !declared_shape(info, &t)) {
        return BMS_ERR_UNSUPPORTED;     /* an empty result of no shape */
    }
    rc = insert_dim(&t, 0, st->n);
    if (rc != BMS_OK) {
        return rc;
    }
    if (!bms__dims_valid(&t)) {
        return BMS_ERR_LIMIT;
    }
    t.data = st->data != NULL ? st->data : malloc(1);
    if (t.data == NULL) {
        return BMS_ERR_NOMEM;
    }
    st->data = NULL;
    *out = t;
    return BMS_OK;
}


/* ---- If --------------------------------------------------------------- */

static enum bms_status check_branch(const struct bms__node *node,
                                    const struct bms_model *g,
                                    const char *name, struct bms_diag *diag)
{
    if (g == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "If: attribute '%s' missing or not a graph",
                            name);
    }
    if (g->n_inputs != 0 || g->n_outputs != node->n_outputs) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "If: %s takes %d inputs and gives %d outputs, "
                            "the node has %d outputs", name, g->n_inputs,
                            g->n_outputs, node->n_outputs);
    }
    return BMS_OK;
}


enum bms_status bms__if_prepare(struct bms__node *node,
                                struct bms_diag *diag)
{
    enum bms_status rc;

    if (own_inputs(node) != 1 || node->inputs[0] < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "If: takes one input (cond), not %d",
                            own_inputs(node));
    }
    rc = check_branch(node, graph_attr(node, "then_branch"), "then_branch",
                      diag);
    if (rc == BMS_OK) {
        rc = check_branch(node, graph_attr(node, "else_branch"),
                          "else_branch", diag);
    }
    return rc;
}


/* Known at load only when both branches declare the same fixed shape. */
enum bms_status bms__if_infer(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms_diag *diag)
{
    const struct bms_model *then_g = graph_attr(node, "then_branch");
    const struct bms_model *else_g = graph_attr(node, "else_branch");

    (void)in;
    for (int j = 0; j < node->n_outputs; j++) {
        struct bms_tensor other;

        if (!declared_shape(&then_g->outputs[j], &out[j]) ||
            !declared_shape(&else_g->outputs[j], &other) ||
            !same_shape(&out[j], &other)) {
            return bms_diag_set(diag, BMS_ERR_UNAVAILABLE,
                                "If: output %d is known only at run", j);
        }
    }
    return BMS_OK;
}


enum bms_status bms__if_run(const struct bms__node *node,
                            const struct bms_tensor *const *in,
                            struct bms_tensor *out, struct bms__ctx *ctx)
{
    struct runner r = {NULL, in + own_inputs(node), {NULL, NULL}, 0};
    struct bms_tensor *res;
    unsigned char cond;
    enum bms_status rc;

    (void)ctx;
    rc = read_bool(in[0], &cond);
    if (rc != BMS_OK) {
        return rc;
    }
    r.g = graph_attr(node, cond ? "then_branch" : "else_branch");
    res = calloc((size_t)node->n_outputs + 1, sizeof(*res));
    if (res == NULL) {
        return BMS_ERR_NOMEM;
    }
    rc = runner_run(&r, NULL, res);
    for (int j = 0; rc == BMS_OK && j < node->n_outputs; j++) {
        rc = copy_result(&res[j], &out[j]);
    }
    runner_fini(&r);
    free(res);
    return rc;
}


/* ---- Loop ------------------------------------------------------------- */

/* ONNX Loop: body inputs (iteration_num, cond, N carried), body outputs
 * (cond, N carried, K scan outputs); node inputs (M, cond, N initial). */
enum bms_status bms__loop_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    const struct bms_model *body = graph_attr(node, "body");
    int n_carried;

    if (body == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Loop: attribute 'body' missing or not a graph");
    }
    n_carried = body->n_inputs - 2;
    if (n_carried < 0 || body->n_outputs < 1 + n_carried) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Loop: body takes %d inputs and gives %d "
                            "outputs, needs 2 + N and 1 + N + K",
                            body->n_inputs, body->n_outputs);
    }
    if (own_inputs(node) != 2 + n_carried ||
        node->n_outputs > body->n_outputs - 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Loop: %d inputs and %d outputs do not fit a "
                            "body of %d carried values", own_inputs(node),
                            node->n_outputs, n_carried);
    }
    for (int k = 2; k < own_inputs(node); k++) {
        if (node->inputs[k] < 0) {
            return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                                "Loop: initial value %d is absent (an "
                                "optional)", k - 2);
        }
    }
    return BMS_OK;
}


enum bms_status bms__loop_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    (void)in;
    (void)out;
    return bms_diag_set(diag, BMS_ERR_UNAVAILABLE,
                        "%s: outputs are known only at run", node->op_type);
}


/* The trip count: in[0] when given (int64, one element), else none. */
static enum bms_status loop_trip_count(const struct bms_tensor *t,
                                       int64_t *out)
{
    *out = -1;
    if (t == NULL) {
        return BMS_OK;
    }
    if (t->dtype != BMS_DTYPE_I64 || bms_tensor_numel(t) != 1) {
        return BMS_ERR_INVALID;
    }
    *out = *(const int64_t *)t->data;
    *out = *out > 0 ? *out : 0;
    return BMS_OK;
}


struct loop_run {
    const struct bms__node *node;
    const struct bms_model *body;
    int n_carried;
    int n_scan;
    int64_t max_trip;            /* -1: no trip count */
    int has_cond;
    unsigned char cond;
    int64_t iter;
    struct bms_tensor *body_in;  /* 2 + N; the carried values in place */
    struct bms_tensor *body_out; /* 1 + N + K */
    struct stack *scans;         /* K */
};


static enum bms_status loop_iterate(struct loop_run *lr, struct runner *r)
{
    enum bms_status rc;

    while ((lr->max_trip < 0 || lr->iter < lr->max_trip) &&
           (!lr->has_cond || lr->cond)) {
        if (lr->iter >= MAX_ITERATIONS) {
            return BMS_ERR_LIMIT;
        }
        lr->body_in[0] = (struct bms_tensor){BMS_DTYPE_I64, 0, {0},
                                             &lr->iter};
        lr->body_in[1] = (struct bms_tensor){BMS_DTYPE_BOOL, 0, {0},
                                             &lr->cond};
        rc = runner_run(r, lr->body_in, lr->body_out);
        if (rc == BMS_OK && lr->has_cond) {
            rc = read_bool(&lr->body_out[0], &lr->cond);
        }
        for (int k = 0; rc == BMS_OK && k < lr->n_scan; k++) {
            rc = stack_push(&lr->scans[k],
                            &lr->body_out[1 + lr->n_carried + k]);
        }
        if (rc != BMS_OK) {
            return rc;
        }
        for (int k = 0; k < lr->n_carried; k++) {
            lr->body_in[2 + k] = lr->body_out[1 + k];
        }
        lr->iter++;
    }
    return BMS_OK;
}


static enum bms_status loop_outputs(struct loop_run *lr,
                                    struct bms_tensor *out)
{
    enum bms_status rc = BMS_OK;

    for (int j = 0; rc == BMS_OK && j < lr->node->n_outputs; j++) {
        if (j < lr->n_carried) {
            rc = copy_result(&lr->body_in[2 + j], &out[j]);
        } else {
            rc = stack_finish(&lr->scans[j - lr->n_carried],
                              &lr->body->outputs[1 + j], &out[j]);
        }
    }
    return rc;
}


enum bms_status bms__loop_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx)
{
    const struct bms_model *body = graph_attr(node, "body");
    struct runner r = {body, in + own_inputs(node), {NULL, NULL}, 0};
    struct loop_run lr = {0};
    enum bms_status rc;

    (void)ctx;
    lr.node = node;
    lr.body = body;
    lr.n_carried = body->n_inputs - 2;
    lr.n_scan = body->n_outputs - 1 - lr.n_carried;
    lr.has_cond = in[1] != NULL;
    lr.cond = 1;
    lr.body_in = calloc((size_t)body->n_inputs + 1, sizeof(*lr.body_in));
    lr.body_out = calloc((size_t)body->n_outputs + 1, sizeof(*lr.body_out));
    lr.scans = calloc((size_t)lr.n_scan + 1, sizeof(*lr.scans));
    rc = loop_trip_count(in[0], &lr.max_trip);
    if (rc == BMS_OK && (lr.body_in == NULL || lr.body_out == NULL ||
                         lr.scans == NULL)) {
        rc = BMS_ERR_NOMEM;
    }
    if (rc == BMS_OK && lr.has_cond) {
        rc = read_bool(in[1], &lr.cond);
    }
    for (int k = 0; rc == BMS_OK && k < lr.n_carried; k++) {
        lr.body_in[2 + k] = *in[2 + k];
    }
    if (rc == BMS_OK) {
        rc = loop_iterate(&lr, &r);
    }
    if (rc == BMS_OK) {
        rc = loop_outputs(&lr, out);
    }
    for (int k = 0; lr.scans != NULL && k < lr.n_scan; k++) {
        free(lr.scans[k].data);
    }
    runner_fini(&r);
    free(lr.scans);
    free(lr.body_out);
    free(lr.body_in);
    return rc;
}


/* ---- Scan ------------------------------------------------------------- */

/* One scan over sequences: N state values, M scan inputs sliced along
 * their axes, K scan outputs stacked along theirs. */
struct scan_run {
    const struct bms_model *body;
    int n_state;
    int n_in;
    int n_out;
    int *in_axis;                /* M, per scan input */
    int *in_rev;                 /* M: 1 walks the sequence backwards */
    int *out_axis;               /* K */
    int *out_rev;                /* K */
    struct bms_tensor *body_in;  /* N + M */
    struct bms_tensor *body_out; /* N + K */
};


static int scan_counts(const struct bms__node *node, int *n_state,
                       int *n_in, int *n_out)
{
    const struct bms_model *body = graph_attr(node, "body");
    int64_t m = bms__attr_int(node, "num_scan_inputs", 0);

    if (body == NULL || m < 1 || m > body->n_inputs) {
        return 0;
    }
    *n_in = (int)m;
    *n_state = body->n_inputs - *n_in;
    *n_out = body->n_outputs - *n_state;
    return *n_out >= 0;
}


/* An axes or directions attribute: absent (all zero) or n values. */
static int attr_list_ok(const struct bms__node *node, const char *name,
                        int n, int64_t lo, int64_t hi)
{
    int n_vals = 0;
    const int64_t *vals = bms__attr_ints(node, name, &n_vals);

    if (bms__attr_find(node, name) == NULL) {
        return 1;
    }
    if (n_vals != n) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (vals[i] < lo || vals[i] > hi) {
            return 0;
        }
    }
    return 1;
}


enum bms_status bms__scan_prepare(struct bms__node *node,
                                  struct bms_diag *diag)
{
    int scan8 = node->opset > 0 && node->opset < 9;
    int n_state;
    int n_in;
    int n_out;

    if (!scan_counts(node, &n_state, &n_in, &n_out)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Scan: body or num_scan_inputs missing, or "
                            "they do not fit each other");
    }
    if (own_inputs(node) != scan8 + n_state + n_in ||
        node->n_outputs > n_state + n_out) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Scan: %d inputs and %d outputs do not fit a "
                            "body of %d states and %d scan inputs",
                            own_inputs(node), node->n_outputs, n_state,
                            n_in);
    }
    if (scan8 && node->inputs[0] >= 0) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "Scan-8: sequence_lens is not supported");
    }
    for (int k = scan8; k < own_inputs(node); k++) {
        if (node->inputs[k] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Scan: input %d is absent", k);
        }
    }
    if (!attr_list_ok(node, "directions", n_in, 0, 1) ||
        !attr_list_ok(node, "scan_input_directions", n_in, 0, 1) ||
        !attr_list_ok(node, "scan_output_directions", n_out, 0, 1) ||
        !attr_list_ok(node, "scan_input_axes", n_in, -BMS_MAX_DIMS,
                      BMS_MAX_DIMS - 1) ||
        !attr_list_ok(node, "scan_output_axes", n_out, -BMS_MAX_DIMS,
                      BMS_MAX_DIMS - 1)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Scan: axes or directions of the wrong count "
                            "or range");
    }
    return BMS_OK;
}


enum bms_status bms__scan_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag)
{
    return bms__loop_infer(node, in, out, diag);
}


/* Copy element idx along axis of t to or from a slice buffer. */
static void move_slice(const struct bms_tensor *t, int axis, int64_t idx,
                       char *slice, int to_slice)
{
    size_t es = bms_dtype_size(t->dtype);
    int64_t outer = bms__math_span(t->dims, 0, axis);
    int64_t len = t->dims[axis];
    size_t inner = (size_t)bms__math_span(t->dims, axis + 1, t->n_dims) * es;
    char *base = t->data;

    for (int64_t o = 0; o < outer && inner > 0; o++) {
        char *at = base + (size_t)(o * len + idx) * inner;

        if (to_slice) {
            memcpy(slice + (size_t)o * inner, at, inner);
        } else {
            memcpy(at, slice + (size_t)o * inner, inner);
        }
    }
}


/* Slice buffers for the scan inputs (body_in[N..]); *len gets the
 * sequence length they agree on. */
static enum bms_status scan_slices(struct scan_run *sr,
                                   const struct bms_tensor *scans,
                                   int64_t *len)
{
    for (int j = 0; j < sr->n_in; j++) {
        const struct bms_tensor *t = &scans[j];
        struct bms_tensor *s = &sr->body_in[sr->n_state + j];
        int axis = sr->in_axis[j] < 0 ? sr->in_axis[j] + t->n_dims
                                      : sr->in_axis[j];

        if (axis < 0 || axis >= t->n_dims ||
            (j > 0 && t->dims[axis] != *len)) {
            return BMS_ERR_INVALID;
        }
        *len = t->dims[axis];
        sr->in_axis[j] = axis;
        *s = *t;
        memmove(s->dims + axis, s->dims + axis + 1,
                (size_t)(t->n_dims - axis - 1) * sizeof(int64_t));
        s->n_dims--;
        s->data = malloc(bms_tensor_size(s) + 1);
        if (s->data == NULL) {
            return BMS_ERR_NOMEM;
        }
    }
    return BMS_OK;
}


/* Place iteration t's scan output k into results[N + k], allocating it
 * [.., len, ..] on the first iteration. */
static enum bms_status scan_place(struct scan_run *sr, int k, int64_t t,
                                  int64_t len, struct bms_tensor *results)
{
    const struct bms_tensor *y = &sr->body_out[sr->n_state + k];
    struct bms_tensor *r = &results[sr->n_state + k];
    int rank = y->n_dims + 1;
    int axis = sr->out_axis[k] < 0 ? sr->out_axis[k] + rank
                                   : sr->out_axis[k];
    enum bms_status rc;

    if (t == 0) {
        *r = *y;
        rc = insert_dim(r, axis, len);
        if (rc != BMS_OK) {
            return axis < 0 || axis >= rank ? BMS_ERR_INVALID : rc;
        }
        r->data = bms__dims_valid(r) ? malloc(bms_tensor_size(r) + 1)
                                     : NULL;
        if (r->data == NULL) {
            return bms__dims_valid(r) ? BMS_ERR_NOMEM : BMS_ERR_LIMIT;
        }
        sr->out_axis[k] = axis;
    }
    axis = sr->out_axis[k];
    if (r->dtype != y->dtype || r->n_dims != rank ||
        memcmp(r->dims, y->dims, (size_t)axis * sizeof(int64_t)) != 0 ||
        memcmp(r->dims + axis + 1, y->dims + axis,
               (size_t)(rank - axis - 1) * sizeof(int64_t)) != 0) {
        return BMS_ERR_INVALID;
    }
    move_slice(r, axis, sr->out_rev[k] ? len - 1 - t : t, y->data, 0);
    return BMS_OK;
}


/* Scan outputs of a sequence of length 0: the body's declared dims with
 * a 0 inserted. */
static enum bms_status scan_empty(struct scan_run *sr,
                                  struct bms_tensor *results)
{
    for (int k = 0; k < sr->n_out; k++) {
        struct bms_tensor *r = &results[sr->n_state + k];
        const struct bms_value_info *info =
            &sr->body->outputs[sr->n_state + k];
        enum bms_status rc;
        int axis;

        if (!declared_shape(info, r)) {
            return BMS_ERR_UNSUPPORTED;
        }
        axis = sr->out_axis[k] < 0 ? sr->out_axis[k] + r->n_dims + 1
                                   : sr->out_axis[k];
        rc = insert_dim(r, axis, 0);
        if (rc != BMS_OK) {
            return rc;
        }
        r->data = malloc(1);
        if (r->data == NULL) {
            return BMS_ERR_NOMEM;
        }
    }
    return BMS_OK;
}


/* Run one scan: states (N) and scans (M) in, results (N + K, malloc'ed,
 * freed by the caller also on failure) out. */
static enum bms_status scan_once(struct scan_run *sr, struct runner *r,
                                 const struct bms_tensor *states,
                                 const struct bms_tensor *scans,
                                 struct bms_tensor *results)
{
    int64_t len = 0;
    enum bms_status rc;

    memcpy(sr->body_in, states, (size_t)sr->n_state * sizeof(*states));
    rc = scan_slices(sr, scans, &len);
    if (rc == BMS_OK && len > MAX_ITERATIONS) {
        rc = BMS_ERR_LIMIT;
    }
    for (int64_t t = 0; rc == BMS_OK && t < len; t++) {
        for (int j = 0; j < sr->n_in; j++) {
            move_slice(&scans[j], sr->in_axis[j],
                       sr->in_rev[j] ? len - 1 - t : t,
                       sr->body_in[sr->n_state + j].data, 1);
        }
        rc = runner_run(r, sr->body_in, sr->body_out);
        for (int k = 0; rc == BMS_OK && k < sr->n_out; k++) {
            rc = scan_place(sr, k, t, len, results);
        }
        for (int s = 0; rc == BMS_OK && s < sr->n_state; s++) {
            sr->body_in[s] = sr->body_out[s];
        }
    }
    if (rc == BMS_OK && len == 0) {
        rc = scan_empty(sr, results);
    }
    for (int s = 0; rc == BMS_OK && s < sr->n_state; s++) {
        rc = copy_result(&sr->body_in[s], &results[s]);
    }
    for (int j = 0; j < sr->n_in; j++) {
        free(sr->body_in[sr->n_state + j].data);
        sr->body_in[sr->n_state + j].data = NULL;
    }
    return rc;
}


/* Axes and directions from the attributes, for the opset's form. */
static void scan_attrs(const struct bms__node *node, struct scan_run *sr)
{
    int scan8 = node->opset > 0 && node->opset < 9;
    const char *in_dirs = scan8 ? "directions" : "scan_input_directions";
    int n;
    const int64_t *v;

    v = bms__attr_ints(node, in_dirs, &n);
    for (int j = 0; j < sr->n_in; j++) {
        sr->in_rev[j] = n == sr->n_in ? (int)v[j] : 0;
    }
    v = bms__attr_ints(node, "scan_input_axes", &n);
    for (int j = 0; j < sr->n_in; j++) {
        sr->in_axis[j] = n == sr->n_in && !scan8 ? (int)v[j] : 0;
    }
    v = bms__attr_ints(node, "scan_output_directions", &n);
    for (int k = 0; k < sr->n_out; k++) {
        sr->out_rev[k] = n == sr->n_out && !scan8 ? (int)v[k] : 0;
    }
    v = bms__attr_ints(node, "scan_output_axes", &n);
    for (int k = 0; k < sr->n_out; k++) {
        sr->out_axis[k] = n == sr->n_out && !scan8 ? (int)v[k] : 0;
    }
}


static enum bms_status scan_init(const struct bms__node *node,
                                 struct scan_run *sr)
{
    int n_lists;

    sr->body = graph_attr(node, "body");
    if (!scan_counts(node, &sr->n_state, &sr->n_in, &sr->n_out)) {
        return BMS_ERR_INVALID;
    }
    n_lists = 2 * (sr->n_in + sr->n_out) + 1;
    sr->in_axis = calloc((size_t)n_lists, sizeof(int));
    sr->body_in = calloc((size_t)(sr->n_state + sr->n_in) + 1,
                         sizeof(*sr->body_in));
    sr->body_out = calloc((size_t)(sr->n_state + sr->n_out) + 1,
                          sizeof(*sr->body_out));
    if (sr->in_axis == NULL || sr->body_in == NULL || sr->body_out == NULL) {
        return BMS_ERR_NOMEM;
    }
    sr->in_rev = sr->in_axis + sr->n_in;
    sr->out_axis = sr->in_rev + sr->n_in;
    sr->out_rev = sr->out_axis + sr->n_out;
    scan_attrs(node, sr);
    return BMS_OK;
}


static void scan_fini(struct scan_run *sr)
{
    free(sr->body_out);
    free(sr->body_in);
    free(sr->in_axis);
}


/* The batch b part of t (whose axis 0 is the batch) as a view. */
static struct bms_tensor batch_view(const struct bms_tensor *t, int64_t b)
{
    struct bms_tensor v = *t;
    size_t size;

    memmove(v.dims, v.dims + 1, (size_t)(t->n_dims - 1) * sizeof(int64_t));
    v.n_dims = t->n_dims - 1;
    size = bms_tensor_size(&v);
    v.data = (char *)t->data + (size_t)b * size;
    return v;
}


/* Copy one batch's result r into out at b, allocating out [n_batch, ...]
 * for the first batch. */
static enum bms_status batch_place(const struct bms_tensor *r, int64_t b,
                                   int64_t n_batch, struct bms_tensor *out)
{
    struct bms_tensor want = *r;
    size_t size = bms_tensor_size(r);
    enum bms_status rc = insert_dim(&want, 0, n_batch);

    if (rc != BMS_OK) {
        return rc;
    }
    if (b == 0) {
        *out = want;
        out->data = bms__dims_valid(out) ? malloc(bms_tensor_size(out) + 1)
                                         : NULL;
        if (out->data == NULL) {
            return BMS_ERR_NOMEM;
        }
    } else if (!same_shape(out, &want)) {
        return BMS_ERR_INVALID;
    }
    if (size > 0) {
        memcpy((char *)out->data + (size_t)b * size, r->data, size);
    }
    return BMS_OK;
}


/* ONNX Scan-8: inputs and outputs carry a batch axis 0; each batch entry
 * is one scan over axis 1. */
static enum bms_status scan8_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct scan_run *sr, struct runner *r,
                                 struct bms_tensor *out)
{
    int n_all = sr->n_state + sr->n_in;
    int n_res = sr->n_state + sr->n_out;
    struct bms_tensor *views = calloc((size_t)n_all + 1, sizeof(*views));
    struct bms_tensor *res = calloc((size_t)n_res + 1, sizeof(*res));
    int64_t n_batch = in[1]->n_dims > 0 ? in[1]->dims[0] : -1;
    enum bms_status rc = views != NULL && res != NULL ? BMS_OK
                                                      : BMS_ERR_NOMEM;

    for (int k = 0; rc == BMS_OK && k < n_all; k++) {
        if (in[1 + k]->n_dims < 1 || in[1 + k]->dims[0] != n_batch) {
            rc = BMS_ERR_INVALID;
        }
    }
    for (int64_t b = 0; rc == BMS_OK && b < n_batch; b++) {
        for (int k = 0; k < n_all; k++) {
            views[k] = batch_view(in[1 + k], b);
        }
        rc = scan_once(sr, r, views, views + sr->n_state, res);
        for (int j = 0; rc == BMS_OK && j < node->n_outputs; j++) {
            rc = batch_place(&res[j], b, n_batch, &out[j]);
        }
        for (int j = 0; j < n_res; j++) {
            free(res[j].data);
            res[j].data = NULL;
        }
    }
    if (rc == BMS_OK && n_batch == 0) {
        rc = BMS_ERR_UNSUPPORTED;   /* an empty batch of no shape */
    }
    free(res);
    free(views);
    return rc;
}


/* ONNX Scan-9 and later. */
static enum bms_status scan9_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct scan_run *sr, struct runner *r,
                                 struct bms_tensor *out)
{
    int n_all = sr->n_state + sr->n_in;
    int n_res = sr->n_state + sr->n_out;
    struct bms_tensor *args = calloc((size_t)n_all + 1, sizeof(*args));
    struct bms_tensor *res = calloc((size_t)n_res + 1, sizeof(*res));
    enum bms_status rc = args != NULL && res != NULL ? BMS_OK
                                                     : BMS_ERR_NOMEM;

    for (int k = 0; rc == BMS_OK && k < n_all; k++) {
        args[k] = *in[k];
    }
    if (rc == BMS_OK) {
        rc = scan_once(sr, r, args, args + sr->n_state, res);
    }
    for (int j = 0; j < n_res; j++) {
        if (rc == BMS_OK && j < node->n_outputs) {
            out[j] = res[j];
        } else {
            free(res[j].data);
        }
    }
    free(res);
    free(args);
    return rc;
}


enum bms_status bms__scan_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx)
{
    struct runner r = {NULL, in + own_inputs(node), {NULL, NULL}, 0};
    struct scan_run sr = {0};
    enum bms_status rc;

    (void)ctx;
    rc = scan_init(node, &sr);
    r.g = sr.body;
    if (rc == BMS_OK && node->opset > 0 && node->opset < 9) {
        rc = scan8_run(node, in, &sr, &r, out);
    } else if (rc == BMS_OK) {
        rc = scan9_run(node, in, &sr, &r, out);
    }
    runner_fini(&r);
    scan_fini(&sr);
    return rc;
}
