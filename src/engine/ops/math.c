/*
 * The table of arithmetic operators, and the helpers their kernel files
 * share.  The table is the one place that binds ONNX op_type names to the
 * kernels in the other files of this folder; bms__op_find reads it.
 */
#include <stdio.h>

#include "engine/ops/fused.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"
#include "engine/ops/control.h"
#include "engine/ops/testfault.h"

#define BINARY(name) \
    {name, bms__binary_prepare, bms__binary_infer, bms__binary_run}
#define UNARY(name) \
    {name, bms__unary_prepare, bms__unary_infer, bms__unary_run}
#define SOFTMAX(name) \
    {name, bms__softmax_prepare, bms__softmax_infer, bms__softmax_run}
#define POOL(name) \
    {name, bms__pool_prepare, bms__pool_infer, bms__pool_run}
#define ENTRY(name, prefix) \
    {name, prefix##_prepare, prefix##_infer, prefix##_run}

const struct bms__op bms__ops_math[] = {
    BINARY("Add"),
    ENTRY("If", bms__if),
    ENTRY("Loop", bms__loop),
    ENTRY("Scan", bms__scan),
    BINARY("Sub"),
    BINARY("Mul"),
    BINARY("Div"),
    UNARY("Relu"),
    UNARY("Sigmoid"),
    UNARY("Tanh"),
    UNARY("Neg"),
    UNARY("Abs"),
    UNARY("Exp"),
    UNARY("Log"),
    UNARY("Sqrt"),
    UNARY("Reciprocal"),
    UNARY("Floor"),
    UNARY("Ceil"),
    SOFTMAX("Softmax"),
    SOFTMAX("LogSoftmax"),
    {"Gemm", bms__gemm_prepare, bms__gemm_infer, bms__gemm_run},
    {"MatMul", bms__matmul_prepare, bms__matmul_infer, bms__matmul_run},
    {"Conv", bms__conv_prepare, bms__conv_infer, bms__conv_run},
    POOL("MaxPool"),
    POOL("AveragePool"),
    {"GlobalAveragePool", bms__gap_prepare, bms__gap_infer, bms__gap_run},
    {"BatchNormalization", bms__batchnorm_prepare, bms__batchnorm_infer,
     bms__batchnorm_run},
    {"ArgMax", bms__argmax_prepare, bms__argmax_infer, bms__argmax_run},
    ENTRY("ArgMin", bms__argmin),
    ENTRY("Equal", bms__bcast_op),
    ENTRY("Less", bms__bcast_op),
    ENTRY("Greater", bms__bcast_op),
    ENTRY("LessOrEqual", bms__bcast_op),
    ENTRY("GreaterOrEqual", bms__bcast_op),
    ENTRY("And", bms__bcast_op),
    ENTRY("Or", bms__bcast_op),
    ENTRY("Xor", bms__bcast_op),
    ENTRY("Pow", bms__bcast_op),
    ENTRY("Mod", bms__half),
    ENTRY("BitShift", bms__bcast_op),
    ENTRY("PRelu", bms__bcast_op),
    ENTRY("Where", bms__bcast_op),
    ENTRY("Max", bms__half),
    ENTRY("Min", bms__half),
    ENTRY("Sum", bms__variadic),
    ENTRY("Mean", bms__variadic),
    ENTRY("Clip", bms__clip),
    ENTRY("LeakyRelu", bms__act),
    ENTRY("Elu", bms__act),
    ENTRY("Selu", bms__act),
    ENTRY("Celu", bms__act),
    ENTRY("ThresholdedRelu", bms__act),
    ENTRY("HardSigmoid", bms__act),
    ENTRY("Shrink", bms__act),
    ENTRY("Sign", bms__act),
    ENTRY("IsNaN", bms__act),
    ENTRY("IsInf", bms__act),
    ENTRY("Not", bms__act),
    ENTRY("HardSwish", bms__act),
    ENTRY("Softplus", bms__act),
    ENTRY("Softsign", bms__act),
    ENTRY("Round", bms__act),
    ENTRY("Sin", bms__act),
    ENTRY("Cos", bms__act),
    ENTRY("Tan", bms__act),
    ENTRY("Asin", bms__act),
    ENTRY("Acos", bms__act),
    ENTRY("Atan", bms__act),
    ENTRY("Sinh", bms__act),
    ENTRY("Cosh", bms__act),
    ENTRY("Asinh", bms__act),
    ENTRY("Acosh", bms__act),
    ENTRY("Atanh", bms__act),
    ENTRY("Erf", bms__act),
    ENTRY("ReduceSum", bms__reduce),
    ENTRY("ReduceMean", bms__reduce),
    ENTRY("ReduceMax", bms__reduce),
    ENTRY("ReduceMin", bms__reduce),
    ENTRY("ReduceProd", bms__reduce),
    ENTRY("ReduceL1", bms__reduce),
    ENTRY("ReduceL2", bms__reduce),
    ENTRY("ReduceLogSum", bms__reduce),
    ENTRY("ReduceLogSumExp", bms__reduce),
    ENTRY("ReduceSumSquare", bms__reduce),
    ENTRY("Slice", bms__slice),
    ENTRY("Split", bms__split),
    ENTRY("Expand", bms__expand),
    ENTRY("Tile", bms__tile),
    ENTRY("Pad", bms__pad),
    ENTRY("DepthToSpace", bms__space),
    ENTRY("SpaceToDepth", bms__space),
    ENTRY("Range", bms__fill),
    ENTRY("ConstantOfShape", bms__fill),
    ENTRY("Size", bms__fill),
    ENTRY("EyeLike", bms__fill),
    ENTRY("Trilu", bms__fill),
    ENTRY("OneHot", bms__fill),
    ENTRY("CumSum", bms__fill),
    ENTRY("GatherElements", bms__gather),
    ENTRY("GatherND", bms__gather),
    ENTRY("ScatterElements", bms__gather),
    ENTRY("Scatter", bms__gather),
    ENTRY("ScatterND", bms__gather),
    ENTRY("Compress", bms__gather),
    ENTRY("NonZero", bms__gather),
    ENTRY("NegativeLogLikelihoodLoss", bms__loss),
    ENTRY("SoftmaxCrossEntropyLoss", bms__loss),
    ENTRY("LayerNormalization", bms__normalize),
    ENTRY("InstanceNormalization", bms__normalize),
    ENTRY("MeanVarianceNormalization", bms__normalize),
    ENTRY("LRN", bms__normalize),
    ENTRY("GlobalMaxPool", bms__normalize),
    ENTRY("Hardmax", bms__normalize),
    ENTRY("Resize", bms__resize),
    ENTRY("Upsample", bms__resize),
    ENTRY("ConvTranspose", bms__convt),
    ENTRY("RNN", bms__rnn),
    ENTRY("GRU", bms__rnn),
    ENTRY("LSTM", bms__rnn),
    ENTRY("TopK", bms__select),
    ENTRY("NonMaxSuppression", bms__select),
    ENTRY("Einsum", bms__einsum),
    ENTRY("QuantizeLinear", bms__quant),
    ENTRY("DequantizeLinear", bms__quant),
    ENTRY("DynamicQuantizeLinear", bms__quant),
    ENTRY("HannWindow", bms__fill),
    ENTRY("HammingWindow", bms__fill),
    ENTRY("BlackmanWindow", bms__fill),
    ENTRY("ReverseSequence", bms__gather),
    ENTRY("GridSample", bms__sample),
    ENTRY("RoiAlign", bms__sample),
    ENTRY("MatMulInteger", bms__integer),
    ENTRY("ConvInteger", bms__integer),
    ENTRY("QLinearMatMul", bms__integer),
    ENTRY("QLinearConv", bms__integer),
    ENTRY("Unique", bms__unique),
    ENTRY("Det", bms__det),
    ENTRY("MaxUnpool", bms__unpool),
    ENTRY("bms.Gelu", bms__gelu),
    ENTRY("bms.MatMul", bms__fmatmul),
    ENTRY("bms.AddLayerNorm", bms__addnorm),
#ifdef BMS_TEST_FAULTS
    ENTRY("BmsTestFault", bms__testfault),   /* test builds only */
#endif
    {NULL, NULL, NULL, NULL}
};


enum bms_status bms__math_check_arity(const struct bms__node *node,
                                      int min_in, int max_in,
                                      int min_out, int max_out,
                                      struct bms_diag *diag)
{
    if (node->n_inputs < min_in || node->n_inputs > max_in) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: %d inputs, expected %d to %d",
                            node->op_type, node->n_inputs, min_in, max_in);
    }
    if (node->n_outputs < min_out || node->n_outputs > max_out) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: %d outputs, expected %d to %d",
                            node->op_type, node->n_outputs, min_out,
                            max_out);
    }
    for (int i = 0; i < min_in; i++) {
        if (node->inputs[i] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: input %d is required", node->op_type,
                                i);
        }
    }
    for (int j = 0; j < min_out; j++) {
        if (node->outputs[j] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: output %d is required", node->op_type,
                                j);
        }
    }
    return BMS_OK;
}


enum bms_status bms__math_bad_dtype(const struct bms__node *node,
                                    enum bms_dtype dtype,
                                    struct bms_diag *diag)
{
    const char *name = bms_dtype_v2_name(dtype);

    if (dtype == BMS_DTYPE_STRING) {
        name = "BYTES";
    } else if (name[0] == '\0') {
        name = "UNDEFINED";
    }
    return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                        "%s: datatype %s not supported", node->op_type,
                        name);
}


void bms__math_dims_text(const int64_t *dims, int n_dims, char *buf)
{
    size_t len = 0;

    buf[len++] = '[';
    for (int i = 0; i < n_dims && i < BMS_MAX_DIMS; i++) {
        int n = snprintf(buf + len, BMS__DIMS_TEXT_SIZE - len, "%s%lld",
                         i > 0 ? "," : "", (long long)dims[i]);

        if (n < 0 || (size_t)n >= BMS__DIMS_TEXT_SIZE - len) {
            break;
        }
        len += (size_t)n;
    }
    buf[len++] = ']';
    buf[len] = '\0';
}


enum bms_status bms__math_axis(const struct bms__node *node, int64_t axis,
                               int rank, int allow_end, int *out,
                               struct bms_diag *diag)
{
    int64_t hi = allow_end ? rank : rank - 1;

    if (axis < -(int64_t)rank || axis > hi) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: axis %lld out of range for rank %d",
                            node->op_type, (long long)axis, rank);
    }
    *out = (int)(axis < 0 ? axis + rank : axis);
    return BMS_OK;
}


int64_t bms__math_span(const int64_t *dims, int from, int to)
{
    int64_t n = 1;

    for (int i = from; i < to; i++) {
        if (dims[i] < 0) {
            return -1;
        }
        n *= dims[i];
    }
    return n;
}


int bms__math_broadcast_dim(int64_t a, int64_t b, int64_t *out)
{
    if (a == b || b == 1) {
        *out = a;
    } else if (a == 1) {
        *out = b;
    } else if (a < 0 || b < 0) {
        *out = a < 0 ? b : a;
    } else {
        return 0;
    }
    return 1;
}
