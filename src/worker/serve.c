/*
 * The worker child's loop: load one model, say READY, then answer each
 * RUN with a DONE carrying the same sequence number.  Inputs are read
 * from the shared region and outputs written back into it (from offset 0:
 * the inputs are no longer needed once the session has run), growing the
 * region when they do not fit.  A broken message ends the child, which
 * the parent sees as a crash: a child that cannot trust its input should
 * not guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bms/engine.h"
#include "bms/worker.h"
#include "worker/wire.h"

struct child {
    int fd;
    struct bms__region region;
    struct bms_model *model;
    struct bms_session *session;
    int n_inputs;
    int n_outputs;
    struct bms_tensor *inputs;
    struct bms_tensor *outputs;
    unsigned char *msg;          /* one datagram, in or out */
    size_t msg_size;
};


static size_t msg_bytes(int n_tensors)
{
    return sizeof(struct bms__wire_head) +
           (size_t)n_tensors * sizeof(struct bms__wire_tensor);
}


static enum bms_status send_reply(struct child *c, uint32_t kind,
                                  uint64_t seq, enum bms_status status,
                                  const char *msg, int n_tensors)
{
    struct bms__wire_head *h = (struct bms__wire_head *)c->msg;
    size_t len = msg_bytes(n_tensors);

    h->magic = BMS__WIRE_MAGIC;
    h->kind = kind;
    h->seq = seq;
    h->region_size = c->region.size;
    h->status = status;
    h->n_tensors = n_tensors;
    memset(h->msg, 0, sizeof(h->msg));
    if (msg != NULL) {
        snprintf(h->msg, sizeof(h->msg), "%s", msg);
    }
    if (send(c->fd, c->msg, len, MSG_NOSIGNAL) != (ssize_t)len) {
        return BMS_ERR_IO;
    }
    return BMS_OK;
}


/* Point the inputs into the region after checking every descriptor. */
static enum bms_status take_inputs(struct child *c,
                                   const struct bms__wire_head *h)
{
    const struct bms__wire_tensor *t =
        (const struct bms__wire_tensor *)(h + 1);

    if (h->n_tensors != c->n_inputs ||
        bms__region_map(&c->region, h->region_size, 0) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    for (int i = 0; i < c->n_inputs; i++) {
        if (bms__wire_tensor_check(&t[i], c->region.size) != 0) {
            return BMS_ERR_INVALID;
        }
        c->inputs[i].dtype = (enum bms_dtype)t[i].dtype;
        c->inputs[i].n_dims = t[i].n_dims;
        memcpy(c->inputs[i].dims, t[i].dims, sizeof(t[i].dims));
        c->inputs[i].data = (unsigned char *)c->region.base + t[i].offset;
    }
    return BMS_OK;
}


/* Copy the session's outputs into the region and describe them. */
static enum bms_status put_outputs(struct child *c, struct bms_diag *diag)
{
    struct bms__wire_tensor *t =
        (struct bms__wire_tensor *)(c->msg + sizeof(struct bms__wire_head));
    size_t offset = 0;

    for (int j = 0; j < c->n_outputs; j++) {
        if (bms_dtype_size(c->outputs[j].dtype) == 0) {
            return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "output %d: "
                                "datatype not served by a worker", j);
        }
        offset = bms__wire_align(offset) +
                 bms_tensor_size(&c->outputs[j]);
    }
    if (bms__region_map(&c->region, offset > 0 ? offset : 1, 1) != BMS_OK) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "worker: cannot grow the "
                            "shared region to %zu bytes", offset);
    }
    offset = 0;
    for (int j = 0; j < c->n_outputs; j++) {
        size_t size = bms_tensor_size(&c->outputs[j]);

        offset = bms__wire_align(offset);
        t[j].dtype = c->outputs[j].dtype;
        t[j].n_dims = c->outputs[j].n_dims;
        memcpy(t[j].dims, c->outputs[j].dims, sizeof(t[j].dims));
        t[j].offset = offset;
        t[j].size = size;
        if (size > 0) {
            memcpy((unsigned char *)c->region.base + offset,
                   c->outputs[j].data, size);
        }
        offset += size;
    }
    return BMS_OK;
}


/* One RUN: its DONE is sent in every case but a broken message. */
static enum bms_status serve_run(struct child *c,
                                 const struct bms__wire_head *h)
{
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    if (take_inputs(c, h) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    rc = bms_session_run(c->session, c->inputs, c->outputs, &diag);
    if (rc == BMS_OK) {
        rc = put_outputs(c, &diag);
    }
    if (rc != BMS_OK) {
        return send_reply(c, BMS__WIRE_DONE, h->seq, rc, diag.msg, 0);
    }
    return send_reply(c, BMS__WIRE_DONE, h->seq, BMS_OK, NULL,
                      c->n_outputs);
}


static enum bms_status serve_loop(struct child *c)
{
    for (;;) {
        const struct bms__wire_head *h =
            (const struct bms__wire_head *)c->msg;
        ssize_t n = recv(c->fd, c->msg, c->msg_size, 0);
        enum bms_status rc;

        if (n == 0) {
            return BMS_OK;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < (ssize_t)sizeof(*h) || h->magic != BMS__WIRE_MAGIC ||
            h->n_tensors < 0 || h->n_tensors > BMS__WIRE_MAX_TENSORS ||
            (size_t)n != msg_bytes(h->n_tensors)) {
            return BMS_ERR_INVALID;
        }
        if (h->kind == BMS__WIRE_QUIT) {
            return BMS_OK;
        }
        if (h->kind != BMS__WIRE_RUN) {
            return BMS_ERR_INVALID;
        }
        rc = serve_run(c, h);
        if (rc != BMS_OK) {
            return rc;
        }
    }
}


static enum bms_status child_load(struct child *c, const char *path,
                                  int n_threads, struct bms_diag *diag)
{
    enum bms_status rc;

    bms_engine_set_threads(n_threads);
    rc = bms_model_load_file(path, &c->model, diag);
    if (rc == BMS_OK) {
        rc = bms_session_create(c->model, &c->session, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    c->n_inputs = bms_model_n_inputs(c->model);
    c->n_outputs = bms_model_n_outputs(c->model);
    if (c->n_inputs > BMS__WIRE_MAX_TENSORS ||
        c->n_outputs > BMS__WIRE_MAX_TENSORS) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "worker: more than %d "
                            "inputs or outputs", BMS__WIRE_MAX_TENSORS);
    }
    c->inputs = calloc((size_t)c->n_inputs + 1, sizeof(*c->inputs));
    c->outputs = calloc((size_t)c->n_outputs + 1, sizeof(*c->outputs));
    if (c->inputs == NULL || c->outputs == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "worker: out of memory");
    }
    return BMS_OK;
}


static enum bms_status limit_memory(int64_t memory_mb, struct bms_diag *diag)
{
    struct rlimit lim;

    if (memory_mb <= 0) {
        return BMS_OK;
    }
    lim.rlim_cur = (rlim_t)memory_mb * 1024 * 1024;
    lim.rlim_max = lim.rlim_cur;
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        return bms_diag_set(diag, BMS_ERR_IO, "worker: cannot limit memory "
                            "to %lld MB: %s", (long long)memory_mb,
                            strerror(errno));
    }
    return BMS_OK;
}


enum bms_status bms_worker_serve(const char *model_path, int n_threads,
                                 int64_t memory_mb, int fd, int shm_fd,
                                 struct bms_diag *diag)
{
    struct child c;
    enum bms_status rc;

    memset(&c, 0, sizeof(c));
    c.fd = fd;
    c.region.fd = shm_fd;
    c.msg_size = msg_bytes(BMS__WIRE_MAX_TENSORS);
    c.msg = calloc(1, c.msg_size);
    if (c.msg == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "worker: out of memory");
        goto out;
    }
    rc = limit_memory(memory_mb, diag);
    if (rc == BMS_OK) {
        rc = child_load(&c, model_path, n_threads, diag);
    }

    /* The parent learns of a load failure from READY itself. */
    if (send_reply(&c, BMS__WIRE_READY, 0, rc, rc != BMS_OK ? diag->msg
                   : NULL, 0) != BMS_OK && rc == BMS_OK) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "worker: the parent is gone");
    }
    if (rc == BMS_OK) {
        rc = serve_loop(&c);
        if (rc != BMS_OK) {
            bms_diag_set(diag, rc, "worker: broken message from the "
                         "parent");
        }
    }

out:
    bms__region_unmap(&c.region);
    free(c.outputs);
    free(c.inputs);
    bms_session_destroy(c.session);
    bms_model_destroy(c.model);
    free(c.msg);
    return rc;
}
