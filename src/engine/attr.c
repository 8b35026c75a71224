/*
 * Attribute look-ups for operators, and the kernels' scratch memory.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/graph.h"


const struct bms__attr *bms__attr_find(const struct bms__node *node,
                                       const char *name)
{
    for (int i = 0; i < node->n_attrs; i++) {
        if (strcmp(node->attrs[i].name, name) == 0) {
            return &node->attrs[i];
        }
    }
    return NULL;
}


static const struct bms__attr *find_typed(const struct bms__node *node,
                                          const char *name,
                                          enum bms__attr_type type)
{
    const struct bms__attr *a = bms__attr_find(node, name);

    return a != NULL && a->type == type ? a : NULL;
}


int64_t bms__attr_int(const struct bms__node *node, const char *name,
                      int64_t dflt)
{
    const struct bms__attr *a = find_typed(node, name, BMS__ATTR_INT);

    return a != NULL ? a->i : dflt;
}


float bms__attr_float(const struct bms__node *node, const char *name,
                      float dflt)
{
    const struct bms__attr *a = find_typed(node, name, BMS__ATTR_FLOAT);

    return a != NULL ? a->f : dflt;
}


const int64_t *bms__attr_ints(const struct bms__node *node, const char *name,
                              int *n)
{
    const struct bms__attr *a = find_typed(node, name, BMS__ATTR_INTS);

    *n = a != NULL ? a->n : 0;
    return a != NULL ? a->ints : NULL;
}


const float *bms__attr_floats(const struct bms__node *node, const char *name,
                              int *n)
{
    const struct bms__attr *a = find_typed(node, name, BMS__ATTR_FLOATS);

    *n = a != NULL ? a->n : 0;
    return a != NULL ? a->floats : NULL;
}


int bms__attr_string(const struct bms__node *node, const char *name,
                     char *buf, size_t buf_size)
{
    const struct bms__attr *a = find_typed(node, name, BMS__ATTR_STRING);
    size_t n;

    if (a == NULL || buf_size == 0) {
        return 0;
    }
    n = a->s_len < buf_size - 1 ? a->s_len : buf_size - 1;
    memcpy(buf, a->s, n);
    buf[n] = '\0';
    return 1;
}


void *bms__ctx_scratch(struct bms__ctx *ctx, size_t size)
{
    void *p;

    if (size <= ctx->scratch_size) {
        return ctx->scratch;
    }
    /* Align the size to 64 bytes: kernels may vectorise over it. */
    size = (size + 63) & ~(size_t)63;
    p = aligned_alloc(64, size);
    if (p == NULL) {
        return NULL;
    }
    free(ctx->scratch);
    ctx->scratch = p;
    ctx->scratch_size = size;
    return p;
}


void bms__ctx_fini(struct bms__ctx *ctx)
{
    free(ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_size = 0;
}
