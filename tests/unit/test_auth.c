/*
 * Unit tests of the gateway's auth (server/auth.h): the token format, the
 * salted hash against SHA-256 computed by Python's hashlib, token-bucket
 * arithmetic worked out by hand, the role table, allow-lists, and the
 * whole check over a store in a temporary file, including a key that
 * another connection writes.
 */
#define _GNU_SOURCE                  /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "harness.h"

#include "bms/store.h"
#include "server/auth.h"

int bms_test_auth(int *n_tests);


static int all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}


static void token_has_the_documented_format(void **state)
{
    struct bms_key key;
    char token[BMS__TOKEN_SIZE];
    char id[BMS_KEY_ID_LEN + 1];
    unsigned char secret[BMS__TOKEN_SECRET_SIZE];

    (void)state;
    memset(&key, 0, sizeof(key));
    assert_int_equal(bms__key_generate(&key, token, sizeof(token), NULL),
                     BMS_OK);
    /* bms_ + 12 hex + _ + 64 hex */
    assert_int_equal(strlen(token), 4 + 12 + 1 + 64);
    assert_memory_equal(token, "bms_", 4);
    assert_true(all_lower_hex(token + 4, 12));
    assert_int_equal(token[16], '_');
    assert_true(all_lower_hex(token + 17, 64));
    assert_int_equal(strlen(key.id), 12);
    assert_memory_equal(token + 4, key.id, 12);
    assert_int_equal(bms__token_parse(token, strlen(token), id, secret), 0);
    assert_string_equal(id, key.id);
    assert_true(bms__key_verify(&key, secret));
}


static void tokens_of_two_keys_differ(void **state)
{
    struct bms_key a;
    struct bms_key b;
    char ta[BMS__TOKEN_SIZE];
    char tb[BMS__TOKEN_SIZE];

    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(bms__key_generate(&a, ta, sizeof(ta), NULL), BMS_OK);
    assert_int_equal(bms__key_generate(&b, tb, sizeof(tb), NULL), BMS_OK);
    assert_string_not_equal(ta, tb);
    assert_string_not_equal(a.id, b.id);
    assert_memory_not_equal(a.salt, b.salt, sizeof(a.salt));
}


static void token_parse_rejects_near_misses(void **state)
{
    static const char good[] =
        "bms_0123456789ab_"
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char id[BMS_KEY_ID_LEN + 1];
    unsigned char secret[BMS__TOKEN_SECRET_SIZE];
    char bad[sizeof(good)];

    (void)state;
    assert_int_equal(bms__token_parse(good, strlen(good), id, secret), 0);
    assert_string_equal(id, "0123456789ab");
    assert_int_equal(secret[0], 0x00);
    assert_int_equal(secret[1], 0x11);
    assert_int_equal(secret[31], 0xff);

    /* One character short, one too many. */
    assert_int_equal(bms__token_parse(good, strlen(good) - 1, id, secret),
                     -1);
    assert_int_equal(bms__token_parse(good, strlen(good) + 1, id, secret),
                     -1);
    /* Upper-case hex, another prefix, another separator. */
    memcpy(bad, good, sizeof(good));
    bad[20] = 'A';
    assert_int_equal(bms__token_parse(bad, strlen(bad), id, secret), -1);
    memcpy(bad, good, sizeof(good));
    bad[0] = 'x';
    assert_int_equal(bms__token_parse(bad, strlen(bad), id, secret), -1);
    memcpy(bad, good, sizeof(good));
    bad[16] = '-';
    assert_int_equal(bms__token_parse(bad, strlen(bad), id, secret), -1);
    memcpy(bad, good, sizeof(good));
    bad[5] = 'g';
    assert_int_equal(bms__token_parse(bad, strlen(bad), id, secret), -1);
}


static void key_hash_is_sha256_of_salt_then_secret(void **state)
{
    /* hashlib.sha256(bytes(range(16)) + bytes(range(100, 132))) */
    static const char expected[] =
        "c141d939eb8838d7c15f40c76f410138b9c9b946f92e09affd8047085cfe5c32";
    unsigned char salt[BMS_KEY_SALT_SIZE];
    unsigned char secret[BMS__TOKEN_SECRET_SIZE];
    unsigned char hash[BMS_KEY_HASH_SIZE];
    char hex[2 * BMS_KEY_HASH_SIZE + 1];

    (void)state;
    for (int i = 0; i < BMS_KEY_SALT_SIZE; i++) {
        salt[i] = (unsigned char)i;
    }
    for (int i = 0; i < BMS__TOKEN_SECRET_SIZE; i++) {
        secret[i] = (unsigned char)(100 + i);
    }
    bms__key_hash(salt, secret, hash);
    for (int i = 0; i < BMS_KEY_HASH_SIZE; i++) {
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    }
    assert_string_equal(hex, expected);
}


static void key_verify_rejects_a_wrong_secret(void **state)
{
    struct bms_key key;
    char token[BMS__TOKEN_SIZE];
    char id[BMS_KEY_ID_LEN + 1];
    unsigned char secret[BMS__TOKEN_SECRET_SIZE];

    (void)state;
    memset(&key, 0, sizeof(key));
    assert_int_equal(bms__key_generate(&key, token, sizeof(token), NULL),
                     BMS_OK);
    assert_int_equal(bms__token_parse(token, strlen(token), id, secret), 0);
    secret[31] ^= 1;
    assert_false(bms__key_verify(&key, secret));
    secret[31] ^= 1;
    key.salt[0] ^= 0x80;
    assert_false(bms__key_verify(&key, secret));
}


static void bucket_arithmetic_matches_hand_figures(void **state)
{
    struct bms__bucket b;
    int64_t t = 1000000;

    (void)state;
    memset(&b, 0, sizeof(b));
    /* 2 tokens/s, burst 3: three at once, then one every 0.5 s. */
    bms__bucket_set(&b, 2.0, 3, t);
    for (int i = 0; i < 3; i++) {
        assert_true(bms__bucket_ready(&b, t));
        bms__bucket_take(&b);
    }
    assert_false(bms__bucket_ready(&b, t));
    assert_int_equal(bms__bucket_retry_s(&b), 1);   /* ceil(1 / 2) */
    t += 250000;                                    /* +0.5 token */
    assert_false(bms__bucket_ready(&b, t));
    assert_true(b.tokens > 0.49 && b.tokens < 0.51);
    t += 250000;                                    /* 1.0 token */
    assert_true(bms__bucket_ready(&b, t));
    bms__bucket_take(&b);
    /* A long pause fills the bucket to its burst, no further. */
    t += 100 * 1000000LL;
    assert_true(bms__bucket_ready(&b, t));
    assert_true(b.tokens > 2.99 && b.tokens < 3.01);

    /* 0.25 tokens/s: an empty bucket needs ceil(1 / 0.25) = 4 s. */
    memset(&b, 0, sizeof(b));
    bms__bucket_set(&b, 0.25, 1, t);
    assert_true(bms__bucket_ready(&b, t));
    bms__bucket_take(&b);
    assert_false(bms__bucket_ready(&b, t));
    assert_int_equal(bms__bucket_retry_s(&b), 4);
    t += 1000000;                   /* 0.25 token: ceil(0.75 / 0.25) */
    assert_false(bms__bucket_ready(&b, t));
    assert_int_equal(bms__bucket_retry_s(&b), 3);

    /* No burst given: the rate rounded up, at least 1. */
    memset(&b, 0, sizeof(b));
    bms__bucket_set(&b, 2.5, 0, t);
    assert_int_equal(b.burst, 3);
    memset(&b, 0, sizeof(b));
    bms__bucket_set(&b, 0.1, 0, t);
    assert_int_equal(b.burst, 1);
}


static void role_table_matches_the_contract(void **state)
{
    (void)state;
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_LIVE, "GET"),
                     BMS__ROLE_NONE);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_READY, "GET"),
                     BMS__ROLE_NONE);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_OPENAPI, "GET"),
                     BMS__ROLE_NONE);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_DOCS, "GET"),
                     BMS__ROLE_NONE);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_SERVER, "GET"),
                     BMS__ROLE_USER);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_MODEL, "GET"),
                     BMS__ROLE_USER);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_MODEL_READY, "GET"),
                     BMS__ROLE_USER);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_INFER, "POST"),
                     BMS__ROLE_USER);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_ROUTING, "GET"),
                     BMS__ROLE_USER);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_ROUTING, "PUT"),
                     BMS__ROLE_ADMIN);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_PACKAGE, "GET"),
                     BMS__ROLE_USER);
    assert_int_equal(bms__auth_route_role(BMS__ROUTE_PACKAGE, "PUT"),
                     BMS__ROLE_ADMIN);
    {
        static const enum bms__route_kind admin_only[] = {
            BMS__ROUTE_KEYS, BMS__ROUTE_KEY, BMS__ROUTE_REQUESTS,
            BMS__ROUTE_AUDIT, BMS__ROUTE_MODEL_CONFIG,
            BMS__ROUTE_REPO_INDEX, BMS__ROUTE_REPO_LOAD,
            BMS__ROUTE_REPO_UNLOAD, BMS__ROUTE_MODEL_STOP,
            BMS__ROUTE_MODEL_RESUME, BMS__ROUTE_ALERTS
        };

        for (size_t i = 0; i < sizeof(admin_only) / sizeof(admin_only[0]);
             i++) {
            assert_int_equal(bms__auth_route_role(admin_only[i], "GET"),
                             BMS__ROLE_ADMIN);
        }
    }
}


static void allow_list_matches_whole_names(void **state)
{
    (void)state;
    assert_true(bms__models_allow("", "anything"));
    assert_true(bms__models_allow("a,bb", "a"));
    assert_true(bms__models_allow("a,bb", "bb"));
    assert_false(bms__models_allow("a,bb", "b"));
    assert_false(bms__models_allow("a,bb", "bbb"));
    assert_false(bms__models_allow("fashion_mlp", "fashion"));
}


static void key_validate_names_the_field(void **state)
{
    struct bms_key key;
    struct bms_diag diag;

    (void)state;
    memset(&key, 0, sizeof(key));
    snprintf(key.name, sizeof(key.name), "ci");
    snprintf(key.role, sizeof(key.role), "admin");
    snprintf(key.models, sizeof(key.models), "m1");
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "models"));

    snprintf(key.role, sizeof(key.role), "root");
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "role"));

    snprintf(key.role, sizeof(key.role), "user");
    snprintf(key.models, sizeof(key.models), "m1,,m2");
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "models"));
    snprintf(key.models, sizeof(key.models), "m/1");
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);

    snprintf(key.models, sizeof(key.models), "m1,m2");
    key.requests_per_s = -1;
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "requests_per_s"));
    key.requests_per_s = 0;
    key.burst = 5;
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "burst"));

    key.requests_per_s = 4.2;
    key.burst = 0;
    assert_int_equal(bms__key_validate(&key, &diag), BMS_OK);
    assert_int_equal(key.burst, 5);

    key.name[0] = '\0';
    assert_int_equal(bms__key_validate(&key, &diag), BMS_ERR_INVALID);
    assert_non_null(strstr(diag.msg, "name"));
}


/* ---- the whole check over a store ---- */

struct fixture {
    char path[64];
    struct bms_store *store;
    struct bms__auth *auth;
};


static void fixture_open(struct fixture *f)
{
    th_store_path(f->path, sizeof(f->path), "auth");
    f->store = th_store_open(f->path);
    assert_int_equal(bms__auth_create(f->store, 0, &f->auth, NULL), BMS_OK);
}


static void fixture_close(struct fixture *f)
{
    bms__auth_destroy(f->auth);
    bms_store_close(f->store);
    th_store_remove(f->path);
}


/* Put a key into store; its token into token. */
static void add_key(struct bms_store *store, const char *role,
                    const char *models, double rps, int burst,
                    char *token, struct bms_key *out)
{
    struct bms_key key;

    memset(&key, 0, sizeof(key));
    snprintf(key.name, sizeof(key.name), "test-%s", role);
    snprintf(key.role, sizeof(key.role), "%s", role);
    snprintf(key.models, sizeof(key.models), "%s", models);
    key.requests_per_s = rps;
    key.burst = burst;
    assert_int_equal(bms__key_validate(&key, NULL), BMS_OK);
    assert_int_equal(bms__key_generate(&key, token, BMS__TOKEN_SIZE, NULL),
                     BMS_OK);
    key.created_us = bms_wall_us();
    assert_int_equal(bms_store_put_key(store, &key, NULL), BMS_OK);
    if (out != NULL) {
        *out = key;
    }
}


static const char *header(const struct bms__reply *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++) {
        if (strcmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}


/* Run one check; returns its result and leaves the reply in *r. */
static int check(struct bms__auth *auth, enum bms__route_kind kind,
                 const char *model, const char *method, const char *authz,
                 struct bms__principal *who, struct bms__reply *r)
{
    struct bms__route route;

    memset(&route, 0, sizeof(route));
    route.kind = kind;
    snprintf(route.model, sizeof(route.model), "%s", model);
    bms_buf_fini(&r->body);
    memset(r, 0, sizeof(*r));
    return bms__auth_check(auth, &route, method, authz, who, r);
}


static void auth_check_refuses_and_admits_as_documented(void **state)
{
    struct fixture f;
    struct bms__principal who;
    struct bms__reply r;
    struct bms_key user;
    char user_token[BMS__TOKEN_SIZE];
    char admin_token[BMS__TOKEN_SIZE];
    char authz[160];
    char wrong[160];

    (void)state;
    memset(&r, 0, sizeof(r));
    fixture_open(&f);

    /* No key yet: the API is open and every caller is admin. */
    assert_false(bms__auth_enabled(f.auth));
    assert_int_equal(check(f.auth, BMS__ROUTE_KEYS, "", "GET", NULL, &who,
                           &r), 0);
    assert_int_equal(who.role, BMS__ROLE_ADMIN);

    add_key(f.store, "user", "m1", 1.0, 2, user_token, &user);
    add_key(f.store, "admin", "", 0, 0, admin_token, NULL);
    assert_int_equal(bms__auth_reload(f.auth, NULL), BMS_OK);
    assert_true(bms__auth_enabled(f.auth));

    /* Open routes need nothing. */
    assert_int_equal(check(f.auth, BMS__ROUTE_LIVE, "", "GET", NULL, &who,
                           &r), 0);
    /* No header, a bad scheme, a malformed token: 401 with a challenge. */
    assert_int_not_equal(check(f.auth, BMS__ROUTE_SERVER, "", "GET", NULL,
                               &who, &r), 0);
    assert_int_equal(r.http_status, 401);
    assert_non_null(header(&r, "WWW-Authenticate"));
    snprintf(authz, sizeof(authz), "Basic %s", user_token);
    assert_int_not_equal(check(f.auth, BMS__ROUTE_SERVER, "", "GET", authz,
                               &who, &r), 0);
    assert_int_equal(r.http_status, 401);
    assert_int_not_equal(check(f.auth, BMS__ROUTE_SERVER, "", "GET",
                               "Bearer bms_x", &who, &r), 0);
    assert_int_equal(r.http_status, 401);
    /* The right id with a wrong secret. */
    snprintf(wrong, sizeof(wrong), "Bearer %s", user_token);
    wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
    assert_int_not_equal(check(f.auth, BMS__ROUTE_SERVER, "", "GET", wrong,
                               &who, &r), 0);
    assert_int_equal(r.http_status, 401);

    /* The user key: its model passes with the bucket's headers, another
     * model and an admin route are 403. */
    snprintf(authz, sizeof(authz), "bearer  %s", user_token);
    assert_int_equal(check(f.auth, BMS__ROUTE_INFER, "m1", "POST", authz,
                           &who, &r), 0);
    assert_string_equal(who.key_id, user.id);
    assert_int_equal(who.role, BMS__ROLE_USER);
    assert_string_equal(header(&r, "X-RateLimit-Limit"), "2");
    assert_string_equal(header(&r, "X-RateLimit-Remaining"), "1");
    assert_int_not_equal(check(f.auth, BMS__ROUTE_INFER, "m2", "POST",
                               authz, &who, &r), 0);
    assert_int_equal(r.http_status, 403);
    assert_int_not_equal(check(f.auth, BMS__ROUTE_KEYS, "", "GET", authz,
                               &who, &r), 0);
    assert_int_equal(r.http_status, 403);

    /* Burst 2: one token was left, then 429 with Retry-After 1 s. */
    assert_int_equal(check(f.auth, BMS__ROUTE_INFER, "m1", "POST", authz,
                           &who, &r), 0);
    assert_string_equal(header(&r, "X-RateLimit-Remaining"), "0");
    assert_int_not_equal(check(f.auth, BMS__ROUTE_INFER, "m1", "POST",
                               authz, &who, &r), 0);
    assert_int_equal(r.http_status, 429);
    assert_int_equal(r.retry_after_s, 1);
    assert_string_equal(header(&r, "X-RateLimit-Remaining"), "0");

    /* Revoked: 401 once the cache is reloaded. */
    assert_int_equal(bms_store_revoke_key(f.store, user.id, bms_wall_us(),
                                          NULL), BMS_OK);
    assert_int_equal(bms__auth_reload(f.auth, NULL), BMS_OK);
    assert_int_not_equal(check(f.auth, BMS__ROUTE_SERVER, "", "GET", authz,
                               &who, &r), 0);
    assert_int_equal(r.http_status, 401);

    bms_buf_fini(&r.body);
    fixture_close(&f);
}


static void model_limit_applies_to_infer_of_that_model(void **state)
{
    struct fixture f;
    struct bms__principal who;
    struct bms__reply r;
    double rps;
    int burst;

    (void)state;
    memset(&r, 0, sizeof(r));
    fixture_open(&f);
    assert_int_equal(bms__auth_set_model_limit(f.auth, "m1", 0.5, 1, NULL),
                     BMS_OK);
    bms__auth_model_limit(f.auth, "m1", &rps, &burst);
    assert_true(rps == 0.5);
    assert_int_equal(burst, 1);
    /* Persisted. */
    assert_int_equal(bms_store_get_model_limit(f.store, "m1", &rps, &burst,
                                               NULL), BMS_OK);
    assert_true(rps == 0.5);

    /* Auth is off (no keys), the model limit still counts. */
    assert_int_equal(check(f.auth, BMS__ROUTE_INFER, "m1", "POST", NULL,
                           &who, &r), 0);
    assert_int_not_equal(check(f.auth, BMS__ROUTE_INFER, "m1", "POST", NULL,
                               &who, &r), 0);
    assert_int_equal(r.http_status, 429);
    assert_int_equal(r.retry_after_s, 2);       /* ceil(1 / 0.5) */
    /* Other models and other routes of m1 are not counted. */
    assert_int_equal(check(f.auth, BMS__ROUTE_INFER, "m2", "POST", NULL,
                           &who, &r), 0);
    assert_int_equal(check(f.auth, BMS__ROUTE_MODEL, "m1", "GET", NULL,
                           &who, &r), 0);

    /* Removed: no limit. */
    assert_int_equal(bms__auth_set_model_limit(f.auth, "m1", 0, 0, NULL),
                     BMS_OK);
    bms__auth_model_limit(f.auth, "m1", &rps, &burst);
    assert_true(rps == 0);
    assert_int_equal(check(f.auth, BMS__ROUTE_INFER, "m1", "POST", NULL,
                           &who, &r), 0);
    assert_int_equal(bms__auth_set_model_limit(f.auth, "m1", -1, 0, NULL),
                     BMS_ERR_INVALID);

    bms_buf_fini(&r.body);
    fixture_close(&f);
}


static void key_written_by_another_connection_is_seen(void **state)
{
    struct fixture f;
    struct bms_store *other = NULL;
    char token[BMS__TOKEN_SIZE];
    int64_t deadline;

    (void)state;
    fixture_open(&f);
    assert_false(bms__auth_enabled(f.auth));
    assert_int_equal(bms_store_open_sqlite(f.path, &other, NULL), BMS_OK);
    add_key(other, "admin", "", 0, 0, token, NULL);
    bms_store_close(other);

    /* The contract: within about a second; allow three. */
    deadline = bms_now_us() + 3000000;
    while (!bms__auth_enabled(f.auth) && bms_now_us() < deadline) {
        struct timespec ts = { 0, 20000000 };

        nanosleep(&ts, NULL);
    }
    assert_true(bms__auth_enabled(f.auth));
    fixture_close(&f);
}


static void store_never_holds_the_token(void **state)
{
    struct fixture f;
    struct bms_key key;
    static char buf[1 << 20];
    char token[BMS__TOKEN_SIZE];
    FILE *fp;
    size_t n;

    (void)state;
    fixture_open(&f);
    add_key(f.store, "user", "", 0, 0, token, &key);
    assert_int_equal(bms_store_get_key(f.store, key.id, &key, NULL),
                     BMS_OK);
    assert_memory_equal(token + 4, key.id, BMS_KEY_ID_LEN);
    bms__auth_destroy(f.auth);
    f.auth = NULL;
    bms_store_close(f.store);
    f.store = NULL;

    /* After close the WAL is folded into the file. */
    fp = fopen(f.path, "rb");
    assert_non_null(fp);
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_true(n > 0 && n < sizeof(buf));
    assert_null(memmem(buf, n, token + 17, 64));
    unlink(f.path);
}


int bms_test_auth(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_has_the_documented_format),
        cmocka_unit_test(tokens_of_two_keys_differ),
        cmocka_unit_test(token_parse_rejects_near_misses),
        cmocka_unit_test(key_hash_is_sha256_of_salt_then_secret),
        cmocka_unit_test(key_verify_rejects_a_wrong_secret),
        cmocka_unit_test(bucket_arithmetic_matches_hand_figures),
        cmocka_unit_test(role_table_matches_the_contract),
        cmocka_unit_test(allow_list_matches_whole_names),
        cmocka_unit_test(key_validate_names_the_field),
        cmocka_unit_test(auth_check_refuses_and_admits_as_documented),
        cmocka_unit_test(model_limit_applies_to_infer_of_that_model),
        cmocka_unit_test(key_written_by_another_connection_is_seen),
        cmocka_unit_test(store_never_holds_the_token),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
