/*
 * The shared unit-test helpers declared in harness.h.  The node helpers
 * call the operator's steps exactly as the executor does, one node at a
 * time, so a kernel test sees what a session would pass it; the fixture
 * helpers read from TH_DATA, so the tests run from the repository root.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "harness.h"


void th_node_init(struct th_node *t, const char *op_type, int64_t opset,
                  int n_inputs, int n_outputs)
{
    memset(t, 0, sizeof(*t));
    assert_true(n_inputs <= TH_MAX_IO && n_outputs <= TH_MAX_IO);
    t->node.op = bms__op_find(op_type);
    assert_non_null(t->node.op);
    for (int i = 0; i < TH_MAX_IO; i++) {
        t->inputs[i] = i;
        t->outputs[i] = TH_MAX_IO + i;
    }
    t->node.name = "under_test";
    t->node.op_type = op_type;
    t->node.opset = opset;
    t->node.n_inputs = n_inputs;
    t->node.inputs = t->inputs;
    t->node.n_outputs = n_outputs;
    t->node.outputs = t->outputs;
    t->node.attrs = t->attrs;
}


void th_node_fini(struct th_node *t)
{
    bms__node_params_free(&t->node);
}


struct bms__attr *th_attr_add(struct th_node *t, const char *name,
                              enum bms__attr_type type)
{
    struct bms__attr *a;

    assert_true(t->node.n_attrs < TH_MAX_ATTRS);
    a = &t->attrs[t->node.n_attrs++];
    memset(a, 0, sizeof(*a));
    a->name = name;
    a->type = type;
    return a;
}


void th_attr_int(struct th_node *t, const char *name, int64_t v)
{
    th_attr_add(t, name, BMS__ATTR_INT)->i = v;
}


void th_attr_float(struct th_node *t, const char *name, float v)
{
    th_attr_add(t, name, BMS__ATTR_FLOAT)->f = v;
}


void th_attr_ints(struct th_node *t, const char *name, const int64_t *v,
                  int n)
{
    struct bms__attr *a = th_attr_add(t, name, BMS__ATTR_INTS);

    a->ints = v;
    a->n = n;
}


void th_attr_string(struct th_node *t, const char *name, const char *s)
{
    struct bms__attr *a = th_attr_add(t, name, BMS__ATTR_STRING);

    a->s = s;
    a->s_len = strlen(s);
}


struct bms_tensor th_tensor(enum bms_dtype dtype, void *data, int n_dims,
                            const int64_t *dims)
{
    struct bms_tensor t;

    memset(&t, 0, sizeof(t));
    t.dtype = dtype;
    t.n_dims = n_dims;
    if (n_dims > 0) {
        memcpy(t.dims, dims, sizeof(int64_t) * (size_t)n_dims);
    }
    t.data = data;
    return t;
}


/* The input pointers an operator step takes: NULL for absent inputs. */
static void input_ptrs(const struct th_node *t, const struct bms_tensor *in,
                       const struct bms_tensor **inp)
{
    for (int i = 0; i < t->node.n_inputs; i++) {
        inp[i] = t->inputs[i] >= 0 ? &in[i] : NULL;
    }
}


enum bms_status th_node_infer(struct th_node *t, const struct bms_tensor *in,
                              struct bms_tensor *out, struct bms_diag *diag)
{
    const struct bms_tensor *inp[TH_MAX_IO];
    enum bms_status rc;

    input_ptrs(t, in, inp);
    rc = t->node.op->prepare(&t->node, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    memset(out, 0, sizeof(*out) * (size_t)t->node.n_outputs);
    return t->node.op->infer(&t->node, inp, out, diag);
}


enum bms_status th_node_run(struct th_node *t, const struct bms_tensor *in,
                            struct bms_tensor *out, void **out_data,
                            struct bms_diag *diag)
{
    const struct bms_tensor *inp[TH_MAX_IO];
    struct bms__ctx ctx = {NULL, 0, 1};
    enum bms_status rc;

    rc = th_node_infer(t, in, out, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    input_ptrs(t, in, inp);
    for (int j = 0; j < t->node.n_outputs; j++) {
        out[j].data = out_data[j];
    }
    rc = t->node.op->run(&t->node, inp, out, &ctx);
    bms__ctx_fini(&ctx);
    return rc;
}


enum bms_status th_node_check(struct th_node *t, const struct bms_tensor *in,
                              struct bms_tensor *out, void **out_data)
{
    struct bms_diag diag = {{0}};
    enum bms_status rc;

    for (int i = 0; i < t->node.n_inputs; i++) {
        if (in[i].dtype == BMS_DTYPE_UNDEFINED) {
            t->inputs[i] = -1;
        }
    }
    rc = th_node_run(t, in, out, out_data, &diag);
    th_node_fini(t);
    if (rc != BMS_OK) {
        print_message("diag: %s\n", diag.msg);
    }
    return rc;
}


void th_assert_dims(const struct bms_tensor *t, int n_dims,
                    const int64_t *dims)
{
    assert_int_equal(t->n_dims, n_dims);
    for (int i = 0; i < n_dims; i++) {
        assert_int_equal(t->dims[i], dims[i]);
    }
}


void th_assert_floats_d(const float *got, const double *want, int n,
                        double atol, double rtol)
{
    for (int i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - want[i]);

        if (diff > atol + rtol * fabs(want[i])) {
            fail_msg("element %d: got %.9g, want %.9g", i, (double)got[i],
                     want[i]);
        }
    }
}


void th_assert_floats(const float *got, const float *want, int n,
                      double atol, double rtol)
{
    for (int i = 0; i < n; i++) {
        double w = (double)want[i];

        th_assert_floats_d(&got[i], &w, 1, atol, rtol);
    }
}


void th_assert_int64s(const int64_t *got, const int64_t *want, int n)
{
    for (int i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fail_msg("element %d: got %lld, want %lld", i,
                     (long long)got[i], (long long)want[i]);
        }
    }
}


void th_assert_tensor_close(const struct bms_tensor *got,
                            const struct bms_tensor *want)
{
    int64_t n = bms_tensor_numel(want);

    assert_int_equal(got->dtype, BMS_DTYPE_F32);
    th_assert_dims(got, want->n_dims, want->dims);
    for (int64_t i = 0; i < n; i++) {
        float a = ((const float *)got->data)[i];
        float b = ((const float *)want->data)[i];

        if (!(fabsf(a - b) <= 1e-5f + 1e-4f * fabsf(b))) {
            fail_msg("element %lld: got %.9g, want %.9g", (long long)i,
                     (double)a, (double)b);
        }
    }
}


void *th_data_read(const char *name, size_t *size)
{
    char path[256];
    FILE *f;
    char *data;
    long len;

    snprintf(path, sizeof(path), TH_DATA "%s", name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    data = malloc((size_t)len);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return data;
}


void th_pb_read(const char *name, struct bms__pool *pool,
                struct bms_tensor *t)
{
    struct bms_diag diag;
    size_t size;
    void *data = th_data_read(name, &size);

    assert_int_equal(bms__tensor_read(data, size, pool, t, NULL, &diag),
                     BMS_OK);
    free(data);
}


enum bms_status th_model_load(const char *name, struct bms_model **model,
                              struct bms_diag *diag)
{
    char path[256];

    snprintf(path, sizeof(path), TH_DATA "%s", name);
    diag->msg[0] = '\0';
    return bms_model_load_file(path, model, diag);
}


void th_store_path(char *path, size_t size, const char *what)
{
    int fd;

    snprintf(path, size, "/tmp/bms-%s-test-XXXXXX", what);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
}


struct bms_store *th_store_open(const char *path)
{
    struct bms_store *store = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc = bms_store_open_sqlite(path, &store, &diag);

    if (rc != BMS_OK) {
        print_error("%s: %s\n", path, diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    return store;
}


void th_store_remove(const char *path)
{
    char side[128];

    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}
