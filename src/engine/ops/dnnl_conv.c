/*
 * Conv on oneDNN's convolution primitive, with a per-node cache of
 * primitives keyed by the whole problem (see ops/dnnl.h).
 *
 * The primitive picks its own layouts (format tag any): channels-last or
 * channel-blocked (nChw16c) on AVX-512, where its kernels ran 1.3 to 1.5
 * times faster than the GEMM-based one that plain NCHW leaves, and 3x3
 * Winograd 2 to 3 times faster still (up to 256 channels: see
 * wants_winograd).  bms's tensors are plain, so the source is reordered in
 * and the destination out through scratch memory: about 0.05 ms a layer
 * in ResNet-18, a tenth of what the layout gains.  The weights are
 * reordered once per problem when they are constant, and on every run
 * otherwise.  Bias and the fused activation are applied by the
 * primitive itself (a post-op), while the output is still in cache.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/dnnl.h"

#define ALIGN 64                           /* bytes, for every buffer */
#define MAX_MEMS 12                        /* memory objects of one run */

/* Most input times output channels of a Winograd convolution: 256 x 256,
 * whose transformed weights take 9 MB. */
#define WINOGRAD_MAX_CM ((int64_t)256 * 256)

/* A layout change between bms's plain tensor and the primitive's. */
struct reorder {
    dnnl_primitive_t prim;       /* NULL when the layouts agree */
    dnnl_memory_desc_t md;       /* the primitive's side */
    dnnl_memory_desc_t pad_md;   /* the reorder's scratchpad */
    size_t size;                 /* bytes of the primitive's side */
};

struct bms__dnnl_conv_entry {
    struct bms__dnnl_conv_entry *next;
    struct bms__conv_problem pr;
    int supported;               /* 0: oneDNN refused, use another way */
    dnnl_primitive_t conv;
    dnnl_memory_desc_t src_user; /* plain layouts as bms stores them */
    dnnl_memory_desc_t wei_user;
    dnnl_memory_desc_t dst_user;
    dnnl_memory_desc_t bias_md;
    dnnl_memory_desc_t pad_md;   /* the convolution's scratchpad */
    struct reorder src;          /* user -> primitive */
    struct reorder wei;          /* user -> primitive */
    struct reorder dst;          /* primitive -> user */
    void *wei_cached;            /* weights in wei.md, or NULL */
};

/* The memory objects of one run, destroyed together. */
struct mems {
    dnnl_memory_t m[MAX_MEMS];
    int n;
};


static size_t align_up(size_t size)
{
    return (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}


static void entry_destroy(struct bms__dnnl_conv_entry *e)
{
    if (e == NULL) {
        return;
    }
    dnnl_primitive_destroy(e->conv);
    dnnl_primitive_destroy(e->src.prim);
    dnnl_primitive_destroy(e->wei.prim);
    dnnl_primitive_destroy(e->dst.prim);
    free(e->wei_cached);
    free(e);
}


/* The dims oneDNN wants: weights grow a leading group dim when grouped,
 * and dilation counts the gaps (ONNX's dilation - 1). */
static void problem_dims(const struct bms__conv_problem *pr,
                         dnnl_dims_t src, dnnl_dims_t wei, dnnl_dims_t dst,
                         dnnl_dims_t strides, dnnl_dims_t dil,
                         dnnl_dims_t pad_l, dnnl_dims_t pad_r)
{
    int g = pr->group > 1;
    int ns = (int)pr->n_spatial;

    src[0] = pr->n;
    src[1] = pr->c;
    dst[0] = pr->n;
    dst[1] = pr->m;
    wei[0] = pr->group;
    wei[g] = pr->m / pr->group;
    wei[g + 1] = pr->c / pr->group;
    for (int d = 0; d < ns; d++) {
        src[2 + d] = pr->in[d];
        dst[2 + d] = pr->out[d];
        wei[g + 2 + d] = pr->kernel[d];
        strides[d] = pr->strides[d];
        dil[d] = pr->dilations[d] - 1;
        pad_l[d] = pr->pad_begin[d];
        pad_r[d] = pr->pad_end[d];
    }
}


/* A reorder from `from` to `to` with a user scratchpad, or none when the
 * layouts agree; r->md is whichever side is the primitive's. */
static dnnl_status_t reorder_create(struct reorder *r,
                                    const dnnl_memory_desc_t *from,
                                    const dnnl_memory_desc_t *to,
                                    const dnnl_memory_desc_t *prim_side)
{
    dnnl_engine_t eng = bms__dnnl_engine();
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;

    r->md = *prim_side;
    r->size = dnnl_memory_desc_get_size(prim_side);
    if (dnnl_memory_desc_equal(from, to)) {
        return dnnl_success;
    }
    st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success) {
        st = dnnl_primitive_attr_set_scratchpad_mode(
            attr, dnnl_scratchpad_mode_user);
    }
    if (st == dnnl_success) {
        st = dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng,
                                                attr);
    }
    if (st == dnnl_success) {
        r->pad_md = *dnnl_primitive_desc_query_md(
            pd, dnnl_query_scratchpad_md, 0);
        st = dnnl_primitive_create(&r->prim, pd);
    }
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return st;
}


/*
 * The convolution's descriptor for e->pr with layouts left to oneDNN.
 * dnnl_unimplemented (or another refusal) when no implementation fits.
 */
static dnnl_status_t conv_pd_create(struct bms__dnnl_conv_entry *e,
                                    const struct bms__fused *fused,
                                    dnnl_alg_kind_t alg,
                                    dnnl_primitive_desc_t *pd)
{
    const struct bms__conv_problem *pr = &e->pr;
    int ndims = (int)pr->n_spatial + 2;
    int wei_ndims = ndims + (pr->group > 1);
    dnnl_dims_t src, wei, dst, strides, dil, pad_l, pad_r;
    dnnl_dims_t bias = {pr->m};
    dnnl_memory_desc_t src_any, wei_any, dst_any;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st;

    problem_dims(pr, src, wei, dst, strides, dil, pad_l, pad_r);
    st = bms__dnnl_plain_md(&e->src_user, ndims, src);
    if (st == dnnl_success) {
        st = bms__dnnl_plain_md(&e->wei_user, wei_ndims, wei);
    }
    if (st == dnnl_success) {
        st = bms__dnnl_plain_md(&e->dst_user, ndims, dst);
    }
    if (st == dnnl_success) {
        st = bms__dnnl_plain_md(&e->bias_md, 1, bias);
    }
    if (st == dnnl_success) {
        dnnl_memory_desc_init_by_tag(&src_any, ndims, src, dnnl_f32,
                                     dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&wei_any, wei_ndims, wei, dnnl_f32,
                                     dnnl_format_tag_any);
        st = dnnl_memory_desc_init_by_tag(&dst_any, ndims, dst, dnnl_f32,
                                          dnnl_format_tag_any);
    }
    if (st == dnnl_success) {
        st = dnnl_dilated_convolution_forward_desc_init(
            &cd, dnnl_forward_inference, alg, &src_any,
            &wei_any, pr->has_bias ? &e->bias_md : NULL, &dst_any, strides,
            dil, pad_l, pad_r);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_attr_create(&attr);
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_attr_set_scratchpad_mode(
            attr, dnnl_scratchpad_mode_user);
    }
    if (st == dnnl_success && bms__dnnl_set_fused(attr, fused) != BMS_OK) {
        st = dnnl_runtime_error;
    }
    if (st == dnnl_success) {
        st = dnnl_primitive_desc_create(pd, &cd, attr, bms__dnnl_engine(),
                                        NULL);
    }
    dnnl_primitive_attr_destroy(attr);
    return st;
}


/* Reorder w into a buffer of the entry's own, once. */
static enum bms_status cache_weights(struct bms__dnnl_conv_entry *e,
                                     const float *w)
{
    dnnl_engine_t eng = bms__dnnl_engine();
    dnnl_memory_t from = NULL;
    dnnl_memory_t to = NULL;
    dnnl_memory_t pad = NULL;
    void *pad_buf = NULL;
    size_t pad_size = dnnl_memory_desc_get_size(&e->wei.pad_md);
    enum bms_status rc = BMS_ERR_INTERNAL;

    e->wei_cached = aligned_alloc(ALIGN, align_up(e->wei.size));
    pad_buf = pad_size > 0 ? aligned_alloc(ALIGN, align_up(pad_size))
                           : NULL;
    if (e->wei_cached == NULL || (pad_size > 0 && pad_buf == NULL)) {
        rc = BMS_ERR_NOMEM;
        goto out;
    }
    /* oneDNN takes a non-const handle; a reorder's source is only read. */
    if (dnnl_memory_create(&from, &e->wei_user, eng, (void *)w) !=
            dnnl_success ||
        dnnl_memory_create(&to, &e->wei.md, eng, e->wei_cached) !=
            dnnl_success ||
        dnnl_memory_create(&pad, &e->wei.pad_md, eng, pad_buf) !=
            dnnl_success) {
        goto out;
    }
    rc = bms__dnnl_execute(e->wei.prim, 3, (const dnnl_exec_arg_t[]){
        {DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
        {DNNL_ARG_SCRATCHPAD, pad}});
out:
    dnnl_memory_destroy(pad);
    dnnl_memory_destroy(to);
    dnnl_memory_destroy(from);
    free(pad_buf);
    if (rc != BMS_OK) {
        free(e->wei_cached);
        e->wei_cached = NULL;
    }
    return rc;
}


/*
 * Whether Winograd may beat the direct algorithm: a dense 3x3 over enough
 * channels (at 16 the transforms already pay on AVX-512), with weights
 * constant, since their transform costs more than the convolution.  Its
 * transformed weights take 4 times the plain ones (6x6 tiles for 3x3), so
 * wide layers keep the direct algorithm: in ResNet-18 the three 512x512
 * layers would hold 113 MB of weights and a 49 MB scratchpad, for a model
 * about a tenth faster at batch 8.
 */
static int wants_winograd(const struct bms__conv_problem *pr)
{
    return pr->w_const && pr->n_spatial == 2 && pr->group == 1 &&
           pr->c >= 16 && pr->m >= 16 &&
           pr->c * pr->m <= WINOGRAD_MAX_CM && pr->kernel[0] == 3 &&
           pr->kernel[1] == 3 && pr->strides[0] == 1 &&
           pr->strides[1] == 1 && pr->dilations[0] == 1 &&
           pr->dilations[1] == 1;
}


/*
 * A new entry for pr: the primitive and its reorders, or supported 0 when
 * oneDNN has no implementation.  Failures other than a refusal return an
 * error and no entry.
 */
static enum bms_status entry_create(const struct bms__conv_problem *pr,
                                    const struct bms__fused *fused,
                                    const float *w,
                                    struct bms__dnnl_conv_entry **out)
{
    struct bms__dnnl_conv_entry *e = calloc(1, sizeof(*e));
    dnnl_primitive_desc_t pd = NULL;
    enum bms_status rc = BMS_ERR_INTERNAL;
    dnnl_status_t st = dnnl_unimplemented;

    if (e == NULL) {
        return BMS_ERR_NOMEM;
    }
    e->pr = *pr;
    bms__dnnl_use_threads((int)pr->n_threads);
    if (wants_winograd(pr)) {
        st = conv_pd_create(e, fused, dnnl_convolution_winograd, &pd);
    }
    if (st != dnnl_success) {
        st = conv_pd_create(e, fused, dnnl_convolution_direct, &pd);
    }
    if (st != dnnl_success) {
        /* No implementation for this problem: remember the refusal. */
        dnnl_primitive_desc_destroy(pd);
        *out = e;
        return BMS_OK;
    }
    e->pad_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md,
                                              0);
    st = dnnl_primitive_create(&e->conv, pd);
    if (st == dnnl_success) {
        st = reorder_create(&e->src, &e->src_user,
                            dnnl_primitive_desc_query_md(
                                pd, dnnl_query_src_md, 0),
                            dnnl_primitive_desc_query_md(
                                pd, dnnl_query_src_md, 0));
    }
    if (st == dnnl_success) {
        st = reorder_create(&e->wei, &e->wei_user,
                            dnnl_primitive_desc_query_md(
                                pd, dnnl_query_weights_md, 0),
                            dnnl_primitive_desc_query_md(
                                pd, dnnl_query_weights_md, 0));
    }
    if (st == dnnl_success) {
        st = reorder_create(&e->dst,
                            dnnl_primitive_desc_query_md(
                                pd, dnnl_query_dst_md, 0),
                            &e->dst_user,
                            dnnl_primitive_desc_query_md(
                                pd, dnnl_query_dst_md, 0));
    }
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        goto out;
    }
    rc = BMS_OK;
    if (pr->w_const && e->wei.prim != NULL) {
        rc = cache_weights(e, w);
    }
    if (rc == BMS_OK) {
        e->supported = 1;
    }
out:
    if (rc != BMS_OK) {
        entry_destroy(e);
        return rc;
    }
    *out = e;
    return BMS_OK;
}


/* The entry for pr, made on first use; the lock is held only here. */
static enum bms_status entry_find(struct bms__dnnl_conv *cache,
                                  const struct bms__conv_problem *pr,
                                  const struct bms__fused *fused,
                                  const float *w,
                                  struct bms__dnnl_conv_entry **out)
{
    struct bms__dnnl_conv_entry *e;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&cache->lock);
    for (e = cache->head; e != NULL; e = e->next) {
        if (memcmp(&e->pr, pr, sizeof(*pr)) == 0) {
            break;
        }
    }
    if (e == NULL) {
        rc = entry_create(pr, fused, w, &e);
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


enum bms_status bms__dnnl_conv_init(struct bms__dnnl_conv *cache)
{
    cache->head = NULL;
    return pthread_mutex_init(&cache->lock, NULL) == 0 ? BMS_OK
                                                       : BMS_ERR_INTERNAL;
}


void bms__dnnl_conv_fini(struct bms__dnnl_conv *cache)
{
    struct bms__dnnl_conv_entry *e = cache->head;

    while (e != NULL) {
        struct bms__dnnl_conv_entry *next = e->next;

        entry_destroy(e);
        e = next;
    }
    cache->head = NULL;
    pthread_mutex_destroy(&cache->lock);
}


/* A memory object over handle, kept in ms for release. */
static dnnl_memory_t mem(struct mems *ms, const dnnl_memory_desc_t *md,
                         void *handle)
{
    dnnl_memory_t m = NULL;

    if (ms->n < MAX_MEMS &&
        dnnl_memory_create(&m, md, bms__dnnl_engine(), handle) ==
            dnnl_success) {
        ms->m[ms->n++] = m;
    }
    return m;
}


/* Run one reorder from `from` to `to` with its scratchpad at pad. */
static enum bms_status run_reorder(struct mems *ms, const struct reorder *r,
                                   dnnl_memory_t from, dnnl_memory_t to,
                                   void *pad)
{
    dnnl_memory_t pad_mem = mem(ms, &r->pad_md, pad);

    if (from == NULL || to == NULL || pad_mem == NULL) {
        return BMS_ERR_INTERNAL;
    }
    return bms__dnnl_execute(r->prim, 3, (const dnnl_exec_arg_t[]){
        {DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
        {DNNL_ARG_SCRATCHPAD, pad_mem}});
}


/* Largest scratchpad any step of a run needs: the steps run in turn. */
static size_t pad_size(const struct bms__dnnl_conv_entry *e)
{
    const struct reorder *rs[] = {&e->src, &e->wei, &e->dst};
    size_t size = dnnl_memory_desc_get_size(&e->pad_md);

    for (int i = 0; i < 3; i++) {
        size_t s = rs[i]->prim != NULL
                       ? dnnl_memory_desc_get_size(&rs[i]->pad_md) : 0;

        size = s > size ? s : size;
    }
    return size;
}


/* The steps of one run over buffers carved from scratch. */
static enum bms_status conv_execute(const struct bms__dnnl_conv_entry *e,
                                    const float *x, const float *w,
                                    const float *b, float *y, char *scratch)
{
    int wei_now = e->wei.prim != NULL && e->wei_cached == NULL;
    char *src_buf = scratch;
    char *dst_buf = src_buf + (e->src.prim ? align_up(e->src.size) : 0);
    char *wei_buf = dst_buf + (e->dst.prim ? align_up(e->dst.size) : 0);
    char *pad = wei_buf + (wei_now ? align_up(e->wei.size) : 0);
    struct mems ms = {.n = 0};
    dnnl_memory_t src, wei, dst, bias = NULL, pad_mem;
    enum bms_status rc = BMS_OK;

    /* oneDNN takes non-const handles; sources are only read. */
    src = mem(&ms, &e->src_user, (void *)x);
    wei = mem(&ms, &e->wei_user, (void *)w);
    dst = mem(&ms, &e->dst_user, y);
    if (e->src.prim != NULL) {
        dnnl_memory_t user = src;

        src = mem(&ms, &e->src.md, src_buf);
        rc = run_reorder(&ms, &e->src, user, src, pad);
    }
    if (rc == BMS_OK && wei_now) {
        dnnl_memory_t user = wei;

        wei = mem(&ms, &e->wei.md, wei_buf);
        rc = run_reorder(&ms, &e->wei, user, wei, pad);
    } else if (rc == BMS_OK && e->wei.prim != NULL) {
        wei = mem(&ms, &e->wei.md, e->wei_cached);
    }
    if (b != NULL) {
        bias = mem(&ms, &e->bias_md, (void *)b);
    }
    pad_mem = mem(&ms, &e->pad_md, pad);
    if (rc == BMS_OK && (src == NULL || wei == NULL || dst == NULL ||
                         pad_mem == NULL || (b != NULL && bias == NULL))) {
        rc = BMS_ERR_INTERNAL;
    }
    if (rc == BMS_OK) {
        dnnl_memory_t out = e->dst.prim ? mem(&ms, &e->dst.md, dst_buf)
                                        : dst;
        dnnl_exec_arg_t args[] = {
            {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei},
            {DNNL_ARG_DST, out}, {DNNL_ARG_SCRATCHPAD, pad_mem},
            {DNNL_ARG_BIAS, bias}
        };

        rc = out == NULL ? BMS_ERR_INTERNAL
                         : bms__dnnl_execute(e->conv, b != NULL ? 5 : 4,
                                             args);
        if (rc == BMS_OK && e->dst.prim != NULL) {
            rc = run_reorder(&ms, &e->dst, out, dst, pad);
        }
    }
    for (int i = ms.n - 1; i >= 0; i--) {
        dnnl_memory_destroy(ms.m[i]);
    }
    return rc;
}


enum bms_status bms__dnnl_conv_run(struct bms__dnnl_conv *cache,
                                   const struct bms__conv_problem *pr,
                                   const struct bms__fused *fused,
                                   const float *x, const float *w,
                                   const float *b, float *y,
                                   struct bms__ctx *ctx)
{
    struct bms__dnnl_conv_entry *e;
    size_t size;
    char *scratch;
    enum bms_status rc;

    if (bms__dnnl_engine() == NULL || pr->n_spatial < 1 ||
        pr->n_spatial > BMS__DNNL_MAX_SPATIAL) {
        return BMS_ERR_UNSUPPORTED;
    }
    rc = entry_find(cache, pr, fused, w, &e);
    if (rc != BMS_OK) {
        return rc;
    }
    if (!e->supported) {
        return BMS_ERR_UNSUPPORTED;
    }
    size = (e->src.prim ? align_up(e->src.size) : 0) +
           (e->dst.prim ? align_up(e->dst.size) : 0) +
           (e->wei.prim ? align_up(e->wei.size) : 0) +
           align_up(pad_size(e));
    scratch = bms__ctx_scratch(ctx, size);
    if (scratch == NULL) {
        return BMS_ERR_NOMEM;
    }
    bms__dnnl_use_threads((int)pr->n_threads);
    return conv_execute(e, x, w, b, y, scratch);
}
