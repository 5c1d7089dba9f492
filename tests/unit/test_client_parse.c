/* test_client_parse.c: the pure parts of libmivault (client/client_internal.h): the Key Vault
 * challenge parser, the challenge domain check, the IMDS token reply and the error mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"

/* ---- WWW-Authenticate ---- */

static void test_challenge_azure_header(void **state)
{
    (void)state;
    struct client_challenge ch;
    /* reference §4.4, the real service's header */
    const char *h = "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", "
                    "resource=\"https://vault.azure.net\"";
    assert_int_equal(client_challenge_parse(h, &ch), MV_OK);
    assert_string_equal(ch.authorization, "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_string_equal(ch.tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_string_equal(ch.resource, "https://vault.azure.net");
}

static void test_challenge_mivault_header(void **state)
{
    (void)state;
    struct client_challenge ch;
    const char *h = "Bearer authorization=\"https://127.0.0.1:8443/0c2f3a6e-1b7c-4b5e-9a57-0d4a3a2f1e11\", "
                    "resource=\"https://vault.localhost:8443\"";
    assert_int_equal(client_challenge_parse(h, &ch), MV_OK);
    assert_string_equal(ch.resource, "https://vault.localhost:8443");
    assert_string_equal(ch.tenant, "0c2f3a6e-1b7c-4b5e-9a57-0d4a3a2f1e11");
}

static void test_challenge_authorization_uri_and_scope(void **state)
{
    (void)state;
    struct client_challenge ch;
    /* authorization_uri instead of authorization; scope wins over resource, minus /.default */
    assert_int_equal(client_challenge_parse("Bearer authorization_uri=\"https://login.windows.net/tid\", "
                                            "resource=\"https://other\", scope=\"https://vault.azure.net/.default\"",
                                            &ch),
                     MV_OK);
    assert_string_equal(ch.authorization, "https://login.windows.net/tid");
    assert_string_equal(ch.tenant, "tid");
    assert_string_equal(ch.resource, "https://vault.azure.net");
    /* scheme is case-insensitive; unquoted values, no space after commas, claims and unknown
     * items are tolerated as in the Python SDK */
    assert_int_equal(client_challenge_parse("bearer authorization=https://login/t,resource=https://r,"
                                            "claims=eyJhY2Nlc3NfdG9rZW4iOnt9fQ==, error=\"insufficient_claims\"",
                                            &ch),
                     MV_OK);
    assert_string_equal(ch.resource, "https://r");
    /* resource_id is the Python SDK's alternative spelling */
    assert_int_equal(client_challenge_parse("Bearer authorization=\"https://a/t\", resource_id=\"https://r2\"", &ch),
                     MV_OK);
    assert_string_equal(ch.resource, "https://r2");
}

static void test_challenge_refusals(void **state)
{
    (void)state;
    struct client_challenge ch;
    /* single quotes */
    assert_int_not_equal(client_challenge_parse("Bearer authorization='https://login/t', resource='https://vault.azure.net'",
                                                &ch),
                         MV_OK);
    assert_int_not_equal(client_challenge_parse("Bearer authorization=\"https://login/t\", resource='https://v'", &ch),
                         MV_OK);
    /* missing resource (and scope) */
    assert_int_not_equal(client_challenge_parse("Bearer authorization=\"https://login/t\"", &ch), MV_OK);
    assert_int_not_equal(client_challenge_parse("Bearer authorization=\"https://login/t\", resource=\"\"", &ch), MV_OK);
    /* missing authorization */
    assert_int_not_equal(client_challenge_parse("Bearer resource=\"https://vault.azure.net\"", &ch), MV_OK);
    /* other schemes, no parameters, empty */
    assert_int_not_equal(client_challenge_parse("Basic realm=\"/var/opt/azcmagent/tokens/x.key\"", &ch), MV_OK);
    assert_int_not_equal(client_challenge_parse("PoP authorization=\"https://a/t\", resource=\"https://r\"", &ch), MV_OK);
    assert_int_not_equal(client_challenge_parse("Bearer", &ch), MV_OK);
    assert_int_not_equal(client_challenge_parse("", &ch), MV_OK);
    assert_int_not_equal(client_challenge_parse(NULL, &ch), MV_OK);
    /* a repeated parameter is ambiguous */
    assert_int_not_equal(client_challenge_parse("Bearer authorization=\"https://a/t\", resource=\"https://r\", "
                                                "resource=\"https://evil\"",
                                                &ch),
                         MV_OK);
    /* a value with two '=' is ignored (Python: exactly two parts), leaving no resource */
    assert_int_not_equal(client_challenge_parse("Bearer authorization=\"https://a/t\", resource=\"https://r?a=b\"", &ch),
                         MV_OK);
    /* over-long values */
    char big[MV_MAX_URL + 64];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char h[sizeof big + 128];
    snprintf(h, sizeof h, "Bearer authorization=\"https://a/t\", resource=\"https://%s\"", big);
    assert_int_not_equal(client_challenge_parse(h, &ch), MV_OK);
}

/* ---- the domain check ---- */

static void test_domain_check_accepts(void **state)
{
    (void)state;
    assert_int_equal(client_challenge_check("https://dev.vault.localhost:8443/secrets/x?api-version=7.5",
                                            "https://vault.localhost:8443"),
                     MV_OK);
    assert_int_equal(client_challenge_check("https://dev.vault.localhost:8443", "https://vault.localhost:8443/"), MV_OK);
    assert_int_equal(client_challenge_check("https://myvault.vault.azure.net/secrets", "https://vault.azure.net"), MV_OK);
    /* host names compare case-insensitively */
    assert_int_equal(client_challenge_check("https://Dev.VAULT.localhost:8443", "https://vault.LOCALHOST:8443"), MV_OK);
    /* a resource without a port constrains the host name only (KV-JS) */
    assert_int_equal(client_challenge_check("https://dev.vault.localhost:8443", "https://vault.localhost"), MV_OK);
    assert_int_equal(client_challenge_check("https://a.b.vault.azure.net", "https://vault.azure.net"), MV_OK);
}

static void test_domain_check_refuses(void **state)
{
    (void)state;
    const char *res = "https://vault.localhost:8443";
    assert_int_not_equal(client_challenge_check("https://evil.localhost:8443", res), MV_OK);
    assert_int_not_equal(client_challenge_check("https://vault.localhost.evil:8443", res), MV_OK);
    assert_int_not_equal(client_challenge_check("https://dev.vault.localhost:9443", res), MV_OK);
    /* the resource's own host is not a sub-domain of itself */
    assert_int_not_equal(client_challenge_check("https://vault.localhost:8443", res), MV_OK);
    /* suffix without a dot boundary */
    assert_int_not_equal(client_challenge_check("https://devvault.localhost:8443", res), MV_OK);
    /* no port on the request while the resource names one (Python: netloc incl. port) */
    assert_int_not_equal(client_challenge_check("https://dev.vault.localhost", res), MV_OK);
    /* empty label */
    assert_int_not_equal(client_challenge_check("https://.vault.localhost:8443", res), MV_OK);
    /* a resource that is no absolute URL, or hides userinfo */
    assert_int_not_equal(client_challenge_check("https://dev.vault.localhost:8443", "vault.localhost:8443"), MV_OK);
    assert_int_not_equal(client_challenge_check("https://dev.vault.localhost:8443", "/.default"), MV_OK);
    assert_int_not_equal(client_challenge_check("https://dev.vault.localhost:8443", ""), MV_OK);
    assert_int_not_equal(client_challenge_check("https://x.evil@vault.localhost:8443", "https://evil@vault.localhost:8443"),
                         MV_OK);
    assert_int_not_equal(client_challenge_check("https://myvault.vault.azure.net", "https://azure.net.evil"), MV_OK);
}

static void test_url_netloc(void **state)
{
    (void)state;
    char n[64];
    assert_int_equal(client_url_netloc("https://Dev.Vault.Localhost:8443/secrets?x", n, sizeof n), MV_OK);
    assert_string_equal(n, "dev.vault.localhost:8443");
    assert_int_equal(client_url_netloc("http://[::1]:50342", n, sizeof n), MV_OK);
    assert_string_equal(n, "[::1]:50342");
    assert_int_not_equal(client_url_netloc("ftp://x", n, sizeof n), MV_OK);
    assert_int_not_equal(client_url_netloc("https://", n, sizeof n), MV_OK);
    assert_int_not_equal(client_url_netloc("https:///path", n, sizeof n), MV_OK);
    assert_int_not_equal(client_url_netloc("https://a b", n, sizeof n), MV_OK);
    char tiny[4];
    assert_int_not_equal(client_url_netloc("https://abcdef", tiny, sizeof tiny), MV_OK);
}

static void test_scope_to_resource(void **state)
{
    (void)state;
    char r[64];
    assert_int_equal(client_scope_to_resource("https://vault.azure.net/.default", r, sizeof r), MV_OK);
    assert_string_equal(r, "https://vault.azure.net");
    /* reference §1.1: the trailing slash of ARM's resource survives */
    assert_int_equal(client_scope_to_resource("https://management.core.windows.net//.default", r, sizeof r), MV_OK);
    assert_string_equal(r, "https://management.core.windows.net/");
    assert_int_equal(client_scope_to_resource("https://vault.azure.net", r, sizeof r), MV_OK);
    assert_string_equal(r, "https://vault.azure.net");
    assert_int_not_equal(client_scope_to_resource("", r, sizeof r), MV_OK);
    assert_int_not_equal(client_scope_to_resource("/.default", r, sizeof r), MV_OK);
}

/* ---- IMDS token reply ---- */

static mv_rc imds(const char *body, mv_buf *tok, int64_t *exp)
{
    mv_buf_free_secret(tok);
    mv_buf_init(tok, MV_MAX_TOKEN_BYTES);
    return client_imds_parse(body, body ? strlen(body) : 0, tok, exp);
}

static void test_imds_strings(void **state)
{
    (void)state;
    mv_buf tok;
    int64_t exp = 0;
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    /* reference §1.2: every value is a string */
    assert_int_equal(imds("{\"access_token\":\"eyJ0eXAi.x.y\",\"refresh_token\":\"\",\"expires_in\":\"86399\","
                          "\"expires_on\":\"1700086400\",\"ext_expires_in\":\"86399\",\"not_before\":\"1700000000\","
                          "\"resource\":\"https://vault.azure.net\",\"token_type\":\"Bearer\",\"client_id\":\"c\"}",
                          &tok, &exp),
                     MV_OK);
    assert_string_equal(tok.p, "eyJ0eXAi.x.y");
    assert_int_equal(exp, 1700086400);
    /* a number is accepted too (msal-node does); token_type may be absent */
    assert_int_equal(imds("{\"access_token\":\"t\",\"expires_on\":1700000001}", &tok, &exp), MV_OK);
    assert_int_equal(exp, 1700000001);
    mv_buf_free_secret(&tok);
}

static void test_imds_refusals(void **state)
{
    (void)state;
    mv_buf tok;
    int64_t exp = 0;
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    /* expires_on missing */
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_in\":\"86399\",\"token_type\":\"Bearer\"}", &tok, &exp),
                         MV_OK);
    /* expires_on not an integer string */
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_on\":\"soon\"}", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_on\":\"12abc\"}", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_on\":\"\"}", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_on\":\"-5\"}", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_on\":true}", &tok, &exp), MV_OK);
    /* no or empty or non-string token */
    assert_int_not_equal(imds("{\"expires_on\":\"1700000000\"}", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":\"\",\"expires_on\":\"1700000000\"}", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":5,\"expires_on\":\"1700000000\"}", &tok, &exp), MV_OK);
    /* not a Bearer token */
    assert_int_not_equal(imds("{\"access_token\":\"t\",\"expires_on\":\"1700000000\",\"token_type\":\"pop\"}", &tok, &exp),
                         MV_OK);
    /* not JSON, not an object, duplicate keys, empty */
    assert_int_not_equal(imds("<html>", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("[\"access_token\"]", &tok, &exp), MV_OK);
    assert_int_not_equal(imds("{\"access_token\":\"a\",\"access_token\":\"b\",\"expires_on\":\"1\"}", &tok, &exp),
                         MV_OK);
    assert_int_not_equal(imds("", &tok, &exp), MV_OK);
    assert_int_not_equal(imds(NULL, &tok, &exp), MV_OK);
    /* a token over the cap */
    static char big[MV_MAX_TOKEN_BYTES + 100];
    int n = snprintf(big, sizeof big, "{\"expires_on\":\"1\",\"access_token\":\"");
    memset(big + n, 'a', MV_MAX_TOKEN_BYTES + 1);
    memcpy(big + n + MV_MAX_TOKEN_BYTES + 1, "\"}", 3);
    assert_int_not_equal(imds(big, &tok, &exp), MV_OK);
    mv_buf_free_secret(&tok);
}

/* ---- error mapping ---- */

static int imds_status(long s, const char *body)
{
    client_begin();
    mv_rc rc = client_imds_error(s, body, strlen(body));
    return client_end(rc);
}

static int vault_status(long s, const char *body)
{
    client_begin();
    mv_rc rc = client_vault_error(s, body, strlen(body));
    return client_end(rc);
}

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(imds_status(400, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}"),
                     MV_STATUS_IDENTITY_NOT_FOUND);
    assert_string_equal(mv_last_error(), "invalid_request (400): Identity not found");
    /* another 400 is a bad request */
    assert_int_equal(imds_status(400, "{\"error\":\"invalid_resource\",\"error_description\":\"AADSTS500011\"}"),
                     MV_STATUS_BAD_REQUEST);
    assert_int_equal(imds_status(429, "{\"error\":\"too_many_requests\"}"), MV_STATUS_THROTTLED);
    assert_int_equal(imds_status(503, "not json"), MV_STATUS_UNAVAILABLE);
    assert_non_null(strstr(mv_last_error(), "503"));

    assert_int_equal(vault_status(404, "{\"error\":{\"code\":\"SecretNotFound\",\"message\":\"A secret with (name/id) x "
                                       "was not found in this key vault.\"}}"),
                     MV_STATUS_NOT_FOUND);
    assert_string_equal(mv_last_error(), "SecretNotFound (404): A secret with (name/id) x was not found in this key vault.");
    assert_int_equal(vault_status(403, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Caller is not authorized\","
                                       "\"innererror\":{\"code\":\"ForbiddenByRbac\"}}}"),
                     MV_STATUS_FORBIDDEN);
    assert_non_null(strstr(mv_last_error(), "ForbiddenByRbac"));
    assert_int_equal(vault_status(409, "{\"error\":{\"code\":\"Conflict\",\"message\":\"m\"}}"), MV_STATUS_CONFLICT);
    assert_int_equal(vault_status(401, "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"AKV10022\"}}"),
                     MV_STATUS_UNAUTHORIZED);
    assert_int_equal(vault_status(400, ""), MV_STATUS_BAD_REQUEST);
    assert_int_equal(vault_status(500, "{}"), MV_STATUS_ERROR);
    /* success clears the text */
    client_begin();
    assert_int_equal(client_end(MV_OK), MV_STATUS_OK);
    assert_string_equal(mv_last_error(), "");
    assert_string_equal(mv_status_name(MV_STATUS_IDENTITY_NOT_FOUND), "identity_not_found");
    assert_string_equal(mv_status_name(12345), "unknown");
}

/* keys.c: the replies of sign/encrypt/... ({"kid","value": base64url}) and verify ({"value": bool}). */
static void test_key_reply(void **state)
{
    (void)state;
    mv_buf b;
    int flag = -1;
    mv_buf_init(&b, 4096);
    client_begin();
    const char *sig = "{\"kid\":\"https://v.vault.localhost/keys/k/0123\",\"value\":\"AQID_-8\"}";
    assert_int_equal(client_key_reply(sig, strlen(sig), 0, &b, &flag), MV_OK);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "\x01\x02\x03\xff\xef", 5);
    mv_buf_reset(&b);
    /* padded base64url is taken too (reference §4.1) */
    const char *padded = "{\"value\":\"AQID_w==\"}";
    assert_int_equal(client_key_reply(padded, strlen(padded), 0, &b, &flag), MV_OK);
    assert_int_equal(b.len, 4);
    mv_buf_reset(&b);
    const char *yes = "{\"value\":true}", *no = "{\"value\":false}";
    assert_int_equal(client_key_reply(yes, strlen(yes), 1, &b, &flag), MV_OK);
    assert_int_equal(flag, 1);
    assert_int_equal(client_key_reply(no, strlen(no), 1, &b, &flag), MV_OK);
    assert_int_equal(flag, 0);
    /* refused: not JSON, no value, the wrong type, not base64url */
    static const char *const bad[] = {"", "[]", "{}", "{\"value\":1}", "{\"value\":\"a+b/\"}",
                                      "{\"value\":\"@@\"}", "{\"value\":null}", "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mv_buf_reset(&b);
        assert_int_not_equal(client_key_reply(bad[i], strlen(bad[i]), 0, &b, &flag), MV_OK);
    }
    assert_int_not_equal(client_key_reply(sig, strlen(sig), 1, &b, &flag), MV_OK);
    assert_int_not_equal(client_key_reply(yes, strlen(yes), 0, &b, &flag), MV_OK);
    assert_int_equal(client_end(MV_ERR_UNAVAILABLE), MV_STATUS_ERROR);
    assert_non_null(strstr(mv_last_error(), "key operation reply"));
    mv_buf_free_secret(&b);
}

/* The key client's arguments are checked before anything is sent. */
static void test_key_client_arguments(void **state)
{
    (void)state;
    unsigned char *out = NULL;
    size_t n = 0;
    int valid = 0;
    const unsigned char d[32] = {0};
    assert_int_equal(mv_key_sign(NULL, "k", NULL, "RS256", d, sizeof d, &out, &n), MV_STATUS_BAD_REQUEST);
    assert_int_equal(mv_key_verify(NULL, "k", NULL, "RS256", d, sizeof d, d, sizeof d, &valid), MV_STATUS_BAD_REQUEST);
    assert_int_equal(mv_key_encrypt(NULL, "k", NULL, "RSA-OAEP", d, sizeof d, NULL, &n), MV_STATUS_BAD_REQUEST);
    assert_int_equal(mv_key_get(NULL, "k", NULL, NULL), MV_STATUS_BAD_REQUEST);
    assert_null(out);
    mv_bytes_free(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_azure_header),
        cmocka_unit_test(test_challenge_mivault_header),
        cmocka_unit_test(test_challenge_authorization_uri_and_scope),
        cmocka_unit_test(test_challenge_refusals),
        cmocka_unit_test(test_domain_check_accepts),
        cmocka_unit_test(test_domain_check_refuses),
        cmocka_unit_test(test_url_netloc),
        cmocka_unit_test(test_scope_to_resource),
        cmocka_unit_test(test_imds_strings),
        cmocka_unit_test(test_imds_refusals),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_key_reply),
        cmocka_unit_test(test_key_client_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
