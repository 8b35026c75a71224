/*
 * The model manager (bms/manager.h): a table of models by name, each
 * with the slot that serves it now, the reason its last load failed and
 * the fingerprint of its folder for poll mode.
 *
 * Invariants: a slot is immutable once built; its reference count is
 * one for the table (while it is the model's slot) plus one per lease,
 * and the slot is destroyed, outside any lock, by whoever drops the last
 * reference.  m->lock guards the table and the counts and is never held
 * across a load; m->load_lock makes loads, unloads and polls run one at
 * a time.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bms/manager.h"
#include "sched/routing.h"

#define NAME_MAX_LEN 127             /* as a model folder's name */
#define MAX_SLOT_VERSIONS 1024       /* versions one load may list */

/* What serves one model: immutable once built. */
struct slot {
    struct bms_repo *repo;
    struct bms_sched *sched;
    struct bms__routing *routing;
    int refs;                        /* the table's and the leases' */
};

/* One model the manager has seen. */
struct model {
    char name[NAME_MAX_LEN + 1];
    struct slot *slot;               /* NULL: not loaded */
    char reason[BMS_DIAG_SIZE];      /* the last failed load; "" */
    int loading;                     /* a load is building a new slot */
    int unloaded;                    /* unloaded on purpose */
    int polled;                      /* fingerprint is the folder's */
    uint64_t fingerprint;
};

struct bms_manager {
    char *dir;
    int n_cores;
    struct bms_store *store;
    int poll_s;
    pthread_mutex_t lock;            /* the table and slot counts */
    pthread_mutex_t load_lock;       /* one load at a time */
    struct model *models;
    int n_models;
    int cap_models;
    bms_manager_change_fn hook;
    void *hook_ud;
    bms_manager_config_fn config_hook;   /* under load_lock */
    void *config_ud;
    pthread_t poller;
    int has_poller;
    int stopping;                    /* guarded by poll_lock */
    pthread_mutex_t poll_lock;
    pthread_cond_t poll_cond;
};

/* The model folders found by a scan, sorted. */
struct folder_list {
    char **names;
    int n;
    int cap;
};


/* ---- slots -------------------------------------------------------------- */

static void slot_destroy(struct slot *s)
{
    if (s == NULL) {
        return;
    }
    bms_sched_destroy(s->sched);
    bms__routing_destroy(s->routing);
    bms_repo_close(s->repo);
    free(s);
}


/* Drop one reference; the last one destroys the slot. */
static void slot_put(struct bms_manager *m, struct slot *s)
{
    int last;

    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&m->lock);
    last = --s->refs == 0;
    pthread_mutex_unlock(&m->lock);
    if (last) {
        slot_destroy(s);
    }
}


void bms_sched_alert_to_store(void *ud, const struct bms_sched_alert *alert)
{
    struct bms_alert a;
    struct bms_diag diag;

    memset(&a, 0, sizeof(a));
    a.ts_us = alert->ts_us;
    snprintf(a.model, sizeof(a.model), "%s", alert->model);
    a.version = alert->version;
    snprintf(a.kind, sizeof(a.kind), "%s", alert->kind);
    snprintf(a.message, sizeof(a.message), "%s", alert->message);
    diag.msg[0] = '\0';
    if (bms_store_put_alert(ud, &a, &diag) != BMS_OK) {
        bms_log(BMS_LOG_ERROR, "store", "msg=\"alert not stored\" "
                "model=%s kind=%s error=\"%s\"", a.model, a.kind, diag.msg);
    }
}


/* Record the manifest of each ready version in the store. */
static void record_manifests(struct bms_manager *m,
                             const struct bms_repo *repo)
{
    for (int i = 0; m->store != NULL && i < bms_repo_n_entries(repo); i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);
        const struct bms_manifest *mf;
        struct bms_diag diag;

        if (e->state != BMS_ENTRY_READY) {
            continue;
        }
        mf = bms_served_manifest(e->served);
        diag.msg[0] = '\0';
        if (mf != NULL && mf->json != NULL &&
            bms_store_put_model(m->store, e->name, e->version, mf->json,
                                &diag) != BMS_OK) {
            bms_log(BMS_LOG_WARN, "manager", "model=%s version=%lld "
                    "msg=\"manifest not stored\"", e->name,
                    (long long)e->version);
        }
    }
}


/* A slot on repo (taken, also on failure): its scheduler and routing. */
static enum bms_status slot_build(struct bms_manager *m,
                                  struct bms_repo *repo, struct slot **out,
                                  struct bms_diag *diag)
{
    struct slot *s = calloc(1, sizeof(*s));
    enum bms_status rc;

    if (s == NULL) {
        bms_repo_close(repo);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    s->repo = repo;
    s->refs = 1;
    rc = bms_sched_create(repo, m->n_cores, &s->sched, diag);
    if (rc == BMS_OK && bms__routing_create(repo, &s->routing) != BMS_OK) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    if (rc != BMS_OK) {
        slot_destroy(s);
        return rc;
    }
    if (m->store != NULL) {
        bms_sched_set_alert_handler(s->sched, bms_sched_alert_to_store,
                                    m->store);
    }
    record_manifests(m, repo);
    *out = s;
    return BMS_OK;
}


/* ---- the table ---------------------------------------------------------- */

/* The model named name, or NULL; m->lock held. */
static struct model *model_find(struct bms_manager *m, const char *name)
{
    for (int i = 0; i < m->n_models; i++) {
        if (strcmp(m->models[i].name, name) == 0) {
            return &m->models[i];
        }
    }
    return NULL;
}


/* The model named name, added when new; NULL when memory runs out.
 * m->lock held.  Pointers into the table move when it grows, so they are
 * only kept while the lock is. */
static struct model *model_get(struct bms_manager *m, const char *name)
{
    struct model *e = model_find(m, name);

    if (e != NULL) {
        return e;
    }
    if (m->n_models == m->cap_models) {
        int cap = m->cap_models ? m->cap_models * 2 : 16;
        struct model *grown = realloc(m->models,
                                      (size_t)cap * sizeof(*grown));

        if (grown == NULL) {
            return NULL;
        }
        m->models = grown;
        m->cap_models = cap;
    }
    e = &m->models[m->n_models++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    return e;
}


/* Install slot s as name's (NULL: none) and return the one it replaces;
 * set the reason and flags with it. */
static struct slot *model_swap(struct bms_manager *m, const char *name,
                               struct slot *s, const char *reason,
                               int unloaded)
{
    struct slot *old = NULL;
    struct model *e;

    pthread_mutex_lock(&m->lock);
    e = model_get(m, name);
    if (e != NULL) {
        old = e->slot;
        e->slot = s;
        e->loading = 0;
        e->unloaded = unloaded;
        snprintf(e->reason, sizeof(e->reason), "%s", reason);
    } else {
        old = s;                     /* no room: the new slot goes */
    }
    pthread_mutex_unlock(&m->lock);
    return old;
}


/* Note the reason of a failed load, keeping the slot. */
static void model_failed(struct bms_manager *m, const char *name,
                         const char *reason)
{
    struct model *e;

    pthread_mutex_lock(&m->lock);
    e = model_get(m, name);
    if (e != NULL) {
        e->loading = 0;
        snprintf(e->reason, sizeof(e->reason), "%s", reason);
    }
    pthread_mutex_unlock(&m->lock);
}


static void set_loading(struct bms_manager *m, const char *name)
{
    struct model *e;

    pthread_mutex_lock(&m->lock);
    e = model_get(m, name);
    if (e != NULL) {
        e->loading = 1;
    }
    pthread_mutex_unlock(&m->lock);
}


/* A reference to name's slot now (NULL: none), which the caller puts. */
static struct slot *slot_get(struct bms_manager *m, const char *name)
{
    struct slot *s = NULL;
    struct model *e;

    pthread_mutex_lock(&m->lock);
    e = model_find(m, name);
    if (e != NULL && e->slot != NULL) {
        s = e->slot;
        s->refs++;
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}


static void notify(struct bms_manager *m, const char *name)
{
    bms_manager_change_fn fn;
    void *ud;

    pthread_mutex_lock(&m->lock);
    fn = m->hook;
    ud = m->hook_ud;
    pthread_mutex_unlock(&m->lock);
    if (fn != NULL) {
        fn(ud, name);
    }
}


void bms_manager_set_change_hook(struct bms_manager *m,
                                 bms_manager_change_fn fn, void *ud)
{
    /* Hooks run under load_lock: taking it waits out a call under way,
     * so that the old ud may be freed once this returns. */
    pthread_mutex_lock(&m->load_lock);
    pthread_mutex_lock(&m->lock);
    m->hook = fn;
    m->hook_ud = ud;
    pthread_mutex_unlock(&m->lock);
    pthread_mutex_unlock(&m->load_lock);
}


/* ---- leases ------------------------------------------------------------- */

void bms_manager_acquire(struct bms_manager *m, const char *name,
                         struct bms_manager_lease *out)
{
    struct slot *s = slot_get(m, name);

    memset(out, 0, sizeof(*out));
    if (s == NULL) {
        return;
    }
    out->repo = s->repo;
    out->sched = s->sched;
    out->routing = s->routing;
    out->slot = s;
}


void bms_manager_release(struct bms_manager *m,
                         struct bms_manager_lease *lease)
{
    slot_put(m, lease->slot);
    memset(lease, 0, sizeof(*lease));
}


static int has_version_in(const int64_t *list, int n, int64_t v)
{
    for (int i = 0; i < n; i++) {
        if (list[i] == v) {
            return 1;
        }
    }
    return 0;
}


/* repo's entry of this version, or NULL. */
static const struct bms_repo_entry *repo_entry_of(const struct bms_repo *r,
                                                  int64_t version)
{
    for (int i = 0; i < bms_repo_n_entries(r); i++) {
        const struct bms_repo_entry *e = bms_repo_entry(r, i);

        if (e->version == version) {
            return e;
        }
    }
    return NULL;
}


/* Whether dir has a model folder of this name. */
static int has_folder(const struct bms_manager *m, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/%s", m->dir, name);

    return n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 &&
           S_ISDIR(st.st_mode);
}


/* Whether model name has the folder of this version. */
static int has_version_folder(const struct bms_manager *m, const char *name,
                              int64_t version)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/%s/%lld", m->dir, name,
                     (long long)version);

    return n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 &&
           S_ISDIR(st.st_mode);
}


/* ---- loading ------------------------------------------------------------ */

/* The versions of repo's entries (ascending, without 0), plus add (> 0)
 * and less drop (> 0), into out; returns how many. */
static int slot_versions(const struct bms_repo *repo, int64_t add,
                         int64_t drop, int64_t *out)
{
    int n = 0;
    int added = 0;

    for (int i = 0; i < bms_repo_n_entries(repo); i++) {
        int64_t v = bms_repo_entry(repo, i)->version;

        if (v == 0 || v == drop || n == MAX_SLOT_VERSIONS - 1) {
            continue;
        }
        if (n > 0 && out[n - 1] == v) {
            continue;
        }
        added |= v == add;
        out[n++] = v;
    }
    if (add > 0 && !added) {
        out[n++] = add;
    }
    return n;
}


/* Whether the load of repo succeeded; else diag gets the reason: no
 * version ready, or version (> 0) failed. */
static int load_succeeded(const struct bms_repo *repo, const char *name,
                          int64_t version, struct bms_diag *diag)
{
    const struct bms_repo_entry *failed = NULL;
    int n_ready = 0;

    for (int i = 0; i < bms_repo_n_entries(repo); i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        if (e->state == BMS_ENTRY_READY) {
            n_ready++;
        } else if (failed == NULL || e->version == version) {
            failed = e;
        }
    }
    if (n_ready > 0 && (version == 0 || failed == NULL ||
                        failed->version != version)) {
        return 1;
    }
    bms_diag_set(diag, BMS_ERR_INVALID, "model '%s': %s", name,
                 failed != NULL ? failed->reason : "nothing to load");
    return 0;
}


/* The versions a load opens: version (> 0) added to those loaded now,
 * or what the policy selects (*n -1). */
static void load_versions(struct bms_manager *m, const char *name,
                          int64_t version, int64_t *versions, int *n)
{
    struct slot *old;

    *n = -1;
    if (version <= 0) {
        return;
    }
    old = slot_get(m, name);
    *n = slot_versions(old != NULL ? old->repo : NULL, version, 0,
                       versions);
    slot_put(m, old);
}


static void log_load(const char *name, int64_t version, const char *what,
                     const struct bms_diag *diag)
{
    char esc[BMS_DIAG_SIZE];
    char which[24];
    size_t i = 0;

    /* Quotes and line breaks out of the logged reason. */
    for (; diag != NULL && diag->msg[i] != '\0' && i + 1 < sizeof(esc);
         i++) {
        char c = diag->msg[i];

        esc[i] = c == '"' ? '\'' : (c == '\n' || c == '\r') ? ' ' : c;
    }
    esc[i] = '\0';
    if (version > 0) {
        snprintf(which, sizeof(which), "%lld", (long long)version);
    } else {
        snprintf(which, sizeof(which), "policy");  /* all it selects */
    }
    if (diag != NULL) {
        bms_log(BMS_LOG_ERROR, "manager", "msg=\"%s\" model=%s "
                "version=%s error=\"%s\"", what, name, which, esc);
    } else {
        bms_log(BMS_LOG_INFO, "manager", "msg=\"%s\" model=%s "
                "version=%s", what, name, which);
    }
}


void bms_manager_set_config_hook(struct bms_manager *m,
                                 bms_manager_config_fn fn, void *ud)
{
    pthread_mutex_lock(&m->load_lock);
    m->config_hook = fn;
    m->config_ud = ud;
    pthread_mutex_unlock(&m->load_lock);
}


static enum bms_status load_with(struct bms_manager *m, const char *name,
                                 int64_t version, const char *config_json,
                                 struct bms_diag *diag);


/* bms_manager_load with m->load_lock held: the config hook's manifest
 * when the caller brings none. */
static enum bms_status load_locked(struct bms_manager *m, const char *name,
                                   int64_t version, const char *config_json,
                                   struct bms_diag *diag)
{
    struct bms_buf doc = {NULL, 0, 0};
    enum bms_status rc = BMS_OK;

    if (config_json == NULL && m->config_hook != NULL &&
        has_folder(m, name)) {
        rc = m->config_hook(m->config_ud, name, &doc, diag);
        if (rc != BMS_OK) {
            bms_diag_prefix(diag, "model '%s': settings", name);
            model_failed(m, name, diag != NULL ? diag->msg : "load failed");
        }
    }
    if (rc == BMS_OK) {
        rc = load_with(m, name, version, doc.len > 0 ? doc.data
                                                     : config_json, diag);
    }
    bms_buf_fini(&doc);
    return rc;
}


static enum bms_status load_with(struct bms_manager *m, const char *name,
                                 int64_t version, const char *config_json,
                                 struct bms_diag *diag)
{
    int64_t versions[MAX_SLOT_VERSIONS];
    struct bms_repo *repo = NULL;
    struct slot *s = NULL;
    struct slot *old;
    int n_versions;
    int ok;
    enum bms_status rc;

    if (!has_folder(m, name)) {
        /* Checked first, so that unknown names never enter the table. */
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s': no such "
                            "folder in the repository", name);
    }
    if (version > 0 && !has_version_folder(m, name, version)) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s' has no "
                            "version folder %lld", name, (long long)version);
    }
    load_versions(m, name, version, versions, &n_versions);
    set_loading(m, name);
    rc = bms_repo_open_versions(m->dir, name, config_json,
                                n_versions >= 0 ? versions : NULL,
                                n_versions, &repo, diag);
    if (rc != BMS_OK) {
        model_failed(m, name, diag != NULL ? diag->msg : "load failed");
        return rc;
    }
    ok = load_succeeded(repo, name, version, diag);
    old = slot_get(m, name);
    slot_put(m, old);
    if (!ok && old != NULL) {
        /* The versions loaded before keep serving. */
        bms_repo_close(repo);
        model_failed(m, name, diag != NULL ? diag->msg : "load failed");
        return BMS_ERR_INVALID;
    }
    rc = slot_build(m, repo, &s, diag);
    if (rc != BMS_OK) {
        model_failed(m, name, diag != NULL ? diag->msg : "load failed");
        return rc;
    }
    /* A first load that failed still gets its slot, so that the model's
     * routes answer 503 with the reason, as at start-up. */
    old = model_swap(m, name, s, ok ? "" : diag != NULL ? diag->msg
                                                         : "load failed", 0);
    slot_put(m, old);
    notify(m, name);
    return ok ? BMS_OK : BMS_ERR_INVALID;
}


enum bms_status bms_manager_load(struct bms_manager *m, const char *name,
                                 int64_t version, const char *config_json,
                                 struct bms_diag *diag)
{
    struct bms_diag local;
    enum bms_status rc;

    if (diag == NULL) {
        diag = &local;
    }
    diag->msg[0] = '\0';
    pthread_mutex_lock(&m->load_lock);
    rc = load_locked(m, name, version, config_json, diag);
    pthread_mutex_unlock(&m->load_lock);
    log_load(name, version, rc == BMS_OK ? "model loaded"
                                         : "model load failed",
             rc == BMS_OK ? NULL : diag);
    return rc;
}


/* Unload one version: rebuild the slot without it. */
static enum bms_status unload_version(struct bms_manager *m,
                                      const char *name, struct slot *cur,
                                      int64_t version,
                                      struct bms_diag *diag)
{
    int64_t versions[MAX_SLOT_VERSIONS];
    int n = slot_versions(cur->repo, 0, version, versions);
    struct bms_repo *repo = NULL;
    struct slot *s = NULL;
    enum bms_status rc;

    if (repo_entry_of(cur->repo, version) == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s' version "
                            "%lld is not loaded", name, (long long)version);
    }
    if (n == 0) {
        slot_put(m, model_swap(m, name, NULL, "", 1));
        return BMS_OK;
    }
    rc = bms_repo_open_versions(m->dir, name, NULL, versions, n, &repo,
                                diag);
    if (rc == BMS_OK) {
        rc = slot_build(m, repo, &s, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    slot_put(m, model_swap(m, name, s, "", 0));
    return BMS_OK;
}


static enum bms_status unload_locked(struct bms_manager *m,
                                     const char *name, int64_t version,
                                     struct bms_diag *diag)
{
    struct slot *cur = slot_get(m, name);
    enum bms_status rc = BMS_OK;

    if (cur == NULL) {
        if (!has_folder(m, name)) {
            return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s' not "
                                "found", name);
        }
        if (version > 0) {
            return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s' "
                                "version %lld is not loaded", name,
                                (long long)version);
        }
        slot_put(m, model_swap(m, name, NULL, "", 1));
        return BMS_OK;
    }
    if (version > 0) {
        rc = unload_version(m, name, cur, version, diag);
    } else {
        slot_put(m, model_swap(m, name, NULL, "", 1));
    }
    slot_put(m, cur);
    if (rc == BMS_OK) {
        notify(m, name);
    }
    return rc;
}


enum bms_status bms_manager_unload(struct bms_manager *m, const char *name,
                                   int64_t version, struct bms_diag *diag)
{
    struct bms_diag local;
    enum bms_status rc;

    if (diag == NULL) {
        diag = &local;
    }
    diag->msg[0] = '\0';
    pthread_mutex_lock(&m->load_lock);
    rc = unload_locked(m, name, version, diag);
    pthread_mutex_unlock(&m->load_lock);
    log_load(name, version, rc == BMS_OK ? "model unloaded"
                                         : "model unload failed",
             rc == BMS_OK ? NULL : diag);
    return rc;
}


/* ---- the folder --------------------------------------------------------- */

static void folders_fini(struct folder_list *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->names[i]);
    }
    free(f->names);
    memset(f, 0, sizeof(*f));
}


static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


/* [A-Za-z0-9_.-]{1,127}, not starting with '.', as the repository
 * accepts. */
static int valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN || s[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return 0;
        }
    }
    return 1;
}


/* The model folders of m->dir, sorted. */
static enum bms_status folders_scan(const struct bms_manager *m,
                                    struct folder_list *out,
                                    struct bms_diag *diag)
{
    DIR *d = opendir(m->dir);
    struct dirent *de;

    memset(out, 0, sizeof(*out));
    if (d == NULL) {
        return bms_diag_set(diag, errno == ENOENT ? BMS_ERR_NOT_FOUND
                                                  : BMS_ERR_IO,
                            "repository %s: %s", m->dir, strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        if (!valid_name(de->d_name) || !has_folder(m, de->d_name)) {
            continue;
        }
        if (out->n == out->cap) {
            int cap = out->cap ? out->cap * 2 : 16;
            char **grown = realloc(out->names, (size_t)cap * sizeof(*grown));

            if (grown == NULL) {
                break;
            }
            out->names = grown;
            out->cap = cap;
        }
        out->names[out->n] = strdup(de->d_name);
        if (out->names[out->n] == NULL) {
            break;
        }
        out->n++;
    }
    closedir(d);
    if (de != NULL) {
        folders_fini(out);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    if (out->n > 1) {
        qsort(out->names, (size_t)out->n, sizeof(*out->names), str_cmp);
    }
    return BMS_OK;
}


/* A positive decimal version folder name, else 0. */
static int64_t version_of(const char *s)
{
    int64_t v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 18 || s[0] == '0') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}


/* The version folders of model name, ascending, into out (at most max);
 * returns how many. */
static int folder_versions(const struct bms_manager *m, const char *name,
                           int64_t *out, int max)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int n = 0;

    if (snprintf(path, sizeof(path), "%s/%s", m->dir, name) >=
        (int)sizeof(path) || (d = opendir(path)) == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL && n < max) {
        int64_t v = version_of(de->d_name);
        int k = n;

        if (v == 0) {
            continue;
        }
        /* Insertion keeps them ascending. */
        while (k > 0 && out[k - 1] > v) {
            out[k] = out[k - 1];
            k--;
        }
        out[k] = v;
        n++;
    }
    closedir(d);
    return n;
}


/* FNV-1a over n bytes, continuing from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211u;
    }
    return h;
}


/* Mix a file's presence, size and mtime into h. */
static uint64_t fnv_file(uint64_t h, const char *path)
{
    struct stat st;
    int64_t v[3] = {0, 0, 0};

    if (stat(path, &st) == 0) {
        v[0] = (int64_t)st.st_size;
        v[1] = (int64_t)st.st_mtim.tv_sec;
        v[2] = (int64_t)st.st_mtim.tv_nsec + 1;
    }
    return fnv(h, v, sizeof(v));
}


/* What poll mode compares: config.json and every version's model.onnx
 * (their sizes and mtimes) and the set of version folders. */
static uint64_t fingerprint(const struct bms_manager *m, const char *name)
{
    int64_t versions[MAX_SLOT_VERSIONS];
    int n = folder_versions(m, name, versions, MAX_SLOT_VERSIONS);
    uint64_t h = 14695981039346656037u;
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s/config.json", m->dir, name);
    h = fnv_file(h, path);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s/%lld/model.onnx", m->dir, name,
                 (long long)versions[i]);
        h = fnv(h, &versions[i], sizeof(versions[i]));
        h = fnv_file(h, path);
    }
    return h;
}


/* ---- the index ---------------------------------------------------------- */

/* The rows of model name: its version folders and its slot's entries. */
static int index_model(struct bms_manager *m, const char *name,
                       int has_dir, bms_manager_entry_fn fn, void *ud)
{
    int64_t versions[MAX_SLOT_VERSIONS];
    int64_t loaded[MAX_SLOT_VERSIONS];
    const struct model *e = model_find(m, name);
    const struct bms_repo *repo = e != NULL && e->slot != NULL
                                  ? e->slot->repo : NULL;
    int n = has_dir ? folder_versions(m, name, versions, MAX_SLOT_VERSIONS)
                    : 0;
    int n_loaded = slot_versions(repo, 0, 0, loaded);

    /* Merge the loaded versions whose folder is gone. */
    for (int i = 0; i < n_loaded && n < MAX_SLOT_VERSIONS; i++) {
        int k = n;

        if (has_version_in(versions, n, loaded[i])) {
            continue;
        }
        while (k > 0 && versions[k - 1] > loaded[i]) {
            versions[k] = versions[k - 1];
            k--;
        }
        versions[k] = loaded[i];
        n++;
    }
    if (n == 0) {
        versions[n++] = 0;
    }
    for (int i = 0; i < n; i++) {
        struct bms_manager_entry row = { name, versions[i], "UNAVAILABLE",
                                         "" };
        const struct bms_repo_entry *re = repo_entry_of(repo, versions[i]);

        if (re != NULL && re->state == BMS_ENTRY_READY) {
            row.state = "READY";
        } else if (e != NULL && e->loading) {
            row.state = "LOADING";
        } else if (re != NULL) {
            row.reason = re->reason;
        } else if (e != NULL && e->reason[0] != '\0') {
            row.reason = e->reason;
        } else if (e != NULL && e->unloaded) {
            row.reason = "unloaded";
        } else {
            row.reason = repo != NULL ? "not loaded: left out by the "
                                        "version policy or added since "
                                        "the last load" : "not loaded";
        }
        if (fn(ud, &row) != 0) {
            return 1;
        }
    }
    return 0;
}


enum bms_status bms_manager_index(struct bms_manager *m,
                                  bms_manager_entry_fn fn, void *ud,
                                  struct bms_diag *diag)
{
    struct folder_list f;
    enum bms_status rc = folders_scan(m, &f, diag);
    int stop = 0;

    if (rc != BMS_OK) {
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < f.n && !stop; i++) {
        stop = index_model(m, f.names[i], 1, fn, ud);
    }

    /* Loaded models whose folder is gone still serve until unloaded. */
    for (int i = 0; i < m->n_models && !stop; i++) {
        const struct model *e = &m->models[i];

        if (e->slot != NULL &&
            bsearch(&(const char *){ e->name }, f.names, (size_t)f.n,
                    sizeof(*f.names), str_cmp) == NULL) {
            stop = index_model(m, e->name, 0, fn, ud);
        }
    }
    pthread_mutex_unlock(&m->lock);
    folders_fini(&f);
    return BMS_OK;
}


int bms_manager_n_ready(struct bms_manager *m)
{
    int n = 0;

    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n_models; i++) {
        const struct slot *s = m->models[i].slot;

        for (int k = 0; s != NULL && k < bms_repo_n_entries(s->repo); k++) {
            if (bms_repo_entry(s->repo, k)->state == BMS_ENTRY_READY) {
                n++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    return n;
}


const char *bms_manager_dir(const struct bms_manager *m)
{
    return m->dir;
}


/* ---- poll mode ---------------------------------------------------------- */

/* What a scan does about one model folder. */
enum poll_action {
    POLL_NONE = 0,
    POLL_NEW,
    POLL_CHANGED
};


/* Compare name's folder with what was seen before and note it. */
static enum poll_action poll_check(struct bms_manager *m, const char *name)
{
    uint64_t fp = fingerprint(m, name);
    enum poll_action act = POLL_NONE;
    struct model *e;

    pthread_mutex_lock(&m->lock);
    e = model_get(m, name);
    if (e != NULL && !e->polled) {
        act = POLL_NEW;
    } else if (e != NULL && e->fingerprint != fp) {
        act = POLL_CHANGED;
    }
    if (e != NULL) {
        e->polled = 1;
        e->fingerprint = fp;
    }
    pthread_mutex_unlock(&m->lock);
    return act;
}


/* The name of a polled model whose folder is not in f (copied into out),
 * marked as no longer polled, and whether it has a slot (*loaded); 0
 * when there is none. */
static int poll_gone(struct bms_manager *m, const struct folder_list *f,
                     char *out, size_t size, int *loaded)
{
    int found = 0;

    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n_models && !found; i++) {
        struct model *e = &m->models[i];

        if (e->polled &&
            bsearch(&(const char *){ e->name }, f->names, (size_t)f->n,
                    sizeof(*f->names), str_cmp) == NULL) {
            e->polled = 0;
            found = 1;
            *loaded = e->slot != NULL;
            snprintf(out, size, "%s", e->name);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return found;
}


int bms_manager_poll(struct bms_manager *m)
{
    char name[NAME_MAX_LEN + 1];
    struct folder_list f;
    struct bms_diag diag;
    int loaded = 0;
    int n = 0;

    diag.msg[0] = '\0';
    if (folders_scan(m, &f, &diag) != BMS_OK) {
        bms_log(BMS_LOG_WARN, "manager", "msg=\"poll failed\" dir=\"%s\"",
                m->dir);
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        enum poll_action act = poll_check(m, f.names[i]);

        if (act == POLL_NONE) {
            continue;
        }
        bms_log(BMS_LOG_INFO, "manager", "msg=\"%s\" model=%s",
                act == POLL_NEW ? "model found" : "model changed",
                f.names[i]);
        bms_manager_load(m, f.names[i], 0, NULL, NULL);
        n++;
    }
    while (poll_gone(m, &f, name, sizeof(name), &loaded)) {
        if (!loaded) {
            continue;
        }
        bms_log(BMS_LOG_INFO, "manager", "msg=\"model removed\" model=%s",
                name);
        bms_manager_unload(m, name, 0, NULL);
        n++;
    }
    folders_fini(&f);
    return n;
}


static void *poll_main(void *arg)
{
    struct bms_manager *m = arg;

    pthread_mutex_lock(&m->poll_lock);
    while (!m->stopping) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += m->poll_s;
        pthread_cond_timedwait(&m->poll_cond, &m->poll_lock, &ts);
        if (m->stopping) {
            break;
        }
        pthread_mutex_unlock(&m->poll_lock);
        bms_manager_poll(m);
        pthread_mutex_lock(&m->poll_lock);
    }
    pthread_mutex_unlock(&m->poll_lock);
    return NULL;
}


/* ---- open and close ----------------------------------------------------- */

enum bms_status bms_manager_open(const struct bms_manager_config *c,
                                 struct bms_manager **out,
                                 struct bms_diag *diag)
{
    struct bms_manager *m;
    struct folder_list f;
    enum bms_status rc;

    if (c->dir == NULL || c->poll_s < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, c->dir == NULL
                            ? "dir: missing" : "poll_s: negative");
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->dir = strdup(c->dir)) == NULL) {
        free(m);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    m->n_cores = c->n_cores;
    m->store = c->store;
    m->poll_s = c->poll_s;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->load_lock, NULL);
    pthread_mutex_init(&m->poll_lock, NULL);
    pthread_cond_init(&m->poll_cond, NULL);
    rc = folders_scan(m, &f, diag);
    if (rc != BMS_OK) {
        bms_manager_close(m);
        return rc;
    }
    folders_fini(&f);

    /* The first scan loads every model folder. */
    bms_manager_poll(m);
    if (m->poll_s > 0) {
        if (pthread_create(&m->poller, NULL, poll_main, m) != 0) {
            bms_manager_close(m);
            return bms_diag_set(diag, BMS_ERR_IO, "cannot start the poll "
                                "thread");
        }
        m->has_poller = 1;
    }
    *out = m;
    return BMS_OK;
}


void bms_manager_close(struct bms_manager *m)
{
    if (m == NULL) {
        return;
    }
    if (m->has_poller) {
        pthread_mutex_lock(&m->poll_lock);
        m->stopping = 1;
        pthread_cond_signal(&m->poll_cond);
        pthread_mutex_unlock(&m->poll_lock);
        pthread_join(m->poller, NULL);
    }
    for (int i = 0; i < m->n_models; i++) {
        slot_put(m, m->models[i].slot);
    }
    free(m->models);
    pthread_cond_destroy(&m->poll_cond);
    pthread_mutex_destroy(&m->poll_lock);
    pthread_mutex_destroy(&m->load_lock);
    pthread_mutex_destroy(&m->lock);
    free(m->dir);
    free(m);
}
