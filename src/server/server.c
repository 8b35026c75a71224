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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "bms/server.h"
#include "sched/routing.h"
#include "server/route.h"

#define DEFAULT_MAX_BODY_SIZE ((size_t)64 << 20)   /* bytes */
#define CONNECTION_TIMEOUT_S 10u     /* idle or stalled connections */
#define CONNECTION_LIMIT 1024u
#define MAX_THREADS 256
#define QUEUED_THREADS 64            /* default with a scheduler */
#define DRAIN_TIMEOUT_US 5000000     /* wait for requests in flight */
#define LOG_PATH_MAX 200             /* path characters kept for the log */

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
    atomic_fetch_add(&server->n_in_flight, 1);
    return req;
}


/* Queue reply on the connection and note what was answered.  Takes the
 * reply's body. */
static enum MHD_Result queue_reply(struct request *req,
                                   struct MHD_Connection *conn,
                                   struct bms__reply *reply)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
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


/* Answer a request whose body (if any) has been received whole. */
static enum MHD_Result answer(struct request *req,
                              struct MHD_Connection *conn,
                              const char *method)
{
    struct bms__reply reply;
    struct bms__context ctx;
    enum MHD_Result ret;

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
    memset(&reply, 0, sizeof(reply));
    memset(&ctx, 0, sizeof(ctx));
    ctx.repo = req->server->repo;
    ctx.sched = req->server->sched;
    ctx.routing = req->server->routing;
    ctx.store = req->server->store;
    ctx.timeout_header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Timeout-Ms");
    ctx.start_us = req->start_us;
    ctx.query = query_arg;
    ctx.query_ud = conn;
    bms__handle_with(&ctx, &req->route, method,
                     req->body.data != NULL ? req->body.data : "",
                     req->body.len, &reply);
    ret = queue_reply(req, conn, &reply);
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
    bms_buf_fini(&req->body);
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

    if (config->repo == NULL) {
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


enum bms_status bms_server_start(const struct bms_server_config *config,
                                 struct bms_server **out,
                                 struct bms_diag *diag)
{
    struct bms_server *server;
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *info;
    enum bms_status rc = check_config(config, &sin, diag);
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
    n_threads = config->n_threads ? config->n_threads
                                  : default_threads(config->sched != NULL);
    atomic_init(&server->n_in_flight, 0);
    atomic_init(&server->stopping, 0);
    if (bms__routing_create(config->repo, &server->routing) != BMS_OK) {
        free(server);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }

    errno = 0;
    server->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, server,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, server,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)n_threads,
        MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, server,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, server,
        MHD_OPTION_END);
    if (server->daemon == NULL) {
        int err = errno;

        bms__routing_destroy(server->routing);
        free(server);
        return bms_diag_set(diag, BMS_ERR_IO, "cannot listen on %s:%d: %s",
                            config->address ? config->address : "127.0.0.1",
                            config->port,
                            err ? strerror(err) : "libmicrohttpd refused");
    }
    if (config->sched != NULL && config->store != NULL) {
        /* The store outlives the scheduler (bms serve closes it last). */
        bms_sched_set_alert_handler(config->sched, bms__alert_to_store,
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
    MHD_socket fd;
    int64_t deadline;

    if (server == NULL) {
        return;
    }
    /* Stop accepting, then let the requests in flight finish; requests
     * that arrive meanwhile on open connections get a 503 once their body
     * is read, and every answer from now on closes its connection. */
    atomic_store(&server->stopping, 1);
    fd = MHD_quiesce_daemon(server->daemon);
    deadline = bms_now_us() + DRAIN_TIMEOUT_US;
    while (atomic_load(&server->n_in_flight) > 0 &&
           bms_now_us() < deadline) {
        struct timespec ts = { 0, 5000000 };

        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(server->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
    bms__routing_destroy(server->routing);
    free(server);
}
