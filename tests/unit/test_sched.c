/*
 * Unit tests of the scheduler: the batching helpers on hand-made tensors,
 * the "scheduling" fields of config.json, and whole queues over
 * tests/data/tiny_mlp.onnx (image float [N, 4, 4] -> logits float [N, 3],
 * logits = flatten(image) . W + b).  A one-hot image at position p gives
 * row p of W plus b; the rows used here are copied from the model's
 * initializers (read with onnx.numpy_helper), so every expected value is
 * independent of bms.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "bms/repo.h"
#include "bms/sched.h"
#include "sched/batch.h"

#define TINY_MLP "tests/data/tiny_mlp.onnx"
#define N_CALLERS 6

/* Rows 0, 5, 9 and 15 of tiny_mlp's weight [16, 3], and its bias. */
static const float weight_rows[4][3] = {
    {1.23015337e-03f, 2.98745543e-01f, -2.74137855e-01f},
    {6.95303202e-01f, -1.34421456e+00f, -4.57615763e-01f},
    {-5.38692892e-01f, -4.85009439e-02f, 1.13308989e-01f},
    {-1.54714465e+00f, 8.59382689e-01f, 1.19354025e-01f},
};
static const int weight_pos[4] = {0, 5, 9, 15};
static const float bias[3] = {0.5f, -0.25f, 0.125f};


/* ---- batching helpers ---- */

static struct bms_tensor f32(int64_t rows, int64_t cols, float *data)
{
    struct bms_tensor t;

    memset(&t, 0, sizeof(t));
    t.dtype = BMS_DTYPE_F32;
    t.n_dims = 2;
    t.dims[0] = rows;
    t.dims[1] = cols;
    t.data = data;
    return t;
}


static void batch_merge_concatenates_rows(void **state)
{
    float a[2] = {1, 2};
    float b[4] = {3, 4, 5, 6};
    struct bms_tensor ta = f32(1, 2, a);
    struct bms_tensor tb = f32(2, 2, b);
    const struct bms_tensor *jobs[2] = {&ta, &tb};
    struct bms_buf scratch = {0};
    struct bms_tensor merged;
    const float *m;

    (void)state;
    assert_int_equal(bms__batch_merge(jobs, 2, 1, &scratch, &merged),
                     BMS_OK);
    assert_int_equal(merged.n_dims, 2);
    assert_int_equal(merged.dims[0], 3);
    assert_int_equal(merged.dims[1], 2);
    m = merged.data;
    for (int i = 0; i < 6; i++) {
        assert_true(m[i] == (float)(i + 1));
    }
    bms_buf_fini(&scratch);
}


static void batch_slice_cuts_rows_out(void **state)
{
    float data[6] = {0, 1, 2, 3, 4, 5};
    struct bms_tensor out = f32(3, 2, data);
    struct bms_sched_result r;
    const float *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(bms__batch_slice(&out, 1, 1, 2, 0, &r), BMS_OK);
    assert_int_equal(r.n_outputs, 1);
    assert_int_equal(r.outputs[0].dims[0], 2);
    assert_int_equal(r.outputs[0].dims[1], 2);
    p = r.outputs[0].data;
    assert_true(p[0] == 2 && p[1] == 3 && p[2] == 4 && p[3] == 5);
    assert_ptr_not_equal(r.outputs[0].data, data);
    bms_sched_result_fini(&r);
    assert_null(r.block);
}


static void batch_compatible_needs_same_item_shape(void **state)
{
    float x[6] = {0};
    struct bms_tensor a = f32(1, 2, x);
    struct bms_tensor b = f32(2, 2, x);
    struct bms_tensor c = f32(1, 3, x);
    struct bms_tensor d = f32(1, 2, x);
    struct bms_tensor scalar;

    (void)state;
    d.dtype = BMS_DTYPE_I32;
    memset(&scalar, 0, sizeof(scalar));
    scalar.dtype = BMS_DTYPE_F32;
    scalar.data = x;
    assert_true(bms__batch_compatible(&a, &b, 1));
    assert_false(bms__batch_compatible(&a, &c, 1));
    assert_false(bms__batch_compatible(&a, &d, 1));
    assert_false(bms__batch_compatible(&scalar, &scalar, 1));
}


static void batch_splittable_needs_every_row(void **state)
{
    float x[8] = {0};
    struct bms_tensor outs[2] = {f32(4, 2, x), f32(3, 2, x)};

    (void)state;
    assert_true(bms__batch_splittable(outs, 1, 4));
    assert_false(bms__batch_splittable(outs, 2, 4));
}


/* ---- the "scheduling" fields ---- */

static struct bms_manifest *parse_ok(const char *json)
{
    struct bms_manifest *m = NULL;
    struct bms_diag diag;

    diag.msg[0] = '\0';
    assert_int_equal(bms_manifest_parse(json, strlen(json), &m, &diag),
                     BMS_OK);
    return m;
}


static void parse_fails(const char *json, const char *prefix)
{
    struct bms_manifest *m = NULL;
    struct bms_diag diag;

    diag.msg[0] = '\0';
    assert_int_equal(bms_manifest_parse(json, strlen(json), &m, &diag),
                     BMS_ERR_INVALID);
    assert_null(m);
    assert_true(strncmp(diag.msg, prefix, strlen(prefix)) == 0);
}


static void manifest_scheduling_defaults(void **state)
{
    struct bms_manifest *m = parse_ok("{}");

    (void)state;
    assert_int_equal(m->sched.max_queue_size, 256);
    assert_int_equal(m->sched.max_batch_size, 0);
    assert_int_equal(m->sched.max_queue_delay_us, 500);
    assert_int_equal(m->sched.n_preferred, 0);
    assert_int_equal(m->sched.instances, 1);
    assert_int_equal(m->sched.max_concurrency, 0);
    bms_manifest_destroy(m);
}


static void manifest_scheduling_reads_fields(void **state)
{
    struct bms_manifest *m = parse_ok(
        "{\"scheduling\": {\"max_queue_size\": 9, \"max_batch_size\": 8, "
        "\"max_queue_delay_us\": 0, \"preferred_batch_sizes\": [4, 8], "
        "\"instances\": 3, \"max_concurrency\": 12}}");

    (void)state;
    assert_int_equal(m->sched.max_queue_size, 9);
    assert_int_equal(m->sched.max_batch_size, 8);
    assert_int_equal(m->sched.max_queue_delay_us, 0);
    assert_int_equal(m->sched.n_preferred, 2);
    assert_int_equal(m->sched.preferred_batch_sizes[0], 4);
    assert_int_equal(m->sched.preferred_batch_sizes[1], 8);
    assert_int_equal(m->sched.instances, 3);
    assert_int_equal(m->sched.max_concurrency, 12);
    bms_manifest_destroy(m);
}


static void manifest_rejects_bad_scheduling(void **state)
{
    (void)state;
    parse_fails("{\"scheduling\": 3}", "scheduling: expected an object");
    parse_fails("{\"scheduling\": {\"max_queue_size\": 0}}",
                "scheduling.max_queue_size: expected an integer");
    parse_fails("{\"scheduling\": {\"max_batch_size\": 1.5}}",
                "scheduling.max_batch_size: expected an integer");
    parse_fails("{\"scheduling\": {\"max_queue_delay_us\": -1}}",
                "scheduling.max_queue_delay_us:");
    parse_fails("{\"scheduling\": {\"instances\": \"2\"}}",
                "scheduling.instances:");
    parse_fails("{\"scheduling\": {\"max_concurrency\": -3}}",
                "scheduling.max_concurrency:");
    parse_fails("{\"scheduling\": {\"preferred_batch_sizes\": [2]}}",
                "scheduling.preferred_batch_sizes: needs batching on");
    parse_fails("{\"scheduling\": {\"max_batch_size\": 4, "
                "\"preferred_batch_sizes\": [2, 5]}}",
                "scheduling.preferred_batch_sizes[1]:");
}


static void manifest_instance_bounds_settle(void **state)
{
    struct bms_manifest *m = parse_ok("{\"scheduling\": {\"instances\": 3}}");

    (void)state;
    /* No bounds: no autoscaling, both bounds are the count. */
    assert_int_equal(m->sched.min_instances, 3);
    assert_int_equal(m->sched.max_instances, 3);
    assert_int_equal(m->sched.scale_down_after_s, 30);
    assert_int_equal(m->sched.scale_up_wait_ms, 10);
    bms_manifest_destroy(m);

    /* Bounds alone: start at the lower one. */
    m = parse_ok("{\"scheduling\": {\"min_instances\": 2, "
                 "\"max_instances\": 5, \"scale_down_after_s\": 7}}");
    assert_int_equal(m->sched.instances, 2);
    assert_int_equal(m->sched.min_instances, 2);
    assert_int_equal(m->sched.max_instances, 5);
    assert_int_equal(m->sched.scale_down_after_s, 7);
    bms_manifest_destroy(m);

    /* Only the upper bound: instances (here the default 1) is the
     * lower one. */
    m = parse_ok("{\"scheduling\": {\"max_instances\": 4}}");
    assert_int_equal(m->sched.instances, 1);
    assert_int_equal(m->sched.min_instances, 1);
    assert_int_equal(m->sched.max_instances, 4);
    bms_manifest_destroy(m);
}


static void manifest_rejects_bad_instance_bounds(void **state)
{
    (void)state;
    parse_fails("{\"scheduling\": {\"min_instances\": 3, "
                "\"max_instances\": 2}}", "scheduling.min_instances: 3 is "
                "more than max_instances (2)");
    parse_fails("{\"scheduling\": {\"instances\": 6, \"min_instances\": 1, "
                "\"max_instances\": 4}}", "scheduling.instances: 6 is "
                "outside");
    parse_fails("{\"scheduling\": {\"max_instances\": 0}}",
                "scheduling.max_instances: expected an integer in 1..");
    parse_fails("{\"scheduling\": {\"scale_down_after_s\": 0}}",
                "scheduling.scale_down_after_s:");
    parse_fails("{\"scheduling\": {\"scale_up_wait_ms\": -1}}",
                "scheduling.scale_up_wait_ms:");
}


/* ---- queues over tiny_mlp ---- */

struct fixture {
    char dir[64];
    struct bms_repo *repo;
    struct bms_sched *sched;
    struct bms_served *served;
};


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


/* A repository with model "tiny" whose config.json has this scheduling
 * object, opened, with its scheduler. */
static void fixture_open(struct fixture *f, const char *scheduling)
{
    char path[256];
    FILE *cfg;
    struct bms_diag diag;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bms-sched-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/tiny", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/tiny/1", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/tiny/1/model.onnx", f->dir);
    copy_file(TINY_MLP, path);
    snprintf(path, sizeof(path), "%s/tiny/config.json", f->dir);
    cfg = fopen(path, "w");
    assert_non_null(cfg);
    fprintf(cfg, "{\"inputs\": [{\"name\": \"image\", \"type\": \"float\", "
            "\"size\": [4, 4]}], \"scheduling\": %s}", scheduling);
    fclose(cfg);

    diag.msg[0] = '\0';
    assert_int_equal(bms_repo_open(f->dir, &f->repo, &diag), BMS_OK);
    f->served = bms_repo_find(f->repo, "tiny", 0);
    assert_non_null(f->served);
    assert_int_equal(bms_sched_create(f->repo, 2, &f->sched, &diag),
                     BMS_OK);
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
    bms_sched_destroy(f->sched);
    bms_repo_close(f->repo);
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}


/* One caller: n_items one-hot images, item i hot at weight_pos[(first +
 * i) % 4]. */
struct caller {
    struct fixture *f;
    int first;
    int n_items;
    float image[4 * 16];
    enum bms_status rc;
    struct bms_sched_result result;
};


static void *caller_main(void *arg)
{
    struct caller *c = arg;
    struct bms_tensor in;
    struct bms_diag diag;

    memset(c->image, 0, sizeof(c->image));
    for (int i = 0; i < c->n_items; i++) {
        c->image[i * 16 + weight_pos[(c->first + i) % 4]] = 1.0f;
    }
    memset(&in, 0, sizeof(in));
    in.dtype = BMS_DTYPE_F32;
    in.n_dims = 3;
    in.dims[0] = c->n_items;
    in.dims[1] = 4;
    in.dims[2] = 4;
    in.data = c->image;
    diag.msg[0] = '\0';
    c->rc = bms_sched_infer(c->f->sched, c->f->served, &in, 0, &c->result,
                            &diag);
    return NULL;
}


static void check_caller(const struct caller *c)
{
    const struct bms_tensor *t;
    const float *p;

    assert_int_equal(c->rc, BMS_OK);
    assert_int_equal(c->result.n_outputs, 1);
    t = &c->result.outputs[0];
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->dims[0], c->n_items);
    assert_int_equal(t->dims[1], 3);
    p = t->data;
    for (int i = 0; i < c->n_items; i++) {
        const float *w = weight_rows[(c->first + i) % 4];

        for (int j = 0; j < 3; j++) {
            assert_true(fabsf(p[i * 3 + j] - (w[j] + bias[j])) < 1e-5f);
        }
    }
}


static void run_callers(struct fixture *f, struct caller *c, int n)
{
    pthread_t threads[N_CALLERS];

    for (int i = 0; i < n; i++) {
        c[i].f = f;
        c[i].first = i;
        c[i].n_items = 1 + i % 3;
        assert_int_equal(pthread_create(&threads[i], NULL, caller_main,
                                        &c[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(threads[i], NULL);
    }
}


static void sched_batches_split_back_per_request(void **state)
{
    struct fixture f;
    struct caller c[N_CALLERS];
    struct bms_sched_stats st;

    (void)state;
    memset(c, 0, sizeof(c));
    fixture_open(&f, "{\"max_batch_size\": 16, "
                 "\"max_queue_delay_us\": 200000, "
                 "\"preferred_batch_sizes\": [12]}");
    run_callers(&f, c, N_CALLERS);
    for (int i = 0; i < N_CALLERS; i++) {
        check_caller(&c[i]);
        bms_sched_result_fini(&c[i].result);
    }
    assert_int_equal(bms_sched_stats(f.sched, f.served, &st), BMS_OK);
    assert_int_equal(st.requests, N_CALLERS);
    assert_int_equal(st.items, 12);            /* 1+2+3+1+2+3 */
    assert_true(st.executions < st.requests);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.in_flight, 0);
    fixture_close(&f);
}


static void sched_unbatched_runs_each_alone(void **state)
{
    struct fixture f;
    struct caller c[N_CALLERS];
    struct bms_sched_stats st;

    (void)state;
    memset(c, 0, sizeof(c));
    fixture_open(&f, "{\"instances\": 2}");
    run_callers(&f, c, N_CALLERS);
    for (int i = 0; i < N_CALLERS; i++) {
        check_caller(&c[i]);
        bms_sched_result_fini(&c[i].result);
    }
    assert_int_equal(bms_sched_stats(f.sched, f.served, &st), BMS_OK);
    assert_int_equal(st.executions, N_CALLERS);
    assert_int_equal(st.instances, 2);
    assert_int_equal(st.threads_per_instance, 1);    /* 2 cores / 2 */
    fixture_close(&f);
}


static void sched_past_deadline_is_refused(void **state)
{
    struct fixture f;
    struct bms_sched_result r;
    struct bms_sched_stats st;
    struct bms_tensor in;
    float image[16] = {0};
    struct bms_diag diag;

    (void)state;
    fixture_open(&f, "{}");
    memset(&in, 0, sizeof(in));
    in.dtype = BMS_DTYPE_F32;
    in.n_dims = 3;
    in.dims[0] = 1;
    in.dims[1] = 4;
    in.dims[2] = 4;
    in.data = image;
    assert_int_equal(bms_sched_infer(f.sched, f.served, &in,
                                     bms_now_us() - 1, &r, &diag),
                     BMS_ERR_UNAVAILABLE);
    assert_int_equal(r.refusal, BMS_SCHED_DEADLINE);
    assert_null(r.outputs);
    assert_int_equal(bms_sched_stats(f.sched, f.served, &st), BMS_OK);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.requests, 0);
    fixture_close(&f);
}


static void sched_create_without_ready_models(void **state)
{
    char empty[64] = "/tmp/bms-sched-XXXXXX";
    struct fixture f;
    struct bms_sched_stats st;
    struct bms_repo *repo = NULL;
    struct bms_sched *sched = NULL;
    struct bms_diag diag;

    (void)state;
    assert_non_null(mkdtemp(empty));
    assert_int_equal(bms_repo_open(empty, &repo, &diag), BMS_OK);
    assert_int_equal(bms_sched_create(repo, 0, &sched, &diag), BMS_OK);
    fixture_open(&f, "{}");
    assert_int_equal(bms_sched_stats(sched, f.served, &st),
                     BMS_ERR_NOT_FOUND);
    bms_sched_destroy(sched);
    bms_repo_close(repo);
    rmdir(empty);
    fixture_close(&f);
}


int bms_test_sched(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_merge_concatenates_rows),
        cmocka_unit_test(batch_slice_cuts_rows_out),
        cmocka_unit_test(batch_compatible_needs_same_item_shape),
        cmocka_unit_test(batch_splittable_needs_every_row),
        cmocka_unit_test(manifest_scheduling_defaults),
        cmocka_unit_test(manifest_instance_bounds_settle),
        cmocka_unit_test(manifest_rejects_bad_instance_bounds),
        cmocka_unit_test(manifest_scheduling_reads_fields),
        cmocka_unit_test(manifest_rejects_bad_scheduling),
        cmocka_unit_test(sched_batches_split_back_per_request),
        cmocka_unit_test(sched_unbatched_runs_each_alone),
        cmocka_unit_test(sched_past_deadline_is_refused),
        cmocka_unit_test(sched_create_without_ready_models),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
