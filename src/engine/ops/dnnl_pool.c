/*
 * MaxPool and AveragePool on oneDNN's pooling primitive, with a per-node
 * cache of primitives keyed by the whole problem (see ops/dnnl.h).
 *
 * Unlike a convolution, pooling runs at memory speed in any layout, so
 * the primitive works on bms's plain tensors directly: no reorders.  The
 * right padding handed to oneDNN is what the output dims imply, which
 * covers ceil_mode's windows that reach past the padded input.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/dnnl.h"

struct bms__dnnl_pool_entry {
    struct bms__dnnl_pool_entry *next;
    struct bms__pool_problem pr;
    int supported;               /* 0: use another way */
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src_md;
    dnnl_memory_desc_t dst_md;
    dnnl_memory_desc_t pad_md;   /* the primitive's scratchpad */
};


/* Right padding that makes oneDNN's output dims come out as pr->out: at
 * least the model's, more where ceil_mode adds a partial window. */
static int64_t pad_right(const struct bms__pool_problem *pr, int d)
{
    int64_t span = (pr->kernel[d] - 1) * pr->dilations[d] + 1;
    int64_t need = (pr->out[d] - 1) * pr->strides[d] + span - pr->in[d] -
                   pr->pad_begin[d];

    return need > pr->pad_end[d] ? need : pr->pad_end[d];
}


static dnnl_status_t pool_pd_create(struct bms__dnnl_pool_entry *e,
                                    dnnl_primitive_desc_t *pd)
{
    const struct bms__pool_problem *pr = &e->pr;
    int ndims = (int)pr->n_spatial + 2;
    dnnl_dims_t src = {pr->n, pr->c}, dst = {pr->n, pr->c};
    dnnl_dims_t strides, kernel, dil, pad_l, pad_r;
    dnnl_alg_kind_t alg = pr->is_max ? dnnl_pooling_max
                        : pr->count_include_pad
                            ? dnnl_pooling_avg_include_padding
                            : dnnl_pooling_avg_exclude_padding;
    dnnl_pooling_v2_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st;

    for (int d = 0; d < pr->n_spatial; d++) {
        src[2 + d] = pr->in[d];
        dst[2 + d] = pr->out[d];
        strides[d] = pr->strides[d];
        kernel[d] = pr->kernel[d];
        dil[d] = pr->dilations[d] - 1;
        pad_l[d] = pr->pad_begin[d];
        pad_r[d] = pad_right(pr, d);
    }
    st = bms__dnnl_plain_md(&e->src_md, ndims, src);
    if (st == dnnl_success) {
        st = bms__dnnl_plain_md(&e->dst_md, ndims, dst);
    }
    if (st == dnnl_success) {
        st = dnnl_pooling_v2_forward_desc_init(
            &desc, dnnl_forward_inference, alg, &e->src_md, &e->dst_md,
            strides, kernel, dil, pad_l, pad_r);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_attr_create(&attr);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_attr_set_scratchpad_mode(
            attr, dnnl_scratchpad_mode_user);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_desc_create(pd, &desc, attr, bms__dnnl_engine(),
                                        NULL);
    }
    dnnl_primitive_attr_destroy(attr);
    return st;
}


/* Whether ONNX and oneDNN agree on pr's averages (see ops/dnnl.h). */
static int pool_agrees(const struct bms__pool_problem *pr)
{
    if (pr->n_spatial < 1 || pr->n_spatial > BMS__DNNL_MAX_SPATIAL) {
        return 0;
    }
    for (int d = 0; d < pr->n_spatial; d++) {
        if (!pr->is_max && pr->count_include_pad &&
            pad_right(pr, d) > pr->pad_end[d]) {
            return 0;
        }
    }
    return 1;
}


/* A new entry for pr, supported 0 when oneDNN or ONNX's rules say no. */
static enum bms_status entry_create(const struct bms__pool_problem *pr,
                                    struct bms__dnnl_pool_entry **out)
{
    struct bms__dnnl_pool_entry *e = calloc(1, sizeof(*e));
    dnnl_primitive_desc_t pd = NULL;

    if (e == NULL) {
        return BMS_ERR_NOMEM;
    }
    e->pr = *pr;
    bms__dnnl_use_threads((int)pr->n_threads);
    if (pool_agrees(pr) && pool_pd_create(e, &pd) == dnnl_success) {
        e->pad_md = *dnnl_primitive_desc_query_md(
            pd, dnnl_query_scratchpad_md, 0);
        if (dnnl_primitive_create(&e->prim, pd) != dnnl_success) {
            dnnl_primitive_desc_destroy(pd);
            free(e);
            return BMS_ERR_INTERNAL;
        }
        e->supported = 1;
    }
    dnnl_primitive_desc_destroy(pd);
    *out = e;
    return BMS_OK;
}


static enum bms_status entry_find(struct bms__dnnl_pool *cache,
                                  const struct bms__pool_problem *pr,
                                  struct bms__dnnl_pool_entry **out)
{
    struct bms__dnnl_pool_entry *e;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&cache->lock);
    for (e = cache->head; e != NULL; e = e->next) {
        if (memcmp(&e->pr, pr, sizeof(*pr)) == 0) {
            break;
        }
    }
    if (e == NULL) {
        rc = entry_create(pr, &e);
        if (rc == BMS_OK) {
            e->next = cache->head;
            cache->head = e;
        }
    }
    pthread_mutex_unlock(&cache->lock);
    if (rc == BMS_OK) {
        *out = e;
    }
    return rc;
}


enum bms_status bms__dnnl_pool_init(struct bms__dnnl_pool *cache)
{
    cache->head = NULL;
    return pthread_mutex_init(&cache->lock, NULL) == 0 ? BMS_OK
                                                       : BMS_ERR_INTERNAL;
}


void bms__dnnl_pool_fini(struct bms__dnnl_pool *cache)
{
    struct bms__dnnl_pool_entry *e = cache->head;

    while (e != NULL) {
        struct bms__dnnl_pool_entry *next = e->next;

        dnnl_primitive_destroy(e->prim);
        free(e);
        e = next;
    }
    cache->head = NULL;
    pthread_mutex_destroy(&cache->lock);
}


enum bms_status bms__dnnl_pool_run(struct bms__dnnl_pool *cache,
                                   const struct bms__pool_problem *pr,
                                   const float *x, float *y,
                                   struct bms__ctx *ctx)
{
    dnnl_engine_t eng = bms__dnnl_engine();
    struct bms__dnnl_pool_entry *e;
    dnnl_memory_t src = NULL, dst = NULL, pad = NULL;
    size_t pad_size;
    void *pad_buf;
    enum bms_status rc;

    if (eng == NULL) {
        return BMS_ERR_UNSUPPORTED;
    }
    rc = entry_find(cache, pr, &e);
    if (rc != BMS_OK) {
        return rc;
    }
    if (!e->supported) {
        return BMS_ERR_UNSUPPORTED;
    }
    pad_size = dnnl_memory_desc_get_size(&e->pad_md);
    pad_buf = pad_size > 0 ? bms__ctx_scratch(ctx, pad_size) : NULL;
    if (pad_size > 0 && pad_buf == NULL) {
        return BMS_ERR_NOMEM;
    }
    /* oneDNN takes a non-const handle; the source is only read. */
    rc = BMS_ERR_INTERNAL;
    if (dnnl_memory_create(&src, &e->src_md, eng, (void *)x) ==
            dnnl_success &&
        dnnl_memory_create(&dst, &e->dst_md, eng, y) == dnnl_success &&
        dnnl_memory_create(&pad, &e->pad_md, eng, pad_buf) ==
            dnnl_success) {
        bms__dnnl_use_threads((int)pr->n_threads);
        rc = bms__dnnl_execute(e->prim, 3, (const dnnl_exec_arg_t[]){
            {DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst},
            {DNNL_ARG_SCRATCHPAD, pad}});
    }
    dnnl_memory_destroy(pad);
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(src);
    return rc;
}
