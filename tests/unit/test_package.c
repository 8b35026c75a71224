/*
 * Unit tests of model packages (server/package.c).  Each test builds its
 * archives here with libarchive's writer (tar, tar.gz, zip) or by hand
 * (a tar header claiming a huge size), from the fixture
 * tests/data/tiny_mlp.onnx (image float [N, 4, 4] -> logits float
 * [N, 3]), unpacks them into a fresh repository under /tmp and checks
 * what lands there.  Every refusal is also checked to leave the
 * repository byte for byte as it was.
 */
#define _XOPEN_SOURCE 700
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "bms/repo.h"
#include "server/api.h"
#include "server/package.h"

#define TINY_MLP "tests/data/tiny_mlp.onnx"

int bms_test_package(int *n_tests);

static const char good_config[] =
    "{\"name\": \"m1\", \"inputs\": [{\"name\": \"image\", \"type\": "
    "\"float\", \"size\": [4, 4]}]}";

/* The fixture model's bytes, read once. */
static char *model_data;
static size_t model_size;

/* One archive entry to write.  type 0 makes a hard link to link. */
struct ent {
    const char *path;
    unsigned type;               /* AE_IFREG, AE_IFDIR, AE_IFLNK, ... */
    const void *data;
    size_t size;
    const char *link;            /* a link's target */
};

enum fmt { FMT_TAR, FMT_TGZ, FMT_ZIP };


static void drop_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


static void read_whole(const char *path, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    *data = malloc((size_t)n);
    assert_non_null(*data);
    assert_int_equal(fread(*data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
}


/* Fail with the message when rc is not BMS_OK. */
static void assert_ok(enum bms_status rc, const struct bms_diag *diag)
{
    if (rc != BMS_OK) {
        fail_msg("%s: %s", bms_status_name(rc), diag->msg);
    }
}


static void load_model(void)
{
    if (model_data == NULL) {
        read_whole(TINY_MLP, &model_data, &model_size);
    }
}


static la_ssize_t to_buf(struct archive *a, void *ud, const void *p,
                         size_t n)
{
    (void)a;
    assert_int_equal(bms_buf_append(ud, p, n), BMS_OK);
    return (la_ssize_t)n;
}


/* Write the entries as an archive of format fmt into out. */
static void build(enum fmt fmt, const struct ent *ents, int n,
                  struct bms_buf *out)
{
    struct archive *a = archive_write_new();

    assert_non_null(a);
    if (fmt == FMT_ZIP) {
        assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    } else {
        assert_int_equal(archive_write_set_format_pax_restricted(a),
                         ARCHIVE_OK);
    }
    if (fmt == FMT_TGZ) {
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_open(a, out, NULL, to_buf, NULL),
                     ARCHIVE_OK);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();

        archive_entry_set_pathname(e, ents[i].path);
        archive_entry_set_perm(e, 0644);
        if (ents[i].type == 0) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, ents[i].link);
        } else {
            archive_entry_set_filetype(e, ents[i].type);
        }
        if (ents[i].type == AE_IFLNK) {
            archive_entry_set_symlink(e, ents[i].link);
        }
        if (ents[i].type == AE_IFREG) {
            archive_entry_set_size(e, (la_int64_t)ents[i].size);
        }
        assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
        if (ents[i].type == AE_IFREG && ents[i].size > 0) {
            assert_int_equal(archive_write_data(a, ents[i].data,
                                                ents[i].size),
                             (la_ssize_t)ents[i].size);
        }
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}


static void make_dir(const char *dir, const char *sub)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    assert_int_equal(mkdir(path, 0755), 0);
}


static void put_file(const char *dir, const char *sub, const void *data,
                     size_t size)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}


/* A fresh repository holding model m1: config.json and version 1. */
static void make_repo(char *dir, size_t size)
{
    load_model();
    snprintf(dir, size, "/tmp/bms-package-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    make_dir(dir, "m1");
    put_file(dir, "m1/config.json", good_config, strlen(good_config));
    make_dir(dir, "m1/1");
    put_file(dir, "m1/1/model.onnx", model_data, model_size);
}


static int remove_cb(const char *path, const struct stat *st, int flag,
                     struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}


static void remove_repo(const char *dir)
{
    assert_int_equal(nftw(dir, remove_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
}


static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    }
    return h;
}


static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


/* Append to out one sorted line per file and folder under dir (relative
 * path, and for files the size and a hash of the bytes). */
static void list_tree(const char *dir, const char *rel, struct bms_buf *out)
{
    char *names[256];
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            assert_true(n < 256);
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), name_cmp);
    for (int i = 0; i < n; i++) {
        char path[512];
        char sub[512];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        assert_int_equal(lstat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            snprintf(sub, sizeof(sub), "%s%s/", rel, names[i]);
            bms_buf_printf(out, "%s\n", sub);
            list_tree(path, sub, out);
        } else {
            char *data;
            size_t size;

            snprintf(sub, sizeof(sub), "%s%s", rel, names[i]);
            read_whole(path, &data, &size);
            bms_buf_printf(out, "%s %zu %016llx\n", sub, size,
                           (unsigned long long)fnv1a(data, size));
            free(data);
        }
        free(names[i]);
    }
}


static void assert_file_is_model(const char *dir, const char *sub)
{
    char path[512];
    char *data;
    size_t size;

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    read_whole(path, &data, &size);
    assert_int_equal(size, model_size);
    assert_memory_equal(data, model_data, size);
    free(data);
}


static void package_accepts_tar_gz_with_top_folder(void **state)
{
    char dir[64];
    struct bms_buf pkg = { 0 };
    struct bms_buf listing = { 0 };
    struct bms__package_info info;
    struct bms_diag diag = {""};

    (void)state;
    make_repo(dir, sizeof(dir));
    {
        const struct ent ents[] = {
            { "m1/", AE_IFDIR, NULL, 0, NULL },
            { "m1/config.json", AE_IFREG, good_config, strlen(good_config),
              NULL },
            { "m1/2/", AE_IFDIR, NULL, 0, NULL },
            { "m1/2/model.onnx", AE_IFREG, model_data, model_size, NULL },
            { "m1/3/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 5, &pkg);
    }
    assert_ok(bms__package_unpack(pkg.data, pkg.len, "m1", dir,
                                         NULL, &info, &diag), &diag);
    assert_string_equal(info.name, "m1");
    assert_int_equal(info.n_versions, 2);
    assert_int_equal(info.versions[0], 2);
    assert_int_equal(info.versions[1], 3);

    /* Version 1 is gone, no staging folder is left. */
    list_tree(dir, "", &listing);
    assert_non_null(strstr(listing.data, "m1/2/model.onnx "));
    assert_non_null(strstr(listing.data, "m1/3/model.onnx "));
    assert_null(strstr(listing.data, "m1/1/"));
    assert_null(strstr(listing.data, ".pkg-"));
    assert_int_equal(strncmp(listing.data, "m1/\n", 4), 0);
    assert_file_is_model(dir, "m1/3/model.onnx");
    bms_buf_fini(&listing);
    bms_buf_fini(&pkg);
    remove_repo(dir);
}


static void package_accepts_plain_tar_and_zip(void **state)
{
    const enum fmt fmts[] = { FMT_TAR, FMT_ZIP };

    (void)state;
    for (int i = 0; i < 2; i++) {
        char dir[64];
        struct bms_buf pkg = { 0 };
        struct bms__package_info info;
        struct bms_diag diag = {""};
        char path[512];
        struct stat st;

        make_repo(dir, sizeof(dir));
        {
            const struct ent ents[] = {
                { "config.json", AE_IFREG, good_config,
                  strlen(good_config), NULL },
                { "7/model.onnx", AE_IFREG, model_data, model_size, NULL },
            };

            build(fmts[i], ents, 2, &pkg);
        }
        assert_ok(bms__package_unpack(pkg.data, pkg.len, "m1", dir,
                                             NULL, &info, &diag), &diag);
        assert_int_equal(info.n_versions, 1);
        assert_int_equal(info.versions[0], 7);
        assert_file_is_model(dir, "m1/7/model.onnx");
        snprintf(path, sizeof(path), "%s/m1/1", dir);
        assert_int_not_equal(stat(path, &st), 0);
        bms_buf_fini(&pkg);
        remove_repo(dir);
    }
}


static void package_installs_new_model_into_empty_repository(void **state)
{
    char dir[64];
    struct bms_buf pkg = { 0 };
    struct bms_buf listing = { 0 };
    struct bms_diag diag = {""};
    const char config[] = "{\"name\": \"fresh\", \"inputs\": [{\"name\": "
                          "\"image\", \"type\": \"float\", \"size\": "
                          "[4, 4]}]}";
    char expect[256];

    (void)state;
    load_model();
    snprintf(dir, sizeof(dir), "/tmp/bms-package-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    {
        const struct ent ents[] = {
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
            { "config.json", AE_IFREG, config, strlen(config), NULL },
        };

        build(FMT_ZIP, ents, 2, &pkg);
    }
    assert_ok(bms__package_unpack(pkg.data, pkg.len, "fresh", dir,
                                         NULL, NULL, &diag), &diag);
    list_tree(dir, "", &listing);
    snprintf(expect, sizeof(expect), "fresh/\nfresh/1/\nfresh/1/model.onnx "
             "%zu %016llx\nfresh/config.json %zu ", model_size,
             (unsigned long long)fnv1a(model_data, model_size),
             strlen(config));
    assert_int_equal(strncmp(listing.data, expect, strlen(expect)), 0);
    bms_buf_fini(&listing);
    bms_buf_fini(&pkg);
    remove_repo(dir);
}


static void package_without_name_takes_it_from_config(void **state)
{
    char dir[64];
    struct bms_buf pkg = { 0 };
    struct bms__package_info info;
    struct bms_diag diag = {""};
    const char config[] = "{\"name\": \"from_config\", \"inputs\": [{"
                          "\"name\": \"image\", \"type\": \"float\", "
                          "\"size\": [4, 4]}]}";

    (void)state;
    load_model();
    snprintf(dir, sizeof(dir), "/tmp/bms-package-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    {
        const struct ent ents[] = {
            { "./", AE_IFDIR, NULL, 0, NULL },
            { "./config.json", AE_IFREG, config, strlen(config), NULL },
            { "./1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TAR, ents, 3, &pkg);
    }
    assert_ok(bms__package_unpack(pkg.data, pkg.len, NULL, dir,
                                         NULL, &info, &diag), &diag);
    assert_string_equal(info.name, "from_config");
    assert_file_is_model(dir, "from_config/1/model.onnx");
    bms_buf_fini(&pkg);
    remove_repo(dir);
}


/* Unpack pkg as m1 into a repository holding m1; expect rc, a message
 * containing needle and the repository unchanged. */
static void expect_refused(const struct bms_buf *pkg,
                           const struct bms__package_limits *limits,
                           enum bms_status rc, const char *needle)
{
    char dir[64];
    struct bms_buf before = { 0 };
    struct bms_buf after = { 0 };
    struct bms_diag diag = {""};
    enum bms_status got;

    make_repo(dir, sizeof(dir));
    list_tree(dir, "", &before);
    got = bms__package_unpack(pkg->data, pkg->len, "m1", dir, limits, NULL,
                              &diag);
    if (got != rc || strstr(diag.msg, needle) == NULL) {
        fail_msg("expected %s with '%s', got %s: %s", bms_status_name(rc),
                 needle, bms_status_name(got), diag.msg);
    }
    list_tree(dir, "", &after);
    assert_string_equal(before.data, after.data);
    bms_buf_fini(&before);
    bms_buf_fini(&after);
    remove_repo(dir);
}


/* A package of config.json and 1/model.onnx plus the entry bad, refused
 * with needle. */
static void expect_entry_refused(enum fmt fmt, const struct ent *bad,
                                 const char *needle)
{
    struct bms_buf pkg = { 0 };
    const struct ent ents[] = {
        { "config.json", AE_IFREG, good_config, strlen(good_config), NULL },
        { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        *bad,
    };

    build(fmt, ents, 3, &pkg);
    expect_refused(&pkg, NULL, BMS_ERR_INVALID, needle);
    bms_buf_fini(&pkg);
}


static void package_refuses_unsafe_paths(void **state)
{
    const struct ent dotdot = { "../x", AE_IFREG, "x", 1, NULL };
    const struct ent inner = { "1/../../x", AE_IFREG, "x", 1, NULL };
    const struct ent abs = { "/abs", AE_IFREG, "x", 1, NULL };
    const struct ent deep = { "a/b/c", AE_IFREG, "x", 1, NULL };
    const struct ent deeper = { "1/x/y/z/model.onnx", AE_IFREG, "x", 1,
                                NULL };
    const struct ent other = { "README.md", AE_IFREG, "x", 1, NULL };
    const struct ent zero = { "01/model.onnx", AE_IFREG, "x", 1, NULL };

    (void)state;
    load_model();
    expect_entry_refused(FMT_TGZ, &dotdot, "entry '../x': '..'");
    expect_entry_refused(FMT_ZIP, &inner, "entry '1/../../x': '..'");
    expect_entry_refused(FMT_TAR, &abs, "entry '/abs': an absolute path");
    expect_entry_refused(FMT_TGZ, &deep, "entry 'a/b/c'");
    expect_entry_refused(FMT_TGZ, &deeper, "entry '1/x/y/z/model.onnx': "
                         "a deeper path");
    expect_entry_refused(FMT_ZIP, &other, "entry 'README.md': not "
                         "config.json or <version>/model.onnx");
    expect_entry_refused(FMT_TAR, &zero, "entry '01/model.onnx'");
}


static void package_refuses_links_and_devices(void **state)
{
    const struct ent sym = { "2/model.onnx", AE_IFLNK, NULL, 0,
                             "/etc/passwd" };
    const struct ent hard = { "2/model.onnx", 0, NULL, 0, "1/model.onnx" };
    const struct ent dev = { "2/model.onnx", AE_IFCHR, NULL, 0, NULL };
    const struct ent fifo = { "config.json", AE_IFIFO, NULL, 0, NULL };

    (void)state;
    load_model();
    expect_entry_refused(FMT_TGZ, &sym, "entry '2/model.onnx': a symbolic "
                         "link");
    expect_entry_refused(FMT_TAR, &hard, "entry '2/model.onnx': a hard "
                         "link");
    expect_entry_refused(FMT_TAR, &dev, "entry '2/model.onnx': a device");
    expect_entry_refused(FMT_TAR, &fifo, "entry 'config.json': a device");
}


static void package_refuses_duplicates(void **state)
{
    const struct ent model = { "1/model.onnx", AE_IFREG, "x", 1, NULL };
    const struct ent config = { "config.json", AE_IFREG, "{}", 2, NULL };

    (void)state;
    load_model();
    expect_entry_refused(FMT_TGZ, &model, "entry '1/model.onnx': a second "
                         "model.onnx for version 1");
    expect_entry_refused(FMT_ZIP, &config, "entry 'config.json': a second "
                         "config.json");
}


static void package_refuses_wrong_names(void **state)
{
    struct bms_buf pkg = { 0 };
    const char other[] = "{\"name\": \"other\"}";

    (void)state;
    load_model();
    {
        const struct ent ents[] = {
            { "config.json", AE_IFREG, other, strlen(other), NULL },
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "config.json: name "
                       "'other' is not the model name 'm1'");
    }
    bms_buf_reset(&pkg);
    {
        const struct ent ents[] = {
            { "m2/1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 1, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "top folder 'm2' is "
                       "not the model name 'm1'");
    }
    bms_buf_reset(&pkg);
    {
        const struct ent ents[] = {
            { "m1/1/model.onnx", AE_IFREG, model_data, model_size, NULL },
            { "2/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TAR, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "entry '2/model.onnx':"
                       " outside the top folder 'm1'");
    }
    bms_buf_fini(&pkg);
}


static void package_refuses_missing_or_broken_model(void **state)
{
    struct bms_buf pkg = { 0 };
    const char shape[] = "{\"name\": \"m1\", \"inputs\": [{\"name\": "
                         "\"image\", \"type\": \"float\", \"size\": [5]}]}";

    (void)state;
    load_model();
    {
        const struct ent ents[] = {
            { "config.json", AE_IFREG, good_config, strlen(good_config),
              NULL },
            { "1/", AE_IFDIR, NULL, 0, NULL },
        };

        build(FMT_TGZ, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "no <version>/"
                       "model.onnx in the package");
    }
    bms_buf_reset(&pkg);
    {
        const struct ent ents[] = {
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
            { "2/model.onnx", AE_IFREG, "not onnx", 8, NULL },
        };

        build(FMT_ZIP, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "version 2 does not "
                       "load");
    }
    bms_buf_reset(&pkg);
    {
        /* A manifest that does not fit the graph refuses every version. */
        const struct ent ents[] = {
            { "config.json", AE_IFREG, shape, strlen(shape), NULL },
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "version 1 does not "
                       "load");
    }
    bms_buf_reset(&pkg);
    {
        /* Every version loads, but the policy picks none of them. */
        const char policy[] = "{\"version_policy\": {\"specific\": [9]}}";
        const struct ent ents[] = {
            { "config.json", AE_IFREG, policy, strlen(policy), NULL },
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "version_policy "
                       "selects none");
    }
    bms_buf_reset(&pkg);
    {
        const struct ent ents[] = {
            { "config.json", AE_IFREG, "{\"name\": 3", 10, NULL },
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 2, &pkg);
        expect_refused(&pkg, NULL, BMS_ERR_INVALID, "config.json");
    }
    bms_buf_fini(&pkg);
}


static void package_refuses_garbage_and_truncation(void **state)
{
    struct bms_buf pkg = { 0 };
    const char garbage[] = "this is not an archive at all, just some text "
                           "that happens to be the body of a request";
    struct bms_buf whole = { 0 };
    uint64_t x = 42;
    char *noise;

    (void)state;
    load_model();
    assert_int_equal(bms_buf_puts(&pkg, garbage), BMS_OK);
    expect_refused(&pkg, NULL, BMS_ERR_INVALID, "not a tar, tar.gz or zip");
    bms_buf_reset(&pkg);
    expect_refused(&pkg, NULL, BMS_ERR_INVALID, "not a tar, tar.gz or zip");

    /* A package cut in the middle of an entry that does not compress. */
    noise = malloc(256 << 10);
    assert_non_null(noise);
    for (size_t i = 0; i < (size_t)(256 << 10); i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        noise[i] = (char)(x >> 56);
    }
    {
        const struct ent ents[] = {
            { "config.json", AE_IFREG, good_config, strlen(good_config),
              NULL },
            { "1/model.onnx", AE_IFREG, noise, 256 << 10, NULL },
        };

        build(FMT_TGZ, ents, 2, &whole);
        build(FMT_TAR, ents, 2, &pkg);
    }
    whole.len /= 2;
    expect_refused(&whole, NULL, BMS_ERR_INVALID, "entry '1/model.onnx': "
                   "damaged archive");
    pkg.len /= 2;
    expect_refused(&pkg, NULL, BMS_ERR_INVALID, "entry '1/model.onnx': "
                   "damaged archive");
    free(noise);
    bms_buf_fini(&whole);
    bms_buf_fini(&pkg);
}


/* A one-entry ustar archive whose header claims size_octal bytes of data
 * for name, with only one block of data after it. */
static void claiming_tar(const char *name, const char *size_octal,
                         struct bms_buf *out)
{
    char block[512 * 4];
    unsigned sum = 0;

    memset(block, 0, sizeof(block));
    snprintf(block, 100, "%s", name);
    memcpy(block + 100, "0000644", 8);
    memcpy(block + 108, "0000000", 8);
    memcpy(block + 116, "0000000", 8);
    snprintf(block + 124, 12, "%s", size_octal);
    memcpy(block + 136, "00000000000", 12);
    block[156] = '0';
    memcpy(block + 257, "ustar", 6);
    memcpy(block + 263, "00", 2);
    memset(block + 148, ' ', 8);
    for (int i = 0; i < 512; i++) {
        sum += (unsigned char)block[i];
    }
    snprintf(block + 148, 8, "%06o", sum);
    assert_int_equal(bms_buf_append(out, block, sizeof(block)), BMS_OK);
}


static void package_refuses_entries_over_the_limits(void **state)
{
    struct bms_buf pkg = { 0 };
    struct bms__package_limits limits = { 0 };
    char *zeros = calloc(1, 3 << 20);

    (void)state;
    load_model();
    assert_non_null(zeros);

    /* A header claiming 8 GiB - 1 bytes, over the default 1 GiB. */
    claiming_tar("1/model.onnx", "77777777777", &pkg);
    expect_refused(&pkg, NULL, BMS_ERR_LIMIT, "entry '1/model.onnx': "
                   "8589934591 bytes, over 1073741824");
    bms_buf_reset(&pkg);

    /* 3 MiB of zeros compress to a few KiB: a small bomb. */
    {
        const struct ent ents[] = {
            { "1/model.onnx", AE_IFREG, zeros, 3 << 20, NULL },
        };

        build(FMT_TGZ, ents, 1, &pkg);
    }
    assert_true(pkg.len < 64 << 10);
    limits.max_entry_size = 1 << 20;
    expect_refused(&pkg, &limits, BMS_ERR_LIMIT, "entry '1/model.onnx': "
                   "3145728 bytes, over 1048576");
    limits.max_entry_size = 0;
    limits.max_total_size = 2 << 20;
    expect_refused(&pkg, &limits, BMS_ERR_LIMIT, "unpacks to over 2097152");
    bms_buf_reset(&pkg);

    /* Two models that fit alone but not together. */
    {
        const struct ent ents[] = {
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
            { "2/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_ZIP, ents, 2, &pkg);
    }
    limits.max_total_size = (int64_t)model_size * 3 / 2;
    expect_refused(&pkg, &limits, BMS_ERR_LIMIT, "entry '2/model.onnx': "
                   "the package unpacks to over");
    bms_buf_reset(&pkg);

    /* A config.json past 16 MiB is cut off while it is read. */
    free(zeros);
    zeros = malloc(17 << 20);
    assert_non_null(zeros);
    memset(zeros, ' ', 17 << 20);
    {
        const struct ent ents[] = {
            { "config.json", AE_IFREG, zeros, 17 << 20, NULL },
            { "1/model.onnx", AE_IFREG, model_data, model_size, NULL },
        };

        build(FMT_TGZ, ents, 2, &pkg);
    }
    expect_refused(&pkg, NULL, BMS_ERR_LIMIT, "entry 'config.json': over "
                   "16777216 bytes");
    bms_buf_fini(&pkg);
    free(zeros);
}


static void package_refuses_more_than_64_entries(void **state)
{
    struct ent ents[66];
    struct bms_buf pkg = { 0 };

    (void)state;
    load_model();
    ents[0] = (struct ent){ "1/model.onnx", AE_IFREG, model_data,
                            model_size, NULL };
    for (int i = 1; i < 66; i++) {
        ents[i] = (struct ent){ "1/", AE_IFDIR, NULL, 0, NULL };
    }
    build(FMT_TAR, ents, 64, &pkg);
    {
        char dir[64];
        struct bms_diag diag = {""};

        /* 64 entries are still a package. */
        make_repo(dir, sizeof(dir));
        assert_ok(bms__package_unpack(pkg.data, pkg.len, "m1", dir,
                                             NULL, NULL, &diag), &diag);
        remove_repo(dir);
    }
    bms_buf_reset(&pkg);
    build(FMT_TAR, ents, 65, &pkg);
    expect_refused(&pkg, NULL, BMS_ERR_LIMIT, "more than 64 entries");
    bms_buf_fini(&pkg);
}


/* Read an archive back: "name size\n" per entry into names, and the
 * bytes of entry want into data. */
static void read_back(const struct bms_buf *pkg, struct bms_buf *names,
                      const char *want, struct bms_buf *data)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    char chunk[4096];
    la_ssize_t n;

    assert_int_equal(archive_read_support_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
    assert_int_equal(archive_read_open_memory(a, pkg->data, pkg->len),
                     ARCHIVE_OK);
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        bms_buf_printf(names, "%s %lld\n", archive_entry_pathname(e),
                       (long long)archive_entry_size(e));
        while (strcmp(archive_entry_pathname(e), want) == 0 &&
               (n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
            bms_buf_append(data, chunk, (size_t)n);
        }
    }
    assert_int_equal(archive_filter_code(a, 0), ARCHIVE_FILTER_GZIP);
    archive_read_free(a);
}


static void package_pack_writes_config_and_every_version(void **state)
{
    char dir[64];
    char model_dir[128];
    char expect[256];
    struct bms_buf pkg = { 0 };
    struct bms_buf names = { 0 };
    struct bms_buf data = { 0 };
    struct bms_diag diag = {""};

    (void)state;
    make_repo(dir, sizeof(dir));
    make_dir(dir, "m1/10");
    put_file(dir, "m1/10/model.onnx", "ten", 3);
    make_dir(dir, "m1/2");
    put_file(dir, "m1/2/model.onnx", model_data, model_size);
    make_dir(dir, "m1/0");
    put_file(dir, "m1/0/model.onnx", "zero", 4);
    put_file(dir, "m1/reference.txt", "1\n", 2);
    snprintf(model_dir, sizeof(model_dir), "%s/m1", dir);
    assert_int_equal(bms_buf_puts(&pkg, "x"), BMS_OK);
    assert_int_equal(bms__package_pack(model_dir, &pkg, &diag), BMS_OK);
    assert_int_equal(pkg.data[0], 'x');
    memmove(pkg.data, pkg.data + 1, pkg.len - 1);
    pkg.len--;
    read_back(&pkg, &names, "m1/2/model.onnx", &data);
    snprintf(expect, sizeof(expect), "m1/config.json %zu\n"
             "m1/1/model.onnx %zu\nm1/2/model.onnx %zu\n"
             "m1/10/model.onnx 3\n", strlen(good_config), model_size,
             model_size);
    assert_string_equal(names.data, expect);
    assert_int_equal(data.len, model_size);
    assert_memory_equal(data.data, model_data, model_size);
    bms_buf_fini(&names);
    bms_buf_fini(&data);
    bms_buf_fini(&pkg);
    remove_repo(dir);
}


static void package_pack_round_trips_through_unpack(void **state)
{
    char dir[64];
    char model_dir[128];
    char other[64];
    struct bms_buf pkg = { 0 };
    struct bms_buf a = { 0 };
    struct bms_buf b = { 0 };
    struct bms_diag diag = {""};

    (void)state;
    make_repo(dir, sizeof(dir));
    snprintf(model_dir, sizeof(model_dir), "%s/m1/", dir);
    assert_int_equal(bms__package_pack(model_dir, &pkg, &diag), BMS_OK);
    snprintf(other, sizeof(other), "/tmp/bms-package-test-XXXXXX");
    assert_non_null(mkdtemp(other));
    assert_ok(bms__package_unpack(pkg.data, pkg.len, "m1", other,
                                         NULL, NULL, &diag), &diag);
    list_tree(dir, "", &a);
    list_tree(other, "", &b);
    assert_string_equal(a.data, b.data);
    bms_buf_fini(&a);
    bms_buf_fini(&b);
    bms_buf_fini(&pkg);
    remove_repo(dir);
    remove_repo(other);
}


static void package_pack_refuses_missing_folder(void **state)
{
    struct bms_buf pkg = { 0 };
    struct bms_diag diag = {""};
    char dir[64];
    char model_dir[128];

    (void)state;
    assert_int_equal(bms__package_pack("/tmp/bms-package-no-such-folder",
                                       &pkg, &diag), BMS_ERR_NOT_FOUND);
    assert_int_equal(pkg.len, 0);

    /* A folder with no version folder is no model either. */
    make_repo(dir, sizeof(dir));
    make_dir(dir, "empty");
    snprintf(model_dir, sizeof(model_dir), "%s/empty", dir);
    assert_int_equal(bms__package_pack(model_dir, &pkg, &diag),
                     BMS_ERR_NOT_FOUND);
    assert_non_null(strstr(diag.msg, "no version"));
    remove_repo(dir);
}


static void package_upload_to_fixed_repository_is_409(void **state)
{
    struct bms__context ctx;
    struct bms__route route;
    struct bms__reply reply;

    (void)state;
    memset(&ctx, 0, sizeof(ctx));
    memset(&route, 0, sizeof(route));
    memset(&reply, 0, sizeof(reply));
    route.kind = BMS__ROUTE_PACKAGE;
    snprintf(route.model, sizeof(route.model), "m1");
    bms__handle_package(&ctx, &route, "PUT", "x", 1, &reply);
    assert_int_equal(reply.http_status, 409);
    assert_non_null(strstr(reply.error, "the repository is fixed"));
    bms_buf_fini(&reply.body);
}


static void package_download_from_fixed_repository(void **state)
{
    char dir[64];
    char expect[128];
    struct bms_repo *repo = NULL;
    struct bms_diag diag = {""};
    struct bms__context ctx;
    struct bms__route route;
    struct bms__reply reply;
    struct bms_buf names = { 0 };
    struct bms_buf data = { 0 };

    (void)state;
    make_repo(dir, sizeof(dir));
    assert_ok(bms_repo_open(dir, &repo, &diag), &diag);
    memset(&ctx, 0, sizeof(ctx));
    memset(&route, 0, sizeof(route));
    memset(&reply, 0, sizeof(reply));
    ctx.repo = repo;
    route.kind = BMS__ROUTE_PACKAGE;
    snprintf(route.model, sizeof(route.model), "m1");
    bms__handle_package(&ctx, &route, "GET", "", 0, &reply);
    assert_int_equal(reply.http_status, 200);
    assert_string_equal(reply.content_type, "application/gzip");
    assert_int_equal(reply.n_headers, 1);
    assert_string_equal(reply.headers[0].name, "Content-Disposition");
    assert_string_equal(reply.headers[0].value,
                        "attachment; filename=\"m1.tar.gz\"");
    read_back(&reply.body, &names, "m1/1/model.onnx", &data);
    snprintf(expect, sizeof(expect), "m1/config.json %zu\n"
             "m1/1/model.onnx %zu\n", strlen(good_config), model_size);
    assert_string_equal(names.data, expect);
    assert_memory_equal(data.data, model_data, model_size);
    bms_buf_fini(&reply.body);

    /* A model the repository does not have. */
    memset(&reply, 0, sizeof(reply));
    snprintf(route.model, sizeof(route.model), "m2");
    bms__handle_package(&ctx, &route, "GET", "", 0, &reply);
    assert_int_equal(reply.http_status, 404);
    bms_buf_fini(&reply.body);
    bms_buf_fini(&names);
    bms_buf_fini(&data);
    bms_repo_close(repo);
    remove_repo(dir);
}


static void package_is_file_knows_the_suffixes(void **state)
{
    (void)state;
    assert_true(bms__package_is_file("a/m.tar.gz"));
    assert_true(bms__package_is_file("m.tgz"));
    assert_true(bms__package_is_file("m.tar"));
    assert_true(bms__package_is_file("m.zip"));
    assert_false(bms__package_is_file("m.onnx"));
    assert_false(bms__package_is_file("models/fashion_mlp"));
    assert_false(bms__package_is_file(".zip"));
}


int bms_test_package(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(package_accepts_tar_gz_with_top_folder),
        cmocka_unit_test(package_accepts_plain_tar_and_zip),
        cmocka_unit_test(package_installs_new_model_into_empty_repository),
        cmocka_unit_test(package_without_name_takes_it_from_config),
        cmocka_unit_test(package_refuses_unsafe_paths),
        cmocka_unit_test(package_refuses_links_and_devices),
        cmocka_unit_test(package_refuses_duplicates),
        cmocka_unit_test(package_refuses_wrong_names),
        cmocka_unit_test(package_refuses_missing_or_broken_model),
        cmocka_unit_test(package_refuses_garbage_and_truncation),
        cmocka_unit_test(package_refuses_entries_over_the_limits),
        cmocka_unit_test(package_refuses_more_than_64_entries),
        cmocka_unit_test(package_pack_writes_config_and_every_version),
        cmocka_unit_test(package_pack_round_trips_through_unpack),
        cmocka_unit_test(package_pack_refuses_missing_folder),
        cmocka_unit_test(package_upload_to_fixed_repository_is_409),
        cmocka_unit_test(package_download_from_fixed_repository),
        cmocka_unit_test(package_is_file_knows_the_suffixes),
    };
    int failed;

    bms_log_set_handler(drop_log, NULL);
    failed = BMS_RUN_GROUP(tests, n_tests);
    bms_log_set_handler(NULL, NULL);
    free(model_data);
    model_data = NULL;
    return failed;
}
