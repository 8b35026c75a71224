/*
 * The model manager: models that come and go while the server runs.
 * Each model of the repository folder has a slot holding a repository of
 * that one model (the versions its version policy selects), a scheduler
 * made on it and its routing table.  A request takes a lease on the
 * slot of its model and gives it back when answered; a load builds a new
 * slot completely (sessions made, instances started) while the old one
 * serves, then swaps it in, and the old slot is destroyed when its last
 * lease is given back, so no request in flight is dropped by a reload.
 *
 * Loads and unloads run one at a time, on the caller's thread.  With
 * poll_s > 0 a thread scans the folder every poll_s seconds and loads new
 * model folders, reloads changed ones (config.json or a model.onnx of a
 * different mtime or size, a version folder added or removed) and
 * unloads removed ones.
 */
#ifndef BMS_MANAGER_H
#define BMS_MANAGER_H

#include "bms/base.h"
#include "bms/repo.h"
#include "bms/sched.h"
#include "bms/store.h"

struct bms_manager;
struct bms__routing;

struct bms_manager_config {
    const char *dir;         /* the repository folder */
    int n_cores;             /* 0: the online cores */
    struct bms_store *store; /* may be NULL; alerts and manifests go there */
    int poll_s;              /* 0: no polling */
};

/*
 * Open the manager on config->dir and load every model folder in it (a
 * model that fails is kept with its reason, as bms_repo_open does).
 * Starts the poll thread when config->poll_s > 0.  Fails with
 * BMS_ERR_NOT_FOUND or BMS_ERR_IO when the folder cannot be read,
 * BMS_ERR_NOMEM; *out is written on success.  The store, when given,
 * must outlive the manager.
 */
enum bms_status bms_manager_open(const struct bms_manager_config *c,
                                 struct bms_manager **out,
                                 struct bms_diag *diag);

/* Stop polling and destroy every slot.  No lease may be held.  Accepts
 * NULL. */
void bms_manager_close(struct bms_manager *m);

/* The repository folder, as given to bms_manager_open. */
const char *bms_manager_dir(const struct bms_manager *m);

/*
 * (Re)load every version of name that its policy selects, or only
 * version (> 0), added to the versions loaded now; config_json (NULL:
 * the folder's config.json) replaces the manifest for this load.  The
 * versions loaded before keep serving until the new ones are ready; then
 * they drain and go.  BMS_ERR_NOT_FOUND: no such folder (or version
 * folder); BMS_ERR_INVALID with the model's load error (no version
 * loaded, or the version asked for failed): the old slot, if any, keeps
 * serving, and the index shows the reason.  Thread-safe.
 */
enum bms_status bms_manager_load(struct bms_manager *m,
                                 const char *name, int64_t version,
                                 const char *config_json,
                                 struct bms_diag *diag);

/*
 * Unload the model (version 0) or one of its versions (the others are
 * reloaded without it).  Requests in flight finish first.  Unloading a
 * model that is not loaded is no error; BMS_ERR_NOT_FOUND when it has
 * neither a folder nor a slot, or version is not loaded.  Thread-safe.
 */
enum bms_status bms_manager_unload(struct bms_manager *m,
                                   const char *name, int64_t version,
                                   struct bms_diag *diag);

/* A lease on one model: its repository (only that model), scheduler
 * and routing, valid until released.  NULL lease->repo: not loaded. */
struct bms_manager_lease {
    struct bms_repo *repo;
    struct bms_sched *sched;
    struct bms__routing *routing;
    void *slot;              /* private */
};

/* Take a lease on name's slot (all fields NULL when it has none) and
 * give it back.  Releasing a lease without a slot does nothing.
 * Thread-safe; neither waits on a load. */
void bms_manager_acquire(struct bms_manager *m, const char *name,
                         struct bms_manager_lease *out);
void bms_manager_release(struct bms_manager *m,
                         struct bms_manager_lease *lease);

/* Called with the model's name after each swap or unload of its slot
 * (from the thread that loaded), with no lock of the manager held. */
typedef void (*bms_manager_change_fn)(void *ud, const char *name);

/* Install the change hook (NULL: none).  Thread-safe; once it returns
 * the hook it replaced is not running and will not run again. */
void bms_manager_set_change_hook(struct bms_manager *m,
                                 bms_manager_change_fn fn, void *ud);

/*
 * The manifest a load without one of its own (config_json NULL: poll
 * mode, the load API, start-up) uses: fn writes the document into out,
 * or leaves out empty for the folder's config.json.  Called with the load
 * lock held, so it must not load or unload.  A failure fails the load
 * with its message.
 */
typedef enum bms_status (*bms_manager_config_fn)(void *ud, const char *name,
                                                 struct bms_buf *out,
                                                 struct bms_diag *diag);

/* Install the config hook (NULL: none), like the change hook. */
void bms_manager_set_config_hook(struct bms_manager *m,
                                 bms_manager_config_fn fn, void *ud);

/* How many models have a ready version now.  Thread-safe. */
int bms_manager_n_ready(struct bms_manager *m);

/* One row of the repository index; the strings live for the call. */
struct bms_manager_entry {
    const char *name;
    int64_t version;         /* 0: the model has no version folder */
    const char *state;       /* "READY", "UNAVAILABLE", "LOADING" */
    const char *reason;      /* "" when ready */
};

/* Called once per row; return non-zero to stop. */
typedef int (*bms_manager_entry_fn)(void *ud,
                                    const struct bms_manager_entry *e);

/*
 * Every model folder and version of the repository folder, and every
 * loaded model whose folder is gone, by name then version.  fn runs
 * with the manager's table locked: it must not call back into the
 * manager.  Fails with BMS_ERR_NOMEM or BMS_ERR_IO (the folder cannot be
 * read).  Thread-safe.
 */
enum bms_status bms_manager_index(struct bms_manager *m,
                                  bms_manager_entry_fn fn, void *ud,
                                  struct bms_diag *diag);

/*
 * Scan the folder once as the poll thread does: load new model folders,
 * reload changed ones, unload removed ones, logging each.  Returns how
 * many models it loaded, reloaded or unloaded.  Thread-safe.
 */
int bms_manager_poll(struct bms_manager *m);

#endif
