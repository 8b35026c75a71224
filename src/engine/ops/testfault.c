/*
 * BmsTestFault(x) -> y, float tensors of one shape, for the tests of
 * crash isolation: y is a copy of x unless x[0] asks for a fault,
 *
 *     1: SIGSEGV   2: abort()   3: sleep forever
 *     4: allocate and touch memory without bound
 *
 * so that a test can make one worker process die or hang on request.  It
 * is compiled only with BMS_TEST_FAULTS (make TEST_FAULTS=1); a release
 * build refuses a model that uses it as an unsupported operator.
 */
#include "engine/ops/testfault.h"

#ifdef BMS_TEST_FAULTS

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEAK_CHUNK ((size_t)64 << 20)    /* bytes per allocation */


enum bms_status bms__testfault_prepare(struct bms__node *node,
                                       struct bms_diag *diag)
{
    if (node->n_inputs != 1 || node->n_outputs != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "BmsTestFault takes one "
                            "input and gives one output");
    }
    return BMS_OK;
}


enum bms_status bms__testfault_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag)
{
    (void)node;
    if (in[0] == NULL || in[0]->dtype != BMS_DTYPE_F32) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "BmsTestFault: input "
                            "must be a float tensor");
    }
    out[0] = *in[0];
    out[0].data = NULL;
    return BMS_OK;
}


/* Never returns: memory runs out, and then the process aborts. */
static void leak_forever(void)
{
    for (;;) {
        char *p = malloc(LEAK_CHUNK);

        if (p == NULL) {
            abort();
        }
        memset(p, 1, LEAK_CHUNK);
    }
}


enum bms_status bms__testfault_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms__ctx *ctx)
{
    size_t size = bms_tensor_size(in[0]);
    float first = size > 0 ? *(const float *)in[0]->data : 0.0f;

    (void)node;
    (void)ctx;
    if (first == 1.0f) {
        raise(SIGSEGV);
    } else if (first == 2.0f) {
        abort();
    } else if (first == 3.0f) {
        for (;;) {
            pause();
        }
    } else if (first == 4.0f) {
        leak_forever();
    }
    if (size > 0 && out[0].data != in[0]->data) {
        memcpy(out[0].data, in[0]->data, size);
    }
    return BMS_OK;
}

#endif
