/*
 * Crash isolation: one model version served by a child process.  A
 * struct bms_worker is the parent's handle on one supervised instance: it
 * starts `/proc/self/exe worker ...`, which loads the model and answers
 * executions over a socketpair.  Tensors travel through one shared memory
 * region (a memfd mapped by both sides, grown on demand); the socket
 * carries only small headers with a sequence number, so a reply is only
 * ever taken for the request it answers.
 *
 * A child that dies or gives no answer in time is killed and reaped, and
 * the handle goes down until bms_worker_restart starts a new one; the
 * delay before that restart doubles with each crash in a row (100 ms up
 * to 10 s) and falls back after an execution that succeeds.
 */
#ifndef BMS_WORKER_H
#define BMS_WORKER_H

#include "bms/base.h"
#include "bms/tensor.h"

struct bms_worker;

/* What a worker serves and how it is bounded. */
struct bms_worker_config {
    const char *name;            /* model name, for the log */
    int64_t version;
    const char *model_path;      /* the version's model.onnx */
    int n_threads;               /* kernel threads of the child's session */
    int n_inputs;                /* graph inputs and outputs */
    int n_outputs;
    int64_t timeout_ms;          /* longest wait for an answer or a start */
    int64_t memory_mb;           /* the child's address space; 0: none */
};

/* Delays between restarts (microseconds). */
#define BMS_WORKER_BACKOFF_MIN_US ((int64_t)100 * 1000)
#define BMS_WORKER_BACKOFF_MAX_US ((int64_t)10 * 1000 * 1000)

/*
 * Start a worker child for config (its strings are copied) and wait until
 * it has loaded the model.  Fails with the child's load error, BMS_ERR_IO
 * when the process, socket or region cannot be made, or BMS_ERR_INTERNAL
 * when the child dies or stays silent past timeout_ms; nothing is left
 * behind.  Thread-safe.
 */
enum bms_status bms_worker_create(const struct bms_worker_config *config,
                                  struct bms_worker **out,
                                  struct bms_diag *diag);

/*
 * Ask the child to leave, kill it when it does not within a moment, reap
 * it and free the handle.  Accepts NULL.
 */
void bms_worker_destroy(struct bms_worker *worker);

/*
 * Run one execution in the child: inputs holds config.n_inputs tensors
 * (borrowed for the call).  On success outputs[j] gets the dtype, dims and
 * a pointer into the shared region, valid until the next call on this
 * worker.  Waits until deadline_us (monotonic) or timeout_ms from now,
 * whichever comes first.  Returns the engine's status and message when the
 * child ran and failed; BMS_ERR_INTERNAL ("worker crashed: signal 11",
 * "worker hung: no answer in 1000 ms") when the child died or was killed,
 * and then the worker is down; BMS_ERR_UNAVAILABLE when it was down
 * already.  One thread at a time per worker.
 */
enum bms_status bms_worker_run(struct bms_worker *worker,
                               const struct bms_tensor *inputs,
                               struct bms_tensor *outputs,
                               int64_t deadline_us,
                               struct bms_diag *diag);

/* Whether a child is up and answering. */
int bms_worker_up(const struct bms_worker *worker);

/* When a down worker may be restarted (monotonic microseconds). */
int64_t bms_worker_restart_at(const struct bms_worker *worker);

/*
 * Start a new child for a down worker, as bms_worker_create does.  On
 * failure the worker stays down and its next restart is pushed back by
 * the doubled delay.  One thread at a time per worker.
 */
enum bms_status bms_worker_restart(struct bms_worker *worker,
                                   struct bms_diag *diag);

/*
 * The child's side: serve executions of the model at model_path over the
 * socket fd with the region shm_fd until the parent closes the socket or
 * asks it to leave.  memory_mb > 0 caps the process's address space first.
 * Returns BMS_OK after a clean end, else why it stopped (a load failure
 * is also sent to the parent).
 */
enum bms_status bms_worker_serve(const char *model_path, int n_threads,
                                 int64_t memory_mb, int fd, int shm_fd,
                                 struct bms_diag *diag);

#endif
