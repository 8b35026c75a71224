/*
 * Request records, the audit trail and run-time model settings.
 */
#include "server/api.h"


void bms__handle_requests(const struct bms__context *ctx,
                          struct bms__reply *reply)
{
    (void)ctx;
    bms__reply_error(reply, 501, "not implemented yet");
}


void bms__handle_audit(const struct bms__context *ctx,
                       struct bms__reply *reply)
{
    (void)ctx;
    bms__reply_error(reply, 501, "not implemented yet");
}


void bms__handle_model_config(const struct bms__context *ctx,
                              const struct bms__route *route,
                              const char *method, const char *body,
                              size_t body_len, struct bms__reply *reply)
{
    (void)ctx;
    (void)route;
    (void)method;
    (void)body;
    (void)body_len;
    bms__reply_error(reply, 501, "not implemented yet");
}


void bms__audit(const struct bms__context *ctx, const char *action,
                const char *target, const char *detail)
{
    (void)ctx;
    (void)action;
    (void)target;
    (void)detail;
}
