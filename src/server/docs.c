/*
 * The OpenAPI document of the whole HTTP API (docs/openapi.json) and a
 * page that renders it (web/docs.html), both compiled into the binary
 * from a header the build generates (docs_embed.h), so that what a
 * running bms serves is exactly the document of its own release and no
 * file needs to be found at run time.
 */
#include "server/api.h"

#include "docs_embed.h"


/* Answer 200 with bytes as the body; 500 when memory runs out. */
static void reply_bytes(struct bms__reply *reply, const unsigned char *data,
                        size_t size, const char *content_type)
{
    if (bms_buf_append(&reply->body, data, size) != BMS_OK) {
        bms_buf_fini(&reply->body);
        bms__reply_error(reply, 500, "out of memory");
        return;
    }
    reply->http_status = 200;
    reply->content_type = content_type;
}


void bms__handle_openapi(const struct bms__context *ctx,
                         struct bms__reply *reply)
{
    (void)ctx;
    reply_bytes(reply, embed_docs_openapi_json,
                sizeof(embed_docs_openapi_json), "application/json");
}


void bms__handle_docs(const struct bms__context *ctx,
                      struct bms__reply *reply)
{
    (void)ctx;
    reply_bytes(reply, embed_web_docs_html, sizeof(embed_web_docs_html),
                "text/html; charset=utf-8");
}
