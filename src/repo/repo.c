/*
 * The model repository: finds the models in a folder, loads every version,
 * checks each against its manifest and keeps one entry per version, ready
 * or failed with its reason.  A served version keeps a free list of
 * sessions so that workers reuse the activation memory of earlier runs.
 *
 * Invariant: once bms_repo_open returns, the entries, their strings and
 * their served versions never move or change until bms_repo_close; only a
 * served version's free list changes, under its mutex.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bms/repo.h"

#define MODEL_NAME_MAX 127
#define CONFIG_SIZE_MAX (16 << 20)   /* bytes of config.json */
#define VERSION_DIGITS_MAX 18        /* keeps every version inside int64 */

struct bms_served {
    char *name;
    int64_t version;
    char *path;                      /* the model.onnx it came from */
    struct bms_model *model;
    struct bms_manifest *manifest;
    pthread_mutex_t lock;            /* guards the three fields below */
    struct bms_session **free_list;  /* room for every session made */
    int n_free;
    int n_sessions;                  /* made and not yet destroyed */
    uint64_t serial;                 /* unique to this load */
};

static atomic_uint_fast64_t served_serials;

/* An entry with the strings it owns. */
struct repo_item {
    struct bms_repo_entry entry;
    char *name;
    char *reason;
};

struct bms_repo {
    struct repo_item *items;
    int n_items;
    int cap_items;
};

/* What the model folder's config.json gave: its text, or why it is
 * unusable (then every version of the model fails with that reason). */
struct model_config {
    char *text;                      /* NULL when there is no config.json */
    size_t len;
    char reason[BMS_DIAG_SIZE];      /* "" when usable */
};


static char *copy_string(const char *s)
{
    size_t size = strlen(s) + 1;
    char *p = malloc(size);

    if (p != NULL) {
        memcpy(p, s, size);
    }
    return p;
}


static int join_path(char *buf, size_t size, const char *a, const char *b)
{
    int n = snprintf(buf, size, "%s/%s", a, b);

    return n >= 0 && (size_t)n < size ? 0 : -1;
}


static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}


static int is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}


/* A log field value in quotes may not hold quotes or line breaks. */
static void log_safe(const char *s, char *buf, size_t size)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        buf[i] = c == '"' ? '\'' : (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[i] = '\0';
}


/* [A-Za-z0-9_.-]{1,127}, not starting with '.'. */
int bms_model_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > MODEL_NAME_MAX || name[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                 || (c >= '0' && c <= '9') || c == '_' || c == '.'
                 || c == '-';

        if (!ok) {
            return 0;
        }
    }
    return 1;
}


static int valid_model_name(const char *name)
{
    return bms_model_name_valid(name, strlen(name));
}


/* A version folder's name: a positive decimal integer without a sign or
 * leading zeros.  Returns the version, or 0 when name is not one. */
static int64_t parse_version(const char *name)
{
    size_t len = strlen(name);
    int64_t v = 0;

    if (len == 0 || len > VERSION_DIGITS_MAX || name[0] == '0') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
        v = v * 10 + (name[i] - '0');
    }
    return v;
}


/* ---- served versions ---------------------------------------------------- */

static void served_destroy(struct bms_served *served)
{
    if (served == NULL) {
        return;
    }
    for (int i = 0; i < served->n_free; i++) {
        bms_session_destroy(served->free_list[i]);
    }
    free(served->free_list);
    pthread_mutex_destroy(&served->lock);
    bms_manifest_destroy(served->manifest);
    bms_model_destroy(served->model);
    free(served->path);
    free(served->name);
    free(served);
}


/* Takes ownership of model and manifest, also on failure. */
static enum bms_status served_create(const char *name, int64_t version,
                                     struct bms_model *model,
                                     struct bms_manifest *manifest,
                                     struct bms_served **out)
{
    struct bms_served *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->name = copy_string(name)) == NULL) {
        free(s);
        bms_manifest_destroy(manifest);
        bms_model_destroy(model);
        return BMS_ERR_NOMEM;
    }
    s->version = version;
    s->model = model;
    s->manifest = manifest;
    s->serial = atomic_fetch_add(&served_serials, 1) + 1;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return BMS_OK;
}


uint64_t bms_served_serial(const struct bms_served *served)
{
    return served->serial;
}


const char *bms_served_name(const struct bms_served *served)
{
    return served->name;
}


int64_t bms_served_version(const struct bms_served *served)
{
    return served->version;
}


const struct bms_manifest *bms_served_manifest(const struct bms_served *s)
{
    return s->manifest;
}


const char *bms_served_path(const struct bms_served *served)
{
    return served->path;
}


const struct bms_model *bms_served_model(const struct bms_served *served)
{
    return served->model;
}


enum bms_status bms_served_acquire(struct bms_served *served,
                                   struct bms_session **out,
                                   struct bms_diag *diag)
{
    struct bms_session **grown;
    enum bms_status rc;

    pthread_mutex_lock(&served->lock);
    if (served->n_free > 0) {
        *out = served->free_list[--served->n_free];
        pthread_mutex_unlock(&served->lock);
        return BMS_OK;
    }

    /* Make room in the free list first, so that release never allocates. */
    grown = realloc(served->free_list, (size_t)(served->n_sessions + 1)
                                       * sizeof(*grown));
    if (grown == NULL) {
        pthread_mutex_unlock(&served->lock);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "model %s: out of memory "
                            "for a session", served->name);
    }
    served->free_list = grown;
    served->n_sessions++;
    pthread_mutex_unlock(&served->lock);

    rc = bms_session_create(served->model, out, diag);
    if (rc != BMS_OK) {
        pthread_mutex_lock(&served->lock);
        served->n_sessions--;
        pthread_mutex_unlock(&served->lock);
    }
    return rc;
}


void bms_served_release(struct bms_served *served,
                        struct bms_session *session)
{
    if (session == NULL) {
        return;
    }
    pthread_mutex_lock(&served->lock);
    served->free_list[served->n_free++] = session;
    pthread_mutex_unlock(&served->lock);
}


/* ---- entries ------------------------------------------------------------ */

/* Adds an entry; takes ownership of served, also on failure. */
static enum bms_status repo_add(struct bms_repo *repo, const char *name,
                                int64_t version, struct bms_served *served,
                                const char *reason)
{
    struct repo_item *item;

    if (repo->n_items == repo->cap_items) {
        int cap = repo->cap_items ? repo->cap_items * 2 : 16;
        struct repo_item *grown = realloc(repo->items,
                                          (size_t)cap * sizeof(*grown));

        if (grown == NULL) {
            served_destroy(served);
            return BMS_ERR_NOMEM;
        }
        repo->items = grown;
        repo->cap_items = cap;
    }
    item = &repo->items[repo->n_items];
    item->name = copy_string(name);
    item->reason = copy_string(reason);
    if (item->name == NULL || item->reason == NULL) {
        free(item->name);
        free(item->reason);
        served_destroy(served);
        return BMS_ERR_NOMEM;
    }
    item->entry.name = item->name;
    item->entry.version = version;
    item->entry.state = served != NULL ? BMS_ENTRY_READY : BMS_ENTRY_FAILED;
    item->entry.reason = item->reason;
    item->entry.served = served;
    repo->n_items++;
    return BMS_OK;
}


/* Records the outcome of one version: ready with served, or failed with
 * the reason in diag.  Both are logged. */
static enum bms_status repo_add_outcome(struct bms_repo *repo,
                                        const char *name, int64_t version,
                                        struct bms_served *served,
                                        const struct bms_diag *diag)
{
    char safe[BMS_DIAG_SIZE];

    if (served == NULL) {
        log_safe(diag->msg, safe, sizeof(safe));
        bms_log(BMS_LOG_ERROR, "repo", "msg=\"model failed\" model=%s "
                "version=%lld reason=\"%s\"", name, (long long)version, safe);
        return repo_add(repo, name, version, NULL, diag->msg);
    }
    bms_log(BMS_LOG_INFO, "repo", "msg=\"model loaded\" model=%s "
            "version=%lld inputs=%d outputs=%d nodes=%d", name,
            (long long)version, bms_model_n_inputs(served->model),
            bms_model_n_outputs(served->model),
            bms_model_n_nodes(served->model));
    return repo_add(repo, name, version, served, "");
}


static int item_cmp(const void *a, const void *b)
{
    const struct repo_item *x = a;
    const struct repo_item *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0) {
        return c;
    }
    return (x->entry.version > y->entry.version)
           - (x->entry.version < y->entry.version);
}


void bms_repo_close(struct bms_repo *repo)
{
    if (repo == NULL) {
        return;
    }
    for (int i = 0; i < repo->n_items; i++) {
        served_destroy(repo->items[i].entry.served);
        free(repo->items[i].name);
        free(repo->items[i].reason);
    }
    free(repo->items);
    free(repo);
}


int bms_repo_n_entries(const struct bms_repo *repo)
{
    return repo != NULL ? repo->n_items : 0;
}


const struct bms_repo_entry *bms_repo_entry(const struct bms_repo *repo,
                                            int i)
{
    if (repo == NULL || i < 0 || i >= repo->n_items) {
        return NULL;
    }
    return &repo->items[i].entry;
}


struct bms_served *bms_repo_find(struct bms_repo *repo, const char *name,
                                 int64_t version)
{
    struct bms_served *best = NULL;

    if (repo == NULL) {
        return NULL;
    }
    for (int i = 0; i < repo->n_items; i++) {
        const struct bms_repo_entry *e = &repo->items[i].entry;

        if (e->state != BMS_ENTRY_READY || strcmp(e->name, name) != 0) {
            continue;
        }
        if (e->version == version) {
            return e->served;
        }
        if (version == 0) {
            best = e->served;    /* entries are sorted by version */
        }
    }
    return best;
}


int bms_repo_has_model(const struct bms_repo *repo, const char *name)
{
    for (int i = 0; repo != NULL && i < repo->n_items; i++) {
        if (strcmp(repo->items[i].name, name) == 0) {
            return 1;
        }
    }
    return 0;
}


/* ---- loading ------------------------------------------------------------ */

/* Reads config.json of a model folder into cfg; a missing file is no
 * error, an unreadable or malformed one is kept as cfg->reason. */
static enum bms_status config_check(struct model_config *cfg);


static enum bms_status config_read(const char *model_dir,
                                   struct model_config *cfg)
{
    char path[PATH_MAX];
    FILE *f;
    long size;

    memset(cfg, 0, sizeof(*cfg));
    if (join_path(path, sizeof(path), model_dir, "config.json") != 0) {
        snprintf(cfg->reason, sizeof(cfg->reason), "config.json: path too "
                 "long");
        return BMS_OK;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        if (errno != ENOENT) {
            snprintf(cfg->reason, sizeof(cfg->reason), "config.json: %s",
                     strerror(errno));
        }
        return BMS_OK;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(cfg->reason, sizeof(cfg->reason), "config.json: cannot "
                 "read");
        fclose(f);
        return BMS_OK;
    }
    if (size > CONFIG_SIZE_MAX) {
        snprintf(cfg->reason, sizeof(cfg->reason), "config.json: %ld bytes, "
                 "at most %d", size, CONFIG_SIZE_MAX);
        fclose(f);
        return BMS_OK;
    }
    cfg->text = malloc((size_t)size + 1);
    if (cfg->text == NULL) {
        fclose(f);
        return BMS_ERR_NOMEM;
    }
    cfg->len = fread(cfg->text, 1, (size_t)size, f);
    cfg->text[cfg->len] = '\0';
    fclose(f);
    return config_check(cfg);
}


/* A config.json given as text (a load's replacement manifest) into cfg,
 * checked as config_read checks the file. */
static enum bms_status config_from_text(const char *text,
                                        struct model_config *cfg)
{
    size_t len = strlen(text);

    memset(cfg, 0, sizeof(*cfg));
    if (len > CONFIG_SIZE_MAX) {
        snprintf(cfg->reason, sizeof(cfg->reason), "config.json: %zu bytes, "
                 "at most %d", len, CONFIG_SIZE_MAX);
        return BMS_OK;
    }
    cfg->text = malloc(len + 1);
    if (cfg->text == NULL) {
        return BMS_ERR_NOMEM;
    }
    memcpy(cfg->text, text, len + 1);
    cfg->len = len;
    return config_check(cfg);
}


/* Parse cfg's text once, keeping the error as cfg->reason. */
static enum bms_status config_check(struct model_config *cfg)
{
    struct bms_manifest *m = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc;

    /* Parse once here so that a bad manifest fails every version without
     * loading any of them. */
    rc = bms_manifest_parse(cfg->text, cfg->len, &m, &diag);
    if (rc == BMS_ERR_NOMEM) {
        return rc;
    }
    if (rc != BMS_OK) {
        if (strncmp(diag.msg, "config.json: ", 13) == 0) {
            snprintf(cfg->reason, sizeof(cfg->reason), "%s", diag.msg);
        } else {
            snprintf(cfg->reason, sizeof(cfg->reason), "config.json: %s",
                     diag.msg);
        }
    }
    bms_manifest_destroy(m);
    return BMS_OK;
}


static void config_fini(struct model_config *cfg)
{
    free(cfg->text);
    cfg->text = NULL;
}


/* The manifest of a loaded model: config.json when there is one (its
 * name, when empty, becomes the model's), else made from the graph. */
static enum bms_status version_manifest(const struct model_config *cfg,
                                        const struct bms_model *model,
                                        const char *name,
                                        struct bms_manifest **out,
                                        struct bms_diag *diag)
{
    struct bms_manifest *m;
    enum bms_status rc;

    if (cfg->text == NULL) {
        return bms_manifest_from_model(model, name, out, diag);
    }
    rc = bms_manifest_parse(cfg->text, cfg->len, &m, diag);
    if (rc == BMS_OK && m->name[0] == '\0') {
        free(m->name);
        m->name = copy_string(name);
        rc = m->name != NULL ? BMS_OK : BMS_ERR_NOMEM;
    }
    if (rc == BMS_OK) {
        rc = bms_manifest_check(m, model, diag);
    }
    if (rc != BMS_OK) {
        bms_diag_prefix(diag, "config.json");
        bms_manifest_destroy(m);
        return rc;
    }
    *out = m;
    return BMS_OK;
}


/* Loads onnx_path as version `version` of model `name` and checks it
 * against the manifest.  On failure diag holds the reason. */
static enum bms_status version_load(const char *onnx_path, const char *name,
                                    int64_t version,
                                    const struct model_config *cfg,
                                    struct bms_served **out,
                                    struct bms_diag *diag)
{
    struct bms_model *model = NULL;
    struct bms_manifest *manifest = NULL;
    const char *base = strrchr(onnx_path, '/');
    enum bms_status rc;

    base = base != NULL ? base + 1 : onnx_path;
    if (cfg->reason[0] != '\0') {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s", cfg->reason);
    }
    if (!is_file(onnx_path)) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "%s: not found",
                            base);
    }
    rc = bms_model_load_file(onnx_path, &model, diag);
    if (rc != BMS_OK) {
        bms_diag_prefix(diag, "%s", base);
        return rc;
    }
    rc = version_manifest(cfg, model, name, &manifest, diag);
    if (rc != BMS_OK) {
        bms_model_destroy(model);
        return rc;
    }
    rc = served_create(name, version, model, manifest, out);
    if (rc == BMS_OK && ((*out)->path = copy_string(onnx_path)) == NULL) {
        served_destroy(*out);
        rc = BMS_ERR_NOMEM;
    }
    if (rc != BMS_OK) {
        return bms_diag_set(diag, rc, "out of memory");
    }
    return BMS_OK;
}


static int version_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}


/* The version folders of a model folder, ascending, into a new array. */
static enum bms_status list_versions(const char *model_dir, int64_t **out,
                                     int *n_out)
{
    DIR *d = opendir(model_dir);
    int64_t *versions = NULL;
    int n = 0;
    int cap = 0;
    struct dirent *de;

    if (d == NULL) {
        return BMS_ERR_IO;
    }
    while ((de = readdir(d)) != NULL) {
        int64_t v = parse_version(de->d_name);
        char path[PATH_MAX];

        if (v == 0 || join_path(path, sizeof(path), model_dir, de->d_name)
                      != 0 || !is_dir(path)) {
            continue;
        }
        if (n == cap) {
            int64_t *grown;

            cap = cap ? cap * 2 : 8;
            grown = realloc(versions, (size_t)cap * sizeof(*grown));
            if (grown == NULL) {
                free(versions);
                closedir(d);
                return BMS_ERR_NOMEM;
            }
            versions = grown;
        }
        versions[n++] = v;
    }
    closedir(d);
    if (n > 1) {
        qsort(versions, (size_t)n, sizeof(*versions), version_cmp);
    }
    *out = versions;
    *n_out = n;
    return BMS_OK;
}


/* Whether v is one of the n versions in list. */
static int has_version(const int64_t *list, int n, int64_t v)
{
    for (int i = 0; i < n; i++) {
        if (list[i] == v) {
            return 1;
        }
    }
    return 0;
}


/*
 * Keep, in place, the versions (ascending) that are to be loaded: those
 * in only when n_only >= 0, else those the manifest's version policy
 * selects (every one without a manifest or a policy).
 */
static void select_versions(const struct bms_manifest *m,
                            const int64_t *only, int n_only,
                            int64_t *versions, int *n_versions)
{
    int n = 0;

    for (int i = 0; i < *n_versions; i++) {
        if (n_only >= 0 ? has_version(only, n_only, versions[i])
                        : bms_version_policy_selects(m, versions,
                                                     *n_versions, i)) {
            versions[n++] = versions[i];
        }
    }
    *n_versions = n;
}


/* Adds an entry for every version of the model in model_dir that is
 * selected (select_versions); config_json, when not NULL, stands for the
 * folder's config.json.  Fails only when memory runs out. */
static enum bms_status load_model_folder(struct bms_repo *repo,
                                         const char *model_dir,
                                         const char *name,
                                         const char *config_json,
                                         const int64_t *only, int n_only)
{
    struct model_config cfg;
    struct bms_manifest *m = NULL;
    struct bms_diag diag = {""};
    int64_t *versions = NULL;
    int n_versions = 0;
    int n_found;
    enum bms_status rc;

    rc = config_json != NULL ? config_from_text(config_json, &cfg)
                             : config_read(model_dir, &cfg);
    if (rc != BMS_OK) {
        goto out;
    }
    if (cfg.text != NULL && cfg.reason[0] == '\0'
        && bms_manifest_parse(cfg.text, cfg.len, &m, NULL) == BMS_OK
        && m->name[0] != '\0' && strcmp(m->name, name) != 0) {
        snprintf(cfg.reason, sizeof(cfg.reason), "config.json: name '%.128s'"
                 " does not match folder '%s'", m->name, name);
    }
    rc = list_versions(model_dir, &versions, &n_versions);
    if (rc == BMS_OK && m != NULL && cfg.reason[0] == '\0' &&
        bms_manifest_check_versions(m, versions, n_versions, &diag)
        != BMS_OK) {
        /* Routing to a version that is not there refuses the model. */
        snprintf(cfg.reason, sizeof(cfg.reason), "config.json: %s",
                 diag.msg);
        diag.msg[0] = '\0';
    }
    n_found = n_versions;
    if (rc == BMS_OK) {
        select_versions(cfg.reason[0] == '\0' ? m : NULL, only, n_only,
                        versions, &n_versions);
    }
    if (rc == BMS_ERR_IO) {
        bms_diag_set(&diag, rc, "cannot list the model folder: %s",
                     strerror(errno));
        rc = repo_add_outcome(repo, name, 0, NULL, &diag);
        goto out;
    }
    if (rc == BMS_OK && n_found == 0) {
        bms_diag_set(&diag, BMS_ERR_NOT_FOUND, "no version folders "
                     "(expected %s/1/model.onnx)", name);
        rc = repo_add_outcome(repo, name, 0, NULL, &diag);
    } else if (rc == BMS_OK && n_versions == 0) {
        bms_diag_set(&diag, BMS_ERR_NOT_FOUND, "no version folder is "
                     "selected (version_policy)");
        rc = repo_add_outcome(repo, name, 0, NULL, &diag);
    }
    for (int i = 0; i < n_versions && rc == BMS_OK; i++) {
        struct bms_served *served = NULL;
        char path[PATH_MAX];
        char vdir[32];

        snprintf(vdir, sizeof(vdir), "%lld/model.onnx",
                 (long long)versions[i]);
        diag.msg[0] = '\0';
        if (join_path(path, sizeof(path), model_dir, vdir) != 0) {
            bms_diag_set(&diag, BMS_ERR_INVALID, "model.onnx: path too "
                         "long");
        } else if (version_load(path, name, versions[i], &cfg, &served,
                                &diag) == BMS_ERR_NOMEM) {
            rc = BMS_ERR_NOMEM;
            break;
        }
        rc = repo_add_outcome(repo, name, versions[i], served, &diag);
    }

out:
    bms_manifest_destroy(m);
    free(versions);
    config_fini(&cfg);
    return rc;
}


static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}


/* The model folders of dir, sorted; entries with an invalid name are
 * logged and left out. */
static enum bms_status list_model_folders(const char *dir, DIR *d,
                                          char ***out, int *n_out)
{
    char **names = NULL;
    int n = 0;
    int cap = 0;
    struct dirent *de;

    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        char safe[MODEL_NAME_MAX * 2];

        if (de->d_name[0] == '.'
            || join_path(path, sizeof(path), dir, de->d_name) != 0
            || !is_dir(path)) {
            continue;
        }
        if (!valid_model_name(de->d_name)) {
            log_safe(de->d_name, safe, sizeof(safe));
            bms_log(BMS_LOG_WARN, "repo", "msg=\"model folder skipped\" "
                    "folder=\"%s\" reason=\"name must match "
                    "[A-Za-z0-9_.-]{1,127}\"", safe);
            continue;
        }
        if (n == cap) {
            char **grown;

            cap = cap ? cap * 2 : 16;
            grown = realloc(names, (size_t)cap * sizeof(*grown));
            if (grown == NULL) {
                free_names(names, n);
                return BMS_ERR_NOMEM;
            }
            names = grown;
        }
        names[n] = copy_string(de->d_name);
        if (names[n] == NULL) {
            free_names(names, n);
            return BMS_ERR_NOMEM;
        }
        n++;
    }
    if (n > 1) {
        qsort(names, (size_t)n, sizeof(*names), name_cmp);
    }
    *out = names;
    *n_out = n;
    return BMS_OK;
}


static void repo_sort(struct bms_repo *repo)
{
    if (repo->n_items > 1) {
        qsort(repo->items, (size_t)repo->n_items, sizeof(*repo->items),
              item_cmp);
    }
}


enum bms_status bms_repo_open(const char *dir, struct bms_repo **out,
                              struct bms_diag *diag)
{
    struct bms_repo *repo = NULL;
    char **names = NULL;
    int n_names = 0;
    DIR *d;
    enum bms_status rc;

    d = opendir(dir);
    if (d == NULL) {
        rc = errno == ENOENT || errno == ENOTDIR ? BMS_ERR_NOT_FOUND
                                                 : BMS_ERR_IO;
        return bms_diag_set(diag, rc, "repository %s: %s", dir,
                            strerror(errno));
    }
    rc = list_model_folders(dir, d, &names, &n_names);
    closedir(d);
    if (rc != BMS_OK) {
        return bms_diag_set(diag, rc, "repository %s: out of memory", dir);
    }
    repo = calloc(1, sizeof(*repo));
    if (repo == NULL) {
        rc = BMS_ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < n_names && rc == BMS_OK; i++) {
        char path[PATH_MAX];

        if (join_path(path, sizeof(path), dir, names[i]) == 0) {
            rc = load_model_folder(repo, path, names[i], NULL, NULL, -1);
        }
    }

out:
    free_names(names, n_names);
    if (rc != BMS_OK) {
        bms_repo_close(repo);
        return bms_diag_set(diag, rc, "repository %s: out of memory", dir);
    }
    repo_sort(repo);
    *out = repo;
    return BMS_OK;
}


/* ---- one model for offline use ------------------------------------------ */

/* The last component of path, without a trailing '/' or the suffix. */
static void path_stem(const char *path, const char *suffix, char *buf,
                      size_t size)
{
    size_t len = strlen(path);
    size_t start;
    size_t suffix_len = strlen(suffix);

    while (len > 1 && path[len - 1] == '/') {
        len--;
    }
    start = len;
    while (start > 0 && path[start - 1] != '/') {
        start--;
    }
    if (len - start > suffix_len
        && memcmp(path + len - suffix_len, suffix, suffix_len) == 0) {
        len -= suffix_len;
    }
    snprintf(buf, size, "%.*s", (int)(len - start), path + start);
}


/* The model name of a folder opened alone: the manifest's name when it
 * gives one, else the folder's own name. */
static void folder_model_name(const char *dir, const struct model_config *c,
                              char *buf, size_t size)
{
    struct bms_manifest *m = NULL;
    char real[PATH_MAX];

    if (realpath(dir, real) != NULL) {
        path_stem(real, "", buf, size);
    } else {
        path_stem(dir, "", buf, size);
    }
    if (c->text != NULL && c->reason[0] == '\0'
        && bms_manifest_parse(c->text, c->len, &m, NULL) == BMS_OK
        && m->name[0] != '\0') {
        snprintf(buf, size, "%s", m->name);
    }
    bms_manifest_destroy(m);
}


/* Loads the single version of a model folder opened alone: model.onnx
 * inside it, or the highest version folder. */
/*
 * Load the highest version of dir that loads, as the server would answer
 * with it.  When none loads, the error is the highest version's, with its
 * folder named.
 */
static enum bms_status load_highest(const char *dir, const char *name,
                                    const int64_t *versions, int n_versions,
                                    const struct model_config *cfg,
                                    int64_t *version, struct bms_served **out,
                                    struct bms_diag *diag)
{
    struct bms_diag first = {""};
    enum bms_status first_rc = BMS_ERR_NOT_FOUND;
    char path[PATH_MAX];
    char vdir[32];

    for (int i = n_versions - 1; i >= 0; i--) {
        struct bms_diag d;
        enum bms_status rc;

        snprintf(vdir, sizeof(vdir), "%lld/model.onnx",
                 (long long)versions[i]);
        if (join_path(path, sizeof(path), dir, vdir) != 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "%s: path too long",
                                dir);
        }
        rc = version_load(path, name, versions[i], cfg, out, &d);
        if (rc == BMS_OK) {
            *version = versions[i];
            return BMS_OK;
        }
        if (i == n_versions - 1) {
            first_rc = rc;
            bms_diag_set(&first, rc, "%s/%lld: %s", dir,
                         (long long)versions[i], d.msg);
        }
    }
    if (diag != NULL) {
        *diag = first;
    }
    return first_rc;
}


static enum bms_status open_folder(const char *dir, char *name, size_t size,
                                   int64_t *version, struct bms_served **out,
                                   struct bms_diag *diag)
{
    struct model_config cfg;
    int64_t *versions = NULL;
    int n_versions = 0;
    char path[PATH_MAX];
    enum bms_status rc;

    rc = config_read(dir, &cfg);
    if (rc != BMS_OK) {
        return bms_diag_set(diag, rc, "%s: out of memory", dir);
    }
    folder_model_name(dir, &cfg, name, size);
    *version = 1;
    if (join_path(path, sizeof(path), dir, "model.onnx") != 0) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID, "%s: path too long", dir);
    } else if (is_file(path)) {
        rc = version_load(path, name, *version, &cfg, out, diag);
    } else {
        rc = list_versions(dir, &versions, &n_versions);
        if (rc == BMS_OK && n_versions == 0) {
            rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "%s: no model.onnx "
                              "and no version folders", dir);
        } else if (rc == BMS_OK) {
            rc = load_highest(dir, name, versions, n_versions, &cfg,
                              version, out, diag);
        } else {
            rc = bms_diag_set(diag, rc, "%s: cannot list the folder", dir);
        }
    }
    free(versions);
    config_fini(&cfg);
    return rc;
}


static enum bms_status open_file(const char *path, char *name, size_t size,
                                 struct bms_served **out,
                                 struct bms_diag *diag)
{
    struct model_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    path_stem(path, ".onnx", name, size);
    return version_load(path, name, 1, &cfg, out, diag);
}


enum bms_status bms_repo_open_model(const char *path, struct bms_repo **out,
                                    struct bms_diag *diag)
{
    struct bms_served *served = NULL;
    struct bms_repo *repo;
    char name[MODEL_NAME_MAX * 2];
    int64_t version = 1;
    size_t len = strlen(path);
    enum bms_status rc;

    if (is_dir(path)) {
        rc = open_folder(path, name, sizeof(name), &version, &served, diag);
    } else if (is_file(path) && len > 5
               && strcmp(path + len - 5, ".onnx") == 0) {
        rc = open_file(path, name, sizeof(name), &served, diag);
    } else if (is_file(path)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected an .onnx "
                            "file or a model folder", path);
    } else {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "%s: no such file or "
                            "folder", path);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    repo = calloc(1, sizeof(*repo));
    if (repo == NULL) {
        served_destroy(served);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = repo_add(repo, name, version, served, "");
    if (rc != BMS_OK) {
        bms_repo_close(repo);
        return bms_diag_set(diag, rc, "out of memory");
    }
    *out = repo;
    return BMS_OK;
}


/* ---- one model folder of a repository ----------------------------------- */

enum bms_status bms_repo_open_versions(const char *dir, const char *name,
                                       const char *config_json,
                                       const int64_t *versions,
                                       int n_versions,
                                       struct bms_repo **out,
                                       struct bms_diag *diag)
{
    struct bms_repo *repo;
    char path[PATH_MAX];
    enum bms_status rc;

    if (!valid_model_name(name)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "model name: expected "
                            "[A-Za-z0-9_.-]{1,127}");
    }
    if (join_path(path, sizeof(path), dir, name) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: path too long",
                            name);
    }
    if (!is_dir(path)) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s': no such "
                            "folder in the repository", name);
    }
    repo = calloc(1, sizeof(*repo));
    if (repo == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = load_model_folder(repo, path, name, config_json, versions,
                           versions != NULL ? n_versions : -1);
    if (rc != BMS_OK) {
        bms_repo_close(repo);
        return bms_diag_set(diag, rc, "model '%s': out of memory", name);
    }
    repo_sort(repo);
    *out = repo;
    return BMS_OK;
}


enum bms_status bms_repo_open_one(const char *dir, const char *name,
                                  const char *config_json, int64_t version,
                                  struct bms_repo **out,
                                  struct bms_diag *diag)
{
    char path[PATH_MAX];
    int n;

    if (version <= 0) {
        return bms_repo_open_versions(dir, name, config_json, NULL, 0, out,
                                      diag);
    }
    n = snprintf(path, sizeof(path), "%s/%s/%lld", dir, name,
                 (long long)version);
    if (n > 0 && (size_t)n < sizeof(path) && valid_model_name(name) &&
        !is_dir(path)) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "model '%s' has no "
                            "version folder %lld", name, (long long)version);
    }
    return bms_repo_open_versions(dir, name, config_json, &version, 1, out,
                                  diag);
}
