/*
 * Internal to the engine: the control-flow operators If, Loop and Scan
 * (ops/control.c), which run subgraphs.  Their run follows the contract
 * of bms__op_runs_graphs in engine/model.h, not the usual one: it sets
 * the outputs' dims and malloc'ed data itself.
 */
#ifndef BMS_ENGINE_OPS_CONTROL_H
#define BMS_ENGINE_OPS_CONTROL_H

#include "engine/graph.h"

/* ONNX If: runs then_branch or else_branch on a scalar bool. */
enum bms_status bms__if_prepare(struct bms__node *node,
                                struct bms_diag *diag);
enum bms_status bms__if_infer(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms_diag *diag);
enum bms_status bms__if_run(const struct bms__node *node,
                            const struct bms_tensor *const *in,
                            struct bms_tensor *out, struct bms__ctx *ctx);

/* ONNX Loop (opset 11, 13, 16; tensors only): trip count, condition,
 * loop-carried values and scan outputs stacked on a new axis 0. */
enum bms_status bms__loop_prepare(struct bms__node *node,
                                  struct bms_diag *diag);
enum bms_status bms__loop_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag);
enum bms_status bms__loop_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx);

/* ONNX Scan: opset 9 on (axes, directions), opset 8 with its batch axis
 * and without sequence_lens. */
enum bms_status bms__scan_prepare(struct bms__node *node,
                                  struct bms_diag *diag);
enum bms_status bms__scan_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag);
enum bms_status bms__scan_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx);

#endif
