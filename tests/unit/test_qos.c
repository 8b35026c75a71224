/*
 * Unit tests of the QoS state machine (sched/qos.c) on hand-made
 * timelines, the health probes' bookkeeping over tests/data/tiny_mlp.onnx,
 * the alerts table, and the "health" and "qos" fields of config.json.
 * Every expected value is worked out by hand in the comment next to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "bms/repo.h"
#include "bms/engine.h"
#include "bms/store.h"
#include "sched/qos.h"

#define S ((int64_t)1000000)     /* one second in microseconds */


static struct bms_qos_config config(double rate, double p99_ms, int min)
{
    struct bms_qos_config c;

    memset(&c, 0, sizeof(c));
    c.window_s = 60;
    c.min_requests = min;
    c.max_error_rate = rate;
    c.max_p99_ms = p99_ms;
    c.cooldown_s = 30;
    return c;
}


static void qos_p99_is_the_nearest_rank(void **state)
{
    int64_t a[200];
    int64_t five[5] = {50, 10, 40, 30, 20};

    (void)state;
    /* 1..100: rank ceil(0.99 * 100) = 99, the value 99. */
    for (int i = 0; i < 100; i++) {
        a[i] = 100 - i;
    }
    assert_int_equal(bms__qos_p99(a, 100), 99);

    /* 5 values: rank ceil(4.95) = 5, the largest. */
    assert_int_equal(bms__qos_p99(five, 5), 50);

    /* 1..200 shuffled by a stride: rank ceil(198) = 198. */
    for (int i = 0; i < 200; i++) {
        a[i] = (i * 7) % 200 + 1;
    }
    assert_int_equal(bms__qos_p99(a, 200), 198);
}


static void qos_trips_on_error_rate_once_min_requests_completed(void **st)
{
    struct bms_qos_config c = config(0.5, 0.0, 4);
    struct bms__qos q;
    int trial;

    (void)st;
    assert_int_equal(bms__qos_init(&q, &c), BMS_OK);

    /* 3 samples are under min_requests 4, whatever their errors. */
    assert_int_equal(bms__qos_record(&q, 1 * S, 100, 0, 0), BMS__QOS_NONE);
    assert_int_equal(bms__qos_record(&q, 2 * S, 100, 1, 0), BMS__QOS_NONE);
    assert_int_equal(bms__qos_record(&q, 3 * S, 100, 1, 0), BMS__QOS_NONE);

    /* 2 of 4 = 0.5 is not over 0.5; 3 of 5 = 0.6 is. */
    assert_int_equal(bms__qos_record(&q, 4 * S, 100, 0, 0), BMS__QOS_NONE);
    assert_int_equal(bms__qos_record(&q, 5 * S, 100, 1, 0),
                     BMS__QOS_TRIPPED);
    assert_string_equal(q.reason, "stopped: error rate 0.6 (3 of 5) over "
                        "qos.max_error_rate 0.5");
    assert_int_equal(bms__qos_admit(&q, 6 * S, &trial), 0);
    assert_string_equal(bms__qos_event_kind(BMS__QOS_TRIPPED), "stopped");
    bms__qos_fini(&q);
}


static void qos_good_trial_after_cooldown_resumes(void **state)
{
    struct bms_qos_config c = config(0.0, 1.0, 2);
    struct bms__qos q;
    int trial;

    (void)state;
    assert_int_equal(bms__qos_init(&q, &c), BMS_OK);

    /* p99 of {2000, 3000} us is 3 ms, over 1 ms: stopped at 10 s. */
    bms__qos_record(&q, 9 * S, 2000, 0, 0);
    assert_int_equal(bms__qos_record(&q, 10 * S, 3000, 0, 0),
                     BMS__QOS_TRIPPED);
    assert_string_equal(q.reason, "stopped: p99 3 ms over qos.max_p99_ms 1");

    /* Cooldown 30 s: nothing at 39.9 s, one trial at 40 s, no second;
     * trial_due says so beforehand and changes nothing. */
    assert_int_equal(bms__qos_trial_due(&q, 40 * S - 1), 0);
    assert_int_equal(bms__qos_admit(&q, 40 * S - 1, &trial), 0);
    assert_int_equal(bms__qos_trial_due(&q, 40 * S), 1);
    assert_int_equal(bms__qos_trial_due(&q, 40 * S), 1);
    assert_int_equal(bms__qos_admit(&q, 40 * S, &trial), 1);
    assert_int_equal(trial, 1);
    assert_int_equal(bms__qos_trial_due(&q, 40 * S), 0);
    assert_int_equal(bms__qos_admit(&q, 40 * S, &trial), 0);

    /* 0.5 ms is within 1 ms: serving again, with an empty window. */
    assert_int_equal(bms__qos_record(&q, 41 * S, 500, 0, 1),
                     BMS__QOS_RESUMED);
    assert_int_equal(bms__qos_admit(&q, 41 * S, &trial), 1);
    assert_int_equal(trial, 0);
    assert_int_equal(q.n, 0);
    bms__qos_fini(&q);
}


static void qos_slow_trial_stops_for_another_cooldown(void **state)
{
    struct bms_qos_config c = config(0.0, 1.0, 1);
    struct bms__qos q;
    int trial;

    (void)state;
    assert_int_equal(bms__qos_init(&q, &c), BMS_OK);
    assert_int_equal(bms__qos_record(&q, 0, 5000, 0, 0), BMS__QOS_TRIPPED);
    assert_int_equal(bms__qos_admit(&q, 30 * S, &trial), 1);

    /* 1.5 ms is over 1 ms: stopped again from 31 s, so until 61 s. */
    assert_int_equal(bms__qos_record(&q, 31 * S, 1500, 0, 1),
                     BMS__QOS_TRIPPED);
    assert_string_equal(q.reason, "stopped: trial request took 1.5 ms, "
                        "over qos.max_p99_ms 1");
    assert_int_equal(bms__qos_admit(&q, 60 * S, &trial), 0);
    assert_int_equal(bms__qos_admit(&q, 61 * S, &trial), 1);

    /* A trial that never ran lets the next request be the trial. */
    bms__qos_cancel_trial(&q);
    assert_int_equal(bms__qos_admit(&q, 61 * S, &trial), 1);
    assert_int_equal(trial, 1);
    bms__qos_fini(&q);
}


static void qos_window_forgets_old_samples(void **state)
{
    struct bms_qos_config c = config(0.5, 0.0, 2);
    struct bms__qos q;

    (void)state;
    c.window_s = 1;
    assert_int_equal(bms__qos_init(&q, &c), BMS_OK);

    /* The error at 0 s is gone by 2 s: the window holds one sample. */
    bms__qos_record(&q, 0, 100, 1, 0);
    assert_int_equal(bms__qos_record(&q, 2 * S, 100, 0, 0), BMS__QOS_NONE);
    assert_int_equal(q.n, 1);

    /* {ok, err}: 0.5, not over; {ok, err, err}: 0.67, over. */
    assert_int_equal(bms__qos_record(&q, 2 * S + 1, 100, 1, 0),
                     BMS__QOS_NONE);
    assert_int_equal(bms__qos_record(&q, 2 * S + 2, 100, 1, 0),
                     BMS__QOS_TRIPPED);
    bms__qos_fini(&q);
}


static void qos_admin_stop_holds_until_resume(void **state)
{
    struct bms_qos_config c = config(0.5, 0.0, 1);
    struct bms__qos q;
    int trial;

    (void)state;
    assert_int_equal(bms__qos_init(&q, &c), BMS_OK);
    assert_int_equal(bms__qos_record(&q, 0, 100, 1, 0), BMS__QOS_TRIPPED);
    assert_int_equal(bms__qos_stop_admin(&q, 1 * S),
                     BMS__QOS_ADMIN_STOPPED);
    assert_int_equal(bms__qos_stop_admin(&q, 2 * S), BMS__QOS_NONE);

    /* No trial while an admin holds it, however long. */
    assert_int_equal(bms__qos_trial_due(&q, 1000 * S), 0);
    assert_int_equal(bms__qos_admit(&q, 1000 * S, &trial), 0);
    assert_string_equal(q.reason, "stopped by an admin");
    assert_int_equal(bms__qos_resume_admin(&q), BMS__QOS_ADMIN_RESUMED);
    assert_int_equal(bms__qos_resume_admin(&q), BMS__QOS_NONE);
    assert_int_equal(bms__qos_admit(&q, 1000 * S, &trial), 1);
    assert_string_equal(bms__qos_event_kind(BMS__QOS_ADMIN_RESUMED),
                        "resumed_by_admin");
    bms__qos_fini(&q);
}


static void qos_without_thresholds_never_stops(void **state)
{
    struct bms_qos_config c = config(0.0, 0.0, 1);
    struct bms__qos q;

    (void)state;
    assert_int_equal(bms__qos_init(&q, &c), BMS_OK);
    assert_null(q.ring);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(bms__qos_record(&q, i * S, 1000000, 1, 0),
                         BMS__QOS_NONE);
    }
    bms__qos_fini(&q);
}


static struct bms_manifest *parse(const char *json, struct bms_diag *diag)
{
    struct bms_manifest *m = NULL;

    diag->msg[0] = '\0';
    if (bms_manifest_parse(json, strlen(json), &m, diag) != BMS_OK) {
        return NULL;
    }
    return m;
}


static void manifest_health_and_qos_defaults_and_values(void **state)
{
    struct bms_manifest *m;
    struct bms_diag diag;

    (void)state;
    m = parse("{\"name\": \"a\"}", &diag);
    assert_non_null(m);
    assert_int_equal(m->sched.health.period_ms, 5000);
    assert_int_equal(m->sched.health.timeout_ms, 2000);
    assert_int_equal(m->sched.qos.window_s, 60);
    assert_int_equal(m->sched.qos.min_requests, 20);
    assert_true(m->sched.qos.max_error_rate == 0.0);
    assert_true(m->sched.qos.max_p99_ms == 0.0);
    assert_int_equal(m->sched.qos.cooldown_s, 30);
    bms_manifest_destroy(m);

    m = parse("{\"name\": \"a\", \"health\": {\"period_ms\": 0}, \"qos\": "
              "{\"max_p99_ms\": 0.25, \"max_error_rate\": 1, "
              "\"min_requests\": 5, \"cooldown_s\": 2}}", &diag);
    assert_non_null(m);
    assert_int_equal(m->sched.health.period_ms, 0);
    assert_int_equal(m->sched.health.timeout_ms, 2000);
    assert_true(m->sched.qos.max_p99_ms == 0.25);
    assert_true(m->sched.qos.max_error_rate == 1.0);
    assert_int_equal(m->sched.qos.min_requests, 5);
    assert_int_equal(m->sched.qos.cooldown_s, 2);
    bms_manifest_destroy(m);
}


static void manifest_rejects_bad_health_and_qos(void **state)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"qos\": {\"max_error_rate\": 1.5}}",
         "qos.max_error_rate: expected a number in 0..1"},
        {"{\"qos\": {\"max_p99_ms\": -1}}",
         "qos.max_p99_ms: expected a number in 0..86400000"},
        {"{\"qos\": {\"min_requests\": 0}}",
         "qos.min_requests: expected an integer in 1..1000000"},
        {"{\"qos\": {\"window_s\": 1.5}}",
         "qos.window_s: expected an integer in 1..86400"},
        {"{\"qos\": []}", "qos: expected an object"},
        {"{\"health\": {\"timeout_ms\": 0}}",
         "health.timeout_ms: expected an integer in 1..86400000"},
        {"{\"health\": {\"period_ms\": \"5s\"}}",
         "health.period_ms: expected an integer in 0..86400000"},
    };
    struct bms_diag diag;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_null(parse(cases[i].json, &diag));
        assert_string_equal(diag.msg, cases[i].msg);
    }
}


/* The health changes handed on, in order. */
struct changes {
    struct bms__health_change got[4];
    int n;
};

static void keep_changes(void *ud, const struct bms__health_change *c)
{
    struct changes *cs = ud;

    if (cs->n < 4) {
        cs->got[cs->n] = *c;
    }
    cs->n++;
}


/* tests/data/tiny_mlp.onnx: image float [N, 4, 4] -> logits [N, 3]. */
static void health_canary_and_rotation(void **state)
{
    struct changes cs = {.n = 0};
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t work = PTHREAD_COND_INITIALIZER;
    struct bms_health_config cfg = {1000, 1};
    struct bms_model *model = NULL;
    struct bms_diag diag;
    struct bms__health h;
    const float *zeros;

    (void)state;
    assert_int_equal(bms_model_load_file("tests/data/tiny_mlp.onnx", &model,
                                         &diag), BMS_OK);
    assert_int_equal(bms__health_init(&h, &cfg, model, "tiny", 1, 2, &lock,
                                      &work), BMS_OK);
    h.notify = keep_changes;
    h.notify_ud = &cs;

    /* The canary: batch 1 of the graph's [N, 4, 4], all zeros. */
    assert_true(h.can_probe);
    assert_int_equal(h.canary[0].n_dims, 3);
    assert_int_equal(h.canary[0].dims[0], 1);
    assert_int_equal(h.canary[0].dims[1], 4);
    assert_int_equal(h.canary[0].dims[2], 4);
    zeros = h.canary[0].data;
    for (int k = 0; k < 16; k++) {
        assert_true(zeros[k] == 0.0f);
    }

    /* No worker takes the canaries within 1 ms: withdrawn, both stay in
     * the rotation (busy is not broken). */
    bms__health_probe(&h);
    assert_int_equal(h.n_healthy, 2);
    assert_int_equal(bms__health_take(&h, 0), 0);

    /* Instance 1 fails its canary: out, with the engine's message. */
    h.probes[1].pending = 1;
    assert_int_equal(bms__health_take(&h, 1), 1);
    bms__health_done(&h, 1, BMS_ERR_INVALID, "bad shape", bms_now_us());
    assert_false(bms__health_in_rotation(&h, 1));
    assert_true(bms__health_in_rotation(&h, 0));
    assert_int_equal(h.n_healthy, 1);
    assert_string_equal(h.reason, "canary failed: bad shape");

    /* A later canary that passes brings it back. */
    h.probes[1].pending = 1;
    assert_int_equal(bms__health_take(&h, 1), 1);
    bms__health_done(&h, 1, BMS_OK, "", bms_now_us());
    assert_int_equal(h.n_healthy, 2);

    /* Both changes reach the handler at the end of the next round, in
     * their order, with the count after each and the reason. */
    assert_int_equal(cs.n, 0);
    bms__health_probe(&h);
    assert_int_equal(cs.n, 2);
    assert_int_equal(cs.got[0].instance, 1);
    assert_int_equal(cs.got[0].healthy, 0);
    assert_int_equal(cs.got[0].n_healthy, 1);
    assert_string_equal(cs.got[0].reason, "canary failed: bad shape");
    assert_int_equal(cs.got[1].instance, 1);
    assert_int_equal(cs.got[1].healthy, 1);
    assert_int_equal(cs.got[1].n_healthy, 2);
    assert_true(cs.got[0].ts_us <= cs.got[1].ts_us);
    bms__health_probe(&h);
    assert_int_equal(cs.n, 2);
    bms__health_fini(&h);
    bms_model_destroy(model);
}


/* Collects the kinds and versions of the alerts listed. */
struct seen {
    char kinds[4][32];
    int64_t versions[4];
    int64_t ids[4];
    int n;
};


static int collect(void *ud, const struct bms_alert *a)
{
    struct seen *seen = ud;

    snprintf(seen->kinds[seen->n], sizeof(seen->kinds[0]), "%s", a->kind);
    seen->versions[seen->n] = a->version;
    seen->ids[seen->n] = a->id;
    seen->n++;
    return seen->n == 4;
}


static void store_lists_alerts_newest_first(void **state)
{
    static const char *kinds[3] = {"stopped", "resumed", "stopped_by_admin"};
    char path[] = "/tmp/bms-unit-alerts-XXXXXX";
    char wal[64];
    struct bms_store *store = NULL;
    struct bms_diag diag;
    struct seen seen;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(bms_store_open_sqlite(path, &store, &diag), BMS_OK);
    for (int i = 0; i < 3; i++) {
        struct bms_alert a;

        memset(&a, 0, sizeof(a));
        a.ts_us = 1000 + i;
        snprintf(a.model, sizeof(a.model), "m");
        a.version = i + 1;
        snprintf(a.kind, sizeof(a.kind), "%s", kinds[i]);
        snprintf(a.message, sizeof(a.message), "alert %d", i);
        assert_int_equal(bms_store_put_alert(store, &a, &diag), BMS_OK);
    }

    /* Limit 2: the last two written, the newest first. */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(bms_store_list_alerts(store, 2, collect, &seen, &diag),
                     BMS_OK);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.kinds[0], "stopped_by_admin");
    assert_int_equal(seen.versions[0], 3);
    assert_string_equal(seen.kinds[1], "resumed");
    assert_true(seen.ids[0] > seen.ids[1]);
    bms_store_close(store);
    remove(path);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    remove(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    remove(wal);
}


int bms_test_qos(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qos_p99_is_the_nearest_rank),
        cmocka_unit_test(qos_trips_on_error_rate_once_min_requests_completed),
        cmocka_unit_test(qos_good_trial_after_cooldown_resumes),
        cmocka_unit_test(qos_slow_trial_stops_for_another_cooldown),
        cmocka_unit_test(qos_window_forgets_old_samples),
        cmocka_unit_test(qos_admin_stop_holds_until_resume),
        cmocka_unit_test(qos_without_thresholds_never_stops),
        cmocka_unit_test(manifest_health_and_qos_defaults_and_values),
        cmocka_unit_test(manifest_rejects_bad_health_and_qos),
        cmocka_unit_test(store_lists_alerts_newest_first),
        cmocka_unit_test(health_canary_and_rotation),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
