/*
 * The HTTP server on GNU libmicrohttpd: a pool of threads, each polling
 * its share of the connections and answering requests to completion.
 *
 * Every request gets a struct request on the handler's first call; it
 * collects the body (bounded by max_body_size), carries the id, timing and
 * outcome, and is freed by the completion callback, which also writes the
 * access log line and, for inference, the request record.  So each request
 * is logged and recorded exactly once, however it ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "bms/manager.h"
#include "bms/server.h"
#include "sched/routing.h"
#include "server/auth.h"
#include "server/cache.h"
#include "server/gzip.h"
#include "server/route.h"
#include "server/tls.h"

#define DEFAULT_MAX_BODY_SIZE ((size_t)64 << 20)   /* bytes */
#define CONNECTION_TIMEOUT_S 10u     /* idle or stalled connections */
#define CONNECTION_LIMIT 1024u
#define CLIENT_CONNECTIONS 256u      /* default per client address */
#define MAX_THREADS 256
#define QUEUED_THREADS 64            /* default with a scheduler */
#define BINARY_HEADER "Inference-Header-Content-Length"
#define DRAIN_TIMEOUT_US 5000000     /* wait for requests in flight */
#define LOG_PATH_MAX 200             /* path characters kept for the log */
#define GZIP_MIN_SIZE 1024           /* bytes: smaller replies go plain */
#define GZIP_LEVEL 6                 /* zlib's default trade-off */
#define DEFAULT_MAX_HEADER_SIZE ((size_t)32 << 10)  /* bytes */
#define MIN_HEADER_SIZE ((size_t)4 << 10)  /* room for bms's own answers */
#define MAX_HEADER_SIZE ((size_t)16 << 20)

struct bms_server {
    struct MHD_Daemon *daemon;
    struct bms_repo *repo;
    struct bms_sched *sched;
    struct bms__routing *routing;    /* owned: the weights in force */
    struct bms_store *store;
    size_t max_body_size;
    int port;
    atomic_int n_in_flight;
    atomic_int stopping;         /* set by bms_server_stop */
    struct bms__tls_pair tls;    /* PEM texts; empty: plain HTTP */
    int64_t max_elements;        /* per input tensor; 0: the default */
    int64_t max_request_ms;      /* cap on infer deadlines; 0: none */
    struct bms_manager *manager; /* borrowed; NULL: repo and sched fixed */
    struct bms__auth *auth;      /* owned: keys, roles, rate limits */
    struct bms__cache *cache;    /* owned: the response cache */
};

/* One request, from its first handler call to its completion. */
struct request {
    struct bms_server *server;
    char id[BMS__REQUEST_ID_LEN + 1];
    int64_t start_us;            /* monotonic, at arrival */
    int64_t ts_us;               /* wall clock, at arrival */
    char method[16];
    char path[LOG_PATH_MAX + 1]; /* as received, cut for the log */
    char client[64];
    enum bms_status route_rc;
    struct bms__route route;
    struct bms_diag route_diag;
    int is_infer;                /* a POST .../infer: gets a record */
    int arriving;                /* counted in bms_sched_arrival_begin */
    struct bms_buf body;
    int64_t bytes_in;
    int too_large;
    int late;                    /* arrived while the server was stopping */
    int responded;               /* a response was queued */
    int http_status;             /* 0 until the answer is decided */
    int64_t version;
    int64_t latency_us;
    int64_t bytes_out;
    char error[256];
    struct bms__principal who;   /* the caller, set by the auth check */
    int headers_seen;            /* on_headers ran */
    int n_auth_headers;          /* rate-limit headers for the answer */
    struct bms__header auth_headers[2];
    struct bms__reply *refusal;  /* the auth check's answer to a request
                                  * without a body, queued once it is
                                  * read (keeps the connection open) */
};


static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}


static void client_address(struct MHD_Connection *conn, char *out,
                           size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info != NULL ? info->client_addr : NULL;

    snprintf(out, size, "unknown");
    if (sa == NULL) {
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)size);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)size);
    }
}


static struct request *request_create(struct bms_server *server,
                                      struct MHD_Connection *conn,
                                      const char *url, const char *method)
{
    struct request *req = calloc(1, sizeof(*req));

    if (req == NULL) {
        return NULL;
    }
    req->server = server;
    req->start_us = bms_now_us();
    req->ts_us = bms_wall_us();
    bms__request_id(req->id, sizeof(req->id));
    bms__logfmt_escape(req->method, sizeof(req->method), method);
    bms__logfmt_escape(req->path, sizeof(req->path), url);
    client_address(conn, req->client, sizeof(req->client));
    req->route_rc = bms__route_parse(url, &req->route, &req->route_diag);
    if (req->route_rc == BMS_OK) {
        req->is_infer = req->route.kind == BMS__ROUTE_INFER &&
                        strcmp(method, "POST") == 0;
    } else {
        req->is_infer = strcmp(method, "POST") == 0 &&
                        ends_with(url, "/infer");
    }
    req->late = atomic_load(&server->stopping);
    if (req->is_infer) {
        req->arriving = 1;
        bms_sched_arrival_begin();
    }
    atomic_fetch_add(&server->n_in_flight, 1);
    return req;
}


/* The request stopped being on its way to a queue: queued, answered or
 * gone (ud is the request). */
static void request_arrived(void *ud)
{
    struct request *req = ud;

    if (req->arriving) {
        req->arriving = 0;
        bms_sched_arrival_end();
    }
}


/* Whether a reply's body is worth compressing: large enough, and not
 * compressed already (a gzip or zip package). */
static int compressible(const struct bms__reply *reply)
{
    return reply->body.len >= GZIP_MIN_SIZE &&
           (reply->content_type == NULL ||
            strstr(reply->content_type, "zip") == NULL);
}


/*
 * Replace the reply's body with its gzip stream when the client accepts
 * gzip (Accept-Encoding) and the body is compressible.  Returns 1 when
 * it did; on failure (memory) the body goes out as it was.
 */
static int compress_reply(struct MHD_Connection *conn,
                          struct bms__reply *reply)
{
    const char *accept = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    struct bms_buf gz = {NULL, 0, 0};

    if (!compressible(reply) || !bms__gzip_accepted(accept)) {
        return 0;
    }
    if (bms__gzip(reply->body.data, reply->body.len, GZIP_LEVEL, &gz)
        != BMS_OK) {
        bms_buf_fini(&gz);
        bms_log(BMS_LOG_WARN, "http", "msg=\"reply sent uncompressed\" "
                "error=nomem");
        return 0;
    }
    bms_buf_fini(&reply->body);
    reply->body = gz;
    return 1;
}


/* Queue reply on the connection and note what was answered.  Takes the
 * reply's body. */
static enum MHD_Result queue_reply(struct request *req,
                                   struct MHD_Connection *conn,
                                   struct bms__reply *reply)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int vary = compressible(reply);
    int gzipped = compress_reply(conn, reply);
    size_t len = reply->body.len;

    req->http_status = reply->http_status;
    req->version = reply->version;
    req->bytes_out = (int64_t)len;
    snprintf(req->error, sizeof(req->error), "%s", reply->error);
    req->latency_us = bms_now_us() - req->start_us;

    resp = MHD_create_response_from_buffer(len, reply->body.data,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        bms_buf_fini(&reply->body);
        return MHD_NO;
    }
    reply->body.data = NULL;
    bms_buf_fini(&reply->body);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            reply->content_type != NULL
                                ? reply->content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (gzipped) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
                                "gzip");
    }
    if (vary) {
        /* The body depends on Accept-Encoding, for caches on the way. */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
                                MHD_HTTP_HEADER_ACCEPT_ENCODING);
    }
    for (int i = 0; i < reply->n_headers; i++) {
        MHD_add_response_header(resp, reply->headers[i].name,
                                reply->headers[i].value);
    }
    if (reply->allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply->allow);
    }
    if (reply->version > 0) {
        char text[32];

        /* The version that answered, also for one drawn by weight. */
        snprintf(text, sizeof(text), "%lld", (long long)reply->version);
        MHD_add_response_header(resp, "X-Model-Version", text);
    }
    if (reply->retry_after_s > 0) {
        char text[16];

        snprintf(text, sizeof(text), "%d", reply->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, text);
    }
    if (atomic_load(&req->server->stopping)) {
        /* Draining: no further request on this connection. */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    ret = MHD_queue_response(conn, (unsigned int)reply->http_status, resp);
    MHD_destroy_response(resp);
    req->responded = ret == MHD_YES;
    return ret;
}


static enum MHD_Result queue_error(struct request *req,
                                   struct MHD_Connection *conn,
                                   int http_status, const char *msg)
{
    struct bms__reply reply;

    memset(&reply, 0, sizeof(reply));
    bms__reply_error(&reply, http_status, msg);
    return queue_reply(req, conn, &reply);
}


static enum MHD_Result queue_too_large(struct request *req,
                                       struct MHD_Connection *conn)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "body: larger than the limit of %zu bytes",
             req->server->max_body_size);
    req->too_large = 1;
    bms_buf_fini(&req->body);
    return queue_error(req, conn, 413, msg);
}


/* A query string argument, for handlers (ud is the connection). */
static const char *query_arg(void *ud, const char *name)
{
    return MHD_lookup_connection_value(ud, MHD_GET_ARGUMENT_KIND, name);
}


struct arg_check {
    const char *const *allowed;
    unsigned seen;               /* bit i: allowed[i] came */
    char *bad;
    size_t size;
    int found;
    int repeated;
};


static enum MHD_Result check_one_arg(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
    struct arg_check *a = cls;
    int i = 0;

    (void)kind;
    (void)value;
    if (a->found) {
        return MHD_NO;
    }
    while (a->allowed[i] != NULL && strcmp(a->allowed[i], key) != 0) {
        i++;
    }
    if (a->allowed[i] == NULL || i >= 32 || (a->seen >> i & 1u)) {
        a->found = 1;
        a->repeated = a->allowed[i] != NULL;
        bms__logfmt_escape(a->bad, a->size, key);
        return MHD_NO;
    }
    a->seen |= 1u << i;
    return MHD_YES;
}


/* bms__query_check_fn over the connection's query arguments. */
static int query_check(void *ud, const char *const *allowed, char *bad,
                       size_t size, int *repeated)
{
    struct arg_check a = { allowed, 0, bad, size, 0, 0 };

    MHD_get_connection_values(ud, MHD_GET_ARGUMENT_KIND, check_one_arg,
                              &a);
    *repeated = a.repeated;
    return a.found;
}


/* Answer a request whose body (if any) has been received whole. */
/* Whether the Content-Encoding value s names coding (spaces around it
 * allowed, case ignored). */
static int encoding_is(const char *s, const char *coding)
{
    size_t n = strlen(coding);

    s += strspn(s, " \t");
    return strncasecmp(s, coding, n) == 0 && s[n + strspn(s + n, " \t")]
           == '\0';
}


/*
 * Decode the request body as its Content-Encoding says: none or
 * "identity" leaves it, "gzip" inflates it in place, bounded by the body
 * limit so that a small body cannot inflate past what a plain one may
 * be.  Returns 0, or the HTTP status to refuse with (413, 400, 415, 500)
 * with msg filled.  bytes_in keeps counting the bytes on the wire.
 */
static int decode_body(struct request *req, struct MHD_Connection *conn,
                       char *msg, size_t size)
{
    const char *enc = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    struct bms_buf plain = {NULL, 0, 0};
    struct bms_diag diag;
    char esc[48];
    enum bms_status rc;

    if (enc == NULL || req->body.len == 0 || encoding_is(enc, "identity")) {
        return 0;
    }
    if (!encoding_is(enc, "gzip") && !encoding_is(enc, "x-gzip")) {
        bms__logfmt_escape(esc, sizeof(esc), enc);
        snprintf(msg, size, "Content-Encoding '%s' is not supported: use "
                 "gzip or identity", esc);
        return 415;
    }
    diag.msg[0] = '\0';
    rc = bms__gunzip(req->body.data, req->body.len,
                     req->server->max_body_size, &plain, &diag);
    if (rc != BMS_OK) {
        bms_buf_fini(&plain);
        snprintf(msg, size, "%s", diag.msg);
        return rc == BMS_ERR_LIMIT ? 413 : rc == BMS_ERR_INVALID ? 400 : 500;
    }
    bms_buf_fini(&req->body);
    req->body = plain;
    return 0;
}


/* How many times the request gives a header (names compare without
 * case). */
struct header_count {
    const char *name;
    int n;
};


static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
    struct header_count *c = cls;

    (void)kind;
    (void)value;
    if (strcasecmp(key, c->name) == 0) {
        c->n++;
    }
    return MHD_YES;
}


static int header_count(struct MHD_Connection *conn, const char *name)
{
    struct header_count c = {name, 0};

    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &c);
    return c.n;
}


static enum MHD_Result answer(struct request *req,
                              struct MHD_Connection *conn,
                              const char *method)
{
    struct bms__reply reply;
    struct bms__context ctx;
    struct bms_manager_lease lease;
    enum MHD_Result ret;
    char msg[256];
    int status;

    if (req->refusal != NULL) {
        ret = queue_reply(req, conn, req->refusal);
        free(req->refusal);
        req->refusal = NULL;
        return ret;
    }
    if (req->late) {
        return queue_error(req, conn, 503, "server is stopping");
    }
    if (req->route_rc == BMS_ERR_NOT_FOUND) {
        return queue_error(req, conn, 404, "not found");
    }
    if (req->route_rc != BMS_OK) {
        return queue_error(req, conn, bms__http_status(req->route_rc),
                           req->route_diag.msg);
    }
    status = decode_body(req, conn, msg, sizeof(msg));
    if (status != 0) {
        bms_buf_fini(&req->body);
        return queue_error(req, conn, status, msg);
    }
    if (header_count(conn, BINARY_HEADER) > 1) {
        bms_buf_fini(&req->body);
        return queue_error(req, conn, 400, BINARY_HEADER ": given more than"
                           " once");
    }
    memset(&reply, 0, sizeof(reply));
    memset(&ctx, 0, sizeof(ctx));
    ctx.repo = req->server->repo;
    ctx.sched = req->server->sched;
    ctx.routing = req->server->routing;
    ctx.store = req->server->store;
    ctx.auth = req->server->auth;
    ctx.who = &req->who;
    ctx.cache = req->server->cache;
    for (int i = 0; i < req->n_auth_headers; i++) {
        bms__reply_header(&reply, req->auth_headers[i].name,
                          req->auth_headers[i].value);
    }
    if (req->server->manager != NULL) {
        /* The model's slot serves the whole request, even if a reload
         * swaps in another meanwhile; no model: server-wide routes. */
        memset(&lease, 0, sizeof(lease));
        if (req->route.model[0] != '\0') {
            bms_manager_acquire(req->server->manager, req->route.model,
                                &lease);
        }
        ctx.repo = lease.repo;
        ctx.sched = lease.sched;
        ctx.routing = lease.routing;
        ctx.manager = req->server->manager;
    }
    ctx.timeout_header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Timeout-Ms");
    ctx.binary_header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    BINARY_HEADER);
    ctx.start_us = req->start_us;
    ctx.query = query_arg;
    ctx.query_check = query_check;
    ctx.query_ud = conn;
    ctx.max_elements = req->server->max_elements;
    ctx.max_request_ms = req->server->max_request_ms;
    ctx.max_body_size = req->server->max_body_size;
    ctx.arrived = request_arrived;
    ctx.arrived_ud = req;
    bms__handle_with(&ctx, &req->route, method,
                     req->body.data != NULL ? req->body.data : "",
                     req->body.len, &reply);
    request_arrived(req);
    ret = queue_reply(req, conn, &reply);
    if (req->server->manager != NULL) {
        bms_manager_release(req->server->manager, &lease);
    }
    bms_buf_fini(&req->body);
    return ret;
}


/* Whether the request announces a body. */
static int has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    return te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
}


/*
 * The gateway's check (server/auth.h), before any body is read: a refusal
 * is queued at once, so an unauthenticated upload is never read.  Returns
 * 0 to go on; else 1 with *ret the result for libmicrohttpd.  A passing
 * check keeps its rate-limit headers for the answer.
 */
static int authorize(struct request *req, struct MHD_Connection *conn,
                     const char *method, enum MHD_Result *ret)
{
    struct bms__reply reply;
    const char *authorization;
    int n;

    if (req->server->auth == NULL || req->route_rc != BMS_OK || req->late) {
        return 0;
    }
    authorization = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    n = header_count(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    if (n > 1) {
        authorization = "";      /* two credentials: neither is taken */
    }
    memset(&reply, 0, sizeof(reply));
    if (bms__auth_check(req->server->auth, &req->route, method,
                        authorization, &req->who, &reply) == 0) {
        n = reply.n_headers < 2 ? reply.n_headers : 2;
        memcpy(req->auth_headers, reply.headers,
               (size_t)n * sizeof(reply.headers[0]));
        req->n_auth_headers = n;
        bms_buf_fini(&reply.body);
        return 0;
    }
    if (!has_body(conn)) {
        req->refusal = malloc(sizeof(*req->refusal));
    }
    if (req->refusal != NULL) {
        *req->refusal = reply;
        *ret = MHD_YES;
        return 1;
    }
    *ret = queue_reply(req, conn, &reply);
    return 1;
}


/*
 * The first call for a request: only the headers are known.  A response
 * queued now makes libmicrohttpd close the connection afterwards, so that
 * is kept for requests refused without reading their body: a body too
 * large, or a body on a route that takes none.
 */
static enum MHD_Result on_headers(struct request *req,
                                  struct MHD_Connection *conn,
                                  const char *method)
{
    const char *cl;
    enum MHD_Result ret;

    if (authorize(req, conn, method, &ret) != 0) {
        return ret;
    }
    if (req->route_rc != BMS_OK ||
        !bms__route_takes_body(req->route.kind, method)) {
        return has_body(conn) ? answer(req, conn, method) : MHD_YES;
    }
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno != 0 || end == cl || n > req->server->max_body_size) {
            return queue_too_large(req, conn);
        }
    }
    return MHD_YES;
}


/*
 * A piece of the body.  libmicrohttpd takes no response before the body
 * has ended, so a body that passes the limit without a Content-Length
 * (chunked) is read on and dropped, to answer 413 at its end; past twice
 * the limit the connection is closed instead.
 */
static enum MHD_Result on_body(struct request *req, const char *data,
                               size_t *size)
{
    size_t max = req->server->max_body_size;
    size_t n = *size;

    req->bytes_in += (int64_t)n;
    *size = 0;
    if (req->responded) {
        return MHD_YES;
    }
    if (!req->too_large && n > max - req->body.len) {
        req->too_large = 1;
        bms_buf_fini(&req->body);
    }
    if (req->too_large) {
        if ((size_t)req->bytes_in - max <= max) {
            return MHD_YES;
        }
        req->http_status = 413;
        snprintf(req->error, sizeof(req->error), "body: larger than the "
                 "limit of %zu bytes, connection closed", max);
        req->latency_us = bms_now_us() - req->start_us;
        return MHD_NO;
    }
    if (bms_buf_append(&req->body, data, n) != BMS_OK) {
        req->http_status = 500;
        snprintf(req->error, sizeof(req->error), "out of memory");
        req->latency_us = bms_now_us() - req->start_us;
        bms_buf_fini(&req->body);
        return MHD_NO;
    }
    return MHD_YES;
}


/* libmicrohttpd's accept policy: once the server is stopping, a new
 * connection is closed as soon as it is accepted. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr,
                                 socklen_t addr_len)
{
    struct bms_server *server = cls;

    (void)addr;
    (void)addr_len;
    return atomic_load(&server->stopping) ? MHD_NO : MHD_YES;
}


static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct request *req = *con_cls;

    (void)version;
    if (req == NULL) {
        req = request_create(cls, conn, url, method);
        if (req == NULL) {
            return MHD_NO;
        }
        *con_cls = req;
    }
    if (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0) {
        /* Answered as GET; libmicrohttpd sends the headers alone. */
        method = MHD_HTTP_METHOD_GET;
    }
    if (*upload_data_size == 0 && !req->headers_seen) {
        req->headers_seen = 1;
        return on_headers(req, conn, method);
    }
    if (*upload_data_size > 0) {
        return on_body(req, upload_data, upload_data_size);
    }
    if (req->responded) {
        return MHD_YES;
    }
    if (req->too_large) {
        return queue_too_large(req, conn);
    }
    return answer(req, conn, method);
}


static const char *outcome_name(int http_status)
{
    if (http_status >= 500) {
        return "server_error";
    }
    if (http_status >= 400 || http_status == 0) {
        return "client_error";
    }
    return "ok";
}


static void write_record(const struct request *req)
{
    struct bms_request_record rec;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.id, sizeof(rec.id), "%s", req->id);
    rec.ts_us = req->ts_us;
    if (req->route_rc == BMS_OK) {
        snprintf(rec.model, sizeof(rec.model), "%s", req->route.model);
    }
    rec.version = req->version;
    rec.http_status = req->http_status;
    snprintf(rec.outcome, sizeof(rec.outcome), "%s",
             outcome_name(req->http_status));
    snprintf(rec.error, sizeof(rec.error), "%s", req->error);
    rec.latency_us = req->latency_us;
    rec.bytes_in = req->bytes_in;
    rec.bytes_out = req->bytes_out;
    snprintf(rec.client, sizeof(rec.client), "%s", req->client);
    snprintf(rec.key_id, sizeof(rec.key_id), "%s", req->who.key_id);
    bms_store_record(req->server->store, &rec);
}


static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct bms_server *server = cls;
    struct request *req = *con_cls;

    (void)conn;
    if (req == NULL) {
        return;
    }
    *con_cls = NULL;
    if (req->http_status == 0) {
        snprintf(req->error, sizeof(req->error),
                 "connection closed before the response");
        req->latency_us = bms_now_us() - req->start_us;
    }
    bms_log(BMS_LOG_DEBUG, "http",
            "req=%s msg=\"request\" method=%s path=\"%s\" status=%d "
            "latency_us=%lld bytes_in=%lld bytes_out=%lld client=%s "
            "completed=%d", req->id, req->method, req->path,
            req->http_status, (long long)req->latency_us,
            (long long)req->bytes_in, (long long)req->bytes_out,
            req->client, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (req->is_infer && server->store != NULL) {
        write_record(req);
    }
    request_arrived(req);
    bms_buf_fini(&req->body);
    if (req->refusal != NULL) {
        bms_buf_fini(&req->refusal->body);
        free(req->refusal);
    }
    free(req);
    atomic_fetch_sub(&server->n_in_flight, 1);
}


static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/*
 * Percent-decoding of the path and query, in place.  "%00" stays as it
 * is: a NUL would cut the path short and let "/v2/health/live%00junk"
 * match a route, while the literal text matches none and answers 404.
 */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    size_t r = 0;
    size_t w = 0;

    (void)cls;
    (void)conn;
    while (s[r] != '\0') {
        int hi = s[r] == '%' ? hex_value(s[r + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[r + 2]) : -1;

        if (lo >= 0 && (hi | lo) != 0) {
            s[w++] = (char)(hi * 16 + lo);
            r += 3;
        } else {
            s[w++] = s[r++];
        }
    }
    s[w] = '\0';
    return w;
}


/* libmicrohttpd's own error messages, as warnings. */
__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    char esc[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    bms__logfmt_escape(esc, sizeof(esc), msg);
    bms_log(BMS_LOG_WARN, "http", "msg=\"libmicrohttpd\" detail=\"%s\"",
            esc);
}


/* A model was reloaded or unloaded: its cached answers can never be
 * served again (their keys hold the old load's serial); free them now. */
static void on_model_change(void *ud, const char *name)
{
    struct bms_server *server = ud;

    bms__cache_invalidate(server->cache, name);
}


/* Request threads: twice the cores, at least 4; with a scheduler at
 * least QUEUED_THREADS, since each waits for its request's turn and the
 * batches fill only with requests that are waiting.  TODO: suspend the
 * connection while its request is queued instead of blocking a thread,
 * so that batch sizes and open connections are not bound by threads. */
static int default_threads(int queued)
{
    long n_cores = sysconf(_SC_NPROCESSORS_ONLN);
    long n = n_cores > 0 ? 2 * n_cores : 4;

    if (n < 4) {
        n = 4;
    }
    if (queued && n < QUEUED_THREADS) {
        n = QUEUED_THREADS;
    }
    return n > MAX_THREADS ? MAX_THREADS : (int)n;
}


static enum bms_status check_config(const struct bms_server_config *config,
                                    struct sockaddr_in *sin,
                                    struct bms_diag *diag)
{
    const char *address = config->address ? config->address : "127.0.0.1";

    if (config->repo == NULL && config->manager == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "repo: missing");
    }
    if (config->port < 0 || config->port > 65535) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "port: %d is outside 0..65535", config->port);
    }
    if (config->n_threads < 0 || config->n_threads > MAX_THREADS) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "threads: %d is outside 0..%d",
                            config->n_threads, MAX_THREADS);
    }
    if (config->max_elements < 0 || config->max_request_ms < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: negative",
                            config->max_elements < 0 ? "max_elements"
                                                     : "max_request_ms");
    }
    if (config->max_header_size != 0 &&
        (config->max_header_size < MIN_HEADER_SIZE ||
         config->max_header_size > MAX_HEADER_SIZE)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "max_header_size: %zu "
                            "is outside %zu..%zu bytes",
                            config->max_header_size, MIN_HEADER_SIZE,
                            MAX_HEADER_SIZE);
    }
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)config->port);
    if (inet_pton(AF_INET, address, &sin->sin_addr) != 1) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "address '%.64s': expected an IPv4 address",
                            address);
    }
    return BMS_OK;
}


/*
 * The TLS part of the daemon's start: the key pair read, checked and kept
 * in server (libmicrohttpd reads it from memory), and the flag and
 * options that pass it on.  opts (3 items) ends with MHD_OPTION_END;
 * without TLS that is all it holds.
 */
static enum bms_status tls_options(const struct bms_server_config *config,
                                   struct bms_server *server,
                                   unsigned int *flags,
                                   struct MHD_OptionItem *opts,
                                   struct bms_diag *diag)
{
    enum bms_status rc;

    opts[0] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    if (config->tls_cert == NULL && config->tls_key == NULL) {
        return BMS_OK;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "tls_cert: this "
                            "libmicrohttpd is built without TLS");
    }
    rc = bms__tls_pair_load(config->tls_cert, config->tls_key, &server->tls,
                            diag);
    if (rc != BMS_OK) {
        return rc;
    }
    opts[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0,
                                       server->tls.key_pem };
    opts[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0,
                                       server->tls.cert_pem };
    opts[2] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    *flags |= MHD_USE_TLS;
    return BMS_OK;
}


enum bms_status bms_server_start(const struct bms_server_config *config,
                                 struct bms_server **out,
                                 struct bms_diag *diag)
{
    struct bms_server *server;
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *info;
    enum bms_status rc = check_config(config, &sin, diag);
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC |
                         MHD_USE_ERROR_LOG;
    struct MHD_OptionItem tls_opts[3];
    size_t max_header_size;
    unsigned int client_connections;
    int n_threads;

    if (rc != BMS_OK) {
        return rc;
    }
    server = calloc(1, sizeof(*server));
    if (server == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    server->repo = config->repo;
    server->sched = config->sched;
    server->store = config->store;
    server->max_body_size = config->max_body_size ? config->max_body_size
                                                  : DEFAULT_MAX_BODY_SIZE;
    server->manager = config->manager;
    n_threads = config->n_threads ? config->n_threads
                                  : default_threads(config->sched != NULL ||
                                                    config->manager != NULL);
    atomic_init(&server->n_in_flight, 0);
    atomic_init(&server->stopping, 0);
    server->max_elements = config->max_elements;
    server->max_request_ms = config->max_request_ms;
    client_connections = config->max_client_connections == 0
                         ? CLIENT_CONNECTIONS
                         : config->max_client_connections < 0
                         ? 0u : (unsigned int)config->max_client_connections;
    max_header_size = config->max_header_size ? config->max_header_size
                                              : DEFAULT_MAX_HEADER_SIZE;
    rc = tls_options(config, server, &flags, tls_opts, diag);
    if (rc != BMS_OK) {
        free(server);
        return rc;
    }
    if (config->manager == NULL &&
        bms__routing_create(config->repo, &server->routing) != BMS_OK) {
        bms__tls_pair_fini(&server->tls);
        free(server);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = bms__auth_create(config->store, config->no_auth, &server->auth,
                          diag);
    if (rc != BMS_OK) {
        bms__routing_destroy(server->routing);
        bms__tls_pair_fini(&server->tls);
        free(server);
        return rc;
    }
    if (bms__cache_create(config->cache_size, &server->cache) != BMS_OK) {
        bms__auth_destroy(server->auth);
        bms__routing_destroy(server->routing);
        bms__tls_pair_fini(&server->tls);
        free(server);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }

    errno = 0;
    server->daemon = MHD_start_daemon(
        flags, 0, on_accept, server, on_request, server,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, server,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)n_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, client_connections,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, server,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, server,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, max_header_size,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (server->daemon == NULL) {
        int err = errno;

        bms__cache_destroy(server->cache);
        bms__auth_destroy(server->auth);
        bms__routing_destroy(server->routing);
        bms__tls_pair_fini(&server->tls);
        free(server);
        return bms_diag_set(diag, BMS_ERR_IO, "cannot listen on %s:%d: %s",
                            config->address ? config->address : "127.0.0.1",
                            config->port,
                            err ? strerror(err) : "libmicrohttpd refused");
    }
    if (server->manager != NULL) {
        bms_manager_set_change_hook(server->manager, on_model_change,
                                    server);
    }
    if (config->manager == NULL && config->sched != NULL &&
        config->store != NULL) {
        /* The store outlives the scheduler (bms serve closes it last). */
        bms_sched_set_alert_handler(config->sched, bms_sched_alert_to_store,
                                    config->store);
    }
    info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    server->port = info != NULL ? info->port : config->port;
    *out = server;
    return BMS_OK;
}


int bms_server_port(const struct bms_server *server)
{
    return server->port;
}


void bms_server_stop(struct bms_server *server)
{
    int64_t deadline;

    if (server == NULL) {
        return;
    }
    /* Turn new connections away (on_accept), then let the requests in
     * flight finish; requests that arrive meanwhile on open connections
     * get a 503 once their body is read, and every answer from now on
     * closes its connection.  Not MHD_quiesce_daemon: with epoll and a
     * thread pool it removes the listening socket from the workers' epoll
     * sets while a worker may be removing it too, and libmicrohttpd
     * 0.9.75 aborts the process when the second removal fails. */
    atomic_store(&server->stopping, 1);
    deadline = bms_now_us() + DRAIN_TIMEOUT_US;
    while (atomic_load(&server->n_in_flight) > 0 &&
           bms_now_us() < deadline) {
        struct timespec ts = { 0, 5000000 };

        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(server->daemon);
    if (server->manager != NULL) {
        bms_manager_set_change_hook(server->manager, NULL, NULL);
    }
    bms__routing_destroy(server->routing);
    bms__tls_pair_fini(&server->tls);
    bms__auth_destroy(server->auth);
    bms__cache_destroy(server->cache);
    free(server);
}
