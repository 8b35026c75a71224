/*
 * The scheduler between the HTTP front and the engine.  Each ready model
 * version gets a bounded queue and its instances: worker threads, each
 * holding its own session.  A worker takes the oldest request, merges the
 * queued requests whose inputs have the same non-batch shape along the
 * first dimension (dynamic batching, when the manifest's "scheduling"
 * asks for it), runs them as one execution and splits the outputs back.
 *
 * The caller's thread waits on a condition variable until its request is
 * answered or its deadline passes; nothing waits forever.  Without
 * batching, a request that finds the queue empty and an instance idle
 * runs on the caller's thread itself, with that instance's session.
 * Requests past the queue's size or the model's concurrency limit are
 * refused at once (load shedding), and a request whose deadline passes
 * while it waits is dropped from the queue without running.
 */
#ifndef BMS_SCHED_H
#define BMS_SCHED_H

#include "bms/base.h"
#include "bms/repo.h"

/* The deadline of a request that brings none (microseconds). */
#define BMS_SCHED_DEFAULT_TIMEOUT_US ((int64_t)60 * 1000 * 1000)

/* What the caller tells the client to wait before it retries (seconds). */
#define BMS_SCHED_RETRY_AFTER_S 1

struct bms_sched;

/* Why a request got no answer from the model. */
enum bms_sched_refusal {
    BMS_SCHED_ANSWERED = 0,      /* ran: success or the engine's error */
    BMS_SCHED_QUEUE_FULL,        /* max_queue_size requests were waiting */
    BMS_SCHED_OVER_LIMIT,        /* max_concurrency requests in flight */
    BMS_SCHED_DEADLINE,          /* the deadline passed */
    BMS_SCHED_STOPPING,          /* the scheduler is being destroyed */
    BMS_SCHED_UNHEALTHY,         /* no instance passed its last canary */
    BMS_SCHED_STOPPED,           /* stopped by QoS or by an admin */
    BMS_SCHED_RESTARTING         /* every worker process is restarting */
};

/* Room for the reason of an UNHEALTHY or STOPPED refusal. */
#define BMS_SCHED_REASON_SIZE 256

/* The outcome of one request. */
struct bms_sched_result {
    enum bms_sched_refusal refusal;
    int n_outputs;
    struct bms_tensor *outputs;  /* one per graph output, on success */
    void *block;                 /* owns the outputs and their data */
    char reason[BMS_SCHED_REASON_SIZE];  /* UNHEALTHY, STOPPED: why */
};

/* Counters of one model version since the scheduler started. */
struct bms_sched_stats {
    int64_t requests;            /* requests that ran */
    int64_t executions;          /* engine runs they took */
    int64_t items;               /* batch items that ran */
    int64_t shed;                /* refused: queue full or over the limit */
    int64_t expired;             /* past the deadline */
    int queued;                  /* waiting now */
    int in_flight;               /* queued or running now */
    int instances;
    int threads_per_instance;    /* kernel threads of each session */
    int64_t crashes;             /* worker processes lost */
    int64_t restarts;            /* worker processes started again */
    int healthy_instances;       /* in rotation: passed their canary */
    int serving;                 /* 0: stopped or no healthy instance */
    int trial_due;               /* stopped by a threshold, the cooldown
                                  * over: the next request is its trial */
    char reason[BMS_SCHED_REASON_SIZE];  /* why not serving; "" */
    int min_instances;           /* autoscaling bounds (equal: none) */
    int max_instances;
    int64_t scale_ups;           /* instances started by the autoscaler */
    int64_t scale_downs;         /* and retired after a quiet period */
};

/*
 * Create a scheduler for every ready version in repo, with its queue and
 * instances, their sessions made now.  The kernels of each instance get
 * n_cores / instances threads, at least 1 (n_cores 0: the online cores),
 * so that a version's instances together never use more than the cores
 * (the sessions take it from bms_engine_set_threads, which is left at 0
 * afterwards).  The repository must outlive the scheduler.  Fails with
 * BMS_ERR_NOMEM, a session's error, or BMS_ERR_IO when a thread cannot
 * start; nothing is left behind.  Not thread-safe: call it before
 * serving.
 */
enum bms_status bms_sched_create(struct bms_repo *repo, int n_cores,
                                 struct bms_sched **out,
                                 struct bms_diag *diag);

/*
 * Stop the workers (the executions running finish; requests still queued
 * are answered BMS_SCHED_STOPPING), join them and free everything.  No
 * thread may be inside bms_sched_infer.  Accepts NULL.
 */
void bms_sched_destroy(struct bms_sched *sched);

/*
 * Run one request on served: inputs holds one tensor per graph input, in
 * graph order, checked against the model already (v2.c does); their data
 * is borrowed until the call returns.  Waits until the request ran or
 * deadline_us (monotonic, bms_now_us; 0: now plus the default timeout)
 * passed.  Returns BMS_OK with the outputs in *result (owned by it: free
 * with bms_sched_result_fini); BMS_ERR_UNAVAILABLE with result->refusal
 * saying why it was not run; BMS_ERR_NOT_FOUND when served has no queue
 * here; otherwise the engine's status and message in diag.  Thread-safe.
 */
enum bms_status bms_sched_infer(struct bms_sched *sched,
                                struct bms_served *served,
                                const struct bms_tensor *inputs,
                                int64_t deadline_us,
                                struct bms_sched_result *result,
                                struct bms_diag *diag);

/* Free what a result owns and zero it; accepts a zeroed result. */
void bms_sched_result_fini(struct bms_sched_result *result);

/*
 * Infer requests on their way to a scheduler of this process: the HTTP
 * server counts one in when a request's headers are read and out just
 * before it is queued (or when it ends without being queued).  A model
 * with scheduling.adaptive_delay closes a batch it is gathering as soon
 * as none is on its way, instead of waiting out max_queue_delay_us for
 * requests that cannot come.  Thread-safe.
 */
void bms_sched_arrival_begin(void);
void bms_sched_arrival_end(void);

/*
 * The counters of served's queue into *out.  Returns BMS_ERR_NOT_FOUND
 * when served has none.  Thread-safe.
 */
enum bms_status bms_sched_stats(struct bms_sched *sched,
                                const struct bms_served *served,
                                struct bms_sched_stats *out);

/*
 * Stop (admin) serving served by hand: its requests are refused with
 * BMS_SCHED_STOPPED until bms_sched_resume, and QoS lets no trial through
 * meanwhile.  Resume clears an admin or a QoS stop and its window.  Each
 * records an alert ("stopped_by_admin", "resumed_by_admin").  Returns
 * BMS_ERR_NOT_FOUND when served has no queue.  Thread-safe.
 */
enum bms_status bms_sched_stop(struct bms_sched *sched,
                               struct bms_served *served,
                               struct bms_diag *diag);
enum bms_status bms_sched_resume(struct bms_sched *sched,
                                 struct bms_served *served,
                                 struct bms_diag *diag);

/* A change of a model version's serving state, as the alert handler
 * gets it; the strings live for the call only. */
struct bms_sched_alert {
    int64_t ts_us;               /* us since the Unix epoch */
    const char *model;
    int64_t version;
    const char *kind;            /* "stopped", "resumed", "stopped_by_"
                                  * "admin", "resumed_by_admin" */
    const char *message;
};

typedef void (*bms_sched_alert_fn)(void *ud,
                                   const struct bms_sched_alert *alert);

/*
 * Install the function that gets every alert (after it is logged at
 * warn), or NULL for none.  Alerts are delivered one at a time, from the
 * thread whose request or probe caused them, with no queue lock held; fn
 * and ud must stay valid until bms_sched_destroy.  Thread-safe.
 */
void bms_sched_set_alert_handler(struct bms_sched *sched,
                                 bms_sched_alert_fn fn, void *ud);

/*
 * An alert handler that writes each alert into the store ud (a struct
 * bms_store *); a failed write is logged.  Thread-safe.  (manager.c)
 */
void bms_sched_alert_to_store(void *ud, const struct bms_sched_alert *alert);

#endif
