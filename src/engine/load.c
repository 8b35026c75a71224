/*
 * The ONNX loader: unpack a ModelProto, check it, and copy what the engine
 * needs into a struct bms_model (engine/model.h) that owns all of it, so
 * that the protobuf can be freed before the load returns.
 *
 * Order of checks: the operators first (an unsupported model says so
 * before anything else), then the values (each name has one source), the
 * edges (every input name is produced), the topological order, each
 * operator's prepare, the graph optimisations (optimize.c) and finally
 * load-time shape inference.  Any failure frees everything built so far.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/optimize.h"
#include "onnx.pb-c.h"

/* Largest model file bms reads: protobuf itself stops at 2 GiB. */
#define MAX_FILE_SIZE ((size_t)2 << 30)

/* Deepest nesting of messages handed to protobuf-c, which recurses once
 * per level with no limit of its own: a 60 KB file of nested subgraph
 * attributes overflows the stack.  ONNX's own parser stops at 100 too. */
#define MAX_NESTING 100

/* Name -> value index, open addressing; capacity is a power of two. */
struct name_map {
    int *slots;                  /* value index + 1; 0 is empty */
    size_t cap;
};

/* The enclosing graph's values that one node's subgraphs read, in capture
 * slot order (engine/graph.h, n_captures). */
struct captures {
    int *vals;                   /* value indices in the enclosing graph */
    int n;
    int cap;
};

/* One graph being loaded; a subgraph's loader links to the loader of the
 * graph around it, whose names it may read. */
struct loader {
    const Onnx__GraphProto *g;
    struct bms_model *m;
    struct name_map map;
    size_t values_cap;           /* slots in m->values */
    struct loader *parent;       /* NULL for the model's graph */
    struct captures *caps;       /* of the node owning this subgraph */
    struct bms_diag *diag;
};


static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */

    while (*s != '\0') {
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    }
    return h;
}


/* Index of the value with this name, or -1. */
static int map_find(const struct loader *ld, const char *name)
{
    size_t mask = ld->map.cap - 1;
    size_t i = (size_t)hash_name(name) & mask;

    while (ld->map.slots[i] != 0) {
        int v = ld->map.slots[i] - 1;

        if (strcmp(ld->m->values[v].name, name) == 0) {
            return v;
        }
        i = (i + 1) & mask;
    }
    return -1;
}


static void map_insert(struct loader *ld, const char *name, int v)
{
    size_t mask = ld->map.cap - 1;
    size_t i = (size_t)hash_name(name) & mask;

    while (ld->map.slots[i] != 0) {
        i = (i + 1) & mask;
    }
    ld->map.slots[i] = v + 1;
}


/* Keep the map at most half full for values_cap values. */
static enum bms_status grow_map(struct loader *ld)
{
    struct name_map old = ld->map;
    size_t cap = old.cap;

    while (cap < 2 * ld->values_cap) {
        cap *= 2;
    }
    if (cap == old.cap) {
        return BMS_OK;
    }
    ld->map.slots = calloc(cap, sizeof(int));
    if (ld->map.slots == NULL) {
        ld->map = old;
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    ld->map.cap = cap;
    for (int v = 0; v < ld->m->n_values; v++) {
        map_insert(ld, ld->m->values[v].name, v);
    }
    free(old.slots);
    return BMS_OK;
}


/* Room for one more value: subgraphs add outer values beyond the count
 * check_counts made.  The map keeps indices, so moving is safe. */
static enum bms_status grow_values(struct loader *ld)
{
    struct bms_model *m = ld->m;
    struct bms__value *values;
    size_t cap = ld->values_cap * 2 + 16;

    if ((size_t)m->n_values < ld->values_cap) {
        return BMS_OK;
    }
    if (cap > BMS__MAX_COUNT) {
        return bms_diag_set(ld->diag, BMS_ERR_LIMIT,
                            "graph has more than %d values", BMS__MAX_COUNT);
    }
    values = bms__pool_alloc(&m->pool, (cap + 1) * sizeof(*values));
    if (values == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    memcpy(values, m->values, (size_t)m->n_values * sizeof(*values));
    bms__pool_free(&m->pool, m->values);
    m->values = values;
    ld->values_cap = cap;
    return grow_map(ld);
}


/* Append a value named name; BMS_ERR_INVALID if the name exists. */
static enum bms_status add_value(struct loader *ld, const char *name,
                                 enum bms__value_kind kind, int index,
                                 int *out)
{
    struct bms_model *m = ld->m;
    struct bms__value *v;
    enum bms_status rc;

    if (map_find(ld, name) >= 0) {
        return bms_diag_set(ld->diag, BMS_ERR_INVALID,
                            "value '%s' has more than one source", name);
    }
    rc = grow_values(ld);
    if (rc != BMS_OK) {
        return rc;
    }
    v = &m->values[m->n_values];
    v->name = bms__pool_strdup(&m->pool, name);
    if (v->name == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    v->kind = kind;
    v->index = index;
    v->infer_n_dims = -1;
    map_insert(ld, v->name, m->n_values);
    *out = m->n_values++;
    return BMS_OK;
}


/* The capture slot of enclosing value v in caps, added when new. */
static enum bms_status capture_slot(struct loader *ld, int v, int *slot)
{
    struct captures *c = ld->caps;

    for (int i = 0; i < c->n; i++) {
        if (c->vals[i] == v) {
            *slot = i;
            return BMS_OK;
        }
    }
    if (c->n == c->cap) {
        int cap = c->cap * 2 + 8;
        int *vals = realloc(c->vals, (size_t)cap * sizeof(int));

        if (vals == NULL) {
            return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
        }
        c->vals = vals;
        c->cap = cap;
    }
    c->vals[c->n] = v;
    *slot = c->n++;
    return BMS_OK;
}


/* The value a name means in this graph: its own, else one of an
 * enclosing graph, which becomes an outer value here (and in every graph
 * in between) read through the owning node's captures.  *out is -1 when
 * no graph in scope has the name. */
static enum bms_status lookup(struct loader *ld, const char *name, int *out)
{
    enum bms_status rc;
    int outer = -1;
    int slot = -1;

    *out = map_find(ld, name);
    if (*out >= 0 || ld->parent == NULL) {
        return BMS_OK;
    }
    rc = lookup(ld->parent, name, &outer);
    if (rc != BMS_OK || outer < 0) {
        return rc;
    }
    rc = capture_slot(ld, outer, &slot);
    if (rc == BMS_OK) {
        rc = add_value(ld, name, BMS__VALUE_OUTER, slot, out);
    }
    return rc;
}


static int is_default_domain(const char *domain)
{
    return domain == NULL || domain[0] == '\0' ||
           strcmp(domain, "ai.onnx") == 0;
}


static int name_listed(char names[][64], int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}


/* Refuse the model if any node has no operator in bms, naming the first
 * few distinct ones. */
static enum bms_status check_operators(const struct loader *ld)
{
    char names[8][64];
    char msg[BMS_DIAG_SIZE];
    int n_names = 0;
    size_t len = 0;

    for (size_t i = 0; i < ld->g->n_node; i++) {
        const Onnx__NodeProto *np = ld->g->node[i];
        const char *op = np->op_type != NULL ? np->op_type : "";
        char name[64];

        if (is_default_domain(np->domain) && bms__op_find(op) != NULL) {
            continue;
        }
        if (is_default_domain(np->domain)) {
            snprintf(name, sizeof(name), "%s", op);
        } else {
            snprintf(name, sizeof(name), "%s.%s", np->domain, op);
        }
        if (n_names < 8 && !name_listed(names, n_names, name)) {
            memcpy(names[n_names++], name, sizeof(name));
        }
    }
    if (n_names == 0) {
        return BMS_OK;
    }
    if (n_names == 1) {
        return bms_diag_set(ld->diag, BMS_ERR_UNSUPPORTED,
                            "unsupported operator '%s'", names[0]);
    }
    msg[0] = '\0';
    for (int i = 0; i < n_names && len < sizeof(msg); i++) {
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%s",
                                i > 0 ? ", " : "", names[i]);
    }
    return bms_diag_set(ld->diag, BMS_ERR_UNSUPPORTED,
                        "unsupported operators: %s", msg);
}


static enum bms_status find_opset(const Onnx__ModelProto *mp,
                                  struct bms_model *m,
                                  struct bms_diag *diag)
{
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];

        if (is_default_domain(os->domain) && os->has_version) {
            m->opset = os->version;
            return BMS_OK;
        }
    }
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "opset_import has no entry for the default domain");
}


/* Check the counts before anything is allocated from them, and size the
 * value table: one slot per initializer, input and node output. */
static enum bms_status check_counts(const Onnx__GraphProto *g,
                                    size_t *n_values_max,
                                    struct bms_diag *diag)
{
    size_t n = g->n_initializer + g->n_input;

    if (g->n_node > BMS__MAX_COUNT || g->n_initializer > BMS__MAX_COUNT ||
        g->n_input > BMS__MAX_COUNT || g->n_output > BMS__MAX_COUNT) {
        return bms_diag_set(diag, BMS_ERR_LIMIT,
                            "graph has more than %d nodes or values",
                            BMS__MAX_COUNT);
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];

        if (np->n_input > BMS__MAX_COUNT || np->n_output > BMS__MAX_COUNT ||
            np->n_attribute > BMS__MAX_COUNT) {
            return bms_diag_set(diag, BMS_ERR_LIMIT,
                                "node %zu has too many inputs, outputs or "
                                "attributes", i);
        }
        n += np->n_output;
        if (n > BMS__MAX_COUNT) {
            return bms_diag_set(diag, BMS_ERR_LIMIT,
                                "graph has more than %d values",
                                BMS__MAX_COUNT);
        }
    }
    *n_values_max = n;
    return BMS_OK;
}


static enum bms_status onnx_dtype(int32_t elem_type, const char *what,
                                  enum bms_dtype *out, struct bms_diag *diag)
{
    if (elem_type == BMS_DTYPE_STRING) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: string tensors are not supported", what);
    }
    if (elem_type <= 0 || elem_type > BMS_DTYPE_U64) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: datatype %d is not supported", what,
                            (int)elem_type);
    }
    *out = (enum bms_dtype)elem_type;
    return BMS_OK;
}


/* The declared type of a graph input or output.  A missing shape leaves
 * the rank unknown (-1); a dim_param or a missing dim_value is -1. */
static enum bms_status read_value_info(const Onnx__ValueInfoProto *vi,
                                       const char *what,
                                       struct bms_value_info *info,
                                       struct bms_diag *diag)
{
    const Onnx__TypeProto *tp = vi->type;
    const Onnx__TensorShapeProto *shape;
    enum bms_status rc;

    info->dtype = BMS_DTYPE_UNDEFINED;
    info->n_dims = -1;
    if (tp == NULL || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) {
        return BMS_OK;
    }
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ||
        tp->tensor_type == NULL) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: only tensors are supported, not "
                            "sequences, maps or optionals", what);
    }
    if (tp->tensor_type->has_elem_type && tp->tensor_type->elem_type != 0) {
        rc = onnx_dtype(tp->tensor_type->elem_type, what, &info->dtype,
                        diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    shape = tp->tensor_type->shape;
    if (shape == NULL) {
        return BMS_OK;
    }
    if (shape->n_dim > BMS_MAX_DIMS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: %zu dims, bms supports at most %d", what,
                            shape->n_dim, BMS_MAX_DIMS);
    }
    for (size_t i = 0; i < shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = shape->dim[i];
        int dim_value = d->value_case ==
                        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;

        if (dim_value && (d->dim_value < 0 ||
                          d->dim_value > BMS__MAX_NUMEL)) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: dims[%zu] is %lld", what, i,
                                (long long)d->dim_value);
        }
        info->dims[i] = dim_value ? d->dim_value : -1;
    }
    info->n_dims = (int)shape->n_dim;
    return BMS_OK;
}


static enum bms_status add_initializers(struct loader *ld)
{
    struct bms_model *m = ld->m;
    char what[96];

    for (size_t i = 0; i < ld->g->n_initializer; i++) {
        const Onnx__TensorProto *tp = ld->g->initializer[i];
        const char *name = tp->name != NULL ? tp->name : "";
        enum bms_status rc;
        int v;

        snprintf(what, sizeof(what), "initializer '%s'", name);
        if (name[0] == '\0') {
            return bms_diag_set(ld->diag, BMS_ERR_INVALID,
                                "initializer %zu has no name", i);
        }
        rc = add_value(ld, name, BMS__VALUE_CONST, -1, &v);
        if (rc != BMS_OK) {
            return rc;
        }
        rc = bms__tensor_decode(tp, what, &m->pool, &m->values[v].t,
                                ld->diag);
        if (rc != BMS_OK) {
            return rc;
        }
        m->values[v].known = 1;
    }
    return BMS_OK;
}


static enum bms_status add_inputs(struct loader *ld)
{
    struct bms_model *m = ld->m;
    size_t n = ld->g->n_input;
    char what[96];

    m->input_values = bms__pool_alloc(&m->pool, (n + 1) * sizeof(int));
    m->inputs = bms__pool_alloc(&m->pool, (n + 1) * sizeof(*m->inputs));
    if (m->input_values == NULL || m->inputs == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const Onnx__ValueInfoProto *vi = ld->g->input[i];
        const char *name = vi->name != NULL ? vi->name : "";
        struct bms_value_info *info = &m->inputs[m->n_inputs];
        struct bms__value *val;
        enum bms_status rc;
        int v;

        /* An input that is also an initializer is a weight with a
         * default, not something the caller feeds. */
        if (name[0] == '\0' || map_find(ld, name) >= 0) {
            if (name[0] == '\0') {
                return bms_diag_set(ld->diag, BMS_ERR_INVALID,
                                    "graph input %zu has no name", i);
            }
            if (m->values[map_find(ld, name)].kind == BMS__VALUE_CONST) {
                continue;
            }
        }
        snprintf(what, sizeof(what), "input '%s'", name);
        rc = add_value(ld, name, BMS__VALUE_INPUT, m->n_inputs, &v);
        if (rc == BMS_OK) {
            rc = read_value_info(vi, what, info, ld->diag);
        }
        if (rc != BMS_OK) {
            return rc;
        }
        /* A subgraph's inputs may leave their type to the node that
         * feeds them (a Loop body's carried values). */
        if (info->dtype == BMS_DTYPE_UNDEFINED && ld->parent == NULL) {
            return bms_diag_set(ld->diag, BMS_ERR_INVALID,
                                "%s: no tensor type declared", what);
        }
        val = &m->values[v];
        info->name = val->name;
        val->t.dtype = info->dtype;
        val->known = info->n_dims >= 0 &&
                     info->dtype != BMS_DTYPE_UNDEFINED;
        val->t.n_dims = info->n_dims >= 0 ? info->n_dims : 0;
        memcpy(val->t.dims, info->dims, sizeof(info->dims));
        m->input_values[m->n_inputs++] = v;
    }
    return BMS_OK;
}


static enum bms_status copy_floats_ints(struct bms_model *m,
                                        const Onnx__AttributeProto *ap,
                                        struct bms__attr *a)
{
    if (a->type == BMS__ATTR_FLOATS) {
        float *f = bms__pool_alloc(&m->pool,
                                   (ap->n_floats + 1) * sizeof(float));

        if (f == NULL) {
            return BMS_ERR_NOMEM;
        }
        if (ap->n_floats > 0) {
            memcpy(f, ap->floats, ap->n_floats * sizeof(float));
        }
        a->floats = f;
        a->n = (int)ap->n_floats;
    } else if (a->type == BMS__ATTR_INTS) {
        int64_t *v = bms__pool_alloc(&m->pool,
                                     (ap->n_ints + 1) * sizeof(int64_t));

        if (v == NULL) {
            return BMS_ERR_NOMEM;
        }
        if (ap->n_ints > 0) {
            memcpy(v, ap->ints, ap->n_ints * sizeof(int64_t));
        }
        a->ints = v;
        a->n = (int)ap->n_ints;
    } else if (a->type == BMS__ATTR_STRINGS) {
        a->n = (int)ap->n_strings;
    }
    return BMS_OK;
}


/* Old exporters leave the type out; take it from the field that is set. */
static enum bms__attr_type attr_type(const Onnx__AttributeProto *ap)
{
    if (ap->has_type && ap->type != 0) {
        return (enum bms__attr_type)ap->type;
    }
    if (ap->n_floats > 0) {
        return BMS__ATTR_FLOATS;
    }
    if (ap->n_ints > 0) {
        return BMS__ATTR_INTS;
    }
    if (ap->n_strings > 0) {
        return BMS__ATTR_STRINGS;
    }
    if (ap->t != NULL) {
        return BMS__ATTR_TENSOR;
    }
    if (ap->g != NULL) {
        return BMS__ATTR_GRAPH;
    }
    if (ap->has_s) {
        return BMS__ATTR_STRING;
    }
    return ap->has_f ? BMS__ATTR_FLOAT : BMS__ATTR_INT;
}


static enum bms_status copy_attr(struct loader *ld,
                                 const Onnx__AttributeProto *ap,
                                 const char *label, struct bms__attr *a)
{
    struct bms_model *m = ld->m;
    char what[160];
    int graphs;
    char *s;

    a->name = bms__pool_strdup(&m->pool, ap->name);
    a->type = attr_type(ap);
    a->f = ap->f;
    a->i = ap->i;
    s = bms__pool_alloc(&m->pool, ap->s.len + 1);
    if (a->name == NULL || s == NULL ||
        copy_floats_ints(m, ap, a) != BMS_OK) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    if (ap->s.len > 0) {
        memcpy(s, ap->s.data, ap->s.len);
    }
    a->s = s;
    a->s_len = ap->s.len;
    graphs = ap->n_graphs > 0 ||
             (ap->has_type &&
              ap->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS);
    if (a->type != BMS__ATTR_TENSOR && a->type != BMS__ATTR_GRAPH &&
        !graphs) {
        return BMS_OK;
    }
    if (snprintf(what, sizeof(what), "%s: attribute '%s'", label,
                 a->name) >= (int)sizeof(what)) {
        what[sizeof(what) - 1] = '\0';
    }
    /* Graphs are built once every node of this graph is known
     * (build_subgraphs), so that they may read any of its values. */
    if (graphs) {
        return bms_diag_set(ld->diag, BMS_ERR_UNSUPPORTED,
                            "%s: lists of graphs are not supported", what);
    }
    if (a->type == BMS__ATTR_GRAPH) {
        if (ap->g == NULL) {
            return bms_diag_set(ld->diag, BMS_ERR_INVALID, "%s: no graph",
                                what);
        }
        return BMS_OK;
    }
    if (ap->t == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_INVALID, "%s: no tensor",
                            what);
    }
    a->t = bms__pool_alloc(&m->pool, sizeof(*a->t));
    if (a->t == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    return bms__tensor_decode(ap->t, what, &m->pool, a->t, ld->diag);
}


/* Copy node i of the protobuf (not yet sorted) into nodes[i], creating
 * the values it produces.  Inputs are resolved later. */
static enum bms_status copy_node(struct loader *ld, size_t i,
                                 struct bms__node *node)
{
    const Onnx__NodeProto *np = ld->g->node[i];
    struct bms_model *m = ld->m;
    struct bms__pool *pool = &m->pool;
    char label[160];
    enum bms_status rc;

    node->name = bms__pool_strdup(pool, np->name);
    node->op_type = bms__pool_strdup(pool, np->op_type);
    node->op = bms__op_find(np->op_type);
    node->opset = m->opset;
    node->n_inputs = (int)np->n_input;
    node->n_outputs = (int)np->n_output;
    node->n_attrs = (int)np->n_attribute;
    node->inputs = bms__pool_alloc(pool, (np->n_input + 1) * sizeof(int));
    node->outputs = bms__pool_alloc(pool, (np->n_output + 1) * sizeof(int));
    node->attrs = bms__pool_alloc(pool, (np->n_attribute + 1) *
                                  sizeof(*node->attrs));
    if (node->name == NULL || node->op_type == NULL ||
        node->inputs == NULL || node->outputs == NULL ||
        node->attrs == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    if (node->name[0] != '\0') {
        snprintf(label, sizeof(label), "node '%s' (%s)", node->name,
                 node->op_type);
    } else {
        snprintf(label, sizeof(label), "node %zu (%s)", i, node->op_type);
    }
    /* Every ONNX operator has at least one output, and kernels write
     * output 0 without asking. */
    if (node->n_outputs == 0) {
        return bms_diag_set(ld->diag, BMS_ERR_INVALID, "%s: no outputs",
                            label);
    }
    for (int k = 0; k < node->n_attrs; k++) {
        rc = copy_attr(ld, np->attribute[k], label, &node->attrs[k]);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    for (int k = 0; k < node->n_outputs; k++) {
        const char *name = np->output[k];

        node->outputs[k] = -1;
        if (name == NULL || name[0] == '\0') {
            continue;
        }
        rc = add_value(ld, name, BMS__VALUE_NODE, (int)i,
                       &node->outputs[k]);
        if (rc != BMS_OK) {
            bms_diag_prefix(ld->diag, "%s", label);
            return rc;
        }
    }
    return BMS_OK;
}


static enum bms_status resolve_inputs(struct loader *ld,
                                      struct bms__node *nodes)
{
    for (size_t i = 0; i < ld->g->n_node; i++) {
        const Onnx__NodeProto *np = ld->g->node[i];

        for (size_t k = 0; k < np->n_input; k++) {
            const char *name = np->input[k];

            enum bms_status rc;

            nodes[i].inputs[k] = -1;
            if (name == NULL || name[0] == '\0') {
                continue;
            }
            rc = lookup(ld, name, &nodes[i].inputs[k]);
            if (rc != BMS_OK) {
                return rc;
            }
            if (nodes[i].inputs[k] < 0) {
                return bms_diag_set(ld->diag, BMS_ERR_INVALID,
                                    "node %zu (%s): input '%s' is produced "
                                    "by no node, input or initializer", i,
                                    nodes[i].op_type, name);
            }
        }
    }
    return BMS_OK;
}


/* The nodes that read each value, as CSR: consumers of value v are
 * edges[first[v] .. first[v + 1]).  waiting[i] counts node i's inputs
 * that other nodes produce. */
struct consumers {
    int *first;
    int *edges;
    int *waiting;
};


static int is_edge(const struct bms_model *m, int v)
{
    return v >= 0 && m->values[v].kind == BMS__VALUE_NODE;
}


static enum bms_status find_consumers(const struct bms_model *m,
                                      const struct bms__node *nodes, int n,
                                      struct consumers *c)
{
    size_t n_edges = 0;

    c->waiting = calloc((size_t)n + 1, sizeof(int));
    c->first = calloc((size_t)m->n_values + 2, sizeof(int));
    if (c->waiting == NULL || c->first == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < nodes[i].n_inputs; k++) {
            if (is_edge(m, nodes[i].inputs[k])) {
                c->first[nodes[i].inputs[k] + 2]++;
                c->waiting[i]++;
                n_edges++;
            }
        }
    }
    c->edges = malloc((n_edges + 1) * sizeof(int));
    if (c->edges == NULL) {
        return BMS_ERR_NOMEM;
    }
    /* Prefix sums shifted by one, so that filling first[v + 1] leaves
     * first[] exactly as the CSR needs it. */
    for (int v = 0; v < m->n_values; v++) {
        c->first[v + 2] += c->first[v + 1];
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < nodes[i].n_inputs; k++) {
            if (is_edge(m, nodes[i].inputs[k])) {
                c->edges[c->first[nodes[i].inputs[k] + 1]++] = i;
            }
        }
    }
    return BMS_OK;
}


/* Kahn's algorithm over node indices: order[] gets the sorted nodes.
 * Nodes that become ready are taken in file order. */
static enum bms_status sort_nodes(struct loader *ld,
                                  const struct bms__node *nodes, int *order)
{
    struct consumers c = {NULL, NULL, NULL};
    int n = (int)ld->g->n_node;
    int head = 0;
    int tail = 0;
    enum bms_status rc;

    rc = find_consumers(ld->m, nodes, n, &c);
    if (rc != BMS_OK) {
        rc = bms_diag_set(ld->diag, rc, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (c.waiting[i] == 0) {
            order[tail++] = i;
        }
    }
    while (head < tail) {
        const struct bms__node *node = &nodes[order[head++]];

        for (int k = 0; k < node->n_outputs; k++) {
            int v = node->outputs[k];

            for (int e = v >= 0 ? c.first[v] : 0;
                 v >= 0 && e < c.first[v + 1]; e++) {
                if (--c.waiting[c.edges[e]] == 0) {
                    order[tail++] = c.edges[e];
                }
            }
        }
    }
    for (int i = 0; i < n && tail < n; i++) {
        if (c.waiting[i] > 0) {
            rc = bms_diag_set(ld->diag, BMS_ERR_INVALID,
                              "graph has a cycle through node %d '%s' (%s)",
                              i, nodes[i].name, nodes[i].op_type);
            break;
        }
    }
out:
    free(c.edges);
    free(c.first);
    free(c.waiting);
    return rc;
}


static enum bms_status build_graph(struct loader *ld);


/* Load one GRAPH attribute of a node as a subgraph that reads this
 * graph's values through caps; the new graph joins m->subgraphs. */
static enum bms_status build_subgraph(struct loader *ld,
                                      const Onnx__GraphProto *gp,
                                      struct captures *caps,
                                      struct bms__attr *a)
{
    struct loader sub = {0};
    enum bms_status rc;

    if (ld->m->depth >= BMS__MAX_GRAPH_DEPTH) {
        return bms_diag_set(ld->diag, BMS_ERR_LIMIT,
                            "subgraphs nest more than %d deep",
                            BMS__MAX_GRAPH_DEPTH);
    }
    sub.m = calloc(1, sizeof(*sub.m));
    if (sub.m == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    sub.m->next_subgraph = ld->m->subgraphs;
    ld->m->subgraphs = sub.m;
    sub.m->depth = ld->m->depth + 1;
    sub.m->opset = ld->m->opset;
    sub.g = gp;
    sub.parent = ld;
    sub.caps = caps;
    sub.diag = ld->diag;
    rc = check_operators(&sub);
    if (rc == BMS_OK) {
        rc = build_graph(&sub);
    }
    free(sub.map.slots);
    /* Only the outermost levels name where they are: a message from
     * deep inside would be all prefixes. */
    if (rc != BMS_OK && ld->m->depth < 2) {
        bms_diag_prefix(ld->diag, "attribute '%s'", a->name);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    a->g = sub.m;
    return BMS_OK;
}


/* Build node i's subgraphs, then append the values they read from this
 * graph (or, through it, from graphs further out) to the node's inputs,
 * so that ordering, lifetimes and the optimiser see those reads. */
static enum bms_status node_subgraphs(struct loader *ld, size_t i,
                                      struct bms__node *node)
{
    const Onnx__NodeProto *np = ld->g->node[i];
    struct captures caps = {NULL, 0, 0};
    enum bms_status rc = BMS_OK;
    int *inputs;

    for (int k = 0; k < node->n_attrs && rc == BMS_OK; k++) {
        if (node->attrs[k].type != BMS__ATTR_GRAPH) {
            continue;
        }
        if (!bms__op_runs_graphs(node->op)) {
            rc = bms_diag_set(ld->diag, BMS_ERR_UNSUPPORTED,
                              "attribute '%s': %s takes no graph",
                              node->attrs[k].name, node->op_type);
            break;
        }
        rc = build_subgraph(ld, np->attribute[k]->g, &caps,
                            &node->attrs[k]);
    }
    if (rc != BMS_OK || caps.n == 0) {
        goto out;
    }
    inputs = bms__pool_alloc(&ld->m->pool, ((size_t)node->n_inputs +
                             (size_t)caps.n + 1) * sizeof(int));
    if (inputs == NULL) {
        rc = bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(inputs, node->inputs, (size_t)node->n_inputs * sizeof(int));
    memcpy(inputs + node->n_inputs, caps.vals, (size_t)caps.n * sizeof(int));
    node->inputs = inputs;
    node->n_inputs += caps.n;
    node->n_captures = caps.n;
out:
    free(caps.vals);
    return rc;
}


static enum bms_status build_subgraphs(struct loader *ld,
                                       struct bms__node *nodes)
{
    char label[160];

    for (size_t i = 0; i < ld->g->n_node; i++) {
        enum bms_status rc = node_subgraphs(ld, i, &nodes[i]);

        if (rc != BMS_OK && ld->m->depth >= 2) {
            return rc;
        }
        if (rc != BMS_OK) {
            if (nodes[i].name[0] != '\0') {
                snprintf(label, sizeof(label), "node '%s' (%s)",
                         nodes[i].name, nodes[i].op_type);
            } else {
                snprintf(label, sizeof(label), "node %zu (%s)", i,
                         nodes[i].op_type);
            }
            bms_diag_prefix(ld->diag, "%s", label);
            return rc;
        }
    }
    return BMS_OK;
}


/* Copy the nodes into the model in sorted order; node indices stored in
 * values follow. */
static enum bms_status build_nodes(struct loader *ld)
{
    struct bms_model *m = ld->m;
    size_t n = ld->g->n_node;
    struct bms__node *unsorted;
    int *order;
    enum bms_status rc = BMS_OK;

    unsorted = bms__pool_alloc(&m->pool, (n + 1) * sizeof(*unsorted));
    m->nodes = bms__pool_alloc(&m->pool, (n + 1) * sizeof(*m->nodes));
    order = bms__pool_alloc(&m->pool, (n + 1) * sizeof(int));
    if (unsorted == NULL || m->nodes == NULL || order == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && rc == BMS_OK; i++) {
        rc = copy_node(ld, i, &unsorted[i]);
    }
    if (rc == BMS_OK) {
        rc = resolve_inputs(ld, unsorted);
    }
    if (rc == BMS_OK) {
        rc = build_subgraphs(ld, unsorted);
    }
    if (rc == BMS_OK) {
        rc = sort_nodes(ld, unsorted, order);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct bms__node *node = &m->nodes[i];

        *node = unsorted[order[i]];
        for (int k = 0; k < node->n_outputs; k++) {
            if (node->outputs[k] >= 0) {
                m->values[node->outputs[k]].index = (int)i;
            }
        }
        if (node->n_inputs > m->max_node_inputs) {
            m->max_node_inputs = node->n_inputs;
        }
        if (node->n_outputs > m->max_node_outputs) {
            m->max_node_outputs = node->n_outputs;
        }
    }
    m->n_nodes = (int)n;
    return BMS_OK;
}


static enum bms_status add_outputs(struct loader *ld)
{
    struct bms_model *m = ld->m;
    size_t n = ld->g->n_output;
    char what[96];

    m->output_values = bms__pool_alloc(&m->pool, (n + 1) * sizeof(int));
    m->outputs = bms__pool_alloc(&m->pool, (n + 1) * sizeof(*m->outputs));
    if (m->output_values == NULL || m->outputs == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const Onnx__ValueInfoProto *vi = ld->g->output[i];
        const char *name = vi->name != NULL ? vi->name : "";
        enum bms_status rc;
        int v;

        snprintf(what, sizeof(what), "output '%s'", name);
        rc = lookup(ld, name, &v);
        if (rc != BMS_OK) {
            return rc;
        }
        if (v < 0) {
            return bms_diag_set(ld->diag, BMS_ERR_INVALID,
                                "%s is produced by no node, input or "
                                "initializer", what);
        }
        rc = read_value_info(vi, what, &m->outputs[i], ld->diag);
        if (rc != BMS_OK) {
            return rc;
        }
        m->outputs[i].name = m->values[v].name;
        m->output_values[i] = v;
    }
    m->n_outputs = (int)n;
    return BMS_OK;
}


static enum bms_status prepare_nodes(struct bms_model *m,
                                     struct bms_diag *diag)
{
    char label[160];

    for (int i = 0; i < m->n_nodes; i++) {
        struct bms__node *node = &m->nodes[i];
        enum bms_status rc = BMS_OK;

        if (node->op->prepare != NULL) {
            rc = node->op->prepare(node, diag);
        }
        if (rc != BMS_OK) {
            bms_diag_prefix(diag, "%s",
                            bms__node_label(m, node, label, sizeof(label)));
            return rc;
        }
    }
    return BMS_OK;
}


/* Load ld->g into ld->m up to prepared nodes, its operators checked: the
 * part the model's graph and every subgraph share. */
static enum bms_status build_graph(struct loader *ld)
{
    size_t n_values_max = 0;
    enum bms_status rc;

    rc = check_counts(ld->g, &n_values_max, ld->diag);
    if (rc != BMS_OK) {
        return rc;
    }
    ld->m->values = bms__pool_alloc(&ld->m->pool, (n_values_max + 1) *
                                    sizeof(*ld->m->values));
    ld->values_cap = n_values_max;
    ld->map.cap = 16;
    while (ld->map.cap < 2 * n_values_max) {
        ld->map.cap *= 2;
    }
    ld->map.slots = calloc(ld->map.cap, sizeof(int));
    if (ld->m->values == NULL || ld->map.slots == NULL) {
        return bms_diag_set(ld->diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = add_initializers(ld);
    if (rc == BMS_OK) {
        rc = add_inputs(ld);
    }
    if (rc == BMS_OK) {
        rc = build_nodes(ld);
    }
    if (rc == BMS_OK) {
        rc = add_outputs(ld);
    }
    if (rc == BMS_OK) {
        rc = prepare_nodes(ld->m, ld->diag);
    }
    return rc;
}


static enum bms_status build_model(struct loader *ld,
                                   const Onnx__ModelProto *mp)
{
    enum bms_status rc;

    rc = check_operators(ld);
    if (rc == BMS_OK) {
        rc = find_opset(mp, ld->m, ld->diag);
    }
    if (rc == BMS_OK) {
        rc = build_graph(ld);
    }
    if (rc == BMS_OK) {
        rc = bms__model_optimize(ld->m, ld->diag);
    }
    if (rc == BMS_OK) {
        rc = bms__model_infer_shapes(ld->m, ld->diag);
    }
    return rc;
}


/* A protobuf varint at *p, advancing *p; 0 when it runs past end. */
static int read_varint(const uint8_t **p, const uint8_t *end,
                       uint64_t *out)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;

        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 1;
        }
    }
    return 0;
}


/* Whether the message of type desc in [p, end) nests sub-messages at
 * most MAX_NESTING - depth levels deep.  The walk follows the schema, so
 * bytes and strings are skipped whole.  Malformed wire data passes:
 * unpacking refuses it without recursing into it. */
static int nesting_ok(const uint8_t *p, const uint8_t *end,
                      const ProtobufCMessageDescriptor *desc, int depth)
{
    if (depth > MAX_NESTING) {
        return 0;
    }
    while (p < end) {
        const ProtobufCFieldDescriptor *f;
        uint64_t tag;
        uint64_t n;

        if (!read_varint(&p, end, &tag)) {
            return 1;
        }
        switch (tag & 7) {
        case 0:                  /* varint */
            if (!read_varint(&p, end, &n)) {
                return 1;
            }
            continue;
        case 1:                  /* fixed64 */
            n = 8;
            break;
        case 5:                  /* fixed32 */
            n = 4;
            break;
        case 2:                  /* length-delimited */
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) {
                return 1;
            }
            f = protobuf_c_message_descriptor_get_field(
                desc, (unsigned)(tag >> 3 & 0x1fffffff));
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !nesting_ok(p, p + n, f->descriptor, depth + 1)) {
                return 0;
            }
            break;
        default:                 /* groups: protobuf-c refuses them */
            return 1;
        }
        if (n > (uint64_t)(end - p)) {
            return 1;
        }
        p += n;
    }
    return 1;
}


/* The ModelProto in data, its nesting checked before protobuf-c recurses
 * into it. */
static enum bms_status unpack_model(const void *data, size_t size,
                                    Onnx__ModelProto **out,
                                    struct bms_diag *diag)
{
    if (data == NULL || size == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "empty model");
    }
    if (!nesting_ok(data, (const uint8_t *)data + size,
                    &onnx__model_proto__descriptor, 1)) {
        return bms_diag_set(diag, BMS_ERR_LIMIT,
                            "model nests messages more than %d deep",
                            MAX_NESTING);
    }
    *out = onnx__model_proto__unpack(NULL, size, data);
    if (*out == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "not an ONNX model (protobuf does not parse)");
    }
    return BMS_OK;
}


/* Build the model from mp, which this frees in every case. */
static enum bms_status load_unpacked(Onnx__ModelProto *mp,
                                     struct bms_model **out,
                                     struct bms_diag *diag)
{
    struct loader ld = {0};
    enum bms_status rc;

    if (mp->graph == NULL) {
        onnx__model_proto__free_unpacked(mp, NULL);
        return bms_diag_set(diag, BMS_ERR_INVALID, "model has no graph");
    }
    ld.g = mp->graph;
    ld.diag = diag;
    ld.m = calloc(1, sizeof(*ld.m));
    if (ld.m == NULL) {
        onnx__model_proto__free_unpacked(mp, NULL);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = build_model(&ld, mp);
    free(ld.map.slots);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (rc != BMS_OK) {
        bms_model_destroy(ld.m);
        return rc;
    }
    *out = ld.m;
    return BMS_OK;
}


enum bms_status bms_model_load_memory(const void *data, size_t size,
                                      struct bms_model **out,
                                      struct bms_diag *diag)
{
    Onnx__ModelProto *mp = NULL;
    enum bms_status rc;

    rc = unpack_model(data, size, &mp, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    return load_unpacked(mp, out, diag);
}


/* The file's bytes go as soon as they are unpacked, so that a load holds
 * at most two copies of the weights (the protobuf's and the model's). */
enum bms_status bms_model_load_file(const char *path, struct bms_model **out,
                                    struct bms_diag *diag)
{
    FILE *f = fopen(path, "rb");
    Onnx__ModelProto *mp = NULL;
    enum bms_status rc;
    char *data = NULL;
    long len;

    if (f == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "%s: cannot open",
                            path);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "%s: cannot read", path);
        goto out;
    }
    if ((size_t)len > MAX_FILE_SIZE) {
        rc = bms_diag_set(diag, BMS_ERR_LIMIT, "%s: larger than 2 GiB",
                          path);
        goto out;
    }
    data = malloc((size_t)len + 1);
    if (data == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(data, 1, (size_t)len, f) != (size_t)len) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "%s: cannot read", path);
        goto out;
    }
    fclose(f);
    f = NULL;
    rc = unpack_model(data, (size_t)len, &mp, diag);
    free(data);
    data = NULL;
    if (rc == BMS_OK) {
        rc = load_unpacked(mp, out, diag);
    }
out:
    free(data);
    if (f != NULL) {
        fclose(f);
    }
    return rc;
}
