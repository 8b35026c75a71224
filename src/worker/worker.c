/*
 * The server's side of a worker child: starting it, one execution at a
 * time through the shared region, and noticing when it dies or hangs.
 *
 * Invariant: w->up is set exactly while w->pid is a live child that has
 * said READY and w->fd is its socket; every way out of an exchange that
 * is not a matching DONE kills and reaps the child, so a late or stray
 * reply can never be read as the answer to a later request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bms/worker.h"
#include "worker/wire.h"

#define ARG_SIZE 32              /* one number as a decimal argument */
#define REGION_START_SIZE ((size_t)1 << 16)  /* bytes */
#define EXIT_WAIT_MS 1000        /* for a child that closed its socket */

struct bms_worker {
    struct bms_worker_config cfg;    /* strings owned below */
    char *name;
    char *model_path;
    pid_t pid;
    int fd;                      /* our end of the socketpair, or -1 */
    struct bms__region region;
    int up;
    uint64_t seq;                /* of the last RUN sent */
    int n_failures;              /* crashes or failed starts in a row */
    int64_t restart_at_us;
    unsigned char *msg;          /* one datagram */
    size_t msg_size;
};


static size_t msg_bytes(int n_tensors)
{
    return sizeof(struct bms__wire_head) +
           (size_t)n_tensors * sizeof(struct bms__wire_tensor);
}


static char *copy_string(const char *s)
{
    size_t len = strlen(s);
    char *c = malloc(len + 1);

    if (c != NULL) {
        memcpy(c, s, len + 1);
    }
    return c;
}


static int64_t backoff_us(int n_failures)
{
    int64_t us = BMS_WORKER_BACKOFF_MIN_US;

    for (int i = 1; i < n_failures && us < BMS_WORKER_BACKOFF_MAX_US; i++) {
        us *= 2;
    }
    return us < BMS_WORKER_BACKOFF_MAX_US ? us : BMS_WORKER_BACKOFF_MAX_US;
}


/* ---- the child's end ---- */

/* How a reaped child ended, for the message ("signal 11"). */
static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status)) {
        snprintf(buf, size, "signal %d", WTERMSIG(status));
    } else if (WIFEXITED(status)) {
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, size, "status %d", status);
    }
}


/* Reap the child, killing it first when kill_first is set or when it
 * does not end by itself within EXIT_WAIT_MS.  Writes how it ended. */
static void reap(struct bms_worker *w, int kill_first, char *how,
                 size_t size)
{
    int status = 0;
    pid_t got = 0;

    if (kill_first) {
        kill(w->pid, SIGKILL);
    }
    for (int i = 0; !kill_first && i < EXIT_WAIT_MS / 10; i++) {
        got = waitpid(w->pid, &status, WNOHANG);
        if (got != 0) {
            break;
        }
        usleep(10 * 1000);
    }
    if (got == 0) {
        kill(w->pid, SIGKILL);
        while ((got = waitpid(w->pid, &status, 0)) < 0 && errno == EINTR) {
        }
    }
    if (got < 0) {
        snprintf(how, size, "lost (%s)", strerror(errno));
    } else {
        describe_exit(status, how, size);
    }
    close(w->fd);
    w->fd = -1;
    w->pid = -1;
    w->up = 0;
}


/* The child is gone or must go: reap it, count it, say why in diag. */
static enum bms_status child_lost(struct bms_worker *w, int hung,
                                  const char *what, struct bms_diag *diag)
{
    char how[64];
    pid_t pid = w->pid;
    int64_t delay_us;

    reap(w, hung, how, sizeof(how));
    w->n_failures++;
    delay_us = backoff_us(w->n_failures);
    w->restart_at_us = bms_now_us() + delay_us;
    bms_log(BMS_LOG_WARN, "worker", "msg=\"worker lost\" model=%s "
            "version=%" PRId64 " pid=%d what=\"%s\" end=\"%s\" "
            "restart_in_ms=%" PRId64, w->name, w->cfg.version, (int)pid,
            what, how, delay_us / 1000);
    if (hung) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "worker %s, killed",
                            what);
    }
    return bms_diag_set(diag, BMS_ERR_INTERNAL, "worker %s: %s", what, how);
}


/*
 * Wait until deadline_us for one datagram of the given kind and sequence
 * number.  Anything else (silence, end of the socket, a broken or stray
 * message) loses the child.
 */
static enum bms_status await_reply(struct bms_worker *w, uint32_t kind,
                                   uint64_t seq, int64_t deadline_us,
                                   int64_t waited_from_us,
                                   struct bms_diag *diag)
{
    const struct bms__wire_head *h = (const struct bms__wire_head *)w->msg;
    struct pollfd p;
    ssize_t n;
    char what[64];

    for (;;) {
        int64_t left_us = deadline_us - bms_now_us();
        int ready;

        if (left_us <= 0) {
            snprintf(what, sizeof(what), "hung: no answer in %" PRId64
                     " ms", (bms_now_us() - waited_from_us) / 1000);
            return child_lost(w, 1, what, diag);
        }
        p.fd = w->fd;
        p.events = POLLIN;
        p.revents = 0;
        ready = poll(&p, 1, (int)((left_us + 999) / 1000));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready != 0) {
            break;
        }
    }
    n = recv(w->fd, w->msg, w->msg_size, MSG_DONTWAIT);
    if (n <= 0) {
        return child_lost(w, 0, "crashed", diag);
    }
    if (n < (ssize_t)sizeof(*h) || h->magic != BMS__WIRE_MAGIC ||
        h->kind != kind || h->seq != seq || h->n_tensors < 0 ||
        h->n_tensors > BMS__WIRE_MAX_TENSORS ||
        (size_t)n != msg_bytes(h->n_tensors)) {
        return child_lost(w, 1, "answered out of turn", diag);
    }
    return BMS_OK;
}


/* ---- starting ---- */

/* In the forked child: only async-signal-safe calls until exec. */
static void exec_child(char **argv, int fd, int shm_fd)
{
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
    fcntl(fd, F_SETFD, 0);
    fcntl(shm_fd, F_SETFD, 0);
    execv("/proc/self/exe", argv);
    _exit(127);
}


static enum bms_status spawn(struct bms_worker *w, struct bms_diag *diag)
{
    char version[ARG_SIZE], threads[ARG_SIZE], fd_arg[ARG_SIZE];
    char shm_arg[ARG_SIZE], memory[ARG_SIZE];
    char *argv[16];
    int sv[2];
    int64_t start_us = bms_now_us();
    const struct bms__wire_head *h = (const struct bms__wire_head *)w->msg;
    enum bms_status rc;
    int n = 0;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        return bms_diag_set(diag, BMS_ERR_IO, "worker: socketpair: %s",
                            strerror(errno));
    }
    snprintf(version, sizeof(version), "%" PRId64, w->cfg.version);
    snprintf(threads, sizeof(threads), "%d", w->cfg.n_threads);
    snprintf(fd_arg, sizeof(fd_arg), "%d", sv[1]);
    snprintf(shm_arg, sizeof(shm_arg), "%d", w->region.fd);
    snprintf(memory, sizeof(memory), "%" PRId64, w->cfg.memory_mb);
    argv[n++] = "bms";
    argv[n++] = "worker";
    argv[n++] = "--model";
    argv[n++] = w->model_path;
    argv[n++] = "--version";
    argv[n++] = version;
    argv[n++] = "--threads";
    argv[n++] = threads;
    argv[n++] = "--fd";
    argv[n++] = fd_arg;
    argv[n++] = "--shm-fd";
    argv[n++] = shm_arg;
    argv[n++] = "--memory-mb";
    argv[n++] = memory;
    argv[n] = NULL;

    w->pid = fork();
    if (w->pid == 0) {
        exec_child(argv, sv[1], w->region.fd);
    }
    close(sv[1]);
    if (w->pid < 0) {
        close(sv[0]);
        return bms_diag_set(diag, BMS_ERR_IO, "worker: fork: %s",
                            strerror(errno));
    }
    w->fd = sv[0];
    rc = await_reply(w, BMS__WIRE_READY, 0, start_us +
                     w->cfg.timeout_ms * 1000, start_us, diag);
    if (rc != BMS_OK) {
        bms_diag_prefix(diag, "worker start");
        return rc;
    }
    if (h->status != BMS_OK) {
        char how[64];

        rc = (enum bms_status)h->status;
        bms_diag_set(diag, rc, "%s", h->msg);
        reap(w, 0, how, sizeof(how));
        return rc;
    }
    w->up = 1;
    return BMS_OK;
}


enum bms_status bms_worker_create(const struct bms_worker_config *config,
                                  struct bms_worker **out,
                                  struct bms_diag *diag)
{
    struct bms_worker *w = calloc(1, sizeof(*w));
    enum bms_status rc;

    if (w == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "worker: out of memory");
    }
    w->cfg = *config;
    w->fd = -1;
    w->pid = -1;
    w->region.fd = -1;
    w->msg_size = msg_bytes(BMS__WIRE_MAX_TENSORS);
    w->name = copy_string(config->name);
    w->model_path = copy_string(config->model_path);
    w->msg = calloc(1, w->msg_size);
    if (w->name == NULL || w->model_path == NULL || w->msg == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "worker: out of memory");
        goto out;
    }
    if (config->n_inputs > BMS__WIRE_MAX_TENSORS ||
        config->n_outputs > BMS__WIRE_MAX_TENSORS) {
        rc = bms_diag_set(diag, BMS_ERR_LIMIT, "worker: more than %d "
                          "inputs or outputs", BMS__WIRE_MAX_TENSORS);
        goto out;
    }
    w->region.fd = memfd_create("bms-worker", MFD_CLOEXEC);
    if (w->region.fd < 0 ||
        bms__region_map(&w->region, REGION_START_SIZE, 1) != BMS_OK) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "worker: shared region: %s",
                          strerror(errno));
        goto out;
    }
    rc = spawn(w, diag);

out:
    if (rc != BMS_OK) {
        bms_worker_destroy(w);
        return rc;
    }
    *out = w;
    return BMS_OK;
}


void bms_worker_destroy(struct bms_worker *w)
{
    char how[64];

    if (w == NULL) {
        return;
    }
    if (w->pid > 0) {
        struct bms__wire_head *h = (struct bms__wire_head *)w->msg;

        memset(h, 0, sizeof(*h));
        h->magic = BMS__WIRE_MAGIC;
        h->kind = BMS__WIRE_QUIT;
        send(w->fd, h, sizeof(*h), MSG_NOSIGNAL);
        reap(w, 0, how, sizeof(how));
    }
    bms__region_unmap(&w->region);
    if (w->region.fd >= 0) {
        close(w->region.fd);
    }
    free(w->msg);
    free(w->model_path);
    free(w->name);
    free(w);
}


/* ---- running ---- */

/* Lay the inputs out in the region and describe them in the message. */
static enum bms_status put_inputs(struct bms_worker *w,
                                  const struct bms_tensor *inputs,
                                  struct bms_diag *diag)
{
    struct bms__wire_tensor *t =
        (struct bms__wire_tensor *)(w->msg + sizeof(struct bms__wire_head));
    size_t offset = 0;

    for (int i = 0; i < w->cfg.n_inputs; i++) {
        if (bms_dtype_size(inputs[i].dtype) == 0) {
            return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "input %d: "
                                "datatype not served by a worker", i);
        }
        offset = bms__wire_align(offset) + bms_tensor_size(&inputs[i]);
    }
    if (bms__region_map(&w->region, offset, 1) != BMS_OK) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "worker: cannot grow the "
                            "shared region to %zu bytes", offset);
    }
    offset = 0;
    for (int i = 0; i < w->cfg.n_inputs; i++) {
        size_t size = bms_tensor_size(&inputs[i]);

        offset = bms__wire_align(offset);
        t[i].dtype = inputs[i].dtype;
        t[i].n_dims = inputs[i].n_dims;
        memcpy(t[i].dims, inputs[i].dims, sizeof(t[i].dims));
        t[i].offset = offset;
        t[i].size = size;
        if (size > 0) {
            memcpy((unsigned char *)w->region.base + offset,
                   inputs[i].data, size);
        }
        offset += size;
    }
    return BMS_OK;
}


/* Point the outputs at the region after checking what DONE says. */
static enum bms_status take_outputs(struct bms_worker *w,
                                    struct bms_tensor *outputs,
                                    struct bms_diag *diag)
{
    const struct bms__wire_head *h = (const struct bms__wire_head *)w->msg;
    const struct bms__wire_tensor *t =
        (const struct bms__wire_tensor *)(h + 1);

    if (h->n_tensors != w->cfg.n_outputs ||
        bms__region_map(&w->region, h->region_size, 0) != BMS_OK) {
        return child_lost(w, 1, "answered a broken message", diag);
    }
    for (int j = 0; j < w->cfg.n_outputs; j++) {
        if (bms__wire_tensor_check(&t[j], w->region.size) != 0) {
            return child_lost(w, 1, "answered a broken tensor", diag);
        }
        outputs[j].dtype = (enum bms_dtype)t[j].dtype;
        outputs[j].n_dims = t[j].n_dims;
        memcpy(outputs[j].dims, t[j].dims, sizeof(t[j].dims));
        outputs[j].data = (unsigned char *)w->region.base + t[j].offset;
    }
    return BMS_OK;
}


enum bms_status bms_worker_run(struct bms_worker *w,
                               const struct bms_tensor *inputs,
                               struct bms_tensor *outputs,
                               int64_t deadline_us,
                               struct bms_diag *diag)
{
    struct bms__wire_head *h = (struct bms__wire_head *)w->msg;
    int64_t now_us = bms_now_us();
    int64_t limit_us = now_us + w->cfg.timeout_ms * 1000;
    size_t len = msg_bytes(w->cfg.n_inputs);
    enum bms_status rc;

    if (!w->up) {
        return bms_diag_set(diag, BMS_ERR_UNAVAILABLE, "instance "
                            "restarting");
    }
    rc = put_inputs(w, inputs, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    memset(h, 0, sizeof(*h));
    h->magic = BMS__WIRE_MAGIC;
    h->kind = BMS__WIRE_RUN;
    h->seq = ++w->seq;
    h->region_size = w->region.size;
    h->n_tensors = w->cfg.n_inputs;
    if (send(w->fd, w->msg, len, MSG_NOSIGNAL) != (ssize_t)len) {
        return child_lost(w, 0, "crashed", diag);
    }
    if (deadline_us > 0 && deadline_us < limit_us) {
        limit_us = deadline_us;
    }
    rc = await_reply(w, BMS__WIRE_DONE, w->seq, limit_us, now_us, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (h->status != BMS_OK) {
        return bms_diag_set(diag, (enum bms_status)h->status, "%s",
                            h->msg);
    }
    rc = take_outputs(w, outputs, diag);
    if (rc == BMS_OK) {
        w->n_failures = 0;
    }
    return rc;
}


int bms_worker_up(const struct bms_worker *w)
{
    return w->up;
}


int64_t bms_worker_restart_at(const struct bms_worker *w)
{
    return w->restart_at_us;
}


enum bms_status bms_worker_restart(struct bms_worker *w,
                                   struct bms_diag *diag)
{
    enum bms_status rc;

    if (w->up) {
        return BMS_OK;
    }
    rc = spawn(w, diag);
    if (rc != BMS_OK) {
        /* A child that died while starting was counted already. */
        if (w->restart_at_us <= bms_now_us()) {
            w->n_failures++;
            w->restart_at_us = bms_now_us() + backoff_us(w->n_failures);
        }
        bms_log(BMS_LOG_WARN, "worker", "msg=\"worker restart failed\" "
                "model=%s version=%" PRId64 " error=\"%s\"", w->name,
                w->cfg.version, diag != NULL ? diag->msg : "");
        return rc;
    }
    bms_log(BMS_LOG_WARN, "worker", "msg=\"worker restarted\" model=%s "
            "version=%" PRId64 " pid=%d", w->name, w->cfg.version,
            (int)w->pid);
    return BMS_OK;
}
