/*
 * Unit tests of the SQLite store: records from several threads all reach
 * the disk by close and read back equal after reopening, flush makes them
 * visible, the schema and settings are those the store promises (read
 * with sqlite3 directly, not through the store).
 */
#define _GNU_SOURCE              /* SCHED_IDLE */

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "unit.h"
#include "harness.h"

#include "bms/store.h"

#define N_THREADS 4
#define N_PER_THREAD 2500

struct writer_arg {
    struct bms_store *store;
    int thread;
};


/* The record number i of thread t, every field derived from (t, i). */
static void make_record(int t, int i, struct bms_request_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "t%d-%d", t, i);
    r->ts_us = 1700000000000000LL + (int64_t)t * 1000000 + i;
    snprintf(r->model, sizeof(r->model), "model_%d", t);
    r->version = t + 1;
    r->http_status = i % 7 == 0 ? 400 : 200;
    snprintf(r->outcome, sizeof(r->outcome), "%s",
             i % 7 == 0 ? "client_error" : "ok");
    if (i % 7 == 0) {
        snprintf(r->error, sizeof(r->error), "inputs[0].shape: bad %d", i);
    }
    r->latency_us = 100 + i;
    r->bytes_in = 1000 + i;
    r->bytes_out = 2000 + (int64_t)i * 3;
    snprintf(r->client, sizeof(r->client), "127.0.0.%d", t + 1);
}


static void *write_records(void *arg)
{
    const struct writer_arg *w = arg;

    for (int i = 0; i < N_PER_THREAD; i++) {
        struct bms_request_record r;

        make_record(w->thread, i, &r);
        bms_store_record(w->store, &r);
    }
    return NULL;
}


struct check_state {
    int n_seen;
    int next[N_THREADS];         /* the i each thread's next record needs */
    int bad;
};


static int check_record(void *ud, const struct bms_request_record *rec)
{
    struct check_state *cs = ud;
    struct bms_request_record want;
    int t;
    int i;

    cs->n_seen++;
    if (sscanf(rec->id, "t%d-%d", &t, &i) != 2 || t < 0 || t >= N_THREADS) {
        cs->bad++;
        return 0;
    }

    /* Newest first: each thread's records come in falling order. */
    if (i != cs->next[t]) {
        cs->bad++;
    }
    cs->next[t] = i - 1;
    make_record(t, i, &want);
    if (memcmp(&want, rec, sizeof(want)) != 0) {
        cs->bad++;
    }
    return 0;
}


static void store_keeps_every_record_across_reopen(void **state)
{
    char path[64];
    struct bms_store *store;
    pthread_t threads[N_THREADS];
    struct writer_arg args[N_THREADS];
    struct check_state cs;

    (void)state;
    th_store_path(path, sizeof(path), "store");
    store = th_store_open(path);
    for (int t = 0; t < N_THREADS; t++) {
        args[t].store = store;
        args[t].thread = t;
        assert_int_equal(pthread_create(&threads[t], NULL, write_records,
                                        &args[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    bms_store_close(store);

    store = th_store_open(path);
    memset(&cs, 0, sizeof(cs));
    for (int t = 0; t < N_THREADS; t++) {
        cs.next[t] = N_PER_THREAD - 1;
    }
    assert_int_equal(bms_store_list_requests(store, -1, check_record, &cs,
                                             NULL), BMS_OK);
    assert_int_equal(cs.n_seen, N_THREADS * N_PER_THREAD);
    assert_int_equal(cs.bad, 0);
    for (int t = 0; t < N_THREADS; t++) {
        assert_int_equal(cs.next[t], -1);
    }
    bms_store_close(store);
    th_store_remove(path);
}


struct id_list {
    char ids[8][BMS_REQUEST_ID_SIZE];
    int n;
};


static int collect_id(void *ud, const struct bms_request_record *rec)
{
    struct id_list *l = ud;

    if (l->n < 8) {
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", rec->id);
    }
    return 0;
}


static int stop_at_first(void *ud, const struct bms_request_record *rec)
{
    (void)rec;
    (*(int *)ud)++;
    return 1;
}


/* Record n requests with these ids (arriving at ts_us[i], or 0 when
 * ts_us is NULL) and wait until they are written. */
static void record_ids(struct bms_store *store, const char *const *ids,
                       const int64_t *ts_us, int n)
{
    for (int i = 0; i < n; i++) {
        struct bms_request_record r;

        memset(&r, 0, sizeof(r));
        snprintf(r.id, sizeof(r.id), "%s", ids[i]);
        r.ts_us = ts_us != NULL ? ts_us[i] : 0;
        bms_store_record(store, &r);
    }
    assert_int_equal(bms_store_flush(store), BMS_OK);
}


static void store_flush_makes_records_visible(void **state)
{
    static const char *const ids[] = {"a", "b", "c"};
    char path[64];
    struct bms_store *store;
    struct id_list l;
    int n_calls = 0;

    (void)state;
    th_store_path(path, sizeof(path), "store");
    store = th_store_open(path);
    record_ids(store, ids, NULL, 3);

    memset(&l, 0, sizeof(l));
    assert_int_equal(bms_store_list_requests(store, 2, collect_id, &l, NULL),
                     BMS_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "c");
    assert_string_equal(l.ids[1], "b");

    assert_int_equal(bms_store_list_requests(store, 10, stop_at_first,
                                             &n_calls, NULL), BMS_OK);
    assert_int_equal(n_calls, 1);

    /* A flush with nothing queued returns at once. */
    assert_int_equal(bms_store_flush(store), BMS_OK);
    bms_store_close(store);
    th_store_remove(path);
}


/* Records are written in the order they end, listed newest first by
 * arrival: a slow request that came first is listed last. */
static void store_lists_by_arrival(void **state)
{
    static const char *const ids[] = {"slow", "fast", "middle"};
    static const int64_t ts_us[] = {100, 300, 200};
    char path[64];
    struct bms_store *store;
    struct id_list l;

    (void)state;
    th_store_path(path, sizeof(path), "store-order");
    store = th_store_open(path);
    record_ids(store, ids, ts_us, 3);
    memset(&l, 0, sizeof(l));
    assert_int_equal(bms_store_list_requests(store, 3, collect_id, &l, NULL),
                     BMS_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.ids[0], "fast");
    assert_string_equal(l.ids[1], "middle");
    assert_string_equal(l.ids[2], "slow");
    bms_store_close(store);
    th_store_remove(path);
}


/* Threads of this process whose scheduling policy (field 41 of
 * /proc/self/task/TID/stat, proc(5)) is SCHED_IDLE, Linux's 5. */
static int count_idle_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300];
        char line[1024];
        const char *p;
        FILE *f;
        int field = 2;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;            /* the thread ended meanwhile */
        }
        if (fgets(line, sizeof(line), f) != NULL &&
            (p = strrchr(line, ')')) != NULL) {
            /* Fields after the command: 3 (state) onwards. */
            for (p++; *p != '\0' && field < 41; p++) {
                if (*p == ' ') {
                    field++;
                }
            }
            n += field == 41 && strtol(p, NULL, 10) == 5;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}


/* Whether this machine lets a thread put itself under SCHED_IDLE (a
 * sandbox may refuse the call); tried on a thread of its own. */
static void *try_sched_idle(void *arg)
{
    struct sched_param sp;

    memset(&sp, 0, sizeof(sp));
    *(int *)arg = sched_setscheduler(0, SCHED_IDLE, &sp) == 0;
    return NULL;
}


static int sched_idle_allowed(void)
{
    pthread_t t;
    int ok = 0;

    assert_int_equal(pthread_create(&t, NULL, try_sched_idle, &ok), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return ok;
}


/* The writer thread gives way to every other thread: SCHED_IDLE once it
 * has run (a flush proves it has), gone with the store.  Where the
 * machine refuses SCHED_IDLE the store works on without it. */
static void store_writer_runs_sched_idle(void **state)
{
    struct bms_request_record r;
    struct bms_store *store;
    char path[64];
    int before = count_idle_threads();
    int allowed = sched_idle_allowed();

    (void)state;
    th_store_path(path, sizeof(path), "store");
    store = th_store_open(path);
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "one");
    bms_store_record(store, &r);
    assert_int_equal(bms_store_flush(store), BMS_OK);
    assert_int_equal(count_idle_threads(), before + allowed);
    bms_store_close(store);
    assert_int_equal(count_idle_threads(), before);
    th_store_remove(path);
}


static void store_cuts_unterminated_fields(void **state)
{
    char path[64];
    struct bms_store *store;
    struct bms_request_record r;
    struct id_list l;

    (void)state;
    th_store_path(path, sizeof(path), "store");
    store = th_store_open(path);
    memset(&r, 'x', sizeof(r));
    r.ts_us = 5;
    bms_store_record(store, &r);
    assert_int_equal(bms_store_flush(store), BMS_OK);

    memset(&l, 0, sizeof(l));
    assert_int_equal(bms_store_list_requests(store, 1, collect_id, &l, NULL),
                     BMS_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(strlen(l.ids[0]), BMS_REQUEST_ID_SIZE - 1);
    bms_store_close(store);
    th_store_remove(path);
}


/* One integer or text answer of sql on the db at path, read directly. */
static void query_one(const char *path, const char *sql, char *out,
                      size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}


static void store_sets_wal_and_schema(void **state)
{
    char path[64];
    char got[256];

    (void)state;
    th_store_path(path, sizeof(path), "store");
    bms_store_close(th_store_open(path));
    query_one(path, "PRAGMA journal_mode", got, sizeof(got));
    assert_string_equal(got, "wal");
    query_one(path, "PRAGMA user_version", got, sizeof(got));
    assert_string_equal(got, "2");
    query_one(path, "SELECT group_concat(name, ',') FROM (SELECT name FROM "
              "sqlite_master WHERE type = 'table' ORDER BY name)", got,
              sizeof(got));
    assert_string_equal(got, "alerts,audit,keys,model_limits,"
                        "model_settings,models,requests");
    th_store_remove(path);
}


static void store_put_model_replaces(void **state)
{
    char path[64];
    char got[256];
    struct bms_store *store;

    (void)state;
    th_store_path(path, sizeof(path), "store");
    store = th_store_open(path);
    assert_int_equal(bms_store_put_model(store, "m", 1, "{\"a\": 1}", NULL),
                     BMS_OK);
    assert_int_equal(bms_store_put_model(store, "m", 1, "{\"a\": 2}", NULL),
                     BMS_OK);
    assert_int_equal(bms_store_put_model(store, "m", 2, "{}", NULL), BMS_OK);
    bms_store_close(store);
    query_one(path, "SELECT count(*) FROM models", got, sizeof(got));
    assert_string_equal(got, "2");
    query_one(path, "SELECT manifest FROM models WHERE name = 'm' AND "
              "version = 1", got, sizeof(got));
    assert_string_equal(got, "{\"a\": 2}");
    query_one(path, "SELECT loaded_at_us > 1600000000000000 FROM models "
              "WHERE version = 2", got, sizeof(got));
    assert_string_equal(got, "1");
    th_store_remove(path);
}


static void store_rejects_newer_schema(void **state)
{
    char path[64];
    sqlite3 *db = NULL;
    struct bms_store *store = NULL;
    struct bms_diag diag = {""};

    (void)state;
    th_store_path(path, sizeof(path), "store");
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(bms_store_open_sqlite(path, &store, &diag),
                     BMS_ERR_UNSUPPORTED);
    assert_null(store);
    assert_non_null(strstr(diag.msg, "schema version 99"));
    th_store_remove(path);
}


static char dropped_line[512];


static void capture_drop(void *ud, enum bms_log_level level,
                         const char *line)
{
    (void)ud;
    if (level == BMS_LOG_ERROR && strstr(line, "dropped") != NULL) {
        snprintf(dropped_line, sizeof(dropped_line), "%s", line);
    }
}


/* With the table gone every write fails: the batch is tried a bounded
 * number of times, then dropped with a count, and flush says so. */
static void store_drops_batch_after_failed_retries(void **state)
{
    char path[64];
    sqlite3 *db = NULL;
    struct bms_store *store;

    (void)state;
    th_store_path(path, sizeof(path), "store");
    store = th_store_open(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE requests", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db);

    dropped_line[0] = '\0';
    bms_log_set_handler(capture_drop, NULL);
    for (int i = 0; i < 5; i++) {
        struct bms_request_record r;

        make_record(0, i, &r);
        bms_store_record(store, &r);
    }
    assert_int_equal(bms_store_flush(store), BMS_ERR_IO);
    bms_log_set_handler(NULL, NULL);
    assert_non_null(strstr(dropped_line, "msg=\"request records dropped\" "
                           "count=5 attempts=3"));
    bms_store_close(store);
    th_store_remove(path);
}


static void store_open_fails_on_missing_folder(void **state)
{
    struct bms_store *store = NULL;
    struct bms_diag diag = {""};

    (void)state;
    assert_int_equal(bms_store_open_sqlite("/tmp/bms-no-such-dir/x.db",
                                           &store, &diag), BMS_ERR_IO);
    assert_null(store);
    assert_non_null(strstr(diag.msg, "/tmp/bms-no-such-dir/x.db"));
}


int bms_test_store(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_keeps_every_record_across_reopen),
        cmocka_unit_test(store_flush_makes_records_visible),
        cmocka_unit_test(store_lists_by_arrival),
        cmocka_unit_test(store_writer_runs_sched_idle),
        cmocka_unit_test(store_cuts_unterminated_fields),
        cmocka_unit_test(store_sets_wal_and_schema),
        cmocka_unit_test(store_put_model_replaces),
        cmocka_unit_test(store_rejects_newer_schema),
        cmocka_unit_test(store_drops_batch_after_failed_retries),
        cmocka_unit_test(store_open_fails_on_missing_folder),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
