/*
 * Unit tests of the transformer fast paths: the vectorised loops of
 * engine/ops/vecmath.c against libm in double precision and two-pass
 * double references, the fusion passes (GELU, MatMul with its transposes,
 * scale, bias and GELU, Add + LayerNormalization) on the models of
 * tests/data/make_fast_models.py, whose expected outputs numpy computed
 * in float64, and the Transpose kernel's row and tiled copies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "bms/engine.h"
#include "engine/model.h"
#include "engine/ops/blas.h"
#include "engine/ops/vecmath.h"

#define DATA "tests/data/"
#define MAX_OUTPUTS 2
#define N_SWEEP 200001


/* The largest |got / want - 1| over x[0..n), where |want| >= floor. */
static double max_rel(const float *x, const float *got, int64_t n,
                      double (*ref)(double), double floor_abs)
{
    double worst = 0;

    for (int64_t i = 0; i < n; i++) {
        double want = ref(x[i]);
        double err;

        if (fabs(want) < floor_abs || isinf(want)) {
            continue;
        }
        err = fabs(got[i] / want - 1);
        worst = err > worst ? err : worst;
    }
    return worst;
}


static float *sweep(float lo, float hi, int64_t n)
{
    float *x = malloc((size_t)n * sizeof(float));

    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) {
        x[i] = lo + (hi - lo) * (float)i / (float)(n - 1);
    }
    return x;
}


static void vec_exp_matches_libm_within_2e7(void **state)
{
    const float special[] = {-INFINITY, -100.0f, 0.0f, -0.0f, 100.0f,
                             INFINITY, NAN};
    float y_special[7];
    float *x = sweep(-87.0f, 88.5f, N_SWEEP);
    float *y = malloc(N_SWEEP * sizeof(float));

    (void)state;
    assert_non_null(y);
    bms__vec_exp(y, x, N_SWEEP);
    assert_true(max_rel(x, y, N_SWEEP, exp, 0.0) < 2e-7);
    bms__vec_exp(y_special, special, 7);
    assert_true(y_special[0] == 0.0f && y_special[1] == 0.0f);
    assert_true(y_special[2] == 1.0f && y_special[3] == 1.0f);
    assert_true(isinf(y_special[4]) && isinf(y_special[5]));
    assert_true(isnan(y_special[6]));
    free(y);
    free(x);
}


static void vec_erf_matches_libm_within_2e7(void **state)
{
    const float special[] = {-INFINITY, -10.0f, 1e-30f, 10.0f, INFINITY,
                             NAN};
    float y_special[6];
    float *x = sweep(-6.0f, 6.0f, N_SWEEP);
    float *y = malloc(N_SWEEP * sizeof(float));

    (void)state;
    assert_non_null(y);
    bms__vec_erf(y, x, N_SWEEP);
    assert_true(max_rel(x, y, N_SWEEP, erf, 1e-30) < 2.5e-7);
    bms__vec_erf(y_special, special, 6);
    assert_true(y_special[0] == -1.0f && y_special[1] == -1.0f);
    /* erf(x) = 2 x / sqrt(pi) near 0. */
    assert_float_equal(y_special[2] / 1e-30f, 1.1283791670955126, 1e-6);
    assert_true(y_special[3] == 1.0f && y_special[4] == 1.0f);
    assert_true(isnan(y_special[5]));
    free(y);
    free(x);
}


static double gelu64(double v)
{
    return v * 0.5 * (1.0 + erf(v / sqrt(2.0)));
}


static void vec_gelu_matches_erf_definition(void **state)
{
    float *x = sweep(-12.0f, 12.0f, N_SWEEP);
    float *y = malloc(N_SWEEP * sizeof(float));

    (void)state;
    assert_non_null(y);
    bms__vec_gelu(y, x, N_SWEEP);
    for (int64_t i = 0; i < N_SWEEP; i++) {
        double want = gelu64(x[i]);

        if (!(fabs(y[i] - want) <= 1e-7 + 4e-6 * fabs(want))) {
            fail_msg("gelu(%.9g) = %.9g, want %.9g", (double)x[i],
                     (double)y[i], want);
        }
    }
    /* In place, as the fused MatMul runs it. */
    bms__vec_gelu(x, x, N_SWEEP);
    assert_memory_equal(x, y, N_SWEEP * sizeof(float));
    free(y);
    free(x);
}


static void vec_softmax_steps_match_double(void **state)
{
    enum { N = 203 };            /* not a multiple of the 16 lanes */
    float x[N];
    float y[N];
    double max = -INFINITY;
    double sum = 0;
    float got;

    (void)state;
    for (int i = 0; i < N; i++) {
        x[i] = (float)sin(i * 0.37) * 20.0f;
        max = x[i] > max ? x[i] : max;
    }
    x[17] = NAN;                 /* skipped by the maximum */
    assert_float_equal(bms__vec_max(x, N), max, 0);
    x[17] = 0.0f;
    for (int i = 0; i < N; i++) {
        sum += exp(x[i] - max);
    }
    got = bms__vec_exp_sum(y, x, N, (float)max);
    assert_float_equal(got, sum, 1e-6 * sum);
    for (int i = 0; i < N; i++) {
        assert_float_equal(y[i], exp(x[i] - max), 2e-7);
    }
}


/* y = LayerNorm(x + r) over n values, in double with two passes. */
static void layernorm64(const float *x, const float *r, const float *scale,
                        const float *bias, int n, double eps, double *y)
{
    double mean = 0;
    double var = 0;

    for (int i = 0; i < n; i++) {
        mean += (double)x[i] + (r != NULL ? r[i] : 0);
    }
    mean /= n;
    for (int i = 0; i < n; i++) {
        double d = (double)x[i] + (r != NULL ? r[i] : 0) - mean;

        var += d * d;
    }
    var /= n;
    for (int i = 0; i < n; i++) {
        double v = (double)x[i] + (r != NULL ? r[i] : 0);

        y[i] = (v - mean) / sqrt(var + eps) * scale[i] +
               (bias != NULL ? bias[i] : 0);
    }
}


static void vec_layernorm_matches_two_pass_double(void **state)
{
    enum { N = 77 };
    float x[N], r[N], scale[N], bias[N], y[N];
    double want[N];
    float mean;
    float inv_std;

    (void)state;
    for (int i = 0; i < N; i++) {
        /* A large common offset: one-pass moments would lose it. */
        x[i] = 1000.0f + (float)cos(i * 0.9);
        r[i] = (float)sin(i * 1.3);
        scale[i] = 1.0f + 0.01f * (float)i;
        bias[i] = 0.5f - 0.02f * (float)i;
    }
    bms__vec_layernorm(y, x, r, scale, bias, N, 1e-5f, &mean, &inv_std);
    layernorm64(x, r, scale, bias, N, 1e-5, want);
    for (int i = 0; i < N; i++) {
        assert_float_equal(y[i], want[i], 1e-3);
    }
    bms__vec_layernorm(y, r, NULL, scale, NULL, N, 1e-5f, &mean, &inv_std);
    layernorm64(r, NULL, scale, NULL, N, 1e-5, want);
    for (int i = 0; i < N; i++) {
        assert_float_equal(y[i], want[i], 2e-6);
    }
}


/* ---- Models ------------------------------------------------------------ */

static struct bms_model *load_fast(const char *name, int on)
{
    const char *old = getenv("BMS_OPTIMIZE");
    char saved[32] = "";
    struct bms_model *model = NULL;
    struct bms_diag diag = {{0}};
    char path[256];
    enum bms_status rc;

    if (old != NULL) {
        snprintf(saved, sizeof(saved), "%s", old);
    }
    snprintf(path, sizeof(path), DATA "fast_%s.onnx", name);
    setenv("BMS_OPTIMIZE", on ? "1" : "0", 1);
    rc = bms_model_load_file(path, &model, &diag);
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


static void read_pb(const char *name, struct bms__pool *pool,
                    struct bms_tensor *t)
{
    struct bms_diag diag;
    char path[256];
    FILE *f;
    char *data;
    long len;

    snprintf(path, sizeof(path), DATA "%s", name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    data = malloc((size_t)len);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    assert_int_equal(bms__tensor_read(data, (size_t)len, pool, t, NULL,
                                      &diag), BMS_OK);
    free(data);
}


static void assert_close(const struct bms_tensor *got,
                         const struct bms_tensor *want)
{
    int64_t n = bms_tensor_numel(want);

    assert_int_equal(got->dtype, BMS_DTYPE_F32);
    assert_int_equal(got->n_dims, want->n_dims);
    for (int d = 0; d < want->n_dims; d++) {
        assert_int_equal(got->dims[d], want->dims[d]);
    }
    for (int64_t i = 0; i < n; i++) {
        float a = ((const float *)got->data)[i];
        float b = ((const float *)want->data)[i];

        if (!(fabsf(a - b) <= 1e-5f + 1e-4f * fabsf(b))) {
            fail_msg("element %lld: got %.9g, want %.9g", (long long)i,
                     (double)a, (double)b);
        }
    }
}


/* Nodes of op_type in the loaded model. */
static int count_ops(const struct bms_model *model, const char *op_type)
{
    int n = 0;

    for (int i = 0; i < model->n_nodes; i++) {
        n += strcmp(model->nodes[i].op_type, op_type) == 0;
    }
    return n;
}


/* Run fast_<name>.onnx with the optimiser off and on, three times each
 * (dynamic, then planned runs): every output must match numpy's, and the
 * optimised graph must have nodes_on nodes. */
static struct bms_model *check_model(const char *name, int n_outputs,
                                     int nodes_on)
{
    struct bms__pool pool = {0};
    struct bms_tensor x;
    struct bms_tensor want[MAX_OUTPUTS];
    struct bms_model *model = NULL;
    char file[128];

    snprintf(file, sizeof(file), "fast_%s_in.pb", name);
    read_pb(file, &pool, &x);
    for (int k = 0; k < n_outputs; k++) {
        snprintf(file, sizeof(file), "fast_%s_out%d.pb", name, k);
        read_pb(file, &pool, &want[k]);
    }
    for (int on = 0; on <= 1; on++) {
        struct bms_session *session = NULL;
        struct bms_diag diag = {{0}};
        struct bms_tensor y[MAX_OUTPUTS];

        bms_model_destroy(model);
        model = load_fast(name, on);
        if (on) {
            assert_int_equal(bms_model_n_nodes(model), nodes_on);
        }
        assert_int_equal(bms_model_n_outputs(model), n_outputs);
        assert_int_equal(bms_session_create(model, &session, &diag),
                         BMS_OK);
        for (int run = 0; run < 3; run++) {
            if (bms_session_run(session, &x, y, &diag) != BMS_OK) {
                fail_msg("%s: %s", name, diag.msg);
            }
            for (int k = 0; k < n_outputs; k++) {
                assert_close(&y[k], &want[k]);
            }
        }
        bms_session_destroy(session);
    }
    bms__pool_fini(&pool);
    return model;
}


static void transformer_block_fuses_and_matches_numpy(void **state)
{
    struct bms_model *model = check_model("block", 1, 15);

    (void)state;
    assert_int_equal(count_ops(model, "bms.MatMul"), 8);
    assert_int_equal(count_ops(model, "bms.AddLayerNorm"), 2);
    assert_int_equal(count_ops(model, "Transpose"), 0);
    assert_int_equal(count_ops(model, "Erf"), 0);
    assert_int_equal(count_ops(model, "Div"), 0);
    bms_model_destroy(model);
}


static void gelu_other_grouping_fuses(void **state)
{
    struct bms_model *model = check_model("gelu", 1, 1);

    (void)state;
    assert_int_equal(count_ops(model, "bms.Gelu"), 1);
    bms_model_destroy(model);
}


static void fusions_leave_unfit_chains(void **state)
{
    struct bms_model *model = check_model("nofuse", 2, 11);

    (void)state;
    assert_int_equal(count_ops(model, "Erf"), 1);
    assert_int_equal(count_ops(model, "MatMul"), 1);
    assert_int_equal(count_ops(model, "Transpose"), 1);
    assert_int_equal(count_ops(model, "LayerNormalization"), 1);
    assert_int_equal(count_ops(model, "bms.MatMul"), 1);
    bms_model_destroy(model);
}


static void transpose_rows_and_tiles_match_numpy(void **state)
{
    struct bms_model *model = check_model("transpose", 1, 5);

    (void)state;
    bms_model_destroy(model);
}


/* Prepare a bms.MatMul node with one INTS attribute. */
static enum bms_status prepare_fmatmul(const char *name, const int64_t *ints,
                                       int n)
{
    int inputs[2] = {0, 1};
    int outputs[1] = {2};
    struct bms__attr attr = {.name = name, .type = BMS__ATTR_INTS,
                             .ints = ints, .n = n};
    struct bms__node node = {.op_type = "bms.MatMul", .n_inputs = 2,
                             .inputs = inputs, .n_outputs = 1,
                             .outputs = outputs, .n_attrs = 1,
                             .attrs = &attr};
    struct bms_diag diag = {{0}};
    enum bms_status rc;

    node.op = bms__op_find(node.op_type);
    assert_non_null(node.op);
    rc = node.op->prepare(&node, &diag);
    bms__node_params_free(&node);
    return rc;
}


static void fused_matmul_rejects_bad_perms(void **state)
{
    const int64_t heads[] = {0, 2, 1, 3};
    const int64_t swap_last[] = {0, 1, 3, 2};
    const int64_t last_first[] = {3, 0, 1, 2};
    const int64_t repeated[] = {0, 0, 1};

    (void)state;
    assert_int_equal(prepare_fmatmul("perm_a", heads, 4), BMS_OK);
    assert_int_equal(prepare_fmatmul("perm_b", swap_last, 4), BMS_OK);
    assert_int_equal(prepare_fmatmul("perm_y", heads, 4), BMS_OK);
    assert_int_equal(prepare_fmatmul("perm_b", last_first, 4),
                     BMS_ERR_INVALID);
    assert_int_equal(prepare_fmatmul("perm_a", repeated, 3),
                     BMS_ERR_INVALID);
    /* The product's last axis must stay last. */
    assert_int_equal(prepare_fmatmul("perm_y", swap_last, 4),
                     BMS_ERR_INVALID);
}


/* C = alpha op(A) op(B) + beta C in double, row-major. */
static void gemm64(int ta, int tb, int m, int n, int k, float alpha,
                   const float *a, const float *b, float beta,
                   const float *c0, double *want)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0.0;

            for (int p = 0; p < k; p++) {
                double x = ta ? a[p * m + i] : a[i * k + p];
                double y = tb ? b[j * k + p] : b[p * n + j];

                acc += x * y;
            }
            want[i * n + j] = alpha * acc + beta * c0[i * n + j];
        }
    }
}


static void sgemm_split_by_rows_matches_double(void **state)
{
    /* An MLP layer at batch 64 (the row split on two threads), an odd
     * row count, and one big enough for oneDNN's own threads. */
    static const int shapes[][3] = {{64, 128, 784}, {37, 160, 900},
                                    {300, 200, 100}};

    (void)state;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc((size_t)m * k * sizeof(float));
        float *b = malloc((size_t)k * n * sizeof(float));
        float *c = malloc((size_t)m * n * sizeof(float));
        float *c0 = malloc((size_t)m * n * sizeof(float));
        double *want = malloc((size_t)m * n * sizeof(double));
        uint32_t seed = 7;

        assert_true(a && b && c && c0 && want);
        for (int i = 0; i < m * k; i++) {
            seed = seed * 1664525u + 1013904223u;
            a[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
        }
        for (int i = 0; i < k * n; i++) {
            seed = seed * 1664525u + 1013904223u;
            b[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
        }
        for (int i = 0; i < m * n; i++) {
            c0[i] = (float)(i % 7) - 3.0f;
        }
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                memcpy(c, c0, (size_t)m * n * sizeof(float));
                assert_int_equal(bms__sgemm(2, ta, tb, m, n, k, 0.5f, a,
                                            ta ? m : k, b, tb ? k : n,
                                            0.25f, c, n), BMS_OK);
                gemm64(ta, tb, m, n, k, 0.5f, a, b, 0.25f, c0, want);
                for (int i = 0; i < m * n; i++) {
                    assert_true(fabs(c[i] - want[i]) <= 1e-4 *
                                (1.0 + fabs(want[i])));
                }
            }
        }
        free(a);
        free(b);
        free(c);
        free(c0);
        free(want);
    }
}


int bms_test_ops_fast(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vec_exp_matches_libm_within_2e7),
        cmocka_unit_test(sgemm_split_by_rows_matches_double),
        cmocka_unit_test(vec_erf_matches_libm_within_2e7),
        cmocka_unit_test(vec_gelu_matches_erf_definition),
        cmocka_unit_test(vec_softmax_steps_match_double),
        cmocka_unit_test(vec_layernorm_matches_two_pass_double),
        cmocka_unit_test(transformer_block_fuses_and_matches_numpy),
        cmocka_unit_test(gelu_other_grouping_fuses),
        cmocka_unit_test(fusions_leave_unfit_chains),
        cmocka_unit_test(transpose_rows_and_tiles_match_numpy),
        cmocka_unit_test(fused_matmul_rejects_bad_perms),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
