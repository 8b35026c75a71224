/*
 * The response cache of the server: successful infer answers kept in
 * memory, keyed by the model name, the serial of the loaded version that
 * answered (bms_served_serial) and the request body.  One cache serves
 * the whole server; a model opts in through the "cache" object of its
 * manifest, which gives its own bound in bytes and the time an answer
 * stays valid.
 *
 * Invariants: a hit returns only an answer stored for the very same
 * bytes of request body split the same way (the same
 * Inference-Header-Content-Length, or none; the 64-bit hash only finds
 * the candidate, the bytes are compared), for the same loaded version,
 * with the split of the answer it was kept with; the bytes kept never
 * pass the server-wide bound nor, per model, the manifest's bound, the
 * least recently used answers going first.  A reload gets a new serial,
 * so the answers of the version it replaces can never be returned again.
 */
#ifndef BMS_SERVER_CACHE_H
#define BMS_SERVER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "bms/base.h"
#include "bms/repo.h"

/* The server-wide bound when none is given: 64 MiB. */
#define BMS__CACHE_DEFAULT_SIZE ((size_t)64 << 20)

struct bms__cache;

/* What identifies one answer.  Fill it with bms__cache_key_init; it
 * borrows the model name and the body. */
struct bms__cache_key {
    const char *model;
    uint64_t serial;
    const void *body;
    size_t body_len;
    int64_t json_size;           /* Inference-Header-Content-Length; -1:
                                  * a body that is JSON alone */
    uint64_t hash;               /* of serial, json_size and body */
};

/* The counters of one model since the cache was created. */
struct bms__cache_stats {
    int64_t hits;
    int64_t misses;              /* lookups that found nothing valid */
    int64_t evictions;           /* answers dropped for room or by TTL */
    int64_t entries;             /* answers kept now */
    int64_t bytes;               /* their size now, overhead included */
};

/*
 * Create a cache bounded to max_size bytes (0: BMS__CACHE_DEFAULT_SIZE).
 * The size of an answer counts its request body, its answer body and a
 * fixed overhead.  Returns BMS_ERR_NOMEM; *out is written on success.
 */
enum bms_status bms__cache_create(size_t max_size, struct bms__cache **out);

/* Free the cache and every answer in it.  Accepts NULL.  No lookup may
 * be running. */
void bms__cache_destroy(struct bms__cache *cache);

/* The clock TTLs are measured with (microseconds, monotonic); NULL
 * restores bms_now_us.  For tests; call it before the cache is shared. */
void bms__cache_set_clock(struct bms__cache *cache, int64_t (*now_us)(void));

/* Fill *key for model, serial and the body bytes, hashing the body.  A
 * body of the binary tensor data extension gives json_size, the bytes of
 * JSON at its start (-1: no such header). */
void bms__cache_key_init(struct bms__cache_key *key, const char *model,
                         uint64_t serial, const void *body, size_t body_len,
                         int64_t json_size);

/*
 * Look up key.  On a hit the stored answer is appended to out and BMS_OK
 * is returned; BMS_ERR_NOT_FOUND is a miss (nothing kept for the key, or
 * only an answer past its TTL, which is dropped); BMS_ERR_NOMEM when out
 * cannot grow (counted as a miss).  Hits and misses are counted for the
 * key's model.  On a hit *answer_json_size (when not NULL) gets the
 * answer's split as bms__cache_put kept it.  Thread-safe.
 */
enum bms_status bms__cache_get(struct bms__cache *cache,
                               const struct bms__cache_key *key,
                               struct bms_buf *out, int64_t *answer_json_size);

/*
 * Keep answer (answer_len bytes) for key, valid for config->ttl_s
 * seconds, evicting the least recently used answers of the model past
 * config->max_bytes and then of any model past the cache's bound.  An
 * answer larger than either bound is not kept (BMS_OK all the same); an
 * answer already kept for the key is replaced.  Copies key's body and
 * the answer.  answer_json_size is kept with it: the bytes of its JSON
 * part when binary data follows, -1 for an answer that is JSON alone.
 * Returns BMS_ERR_NOMEM.  Thread-safe.
 */
enum bms_status bms__cache_put(struct bms__cache *cache,
                               const struct bms__cache_key *key,
                               const char *answer, size_t answer_len,
                               int64_t answer_json_size,
                               const struct bms_cache_config *config);

/* Drop every cached answer of model (every version); its hit and miss
 * counters stay.  Accepts a NULL cache.  Thread-safe. */
void bms__cache_invalidate(struct bms__cache *cache, const char *model);

/* The counters of model into *out (zeros for a model never seen).
 * Thread-safe. */
void bms__cache_stats(struct bms__cache *cache, const char *model,
                      struct bms__cache_stats *out);

/* The bytes kept now over every model, and the bound.  Thread-safe. */
size_t bms__cache_size(struct bms__cache *cache);
size_t bms__cache_max_size(const struct bms__cache *cache);

#endif
