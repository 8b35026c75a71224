/*
 * Internal to the server: the small JSON writer the v2 responses are built
 * with.  Errors are sticky: the first failed append is kept in rc and every
 * later write does nothing, so a response is written straight through and
 * checked once at the end.
 */
#ifndef BMS_SERVER_V2_JSON_H
#define BMS_SERVER_V2_JSON_H

#include "bms/base.h"
#include "bms/tensor.h"

struct bms__json {
    struct bms_buf *buf;
    enum bms_status rc;          /* BMS_OK until an append fails */
};

/* Append text as it is (punctuation, keys known to need no escaping). */
void bms__json_raw(struct bms__json *j, const char *text);

/*
 * Append s (len bytes) as a JSON string: quotes, backslashes and control
 * characters escaped, each byte that is not part of valid UTF-8 replaced by
 * U+FFFD.  A NULL s writes "".
 */
void bms__json_string(struct bms__json *j, const char *s, size_t len);

/* bms__json_string of a NUL-terminated string; NULL writes "". */
void bms__json_cstr(struct bms__json *j, const char *s);

void bms__json_int(struct bms__json *j, int64_t v);

/*
 * Append one tensor element of dtype at p as a JSON value: integers in
 * full, FP32 with 9 significant digits and FP64 with 17 (both round-trip),
 * BOOL as true/false.  NaN and infinities are not JSON and become null.
 */
void bms__json_element(struct bms__json *j, enum bms_dtype dtype,
                       const void *p);

/*
 * Write element p of dtype as text into buf (size >= 32): as
 * bms__json_element, but NaN and infinities as "nan", "inf", "-inf".
 */
void bms__v2_format_element(char *buf, size_t size, enum bms_dtype dtype,
                            const void *p);

/* Element p of dtype as a double (for comparing scores). */
double bms__v2_element_double(enum bms_dtype dtype, const void *p);

/* Append dims as a JSON array, "[2,28,28]". */
void bms__json_dims(struct bms__json *j, const int64_t *dims, int n_dims);

#endif
