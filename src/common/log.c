/* log.c: stderr logging and the thread-local error detail of result.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/result.h"

static enum mv_log_level g_level = MV_LOG_INFO; /* set once at start-up, read-only after */
static _Thread_local char t_detail[256];

void mv_log_set_level(enum mv_log_level lvl) { g_level = lvl; }

void mv_log(enum mv_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < g_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02dZ mivault %s: %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, names[lvl], line);
}

void mv_fail_at(const char *file, int line, mv_rc rc, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    snprintf(t_detail, sizeof t_detail, "%s (%s:%d, %s)", msg, base ? base + 1 : file, line,
             mv_rc_name(rc));
    if (rc == MV_ERR_INTERNAL)
        mv_log(MV_LOG_ERROR, "%s", t_detail);
    else
        mv_log(MV_LOG_DEBUG, "%s", t_detail);
}

const char *mv_last_detail(void) { return t_detail; }

const char *mv_rc_name(mv_rc rc)
{
    switch (rc) {
    case MV_OK: return "ok";
    case MV_ERR_BAD_REQUEST: return "bad_request";
    case MV_ERR_UNAUTHENTICATED: return "unauthenticated";
    case MV_ERR_FORBIDDEN: return "forbidden";
    case MV_ERR_NOT_FOUND: return "not_found";
    case MV_ERR_CONFLICT: return "conflict";
    case MV_ERR_LIMIT: return "limit";
    case MV_ERR_THROTTLED: return "throttled";
    case MV_ERR_UNAVAILABLE: return "unavailable";
    case MV_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}
