/*
 * BmsTestFault, an operator for tests of crash isolation only: it exists
 * in builds made with BMS_TEST_FAULTS defined (make TEST_FAULTS=1) and
 * never in a release.  See testfault.c for what it does.
 */
#ifndef BMS_ENGINE_OPS_TESTFAULT_H
#define BMS_ENGINE_OPS_TESTFAULT_H

#ifdef BMS_TEST_FAULTS

#include "engine/graph.h"

enum bms_status bms__testfault_prepare(struct bms__node *node,
                                       struct bms_diag *diag);
enum bms_status bms__testfault_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag);
enum bms_status bms__testfault_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms__ctx *ctx);

#endif

#endif
