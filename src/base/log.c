/*
 * Structured logging.  Each event becomes one logfmt line that starts with
 * the UTC time in milliseconds, the level and the module; the line is
 * handed whole to the installed handler, so lines from several threads
 * never interleave.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "bms/base.h"

static bms_log_fn log_fn;
static void *log_ud;
static enum bms_log_level log_level = BMS_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;


static const char *level_name(enum bms_log_level level)
{
    switch (level) {
    case BMS_LOG_DEBUG: return "debug";
    case BMS_LOG_INFO: return "info";
    case BMS_LOG_WARN: return "warn";
    case BMS_LOG_ERROR: return "error";
    }
    return "info";
}


void bms_log_set_handler(bms_log_fn fn, void *ud)
{
    log_fn = fn;
    log_ud = ud;
}


void bms_log_set_level(enum bms_log_level level)
{
    log_level = level;
}


enum bms_log_level bms_log_get_level(void)
{
    return log_level;
}


void bms_log(enum bms_log_level level, const char *mod, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level < log_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 level_name(level), mod);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);

    if (log_fn != NULL) {
        log_fn(log_ud, level, line);
        return;
    }
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
