/*
 * The routing table: per model, the versions the repository found, the
 * weights in force, each weighted version's credit for smooth weighted
 * round-robin and how many requests it was given.  Invariant: every
 * weighted version is one the model has, and credits[k], routed[k]
 * belong to weights.versions[k].  One mutex guards the whole table; a
 * pick is a pass over at most BMS_ROUTING_MAX_VERSIONS entries.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/routing.h"

/* The routing state of one model. */
struct model_route {
    char *name;
    int64_t *known;              /* versions found, ascending */
    int n_known;
    struct bms_routing_weights weights;
    int64_t credits[BMS_ROUTING_MAX_VERSIONS];
    int64_t routed[BMS_ROUTING_MAX_VERSIONS];
};

struct bms__routing {
    pthread_mutex_t lock;
    struct model_route *models;
    int n_models;
};


static struct model_route *find_model(struct bms__routing *routing,
                                      const char *name)
{
    for (int i = 0; i < routing->n_models; i++) {
        if (strcmp(routing->models[i].name, name) == 0) {
            return &routing->models[i];
        }
    }
    return NULL;
}


/* Add version to the model's known versions, kept ascending and
 * distinct. */
static enum bms_status add_known(struct model_route *m, int64_t version)
{
    int64_t *grown;
    int i = m->n_known;

    for (int k = 0; k < m->n_known; k++) {
        if (m->known[k] == version) {
            return BMS_OK;
        }
    }
    grown = realloc(m->known, (size_t)(m->n_known + 1) * sizeof(*grown));
    if (grown == NULL) {
        return BMS_ERR_NOMEM;
    }
    m->known = grown;
    while (i > 0 && m->known[i - 1] > version) {
        m->known[i] = m->known[i - 1];
        i--;
    }
    m->known[i] = version;
    m->n_known++;
    return BMS_OK;
}


/* The model's entry, made when the table has none yet. */
static enum bms_status model_for(struct bms__routing *routing,
                                 const char *name, struct model_route **out)
{
    struct model_route *m = find_model(routing, name);
    struct model_route *grown;
    size_t size = strlen(name) + 1;

    if (m != NULL) {
        *out = m;
        return BMS_OK;
    }
    grown = realloc(routing->models,
                    (size_t)(routing->n_models + 1) * sizeof(*grown));
    if (grown == NULL) {
        return BMS_ERR_NOMEM;
    }
    routing->models = grown;
    m = &routing->models[routing->n_models];
    memset(m, 0, sizeof(*m));
    m->name = malloc(size);
    if (m->name == NULL) {
        return BMS_ERR_NOMEM;
    }
    memcpy(m->name, name, size);
    routing->n_models++;
    *out = m;
    return BMS_OK;
}


/* Take one repository entry into the table. */
static enum bms_status add_entry(struct bms__routing *routing,
                                 const struct bms_repo_entry *e)
{
    struct model_route *m;
    enum bms_status rc = model_for(routing, e->name, &m);

    if (rc != BMS_OK || e->version <= 0) {
        return rc;
    }
    if (e->served != NULL && m->weights.n_weights == 0) {
        m->weights = bms_served_manifest(e->served)->routing;
    }
    return add_known(m, e->version);
}


enum bms_status bms__routing_create(const struct bms_repo *repo,
                                    struct bms__routing **out)
{
    struct bms__routing *routing = calloc(1, sizeof(*routing));
    enum bms_status rc = BMS_OK;
    int n = bms_repo_n_entries(repo);

    if (routing == NULL) {
        return BMS_ERR_NOMEM;
    }
    if (pthread_mutex_init(&routing->lock, NULL) != 0) {
        free(routing);
        return BMS_ERR_NOMEM;
    }
    for (int i = 0; i < n && rc == BMS_OK; i++) {
        rc = add_entry(routing, bms_repo_entry(repo, i));
    }
    if (rc != BMS_OK) {
        bms__routing_destroy(routing);
        return rc;
    }
    *out = routing;
    return BMS_OK;
}


void bms__routing_destroy(struct bms__routing *routing)
{
    if (routing == NULL) {
        return;
    }
    for (int i = 0; i < routing->n_models; i++) {
        free(routing->models[i].name);
        free(routing->models[i].known);
    }
    free(routing->models);
    pthread_mutex_destroy(&routing->lock);
    free(routing);
}


/*
 * One step of smooth weighted round-robin over the ready weighted
 * versions: the index taken, or -1 when none of them is ready.  Ties go
 * to the lower version.
 */
static int pick_step(struct model_route *m, bms__routing_ready_fn ready,
                     void *arg)
{
    const struct bms_routing_weights *w = &m->weights;
    int64_t total = 0;
    int best = -1;

    for (int k = 0; k < w->n_weights; k++) {
        if (w->weights[k] == 0 || !ready(arg, m->name, w->versions[k])) {
            continue;
        }
        m->credits[k] += w->weights[k];
        total += w->weights[k];
        if (best < 0 || m->credits[k] > m->credits[best]) {
            best = k;
        }
    }
    if (best >= 0) {
        m->credits[best] -= total;
        m->routed[best]++;
    }
    return best;
}


enum bms_status bms__routing_pick(struct bms__routing *routing,
                                  const char *name,
                                  bms__routing_ready_fn ready, void *arg,
                                  int64_t *version)
{
    struct model_route *m;
    enum bms_status rc = BMS_OK;

    *version = 0;
    pthread_mutex_lock(&routing->lock);
    m = find_model(routing, name);
    if (m != NULL && m->weights.n_weights > 0) {
        int k = pick_step(m, ready, arg);

        if (k >= 0) {
            *version = m->weights.versions[k];
        } else {
            rc = BMS_ERR_UNAVAILABLE;
        }
    }
    pthread_mutex_unlock(&routing->lock);
    return rc;
}


static int model_knows(const struct model_route *m, int64_t version)
{
    for (int k = 0; k < m->n_known; k++) {
        if (m->known[k] == version) {
            return 1;
        }
    }
    return 0;
}


enum bms_status bms__routing_set(struct bms__routing *routing,
                                 const char *name,
                                 const struct bms_routing_weights *weights,
                                 struct bms_diag *diag)
{
    struct model_route *m;
    enum bms_status rc = BMS_OK;

    pthread_mutex_lock(&routing->lock);
    m = find_model(routing, name);
    if (m == NULL) {
        rc = BMS_ERR_NOT_FOUND;
        goto out;
    }
    for (int k = 0; k < weights->n_weights; k++) {
        if (!model_knows(m, weights->versions[k])) {
            rc = bms_diag_set(diag, BMS_ERR_INVALID, "weights.%lld: model "
                              "'%s' has no version %lld",
                              (long long)weights->versions[k], name,
                              (long long)weights->versions[k]);
            goto out;
        }
    }
    m->weights = *weights;
    memset(m->credits, 0, sizeof(m->credits));
    memset(m->routed, 0, sizeof(m->routed));

out:
    pthread_mutex_unlock(&routing->lock);
    return rc;
}


enum bms_status bms__routing_get(struct bms__routing *routing,
                                 const char *name,
                                 struct bms_routing_weights *weights,
                                 int64_t *routed)
{
    struct model_route *m;
    enum bms_status rc = BMS_ERR_NOT_FOUND;

    pthread_mutex_lock(&routing->lock);
    m = find_model(routing, name);
    if (m != NULL) {
        *weights = m->weights;
        if (routed != NULL) {
            memcpy(routed, m->routed, sizeof(m->routed));
        }
        rc = BMS_OK;
    }
    pthread_mutex_unlock(&routing->lock);
    return rc;
}


/* Append {"<v>": <n>, ...} for the weighted versions. */
static enum bms_status write_counts(const struct bms_routing_weights *w,
                                    const int64_t *counts,
                                    struct bms_buf *out)
{
    enum bms_status rc = bms_buf_puts(out, "{");

    for (int k = 0; k < w->n_weights && rc == BMS_OK; k++) {
        rc = bms_buf_printf(out, "%s\"%lld\": %lld", k > 0 ? ", " : "",
                            (long long)w->versions[k],
                            (long long)counts[k]);
    }
    if (rc == BMS_OK) {
        rc = bms_buf_puts(out, "}");
    }
    return rc;
}


enum bms_status bms__routing_json(struct bms__routing *routing,
                                  const char *name, struct bms_buf *out)
{
    struct bms_routing_weights w;
    int64_t weights[BMS_ROUTING_MAX_VERSIONS];
    int64_t routed[BMS_ROUTING_MAX_VERSIONS];
    size_t start = out->len;
    enum bms_status rc = bms__routing_get(routing, name, &w, routed);

    if (rc != BMS_OK) {
        return rc;
    }
    for (int k = 0; k < w.n_weights; k++) {
        weights[k] = w.weights[k];
    }
    rc = bms_buf_puts(out, "{\"weights\": ");
    if (rc == BMS_OK) {
        rc = write_counts(&w, weights, out);
    }
    if (rc == BMS_OK) {
        rc = bms_buf_puts(out, ", \"routed\": ");
    }
    if (rc == BMS_OK) {
        rc = write_counts(&w, routed, out);
    }
    if (rc == BMS_OK) {
        rc = bms_buf_puts(out, "}");
    }
    if (rc != BMS_OK && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}
