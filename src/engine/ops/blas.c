/*
 * bms__sgemm on oneDNN's row-major dnnl_sgemm.
 *
 * oneDNN here runs its threads on OpenMP, which sizes each parallel region
 * from the calling thread's own setting.  Fork and join cost little on an
 * idle machine but ruin small products on a busy one (every barrier waits
 * for a descheduled thread), and the server already runs one session per
 * worker.  So products below PARALLEL_MIN_MACS run on the calling thread
 * alone and larger ones on up to the session's n_threads, set through the
 * OpenMP runtime that oneDNN itself uses.
 *
 * A product of few rows and moderate size (an MLP layer at a small
 * batch) is split by rows here instead: each thread runs the single
 * threaded sgemm on its share of the rows of A and C against all of B.
 * oneDNN's own partition of such shapes scales worse on two cores
 * (bench: fashion_mlp at batch 64, 98 -> 75 us on two threads).
 */
#include <omp.h>

#include <oneapi/dnnl/dnnl.h>

#include "engine/ops/blas.h"

/* Multiply-adds below which a product is not worth a thread team. */
#define PARALLEL_MIN_MACS ((int64_t)1 << 22)

/* Products split by rows: at most this many rows and multiply-adds. */
#define ROW_SPLIT_MAX_M 256
#define ROW_SPLIT_MAX_MACS ((int64_t)1 << 24)

static _Thread_local int thread_setting;     /* 0: not set yet */


/* OpenMP's setting is per thread; only change it when it differs. */
static void use_threads(int n)
{
    if (thread_setting != n) {
        omp_set_num_threads(n);
        thread_setting = n;
    }
}


/* An empty product leaves beta * C; with beta 0, C is not read. */
static void scale_rows(int64_t m, int64_t n, float beta, float *c,
                       int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;

        for (int64_t j = 0; j < n; j++) {
            row[j] = beta == 0.0f ? 0.0f : beta * row[j];
        }
    }
}


/* bms__sgemm's product on n_threads threads, each on its rows. */
static enum bms_status sgemm_by_rows(int n_threads, int trans_a,
                                     int trans_b, int64_t m, int64_t n,
                                     int64_t k, float alpha, const float *a,
                                     int64_t lda, const float *b,
                                     int64_t ldb, float beta, float *c,
                                     int64_t ldc)
{
    int64_t rows = (m + n_threads - 1) / n_threads;
    int bad = 0;

    use_threads(1);
#pragma omp parallel for num_threads(n_threads) schedule(static) \
    reduction(| : bad)
    for (int t = 0; t < n_threads; t++) {
        int64_t i0 = t * rows;
        int64_t i1 = i0 + rows < m ? i0 + rows : m;

        if (i0 < i1) {
            /* A's rows are its columns when it is transposed. */
            bad |= dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N',
                              i1 - i0, n, k, alpha,
                              trans_a ? a + i0 : a + i0 * lda, lda, b, ldb,
                              beta, c + i0 * ldc, ldc) != dnnl_success;
        }
    }
    return bad ? BMS_ERR_INTERNAL : BMS_OK;
}


enum bms_status bms__sgemm(int n_threads, int trans_a, int trans_b,
                           int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc)
{
    dnnl_status_t st;

    if (m == 0 || n == 0) {
        return BMS_OK;
    }
    if (k == 0) {
        scale_rows(m, n, beta, c, ldc);
        return BMS_OK;
    }
    if (n_threads > 1 && m >= 2 * n_threads && m <= ROW_SPLIT_MAX_M &&
        m * n * k >= PARALLEL_MIN_MACS && m * n * k <= ROW_SPLIT_MAX_MACS) {
        return sgemm_by_rows(n_threads, trans_a, trans_b, m, n, k, alpha, a,
                             lda, b, ldb, beta, c, ldc);
    }
    use_threads(m * n * k < PARALLEL_MIN_MACS || n_threads < 1
                    ? 1 : n_threads);
    st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k,
                    alpha, a, lda, b, ldb, beta, c, ldc);
    return st == dnnl_success ? BMS_OK : BMS_ERR_INTERNAL;
}
