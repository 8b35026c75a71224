/*
 * The model's memory pool: a list of separate aligned allocations, each
 * with a small header in front, all freed at once by bms__pool_fini (the
 * optimiser gives single ones back early with bms__pool_free).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"

/* The header is padded to 64 bytes so the memory after it stays aligned. */
struct bms__pool_block {
    struct bms__pool_block *next;
    char pad[64 - sizeof(void *)];
};


void *bms__pool_alloc(struct bms__pool *pool, size_t size)
{
    struct bms__pool_block *block;
    size_t total;

    if (size > SIZE_MAX - 2 * sizeof(*block)) {
        return NULL;
    }
    total = (sizeof(*block) + size + 63) & ~(size_t)63;
    block = aligned_alloc(64, total);
    if (block == NULL) {
        return NULL;
    }
    memset(block, 0, total);
    block->next = pool->head;
    pool->head = block;
    return block + 1;
}


char *bms__pool_strdup(struct bms__pool *pool, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    char *copy = bms__pool_alloc(pool, len + 1);

    if (copy != NULL && len > 0) {
        memcpy(copy, s, len);
    }
    return copy;
}


void bms__pool_free(struct bms__pool *pool, void *p)
{
    struct bms__pool_block **link = &pool->head;

    if (p == NULL) {
        return;
    }
    while (*link != NULL) {
        struct bms__pool_block *block = *link;

        if ((void *)(block + 1) == p) {
            *link = block->next;
            free(block);
            return;
        }
        link = &block->next;
    }
}


void bms__pool_fini(struct bms__pool *pool)
{
    struct bms__pool_block *block = pool->head;

    while (block != NULL) {
        struct bms__pool_block *next = block->next;

        free(block);
        block = next;
    }
    pool->head = NULL;
}
