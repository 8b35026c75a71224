/*
 * Unit tests of the operator files added beside the first arithmetic
 * kernels (broadcast.c, reduce.c, slice.c, resize.c, select.c, einsum.c,
 * rnn.c and the rest).  Each test builds one node by hand, runs prepare,
 * infer and run, and compares with values worked out by hand, by numpy
 * 1.24 or, where it says so, by PyTorch 1.13 in double precision.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "harness.h"


/* log(e^1000 + e^1000) = 1000 + ln 2: a naive sum of exp overflows. */
static void reduce_log_sum_exp_survives_large_values(void **state)
{
    struct th_node t;
    float x[4] = {1000, 1000, -1000, -1000};
    static const int64_t dims[2] = {2, 2};
    static const int64_t axes[1] = {1};
    struct bms_tensor in[1];
    struct bms_tensor out[1];
    float y[2];
    void *od[1] = {y};
    struct bms__attr *a;
    const float want[2] = {1000.0f + 0.69314718f, -1000.0f + 0.69314718f};

    (void)state;
    th_node_init(&t, "ReduceLogSumExp", 13, 1, 1);
    a = th_attr_add(&t, "axes", BMS__ATTR_INTS);
    a->ints = axes;
    a->n = 1;
    th_attr_int(&t, "keepdims", 0);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 2, dims);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 1, (const int64_t[]){2});
    th_assert_floats(y, want, 2, 1e-6, 1e-6);
}


/* ReduceSum-13 with an empty axes input and noop_with_empty_axes keeps
 * the input as it is; without the flag it sums everything (1+..+6). */
static void reduce_sum_empty_axes_noop_or_all(void **state)
{
    struct th_node t;
    float x[6] = {1, 2, 3, 4, 5, 6};
    static const int64_t dims[2] = {2, 3};
    static const int64_t zero[1] = {0};
    int64_t no_axes[1];
    struct bms_tensor in[2];
    struct bms_tensor out[1];
    float y[6];
    void *od[1] = {y};

    (void)state;
    th_node_init(&t, "ReduceSum", 13, 2, 1);
    th_attr_int(&t, "noop_with_empty_axes", 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 2, dims);
    in[1] = th_tensor(BMS_DTYPE_I64, no_axes, 1, zero);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 2, dims);
    th_assert_floats(y, x, 6, 0, 0);

    th_node_init(&t, "ReduceSum", 13, 2, 1);
    th_attr_int(&t, "keepdims", 0);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(out[0].n_dims, 0);
    th_assert_floats(y, (const float[]){21}, 1, 0, 0);
}


/* Integer Mod takes the divisor's sign (Python %): -4 % 3 = 2,
 * 7 % -3 = -2; fmod=1 the dividend's: -4 fmod 3 = -1; x % 0 is 0 in bms,
 * INT32_MIN % -1 is 0 without trapping. */
static void mod_int_sign_rules_and_zero_divisor(void **state)
{
    struct th_node t;
    int32_t a[4] = {-4, 7, 5, INT32_MIN};
    int32_t b[4] = {3, -3, 0, -1};
    static const int64_t dims[1] = {4};
    struct bms_tensor in[2];
    struct bms_tensor out[1];
    int32_t y[4];
    void *od[1] = {y};

    (void)state;
    th_node_init(&t, "Mod", 13, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_I32, a, 1, dims);
    in[1] = th_tensor(BMS_DTYPE_I32, b, 1, dims);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], -2);
    assert_int_equal(y[2], 0);
    assert_int_equal(y[3], 0);

    th_node_init(&t, "Mod", 13, 2, 1);
    th_attr_int(&t, "fmod", 1);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(y[0], -1);
    assert_int_equal(y[1], 1);
}


/* Where broadcasts all three: cond [2,1], x [1,3], y scalar. */
static void where_broadcasts_three_ways(void **state)
{
    struct th_node t;
    uint8_t c[2] = {1, 0};
    float x[3] = {1, 2, 3};
    float s = -1;
    struct bms_tensor in[3];
    struct bms_tensor out[1];
    float y[6];
    void *od[1] = {y};
    const float want[6] = {1, 2, 3, -1, -1, -1};

    (void)state;
    th_node_init(&t, "Where", 16, 3, 1);
    in[0] = th_tensor(BMS_DTYPE_BOOL, c, 2, (const int64_t[]){2, 1});
    in[1] = th_tensor(BMS_DTYPE_F32, x, 2, (const int64_t[]){1, 3});
    in[2] = th_tensor(BMS_DTYPE_F32, &s, 0, NULL);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 2, (const int64_t[]){2, 3});
    th_assert_floats(y, want, 6, 0, 0);
}


/* numpy: np.arange(10)[::-3] = [9, 6, 3, 0]; ends of INT64_MIN clamp. */
static void slice_negative_step_runs_backwards(void **state)
{
    struct th_node t;
    int64_t x[10];
    int64_t starts[1] = {-1};
    int64_t ends[1] = {INT64_MIN};
    int64_t axes[1] = {0};
    int64_t steps[1] = {-3};
    static const int64_t one[1] = {1};
    struct bms_tensor in[5];
    struct bms_tensor out[1];
    int64_t y[4];
    void *od[1] = {y};

    (void)state;
    for (int i = 0; i < 10; i++) {
        x[i] = i;
    }
    th_node_init(&t, "Slice", 13, 5, 1);
    in[0] = th_tensor(BMS_DTYPE_I64, x, 1, (const int64_t[]){10});
    in[1] = th_tensor(BMS_DTYPE_I64, starts, 1, one);
    in[2] = th_tensor(BMS_DTYPE_I64, ends, 1, one);
    in[3] = th_tensor(BMS_DTYPE_I64, axes, 1, one);
    in[4] = th_tensor(BMS_DTYPE_I64, steps, 1, one);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 1, (const int64_t[]){4});
    assert_int_equal(y[0], 9);
    assert_int_equal(y[1], 6);
    assert_int_equal(y[2], 3);
    assert_int_equal(y[3], 0);
}


/* numpy: np.pad([1, 2, 3], (4, 2), 'reflect') = [1,2,3,2,1,2,3,2,1]
 * (pads longer than the dim reflect again). */
static void pad_reflect_matches_numpy(void **state)
{
    struct th_node t;
    float x[3] = {1, 2, 3};
    int64_t pads[2] = {4, 2};
    struct bms_tensor in[2];
    struct bms_tensor out[1];
    float y[9];
    void *od[1] = {y};
    const float want[9] = {1, 2, 3, 2, 1, 2, 3, 2, 1};

    (void)state;
    th_node_init(&t, "Pad", 13, 2, 1);
    th_attr_string(&t, "mode", "reflect");
    in[0] = th_tensor(BMS_DTYPE_F32, x, 1, (const int64_t[]){3});
    in[1] = th_tensor(BMS_DTYPE_I64, pads, 1, (const int64_t[]){2});
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 1, (const int64_t[]){9});
    th_assert_floats(y, want, 9, 0, 0);
}


/* Bilinear, half_pixel, 2x: output x maps to (x + 0.5) / 2 - 0.5, so
 * row 0 of [[1, 2], [3, 4]] is 1, 1.25, 1.75, 2 (hand calculation, edge
 * positions repeat). */
static void resize_linear_half_pixel_upsamples(void **state)
{
    struct th_node t;
    float x[4] = {1, 2, 3, 4};
    float scales[4] = {1, 1, 2, 2};
    struct bms_tensor in[3];
    struct bms_tensor out[1];
    float y[16];
    void *od[1] = {y};
    const float want[16] = {
        1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f,
        2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4
    };

    (void)state;
    th_node_init(&t, "Resize", 13, 3, 1);
    th_attr_string(&t, "mode", "linear");
    in[0] = th_tensor(BMS_DTYPE_F32, x, 4, (const int64_t[]){1, 1, 2, 2});
    in[1] = th_tensor(BMS_DTYPE_UNDEFINED, NULL, 0, NULL);
    in[2] = th_tensor(BMS_DTYPE_F32, scales, 1, (const int64_t[]){4});
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 4, (const int64_t[]){1, 1, 4, 4});
    th_assert_floats(y, want, 16, 1e-6, 1e-6);
}


/* Equal values keep the lower index first. */
static void topk_ties_take_lower_index(void **state)
{
    struct th_node t;
    float x[5] = {1, 3, 2, 3, 0};
    int64_t k = 3;
    struct bms_tensor in[2];
    struct bms_tensor out[2];
    float v[3];
    int64_t idx[3];
    void *od[2] = {v, idx};

    (void)state;
    th_node_init(&t, "TopK", 11, 2, 2);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 1, (const int64_t[]){5});
    in[1] = th_tensor(BMS_DTYPE_I64, &k, 1, (const int64_t[]){1});
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_floats(v, (const float[]){3, 3, 2}, 3, 0, 0);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 2);
}


/* Boxes 0 and 1 overlap with IoU 0.81 / 1.19 = 0.68 (hand: 0.9 x 0.9
 * inside 1 x 1 squares shifted by 0.1); box 2 is apart.  With threshold
 * 0.5 box 1 (lower score) goes. */
static void nms_drops_overlapping_lower_score(void **state)
{
    struct th_node t;
    float boxes[12] = {0, 0, 1, 1, 0.1f, 0.1f, 1.1f, 1.1f, 5, 5, 6, 6};
    float scores[3] = {0.9f, 0.8f, 0.7f};
    int64_t max_out = 10;
    float iou = 0.5f;
    struct bms_tensor in[4];
    struct bms_tensor out[1];
    int64_t sel[9];
    void *od[1] = {sel};

    (void)state;
    th_node_init(&t, "NonMaxSuppression", 11, 4, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, boxes, 3, (const int64_t[]){1, 3, 4});
    in[1] = th_tensor(BMS_DTYPE_F32, scores, 3, (const int64_t[]){1, 1, 3});
    in[2] = th_tensor(BMS_DTYPE_I64, &max_out, 1, (const int64_t[]){1});
    in[3] = th_tensor(BMS_DTYPE_F32, &iou, 1, (const int64_t[]){1});
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 2, (const int64_t[]){2, 3});
    assert_int_equal(sel[2], 0);
    assert_int_equal(sel[5], 2);
}


/* "...ii->...i" takes each matrix's diagonal. */
static void einsum_batch_diagonal(void **state)
{
    struct th_node t;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct bms_tensor in[1];
    struct bms_tensor out[1];
    float y[4];
    void *od[1] = {y};

    (void)state;
    th_node_init(&t, "Einsum", 12, 1, 1);
    th_attr_string(&t, "equation", "...ii ->...i");
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, (const int64_t[]){2, 2, 2});
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 2, (const int64_t[]){2, 2});
    th_assert_floats(y, (const float[]){1, 4, 5, 8}, 4, 0, 0);
}


/*
 * Two LSTM steps, hidden 1: W (i, o, f, c) = 0.1, 0.2, 0.3, 0.4, R all
 * 0.5, no bias, h0 0.2, c0 0.3, x = 0.5 then -1.  Reference:
 * torch.nn.LSTM in double with the same weights in its (i, f, g, o)
 * order.
 */
static void lstm_two_steps_match_pytorch(void **state)
{
    struct th_node t;
    float x[2] = {0.5f, -1.0f};
    float w[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    float r[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    float h0 = 0.2f;
    float c0 = 0.3f;
    struct bms_tensor in[7];
    struct bms_tensor out[3];
    float y[2];
    float yh;
    float yc;
    void *od[3] = {y, &yh, &yc};
    static const int64_t one3[3] = {1, 1, 1};

    (void)state;
    th_node_init(&t, "LSTM", 14, 7, 3);
    th_attr_int(&t, "hidden_size", 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, (const int64_t[]){2, 1, 1});
    in[1] = th_tensor(BMS_DTYPE_F32, w, 3, (const int64_t[]){1, 4, 1});
    in[2] = th_tensor(BMS_DTYPE_F32, r, 3, (const int64_t[]){1, 4, 1});
    in[3] = th_tensor(BMS_DTYPE_UNDEFINED, NULL, 0, NULL);
    in[4] = th_tensor(BMS_DTYPE_UNDEFINED, NULL, 0, NULL);
    in[5] = th_tensor(BMS_DTYPE_F32, &h0, 3, one3);
    in[6] = th_tensor(BMS_DTYPE_F32, &c0, 3, one3);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 4, (const int64_t[]){2, 1, 1, 1});
    th_assert_floats(y, (const float[]){0.17276496f, -0.0026051462f}, 2,
                     1e-5, 1e-5);
    th_assert_floats(&yh, (const float[]){-0.0026051462f}, 1, 1e-5, 1e-5);
    th_assert_floats(&yc, (const float[]){-0.0055238091f}, 1, 1e-5, 1e-5);
}


/* Data-dependent shapes wait for the run: at load, without the data of
 * Range's inputs, infer answers UNAVAILABLE rather than guessing. */
static void range_infer_needs_data(void **state)
{
    struct th_node t;
    const struct bms_tensor *inp[3];
    struct bms_tensor in[3];
    struct bms_tensor out[1];
    struct bms_diag diag = {{0}};

    (void)state;
    th_node_init(&t, "Range", 11, 3, 1);
    for (int k = 0; k < 3; k++) {
        in[k] = th_tensor(BMS_DTYPE_F32, NULL, 0, NULL);
        inp[k] = &in[k];
    }
    assert_int_equal(t.node.op->prepare(&t.node, &diag), BMS_OK);
    assert_int_equal(t.node.op->infer(&t.node, inp, out, &diag),
                     BMS_ERR_UNAVAILABLE);
    th_node_fini(&t);
}


/* FP16 is refused as unsupported, naming the op and the datatype. */
static void fp16_is_unsupported_with_message(void **state)
{
    struct th_node t;
    const struct bms_tensor *inp[1];
    struct bms_tensor in[1];
    struct bms_tensor out[1];
    struct bms_diag diag = {{0}};
    uint16_t x[1] = {0};

    (void)state;
    th_node_init(&t, "Erf", 13, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_F16, x, 1, (const int64_t[]){1});
    inp[0] = &in[0];
    assert_int_equal(t.node.op->prepare(&t.node, &diag), BMS_OK);
    assert_int_equal(t.node.op->infer(&t.node, inp, out, &diag),
                     BMS_ERR_UNSUPPORTED);
    assert_non_null(strstr(diag.msg, "Erf"));
    assert_non_null(strstr(diag.msg, "FP16"));
    th_node_fini(&t);
}


int bms_test_ops_more(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reduce_log_sum_exp_survives_large_values),
        cmocka_unit_test(reduce_sum_empty_axes_noop_or_all),
        cmocka_unit_test(mod_int_sign_rules_and_zero_divisor),
        cmocka_unit_test(where_broadcasts_three_ways),
        cmocka_unit_test(slice_negative_step_runs_backwards),
        cmocka_unit_test(pad_reflect_matches_numpy),
        cmocka_unit_test(resize_linear_half_pixel_upsamples),
        cmocka_unit_test(topk_ties_take_lower_index),
        cmocka_unit_test(nms_drops_overlapping_lower_score),
        cmocka_unit_test(einsum_batch_diagonal),
        cmocka_unit_test(lstm_two_steps_match_pytorch),
        cmocka_unit_test(range_infer_needs_data),
        cmocka_unit_test(fp16_is_unsupported_with_message),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
