/*
 * Unit tests of the binary tensor data extension: the parser taking
 * inputs from the bytes after the JSON, each refusal with its message,
 * binary outputs of a whole call on tests/data/v2_repo, the direct infer
 * path of the handlers with the Inference-Header-Content-Length header,
 * and the response cache keeping binary and JSON requests apart.
 *
 * Input bytes are written out by hand (IEEE 754 and two's complement,
 * little-endian); expected outputs come from the weights stated in
 * tests/data/v2_make_models.py, worked out by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "bms/repo.h"
#include "bms/v2.h"
#include "server/cache.h"
#include "server/route.h"
#include "server/v2_parse.h"

#define V2_REPO "tests/data/v2_repo"

int bms_test_v2_binary(int *n_tests);

/* The three rows the v2 tests send to v2_clf, [1 2 3 4], [0 0 0 0] and
 * [1 0 1 0], as little-endian FP32: 1.0f is 0x3f800000, 2.0f 0x40000000,
 * 3.0f 0x40400000, 4.0f 0x40800000. */
static const unsigned char clf_rows[48] = {
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
    0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x00, 0x80, 0x3f, 0, 0, 0, 0,
    0x00, 0x00, 0x80, 0x3f, 0, 0, 0, 0,
};

#define CLF_HEAD(params) \
    "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\"," \
    " \"shape\": [3, 4], \"parameters\": {\"binary_data_size\": 48}}]" \
    params "}"


/* A body of json followed by n bytes of bin, in buf. */
static size_t make_body(char *buf, size_t size, const char *json,
                        const void *bin, size_t n)
{
    size_t len = strlen(json);

    assert_true(len + n <= size);
    memcpy(buf, json, len);
    memcpy(buf + len, bin, n);
    return len + n;
}


static struct bms__v2_request *parse_binary_ok(const char *json,
                                               const void *bin, size_t n)
{
    struct bms__v2_request *req = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc;

    rc = bms__v2_request_parse_binary(json, strlen(json), bin, n,
                                      BMS__V2_MAX_ELEMS, &req, &diag);
    if (rc != BMS_OK) {
        print_error("parse failed: %s\n", diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    return req;
}


static void assert_binary_error(const char *json, const void *bin, size_t n,
                                const char *msg)
{
    struct bms__v2_request *req = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc;

    rc = bms__v2_request_parse_binary(json, strlen(json), bin, n,
                                      BMS__V2_MAX_ELEMS, &req, &diag);
    if (rc != BMS_ERR_INVALID) {
        print_error("body %s: got %s (%s)\n", json, bms_status_name(rc),
                    diag.msg);
    }
    assert_int_equal(rc, BMS_ERR_INVALID);
    assert_null(req);
    assert_string_equal(diag.msg, msg);
}


static void binary_fp32_input_takes_little_endian_bytes(void **state)
{
    struct bms__v2_request *req = parse_binary_ok(CLF_HEAD(""), clf_rows,
                                                  sizeof(clf_rows));
    const float want[12] = {1, 2, 3, 4, 0, 0, 0, 0, 1, 0, 1, 0};
    const struct bms__v2_input *in = &req->inputs[0];

    (void)state;
    assert_int_equal(in->dtype, BMS_DTYPE_F32);
    assert_int_equal(in->n_elems, 12);
    assert_int_equal(in->data.len, 48);
    assert_memory_equal(in->data.data, want, sizeof(want));
    bms__v2_request_destroy(req);
}


/* JSON and binary inputs mixed: the binary part holds b's bytes, then
 * c's, in the order of "inputs"; a's data stays JSON. */
static void binary_inputs_take_the_part_in_order(void **state)
{
    static const unsigned char bin[] = {
        /* b, INT64: 1, -2, 2^40 */
        0x01, 0, 0, 0, 0, 0, 0, 0,
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0, 0, 0x01, 0, 0,
        /* c, BOOL: true, false */
        0x01, 0x00,
        /* d, UINT16: 0x1234 */
        0x34, 0x12,
    };
    const int64_t want_b[3] = {1, -2, (int64_t)1 << 40};
    const unsigned char want_c[2] = {1, 0};
    const uint16_t want_d = 0x1234;
    struct bms__v2_request *req = parse_binary_ok(
        "{\"inputs\": [{\"name\": \"a\", \"datatype\": \"INT8\","
        " \"shape\": [2], \"data\": [5, -6]},"
        " {\"parameters\": {\"binary_data_size\": 24}, \"name\": \"b\","
        " \"datatype\": \"INT64\", \"shape\": [1, 3]},"
        " {\"name\": \"c\", \"shape\": [2], \"datatype\": \"BOOL\","
        " \"parameters\": {\"other\": 1, \"binary_data_size\": 2}},"
        " {\"name\": \"d\", \"datatype\": \"UINT16\", \"shape\": [1],"
        " \"parameters\": {\"binary_data_size\": 2}}]}", bin, sizeof(bin));

    (void)state;
    assert_int_equal(req->n_inputs, 4);
    assert_int_equal(((int8_t *)req->inputs[0].data.data)[1], -6);
    assert_memory_equal(req->inputs[1].data.data, want_b, sizeof(want_b));
    assert_memory_equal(req->inputs[2].data.data, want_c, sizeof(want_c));
    assert_memory_equal(req->inputs[3].data.data, &want_d, sizeof(want_d));
    assert_int_equal(req->inputs[1].n_elems, 3);
    bms__v2_request_destroy(req);
}


static void binary_zero_elements_take_no_bytes(void **state)
{
    struct bms__v2_request *req = parse_binary_ok(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [0, 4], \"parameters\": {\"binary_data_size\": 0}}]}",
        "", 0);

    (void)state;
    assert_int_equal(req->inputs[0].n_elems, 0);
    bms__v2_request_destroy(req);
}


static void binary_parse_reads_output_flags(void **state)
{
    struct bms__v2_request *req = parse_binary_ok(
        "{\"parameters\": {\"binary_data_output\": true}, \"inputs\": [],"
        " \"outputs\": [{\"name\": \"a\", \"parameters\":"
        " {\"binary_data\": false}}, {\"name\": \"b\"},"
        " {\"name\": \"c\", \"parameters\": {\"binary_data\": true}}]}",
        NULL, 0);

    (void)state;
    assert_int_equal(req->binary_output, 1);
    assert_int_equal(req->outputs[0].binary, 0);
    assert_int_equal(req->outputs[1].binary, -1);
    assert_int_equal(req->outputs[2].binary, 1);
    bms__v2_request_destroy(req);
}


static void binary_parse_rejects_sizes_that_do_not_fit(void **state)
{
    (void)state;
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [3, 4], \"parameters\": {\"binary_data_size\": 47}}]}",
        clf_rows, 47,
        "inputs[0].parameters.binary_data_size: 47 bytes, but shape"
        " [3, 4] of FP32 takes 48");
    assert_binary_error(CLF_HEAD(""), clf_rows, 40,
                        "inputs[0].parameters.binary_data_size: 48 bytes,"
                        " but only 40 bytes of binary data are left");
    assert_binary_error(CLF_HEAD(""), clf_rows, 0,
                        "inputs[0].parameters.binary_data_size: 48 bytes,"
                        " but only 0 bytes of binary data are left");
}


static void binary_parse_rejects_bytes_left_over(void **state)
{
    unsigned char more[52];

    (void)state;
    memcpy(more, clf_rows, sizeof(clf_rows));
    memset(more + 48, 7, 4);
    assert_binary_error(CLF_HEAD(""), more, sizeof(more),
                        "binary data: 4 bytes left over: the inputs'"
                        " parameters.binary_data_size take 48 of the 52"
                        " bytes after Inference-Header-Content-Length");
    assert_binary_error("{\"inputs\": []}", more, 1,
                        "binary data: 1 byte left over: the inputs'"
                        " parameters.binary_data_size take 0 of the 1"
                        " bytes after Inference-Header-Content-Length");
}


static void binary_parse_rejects_bad_binary_fields(void **state)
{
    static const unsigned char bools[3] = {1, 2, 0};

    (void)state;
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [1], \"data\": [1],"
        " \"parameters\": {\"binary_data_size\": 4}}]}", clf_rows, 4,
        "inputs[0]: data and parameters.binary_data_size exclude each"
        " other");
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [1], \"parameters\": {\"binary_data_size\": -4}}]}",
        clf_rows, 4, "inputs[0].parameters.binary_data_size: expected a"
        " non-negative integer (bytes), got -4");
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [1], \"parameters\": {\"binary_data_size\": 4.0}}]}",
        clf_rows, 4, "inputs[0].parameters.binary_data_size: expected a"
        " non-negative integer (bytes), got 4.0");
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [1], \"parameters\": {\"binary_data_size\": \"4\"}}]}",
        clf_rows, 4, "inputs[0].parameters.binary_data_size: expected a"
        " non-negative integer (bytes)");
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"BOOL\","
        " \"shape\": [3], \"parameters\": {\"binary_data_size\": 3}}]}",
        bools, 3, "inputs[0]: binary data: BOOL element 1 is byte 2,"
        " expected 0 or 1");
    assert_binary_error(
        "{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\","
        " \"shape\": [1], \"parameters\": []}]}", clf_rows, 4,
        "inputs[0].parameters: expected an object");
    assert_binary_error(
        "{\"inputs\": [], \"outputs\": [{\"name\": \"y\", \"parameters\":"
        " {\"binary_data\": 1}}]}", NULL, 0,
        "outputs[0].parameters.binary_data: expected true or false");
    assert_binary_error(
        "{\"inputs\": [], \"parameters\": {\"binary_data_output\": \"yes\"}}",
        NULL, 0, "parameters.binary_data_output: expected true or false");
}


/* Without the header there is no binary part to take from. */
static void json_request_refuses_binary_data_size(void **state)
{
    struct bms__v2_request *req = NULL;
    struct bms_diag diag = {""};
    const char *body = CLF_HEAD("");

    (void)state;
    assert_int_equal(bms__v2_request_parse(body, strlen(body), &req, &diag),
                     BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "inputs[0].parameters.binary_data_size:"
                        " no binary part: the request has no"
                        " Inference-Header-Content-Length header");
}


/* ---- whole calls on v2_clf ---- */

static void drop_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


static struct bms_repo *open_v2_repo(void)
{
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};

    /* Version 3 of v2_clf fails on purpose; keep its log line out. */
    bms_log_set_handler(drop_log, NULL);
    assert_int_equal(bms_repo_open(V2_REPO, &repo, &diag), BMS_OK);
    bms_log_set_handler(NULL, NULL);
    return repo;
}


/* Parse body (json_size bytes of JSON) on v2_clf version 2 and run it;
 * out gets the answer and *json_size its JSON part. */
static void run_clf(const char *body, size_t len, size_t head_size,
                    struct bms_buf *out, size_t *json_size, int *binary)
{
    struct bms_repo *repo = open_v2_repo();
    struct bms_served *served = bms_repo_find(repo, "v2_clf", 2);
    struct bms_v2_call *call = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc;

    assert_non_null(served);
    rc = bms_v2_call_parse_binary(served, body, len, head_size, 0, &call,
                                  &diag);
    if (rc == BMS_OK) {
        rc = bms_v2_call_run(call, out, json_size, &diag);
    }
    if (rc != BMS_OK) {
        print_error("call failed: %s\n", diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    *binary = bms_v2_call_binary_answer(call);
    bms_v2_call_destroy(call);
    bms_repo_close(repo);
}


/* scores = x W + b: [3 1.5 3.5], [0 .5 -.5], [1 -.5 -.5], so the classes
 * are 2 (bird), 1 (dog), 0 (cat); twice = 2 x. */
static void binary_answer_gives_indices_and_tensors(void **state)
{
    static const char want_json[] =
        "{\"model_name\":\"v2_clf\",\"model_version\":\"2\",\"outputs\":["
        "{\"name\":\"scores\",\"datatype\":\"INT64\",\"shape\":[3],"
        "\"parameters\":{\"binary_data_size\":24,"
        "\"labels\":[\"bird\",\"dog\",\"cat\"]}},"
        "{\"name\":\"twice\",\"datatype\":\"FP32\",\"shape\":[3,4],"
        "\"parameters\":{\"binary_data_size\":48}}]}";
    static const unsigned char want_bin[72] = {
        2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        /* 2, 4, 6, 8 */
        0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x80, 0x40,
        0x00, 0x00, 0xc0, 0x40, 0x00, 0x00, 0x00, 0x41,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0,
        0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0,
    };
    const char *head = CLF_HEAD(", \"parameters\":"
                                " {\"binary_data_output\": true}");
    char body[512];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms_buf out = {0};
    size_t json_size = 0;
    int binary = 0;

    (void)state;
    run_clf(body, len, strlen(head), &out, &json_size, &binary);
    assert_int_equal(binary, 1);
    assert_int_equal(json_size, strlen(want_json));
    assert_int_equal(out.len, strlen(want_json) + sizeof(want_bin));
    assert_memory_equal(out.data, want_json, strlen(want_json));
    assert_memory_equal(out.data + json_size, want_bin, sizeof(want_bin));
    bms_buf_fini(&out);
}


/* An output's own binary_data false wins over binary_data_output. */
static void output_false_wins_over_request_flag(void **state)
{
    static const char want_json[] =
        "{\"model_name\":\"v2_clf\",\"model_version\":\"2\",\"outputs\":["
        "{\"name\":\"twice\",\"datatype\":\"FP32\",\"shape\":[3,4],"
        "\"data\":[2,4,6,8,0,0,0,0,2,0,2,0]},"
        "{\"name\":\"scores\",\"datatype\":\"FP32\",\"shape\":[3,3],"
        "\"parameters\":{\"binary_data_size\":36}}]}";
    /* 3, 1.5, 3.5 / 0, .5, -.5 / 1, -.5, -.5 */
    static const unsigned char want_bin[36] = {
        0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0xc0, 0x3f,
        0x00, 0x00, 0x60, 0x40, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00, 0xbf,
        0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xbf,
        0x00, 0x00, 0x00, 0xbf,
    };
    const char *head = CLF_HEAD(
        ", \"parameters\": {\"binary_data_output\": true},"
        " \"outputs\": [{\"name\": \"twice\", \"parameters\":"
        " {\"binary_data\": false}}, {\"name\": \"scores\","
        " \"parameters\": {\"raw\": true}}]");
    char body[512];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms_buf out = {0};
    size_t json_size = 0;
    int binary = 0;

    (void)state;
    run_clf(body, len, strlen(head), &out, &json_size, &binary);
    assert_int_equal(binary, 1);
    assert_int_equal(json_size, strlen(want_json));
    assert_int_equal(out.len, json_size + sizeof(want_bin));
    assert_memory_equal(out.data, want_json, json_size);
    assert_memory_equal(out.data + json_size, want_bin, sizeof(want_bin));
    bms_buf_fini(&out);
}


/* Top 2 as BYTES: each a 4-byte little-endian length, then the text. */
static void binary_top_k_writes_length_prefixed_strings(void **state)
{
    static const char *const strings[6] = {
        "3.5:2:bird", "3:0:cat", "0.5:1:dog", "0:0:cat", "1:0:cat",
        "-0.5:1:dog",
    };
    static const char want_json[] =
        "{\"model_name\":\"v2_clf\",\"model_version\":\"2\",\"outputs\":["
        "{\"name\":\"scores\",\"datatype\":\"BYTES\",\"shape\":[3,2],"
        "\"parameters\":{\"binary_data_size\":74}}]}";
    const char *head = CLF_HEAD(
        ", \"outputs\": [{\"name\": \"scores\", \"parameters\":"
        " {\"classification\": 2, \"binary_data\": true}}]");
    char body[512];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms_buf out = {0};
    size_t json_size = 0;
    const char *p;
    int binary = 0;

    (void)state;
    run_clf(body, len, strlen(head), &out, &json_size, &binary);
    assert_int_equal(json_size, strlen(want_json));
    assert_memory_equal(out.data, want_json, json_size);
    p = out.data + json_size;
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(strings[i]);
        const unsigned char *u = (const unsigned char *)p;

        assert_int_equal(u[0] | u[1] << 8 | u[2] << 16 | u[3] << 24, n);
        assert_memory_equal(p + 4, strings[i], n);
        p += 4 + n;
    }
    assert_int_equal(p - out.data, out.len);
    bms_buf_fini(&out);
}


/* A JSON answer to a binary request: no binary output asked for. */
static void binary_request_may_get_a_json_answer(void **state)
{
    const char *head = CLF_HEAD(", \"outputs\": [{\"name\": \"scores\"}]");
    char body[512];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms_buf out = {0};
    size_t json_size = 0;
    int binary = 1;

    (void)state;
    run_clf(body, len, strlen(head), &out, &json_size, &binary);
    assert_int_equal(binary, 0);
    assert_int_equal(json_size, out.len);
    assert_string_equal(out.data,
                        "{\"model_name\":\"v2_clf\",\"model_version\":\"2\","
                        "\"outputs\":[{\"name\":\"scores\",\"datatype\":"
                        "\"INT64\",\"shape\":[3],\"data\":[2,1,0],"
                        "\"parameters\":{\"labels\":[\"bird\",\"dog\","
                        "\"cat\"]}}]}");
    bms_buf_fini(&out);
}


static void call_refuses_header_past_the_body(void **state)
{
    struct bms_repo *repo = open_v2_repo();
    struct bms_served *served = bms_repo_find(repo, "v2_clf", 2);
    struct bms_v2_call *call = NULL;
    struct bms_diag diag = {""};

    (void)state;
    assert_int_equal(bms_v2_call_parse_binary(served, "{}", 2, 3, 0, &call,
                                              &diag), BMS_ERR_INVALID);
    assert_null(call);
    assert_string_equal(diag.msg, "Inference-Header-Content-Length: 3"
                        " bytes, more than the body's 2");
    bms_repo_close(repo);
}


/* ---- the handlers' direct path ---- */

static const char *reply_header(const struct bms__reply *reply,
                                const char *name)
{
    for (int i = 0; i < reply->n_headers; i++) {
        if (strcmp(reply->headers[i].name, name) == 0) {
            return reply->headers[i].value;
        }
    }
    return NULL;
}


static void handle_clf(const char *header, const char *body, size_t len,
                       struct bms__reply *reply)
{
    struct bms_repo *repo = open_v2_repo();
    struct bms__context ctx;
    struct bms__route route;

    memset(&ctx, 0, sizeof(ctx));
    memset(reply, 0, sizeof(*reply));
    ctx.repo = repo;
    ctx.start_us = bms_now_us();
    ctx.binary_header = header;
    assert_int_equal(bms__route_parse("/v2/models/v2_clf/versions/2/infer",
                                      &route, NULL), BMS_OK);
    bms__handle_with(&ctx, &route, "POST", body, len, reply);
    bms_repo_close(repo);
}


static void handler_answers_binary_as_octet_stream(void **state)
{
    const char *head = CLF_HEAD(", \"outputs\": [{\"name\": \"scores\","
                                " \"parameters\": {\"binary_data\": true}}]");
    static const char want_json[] =
        "{\"model_name\":\"v2_clf\",\"model_version\":\"2\",\"outputs\":["
        "{\"name\":\"scores\",\"datatype\":\"INT64\",\"shape\":[3],"
        "\"parameters\":{\"binary_data_size\":24,"
        "\"labels\":[\"bird\",\"dog\",\"cat\"]}}]}";
    static const unsigned char want_bin[24] = {
        2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    char body[512];
    char header[16];
    char want_size[16];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms__reply reply;

    (void)state;
    snprintf(header, sizeof(header), "%zu", strlen(head));
    snprintf(want_size, sizeof(want_size), "%zu", strlen(want_json));
    handle_clf(header, body, len, &reply);
    assert_int_equal(reply.http_status, 200);
    assert_string_equal(reply.content_type, "application/octet-stream");
    assert_non_null(reply_header(&reply, "Inference-Header-Content-Length"));
    assert_string_equal(reply_header(&reply,
                                     "Inference-Header-Content-Length"),
                        want_size);
    assert_int_equal(reply.body.len, strlen(want_json) + 24);
    assert_memory_equal(reply.body.data, want_json, strlen(want_json));
    assert_memory_equal(reply.body.data + strlen(want_json), want_bin, 24);
    bms_buf_fini(&reply.body);
}


static void handler_json_answer_keeps_json_headers(void **state)
{
    const char *head = CLF_HEAD("");
    char body[512];
    char header[16];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms__reply reply;

    (void)state;
    snprintf(header, sizeof(header), "%zu", strlen(head));
    handle_clf(header, body, len, &reply);
    assert_int_equal(reply.http_status, 200);
    assert_null(reply.content_type);
    assert_null(reply_header(&reply, "Inference-Header-Content-Length"));
    assert_non_null(strstr(reply.body.data, "\"data\":[2,1,0]"));
    bms_buf_fini(&reply.body);
}


static void handler_refuses_malformed_header(void **state)
{
    static const char *const bad[] = {
        "", " ", "abc", "-1", "+3", "1 2", "12x", "0x10", "1e2",
    };
    const char *head = CLF_HEAD("");
    char body[512];
    char header[32];
    char want[160];
    size_t len = make_body(body, sizeof(body), head, clf_rows, 48);
    struct bms__reply reply;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        handle_clf(bad[i], body, len, &reply);
        assert_int_equal(reply.http_status, 400);
        assert_string_equal(reply.error, "Inference-Header-Content-Length:"
                            " expected a decimal integer, the bytes of JSON"
                            " at the start of the body");
        bms_buf_fini(&reply.body);
    }
    /* Spaces and tabs around the digits are not part of the value. */
    snprintf(header, sizeof(header), " %zu\t ", len + 1);
    snprintf(want, sizeof(want), "Inference-Header-Content-Length: %zu"
             " bytes, more than the body's %zu", len + 1, len);
    handle_clf(header, body, len, &reply);
    assert_int_equal(reply.http_status, 400);
    assert_string_equal(reply.error, want);
    bms_buf_fini(&reply.body);
    /* Past 2^64: still a number, still more than the body. */
    snprintf(want, sizeof(want), "Inference-Header-Content-Length:"
             " 99999999999999999999 bytes, more than the body's %zu", len);
    handle_clf("99999999999999999999", body, len, &reply);
    assert_int_equal(reply.http_status, 400);
    assert_string_equal(reply.error, want);
    bms_buf_fini(&reply.body);
}


/* ---- the cache ---- */

static void cache_keeps_binary_and_json_requests_apart(void **state)
{
    static const char body[] = "{\"inputs\": []}0123";
    struct bms_cache_config config = {1, 1 << 20, 60};
    struct bms__cache *cache = NULL;
    struct bms__cache_key json_key;
    struct bms__cache_key split_15;
    struct bms__cache_key split_16;
    struct bms_buf out = {0};
    int64_t answer_json_size = 0;

    (void)state;
    assert_int_equal(bms__cache_create(0, &cache), BMS_OK);
    bms__cache_key_init(&json_key, "m", 1, body, 19, -1);
    bms__cache_key_init(&split_15, "m", 1, body, 19, 15);
    bms__cache_key_init(&split_16, "m", 1, body, 19, 16);
    assert_int_equal(bms__cache_put(cache, &split_15, "JSONbin", 7, 4,
                                    &config), BMS_OK);
    assert_int_equal(bms__cache_get(cache, &json_key, &out, NULL),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms__cache_get(cache, &split_16, &out, NULL),
                     BMS_ERR_NOT_FOUND);
    assert_int_equal(bms__cache_get(cache, &split_15, &out,
                                    &answer_json_size), BMS_OK);
    assert_string_equal(out.data, "JSONbin");
    assert_int_equal(answer_json_size, 4);
    bms_buf_reset(&out);
    assert_int_equal(bms__cache_put(cache, &json_key, "{}", 2, -1, &config),
                     BMS_OK);
    assert_int_equal(bms__cache_get(cache, &json_key, &out,
                                    &answer_json_size), BMS_OK);
    assert_string_equal(out.data, "{}");
    assert_int_equal(answer_json_size, -1);
    bms_buf_fini(&out);
    bms__cache_destroy(cache);
}


int bms_test_v2_binary(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(binary_fp32_input_takes_little_endian_bytes),
        cmocka_unit_test(binary_inputs_take_the_part_in_order),
        cmocka_unit_test(binary_zero_elements_take_no_bytes),
        cmocka_unit_test(binary_parse_reads_output_flags),
        cmocka_unit_test(binary_parse_rejects_sizes_that_do_not_fit),
        cmocka_unit_test(binary_parse_rejects_bytes_left_over),
        cmocka_unit_test(binary_parse_rejects_bad_binary_fields),
        cmocka_unit_test(json_request_refuses_binary_data_size),
        cmocka_unit_test(binary_answer_gives_indices_and_tensors),
        cmocka_unit_test(output_false_wins_over_request_flag),
        cmocka_unit_test(binary_top_k_writes_length_prefixed_strings),
        cmocka_unit_test(binary_request_may_get_a_json_answer),
        cmocka_unit_test(call_refuses_header_past_the_body),
        cmocka_unit_test(handler_answers_binary_as_octet_stream),
        cmocka_unit_test(handler_json_answer_keeps_json_headers),
        cmocka_unit_test(handler_refuses_malformed_header),
        cmocka_unit_test(cache_keeps_binary_and_json_requests_apart),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
