/*
 * Internal to the arithmetic kernels: the steps each kernel file exports to
 * the table in ops/math.c, and the small helpers they share (argument
 * checks, diagnostic text for datatypes and dims).
 *
 * Every kernel follows the contract of struct bms__op in engine/graph.h:
 * prepare validates attributes and counts and keeps parsed parameters in
 * node->params, infer derives output dtypes and dims (input data may be
 * NULL), run computes into preallocated outputs without allocating.  A
 * dimension of -1 in infer means "known only at run" and propagates.
 */
#ifndef BMS_ENGINE_OPS_KERNELS_H
#define BMS_ENGINE_OPS_KERNELS_H

#include "engine/graph.h"

/*
 * gcc -O2 vectorises a loop only when no scalar remainder is left over,
 * which never holds for loops over runtime dims.  The kernel files ask for
 * gcc's "cheap" cost model instead, which keeps a scalar tail and versions
 * loops for operands that might overlap.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap")
#endif

/* Largest text bms__math_dims_text writes, NUL included. */
#define BMS__DIMS_TEXT_SIZE (BMS_MAX_DIMS * 21 + 3)

/*
 * Check that node has between min_in and max_in inputs and between min_out
 * and max_out outputs, and that the required ones (the first min_in and
 * min_out) are present.  BMS_ERR_INVALID naming the op otherwise.
 */
enum bms_status bms__math_check_arity(const struct bms__node *node,
                                      int min_in, int max_in,
                                      int min_out, int max_out,
                                      struct bms_diag *diag);

/* BMS_ERR_UNSUPPORTED with "<op>: datatype <NAME> not supported". */
enum bms_status bms__math_bad_dtype(const struct bms__node *node,
                                    enum bms_dtype dtype,
                                    struct bms_diag *diag);

/* Write dims as "[3,4,5]" into buf (BMS__DIMS_TEXT_SIZE bytes). */
void bms__math_dims_text(const int64_t *dims, int n_dims, char *buf);

/* Normalise an axis in [-rank, rank) (or [-rank, rank] when allow_end) to
 * [0, rank]; BMS_ERR_INVALID naming the op when out of range. */
enum bms_status bms__math_axis(const struct bms__node *node, int64_t axis,
                               int rank, int allow_end, int *out,
                               struct bms_diag *diag);

/* Product of dims[from..to), counting a -1 dim as unknown: -1 then. */
int64_t bms__math_span(const int64_t *dims, int from, int to);

/* One dim of a numpy broadcast of dims a and b (-1: known only at run)
 * into *out; returns 0 when they do not broadcast. */
int bms__math_broadcast_dim(int64_t a, int64_t b, int64_t *out);

/* ops/elementwise.c: Add, Sub, Mul, Div and the unary ops. */
enum bms_status bms__binary_prepare(struct bms__node *node,
                                    struct bms_diag *diag);
enum bms_status bms__binary_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag);
enum bms_status bms__binary_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx);
enum bms_status bms__unary_prepare(struct bms__node *node,
                                   struct bms_diag *diag);
enum bms_status bms__unary_infer(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms_diag *diag);
enum bms_status bms__unary_run(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms__ctx *ctx);

/* ops/softmax.c: Softmax and LogSoftmax. */
enum bms_status bms__softmax_prepare(struct bms__node *node,
                                     struct bms_diag *diag);
enum bms_status bms__softmax_infer(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms_diag *diag);
enum bms_status bms__softmax_run(const struct bms__node *node,
                                 const struct bms_tensor *const *in,
                                 struct bms_tensor *out,
                                 struct bms__ctx *ctx);

/* ops/gemm.c: Gemm and MatMul. */
enum bms_status bms__gemm_prepare(struct bms__node *node,
                                  struct bms_diag *diag);
enum bms_status bms__gemm_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag);
enum bms_status bms__gemm_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx);
enum bms_status bms__matmul_prepare(struct bms__node *node,
                                    struct bms_diag *diag);
enum bms_status bms__matmul_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag);
enum bms_status bms__matmul_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx);

/* ops/conv.c: Conv. */
enum bms_status bms__conv_prepare(struct bms__node *node,
                                  struct bms_diag *diag);
enum bms_status bms__conv_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag);
enum bms_status bms__conv_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx);

/* ops/pool.c: MaxPool, AveragePool, GlobalAveragePool. */
enum bms_status bms__pool_prepare(struct bms__node *node,
                                  struct bms_diag *diag);
enum bms_status bms__pool_infer(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms_diag *diag);
enum bms_status bms__pool_run(const struct bms__node *node,
                              const struct bms_tensor *const *in,
                              struct bms_tensor *out,
                              struct bms__ctx *ctx);
enum bms_status bms__gap_prepare(struct bms__node *node,
                                 struct bms_diag *diag);
enum bms_status bms__gap_infer(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms_diag *diag);
enum bms_status bms__gap_run(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out,
                             struct bms__ctx *ctx);

/* ops/norm.c: BatchNormalization (inference form). */
enum bms_status bms__batchnorm_prepare(struct bms__node *node,
                                       struct bms_diag *diag);
enum bms_status bms__batchnorm_infer(const struct bms__node *node,
                                     const struct bms_tensor *const *in,
                                     struct bms_tensor *out,
                                     struct bms_diag *diag);
enum bms_status bms__batchnorm_run(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct bms_tensor *out,
                                   struct bms__ctx *ctx);

/* ops/argmax.c: ArgMax. */
enum bms_status bms__argmax_prepare(struct bms__node *node,
                                    struct bms_diag *diag);
enum bms_status bms__argmax_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag);
enum bms_status bms__argmax_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx);

#endif
