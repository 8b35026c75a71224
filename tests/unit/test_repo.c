/*
 * Unit tests of the model repository.  Each test builds a repository in a
 * fresh folder under /tmp from the fixture tests/data/tiny_mlp.onnx (image
 * float [N, 4, 4] -> logits float [N, 3]): good models, a broken one, a
 * name that does not match its folder, a bad folder name, a model without
 * versions.  The folder is removed afterwards.
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

#define TINY_MLP "tests/data/tiny_mlp.onnx"
#define MAX_LINES 64

static const char good_json[] =
    "{\"name\": \"good\", \"version\": \"2.1\", \"inputs\": [{\"name\": "
    "\"image\", \"type\": \"float\", \"size\": [4, 4]}], \"outputs\": "
    "[{\"name\": \"logits\", \"type\": \"int\", \"classes\": [\"a\", \"b\", "
    "\"c\"]}]}";

/* Log lines captured while a test runs. */
static char log_lines[MAX_LINES][512];
static int n_log_lines;


static void capture_log(void *ud, enum bms_log_level level,
                        const char *line)
{
    (void)ud;
    (void)level;
    if (n_log_lines < MAX_LINES) {
        snprintf(log_lines[n_log_lines++], sizeof(log_lines[0]), "%s", line);
    }
}


static int logged(const char *needle)
{
    for (int i = 0; i < n_log_lines; i++) {
        if (strstr(log_lines[i], needle) != NULL) {
            return 1;
        }
    }
    return 0;
}


static void write_file(const char *dir, const char *name, const void *data,
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


static void make_dir(const char *dir, const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
}


/* Copies the tiny model to dir/name. */
static void put_model(const char *dir, const char *name)
{
    static char data[1 << 16];
    static size_t size;
    FILE *f;

    if (size == 0) {
        f = fopen(TINY_MLP, "rb");
        assert_non_null(f);
        size = fread(data, 1, sizeof(data), f);
        fclose(f);
        assert_true(size > 0);
    }
    write_file(dir, name, data, size);
}


static void put_json(const char *dir, const char *name, const char *json)
{
    write_file(dir, name, json, strlen(json));
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


/*
 * The repository of most tests:
 *   good/        config.json, 1/ and 2/ with model.onnx, reference.txt,
 *                0/ and 01/ (not versions)
 *   noconfig/3/  model.onnx only
 *   broken/1/    a model.onnx that is not ONNX
 *   mismatch/    config.json naming "other"
 *   badcheck/    config.json whose size does not fit the graph
 *   badjson/     config.json that is not JSON
 *   empty/       no versions
 *   bad name/    a folder name with a space (skipped)
 *   .hidden/     a dot folder (skipped)
 *   plain.txt    a file (skipped)
 */
static void make_repo(char *dir)
{
    snprintf(dir, 64, "/tmp/bms-repo-test-XXXXXX");
    assert_non_null(mkdtemp(dir));

    make_dir(dir, "good");
    put_json(dir, "good/config.json", good_json);
    make_dir(dir, "good/1");
    put_model(dir, "good/1/model.onnx");
    make_dir(dir, "good/2");
    put_model(dir, "good/2/model.onnx");
    make_dir(dir, "good/0");
    put_model(dir, "good/0/model.onnx");
    make_dir(dir, "good/01");
    put_model(dir, "good/01/model.onnx");
    put_json(dir, "good/reference.txt", "not a model\n");

    make_dir(dir, "noconfig");
    make_dir(dir, "noconfig/3");
    put_model(dir, "noconfig/3/model.onnx");

    make_dir(dir, "broken");
    make_dir(dir, "broken/1");
    put_json(dir, "broken/1/model.onnx", "this is not an onnx model");

    make_dir(dir, "mismatch");
    put_json(dir, "mismatch/config.json", "{\"name\": \"other\"}");
    make_dir(dir, "mismatch/1");
    put_model(dir, "mismatch/1/model.onnx");

    make_dir(dir, "badcheck");
    put_json(dir, "badcheck/config.json", "{\"inputs\": [{\"name\": "
             "\"image\", \"type\": \"float\", \"size\": [4, 5]}]}");
    make_dir(dir, "badcheck/1");
    put_model(dir, "badcheck/1/model.onnx");

    make_dir(dir, "badjson");
    put_json(dir, "badjson/config.json", "{\"name\": ");
    make_dir(dir, "badjson/1");
    put_model(dir, "badjson/1/model.onnx");

    make_dir(dir, "empty");
    make_dir(dir, "bad name");
    make_dir(dir, "bad name/1");
    put_model(dir, "bad name/1/model.onnx");
    make_dir(dir, ".hidden");
    make_dir(dir, ".hidden/1");
    put_model(dir, ".hidden/1/model.onnx");
    put_json(dir, "plain.txt", "x");
}


static struct bms_repo *open_repo(const char *dir)
{
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};

    n_log_lines = 0;
    bms_log_set_handler(capture_log, NULL);
    assert_int_equal(bms_repo_open(dir, &repo, &diag), BMS_OK);
    bms_log_set_handler(NULL, NULL);
    return repo;
}


static void repo_lists_every_version_sorted(void **state)
{
    static const struct {
        const char *name;
        int64_t version;
        enum bms_entry_state state;
    } want[] = {
        {"badcheck", 1, BMS_ENTRY_FAILED}, {"badjson", 1, BMS_ENTRY_FAILED},
        {"broken", 1, BMS_ENTRY_FAILED},   {"empty", 0, BMS_ENTRY_FAILED},
        {"good", 1, BMS_ENTRY_READY},      {"good", 2, BMS_ENTRY_READY},
        {"mismatch", 1, BMS_ENTRY_FAILED}, {"noconfig", 3, BMS_ENTRY_READY},
    };
    int n_want = (int)(sizeof(want) / sizeof(want[0]));
    char dir[64];
    struct bms_repo *repo;

    (void)state;
    make_repo(dir);
    repo = open_repo(dir);
    assert_int_equal(bms_repo_n_entries(repo), n_want);
    for (int i = 0; i < n_want; i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        assert_string_equal(e->name, want[i].name);
        assert_int_equal(e->version, want[i].version);
        assert_int_equal(e->state, want[i].state);
        if (e->state == BMS_ENTRY_READY) {
            assert_string_equal(e->reason, "");
            assert_non_null(e->served);
        } else {
            assert_true(e->reason[0] != '\0');
            assert_null(e->served);
        }
    }
    assert_null(bms_repo_entry(repo, n_want));
    bms_repo_close(repo);
    remove_tree(dir);
}


static const char *reason_of(struct bms_repo *repo, const char *name)
{
    for (int i = 0; i < bms_repo_n_entries(repo); i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        if (strcmp(e->name, name) == 0) {
            return e->reason;
        }
    }
    fail_msg("no entry %s", name);
    return "";
}


static void repo_failures_carry_their_reason(void **state)
{
    char dir[64];
    struct bms_repo *repo;

    (void)state;
    make_repo(dir);
    repo = open_repo(dir);
    assert_string_equal(reason_of(repo, "mismatch"), "config.json: name "
                        "'other' does not match folder 'mismatch'");
    assert_string_equal(reason_of(repo, "badcheck"), "config.json: "
                        "inputs[0].size[1]: 5, but graph value 'image' has "
                        "4 there");
    assert_true(strncmp(reason_of(repo, "badjson"), "config.json: ", 13)
                == 0);
    assert_null(strstr(reason_of(repo, "badjson"), "config.json: config"));
    assert_true(strncmp(reason_of(repo, "broken"), "model.onnx: ", 12)
                == 0);
    assert_non_null(strstr(reason_of(repo, "empty"), "no version folders"));

    /* Each failure is logged once, and the skipped folder is warned of. */
    assert_true(logged("level=error mod=repo msg=\"model failed\" "
                       "model=mismatch version=1 reason=\"config.json: "
                       "name 'other' does not match folder 'mismatch'\""));
    assert_true(logged("level=info mod=repo msg=\"model loaded\" model=good "
                       "version=2"));
    assert_true(logged("level=warn mod=repo msg=\"model folder skipped\" "
                       "folder=\"bad name\""));
    assert_false(logged("hidden"));
    bms_repo_close(repo);
    remove_tree(dir);
}


static void repo_find_picks_ready_versions(void **state)
{
    char dir[64];
    struct bms_repo *repo;
    struct bms_served *s;

    (void)state;
    make_repo(dir);
    repo = open_repo(dir);
    s = bms_repo_find(repo, "good", 0);
    assert_non_null(s);
    assert_int_equal(bms_served_version(s), 2);
    assert_string_equal(bms_served_name(s), "good");
    assert_string_equal(bms_served_manifest(s)->version, "2.1");
    assert_int_equal(bms_served_manifest(s)->outputs[0].n_classes, 3);
    assert_int_equal(bms_model_n_inputs(bms_served_model(s)), 1);
    s = bms_repo_find(repo, "good", 1);
    assert_non_null(s);
    assert_int_equal(bms_served_version(s), 1);
    assert_null(bms_repo_find(repo, "good", 3));
    assert_null(bms_repo_find(repo, "broken", 0));
    assert_null(bms_repo_find(repo, "broken", 1));
    assert_null(bms_repo_find(repo, "nothing", 0));

    /* Without config.json the manifest comes from the graph. */
    s = bms_repo_find(repo, "noconfig", 0);
    assert_non_null(s);
    assert_string_equal(bms_served_manifest(s)->name, "noconfig");
    assert_int_equal(bms_served_manifest(s)->inputs[0].n_dims, 2);

    assert_true(bms_repo_has_model(repo, "broken"));
    assert_true(bms_repo_has_model(repo, "empty"));
    assert_false(bms_repo_has_model(repo, "bad name"));
    assert_false(bms_repo_has_model(repo, ".hidden"));
    bms_repo_close(repo);
    remove_tree(dir);
}


static void repo_open_fails_on_missing_dir(void **state)
{
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};

    (void)state;
    assert_int_equal(bms_repo_open("/tmp/bms-no-such-repo-dir", &repo,
                                   &diag),
                     BMS_ERR_NOT_FOUND);
    assert_null(repo);
    assert_non_null(strstr(diag.msg, "/tmp/bms-no-such-repo-dir"));
}


static void served_reuses_released_sessions(void **state)
{
    char dir[64];
    struct bms_repo *repo;
    struct bms_served *s;
    struct bms_session *a = NULL;
    struct bms_session *b = NULL;
    struct bms_session *c = NULL;

    (void)state;
    make_repo(dir);
    repo = open_repo(dir);
    s = bms_repo_find(repo, "good", 0);
    assert_non_null(s);
    assert_int_equal(bms_served_acquire(s, &a, NULL), BMS_OK);
    assert_int_equal(bms_served_acquire(s, &b, NULL), BMS_OK);
    assert_ptr_not_equal(a, b);
    bms_served_release(s, a);
    assert_int_equal(bms_served_acquire(s, &c, NULL), BMS_OK);
    assert_ptr_equal(c, a);
    bms_served_release(s, b);
    bms_served_release(s, c);
    bms_repo_close(repo);
    remove_tree(dir);
}


static void *acquire_loop(void *arg)
{
    struct bms_served *s = arg;

    for (int i = 0; i < 200; i++) {
        struct bms_session *session = NULL;

        if (bms_served_acquire(s, &session, NULL) != BMS_OK) {
            return arg;
        }
        bms_served_release(s, session);
    }
    return NULL;
}


static void served_acquire_is_thread_safe(void **state)
{
    char dir[64];
    struct bms_repo *repo;
    struct bms_served *s;
    pthread_t threads[4];

    (void)state;
    make_repo(dir);
    repo = open_repo(dir);
    s = bms_repo_find(repo, "good", 0);
    assert_non_null(s);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, acquire_loop, s),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        void *failed = NULL;

        pthread_join(threads[i], &failed);
        assert_null(failed);
    }
    bms_repo_close(repo);
    remove_tree(dir);
}


static struct bms_repo *open_one(const char *path)
{
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc = bms_repo_open_model(path, &repo, &diag);

    if (rc != BMS_OK) {
        print_error("%s: %s\n", path, diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    assert_int_equal(bms_repo_n_entries(repo), 1);
    assert_int_equal(bms_repo_entry(repo, 0)->state, BMS_ENTRY_READY);
    return repo;
}


static void open_model_takes_onnx_file(void **state)
{
    struct bms_repo *repo = open_one(TINY_MLP);
    const struct bms_repo_entry *e = bms_repo_entry(repo, 0);

    (void)state;
    assert_string_equal(e->name, "tiny_mlp");
    assert_int_equal(e->version, 1);
    assert_non_null(bms_repo_find(repo, "tiny_mlp", 0));
    assert_string_equal(bms_served_manifest(e->served)->inputs[0].name,
                        "image");
    bms_repo_close(repo);
}


static void open_model_takes_folders(void **state)
{
    char dir[64];
    char path[128];
    struct bms_repo *repo;

    (void)state;
    make_repo(dir);

    /* A model folder with versions: the highest. */
    snprintf(path, sizeof(path), "%s/good/", dir);
    repo = open_one(path);
    assert_string_equal(bms_repo_entry(repo, 0)->name, "good");
    assert_int_equal(bms_repo_entry(repo, 0)->version, 2);
    bms_repo_close(repo);

    /* A folder with model.onnx directly inside. */
    make_dir(dir, "direct");
    put_model(dir, "direct/model.onnx");
    snprintf(path, sizeof(path), "%s/direct", dir);
    repo = open_one(path);
    assert_string_equal(bms_repo_entry(repo, 0)->name, "direct");
    assert_int_equal(bms_repo_entry(repo, 0)->version, 1);
    bms_repo_close(repo);

    /* A broken highest version: the highest one that loads, as the
     * server would answer. */
    make_dir(dir, "good/3");
    put_json(dir, "good/3/model.onnx", "this is not an onnx model");
    snprintf(path, sizeof(path), "%s/good", dir);
    repo = open_one(path);
    assert_int_equal(bms_repo_entry(repo, 0)->version, 2);
    bms_repo_close(repo);
    remove_tree(dir);
}


static void open_model_reports_load_errors(void **state)
{
    char dir[64];
    char path[128];
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};

    (void)state;
    make_repo(dir);
    snprintf(path, sizeof(path), "%s/broken", dir);
    assert_int_not_equal(bms_repo_open_model(path, &repo, &diag), BMS_OK);
    assert_null(repo);
    /* The version folder that failed, then the loader's reason. */
    assert_non_null(strstr(diag.msg, "/broken/1: model.onnx: "));

    snprintf(path, sizeof(path), "%s/empty", dir);
    assert_int_equal(bms_repo_open_model(path, &repo, &diag),
                     BMS_ERR_NOT_FOUND);
    snprintf(path, sizeof(path), "%s/plain.txt", dir);
    assert_int_equal(bms_repo_open_model(path, &repo, &diag),
                     BMS_ERR_INVALID);
    snprintf(path, sizeof(path), "%s/nothing.onnx", dir);
    assert_int_equal(bms_repo_open_model(path, &repo, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_null(repo);
    remove_tree(dir);
}


int bms_test_repo(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repo_lists_every_version_sorted),
        cmocka_unit_test(repo_failures_carry_their_reason),
        cmocka_unit_test(repo_find_picks_ready_versions),
        cmocka_unit_test(repo_open_fails_on_missing_dir),
        cmocka_unit_test(served_reuses_released_sessions),
        cmocka_unit_test(served_acquire_is_thread_safe),
        cmocka_unit_test(open_model_takes_onnx_file),
        cmocka_unit_test(open_model_takes_folders),
        cmocka_unit_test(open_model_reports_load_errors),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
