/* log.c: stderr logging and the thread-local error detail of result.h.
 *
 * Repeated lines are rate-limited: at most MV_LOG_BURST lines of one format per second and
 * thread; the rest are counted and reported as one line when that format next logs in a later
 * second. An error that repeats on every event (accept() out of descriptors wrote 37 MB/s before
 * the listener backed off) then costs a few lines a second, not the disk. */
#include "common/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/result.h"

#define MV_LOG_BURST 10 /* lines per format per second, per thread */
#define MV_LOG_SLOTS 32

static enum mv_log_level g_level = MV_LOG_INFO; /* set once at start-up, read-only after */
static int g_json;                              /* likewise: --log-format json */
static _Thread_local char t_detail[256];

struct log_slot {
    const char *fmt; /* the format string identifies the kind of line */
    time_t sec;
    unsigned lines, dropped;
};
static _Thread_local struct log_slot t_slots[MV_LOG_SLOTS];

/* One event, one line: in text, control characters (a newline in a message would start a
 * forged line) become spaces; in JSON they are escaped, as are '"' and '\\'. */
static void emit(enum mv_log_level lvl, const char *line)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char msg[1024 * 6 + 1];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)line; *p && o + 7 < sizeof msg; p++) {
        if (!g_json) {
            msg[o++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
        } else if (*p == '"' || *p == '\\') {
            msg[o++] = '\\';
            msg[o++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) { /* controls; and non-ASCII, so the line stays valid UTF-8 */
            o += (size_t)snprintf(msg + o, sizeof msg - o, "\\u%04X", *p);
        } else {
            msg[o++] = (char)*p;
        }
    }
    msg[o] = '\0';
    if (g_json)
        fprintf(stderr,
                "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"pid\":%ld,"
                "\"msg\":\"%s\"}\n",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, names[lvl], (long)getpid(), msg);
    else
        fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02dZ mivault %s: %s\n", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, names[lvl], msg);
}

/* 1 if this line may be written; reports what an earlier second suppressed. */
static int log_admit(enum mv_log_level lvl, const char *fmt)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    struct log_slot *s = &t_slots[((uintptr_t)fmt >> 3) % MV_LOG_SLOTS];
    if (s->fmt != fmt || s->sec != now.tv_sec) {
        if (s->dropped) {
            char note[96];
            snprintf(note, sizeof note, "(%u similar lines suppressed)", s->dropped);
            emit(lvl, note);
        }
        s->fmt = fmt;
        s->sec = now.tv_sec;
        s->lines = 0;
        s->dropped = 0;
    }
    if (s->lines >= MV_LOG_BURST) {
        s->dropped++;
        return 0;
    }
    s->lines++;
    return 1;
}

void mv_log_set_level(enum mv_log_level lvl) { g_level = lvl; }
void mv_log_set_json(int on) { g_json = on; }
int mv_log_json(void) { return g_json; }

void mv_log(enum mv_log_level lvl, const char *fmt, ...)
{
    if (lvl < g_level || !log_admit(lvl, fmt))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(lvl, line);
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
