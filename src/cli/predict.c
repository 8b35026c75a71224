/*
 * `bms predict`: run one v2 infer request on a model offline, through the
 * same bms_v2_infer the server uses, so a model answers alike both ways.
 * The model is a folder, an .onnx file or a model package (.tar.gz, .tgz,
 * .tar, .zip), which is unpacked into a temporary folder, checked as an
 * upload is, and removed afterwards.  No server, no store.  Library log
 * lines are dropped: on failure the one line on stderr is
 * `bms: <message>`.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bms/repo.h"
#include "bms/v2.h"
#include "cli/cli.h"
#include "server/package.h"

#define MAX_INPUT_SIZE ((size_t)1 << 30)   /* bytes */
#define MAX_PACKAGE_UNPACKED ((int64_t)4 << 30)  /* bytes */

static const struct option long_opts[] = {
    { "input", required_argument, NULL, 'i' },
    { "output", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};


static void drop_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


static int fail(const char *msg)
{
    fprintf(stderr, "bms: %s\n", msg);
    return BMS__EXIT_FAIL;
}


/* Read all of path ("-": stdin) into buf. */
static int read_input(const char *path, struct bms_buf *buf)
{
    char msg[BMS_DIAG_SIZE];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[65536];
    size_t n;
    int failed = 0;

    if (f == NULL) {
        snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
        return fail(msg);
    }
    while (!failed && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf->len + n > MAX_INPUT_SIZE) {
            snprintf(msg, sizeof(msg), "%s: larger than %zu bytes", path,
                     MAX_INPUT_SIZE);
            failed = 1;
        } else if (bms_buf_append(buf, chunk, n) != BMS_OK) {
            snprintf(msg, sizeof(msg), "%s: out of memory", path);
            failed = 1;
        }
    }
    if (!failed && ferror(f)) {
        snprintf(msg, sizeof(msg), "%s: read error", path);
        failed = 1;
    }
    if (f != stdin) {
        fclose(f);
    }
    return failed ? fail(msg) : 0;
}


static int write_output(const char *path, const struct bms_buf *out)
{
    char msg[BMS_DIAG_SIZE];
    FILE *f = path == NULL ? stdout : fopen(path, "wb");
    int failed;

    if (f == NULL) {
        snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
        return fail(msg);
    }
    failed = fwrite(out->data, 1, out->len, f) != out->len ||
             fputc('\n', f) == EOF;
    failed = fflush(f) != 0 || failed;
    if (f != stdout) {
        failed = fclose(f) != 0 || failed;
    }
    if (failed) {
        snprintf(msg, sizeof(msg), "%s: write error",
                 path != NULL ? path : "stdout");
        return fail(msg);
    }
    return 0;
}


/* The highest ready version in repo; else NULL with the reason in diag. */
static struct bms_served *pick_served(const struct bms_repo *repo,
                                      struct bms_diag *diag)
{
    const struct bms_repo_entry *best = NULL;
    int n = bms_repo_n_entries(repo);

    for (int i = 0; i < n; i++) {
        const struct bms_repo_entry *e = bms_repo_entry(repo, i);

        if (e->state == BMS_ENTRY_READY &&
            (best == NULL || e->version > best->version)) {
            best = e;
        }
    }
    if (best != NULL) {
        return best->served;
    }
    if (n > 0) {
        bms_diag_set(diag, BMS_ERR_UNAVAILABLE, "%s",
                     bms_repo_entry(repo, 0)->reason);
    } else {
        bms_diag_set(diag, BMS_ERR_NOT_FOUND, "no model found");
    }
    return NULL;
}


/*
 * Unpack the package file at path into a new temporary folder, written
 * into tmp; model_dir gets the model folder inside it.  On failure tmp
 * is "" and nothing is left behind.
 */
static int unpack_package(const char *path, char *tmp, size_t tmp_size,
                          char *model_dir, size_t dir_size)
{
    struct bms__package_limits limits = { 0, MAX_PACKAGE_UNPACKED, 0 };
    struct bms__package_info info;
    struct bms_buf data = { 0 };
    struct bms_diag diag = {""};
    const char *base = getenv("TMPDIR");
    char msg[BMS_DIAG_SIZE + 64];
    int status = BMS__EXIT_FAIL;

    tmp[0] = '\0';
    if (read_input(path, &data) != 0) {
        return status;
    }
    snprintf(tmp, tmp_size, "%s/bms-predict-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(tmp) == NULL) {
        snprintf(msg, sizeof(msg), "temporary folder: %s", strerror(errno));
        tmp[0] = '\0';
        bms_buf_fini(&data);
        return fail(msg);
    }
    if (bms__package_unpack(data.data != NULL ? data.data : "", data.len,
                            NULL, tmp, &limits, &info, &diag) != BMS_OK) {
        snprintf(msg, sizeof(msg), "%s: %s", path, diag.msg);
        fail(msg);
    } else if (snprintf(model_dir, dir_size, "%s/%s", tmp, info.name)
               < (int)dir_size) {
        status = BMS__EXIT_OK;
    }
    bms_buf_fini(&data);
    if (status != BMS__EXIT_OK) {
        bms__package_remove_tree(tmp);
        tmp[0] = '\0';
    }
    return status;
}


static int predict(const char *model_path, const char *input,
                   const char *output)
{
    struct bms_buf body = { 0 };
    struct bms_buf out = { 0 };
    struct bms_repo *repo = NULL;
    struct bms_served *served;
    struct bms_diag diag;
    char tmp[PATH_MAX];
    char model_dir[PATH_MAX];
    int status = BMS__EXIT_FAIL;

    diag.msg[0] = '\0';
    tmp[0] = '\0';
    if (read_input(input, &body) != 0) {
        goto out;
    }
    if (bms__package_is_file(model_path)) {
        if (unpack_package(model_path, tmp, sizeof(tmp), model_dir,
                           sizeof(model_dir)) != BMS__EXIT_OK) {
            goto out;
        }
        model_path = model_dir;
    }
    if (bms_repo_open_model(model_path, &repo, &diag) != BMS_OK) {
        fail(diag.msg);
        goto out;
    }
    served = pick_served(repo, &diag);
    if (served == NULL) {
        fail(diag.msg);
        goto out;
    }
    if (bms_v2_infer(served, body.data != NULL ? body.data : "", body.len,
                     &out, &diag) != BMS_OK) {
        fail(diag.msg[0] != '\0' ? diag.msg : "inference failed");
        goto out;
    }
    if (write_output(output, &out) == 0) {
        status = BMS__EXIT_OK;
    }

out:
    if (repo != NULL) {
        bms_repo_close(repo);
    }
    if (tmp[0] != '\0' && bms__package_remove_tree(tmp) != BMS_OK) {
        fprintf(stderr, "bms: warning: %s: not removed\n", tmp);
    }
    bms_buf_fini(&out);
    bms_buf_fini(&body);
    return status;
}


int bms__cli_predict(int argc, char **argv)
{
    const char *input = NULL;
    const char *output = NULL;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:o:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            input = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            bms__cli_usage(stdout);
            return BMS__EXIT_OK;
        default:
            return bms__cli_bad_option("predict", argv, c);
        }
    }
    if (optind + 1 != argc) {
        return bms__cli_usage_error("predict", "expected one model path, "
                                    "got %d arguments", argc - optind);
    }
    if (input == NULL) {
        return bms__cli_usage_error("predict", "--input FILE is required");
    }
    bms_log_set_handler(drop_log, NULL);
    return predict(argv[optind], input, output);
}
