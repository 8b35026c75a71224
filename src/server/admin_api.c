/*
 * The control plane's record keeping: request records and the audit
 * trail (both read from the store, filtered and paged), and the config
 * centre, which shows and changes a model's run-time settings.
 *
 * A settings change is a JSON object laid over the model's config.json
 * (bms_settings_merge).  The result is checked by bms_manifest_parse, so
 * a bad value is refused with the same field name config.json errors
 * give, then applied by reloading the model with the merged manifest
 * (the old versions serve until the new ones are ready).  Rate limits
 * are not part of the manifest: they go to the gateway, which keeps them
 * in the store itself.  The settings persist in the model_settings table
 * and are laid over config.json again at every start
 * (bms__config_restore).  Changes to one model's settings are made one
 * at a time (config_lock), so two of them never lose each other's
 * fields.
 *
 * Every other load of a model (poll mode, the load API) gets the stored
 * settings laid over config.json too, through the manager's config hook
 * (config_overlay), so a saved change stays in force across reloads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yajl/yajl_tree.h>

#include "bms/manager.h"
#include "bms/repo.h"
#include "bms/store.h"
#include "sched/routing.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/v2_json.h"

#define ARG_INT_MAX 4611686018427387904LL  /* 2^62: offsets, times */
#define CONFIG_SIZE_MAX ((long)16 << 20)   /* bytes of config.json */
#define PATH_SIZE 4096
#define RATE_MAX 1000000                   /* requests_per_s, burst */

/* One settings change at a time: read, merge, apply, persist. */
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;


/* ---- query string arguments ---- */

static const char *arg(const struct bms__context *ctx, const char *name)
{
    const char *v = ctx->query != NULL ? ctx->query(ctx->query_ud, name)
                                       : NULL;

    return v != NULL && v[0] != '\0' ? v : NULL;
}


/* Decimal digits only, at most max; -1 otherwise. */
static int parse_count(const char *s, int64_t max, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 19) {
            return -1;
        }
        v = v * 10 + (s[n] - '0');
        if (v > max) {
            return -1;
        }
    }
    if (n == 0) {
        return -1;
    }
    *out = v;
    return 0;
}


/* Answer 400 "name: expected what". */
static void bad_arg(struct bms__reply *reply, const char *name,
                    const char *what)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "%s: expected %s", name, what);
    bms__reply_error(reply, 400, msg);
}


/* An optional integer argument in min..max into *out (left as it is when
 * absent).  Non-zero after answering 400. */
static int int_arg(const struct bms__context *ctx, const char *name,
                   int64_t min, int64_t max, const char *what,
                   int64_t *out, struct bms__reply *reply)
{
    const char *s = arg(ctx, name);
    int64_t v;

    if (s == NULL) {
        return 0;
    }
    if (parse_count(s, max, &v) != 0 || v < min) {
        bad_arg(reply, name, what);
        return -1;
    }
    *out = v;
    return 0;
}


/* The page (limit, offset) and time range (since, until) arguments. */
struct window {
    int64_t limit;
    int64_t offset;
    int64_t since_us;
    int64_t until_us;
};


static int window_args(const struct bms__context *ctx, struct window *w,
                       struct bms__reply *reply)
{
    static const char time_what[] =
        "microseconds since the Unix epoch, an integer in "
        "0..4611686018427387904";

    w->limit = BMS_REQUEST_QUERY_DEFAULT;
    w->offset = 0;
    w->since_us = 0;
    w->until_us = 0;
    if (int_arg(ctx, "limit", 1, BMS_REQUEST_QUERY_MAX,
                "an integer in 1..1000", &w->limit, reply) != 0 ||
        int_arg(ctx, "offset", 0, ARG_INT_MAX,
                "an integer in 0..4611686018427387904", &w->offset,
                reply) != 0 ||
        int_arg(ctx, "since", 0, ARG_INT_MAX, time_what, &w->since_us,
                reply) != 0 ||
        int_arg(ctx, "until", 1, ARG_INT_MAX, time_what, &w->until_us,
                reply) != 0) {
        return -1;
    }
    if (w->until_us != 0 && w->until_us <= w->since_us) {
        bad_arg(reply, "until", "a time after since");
        return -1;
    }
    return 0;
}


/* A text argument of at most max_len characters; NULL when absent. */
static int text_arg(const struct bms__context *ctx, const char *name,
                    size_t max_len, const char **out,
                    struct bms__reply *reply)
{
    const char *s = arg(ctx, name);
    char what[64];

    if (s != NULL && strlen(s) > max_len) {
        snprintf(what, sizeof(what), "at most %zu characters", max_len);
        bad_arg(reply, name, what);
        return -1;
    }
    *out = s;
    return 0;
}


/* The tail of a listing: the page and where the next one starts. */
static void page_end(struct bms__json *j, const struct window *w, int more)
{
    bms__json_raw(j, "], \"limit\": ");
    bms__json_int(j, w->limit);
    bms__json_raw(j, ", \"offset\": ");
    bms__json_int(j, w->offset);
    bms__json_raw(j, ", \"next_offset\": ");
    if (more) {
        bms__json_int(j, w->offset + w->limit);
    } else {
        bms__json_raw(j, "null");
    }
    bms__json_raw(j, "}");
}


/* A store failure: logged, answered 500 (400 for a bad page). */
static void store_failed(struct bms__reply *reply, enum bms_status rc,
                         const char *what, const struct bms_diag *diag)
{
    char esc[2 * BMS_DIAG_SIZE];

    if (rc == BMS_ERR_INVALID) {
        bms__reply_error(reply, 400, diag->msg);
        return;
    }
    bms__logfmt_escape(esc, sizeof(esc), diag->msg);
    bms_log(BMS_LOG_ERROR, "admin", "msg=\"%s not read\" error=\"%s\"",
            what, esc);
    bms__reply_error(reply, 500, "the store could not be read");
}


/* ---- GET /api/requests ---- */

/* A JSON array being written, and the rows in it so far (requests and
 * audit records alike). */
struct row_list {
    struct bms__json j;
    int n;
};


static int record_json(void *ud, const struct bms_request_record *r)
{
    struct row_list *list = ud;
    struct bms__json *j = &list->j;

    bms__json_raw(j, list->n++ > 0 ? ", {\"id\": " : "{\"id\": ");
    bms__json_cstr(j, r->id);
    bms__json_raw(j, ", \"ts_us\": ");
    bms__json_int(j, r->ts_us);
    bms__json_raw(j, ", \"model\": ");
    bms__json_cstr(j, r->model);
    bms__json_raw(j, ", \"version\": ");
    bms__json_int(j, r->version);
    bms__json_raw(j, ", \"http_status\": ");
    bms__json_int(j, r->http_status);
    bms__json_raw(j, ", \"outcome\": ");
    bms__json_cstr(j, r->outcome);
    bms__json_raw(j, ", \"error\": ");
    bms__json_cstr(j, r->error);
    bms__json_raw(j, ", \"latency_us\": ");
    bms__json_int(j, r->latency_us);
    bms__json_raw(j, ", \"bytes_in\": ");
    bms__json_int(j, r->bytes_in);
    bms__json_raw(j, ", \"bytes_out\": ");
    bms__json_int(j, r->bytes_out);
    bms__json_raw(j, ", \"client\": ");
    bms__json_cstr(j, r->client);
    bms__json_raw(j, ", \"key_id\": ");
    bms__json_cstr(j, r->key_id);
    bms__json_raw(j, "}");
    return j->rc != BMS_OK;
}


static int count_record(void *ud, const struct bms_request_record *r)
{
    (void)r;
    (*(int *)ud)++;
    return 1;
}


/* The filter arguments of /api/requests into f. */
static int request_args(const struct bms__context *ctx,
                        struct bms_request_filter *f, struct window *w,
                        struct bms__reply *reply)
{
    memset(f, 0, sizeof(*f));
    if (window_args(ctx, w, reply) != 0 ||
        text_arg(ctx, "model", BMS__MODEL_NAME_MAX, &f->model, reply) != 0 ||
        text_arg(ctx, "key", BMS__KEY_ID_MAX, &f->key_id, reply) != 0 ||
        text_arg(ctx, "outcome", 15, &f->outcome, reply) != 0) {
        return -1;
    }
    if (f->outcome != NULL && strcmp(f->outcome, "ok") != 0 &&
        strcmp(f->outcome, "client_error") != 0 &&
        strcmp(f->outcome, "server_error") != 0) {
        bad_arg(reply, "outcome", "ok, client_error or server_error");
        return -1;
    }
    f->since_us = w->since_us;
    f->until_us = w->until_us;
    f->limit = (int)w->limit;
    f->offset = w->offset;
    return 0;
}


/* 400 naming a query argument the route does not take, or one given
 * twice; returns non-zero then. */
static int args_known(const struct bms__context *ctx,
                      const char *const *allowed, struct bms__reply *reply)
{
    char bad[80];
    char msg[160];
    int repeated = 0;

    if (ctx->query_check == NULL ||
        !ctx->query_check(ctx->query_ud, allowed, bad, sizeof(bad),
                          &repeated)) {
        return 0;
    }
    snprintf(msg, sizeof(msg), repeated ? "%s: given more than once"
                                        : "%s: unknown query argument", bad);
    bms__reply_error(reply, 400, msg);
    return -1;
}


void bms__handle_requests(const struct bms__context *ctx,
                          struct bms__reply *reply)
{
    static const char *const allowed[] = {
        "model", "key", "outcome", "since", "until", "limit", "offset", NULL
    };
    struct row_list list = { { &reply->body, BMS_OK }, 0 };
    struct bms_request_filter f;
    struct bms_diag diag = {""};
    struct window w;
    enum bms_status rc;
    int more = 0;

    if (ctx->store == NULL) {
        bms__reply_error(reply, 503, "no store: requests are not recorded");
        return;
    }
    if (args_known(ctx, allowed, reply) != 0 ||
        request_args(ctx, &f, &w, reply) != 0) {
        return;
    }

    /* Records of requests answered by now are queued, maybe unwritten. */
    bms_store_flush(ctx->store);
    bms__json_raw(&list.j, "{\"requests\": [");
    rc = bms_store_query_requests(ctx->store, &f, record_json, &list,
                                  &diag);
    if (rc == BMS_OK && list.n == f.limit) {
        f.offset += f.limit;
        f.limit = 1;
        rc = bms_store_query_requests(ctx->store, &f, count_record, &more,
                                      &diag);
    }
    if (rc != BMS_OK) {
        store_failed(reply, rc, "request records", &diag);
        return;
    }
    page_end(&list.j, &w, more);
    if (list.j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = 200;
}


/* ---- GET /api/audit and bms__audit ---- */

static int audit_json(void *ud, const struct bms_audit_record *a)
{
    struct row_list *list = ud;
    struct bms__json *j = &list->j;

    bms__json_raw(j, list->n++ > 0 ? ", {\"id\": " : "{\"id\": ");
    bms__json_int(j, a->id);
    bms__json_raw(j, ", \"ts_us\": ");
    bms__json_int(j, a->ts_us);
    bms__json_raw(j, ", \"key_id\": ");
    bms__json_cstr(j, a->key_id);
    bms__json_raw(j, ", \"actor\": ");
    bms__json_cstr(j, a->actor);
    bms__json_raw(j, ", \"action\": ");
    bms__json_cstr(j, a->action);
    bms__json_raw(j, ", \"target\": ");
    bms__json_cstr(j, a->target);
    bms__json_raw(j, ", \"detail\": ");
    bms__json_cstr(j, a->detail);
    bms__json_raw(j, "}");
    return j->rc != BMS_OK;
}


static int count_audit(void *ud, const struct bms_audit_record *a)
{
    (void)a;
    (*(int *)ud)++;
    return 1;
}


void bms__handle_audit(const struct bms__context *ctx,
                       struct bms__reply *reply)
{
    static const char *const allowed[] = {
        "target", "since", "until", "limit", "offset", NULL
    };
    struct row_list list = { { &reply->body, BMS_OK }, 0 };
    struct bms_audit_filter f;
    struct bms_diag diag = {""};
    struct window w;
    enum bms_status rc;
    int more = 0;

    if (ctx->store == NULL) {
        bms__reply_error(reply, 503, "no store: no audit trail is kept");
        return;
    }
    memset(&f, 0, sizeof(f));
    if (args_known(ctx, allowed, reply) != 0 ||
        window_args(ctx, &w, reply) != 0 ||
        text_arg(ctx, "target", 159, &f.target, reply) != 0) {
        return;
    }
    f.since_us = w.since_us;
    f.until_us = w.until_us;
    bms__json_raw(&list.j, "{\"audit\": [");
    rc = bms_store_list_audit(ctx->store, &f, (int)w.limit, w.offset,
                              audit_json, &list, &diag);
    if (rc == BMS_OK && list.n == w.limit) {
        rc = bms_store_list_audit(ctx->store, &f, 1, w.offset + w.limit,
                                  count_audit, &more, &diag);
    }
    if (rc != BMS_OK) {
        store_failed(reply, rc, "audit records", &diag);
        return;
    }
    page_end(&list.j, &w, more);
    if (list.j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = 200;
}


void bms__audit(const struct bms__context *ctx, const char *action,
                const char *target, const char *detail)
{
    const struct bms__principal *who = ctx->who;
    struct bms_audit_record rec;
    struct bms_diag diag = {""};
    char esc[2 * BMS_DIAG_SIZE];

    if (ctx->store == NULL) {
        return;
    }
    memset(&rec, 0, sizeof(rec));
    rec.ts_us = bms_wall_us();
    if (who != NULL) {
        snprintf(rec.key_id, sizeof(rec.key_id), "%s", who->key_id);
    }
    snprintf(rec.actor, sizeof(rec.actor), "%s",
             who != NULL && who->name[0] != '\0' ? who->name : "anonymous");
    snprintf(rec.action, sizeof(rec.action), "%s", action);
    snprintf(rec.target, sizeof(rec.target), "%s",
             target != NULL ? target : "");
    snprintf(rec.detail, sizeof(rec.detail), "%s",
             detail != NULL ? detail : "");
    if (bms_store_put_audit(ctx->store, &rec, &diag) != BMS_OK) {
        bms__logfmt_escape(esc, sizeof(esc), diag.msg);
        bms_log(BMS_LOG_ERROR, "admin", "msg=\"audit record not stored\" "
                "action=%s error=\"%s\"", rec.action, esc);
    }
}


/* ---- the config centre: the documents ---- */

/* The path of name's folder in dir, or of a file in it (file NULL: the
 * folder).  -1 when it does not fit. */
static int model_path(char *out, size_t size, const char *dir,
                      const char *name, const char *file)
{
    int n = file != NULL ? snprintf(out, size, "%s/%s/%s", dir, name, file)
                         : snprintf(out, size, "%s/%s", dir, name);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}


/* The model's config.json into out.  BMS_ERR_NOT_FOUND when it has
 * none, BMS_ERR_IO or BMS_ERR_LIMIT naming the file. */
static enum bms_status read_config_file(const char *dir, const char *name,
                                        struct bms_buf *out,
                                        struct bms_diag *diag)
{
    char path[PATH_SIZE];
    char chunk[8192];
    enum bms_status rc = BMS_OK;
    FILE *f;
    size_t n;

    if (model_path(path, sizeof(path), dir, name, "config.json") != 0) {
        return bms_diag_set(diag, BMS_ERR_IO, "config.json: path too long");
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        return errno == ENOENT
                   ? BMS_ERR_NOT_FOUND
                   : bms_diag_set(diag, BMS_ERR_IO, "config.json: %s",
                                  strerror(errno));
    }
    bms_buf_reset(out);
    while (rc == BMS_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (out->len + n > (size_t)CONFIG_SIZE_MAX) {
            rc = bms_diag_set(diag, BMS_ERR_LIMIT, "config.json: larger "
                              "than %ld bytes", CONFIG_SIZE_MAX);
        } else {
            rc = bms_buf_append(out, chunk, n);
        }
    }
    if (rc == BMS_OK && ferror(f)) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "config.json: read error");
    }
    fclose(f);
    return rc;
}


/*
 * The document the settings are laid over: config.json, or for a model
 * without one the manifest its loaded version made from the graph ("{}"
 * when none is loaded).
 */
static enum bms_status base_document(struct bms_manager *m,
                                     const char *name, struct bms_buf *out,
                                     struct bms_diag *diag)
{
    struct bms_manager_lease lease;
    const struct bms_manifest *mf = NULL;
    struct bms_served *served;
    enum bms_status rc;

    rc = read_config_file(bms_manager_dir(m), name, out, diag);
    if (rc != BMS_ERR_NOT_FOUND) {
        return rc;
    }
    bms_manager_acquire(m, name, &lease);
    served = bms_repo_find(lease.repo, name, 0);
    if (served != NULL) {
        mf = bms_served_manifest(served);
    }
    bms_buf_reset(out);
    rc = bms_buf_puts(out, mf != NULL && mf->json != NULL ? mf->json
                                                          : "{}");
    bms_manager_release(m, &lease);
    return rc;
}


/* The manifest text for a load: settings laid over the base document. */
static enum bms_status merged_manifest(struct bms_manager *m,
                                       const char *name,
                                       const char *settings,
                                       struct bms_buf *out,
                                       struct bms_diag *diag)
{
    struct bms_buf base = {NULL, 0, 0};
    enum bms_status rc = base_document(m, name, &base, diag);

    if (rc == BMS_OK) {
        rc = bms_settings_merge(base.data, base.len, settings,
                                strlen(settings), NULL, out, diag);
    }
    bms_buf_fini(&base);
    return rc;
}


/* Reload name with its stored settings; logged either way. */
static int restore_one(void *ud, const char *name, const char *settings,
                       int64_t updated_us)
{
    struct bms_manager *m = ud;
    struct bms_buf merged = {NULL, 0, 0};
    struct bms_diag diag = {""};
    char esc[2 * BMS_DIAG_SIZE];
    enum bms_status rc;

    (void)updated_us;
    rc = merged_manifest(m, name, settings, &merged, &diag);
    if (rc == BMS_OK) {
        rc = bms_manager_load(m, name, 0, merged.data, &diag);
    }
    bms_buf_fini(&merged);
    if (rc != BMS_OK) {
        bms__logfmt_escape(esc, sizeof(esc), diag.msg);
        bms_log(BMS_LOG_WARN, "admin", "msg=\"stored settings not applied\""
                " model=%s error=\"%s\"", name, esc);
        return 0;
    }
    bms_log(BMS_LOG_INFO, "admin", "msg=\"stored settings applied\" "
            "model=%s", name);
    return 0;
}


/* Where the config hook finds the settings: one manager and store per
 * process (bms serve). */
static struct bms_manager *overlay_manager;
static struct bms_store *overlay_store;


/* The manager's config hook: config.json with the stored settings laid
 * over it, or nothing when the model has none. */
static enum bms_status config_overlay(void *ud, const char *name,
                                      struct bms_buf *out,
                                      struct bms_diag *diag)
{
    char *settings = NULL;
    int64_t updated_us;
    enum bms_status rc;

    (void)ud;
    rc = bms_store_get_settings(overlay_store, name, &settings,
                                &updated_us, diag);
    if (rc == BMS_ERR_NOT_FOUND) {
        return BMS_OK;
    }
    if (rc == BMS_OK) {
        rc = merged_manifest(overlay_manager, name, settings, out, diag);
    }
    free(settings);
    return rc;
}


void bms__config_restore(struct bms_manager *m, struct bms_store *store)
{
    struct bms_diag diag = {""};
    char esc[2 * BMS_DIAG_SIZE];

    if (m == NULL || store == NULL) {
        return;
    }
    overlay_manager = m;
    overlay_store = store;
    bms_manager_set_config_hook(m, config_overlay, NULL);
    pthread_mutex_lock(&config_lock);
    if (bms_store_list_settings(store, restore_one, m, &diag) != BMS_OK) {
        bms__logfmt_escape(esc, sizeof(esc), diag.msg);
        bms_log(BMS_LOG_WARN, "admin", "msg=\"stored settings not read\" "
                "error=\"%s\"", esc);
    }
    pthread_mutex_unlock(&config_lock);
}


/* ---- the config centre: GET ---- */

static void json_double(struct bms__json *j, double v)
{
    char text[40];

    snprintf(text, sizeof(text), "%.15g", v);
    bms__json_raw(j, text);
}


/* A member "key": integer, after a comma unless first. */
static void member_int(struct bms__json *j, const char *key, int64_t v,
                       int first)
{
    bms__json_raw(j, first ? "\"" : ", \"");
    bms__json_raw(j, key);
    bms__json_raw(j, "\": ");
    bms__json_int(j, v);
}


static void sched_json(struct bms__json *j, const struct bms_sched_config *c)
{
    bms__json_raw(j, "\"scheduling\": {");
    member_int(j, "max_queue_size", c->max_queue_size, 1);
    member_int(j, "max_batch_size", c->max_batch_size, 0);
    member_int(j, "max_queue_delay_us", c->max_queue_delay_us, 0);
    bms__json_raw(j, c->adaptive_delay ? ", \"adaptive_delay\": true"
                                       : ", \"adaptive_delay\": false");
    bms__json_raw(j, c->warmup ? ", \"warmup\": true"
                               : ", \"warmup\": false");
    bms__json_raw(j, ", \"preferred_batch_sizes\": [");
    for (int i = 0; i < c->n_preferred; i++) {
        bms__json_raw(j, i > 0 ? ", " : "");
        bms__json_int(j, c->preferred_batch_sizes[i]);
    }
    bms__json_raw(j, "]");
    member_int(j, "instances", c->instances, 0);
    member_int(j, "min_instances", c->min_instances, 0);
    member_int(j, "max_instances", c->max_instances, 0);
    member_int(j, "scale_down_after_s", c->scale_down_after_s, 0);
    member_int(j, "scale_up_wait_ms", c->scale_up_wait_ms, 0);
    member_int(j, "max_concurrency", c->max_concurrency, 0);
    bms__json_raw(j, c->isolation == BMS_ISOLATION_PROCESS
                         ? ", \"isolation\": \"process\""
                         : ", \"isolation\": \"thread\"");
    member_int(j, "isolation_timeout_ms", c->isolation_timeout_ms, 0);
    member_int(j, "isolation_memory_mb", c->isolation_memory_mb, 0);
    bms__json_raw(j, "}, \"health\": {");
    member_int(j, "period_ms", c->health.period_ms, 1);
    member_int(j, "timeout_ms", c->health.timeout_ms, 0);
    bms__json_raw(j, "}, \"qos\": {");
    member_int(j, "window_s", c->qos.window_s, 1);
    member_int(j, "min_requests", c->qos.min_requests, 0);
    bms__json_raw(j, ", \"max_error_rate\": ");
    json_double(j, c->qos.max_error_rate);
    bms__json_raw(j, ", \"max_p99_ms\": ");
    json_double(j, c->qos.max_p99_ms);
    member_int(j, "cooldown_s", c->qos.cooldown_s, 0);
    bms__json_raw(j, "}");
}


/* "routing": {"weights": {...}}: the table's weights in force, else the
 * manifest's. */
static void routing_json(struct bms__json *j, struct bms__routing *routing,
                         const char *name, const struct bms_manifest *mf)
{
    struct bms_routing_weights w = mf->routing;

    if (routing != NULL) {
        struct bms_routing_weights now;

        if (bms__routing_get(routing, name, &now, NULL) == BMS_OK) {
            w = now;
        }
    }
    bms__json_raw(j, ", \"routing\": {\"weights\": {");
    for (int k = 0; k < w.n_weights; k++) {
        bms__json_raw(j, k > 0 ? ", \"" : "\"");
        bms__json_int(j, w.versions[k]);
        bms__json_raw(j, "\": ");
        bms__json_int(j, w.weights[k]);
    }
    bms__json_raw(j, "}}");
}


/* The stored settings of name as a JSON object ("{}" without). */
static void settings_json(struct bms__json *j, struct bms_store *store,
                          const char *name)
{
    struct bms_buf clean = {NULL, 0, 0};
    char *settings = NULL;

    bms__json_raw(j, ", \"settings\": ");
    if (store == NULL ||
        bms_store_get_settings(store, name, &settings, NULL, NULL)
            != BMS_OK) {
        bms__json_raw(j, "{}");
        return;
    }

    /* A row of the store, written again only if it is a JSON object. */
    if (bms_settings_merge("{}", 2, settings, strlen(settings), NULL,
                           &clean, NULL) == BMS_OK) {
        bms__json_raw(j, clean.data);
    } else {
        bms__json_raw(j, "{}");
    }
    bms_buf_fini(&clean);
    free(settings);
}


/* The settings in force of served (a version of name) into reply. */
static void config_reply(const struct bms__context *ctx, const char *name,
                         struct bms_served *served,
                         struct bms__routing *routing,
                         struct bms__reply *reply)
{
    const struct bms_manifest *mf = bms_served_manifest(served);
    struct bms__json j = { &reply->body, BMS_OK };
    double rate = 0;
    int burst = 0;

    if (ctx->auth != NULL) {
        bms__auth_model_limit(ctx->auth, name, &rate, &burst);
    }
    bms_buf_reset(&reply->body);
    bms__json_raw(&j, "{\"name\": ");
    bms__json_cstr(&j, name);
    bms__json_raw(&j, ", \"version\": ");
    bms__json_int(&j, bms_served_version(served));
    bms__json_raw(&j, ", ");
    sched_json(&j, &mf->sched);
    bms__json_raw(&j, ", \"cache\": {\"enabled\": ");
    bms__json_raw(&j, mf->cache.enabled ? "true" : "false");
    member_int(&j, "max_bytes", mf->cache.max_bytes, 0);
    member_int(&j, "ttl_s", mf->cache.ttl_s, 0);
    bms__json_raw(&j, "}, \"rate_limit\": {\"requests_per_s\": ");
    json_double(&j, rate);
    member_int(&j, "burst", burst, 0);
    bms__json_raw(&j, "}");
    routing_json(&j, routing, name, mf);
    settings_json(&j, ctx->store, name);
    bms__json_raw(&j, "}");
    if (j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->version = bms_served_version(served);
    reply->http_status = 200;
}


/* Answer for the model's highest ready version in repo; 404 or 503 when
 * there is none. */
static void config_get(const struct bms__context *ctx, const char *name,
                       struct bms_repo *repo, struct bms__routing *routing,
                       struct bms__reply *reply)
{
    struct bms_served *served = bms_repo_find(repo, name, 0);
    char msg[256];

    if (served != NULL) {
        config_reply(ctx, name, served, routing, reply);
        return;
    }
    if (bms_repo_has_model(repo, name)) {
        snprintf(msg, sizeof(msg), "model '%s' has no ready version", name);
        bms__reply_error(reply, 503, msg);
        return;
    }
    snprintf(msg, sizeof(msg), "model '%s' not found", name);
    bms__reply_error(reply, 404, msg);
}


/* ---- the config centre: PUT ---- */

/* What a PUT asks beyond the settings: a rate limit, if any. */
struct config_change {
    int has_rate;                /* the body has "rate_limit" */
    double rate;                 /* requests_per_s; 0: none */
    int burst;
    int reload;                  /* the body has other members */
};


/* The member key of the object obj, or NULL. */
static yajl_val obj_member(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }
    return NULL;
}


/* Whether key is a member a config PUT may change. */
static int setting_known(const char *key)
{
    static const char *const known[] = {
        "scheduling", "health", "qos", "cache", "routing", "version_policy"
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(key, known[i]) == 0) {
            return 1;
        }
    }
    return 0;
}


/* "rate_limit": null (no limit) or {"requests_per_s": x, "burst": n}. */
static int parse_rate_limit(yajl_val v, struct config_change *c,
                            struct bms__reply *reply)
{
    yajl_val rps;
    yajl_val burst;

    c->has_rate = 1;
    if (YAJL_IS_NULL(v)) {
        return 0;
    }
    if (!YAJL_IS_OBJECT(v)) {
        bad_arg(reply, "rate_limit", "an object or null");
        return -1;
    }
    rps = obj_member(v, "requests_per_s");
    burst = obj_member(v, "burst");
    if (rps == NULL || !YAJL_IS_DOUBLE(rps) || YAJL_GET_DOUBLE(rps) < 0 ||
        YAJL_GET_DOUBLE(rps) > RATE_MAX) {
        bad_arg(reply, "rate_limit.requests_per_s", "a number in "
                "0..1000000");
        return -1;
    }
    if (burst != NULL && (!YAJL_IS_INTEGER(burst) ||
                          YAJL_GET_INTEGER(burst) < 0 ||
                          YAJL_GET_INTEGER(burst) > RATE_MAX)) {
        bad_arg(reply, "rate_limit.burst", "an integer in 0..1000000");
        return -1;
    }
    c->rate = YAJL_GET_DOUBLE(rps);
    c->burst = burst != NULL ? (int)YAJL_GET_INTEGER(burst) : 0;
    return 0;
}


/* Read the body (already known to be a JSON object) into *c. */
static int parse_change(const char *body, size_t body_len,
                        struct config_change *c, struct bms__reply *reply)
{
    char *copy = malloc(body_len + 1);
    yajl_val root;
    int bad = 0;

    memset(c, 0, sizeof(*c));
    if (copy == NULL) {
        bms__reply_error(reply, 500, "out of memory");
        return -1;
    }
    memcpy(copy, body, body_len);
    copy[body_len] = '\0';
    root = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        bad_arg(reply, "body", "a JSON object");
        return -1;
    }
    for (size_t i = 0; i < root->u.object.len && !bad; i++) {
        const char *key = root->u.object.keys[i];

        if (strcmp(key, "rate_limit") == 0) {
            bad = parse_rate_limit(root->u.object.values[i], c, reply);
        } else if (setting_known(key)) {
            c->reload = 1;
        } else {
            char msg[200];

            /* A misspelt member would be saved and change nothing. */
            snprintf(msg, sizeof(msg), "body: unknown member '%.64s' (one "
                     "of scheduling, health, qos, cache, rate_limit, "
                     "routing, version_policy)", key);
            bms__reply_error(reply, 400, msg);
            bad = -1;
        }
    }
    yajl_tree_free(root);
    return bad;
}


/* Answer a failed step: 400 for what the caller sent, else its status. */
static void change_failed(struct bms__reply *reply, enum bms_status rc,
                          const struct bms_diag *diag, const char *what)
{
    char msg[BMS_DIAG_SIZE + 64];

    if (diag->msg[0] != '\0') {
        snprintf(msg, sizeof(msg), "%s", diag->msg);
    } else {
        snprintf(msg, sizeof(msg), "%s failed: %s", what,
                 bms_status_name(rc));
    }
    bms__reply_error(reply, rc == BMS_ERR_INVALID ? 400
                            : bms__http_status(rc), msg);
}


/* The stored settings of name laid under the body: the new settings. */
static enum bms_status next_settings(struct bms_store *store,
                                     const char *name, const char *body,
                                     size_t body_len, struct bms_buf *out,
                                     struct bms_diag *diag)
{
    char *old = NULL;
    enum bms_status rc = BMS_ERR_NOT_FOUND;

    if (store != NULL) {
        rc = bms_store_get_settings(store, name, &old, NULL, diag);
    }
    if (rc != BMS_OK && rc != BMS_ERR_NOT_FOUND) {
        return rc;
    }
    diag->msg[0] = '\0';
    rc = bms_settings_merge(old != NULL ? old : "{}",
                            old != NULL ? strlen(old) : 2, body, body_len,
                            "rate_limit", out, diag);
    free(old);
    return rc;
}


/* Check the merged manifest, then reload the model with it. */
static enum bms_status apply_settings(struct bms_manager *m,
                                      const char *name,
                                      const char *settings,
                                      struct bms_diag *diag)
{
    struct bms_buf merged = {NULL, 0, 0};
    struct bms_manifest *mf = NULL;
    enum bms_status rc = merged_manifest(m, name, settings, &merged, diag);

    if (rc == BMS_OK) {
        rc = bms_manifest_parse(merged.data, merged.len, &mf, diag);
        bms_manifest_destroy(mf);
    }
    if (rc == BMS_OK) {
        rc = bms_manager_load(m, name, 0, merged.data, diag);
    }
    bms_buf_fini(&merged);
    return rc;
}


/* Store the new settings ({} deletes the row); a failure is logged: the
 * change is in force, only not kept across a restart. */
static void keep_settings(struct bms_store *store, const char *name,
                          const struct bms_buf *settings)
{
    struct bms_diag diag = {""};
    char esc[2 * BMS_DIAG_SIZE];
    const char *json = strcmp(settings->data, "{}") == 0 ? NULL
                                                         : settings->data;

    if (store == NULL ||
        bms_store_put_settings(store, name, json, &diag) == BMS_OK) {
        return;
    }
    bms__logfmt_escape(esc, sizeof(esc), diag.msg);
    bms_log(BMS_LOG_ERROR, "admin", "msg=\"model settings not stored\" "
            "model=%s error=\"%s\"", name, esc);
}


/* With config_lock held: check, apply and keep one change. */
static int config_change(const struct bms__context *ctx, const char *name,
                         const char *body, size_t body_len,
                         struct bms__reply *reply)
{
    struct bms_buf settings = {NULL, 0, 0};
    struct bms_diag diag = {""};
    struct config_change c;
    enum bms_status rc;

    rc = next_settings(ctx->store, name, body, body_len, &settings, &diag);
    if (rc != BMS_OK) {
        change_failed(reply, rc, &diag, "reading the settings");
        goto out;
    }
    if (parse_change(body, body_len, &c, reply) != 0) {
        rc = BMS_ERR_INVALID;
        goto out;
    }
    if (c.has_rate && ctx->auth == NULL) {
        bms__reply_error(reply, 409, "rate_limit: this server has no "
                         "gateway to apply it");
        rc = BMS_ERR_UNAVAILABLE;
        goto out;
    }
    if (c.reload) {
        rc = apply_settings(ctx->manager, name, settings.data, &diag);
        if (rc != BMS_OK) {
            change_failed(reply, rc, &diag, "reloading the model");
            goto out;
        }
    }
    if (c.has_rate) {
        rc = bms__auth_set_model_limit(ctx->auth, name, c.rate, c.burst,
                                       &diag);
        if (rc != BMS_OK) {
            change_failed(reply, rc, &diag, "setting the rate limit");
            goto out;
        }
    }
    keep_settings(ctx->store, name, &settings);
    bms_log(BMS_LOG_INFO, "admin", "msg=\"model config changed\" model=%s "
            "reloaded=%d rate_limit=%d", name, c.reload, c.has_rate);

out:
    bms_buf_fini(&settings);
    return rc == BMS_OK ? 0 : -1;
}


/* The model's folder exists (a model bms_manager_load can load). */
static int model_folder_exists(struct bms_manager *m, const char *name)
{
    char path[PATH_SIZE];
    struct stat st;

    return model_path(path, sizeof(path), bms_manager_dir(m), name, NULL)
               == 0 &&
           stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}


static void config_put(const struct bms__context *ctx, const char *name,
                       const char *body, size_t body_len,
                       struct bms__reply *reply)
{
    struct bms_manager_lease lease;
    char detail[1024];
    char msg[256];
    int failed;

    if (ctx->manager == NULL) {
        bms__reply_error(reply, 409, "the repository is fixed: this server"
                         " has no model manager to apply a change");
        return;
    }
    if (!model_folder_exists(ctx->manager, name)) {
        snprintf(msg, sizeof(msg), "model '%s' not found", name);
        bms__reply_error(reply, 404, msg);
        return;
    }
    pthread_mutex_lock(&config_lock);
    failed = config_change(ctx, name, body, body_len, reply);
    pthread_mutex_unlock(&config_lock);
    if (failed) {
        return;
    }
    snprintf(detail, sizeof(detail), "%.*s",
             (int)(body_len < sizeof(detail) ? body_len
                                             : sizeof(detail) - 1), body);
    bms__audit(ctx, "config.put", name, detail);

    /* The answer shows the slot now in force, not the request's lease. */
    bms_manager_acquire(ctx->manager, name, &lease);
    config_get(ctx, name, lease.repo, lease.routing, reply);
    bms_manager_release(ctx->manager, &lease);
}


void bms__handle_model_config(const struct bms__context *ctx,
                              const struct bms__route *route,
                              const char *method, const char *body,
                              size_t body_len, struct bms__reply *reply)
{
    if (strcmp(method, "PUT") == 0) {
        config_put(ctx, route->model, body, body_len, reply);
        return;
    }
    config_get(ctx, route->model, ctx->repo, ctx->routing, reply);
}
