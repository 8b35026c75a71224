/*
 * Unit tests of the model manager and the version policy.  Each manager
 * test builds a repository folder under /tmp from the fixture
 * tests/data/tiny_mlp.onnx (image float [N, 4, 4] -> logits float
 * [N, 3]) and removes it afterwards.  The expected versions, states and
 * counts follow from the folders each test makes.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "bms/manager.h"
#include "bms/repo.h"

#define TINY_MLP "tests/data/tiny_mlp.onnx"
#define MAX_ROWS 32

/* The inputs and outputs of the tiny model, for its config.json. */
#define TINY_IO                                                              \
    "\"inputs\": [{\"name\": \"image\", \"type\": \"float\", \"size\": "     \
    "[4, 4]}], \"outputs\": [{\"name\": \"logits\", \"type\": \"int\", "     \
    "\"classes\": [\"a\", \"b\", \"c\"]}]"


static void write_text(const char *dir, const char *name, const void *data,
                       size_t size)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}


static void put_json(const char *dir, const char *name, const char *json)
{
    write_text(dir, name, json, strlen(json));
}


static void make_dir(const char *dir, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
}


/* dir/name/<version>/model.onnx, a copy of the tiny model. */
static void put_version(const char *dir, const char *name, int version)
{
    static char data[1 << 16];
    static size_t size;
    char sub[256];
    FILE *f;

    if (size == 0) {
        f = fopen(TINY_MLP, "rb");
        assert_non_null(f);
        size = fread(data, 1, sizeof(data), f);
        fclose(f);
        assert_true(size > 0);
    }
    snprintf(sub, sizeof(sub), "%s/%d", name, version);
    make_dir(dir, sub);
    snprintf(sub, sizeof(sub), "%s/%d/model.onnx", name, version);
    write_text(dir, sub, data, size);
}


static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}


static void remove_tree(const char *dir)
{
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}


static void make_root(char *dir)
{
    snprintf(dir, 64, "/tmp/bms-manager-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}


static struct bms_manifest *parse(const char *json, enum bms_status want,
                                  struct bms_diag *diag)
{
    struct bms_manifest *m = NULL;

    diag->msg[0] = '\0';
    assert_int_equal(bms_manifest_parse(json, strlen(json), &m, diag), want);
    return m;
}


/* ---- version policy ---- */

static void policy_defaults_to_all(void **state)
{
    struct bms_diag diag;
    struct bms_manifest *m = parse("{\"name\": \"x\"}", BMS_OK, &diag);
    int64_t v[3] = {1, 4, 9};

    (void)state;
    assert_int_equal(m->policy.kind, BMS_POLICY_ALL);
    for (int i = 0; i < 3; i++) {
        assert_true(bms_version_policy_selects(m, v, 3, i));
        assert_true(bms_version_policy_selects(NULL, v, 3, i));
    }
    bms_manifest_destroy(m);
    m = parse("{\"version_policy\": {\"all\": true}}", BMS_OK, &diag);
    assert_int_equal(m->policy.kind, BMS_POLICY_ALL);
    bms_manifest_destroy(m);
}


static void policy_latest_selects_the_highest(void **state)
{
    struct bms_diag diag;
    struct bms_manifest *m = parse("{\"version_policy\": {\"latest\": 2}}",
                                   BMS_OK, &diag);
    int64_t v[4] = {1, 3, 5, 7};

    (void)state;
    assert_int_equal(m->policy.kind, BMS_POLICY_LATEST);
    assert_int_equal(m->policy.latest, 2);
    assert_false(bms_version_policy_selects(m, v, 4, 0));
    assert_false(bms_version_policy_selects(m, v, 4, 1));
    assert_true(bms_version_policy_selects(m, v, 4, 2));
    assert_true(bms_version_policy_selects(m, v, 4, 3));

    /* More than there are: every one. */
    assert_true(bms_version_policy_selects(m, v, 1, 0));
    bms_manifest_destroy(m);
}


static void policy_specific_selects_those_listed(void **state)
{
    struct bms_diag diag;
    struct bms_manifest *m = parse("{\"version_policy\": {\"specific\": "
                                   "[7, 1, 12]}}", BMS_OK, &diag);
    int64_t v[4] = {1, 3, 5, 7};

    (void)state;
    assert_int_equal(m->policy.kind, BMS_POLICY_SPECIFIC);
    assert_int_equal(m->policy.n_specific, 3);
    assert_true(bms_version_policy_selects(m, v, 4, 0));
    assert_false(bms_version_policy_selects(m, v, 4, 1));
    assert_false(bms_version_policy_selects(m, v, 4, 2));
    assert_true(bms_version_policy_selects(m, v, 4, 3));
    bms_manifest_destroy(m);
}


static void policy_rejects_bad_values(void **state)
{
    static const struct {
        const char *json;
        const char *field;
    } cases[] = {
        {"{\"version_policy\": 1}", "version_policy: expected an object"},
        {"{\"version_policy\": {}}", "version_policy: expected one of"},
        {"{\"version_policy\": {\"latest\": 1, \"all\": true}}",
         "version_policy: expected one of"},
        {"{\"version_policy\": {\"latest\": 0}}", "version_policy.latest"},
        {"{\"version_policy\": {\"latest\": \"2\"}}",
         "version_policy.latest"},
        {"{\"version_policy\": {\"all\": false}}", "version_policy.all"},
        {"{\"version_policy\": {\"specific\": []}}",
         "version_policy.specific"},
        {"{\"version_policy\": {\"specific\": [1, 0]}}",
         "version_policy.specific[1]"},
        {"{\"version_policy\": {\"specific\": [2, 2]}}",
         "version_policy.specific[1]: version 2 given twice"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bms_diag diag;
        struct bms_manifest *m = parse(cases[i].json, BMS_ERR_INVALID,
                                       &diag);

        assert_null(m);
        assert_non_null(strstr(diag.msg, cases[i].field));
    }
}


static void repo_open_one_applies_the_policy(void **state)
{
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    for (int v = 1; v <= 3; v++) {
        put_version(dir, "tiny", v);
    }
    put_json(dir, "tiny/config.json", "{" TINY_IO ", \"version_policy\": "
             "{\"latest\": 1}}");
    make_dir(dir, "other");
    put_version(dir, "other", 1);

    assert_int_equal(bms_repo_open_one(dir, "tiny", NULL, 0, &repo, &diag),
                     BMS_OK);
    assert_int_equal(bms_repo_n_entries(repo), 1);
    assert_int_equal(bms_repo_entry(repo, 0)->version, 3);
    assert_int_equal(bms_repo_entry(repo, 0)->state, BMS_ENTRY_READY);
    assert_false(bms_repo_has_model(repo, "other"));
    bms_repo_close(repo);

    /* One version asked for: only it, whatever the policy. */
    assert_int_equal(bms_repo_open_one(dir, "tiny", NULL, 2, &repo, &diag),
                     BMS_OK);
    assert_int_equal(bms_repo_n_entries(repo), 1);
    assert_int_equal(bms_repo_entry(repo, 0)->version, 2);
    bms_repo_close(repo);

    /* A replacement config.json stands for the folder's. */
    assert_int_equal(bms_repo_open_one(dir, "tiny", "{" TINY_IO ", "
                                       "\"version_policy\": {\"specific\": "
                                       "[1, 3]}}", 0, &repo, &diag), BMS_OK);
    assert_int_equal(bms_repo_n_entries(repo), 2);
    assert_int_equal(bms_repo_entry(repo, 0)->version, 1);
    assert_int_equal(bms_repo_entry(repo, 1)->version, 3);
    bms_repo_close(repo);

    assert_int_equal(bms_repo_open_one(dir, "tiny", NULL, 4, &repo, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms_repo_open_one(dir, "none", NULL, 0, &repo, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms_repo_open_one(dir, "../x", NULL, 0, &repo, &diag),
                     BMS_ERR_INVALID);
    remove_tree(dir);
}


/* ---- the manager ---- */

/* The index rows of a manager, copied. */
struct rows {
    int n;
    char name[MAX_ROWS][64];
    int64_t version[MAX_ROWS];
    char state[MAX_ROWS][16];
    char reason[MAX_ROWS][256];
};


static int collect_row(void *ud, const struct bms_manager_entry *e)
{
    struct rows *r = ud;

    if (r->n < MAX_ROWS) {
        snprintf(r->name[r->n], sizeof(r->name[0]), "%s", e->name);
        r->version[r->n] = e->version;
        snprintf(r->state[r->n], sizeof(r->state[0]), "%s", e->state);
        snprintf(r->reason[r->n], sizeof(r->reason[0]), "%s", e->reason);
        r->n++;
    }
    return 0;
}


/* The changes the hook saw, joined with spaces. */
static char changes[512];


static void on_change(void *ud, const char *name)
{
    size_t n = strlen(changes);

    (void)ud;
    snprintf(changes + n, sizeof(changes) - n, "%s ", name);
}


static struct bms_manager *open_manager(const char *dir)
{
    struct bms_manager_config c = { dir, 1, NULL, 0 };
    struct bms_manager *m = NULL;
    struct bms_diag diag = {""};

    assert_int_equal(bms_manager_open(&c, &m, &diag), BMS_OK);
    changes[0] = '\0';
    bms_manager_set_change_hook(m, on_change, NULL);
    return m;
}


/* The serial of the version name/version leased now; 0 when none. */
static uint64_t leased_serial(struct bms_manager *m, const char *name,
                              int64_t version)
{
    struct bms_manager_lease lease;
    struct bms_served *served;
    uint64_t serial = 0;

    bms_manager_acquire(m, name, &lease);
    served = bms_repo_find(lease.repo, name, version);
    if (served != NULL) {
        serial = bms_served_serial(served);
    }
    bms_manager_release(m, &lease);
    return serial;
}


static void manager_index_shows_every_folder(void **state)
{
    struct bms_manager *m;
    struct rows r;
    struct bms_diag diag = {""};
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    put_version(dir, "tiny", 1);
    put_version(dir, "tiny", 2);
    put_json(dir, "tiny/config.json", "{" TINY_IO ", \"version_policy\": "
             "{\"latest\": 1}}");
    make_dir(dir, "broken");
    make_dir(dir, "broken/1");
    put_json(dir, "broken/1/model.onnx", "not an onnx model");
    m = open_manager(dir);
    assert_int_equal(bms_manager_n_ready(m), 1);

    memset(&r, 0, sizeof(r));
    assert_int_equal(bms_manager_index(m, collect_row, &r, &diag), BMS_OK);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.name[0], "broken");
    assert_int_equal(r.version[0], 1);
    assert_string_equal(r.state[0], "UNAVAILABLE");
    assert_non_null(strstr(r.reason[0], "model.onnx"));
    assert_string_equal(r.name[1], "tiny");
    assert_int_equal(r.version[1], 1);
    assert_string_equal(r.state[1], "UNAVAILABLE");
    assert_string_equal(r.name[2], "tiny");
    assert_int_equal(r.version[2], 2);
    assert_string_equal(r.state[2], "READY");
    assert_string_equal(r.reason[2], "");
    bms_manager_close(m);
    remove_tree(dir);
}


static void manager_unload_and_load(void **state)
{
    struct bms_manager_lease lease;
    struct bms_manager *m;
    struct bms_diag diag = {""};
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    put_version(dir, "tiny", 1);
    m = open_manager(dir);
    assert_int_not_equal(leased_serial(m, "tiny", 1), 0);

    /* A lease taken before the unload stays usable until released. */
    bms_manager_acquire(m, "tiny", &lease);
    assert_int_equal(bms_manager_unload(m, "tiny", 0, &diag), BMS_OK);
    assert_int_equal(leased_serial(m, "tiny", 1), 0);
    assert_non_null(bms_repo_find(lease.repo, "tiny", 1));
    bms_manager_release(m, &lease);
    assert_null(lease.repo);

    assert_int_equal(bms_manager_load(m, "tiny", 0, NULL, &diag), BMS_OK);
    assert_int_not_equal(leased_serial(m, "tiny", 1), 0);
    assert_string_equal(changes, "tiny tiny ");

    assert_int_equal(bms_manager_load(m, "none", 0, NULL, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms_manager_unload(m, "none", 0, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms_manager_load(m, "tiny", 5, NULL, &diag),
                     BMS_ERR_NOT_FOUND);
    bms_manager_close(m);
    remove_tree(dir);
}


static void manager_reload_swaps_and_keeps_old_leases(void **state)
{
    struct bms_manager_lease old;
    struct bms_manager *m;
    struct bms_diag diag = {""};
    struct bms_session *session = NULL;
    uint64_t first;
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    put_version(dir, "tiny", 1);
    m = open_manager(dir);
    first = leased_serial(m, "tiny", 1);
    bms_manager_acquire(m, "tiny", &old);

    assert_int_equal(bms_manager_load(m, "tiny", 0, NULL, &diag), BMS_OK);
    assert_int_not_equal(leased_serial(m, "tiny", 1), first);
    assert_int_not_equal(leased_serial(m, "tiny", 1), 0);

    /* The old version still runs for the request that holds it. */
    assert_int_equal(bms_served_serial(bms_repo_find(old.repo, "tiny", 1)),
                     first);
    assert_int_equal(bms_served_acquire(bms_repo_find(old.repo, "tiny", 1),
                                        &session, &diag), BMS_OK);
    bms_served_release(bms_repo_find(old.repo, "tiny", 1), session);
    bms_manager_release(m, &old);
    bms_manager_close(m);
    remove_tree(dir);
}


static void manager_failed_reload_keeps_the_old_version(void **state)
{
    struct bms_manager *m;
    struct rows r;
    struct bms_diag diag = {""};
    uint64_t first;
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    put_version(dir, "tiny", 1);
    m = open_manager(dir);
    first = leased_serial(m, "tiny", 1);

    assert_int_equal(bms_manager_load(m, "tiny", 0, "{\"name\": ", &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "config.json"));
    assert_int_equal(leased_serial(m, "tiny", 1), first);
    assert_int_equal(bms_manager_load(m, "tiny", 0, "{" TINY_IO ", "
                                      "\"scheduling\": {\"max_batch_size\": "
                                      "-1}}", &diag),
                     BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "scheduling.max_batch_size"));
    assert_int_equal(leased_serial(m, "tiny", 1), first);
    assert_string_equal(changes, "");

    /* The index still shows the version serving. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(bms_manager_index(m, collect_row, &r, &diag), BMS_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.state[0], "READY");
    bms_manager_close(m);
    remove_tree(dir);
}


static void manager_version_load_and_unload(void **state)
{
    struct bms_manager *m;
    struct bms_diag diag = {""};
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    put_version(dir, "tiny", 1);
    m = open_manager(dir);
    put_version(dir, "tiny", 2);
    assert_int_equal(leased_serial(m, "tiny", 2), 0);

    assert_int_equal(bms_manager_load(m, "tiny", 2, NULL, &diag), BMS_OK);
    assert_int_not_equal(leased_serial(m, "tiny", 1), 0);
    assert_int_not_equal(leased_serial(m, "tiny", 2), 0);

    assert_int_equal(bms_manager_unload(m, "tiny", 1, &diag), BMS_OK);
    assert_int_equal(leased_serial(m, "tiny", 1), 0);
    assert_int_not_equal(leased_serial(m, "tiny", 2), 0);
    assert_int_equal(bms_manager_unload(m, "tiny", 1, &diag),
                     BMS_ERR_NOT_FOUND);

    /* The last version going unloads the model. */
    assert_int_equal(bms_manager_unload(m, "tiny", 2, &diag), BMS_OK);
    assert_int_equal(bms_manager_n_ready(m), 0);
    bms_manager_close(m);
    remove_tree(dir);
}


static void manager_poll_follows_the_folder(void **state)
{
    struct bms_manager *m;
    char path[128];
    uint64_t first;
    char dir[64];

    (void)state;
    make_root(dir);
    make_dir(dir, "tiny");
    put_version(dir, "tiny", 1);
    m = open_manager(dir);
    first = leased_serial(m, "tiny", 1);
    assert_int_equal(bms_manager_poll(m), 0);

    /* A new folder. */
    make_dir(dir, "fresh");
    put_version(dir, "fresh", 1);
    assert_int_equal(bms_manager_poll(m), 1);
    assert_int_not_equal(leased_serial(m, "fresh", 1), 0);
    assert_int_equal(leased_serial(m, "tiny", 1), first);

    /* A changed config.json. */
    put_json(dir, "tiny/config.json", "{" TINY_IO ", \"description\": "
             "\"changed\"}");
    assert_int_equal(bms_manager_poll(m), 1);
    assert_int_not_equal(leased_serial(m, "tiny", 1), first);
    assert_int_not_equal(leased_serial(m, "tiny", 1), 0);
    assert_int_equal(bms_manager_poll(m), 0);

    /* A removed folder. */
    snprintf(path, sizeof(path), "%s/fresh", dir);
    remove_tree(path);
    assert_int_equal(bms_manager_poll(m), 1);
    assert_int_equal(leased_serial(m, "fresh", 1), 0);
    assert_int_equal(bms_manager_n_ready(m), 1);
    assert_string_equal(changes, "fresh tiny fresh ");
    bms_manager_close(m);
    remove_tree(dir);
}


int bms_test_manager(int *n_tests);


int bms_test_manager(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_defaults_to_all),
        cmocka_unit_test(policy_latest_selects_the_highest),
        cmocka_unit_test(policy_specific_selects_those_listed),
        cmocka_unit_test(policy_rejects_bad_values),
        cmocka_unit_test(repo_open_one_applies_the_policy),
        cmocka_unit_test(manager_index_shows_every_folder),
        cmocka_unit_test(manager_unload_and_load),
        cmocka_unit_test(manager_reload_swaps_and_keeps_old_leases),
        cmocka_unit_test(manager_failed_reload_keeps_the_old_version),
        cmocka_unit_test(manager_version_load_and_unload),
        cmocka_unit_test(manager_poll_follows_the_folder),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
