/* test_addr.c: listen addresses and public URLs (src/common/addr.c), including every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/addr.h"

static void test_listen_forms(void **state)
{
    (void)state;
    struct mv_listen l;
    assert_int_equal(mv_parse_listen("127.0.0.1:8443", &l), MV_OK);
    assert_string_equal(l.host, "127.0.0.1");
    assert_int_equal(l.port, 8443);
    assert_int_equal(mv_parse_listen("[::1]:9000", &l), MV_OK);
    assert_string_equal(l.host, "::1");
    assert_int_equal(l.port, 9000);
    assert_int_equal(mv_parse_listen("0.0.0.0:0", &l), MV_OK);
    assert_int_equal(l.port, 0);
    assert_int_equal(mv_parse_listen("localhost:1", &l), MV_OK);
    assert_string_equal(l.host, "localhost");
}

static void test_listen_refusals(void **state)
{
    (void)state;
    static const char *bad[] = {"", "8443", "127.0.0.1", "127.0.0.1:", ":8443", "127.0.0.1:x",
                                "127.0.0.1:65536", "127.0.0.1:-1", "::1:8443", "[::1]", "[::1]8443",
                                "[::1:8443", "[]:1", "[zz]:1", "a b:1", "127.0.0.1:123456"};
    struct mv_listen l;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(mv_parse_listen(bad[i], &l), MV_ERR_BAD_REQUEST);
    assert_int_equal(mv_parse_listen(NULL, &l), MV_ERR_BAD_REQUEST);
}

static void test_public_url_forms(void **state)
{
    (void)state;
    struct mv_public_url u;
    assert_int_equal(mv_parse_public_url("https://mv.example.test:8443", &u), MV_OK);
    assert_string_equal(u.url, "https://mv.example.test:8443");
    assert_string_equal(u.host, "mv.example.test");
    assert_int_equal(u.port, 8443);
    assert_int_equal(u.is_ip, 0);
    /* Normalised: lower case, 443 left out, one trailing slash accepted. */
    assert_int_equal(mv_parse_public_url("https://MV.Example.TEST:443/", &u), MV_OK);
    assert_string_equal(u.url, "https://mv.example.test");
    assert_int_equal(u.port, 443);
    assert_int_equal(mv_parse_public_url("https://10.0.0.5", &u), MV_OK);
    assert_string_equal(u.url, "https://10.0.0.5");
    assert_int_equal(u.is_ip, 1);
    assert_int_equal(mv_parse_public_url("https://[::1]:8443", &u), MV_OK);
    assert_string_equal(u.url, "https://[::1]:8443");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.is_ip, 1);
}

static void test_public_url_refusals(void **state)
{
    (void)state;
    static const char *bad[] = {"", "mv.test", "http://mv.test", "HTTPS://mv.test", "https://",
                                "https://:8443", "https://mv.test:0", "https://mv.test:65536",
                                "https://mv.test:x", "https://mv.test/path", "https://mv.test?q=1",
                                "https://mv.test#f", "https://user@mv.test", "https://::1:8443",
                                "https://[::1", "https://[nope]:1", "https://mv_test",
                                "https://-mv.test", "https://mv..test", "https://mv.test.",
                                "https://*.mv.test", "https://mv.test,DNS:evil", "https://mv.test//"};
    struct mv_public_url u;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(mv_parse_public_url(bad[i], &u), MV_ERR_BAD_REQUEST);
    assert_int_equal(mv_parse_public_url(NULL, &u), MV_ERR_BAD_REQUEST);
}

static void test_origin(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(mv_https_origin("vault.localhost", 8443, out, sizeof out), MV_OK);
    assert_string_equal(out, "https://vault.localhost:8443");
    assert_int_equal(mv_https_origin("vault.localhost", 443, out, sizeof out), MV_OK);
    assert_string_equal(out, "https://vault.localhost");
    assert_int_equal(mv_https_origin("fe80::1", 1, out, sizeof out), MV_OK);
    assert_string_equal(out, "https://[fe80::1]:1");
    assert_int_not_equal(mv_https_origin("vault.localhost", 8443, out, 8), MV_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_listen_refusals),
        cmocka_unit_test(test_public_url_forms),
        cmocka_unit_test(test_public_url_refusals),
        cmocka_unit_test(test_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
