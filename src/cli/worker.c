/*
 * `bms worker`: the hidden command the scheduler starts for each instance
 * of a model served with "isolation": "process".  It is not meant for a
 * person: the server passes the model, its socket and its shared region
 * as descriptors it inherited, and the command serves executions until
 * the server closes the socket.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "bms/worker.h"
#include "cli/cli.h"

enum {
    OPT_MODEL = 'm',
    OPT_VERSION = 'v',
    OPT_THREADS = 't',
    OPT_FD = 'f',
    OPT_SHM_FD = 's',
    OPT_MEMORY = 'M'
};

static const struct option long_opts[] = {
    { "model", required_argument, NULL, OPT_MODEL },
    { "version", required_argument, NULL, OPT_VERSION },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "fd", required_argument, NULL, OPT_FD },
    { "shm-fd", required_argument, NULL, OPT_SHM_FD },
    { "memory-mb", required_argument, NULL, OPT_MEMORY },
    { NULL, 0, NULL, 0 }
};

struct worker_opts {
    const char *model_path;
    long version;
    long threads;
    long fd;
    long shm_fd;
    long memory_mb;
};


static int parse_opts(int argc, char **argv, struct worker_opts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->fd = -1;
    o->shm_fd = -1;
    o->threads = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        const char *name = NULL;
        long *dst = NULL;
        long min = 0;
        long max = 1L << 30;

        switch (c) {
        case OPT_MODEL:
            o->model_path = optarg;
            continue;
        case OPT_VERSION:
            name = "version";
            dst = &o->version;
            break;
        case OPT_THREADS:
            name = "threads";
            dst = &o->threads;
            min = 1;
            max = 256;
            break;
        case OPT_FD:
            name = "fd";
            dst = &o->fd;
            break;
        case OPT_SHM_FD:
            name = "shm-fd";
            dst = &o->shm_fd;
            break;
        case OPT_MEMORY:
            name = "memory-mb";
            dst = &o->memory_mb;
            break;
        default:
            return bms__cli_bad_option("worker", argv, c);
        }
        if (bms__cli_parse_long("worker", name, optarg, min, max,
                                dst) != 0) {
            return BMS__EXIT_USAGE;
        }
    }
    if (o->model_path == NULL || o->fd < 0 || o->shm_fd < 0) {
        return bms__cli_usage_error("worker", "--model, --fd and --shm-fd "
                                    "are required");
    }
    return BMS__EXIT_OK;
}


int bms__cli_worker(int argc, char **argv)
{
    struct worker_opts o;
    struct bms_diag diag;
    enum bms_status rc;
    int status = parse_opts(argc, argv, &o);

    if (status != BMS__EXIT_OK) {
        return status;
    }
    diag.msg[0] = '\0';
    rc = bms_worker_serve(o.model_path, (int)o.threads, o.memory_mb,
                          (int)o.fd, (int)o.shm_fd, &diag);
    if (rc != BMS_OK) {
        bms_log(BMS_LOG_ERROR, "worker", "msg=\"worker stopped\" "
                "model_path=\"%s\" version=%ld error=\"%s\"", o.model_path,
                o.version, diag.msg);
        return BMS__EXIT_FAIL;
    }
    return BMS__EXIT_OK;
}
