/*
 * Unit tests of the tensor data fast path: JSON numbers read and converted
 * without strtod (src/server/v2_number.c), and "data" arrays read around
 * yajl (read_data in src/server/v2_parse.c).
 *
 * The reference for every value is the C library: strtod for FP64 and
 * (float)strtod for FP32, which is what the parser gave before the fast
 * path.  The reference for every parse is the same parser with the fast
 * path off (bms__v2_request_parse_events): status, message and bytes must
 * agree, also on malformed and mutated requests.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "server/v2_number.h"
#include "server/v2_parse.h"

int bms_test_v2_number(int *n_tests);

/* A small generator of its own, so that runs repeat. */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}


static int rng_below(int n)
{
    return (int)(rng() % (uint64_t)n);
}


/* A finite float of random bits. */
static float random_float(void)
{
    uint32_t bits;
    float f;

    do {
        bits = (uint32_t)rng();
        memcpy(&f, &bits, sizeof(f));
    } while (!isfinite(f));
    return f;
}


static void number_read_follows_json_grammar(void **state)
{
    static const struct {
        const char *text;
        size_t len;
    } cases[] = {
        {"0", 1}, {"-0", 2}, {"01", 1}, {"1.", 0}, {".5", 0}, {"-", 0},
        {"+1", 0}, {"1e", 0}, {"1e+", 0}, {"1e5", 3}, {"1E-05", 5},
        {"-12.5e+3,", 8}, {"1x", 1}, {"0.0", 3}, {"-.5", 0},
        {"123456789012345678901234", 24}, {"0.000000000000000000000001", 26},
        {"7.0e", 0}, {"2]", 1}, {"", 0}, {"e5", 0}, {"00.5", 1},
        {"1.5.5", 3}, {"-0e-0", 5},
    };
    struct bms__v2_number num;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].text;

        assert_int_equal(bms__v2_number_read(s, s + strlen(s), &num),
                         cases[i].len);
    }

    /* Nothing at or past end is read. */
    assert_int_equal(bms__v2_number_read("12345", "12345" + 3, &num), 3);
    assert_int_equal(bms__v2_number_read("1.25", "1.25" + 2, &num), 0);
    assert_int_equal(bms__v2_number_read("-1", "-1" + 1, &num), 0);

    /* The parts: 12.5e+3 is 125 * 10^2. */
    assert_int_equal(bms__v2_number_read("-12.5e+3", "-12.5e+3" + 8, &num),
                     8);
    assert_true(num.neg);
    assert_int_equal(num.digits, 125);
    assert_int_equal(num.exp10, 2);
    assert_false(num.inexact);

    /* Leading zeros of a fraction are not significant digits. */
    assert_int_equal(bms__v2_number_read("0.000000000000000000000012345",
                                         "0.000000000000000000000012345"
                                         + 29, &num), 29);
    assert_int_equal(num.digits, 12345);
    assert_int_equal(num.exp10, -27);
    assert_false(num.inexact);

    /* Twenty significant digits, or an exponent past 99,999: inexact. */
    bms__v2_number_read("12345678901234567890", "12345678901234567890"
                        + 20, &num);
    assert_true(num.inexact);
    bms__v2_number_read("1e100000", "1e100000" + 8, &num);
    assert_true(num.inexact);
}


/*
 * Check one text against the C library: it must read whole, and where a
 * conversion answers, its bits must be strtod's.  Returns whether the FP32
 * conversion answered.
 */
static int check_text(const char *s)
{
    struct bms__v2_number num;
    size_t len = strlen(s);
    double want_d = strtod(s, NULL);
    float want_f = (float)want_d;
    double d;
    float f;
    int fast_f;

    if (bms__v2_number_read(s, s + len, &num) != len) {
        fail_msg("%s: read %zu of %zu bytes", s,
                 bms__v2_number_read(s, s + len, &num), len);
    }
    fast_f = bms__v2_number_f32(&num, &f);
    if (fast_f && memcmp(&f, &want_f, sizeof(f)) != 0) {
        fail_msg("%s: FP32 %a, strtod gives %a", s, (double)f,
                 (double)want_f);
    }
    if (bms__v2_number_f64(&num, &d) && memcmp(&d, &want_d, sizeof(d))
        != 0) {
        fail_msg("%s: FP64 %a, strtod gives %a", s, d, want_d);
    }
    return fast_f;
}


/* The texts clients send for images: k/255 as a float, printed the way
 * Python's json (17 significant digits at most) and numpy's shortest
 * repr do.  Nearly all must take the fast path. */
static void pixels_convert_as_strtod_does(void **state)
{
    char text[64];
    int n_fast = 0;
    int n = 0;

    (void)state;
    for (int k = 0; k < 256; k++) {
        static const int precisions[] = {17, 16, 9, 8, 6};
        double x = (double)((float)k / 255.0f);

        for (size_t i = 0; i < 2 * sizeof(precisions) / sizeof(int); i++) {
            int digits = precisions[i / 2];
            double v = i % 2 ? -x : x;

            snprintf(text, sizeof(text), "%.*g", digits, v);
            n_fast += check_text(text);
            snprintf(text, sizeof(text), "%.*e", digits, v);
            n_fast += check_text(text);
            n += 2;
        }
    }
    assert_true(n_fast >= n - n / 100);
}


/* Random floats printed at every precision, and the doubles next to them. */
static void random_floats_convert_as_strtod_does(void **state)
{
    char text[96];

    (void)state;
    for (int i = 0; i < 100000; i++) {
        float x = random_float();
        double near = nextafter((double)x, rng_below(2) ? INFINITY
                                                         : -INFINITY);
        int digits = 1 + rng_below(25);

        snprintf(text, sizeof(text), "%.*g", digits, (double)x);
        check_text(text);
        snprintf(text, sizeof(text), "%.*e", digits, near);
        check_text(text);
        snprintf(text, sizeof(text), "%.17g", near);
        check_text(text);
    }
}


/*
 * Halfway between two floats, where rounding twice could go wrong: the
 * midpoint itself (exact as a double), the doubles a few units either
 * side, printed with 17 digits (so they read back exactly) and fewer.
 */
static void float_midpoints_convert_as_strtod_does(void **state)
{
    char text[96];

    (void)state;
    for (int i = 0; i < 50000; i++) {
        float lo = fabsf(random_float());
        double mid = ((double)lo + (double)nextafterf(lo, INFINITY)) / 2;
        double d = mid;
        int k = rng_below(9) - 4;

        for (; k > 0; k--) {
            d = nextafter(d, INFINITY);
        }
        for (; k < 0; k++) {
            d = nextafter(d, -INFINITY);
        }
        if (!isfinite(d)) {
            continue;
        }
        snprintf(text, sizeof(text), "%.17g", d);
        check_text(text);
        snprintf(text, sizeof(text), "%.*g", 10 + rng_below(9), d);
        check_text(text);
    }
}


/* Digit strings of every length with a point and an exponent anywhere. */
static void random_digit_strings_convert_as_strtod_does(void **state)
{
    char text[96];

    (void)state;
    for (int i = 0; i < 100000; i++) {
        int n_digits = 1 + rng_below(24);
        int point = rng_below(n_digits + 1);
        size_t len = 0;

        if (rng_below(2)) {
            text[len++] = '-';
        }
        for (int j = 0; j < n_digits; j++) {
            int digit = rng_below(10);

            if (j == 0 && digit == 0 && n_digits > 1 && point != 1) {
                digit = 1 + rng_below(9);
            }
            if (j == point && j > 0) {
                text[len++] = '.';
            }
            text[len++] = (char)('0' + digit);
        }
        if (point == 0 && n_digits > 1) {
            /* "0.ddd": the point after a lone zero. */
            memmove(text + len - n_digits + 2, text + len - n_digits,
                    (size_t)n_digits);
            text[len - n_digits] = '0';
            text[len - n_digits + 1] = '.';
            len += 2;
        }
        if (rng_below(3) == 0) {
            len += (size_t)snprintf(text + len, sizeof(text) - len, "e%d",
                                    rng_below(61) - 30);
        }
        text[len] = '\0';
        check_text(text);
    }
}


/* ---- requests: the fast path against yajl's events ---- */

/* Parse body both ways; the results must be the same.  Returns the fast
 * path's status. */
static enum bms_status parse_both(const char *body, size_t len,
                                  int64_t max_elems,
                                  struct bms__v2_request **out,
                                  struct bms_diag *diag)
{
    struct bms__v2_request *fast = NULL;
    struct bms__v2_request *slow = NULL;
    struct bms_diag fast_diag = {""};
    struct bms_diag slow_diag = {""};
    enum bms_status fast_rc;
    enum bms_status slow_rc;

    fast_rc = bms__v2_request_parse_binary(body, len, NULL, 0, max_elems,
                                           &fast, &fast_diag);
    slow_rc = bms__v2_request_parse_events(body, len, NULL, 0, max_elems,
                                           &slow, &slow_diag);
    if (fast_rc != slow_rc || strcmp(fast_diag.msg, slow_diag.msg) != 0) {
        fail_msg("%.*s\nfast: %s %s\nevents: %s %s", (int)len, body,
                 bms_status_name(fast_rc), fast_diag.msg,
                 bms_status_name(slow_rc), slow_diag.msg);
    }
    if (fast_rc == BMS_OK) {
        assert_int_equal(fast->n_inputs, slow->n_inputs);
        for (int i = 0; i < fast->n_inputs; i++) {
            const struct bms__v2_input *a = &fast->inputs[i];
            const struct bms__v2_input *b = &slow->inputs[i];

            assert_int_equal(a->dtype, b->dtype);
            assert_int_equal(a->n_elems, b->n_elems);
            assert_int_equal(a->data.len, b->data.len);
            if (a->data.len > 0 &&
                memcmp(a->data.data, b->data.data, a->data.len) != 0) {
                fail_msg("%.*s\ninputs[%d]: the data differ", (int)len,
                         body, i);
            }
        }
        assert_int_equal(fast->n_outputs, slow->n_outputs);
    }
    bms__v2_request_destroy(slow);
    if (out != NULL) {
        *out = fast;
    } else {
        bms__v2_request_destroy(fast);
    }
    if (diag != NULL) {
        *diag = fast_diag;
    }
    return fast_rc;
}


#define BODY_SIZE 8192

/* Append printf's output to buf, of BODY_SIZE bytes, at len; returns the
 * new length. */
static size_t put(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t put(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + len, BODY_SIZE - len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < BODY_SIZE - len);
    return len + (size_t)n;
}


/* JSON whitespace, sometimes none. */
static size_t put_space(char *buf, size_t len)
{
    static const char spaces[] = " \n\r\t";

    if (rng_below(3) == 0) {
        buf[len++] = spaces[rng_below(4)];
    }
    return len;
}


/* A random number text, of the kinds clients send and some odd ones;
 * integers only when integers is set. */
static size_t put_number(char *buf, size_t len, int integers)
{
    float pixel = (float)rng_below(256) / 255.0f;

    if (integers) {
        return put(buf, len, "%d", rng_below(2001) - 1000);
    }
    switch (rng_below(5)) {
    case 0:
        return put(buf, len, "%.17g", (double)pixel);
    case 1:
        return put(buf, len, "%d", rng_below(2001) - 1000);
    case 2:
        return put(buf, len, "%.*e", rng_below(20), (double)random_float());
    case 3:
        return put(buf, len, "%.9g", (double)random_float());
    default:
        return put(buf, len, "0.%0*d", 1 + rng_below(8), rng_below(1000));
    }
}


/* The most elements make_request writes: rank 3, each dim 4. */
#define MAX_NUMEL 64

/*
 * A request of one input of datatype with nested data of random dims
 * (each 1 to 4, rank 1 to 3), random whitespace, and sometimes a second
 * input after it.  Returns the length; at[k], when at is not NULL, is
 * where the text of element k starts.
 */
static size_t make_request(char *buf, const char *datatype, int64_t *numel,
                           size_t at[MAX_NUMEL])
{
    int64_t k = 0;
    int integers = datatype[0] != 'F';
    int rank = 1 + rng_below(3);
    int dims[3];
    int64_t count[3] = {0, 0, 0};
    size_t len = 0;
    int depth = 0;

    *numel = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = 1 + rng_below(4);
        *numel *= dims[i];
    }
    len = put(buf, len, "{\"id\": \"r\", \"inputs\": [{\"name\": \"x\","
              " \"datatype\": \"%s\", \"shape\": [", datatype);
    for (int i = 0; i < rank; i++) {
        len = put(buf, len, "%s%d", i ? ", " : "", dims[i]);
    }
    len = put(buf, len, "], \"data\"");
    len = put_space(buf, len);
    buf[len++] = ':';
    len = put_space(buf, len);

    /* The nested arrays, depth first. */
    buf[len++] = '[';
    depth = 1;
    while (depth > 0) {
        len = put_space(buf, len);
        if (count[depth - 1] == dims[depth - 1]) {
            buf[len++] = ']';
            depth--;
            continue;
        }
        if (count[depth - 1]++ > 0) {
            buf[len++] = ',';
            len = put_space(buf, len);
        }
        if (depth < rank) {
            buf[len++] = '[';
            count[depth++] = 0;
        } else {
            if (at != NULL) {
                at[k++] = len;
            }
            len = put_number(buf, len, integers);
        }
    }
    len = put(buf, len, "}");
    if (rng_below(3) == 0) {
        len = put(buf, len, ", {\"name\": \"y\", \"datatype\": \"FP32\","
                  " \"shape\": [2], \"data\": [1.5, -2]}");
    }
    len = put(buf, len, "]}");
    return len;
}


/* Element k of in against the C library's reading of its text. */
static void assert_element(const struct bms__v2_input *in, int64_t k,
                           const char *text)
{
    const char *got = in->data.data + (size_t)k * bms_dtype_size(in->dtype);
    double d = strtod(text, NULL);
    float f = (float)d;
    int64_t i64 = strtoll(text, NULL, 10);
    int32_t i32 = (int32_t)i64;

    switch (in->dtype) {
    case BMS_DTYPE_F32:
        assert_memory_equal(got, &f, sizeof(f));
        break;
    case BMS_DTYPE_F64:
        assert_memory_equal(got, &d, sizeof(d));
        break;
    case BMS_DTYPE_I32:
        assert_memory_equal(got, &i32, sizeof(i32));
        break;
    default:
        assert_memory_equal(got, &i64, sizeof(i64));
        break;
    }
}


/* Random requests of four datatypes: both ways agree, and every value is
 * the C library's reading of its text. */
static void fast_path_gives_the_events_result(void **state)
{
    static const char *const datatypes[] = {"FP32", "FP64", "INT64",
                                            "INT32"};
    char buf[BODY_SIZE];
    size_t at[MAX_NUMEL];

    (void)state;
    for (int i = 0; i < 4000; i++) {
        struct bms__v2_request *req = NULL;
        const char *datatype = datatypes[i % 4];
        int64_t numel;
        size_t len = make_request(buf, datatype, &numel, at);

        assert_int_equal(parse_both(buf, len, BMS__V2_MAX_ELEMS, &req,
                                    NULL), BMS_OK);
        assert_int_equal(req->inputs[0].n_elems, numel);
        for (int64_t k = 0; k < numel; k++) {
            assert_element(&req->inputs[0], k, buf + at[k]);
        }
        bms__v2_request_destroy(req);
    }
}


/* Valid requests with one byte replaced, removed or added: whatever the
 * outcome, both ways must agree on it and on the message. */
static void mutated_requests_give_the_events_result(void **state)
{
    static const char bytes[] = "[]{},:.-+eE019 \n\t\v\f\"tfn/x\\";
    static const char *const datatypes[] = {"FP32", "FP64", "INT64",
                                            "INT32", "UINT8", "INT8",
                                            "UINT64", "BOOL", "FP16"};
    char buf[BODY_SIZE];

    (void)state;
    for (int i = 0; i < 20000; i++) {
        int64_t numel;
        size_t len = make_request(buf, datatypes[rng_below(9)], &numel,
                                  NULL);
        size_t at = (size_t)rng_below((int)len);
        char c = bytes[rng_below((int)sizeof(bytes) - 1)];

        switch (rng_below(4)) {
        case 0:
            buf[at] = c;
            break;
        case 1:
            memmove(buf + at, buf + at + 1, len - at - 1);
            len--;
            break;
        case 2:
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = c;
            len++;
            break;
        default:
            break;               /* as made: out of range, BOOL, FP16 */
        }
        parse_both(buf, len, rng_below(4) == 0 ? 5 : BMS__V2_MAX_ELEMS,
                   NULL, NULL);
    }
}


#define HEAD "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\"," \
             " \"shape\": [2, 2], "

/* Each refusal of the fast path's region, and places where "data" is not
 * an input's data, with the message the user gets. */
static void data_refusals_keep_their_messages(void **state)
{
    static const struct {
        const char *body;
        const char *msg;
    } cases[] = {
        {HEAD "\"data\": [[1, 2], [3]]}]}",
         "inputs[0].data: nested arrays are not rectangular"},
        {HEAD "\"data\": [[1, 2], [3, 4], 5]}]}",
         "inputs[0].data: nested arrays are not rectangular"},
        {HEAD "\"data\": [[1, 2], [3, 1e39]]}]}",
         "inputs[0].data[3]: 1e39 out of range for FP32"},
        {HEAD "\"data\": [[1, 2], [3, true]]}]}",
         "inputs[0].data[3]: expected a number for FP32, got true"},
        {HEAD "\"data\": [[1, 2], [3, \"4\"]]}]}",
         "inputs[0].data[3]: expected a number or a boolean"},
        {HEAD "\"data\": [[1, 2], [3, 4,]]}]}",
         "malformed JSON at byte 87: parse error: unallowed token at this"
         " point in JSON text"},
        {HEAD "\"data\": [[1, 2], [3, 04]]}]}",
         "malformed JSON at byte 86: parse error: after array element, I"
         " expect ',' or ']'"},
        {HEAD "\"data\": [[1, 2], [3, 4]]}] x}",
         "malformed JSON at byte 91: lexical error: invalid char in json"
         " text."},
        {HEAD "\"data\": [[1, 2], [3, 4]], \"data\": [1]}]}",
         "inputs[0].data: given twice"},
        {HEAD "\"data\": [[1, 2], [3, 4]]",
         "malformed JSON: the body ends inside the JSON, after 87 bytes"},
        {HEAD "\"data\": [[1, 2], [3, 4",
         "malformed JSON: the body ends inside the JSON, after 85 bytes"},
    };
    struct bms_diag diag;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *body = cases[i].body;

        assert_int_not_equal(parse_both(body, strlen(body),
                                        BMS__V2_MAX_ELEMS, NULL, &diag),
                             BMS_OK);
        assert_string_equal(diag.msg, cases[i].msg);
    }

    /* Too many elements, counted as the events count them. */
    assert_int_equal(parse_both(HEAD "\"data\": [[1, 2], [3, 4]]}]}",
                                strlen(HEAD "\"data\": [[1, 2], [3, 4]]}]}"),
                                3, NULL, &diag), BMS_ERR_LIMIT);
}


/* "data" as an id, a key of parameters or an output name, and the data
 * before the datatype: the fast path must not take them. */
static void data_elsewhere_is_not_an_input(void **state)
{
    static const char body[] =
        "{\"id\": \"\\\"data\\\":[1]\", \"parameters\": {\"data\": [9]},"
        " \"inputs\": [{\"name\": \"x\", \"data\": [[1, 2], [3, 4.5]],"
        " \"datatype\": \"FP32\", \"shape\": [2, 2],"
        " \"parameters\": {\"data\": [7, 8]}},"
        " {\"name\": \"data\", \"shape\": [1], \"datatype\": \"FP64\","
        " \"data\" : [ 0.1 ] }],"
        " \"outputs\": [{\"name\": \"data\"}]}";
    struct bms__v2_request *req = NULL;
    const float want[4] = {1, 2, 3, 4.5f};
    double d;

    (void)state;
    assert_int_equal(parse_both(body, sizeof(body) - 1, BMS__V2_MAX_ELEMS,
                                &req, NULL), BMS_OK);
    assert_string_equal(req->id, "\"data\":[1]");
    assert_memory_equal(req->inputs[0].data.data, want, sizeof(want));
    assert_string_equal(req->inputs[1].name, "data");
    memcpy(&d, req->inputs[1].data.data, sizeof(d));
    assert_true(d == strtod("0.1", NULL));
    assert_string_equal(req->outputs[0].name, "data");
    bms__v2_request_destroy(req);
}


/* The values a whole request gives, against strtod. */
static void request_values_are_strtod_values(void **state)
{
    static const char body[] =
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [6], \"data\": [0.7058823704719543, -0.0,"
        " 3.4028235e38, 1e-45, 0.1, 123456789012345678901234567890]}]}";
    static const char *const texts[] = {
        "0.7058823704719543", "-0.0", "3.4028235e38", "1e-45", "0.1",
        "123456789012345678901234567890",
    };
    struct bms__v2_request *req = NULL;

    (void)state;
    assert_int_equal(parse_both(body, sizeof(body) - 1, BMS__V2_MAX_ELEMS,
                                &req, NULL), BMS_OK);
    for (int i = 0; i < 6; i++) {
        float want = (float)strtod(texts[i], NULL);

        assert_memory_equal(req->inputs[0].data.data + 4 * i, &want, 4);
    }
    bms__v2_request_destroy(req);
}


int bms_test_v2_number(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(number_read_follows_json_grammar),
        cmocka_unit_test(pixels_convert_as_strtod_does),
        cmocka_unit_test(random_floats_convert_as_strtod_does),
        cmocka_unit_test(float_midpoints_convert_as_strtod_does),
        cmocka_unit_test(random_digit_strings_convert_as_strtod_does),
        cmocka_unit_test(fast_path_gives_the_events_result),
        cmocka_unit_test(mutated_requests_give_the_events_result),
        cmocka_unit_test(data_refusals_keep_their_messages),
        cmocka_unit_test(data_elsewhere_is_not_an_input),
        cmocka_unit_test(request_values_are_strtod_values),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
