/* test_snapshot.c: the per-iteration read snapshot (store/snapshot.h) sees a consistent view
 * while open, is ended by its event within the same loop iteration, and can be left early. */
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/snapshot.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/mv-snap.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void meta_is(struct store *st, const char *want)
{
    mv_buf b;
    mv_buf_init(&b, 256);
    assert_int_equal(store_meta_get(st, "k", &b), MV_OK);
    assert_string_equal(b.p, want);
    mv_buf_free(&b);
}

static void test_snapshot_isolates_until_the_iteration_ends(void **state)
{
    (void)state;
    struct store *a = NULL, *b = NULL;
    struct store_snapshot *snap = NULL;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(store_open(path, &a), MV_OK);
    assert_int_equal(store_open(path, &b), MV_OK);
    assert_int_equal(store_meta_set(b, "k", "one"), MV_OK);
    assert_int_equal(store_snapshot_new(a, base, &snap), MV_OK);

    store_snapshot_enter(snap);
    meta_is(a, "one");
    assert_int_equal(store_meta_set(b, "k", "two"), MV_OK);
    meta_is(a, "one"); /* same snapshot while the iteration lasts */
    store_snapshot_enter(snap); /* already open: no-op */
    meta_is(a, "one");
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0); /* the iteration ends */
    meta_is(a, "two");

    store_snapshot_enter(snap);
    meta_is(a, "two"); /* SQLite takes the snapshot at the first read after BEGIN */
    assert_int_equal(store_meta_set(b, "k", "three"), MV_OK);
    meta_is(a, "two");
    store_snapshot_leave(snap); /* before a write on a */
    assert_int_equal(store_meta_set(a, "k", "four"), MV_OK);
    meta_is(b, "four");
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0); /* the pending end is a no-op */
    meta_is(a, "four");

    store_snapshot_enter(snap);
    store_snapshot_free(snap); /* ends an open snapshot */
    assert_int_equal(store_meta_set(a, "k", "five"), MV_OK);
    store_close(a);
    store_close(b);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_isolates_until_the_iteration_ends, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
