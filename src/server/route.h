/*
 * The HTTP layer's pure parts, kept apart from libmicrohttpd so that they
 * can be tested without a socket: strict parsing of request paths, the
 * endpoint handlers that turn a route and a body into a status and a JSON
 * reply, the mapping of bms statuses to HTTP, request ids and logfmt
 * escaping.
 *
 * A parsed route only ever holds a model name made of [A-Za-z0-9_.-] and a
 * positive version, so nothing from the path reaches a message, a log line
 * or the store unchecked.
 */
#ifndef BMS_SERVER_ROUTE_H
#define BMS_SERVER_ROUTE_H

#include "bms/base.h"
#include "bms/repo.h"
#include "bms/sched.h"
#include "bms/store.h"

#define BMS__MODEL_NAME_MAX 127    /* characters, fits the store's field */
#define BMS__REQUEST_ID_LEN 16     /* hex digits */

enum bms__route_kind {
    BMS__ROUTE_LIVE = 1,       /* GET /v2/health/live */
    BMS__ROUTE_READY,          /* GET /v2/health/ready */
    BMS__ROUTE_SERVER,         /* GET /v2 */
    BMS__ROUTE_MODEL,          /* GET /v2/models/{name}[/versions/{v}] */
    BMS__ROUTE_MODEL_READY,    /* GET .../ready */
    BMS__ROUTE_INFER,          /* POST .../infer */
    BMS__ROUTE_ROUTING,        /* GET, PUT /v2/models/{name}/routing */
    BMS__ROUTE_MODEL_STOP,     /* POST .../stop (admin) */
    BMS__ROUTE_MODEL_RESUME,   /* POST .../resume (admin) */
    BMS__ROUTE_ALERTS,         /* GET /api/alerts */
    BMS__ROUTE_OPENAPI,        /* GET /openapi.json */
    BMS__ROUTE_DOCS,           /* GET /docs: the API, readable */
    BMS__ROUTE_KEYS,           /* GET, POST /api/keys */
    BMS__ROUTE_KEY,            /* GET, PUT, DELETE /api/keys/{id} */
    BMS__ROUTE_REQUESTS,       /* GET /api/requests */
    BMS__ROUTE_AUDIT,          /* GET /api/audit */
    BMS__ROUTE_MODEL_CONFIG,   /* GET, PUT /api/models/{name}/config */
    BMS__ROUTE_REPO_INDEX,     /* GET, POST /v2/repository/index */
    BMS__ROUTE_REPO_LOAD,      /* POST /v2/repository/models/{name}
                                * [/versions/{v}]/load */
    BMS__ROUTE_REPO_UNLOAD,    /* POST .../unload */
    BMS__ROUTE_PACKAGE         /* GET, PUT /v2/repository/models/{name}/
                                * package: download, upload */
};

/* Longest key id a path may carry (/api/keys/{id}). */
#define BMS__KEY_ID_MAX 63

struct bms__route {
    enum bms__route_kind kind;
    char model[BMS__MODEL_NAME_MAX + 1];  /* "" for the server routes */
    int64_t version;                      /* 0 when the path gives none */
    char key_id[BMS__KEY_ID_MAX + 1];     /* /api/keys/{id}; else "" */
};

/*
 * Parse a request path (without the query string) into *out.  Returns
 * BMS_ERR_NOT_FOUND for a path bms does not serve, BMS_ERR_INVALID with a
 * message for a known path whose model name or version is malformed (a
 * name of 1 to 127 characters from [A-Za-z0-9_.-]; a version of decimal
 * digits, positive, without leading zeros).  *out is written only on
 * success.  Thread-safe.
 */
enum bms_status bms__route_parse(const char *path, struct bms__route *out,
                                 struct bms_diag *diag);

/* The methods a route answers, as an Allow header gives them: "GET",
 * "POST", "GET, PUT", ... */
const char *bms__route_method(enum bms__route_kind kind);

/* Whether method on a route of this kind answers at all, and whether the
 * request carries a body to read first (every allowed method but GET and
 * DELETE).  Thread-safe. */
int bms__route_allows(enum bms__route_kind kind, const char *method);
int bms__route_takes_body(enum bms__route_kind kind, const char *method);

/* The HTTP status for a failed bms status (BMS_OK gives 200). */
int bms__http_status(enum bms_status rc);

/*
 * Write a new request id into out: 16 lowercase hex digits and a NUL, so
 * size must be at least 17.  Ids are unique within a process (a bijective
 * mix of an atomic counter and the start time) and unlikely to repeat
 * across restarts.  Thread-safe.
 */
void bms__request_id(char *out, size_t size);

/*
 * Copy the string s into out (size bytes, at least 1) as the inside of a
 * logfmt quoted value: quotes and backslashes escaped, control and
 * non-ASCII bytes as \xHH, cut short to fit.
 */
void bms__logfmt_escape(char *out, size_t size, const char *s);

/* Most extra headers one reply carries, and their sizes. */
#define BMS__REPLY_MAX_HEADERS 8
#define BMS__HEADER_NAME_MAX 40
#define BMS__HEADER_VALUE_MAX 160

struct bms__header {
    char name[BMS__HEADER_NAME_MAX];
    char value[BMS__HEADER_VALUE_MAX];
};

/* What a handler answers. */
struct bms__reply {
    int http_status;
    struct bms_buf body;       /* JSON unless content_type says; the
                                * caller frees it */
    const char *content_type;  /* static string; NULL: application/json */
    const char *allow;         /* the Allow header of a 405, else NULL */
    int64_t version;           /* the version that answered, 0 if none */
    int retry_after_s;         /* a Retry-After header when > 0 */
    int n_headers;             /* extra headers, added in order */
    struct bms__header headers[BMS__REPLY_MAX_HEADERS];
    char error[256];           /* the error message, "" on success */
};

/* Add a header to reply (names and values are cut to fit; past
 * BMS__REPLY_MAX_HEADERS the header is dropped and logged). */
void bms__reply_header(struct bms__reply *reply, const char *name,
                       const char *value);

/* What a handler may use besides the route and body. */
struct bms__routing;
struct bms__auth;          /* server/auth.h */

/* Who calls: the API key a request came with. */
enum bms__role {
    BMS__ROLE_NONE = 0,        /* no key: open routes only */
    BMS__ROLE_USER = 1,        /* inference and metadata */
    BMS__ROLE_ADMIN = 2        /* everything */
};

struct bms__principal {
    char key_id[64];           /* "" when no key (auth off or open) */
    char name[64];             /* the key's name, "" without one */
    enum bms__role role;
};
struct bms__cache;         /* server/cache.h */
struct bms_manager;        /* bms/manager.h */

/* A query string argument of the request ("model" in ?model=x), or
 * NULL when absent. */
typedef const char *(*bms__query_fn)(void *ud, const char *name);

/* The first query argument that is not one of allowed (a NULL-ended
 * list) or comes twice, copied into bad (size bytes); returns 1 then
 * and sets *repeated, else 0. */
typedef int (*bms__query_check_fn)(void *ud, const char *const *allowed,
                                   char *bad, size_t size, int *repeated);

struct bms__context {
    struct bms_repo *repo;
    struct bms_sched *sched;   /* NULL: infer runs on the caller's thread */
    struct bms__routing *routing;  /* NULL: no weighted routing */
    struct bms_store *store;   /* NULL: no alerts kept */
    const char *timeout_header;    /* the Timeout-Ms header, or NULL */
    const char *binary_header;     /* Inference-Header-Content-Length,
                                    * or NULL */
    int64_t start_us;          /* arrival (bms_now_us); deadlines count
                                * from it */
    struct bms__auth *auth;    /* NULL: no gateway (tests, offline) */
    const struct bms__principal *who;  /* the caller; NULL: anonymous */
    struct bms__cache *cache;  /* NULL: no response cache */
    struct bms_manager *manager;   /* NULL: the repository is fixed */
    bms__query_fn query;       /* NULL: no query string */
    bms__query_check_fn query_check;   /* NULL: not checked */
    void *query_ud;
    int64_t max_elements;      /* elements one input tensor may hold;
                                * 0: BMS__V2_MAX_ELEMS */
    int64_t max_request_ms;    /* cap on every infer deadline; 0: none */
    size_t max_body_size;      /* the server's body limit, bytes; bounds
                                * what a package unpacks to; 0: unknown */
    void (*arrived)(void *ud); /* called once an infer request is about to
                                * be queued (bms_sched_arrival_end); NULL:
                                * nothing to tell */
    void *arrived_ud;
};

/*
 * Answer one request: route (parsed), its method and body.  Writes the
 * status, body, Allow header, resolved version and error message into
 * *reply, which the caller zero-initialises and later releases with
 * bms_buf_fini(&reply->body).  Always produces a reply: when memory runs
 * out the body is a fixed 500 message.  Thread-safe as long as repo is.
 */
void bms__handle(struct bms_repo *repo, const struct bms__route *route,
                 const char *method, const char *body, size_t body_len,
                 struct bms__reply *reply);

/*
 * bms__handle with a context: with ctx->sched, infer requests go through
 * the scheduler with a deadline from `parameters.timeout_ms` or the
 * Timeout-Ms header (the earlier of the two; a malformed header is 400),
 * answering 503 with retry_after_s when shed and 504 past the deadline,
 * and model metadata carries the scheduler's counters.
 */
void bms__handle_with(const struct bms__context *ctx,
                      const struct bms__route *route, const char *method,
                      const char *body, size_t body_len,
                      struct bms__reply *reply);

/*
 * Answer with an error: status and {"error": msg}, msg also copied into
 * reply->error.
 */
void bms__reply_error(struct bms__reply *reply, int http_status,
                      const char *msg);


/*
 * Record a change made over the API in the store's audit trail: who
 * (ctx->who), action ("key.create", "model.load", "config.put", ...),
 * target (a model or key id) and detail (JSON or text, cut to fit).  A
 * failed write is logged, never answered.  No-op without a store.
 * Thread-safe.  (admin_api.c)
 */
void bms__audit(const struct bms__context *ctx, const char *action,
                const char *target, const char *detail);

#endif
