/*
 * Internal to the server: an Open Inference Protocol infer request as the
 * streaming parser leaves it.  The parser checks everything that needs no
 * model: field types, datatype names, that each value fits its datatype,
 * that nested data is rectangular and that the element count matches the
 * shape, and for the binary tensor data extension that each input's
 * binary_data_size is what its shape takes and that the binary part is
 * taken whole.  Checks against the model are v2.c's.
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
    size_t binary_size;          /* parameters.binary_data_size, bytes;
                                  * 0 when its data was JSON */
};

struct bms__v2_output {
    char *name;
    size_t name_len;
    int64_t classification;      /* top K asked for; 0 when not */
    int raw;                     /* 1: the graph's tensor as it is */
    int binary;                  /* parameters.binary_data: 1, 0, or -1
                                  * when not given */
};

struct bms__v2_request {
    char *id;                    /* NULL when the request has none */
    size_t id_len;
    struct bms__v2_input *inputs;
    int n_inputs;
    struct bms__v2_output *outputs;  /* empty: every output */
    int n_outputs;
    int64_t timeout_ms;          /* parameters.timeout_ms; 0 when absent */
    int binary_output;           /* parameters.binary_data_output */
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

/*
 * As bms__v2_request_parse_limited for a body of the binary tensor data
 * extension: body (len bytes) is its JSON part and binary (binary_len
 * bytes) the rest, the data of the inputs that give
 * parameters.binary_data_size, one after another in the order of
 * "inputs".  Each such input's bytes are copied once into its buffer
 * (little-endian on the wire, converted to the host's order).  binary
 * NULL: the request has no binary part, and binary_data_size is refused.
 * Fails as bms__v2_request_parse does, and with BMS_ERR_INVALID for a
 * binary_data_size that is not the bytes its shape and datatype take, or
 * when the binary part is too short or has bytes left over.
 */
enum bms_status bms__v2_request_parse_binary(const char *body, size_t len,
                                             const char *binary,
                                             size_t binary_len,
                                             int64_t max_elems,
                                             struct bms__v2_request **out,
                                             struct bms_diag *diag);

/*
 * As bms__v2_request_parse_binary, but every value of "data" goes through
 * yajl's events, as none does in the server: the fast path for plain
 * number arrays is off.  For tests that compare the two; the results and
 * messages must be the same.
 */
enum bms_status bms__v2_request_parse_events(const char *body, size_t len,
                                             const char *binary,
                                             size_t binary_len,
                                             int64_t max_elems,
                                             struct bms__v2_request **out,
                                             struct bms_diag *diag);

/* Convert n_elems elements of elem_size bytes at data between
 * little-endian and the host's order, in place (a no-op on a
 * little-endian host). */
void bms__v2_from_le(void *data, int64_t n_elems, size_t elem_size);

/* Free a request and everything in it; accepts NULL. */
void bms__v2_request_destroy(struct bms__v2_request *req);

#endif
