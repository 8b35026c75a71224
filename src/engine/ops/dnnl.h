/*
 * Internal to the kernels: the oneDNN primitives behind Conv, and the
 * helpers every primitive-based kernel shares (the process's CPU engine,
 * the thread setting, fused activations as post-ops, execution).
 *
 * A struct bms__dnnl_conv caches, per problem (every dim and attribute a
 * primitive depends on, the thread count included), a created convolution
 * primitive, the reorders between bms's plain NCHW and the layouts the
 * primitive chose, and the weights already reordered when they are
 * constant.  The cache lives in a Conv node's params, which every session
 * of a model shares: a mutex guards the list, entries are immutable once
 * published and never removed before fini, and execution runs outside the
 * lock (a created oneDNN primitive may execute on several threads at once;
 * every primitive here uses the user scratchpad mode, so no two
 * executions share library memory).
 */
#ifndef BMS_ENGINE_OPS_DNNL_H
#define BMS_ENGINE_OPS_DNNL_H

#include <pthread.h>

#include <oneapi/dnnl/dnnl.h>

#include "engine/graph.h"

/* Most spatial dims oneDNN's convolution takes (1-D, 2-D, 3-D). */
#define BMS__DNNL_MAX_SPATIAL 3

/*
 * The process's CPU engine, created on first use and kept until exit;
 * NULL when oneDNN refuses to create one.  Thread-safe.
 */
dnnl_engine_t bms__dnnl_engine(void);

/* Make the calling thread's OpenMP team (oneDNN's threads) n wide. */
void bms__dnnl_use_threads(int n);

/*
 * Set fused as an eltwise post-op of attr (nothing for ACT_NONE).
 * BMS_ERR_INTERNAL when oneDNN refuses.
 */
enum bms_status bms__dnnl_set_fused(dnnl_primitive_attr_t attr,
                                    const struct bms__fused *fused);

/* A row-major F32 descriptor of ndims (1 to 6) dims: abc, abcd, ... */
dnnl_status_t bms__dnnl_plain_md(dnnl_memory_desc_t *md, int ndims,
                                 const dnnl_dims_t dims);

/* Execute prim on a new stream and wait for it; BMS_ERR_INTERNAL when
 * oneDNN fails. */
enum bms_status bms__dnnl_execute(const_dnnl_primitive_t prim, int n_args,
                                  const dnnl_exec_arg_t *args);

/*
 * One convolution as run sees it: plain NCHW-style tensors (N, C, spatial
 * dims row-major), ONNX's window numbers.  Every field is an int64_t, so
 * that two problems compare with memcmp.
 */
struct bms__conv_problem {
    int64_t n_spatial;                     /* 1 to BMS__DNNL_MAX_SPATIAL */
    int64_t n;                             /* images */
    int64_t c;                             /* input channels */
    int64_t m;                             /* output channels */
    int64_t group;
    int64_t in[BMS__DNNL_MAX_SPATIAL];
    int64_t out[BMS__DNNL_MAX_SPATIAL];
    int64_t kernel[BMS__DNNL_MAX_SPATIAL];
    int64_t strides[BMS__DNNL_MAX_SPATIAL];
    int64_t dilations[BMS__DNNL_MAX_SPATIAL];      /* ONNX: 1 is dense */
    int64_t pad_begin[BMS__DNNL_MAX_SPATIAL];
    int64_t pad_end[BMS__DNNL_MAX_SPATIAL];
    int64_t has_bias;
    int64_t w_const;             /* W holds the same values on every run */
    int64_t n_threads;
};

struct bms__dnnl_conv_entry;

struct bms__dnnl_conv {
    pthread_mutex_t lock;                  /* guards head */
    struct bms__dnnl_conv_entry *head;
};

/* An empty cache.  BMS_ERR_INTERNAL when the mutex cannot be made. */
enum bms_status bms__dnnl_conv_init(struct bms__dnnl_conv *cache);

/* Release every entry and the mutex; no run may be in flight. */
void bms__dnnl_conv_fini(struct bms__dnnl_conv *cache);

/*
 * Run problem pr on oneDNN: y (plain, [n, m, out...]) = conv(x, w) + b,
 * then fused.  w is [m, c/group, kernel...] and b [m] or NULL (has_bias).
 * With pr->w_const the weights are reordered once, on the first run of
 * each problem, and the cached copy is used from then on (which also
 * makes the Winograd algorithm worth trying for 3x3 kernels); only set it
 * when w holds the same values on every run.  Temporary buffers come from
 * ctx's scratch.  BMS_ERR_UNSUPPORTED (leaving y untouched) when oneDNN has no
 * primitive for the problem, so that the caller computes it another way;
 * BMS_ERR_NOMEM; BMS_ERR_INTERNAL when oneDNN fails.  Thread-safe.
 */
enum bms_status bms__dnnl_conv_run(struct bms__dnnl_conv *cache,
                                   const struct bms__conv_problem *pr,
                                   const struct bms__fused *fused,
                                   const float *x, const float *w,
                                   const float *b, float *y,
                                   struct bms__ctx *ctx);

/*
 * One MaxPool or AveragePool over plain tensors ([n, c, spatial...] in
 * and out), with ONNX's window numbers after auto_pad and ceil_mode.
 * Every field is an int64_t, so that two problems compare with memcmp.
 */
struct bms__pool_problem {
    int64_t n_spatial;                     /* 1 to BMS__DNNL_MAX_SPATIAL */
    int64_t n;
    int64_t c;
    int64_t is_max;
    int64_t count_include_pad;             /* AveragePool only */
    int64_t in[BMS__DNNL_MAX_SPATIAL];
    int64_t out[BMS__DNNL_MAX_SPATIAL];
    int64_t kernel[BMS__DNNL_MAX_SPATIAL];
    int64_t strides[BMS__DNNL_MAX_SPATIAL];
    int64_t dilations[BMS__DNNL_MAX_SPATIAL];      /* ONNX: 1 is dense */
    int64_t pad_begin[BMS__DNNL_MAX_SPATIAL];
    int64_t pad_end[BMS__DNNL_MAX_SPATIAL];
    int64_t n_threads;
};

struct bms__dnnl_pool_entry;

struct bms__dnnl_pool {
    pthread_mutex_t lock;                  /* guards head */
    struct bms__dnnl_pool_entry *head;
};

/* An empty cache.  BMS_ERR_INTERNAL when the mutex cannot be made. */
enum bms_status bms__dnnl_pool_init(struct bms__dnnl_pool *cache);

/* Release every entry and the mutex; no run may be in flight. */
void bms__dnnl_pool_fini(struct bms__dnnl_pool *cache);

/*
 * Run problem pr on oneDNN's pooling primitive from x into y (both F32,
 * plain).  Padding never takes part in a maximum; an average divides by
 * the elements inside the input, or with count_include_pad by the whole
 * window, which ONNX agrees with only while no window reaches past the
 * padded input (ceil_mode): such problems, and every one oneDNN has no
 * implementation for, give BMS_ERR_UNSUPPORTED with y untouched.
 * BMS_ERR_NOMEM, BMS_ERR_INTERNAL when oneDNN fails.  Thread-safe.
 */
enum bms_status bms__dnnl_pool_run(struct bms__dnnl_pool *cache,
                                   const struct bms__pool_problem *pr,
                                   const float *x, float *y,
                                   struct bms__ctx *ctx);

#endif
