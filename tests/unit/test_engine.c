/*
 * Unit tests of the engine core: the loader's refusals, load-time shape
 * inference and the executor.  The models come from
 * tests/data/make_models.py (run from the repository root); expected
 * values come from PyTorch (engine_mlp_out.pb) or from the model's
 * construction, never from bms.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "bms/engine.h"
#include "engine/model.h"
#include "harness.h"


static void load_rejects_truncated_file(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};
    size_t size;
    char *data = th_data_read("engine_mlp.onnx", &size);

    (void)state;
    /* Every cut must be refused, none may crash. */
    for (size_t cut = 1; cut < size; cut += 97) {
        assert_int_not_equal(bms_model_load_memory(data, cut, &model, &diag),
                             BMS_OK);
    }
    assert_int_equal(bms_model_load_memory(data, size / 2, &model, &diag),
                     BMS_ERR_INVALID);
    assert_null(model);
    free(data);
}


static void load_rejects_garbage_bytes(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};
    unsigned char junk[512];

    (void)state;
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (unsigned char)(i * 131 + 7);
    }
    assert_int_equal(bms_model_load_memory(junk, sizeof(junk), &model,
                                           &diag), BMS_ERR_INVALID);
    assert_int_equal(bms_model_load_memory(junk, 0, &model, &diag),
                     BMS_ERR_INVALID);
    assert_null(model);
}


/* Feed every model input zeros shaped by its info (dynamic dims as 1);
 * returns 0 when an input is too odd to build. */
static int run_with_zeros(const struct bms_model *model, float *buf,
                          size_t buf_len)
{
    struct bms_tensor inputs[4];
    struct bms_tensor outputs[16];
    struct bms_session *session = NULL;
    struct bms_diag diag;
    int n_in = bms_model_n_inputs(model);

    if (n_in > 4 || bms_model_n_outputs(model) > 16) {
        return 0;
    }
    for (int i = 0; i < n_in; i++) {
        const struct bms_value_info *info = bms_model_input(model, i);

        if (info->n_dims < 0) {
            return 0;
        }
        inputs[i] = (struct bms_tensor){info->dtype, info->n_dims, {0}, buf};
        for (int d = 0; d < info->n_dims; d++) {
            inputs[i].dims[d] = info->dims[d] < 0 ? 1 : info->dims[d];
        }
        if (bms_tensor_size(&inputs[i]) > buf_len * sizeof(float)) {
            return 0;
        }
    }
    if (bms_session_create(model, &session, &diag) != BMS_OK) {
        return 0;
    }
    bms_session_run(session, inputs, outputs, &diag);
    bms_session_destroy(session);
    return 1;
}


/* Overwrite bytes all through a good model: each variant must load or be
 * refused, and one that loads must run or be refused, without a crash or
 * a sanitizer report. */
static void load_survives_corrupted_bytes(void **state)
{
    static float zeros[4096];
    size_t size;
    char *good = th_data_read("engine_view.onnx", &size);
    char *bad = malloc(size);

    (void)state;
    assert_non_null(bad);
    for (unsigned i = 0; i < 3000; i++) {
        struct bms_model *model = NULL;
        struct bms_diag diag;

        memcpy(bad, good, size);
        bad[(i * 7919u) % size] = (char)(i * 31u);
        if (i % 3 == 0) {
            bad[(i * 104729u + 13u) % size] = (char)(i >> 3);
        }
        if (bms_model_load_memory(bad, size, &model, &diag) == BMS_OK) {
            run_with_zeros(model, zeros, sizeof(zeros) / sizeof(float));
            bms_model_destroy(model);
        }
    }
    free(bad);
    free(good);
}


static void load_names_unknown_operator(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(th_model_load("engine_unknown_op.onnx", &model, &diag),
                     BMS_ERR_UNSUPPORTED);
    assert_string_equal(diag.msg, "unsupported operator 'FooBar'");
    assert_int_equal(th_model_load("engine_two_unknown.onnx", &model, &diag),
                     BMS_ERR_UNSUPPORTED);
    assert_string_equal(diag.msg, "unsupported operators: Foo, Bar");
    assert_null(model);
}


static void load_rejects_cycle(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(th_model_load("engine_cycle.onnx", &model, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "cycle"));
    assert_null(model);
}


static void load_rejects_initializer_size_mismatch(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(th_model_load("engine_bad_init.onnx", &model, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "initializer 'w'"));
    assert_non_null(strstr(diag.msg, "5 elements"));
}


static void load_rejects_value_with_two_sources(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(th_model_load("engine_two_sources.onnx", &model, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "'y'"));
}


static void load_rejects_input_nothing_produces(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(th_model_load("engine_dangling.onnx", &model, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "'nowhere'"));
}


static void load_rejects_gemm_misfit_naming_node(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(th_model_load("engine_gemm_misfit.onnx", &model, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "fc1"));
}


static void infer_mlp_output_has_dynamic_batch(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;
    const struct bms_value_info *out;

    (void)state;
    assert_int_equal(th_model_load("engine_mlp.onnx", &model, &diag), BMS_OK);
    assert_int_equal(bms_model_n_inputs(model), 1);
    assert_int_equal(bms_model_opset(model), 13);
    /* Gemm, Relu, Gemm: the optimiser folds the Relu into the first. */
    assert_int_equal(bms_model_n_nodes(model), 2);
    out = bms_model_output(model, 0);
    assert_int_equal(out->dtype, BMS_DTYPE_F32);
    assert_int_equal(out->n_dims, 2);
    assert_int_equal(out->dims[0], -1);
    assert_int_equal(out->dims[1], 10);
    bms_model_destroy(model);
}


/* engine_view declares no output shape: [N, 5] must come from inference
 * through Shape -> Gather -> Unsqueeze -> Concat -> Reshape -> Gemm. */
static void infer_view_follows_batch_through_shape_ops(void **state)
{
    struct bms_model *model = NULL;
    struct bms_diag diag;
    const struct bms_value_info *out;

    (void)state;
    assert_int_equal(th_model_load("engine_view.onnx", &model, &diag), BMS_OK);
    out = bms_model_output(model, 0);
    assert_int_equal(out->n_dims, 2);
    assert_int_equal(out->dims[0], -1);
    assert_int_equal(out->dims[1], 5);
    bms_model_destroy(model);
}


static void run_mlp_matches_pytorch(void **state)
{
    struct bms__pool pool = {0};
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_diag diag;
    struct bms_tensor x;
    struct bms_tensor want;
    struct bms_tensor y;
    void *first_data = NULL;

    (void)state;
    th_pb_read("engine_mlp_in.pb", &pool, &x);
    th_pb_read("engine_mlp_out.pb", &pool, &want);
    assert_int_equal(th_model_load("engine_mlp.onnx", &model, &diag), BMS_OK);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    for (int run = 0; run < 3; run++) {
        assert_int_equal(bms_session_run(session, &x, &y, &diag), BMS_OK);
        assert_int_equal(y.n_dims, 2);
        assert_int_equal(y.dims[0], 3);
        assert_int_equal(y.dims[1], 10);
        for (int i = 0; i < 30; i++) {
            float a = ((float *)y.data)[i];
            float b = ((float *)want.data)[i];

            assert_true(fabsf(a - b) <= 1e-5f + 1e-4f * fabsf(b));
        }
        /* From the second run on, the arena no longer moves. */
        if (run == 1) {
            first_data = y.data;
        } else if (run == 2) {
            assert_ptr_equal(y.data, first_data);
        }
    }
    bms_session_destroy(session);
    bms_model_destroy(model);
    bms__pool_fini(&pool);
}


static void run_rejects_wrong_dims_and_dtype(void **state)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_diag diag;
    float data[3 * 12] = {0};
    struct bms_tensor x = {BMS_DTYPE_F32, 2, {3, 11}, data};
    struct bms_tensor y;

    (void)state;
    assert_int_equal(th_model_load("engine_mlp.onnx", &model, &diag), BMS_OK);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    assert_int_equal(bms_session_run(session, &x, &y, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "input 'x'"));
    x.dims[1] = 12;
    x.n_dims = 3;
    assert_int_equal(bms_session_run(session, &x, &y, &diag),
                     BMS_ERR_INVALID);
    x.n_dims = 2;
    x.dtype = BMS_DTYPE_F64;
    assert_int_equal(bms_session_run(session, &x, &y, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "input 'x'"));
    x.dtype = BMS_DTYPE_F32;
    x.dims[0] = 1;
    assert_int_equal(bms_session_run(session, &x, &y, &diag), BMS_OK);
    assert_int_equal(y.dims[0], 1);
    bms_session_destroy(session);
    bms_model_destroy(model);
}


static void run_sorts_unsorted_nodes(void **state)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_diag diag;
    float data[6] = {1, 2, 3, 4, 5, 6};
    const float want[6] = {1, 4, 2, 5, 3, 6};
    struct bms_tensor x = {BMS_DTYPE_F32, 2, {2, 3}, data};
    struct bms_tensor y;

    (void)state;
    assert_int_equal(th_model_load("engine_unsorted.onnx", &model, &diag),
                     BMS_OK);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    assert_int_equal(bms_session_run(session, &x, &y, &diag), BMS_OK);
    assert_int_equal(y.dims[0], 3);
    assert_int_equal(y.dims[1], 2);
    assert_memory_equal(y.data, want, sizeof(want));
    bms_session_destroy(session);
    bms_model_destroy(model);
}


static void run_outputs_graph_input_and_initializer(void **state)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_diag diag;
    float data[4] = {1.5f, -2.0f, 3.0f, 0.25f};
    const float want[4] = {1.5f, -2.0f, 3.0f, 0.25f};
    const int64_t want_c[2] = {7, -8};
    struct bms_tensor x = {BMS_DTYPE_F32, 2, {2, 2}, data};
    struct bms_tensor out[2];

    (void)state;
    assert_int_equal(th_model_load("engine_passthrough.onnx", &model, &diag),
                     BMS_OK);
    assert_int_equal(bms_model_n_outputs(model), 2);
    assert_int_equal(bms_model_output(model, 0)->dims[0], -1);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    assert_int_equal(bms_session_run(session, &x, out, &diag), BMS_OK);
    /* The input is borrowed for the call only: the output is a copy. */
    data[0] = 99.0f;
    assert_memory_equal(out[0].data, want, sizeof(want));
    assert_int_equal(out[1].dtype, BMS_DTYPE_I64);
    assert_memory_equal(out[1].data, want_c, sizeof(want_c));
    bms_session_destroy(session);
    bms_model_destroy(model);
}


/* y = [x^T; x^T] while the memory of b and c is handed on in between. */
static void run_keeps_values_until_last_use(void **state)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_diag diag;
    float data[6] = {1, 2, 3, 4, 5, 6};
    const float want[12] = {1, 4, 2, 5, 3, 6, 1, 4, 2, 5, 3, 6};
    struct bms_tensor x = {BMS_DTYPE_F32, 2, {2, 3}, data};
    struct bms_tensor y;

    (void)state;
    assert_int_equal(th_model_load("engine_reuse.onnx", &model, &diag), BMS_OK);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    for (int run = 0; run < 3; run++) {
        assert_int_equal(bms_session_run(session, &x, &y, &diag), BMS_OK);
        assert_int_equal(y.dims[0], 6);
        assert_int_equal(y.dims[1], 2);
        assert_memory_equal(y.data, want, sizeof(want));
    }
    bms_session_destroy(session);
    bms_model_destroy(model);
}


/* Run the model at path (repository-relative) once with a session made
 * under limit bytes; its one optional input is a float [1] of 1.0. */
static enum bms_status run_limited(const char *path, size_t limit,
                                   struct bms_diag *diag)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_tensor x;
    struct bms_tensor y;
    float one = 1.0f;
    int64_t dim = 1;
    enum bms_status rc;

    diag->msg[0] = '\0';
    assert_int_equal(bms_model_load_file(path, &model, diag), BMS_OK);
    bms_engine_set_memory_limit(limit);
    rc = bms_session_create(model, &session, diag);
    bms_engine_set_memory_limit(0);
    assert_int_equal(rc, BMS_OK);
    x = th_tensor(BMS_DTYPE_F32, &one, 1, &dim);
    rc = bms_session_run(session, &x, &y, diag);
    bms_session_destroy(session);
    bms_model_destroy(model);
    return rc;
}


static void session_limit_refuses_hostile_sizes(void **state)
{
    struct bms_diag diag;

    (void)state;
    /* ConstantOfShape of 256 GiB and Expand to 2^40 floats, under a
     * 64 MiB limit: refused by the limit, not by the allocator. */
    assert_int_equal(run_limited("tests/fuzz/oom/"
                                 "hostile_constant_of_shape_256gib.onnx",
                                 (size_t)64 << 20, &diag), BMS_ERR_LIMIT);
    assert_non_null(strstr(diag.msg, "memory limit of 67108864 bytes"));
    assert_int_equal(run_limited("tests/fuzz/oom/hostile_expand_to_2p40.onnx",
                                 (size_t)64 << 20, &diag), BMS_ERR_LIMIT);
}


static void session_limit_default_is_below_the_machine(void **state)
{
    struct bms_diag diag;

    (void)state;
    /* The default (half the physical memory) still refuses 256 GiB. */
    assert_int_equal(run_limited("tests/fuzz/oom/"
                                 "hostile_constant_of_shape_256gib.onnx",
                                 0, &diag), BMS_ERR_LIMIT);
}


static void session_limit_lets_small_runs_through(void **state)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_tensor x;
    struct bms_tensor y;
    struct bms_diag diag;
    float *image = calloc(28 * 28, sizeof(float));
    int64_t dims[3] = {1, 28, 28};

    (void)state;
    assert_non_null(image);
    diag.msg[0] = '\0';
    assert_int_equal(bms_model_load_file("models/fashion_mlp/1/model.onnx",
                                         &model, &diag), BMS_OK);
    /* fashion_mlp's tensors for one image: well under 1 MiB. */
    bms_engine_set_memory_limit((size_t)1 << 20);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    bms_engine_set_memory_limit(0);
    x = th_tensor(BMS_DTYPE_F32, image, 3, dims);
    assert_int_equal(bms_session_run(session, &x, &y, &diag), BMS_OK);
    assert_int_equal(y.dims[1], 10);
    bms_session_destroy(session);
    bms_model_destroy(model);
    free(image);
}


int bms_test_engine(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_rejects_truncated_file),
        cmocka_unit_test(session_limit_refuses_hostile_sizes),
        cmocka_unit_test(session_limit_default_is_below_the_machine),
        cmocka_unit_test(session_limit_lets_small_runs_through),
        cmocka_unit_test(load_rejects_garbage_bytes),
        cmocka_unit_test(load_survives_corrupted_bytes),
        cmocka_unit_test(load_names_unknown_operator),
        cmocka_unit_test(load_rejects_cycle),
        cmocka_unit_test(load_rejects_initializer_size_mismatch),
        cmocka_unit_test(load_rejects_value_with_two_sources),
        cmocka_unit_test(load_rejects_input_nothing_produces),
        cmocka_unit_test(load_rejects_gemm_misfit_naming_node),
        cmocka_unit_test(infer_mlp_output_has_dynamic_batch),
        cmocka_unit_test(infer_view_follows_batch_through_shape_ops),
        cmocka_unit_test(run_mlp_matches_pytorch),
        cmocka_unit_test(run_rejects_wrong_dims_and_dtype),
        cmocka_unit_test(run_sorts_unsorted_nodes),
        cmocka_unit_test(run_outputs_graph_input_and_initializer),
        cmocka_unit_test(run_keeps_values_until_last_use),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
