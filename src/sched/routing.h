/*
 * Weighted routing between the versions of a model.  A request that names
 * no version goes to a version drawn by the model's weights with smooth
 * weighted round-robin: each pick adds every ready version's weight to
 * its credit, takes the version with the most credit and takes the sum of
 * the weights back from it.  Over any run of picks whose weights sum to
 * S the versions are taken in exact proportion (weights 90/10: 9 and 1 in
 * every 10), spread out rather than in bursts, and the same sequence
 * replays after a change, which keeps tests deterministic.
 *
 * A version that is not ready is left out of the pick, so the others
 * share its weight.  The table knows every version the repository found
 * for a model (ready or failed); weights may only name those.  Weights
 * start from the model's config.json and change at run time; one short
 * mutex guards picks and changes.
 */
#ifndef BMS_SCHED_ROUTING_H
#define BMS_SCHED_ROUTING_H

#include "bms/base.h"
#include "bms/repo.h"

struct bms__routing;

/*
 * Whether version of the model is ready to take a request; arg is the
 * caller's.  Called with the table's mutex held: it must not call back
 * into the table.
 */
typedef int (*bms__routing_ready_fn)(void *arg, const char *name,
                                     int64_t version);

/*
 * Make the table for every model in repo, each with the routing weights
 * of its config.json (read from any ready version's manifest).  The
 * repository is only read here.  Fails with BMS_ERR_NOMEM, leaving
 * nothing behind.
 */
enum bms_status bms__routing_create(const struct bms_repo *repo,
                                    struct bms__routing **out);

/* Free the table; accepts NULL.  No pick or change may be running. */
void bms__routing_destroy(struct bms__routing *routing);

/*
 * Choose the version of model name for a request without one.  *version
 * gets the version drawn, or 0 when the model has no weights (the caller
 * takes the highest ready version, or the model is unknown here).
 * Returns BMS_ERR_UNAVAILABLE when the model has weights but no version
 * with a positive weight is ready; *version is then 0.  Thread-safe.
 */
enum bms_status bms__routing_pick(struct bms__routing *routing,
                                  const char *name,
                                  bms__routing_ready_fn ready, void *arg,
                                  int64_t *version);

/*
 * Replace the weights of model name (n_weights 0 removes them).  The
 * credits start again from zero.  Returns BMS_ERR_NOT_FOUND when the
 * table has no such model, BMS_ERR_INVALID with a message naming
 * "weights.<v>" when a version is not one the model has.  Thread-safe.
 */
enum bms_status bms__routing_set(struct bms__routing *routing,
                                 const char *name,
                                 const struct bms_routing_weights *weights,
                                 struct bms_diag *diag);

/*
 * The weights of model name now, and how many requests each weighted
 * version was given since they were set (routed[k] for weights->
 * versions[k]; routed may be NULL).  Returns BMS_ERR_NOT_FOUND when the
 * table has no such model.  Thread-safe.
 */
enum bms_status bms__routing_get(struct bms__routing *routing,
                                 const char *name,
                                 struct bms_routing_weights *weights,
                                 int64_t *routed);

/*
 * Append the routing object of model name to out:
 * {"weights": {"1": 90, "2": 10}, "routed": {"1": 9, "2": 1}}, with empty
 * objects when the model has no weights.  Returns BMS_ERR_NOT_FOUND for a
 * model the table lacks, BMS_ERR_NOMEM with out as it was.  Thread-safe.
 */
enum bms_status bms__routing_json(struct bms__routing *routing,
                                  const char *name, struct bms_buf *out);

#endif
