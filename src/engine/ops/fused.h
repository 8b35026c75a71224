/*
 * Internal to the engine: operators that only the optimiser creates
 * (optimize.c), each standing for a chain of ONNX nodes it fused, with
 * the entry points for the table in ops/math.c.  Their op_type names
 * start with "bms." and their attributes are the optimiser's; prepare
 * still validates them, as for any node.
 *
 * bms.Gelu       x / 2 * (1 + erf(x / sqrt(2))), F32.
 *
 * bms.MatMul     inputs A, B and an optional 1-D bias; attributes perm_a,
 *                perm_b, perm_y (INTS), alpha (FLOAT, default 1) and gelu
 *                (INT, default 0).  Computes
 *                  Y = MatMul(Transpose(A, perm_a), Transpose(B, perm_b))
 *                  Y = alpha * Y + bias        (bias along the last dim)
 *                  Y = Gelu(Y)                 (when gelu is 1, F32 only)
 *                  out = Transpose(Y, perm_y)
 *                where an absent perm is no transpose.  A perm of an
 *                operand must bring its last axis to one of the last two
 *                places, and perm_y must keep the last axis last, so that
 *                every matrix is a strided view the matrix library reads
 *                or writes in place.  F32 and F64.
 *
 * bms.AddLayerNorm  LayerNormalization(Add(A, B), scale, bias) over the
 *                last axis, with the attributes of LayerNormalization
 *                (axis must be -1); A and B broadcast as Add's do.  F32.
 */
#ifndef BMS_ENGINE_OPS_FUSED_H
#define BMS_ENGINE_OPS_FUSED_H

#include "engine/ops/ops_more.h"

/* ops/fused.c */
BMS__OP_DECLARE(bms__gelu);
BMS__OP_DECLARE(bms__addnorm);

/* ops/gemm.c */
BMS__OP_DECLARE(bms__fmatmul);

#endif
