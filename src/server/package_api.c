/*
 * Model packages over HTTP:
 *
 *     PUT /v2/repository/models/{name}/package   upload (admin): the body
 *         is a tar, tar.gz or zip of config.json and <version>/model.onnx,
 *         found by content whatever the Content-Type; it replaces the
 *         model folder once every version loads, then the model is
 *         (re)loaded.  201 {"name", "versions"}; 400 naming the problem;
 *         409 while another upload of the model runs, or when the
 *         repository is fixed.
 *     GET /v2/repository/models/{name}/package   download: a tar.gz of
 *         the model folder.
 *
 * Uploads of one model are serialised here (a small table of the names
 * being uploaded), so two never write the same folder at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bms/manager.h"
#include "server/api.h"
#include "server/package.h"
#include "server/v2_json.h"

#define UPLOADS_MAX 32               /* uploads running at once */
#define DEFAULT_BODY_MAX ((size_t)64 << 20)  /* bytes, the server's default */
#define UNPACKED_PER_BODY 4          /* a package unpacks to at most this
                                      * many times the body limit */

static pthread_mutex_t uploads_lock = PTHREAD_MUTEX_INITIALIZER;
static char uploads[UPLOADS_MAX][BMS__MODEL_NAME_MAX + 1];


/* Claim name for one upload: 0, 409 when an upload of it runs, 503 when
 * UPLOADS_MAX uploads run. */
static int upload_claim(const char *name)
{
    int free_slot = -1;

    pthread_mutex_lock(&uploads_lock);
    for (int i = 0; i < UPLOADS_MAX; i++) {
        if (strcmp(uploads[i], name) == 0) {
            pthread_mutex_unlock(&uploads_lock);
            return 409;
        }
        if (uploads[i][0] == '\0' && free_slot < 0) {
            free_slot = i;
        }
    }
    if (free_slot >= 0) {
        snprintf(uploads[free_slot], sizeof(uploads[0]), "%s", name);
    }
    pthread_mutex_unlock(&uploads_lock);
    return free_slot >= 0 ? 0 : 503;
}


static void upload_release(const char *name)
{
    pthread_mutex_lock(&uploads_lock);
    for (int i = 0; i < UPLOADS_MAX; i++) {
        if (strcmp(uploads[i], name) == 0) {
            uploads[i][0] = '\0';
            break;
        }
    }
    pthread_mutex_unlock(&uploads_lock);
}


/* {"versions": [...], "bytes": n, "status": s} for the audit trail. */
static void audit_upload(const struct bms__context *ctx, const char *name,
                         const struct bms__package_info *info,
                         size_t body_len, int http_status)
{
    char detail[512];
    size_t n;

    n = (size_t)snprintf(detail, sizeof(detail), "{\"versions\": [");
    for (int i = 0; info != NULL && i < info->n_versions &&
                    n + 24 < sizeof(detail); i++) {
        n += (size_t)snprintf(detail + n, sizeof(detail) - n, "%s%lld",
                              i > 0 ? ", " : "",
                              (long long)info->versions[i]);
    }
    snprintf(detail + n, sizeof(detail) - n, "], \"bytes\": %zu, "
             "\"status\": %d}", body_len, http_status);
    bms__audit(ctx, "model.upload", name, detail);
}


/* 201 {"name": ..., "versions": [...]}. */
static void reply_created(const struct bms__package_info *info,
                          struct bms__reply *reply)
{
    struct bms__json j = { &reply->body, BMS_OK };

    bms__json_raw(&j, "{\"name\": ");
    bms__json_cstr(&j, info->name);
    bms__json_raw(&j, ", \"versions\": [");
    for (int i = 0; i < info->n_versions; i++) {
        if (i > 0) {
            bms__json_raw(&j, ", ");
        }
        bms__json_int(&j, info->versions[i]);
    }
    bms__json_raw(&j, "]}");
    if (j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = 201;
}


/* The HTTP status of a failed unpack or load. */
static int failure_status(enum bms_status rc)
{
    switch (rc) {
    case BMS_ERR_INVALID:
    case BMS_ERR_LIMIT:
        return 400;
    case BMS_ERR_NOT_FOUND:
        return 404;
    default:
        return 500;
    }
}


/* Unpack, install and load; answers in reply, returns the version
 * list for the audit through *info. */
static void install(const struct bms__context *ctx, const char *name,
                    const char *body, size_t body_len,
                    struct bms__package_info *info, struct bms__reply *reply)
{
    struct bms__package_limits limits;
    struct bms_diag diag = {""};
    size_t body_max = ctx->max_body_size > 0 ? ctx->max_body_size
                                             : DEFAULT_BODY_MAX;
    enum bms_status rc;

    memset(&limits, 0, sizeof(limits));
    limits.max_total_size = (int64_t)body_max * UNPACKED_PER_BODY;
    rc = bms__package_unpack(body, body_len, name,
                             bms_manager_dir(ctx->manager), &limits, info,
                             &diag);
    if (rc != BMS_OK) {
        bms_diag_prefix(&diag, "package");
        bms__reply_error(reply, failure_status(rc), diag.msg);
        return;
    }
    bms_log(BMS_LOG_INFO, "package", "msg=\"package installed\" model=%s "
            "versions=%d bytes=%zu", name, info->n_versions, body_len);
    rc = bms_manager_load(ctx->manager, name, 0, NULL, &diag);
    if (rc != BMS_OK) {
        bms_diag_prefix(&diag, "package installed, but the load failed");
        bms__reply_error(reply, failure_status(rc), diag.msg);
        return;
    }
    reply_created(info, reply);
}


static void upload(const struct bms__context *ctx, const char *name,
                   const char *body, size_t body_len,
                   struct bms__reply *reply)
{
    struct bms__package_info info;
    int busy;

    memset(&info, 0, sizeof(info));
    if (ctx->manager == NULL) {
        bms__reply_error(reply, 409, "the repository is fixed: packages "
                         "cannot be uploaded");
        return;
    }
    busy = upload_claim(name);
    if (busy != 0) {
        bms__reply_error(reply, busy, busy == 409
                         ? "another upload of this model is running"
                         : "too many uploads at once");
        if (busy == 503) {
            reply->retry_after_s = 1;
        }
        return;
    }
    install(ctx, name, body, body_len, &info, reply);
    upload_release(name);
    audit_upload(ctx, name, &info, body_len, reply->http_status);
}


/*
 * The folder of a model in a fixed repository, from the path its served
 * version was loaded from (DIR/<name>/<version>/model.onnx).  Returns 0,
 * or -1 when it cannot be told.
 */
static int fixed_model_dir(struct bms_repo *repo, const char *name,
                           char *out, size_t size)
{
    struct bms_served *served = repo != NULL ? bms_repo_find(repo, name, 0)
                                             : NULL;
    const char *path = served != NULL ? bms_served_path(served) : NULL;
    size_t len;
    size_t name_len = strlen(name);
    int cuts = 0;

    if (path == NULL || (len = strlen(path)) >= size) {
        return -1;
    }
    memcpy(out, path, len + 1);
    /* Cut "/model.onnx" and "/<version>". */
    while (cuts < 2 && len > 0) {
        if (out[--len] == '/') {
            out[len] = '\0';
            cuts++;
        }
    }
    if (cuts < 2 || len < name_len ||
        strcmp(out + len - name_len, name) != 0 ||
        (len > name_len && out[len - name_len - 1] != '/')) {
        return -1;
    }
    return 0;
}


static void download(const struct bms__context *ctx, const char *name,
                     struct bms__reply *reply)
{
    char dir[4096];
    char disposition[BMS__HEADER_VALUE_MAX];
    struct bms_diag diag = {""};
    enum bms_status rc;
    int n;

    if (ctx->manager != NULL) {
        n = snprintf(dir, sizeof(dir), "%s/%s",
                     bms_manager_dir(ctx->manager), name);
        if (n < 0 || (size_t)n >= sizeof(dir)) {
            bms__reply_error(reply, 500, "repository path too long");
            return;
        }
    } else if (fixed_model_dir(ctx->repo, name, dir, sizeof(dir)) != 0) {
        if (ctx->repo == NULL || !bms_repo_has_model(ctx->repo, name)) {
            bms__reply_error(reply, 404, "no such model");
        } else {
            bms__reply_error(reply, 501, "the folder of this model is not "
                             "known: no version of it is ready");
        }
        return;
    }
    /* TODO: stream the archive to the client instead of building it in
     * memory; now a download holds the whole model's bytes once more. */
    rc = bms__package_pack(dir, &reply->body, &diag);
    if (rc != BMS_OK) {
        bms_diag_prefix(&diag, "model '%s'", name);
        bms__reply_error(reply, failure_status(rc), diag.msg);
        return;
    }
    reply->http_status = 200;
    reply->content_type = "application/gzip";
    snprintf(disposition, sizeof(disposition), "attachment; "
             "filename=\"%s.tar.gz\"", name);
    bms__reply_header(reply, "Content-Disposition", disposition);
}


void bms__handle_package(const struct bms__context *ctx,
                         const struct bms__route *route, const char *method,
                         const char *body, size_t body_len,
                         struct bms__reply *reply)
{
    if (strcmp(method, "PUT") == 0) {
        upload(ctx, route->model, body, body_len, reply);
    } else {
        download(ctx, route->model, reply);
    }
}
