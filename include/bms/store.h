/*
 * Storage: the manifests of loaded models and one record per request.
 * SQLite is the embedded backend (one file in the data folder, WAL mode).
 *
 * Request records are queued by the request path and written by a writer
 * thread in batches, so a request never waits on the disk.  Closing the
 * store writes everything still queued: no record is lost on a clean stop.
 */
#ifndef BMS_STORE_H
#define BMS_STORE_H

#include "bms/base.h"

#define BMS_REQUEST_ID_SIZE 40

struct bms_request_record {
    char id[BMS_REQUEST_ID_SIZE];   /* the server's id for the request */
    int64_t ts_us;                  /* arrival, us since the Unix epoch */
    char model[128];                /* "" when the path named none */
    int64_t version;                /* 0 when none was resolved */
    int http_status;
    char outcome[16];               /* "ok", "client_error", "server_error" */
    char error[256];                /* the error message, "" when ok */
    int64_t latency_us;
    int64_t bytes_in;
    int64_t bytes_out;
    char client[64];                /* peer address */
    char key_id[64];                /* the API key's id; "" without one */
};

struct bms_store;

/* Open (creating if needed) the SQLite store at path. */
enum bms_status bms_store_open_sqlite(const char *path,
                                      struct bms_store **out,
                                      struct bms_diag *diag);

/* Write all queued records, stop the writer, close.  Accepts NULL. */
void bms_store_close(struct bms_store *store);

/* Insert or replace the manifest of one model version.  Synchronous. */
enum bms_status bms_store_put_model(struct bms_store *store,
                                    const char *name, int64_t version,
                                    const char *manifest_json,
                                    struct bms_diag *diag);

/* Queue a copy of rec for writing.  Thread-safe, never waits on I/O. */
void bms_store_record(struct bms_store *store,
                      const struct bms_request_record *rec);

/* Block until every record queued before the call is written. */
enum bms_status bms_store_flush(struct bms_store *store);

/* Called once per record; return non-zero to stop early. */
typedef int (*bms_record_fn)(void *ud, const struct bms_request_record *rec);

/* The latest `limit` records, newest first. */
enum bms_status bms_store_list_requests(struct bms_store *store, int limit,
                                        bms_record_fn fn, void *ud,
                                        struct bms_diag *diag);

/* One change of a model version's serving state (the alerts table). */
struct bms_alert {
    int64_t id;                     /* the store's, rising; 0 to insert */
    int64_t ts_us;                  /* us since the Unix epoch */
    char model[128];
    int64_t version;
    char kind[32];                  /* "stopped", "resumed", ... */
    char message[256];
};

/* Insert an alert (its id is ignored).  Synchronous; thread-safe. */
enum bms_status bms_store_put_alert(struct bms_store *store,
                                    const struct bms_alert *alert,
                                    struct bms_diag *diag);

/* Called once per alert; return non-zero to stop early. */
typedef int (*bms_alert_fn)(void *ud, const struct bms_alert *alert);

/* The latest `limit` alerts (negative: all), newest first.  fn runs with
 * the database held, so it must not call back into the store. */
enum bms_status bms_store_list_alerts(struct bms_store *store, int limit,
                                      bms_alert_fn fn, void *ud,
                                      struct bms_diag *diag);

/* ---- API keys and their limits (keys.c) ---- */

#define BMS_KEY_ID_LEN 12               /* lowercase hex digits */
#define BMS_KEY_SALT_SIZE 16            /* bytes */
#define BMS_KEY_HASH_SIZE 32            /* bytes: SHA-256 */
#define BMS_KEY_MODELS_SIZE 1024        /* the allow-list, NUL included */

/*
 * One API key as stored: never the token itself, only a random salt and
 * SHA-256(salt || secret).  models is the allow-list as a comma list of
 * model names ("" allows every model); role is "admin" or "user".
 */
struct bms_key {
    char id[BMS_KEY_ID_LEN + 1];
    char name[64];
    char role[8];
    char models[BMS_KEY_MODELS_SIZE];
    unsigned char salt[BMS_KEY_SALT_SIZE];
    unsigned char hash[BMS_KEY_HASH_SIZE];
    double requests_per_s;          /* 0: no limit */
    int burst;                      /* bucket size, requests */
    int64_t created_us;             /* us since the Unix epoch */
    int64_t revoked_us;             /* 0 while the key is active */
};

/* Insert a new key.  BMS_ERR_INVALID when the id is taken, BMS_ERR_IO.
 * Synchronous; thread-safe (as every function of this section). */
enum bms_status bms_store_put_key(struct bms_store *store,
                                  const struct bms_key *key,
                                  struct bms_diag *diag);

/* The key with this id, revoked or not, into *out.  BMS_ERR_NOT_FOUND,
 * BMS_ERR_IO. */
enum bms_status bms_store_get_key(struct bms_store *store, const char *id,
                                  struct bms_key *out,
                                  struct bms_diag *diag);

/* Called once per key; return non-zero to stop early. */
typedef int (*bms_key_fn)(void *ud, const struct bms_key *key);

/* Every key (active_only: only those not revoked), oldest first.  fn runs
 * with the database held, so it must not call back into the store. */
enum bms_status bms_store_list_keys(struct bms_store *store, int active_only,
                                    bms_key_fn fn, void *ud,
                                    struct bms_diag *diag);

/* Mark a key revoked at revoked_us; a key revoked already keeps its first
 * time.  BMS_ERR_NOT_FOUND, BMS_ERR_IO. */
enum bms_status bms_store_revoke_key(struct bms_store *store, const char *id,
                                     int64_t revoked_us,
                                     struct bms_diag *diag);

/* Replace a key's name, allow-list and rate limit (requests_per_s 0: no
 * limit).  BMS_ERR_NOT_FOUND, BMS_ERR_IO. */
enum bms_status bms_store_update_key(struct bms_store *store,
                                     const struct bms_key *key,
                                     struct bms_diag *diag);

/* Set only a key's rate limit.  BMS_ERR_NOT_FOUND, BMS_ERR_IO. */
enum bms_status bms_store_set_key_limit(struct bms_store *store,
                                        const char *id,
                                        double requests_per_s, int burst,
                                        struct bms_diag *diag);

/* The number of keys not revoked, into *n_active. */
enum bms_status bms_store_count_keys(struct bms_store *store,
                                     int64_t *n_active,
                                     struct bms_diag *diag);

/* Set a model's rate limit; requests_per_s 0 removes it. */
enum bms_status bms_store_set_model_limit(struct bms_store *store,
                                          const char *model,
                                          double requests_per_s, int burst,
                                          struct bms_diag *diag);

/* A model's rate limit.  BMS_ERR_NOT_FOUND when it has none. */
enum bms_status bms_store_get_model_limit(struct bms_store *store,
                                          const char *model,
                                          double *requests_per_s, int *burst,
                                          struct bms_diag *diag);

/* Called once per model limit; return non-zero to stop early. */
typedef int (*bms_model_limit_fn)(void *ud, const char *model,
                                  double requests_per_s, int burst);

/* Every model limit, ordered by model.  fn runs with the database held. */
enum bms_status bms_store_list_model_limits(struct bms_store *store,
                                            bms_model_limit_fn fn, void *ud,
                                            struct bms_diag *diag);

/*
 * SQLite's data_version of this connection into *out: it changes when
 * another connection (another process: `bms keys`) commits to the file,
 * so a server reloads its keys only when it moved.
 */
enum bms_status bms_store_data_version(struct bms_store *store,
                                       int64_t *out, struct bms_diag *diag);

/* ---- model settings, audit trail, request queries (audit.c) ---- */

/* One change made through the API: who, what, to what, when. */
struct bms_audit_record {
    int64_t id;                     /* the store's, rising; 0 to insert */
    int64_t ts_us;                  /* us since the Unix epoch */
    char key_id[64];                /* "" when auth was off */
    char actor[64];                 /* the key's name, or "anonymous" */
    char action[32];                /* "key.create", "model.load", ... */
    char target[160];               /* a model name, key id, ... */
    char detail[1024];              /* JSON or text, cut to fit */
};

/* Insert an audit record (its id is ignored).  Synchronous;
 * thread-safe. */
enum bms_status bms_store_put_audit(struct bms_store *store,
                                    const struct bms_audit_record *rec,
                                    struct bms_diag *diag);

/* Which audit records bms_store_list_audit gives; NULL, "" and 0 leave a
 * field open. */
struct bms_audit_filter {
    const char *target;             /* exactly this target */
    int64_t since_us;               /* ts_us >= since_us */
    int64_t until_us;               /* ts_us < until_us */
};

/* Called once per audit record; return non-zero to stop early. */
typedef int (*bms_audit_fn)(void *ud, const struct bms_audit_record *rec);

/*
 * The audit records that f (NULL: all) selects, newest first, skipping
 * offset (>= 0) of them and giving at most limit (1..1000).
 * BMS_ERR_INVALID for a limit or offset out of range, BMS_ERR_IO.  fn
 * runs with the database held, so it must not call back into the store.
 * Thread-safe.
 */
enum bms_status bms_store_list_audit(struct bms_store *store,
                                     const struct bms_audit_filter *f,
                                     int limit, int64_t offset,
                                     bms_audit_fn fn, void *ud,
                                     struct bms_diag *diag);

/*
 * Run-time settings of a model (the model_settings table): a JSON object
 * that bms lays over the model's config.json (see bms_settings_merge in
 * bms/repo.h).  put inserts or replaces the row (json NULL deletes it);
 * get gives a copy the caller frees with free(), BMS_ERR_NOT_FOUND when
 * the model has none; list calls fn for every row, ordered by model,
 * without the database held (fn may use the store), and stops when fn
 * returns non-zero.  All synchronous and thread-safe; BMS_ERR_IO,
 * BMS_ERR_NOMEM.
 */
enum bms_status bms_store_put_settings(struct bms_store *store,
                                       const char *model, const char *json,
                                       struct bms_diag *diag);
enum bms_status bms_store_get_settings(struct bms_store *store,
                                       const char *model, char **json_out,
                                       int64_t *updated_us,
                                       struct bms_diag *diag);

typedef int (*bms_settings_fn)(void *ud, const char *model,
                               const char *json, int64_t updated_us);

enum bms_status bms_store_list_settings(struct bms_store *store,
                                        bms_settings_fn fn, void *ud,
                                        struct bms_diag *diag);

/* Limits of a request query. */
#define BMS_REQUEST_QUERY_MAX 1000
#define BMS_REQUEST_QUERY_DEFAULT 100

/* Which request records bms_store_query_requests gives; NULL, "" and 0
 * leave a field open. */
struct bms_request_filter {
    const char *model;
    const char *key_id;
    const char *outcome;            /* "ok", "client_error", ... */
    int64_t since_us;               /* ts_us >= since_us */
    int64_t until_us;               /* ts_us < until_us */
    int limit;                      /* 1..1000; 0: 100 */
    int64_t offset;                 /* records skipped, >= 0 */
};

/*
 * The records written so far that f selects, newest (by arrival) first,
 * after skipping f->offset of them, at most f->limit.  Records still
 * queued are not seen: call bms_store_flush first.  BMS_ERR_INVALID names
 * a limit or offset out of range; BMS_ERR_IO.  fn runs with the database
 * held, so it must not call back into the store.  Thread-safe.
 */
enum bms_status bms_store_query_requests(struct bms_store *store,
                                         const struct bms_request_filter *f,
                                         bms_record_fn fn, void *ud,
                                         struct bms_diag *diag);

#endif
