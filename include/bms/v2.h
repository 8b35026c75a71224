/*
 * The Open Inference Protocol's JSON messages, shared by the HTTP server
 * and by offline prediction (`bms predict`), so that one model gives the
 * same answer both ways.
 */
#ifndef BMS_V2_H
#define BMS_V2_H

#include "bms/base.h"
#include "bms/repo.h"

/*
 * Run one infer request (a v2 JSON body) on served and append the JSON
 * response to out.  Fails with BMS_ERR_INVALID (diag names the field and
 * the problem), BMS_ERR_LIMIT for a tensor past the element limit, or the
 * engine's status.
 */
enum bms_status bms_v2_infer(struct bms_served *served, const char *body,
                             size_t len, struct bms_buf *out,
                             struct bms_diag *diag);

/* Append the model metadata response for served. */
enum bms_status bms_v2_model_metadata(const struct bms_repo *repo,
                                      const struct bms_served *served,
                                      struct bms_buf *out);

/* Append {"error": "<msg>"} with msg escaped. */
enum bms_status bms_v2_error(struct bms_buf *out, const char *msg);

#endif
