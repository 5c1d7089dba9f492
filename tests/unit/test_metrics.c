/* test_metrics.c: common/metrics.c: per-thread recording summed at scrape (threads that record
 * at once lose nothing), the Prometheus text it renders (families, labels, cumulative buckets,
 * the ratio gauge), and label identity by text, not by pointer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        mv_metric_request("vault", "secrets/{n}", "GET", 200, 300000); /* 0.3 ms */
        mv_metric_inc(MV_M_CACHE_HITS, "unit_cache", NULL);
    }
    mv_metric_inc(MV_M_CACHE_MISSES, "unit_cache", NULL);
    return NULL;
}

/* The value of the exact series line "name{labels} " in text, or -1. */
static double value_of(const char *text, const char *series)
{
    char key[512];
    snprintf(key, sizeof key, "\n%s ", series);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

static void test_threads_sum_at_scrape(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* a label with the same text at another address is the same series */
    static char other_route[] = "secrets/{n}"; /* labels live as long as the process */
    mv_metric_request("vault", other_route, "GET", 200, 2000000000); /* 2 s */
    mv_buf b;
    mv_buf_init(&b, 1 << 20);
    assert_int_equal(mv_metrics_render(&b), MV_OK);
    assert_int_equal(mv_buf_add(&b, "", 1), MV_OK);
    const char *text = b.p;
    const double n = THREADS * PER_THREAD;
    assert_true(value_of(text, "mivault_http_requests_total{plane=\"vault\",route=\"secrets/{n}\",method=\"GET\","
                               "status=\"200\"}") == n + 1);
    assert_true(value_of(text, "mivault_http_request_duration_seconds_bucket{plane=\"vault\",route=\"secrets/{n}\","
                               "le=\"0.00025\"}") == 0);
    assert_true(value_of(text, "mivault_http_request_duration_seconds_bucket{plane=\"vault\",route=\"secrets/{n}\","
                               "le=\"0.0005\"}") == n);
    assert_true(value_of(text, "mivault_http_request_duration_seconds_bucket{plane=\"vault\",route=\"secrets/{n}\","
                               "le=\"1\"}") == n);
    assert_true(value_of(text, "mivault_http_request_duration_seconds_bucket{plane=\"vault\",route=\"secrets/{n}\","
                               "le=\"+Inf\"}") == n + 1);
    assert_true(value_of(text, "mivault_http_request_duration_seconds_count{plane=\"vault\",route=\"secrets/{n}\"}") ==
                n + 1);
    double sum = value_of(text, "mivault_http_request_duration_seconds_sum{plane=\"vault\",route=\"secrets/{n}\"}");
    assert_true(sum > n * 0.0003 + 1.999 && sum < n * 0.0003 + 2.001);
    assert_true(value_of(text, "mivault_cache_hits_total{cache=\"unit_cache\"}") == n);
    assert_true(value_of(text, "mivault_cache_misses_total{cache=\"unit_cache\"}") == THREADS);
    double ratio = value_of(text, "mivault_cache_hit_ratio{cache=\"unit_cache\"}");
    assert_true(ratio > n / (n + THREADS) - 1e-6 && ratio < n / (n + THREADS) + 1e-6);
    /* always present, at 0 */
    assert_true(value_of(text, "mivault_imds_throttled_total") == 0);
    assert_true(value_of(text, "mivault_audit_write_failures_total") == 0);
    assert_true(value_of(text, "mivault_metrics_series_dropped_total") == 0);
    assert_non_null(strstr(text, "# TYPE mivault_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_true(value_of(text, "process_resident_memory_bytes") > 0);
    mv_buf_free(&b);
}

static void test_full_table_drops_and_counts(void **state)
{
    (void)state;
    /* distinct label pointers on this thread: more than a table holds */
    static char labels[600][16];
    for (int i = 0; i < 600; i++) {
        snprintf(labels[i], sizeof labels[i], "l%d", i);
        mv_metric_inc(MV_M_STORE_ERRORS, labels[i], NULL);
    }
    mv_buf b;
    mv_buf_init(&b, 1 << 22);
    assert_int_equal(mv_metrics_render(&b), MV_OK);
    assert_int_equal(mv_buf_add(&b, "", 1), MV_OK);
    assert_true(value_of(b.p, "mivault_metrics_series_dropped_total") > 0);
    assert_true(value_of(b.p, "mivault_store_errors_total{op=\"l0\"}") == 1);
    mv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_sum_at_scrape),
        cmocka_unit_test(test_full_table_drops_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
