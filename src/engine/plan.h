/*
 * Internal to the engine: a session's memory plan.  For one signature of
 * input dims, the plan gives every node output that needs memory of its
 * own (a buffer) an offset in one arena, so that buffers whose lifetimes
 * overlap never share bytes and the others may.  A run that follows a
 * plan takes no memory per value: it only sets pointers.
 *
 * Buffers are numbered per node output slot: node i's output j is buffer
 * first[i] + j (struct bms__plan_trace).  Output 0 of a view node
 * (Reshape and the other operators that only relabel dims) is no buffer:
 * it shares the bytes of the node's input 0, whose buffer then lives as
 * long as the last reader of either.
 */
#ifndef BMS_ENGINE_PLAN_H
#define BMS_ENGINE_PLAN_H

#include "engine/model.h"

/* Offset of a slot without a place in the plan (a view, or none). */
#define BMS__PLAN_NONE SIZE_MAX

/* What one run used, the input of bms__plan_build.  first has n_nodes + 1
 * entries; size and view have one per slot. */
struct bms__plan_trace {
    int n_slots;
    const int *first;            /* per node: its first slot */
    const size_t *size;          /* per slot: bytes, a multiple of 64 */
    const unsigned char *view;   /* per slot: shares input 0's bytes */
};

struct bms__plan {
    int64_t *sig;                /* the input dims the plan is for */
    int sig_len;
    size_t *offset;              /* per slot: bytes into the arena */
    size_t *size;                /* per slot: bytes reserved there */
    int n_slots;
    int n_buffers;               /* slots with a place */
    size_t arena_size;           /* bytes, a multiple of 64 */
    size_t total_size;           /* sum of the buffers' sizes, bytes */
    uint64_t last_used;          /* for the session's cache */
};

/*
 * The signature of inputs (one per model input): their ranks and dims,
 * written to sig (room for n_inputs * (BMS_MAX_DIMS + 1) values); returns
 * how many were written.
 */
int bms__plan_signature(const struct bms_model *model,
                        const struct bms_tensor *inputs, int64_t *sig);

/*
 * Build into plan (zeroed, or finished with bms__plan_fini) the placement
 * of the buffers trace records for model, for the inputs of signature sig
 * (sig_len values, copied).  A buffer lives from the node that writes it
 * to the last node that reads it or any view of it; graph outputs live to
 * the end of the run.  Buffers are placed largest first, each in the
 * smallest gap between the buffers already placed whose lifetimes overlap
 * its own (best fit), else above them.  BMS_ERR_NOMEM leaves plan empty.
 */
enum bms_status bms__plan_build(const struct bms_model *model,
                                const struct bms__plan_trace *trace,
                                const int64_t *sig, int sig_len,
                                struct bms__plan *plan);

/* Whether plan was built for the inputs of signature sig. */
int bms__plan_matches(const struct bms__plan *plan, const int64_t *sig,
                      int sig_len);

/* Free what plan holds and zero it; accepts a zeroed plan. */
void bms__plan_fini(struct bms__plan *plan);

/*
 * The sizes of the plan the session's last successful run followed or
 * built: arena bytes, the sum of its buffers' sizes and their count.
 * Returns 0 (and writes nothing) before any run.  For tests and reports;
 * same thread rules as bms_session_run.
 */
int bms__session_plan_stats(const struct bms_session *session,
                            size_t *arena_size, size_t *total_size,
                            int *n_buffers);

#endif
