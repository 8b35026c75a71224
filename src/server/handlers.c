/*
 * The endpoint handlers: health, server and model metadata, readiness and
 * inference.  Each turns a parsed route into an HTTP status and a JSON
 * body, resolving the model version through the repository; the v2 JSON
 * work itself is bms_v2_*.  Nothing here knows about sockets.
 *
 * With a scheduler, inference is parsed here, queued, waited for with its
 * deadline and answered here; without one it runs on this thread.
 *
 * Resolution order for a model route: an unknown name is 404; a named
 * version that is ready answers; a named version that failed to load is
 * 503 with its reason; any other named version is 404.  Without a version
 * the highest ready one answers, or 503 when every version failed.
 */
#include <stdio.h>
#include <string.h>

#include "bms/server.h"
#include "bms/v2.h"
#include "server/route.h"
#include "server/v2_json.h"

static const char nomem_body[] = "{\"error\": \"out of memory\"}";

/* The longest deadline a request may ask for: one day (milliseconds). */
#define TIMEOUT_MAX_MS ((int64_t)24 * 3600 * 1000)

/* The outcome of resolving a model route to one version. */
struct resolved {
    struct bms_served *served;          /* NULL unless ready */
    const struct bms_repo_entry *failed; /* the failed entry, if that */
};


void bms__reply_error(struct bms__reply *reply, int http_status,
                      const char *msg)
{
    reply->http_status = http_status;
    snprintf(reply->error, sizeof(reply->error), "%s", msg);
    bms_buf_reset(&reply->body);
    if (bms_v2_error(&reply->body, msg) != BMS_OK) {
        bms_buf_reset(&reply->body);
        bms_buf_puts(&reply->body, nomem_body);
    }
}


/* Finish a reply whose body was being built: on a failed append, replace
 * it with the fixed out-of-memory error. */
static void reply_done(struct bms__reply *reply, int http_status,
                       enum bms_status rc)
{
    if (rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = http_status;
}


/* The failed entry with this name and version (0: the highest one). */
static const struct bms_repo_entry *find_failed(const struct bms_repo *repo,
                                                const char *name,
                                                int64_t version)
{
    const struct bms_repo_entry *best = NULL;
    int n = bms_repo_n_entries(repo);

    for (int i = 0; i < n; i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        if (e->state != BMS_ENTRY_FAILED || strcmp(e->name, name) != 0) {
            continue;
        }
        if (version != 0 && e->version != version) {
            continue;
        }
        if (best == NULL || e->version > best->version) {
            best = e;
        }
    }
    return best;
}


/*
 * Resolve the route's model version.  On failure the reply holds the 404
 * or 503 and the function returns non-zero.
 */
static int resolve(struct bms_repo *repo, const struct bms__route *route,
                   struct resolved *res, struct bms__reply *reply)
{
    char msg[256];

    memset(res, 0, sizeof(*res));
    if (!bms_repo_has_model(repo, route->model)) {
        snprintf(msg, sizeof(msg), "model '%s' not found", route->model);
        bms__reply_error(reply, 404, msg);
        return -1;
    }
    res->served = bms_repo_find(repo, route->model, route->version);
    if (res->served != NULL) {
        reply->version = bms_served_version(res->served);
        return 0;
    }
    res->failed = find_failed(repo, route->model, route->version);
    if (res->failed != NULL) {
        reply->version = res->failed->version;
        snprintf(msg, sizeof(msg), "model '%s' version %lld is not ready: %s",
                 route->model, (long long)res->failed->version,
                 res->failed->reason);
        bms__reply_error(reply, 503, msg);
        return -1;
    }
    snprintf(msg, sizeof(msg), "model '%s' has no version %lld",
             route->model, (long long)route->version);
    bms__reply_error(reply, 404, msg);
    return -1;
}


static void handle_ready(struct bms_repo *repo, struct bms__reply *reply)
{
    int n = bms_repo_n_entries(repo);
    int ready = 0;

    for (int i = 0; i < n && !ready; i++) {
        ready = bms_repo_entry(repo, i)->state == BMS_ENTRY_READY;
    }
    if (ready) {
        reply_done(reply, 200,
                   bms_buf_puts(&reply->body, "{\"ready\": true}"));
    } else {
        reply_done(reply, 503,
                   bms_buf_puts(&reply->body, "{\"ready\": false}"));
        snprintf(reply->error, sizeof(reply->error), "no model is ready");
    }
}


static void handle_model_ready(struct bms_repo *repo,
                               const struct bms__route *route,
                               struct bms__reply *reply)
{
    struct bms_buf *b = &reply->body;
    struct resolved res;
    enum bms_status rc;

    if (resolve(repo, route, &res, reply) == 0) {
        rc = bms_buf_printf(b, "{\"name\": \"%s\", \"version\": \"%lld\", "
                            "\"ready\": true}", route->model,
                            (long long)reply->version);
        reply_done(reply, 200, rc);
        return;
    }
    if (res.failed == NULL) {
        return;
    }
    /* A version that failed to load: the readiness answer, not an error. */
    bms_buf_reset(b);
    rc = bms_buf_printf(b, "{\"name\": \"%s\", \"version\": \"%lld\", "
                        "\"ready\": false, \"reason\": ", route->model,
                        (long long)res.failed->version);
    if (rc == BMS_OK) {
        struct bms__json j = { b, BMS_OK };

        bms__json_cstr(&j, res.failed->reason);
        rc = j.rc;
    }
    if (rc == BMS_OK) {
        rc = bms_buf_puts(b, "}");
    }
    reply_done(reply, 503, rc);
}


static void handle_model(const struct bms__context *ctx,
                         const struct bms__route *route,
                         struct bms__reply *reply)
{
    struct bms_sched_stats stats;
    const struct bms_sched_stats *st = NULL;
    struct resolved res;
    enum bms_status rc;

    if (resolve(ctx->repo, route, &res, reply) != 0) {
        return;
    }
    if (ctx->sched != NULL &&
        bms_sched_stats(ctx->sched, res.served, &stats) == BMS_OK) {
        st = &stats;
    }
    rc = bms_v2_model_metadata_stats(ctx->repo, res.served, st,
                                     &reply->body);
    if (rc != BMS_OK) {
        bms__reply_error(reply, bms__http_status(rc),
                         "model metadata could not be built");
        return;
    }
    reply->http_status = 200;
}


/* Answer a failed infer step with its message (or the status's name). */
static void reply_failed(struct bms__reply *reply, enum bms_status rc,
                         struct bms_diag *diag)
{
    if (diag->msg[0] == '\0') {
        snprintf(diag->msg, sizeof(diag->msg), "inference failed: %s",
                 bms_status_name(rc));
    }
    bms__reply_error(reply, bms__http_status(rc), diag->msg);
}


/* The Timeout-Ms header: 1 to 86400000 decimal digits' worth of
 * milliseconds.  Returns -1 when it is malformed. */
static int64_t parse_timeout_header(const char *s)
{
    int64_t v = 0;
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 9) {
            return -1;
        }
        v = v * 10 + (s[n] - '0');
    }
    return n == 0 || v == 0 || v > TIMEOUT_MAX_MS ? -1 : v;
}


/* The deadline of a call (0: none given).  Returns -1 after answering a
 * malformed Timeout-Ms header with 400. */
static int64_t call_deadline(const struct bms__context *ctx,
                             const struct bms_v2_call *call,
                             struct bms__reply *reply)
{
    int64_t ms = bms_v2_call_timeout_ms(call);

    if (ctx->timeout_header != NULL) {
        int64_t h = parse_timeout_header(ctx->timeout_header);

        if (h < 0) {
            bms__reply_error(reply, 400, "Timeout-Ms: expected an integer "
                             "in 1..86400000 (milliseconds)");
            return -1;
        }
        ms = ms == 0 || h < ms ? h : ms;
    }
    return ms > 0 ? ctx->start_us + ms * 1000 : 0;
}


/* A request the scheduler did not run: 504 past the deadline, else 503
 * (with Retry-After when the model is only busy). */
static void reply_refused(struct bms__reply *reply,
                          const struct bms_sched_result *result)
{
    switch (result->refusal) {
    case BMS_SCHED_DEADLINE:
        bms__reply_error(reply, 504, "deadline passed before the model "
                         "answered");
        return;
    case BMS_SCHED_QUEUE_FULL:
        bms__reply_error(reply, 503, "the model's queue is full");
        reply->retry_after_s = BMS_SCHED_RETRY_AFTER_S;
        return;
    case BMS_SCHED_OVER_LIMIT:
        bms__reply_error(reply, 503, "the model's concurrency limit is "
                         "reached");
        reply->retry_after_s = BMS_SCHED_RETRY_AFTER_S;
        return;
    case BMS_SCHED_STOPPING:
    case BMS_SCHED_ANSWERED:
        break;
    }
    bms__reply_error(reply, 503, "server is stopping");
}


/* Infer through the scheduler. */
static void infer_queued(const struct bms__context *ctx,
                         struct bms_served *served, const char *body,
                         size_t body_len, struct bms__reply *reply)
{
    struct bms_sched_result result;
    struct bms_v2_call *call = NULL;
    struct bms_diag diag;
    int64_t deadline_us;
    enum bms_status rc;

    diag.msg[0] = '\0';
    rc = bms_v2_call_parse(served, body, body_len, &call, &diag);
    if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
        return;
    }
    deadline_us = call_deadline(ctx, call, reply);
    if (deadline_us < 0) {
        bms_v2_call_destroy(call);
        return;
    }
    rc = bms_sched_infer(ctx->sched, served, bms_v2_call_inputs(call),
                         deadline_us, &result, &diag);
    if (rc == BMS_OK) {
        rc = bms_v2_call_respond(call, result.outputs, &reply->body, &diag);
    }
    if (rc == BMS_ERR_UNAVAILABLE) {
        reply_refused(reply, &result);
    } else if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
    } else {
        reply->http_status = 200;
    }
    bms_sched_result_fini(&result);
    bms_v2_call_destroy(call);
}


static void handle_infer(const struct bms__context *ctx,
                         const struct bms__route *route, const char *body,
                         size_t body_len, struct bms__reply *reply)
{
    struct bms_diag diag;
    struct resolved res;
    enum bms_status rc;

    if (resolve(ctx->repo, route, &res, reply) != 0) {
        return;
    }
    if (ctx->sched != NULL) {
        infer_queued(ctx, res.served, body, body_len, reply);
        return;
    }
    diag.msg[0] = '\0';
    rc = bms_v2_infer(res.served, body, body_len, &reply->body, &diag);
    if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
        return;
    }
    reply->http_status = 200;
}


void bms__handle(struct bms_repo *repo, const struct bms__route *route,
                 const char *method, const char *body, size_t body_len,
                 struct bms__reply *reply)
{
    struct bms__context ctx;

    memset(&ctx, 0, sizeof(ctx));
    ctx.repo = repo;
    ctx.start_us = bms_now_us();
    bms__handle_with(&ctx, route, method, body, body_len, reply);
}


void bms__handle_with(const struct bms__context *ctx,
                      const struct bms__route *route, const char *method,
                      const char *body, size_t body_len,
                      struct bms__reply *reply)
{
    struct bms_repo *repo = ctx->repo;
    const char *allowed = bms__route_method(route->kind);
    char msg[64];

    if (strcmp(method, allowed) != 0) {
        snprintf(msg, sizeof(msg), "method not allowed: use %s", allowed);
        bms__reply_error(reply, 405, msg);
        reply->allow = allowed;
        return;
    }
    switch (route->kind) {
    case BMS__ROUTE_LIVE:
        reply_done(reply, 200,
                   bms_buf_puts(&reply->body, "{\"live\": true}"));
        return;
    case BMS__ROUTE_READY:
        handle_ready(repo, reply);
        return;
    case BMS__ROUTE_SERVER:
        reply_done(reply, 200,
                   bms_buf_puts(&reply->body,
                                "{\"name\": \"bms\", \"version\": \""
                                BMS_VERSION "\", \"extensions\": "
                                "[\"classification\"]}"));
        return;
    case BMS__ROUTE_MODEL:
        handle_model(ctx, route, reply);
        return;
    case BMS__ROUTE_MODEL_READY:
        handle_model_ready(repo, route, reply);
        return;
    case BMS__ROUTE_INFER:
        handle_infer(ctx, route, body, body_len, reply);
        return;
    }
    bms__reply_error(reply, 404, "not found");
}
