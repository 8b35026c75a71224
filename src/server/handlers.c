/*
 * The endpoint handlers: health, server and model metadata, readiness and
 * inference.  Each turns a parsed route into an HTTP status and a JSON
 * body, resolving the model version through the repository; the v2 JSON
 * work itself is bms_v2_*.  Nothing here knows about sockets.
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


static void handle_model(struct bms_repo *repo,
                         const struct bms__route *route,
                         struct bms__reply *reply)
{
    struct resolved res;
    enum bms_status rc;

    if (resolve(repo, route, &res, reply) != 0) {
        return;
    }
    rc = bms_v2_model_metadata(repo, res.served, &reply->body);
    if (rc != BMS_OK) {
        bms__reply_error(reply, bms__http_status(rc),
                         "model metadata could not be built");
        return;
    }
    reply->http_status = 200;
}


static void handle_infer(struct bms_repo *repo,
                         const struct bms__route *route, const char *body,
                         size_t body_len, struct bms__reply *reply)
{
    struct bms_diag diag;
    struct resolved res;
    enum bms_status rc;

    if (resolve(repo, route, &res, reply) != 0) {
        return;
    }
    diag.msg[0] = '\0';
    rc = bms_v2_infer(res.served, body, body_len, &reply->body, &diag);
    if (rc != BMS_OK) {
        if (diag.msg[0] == '\0') {
            snprintf(diag.msg, sizeof(diag.msg), "inference failed: %s",
                     bms_status_name(rc));
        }
        bms__reply_error(reply, bms__http_status(rc), diag.msg);
        return;
    }
    reply->http_status = 200;
}


void bms__handle(struct bms_repo *repo, const struct bms__route *route,
                 const char *method, const char *body, size_t body_len,
                 struct bms__reply *reply)
{
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
        handle_model(repo, route, reply);
        return;
    case BMS__ROUTE_MODEL_READY:
        handle_model_ready(repo, route, reply);
        return;
    case BMS__ROUTE_INFER:
        handle_infer(repo, route, body, body_len, reply);
        return;
    }
    bms__reply_error(reply, 404, "not found");
}
