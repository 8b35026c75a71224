/*
 * The gateway's and control plane's endpoint handlers, each in its own
 * file beside handlers.c, which dispatches to them.  Every one has the
 * shape of bms__handle_with: a parsed route whose method is already
 * known to be allowed, the body, and a reply to fill.  The caller's role
 * has been checked before (server/auth.h); ctx->who says who calls.
 */
#ifndef BMS_SERVER_API_H
#define BMS_SERVER_API_H

#include "server/route.h"

/* GET, POST /api/keys and GET, PUT, DELETE /api/keys/{id} (keys_api.c). */
void bms__handle_keys(const struct bms__context *ctx,
                      const struct bms__route *route, const char *method,
                      const char *body, size_t body_len,
                      struct bms__reply *reply);

/* GET /openapi.json and GET /docs (docs.c). */
void bms__handle_openapi(const struct bms__context *ctx,
                         struct bms__reply *reply);
void bms__handle_docs(const struct bms__context *ctx,
                      struct bms__reply *reply);

/* GET /api/requests, GET /api/audit, GET and PUT /api/models/{name}/
 * config (admin_api.c). */
void bms__handle_requests(const struct bms__context *ctx,
                          struct bms__reply *reply);
void bms__handle_audit(const struct bms__context *ctx,
                       struct bms__reply *reply);
void bms__handle_model_config(const struct bms__context *ctx,
                              const struct bms__route *route,
                              const char *method, const char *body,
                              size_t body_len, struct bms__reply *reply);

/*
 * At start: reload every model that has a row in the store's
 * model_settings with those settings laid over its config.json, as a
 * PUT of its config would.  Each model is logged; one that fails keeps
 * serving as config.json has it.  Also installs the manager's config
 * hook, so that later loads without a manifest of their own (poll mode,
 * the load API) keep the stored settings.  One manager and store per
 * process.  Accepts a NULL manager or store (does nothing).
 * (admin_api.c)
 */
void bms__config_restore(struct bms_manager *m, struct bms_store *store);

/* GET, POST /v2/repository/index and POST .../load, .../unload
 * (repo_api.c). */
void bms__handle_repo_index(const struct bms__context *ctx,
                            struct bms__reply *reply);
void bms__handle_repo_load(const struct bms__context *ctx,
                           const struct bms__route *route, int load,
                           const char *body, size_t body_len,
                           struct bms__reply *reply);

/* GET (download) and PUT (upload) /v2/repository/models/{name}/package
 * (package_api.c). */
void bms__handle_package(const struct bms__context *ctx,
                         const struct bms__route *route, const char *method,
                         const char *body, size_t body_len,
                         struct bms__reply *reply);

#endif
