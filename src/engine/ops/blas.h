/*
 * The one door to the matrix library: every single-precision matrix
 * product in the kernels goes through bms__sgemm, so that the library
 * behind it (oneDNN today) can be swapped in this pair of files alone.
 */
#ifndef BMS_ENGINE_OPS_BLAS_H
#define BMS_ENGINE_OPS_BLAS_H

#include <stdint.h>

#include "bms/base.h"

/*
 * Row-major C = alpha * op(A) * op(B) + beta * C, where op(A) is M x K
 * (A is K x M when trans_a), op(B) is K x N (B is N x K when trans_b), and
 * lda, ldb, ldc are the row strides in elements of A, B and C as stored.
 * With beta 0, C is written without being read.  Thread-safe; large
 * products use up to n_threads of the library's threads, small ones only
 * the caller's.  BMS_ERR_INTERNAL when the library refuses.
 */
enum bms_status bms__sgemm(int n_threads, int trans_a, int trans_b,
                           int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc);

#endif
