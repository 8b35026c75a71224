/*
 * The JSON writer of the v2 layer: escaped strings, tensor elements and
 * dims appended to a struct bms_buf.  Strings from models and requests may
 * hold any bytes; the writer always produces valid JSON in valid UTF-8.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "server/v2_json.h"


static void append(struct bms__json *j, const void *data, size_t size)
{
    if (j->rc == BMS_OK) {
        j->rc = bms_buf_append(j->buf, data, size);
    }
}


void bms__json_raw(struct bms__json *j, const char *text)
{
    append(j, text, strlen(text));
}


/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when the
 * byte at s does not start one (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)) {
        return 0;
    }
    return len;
}


/* The escape for byte c, or NULL when c goes out as it is. */
static const char *escape_of(unsigned char c, char *tmp, size_t size)
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default:
        break;
    }
    if (c < 0x20) {
        snprintf(tmp, size, "\\u%04x", c);
        return tmp;
    }
    return NULL;
}


void bms__json_string(struct bms__json *j, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0;                  /* start of the bytes not yet written */
    size_t i = 0;
    char tmp[8];

    append(j, "\"", 1);
    while (s != NULL && i < len) {
        size_t n = utf8_len(u + i, len - i);
        const char *esc = n == 1 ? escape_of(u[i], tmp, sizeof(tmp)) : NULL;

        if (n > 0 && esc == NULL) {
            i += n;
            continue;
        }
        append(j, s + run, i - run);
        bms__json_raw(j, n == 0 ? "\\ufffd" : esc);
        i++;
        run = i;
    }
    if (s != NULL) {
        append(j, s + run, len - run);
    }
    append(j, "\"", 1);
}


void bms__json_cstr(struct bms__json *j, const char *s)
{
    bms__json_string(j, s, s != NULL ? strlen(s) : 0);
}


void bms__json_int(struct bms__json *j, int64_t v)
{
    char tmp[32];

    snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    bms__json_raw(j, tmp);
}


/* IEEE 754 binary16 to float, exactly. */
static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f;
    int frac = h & 0x3ff;
    float v;

    if (exp == 0) {
        v = ldexpf((float)frac, -24);
    } else if (exp == 31) {
        v = frac ? NAN : INFINITY;
    } else {
        v = ldexpf((float)(frac | 0x400), exp - 25);
    }
    return (h & 0x8000) ? -v : v;
}


double bms__v2_element_double(enum bms_dtype dtype, const void *p)
{
    union {
        float f;
        double d;
        int8_t i8;
        uint8_t u8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
    } v;

    memcpy(&v, p, bms_dtype_size(dtype));
    switch (dtype) {
    case BMS_DTYPE_F32: return v.f;
    case BMS_DTYPE_F64: return v.d;
    case BMS_DTYPE_F16: return half_to_float(v.u16);
    case BMS_DTYPE_I8: return v.i8;
    case BMS_DTYPE_U8: return v.u8;
    case BMS_DTYPE_BOOL: return v.u8 != 0;
    case BMS_DTYPE_I16: return v.i16;
    case BMS_DTYPE_U16: return v.u16;
    case BMS_DTYPE_I32: return v.i32;
    case BMS_DTYPE_U32: return v.u32;
    case BMS_DTYPE_I64: return (double)v.i64;
    case BMS_DTYPE_U64: return (double)v.u64;
    default: return 0.0;
    }
}


/* A floating-point value as text: "%.9g" for FP32 and FP16, "%.17g" for
 * FP64.  Returns 0 when v is not finite, after writing nan, inf or -inf. */
static int format_float(char *buf, size_t size, double v, int digits)
{
    if (isnan(v)) {
        snprintf(buf, size, "nan");
        return 0;
    }
    if (isinf(v)) {
        snprintf(buf, size, "%s", v < 0 ? "-inf" : "inf");
        return 0;
    }
    snprintf(buf, size, "%.*g", digits, v);
    return 1;
}


/* Returns 0 when the text is not a JSON number (nan, inf). */
static int format_element(char *buf, size_t size, enum bms_dtype dtype,
                          const void *p)
{
    int64_t i;
    uint64_t u;

    switch (dtype) {
    case BMS_DTYPE_F32:
    case BMS_DTYPE_F16:
        return format_float(buf, size, bms__v2_element_double(dtype, p), 9);
    case BMS_DTYPE_F64:
        return format_float(buf, size, bms__v2_element_double(dtype, p), 17);
    case BMS_DTYPE_BOOL:
        snprintf(buf, size, "%s", *(const uint8_t *)p ? "true" : "false");
        return 1;
    case BMS_DTYPE_I64:
        memcpy(&i, p, sizeof(i));
        snprintf(buf, size, "%" PRId64, i);
        return 1;
    case BMS_DTYPE_U64:
        memcpy(&u, p, sizeof(u));
        snprintf(buf, size, "%" PRIu64, u);
        return 1;
    default:
        /* The narrower integers are exact in a double. */
        snprintf(buf, size, "%.0f", bms__v2_element_double(dtype, p));
        return 1;
    }
}


void bms__v2_format_element(char *buf, size_t size, enum bms_dtype dtype,
                            const void *p)
{
    format_element(buf, size, dtype, p);
}


void bms__json_element(struct bms__json *j, enum bms_dtype dtype,
                       const void *p)
{
    char tmp[40];

    if (!format_element(tmp, sizeof(tmp), dtype, p)) {
        bms__json_raw(j, "null");
        return;
    }
    bms__json_raw(j, tmp);
}


void bms__json_dims(struct bms__json *j, const int64_t *dims, int n_dims)
{
    bms__json_raw(j, "[");
    for (int i = 0; i < n_dims; i++) {
        if (i > 0) {
            bms__json_raw(j, ",");
        }
        bms__json_int(j, dims[i]);
    }
    bms__json_raw(j, "]");
}
