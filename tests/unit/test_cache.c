/*
 * Unit tests of the response cache (server/cache.c) on hand-made keys and
 * answers with a test clock, and of the "cache" object of config.json.
 * Bounds are chosen around the bytes the bodies and answers add up to, so
 * that each test holds for any fixed per-entry overhead below a few
 * hundred bytes; the expected counts are worked out in the comments.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "unit.h"

#include "bms/repo.h"
#include "server/cache.h"

int bms_test_cache(int *n_tests);

#define S ((int64_t)1000000)     /* one second in microseconds */

/* The test clock: what now_us() returns. */
static int64_t fake_now_us;


static int64_t fake_clock(void)
{
    return fake_now_us;
}


static struct bms__cache *make_cache(size_t max_size)
{
    struct bms__cache *c = NULL;

    assert_int_equal(bms__cache_create(max_size, &c), BMS_OK);
    fake_now_us = 1000 * S;
    bms__cache_set_clock(c, fake_clock);
    return c;
}


static struct bms_cache_config conf(int64_t max_bytes, int64_t ttl_s)
{
    struct bms_cache_config cc = {1, max_bytes, ttl_s};

    return cc;
}


/* Look body up for model/serial; returns 1 on a hit and leaves the
 * answer in *out. */
static int lookup(struct bms__cache *c, const char *model, uint64_t serial,
                  const char *body, struct bms_buf *out)
{
    struct bms__cache_key key;
    enum bms_status rc;

    bms_buf_reset(out);
    bms__cache_key_init(&key, model, serial, body, strlen(body), -1);
    rc = bms__cache_get(c, &key, out, NULL);
    assert_true(rc == BMS_OK || rc == BMS_ERR_NOT_FOUND);
    return rc == BMS_OK;
}


static void store(struct bms__cache *c, const char *model, uint64_t serial,
                  const char *body, const char *answer,
                  const struct bms_cache_config *cc)
{
    struct bms__cache_key key;

    bms__cache_key_init(&key, model, serial, body, strlen(body), -1);
    assert_int_equal(bms__cache_put(c, &key, answer, strlen(answer), -1, cc),
                     BMS_OK);
}


static void cache_hit_returns_the_stored_answer(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 20, 60);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_stats st;

    (void)state;
    assert_false(lookup(c, "m", 7, "{\"x\": 1}", &out));
    store(c, "m", 7, "{\"x\": 1}", "{\"y\": 2}", &cc);
    assert_true(lookup(c, "m", 7, "{\"x\": 1}", &out));
    assert_int_equal(out.len, 8);
    assert_string_equal(out.data, "{\"y\": 2}");

    /* One miss before the put, one hit after. */
    bms__cache_stats(c, "m", &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    assert_true(st.bytes >= 16);
    assert_int_equal(bms__cache_max_size(c), (size_t)64 << 20);
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


static void cache_misses_on_another_body_serial_or_model(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 20, 60);
    struct bms_buf out = {NULL, 0, 0};

    (void)state;
    store(c, "m", 7, "abc", "A", &cc);
    assert_false(lookup(c, "m", 7, "abd", &out));
    assert_false(lookup(c, "m", 7, "ab", &out));
    assert_false(lookup(c, "m", 8, "abc", &out));
    assert_false(lookup(c, "n", 7, "abc", &out));
    assert_true(lookup(c, "m", 7, "abc", &out));
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


/* Two bodies forced onto the same hash: the bytes decide. */
static void cache_hash_collision_never_returns_another_answer(void **st)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 20, 60);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_key a;
    struct bms__cache_key b;

    (void)st;
    bms__cache_key_init(&a, "m", 1, "first", 5, -1);
    bms__cache_key_init(&b, "m", 1, "other", 5, -1);
    b.hash = a.hash;
    assert_int_equal(bms__cache_put(c, &a, "A", 1, -1, &cc), BMS_OK);
    assert_int_equal(bms__cache_get(c, &b, &out, NULL), BMS_ERR_NOT_FOUND);
    assert_int_equal(out.len, 0);
    assert_int_equal(bms__cache_put(c, &b, "B", 1, -1, &cc), BMS_OK);
    assert_int_equal(bms__cache_get(c, &a, &out, NULL), BMS_OK);
    assert_string_equal(out.data, "A");
    bms_buf_reset(&out);
    assert_int_equal(bms__cache_get(c, &b, &out, NULL), BMS_OK);
    assert_string_equal(out.data, "B");
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


static void cache_answer_expires_after_ttl(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 20, 2);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_stats st;

    (void)state;
    store(c, "m", 1, "q", "a", &cc);
    fake_now_us += 2 * S - 1;
    assert_true(lookup(c, "m", 1, "q", &out));
    fake_now_us += 1;
    assert_false(lookup(c, "m", 1, "q", &out));

    /* The expired answer was dropped: nothing is kept any more. */
    bms__cache_stats(c, "m", &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(bms__cache_size(c), 0);
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


/* A 1000-byte answer and a 2-byte body: three take 3006 bytes plus the
 * overhead, two take 2004 plus; a 2600-byte bound holds two of them. */
static void cache_model_bound_evicts_the_least_recently_used(void **st)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(2600, 60);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_stats s;
    char answer[1001];

    (void)st;
    memset(answer, 'x', 1000);
    answer[1000] = '\0';
    store(c, "m", 1, "b1", answer, &cc);
    store(c, "m", 1, "b2", answer, &cc);
    /* b1 used last, so b2 is the oldest when b3 comes. */
    assert_true(lookup(c, "m", 1, "b1", &out));
    store(c, "m", 1, "b3", answer, &cc);
    assert_false(lookup(c, "m", 1, "b2", &out));
    assert_true(lookup(c, "m", 1, "b1", &out));
    assert_true(lookup(c, "m", 1, "b3", &out));
    assert_int_equal(out.len, 1000);

    bms__cache_stats(c, "m", &s);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries, 2);
    assert_true(s.bytes >= 2004 && s.bytes <= 2600);
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


/* The server-wide bound (2600 bytes) evicts across models. */
static void cache_global_bound_evicts_across_models(void **state)
{
    struct bms__cache *c = make_cache(2600);
    struct bms_cache_config cc = conf(1 << 20, 60);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_stats s;
    char answer[1001];

    (void)state;
    memset(answer, 'y', 1000);
    answer[1000] = '\0';
    store(c, "a", 1, "b1", answer, &cc);
    store(c, "b", 2, "b1", answer, &cc);
    store(c, "c", 3, "b1", answer, &cc);
    assert_false(lookup(c, "a", 1, "b1", &out));
    assert_true(lookup(c, "b", 2, "b1", &out));
    assert_true(lookup(c, "c", 3, "b1", &out));
    bms__cache_stats(c, "a", &s);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.entries, 0);
    assert_true(bms__cache_size(c) <= 2600);
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


static void cache_keeps_no_answer_larger_than_a_bound(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(500, 60);
    struct bms_buf out = {NULL, 0, 0};
    char answer[1001];

    (void)state;
    memset(answer, 'z', 1000);
    answer[1000] = '\0';
    store(c, "m", 1, "small", "ok", &cc);
    store(c, "m", 1, "big", answer, &cc);
    assert_false(lookup(c, "m", 1, "big", &out));
    /* The small answer was not pushed out for one that never fit. */
    assert_true(lookup(c, "m", 1, "small", &out));
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


static void cache_put_replaces_the_answer_of_a_key(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 20, 60);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_stats s;

    (void)state;
    store(c, "m", 1, "q", "old", &cc);
    store(c, "m", 1, "q", "new", &cc);
    assert_true(lookup(c, "m", 1, "q", &out));
    assert_string_equal(out.data, "new");
    bms__cache_stats(c, "m", &s);
    assert_int_equal(s.entries, 1);
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


static void cache_invalidate_drops_one_model_only(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 20, 60);
    struct bms_buf out = {NULL, 0, 0};
    struct bms__cache_stats s;

    (void)state;
    store(c, "m", 1, "q1", "a", &cc);
    store(c, "m", 2, "q2", "b", &cc);
    store(c, "n", 3, "q1", "c", &cc);
    assert_true(lookup(c, "m", 1, "q1", &out));
    bms__cache_invalidate(c, "m");
    bms__cache_invalidate(c, "never-seen");
    bms__cache_invalidate(NULL, "m");
    assert_false(lookup(c, "m", 1, "q1", &out));
    assert_false(lookup(c, "m", 2, "q2", &out));
    assert_true(lookup(c, "n", 3, "q1", &out));

    /* Counters stay: one hit before, two misses after. */
    bms__cache_stats(c, "m", &s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


/* Enough answers to grow the table several times; each still found. */
static void cache_finds_every_answer_after_the_table_grows(void **state)
{
    struct bms__cache *c = make_cache(0);
    struct bms_cache_config cc = conf(1 << 30, 60);
    struct bms_buf out = {NULL, 0, 0};
    char body[32];
    char answer[32];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(body, sizeof(body), "body-%d", i);
        snprintf(answer, sizeof(answer), "answer-%d", i);
        store(c, "m", 1, body, answer, &cc);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(body, sizeof(body), "body-%d", i);
        snprintf(answer, sizeof(answer), "answer-%d", i);
        assert_true(lookup(c, "m", 1, body, &out));
        assert_string_equal(out.data, answer);
    }
    bms_buf_fini(&out);
    bms__cache_destroy(c);
}


/* What the threads below share: the cache and how many wrong hits. */
struct stress {
    struct bms__cache *cache;
    int seed;
    int n_wrong;
};


/* Each answer is "answer-" and its body, so a hit can be checked. */
static void *stress_thread(void *arg)
{
    struct stress *st = arg;
    struct bms_cache_config cc = conf(4000, 60);
    struct bms_buf out = {NULL, 0, 0};
    char body[32];
    char answer[64];
    unsigned x = (unsigned)st->seed;

    for (int i = 0; i < 20000; i++) {
        struct bms__cache_key key;

        x = x * 1103515245u + 12345u;
        snprintf(body, sizeof(body), "b%u", (x >> 16) % 64);
        snprintf(answer, sizeof(answer), "answer-%s", body);
        bms__cache_key_init(&key, (x >> 8) % 2 ? "m" : "n", 1, body,
                            strlen(body), -1);
        bms_buf_reset(&out);
        if (bms__cache_get(st->cache, &key, &out, NULL) == BMS_OK) {
            st->n_wrong += strcmp(out.data, answer) != 0;
        } else if ((x >> 4) % 97 == 0) {
            bms__cache_invalidate(st->cache, key.model);
        } else {
            bms__cache_put(st->cache, &key, answer, strlen(answer), -1, &cc);
        }
    }
    bms_buf_fini(&out);
    return NULL;
}


/* Four threads on a cache small enough to evict all the time. */
static void cache_is_safe_across_threads(void **state)
{
    struct bms__cache *c = make_cache(6000);
    struct stress st[4];
    pthread_t threads[4];
    struct bms__cache_stats m;
    struct bms__cache_stats n;

    (void)state;
    for (int t = 0; t < 4; t++) {
        st[t].cache = c;
        st[t].seed = t + 1;
        st[t].n_wrong = 0;
        assert_int_equal(pthread_create(&threads[t], NULL, stress_thread,
                                        &st[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(st[t].n_wrong, 0);
    }
    bms__cache_stats(c, "m", &m);
    bms__cache_stats(c, "n", &n);
    assert_true(m.bytes <= 4000 && n.bytes <= 4000);
    assert_int_equal((size_t)(m.bytes + n.bytes), bms__cache_size(c));
    assert_true(bms__cache_size(c) <= 6000);
    assert_true(m.hits > 0 && n.hits > 0);
    bms__cache_destroy(c);
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


static void manifest_cache_defaults_and_values(void **state)
{
    struct bms_diag diag;
    struct bms_manifest *m;

    (void)state;
    /* Without the object: off, 8 MiB = 8388608 bytes, 60 s. */
    m = parse("{\"name\": \"x\"}", &diag);
    assert_non_null(m);
    assert_int_equal(m->cache.enabled, 0);
    assert_int_equal(m->cache.max_bytes, 8388608);
    assert_int_equal(m->cache.ttl_s, 60);
    bms_manifest_destroy(m);

    m = parse("{\"cache\": {\"enabled\": true}}", &diag);
    assert_non_null(m);
    assert_int_equal(m->cache.enabled, 1);
    assert_int_equal(m->cache.max_bytes, 8388608);
    assert_int_equal(m->cache.ttl_s, 60);
    bms_manifest_destroy(m);

    m = parse("{\"cache\": {\"enabled\": true, \"max_bytes\": 4096, "
              "\"ttl_s\": 5}}", &diag);
    assert_non_null(m);
    assert_int_equal(m->cache.enabled, 1);
    assert_int_equal(m->cache.max_bytes, 4096);
    assert_int_equal(m->cache.ttl_s, 5);
    bms_manifest_destroy(m);

    m = parse("{\"cache\": {\"enabled\": false, \"ttl_s\": 1}}", &diag);
    assert_non_null(m);
    assert_int_equal(m->cache.enabled, 0);
    assert_int_equal(m->cache.ttl_s, 1);
    bms_manifest_destroy(m);
}


static void manifest_rejects_bad_cache_fields(void **state)
{
    static const struct {
        const char *json;
        const char *prefix;
    } cases[] = {
        {"{\"cache\": true}", "cache: expected an object"},
        {"{\"cache\": {\"enabled\": 1}}", "cache.enabled: "},
        {"{\"cache\": {\"enabled\": \"yes\"}}", "cache.enabled: "},
        {"{\"cache\": {\"ttl_s\": 0}}", "cache.ttl_s: "},
        {"{\"cache\": {\"ttl_s\": -5}}", "cache.ttl_s: "},
        {"{\"cache\": {\"ttl_s\": 1.5}}", "cache.ttl_s: "},
        {"{\"cache\": {\"ttl_s\": 2592001}}", "cache.ttl_s: "},
        {"{\"cache\": {\"max_bytes\": 0}}", "cache.max_bytes: "},
        {"{\"cache\": {\"max_bytes\": \"8M\"}}", "cache.max_bytes: "},
        {"{\"cache\": {\"max_bytes\": 1099511627777}}", "cache.max_bytes: "},
    };
    struct bms_manifest *m;
    struct bms_diag diag;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        diag.msg[0] = '\0';
        m = NULL;
        assert_int_equal(bms_manifest_parse(cases[i].json,
                                            strlen(cases[i].json), &m,
                                            &diag), BMS_ERR_INVALID);
        assert_null(m);
        if (strncmp(diag.msg, cases[i].prefix,
                    strlen(cases[i].prefix)) != 0) {
            fail_msg("%s: got '%s'", cases[i].json, diag.msg);
        }
    }
}


int bms_test_cache(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_hit_returns_the_stored_answer),
        cmocka_unit_test(cache_misses_on_another_body_serial_or_model),
        cmocka_unit_test(cache_hash_collision_never_returns_another_answer),
        cmocka_unit_test(cache_answer_expires_after_ttl),
        cmocka_unit_test(cache_model_bound_evicts_the_least_recently_used),
        cmocka_unit_test(cache_global_bound_evicts_across_models),
        cmocka_unit_test(cache_keeps_no_answer_larger_than_a_bound),
        cmocka_unit_test(cache_put_replaces_the_answer_of_a_key),
        cmocka_unit_test(cache_invalidate_drops_one_model_only),
        cmocka_unit_test(cache_finds_every_answer_after_the_table_grows),
        cmocka_unit_test(cache_is_safe_across_threads),
        cmocka_unit_test(manifest_cache_defaults_and_values),
        cmocka_unit_test(manifest_rejects_bad_cache_fields),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
