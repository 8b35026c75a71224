/*
 * gzip (RFC 1952) compression of response bodies and decompression of
 * request bodies, on zlib.  Decompression is bounded: it stops as soon as
 * the output would pass the limit the caller gives, so a small body that
 * inflates to gigabytes costs no more than the limit.
 */
#ifndef BMS_SERVER_GZIP_H
#define BMS_SERVER_GZIP_H

#include <stddef.h>

#include "bms/base.h"

/*
 * Append the gzip stream of in (len bytes) to out, at zlib level 1..9
 * (another value: zlib's default, 6).  On failure out keeps its length.
 * Returns BMS_ERR_NOMEM, or BMS_ERR_INTERNAL when zlib refuses.
 * Thread-safe.
 */
enum bms_status bms__gzip(const void *in, size_t len, int level,
                          struct bms_buf *out);

/*
 * Append the data of the gzip stream in (len bytes; several members one
 * after another are read as one) to out.  Fails with BMS_ERR_LIMIT when
 * the data would pass max_out bytes (stopping there), BMS_ERR_INVALID for
 * a damaged or truncated stream, BMS_ERR_NOMEM; the message names the
 * body.  On failure out keeps its length (its memory may have grown; the
 * caller frees it as always).  Thread-safe.
 */
enum bms_status bms__gunzip(const void *in, size_t len, size_t max_out,
                            struct bms_buf *out, struct bms_diag *diag);

/*
 * Whether an Accept-Encoding header value accepts gzip: "gzip",
 * "x-gzip" or "*" with a q-value above 0 (RFC 9110, 12.5.3); an explicit
 * gzip;q=0 refuses it whatever "*" says.  NULL accepts nothing.
 */
int bms__gzip_accepted(const char *accept_encoding);

#endif
