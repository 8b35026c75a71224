/*
 * The gateway's first check on every request: who calls (an API key),
 * whether that caller may use the route, and whether it is within its
 * rate limits.  Keys live in the store as salted hashes and are cached
 * here, so the check itself reads no SQLite.
 *
 * Tokens: "bms_<id>_<secret>", id 12 lowercase hex digits (the key's row
 * in the store), secret 32 random bytes as 64 lowercase hex digits.  The
 * store keeps a 16-byte random salt and SHA-256(salt || secret bytes); a
 * token is shown once, when its key is made.  Callers send
 * `Authorization: Bearer <token>` (the scheme in any case, one or more
 * spaces, nothing after the token).
 *
 * The role each route needs:
 *
 *     open (no key)  LIVE, READY, OPENAPI, DOCS
 *     user           SERVER, MODEL, MODEL_READY, INFER, ROUTING GET,
 *                    PACKAGE GET
 *     admin          everything else: KEYS, KEY, REQUESTS, AUDIT,
 *                    MODEL_CONFIG, REPO_INDEX, REPO_LOAD, REPO_UNLOAD,
 *                    PACKAGE PUT, MODEL_STOP, MODEL_RESUME, ROUTING PUT,
 *                    ALERTS
 *
 * An admin key may call every route.  A user key with an allow-list may
 * name only the models on it, on every route that names a model; admin
 * keys have no allow-list.
 *
 * Auth is on when at least one key is active and the server did not start
 * with no_auth; while it is off every caller acts as an anonymous admin.
 *
 * Rate limits are token buckets: a key's (requests_per_s, burst) counts
 * every request made with it; a model's (the model_limits table) counts
 * the infer requests of that model, whoever makes them, auth on or off.
 * A request passes when both buckets hold a token and then takes one
 * from each.  A bucket starts full, holds at most burst tokens and gains
 * requests_per_s tokens a second.  Headers: X-RateLimit-Limit (the
 * tighter bucket's burst) and X-RateLimit-Remaining (its whole tokens
 * left) on every limited request; past a limit 429 with those and
 * Retry-After (whole seconds until a token is back, at least 1).
 *
 * Keys made, changed or revoked through bms__auth_reload's callers (the
 * keys API) count at once; changes another process writes to the store
 * (`bms keys`) are seen within about a second: a thread checks the
 * store's data_version once a second and reloads when it moved.
 */
#ifndef BMS_SERVER_AUTH_H
#define BMS_SERVER_AUTH_H

#include <stddef.h>

#include "bms/store.h"
#include "server/route.h"

#define BMS__TOKEN_SECRET_SIZE 32            /* bytes */
#define BMS__TOKEN_LEN (4 + BMS_KEY_ID_LEN + 1 + 2 * BMS__TOKEN_SECRET_SIZE)
#define BMS__TOKEN_SIZE (BMS__TOKEN_LEN + 1) /* with the NUL */
#define BMS__RATE_MAX 1e6                    /* requests_per_s, burst */

struct bms__auth;

/*
 * Make the gateway over store (borrowed, may be NULL: no keys, model
 * limits kept in memory only) and load its keys and model limits.  With
 * no_auth, keys are never asked for.  Logs a warning when auth is off.
 * BMS_ERR_IO when the store cannot be read, BMS_ERR_NOMEM.
 */
enum bms_status bms__auth_create(struct bms_store *store, int no_auth,
                                 struct bms__auth **out,
                                 struct bms_diag *diag);

/* Stop the reload thread and free.  Accepts NULL. */
void bms__auth_destroy(struct bms__auth *auth);

/*
 * Check one request before its body is read: route (parsed), method and
 * the Authorization header (NULL when absent).  Returns 0 to go on, with
 * *who set and any rate-limit headers added to reply; else non-zero with
 * the refusal in reply: 401 (no key, a malformed header or token, an
 * unknown or revoked key, a wrong secret; with WWW-Authenticate: Bearer),
 * 403 (a role too low, a model not on the allow-list) or 429 (a rate
 * limit).  Thread-safe; reads no SQLite.
 */
int bms__auth_check(struct bms__auth *auth, const struct bms__route *route,
                    const char *method, const char *authorization,
                    struct bms__principal *who, struct bms__reply *reply);

/* Whether keys are asked for now (at least one active key, no no_auth). */
int bms__auth_enabled(struct bms__auth *auth);

/*
 * Read the keys and model limits from the store again, now: call after
 * changing them there.  Buckets of keys and models that stay keep their
 * tokens (cut to a smaller burst).  BMS_ERR_IO, BMS_ERR_NOMEM (the cache
 * is kept as it was).  Thread-safe.
 */
enum bms_status bms__auth_reload(struct bms__auth *auth,
                                 struct bms_diag *diag);

/* Set (requests_per_s 0: remove) a model's rate limit: persisted in
 * the store and applied at once.  BMS_ERR_INVALID for a rate outside
 * 0..BMS__RATE_MAX or a burst outside 0..BMS__RATE_MAX (0: the rate
 * rounded up, at least 1). */
enum bms_status bms__auth_set_model_limit(struct bms__auth *auth,
                                          const char *model,
                                          double requests_per_s,
                                          int burst,
                                          struct bms_diag *diag);

/* The model's limit now; 0 requests_per_s: none. */
void bms__auth_model_limit(struct bms__auth *auth, const char *model,
                           double *requests_per_s, int *burst);

/* ---- the parts below are pure, for the keys API, the CLI and tests ---- */

/* The role a route needs with this method (BMS__ROLE_NONE: open). */
enum bms__role bms__auth_route_role(enum bms__route_kind kind,
                                    const char *method);

/* "admin", "user" or "none"; and back (-1 for anything else). */
const char *bms__role_name(enum bms__role role);
int bms__role_parse(const char *name, enum bms__role *out);

/*
 * Make a new key's id, salt and hash into *key (other fields untouched)
 * and its token into token (size >= BMS__TOKEN_SIZE), from the system's
 * key-grade random generator.  BMS_ERR_INTERNAL when it fails.
 */
enum bms_status bms__key_generate(struct bms_key *key, char *token,
                                  size_t size, struct bms_diag *diag);

/* Split a token of len bytes into its id (13 bytes with the NUL) and
 * secret; -1 unless it has exactly the token format. */
int bms__token_parse(const char *token, size_t len,
                     char id[BMS_KEY_ID_LEN + 1],
                     unsigned char secret[BMS__TOKEN_SECRET_SIZE]);

/* SHA-256(salt || secret) into out. */
void bms__key_hash(const unsigned char salt[BMS_KEY_SALT_SIZE],
                   const unsigned char secret[BMS__TOKEN_SECRET_SIZE],
                   unsigned char out[BMS_KEY_HASH_SIZE]);

/* Whether secret hashes to key's hash; compares in constant time. */
int bms__key_verify(const struct bms_key *key,
                    const unsigned char secret[BMS__TOKEN_SECRET_SIZE]);

/* Whether model is on the comma-list allow-list ("" allows all). */
int bms__models_allow(const char *models, const char *model);

/*
 * Check the fields a caller sets on a key: name (1 to 63 printable ASCII
 * characters), role ("admin" or "user"), models (a comma list of model
 * names, only for user keys), requests_per_s (0..BMS__RATE_MAX, 0: no
 * limit) and burst (0..BMS__RATE_MAX; only with a rate).  A burst of 0
 * with a rate becomes the rate rounded up (at least 1).  BMS_ERR_INVALID
 * naming the field.
 */
enum bms_status bms__key_validate(struct bms_key *key,
                                  struct bms_diag *diag);

/* Append key as a JSON object (id, name, role, models as an array,
 * requests_per_s, burst, created_us, revoked_us, active); never the salt
 * or hash.  (keys_api.c) */
struct bms__json;
void bms__key_json(struct bms__json *j, const struct bms_key *key);

/* A token bucket: capacity burst, refilled at rate tokens a second. */
struct bms__bucket {
    double rate;                 /* tokens per second; 0: unlimited */
    int burst;
    double tokens;
    int64_t last_us;             /* monotonic time of the last refill */
};

/* Set a bucket's rate and burst (burst 0: the rate rounded up, at least
 * 1); a new bucket starts full, a changed one keeps its tokens up to the
 * new burst. */
void bms__bucket_set(struct bms__bucket *b, double rate, int burst,
                     int64_t now_us);

/* Refill for the time up to now_us; then whether a token is there. */
int bms__bucket_ready(struct bms__bucket *b, int64_t now_us);

/* Take one token (after bms__bucket_ready said yes). */
void bms__bucket_take(struct bms__bucket *b);

/* Whole seconds until a token is back (at least 1). */
int bms__bucket_retry_s(const struct bms__bucket *b);

#endif
