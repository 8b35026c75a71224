/*
 * The streaming parser for v2 infer requests.  yajl's callback parser hands
 * over one JSON event at a time and a small state machine places it.  The
 * numbers of a "data" array go straight into the input's typed buffer as
 * they arrive; the buffer grows by doubling, so a request is parsed in time
 * and memory linear in its size, with no allocation per element.
 *
 * A "data" of plain number arrays for a numeric input, the bulk of a JSON
 * request, is read without yajl (read_data): yajl's lexer and one
 * callback per number were most of a request's parsing time.
 *
 * Keys may come in any order.  When "data" comes before "datatype", the
 * number texts are kept in one side buffer and converted when the input's
 * object closes, with the same checks and messages as the direct path.
 *
 * With the binary tensor data extension the JSON is only the head of the
 * body: an input giving parameters.binary_data_size takes that many bytes
 * of the binary part that follows, in the order of "inputs", copied once
 * into its buffer when its object closes.  Every byte of the binary part
 * must be taken, no more.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "server/v2_number.h"
#include "server/v2_parse.h"

/* Longest number text accepted; the shortest round-trip form of any FP64
 * needs 24 characters. */
#define NUMBER_MAX 128

enum state {
    ST_ROOT,                     /* before the top-level object */
    ST_TOP,                      /* in the top-level object, at a key */
    ST_TOP_VALUE,                /* after a top-level key */
    ST_INPUTS,                   /* in "inputs": an object or ']' */
    ST_INPUT,                    /* in one input object, at a key */
    ST_INPUT_VALUE,
    ST_SHAPE,                    /* in "shape" */
    ST_DATA,                     /* in "data", at any depth */
    ST_DATA_READ,                /* "data" read by read_data; yajl's null
                                  * in its place comes next */
    ST_OUTPUTS,                  /* in "outputs": an object or ']' */
    ST_OUTPUT,
    ST_OUTPUT_VALUE,
    ST_OUTPUT_PARAMS,            /* in outputs[j].parameters, at a key */
    ST_OUTPUT_PARAM_VALUE,
    ST_INPUT_PARAMS,             /* in inputs[i].parameters, at a key */
    ST_INPUT_PARAM_VALUE,
    ST_PARAMS,                   /* in the top-level "parameters" */
    ST_PARAM_VALUE,
    ST_DONE
};

enum key {
    KEY_OTHER,
    KEY_ID,
    KEY_INPUTS,
    KEY_OUTPUTS,
    KEY_PARAMETERS,
    KEY_NAME,
    KEY_DATATYPE,
    KEY_SHAPE,
    KEY_DATA,
    KEY_CLASSIFICATION,
    KEY_RAW,
    KEY_TIMEOUT_MS,
    KEY_BINARY_DATA,
    KEY_BINARY_DATA_SIZE,
    KEY_BINARY_DATA_OUTPUT
};

static const char *const key_names[] = {
    "", "id", "inputs", "outputs", "parameters", "name", "datatype",
    "shape", "data", "classification", "raw", "timeout_ms", "binary_data",
    "binary_data_size", "binary_data_output",
};

enum event_type {
    EV_NULL,
    EV_BOOL,
    EV_NUMBER,
    EV_STRING,
    EV_MAP_START,
    EV_KEY,
    EV_MAP_END,
    EV_ARRAY_START,
    EV_ARRAY_END
};

struct event {
    enum event_type type;
    const char *text;            /* NUMBER, STRING, KEY; not NUL-ended */
    size_t len;
    int flag;                    /* BOOL */
};

/* Which fields the current input or output object has given. */
struct seen {
    int name;
    int datatype;
    int shape;
    int data;
    int classification;
    int raw;
    int binary;                  /* binary_data, binary_data_size */
    int params;                  /* "parameters" */
};

struct parser {
    enum state state;
    enum key key;                /* the key whose value comes next */
    int skip;                    /* open containers of an ignored value */
    enum state resume;           /* where to go when the skip ends */
    int seen_id;
    int seen_inputs;
    int seen_outputs;
    int seen_timeout;
    int seen_binary_output;
    int seen_params;             /* the top-level "parameters" */
    struct seen seen;
    int n_open;                  /* open arrays inside "data" */
    int max_open;
    int leaf_level;              /* nesting level of the numbers, 0 unset */
    int64_t level_len[BMS_MAX_DIMS];   /* length at each level, -1 unset */
    int64_t level_count[BMS_MAX_DIMS]; /* elements so far at each level */
    int data_levels;             /* nesting depth of the finished data */
    struct bms_buf pending;      /* number texts awaiting the datatype */
    int64_t n_pending;
    int inputs_cap;
    int outputs_cap;
    int64_t max_elems;           /* elements one input may hold */
    size_t body_len;             /* bytes */
    size_t fed;                  /* where yajl's current piece of the body
                                  * starts, bytes */
    const char *binary;          /* the binary part; NULL: none */
    size_t binary_len;           /* bytes */
    size_t binary_used;          /* bytes the inputs so far took */
    struct bms__v2_request *req;
    enum bms_status rc;
    struct bms_diag *diag;
    char path[96];
};


static struct bms__v2_input *cur_input(struct parser *p)
{
    return &p->req->inputs[p->req->n_inputs - 1];
}


static struct bms__v2_output *cur_output(struct parser *p)
{
    return &p->req->outputs[p->req->n_outputs - 1];
}


/* The field the parser stands at, "inputs[2].shape", for messages. */
static const char *field(struct parser *p)
{
    const char *key = key_names[p->key];

    switch (p->state) {
    case ST_INPUT_VALUE:
    case ST_SHAPE:
    case ST_DATA:
        snprintf(p->path, sizeof(p->path), "inputs[%d].%s",
                 p->req->n_inputs - 1, key);
        break;
    case ST_OUTPUT_VALUE:
        snprintf(p->path, sizeof(p->path), "outputs[%d].%s",
                 p->req->n_outputs - 1, key);
        break;
    case ST_OUTPUT_PARAM_VALUE:
        snprintf(p->path, sizeof(p->path), "outputs[%d].parameters.%s",
                 p->req->n_outputs - 1, key);
        break;
    case ST_INPUT_PARAM_VALUE:
        snprintf(p->path, sizeof(p->path), "inputs[%d].parameters.%s",
                 p->req->n_inputs - 1, key);
        break;
    case ST_PARAM_VALUE:
        snprintf(p->path, sizeof(p->path), "parameters.%s", key);
        break;
    default:
        snprintf(p->path, sizeof(p->path), "%s", key);
        break;
    }
    return p->path;
}


/* Record the first error; the callbacks return its result (0) to yajl,
 * which stops parsing. */
static int fail(struct parser *p, enum bms_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, enum bms_status rc, const char *fmt, ...)
{
    va_list ap;

    p->rc = rc;
    if (p->diag != NULL) {
        va_start(ap, fmt);
        vsnprintf(p->diag->msg, sizeof(p->diag->msg), fmt, ap);
        va_end(ap);
    }
    return 0;
}


static int fail_nomem(struct parser *p)
{
    return fail(p, BMS_ERR_NOMEM, "out of memory while parsing the request");
}


static int expected(struct parser *p, const char *what)
{
    return fail(p, BMS_ERR_INVALID, "%s: expected %s", field(p), what);
}


static int given_twice(struct parser *p, int *seen)
{
    if (*seen) {
        return fail(p, BMS_ERR_INVALID, "%s: given twice", field(p));
    }
    *seen = 1;
    return 1;
}


static char *copy_text(const char *text, size_t len)
{
    char *s = malloc(len + 1);

    if (s != NULL) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}


static enum key key_from_text(const char *text, size_t len)
{
    for (size_t i = 1; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
        if (strlen(key_names[i]) == len && memcmp(key_names[i], text, len)
            == 0) {
            return (enum key)i;
        }
    }
    return KEY_OTHER;
}


/* Grow an array of items of size item_size to hold one more; *cap counts
 * items. */
static int grow(void **items, int *cap, int n, size_t item_size)
{
    int new_cap = *cap ? *cap * 2 : 4;
    void *q;

    if (n < *cap) {
        return 1;
    }
    q = realloc(*items, (size_t)new_cap * item_size);
    if (q == NULL) {
        return 0;
    }
    memset((char *)q + (size_t)*cap * item_size, 0,
           (size_t)(new_cap - *cap) * item_size);
    *items = q;
    *cap = new_cap;
    return 1;
}


/*
 * Skip the value that starts with ev (an ignored key's value), then go on in
 * state resume.
 */
static int skip_value(struct parser *p, const struct event *ev,
                      enum state resume)
{
    p->state = resume;
    if (ev->type == EV_MAP_START || ev->type == EV_ARRAY_START) {
        p->skip = 1;
    }
    return 1;
}


/* ---- numbers ---- */

/* The common case without strtoll: an optional '-' and at most 18 digits,
 * which cannot overflow int64.  Returns 0 when s is anything else. */
static int parse_short_int(const char *s, int64_t *out)
{
    int neg = s[0] == '-';
    int64_t v = 0;
    int n = 0;

    for (const char *c = s + neg; *c != '\0'; c++, n++) {
        if (*c < '0' || *c > '9' || n == 18) {
            return 0;
        }
        v = v * 10 + (*c - '0');
    }
    if (n == 0) {
        return 0;
    }
    *out = neg ? -v : v;
    return 1;
}


/* Parse an integer text (JSON syntax, NUL-ended).  Returns 0, 1 when it is
 * not an integer, 2 when it does not fit int64. */
static int parse_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (parse_short_int(s, out)) {
        return 0;
    }
    if (strpbrk(s, ".eE") != NULL) {
        return 1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0') {
        return 1;
    }
    if (errno == ERANGE) {
        return 2;
    }
    *out = (int64_t)v;
    return 0;
}


/* As parse_int64 for UINT64: 2 also for a negative value. */
static int parse_uint64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    int64_t neg;
    int r;

    if (s[0] == '-') {
        r = parse_int64(s, &neg);
        if (r == 0 && neg != 0) {
            r = 2;
        }
        if (r == 0) {
            *out = 0;
        }
        return r;
    }
    if (strpbrk(s, ".eE") != NULL) {
        return 1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end != '\0') {
        return 1;
    }
    if (errno == ERANGE) {
        return 2;
    }
    *out = (uint64_t)v;
    return 0;
}


/* Parse a floating-point text with strtod.  Returns 0, 1 when it is not
 * a number, or 2 when it overflows FP64; an underflow gives the nearest
 * representable value. */
static int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (*end != '\0') {
        return 1;
    }
    if (errno == ERANGE && fabs(v) > 1.0) {
        return 2;
    }
    *out = v;
    return 0;
}


/* Store i, already range-checked, as an integer of dtype at the aligned
 * dst. */
static void put_int(enum bms_dtype dtype, int64_t i, void *dst)
{
    switch (dtype) {
    case BMS_DTYPE_I8:
        *(int8_t *)dst = (int8_t)i;
        break;
    case BMS_DTYPE_U8:
        *(uint8_t *)dst = (uint8_t)i;
        break;
    case BMS_DTYPE_I16:
        *(int16_t *)dst = (int16_t)i;
        break;
    case BMS_DTYPE_U16:
        *(uint16_t *)dst = (uint16_t)i;
        break;
    case BMS_DTYPE_I32:
        *(int32_t *)dst = (int32_t)i;
        break;
    case BMS_DTYPE_U32:
        *(uint32_t *)dst = (uint32_t)i;
        break;
    default:
        *(int64_t *)dst = i;
        break;
    }
}


/* FP32 or FP64 from the number text s (as yajl passes it): without
 * strtod where v2_number.c can be sure of its result.  Returns 0, or 2
 * out of range. */
static int convert_float(enum bms_dtype dtype, const char *s, void *dst)
{
    size_t len = strlen(s);
    struct bms__v2_number num;
    int whole = bms__v2_number_read(s, s + len, &num) == len;
    double d;
    float f;
    int r = 0;

    if (whole && dtype == BMS_DTYPE_F32 && bms__v2_number_f32(&num, &f)) {
        memcpy(dst, &f, sizeof(f));
        return 0;
    }
    if (!whole || !bms__v2_number_f64(&num, &d)) {
        r = parse_double(s, &d);
    }
    if (r != 0 || dtype == BMS_DTYPE_F64) {
        if (r == 0) {
            memcpy(dst, &d, sizeof(d));
        }
        return r;
    }
    /* Above FLT_MAX plus half an ulp a float would round to infinity. */
    if (fabs(d) >= 0x1.ffffffp+127) {
        return 2;
    }
    f = (float)d;
    memcpy(dst, &f, sizeof(f));
    return 0;
}


static int convert_int(enum bms_dtype dtype, const char *s, void *dst)
{
    static const struct {
        enum bms_dtype dtype;
        int64_t min;
        int64_t max;
    } ranges[] = {
        {BMS_DTYPE_I8, INT8_MIN, INT8_MAX},
        {BMS_DTYPE_I16, INT16_MIN, INT16_MAX},
        {BMS_DTYPE_I32, INT32_MIN, INT32_MAX},
        {BMS_DTYPE_I64, INT64_MIN, INT64_MAX},
        {BMS_DTYPE_U8, 0, UINT8_MAX},
        {BMS_DTYPE_U16, 0, UINT16_MAX},
        {BMS_DTYPE_U32, 0, UINT32_MAX},
    };
    int64_t i;
    int r = parse_int64(s, &i);

    if (r != 0) {
        return r;
    }
    for (size_t k = 0; k < sizeof(ranges) / sizeof(ranges[0]); k++) {
        if (ranges[k].dtype == dtype &&
            (i < ranges[k].min || i > ranges[k].max)) {
            return 2;
        }
    }
    put_int(dtype, i, dst);
    return 0;
}


/* Convert the number text s to dtype into dst.  Returns 0, 1 for a
 * non-integer given to an integer datatype, 2 for out of range. */
static int convert_number(enum bms_dtype dtype, const char *s, void *dst)
{
    uint64_t u;
    int r;

    switch (dtype) {
    case BMS_DTYPE_F32:
    case BMS_DTYPE_F64:
        return convert_float(dtype, s, dst);
    case BMS_DTYPE_U64:
        r = parse_uint64(s, &u);
        if (r == 0) {
            memcpy(dst, &u, sizeof(u));
        }
        return r;
    default:
        return convert_int(dtype, s, dst);
    }
}


/*
 * Append element number index (a number's text or "true"/"false") to
 * in->data, converted to in->dtype.  Returns 1, or 0 with the error set.
 */
static int store_element(struct parser *p, struct bms__v2_input *in,
                         int64_t index, const char *s, size_t len)
{
    const char *type = bms_dtype_v2_name(in->dtype);
    int is_bool = s[0] == 't' || s[0] == 'f';
    int n = p->req->n_inputs - 1;
    union {
        unsigned char bytes[8];
        int64_t align;
    } value;
    int r;

    if (in->dtype == BMS_DTYPE_BOOL) {
        if (!is_bool) {
            return fail(p, BMS_ERR_INVALID, "inputs[%d].data[%lld]: expected"
                        " true or false for BOOL, got %.*s", n,
                        (long long)index, (int)len, s);
        }
        value.bytes[0] = s[0] == 't';
    } else if (is_bool) {
        return fail(p, BMS_ERR_INVALID, "inputs[%d].data[%lld]: expected a"
                    " number for %s, got %s", n, (long long)index, type, s);
    } else {
        r = convert_number(in->dtype, s, &value);
        if (r == 1) {
            return fail(p, BMS_ERR_INVALID, "inputs[%d].data[%lld]: expected"
                        " an integer for %s, got %s", n, (long long)index,
                        type, s);
        }
        if (r == 2) {
            return fail(p, BMS_ERR_INVALID, "inputs[%d].data[%lld]: %s out"
                        " of range for %s", n, (long long)index, s, type);
        }
    }
    if (bms_buf_append(&in->data, value.bytes, bms_dtype_size(in->dtype))
        != BMS_OK) {
        return fail_nomem(p);
    }
    return 1;
}


/* ---- the nesting of "data" ---- */

static void data_begin(struct parser *p)
{
    p->n_open = 1;
    p->max_open = 1;
    p->leaf_level = 0;
    for (int i = 0; i < BMS_MAX_DIMS; i++) {
        p->level_len[i] = -1;
        p->level_count[i] = 0;
    }
    bms_buf_reset(&p->pending);
    p->n_pending = 0;
}


static int not_rectangular(struct parser *p)
{
    return fail(p, BMS_ERR_INVALID, "%s: nested arrays are not rectangular",
                field(p));
}


static int data_open(struct parser *p)
{
    if (p->leaf_level != 0 && p->n_open >= p->leaf_level) {
        return not_rectangular(p);
    }
    if (p->n_open >= BMS_MAX_DIMS) {
        return fail(p, BMS_ERR_INVALID, "%s: nested more than %d deep",
                    field(p), BMS_MAX_DIMS);
    }
    p->level_count[p->n_open - 1]++;
    p->level_count[p->n_open] = 0;
    p->n_open++;
    if (p->n_open > p->max_open) {
        p->max_open = p->n_open;
    }
    return 1;
}


/* Close one array of "data"; when the outermost closes, "data" is done. */
static int data_close(struct parser *p)
{
    int level = p->n_open - 1;

    if (p->level_len[level] < 0) {
        p->level_len[level] = p->level_count[level];
    } else if (p->level_len[level] != p->level_count[level]) {
        return not_rectangular(p);
    }
    p->n_open--;
    if (p->n_open > 0) {
        return 1;
    }
    if (p->leaf_level != 0 && p->leaf_level != p->max_open) {
        return not_rectangular(p);
    }
    p->data_levels = p->max_open;
    p->state = ST_INPUT;
    return 1;
}


/* Count element number index of "data" at the current nesting: its
 * level must be the leaves' and the input must have room for it. */
static inline int count_element(struct parser *p, int64_t index)
{
    if (p->leaf_level == 0) {
        p->leaf_level = p->n_open;
    } else if (p->leaf_level != p->n_open) {
        return not_rectangular(p);
    }
    p->level_count[p->n_open - 1]++;
    if (index >= p->max_elems) {
        return fail(p, BMS_ERR_LIMIT, "%s: more than %lld elements",
                    field(p), (long long)p->max_elems);
    }
    return 1;
}


/* One number or boolean of "data". */
static int data_element(struct parser *p, const struct event *ev)
{
    struct bms__v2_input *in = cur_input(p);
    char text[NUMBER_MAX];
    size_t len;
    int64_t index = in->n_elems + p->n_pending;

    if (!count_element(p, index)) {
        return 0;
    }
    if (ev->type == EV_NUMBER && p->seen.datatype &&
        in->dtype == BMS_DTYPE_F32 && ev->len < sizeof(text) &&
        in->data.cap - in->data.len >= sizeof(float)) {
        /* The common case, a float in room made from the shape, written
         * in place; a failure takes the general path for its message. */
        memcpy(text, ev->text, ev->len);
        text[ev->len] = '\0';
        if (convert_float(BMS_DTYPE_F32, text,
                          in->data.data + in->data.len) == 0) {
            in->data.len += sizeof(float);
            in->n_elems++;
            return 1;
        }
    }
    if (ev->type == EV_BOOL) {
        len = (size_t)snprintf(text, sizeof(text), "%s",
                               ev->flag ? "true" : "false");
    } else if (ev->len >= sizeof(text)) {
        return fail(p, BMS_ERR_INVALID, "%s[%lld]: number longer than %d"
                    " characters", field(p), (long long)index,
                    NUMBER_MAX - 1);
    } else {
        memcpy(text, ev->text, ev->len);
        text[ev->len] = '\0';
        len = ev->len;
    }

    /* Without the datatype yet, keep the text for the input's end. */
    if (!p->seen.datatype) {
        p->n_pending++;
        if (bms_buf_append(&p->pending, text, len + 1) != BMS_OK) {
            return fail_nomem(p);
        }
        return 1;
    }
    if (!store_element(p, in, index, text, len)) {
        return 0;
    }
    in->n_elems++;
    return 1;
}


static int step_data(struct parser *p, const struct event *ev)
{
    switch (ev->type) {
    case EV_ARRAY_START:
        return data_open(p);
    case EV_ARRAY_END:
        return data_close(p);
    case EV_NUMBER:
    case EV_BOOL:
        return data_element(p, ev);
    default:
        break;
    }
    return fail(p, BMS_ERR_INVALID, "%s[%lld]: expected a number or a"
                " boolean", field(p),
                (long long)(cur_input(p)->n_elems + p->n_pending));
}


/* ---- "data" read around yajl ---- */

/*
 * The fast path for the common "data": nested or flat arrays of numbers
 * for a numeric input whose datatype came before it.  The text after
 * the key's ':' is read here and yajl is given "null" in its place
 * (feed_yajl).  The calls are those the events would make (data_open,
 * data_close, count_element), so every check and message is the same;
 * what is saved is yajl's lexer, a callback and a copy per number.
 *
 * Only plain JSON is read: '[', ']', ',', numbers and JSON's four
 * whitespace characters.  At anything else (a string, true, a comment, a
 * syntax error, a number that strtod must convert and that then fails)
 * read_data undoes what it did and yajl reads the array from its start,
 * so that malformed text gets yajl's message.  A check that fails (nesting
 * not rectangular, too many elements) fails the request as the events
 * would have, at the same element: the text before it was plain JSON.
 */

static const char *skip_space(const char *c, const char *end)
{
    while (c < end && (*c == ' ' || *c == '\n' || *c == '\r' ||
                       *c == '\t')) {
        c++;
    }
    return c;
}


/* Whether the parser stands where read_data can take the value. */
static int at_plain_data(struct parser *p)
{
    enum bms_dtype dtype;

    if (p->rc != BMS_OK || p->skip != 0 || p->state != ST_INPUT_VALUE ||
        p->key != KEY_DATA || !p->seen.datatype || p->seen.data) {
        return 0;
    }
    dtype = cur_input(p)->dtype;
    return dtype != BMS_DTYPE_BOOL;
}


/* One number of "data" at *at: 1 read (*at moves past it), 0 failed with
 * the error set, -1 not read here.  What follows it is read_data's to
 * check: only whitespace, ',' or ']'. */
static int read_number(struct parser *p, struct bms__v2_input *in,
                       size_t elem_size, const char **at, const char *end)
{
    const char *c = *at;
    struct bms__v2_number num;
    size_t n = bms__v2_number_read(c, end, &num);
    char *dst;
    char text[NUMBER_MAX];
    float f;
    double d;

    if (n == 0 || n >= NUMBER_MAX) {
        return -1;
    }
    if (!count_element(p, in->n_elems)) {
        return 0;
    }
    if (in->data.cap - in->data.len <= elem_size &&
        bms_buf_reserve(&in->data, elem_size) != BMS_OK) {
        return fail_nomem(p);
    }
    dst = in->data.data + in->data.len;
    if (in->dtype == BMS_DTYPE_F32 && bms__v2_number_f32(&num, &f)) {
        memcpy(dst, &f, sizeof(f));
    } else if (in->dtype == BMS_DTYPE_F64 && bms__v2_number_f64(&num, &d)) {
        memcpy(dst, &d, sizeof(d));
    } else {
        memcpy(text, c, n);
        text[n] = '\0';
        if (convert_number(in->dtype, text, dst) != 0) {
            return -1;
        }
    }
    in->data.len += elem_size;
    in->n_elems++;
    *at = c + n;
    return 1;
}


/*
 * Read the value of "data" at s, up to end.  Returns its length, or 0 when
 * it is left to yajl (nothing changed) or a check failed (p->rc set).
 */
static size_t read_data(struct parser *p, const char *s, const char *end)
{
    struct bms__v2_input *in = cur_input(p);
    size_t elem_size = bms_dtype_size(in->dtype);
    size_t data_len = in->data.len;
    const char *c = skip_space(s, end);
    int want_value = 1;          /* after '[' or ',' */
    int after_comma = 0;
    int r;

    if (c == end || *c != '[') {
        return 0;
    }
    p->seen.data = 1;
    data_begin(p);
    p->state = ST_DATA;
    for (c++; (c = skip_space(c, end)) < end; ) {
        if (*c == '[' && want_value) {
            if (!data_open(p)) {
                return 0;
            }
            c++;
            after_comma = 0;
        } else if (*c == ']' && !after_comma) {
            if (!data_close(p)) {
                return 0;
            }
            c++;
            if (p->n_open == 0) {
                p->state = ST_DATA_READ;
                return (size_t)(c - s);
            }
            want_value = 0;
        } else if (*c == ',' && !want_value) {
            c++;
            want_value = 1;
            after_comma = 1;
        } else if (want_value) {
            r = read_number(p, in, elem_size, &c, end);
            if (r == 0) {
                return 0;
            }
            if (r < 0) {
                break;
            }
            want_value = 0;
            after_comma = 0;
        } else {
            break;
        }
    }

    /* Not plain JSON: undo, for yajl. */
    in->data.len = data_len;
    in->n_elems = 0;
    p->seen.data = 0;
    p->state = ST_INPUT_VALUE;
    return 0;
}


/* ---- the end of an input object: checks that need all its fields ---- */

static int convert_pending(struct parser *p, struct bms__v2_input *in)
{
    const char *s = p->pending.data;

    for (int64_t i = 0; i < p->n_pending; i++) {
        size_t len = strlen(s);

        if (!store_element(p, in, i, s, len)) {
            return 0;
        }
        s += len + 1;
    }
    in->n_elems = p->n_pending;
    p->n_pending = 0;
    bms_buf_reset(&p->pending);
    return 1;
}


static void format_dims(char *buf, size_t size, const int64_t *dims,
                        int n_dims)
{
    size_t used = 0;

    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n_dims && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%lld",
                                 i ? ", " : "", (long long)dims[i]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, "]");
    }
}


/* Nested data must have the shape's rank and dims; flat data only the
 * shape's element count. */
static int check_data_shape(struct parser *p, struct bms__v2_input *in)
{
    int n = p->req->n_inputs - 1;
    int64_t numel = 1;
    char want[160];
    char got[160];

    for (int i = 0; i < in->n_dims; i++) {
        numel *= in->dims[i];
    }
    format_dims(want, sizeof(want), in->dims, in->n_dims);
    if (p->data_levels > 1) {
        int same = p->data_levels == in->n_dims;

        for (int i = 0; same && i < in->n_dims; i++) {
            same = p->level_len[i] == in->dims[i];
        }
        if (!same) {
            format_dims(got, sizeof(got), p->level_len, p->data_levels);
            return fail(p, BMS_ERR_INVALID, "inputs[%d].data: nested as %s,"
                        " shape is %s", n, got, want);
        }
    }
    if (in->n_elems != numel) {
        return fail(p, BMS_ERR_INVALID, "inputs[%d].data: %lld elements,"
                    " shape %s needs %lld", n, (long long)in->n_elems, want,
                    (long long)numel);
    }
    return 1;
}


/* The binary part's bytes of a BOOL tensor must each be 0 or 1. */
static int check_binary_bools(struct parser *p, const struct bms__v2_input *in)
{
    const unsigned char *b = (const unsigned char *)in->data.data;

    for (int64_t i = 0; i < in->n_elems; i++) {
        if (b[i] > 1) {
            return fail(p, BMS_ERR_INVALID, "inputs[%d]: binary data:"
                        " BOOL element %lld is byte %u, expected 0 or 1",
                        p->req->n_inputs - 1, (long long)i,
                        (unsigned)b[i]);
        }
    }
    return 1;
}


/*
 * An input whose data is in the binary part: its binary_data_size must be
 * exactly what its shape and datatype take and no more than is left; the
 * bytes (little-endian, row-major) are copied once into its buffer.
 */
static int take_binary(struct parser *p, struct bms__v2_input *in)
{
    int n = p->req->n_inputs - 1;
    size_t elem_size = bms_dtype_size(in->dtype);
    size_t left = p->binary_len - p->binary_used;
    int64_t numel = 1;
    size_t need;
    char dims[160];

    if (p->seen.data) {
        return fail(p, BMS_ERR_INVALID, "inputs[%d]: data and"
                    " parameters.binary_data_size exclude each other", n);
    }
    for (int i = 0; i < in->n_dims; i++) {
        numel *= in->dims[i];    /* bounded by the limit in shape_end */
    }
    need = (size_t)numel * elem_size;
    if (in->binary_size != need) {
        format_dims(dims, sizeof(dims), in->dims, in->n_dims);
        return fail(p, BMS_ERR_INVALID, "inputs[%d].parameters."
                    "binary_data_size: %zu bytes, but shape %s of %s takes"
                    " %zu", n, in->binary_size, dims,
                    bms_dtype_v2_name(in->dtype), need);
    }
    if (need > left) {
        return fail(p, BMS_ERR_INVALID, "inputs[%d].parameters."
                    "binary_data_size: %zu bytes, but only %zu bytes of"
                    " binary data are left", n, need, left);
    }
    bms_buf_reset(&in->data);
    if (bms_buf_append(&in->data, p->binary + p->binary_used, need)
        != BMS_OK) {
        return fail_nomem(p);
    }
    bms__v2_from_le(in->data.data, numel, elem_size);
    p->binary_used += need;
    in->n_elems = numel;
    return in->dtype != BMS_DTYPE_BOOL || check_binary_bools(p, in);
}


static int input_end(struct parser *p)
{
    struct bms__v2_input *in = cur_input(p);
    int n = p->req->n_inputs - 1;
    static const char *const names[] = {"name", "datatype", "shape", "data"};
    int seen[4];

    seen[0] = p->seen.name;
    seen[1] = p->seen.datatype;
    seen[2] = p->seen.shape;
    seen[3] = p->seen.data || p->seen.binary;
    for (int i = 0; i < 4; i++) {
        if (!seen[i]) {
            return fail(p, BMS_ERR_INVALID, "inputs[%d].%s: missing", n,
                        names[i]);
        }
    }
    if (p->seen.binary) {
        p->state = ST_INPUTS;
        return take_binary(p, in);
    }
    if (p->n_pending > 0 && !convert_pending(p, in)) {
        return 0;
    }
    if (!check_data_shape(p, in)) {
        return 0;
    }
    p->state = ST_INPUTS;
    return 1;
}


/* ---- input fields ---- */

static int set_datatype(struct parser *p, const struct event *ev)
{
    struct bms__v2_input *in = cur_input(p);
    enum bms_dtype dtype;

    if (ev->type != EV_STRING) {
        return expected(p, "a string");
    }
    if (ev->len == 5 && memcmp(ev->text, "BYTES", 5) == 0) {
        return fail(p, BMS_ERR_INVALID, "%s: BYTES inputs are not"
                    " supported", field(p));
    }
    if (bms_dtype_from_v2_name(ev->text, ev->len, &dtype) != 0) {
        return fail(p, BMS_ERR_INVALID, "%s: unknown datatype \"%.*s\"",
                    field(p), (int)(ev->len > 32 ? 32 : ev->len), ev->text);
    }
    if (dtype == BMS_DTYPE_F16) {
        return fail(p, BMS_ERR_INVALID, "%s: FP16 is not supported",
                    field(p));
    }
    in->dtype = dtype;
    if (!given_twice(p, &p->seen.datatype)) {
        return 0;
    }
    p->state = ST_INPUT;
    return 1;
}


static int shape_dim(struct parser *p, const struct event *ev)
{
    struct bms__v2_input *in = cur_input(p);
    char text[NUMBER_MAX];
    int64_t dim;

    if (ev->type == EV_ARRAY_END) {
        p->state = ST_INPUT;
        return 1;
    }
    if (in->n_dims >= BMS_MAX_DIMS) {
        return fail(p, BMS_ERR_INVALID, "%s: more than %d dimensions",
                    field(p), BMS_MAX_DIMS);
    }
    if (ev->type != EV_NUMBER || ev->len >= sizeof(text)) {
        return fail(p, BMS_ERR_INVALID, "%s[%d]: expected a non-negative"
                    " integer", field(p), in->n_dims);
    }
    memcpy(text, ev->text, ev->len);
    text[ev->len] = '\0';
    if (parse_int64(text, &dim) != 0 || dim < 0) {
        return fail(p, BMS_ERR_INVALID, "%s[%d]: expected a non-negative"
                    " integer, got %s", field(p), in->n_dims, text);
    }
    /* The element limit is judged on the whole shape, in shape_end. */
    in->dims[in->n_dims++] = dim;
    return 1;
}


/*
 * When "shape" closes: refuse a tensor over the limit before its data, and
 * size the buffer once when the data is still to come.  Zero dimensions
 * count as one in the bound, so that no product of the dims (the engine
 * takes them) can overflow.
 */
static int shape_end(struct parser *p)
{
    struct bms__v2_input *in = cur_input(p);
    int index = p->req->n_inputs - 1;
    int64_t bound = 1;
    int64_t numel;
    int overflow = 0;
    int has_zero = 0;

    for (int i = 0; i < in->n_dims; i++) {
        int64_t dim = in->dims[i] > 0 ? in->dims[i] : 1;

        overflow |= __builtin_mul_overflow(bound, dim, &bound);
        has_zero |= in->dims[i] == 0;
    }
    numel = has_zero ? 0 : bound;
    if (!has_zero && overflow) {
        return fail(p, BMS_ERR_LIMIT, "inputs[%d].shape: more than 2^63"
                    " elements, more than the limit of %lld", index,
                    (long long)p->max_elems);
    }
    if (numel > p->max_elems) {
        return fail(p, BMS_ERR_LIMIT, "inputs[%d].shape: %lld elements,"
                    " more than the limit of %lld", index, (long long)numel,
                    (long long)p->max_elems);
    }
    if (overflow || bound > p->max_elems) {
        return fail(p, BMS_ERR_LIMIT, "inputs[%d].shape: the dimensions"
                    " other than 0 multiply to more than the limit of %lld",
                    index, (long long)p->max_elems);
    }
    /* Each element takes at least two bytes of the body ("0,"), so a
     * small body cannot make the buffer large. */
    if (numel > (int64_t)(p->body_len / 2 + 1)) {
        numel = (int64_t)(p->body_len / 2 + 1);
    }
    if (!p->seen.data && !p->seen.binary && p->seen.datatype) {
        size_t size = (size_t)numel * bms_dtype_size(in->dtype);

        if (bms_buf_reserve(&in->data, size) != BMS_OK) {
            return fail_nomem(p);
        }
    }
    return 1;
}


static int step_shape(struct parser *p, const struct event *ev)
{
    if (!shape_dim(p, ev)) {
        return 0;
    }
    if (ev->type == EV_ARRAY_END) {
        return shape_end(p);
    }
    return 1;
}


static int step_input_value(struct parser *p, const struct event *ev)
{
    struct bms__v2_input *in = cur_input(p);

    switch (p->key) {
    case KEY_NAME:
        if (ev->type != EV_STRING) {
            return expected(p, "a string");
        }
        if (!given_twice(p, &p->seen.name)) {
            return 0;
        }
        in->name = copy_text(ev->text, ev->len);
        in->name_len = ev->len;
        p->state = ST_INPUT;
        return in->name != NULL ? 1 : fail_nomem(p);
    case KEY_DATATYPE:
        return set_datatype(p, ev);
    case KEY_SHAPE:
        if (ev->type != EV_ARRAY_START) {
            return expected(p, "an array of non-negative integers");
        }
        if (!given_twice(p, &p->seen.shape)) {
            return 0;
        }
        p->state = ST_SHAPE;
        return 1;
    case KEY_DATA:
        if (ev->type != EV_ARRAY_START) {
            return expected(p, "an array");
        }
        if (!given_twice(p, &p->seen.data)) {
            return 0;
        }
        data_begin(p);
        p->state = ST_DATA;
        return 1;
    case KEY_PARAMETERS:
        if (ev->type != EV_MAP_START) {
            return expected(p, "an object");
        }
        if (!given_twice(p, &p->seen.params)) {
            return 0;
        }
        p->state = ST_INPUT_PARAMS;
        return 1;
    default:
        return skip_value(p, ev, ST_INPUT);
    }
}


/* inputs[i].parameters: binary_data_size, the bytes of the input's data
 * in the binary part; other keys are ignored. */
static int step_input_param(struct parser *p, const struct event *ev)
{
    struct bms__v2_input *in = cur_input(p);
    char text[NUMBER_MAX];
    int64_t size;

    if (p->key != KEY_BINARY_DATA_SIZE) {
        return skip_value(p, ev, ST_INPUT_PARAMS);
    }
    if (ev->type != EV_NUMBER || ev->len >= sizeof(text)) {
        return expected(p, "a non-negative integer (bytes)");
    }
    memcpy(text, ev->text, ev->len);
    text[ev->len] = '\0';
    if (parse_int64(text, &size) != 0 || size < 0) {
        return fail(p, BMS_ERR_INVALID, "%s: expected a non-negative"
                    " integer (bytes), got %s", field(p), text);
    }
    if (p->binary == NULL) {
        return fail(p, BMS_ERR_INVALID, "%s: no binary part: the request"
                    " has no Inference-Header-Content-Length header",
                    field(p));
    }
    if (!given_twice(p, &p->seen.binary)) {
        return 0;
    }
    in->binary_size = (size_t)size;
    p->state = ST_INPUT_PARAMS;
    return 1;
}


/* ---- outputs ---- */

static int step_output_param(struct parser *p, const struct event *ev)
{
    struct bms__v2_output *o = cur_output(p);
    char text[NUMBER_MAX];
    int64_t k;

    switch (p->key) {
    case KEY_CLASSIFICATION:
        if (ev->type != EV_NUMBER || ev->len >= sizeof(text)) {
            return expected(p, "a positive integer");
        }
        memcpy(text, ev->text, ev->len);
        text[ev->len] = '\0';
        if (parse_int64(text, &k) != 0 || k <= 0) {
            return fail(p, BMS_ERR_INVALID, "%s: expected a positive"
                        " integer, got %s", field(p), text);
        }
        o->classification = k;
        if (!given_twice(p, &p->seen.classification)) {
            return 0;
        }
        p->state = ST_OUTPUT_PARAMS;
        return 1;
    case KEY_RAW:
        if (ev->type != EV_BOOL) {
            return expected(p, "true or false");
        }
        o->raw = ev->flag;
        if (!given_twice(p, &p->seen.raw)) {
            return 0;
        }
        p->state = ST_OUTPUT_PARAMS;
        return 1;
    case KEY_BINARY_DATA:
        if (ev->type != EV_BOOL) {
            return expected(p, "true or false");
        }
        o->binary = ev->flag;
        if (!given_twice(p, &p->seen.binary)) {
            return 0;
        }
        p->state = ST_OUTPUT_PARAMS;
        return 1;
    default:
        return skip_value(p, ev, ST_OUTPUT_PARAMS);
    }
}


static int step_output_value(struct parser *p, const struct event *ev)
{
    struct bms__v2_output *o = cur_output(p);

    switch (p->key) {
    case KEY_NAME:
        if (ev->type != EV_STRING) {
            return expected(p, "a string");
        }
        if (!given_twice(p, &p->seen.name)) {
            return 0;
        }
        o->name = copy_text(ev->text, ev->len);
        o->name_len = ev->len;
        p->state = ST_OUTPUT;
        return o->name != NULL ? 1 : fail_nomem(p);
    case KEY_PARAMETERS:
        if (ev->type != EV_MAP_START) {
            return expected(p, "an object");
        }
        if (!given_twice(p, &p->seen.params)) {
            return 0;
        }
        p->state = ST_OUTPUT_PARAMS;
        return 1;
    default:
        return skip_value(p, ev, ST_OUTPUT);
    }
}


static int output_end(struct parser *p)
{
    int n = p->req->n_outputs - 1;

    if (!p->seen.name) {
        return fail(p, BMS_ERR_INVALID, "outputs[%d].name: missing", n);
    }
    if (cur_output(p)->raw && cur_output(p)->classification > 0) {
        return fail(p, BMS_ERR_INVALID, "outputs[%d].parameters: raw and"
                    " classification exclude each other", n);
    }
    p->state = ST_OUTPUTS;
    return 1;
}


/* ---- the request's parameters ---- */

/* The most a request may ask to wait: one day, in milliseconds. */
#define TIMEOUT_MAX_MS ((int64_t)24 * 3600 * 1000)

static int step_param(struct parser *p, const struct event *ev)
{
    char text[NUMBER_MAX];
    int64_t ms;

    if (p->key == KEY_BINARY_DATA_OUTPUT) {
        if (ev->type != EV_BOOL) {
            return expected(p, "true or false");
        }
        p->req->binary_output = ev->flag;
        if (!given_twice(p, &p->seen_binary_output)) {
            return 0;
        }
        p->state = ST_PARAMS;
        return 1;
    }
    if (p->key != KEY_TIMEOUT_MS) {
        return skip_value(p, ev, ST_PARAMS);
    }
    if (ev->type != EV_NUMBER || ev->len >= sizeof(text)) {
        return expected(p, "a positive integer (milliseconds)");
    }
    memcpy(text, ev->text, ev->len);
    text[ev->len] = '\0';
    if (parse_int64(text, &ms) != 0 || ms <= 0 || ms > TIMEOUT_MAX_MS) {
        return fail(p, BMS_ERR_INVALID, "%s: expected an integer in 1..%lld"
                    " (milliseconds), got %s", field(p),
                    (long long)TIMEOUT_MAX_MS, text);
    }
    if (!given_twice(p, &p->seen_timeout)) {
        return 0;
    }
    p->req->timeout_ms = ms;
    p->state = ST_PARAMS;
    return 1;
}


/* ---- containers: objects and arrays of the request's structure ---- */

static int begin_input(struct parser *p)
{
    struct bms__v2_request *r = p->req;

    if (!grow((void **)&r->inputs, &p->inputs_cap, r->n_inputs,
              sizeof(r->inputs[0]))) {
        return fail_nomem(p);
    }
    r->n_inputs++;
    memset(&p->seen, 0, sizeof(p->seen));
    p->n_pending = 0;
    p->state = ST_INPUT;
    return 1;
}


static int begin_output(struct parser *p)
{
    struct bms__v2_request *r = p->req;

    if (!grow((void **)&r->outputs, &p->outputs_cap, r->n_outputs,
              sizeof(r->outputs[0]))) {
        return fail_nomem(p);
    }
    r->n_outputs++;
    r->outputs[r->n_outputs - 1].binary = -1;
    memset(&p->seen, 0, sizeof(p->seen));
    p->state = ST_OUTPUT;
    return 1;
}


static int step_top_value(struct parser *p, const struct event *ev)
{
    struct bms__v2_request *r = p->req;

    switch (p->key) {
    case KEY_ID:
        if (ev->type != EV_STRING) {
            return expected(p, "a string");
        }
        if (!given_twice(p, &p->seen_id)) {
            return 0;
        }
        r->id = copy_text(ev->text, ev->len);
        r->id_len = ev->len;
        p->state = ST_TOP;
        return r->id != NULL ? 1 : fail_nomem(p);
    case KEY_INPUTS:
        if (ev->type != EV_ARRAY_START) {
            return expected(p, "an array of objects");
        }
        if (!given_twice(p, &p->seen_inputs)) {
            return 0;
        }
        p->state = ST_INPUTS;
        return 1;
    case KEY_OUTPUTS:
        if (ev->type != EV_ARRAY_START) {
            return expected(p, "an array of objects");
        }
        if (!given_twice(p, &p->seen_outputs)) {
            return 0;
        }
        p->state = ST_OUTPUTS;
        return 1;
    case KEY_PARAMETERS:
        if (ev->type != EV_MAP_START) {
            return expected(p, "an object");
        }
        if (!given_twice(p, &p->seen_params)) {
            return 0;
        }
        p->state = ST_PARAMS;
        return 1;
    default:
        return skip_value(p, ev, ST_TOP);
    }
}


/* An object's key, or its end, in the states that stand at a key. */
static int step_key(struct parser *p, const struct event *ev,
                    enum state value_state)
{
    if (ev->type == EV_KEY) {
        p->key = key_from_text(ev->text, ev->len);
        p->state = value_state;
        return 1;
    }
    switch (p->state) {
    case ST_TOP:
        if (!p->seen_inputs) {
            return fail(p, BMS_ERR_INVALID, "inputs: missing");
        }
        p->state = ST_DONE;
        return 1;
    case ST_INPUT:
        return input_end(p);
    case ST_OUTPUT:
        return output_end(p);
    case ST_PARAMS:
        p->state = ST_TOP;
        return 1;
    case ST_INPUT_PARAMS:
        p->state = ST_INPUT;
        return 1;
    default:
        p->state = ST_OUTPUT;
        return 1;
    }
}


/* An element of "inputs" or "outputs": an object, or the array's end. */
static int step_list(struct parser *p, const struct event *ev,
                     const char *list, int n, int (*begin)(struct parser *))
{
    if (ev->type == EV_ARRAY_END) {
        p->state = ST_TOP;
        return 1;
    }
    if (ev->type != EV_MAP_START) {
        return fail(p, BMS_ERR_INVALID, "%s[%d]: expected an object", list,
                    n);
    }
    return begin(p);
}


/* Place one event.  The switch is the whole state machine, so it is kept
 * in one place. */
static int step(struct parser *p, const struct event *ev)
{
    if (p->skip > 0) {
        if (ev->type == EV_MAP_START || ev->type == EV_ARRAY_START) {
            p->skip++;
        } else if (ev->type == EV_MAP_END || ev->type == EV_ARRAY_END) {
            p->skip--;
        }
        return 1;
    }
    switch (p->state) {
    case ST_ROOT:
        if (ev->type != EV_MAP_START) {
            return fail(p, BMS_ERR_INVALID, "request: expected a JSON"
                        " object");
        }
        p->state = ST_TOP;
        return 1;
    case ST_TOP:
        return step_key(p, ev, ST_TOP_VALUE);
    case ST_TOP_VALUE:
        return step_top_value(p, ev);
    case ST_INPUTS:
        return step_list(p, ev, "inputs", p->req->n_inputs, begin_input);
    case ST_INPUT:
        return step_key(p, ev, ST_INPUT_VALUE);
    case ST_INPUT_VALUE:
        return step_input_value(p, ev);
    case ST_SHAPE:
        return step_shape(p, ev);
    case ST_DATA:
        return step_data(p, ev);
    case ST_DATA_READ:
        p->state = ST_INPUT;
        return 1;
    case ST_OUTPUTS:
        return step_list(p, ev, "outputs", p->req->n_outputs, begin_output);
    case ST_OUTPUT:
        return step_key(p, ev, ST_OUTPUT_VALUE);
    case ST_OUTPUT_VALUE:
        return step_output_value(p, ev);
    case ST_OUTPUT_PARAMS:
        return step_key(p, ev, ST_OUTPUT_PARAM_VALUE);
    case ST_OUTPUT_PARAM_VALUE:
        return step_output_param(p, ev);
    case ST_INPUT_PARAMS:
        return step_key(p, ev, ST_INPUT_PARAM_VALUE);
    case ST_INPUT_PARAM_VALUE:
        return step_input_param(p, ev);
    case ST_PARAMS:
        return step_key(p, ev, ST_PARAM_VALUE);
    case ST_PARAM_VALUE:
        return step_param(p, ev);
    case ST_DONE:
        break;
    }
    return fail(p, BMS_ERR_INTERNAL, "request: event after the end");
}


/* ---- yajl callbacks: each turns its arguments into an event ---- */

static int on_null(void *ctx)
{
    struct event ev = {EV_NULL, NULL, 0, 0};

    return step(ctx, &ev);
}


static int on_boolean(void *ctx, int value)
{
    struct event ev = {EV_BOOL, NULL, 0, value};

    return step(ctx, &ev);
}


static int on_number(void *ctx, const char *text, size_t len)
{
    struct event ev = {EV_NUMBER, text, len, 0};

    return step(ctx, &ev);
}


static int on_string(void *ctx, const unsigned char *text, size_t len)
{
    struct event ev = {EV_STRING, (const char *)text, len, 0};

    return step(ctx, &ev);
}


static int on_map_key(void *ctx, const unsigned char *text, size_t len)
{
    struct event ev = {EV_KEY, (const char *)text, len, 0};

    return step(ctx, &ev);
}


static int on_start_map(void *ctx)
{
    struct event ev = {EV_MAP_START, NULL, 0, 0};

    return step(ctx, &ev);
}


static int on_end_map(void *ctx)
{
    struct event ev = {EV_MAP_END, NULL, 0, 0};

    return step(ctx, &ev);
}


static int on_start_array(void *ctx)
{
    struct event ev = {EV_ARRAY_START, NULL, 0, 0};

    return step(ctx, &ev);
}


static int on_end_array(void *ctx)
{
    struct event ev = {EV_ARRAY_END, NULL, 0, 0};

    return step(ctx, &ev);
}


static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};


/* yajl's own message for malformed JSON, on one line. */
/* A syntax error of yajl's.  at_end: found when the text had ended
 * (yajl_complete_parse), so the JSON was cut short. */
static void syntax_error(struct parser *p, yajl_handle h, const char *body,
                         size_t len, int at_end)
{
    unsigned char *msg;
    size_t n;

    if (at_end) {
        if (p->binary != NULL) {
            fail(p, BMS_ERR_INVALID, "malformed JSON: the JSON part ends"
                 " inside the JSON, after the %zu bytes"
                 " Inference-Header-Content-Length gives", len);
        } else {
            fail(p, BMS_ERR_INVALID, "malformed JSON: the body ends inside"
                 " the JSON, after %zu bytes", len);
        }
        return;
    }
    msg = yajl_get_error(h, 0, (const unsigned char *)body, len);
    n = msg != NULL ? strcspn((const char *)msg, "\n") : 0;
    /* yajl counts the offending byte as consumed: its place from 1. */
    fail(p, BMS_ERR_INVALID, "malformed JSON at byte %zu: %.*s",
         p->fed + yajl_get_bytes_consumed(h), (int)n,
         msg != NULL ? (const char *)msg : "");
    if (msg != NULL) {
        yajl_free_error(h, msg);
    }
}


/* The next '"data"' followed by a ':' at or after c: the end of the ':',
 * or NULL. */
static const char *next_data_key(const char *c, const char *end)
{
    const char *colon;

    while ((c = memchr(c, '"', (size_t)(end - c))) != NULL) {
        if (end - c >= 6 && memcmp(c, "\"data\"", 6) == 0) {
            colon = skip_space(c + 6, end);
            if (colon < end && *colon == ':') {
                return colon + 1;
            }
        }
        c++;
    }
    return NULL;
}


/*
 * Give yajl the body, letting read_data take each input's "data" it can:
 * yajl gets the body in pieces that end after a '"data":', and where the
 * parser then stands at an input's data (yajl has just read the key, in
 * any other place the piece ends inside something else) read_data takes
 * the array and yajl reads "null" in its place.  fast: 0 gives yajl the
 * whole body at once.
 */
static yajl_status feed_yajl(struct parser *p, yajl_handle h,
                             const char *body, size_t len, int fast)
{
    const char *end = body + len;
    const char *c = body;
    const char *next;
    yajl_status st = yajl_status_ok;
    size_t n;

    while (fast && st == yajl_status_ok &&
           (next = next_data_key(c, end)) != NULL) {
        p->fed = (size_t)(c - body);
        st = yajl_parse(h, (const unsigned char *)c, (size_t)(next - c));
        c = next;
        if (st != yajl_status_ok || !at_plain_data(p)) {
            continue;
        }
        n = read_data(p, c, end);
        if (p->rc != BMS_OK) {
            return yajl_status_client_canceled;
        }
        if (n > 0) {
            st = yajl_parse(h, (const unsigned char *)"null", 4);
            c += n;
        }
    }
    if (st == yajl_status_ok && c < end) {
        p->fed = (size_t)(c - body);
        st = yajl_parse(h, (const unsigned char *)c, (size_t)(end - c));
    }
    return st;
}


enum bms_status bms__v2_request_parse(const char *body, size_t len,
                                      struct bms__v2_request **out,
                                      struct bms_diag *diag)
{
    return bms__v2_request_parse_limited(body, len, BMS__V2_MAX_ELEMS, out,
                                         diag);
}


enum bms_status bms__v2_request_parse_limited(const char *body, size_t len,
                                              int64_t max_elems,
                                              struct bms__v2_request **out,
                                              struct bms_diag *diag)
{
    return bms__v2_request_parse_binary(body, len, NULL, 0, max_elems, out,
                                        diag);
}


/* After the JSON: every byte of the binary part went to an input. */
static void check_binary_used(struct parser *p)
{
    if (p->rc != BMS_OK || p->binary == NULL ||
        p->binary_used == p->binary_len) {
        return;
    }
    fail(p, BMS_ERR_INVALID, "binary data: %zu byte%s left over: the"
         " inputs' parameters.binary_data_size take %zu of the %zu bytes"
         " after Inference-Header-Content-Length",
         p->binary_len - p->binary_used,
         p->binary_len - p->binary_used == 1 ? "" : "s", p->binary_used,
         p->binary_len);
}


static enum bms_status parse(const char *body, size_t len,
                             const char *binary, size_t binary_len,
                             int64_t max_elems, int fast,
                             struct bms__v2_request **out,
                             struct bms_diag *diag)
{
    struct parser p;
    yajl_handle h = NULL;
    yajl_status st;

    memset(&p, 0, sizeof(p));
    p.max_elems = max_elems;
    p.body_len = len;
    p.binary = binary;
    p.binary_len = binary != NULL ? binary_len : 0;
    p.diag = diag;
    p.rc = BMS_OK;
    p.req = calloc(1, sizeof(*p.req));
    if (p.req == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    h = yajl_alloc(&callbacks, NULL, &p);
    if (h == NULL) {
        fail_nomem(&p);
        goto out;
    }
    st = feed_yajl(&p, h, body, len, fast);
    if (st == yajl_status_error) {
        syntax_error(&p, h, body, len, 0);
    } else if (st == yajl_status_ok &&
               (st = yajl_complete_parse(h)) == yajl_status_error) {
        syntax_error(&p, h, body, len, 1);
    } else if (p.rc == BMS_OK && p.state != ST_DONE) {
        fail(&p, BMS_ERR_INVALID, "malformed JSON: the request ends early");
    }
    check_binary_used(&p);

out:
    yajl_free(h);
    bms_buf_fini(&p.pending);
    if (p.rc != BMS_OK) {
        bms__v2_request_destroy(p.req);
        return p.rc;
    }
    *out = p.req;
    return BMS_OK;
}


enum bms_status bms__v2_request_parse_binary(const char *body, size_t len,
                                             const char *binary,
                                             size_t binary_len,
                                             int64_t max_elems,
                                             struct bms__v2_request **out,
                                             struct bms_diag *diag)
{
    return parse(body, len, binary, binary_len, max_elems, 1, out, diag);
}


enum bms_status bms__v2_request_parse_events(const char *body, size_t len,
                                             const char *binary,
                                             size_t binary_len,
                                             int64_t max_elems,
                                             struct bms__v2_request **out,
                                             struct bms_diag *diag)
{
    return parse(body, len, binary, binary_len, max_elems, 0, out, diag);
}


void bms__v2_from_le(void *data, int64_t n_elems, size_t elem_size)
{
    const uint16_t one = 1;
    unsigned char *b = data;
    unsigned char first;

    memcpy(&first, &one, 1);
    if (first == 1 || elem_size < 2) {
        return;    /* a little-endian host: the bytes are the values */
    }
    for (int64_t i = 0; i < n_elems; i++, b += elem_size) {
        for (size_t k = 0; k < elem_size / 2; k++) {
            unsigned char t = b[k];

            b[k] = b[elem_size - 1 - k];
            b[elem_size - 1 - k] = t;
        }
    }
}


void bms__v2_request_destroy(struct bms__v2_request *req)
{
    if (req == NULL) {
        return;
    }
    for (int i = 0; i < req->n_inputs; i++) {
        free(req->inputs[i].name);
        bms_buf_fini(&req->inputs[i].data);
    }
    for (int i = 0; i < req->n_outputs; i++) {
        free(req->outputs[i].name);
    }
    free(req->inputs);
    free(req->outputs);
    free(req->id);
    free(req);
}
