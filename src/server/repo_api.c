/*
 * The repository API: the index of every model folder and version with
 * its state, and loading and unloading models at run time through the
 * model manager (bms/manager.h), in the shape Triton's repository
 * extension gives them:
 *
 *     GET|POST /v2/repository/index
 *         [{"name": "m", "version": "1", "state": "READY", "reason": ""}]
 *     POST /v2/repository/models/{name}[/versions/{v}]/load
 *         optional body {"parameters": {"config": "<config.json text>"}}
 *     POST /v2/repository/models/{name}[/versions/{v}]/unload
 *
 * Load and unload answer 200 {} on success, 404 for an unknown model
 * folder or version, 400 with the load error; each is audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "bms/manager.h"
#include "server/api.h"
#include "server/v2_json.h"

/* The index being written. */
struct index_list {
    struct bms__json j;
    int n;
};


/* One index row as a JSON object, after a comma but for the first. */
static int index_row(void *ud, const struct bms_manager_entry *e)
{
    struct index_list *list = ud;
    struct bms__json *j = &list->j;
    char version[32] = "";

    if (e->version > 0) {
        snprintf(version, sizeof(version), "%lld", (long long)e->version);
    }
    bms__json_raw(j, list->n++ > 0 ? ", {\"name\": " : "{\"name\": ");
    bms__json_cstr(j, e->name);
    bms__json_raw(j, ", \"version\": ");
    bms__json_cstr(j, version);
    bms__json_raw(j, ", \"state\": ");
    bms__json_cstr(j, e->state);
    bms__json_raw(j, ", \"reason\": ");
    bms__json_cstr(j, e->reason);
    bms__json_raw(j, "}");
    return j->rc != BMS_OK;
}


/* The rows of a fixed repository (no manager): its entries. */
static void index_fixed(const struct bms_repo *repo,
                        struct index_list *list)
{
    for (int i = 0; i < bms_repo_n_entries(repo); i++) {
        const struct bms_repo_entry *re = bms_repo_entry(repo, i);
        struct bms_manager_entry e = {
            re->name, re->version,
            re->state == BMS_ENTRY_READY ? "READY" : "UNAVAILABLE",
            re->reason
        };

        if (index_row(list, &e) != 0) {
            return;
        }
    }
}


void bms__handle_repo_index(const struct bms__context *ctx,
                            struct bms__reply *reply)
{
    struct index_list list = { { &reply->body, BMS_OK }, 0 };
    struct bms_diag diag;
    enum bms_status rc = BMS_OK;

    diag.msg[0] = '\0';
    bms__json_raw(&list.j, "[");
    if (ctx->manager != NULL) {
        rc = bms_manager_index(ctx->manager, index_row, &list, &diag);
    } else {
        index_fixed(ctx->repo, &list);
    }
    if (rc != BMS_OK) {
        bms__reply_error(reply, bms__http_status(rc), diag.msg);
        return;
    }
    bms__json_raw(&list.j, "]");
    if (list.j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = 200;
}


/*
 * The replacement config.json of a load body, {"parameters": {"config":
 * "<text>"}}, into *config (NULL when the body gives none; the caller
 * frees it).  An empty body gives none.  Returns non-zero after
 * answering 400.
 */
static int load_config(const char *body, size_t body_len, char **config,
                       struct bms__reply *reply)
{
    const char *path[] = { "parameters", "config", NULL };
    char err[128] = "";
    char *text;
    yajl_val root;
    yajl_val v;

    *config = NULL;
    if (body_len == 0) {
        return 0;
    }
    text = strndup(body, body_len);
    if (text == NULL) {
        bms__reply_error(reply, 500, "out of memory");
        return -1;
    }
    root = yajl_tree_parse(text, err, sizeof(err));
    free(text);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        bms__reply_error(reply, 400, "body: expected a JSON object such as "
                         "{\"parameters\": {\"config\": \"...\"}}");
        return -1;
    }
    v = yajl_tree_get(root, path, yajl_t_any);
    if (v != NULL && !YAJL_IS_STRING(v)) {
        yajl_tree_free(root);
        bms__reply_error(reply, 400, "parameters.config: expected the "
                         "text of a config.json as a string");
        return -1;
    }
    text = v != NULL ? YAJL_GET_STRING(v) : NULL;
    if (text != NULL && (*config = strdup(text)) == NULL) {
        yajl_tree_free(root);
        bms__reply_error(reply, 500, "out of memory");
        return -1;
    }
    yajl_tree_free(root);
    return 0;
}


/* The audit detail of a load or unload: {"version": v, "status": s}. */
static void audit_change(const struct bms__context *ctx,
                         const struct bms__route *route, int load,
                         int with_config, int http_status)
{
    char detail[128];

    snprintf(detail, sizeof(detail), "{\"version\": %lld, \"config\": %s, "
             "\"status\": %d}", (long long)route->version,
             with_config ? "true" : "false", http_status);
    bms__audit(ctx, load ? "model.load" : "model.unload", route->model,
               detail);
}


void bms__handle_repo_load(const struct bms__context *ctx,
                           const struct bms__route *route, int load,
                           const char *body, size_t body_len,
                           struct bms__reply *reply)
{
    struct bms_diag diag;
    char *config = NULL;
    enum bms_status rc;

    if (ctx->manager == NULL) {
        bms__reply_error(reply, 503, "model control is off: the repository "
                         "is fixed");
        return;
    }
    if (load && load_config(body, body_len, &config, reply) != 0) {
        return;
    }
    diag.msg[0] = '\0';
    rc = load ? bms_manager_load(ctx->manager, route->model, route->version,
                                 config, &diag)
              : bms_manager_unload(ctx->manager, route->model,
                                   route->version, &diag);
    if (rc == BMS_OK) {
        reply->http_status = 200;
        if (bms_buf_puts(&reply->body, "{}") != BMS_OK) {
            bms__reply_error(reply, 500, "out of memory");
        }
    } else if (rc == BMS_ERR_INVALID || rc == BMS_ERR_NOT_FOUND) {
        bms__reply_error(reply, rc == BMS_ERR_INVALID ? 400 : 404,
                         diag.msg[0] != '\0' ? diag.msg : "load failed");
    } else {
        bms__reply_error(reply, bms__http_status(rc),
                         diag.msg[0] != '\0' ? diag.msg : "load failed");
    }
    audit_change(ctx, route, load, config != NULL, reply->http_status);
    free(config);
}
