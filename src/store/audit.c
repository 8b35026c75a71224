/*
 * Model settings, the audit trail and request queries.
 *
 * The audit table keeps one row per change made over the API; the
 * model_settings table one JSON object per model, laid over its
 * config.json at every load.  Request queries read the requests table of
 * sqlite.c, whose key_id column this file adds to stores made before it
 * existed.  Queries are built from the filters present only, so that
 * SQLite can use the index of the leading filter; every use of the
 * connection holds db_lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define LIST_MAX BMS_REQUEST_QUERY_MAX  /* rows one listing may give */
#define SQL_SIZE 512

static const char audit_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, key_id TEXT,"
    " actor TEXT, action TEXT, target TEXT, detail TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_ts_us ON audit (ts_us);"
    "CREATE INDEX IF NOT EXISTS audit_target ON audit (target, id);"
    "CREATE TABLE IF NOT EXISTS model_settings ("
    " model TEXT PRIMARY KEY, json TEXT NOT NULL, updated_us INTEGER);";

/* Run after key_id exists: the indexes of the request filters. */
static const char request_index_sql[] =
    "CREATE INDEX IF NOT EXISTS requests_model_ts ON requests"
    " (model, ts_us);"
    "CREATE INDEX IF NOT EXISTS requests_key_ts ON requests"
    " (key_id, ts_us);"
    "CREATE INDEX IF NOT EXISTS requests_outcome_ts ON requests"
    " (outcome, ts_us);";


/* Whether the requests table has a key_id column; -1 on error. */
static int has_key_id(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    int step;

    if (sqlite3_prepare_v2(db, "PRAGMA table_info(requests)", -1, &st,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW && !found) {
        const unsigned char *name = sqlite3_column_text(st, 1);

        found = name != NULL && strcmp((const char *)name, "key_id") == 0;
    }
    sqlite3_finalize(st);
    if (!found && step != SQLITE_DONE) {
        return -1;
    }
    return found;
}


enum bms_status bms__store_audit_schema(struct bms_store *store,
                                        struct bms_diag *diag)
{
    sqlite3 *db = store->db;
    enum bms_status rc = BMS_OK;
    int has;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_exec(db, audit_schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(db, "creating the audit tables", diag);
        goto out;
    }

    /* Stores of schema version 1 have no key_id column: add it. */
    has = has_key_id(db);
    if (has < 0) {
        rc = bms__store_db_error(db, "reading the requests columns", diag);
        goto out;
    }
    if (!has && sqlite3_exec(db, "ALTER TABLE requests ADD COLUMN key_id"
                             " TEXT NOT NULL DEFAULT ''", NULL, NULL, NULL)
                    != SQLITE_OK) {
        rc = bms__store_db_error(db, "adding requests.key_id", diag);
        goto out;
    }
    if (sqlite3_exec(db, request_index_sql, NULL, NULL, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(db, "creating the request indexes", diag);
    }

out:
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


/* A text field of a record: at most its array size, NUL or not. */
static void bind_field(sqlite3_stmt *st, int col, const char *s,
                       size_t size)
{
    sqlite3_bind_text(st, col, s, (int)strnlen(s, size), SQLITE_TRANSIENT);
}


static int is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}


/* ---- the audit trail ---- */

enum bms_status bms_store_put_audit(struct bms_store *store,
                                    const struct bms_audit_record *rec,
                                    struct bms_diag *diag)
{
    static const char sql[] =
        "INSERT INTO audit (ts_us, key_id, actor, action, target, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "saving an audit record", diag);
        goto out;
    }
    sqlite3_bind_int64(st, 1, rec->ts_us);
    bind_field(st, 2, rec->key_id, sizeof(rec->key_id));
    bind_field(st, 3, rec->actor, sizeof(rec->actor));
    bind_field(st, 4, rec->action, sizeof(rec->action));
    bind_field(st, 5, rec->target, sizeof(rec->target));
    bind_field(st, 6, rec->detail, sizeof(rec->detail));
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "saving an audit record", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


static void row_to_audit(sqlite3_stmt *st, struct bms_audit_record *a)
{
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    a->ts_us = sqlite3_column_int64(st, 1);
    bms__store_column_text(st, 2, a->key_id, sizeof(a->key_id));
    bms__store_column_text(st, 3, a->actor, sizeof(a->actor));
    bms__store_column_text(st, 4, a->action, sizeof(a->action));
    bms__store_column_text(st, 5, a->target, sizeof(a->target));
    bms__store_column_text(st, 6, a->detail, sizeof(a->detail));
}


static enum bms_status check_page(int limit, int64_t offset,
                                  struct bms_diag *diag)
{
    if (limit < 1 || limit > LIST_MAX) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "limit: expected an "
                            "integer in 1..%d", LIST_MAX);
    }
    if (offset < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "offset: expected an "
                            "integer >= 0");
    }
    return BMS_OK;
}


/* A query under construction: the SQL text and the values to bind, in
 * order.  Only texts and integers are bound. */
struct query {
    char sql[SQL_SIZE];
    size_t len;
    int n_args;
    const char *texts[8];
    int64_t ints[8];
};


/* Append "<AND|WHERE> clause" binding a text, or an integer. */
static void query_text(struct query *q, const char *clause, const char *v)
{
    q->len += (size_t)snprintf(q->sql + q->len, sizeof(q->sql) - q->len,
                               " %s %s", q->n_args > 0 ? "AND" : "WHERE",
                               clause);
    q->texts[q->n_args++] = v;
}


static void query_int(struct query *q, const char *clause, int64_t v)
{
    q->len += (size_t)snprintf(q->sql + q->len, sizeof(q->sql) - q->len,
                               " %s %s", q->n_args > 0 ? "AND" : "WHERE",
                               clause);
    q->texts[q->n_args] = NULL;
    q->ints[q->n_args++] = v;
}


/* Append the order and page, prepare and bind; the caller finalizes. */
static int query_prepare(sqlite3 *db, struct query *q, const char *order,
                         int limit, int64_t offset, sqlite3_stmt **out)
{
    sqlite3_stmt *st = NULL;

    q->len += (size_t)snprintf(q->sql + q->len, sizeof(q->sql) - q->len,
                               " ORDER BY %s LIMIT ? OFFSET ?", order);
    if (q->len >= sizeof(q->sql) ||
        sqlite3_prepare_v2(db, q->sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    for (int i = 0; i < q->n_args; i++) {
        if (q->texts[i] != NULL) {
            sqlite3_bind_text(st, i + 1, q->texts[i], -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_int64(st, i + 1, q->ints[i]);
        }
    }
    sqlite3_bind_int(st, q->n_args + 1, limit);
    sqlite3_bind_int64(st, q->n_args + 2, offset);
    *out = st;
    return 0;
}


enum bms_status bms_store_list_audit(struct bms_store *store,
                                     const struct bms_audit_filter *f,
                                     int limit, int64_t offset,
                                     bms_audit_fn fn, void *ud,
                                     struct bms_diag *diag)
{
    struct bms_audit_record rec;
    struct query q;
    sqlite3_stmt *st = NULL;
    enum bms_status rc = check_page(limit, offset, diag);
    int step = SQLITE_DONE;

    if (rc != BMS_OK) {
        return rc;
    }
    memset(&q, 0, sizeof(q));
    q.len = (size_t)snprintf(q.sql, sizeof(q.sql), "SELECT id, ts_us,"
                             " key_id, actor, action, target, detail"
                             " FROM audit");
    if (f != NULL && is_set(f->target)) {
        query_text(&q, "target = ?", f->target);
    }
    if (f != NULL && f->since_us != 0) {
        query_int(&q, "ts_us >= ?", f->since_us);
    }
    if (f != NULL && f->until_us != 0) {
        query_int(&q, "ts_us < ?", f->until_us);
    }

    pthread_mutex_lock(&store->db_lock);
    if (query_prepare(store->db, &q, "id DESC", limit, offset, &st) != 0) {
        rc = bms__store_db_error(store->db, "listing the audit trail", diag);
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_audit(st, &rec);
        if (fn(ud, &rec) != 0) {
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "listing the audit trail", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


/* ---- model settings ---- */

enum bms_status bms_store_put_settings(struct bms_store *store,
                                       const char *model, const char *json,
                                       struct bms_diag *diag)
{
    static const char put_sql[] =
        "INSERT OR REPLACE INTO model_settings (model, json, updated_us)"
        " VALUES (?, ?, ?)";
    static const char delete_sql[] =
        "DELETE FROM model_settings WHERE model = ?";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, json != NULL ? put_sql : delete_sql,
                           -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "saving model settings", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    if (json != NULL) {
        sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, bms_wall_us());
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "saving model settings", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


/* A copy of text column col, "" for NULL; NULL when memory runs out. */
static char *column_copy(sqlite3_stmt *st, int col)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t len = s != NULL ? (size_t)sqlite3_column_bytes(st, col) : 0;
    char *copy = malloc(len + 1);

    if (copy != NULL) {
        if (len > 0) {
            memcpy(copy, s, len);
        }
        copy[len] = '\0';
    }
    return copy;
}


enum bms_status bms_store_get_settings(struct bms_store *store,
                                       const char *model, char **json_out,
                                       int64_t *updated_us,
                                       struct bms_diag *diag)
{
    static const char sql[] =
        "SELECT json, updated_us FROM model_settings WHERE model = ?";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    char *json;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "reading model settings", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%.128s' has no "
                          "settings", model);
        goto out;
    }
    if (step != SQLITE_ROW) {
        rc = bms__store_db_error(store->db, "reading model settings", diag);
        goto out;
    }
    json = column_copy(st, 0);
    if (json == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "store: out of memory");
        goto out;
    }
    *json_out = json;
    if (updated_us != NULL) {
        *updated_us = sqlite3_column_int64(st, 1);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


/* The rows of model_settings, copied out so that fn runs unlocked. */
struct settings_row {
    char *model;
    char *json;
    int64_t updated_us;
};


static void rows_free(struct settings_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].model);
        free(rows[i].json);
    }
    free(rows);
}


/* Read every row into *out (n_out of them); db_lock is held. */
static enum bms_status read_settings(sqlite3 *db, struct settings_row **out,
                                     size_t *n_out, struct bms_diag *diag)
{
    static const char sql[] =
        "SELECT model, json, updated_us FROM model_settings ORDER BY model";
    struct settings_row *rows = NULL;
    size_t n = 0;
    size_t cap = 0;
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    int step;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return bms__store_db_error(db, "listing model settings", diag);
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t grown_cap = cap ? cap * 2 : 16;
            struct settings_row *grown =
                realloc(rows, grown_cap * sizeof(*rows));

            if (grown == NULL) {
                break;
            }
            rows = grown;
            cap = grown_cap;
        }
        rows[n].model = column_copy(st, 0);
        rows[n].json = column_copy(st, 1);
        rows[n].updated_us = sqlite3_column_int64(st, 2);
        n++;
        if (rows[n - 1].model == NULL || rows[n - 1].json == NULL) {
            break;
        }
    }
    if (step == SQLITE_ROW) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "store: out of memory");
    } else if (step != SQLITE_DONE) {
        rc = bms__store_db_error(db, "listing model settings", diag);
    }
    sqlite3_finalize(st);
    if (rc != BMS_OK) {
        rows_free(rows, n);
        return rc;
    }
    *out = rows;
    *n_out = n;
    return BMS_OK;
}


enum bms_status bms_store_list_settings(struct bms_store *store,
                                        bms_settings_fn fn, void *ud,
                                        struct bms_diag *diag)
{
    struct settings_row *rows = NULL;
    size_t n = 0;
    enum bms_status rc;

    pthread_mutex_lock(&store->db_lock);
    rc = read_settings(store->db, &rows, &n, diag);
    pthread_mutex_unlock(&store->db_lock);
    if (rc != BMS_OK) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (fn(ud, rows[i].model, rows[i].json, rows[i].updated_us) != 0) {
            break;
        }
    }
    rows_free(rows, n);
    return BMS_OK;
}


/* ---- request queries ---- */

/* The WHERE clauses of f into q. */
static void request_where(struct query *q,
                          const struct bms_request_filter *f)
{
    if (is_set(f->model)) {
        query_text(q, "model = ?", f->model);
    }
    if (is_set(f->key_id)) {
        query_text(q, "key_id = ?", f->key_id);
    }
    if (is_set(f->outcome)) {
        query_text(q, "outcome = ?", f->outcome);
    }
    if (f->since_us != 0) {
        query_int(q, "ts_us >= ?", f->since_us);
    }
    if (f->until_us != 0) {
        query_int(q, "ts_us < ?", f->until_us);
    }
}


enum bms_status bms_store_query_requests(struct bms_store *store,
                                         const struct bms_request_filter *f,
                                         bms_record_fn fn, void *ud,
                                         struct bms_diag *diag)
{
    struct bms_request_record rec;
    struct query q;
    sqlite3_stmt *st = NULL;
    int limit = f->limit != 0 ? f->limit : BMS_REQUEST_QUERY_DEFAULT;
    enum bms_status rc = check_page(limit, f->offset, diag);
    int step = SQLITE_DONE;

    if (rc != BMS_OK) {
        return rc;
    }
    memset(&q, 0, sizeof(q));
    q.len = (size_t)snprintf(q.sql, sizeof(q.sql), "SELECT "
                             BMS__STORE_REQUEST_COLUMNS " FROM requests");
    request_where(&q, f);

    pthread_mutex_lock(&store->db_lock);
    if (query_prepare(store->db, &q, "ts_us DESC, seq DESC", limit,
                      f->offset, &st) != 0) {
        rc = bms__store_db_error(store->db, "querying requests", diag);
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        bms__store_row_to_record(st, &rec);
        if (fn(ud, &rec) != 0) {
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "querying requests", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}
