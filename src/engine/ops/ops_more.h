/*
 * Internal to the kernels: the entry points of the operator files that
 * came after kernels.h, for the table in ops/math.c.  Each file serves a
 * family of ONNX operators through one prepare / infer / run triple that
 * tells the members apart by node->op_type (see engine/graph.h for the
 * contract of the three steps).
 */
#ifndef BMS_ENGINE_OPS_OPS_MORE_H
#define BMS_ENGINE_OPS_OPS_MORE_H

#include "engine/graph.h"

/* Declares <prefix>_prepare, <prefix>_infer and <prefix>_run. */
#define BMS__OP_DECLARE(prefix)                                             \
    enum bms_status prefix##_prepare(struct bms__node *node,                \
                                     struct bms_diag *diag);                \
    enum bms_status prefix##_infer(const struct bms__node *node,            \
                                   const struct bms_tensor *const *in,      \
                                   struct bms_tensor *out,                  \
                                   struct bms_diag *diag);                  \
    enum bms_status prefix##_run(const struct bms__node *node,              \
                                 const struct bms_tensor *const *in,        \
                                 struct bms_tensor *out,                    \
                                 struct bms__ctx *ctx)

/* ops/broadcast.c: Equal, Less, Greater, LessOrEqual, GreaterOrEqual,
 * And, Or, Xor, Pow, Mod, BitShift, PRelu, Where; Max, Min, Sum, Mean. */
BMS__OP_DECLARE(bms__bcast_op);
BMS__OP_DECLARE(bms__variadic);

/* ops/activation.c: unary ops with attributes (LeakyRelu, Elu, Selu, ...,
 * Sin, Cos, Erf, Sign, IsNaN, IsInf, Not, Round) and Clip. */
BMS__OP_DECLARE(bms__act);
BMS__OP_DECLARE(bms__clip);

/* ops/reduce.c: the Reduce* family and ArgMin. */
BMS__OP_DECLARE(bms__reduce);
BMS__OP_DECLARE(bms__argmin);

/* ops/slice.c: Slice, Split, Expand, Tile, Pad, DepthToSpace and
 * SpaceToDepth (the last two share bms__space). */
BMS__OP_DECLARE(bms__slice);
BMS__OP_DECLARE(bms__split);
BMS__OP_DECLARE(bms__expand);
BMS__OP_DECLARE(bms__tile);
BMS__OP_DECLARE(bms__pad);
BMS__OP_DECLARE(bms__space);

/* ops/fill.c: Range, ConstantOfShape, Size, EyeLike, Trilu, OneHot,
 * CumSum, HannWindow, HammingWindow, BlackmanWindow. */
BMS__OP_DECLARE(bms__fill);

/* ops/gather.c: GatherElements, GatherND, ScatterElements, Scatter,
 * ScatterND, ReverseSequence, Compress, NonZero. */
BMS__OP_DECLARE(bms__gather);

/* ops/loss.c: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss. */
BMS__OP_DECLARE(bms__loss);

/* ops/normalize.c: LayerNormalization, InstanceNormalization,
 * MeanVarianceNormalization, LRN, GlobalMaxPool, Hardmax. */
BMS__OP_DECLARE(bms__normalize);

/* ops/resize.c: Resize and Upsample. */
BMS__OP_DECLARE(bms__resize);

/* ops/convtranspose.c: ConvTranspose. */
BMS__OP_DECLARE(bms__convt);

/* ops/rnn.c: RNN, GRU, LSTM. */
BMS__OP_DECLARE(bms__rnn);

/* ops/select.c: TopK, NonMaxSuppression. */
BMS__OP_DECLARE(bms__select);

/* ops/einsum.c: Einsum. */
BMS__OP_DECLARE(bms__einsum);

/* ops/quant.c: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear. */
BMS__OP_DECLARE(bms__quant);

/* ops/sample.c: GridSample, RoiAlign. */
BMS__OP_DECLARE(bms__sample);

/* ops/integer.c: MatMulInteger, ConvInteger, QLinearMatMul,
 * QLinearConv. */
BMS__OP_DECLARE(bms__integer);

/* ops/unique.c: Unique. */
BMS__OP_DECLARE(bms__unique);

/* ops/det.c: Det. */
BMS__OP_DECLARE(bms__det);

/* ops/unpool.c: MaxUnpool. */
BMS__OP_DECLARE(bms__unpool);

/* ops/half.c: Max, Min and Mod, taking FP16 themselves and handing the
 * other datatypes to bms__variadic and bms__bcast_op. */
BMS__OP_DECLARE(bms__half);

#endif
