/*
 * Unit tests of subgraphs and the control-flow operators If, Loop and
 * Scan (engine/ops/control.c, the subgraph parts of engine/load.c and
 * engine/session.c).  Each test builds its ONNX model here with
 * protobuf-c, loads it from memory and runs it; every expected value is
 * worked out by hand in the comment above the test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "bms/engine.h"
#include "engine/model.h"
#include "onnx.pb-c.h"

#define F32 ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
#define I64 ONNX__TENSOR_PROTO__DATA_TYPE__INT64
#define BOOL ONNX__TENSOR_PROTO__DATA_TYPE__BOOL

/* Everything one test's protobuf holds; freed at the end of the test. */
static struct bms__pool pb_pool;


static void *pb_alloc(size_t size)
{
    void *p = bms__pool_alloc(&pb_pool, size);

    assert_non_null(p);
    return p;
}


/* Space-separated names into a string array; "-" is an absent name. */
static char **name_list(const char *list, size_t *n)
{
    char *copy = bms__pool_strdup(&pb_pool, list);
    char **names = pb_alloc((strlen(list) / 2 + 2) * sizeof(char *));
    char *save = NULL;

    *n = 0;
    for (char *t = strtok_r(copy, " ", &save); t != NULL;
         t = strtok_r(NULL, " ", &save)) {
        names[(*n)++] = strcmp(t, "-") == 0 ? "" : t;
    }
    return names;
}


/* A tensor value_info; n_dims -1 leaves the shape out, elem 0 the type. */
static Onnx__ValueInfoProto *vinfo(const char *name, int elem, int n_dims,
                                   const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = pb_alloc(sizeof(*vi));
    Onnx__TypeProto *tp = pb_alloc(sizeof(*tp));
    Onnx__TypeProto__Tensor *tt = pb_alloc(sizeof(*tt));
    Onnx__TensorShapeProto *sp = pb_alloc(sizeof(*sp));

    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    vi->name = bms__pool_strdup(&pb_pool, name);
    if (elem == 0) {
        return vi;
    }
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    if (n_dims < 0) {
        return vi;
    }
    tt->shape = sp;
    sp->n_dim = (size_t)n_dims;
    sp->dim = pb_alloc(((size_t)n_dims + 1) * sizeof(*sp->dim));
    for (int d = 0; d < n_dims; d++) {
        sp->dim[d] = pb_alloc(sizeof(**sp->dim));
        onnx__tensor_shape_proto__dimension__init(sp->dim[d]);
        sp->dim[d]->value_case =
            ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        sp->dim[d]->dim_value = dims[d];
    }
    return vi;
}


static Onnx__NodeProto *node(const char *op, const char *ins,
                             const char *outs)
{
    Onnx__NodeProto *np = pb_alloc(sizeof(*np));

    onnx__node_proto__init(np);
    np->op_type = bms__pool_strdup(&pb_pool, op);
    np->input = name_list(ins, &np->n_input);
    np->output = name_list(outs, &np->n_output);
    np->attribute = pb_alloc(8 * sizeof(*np->attribute));
    return np;
}


static Onnx__AttributeProto *add_attr(Onnx__NodeProto *np, const char *name,
                                      Onnx__AttributeProto__AttributeType t)
{
    Onnx__AttributeProto *ap = pb_alloc(sizeof(*ap));

    assert_true(np->n_attribute < 8);
    onnx__attribute_proto__init(ap);
    ap->name = bms__pool_strdup(&pb_pool, name);
    ap->has_type = 1;
    ap->type = t;
    np->attribute[np->n_attribute++] = ap;
    return ap;
}


static void attr_graph(Onnx__NodeProto *np, const char *name,
                       Onnx__GraphProto *g)
{
    add_attr(np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH)->g = g;
}


static void attr_ints(Onnx__NodeProto *np, const char *name, int n,
                      const int64_t *vals)
{
    Onnx__AttributeProto *ap =
        add_attr(np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);

    ap->n_ints = (size_t)n;
    ap->ints = pb_alloc((size_t)n * sizeof(int64_t) + 1);
    memcpy(ap->ints, vals, (size_t)n * sizeof(int64_t));
}


static void attr_int(Onnx__NodeProto *np, const char *name, int64_t v)
{
    Onnx__AttributeProto *ap =
        add_attr(np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);

    ap->has_i = 1;
    ap->i = v;
}


/* A one-element F32 initializer. */
static Onnx__TensorProto *scalar_f32(const char *name, float v)
{
    Onnx__TensorProto *tp = pb_alloc(sizeof(*tp));

    onnx__tensor_proto__init(tp);
    tp->name = bms__pool_strdup(&pb_pool, name);
    tp->has_data_type = 1;
    tp->data_type = F32;
    tp->n_float_data = 1;
    tp->float_data = pb_alloc(sizeof(float));
    tp->float_data[0] = v;
    return tp;
}


/* A copy of NULL-terminated array a (NULL: empty) in the test's pool:
 * the callers pass compound literals, which die with their block. */
static void **copy_list(void *const *a, size_t *n)
{
    void **copy;

    for (*n = 0; a != NULL && a[*n] != NULL; (*n)++) {
    }
    copy = pb_alloc((*n + 1) * sizeof(void *));
    if (*n > 0) {
        memcpy(copy, a, *n * sizeof(void *));
    }
    return copy;
}


/* A graph from NULL-terminated arrays (any may be NULL). */
static Onnx__GraphProto *graph(Onnx__NodeProto **nodes,
                               Onnx__ValueInfoProto **inputs,
                               Onnx__ValueInfoProto **outputs,
                               Onnx__TensorProto **inits)
{
    Onnx__GraphProto *g = pb_alloc(sizeof(*g));

    onnx__graph_proto__init(g);
    g->name = "g";
    g->node = (Onnx__NodeProto **)copy_list((void **)nodes, &g->n_node);
    g->input = (Onnx__ValueInfoProto **)copy_list((void **)inputs,
                                                  &g->n_input);
    g->output = (Onnx__ValueInfoProto **)copy_list((void **)outputs,
                                                   &g->n_output);
    g->initializer = (Onnx__TensorProto **)copy_list((void **)inits,
                                                     &g->n_initializer);
    return g;
}


/* Pack g as an opset-11 model and load it. */
static enum bms_status load(Onnx__GraphProto *g, struct bms_model **model,
                            struct bms_diag *diag)
{
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *ops[] = {&os};
    enum bms_status rc;
    uint8_t *buf;
    size_t size;

    os.domain = "";
    os.has_version = 1;
    os.version = 11;
    mp.has_ir_version = 1;
    mp.ir_version = 7;
    mp.n_opset_import = 1;
    mp.opset_import = ops;
    mp.graph = g;
    size = onnx__model_proto__get_packed_size(&mp);
    buf = malloc(size);
    assert_non_null(buf);
    onnx__model_proto__pack(&mp, buf);
    rc = bms_model_load_memory(buf, size, model, diag);
    free(buf);
    return rc;
}


static struct bms_model *load_ok(Onnx__GraphProto *g)
{
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};

    if (load(g, &model, &diag) != BMS_OK) {
        fail_msg("load: %s", diag.msg);
    }
    return model;
}


static void run_ok(struct bms_session *s, const struct bms_tensor *in,
                   struct bms_tensor *out)
{
    struct bms_diag diag = {{0}};

    if (bms_session_run(s, in, out, &diag) != BMS_OK) {
        fail_msg("run: %s", diag.msg);
    }
}


static void assert_f32(const struct bms_tensor *t, int n_dims,
                       const int64_t *dims, const float *want)
{
    int64_t n = 1;

    assert_int_equal(t->dtype, BMS_DTYPE_F32);
    assert_int_equal(t->n_dims, n_dims);
    for (int d = 0; d < n_dims; d++) {
        assert_int_equal(t->dims[d], dims[d]);
        n *= dims[d];
    }
    for (int64_t i = 0; i < n; i++) {
        if (((const float *)t->data)[i] != want[i]) {
            fail_msg("element %lld: got %g, want %g", (long long)i,
                     (double)((const float *)t->data)[i], (double)want[i]);
        }
    }
}


static void teardown_pb(void)
{
    bms__pool_fini(&pb_pool);
}


/* An If on input c whose branches read the outer x: then 2x (Add(x, x)),
 * else -x (Neg); else also declares its output without a shape. */
static Onnx__GraphProto *if_graph(void)
{
    static const int64_t three[] = {3};
    Onnx__GraphProto *then_g = graph(
        (Onnx__NodeProto *[]){node("Add", "x x", "t"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("t", F32, 1, three), NULL}, NULL);
    Onnx__GraphProto *else_g = graph(
        (Onnx__NodeProto *[]){node("Neg", "x", "e"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("e", F32, -1, NULL), NULL}, NULL);
    Onnx__NodeProto *n = node("If", "c", "y");

    attr_graph(n, "then_branch", then_g);
    attr_graph(n, "else_branch", else_g);
    return graph((Onnx__NodeProto *[]){n, NULL},
                 (Onnx__ValueInfoProto *[]){vinfo("c", BOOL, 0, NULL),
                                            vinfo("x", F32, 1, three), NULL},
                 (Onnx__ValueInfoProto *[]){vinfo("y", F32, -1, NULL), NULL},
                 NULL);
}


/* x = [1, -2, 3]: then gives [2, -4, 6], else [-1, 2, -3]; alternating
 * runs check the session's reuse of memory between them. */
static void if_runs_the_branch_the_condition_picks(void **state)
{
    static const int64_t three[] = {3};
    static const float want_then[] = {2, -4, 6};
    static const float want_else[] = {-1, 2, -3};
    float x[] = {1, -2, 3};
    unsigned char c = 1;
    struct bms_tensor in[2] = {{BMS_DTYPE_BOOL, 0, {0}, &c},
                               {BMS_DTYPE_F32, 1, {3}, x}};
    struct bms_model *model = load_ok(if_graph());
    struct bms_session *s = NULL;
    struct bms_tensor out;

    (void)state;
    assert_int_equal(bms_session_create(model, &s, NULL), BMS_OK);
    for (int i = 0; i < 4; i++) {
        c = (unsigned char)(i % 2 == 0);
        run_ok(s, in, &out);
        assert_f32(&out, 1, three, c ? want_then : want_else);
    }
    bms_session_destroy(s);
    bms_model_destroy(model);
    teardown_pb();
}


/* Branches of different shapes: then the outer x ([3]), else the
 * initializer k of dims [] = 5. */
static void if_branches_may_differ_in_shape(void **state)
{
    static const int64_t three[] = {3};
    static const float want_x[] = {7, 8, 9};
    static const float want_k[] = {5};
    Onnx__GraphProto *then_g = graph(
        (Onnx__NodeProto *[]){node("Identity", "x", "t"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("t", F32, -1, NULL), NULL}, NULL);
    Onnx__GraphProto *else_g = graph(
        NULL, NULL, (Onnx__ValueInfoProto *[]){vinfo("k", F32, -1, NULL),
                                               NULL},
        (Onnx__TensorProto *[]){scalar_f32("k", 5), NULL});
    Onnx__NodeProto *n = node("If", "c", "y");
    float x[] = {7, 8, 9};
    unsigned char c = 0;
    struct bms_tensor in[2] = {{BMS_DTYPE_BOOL, 0, {0}, &c},
                               {BMS_DTYPE_F32, 1, {3}, x}};
    struct bms_session *s = NULL;
    struct bms_model *model;
    struct bms_tensor out;

    (void)state;
    attr_graph(n, "then_branch", then_g);
    attr_graph(n, "else_branch", else_g);
    model = load_ok(graph(
        (Onnx__NodeProto *[]){n, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("c", BOOL, 0, NULL),
                                   vinfo("x", F32, 1, three), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("y", F32, -1, NULL), NULL}, NULL));
    assert_int_equal(bms_session_create(model, &s, NULL), BMS_OK);
    for (int i = 0; i < 4; i++) {
        c = (unsigned char)(i % 2);
        run_ok(s, in, &out);
        if (c) {
            assert_f32(&out, 1, three, want_x);
        } else {
            assert_f32(&out, 0, NULL, want_k);
        }
    }
    bms_session_destroy(s);
    bms_model_destroy(model);
    teardown_pb();
}


/* Loop without a trip count: s starts at 0 and adds iteration i (as
 * float) while s < 5.  i = 0: s = 0; 1: 1; 2: 3; 3: 6, and the condition
 * turns false.  Final s = 6, scan output [0, 1, 3, 6], 4 rows. */
static void loop_runs_until_its_condition_fails(void **state)
{
    static const int64_t one[] = {1};
    static const int64_t four_one[] = {4, 1};
    static const float want_s[] = {6};
    static const float want_scan[] = {0, 1, 3, 6};
    Onnx__NodeProto *cast = node("Cast", "i", "fi");
    Onnx__GraphProto *body;
    Onnx__NodeProto *n = node("Loop", "- c s0", "s scan");
    struct bms_model *model;
    struct bms_session *s = NULL;
    struct bms_tensor out[2];
    unsigned char c = 1;
    float s0[] = {0};
    struct bms_tensor in[2] = {{BMS_DTYPE_BOOL, 0, {0}, &c},
                               {BMS_DTYPE_F32, 1, {1}, s0}};

    (void)state;
    attr_int(cast, "to", F32);
    body = graph(
        (Onnx__NodeProto *[]){cast, node("Add", "s_in fi", "s_out"),
                              node("Less", "s_out five", "c_out"),
                              node("Identity", "s_out", "row"), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("i", I64, 0, NULL),
                                   vinfo("c_in", BOOL, 0, NULL),
                                   vinfo("s_in", 0, -1, NULL), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("c_out", BOOL, 0, NULL),
                                   vinfo("s_out", F32, 1, one),
                                   vinfo("row", F32, 1, one), NULL},
        NULL);
    attr_graph(n, "body", body);
    model = load_ok(graph(
        (Onnx__NodeProto *[]){n, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("c", BOOL, 0, NULL),
                                   vinfo("s0", F32, 1, one), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("s", F32, -1, NULL),
                                   vinfo("scan", F32, -1, NULL), NULL},
        (Onnx__TensorProto *[]){scalar_f32("five", 5), NULL}));
    assert_int_equal(bms_session_create(model, &s, NULL), BMS_OK);
    for (int i = 0; i < 2; i++) {
        run_ok(s, in, out);
        assert_f32(&out[0], 1, one, want_s);
        assert_f32(&out[1], 2, four_one, want_scan);
    }
    bms_session_destroy(s);
    bms_model_destroy(model);
    teardown_pb();
}


/* A Loop of trip count 3 whose body holds an If (on cond_in, always true)
 * that adds the model's input x, two graphs out: y = 0 + 3x, with
 * x = 2: 6. */
static void nested_subgraph_reads_the_outermost_graph(void **state)
{
    static const int64_t one[] = {1};
    static const float want[] = {6};
    Onnx__GraphProto *then_g = graph(
        (Onnx__NodeProto *[]){node("Add", "y_in x", "t"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("t", F32, -1, NULL), NULL}, NULL);
    Onnx__GraphProto *else_g = graph(
        (Onnx__NodeProto *[]){node("Identity", "y_in", "e"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("e", F32, -1, NULL), NULL}, NULL);
    Onnx__NodeProto *inner = node("If", "c_in", "y_out");
    Onnx__NodeProto *loop = node("Loop", "m - y0", "y");
    Onnx__TensorProto *m = scalar_f32("m", 0);
    Onnx__GraphProto *body;
    struct bms_model *model;
    struct bms_session *s = NULL;
    struct bms_tensor out;
    float x[] = {2};
    float y0[] = {0};
    struct bms_tensor in[2] = {{BMS_DTYPE_F32, 1, {1}, x},
                               {BMS_DTYPE_F32, 1, {1}, y0}};

    (void)state;
    m->data_type = I64;
    m->n_float_data = 0;
    m->n_int64_data = 1;
    m->int64_data = pb_alloc(sizeof(int64_t));
    m->int64_data[0] = 3;
    attr_graph(inner, "then_branch", then_g);
    attr_graph(inner, "else_branch", else_g);
    body = graph(
        (Onnx__NodeProto *[]){node("Identity", "c_in", "c_out"), inner,
                              NULL},
        (Onnx__ValueInfoProto *[]){vinfo("i", I64, 0, NULL),
                                   vinfo("c_in", BOOL, 0, NULL),
                                   vinfo("y_in", F32, 1, one), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("c_out", BOOL, 0, NULL),
                                   vinfo("y_out", F32, 1, one), NULL},
        NULL);
    attr_graph(loop, "body", body);
    model = load_ok(graph(
        (Onnx__NodeProto *[]){loop, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("x", F32, 1, one),
                                   vinfo("y0", F32, 1, one), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("y", F32, -1, NULL), NULL},
        (Onnx__TensorProto *[]){m, NULL}));
    assert_int_equal(bms_session_create(model, &s, NULL), BMS_OK);
    run_ok(s, in, &out);
    assert_f32(&out, 1, one, want);
    bms_session_destroy(s);
    bms_model_destroy(model);
    teardown_pb();
}


/* Scan-9 over x = [[1, 2, 3], [4, 5, 6]] along axis 1, backwards: the
 * columns come as [3, 6], [2, 5], [1, 4]; the running sum is [3, 6],
 * [5, 11], [6, 15], stacked along output axis 1:
 * [[3, 5, 6], [6, 11, 15]]; final state [6, 15]. */
static void scan_walks_axes_and_directions(void **state)
{
    static const int64_t two[] = {2};
    static const int64_t two_three[] = {2, 3};
    static const int64_t axis1[] = {1};
    static const float want_sum[] = {6, 15};
    static const float want_scan[] = {3, 5, 6, 6, 11, 15};
    Onnx__NodeProto *n = node("Scan", "init x", "sum rows");
    Onnx__GraphProto *body = graph(
        (Onnx__NodeProto *[]){node("Add", "s_in col", "s_out"),
                              node("Identity", "s_out", "row"), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("s_in", F32, 1, two),
                                   vinfo("col", F32, 1, two), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("s_out", F32, 1, two),
                                   vinfo("row", F32, 1, two), NULL},
        NULL);
    struct bms_model *model;
    struct bms_session *s = NULL;
    struct bms_tensor out[2];
    float init[] = {0, 0};
    float x[] = {1, 2, 3, 4, 5, 6};
    struct bms_tensor in[2] = {{BMS_DTYPE_F32, 1, {2}, init},
                               {BMS_DTYPE_F32, 2, {2, 3}, x}};

    (void)state;
    attr_graph(n, "body", body);
    attr_int(n, "num_scan_inputs", 1);
    attr_ints(n, "scan_input_axes", 1, axis1);
    attr_ints(n, "scan_input_directions", 1, axis1);
    attr_ints(n, "scan_output_axes", 1, axis1);
    model = load_ok(graph(
        (Onnx__NodeProto *[]){n, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("init", F32, 1, two),
                                   vinfo("x", F32, 2, two_three), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("sum", F32, -1, NULL),
                                   vinfo("rows", F32, -1, NULL), NULL},
        NULL));
    assert_int_equal(bms_session_create(model, &s, NULL), BMS_OK);
    run_ok(s, in, out);
    assert_f32(&out[0], 1, two, want_sum);
    assert_f32(&out[1], 2, two_three, want_scan);
    bms_session_destroy(s);
    bms_model_destroy(model);
    teardown_pb();
}


/* z = Neg(x) is read only inside the If's branches: the optimiser must
 * keep its node, and must not fold the If on its constant condition.
 * x = [1, -2, 3], then gives z + z = [-2, 4, -6]. */
static void optimiser_keeps_values_subgraphs_read(void **state)
{
    static const int64_t three[] = {3};
    static const float want[] = {-2, 4, -6};
    Onnx__GraphProto *then_g = graph(
        (Onnx__NodeProto *[]){node("Add", "z z", "t"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("t", F32, -1, NULL), NULL}, NULL);
    Onnx__GraphProto *else_g = graph(
        (Onnx__NodeProto *[]){node("Identity", "z", "e"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("e", F32, -1, NULL), NULL}, NULL);
    Onnx__NodeProto *n = node("If", "c", "y");
    Onnx__TensorProto *c = scalar_f32("c", 0);
    struct bms_model *model;
    struct bms_session *s = NULL;
    struct bms_tensor out;
    float x[] = {1, -2, 3};
    struct bms_tensor in = {BMS_DTYPE_F32, 1, {3}, x};
    char saved[32] = "";
    const char *old;

    (void)state;
    c->data_type = BOOL;
    c->n_float_data = 0;
    c->n_int32_data = 1;
    c->int32_data = pb_alloc(sizeof(int32_t));
    c->int32_data[0] = 1;
    attr_graph(n, "then_branch", then_g);
    attr_graph(n, "else_branch", else_g);
    old = getenv("BMS_OPTIMIZE");
    if (old != NULL) {
        snprintf(saved, sizeof(saved), "%s", old);
    }
    unsetenv("BMS_OPTIMIZE");
    model = load_ok(graph(
        (Onnx__NodeProto *[]){node("Neg", "x", "z"), n, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("x", F32, 1, three), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("y", F32, -1, NULL), NULL},
        (Onnx__TensorProto *[]){c, NULL}));
    if (old != NULL) {
        setenv("BMS_OPTIMIZE", saved, 1);
    }
    assert_int_equal(bms_model_n_nodes(model), 2);
    assert_int_equal(bms_session_create(model, &s, NULL), BMS_OK);
    run_ok(s, &in, &out);
    assert_f32(&out, 1, three, want);
    bms_session_destroy(s);
    bms_model_destroy(model);
    teardown_pb();
}


/* A NULL-terminated array of one pointer, from the test's pool (a
 * compound literal in a loop would be the same array every time). */
static void **one_of(void *p)
{
    void **a = pb_alloc(2 * sizeof(void *));

    a[0] = p;
    return a;
}


/* An If whose then branch is an If, 20 levels deep (the limit is 16). */
static void loader_refuses_subgraphs_nested_too_deep(void **state)
{
    Onnx__GraphProto *g = NULL;
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};

    (void)state;
    for (int level = 0; level <= 20; level++) {
        Onnx__NodeProto *n = node(level == 0 ? "Identity" : "If", "c", "y");
        Onnx__GraphProto *leaf = graph(
            (Onnx__NodeProto **)one_of(node("Identity", "c", "y")), NULL,
            (Onnx__ValueInfoProto **)one_of(vinfo("y", BOOL, -1, NULL)),
            NULL);

        if (level > 0) {
            attr_graph(n, "then_branch", g);
            attr_graph(n, "else_branch", leaf);
        }
        g = graph((Onnx__NodeProto **)one_of(n),
                  level == 20 ? (Onnx__ValueInfoProto **)one_of(
                                    vinfo("c", BOOL, 0, NULL))
                              : NULL,
                  (Onnx__ValueInfoProto **)one_of(vinfo("y", BOOL, -1,
                                                        NULL)), NULL);
    }
    assert_int_equal(load(g, &model, &diag), BMS_ERR_LIMIT);
    assert_null(model);
    if (strstr(diag.msg, "nest") == NULL) {
        fail_msg("%s", diag.msg);
    }
    teardown_pb();
}


/* b = Neg(a) and a = If(c) whose branch reads b: a cycle through the
 * subgraph. */
static void loader_refuses_a_cycle_through_a_subgraph(void **state)
{
    Onnx__GraphProto *br = graph(
        (Onnx__NodeProto *[]){node("Identity", "b", "t"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("t", F32, -1, NULL), NULL}, NULL);
    Onnx__NodeProto *n = node("If", "c", "a");
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};

    (void)state;
    attr_graph(n, "then_branch", br);
    attr_graph(n, "else_branch", br);
    assert_int_equal(load(graph(
        (Onnx__NodeProto *[]){n, node("Neg", "a", "b"), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("c", BOOL, 0, NULL), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("b", F32, -1, NULL), NULL}, NULL),
        &model, &diag), BMS_ERR_INVALID);
    assert_null(model);
    assert_non_null(strstr(diag.msg, "cycle"));
    teardown_pb();
}


/* A branch that reads a name no graph in scope has. */
static void loader_refuses_an_unknown_outer_name(void **state)
{
    Onnx__GraphProto *br = graph(
        (Onnx__NodeProto *[]){node("Identity", "nowhere", "t"), NULL}, NULL,
        (Onnx__ValueInfoProto *[]){vinfo("t", F32, -1, NULL), NULL}, NULL);
    Onnx__NodeProto *n = node("If", "c", "a");
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};

    (void)state;
    attr_graph(n, "then_branch", br);
    attr_graph(n, "else_branch", br);
    assert_int_equal(load(graph(
        (Onnx__NodeProto *[]){n, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("c", BOOL, 0, NULL), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("a", F32, -1, NULL), NULL}, NULL),
        &model, &diag), BMS_ERR_INVALID);
    assert_null(model);
    assert_non_null(strstr(diag.msg, "nowhere"));
    teardown_pb();
}


/* A graph attribute on an operator that takes none. */
static void loader_refuses_a_graph_on_other_operators(void **state)
{
    Onnx__GraphProto *br = graph(
        NULL, NULL, (Onnx__ValueInfoProto *[]){vinfo("x", F32, -1, NULL),
                                               NULL}, NULL);
    Onnx__NodeProto *n = node("Relu", "x", "y");
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};
    static const int64_t one[] = {1};

    (void)state;
    attr_graph(n, "body", br);
    assert_int_equal(load(graph(
        (Onnx__NodeProto *[]){n, NULL},
        (Onnx__ValueInfoProto *[]){vinfo("x", F32, 1, one), NULL},
        (Onnx__ValueInfoProto *[]){vinfo("y", F32, -1, NULL), NULL}, NULL),
        &model, &diag), BMS_ERR_UNSUPPORTED);
    assert_null(model);
    teardown_pb();
}


int bms_test_control(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(if_runs_the_branch_the_condition_picks),
        cmocka_unit_test(if_branches_may_differ_in_shape),
        cmocka_unit_test(loop_runs_until_its_condition_fails),
        cmocka_unit_test(nested_subgraph_reads_the_outermost_graph),
        cmocka_unit_test(scan_walks_axes_and_directions),
        cmocka_unit_test(optimiser_keeps_values_subgraphs_read),
        cmocka_unit_test(loader_refuses_subgraphs_nested_too_deep),
        cmocka_unit_test(loader_refuses_a_cycle_through_a_subgraph),
        cmocka_unit_test(loader_refuses_an_unknown_outer_name),
        cmocka_unit_test(loader_refuses_a_graph_on_other_operators),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
