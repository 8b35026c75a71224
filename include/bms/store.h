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

#endif
