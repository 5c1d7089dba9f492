/* test_vault_parse.c: the pure parts of the vault data plane (src/vault/vault_internal.h):
 * api-version allowlist, names and versions, maxresults, $skiptoken, set/update bodies,
 * response shapes and recoveryLevel, host matching, the throttle window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/b64.h"
#include "crypto/aead.h"
#include "vault/vault_internal.h"

/* Copies a literal into a fixed field (tests only use short literals). */
static void set(char *dst, size_t n, const char *src) { assert_int_equal(mv_copy(dst, n, src), MV_OK); }

/* ---- api-version ---- */

static void test_api_versions(void **state)
{
    (void)state;
    const char *good[] = {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5",
                          "7.6", "2025-07-01", "7.6-preview.2", "7.5-preview.1",
                          "7.4-preview.1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(vault_api_version_ok(good[i]));
    const char *bad[] = {"", "7", "7.7", "8.0", "7.3 ", " 7.3", "2025-07-02", "7.6-preview.1",
                         "2016-10-01x", "latest"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(vault_api_version_ok(bad[i]));
    assert_false(vault_api_version_ok(NULL));
}

/* ---- names, versions ---- */

static void test_names(void **state)
{
    (void)state;
    char n127[128], n128[129];
    memset(n127, 'a', 127);
    n127[127] = '\0';
    memset(n128, 'a', 128);
    n128[128] = '\0';
    assert_true(vault_name_ok("a"));
    assert_true(vault_name_ok("My-Secret-01"));
    assert_true(vault_name_ok("0-starts-with-digit"));
    assert_true(vault_name_ok(n127));
    assert_false(vault_name_ok(n128));
    assert_false(vault_name_ok(""));
    assert_false(vault_name_ok(NULL));
    assert_false(vault_name_ok("a_b"));
    assert_false(vault_name_ok("a.b"));
    assert_false(vault_name_ok("a/b"));
    assert_false(vault_name_ok("a b"));
    assert_false(vault_name_ok("caf\xc3\xa9"));
    assert_false(vault_name_ok("..\\x"));
}

static void test_versions(void **state)
{
    (void)state;
    assert_true(vault_version_ok(""));
    assert_true(vault_version_ok("03bcccc7c8cf4546a0e3e21e52560441"));
    assert_true(vault_version_ok("ABC123"));
    assert_false(vault_version_ok("03bcccc7c8cf4546a0e3e21e525604410")); /* 33 */
    assert_false(vault_version_ok("a-b"));
    assert_false(vault_version_ok("a/b"));
    assert_false(vault_version_ok(NULL));
}

static void test_aad_is_lower_case(void **state)
{
    (void)state;
    char aad[256];
    assert_int_equal(vault_secret_aad("Dev", "My-Secret", "ABCdef", aad, sizeof aad), MV_OK);
    assert_string_equal(aad, "secret:dev/my-secret/abcdef");
    char small[8];
    assert_int_equal(vault_secret_aad("dev", "x", "y", small, sizeof small), MV_ERR_LIMIT);
}

/* ---- maxresults ---- */

static void test_maxresults(void **state)
{
    (void)state;
    size_t n = 0;
    assert_int_equal(vault_parse_maxresults(NULL, &n), MV_OK);
    assert_int_equal(n, MV_LIST_DEFAULT_PAGE);
    assert_int_equal(vault_parse_maxresults("1", &n), MV_OK);
    assert_int_equal(n, 1);
    assert_int_equal(vault_parse_maxresults("25", &n), MV_OK);
    assert_int_equal(n, 25);
    const char *bad[] = {"0", "26", "-1", "+5", " 5", "5 ", "abc", "5x", "", "99999999999999999999",
                         "0x10", "1e1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_not_equal(vault_parse_maxresults(bad[i], &n), MV_OK);
}

/* ---- $skiptoken ---- */

static void test_skiptoken_round_trip(void **state)
{
    (void)state;
    const char *keys[] = {"a", "My-Secret", "03bcccc7c8cf4546a0e3e21e52560441"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        mv_buf b;
        mv_buf_init(&b, 512);
        char out[MV_SECRET_MAX_NAME + 1];
        assert_int_equal(vault_skiptoken_encode(keys[i], &b), MV_OK);
        assert_null(strchr(b.p, '=')); /* unpadded base64url: safe in a query */
        assert_null(strchr(b.p, '+'));
        assert_null(strchr(b.p, '/'));
        assert_int_equal(vault_skiptoken_decode(b.p, out, sizeof out), MV_OK);
        assert_string_equal(out, keys[i]);
        mv_buf_free(&b);
    }
    char n127[128];
    memset(n127, 'z', 127);
    n127[127] = '\0';
    mv_buf b;
    mv_buf_init(&b, 512);
    char out[MV_SECRET_MAX_NAME + 1];
    assert_int_equal(vault_skiptoken_encode(n127, &b), MV_OK);
    assert_int_equal(vault_skiptoken_decode(b.p, out, sizeof out), MV_OK);
    assert_string_equal(out, n127);
    mv_buf_free(&b);
}

static void test_skiptoken_rejects(void **state)
{
    (void)state;
    char out[MV_SECRET_MAX_NAME + 1];
    mv_buf b;
    assert_int_not_equal(vault_skiptoken_decode("", out, sizeof out), MV_OK);
    assert_int_not_equal(vault_skiptoken_decode(NULL, out, sizeof out), MV_OK);
    assert_int_not_equal(vault_skiptoken_decode("!!!!", out, sizeof out), MV_OK);
    assert_int_not_equal(vault_skiptoken_decode("a", out, sizeof out), MV_OK); /* dangling */
    /* decodes fine, but to something that is not a name */
    mv_buf_init(&b, 64);
    assert_int_equal(b64url_encode(&b, "a/../b", 6), MV_OK);
    assert_int_not_equal(vault_skiptoken_decode(b.p, out, sizeof out), MV_OK);
    mv_buf_free(&b);
    mv_buf_init(&b, 64);
    assert_int_equal(b64url_encode(&b, "a\0b", 3), MV_OK);
    assert_int_not_equal(vault_skiptoken_decode(b.p, out, sizeof out), MV_OK);
    mv_buf_free(&b);
    /* 128 characters: one too many */
    char n128[129];
    memset(n128, 'q', 128);
    n128[128] = '\0';
    mv_buf_init(&b, 512);
    assert_int_equal(b64url_encode(&b, n128, 128), MV_OK);
    assert_int_not_equal(vault_skiptoken_decode(b.p, out, sizeof out), MV_OK);
    mv_buf_free(&b);
}

/* ---- set / update bodies ---- */

static mv_rc parse(const char *body, int require_value, struct vault_secret_input *in,
                   const char **why)
{
    return vault_parse_secret_body(body, strlen(body), require_value, in, why);
}

static void expect_bad(const char *body, int require_value)
{
    struct vault_secret_input in;
    const char *why = NULL;
    mv_rc rc = parse(body, require_value, &in, &why);
    if (rc == MV_OK)
        fail_msg("accepted: %s", body);
    assert_int_equal(rc, MV_ERR_BAD_REQUEST);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    vault_secret_input_free(&in);
}

static void test_body_full(void **state)
{
    (void)state;
    struct vault_secret_input in;
    const char *why = "x";
    const char *body = "{\"value\":\"s3cr\\\"et\",\"contentType\":\"text/plain\","
                       "\"tags\":{\"env\":\"dev\",\"team\":\"a\"},"
                       "\"attributes\":{\"enabled\":false,\"nbf\":1700000000,\"exp\":1800000000,"
                       "\"created\":1,\"recoveryLevel\":\"x\"},\"unknown\":[1,2]}";
    assert_int_equal(parse(body, 1, &in, &why), MV_OK);
    assert_null(why);
    assert_int_equal(in.value_len, 7);
    assert_memory_equal(in.value, "s3cr\"et", 7);
    assert_string_equal(in.content_type, "text/plain");
    assert_true(in.has_tags);
    json_error_t jerr;
    json_t *tags = json_loads(in.tags_json, 0, &jerr);
    assert_non_null(tags);
    assert_int_equal(json_object_size(tags), 2);
    assert_string_equal(json_string_value(json_object_get(tags, "env")), "dev");
    json_decref(tags);
    assert_true(in.has_enabled);
    assert_false(in.enabled);
    assert_true(in.has_nbf);
    assert_true(in.nbf == 1700000000);
    assert_true(in.has_exp);
    assert_true(in.exp == 1800000000);
    vault_secret_input_free(&in);
    assert_null(in.root);
}

static void test_body_minimal_and_nulls(void **state)
{
    (void)state;
    struct vault_secret_input in;
    const char *why = NULL;
    assert_int_equal(parse("{\"value\":\"\"}", 1, &in, &why), MV_OK);
    assert_int_equal(in.value_len, 0);
    assert_null(in.content_type);
    assert_false(in.has_tags);
    assert_false(in.has_enabled);
    vault_secret_input_free(&in);
    /* unset optionals serialised as null are absent */
    assert_int_equal(parse("{\"value\":\"v\",\"contentType\":null,\"tags\":null,"
                           "\"attributes\":{\"enabled\":null,\"nbf\":null}}",
                           1, &in, &why),
                     MV_OK);
    assert_null(in.content_type);
    assert_false(in.has_tags);
    assert_false(in.has_enabled);
    assert_false(in.has_nbf);
    vault_secret_input_free(&in);
    /* update bodies need no value, and ignore one */
    assert_int_equal(parse("{\"attributes\":{\"enabled\":true}}", 0, &in, &why), MV_OK);
    assert_null(in.value);
    assert_true(in.has_enabled && in.enabled);
    vault_secret_input_free(&in);
    assert_int_equal(parse("{}", 0, &in, &why), MV_OK);
    vault_secret_input_free(&in);
}

static void test_body_value_rules(void **state)
{
    (void)state;
    expect_bad("{}", 1);
    expect_bad("{\"contentType\":\"x\"}", 1);
    expect_bad("{\"value\":null}", 1);
    expect_bad("{\"value\":42}", 1);
    expect_bad("{\"value\":true}", 1);
    expect_bad("{\"value\":[\"a\"]}", 1);
    expect_bad("{\"value\":{\"a\":\"b\"}}", 1);
    expect_bad("{\"value\":\"a\\u0000b\"}", 1); /* NUL refused by the parser */
}

static char *body_with_value(size_t n)
{
    char *b = malloc(n + 16);
    assert_non_null(b);
    memcpy(b, "{\"value\":\"", 10);
    memset(b + 10, 'x', n);
    memcpy(b + 10 + n, "\"}", 3);
    return b;
}

static void test_body_value_size(void **state)
{
    (void)state;
    struct vault_secret_input in;
    const char *why = NULL;
    char *ok = body_with_value(MV_SECRET_MAX_VALUE_BYTES);
    assert_int_equal(parse(ok, 1, &in, &why), MV_OK);
    assert_int_equal(in.value_len, MV_SECRET_MAX_VALUE_BYTES);
    vault_secret_input_free(&in);
    free(ok);
    char *big = body_with_value(MV_SECRET_MAX_VALUE_BYTES + 1);
    expect_bad(big, 1);
    free(big);
    /* the whole body is capped too */
    char *huge = body_with_value(MV_VAULT_BODY_BYTES);
    expect_bad(huge, 1);
    free(huge);
}

static void test_body_tags(void **state)
{
    (void)state;
    char body[4096];
    struct vault_secret_input in;
    const char *why = NULL;
    expect_bad("{\"value\":\"v\",\"tags\":[]}", 1);
    expect_bad("{\"value\":\"v\",\"tags\":\"a=b\"}", 1);
    expect_bad("{\"value\":\"v\",\"tags\":{\"a\":1}}", 1);
    expect_bad("{\"value\":\"v\",\"tags\":{\"a\":null}}", 1);
    expect_bad("{\"value\":\"v\",\"tags\":{\"a\":{\"b\":\"c\"}}}", 1);
    expect_bad("{\"value\":\"v\",\"tags\":{\"\":\"c\"}}", 1);

    /* 15 tags fine, 16 refused */
    for (int ntags = 15; ntags <= 16; ntags++) {
        size_t off = 0;
        off += (size_t)snprintf(body + off, sizeof body - off, "{\"value\":\"v\",\"tags\":{");
        for (int i = 0; i < ntags; i++)
            off += (size_t)snprintf(body + off, sizeof body - off, "%s\"k%d\":\"v\"",
                                    i ? "," : "", i);
        snprintf(body + off, sizeof body - off, "}}");
        if (ntags == 15) {
            assert_int_equal(parse(body, 1, &in, &why), MV_OK);
            vault_secret_input_free(&in);
        } else {
            expect_bad(body, 1);
        }
    }
    /* names and values: 256 characters fine, 257 refused; characters, not bytes */
    char s256[257], s257[258];
    memset(s256, 't', 256);
    s256[256] = '\0';
    memset(s257, 't', 257);
    s257[257] = '\0';
    snprintf(body, sizeof body, "{\"value\":\"v\",\"tags\":{\"%s\":\"%s\"}}", s256, s256);
    assert_int_equal(parse(body, 1, &in, &why), MV_OK);
    vault_secret_input_free(&in);
    snprintf(body, sizeof body, "{\"value\":\"v\",\"tags\":{\"%s\":\"x\"}}", s257);
    expect_bad(body, 1);
    snprintf(body, sizeof body, "{\"value\":\"v\",\"tags\":{\"x\":\"%s\"}}", s257);
    expect_bad(body, 1);
    size_t off = (size_t)snprintf(body, sizeof body, "{\"value\":\"v\",\"tags\":{\"x\":\"");
    for (int i = 0; i < 256; i++) /* 256 two-byte characters = 512 bytes */
        off += (size_t)snprintf(body + off, sizeof body - off, "\xc3\xa9");
    snprintf(body + off, sizeof body - off, "\"}}");
    assert_int_equal(parse(body, 1, &in, &why), MV_OK);
    vault_secret_input_free(&in);
}

static void test_body_content_type(void **state)
{
    (void)state;
    char body[1024], s255[256], s256[257];
    struct vault_secret_input in;
    const char *why = NULL;
    memset(s255, 'c', 255);
    s255[255] = '\0';
    memset(s256, 'c', 256);
    s256[256] = '\0';
    snprintf(body, sizeof body, "{\"value\":\"v\",\"contentType\":\"%s\"}", s255);
    assert_int_equal(parse(body, 1, &in, &why), MV_OK);
    vault_secret_input_free(&in);
    snprintf(body, sizeof body, "{\"value\":\"v\",\"contentType\":\"%s\"}", s256);
    expect_bad(body, 1);
    expect_bad("{\"value\":\"v\",\"contentType\":5}", 1);
}

static void test_body_attributes(void **state)
{
    (void)state;
    expect_bad("{\"value\":\"v\",\"attributes\":[]}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":\"x\"}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":{\"enabled\":\"yes\"}}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":{\"enabled\":1}}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":{\"nbf\":\"1700000000\"}}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":{\"nbf\":1.5}}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":{\"exp\":-1}}", 1);
    expect_bad("{\"value\":\"v\",\"attributes\":{\"exp\":true}}", 1);
    expect_bad("{\"attributes\":{\"enabled\":\"no\"}}", 0);
}

static void test_body_malformed(void **state)
{
    (void)state;
    struct vault_secret_input in;
    const char *why = NULL;
    expect_bad("", 1);
    expect_bad("{", 1);
    expect_bad("{\"value\":\"v\"", 1);
    expect_bad("{\"value\":\"v\",}", 1);
    expect_bad("{'value':'v'}", 1);
    expect_bad("[\"value\"]", 1);
    expect_bad("\"value\"", 1);
    expect_bad("null", 1);
    expect_bad("{\"value\":\"v\"} trailing", 1);
    expect_bad("{\"value\":\"\xff\xfe\"}", 1); /* not UTF-8 */
    /* duplicate keys, at the top and inside */
    expect_bad("{\"value\":\"a\",\"value\":\"b\"}", 1);
    expect_bad("{\"value\":\"a\",\"tags\":{\"k\":\"1\",\"k\":\"2\"}}", 1);
    expect_bad("{\"value\":\"a\",\"attributes\":{\"enabled\":true,\"enabled\":false}}", 1);
    /* depth: 16 levels are parsed, 17 refused before jansson sees them */
    char deep[256];
    size_t off = (size_t)snprintf(deep, sizeof deep, "{\"value\":\"v\",\"x\":");
    for (int i = 0; i < 15; i++)
        deep[off++] = '[';
    for (int i = 0; i < 15; i++)
        deep[off++] = ']';
    memcpy(deep + off, "}", 2);
    assert_int_equal(parse(deep, 1, &in, &why), MV_OK);
    vault_secret_input_free(&in);
    off = (size_t)snprintf(deep, sizeof deep, "{\"value\":\"v\",\"x\":");
    for (int i = 0; i < 16; i++)
        deep[off++] = '[';
    for (int i = 0; i < 16; i++)
        deep[off++] = ']';
    memcpy(deep + off, "}", 2);
    expect_bad(deep, 1);
    /* brackets inside strings do not count */
    assert_true(vault_json_depth_ok("{\"a\":\"[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}", 31, 2));
    assert_false(vault_json_depth_ok("[[[", 3, 2));
}

/* ---- response shapes ---- */

static void test_recovery_level(void **state)
{
    (void)state;
    assert_string_equal(vault_recovery_level(90, 0), "Recoverable+Purgeable");
    assert_string_equal(vault_recovery_level(90, 1), "Recoverable");
    assert_string_equal(vault_recovery_level(7, 0), "CustomizedRecoverable+Purgeable");
    assert_string_equal(vault_recovery_level(89, 1), "CustomizedRecoverable");
    assert_string_equal(vault_recovery_level(0, 0), "Purgeable");
}

static struct st_secret sample_secret(void)
{
    struct st_secret s;
    memset(&s, 0, sizeof s);
    set(s.vault, sizeof s.vault, "dev");
    set(s.name, sizeof s.name, "My-Secret");
    set(s.version, sizeof s.version, "03bcccc7c8cf4546a0e3e21e52560441");
    s.enabled = 1;
    s.created = 1493938459;
    s.updated = 1493938460;
    s.deleted = 1493938500;
    s.purge_at = 1501714433;
    s.content_type = (char *)"text/plain";
    s.tags_json = (char *)"{\"env\":\"dev\"}";
    return s;
}

static void test_bundle_shape(void **state)
{
    (void)state;
    struct st_secret s = sample_secret();
    struct vault_view v = {"https://dev.vault.localhost:8443", 90, 0};
    json_t *j = NULL;
    assert_int_equal(vault_secret_json(&s, &v, VJ_ID_VERSION, &j), MV_OK);
    assert_string_equal(json_string_value(json_object_get(j, "id")),
                        "https://dev.vault.localhost:8443/secrets/My-Secret/"
                        "03bcccc7c8cf4546a0e3e21e52560441");
    assert_string_equal(json_string_value(json_object_get(j, "contentType")), "text/plain");
    assert_null(json_object_get(j, "value"));
    assert_null(json_object_get(j, "recoveryId"));
    json_t *a = json_object_get(j, "attributes");
    assert_true(json_is_true(json_object_get(a, "enabled")));
    assert_true(json_is_integer(json_object_get(a, "created")));
    assert_int_equal(json_integer_value(json_object_get(a, "created")), 1493938459);
    assert_int_equal(json_integer_value(json_object_get(a, "updated")), 1493938460);
    assert_null(json_object_get(a, "nbf")); /* unset: omitted */
    assert_null(json_object_get(a, "exp"));
    assert_string_equal(json_string_value(json_object_get(a, "recoveryLevel")),
                        "Recoverable+Purgeable");
    assert_int_equal(json_integer_value(json_object_get(a, "recoverableDays")), 90);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "tags"), "env")),
                        "dev");
    json_decref(j);

    /* list item: no version in the id */
    assert_int_equal(vault_secret_json(&s, &v, 0, &j), MV_OK);
    assert_string_equal(json_string_value(json_object_get(j, "id")),
                        "https://dev.vault.localhost:8443/secrets/My-Secret");
    json_decref(j);
}

static void test_deleted_shape(void **state)
{
    (void)state;
    struct st_secret s = sample_secret();
    struct vault_view v = {"https://dev.vault.localhost", 7, 1};
    json_t *j = NULL;
    assert_int_equal(vault_secret_json(&s, &v, VJ_DELETED | VJ_ID_VERSION, &j), MV_OK);
    assert_string_equal(json_string_value(json_object_get(j, "recoveryId")),
                        "https://dev.vault.localhost/deletedsecrets/My-Secret");
    assert_int_equal(json_integer_value(json_object_get(j, "deletedDate")), 1493938500);
    assert_int_equal(json_integer_value(json_object_get(j, "scheduledPurgeDate")), 1501714433);
    json_t *a = json_object_get(j, "attributes");
    assert_string_equal(json_string_value(json_object_get(a, "recoveryLevel")),
                        "CustomizedRecoverable");
    assert_int_equal(json_integer_value(json_object_get(a, "recoverableDays")), 7);
    json_decref(j);

    /* soft delete off: no recoveryId, no recoverableDays (reference §4.2) */
    v.days = 0;
    assert_int_equal(vault_secret_json(&s, &v, VJ_DELETED | VJ_ID_VERSION, &j), MV_OK);
    assert_null(json_object_get(j, "recoveryId"));
    assert_null(json_object_get(j, "recoverableDays"));
    assert_null(json_object_get(json_object_get(j, "attributes"), "recoverableDays"));
    json_decref(j);
}

static void test_value_splice(void **state)
{
    (void)state;
    struct st_secret s = sample_secret();
    s.nbf = 1700000000;
    struct vault_view v = {"https://dev.vault.localhost", 90, 0};
    json_t *j = NULL;
    const char value[] = "line1\nq\"uote\\back\x01\x1f tab\t caf\xc3\xa9 </script>";
    size_t vlen = sizeof value - 1;
    mv_buf out;
    mv_buf_init(&out, 4096);
    assert_int_equal(vault_secret_json(&s, &v, VJ_ID_VERSION, &j), MV_OK);
    assert_int_equal(vault_json_with_value(j, value, vlen, &out), MV_OK);
    json_decref(j);
    assert_memory_equal(out.p, "{\"value\":", 9); /* value first, as the service sends it */
    json_error_t jerr;
    json_t *back = json_loadb(out.p, out.len, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(back);
    assert_int_equal(json_string_length(json_object_get(back, "value")), vlen);
    assert_memory_equal(json_string_value(json_object_get(back, "value")), value, vlen);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(back, "attributes"), "nbf")),
                     1700000000);
    assert_non_null(json_object_get(back, "id"));
    json_decref(back);
    mv_buf_free_secret(&out);

    /* an empty value and an empty object still make valid JSON */
    json_t *empty = json_object();
    mv_buf_init(&out, 64);
    assert_int_equal(vault_json_with_value(empty, "", 0, &out), MV_OK);
    assert_string_equal(out.p, "{\"value\":\"\"}");
    json_decref(empty);
    mv_buf_free(&out);
}

/* vault_bundle_json writes the very bytes of vault_secret_json + vault_json_with_value. */
static void bundle_both_ways(const struct st_secret *s, const struct vault_view *v, unsigned flags,
                             const char *value, size_t vlen)
{
    json_t *j = NULL;
    mv_buf a, b;
    mv_buf_init(&a, 1 << 20);
    mv_buf_init(&b, 1 << 20);
    mv_rc ra = vault_secret_json(s, v, flags, &j);
    if (ra == MV_OK)
        ra = vault_json_with_value(j, value, vlen, &a);
    json_decref(j);
    mv_rc rb = vault_bundle_json(s, v, flags, value, vlen, &b);
    assert_int_equal(rb, ra);
    if (ra == MV_OK) {
        assert_int_equal(b.len, a.len);
        assert_memory_equal(b.p, a.p, a.len);
        assert_int_equal(b.p[b.len], '\0');
    }
    mv_buf_free_secret(&a);
    mv_buf_free_secret(&b);
}

static void test_bundle_fast_path(void **state)
{
    (void)state;
    const char *cts[] = {NULL, "", "text/plain", "q\"uote\\back/slash",
                         "tab\tnl\ncr\rbs\bff\f\x01\x1f\x7f end",
                         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"};
    const char *tags[] = {NULL, "{}", "{\"env\":\"dev\"}",
                          "{ \"a\" : \"x\\ny\" , \"b\":\"caf\\u00e9\", \"c\":\"\\/\"}",
                          "[1,2]", "not json", "{\"dup\":\"1\",\"dup\":\"2\"}"};
    const char *urls[] = {"https://dev.vault.localhost:8443", "https://dev.vault.localhost",
                          "https://[::1]:443"};
    const char value[] = "line1\nq\"uote\\back\x01\x1f tab\t caf\xc3\xa9 </script>";
    int days[] = {0, 7, 90};
    unsigned flagsets[] = {0, VJ_ID_VERSION, VJ_DELETED, VJ_DELETED | VJ_ID_VERSION};
    for (size_t ci = 0; ci < sizeof cts / sizeof cts[0]; ci++)
        for (size_t ti = 0; ti < sizeof tags / sizeof tags[0]; ti++)
            for (size_t ui = 0; ui < sizeof urls / sizeof urls[0]; ui++)
                for (size_t di = 0; di < 3; di++)
                    for (size_t fi = 0; fi < 4; fi++) {
                        struct st_secret s = sample_secret();
                        s.content_type = (char *)cts[ci];
                        s.tags_json = (char *)tags[ti];
                        s.enabled = (int)((ci + fi) % 2);
                        s.nbf = ti % 2 ? 1700000000 : 0;
                        s.exp = di == 1 ? -5 : di == 2 ? 9223372036854775807LL : 0;
                        struct vault_view v = {urls[ui], days[di], (int)(fi % 2)};
                        bundle_both_ways(&s, &v, flagsets[fi], value, sizeof value - 1);
                        bundle_both_ways(&s, &v, flagsets[fi], "", 0);
                    }
    /* a stored content type that is not UTF-8: both refuse (500), neither writes it */
    struct st_secret s = sample_secret();
    struct vault_view v = {urls[0], 90, 0};
    s.content_type = (char *)"bad\xc3";
    bundle_both_ways(&s, &v, VJ_ID_VERSION, "v", 1);
    mv_buf out;
    mv_buf_init(&out, 1 << 20);
    assert_int_equal(vault_bundle_json(&s, &v, VJ_ID_VERSION, "v", 1, &out), MV_ERR_INTERNAL);
    mv_buf_free_secret(&out);
    s.content_type = (char *)"\xed\xa0\x80"; /* a surrogate */
    bundle_both_ways(&s, &v, VJ_ID_VERSION, "v", 1);
    /* the cap of the buffer still holds */
    s.content_type = NULL;
    mv_buf_init(&out, 40);
    assert_int_equal(vault_bundle_json(&s, &v, VJ_ID_VERSION, "v", 1, &out), MV_ERR_LIMIT);
    mv_buf_free_secret(&out);
}

static void test_cat(void **state)
{
    (void)state;
    char out[8];
    char num[24];
    assert_int_equal(vault_cat(out, sizeof out, "ab", "", "cd", (char *)NULL), MV_OK);
    assert_string_equal(out, "abcd");
    assert_int_equal(vault_cat(out, sizeof out, (char *)NULL), MV_OK);
    assert_string_equal(out, "");
    assert_int_equal(vault_cat(out, sizeof out, "1234567", (char *)NULL), MV_OK); /* exactly fits */
    assert_string_equal(out, "1234567");
    assert_int_equal(vault_cat(out, sizeof out, "1234", "5678", (char *)NULL), MV_ERR_LIMIT);
    assert_string_equal(out, ""); /* never a truncated string */
    assert_int_equal(vault_cat(out, 0, "a", (char *)NULL), MV_ERR_LIMIT);
    assert_string_equal(vault_utoa(0, num), "0");
    assert_string_equal(vault_utoa(65535, num), "65535");
    assert_string_equal(vault_utoa(18446744073709551615UL, num), "18446744073709551615");
}

/* ---- host ---- */

static void test_host_match(void **state)
{
    (void)state;
    struct vault_plane srv;
    memset(&srv, 0, sizeof srv);
    srv.vault_suffix = "vault.localhost";
    char name[MV_VAULT_NAME_MAX + 1];

    assert_true(vault_host_match(&srv, "dev.vault.localhost", name, sizeof name));
    assert_string_equal(name, "dev");
    assert_true(vault_host_match(&srv, "Dev.Vault.LocalHost", name, sizeof name));
    assert_string_equal(name, "dev");
    assert_true(vault_host_match(&srv, "my-vault-01.vault.localhost:8443", name, sizeof name));
    assert_string_equal(name, "my-vault-01");

    const char *no[] = {"vault.localhost", "a.b.vault.localhost", "evil-vault.localhost",
                        "dev.vault.localhost.evil", ".vault.localhost", "devvault.localhost",
                        "dev.vault.localhos", "localhost", "", "dev_x.vault.localhost",
                        "dev.vault.localhost:84x3", "127.0.0.1", "dev.vault.localhost."};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (vault_host_match(&srv, no[i], name, sizeof name))
            fail_msg("matched: %s", no[i]);
    }
    /* label longer than a vault name, or than the caller's buffer */
    assert_false(vault_host_match(&srv, "abcdefghijklmnopqrstuvwxy.vault.localhost", name,
                                  sizeof name)); /* 25 */
    assert_true(vault_host_match(&srv, "abcdefghijklmnopqrstuvwx.vault.localhost", name,
                                 sizeof name)); /* 24 */
    char tiny[4];
    assert_false(vault_host_match(&srv, "abcd.vault.localhost", tiny, sizeof tiny));
    assert_true(vault_host_match(&srv, "abc.vault.localhost", tiny, sizeof tiny));
    assert_false(vault_host_match(NULL, "dev.vault.localhost", name, sizeof name));
    assert_false(vault_host_match(&srv, NULL, name, sizeof name));
    /* no suffix configured: nothing is a vault */
    srv.vault_suffix = "";
    assert_false(vault_host_match(&srv, "dev.vault.localhost", name, sizeof name));
}

static void test_request_url(void **state)
{
    (void)state;
    http_req req;
    char url[MV_MAX_URL];
    memset(&req, 0, sizeof req);
    set(req.host, sizeof req.host, "dev.vault.localhost");
    req.host_port = 8443;
    assert_int_equal(vault_request_url(&req, url, sizeof url), MV_OK);
    assert_string_equal(url, "https://dev.vault.localhost:8443");
    req.host_port = 0;
    assert_int_equal(vault_request_url(&req, url, sizeof url), MV_OK);
    assert_string_equal(url, "https://dev.vault.localhost");
    req.host_port = 443; /* kept when sent: the client's netloc is what ids must repeat */
    assert_int_equal(vault_request_url(&req, url, sizeof url), MV_OK);
    assert_string_equal(url, "https://dev.vault.localhost:443");
}

/* ---- throttle ---- */

static void test_throttle(void **state)
{
    (void)state;
    int64_t t = 1700000003; /* window [1700000000, 1700000010) */
    for (int i = 0; i < 3; i++)
        assert_int_equal(vault_throttle(NULL, "thr-a", 0, 3, 2, t), 0);
    int retry = vault_throttle(NULL, "thr-a", 0, 3, 2, t);
    assert_int_equal(retry, 7);
    /* refused requests do not count: still exactly at the limit */
    assert_int_equal(vault_throttle(NULL, "thr-a", 0, 3, 2, t + 6), 1);
    /* creates have their own counter */
    assert_int_equal(vault_throttle(NULL, "thr-a", 1, 3, 2, t), 0);
    assert_int_equal(vault_throttle(NULL, "thr-a", 1, 3, 2, t), 0);
    assert_true(vault_throttle(NULL, "thr-a", 1, 3, 2, t) > 0);
    /* other vaults are independent */
    assert_int_equal(vault_throttle(NULL, "thr-b", 0, 3, 2, t), 0);
    /* next window resets */
    assert_int_equal(vault_throttle(NULL, "thr-a", 0, 3, 2, t + 7), 0);
    assert_int_equal(vault_throttle(NULL, "thr-a", 1, 3, 2, t + 7), 0);
    /* 0 = off */
    for (int i = 0; i < 100; i++)
        assert_int_equal(vault_throttle(NULL, "thr-c", 0, 0, 0, t), 0);
    /* many vaults: table crowding never admits more than the limit for one vault */
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "crowd-%d", i);
        (void)vault_throttle(NULL, name, 0, 1, 1, t + 20);
    }
    assert_int_equal(vault_throttle(NULL, "crowd-42", 0, 1, 1, t + 20) > 0, 1);
    /* servers sharing a store lease limit / 50 permits at a time, at least 1 */
    assert_int_equal(vault_throttle_block(4000), 80);
    assert_int_equal(vault_throttle_block(300), 6);
    assert_int_equal(vault_throttle_block(99), 1);
    assert_int_equal(vault_throttle_block(1), 1);
}


/* ---- keys (keymat.c, keys.c, keyrot.c) ---- */

static void test_iso_duration(void **state)
{
    (void)state;
    assert_int_equal(vault_iso_duration("P90D"), 90 * 86400);
    assert_int_equal(vault_iso_duration("P2Y"), 2 * 365 * 86400);
    assert_int_equal(vault_iso_duration("P1M"), 30 * 86400);
    assert_int_equal(vault_iso_duration("PT1M"), 60);
    assert_int_equal(vault_iso_duration("P1DT2H3M4S"), 86400 + 7200 + 180 + 4);
    assert_int_equal(vault_iso_duration("P2W"), 14 * 86400);
    const char *bad[] = {"", "P", "PT", "90D", "P1H", "PT1D", "P-1D", "P1.5D", "P1DT", "PT1S2",
                         "P1234567890D", "P1D1", "PTT1S"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(vault_iso_duration(bad[i]), -1);
}

/* vault_key_row seals the private key under the key's own AAD, and keeps the public JWK only. */
static void test_key_row_managed(void **state)
{
    (void)state;
    unsigned char dk[AEAD_KEY_LEN];
    memset(dk, 7, sizeof dk);
    EVP_PKEY *k = NULL, *back = NULL;
    const char *why = NULL;
    assert_int_equal(vkey_generate(0, 0, "P-521", &k, &why), MV_OK);
    static const char *const ops[] = {"sign", "verify", NULL};
    struct vault_key_attrs a = {.enabled = 1, .exp = 99, .managed = 1, .tags_json = "{\"a\":\"b\"}"};
    struct st_key row;
    assert_int_equal(vault_key_row(dk, "dev", "Cert", "0123abcd", k, NULL, ops, &a, 5, &row), MV_OK);
    assert_int_equal(row.managed, 1);
    assert_int_equal(row.exp, 99);
    assert_int_equal(row.created, 5);
    assert_string_equal(row.tags_json, "{\"a\":\"b\"}");
    assert_non_null(strstr(row.jwk_json, "\"crv\":\"P-521\""));
    assert_non_null(strstr(row.jwk_json, "\"key_ops\":[\"sign\",\"verify\"]"));
    assert_null(strstr(row.jwk_json, "\"d\""));
    assert_int_equal(vault_key_open(dk, &row, &back), MV_OK);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    /* the row moved to another name does not open */
    set(row.name, sizeof row.name, "Other");
    assert_int_not_equal(vault_key_open(dk, &row, &back), MV_OK);
    st_key_clear(&row);
    static const char *const bad_ops[] = {"fly", NULL};
    assert_int_equal(vault_key_row(dk, "dev", "Cert", "0123abcd", k, NULL, bad_ops, &a, 5, &row),
                     MV_ERR_BAD_REQUEST);
    EVP_PKEY_free(k);
}

/* Signatures: raw r||s of the curve's width, digest length and curve checked. */
static void test_key_sign_rules(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    const char *why = NULL;
    char msg[512];
    unsigned char digest[64];
    memset(digest, 1, sizeof digest);
    assert_int_equal(vkey_generate(0, 0, "P-384", &k, &why), MV_OK);
    mv_buf sig;
    assert_int_equal(vkey_sign(k, "kid", "ES384", digest, 48, &sig, msg, sizeof msg), MV_OK);
    assert_int_equal(sig.len, 96);
    int valid = 0;
    assert_int_equal(vkey_verify(k, "kid", "ES384", digest, 48, (unsigned char *)sig.p, sig.len,
                                 &valid, msg, sizeof msg), MV_OK);
    assert_int_equal(valid, 1);
    assert_int_equal(vkey_verify(k, "kid", "ES384", digest, 48, (unsigned char *)sig.p, 95,
                                 &valid, msg, sizeof msg), MV_OK);
    assert_int_equal(valid, 0);
    mv_buf_free(&sig);
    assert_int_equal(vkey_sign(k, "kid", "ES384", digest, 32, &sig, msg, sizeof msg),
                     MV_ERR_BAD_REQUEST);
    assert_string_equal(msg, "Invalid length of 'value': 32 bytes. ES384 requires 48 bytes, encoded "
                             "with base64url.");
    assert_int_equal(vkey_sign(k, "kid", "ES256", digest, 32, &sig, msg, sizeof msg),
                     MV_ERR_BAD_REQUEST);
    assert_non_null(strstr(msg, "uses curve 'P-384', and algorithm 'ES256' can only be used with "
                                "curve 'P-256'"));
    assert_int_equal(vkey_sign(k, "kid", "RS256", digest, 32, &sig, msg, sizeof msg),
                     MV_ERR_BAD_REQUEST);
    EVP_PKEY_free(k);
    assert_int_equal(vkey_generate(1, 1024, NULL, &k, &why), MV_ERR_BAD_REQUEST);
    assert_null(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_versions),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_aad_is_lower_case),
        cmocka_unit_test(test_maxresults),
        cmocka_unit_test(test_skiptoken_round_trip),
        cmocka_unit_test(test_skiptoken_rejects),
        cmocka_unit_test(test_body_full),
        cmocka_unit_test(test_body_minimal_and_nulls),
        cmocka_unit_test(test_body_value_rules),
        cmocka_unit_test(test_body_value_size),
        cmocka_unit_test(test_body_tags),
        cmocka_unit_test(test_body_content_type),
        cmocka_unit_test(test_body_attributes),
        cmocka_unit_test(test_body_malformed),
        cmocka_unit_test(test_recovery_level),
        cmocka_unit_test(test_bundle_shape),
        cmocka_unit_test(test_deleted_shape),
        cmocka_unit_test(test_value_splice),
        cmocka_unit_test(test_bundle_fast_path),
        cmocka_unit_test(test_cat),
        cmocka_unit_test(test_host_match),
        cmocka_unit_test(test_request_url),
        cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_iso_duration),
        cmocka_unit_test(test_key_row_managed),
        cmocka_unit_test(test_key_sign_rules),
    };
    return cmocka_run_group_tests_name("vault_parse", tests, NULL, NULL);
}
