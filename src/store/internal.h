/*
 * What the store's files share: the connection and its lock.  sqlite.c
 * opens the database and writes request records; keys.c (API keys and
 * their limits) and audit.c (model settings, the audit trail, request
 * queries) add their tables and statements beside it.  Every use of db
 * holds db_lock.
 */
#ifndef BMS_STORE_INTERNAL_H
#define BMS_STORE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <sqlite3.h>

#include "bms/store.h"

/* A growable array of records. */
struct record_list {
    struct bms_request_record *recs;
    size_t n;
    size_t cap;
};

struct bms_store {
    sqlite3 *db;
    sqlite3_stmt *insert;
    pthread_mutex_t db_lock;         /* one user of db at a time */

    pthread_mutex_t lock;            /* guards everything below */
    pthread_cond_t wake;             /* the writer: records or a stop */
    pthread_cond_t done;             /* flushers: n_done moved */
    struct record_list queue;
    uint64_t n_queued;               /* records ever queued */
    uint64_t n_done;                 /* records written or dropped */
    uint64_t n_dropped;
    int n_flushing;                  /* flushers waiting: write now */
    int stopping;
    pthread_t writer;
};

/* The columns of a request record, in the order
 * bms__store_row_to_record reads them. */
#define BMS__STORE_REQUEST_COLUMNS                                          \
    "id, ts_us, model, version, http_status, outcome, error, latency_us,"  \
    " bytes_in, bytes_out, client, key_id"

/* A row of BMS__STORE_REQUEST_COLUMNS into *r. */
void bms__store_row_to_record(sqlite3_stmt *st,
                              struct bms_request_record *r);

/* BMS_ERR_IO with "store: <what>: <SQLite's message>" in diag. */
enum bms_status bms__store_db_error(sqlite3 *db, const char *what,
                                    struct bms_diag *diag);

/* A text column into a fixed field of size bytes, cut to fit; NULL
 * becomes "". */
void bms__store_column_text(sqlite3_stmt *st, int col, char *buf,
                            size_t size);

/*
 * Create the tables and indexes of keys.c and audit.c when missing; run
 * by bms_store_open_sqlite with db_lock free, before any other use.
 * Return BMS_ERR_IO with the message in diag on failure.
 */
enum bms_status bms__store_keys_schema(struct bms_store *store,
                                       struct bms_diag *diag);
enum bms_status bms__store_audit_schema(struct bms_store *store,
                                        struct bms_diag *diag);

#endif
