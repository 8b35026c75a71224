/*
 * The Open Inference Protocol's JSON messages: run an infer request on a
 * served model and write the response, the model metadata, and errors.
 *
 * An infer request is parsed (v2_parse.c) and checked against the model's
 * graph and manifest into a struct bms_v2_call; the call's inputs run
 * elsewhere (the scheduler) or, in bms_v2_infer, on a session borrowed
 * from the served model, and the outputs are answered.  The session goes
 * back on every path, and a request that fails leaves the caller's buffer
 * as it was: no half response.
 *
 * With the binary tensor data extension an output asked for as binary
 * (its parameters.binary_data, or the request's binary_data_output) has
 * no "data" in the JSON but "binary_data_size" in its parameters; its
 * bytes (little-endian, row-major; BYTES as a 4-byte length and the
 * bytes of each element) follow the JSON, in the order of the outputs.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bms/v2.h"
#include "server/v2_json.h"
#include "server/v2_parse.h"

/* What one answered output gets. */
struct plan {
    int index;                           /* the graph output */
    const struct bms_manifest_io *io;    /* its manifest entry, or NULL */
    int64_t classification;              /* top K; 0 when not asked */
    int raw;
    int binary;                          /* 1: its data after the JSON */
};

/* A score and its class index, ordered for top K. */
struct ranked {
    double score;
    int64_t index;
};


static const struct bms_manifest_io *find_io(const struct bms_manifest_io *io,
                                             int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (io[i].name != NULL && strcmp(io[i].name, name) == 0) {
            return &io[i];
        }
    }
    return NULL;
}


/* A name off the wire may hold a NUL; such a name matches nothing. */
static int find_value(const struct bms_model *model, int is_input,
                      const char *name, size_t len)
{
    if (strlen(name) != len) {
        return -1;
    }
    return is_input ? bms_model_find_input(model, name)
                    : bms_model_find_output(model, name);
}


/*
 * The dims a request must give for one model input: the graph's, with any
 * dimension the graph leaves open but the manifest's "size" fixes filled
 * in.  -1 marks a dimension given at request time; *n_dims is -1 when
 * neither the graph nor the manifest knows the rank.
 */
static void expected_dims(const struct bms_value_info *info,
                          const struct bms_manifest_io *io, int *n_dims,
                          int64_t *dims)
{
    int io_rank = io != NULL ? io->n_dims : -1;

    if (info->n_dims >= 0) {
        *n_dims = info->n_dims;
        for (int i = 0; i < info->n_dims; i++) {
            dims[i] = info->dims[i];
            if (dims[i] < 0 && i > 0 && io_rank == info->n_dims - 1) {
                dims[i] = io->dims[i - 1];
            }
        }
        return;
    }
    *n_dims = io_rank >= 0 ? io_rank + 1 : -1;
    dims[0] = -1;
    for (int i = 0; i < io_rank; i++) {
        dims[i + 1] = io->dims[i];
    }
}


/* "[N, 28, 28]": N for an open batch dimension, -1 for another open one. */
static void format_shape(char *buf, size_t size, const int64_t *dims,
                         int n_dims)
{
    size_t used = (size_t)snprintf(buf, size, "[");

    for (int i = 0; i < n_dims && used < size; i++) {
        const char *sep = i > 0 ? ", " : "";

        if (dims[i] < 0 && i == 0) {
            used += (size_t)snprintf(buf + used, size - used, "%sN", sep);
        } else {
            used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64,
                                     sep, dims[i]);
        }
    }
    if (used < size) {
        snprintf(buf + used, size - used, "]");
    }
}


/* Check request input i against model input k. */
static enum bms_status check_input(const struct bms_served *served,
                                   const struct bms__v2_input *in, int i,
                                   int k, struct bms_diag *diag)
{
    const struct bms_model *model = bms_served_model(served);
    const struct bms_manifest *man = bms_served_manifest(served);
    const struct bms_value_info *info = bms_model_input(model, k);
    const struct bms_manifest_io *io = NULL;
    int64_t dims[BMS_MAX_DIMS];
    int n_dims;
    int same;
    char want[160];
    char got[160];

    if (in->dtype != info->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "inputs[%d].datatype:"
                            " expected %s, got %s", i,
                            bms_dtype_v2_name(info->dtype),
                            bms_dtype_v2_name(in->dtype));
    }
    if (man != NULL) {
        io = find_io(man->inputs, man->n_inputs, info->name);
    }
    expected_dims(info, io, &n_dims, dims);
    if (n_dims < 0) {
        return BMS_OK;
    }
    same = n_dims == in->n_dims;
    for (int d = 0; same && d < n_dims; d++) {
        same = dims[d] < 0 || dims[d] == in->dims[d];
    }
    if (!same) {
        format_shape(want, sizeof(want), dims, n_dims);
        format_shape(got, sizeof(got), in->dims, in->n_dims);
        return bms_diag_set(diag, BMS_ERR_INVALID, "inputs[%d].shape:"
                            " expected %s, got %s", i, want, got);
    }
    return BMS_OK;
}


/* Whether model input k has an open first (batch) dimension. */
static int has_open_batch(const struct bms_model *model, int k)
{
    const struct bms_value_info *info = bms_model_input(model, k);

    return info->n_dims < 0 || (info->n_dims > 0 && info->dims[0] < 0);
}


/* Find the model input of each request input: slot[k] is the request's
 * index for model input k.  Every model input must be given once. */
static enum bms_status match_inputs(const struct bms_model *model,
                                    const struct bms__v2_request *req,
                                    int *slot, struct bms_diag *diag)
{
    int n_inputs = bms_model_n_inputs(model);

    for (int k = 0; k < n_inputs; k++) {
        slot[k] = -1;
    }
    for (int i = 0; i < req->n_inputs; i++) {
        const struct bms__v2_input *in = &req->inputs[i];
        int k = find_value(model, 1, in->name, in->name_len);

        if (k < 0 && strlen(in->name) != in->name_len) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "inputs[%d].name:"
                                " unknown input: the name holds a NUL"
                                " byte", i);
        }
        if (k < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "inputs[%d].name:"
                                " unknown input \"%s\"", i, in->name);
        }
        if (slot[k] >= 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "inputs[%d].name:"
                                " input \"%s\" given twice", i, in->name);
        }
        slot[k] = i;
    }
    for (int k = 0; k < n_inputs; k++) {
        if (slot[k] < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "inputs: missing"
                                " input \"%s\"",
                                bms_model_input(model, k)->name);
        }
    }
    return BMS_OK;
}


/*
 * Match the request's inputs to the model's, check each, and fill tensors
 * (one per model input, in graph order) with the request's data.  Inputs
 * whose first dimension is open share one batch size.
 */
static enum bms_status bind_inputs(const struct bms_served *served,
                                   const struct bms__v2_request *req,
                                   int *slot, struct bms_tensor *tensors,
                                   struct bms_diag *diag)
{
    const struct bms_model *model = bms_served_model(served);
    int n_inputs = bms_model_n_inputs(model);
    int batch_from = -1;
    enum bms_status rc;

    rc = match_inputs(model, req, slot, diag);
    for (int k = 0; rc == BMS_OK && k < n_inputs; k++) {
        const struct bms__v2_input *in = &req->inputs[slot[k]];

        rc = check_input(served, in, slot[k], k, diag);
        tensors[k].dtype = in->dtype;
        tensors[k].n_dims = in->n_dims;
        memcpy(tensors[k].dims, in->dims, sizeof(in->dims));
        tensors[k].data = in->data.data;
    }
    for (int i = 0; rc == BMS_OK && i < req->n_inputs; i++) {
        const struct bms__v2_input *in = &req->inputs[i];
        int k = find_value(model, 1, in->name, in->name_len);

        if (!has_open_batch(model, k) || in->n_dims == 0) {
            continue;
        }
        if (batch_from < 0) {
            batch_from = i;
        } else if (in->dims[0] != req->inputs[batch_from].dims[0]) {
            rc = bms_diag_set(diag, BMS_ERR_INVALID, "inputs[%d].shape:"
                              " batch size %" PRId64 " differs from"
                              " inputs[%d]'s %" PRId64, i, in->dims[0],
                              batch_from, req->inputs[batch_from].dims[0]);
        }
    }
    return rc;
}


/* Decide what each answered output gets: every graph output when the
 * request names none, else the named ones in the request's order. */
static enum bms_status plan_outputs(const struct bms_served *served,
                                    const struct bms__v2_request *req,
                                    struct plan *plans, int *n_plans,
                                    struct bms_diag *diag)
{
    const struct bms_model *model = bms_served_model(served);
    const struct bms_manifest *man = bms_served_manifest(served);
    int n_graph = bms_model_n_outputs(model);
    int n = req->n_outputs > 0 ? req->n_outputs : n_graph;

    for (int j = 0; j < n; j++) {
        const struct bms__v2_output *o =
            req->n_outputs > 0 ? &req->outputs[j] : NULL;
        int k = o != NULL ? find_value(model, 0, o->name, o->name_len) : j;

        if (k < 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "outputs[%d].name:"
                                " unknown output \"%s\"", j, o->name);
        }
        for (int prev = 0; prev < j; prev++) {
            if (plans[prev].index == k) {
                return bms_diag_set(diag, BMS_ERR_INVALID, "outputs[%d].name:"
                                    " output \"%s\" requested twice", j,
                                    o->name);
            }
        }
        plans[j].index = k;
        plans[j].io = man == NULL ? NULL
                      : find_io(man->outputs, man->n_outputs,
                                bms_model_output(model, k)->name);
        plans[j].classification = o != NULL ? o->classification : 0;
        plans[j].raw = o != NULL ? o->raw : 0;
        /* An output's own binary_data wins over the request's. */
        plans[j].binary = o != NULL && o->binary >= 0 ? o->binary
                                                      : req->binary_output;
        if (plans[j].classification > 0 &&
            bms_model_output(model, k)->n_dims == 0) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "outputs[%d]."
                                "parameters.classification: output \"%s\""
                                " is a scalar", j, o->name);
        }
    }
    *n_plans = n;
    return BMS_OK;
}


/* ---- the response ---- */

/* Drop what a failed call appended, so out holds no half response. */
static void truncate_to(struct bms_buf *out, size_t len)
{
    out->len = len;
    if (out->data != NULL) {
        out->data[len] = '\0';
    }
}


static void write_head(struct bms__json *j, const char *name,
                       const char *datatype)
{
    bms__json_raw(j, "{\"name\":");
    bms__json_cstr(j, name);
    bms__json_raw(j, ",\"datatype\":\"");
    bms__json_raw(j, datatype);
    bms__json_raw(j, "\",\"shape\":");
}


/* Append n bytes at data to the binary part bin (sticky errors in j). */
static void bin_append(struct bms__json *j, struct bms_buf *bin,
                       const void *data, size_t n)
{
    if (j->rc == BMS_OK) {
        j->rc = bms_buf_append(bin, data, n);
    }
}


/* Append n elements of elem_size bytes, little-endian, to bin. */
static void bin_append_le(struct bms__json *j, struct bms_buf *bin,
                          const void *data, int64_t n, size_t elem_size)
{
    size_t start = bin->len;

    bin_append(j, bin, data, (size_t)n * elem_size);
    if (j->rc == BMS_OK) {
        bms__v2_from_le(bin->data + start, n, elem_size);
    }
}


/* The parameters member of a binary output, open for more members. */
static void write_binary_size(struct bms__json *j, size_t size)
{
    bms__json_raw(j, ",\"parameters\":{\"binary_data_size\":");
    bms__json_int(j, (int64_t)size);
}


/* The graph's tensor as it is. */
static void write_tensor(struct bms__json *j, const char *name,
                         const struct plan *pl, const struct bms_tensor *t,
                         struct bms_buf *bin)
{
    const char *p = t->data;
    size_t size = bms_dtype_size(t->dtype);
    int64_t numel = bms_tensor_numel(t);

    write_head(j, name, bms_dtype_v2_name(t->dtype));
    bms__json_dims(j, t->dims, t->n_dims);
    if (pl->binary) {
        write_binary_size(j, (size_t)numel * size);
        bms__json_raw(j, "}}");
        bin_append_le(j, bin, p, numel, size);
        return;
    }
    bms__json_raw(j, ",\"data\":[");
    for (int64_t i = 0; i < numel; i++) {
        if (i > 0) {
            bms__json_raw(j, ",");
        }
        bms__json_element(j, t->dtype, p + (size_t)i * size);
    }
    bms__json_raw(j, "]}");
}


/* Scores first, highest first; NaN below every number; ties by the lower
 * index, so the order is total and qsort's result unique. */
static int compare_ranked(const void *a, const void *b)
{
    const struct ranked *x = a;
    const struct ranked *y = b;

    if (isnan(x->score) != isnan(y->score)) {
        return isnan(x->score) ? 1 : -1;
    }
    if (x->score > y->score) {
        return -1;
    }
    if (x->score < y->score) {
        return 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}


/* Rank the n_classes scores of one item (at p) into r. */
static void rank_item(const struct bms_tensor *t, const char *p,
                      int64_t n_classes, struct ranked *r)
{
    size_t size = bms_dtype_size(t->dtype);

    for (int64_t c = 0; c < n_classes; c++) {
        r[c].score = bms__v2_element_double(t->dtype, p + (size_t)c * size);
        r[c].index = c;
    }
    qsort(r, (size_t)n_classes, sizeof(r[0]), compare_ranked);
}


/* The index of the best score of one item: the first of the highest. */
static int64_t argmax_item(const struct bms_tensor *t, const char *p,
                           int64_t n_classes)
{
    size_t size = bms_dtype_size(t->dtype);
    struct ranked best = {0.0, -1};

    for (int64_t c = 0; c < n_classes; c++) {
        struct ranked r = {
            bms__v2_element_double(t->dtype, p + (size_t)c * size), c
        };

        if (best.index < 0 || compare_ranked(&r, &best) < 0) {
            best = r;
        }
    }
    return best.index;
}


/*
 * Check that a graph output can be read per class: rank >= 1, and for a
 * classifier, as many classes as the manifest names.
 */
static enum bms_status check_classes(const struct plan *pl, const char *name,
                                     const struct bms_tensor *t,
                                     struct bms_diag *diag)
{
    int64_t n_classes = t->n_dims > 0 ? t->dims[t->n_dims - 1] : 0;

    if (t->n_dims == 0) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "output \"%s\": the"
                            " graph gave a scalar, expected one score per"
                            " class", name);
    }
    if (pl->io != NULL && pl->io->n_classes > 0 &&
        n_classes != pl->io->n_classes) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "output \"%s\": the"
                            " graph gave %" PRId64 " classes, the manifest"
                            " names %d", name, n_classes, pl->io->n_classes);
    }
    return BMS_OK;
}


static const char *class_label(const struct plan *pl, int64_t index)
{
    if (pl->io == NULL || index < 0 || index >= pl->io->n_classes) {
        return NULL;
    }
    return pl->io->classes[index];
}


/* A classifier's answer: the class index of each item, INT64, and the
 * labels in parameters. */
static void write_argmax(struct bms__json *j, const char *name,
                         const struct plan *pl, const struct bms_tensor *t,
                         struct bms_buf *bin)
{
    int64_t n_classes = t->dims[t->n_dims - 1];
    int64_t n_items = n_classes > 0 ? bms_tensor_numel(t) / n_classes : 0;
    size_t row = (size_t)n_classes * bms_dtype_size(t->dtype);
    const char *p = t->data;

    write_head(j, name, "INT64");
    bms__json_dims(j, t->dims, t->n_dims - 1);
    if (pl->binary) {
        for (int64_t i = 0; i < n_items; i++) {
            int64_t c = argmax_item(t, p + (size_t)i * row, n_classes);

            bin_append_le(j, bin, &c, 1, sizeof(c));
        }
        write_binary_size(j, (size_t)n_items * sizeof(int64_t));
        bms__json_raw(j, ",\"labels\":[");
    } else {
        bms__json_raw(j, ",\"data\":[");
        for (int64_t i = 0; i < n_items; i++) {
            bms__json_raw(j, i > 0 ? "," : "");
            bms__json_int(j, argmax_item(t, p + (size_t)i * row,
                                         n_classes));
        }
        bms__json_raw(j, "],\"parameters\":{\"labels\":[");
    }
    for (int64_t i = 0; i < n_items; i++) {
        int64_t c = argmax_item(t, p + (size_t)i * row, n_classes);

        bms__json_raw(j, i > 0 ? "," : "");
        bms__json_cstr(j, class_label(pl, c));
    }
    bms__json_raw(j, "]}}");
}


/* Put "score:index:label" for class c of one item (at item) in text; the
 * label part only when the output has class names. */
static void write_ranked(struct bms__json *j, struct bms_buf *text,
                         const struct plan *pl, const struct bms_tensor *t,
                         const char *item, int64_t c)
{
    const char *label = class_label(pl, c);
    char score[40];

    bms__v2_format_element(score, sizeof(score), t->dtype,
                           item + (size_t)c * bms_dtype_size(t->dtype));
    bms_buf_reset(text);
    if (j->rc == BMS_OK) {
        j->rc = bms_buf_printf(text, "%s:%" PRId64, score, c);
    }
    if (j->rc == BMS_OK && label != NULL) {
        j->rc = bms_buf_printf(text, ":%s", label);
    }
}


/* The classification extension: the top K of each item as BYTES
 * "score:index:label" ("score:index" without class names). */
static enum bms_status write_top_k(struct bms__json *j, const char *name,
                                   const struct plan *pl,
                                   const struct bms_tensor *t,
                                   struct bms_buf *bin)
{
    int64_t n_classes = t->dims[t->n_dims - 1];
    int64_t n_items = n_classes > 0 ? bms_tensor_numel(t) / n_classes : 0;
    int64_t k = pl->classification < n_classes ? pl->classification
                                               : n_classes;
    size_t row = (size_t)n_classes * bms_dtype_size(t->dtype);
    size_t bin_start = bin->len;
    int64_t dims[BMS_MAX_DIMS];
    struct bms_buf text = {0};
    struct ranked *r = malloc((size_t)(n_classes > 0 ? n_classes : 1) *
                              sizeof(*r));

    if (r == NULL) {
        return BMS_ERR_NOMEM;
    }
    memcpy(dims, t->dims, sizeof(dims));
    dims[t->n_dims - 1] = k;
    write_head(j, name, "BYTES");
    bms__json_dims(j, dims, t->n_dims);
    bms__json_raw(j, pl->binary ? "" : ",\"data\":[");
    for (int64_t i = 0; i < n_items; i++) {
        const char *item = (const char *)t->data + (size_t)i * row;

        rank_item(t, item, n_classes, r);
        for (int64_t c = 0; c < k; c++) {
            write_ranked(j, &text, pl, t, item, r[c].index);
            if (pl->binary) {
                /* BYTES on the wire: a 4-byte length, then the bytes. */
                uint32_t n = (uint32_t)text.len;

                bin_append_le(j, bin, &n, 1, sizeof(n));
                bin_append(j, bin, text.data, text.len);
                continue;
            }
            bms__json_raw(j, i > 0 || c > 0 ? "," : "");
            bms__json_string(j, text.data, text.len);
        }
    }
    if (pl->binary) {
        write_binary_size(j, bin->len - bin_start);
        bms__json_raw(j, "}}");
    } else {
        bms__json_raw(j, "]}");
    }
    bms_buf_fini(&text);
    free(r);
    return j->rc;
}


static enum bms_status write_output(struct bms__json *j,
                                    const struct bms_model *model,
                                    const struct plan *pl,
                                    const struct bms_tensor *t,
                                    struct bms_buf *bin,
                                    struct bms_diag *diag)
{
    const char *name = bms_model_output(model, pl->index)->name;
    int classifier = pl->io != NULL && pl->io->n_classes > 0 && !pl->raw;
    enum bms_status rc;

    if (bms_dtype_size(t->dtype) == 0) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "output \"%s\": bms"
                            " cannot write datatype %d as JSON", name,
                            (int)t->dtype);
    }
    if (!classifier && pl->classification == 0) {
        write_tensor(j, name, pl, t, bin);
        return BMS_OK;
    }
    rc = check_classes(pl, name, t, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    if (pl->classification > 0) {
        return write_top_k(j, name, pl, t, bin);
    }
    write_argmax(j, name, pl, t, bin);
    return BMS_OK;
}


static enum bms_status write_response(struct bms__json *j,
                                      const struct bms_served *served,
                                      const struct bms__v2_request *req,
                                      const struct plan *plans, int n_plans,
                                      const struct bms_tensor *outputs,
                                      struct bms_buf *bin,
                                      struct bms_diag *diag)
{
    const struct bms_model *model = bms_served_model(served);
    enum bms_status rc;
    char version[32];

    snprintf(version, sizeof(version), "%" PRId64,
             bms_served_version(served));
    bms__json_raw(j, "{\"model_name\":");
    bms__json_cstr(j, bms_served_name(served));
    bms__json_raw(j, ",\"model_version\":");
    bms__json_cstr(j, version);
    if (req->id != NULL) {
        bms__json_raw(j, ",\"id\":");
        bms__json_string(j, req->id, req->id_len);
    }
    bms__json_raw(j, ",\"outputs\":[");
    for (int i = 0; i < n_plans; i++) {
        bms__json_raw(j, i > 0 ? "," : "");
        rc = write_output(j, model, &plans[i], &outputs[plans[i].index],
                          bin, diag);
        if (rc != BMS_OK) {
            return rc;
        }
    }
    bms__json_raw(j, "]}");
    return j->rc;
}


/* ---- the request, parsed and bound to the model ---- */

struct bms_v2_call {
    struct bms_served *served;
    struct bms__v2_request *req;
    struct bms_tensor *inputs;           /* one per graph input */
    struct plan *plans;
    int n_plans;
    int binary_answer;                   /* some plan is binary */
    int *slot;                           /* request input of each one */
};


void bms_v2_call_destroy(struct bms_v2_call *call)
{
    if (call == NULL) {
        return;
    }
    free(call->slot);
    free(call->plans);
    free(call->inputs);
    bms__v2_request_destroy(call->req);
    free(call);
}


/* Check the parsed request against the model and plan the answer. */
static enum bms_status call_bind(struct bms_v2_call *call,
                                 struct bms_diag *diag)
{
    const struct bms_model *model = bms_served_model(call->served);
    int n_inputs = bms_model_n_inputs(model);
    int n_outputs = bms_model_n_outputs(model);
    const struct bms__v2_request *req = call->req;
    enum bms_status rc;

    call->n_plans = req->n_outputs > 0 ? req->n_outputs : n_outputs;
    call->inputs = calloc((size_t)n_inputs + 1, sizeof(*call->inputs));
    call->plans = calloc((size_t)call->n_plans + 1, sizeof(*call->plans));
    call->slot = calloc((size_t)n_inputs + 1, sizeof(*call->slot));
    if (call->inputs == NULL || call->plans == NULL || call->slot == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = bind_inputs(call->served, req, call->slot, call->inputs, diag);
    if (rc == BMS_OK) {
        rc = plan_outputs(call->served, req, call->plans, &call->n_plans,
                          diag);
    }
    for (int i = 0; rc == BMS_OK && i < call->n_plans; i++) {
        call->binary_answer |= call->plans[i].binary;
    }
    return rc;
}


enum bms_status bms_v2_call_parse(struct bms_served *served,
                                  const char *body, size_t len,
                                  struct bms_v2_call **out,
                                  struct bms_diag *diag)
{
    return bms_v2_call_parse_limited(served, body, len, 0, out, diag);
}


/* Parse and bind; binary NULL: the body has no binary part. */
static enum bms_status call_parse(struct bms_served *served,
                                  const char *body, size_t len,
                                  const char *binary, size_t binary_len,
                                  int64_t max_elements,
                                  struct bms_v2_call **out,
                                  struct bms_diag *diag)
{
    struct bms_v2_call *call = calloc(1, sizeof(*call));
    enum bms_status rc;

    if (call == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    call->served = served;
    rc = bms__v2_request_parse_binary(body, len, binary, binary_len,
                                      max_elements > 0 ? max_elements
                                                       : BMS__V2_MAX_ELEMS,
                                      &call->req, diag);
    if (rc == BMS_OK) {
        rc = call_bind(call, diag);
    }
    if (rc != BMS_OK) {
        bms_v2_call_destroy(call);
        return rc;
    }
    *out = call;
    return BMS_OK;
}


enum bms_status bms_v2_call_parse_limited(struct bms_served *served,
                                          const char *body, size_t len,
                                          int64_t max_elements,
                                          struct bms_v2_call **out,
                                          struct bms_diag *diag)
{
    return call_parse(served, body, len, NULL, 0, max_elements, out, diag);
}


enum bms_status bms_v2_call_parse_binary(struct bms_served *served,
                                         const char *body, size_t len,
                                         size_t json_size,
                                         int64_t max_elements,
                                         struct bms_v2_call **out,
                                         struct bms_diag *diag)
{
    if (json_size > len) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "Inference-Header-"
                            "Content-Length: %zu bytes, more than the"
                            " body's %zu", json_size, len);
    }
    return call_parse(served, body, json_size, body + json_size,
                      len - json_size, max_elements, out, diag);
}


int bms_v2_call_binary_answer(const struct bms_v2_call *call)
{
    return call->binary_answer;
}


const struct bms_tensor *bms_v2_call_inputs(const struct bms_v2_call *call)
{
    return call->inputs;
}


int64_t bms_v2_call_timeout_ms(const struct bms_v2_call *call)
{
    return call->req->timeout_ms;
}


enum bms_status bms_v2_call_respond(const struct bms_v2_call *call,
                                    const struct bms_tensor *outputs,
                                    struct bms_buf *out, size_t *json_size,
                                    struct bms_diag *diag)
{
    struct bms__json j = {out, BMS_OK};
    struct bms_buf bin = {NULL, 0, 0};
    size_t start = out->len;
    size_t json_end;
    enum bms_status rc;

    rc = write_response(&j, call->served, call->req, call->plans,
                        call->n_plans, outputs, &bin, diag);
    json_end = out->len;
    if (rc == BMS_OK && bin.len > 0) {
        rc = bms_buf_append(out, bin.data, bin.len);
    }
    bms_buf_fini(&bin);
    if (rc == BMS_ERR_NOMEM) {
        bms_diag_set(diag, rc, "out of memory while answering");
    }
    if (rc != BMS_OK) {
        truncate_to(out, start);
        return rc;
    }
    if (json_size != NULL) {
        *json_size = json_end - start;
    }
    return BMS_OK;
}


enum bms_status bms_v2_call_run(const struct bms_v2_call *call,
                                struct bms_buf *out, size_t *json_size,
                                struct bms_diag *diag)
{
    const struct bms_model *model = bms_served_model(call->served);
    int n_outputs = bms_model_n_outputs(model);
    struct bms_session *session = NULL;
    struct bms_tensor *outputs = calloc((size_t)n_outputs + 1,
                                        sizeof(*outputs));
    enum bms_status rc;

    if (outputs == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    rc = bms_served_acquire(call->served, &session, diag);
    if (rc == BMS_OK) {
        rc = bms_session_run(session, call->inputs, outputs, diag);
    }
    if (rc == BMS_OK) {
        rc = bms_v2_call_respond(call, outputs, out, json_size, diag);
    }
    bms_served_release(call->served, session);
    free(outputs);
    return rc;
}


enum bms_status bms_v2_infer(struct bms_served *served, const char *body,
                             size_t len, struct bms_buf *out,
                             struct bms_diag *diag)
{
    struct bms_v2_call *call = NULL;
    enum bms_status rc;

    rc = bms_v2_call_parse(served, body, len, &call, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    rc = bms_v2_call_run(call, out, NULL, diag);
    if (rc == BMS_ERR_NOMEM) {
        bms_diag_set(diag, rc, "out of memory while answering");
    }
    bms_v2_call_destroy(call);
    return rc;
}


/* ---- model metadata ---- */

/* The ready versions of the model's name, lowest first. */
static void write_versions(struct bms__json *j, const struct bms_repo *repo,
                           const char *name)
{
    int n = repo != NULL ? bms_repo_n_entries(repo) : 0;
    int64_t last = INT64_MIN;
    int first = 1;

    bms__json_raw(j, "[");
    for (;;) {
        int64_t next = INT64_MAX;
        int found = 0;
        char text[32];

        for (int i = 0; i < n; i++) {
            const struct bms_repo_entry *e = bms_repo_entry(repo, i);

            if (e->state == BMS_ENTRY_READY && strcmp(e->name, name) == 0 &&
                e->version > last && e->version <= next) {
                next = e->version;
                found = 1;
            }
        }
        if (!found) {
            break;
        }
        snprintf(text, sizeof(text), "%" PRId64, next);
        bms__json_raw(j, first ? "" : ",");
        bms__json_cstr(j, text);
        first = 0;
        last = next;
    }
    bms__json_raw(j, "]");
}


static void write_meta_inputs(struct bms__json *j,
                              const struct bms_model *model,
                              const struct bms_manifest *man)
{
    bms__json_raw(j, "[");
    for (int k = 0; k < bms_model_n_inputs(model); k++) {
        const struct bms_value_info *info = bms_model_input(model, k);
        const struct bms_manifest_io *io =
            man != NULL ? find_io(man->inputs, man->n_inputs, info->name)
                        : NULL;
        int64_t dims[BMS_MAX_DIMS];
        int n_dims;

        expected_dims(info, io, &n_dims, dims);
        bms__json_raw(j, k > 0 ? "," : "");
        write_head(j, info->name, bms_dtype_v2_name(info->dtype));
        if (n_dims < 0) {
            dims[0] = -1;
            n_dims = 1;
        }
        bms__json_dims(j, dims, n_dims);
        if (io != NULL && io->order != NULL) {
            bms__json_raw(j, ",\"order\":");
            bms__json_cstr(j, io->order);
        }
        bms__json_raw(j, "}");
    }
    bms__json_raw(j, "]");
}


static void write_meta_outputs(struct bms__json *j,
                               const struct bms_model *model,
                               const struct bms_manifest *man)
{
    static const int64_t batch[1] = {-1};

    bms__json_raw(j, "[");
    for (int k = 0; k < bms_model_n_outputs(model); k++) {
        const struct bms_value_info *info = bms_model_output(model, k);
        const struct bms_manifest_io *io =
            man != NULL ? find_io(man->outputs, man->n_outputs, info->name)
                        : NULL;

        bms__json_raw(j, k > 0 ? "," : "");
        if (io == NULL || io->n_classes == 0) {
            write_head(j, info->name, bms_dtype_v2_name(info->dtype));
            bms__json_dims(j, info->n_dims >= 0 ? info->dims : batch,
                           info->n_dims >= 0 ? info->n_dims : 1);
            bms__json_raw(j, "}");
            continue;
        }
        write_head(j, info->name, "INT64");
        bms__json_dims(j, batch, 1);
        bms__json_raw(j, ",\"classes\":[");
        for (int c = 0; c < io->n_classes; c++) {
            bms__json_raw(j, c > 0 ? "," : "");
            bms__json_cstr(j, io->classes[c]);
        }
        bms__json_raw(j, "]}");
    }
    bms__json_raw(j, "]");
}


static void write_meta_deps(struct bms__json *j,
                            const struct bms_manifest *man)
{
    int n = man != NULL ? man->n_deps : 0;

    bms__json_raw(j, "[");
    for (int i = 0; i < n; i++) {
        bms__json_raw(j, i > 0 ? ",{\"library\":" : "{\"library\":");
        bms__json_cstr(j, man->deps[i].library);
        bms__json_raw(j, ",\"package\":");
        bms__json_cstr(j, man->deps[i].package);
        bms__json_raw(j, ",\"script\":");
        bms__json_cstr(j, man->deps[i].script);
        bms__json_raw(j, "}");
    }
    bms__json_raw(j, "]");
}


static void write_meta_stats(struct bms__json *j,
                             const struct bms_sched_stats *st)
{
    bms__json_raw(j, ",\"threads_per_instance\":");
    bms__json_int(j, st->threads_per_instance);
    bms__json_raw(j, ",\"stats\":{\"requests\":");
    bms__json_int(j, st->requests);
    bms__json_raw(j, ",\"executions\":");
    bms__json_int(j, st->executions);
    bms__json_raw(j, ",\"items\":");
    bms__json_int(j, st->items);
    bms__json_raw(j, ",\"shed\":");
    bms__json_int(j, st->shed);
    bms__json_raw(j, ",\"expired\":");
    bms__json_int(j, st->expired);
    bms__json_raw(j, ",\"queued\":");
    bms__json_int(j, st->queued);
    bms__json_raw(j, ",\"in_flight\":");
    bms__json_int(j, st->in_flight);
    bms__json_raw(j, ",\"crashes\":");
    bms__json_int(j, st->crashes);
    bms__json_raw(j, ",\"restarts\":");
    bms__json_int(j, st->restarts);
    bms__json_raw(j, ",\"instances\":");
    bms__json_int(j, st->instances);
    bms__json_raw(j, ",\"scale_ups\":");
    bms__json_int(j, st->scale_ups);
    bms__json_raw(j, ",\"scale_downs\":");
    bms__json_int(j, st->scale_downs);
    bms__json_raw(j, "}");
}


/* The manifest's "scheduling" as it applies, and the counters. */
static void write_meta_sched(struct bms__json *j,
                             const struct bms_manifest *man,
                             const struct bms_sched_stats *st)
{
    struct bms_sched_config c;

    if (man != NULL) {
        c = man->sched;
    } else {
        bms_sched_config_default(&c);
    }
    bms__json_raw(j, "{\"max_queue_size\":");
    bms__json_int(j, c.max_queue_size);
    bms__json_raw(j, ",\"max_batch_size\":");
    bms__json_int(j, c.max_batch_size);
    bms__json_raw(j, ",\"max_queue_delay_us\":");
    bms__json_int(j, c.max_queue_delay_us);
    bms__json_raw(j, c.adaptive_delay ? ",\"adaptive_delay\":true"
                                      : ",\"adaptive_delay\":false");
    bms__json_raw(j, c.warmup ? ",\"warmup\":true" : ",\"warmup\":false");
    bms__json_raw(j, ",\"preferred_batch_sizes\":[");
    for (int i = 0; i < c.n_preferred; i++) {
        bms__json_raw(j, i > 0 ? "," : "");
        bms__json_int(j, c.preferred_batch_sizes[i]);
    }
    bms__json_raw(j, "],\"instances\":");
    bms__json_int(j, c.instances);
    bms__json_raw(j, ",\"min_instances\":");
    bms__json_int(j, c.min_instances);
    bms__json_raw(j, ",\"max_instances\":");
    bms__json_int(j, c.max_instances);
    bms__json_raw(j, ",\"scale_down_after_s\":");
    bms__json_int(j, c.scale_down_after_s);
    bms__json_raw(j, ",\"scale_up_wait_ms\":");
    bms__json_int(j, c.scale_up_wait_ms);
    bms__json_raw(j, ",\"max_concurrency\":");
    bms__json_int(j, c.max_concurrency);
    bms__json_raw(j, ",\"isolation\":");
    bms__json_cstr(j, c.isolation == BMS_ISOLATION_PROCESS ? "process"
                   : "thread");
    bms__json_raw(j, ",\"isolation_timeout_ms\":");
    bms__json_int(j, c.isolation_timeout_ms);
    bms__json_raw(j, ",\"isolation_memory_mb\":");
    bms__json_int(j, c.isolation_memory_mb);
    if (st != NULL) {
        write_meta_stats(j, st);
    }
    bms__json_raw(j, "}");
}


/* "health" and "qos" as they apply and, with st, whether the version
 * serves now. */
static void write_meta_serving(struct bms__json *j,
                               const struct bms_manifest *man,
                               const struct bms_sched_stats *st)
{
    struct bms_sched_config c;
    char num[32];

    if (man != NULL) {
        c = man->sched;
    } else {
        bms_sched_config_default(&c);
    }
    bms__json_raw(j, ",\"health\":{\"period_ms\":");
    bms__json_int(j, c.health.period_ms);
    bms__json_raw(j, ",\"timeout_ms\":");
    bms__json_int(j, c.health.timeout_ms);
    if (st != NULL) {
        bms__json_raw(j, ",\"healthy_instances\":");
        bms__json_int(j, st->healthy_instances);
    }
    bms__json_raw(j, "},\"qos\":{\"window_s\":");
    bms__json_int(j, c.qos.window_s);
    bms__json_raw(j, ",\"min_requests\":");
    bms__json_int(j, c.qos.min_requests);
    snprintf(num, sizeof(num), "%.17g", c.qos.max_error_rate);
    bms__json_raw(j, ",\"max_error_rate\":");
    bms__json_raw(j, num);
    snprintf(num, sizeof(num), "%.17g", c.qos.max_p99_ms);
    bms__json_raw(j, ",\"max_p99_ms\":");
    bms__json_raw(j, num);
    bms__json_raw(j, ",\"cooldown_s\":");
    bms__json_int(j, c.qos.cooldown_s);
    if (st != NULL) {
        bms__json_raw(j, st->serving ? ",\"serving\":true"
                                     : ",\"serving\":false");
        bms__json_raw(j, ",\"reason\":");
        bms__json_cstr(j, st->reason);
    }
    bms__json_raw(j, "}");
}


/* The metadata; with_sched adds "scheduling" (and st its counters). */
static enum bms_status write_metadata(const struct bms_repo *repo,
                                      const struct bms_served *served,
                                      int with_sched,
                                      const struct bms_sched_stats *st,
                                      struct bms_buf *out)
{
    const struct bms_manifest *man = bms_served_manifest(served);
    const struct bms_model *model = bms_served_model(served);
    struct bms__json j = {out, BMS_OK};
    size_t start = out->len;
    char version[32];

    snprintf(version, sizeof(version), "%" PRId64,
             bms_served_version(served));
    bms__json_raw(&j, "{\"name\":");
    bms__json_cstr(&j, bms_served_name(served));
    bms__json_raw(&j, ",\"versions\":");
    write_versions(&j, repo, bms_served_name(served));
    bms__json_raw(&j, ",\"platform\":\"onnx\",\"version\":");
    bms__json_cstr(&j, version);
    bms__json_raw(&j, ",\"description\":");
    bms__json_cstr(&j, man != NULL ? man->description : NULL);
    bms__json_raw(&j, ",\"license\":");
    bms__json_cstr(&j, man != NULL ? man->license : NULL);
    bms__json_raw(&j, ",\"manifest_version\":");
    bms__json_cstr(&j, man != NULL ? man->version : NULL);
    bms__json_raw(&j, ",\"inputs\":");
    write_meta_inputs(&j, model, man);
    bms__json_raw(&j, ",\"outputs\":");
    write_meta_outputs(&j, model, man);
    bms__json_raw(&j, ",\"dependencies\":");
    write_meta_deps(&j, man);
    if (with_sched) {
        bms__json_raw(&j, ",\"scheduling\":");
        write_meta_sched(&j, man, st);
        write_meta_serving(&j, man, st);
    }
    bms__json_raw(&j, "}");
    if (j.rc != BMS_OK) {
        truncate_to(out, start);
    }
    return j.rc;
}


enum bms_status bms_v2_model_metadata(const struct bms_repo *repo,
                                      const struct bms_served *served,
                                      struct bms_buf *out)
{
    return write_metadata(repo, served, 0, NULL, out);
}


enum bms_status bms_v2_model_metadata_stats(const struct bms_repo *repo,
                                            const struct bms_served *served,
                                            const struct bms_sched_stats *st,
                                            struct bms_buf *out)
{
    return write_metadata(repo, served, 1, st, out);
}


enum bms_status bms_v2_model_metadata_extra(const struct bms_repo *repo,
                                            const struct bms_served *served,
                                            const struct bms_sched_stats *st,
                                            const char *extra,
                                            struct bms_buf *out)
{
    struct bms__json j = {out, BMS_OK};
    size_t start = out->len;

    j.rc = write_metadata(repo, served, 1, st, out);
    if (j.rc != BMS_OK || extra == NULL) {
        return j.rc;
    }
    /* Reopen the object: its closing brace is the last byte written. */
    out->len--;
    bms__json_raw(&j, ",");
    bms__json_raw(&j, extra);
    bms__json_raw(&j, "}");
    if (j.rc != BMS_OK) {
        truncate_to(out, start);
    }
    return j.rc;
}


enum bms_status bms_v2_error(struct bms_buf *out, const char *msg)
{
    struct bms__json j = {out, BMS_OK};
    size_t start = out->len;

    bms__json_raw(&j, "{\"error\":");
    bms__json_cstr(&j, msg);
    bms__json_raw(&j, "}");
    if (j.rc != BMS_OK) {
        truncate_to(out, start);
    }
    return j.rc;
}
