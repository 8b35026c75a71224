/*
 * Unit tests of weighted routing between versions: the "routing" document
 * parser, the config.json field and its version check, the routing table
 * (smooth weighted round-robin, readiness, run-time changes, many threads
 * at once) and the /routing endpoint through the handlers.  The expected
 * pick sequences are worked out by hand in the comments; the repository
 * is a temporary copy of tests/data/tiny_mlp.onnx as versions 1 and 2 and
 * a version 3 that does not load.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "bms/repo.h"
#include "sched/routing.h"
#include "server/route.h"

#define TINY_MLP "tests/data/tiny_mlp.onnx"
#define N_PICKERS 4
#define PICKS_EACH 250

struct fixture {
    char dir[64];
    struct bms_repo *repo;
    struct bms__routing *routing;
};


/* ---- the routing document ---- */

static void weights_parse_sorts_versions(void **state)
{
    static const char doc[] = "{\"weights\": {\"2\": 10, \"1\": 90}}";
    struct bms_routing_weights w;

    (void)state;
    assert_int_equal(bms_routing_weights_parse(doc, strlen(doc), &w, NULL),
                     BMS_OK);
    assert_int_equal(w.n_weights, 2);
    assert_int_equal(w.versions[0], 1);
    assert_int_equal(w.weights[0], 90);
    assert_int_equal(w.versions[1], 2);
    assert_int_equal(w.weights[1], 10);
}


/* Parse doc, expect BMS_ERR_INVALID and a message holding want. */
static void expect_refused(const char *doc, const char *want)
{
    struct bms_routing_weights w;
    struct bms_diag diag;

    diag.msg[0] = '\0';
    assert_int_equal(bms_routing_weights_parse(doc, strlen(doc), &w, &diag),
                     BMS_ERR_INVALID);
    if (strstr(diag.msg, want) == NULL) {
        fail_msg("'%s': message '%s' lacks '%s'", doc, diag.msg, want);
    }
}


static void weights_parse_rejects_negative_weight(void **state)
{
    (void)state;
    expect_refused("{\"weights\": {\"1\": 90, \"2\": -1}}",
                   "weights.2: expected an integer in 0..1000000");
}


static void weights_parse_rejects_all_zero(void **state)
{
    (void)state;
    expect_refused("{\"weights\": {\"1\": 0, \"2\": 0}}",
                   "weights: every weight is 0");
}


static void weights_parse_rejects_bad_documents(void **state)
{
    (void)state;
    expect_refused("{\"weights\": {\"01\": 5}}", "weights: '01' is not a "
                   "version");
    expect_refused("{\"weights\": {\"0\": 5}}", "'0' is not a version");
    expect_refused("{\"weights\": {\"one\": 5}}", "'one' is not a version");
    expect_refused("{\"weights\": {\"1\": 2.5}}", "weights.1: expected");
    expect_refused("{\"weights\": {\"1\": 1000001}}", "weights.1:");
    expect_refused("{\"weights\": [90, 10]}", "weights: expected an "
                   "object");
    expect_refused("{\"weigths\": {\"1\": 1}}", "unknown member 'weigths'");
    expect_refused("{\"weights\": {\"1\": 1}, \"x\": 1}",
                   "unknown member 'x'");
    expect_refused("[1]", "body: expected a JSON object");
    expect_refused("{\"weights\": ", "body:");
    expect_refused("{\"weights\": {\"1\": 1, \"1\": 2}}", "weights.1: "
                   "given twice");
}


static void weights_parse_accepts_empty_weights(void **state)
{
    static const char doc[] = "{\"weights\": {}}";
    struct bms_routing_weights w;

    (void)state;
    w.n_weights = -1;
    assert_int_equal(bms_routing_weights_parse(doc, strlen(doc), &w, NULL),
                     BMS_OK);
    assert_int_equal(w.n_weights, 0);
}


static void manifest_reads_routing(void **state)
{
    static const char doc[] =
        "{\"routing\": {\"weights\": {\"3\": 1, \"1\": 3}}}";
    struct bms_manifest *m = NULL;
    int64_t have[2] = {1, 2};
    struct bms_diag diag;

    (void)state;
    assert_int_equal(bms_manifest_parse(doc, strlen(doc), &m, NULL),
                     BMS_OK);
    assert_int_equal(m->routing.n_weights, 2);
    assert_int_equal(m->routing.versions[0], 1);
    assert_int_equal(m->routing.weights[0], 3);
    assert_int_equal(m->routing.versions[1], 3);
    diag.msg[0] = '\0';
    assert_int_equal(bms_manifest_check_versions(m, have, 2, &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "routing.weights.3"));
    have[1] = 3;
    assert_int_equal(bms_manifest_check_versions(m, have, 2, NULL), BMS_OK);
    bms_manifest_destroy(m);
}


static void manifest_rejects_bad_routing(void **state)
{
    static const char *const docs[] = {
        "{\"routing\": 5}",
        "{\"routing\": {\"weights\": {\"1\": -3}}}",
        "{\"routing\": {\"weights\": {\"1\": 0}}}",
    };
    static const char *const wants[] = {
        "routing: expected an object",
        "routing.weights.1: expected an integer",
        "routing.weights: every weight is 0",
    };

    (void)state;
    for (int i = 0; i < 3; i++) {
        struct bms_manifest *m = NULL;
        struct bms_diag diag;

        diag.msg[0] = '\0';
        assert_int_equal(bms_manifest_parse(docs[i], strlen(docs[i]), &m,
                                            &diag), BMS_ERR_INVALID);
        assert_null(m);
        if (strstr(diag.msg, wants[i]) == NULL) {
            fail_msg("message '%s' lacks '%s'", diag.msg, wants[i]);
        }
    }
}


/* ---- a repository ---- */

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    char buf[4096];
    size_t n;

    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    fclose(in);
    fclose(out);
}


static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}


/* Model "tiny" with versions 1 and 2 (tiny_mlp) and 3 (not a model), its
 * config.json routing object given (or none), opened with its table. */
static void fixture_open(struct fixture *f, const char *routing)
{
    char path[256];
    char config[512];

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bms-routing-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/tiny", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (int v = 1; v <= 3; v++) {
        snprintf(path, sizeof(path), "%s/tiny/%d", f->dir, v);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/tiny/%d/model.onnx", f->dir, v);
        if (v < 3) {
            copy_file(TINY_MLP, path);
        } else {
            write_text(path, "not a model");
        }
    }
    snprintf(config, sizeof(config), "{\"inputs\": [{\"name\": \"image\", "
             "\"type\": \"float\", \"size\": [4, 4]}]%s%s}",
             routing != NULL ? ", \"routing\": " : "",
             routing != NULL ? routing : "");
    snprintf(path, sizeof(path), "%s/tiny/config.json", f->dir);
    write_text(path, config);
    assert_int_equal(bms_repo_open(f->dir, &f->repo, NULL), BMS_OK);
    assert_int_equal(bms__routing_create(f->repo, &f->routing), BMS_OK);
}


static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}


static void fixture_close(struct fixture *f)
{
    bms__routing_destroy(f->routing);
    bms_repo_close(f->repo);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}


/* Ready: the repository loaded the version. */
static int loaded(void *arg, const char *name, int64_t version)
{
    return bms_repo_find(arg, name, version) != NULL;
}


static int64_t pick(struct fixture *f)
{
    int64_t v = -1;

    assert_int_equal(bms__routing_pick(f->routing, "tiny", loaded, f->repo,
                                       &v), BMS_OK);
    return v;
}


/* ---- the table ---- */

static void repo_refuses_routing_to_missing_version(void **state)
{
    struct fixture f;
    int n_failed = 0;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"1\": 50, \"4\": 50}}");
    for (int i = 0; i < bms_repo_n_entries(f.repo); i++) {
        const struct bms_repo_entry *e = bms_repo_entry(f.repo, i);

        assert_int_equal(e->state, BMS_ENTRY_FAILED);
        if (strstr(e->reason, "routing.weights.4") == NULL) {
            fail_msg("reason '%s' does not name routing.weights.4",
                     e->reason);
        }
        n_failed++;
    }
    assert_int_equal(n_failed, 3);
    fixture_close(&f);
}


static void pick_without_weights_leaves_version_open(void **state)
{
    struct fixture f;

    (void)state;
    fixture_open(&f, NULL);
    assert_int_equal(pick(&f), 0);
    fixture_close(&f);
}


/*
 * Weights 3 and 1 (total 4), credits from (0, 0); each pick adds (3, 1),
 * takes the larger (ties: the lower version) and subtracts 4 from it:
 * (3, 1) -> v1 (-1, 1); (2, 2) -> v1 (-2, 2); (1, 3) -> v2 (1, -1);
 * (4, 0) -> v1 (0, 0), and the cycle repeats.
 */
static void pick_follows_smooth_weighted_round_robin(void **state)
{
    static const int64_t expected[8] = {1, 1, 2, 1, 1, 1, 2, 1};
    struct fixture f;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"1\": 3, \"2\": 1}}");
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pick(&f), expected[i]);
    }
    fixture_close(&f);
}


/* Version 3 failed to load: its weight goes to the others.  With 1 and 3
 * weighted alike only 1 is ever ready, so it takes every pick. */
static void pick_skips_version_not_ready(void **state)
{
    struct fixture f;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"1\": 50, \"3\": 50}}");
    for (int i = 0; i < 10; i++) {
        assert_int_equal(pick(&f), 1);
    }
    fixture_close(&f);
}


static void pick_with_no_weighted_version_ready_is_unavailable(void **s)
{
    static const char doc[] = "{\"weights\": {\"2\": 0, \"3\": 5}}";
    struct bms_routing_weights w;
    struct fixture f;
    int64_t v = -1;

    (void)s;
    fixture_open(&f, NULL);
    assert_int_equal(bms_routing_weights_parse(doc, strlen(doc), &w, NULL),
                     BMS_OK);
    assert_int_equal(bms__routing_set(f.routing, "tiny", &w, NULL), BMS_OK);
    assert_int_equal(bms__routing_pick(f.routing, "tiny", loaded, f.repo,
                                       &v), BMS_ERR_UNAVAILABLE);
    assert_int_equal(v, 0);
    fixture_close(&f);
}


/* A change applies to the next pick and starts the credits again: after
 * weights 0/1 every pick is 2; back to 3/1 the cycle starts at 1, 1, 2. */
static void set_applies_at_once(void **state)
{
    static const char to_two[] = "{\"weights\": {\"1\": 0, \"2\": 1}}";
    static const char back[] = "{\"weights\": {\"1\": 3, \"2\": 1}}";
    struct bms_routing_weights w;
    struct fixture f;

    (void)state;
    fixture_open(&f, back);
    assert_int_equal(pick(&f), 1);
    assert_int_equal(bms_routing_weights_parse(to_two, strlen(to_two), &w,
                                               NULL), BMS_OK);
    assert_int_equal(bms__routing_set(f.routing, "tiny", &w, NULL), BMS_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pick(&f), 2);
    }
    assert_int_equal(bms_routing_weights_parse(back, strlen(back), &w,
                                               NULL), BMS_OK);
    assert_int_equal(bms__routing_set(f.routing, "tiny", &w, NULL), BMS_OK);
    assert_int_equal(pick(&f), 1);
    assert_int_equal(pick(&f), 1);
    assert_int_equal(pick(&f), 2);
    fixture_close(&f);
}


static void set_rejects_unknown_version_and_model(void **state)
{
    static const char doc[] = "{\"weights\": {\"1\": 5, \"9\": 5}}";
    struct bms_routing_weights w;
    struct bms_routing_weights now;
    struct bms_diag diag;
    struct fixture f;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"2\": 1}}");
    assert_int_equal(bms_routing_weights_parse(doc, strlen(doc), &w, NULL),
                     BMS_OK);
    diag.msg[0] = '\0';
    assert_int_equal(bms__routing_set(f.routing, "tiny", &w, &diag),
                     BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "weights.9: model 'tiny' has no version "
                        "9");
    assert_int_equal(bms__routing_set(f.routing, "other", &w, NULL),
                     BMS_ERR_NOT_FOUND);
    /* The refused change left the weights as they were. */
    assert_int_equal(bms__routing_get(f.routing, "tiny", &now, NULL),
                     BMS_OK);
    assert_int_equal(now.n_weights, 1);
    assert_int_equal(now.versions[0], 2);
    fixture_close(&f);
}


static void json_shows_weights_and_routed(void **state)
{
    struct bms_buf out = {NULL, 0, 0};
    struct fixture f;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"1\": 3, \"2\": 1}}");
    for (int i = 0; i < 4; i++) {
        pick(&f);
    }
    assert_int_equal(bms__routing_json(f.routing, "tiny", &out), BMS_OK);
    assert_string_equal(out.data, "{\"weights\": {\"1\": 3, \"2\": 1}, "
                        "\"routed\": {\"1\": 3, \"2\": 1}}");
    bms_buf_reset(&out);
    assert_int_equal(bms__routing_json(f.routing, "none", &out),
                     BMS_ERR_NOT_FOUND);
    bms_buf_fini(&out);
    fixture_close(&f);
}


struct picker {
    struct fixture *f;
    int n_v1;
    int n_v2;
};


static void *run_picker(void *arg)
{
    struct picker *p = arg;

    for (int i = 0; i < PICKS_EACH; i++) {
        int64_t v = 0;

        if (bms__routing_pick(p->f->routing, "tiny", loaded, p->f->repo,
                              &v) != BMS_OK) {
            return NULL;
        }
        p->n_v1 += v == 1;
        p->n_v2 += v == 2;
    }
    return NULL;
}


/* 4 threads x 250 picks at 90/10: the picks are one sequence whatever the
 * interleaving, and 1,000 is ten whole cycles of 100, so exactly 900 and
 * 100. */
static void pick_is_exact_across_threads(void **state)
{
    pthread_t threads[N_PICKERS];
    struct picker pickers[N_PICKERS];
    struct fixture f;
    int n_v1 = 0;
    int n_v2 = 0;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"1\": 90, \"2\": 10}}");
    for (int i = 0; i < N_PICKERS; i++) {
        pickers[i].f = &f;
        pickers[i].n_v1 = 0;
        pickers[i].n_v2 = 0;
        assert_int_equal(pthread_create(&threads[i], NULL, run_picker,
                                        &pickers[i]), 0);
    }
    for (int i = 0; i < N_PICKERS; i++) {
        pthread_join(threads[i], NULL);
        n_v1 += pickers[i].n_v1;
        n_v2 += pickers[i].n_v2;
    }
    assert_int_equal(n_v1, 900);
    assert_int_equal(n_v2, 100);
    fixture_close(&f);
}


/* ---- the endpoint ---- */

static void handle(struct fixture *f, const char *path, const char *method,
                   const char *body, struct bms__reply *reply)
{
    struct bms__context ctx;
    struct bms__route route;

    memset(&ctx, 0, sizeof(ctx));
    ctx.repo = f->repo;
    ctx.routing = f->routing;
    memset(reply, 0, sizeof(*reply));
    assert_int_equal(bms__route_parse(path, &route, NULL), BMS_OK);
    bms__handle_with(&ctx, &route, method, body, strlen(body), reply);
}


static void endpoint_changes_and_shows_weights(void **state)
{
    struct bms__reply reply;
    struct fixture f;

    (void)state;
    fixture_open(&f, NULL);
    handle(&f, "/v2/models/tiny/routing", "GET", "", &reply);
    assert_int_equal(reply.http_status, 200);
    assert_string_equal(reply.body.data, "{\"weights\": {}, \"routed\": "
                        "{}}");
    bms_buf_fini(&reply.body);

    handle(&f, "/v2/models/tiny/routing", "PUT",
           "{\"weights\": {\"2\": 1, \"1\": 4}}", &reply);
    assert_int_equal(reply.http_status, 200);
    assert_string_equal(reply.body.data, "{\"weights\": {\"1\": 4, \"2\": "
                        "1}, \"routed\": {\"1\": 0, \"2\": 0}}");
    bms_buf_fini(&reply.body);

    handle(&f, "/v2/models/tiny", "GET", "", &reply);
    assert_int_equal(reply.http_status, 200);
    assert_non_null(strstr(reply.body.data, ",\"routing\": {\"weights\": "
                           "{\"1\": 4, \"2\": 1}"));
    bms_buf_fini(&reply.body);
    fixture_close(&f);
}


static void endpoint_refuses_bad_changes(void **state)
{
    static const struct {
        const char *body;
        int status;
        const char *error;
    } cases[] = {
        { "{\"weights\": {\"7\": 1}}", 400,
          "weights.7: model 'tiny' has no version 7" },
        { "{\"weights\": {\"1\": -5}}", 400,
          "weights.1: expected an integer in 0..1000000" },
        { "{\"weights\": {\"1\": 0}}", 400,
          "weights: every weight is 0 (at least one must be positive)" },
        { "{}", 400,
          "weights: expected an object of \"<version>\": <weight>" },
    };
    struct bms__reply reply;
    struct fixture f;

    (void)state;
    fixture_open(&f, "{\"weights\": {\"1\": 1}}");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        handle(&f, "/v2/models/tiny/routing", "PUT", cases[i].body, &reply);
        assert_int_equal(reply.http_status, cases[i].status);
        assert_string_equal(reply.error, cases[i].error);
        bms_buf_fini(&reply.body);
    }
    handle(&f, "/v2/models/tiny/routing", "POST", "", &reply);
    assert_int_equal(reply.http_status, 405);
    assert_string_equal(reply.allow, "GET, PUT");
    bms_buf_fini(&reply.body);
    handle(&f, "/v2/models/nope/routing", "GET", "", &reply);
    assert_int_equal(reply.http_status, 404);
    bms_buf_fini(&reply.body);
    fixture_close(&f);
}


static void route_parse_knows_routing_path(void **state)
{
    struct bms__route route;

    (void)state;
    assert_int_equal(bms__route_parse("/v2/models/m/routing", &route, NULL),
                     BMS_OK);
    assert_int_equal(route.kind, BMS__ROUTE_ROUTING);
    assert_string_equal(route.model, "m");
    assert_int_equal(route.version, 0);
    assert_int_equal(bms__route_parse("/v2/models/m/versions/2/routing",
                                      &route, NULL), BMS_ERR_NOT_FOUND);
    assert_true(bms__route_takes_body(BMS__ROUTE_ROUTING, "PUT"));
    assert_false(bms__route_takes_body(BMS__ROUTE_ROUTING, "GET"));
    assert_true(bms__route_takes_body(BMS__ROUTE_INFER, "POST"));
}


int bms_test_routing(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(weights_parse_sorts_versions),
        cmocka_unit_test(weights_parse_rejects_negative_weight),
        cmocka_unit_test(weights_parse_rejects_all_zero),
        cmocka_unit_test(weights_parse_rejects_bad_documents),
        cmocka_unit_test(weights_parse_accepts_empty_weights),
        cmocka_unit_test(manifest_reads_routing),
        cmocka_unit_test(manifest_rejects_bad_routing),
        cmocka_unit_test(repo_refuses_routing_to_missing_version),
        cmocka_unit_test(pick_without_weights_leaves_version_open),
        cmocka_unit_test(pick_follows_smooth_weighted_round_robin),
        cmocka_unit_test(pick_skips_version_not_ready),
        cmocka_unit_test(pick_with_no_weighted_version_ready_is_unavailable),
        cmocka_unit_test(set_applies_at_once),
        cmocka_unit_test(set_rejects_unknown_version_and_model),
        cmocka_unit_test(json_shows_weights_and_routed),
        cmocka_unit_test(pick_is_exact_across_threads),
        cmocka_unit_test(endpoint_changes_and_shows_weights),
        cmocka_unit_test(endpoint_refuses_bad_changes),
        cmocka_unit_test(route_parse_knows_routing_path),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
