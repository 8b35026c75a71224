/*
 * Request paths, statuses and ids for the HTTP server.  The path grammar
 * is the Open Inference Protocol's REST one:
 *
 *     /v2
 *     /v2/health/live
 *     /v2/health/ready
 *     /v2/models/{name}[/versions/{v}]
 *     /v2/models/{name}[/versions/{v}]/ready
 *     /v2/models/{name}[/versions/{v}]/infer
 *     /v2/models/{name}/routing
 *     /v2/models/{name}[/versions/{v}]/stop
 *     /v2/models/{name}[/versions/{v}]/resume
 *     /api/alerts
 *     /api/keys, /api/keys/{id}
 *     /api/requests, /api/audit
 *     /api/models/{name}/config
 *     /v2/repository/index
 *     /v2/repository/models/{name}[/versions/{v}]/load, .../unload
 *     /v2/repository/models/{name}/package
 *     /openapi.json, /docs
 *
 * Parsing is strict: no empty segment, no trailing slash, only the
 * characters a model folder may be named with.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/route.h"

#define MAX_SEGMENTS 7
#define VERSION_MAX_DIGITS 18   /* keeps the value inside int64_t */

/* One piece of the path between slashes; points into the path. */
struct segment {
    const char *s;
    size_t len;
};

static atomic_uint_fast64_t id_counter;
static uint64_t id_seed;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;


/*
 * Split path ("/a/b") into segments.  Returns the count, or -1 when the
 * path does not start with '/', has an empty segment or too many.
 */
static int split_path(const char *path, struct segment *segs, int max)
{
    const char *p = path;
    int n = 0;

    if (p[0] != '/') {
        return -1;
    }
    while (*p == '/') {
        const char *start = p + 1;
        const char *end = strchr(start, '/');

        if (end == NULL) {
            end = start + strlen(start);
        }
        if (end == start || n == max) {
            return -1;
        }
        segs[n].s = start;
        segs[n].len = (size_t)(end - start);
        n++;
        p = end;
    }
    return n;
}


static int seg_is(const struct segment *seg, const char *word)
{
    size_t len = strlen(word);

    return seg->len == len && memcmp(seg->s, word, len) == 0;
}


static int name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}


static enum bms_status parse_name(const struct segment *seg, char *out,
                                  struct bms_diag *diag)
{
    if (seg->len > BMS__MODEL_NAME_MAX) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "model name: longer than %d characters",
                            BMS__MODEL_NAME_MAX);
    }
    for (size_t i = 0; i < seg->len; i++) {
        if (!name_char_ok(seg->s[i])) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "model name: character %zu is not one of "
                                "A-Z a-z 0-9 _ . -", i + 1);
        }
    }
    if (!bms_model_name_valid(seg->s, seg->len)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "model name: may not start with '.'");
    }
    memcpy(out, seg->s, seg->len);
    out[seg->len] = '\0';
    return BMS_OK;
}


/* Whether a segment is short and plain enough to be echoed in a message. */
static int seg_echoable(const struct segment *seg)
{
    if (seg->len > 32) {
        return 0;
    }
    for (size_t i = 0; i < seg->len; i++) {
        if (!name_char_ok(seg->s[i])) {
            return 0;
        }
    }
    return 1;
}


static enum bms_status parse_version(const struct segment *seg,
                                     int64_t *out, struct bms_diag *diag)
{
    int64_t v = 0;
    int ok = seg->len > 0 && seg->len <= VERSION_MAX_DIGITS &&
             seg->s[0] != '0';

    for (size_t i = 0; i < seg->len && ok; i++) {
        ok = seg->s[i] >= '0' && seg->s[i] <= '9';
        v = v * 10 + (seg->s[i] - '0');
    }
    if (ok) {
        *out = v;
        return BMS_OK;
    }
    if (!seg_echoable(seg)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "version: expected a positive integer");
    }
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "version '%.*s': expected a positive integer",
                        (int)seg->len, seg->s);
}


/* The part after /v2/models/{name}: "", "/ready", "/infer", each with an
 * optional "/versions/{v}" in front. */
static enum bms_status parse_model_tail(const struct segment *segs, int n,
                                        struct bms__route *route,
                                        struct bms_diag *diag)
{
    int versioned = n >= 2 && seg_is(&segs[0], "versions");
    int i = versioned ? 2 : 0;

    if (n - i == 0) {
        route->kind = BMS__ROUTE_MODEL;
    } else if (n - i == 1 && seg_is(&segs[i], "ready")) {
        route->kind = BMS__ROUTE_MODEL_READY;
    } else if (n - i == 1 && seg_is(&segs[i], "infer")) {
        route->kind = BMS__ROUTE_INFER;
    } else if (n - i == 1 && seg_is(&segs[i], "stop")) {
        route->kind = BMS__ROUTE_MODEL_STOP;
    } else if (n - i == 1 && seg_is(&segs[i], "resume")) {
        route->kind = BMS__ROUTE_MODEL_RESUME;
    } else if (n == 1 && seg_is(&segs[0], "routing")) {
        route->kind = BMS__ROUTE_ROUTING;
    } else {
        return BMS_ERR_NOT_FOUND;
    }
    if (!versioned) {
        return BMS_OK;
    }
    return parse_version(&segs[1], &route->version, diag);
}


/* A key id: 1 to BMS__KEY_ID_MAX characters of [A-Za-z0-9_-]. */
static enum bms_status parse_key_id(const struct segment *seg, char *out,
                                    struct bms_diag *diag)
{
    int ok = seg->len > 0 && seg->len <= BMS__KEY_ID_MAX;

    for (size_t i = 0; i < seg->len && ok; i++) {
        ok = name_char_ok(seg->s[i]) && seg->s[i] != '.';
    }
    if (!ok) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "key id: expected 1 to %d characters of "
                            "A-Z a-z 0-9 _ -", BMS__KEY_ID_MAX);
    }
    memcpy(out, seg->s, seg->len);
    out[seg->len] = '\0';
    return BMS_OK;
}


/* /api/...: segs[0] is "api". */
static enum bms_status parse_api(const struct segment *segs, int n,
                                 struct bms__route *route,
                                 struct bms_diag *diag)
{
    if (n == 2 && seg_is(&segs[1], "alerts")) {
        route->kind = BMS__ROUTE_ALERTS;
    } else if (n == 2 && seg_is(&segs[1], "keys")) {
        route->kind = BMS__ROUTE_KEYS;
    } else if (n == 3 && seg_is(&segs[1], "keys")) {
        route->kind = BMS__ROUTE_KEY;
        return parse_key_id(&segs[2], route->key_id, diag);
    } else if (n == 2 && seg_is(&segs[1], "requests")) {
        route->kind = BMS__ROUTE_REQUESTS;
    } else if (n == 2 && seg_is(&segs[1], "audit")) {
        route->kind = BMS__ROUTE_AUDIT;
    } else if (n == 4 && seg_is(&segs[1], "models") &&
               seg_is(&segs[3], "config")) {
        route->kind = BMS__ROUTE_MODEL_CONFIG;
        return parse_name(&segs[2], route->model, diag);
    } else {
        return BMS_ERR_NOT_FOUND;
    }
    return BMS_OK;
}


/* /v2/repository/...: segs[0..1] are "v2", "repository". */
static enum bms_status parse_repository(const struct segment *segs, int n,
                                        struct bms__route *route,
                                        struct bms_diag *diag)
{
    int versioned = n == 7 && seg_is(&segs[4], "versions");
    int last = n - 1;
    enum bms_status rc;

    if (n == 3 && seg_is(&segs[2], "index")) {
        route->kind = BMS__ROUTE_REPO_INDEX;
        return BMS_OK;
    }
    if (n < 5 || !seg_is(&segs[2], "models") || (n != 5 && !versioned)) {
        return BMS_ERR_NOT_FOUND;
    }
    if (seg_is(&segs[last], "load")) {
        route->kind = BMS__ROUTE_REPO_LOAD;
    } else if (seg_is(&segs[last], "unload")) {
        route->kind = BMS__ROUTE_REPO_UNLOAD;
    } else if (!versioned && seg_is(&segs[last], "package")) {
        route->kind = BMS__ROUTE_PACKAGE;
    } else {
        return BMS_ERR_NOT_FOUND;
    }
    rc = parse_name(&segs[3], route->model, diag);
    if (rc == BMS_OK && versioned) {
        rc = parse_version(&segs[5], &route->version, diag);
    }
    return rc;
}


enum bms_status bms__route_parse(const char *path, struct bms__route *out,
                                 struct bms_diag *diag)
{
    struct segment segs[MAX_SEGMENTS];
    struct bms__route route;
    enum bms_status rc;
    int n = split_path(path, segs, MAX_SEGMENTS);

    memset(&route, 0, sizeof(route));
    if (n >= 2 && seg_is(&segs[0], "api")) {
        rc = parse_api(segs, n, &route, diag);
        if (rc == BMS_OK) {
            *out = route;
        }
        return rc;
    }
    if (n == 1 && seg_is(&segs[0], "openapi.json")) {
        route.kind = BMS__ROUTE_OPENAPI;
        *out = route;
        return BMS_OK;
    }
    if (n == 1 && seg_is(&segs[0], "docs")) {
        route.kind = BMS__ROUTE_DOCS;
        *out = route;
        return BMS_OK;
    }
    if (n < 1 || !seg_is(&segs[0], "v2")) {
        return BMS_ERR_NOT_FOUND;
    }
    if (n == 1) {
        route.kind = BMS__ROUTE_SERVER;
    } else if (n == 3 && seg_is(&segs[1], "health")) {
        if (seg_is(&segs[2], "live")) {
            route.kind = BMS__ROUTE_LIVE;
        } else if (seg_is(&segs[2], "ready")) {
            route.kind = BMS__ROUTE_READY;
        } else {
            return BMS_ERR_NOT_FOUND;
        }
    } else if (n >= 3 && seg_is(&segs[1], "repository")) {
        rc = parse_repository(segs, n, &route, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    } else if (n >= 3 && seg_is(&segs[1], "models")) {
        /* Decide the path is known before judging the name in it. */
        rc = parse_model_tail(segs + 3, n - 3, &route, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        rc = parse_name(&segs[2], route.model, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    } else {
        return BMS_ERR_NOT_FOUND;
    }
    *out = route;
    return BMS_OK;
}


const char *bms__route_method(enum bms__route_kind kind)
{
    switch (kind) {
    case BMS__ROUTE_ROUTING:
    case BMS__ROUTE_MODEL_CONFIG:
    case BMS__ROUTE_PACKAGE:
        return "GET, PUT";
    case BMS__ROUTE_KEYS:
    case BMS__ROUTE_REPO_INDEX:
        return "GET, POST";
    case BMS__ROUTE_KEY:
        return "GET, PUT, DELETE";
    case BMS__ROUTE_INFER:
    case BMS__ROUTE_MODEL_STOP:
    case BMS__ROUTE_MODEL_RESUME:
    case BMS__ROUTE_REPO_LOAD:
    case BMS__ROUTE_REPO_UNLOAD:
        return "POST";
    default:
        return "GET";
    }
}


int bms__route_allows(enum bms__route_kind kind, const char *method)
{
    const char *list = bms__route_method(kind);
    size_t n = strlen(method);

    /* list is ", "-separated; method must equal one entry. */
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len == n && n > 0 && memcmp(p, method, n) == 0) {
            return 1;
        }
        if (end == NULL) {
            break;
        }
        p = end + 2;
    }
    return 0;
}


int bms__route_takes_body(enum bms__route_kind kind, const char *method)
{
    return bms__route_allows(kind, method) && strcmp(method, "GET") != 0 &&
           strcmp(method, "DELETE") != 0;
}


int bms__http_status(enum bms_status rc)
{
    switch (rc) {
    case BMS_OK: return 200;
    case BMS_ERR_INVALID: return 400;
    case BMS_ERR_UNSUPPORTED: return 400;
    case BMS_ERR_NOT_FOUND: return 404;
    case BMS_ERR_LIMIT: return 413;
    case BMS_ERR_UNAVAILABLE: return 503;
    case BMS_ERR_NOMEM:
    case BMS_ERR_IO:
    case BMS_ERR_INTERNAL:
        return 500;
    }
    return 500;
}


/* SplitMix64's finaliser: a bijection on 64-bit words, so distinct
 * counter values always give distinct ids. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}


static void id_init(void)
{
    id_seed = (uint64_t)bms_wall_us() ^ ((uint64_t)getpid() << 40);
}


void bms__request_id(char *out, size_t size)
{
    uint64_t n;

    pthread_once(&id_once, id_init);
    n = atomic_fetch_add(&id_counter, 1);
    snprintf(out, size, "%016llx", (unsigned long long)mix64(id_seed + n));
}


/* Copy s into out (size bytes) as the inside of a logfmt quoted value:
 * quotes and backslashes escaped, other odd bytes as \xHH, cut to fit. */
void bms__logfmt_escape(char *out, size_t size, const char *s)
{
    size_t j = 0;

    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[5];
        size_t n;

        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
            n = 4;
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        if (j + n + 1 > size) {
            break;
        }
        memcpy(out + j, tmp, n);
        j += n;
    }
    out[j] = '\0';
}
