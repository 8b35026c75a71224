/*
 * Regression tests from fuzzing the ONNX loader: every file in
 * tests/data/fuzz-regress/ (inputs the fuzzer found crashing, and the
 * hostile models tests/fuzz/make_hostile.py writes) must be refused with a
 * message, or load and run once without fault; the sanitizer build of
 * this program catches the faults.  A few files also have the refusal
 * their construction calls for checked by status.
 *
 * The same for the v2 request fuzzer: every file in
 * tests/data/fuzz-regress-v2/ goes through fuzz_v2.c's own code (included
 * below), which refuses it with a message or answers it with every check
 * of the target passing.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "bms/engine.h"

/* The target's code without its libFuzzer entry points. */
#define BMS_FUZZ_V2_NO_MAIN
#include "../fuzz/fuzz_v2.c"

#define REGRESS_DIR "tests/data/fuzz-regress/"
#define REGRESS_V2_DIR "tests/data/fuzz-regress-v2/"

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


/* ---- the v2 request fuzzer ---- */

/* Drop the repository's log lines while the models load. */
static void drop_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


static void open_v2_models(struct fuzz_v2_models *m)
{
    struct bms_diag diag = {""};
    enum bms_status rc;

    bms_log_set_handler(drop_log, NULL);
    rc = fuzz_v2_open(m, &diag);
    bms_log_set_handler(NULL, NULL);
    if (rc != BMS_OK) {
        fail_msg("fuzz_v2 models: %s", diag.msg);
    }
}


/* The bytes of one file of the v2 folder in a buffer of their own size,
 * so that the sanitizer sees a read past them. */
static uint8_t *read_v2_input(const char *name, size_t *size)
{
    char path[512];
    FILE *f;
    uint8_t *data;
    long n;

    snprintf(path, sizeof(path), REGRESS_V2_DIR "%s", name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    data = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}


static void fuzz_regress_v2_every_file_refused_or_answered(void **state)
{
    struct fuzz_v2_models m;
    DIR *dir = opendir(REGRESS_V2_DIR);
    struct dirent *e;
    int n_files = 0;
    int n_answered = 0;

    (void)state;
    assert_non_null(dir);
    open_v2_models(&m);
    while ((e = readdir(dir)) != NULL) {
        struct bms_diag why = {""};
        uint8_t *data;
        size_t size;
        int answered = 0;

        if (e->d_name[0] == '.') {
            continue;
        }
        n_files++;
        data = read_v2_input(e->d_name, &size);
        if (fuzz_v2_one(&m, data, size, &answered, &why) != BMS_OK) {
            fail_msg("%s: %s", e->d_name, why.msg);
        }
        n_answered += answered;
        free(data);
    }
    closedir(dir);
    fuzz_v2_close(&m);
    /* The folder holds twenty-two files, four of them answerable. */
    assert_true(n_files >= 22);
    assert_true(n_answered >= 4);
}


/* The status the binding gives one file, and a message when it refuses. */
static void expect_v2(const struct fuzz_v2_models *m, const char *name,
                      enum bms_status want)
{
    struct fuzz_v2_case c;
    struct bms_v2_call *call = NULL;
    struct bms_diag got = {""};
    size_t size;
    uint8_t *data = read_v2_input(name, &size);
    enum bms_status rc;

    take_apart(m, data, size, &c);
    rc = bind_call(&c, &call, &got);
    if (rc != want) {
        fail_msg("%s: got %s (%s), expected %s", name, bms_status_name(rc),
                 got.msg, bms_status_name(want));
    }
    assert_true(rc == BMS_OK || got.msg[0] != '\0');
    assert_true((rc == BMS_OK) == (call != NULL));
    bms_v2_call_destroy(call);
    free(data);
}


static void fuzz_regress_v2_refuses_shapes_past_the_limit(void **state)
{
    struct fuzz_v2_models m;

    (void)state;
    open_v2_models(&m);
    /* 2^32 x 2^32 overflows int64; 0 x (2^63 - 1) holds nothing but its
     * other dims alone pass the 64 Mi limit; nine dims pass BMS_MAX_DIMS. */
    expect_v2(&m, "hostile_shape_2p64", BMS_ERR_LIMIT);
    expect_v2(&m, "hostile_shape_zero_and_2p63", BMS_ERR_LIMIT);
    expect_v2(&m, "hostile_shape_nine_dims", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_data_nine_deep", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_data_ragged", BMS_ERR_INVALID);
    fuzz_v2_close(&m);
}


static void fuzz_regress_v2_refuses_binary_misfits(void **state)
{
    struct fuzz_v2_models m;

    (void)state;
    open_v2_models(&m);
    /* A JSON length of 65535 for a 14-byte body; 3135 bytes for the 3136
     * of [1, 28, 28] FP32; a BOOL byte of 2; binary_data_size without a
     * binary part. */
    expect_v2(&m, "hostile_json_len_past_body", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_binary_size_off_by_one", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_binary_bool_byte_2", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_binary_without_header", BMS_ERR_INVALID);
    fuzz_v2_close(&m);
}


static void fuzz_regress_v2_refuses_values_out_of_range(void **state)
{
    struct fuzz_v2_models m;

    (void)state;
    open_v2_models(&m);
    /* FLT_MAX is about 3.4028e38; UINT64 has no -1; a day is 86400000
     * ms; 200 digits pass the 127 a number may take. */
    expect_v2(&m, "hostile_fp32_overflow", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_uint64_negative", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_timeout_over_a_day", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_number_200_digits", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_name_nul", BMS_ERR_INVALID);
    expect_v2(&m, "hostile_nothing", BMS_ERR_INVALID);
    fuzz_v2_close(&m);
}


static void fuzz_regress_v2_answers_edge_cases(void **state)
{
    struct fuzz_v2_models m;

    (void)state;
    open_v2_models(&m);
    /* An empty batch with an empty binary part; 5000 nested arrays under
     * an ignored key; lone surrogates in the id. */
    expect_v2(&m, "hostile_batch_zero_binary", BMS_OK);
    expect_v2(&m, "hostile_skip_nested_5000", BMS_OK);
    expect_v2(&m, "hostile_lone_surrogate_id", BMS_OK);
    expect_v2(&m, "hostile_nan_scores_top_k", BMS_OK);
    fuzz_v2_close(&m);
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
        cmocka_unit_test(fuzz_regress_v2_every_file_refused_or_answered),
        cmocka_unit_test(fuzz_regress_v2_refuses_shapes_past_the_limit),
        cmocka_unit_test(fuzz_regress_v2_refuses_binary_misfits),
        cmocka_unit_test(fuzz_regress_v2_refuses_values_out_of_range),
        cmocka_unit_test(fuzz_regress_v2_answers_edge_cases),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
