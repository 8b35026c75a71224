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

/* Where "scheduling.isolation" runs the instances of a version. */
enum bms_isolation {
    BMS_ISOLATION_THREAD = 0,    /* "thread": threads of the server */
    BMS_ISOLATION_PROCESS = 1    /* "process": supervised child processes */
};

/*
 * Canary probes of each instance: the "health" object of config.json.
 * Each instance runs a batch-1 input of zeros every period_ms; one that
 * fails or takes longer than timeout_ms leaves the rotation until a probe
 * passes again.
 */
struct bms_health_config {
    int64_t period_ms;           /* default 5000; 0: no probes */
    int64_t timeout_ms;          /* default 2000 */
};

/*
 * Automatic stop: the "qos" object of config.json.  Over the last
 * window_s seconds, once min_requests requests completed, an error rate
 * (5xx and timeouts) over max_error_rate or a p99 latency over max_p99_ms
 * stops the version; after cooldown_s one trial request decides whether
 * it resumes.
 */
struct bms_qos_config {
    int64_t window_s;            /* default 60 */
    int min_requests;            /* default 20 */
    double max_error_rate;       /* 0..1; default 0: off */
    double max_p99_ms;           /* default 0: off */
    int64_t cooldown_s;          /* default 30 */
};

/*
 * How the scheduler serves one model version: the "scheduling" object of
 * config.json.  bms_sched_config_default gives the values a manifest
 * without the object (or without a field of it) gets.
 */
struct bms_sched_config {
    int max_queue_size;          /* requests waiting to run; default 256 */
    int max_batch_size;          /* items merged into one run; 0: off */
    int64_t max_queue_delay_us;  /* wait for a fuller batch; default 500 */
    int adaptive_delay;          /* close a batch early once no infer
                                  * request is arriving; default 0 */
    int preferred_batch_sizes[BMS_SCHED_MAX_PREFERRED];
    int n_preferred;
    int instances;               /* worker threads, a session each; 1 */
    int max_concurrency;         /* requests queued or running; 0: none */
    int isolation;               /* enum bms_isolation; THREAD */
    int64_t isolation_timeout_ms;    /* a worker's answer; default 30000 */
    int64_t isolation_memory_mb;     /* a worker's address space; 0: none */
    struct bms_health_config health;     /* "health", beside "scheduling" */
    struct bms_qos_config qos;           /* "qos", beside "scheduling" */
    int min_instances;           /* autoscaling: the fewest instances */
    int max_instances;           /* and the most; both = instances when
                                  * not asked (no autoscaling) */
    int64_t scale_down_after_s;  /* quiet period before one instance
                                  * goes; default 30 */
    int64_t scale_up_wait_ms;    /* requests that waited longer than this
                                  * in the queue, on average over a look,
                                  * count as pressure; default 10; 0:
                                  * queue depth alone */
    int warmup;                  /* each instance runs the health canary
                                  * once before it serves; default 1 */
};

/* Fill config with the defaults above. */
void bms_sched_config_default(struct bms_sched_config *config);

/* Most versions one "routing" object may weigh, and the largest weight. */
#define BMS_ROUTING_MAX_VERSIONS 64
#define BMS_ROUTING_WEIGHT_MAX 1000000

/*
 * Weighted routing between the versions of one model: the "routing"
 * object of config.json, {"weights": {"1": 90, "2": 10}}.  A request
 * without a version goes to a version drawn by weight; a version the
 * object leaves out weighs 0.  n_weights 0: no weights (the highest
 * ready version answers).  When n_weights > 0, some weight is positive.
 */
struct bms_routing_weights {
    int n_weights;
    int64_t versions[BMS_ROUTING_MAX_VERSIONS];  /* ascending, distinct */
    int weights[BMS_ROUTING_MAX_VERSIONS];       /* 0..WEIGHT_MAX */
};

/*
 * The response cache of one model: the "cache" object of config.json,
 * {"enabled": true, "max_bytes": 8388608, "ttl_s": 60}.  With enabled,
 * the server keeps successful infer answers of the model, each for ttl_s
 * seconds, at most max_bytes of them (requests and answers together);
 * the server-wide bound applies on top.
 */
struct bms_cache_config {
    int enabled;                 /* default 0: answers are not kept */
    int64_t max_bytes;           /* default 8 MiB */
    int64_t ttl_s;               /* default 60 */
};

/* Most versions a "specific" version policy may list. */
#define BMS_POLICY_MAX_VERSIONS 64

enum bms_policy_kind {
    BMS_POLICY_ALL = 0,          /* {"all": true}: every version folder */
    BMS_POLICY_LATEST = 1,       /* {"latest": N}: the N highest */
    BMS_POLICY_SPECIFIC = 2      /* {"specific": [1, 3]}: those listed */
};

/* Which version folders of a model are loaded: the "version_policy"
 * object of config.json. */
struct bms_version_policy {
    int kind;                    /* enum bms_policy_kind; ALL */
    int latest;                  /* LATEST: 1.. */
    int n_specific;              /* SPECIFIC: versions listed */
    int64_t specific[BMS_POLICY_MAX_VERSIONS];
};

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
    struct bms_routing_weights routing;  /* "routing"; none by default */
    struct bms_cache_config cache;   /* "cache"; off by default */
    struct bms_version_policy policy;    /* "version_policy"; all */
};

/*
 * Whether the manifest's version policy selects versions[i] of the n
 * version folders a model has (ascending).  A NULL manifest selects
 * every version.  Thread-safe.
 */
int bms_version_policy_selects(const struct bms_manifest *m,
                               const int64_t *versions, int n, int i);

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

/*
 * Check the manifest's routing weights against the version folders the
 * model has (versions, n_versions of them): BMS_ERR_INVALID naming
 * "routing.weights" and the version when one has no folder.
 */
enum bms_status bms_manifest_check_versions(const struct bms_manifest *m,
                                            const int64_t *versions,
                                            int n_versions,
                                            struct bms_diag *diag);

/*
 * Parse a routing document, {"weights": {"<version>": <weight>, ...}}
 * (the "routing" object of config.json, or the body of a routing
 * change), into *out, written only on success.  {"weights": {}} gives no
 * weights.  BMS_ERR_INVALID names the field: "weights.2: expected an
 * integer in 0..1000000", "weights: every weight is 0".  Thread-safe.
 */
enum bms_status bms_routing_weights_parse(const char *json, size_t len,
                                          struct bms_routing_weights *out,
                                          struct bms_diag *diag);

void bms_manifest_destroy(struct bms_manifest *manifest);

/*
 * Whether name (len bytes) may name a model: 1 to 127 characters of
 * [A-Za-z0-9_.-], not starting with '.' (so never "." or "..", and never
 * a hidden folder).  Every place a name comes from outside checks it.
 */
int bms_model_name_valid(const char *name, size_t len);

/* One loaded model version, ready to run. */
struct bms_served;

const char *bms_served_name(const struct bms_served *served);
int64_t bms_served_version(const struct bms_served *served);
const struct bms_manifest *bms_served_manifest(const struct bms_served *s);
const struct bms_model *bms_served_model(const struct bms_served *served);

/* A number no other load of any model in this process shares (a reload
 * of the same version gets a new one): keys caches of its answers. */
uint64_t bms_served_serial(const struct bms_served *served);

/* The model.onnx file the version was loaded from (for worker processes);
 * lives as long as served. */
const char *bms_served_path(const struct bms_served *served);

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

/*
 * Open a repository of only one model of the repository folder dir: the
 * folder dir/name with the versions its version policy selects, or only
 * version (> 0).  config_json, when not NULL, stands for the folder's
 * config.json.  Versions that fail are entries in state FAILED, as in
 * bms_repo_open.  Fails with BMS_ERR_NOT_FOUND when there is no such
 * model folder (or no such version folder), BMS_ERR_INVALID for a bad
 * name, BMS_ERR_NOMEM.
 */
enum bms_status bms_repo_open_one(const char *dir, const char *name,
                                  const char *config_json, int64_t version,
                                  struct bms_repo **out,
                                  struct bms_diag *diag);

/* bms_repo_open_one for the listed versions (those with a folder; the
 * policy is not consulted), or, with versions NULL, what the policy
 * selects. */
enum bms_status bms_repo_open_versions(const char *dir, const char *name,
                                       const char *config_json,
                                       const int64_t *versions,
                                       int n_versions,
                                       struct bms_repo **out,
                                       struct bms_diag *diag);

void bms_repo_close(struct bms_repo *repo);

/* The lookups below accept a NULL repository (no model loaded): it has
 * no entries. */
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

/*
 * Lay the JSON object patch over the JSON object base (settings.c), as a
 * JSON merge patch does: an object member merges into the base's member
 * of that name, null removes the member, any other value replaces it.
 * The top-level member named drop (NULL: none) is left out.  The result
 * replaces the contents of out.  BMS_ERR_INVALID with "config.json: ..."
 * or "body: ..." when base or patch is not a JSON object (or nests
 * deeper than 32 levels), BMS_ERR_NOMEM.  Thread-safe.
 */
enum bms_status bms_settings_merge(const char *base, size_t base_len,
                                   const char *patch, size_t patch_len,
                                   const char *drop, struct bms_buf *out,
                                   struct bms_diag *diag);

#endif
