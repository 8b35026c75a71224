/*
 * `bms serve`: open the store and the model manager (which loads every
 * model, records the manifests of the ready ones and starts a scheduler
 * per model, then, with --poll-s, follows the folder's changes), serve
 * them over HTTP until SIGINT or SIGTERM, then stop in order (server,
 * manager, store) so that requests in flight finish and every request
 * record reaches the disk.
 *
 * The two signals are blocked before any thread starts, so every thread
 * inherits the mask and only the main thread's sigwait receives them.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bms/manager.h"
#include "bms/repo.h"
#include "bms/sched.h"
#include "bms/server.h"
#include "bms/store.h"
#include "cli/cli.h"
#include "server/api.h"
#include "server/route.h"

#ifndef BMS_DEFAULT_REPO
#define BMS_DEFAULT_REPO "models"
#endif

#define PATH_SIZE 4096
#define MAX_BODY_SIZE 4294967296L    /* bytes: 4 GiB */
#define MIN_HEADER_BYTES 4096L       /* room for bms's own answers */
#define MAX_HEADER_BYTES 16777216L   /* bytes: 16 MiB */
#define MAX_ELEMENTS 4294967296L     /* per input tensor */
#define MAX_REQUEST_MS 86400000L     /* one day */
#define CACHE_MB_MAX 1048576L        /* --cache-mb: 1 TiB */

struct serve_opts {
    const char *repo_dir;
    const char *address;
    const char *data_dir;
    int port;
    int n_threads;               /* 0: the server's default */
    size_t max_body_size;        /* bytes; 0: the server's default */
    enum bms_log_level level;
    const char *tls_cert;        /* PEM files; both or neither: HTTPS */
    const char *tls_key;
    size_t max_header_size;      /* bytes; 0: the server's default */
    int max_client_connections;  /* per client address; 0: the server's
                                  * default; -1: none (the flag's 0) */
    int64_t max_elements;        /* per input tensor; 0: the default */
    int64_t max_request_ms;      /* 0: no cap */
    int poll_s;                  /* rescan the repository; 0: never */
    int no_auth;                 /* --no-auth: API keys never asked */
    size_t cache_size;           /* --cache-mb, in bytes; 0: default */
};

enum {
    OPT_REPO = 256,
    OPT_PORT,
    OPT_ADDRESS,
    OPT_DATA_DIR,
    OPT_THREADS,
    OPT_LOG_LEVEL,
    OPT_MAX_BODY,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_MAX_HEADER,
    OPT_MAX_ELEMENTS,
    OPT_MAX_CLIENT_CONNS,
    OPT_MAX_REQUEST_MS,
    OPT_MAX_BODY_BYTES,
    OPT_POLL_S,
    OPT_NO_AUTH,
    OPT_CACHE_MB
};

static const struct option long_opts[] = {
    { "model-repository", required_argument, NULL, OPT_REPO },
    { "http-port", required_argument, NULL, OPT_PORT },
    { "http-address", required_argument, NULL, OPT_ADDRESS },
    { "data-dir", required_argument, NULL, OPT_DATA_DIR },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "max-body-size", required_argument, NULL, OPT_MAX_BODY },
    { "max-body-bytes", required_argument, NULL, OPT_MAX_BODY_BYTES },
    { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
    { "tls-key", required_argument, NULL, OPT_TLS_KEY },
    { "max-header-bytes", required_argument, NULL, OPT_MAX_HEADER },
    { "max-elements", required_argument, NULL, OPT_MAX_ELEMENTS },
    { "max-connections-per-client", required_argument, NULL,
      OPT_MAX_CLIENT_CONNS },
    { "max-request-ms", required_argument, NULL, OPT_MAX_REQUEST_MS },
    { "poll-s", required_argument, NULL, OPT_POLL_S },
    { "no-auth", no_argument, NULL, OPT_NO_AUTH },
    { "cache-mb", required_argument, NULL, OPT_CACHE_MB },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};


static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}


static int parse_level(const char *s, enum bms_log_level *out)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum bms_log_level)i;
            return 0;
        }
    }
    return -1;
}


/* One of --max-header-bytes, --max-elements, --max-request-ms into
 * opts; non-zero after a usage error. */
static int parse_limit(int c, const char *arg, struct serve_opts *opts)
{
    long v;

    switch (c) {
    case OPT_MAX_HEADER:
        if (bms__cli_parse_long("serve", "max-header-bytes", arg,
                                MIN_HEADER_BYTES, MAX_HEADER_BYTES,
                                &v) != 0) {
            return -1;
        }
        opts->max_header_size = (size_t)v;
        return 0;
    case OPT_MAX_CLIENT_CONNS:
        if (bms__cli_parse_long("serve", "max-connections-per-client", arg,
                                0, 1024, &v) != 0) {
            return -1;
        }
        opts->max_client_connections = v == 0 ? -1 : (int)v;
        return 0;
    case OPT_MAX_ELEMENTS:
        if (bms__cli_parse_long("serve", "max-elements", arg, 1,
                                MAX_ELEMENTS, &v) != 0) {
            return -1;
        }
        opts->max_elements = v;
        return 0;
    default:
        if (bms__cli_parse_long("serve", "max-request-ms", arg, 1,
                                MAX_REQUEST_MS, &v) != 0) {
            return -1;
        }
        opts->max_request_ms = v;
        return 0;
    }
}


/* Parse argv into *opts.  Returns -1 to go on, or an exit status. */
static int parse_opts(int argc, char **argv, struct serve_opts *opts)
{
    long v;
    int c;

    opts->repo_dir = is_dir("models") ? "models" : BMS_DEFAULT_REPO;
    opts->address = "127.0.0.1";
    opts->data_dir = "data";
    opts->port = 8000;
    opts->n_threads = 0;
    opts->max_body_size = 0;
    opts->tls_cert = NULL;
    opts->tls_key = NULL;
    opts->max_header_size = 0;
    opts->max_client_connections = 0;
    opts->max_elements = 0;
    opts->max_request_ms = 0;
    opts->poll_s = 0;
    opts->no_auth = 0;
    opts->cache_size = 0;
    opts->level = BMS_LOG_INFO;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_REPO:
            opts->repo_dir = optarg;
            break;
        case OPT_ADDRESS:
            opts->address = optarg;
            break;
        case OPT_DATA_DIR:
            opts->data_dir = optarg;
            break;
        case OPT_PORT:
            if (bms__cli_parse_long("serve", "http-port", optarg, 0, 65535,
                                    &v) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->port = (int)v;
            break;
        case OPT_THREADS:
            if (bms__cli_parse_long("serve", "threads", optarg, 1, 256,
                                    &v) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->n_threads = (int)v;
            break;
        case OPT_MAX_BODY:
        case OPT_MAX_BODY_BYTES:
            if (bms__cli_parse_long("serve", c == OPT_MAX_BODY
                                             ? "max-body-size"
                                             : "max-body-bytes",
                                    optarg, 1, MAX_BODY_SIZE, &v) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->max_body_size = (size_t)v;
            break;
        case OPT_TLS_CERT:
            opts->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            opts->tls_key = optarg;
            break;
        case OPT_MAX_HEADER:
        case OPT_MAX_ELEMENTS:
        case OPT_MAX_CLIENT_CONNS:
        case OPT_MAX_REQUEST_MS:
            if (parse_limit(c, optarg, opts) != 0) {
                return BMS__EXIT_USAGE;
            }
            break;
        case OPT_POLL_S:
            if (bms__cli_parse_long("serve", "poll-s", optarg, 1, 86400,
                                    &v) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->poll_s = (int)v;
            break;
        case OPT_NO_AUTH:
            opts->no_auth = 1;
            break;
        case OPT_CACHE_MB:
            if (bms__cli_parse_long("serve", "cache-mb", optarg, 1,
                                    CACHE_MB_MAX, &v) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->cache_size = (size_t)v << 20;
            break;
        case OPT_LOG_LEVEL:
            if (parse_level(optarg, &opts->level) != 0) {
                return bms__cli_usage_error("serve", "--log-level: expected "
                                            "debug, info, warn or error, "
                                            "got '%s'", optarg);
            }
            break;
        case 'h':
            bms__cli_usage(stdout);
            return BMS__EXIT_OK;
        default:
            return bms__cli_bad_option("serve", argv, c);
        }
    }
    if (optind < argc) {
        return bms__cli_usage_error("serve", "unexpected argument '%s'",
                                    argv[optind]);
    }
    if ((opts->tls_cert == NULL) != (opts->tls_key == NULL)) {
        return bms__cli_usage_error("serve", "--%s given without --%s: "
                                    "HTTPS needs both",
                                    opts->tls_cert ? "tls-cert" : "tls-key",
                                    opts->tls_cert ? "tls-key" : "tls-cert");
    }
    return -1;
}


static int fail(const char *what, const char *detail)
{
    char esc[2 * BMS_DIAG_SIZE];

    bms__logfmt_escape(esc, sizeof(esc), detail);
    bms_log(BMS_LOG_ERROR, "cli", "msg=\"%s\" error=\"%s\"", what, esc);
    return BMS__EXIT_FAIL;
}


static int make_data_dir(const char *dir)
{
    char msg[PATH_SIZE + 64];

    if (mkdir(dir, 0755) == 0 || (errno == EEXIST && is_dir(dir))) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "%s: %s", dir,
             errno == EEXIST ? "not a directory" : strerror(errno));
    fail("cannot create the data folder", msg);
    return -1;
}


/* Serve until a signal arrives; the manager (its models loaded, their
 * manifests recorded) and the store are open. */
static int run_server(const struct serve_opts *opts,
                      struct bms_manager *manager, struct bms_store *store,
                      const sigset_t *signals)
{
    struct bms_server_config config;
    struct bms_server *server = NULL;
    struct bms_diag diag;
    int n_ready = bms_manager_n_ready(manager);
    int sig = 0;

    memset(&config, 0, sizeof(config));
    config.address = opts->address;
    config.port = opts->port;
    config.n_threads = opts->n_threads;
    config.max_body_size = opts->max_body_size;
    config.tls_cert = opts->tls_cert;
    config.tls_key = opts->tls_key;
    config.max_header_size = opts->max_header_size;
    config.max_client_connections = opts->max_client_connections;
    config.max_elements = opts->max_elements;
    config.max_request_ms = opts->max_request_ms;
    config.manager = manager;
    config.no_auth = opts->no_auth;
    config.cache_size = opts->cache_size;
    config.store = store;
    diag.msg[0] = '\0';
    if (bms_server_start(&config, &server, &diag) != BMS_OK) {
        return fail("cannot start the server", diag.msg);
    }
    bms_log(BMS_LOG_INFO, "cli", "msg=\"listening\" scheme=%s address=%s "
            "port=%d models=%d", opts->tls_cert != NULL ? "https" : "http",
            opts->address, bms_server_port(server), n_ready);

    if (sigwait(signals, &sig) != 0) {
        sig = 0;
    }
    bms_log(BMS_LOG_INFO, "cli", "msg=\"stopping\" signal=%s",
            sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "?");
    bms_server_stop(server);
    return BMS__EXIT_OK;
}


static int serve(const struct serve_opts *opts, const sigset_t *signals)
{
    char store_path[PATH_SIZE];
    struct bms_store *store = NULL;
    struct bms_manager_config mc;
    struct bms_manager *manager = NULL;
    struct bms_diag diag;
    int status;
    int n;

    if (make_data_dir(opts->data_dir) != 0) {
        return BMS__EXIT_FAIL;
    }
    n = snprintf(store_path, sizeof(store_path), "%s/bms.db",
                 opts->data_dir);
    if (n < 0 || (size_t)n >= sizeof(store_path)) {
        return fail("cannot open the store", "data folder path too long");
    }
    diag.msg[0] = '\0';
    if (bms_store_open_sqlite(store_path, &store, &diag) != BMS_OK) {
        return fail("cannot open the store", diag.msg);
    }
    diag.msg[0] = '\0';
    memset(&mc, 0, sizeof(mc));
    mc.dir = opts->repo_dir;
    mc.store = store;
    mc.poll_s = opts->poll_s;
    if (bms_manager_open(&mc, &manager, &diag) != BMS_OK) {
        bms_store_close(store);
        return fail("cannot open the model repository", diag.msg);
    }
    /* Settings changed over the API earlier, laid over config.json. */
    bms__config_restore(manager, store);
    if (opts->poll_s > 0) {
        bms_log(BMS_LOG_INFO, "cli", "msg=\"polling the repository\" "
                "dir=\"%s\" poll_s=%d", opts->repo_dir, opts->poll_s);
    }
    status = run_server(opts, manager, store, signals);
    /* The schedulers go before the store their alerts are written to. */
    bms_manager_close(manager);
    bms_store_close(store);
    if (status == BMS__EXIT_OK) {
        bms_log(BMS_LOG_INFO, "cli", "msg=\"stopped\"");
    }
    return status;
}


int bms__cli_serve(int argc, char **argv)
{
    struct serve_opts opts;
    sigset_t signals;
    int status = parse_opts(argc, argv, &opts);
    int err;

    if (status >= 0) {
        return status;
    }
    bms_log_set_level(opts.level);

    /* Before any thread exists, so that all of them inherit the mask. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    err = pthread_sigmask(SIG_BLOCK, &signals, NULL);
    if (err != 0) {
        return fail("cannot block signals", strerror(err));
    }
    signal(SIGPIPE, SIG_IGN);
    return serve(&opts, &signals);
}
