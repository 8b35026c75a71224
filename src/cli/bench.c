/*
 * `bms bench`: time the engine alone on one model, the way an inference
 * runtime's own benchmark tool does.  The inputs come from a seeded
 * generator (or a raw file), a few untimed warm-up runs come first, then
 * each timed run is measured on its own and the report gives the median,
 * the 90th percentile, throughput and the peak resident memory.
 *
 * Raw tensor files (--inputs, --write-inputs, --dump-outputs) hold the
 * tensors' little-endian bytes concatenated in graph order, with no
 * header: the shapes are those the model and --batch give.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bms/engine.h"
#include "cli/cli.h"
#include "server/v2_json.h"

#define DEFAULT_ITERATIONS 100
#define DEFAULT_WARMUP 10
#define DEFAULT_BUDGET_US 3000000   /* timed runs stop after this, by default */
#define MAX_ITERATIONS 1000000
#define MAX_INPUT_SIZE ((size_t)1 << 32)   /* bytes, all inputs together */
#define TOKEN_ID_RANGE 100   /* integer inputs are drawn from [0, 100) */

static const struct option long_opts[] = {
    { "batch", required_argument, NULL, 'b' },
    { "threads", required_argument, NULL, 't' },
    { "iterations", required_argument, NULL, 'n' },
    { "warmup", required_argument, NULL, 'w' },
    { "seed", required_argument, NULL, 's' },
    { "inputs", required_argument, NULL, 'i' },
    { "write-inputs", required_argument, NULL, 'W' },
    { "dump-outputs", required_argument, NULL, 'o' },
    { "json", no_argument, NULL, 'j' },
    { "profile", no_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

struct bench_opts {
    const char *model_path;
    long batch;
    long threads;                /* 0: one per core */
    long iterations;             /* -1: up to 100 within about 3 s */
    long warmup;
    long seed;
    const char *inputs_path;     /* NULL: generate */
    const char *write_path;      /* write the inputs here and stop */
    const char *dump_path;       /* outputs of the last run */
    int json;
    int profile;                 /* time each node after the timed runs */
};

#define PROFILE_RUNS 50
#define PROFILE_TOP 20

struct node_time {
    char label[160];
    int64_t us;
};

/* The inputs of one run: tensors pointing into one block. */
struct bench_inputs {
    int n;
    struct bms_tensor *tensors;
    unsigned char *data;
    size_t size;                 /* bytes */
};

struct bench_result {
    long n_runs;
    double median_us;
    double p90_us;
    double items_per_s;
    long long peak_rss_bytes;    /* -1 when /proc does not say */
};


static void drop_log(void *ud, enum bms_log_level level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}


static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));


static int fail(const char *fmt, ...)
{
    va_list ap;

    fputs("bms: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return BMS__EXIT_FAIL;
}


static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}


/* splitmix64: a small generator whose sequence depends only on the seed,
 * so that two runs (and two engines) see the same inputs. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


/*
 * The dims input info gets at this batch: its first dimension known only
 * at run becomes the batch, any later one becomes 1.  Sets *used when a
 * dimension took the batch.
 */
static int input_dims(const struct bms_value_info *info, long batch,
                      struct bms_tensor *t, int *used)
{
    int took_batch = 0;

    if (info->n_dims < 0) {
        return fail("input '%s' has no known rank; bench needs one",
                    info->name);
    }
    if (bms_dtype_size(info->dtype) == 0 || info->dtype == BMS_DTYPE_F16) {
        return fail("input '%s': datatype %d cannot be generated",
                    info->name, (int)info->dtype);
    }
    t->dtype = info->dtype;
    t->n_dims = info->n_dims;
    for (int d = 0; d < info->n_dims; d++) {
        t->dims[d] = info->dims[d];
        if (t->dims[d] < 0) {
            t->dims[d] = took_batch ? 1 : batch;
            took_batch = 1;
        }
    }
    *used = *used || took_batch;
    return 0;
}


/* Shapes and one data block for every model input. */
static int inputs_create(const struct bms_model *model, long batch,
                         struct bench_inputs *in)
{
    int used = 0;
    size_t off = 0;

    in->n = bms_model_n_inputs(model);
    in->tensors = calloc((size_t)(in->n > 0 ? in->n : 1),
                         sizeof(*in->tensors));
    if (in->tensors == NULL) {
        return fail("out of memory");
    }
    for (int i = 0; i < in->n; i++) {
        struct bms_tensor *t = &in->tensors[i];
        size_t elem = bms_dtype_size(bms_model_input(model, i)->dtype);
        size_t numel = 1;

        if (input_dims(bms_model_input(model, i), batch, t, &used) != 0) {
            return BMS__EXIT_FAIL;
        }
        for (int d = 0; d < t->n_dims; d++) {
            if (t->dims[d] != 0 &&
                numel > MAX_INPUT_SIZE / elem / (size_t)t->dims[d]) {
                return fail("inputs larger than %zu bytes", MAX_INPUT_SIZE);
            }
            numel *= (size_t)t->dims[d];
        }
        if (off + numel * elem > MAX_INPUT_SIZE) {
            return fail("inputs larger than %zu bytes", MAX_INPUT_SIZE);
        }
        off += numel * elem;
    }
    if (batch != 1 && !used) {
        return fail("--batch %ld: no input has a dynamic dimension", batch);
    }
    in->size = off;
    in->data = malloc(off > 0 ? off : 1);
    if (in->data == NULL) {
        return fail("out of memory for %zu bytes of inputs", off);
    }
    off = 0;
    for (int i = 0; i < in->n; i++) {
        in->tensors[i].data = in->data + off;
        off += bms_tensor_size(&in->tensors[i]);
    }
    return 0;
}


static void inputs_destroy(struct bench_inputs *in)
{
    free(in->tensors);
    free(in->data);
}


/* Fill one element of dtype at p from r: floats uniform in [-1, 1),
 * integers in [0, TOKEN_ID_RANGE), booleans 0 or 1. */
static void put_random(enum bms_dtype dtype, void *p, uint64_t r)
{
    double u = (double)(r >> 11) * (1.0 / 9007199254740992.0);  /* [0,1) */
    long v = (long)(r % TOKEN_ID_RANGE);

    switch (dtype) {
    case BMS_DTYPE_F32: *(float *)p = (float)(2.0 * u - 1.0); break;
    case BMS_DTYPE_F64: *(double *)p = 2.0 * u - 1.0; break;
    case BMS_DTYPE_I64: *(int64_t *)p = v; break;
    case BMS_DTYPE_U64: *(uint64_t *)p = (uint64_t)v; break;
    case BMS_DTYPE_I32: *(int32_t *)p = (int32_t)v; break;
    case BMS_DTYPE_U32: *(uint32_t *)p = (uint32_t)v; break;
    case BMS_DTYPE_I16: *(int16_t *)p = (int16_t)v; break;
    case BMS_DTYPE_U16: *(uint16_t *)p = (uint16_t)v; break;
    case BMS_DTYPE_I8: *(int8_t *)p = (int8_t)v; break;
    case BMS_DTYPE_U8: *(uint8_t *)p = (uint8_t)v; break;
    case BMS_DTYPE_BOOL: *(uint8_t *)p = (uint8_t)(r & 1); break;
    default: break;
    }
}


static void inputs_generate(struct bench_inputs *in, long seed)
{
    uint64_t state = (uint64_t)seed;

    for (int i = 0; i < in->n; i++) {
        struct bms_tensor *t = &in->tensors[i];
        size_t elem = bms_dtype_size(t->dtype);
        int64_t numel = bms_tensor_numel(t);
        unsigned char *p = t->data;

        for (int64_t k = 0; k < numel; k++) {
            put_random(t->dtype, p + (size_t)k * elem, next_random(&state));
        }
    }
}


/* Read exactly in->size bytes from path into the input block. */
static int inputs_read(struct bench_inputs *in, const char *path)
{
    FILE *f = fopen(path, "rb");
    size_t got;
    int extra;

    if (f == NULL) {
        return fail("%s: %s", path, strerror(errno));
    }
    got = fread(in->data, 1, in->size, f);
    extra = fgetc(f) != EOF;
    if (ferror(f)) {
        fclose(f);
        return fail("%s: read error", path);
    }
    fclose(f);
    if (got != in->size || extra) {
        return fail("%s: expected %zu bytes of inputs, the file has %s%zu",
                    path, in->size, extra ? "more than " : "", got);
    }
    return 0;
}


/* Write the tensors' bytes one after another to path. */
static int write_raw(const char *path, const struct bms_tensor *t, int n)
{
    FILE *f = fopen(path, "wb");
    int failed = 0;

    if (f == NULL) {
        return fail("%s: %s", path, strerror(errno));
    }
    for (int i = 0; i < n && !failed; i++) {
        size_t size = bms_tensor_size(&t[i]);

        failed = size > 0 && fwrite(t[i].data, 1, size, f) != size;
    }
    failed = fclose(f) != 0 || failed;
    return failed ? fail("%s: write error", path) : 0;
}


/* The peak resident set size (VmHWM) of this process, or -1. */
static long long peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb >= 0 ? kb * 1024 : -1;
}


static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}


/* The q-quantile of sorted[0..n), interpolating linearly between the two
 * nearest ranks (numpy's default). */
static double quantile(const double *sorted, long n, double q)
{
    double pos = q * (double)(n - 1);
    long lo = (long)pos;
    double frac = pos - (double)lo;

    if (lo + 1 >= n) {
        return sorted[n - 1];
    }
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}


static int run_once(struct bms_session *session,
                    const struct bench_inputs *in, struct bms_tensor *out)
{
    struct bms_diag diag;
    enum bms_status rc;

    diag.msg[0] = '\0';
    rc = bms_session_run(session, in->tensors, out, &diag);
    if (rc != BMS_OK) {
        return fail("run failed (%s): %s", bms_status_name(rc),
                    diag.msg[0] != '\0' ? diag.msg : "no detail");
    }
    return 0;
}


/* Warm up, then time each run on its own into lat_us, and sum up. */
static int time_runs(const struct bench_opts *o, struct bms_session *session,
                     const struct bench_inputs *in, struct bms_tensor *out,
                     struct bench_result *res)
{
    long max_runs = o->iterations >= 0 ? o->iterations : DEFAULT_ITERATIONS;
    double *lat_us = malloc((size_t)max_runs * sizeof(*lat_us));
    double start;
    long n = 0;

    if (lat_us == NULL) {
        return fail("out of memory");
    }
    for (long i = 0; i < o->warmup; i++) {
        if (run_once(session, in, out) != 0) {
            free(lat_us);
            return BMS__EXIT_FAIL;
        }
    }
    start = now_us();
    while (n < max_runs) {
        double t0 = now_us();

        if (run_once(session, in, out) != 0) {
            free(lat_us);
            return BMS__EXIT_FAIL;
        }
        lat_us[n++] = now_us() - t0;
        /* Without --iterations, a slow model stops after the budget. */
        if (o->iterations < 0 && now_us() - start > DEFAULT_BUDGET_US) {
            break;
        }
    }
    qsort(lat_us, (size_t)n, sizeof(*lat_us), compare_double);
    res->n_runs = n;
    res->median_us = quantile(lat_us, n, 0.5);
    res->p90_us = quantile(lat_us, n, 0.9);
    res->items_per_s = res->median_us > 0.0
                       ? (double)o->batch * 1e6 / res->median_us : 0.0;
    res->peak_rss_bytes = peak_rss_bytes();
    free(lat_us);
    return 0;
}


static int print_json(const struct bench_opts *o, long n_threads,
                      const struct bench_result *r)
{
    struct bms_buf buf = { 0 };
    struct bms__json j = { &buf, BMS_OK };
    int status = BMS__EXIT_OK;

    bms__json_raw(&j, "{\"model\":");
    bms__json_cstr(&j, o->model_path);
    if (j.rc == BMS_OK &&
        bms_buf_printf(&buf, ",\"batch\":%ld,\"threads\":%ld,"
                       "\"iterations\":%ld,\"median_us\":%.3f,"
                       "\"p90_us\":%.3f,\"items_per_s\":%.3f,"
                       "\"peak_rss_bytes\":%lld}", o->batch, n_threads,
                       r->n_runs, r->median_us, r->p90_us, r->items_per_s,
                       r->peak_rss_bytes) != BMS_OK) {
        j.rc = BMS_ERR_NOMEM;
    }
    if (j.rc != BMS_OK) {
        status = fail("out of memory");
    } else {
        puts(buf.data);
    }
    bms_buf_fini(&buf);
    return status;
}


static void print_text(const struct bench_opts *o, long n_threads,
                       const struct bench_result *r)
{
    printf("model        %s\n", o->model_path);
    printf("batch        %ld\n", o->batch);
    printf("threads      %ld\n", n_threads);
    printf("iterations   %ld (after %ld warm-up)\n", r->n_runs, o->warmup);
    printf("median       %.1f us\n", r->median_us);
    printf("p90          %.1f us\n", r->p90_us);
    printf("throughput   %.1f items/s\n", r->items_per_s);
    if (r->peak_rss_bytes >= 0) {
        printf("peak memory  %lld bytes (%.1f MiB)\n", r->peak_rss_bytes,
               (double)r->peak_rss_bytes / (1024.0 * 1024.0));
    } else {
        printf("peak memory  unknown\n");
    }
}


/* Load, prepare the inputs, and either write them out or time the runs. */
static int node_time_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct node_time *)a)->us;
    int64_t y = ((const struct node_time *)b)->us;

    return x < y ? 1 : x > y ? -1 : 0;
}


/*
 * Run PROFILE_RUNS more times with per-node timing and print the nodes
 * that took the most, with their share of the nodes' total.  Apart from
 * the timed runs, so that the clock reads do not touch their figures.
 */
static int print_profile(struct bms_session *session,
                         const struct bench_inputs *in,
                         struct bms_tensor *out)
{
    struct node_time *t;
    struct bms_diag diag;
    int64_t total = 0;
    char label[160];
    int64_t us;
    int n = bms_session_profile(session, -1, label, sizeof(label), &us);

    diag.msg[0] = '\0';
    t = calloc((size_t)n + 1, sizeof(*t));
    if (t == NULL || bms_session_set_profiling(session, 1) != BMS_OK) {
        free(t);
        fail("out of memory");
        return -1;
    }
    for (int r = 0; r < PROFILE_RUNS; r++) {
        if (bms_session_run(session, in->tensors, out, &diag) != BMS_OK) {
            fail("run failed: %s", diag.msg);
            free(t);
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        bms_session_profile(session, i, t[i].label, sizeof(t[i].label),
                            &t[i].us);
        total += t[i].us;
    }
    qsort(t, (size_t)n, sizeof(*t), node_time_cmp);
    printf("profile      %d runs, the nodes that took the most:\n",
           PROFILE_RUNS);
    for (int i = 0; i < n && i < PROFILE_TOP && t[i].us > 0; i++) {
        printf("  %6.1f%%  %9.1f us/run  %s\n",
               total > 0 ? 100.0 * (double)t[i].us / (double)total : 0.0,
               (double)t[i].us / PROFILE_RUNS, t[i].label);
    }
    free(t);
    return 0;
}


static int bench(const struct bench_opts *o)
{
    struct bench_inputs in = { 0 };
    struct bench_result res = { 0 };
    struct bms_model *model = NULL;
    struct bms_session *session = NULL;
    struct bms_tensor *out = NULL;
    struct bms_diag diag;
    long n_threads = o->threads;
    int status = BMS__EXIT_FAIL;

    diag.msg[0] = '\0';
    if (n_threads == 0) {
        n_threads = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n_threads >= 1 ? n_threads : 1;
    }
    bms_engine_set_threads((int)n_threads);
    if (bms_model_load_file(o->model_path, &model, &diag) != BMS_OK) {
        /* The loader names the file itself when it cannot read it. */
        if (strncmp(diag.msg, o->model_path, strlen(o->model_path)) == 0) {
            fail("%s", diag.msg);
        } else {
            fail("%s: %s", o->model_path, diag.msg);
        }
        goto out;
    }
    if (inputs_create(model, o->batch, &in) != 0) {
        goto out;
    }
    if (o->inputs_path != NULL) {
        if (inputs_read(&in, o->inputs_path) != 0) {
            goto out;
        }
    } else {
        inputs_generate(&in, o->seed);
    }
    if (o->write_path != NULL) {
        status = write_raw(o->write_path, in.tensors, in.n);
        goto out;
    }
    if (bms_session_create(model, &session, &diag) != BMS_OK) {
        fail("%s: session: %s", o->model_path, diag.msg);
        goto out;
    }
    out = calloc((size_t)bms_model_n_outputs(model) + 1, sizeof(*out));
    if (out == NULL) {
        fail("out of memory");
        goto out;
    }
    if (time_runs(o, session, &in, out, &res) != 0) {
        goto out;
    }
    if (o->dump_path != NULL &&
        write_raw(o->dump_path, out, bms_model_n_outputs(model)) != 0) {
        goto out;
    }
    if (o->json) {
        status = print_json(o, n_threads, &res);
    } else {
        print_text(o, n_threads, &res);
        status = BMS__EXIT_OK;
    }
    if (status == BMS__EXIT_OK && o->profile && !o->json &&
        print_profile(session, &in, out) != 0) {
        status = BMS__EXIT_FAIL;
    }

out:
    free(out);
    bms_session_destroy(session);
    inputs_destroy(&in);
    bms_model_destroy(model);
    return status;
}


/* Apply one parsed option to o; 0, or the usage exit status. */
static int set_option(struct bench_opts *o, int c, char **argv)
{
    switch (c) {
    case 'b':
        return bms__cli_parse_long("bench", "batch", optarg, 1, 1 << 20,
                                   &o->batch) ? BMS__EXIT_USAGE : 0;
    case 't':
        return bms__cli_parse_long("bench", "threads", optarg, 0, 1024,
                                   &o->threads) ? BMS__EXIT_USAGE : 0;
    case 'n':
        return bms__cli_parse_long("bench", "iterations", optarg, 1,
                                   MAX_ITERATIONS, &o->iterations)
               ? BMS__EXIT_USAGE : 0;
    case 'w':
        return bms__cli_parse_long("bench", "warmup", optarg, 0,
                                   MAX_ITERATIONS, &o->warmup)
               ? BMS__EXIT_USAGE : 0;
    case 's':
        return bms__cli_parse_long("bench", "seed", optarg, 0, LONG_MAX,
                                   &o->seed) ? BMS__EXIT_USAGE : 0;
    case 'i':
        o->inputs_path = optarg;
        return 0;
    case 'W':
        o->write_path = optarg;
        return 0;
    case 'o':
        o->dump_path = optarg;
        return 0;
    case 'j':
        o->json = 1;
        return 0;
    case 'p':
        o->profile = 1;
        return 0;
    default:
        return bms__cli_bad_option("bench", argv, c);
    }
}


int bms__cli_bench(int argc, char **argv)
{
    struct bench_opts o = {
        .batch = 1, .threads = 1, .iterations = -1,
        .warmup = DEFAULT_WARMUP, .seed = 1
    };
    int c;
    int rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        if (c == 'h') {
            bms__cli_usage(stdout);
            return BMS__EXIT_OK;
        }
        rc = set_option(&o, c, argv);
        if (rc != 0) {
            return rc;
        }
    }
    if (optind + 1 != argc) {
        return bms__cli_usage_error("bench", "expected one model file, "
                                    "got %d arguments", argc - optind);
    }
    o.model_path = argv[optind];
    bms_log_set_handler(drop_log, NULL);
    return bench(&o);
}
