/*
 * Internal to the engine: the graph as the loader builds it and the
 * interface every operator implements.
 *
 * A graph is a flat array of values (named tensor slots) and a
 * topologically sorted array of nodes that read and write values by index.
 * Each operator comes as a struct bms__op with three steps:
 *
 *   prepare  once at load: check input/output counts and attributes, and
 *            keep what run needs in node->params;
 *   infer    output dtypes and dims from the inputs (whose data may be NULL
 *            at load time, when only shapes are known);
 *   run      compute into outputs whose memory the executor allocated from
 *            the shapes infer gave.  run never allocates: scratch memory
 *            comes from bms__ctx_scratch.
 */
#ifndef BMS_ENGINE_GRAPH_H
#define BMS_ENGINE_GRAPH_H

#include "bms/engine.h"

enum bms__attr_type {            /* ONNX AttributeProto.AttributeType */
    BMS__ATTR_UNDEFINED = 0,
    BMS__ATTR_FLOAT = 1,
    BMS__ATTR_INT = 2,
    BMS__ATTR_STRING = 3,
    BMS__ATTR_TENSOR = 4,
    BMS__ATTR_GRAPH = 5,
    BMS__ATTR_FLOATS = 6,
    BMS__ATTR_INTS = 7,
    BMS__ATTR_STRINGS = 8
};

struct bms__attr {
    const char *name;
    enum bms__attr_type type;
    float f;
    int64_t i;
    const char *s;               /* STRING, not NUL-safe: use s_len */
    size_t s_len;
    const float *floats;         /* FLOATS */
    const int64_t *ints;         /* INTS */
    int n;                       /* element count of floats or ints */
    struct bms_tensor *t;        /* TENSOR, data owned by the graph */
    struct bms_model *g;         /* GRAPH: the subgraph, owned by the graph */
};

/* An activation folded into the node that produces its input, applied by
 * that node's kernel on the way out (set by the optimiser, see
 * optimize.c; a kernel that cannot apply one must refuse it in prepare). */
enum bms__act {
    BMS__ACT_NONE = 0,
    BMS__ACT_RELU,
    BMS__ACT_LEAKY_RELU,         /* alpha */
    BMS__ACT_CLIP,               /* alpha = min, beta = max */
    BMS__ACT_SIGMOID,
    BMS__ACT_TANH
};

struct bms__fused {
    enum bms__act act;
    float alpha;
    float beta;
};

struct bms__node {
    const char *name;
    const char *op_type;
    const struct bms__op *op;
    int n_inputs;
    int *inputs;                 /* value indices; -1 for an absent input */
    /* The last n_captures inputs are not the operator's own: they are the
     * enclosing graph's values that the node's subgraphs read by name
     * (If, Loop, Scan), in the order the subgraphs number them. */
    int n_captures;
    int n_outputs;
    int *outputs;                /* value indices; -1 for an absent output */
    int n_attrs;
    struct bms__attr *attrs;
    void *params;                /* made by prepare; bms__node_params_free */
    /* Set by a prepare whose params own more than their block (locks,
     * library objects): releases those; see bms__node_params_free. */
    void (*params_fini)(void *params);
    int64_t opset;               /* the default-domain opset of the model */
    struct bms__fused fused;     /* BMS__ACT_NONE unless the optimiser set */
};

/* Per-session execution context handed to every kernel. */
struct bms__ctx {
    void *scratch;               /* grows on demand, freed with the session */
    size_t scratch_size;         /* bytes */
    int n_threads;               /* threads the kernels may use, >= 1 */
};

struct bms__op {
    const char *op_type;
    enum bms_status (*prepare)(struct bms__node *node,
                               struct bms_diag *diag);
    enum bms_status (*infer)(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out,
                             struct bms_diag *diag);
    enum bms_status (*run)(const struct bms__node *node,
                           const struct bms_tensor *const *in,
                           struct bms_tensor *out,
                           struct bms__ctx *ctx);
};

/*
 * The operator tables.  Each table ends with a NULL op_type.  bms__op_find
 * looks through all of them; NULL when no operator has that name.
 */
extern const struct bms__op bms__ops_core[];    /* ops/core.c: structure */
extern const struct bms__op bms__ops_math[];    /* ops/math.c: arithmetic */
const struct bms__op *bms__op_find(const char *op_type);

/*
 * Attribute look-ups by name.  Each returns the default (or NULL, count 0)
 * when the attribute is absent; an attribute of the wrong type counts as
 * absent for the getters, and bms__attr_find returns it as it is.
 */
const struct bms__attr *bms__attr_find(const struct bms__node *node,
                                       const char *name);
int64_t bms__attr_int(const struct bms__node *node, const char *name,
                      int64_t dflt);
float bms__attr_float(const struct bms__node *node, const char *name,
                      float dflt);
const int64_t *bms__attr_ints(const struct bms__node *node, const char *name,
                              int *n);
const float *bms__attr_floats(const struct bms__node *node, const char *name,
                              int *n);
/* Copies a STRING attribute into buf (truncating); returns 1 if present. */
int bms__attr_string(const struct bms__node *node, const char *name,
                     char *buf, size_t buf_size);

/*
 * Release what prepare made: params_fini (when set) and then free() on
 * node->params; both are NULL afterwards.  Every place that drops a
 * prepared node's params goes through here.
 */
void bms__node_params_free(struct bms__node *node);

/*
 * Scratch memory for one kernel call, owned by the session and reused by
 * every node; valid until the next call.  NULL when memory runs out.
 */
void *bms__ctx_scratch(struct bms__ctx *ctx, size_t size);
void bms__ctx_fini(struct bms__ctx *ctx);

#endif
