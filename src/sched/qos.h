/*
 * Internal to the scheduler: whether a model version may serve.  Two
 * parts, each guarded by the queue's lock that its caller holds:
 *
 * - QoS (qos.c): a sliding window of the requests that completed; when
 *   the error rate or the p99 latency passes its threshold the version
 *   stops, and after a cooldown one trial request decides whether it
 *   resumes.  An admin may stop and resume by hand.
 * - Health (health.c): every instance runs a canary (a batch-1 input of
 *   zeros) each period; one that fails or times out leaves the rotation
 *   until a canary passes.  A poller thread starts the probes.
 */
#ifndef BMS_SCHED_QOS_H
#define BMS_SCHED_QOS_H

#include <pthread.h>

#include "bms/base.h"
#include "bms/repo.h"
#include "bms/sched.h"
#include "bms/tensor.h"

/* Samples one window keeps at most; past it the oldest are forgotten. */
#define BMS__QOS_MAX_SAMPLES 16384

enum bms__qos_state {
    BMS__QOS_SERVING = 0,
    BMS__QOS_STOPPED,            /* by a threshold; trials after cooldown */
    BMS__QOS_STOPPED_ADMIN       /* by hand; only a resume ends it */
};

/* What a call changed, for the alert the scheduler records. */
enum bms__qos_event {
    BMS__QOS_NONE = 0,
    BMS__QOS_TRIPPED,            /* "stopped" */
    BMS__QOS_RESUMED,            /* "resumed" */
    BMS__QOS_ADMIN_STOPPED,      /* "stopped_by_admin" */
    BMS__QOS_ADMIN_RESUMED       /* "resumed_by_admin" */
};

struct bms__qos_sample {
    int64_t ts_us;               /* completion, monotonic */
    int64_t latency_us;
    int error;                   /* 5xx or past the deadline */
};

struct bms__qos {
    struct bms_qos_config cfg;
    int enabled;                 /* a threshold is set */
    struct bms__qos_sample *ring;    /* cap samples, oldest at first */
    int64_t *scratch;            /* cap latencies, for the p99 */
    int cap;
    int first;
    int n;
    enum bms__qos_state state;
    int64_t stopped_us;          /* when it stopped, or the last trial */
    int trial_out;               /* a trial request is in flight */
    char reason[BMS_SCHED_REASON_SIZE];  /* why stopped; "" serving */
};

/*
 * Set up qos for cfg; the window's memory is allocated only when a
 * threshold is set.  Returns BMS_ERR_NOMEM.  bms__qos_fini frees it
 * (accepts a zeroed qos).
 */
enum bms_status bms__qos_init(struct bms__qos *qos,
                              const struct bms_qos_config *cfg);
void bms__qos_fini(struct bms__qos *qos);

/*
 * Whether a request may run at now_us: 1 yes, 0 no (qos->reason says
 * why).  While stopped by a threshold, the first request after the
 * cooldown is let through as the trial (*trial set); no other is until
 * it ends.
 */
int bms__qos_admit(struct bms__qos *qos, int64_t now_us, int *trial);

/* Whether bms__qos_admit would now let a request through as the trial
 * (stopped by a threshold, the cooldown over, no trial out). */
int bms__qos_trial_due(const struct bms__qos *qos, int64_t now_us);

/* An admitted trial that did not run after all (shed, unhealthy): the
 * next request may be the trial. */
void bms__qos_cancel_trial(struct bms__qos *qos);

/*
 * An admitted request ended at now_us after latency_us; error for a 5xx
 * or a passed deadline.  Adds it to the window and judges the
 * thresholds, or judges the trial.  Returns the event; for one, the
 * alert's message is qos->reason.
 */
enum bms__qos_event bms__qos_record(struct bms__qos *qos, int64_t now_us,
                                    int64_t latency_us, int error,
                                    int trial);

/* Stop or resume by hand.  Resume clears the window.  Return the event,
 * BMS__QOS_NONE when the state was already that. */
enum bms__qos_event bms__qos_stop_admin(struct bms__qos *qos,
                                        int64_t now_us);
enum bms__qos_event bms__qos_resume_admin(struct bms__qos *qos);

/* The p99 (nearest rank: the ceil(0.99 n)-th smallest) of n latencies;
 * reorders them.  n >= 1. */
int64_t bms__qos_p99(int64_t *latencies, int n);

/* The alert kind of an event ("stopped", ...); "" for none. */
const char *bms__qos_event_kind(enum bms__qos_event ev);


/* ---- health ---- */

/* One instance's probe. */
struct bms__probe {
    int healthy;                 /* in rotation */
    int pending;                 /* a canary waits for this instance */
    int running;                 /* the instance runs its canary */
    int64_t started_us;          /* when the instance took it */
};

/* An instance that left or rejoined the rotation, kept until the poller
 * hands it on outside the queue's lock. */
struct bms__health_change {
    int64_t ts_us;               /* us since the Unix epoch */
    int instance;
    int healthy;                 /* 1: back in the rotation */
    int n_healthy;               /* instances in it after the change */
    char reason[BMS_SCHED_REASON_SIZE];  /* why it left; "" */
};

/* Changes kept between two hand-overs; more are counted, not kept. */
#define BMS__HEALTH_CHANGES 16

/* Gets each change, from the poller thread, no lock held. */
typedef void (*bms__health_notify_fn)(void *ud,
                                      const struct bms__health_change *c);

/* The probes of one queue's instances and their canary input. */
struct bms__health {
    struct bms_health_config cfg;
    const char *model;           /* for log lines */
    int64_t version;
    pthread_mutex_t *lock;       /* the queue's; guards what follows */
    pthread_cond_t *work;        /* wakes the queue's workers */
    pthread_cond_t probed;       /* a probe ended */
    struct bms__probe *probes;
    int n_probes;
    int n_healthy;
    char reason[BMS_SCHED_REASON_SIZE];  /* the last failure */
    int can_probe;               /* a canary could be built */
    struct bms_tensor *canary;   /* one per graph input, zeros */
    int n_inputs;
    void *canary_block;
    int64_t next_us;             /* the next round, monotonic */
    int stopping;                /* the queue is going: rounds end */
    struct bms__health_change changes[BMS__HEALTH_CHANGES];
    int n_changes;
    int64_t n_changes_lost;      /* past BMS__HEALTH_CHANGES, since the
                                  * last hand-over */
    bms__health_notify_fn notify;    /* NULL: changes are only logged */
    void *notify_ud;
};

/*
 * Set up the probes of n_instances instances of model, every one healthy,
 * and build the canary from the graph's inputs (open dimensions 1).  A
 * graph whose input has an unknown rank or a string datatype gets no
 * probes (logged).  lock and work are the queue's and outlive h.
 * Returns BMS_ERR_NOMEM.  bms__health_fini accepts a zeroed h.
 */
enum bms_status bms__health_init(struct bms__health *h,
                                 const struct bms_health_config *cfg,
                                 const struct bms_model *model,
                                 const char *name, int64_t version,
                                 int n_instances, pthread_mutex_t *lock,
                                 pthread_cond_t *work);
void bms__health_fini(struct bms__health *h);

/* Under the lock: instances 0..n-1 are the ones running (autoscaling
 * moves n within the room init made).  Those past n leave the rotation
 * without an alert and get no canary; one coming back starts healthy. */
void bms__health_resize(struct bms__health *h, int n);

/* Under the lock: whether instance i has a canary waiting, which it then
 * takes (it runs it on its session and calls bms__health_done). */
int bms__health_take(struct bms__health *h, int i);

/* Under the lock: whether instance i may take requests. */
int bms__health_in_rotation(const struct bms__health *h, int i);

/* Under the lock: instance i's canary ended with rc (msg: the engine's
 * message) at now_us. */
void bms__health_done(struct bms__health *h, int i, enum bms_status rc,
                      const char *msg, int64_t now_us);

/*
 * One round (takes the lock): give every idle instance a canary and wait
 * until each ends, or runs for timeout_ms (that instance then leaves the
 * rotation), or is still not taken timeout_ms after the round began (it
 * is withdrawn: the instance was busy).  Thread-safe.
 */
void bms__health_probe(struct bms__health *h);

/* End the round under way at once and start none (takes the lock), so
 * that the queue can stop without waiting out a timeout. */
void bms__health_cancel(struct bms__health *h);

struct bms__poller;

/*
 * Start the thread that runs a round on each of the n groups every
 * group's period_ms (groups with period 0 or no canary are skipped; none
 * left: no thread, *out NULL).  The groups outlive the poller.  Returns
 * BMS_ERR_NOMEM or BMS_ERR_IO.
 */
enum bms_status bms__poller_start(struct bms__health **groups, int n,
                                  struct bms__poller **out);

/* Stop the thread (a round under way ends first), free.  Accepts NULL. */
void bms__poller_stop(struct bms__poller *poller);

#endif
