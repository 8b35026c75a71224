/*
 * Internal to the engine: the loaded model, the memory pool that owns
 * everything a model keeps, and the decoding of ONNX tensors.
 *
 * A model is a flat array of values and a topologically sorted array of
 * nodes (engine/graph.h).  Every value has exactly one source: a graph
 * input, an initializer (data owned by the model) or one node output.
 * Once bms_model_load_* returns, nothing in the model changes.
 */
#ifndef BMS_ENGINE_MODEL_H
#define BMS_ENGINE_MODEL_H

#include "engine/graph.h"

/* Most values, nodes, attributes or edges a model may have: far above any
 * real network, low enough that counts multiply without overflow. */
#define BMS__MAX_COUNT (1 << 22)

/* Largest dim and element count bms accepts in any tensor (2^40): every
 * product of dims stays far from int64 overflow. */
#define BMS__MAX_NUMEL ((int64_t)1 << 40)

/* Whether t has 0..BMS_MAX_DIMS dims, each in [0, BMS__MAX_NUMEL], and at
 * most BMS__MAX_NUMEL elements, checked without overflow. */
int bms__dims_valid(const struct bms_tensor *t);

/*
 * A pool of independent allocations freed together.  Each allocation is
 * aligned to 64 bytes, so tensor data taken from it suits vector loads.
 */
struct bms__pool {
    struct bms__pool_block *head;
};

/* Zeroed memory of size bytes owned by pool; NULL when memory runs out. */
void *bms__pool_alloc(struct bms__pool *pool, size_t size);

/* A NUL-terminated copy of s (NULL becomes ""); NULL on no memory. */
char *bms__pool_strdup(struct bms__pool *pool, const char *s);

/* Free one allocation p (from bms__pool_alloc on this pool) before the
 * rest; NULL or a pointer the pool does not hold is ignored.  Walks the
 * pool's list, so it suits load-time clean-up, not hot paths. */
void bms__pool_free(struct bms__pool *pool, void *p);

/* Free every allocation; the pool may be used again afterwards. */
void bms__pool_fini(struct bms__pool *pool);

/* Where a value comes from. */
enum bms__value_kind {
    BMS__VALUE_NODE = 0,         /* the output of one node */
    BMS__VALUE_INPUT = 1,        /* a graph input the caller feeds */
    BMS__VALUE_CONST = 2,        /* an initializer */
    BMS__VALUE_OUTER = 3         /* in a subgraph: a value of an enclosing
                                  * graph, capture slot index of the node
                                  * that owns the subgraph */
};

struct bms__value {
    const char *name;
    enum bms__value_kind kind;
    int index;                   /* producing node or graph input; -1 */
    struct bms_tensor t;         /* data set only for CONST */
    int known;                   /* t's dtype and dims are meaningful */
    int64_t infer_dims[BMS_MAX_DIMS]; /* load-time shapes, -1: dynamic */
    int infer_n_dims;            /* -1: inference did not reach it */
    enum bms_dtype infer_dtype;
};

struct bms_model {
    int64_t opset;               /* default domain */
    int n_values;
    struct bms__value *values;
    int n_nodes;
    struct bms__node *nodes;     /* topologically sorted */
    int n_inputs;
    int *input_values;           /* value index of each model input */
    struct bms_value_info *inputs;
    int n_outputs;
    int *output_values;
    struct bms_value_info *outputs;
    int max_node_inputs;         /* for the executor's pointer arrays */
    int max_node_outputs;
    int depth;                   /* 0 for the model, 1 + for subgraphs */
    /* The subgraphs of this graph's nodes (GRAPH attributes), each owned
     * by the list and destroyed with the graph. */
    struct bms_model *subgraphs;
    struct bms_model *next_subgraph;
    struct bms__pool pool;       /* owns all of the above except params */
};

/* Deepest nesting of subgraphs (an If inside a Loop body is depth 2). */
#define BMS__MAX_GRAPH_DEPTH 16

/*
 * Whether op runs subgraphs (If, Loop, Scan).  Such an operator has no
 * use for infer at run time: the executor calls its run with out[]
 * zeroed, and run sets each out[j]'s dtype, dims and data, the data from
 * malloc, which the executor then owns (and frees, also after a failure).
 * Its load-time infer only reports what is known without running.
 */
int bms__op_runs_graphs(const struct bms__op *op);

/*
 * Run a subgraph (a struct bms_model of depth > 0) in session, which was
 * created for it.  inputs[i] goes to the subgraph's input i (a declared
 * datatype must match; dims are not checked), captures[c] to its outer
 * values of capture slot c (the trailing inputs of the node that owns
 * the subgraph).  Outputs as bms_session_run: valid until session runs
 * again or is destroyed.  BMS_ERR_INVALID, BMS_ERR_NOMEM or a kernel's
 * status.
 */
enum bms_status bms__session_run_graph(struct bms_session *session,
                                       const struct bms_tensor *inputs,
                                       const struct bms_tensor *const *captures,
                                       struct bms_tensor *outputs,
                                       struct bms_diag *diag);

/*
 * Decode one ONNX TensorProto (an Onnx__TensorProto, passed untyped so that
 * this header needs no protobuf) into out, its data allocated from pool.
 * what names the tensor in messages ("initializer 'w'").  BMS_ERR_INVALID
 * when the element count disagrees with the dims or a dim is negative,
 * BMS_ERR_UNSUPPORTED for external data, strings and datatypes bms lacks,
 * BMS_ERR_NOMEM.
 */
enum bms_status bms__tensor_decode(const void *proto, const char *what,
                                   struct bms__pool *pool,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag);

/*
 * Parse a serialized TensorProto (an input_0.pb of the ONNX test suite)
 * and decode it as bms__tensor_decode does.  *name (when not NULL) gets
 * the tensor's name, copied into pool.  Same statuses.
 */
enum bms_status bms__tensor_read(const void *data, size_t size,
                                 struct bms__pool *pool,
                                 struct bms_tensor *out, const char **name,
                                 struct bms_diag *diag);

/*
 * Run shape inference over a freshly built model, filling each value's
 * infer_* fields and then the model's output infos.  Fails (naming the
 * node) only for an error that no input shape could avoid.
 */
enum bms_status bms__model_infer_shapes(struct bms_model *model,
                                        struct bms_diag *diag);

/* "node 'name' (Op)" or "node 3 (Op)" into buf, for messages. */
const char *bms__node_label(const struct bms_model *model,
                            const struct bms__node *node, char *buf,
                            size_t buf_size);

/* The threads a new session gives its kernels (bms_engine_set_threads). */
int bms__engine_threads(void);

/* The tensor memory a new session may take (bms_engine_set_memory_limit;
 * by default half of the physical memory), 0 when unknown. */
size_t bms__engine_memory_limit(void);

#endif
