/* metrics.c: per-thread metric tables and the Prometheus text rendering (see metrics.h). */
#include "common/metrics.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 512 /* series per thread (power of two) */
#define PROBES 16
#define NBUCKETS 12

/* Upper bounds of the latency buckets, in nanoseconds (the last bucket is +Inf). */
static const int64_t BUCKET_NS[NBUCKETS] = {
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 100000000, 250000000,
    1000000000, 5000000000,
};
static const char *const BUCKET_LE[NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.1", "0.25", "1", "5",
};

struct series {
    _Atomic int used; /* set (release) once the key below is written */
    int metric;
    int code;
    const char *l1, *l2, *l3;
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t bucket[NBUCKETS + 1]; /* non-cumulative; the last is over the largest bound */
};

struct block {
    struct block *next;
    _Atomic uint64_t dropped; /* series that found no free slot */
    struct series s[SLOTS];
};

static _Atomic(struct block *) g_blocks;
static _Thread_local struct block *t_block;
static int64_t g_start_secs; /* process start, Unix seconds (first use) */

int64_t mv_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct block *my_block(void)
{
    if (t_block)
        return t_block;
    struct block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->next = atomic_load_explicit(&g_blocks, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&g_blocks, &b->next, b, memory_order_release,
                                                  memory_order_relaxed))
        ;
    t_block = b;
    return b;
}

/* Only this thread writes its block: a relaxed load and store is an increment nobody races. */
static inline void bump(_Atomic uint64_t *v, uint64_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

static struct series *find(int metric, const char *l1, const char *l2, const char *l3, int code)
{
    struct block *b = my_block();
    if (!b)
        return NULL;
    uintptr_t h = ((uintptr_t)l1 >> 3) * 31u + ((uintptr_t)l2 >> 3) * 17u + (uintptr_t)metric * 131u +
                  ((uintptr_t)l3 >> 3) * 13u + (uintptr_t)code * 7u;
    for (unsigned i = 0; i < PROBES; i++) {
        struct series *s = &b->s[(h + i) & (SLOTS - 1)];
        if (!atomic_load_explicit(&s->used, memory_order_relaxed)) {
            s->metric = metric;
            s->code = code;
            s->l1 = l1;
            s->l2 = l2;
            s->l3 = l3;
            atomic_store_explicit(&s->used, 1, memory_order_release);
            return s;
        }
        if (s->metric == metric && s->code == code && s->l1 == l1 && s->l2 == l2 && s->l3 == l3)
            return s;
    }
    bump(&b->dropped, 1);
    return NULL;
}

void mv_metric_add(enum mv_metric m, const char *label1, const char *label2, uint64_t n)
{
    struct series *s = find((int)m, label1, label2, NULL, 0);
    if (s)
        bump(&s->count, n);
}

static void observe(struct series *s, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    int i = 0;
    while (i < NBUCKETS && ns > BUCKET_NS[i])
        i++;
    bump(&s->count, 1);
    bump(&s->sum_ns, (uint64_t)ns);
    bump(&s->bucket[i], 1);
}

void mv_metric_observe(enum mv_metric m, const char *label1, int64_t ns)
{
    struct series *s = find((int)m, label1, NULL, NULL, 0);
    if (s)
        observe(s, ns);
}

void mv_metric_request(const char *plane, const char *route, const char *method, int status, int64_t ns)
{
    struct series *s = find(MV_M_REQUESTS, plane, route, method, status);
    if (s)
        observe(s, ns);
}

/* ---- scrape ---- */

/* One series summed over threads, keyed by text. */
struct total {
    int metric, code;
    const char *l1, *l2, *l3;
    uint64_t count, sum_ns, bucket[NBUCKETS + 1];
};

static int same_text(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static mv_rc collect(struct total **out, size_t *n, uint64_t *dropped)
{
    size_t cap = 64, len = 0;
    struct total *t = calloc(cap, sizeof *t);
    if (!t)
        return MV_ERR_INTERNAL;
    *dropped = 0;
    for (struct block *b = atomic_load_explicit(&g_blocks, memory_order_acquire); b; b = b->next) {
        *dropped += atomic_load_explicit(&b->dropped, memory_order_relaxed);
        for (size_t i = 0; i < SLOTS; i++) {
            struct series *s = &b->s[i];
            if (!atomic_load_explicit(&s->used, memory_order_acquire))
                continue;
            size_t k = 0;
            while (k < len && !(t[k].metric == s->metric && t[k].code == s->code && same_text(t[k].l1, s->l1) &&
                                same_text(t[k].l2, s->l2) && same_text(t[k].l3, s->l3)))
                k++;
            if (k == len) {
                if (len == cap) {
                    struct total *g = realloc(t, cap * 2 * sizeof *t);
                    if (!g) {
                        free(t);
                        return MV_ERR_INTERNAL;
                    }
                    t = g;
                    cap *= 2;
                }
                memset(&t[len], 0, sizeof t[len]);
                t[len] = (struct total){.metric = s->metric, .code = s->code, .l1 = s->l1, .l2 = s->l2, .l3 = s->l3};
                len++;
            }
            t[k].count += atomic_load_explicit(&s->count, memory_order_relaxed);
            t[k].sum_ns += atomic_load_explicit(&s->sum_ns, memory_order_relaxed);
            for (int j = 0; j <= NBUCKETS; j++)
                t[k].bucket[j] += atomic_load_explicit(&s->bucket[j], memory_order_relaxed);
        }
    }
    *out = t;
    *n = len;
    return MV_OK;
}

static mv_rc header(mv_buf *b, const char *name, const char *type, const char *help)
{
    return mv_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A counter family with one label (key1) or two (key1, key2); 0 when it has no series. */
static mv_rc counter_family(mv_buf *b, const struct total *t, size_t n, int metric, const char *name,
                            const char *help, const char *key1, const char *key2)
{
    mv_rc rc = MV_OK;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].metric != metric)
            continue;
        if (!any)
            CHECK(header(b, name, "counter", help));
        any = 1;
        if (key1 && key2)
            CHECK(mv_buf_addf(b, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", name, key1, t[i].l1 ? t[i].l1 : "", key2,
                              t[i].l2 ? t[i].l2 : "", (unsigned long long)t[i].count));
        else if (key1)
            CHECK(mv_buf_addf(b, "%s{%s=\"%s\"} %llu\n", name, key1, t[i].l1 ? t[i].l1 : "",
                              (unsigned long long)t[i].count));
        else
            CHECK(mv_buf_addf(b, "%s %llu\n", name, (unsigned long long)t[i].count));
    }
out:
    return rc;
}

static mv_rc buckets(mv_buf *b, const char *name, const char *labels, const struct total *x)
{
    mv_rc rc = MV_OK;
    uint64_t cum = 0;
    for (int j = 0; j < NBUCKETS; j++) {
        cum += x->bucket[j];
        CHECK(mv_buf_addf(b, "%s_bucket{%sle=\"%s\"} %llu\n", name, labels, BUCKET_LE[j], (unsigned long long)cum));
    }
    cum += x->bucket[NBUCKETS];
    CHECK(mv_buf_addf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum));
    size_t ll = strlen(labels);
    CHECK(mv_buf_addf(b, "%s_sum%s%.*s%s %.9f\n", name, ll ? "{" : "", ll ? (int)(ll - 1) : 0, labels,
                      ll ? "}" : "", (double)x->sum_ns / 1e9));
    CHECK(mv_buf_addf(b, "%s_count%s%.*s%s %llu\n", name, ll ? "{" : "", ll ? (int)(ll - 1) : 0, labels,
                      ll ? "}" : "", (unsigned long long)cum));
out:
    return rc;
}

static mv_rc requests(mv_buf *b, struct total *t, size_t n)
{
    mv_rc rc = MV_OK;
    char labels[256];
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].metric != MV_M_REQUESTS)
            continue;
        if (!any)
            CHECK(header(b, "mivault_http_requests_total", "counter",
                         "HTTP requests answered, by plane, route, method and status."));
        any = 1;
        CHECK(mv_buf_addf(b,
                          "mivault_http_requests_total{plane=\"%s\",route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                          t[i].l1, t[i].l2, t[i].l3 ? t[i].l3 : "", t[i].code, (unsigned long long)t[i].count));
    }
    if (!any)
        goto out;
    /* The duration histogram per plane and route: the statuses of each summed. */
    CHECK(header(b, "mivault_http_request_duration_seconds", "histogram",
                 "Time from a request's dispatch to its reply, by plane and route."));
    for (size_t i = 0; i < n; i++) {
        if (t[i].metric != MV_M_REQUESTS || t[i].code < 0)
            continue;
        struct total sum = t[i];
        for (size_t k = i + 1; k < n; k++) {
            if (t[k].metric != MV_M_REQUESTS || t[k].code < 0 || !same_text(t[k].l1, sum.l1) ||
                !same_text(t[k].l2, sum.l2))
                continue;
            sum.sum_ns += t[k].sum_ns;
            for (int j = 0; j <= NBUCKETS; j++)
                sum.bucket[j] += t[k].bucket[j];
            t[k].code = -1; /* folded in */
        }
        CHECK(mv_fmt(labels, sizeof labels, "plane=\"%s\",route=\"%s\",", sum.l1, sum.l2));
        CHECK(buckets(b, "mivault_http_request_duration_seconds", labels, &sum));
    }
out:
    return rc;
}

static mv_rc store_latency(mv_buf *b, const struct total *t, size_t n)
{
    mv_rc rc = MV_OK;
    char labels[128];
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].metric != MV_M_STORE_SECONDS)
            continue;
        if (!any)
            CHECK(header(b, "mivault_store_operation_duration_seconds", "histogram",
                         "Store operations (a group commit of writes, a read), by operation."));
        any = 1;
        CHECK(mv_fmt(labels, sizeof labels, "op=\"%s\",", t[i].l1));
        CHECK(buckets(b, "mivault_store_operation_duration_seconds", labels, &t[i]));
    }
out:
    return rc;
}

/* hits / (hits + misses) per cache, for dashboards that want the ratio itself. */
static mv_rc cache_ratio(mv_buf *b, const struct total *t, size_t n)
{
    mv_rc rc = MV_OK;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].metric != MV_M_CACHE_HITS && t[i].metric != MV_M_CACHE_MISSES)
            continue;
        int seen = 0; /* a cache named earlier was rendered already */
        for (size_t k = 0; k < i && !seen; k++)
            seen = (t[k].metric == MV_M_CACHE_HITS || t[k].metric == MV_M_CACHE_MISSES) && same_text(t[k].l1, t[i].l1);
        if (seen)
            continue;
        uint64_t hits = 0, misses = 0;
        for (size_t k = i; k < n; k++) {
            if (!same_text(t[k].l1, t[i].l1))
                continue;
            if (t[k].metric == MV_M_CACHE_HITS)
                hits += t[k].count;
            else if (t[k].metric == MV_M_CACHE_MISSES)
                misses += t[k].count;
        }
        if (!any)
            CHECK(header(b, "mivault_cache_hit_ratio", "gauge",
                         "Hits over lookups of each cache since the start (0 before the first lookup)."));
        any = 1;
        CHECK(mv_buf_addf(b, "mivault_cache_hit_ratio{cache=\"%s\"} %.6f\n", t[i].l1,
                          hits + misses ? (double)hits / (double)(hits + misses) : 0.0));
    }
out:
    return rc;
}

/* Always present, also at 0: what alerting rules match on. */
static mv_rc plain_counter(mv_buf *b, const struct total *t, size_t n, int metric, const char *name,
                           const char *help)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].metric == metric)
            v += t[i].count;
    mv_rc rc = header(b, name, "counter", help);
    return rc == MV_OK ? mv_buf_addf(b, "%s %llu\n", name, (unsigned long long)v) : rc;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the one opendir holds */
}

static mv_rc process(mv_buf *b)
{
    mv_rc rc = MV_OK;
    FILE *f = NULL;
    char line[128];
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                     (double)ru.ru_stime.tv_usec / 1e6;
        CHECK(header(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds."));
        CHECK(mv_buf_addf(b, "process_cpu_seconds_total %.6f\n", cpu));
    }
    long pages = 0, rss = 0, page = sysconf(_SC_PAGESIZE);
    f = fopen("/proc/self/statm", "r");
    if (f) {
        char *end = line;
        if (fgets(line, sizeof line, f)) {
            pages = strtol(line, &end, 10);
            rss = strtol(end, &end, 10);
        }
        if (end != line && rss > 0) {
            CHECK(header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."));
            CHECK(mv_buf_addf(b, "process_virtual_memory_bytes %lld\n", (long long)pages * page));
            CHECK(header(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes."));
            CHECK(mv_buf_addf(b, "process_resident_memory_bytes %lld\n", (long long)rss * page));
        }
        fclose(f);
        f = NULL;
    }
    int fds = count_fds();
    if (fds >= 0) {
        CHECK(header(b, "process_open_fds", "gauge", "Number of open file descriptors."));
        CHECK(mv_buf_addf(b, "process_open_fds %d\n", fds));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        CHECK(header(b, "process_max_fds", "gauge", "Maximum number of open file descriptors."));
        CHECK(mv_buf_addf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur));
    }
    CHECK(header(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."));
    CHECK(mv_buf_addf(b, "process_start_time_seconds %lld\n", (long long)g_start_secs));
out:
    if (f)
        fclose(f);
    return rc;
}

__attribute__((constructor)) static void metrics_start_time(void) { g_start_secs = (int64_t)time(NULL); }

mv_rc mv_metrics_render(mv_buf *b)
{
    mv_rc rc = MV_OK;
    struct total *t = NULL;
    size_t n = 0;
    uint64_t dropped = 0;
    CHECK(collect(&t, &n, &dropped));
    CHECK(requests(b, t, n));
    CHECK(counter_family(b, t, n, MV_M_TOKENS_ISSUED, "mivault_tokens_issued_total",
                         "Access tokens issued, by issuer (authority: the token endpoint; imds: the agent).",
                         "issuer", NULL));
    CHECK(counter_family(b, t, n, MV_M_TOKENS_REFUSED, "mivault_tokens_refused_total",
                         "Token requests refused, by issuer and reason (the OAuth error, or the agent's).", "issuer",
                         "reason"));
    CHECK(counter_family(b, t, n, MV_M_CACHE_HITS, "mivault_cache_hits_total", "Cache lookups that hit, by cache.",
                         "cache", NULL));
    CHECK(counter_family(b, t, n, MV_M_CACHE_MISSES, "mivault_cache_misses_total",
                         "Cache lookups that missed, by cache.", "cache", NULL));
    CHECK(cache_ratio(b, t, n));
    CHECK(store_latency(b, t, n));
    CHECK(counter_family(b, t, n, MV_M_STORE_ERRORS, "mivault_store_errors_total",
                         "Store operations that failed, by operation.", "op", NULL));
    CHECK(plain_counter(b, t, n, MV_M_IMDS_THROTTLED, "mivault_imds_throttled_total",
                        "IMDS token requests refused with 429 by the agent's rate limit."));
    CHECK(plain_counter(b, t, n, MV_M_AUDIT_FAILURES, "mivault_audit_write_failures_total",
                        "Audit records that could not be written."));
    CHECK(header(b, "mivault_metrics_series_dropped_total", "counter",
                 "Series not recorded because a thread's metric table was full."));
    CHECK(mv_buf_addf(b, "mivault_metrics_series_dropped_total %llu\n", (unsigned long long)dropped));
    CHECK(process(b));
out:
    free(t);
    return rc;
}
