/*
 * Unit tests of the load-time graph optimisations (engine/optimize.c) and
 * the session's memory plan (engine/plan.c).  The models and their
 * expected outputs come from tests/data/make_opt_models.py, computed with
 * numpy (PyTorch in float64 for convolutions), never with bms.  Every
 * model is run both with BMS_OPTIMIZE=0 and with the optimiser on, three
 * times each, so that dynamic and planned runs are both checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "bms/engine.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "harness.h"

#define MAX_OUTPUTS 4

/* The last "optimised" debug line the engine logged. */
static char opt_line[1024];


static void capture_log(void *ud, enum bms_log_level level,
                        const char *line)
{
    (void)ud;
    (void)level;
    if (strstr(line, "msg=\"optimised\"") != NULL) {
        snprintf(opt_line, sizeof(opt_line), "%s", line);
    }
}


/* Load tests/data/<name> with the optimiser on or off, leaving
 * BMS_OPTIMIZE and the log set-up as they were. */
static struct bms_model *load_opt(const char *name, int on)
{
    const char *old = getenv("BMS_OPTIMIZE");
    char saved[32] = "";
    enum bms_log_level level = bms_log_get_level();
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};
    char path[256];
    enum bms_status rc;

    if (old != NULL) {
        snprintf(saved, sizeof(saved), "%s", old);
    }
    snprintf(path, sizeof(path), TH_DATA "%s", name);
    setenv("BMS_OPTIMIZE", on ? "1" : "0", 1);
    opt_line[0] = '\0';
    bms_log_set_handler(capture_log, NULL);
    bms_log_set_level(BMS_LOG_DEBUG);
    rc = bms_model_load_file(path, &model, &diag);
    bms_log_set_level(level);
    bms_log_set_handler(NULL, NULL);
    if (old != NULL) {
        setenv("BMS_OPTIMIZE", saved, 1);
    } else {
        unsetenv("BMS_OPTIMIZE");
    }
    if (rc != BMS_OK) {
        fail_msg("%s: %s", name, diag.msg);
    }
    return model;
}


/*
 * Run opt_<name>.onnx on its input with the optimiser off and on: the
 * node counts must be nodes_off and nodes_on, and every output of every
 * run must match the expected one, and the optimised outputs the
 * unoptimised ones.
 */
static void check_model(const char *name, int n_outputs, int nodes_off,
                        int nodes_on)
{
    struct bms__pool pool = {0};
    struct bms_tensor x;
    struct bms_tensor want[MAX_OUTPUTS];
    struct bms_tensor off[MAX_OUTPUTS];
    char file[128];

    snprintf(file, sizeof(file), "opt_%s_in.pb", name);
    th_pb_read(file, &pool, &x);
    for (int k = 0; k < n_outputs; k++) {
        snprintf(file, sizeof(file), "opt_%s_out%d.pb", name, k);
        th_pb_read(file, &pool, &want[k]);
    }
    for (int on = 0; on <= 1; on++) {
        struct bms_session *session = NULL;
        struct bms_diag diag = {{0}};
        struct bms_model *model;
        struct bms_tensor y[MAX_OUTPUTS];

        snprintf(file, sizeof(file), "opt_%s.onnx", name);
        model = load_opt(file, on);
        assert_int_equal(bms_model_n_nodes(model), on ? nodes_on
                                                      : nodes_off);
        assert_int_equal(bms_model_n_outputs(model), n_outputs);
        assert_int_equal(bms_session_create(model, &session, &diag),
                         BMS_OK);
        for (int run = 0; run < 3; run++) {
            assert_int_equal(bms_session_run(session, &x, y, &diag),
                             BMS_OK);
            for (int k = 0; k < n_outputs; k++) {
                th_assert_tensor_close(&y[k], &want[k]);
                if (on) {
                    th_assert_tensor_close(&y[k], &off[k]);
                }
            }
        }
        for (int k = 0; k < n_outputs && !on; k++) {
            size_t size = bms_tensor_size(&y[k]);

            off[k] = y[k];
            off[k].data = bms__pool_alloc(&pool, size);
            assert_non_null(off[k].data);
            memcpy(off[k].data, y[k].data, size);
        }
        bms_session_destroy(session);
        bms_model_destroy(model);
    }
    bms__pool_fini(&pool);
}


/* Whether the last optimised line carries field (as "name=value"). */
static void assert_logged(const char *field)
{
    char want[64];
    const char *at;
    size_t len;

    snprintf(want, sizeof(want), " %s", field);
    len = strlen(want);
    at = strstr(opt_line, want);
    if (at == NULL || (at[len] != ' ' && at[len] != '\0')) {
        fail_msg("'%s' not in: %s", field, opt_line);
    }
}


static void fold_computes_constant_subgraphs_at_load(void **state)
{
    (void)state;
    check_model("fold", 1, 5, 2);
    bms_model_destroy(load_opt("opt_fold.onnx", 1));
    assert_logged("folded=3");
    /* w, w2 and Constant's c0 were read only by folded nodes; "unused"
     * by nobody. */
    assert_logged("freed_initializers=4");
}


static void dead_nodes_are_removed(void **state)
{
    (void)state;
    check_model("dead", 1, 4, 1);
    bms_model_destroy(load_opt("opt_dead.onnx", 1));
    assert_logged("removed=3");
    assert_logged("freed_initializers=1");
}


static void convbn_folds_into_conv(void **state)
{
    (void)state;
    check_model("convbn", 2, 4, 2);
    bms_model_destroy(load_opt("opt_convbn.onnx", 1));
    assert_logged("bn_folded=2");
}


static void activations_fuse_into_gemm_and_matmul(void **state)
{
    (void)state;
    check_model("fuse", 1, 10, 5);
    bms_model_destroy(load_opt("opt_fuse.onnx", 1));
    assert_logged("fused=5");
}


/* The Gemm with transB = 1 on its own initializer gets the weights
 * transposed at load and transB 0; the other (transB 0) stays.  Outputs
 * against numpy's and the unoptimised run's. */
static void gemm_weights_are_stored_untransposed(void **state)
{
    (void)state;
    check_model("fuse", 1, 10, 5);
    bms_model_destroy(load_opt("opt_fuse.onnx", 1));
    assert_logged("untransposed=1");
    check_model("block", 1, 20, 11);
    bms_model_destroy(load_opt("opt_block.onnx", 1));
    assert_logged("untransposed=1");
}


/* Conv -> BN -> Relu chains of a residual network: the folds leave each
 * Conv feeding its Relu alone, so the fusion fires after them. */
static void convbn_then_activation_fuse_in_resnet_block(void **state)
{
    (void)state;
    check_model("block", 1, 20, 11);
    bms_model_destroy(load_opt("opt_block.onnx", 1));
    assert_logged("bn_folded=5");
    assert_logged("fused=4");
}


static void activations_fuse_into_conv(void **state)
{
    (void)state;
    check_model("fuse_conv", 1, 6, 3);
    bms_model_destroy(load_opt("opt_fuse_conv.onnx", 1));
    assert_logged("fused=3");
}


static void activation_stays_when_producer_output_is_shared(void **state)
{
    (void)state;
    check_model("nofuse", 4, 5, 5);
    bms_model_destroy(load_opt("opt_nofuse.onnx", 1));
    assert_logged("fused=0");
}


static void passthroughs_go_and_output_names_stay(void **state)
{
    struct bms_model *model;

    (void)state;
    check_model("identity", 3, 7, 4);
    model = load_opt("opt_identity.onnx", 1);
    assert_logged("dropped=3");
    assert_string_equal(bms_model_output(model, 0)->name, "y");
    assert_string_equal(bms_model_output(model, 1)->name, "z");
    assert_string_equal(bms_model_output(model, 2)->name, "w");
    assert_int_equal(bms_model_find_output(model, "y"), 0);
    bms_model_destroy(model);
}


/* Run a model on x, check y against want, and return the plan stats. */
static void run_planned(struct bms_session *session,
                        const struct bms_tensor *x,
                        const struct bms_tensor *want, size_t *arena_size,
                        size_t *total_size, int *n_buffers)
{
    struct bms_diag diag = {{0}};
    struct bms_tensor y;

    assert_int_equal(bms_session_run(session, x, &y, &diag), BMS_OK);
    th_assert_tensor_close(&y, want);
    assert_true(bms__session_plan_stats(session, arena_size, total_size,
                                        n_buffers));
}


/* Three buffers of 1000 floats (4032 bytes with alignment): the first
 * and the last live apart and share, so the arena holds two. */
static void plan_shares_buffers_with_disjoint_lifetimes(void **state)
{
    struct bms__pool pool = {0};
    struct bms_model *model = load_opt("opt_chain.onnx", 1);
    struct bms_session *session = NULL;
    struct bms_diag diag = {{0}};
    struct bms_tensor x, want;
    size_t arena_size, total_size;
    int n_buffers;

    (void)state;
    th_pb_read("opt_chain_in.pb", &pool, &x);
    th_pb_read("opt_chain_out0.pb", &pool, &want);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    assert_false(bms__session_plan_stats(session, &arena_size, &total_size,
                                         &n_buffers));
    for (int run = 0; run < 3; run++) {
        run_planned(session, &x, &want, &arena_size, &total_size,
                    &n_buffers);
        assert_int_equal(n_buffers, 3);
        assert_int_equal(total_size, 3 * 4032);
        assert_int_equal(arena_size, 2 * 4032);
    }
    bms_session_destroy(session);
    bms_model_destroy(model);
    bms__pool_fini(&pool);
}


/* Batches of 1 and 3 alternate: each keeps its own plan (3 rows of 1000
 * floats are 12032 bytes per buffer). */
static void plan_follows_input_dims(void **state)
{
    struct bms__pool pool = {0};
    struct bms_model *model = load_opt("opt_chain.onnx", 1);
    struct bms_session *session = NULL;
    struct bms_diag diag = {{0}};
    struct bms_tensor x1, want1, x3, want3;
    size_t arena_size, total_size;
    int n_buffers;

    (void)state;
    th_pb_read("opt_chain_in.pb", &pool, &x1);
    th_pb_read("opt_chain_out0.pb", &pool, &want1);
    x3 = x1;
    want3 = want1;
    x3.dims[0] = 3;
    want3.dims[0] = 3;
    x3.data = bms__pool_alloc(&pool, 3 * 4000);
    want3.data = bms__pool_alloc(&pool, 3 * 4000);
    assert_non_null(x3.data);
    assert_non_null(want3.data);
    for (int r = 0; r < 3; r++) {
        memcpy((char *)x3.data + r * 4000, x1.data, 4000);
        memcpy((char *)want3.data + r * 4000, want1.data, 4000);
    }
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    for (int run = 0; run < 6; run++) {
        int three = run % 2 == 1;

        run_planned(session, three ? &x3 : &x1, three ? &want3 : &want1,
                    &arena_size, &total_size, &n_buffers);
        assert_int_equal(arena_size, (three ? 12032 : 4032) * 2);
        assert_int_equal(total_size, (three ? 12032 : 4032) * 3);
    }
    bms_session_destroy(session);
    bms_model_destroy(model);
    bms__pool_fini(&pool);
}


/* Relu -> Reshape -> Sigmoid -> Tanh over 12 floats (64 bytes each): the
 * Reshape takes no buffer, the Relu buffer lives until the Sigmoid reads
 * its view, and only the Tanh output can share with it. */
static void plan_gives_views_their_input_buffer(void **state)
{
    struct bms__pool pool = {0};
    struct bms_model *model = load_opt("opt_view.onnx", 1);
    struct bms_session *session = NULL;
    struct bms_diag diag = {{0}};
    struct bms_tensor x, want;
    size_t arena_size, total_size;
    int n_buffers;

    (void)state;
    th_pb_read("opt_view_in.pb", &pool, &x);
    th_pb_read("opt_view_out0.pb", &pool, &want);
    assert_int_equal(bms_model_n_nodes(model), 4);
    assert_int_equal(bms_session_create(model, &session, &diag), BMS_OK);
    for (int run = 0; run < 3; run++) {
        run_planned(session, &x, &want, &arena_size, &total_size,
                    &n_buffers);
        assert_int_equal(n_buffers, 3);
        assert_int_equal(total_size, 3 * 64);
        assert_int_equal(arena_size, 2 * 64);
    }
    bms_session_destroy(session);
    bms_model_destroy(model);
    bms__pool_fini(&pool);
}


int bms_test_optimize(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fold_computes_constant_subgraphs_at_load),
        cmocka_unit_test(dead_nodes_are_removed),
        cmocka_unit_test(convbn_folds_into_conv),
        cmocka_unit_test(activations_fuse_into_gemm_and_matmul),
        cmocka_unit_test(gemm_weights_are_stored_untransposed),
        cmocka_unit_test(activations_fuse_into_conv),
        cmocka_unit_test(convbn_then_activation_fuse_in_resnet_block),
        cmocka_unit_test(activation_stays_when_producer_output_is_shared),
        cmocka_unit_test(passthroughs_go_and_output_names_stay),
        cmocka_unit_test(plan_shares_buffers_with_disjoint_lifetimes),
        cmocka_unit_test(plan_follows_input_dims),
        cmocka_unit_test(plan_gives_views_their_input_buffer),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
