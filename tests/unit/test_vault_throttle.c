/* test_vault_throttle.c: the vault throttle across servers (vault/throttle.c with a shared
 * store). Each "server" is a forked process with its own connection to one PostgreSQL database
 * (MIVAULT_TEST_PG_URL; skipped without it): together they admit exactly the limit per window,
 * each leasing in blocks; a dry window answers with the seconds to its end; the next window
 * admits again; without its database the throttle fails open. The in-memory path (SQLite, one
 * process) is tested in test_vault_parse.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"
#include "vault/vault_internal.h"

static const char *pg_base;
static char db_name[64], db_url[512];

static void pg_admin(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static int setup(void **state)
{
    (void)state;
    char sql[160];
    const char *hosts = strstr(pg_base, "://");
    const char *slash = strchr(hosts ? hosts + 3 : pg_base, '/');
    const char *query = strchr(pg_base, '?');
    int head = (int)(slash ? slash - pg_base : (query ? query - pg_base : (long)strlen(pg_base)));
    snprintf(db_name, sizeof db_name, "mvthr_%d", (int)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db_name);
    pg_admin(pg_base, sql);
    snprintf(db_url, sizeof db_url, "%.*s/%s%s", head, pg_base, db_name, query ? query : "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
    pg_admin(pg_base, sql);
    return 0;
}

/* A server: its own process and connection; requests until the first 429. Writes the number
 * admitted and the first Retry-After to fd. */
static void server(int fd, const char *vault, int is_create, int limit, int64_t t)
{
    struct store *st = NULL;
    int32_t out[2] = {0, 0};
    if (store_open(db_url, &st) != MV_OK)
        _exit(1);
    for (int i = 0; i < 10 * limit && out[1] == 0; i++) {
        int retry = vault_throttle(st, vault, is_create, is_create ? 1000 : limit,
                                   is_create ? limit : 1000, t);
        if (retry == 0)
            out[0]++;
        else
            out[1] = retry;
    }
    store_close(st);
    _exit(write(fd, out, sizeof out) == (ssize_t)sizeof out ? 0 : 2);
}

/* Runs KIDS servers at once; returns the total admitted; every one ended on a 429 with want. */
static int servers(const char *vault, int is_create, int limit, int64_t t, int want_retry)
{
    enum { KIDS = 3 };
    int fds[KIDS][2], total = 0;
    pid_t pids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            server(fds[i][1], vault, is_create, limit, t);
        close(fds[i][1]);
    }
    for (int i = 0; i < KIDS; i++) {
        int32_t in[2] = {0, 0};
        int status = 0;
        assert_int_equal(read(fds[i][0], in, sizeof in), (ssize_t)sizeof in);
        close(fds[i][0]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(in[1], want_retry);
        total += in[0];
    }
    return total;
}

static int64_t used(const char *vault, int kind, int64_t window)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT used FROM quota_leases WHERE vault = '%s' AND kind = %d AND window_start = %lld",
             vault, kind, (long long)window);
    PGconn *c = PQconnectdb(db_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    int64_t v = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The regression this guards: each server used to admit the whole limit on its own. */
static void test_servers_together_admit_the_limit_once(void **state)
{
    (void)state;
    struct store *st = NULL;
    assert_int_equal(store_open(db_url, &st), MV_OK); /* creates the schema before the race */
    assert_int_equal(store_shared(st), 1);
    store_close(st);
    const int64_t t = 1700000003; /* window [1700000000, 1700000010) */
    assert_int_equal(vault_throttle_block(400), 8); /* 50 leases of 8 among three servers */
    assert_int_equal(servers("dev", 0, 400, t, 7), 400);
    assert_int_equal(used("dev", ST_QUOTA_OPS, 1700000000), 400);
    assert_int_equal(servers("dev", 1, 57, t + 5, 2), 57); /* creates: their own count */
    assert_int_equal(servers("dev", 0, 400, t + 10, 7), 400); /* the next window */
    assert_int_equal(servers("other", 0, 400, t + 10, 7), 400); /* per vault */
}

/* With its connection gone the throttle lets requests through rather than wait (fail open). */
static void test_fails_open_without_its_database(void **state)
{
    (void)state;
    struct store *st = NULL;
    char sql[256];
    const int64_t t = 1700000103;
    assert_int_equal(store_open(db_url, &st), MV_OK);
    assert_int_equal(vault_throttle(st, "open", 0, 2, 2, t), 0);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
             db_name);
    pg_admin(pg_base, sql);
    int64_t t0 = mv_now_ms();
    for (int i = 0; i < 6; i++)
        assert_int_equal(vault_throttle(st, "open", 0, 2, 2, t), 0);
    assert_true(mv_now_ms() - t0 < 2000);
    struct st_vault v;
    assert_int_equal(store_vault_get(st, "nothing", &v), MV_ERR_NOT_FOUND); /* reconnects */
    assert_int_equal(vault_throttle(st, "open", 0, 2, 2, t + 10), 0);
    assert_int_equal(vault_throttle(st, "open", 0, 2, 2, t + 10), 0);
    assert_int_equal(vault_throttle(st, "open", 0, 2, 2, t + 10), 10 - 3);
    store_close(st);
}

int main(void)
{
    mv_log_set_level(MV_LOG_ERROR);
    pg_base = getenv("MIVAULT_TEST_PG_URL");
    if (!pg_base || !*pg_base) {
        printf("vault throttle across servers: skipped (MIVAULT_TEST_PG_URL not set)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_servers_together_admit_the_limit_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fails_open_without_its_database, setup, teardown),
    };
    return cmocka_run_group_tests_name("vault throttle across servers", tests, NULL, NULL);
}
