/*
 * Model packages: upload and download.
 */
#include "server/api.h"


void bms__handle_package(const struct bms__context *ctx,
                         const struct bms__route *route, const char *method,
                         const char *body, size_t body_len,
                         struct bms__reply *reply)
{
    (void)ctx;
    (void)route;
    (void)method;
    (void)body;
    (void)body_len;
    bms__reply_error(reply, 501, "not implemented yet");
}
