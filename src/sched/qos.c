/*
 * Automatic stop of a model version by its quality of service.  The
 * window is a ring of the requests that completed in the last window_s
 * seconds (at most BMS__QOS_MAX_SAMPLES, the newest kept).  Each
 * completion judges the window once it holds min_requests samples: an
 * error rate over max_error_rate or a p99 over max_p99_ms stops the
 * version.  Every function here runs under the queue's lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/qos.h"

#define US_PER_S ((int64_t)1000000)


enum bms_status bms__qos_init(struct bms__qos *qos,
                              const struct bms_qos_config *cfg)
{
    memset(qos, 0, sizeof(*qos));
    qos->cfg = *cfg;
    qos->enabled = cfg->max_error_rate > 0.0 || cfg->max_p99_ms > 0.0;
    if (!qos->enabled) {
        return BMS_OK;
    }
    qos->cap = BMS__QOS_MAX_SAMPLES;
    qos->ring = calloc((size_t)qos->cap, sizeof(*qos->ring));
    qos->scratch = calloc((size_t)qos->cap, sizeof(*qos->scratch));
    if (qos->ring == NULL || qos->scratch == NULL) {
        bms__qos_fini(qos);
        return BMS_ERR_NOMEM;
    }
    return BMS_OK;
}


void bms__qos_fini(struct bms__qos *qos)
{
    free(qos->ring);
    free(qos->scratch);
    qos->ring = NULL;
    qos->scratch = NULL;
    qos->cap = 0;
    qos->n = 0;
}


static void clear_window(struct bms__qos *qos)
{
    qos->first = 0;
    qos->n = 0;
}


int bms__qos_trial_due(const struct bms__qos *qos, int64_t now_us)
{
    return qos->state == BMS__QOS_STOPPED && !qos->trial_out &&
           now_us - qos->stopped_us >= qos->cfg.cooldown_s * US_PER_S;
}


int bms__qos_admit(struct bms__qos *qos, int64_t now_us, int *trial)
{
    *trial = 0;
    if (qos->state == BMS__QOS_SERVING) {
        return 1;
    }
    if (bms__qos_trial_due(qos, now_us)) {
        qos->trial_out = 1;
        *trial = 1;
        return 1;
    }
    return 0;
}


void bms__qos_cancel_trial(struct bms__qos *qos)
{
    qos->trial_out = 0;
}


/* Quickselect: the k-th smallest (0-based) of a[0..n-1]; reorders a. */
static int64_t select_kth(int64_t *a, int n, int k)
{
    int lo = 0;
    int hi = n - 1;

    while (lo < hi) {
        int64_t pivot = a[lo + (hi - lo) / 2];
        int i = lo;
        int j = hi;

        while (i <= j) {
            while (a[i] < pivot) {
                i++;
            }
            while (a[j] > pivot) {
                j--;
            }
            if (i <= j) {
                int64_t t = a[i];

                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        /* Now a[lo..j] <= pivot <= a[i..hi], and j < i. */
        if (k <= j) {
            hi = j;
        } else if (k >= i) {
            lo = i;
        } else {
            return a[k];
        }
    }
    return a[k];
}


int64_t bms__qos_p99(int64_t *latencies, int n)
{
    /* Nearest rank: ceil(0.99 n), in integers as ceil(99 n / 100). */
    int rank = (int)(((int64_t)n * 99 + 99) / 100);

    return select_kth(latencies, n, rank - 1);
}


/* Forget the samples older than the window. */
static void expire(struct bms__qos *qos, int64_t now_us)
{
    int64_t oldest = now_us - qos->cfg.window_s * US_PER_S;

    while (qos->n > 0 && qos->ring[qos->first].ts_us <= oldest) {
        qos->first = (qos->first + 1) % qos->cap;
        qos->n--;
    }
}


static void push(struct bms__qos *qos, int64_t now_us, int64_t latency_us,
                 int error)
{
    struct bms__qos_sample *s;

    if (qos->n == qos->cap) {
        qos->first = (qos->first + 1) % qos->cap;
        qos->n--;
    }
    s = &qos->ring[(qos->first + qos->n) % qos->cap];
    s->ts_us = now_us;
    s->latency_us = latency_us;
    s->error = error;
    qos->n++;
}


/* Judge the window; on a passed threshold write the reason and return 1. */
static int judge(struct bms__qos *qos)
{
    int n_errors = 0;

    if (qos->n < qos->cfg.min_requests) {
        return 0;
    }
    for (int i = 0; i < qos->n; i++) {
        const struct bms__qos_sample *s =
            &qos->ring[(qos->first + i) % qos->cap];

        n_errors += s->error;
        qos->scratch[i] = s->latency_us;
    }
    if (qos->cfg.max_error_rate > 0.0 &&
        (double)n_errors > qos->cfg.max_error_rate * (double)qos->n) {
        snprintf(qos->reason, sizeof(qos->reason), "stopped: error rate "
                 "%.4g (%d of %d) over qos.max_error_rate %g",
                 (double)n_errors / (double)qos->n, n_errors, qos->n,
                 qos->cfg.max_error_rate);
        return 1;
    }
    if (qos->cfg.max_p99_ms > 0.0) {
        double p99_ms = (double)bms__qos_p99(qos->scratch, qos->n) / 1000.0;

        if (p99_ms > qos->cfg.max_p99_ms) {
            snprintf(qos->reason, sizeof(qos->reason), "stopped: p99 %.4g "
                     "ms over qos.max_p99_ms %g", p99_ms,
                     qos->cfg.max_p99_ms);
            return 1;
        }
    }
    return 0;
}


/* The trial ended: resume when it succeeded within the thresholds, else
 * stay stopped for another cooldown. */
static enum bms__qos_event judge_trial(struct bms__qos *qos, int64_t now_us,
                                       int64_t latency_us, int error)
{
    double ms = (double)latency_us / 1000.0;

    qos->trial_out = 0;
    if (qos->state != BMS__QOS_STOPPED) {
        return BMS__QOS_NONE;      /* an admin acted meanwhile */
    }
    if (!error && (qos->cfg.max_p99_ms <= 0.0 || ms <= qos->cfg.max_p99_ms)) {
        qos->state = BMS__QOS_SERVING;
        clear_window(qos);
        snprintf(qos->reason, sizeof(qos->reason), "resumed: trial request "
                 "took %.4g ms", ms);
        return BMS__QOS_RESUMED;
    }
    qos->stopped_us = now_us;
    if (error) {
        snprintf(qos->reason, sizeof(qos->reason), "stopped: trial request "
                 "failed (qos.max_error_rate %g)", qos->cfg.max_error_rate);
    } else {
        snprintf(qos->reason, sizeof(qos->reason), "stopped: trial request "
                 "took %.4g ms, over qos.max_p99_ms %g", ms,
                 qos->cfg.max_p99_ms);
    }
    return BMS__QOS_TRIPPED;
}


enum bms__qos_event bms__qos_record(struct bms__qos *qos, int64_t now_us,
                                    int64_t latency_us, int error,
                                    int trial)
{
    if (trial) {
        return judge_trial(qos, now_us, latency_us, error);
    }
    if (!qos->enabled || qos->state != BMS__QOS_SERVING) {
        return BMS__QOS_NONE;
    }
    expire(qos, now_us);
    push(qos, now_us, latency_us, error);
    if (!judge(qos)) {
        return BMS__QOS_NONE;
    }
    qos->state = BMS__QOS_STOPPED;
    qos->stopped_us = now_us;
    return BMS__QOS_TRIPPED;
}


enum bms__qos_event bms__qos_stop_admin(struct bms__qos *qos,
                                        int64_t now_us)
{
    if (qos->state == BMS__QOS_STOPPED_ADMIN) {
        return BMS__QOS_NONE;
    }
    qos->state = BMS__QOS_STOPPED_ADMIN;
    qos->stopped_us = now_us;
    snprintf(qos->reason, sizeof(qos->reason), "stopped by an admin");
    return BMS__QOS_ADMIN_STOPPED;
}


enum bms__qos_event bms__qos_resume_admin(struct bms__qos *qos)
{
    if (qos->state == BMS__QOS_SERVING) {
        return BMS__QOS_NONE;
    }
    qos->state = BMS__QOS_SERVING;
    clear_window(qos);
    snprintf(qos->reason, sizeof(qos->reason), "resumed by an admin");
    return BMS__QOS_ADMIN_RESUMED;
}


const char *bms__qos_event_kind(enum bms__qos_event ev)
{
    switch (ev) {
    case BMS__QOS_TRIPPED: return "stopped";
    case BMS__QOS_RESUMED: return "resumed";
    case BMS__QOS_ADMIN_STOPPED: return "stopped_by_admin";
    case BMS__QOS_ADMIN_RESUMED: return "resumed_by_admin";
    case BMS__QOS_NONE: break;
    }
    return "";
}
