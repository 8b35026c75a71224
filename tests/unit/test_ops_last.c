/*
 * Unit tests of GridSample, RoiAlign, the integer and quantised MatMul
 * and Conv, Unique, Det, MaxUnpool and the FP16 Max / Min / Mod.  Each
 * test builds one node by hand and runs prepare, infer and run.  Expected
 * values come from PyTorch 1.13 in double precision (grid_sample,
 * conv1d / conv2d on the values less their zero points), numpy 1.24
 * (matmul, unique, linalg.det, float16 maximum and fmod) or a hand
 * calculation, as each test says.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "harness.h"


/* The 3x3 image 1..9 and six grid points, some outside [-1, 1], for the
 * GridSample tests; PyTorch gives the expected values. */
static float grid_image[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static float grid_points[12] = {
    -1.0f, -1.0f, 0.3f, -0.6f, 1.2f, 0.5f,
    -1.4f, 1.3f, 0.0f, 0.0f, 0.9f, 0.95f
};


static void grid_sample(const char *mode, const char *pad, int align,
                        float *y)
{
    static const int64_t xd[4] = {1, 1, 3, 3};
    static const int64_t gd[4] = {1, 2, 3, 2};
    static const int64_t yd[4] = {1, 1, 2, 3};
    struct th_node t;
    struct bms_tensor in[2];
    struct bms_tensor out[1];
    void *od[1] = {y};

    th_node_init(&t, "GridSample", 16, 2, 1);
    th_attr_string(&t, "mode", mode);
    th_attr_string(&t, "padding_mode", pad);
    th_attr_int(&t, "align_corners", align);
    in[0] = th_tensor(BMS_DTYPE_F32, grid_image, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, grid_points, 4, gd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 4, yd);
}


/* Reflection mirrors the point back inside before the bilinear read. */
static void grid_sample_bilinear_reflection_matches_torch(void **state)
{
    static const double want[6] = {1, 2.75, 8.25, 7.1, 5, 9};
    float y[6];

    (void)state;
    grid_sample("bilinear", "reflection", 0, y);
    th_assert_floats_d(y, want, 6, 1e-6, 1e-6);
}


/* Bicubic pads each of the 16 taps; border clamps them. */
static void grid_sample_bicubic_border_aligned_matches_torch(void **state)
{
    static const double want[6] = {
        1, 3.33725, 7.87725, 7.22275, 5, 8.81215625
    };
    float y[6];

    (void)state;
    grid_sample("bicubic", "border", 1, y);
    th_assert_floats_d(y, want, 6, 1e-6, 1e-6);
}


/* Bicubic with zero padding reads 0 for taps outside the image. */
static void grid_sample_bicubic_zeros_matches_torch(void **state)
{
    static const double want[6] = {
        0.0625, 3.21099455, 1.67653125, -0.0170422734, 5, 3.78275149
    };
    float y[6];

    (void)state;
    grid_sample("bicubic", "zeros", 0, y);
    th_assert_floats_d(y, want, 6, 1e-6, 1e-6);
}


/* Nearest with zeros: points outside read 0, not the edge. */
static void grid_sample_nearest_zeros_reads_zero_outside(void **state)
{
    static const double want[6] = {1, 2, 0, 0, 5, 9};
    float y[6];

    (void)state;
    grid_sample("nearest", "zeros", 0, y);
    th_assert_floats_d(y, want, 6, 0, 0);
}


static void grid_sample_refuses_volumetric_input(void **state)
{
    static const int64_t xd[5] = {1, 1, 2, 2, 2};
    static const int64_t gd[5] = {1, 1, 1, 1, 3};
    float x[8] = {0};
    float g[3] = {0};
    float y[1];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[2];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "GridSample", 16, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 5, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, g, 5, gd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_ERR_UNSUPPORTED);
}


/* One 1x1 bin over the 2x2 image [[1, 2], [3, 4]] and the box (0, 0) to
 * (1, 1).  By hand: output_half_pixel samples the bin's centre (0.5,
 * 0.5), the mean of the four pixels, 2.5; half_pixel shifts the box by
 * -0.5, so the centre is pixel (0, 0), 1. */
static float roi_image[4] = {1, 2, 3, 4};
static float roi_box[4] = {0, 0, 1, 1};
static int64_t roi_batch[1] = {0};


static enum bms_status roi_align(const char *mode, const char *ctm,
                                 int64_t ratio, int64_t *batch, float *y)
{
    static const int64_t xd[4] = {1, 1, 2, 2};
    static const int64_t rd[2] = {1, 4};
    static const int64_t bd[1] = {1};
    struct th_node t;
    struct bms_tensor in[3];
    struct bms_tensor out[1];
    void *od[1] = {y};

    th_node_init(&t, "RoiAlign", 16, 3, 1);
    th_attr_string(&t, "mode", mode);
    th_attr_string(&t, "coordinate_transformation_mode", ctm);
    th_attr_int(&t, "sampling_ratio", ratio);
    in[0] = th_tensor(BMS_DTYPE_F32, roi_image, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, roi_box, 2, rd);
    in[2] = th_tensor(BMS_DTYPE_I64, batch, 1, bd);
    return th_node_check(&t, in, out, od);
}


static void roi_align_half_pixel_shifts_the_box(void **state)
{
    static const double legacy[1] = {2.5};
    static const double shifted[1] = {1.0};
    float y[1];

    (void)state;
    assert_int_equal(roi_align("avg", "output_half_pixel", 1, roi_batch, y),
                     BMS_OK);
    th_assert_floats_d(y, legacy, 1, 1e-7, 1e-7);
    assert_int_equal(roi_align("avg", "half_pixel", 1, roi_batch, y),
                     BMS_OK);
    th_assert_floats_d(y, shifted, 1, 1e-7, 1e-7);
}


/* max mode, 2x2 samples at 0.25 and 0.75: each sample is its largest
 * weighted corner (ONNX's definition), and the bin the largest sample.
 * By hand, the sample (0.75, 0.75) gives 0.75 * 0.75 * 4 = 2.25. */
static void roi_align_max_takes_largest_weighted_corner(void **state)
{
    static const double want[1] = {2.25};
    float y[1];

    (void)state;
    assert_int_equal(roi_align("max", "output_half_pixel", 2, roi_batch, y),
                     BMS_OK);
    th_assert_floats_d(y, want, 1, 1e-7, 1e-7);
}


static void roi_align_rejects_batch_index_out_of_range(void **state)
{
    int64_t batch[1] = {1};
    float y[1];

    (void)state;
    assert_int_equal(roi_align("avg", "half_pixel", 1, batch, y),
                     BMS_ERR_INVALID);
}


/* INT8 with a zero point per row of A and per column of B (numpy). */
static void matmul_integer_per_row_and_column_zero_points(void **state)
{
    static const int64_t ad[2] = {2, 3};
    static const int64_t bd[2] = {3, 4};
    static const int64_t yd[2] = {2, 4};
    static const int64_t zad[1] = {2};
    static const int64_t zbd[1] = {4};
    static const int32_t want[8] = {
        -372, 626, -12118, -1510, -522, 518, 614, -25
    };
    int8_t a[6] = {-128, 5, 127, 3, -7, 0};
    int8_t b[12] = {1, -2, 100, 4, 127, -128, 3, 0, -5, 6, 7, -8};
    int8_t za[2] = {2, -3};
    int8_t zb[4] = {1, 0, -1, 5};
    int32_t y[8];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[4];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "MatMulInteger", 10, 4, 1);
    in[0] = th_tensor(BMS_DTYPE_I8, a, 2, ad);
    in[1] = th_tensor(BMS_DTYPE_I8, b, 2, bd);
    in[2] = th_tensor(BMS_DTYPE_I8, za, 1, zad);
    in[3] = th_tensor(BMS_DTYPE_I8, zb, 1, zbd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(out[0].dtype, BMS_DTYPE_I32);
    th_assert_dims(&out[0], 2, yd);
    assert_memory_equal(y, want, sizeof(want));
}


/* A batch of two [2, 3] UINT8 matrices times one [3, 2], scalar zero
 * points 7 and 128 (numpy). */
static void matmul_integer_broadcasts_batch(void **state)
{
    static const int64_t ad[3] = {2, 2, 3};
    static const int64_t bd[2] = {3, 2};
    static const int64_t yd[3] = {2, 2, 2};
    static const int32_t want[8] = {
        3623, -6445, -2917, -13945, -9457, -21445, -15997, -28945
    };
    uint8_t a[12];
    uint8_t b[6] = {3, 250, 17, 0, 255, 9};
    uint8_t za[1] = {7};
    uint8_t zb[1] = {128};
    int32_t y[8];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[4];
    struct bms_tensor out[1];

    (void)state;
    for (int i = 0; i < 12; i++) {
        a[i] = (uint8_t)(20 * i);
    }
    th_node_init(&t, "MatMulInteger", 10, 4, 1);
    in[0] = th_tensor(BMS_DTYPE_U8, a, 3, ad);
    in[1] = th_tensor(BMS_DTYPE_U8, b, 2, bd);
    in[2] = th_tensor(BMS_DTYPE_U8, za, 0, NULL);
    in[3] = th_tensor(BMS_DTYPE_U8, zb, 1, (const int64_t[]){1});
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 3, yd);
    assert_memory_equal(y, want, sizeof(want));
}


/* QLinearMatMul INT8: sums -5844, -13134, 16298, 5389 (numpy) times
 * 0.05 * 0.02 / y_scale, rounded, plus 10.  y_scale 0.5 gives -11.69,
 * -26.27, 32.60, 10.78; y_scale 0.01 saturates every element. */
static void qlinear_matmul(float y_scale, int8_t *y)
{
    static const int64_t d[2] = {2, 2};
    static const int64_t one[1] = {1};
    int8_t a[4] = {100, -50, 20, 127};
    int8_t b[4] = {3, -100, 127, 60};
    float a_scale[1] = {0.05f};
    float b_scale[1] = {0.02f};
    float y_sc[1];
    int8_t a_zp[1] = {-2};
    int8_t b_zp[1] = {1};
    int8_t y_zp[1] = {10};
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[8];
    struct bms_tensor out[1];

    y_sc[0] = y_scale;
    th_node_init(&t, "QLinearMatMul", 10, 8, 1);
    in[0] = th_tensor(BMS_DTYPE_I8, a, 2, d);
    in[1] = th_tensor(BMS_DTYPE_F32, a_scale, 1, one);
    in[2] = th_tensor(BMS_DTYPE_I8, a_zp, 1, one);
    in[3] = th_tensor(BMS_DTYPE_I8, b, 2, d);
    in[4] = th_tensor(BMS_DTYPE_F32, b_scale, 1, one);
    in[5] = th_tensor(BMS_DTYPE_I8, b_zp, 1, one);
    in[6] = th_tensor(BMS_DTYPE_F32, y_sc, 0, NULL);
    in[7] = th_tensor(BMS_DTYPE_I8, y_zp, 0, NULL);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(out[0].dtype, BMS_DTYPE_I8);
    th_assert_dims(&out[0], 2, d);
}


static void qlinear_matmul_rounds_and_saturates(void **state)
{
    static const int8_t rounded[4] = {-2, -16, 43, 21};
    static const int8_t saturated[4] = {-128, -128, 127, 127};
    int8_t y[4];

    (void)state;
    qlinear_matmul(0.5f, y);
    assert_memory_equal(y, rounded, sizeof(rounded));
    qlinear_matmul(0.01f, y);
    assert_memory_equal(y, saturated, sizeof(saturated));
}


/* ConvInteger with two groups, stride 2 and padding 1 on a [1, 2, 4, 4]
 * UINT8 input (7 * i mod 256), x zero point 3 and one w zero point per
 * output channel (1 and 2); PyTorch's conv2d on the shifted values. */
static void conv_integer_groups_stride_and_channel_zero_points(void **state)
{
    static const int64_t xd[4] = {1, 2, 4, 4};
    static const int64_t wd[4] = {2, 1, 2, 2};
    static const int64_t yd[4] = {1, 2, 3, 3};
    static const int64_t two[1] = {2};
    static const int64_t strides[2] = {2, 2};
    static const int64_t pads[4] = {1, 1, 1, 1};
    static const int32_t want[18] = {
        -9, 41, 36, 184, 360, 148, 81, 95, 0,
        654, 1318, 650, 1538, 2970, 1404, 772, 1428, 642
    };
    uint8_t x[32];
    uint8_t w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t x_zp[1] = {3};
    uint8_t w_zp[2] = {1, 2};
    int32_t y[18];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[4];
    struct bms_tensor out[1];

    (void)state;
    for (int i = 0; i < 32; i++) {
        x[i] = (uint8_t)(7 * i % 256);
    }
    th_node_init(&t, "ConvInteger", 10, 4, 1);
    th_attr_int(&t, "group", 2);
    th_attr_ints(&t, "strides", strides, 2);
    th_attr_ints(&t, "pads", pads, 4);
    in[0] = th_tensor(BMS_DTYPE_U8, x, 4, xd);
    in[1] = th_tensor(BMS_DTYPE_U8, w, 4, wd);
    in[2] = th_tensor(BMS_DTYPE_U8, x_zp, 0, NULL);
    in[3] = th_tensor(BMS_DTYPE_U8, w_zp, 1, two);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 4, yd);
    assert_memory_equal(y, want, sizeof(want));
}


/* QLinearConv 1-D, padding 1, per-channel w scale and zero point and an
 * INT32 bias; PyTorch's conv1d on the shifted values gives the sums,
 * numpy the requantisation (half to even, saturating to UINT8). */
static void qlinear_conv_per_channel_scales_and_bias(void **state)
{
    static const int64_t xd[3] = {1, 1, 5};
    static const int64_t wd[3] = {2, 1, 3};
    static const int64_t two[1] = {2};
    static const int64_t pads[2] = {1, 1};
    static const uint8_t want[10] = {63, 56, 88, 58, 41, 0, 0, 255, 64, 255};
    uint8_t x[5] = {10, 200, 30, 255, 0};
    uint8_t w[6] = {1, 2, 3, 250, 0, 7};
    float x_scale[1] = {0.1f};
    float w_scale[2] = {0.5f, 0.25f};
    float y_scale[1] = {0.8f};
    uint8_t x_zp[1] = {5};
    uint8_t w_zp[2] = {0, 3};
    uint8_t y_zp[1] = {20};
    int32_t bias[2] = {100, -4000};
    uint8_t y[10];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[9];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "QLinearConv", 10, 9, 1);
    th_attr_ints(&t, "pads", pads, 2);
    in[0] = th_tensor(BMS_DTYPE_U8, x, 3, xd);
    in[1] = th_tensor(BMS_DTYPE_F32, x_scale, 0, NULL);
    in[2] = th_tensor(BMS_DTYPE_U8, x_zp, 0, NULL);
    in[3] = th_tensor(BMS_DTYPE_U8, w, 3, wd);
    in[4] = th_tensor(BMS_DTYPE_F32, w_scale, 1, two);
    in[5] = th_tensor(BMS_DTYPE_U8, w_zp, 1, two);
    in[6] = th_tensor(BMS_DTYPE_F32, y_scale, 0, NULL);
    in[7] = th_tensor(BMS_DTYPE_U8, y_zp, 0, NULL);
    in[8] = th_tensor(BMS_DTYPE_I32, bias, 1, two);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(out[0].dtype, BMS_DTYPE_U8);
    assert_memory_equal(y, want, sizeof(want));
}


static void qlinear_matmul_rejects_mismatched_zero_point(void **state)
{
    static const int64_t d[2] = {2, 2};
    int8_t a[4] = {0};
    uint8_t bad_zp[1] = {0};
    int8_t zp[1] = {0};
    float scale[1] = {1};
    int8_t y[4];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[8];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "QLinearMatMul", 10, 8, 1);
    in[0] = th_tensor(BMS_DTYPE_I8, a, 2, d);
    in[1] = th_tensor(BMS_DTYPE_F32, scale, 0, NULL);
    in[2] = th_tensor(BMS_DTYPE_U8, bad_zp, 0, NULL);
    in[3] = th_tensor(BMS_DTYPE_I8, a, 2, d);
    in[4] = th_tensor(BMS_DTYPE_F32, scale, 0, NULL);
    in[5] = th_tensor(BMS_DTYPE_I8, zp, 0, NULL);
    in[6] = th_tensor(BMS_DTYPE_F32, scale, 0, NULL);
    in[7] = th_tensor(BMS_DTYPE_I8, zp, 0, NULL);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_ERR_INVALID);
}


static void unique_run(int sorted, int64_t *y, int64_t *idx, int64_t *inv,
                       int64_t *counts, struct bms_tensor *out)
{
    static int64_t x[7] = {5, -3, 5, 9, -3, -3, 0};
    static const int64_t xd[1] = {7};
    void *od[4] = {y, idx, inv, counts};
    struct th_node t;
    struct bms_tensor in[1];

    th_node_init(&t, "Unique", 11, 1, 4);
    th_attr_int(&t, "sorted", sorted);
    in[0] = th_tensor(BMS_DTYPE_I64, x, 1, xd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 1, (const int64_t[]){4});
    th_assert_dims(&out[2], 1, xd);
}


/* [5, -3, 5, 9, -3, -3, 0]: numpy.unique for sorted=1; by hand, the
 * order of first occurrence (5, -3, 9, 0) for sorted=0. */
static void unique_sorted_and_first_occurrence_orders(void **state)
{
    static const int64_t s_y[4] = {-3, 0, 5, 9};
    static const int64_t s_idx[4] = {1, 6, 0, 3};
    static const int64_t s_inv[7] = {2, 0, 2, 3, 0, 0, 1};
    static const int64_t s_cnt[4] = {3, 1, 2, 1};
    static const int64_t u_y[4] = {5, -3, 9, 0};
    static const int64_t u_idx[4] = {0, 1, 3, 6};
    static const int64_t u_inv[7] = {0, 1, 0, 2, 1, 1, 3};
    static const int64_t u_cnt[4] = {2, 3, 1, 1};
    int64_t y[7];
    int64_t idx[7];
    int64_t inv[7];
    int64_t cnt[7];
    struct bms_tensor out[4];

    (void)state;
    unique_run(1, y, idx, inv, cnt, out);
    th_assert_int64s(y, s_y, 4);
    th_assert_int64s(idx, s_idx, 4);
    th_assert_int64s(inv, s_inv, 7);
    th_assert_int64s(cnt, s_cnt, 4);
    unique_run(0, y, idx, inv, cnt, out);
    th_assert_int64s(y, u_y, 4);
    th_assert_int64s(idx, u_idx, 4);
    th_assert_int64s(inv, u_inv, 7);
    th_assert_int64s(cnt, u_cnt, 4);
}


/* Columns of [[2, 1, 2, 1], [0, 7, 0, 7], [3, 3, 3, 4]] along axis 1,
 * sorted lexicographically (numpy.unique with axis=1). */
static void unique_along_axis_compares_whole_slices(void **state)
{
    static const int64_t xd[2] = {3, 4};
    static const int64_t yd[2] = {3, 3};
    static const int32_t want_y[9] = {1, 1, 2, 7, 7, 0, 3, 4, 3};
    static const int64_t want_idx[3] = {1, 3, 0};
    static const int64_t want_inv[4] = {2, 0, 2, 1};
    static const int64_t want_cnt[3] = {1, 1, 2};
    int32_t x[12] = {2, 1, 2, 1, 0, 7, 0, 7, 3, 3, 3, 4};
    int32_t y[12];
    int64_t idx[4];
    int64_t inv[4];
    int64_t cnt[4];
    void *od[4] = {y, idx, inv, cnt};
    struct th_node t;
    struct bms_tensor in[1];
    struct bms_tensor out[4];

    (void)state;
    th_node_init(&t, "Unique", 11, 1, 4);
    th_attr_int(&t, "axis", 1);
    in[0] = th_tensor(BMS_DTYPE_I32, x, 2, xd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 2, yd);
    assert_memory_equal(y, want_y, sizeof(want_y));
    th_assert_int64s(idx, want_idx, 3);
    th_assert_int64s(inv, want_inv, 4);
    th_assert_int64s(cnt, want_cnt, 3);
}


/* Without the data, at load, the count of uniques is not known. */
static void unique_without_data_is_unavailable(void **state)
{
    static const int64_t xd[1] = {3};
    const struct bms_tensor *inp[1];
    struct bms_tensor x = th_tensor(BMS_DTYPE_F32, NULL, 1, xd);
    struct bms_tensor out[1];
    struct th_node t;

    (void)state;
    th_node_init(&t, "Unique", 11, 1, 1);
    inp[0] = &x;
    assert_int_equal(t.node.op->prepare(&t.node, NULL), BMS_OK);
    memset(out, 0, sizeof(out));
    assert_int_equal(t.node.op->infer(&t.node, inp, out, NULL),
                     BMS_ERR_UNAVAILABLE);
    th_node_fini(&t);
}


/* numpy.linalg.det: 73 for the first matrix (it needs a row swap), 0 for
 * the second, whose second row is twice the first. */
static void det_pivots_and_finds_singular(void **state)
{
    static const int64_t xd[3] = {2, 3, 3};
    static const double want[2] = {73, 0};
    float x[18] = {
        2, -1, 0.5f, 4, 3, -2, -6, 1, 7,
        1, 2, 3, 2, 4, 6, 0, 1, 1
    };
    float y[2];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[1];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "Det", 11, 1, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, xd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    th_assert_dims(&out[0], 1, (const int64_t[]){2});
    th_assert_floats_d(y, want, 2, 1e-6, 1e-6);
}


static enum bms_status max_unpool(int64_t *idx, float *y,
                                  struct bms_tensor *out)
{
    static const int64_t xd[3] = {1, 2, 2};
    static const int64_t k[1] = {2};
    float x[4] = {3, 9, 4, 1};
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[2];

    th_node_init(&t, "MaxUnpool", 11, 2, 1);
    th_attr_ints(&t, "kernel_shape", k, 1);
    th_attr_ints(&t, "strides", k, 1);
    in[0] = th_tensor(BMS_DTYPE_F32, x, 3, xd);
    in[1] = th_tensor(BMS_DTYPE_I64, idx, 3, xd);
    return th_node_check(&t, in, out, od);
}


/* 1-D, kernel and stride 2: [1, 2, 2] to [1, 2, 4], the indices running
 * over the whole output (channel 1 starts at 4).  By hand. */
static void max_unpool_places_by_flat_index(void **state)
{
    static const double want[8] = {0, 3, 9, 0, 4, 0, 0, 1};
    int64_t idx[4] = {1, 2, 4, 7};
    float y[8];
    struct bms_tensor out[1];

    (void)state;
    assert_int_equal(max_unpool(idx, y, out), BMS_OK);
    th_assert_dims(&out[0], 3, (const int64_t[]){1, 2, 4});
    th_assert_floats_d(y, want, 8, 0, 0);
}


static void max_unpool_rejects_index_out_of_range(void **state)
{
    int64_t idx[4] = {1, 2, 4, 8};
    float y[8];
    struct bms_tensor out[1];

    (void)state;
    assert_int_equal(max_unpool(idx, y, out), BMS_ERR_INVALID);
}


/* FP16 Max broadcasting [5] with [1]: numpy.maximum on float16 of
 * [1.5, -2.25, NaN, 65504, 0.0001] and [1]: NaN propagates, the largest
 * half stays exact. */
static void max_float16_broadcasts_and_propagates_nan(void **state)
{
    static const int64_t ad[1] = {5};
    static const int64_t bd[1] = {1};
    static const uint16_t want[5] = {0x3e00, 0x3c00, 0x7e00, 0x7bff, 0x3c00};
    uint16_t a[5] = {0x3e00, 0xc080, 0x7e00, 0x7bff, 0x068e};
    uint16_t b[1] = {0x3c00};
    uint16_t y[5];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[2];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "Max", 13, 2, 1);
    in[0] = th_tensor(BMS_DTYPE_F16, a, 1, ad);
    in[1] = th_tensor(BMS_DTYPE_F16, b, 1, bd);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_int_equal(out[0].dtype, BMS_DTYPE_F16);
    for (int i = 0; i < 5; i++) {
        /* Any NaN will do where NaN is expected. */
        if (want[i] == 0x7e00) {
            assert_true((y[i] & 0x7c00) == 0x7c00 && (y[i] & 0x3ff) != 0);
        } else {
            assert_int_equal(y[i], want[i]);
        }
    }
}


/* numpy.fmod on float16: [7.5, -7.5, 5, -0.1] by [2, 2, -3, 0.03] is
 * [1.5, -1.5, 2, -0.00998], the sign of the dividend. */
static void mod_float16_fmod_keeps_dividend_sign(void **state)
{
    static const int64_t d[1] = {4};
    static const uint16_t want[4] = {0x3e00, 0xbe00, 0x4000, 0xa11c};
    uint16_t a[4] = {0x4780, 0xc780, 0x4500, 0xae66};
    uint16_t b[4] = {0x4000, 0x4000, 0xc200, 0x27ae};
    uint16_t y[4];
    void *od[1] = {y};
    struct th_node t;
    struct bms_tensor in[2];
    struct bms_tensor out[1];

    (void)state;
    th_node_init(&t, "Mod", 13, 2, 1);
    th_attr_int(&t, "fmod", 1);
    in[0] = th_tensor(BMS_DTYPE_F16, a, 1, d);
    in[1] = th_tensor(BMS_DTYPE_F16, b, 1, d);
    assert_int_equal(th_node_check(&t, in, out, od), BMS_OK);
    assert_memory_equal(y, want, sizeof(want));
}


int bms_test_ops_last(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grid_sample_bilinear_reflection_matches_torch),
        cmocka_unit_test(grid_sample_bicubic_border_aligned_matches_torch),
        cmocka_unit_test(grid_sample_bicubic_zeros_matches_torch),
        cmocka_unit_test(grid_sample_nearest_zeros_reads_zero_outside),
        cmocka_unit_test(grid_sample_refuses_volumetric_input),
        cmocka_unit_test(roi_align_half_pixel_shifts_the_box),
        cmocka_unit_test(roi_align_max_takes_largest_weighted_corner),
        cmocka_unit_test(roi_align_rejects_batch_index_out_of_range),
        cmocka_unit_test(matmul_integer_per_row_and_column_zero_points),
        cmocka_unit_test(matmul_integer_broadcasts_batch),
        cmocka_unit_test(qlinear_matmul_rounds_and_saturates),
        cmocka_unit_test(conv_integer_groups_stride_and_channel_zero_points),
        cmocka_unit_test(qlinear_conv_per_channel_scales_and_bias),
        cmocka_unit_test(qlinear_matmul_rejects_mismatched_zero_point),
        cmocka_unit_test(unique_sorted_and_first_occurrence_orders),
        cmocka_unit_test(unique_along_axis_compares_whole_slices),
        cmocka_unit_test(unique_without_data_is_unavailable),
        cmocka_unit_test(det_pivots_and_finds_singular),
        cmocka_unit_test(max_unpool_places_by_flat_index),
        cmocka_unit_test(max_unpool_rejects_index_out_of_range),
        cmocka_unit_test(max_float16_broadcasts_and_propagates_nan),
        cmocka_unit_test(mod_float16_fmod_keeps_dividend_sign),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
