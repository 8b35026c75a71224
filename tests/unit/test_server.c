/*
 * Unit tests of the HTTP layer: path parsing, the status mapping, request
 * ids and escaping, then a real server on 127.0.0.1 (a free port) over an
 * empty repository, spoken to with a raw socket so that the test sees the
 * bytes on the wire.  Expected values come from docs/api.md and from hand
 * calculation.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "bms/repo.h"
#include "bms/server.h"
#include "bms/store.h"
#include "server/route.h"

#define N_IDS 20000
#define N_ID_THREADS 4

/* A server over an empty repository, shared by the socket tests. */
struct fixture {
    char dir[64];
    char db[96];
    struct bms_repo *repo;
    struct bms_store *store;     /* only in the recording fixture */
    struct bms_server *server;
};

/* One HTTP answer as read off the socket. */
struct answer {
    int status;
    char head[4096];             /* status line and headers */
    char body[4096];
};


static void route_parse_accepts_each_endpoint(void **state)
{
    static const struct {
        const char *path;
        enum bms__route_kind kind;
        const char *model;
        int64_t version;
    } cases[] = {
        { "/v2", BMS__ROUTE_SERVER, "", 0 },
        { "/v2/health/live", BMS__ROUTE_LIVE, "", 0 },
        { "/v2/health/ready", BMS__ROUTE_READY, "", 0 },
        { "/v2/models/fashion_mlp", BMS__ROUTE_MODEL, "fashion_mlp", 0 },
        { "/v2/models/a.b-c/versions/12", BMS__ROUTE_MODEL, "a.b-c", 12 },
        { "/v2/models/m/ready", BMS__ROUTE_MODEL_READY, "m", 0 },
        { "/v2/models/m/versions/3/ready", BMS__ROUTE_MODEL_READY, "m", 3 },
        { "/v2/models/m/infer", BMS__ROUTE_INFER, "m", 0 },
        { "/v2/models/m/versions/7/infer", BMS__ROUTE_INFER, "m", 7 },
        { "/v2/models/ready", BMS__ROUTE_MODEL, "ready", 0 },
        { "/v2/models/versions/infer", BMS__ROUTE_INFER, "versions", 0 },
        { "/v2/models/m/versions/999999999999999999", BMS__ROUTE_MODEL,
          "m", 999999999999999999 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bms__route route;

        assert_int_equal(bms__route_parse(cases[i].path, &route, NULL),
                         BMS_OK);
        assert_int_equal(route.kind, cases[i].kind);
        assert_string_equal(route.model, cases[i].model);
        assert_int_equal(route.version, cases[i].version);
    }
}


static void route_parse_rejects_unknown_paths(void **state)
{
    static const char *const paths[] = {
        "", "/", "v2", "/v1", "/v2/", "/v2//health/live", "/v2/health",
        "/v2/health/live/", "/v2/health/dead", "/v2/models",
        "/v2/models/", "/v2/models/m/", "/v2/models/m/versions",
        "/v2/models/m/versions/1/", "/v2/models/m/versions/1/infer/x",
        "/v2/models/m/bogus", "/v2/models/m/versions/1/bogus",
        "/v2/models/m/versions/abc/bogus", "/V2/health/live",
        "/v2/models/m/infer/",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct bms__route route;

        assert_int_equal(bms__route_parse(paths[i], &route, NULL),
                         BMS_ERR_NOT_FOUND);
    }
}


static void route_parse_rejects_bad_version(void **state)
{
    static const char *const versions[] = {
        "0", "-1", "+1", "01", "abc", "1.5", "1e3", "0x10",
        "9999999999999999999", "18446744073709551617",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        struct bms__route route;
        struct bms_diag diag;
        char path[128];

        diag.msg[0] = '\0';
        snprintf(path, sizeof(path), "/v2/models/m/versions/%s/infer",
                 versions[i]);
        assert_int_equal(bms__route_parse(path, &route, &diag),
                         BMS_ERR_INVALID);
        assert_non_null(strstr(diag.msg, "expected a positive integer"));
    }
}


static void route_parse_names_the_bad_version(void **state)
{
    struct bms__route route;
    struct bms_diag diag;

    (void)state;
    assert_int_equal(bms__route_parse("/v2/models/m/versions/x1", &route,
                                      &diag), BMS_ERR_INVALID);
    assert_string_equal(diag.msg,
                        "version 'x1': expected a positive integer");
}


static void route_parse_rejects_bad_model_name(void **state)
{
    char long_name[BMS__MODEL_NAME_MAX + 2];
    char path[256];
    const char *const names[] = {
        "a b", "a\"b", "a%2Fb", "caf\xc3\xa9", "a\nb", "x;y", "$(id)",
    };
    struct bms__route route;
    struct bms_diag diag;

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "/v2/models/%s/ready", names[i]);
        assert_int_equal(bms__route_parse(path, &route, &diag),
                         BMS_ERR_INVALID);
        assert_non_null(strstr(diag.msg, "model name"));
    }

    /* 128 characters: one past the limit. */
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    snprintf(path, sizeof(path), "/v2/models/%s", long_name);
    assert_int_equal(bms__route_parse(path, &route, &diag),
                     BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "model name: longer than 127 characters");
}


static void route_parse_accepts_name_at_limit(void **state)
{
    char name[BMS__MODEL_NAME_MAX + 1];
    char path[256];
    struct bms__route route;

    (void)state;
    memset(name, 'z', BMS__MODEL_NAME_MAX);
    name[BMS__MODEL_NAME_MAX] = '\0';
    snprintf(path, sizeof(path), "/v2/models/%s/infer", name);
    assert_int_equal(bms__route_parse(path, &route, NULL), BMS_OK);
    assert_int_equal(strlen(route.model), 127);
}


static void route_method_is_post_only_for_infer(void **state)
{
    (void)state;
    assert_string_equal(bms__route_method(BMS__ROUTE_INFER), "POST");
    assert_string_equal(bms__route_method(BMS__ROUTE_LIVE), "GET");
    assert_string_equal(bms__route_method(BMS__ROUTE_READY), "GET");
    assert_string_equal(bms__route_method(BMS__ROUTE_SERVER), "GET");
    assert_string_equal(bms__route_method(BMS__ROUTE_MODEL), "GET");
    assert_string_equal(bms__route_method(BMS__ROUTE_MODEL_READY), "GET");
}


static void http_status_maps_each_status(void **state)
{
    (void)state;
    assert_int_equal(bms__http_status(BMS_OK), 200);
    assert_int_equal(bms__http_status(BMS_ERR_INVALID), 400);
    assert_int_equal(bms__http_status(BMS_ERR_UNSUPPORTED), 400);
    assert_int_equal(bms__http_status(BMS_ERR_NOT_FOUND), 404);
    assert_int_equal(bms__http_status(BMS_ERR_LIMIT), 413);
    assert_int_equal(bms__http_status(BMS_ERR_UNAVAILABLE), 503);
    assert_int_equal(bms__http_status(BMS_ERR_NOMEM), 500);
    assert_int_equal(bms__http_status(BMS_ERR_IO), 500);
    assert_int_equal(bms__http_status(BMS_ERR_INTERNAL), 500);
}


static void *make_ids(void *arg)
{
    char (*ids)[BMS__REQUEST_ID_LEN + 1] = arg;

    for (int i = 0; i < N_IDS / N_ID_THREADS; i++) {
        bms__request_id(ids[i], sizeof(ids[i]));
    }
    return NULL;
}


static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}


static void request_ids_are_unique_hex_across_threads(void **state)
{
    char (*ids)[BMS__REQUEST_ID_LEN + 1] = calloc(N_IDS, sizeof(*ids));
    pthread_t threads[N_ID_THREADS];

    (void)state;
    assert_non_null(ids);
    for (int t = 0; t < N_ID_THREADS; t++) {
        assert_int_equal(pthread_create(&threads[t], NULL, make_ids,
                                        ids + t * (N_IDS / N_ID_THREADS)),
                         0);
    }
    for (int t = 0; t < N_ID_THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    for (int i = 0; i < N_IDS; i++) {
        assert_int_equal(strlen(ids[i]), 16);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 16);
    }
    qsort(ids, N_IDS, sizeof(*ids), compare_ids);
    for (int i = 1; i < N_IDS; i++) {
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
    free(ids);
}


static void logfmt_escape_quotes_and_cuts(void **state)
{
    char out[12];

    (void)state;
    bms__logfmt_escape(out, sizeof(out), "a\"b\x7f");
    assert_string_equal(out, "a\\\"b\\x7f");
    /* Room for 11 characters: the ten digits fit, the 4-character escape
     * after them does not and is dropped. */
    bms__logfmt_escape(out, sizeof(out), "0123456789\n");
    assert_string_equal(out, "0123456789");
}


static int fixture_start(void **state, size_t max_body_size,
                         int with_store)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct bms_server_config config;
    struct bms_diag diag;

    if (fx == NULL) {
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/bms-test-server-XXXXXX");
    if (mkdtemp(fx->dir) == NULL ||
        bms_repo_open(fx->dir, &fx->repo, &diag) != BMS_OK) {
        free(fx);
        return -1;
    }
    /* The store file lives beside the (empty) repository folder. */
    snprintf(fx->db, sizeof(fx->db), "%s.db", fx->dir);
    if (with_store &&
        bms_store_open_sqlite(fx->db, &fx->store, &diag) != BMS_OK) {
        bms_repo_close(fx->repo);
        rmdir(fx->dir);
        free(fx);
        return -1;
    }
    memset(&config, 0, sizeof(config));
    config.port = 0;
    config.n_threads = 2;
    config.max_body_size = max_body_size;
    config.repo = fx->repo;
    config.store = fx->store;
    if (bms_server_start(&config, &fx->server, &diag) != BMS_OK) {
        bms_store_close(fx->store);
        bms_repo_close(fx->repo);
        rmdir(fx->dir);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}


static int fixture_setup(void **state)
{
    return fixture_start(state, 0, 0);
}


static int small_limit_setup(void **state)
{
    return fixture_start(state, 1024, 0);
}


static int recording_setup(void **state)
{
    return fixture_start(state, 0, 1);
}


static int fixture_teardown(void **state)
{
    struct fixture *fx = *state;
    char path[128];

    bms_server_stop(fx->server);
    bms_store_close(fx->store);
    bms_repo_close(fx->repo);
    rmdir(fx->dir);
    if (fx->store != NULL) {
        unlink(fx->db);
        snprintf(path, sizeof(path), "%s-wal", fx->db);
        unlink(path);
        snprintf(path, sizeof(path), "%s-shm", fx->db);
        unlink(path);
    }
    free(fx);
    return 0;
}


/* Send request (whole, with Connection: close) and read the answer until
 * the server closes, at most 5 s. */
static int exchange(const struct fixture *fx, const char *request,
                    struct answer *ans)
{
    struct sockaddr_in sin;
    struct timeval tv = { 5, 0 };
    char buf[8192];
    size_t len = 0;
    ssize_t n;
    char *sep;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(ans, 0, sizeof(*ans));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)bms_server_port(fx->server));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        send(fd, request, strlen(request), MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    while (len + 1 < sizeof(buf) &&
           (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0) {
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || sscanf(buf, "HTTP/1.1 %d", &ans->status) != 1) {
        return -1;
    }
    snprintf(ans->head, sizeof(ans->head), "%.*s", (int)(sep - buf), buf);
    snprintf(ans->body, sizeof(ans->body), "%s", sep + 4);
    return 0;
}


static void get(const struct fixture *fx, const char *path,
                struct answer *ans)
{
    char request[512];

    snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: test\r\n"
             "Connection: close\r\n\r\n", path);
    assert_int_equal(exchange(fx, request, ans), 0);
}


static void server_answers_health_live(void **state)
{
    struct answer ans;
    const char *id;

    get(*state, "/v2/health/live", &ans);
    assert_int_equal(ans.status, 200);
    assert_string_equal(ans.body, "{\"live\": true}");
    assert_non_null(strstr(ans.head, "\r\nContent-Type: application/json"));
    id = strstr(ans.head, "\r\nX-Request-Id: ");
    assert_non_null(id);
    assert_int_equal(strspn(id + 16, "0123456789abcdef"), 16);
}


static void server_is_not_ready_without_models(void **state)
{
    struct answer ans;

    get(*state, "/v2/health/ready", &ans);
    assert_int_equal(ans.status, 503);
    assert_string_equal(ans.body, "{\"ready\": false}");
}


static void server_describes_itself(void **state)
{
    struct answer ans;

    get(*state, "/v2", &ans);
    assert_int_equal(ans.status, 200);
    assert_non_null(strstr(ans.body, "\"name\": \"bms\""));
    assert_non_null(strstr(ans.body, "\"extensions\": [\"classification\","
                                     " \"binary_tensor_data\"]"));
}


static void server_unknown_path_is_404(void **state)
{
    struct answer ans;

    get(*state, "/v2/nothing/here", &ans);
    assert_int_equal(ans.status, 404);
    assert_non_null(strstr(ans.body, "\"error\""));
}


static void server_unknown_model_is_404_naming_it(void **state)
{
    struct answer ans;

    get(*state, "/v2/models/fashion_mlp/versions/2", &ans);
    assert_int_equal(ans.status, 404);
    assert_non_null(strstr(ans.body, "model 'fashion_mlp' not found"));
}


static void server_bad_version_is_400(void **state)
{
    struct answer ans;

    get(*state, "/v2/models/m/versions/0/ready", &ans);
    assert_int_equal(ans.status, 400);
    assert_non_null(strstr(ans.body, "version '0'"));
}


static void server_wrong_method_is_405_with_allow(void **state)
{
    struct answer ans;

    assert_int_equal(exchange(*state, "DELETE /v2/health/live HTTP/1.1\r\n"
                              "Host: t\r\nConnection: close\r\n\r\n", &ans),
                     0);
    assert_int_equal(ans.status, 405);
    assert_non_null(strstr(ans.head, "\r\nAllow: GET"));

    get(*state, "/v2/models/m/infer", &ans);
    assert_int_equal(ans.status, 405);
    assert_non_null(strstr(ans.head, "\r\nAllow: POST"));
}


static void server_refuses_large_body_before_reading_it(void **state)
{
    struct answer ans;

    /* 64 MiB + 1 announced, nothing sent: the 413 must come anyway. */
    assert_int_equal(exchange(*state, "POST /v2/models/m/infer HTTP/1.1\r\n"
                              "Host: t\r\nContent-Length: 67108865\r\n"
                              "\r\n", &ans), 0);
    assert_int_equal(ans.status, 413);
    assert_non_null(strstr(ans.body, "67108864"));
}


static void server_infer_on_unknown_model_is_404(void **state)
{
    struct answer ans;

    assert_int_equal(exchange(*state, "POST /v2/models/m/infer HTTP/1.1\r\n"
                              "Host: t\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\n{}", &ans), 0);
    assert_int_equal(ans.status, 404);
    assert_non_null(strstr(ans.body, "model 'm' not found"));
}


static void server_keeps_connection_alive(void **state)
{
    const struct fixture *fx = *state;
    const char req[] = "GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n";
    struct sockaddr_in sin;
    struct timeval tv = { 5, 0 };
    char buf[2048];
    size_t len = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)bms_server_port(fx->server));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);

    /* Two requests on one connection: both answered. */
    buf[0] = '\0';
    for (int i = 0; i < 2; i++) {
        assert_true(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) > 0);
        len = 0;
        while (len + 1 < sizeof(buf) && strstr(buf, "true}") == NULL &&
               (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0) {
            len += (size_t)n;
            buf[len] = '\0';
        }
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
        assert_non_null(strstr(buf, "{\"live\": true}"));
        buf[0] = '\0';
    }
    close(fd);
}


static void server_refuses_chunked_body_past_limit(void **state)
{
    char request[4096];
    char chunk[601];                 /* 600 = 0x258 bytes and a NUL */
    struct answer ans;
    int n;

    /* Two chunks of 600 bytes pass the 1024-byte limit of this fixture;
     * without a Content-Length the 413 comes at the body's end. */
    memset(chunk, 'x', sizeof(chunk) - 1);
    chunk[sizeof(chunk) - 1] = '\0';
    n = snprintf(request, sizeof(request),
                 "POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\n"
                 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 "258\r\n%s\r\n258\r\n%s\r\n0\r\n\r\n", chunk, chunk);
    assert_true(n > 0 && (size_t)n < sizeof(request));
    assert_int_equal(exchange(*state, request, &ans), 0);
    assert_int_equal(ans.status, 413);
    assert_non_null(strstr(ans.body, "1024 bytes"));
}


static void server_accepts_body_at_limit(void **state)
{
    char request[4096];
    char body[1025];
    struct answer ans;

    /* Exactly 1024 bytes is allowed: it reaches the model lookup (404). */
    memset(body, ' ', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    snprintf(request, sizeof(request),
             "POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\n"
             "Content-Length: 1024\r\nConnection: close\r\n\r\n%s", body);
    assert_int_equal(exchange(*state, request, &ans), 0);
    assert_int_equal(ans.status, 404);
}


struct seen {
    int n;
    struct bms_request_record rec;
};


static int keep_record(void *ud, const struct bms_request_record *rec)
{
    struct seen *seen = ud;

    if (seen->n++ == 0) {
        seen->rec = *rec;
    }
    return 0;
}


static void server_records_each_infer_request(void **state)
{
    struct fixture *fx = *state;
    struct answer ans;
    struct seen seen = { 0 };
    char id[BMS__REQUEST_ID_LEN + 1];
    const char *h;

    /* One infer request and one health request: only the first is
     * recorded. */
    assert_int_equal(exchange(fx, "POST /v2/models/m/versions/3/infer "
                              "HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                              "Connection: close\r\n\r\n{\"a\"}", &ans), 0);
    assert_int_equal(ans.status, 404);
    h = strstr(ans.head, "X-Request-Id: ");
    assert_non_null(h);
    snprintf(id, sizeof(id), "%.16s", h + 14);
    get(fx, "/v2/health/live", &ans);

    /* Stopping the server completes every request; flushing writes. */
    bms_server_stop(fx->server);
    fx->server = NULL;
    assert_int_equal(bms_store_flush(fx->store), BMS_OK);
    assert_int_equal(bms_store_list_requests(fx->store, 10, keep_record,
                                             &seen, NULL), BMS_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.rec.id, id);
    assert_string_equal(seen.rec.model, "m");
    assert_int_equal(seen.rec.version, 0);
    assert_int_equal(seen.rec.http_status, 404);
    assert_string_equal(seen.rec.outcome, "client_error");
    assert_string_equal(seen.rec.error, "model 'm' not found");
    assert_int_equal(seen.rec.bytes_in, 5);
    assert_true(seen.rec.bytes_out > 0);
    assert_true(seen.rec.latency_us >= 0);
    assert_true(seen.rec.ts_us > 0);
    assert_string_equal(seen.rec.client, "127.0.0.1");
}


static void server_rejects_bad_address(void **state)
{
    struct bms_server_config config;
    struct bms_server *server = NULL;
    struct bms_diag diag;
    const struct fixture *fx = *state;

    memset(&config, 0, sizeof(config));
    config.address = "localhost";
    config.repo = fx->repo;
    assert_int_equal(bms_server_start(&config, &server, &diag),
                     BMS_ERR_INVALID);
    assert_null(server);
    assert_non_null(strstr(diag.msg, "address 'localhost'"));
}


/* A client that keeps opening connections to port and asking for
 * /v2/health/live until told to stop; counts the 200s and the rest. */
struct churn {
    int port;
    atomic_int stop;
    int n_ok;
    int n_other;                 /* refused, closed without an answer */
};

static void *churn_client(void *arg)
{
    static const char request[] = "GET /v2/health/live HTTP/1.1\r\n"
                                  "Host: test\r\nConnection: close\r\n\r\n";
    struct churn *c = arg;
    struct sockaddr_in sin;
    struct timeval tv = { 1, 0 };

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)c->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (!atomic_load(&c->stop)) {
        char buf[512];
        ssize_t n = 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        if (fd < 0) {
            break;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
            send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0) {
            n = recv(fd, buf, sizeof(buf) - 1, 0);
        }
        close(fd);
        if (n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0) {
            c->n_ok++;
        } else {
            c->n_other++;
        }
    }
    return NULL;
}


/*
 * Stopping while clients keep connecting, many times over: the server
 * must stop cleanly every time.  (With libmicrohttpd's quiesce call the
 * process aborted about once in 1,200 such stops: its epoll bookkeeping
 * of the listening socket races with the worker threads'.)
 */
static void server_stops_while_clients_connect(void **state)
{
    int n_ok = 0;

    (void)state;
    for (int round = 0; round < 200; round++) {
        void *fx;
        struct churn c;
        pthread_t threads[2];
        struct timespec pause = { 0, 1000000 };

        assert_int_equal(fixture_setup(&fx), 0);
        memset(&c, 0, sizeof(c));
        c.port = bms_server_port(((struct fixture *)fx)->server);
        atomic_init(&c.stop, 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(pthread_create(&threads[i], NULL,
                                            churn_client, &c), 0);
        }
        nanosleep(&pause, NULL);
        fixture_teardown(&fx);
        atomic_store(&c.stop, 1);
        for (int i = 0; i < 2; i++) {
            pthread_join(threads[i], NULL);
        }
        n_ok += c.n_ok;
    }
    /* The clients were answered while the servers ran. */
    assert_true(n_ok > 0);
}


int bms_test_server(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_parse_accepts_each_endpoint),
        cmocka_unit_test(route_parse_rejects_unknown_paths),
        cmocka_unit_test(route_parse_rejects_bad_version),
        cmocka_unit_test(route_parse_names_the_bad_version),
        cmocka_unit_test(route_parse_rejects_bad_model_name),
        cmocka_unit_test(route_parse_accepts_name_at_limit),
        cmocka_unit_test(route_method_is_post_only_for_infer),
        cmocka_unit_test(http_status_maps_each_status),
        cmocka_unit_test(request_ids_are_unique_hex_across_threads),
        cmocka_unit_test(logfmt_escape_quotes_and_cuts),
        cmocka_unit_test_setup_teardown(server_answers_health_live,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(server_is_not_ready_without_models,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(server_describes_itself,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(server_unknown_path_is_404,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            server_unknown_model_is_404_naming_it, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(server_bad_version_is_400,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            server_wrong_method_is_405_with_allow, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(
            server_refuses_large_body_before_reading_it, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(
            server_infer_on_unknown_model_is_404, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(server_keeps_connection_alive,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(server_rejects_bad_address,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            server_refuses_chunked_body_past_limit, small_limit_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(server_accepts_body_at_limit,
                                        small_limit_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(server_records_each_infer_request,
                                        recording_setup, fixture_teardown),
        cmocka_unit_test(server_stops_while_clients_connect),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
