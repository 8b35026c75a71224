/*
 * `bms keys`: make, list, revoke and limit API keys in the store of a
 * data folder (the same DIR/bms.db that `bms serve --data-dir DIR` uses),
 * and set the rate limits of models.  A running server sees the changes
 * within about a second.  The token of a new key is printed once, here;
 * the store keeps only its salted hash.
 *
 * Usage errors print one line and exit 2; a failed store operation prints
 * one line and exits 1.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bms/store.h"
#include "cli/cli.h"
#include "server/auth.h"
#include "server/v2_json.h"

#define PATH_SIZE 4096

struct keys_opts {
    const char *data_dir;
    const char *name;
    const char *role;
    const char *models;
    double rps;
    long burst;
    int has_rps;
    int has_burst;
    int as_json;
};

enum {
    OPT_NAME = 256,
    OPT_ROLE,
    OPT_MODELS,
    OPT_RPS,
    OPT_BURST,
    OPT_DATA_DIR,
    OPT_JSON
};

static const struct option long_opts[] = {
    { "name", required_argument, NULL, OPT_NAME },
    { "role", required_argument, NULL, OPT_ROLE },
    { "models", required_argument, NULL, OPT_MODELS },
    { "rps", required_argument, NULL, OPT_RPS },
    { "burst", required_argument, NULL, OPT_BURST },
    { "data-dir", required_argument, NULL, OPT_DATA_DIR },
    { "json", no_argument, NULL, OPT_JSON },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

static const char keys_usage[] =
    "usage: bms keys create --name N --role admin|user [--models a,b]\n"
    "                       [--rps R [--burst B]] [--data-dir DIR]\n"
    "       bms keys list [--json] [--data-dir DIR]\n"
    "       bms keys revoke ID [--data-dir DIR]\n"
    "       bms keys limit ID --rps R [--burst B] [--data-dir DIR]\n"
    "       bms keys model-limit MODEL --rps R [--burst B] [--data-dir DIR]\n"
    "\n"
    "--rps 0 removes a limit; --burst defaults to the rate rounded up.\n"
    "The data folder defaults to ./data.\n";


/* One line on stderr; returns status. */
__attribute__((format(printf, 2, 3)))
static int say(int status, const char *fmt, ...)
{
    va_list ap;

    fputs("bms keys: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}


static int parse_rps(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0 ||
        v > BMS__RATE_MAX) {
        return say(BMS__EXIT_USAGE, "--rps: expected a number in 0..%g, "
                   "got '%s'", BMS__RATE_MAX, s);
    }
    *out = v;
    return 0;
}


/* Parse the options after the subcommand.  Returns -1 to go on, or an
 * exit status. */
static int parse_opts(int argc, char **argv, struct keys_opts *opts)
{
    int c;

    memset(opts, 0, sizeof(*opts));
    opts->data_dir = "data";
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_NAME:
            opts->name = optarg;
            break;
        case OPT_ROLE:
            opts->role = optarg;
            break;
        case OPT_MODELS:
            opts->models = optarg;
            break;
        case OPT_RPS:
            if (parse_rps(optarg, &opts->rps) != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->has_rps = 1;
            break;
        case OPT_BURST:
            if (bms__cli_parse_long("keys", "burst", optarg, 0,
                                    (long)BMS__RATE_MAX, &opts->burst)
                != 0) {
                return BMS__EXIT_USAGE;
            }
            opts->has_burst = 1;
            break;
        case OPT_DATA_DIR:
            opts->data_dir = optarg;
            break;
        case OPT_JSON:
            opts->as_json = 1;
            break;
        case 'h':
            fputs(keys_usage, stdout);
            return BMS__EXIT_OK;
        case ':':
            return say(BMS__EXIT_USAGE, "option '%s' needs a value",
                       argv[optind - 1]);
        default:
            return say(BMS__EXIT_USAGE, "unknown option '%s'",
                       argv[optind - 1]);
        }
    }
    return -1;
}


/* Open the store of the data folder; create: make both when missing. */
static int open_store(const char *data_dir, int create,
                      struct bms_store **out)
{
    char path[PATH_SIZE];
    struct bms_diag diag;
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/bms.db", data_dir);

    if (n < 0 || (size_t)n >= sizeof(path)) {
        return say(BMS__EXIT_FAIL, "%s: path too long", data_dir);
    }
    if (create && mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        return say(BMS__EXIT_FAIL, "%s: %s", data_dir, strerror(errno));
    }
    if (!create && stat(path, &st) != 0) {
        return say(BMS__EXIT_FAIL, "%s: no store (see --data-dir)", path);
    }
    diag.msg[0] = '\0';
    if (bms_store_open_sqlite(path, out, &diag) != BMS_OK) {
        return say(BMS__EXIT_FAIL, "%s", diag.msg);
    }
    return 0;
}


static int create_key(const struct keys_opts *opts)
{
    struct bms_store *store = NULL;
    struct bms_key key;
    struct bms_diag diag;
    char token[BMS__TOKEN_SIZE];
    int status;

    if (opts->name == NULL || opts->role == NULL) {
        return say(BMS__EXIT_USAGE, "create: --%s is required",
                   opts->name == NULL ? "name" : "role");
    }
    if (opts->has_burst && !opts->has_rps) {
        return say(BMS__EXIT_USAGE, "create: --burst needs --rps");
    }
    memset(&key, 0, sizeof(key));
    snprintf(key.name, sizeof(key.name), "%s", opts->name);
    snprintf(key.role, sizeof(key.role), "%s", opts->role);
    snprintf(key.models, sizeof(key.models), "%s",
             opts->models != NULL ? opts->models : "");
    key.requests_per_s = opts->rps;
    key.burst = (int)opts->burst;
    diag.msg[0] = '\0';
    if (strlen(opts->name) >= sizeof(key.name) ||
        strlen(opts->role) >= sizeof(key.role) ||
        (opts->models != NULL && strlen(opts->models) >= sizeof(key.models))
        || bms__key_validate(&key, &diag) != BMS_OK) {
        return say(BMS__EXIT_USAGE, "create: %s", diag.msg[0] != '\0'
                   ? diag.msg : "a value is too long");
    }
    status = open_store(opts->data_dir, 1, &store);
    if (status != 0) {
        return status;
    }
    status = BMS__EXIT_FAIL;
    if (bms__key_generate(&key, token, sizeof(token), &diag) == BMS_OK) {
        key.created_us = bms_wall_us();
        if (bms_store_put_key(store, &key, &diag) == BMS_OK) {
            status = BMS__EXIT_OK;
        }
    }
    bms_store_close(store);
    if (status != BMS__EXIT_OK) {
        return say(status, "%s", diag.msg);
    }
    printf("id     %s\ntoken  %s\n", key.id, token);
    fprintf(stderr, "bms keys: the token is shown only now: keep it; the "
            "store holds only its hash\n");
    memset(token, 0, sizeof(token));
    return BMS__EXIT_OK;
}


/* UTC ISO-8601 seconds: 2026-01-02T09:14:03Z. */
static void format_time(char *out, size_t size, int64_t ts_us)
{
    time_t sec = (time_t)(ts_us / 1000000);
    struct tm tm;

    if (ts_us <= 0 || gmtime_r(&sec, &tm) == NULL) {
        snprintf(out, size, "-");
        return;
    }
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


static int print_key(void *ud, const struct bms_key *key)
{
    const int *as_json = ud;
    char created[32];

    if (*as_json) {
        struct bms_buf buf = { NULL, 0, 0 };
        struct bms__json j = { &buf, BMS_OK };

        bms__key_json(&j, key);
        if (j.rc == BMS_OK) {
            printf("%s\n", buf.data);
        }
        bms_buf_fini(&buf);
        return j.rc != BMS_OK;
    }
    format_time(created, sizeof(created), key->created_us);
    printf("%-12s  %-20.63s  %-5s  %-24.1023s  %8g  %6d  %-20s  %s\n",
           key->id, key->name, key->role,
           key->models[0] != '\0' ? key->models : "*", key->requests_per_s,
           key->burst, created, key->revoked_us ? "revoked" : "active");
    return 0;
}


static int list_keys(const struct keys_opts *opts)
{
    struct bms_store *store = NULL;
    struct bms_diag diag;
    int status = open_store(opts->data_dir, 0, &store);

    if (status != 0) {
        return status;
    }
    if (!opts->as_json) {
        printf("%-12s  %-20s  %-5s  %-24s  %8s  %6s  %-20s  %s\n", "ID",
               "NAME", "ROLE", "MODELS", "RPS", "BURST", "CREATED",
               "STATUS");
    }
    diag.msg[0] = '\0';
    status = bms_store_list_keys(store, 0, print_key, (void *)&opts->as_json,
                                 &diag) == BMS_OK ? BMS__EXIT_OK
                                                  : BMS__EXIT_FAIL;
    bms_store_close(store);
    if (status != BMS__EXIT_OK) {
        return say(status, "%s", diag.msg);
    }
    return BMS__EXIT_OK;
}


/* revoke, limit and model-limit: one store call on target. */
static int change(const char *cmd, const char *target,
                  const struct keys_opts *opts)
{
    struct bms_store *store = NULL;
    struct bms_key key;
    struct bms_diag diag;
    enum bms_status rc;
    int status;

    diag.msg[0] = '\0';
    memset(&key, 0, sizeof(key));
    if (strcmp(cmd, "revoke") != 0) {
        /* Check the limit as a key of role user would be checked. */
        snprintf(key.name, sizeof(key.name), "-");
        snprintf(key.role, sizeof(key.role), "user");
        key.requests_per_s = opts->rps;
        key.burst = (int)opts->burst;
        if (strcmp(cmd, "model-limit") == 0) {
            /* The model name is checked as an allow-list entry. */
            snprintf(key.models, sizeof(key.models), "%s", target);
        }
        if (!opts->has_rps) {
            return say(BMS__EXIT_USAGE, "%s: --rps is required", cmd);
        }
        if (bms__key_validate(&key, &diag) != BMS_OK) {
            return say(BMS__EXIT_USAGE, "%s: %s", cmd, diag.msg);
        }
    }
    status = open_store(opts->data_dir, 0, &store);
    if (status != 0) {
        return status;
    }
    if (strcmp(cmd, "revoke") == 0) {
        rc = bms_store_revoke_key(store, target, bms_wall_us(), &diag);
    } else if (strcmp(cmd, "limit") == 0) {
        rc = bms_store_set_key_limit(store, target, key.requests_per_s,
                                     key.burst, &diag);
    } else {
        rc = bms_store_set_model_limit(store, target, key.requests_per_s,
                                       key.burst, &diag);
    }
    bms_store_close(store);
    if (rc != BMS_OK) {
        return say(BMS__EXIT_FAIL, "%s", diag.msg);
    }
    return BMS__EXIT_OK;
}


/* The one positional argument of revoke, limit and model-limit. */
static const char *target_arg(int argc, char **argv, const char *cmd,
                              int *status)
{
    if (optind >= argc) {
        *status = say(BMS__EXIT_USAGE, "%s: expected %s", cmd,
                      strcmp(cmd, "model-limit") == 0 ? "a model name"
                                                      : "a key id");
        return NULL;
    }
    if (optind + 1 < argc) {
        *status = say(BMS__EXIT_USAGE, "%s: unexpected argument '%s'",
                      cmd, argv[optind + 1]);
        return NULL;
    }
    if (strlen(argv[optind]) > BMS__MODEL_NAME_MAX) {
        *status = say(BMS__EXIT_USAGE, "%s: '%.20s...' is too long", cmd,
                      argv[optind]);
        return NULL;
    }
    return argv[optind];
}


int bms__cli_keys(int argc, char **argv)
{
    struct keys_opts opts;
    const char *cmd = argc > 1 ? argv[1] : NULL;
    const char *target;
    int status;

    if (cmd == NULL || strcmp(cmd, "help") == 0 ||
        strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(keys_usage, cmd == NULL ? stderr : stdout);
        return cmd == NULL ? BMS__EXIT_USAGE : BMS__EXIT_OK;
    }
    status = parse_opts(argc - 1, argv + 1, &opts);
    if (status >= 0) {
        return status;
    }
    /* optind now counts within argv + 1. */
    if (strcmp(cmd, "create") == 0 || strcmp(cmd, "list") == 0) {
        if (optind < argc - 1) {
            return say(BMS__EXIT_USAGE, "%s: unexpected argument '%s'",
                       cmd, argv[optind + 1]);
        }
        return cmd[0] == 'c' ? create_key(&opts) : list_keys(&opts);
    }
    if (strcmp(cmd, "revoke") == 0 || strcmp(cmd, "limit") == 0 ||
        strcmp(cmd, "model-limit") == 0) {
        target = target_arg(argc - 1, argv + 1, cmd, &status);
        return target == NULL ? status : change(cmd, target, &opts);
    }
    return say(BMS__EXIT_USAGE, "unknown subcommand '%s' (create, list, "
               "revoke, limit, model-limit)", cmd);
}
