/*
 * The response cache: a chained hash table of answers, one recency list
 * over every answer and one per model, all under one mutex.
 *
 * The lock is held only to find, link and unlink entries: hashing, the
 * copies into a new entry and the copy of a hit out of one happen
 * outside it.  An entry is reference-counted so that a hit can be copied
 * after the lock is dropped while another thread evicts it; the table
 * holds one reference while the entry is linked.  Entries that leave the
 * table under the lock are freed after it is released.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cache.h"
#include "server/route.h"

#define INITIAL_BUCKETS 1024u        /* a power of two */
#define MAX_BUCKETS ((size_t)1 << 24)

/* A link of a circular doubly linked list with a sentinel head. */
struct link {
    struct link *prev;
    struct link *next;
};

struct model_slot;

/* One answer.  data holds the request body, then the answer. */
struct entry {
    struct entry *hash_next;     /* bucket chain; the free list after */
    struct link lru;             /* the cache's list, newest first */
    struct link by_model;        /* the model's list, newest first */
    struct model_slot *model;
    uint64_t serial;
    uint64_t hash;
    int64_t json_size;           /* the request's; -1: a plain JSON body */
    int64_t answer_json_size;    /* the answer's; -1: plain JSON */
    int64_t expires_us;
    size_t size;                 /* bytes counted against the bounds */
    size_t body_len;
    size_t answer_len;
    atomic_int refs;
    char data[];
};

/* The answers and counters of one model name. */
struct model_slot {
    struct model_slot *next;
    char name[BMS__MODEL_NAME_MAX + 1];
    struct link entries;         /* sentinel of the model's list */
    size_t bytes;
    struct bms__cache_stats stats;
};

struct bms__cache {
    pthread_mutex_t lock;
    size_t max_size;             /* bytes */
    size_t size;                 /* bytes kept now */
    struct entry **buckets;
    size_t n_buckets;            /* a power of two */
    size_t n_entries;
    struct link lru;             /* sentinel of the cache's list */
    struct model_slot *models;
    int64_t (*now_us)(void);
};

#define ENTRY_OF(l, member) \
    ((struct entry *)(void *)((char *)(l) - offsetof(struct entry, member)))


static void link_init(struct link *head)
{
    head->prev = head;
    head->next = head;
}


static void link_remove(struct link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l;
    l->next = l;
}


/* Put l first in the list of head. */
static void link_push_front(struct link *head, struct link *l)
{
    l->next = head->next;
    l->prev = head;
    head->next->prev = l;
    head->next = l;
}


static void entry_unref(struct entry *e)
{
    if (atomic_fetch_sub(&e->refs, 1) == 1) {
        free(e);
    }
}


/* A 64-bit hash of 8-byte words, finished with the splitmix64 mixer so
 * every input bit reaches every output bit. */
static uint64_t hash_bytes(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ull);
    uint64_t w;

    for (; len >= 8; len -= 8, p += 8) {
        memcpy(&w, p, 8);
        h = (h ^ (w * 0xff51afd7ed558ccdull)) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 31;
    }
    w = 0;
    memcpy(&w, p, len);
    h = (h ^ (w * 0xff51afd7ed558ccdull)) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}


void bms__cache_key_init(struct bms__cache_key *key, const char *model,
                         uint64_t serial, const void *body, size_t body_len,
                         int64_t json_size)
{
    /* The header value enters the seed, so that the same bytes split
     * another way land elsewhere (the compare below decides). */
    uint64_t seed = serial ^ ((uint64_t)(json_size + 1) *
                              0xd6e8feb86659fd93ull);

    key->model = model;
    key->serial = serial;
    key->body = body;
    key->body_len = body_len;
    key->json_size = json_size;
    key->hash = hash_bytes(seed, body, body_len);
}


enum bms_status bms__cache_create(size_t max_size, struct bms__cache **out)
{
    struct bms__cache *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return BMS_ERR_NOMEM;
    }
    c->buckets = calloc(INITIAL_BUCKETS, sizeof(*c->buckets));
    if (c->buckets == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->buckets);
        free(c);
        return BMS_ERR_NOMEM;
    }
    c->n_buckets = INITIAL_BUCKETS;
    c->max_size = max_size > 0 ? max_size : BMS__CACHE_DEFAULT_SIZE;
    c->now_us = bms_now_us;
    link_init(&c->lru);
    *out = c;
    return BMS_OK;
}


void bms__cache_destroy(struct bms__cache *cache)
{
    struct model_slot *slot;

    if (cache == NULL) {
        return;
    }
    while (cache->lru.next != &cache->lru) {
        struct entry *e = ENTRY_OF(cache->lru.next, lru);

        link_remove(&e->lru);
        entry_unref(e);
    }
    while ((slot = cache->models) != NULL) {
        cache->models = slot->next;
        free(slot);
    }
    pthread_mutex_destroy(&cache->lock);
    free(cache->buckets);
    free(cache);
}


void bms__cache_set_clock(struct bms__cache *cache, int64_t (*now_us)(void))
{
    cache->now_us = now_us != NULL ? now_us : bms_now_us;
}


/* The slot of model; with create, made when missing (NULL when memory
 * runs out).  Under the lock. */
static struct model_slot *find_slot(struct bms__cache *c, const char *model,
                                    int create)
{
    struct model_slot *slot;

    for (slot = c->models; slot != NULL; slot = slot->next) {
        if (strcmp(slot->name, model) == 0) {
            return slot;
        }
    }
    if (!create || (slot = calloc(1, sizeof(*slot))) == NULL) {
        return NULL;
    }
    snprintf(slot->name, sizeof(slot->name), "%s", model);
    link_init(&slot->entries);
    slot->next = c->models;
    c->models = slot;
    return slot;
}


static struct entry **bucket_of(struct bms__cache *c, uint64_t hash)
{
    return &c->buckets[hash & (c->n_buckets - 1)];
}


/* The entry kept for key, or NULL.  Under the lock. */
static struct entry *find_entry(struct bms__cache *c,
                                const struct bms__cache_key *key)
{
    struct entry *e = *bucket_of(c, key->hash);

    for (; e != NULL; e = e->hash_next) {
        if (e->hash == key->hash && e->serial == key->serial &&
            e->body_len == key->body_len &&
            e->json_size == key->json_size &&
            strcmp(e->model->name, key->model) == 0 &&
            memcmp(e->data, key->body, key->body_len) == 0) {
            return e;
        }
    }
    return NULL;
}


/* Take e out of the table and both lists, and push it on *garbage to be
 * unreferenced after the lock.  Under the lock. */
static void unlink_entry(struct bms__cache *c, struct entry *e,
                         struct entry **garbage)
{
    struct entry **p = bucket_of(c, e->hash);

    while (*p != e) {
        p = &(*p)->hash_next;
    }
    *p = e->hash_next;
    link_remove(&e->lru);
    link_remove(&e->by_model);
    c->size -= e->size;
    c->n_entries--;
    e->model->bytes -= e->size;
    e->model->stats.entries--;
    e->hash_next = *garbage;
    *garbage = e;
}


static void free_garbage(struct entry *garbage)
{
    while (garbage != NULL) {
        struct entry *next = garbage->hash_next;

        entry_unref(garbage);
        garbage = next;
    }
}


/* Double the buckets when the table is fuller than one entry a bucket;
 * when memory runs out the chains only grow longer.  Under the lock. */
static void maybe_grow(struct bms__cache *c)
{
    size_t n = c->n_buckets * 2;
    struct entry **buckets;

    if (c->n_entries <= c->n_buckets || n > MAX_BUCKETS) {
        return;
    }
    buckets = calloc(n, sizeof(*buckets));
    if (buckets == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_buckets; i++) {
        struct entry *e = c->buckets[i];

        while (e != NULL) {
            struct entry *next = e->hash_next;
            struct entry **b = &buckets[e->hash & (n - 1)];

            e->hash_next = *b;
            *b = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = buckets;
    c->n_buckets = n;
}


enum bms_status bms__cache_get(struct bms__cache *cache,
                               const struct bms__cache_key *key,
                               struct bms_buf *out, int64_t *answer_json_size)
{
    struct entry *garbage = NULL;
    struct model_slot *slot;
    struct entry *e;
    enum bms_status rc;

    pthread_mutex_lock(&cache->lock);
    slot = find_slot(cache, key->model, 1);
    e = slot != NULL ? find_entry(cache, key) : NULL;
    if (e != NULL && e->expires_us <= cache->now_us()) {
        unlink_entry(cache, e, &garbage);
        slot->stats.evictions++;
        e = NULL;
    }
    if (e != NULL) {
        link_remove(&e->lru);
        link_push_front(&cache->lru, &e->lru);
        link_remove(&e->by_model);
        link_push_front(&slot->entries, &e->by_model);
        atomic_fetch_add(&e->refs, 1);
        slot->stats.hits++;
    } else if (slot != NULL) {
        slot->stats.misses++;
    }
    pthread_mutex_unlock(&cache->lock);
    free_garbage(garbage);
    if (e == NULL) {
        return BMS_ERR_NOT_FOUND;
    }

    /* Copy outside the lock: the reference keeps the entry alive. */
    rc = bms_buf_append(out, e->data + e->body_len, e->answer_len);
    if (rc == BMS_OK && answer_json_size != NULL) {
        *answer_json_size = e->answer_json_size;
    }
    entry_unref(e);
    if (rc != BMS_OK) {
        pthread_mutex_lock(&cache->lock);
        slot->stats.hits--;
        slot->stats.misses++;
        pthread_mutex_unlock(&cache->lock);
    }
    return rc;
}


/* Make the room e needs: the model's oldest answers past its bound, then
 * the cache's oldest.  Under the lock. */
static void make_room(struct bms__cache *c, struct model_slot *slot,
                      size_t size, size_t model_max, struct entry **garbage)
{
    while (slot->bytes + size > model_max &&
           slot->entries.prev != &slot->entries) {
        unlink_entry(c, ENTRY_OF(slot->entries.prev, by_model), garbage);
        slot->stats.evictions++;
    }
    while (c->size + size > c->max_size && c->lru.prev != &c->lru) {
        struct entry *old = ENTRY_OF(c->lru.prev, lru);

        old->model->stats.evictions++;
        unlink_entry(c, old, garbage);
    }
}


/* A new entry for key and answer, not yet linked (NULL: no memory). */
static struct entry *entry_create(const struct bms__cache_key *key,
                                  const char *answer, size_t answer_len,
                                  int64_t answer_json_size, size_t size)
{
    struct entry *e = malloc(size);

    if (e == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->serial = key->serial;
    e->hash = key->hash;
    e->json_size = key->json_size;
    e->answer_json_size = answer_json_size;
    e->size = size;
    e->body_len = key->body_len;
    e->answer_len = answer_len;
    atomic_init(&e->refs, 1);
    memcpy(e->data, key->body, key->body_len);
    memcpy(e->data + key->body_len, answer, answer_len);
    return e;
}


enum bms_status bms__cache_put(struct bms__cache *cache,
                               const struct bms__cache_key *key,
                               const char *answer, size_t answer_len,
                               int64_t answer_json_size,
                               const struct bms_cache_config *config)
{
    size_t model_max = config->max_bytes > 0 ? (size_t)config->max_bytes : 0;
    size_t size = sizeof(struct entry) + key->body_len;
    struct entry *garbage = NULL;
    struct model_slot *slot;
    struct entry *e;
    struct entry *old;

    /* Too large for a bound (or for size_t): not kept. */
    if (answer_len > SIZE_MAX - size) {
        return BMS_OK;
    }
    size += answer_len;
    if (size > model_max || size > cache->max_size) {
        return BMS_OK;
    }
    e = entry_create(key, answer, answer_len, answer_json_size, size);
    if (e == NULL) {
        return BMS_ERR_NOMEM;
    }
    pthread_mutex_lock(&cache->lock);
    slot = find_slot(cache, key->model, 1);
    if (slot == NULL) {
        pthread_mutex_unlock(&cache->lock);
        free(e);
        return BMS_ERR_NOMEM;
    }
    old = find_entry(cache, key);
    if (old != NULL) {
        unlink_entry(cache, old, &garbage);
    }
    make_room(cache, slot, size, model_max, &garbage);
    e->model = slot;
    e->expires_us = cache->now_us() + config->ttl_s * 1000000;
    e->hash_next = *bucket_of(cache, e->hash);
    *bucket_of(cache, e->hash) = e;
    link_push_front(&cache->lru, &e->lru);
    link_push_front(&slot->entries, &e->by_model);
    cache->size += size;
    cache->n_entries++;
    slot->bytes += size;
    slot->stats.entries++;
    maybe_grow(cache);
    pthread_mutex_unlock(&cache->lock);
    free_garbage(garbage);
    return BMS_OK;
}


void bms__cache_invalidate(struct bms__cache *cache, const char *model)
{
    struct entry *garbage = NULL;
    struct model_slot *slot;

    if (cache == NULL) {
        return;
    }
    pthread_mutex_lock(&cache->lock);
    slot = find_slot(cache, model, 0);
    while (slot != NULL && slot->entries.next != &slot->entries) {
        unlink_entry(cache, ENTRY_OF(slot->entries.next, by_model),
                     &garbage);
    }
    pthread_mutex_unlock(&cache->lock);
    free_garbage(garbage);
}


void bms__cache_stats(struct bms__cache *cache, const char *model,
                      struct bms__cache_stats *out)
{
    struct model_slot *slot;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&cache->lock);
    slot = find_slot(cache, model, 0);
    if (slot != NULL) {
        *out = slot->stats;
        out->bytes = (int64_t)slot->bytes;
    }
    pthread_mutex_unlock(&cache->lock);
}


size_t bms__cache_size(struct bms__cache *cache)
{
    size_t size;

    pthread_mutex_lock(&cache->lock);
    size = cache->size;
    pthread_mutex_unlock(&cache->lock);
    return size;
}


size_t bms__cache_max_size(const struct bms__cache *cache)
{
    return cache->max_size;
}
