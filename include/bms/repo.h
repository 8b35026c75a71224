/*
 * The model repository: a folder of models, each with an optional manifest
 * (config.json) and integer version folders holding model.onnx,
 *
 *     DIR/<model>/config.json
 *     DIR/<model>/<version>/model.onnx
 *
 * Opening a repository loads every version it finds.  A model that fails to
 * load is kept as an entry with its reason and does not stop the others.
 * Once open, the set of entries does not change until bms_repo_close, so
 * the pointers handed out stay valid until then.
 */
#ifndef BMS_REPO_H
#define BMS_REPO_H

#include "bms/base.h"
#include "bms/engine.h"

/* One input or output as the manifest declares it. */
struct bms_manifest_io {
    char *name;
    enum bms_dtype dtype;        /* "type": "float" -> F32, "int" -> I64 */
    int n_dims;                  /* -1 when "size" is absent */
    int64_t dims[BMS_MAX_DIMS];  /* "size": one item, batch not included */
    char *order;                 /* "hwc", "chw", ... or NULL */
    char **classes;              /* an output with classes is a classifier */
    int n_classes;
};

struct bms_manifest_dep {
    char *library;
    char *package;
    char *script;
};

/* Most preferred batch sizes a manifest may list. */
#define BMS_SCHED_MAX_PREFERRED 16

/*
 * How the scheduler serves one model version: the "scheduling" object of
 * config.json.  bms_sched_config_default gives the values a manifest
 * without the object (or without a field of it) gets.
 */
struct bms_sched_config {
    int max_queue_size;          /* requests waiting to run; default 256 */
    int max_batch_size;          /* items merged into one run; 0: off */
    int64_t max_queue_delay_us;  /* wait for a fuller batch; default 500 */
    int preferred_batch_sizes[BMS_SCHED_MAX_PREFERRED];
    int n_preferred;
    int instances;               /* worker threads, a session each; 1 */
    int max_concurrency;         /* requests queued or running; 0: none */
};

/* Fill config with the defaults above. */
void bms_sched_config_default(struct bms_sched_config *config);

struct bms_manifest {
    char *name;
    char *version;               /* the manifest's own label, e.g. "1.0" */
    char *description;
    char *license;
    struct bms_manifest_io *inputs;
    int n_inputs;
    struct bms_manifest_io *outputs;
    int n_outputs;
    struct bms_manifest_dep *deps;   /* kept and shown, never executed */
    int n_deps;
    char *json;                  /* the document as read (or as made) */
    struct bms_sched_config sched;   /* "scheduling", defaults filled in */
};

/*
 * Parse config.json.  Unknown fields are ignored; a known field of the wrong
 * type or value fails with BMS_ERR_INVALID and a message naming the field
 * ("inputs[0].size: expected an array of positive integers",
 * "scheduling.max_batch_size: expected an integer in 0..65536").
 */
enum bms_status bms_manifest_parse(const char *json, size_t len,
                                   struct bms_manifest **out,
                                   struct bms_diag *diag);

/* Make a manifest from the graph alone, for a model without config.json. */
enum bms_status bms_manifest_from_model(const struct bms_model *model,
                                        const char *name,
                                        struct bms_manifest **out,
                                        struct bms_diag *diag);

/*
 * Check a manifest against the loaded graph: every declared input and
 * output exists in the graph with a compatible type and shape (the graph has
 * one batch dimension in front of "size"), a classifier's class count
 * matches the graph output's last dimension, and batching is only asked of
 * a graph whose every input has an open first dimension.  BMS_ERR_INVALID
 * names the manifest field on a mismatch.
 */
enum bms_status bms_manifest_check(const struct bms_manifest *manifest,
                                   const struct bms_model *model,
                                   struct bms_diag *diag);

void bms_manifest_destroy(struct bms_manifest *manifest);

/* One loaded model version, ready to run. */
struct bms_served;

const char *bms_served_name(const struct bms_served *served);
int64_t bms_served_version(const struct bms_served *served);
const struct bms_manifest *bms_served_manifest(const struct bms_served *s);
const struct bms_model *bms_served_model(const struct bms_served *served);

/*
 * Borrow a session of this model version for one execution, and give it
 * back.  Thread-safe; a session is created when none is free.
 */
enum bms_status bms_served_acquire(struct bms_served *served,
                                   struct bms_session **out,
                                   struct bms_diag *diag);
void bms_served_release(struct bms_served *served,
                        struct bms_session *session);

enum bms_entry_state {
    BMS_ENTRY_READY = 0,
    BMS_ENTRY_FAILED = 1
};

/* What the repository found for one model version. */
struct bms_repo_entry {
    const char *name;
    int64_t version;
    enum bms_entry_state state;
    const char *reason;          /* why it failed; "" when ready */
    struct bms_served *served;   /* NULL when failed */
};

struct bms_repo;

/*
 * Open the repository in dir and load every model version in it.  Fails
 * only when dir itself cannot be read; a model that fails is an entry in
 * state FAILED, and is logged.
 */
enum bms_status bms_repo_open(const char *dir, struct bms_repo **out,
                              struct bms_diag *diag);

/*
 * Open one model for offline use: path is a model folder (config.json and
 * version folders, or model.onnx directly inside) or an .onnx file.  Fails
 * with the model's load error when it does not load.
 */
enum bms_status bms_repo_open_model(const char *path, struct bms_repo **out,
                                    struct bms_diag *diag);

void bms_repo_close(struct bms_repo *repo);

int bms_repo_n_entries(const struct bms_repo *repo);
const struct bms_repo_entry *bms_repo_entry(const struct bms_repo *repo,
                                            int i);

/*
 * The ready model version of this name; version 0 means the highest ready
 * version.  NULL if there is none.  The pointer lives until bms_repo_close.
 */
struct bms_served *bms_repo_find(struct bms_repo *repo, const char *name,
                                 int64_t version);

/* Whether any entry (ready or failed) carries this model name. */
int bms_repo_has_model(const struct bms_repo *repo, const char *name);

#endif
