/*
 * The repository API: index, load and unload.
 */
#include "server/api.h"


void bms__handle_repo_index(const struct bms__context *ctx,
                            struct bms__reply *reply)
{
    (void)ctx;
    bms__reply_error(reply, 501, "not implemented yet");
}


void bms__handle_repo_load(const struct bms__context *ctx,
                           const struct bms__route *route, int load,
                           const char *body, size_t body_len,
                           struct bms__reply *reply)
{
    (void)ctx;
    (void)route;
    (void)load;
    (void)body;
    (void)body_len;
    bms__reply_error(reply, 501, "not implemented yet");
}
