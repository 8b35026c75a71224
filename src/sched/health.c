/*
 * Health probes of a model version's instances.  A round gives every
 * idle instance a canary (a batch-1 input of zeros built from the graph)
 * that its worker runs on its own session, through the same path as the
 * requests; an instance whose canary fails or outlasts timeout_ms leaves
 * the rotation until one passes.  The timeout counts from when the
 * instance takes its canary, so an instance busy with requests is not
 * judged broken.  Probe state is guarded by the queue's lock; the poller
 * thread only starts rounds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bms/engine.h"
#include "sched/qos.h"

/* The most elements a canary input may have; a bigger one is not built. */
#define CANARY_MAX_ELEMENTS ((int64_t)1 << 26)

struct bms__poller {
    struct bms__health **groups;
    int n_groups;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* stop */
    int stopping;
};


static struct timespec to_timespec(int64_t us)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(us / 1000000);
    ts.tv_nsec = (long)(us % 1000000) * 1000;
    return ts;
}


/* A condition variable on the monotonic clock that bms_now_us reads. */
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


/* The canary's shape for one input: open dimensions become 1.  Returns
 * the element count, or -1 when no canary can be built for it. */
static int64_t canary_shape(const struct bms_value_info *info,
                            struct bms_tensor *t)
{
    int64_t numel = 1;

    if (info->n_dims < 0 || info->dtype == BMS_DTYPE_STRING ||
        bms_dtype_size(info->dtype) == 0) {
        return -1;
    }
    t->dtype = info->dtype;
    t->n_dims = info->n_dims;
    for (int d = 0; d < info->n_dims; d++) {
        t->dims[d] = info->dims[d] > 0 ? info->dims[d] : 1;
        numel *= t->dims[d];
        if (numel > CANARY_MAX_ELEMENTS) {
            return -1;
        }
    }
    return numel;
}


/* Build h->canary; leaves can_probe 0 when the graph allows none. */
static enum bms_status canary_build(struct bms__health *h,
                                    const struct bms_model *model)
{
    size_t total = 0;
    char *data;

    h->n_inputs = bms_model_n_inputs(model);
    h->canary = calloc((size_t)h->n_inputs + 1, sizeof(*h->canary));
    if (h->canary == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int i = 0; i < h->n_inputs; i++) {
        int64_t numel = canary_shape(bms_model_input(model, i),
                                     &h->canary[i]);

        if (numel < 0) {
            bms_log(BMS_LOG_INFO, "sched", "msg=\"no canary for this "
                    "graph: probes off\" model=%s version=%" PRId64
                    " input=%d", h->model, h->version, i);
            return BMS_OK;
        }
        total += (size_t)numel * bms_dtype_size(h->canary[i].dtype);
    }
    h->canary_block = calloc(total + 1, 1);
    if (h->canary_block == NULL) {
        return BMS_ERR_NOMEM;
    }
    data = h->canary_block;
    for (int i = 0; i < h->n_inputs; i++) {
        h->canary[i].data = data;
        data += bms_tensor_size(&h->canary[i]);
    }
    h->can_probe = 1;
    return BMS_OK;
}


enum bms_status bms__health_init(struct bms__health *h,
                                 const struct bms_health_config *cfg,
                                 const struct bms_model *model,
                                 const char *name, int64_t version,
                                 int n_instances, pthread_mutex_t *lock,
                                 pthread_cond_t *work)
{
    enum bms_status rc;

    memset(h, 0, sizeof(*h));
    h->cfg = *cfg;
    h->model = name;
    h->version = version;
    h->lock = lock;
    h->work = work;
    h->n_probes = n_instances;
    h->n_healthy = n_instances;
    h->probes = calloc((size_t)n_instances + 1, sizeof(*h->probes));
    if (h->probes == NULL || cond_init(&h->probed) != 0) {
        free(h->probes);
        h->probes = NULL;
        return BMS_ERR_NOMEM;
    }
    for (int i = 0; i < n_instances; i++) {
        h->probes[i].healthy = 1;
    }
    rc = canary_build(h, model);
    if (rc != BMS_OK) {
        bms__health_fini(h);
    }
    return rc;
}


void bms__health_fini(struct bms__health *h)
{
    if (h->probes != NULL) {
        pthread_cond_destroy(&h->probed);
    }
    free(h->probes);
    free(h->canary);
    free(h->canary_block);
    memset(h, 0, sizeof(*h));
}


void bms__health_resize(struct bms__health *h, int n)
{
    if (h->probes == NULL) {
        h->n_probes = n;
        h->n_healthy = n;
        return;
    }
    while (h->n_probes > n) {
        struct bms__probe *p = &h->probes[--h->n_probes];

        h->n_healthy -= p->healthy;
        memset(p, 0, sizeof(*p));
    }
    while (h->n_probes < n) {
        struct bms__probe *p = &h->probes[h->n_probes++];

        memset(p, 0, sizeof(*p));
        p->healthy = 1;
        h->n_healthy++;
    }
}


int bms__health_take(struct bms__health *h, int i)
{
    struct bms__probe *p;

    if (h->probes == NULL || i >= h->n_probes || !h->probes[i].pending) {
        return 0;
    }
    p = &h->probes[i];
    p->pending = 0;
    p->running = 1;
    p->started_us = bms_now_us();
    return 1;
}


int bms__health_in_rotation(const struct bms__health *h, int i)
{
    if (i >= h->n_probes) {
        return 0;
    }
    return h->probes == NULL || h->probes[i].healthy;
}


/* Keep a change for the poller to hand on (under the lock). */
static void keep_change(struct bms__health *h, int i, int healthy,
                        const char *why)
{
    struct bms__health_change *c;

    if (h->notify == NULL) {
        return;
    }
    if (h->n_changes == BMS__HEALTH_CHANGES) {
        h->n_changes_lost++;
        return;
    }
    c = &h->changes[h->n_changes++];
    c->ts_us = bms_wall_us();
    c->instance = i;
    c->healthy = healthy;
    c->n_healthy = h->n_healthy;
    snprintf(c->reason, sizeof(c->reason), "%s", why);
}


/* Move instance i in or out of the rotation, logging the change. */
static void set_healthy(struct bms__health *h, int i, int healthy,
                        const char *why)
{
    struct bms__probe *p = &h->probes[i];

    if (p->healthy == healthy) {
        return;
    }
    p->healthy = healthy;
    h->n_healthy += healthy ? 1 : -1;
    keep_change(h, i, healthy, why);
    if (!healthy) {
        snprintf(h->reason, sizeof(h->reason), "%s", why);
        bms_log(BMS_LOG_WARN, "sched", "msg=\"instance unhealthy\" "
                "model=%s version=%" PRId64 " instance=%d healthy=%d "
                "reason=\"%s\"", h->model, h->version, i, h->n_healthy,
                why);
    } else {
        bms_log(BMS_LOG_INFO, "sched", "msg=\"instance healthy\" "
                "model=%s version=%" PRId64 " instance=%d healthy=%d",
                h->model, h->version, i, h->n_healthy);
    }

    /* Workers wait on the rotation; a queue left with none refuses. */
    pthread_cond_broadcast(h->work);
}


void bms__health_done(struct bms__health *h, int i, enum bms_status rc,
                      const char *msg, int64_t now_us)
{
    struct bms__probe *p;
    int64_t took_ms;
    char why[BMS_SCHED_REASON_SIZE];

    if (h->probes == NULL || i >= h->n_probes) {
        return;    /* retired while its canary ran */
    }
    p = &h->probes[i];
    took_ms = (now_us - p->started_us) / 1000;

    p->running = 0;
    if (rc != BMS_OK) {
        snprintf(why, sizeof(why), "canary failed: %.200s",
                 msg != NULL && msg[0] != '\0' ? msg : bms_status_name(rc));
        set_healthy(h, i, 0, why);
    } else if (took_ms > h->cfg.timeout_ms) {
        snprintf(why, sizeof(why), "canary took %" PRId64 " ms, over "
                 "health.timeout_ms %" PRId64, took_ms, h->cfg.timeout_ms);
        set_healthy(h, i, 0, why);
    } else {
        set_healthy(h, i, 1, "");
    }
    pthread_cond_broadcast(&h->probed);
}


/*
 * When the round stops waiting: a canary not yet taken waits until
 * timeout_ms after the round began, one running until timeout_ms after
 * its instance took it.  0 when no canary is left.
 */
static int64_t round_deadline(const struct bms__health *h, int64_t start_us)
{
    int64_t timeout_us = h->cfg.timeout_ms * 1000;
    int64_t until = 0;

    for (int i = 0; i < h->n_probes; i++) {
        const struct bms__probe *p = &h->probes[i];
        int64_t t = p->running ? p->started_us + timeout_us
                    : p->pending ? start_us + timeout_us : 0;

        until = t > until ? t : until;
    }
    return until;
}


/*
 * Hand the changes kept since the last round to h->notify, outside the
 * lock, which the caller holds and which is released here.  A change
 * from a canary that ends after its round waits for the next round.
 */
static void hand_over(struct bms__health *h)
{
    struct bms__health_change changes[BMS__HEALTH_CHANGES];
    int n = h->n_changes;
    int64_t lost = h->n_changes_lost;

    memcpy(changes, h->changes, (size_t)n * sizeof(changes[0]));
    h->n_changes = 0;
    h->n_changes_lost = 0;
    pthread_mutex_unlock(h->lock);
    if (lost > 0) {
        bms_log(BMS_LOG_WARN, "sched", "msg=\"health changes not kept\" "
                "model=%s version=%" PRId64 " lost=%" PRId64, h->model,
                h->version, lost);
    }
    for (int i = 0; i < n; i++) {
        h->notify(h->notify_ud, &changes[i]);
    }
}


void bms__health_probe(struct bms__health *h)
{
    int64_t start_us = bms_now_us();
    char why[BMS_SCHED_REASON_SIZE];

    pthread_mutex_lock(h->lock);
    for (int i = 0; i < h->n_probes; i++) {
        struct bms__probe *p = &h->probes[i];

        if (!p->pending && !p->running) {
            p->pending = 1;
        }
    }
    pthread_cond_broadcast(h->work);
    while (!h->stopping) {
        int64_t until = round_deadline(h, start_us);
        struct timespec ts = to_timespec(until);

        if (until == 0 || bms_now_us() >= until) {
            break;
        }
        pthread_cond_timedwait(&h->probed, h->lock, &ts);
    }

    /* A canary its instance never took (busy with requests all along) is
     * withdrawn: busy is not broken.  One still running past the timeout
     * takes its instance out of the rotation; it reports when it ends. */
    snprintf(why, sizeof(why), "canary timed out after %" PRId64 " ms "
             "(health.timeout_ms)", h->cfg.timeout_ms);
    for (int i = 0; i < h->n_probes; i++) {
        struct bms__probe *p = &h->probes[i];

        if (p->running && !h->stopping) {
            set_healthy(h, i, 0, why);
        }
        p->pending = 0;
    }
    hand_over(h);
}




void bms__health_cancel(struct bms__health *h)
{
    if (h->probes == NULL) {
        return;
    }
    pthread_mutex_lock(h->lock);
    h->stopping = 1;
    pthread_cond_broadcast(&h->probed);
    pthread_mutex_unlock(h->lock);
}


/* ---- the poller ---- */

static void *poller_main(void *arg)
{
    struct bms__poller *p = arg;

    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        int64_t now_us = bms_now_us();
        int64_t next_us = INT64_MAX;
        struct timespec ts;

        for (int g = 0; g < p->n_groups && !p->stopping; g++) {
            struct bms__health *h = p->groups[g];

            if (h->next_us <= now_us) {
                pthread_mutex_unlock(&p->lock);
                bms__health_probe(h);
                pthread_mutex_lock(&p->lock);
                now_us = bms_now_us();
                h->next_us = now_us + h->cfg.period_ms * 1000;
            }
            if (h->next_us < next_us) {
                next_us = h->next_us;
            }
        }
        ts = to_timespec(next_us);
        while (!p->stopping && bms_now_us() < next_us) {
            pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}


enum bms_status bms__poller_start(struct bms__health **groups, int n,
                                  struct bms__poller **out)
{
    struct bms__poller *p;
    int n_probed = 0;

    *out = NULL;
    for (int g = 0; g < n; g++) {
        n_probed += groups[g]->cfg.period_ms > 0 && groups[g]->can_probe;
    }
    if (n_probed == 0) {
        return BMS_OK;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->groups = calloc((size_t)n_probed, sizeof(*p->groups));
    if (p->groups == NULL || cond_init(&p->wake) != 0) {
        free(p->groups);
        free(p);
        return BMS_ERR_NOMEM;
    }
    for (int g = 0; g < n; g++) {
        if (groups[g]->cfg.period_ms > 0 && groups[g]->can_probe) {
            /* The first round at once, so a broken model shows soon. */
            groups[g]->next_us = 0;
            p->groups[p->n_groups++] = groups[g];
        }
    }
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->thread, NULL, poller_main, p) != 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->wake);
        free(p->groups);
        free(p);
        return BMS_ERR_IO;
    }
    *out = p;
    return BMS_OK;
}


void bms__poller_stop(struct bms__poller *poller)
{
    if (poller == NULL) {
        return;
    }
    pthread_mutex_lock(&poller->lock);
    poller->stopping = 1;
    pthread_cond_broadcast(&poller->wake);
    pthread_mutex_unlock(&poller->lock);
    pthread_join(poller->thread, NULL);
    pthread_cond_destroy(&poller->wake);
    pthread_mutex_destroy(&poller->lock);
    free(poller->groups);
    free(poller);
}
