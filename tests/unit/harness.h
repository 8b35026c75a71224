/*
 * The helpers the unit tests share: a node built by hand around one
 * operator and run through its prepare, infer and run steps; tensor and
 * attribute constructors for it; element-wise comparisons that name the
 * first element off; and the reading of fixtures from tests/data.  Every
 * helper fails the running cmocka test (it does not return) when its own
 * set-up goes wrong, so callers only check what they test.  None of them
 * is thread-safe: a th_node belongs to the test that made it.
 */
#ifndef BMS_TESTS_HARNESS_H
#define BMS_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "bms/engine.h"
#include "bms/store.h"
#include "engine/graph.h"
#include "engine/model.h"

#define TH_DATA "tests/data/"    /* fixtures, relative to the repo root */
#define TH_MAX_IO 10             /* inputs, and outputs, of a th_node */
#define TH_MAX_ATTRS 8

/*
 * A node under test with room for its index arrays and attributes.
 * Input k reads value k and output j writes value TH_MAX_IO + j; a test
 * marks input k absent by setting inputs[k] to -1.
 */
struct th_node {
    struct bms__node node;
    int inputs[TH_MAX_IO];
    int outputs[TH_MAX_IO];
    struct bms__attr attrs[TH_MAX_ATTRS];
};

/*
 * Zero t and make it a node named "under_test" of op_type at opset, with
 * n_inputs inputs and n_outputs outputs (each at most TH_MAX_IO) and no
 * attributes.  The operator comes from bms__op_find; the test fails when
 * there is none.  op_type is borrowed and must outlive t.
 */
void th_node_init(struct th_node *t, const char *op_type, int64_t opset,
                  int n_inputs, int n_outputs);

/* Release the params prepare made (bms__node_params_free); t may be run
 * again after it.  Safe on a node whose prepare never ran or failed. */
void th_node_fini(struct th_node *t);

/*
 * Append a zeroed attribute of type to t and return it for the caller to
 * fill; name is borrowed.  Fails the test past TH_MAX_ATTRS.  The typed
 * helpers below fill one value each; arrays and strings are borrowed.
 */
struct bms__attr *th_attr_add(struct th_node *t, const char *name,
                              enum bms__attr_type type);
void th_attr_int(struct th_node *t, const char *name, int64_t v);
void th_attr_float(struct th_node *t, const char *name, float v);
void th_attr_ints(struct th_node *t, const char *name, const int64_t *v,
                  int n);
void th_attr_string(struct th_node *t, const char *name, const char *s);

/* A tensor of dtype and dims (n_dims of them, dims may be NULL when 0)
 * over data, which stays the caller's and may be NULL. */
struct bms_tensor th_tensor(enum bms_dtype dtype, void *data, int n_dims,
                            const int64_t *dims);

/*
 * Run prepare, then infer into out[0 .. n_outputs) (zeroed first), on
 * in[k] for each input k; an input whose index is below 0 is passed as
 * NULL.  Returns the first status that is not BMS_OK, with its message
 * in diag (optional).  The params stay for th_node_fini.
 */
enum bms_status th_node_infer(struct th_node *t, const struct bms_tensor *in,
                              struct bms_tensor *out, struct bms_diag *diag);

/*
 * th_node_infer, then run with out[j].data = out_data[j]: the caller
 * sizes out_data from the dims the test expects and checks the inferred
 * dims itself.  Returns the first status that is not BMS_OK; diag as for
 * th_node_infer.  The params stay for th_node_fini.
 */
enum bms_status th_node_run(struct th_node *t, const struct bms_tensor *in,
                            struct bms_tensor *out, void **out_data,
                            struct bms_diag *diag);

/*
 * The whole life of a node in one call: inputs whose in[k].dtype is
 * BMS_DTYPE_UNDEFINED become absent, then th_node_run and th_node_fini.
 * Prints the diagnostic when the status is not BMS_OK, and returns it.
 */
enum bms_status th_node_check(struct th_node *t, const struct bms_tensor *in,
                              struct bms_tensor *out, void **out_data);

/* Fail unless t has exactly the n_dims dims given. */
void th_assert_dims(const struct bms_tensor *t, int n_dims,
                    const int64_t *dims);

/*
 * Fail at the first i with |got[i] - want[i]| > atol + rtol * |want[i]|,
 * naming the element and both values.  A NaN on either side is not
 * caught: tests that expect NaN check it with isnan.  The _d form takes
 * want in double, for references computed in double.
 */
void th_assert_floats(const float *got, const float *want, int n,
                      double atol, double rtol);
void th_assert_floats_d(const float *got, const double *want, int n,
                        double atol, double rtol);

/* Fail at the first i with got[i] != want[i], naming it. */
void th_assert_int64s(const int64_t *got, const int64_t *want, int n);

/* Fail unless got is F32 of want's dims and each element is within
 * 1e-5 + 1e-4 * |want| of want's (want is read as F32). */
void th_assert_tensor_close(const struct bms_tensor *got,
                            const struct bms_tensor *want);

/* The bytes of TH_DATA<name> in a malloc'd block the caller frees, its
 * length in *size.  Fails the test when the file is missing or empty. */
void *th_data_read(const char *name, size_t *size);

/* Decode the TensorProto in TH_DATA<name> into *t, its data allocated
 * from pool (the caller's, released with bms__pool_fini). */
void th_pb_read(const char *name, struct bms__pool *pool,
                struct bms_tensor *t);

/* bms_model_load_file on TH_DATA<name>, diag emptied first; returns its
 * status, *model set only on BMS_OK. */
enum bms_status th_model_load(const char *name, struct bms_model **model,
                              struct bms_diag *diag);

/* A fresh path for a SQLite store under /tmp, named after what (the file
 * is not there); size at least 64. */
void th_store_path(char *path, size_t size, const char *what);

/* bms_store_open_sqlite on path, failing the test with its message. */
struct bms_store *th_store_open(const char *path);

/* Remove the store at path and its -wal and -shm files. */
void th_store_remove(const char *path);

#endif
