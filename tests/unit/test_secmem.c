/* test_secmem.c: key memory is left out of core dumps, and processes are made non-dumpable
 * (issue 8 point 8). The kernel's view is read back: /proc/self/smaps "VmFlags: dd" for the
 * pages, PR_GET_DUMPABLE and RLIMIT_CORE for the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "common/secmem.h"

/* 1 if the mapping holding p has the "dd" (do not dump) VmFlag, 0 if not, -1 if not found. */
static int dontdump(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0, found = -1;
    uintptr_t a = (uintptr_t)p;
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char *end;
        lo = strtoul(line, &end, 16);
        if (*end == '-' && (hi = strtoul(end + 1, &end, 16), *end == ' ')) {
            in = a >= lo && a < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " dd") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

static void test_secmem_pages_not_dumped(void **state)
{
    (void)state;
    unsigned char *k = mv_secmem_alloc(32);
    assert_non_null(k);
    for (int i = 0; i < 32; i++)
        assert_int_equal(k[i], 0);
    memset(k, 0xa5, 32);
    assert_int_equal(dontdump(k), 1);
    mv_secmem_free(k, 32);
    /* a larger object (the server's state) spans pages: all of them */
    size_t n = 3 * 4096 + 17;
    unsigned char *big = mv_secmem_alloc(n);
    assert_non_null(big);
    assert_int_equal(dontdump(big), 1);
    assert_int_equal(dontdump(big + n - 1), 1);
    mv_secmem_free(big, n);
    /* and an ordinary heap block is dumped: the check can tell */
    void *plain = malloc(64);
    assert_int_equal(dontdump(plain), 0);
    free(plain);
}

static void test_debug_flag_keeps_core_dumps(void **state)
{
    (void)state;
    setenv(MV_CORE_DUMPS_ENV, "1", 1);
    assert_int_equal(mv_protect_process(), MV_OK);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    unsetenv(MV_CORE_DUMPS_ENV);
}

static void test_daemon_not_dumpable_and_openssl_keys_not_dumped(void **state)
{
    (void)state;
    struct rlimit r;
    assert_int_equal(mv_protect_daemon(), MV_OK);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    assert_int_equal(getrlimit(RLIMIT_CORE, &r), 0);
    assert_int_equal(r.rlim_cur, 0);
    assert_int_equal(r.rlim_max, 0);
    /* OpenSSL's private-key numbers go to its secure heap: not dumped either */
    assert_true(CRYPTO_secure_malloc_initialized());
    void *s = OPENSSL_secure_malloc(64);
    assert_non_null(s);
    assert_true(CRYPTO_secure_allocated(s));
    assert_int_equal(dontdump(s), 1);
    OPENSSL_secure_clear_free(s, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secmem_pages_not_dumped),
        cmocka_unit_test(test_debug_flag_keeps_core_dumps),
        cmocka_unit_test(test_daemon_not_dumpable_and_openssl_keys_not_dumped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
