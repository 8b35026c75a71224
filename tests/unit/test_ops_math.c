/*
 * Unit tests of the arithmetic kernels (src/engine/ops/): each test builds
 * one node by hand, runs prepare, infer and run, and compares the output
 * with numbers worked out by hand or, where it says so, computed with
 * numpy 1.24 / PyTorch 1.13 from the same inputs.  Inputs that are not
 * written out come from pattern(): v[i] = ((i % m) - off) * scale, the
 * same formula the reference computations used.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "harness.h"


static void pattern(float *v, int n, int m, int off, float scale)
{
    for (int i = 0; i < n; i++) {
        v[i] = (float)((i % m) - off) * scale;
    }
}


static void add_broadcasts_row_over_matrix(void **state)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    float b[3] = {10, 20, 30};
    float y[6];
    /* By hand: each row of a plus b. */
    const float want[6] = {11, 22, 33, 14, 25, 36};
    const int64_t ad[] = {2, 3}, bd[] = {3};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Add", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, a, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, b, 1, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, ad);
    th_assert_floats(y, want, 6, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void sub_broadcasts_both_ways(void **state)
{
    double a[3] = {1, 2, 3};            /* [3, 1] */
    double b[2] = {10, 100};            /* [2] */
    double y[6];
    /* By hand: y[i][j] = a[i] - b[j]. */
    const double want[6] = {-9, -99, -8, -98, -7, -97};
    const int64_t ad[] = {3, 1}, bd[] = {2}, yd[] = {3, 2};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Sub", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F64, a, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F64, b, 1, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, yd);
    for (int i = 0; i < 6; i++) {
        assert_true(y[i] == want[i]);
    }
    th_node_fini(&t);
}


static void div_int32_defines_zero_and_overflow(void **state)
{
    int32_t a[4] = {7, -7, 5, INT32_MIN};
    int32_t b[4] = {2, 2, 0, -1};
    int32_t y[4];
    /* C truncating division; x / 0 is 0 and MIN / -1 wraps to MIN, as the
     * kernel's contract says. */
    const int32_t want[4] = {3, -3, 0, INT32_MIN};
    const int64_t d[] = {4};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Div", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_I32, a, 1, d);
    in[1] = th_tensor(BMS_DTYPE_I32, b, 1, d);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(y[i], want[i]);
    }
    th_node_fini(&t);
}


static void mul_int64_wraps_on_overflow(void **state)
{
    int64_t a[2] = {INT64_MAX, -3};
    int64_t b[1] = {2};
    int64_t y[2];
    /* Two's complement: INT64_MAX * 2 = -2 (mod 2^64). */
    const int64_t d[] = {2}, bd[] = {1};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Mul", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_I64, a, 1, d);
    in[1] = th_tensor(BMS_DTYPE_I64, b, 1, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    assert_int_equal(y[0], -2);
    assert_int_equal(y[1], -6);
    th_node_fini(&t);
}


static void add_rejects_shapes_that_do_not_broadcast(void **state)
{
    const int64_t ad[] = {2, 3}, bd[] = {4};
    struct bms_tensor in[2], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Add", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, NULL, 1, bd);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "Add"));
    assert_non_null(strstr(diag.msg, "[2,3]"));
    assert_non_null(strstr(diag.msg, "[4]"));
    th_node_fini(&t);
}


static void add_refuses_fp16(void **state)
{
    const int64_t d[] = {2};
    struct bms_tensor in[2], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Add", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F16, NULL, 1, d);
    in[1] = th_tensor(BMS_DTYPE_F16, NULL, 1, d);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_UNSUPPORTED);
    assert_string_equal(diag.msg, "Add: datatype FP16 not supported");
    th_node_fini(&t);
}


static void add_unknown_dim_propagates(void **state)
{
    const int64_t ad[] = {-1, 3}, bd[] = {1, 3}, want[] = {-1, 3};
    struct bms_tensor in[2], out[1];
    struct th_node t;

    (void)state;
    th_node_init(&t, "Add", 14, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, NULL, 2, bd);
    assert_int_equal(th_node_infer(&t, in, out, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, want);
    th_node_fini(&t);
}


static void add_opset6_broadcasts_at_axis(void **state)
{
    float a[6] = {1, 2, 3, 4, 5, 6};    /* [2, 3] */
    float b[2] = {10, 20};              /* [2], aligned with axis 0 */
    float y[6];
    /* By hand: row i of a plus b[i] (Add-6, broadcast=1, axis=0). */
    const float want[6] = {11, 12, 13, 24, 25, 26};
    const int64_t ad[] = {2, 3}, bd[] = {2};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Add", 6, 2, 1);
    th_attr_int(&t, "broadcast", 1);
    th_attr_int(&t, "axis", 0);
    in[0] = th_tensor(BMS_DTYPE_F32, a, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, b, 1, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, ad);
    th_assert_floats(y, want, 6, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void unary_sigmoid_tanh_relu_match_reference(void **state)
{
    static const char *const ops[] = {"Sigmoid", "Tanh", "Relu"};
    /* Sigmoid by torch.sigmoid, Tanh by numpy.tanh, Relu by hand. */
    static const float want[3][5] = {
        {2.061154e-09f, 0.2689414f, 0.5f, 0.6224594f, 0.9525741f},
        {-1.0f, -0.7615942f, 0.0f, 0.4621172f, 0.9950548f},
        {0.0f, 0.0f, 0.0f, 0.5f, 3.0f},
    };
    float x[5] = {-20.0f, -1.0f, 0.0f, 0.5f, 3.0f};
    const int64_t d[] = {5};

    (void)state;
    for (int k = 0; k < 3; k++) {
        struct bms_tensor in[1], out[1];
        float y[5];
        void *od[1] = {y};
        struct th_node t;

        th_node_init(&t, ops[k], 14, 1, 1);
        in[0] = th_tensor(BMS_DTYPE_F32, x, 1, d);
        assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
        th_assert_floats(y, want[k], 5, 1e-5, 1e-4);
        th_node_fini(&t);
    }
}


static void unary_math_ops_match_hand_values(void **state)
{
    static const char *const ops[] = {
        "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil"
    };
    float x[4] = {-2.5f, 0.25f, 1.0f, 4.0f};
    /* By hand, per op; Exp, Log and Sqrt of x where defined (e = 2.7182817,
     * log 4 = 1.3862944, log 0.25 = -1.3862944); NaN entries skipped. */
    static const float want[8][4] = {
        {2.5f, -0.25f, -1.0f, -4.0f},
        {2.5f, 0.25f, 1.0f, 4.0f},
        {0.082085f, 1.2840254f, 2.7182817f, 54.59815f},
        {NAN, -1.3862944f, 0.0f, 1.3862944f},
        {NAN, 0.5f, 1.0f, 2.0f},
        {-0.4f, 4.0f, 1.0f, 0.25f},
        {-3.0f, 0.0f, 1.0f, 4.0f},
        {-2.0f, 1.0f, 1.0f, 4.0f},
    };
    const int64_t d[] = {4};

    (void)state;
    for (int k = 0; k < 8; k++) {
        struct bms_tensor in[1], out[1];
        float y[4];
        void *od[1] = {y};
        struct th_node t;

        th_node_init(&t, ops[k], 13, 1, 1);
        in[0] = th_tensor(BMS_DTYPE_F32, x, 1, d);
        assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
        for (int i = 0; i < 4; i++) {
            if (!isnan(want[k][i])) {
                th_assert_floats(&y[i], &want[k][i], 1, 1e-5, 1e-4);
            }
        }
        th_node_fini(&t);
    }
}


static void neg_abs_int8_wrap_at_minimum(void **state)
{
    int8_t x[3] = {-128, -5, 7};
    /* Two's complement: -(-128) wraps to -128. */
    const int8_t want_neg[3] = {-128, 5, -7};
    const int8_t want_abs[3] = {-128, 5, 7};
    const int64_t d[] = {3};

    (void)state;
    for (int k = 0; k < 2; k++) {
        struct bms_tensor in[1], out[1];
        int8_t y[3];
        void *od[1] = {y};
        struct th_node t;

        th_node_init(&t, k == 0 ? "Neg" : "Abs", 13, 1, 1);
        in[0] = th_tensor(BMS_DTYPE_I8, x, 1, d);
        assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(y[i], k == 0 ? want_neg[i] : want_abs[i]);
        }
        th_node_fini(&t);
    }
}


static void exp_refuses_int32(void **state)
{
    const int64_t d[] = {2};
    struct bms_tensor in[1], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Exp", 13, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_I32, NULL, 1, d);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_UNSUPPORTED);
    assert_string_equal(diag.msg, "Exp: datatype INT32 not supported");
    th_node_fini(&t);
}


static void softmax_opset13_reduces_one_axis(void **state)
{
    float x[8] = {1, 2, 3, 4, 0, -1, 5, 2};     /* [2, 2, 2] */
    float y[8];
    /* torch.softmax(x, dim=1). */
    const float want[8] = {0.1192029f, 0.1192029f, 0.880797f, 0.880797f,
                           0.006692851f, 0.04742587f, 0.9933072f,
                           0.9525741f};
    const int64_t d[] = {2, 2, 2};
    struct bms_tensor in[1], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Softmax", 13, 1, 1);
    th_attr_int(&t, "axis", 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, d);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 3, d);
    th_assert_floats(y, want, 8, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void softmax_opset11_coerces_to_2d(void **state)
{
    float x[8] = {1, 2, 3, 4, 0, -1, 5, 2};     /* [2, 2, 2] */
    float y[8];
    /* torch.softmax(x.reshape(2, 4), dim=1): Softmax-11 at axis 1. */
    const float want[8] = {0.0320586f, 0.08714432f, 0.2368828f, 0.6439143f,
                           0.006362534f, 0.002340646f, 0.9442838f,
                           0.04701312f};
    const int64_t d[] = {2, 2, 2};
    struct bms_tensor in[1], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Softmax", 11, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, d);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_floats(y, want, 8, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void logsoftmax_large_inputs_stay_finite(void **state)
{
    float x[2] = {1000.0f, 1001.0f};
    float y[2];
    /* torch.log_softmax: -log(1 + e) and -log(1 + 1/e). */
    const float want[2] = {-1.313262f, -0.3132617f};
    const int64_t d[] = {1, 2};
    struct bms_tensor in[1], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "LogSoftmax", 13, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 2, d);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_floats(y, want, 2, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void softmax_rejects_axis_out_of_range(void **state)
{
    const int64_t d[] = {2, 2};
    struct bms_tensor in[1], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Softmax", 13, 1, 1);
    th_attr_int(&t, "axis", 2);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 2, d);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "axis 2"));
    th_node_fini(&t);
}


static void gemm_transposes_scales_and_adds_bias(void **state)
{
    float a[6], b[12];
    float c[4] = {1, 2, 3, 4};
    float y[8];
    /* numpy: 0.5 * A.T @ B.T + 2.0 * C with A = pattern(6, 7, 3) as
     * [3, 2] and B = pattern(12, 5, 2) as [4, 3]. */
    const float want[8] = {5.5f, 0.5f, 8, 5.5f, 4, 1, 8, 5};
    const int64_t ad[] = {3, 2}, bd[] = {4, 3}, cd[] = {4}, yd[] = {2, 4};
    struct bms_tensor in[3], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    pattern(a, 6, 7, 3, 1.0f);
    pattern(b, 12, 5, 2, 1.0f);
    th_node_init(&t, "Gemm", 13, 3, 1);
    th_attr_int(&t, "transA", 1);
    th_attr_int(&t, "transB", 1);
    th_attr_float(&t, "alpha", 0.5f);
    th_attr_float(&t, "beta", 2.0f);
    in[0] = th_tensor(BMS_DTYPE_F32, a, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, b, 2, bd);
    in[2] = th_tensor(BMS_DTYPE_F32, c, 1, cd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, yd);
    th_assert_floats(y, want, 8, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void gemm_rejects_bias_that_does_not_broadcast(void **state)
{
    const int64_t ad[] = {2, 3}, bd[] = {3, 4}, cd[] = {3};
    struct bms_tensor in[3], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Gemm", 13, 3, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, NULL, 2, bd);
    in[2] = th_tensor(BMS_DTYPE_F32, NULL, 1, cd);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "Gemm: C of dims [3]"));
    th_node_fini(&t);
}


static void matmul_vector_by_batched_matrices(void **state)
{
    float a[3], b[12];
    float y[4];
    /* numpy.matmul(pattern(3, 7, 3), pattern(12, 5, 2).reshape(2, 3, 2)):
     * the 1-D A gains and loses a leading 1. */
    const float want[4] = {4, 3, 3, -3};
    const int64_t ad[] = {3}, bd[] = {2, 3, 2}, yd[] = {2, 2};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    pattern(a, 3, 7, 3, 1.0f);
    pattern(b, 12, 5, 2, 1.0f);
    th_node_init(&t, "MatMul", 13, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, a, 1, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, b, 3, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, yd);
    th_assert_floats(y, want, 4, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void matmul_broadcasts_batch_dims(void **state)
{
    float a[12], b[18];
    float y[24];
    /* numpy.matmul of pattern(12, 7, 3) as [2, 1, 2, 3] and
     * pattern(18, 5, 2) as [3, 3, 2]: batch [2, 1] x [3] -> [2, 3]. */
    const float want[24] = {4, 3, 4, -3, 3, -3, -3, 0, -3, 1, 0, -2,
                            -10, -2, 4, -1, -2, -4, -1, -1, -4, 9, -1, -1};
    const int64_t ad[] = {2, 1, 2, 3}, bd[] = {3, 3, 2};
    const int64_t yd[] = {2, 3, 2, 2};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    pattern(a, 12, 7, 3, 1.0f);
    pattern(b, 18, 5, 2, 1.0f);
    th_node_init(&t, "MatMul", 13, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, a, 4, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, b, 3, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 4, yd);
    th_assert_floats(y, want, 24, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void matmul_rejects_inner_dim_mismatch(void **state)
{
    const int64_t ad[] = {2, 3}, bd[] = {4, 2};
    struct bms_tensor in[2], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "MatMul", 13, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_F32, NULL, 2, bd);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "MatMul: inner dims differ"));
    th_node_fini(&t);
}


static void conv_2d_asymmetric_pads_strides_bias(void **state)
{
    static const int64_t pads[] = {1, 0, 2, 1};
    static const int64_t strides[] = {2, 2};
    float x[50], w[54];
    float b[3] = {0.5f, -1.0f, 2.0f};
    float y[18];
    /* torch.nn.functional.conv2d(F.pad(x, (0, 1, 1, 2)), w, b, stride=2)
     * with x = pattern(50, 7, 3) as [1, 2, 5, 5] and
     * w = pattern(54, 5, 2, 0.5) as [3, 2, 3, 3]. */
    const float want[18] = {0.5f, -5.5f, -10, 15, 6.5f, -4, -3, -2.5f, 18,
                            -5.5f, -7.5f, -6.5f, 0.5f, 0, -7, 3.5f, 5.5f,
                            13};
    const int64_t xd[] = {1, 2, 5, 5}, wd[] = {3, 2, 3, 3}, bd[] = {3};
    const int64_t yd[] = {1, 3, 3, 2};
    struct bms_tensor in[3], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    pattern(x, 50, 7, 3, 1.0f);
    pattern(w, 54, 5, 2, 0.5f);
    th_node_init(&t, "Conv", 11, 3, 1);
    th_attr_ints(&t, "pads", pads, 4);
    th_attr_ints(&t, "strides", strides, 2);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, w, 4, wd);
    in[2] = th_tensor(BMS_DTYPE_F32, b, 1, bd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 4, yd);
    th_assert_floats(y, want, 18, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void conv_1d_groups_and_dilation(void **state)
{
    static const int64_t pads[] = {1, 1};
    static const int64_t dil[] = {2};
    float x[28], w[8];
    float y[14];
    /* torch conv1d(x, w, padding=1, dilation=2, groups=2) with
     * x = pattern(28, 5, 2) as [1, 4, 7], w = pattern(8, 3, 1) as
     * [2, 2, 2]. */
    const float want[14] = {-1, 0, 4, 3, -3, -4, 2, -2, 0, 0, 0, 0, 0, 1};
    const int64_t xd[] = {1, 4, 7}, wd[] = {2, 2, 2}, yd[] = {1, 2, 7};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    pattern(x, 28, 5, 2, 1.0f);
    pattern(w, 8, 3, 1, 1.0f);
    th_node_init(&t, "Conv", 11, 2, 1);
    th_attr_ints(&t, "pads", pads, 2);
    th_attr_ints(&t, "dilations", dil, 1);
    th_attr_int(&t, "group", 2);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, w, 3, wd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 3, yd);
    th_assert_floats(y, want, 14, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void conv_3d_valid(void **state)
{
    float x[27], w[8];
    float y[8];
    /* torch conv3d(x, w) with x = pattern(27, 4, 1) as [1, 1, 3, 3, 3] and
     * w = pattern(8, 3, 1) as [1, 1, 2, 2, 2]. */
    const float want[8] = {6, 1, -5, 6, 1, -4, 6, 1};
    const int64_t xd[] = {1, 1, 3, 3, 3}, wd[] = {1, 1, 2, 2, 2};
    const int64_t yd[] = {1, 1, 2, 2, 2};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    pattern(x, 27, 4, 1, 1.0f);
    pattern(w, 8, 3, 1, 1.0f);
    th_node_init(&t, "Conv", 11, 2, 1);
    th_attr_string(&t, "auto_pad", "VALID");
    in[0] = th_tensor(BMS_DTYPE_F32, x, 5, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, w, 5, wd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 5, yd);
    th_assert_floats(y, want, 8, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void conv_same_lower_pads_the_start(void **state)
{
    static const int64_t strides[] = {2, 2};
    float x[16];
    float w[4] = {1, 1, 1, 1};
    float y[4];
    /* By hand: 4x4 input 0..15, 2x2 ones kernel, stride 2, SAME_LOWER
     * needs no pad here (ceil(4/2) = 2 windows fit exactly); sums of the
     * four 2x2 blocks. */
    const float want[4] = {10, 18, 42, 50};
    const int64_t xd[] = {1, 1, 4, 4}, wd[] = {1, 1, 2, 2};
    const int64_t yd[] = {1, 1, 2, 2};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    for (int i = 0; i < 16; i++) {
        x[i] = (float)i;
    }
    th_node_init(&t, "Conv", 11, 2, 1);
    th_attr_string(&t, "auto_pad", "SAME_LOWER");
    th_attr_ints(&t, "strides", strides, 2);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, w, 4, wd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 4, yd);
    th_assert_floats(y, want, 4, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void conv_same_upper_odd_pad_goes_to_end(void **state)
{
    float x[3] = {1, 2, 3};
    float w[2] = {1, 10};
    float y[3];
    /* By hand: kernel 2, stride 1, in 3: out 3, total pad 1, SAME_UPPER
     * puts it at the end: [1*1+2*10, 2+30, 3+0]. */
    const float want[3] = {21, 32, 3};
    const int64_t xd[] = {1, 1, 3}, wd[] = {1, 1, 2}, yd[] = {1, 1, 3};
    struct bms_tensor in[2], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Conv", 11, 2, 1);
    th_attr_string(&t, "auto_pad", "SAME_UPPER");
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, w, 3, wd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 3, yd);
    th_assert_floats(y, want, 3, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void conv_refuses_fp64(void **state)
{
    const int64_t xd[] = {1, 1, 3, 3}, wd[] = {1, 1, 2, 2};
    struct bms_tensor in[2], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Conv", 11, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F64, NULL, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_F64, NULL, 4, wd);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_UNSUPPORTED);
    assert_string_equal(diag.msg, "Conv: datatype FP64 not supported");
    th_node_fini(&t);
}


static void conv_rejects_channels_that_do_not_fit_group(void **state)
{
    const int64_t xd[] = {1, 3, 4, 4}, wd[] = {2, 2, 2, 2};
    struct bms_tensor in[2], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "Conv", 11, 2, 1);
    th_attr_int(&t, "group", 2);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, NULL, 4, wd);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "group 2"));
    th_node_fini(&t);
}


static void maxpool_indices_row_and_column_major(void **state)
{
    static const int64_t kernel[] = {2, 2};
    static const int64_t strides[] = {2, 2};
    float x[9] = {1, 9, 2, 3, 4, 8, 7, 5, 6};   /* 3x3 */
    /* By hand, ceil_mode on: windows at rows/cols {0,1} and {2}.  Maxima
     * 9 (r0 c1), 8 (r1 c2), 7 (r2 c0), 6 (r2 c2); row-major offsets
     * r*3+c, column-major r+c*3. */
    const float want[4] = {9, 8, 7, 6};
    const int64_t want_row[4] = {1, 5, 6, 8};
    const int64_t want_col[4] = {3, 7, 2, 8};
    const int64_t xd[] = {1, 1, 3, 3}, yd[] = {1, 1, 2, 2};

    (void)state;
    for (int order = 0; order < 2; order++) {
        struct bms_tensor in[1], out[2];
        float y[4];
        int64_t idx[4];
        void *od[2] = {y, idx};
        struct th_node t;

        th_node_init(&t, "MaxPool", 12, 1, 2);
        th_attr_ints(&t, "kernel_shape", kernel, 2);
        th_attr_ints(&t, "strides", strides, 2);
        th_attr_int(&t, "ceil_mode", 1);
        th_attr_int(&t, "storage_order", order);
        in[0] = th_tensor(BMS_DTYPE_F32, x, 4, xd);
        assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
        th_assert_dims(&out[0], 4, yd);
        assert_int_equal(out[1].dtype, BMS_DTYPE_I64);
        th_assert_floats(y, want, 4, 1e-5, 1e-4);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(idx[i], order ? want_col[i] : want_row[i]);
        }
        th_node_fini(&t);
    }
}


static void maxpool_uint8_skips_padding(void **state)
{
    static const int64_t kernel[] = {3};
    static const int64_t pads[] = {1, 1};
    uint8_t x[3] = {0, 0, 0};
    uint8_t y[3];
    const int64_t xd[] = {1, 1, 3};
    struct bms_tensor in[1], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "MaxPool", 12, 1, 1);
    th_attr_ints(&t, "kernel_shape", kernel, 1);
    th_attr_ints(&t, "pads", pads, 2);
    in[0] = th_tensor(BMS_DTYPE_U8, x, 3, xd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    /* By hand: every window holds only zeros of the input. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(y[i], 0);
    }
    th_node_fini(&t);
}


static void averagepool_count_include_pad_changes_divisor(void **state)
{
    static const int64_t kernel[] = {2, 2};
    static const int64_t pads[] = {1, 1, 1, 1};
    static const int64_t strides[] = {2, 2};
    float x[4] = {1, 2, 3, 4};                  /* 2x2 */
    /* By hand: 2x2 windows at stride 2 over the padded 4x4; each holds one
     * input value and three pads. */
    const float want_excl[4] = {1, 2, 3, 4};
    const float want_incl[4] = {0.25f, 0.5f, 0.75f, 1.0f};
    const int64_t xd[] = {1, 1, 2, 2}, yd[] = {1, 1, 2, 2};

    (void)state;
    for (int incl = 0; incl < 2; incl++) {
        struct bms_tensor in[1], out[1];
        float y[4];
        void *od[1] = {y};
        struct th_node t;

        th_node_init(&t, "AveragePool", 11, 1, 1);
        th_attr_ints(&t, "kernel_shape", kernel, 2);
        th_attr_ints(&t, "pads", pads, 4);
        th_attr_ints(&t, "strides", strides, 2);
        th_attr_int(&t, "count_include_pad", incl);
        in[0] = th_tensor(BMS_DTYPE_F32, x, 4, xd);
        assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
        th_assert_dims(&out[0], 4, yd);
        th_assert_floats(y, incl ? want_incl : want_excl, 4, 1e-5, 1e-4);
        th_node_fini(&t);
    }
}


static void pool_requires_kernel_shape(void **state)
{
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "AveragePool", 11, 1, 1);
    assert_int_equal(t.node.op->prepare(&t.node, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "kernel_shape"));
    assert_null(t.node.params);
}


static void global_average_pool_means_each_plane(void **state)
{
    float x[8] = {1, 2, 3, 6, -1, -1, -1, 3};   /* [1, 2, 2, 2] */
    float y[2];
    /* By hand: (1+2+3+6)/4 and (-1-1-1+3)/4. */
    const float want[2] = {3, 0};
    const int64_t xd[] = {1, 2, 2, 2}, yd[] = {1, 2, 1, 1};
    struct bms_tensor in[1], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "GlobalAveragePool", 1, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 4, xd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 4, yd);
    th_assert_floats(y, want, 2, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void batchnorm_normalises_per_channel(void **state)
{
    float x[4] = {1, 3, 10, 20};                /* [1, 2, 2] */
    float scale[2] = {2, 1};
    float bias[2] = {1, 0};
    float mean[2] = {1, 10};
    float var[2] = {4, 100};
    float y[4];
    /* By hand, epsilon 0: channel 0: (x - 1) / 2 * 2 + 1; channel 1:
     * (x - 10) / 10. */
    const float want[4] = {1, 3, 0, 1};
    const int64_t xd[] = {1, 2, 2}, cd[] = {2};
    struct bms_tensor in[5], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "BatchNormalization", 15, 5, 1);
    th_attr_float(&t, "epsilon", 0.0f);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, scale, 1, cd);
    in[2] = th_tensor(BMS_DTYPE_F32, bias, 1, cd);
    in[3] = th_tensor(BMS_DTYPE_F32, mean, 1, cd);
    in[4] = th_tensor(BMS_DTYPE_F32, var, 1, cd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 3, xd);
    th_assert_floats(y, want, 4, 1e-5, 1e-4);
    th_node_fini(&t);
}


static void batchnorm_refuses_training_outputs(void **state)
{
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "BatchNormalization", 15, 5, 3);
    th_attr_int(&t, "training_mode", 1);
    assert_int_equal(t.node.op->prepare(&t.node, &diag), BMS_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "BatchNormalization"));
    assert_null(t.node.params);
}


static void batchnorm_rejects_wrong_channel_count(void **state)
{
    const int64_t xd[] = {1, 2, 2}, cd[] = {2}, bad[] = {3};
    struct bms_tensor in[5], out[1];
    struct bms_diag diag = {{0}};
    struct th_node t;

    (void)state;
    th_node_init(&t, "BatchNormalization", 15, 5, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, NULL, 3, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, NULL, 1, cd);
    in[2] = th_tensor(BMS_DTYPE_F32, NULL, 1, cd);
    in[3] = th_tensor(BMS_DTYPE_F32, NULL, 1, bad);
    in[4] = th_tensor(BMS_DTYPE_F32, NULL, 1, cd);
    assert_int_equal(th_node_infer(&t, in, out, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "mean has dims [3]"));
    th_node_fini(&t);
}


static void argmax_first_or_last_of_ties(void **state)
{
    float x[6] = {3, 1, 3, 0, 5, 5};            /* [2, 3] */
    /* By hand, along axis 1: row 0 ties at 0 and 2, row 1 at 1 and 2. */
    const int64_t want_first[2] = {0, 1};
    const int64_t want_last[2] = {2, 2};
    const int64_t xd[] = {2, 3}, yd[] = {2};

    (void)state;
    for (int last = 0; last < 2; last++) {
        struct bms_tensor in[1], out[1];
        int64_t y[2];
        void *od[1] = {y};
        struct th_node t;

        th_node_init(&t, "ArgMax", 13, 1, 1);
        th_attr_int(&t, "axis", -1);
        th_attr_int(&t, "keepdims", 0);
        th_attr_int(&t, "select_last_index", last);
        in[0] = th_tensor(BMS_DTYPE_F32, x, 2, xd);
        assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
        assert_int_equal(out[0].dtype, BMS_DTYPE_I64);
        th_assert_dims(&out[0], 1, yd);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(y[i], last ? want_last[i] : want_first[i]);
        }
        th_node_fini(&t);
    }
}


static void argmax_keepdims_over_axis_0(void **state)
{
    int32_t x[6] = {1, 7, 2, 4, 0, 9};          /* [2, 3] */
    int64_t y[3];
    /* By hand: column maxima are in rows 1, 0, 1. */
    const int64_t want[3] = {1, 0, 1};
    const int64_t xd[] = {2, 3}, yd[] = {1, 3};
    struct bms_tensor in[1], out[1];
    void *od[1] = {y};
    struct th_node t;

    (void)state;
    th_node_init(&t, "ArgMax", 13, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_I32, x, 2, xd);
    assert_int_equal(th_node_run(&t, in, out, od, NULL), BMS_OK);
    th_assert_dims(&out[0], 2, yd);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(y[i], want[i]);
    }
    th_node_fini(&t);
}


int bms_test_ops_math(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(add_broadcasts_row_over_matrix),
        cmocka_unit_test(sub_broadcasts_both_ways),
        cmocka_unit_test(div_int32_defines_zero_and_overflow),
        cmocka_unit_test(mul_int64_wraps_on_overflow),
        cmocka_unit_test(add_rejects_shapes_that_do_not_broadcast),
        cmocka_unit_test(add_refuses_fp16),
        cmocka_unit_test(add_unknown_dim_propagates),
        cmocka_unit_test(add_opset6_broadcasts_at_axis),
        cmocka_unit_test(unary_sigmoid_tanh_relu_match_reference),
        cmocka_unit_test(unary_math_ops_match_hand_values),
        cmocka_unit_test(neg_abs_int8_wrap_at_minimum),
        cmocka_unit_test(exp_refuses_int32),
        cmocka_unit_test(softmax_opset13_reduces_one_axis),
        cmocka_unit_test(softmax_opset11_coerces_to_2d),
        cmocka_unit_test(logsoftmax_large_inputs_stay_finite),
        cmocka_unit_test(softmax_rejects_axis_out_of_range),
        cmocka_unit_test(gemm_transposes_scales_and_adds_bias),
        cmocka_unit_test(gemm_rejects_bias_that_does_not_broadcast),
        cmocka_unit_test(matmul_vector_by_batched_matrices),
        cmocka_unit_test(matmul_broadcasts_batch_dims),
        cmocka_unit_test(matmul_rejects_inner_dim_mismatch),
        cmocka_unit_test(conv_2d_asymmetric_pads_strides_bias),
        cmocka_unit_test(conv_1d_groups_and_dilation),
        cmocka_unit_test(conv_3d_valid),
        cmocka_unit_test(conv_same_lower_pads_the_start),
        cmocka_unit_test(conv_same_upper_odd_pad_goes_to_end),
        cmocka_unit_test(conv_refuses_fp64),
        cmocka_unit_test(conv_rejects_channels_that_do_not_fit_group),
        cmocka_unit_test(maxpool_indices_row_and_column_major),
        cmocka_unit_test(maxpool_uint8_skips_padding),
        cmocka_unit_test(averagepool_count_include_pad_changes_divisor),
        cmocka_unit_test(pool_requires_kernel_shape),
        cmocka_unit_test(global_average_pool_means_each_plane),
        cmocka_unit_test(batchnorm_normalises_per_channel),
        cmocka_unit_test(batchnorm_refuses_training_outputs),
        cmocka_unit_test(batchnorm_rejects_wrong_channel_count),
        cmocka_unit_test(argmax_first_or_last_of_ties),
        cmocka_unit_test(argmax_keepdims_over_axis_0),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
