/*
 * `bms requests`: the latest request records from the store, newest
 * first, as an aligned table or as one JSON object per line.  Rows are
 * read whole before printing, so the columns fit the widest value.  Text
 * from the store is printed with control characters replaced, since the
 * file may have been written by anything.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bms/store.h"
#include "cli/cli.h"
#include "server/v2_json.h"

#define PATH_SIZE 4096
#define MAX_LIMIT 100000   /* records, about 600 bytes each */
#define N_COLUMNS 11

static const struct option long_opts[] = {
    { "data-dir", required_argument, NULL, 'd' },
    { "limit", required_argument, NULL, 'n' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

static const char *const headers[N_COLUMNS] = {
    "TIME", "ID", "MODEL", "VERSION", "STATUS", "OUTCOME", "LATENCY_MS",
    "BYTES_IN", "BYTES_OUT", "CLIENT", "ERROR"
};

/* Columns printed flush right (the numbers). */
static const int right_aligned[N_COLUMNS] = {
    0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0
};

struct rows {
    struct bms_request_record *recs;
    int n;
    int cap;
    int failed;                  /* ran out of memory while collecting */
};

/* One record's cells as text. */
struct cells {
    char text[N_COLUMNS][256];
};


static int collect(void *ud, const struct bms_request_record *rec)
{
    struct rows *rows = ud;

    if (rows->n == rows->cap) {
        int cap = rows->cap ? 2 * rows->cap : 64;
        void *p = realloc(rows->recs, (size_t)cap * sizeof(*rows->recs));

        if (p == NULL) {
            rows->failed = 1;
            return 1;
        }
        rows->recs = p;
        rows->cap = cap;
    }
    rows->recs[rows->n++] = *rec;
    return 0;
}


/* Copy a fixed-size field of the store, NUL-terminated, control bytes as
 * '?'. */
static void clean_copy(char *out, size_t size, const char *s, size_t max)
{
    size_t i;

    for (i = 0; i + 1 < size && i < max && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];

        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[i] = '\0';
}


/* UTC ISO-8601 with milliseconds: 2026-01-02T09:14:03.517Z. */
static void format_time(char *out, size_t size, int64_t ts_us)
{
    time_t sec = (time_t)(ts_us / 1000000);
    int ms = (int)((ts_us % 1000000) / 1000);
    struct tm tm;

    if (ts_us < 0 || gmtime_r(&sec, &tm) == NULL) {
        snprintf(out, size, "-");
        return;
    }
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ms);
}


static void make_cells(const struct bms_request_record *r, struct cells *c)
{
    format_time(c->text[0], sizeof(c->text[0]), r->ts_us);
    clean_copy(c->text[1], sizeof(c->text[1]), r->id, sizeof(r->id));
    clean_copy(c->text[2], sizeof(c->text[2]), r->model, sizeof(r->model));
    if (c->text[2][0] == '\0') {
        snprintf(c->text[2], sizeof(c->text[2]), "-");
    }
    if (r->version > 0) {
        snprintf(c->text[3], sizeof(c->text[3]), "%lld",
                 (long long)r->version);
    } else {
        snprintf(c->text[3], sizeof(c->text[3]), "-");
    }
    snprintf(c->text[4], sizeof(c->text[4]), "%d", r->http_status);
    clean_copy(c->text[5], sizeof(c->text[5]), r->outcome,
               sizeof(r->outcome));
    snprintf(c->text[6], sizeof(c->text[6]), "%.3f",
             (double)r->latency_us / 1000.0);
    snprintf(c->text[7], sizeof(c->text[7]), "%lld",
             (long long)r->bytes_in);
    snprintf(c->text[8], sizeof(c->text[8]), "%lld",
             (long long)r->bytes_out);
    clean_copy(c->text[9], sizeof(c->text[9]), r->client,
               sizeof(r->client));
    clean_copy(c->text[10], sizeof(c->text[10]), r->error,
               sizeof(r->error));
}


static void print_row(const char *const *text, const int *widths)
{
    char line[N_COLUMNS * 300];
    size_t len = 0;

    for (int i = 0; i < N_COLUMNS; i++) {
        int w = i + 1 < N_COLUMNS ? widths[i] : 0;
        int n = snprintf(line + len, sizeof(line) - len, "%*s  ",
                         right_aligned[i] ? w : -w, text[i]);

        if (n < 0 || (size_t)n >= sizeof(line) - len) {
            break;
        }
        len += (size_t)n;
    }
    while (len > 0 && line[len - 1] == ' ') {
        len--;
    }
    printf("%.*s\n", (int)len, line);
}


/* Two passes over the rows, making each row's cells in both, so the
 * memory stays one row's whatever the limit. */
static void print_table(const struct rows *rows)
{
    struct cells cells;
    int widths[N_COLUMNS];
    const char *text[N_COLUMNS];

    for (int i = 0; i < N_COLUMNS; i++) {
        widths[i] = (int)strlen(headers[i]);
        text[i] = cells.text[i];
    }
    for (int r = 0; r < rows->n; r++) {
        make_cells(&rows->recs[r], &cells);
        for (int i = 0; i < N_COLUMNS; i++) {
            int len = (int)strlen(cells.text[i]);

            widths[i] = len > widths[i] ? len : widths[i];
        }
    }
    print_row(headers, widths);
    for (int r = 0; r < rows->n; r++) {
        make_cells(&rows->recs[r], &cells);
        print_row(text, widths);
    }
}


/* Append "key": "<field as a JSON string>" for a fixed-size field. */
static enum bms_status json_field(struct bms_buf *b, const char *key,
                                  const char *s, size_t max)
{
    struct bms__json j = { b, bms_buf_printf(b, ", \"%s\": ", key) };

    bms__json_string(&j, s, strnlen(s, max));
    return j.rc;
}


static enum bms_status print_json(const struct bms_request_record *r,
                                  struct bms_buf *b)
{
    char time_text[32];
    enum bms_status rc;

    bms_buf_reset(b);
    format_time(time_text, sizeof(time_text), r->ts_us);
    rc = bms_buf_puts(b, "{\"id\": ");
    if (rc == BMS_OK) {
        struct bms__json j = { b, BMS_OK };

        bms__json_string(&j, r->id, strnlen(r->id, sizeof(r->id)));
        rc = j.rc;
    }
    if (rc == BMS_OK) {
        rc = bms_buf_printf(b, ", \"time\": \"%s\", \"ts_us\": %lld",
                            time_text, (long long)r->ts_us);
    }
    if (rc == BMS_OK) {
        rc = json_field(b, "model", r->model, sizeof(r->model));
    }
    if (rc == BMS_OK) {
        rc = bms_buf_printf(b, ", \"version\": %lld, \"http_status\": %d",
                            (long long)r->version, r->http_status);
    }
    if (rc == BMS_OK) {
        rc = json_field(b, "outcome", r->outcome, sizeof(r->outcome));
    }
    if (rc == BMS_OK) {
        rc = json_field(b, "error", r->error, sizeof(r->error));
    }
    if (rc == BMS_OK) {
        rc = bms_buf_printf(b, ", \"latency_us\": %lld, \"bytes_in\": %lld, "
                            "\"bytes_out\": %lld", (long long)r->latency_us,
                            (long long)r->bytes_in, (long long)r->bytes_out);
    }
    if (rc == BMS_OK) {
        rc = json_field(b, "client", r->client, sizeof(r->client));
    }
    if (rc == BMS_OK) {
        rc = json_field(b, "key_id", r->key_id, sizeof(r->key_id));
    }
    if (rc == BMS_OK) {
        rc = bms_buf_puts(b, "}\n");
    }
    if (rc == BMS_OK) {
        fwrite(b->data, 1, b->len, stdout);
    }
    return rc;
}


static int list(const char *data_dir, int limit, int as_json)
{
    char path[PATH_SIZE];
    struct bms_store *store = NULL;
    struct rows rows = { 0 };
    struct bms_buf line = { 0 };
    struct bms_diag diag;
    struct stat st;
    int status = BMS__EXIT_FAIL;
    int n = snprintf(path, sizeof(path), "%s/bms.db", data_dir);

    diag.msg[0] = '\0';
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "bms: %s: path too long\n", data_dir);
        return BMS__EXIT_FAIL;
    }
    if (stat(path, &st) != 0) {
        fprintf(stderr, "bms: %s: no request store (see --data-dir)\n",
                path);
        return BMS__EXIT_FAIL;
    }
    if (bms_store_open_sqlite(path, &store, &diag) != BMS_OK) {
        fprintf(stderr, "bms: %s\n", diag.msg);
        return BMS__EXIT_FAIL;
    }
    if (bms_store_list_requests(store, limit, collect, &rows,
                                &diag) != BMS_OK) {
        fprintf(stderr, "bms: %s\n", diag.msg);
        goto out;
    }
    status = rows.failed ? BMS__EXIT_FAIL : BMS__EXIT_OK;
    for (int i = 0; as_json && i < rows.n && status == BMS__EXIT_OK; i++) {
        if (print_json(&rows.recs[i], &line) != BMS_OK) {
            status = BMS__EXIT_FAIL;
        }
    }
    if (!as_json && status == BMS__EXIT_OK) {
        print_table(&rows);
    }
    if (status != BMS__EXIT_OK) {
        fprintf(stderr, "bms: out of memory\n");
    }

out:
    bms_buf_fini(&line);
    free(rows.recs);
    bms_store_close(store);
    return status;
}


int bms__cli_requests(int argc, char **argv)
{
    const char *data_dir = "data";
    long limit = 20;
    int as_json = 0;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data_dir = optarg;
            break;
        case 'n':
            if (bms__cli_parse_long("requests", "limit", optarg, 1,
                                    MAX_LIMIT, &limit) != 0) {
                return BMS__EXIT_USAGE;
            }
            break;
        case 'j':
            as_json = 1;
            break;
        case 'h':
            bms__cli_usage(stdout);
            return BMS__EXIT_OK;
        default:
            return bms__cli_bad_option("requests", argv, c);
        }
    }
    if (optind < argc) {
        return bms__cli_usage_error("requests", "unexpected argument '%s'",
                                    argv[optind]);
    }
    bms_log_set_level(BMS_LOG_WARN);
    return list(data_dir, (int)limit, as_json);
}
