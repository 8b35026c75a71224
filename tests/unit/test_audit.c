/*
 * Unit tests of the audit trail, model settings and request queries of
 * the store (src/store/audit.c), and of the settings merge
 * (src/repo/settings.c).  Expected counts come from how the records were
 * made (each field a known function of its index), and the schema checks
 * read the file with sqlite3 directly, not through the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "unit.h"
#include "harness.h"

#include "bms/repo.h"
#include "bms/store.h"

#define N_RECORDS 60
#define BASE_TS 1700000000000000LL


/* One text value of a query run on the file with sqlite3 itself. */
static void query_one(const char *path, const char *sql, char *out,
                      size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const unsigned char *s;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    s = sqlite3_column_text(st, 0);
    snprintf(out, size, "%s", s != NULL ? (const char *)s : "");
    sqlite3_finalize(st);
    sqlite3_close(db);
}


/* The detail column of every row of EXPLAIN QUERY PLAN sql, joined. */
static void query_plan(const char *path, const char *sql, char *out,
                       size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    char full[512];

    snprintf(full, sizeof(full), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, full, -1, &st, NULL),
                     SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(st) == SQLITE_ROW && n < size) {
        const unsigned char *d = sqlite3_column_text(st, 3);

        n += (size_t)snprintf(out + n, size - n, "%s; ",
                              d != NULL ? (const char *)d : "");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}


/* ---- the audit trail ---- */

struct audit_list {
    struct bms_audit_record recs[16];
    int n;
};


static int collect_audit(void *ud, const struct bms_audit_record *rec)
{
    struct audit_list *l = ud;

    if (l->n < 16) {
        l->recs[l->n++] = *rec;
    }
    return 0;
}


static void put_audit(struct bms_store *store, int64_t ts_us,
                      const char *action, const char *target)
{
    struct bms_audit_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.ts_us = ts_us;
    snprintf(rec.key_id, sizeof(rec.key_id), "k-%lld", (long long)ts_us);
    snprintf(rec.actor, sizeof(rec.actor), "ops");
    snprintf(rec.action, sizeof(rec.action), "%s", action);
    snprintf(rec.target, sizeof(rec.target), "%s", target);
    snprintf(rec.detail, sizeof(rec.detail), "{\"n\": %lld}",
             (long long)ts_us);
    assert_int_equal(bms_store_put_audit(store, &rec, NULL), BMS_OK);
}


static void audit_lists_newest_first_by_target_and_time(void **state)
{
    struct bms_audit_filter f;
    struct audit_list l;
    struct bms_store *store;
    char path[64];

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = th_store_open(path);
    put_audit(store, 100, "config.put", "alpha");
    put_audit(store, 200, "model.stop", "beta");
    put_audit(store, 300, "config.put", "alpha");
    put_audit(store, 400, "key.create", "k1");
    bms_store_close(store);

    /* After a reopen: everything, newest first. */
    store = th_store_open(path);
    memset(&l, 0, sizeof(l));
    assert_int_equal(bms_store_list_audit(store, NULL, 10, 0, collect_audit,
                                          &l, NULL), BMS_OK);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.recs[0].ts_us, 400);
    assert_int_equal(l.recs[3].ts_us, 100);
    assert_true(l.recs[0].id > l.recs[1].id);
    assert_string_equal(l.recs[3].key_id, "k-100");
    assert_string_equal(l.recs[3].actor, "ops");
    assert_string_equal(l.recs[3].action, "config.put");
    assert_string_equal(l.recs[3].detail, "{\"n\": 100}");

    /* One target. */
    memset(&f, 0, sizeof(f));
    f.target = "alpha";
    memset(&l, 0, sizeof(l));
    assert_int_equal(bms_store_list_audit(store, &f, 10, 0, collect_audit,
                                          &l, NULL), BMS_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.recs[0].ts_us, 300);
    assert_int_equal(l.recs[1].ts_us, 100);

    /* A time range [200, 400) and a page of one after one. */
    memset(&f, 0, sizeof(f));
    f.since_us = 200;
    f.until_us = 400;
    memset(&l, 0, sizeof(l));
    assert_int_equal(bms_store_list_audit(store, &f, 1, 1, collect_audit,
                                          &l, NULL), BMS_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.recs[0].ts_us, 200);
    bms_store_close(store);
    th_store_remove(path);
}


static void audit_list_rejects_bad_page(void **state)
{
    struct bms_diag diag = {""};
    struct audit_list l;
    struct bms_store *store;
    char path[64];

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = th_store_open(path);
    assert_int_equal(bms_store_list_audit(store, NULL, 0, 0, collect_audit,
                                          &l, &diag), BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "limit: expected an integer in 1..1000");
    assert_int_equal(bms_store_list_audit(store, NULL, 1001, 0,
                                          collect_audit, &l, &diag),
                     BMS_ERR_INVALID);
    assert_int_equal(bms_store_list_audit(store, NULL, 5, -1, collect_audit,
                                          &l, &diag), BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "offset: expected an integer >= 0");
    bms_store_close(store);
    th_store_remove(path);
}


/* ---- model settings ---- */

struct settings_seen {
    char models[4][32];
    char jsons[4][64];
    int n;
};


static int collect_settings(void *ud, const char *model, const char *json,
                            int64_t updated_us)
{
    struct settings_seen *s = ud;

    (void)updated_us;
    if (s->n < 4) {
        snprintf(s->models[s->n], sizeof(s->models[0]), "%s", model);
        snprintf(s->jsons[s->n], sizeof(s->jsons[0]), "%s", json);
        s->n++;
    }
    return 0;
}


static void settings_put_replace_delete_and_list(void **state)
{
    struct bms_diag diag = {""};
    struct settings_seen seen;
    struct bms_store *store;
    char path[64];
    char *json = NULL;
    int64_t updated = 0;
    int64_t before = bms_wall_us();

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = th_store_open(path);
    assert_int_equal(bms_store_get_settings(store, "m", &json, NULL, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms_store_put_settings(store, "zeta", "{\"a\": 1}",
                                            NULL), BMS_OK);
    assert_int_equal(bms_store_put_settings(store, "m", "{\"a\": 1}", NULL),
                     BMS_OK);
    assert_int_equal(bms_store_put_settings(store, "m", "{\"b\": 2}", NULL),
                     BMS_OK);
    bms_store_close(store);

    store = th_store_open(path);
    assert_int_equal(bms_store_get_settings(store, "m", &json, &updated,
                                            NULL), BMS_OK);
    assert_string_equal(json, "{\"b\": 2}");
    assert_true(updated >= before);
    free(json);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(bms_store_list_settings(store, collect_settings, &seen,
                                             NULL), BMS_OK);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.models[0], "m");
    assert_string_equal(seen.models[1], "zeta");
    assert_string_equal(seen.jsons[1], "{\"a\": 1}");

    assert_int_equal(bms_store_put_settings(store, "m", NULL, NULL), BMS_OK);
    assert_int_equal(bms_store_get_settings(store, "m", &json, NULL, NULL),
                     BMS_ERR_NOT_FOUND);
    bms_store_close(store);
    th_store_remove(path);
}


/* ---- request queries ---- */

/* Record i: model "a" for even i, "b" for odd; key "k0".."k2" by i % 3
 * ("" for i % 3 == 2: no key); a client error every fifth; arrival
 * BASE_TS + i seconds. */
static void make_record(int i, struct bms_request_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "r%d", i);
    r->ts_us = BASE_TS + (int64_t)i * 1000000;
    snprintf(r->model, sizeof(r->model), "%s", i % 2 == 0 ? "a" : "b");
    r->version = 1;
    r->http_status = i % 5 == 0 ? 400 : 200;
    snprintf(r->outcome, sizeof(r->outcome), "%s",
             i % 5 == 0 ? "client_error" : "ok");
    snprintf(r->client, sizeof(r->client), "127.0.0.1");
    if (i % 3 != 2) {
        snprintf(r->key_id, sizeof(r->key_id), "k%d", i % 3);
    }
}


struct id_seen {
    int ids[N_RECORDS];
    int n;
    int mismatched;
};


static int collect_record(void *ud, const struct bms_request_record *rec)
{
    struct id_seen *s = ud;
    struct bms_request_record want;
    int i;

    if (sscanf(rec->id, "r%d", &i) != 1 || i < 0 || i >= N_RECORDS ||
        s->n >= N_RECORDS) {
        s->mismatched++;
        return 0;
    }
    make_record(i, &want);
    if (memcmp(&want, rec, sizeof(want)) != 0) {
        s->mismatched++;
    }
    s->ids[s->n++] = i;
    return 0;
}


static struct bms_store *store_with_records(const char *path)
{
    struct bms_store *store = th_store_open(path);

    /* Written in a shuffled order: the answer orders by arrival. */
    for (int k = 0; k < N_RECORDS; k++) {
        struct bms_request_record r;

        make_record((k * 7) % N_RECORDS, &r);
        bms_store_record(store, &r);
    }
    assert_int_equal(bms_store_flush(store), BMS_OK);
    return store;
}


static int run_query(struct bms_store *store,
                     const struct bms_request_filter *f, struct id_seen *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(bms_store_query_requests(store, f, collect_record, s,
                                              NULL), BMS_OK);
    assert_int_equal(s->mismatched, 0);
    return s->n;
}


static void requests_query_filters_each_field(void **state)
{
    struct bms_request_filter f;
    struct bms_store *store;
    struct id_seen s;
    char path[64];

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = store_with_records(path);

    /* No filter: everything (60 < the default 100), newest first. */
    memset(&f, 0, sizeof(f));
    assert_int_equal(run_query(store, &f, &s), N_RECORDS);
    for (int k = 0; k < N_RECORDS; k++) {
        assert_int_equal(s.ids[k], N_RECORDS - 1 - k);
    }

    /* Even i: 30. */
    f.model = "a";
    assert_int_equal(run_query(store, &f, &s), 30);
    assert_int_equal(s.ids[0], 58);

    /* i % 3 == 1: 20; with model "a" (even too): i % 6 == 4, 10. */
    f.key_id = "k1";
    assert_int_equal(run_query(store, &f, &s), 10);
    assert_int_equal(s.ids[0], 58);
    f.model = NULL;
    assert_int_equal(run_query(store, &f, &s), 20);

    /* i % 5 == 0: 12; with key k1 (i % 15 == 10): 10, 25, 40, 55. */
    f.outcome = "client_error";
    assert_int_equal(run_query(store, &f, &s), 4);
    assert_int_equal(s.ids[0], 55);
    assert_int_equal(s.ids[3], 10);
    f.key_id = NULL;
    assert_int_equal(run_query(store, &f, &s), 12);

    /* Arrivals in [10 s, 20 s): i = 10..19, of which 10 and 15 failed. */
    f.since_us = BASE_TS + 10 * 1000000LL;
    f.until_us = BASE_TS + 20 * 1000000LL;
    assert_int_equal(run_query(store, &f, &s), 2);
    f.outcome = NULL;
    assert_int_equal(run_query(store, &f, &s), 10);
    assert_int_equal(s.ids[0], 19);
    assert_int_equal(s.ids[9], 10);
    bms_store_close(store);
    th_store_remove(path);
}


static void requests_query_pages_without_overlap(void **state)
{
    struct bms_request_filter f;
    struct bms_store *store;
    struct id_seen s;
    char path[64];
    int next = N_RECORDS - 1;
    int n_pages = 0;

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = store_with_records(path);
    memset(&f, 0, sizeof(f));
    f.limit = 7;

    /* Pages of 7: 8 full ones and one of 4, contiguous, newest first. */
    for (;;) {
        int n = run_query(store, &f, &s);

        if (n == 0) {
            break;
        }
        for (int k = 0; k < n; k++) {
            assert_int_equal(s.ids[k], next--);
        }
        n_pages++;
        f.offset += n;
    }
    assert_int_equal(n_pages, 9);
    assert_int_equal(next, -1);
    bms_store_close(store);
    th_store_remove(path);
}


static void requests_query_rejects_bad_limit(void **state)
{
    struct bms_diag diag = {""};
    struct bms_request_filter f;
    struct bms_store *store;
    struct id_seen s;
    char path[64];

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = th_store_open(path);
    memset(&f, 0, sizeof(f));
    f.limit = 1001;
    assert_int_equal(bms_store_query_requests(store, &f, collect_record, &s,
                                              &diag), BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "limit: expected an integer in 1..1000");
    f.limit = -3;
    assert_int_equal(bms_store_query_requests(store, &f, collect_record, &s,
                                              &diag), BMS_ERR_INVALID);
    bms_store_close(store);
    th_store_remove(path);
}


static void requests_query_by_model_uses_an_index(void **state)
{
    struct bms_store *store;
    char path[64];
    char plan[256];

    (void)state;
    th_store_path(path, sizeof(path), "audit");
    store = th_store_open(path);
    bms_store_close(store);

    /* The plan SQLite itself gives for the store's query shapes. */
    query_plan(path, "SELECT id FROM requests WHERE model = 'a'"
               " ORDER BY ts_us DESC, seq DESC LIMIT 5", plan, sizeof(plan));
    assert_non_null(strstr(plan, "INDEX requests_model_ts"));
    query_plan(path, "SELECT id FROM requests WHERE key_id = 'k'"
               " ORDER BY ts_us DESC, seq DESC LIMIT 5", plan, sizeof(plan));
    assert_non_null(strstr(plan, "INDEX requests_key_ts"));
    query_plan(path, "SELECT id FROM requests"
               " ORDER BY ts_us DESC, seq DESC LIMIT 5", plan, sizeof(plan));
    assert_non_null(strstr(plan, "INDEX requests_ts_us"));
    th_store_remove(path);
}


struct key_seen {
    char ids[4][BMS_REQUEST_ID_SIZE];
    char keys[4][64];
    int n;
};


static int collect_key(void *ud, const struct bms_request_record *rec)
{
    struct key_seen *k = ud;

    if (k->n < 4) {
        snprintf(k->ids[k->n], sizeof(k->ids[0]), "%s", rec->id);
        snprintf(k->keys[k->n], sizeof(k->keys[0]), "%s", rec->key_id);
        k->n++;
    }
    return 0;
}


static void store_adds_key_id_to_a_version_1_store(void **state)
{
    struct bms_request_filter f;
    struct bms_store *store;
    struct key_seen k;
    struct id_seen s;
    sqlite3 *db = NULL;
    char path[64];
    char got[64];
    struct bms_request_record r;

    (void)state;
    th_store_path(path, sizeof(path), "audit");

    /* The requests table as schema version 1 had it, with one row. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
        "CREATE TABLE requests (seq INTEGER PRIMARY KEY, id TEXT,"
        " ts_us INTEGER, model TEXT, version INTEGER, http_status INTEGER,"
        " outcome TEXT, error TEXT, latency_us INTEGER, bytes_in INTEGER,"
        " bytes_out INTEGER, client TEXT);"
        "INSERT INTO requests VALUES (1, 'old', 1700000000000000, 'a', 1,"
        " 400, 'client_error', '', 0, 0, 0, '127.0.0.1');"
        "PRAGMA user_version=1;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    store = th_store_open(path);
    make_record(1, &r);
    bms_store_record(store, &r);
    assert_int_equal(bms_store_flush(store), BMS_OK);

    /* The old row reads back with no key, the new one with its own. */
    memset(&f, 0, sizeof(f));
    memset(&k, 0, sizeof(k));
    assert_int_equal(bms_store_query_requests(store, &f, collect_key, &k,
                                              NULL), BMS_OK);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.ids[0], "r1");
    assert_string_equal(k.keys[0], "k1");
    assert_string_equal(k.ids[1], "old");
    assert_string_equal(k.keys[1], "");
    f.key_id = "k1";
    assert_int_equal(run_query(store, &f, &s), 1);
    bms_store_close(store);

    query_one(path, "PRAGMA user_version", got, sizeof(got));
    assert_string_equal(got, "2");
    query_one(path, "SELECT count(*) FROM pragma_table_info('requests')"
              " WHERE name = 'key_id'", got, sizeof(got));
    assert_string_equal(got, "1");
    th_store_remove(path);
}


/* ---- the settings merge ---- */

static void merge_expect(const char *base, const char *patch,
                         const char *drop, const char *want)
{
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag = {""};
    enum bms_status rc = bms_settings_merge(base, strlen(base), patch,
                                            strlen(patch), drop, &out,
                                            &diag);

    if (rc != BMS_OK) {
        print_error("%s\n", diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    assert_string_equal(out.data, want);
    bms_buf_fini(&out);
}


static void merge_replaces_merges_and_removes(void **state)
{
    (void)state;

    /* A member of an object merges; others keep their place. */
    merge_expect("{\"name\":\"m\",\"scheduling\":{\"instances\":1,"
                 "\"max_batch_size\":4}}",
                 "{\"scheduling\":{\"max_batch_size\":8}}", NULL,
                 "{\"name\":\"m\",\"scheduling\":{\"instances\":1,"
                 "\"max_batch_size\":8}}");

    /* null removes; arrays and scalars replace; new members go last. */
    merge_expect("{\"a\":[1,2],\"b\":{\"c\":1},\"d\":true}",
                 "{\"a\":[3],\"b\":null,\"e\":{\"f\":null,\"g\":1.50}}",
                 NULL, "{\"a\":[3],\"d\":true,\"e\":{\"g\":1.50}}");

    /* An object over a scalar becomes the object. */
    merge_expect("{\"qos\":7}", "{\"qos\":{\"window_s\":5}}", NULL,
                 "{\"qos\":{\"window_s\":5}}");

    /* drop leaves the top-level member out, from both sides. */
    merge_expect("{\"rate_limit\":1,\"x\":1}",
                 "{\"rate_limit\":{\"burst\":2},\"y\":\"s\\\"t\"}",
                 "rate_limit", "{\"x\":1,\"y\":\"s\\\"t\"}");
}


static void merge_names_the_bad_document(void **state)
{
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag = {""};
    char deep[256];
    size_t n = 0;

    (void)state;
    assert_int_equal(bms_settings_merge("{}", 2, "[1]", 3, NULL, &out,
                                        &diag), BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "body: expected a JSON object");
    assert_int_equal(bms_settings_merge("{\"a\":", 5, "{}", 2, NULL, &out,
                                        &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "config.json: "));

    /* 40 levels: refused before yajl builds the tree. */
    deep[n++] = '{';
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "\"a\":{");
    }
    assert_true(n < sizeof(deep));
    assert_int_equal(bms_settings_merge("{}", 2, deep, n, NULL, &out,
                                        &diag), BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "body: nested deeper than 32 levels");
    bms_buf_fini(&out);
}


/* Declared here: main.c finds it as a weak symbol. */
int bms_test_audit(int *n_tests);


int bms_test_audit(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(audit_lists_newest_first_by_target_and_time),
        cmocka_unit_test(audit_list_rejects_bad_page),
        cmocka_unit_test(settings_put_replace_delete_and_list),
        cmocka_unit_test(requests_query_filters_each_field),
        cmocka_unit_test(requests_query_pages_without_overlap),
        cmocka_unit_test(requests_query_rejects_bad_limit),
        cmocka_unit_test(requests_query_by_model_uses_an_index),
        cmocka_unit_test(store_adds_key_id_to_a_version_1_store),
        cmocka_unit_test(merge_replaces_merges_and_removes),
        cmocka_unit_test(merge_names_the_bad_document),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
