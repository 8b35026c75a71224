/*
 * Internal to the server: an Open Inference Protocol infer request as the
 * streaming parser leaves it.  The parser checks everything that needs no
 * model: field types, datatype names, that each value fits its datatype,
 * that nested data is rectangular and that the element count matches the
 * shape.  Checks against the model are v2.c's.
 */
#ifndef BMS_SERVER_V2_PARSE_H
#define BMS_SERVER_V2_PARSE_H

#include "bms/base.h"
#include "bms/tensor.h"

/* Most elements one input tensor may hold (64 M). */
#define BMS__V2_MAX_ELEMS ((int64_t)64 * 1024 * 1024)

struct bms__v2_input {
    char *name;                  /* NUL-terminated, may hold a NUL */
    size_t name_len;
    enum bms_dtype dtype;
    int n_dims;
    int64_t dims[BMS_MAX_DIMS];  /* the request's "shape" */
    struct bms_buf data;         /* n_elems values of dtype, row-major */
    int64_t n_elems;
};

struct bms__v2_output {
    char *name;
    size_t name_len;
    int64_t classification;      /* top K asked for; 0 when not */
    int raw;                     /* 1: the graph's tensor as it is */
};

struct bms__v2_request {
    char *id;                    /* NULL when the request has none */
    size_t id_len;
    struct bms__v2_input *inputs;
    int n_inputs;
    struct bms__v2_output *outputs;  /* empty: every output */
    int n_outputs;
    int64_t timeout_ms;          /* parameters.timeout_ms; 0 when absent */
};

/*
 * Parse an infer request body.  On success *out owns a new request (free it
 * with bms__v2_request_destroy).  Fails with BMS_ERR_INVALID for malformed
 * JSON or a field of the wrong type or value (diag names the field),
 * BMS_ERR_LIMIT for a tensor of more than BMS__V2_MAX_ELEMS elements and
 * BMS_ERR_NOMEM.  Thread-safe: the parser keeps no global state.
 */
enum bms_status bms__v2_request_parse(const char *body, size_t len,
                                      struct bms__v2_request **out,
                                      struct bms_diag *diag);

/* As bms__v2_request_parse with another element limit (for tests). */
enum bms_status bms__v2_request_parse_limited(const char *body, size_t len,
                                              int64_t max_elems,
                                              struct bms__v2_request **out,
                                              struct bms_diag *diag);

/* Free a request and everything in it; accepts NULL. */
void bms__v2_request_destroy(struct bms__v2_request *req);

#endif
