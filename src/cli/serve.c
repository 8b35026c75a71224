/*
 * `bms serve`: open the store and the repository, record the manifests of
 * the ready models, start the scheduler (a queue and instances per ready
 * version), serve them over HTTP until SIGINT or SIGTERM, then stop in
 * order (server, scheduler, store, repository) so that requests in flight
 * finish and every request record reaches the disk.
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

#include "bms/repo.h"
#include "bms/sched.h"
#include "bms/server.h"
#include "bms/store.h"
#include "cli/cli.h"
#include "server/route.h"

#ifndef BMS_DEFAULT_REPO
#define BMS_DEFAULT_REPO "models"
#endif

#define PATH_SIZE 4096
#define MAX_BODY_SIZE 4294967296L    /* bytes: 4 GiB */

struct serve_opts {
    const char *repo_dir;
    const char *address;
    const char *data_dir;
    int port;
    int n_threads;               /* 0: the server's default */
    size_t max_body_size;        /* bytes; 0: the server's default */
    enum bms_log_level level;
};

enum {
    OPT_REPO = 256,
    OPT_PORT,
    OPT_ADDRESS,
    OPT_DATA_DIR,
    OPT_THREADS,
    OPT_LOG_LEVEL,
    OPT_MAX_BODY
};

static const struct option long_opts[] = {
    { "model-repository", required_argument, NULL, OPT_REPO },
    { "http-port", required_argument, NULL, OPT_PORT },
    { "http-address", required_argument, NULL, OPT_ADDRESS },
    { "data-dir", required_argument, NULL, OPT_DATA_DIR },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "max-body-size", required_argument, NULL, OPT_MAX_BODY },
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
            if (bms__cli_parse_long("serve", "max-body-size", optarg, 1,
                                    MAX_BODY_SIZE, &v) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->max_body_size = (size_t)v;
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


/* Record each ready model's manifest; returns how many are ready. */
static int record_models(struct bms_repo *repo, struct bms_store *store)
{
    int n = bms_repo_n_entries(repo);
    int n_ready = 0;

    for (int i = 0; i < n; i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);
        const struct bms_manifest *m;
        struct bms_diag diag;

        if (e->state != BMS_ENTRY_READY) {
            continue;
        }
        n_ready++;
        m = bms_served_manifest(e->served);
        if (m == NULL || m->json == NULL) {
            continue;
        }
        diag.msg[0] = '\0';
        if (bms_store_put_model(store, e->name, e->version, m->json,
                                &diag) != BMS_OK) {
            char esc[2 * BMS_DIAG_SIZE];

            bms__logfmt_escape(esc, sizeof(esc), diag.msg);
            bms_log(BMS_LOG_WARN, "cli", "model=%s version=%lld "
                    "msg=\"manifest not stored\" error=\"%s\"", e->name,
                    (long long)e->version, esc);
        }
    }
    return n_ready;
}


/* Serve until a signal arrives; the repository and store are open. */
static int run_server(const struct serve_opts *opts, struct bms_repo *repo,
                      struct bms_store *store, const sigset_t *signals)
{
    struct bms_server_config config;
    struct bms_server *server = NULL;
    struct bms_sched *sched = NULL;
    struct bms_diag diag;
    int n_ready = record_models(repo, store);
    int sig = 0;

    diag.msg[0] = '\0';
    if (bms_sched_create(repo, 0, &sched, &diag) != BMS_OK) {
        return fail("cannot start the scheduler", diag.msg);
    }
    memset(&config, 0, sizeof(config));
    config.address = opts->address;
    config.port = opts->port;
    config.n_threads = opts->n_threads;
    config.max_body_size = opts->max_body_size;
    config.repo = repo;
    config.sched = sched;
    config.store = store;
    diag.msg[0] = '\0';
    if (bms_server_start(&config, &server, &diag) != BMS_OK) {
        bms_sched_destroy(sched);
        return fail("cannot start the server", diag.msg);
    }
    bms_log(BMS_LOG_INFO, "cli", "msg=\"listening\" address=%s port=%d "
            "models=%d", opts->address, bms_server_port(server), n_ready);

    if (sigwait(signals, &sig) != 0) {
        sig = 0;
    }
    bms_log(BMS_LOG_INFO, "cli", "msg=\"stopping\" signal=%s",
            sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "?");
    bms_server_stop(server);
    bms_sched_destroy(sched);
    return BMS__EXIT_OK;
}


static int serve(const struct serve_opts *opts, const sigset_t *signals)
{
    char store_path[PATH_SIZE];
    struct bms_store *store = NULL;
    struct bms_repo *repo = NULL;
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
    if (bms_repo_open(opts->repo_dir, &repo, &diag) != BMS_OK) {
        bms_store_close(store);
        return fail("cannot open the model repository", diag.msg);
    }
    status = run_server(opts, repo, store, signals);
    bms_store_close(store);
    bms_repo_close(repo);
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
