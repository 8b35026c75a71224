/*
 * The loaded model's accessors and its destruction.  A model is read-only
 * after load, so every accessor here is thread-safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model.h"

/* Set by bms_engine_set_threads before models are loaded, read by every
 * session create on the same thread (so that the scheduler can make
 * sessions of different sizes on several threads at once). */
static _Thread_local int engine_threads;

/* The memory one session may take for its tensors (bytes; 0: half of the
 * machine's), per thread like engine_threads. */
static _Thread_local size_t engine_memory_limit;


void bms_model_destroy(struct bms_model *model)
{
    if (model == NULL) {
        return;
    }
    for (int i = 0; i < model->n_nodes; i++) {
        bms__node_params_free(&model->nodes[i]);
    }
    while (model->subgraphs != NULL) {
        struct bms_model *next = model->subgraphs->next_subgraph;

        bms_model_destroy(model->subgraphs);
        model->subgraphs = next;
    }
    bms__pool_fini(&model->pool);
    free(model);
}


void bms__node_params_free(struct bms__node *node)
{
    if (node->params_fini != NULL && node->params != NULL) {
        node->params_fini(node->params);
    }
    free(node->params);
    node->params = NULL;
    node->params_fini = NULL;
}


int bms_model_n_inputs(const struct bms_model *model)
{
    return model->n_inputs;
}


const struct bms_value_info *bms_model_input(const struct bms_model *model,
                                             int i)
{
    return i >= 0 && i < model->n_inputs ? &model->inputs[i] : NULL;
}


int bms_model_n_outputs(const struct bms_model *model)
{
    return model->n_outputs;
}


const struct bms_value_info *bms_model_output(const struct bms_model *model,
                                              int i)
{
    return i >= 0 && i < model->n_outputs ? &model->outputs[i] : NULL;
}


static int find_info(const struct bms_value_info *infos, int n,
                     const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(infos[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}


int bms_model_find_input(const struct bms_model *model, const char *name)
{
    return find_info(model->inputs, model->n_inputs, name);
}


int bms_model_find_output(const struct bms_model *model, const char *name)
{
    return find_info(model->outputs, model->n_outputs, name);
}


int64_t bms_model_opset(const struct bms_model *model)
{
    return model->opset;
}


int bms_model_n_nodes(const struct bms_model *model)
{
    return model->n_nodes;
}


const char *bms__node_label(const struct bms_model *model,
                            const struct bms__node *node, char *buf,
                            size_t buf_size)
{
    if (node->name != NULL && node->name[0] != '\0') {
        snprintf(buf, buf_size, "node '%s' (%s)", node->name,
                 node->op_type);
    } else {
        snprintf(buf, buf_size, "node %d (%s)", (int)(node - model->nodes),
                 node->op_type);
    }
    return buf;
}


int bms__dims_valid(const struct bms_tensor *t)
{
    int64_t numel = 1;

    if (t->n_dims < 0 || t->n_dims > BMS_MAX_DIMS) {
        return 0;
    }
    for (int d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || t->dims[d] > BMS__MAX_NUMEL) {
            return 0;
        }
    }
    for (int d = 0; d < t->n_dims && numel > 0; d++) {
        if (t->dims[d] != 0 && numel > BMS__MAX_NUMEL / t->dims[d]) {
            return 0;
        }
        numel *= t->dims[d];
    }
    return 1;
}


void bms_engine_set_threads(int n_threads)
{
    engine_threads = n_threads > 0 ? n_threads : 0;
}


void bms_engine_set_memory_limit(size_t bytes)
{
    engine_memory_limit = bytes;
}


size_t bms__engine_memory_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);

    if (engine_memory_limit > 0) {
        return engine_memory_limit;
    }
    if (pages <= 0 || page <= 0) {
        return 0;
    }
    return (size_t)pages / 2 * (size_t)page;
}


int bms__engine_threads(void)
{
    long n;

    if (engine_threads > 0) {
        return engine_threads;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 && n <= 1024 ? (int)n : 1;
}
