/*
 * Growable byte buffers.  Capacity doubles, so appending n bytes one at a
 * time costs O(n); the data stays NUL-terminated for callers that hand it
 * to string functions.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bms/base.h"


enum bms_status bms_buf_reserve(struct bms_buf *buf, size_t extra)
{
    size_t need = buf->len + extra + 1;
    size_t cap = buf->cap ? buf->cap : 256;
    char *p;

    if (need < buf->len) {
        return BMS_ERR_NOMEM;
    }
    if (need <= buf->cap) {
        return BMS_OK;
    }
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(buf->data, cap);
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    buf->data = p;
    buf->cap = cap;
    return BMS_OK;
}


enum bms_status bms_buf_append(struct bms_buf *buf, const void *data,
                               size_t size)
{
    enum bms_status rc = bms_buf_reserve(buf, size);

    if (rc != BMS_OK) {
        return rc;
    }
    if (size > 0) {
        memcpy(buf->data + buf->len, data, size);
    }
    buf->len += size;
    buf->data[buf->len] = '\0';
    return BMS_OK;
}


enum bms_status bms_buf_puts(struct bms_buf *buf, const char *s)
{
    return bms_buf_append(buf, s, strlen(s));
}


enum bms_status bms_buf_printf(struct bms_buf *buf, const char *fmt, ...)
{
    enum bms_status rc;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return BMS_ERR_INTERNAL;
    }
    rc = bms_buf_reserve(buf, (size_t)n);
    if (rc != BMS_OK) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return BMS_OK;
}


void bms_buf_reset(struct bms_buf *buf)
{
    buf->len = 0;
    if (buf->data != NULL) {
        buf->data[0] = '\0';
    }
}


void bms_buf_fini(struct bms_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}
