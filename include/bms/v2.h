/*
 * The Open Inference Protocol's JSON messages, shared by the HTTP server
 * and by offline prediction (`bms predict`), so that one model gives the
 * same answer both ways.
 */
#ifndef BMS_V2_H
#define BMS_V2_H

#include "bms/base.h"
#include "bms/repo.h"
#include "bms/sched.h"

/*
 * Run one infer request (a v2 JSON body) on served and append the JSON
 * response to out.  Fails with BMS_ERR_INVALID (diag names the field and
 * the problem), BMS_ERR_LIMIT for a tensor past the element limit, or the
 * engine's status.
 */
enum bms_status bms_v2_infer(struct bms_served *served, const char *body,
                             size_t len, struct bms_buf *out,
                             struct bms_diag *diag);

/*
 * An infer request split in two, for callers that run it elsewhere (the
 * scheduler): parse and check it against served, run the inputs, answer
 * with the outputs.  bms_v2_infer is the two with a run in between.
 */
struct bms_v2_call;

/*
 * Parse a v2 JSON body and check it against served's graph and manifest.
 * On success *out owns a new call (free it with bms_v2_call_destroy); it
 * borrows served.  Fails as bms_v2_infer does before running.
 * Thread-safe.
 */
enum bms_status bms_v2_call_parse(struct bms_served *served,
                                  const char *body, size_t len,
                                  struct bms_v2_call **out,
                                  struct bms_diag *diag);

/*
 * bms_v2_call_parse with another element limit: max_elements (> 0) is
 * the most elements one input tensor may hold; past it BMS_ERR_LIMIT,
 * decided from "shape" before any data is kept.  0: the default (64 Mi).
 */
enum bms_status bms_v2_call_parse_limited(struct bms_served *served,
                                          const char *body, size_t len,
                                          int64_t max_elements,
                                          struct bms_v2_call **out,
                                          struct bms_diag *diag);

/*
 * bms_v2_call_parse_limited for a body of the binary tensor data
 * extension: its first json_size bytes (the Inference-Header-Content-Length
 * header) are the JSON request, the bytes after them the data of the
 * inputs that give parameters.binary_data_size, in the order of "inputs",
 * little-endian and row-major.  Each input's bytes are copied once into
 * its tensor.  Fails as bms_v2_call_parse does and with BMS_ERR_INVALID
 * for json_size > len, a binary_data_size other than the bytes the shape
 * takes, an input with both "data" and binary_data_size, or binary bytes
 * missing or left over.  Thread-safe.
 */
enum bms_status bms_v2_call_parse_binary(struct bms_served *served,
                                         const char *body, size_t len,
                                         size_t json_size,
                                         int64_t max_elements,
                                         struct bms_v2_call **out,
                                         struct bms_diag *diag);

/* Whether the call's answer carries binary data: some answered output
 * has parameters.binary_data true, or the request's
 * parameters.binary_data_output is true and the output does not say
 * false. */
int bms_v2_call_binary_answer(const struct bms_v2_call *call);

/* The call's input tensors, one per graph input in graph order; they
 * live as long as the call. */
const struct bms_tensor *bms_v2_call_inputs(const struct bms_v2_call *call);

/* The request's `parameters.timeout_ms`; 0 when it gives none. */
int64_t bms_v2_call_timeout_ms(const struct bms_v2_call *call);

/*
 * Append the response for outputs (one per graph output, as
 * bms_session_run gives them) to out: the JSON, then, with
 * bms_v2_call_binary_answer, the binary outputs' bytes in the order of
 * the outputs in the JSON.  On success *json_size (when not NULL) is the
 * bytes of the JSON part of what was appended.  On failure out is left
 * as it was.
 */
enum bms_status bms_v2_call_respond(const struct bms_v2_call *call,
                                    const struct bms_tensor *outputs,
                                    struct bms_buf *out, size_t *json_size,
                                    struct bms_diag *diag);

/*
 * Run the call on a session borrowed from its served model (given back
 * on every path) and append the answer as bms_v2_call_respond
 * does.  Fails with the engine's status; out is then left as it was.
 * Thread-safe.
 */
enum bms_status bms_v2_call_run(const struct bms_v2_call *call,
                                struct bms_buf *out, size_t *json_size,
                                struct bms_diag *diag);

void bms_v2_call_destroy(struct bms_v2_call *call);  /* accepts NULL */

/* Append the model metadata response for served, as the graph and the
 * manifest describe it (without "scheduling"). */
enum bms_status bms_v2_model_metadata(const struct bms_repo *repo,
                                      const struct bms_served *served,
                                      struct bms_buf *out);

/* The same with a "scheduling" object: the manifest's scheduling fields
 * and, when st is not NULL, the scheduler's counters as its "stats". */
enum bms_status bms_v2_model_metadata_stats(const struct bms_repo *repo,
                                            const struct bms_served *served,
                                            const struct bms_sched_stats *st,
                                            struct bms_buf *out);

/* bms_v2_model_metadata_stats with more members after the others: extra
 * is JSON text of one or more members ("\"routing\": {...}"), or NULL. */
enum bms_status bms_v2_model_metadata_extra(const struct bms_repo *repo,
                                            const struct bms_served *served,
                                            const struct bms_sched_stats *st,
                                            const char *extra,
                                            struct bms_buf *out);

/* Append {"error": "<msg>"} with msg escaped. */
enum bms_status bms_v2_error(struct bms_buf *out, const char *msg);

#endif
