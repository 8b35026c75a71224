/*
 * Internal to the scheduler: merging the inputs of several requests along
 * the first (batch) dimension into one execution, and cutting each
 * request's rows back out of the outputs.  Tensors are row-major, so the
 * rows of one request are one contiguous run of bytes in every tensor.
 */
#ifndef BMS_SCHED_BATCH_H
#define BMS_SCHED_BATCH_H

#include "bms/base.h"
#include "bms/sched.h"
#include "bms/tensor.h"

/*
 * Whether two requests' inputs (n_inputs tensors each) can share one
 * execution: every input of the same datatype and rank, rank >= 1, and
 * the same dims after the first.  Thread-safe.
 */
int bms__batch_compatible(const struct bms_tensor *a,
                          const struct bms_tensor *b, int n_inputs);

/*
 * Concatenate input k of every request (jobs[i] points to request i's
 * n_inputs tensors, all compatible) along the first dimension into
 * merged[k], whose data lives in scratch[k] (grown as needed, kept for
 * the next batch).  Returns BMS_ERR_NOMEM, or BMS_ERR_LIMIT when the
 * merged size does not fit.
 */
enum bms_status bms__batch_merge(const struct bms_tensor *const *jobs,
                                 int n_jobs, int n_inputs,
                                 struct bms_buf *scratch,
                                 struct bms_tensor *merged);

/*
 * Whether every output (n_outputs) has rank >= 1 and n_items rows, so
 * that it can be split per request.
 */
int bms__batch_splittable(const struct bms_tensor *outputs, int n_outputs,
                          int64_t n_items);

/*
 * Copy rows first..first+n_rows-1 of every output into a new block owned
 * by result (when whole is set, the outputs as they are, whatever their
 * shape).  Returns BMS_ERR_NOMEM with result untouched.
 */
enum bms_status bms__batch_slice(const struct bms_tensor *outputs,
                                 int n_outputs, int64_t first,
                                 int64_t n_rows, int whole,
                                 struct bms_sched_result *result);

#endif
