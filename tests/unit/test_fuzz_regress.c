/*
 * Regression tests from fuzzing the ONNX loader: every file in
 * tests/data/fuzz-regress/ (inputs the fuzzer found crashing, and the
 * hostile models tests/fuzz/make_hostile.py writes) must be refused with a
 * message, or load and run once without fault; the sanitizer build of
 * this program catches the faults.  A few files also have the refusal
 * their construction calls for checked by status.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "bms/engine.h"

#define REGRESS_DIR "tests/data/fuzz-regress/"

/* Inputs over this many elements are not built; none of the files needs
 * more than a handful. */
#define MAX_INPUT_NUMEL ((int64_t)1 << 20)


static enum bms_status load(const char *name, struct bms_model **model,
                            struct bms_diag *diag)
{
    char path[512];

    snprintf(path, sizeof(path), REGRESS_DIR "%s", name);
    diag->msg[0] = '\0';
    *model = NULL;
    return bms_model_load_file(path, model, diag);
}


/* An input shaped by info (dynamic dims and unknown ranks as 1), its
 * bytes zero; NULL data when it would be too big to build. */
static struct bms_tensor make_input(const struct bms_value_info *info)
{
    struct bms_tensor t = {info->dtype, info->n_dims, {0}, NULL};
    int64_t n = 1;

    if (info->n_dims < 0) {
        t.n_dims = 1;
    }
    for (int d = 0; d < t.n_dims; d++) {
        int64_t dim = info->n_dims >= 0 ? info->dims[d] : 1;

        t.dims[d] = dim >= 0 ? dim : 1;
        if (t.dims[d] > 0 && n > MAX_INPUT_NUMEL / t.dims[d]) {
            return t;
        }
        n *= t.dims[d];
    }
    t.data = calloc((size_t)(n > 0 ? n : 1), bms_dtype_size(t.dtype));
    return t;
}


/* Run model once; a failed run must explain itself.  Returns 0 when the
 * inputs could not be built (not a failure of bms). */
static int run_once(const struct bms_model *model, const char *name)
{
    int n_in = bms_model_n_inputs(model);
    int n_out = bms_model_n_outputs(model);
    struct bms_tensor *in = calloc((size_t)n_in + 1, sizeof(*in));
    struct bms_tensor *out = calloc((size_t)n_out + 1, sizeof(*out));
    struct bms_session *session = NULL;
    struct bms_diag diag = {{0}};
    enum bms_status rc;
    int built = 1;

    assert_non_null(in);
    assert_non_null(out);
    for (int i = 0; i < n_in; i++) {
        in[i] = make_input(bms_model_input(model, i));
        built = built && in[i].data != NULL;
    }
    if (built) {
        rc = bms_session_create(model, &session, &diag);
        if (rc == BMS_OK) {
            rc = bms_session_run(session, in, out, &diag);
        }
        if (rc != BMS_OK && diag.msg[0] == '\0') {
            fail_msg("%s: run failed (%s) with no message", name,
                     bms_status_name(rc));
        }
    }
    bms_session_destroy(session);
    for (int i = 0; i < n_in; i++) {
        free(in[i].data);
    }
    free(out);
    free(in);
    return built;
}


static void fuzz_regress_every_file_refused_or_runs(void **state)
{
    DIR *dir = opendir(REGRESS_DIR);
    struct dirent *e;
    int n_files = 0;

    (void)state;
    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL) {
        struct bms_model *model = NULL;
        struct bms_diag diag;
        enum bms_status rc;

        if (e->d_name[0] == '.') {
            continue;
        }
        n_files++;
        rc = load(e->d_name, &model, &diag);
        if (rc != BMS_OK) {
            assert_null(model);
            if (diag.msg[0] == '\0') {
                fail_msg("%s: refused (%s) with no message", e->d_name,
                         bms_status_name(rc));
            }
            continue;
        }
        run_once(model, e->d_name);
        bms_model_destroy(model);
    }
    closedir(dir);
    /* make_hostile.py writes over fifty; fewer means the folder is not
     * the one this test was written for. */
    assert_true(n_files >= 50);
}


static void expect_refused(const char *name, enum bms_status want)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    assert_int_equal(load(name, &model, &diag), want);
    assert_null(model);
    assert_true(diag.msg[0] != '\0');
}


static void fuzz_regress_refuses_node_without_outputs(void **state)
{
    (void)state;
    /* The fuzzer's first find: an Identity with no outputs ran and its
     * kernel wrote through a NULL output. */
    expect_refused("crash_identity_no_outputs.onnx", BMS_ERR_INVALID);
}


static void fuzz_regress_refuses_deep_nesting(void **state)
{
    (void)state;
    /* Thousands of nested subgraph attributes overflowed the stack in
     * protobuf-c before any check of bms could run. */
    expect_refused("hostile_attr_graph_nested_deep.onnx", BMS_ERR_LIMIT);
    expect_refused("hostile_if_nested_200.onnx", BMS_ERR_LIMIT);
}


static void fuzz_regress_refuses_cycles(void **state)
{
    (void)state;
    expect_refused("hostile_cycle_two_nodes.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_cycle_self_loop.onnx", BMS_ERR_INVALID);
}


static void fuzz_regress_refuses_colliding_names(void **state)
{
    (void)state;
    expect_refused("hostile_collide_two_initializers.onnx",
                   BMS_ERR_INVALID);
    expect_refused("hostile_collide_two_inputs.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_collide_input_and_output.onnx",
                   BMS_ERR_INVALID);
    expect_refused("hostile_collide_node_outputs.onnx", BMS_ERR_INVALID);
}


static void fuzz_regress_refuses_data_that_misfits_dims(void **state)
{
    (void)state;
    /* 3 raw bytes for 2 floats; 5 floats for [2, 2]; int64_data for a
     * float tensor (no float_data at all). */
    expect_refused("hostile_raw_data_short.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_float_data_long.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_data_in_wrong_field.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_external_data.onnx", BMS_ERR_UNSUPPORTED);
}


static void fuzz_regress_refuses_absurd_dims(void **state)
{
    (void)state;
    expect_refused("hostile_input_dim_2p62.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_input_negative_dim.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_initializer_dim_2p62.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_initializer_negative_dim.onnx",
                   BMS_ERR_INVALID);
    expect_refused("hostile_input_nine_dims.onnx", BMS_ERR_UNSUPPORTED);
}


static void fuzz_regress_refuses_broken_protobuf(void **state)
{
    (void)state;
    expect_refused("hostile_truncated_half.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_length_past_end.onnx", BMS_ERR_INVALID);
    expect_refused("hostile_graph_as_varint.onnx", BMS_ERR_INVALID);
}


int bms_test_fuzz_regress(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fuzz_regress_every_file_refused_or_runs),
        cmocka_unit_test(fuzz_regress_refuses_node_without_outputs),
        cmocka_unit_test(fuzz_regress_refuses_deep_nesting),
        cmocka_unit_test(fuzz_regress_refuses_cycles),
        cmocka_unit_test(fuzz_regress_refuses_colliding_names),
        cmocka_unit_test(fuzz_regress_refuses_data_that_misfits_dims),
        cmocka_unit_test(fuzz_regress_refuses_absurd_dims),
        cmocka_unit_test(fuzz_regress_refuses_broken_protobuf),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
