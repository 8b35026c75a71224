/*
 * Shared by the structural operators (ops/core*.c): the entry points the
 * table in core.c lists from the other core files, and small helpers for
 * checking inputs and reading integer lists out of tensors.
 */
#ifndef BMS_ENGINE_OPS_CORE_H
#define BMS_ENGINE_OPS_CORE_H

#include "engine/graph.h"

/*
 * Check that the node has at least n_min and at most n_max inputs and
 * that the first n_min are present (in[k] != NULL).  BMS_ERR_INVALID
 * otherwise.
 */
enum bms_status bms__core_check_inputs(const struct bms__node *node,
                                       const struct bms_tensor *const *in,
                                       int n_min, int n_max,
                                       struct bms_diag *diag);

/*
 * Read a 1-D (or scalar) I64 or I32 tensor into vals (at most max_n).
 * BMS_ERR_UNAVAILABLE when its data is not known yet (load time),
 * BMS_ERR_INVALID for another datatype, rank or a longer list.  what
 * names the input in messages.
 */
enum bms_status bms__core_read_ints(const struct bms_tensor *t,
                                    const char *what, int64_t *vals,
                                    int max_n, int *n,
                                    struct bms_diag *diag);

/* Cast (ops/core_cast.c). */
enum bms_status bms__cast_prepare(struct bms__node *node,
                                  struct bms_diag *diag);
enum bms_status bms__cast_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag);
enum bms_status bms__cast_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out, struct bms__ctx *ctx);
enum bms_status bms__castlike_infer(const struct bms__node *node,
                                    const struct bms_tensor *const *in,
                                    struct bms_tensor *out,
                                    struct bms_diag *diag);

#endif
