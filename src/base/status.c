/*
 * Status names, the diagnostic buffer and the clocks.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bms/base.h"


const char *bms_status_name(enum bms_status rc)
{
    switch (rc) {
    case BMS_OK: return "ok";
    case BMS_ERR_NOMEM: return "nomem";
    case BMS_ERR_INVALID: return "invalid";
    case BMS_ERR_UNSUPPORTED: return "unsupported";
    case BMS_ERR_NOT_FOUND: return "not_found";
    case BMS_ERR_IO: return "io";
    case BMS_ERR_LIMIT: return "limit";
    case BMS_ERR_UNAVAILABLE: return "unavailable";
    case BMS_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}


enum bms_status bms_diag_set(struct bms_diag *diag, enum bms_status rc,
                             const char *fmt, ...)
{
    va_list ap;

    if (diag == NULL) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
    return rc;
}


void bms_diag_prefix(struct bms_diag *diag, const char *fmt, ...)
{
    char old[BMS_DIAG_SIZE];
    size_t n;
    va_list ap;
    int len;

    if (diag == NULL) {
        return;
    }
    memcpy(old, diag->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    va_start(ap, fmt);
    len = vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
    va_end(ap);
    if (len < 0) {
        memcpy(diag->msg, old, sizeof(old));
        return;
    }
    /* The message is cut at the buffer's end rather than lost. */
    n = (size_t)len < sizeof(diag->msg) ? (size_t)len : sizeof(diag->msg) - 1;
    for (const char *p = ": "; *p != '\0' && n < sizeof(diag->msg) - 1; p++) {
        diag->msg[n++] = *p;
    }
    for (size_t i = 0; old[i] != '\0' && n < sizeof(diag->msg) - 1; i++) {
        diag->msg[n++] = old[i];
    }
    diag->msg[n] = '\0';
}


int64_t bms_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


int64_t bms_wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
