/*
 * The executor.  A session walks the model's sorted nodes: for each it
 * infers the output shapes from the actual inputs, takes the outputs'
 * memory from the session's arena and runs the kernel.
 *
 * The first run for a signature of input dims takes memory dynamically
 * (below) and records each output's size; from that record the session
 * builds a memory plan (plan.c) that places every buffer at a fixed
 * offset in the arena, and later runs with the same input dims only set
 * pointers.  The session keeps the plans of the last few signatures.  A
 * planned run whose sizes differ after all (a shape that depends on data)
 * takes that buffer from above the plan, and plans again afterwards.
 *
 * Operators that only relabel the dims (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout) get no memory of their own: their output
 * shares the input's bytes.  No kernel writes its inputs, so a value never
 * changes once produced and sharing is safe.
 *
 * In a dynamic run, a value's memory goes back to a free list after its
 * last consumer has run (graph outputs are kept), and later outputs take
 * the smallest free block that fits before the arena grows, so a session
 * needs about the largest working set, not the sum of all activations.
 *
 * The arena is one block reset at the start of every run; a planned run
 * keeps the plan's bytes at its start and hands out the rest above them.
 * When a run needs more than the block holds, the rest comes from extra
 * blocks, and the next run replaces all of them by one block of the total,
 * so a warm session allocates nothing per run.
 *
 * A node that runs subgraphs (If, Loop, Scan) learns its output dims only
 * by running: its kernel runs each subgraph in a session of its own
 * (created for the call, plain allocation) and hands back malloc'ed
 * results, which this session copies into the node's planned outputs.
 * A subgraph's session reads the values its subgraph takes from outer
 * scope straight from the enclosing session's tensors.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/plan.h"

#define ALIGN 64

/* Signatures of input dims whose memory plans a session keeps. */
#define PLAN_CACHE 4

/* Most outputs one node may have; ONNX operators have a handful. */
#define BMS__MAX_OUTPUTS 64

struct extra_block {
    struct extra_block *next;
    char pad[ALIGN - sizeof(void *)];
};

struct arena {
    char *base;
    size_t size;                 /* bytes in base */
    size_t used;                 /* bytes handed out from base */
    size_t extra;                /* bytes handed out from extra blocks */
    struct extra_block *blocks;
    size_t limit;                /* most bytes in use; 0: no limit */
    int over;                    /* an allocation passed the limit */
};

/* A block of arena memory whose value is dead, ready for another. */
struct free_block {
    void *data;
    size_t size;                 /* bytes */
};

struct bms_session {
    const struct bms_model *model;
    int64_t *node_us;            /* per node: time in runs; NULL: off */
    struct bms__ctx ctx;
    unsigned char *is_view;      /* per node: output 0 shares input 0 */
    unsigned char *is_control;   /* per node: runs subgraphs */
    struct bms_tensor *results;  /* a control node's malloc'ed outputs */
    struct bms_tensor *vals;     /* per value: its tensor in this run */
    const struct bms_tensor **in;
    struct bms_tensor *out;
    struct arena arena;
    /* Values whose memory is free once node i has run: release_vals
     * [release_first[i] .. release_first[i + 1]). */
    int *release_first;
    int *release_vals;
    size_t *block_size;          /* per value: bytes of its arena block */
    unsigned char *owned;        /* per value: holds a block this run */
    struct free_block *free_list;
    int n_free;
    /* The memory plans, and what this run records for the next one. */
    struct bms__plan plans[PLAN_CACHE];
    struct bms__plan *plan;      /* the one this run follows, or NULL */
    const struct bms__plan *last_plan;   /* of the last good run */
    int plan_miss;               /* a buffer did not fit its place */
    uint64_t plan_clock;
    int64_t *sig;                /* this run's input dims signature */
    int sig_len;
    int *slot_first;             /* per node: its first output slot */
    int n_slots;
    size_t *slot_size;           /* per slot: bytes this run needed */
    unsigned char *slot_view;    /* per slot: shared input 0's bytes */
};


static const char *const view_ops[] = {
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout",
};


static int is_view_op(const char *op_type)
{
    for (size_t i = 0; i < sizeof(view_ops) / sizeof(view_ops[0]); i++) {
        if (strcmp(op_type, view_ops[i]) == 0) {
            return 1;
        }
    }
    return 0;
}


/* Bytes a block of size bytes takes: rounded up to ALIGN, never 0. */
static size_t block_bytes(size_t size)
{
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    return size > 0 ? size : ALIGN;
}


static void *arena_alloc(struct arena *a, size_t size)
{
    struct extra_block *b;

    size = block_bytes(size);
    if (a->base != NULL && size <= a->size - a->used) {
        void *p = a->base + a->used;

        a->used += size;
        return p;
    }
    if (size > SIZE_MAX - 2 * sizeof(*b)) {
        return NULL;
    }
    if (a->limit > 0 && (a->used + a->extra > a->limit ||
                         size > a->limit - a->used - a->extra)) {
        a->over = 1;
        return NULL;
    }
    b = aligned_alloc(ALIGN, sizeof(*b) + size);
    if (b == NULL) {
        return NULL;
    }
    b->next = a->blocks;
    a->blocks = b;
    a->extra += size;
    return b + 1;
}


static void free_blocks(struct arena *a)
{
    while (a->blocks != NULL) {
        struct extra_block *next = a->blocks->next;

        free(a->blocks);
        a->blocks = next;
    }
}


/* Start a run whose first reserve bytes (a multiple of ALIGN) are
 * planned: forget what was handed out; if the last run overflowed or the
 * plan does not fit, grow the main block to what they need.  A failed
 * grow keeps the old block, and extra blocks cover the run.  Returns 0
 * when the reserve could not be had; nothing is reserved then. */
static int arena_reset(struct arena *a, size_t reserve)
{
    size_t need = a->used + a->extra;

    need = need > reserve ? need : reserve;
    if (a->blocks != NULL || need > a->size) {
        char *base = aligned_alloc(ALIGN, need);

        free_blocks(a);
        if (base != NULL) {
            free(a->base);
            a->base = base;
            a->size = need;
        }
    }
    a->used = 0;
    a->extra = 0;
    a->over = 0;
    if (reserve > a->size) {
        return 0;
    }
    a->used = reserve;
    return 1;
}


static void arena_fini(struct arena *a)
{
    free_blocks(a);
    free(a->base);
    memset(a, 0, sizeof(*a));
}


static void *take_block(struct bms_session *s, size_t size, size_t *got)
{
    int best = -1;

    size = block_bytes(size);
    for (int i = 0; i < s->n_free; i++) {
        if (s->free_list[i].size >= size &&
            (best < 0 || s->free_list[i].size < s->free_list[best].size)) {
            best = i;
        }
    }
    if (best >= 0) {
        void *p = s->free_list[best].data;

        *got = s->free_list[best].size;
        s->free_list[best] = s->free_list[--s->n_free];
        return p;
    }
    *got = size;
    return arena_alloc(&s->arena, size);
}


static void give_block(struct bms_session *s, void *data, size_t size)
{
    s->free_list[s->n_free].data = data;
    s->free_list[s->n_free].size = size;
    s->n_free++;
}


/* Where each value's memory can be released: after the last node that
 * reads it or any view of it.  On return at[v] is that node for a value
 * that owns a block, -1 for the others (views, graph outputs, inputs,
 * initializers). */
static void find_last_uses(const struct bms_session *s, int *root, int *at,
                           unsigned char *keep)
{
    const struct bms_model *m = s->model;

    for (int v = 0; v < m->n_values; v++) {
        root[v] = v;
        at[v] = m->values[v].kind == BMS__VALUE_NODE ? m->values[v].index
                                                     : -1;
    }
    for (int j = 0; j < m->n_outputs; j++) {
        keep[m->output_values[j]] = 1;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const struct bms__node *node = &m->nodes[i];

        for (int k = 0; k < node->n_inputs; k++) {
            if (node->inputs[k] >= 0 && at[node->inputs[k]] < i) {
                at[node->inputs[k]] = i;
            }
        }
        if (s->is_view[i] && node->n_inputs > 0 && node->inputs[0] >= 0 &&
            node->n_outputs > 0 && node->outputs[0] >= 0) {
            root[node->outputs[0]] = root[node->inputs[0]];
        }
    }
    /* A block lives as long as the longest-lived view of it. */
    for (int v = 0; v < m->n_values; v++) {
        int r = root[v];

        keep[r] = (unsigned char)(keep[r] | keep[v]);
        at[r] = at[v] > at[r] ? at[v] : at[r];
    }
    for (int v = 0; v < m->n_values; v++) {
        if (root[v] != v || keep[v] ||
            m->values[v].kind != BMS__VALUE_NODE) {
            at[v] = -1;
        }
    }
}


/* Every block a run takes from the arena can end in the free list: one
 * per value and one per absent output at most. */
static size_t free_list_cap(const struct bms_model *m)
{
    size_t n = (size_t)m->n_values + 1;

    for (int i = 0; i < m->n_nodes; i++) {
        for (int j = 0; j < m->nodes[i].n_outputs; j++) {
            n += m->nodes[i].outputs[j] < 0;
        }
    }
    return n;
}


/* Build the per-node release lists (CSR) from find_last_uses. */
static enum bms_status plan_release(struct bms_session *s)
{
    const struct bms_model *m = s->model;
    size_t n_v = (size_t)m->n_values + 1;
    size_t n_n = (size_t)m->n_nodes + 1;
    int *root = malloc(n_v * sizeof(int));
    int *at = malloc(n_v * sizeof(int));
    int *cursor = malloc(n_n * sizeof(int));
    unsigned char *keep = calloc(n_v, 1);
    enum bms_status rc = BMS_ERR_NOMEM;

    s->release_first = calloc(n_n + 1, sizeof(int));
    s->release_vals = malloc(n_v * sizeof(int));
    if (root == NULL || at == NULL || cursor == NULL || keep == NULL ||
        s->release_first == NULL || s->release_vals == NULL) {
        goto out;
    }
    find_last_uses(s, root, at, keep);
    for (int v = 0; v < m->n_values; v++) {
        if (at[v] >= 0) {
            s->release_first[at[v] + 1]++;
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        s->release_first[i + 1] += s->release_first[i];
        cursor[i] = s->release_first[i];
    }
    for (int v = 0; v < m->n_values; v++) {
        if (at[v] >= 0) {
            s->release_vals[cursor[at[v]]++] = v;
        }
    }
    rc = BMS_OK;
out:
    free(keep);
    free(cursor);
    free(at);
    free(root);
    return rc;
}


/* Number the node output slots the memory plan places (plan.h). */
static enum bms_status init_slots(struct bms_session *s)
{
    const struct bms_model *m = s->model;
    size_t n_sig = (size_t)m->n_inputs * (BMS_MAX_DIMS + 1) + 1;

    s->slot_first = malloc(((size_t)m->n_nodes + 1) * sizeof(int));
    s->sig = malloc(n_sig * sizeof(int64_t));
    if (s->slot_first == NULL || s->sig == NULL) {
        return BMS_ERR_NOMEM;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        s->slot_first[i] = s->n_slots;
        s->n_slots += m->nodes[i].n_outputs;
    }
    s->slot_first[m->n_nodes] = s->n_slots;
    s->slot_size = calloc((size_t)s->n_slots + 1, sizeof(size_t));
    s->slot_view = calloc((size_t)s->n_slots + 1, 1);
    if (s->slot_size == NULL || s->slot_view == NULL) {
        return BMS_ERR_NOMEM;
    }
    return BMS_OK;
}


enum bms_status bms_session_create(const struct bms_model *model,
                                   struct bms_session **out,
                                   struct bms_diag *diag)
{
    struct bms_session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    s->model = model;
    s->ctx.n_threads = bms__engine_threads();
    s->arena.limit = bms__engine_memory_limit();
    s->vals = calloc((size_t)model->n_values + 1, sizeof(*s->vals));
    s->in = calloc((size_t)model->max_node_inputs + 1, sizeof(*s->in));
    s->out = calloc((size_t)model->max_node_outputs + 1, sizeof(*s->out));
    s->is_view = calloc((size_t)model->n_nodes + 1, 1);
    s->block_size = calloc((size_t)model->n_values + 1, sizeof(size_t));
    s->owned = calloc((size_t)model->n_values + 1, 1);
    s->free_list = calloc(free_list_cap(model), sizeof(*s->free_list));
    s->is_control = calloc((size_t)model->n_nodes + 1, 1);
    s->results = calloc((size_t)model->max_node_outputs + 1,
                        sizeof(*s->results));
    if (s->vals == NULL || s->in == NULL || s->out == NULL ||
        s->is_view == NULL || s->block_size == NULL || s->owned == NULL ||
        s->free_list == NULL || s->is_control == NULL ||
        s->results == NULL) {
        bms_session_destroy(s);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < model->n_nodes; i++) {
        s->is_view[i] = (unsigned char)is_view_op(model->nodes[i].op_type);
        s->is_control[i] =
            (unsigned char)bms__op_runs_graphs(model->nodes[i].op);
    }
    if (plan_release(s) != BMS_OK || init_slots(s) != BMS_OK) {
        bms_session_destroy(s);
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    for (int v = 0; v < model->n_values; v++) {
        if (model->values[v].kind == BMS__VALUE_CONST) {
            s->vals[v] = model->values[v].t;
        }
    }
    *out = s;
    return BMS_OK;
}


enum bms_status bms_session_set_profiling(struct bms_session *session,
                                          int on)
{
    if (!on) {
        free(session->node_us);
        session->node_us = NULL;
        return BMS_OK;
    }
    if (session->node_us == NULL) {
        session->node_us = calloc((size_t)session->model->n_nodes + 1,
                                  sizeof(*session->node_us));
    }
    return session->node_us != NULL ? BMS_OK : BMS_ERR_NOMEM;
}


int bms_session_profile(const struct bms_session *session, int i,
                        char *label, size_t label_size, int64_t *total_us)
{
    const struct bms_model *m = session->model;

    if (i >= 0 && i < m->n_nodes) {
        bms__node_label(m, &m->nodes[i], label, label_size);
        *total_us = session->node_us != NULL ? session->node_us[i] : 0;
    }
    return m->n_nodes;
}


void bms_session_destroy(struct bms_session *session)
{
    if (session == NULL) {
        return;
    }
    arena_fini(&session->arena);
    bms__ctx_fini(&session->ctx);
    free(session->node_us);
    free(session->out);
    free(session->in);
    free(session->vals);
    free(session->is_view);
    free(session->is_control);
    free(session->results);
    free(session->release_first);
    free(session->release_vals);
    free(session->block_size);
    free(session->owned);
    free(session->free_list);
    for (int i = 0; i < PLAN_CACHE; i++) {
        bms__plan_fini(&session->plans[i]);
    }
    free(session->sig);
    free(session->slot_first);
    free(session->slot_size);
    free(session->slot_view);
    free(session);
}


static enum bms_status check_input(const struct bms_value_info *info,
                                   const struct bms_tensor *t,
                                   struct bms_diag *diag)
{
    if (t->dtype != info->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "input '%s': datatype %s, the model takes %s",
                            info->name, bms_dtype_v2_name(t->dtype),
                            bms_dtype_v2_name(info->dtype));
    }
    if (t->n_dims < 0 || t->n_dims > BMS_MAX_DIMS ||
        (info->n_dims >= 0 && t->n_dims != info->n_dims)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "input '%s': %d dims, the model takes %d",
                            info->name, t->n_dims, info->n_dims);
    }
    for (int d = 0; d < t->n_dims; d++) {
        int64_t want = info->n_dims >= 0 ? info->dims[d] : -1;

        if (t->dims[d] < 0 || (want >= 0 && t->dims[d] != want)) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "input '%s': dims[%d] is %lld, the model "
                                "takes %lld", info->name, d,
                                (long long)t->dims[d], (long long)want);
        }
    }
    if (!bms__dims_valid(t)) {
        return bms_diag_set(diag, BMS_ERR_LIMIT,
                            "input '%s': more than 2^40 elements",
                            info->name);
    }
    if (t->data == NULL && bms_tensor_numel(t) > 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "input '%s': no data",
                            info->name);
    }
    return BMS_OK;
}


/* Give back the blocks of the values node i was the last to read. */
static void release_after(struct bms_session *s, int i)
{
    for (int e = s->release_first[i]; e < s->release_first[i + 1]; e++) {
        int v = s->release_vals[e];

        if (s->owned[v]) {
            give_block(s, s->vals[v].data, s->block_size[v]);
            s->owned[v] = 0;
        }
    }
}


/* The error of an allocation of size bytes that failed: over the
 * session's limit, or out of memory. */
static enum bms_status no_memory(const struct bms_session *s, size_t size,
                                 struct bms_diag *diag)
{
    if (s->arena.over) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "%zu more bytes of tensors "
                            "would pass the session's memory limit of %zu "
                            "bytes", size, s->arena.limit);
    }
    return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
}


/* A planned run's memory for slot: its place in the plan when it fits,
 * else a block above the plan (and the run plans again). */
static void *planned_block(struct bms_session *s, int slot, size_t size)
{
    const struct bms__plan *p = s->plan;

    if (p->offset[slot] != BMS__PLAN_NONE && p->size[slot] >= size) {
        return s->arena.base + p->offset[slot];
    }
    s->plan_miss = 1;
    return arena_alloc(&s->arena, size);
}


/* Memory for the node's outputs, after infer set their shapes, and the
 * record of it for the plan.  Absent outputs get memory too, so no kernel
 * has to check; a view's output is its input's bytes (the kernel's copy
 * finds both equal and skips). */
static enum bms_status take_outputs(struct bms_session *s,
                                    const struct bms__node *node, int view,
                                    size_t *sizes, struct bms_diag *diag)
{
    int first = s->slot_first[node - s->model->nodes];

    for (int j = 0; j < node->n_outputs; j++) {
        size_t size;

        if (!bms__dims_valid(&s->out[j])) {
            return bms_diag_set(diag, BMS_ERR_LIMIT,
                                "output %d: more than 2^40 elements", j);
        }
        size = block_bytes(bms_tensor_size(&s->out[j]));
        s->slot_view[first + j] = (unsigned char)(j == 0 && view);
        s->slot_size[first + j] = j == 0 && view ? 0 : size;
        if (j == 0 && view) {
            s->out[0].data = s->in[0]->data;
            continue;
        }
        if (s->plan != NULL) {
            s->out[j].data = planned_block(s, first + j, size);
            sizes[j] = 0;
        } else {
            s->out[j].data = take_block(s, size, &sizes[j]);
        }
        if (s->out[j].data == NULL) {
            return no_memory(s, size, diag);
        }
    }
    return BMS_OK;
}


/* Record the outputs as values; in a dynamic run an absent output's
 * block goes straight back to the free list. */
static void keep_outputs(struct bms_session *s, const struct bms__node *node,
                         int view, const size_t *sizes)
{
    for (int j = 0; j < node->n_outputs; j++) {
        int v = node->outputs[j];
        int own = !(j == 0 && view) && s->plan == NULL;

        if (v >= 0) {
            s->vals[v] = s->out[j];
            s->block_size[v] = sizes[j];
            s->owned[v] = (unsigned char)own;
        } else if (own) {
            give_block(s, s->out[j].data, sizes[j]);
        }
    }
}


/* Run a node that runs subgraphs: its kernel sets the results' dims and
 * malloc'ed data; they are copied into outputs taken like any node's. */
static enum bms_status run_control(struct bms_session *s,
                                   const struct bms__node *node,
                                   size_t *sizes, struct bms_diag *diag)
{
    struct bms_tensor *res = s->results;
    enum bms_status rc;

    memset(res, 0, (size_t)node->n_outputs * sizeof(*res));
    rc = node->op->run(node, s->in, res, &s->ctx);
    if (rc != BMS_OK) {
        rc = bms_diag_set(diag, rc, "run failed: %s", bms_status_name(rc));
        goto out;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        s->out[j] = res[j];
        s->out[j].data = NULL;
    }
    rc = take_outputs(s, node, 0, sizes, diag);
    for (int j = 0; rc == BMS_OK && j < node->n_outputs; j++) {
        size_t size = bms_tensor_size(&res[j]);

        if (size > 0) {
            memcpy(s->out[j].data, res[j].data, size);
        }
    }
out:
    for (int j = 0; j < node->n_outputs; j++) {
        free(res[j].data);
        res[j].data = NULL;
    }
    return rc;
}


static enum bms_status run_node(struct bms_session *s,
                                const struct bms__node *node,
                                struct bms_diag *diag)
{
    int i = (int)(node - s->model->nodes);
    size_t sizes[BMS__MAX_OUTPUTS] = {0};
    enum bms_status rc;
    int view;

    if (node->n_outputs > BMS__MAX_OUTPUTS) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED, "more than %d outputs",
                            BMS__MAX_OUTPUTS);
    }
    for (int k = 0; k < node->n_inputs; k++) {
        int v = node->inputs[k];

        s->in[k] = v >= 0 ? &s->vals[v] : NULL;
    }
    view = s->is_view[i] && node->n_inputs > 0 && s->in[0] != NULL &&
           s->in[0]->data != NULL;
    memset(s->out, 0, (size_t)node->n_outputs * sizeof(*s->out));
    if (s->is_control[i]) {
        rc = run_control(s, node, sizes, diag);
        view = 0;
    } else {
        rc = node->op->infer(node, s->in, s->out, diag);
        if (rc == BMS_OK) {
            rc = take_outputs(s, node, view, sizes, diag);
        }
        if (rc == BMS_OK) {
            rc = node->op->run(node, s->in, s->out, &s->ctx);
            if (rc != BMS_OK) {
                rc = bms_diag_set(diag, rc, "run failed: %s",
                                  bms_status_name(rc));
            }
        }
    }
    if (rc != BMS_OK) {
        return rc;
    }
    keep_outputs(s, node, view, sizes);
    release_after(s, i);
    return BMS_OK;
}


/* Whether p points into one of the caller's inputs. */
static int in_caller_input(const struct bms_session *s, const void *p)
{
    const struct bms_model *m = s->model;
    const char *c = p;

    for (int i = 0; i < m->n_inputs; i++) {
        const struct bms_tensor *t = &s->vals[m->input_values[i]];
        const char *base = t->data;

        if (base != NULL && c >= base && c < base + bms_tensor_size(t)) {
            return 1;
        }
    }
    return 0;
}


/* A graph output whose bytes are a graph input's (directly or through
 * views) is copied: the caller's input data is borrowed only for the
 * call. */
static enum bms_status collect_outputs(struct bms_session *s,
                                       struct bms_tensor *outputs,
                                       struct bms_diag *diag)
{
    const struct bms_model *m = s->model;

    for (int j = 0; j < m->n_outputs; j++) {
        int v = m->output_values[j];
        size_t size = bms_tensor_size(&s->vals[v]);

        outputs[j] = s->vals[v];
        if (size == 0 || !in_caller_input(s, s->vals[v].data)) {
            continue;
        }
        outputs[j].data = arena_alloc(&s->arena, size);
        if (outputs[j].data == NULL) {
            return no_memory(s, size, diag);
        }
        if (size > 0) {
            memcpy(outputs[j].data, s->vals[v].data, size);
        }
    }
    return BMS_OK;
}


/* The cached plan for this run's input dims, or NULL. */
static struct bms__plan *find_plan(struct bms_session *s)
{
    for (int i = 0; i < PLAN_CACHE; i++) {
        if (bms__plan_matches(&s->plans[i], s->sig, s->sig_len)) {
            s->plans[i].last_used = ++s->plan_clock;
            return &s->plans[i];
        }
    }
    return NULL;
}


/* Choose how this run takes memory: by the plan for its input dims when
 * there is one and the arena can hold it, dynamically otherwise. */
static void start_run(struct bms_session *s, const struct bms_tensor *inputs)
{
    s->sig_len = bms__plan_signature(s->model, inputs, s->sig);
    s->plan = find_plan(s);
    s->plan_miss = 0;
    if (!arena_reset(&s->arena, s->plan != NULL ? s->plan->arena_size : 0)) {
        s->plan = NULL;
    }
    s->n_free = 0;
    memset(s->owned, 0, (size_t)s->model->n_values);
}


/* After a good run without a plan that fitted: plan from what it used,
 * in place of the plan that missed or the least recently used one.  A
 * plan that cannot be built (no memory) leaves the next run dynamic. */
static void finish_run(struct bms_session *s)
{
    struct bms__plan_trace trace = {s->n_slots, s->slot_first,
                                    s->slot_size, s->slot_view};
    struct bms__plan *p = s->plan;

    if (p != NULL && !s->plan_miss) {
        s->last_plan = p;
        return;
    }
    for (int i = 0; s->plan == NULL && i < PLAN_CACHE; i++) {
        if (s->plans[i].offset == NULL) {
            p = &s->plans[i];
            break;
        }
        if (p == NULL || s->plans[i].last_used < p->last_used) {
            p = &s->plans[i];
        }
    }
    bms__plan_fini(p);
    s->last_plan = NULL;
    if (bms__plan_build(s->model, &trace, s->sig, s->sig_len, p) != BMS_OK) {
        return;
    }
    p->last_used = ++s->plan_clock;
    s->last_plan = p;
    bms_log(BMS_LOG_DEBUG, "engine",
            "msg=\"memory planned\" buffers=%d arena_bytes=%zu "
            "total_bytes=%zu", p->n_buffers, p->arena_size, p->total_size);
}


/* A subgraph's input: the node feeding it checked the dims it cares
 * about; a declared datatype must still hold. */
static enum bms_status check_graph_input(const struct bms_value_info *info,
                                         const struct bms_tensor *t,
                                         struct bms_diag *diag)
{
    if (info->dtype != BMS_DTYPE_UNDEFINED && t->dtype != info->dtype) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "subgraph input '%s': datatype %s, the graph "
                            "takes %s", info->name,
                            bms_dtype_v2_name(t->dtype),
                            bms_dtype_v2_name(info->dtype));
    }
    if (!bms__dims_valid(t) || (t->data == NULL && bms_tensor_numel(t) > 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "subgraph input '%s': bad dims or no data",
                            info->name);
    }
    return BMS_OK;
}


/* Run the session's graph: inputs checked, outer values (subgraphs only)
 * taken from captures. */
static enum bms_status run_graph(struct bms_session *session,
                                 const struct bms_tensor *inputs,
                                 const struct bms_tensor *const *captures,
                                 struct bms_tensor *outputs,
                                 struct bms_diag *diag)
{
    const struct bms_model *m = session->model;
    char label[160];
    enum bms_status rc;

    for (int i = 0; i < m->n_inputs; i++) {
        if (m->depth == 0) {
            rc = check_input(&m->inputs[i], &inputs[i], diag);
        } else {
            rc = check_graph_input(&m->inputs[i], &inputs[i], diag);
        }
        if (rc != BMS_OK) {
            return rc;
        }
    }
    start_run(session, inputs);
    for (int i = 0; i < m->n_inputs; i++) {
        session->vals[m->input_values[i]] = inputs[i];
    }
    for (int v = 0; v < m->n_values && captures != NULL; v++) {
        if (m->values[v].kind == BMS__VALUE_OUTER) {
            session->vals[v] = *captures[m->values[v].index];
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const struct bms__node *node = &m->nodes[i];
        int64_t t0 = session->node_us != NULL ? bms_now_us() : 0;

        rc = run_node(session, node, diag);
        if (session->node_us != NULL) {
            session->node_us[i] += bms_now_us() - t0;
        }
        if (rc != BMS_OK) {
            bms_diag_prefix(diag, "%s",
                            bms__node_label(m, node, label, sizeof(label)));
            return rc;
        }
    }
    rc = collect_outputs(session, outputs, diag);
    if (rc == BMS_OK) {
        finish_run(session);
    }
    return rc;
}


enum bms_status bms_session_run(struct bms_session *session,
                                const struct bms_tensor *inputs,
                                struct bms_tensor *outputs,
                                struct bms_diag *diag)
{
    return run_graph(session, inputs, NULL, outputs, diag);
}


enum bms_status bms__session_run_graph(struct bms_session *session,
                                       const struct bms_tensor *inputs,
                                       const struct bms_tensor *const *captures,
                                       struct bms_tensor *outputs,
                                       struct bms_diag *diag)
{
    return run_graph(session, inputs, captures, outputs, diag);
}


int bms__session_plan_stats(const struct bms_session *session,
                            size_t *arena_size, size_t *total_size,
                            int *n_buffers)
{
    const struct bms__plan *p = session->last_plan;

    if (p == NULL) {
        return 0;
    }
    *arena_size = p->arena_size;
    *total_size = p->total_size;
    *n_buffers = p->n_buffers;
    return 1;
}
