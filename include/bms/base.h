/*
 * The base layer of bms: status codes, the diagnostic buffer that carries a
 * human message from where an error is found to the boundary that reports
 * it, and structured logging through a handler the host may replace.
 *
 * Every fallible function in bms returns an enum bms_status and, when it
 * fails, may write one line into a caller-supplied struct bms_diag.  Only
 * the boundary (HTTP handler, CLI command) logs or prints that line.
 */
#ifndef BMS_BASE_H
#define BMS_BASE_H

#include <stddef.h>
#include <stdint.h>

enum bms_status {
    BMS_OK = 0,
    BMS_ERR_NOMEM = -1,       /* an allocation failed */
    BMS_ERR_INVALID = -2,     /* malformed input: model, manifest, request */
    BMS_ERR_UNSUPPORTED = -3, /* well formed, but bms does not implement it */
    BMS_ERR_NOT_FOUND = -4,   /* no such model, version, file or record */
    BMS_ERR_IO = -5,          /* the operating system refused */
    BMS_ERR_LIMIT = -6,       /* a size or count limit was passed */
    BMS_ERR_UNAVAILABLE = -7, /* exists but cannot serve now */
    BMS_ERR_INTERNAL = -8     /* a bug in bms or a library it uses */
};

/* Short lowercase name of a status ("invalid", "nomem"); never NULL. */
const char *bms_status_name(enum bms_status rc);

#define BMS_DIAG_SIZE 512

struct bms_diag {
    char msg[BMS_DIAG_SIZE]; /* NUL-terminated, one line, no trailing '.' */
};

/*
 * Format a message into diag (when diag is not NULL) and return rc, so that
 * a failing path reads `return bms_diag_set(diag, BMS_ERR_INVALID, ...)`.
 */
enum bms_status bms_diag_set(struct bms_diag *diag, enum bms_status rc,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Put "prefix: " in front of the message already in diag, to add context
 * on the way up ("model fashion_mlp: node 3 (Gemm): ...").
 */
void bms_diag_prefix(struct bms_diag *diag, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

enum bms_log_level {
    BMS_LOG_DEBUG = 0,
    BMS_LOG_INFO = 1,
    BMS_LOG_WARN = 2,
    BMS_LOG_ERROR = 3
};

/*
 * A log handler gets one finished line without the trailing newline, in
 * logfmt: `ts=... level=... mod=... msg="..." key=value ...`.
 */
typedef void (*bms_log_fn)(void *ud, enum bms_log_level level,
                           const char *line);

/* Install a handler (NULL restores the default: stderr).  Not thread-safe:
 * call it before starting threads. */
void bms_log_set_handler(bms_log_fn fn, void *ud);

/* Lines below this level are dropped.  The default is BMS_LOG_INFO. */
void bms_log_set_level(enum bms_log_level level);
enum bms_log_level bms_log_get_level(void);

/*
 * Log one event.  fmt produces the fields after the module, for example
 * bms_log(BMS_LOG_INFO, "repo", "msg=\"model loaded\" model=%s", name).
 * Thread-safe.
 */
void bms_log(enum bms_log_level level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A growable byte buffer.  Zero-initialise it; bms_buf_fini frees it.  The
 * data is kept NUL-terminated after every successful append (the NUL is not
 * counted in len).  Appends return BMS_ERR_NOMEM and leave the buffer as it
 * was when memory runs out.
 */
struct bms_buf {
    char *data;
    size_t len;
    size_t cap;
};

enum bms_status bms_buf_reserve(struct bms_buf *buf, size_t extra);
enum bms_status bms_buf_append(struct bms_buf *buf, const void *data,
                               size_t size);
enum bms_status bms_buf_puts(struct bms_buf *buf, const char *s);
enum bms_status bms_buf_printf(struct bms_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bms_buf_reset(struct bms_buf *buf);   /* len = 0, keeps the memory */
void bms_buf_fini(struct bms_buf *buf);

/* Monotonic clock in microseconds, and wall clock in microseconds since the
 * Unix epoch. */
int64_t bms_now_us(void);
int64_t bms_wall_us(void);

#endif
