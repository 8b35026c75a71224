/*
 * The ONNX conformance runner.  For every test folder under the suite
 * folders given (default: the node, simple, pytorch-converted and
 * pytorch-operator suites of libonnx-testdata) it loads model.onnx, feeds
 * each test_data_set_*'s input_*.pb, and compares the outputs with
 * output_*.pb: floats within |a - b| <= atol + rtol * |b| (the ONNX
 * backend defaults, rtol 1e-3 and atol 1e-7; NaN matches NaN), integers
 * and bools exactly, datatype and dims always.
 *
 * One line per test: PASS, FAIL with the reason, or SKIP when bms refuses
 * the model as unsupported; then `conformance: N passed, N failed, N
 * skipped` and `conformance: coverage P% (N of M)`.  Exit status 1 when
 * any test failed.
 *
 * With --expected FILE, the file lists the tests known not to pass, one
 * `<suite>/<test> <reason>` a line (`#` comments and blank lines aside).
 * A listed test that fails or is skipped counts as skipped; one that is
 * not listed counts as a failure; a listed test that passes counts as a
 * failure too (NOW PASSES), and so does a listed test of a suite that ran
 * that no longer exists (STALE), so that the list stays exact.
 *
 *   conformance [-q] [--filter SUBSTRING] [--expected FILE] [SUITE_DIR...]
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bms/engine.h"
#include "engine/model.h"

#define RTOL 1e-3
#define ATOL 1e-7
#define MAX_TENSORS 64
#define MAX_LINE 1024

enum verdict {
    VERDICT_PASS,
    VERDICT_FAIL,
    VERDICT_SKIP
};

/* One line of the expected list. */
struct expected {
    char *label;                 /* "<suite>/<test>" */
    char *reason;
    int seen;                    /* the test ran */
};

struct options {
    const char *filter;
    int quiet;
    struct expected *expected;   /* NULL without --expected */
    int n_expected;
};

struct counts {
    int n_passed;
    int n_failed;
    int n_skipped;
    int n_tests;
};

/* The tensors of one test_data_set folder. */
struct data_set {
    struct bms__pool pool;
    struct bms_tensor tensors[MAX_TENSORS];
    const char *names[MAX_TENSORS];
    int n;
};

static const char *const default_suites[] = {
    "/usr/share/libonnx-testdata/data/node",
    "/usr/share/libonnx-testdata/data/simple",
    "/usr/share/libonnx-testdata/data/pytorch-converted",
    "/usr/share/libonnx-testdata/data/pytorch-operator",
};


static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}


static int file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}


/* Read a whole file; the caller frees *data. */
static enum bms_status read_file(const char *path, char **data,
                                 size_t *size, struct bms_diag *diag)
{
    FILE *f = fopen(path, "rb");
    enum bms_status rc = BMS_OK;
    long len;

    if (f == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOT_FOUND, "%s: cannot open",
                            path);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return bms_diag_set(diag, BMS_ERR_IO, "%s: cannot read", path);
    }
    *data = malloc((size_t)len + 1);
    if (*data == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    } else if (fread(*data, 1, (size_t)len, f) != (size_t)len) {
        free(*data);
        rc = bms_diag_set(diag, BMS_ERR_IO, "%s: cannot read", path);
    }
    fclose(f);
    *size = (size_t)len;
    return rc;
}


/* Read prefix_0.pb, prefix_1.pb, ... from dir until one is missing. */
static enum bms_status read_tensors(const char *dir, const char *prefix,
                                    struct data_set *set,
                                    struct bms_diag *diag)
{
    char path[4096];

    for (set->n = 0; set->n < MAX_TENSORS; set->n++) {
        enum bms_status rc;
        char *data = NULL;
        size_t size = 0;

        snprintf(path, sizeof(path), "%s/%s_%d.pb", dir, prefix, set->n);
        if (!file_exists(path)) {
            return BMS_OK;
        }
        rc = read_file(path, &data, &size, diag);
        if (rc != BMS_OK) {
            return rc;
        }
        rc = bms__tensor_read(data, size, &set->pool,
                              &set->tensors[set->n], &set->names[set->n],
                              diag);
        free(data);
        if (rc != BMS_OK) {
            bms_diag_prefix(diag, "%s_%d.pb", prefix, set->n);
            return rc;
        }
    }
    return BMS_OK;
}


static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    float f;

    if (exp == 0) {
        f = ldexpf((float)mant, -24);
    } else if (exp == 31) {
        f = mant != 0 ? NAN : INFINITY;
    } else {
        f = ldexpf((float)(mant | 0x400), exp - 25);
    }
    return (h & 0x8000) != 0 ? -f : f;
}


static int is_float(enum bms_dtype dtype)
{
    return dtype == BMS_DTYPE_F32 || dtype == BMS_DTYPE_F64 ||
           dtype == BMS_DTYPE_F16;
}


static double float_at(const struct bms_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case BMS_DTYPE_F32:
        return ((const float *)t->data)[i];
    case BMS_DTYPE_F64:
        return ((const double *)t->data)[i];
    default:
        return half_to_float(((const uint16_t *)t->data)[i]);
    }
}


static int close_enough(double got, double want)
{
    if (isnan(want) || isnan(got)) {
        return isnan(want) && isnan(got);
    }
    if (got == want) {
        return 1;
    }
    return fabs(got - want) <= ATOL + RTOL * fabs(want);
}


static int compare(const char *name, const struct bms_tensor *got,
                   const struct bms_tensor *want, char *why, size_t why_size)
{
    int64_t n = bms_tensor_numel(want);
    size_t esize = bms_dtype_size(want->dtype);

    if (got->dtype != want->dtype) {
        snprintf(why, why_size, "output '%s': datatype %s, expected %s",
                 name, bms_dtype_v2_name(got->dtype),
                 bms_dtype_v2_name(want->dtype));
        return 0;
    }
    if (got->n_dims != want->n_dims ||
        memcmp(got->dims, want->dims,
               (size_t)want->n_dims * sizeof(int64_t)) != 0) {
        snprintf(why, why_size, "output '%s': dims differ (rank %d, "
                 "expected rank %d)", name, got->n_dims, want->n_dims);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        if (is_float(want->dtype)) {
            double a = float_at(got, i);
            double b = float_at(want, i);

            if (!close_enough(a, b)) {
                snprintf(why, why_size, "output '%s'[%lld]: %.9g, "
                         "expected %.9g", name, (long long)i, a, b);
                return 0;
            }
        } else if (memcmp((const char *)got->data + (size_t)i * esize,
                          (const char *)want->data + (size_t)i * esize,
                          esize) != 0) {
            snprintf(why, why_size, "output '%s'[%lld] differs", name,
                     (long long)i);
            return 0;
        }
    }
    return 1;
}


/* Put the data set's inputs in model order: by name, else by position. */
static int order_inputs(const struct bms_model *model,
                        const struct data_set *in, struct bms_tensor *ordered,
                        char *why, size_t why_size)
{
    int n = bms_model_n_inputs(model);

    if (n > MAX_TENSORS || in->n != n) {
        snprintf(why, why_size, "%d input files, the model takes %d", in->n,
                 n);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int k = bms_model_find_input(model, in->names[i]);

        ordered[k >= 0 ? k : i] = in->tensors[i];
    }
    return 1;
}


static enum verdict run_data_set(const struct bms_model *model,
                                 struct bms_session *session,
                                 const char *dir, char *why,
                                 size_t why_size)
{
    struct data_set in = {0};
    struct data_set want = {0};
    struct bms_tensor inputs[MAX_TENSORS];
    struct bms_tensor outputs[MAX_TENSORS];
    struct bms_diag diag = {{0}};
    enum verdict v = VERDICT_FAIL;
    enum bms_status rc;
    int n_out = bms_model_n_outputs(model);

    memset(inputs, 0, sizeof(inputs));
    rc = read_tensors(dir, "input", &in, &diag);
    if (rc == BMS_OK) {
        rc = read_tensors(dir, "output", &want, &diag);
    }
    if (rc != BMS_OK) {
        snprintf(why, why_size, "%s", diag.msg);
        v = rc == BMS_ERR_UNSUPPORTED ? VERDICT_SKIP : VERDICT_FAIL;
        goto out;
    }
    if (n_out > MAX_TENSORS || want.n != n_out) {
        snprintf(why, why_size, "%d output files, the model gives %d",
                 want.n, n_out);
        goto out;
    }
    if (!order_inputs(model, &in, inputs, why, why_size)) {
        goto out;
    }
    rc = bms_session_run(session, inputs, outputs, &diag);
    if (rc != BMS_OK) {
        snprintf(why, why_size, "run: %s: %s", bms_status_name(rc),
                 diag.msg);
        v = rc == BMS_ERR_UNSUPPORTED ? VERDICT_SKIP : VERDICT_FAIL;
        goto out;
    }
    v = VERDICT_PASS;
    for (int j = 0; j < n_out && v == VERDICT_PASS; j++) {
        int k = bms_model_find_output(model, want.names[j]);

        k = k >= 0 ? k : j;
        if (!compare(bms_model_output(model, k)->name, &outputs[k],
                     &want.tensors[j], why, why_size)) {
            v = VERDICT_FAIL;
        }
    }
out:
    bms__pool_fini(&want.pool);
    bms__pool_fini(&in.pool);
    return v;
}


static int is_data_set(const struct dirent *e)
{
    return strncmp(e->d_name, "test_data_set_", 14) == 0;
}


static enum verdict run_test(const char *dir, char *why, size_t why_size)
{
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_diag diag = {{0}};
    struct dirent **sets = NULL;
    enum verdict v = VERDICT_PASS;
    enum bms_status rc;
    char path[4096];
    int n_sets;

    if (snprintf(path, sizeof(path), "%s/model.onnx", dir) >=
        (int)sizeof(path)) {
        snprintf(why, why_size, "path too long");
        return VERDICT_FAIL;
    }
    if (!file_exists(path)) {
        /* The real/ suite ships only download links, no models. */
        snprintf(why, why_size, "no model.onnx in the folder");
        return VERDICT_SKIP;
    }
    rc = bms_model_load_file(path, &model, &diag);
    if (rc == BMS_OK) {
        rc = bms_session_create(model, &session, &diag);
    }
    if (rc != BMS_OK) {
        snprintf(why, why_size, "load: %s: %s", bms_status_name(rc),
                 diag.msg);
        bms_model_destroy(model);
        return rc == BMS_ERR_UNSUPPORTED ? VERDICT_SKIP : VERDICT_FAIL;
    }
    n_sets = scandir(dir, &sets, is_data_set, alphasort);
    for (int i = 0; i < n_sets; i++) {
        if (v == VERDICT_PASS &&
            snprintf(path, sizeof(path), "%s/%s", dir, sets[i]->d_name) <
                (int)sizeof(path)) {
            v = run_data_set(model, session, path, why, why_size);
        }
        free(sets[i]);
    }
    free(sets);
    if (n_sets <= 0) {
        snprintf(why, why_size, "no test_data_set folders");
        v = VERDICT_FAIL;
    }
    bms_session_destroy(session);
    bms_model_destroy(model);
    return v;
}


static const char *base_name(const char *path)
{
    size_t len = strlen(path);
    const char *p;

    while (len > 1 && path[len - 1] == '/') {
        len--;
    }
    p = path + len;
    while (p > path && p[-1] != '/') {
        p--;
    }
    return p;
}


static int is_test(const struct dirent *e)
{
    return e->d_name[0] != '.';
}


/* The expected-list entry for label, or NULL. */
static struct expected *find_expected(const struct options *opt,
                                      const char *label)
{
    for (int i = 0; i < opt->n_expected; i++) {
        if (strcmp(opt->expected[i].label, label) == 0) {
            return &opt->expected[i];
        }
    }
    return NULL;
}


/* Count and print one test's verdict, judged against the expected list
 * when there is one. */
static void report(const struct options *opt, const char *label,
                   enum verdict v, const char *why, struct counts *counts)
{
    struct expected *e = find_expected(opt, label);

    counts->n_tests++;
    if (e != NULL) {
        e->seen = 1;
    }
    if (v == VERDICT_PASS && e != NULL) {
        counts->n_failed++;
        printf("NOW PASSES %s: remove it from the expected list\n", label);
    } else if (v == VERDICT_PASS) {
        counts->n_passed++;
        if (!opt->quiet) {
            printf("PASS %s\n", label);
        }
    } else if (e != NULL || (opt->expected == NULL && v == VERDICT_SKIP)) {
        counts->n_skipped++;
        if (!opt->quiet) {
            printf("SKIP %s: %s\n", label, why);
        }
    } else if (opt->expected != NULL) {
        counts->n_failed++;
        printf("FAIL %s: %s: not in the expected list\n", label, why);
    } else {
        counts->n_failed++;
        printf("FAIL %s: %s\n", label, why);
    }
}


static void run_suite(const char *suite_dir, const struct options *opt,
                      struct counts *counts)
{
    char suite[256];
    struct dirent **tests = NULL;
    int n_tests;

    snprintf(suite, sizeof(suite), "%s", base_name(suite_dir));
    suite[strcspn(suite, "/")] = '\0';
    n_tests = scandir(suite_dir, &tests, is_test, alphasort);
    if (n_tests < 0) {
        fprintf(stderr, "conformance: cannot read %s\n", suite_dir);
        counts->n_failed++;
        return;
    }
    for (int i = 0; i < n_tests; i++) {
        char dir[4096];
        char label[600];
        char why[1024] = "";
        enum verdict v;

        snprintf(dir, sizeof(dir), "%s/%s", suite_dir, tests[i]->d_name);
        snprintf(label, sizeof(label), "%s/%s", suite, tests[i]->d_name);
        free(tests[i]);
        if (!is_dir(dir) || (opt->filter != NULL &&
                             strstr(label, opt->filter) == NULL)) {
            continue;
        }
        v = run_test(dir, why, sizeof(why));
        report(opt, label, v, why, counts);
        fflush(stdout);
    }
    free(tests);
}


static void free_expected(struct options *opt)
{
    for (int i = 0; i < opt->n_expected; i++) {
        free(opt->expected[i].label);
        free(opt->expected[i].reason);
    }
    free(opt->expected);
    opt->expected = NULL;
    opt->n_expected = 0;
}


/* Strip leading and trailing white space in place. */
static char *trim(char *s)
{
    size_t len;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL) {
        s[--len] = '\0';
    }
    return s;
}


/* Add one "<label> <reason>" line; 0 when it is malformed or a repeat
 * (reported on stderr), -1 when memory runs out. */
static int add_expected(struct options *opt, char *line, const char *path,
                        int line_no)
{
    size_t len = strcspn(line, " \t");
    char *reason = trim(line + len);
    struct expected *grown;
    struct expected *e;

    line[len] = '\0';
    if (strchr(line, '/') == NULL || reason[0] == '\0') {
        fprintf(stderr, "conformance: %s:%d: expected `<suite>/<test> "
                "<reason>`\n", path, line_no);
        return 0;
    }
    if (find_expected(opt, line) != NULL) {
        fprintf(stderr, "conformance: %s:%d: %s listed twice\n", path,
                line_no, line);
        return 0;
    }
    grown = realloc(opt->expected,
                    sizeof(*grown) * (size_t)(opt->n_expected + 1));
    if (grown == NULL) {
        return -1;
    }
    opt->expected = grown;
    e = &opt->expected[opt->n_expected];
    e->label = strdup(line);
    e->reason = strdup(reason);
    e->seen = 0;
    opt->n_expected++;
    if (e->label == NULL || e->reason == NULL) {
        return -1;
    }
    return 1;
}


/* Read the expected list; 0 on success, -1 (reported) otherwise. */
static int read_expected(struct options *opt, const char *path)
{
    char buf[MAX_LINE];
    FILE *f = fopen(path, "r");
    int line_no = 0;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "conformance: cannot open %s\n", path);
        return -1;
    }
    /* An empty list is a list: the runner judges against it. */
    opt->expected = malloc(sizeof(*opt->expected));
    if (opt->expected == NULL) {
        fclose(f);
        return -1;
    }
    while (rc == 0 && fgets(buf, sizeof(buf), f) != NULL) {
        char *line = trim(buf);
        int added;

        line_no++;
        if (line[0] == '\0' || line[0] == '#') {
            continue;
        }
        added = add_expected(opt, line, path, line_no);
        rc = added == 1 ? 0 : -1;
    }
    fclose(f);
    return rc;
}


/* Listed tests of the suites that ran which no longer exist.  Skipped
 * under --filter, where most tests do not run. */
static int report_stale(const struct options *opt,
                        const char *const *suites, int n_suites)
{
    int n_stale = 0;

    if (opt->filter != NULL) {
        return 0;
    }
    for (int i = 0; i < opt->n_expected; i++) {
        const struct expected *e = &opt->expected[i];
        size_t len = strcspn(e->label, "/");

        for (int k = 0; k < n_suites && !e->seen; k++) {
            const char *suite = base_name(suites[k]);

            if (strncmp(suite, e->label, len) == 0 &&
                (suite[len] == '\0' || suite[len] == '/')) {
                printf("STALE %s: no such test, remove it from the "
                       "expected list\n", e->label);
                n_stale++;
                break;
            }
        }
    }
    return n_stale;
}


static void usage(void)
{
    fprintf(stderr, "usage: conformance [-q] [--filter SUBSTRING] "
            "[--expected FILE] [SUITE_DIR...]\n");
}


int main(int argc, char **argv)
{
    struct options opt = {NULL, 0, NULL, 0};
    struct counts counts = {0, 0, 0, 0};
    const char *suites[64];
    int n_suites = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0) {
            opt.quiet = 1;
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            opt.filter = argv[++i];
        } else if (strcmp(argv[i], "--expected") == 0 && i + 1 < argc) {
            free_expected(&opt);
            if (read_expected(&opt, argv[++i]) != 0) {
                free_expected(&opt);
                return 2;
            }
        } else if (argv[i][0] == '-' || n_suites == 64) {
            usage();
            free_expected(&opt);
            return 2;
        } else {
            suites[n_suites++] = argv[i];
        }
    }
    if (n_suites == 0) {
        for (size_t i = 0; i < sizeof(default_suites) / sizeof(char *);
             i++) {
            suites[n_suites++] = default_suites[i];
        }
    }
    for (int i = 0; i < n_suites; i++) {
        run_suite(suites[i], &opt, &counts);
    }
    counts.n_failed += report_stale(&opt, suites, n_suites);
    printf("conformance: %d passed, %d failed, %d skipped\n",
           counts.n_passed, counts.n_failed, counts.n_skipped);
    printf("conformance: coverage %.1f%% (%d of %d)\n",
           counts.n_tests > 0 ? 100.0 * counts.n_passed / counts.n_tests :
                                0.0,
           counts.n_passed, counts.n_tests);
    free_expected(&opt);
    return counts.n_failed > 0 ? 1 : 0;
}
