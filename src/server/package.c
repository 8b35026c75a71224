/*
 * Model packages on libarchive: unpacking an uploaded archive into the
 * repository, and packing a model folder for download.
 *
 * Unpacking writes into a staging folder made with mkdtemp inside the
 * repository (its name starts with '.', which the repository never loads),
 * so the final step is a rename on one file system: the new folder is
 * exchanged with the old one in one call where the kernel allows it, else
 * the old one is moved aside first.  Until that step the model folder is
 * untouched; every refusal removes the staging folder and nothing else.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "bms/repo.h"
#include "server/package.h"

#define MODEL_NAME_MAX 127           /* the repository's bound */
#define NAME_SHOWN_MAX 96            /* entry name characters in messages */
#define PATH_PARTS_MAX 4             /* components an accepted path has */
#define VERSION_DIGITS_MAX 18        /* keeps a version inside int64 */
#define CONFIG_SIZE_MAX ((int64_t)16 << 20)  /* bytes of config.json */
#define CHUNK_SIZE 65536             /* bytes copied at a time */
#define STAGE_DIR "m"                /* the model inside the staging folder */

/* What one archive entry is, once its path is checked. */
enum entry_kind {
    ENTRY_SKIP = 0,              /* a folder: the top one or a version */
    ENTRY_CONFIG,                /* config.json */
    ENTRY_MODEL                  /* <version>/model.onnx */
};

/* The state of one unpack. */
struct unpack {
    struct archive *a;
    const char *model_name;      /* NULL: take it from the package */
    struct bms__package_limits limits;
    char stage[PATH_MAX];        /* the staging folder */
    int have_stage;
    int top_decided;             /* the first entry says whether a top */
    int has_top;                 /* folder holds everything */
    char top[MODEL_NAME_MAX + 1];
    int n_entries;
    int64_t total_size;          /* bytes written so far */
    char *config;                /* config.json as read, or NULL */
    struct bms_manifest *manifest;   /* config parsed, or NULL */
    size_t config_len;
    int n_versions;
    int64_t versions[BMS__PACKAGE_MAX_ENTRIES];
    char shown[NAME_SHOWN_MAX + 1];  /* the current entry, for messages */
};


/* Copy s into out for a message: printable ASCII only, cut short. */
static void show_name(const char *s, char *out, size_t size)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        out[i] = (c < 0x20 || c >= 0x7f || c == '\'') ? '?' : (char)c;
    }
    out[i] = '\0';
}


/* A positive decimal version without leading zeros, or 0. */
static int64_t parse_version(const char *s, size_t len)
{
    int64_t v = 0;

    if (len == 0 || len > VERSION_DIGITS_MAX || s[0] == '0') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}


static int version_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}


/* [A-Za-z0-9_.-]{1,127}, not starting with '.': the repository's rule. */
static int valid_model_name(const char *s, size_t len)
{
    if (len == 0 || len > MODEL_NAME_MAX || s[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-')) {
            return 0;
        }
    }
    return 1;
}


static int part_is(const char *p, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(p, s, len) == 0;
}


/*
 * Split path into at most PATH_PARTS_MAX components (a leading "./" and a
 * trailing '/' dropped).  Refuses absolute paths, "..", ".", empty
 * components and deeper paths.
 */
static enum bms_status split_path(struct unpack *u, const char *path,
                                  const char **parts, size_t *lens,
                                  int *n_parts, struct bms_diag *diag)
{
    const char *p = path;
    int n = 0;

    if (p[0] == '/') {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': an "
                            "absolute path", u->shown);
    }
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
    }
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);

        if (len == 0 || part_is(p, len, ".") || part_is(p, len, "..")) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': "
                                "'%s' in the path", u->shown,
                                len == 0 ? "//" : len == 1 ? "." : "..");
        }
        if (n == PATH_PARTS_MAX) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a "
                                "deeper path than <version>/model.onnx",
                                u->shown);
        }
        parts[n] = p;
        lens[n] = len;
        n++;
        p += len;
        if (*p == '/') {
            p++;
        }
    }
    *n_parts = n;
    return BMS_OK;
}


/* Whether the path parts, without any top folder, start at a version
 * folder or config.json (so the package has no top folder). */
static int starts_bare(const char **parts, const size_t *lens, int n,
                       int is_dir)
{
    if (n == 1 && !is_dir) {
        return part_is(parts[0], lens[0], "config.json");
    }
    return parse_version(parts[0], lens[0]) > 0 &&
           ((n == 1 && is_dir) ||
            (n == 2 && part_is(parts[1], lens[1], "model.onnx")));
}


/* Settle the top folder on the first entry, then hold every entry to it;
 * strips it from parts. */
static enum bms_status check_top(struct unpack *u, const char ***parts,
                                 size_t **lens, int *n, int is_dir,
                                 struct bms_diag *diag)
{
    int bare = *n == 0 || starts_bare(*parts, *lens, *n, is_dir);

    if (!u->top_decided) {
        u->top_decided = 1;
        u->has_top = !bare;
        if (u->has_top) {
            if (!valid_model_name((*parts)[0], (*lens)[0])) {
                return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': "
                                    "the top folder is not a model name",
                                    u->shown);
            }
            snprintf(u->top, sizeof(u->top), "%.*s", (int)(*lens)[0],
                     (*parts)[0]);
            if (u->model_name != NULL && strcmp(u->top, u->model_name)) {
                return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': "
                                    "top folder '%s' is not the model "
                                    "name '%s'", u->shown, u->top,
                                    u->model_name);
            }
        }
    }
    if (!u->has_top) {
        return BMS_OK;
    }
    if (*n == 0 || !part_is((*parts)[0], (*lens)[0], u->top)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': outside "
                            "the top folder '%s'", u->shown, u->top);
    }
    (*parts)++;
    (*lens)++;
    (*n)--;
    return BMS_OK;
}


/* What an entry's path (folder or file) is; refuses every other path. */
static enum bms_status classify_path(struct unpack *u, const char *path,
                                     int is_dir, enum entry_kind *kind,
                                     int64_t *version, struct bms_diag *diag)
{
    const char *part_buf[PATH_PARTS_MAX];
    size_t len_buf[PATH_PARTS_MAX];
    const char **parts = part_buf;
    size_t *lens = len_buf;
    int n = 0;
    enum bms_status rc;

    rc = split_path(u, path, parts, lens, &n, diag);
    if (rc == BMS_OK) {
        rc = check_top(u, &parts, &lens, &n, is_dir, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    *version = n >= 1 ? parse_version(parts[0], lens[0]) : 0;
    if (is_dir && (n == 0 || (n == 1 && *version > 0))) {
        *kind = ENTRY_SKIP;
        return BMS_OK;
    }
    if (!is_dir && n == 1 && part_is(parts[0], lens[0], "config.json")) {
        *kind = ENTRY_CONFIG;
        return BMS_OK;
    }
    if (!is_dir && n == 2 && *version > 0 &&
        part_is(parts[1], lens[1], "model.onnx")) {
        *kind = ENTRY_MODEL;
        return BMS_OK;
    }
    if (n > 2) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a deeper "
                            "path than <version>/model.onnx", u->shown);
    }
    return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': not "
                        "config.json or <version>/model.onnx (a version is "
                        "a positive integer without leading zeros)",
                        u->shown);
}


/* Refuse every entry that is not a plain file or folder. */
static enum bms_status check_type(struct unpack *u, struct archive_entry *e,
                                  int *is_dir, struct bms_diag *diag)
{
    mode_t type = archive_entry_filetype(e);

    if (archive_entry_hardlink(e) != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a hard "
                            "link", u->shown);
    }
    if (type == AE_IFLNK || archive_entry_symlink(e) != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a "
                            "symbolic link", u->shown);
    }
    if (type == AE_IFDIR) {
        *is_dir = 1;
        return BMS_OK;
    }
    if (type != AE_IFREG) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a device "
                            "or special file", u->shown);
    }
    *is_dir = 0;
    return BMS_OK;
}


static int join(char *out, size_t size, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s", a, b);

    return n >= 0 && (size_t)n < size ? 0 : -1;
}


static enum bms_status io_error(struct bms_diag *diag, const char *what,
                                const char *path)
{
    return bms_diag_set(diag, BMS_ERR_IO, "%s %s: %s", what, path,
                        strerror(errno));
}


/* Write all n bytes of p to fd. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}


/* Read the current entry's data in chunks into the file fd (when >= 0)
 * and mem (when not NULL), within the entry and total limits. */
static enum bms_status copy_data(struct unpack *u, int64_t entry_max,
                                 int fd, struct bms_buf *mem,
                                 struct bms_diag *diag)
{
    char chunk[CHUNK_SIZE];
    int64_t done = 0;
    la_ssize_t n;

    while ((n = archive_read_data(u->a, chunk, sizeof(chunk))) > 0) {
        done += n;
        u->total_size += n;
        if (done > entry_max) {
            return bms_diag_set(diag, BMS_ERR_LIMIT, "entry '%s': over "
                                "%lld bytes", u->shown, (long long)entry_max);
        }
        if (u->limits.max_total_size > 0 &&
            u->total_size > u->limits.max_total_size) {
            return bms_diag_set(diag, BMS_ERR_LIMIT, "entry '%s': the "
                                "package unpacks to over %lld bytes",
                                u->shown,
                                (long long)u->limits.max_total_size);
        }
        if (fd >= 0 && write_all(fd, chunk, (size_t)n) != 0) {
            return bms_diag_set(diag, BMS_ERR_IO, "entry '%s': write: %s",
                                u->shown, strerror(errno));
        }
        if (mem != NULL && bms_buf_append(mem, chunk, (size_t)n) != BMS_OK) {
            return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
        }
    }
    if (n < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': damaged "
                            "archive: %s", u->shown,
                            archive_error_string(u->a) != NULL
                                ? archive_error_string(u->a) : "read error");
    }
    return BMS_OK;
}


/* Write the current entry's data to a new file at path. */
static enum bms_status write_file(struct unpack *u, const char *path,
                                  struct bms_diag *diag)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0644);
    enum bms_status rc;

    if (fd < 0) {
        return io_error(diag, "create", path);
    }
    rc = copy_data(u, u->limits.max_entry_size, fd, NULL, diag);
    if (close(fd) != 0 && rc == BMS_OK) {
        rc = io_error(diag, "close", path);
    }
    return rc;
}


static enum bms_status take_config(struct unpack *u, struct bms_diag *diag)
{
    struct bms_buf mem = { 0 };
    int64_t max = u->limits.max_entry_size < CONFIG_SIZE_MAX
                      ? u->limits.max_entry_size : CONFIG_SIZE_MAX;
    enum bms_status rc;

    if (u->config != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a second "
                            "config.json", u->shown);
    }
    rc = copy_data(u, max, -1, &mem, diag);
    if (rc == BMS_OK && mem.data == NULL) {
        rc = bms_buf_puts(&mem, "");
    }
    if (rc != BMS_OK) {
        bms_buf_fini(&mem);
        return rc;
    }
    u->config = mem.data;
    u->config_len = mem.len;
    return BMS_OK;
}


static enum bms_status take_model(struct unpack *u, int64_t version,
                                  struct bms_diag *diag)
{
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char vname[32];

    for (int i = 0; i < u->n_versions; i++) {
        if (u->versions[i] == version) {
            return bms_diag_set(diag, BMS_ERR_INVALID, "entry '%s': a "
                                "second model.onnx for version %lld",
                                u->shown, (long long)version);
        }
    }
    snprintf(vname, sizeof(vname), STAGE_DIR "/%lld", (long long)version);
    if (join(dir, sizeof(dir), u->stage, vname) != 0 ||
        join(path, sizeof(path), dir, "model.onnx") != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "repository path too "
                            "long");
    }
    if (mkdir(dir, 0755) != 0) {
        return io_error(diag, "mkdir", dir);
    }
    u->versions[u->n_versions++] = version;
    return write_file(u, path, diag);
}


/* Check one entry's header and take its data. */
static enum bms_status take_entry(struct unpack *u, struct archive_entry *e,
                                  struct bms_diag *diag)
{
    const char *path = archive_entry_pathname(e);
    enum entry_kind kind = ENTRY_SKIP;
    int64_t version = 0;
    int is_dir = 0;
    enum bms_status rc;

    if (path == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "entry %d: no readable "
                            "name", u->n_entries);
    }
    show_name(path, u->shown, sizeof(u->shown));
    if (++u->n_entries > u->limits.max_entries) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "entry '%s': more than %d "
                            "entries", u->shown, u->limits.max_entries);
    }
    rc = check_type(u, e, &is_dir, diag);
    if (rc == BMS_OK) {
        rc = classify_path(u, path, is_dir, &kind, &version, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if (!is_dir && archive_entry_size_is_set(e) &&
        archive_entry_size(e) > u->limits.max_entry_size) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "entry '%s': %lld bytes, "
                            "over %lld", u->shown,
                            (long long)archive_entry_size(e),
                            (long long)u->limits.max_entry_size);
    }
    if (!is_dir && archive_entry_size_is_set(e) &&
        u->limits.max_total_size > 0 &&
        u->total_size + archive_entry_size(e) > u->limits.max_total_size) {
        return bms_diag_set(diag, BMS_ERR_LIMIT, "entry '%s': the package "
                            "unpacks to over %lld bytes", u->shown,
                            (long long)u->limits.max_total_size);
    }
    if (kind == ENTRY_CONFIG) {
        return take_config(u, diag);
    }
    if (kind == ENTRY_MODEL) {
        return take_model(u, version, diag);
    }
    return BMS_OK;
}


/* Read every entry of the archive into the staging folder. */
static enum bms_status read_entries(struct unpack *u, struct bms_diag *diag)
{
    struct archive_entry *e;
    enum bms_status rc = BMS_OK;
    int r;

    while (rc == BMS_OK &&
           (r = archive_read_next_header(u->a, &e)) != ARCHIVE_EOF) {
        if (r < ARCHIVE_WARN) {
            const char *msg = archive_error_string(u->a);

            if (u->n_entries == 0) {
                return bms_diag_set(diag, BMS_ERR_INVALID, "not a tar, "
                                    "tar.gz or zip archive: %s",
                                    msg != NULL ? msg : "unreadable");
            }
            return bms_diag_set(diag, BMS_ERR_INVALID, "damaged archive "
                                "after entry '%s': %s", u->shown,
                                msg != NULL ? msg : "unreadable");
        }
        rc = take_entry(u, e, diag);
    }
    return rc;
}


/* The config's "name" must be the model's; settle the model name. */
static enum bms_status settle_name(struct unpack *u, char *name,
                                   size_t size, struct bms_diag *diag)
{
    struct bms_manifest *m = NULL;
    const char *given = u->model_name != NULL ? u->model_name
                        : u->has_top ? u->top : NULL;
    enum bms_status rc = BMS_OK;

    if (u->config != NULL) {
        rc = bms_manifest_parse(u->config, u->config_len, &m, diag);
        if (rc != BMS_OK) {
            bms_diag_prefix(diag, "config.json");
            return BMS_ERR_INVALID;
        }
    }
    if (m != NULL && m->name != NULL && m->name[0] != '\0') {
        char shown[NAME_SHOWN_MAX + 1];

        show_name(m->name, shown, sizeof(shown));
        if (given != NULL && strcmp(m->name, given) != 0) {
            rc = bms_diag_set(diag, BMS_ERR_INVALID, "config.json: name "
                              "'%s' is not the model name '%s'", shown,
                              given);
        } else if (given == NULL &&
                   !valid_model_name(m->name, strlen(m->name))) {
            rc = bms_diag_set(diag, BMS_ERR_INVALID, "config.json: name "
                              "'%s' is not a model name", shown);
        } else {
            given = m->name;
        }
    }
    if (rc == BMS_OK) {
        snprintf(name, size, "%s", given != NULL ? given : "model");
    }
    u->manifest = m;
    return rc;
}


static enum bms_status write_config(struct unpack *u, struct bms_diag *diag)
{
    char path[PATH_MAX];
    FILE *f;
    int failed;

    if (u->config == NULL) {
        return BMS_OK;
    }
    if (join(path, sizeof(path), u->stage, STAGE_DIR "/config.json") != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "repository path too "
                            "long");
    }
    f = fopen(path, "wbx");
    if (f == NULL) {
        return io_error(diag, "create", path);
    }
    failed = fwrite(u->config, 1, u->config_len, f) != u->config_len;
    failed = fclose(f) != 0 || failed;
    return failed ? io_error(diag, "write", path) : BMS_OK;
}


/* Whether the manifest's version policy selects one of the package's
 * versions (ascending), so that the server has something to load. */
static int policy_selects_any(const struct unpack *u)
{
    for (int i = 0; i < u->n_versions; i++) {
        if (bms_version_policy_selects(u->manifest, u->versions,
                                       u->n_versions, i)) {
            return 1;
        }
    }
    return 0;
}


/* Every version of the staged model loads, as the server would load it
 * (whatever the version policy, which may select others later). */
static enum bms_status verify_stage(struct unpack *u, const char *name,
                                    struct bms_diag *diag)
{
    struct bms_repo *repo = NULL;
    enum bms_status rc;
    int n_ready = 0;

    if (!policy_selects_any(u)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "config.json: "
                            "version_policy selects none of the package's "
                            "versions");
    }
    rc = bms_repo_open_versions(u->stage, name, NULL, u->versions,
                                u->n_versions, &repo, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int i = 0; i < bms_repo_n_entries(repo) && rc == BMS_OK; i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        if (e->state != BMS_ENTRY_READY) {
            rc = bms_diag_set(diag, BMS_ERR_INVALID, "version %lld does "
                              "not load: %s", (long long)e->version,
                              e->reason);
        }
        n_ready += e->state == BMS_ENTRY_READY;
    }
    if (rc == BMS_OK && n_ready != u->n_versions) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID, "%d of %d versions load",
                          n_ready, u->n_versions);
    }
    bms_repo_close(repo);
    return rc;
}


/* Put stage/<name> in place of repo_dir/<name>; the old folder ends up
 * inside the staging folder, removed with it. */
static enum bms_status install(struct unpack *u, const char *repo_dir,
                               const char *name, struct bms_diag *diag)
{
    char staged[PATH_MAX];
    char target[PATH_MAX];
    char aside[PATH_MAX];
    struct stat st;

    if (join(staged, sizeof(staged), u->stage, name) != 0 ||
        join(target, sizeof(target), repo_dir, name) != 0 ||
        join(aside, sizeof(aside), u->stage, ".old") != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "repository path too "
                            "long");
    }
    if (lstat(target, &st) != 0) {
        if (errno != ENOENT) {
            return io_error(diag, "stat", target);
        }
        return rename(staged, target) == 0 ? BMS_OK
               : io_error(diag, "rename into", target);
    }
    /* One exchange leaves no moment without a model folder. */
    if (renameat2(AT_FDCWD, staged, AT_FDCWD, target, RENAME_EXCHANGE) == 0) {
        return BMS_OK;
    }
    if (errno != EINVAL && errno != ENOSYS) {
        return io_error(diag, "exchange", target);
    }
    if (rename(target, aside) != 0) {
        return io_error(diag, "move aside", target);
    }
    if (rename(staged, target) != 0) {
        enum bms_status rc = io_error(diag, "rename into", target);

        if (rename(aside, target) != 0) {
            bms_log(BMS_LOG_ERROR, "package", "msg=\"old model folder not "
                    "restored\" folder=\"%s\" errno=%d", aside, errno);
        }
        return rc;
    }
    return BMS_OK;
}


static void fill_limits(struct bms__package_limits *out,
                        const struct bms__package_limits *in)
{
    memset(out, 0, sizeof(*out));
    if (in != NULL) {
        *out = *in;
    }
    if (out->max_entry_size <= 0) {
        out->max_entry_size = BMS__PACKAGE_ENTRY_MAX;
    }
    if (out->max_entries <= 0 || out->max_entries > BMS__PACKAGE_MAX_ENTRIES) {
        out->max_entries = BMS__PACKAGE_MAX_ENTRIES;
    }
}


/* Open the archive reader over data and make the staging folder. */
static enum bms_status unpack_begin(struct unpack *u, const void *data,
                                    size_t len, const char *repo_dir,
                                    struct bms_diag *diag)
{
    char dir[PATH_MAX];

    u->a = archive_read_new();
    if (u->a == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    if (archive_read_support_filter_all(u->a) < ARCHIVE_WARN ||
        archive_read_support_format_tar(u->a) != ARCHIVE_OK ||
        archive_read_support_format_zip(u->a) != ARCHIVE_OK) {
        return bms_diag_set(diag, BMS_ERR_INTERNAL, "libarchive: %s",
                            archive_error_string(u->a));
    }
    if (archive_read_open_memory(u->a, data, len) != ARCHIVE_OK) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "not a tar, tar.gz or "
                            "zip archive: %s",
                            archive_error_string(u->a) != NULL
                                ? archive_error_string(u->a) : "empty");
    }
    if (join(u->stage, sizeof(u->stage), repo_dir, ".pkg-XXXXXX") != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "repository path too "
                            "long");
    }
    if (mkdtemp(u->stage) == NULL) {
        return io_error(diag, "mkdtemp in", repo_dir);
    }
    u->have_stage = 1;
    if (join(dir, sizeof(dir), u->stage, STAGE_DIR) != 0 ||
        mkdir(dir, 0755) != 0) {
        return io_error(diag, "mkdir", dir);
    }
    return BMS_OK;
}


/* After reading: name, config, check, and the swap into the repository. */
static enum bms_status unpack_finish(struct unpack *u, const char *repo_dir,
                                     struct bms__package_info *info,
                                     struct bms_diag *diag)
{
    char name[MODEL_NAME_MAX + 1];
    char from[PATH_MAX];
    char to[PATH_MAX];
    enum bms_status rc;

    if (u->n_versions == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "no <version>/"
                            "model.onnx in the package");
    }
    qsort(u->versions, (size_t)u->n_versions, sizeof(u->versions[0]),
          version_cmp);
    rc = settle_name(u, name, sizeof(name), diag);
    if (rc == BMS_OK) {
        rc = write_config(u, diag);
    }
    if (rc != BMS_OK) {
        return rc;
    }
    if (join(from, sizeof(from), u->stage, STAGE_DIR) != 0 ||
        join(to, sizeof(to), u->stage, name) != 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "repository path too "
                            "long");
    }
    if (strcmp(from, to) != 0 && rename(from, to) != 0) {
        return io_error(diag, "rename", from);
    }
    rc = verify_stage(u, name, diag);
    if (rc == BMS_OK) {
        rc = install(u, repo_dir, name, diag);
    }
    if (rc == BMS_OK && info != NULL) {
        memset(info, 0, sizeof(*info));
        snprintf(info->name, sizeof(info->name), "%s", name);
        info->n_versions = u->n_versions;
        memcpy(info->versions, u->versions,
               (size_t)u->n_versions * sizeof(u->versions[0]));
    }
    return rc;
}


enum bms_status bms__package_unpack(const void *data, size_t len,
                                    const char *model_name,
                                    const char *repo_dir,
                                    const struct bms__package_limits *limits,
                                    struct bms__package_info *info,
                                    struct bms_diag *diag)
{
    struct unpack *u = calloc(1, sizeof(*u));
    enum bms_status rc;

    if (u == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    u->model_name = model_name;
    fill_limits(&u->limits, limits);
    rc = unpack_begin(u, data, len, repo_dir, diag);
    if (rc == BMS_OK) {
        rc = read_entries(u, diag);
    }
    if (rc == BMS_OK) {
        rc = unpack_finish(u, repo_dir, info, diag);
    }
    if (u->have_stage && bms__package_remove_tree(u->stage) != BMS_OK) {
        bms_log(BMS_LOG_WARN, "package", "msg=\"staging folder not "
                "removed\" folder=\"%s\"", u->stage);
    }
    if (u->a != NULL) {
        archive_read_free(u->a);
    }
    bms_manifest_destroy(u->manifest);
    free(u->config);
    free(u);
    return rc;
}


/* ---- packing ------------------------------------------------------------ */

static la_ssize_t write_to_buf(struct archive *a, void *ud, const void *p,
                               size_t n)
{
    struct bms_buf *out = ud;

    if (bms_buf_append(out, p, n) != BMS_OK) {
        archive_set_error(a, ENOMEM, "out of memory");
        return -1;
    }
    return (la_ssize_t)n;
}


/* Add the file at path to the archive as name. */
static enum bms_status pack_file(struct archive *a, const char *path,
                                 const char *name, struct bms_diag *diag)
{
    struct archive_entry *e;
    struct stat st;
    char chunk[CHUNK_SIZE];
    enum bms_status rc = BMS_OK;
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL || fstat(fileno(f), &st) != 0) {
        rc = io_error(diag, "open", path);
        goto out;
    }
    e = archive_entry_new();
    if (e == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_mtime(e, st.st_mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        rc = BMS_ERR_NOMEM;
    }
    archive_entry_free(e);
    while (rc == BMS_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (archive_write_data(a, chunk, n) != (la_ssize_t)n) {
            rc = BMS_ERR_NOMEM;
        }
    }
    if (rc == BMS_OK && ferror(f)) {
        rc = io_error(diag, "read", path);
    } else if (rc != BMS_OK) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "pack %s: %s", name,
                          archive_error_string(a) != NULL
                              ? archive_error_string(a) : "write error");
    }

out:
    if (f != NULL) {
        fclose(f);
    }
    return rc;
}


/* The version folders of model_dir that hold a model.onnx, ascending. */
static enum bms_status list_versions(const char *model_dir,
                                     int64_t *versions, int max,
                                     int *n_out, struct bms_diag *diag)
{
    DIR *d = opendir(model_dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL) {
        return bms_diag_set(diag, errno == ENOENT || errno == ENOTDIR
                                      ? BMS_ERR_NOT_FOUND : BMS_ERR_IO,
                            "model folder: %s", strerror(errno));
    }
    while ((de = readdir(d)) != NULL && n < max) {
        int64_t v = parse_version(de->d_name, strlen(de->d_name));
        char path[PATH_MAX];
        struct stat st;

        if (v > 0 && snprintf(path, sizeof(path), "%s/%s/model.onnx",
                              model_dir, de->d_name) < (int)sizeof(path) &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            versions[n++] = v;
        }
    }
    closedir(d);
    qsort(versions, (size_t)n, sizeof(versions[0]), version_cmp);
    *n_out = n;
    return BMS_OK;
}


/* Add config.json (if any) and every version to the open archive. */
static enum bms_status pack_entries(struct archive *a, const char *model_dir,
                                    const char *name, const int64_t *versions,
                                    int n_versions, struct bms_diag *diag)
{
    char path[PATH_MAX];
    char entry[PATH_MAX];
    struct stat st;
    enum bms_status rc = BMS_OK;

    if (join(path, sizeof(path), model_dir, "config.json") == 0 &&
        stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(entry, sizeof(entry), "%s/config.json", name);
        rc = pack_file(a, path, entry, diag);
    }
    for (int i = 0; i < n_versions && rc == BMS_OK; i++) {
        snprintf(path, sizeof(path), "%s/%lld/model.onnx", model_dir,
                 (long long)versions[i]);
        snprintf(entry, sizeof(entry), "%s/%lld/model.onnx", name,
                 (long long)versions[i]);
        rc = pack_file(a, path, entry, diag);
    }
    return rc;
}


/* The last component of path, without trailing slashes. */
static void base_name(const char *path, char *out, size_t size)
{
    size_t len = strlen(path);
    size_t start;

    while (len > 1 && path[len - 1] == '/') {
        len--;
    }
    start = len;
    while (start > 0 && path[start - 1] != '/') {
        start--;
    }
    snprintf(out, size, "%.*s", (int)(len - start), path + start);
}


enum bms_status bms__package_pack(const char *model_dir, struct bms_buf *out,
                                  struct bms_diag *diag)
{
    int64_t versions[1024];
    int n_versions = 0;
    char name[256];
    size_t len0 = out->len;
    struct archive *a = NULL;
    enum bms_status rc;

    rc = list_versions(model_dir, versions, 1024, &n_versions, diag);
    if (rc == BMS_OK && n_versions == 0) {
        rc = bms_diag_set(diag, BMS_ERR_NOT_FOUND, "no version with a "
                          "model.onnx");
    }
    if (rc != BMS_OK) {
        return rc;
    }
    base_name(model_dir, name, sizeof(name));
    a = archive_write_new();
    if (a == NULL || archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, out, NULL, write_to_buf, NULL) != ARCHIVE_OK) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "libarchive: %s",
                          a != NULL && archive_error_string(a) != NULL
                              ? archive_error_string(a) : "out of memory");
        goto out;
    }
    rc = pack_entries(a, model_dir, name, versions, n_versions, diag);
    if (archive_write_close(a) != ARCHIVE_OK && rc == BMS_OK) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "libarchive: %s",
                          archive_error_string(a) != NULL
                              ? archive_error_string(a) : "write error");
    }

out:
    if (a != NULL) {
        archive_write_free(a);
    }
    if (rc != BMS_OK) {
        out->len = len0;
        if (out->data != NULL) {
            out->data[len0] = '\0';
        }
    }
    return rc;
}


/* ---- files -------------------------------------------------------------- */

int bms__package_is_file(const char *path)
{
    static const char *const suffixes[] = { ".tar.gz", ".tgz", ".tar",
                                            ".zip" };
    size_t len = strlen(path);

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t n = strlen(suffixes[i]);

        if (len > n && strcmp(path + len - n, suffixes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}


static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}


enum bms_status bms__package_remove_tree(const char *path)
{
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0
               ? BMS_OK : BMS_ERR_IO;
}
