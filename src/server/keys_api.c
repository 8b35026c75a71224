/*
 * API keys over HTTP (admin only; server/auth.h checked the caller):
 *
 *     POST   /api/keys        {"name", "role", "models", "requests_per_s",
 *                              "burst"} -> 201, the key and its token
 *     GET    /api/keys        {"keys": [...]}, revoked ones included
 *     GET    /api/keys/{id}   one key
 *     PUT    /api/keys/{id}   {"name", "models", "requests_per_s", "burst"}
 *     DELETE /api/keys/{id}   revoke
 *
 * The token appears in the answer to POST only: the store keeps its salted
 * hash, and no other answer carries a salt or hash.  Every change is
 * written to the store, reloaded into the gateway at once and audited.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "bms/repo.h"
#include "server/api.h"
#include "server/auth.h"
#include "server/v2_json.h"

/* Which fields a body may carry. */
#define FIELD_NAME 1
#define FIELD_ROLE 2
#define FIELD_MODELS 4
#define FIELD_RATE 8
#define FIELD_BURST 16

/* A parsed body: the fields present (FIELD_*), the values in key. */
struct key_body {
    int present;
    struct bms_key key;
};


/* A double as the shortest of %.15g and %.17g that reads back the same. */
static void json_double(struct bms__json *j, double v)
{
    char text[40];

    snprintf(text, sizeof(text), "%.15g", v);
    if (strtod(text, NULL) != v) {
        snprintf(text, sizeof(text), "%.17g", v);
    }
    bms__json_raw(j, text);
}


void bms__key_json(struct bms__json *j, const struct bms_key *key)
{
    const char *p = key->models;

    bms__json_raw(j, "{\"id\": ");
    bms__json_cstr(j, key->id);
    bms__json_raw(j, ", \"name\": ");
    bms__json_cstr(j, key->name);
    bms__json_raw(j, ", \"role\": ");
    bms__json_cstr(j, key->role);
    bms__json_raw(j, ", \"models\": [");
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (p != key->models) {
            bms__json_raw(j, ", ");
        }
        bms__json_string(j, p, len);
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    bms__json_raw(j, "], \"requests_per_s\": ");
    json_double(j, key->requests_per_s);
    bms__json_raw(j, ", \"burst\": ");
    bms__json_int(j, key->burst);
    bms__json_raw(j, ", \"created_us\": ");
    bms__json_int(j, key->created_us);
    bms__json_raw(j, ", \"revoked_us\": ");
    bms__json_int(j, key->revoked_us);
    bms__json_raw(j, key->revoked_us == 0 ? ", \"active\": true}"
                                          : ", \"active\": false}");
}


/* ---- bodies ---- */

static enum bms_status body_models(yajl_val v, struct bms_key *key,
                                   struct bms_diag *diag)
{
    size_t used = 0;

    if (!YAJL_IS_ARRAY(v)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "models: expected an "
                            "array of model names");
    }
    key->models[0] = '\0';
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val m = v->u.array.values[i];
        const char *name = YAJL_GET_STRING(m);
        size_t len = name != NULL ? strlen(name) : 0;

        if (name == NULL || !bms_model_name_valid(name, len)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "models[%zu]: "
                                "expected a model name (A-Z a-z 0-9 _ . -, "
                                "not starting with '.')", i);
        }
        if (used + len + 2 > sizeof(key->models)) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "models: longer "
                                "than %zu characters in all",
                                sizeof(key->models) - 1);
        }
        if (used > 0) {
            key->models[used++] = ',';
        }
        memcpy(key->models + used, name, len + 1);
        used += len;
    }
    return BMS_OK;
}


static enum bms_status body_string(yajl_val v, const char *field, char *out,
                                   size_t size, struct bms_diag *diag)
{
    const char *s = YAJL_GET_STRING(v);

    if (s == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: expected a string",
                            field);
    }
    if (strlen(s) >= size) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: longer than %zu "
                            "characters", field, size - 1);
    }
    for (const char *c = s; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "%s: a control "
                                "character at %zu", field,
                                (size_t)(c - s) + 1);
        }
    }
    snprintf(out, size, "%s", s);
    return BMS_OK;
}


/* One field of a body into b, if allowed (FIELD_* in allowed). */
static enum bms_status body_field(const char *name, yajl_val v, int allowed,
                                  struct key_body *b, struct bms_diag *diag)
{
    struct bms_key *key = &b->key;

    if (strcmp(name, "name") == 0 && (allowed & FIELD_NAME)) {
        b->present |= FIELD_NAME;
        return body_string(v, "name", key->name, sizeof(key->name), diag);
    }
    if (strcmp(name, "role") == 0 && (allowed & FIELD_ROLE)) {
        b->present |= FIELD_ROLE;
        return body_string(v, "role", key->role, sizeof(key->role), diag);
    }
    if (strcmp(name, "models") == 0) {
        b->present |= FIELD_MODELS;
        return body_models(v, key, diag);
    }
    if (strcmp(name, "requests_per_s") == 0) {
        b->present |= FIELD_RATE;
        if (!YAJL_IS_NUMBER(v) || !isfinite(YAJL_GET_DOUBLE(v))) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "requests_per_s: "
                                "expected a number");
        }
        key->requests_per_s = YAJL_GET_DOUBLE(v);
        return BMS_OK;
    }
    if (strcmp(name, "burst") == 0) {
        b->present |= FIELD_BURST;
        if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 ||
            YAJL_GET_INTEGER(v) > (long long)BMS__RATE_MAX) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "burst: expected an "
                                "integer in 0..%g", BMS__RATE_MAX);
        }
        key->burst = (int)YAJL_GET_INTEGER(v);
        return BMS_OK;
    }
    if (strcmp(name, "role") == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "role: cannot be "
                            "changed; make a new key");
    }
    return bms_diag_set(diag, BMS_ERR_INVALID, "body: unknown field "
                        "'%.64s'", name);
}


/*
 * Parse a body (a JSON object of the allowed fields) over b, whose key
 * holds the values of fields left out.  BMS_ERR_INVALID naming the field.
 */
static enum bms_status parse_body(const char *body, size_t len, int allowed,
                                  struct key_body *b, struct bms_diag *diag)
{
    char err[256] = "";
    enum bms_status rc = BMS_OK;
    yajl_val root;
    char *text;

    if (memchr(body, '\0', len) != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "body: contains a NUL "
                            "byte");
    }
    for (size_t i = 0; i + 6 <= len; i++) {
        /* The tree parser would cut the string there, unseen. */
        if (memcmp(body + i, "\\u0000", 6) == 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "body: \\u0000 in "
                                "a string");
        }
    }
    text = malloc(len + 1);
    if (text == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    memcpy(text, body, len);
    text[len] = '\0';
    root = yajl_tree_parse(text, err, sizeof(err));
    free(text);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return bms_diag_set(diag, BMS_ERR_INVALID, "body: expected a JSON "
                            "object");
    }
    for (size_t i = 0; i < root->u.object.len && rc == BMS_OK; i++) {
        rc = body_field(root->u.object.keys[i], root->u.object.values[i],
                        allowed, b, diag);
    }
    yajl_tree_free(root);
    return rc;
}


/* ---- answers ---- */

static void reply_key(struct bms__reply *reply, int http_status,
                      const struct bms_key *key, const char *token)
{
    struct bms__json j = { &reply->body, BMS_OK };

    bms_buf_reset(&reply->body);
    bms__key_json(&j, key);
    if (token != NULL && j.rc == BMS_OK) {
        /* Put the token inside the object: drop its closing brace. */
        reply->body.len--;
        bms__json_raw(&j, ", \"token\": ");
        bms__json_cstr(&j, token);
        bms__json_raw(&j, "}");
    }
    if (j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = http_status;
}


static void reply_diag(struct bms__reply *reply, enum bms_status rc,
                       const struct bms_diag *diag)
{
    bms__reply_error(reply, bms__http_status(rc),
                     diag->msg[0] != '\0' ? diag->msg : bms_status_name(rc));
}


/* After a change in the store: the gateway sees it now. */
static void reload(const struct bms__context *ctx)
{
    struct bms_diag diag;

    diag.msg[0] = '\0';
    if (ctx->auth != NULL && bms__auth_reload(ctx->auth, &diag) != BMS_OK) {
        bms_log(BMS_LOG_ERROR, "auth", "msg=\"keys not reloaded\" "
                "error=\"%s\"", diag.msg);
    }
}


static void audit_key(const struct bms__context *ctx, const char *action,
                      const struct bms_key *key)
{
    struct bms_buf buf = { NULL, 0, 0 };
    struct bms__json j = { &buf, BMS_OK };

    bms__key_json(&j, key);
    bms__audit(ctx, action, key->id, j.rc == BMS_OK ? buf.data : "");
    bms_buf_fini(&buf);
}


static void create_key(const struct bms__context *ctx, const char *body,
                       size_t body_len, struct bms__reply *reply)
{
    struct key_body b;
    struct bms_diag diag;
    char token[BMS__TOKEN_SIZE];
    enum bms_status rc;

    memset(&b, 0, sizeof(b));
    diag.msg[0] = '\0';
    rc = parse_body(body, body_len, FIELD_NAME | FIELD_ROLE | FIELD_MODELS |
                    FIELD_RATE | FIELD_BURST, &b, &diag);
    if (rc == BMS_OK && !(b.present & FIELD_NAME)) {
        rc = bms_diag_set(&diag, BMS_ERR_INVALID, "name: missing");
    }
    if (rc == BMS_OK && !(b.present & FIELD_ROLE)) {
        rc = bms_diag_set(&diag, BMS_ERR_INVALID, "role: missing");
    }
    if (rc == BMS_OK) {
        rc = bms__key_validate(&b.key, &diag);
    }
    if (rc == BMS_OK) {
        rc = bms__key_generate(&b.key, token, sizeof(token), &diag);
    }
    if (rc == BMS_OK) {
        b.key.created_us = bms_wall_us();
        rc = bms_store_put_key(ctx->store, &b.key, &diag);
    }
    if (rc != BMS_OK) {
        reply_diag(reply, rc, &diag);
        return;
    }
    reload(ctx);
    audit_key(ctx, "key.create", &b.key);
    bms_log(BMS_LOG_INFO, "auth", "msg=\"key created\" key=%s role=%s",
            b.key.id, b.key.role);
    reply_key(reply, 201, &b.key, token);
    memset(token, 0, sizeof(token));
}


struct key_list {
    struct bms__json *j;
    int n;
};


static int list_one(void *ud, const struct bms_key *key)
{
    struct key_list *l = ud;

    bms__json_raw(l->j, l->n++ > 0 ? ", " : "");
    bms__key_json(l->j, key);
    return l->j->rc != BMS_OK;
}


static void list_keys(const struct bms__context *ctx,
                      struct bms__reply *reply)
{
    struct bms__json j = { &reply->body, BMS_OK };
    struct key_list l = { &j, 0 };
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    bms__json_raw(&j, "{\"keys\": [");
    rc = bms_store_list_keys(ctx->store, 0, list_one, &l, &diag);
    bms__json_raw(&j, "]}");
    if (rc != BMS_OK) {
        reply_diag(reply, rc, &diag);
        return;
    }
    if (j.rc != BMS_OK) {
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = 200;
}


static void update_key(const struct bms__context *ctx, const char *id,
                       const char *body, size_t body_len,
                       struct bms__reply *reply)
{
    struct key_body b;
    struct bms_diag diag;
    enum bms_status rc;

    memset(&b, 0, sizeof(b));
    diag.msg[0] = '\0';
    rc = bms_store_get_key(ctx->store, id, &b.key, &diag);
    if (rc == BMS_OK && b.key.revoked_us != 0) {
        bms__reply_error(reply, 409, "key: revoked; make a new key");
        return;
    }
    if (rc == BMS_OK) {
        rc = parse_body(body, body_len, FIELD_NAME | FIELD_MODELS |
                        FIELD_RATE | FIELD_BURST, &b, &diag);
    }
    if (rc == BMS_OK && (b.present & FIELD_RATE) &&
        !(b.present & FIELD_BURST)) {
        b.key.burst = 0;        /* derived from the new rate */
    }
    if (rc == BMS_OK) {
        rc = bms__key_validate(&b.key, &diag);
    }
    if (rc == BMS_OK) {
        rc = bms_store_update_key(ctx->store, &b.key, &diag);
    }
    if (rc != BMS_OK) {
        reply_diag(reply, rc, &diag);
        return;
    }
    reload(ctx);
    audit_key(ctx, "key.update", &b.key);
    reply_key(reply, 200, &b.key, NULL);
}


static void revoke_key(const struct bms__context *ctx, const char *id,
                       struct bms__reply *reply)
{
    struct bms_key key;
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    rc = bms_store_revoke_key(ctx->store, id, bms_wall_us(), &diag);
    if (rc == BMS_OK) {
        rc = bms_store_get_key(ctx->store, id, &key, &diag);
    }
    if (rc != BMS_OK) {
        reply_diag(reply, rc, &diag);
        return;
    }
    reload(ctx);
    audit_key(ctx, "key.revoke", &key);
    bms_log(BMS_LOG_INFO, "auth", "msg=\"key revoked\" key=%s", key.id);
    reply_key(reply, 200, &key, NULL);
}


void bms__handle_keys(const struct bms__context *ctx,
                      const struct bms__route *route, const char *method,
                      const char *body, size_t body_len,
                      struct bms__reply *reply)
{
    struct bms_diag diag;
    struct bms_key key;
    enum bms_status rc;

    if (ctx->store == NULL) {
        bms__reply_error(reply, 503, "keys: this server has no store");
        return;
    }
    if (route->kind == BMS__ROUTE_KEYS) {
        if (strcmp(method, "POST") == 0) {
            create_key(ctx, body, body_len, reply);
        } else {
            list_keys(ctx, reply);
        }
        return;
    }
    if (strcmp(method, "PUT") == 0) {
        update_key(ctx, route->key_id, body, body_len, reply);
    } else if (strcmp(method, "DELETE") == 0) {
        revoke_key(ctx, route->key_id, reply);
    } else {
        diag.msg[0] = '\0';
        rc = bms_store_get_key(ctx->store, route->key_id, &key, &diag);
        if (rc != BMS_OK) {
            reply_diag(reply, rc, &diag);
            return;
        }
        reply_key(reply, 200, &key, NULL);
    }
}
