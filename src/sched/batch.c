/*
 * Dynamic batching's data movement: requests merged along the first
 * dimension, outputs cut back into one block per request.  Nothing here
 * locks; the worker that owns the batch calls it.
 */
#include <stdlib.h>
#include <string.h>

#include "sched/batch.h"

/* Each tensor's data in a result block starts on this boundary. */
#define ALIGN 64


static size_t align_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}


int bms__batch_compatible(const struct bms_tensor *a,
                          const struct bms_tensor *b, int n_inputs)
{
    for (int k = 0; k < n_inputs; k++) {
        if (a[k].dtype != b[k].dtype || a[k].n_dims != b[k].n_dims ||
            a[k].n_dims < 1) {
            return 0;
        }
        for (int d = 1; d < a[k].n_dims; d++) {
            if (a[k].dims[d] != b[k].dims[d]) {
                return 0;
            }
        }
    }
    return 1;
}


enum bms_status bms__batch_merge(const struct bms_tensor *const *jobs,
                                 int n_jobs, int n_inputs,
                                 struct bms_buf *scratch,
                                 struct bms_tensor *merged)
{
    for (int k = 0; k < n_inputs; k++) {
        int64_t rows = 0;
        enum bms_status rc;

        bms_buf_reset(&scratch[k]);
        for (int i = 0; i < n_jobs; i++) {
            const struct bms_tensor *t = &jobs[i][k];

            rc = bms_buf_append(&scratch[k], t->data, bms_tensor_size(t));
            if (rc != BMS_OK) {
                return rc;
            }
            rows += t->dims[0];
        }
        merged[k] = jobs[0][k];
        merged[k].dims[0] = rows;
        merged[k].data = scratch[k].data;
        if (bms_tensor_size(&merged[k]) != scratch[k].len) {
            return BMS_ERR_LIMIT;
        }
    }
    return BMS_OK;
}


int bms__batch_splittable(const struct bms_tensor *outputs, int n_outputs,
                          int64_t n_items)
{
    for (int j = 0; j < n_outputs; j++) {
        if (outputs[j].n_dims < 1 || outputs[j].dims[0] != n_items) {
            return 0;
        }
    }
    return 1;
}


/* The bytes of one row of t (a tensor of rank >= 1). */
static size_t row_size(const struct bms_tensor *t)
{
    struct bms_tensor row = *t;

    row.dims[0] = 1;
    return bms_tensor_size(&row);
}


enum bms_status bms__batch_slice(const struct bms_tensor *outputs,
                                 int n_outputs, int64_t first,
                                 int64_t n_rows, int whole,
                                 struct bms_sched_result *result)
{
    size_t head = align_up((size_t)(n_outputs > 0 ? n_outputs : 1) *
                           sizeof(struct bms_tensor));
    size_t total = head;
    struct bms_tensor *ts;
    char *block;
    char *p;

    for (int j = 0; j < n_outputs; j++) {
        size_t size = whole ? bms_tensor_size(&outputs[j])
                            : row_size(&outputs[j]) * (size_t)n_rows;

        total += align_up(size);
    }
    block = aligned_alloc(ALIGN, total);
    if (block == NULL) {
        return BMS_ERR_NOMEM;
    }
    ts = (struct bms_tensor *)block;
    p = block + head;
    for (int j = 0; j < n_outputs; j++) {
        const char *src = outputs[j].data;
        size_t size;

        ts[j] = outputs[j];
        if (whole) {
            size = bms_tensor_size(&outputs[j]);
        } else {
            size = row_size(&outputs[j]) * (size_t)n_rows;
            src += row_size(&outputs[j]) * (size_t)first;
            ts[j].dims[0] = n_rows;
        }
        if (size > 0) {
            memcpy(p, src, size);
        }
        ts[j].data = p;
        p += align_up(size);
    }
    result->n_outputs = n_outputs;
    result->outputs = ts;
    result->block = block;
    return BMS_OK;
}
