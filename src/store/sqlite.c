/*
 * The SQLite store: model manifests, alerts and request records in one
 * database file in WAL mode.  Alerts (a model version stopped or resumed)
 * are rare and written at once.
 *
 * Request records go through an in-memory queue.  bms_store_record copies
 * a record in under the queue mutex and returns; one writer thread takes
 * the whole queue at a time and writes it in a single transaction, every
 * WRITE_PERIOD_US or as soon as BATCH_RECORDS are waiting.  Invariant:
 * n_done counts the records, in queue order, that are written or given up
 * on, so a flush waits for n_done to reach the count queued before it.
 * One connection serves every thread; db_lock keeps the writer's
 * transactions and the synchronous calls from interleaving on it.
 */
#define _GNU_SOURCE              /* SCHED_IDLE */

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bms/store.h"
#include "store/internal.h"

#define SCHEMA_VERSION 2             /* 2: requests.key_id (audit.c) */
#define BUSY_TIMEOUT_MS 5000
#define WRITE_PERIOD_US 50000        /* longest wait before a write */
#define BATCH_RECORDS 512            /* this many queued: write at once */
#define WRITE_ATTEMPTS 3             /* then the batch is dropped */
#define WRITER_NICE 10               /* the writer thread's nice value */
#define BACKLOG_RECORDS 8192         /* waiting past this: not SCHED_IDLE */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS models ("
    " name TEXT NOT NULL, version INTEGER NOT NULL, manifest TEXT,"
    " loaded_at_us INTEGER, PRIMARY KEY (name, version));"
    "CREATE TABLE IF NOT EXISTS requests ("
    " seq INTEGER PRIMARY KEY, id TEXT, ts_us INTEGER, model TEXT,"
    " version INTEGER, http_status INTEGER, outcome TEXT, error TEXT,"
    " latency_us INTEGER, bytes_in INTEGER, bytes_out INTEGER,"
    " client TEXT);"
    "CREATE INDEX IF NOT EXISTS requests_ts_us ON requests (ts_us);"
    "CREATE TABLE IF NOT EXISTS alerts ("
    " id INTEGER PRIMARY KEY, ts_us INTEGER, model TEXT, version INTEGER,"
    " kind TEXT, message TEXT);";

static const char insert_sql[] =
    "INSERT INTO requests (id, ts_us, model, version, http_status, outcome,"
    " error, latency_us, bytes_in, bytes_out, client, key_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

static const char select_sql[] =
    "SELECT " BMS__STORE_REQUEST_COLUMNS
    " FROM requests ORDER BY ts_us DESC, seq DESC LIMIT ?";

/* Make room for one more record; 0 on success. */
static int list_grow(struct record_list *list)
{
    struct bms_request_record *grown;
    size_t cap;

    if (list->n < list->cap) {
        return 0;
    }
    cap = list->cap ? list->cap * 2 : 256;
    grown = realloc(list->recs, cap * sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    list->recs = grown;
    list->cap = cap;
    return 0;
}


/* Moves every record of from behind those of to; 0 on success.  On
 * failure both lists are as they were. */
static int list_move(struct record_list *to, struct record_list *from)
{
    size_t need = to->n + from->n;

    if (from->n == 0) {
        return 0;
    }
    if (to->n == 0) {
        struct record_list tmp = *to;

        *to = *from;
        *from = tmp;
        return 0;
    }
    if (need > to->cap) {
        struct bms_request_record *grown;

        grown = realloc(to->recs, need * sizeof(*grown));
        if (grown == NULL) {
            return -1;
        }
        to->recs = grown;
        to->cap = need;
    }
    memcpy(to->recs + to->n, from->recs, from->n * sizeof(*from->recs));
    to->n = need;
    from->n = 0;
    return 0;
}


enum bms_status bms__store_db_error(sqlite3 *db, const char *what,
                                    struct bms_diag *diag)
{
    return bms_diag_set(diag, BMS_ERR_IO, "store: %s: %s", what,
                        db != NULL ? sqlite3_errmsg(db) : "out of memory");
}


/* A text field of a record: at most its array size, NUL or not. */
static void bind_field(sqlite3_stmt *st, int col, const char *s,
                       size_t size)
{
    sqlite3_bind_text(st, col, s, (int)strnlen(s, size), SQLITE_TRANSIENT);
}


static int insert_one(sqlite3_stmt *st, const struct bms_request_record *r)
{
    sqlite3_reset(st);
    bind_field(st, 1, r->id, sizeof(r->id));
    sqlite3_bind_int64(st, 2, r->ts_us);
    bind_field(st, 3, r->model, sizeof(r->model));
    sqlite3_bind_int64(st, 4, r->version);
    sqlite3_bind_int(st, 5, r->http_status);
    bind_field(st, 6, r->outcome, sizeof(r->outcome));
    bind_field(st, 7, r->error, sizeof(r->error));
    sqlite3_bind_int64(st, 8, r->latency_us);
    sqlite3_bind_int64(st, 9, r->bytes_in);
    sqlite3_bind_int64(st, 10, r->bytes_out);
    bind_field(st, 11, r->client, sizeof(r->client));
    bind_field(st, 12, r->key_id, sizeof(r->key_id));
    return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}


/* Writes the batch in one transaction; 0 on success, else nothing of it
 * is in the database. */
static int write_batch(struct bms_store *store,
                       const struct record_list *batch)
{
    int bad;

    pthread_mutex_lock(&store->db_lock);
    bad = sqlite3_exec(store->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK;
    for (size_t i = 0; i < batch->n && !bad; i++) {
        bad = insert_one(store->insert, &batch->recs[i]);
    }
    sqlite3_reset(store->insert);
    if (!bad) {
        bad = sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL)
              != SQLITE_OK;
    }
    if (bad) {
        bms_log(BMS_LOG_ERROR, "store", "msg=\"request records not "
                "written\" count=%zu error=\"%s\"", batch->n,
                sqlite3_errmsg(store->db));
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&store->db_lock);
    return bad;
}


static void deadline_after(struct timespec *ts, int64_t us)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(us / 1000000);
    ts->tv_nsec += (long)(us % 1000000) * 1000;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}


/* With the lock held: wait until there is a batch worth writing (full,
 * old enough, wanted by a flush, or the store is stopping). */
static void wait_for_batch(struct bms_store *store, int retrying)
{
    struct timespec deadline;

    while (!store->stopping && store->queue.n == 0 && !retrying) {
        pthread_cond_wait(&store->wake, &store->lock);
    }
    deadline_after(&deadline, WRITE_PERIOD_US);
    while (!store->stopping && store->n_flushing == 0
           && store->queue.n < BATCH_RECORDS) {
        if (pthread_cond_timedwait(&store->wake, &store->lock, &deadline)
            != 0) {
            break;
        }
    }
}


/*
 * Records can wait; requests cannot.  The writer thread runs under
 * SCHED_IDLE, so that a request thread waking on its core takes the core
 * at once (at nice 10 alone, a batch of inserts kept it up to a
 * scheduler slice, a millisecond or more of a request's latency).  When
 * the backlog passes BACKLOG_RECORDS, a machine with no idle time would
 * otherwise starve it: it goes back to SCHED_OTHER at nice WRITER_NICE
 * until the backlog is written.  Linux applies both per thread.  Best
 * effort: *idle says which holds.
 */
static void writer_priority(int *idle, size_t backlog)
{
    struct sched_param sp;
    int want = backlog <= BACKLOG_RECORDS;

    if (*idle == want) {
        return;
    }
    memset(&sp, 0, sizeof(sp));
    if (sched_setscheduler(0, want ? SCHED_IDLE : SCHED_OTHER, &sp) == 0) {
        *idle = want;
    }
}


/* The writer thread: take the queue, write it, count it done.  A batch
 * that fails is kept and retried with the next one, WRITE_ATTEMPTS times
 * in all, then dropped and logged. */
static void *writer_main(void *arg)
{
    struct bms_store *store = arg;
    struct record_list batch = {NULL, 0, 0};
    int attempts = 0;
    int idle = 0;

    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                      WRITER_NICE);
    writer_priority(&idle, 0);
    pthread_mutex_lock(&store->lock);
    for (;;) {
        wait_for_batch(store, batch.n > 0);
        if (batch.n == 0 && store->queue.n == 0 && store->stopping) {
            break;
        }
        if (list_move(&batch, &store->queue) != 0) {
            bms_log(BMS_LOG_ERROR, "store", "msg=\"out of memory joining "
                    "a retried batch\"");
        }
        pthread_mutex_unlock(&store->lock);
        writer_priority(&idle, batch.n);

        attempts = write_batch(store, &batch) == 0 ? 0 : attempts + 1;

        pthread_mutex_lock(&store->lock);
        if (attempts == 0 || attempts >= WRITE_ATTEMPTS) {
            if (attempts > 0) {
                bms_log(BMS_LOG_ERROR, "store", "msg=\"request records "
                        "dropped\" count=%zu attempts=%d", batch.n,
                        attempts);
                store->n_dropped += batch.n;
            }
            store->n_done += batch.n;
            batch.n = 0;
            attempts = 0;
            pthread_cond_broadcast(&store->done);
        }
    }
    pthread_mutex_unlock(&store->lock);
    free(batch.recs);
    return NULL;
}


static enum bms_status read_schema_version(sqlite3 *db, int *out,
                                           struct bms_diag *diag)
{
    sqlite3_stmt *st = NULL;
    int step;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL)
        != SQLITE_OK) {
        return bms__store_db_error(db, "reading the schema version", diag);
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    if (step != SQLITE_ROW) {
        return bms__store_db_error(db, "reading the schema version", diag);
    }
    return BMS_OK;
}


/* Settings, tables and the schema version of a freshly opened db. */
static enum bms_status db_prepare(sqlite3 *db, const char *path,
                                  struct bms_diag *diag)
{
    char sql[64];
    int version = 0;
    enum bms_status rc;

    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)
            != SQLITE_OK
        || sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL)
            != SQLITE_OK) {
        return bms__store_db_error(db, "setting WAL mode", diag);
    }
    rc = read_schema_version(db, &version, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (version > SCHEMA_VERSION) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "store %s: schema "
                            "version %d is newer than this bms knows (%d)",
                            path, version, SCHEMA_VERSION);
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", SCHEMA_VERSION);
    if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK
        || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return bms__store_db_error(db, "creating the tables", diag);
    }
    return BMS_OK;
}


static void store_free(struct bms_store *store)
{
    sqlite3_finalize(store->insert);
    sqlite3_close(store->db);
    pthread_cond_destroy(&store->done);
    pthread_cond_destroy(&store->wake);
    pthread_mutex_destroy(&store->lock);
    pthread_mutex_destroy(&store->db_lock);
    free(store->queue.recs);
    free(store);
}


enum bms_status bms_store_open_sqlite(const char *path,
                                      struct bms_store **out,
                                      struct bms_diag *diag)
{
    struct bms_store *store = calloc(1, sizeof(*store));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    enum bms_status rc;

    if (store == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "store: out of memory");
    }
    pthread_mutex_init(&store->db_lock, NULL);
    pthread_mutex_init(&store->lock, NULL);
    pthread_cond_init(&store->wake, NULL);
    pthread_cond_init(&store->done, NULL);

    if (sqlite3_open_v2(path, &store->db, flags, NULL) != SQLITE_OK) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "store %s: %s", path,
                          store->db != NULL ? sqlite3_errmsg(store->db)
                                            : "out of memory");
        goto out;
    }
    rc = db_prepare(store->db, path, diag);
    if (rc == BMS_OK) {
        rc = bms__store_keys_schema(store, diag);
    }
    if (rc == BMS_OK) {
        rc = bms__store_audit_schema(store, diag);
    }
    if (rc != BMS_OK) {
        goto out;
    }
    if (sqlite3_prepare_v2(store->db, insert_sql, -1, &store->insert, NULL)
        != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "preparing the insert", diag);
        goto out;
    }
    if (pthread_create(&store->writer, NULL, writer_main, store) != 0) {
        rc = bms_diag_set(diag, BMS_ERR_INTERNAL, "store: cannot start the "
                          "writer thread");
        goto out;
    }

out:
    if (rc != BMS_OK) {
        store_free(store);
        return rc;
    }
    *out = store;
    return BMS_OK;
}


void bms_store_close(struct bms_store *store)
{
    if (store == NULL) {
        return;
    }
    pthread_mutex_lock(&store->lock);
    store->stopping = 1;
    pthread_cond_signal(&store->wake);
    pthread_mutex_unlock(&store->lock);
    pthread_join(store->writer, NULL);
    store_free(store);
}


enum bms_status bms_store_put_model(struct bms_store *store,
                                    const char *name, int64_t version,
                                    const char *manifest_json,
                                    struct bms_diag *diag)
{
    static const char sql[] =
        "INSERT OR REPLACE INTO models (name, version, manifest,"
        " loaded_at_us) VALUES (?, ?, ?, ?)";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "saving a model", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    if (manifest_json != NULL) {
        sqlite3_bind_text(st, 3, manifest_json, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 4, bms_wall_us());
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "saving a model", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


void bms_store_record(struct bms_store *store,
                      const struct bms_request_record *rec)
{
    const char *refused = NULL;

    pthread_mutex_lock(&store->lock);
    if (store->stopping) {
        refused = "store closing";
    } else if (list_grow(&store->queue) != 0) {
        refused = "out of memory";
    }
    if (refused != NULL) {
        store->n_dropped++;
        pthread_mutex_unlock(&store->lock);
        bms_log(BMS_LOG_ERROR, "store", "msg=\"request record dropped\" "
                "reason=\"%s\"", refused);
        return;
    }
    store->queue.recs[store->queue.n++] = *rec;
    store->n_queued++;

    /* The writer sleeps on an empty queue and waits out the period on a
     * short one: wake it for the first record and for a full batch. */
    if (store->queue.n == 1 || store->queue.n == BATCH_RECORDS) {
        pthread_cond_signal(&store->wake);
    }
    pthread_mutex_unlock(&store->lock);
}


enum bms_status bms_store_flush(struct bms_store *store)
{
    uint64_t target;
    uint64_t dropped;

    pthread_mutex_lock(&store->lock);
    target = store->n_queued;
    dropped = store->n_dropped;
    store->n_flushing++;
    pthread_cond_signal(&store->wake);
    while (store->n_done < target) {
        pthread_cond_wait(&store->done, &store->lock);
    }
    store->n_flushing--;
    dropped = store->n_dropped - dropped;
    pthread_mutex_unlock(&store->lock);
    return dropped == 0 ? BMS_OK : BMS_ERR_IO;
}


/* A text column into a record field, cut to fit; NULL becomes "". */
void bms__store_column_text(sqlite3_stmt *st, int col, char *buf,
                            size_t size)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t len = s != NULL ? (size_t)sqlite3_column_bytes(st, col) : 0;

    if (len >= size) {
        len = size - 1;
    }
    if (len > 0) {
        memcpy(buf, s, len);
    }
    buf[len] = '\0';
}


void bms__store_row_to_record(sqlite3_stmt *st,
                              struct bms_request_record *r)
{
    memset(r, 0, sizeof(*r));
    bms__store_column_text(st, 0, r->id, sizeof(r->id));
    r->ts_us = sqlite3_column_int64(st, 1);
    bms__store_column_text(st, 2, r->model, sizeof(r->model));
    r->version = sqlite3_column_int64(st, 3);
    r->http_status = sqlite3_column_int(st, 4);
    bms__store_column_text(st, 5, r->outcome, sizeof(r->outcome));
    bms__store_column_text(st, 6, r->error, sizeof(r->error));
    r->latency_us = sqlite3_column_int64(st, 7);
    r->bytes_in = sqlite3_column_int64(st, 8);
    r->bytes_out = sqlite3_column_int64(st, 9);
    bms__store_column_text(st, 10, r->client, sizeof(r->client));
    bms__store_column_text(st, 11, r->key_id, sizeof(r->key_id));
}


/*
 * Records already written, newest first; a negative limit lists them all.
 * Records still queued are not seen: call bms_store_flush first.  fn runs
 * with the database held, so it must not call back into the store.
 */
enum bms_status bms_store_list_requests(struct bms_store *store, int limit,
                                        bms_record_fn fn, void *ud,
                                        struct bms_diag *diag)
{
    struct bms_request_record rec;
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, select_sql, -1, &st, NULL)
        != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "listing requests", diag);
        goto out;
    }
    sqlite3_bind_int(st, 1, limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        bms__store_row_to_record(st, &rec);
        if (fn(ud, &rec) != 0) {
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "listing requests", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


enum bms_status bms_store_put_alert(struct bms_store *store,
                                    const struct bms_alert *alert,
                                    struct bms_diag *diag)
{
    static const char sql[] =
        "INSERT INTO alerts (ts_us, model, version, kind, message)"
        " VALUES (?, ?, ?, ?, ?)";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "saving an alert", diag);
        goto out;
    }
    sqlite3_bind_int64(st, 1, alert->ts_us);
    bind_field(st, 2, alert->model, sizeof(alert->model));
    sqlite3_bind_int64(st, 3, alert->version);
    bind_field(st, 4, alert->kind, sizeof(alert->kind));
    bind_field(st, 5, alert->message, sizeof(alert->message));
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "saving an alert", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


static void row_to_alert(sqlite3_stmt *st, struct bms_alert *a)
{
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    a->ts_us = sqlite3_column_int64(st, 1);
    bms__store_column_text(st, 2, a->model, sizeof(a->model));
    a->version = sqlite3_column_int64(st, 3);
    bms__store_column_text(st, 4, a->kind, sizeof(a->kind));
    bms__store_column_text(st, 5, a->message, sizeof(a->message));
}


enum bms_status bms_store_list_alerts(struct bms_store *store, int limit,
                                      bms_alert_fn fn, void *ud,
                                      struct bms_diag *diag)
{
    static const char sql[] =
        "SELECT id, ts_us, model, version, kind, message"
        " FROM alerts ORDER BY id DESC LIMIT ?";
    struct bms_alert alert;
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "listing alerts", diag);
        goto out;
    }
    sqlite3_bind_int(st, 1, limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_alert(st, &alert);
        if (fn(ud, &alert) != 0) {
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "listing alerts", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}
