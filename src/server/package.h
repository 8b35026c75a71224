/*
 * Model packages: one model folder (config.json and <version>/model.onnx)
 * as a tar, tar.gz or zip archive, for upload into the repository and
 * download from it.
 *
 * Unpacking trusts nothing in the archive: only regular files named
 * config.json and <version>/model.onnx (optionally under one top folder
 * named like the model) are accepted, sizes and counts are bounded, and
 * the files land in a fresh staging folder inside the repository that
 * replaces the model folder only once every version in it loads.  So a
 * refused package leaves the repository exactly as it was.
 */
#ifndef BMS_SERVER_PACKAGE_H
#define BMS_SERVER_PACKAGE_H

#include <stddef.h>
#include <stdint.h>

#include "bms/base.h"

/* Most entries (files and folders) one archive may hold, and so most
 * versions one package carries. */
#define BMS__PACKAGE_MAX_ENTRIES 64
#define BMS__PACKAGE_ENTRY_MAX ((int64_t)1 << 30)    /* bytes: 1 GiB */

struct bms__package_limits {
    int64_t max_entry_size;      /* bytes of one file; 0: 1 GiB */
    int64_t max_total_size;      /* bytes of all files; 0: no bound but
                                  * max_entry_size per entry */
    int max_entries;             /* 0: BMS__PACKAGE_MAX_ENTRIES */
};

/* What an accepted package held. */
struct bms__package_info {
    char name[128];              /* the model's name */
    int n_versions;
    int64_t versions[BMS__PACKAGE_MAX_ENTRIES];  /* ascending */
};

/*
 * Unpack the archive data (len bytes: tar, tar.gz or any libarchive
 * filter over tar or zip, found by content) as model model_name into
 * repo_dir/<model_name>, replacing what was there once every version of
 * the package loads.  model_name NULL takes the name from the top folder,
 * else config.json's "name", else "model" (offline use).  limits NULL:
 * the defaults.  On success *info (may be NULL) says what was installed.
 *
 * BMS_ERR_INVALID with a message naming the entry for a refused archive
 * (a path other than config.json or <version>/model.onnx, "..", an
 * absolute path, a link, a device, a duplicate, a config.json naming
 * another model, no model.onnx, a version that does not load, a damaged
 * archive); BMS_ERR_LIMIT past a limit; BMS_ERR_IO when the folder cannot
 * be written; BMS_ERR_NOMEM.  On failure repo_dir is as it was.  Not
 * safe to call twice at once for one model folder (the caller serialises
 * uploads of one model); safe for different models.
 */
enum bms_status bms__package_unpack(const void *data, size_t len,
                                    const char *model_name,
                                    const char *repo_dir,
                                    const struct bms__package_limits *limits,
                                    struct bms__package_info *info,
                                    struct bms_diag *diag);

/*
 * Append to *out a tar.gz of the model folder model_dir: config.json (when
 * there is one) and every <version>/model.onnx, each under "<name>/",
 * name being model_dir's last component.  BMS_ERR_NOT_FOUND when the
 * folder does not exist or has no version with a model.onnx; BMS_ERR_IO;
 * BMS_ERR_NOMEM.  On failure out->len is as it was.  Thread-safe.
 */
enum bms_status bms__package_pack(const char *model_dir, struct bms_buf *out,
                                  struct bms_diag *diag);

/* Whether path names a package file by its suffix (.tar.gz, .tgz, .tar,
 * .zip). */
int bms__package_is_file(const char *path);

/*
 * Remove the folder path and everything under it, never following a
 * link.  BMS_ERR_IO when something could not be removed.
 */
enum bms_status bms__package_remove_tree(const char *path);

#endif
