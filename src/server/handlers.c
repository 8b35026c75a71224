/*
 * The endpoint handlers: health, server and model metadata, readiness and
 * inference.  Each turns a parsed route into an HTTP status and a JSON
 * body, resolving the model version through the repository; the v2 JSON
 * work itself is bms_v2_*.  Nothing here knows about sockets.
 *
 * With a scheduler, inference is parsed here, queued, waited for with its
 * deadline and answered here; without one it runs on this thread.  Both
 * take the binary tensor data extension: an Inference-Header-Content-Length
 * header splits the body into JSON and the inputs' bytes, and an answer
 * with binary outputs goes out as application/octet-stream with that
 * header giving its JSON part.
 *
 * Resolution order for a model route: an unknown name is 404; a named
 * version that is ready answers; a named version that failed to load is
 * 503 with its reason; any other named version is 404.  Without a version
 * the highest ready one answers, or 503 when every version failed; a
 * model with routing weights picks the version of an infer request by
 * weight among its ready versions (sched/routing.h).
 */
#include <stdio.h>
#include <string.h>

#include "bms/manager.h"
#include "bms/server.h"
#include "bms/v2.h"
#include "sched/routing.h"
#include "server/api.h"
#include "server/cache.h"
#include "server/route.h"
#include "server/v2_json.h"

static const char nomem_body[] = "{\"error\": \"out of memory\"}";

/* The most alerts GET /api/alerts lists. */
#define ALERTS_MAX 1000

/* The longest deadline a request may ask for: one day (milliseconds). */
#define TIMEOUT_MAX_MS ((int64_t)24 * 3600 * 1000)

/* One infer request's body as its headers split it, and how its answer
 * is split. */
struct infer_body {
    const char *body;
    size_t len;                  /* bytes */
    int64_t json_size;           /* Inference-Header-Content-Length; -1:
                                  * the body is JSON alone */
    int64_t answer_json_size;    /* the answer's JSON part when binary
                                  * data follows it; -1: JSON alone */
};

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


void bms__reply_header(struct bms__reply *reply, const char *name,
                       const char *value)
{
    struct bms__header *h;

    if (reply->n_headers == BMS__REPLY_MAX_HEADERS) {
        bms_log(BMS_LOG_WARN, "http", "msg=\"header dropped\" name=%s",
                name);
        return;
    }
    h = &reply->headers[reply->n_headers++];
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->value, sizeof(h->value), "%s", value);
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


/* Ready when some model version is: of the fixed repository, or of any
 * model the manager serves. */
static void handle_ready(const struct bms__context *ctx,
                         struct bms__reply *reply)
{
    int n = bms_repo_n_entries(ctx->repo);
    int ready = 0;

    for (int i = 0; i < n && !ready; i++) {
        ready = bms_repo_entry(ctx->repo, i)->state == BMS_ENTRY_READY;
    }
    if (ctx->manager != NULL) {
        ready = bms_manager_n_ready(ctx->manager) > 0;
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


/* The "routing" member of the model's metadata into extra (left empty
 * without a routing table). */
static enum bms_status routing_member(const struct bms__context *ctx,
                                      const struct bms__route *route,
                                      struct bms_buf *extra)
{
    enum bms_status rc;

    if (ctx->routing == NULL) {
        return BMS_OK;
    }
    rc = bms_buf_puts(extra, "\"routing\": ");
    if (rc == BMS_OK) {
        rc = bms__routing_json(ctx->routing, route->model, extra);
    }
    return rc;
}


/* The "cache" member of the model's metadata, after the members already
 * in extra: the manifest's settings and, with a server cache, the
 * model's counters (every version together). */
static enum bms_status cache_member(const struct bms__context *ctx,
                                    const struct bms_served *served,
                                    struct bms_buf *extra)
{
    const struct bms_manifest *m = bms_served_manifest(served);
    struct bms__json j = { extra, BMS_OK };
    struct bms__cache_stats st;

    if (m == NULL) {
        return BMS_OK;
    }
    bms__json_raw(&j, extra->len > 0 ? ", \"cache\": {\"enabled\": "
                                     : "\"cache\": {\"enabled\": ");
    bms__json_raw(&j, m->cache.enabled ? "true" : "false");
    if (m->cache.enabled) {
        bms__json_raw(&j, ", \"max_bytes\": ");
        bms__json_int(&j, m->cache.max_bytes);
        bms__json_raw(&j, ", \"ttl_s\": ");
        bms__json_int(&j, m->cache.ttl_s);
    }
    if (m->cache.enabled && ctx->cache != NULL) {
        bms__cache_stats(ctx->cache, bms_served_name(served), &st);
        bms__json_raw(&j, ", \"hits\": ");
        bms__json_int(&j, st.hits);
        bms__json_raw(&j, ", \"misses\": ");
        bms__json_int(&j, st.misses);
        bms__json_raw(&j, ", \"evictions\": ");
        bms__json_int(&j, st.evictions);
        bms__json_raw(&j, ", \"entries\": ");
        bms__json_int(&j, st.entries);
        bms__json_raw(&j, ", \"bytes\": ");
        bms__json_int(&j, st.bytes);
    }
    bms__json_raw(&j, "}");
    return j.rc;
}


static void handle_model(const struct bms__context *ctx,
                         const struct bms__route *route,
                         struct bms__reply *reply)
{
    struct bms_buf extra = {NULL, 0, 0};
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
    rc = routing_member(ctx, route, &extra);
    if (rc == BMS_OK) {
        rc = cache_member(ctx, res.served, &extra);
    }
    if (rc == BMS_OK) {
        rc = bms_v2_model_metadata_extra(ctx->repo, res.served, st,
                                         extra.data, &reply->body);
    }
    bms_buf_fini(&extra);
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
    if (ctx->max_request_ms > 0 && (ms == 0 || ms > ctx->max_request_ms)) {
        /* bms serve --max-request-ms: no request waits longer. */
        ms = ctx->max_request_ms;
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
    case BMS_SCHED_RESTARTING:
        bms__reply_error(reply, 503, "instance restarting");
        reply->retry_after_s = BMS_SCHED_RETRY_AFTER_S;
        return;
    case BMS_SCHED_UNHEALTHY:
    case BMS_SCHED_STOPPED:
        bms__reply_error(reply, 503, result->reason);
        return;
    case BMS_SCHED_STOPPING:
    case BMS_SCHED_ANSWERED:
        break;
    }
    bms__reply_error(reply, 503, "server is stopping");
}


/*
 * The Inference-Header-Content-Length header into b->json_size (-1
 * without it): decimal digits, spaces or tabs around them ignored, at
 * most the body's length.  Returns -1 after answering a malformed one
 * with 400.
 */
static int read_binary_header(const struct bms__context *ctx,
                              struct infer_body *b, struct bms__reply *reply)
{
    const char *s = ctx->binary_header;
    uint64_t v = 0;
    int too_long = 0;
    size_t n = 0;
    size_t digits;
    char msg[160];

    b->json_size = -1;
    b->answer_json_size = -1;
    if (s == NULL) {
        return 0;
    }
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    for (; s[n] >= '0' && s[n] <= '9'; n++) {
        if (!too_long) {     /* v <= body length here: no overflow */
            v = v * 10 + (uint64_t)(s[n] - '0');
            too_long = v > b->len;
        }
    }
    digits = n;
    while (digits > 0 && (s[n] == ' ' || s[n] == '\t')) {
        n++;
    }
    if (digits == 0 || s[n] != '\0') {
        bms__reply_error(reply, 400, "Inference-Header-Content-Length:"
                         " expected a decimal integer, the bytes of JSON"
                         " at the start of the body");
        return -1;
    }
    if (too_long) {
        snprintf(msg, sizeof(msg), "Inference-Header-Content-Length: %.*s%s"
                 " bytes, more than the body's %zu",
                 digits > 24 ? 24 : (int)digits, s,
                 digits > 24 ? "..." : "", b->len);
        bms__reply_error(reply, 400, msg);
        return -1;
    }
    b->json_size = (int64_t)v;
    return 0;
}


/* Parse and bind the body as its header splits it. */
static enum bms_status parse_call(const struct bms__context *ctx,
                                  struct bms_served *served,
                                  const struct infer_body *b,
                                  struct bms_v2_call **call,
                                  struct bms_diag *diag)
{
    if (b->json_size < 0) {
        return bms_v2_call_parse_limited(served, b->body, b->len,
                                         ctx->max_elements, call, diag);
    }
    return bms_v2_call_parse_binary(served, b->body, b->len,
                                    (size_t)b->json_size, ctx->max_elements,
                                    call, diag);
}


/* A 200 whose body is in the reply; a binary one (answer_json_size >= 0)
 * says so in its Content-Type and where its JSON ends. */
static void reply_answer(struct bms__reply *reply, int64_t answer_json_size)
{
    char text[32];

    reply->http_status = 200;
    if (answer_json_size < 0) {
        return;
    }
    reply->content_type = "application/octet-stream";
    snprintf(text, sizeof(text), "%lld", (long long)answer_json_size);
    bms__reply_header(reply, "Inference-Header-Content-Length", text);
}


/* Answer a call that ran: json_size is its answer's JSON part. */
static void reply_ran(struct bms__reply *reply,
                      const struct bms_v2_call *call, size_t json_size,
                      struct infer_body *b)
{
    b->answer_json_size = bms_v2_call_binary_answer(call)
                          ? (int64_t)json_size : -1;
    reply_answer(reply, b->answer_json_size);
}


/* Infer on this thread, without a scheduler. */
static void infer_direct(const struct bms__context *ctx,
                         struct bms_served *served, struct infer_body *b,
                         struct bms__reply *reply)
{
    struct bms_v2_call *call = NULL;
    struct bms_diag diag;
    size_t json_size = 0;
    enum bms_status rc;

    diag.msg[0] = '\0';
    rc = parse_call(ctx, served, b, &call, &diag);
    if (rc == BMS_OK) {
        rc = bms_v2_call_run(call, &reply->body, &json_size, &diag);
    }
    if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
    } else {
        reply_ran(reply, call, json_size, b);
    }
    bms_v2_call_destroy(call);
}


/* Infer through the scheduler. */
static void infer_queued(const struct bms__context *ctx,
                         struct bms_served *served, struct infer_body *b,
                         struct bms__reply *reply)
{
    struct bms_sched_result result;
    struct bms_v2_call *call = NULL;
    struct bms_diag diag;
    size_t json_size = 0;
    int64_t deadline_us;
    enum bms_status rc;

    diag.msg[0] = '\0';
    rc = parse_call(ctx, served, b, &call, &diag);
    if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
        return;
    }
    deadline_us = call_deadline(ctx, call, reply);
    if (deadline_us < 0) {
        bms_v2_call_destroy(call);
        return;
    }
    if (ctx->arrived != NULL) {
        ctx->arrived(ctx->arrived_ud);
    }
    rc = bms_sched_infer(ctx->sched, served, bms_v2_call_inputs(call),
                         deadline_us, &result, &diag);
    if (rc == BMS_OK) {
        rc = bms_v2_call_respond(call, result.outputs, &reply->body,
                                 &json_size, &diag);
    }
    if (rc == BMS_ERR_UNAVAILABLE) {
        reply_refused(reply, &result);
    } else if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
    } else {
        reply_ran(reply, call, json_size, b);
    }
    bms_sched_result_fini(&result);
    bms_v2_call_destroy(call);
}


/*
 * Whether a version takes routed requests: it loaded and, with the
 * scheduler, is serving (not stopped, some instance healthy), or QoS
 * stopped it and its trial is due, so that a version reached only through
 * routing gets its trial too.  (Two requests routed at once may both see
 * the trial due: the second is then refused as stopped.)
 */
static int version_ready(void *arg, const char *name, int64_t version)
{
    const struct bms__context *ctx = arg;
    struct bms_served *served = bms_repo_find(ctx->repo, name, version);
    struct bms_sched_stats st;

    if (served == NULL) {
        return 0;
    }
    if (ctx->sched == NULL ||
        bms_sched_stats(ctx->sched, served, &st) != BMS_OK) {
        return 1;
    }
    return st.serving || st.trial_due;
}


/*
 * The route an infer request without a version takes: *picked with the
 * version the model's weights draw (unchanged without weights).  Returns
 * non-zero after answering 503 when no weighted version is ready.
 */
static int route_by_weight(const struct bms__context *ctx,
                           const struct bms__route *route,
                           struct bms__route *picked,
                           struct bms__reply *reply)
{
    int64_t version = 0;
    char msg[256];

    *picked = *route;
    if (bms__routing_pick(ctx->routing, route->model, version_ready,
                          (void *)ctx, &version) != BMS_OK) {
        snprintf(msg, sizeof(msg), "model '%s': no version with a routing "
                 "weight is ready", route->model);
        bms__reply_error(reply, 503, msg);
        return -1;
    }
    picked->version = version;
    return 0;
}


/* ---- the response cache (server/cache.h) ---- */

/*
 * Whether infer answers of served go through the cache: the server has
 * one, the version's manifest turns it on, and the version is serving
 * (a version stopped by QoS or an admin answers nothing, not even from
 * the cache).  Every infer answer of bms is a function of the loaded
 * version and the body bytes alone (no sampling, no clock, no request
 * parameter that varies with time), so nothing else needs to keep a
 * request out; one that does must bypass the cache here.
 */
static int cache_applies(const struct bms__context *ctx,
                         const struct bms_served *served)
{
    const struct bms_manifest *m = bms_served_manifest(served);
    struct bms_sched_stats st;

    if (ctx->cache == NULL || m == NULL || !m->cache.enabled) {
        return 0;
    }
    if (ctx->timeout_header != NULL &&
        parse_timeout_header(ctx->timeout_header) < 0) {
        return 0;    /* the run answers the malformed header with 400 */
    }
    return ctx->sched == NULL ||
           bms_sched_stats(ctx->sched, served, &st) != BMS_OK || st.serving;
}


/* The key of a body: its bytes and how the header splits them, so that
 * the same bytes under another Inference-Header-Content-Length (or none)
 * are another request. */
static void cache_key(struct bms__cache_key *key,
                      const struct bms_served *served,
                      const struct infer_body *b)
{
    bms__cache_key_init(key, bms_served_name(served),
                        bms_served_serial(served), b->body, b->len,
                        b->json_size);
}


/* Answer from the cache when it holds the body's answer: 200 with the
 * stored body, its binary headers as when it was computed, and X-Cache:
 * hit.  Returns 1 when it answered. */
static int cache_hit(const struct bms__context *ctx,
                     const struct bms_served *served,
                     const struct infer_body *b, struct bms__reply *reply)
{
    struct bms__cache_key key;
    int64_t answer_json_size = -1;

    cache_key(&key, served, b);
    bms_buf_reset(&reply->body);
    if (bms__cache_get(ctx->cache, &key, &reply->body, &answer_json_size)
        != BMS_OK) {
        bms_buf_reset(&reply->body);
        return 0;
    }
    reply_answer(reply, answer_json_size);
    bms__reply_header(reply, "X-Cache", "hit");
    return 1;
}


/* After running: keep a successful answer with its split; mark the reply
 * a miss. */
static void cache_keep(const struct bms__context *ctx,
                       const struct bms_served *served,
                       const struct infer_body *b, struct bms__reply *reply)
{
    struct bms__cache_key key;

    bms__reply_header(reply, "X-Cache", "miss");
    if (reply->http_status != 200) {
        return;
    }
    cache_key(&key, served, b);
    if (bms__cache_put(ctx->cache, &key, reply->body.data, reply->body.len,
                       b->answer_json_size,
                       &bms_served_manifest(served)->cache) != BMS_OK) {
        bms_log(BMS_LOG_WARN, "cache", "msg=\"answer not kept\" model=%s "
                "error=nomem", bms_served_name(served));
    }
}


static void handle_infer(const struct bms__context *ctx,
                         const struct bms__route *route, const char *body,
                         size_t body_len, struct bms__reply *reply)
{
    struct infer_body b = {body, body_len, -1, -1};
    struct bms__route picked;
    struct resolved res;
    int cached;

    if (route->version == 0 && ctx->routing != NULL &&
        bms_repo_has_model(ctx->repo, route->model)) {
        if (route_by_weight(ctx, route, &picked, reply) != 0) {
            return;
        }
        route = &picked;
    }
    if (resolve(ctx->repo, route, &res, reply) != 0 ||
        read_binary_header(ctx, &b, reply) != 0) {
        return;
    }
    cached = cache_applies(ctx, res.served);
    if (cached && cache_hit(ctx, res.served, &b, reply)) {
        return;
    }
    if (ctx->sched != NULL) {
        infer_queued(ctx, res.served, &b, reply);
    } else {
        infer_direct(ctx, res.served, &b, reply);
    }
    if (cached) {
        cache_keep(ctx, res.served, &b, reply);
    }
}


/* Replace the model's weights with the body's; 400 names the field. */
static void put_routing(const struct bms__context *ctx,
                        const struct bms__route *route, const char *body,
                        size_t body_len, struct bms__reply *reply)
{
    struct bms_routing_weights weights;
    struct bms_diag diag;
    char text[512];
    enum bms_status rc;
    size_t n = 0;

    diag.msg[0] = '\0';
    rc = bms_routing_weights_parse(body, body_len, &weights, &diag);
    if (rc == BMS_OK) {
        rc = bms__routing_set(ctx->routing, route->model, &weights, &diag);
    }
    if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
        return;
    }
    text[0] = '\0';
    for (int k = 0; k < weights.n_weights && n < sizeof(text) - 48; k++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%lld:%d",
                              k > 0 ? "," : "",
                              (long long)weights.versions[k],
                              weights.weights[k]);
    }
    bms_log(BMS_LOG_INFO, "routing", "msg=\"routing changed\" model=%s "
            "weights=\"%s\"", route->model, text);
    bms__audit(ctx, "routing.put", route->model, text);
}


/* GET and PUT /v2/models/{name}/routing: the weights in force. */
static void handle_routing(const struct bms__context *ctx,
                           const struct bms__route *route,
                           const char *method, const char *body,
                           size_t body_len, struct bms__reply *reply)
{
    char msg[256];

    if (!bms_repo_has_model(ctx->repo, route->model) ||
        ctx->routing == NULL) {
        snprintf(msg, sizeof(msg), "model '%s' not found", route->model);
        bms__reply_error(reply, 404, msg);
        return;
    }
    if (strcmp(method, "PUT") == 0) {
        put_routing(ctx, route, body, body_len, reply);
        if (reply->http_status != 0) {
            return;
        }
    }
    reply_done(reply, 200, bms__routing_json(ctx->routing, route->model,
                                             &reply->body));
}


/* ---- serving state: readiness, admin stop and resume, alerts ---- */

/* {"name", "version", "ready": false, "reason"} with 503. */
static void reply_not_serving(struct bms__reply *reply, const char *model,
                              const char *reason)
{
    struct bms__json j = { &reply->body, BMS_OK };

    bms_buf_reset(&reply->body);
    bms__json_raw(&j, "{\"name\": ");
    bms__json_cstr(&j, model);
    bms__json_raw(&j, ", \"version\": \"");
    bms__json_int(&j, reply->version);
    bms__json_raw(&j, "\", \"ready\": false, \"reason\": ");
    bms__json_cstr(&j, reason);
    bms__json_raw(&j, "}");
    reply_done(reply, 503, j.rc);
    snprintf(reply->error, sizeof(reply->error), "%s", reason);
}


/* Readiness as the scheduler sees it too: a version stopped (QoS or an
 * admin) or without a healthy instance is not ready. */
static void handle_serving_ready(const struct bms__context *ctx,
                                 const struct bms__route *route,
                                 struct bms__reply *reply)
{
    struct bms_sched_stats st;
    struct bms_served *served;

    handle_model_ready(ctx->repo, route, reply);
    if (reply->http_status != 200 || ctx->sched == NULL) {
        return;
    }
    served = bms_repo_find(ctx->repo, route->model, reply->version);
    if (served != NULL &&
        bms_sched_stats(ctx->sched, served, &st) == BMS_OK && !st.serving) {
        reply_not_serving(reply, route->model, st.reason);
    }
}


/* POST .../stop and .../resume: by hand, with an alert. */
static void handle_admin(const struct bms__context *ctx,
                         const struct bms__route *route, int stop,
                         struct bms__reply *reply)
{
    struct bms_sched_stats st;
    struct bms_diag diag;
    struct resolved res;
    enum bms_status rc;

    if (resolve(ctx->repo, route, &res, reply) != 0) {
        return;
    }
    if (ctx->sched == NULL) {
        bms__reply_error(reply, 503, "no scheduler: nothing to stop");
        return;
    }
    diag.msg[0] = '\0';
    rc = stop ? bms_sched_stop(ctx->sched, res.served, &diag)
              : bms_sched_resume(ctx->sched, res.served, &diag);
    if (rc == BMS_OK) {
        rc = bms_sched_stats(ctx->sched, res.served, &st);
    }
    if (rc != BMS_OK) {
        reply_failed(reply, rc, &diag);
        return;
    }
    snprintf(diag.msg, sizeof(diag.msg), "{\"version\": %lld}",
             (long long)reply->version);
    bms__audit(ctx, stop ? "model.stop" : "model.resume", route->model,
               diag.msg);
    rc = bms_buf_printf(&reply->body, "{\"name\": \"%s\", \"version\": "
                        "\"%lld\", \"stopped\": %s}", route->model,
                        (long long)reply->version,
                        st.serving ? "false" : "true");
    reply_done(reply, 200, rc);
}


/* The alerts list being written. */
struct alert_list {
    struct bms__json j;
    int n;
};


/* One alert as a JSON object, after a comma but for the first. */
static int alert_json(void *ud, const struct bms_alert *a)
{
    struct alert_list *list = ud;
    struct bms__json *j = &list->j;

    bms__json_raw(j, list->n++ > 0 ? ", {" : "{");
    bms__json_raw(j, "\"id\": ");
    bms__json_int(j, a->id);
    bms__json_raw(j, ", \"ts_us\": ");
    bms__json_int(j, a->ts_us);
    bms__json_raw(j, ", \"model\": ");
    bms__json_cstr(j, a->model);
    bms__json_raw(j, ", \"version\": ");
    bms__json_int(j, a->version);
    bms__json_raw(j, ", \"kind\": ");
    bms__json_cstr(j, a->kind);
    bms__json_raw(j, ", \"message\": ");
    bms__json_cstr(j, a->message);
    bms__json_raw(j, "}");
    return j->rc != BMS_OK;
}


/* GET /api/alerts: the latest alerts, newest first. */
static void handle_alerts(const struct bms__context *ctx,
                          struct bms__reply *reply)
{
    struct alert_list list = { { &reply->body, BMS_OK }, 0 };
    struct bms__json *j = &list.j;
    struct bms_diag diag;
    enum bms_status rc;

    if (ctx->store == NULL) {
        bms__reply_error(reply, 503, "no store: alerts are not kept");
        return;
    }
    diag.msg[0] = '\0';
    bms__json_raw(j, "{\"alerts\": [");
    rc = j->rc;
    if (rc == BMS_OK) {
        rc = bms_store_list_alerts(ctx->store, ALERTS_MAX, alert_json,
                                   &list, &diag);
    }
    if (rc == BMS_OK) {
        bms__json_raw(j, "]}");
        rc = j->rc;
    }
    if (rc == BMS_ERR_IO) {
        bms_log(BMS_LOG_ERROR, "http", "msg=\"alerts not listed\" "
                "error=\"%s\"", diag.msg);
        bms__reply_error(reply, 500, "alerts could not be read");
        return;
    }
    reply_done(reply, 200, rc);
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
    const char *allowed = bms__route_method(route->kind);
    char msg[64];

    if (!bms__route_allows(route->kind, method)) {
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
        handle_ready(ctx, reply);
        return;
    case BMS__ROUTE_SERVER:
        reply_done(reply, 200,
                   bms_buf_puts(&reply->body,
                                "{\"name\": \"bms\", \"version\": \""
                                BMS_VERSION "\", \"extensions\": "
                                "[\"classification\", "
                                "\"binary_tensor_data\"]}"));
        return;
    case BMS__ROUTE_MODEL:
        handle_model(ctx, route, reply);
        return;
    case BMS__ROUTE_MODEL_READY:
        handle_serving_ready(ctx, route, reply);
        return;
    case BMS__ROUTE_INFER:
        handle_infer(ctx, route, body, body_len, reply);
        return;
    case BMS__ROUTE_ROUTING:
        handle_routing(ctx, route, method, body, body_len, reply);
        return;
    case BMS__ROUTE_MODEL_STOP:
    case BMS__ROUTE_MODEL_RESUME:
        handle_admin(ctx, route, route->kind == BMS__ROUTE_MODEL_STOP,
                     reply);
        return;
    case BMS__ROUTE_ALERTS:
        handle_alerts(ctx, reply);
        return;
    case BMS__ROUTE_OPENAPI:
        bms__handle_openapi(ctx, reply);
        return;
    case BMS__ROUTE_DOCS:
        bms__handle_docs(ctx, reply);
        return;
    case BMS__ROUTE_KEYS:
    case BMS__ROUTE_KEY:
        bms__handle_keys(ctx, route, method, body, body_len, reply);
        return;
    case BMS__ROUTE_REQUESTS:
        bms__handle_requests(ctx, reply);
        return;
    case BMS__ROUTE_AUDIT:
        bms__handle_audit(ctx, reply);
        return;
    case BMS__ROUTE_MODEL_CONFIG:
        bms__handle_model_config(ctx, route, method, body, body_len, reply);
        return;
    case BMS__ROUTE_REPO_INDEX:
        bms__handle_repo_index(ctx, reply);
        return;
    case BMS__ROUTE_REPO_LOAD:
    case BMS__ROUTE_REPO_UNLOAD:
        bms__handle_repo_load(ctx, route, route->kind == BMS__ROUTE_REPO_LOAD,
                              body, body_len, reply);
        return;
    case BMS__ROUTE_PACKAGE:
        bms__handle_package(ctx, route, method, body, body_len, reply);
        return;
    }
    bms__reply_error(reply, 404, "not found");
}
