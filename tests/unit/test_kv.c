/* test_kv.c: form/query decoding (http/kv.h), including every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "http/kv.h"

static mv_rc parse_str(const char *s, kv_list *l) { return kv_parse(s, strlen(s), l); }

static void test_basic_pairs(void **state)
{
    (void)state;
    kv_list l;
    assert_int_equal(parse_str("api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", &l),
                     MV_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.has_dup, 0);
    assert_string_equal(kv_get(&l, "api-version"), "2018-02-01");
    assert_string_equal(kv_get(&l, "resource"), "https://vault.azure.net");
    assert_null(kv_get(&l, "client_id"));
    kv_free(&l);
    assert_int_equal(l.n, 0);
}

static void test_plus_and_escapes(void **state)
{
    (void)state;
    kv_list l;
    assert_int_equal(parse_str("a+b=c+d%2Be&x=%41%62%7e&u=%C3%A9", &l), MV_OK);
    assert_string_equal(kv_get(&l, "a b"), "c d+e");
    assert_string_equal(kv_get(&l, "x"), "Ab~");
    assert_string_equal(kv_get(&l, "u"), "\xc3\xa9");
    kv_free(&l);
}

static void test_empty_and_valueless(void **state)
{
    (void)state;
    kv_list l;
    assert_int_equal(parse_str("", &l), MV_OK);
    assert_int_equal(l.n, 0);
    kv_free(&l);

    assert_int_equal(parse_str("&&a=1&&flag&&&b=&", &l), MV_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(kv_get(&l, "a"), "1");
    assert_string_equal(kv_get(&l, "flag"), "");
    assert_string_equal(kv_get(&l, "b"), "");
    kv_free(&l);

    /* only the first '=' splits */
    assert_int_equal(parse_str("k=a=b", &l), MV_OK);
    assert_string_equal(kv_get(&l, "k"), "a=b");
    kv_free(&l);
}

static void test_bad_escapes_refused(void **state)
{
    (void)state;
    static const char *bad[] = {"a=%zz", "a=%4", "a=%", "a%=1", "%g1=x", "a=%4g", "a=1&b=%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_list l;
        assert_int_equal(parse_str(bad[i], &l), MV_ERR_BAD_REQUEST);
        assert_int_equal(l.n, 0); /* nothing half-parsed left behind */
    }
}

static void test_nul_refused(void **state)
{
    (void)state;
    kv_list l;
    assert_int_equal(parse_str("a=%00", &l), MV_ERR_BAD_REQUEST);
    assert_int_equal(parse_str("%00=1", &l), MV_ERR_BAD_REQUEST);
    /* a raw NUL inside the given length */
    static const char raw[] = "a=x\0y&b=2";
    assert_int_equal(kv_parse(raw, sizeof raw - 1, &l), MV_ERR_BAD_REQUEST);
    assert_int_equal(l.n, 0);
}

static void test_length_respected(void **state)
{
    (void)state;
    kv_list l;
    /* only the first len bytes are parsed */
    assert_int_equal(kv_parse("a=1&b=2", 3, &l), MV_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(kv_get(&l, "a"), "1");
    assert_null(kv_get(&l, "b"));
    kv_free(&l);
    /* an escape cut by len is truncated, not read past len */
    assert_int_equal(kv_parse("a=%41", 4, &l), MV_ERR_BAD_REQUEST);
}

static void test_duplicates_flagged(void **state)
{
    (void)state;
    kv_list l;
    assert_int_equal(parse_str("resource=a&api-version=1&resource=b", &l), MV_OK);
    assert_int_equal(l.has_dup, 1);
    assert_string_equal(kv_get(&l, "resource"), "a"); /* first one wins for lookups */
    kv_free(&l);
    /* the same name spelled with an escape is the same name */
    assert_int_equal(parse_str("x=1&%78=2", &l), MV_OK);
    assert_int_equal(l.has_dup, 1);
    kv_free(&l);
    /* different case is a different name for has_dup */
    assert_int_equal(parse_str("x=1&X=2", &l), MV_OK);
    assert_int_equal(l.has_dup, 0);
    kv_free(&l);
}

static void test_limit(void **state)
{
    (void)state;
    char s[1024];
    size_t off = 0;
    for (int i = 0; i < MV_KV_MAX; i++) {
        int n = snprintf(s + off, sizeof s - off, "%sk%d=v", i ? "&" : "", i);
        assert_true(n > 0 && (size_t)n < sizeof s - off);
        off += (size_t)n;
    }
    kv_list l;
    assert_int_equal(kv_parse(s, off, &l), MV_OK);
    assert_int_equal(l.n, MV_KV_MAX);
    assert_string_equal(kv_get(&l, "k31"), "v");
    kv_free(&l);
    /* one more pair is over the limit; empty sequences do not count */
    int n = snprintf(s + off, sizeof s - off, "&&&");
    assert_int_equal(kv_parse(s, off + (size_t)n, &l), MV_OK);
    kv_free(&l);
    n = snprintf(s + off, sizeof s - off, "&one=more");
    assert_int_equal(kv_parse(s, off + (size_t)n, &l), MV_ERR_LIMIT);
    assert_int_equal(l.n, 0);
}

static void test_get_ci(void **state)
{
    (void)state;
    kv_list l;
    assert_int_equal(parse_str("MaxResults=5&%24SkipToken=abc", &l), MV_OK);
    assert_null(kv_get(&l, "maxresults"));
    assert_string_equal(kv_get_ci(&l, "maxresults"), "5");
    assert_string_equal(kv_get_ci(&l, "$skiptoken"), "abc");
    assert_null(kv_get_ci(&l, "maxresult"));
    kv_free(&l);
}

static void test_escape(void **state)
{
    (void)state;
    mv_buf b;
    mv_buf_init(&b, 1024);
    assert_int_equal(kv_escape("https://vault.azure.net/.default", &b), MV_OK);
    assert_string_equal(b.p, "https%3A%2F%2Fvault.azure.net%2F.default");
    mv_buf_reset(&b);
    assert_int_equal(kv_escape("aZ09-._~ +&=%\xc3\xa9", &b), MV_OK);
    assert_string_equal(b.p, "aZ09-._~%20%2B%26%3D%25%C3%A9");

    /* round trip through the decoder, every byte value but NUL */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    mv_buf q;
    mv_buf_init(&q, 4096);
    assert_int_equal(mv_buf_adds(&q, "v="), MV_OK);
    assert_int_equal(kv_escape(all, &q), MV_OK);
    kv_list l;
    assert_int_equal(kv_parse(q.p, q.len, &l), MV_OK);
    assert_memory_equal(kv_get(&l, "v"), all, 256);
    kv_free(&l);
    mv_buf_free(&q);

    /* the cap holds: appending past it fails */
    mv_buf small;
    mv_buf_init(&small, 5);
    assert_int_equal(kv_escape("abc", &small), MV_OK);
    assert_int_equal(kv_escape("/", &small), MV_ERR_LIMIT);
    mv_buf_free(&small);
    mv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_pairs),       cmocka_unit_test(test_plus_and_escapes),
        cmocka_unit_test(test_empty_and_valueless), cmocka_unit_test(test_bad_escapes_refused),
        cmocka_unit_test(test_nul_refused),       cmocka_unit_test(test_length_respected),
        cmocka_unit_test(test_duplicates_flagged), cmocka_unit_test(test_limit),
        cmocka_unit_test(test_get_ci),            cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
