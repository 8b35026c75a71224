/*
 * Internal to the kernels: applying a fused activation (struct bms__fused,
 * engine/graph.h) to a kernel's output in place.
 */
#ifndef BMS_ENGINE_OPS_ACT_H
#define BMS_ENGINE_OPS_ACT_H

#include <stddef.h>

#include "engine/graph.h"

/* Apply fused->act to n floats of data in place; no-op for ACT_NONE. */
void bms__act_apply(const struct bms__fused *fused, float *data, size_t n);

#endif
