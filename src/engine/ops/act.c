/*
 * Fused activations, applied by the kernel that produced the tensor while
 * it is still in cache.  Each branch matches the standalone operator's
 * definition in the ONNX spec, so a fused graph computes what the unfused
 * one did.
 */
#include <math.h>

#include "engine/ops/act.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap")
#endif


void bms__act_apply(const struct bms__fused *fused, float *data, size_t n)
{
    const float alpha = fused->alpha;
    const float beta = fused->beta;

    switch (fused->act) {
    case BMS__ACT_NONE:
        break;
    case BMS__ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            data[i] = data[i] > 0.0f ? data[i] : 0.0f;
        }
        break;
    case BMS__ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) {
            data[i] = data[i] >= 0.0f ? data[i] : alpha * data[i];
        }
        break;
    case BMS__ACT_CLIP:
        for (size_t i = 0; i < n; i++) {
            float v = data[i] < alpha ? alpha : data[i];

            data[i] = v > beta ? beta : v;
        }
        break;
    case BMS__ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            data[i] = 1.0f / (1.0f + expf(-data[i]));
        }
        break;
    case BMS__ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            data[i] = tanhf(data[i]);
        }
        break;
    }
}
