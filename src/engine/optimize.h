/*
 * Internal to the engine: the graph optimisations the loader runs once,
 * after every node is prepared and before load-time shape inference.
 */
#ifndef BMS_ENGINE_OPTIMIZE_H
#define BMS_ENGINE_OPTIMIZE_H

#include "engine/model.h"

/*
 * Rewrite the freshly loaded model in place: remove Identity and
 * inference Dropout nodes, fold nodes whose inputs are all constant into
 * initializers, fold a BatchNormalization into the Conv before it, turn
 * the exported erf GELU into bms.Gelu, fuse into a MatMul the Transposes
 * of its operands, a following scalar Div or Mul, bias Add, GELU and
 * Transpose (bms.MatMul), fuse an Add into the LayerNormalization it
 * feeds (bms.AddLayerNorm; see ops/fused.h), fuse a Relu, LeakyRelu,
 * Clip, Sigmoid or Tanh into the Conv, Gemm or MatMul that feeds it,
 * remove nodes no graph output needs and free the initializers nobody
 * reads.  The graph's inputs, outputs and their names
 * stay as they were, and the nodes stay topologically sorted.  Logs one
 * debug line with the counts.
 *
 * Does nothing when the environment variable BMS_OPTIMIZE is "0" (read on
 * every call, so each load may choose).  BMS_ERR_NOMEM when memory runs
 * out, or the status of a prepare that fails again after a fusion was
 * undone; the model must then be destroyed.  Not thread-safe for one
 * model; different models may be optimised in parallel.
 */
enum bms_status bms__model_optimize(struct bms_model *model,
                                    struct bms_diag *diag);

#endif
