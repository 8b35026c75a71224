/*
 * The OpenAPI document and its readable page.
 */
#include "server/api.h"


void bms__handle_openapi(const struct bms__context *ctx,
                         struct bms__reply *reply)
{
    (void)ctx;
    bms__reply_error(reply, 501, "not implemented yet");
}


void bms__handle_docs(const struct bms__context *ctx,
                      struct bms__reply *reply)
{
    (void)ctx;
    bms__reply_error(reply, 501, "not implemented yet");
}
