/*
 * The scheduler: one queue per ready model version, its instances (worker
 * threads with a session each) and the waiting of the callers' threads.
 *
 * Every field of a queue and of the jobs in it is guarded by the queue's
 * mutex.  A job lives on its caller's stack: the caller leaves
 * bms_sched_infer only once the job is out of the queue and no worker
 * holds it, so a worker never touches a job that is gone.  At most one
 * worker at a time gathers a batch; the others wait until it has taken
 * its jobs out of the queue.
 *
 * A request that would only wake an idle worker and wait for it (no
 * batching, thread instances, nothing queued) runs on its caller's
 * thread instead, on that instance's session, which it claims from the
 * worker under the lock: this saves the two thread switches of the
 * hand-off.
 *
 * Autoscaling ("scheduling.min_instances" < "max_instances"): room is
 * made for max_instances workers, and workers[0..n_workers) run.  A
 * scaler thread looks at each such queue every SCALE_TICK_US: requests
 * waiting while every instance is busy, or requests that waited longer
 * than scale_up_wait_ms on average since the last look, in
 * SCALE_UP_LOOKS of the last SCALE_WINDOW looks, start one more instance
 * (its session made off the lock, on the scaler's thread); no request
 * waiting and an instance to spare for scale_down_after_s retire the
 * last one, which finishes what it runs and is joined.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bms/engine.h"
#include "bms/sched.h"
#include "bms/worker.h"
#include "sched/batch.h"
#include "sched/qos.h"

enum job_state {
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_DONE
};

#define SCALE_TICK_US 100000         /* the scaler looks this often */
#define SCALE_WINDOW 5               /* of the last this many looks, */
#define SCALE_UP_LOOKS 3             /* this many saw pressure: start one */

struct job {
    const struct bms_tensor *inputs;     /* borrowed from the caller */
    int64_t n_items;             /* rows along the batch dimension */
    int batchable;               /* may share an execution */
    int64_t enqueued_us;
    int64_t deadline_us;
    enum job_state state;
    int trial;                   /* the QoS trial after a cooldown */
    int retried;                 /* requeued once after a worker crash */
    enum bms_status rc;
    struct bms_diag diag;
    struct bms_sched_result result;
    pthread_cond_t done;         /* state became JOB_DONE */
    struct job *prev;
    struct job *next;
};

struct queue;

struct worker {
    struct queue *q;
    pthread_t thread;
    int started;
    struct bms_session *session;
    struct bms_worker *proc;     /* isolation "process": the child */
    struct bms_diag lost;        /* why the child was lost last */
    struct job **batch;          /* room for max_batch_size jobs, or 1 */
    const struct bms_tensor **batch_inputs;
    struct bms_tensor *merged;   /* one per graph input */
    struct bms_buf *scratch;     /* the merged inputs' data */
    struct bms_tensor *outputs;  /* one per graph output */
    int busy;                    /* the worker runs jobs or its canary */
    int claimed;                 /* a caller runs its job on the session */
    int retire;                  /* the scaler asked it to stop */
};

struct queue {
    struct bms_sched *sched;     /* the owner, for alerts */
    struct bms_served *served;
    struct bms_sched_config cfg;
    int n_inputs;
    int n_outputs;
    int batching;                /* max_batch_size > 0 */
    pthread_mutex_t lock;
    pthread_cond_t work;         /* a job arrived, a batch was taken, stop */
    struct job *head;
    struct job *tail;
    int64_t queued_items;        /* items of the jobs in the list */
    int gathering;               /* a worker is collecting a batch */
    int stopping;
    int n_up;                    /* instances able to run (processes up) */
    struct bms_sched_stats stats;
    struct worker *workers;
    int n_workers;
    struct bms__health health;   /* the instances' probes */
    struct bms__qos qos;         /* automatic and admin stop */
    int cap_workers;             /* room in workers: max_instances */
    int autoscale;               /* min_instances < max_instances */
    int n_cores;                 /* for the sessions of new instances */
    unsigned pressure_looks;     /* bit k: look k ago saw pressure */
    int64_t wait_sum_us;         /* queue waits of the jobs started */
    int64_t wait_n;              /* since the last look */
    int64_t quiet_since_us;      /* nothing waited, one instance spare */
    int64_t scale_ups;
    int64_t scale_downs;
};

struct bms_sched {
    struct queue *queues;
    int n_queues;
    struct bms__poller *poller;  /* health rounds; NULL when none */
    pthread_mutex_t alert_lock;  /* one alert at a time, and the fields: */
    bms_sched_alert_fn alert_fn;
    void *alert_ud;
    pthread_t scaler;            /* autoscaling; started when any asks */
    int scaler_started;
    pthread_mutex_t scaler_lock;
    pthread_cond_t scaler_wake;
    int scaler_stop;
};


/* ---- time ---- */

static struct timespec to_timespec(int64_t us)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(us / 1000000);
    ts.tv_nsec = (long)(us % 1000000) * 1000;
    return ts;
}


/* Condition variables on the monotonic clock that bms_now_us reads. */
static int cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int err;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    err = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return err;
}


static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock,
                       int64_t deadline_us)
{
    struct timespec ts = to_timespec(deadline_us);

    pthread_cond_timedwait(cond, lock, &ts);
}


/* ---- the queue's list (under its lock) ---- */

static void list_append(struct queue *q, struct job *job)
{
    job->prev = q->tail;
    job->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = job;
    } else {
        q->head = job;
    }
    q->tail = job;
    q->queued_items += job->n_items;
    q->stats.queued++;
    q->stats.in_flight++;
}


static void list_remove(struct queue *q, struct job *job)
{
    if (job->prev != NULL) {
        job->prev->next = job->next;
    } else {
        q->head = job->next;
    }
    if (job->next != NULL) {
        job->next->prev = job->prev;
    } else {
        q->tail = job->prev;
    }
    job->prev = NULL;
    job->next = NULL;
    q->queued_items -= job->n_items;
    q->stats.queued--;
}


/* Answer a job that never ran and wake its caller. */
static void job_refuse(struct queue *q, struct job *job,
                       enum bms_sched_refusal why)
{
    list_remove(q, job);
    q->stats.in_flight--;
    if (why == BMS_SCHED_DEADLINE) {
        q->stats.expired++;
    }
    job->result.refusal = why;
    job->rc = BMS_ERR_UNAVAILABLE;
    job->state = JOB_DONE;
    pthread_cond_signal(&job->done);
}


/* Drop the queued jobs whose deadline has passed. */
static void drop_expired(struct queue *q, int64_t now_us)
{
    struct job *job = q->head;

    while (job != NULL) {
        struct job *next = job->next;

        if (job->deadline_us <= now_us) {
            job_refuse(q, job, BMS_SCHED_DEADLINE);
        }
        job = next;
    }
}


/* ---- gathering a batch (under the lock) ---- */

static int is_preferred(const struct bms_sched_config *cfg, int64_t n)
{
    for (int i = 0; i < cfg->n_preferred; i++) {
        if (cfg->preferred_batch_sizes[i] == n) {
            return 1;
        }
    }
    return 0;
}


/*
 * Walk the queue from the head and pick the jobs that can join the head's
 * execution, up to max_batch_size items.  With take set they go into the
 * worker's batch and out of the queue.  Returns the items picked and sets
 * *n_jobs.
 */
static int64_t pick(struct queue *q, struct worker *w, int take,
                    int *n_jobs)
{
    struct job *first = q->head;
    int64_t max = q->cfg.max_batch_size;
    int64_t n_items = first->n_items;
    struct job *job = first->next;
    int n = 1;

    if (take) {
        list_remove(q, first);
        w->batch[0] = first;
    }
    while (job != NULL && n_items < max && n < q->cfg.max_batch_size) {
        struct job *next = job->next;

        if (job->batchable && n_items + job->n_items <= max &&
            bms__batch_compatible(first->inputs, job->inputs,
                                  q->n_inputs)) {
            n_items += job->n_items;
            if (take) {
                list_remove(q, job);
                w->batch[n] = job;
            }
            n++;
        }
        job = next;
    }
    *n_jobs = n;
    return n_items;
}


/* Infer requests between their headers and their queue, process-wide
 * (bms_sched_arrival_begin). */
static atomic_int n_arriving;


void bms_sched_arrival_begin(void)
{
    atomic_fetch_add(&n_arriving, 1);
}


void bms_sched_arrival_end(void)
{
    atomic_fetch_sub(&n_arriving, 1);
}


/* With adaptive_delay: nothing more is on its way, so waiting for a
 * fuller batch would only wait. */
static int none_arriving(const struct queue *q)
{
    return q->cfg.adaptive_delay && atomic_load(&n_arriving) <= 0;
}


/*
 * Whether the batch being gathered should close before its delay: the
 * queue holds enough items, or (adaptive_delay) no request is on its
 * way.  A worker gathering is woken only then, not by every arrival.
 * (An upper bound: jobs that cannot join the head count too, and the
 * worker checks with pick.)
 */
static int batch_full(const struct queue *q)
{
    return q->queued_items >= q->cfg.max_batch_size ||
           is_preferred(&q->cfg, q->queued_items) || none_arriving(q);
}


/* No instance is in the rotation: answer every queued job at once. */
static void refuse_unhealthy(struct queue *q)
{
    while (q->head != NULL) {
        struct job *job = q->head;

        snprintf(job->result.reason, sizeof(job->result.reason),
                 "no healthy instance: %.200s", q->health.reason);
        job_refuse(q, job, BMS_SCHED_UNHEALTHY);
    }
}


/* Wait until w has something to do: 1 jobs at the head (w in the
 * rotation), -1 its canary (taken), 0 stop. */
static int wait_for_work(struct queue *q, struct worker *w)
{
    int i = (int)(w - q->workers);

    for (;;) {
        if (q->stopping) {
            return 0;
        }
        if (w->claimed) {
            /* A caller runs on w's session; it wakes us when done. */
            pthread_cond_wait(&q->work, &q->lock);
            continue;
        }
        if (w->retire) {
            return 0;
        }
        if (bms__health_take(&q->health, i)) {
            return -1;
        }
        if (q->head != NULL && !q->gathering &&
            bms__health_in_rotation(&q->health, i)) {
            return 1;
        }
        if (q->head != NULL && q->health.n_healthy == 0) {
            refuse_unhealthy(q);
            continue;
        }
        pthread_cond_wait(&q->work, &q->lock);
    }
}


/*
 * Wait for work and take the next execution's jobs into w->batch: the
 * head alone when it cannot be batched; else the jobs that fit with it,
 * once they fill max_batch_size or a preferred size, or once the head has
 * waited max_queue_delay_us.  Returns the number of jobs, 0 to stop, -1
 * to run the canary.
 */
static int take_batch(struct queue *q, struct worker *w)
{
    int n_jobs;

    for (;;) {
        int64_t n_items;
        int64_t flush_us;

        int next = wait_for_work(q, w);

        if (next <= 0) {
            return next;
        }
        drop_expired(q, bms_now_us());
        if (q->head == NULL) {
            continue;
        }
        if (!q->batching || !q->head->batchable) {
            break;
        }
        n_items = pick(q, w, 0, &n_jobs);
        flush_us = q->head->enqueued_us + q->cfg.max_queue_delay_us;
        if (n_items >= q->cfg.max_batch_size ||
            is_preferred(&q->cfg, n_items) || none_arriving(q) ||
            bms_now_us() >= flush_us) {
            break;
        }
        /* Wait for more while the head may; other workers stay out. */
        q->gathering = 1;
        wait_until(&q->work, &q->lock, flush_us);
        q->gathering = 0;
        pthread_cond_broadcast(&q->work);
    }
    if (!q->batching || !q->head->batchable) {
        w->batch[0] = q->head;
        list_remove(q, q->head);
        n_jobs = 1;
    } else {
        pick(q, w, 1, &n_jobs);
    }
    for (int i = 0; i < n_jobs; i++) {
        w->batch[i]->state = JOB_RUNNING;
    }
    return n_jobs;
}


/* ---- worker processes (isolation "process") ---- */

/* Run inputs on w's session, or in its child; outputs go to w->outputs.
 * deadline_us 0: the child's own timeout alone bounds the wait. */
static enum bms_status instance_run(struct worker *w,
                                    const struct bms_tensor *inputs,
                                    int64_t deadline_us,
                                    struct bms_diag *diag)
{
    enum bms_status rc;

    if (w->proc == NULL) {
        return bms_session_run(w->session, inputs, w->outputs, diag);
    }
    rc = bms_worker_run(w->proc, inputs, w->outputs, deadline_us, diag);
    if (rc != BMS_OK && !bms_worker_up(w->proc) && diag != NULL &&
        rc != BMS_ERR_UNAVAILABLE) {
        w->lost = *diag;
    }
    return rc;
}


/* The latest deadline of w's n jobs: the merged run may take that long. */
static int64_t batch_deadline(const struct worker *w, int n)
{
    int64_t latest = 0;

    for (int i = 0; i < n; i++) {
        if (w->batch[i]->deadline_us > latest) {
            latest = w->batch[i]->deadline_us;
        }
    }
    return latest;
}


/* Put a job back at the head of the queue, to run alone (under the
 * lock).  It stays in flight. */
static void list_prepend(struct queue *q, struct job *job)
{
    job->prev = NULL;
    job->next = q->head;
    if (q->head != NULL) {
        q->head->prev = job;
    } else {
        q->tail = job;
    }
    q->head = job;
    q->stats.queued++;
}


/*
 * After a batch (under the lock): when w's child died during it, the jobs
 * that did not get their answer are requeued once to run alone when they
 * shared the execution and another instance may take them; a job that
 * ran alone answers the crash at once, so that one bad request cannot
 * bring every instance down.  Returns the jobs left in w->batch.
 */
static int settle_crash(struct worker *w, int n)
{
    struct queue *q = w->q;
    int kept = 0;

    if (w->proc == NULL || bms_worker_up(w->proc)) {
        return n;
    }
    for (int i = 0; i < n; i++) {
        struct job *job = w->batch[i];

        if (job->rc != BMS_OK && n > 1 && q->cfg.instances > 1 &&
            !job->retried) {
            job->retried = 1;
            job->batchable = 0;
            job->rc = BMS_OK;
            job->diag.msg[0] = '\0';
            job->state = JOB_QUEUED;
            list_prepend(q, job);
            pthread_cond_signal(&job->done);
            continue;
        }
        if (job->rc == BMS_ERR_UNAVAILABLE) {
            /* It came after the crash in a run alone. */
            job->rc = BMS_ERR_INTERNAL;
            job->diag = w->lost;
        }
        if (job->rc != BMS_OK && bms_now_us() >= job->deadline_us) {
            /* The child was killed at the request's own deadline. */
            job->rc = BMS_ERR_UNAVAILABLE;
            job->result.refusal = BMS_SCHED_DEADLINE;
            q->stats.expired++;
        }
        w->batch[kept++] = job;
    }
    /* A requeued job stays in flight until its rerun answers it. */
    if (kept < n) {
        pthread_cond_broadcast(&q->work);
    }
    return kept;
}


/*
 * When w's child went down in its last run (under the lock): count it,
 * wait out its backoff, start a new one, and again after a failed start,
 * until it is up or the queue stops.  Other instances keep serving
 * meanwhile.
 */
static void revive(struct worker *w)
{
    struct queue *q = w->q;

    if (w->proc == NULL || bms_worker_up(w->proc)) {
        return;
    }
    q->n_up--;
    q->stats.crashes++;
    while (!bms_worker_up(w->proc) && !q->stopping) {
        int64_t at_us = bms_worker_restart_at(w->proc);
        struct bms_diag diag;
        enum bms_status rc;

        if (bms_now_us() < at_us) {
            wait_until(&q->work, &q->lock, at_us);
            continue;
        }
        diag.msg[0] = '\0';
        pthread_mutex_unlock(&q->lock);
        rc = bms_worker_restart(w->proc, &diag);
        pthread_mutex_lock(&q->lock);
        if (rc == BMS_OK) {
            q->n_up++;
            q->stats.restarts++;
        }
    }
}


/* Start w's child: the version's model in a process of its own. */
static enum bms_status start_process(struct queue *q, struct worker *w,
                                     struct bms_diag *diag)
{
    struct bms_worker_config c;
    enum bms_status rc;

    memset(&c, 0, sizeof(c));
    c.name = bms_served_name(q->served);
    c.version = bms_served_version(q->served);
    c.model_path = bms_served_path(q->served);
    c.n_threads = q->stats.threads_per_instance;
    c.n_inputs = q->n_inputs;
    c.n_outputs = q->n_outputs;
    c.timeout_ms = q->cfg.isolation_timeout_ms;
    c.memory_mb = q->cfg.isolation_memory_mb;
    if (c.model_path == NULL) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "scheduling."
                            "isolation: the model has no file to load");
    }
    rc = bms_worker_create(&c, &w->proc, diag);
    if (rc == BMS_OK) {
        q->n_up++;
    }
    return rc;
}


/* ---- running a batch (without the lock) ---- */

/* Run one job on its own and copy its outputs out. */
static void run_alone(struct worker *w, struct job *job)
{
    struct queue *q = w->q;

    job->rc = instance_run(w, job->inputs, job->deadline_us, &job->diag);
    if (job->rc == BMS_OK) {
        job->rc = bms__batch_slice(w->outputs, q->n_outputs, 0, 0, 1,
                                   &job->result);
    }
}


/* Run the n jobs of w->batch as one execution.  Returns the number of
 * engine runs it took. */
static int run_batch(struct worker *w, int n)
{
    struct queue *q = w->q;
    struct bms_diag diag;
    int64_t n_items = 0;
    int64_t row = 0;
    enum bms_status rc;

    if (n == 1) {
        run_alone(w, w->batch[0]);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        w->batch_inputs[i] = w->batch[i]->inputs;
        n_items += w->batch[i]->n_items;
    }
    diag.msg[0] = '\0';
    rc = bms__batch_merge(w->batch_inputs, n, q->n_inputs, w->scratch,
                          w->merged);
    if (rc == BMS_OK) {
        rc = instance_run(w, w->merged, batch_deadline(w, n), &diag);
    }
    if (rc != BMS_OK && w->proc != NULL && !bms_worker_up(w->proc)) {
        /* The child died with the whole batch: no run alone now. */
        for (int i = 0; i < n; i++) {
            w->batch[i]->rc = rc;
            w->batch[i]->diag = diag;
        }
        return 1;
    }
    if (rc != BMS_OK ||
        !bms__batch_splittable(w->outputs, q->n_outputs, n_items)) {
        /* The merged run failed or its outputs do not split by rows:
         * every request runs alone, with its own answer. */
        for (int i = 0; i < n; i++) {
            run_alone(w, w->batch[i]);
        }
        return 1 + n;
    }
    for (int i = 0; i < n; i++) {
        struct job *job = w->batch[i];

        job->rc = bms__batch_slice(w->outputs, q->n_outputs, row,
                                   job->n_items, 0, &job->result);
        row += job->n_items;
    }
    return 1;
}


/* Run the canary on w's session; called and returning with the lock. */
static void run_canary(struct worker *w)
{
    struct queue *q = w->q;
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    pthread_mutex_unlock(&q->lock);
    rc = instance_run(w, q->health.canary, 0, &diag);
    pthread_mutex_lock(&q->lock);
    bms__health_done(&q->health, (int)(w - q->workers), rc, diag.msg,
                     bms_now_us());
}


/*
 * Run the health canary once on a new instance before it serves, so that
 * what a session does on its first run (kernels chosen and compiled for
 * the shapes, memory touched) is not paid by a request.  Called on the
 * instance's thread while it is marked busy, so that no request and no
 * caller's thread uses it meanwhile, and a canary that hangs holds this
 * instance, as a request would, not the model's load.  A failure is
 * logged and left to the health probes.
 */
static void warm_up(struct queue *q, struct worker *w)
{
    int64_t start_us = bms_now_us();
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    rc = instance_run(w, q->health.canary,
                      start_us + q->cfg.isolation_timeout_ms * 1000, &diag);
    if (rc != BMS_OK) {
        bms_log(BMS_LOG_WARN, "sched", "msg=\"warm-up failed\" model=%s"
                " version=%" PRId64 " instance=%d error=\"%s\"",
                bms_served_name(q->served), bms_served_version(q->served),
                (int)(w - q->workers), diag.msg);
        return;
    }
    bms_log(BMS_LOG_INFO, "sched", "msg=\"instance warmed up\" model=%s"
            " version=%" PRId64 " instance=%d took_us=%" PRId64,
            bms_served_name(q->served), bms_served_version(q->served),
            (int)(w - q->workers), bms_now_us() - start_us);
}


static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct queue *q = w->q;
    int n;

    if (w->busy) {
        warm_up(q, w);
    }
    pthread_mutex_lock(&q->lock);
    if (w->busy) {
        revive(w);               /* a warm-up that took its child down */
        w->busy = 0;
        pthread_cond_broadcast(&q->work);
    }
    while ((n = take_batch(q, w)) != 0) {
        int64_t n_items = 0;
        int n_runs;

        w->busy = 1;
        if (n < 0) {
            run_canary(w);
            revive(w);
            w->busy = 0;
            continue;
        }

        if (q->autoscale) {
            int64_t now_us = bms_now_us();

            for (int i = 0; i < n; i++) {
                q->wait_sum_us += now_us - w->batch[i]->enqueued_us;
            }
            q->wait_n += n;
        }
        pthread_cond_broadcast(&q->work);
        pthread_mutex_unlock(&q->lock);
        n_runs = run_batch(w, n);
        pthread_mutex_lock(&q->lock);
        n = settle_crash(w, n);
        for (int i = 0; i < n; i++) {
            struct job *job = w->batch[i];

            n_items += job->n_items;
            job->state = JOB_DONE;
            pthread_cond_signal(&job->done);
        }
        q->stats.in_flight -= n;
        q->stats.requests += n;
        q->stats.items += n_items;
        q->stats.executions += n_runs;
        bms_log(BMS_LOG_DEBUG, "sched", "msg=\"batch ran\" model=%s "
                "version=%" PRId64 " requests=%d items=%" PRId64
                " runs=%d", bms_served_name(q->served),
                bms_served_version(q->served), n, n_items, n_runs);
        revive(w);
        w->busy = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}


/* ---- creating and destroying ---- */

static void worker_fini(struct worker *w)
{
    struct queue *q = w->q;

    if (w->scratch != NULL) {
        for (int k = 0; k < q->n_inputs; k++) {
            bms_buf_fini(&w->scratch[k]);
        }
    }
    free(w->scratch);
    free(w->merged);
    free(w->outputs);
    free(w->batch_inputs);
    free(w->batch);
    bms_worker_destroy(w->proc);
    bms_served_release(q->served, w->session);
}


static enum bms_status worker_init(struct queue *q, struct worker *w,
                                   struct bms_diag *diag)
{
    size_t n_batch = q->batching ? (size_t)q->cfg.max_batch_size : 1;

    w->q = q;
    w->batch = calloc(n_batch, sizeof(*w->batch));
    w->batch_inputs = calloc(n_batch, sizeof(*w->batch_inputs));
    w->merged = calloc((size_t)q->n_inputs + 1, sizeof(*w->merged));
    w->scratch = calloc((size_t)q->n_inputs + 1, sizeof(*w->scratch));
    w->outputs = calloc((size_t)q->n_outputs + 1, sizeof(*w->outputs));
    if (w->batch == NULL || w->batch_inputs == NULL || w->merged == NULL ||
        w->scratch == NULL || w->outputs == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }
    /* Busy until its thread has warmed it up (worker_main). */
    w->busy = q->cfg.warmup && q->health.can_probe;
    return q->cfg.isolation == BMS_ISOLATION_PROCESS
           ? start_process(q, w, diag)
           : bms_served_acquire(q->served, &w->session, diag);
}


/* Stop and join q's workers, free them and the queue's sync objects. */
static void queue_fini(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_workers; i++) {
        if (q->workers[i].started) {
            pthread_join(q->workers[i].thread, NULL);
        }
    }

    /* The contract keeps callers out by now; answer any job left. */
    pthread_mutex_lock(&q->lock);
    while (q->head != NULL) {
        job_refuse(q, q->head, BMS_SCHED_STOPPING);
    }
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_workers; i++) {
        worker_fini(&q->workers[i]);
    }
    free(q->workers);
    bms__health_fini(&q->health);
    bms__qos_fini(&q->qos);
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->lock);
}


/* The kernel threads of each of n_instances sessions. */
static int threads_per_instance(int n_cores, int n_instances)
{
    int n = n_cores / n_instances;

    return n > 0 ? n : 1;
}


static void health_changed(void *ud, const struct bms__health_change *c);

static enum bms_status queue_init(struct queue *q, struct bms_served *served,
                                  int n_cores, struct bms_diag *diag)
{
    const struct bms_manifest *man = bms_served_manifest(served);
    const struct bms_model *model = bms_served_model(served);
    enum bms_status rc = BMS_OK;
    int n_threads;

    q->served = served;
    if (man != NULL) {
        q->cfg = man->sched;
    } else {
        bms_sched_config_default(&q->cfg);
    }
    q->n_inputs = bms_model_n_inputs(model);
    q->n_outputs = bms_model_n_outputs(model);
    q->batching = q->cfg.max_batch_size > 0;
    q->cap_workers = q->cfg.max_instances > q->cfg.instances
                     ? q->cfg.max_instances : q->cfg.instances;
    q->autoscale = q->cfg.min_instances < q->cfg.max_instances;
    q->n_cores = n_cores;
    n_threads = threads_per_instance(n_cores, q->cap_workers);
    q->stats.instances = q->cfg.instances;
    q->stats.threads_per_instance = n_threads;
    pthread_mutex_init(&q->lock, NULL);
    if (cond_init(&q->work) != 0) {
        pthread_mutex_destroy(&q->lock);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }
    if (bms__health_init(&q->health, &q->cfg.health, model,
                         bms_served_name(served), bms_served_version(served),
                         q->cap_workers, &q->lock, &q->work) != BMS_OK ||
        bms__qos_init(&q->qos, &q->cfg.qos) != BMS_OK) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }
    q->health.notify = health_changed;
    q->health.notify_ud = q;
    q->workers = calloc((size_t)q->cap_workers, sizeof(*q->workers));
    if (rc == BMS_OK) {
        bms__health_resize(&q->health, q->cfg.instances);
    }
    if (rc == BMS_OK && q->workers == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }

    /* Sessions take the engine's thread count when they are made. */
    bms_engine_set_threads(n_threads);
    for (int i = 0; rc == BMS_OK && i < q->cfg.instances; i++) {
        q->n_workers = i + 1;
        rc = worker_init(q, &q->workers[i], diag);
    }
    bms_engine_set_threads(0);
    for (int i = 0; rc == BMS_OK && i < q->n_workers; i++) {
        struct worker *w = &q->workers[i];

        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rc = bms_diag_set(diag, BMS_ERR_IO, "scheduler: cannot start "
                              "a worker thread");
        }
        w->started = rc == BMS_OK;
    }
    if (rc != BMS_OK) {
        queue_fini(q);
    }
    return rc;
}


static int count_ready(const struct bms_repo *repo)
{
    int n = 0;

    for (int i = 0; i < bms_repo_n_entries(repo); i++) {
        n += bms_repo_entry(repo, i)->state == BMS_ENTRY_READY;
    }
    return n;
}


static void log_queue(const struct queue *q)
{
    bms_log(BMS_LOG_INFO, "sched", "msg=\"queue ready\" model=%s "
            "version=%" PRId64 " instances=%d threads=%d "
            "max_batch_size=%d max_queue_delay_us=%" PRId64
            " max_queue_size=%d max_concurrency=%d",
            bms_served_name(q->served), bms_served_version(q->served),
            q->cfg.instances, q->stats.threads_per_instance,
            q->cfg.max_batch_size, q->cfg.max_queue_delay_us,
            q->cfg.max_queue_size, q->cfg.max_concurrency);
}


/* The thread that probes the queues' instances, when any asks for it. */
static enum bms_status start_poller(struct bms_sched *s,
                                    struct bms_diag *diag)
{
    struct bms__health **groups = calloc((size_t)s->n_queues + 1,
                                         sizeof(*groups));
    enum bms_status rc;

    if (groups == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }
    for (int i = 0; i < s->n_queues; i++) {
        groups[i] = &s->queues[i].health;
    }
    rc = bms__poller_start(groups, s->n_queues, &s->poller);
    free(groups);
    if (rc != BMS_OK) {
        return bms_diag_set(diag, rc, "scheduler: cannot start the health "
                            "poller");
    }
    return BMS_OK;
}


/* ---- autoscaling ---- */

/* Start instance q->n_workers (its session made here, off the lock).
 * Called from the scaler thread only. */
static void scale_up(struct queue *q)
{
    struct worker *w = &q->workers[q->n_workers];
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    memset(w, 0, sizeof(*w));
    bms_engine_set_threads(q->stats.threads_per_instance);
    rc = worker_init(q, w, &diag);
    bms_engine_set_threads(0);
    if (rc == BMS_OK && pthread_create(&w->thread, NULL, worker_main, w)
        != 0) {
        rc = bms_diag_set(&diag, BMS_ERR_IO, "cannot start a thread");
    }
    if (rc != BMS_OK) {
        bms_log(BMS_LOG_WARN, "sched", "msg=\"instance not started\" "
                "model=%s version=%" PRId64 " error=\"%s\"",
                bms_served_name(q->served), bms_served_version(q->served),
                diag.msg);
        worker_fini(w);
        memset(w, 0, sizeof(*w));
        return;
    }
    w->started = 1;
    pthread_mutex_lock(&q->lock);
    bms__health_resize(&q->health, q->n_workers + 1);
    q->n_workers++;
    q->stats.instances = q->n_workers;
    q->scale_ups++;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->lock);
    bms_log(BMS_LOG_INFO, "sched", "msg=\"instance started\" model=%s "
            "version=%" PRId64 " instances=%d", bms_served_name(q->served),
            bms_served_version(q->served), q->n_workers);
}


/* Retire the last instance: out of the rotation at once, joined when its
 * work is done.  Called from the scaler thread only. */
static void scale_down(struct queue *q)
{
    struct worker *w;
    int n;

    pthread_mutex_lock(&q->lock);
    n = q->n_workers - 1;
    w = &q->workers[n];
    w->retire = 1;
    q->n_workers = n;
    bms__health_resize(&q->health, n);
    q->stats.instances = n;
    q->scale_downs++;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->lock);
    pthread_join(w->thread, NULL);
    worker_fini(w);
    memset(w, 0, sizeof(*w));
    bms_log(BMS_LOG_INFO, "sched", "msg=\"instance retired\" model=%s "
            "version=%" PRId64 " instances=%d", bms_served_name(q->served),
            bms_served_version(q->served), n);
}


/* Whether every running instance is busy (under the lock). */
static int all_busy(const struct queue *q)
{
    for (int i = 0; i < q->n_workers; i++) {
        if (!q->workers[i].busy && !q->workers[i].claimed) {
            return 0;
        }
    }
    return 1;
}


/* One look at q: +1 to start an instance, -1 to retire one, 0. */
static int scale_decide(struct queue *q, int64_t now_us)
{
    int64_t quiet_us = q->cfg.scale_down_after_s * 1000000;
    int decision = 0;
    int waited;

    pthread_mutex_lock(&q->lock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->lock);
        return 0;
    }
    waited = q->cfg.scale_up_wait_ms > 0 && q->wait_n > 0 &&
             q->wait_sum_us / q->wait_n > q->cfg.scale_up_wait_ms * 1000;
    q->wait_sum_us = 0;
    q->wait_n = 0;
    q->pressure_looks = (q->pressure_looks << 1 |
                         ((q->stats.queued > 0 && all_busy(q)) || waited)) &
                        ((1u << SCALE_WINDOW) - 1);
    if (__builtin_popcount(q->pressure_looks) >= SCALE_UP_LOOKS &&
        q->n_workers < q->cfg.max_instances) {
        decision = 1;
        q->pressure_looks = 0;
    }
    if (q->stats.queued == 0 && q->stats.in_flight < q->n_workers) {
        if (q->quiet_since_us == 0) {
            q->quiet_since_us = now_us;
        } else if (now_us - q->quiet_since_us >= quiet_us &&
                   q->n_workers > q->cfg.min_instances) {
            decision = -1;
            q->quiet_since_us = now_us;  /* a full period per step */
        }
    } else {
        q->quiet_since_us = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return decision;
}


static void *scaler_main(void *arg)
{
    struct bms_sched *s = arg;

    pthread_mutex_lock(&s->scaler_lock);
    while (!s->scaler_stop) {
        struct timespec ts = to_timespec(bms_now_us() + SCALE_TICK_US);

        pthread_cond_timedwait(&s->scaler_wake, &s->scaler_lock, &ts);
        if (s->scaler_stop) {
            break;
        }
        pthread_mutex_unlock(&s->scaler_lock);
        for (int i = 0; i < s->n_queues; i++) {
            struct queue *q = &s->queues[i];
            int d = q->autoscale ? scale_decide(q, bms_now_us()) : 0;

            if (d > 0) {
                scale_up(q);
            } else if (d < 0) {
                scale_down(q);
            }
        }
        pthread_mutex_lock(&s->scaler_lock);
    }
    pthread_mutex_unlock(&s->scaler_lock);
    return NULL;
}


static enum bms_status start_scaler(struct bms_sched *s,
                                    struct bms_diag *diag)
{
    int any = 0;

    for (int i = 0; i < s->n_queues; i++) {
        any |= s->queues[i].autoscale;
    }
    if (!any) {
        return BMS_OK;
    }
    if (pthread_create(&s->scaler, NULL, scaler_main, s) != 0) {
        return bms_diag_set(diag, BMS_ERR_IO, "scheduler: cannot start the "
                            "autoscaler");
    }
    s->scaler_started = 1;
    return BMS_OK;
}


static void stop_scaler(struct bms_sched *s)
{
    if (!s->scaler_started) {
        return;
    }
    pthread_mutex_lock(&s->scaler_lock);
    s->scaler_stop = 1;
    pthread_cond_signal(&s->scaler_wake);
    pthread_mutex_unlock(&s->scaler_lock);
    pthread_join(s->scaler, NULL);
    s->scaler_started = 0;
}


enum bms_status bms_sched_create(struct bms_repo *repo, int n_cores,
                                 struct bms_sched **out,
                                 struct bms_diag *diag)
{
    struct bms_sched *s = calloc(1, sizeof(*s));
    int n_ready = count_ready(repo);
    enum bms_status rc = BMS_OK;

    if (n_cores <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        n_cores = n > 0 ? (int)n : 1;
    }
    if (s != NULL) {
        s->queues = calloc((size_t)n_ready + 1, sizeof(*s->queues));
    }
    if (s == NULL || s->queues == NULL) {
        free(s);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }
    pthread_mutex_init(&s->alert_lock, NULL);
    pthread_mutex_init(&s->scaler_lock, NULL);
    if (cond_init(&s->scaler_wake) != 0) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }
    for (int i = 0; rc == BMS_OK && i < bms_repo_n_entries(repo); i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        if (e->state != BMS_ENTRY_READY) {
            continue;
        }
        s->queues[s->n_queues].sched = s;
        rc = queue_init(&s->queues[s->n_queues], e->served, n_cores, diag);
        if (rc == BMS_OK) {
            log_queue(&s->queues[s->n_queues]);
            s->n_queues++;
        } else {
            bms_diag_prefix(diag, "model %s version %" PRId64, e->name,
                            e->version);
        }
    }
    if (rc == BMS_OK) {
        rc = start_poller(s, diag);
    }
    if (rc == BMS_OK) {
        rc = start_scaler(s, diag);
    }
    if (rc != BMS_OK) {
        bms_sched_destroy(s);
        return rc;
    }
    *out = s;
    return BMS_OK;
}


void bms_sched_destroy(struct bms_sched *sched)
{
    if (sched == NULL) {
        return;
    }
    stop_scaler(sched);
    for (int i = 0; i < sched->n_queues; i++) {
        bms__health_cancel(&sched->queues[i].health);
    }
    bms__poller_stop(sched->poller);
    for (int i = 0; i < sched->n_queues; i++) {
        queue_fini(&sched->queues[i]);
    }
    pthread_mutex_destroy(&sched->alert_lock);
    pthread_cond_destroy(&sched->scaler_wake);
    pthread_mutex_destroy(&sched->scaler_lock);
    free(sched->queues);
    free(sched);
}


/* ---- the caller's side ---- */

static struct queue *find_queue(struct bms_sched *sched,
                                const struct bms_served *served)
{
    for (int i = 0; i < sched->n_queues; i++) {
        if (sched->queues[i].served == served) {
            return &sched->queues[i];
        }
    }
    return NULL;
}


/* Whether the job may join others: every input batched along a first
 * dimension of the same size.  Sets job->n_items. */
static void job_shape(const struct queue *q, struct job *job)
{
    job->n_items = 1;
    job->batchable = q->batching && q->n_inputs > 0;
    for (int k = 0; k < q->n_inputs && job->batchable; k++) {
        const struct bms_tensor *t = &job->inputs[k];

        if (t->n_dims < 1 || t->dims[0] < 1 ||
            (k > 0 && t->dims[0] != job->n_items)) {
            job->batchable = 0;
            job->n_items = 1;
        } else {
            job->n_items = t->dims[0];
        }
    }
    if (job->batchable && job->n_items > q->cfg.max_batch_size) {
        job->batchable = 0;
    }
}


/* Refuse at once when the queue or the concurrency limit is full. */
static enum bms_sched_refusal admit(struct queue *q)
{
    if (q->stopping) {
        return BMS_SCHED_STOPPING;
    }
    if (q->cfg.isolation == BMS_ISOLATION_PROCESS && q->n_up == 0) {
        return BMS_SCHED_RESTARTING;
    }
    if (q->cfg.max_concurrency > 0 &&
        q->stats.in_flight >= q->cfg.max_concurrency) {
        q->stats.shed++;
        return BMS_SCHED_OVER_LIMIT;
    }
    if (q->stats.queued >= q->cfg.max_queue_size) {
        q->stats.shed++;
        return BMS_SCHED_QUEUE_FULL;
    }
    return BMS_SCHED_ANSWERED;
}


/* Refuse at once when no instance is healthy or QoS stopped the model;
 * a request let through after the cooldown is the trial. */
static enum bms_sched_refusal admit_serving(struct queue *q, struct job *job)
{
    if (q->health.n_healthy == 0) {
        snprintf(job->result.reason, sizeof(job->result.reason),
                 "no healthy instance: %.200s", q->health.reason);
        return BMS_SCHED_UNHEALTHY;
    }
    if (!bms__qos_admit(&q->qos, bms_now_us(), &job->trial)) {
        snprintf(job->result.reason, sizeof(job->result.reason), "%s",
                 q->qos.reason);
        return BMS_SCHED_STOPPED;
    }
    return BMS_SCHED_ANSWERED;
}


/* Count an admitted job's outcome in the QoS window: an engine error
 * that would be a 5xx, or a passed deadline, is an error.  Returns the
 * event, its message copied into msg. */
static enum bms__qos_event qos_count(struct queue *q, const struct job *job,
                                     char *msg, size_t size)
{
    int64_t now_us = bms_now_us();
    enum bms__qos_event ev;
    int error;

    if (job->rc == BMS_ERR_UNAVAILABLE &&
        job->result.refusal != BMS_SCHED_DEADLINE) {
        if (job->trial) {
            bms__qos_cancel_trial(&q->qos);
        }
        return BMS__QOS_NONE;
    }
    error = job->rc == BMS_ERR_UNAVAILABLE || job->rc == BMS_ERR_NOMEM ||
            job->rc == BMS_ERR_IO || job->rc == BMS_ERR_INTERNAL;
    ev = bms__qos_record(&q->qos, now_us, now_us - job->enqueued_us, error,
                         job->trial);
    if (ev != BMS__QOS_NONE) {
        snprintf(msg, size, "%s", q->qos.reason);
    }
    return ev;
}


/* Log an alert at warn and hand it to the alert handler (no queue lock
 * held).  ts_us 0: now. */
static void send_alert(struct bms_sched *sched, const struct queue *q,
                       const char *kind, const char *msg, int64_t ts_us)
{
    struct bms_sched_alert alert;

    alert.ts_us = ts_us != 0 ? ts_us : bms_wall_us();
    alert.model = bms_served_name(q->served);
    alert.version = bms_served_version(q->served);
    alert.kind = kind;
    alert.message = msg;
    bms_log(BMS_LOG_WARN, "sched", "msg=\"alert\" model=%s version=%"
            PRId64 " kind=%s detail=\"%s\"", alert.model, alert.version,
            alert.kind, msg);
    pthread_mutex_lock(&sched->alert_lock);
    if (sched->alert_fn != NULL) {
        sched->alert_fn(sched->alert_ud, &alert);
    }
    pthread_mutex_unlock(&sched->alert_lock);
}


/* An instance that left or rejoined the rotation, as an alert
 * ("instance_unhealthy", "instance_healthy"); from the health poller. */
static void health_changed(void *ud, const struct bms__health_change *c)
{
    const struct queue *q = ud;
    char msg[BMS_SCHED_REASON_SIZE + 64];

    if (c->healthy) {
        snprintf(msg, sizeof(msg), "instance %d back in rotation (%d"
                 " healthy)", c->instance, c->n_healthy);
    } else {
        snprintf(msg, sizeof(msg), "instance %d out of rotation (%d"
                 " healthy): %s", c->instance, c->n_healthy, c->reason);
    }
    send_alert(q->sched, q, c->healthy ? "instance_healthy"
                                       : "instance_unhealthy", msg,
               c->ts_us);
}


/* Wait (under the lock) until the job is done or its deadline passes
 * while it is still queued.  A running job is waited for: it ends when
 * the execution does. */
static void await_job(struct queue *q, struct job *job)
{
    while (job->state != JOB_DONE) {
        if (job->state == JOB_QUEUED && bms_now_us() >= job->deadline_us) {
            job_refuse(q, job, BMS_SCHED_DEADLINE);
            break;
        }
        if (job->state == JOB_QUEUED) {
            wait_until(&job->done, &q->lock, job->deadline_us);
        } else {
            pthread_cond_wait(&job->done, &q->lock);
        }
    }
}


/* ---- the fast path: a job run on its caller's thread ---- */

/* Whether instance i has a canary waiting or running (under the lock). */
static int canary_due(const struct queue *q, int i)
{
    const struct bms__probe *p = q->health.probes;

    return p != NULL && (p[i].pending || p[i].running);
}


/*
 * An instance the caller may run its job on itself, skipping the hand-off
 * to a worker thread, or NULL (under the lock).  Only when requests are
 * not batched, the instances are threads and nothing is queued (so the
 * job jumps no one); the instance must be in the rotation, with no
 * canary due, and neither its worker nor another caller using it.
 */
static struct worker *find_idle(struct queue *q)
{
    if (q->batching || q->cfg.isolation != BMS_ISOLATION_THREAD ||
        q->head != NULL) {
        return NULL;
    }
    for (int i = 0; i < q->n_workers; i++) {
        struct worker *w = &q->workers[i];

        if (!w->busy && !w->claimed && !canary_due(q, i) &&
            bms__health_in_rotation(&q->health, i)) {
            return w;
        }
    }
    return NULL;
}


/*
 * Run an admitted job on w, an idle instance, from the caller's thread:
 * called and returning with the lock, with a worker's accounting.  w is
 * claimed meanwhile, so its worker stays out; afterwards the worker is
 * woken when requests queued or its canary came in the meantime.  A job
 * already past its deadline does not run.
 */
static void run_claimed(struct queue *q, struct worker *w, struct job *job)
{
    if (bms_now_us() >= job->deadline_us) {
        q->stats.expired++;
        job->result.refusal = BMS_SCHED_DEADLINE;
        job->rc = BMS_ERR_UNAVAILABLE;
        return;
    }
    w->claimed = 1;
    job->state = JOB_RUNNING;
    q->stats.in_flight++;
    pthread_mutex_unlock(&q->lock);
    run_alone(w, job);
    pthread_mutex_lock(&q->lock);
    w->claimed = 0;
    job->state = JOB_DONE;
    q->stats.in_flight--;
    q->stats.requests++;
    q->stats.items += job->n_items;
    q->stats.executions++;
    if (q->head != NULL || canary_due(q, (int)(w - q->workers))) {
        pthread_cond_broadcast(&q->work);
    }
}


enum bms_status bms_sched_infer(struct bms_sched *sched,
                                struct bms_served *served,
                                const struct bms_tensor *inputs,
                                int64_t deadline_us,
                                struct bms_sched_result *result,
                                struct bms_diag *diag)
{
    struct queue *q = find_queue(sched, served);
    enum bms__qos_event ev = BMS__QOS_NONE;
    char msg[BMS_SCHED_REASON_SIZE];
    struct job job;
    struct worker *w;
    enum bms_sched_refusal why;

    memset(result, 0, sizeof(*result));
    if (q == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model %s version %"
                            PRId64 ": no queue", bms_served_name(served),
                            bms_served_version(served));
    }
    memset(&job, 0, sizeof(job));
    job.inputs = inputs;
    job.enqueued_us = bms_now_us();
    job.deadline_us = deadline_us > 0 ? deadline_us
                      : job.enqueued_us + BMS_SCHED_DEFAULT_TIMEOUT_US;
    job_shape(q, &job);
    if (cond_init(&job.done) != 0) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "scheduler: out of memory");
    }

    pthread_mutex_lock(&q->lock);
    why = q->stopping ? BMS_SCHED_STOPPING : admit_serving(q, &job);
    if (why == BMS_SCHED_ANSWERED) {
        why = admit(q);
        if (why != BMS_SCHED_ANSWERED && job.trial) {
            bms__qos_cancel_trial(&q->qos);
        }
    }
    w = why == BMS_SCHED_ANSWERED ? find_idle(q) : NULL;
    if (w != NULL) {
        run_claimed(q, w, &job);
    } else if (why == BMS_SCHED_ANSWERED) {
        list_append(q, &job);
        if (!q->gathering || batch_full(q)) {
            pthread_cond_broadcast(&q->work);
        }
        await_job(q, &job);
    } else {
        job.result.refusal = why;
        job.rc = BMS_ERR_UNAVAILABLE;
    }
    if (job.rc == BMS_OK && bms_now_us() > job.deadline_us) {
        /* It ran, but too late for the caller. */
        bms_sched_result_fini(&job.result);
        job.result.refusal = BMS_SCHED_DEADLINE;
        job.rc = BMS_ERR_UNAVAILABLE;
        q->stats.expired++;
    }
    if (why == BMS_SCHED_ANSWERED) {
        ev = qos_count(q, &job, msg, sizeof(msg));
    }
    pthread_mutex_unlock(&q->lock);
    pthread_cond_destroy(&job.done);
    if (ev != BMS__QOS_NONE) {
        send_alert(sched, q, bms__qos_event_kind(ev), msg, 0);
    }

    *result = job.result;
    if (job.rc != BMS_OK && job.rc != BMS_ERR_UNAVAILABLE) {
        bms_diag_set(diag, job.rc, "%s", job.diag.msg[0] != '\0'
                     ? job.diag.msg : bms_status_name(job.rc));
    }
    return job.rc;
}


void bms_sched_result_fini(struct bms_sched_result *result)
{
    free(result->block);
    memset(result, 0, sizeof(*result));
}


enum bms_status bms_sched_stats(struct bms_sched *sched,
                                const struct bms_served *served,
                                struct bms_sched_stats *out)
{
    struct queue *q = find_queue(sched, served);

    if (q == NULL) {
        return BMS_ERR_NOT_FOUND;
    }
    pthread_mutex_lock(&q->lock);
    *out = q->stats;
    out->min_instances = q->cfg.min_instances;
    out->max_instances = q->cfg.max_instances;
    out->scale_ups = q->scale_ups;
    out->scale_downs = q->scale_downs;
    out->healthy_instances = q->health.n_healthy;
    out->serving = q->health.n_healthy > 0 &&
                   q->qos.state == BMS__QOS_SERVING;
    out->trial_due = q->health.n_healthy > 0 &&
                     bms__qos_trial_due(&q->qos, bms_now_us());
    out->reason[0] = '\0';
    if (q->qos.state != BMS__QOS_SERVING) {
        snprintf(out->reason, sizeof(out->reason), "%s", q->qos.reason);
    } else if (q->health.n_healthy == 0) {
        snprintf(out->reason, sizeof(out->reason), "no healthy instance: "
                 "%.200s", q->health.reason);
    }
    pthread_mutex_unlock(&q->lock);
    return BMS_OK;
}


/* Stop or resume served by hand, with its alert. */
static enum bms_status admin_set(struct bms_sched *sched,
                                 struct bms_served *served, int stop,
                                 struct bms_diag *diag)
{
    struct queue *q = find_queue(sched, served);
    char msg[BMS_SCHED_REASON_SIZE];
    enum bms__qos_event ev;

    if (q == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model %s version %"
                            PRId64 ": no queue", bms_served_name(served),
                            bms_served_version(served));
    }
    pthread_mutex_lock(&q->lock);
    ev = stop ? bms__qos_stop_admin(&q->qos, bms_now_us())
              : bms__qos_resume_admin(&q->qos);
    snprintf(msg, sizeof(msg), "%s", q->qos.reason);
    pthread_mutex_unlock(&q->lock);
    if (ev != BMS__QOS_NONE) {
        send_alert(sched, q, bms__qos_event_kind(ev), msg, 0);
    }
    return BMS_OK;
}


enum bms_status bms_sched_stop(struct bms_sched *sched,
                               struct bms_served *served,
                               struct bms_diag *diag)
{
    return admin_set(sched, served, 1, diag);
}


enum bms_status bms_sched_resume(struct bms_sched *sched,
                                 struct bms_served *served,
                                 struct bms_diag *diag)
{
    return admin_set(sched, served, 0, diag);
}


void bms_sched_set_alert_handler(struct bms_sched *sched,
                                 bms_sched_alert_fn fn, void *ud)
{
    pthread_mutex_lock(&sched->alert_lock);
    sched->alert_fn = fn;
    sched->alert_ud = ud;
    pthread_mutex_unlock(&sched->alert_lock);
}
