/*
 * API keys and their rate limits in the SQLite store: the keys table (one
 * row per key ever made, revoked ones kept with their revocation time) and
 * the model_limits table (one row per model that has a limit).
 *
 * Only a salt and a salted hash of each key's secret are stored, never the
 * token, so the file alone does not let anyone call the API.  Every
 * function holds store->db_lock for its whole use of the connection.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "bms/store.h"
#include "store/internal.h"

static const char keys_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS keys ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('admin', 'user')),"
    " models TEXT NOT NULL DEFAULT '', salt BLOB NOT NULL,"
    " hash BLOB NOT NULL, requests_per_s REAL NOT NULL DEFAULT 0,"
    " burst INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL,"
    " revoked_us INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS model_limits ("
    " model TEXT PRIMARY KEY, requests_per_s REAL NOT NULL,"
    " burst INTEGER NOT NULL);";

#define KEY_COLUMNS \
    "id, name, role, models, salt, hash, requests_per_s, burst," \
    " created_us, revoked_us"


enum bms_status bms__store_keys_schema(struct bms_store *store,
                                       struct bms_diag *diag)
{
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_exec(store->db, keys_schema_sql, NULL, NULL, NULL)
        != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "creating the key tables", diag);
    }
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


/* A blob column of exactly size bytes into buf; -1 when its size differs
 * (a row written by something else than bms). */
static int blob_column(sqlite3_stmt *st, int col, unsigned char *buf,
                       size_t size)
{
    const void *p = sqlite3_column_blob(st, col);

    if (p == NULL || (size_t)sqlite3_column_bytes(st, col) != size) {
        memset(buf, 0, size);
        return -1;
    }
    memcpy(buf, p, size);
    return 0;
}


/* A row of KEY_COLUMNS into *key; -1 for a row that cannot be a key. */
static int row_to_key(sqlite3_stmt *st, struct bms_key *key)
{
    int bad = 0;

    memset(key, 0, sizeof(*key));
    bms__store_column_text(st, 0, key->id, sizeof(key->id));
    bms__store_column_text(st, 1, key->name, sizeof(key->name));
    bms__store_column_text(st, 2, key->role, sizeof(key->role));
    bms__store_column_text(st, 3, key->models, sizeof(key->models));
    bad |= blob_column(st, 4, key->salt, sizeof(key->salt));
    bad |= blob_column(st, 5, key->hash, sizeof(key->hash));
    key->requests_per_s = sqlite3_column_double(st, 6);
    key->burst = sqlite3_column_int(st, 7);
    key->created_us = sqlite3_column_int64(st, 8);
    key->revoked_us = sqlite3_column_int64(st, 9);
    return bad ? -1 : 0;
}


enum bms_status bms_store_put_key(struct bms_store *store,
                                  const struct bms_key *key,
                                  struct bms_diag *diag)
{
    static const char sql[] =
        "INSERT INTO keys (" KEY_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?)";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "saving a key", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, key->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, key->models, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, key->salt, sizeof(key->salt), SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, key->hash, sizeof(key->hash), SQLITE_STATIC);
    sqlite3_bind_double(st, 7, key->requests_per_s);
    sqlite3_bind_int(st, 8, key->burst);
    sqlite3_bind_int64(st, 9, key->created_us);
    sqlite3_bind_int64(st, 10, key->revoked_us);
    step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID, "store: key %s exists "
                          "already", key->id);
    } else if (step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "saving a key", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


enum bms_status bms_store_get_key(struct bms_store *store, const char *id,
                                  struct bms_key *out,
                                  struct bms_diag *diag)
{
    static const char sql[] =
        "SELECT " KEY_COLUMNS " FROM keys WHERE id = ?";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    struct bms_key key;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "reading a key", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "key '%.20s' not found",
                          id);
    } else if (step != SQLITE_ROW) {
        rc = bms__store_db_error(store->db, "reading a key", diag);
    } else if (row_to_key(st, &key) != 0) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "store: key %.20s: malformed "
                          "salt or hash", id);
    } else {
        *out = key;
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


enum bms_status bms_store_list_keys(struct bms_store *store, int active_only,
                                    bms_key_fn fn, void *ud,
                                    struct bms_diag *diag)
{
    static const char all_sql[] =
        "SELECT " KEY_COLUMNS " FROM keys ORDER BY created_us, id";
    static const char active_sql[] =
        "SELECT " KEY_COLUMNS " FROM keys WHERE revoked_us = 0"
        " ORDER BY created_us, id";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    struct bms_key key;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, active_only ? active_sql : all_sql,
                           -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "listing keys", diag);
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (row_to_key(st, &key) != 0) {
            /* Not a key bms wrote: it can never match a token. */
            continue;
        }
        if (fn(ud, &key) != 0) {
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "listing keys", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


/* Run one statement that changes the row of key id; BMS_ERR_NOT_FOUND
 * when no row has that id.  bind fills the parameters after the first,
 * which is the id. */
static enum bms_status change_key(struct bms_store *store, const char *sql,
                                  const char *id, const char *what,
                                  void (*bind)(sqlite3_stmt *, const void *),
                                  const void *arg, struct bms_diag *diag)
{
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, what, diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bind(st, arg);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, what, diag);
    } else if (sqlite3_changes(store->db) == 0) {
        rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "key '%.20s' not found",
                          id);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


static void bind_revoked(sqlite3_stmt *st, const void *arg)
{
    sqlite3_bind_int64(st, 2, *(const int64_t *)arg);
}


enum bms_status bms_store_revoke_key(struct bms_store *store, const char *id,
                                     int64_t revoked_us,
                                     struct bms_diag *diag)
{
    /* A key revoked before keeps its time: the row still counts as
     * changed (the CASE writes it back), so NOT_FOUND means no such id. */
    static const char sql[] =
        "UPDATE keys SET revoked_us = CASE WHEN revoked_us = 0 THEN ?2"
        " ELSE revoked_us END WHERE id = ?1";

    return change_key(store, sql, id, "revoking a key", bind_revoked,
                      &revoked_us, diag);
}


static void bind_update(sqlite3_stmt *st, const void *arg)
{
    const struct bms_key *key = arg;

    sqlite3_bind_text(st, 2, key->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key->models, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, key->requests_per_s);
    sqlite3_bind_int(st, 5, key->burst);
}


enum bms_status bms_store_update_key(struct bms_store *store,
                                     const struct bms_key *key,
                                     struct bms_diag *diag)
{
    static const char sql[] =
        "UPDATE keys SET name = ?2, models = ?3, requests_per_s = ?4,"
        " burst = ?5 WHERE id = ?1";

    return change_key(store, sql, key->id, "updating a key", bind_update,
                      key, diag);
}


struct limit_arg {
    double requests_per_s;
    int burst;
};


static void bind_limit(sqlite3_stmt *st, const void *arg)
{
    const struct limit_arg *a = arg;

    sqlite3_bind_double(st, 2, a->requests_per_s);
    sqlite3_bind_int(st, 3, a->burst);
}


enum bms_status bms_store_set_key_limit(struct bms_store *store,
                                        const char *id,
                                        double requests_per_s, int burst,
                                        struct bms_diag *diag)
{
    static const char sql[] =
        "UPDATE keys SET requests_per_s = ?2, burst = ?3 WHERE id = ?1";
    struct limit_arg arg = { requests_per_s, burst };

    return change_key(store, sql, id, "setting a key's limit", bind_limit,
                      &arg, diag);
}


/* Run sql, which yields one integer, into *out. */
static enum bms_status query_int(struct bms_store *store, const char *sql,
                                 const char *what, int64_t *out,
                                 struct bms_diag *diag)
{
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, what, diag);
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = bms__store_db_error(store->db, what, diag);
        goto out;
    }
    *out = sqlite3_column_int64(st, 0);

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


enum bms_status bms_store_count_keys(struct bms_store *store,
                                     int64_t *n_active,
                                     struct bms_diag *diag)
{
    return query_int(store, "SELECT count(*) FROM keys WHERE revoked_us = 0",
                     "counting keys", n_active, diag);
}


enum bms_status bms_store_data_version(struct bms_store *store,
                                       int64_t *out, struct bms_diag *diag)
{
    return query_int(store, "PRAGMA data_version", "reading data_version",
                     out, diag);
}


enum bms_status bms_store_set_model_limit(struct bms_store *store,
                                          const char *model,
                                          double requests_per_s, int burst,
                                          struct bms_diag *diag)
{
    static const char put_sql[] =
        "INSERT OR REPLACE INTO model_limits (model, requests_per_s, burst)"
        " VALUES (?, ?, ?)";
    static const char delete_sql[] =
        "DELETE FROM model_limits WHERE model = ?";
    int removing = requests_per_s <= 0;
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, removing ? delete_sql : put_sql, -1,
                           &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "setting a model limit", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    if (!removing) {
        sqlite3_bind_double(st, 2, requests_per_s);
        sqlite3_bind_int(st, 3, burst);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "setting a model limit", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


enum bms_status bms_store_get_model_limit(struct bms_store *store,
                                          const char *model,
                                          double *requests_per_s, int *burst,
                                          struct bms_diag *diag)
{
    static const char sql[] =
        "SELECT requests_per_s, burst FROM model_limits WHERE model = ?";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "reading a model limit", diag);
        goto out;
    }
    sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_DONE) {
        rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%.127s' has no "
                          "rate limit", model);
    } else if (step != SQLITE_ROW) {
        rc = bms__store_db_error(store->db, "reading a model limit", diag);
    } else {
        *requests_per_s = sqlite3_column_double(st, 0);
        *burst = sqlite3_column_int(st, 1);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}


enum bms_status bms_store_list_model_limits(struct bms_store *store,
                                            bms_model_limit_fn fn, void *ud,
                                            struct bms_diag *diag)
{
    static const char sql[] =
        "SELECT model, requests_per_s, burst FROM model_limits"
        " ORDER BY model";
    sqlite3_stmt *st = NULL;
    enum bms_status rc = BMS_OK;
    char model[128];
    int step;

    pthread_mutex_lock(&store->db_lock);
    if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = bms__store_db_error(store->db, "listing model limits", diag);
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        bms__store_column_text(st, 0, model, sizeof(model));
        if (fn(ud, model, sqlite3_column_double(st, 1),
               sqlite3_column_int(st, 2)) != 0) {
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = bms__store_db_error(store->db, "listing model limits", diag);
    }

out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&store->db_lock);
    return rc;
}
