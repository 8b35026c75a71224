/*
 * gzip bodies on zlib.  Both directions feed zlib at most CHUNK_MAX bytes
 * at a time (its counters are 32-bit) and write straight into the output
 * buffer, which is rolled back to its old length on any failure.
 */
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "server/gzip.h"

#define CHUNK_MAX ((size_t)1 << 30)      /* bytes zlib gets per call */
#define OUT_STEP_MIN ((size_t)16 << 10)  /* bytes the output grows by */
#define GZIP_WINDOW (16 + MAX_WBITS)     /* zlib: a gzip wrapper */


/* Cut out back to start bytes (keeping it NUL-terminated). */
static void roll_back(struct bms_buf *out, size_t start)
{
    out->len = start;
    if (out->data != NULL) {
        out->data[start] = '\0';
    }
}


/* Give zlib the next piece of input when it has used the last one. */
static void feed(z_stream *zs, const unsigned char **p, size_t *left)
{
    size_t n;

    if (zs->avail_in > 0 || *left == 0) {
        return;
    }
    n = *left < CHUNK_MAX ? *left : CHUNK_MAX;
    zs->next_in = (Bytef *)(uintptr_t)*p;
    zs->avail_in = (uInt)n;
    *p += n;
    *left -= n;
}


enum bms_status bms__gzip(const void *in, size_t len, int level,
                          struct bms_buf *out)
{
    const unsigned char *p = in;
    size_t left = len;
    size_t start = out->len;
    enum bms_status rc = BMS_OK;
    z_stream zs;
    int zrc = Z_OK;

    memset(&zs, 0, sizeof(zs));
    if (level < 1 || level > 9) {
        level = Z_DEFAULT_COMPRESSION;
    }
    zrc = deflateInit2(&zs, level, Z_DEFLATED, GZIP_WINDOW, 8,
                       Z_DEFAULT_STRATEGY);
    if (zrc != Z_OK) {
        return zrc == Z_MEM_ERROR ? BMS_ERR_NOMEM : BMS_ERR_INTERNAL;
    }
    while (zrc != Z_STREAM_END) {
        size_t room;

        feed(&zs, &p, &left);
        room = left == 0 ? deflateBound(&zs, zs.avail_in) : CHUNK_MAX;
        room = room < OUT_STEP_MIN ? OUT_STEP_MIN : room;
        rc = bms_buf_reserve(out, room);
        if (rc != BMS_OK) {
            break;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        zrc = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) {
            rc = BMS_ERR_INTERNAL;
            break;
        }
    }
    deflateEnd(&zs);
    if (rc != BMS_OK) {
        roll_back(out, start);
        return rc;
    }
    out->data[out->len] = '\0';
    return BMS_OK;
}


/* The next stretch of output to offer zlib: as much as is needed to see
 * one byte past max_out, growing with what was produced so far. */
static size_t next_room(size_t produced, size_t max_out)
{
    size_t want = max_out - produced + 1;
    size_t step = produced > OUT_STEP_MIN ? produced : OUT_STEP_MIN;

    step = step < CHUNK_MAX ? step : CHUNK_MAX;
    return want < step ? want : step;
}


/* One call of inflate; on a gzip member's end with input left, the next
 * member starts.  Returns 1 at the end of the stream, 0 to go on, or a
 * negative status (the message in diag). */
static int inflate_step(z_stream *zs, size_t in_left, enum bms_status *rc,
                        struct bms_diag *diag)
{
    int zrc = inflate(zs, Z_NO_FLUSH);

    switch (zrc) {
    case Z_OK:
        return 0;
    case Z_STREAM_END:
        if (zs->avail_in == 0 && in_left == 0) {
            return 1;
        }
        inflateReset(zs);
        return 0;
    case Z_BUF_ERROR:
        *rc = bms_diag_set(diag, BMS_ERR_INVALID, "body: the gzip stream "
                           "is truncated");
        return -1;
    case Z_MEM_ERROR:
        *rc = bms_diag_set(diag, BMS_ERR_NOMEM, "body: out of memory "
                           "while inflating");
        return -1;
    default:
        *rc = bms_diag_set(diag, BMS_ERR_INVALID, "body: damaged gzip "
                           "stream (%s)", zs->msg != NULL ? zs->msg
                                                          : "bad data");
        return -1;
    }
}


enum bms_status bms__gunzip(const void *in, size_t len, size_t max_out,
                            struct bms_buf *out, struct bms_diag *diag)
{
    const unsigned char *p = in;
    size_t left = len;
    size_t start = out->len;
    enum bms_status rc = BMS_OK;
    z_stream zs;
    int step = 0;

    memset(&zs, 0, sizeof(zs));
    if (max_out == SIZE_MAX) {
        max_out--;
    }
    if (inflateInit2(&zs, GZIP_WINDOW) != Z_OK) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "body: out of memory "
                            "while inflating");
    }
    while (step == 0) {
        size_t produced = out->len - start;
        size_t room = next_room(produced, max_out);

        rc = bms_buf_reserve(out, room);
        if (rc != BMS_OK) {
            bms_diag_set(diag, rc, "body: out of memory while inflating");
            break;
        }
        feed(&zs, &p, &left);
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        step = inflate_step(&zs, left, &rc, diag);
        out->len += room - zs.avail_out;
        if (step >= 0 && out->len - start > max_out) {
            rc = bms_diag_set(diag, BMS_ERR_LIMIT, "body: larger than the "
                              "limit of %zu bytes once inflated", max_out);
            step = -1;
        }
    }
    inflateEnd(&zs);
    if (rc != BMS_OK) {
        roll_back(out, start);
        return rc;
    }
    out->data[out->len] = '\0';
    return BMS_OK;
}


/* Whether a q-value (RFC 9110: "0" to "1" with up to three decimals) is
 * above zero; a malformed one counts as zero. */
static int q_positive(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1')) {
        return 0;
    }
    if (s[0] == '1') {
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if (s[i] >= '1' && s[i] <= '9') {
            return 1;
        }
    }
    return 0;
}


/* The q-value of one list element's parameters (after the coding):
 * 1 when it has none. */
static int element_q(const char *s, size_t n)
{
    int q = 1;
    size_t i = 0;

    while (i < n) {
        size_t j;

        while (i < n && (s[i] == ';' || s[i] == ' ' || s[i] == '\t')) {
            i++;
        }
        j = i;
        while (j < n && s[j] != ';') {
            j++;
        }
        if (j - i >= 2 && (s[i] == 'q' || s[i] == 'Q') && s[i + 1] == '=') {
            size_t end = j;

            while (end > i + 2 && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
                end--;
            }
            q = q_positive(s + i + 2, end - i - 2);
        }
        i = j;
    }
    return q;
}


static int coding_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}


int bms__gzip_accepted(const char *accept_encoding)
{
    const char *s = accept_encoding;
    int gzip_q = -1;             /* -1: not named */
    int star_q = -1;

    while (s != NULL && *s != '\0') {
        size_t n = strcspn(s, ",");
        size_t c = 0;
        size_t k;

        while (c < n && (s[c] == ' ' || s[c] == '\t')) {
            c++;
        }
        k = c;
        while (k < n && s[k] != ';' && s[k] != ' ' && s[k] != '\t') {
            k++;
        }
        if (coding_is(s + c, k - c, "gzip") ||
            coding_is(s + c, k - c, "x-gzip")) {
            gzip_q = element_q(s + k, n - k);
        } else if (coding_is(s + c, k - c, "*")) {
            star_q = element_q(s + k, n - k);
        }
        s += n;
        if (*s == ',') {
            s++;
        }
    }
    return gzip_q >= 0 ? gzip_q : star_q > 0;
}
