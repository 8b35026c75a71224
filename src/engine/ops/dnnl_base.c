/*
 * What every oneDNN-based kernel shares: one CPU engine for the process,
 * OpenMP's per-thread team size (oneDNN here runs its threads on OpenMP,
 * which sizes each parallel region from the calling thread's setting),
 * fused activations as eltwise post-ops, and execution on a stream.
 */
#include <omp.h>

#include "engine/ops/dnnl.h"

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;        /* NULL when creation failed */


static void engine_create(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        engine = NULL;
    }
}


dnnl_engine_t bms__dnnl_engine(void)
{
    pthread_once(&engine_once, engine_create);
    return engine;
}


/* Another kernel (blas.c) changes the same setting, so read it back
 * rather than remembering what was set here. */
void bms__dnnl_use_threads(int n)
{
    n = n >= 1 ? n : 1;
    if (omp_get_max_threads() != n) {
        omp_set_num_threads(n);
    }
}


enum bms_status bms__dnnl_set_fused(dnnl_primitive_attr_t attr,
                                    const struct bms__fused *fused)
{
    dnnl_alg_kind_t alg = dnnl_eltwise_relu;
    float alpha = 0.0f;
    float beta = 0.0f;
    dnnl_post_ops_t ops = NULL;
    dnnl_status_t st;

    switch (fused->act) {
    case BMS__ACT_NONE:
        return BMS_OK;
    case BMS__ACT_RELU:
        break;
    case BMS__ACT_LEAKY_RELU:
        alpha = fused->alpha;              /* the negative slope */
        break;
    case BMS__ACT_CLIP:
        alg = dnnl_eltwise_clip;           /* min(max(x, alpha), beta) */
        alpha = fused->alpha;
        beta = fused->beta;
        break;
    case BMS__ACT_SIGMOID:
        alg = dnnl_eltwise_logistic;
        break;
    case BMS__ACT_TANH:
        alg = dnnl_eltwise_tanh;
        break;
    }
    st = dnnl_post_ops_create(&ops);
    if (st == dnnl_success) {
        st = dnnl_post_ops_append_eltwise(ops, 1.0f, alg, alpha, beta);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    if (ops != NULL) {
        dnnl_post_ops_destroy(ops);
    }
    return st == dnnl_success ? BMS_OK : BMS_ERR_INTERNAL;
}


dnnl_status_t bms__dnnl_plain_md(dnnl_memory_desc_t *md, int ndims,
                                 const dnnl_dims_t dims)
{
    static const dnnl_format_tag_t tags[] = {
        dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd,
        dnnl_abcde, dnnl_abcdef
    };

    if (ndims < 1 || ndims > 6) {
        return dnnl_invalid_arguments;
    }
    return dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32,
                                        tags[ndims]);
}


enum bms_status bms__dnnl_execute(const_dnnl_primitive_t prim, int n_args,
                                  const dnnl_exec_arg_t *args)
{
    dnnl_stream_t stream;
    dnnl_status_t st;

    st = dnnl_stream_create(&stream, bms__dnnl_engine(),
                            dnnl_stream_default_flags);
    if (st != dnnl_success) {
        return BMS_ERR_INTERNAL;
    }
    st = dnnl_primitive_execute(prim, stream, n_args, args);
    if (st == dnnl_success) {
        st = dnnl_stream_wait(stream);
    }
    dnnl_stream_destroy(stream);
    return st == dnnl_success ? BMS_OK : BMS_ERR_INTERNAL;
}
