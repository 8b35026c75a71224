/*
 * libFuzzer target for the bms ONNX loader and executor.
 *
 * Each input is taken as the bytes of an ONNX file.  When the model loads,
 * a session is created and run once on inputs built from the declared
 * shapes (dynamic dims become 1), then everything is destroyed.  A model
 * that is refused must say why: an empty diagnostic is reported as a
 * crash, so that every refusal stays explainable to the user.
 *
 * The contract under test: no input, however hostile, may make bms read or
 * write out of bounds, leak, hang or abort.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bms/engine.h"

/* Inputs larger than this (in elements, per input and in all) are not
 * run: the fuzzer looks for bugs, not for models that are merely big. */
#define MAX_INPUT_NUMEL ((int64_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);


/* Drop the engine's log lines: the fuzzer's own output is enough. */
static void quiet_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    bms_log_set_handler(quiet_log, NULL);
    bms_engine_set_threads(1);
    return 0;
}


/* A failing call must leave a message behind. */
static void check_diag(const struct bms_diag *diag, enum bms_status rc,
                       const char *what)
{
    if (diag->msg[0] == '\0') {
        fprintf(stderr, "%s failed (%s) with an empty message\n", what,
                bms_status_name(rc));
        abort();
    }
}


/* Fill n elements of dtype with the repeating values -1, 0, 1: small,
 * signed, and a mix of valid and invalid indices for Gather and kin. */
static void fill_input(struct bms_tensor *t, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        int v = (int)(i % 3) - 1;

        switch (t->dtype) {
        case BMS_DTYPE_F32:
            ((float *)t->data)[i] = (float)v;
            break;
        case BMS_DTYPE_F64:
            ((double *)t->data)[i] = (double)v;
            break;
        case BMS_DTYPE_I64: case BMS_DTYPE_U64:
            ((int64_t *)t->data)[i] = v;
            break;
        case BMS_DTYPE_I32: case BMS_DTYPE_U32:
            ((int32_t *)t->data)[i] = v;
            break;
        case BMS_DTYPE_I16: case BMS_DTYPE_U16: case BMS_DTYPE_F16:
            ((int16_t *)t->data)[i] = (int16_t)v;
            break;
        case BMS_DTYPE_BOOL:
            ((uint8_t *)t->data)[i] = (uint8_t)(v != 0);
            break;
        default:
            ((int8_t *)t->data)[i] = (int8_t)v;
            break;
        }
    }
}


/* Build input i from what the model declares; 0 when it is too big to
 * be worth running or memory runs out. */
static int make_input(const struct bms_value_info *info,
                      struct bms_tensor *t, int64_t *budget)
{
    size_t elem = bms_dtype_size(info->dtype);
    int64_t n = 1;

    memset(t, 0, sizeof(*t));
    t->dtype = info->dtype;
    t->n_dims = info->n_dims >= 0 ? info->n_dims : 1;
    for (int d = 0; d < t->n_dims; d++) {
        int64_t dim = info->n_dims >= 0 ? info->dims[d] : 1;

        t->dims[d] = dim >= 0 ? dim : 1;
        if (t->dims[d] > 0 && n > MAX_INPUT_NUMEL / t->dims[d]) {
            return 0;
        }
        n *= t->dims[d];
    }
    if (elem == 0 || n > *budget) {
        return 0;
    }
    *budget -= n;
    t->data = malloc((size_t)(n > 0 ? n : 1) * elem);
    if (t->data == NULL) {
        return 0;
    }
    fill_input(t, n);
    return 1;
}


/* Run the model once on made-up inputs; every failure needs a message. */
static void run_once(const struct bms_model *model)
{
    int n_in = bms_model_n_inputs(model);
    int n_out = bms_model_n_outputs(model);
    struct bms_tensor *inputs = calloc((size_t)n_in + 1, sizeof(*inputs));
    struct bms_tensor *outputs = calloc((size_t)n_out + 1, sizeof(*outputs));
    struct bms_session *session = NULL;
    struct bms_diag diag = {{0}};
    int64_t budget = MAX_INPUT_NUMEL;
    enum bms_status rc;
    int n_made = 0;

    if (inputs == NULL || outputs == NULL) {
        goto out;
    }
    for (; n_made < n_in; n_made++) {
        if (!make_input(bms_model_input(model, n_made), &inputs[n_made],
                        &budget)) {
            goto out;
        }
    }
    rc = bms_session_create(model, &session, &diag);
    if (rc != BMS_OK) {
        check_diag(&diag, rc, "bms_session_create");
        goto out;
    }
    rc = bms_session_run(session, inputs, outputs, &diag);
    if (rc != BMS_OK) {
        check_diag(&diag, rc, "bms_session_run");
    }
out:
    bms_session_destroy(session);
    for (int i = 0; i < n_made; i++) {
        free(inputs[i].data);
    }
    free(outputs);
    free(inputs);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};
    enum bms_status rc;

    rc = bms_model_load_memory(data, size, &model, &diag);
    if (rc != BMS_OK) {
        check_diag(&diag, rc, "bms_model_load_memory");
        return 0;
    }
    run_once(model);
    bms_model_destroy(model);
    return 0;
}
