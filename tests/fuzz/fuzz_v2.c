/*
 * libFuzzer target for the v2 infer request path: the streaming request
 * parser (src/server/v2_parse.c), the binding of a request to a model and
 * the response writer (src/server/v2.c).
 *
 * An input is a mode byte, then the request.  The mode:
 *
 *     bits 0-1  the model: 0 and 3 fashion_mlp, 1 v2_clf, 2 v2_ints
 *     bits 2-3  the element limit: the default, 4096, 784, 7
 *     bit 6     also run the engine, when the inputs are small
 *     bit 7     the binary tensor data extension: the next two bytes
 *               (little-endian) are the JSON length, as the header
 *               Inference-Header-Content-Length gives it
 *
 * and the rest of the input is the body.  The models load once, from the
 * repository root (the current folder).  A request that binds is answered
 * on made-up outputs of the shapes the graph declares, their bytes taken
 * from the input, so that the writer meets NaN, infinities and ties
 * without the engine's cost.
 *
 * A crash, besides what the sanitizers find: a refusal with an empty
 * message or that touched the output buffer; a parsed tensor whose bytes
 * disagree with its shape; the parser alone and the bound call disagreeing
 * on a refusal; an answer that is not JSON, whose binary part is not the
 * sum of its binary_data_size, or that drops the request's id; the
 * parser's fast path for "data" disagreeing with its plain events.
 *
 * tests/unit/test_fuzz_regress.c includes this file with
 * BMS_FUZZ_V2_NO_MAIN defined, so that the kept inputs run through the
 * same code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "bms/repo.h"
#include "bms/v2.h"
#include "server/v2_parse.h"

#define FUZZ_V2_MODEL 0x03
#define FUZZ_V2_LIMIT 0x0c
#define FUZZ_V2_RUN 0x40
#define FUZZ_V2_BINARY 0x80

#define FUZZ_V2_N_MODELS 3

/* Made-up outputs past this many bytes are not written, and inputs past
 * this many elements are not run: bugs, not big answers, are the aim. */
#define FUZZ_V2_MAX_OUTPUT_SIZE ((size_t)1 << 24)
#define FUZZ_V2_MAX_RUN_NUMEL ((int64_t)4 * 784)

/* What the answer buffer holds before a call, to see that a failed call
 * leaves it as it was and that a good one appends after it. */
#define FUZZ_V2_PREFIX "prefix"
#define FUZZ_V2_PREFIX_LEN (sizeof(FUZZ_V2_PREFIX) - 1)

struct fuzz_v2_models {
    struct bms_repo *repos[FUZZ_V2_N_MODELS];
    struct bms_served *served[FUZZ_V2_N_MODELS];
};

/* One input taken apart. */
struct fuzz_v2_case {
    struct bms_served *served;
    int64_t max_elements;        /* 0: the default */
    int run;
    int binary;
    size_t json_size;            /* binary only; may exceed len */
    const char *body;
    size_t len;                  /* bytes */
    const uint8_t *input;        /* the whole input, for output bytes */
    size_t input_size;
};

static const struct {
    const char *dir;
    const char *name;
    int64_t version;
} fuzz_v2_model_list[FUZZ_V2_N_MODELS] = {
    {"models", "fashion_mlp", 1},
    {"tests/data/v2_repo", "v2_clf", 2},
    {"tests/data/v2_repo", "v2_ints", 1},
};


static void fuzz_v2_close(struct fuzz_v2_models *m)
{
    for (int i = 0; i < FUZZ_V2_N_MODELS; i++) {
        bms_repo_close(m->repos[i]);
        m->repos[i] = NULL;
        m->served[i] = NULL;
    }
}


/* Load the models, relative to the repository root. */
static enum bms_status fuzz_v2_open(struct fuzz_v2_models *m,
                                    struct bms_diag *diag)
{
    enum bms_status rc = BMS_OK;

    memset(m, 0, sizeof(*m));
    for (int i = 0; rc == BMS_OK && i < FUZZ_V2_N_MODELS; i++) {
        const char *name = fuzz_v2_model_list[i].name;
        int64_t version = fuzz_v2_model_list[i].version;

        rc = bms_repo_open_one(fuzz_v2_model_list[i].dir, name, NULL,
                               version, &m->repos[i], diag);
        if (rc == BMS_OK) {
            m->served[i] = bms_repo_find(m->repos[i], name, version);
        }
        if (rc == BMS_OK && m->served[i] == NULL) {
            rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "%s/%s version %lld"
                              " did not load", fuzz_v2_model_list[i].dir,
                              name, (long long)version);
        }
    }
    if (rc != BMS_OK) {
        fuzz_v2_close(m);
    }
    return rc;
}


/* Name a broken contract in why; returns BMS_ERR_INTERNAL. */
static enum bms_status broken(struct bms_diag *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum bms_status broken(struct bms_diag *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    return BMS_ERR_INTERNAL;
}


static void take_apart(const struct fuzz_v2_models *m, const uint8_t *data,
                       size_t size, struct fuzz_v2_case *c)
{
    static const int64_t limits[4] = {0, 4096, 784, 7};
    unsigned mode = size > 0 ? data[0] : 0;
    size_t head = 1;

    memset(c, 0, sizeof(*c));
    c->served = m->served[(mode & FUZZ_V2_MODEL) % FUZZ_V2_N_MODELS];
    c->max_elements = limits[(mode & FUZZ_V2_LIMIT) >> 2];
    c->run = (mode & FUZZ_V2_RUN) != 0;
    c->binary = (mode & FUZZ_V2_BINARY) != 0;
    if (c->binary) {
        head = 3;
        c->json_size = (size > 1 ? data[1] : 0) |
                       (size_t)(size > 2 ? data[2] : 0) << 8;
    }
    if (head > size) {
        head = size;
    }
    c->body = (const char *)data + head;
    c->len = size - head;
    c->input = data;
    c->input_size = size;
}


/* ---- the parser alone ---- */

static enum bms_status check_parsed_input(const struct bms__v2_input *in,
                                          int i, int64_t max_elems,
                                          struct bms_diag *why)
{
    size_t elem_size = bms_dtype_size(in->dtype);
    int64_t numel = 1;

    if (in->name == NULL || in->name[in->name_len] != '\0') {
        return broken(why, "inputs[%d]: name not kept with its length", i);
    }
    if (elem_size == 0 || in->n_dims < 0 || in->n_dims > BMS_MAX_DIMS) {
        return broken(why, "inputs[%d]: datatype %d, %d dims", i,
                      (int)in->dtype, in->n_dims);
    }
    for (int d = 0; d < in->n_dims; d++) {
        if (in->dims[d] < 0 ||
            __builtin_mul_overflow(numel, in->dims[d], &numel)) {
            return broken(why, "inputs[%d].shape[%d]: %lld passed", i, d,
                          (long long)in->dims[d]);
        }
    }
    if (numel > max_elems || in->n_elems != numel ||
        in->data.len != (size_t)numel * elem_size) {
        return broken(why, "inputs[%d]: shape holds %lld elements, parsed"
                      " %lld in %zu bytes (limit %lld)", i,
                      (long long)numel, (long long)in->n_elems,
                      in->data.len, (long long)max_elems);
    }
    if (in->binary_size != 0 && in->binary_size != in->data.len) {
        return broken(why, "inputs[%d]: binary_data_size %zu, %zu bytes",
                      i, in->binary_size, in->data.len);
    }
    for (size_t b = 0; in->dtype == BMS_DTYPE_BOOL && b < in->data.len;
         b++) {
        if ((unsigned char)in->data.data[b] > 1) {
            return broken(why, "inputs[%d]: BOOL byte %zu is %u", i, b,
                          (unsigned)(unsigned char)in->data.data[b]);
        }
    }
    return BMS_OK;
}


static enum bms_status check_parsed(const struct bms__v2_request *req,
                                    int64_t max_elems, struct bms_diag *why)
{
    enum bms_status rc = BMS_OK;

    if (req->id != NULL && req->id[req->id_len] != '\0') {
        return broken(why, "id: not kept with its length");
    }
    if (req->timeout_ms < 0 || req->timeout_ms > (int64_t)86400000) {
        return broken(why, "parameters.timeout_ms: %lld passed",
                      (long long)req->timeout_ms);
    }
    for (int i = 0; rc == BMS_OK && i < req->n_inputs; i++) {
        rc = check_parsed_input(&req->inputs[i], i, max_elems, why);
    }
    for (int j = 0; rc == BMS_OK && j < req->n_outputs; j++) {
        const struct bms__v2_output *o = &req->outputs[j];

        if (o->name == NULL || o->classification < 0 ||
            (o->raw && o->classification > 0) || o->binary < -1 ||
            o->binary > 1) {
            rc = broken(why, "outputs[%d]: name %s, classification %lld,"
                        " raw %d, binary %d", j,
                        o->name != NULL ? "given" : "missing",
                        (long long)o->classification, o->raw, o->binary);
        }
    }
    return rc;
}


/* The parser with its fast path for "data" and without it must agree on
 * the status, the message and every byte of the inputs. */
static enum bms_status check_same_as_events(const char *json,
                                            size_t json_len,
                                            const char *bin, size_t bin_len,
                                            int64_t max_elems,
                                            enum bms_status parse_rc,
                                            const struct bms__v2_request *req,
                                            const struct bms_diag *got,
                                            struct bms_diag *why)
{
    struct bms__v2_request *slow = NULL;
    struct bms_diag slow_diag = {""};
    enum bms_status slow_rc;
    enum bms_status rc = BMS_OK;

    slow_rc = bms__v2_request_parse_events(json, json_len, bin, bin_len,
                                           max_elems, &slow, &slow_diag);
    if (slow_rc != parse_rc || strcmp(slow_diag.msg, got->msg) != 0) {
        rc = broken(why, "fast path %s \"%s\", events %s \"%s\"",
                    bms_status_name(parse_rc), got->msg,
                    bms_status_name(slow_rc), slow_diag.msg);
    }
    for (int i = 0; rc == BMS_OK && req != NULL && i < req->n_inputs; i++) {
        const struct bms__v2_input *a = &req->inputs[i];
        const struct bms__v2_input *b = &slow->inputs[i];

        if (a->dtype != b->dtype || a->n_elems != b->n_elems ||
            a->data.len != b->data.len ||
            (a->data.len > 0 &&
             memcmp(a->data.data, b->data.data, a->data.len) != 0)) {
            rc = broken(why, "inputs[%d]: the fast path and the events"
                        " parse other data", i);
        }
    }
    bms__v2_request_destroy(slow);
    return rc;
}


/*
 * Parse the request alone, its JSON and binary parts in buffers of their
 * own so that the sanitizer sees a read past either, and check what the
 * parser made of it.  *parse_rc and got get the parser's status and
 * message; *out the request on success.
 */
static enum bms_status parse_alone(const struct fuzz_v2_case *c,
                                   enum bms_status *parse_rc,
                                   struct bms__v2_request **out,
                                   struct bms_diag *got,
                                   struct bms_diag *why)
{
    size_t json_len = c->binary ? c->json_size : c->len;
    size_t bin_len = c->len - json_len;
    int64_t max_elems = c->max_elements > 0 ? c->max_elements
                                            : BMS__V2_MAX_ELEMS;
    char *json = malloc(json_len > 0 ? json_len : 1);
    char *bin = c->binary ? malloc(bin_len > 0 ? bin_len : 1) : NULL;
    enum bms_status rc = BMS_OK;

    if (json == NULL || (c->binary && bin == NULL)) {
        rc = broken(why, "fuzz_v2: out of memory");
        goto out;
    }
    memcpy(json, c->body, json_len);
    if (bin != NULL) {
        memcpy(bin, c->body + json_len, bin_len);
    }
    *out = NULL;
    got->msg[0] = '\0';
    *parse_rc = bms__v2_request_parse_binary(json, json_len, bin, bin_len,
                                             max_elems, out, got);
    if (*parse_rc != BMS_OK && (*out != NULL || got->msg[0] == '\0')) {
        rc = broken(why, "parse refused (%s) with %s",
                    bms_status_name(*parse_rc),
                    *out != NULL ? "a request" : "no message");
    } else if (*parse_rc == BMS_OK) {
        rc = check_parsed(*out, max_elems, why);
    }
    if (rc == BMS_OK) {
        rc = check_same_as_events(json, json_len, bin, bin_len, max_elems,
                                  *parse_rc, *out, got, why);
    }

out:
    free(bin);
    free(json);
    return rc;
}


/* ---- the call ---- */

/* The bound inputs must be the parsed ones, byte for byte. */
static enum bms_status check_bound(const struct bms_v2_call *call,
                                   const struct bms_model *model,
                                   const struct bms__v2_request *req,
                                   struct bms_diag *why)
{
    const struct bms_tensor *t = bms_v2_call_inputs(call);

    if (bms_v2_call_timeout_ms(call) != req->timeout_ms) {
        return broken(why, "timeout_ms: the call has %lld, the request"
                      " %lld", (long long)bms_v2_call_timeout_ms(call),
                      (long long)req->timeout_ms);
    }
    for (int k = 0; k < bms_model_n_inputs(model); k++) {
        const char *name = bms_model_input(model, k)->name;
        const struct bms__v2_input *in = NULL;

        for (int i = 0; i < req->n_inputs; i++) {
            if (strcmp(req->inputs[i].name, name) == 0) {
                in = &req->inputs[i];
            }
        }
        if (in == NULL || t[k].dtype != in->dtype ||
            t[k].n_dims != in->n_dims ||
            memcmp(t[k].dims, in->dims, sizeof(in->dims)) != 0 ||
            bms_tensor_size(&t[k]) != in->data.len ||
            (in->data.len > 0 &&
             memcmp(t[k].data, in->data.data, in->data.len) != 0)) {
            return broken(why, "input \"%s\": bound other than parsed",
                          name);
        }
    }
    return BMS_OK;
}


/*
 * Made-up outputs of the shapes the graph declares, an open dimension
 * taking the batch of the bound inputs, their bytes taken in turn from
 * the input.  Returns 0 when they would be too big to write; the caller
 * frees the data of outs either way.
 */
static int make_outputs(const struct bms_v2_call *call,
                        const struct bms_model *model,
                        const struct fuzz_v2_case *c,
                        struct bms_tensor *outs)
{
    const struct bms_tensor *in = bms_v2_call_inputs(call);
    int n_outputs = bms_model_n_outputs(model);
    int64_t batch = 1;
    size_t total = 0;
    size_t from = 0;

    for (int k = 0; k < bms_model_n_inputs(model); k++) {
        const struct bms_value_info *info = bms_model_input(model, k);

        if (in[k].n_dims > 0 && (info->n_dims < 0 || info->dims[0] < 0)) {
            batch = in[k].dims[0];
            break;
        }
    }
    if (batch > (int64_t)FUZZ_V2_MAX_OUTPUT_SIZE) {
        return 0;
    }
    for (int k = 0; k < n_outputs; k++) {
        const struct bms_value_info *info = bms_model_output(model, k);
        struct bms_tensor *t = &outs[k];
        size_t size;

        t->dtype = info->dtype;
        t->n_dims = info->n_dims >= 0 ? info->n_dims : 1;
        for (int d = 0; d < t->n_dims; d++) {
            int64_t dim = info->n_dims >= 0 ? info->dims[d] : -1;

            t->dims[d] = dim >= 0 ? dim : batch;
        }
        size = bms_tensor_size(t);
        total += size;
        if (total > FUZZ_V2_MAX_OUTPUT_SIZE) {
            return 0;
        }
        t->data = malloc(size > 0 ? size : 1);
        if (t->data == NULL) {
            return 0;
        }
        for (size_t b = 0; b < size; b++, from++) {
            uint8_t v = c->input_size > 0
                        ? c->input[from % c->input_size] : (uint8_t)b;

            ((uint8_t *)t->data)[b] = t->dtype == BMS_DTYPE_BOOL ? v & 1
                                                                  : v;
        }
    }
    return 1;
}


static const char *tree_string(yajl_val obj, const char *key)
{
    const char *path[2] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);

    return v != NULL ? v->u.string : NULL;
}


/* Whether the id can be compared as text after a round trip: no NUL, and
 * no bytes that the writer may replace. */
static int id_comparable(const struct bms__v2_request *req)
{
    for (size_t i = 0; i < req->id_len; i++) {
        unsigned char b = (unsigned char)req->id[i];

        if (b == 0 || b > 0x7f) {
            return 0;
        }
    }
    return 1;
}


/* One answered output: named, typed, shaped, and either data or
 * binary_data_size; *binary_size adds the latter. */
static enum bms_status check_answer_output(yajl_val o, int j,
                                           int64_t *binary_size,
                                           struct bms_diag *why)
{
    static const char *size_path[] = {
        "parameters", "binary_data_size", NULL
    };
    static const char *shape_path[] = {"shape", NULL};
    static const char *data_path[] = {"data", NULL};
    yajl_val size = yajl_tree_get(o, size_path, yajl_t_number);
    yajl_val data = yajl_tree_get(o, data_path, yajl_t_array);

    if (!YAJL_IS_OBJECT(o) || tree_string(o, "name") == NULL ||
        tree_string(o, "datatype") == NULL ||
        yajl_tree_get(o, shape_path, yajl_t_array) == NULL) {
        return broken(why, "answer outputs[%d]: name, datatype or shape"
                      " missing", j);
    }
    if ((size == NULL) == (data == NULL)) {
        return broken(why, "answer outputs[%d]: %s", j, size == NULL
                      ? "neither data nor binary_data_size"
                      : "both data and binary_data_size");
    }
    if (size != NULL) {
        if (!YAJL_IS_INTEGER(size) || YAJL_GET_INTEGER(size) < 0) {
            return broken(why, "answer outputs[%d]: binary_data_size is"
                          " not a size", j);
        }
        *binary_size += YAJL_GET_INTEGER(size);
    }
    return BMS_OK;
}


/* The answer's outputs (want of them, each checked, their
 * binary_data_size added to *binary_size) and its id. */
static enum bms_status check_answer_top(yajl_val root,
                                        const struct bms__v2_request *req,
                                        int want, int64_t *binary_size,
                                        struct bms_diag *why)
{
    static const char *outputs_path[] = {"outputs", NULL};
    yajl_val outputs = yajl_tree_get(root, outputs_path, yajl_t_array);
    const char *id = tree_string(root, "id");
    enum bms_status rc = BMS_OK;

    if (outputs == NULL || (int)YAJL_GET_ARRAY(outputs)->len != want) {
        return broken(why, "answer: %d outputs expected", want);
    }
    if ((req->id == NULL) != (id == NULL) ||
        (req->id != NULL && id_comparable(req) &&
         strcmp(id, req->id) != 0)) {
        return broken(why, "answer: the id did not come back as it was");
    }
    for (int j = 0; rc == BMS_OK && j < want; j++) {
        rc = check_answer_output(YAJL_GET_ARRAY(outputs)->values[j], j,
                                 binary_size, why);
    }
    return rc;
}


/* Check an answer (n bytes at a, the JSON its first json_size) to req. */
static enum bms_status check_answer(const struct fuzz_v2_case *c,
                                    const struct bms_v2_call *call,
                                    const struct bms__v2_request *req,
                                    const char *a, size_t n,
                                    size_t json_size, struct bms_diag *why)
{
    const struct bms_model *model = bms_served_model(c->served);
    int want = req->n_outputs > 0 ? req->n_outputs
                                  : bms_model_n_outputs(model);
    char *json = malloc(json_size + 1);
    yajl_val root = NULL;
    int64_t binary_size = 0;
    char error[256];
    enum bms_status rc;

    if (json_size > n ||
        (!bms_v2_call_binary_answer(call) && json_size != n)) {
        rc = broken(why, "answer: JSON part %zu of %zu bytes", json_size,
                    n);
        goto out;
    }
    if (json == NULL) {
        rc = broken(why, "fuzz_v2: out of memory");
        goto out;
    }
    memcpy(json, a, json_size);
    json[json_size] = '\0';
    root = yajl_tree_parse(json, error, sizeof(error));
    if (root == NULL || strlen(json) != json_size) {
        rc = broken(why, "answer: not JSON: %.200s", root == NULL ? error
                    : "a NUL inside");
        goto out;
    }
    rc = check_answer_top(root, req, want, &binary_size, why);
    if (rc == BMS_OK && (uint64_t)binary_size != n - json_size) {
        rc = broken(why, "answer: binary_data_size adds to %lld, the"
                    " binary part is %zu bytes", (long long)binary_size,
                    n - json_size);
    }

out:
    yajl_tree_free(root);
    free(json);
    return rc;
}


/* The error body the server would send for msg must be JSON, and carry
 * msg as it is when msg is plain ASCII. */
static enum bms_status check_error_body(const char *msg,
                                        struct bms_diag *why)
{
    static const char *error_path[] = {"error", NULL};
    struct bms_buf body = {NULL, 0, 0};
    yajl_val root = NULL;
    yajl_val error;
    char text[256];
    int ascii = 1;
    enum bms_status rc = BMS_OK;

    for (const char *c = msg; *c != '\0'; c++) {
        ascii = ascii && (unsigned char)*c < 0x80;
    }
    if (bms_v2_error(&body, msg) != BMS_OK) {
        return broken(why, "fuzz_v2: out of memory");
    }
    root = yajl_tree_parse(body.data, text, sizeof(text));
    error = yajl_tree_get(root, error_path, yajl_t_string);
    if (root == NULL || strlen(body.data) != body.len) {
        rc = broken(why, "error body: not JSON: %.200s", root == NULL
                    ? text : "a NUL inside");
    } else if (error == NULL ||
               (ascii && strcmp(error->u.string, msg) != 0)) {
        rc = broken(why, "error body: the message did not come through");
    }
    yajl_tree_free(root);
    bms_buf_fini(&body);
    return rc;
}


/* A failed call must explain itself and leave the buffer as it was. */
static enum bms_status check_refusal(const char *what, enum bms_status rc,
                                     const struct bms_diag *got,
                                     const struct bms_buf *out,
                                     struct bms_diag *why)
{
    if (got->msg[0] == '\0') {
        return broken(why, "%s failed (%s) with no message", what,
                      bms_status_name(rc));
    }
    if (out != NULL && (out->len != FUZZ_V2_PREFIX_LEN ||
                        memcmp(out->data, FUZZ_V2_PREFIX,
                               FUZZ_V2_PREFIX_LEN) != 0)) {
        return broken(why, "%s failed (%s) and left %zu bytes", what,
                      bms_status_name(rc), out->len);
    }
    return check_error_body(got->msg, why);
}


/* Answer the call on made-up outputs. */
static enum bms_status answer_made_up(const struct fuzz_v2_case *c,
                                      const struct bms_v2_call *call,
                                      const struct bms__v2_request *req,
                                      struct bms_diag *why)
{
    const struct bms_model *model = bms_served_model(c->served);
    int n_outputs = bms_model_n_outputs(model);
    struct bms_tensor *outs = calloc((size_t)n_outputs + 1, sizeof(*outs));
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag got = {""};
    size_t json_size = 0;
    enum bms_status rc;

    if (outs == NULL ||
        bms_buf_puts(&out, FUZZ_V2_PREFIX) != BMS_OK) {
        rc = broken(why, "fuzz_v2: out of memory");
        goto out;
    }
    if (!make_outputs(call, model, c, outs)) {
        rc = BMS_OK;
        goto out;
    }
    rc = bms_v2_call_respond(call, outs, &out, &json_size, &got);
    if (rc != BMS_OK) {
        enum bms_status answered = rc;

        rc = check_refusal("bms_v2_call_respond", answered, &got,
                           &out, why);
        if (rc == BMS_OK && answered != BMS_ERR_NOMEM) {
            rc = broken(why, "answering outputs of the declared shapes"
                        " failed: %s", got.msg);
        }
        goto out;
    }
    rc = check_answer(c, call, req, out.data + FUZZ_V2_PREFIX_LEN,
                      out.len - FUZZ_V2_PREFIX_LEN, json_size, why);

out:
    for (int k = 0; outs != NULL && k < n_outputs; k++) {
        free(outs[k].data);
    }
    free(outs);
    bms_buf_fini(&out);
    return rc;
}


/* Run the call on the engine when its inputs are small. */
static enum bms_status answer_run(const struct fuzz_v2_case *c,
                                  const struct bms_v2_call *call,
                                  const struct bms__v2_request *req,
                                  struct bms_diag *why)
{
    const struct bms_model *model = bms_served_model(c->served);
    const struct bms_tensor *in = bms_v2_call_inputs(call);
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag got = {""};
    size_t json_size = 0;
    int64_t numel = 0;
    enum bms_status rc;

    for (int k = 0; k < bms_model_n_inputs(model); k++) {
        numel += bms_tensor_numel(&in[k]);
    }
    if (numel > FUZZ_V2_MAX_RUN_NUMEL) {
        return BMS_OK;
    }
    if (bms_buf_puts(&out, FUZZ_V2_PREFIX) != BMS_OK) {
        return broken(why, "fuzz_v2: out of memory");
    }
    rc = bms_v2_call_run(call, &out, &json_size, &got);
    if (rc != BMS_OK) {
        rc = check_refusal("bms_v2_call_run", rc, &got, &out, why);
    } else {
        rc = check_answer(c, call, req, out.data + FUZZ_V2_PREFIX_LEN,
                          out.len - FUZZ_V2_PREFIX_LEN, json_size, why);
    }
    bms_buf_fini(&out);
    return rc;
}


/* Parse and bind the case as the server does, from one body. */
static enum bms_status bind_call(const struct fuzz_v2_case *c,
                                 struct bms_v2_call **call,
                                 struct bms_diag *got)
{
    got->msg[0] = '\0';
    *call = NULL;
    if (c->binary) {
        return bms_v2_call_parse_binary(c->served, c->body, c->len,
                                        c->json_size, c->max_elements,
                                        call, got);
    }
    return bms_v2_call_parse_limited(c->served, c->body, c->len,
                                     c->max_elements, call, got);
}


/* The refusal of the bound call against the parser's own. */
static enum bms_status check_bind_refusal(const struct fuzz_v2_case *c,
                                          enum bms_status rc,
                                          const struct bms_v2_call *call,
                                          enum bms_status parse_rc,
                                          const struct bms_diag *parsed,
                                          const struct bms_diag *got,
                                          struct bms_diag *why)
{
    if (call != NULL) {
        return broken(why, "bind refused (%s) with a call",
                      bms_status_name(rc));
    }
    if (c->binary && c->json_size > c->len) {
        return rc == BMS_ERR_INVALID
               ? check_refusal("bind", rc, got, NULL, why)
               : broken(why, "a JSON length past the body gave %s",
                        bms_status_name(rc));
    }
    if (parse_rc != BMS_OK &&
        (rc != parse_rc || strcmp(got->msg, parsed->msg) != 0)) {
        return broken(why, "parse refused (%s: %s), bind (%s: %s)",
                      bms_status_name(parse_rc), parsed->msg,
                      bms_status_name(rc), got->msg);
    }
    if (parse_rc == BMS_OK && rc != BMS_ERR_INVALID &&
        rc != BMS_ERR_NOMEM) {
        return broken(why, "bind refused a parsed request with %s: %s",
                      bms_status_name(rc), got->msg);
    }
    return check_refusal("bind", rc, got, NULL, why);
}


/*
 * Run one fuzz input: parse it alone, bind it to its model, answer it.
 * Returns BMS_OK when bms kept every contract (*answered says whether the
 * request was answered or refused), BMS_ERR_INTERNAL with why naming the
 * broken one.
 */
static enum bms_status fuzz_v2_one(const struct fuzz_v2_models *m,
                                   const uint8_t *data, size_t size,
                                   int *answered, struct bms_diag *why)
{
    struct fuzz_v2_case c;
    struct bms__v2_request *req = NULL;
    struct bms_v2_call *call = NULL;
    struct bms_diag parsed = {""};
    struct bms_diag got = {""};
    enum bms_status parse_rc = BMS_ERR_INVALID;
    enum bms_status rc = BMS_OK;
    enum bms_status bound;

    *answered = 0;
    take_apart(m, data, size, &c);
    if (!c.binary || c.json_size <= c.len) {
        rc = parse_alone(&c, &parse_rc, &req, &parsed, why);
    }
    if (rc != BMS_OK) {
        goto out;
    }
    bound = bind_call(&c, &call, &got);
    if (bound != BMS_OK) {
        rc = check_bind_refusal(&c, bound, call, parse_rc, &parsed, &got,
                                why);
        goto out;
    }
    if (parse_rc != BMS_OK) {
        rc = broken(why, "parse refused (%s: %s), bind took it",
                    bms_status_name(parse_rc), parsed.msg);
        goto out;
    }
    rc = check_bound(call, bms_served_model(c.served), req, why);
    if (rc == BMS_OK) {
        rc = answer_made_up(&c, call, req, why);
    }
    if (rc == BMS_OK && c.run) {
        rc = answer_run(&c, call, req, why);
    }
    *answered = rc == BMS_OK;

out:
    bms_v2_call_destroy(call);
    bms__v2_request_destroy(req);
    return rc;
}


#ifndef BMS_FUZZ_V2_NO_MAIN

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct fuzz_v2_models models;


/* Drop bms's log lines: the fuzzer's own output is enough. */
static void quiet_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct bms_diag diag = {""};

    (void)argc;
    (void)argv;
    bms_log_set_handler(quiet_log, NULL);
    bms_engine_set_threads(1);
    if (fuzz_v2_open(&models, &diag) != BMS_OK) {
        fprintf(stderr, "fuzz_v2: %s (run from the repository root)\n",
                diag.msg);
        abort();
    }
    return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bms_diag why = {""};
    int answered;

    if (fuzz_v2_one(&models, data, size, &answered, &why) != BMS_OK) {
        fprintf(stderr, "fuzz_v2: %s\n", why.msg);
        abort();
    }
    return 0;
}

#endif
