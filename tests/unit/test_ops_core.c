/*
 * Unit tests of the structural operators (ops/core.c, ops/core_cast.c),
 * each called through bms__op_find on a hand-built node and checked
 * against values worked out by hand from the ONNX operator documents.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "engine/graph.h"

#define MAX_IO 4

/* An operator call: op_type, opset, attributes, input and output counts,
 * then the input tensors. */
#define CALL(op, set, at, n_at, n_i, n_o, ...)                              \
    {.op_type = (op), .opset = (set), .attrs = (at), .n_attrs = (n_at),      \
     .n_in = (n_i), .n_out = (n_o), .in = {__VA_ARGS__}}

struct op_call {
    const char *op_type;
    int64_t opset;
    struct bms__attr *attrs;
    int n_attrs;
    const struct bms_tensor *in[MAX_IO];
    int n_in;
    int n_out;
    struct bms_tensor out[MAX_IO];
    unsigned char mem[MAX_IO][1024];
};


/* prepare, infer and run one operator; the status of the first step that
 * fails, else BMS_OK with the outputs in call->out. */
static enum bms_status call_op(struct op_call *call)
{
    struct bms__node node = {0};
    int inputs[MAX_IO];
    int outputs[MAX_IO];
    struct bms__ctx ctx = {NULL, 0, 1};
    struct bms_diag diag;
    enum bms_status rc = BMS_OK;

    node.op_type = call->op_type;
    node.op = bms__op_find(call->op_type);
    assert_non_null(node.op);
    node.opset = call->opset;
    node.attrs = call->attrs;
    node.n_attrs = call->n_attrs;
    node.n_inputs = call->n_in;
    node.inputs = inputs;
    node.n_outputs = call->n_out;
    node.outputs = outputs;
    for (int k = 0; k < call->n_in; k++) {
        inputs[k] = call->in[k] != NULL ? k : -1;
    }
    for (int j = 0; j < call->n_out; j++) {
        outputs[j] = j;
    }
    if (node.op->prepare != NULL) {
        rc = node.op->prepare(&node, &diag);
    }
    if (rc == BMS_OK) {
        rc = node.op->infer(&node, call->in, call->out, &diag);
    }
    for (int j = 0; rc == BMS_OK && j < call->n_out; j++) {
        assert_true(bms_tensor_size(&call->out[j]) <= sizeof(call->mem[j]));
        call->out[j].data = call->mem[j];
    }
    if (rc == BMS_OK) {
        rc = node.op->run(&node, call->in, call->out, &ctx);
    }
    free(node.params);
    bms__ctx_fini(&ctx);
    return rc;
}


static void assert_dims(const struct bms_tensor *t, int n, const int64_t *d)
{
    assert_int_equal(t->n_dims, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(t->dims[i], d[i]);
    }
}


static void transpose_default_perm_reverses_axes(void **state)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    struct bms_tensor tx = {BMS_DTYPE_F32, 2, {2, 3}, x};
    struct op_call c = CALL("Transpose", 13, NULL, 0, 1, 1, &tx);
    const float want[6] = {1, 4, 2, 5, 3, 6};

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 2, (const int64_t[]){3, 2});
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void transpose_3d_perm_moves_bytes(void **state)
{
    /* x[a][b][c] = 100a + 10b + c with dims [2, 3, 2]; perm [1, 2, 0]
     * makes y[b][c][a] = x[a][b][c]. */
    int16_t x[12];
    int16_t want[12];
    int64_t perm[3] = {1, 2, 0};
    struct bms__attr attr = {.name = "perm", .type = BMS__ATTR_INTS,
                             .ints = perm, .n = 3};
    struct bms_tensor tx = {BMS_DTYPE_I16, 3, {2, 3, 2}, x};
    struct op_call c = CALL("Transpose", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 3; b++) {
            for (int k = 0; k < 2; k++) {
                x[a * 6 + b * 2 + k] = (int16_t)(100 * a + 10 * b + k);
                want[b * 4 + k * 2 + a] = (int16_t)(100 * a + 10 * b + k);
            }
        }
    }
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 3, (const int64_t[]){3, 2, 2});
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void gather_axis1_takes_negative_indices(void **state)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    int32_t idx[2] = {-1, 0};
    struct bms__attr attr = {.name = "axis", .type = BMS__ATTR_INT, .i = 1};
    struct bms_tensor tx = {BMS_DTYPE_F32, 2, {2, 3}, x};
    struct bms_tensor ti = {BMS_DTYPE_I32, 1, {2}, idx};
    struct op_call c = CALL("Gather", 13, &attr, 1, 2, 1, &tx, &ti);
    const float want[4] = {3, 1, 6, 4};

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 2, (const int64_t[]){2, 2});
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void gather_rejects_index_out_of_range(void **state)
{
    float x[3] = {1, 2, 3};
    int64_t idx[1] = {3};
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {3}, x};
    struct bms_tensor ti = {BMS_DTYPE_I64, 1, {1}, idx};
    struct op_call c = CALL("Gather", 13, NULL, 0, 2, 1, &tx, &ti);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_INVALID);
}


static void reshape_copies_zero_and_infers_minus_one(void **state)
{
    float x[24] = {0};
    int64_t shape[2] = {0, -1};
    struct bms_tensor tx = {BMS_DTYPE_F32, 3, {2, 3, 4}, x};
    struct bms_tensor ts = {BMS_DTYPE_I64, 1, {2}, shape};
    struct op_call c = CALL("Reshape", 14, NULL, 0, 2, 1, &tx, &ts);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 2, (const int64_t[]){2, 12});
}


static void reshape_rejects_wrong_element_count(void **state)
{
    float x[6] = {0};
    int64_t shape[2] = {4, 2};
    struct bms_tensor tx = {BMS_DTYPE_F32, 2, {2, 3}, x};
    struct bms_tensor ts = {BMS_DTYPE_I64, 1, {2}, shape};
    struct op_call c = CALL("Reshape", 13, NULL, 0, 2, 1, &tx, &ts);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_INVALID);
}


static void reshape_without_shape_data_is_unavailable(void **state)
{
    float x[6] = {0};
    struct bms_tensor tx = {BMS_DTYPE_F32, 2, {2, 3}, x};
    struct bms_tensor ts = {BMS_DTYPE_I64, 1, {2}, NULL};
    struct op_call c = CALL("Reshape", 13, NULL, 0, 2, 1, &tx, &ts);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_UNAVAILABLE);
}


static void flatten_negative_axis_counts_from_end(void **state)
{
    float x[24] = {0};
    struct bms__attr attr = {.name = "axis", .type = BMS__ATTR_INT, .i = -1};
    struct bms_tensor tx = {BMS_DTYPE_F32, 3, {2, 3, 4}, x};
    struct op_call c = CALL("Flatten", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 2, (const int64_t[]){6, 4});
}


static void unsqueeze_opset13_takes_axes_input(void **state)
{
    float x[3] = {1, 2, 3};
    int64_t axes[2] = {0, -1};
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {3}, x};
    struct bms_tensor ta = {BMS_DTYPE_I64, 1, {2}, axes};
    struct op_call c = CALL("Unsqueeze", 13, NULL, 0, 2, 1, &tx, &ta);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 3, (const int64_t[]){1, 3, 1});
    assert_memory_equal(c.out[0].data, x, sizeof(x));
}


static void unsqueeze_opset11_takes_axes_attribute(void **state)
{
    float x[2] = {1, 2};
    int64_t axes[1] = {1};
    struct bms__attr attr = {.name = "axes", .type = BMS__ATTR_INTS,
                             .ints = axes, .n = 1};
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {2}, x};
    struct op_call c = CALL("Unsqueeze", 11, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 2, (const int64_t[]){2, 1});
}


static void squeeze_without_axes_drops_every_one(void **state)
{
    float x[3] = {1, 2, 3};
    struct bms_tensor tx = {BMS_DTYPE_F32, 4, {1, 3, 1, 1}, x};
    struct op_call c = CALL("Squeeze", 13, NULL, 0, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 1, (const int64_t[]){3});
}


static void squeeze_rejects_axis_not_one(void **state)
{
    float x[3] = {1, 2, 3};
    int64_t axes[1] = {1};
    struct bms_tensor tx = {BMS_DTYPE_F32, 2, {1, 3}, x};
    struct bms_tensor ta = {BMS_DTYPE_I64, 1, {1}, axes};
    struct op_call c = CALL("Squeeze", 13, NULL, 0, 2, 1, &tx, &ta);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_INVALID);
}


static void concat_axis1_interleaves_rows(void **state)
{
    int64_t a[4] = {1, 2, 3, 4};
    int64_t b[2] = {9, 8};
    struct bms__attr attr = {.name = "axis", .type = BMS__ATTR_INT, .i = 1};
    struct bms_tensor ta = {BMS_DTYPE_I64, 2, {2, 2}, a};
    struct bms_tensor tb = {BMS_DTYPE_I64, 2, {2, 1}, b};
    struct op_call c = CALL("Concat", 13, &attr, 1, 2, 1, &ta, &tb);
    const int64_t want[6] = {1, 2, 9, 3, 4, 8};

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_dims(&c.out[0], 2, (const int64_t[]){2, 3});
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void concat_rejects_mismatched_dims(void **state)
{
    float a[4] = {0};
    float b[3] = {0};
    struct bms__attr attr = {.name = "axis", .type = BMS__ATTR_INT, .i = 0};
    struct bms_tensor ta = {BMS_DTYPE_F32, 2, {2, 2}, a};
    struct bms_tensor tb = {BMS_DTYPE_F32, 2, {1, 3}, b};
    struct op_call c = CALL("Concat", 13, &attr, 1, 2, 1, &ta, &tb);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_INVALID);
}


static void shape_start_end_slice_dims(void **state)
{
    struct bms__attr attrs[2] = {
        {.name = "start", .type = BMS__ATTR_INT, .i = 1},
        {.name = "end", .type = BMS__ATTR_INT, .i = -1},
    };
    struct bms_tensor tx = {BMS_DTYPE_F32, 4, {2, 3, 4, 5}, NULL};
    struct op_call c = CALL("Shape", 15, attrs, 2, 1, 1, &tx);
    const int64_t want[2] = {3, 4};

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_int_equal(c.out[0].dtype, BMS_DTYPE_I64);
    assert_dims(&c.out[0], 1, (const int64_t[]){2});
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void constant_value_ints_is_int64_list(void **state)
{
    int64_t vals[3] = {4, -5, 6};
    struct bms__attr attr = {.name = "value_ints", .type = BMS__ATTR_INTS,
                             .ints = vals, .n = 3};
    struct op_call c = CALL("Constant", 13, &attr, 1, 0, 1, NULL);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_int_equal(c.out[0].dtype, BMS_DTYPE_I64);
    assert_dims(&c.out[0], 1, (const int64_t[]){3});
    assert_memory_equal(c.out[0].data, vals, sizeof(vals));
}


static void dropout_inference_copies_and_masks_true(void **state)
{
    float x[3] = {1.5f, -2.0f, 0.0f};
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {3}, x};
    struct op_call c = CALL("Dropout", 13, NULL, 0, 1, 2, &tx);
    const uint8_t mask[3] = {1, 1, 1};

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_memory_equal(c.out[0].data, x, sizeof(x));
    assert_int_equal(c.out[1].dtype, BMS_DTYPE_BOOL);
    assert_memory_equal(c.out[1].data, mask, sizeof(mask));
}


static void dropout_training_mode_is_unsupported(void **state)
{
    float x[2] = {1, 2};
    float ratio = 0.5f;
    uint8_t training = 1;
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {2}, x};
    struct bms_tensor tr = {BMS_DTYPE_F32, 0, {0}, &ratio};
    struct bms_tensor tt = {BMS_DTYPE_BOOL, 0, {0}, &training};
    struct op_call c = CALL("Dropout", 13, NULL, 0, 3, 1, &tx, &tr, &tt);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_UNSUPPORTED);
}


static struct bms__attr cast_to(enum bms_dtype to)
{
    struct bms__attr a = {.name = "to", .type = BMS__ATTR_INT, .i = to};

    return a;
}


/* Half-precision bit patterns: 1 + 2^-11 lies halfway between 0x3c00 and
 * 0x3c01 and rounds to the even 0x3c00; 1 + 3 * 2^-11 rounds up to the
 * even 0x3c02; 65519 rounds down to 65504 (0x7bff), 65520 up to infinity;
 * 2^-24 is the smallest subnormal, 2^-25 ties to zero, 1.5 * 2^-25 rounds
 * up to 2^-24. */
static void cast_f32_to_f16_rounds_to_nearest_even(void **state)
{
    float x[8] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65519.0f, 65520.0f,
                  0x1p-24f, 0x1p-25f, 1.5f * 0x1p-25f, -2.0f};
    const uint16_t want[8] = {0x3c00, 0x3c02, 0x7bff, 0x7c00,
                              0x0001, 0x0000, 0x0001, 0xc000};
    struct bms__attr attr = cast_to(BMS_DTYPE_F16);
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {8}, x};
    struct op_call c = CALL("Cast", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_int_equal(c.out[0].dtype, BMS_DTYPE_F16);
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void cast_f16_to_f32_is_exact(void **state)
{
    uint16_t x[4] = {0x3555, 0x0001, 0xfbff, 0x7c00};
    const float want[4] = {0x1.554p-2f, 0x1p-24f, -65504.0f,
                           __builtin_inff()};
    struct bms__attr attr = cast_to(BMS_DTYPE_F32);
    struct bms_tensor tx = {BMS_DTYPE_F16, 1, {4}, x};
    struct op_call c = CALL("Cast", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void cast_f32_to_i32_truncates_toward_zero(void **state)
{
    float x[4] = {2.7f, -2.7f, 0.5f, -0.0f};
    const int32_t want[4] = {2, -2, 0, 0};
    struct bms__attr attr = cast_to(BMS_DTYPE_I32);
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {4}, x};
    struct op_call c = CALL("Cast", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void cast_i64_to_u8_keeps_low_bits(void **state)
{
    int64_t x[3] = {257, -1, 128};
    const uint8_t want[3] = {1, 255, 128};
    struct bms__attr attr = cast_to(BMS_DTYPE_U8);
    struct bms_tensor tx = {BMS_DTYPE_I64, 1, {3}, x};
    struct op_call c = CALL("Cast", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void cast_to_bool_is_nonzero(void **state)
{
    double x[4] = {0.0, -0.0, 0.25, -3.0};
    const uint8_t want[4] = {0, 0, 1, 1};
    struct bms__attr attr = cast_to(BMS_DTYPE_BOOL);
    struct bms_tensor tx = {BMS_DTYPE_F64, 1, {4}, x};
    struct op_call c = CALL("Cast", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_OK);
    assert_memory_equal(c.out[0].data, want, sizeof(want));
}


static void cast_to_string_is_unsupported(void **state)
{
    float x[1] = {1};
    struct bms__attr attr = cast_to(BMS_DTYPE_STRING);
    struct bms_tensor tx = {BMS_DTYPE_F32, 1, {1}, x};
    struct op_call c = CALL("Cast", 13, &attr, 1, 1, 1, &tx);

    (void)state;
    assert_int_equal(call_op(&c), BMS_ERR_UNSUPPORTED);
}


int bms_test_ops_core(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transpose_default_perm_reverses_axes),
        cmocka_unit_test(transpose_3d_perm_moves_bytes),
        cmocka_unit_test(gather_axis1_takes_negative_indices),
        cmocka_unit_test(gather_rejects_index_out_of_range),
        cmocka_unit_test(reshape_copies_zero_and_infers_minus_one),
        cmocka_unit_test(reshape_rejects_wrong_element_count),
        cmocka_unit_test(reshape_without_shape_data_is_unavailable),
        cmocka_unit_test(flatten_negative_axis_counts_from_end),
        cmocka_unit_test(unsqueeze_opset13_takes_axes_input),
        cmocka_unit_test(unsqueeze_opset11_takes_axes_attribute),
        cmocka_unit_test(squeeze_without_axes_drops_every_one),
        cmocka_unit_test(squeeze_rejects_axis_not_one),
        cmocka_unit_test(concat_axis1_interleaves_rows),
        cmocka_unit_test(concat_rejects_mismatched_dims),
        cmocka_unit_test(shape_start_end_slice_dims),
        cmocka_unit_test(constant_value_ints_is_int64_list),
        cmocka_unit_test(dropout_inference_copies_and_masks_true),
        cmocka_unit_test(dropout_training_mode_is_unsupported),
        cmocka_unit_test(cast_f32_to_f16_rounds_to_nearest_even),
        cmocka_unit_test(cast_f16_to_f32_is_exact),
        cmocka_unit_test(cast_f32_to_i32_truncates_toward_zero),
        cmocka_unit_test(cast_i64_to_u8_keeps_low_bits),
        cmocka_unit_test(cast_to_bool_is_nonzero),
        cmocka_unit_test(cast_to_string_is_unsupported),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
