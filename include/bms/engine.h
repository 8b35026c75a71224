/*
 * The bms inference engine: load an ONNX model, then run it in sessions.
 *
 * A struct bms_model is immutable once loaded: its graph, weights and the
 * shapes inferred at load.  Any number of threads may share one model.  A
 * struct bms_session holds the memory one execution needs; it is used by
 * one thread at a time.  Make one session per worker thread.
 */
#ifndef BMS_ENGINE_H
#define BMS_ENGINE_H

#include "bms/base.h"
#include "bms/tensor.h"

struct bms_model;
struct bms_session;

/* What the graph declares (and load-time shape inference found) about one
 * input or output. */
struct bms_value_info {
    const char *name;            /* owned by the model */
    enum bms_dtype dtype;
    int n_dims;                  /* -1 when the rank is not known */
    int64_t dims[BMS_MAX_DIMS];  /* -1 for a dimension known only at run */
};

/*
 * Load an ONNX model from a file or from memory.  On success *out owns a new
 * model.  Fails with BMS_ERR_INVALID for a malformed file or graph, and
 * BMS_ERR_UNSUPPORTED for an operator, attribute or datatype bms does not
 * implement, naming it in diag.  A model that fails to load leaves nothing
 * behind.
 */
enum bms_status bms_model_load_file(const char *path, struct bms_model **out,
                                    struct bms_diag *diag);
enum bms_status bms_model_load_memory(const void *data, size_t size,
                                      struct bms_model **out,
                                      struct bms_diag *diag);
void bms_model_destroy(struct bms_model *model);

/* The graph's real inputs (initializers excluded) and outputs, in graph
 * order.  Pointers live as long as the model. */
int bms_model_n_inputs(const struct bms_model *model);
const struct bms_value_info *bms_model_input(const struct bms_model *model,
                                             int i);
int bms_model_n_outputs(const struct bms_model *model);
const struct bms_value_info *bms_model_output(const struct bms_model *model,
                                              int i);

/* Index of the input or output with this name, or -1. */
int bms_model_find_input(const struct bms_model *model, const char *name);
int bms_model_find_output(const struct bms_model *model, const char *name);

/* The default-domain opset the model was exported with, and the graph's
 * node count after load. */
int64_t bms_model_opset(const struct bms_model *model);
int bms_model_n_nodes(const struct bms_model *model);

/*
 * Create a session for model.  The model must outlive the session.
 */
enum bms_status bms_session_create(const struct bms_model *model,
                                   struct bms_session **out,
                                   struct bms_diag *diag);
void bms_session_destroy(struct bms_session *session);

/*
 * Run the model once.  inputs[i] goes to bms_model_input(model, i); its data
 * is borrowed for the call.  On success outputs[j] (one per model output)
 * gets the dtype, dims and a data pointer into session memory, valid until
 * the next run or the session's destruction.  Fails with BMS_ERR_INVALID
 * when an input's dtype or shape does not fit the graph (diag names the
 * input), BMS_ERR_NOMEM when memory runs out.
 */
enum bms_status bms_session_run(struct bms_session *session,
                                const struct bms_tensor *inputs,
                                struct bms_tensor *outputs,
                                struct bms_diag *diag);

/*
 * Per-node timing, for finding where a model's time goes: once on, every
 * run of the session adds each top-level node's wall time to its total.
 * bms_session_profile gives node i's (0 <= i < the node count it
 * returns) label ("node 'conv1' (Conv)"), total microseconds and runs.
 * Off by default; costs two clock reads per node when on.
 */
enum bms_status bms_session_set_profiling(struct bms_session *session,
                                          int on);
int bms_session_profile(const struct bms_session *session, int i,
                        char *label, size_t label_size, int64_t *total_us);

/* Threads the kernels of the models loaded and sessions made from now on
 * by the calling thread may use (0: one per core).  Per thread. */
void bms_engine_set_threads(int n_threads);

/*
 * The most memory each session made from now on by the calling thread
 * may hold for tensors (bytes; 0: half of the physical memory).  A run
 * that would pass it fails with BMS_ERR_LIMIT naming the node, instead of
 * taking the machine's memory.  Kernel scratch space is not counted.
 */
void bms_engine_set_memory_limit(size_t bytes);

#endif
