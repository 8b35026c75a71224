/*
 * API keys, roles, allow-lists and rate limits (the contract is in
 * server/auth.h).
 *
 * The active keys are cached sorted by id, each with its bucket, beside
 * the model limits; a read-write lock guards the cache (the check reads,
 * a reload or a limit change writes) and one mutex guards the buckets'
 * arithmetic.  A reload builds the new cache outside the lock and swaps
 * it in, carrying the tokens of buckets that stay.
 */
#define _GNU_SOURCE                  /* writer-preferring rwlocks */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "server/auth.h"

#define REFRESH_PERIOD_US 1000000    /* data_version checks */
#define BEARER "bearer"

struct key_entry {
    struct bms_key key;
    enum bms__role role;
    struct bms__bucket bucket;
};

struct limit_entry {
    char model[BMS__MODEL_NAME_MAX + 1];
    struct bms__bucket bucket;
};

/* What a reload replaces as a whole. */
struct auth_cache {
    struct key_entry *keys;      /* sorted by id */
    int n_keys;
    int cap_keys;
    struct limit_entry *limits;  /* in any order */
    int n_limits;
    int cap_limits;
    int nomem;                   /* a load ran out of memory */
};

struct bms__auth {
    struct bms_store *store;     /* borrowed, may be NULL */
    int no_auth;

    pthread_mutex_t reload_lock; /* one reload or limit change at a time,
                                  * so the last snapshot read is the one
                                  * left in place */
    pthread_rwlock_t lock;       /* guards cache and enabled */
    struct auth_cache cache;
    int enabled;

    pthread_mutex_t bucket_lock; /* the tokens of every bucket */

    pthread_mutex_t refresh_lock;    /* guards the fields below */
    pthread_cond_t refresh_wake;
    int stopping;
    int has_thread;
    int64_t data_version;
    pthread_t thread;
};


/* ---- roles ---- */

enum bms__role bms__auth_route_role(enum bms__route_kind kind,
                                    const char *method)
{
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

    switch (kind) {
    case BMS__ROUTE_LIVE:
    case BMS__ROUTE_READY:
    case BMS__ROUTE_OPENAPI:
    case BMS__ROUTE_DOCS:
        return BMS__ROLE_NONE;
    case BMS__ROUTE_SERVER:
    case BMS__ROUTE_MODEL:
    case BMS__ROUTE_MODEL_READY:
    case BMS__ROUTE_INFER:
        return BMS__ROLE_USER;
    case BMS__ROUTE_ROUTING:
    case BMS__ROUTE_PACKAGE:
        return is_get ? BMS__ROLE_USER : BMS__ROLE_ADMIN;
    default:
        return BMS__ROLE_ADMIN;
    }
}


const char *bms__role_name(enum bms__role role)
{
    switch (role) {
    case BMS__ROLE_ADMIN:
        return "admin";
    case BMS__ROLE_USER:
        return "user";
    default:
        return "none";
    }
}


int bms__role_parse(const char *name, enum bms__role *out)
{
    if (strcmp(name, "admin") == 0) {
        *out = BMS__ROLE_ADMIN;
        return 0;
    }
    if (strcmp(name, "user") == 0) {
        *out = BMS__ROLE_USER;
        return 0;
    }
    return -1;
}


/* ---- tokens ---- */

static void hex_encode(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}


/* A lowercase hex digit's value, else -1 (upper case is not a token). */
static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


static int hex_decode(unsigned char *out, const char *s, size_t n_bytes)
{
    for (size_t i = 0; i < n_bytes; i++) {
        int hi = hex_digit(s[2 * i]);
        int lo = hex_digit(s[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
}


enum bms_status bms__key_generate(struct bms_key *key, char *token,
                                  size_t size, struct bms_diag *diag)
{
    unsigned char id[BMS_KEY_ID_LEN / 2];
    unsigned char secret[BMS__TOKEN_SECRET_SIZE];
    char secret_hex[2 * BMS__TOKEN_SECRET_SIZE + 1];

    if (size < BMS__TOKEN_SIZE) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "token buffer too "
                            "small");
    }
    if (gnutls_rnd(GNUTLS_RND_KEY, id, sizeof(id)) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof(secret)) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, key->salt, sizeof(key->salt)) != 0) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "random generator "
                            "failed");
    }
    hex_encode(key->id, id, sizeof(id));
    hex_encode(secret_hex, secret, sizeof(secret));
    bms__key_hash(key->salt, secret, key->hash);
    snprintf(token, size, "bms_%s_%s", key->id, secret_hex);
    memset(secret, 0, sizeof(secret));
    memset(secret_hex, 0, sizeof(secret_hex));
    return BMS_OK;
}


int bms__token_parse(const char *token, size_t len,
                     char id[BMS_KEY_ID_LEN + 1],
                     unsigned char secret[BMS__TOKEN_SECRET_SIZE])
{
    unsigned char id_bytes[BMS_KEY_ID_LEN / 2];
    const char *sep = token + 4 + BMS_KEY_ID_LEN;

    if (len != BMS__TOKEN_LEN || memcmp(token, "bms_", 4) != 0 ||
        *sep != '_') {
        return -1;
    }
    if (hex_decode(id_bytes, token + 4, sizeof(id_bytes)) != 0 ||
        hex_decode(secret, sep + 1, BMS__TOKEN_SECRET_SIZE) != 0) {
        return -1;
    }
    memcpy(id, token + 4, BMS_KEY_ID_LEN);
    id[BMS_KEY_ID_LEN] = '\0';
    return 0;
}


void bms__key_hash(const unsigned char salt[BMS_KEY_SALT_SIZE],
                   const unsigned char secret[BMS__TOKEN_SECRET_SIZE],
                   unsigned char out[BMS_KEY_HASH_SIZE])
{
    unsigned char text[BMS_KEY_SALT_SIZE + BMS__TOKEN_SECRET_SIZE];

    memcpy(text, salt, BMS_KEY_SALT_SIZE);
    memcpy(text + BMS_KEY_SALT_SIZE, secret, BMS__TOKEN_SECRET_SIZE);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, text, sizeof(text), out);
    memset(text, 0, sizeof(text));
}


int bms__key_verify(const struct bms_key *key,
                    const unsigned char secret[BMS__TOKEN_SECRET_SIZE])
{
    unsigned char hash[BMS_KEY_HASH_SIZE];
    volatile unsigned char diff = 0;

    bms__key_hash(key->salt, secret, hash);
    /* Every byte is compared, whatever the first difference. */
    for (size_t i = 0; i < sizeof(hash); i++) {
        diff |= (unsigned char)(hash[i] ^ key->hash[i]);
    }
    return diff == 0;
}


int bms__models_allow(const char *models, const char *model)
{
    size_t n = strlen(model);
    const char *p = models;

    if (models[0] == '\0') {
        return 1;
    }
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len == n && memcmp(p, model, n) == 0) {
            return 1;
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    return 0;
}


static enum bms_status check_rate(double rate, int burst,
                                  struct bms_diag *diag)
{
    if (!(rate >= 0 && rate <= BMS__RATE_MAX)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "requests_per_s: "
                            "expected a number in 0..%g", BMS__RATE_MAX);
    }
    if (burst < 0 || burst > BMS__RATE_MAX) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "burst: expected an "
                            "integer in 0..%g", BMS__RATE_MAX);
    }
    return BMS_OK;
}


static int model_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}


/* Each entry of the comma list: 1 to BMS__MODEL_NAME_MAX characters of
 * [A-Za-z0-9_.-]. */
static enum bms_status check_models(const char *models,
                                    struct bms_diag *diag)
{
    size_t len = 0;

    for (const char *p = models; ; p++) {
        if (*p == ',' || *p == '\0') {
            if (len == 0 || len > BMS__MODEL_NAME_MAX) {
                return bms_diag_set(diag, BMS_ERR_INVALID, "models: "
                                    "expected model names of 1 to %d "
                                    "characters", BMS__MODEL_NAME_MAX);
            }
            if (*p == '\0') {
                return BMS_OK;
            }
            len = 0;
        } else if (!model_char_ok(*p)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "models: a model "
                                "name has a character outside A-Z a-z 0-9 "
                                "_ . -");
        } else {
            len++;
        }
    }
}


enum bms_status bms__key_validate(struct bms_key *key,
                                  struct bms_diag *diag)
{
    size_t n = strnlen(key->name, sizeof(key->name));
    enum bms__role role;
    enum bms_status rc;

    if (n == 0 || n >= sizeof(key->name)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "name: expected 1 to "
                            "%zu characters", sizeof(key->name) - 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (key->name[i] < 0x20 || key->name[i] > 0x7e) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "name: only "
                                "printable ASCII characters");
        }
    }
    if (bms__role_parse(key->role, &role) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "role: expected "
                            "\"admin\" or \"user\"");
    }
    if (key->models[0] != '\0') {
        if (role == BMS__ROLE_ADMIN) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "models: only user "
                                "keys have an allow-list");
        }
        rc = check_models(key->models, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    rc = check_rate(key->requests_per_s, key->burst, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (key->requests_per_s == 0 && key->burst != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "burst: needs "
                            "requests_per_s above 0");
    }
    if (key->requests_per_s > 0 && key->burst == 0) {
        double up = ceil(key->requests_per_s);

        key->burst = up < 1 ? 1 : (int)up;
    }
    return BMS_OK;
}


/* ---- token buckets ---- */

void bms__bucket_set(struct bms__bucket *b, double rate, int burst,
                     int64_t now_us)
{
    int fresh = b->last_us == 0;

    if (burst <= 0) {
        double up = ceil(rate);

        burst = up < 1 ? 1 : up > BMS__RATE_MAX ? (int)BMS__RATE_MAX
                                                 : (int)up;
    }
    b->rate = rate;
    b->burst = burst;
    if (fresh) {
        b->tokens = burst;
        b->last_us = now_us;
    } else if (b->tokens > burst) {
        b->tokens = burst;
    }
}


int bms__bucket_ready(struct bms__bucket *b, int64_t now_us)
{
    if (b->rate <= 0) {
        return 1;
    }
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * 1e-6 * b->rate;
        if (b->tokens > b->burst) {
            b->tokens = b->burst;
        }
        b->last_us = now_us;
    }
    return b->tokens >= 1.0;
}


void bms__bucket_take(struct bms__bucket *b)
{
    if (b->rate > 0) {
        b->tokens -= 1.0;
    }
}


int bms__bucket_retry_s(const struct bms__bucket *b)
{
    double s;

    if (b->rate <= 0 || b->tokens >= 1.0) {
        return 1;
    }
    s = ceil((1.0 - b->tokens) / b->rate);
    return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}


/* ---- the cache ---- */

static void cache_free(struct auth_cache *c)
{
    free(c->keys);
    free(c->limits);
    memset(c, 0, sizeof(*c));
}


static int grow(void **items, int *cap, int n, size_t item_size)
{
    void *p;
    int new_cap;

    if (n < *cap) {
        return 0;
    }
    new_cap = *cap ? 2 * *cap : 16;
    p = realloc(*items, (size_t)new_cap * item_size);
    if (p == NULL) {
        return -1;
    }
    *items = p;
    *cap = new_cap;
    return 0;
}


static int collect_key(void *ud, const struct bms_key *key)
{
    struct auth_cache *c = ud;
    struct key_entry *e;
    enum bms__role role;

    if (bms__role_parse(key->role, &role) != 0 ||
        strlen(key->id) != BMS_KEY_ID_LEN) {
        return 0;               /* not a key bms made: never matches */
    }
    if (grow((void **)&c->keys, &c->cap_keys, c->n_keys, sizeof(*e)) != 0) {
        c->nomem = 1;
        return 1;
    }
    e = &c->keys[c->n_keys++];
    memset(e, 0, sizeof(*e));
    e->key = *key;
    e->role = role;
    return 0;
}


static int collect_limit(void *ud, const char *model, double rate,
                         int burst)
{
    struct auth_cache *c = ud;
    struct limit_entry *e;

    if (rate <= 0) {
        return 0;
    }
    if (grow((void **)&c->limits, &c->cap_limits, c->n_limits, sizeof(*e))
        != 0) {
        c->nomem = 1;
        return 1;
    }
    e = &c->limits[c->n_limits++];
    memset(e, 0, sizeof(*e));
    snprintf(e->model, sizeof(e->model), "%s", model);
    e->bucket.rate = rate;
    e->bucket.burst = burst;
    return 0;
}


static int compare_keys(const void *a, const void *b)
{
    const struct key_entry *x = a;
    const struct key_entry *y = b;

    return strcmp(x->key.id, y->key.id);
}


static struct key_entry *find_key(const struct auth_cache *c,
                                  const char *id)
{
    struct key_entry probe;

    if (c->n_keys == 0) {
        return NULL;
    }
    snprintf(probe.key.id, sizeof(probe.key.id), "%s", id);
    return bsearch(&probe, c->keys, (size_t)c->n_keys, sizeof(*c->keys),
                   compare_keys);
}


static struct limit_entry *find_limit(const struct auth_cache *c,
                                      const char *model)
{
    for (int i = 0; i < c->n_limits; i++) {
        if (strcmp(c->limits[i].model, model) == 0) {
            return &c->limits[i];
        }
    }
    return NULL;
}


/* Read the whole cache from the store into *c. */
static enum bms_status cache_load(struct bms_store *store,
                                  struct auth_cache *c,
                                  struct bms_diag *diag)
{
    enum bms_status rc;

    memset(c, 0, sizeof(*c));
    rc = bms_store_list_keys(store, 1, collect_key, c, diag);
    if (rc == BMS_OK && !c->nomem) {
        rc = bms_store_list_model_limits(store, collect_limit, c, diag);
    }
    if (rc == BMS_OK && c->nomem) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "auth: out of memory "
                          "loading the keys");
    }
    if (rc != BMS_OK) {
        cache_free(c);
        return rc;
    }
    if (c->n_keys > 0) {
        qsort(c->keys, (size_t)c->n_keys, sizeof(*c->keys), compare_keys);
    }
    return BMS_OK;
}


/* Give the new cache's buckets their limits, carrying the tokens of the
 * buckets in old that stay. */
static void carry_buckets(struct auth_cache *c, const struct auth_cache *old)
{
    int64_t now = bms_now_us();

    for (int i = 0; i < c->n_keys; i++) {
        struct key_entry *e = &c->keys[i];
        struct key_entry *was = find_key(old, e->key.id);

        if (was != NULL) {
            e->bucket = was->bucket;
        }
        bms__bucket_set(&e->bucket, e->key.requests_per_s, e->key.burst,
                        now);
    }
    for (int i = 0; i < c->n_limits; i++) {
        struct limit_entry *e = &c->limits[i];
        struct limit_entry *was = find_limit(old, e->model);
        double rate = e->bucket.rate;
        int burst = e->bucket.burst;

        if (was != NULL) {
            e->bucket = was->bucket;
        } else {
            memset(&e->bucket, 0, sizeof(e->bucket));
        }
        bms__bucket_set(&e->bucket, rate, burst, now);
    }
}


static void log_state(const struct bms__auth *auth, int n_keys)
{
    if (auth->no_auth) {
        bms_log(BMS_LOG_WARN, "auth", "msg=\"AUTHENTICATION IS OFF "
                "(--no-auth): every caller acts as admin\" keys=%d",
                n_keys);
    } else if (n_keys == 0) {
        bms_log(BMS_LOG_WARN, "auth", "msg=\"no API keys: the API is "
                "open\"");
    } else {
        bms_log(BMS_LOG_INFO, "auth", "msg=\"API keys required\" keys=%d",
                n_keys);
    }
}


enum bms_status bms__auth_reload(struct bms__auth *auth,
                                 struct bms_diag *diag)
{
    struct auth_cache fresh;
    struct auth_cache old;
    enum bms_status rc;
    int was_enabled;
    int enabled;

    if (auth->store == NULL) {
        return BMS_OK;
    }
    pthread_mutex_lock(&auth->reload_lock);
    rc = cache_load(auth->store, &fresh, diag);
    if (rc != BMS_OK) {
        pthread_mutex_unlock(&auth->reload_lock);
        return rc;
    }
    pthread_rwlock_wrlock(&auth->lock);
    pthread_mutex_lock(&auth->bucket_lock);
    carry_buckets(&fresh, &auth->cache);
    pthread_mutex_unlock(&auth->bucket_lock);
    old = auth->cache;
    auth->cache = fresh;
    was_enabled = auth->enabled;
    enabled = !auth->no_auth && fresh.n_keys > 0;
    auth->enabled = enabled;
    pthread_rwlock_unlock(&auth->lock);
    pthread_mutex_unlock(&auth->reload_lock);
    cache_free(&old);
    if (enabled != was_enabled) {
        log_state(auth, fresh.n_keys);
    }
    return BMS_OK;
}


/* ---- the reload thread ---- */

static void *refresh_main(void *arg)
{
    struct bms__auth *auth = arg;
    struct timespec deadline;
    struct bms_diag diag;

    pthread_mutex_lock(&auth->refresh_lock);
    while (!auth->stopping) {
        int64_t version = 0;
        int moved;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += REFRESH_PERIOD_US / 1000000;
        while (!auth->stopping &&
               pthread_cond_timedwait(&auth->refresh_wake,
                                      &auth->refresh_lock, &deadline) == 0) {
            continue;
        }
        if (auth->stopping) {
            break;
        }
        pthread_mutex_unlock(&auth->refresh_lock);

        diag.msg[0] = '\0';
        moved = bms_store_data_version(auth->store, &version, &diag)
                    == BMS_OK && version != auth->data_version;
        if (moved && bms__auth_reload(auth, &diag) == BMS_OK) {
            auth->data_version = version;
        } else if (moved) {
            bms_log(BMS_LOG_ERROR, "auth", "msg=\"keys not reloaded\" "
                    "error=\"%s\"", diag.msg);
        }
        pthread_mutex_lock(&auth->refresh_lock);
    }
    pthread_mutex_unlock(&auth->refresh_lock);
    return NULL;
}


static int start_refresh(struct bms__auth *auth)
{
    pthread_condattr_t attr;
    int err;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&auth->refresh_wake, &attr);
    pthread_condattr_destroy(&attr);
    err = pthread_create(&auth->thread, NULL, refresh_main, auth);
    auth->has_thread = err == 0;
    return err;
}


/* ---- lifecycle ---- */

enum bms_status bms__auth_create(struct bms_store *store, int no_auth,
                                 struct bms__auth **out,
                                 struct bms_diag *diag)
{
    struct bms__auth *auth = calloc(1, sizeof(*auth));
    pthread_rwlockattr_t attr;
    enum bms_status rc = BMS_OK;

    if (auth == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    auth->store = store;
    auth->no_auth = no_auth;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
        PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&auth->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&auth->reload_lock, NULL);
    pthread_mutex_init(&auth->bucket_lock, NULL);
    pthread_mutex_init(&auth->refresh_lock, NULL);
    if (store != NULL) {
        rc = bms_store_data_version(store, &auth->data_version, diag);
        if (rc == BMS_OK) {
            rc = bms__auth_reload(auth, diag);
        }
        if (rc == BMS_OK && start_refresh(auth) != 0) {
            rc = bms_diag_set(diag, BMS_ERR_INTERNAL, "auth: cannot start "
                              "the key reload thread");
        }
    }
    if (rc != BMS_OK) {
        bms__auth_destroy(auth);
        return rc;
    }
    if (!auth->enabled && (store != NULL || no_auth)) {
        /* The reload logged a start with keys; without a store (tests,
         * offline) keys cannot exist and there is nothing to say. */
        log_state(auth, auth->cache.n_keys);
    }
    *out = auth;
    return BMS_OK;
}


void bms__auth_destroy(struct bms__auth *auth)
{
    if (auth == NULL) {
        return;
    }
    if (auth->has_thread) {
        pthread_mutex_lock(&auth->refresh_lock);
        auth->stopping = 1;
        pthread_cond_signal(&auth->refresh_wake);
        pthread_mutex_unlock(&auth->refresh_lock);
        pthread_join(auth->thread, NULL);
        pthread_cond_destroy(&auth->refresh_wake);
    }
    cache_free(&auth->cache);
    pthread_mutex_destroy(&auth->refresh_lock);
    pthread_mutex_destroy(&auth->bucket_lock);
    pthread_mutex_destroy(&auth->reload_lock);
    pthread_rwlock_destroy(&auth->lock);
    free(auth);
}


int bms__auth_enabled(struct bms__auth *auth)
{
    int enabled;

    pthread_rwlock_rdlock(&auth->lock);
    enabled = auth->enabled;
    pthread_rwlock_unlock(&auth->lock);
    return enabled;
}


/* ---- model limits ---- */

/* With the write lock held: put or remove model's entry. */
static enum bms_status cache_set_limit(struct auth_cache *c,
                                       const char *model, double rate,
                                       int burst)
{
    struct limit_entry *e = find_limit(c, model);

    if (rate <= 0) {
        if (e != NULL) {
            *e = c->limits[--c->n_limits];
        }
        return BMS_OK;
    }
    if (e == NULL) {
        if (grow((void **)&c->limits, &c->cap_limits, c->n_limits,
                 sizeof(*e)) != 0) {
            return BMS_ERR_NOMEM;
        }
        e = &c->limits[c->n_limits++];
        memset(e, 0, sizeof(*e));
        snprintf(e->model, sizeof(e->model), "%s", model);
    }
    bms__bucket_set(&e->bucket, rate, burst, bms_now_us());
    return BMS_OK;
}


enum bms_status bms__auth_set_model_limit(struct bms__auth *auth,
                                          const char *model,
                                          double requests_per_s,
                                          int burst,
                                          struct bms_diag *diag)
{
    enum bms_status rc = check_rate(requests_per_s, burst, diag);

    if (rc == BMS_OK && strlen(model) > BMS__MODEL_NAME_MAX) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID, "model: name longer than "
                          "%d characters", BMS__MODEL_NAME_MAX);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    pthread_mutex_lock(&auth->reload_lock);
    if (auth->store != NULL) {
        rc = bms_store_set_model_limit(auth->store, model, requests_per_s,
                                       burst, diag);
    }
    if (rc != BMS_OK) {
        pthread_mutex_unlock(&auth->reload_lock);
        return rc;
    }
    pthread_rwlock_wrlock(&auth->lock);
    pthread_mutex_lock(&auth->bucket_lock);
    rc = cache_set_limit(&auth->cache, model, requests_per_s, burst);
    pthread_mutex_unlock(&auth->bucket_lock);
    pthread_rwlock_unlock(&auth->lock);
    pthread_mutex_unlock(&auth->reload_lock);
    if (rc != BMS_OK) {
        return bms_diag_set(diag, rc, "out of memory");
    }
    return BMS_OK;
}


void bms__auth_model_limit(struct bms__auth *auth, const char *model,
                           double *requests_per_s, int *burst)
{
    struct limit_entry *e;

    *requests_per_s = 0;
    *burst = 0;
    pthread_rwlock_rdlock(&auth->lock);
    e = find_limit(&auth->cache, model);
    if (e != NULL) {
        *requests_per_s = e->bucket.rate;
        *burst = e->bucket.burst;
    }
    pthread_rwlock_unlock(&auth->lock);
}


/* ---- the check ---- */

static int refuse(struct bms__reply *reply, int http_status,
                  const char *msg)
{
    bms__reply_error(reply, http_status, msg);
    return -1;
}


static int refuse_401(struct bms__reply *reply, const char *challenge,
                      const char *msg)
{
    bms__reply_header(reply, "WWW-Authenticate", challenge);
    return refuse(reply, 401, msg);
}


/*
 * The key a request names, verified.  NULL with the 401 in reply when
 * the header is missing or malformed, or names no active key, or the
 * secret is wrong.  With the read lock held.
 */
static struct key_entry *authenticate(struct bms__auth *auth,
                                      const char *authorization,
                                      struct bms__reply *reply)
{
    static const char bad_token[] = "Bearer realm=\"bms\", "
                                    "error=\"invalid_token\"";
    static const struct bms_key dummy;
    unsigned char secret[BMS__TOKEN_SECRET_SIZE];
    char id[BMS_KEY_ID_LEN + 1];
    struct key_entry *e;
    const char *p;
    int ok;

    if (authorization == NULL || authorization[0] == '\0') {
        refuse_401(reply, "Bearer realm=\"bms\"", "authorization: missing "
                   "(send 'Authorization: Bearer <token>')");
        return NULL;
    }
    p = authorization;
    if (strncasecmp(p, BEARER, strlen(BEARER)) != 0 ||
        p[strlen(BEARER)] != ' ') {
        refuse_401(reply, bad_token, "authorization: expected 'Bearer "
                   "<token>'");
        return NULL;
    }
    p += strlen(BEARER);
    while (*p == ' ') {
        p++;
    }
    if (bms__token_parse(p, strlen(p), id, secret) != 0) {
        refuse_401(reply, bad_token, "authorization: malformed token");
        return NULL;
    }
    e = find_key(&auth->cache, id);
    /* An unknown id costs a hash too, so both refusals take as long. */
    ok = bms__key_verify(e != NULL ? &e->key : &dummy, secret) && e != NULL;
    memset(secret, 0, sizeof(secret));
    if (!ok) {
        refuse_401(reply, bad_token, "authorization: unknown or revoked "
                   "key");
        return NULL;
    }
    return e;
}


static void limit_headers(struct bms__reply *reply,
                          const struct bms__bucket *b)
{
    char text[32];
    double left = b->tokens > 0 ? floor(b->tokens) : 0;

    snprintf(text, sizeof(text), "%d", b->burst);
    bms__reply_header(reply, "X-RateLimit-Limit", text);
    snprintf(text, sizeof(text), "%.0f", left);
    bms__reply_header(reply, "X-RateLimit-Remaining", text);
}


/*
 * Take a token from the key's bucket (k, may be NULL) and the model's
 * (m, may be NULL), or from neither; with the read lock held.  Returns 0,
 * or -1 with the 429 in reply.
 */
static int take_tokens(struct bms__auth *auth, struct key_entry *k,
                       struct limit_entry *m, struct bms__reply *reply)
{
    struct bms__bucket *kb = k != NULL && k->bucket.rate > 0 ? &k->bucket
                                                             : NULL;
    struct bms__bucket *mb = m != NULL ? &m->bucket : NULL;
    const struct bms__bucket *tight;
    int64_t now = bms_now_us();
    char msg[256];
    int k_ok;
    int m_ok;

    if (kb == NULL && mb == NULL) {
        return 0;
    }
    pthread_mutex_lock(&auth->bucket_lock);
    k_ok = kb == NULL || bms__bucket_ready(kb, now);
    m_ok = mb == NULL || bms__bucket_ready(mb, now);
    if (k_ok && m_ok) {
        if (kb != NULL) {
            bms__bucket_take(kb);
        }
        if (mb != NULL) {
            bms__bucket_take(mb);
        }
        tight = kb == NULL ? mb : mb == NULL ? kb
                : floor(mb->tokens) < floor(kb->tokens) ? mb : kb;
        limit_headers(reply, tight);
        pthread_mutex_unlock(&auth->bucket_lock);
        return 0;
    }
    tight = !k_ok ? kb : mb;
    limit_headers(reply, tight);
    reply->retry_after_s = bms__bucket_retry_s(tight);
    if (!k_ok) {
        snprintf(msg, sizeof(msg), "rate limit: key '%s' allows %g "
                 "requests/s (burst %d)", k->key.id, tight->rate,
                 tight->burst);
    } else {
        snprintf(msg, sizeof(msg), "rate limit: model '%s' allows %g "
                 "requests/s (burst %d)", m->model, tight->rate,
                 tight->burst);
    }
    pthread_mutex_unlock(&auth->bucket_lock);
    return refuse(reply, 429, msg);
}


/* Whether the key's role and allow-list admit the route; else the 403
 * in reply.  With the read lock held. */
static int admit(const struct key_entry *e, enum bms__role need,
                 const struct bms__route *route, struct bms__reply *reply)
{
    char msg[256];

    if (e->role < need) {
        snprintf(msg, sizeof(msg), "role: key '%s' is a %s key; this "
                 "route needs an %s key", e->key.id,
                 bms__role_name(e->role), bms__role_name(need));
        return refuse(reply, 403, msg);
    }
    if (e->role == BMS__ROLE_USER && route->model[0] != '\0' &&
        !bms__models_allow(e->key.models, route->model)) {
        snprintf(msg, sizeof(msg), "models: key '%s' may not use model "
                 "'%s'", e->key.id, route->model);
        return refuse(reply, 403, msg);
    }
    return 0;
}


int bms__auth_check(struct bms__auth *auth, const struct bms__route *route,
                    const char *method, const char *authorization,
                    struct bms__principal *who, struct bms__reply *reply)
{
    enum bms__role need = bms__auth_route_role(route->kind, method);
    struct key_entry *e = NULL;
    struct limit_entry *m = NULL;
    int rc = 0;

    memset(who, 0, sizeof(*who));
    if (need == BMS__ROLE_NONE) {
        return 0;
    }
    pthread_rwlock_rdlock(&auth->lock);
    if (!auth->enabled) {
        who->role = BMS__ROLE_ADMIN;
    } else {
        e = authenticate(auth, authorization, reply);
        rc = e == NULL ? -1 : admit(e, need, route, reply);
    }
    if (rc == 0 && route->kind == BMS__ROUTE_INFER &&
        strcmp(method, "POST") == 0) {
        m = find_limit(&auth->cache, route->model);
    }
    if (rc == 0) {
        rc = take_tokens(auth, e, m, reply);
    }
    if (rc == 0 && e != NULL) {
        snprintf(who->key_id, sizeof(who->key_id), "%s", e->key.id);
        snprintf(who->name, sizeof(who->name), "%s", e->key.name);
        who->role = e->role;
    }
    pthread_rwlock_unlock(&auth->lock);
    return rc;
}
