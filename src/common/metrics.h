/* metrics.h: counters and latency histograms for GET /metrics (Prometheus text format,
 * docs/operations.md "Metrics").
 *
 * Hot paths record without locks: each thread (each event loop, the store writer) has its own
 * table, written only by that thread with plain (relaxed atomic) stores; a scrape walks every
 * thread's table and sums. A series is a metric and up to two label values, which must be
 * string literals or otherwise live for the whole process (they are compared by pointer on the
 * hot path and by text at scrape). */
#ifndef MV_COMMON_METRICS_H
#define MV_COMMON_METRICS_H

#include <stdint.h>

#include "common/buf.h"

enum mv_metric {
    MV_M_REQUESTS,          /* plane, route, method, status: requests_total + duration histogram */
    MV_M_TOKENS_ISSUED,     /* issuer ("authority", "imds") */
    MV_M_TOKENS_REFUSED,    /* issuer, reason (the OAuth error or IMDS refusal) */
    MV_M_CACHE_HITS,        /* cache */
    MV_M_CACHE_MISSES,      /* cache */
    MV_M_STORE_SECONDS,     /* op: histogram of store operations */
    MV_M_STORE_ERRORS,      /* op */
    MV_M_IMDS_THROTTLED,    /* IMDS 429s */
    MV_M_AUDIT_FAILURES,    /* audit records that could not be written */
    MV_M_COUNT
};

/* Monotonic nanoseconds (for latencies). */
int64_t mv_metrics_now_ns(void);

/* Adds n to a counter series. */
void mv_metric_add(enum mv_metric m, const char *label1, const char *label2, uint64_t n);
static inline void mv_metric_inc(enum mv_metric m, const char *label1, const char *label2)
{
    mv_metric_add(m, label1, label2, 1);
}
/* One observation of a histogram series, in nanoseconds. */
void mv_metric_observe(enum mv_metric m, const char *label1, int64_t ns);
/* One HTTP request answered: counted by plane, route and status; its latency observed. */
void mv_metric_request(const char *plane, const char *route, const char *method, int status, int64_t ns);

/* Appends every metric, summed over threads, and the process metrics (process_*), in the
 * Prometheus text exposition format 0.0.4. */
MV_MUST_CHECK mv_rc mv_metrics_render(mv_buf *b);

#endif
