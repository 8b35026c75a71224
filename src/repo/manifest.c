/*
 * The model manifest (config.json): parsing the document users write,
 * making one from a graph for a model that has none, and checking a
 * manifest against the graph it describes.
 *
 * After a successful parse every string field of the manifest and of its
 * dependencies is a NUL-terminated copy, "" when the document leaves it
 * out; only `order` (NULL when absent or "") and `classes` (NULL for an
 * output that is not a classifier) may be NULL.  Every error message starts
 * with the path of the field at fault, such as `inputs[0].size[1]`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "bms/repo.h"

#define MAX_IOS 1024             /* inputs or outputs in one manifest */
#define MAX_CLASSES (1 << 20)    /* classes of one classifier output */
#define MAX_DEPS 1024
#define PATH_SIZE 64             /* "outputs[1023].classes[1048575]" fits */

/* The ranges of the "scheduling" fields. */
#define SCHED_QUEUE_MAX 1000000
#define SCHED_BATCH_MAX 65536
#define SCHED_DELAY_MAX_US 10000000      /* 10 s */
#define SCHED_QUIET_MAX_S 86400     /* scale_down_after_s */
#define SCHED_INSTANCES_MAX 64
#define SCHED_CONCURRENCY_MAX 1000000
#define SCHED_ISOLATION_TIMEOUT_MAX_MS 86400000  /* a day */
#define SCHED_ISOLATION_MEMORY_MAX_MB (1 << 24)  /* 16 TiB */

/* The ranges of the "health" and "qos" fields. */
#define HEALTH_MAX_MS 86400000           /* one day */
#define QOS_SECONDS_MAX 86400
#define QOS_REQUESTS_MAX 1000000
#define QOS_P99_MAX_MS 86400000.0

/* The defaults and ranges of the "cache" fields. */
#define CACHE_DEFAULT_BYTES ((int64_t)8 << 20)
#define CACHE_DEFAULT_TTL_S 60
#define CACHE_MAX_BYTES ((int64_t)1 << 40)   /* 1 TiB */
#define CACHE_MAX_TTL_S 2592000              /* 30 days */

/* The manifest's names for datatypes.  The first name of a datatype is
 * the one bms writes; the v2 names (FP32, INT64, ...) are accepted too. */
static const struct {
    const char *name;
    enum bms_dtype dtype;
} type_names[] = {
    {"float", BMS_DTYPE_F32},    {"double", BMS_DTYPE_F64},
    {"int", BMS_DTYPE_I64},      {"int32", BMS_DTYPE_I32},
    {"uint8", BMS_DTYPE_U8},     {"bool", BMS_DTYPE_BOOL},
    {"float16", BMS_DTYPE_F16},  {"int8", BMS_DTYPE_I8},
    {"int16", BMS_DTYPE_I16},    {"uint16", BMS_DTYPE_U16},
    {"uint32", BMS_DTYPE_U32},   {"uint64", BMS_DTYPE_U64},
    {"int64", BMS_DTYPE_I64},    {"float32", BMS_DTYPE_F32},
    {"float64", BMS_DTYPE_F64},
};

#define N_TYPE_NAMES (sizeof(type_names) / sizeof(type_names[0]))

/* The order labels a manifest may give an input. */
static const char *const order_names[] = {"hwc", "chw", "hw", "c"};

#define N_ORDER_NAMES (sizeof(order_names) / sizeof(order_names[0]))


static const char *type_name(enum bms_dtype dtype)
{
    for (size_t i = 0; i < N_TYPE_NAMES; i++) {
        if (type_names[i].dtype == dtype) {
            return type_names[i].name;
        }
    }
    return "undefined";
}


static int type_from_name(const char *name, enum bms_dtype *out)
{
    for (size_t i = 0; i < N_TYPE_NAMES; i++) {
        if (strcmp(type_names[i].name, name) == 0) {
            *out = type_names[i].dtype;
            return 0;
        }
    }
    return bms_dtype_from_v2_name(name, strlen(name), out);
}


static char *copy_string(const char *s)
{
    size_t size = strlen(s) + 1;
    char *p = malloc(size);

    if (p != NULL) {
        memcpy(p, s, size);
    }
    return p;
}


/* The value of key in a JSON object; NULL when absent or JSON null, which
 * the manifest treats alike. */
static yajl_val obj_get(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            yajl_val v = obj->u.object.values[i];

            return YAJL_IS_NULL(v) ? NULL : v;
        }
    }
    return NULL;
}


/*
 * A string field of obj into *out ("" when absent).  With allow_number a
 * JSON number is kept as written, for labels such as "version": 1.0.
 */
static enum bms_status get_string(yajl_val obj, const char *key,
                                  const char *path, int allow_number,
                                  char **out, struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, key);
    const char *s = "";

    if (YAJL_IS_STRING(v)) {
        s = YAJL_GET_STRING(v);
    } else if (allow_number && YAJL_IS_NUMBER(v)) {
        s = YAJL_GET_NUMBER(v);
    } else if (v != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected a string",
                            path);
    }
    *out = copy_string(s);
    if (*out == NULL) {
        return BMS_ERR_NOMEM;
    }
    return BMS_OK;
}


static enum bms_status get_required_string(yajl_val obj, const char *key,
                                           const char *path, char **out,
                                           struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, key);

    if (!YAJL_IS_STRING(v) || YAJL_GET_STRING(v)[0] == '\0') {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: expected a non-empty string", path);
    }
    return get_string(obj, key, path, 0, out, diag);
}


static enum bms_status parse_type(yajl_val obj, const char *path,
                                  enum bms_dtype *out, struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, "type");

    if (!YAJL_IS_STRING(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.type: expected a "
                            "string such as \"float\" or \"int\"", path);
    }
    if (type_from_name(YAJL_GET_STRING(v), out) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.type: unknown type "
                            "'%.64s' (expected float, double, int, int64, "
                            "int32, uint8, bool or a v2 name such as FP32)",
                            path, YAJL_GET_STRING(v));
    }
    return BMS_OK;
}


/* "size": the dims of one item, every one a positive integer. */
static enum bms_status parse_size(yajl_val obj, const char *path,
                                  struct bms_manifest_io *io,
                                  struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, "size");
    size_t len;

    io->n_dims = -1;
    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_ARRAY(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.size: expected an "
                            "array of positive integers", path);
    }
    len = v->u.array.len;
    if (len > BMS_MAX_DIMS - 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.size: %zu "
                            "dimensions, at most %d (the batch comes on "
                            "top)", path, len, BMS_MAX_DIMS - 1);
    }
    for (size_t i = 0; i < len; i++) {
        yajl_val d = v->u.array.values[i];

        if (!YAJL_IS_INTEGER(d) || YAJL_GET_INTEGER(d) <= 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "%s.size[%zu]: "
                                "expected a positive integer", path, i);
        }
        io->dims[i] = YAJL_GET_INTEGER(d);
    }
    io->n_dims = (int)len;
    return BMS_OK;
}


static enum bms_status parse_order(yajl_val obj, const char *path,
                                   struct bms_manifest_io *io,
                                   struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, "order");
    const char *s;

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_STRING(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.order: expected a "
                            "string", path);
    }
    s = YAJL_GET_STRING(v);
    if (s[0] == '\0') {
        return BMS_OK;
    }
    for (size_t i = 0; i < N_ORDER_NAMES; i++) {
        if (strcmp(s, order_names[i]) == 0) {
            io->order = copy_string(s);
            return io->order != NULL ? BMS_OK : BMS_ERR_NOMEM;
        }
    }
    return bms_diag_set(diag, BMS_ERR_INVALID, "%s.order: unknown order "
                        "'%.32s' (expected hwc, chw, hw or c; the batch is "
                        "not part of it)", path, s);
}


static enum bms_status parse_classes(yajl_val obj, const char *path,
                                     struct bms_manifest_io *io,
                                     struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, "classes");
    size_t len;

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.classes: expected "
                            "an array of strings", path);
    }
    len = v->u.array.len;
    if (len > MAX_CLASSES) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "%s.classes: %zu classes, "
                            "at most %d", path, len, MAX_CLASSES);
    }
    io->classes = calloc(len, sizeof(*io->classes));
    if (io->classes == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        yajl_val c = v->u.array.values[i];

        if (!YAJL_IS_STRING(c)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "%s.classes[%zu]: "
                                "expected a string", path, i);
        }
        io->classes[i] = copy_string(YAJL_GET_STRING(c));
        if (io->classes[i] == NULL) {
            return BMS_ERR_NOMEM;
        }
        io->n_classes = (int)i + 1;
    }
    return BMS_OK;
}


static enum bms_status parse_io(yajl_val obj, const char *path,
                                int is_output, struct bms_manifest_io *io,
                                struct bms_diag *diag)
{
    char field[PATH_SIZE + 8];
    enum bms_status rc;

    io->n_dims = -1;
    if (!YAJL_IS_OBJECT(obj)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected an object",
                            path);
    }
    snprintf(field, sizeof(field), "%s.name", path);
    rc = get_required_string(obj, "name", field, &io->name, diag);
    if (rc == BMS_OK) {
        rc = parse_type(obj, path, &io->dtype, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_size(obj, path, io, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_order(obj, path, io, diag);
    }
    if (rc == BMS_OK && is_output) {
        rc = parse_classes(obj, path, io, diag);
    }
    return rc;
}


/* "inputs" or "outputs": an array of objects with distinct names. */
static enum bms_status parse_ios(yajl_val root, const char *key,
                                 struct bms_manifest_io **out, int *n_out,
                                 struct bms_diag *diag)
{
    yajl_val v = obj_get(root, key);
    int is_output = strcmp(key, "outputs") == 0;
    size_t len;

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_ARRAY(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected an array",
                            key);
    }
    len = v->u.array.len;
    if (len > MAX_IOS) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "%s: %zu entries, at most "
                            "%d", key, len, MAX_IOS);
    }
    *out = calloc(len > 0 ? len : 1, sizeof(**out));
    if (*out == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        char path[PATH_SIZE];
        enum bms_status rc;

        snprintf(path, sizeof(path), "%s[%zu]", key, i);
        *n_out = (int)i + 1;
        rc = parse_io(v->u.array.values[i], path, is_output, &(*out)[i],
                      diag);
        if (rc != BMS_OK) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp((*out)[j].name, (*out)[i].name) == 0) {
                return bms_diag_set(diag, BMS_ERR_INVALID, "%s.name: '%.64s'"
                                    " is declared twice", path,
                                    (*out)[i].name);
            }
        }
    }
    return BMS_OK;
}


static enum bms_status parse_deps(yajl_val root, struct bms_manifest *m,
                                  struct bms_diag *diag)
{
    yajl_val v = obj_get(root, "dependencies");
    size_t len;

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_ARRAY(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "dependencies: expected "
                            "an array");
    }
    len = v->u.array.len;
    if (len > MAX_DEPS) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "dependencies: %zu "
                            "entries, at most %d", len, MAX_DEPS);
    }
    m->deps = calloc(len > 0 ? len : 1, sizeof(*m->deps));
    if (m->deps == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        yajl_val d = v->u.array.values[i];
        struct bms_manifest_dep *dep = &m->deps[i];
        char path[PATH_SIZE];
        char field[PATH_SIZE + 16];
        enum bms_status rc;

        m->n_deps = (int)i + 1;
        snprintf(path, sizeof(path), "dependencies[%zu]", i);
        if (!YAJL_IS_OBJECT(d)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected an "
                                "object", path);
        }
        snprintf(field, sizeof(field), "%s.library", path);
        rc = get_string(d, "library", field, 0, &dep->library, diag);
        if (rc == BMS_OK) {
            snprintf(field, sizeof(field), "%s.package", path);
            rc = get_string(d, "package", field, 0, &dep->package, diag);
        }
        if (rc == BMS_OK) {
            snprintf(field, sizeof(field), "%s.script", path);
            rc = get_string(d, "script", field, 0, &dep->script, diag);
        }
        if (rc != BMS_OK) {
            return rc;
        }
    }
    return BMS_OK;
}


/* ---- "scheduling" ---- */

void bms_sched_config_default(struct bms_sched_config *config)
{
    memset(config, 0, sizeof(*config));
    config->max_queue_size = 256;
    config->max_batch_size = 0;
    config->max_queue_delay_us = 500;
    config->instances = 1;
    config->max_concurrency = 0;
    config->isolation = BMS_ISOLATION_THREAD;
    config->isolation_timeout_ms = 30000;
    config->isolation_memory_mb = 0;
    config->health.period_ms = 5000;
    config->health.timeout_ms = 2000;
    config->qos.window_s = 60;
    config->qos.min_requests = 20;
    config->qos.cooldown_s = 30;
    config->min_instances = 1;
    config->max_instances = 1;
    config->scale_down_after_s = 30;
    config->scale_up_wait_ms = 10;
    config->warmup = 1;
}


/* A true/false field of "scheduling"; *out keeps its default when the
 * field is absent. */
static enum bms_status get_sched_bool(yajl_val obj, const char *key,
                                      int *out, struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, key);

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.%s: expected"
                            " true or false", key);
    }
    *out = YAJL_IS_TRUE(v);
    return BMS_OK;
}


/* An integer field of "scheduling" in min..max; *out keeps its default
 * when the field is absent. */
static enum bms_status get_sched_int(yajl_val obj, const char *key,
                                     int64_t min, int64_t max, int64_t *out,
                                     struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, key);

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < min ||
        YAJL_GET_INTEGER(v) > max) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.%s: expected "
                            "an integer in %lld..%lld", key, (long long)min,
                            (long long)max);
    }
    *out = YAJL_GET_INTEGER(v);
    return BMS_OK;
}


static enum bms_status parse_preferred(yajl_val obj,
                                       struct bms_sched_config *c,
                                       struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, "preferred_batch_sizes");
    size_t len;

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_ARRAY(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.preferred_"
                            "batch_sizes: expected an array of integers");
    }
    len = v->u.array.len;
    if (len > 0 && c->max_batch_size == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.preferred_"
                            "batch_sizes: needs batching on "
                            "(max_batch_size > 0)");
    }
    if (len > BMS_SCHED_MAX_PREFERRED) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.preferred_"
                            "batch_sizes: %zu sizes, at most %d", len,
                            BMS_SCHED_MAX_PREFERRED);
    }
    for (size_t i = 0; i < len; i++) {
        yajl_val d = v->u.array.values[i];

        if (!YAJL_IS_INTEGER(d) || YAJL_GET_INTEGER(d) < 1 ||
            YAJL_GET_INTEGER(d) > c->max_batch_size) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.preferred"
                                "_batch_sizes[%zu]: expected an integer in "
                                "1..%d (max_batch_size)", i,
                                c->max_batch_size);
        }
        c->preferred_batch_sizes[i] = (int)YAJL_GET_INTEGER(d);
    }
    c->n_preferred = (int)len;
    return BMS_OK;
}


/* "isolation" ("thread" or "process") and the bounds of a worker
 * process; c keeps its values unless all three parse. */
static enum bms_status parse_isolation(yajl_val obj,
                                       struct bms_sched_config *c,
                                       struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, "isolation");
    int isolation = c->isolation;
    int64_t timeout_ms = c->isolation_timeout_ms;
    int64_t memory_mb = c->isolation_memory_mb;
    enum bms_status rc;

    if (v != NULL) {
        const char *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "";

        if (strcmp(s, "thread") == 0) {
            isolation = BMS_ISOLATION_THREAD;
        } else if (strcmp(s, "process") == 0) {
            isolation = BMS_ISOLATION_PROCESS;
        } else {
            return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling."
                                "isolation: expected \"thread\" or "
                                "\"process\"");
        }
    }
    rc = get_sched_int(obj, "isolation_timeout_ms", 1,
                       SCHED_ISOLATION_TIMEOUT_MAX_MS, &timeout_ms, diag);
    if (rc == BMS_OK) {
        rc = get_sched_int(obj, "isolation_memory_mb", 0,
                           SCHED_ISOLATION_MEMORY_MAX_MB, &memory_mb, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    c->isolation = isolation;
    c->isolation_timeout_ms = timeout_ms;
    c->isolation_memory_mb = memory_mb;
    return BMS_OK;
}


/*
 * Settle instances, min_instances and max_instances (0: not given): with
 * neither bound, both are instances; a bound alone takes instances for
 * the other side when that fits; instances not given starts at the
 * lower bound.  BMS_ERR_INVALID names the field that does not fit.
 */
static enum bms_status instance_range(int has_instances, int64_t *inst,
                                      int64_t *lo, int64_t *hi,
                                      struct bms_diag *diag)
{
    if (*lo == 0 && *hi == 0) {
        *lo = *inst;
        *hi = *inst;
        return BMS_OK;
    }
    if (*lo == 0) {
        *lo = has_instances && *inst <= *hi ? *inst : 1;
    }
    if (*hi == 0) {
        *hi = has_instances && *inst >= *lo ? *inst : *lo;
    }
    if (*lo > *hi) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling."
                            "min_instances: %lld is more than "
                            "max_instances (%lld)", (long long)*lo,
                            (long long)*hi);
    }
    if (!has_instances) {
        *inst = *lo;
    } else if (*inst < *lo || *inst > *hi) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.instances: "
                            "%lld is outside min_instances..max_instances "
                            "(%lld..%lld)", (long long)*inst,
                            (long long)*lo, (long long)*hi);
    }
    return BMS_OK;
}


static enum bms_status parse_sched(yajl_val root, struct bms_sched_config *c,
                                   struct bms_diag *diag)
{
    yajl_val v = obj_get(root, "scheduling");
    int64_t queue = c->max_queue_size;
    int64_t batch = c->max_batch_size;
    int64_t delay = c->max_queue_delay_us;
    int64_t instances = c->instances;
    int64_t concurrency = c->max_concurrency;
    int64_t min_inst = 0;
    int64_t max_inst = 0;
    int64_t quiet = c->scale_down_after_s;
    int64_t wait = c->scale_up_wait_ms;
    int has_instances;
    enum bms_status rc;

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_OBJECT(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling: expected an "
                            "object");
    }
    rc = get_sched_int(v, "max_queue_size", 1, SCHED_QUEUE_MAX, &queue,
                       diag);
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "max_batch_size", 0, SCHED_BATCH_MAX, &batch,
                           diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "max_queue_delay_us", 0, SCHED_DELAY_MAX_US,
                           &delay, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "instances", 1, SCHED_INSTANCES_MAX,
                           &instances, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "max_concurrency", 0, SCHED_CONCURRENCY_MAX,
                           &concurrency, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "min_instances", 1, SCHED_INSTANCES_MAX,
                           &min_inst, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "max_instances", 1, SCHED_INSTANCES_MAX,
                           &max_inst, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "scale_down_after_s", 1, SCHED_QUIET_MAX_S,
                           &quiet, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_int(v, "scale_up_wait_ms", 0, SCHED_QUIET_MAX_S * 1000,
                           &wait, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_isolation(v, c, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_bool(v, "adaptive_delay", &c->adaptive_delay, diag);
    }
    if (rc == BMS_OK) {
        rc = get_sched_bool(v, "warmup", &c->warmup, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    has_instances = obj_get(v, "instances") != NULL;
    rc = instance_range(has_instances, &instances, &min_inst, &max_inst,
                        diag);
    if (rc != BMS_OK) {
        return rc;
    }
    c->min_instances = (int)min_inst;
    c->max_instances = (int)max_inst;
    c->scale_down_after_s = quiet;
    c->scale_up_wait_ms = wait;
    c->max_queue_size = (int)queue;
    c->max_batch_size = (int)batch;
    c->max_queue_delay_us = delay;
    c->instances = (int)instances;
    c->max_concurrency = (int)concurrency;
    return parse_preferred(v, c, diag);
}


/* ---- "routing" ---- */

/* Whether a key is short and plain enough to be echoed in a message. */
static int key_echoable(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > 32) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = key[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return 0;
        }
    }
    return 1;
}


/* A version key of "weights": decimal digits, positive, without leading
 * zeros, inside int64_t; 0 when the key is not one. */
static int64_t routing_version(const char *key)
{
    size_t n = strlen(key);
    int64_t v = 0;

    if (n == 0 || n > 18 || key[0] == '0') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (key[i] < '0' || key[i] > '9') {
            return 0;
        }
        v = v * 10 + (key[i] - '0');
    }
    return v;
}


/* Add version with weight to w, keeping the versions ascending.  Returns
 * -1 when the version is there already. */
static int routing_add(struct bms_routing_weights *w, int64_t version,
                       int weight)
{
    int i = w->n_weights;

    for (int k = 0; k < w->n_weights; k++) {
        if (w->versions[k] == version) {
            return -1;
        }
    }
    while (i > 0 && w->versions[i - 1] > version) {
        w->versions[i] = w->versions[i - 1];
        w->weights[i] = w->weights[i - 1];
        i--;
    }
    w->versions[i] = version;
    w->weights[i] = weight;
    w->n_weights++;
    return 0;
}


/* One "weights" entry into w; prefix names the parent in messages. */
static enum bms_status parse_weight(const char *key, yajl_val d,
                                    const char *prefix,
                                    struct bms_routing_weights *w,
                                    struct bms_diag *diag)
{
    int64_t version = routing_version(key);

    if (version == 0 && !key_echoable(key)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights: a key is "
                            "not a version (expected a positive integer)",
                            prefix);
    }
    if (version == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights: '%s' is not "
                            "a version (expected a positive integer)",
                            prefix, key);
    }
    if (!YAJL_IS_INTEGER(d) || YAJL_GET_INTEGER(d) < 0 ||
        YAJL_GET_INTEGER(d) > BMS_ROUTING_WEIGHT_MAX) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights.%s: expected "
                            "an integer in 0..%d", prefix, key,
                            BMS_ROUTING_WEIGHT_MAX);
    }
    if (routing_add(w, version, (int)YAJL_GET_INTEGER(d)) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights.%s: given "
                            "twice", prefix, key);
    }
    return BMS_OK;
}


/* The "weights" object of a routing object (absent: no weights unless
 * required) into *out; prefix names the parent in messages. */
static enum bms_status parse_weights(yajl_val routing, const char *prefix,
                                     int required,
                                     struct bms_routing_weights *out,
                                     struct bms_diag *diag)
{
    yajl_val v = obj_get(routing, "weights");
    struct bms_routing_weights w;
    int any = 0;
    enum bms_status rc;

    memset(&w, 0, sizeof(w));
    if (v == NULL && !required) {
        *out = w;
        return BMS_OK;
    }
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights: expected an "
                            "object of \"<version>\": <weight>", prefix);
    }
    if (v->u.object.len > BMS_ROUTING_MAX_VERSIONS) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights: %zu "
                            "versions, at most %d", prefix, v->u.object.len,
                            BMS_ROUTING_MAX_VERSIONS);
    }
    for (size_t i = 0; i < v->u.object.len; i++) {
        rc = parse_weight(v->u.object.keys[i], v->u.object.values[i],
                          prefix, &w, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    for (int k = 0; k < w.n_weights; k++) {
        any |= w.weights[k] > 0;
    }
    if (w.n_weights > 0 && !any) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%sweights: every weight "
                            "is 0 (at least one must be positive)", prefix);
    }
    *out = w;
    return BMS_OK;
}


static enum bms_status parse_routing(yajl_val root,
                                     struct bms_routing_weights *out,
                                     struct bms_diag *diag)
{
    yajl_val v = obj_get(root, "routing");

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_OBJECT(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "routing: expected an "
                            "object");
    }
    return parse_weights(v, "routing.", 0, out, diag);
}


/* ---- "health" and "qos" ---- */

/* An integer field of obj ("health", "qos") in min..max; *out keeps its
 * default when the field is absent. */
static enum bms_status get_obj_int(yajl_val obj, const char *obj_name,
                                   const char *key, int64_t min, int64_t max,
                                   int64_t *out, struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, key);

    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < min ||
        YAJL_GET_INTEGER(v) > max) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.%s: expected an "
                            "integer in %lld..%lld", obj_name, key,
                            (long long)min, (long long)max);
    }
    *out = YAJL_GET_INTEGER(v);
    return BMS_OK;
}


/* A number field of obj in min..max (integers are numbers too). */
static enum bms_status get_obj_number(yajl_val obj, const char *obj_name,
                                      const char *key, double min,
                                      double max, double *out,
                                      struct bms_diag *diag)
{
    yajl_val v = obj_get(obj, key);
    double d;

    if (v == NULL) {
        return BMS_OK;
    }
    d = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v)
        : YAJL_IS_DOUBLE(v) ? YAJL_GET_DOUBLE(v) : -1.0;
    if (!YAJL_IS_NUMBER(v) || !(d >= min && d <= max)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.%s: expected a "
                            "number in %.10g..%.10g", obj_name, key, min, max);
    }
    *out = d;
    return BMS_OK;
}


/* The object root[name], NULL when absent; an error when not an object. */
static enum bms_status get_object(yajl_val root, const char *name,
                                  yajl_val *out, struct bms_diag *diag)
{
    yajl_val v = obj_get(root, name);

    if (v != NULL && !YAJL_IS_OBJECT(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected an "
                            "object", name);
    }
    *out = v;
    return BMS_OK;
}


static enum bms_status parse_health(yajl_val root,
                                    struct bms_health_config *c,
                                    struct bms_diag *diag)
{
    int64_t period = c->period_ms;
    int64_t timeout = c->timeout_ms;
    yajl_val v = NULL;
    enum bms_status rc = get_object(root, "health", &v, diag);

    if (rc != BMS_OK || v == NULL) {
        return rc;
    }
    rc = get_obj_int(v, "health", "period_ms", 0, HEALTH_MAX_MS, &period,
                     diag);
    if (rc == BMS_OK) {
        rc = get_obj_int(v, "health", "timeout_ms", 1, HEALTH_MAX_MS,
                         &timeout, diag);
    }
    if (rc == BMS_OK) {
        c->period_ms = period;
        c->timeout_ms = timeout;
    }
    return rc;
}


static enum bms_status parse_qos(yajl_val root, struct bms_qos_config *c,
                                 struct bms_diag *diag)
{
    int64_t window = c->window_s;
    int64_t min_requests = c->min_requests;
    int64_t cooldown = c->cooldown_s;
    double rate = c->max_error_rate;
    double p99 = c->max_p99_ms;
    yajl_val v = NULL;
    enum bms_status rc = get_object(root, "qos", &v, diag);

    if (rc != BMS_OK || v == NULL) {
        return rc;
    }
    rc = get_obj_int(v, "qos", "window_s", 1, QOS_SECONDS_MAX, &window,
                     diag);
    if (rc == BMS_OK) {
        rc = get_obj_int(v, "qos", "min_requests", 1, QOS_REQUESTS_MAX,
                         &min_requests, diag);
    }
    if (rc == BMS_OK) {
        rc = get_obj_number(v, "qos", "max_error_rate", 0.0, 1.0, &rate,
                            diag);
    }
    if (rc == BMS_OK) {
        rc = get_obj_number(v, "qos", "max_p99_ms", 0.0, QOS_P99_MAX_MS,
                            &p99, diag);
    }
    if (rc == BMS_OK) {
        rc = get_obj_int(v, "qos", "cooldown_s", 1, QOS_SECONDS_MAX,
                         &cooldown, diag);
    }
    if (rc == BMS_OK) {
        c->window_s = window;
        c->min_requests = (int)min_requests;
        c->max_error_rate = rate;
        c->max_p99_ms = p99;
        c->cooldown_s = cooldown;
    }
    return rc;
}


/* ---- "cache" ---- */

/*
 * The "cache" object: enabled (a boolean), max_bytes and ttl_s (positive
 * integers).  The defaults are filled in first, so a manifest without
 * the object has the cache off with the default bounds.
 */
static enum bms_status parse_cache(yajl_val root, struct bms_cache_config *c,
                                   struct bms_diag *diag)
{
    int64_t max_bytes = CACHE_DEFAULT_BYTES;
    int64_t ttl = CACHE_DEFAULT_TTL_S;
    yajl_val v = NULL;
    yajl_val enabled;
    enum bms_status rc;

    c->enabled = 0;
    c->max_bytes = max_bytes;
    c->ttl_s = ttl;
    rc = get_object(root, "cache", &v, diag);
    if (rc != BMS_OK || v == NULL) {
        return rc;
    }
    enabled = obj_get(v, "enabled");
    if (enabled != NULL && !YAJL_IS_TRUE(enabled) &&
        !YAJL_IS_FALSE(enabled)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "cache.enabled: "
                            "expected true or false");
    }
    rc = get_obj_int(v, "cache", "max_bytes", 1, CACHE_MAX_BYTES,
                     &max_bytes, diag);
    if (rc == BMS_OK) {
        rc = get_obj_int(v, "cache", "ttl_s", 1, CACHE_MAX_TTL_S, &ttl,
                         diag);
    }
    if (rc == BMS_OK) {
        c->enabled = enabled != NULL && YAJL_IS_TRUE(enabled);
        c->max_bytes = max_bytes;
        c->ttl_s = ttl;
    }
    return rc;
}


/* ---- "version_policy" ---- */

/* {"specific": [1, 3]}: distinct positive integers, at least one. */
static enum bms_status parse_specific(yajl_val v,
                                      struct bms_version_policy *p,
                                      struct bms_diag *diag)
{
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 ||
        v->u.array.len > BMS_POLICY_MAX_VERSIONS) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "version_policy."
                            "specific: expected an array of 1 to %d "
                            "versions", BMS_POLICY_MAX_VERSIONS);
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        int64_t version;

        if (!YAJL_IS_INTEGER(e) || YAJL_GET_INTEGER(e) <= 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "version_policy."
                                "specific[%zu]: expected a positive "
                                "integer", i);
        }
        version = YAJL_GET_INTEGER(e);
        for (int k = 0; k < p->n_specific; k++) {
            if (p->specific[k] == version) {
                return bms_diag_set(diag, BMS_ERR_INVALID,
                                    "version_policy.specific[%zu]: "
                                    "version %lld given twice", i,
                                    (long long)version);
            }
        }
        p->specific[p->n_specific++] = version;
    }
    return BMS_OK;
}


/* "version_policy": exactly one of {"latest": N}, {"all": true},
 * {"specific": [...]}; absent: all. */
static enum bms_status parse_version_policy(yajl_val root,
                                            struct bms_version_policy *p,
                                            struct bms_diag *diag)
{
    yajl_val v = obj_get(root, "version_policy");
    yajl_val latest;
    yajl_val all;
    yajl_val specific;

    memset(p, 0, sizeof(*p));
    if (v == NULL) {
        return BMS_OK;
    }
    if (!YAJL_IS_OBJECT(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "version_policy: "
                            "expected an object");
    }
    latest = obj_get(v, "latest");
    all = obj_get(v, "all");
    specific = obj_get(v, "specific");
    if ((latest != NULL) + (all != NULL) + (specific != NULL) != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "version_policy: "
                            "expected one of \"latest\", \"all\" or "
                            "\"specific\"");
    }
    if (all != NULL) {
        if (!YAJL_IS_TRUE(all)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "version_policy."
                                "all: expected true");
        }
        return BMS_OK;
    }
    if (latest != NULL) {
        if (!YAJL_IS_INTEGER(latest) || YAJL_GET_INTEGER(latest) < 1 ||
            YAJL_GET_INTEGER(latest) > BMS_POLICY_MAX_VERSIONS) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "version_policy."
                                "latest: expected an integer in 1..%d",
                                BMS_POLICY_MAX_VERSIONS);
        }
        p->kind = BMS_POLICY_LATEST;
        p->latest = (int)YAJL_GET_INTEGER(latest);
        return BMS_OK;
    }
    p->kind = BMS_POLICY_SPECIFIC;
    return parse_specific(specific, p, diag);
}


int bms_version_policy_selects(const struct bms_manifest *m,
                               const int64_t *versions, int n, int i)
{
    const struct bms_version_policy *p = m != NULL ? &m->policy : NULL;

    if (p == NULL || p->kind == BMS_POLICY_ALL) {
        return 1;
    }
    if (p->kind == BMS_POLICY_LATEST) {
        return i >= n - p->latest;     /* versions are ascending */
    }
    for (int k = 0; k < p->n_specific; k++) {
        if (p->specific[k] == versions[i]) {
            return 1;
        }
    }
    return 0;
}


static enum bms_status parse_root(yajl_val root, struct bms_manifest *m,
                                  struct bms_diag *diag)
{
    enum bms_status rc;

    rc = get_string(root, "name", "name", 0, &m->name, diag);
    if (rc == BMS_OK) {
        rc = get_string(root, "version", "version", 1, &m->version, diag);
    }
    if (rc == BMS_OK) {
        rc = get_string(root, "description", "description", 0,
                        &m->description, diag);
    }
    if (rc == BMS_OK) {
        rc = get_string(root, "license", "license", 0, &m->license, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_ios(root, "inputs", &m->inputs, &m->n_inputs, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_ios(root, "outputs", &m->outputs, &m->n_outputs, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_deps(root, m, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_sched(root, &m->sched, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_health(root, &m->sched.health, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_qos(root, &m->sched.qos, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_routing(root, &m->routing, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_version_policy(root, &m->policy, diag);
    }
    if (rc == BMS_OK) {
        rc = parse_cache(root, &m->cache, diag);
    }
    return rc;
}


/* yajl's message spans lines (the message, the text near the error and a
 * pointer); fold it into one line with single spaces. */
static void fold_lines(char *s)
{
    char *w = s;
    int space = 0;

    for (char *r = s; *r != '\0'; r++) {
        if (*r == '\n' || *r == '\r' || *r == '\t' || *r == ' ') {
            space = w != s;
            continue;
        }
        if (space) {
            *w++ = ' ';
            space = 0;
        }
        *w++ = *r;
    }
    *w = '\0';
}


/* ---- routing documents ---- */

/*
 * Parse a JSON document of len bytes that must be an object.  On success
 * *text gets a NUL-terminated copy (the caller frees it) and *root its
 * tree (yajl_tree_free); on failure nothing is left and diag names `what`.
 */
static enum bms_status parse_object(const char *json, size_t len,
                                    const char *what, char **text,
                                    yajl_val *root, struct bms_diag *diag)
{
    char err[256] = "";
    yajl_val tree;
    char *copy;

    if (memchr(json, '\0', len) != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: contains a NUL "
                            "byte", what);
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        return BMS_ERR_NOMEM;
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    tree = yajl_tree_parse(copy, err, sizeof(err));
    if (tree == NULL || !YAJL_IS_OBJECT(tree)) {
        if (tree == NULL) {
            fold_lines(err);
        }
        bms_diag_set(diag, BMS_ERR_INVALID, "%s: %s", what,
                     tree != NULL ? "expected a JSON object"
                     : err[0] != '\0' ? err : "parse error");
        yajl_tree_free(tree);
        free(copy);
        return BMS_ERR_INVALID;
    }
    *text = copy;
    *root = tree;
    return BMS_OK;
}


enum bms_status bms_routing_weights_parse(const char *json, size_t len,
                                          struct bms_routing_weights *out,
                                          struct bms_diag *diag)
{
    yajl_val root;
    char *text;
    enum bms_status rc = parse_object(json, len, "body", &text, &root, diag);

    if (rc != BMS_OK) {
        return rc;
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        if (strcmp(root->u.object.keys[i], "weights") != 0) {
            rc = bms_diag_set(diag, BMS_ERR_INVALID, "body: unknown member "
                              "'%.64s' (expected only \"weights\")",
                              root->u.object.keys[i]);
            break;
        }
    }
    if (rc == BMS_OK) {
        rc = parse_weights(root, "", 1, out, diag);
    }
    yajl_tree_free(root);
    free(text);
    return rc;
}


enum bms_status bms_manifest_check_versions(const struct bms_manifest *m,
                                            const int64_t *versions,
                                            int n_versions,
                                            struct bms_diag *diag)
{
    const struct bms_routing_weights *w = &m->routing;

    for (int k = 0; k < w->n_weights; k++) {
        int found = 0;

        for (int i = 0; i < n_versions && !found; i++) {
            found = versions[i] == w->versions[k];
        }
        if (!found) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "routing.weights.%lld"
                                ": the model has no version %lld",
                                (long long)w->versions[k],
                                (long long)w->versions[k]);
        }
    }
    return BMS_OK;
}


enum bms_status bms_manifest_parse(const char *json, size_t len,
                                   struct bms_manifest **out,
                                   struct bms_diag *diag)
{
    struct bms_manifest *m;
    yajl_val root;
    char *text;
    enum bms_status rc;

    rc = parse_object(json, len, "config.json", &text, &root, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        yajl_tree_free(root);
        free(text);
        return BMS_ERR_NOMEM;
    }
    m->json = text;
    bms_sched_config_default(&m->sched);
    rc = parse_root(root, m, diag);
    yajl_tree_free(root);
    if (rc != BMS_OK) {
        bms_manifest_destroy(m);
        return rc;
    }
    *out = m;
    return BMS_OK;
}


static void io_fini(struct bms_manifest_io *io)
{
    free(io->name);
    free(io->order);
    for (int i = 0; i < io->n_classes; i++) {
        free(io->classes[i]);
    }
    free(io->classes);
}


void bms_manifest_destroy(struct bms_manifest *manifest)
{
    if (manifest == NULL) {
        return;
    }
    for (int i = 0; i < manifest->n_inputs; i++) {
        io_fini(&manifest->inputs[i]);
    }
    for (int i = 0; i < manifest->n_outputs; i++) {
        io_fini(&manifest->outputs[i]);
    }
    for (int i = 0; i < manifest->n_deps; i++) {
        free(manifest->deps[i].library);
        free(manifest->deps[i].package);
        free(manifest->deps[i].script);
    }
    free(manifest->inputs);
    free(manifest->outputs);
    free(manifest->deps);
    free(manifest->name);
    free(manifest->version);
    free(manifest->description);
    free(manifest->license);
    free(manifest->json);
    free(manifest);
}


/* ---- making a manifest from the graph ---------------------------------- */

static enum bms_status io_from_value(const struct bms_value_info *vi,
                                     struct bms_manifest_io *io)
{
    io->name = copy_string(vi->name);
    if (io->name == NULL) {
        return BMS_ERR_NOMEM;
    }
    io->dtype = vi->dtype;
    io->n_dims = -1;

    /* The first graph dimension is the batch; "size" is what follows.  A
     * graph value of unknown rank or a scalar has no per-item size. */
    if (vi->n_dims >= 1) {
        io->n_dims = vi->n_dims - 1;
        for (int i = 1; i < vi->n_dims; i++) {
            io->dims[i - 1] = vi->dims[i];
        }
    }
    return BMS_OK;
}


static int gen_str(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s))
           != yajl_gen_status_ok;
}


static int gen_ios(yajl_gen g, const char *key,
                   const struct bms_manifest_io *ios, int n_ios)
{
    int bad = gen_str(g, key) || yajl_gen_array_open(g);

    for (int i = 0; i < n_ios && !bad; i++) {
        const struct bms_manifest_io *io = &ios[i];

        bad = yajl_gen_map_open(g) || gen_str(g, "name")
              || gen_str(g, io->name) || gen_str(g, "type")
              || gen_str(g, type_name(io->dtype));
        if (!bad && io->n_dims >= 0) {
            bad = gen_str(g, "size") || yajl_gen_array_open(g);
            for (int d = 0; d < io->n_dims && !bad; d++) {
                bad = yajl_gen_integer(g, io->dims[d]) != yajl_gen_status_ok;
            }
            bad = bad || yajl_gen_array_close(g);
        }
        bad = bad || yajl_gen_map_close(g);
    }
    return bad || yajl_gen_array_close(g);
}


/* The JSON text of a manifest made from a graph: name, inputs, outputs.
 * A dimension known only at run time is written as -1. */
static enum bms_status make_json(struct bms_manifest *m)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t len;
    int bad;

    if (g == NULL) {
        return BMS_ERR_NOMEM;
    }
    bad = yajl_gen_map_open(g) || gen_str(g, "name") || gen_str(g, m->name)
          || gen_ios(g, "inputs", m->inputs, m->n_inputs)
          || gen_ios(g, "outputs", m->outputs, m->n_outputs)
          || yajl_gen_map_close(g)
          || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok;
    if (!bad) {
        m->json = malloc(len + 1);
        if (m->json != NULL) {
            memcpy(m->json, buf, len);
            m->json[len] = '\0';
        }
    }
    yajl_gen_free(g);
    if (bad) {
        return BMS_ERR_INTERNAL;
    }
    return m->json != NULL ? BMS_OK : BMS_ERR_NOMEM;
}


static enum bms_status manifest_fill(const struct bms_model *model,
                                     struct bms_manifest *m)
{
    int n_in = bms_model_n_inputs(model);
    int n_out = bms_model_n_outputs(model);
    enum bms_status rc = BMS_OK;

    m->inputs = calloc(n_in > 0 ? (size_t)n_in : 1, sizeof(*m->inputs));
    m->outputs = calloc(n_out > 0 ? (size_t)n_out : 1, sizeof(*m->outputs));
    if (m->inputs == NULL || m->outputs == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int i = 0; i < n_in && rc == BMS_OK; i++) {
        m->n_inputs = i + 1;
        rc = io_from_value(bms_model_input(model, i), &m->inputs[i]);
    }
    for (int i = 0; i < n_out && rc == BMS_OK; i++) {
        m->n_outputs = i + 1;
        rc = io_from_value(bms_model_output(model, i), &m->outputs[i]);
    }
    return rc;
}


enum bms_status bms_manifest_from_model(const struct bms_model *model,
                                        const char *name,
                                        struct bms_manifest **out,
                                        struct bms_diag *diag)
{
    struct bms_manifest *m = calloc(1, sizeof(*m));
    enum bms_status rc = BMS_ERR_NOMEM;

    if (m == NULL) {
        return bms_diag_set(diag, rc, "manifest: out of memory");
    }
    bms_sched_config_default(&m->sched);
    m->name = copy_string(name != NULL ? name : "");
    m->version = copy_string("");
    m->description = copy_string("");
    m->license = copy_string("");
    if (m->name == NULL || m->version == NULL || m->description == NULL
        || m->license == NULL) {
        goto out;
    }
    rc = manifest_fill(model, m);
    if (rc == BMS_OK) {
        rc = make_json(m);
    }

out:
    if (rc != BMS_OK) {
        bms_manifest_destroy(m);
        return bms_diag_set(diag, rc, "manifest: %s",
                            rc == BMS_ERR_NOMEM ? "out of memory"
                                                : "cannot write the JSON");
    }
    *out = m;
    return BMS_OK;
}


/* ---- checking a manifest against the graph ----------------------------- */

/* "image, mask": the names of the graph's inputs or outputs. */
static void list_names(const struct bms_model *model, int outputs,
                       char *buf, size_t size)
{
    int n = outputs ? bms_model_n_outputs(model) : bms_model_n_inputs(model);
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        const struct bms_value_info *vi = outputs ? bms_model_output(model, i)
                                                  : bms_model_input(model, i);
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                         vi->name);

        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
    if (n == 0) {
        snprintf(buf, size, "none");
    }
}


/* The graph has one batch dimension in front of "size"; every graph
 * dimension known at load must equal the manifest's. */
static enum bms_status check_size(const struct bms_manifest_io *io,
                                  const struct bms_value_info *vi,
                                  const char *path, struct bms_diag *diag)
{
    if (io->n_dims < 0 || vi->n_dims < 0) {
        return BMS_OK;
    }
    if (vi->n_dims != io->n_dims + 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.size: needs graph "
                            "rank %d (batch + %d), but '%s' has rank %d",
                            path, io->n_dims + 1, io->n_dims, vi->name,
                            vi->n_dims);
    }
    for (int i = 0; i < io->n_dims; i++) {
        int64_t g = vi->dims[i + 1];

        if (g >= 0 && g != io->dims[i]) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "%s.size[%d]: %lld, "
                                "but graph value '%s' has %lld there", path,
                                i, (long long)io->dims[i], vi->name,
                                (long long)g);
        }
    }
    return BMS_OK;
}


static enum bms_status check_input(const struct bms_manifest_io *io,
                                   const struct bms_model *model,
                                   const char *path, struct bms_diag *diag)
{
    int k = bms_model_find_input(model, io->name);
    const struct bms_value_info *vi;
    char names[256];

    if (k < 0) {
        list_names(model, 0, names, sizeof(names));
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.name: '%s' is not a "
                            "graph input (graph inputs: %s)", path, io->name,
                            names);
    }
    vi = bms_model_input(model, k);
    if (vi->dtype != io->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.type: %s, but graph "
                            "input '%s' is %s", path, type_name(io->dtype),
                            vi->name, type_name(vi->dtype));
    }
    return check_size(io, vi, path, diag);
}


/* A classifier's answer is the class index; the graph gives the scores. */
static enum bms_status check_classifier(const struct bms_manifest_io *io,
                                        const struct bms_value_info *vi,
                                        const char *path,
                                        struct bms_diag *diag)
{
    int64_t last;

    if (vi->dtype != BMS_DTYPE_F32) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.classes: a "
                            "classifier needs float scores, but graph output "
                            "'%s' is %s", path, vi->name,
                            type_name(vi->dtype));
    }
    if (vi->n_dims == 0 || vi->n_dims == 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.classes: graph output "
                            "'%s' has rank %d, but a classifier needs scores "
                            "[batch, ..., classes]", path, vi->name,
                            vi->n_dims);
    }
    last = vi->n_dims > 0 ? vi->dims[vi->n_dims - 1] : -1;
    if (last >= 0 && last != io->n_classes) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.classes: %d classes, "
                            "but graph output '%s' has %lld scores per item",
                            path, io->n_classes, vi->name, (long long)last);
    }
    return BMS_OK;
}


static enum bms_status check_output(const struct bms_manifest_io *io,
                                    const struct bms_model *model,
                                    const char *path, struct bms_diag *diag)
{
    int k = bms_model_find_output(model, io->name);
    const struct bms_value_info *vi;
    char names[256];

    if (k < 0) {
        list_names(model, 1, names, sizeof(names));
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.name: '%s' is not a "
                            "graph output (graph outputs: %s)", path,
                            io->name, names);
    }
    vi = bms_model_output(model, k);
    if (io->classes != NULL) {
        return check_classifier(io, vi, path, diag);
    }
    if (vi->dtype != io->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s.type: %s, but graph "
                            "output '%s' is %s", path, type_name(io->dtype),
                            vi->name, type_name(vi->dtype));
    }
    return check_size(io, vi, path, diag);
}


static int manifest_declares(const struct bms_manifest *m, const char *name)
{
    for (int i = 0; i < m->n_inputs; i++) {
        if (strcmp(m->inputs[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}


/* Requests are merged along the first dimension, so batching needs every
 * graph input to leave that dimension open. */
static enum bms_status check_batching(const struct bms_manifest *manifest,
                                      const struct bms_model *model,
                                      struct bms_diag *diag)
{
    if (manifest->sched.max_batch_size == 0) {
        return BMS_OK;
    }
    for (int i = 0; i < bms_model_n_inputs(model); i++) {
        const struct bms_value_info *vi = bms_model_input(model, i);

        if (vi->n_dims == 0 || (vi->n_dims > 0 && vi->dims[0] >= 0)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "scheduling.max_"
                                "batch_size: batching needs an open first "
                                "(batch) dimension, but graph input '%s' "
                                "has none", vi->name);
        }
    }
    return BMS_OK;
}


enum bms_status bms_manifest_check(const struct bms_manifest *manifest,
                                   const struct bms_model *model,
                                   struct bms_diag *diag)
{
    char path[PATH_SIZE];
    enum bms_status rc;

    for (int i = 0; i < manifest->n_inputs; i++) {
        snprintf(path, sizeof(path), "inputs[%d]", i);
        rc = check_input(&manifest->inputs[i], model, path, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    for (int i = 0; i < manifest->n_outputs; i++) {
        snprintf(path, sizeof(path), "outputs[%d]", i);
        rc = check_output(&manifest->outputs[i], model, path, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }

    rc = check_batching(manifest, model, diag);
    if (rc != BMS_OK) {
        return rc;
    }

    /* A request must give every graph input, so the manifest must say what
     * each one is. */
    for (int i = 0; i < bms_model_n_inputs(model); i++) {
        const char *name = bms_model_input(model, i)->name;

        if (!manifest_declares(manifest, name)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "inputs: graph input "
                                "'%s' is not declared", name);
        }
    }
    return BMS_OK;
}
