/* test_wipe.c: memory that held secrets is wiped before it is freed (issue 8 point 9).
 *
 * OpenSSL's allocator is replaced (CRYPTO_set_mem_functions, before anything else allocates)
 * by hooks that pass through to libc but look at every block handed back: a block freed with a
 * marker still in it, or a watched block moved by a plain realloc (which frees the old block
 * unwiped inside libc), counts as a leak. A buffer that grew with libc's realloc never reaches
 * the hooks at all, which the tests catch by counting the frees they saw. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "http/kv.h"

#define MARK "S3CR3T-MARK"

static size_t frees_seen, frees_leaking, reallocs_seen;

static int holds_mark(const void *p, size_t n)
{
    return n >= sizeof MARK - 1 && memmem(p, n, MARK, sizeof MARK - 1) != NULL;
}

static void *hook_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return malloc(n);
}

static void *hook_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    /* A plain realloc of a block holding the mark leaves the old copy in freed heap. */
    if (p && holds_mark(p, malloc_usable_size(p)))
        frees_leaking++;
    reallocs_seen++;
    return realloc(p, n);
}

static void hook_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (!p)
        return;
    frees_seen++;
    if (holds_mark(p, malloc_usable_size(p)))
        frees_leaking++;
    free(p);
}

static void reset_counts(void) { frees_seen = frees_leaking = reallocs_seen = 0; }

static void test_buf_growth_wipes_each_old_block(void **state)
{
    (void)state;
    mv_buf b;
    mv_buf_init(&b, 1 << 20);
    reset_counts();
    /* From 64 bytes to 64 KiB: ten growths, each leaving a block full of marks behind. */
    for (int i = 0; i < 6000; i++)
        assert_int_equal(mv_buf_add(&b, MARK, sizeof MARK - 1), MV_OK);
    assert_true(b.cap >= 6000 * (sizeof MARK - 1));
    assert_true(frees_seen >= 9);   /* every old block went back through the allocator hooks */
    assert_int_equal(frees_leaking, 0);
    assert_int_equal(reallocs_seen, 0);
    mv_buf_free_secret(&b);
}

static void test_buf_addf_growth_wipes(void **state)
{
    (void)state;
    mv_buf b;
    mv_buf_init(&b, 1 << 16);
    reset_counts();
    for (int i = 0; i < 300; i++)
        assert_int_equal(mv_buf_addf(&b, "%s-%d,", MARK, i), MV_OK);
    assert_true(frees_seen >= 5);
    assert_int_equal(frees_leaking, 0);
    mv_buf_free_secret(&b);
}

static void test_kv_free_wipes_values(void **state)
{
    (void)state;
    static const char form[] = "grant_type=client_credentials&client_assertion=eyJ." MARK
                               ".sig&resource=https%3A%2F%2Fvault.azure.net";
    kv_list l;
    assert_int_equal(kv_parse(form, sizeof form - 1, &l), MV_OK);
    assert_non_null(strstr(kv_get(&l, "client_assertion"), MARK));
    reset_counts();
    kv_free(&l);
    assert_int_equal(frees_seen, 6); /* three names and three values */
    assert_int_equal(frees_leaking, 0);
}

static void test_kv_refused_input_wiped(void **state)
{
    (void)state;
    static const char form[] = "client_assertion=" MARK "%zz";
    kv_list l;
    reset_counts();
    assert_int_equal(kv_parse(form, sizeof form - 1, &l), MV_ERR_BAD_REQUEST);
    assert_true(frees_seen >= 1);
    assert_int_equal(frees_leaking, 0);
}

int main(void)
{
    /* Must come first: OpenSSL refuses new functions once it has allocated anything. */
    if (!CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_growth_wipes_each_old_block),
        cmocka_unit_test(test_buf_addf_growth_wipes),
        cmocka_unit_test(test_kv_free_wipes_values),
        cmocka_unit_test(test_kv_refused_input_wiped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
