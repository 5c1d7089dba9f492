/* test_imds_parse.c: the agent's pure parts: IMDS / Cloud-Shell / App Service request checks
 * (reference §1.1, §2.2, §9), the token cache (DESIGN §7), the rate limit, and the reply
 * rendered without jansson (byte for byte what jansson produced). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/agent_internal.h"
#include "http/kv.h"

/* ---- helpers ---- */

struct fixture {
    kv_list q;
    int q_ok;
    struct imds_check_in in;
    struct imds_token_req r;
};

/* query NULL = no query string at all. */
static enum imds_outcome check(struct fixture *f, enum http_method m, const char *xff,
                               const char *metadata, const char *query)
{
    memset(f, 0, sizeof *f);
    f->q_ok = 1;
    if (query)
        f->q_ok = kv_parse(query, strlen(query), &f->q) == MV_OK;
    f->in = (struct imds_check_in){m, xff, metadata, query ? &f->q : NULL, f->q_ok, 1};
    return imds_check_token(&f->in, &f->r);
}

static enum imds_outcome get(struct fixture *f, const char *query)
{
    return check(f, HTTP_GET, NULL, "true", query);
}

#define VAULT_Q "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"

/* ---- IMDS GET ---- */

static void test_metadata_missing(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(check(&f, HTTP_GET, NULL, NULL, VAULT_Q), IMDS_ERR_METADATA);
    assert_null(f.r.resource);
    kv_free(&f.q);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_METADATA, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.error, "bad_request_102");
    assert_string_equal(e.description, "Required metadata header not specified");
}

static void test_metadata_false_or_odd(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(check(&f, HTTP_GET, NULL, "false", VAULT_Q), IMDS_ERR_METADATA);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_GET, NULL, "", VAULT_Q), IMDS_ERR_METADATA);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_GET, NULL, "truex", VAULT_Q), IMDS_ERR_METADATA);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_GET, NULL, "1", VAULT_Q), IMDS_ERR_METADATA);
    kv_free(&f.q);
    /* accepted case-insensitively */
    assert_int_equal(check(&f, HTTP_GET, NULL, "True", VAULT_Q), IMDS_OK);
    kv_free(&f.q);
}

static void test_xff_rejected_first(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(check(&f, HTTP_GET, "10.0.0.1", "true", VAULT_Q), IMDS_ERR_XFF);
    kv_free(&f.q);
    /* XFF wins over a missing Metadata header, and an empty XFF still counts as present */
    assert_int_equal(check(&f, HTTP_GET, "", NULL, NULL), IMDS_ERR_XFF);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_XFF, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.error, "invalid_request");
    assert_string_equal(e.description, "Requests with X-Forwarded-For, Forwarded, X-Real-IP or "
                                       "Via headers are not allowed");
}

/* Issue 8 point 6: a second Metadata header is refused, after the proxy headers. */
static void test_duplicate_metadata_refused(void **state)
{
    (void)state;
    assert_int_equal(imds_check_headers(NULL, "true", 2), IMDS_ERR_METADATA_DUP);
    assert_int_equal(imds_check_headers("1.2.3.4", "true", 2), IMDS_ERR_XFF);
    assert_int_equal(imds_check_headers(NULL, "true", 1), IMDS_OK);
    struct fixture f;
    memset(&f, 0, sizeof f);
    f.q_ok = kv_parse(VAULT_Q, strlen(VAULT_Q), &f.q) == MV_OK;
    f.in = (struct imds_check_in){HTTP_GET, NULL, "true", &f.q, f.q_ok, 2};
    assert_int_equal(imds_check_token(&f.in, &f.r), IMDS_ERR_METADATA_DUP);
    kv_free(&f.q);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_METADATA_DUP, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.error, "invalid_request");
    imds_outcome_error(IMDS_ERR_BUSY, &e);
    assert_int_equal(e.status, 429);
    assert_string_equal(e.error, "too_many_requests");
}

/* Issue 8 point 6: DNS rebinding. Only the agent's own names, at its port. */
static void test_host_must_name_the_agent(void **state)
{
    (void)state;
    assert_true(imds_host_ok("127.0.0.1", 50342, "127.0.0.1", 50342));
    assert_true(imds_host_ok("localhost", 50342, "127.0.0.1", 50342));
    assert_true(imds_host_ok("169.254.169.254", 50342, "127.0.0.1", 50342));
    assert_true(imds_host_ok("127.0.0.2", 50342, "127.0.0.2", 50342));
    assert_true(imds_host_ok("[::1]", 50342, "::1", 50342));
    assert_true(imds_host_ok("169.254.169.254", 0, "169.254.169.254", 80)); /* port 80 implied */
    assert_true(imds_host_ok("169.254.169.254", 80, "169.254.169.254", 80));
    assert_true(imds_host_ok("", 0, "127.0.0.1", 50342)); /* HTTP/1.0 without Host */
    assert_false(imds_host_ok("evil.example", 50342, "127.0.0.1", 50342));
    assert_false(imds_host_ok("127.0.0.1.evil.example", 50342, "127.0.0.1", 50342));
    assert_false(imds_host_ok("127.0.0.1", 8080, "127.0.0.1", 50342));
    assert_false(imds_host_ok("127.0.0.1", 0, "127.0.0.1", 50342));
    assert_false(imds_host_ok("[::1]", 50342, "127.0.0.1", 50342));
    assert_false(imds_host_ok("[::1", 50342, "::1", 50342));
    assert_false(imds_host_ok("127.0.0.2", 50342, "127.0.0.1", 50342));
}

/* The JS DefaultAzureCredential probe: bare path, no query, no Metadata -> fast 400 metadata. */
static void test_probe_without_query(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(check(&f, HTTP_GET, NULL, NULL, NULL), IMDS_ERR_METADATA);
    /* With Metadata but no query at all: api-version is what is missing. */
    assert_int_equal(check(&f, HTTP_GET, NULL, "true", NULL), IMDS_ERR_API_VERSION);
    assert_null(f.r.resource);
}

static void test_api_version_missing_or_bad(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(get(&f, "resource=https%3A%2F%2Fvault.azure.net"), IMDS_ERR_API_VERSION);
    kv_free(&f.q);
    static const char *const bad[] = {
        "api-version=&resource=r",           "api-version=2017-03-01&resource=r",
        "api-version=2018-02-01x&resource=r", "api-version=2018-02-02&resource=r",
        "api-version=latest&resource=r",      "API-VERSION=2018-02-01&resource=r",
        "api-version=2019-08-01%20&resource=r",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(get(&f, bad[i]), IMDS_ERR_API_VERSION);
        kv_free(&f.q);
    }
    static const char *const good[] = {"2018-02-01", "2019-08-01", "2021-02-01", "2025-04-07"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(imds_api_version_ok(good[i]));
    assert_false(imds_api_version_ok(NULL));
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_API_VERSION, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.error, "invalid_request");
    assert_non_null(strstr(e.description, "api-version is invalid or was not specified"));
}

static void test_resource_missing_or_empty(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(get(&f, "api-version=2018-02-01"), IMDS_ERR_RESOURCE);
    kv_free(&f.q);
    assert_int_equal(get(&f, "api-version=2018-02-01&resource="), IMDS_ERR_RESOURCE);
    kv_free(&f.q);
    assert_int_equal(get(&f, "api-version=2018-02-01&resource"), IMDS_ERR_RESOURCE);
    kv_free(&f.q);
    /* the name is case-sensitive */
    assert_int_equal(get(&f, "api-version=2018-02-01&Resource=x"), IMDS_ERR_RESOURCE);
    kv_free(&f.q);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_RESOURCE, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.description, "Required query variable 'resource' is missing");
}

static void test_two_selectors(void **state)
{
    (void)state;
    struct fixture f;
    static const char *const q[] = {
        VAULT_Q "&client_id=a&object_id=b",
        VAULT_Q "&client_id=a&msi_res_id=%2Fsubscriptions%2Fs",
        VAULT_Q "&object_id=b&mi_res_id=x",
        VAULT_Q "&msi_res_id=x&mi_res_id=y",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        assert_int_equal(get(&f, q[i]), IMDS_ERR_SELECTOR);
        assert_null(f.r.resource);
        assert_int_equal(f.r.sel, SEL_NONE);
        kv_free(&f.q);
    }
    /* an empty selector counts as absent */
    assert_int_equal(get(&f, VAULT_Q "&client_id=&object_id=b"), IMDS_OK);
    assert_int_equal(f.r.sel, SEL_OBJECT_ID);
    assert_string_equal(f.r.sel_value, "b");
    kv_free(&f.q);
}

static void test_duplicate_and_malformed_query(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(get(&f, VAULT_Q "&api-version=2018-02-01"), IMDS_ERR_QUERY);
    kv_free(&f.q);
    assert_int_equal(get(&f, VAULT_Q "&resource=https%3A%2F%2Fother"), IMDS_ERR_QUERY);
    kv_free(&f.q);
    /* even an unknown parameter given twice */
    assert_int_equal(get(&f, VAULT_Q "&xms_cc=a&xms_cc=b"), IMDS_ERR_QUERY);
    kv_free(&f.q);
    /* a bad percent-escape makes the query unparsable */
    assert_int_equal(get(&f, "api-version=2018-02-01&resource=%zz"), IMDS_ERR_QUERY);
    assert_false(f.q_ok);
    kv_free(&f.q);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_QUERY, &e);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.error, "invalid_request");
}

static void test_unknown_params_ignored(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(get(&f, VAULT_Q "&token_sha256_to_refresh=abc&xms_cc=cp1&bypass_cache=true"
                             "&authority=x"),
                     IMDS_OK);
    assert_string_equal(f.r.resource, "https://vault.azure.net");
    assert_int_equal(f.r.sel, SEL_NONE);
    assert_null(f.r.sel_value);
    kv_free(&f.q);
}

static void test_resource_decoded_verbatim(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(get(&f, "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net%2F"),
                     IMDS_OK);
    assert_string_equal(f.r.resource, "https://vault.azure.net/");
    kv_free(&f.q);
    /* management's double slash is kept as sent (reference §1.1) */
    assert_int_equal(
        get(&f, "resource=https%3A%2F%2Fmanagement.core.windows.net%2F&api-version=2019-08-01"),
        IMDS_OK);
    assert_string_equal(f.r.resource, "https://management.core.windows.net/");
    kv_free(&f.q);
    /* not lower-cased, not trimmed */
    assert_int_equal(get(&f, "api-version=2018-02-01&resource=https://Vault.Localhost:8443"),
                     IMDS_OK);
    assert_string_equal(f.r.resource, "https://Vault.Localhost:8443");
    kv_free(&f.q);
}

static void test_res_id_spellings(void **state)
{
    (void)state;
    struct fixture f;
    const char *id = "/subscriptions/s/resourcegroups/rg/providers/"
                     "Microsoft.ManagedIdentity/userAssignedIdentities/u1";
    assert_int_equal(get(&f, VAULT_Q "&msi_res_id=%2Fsubscriptions%2Fs%2Fresourcegroups%2Frg"
                                     "%2Fproviders%2FMicrosoft.ManagedIdentity"
                                     "%2FuserAssignedIdentities%2Fu1"),
                     IMDS_OK);
    assert_int_equal(f.r.sel, SEL_RES_ID);
    assert_string_equal(f.r.sel_value, id);
    kv_free(&f.q);
    assert_int_equal(get(&f, VAULT_Q "&mi_res_id=%2Fsubscriptions%2Fs%2Fresourcegroups%2Frg"
                                     "%2Fproviders%2FMicrosoft.ManagedIdentity"
                                     "%2FuserAssignedIdentities%2Fu1"),
                     IMDS_OK);
    assert_int_equal(f.r.sel, SEL_RES_ID);
    assert_string_equal(f.r.sel_value, id);
    kv_free(&f.q);
    assert_int_equal(get(&f, VAULT_Q "&client_id=11111111-2222-3333-4444-555555555555"), IMDS_OK);
    assert_int_equal(f.r.sel, SEL_CLIENT_ID);
    assert_string_equal(f.r.sel_value, "11111111-2222-3333-4444-555555555555");
    kv_free(&f.q);
    assert_int_equal(get(&f, VAULT_Q "&object_id=oid"), IMDS_OK);
    assert_int_equal(f.r.sel, SEL_OBJECT_ID);
    kv_free(&f.q);
}

static void test_methods(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(check(&f, HTTP_PUT, NULL, "true", VAULT_Q), IMDS_ERR_METHOD);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_DELETE, NULL, "true", VAULT_Q), IMDS_ERR_METHOD);
    kv_free(&f.q);
    /* Metadata is checked before the method */
    assert_int_equal(check(&f, HTTP_PUT, NULL, NULL, VAULT_Q), IMDS_ERR_METADATA);
    kv_free(&f.q);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_METHOD, &e);
    assert_int_equal(e.status, 405);
}

/* Cloud Shell: POST with a form body, no api-version needed. */
static void test_cloud_shell_post(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(check(&f, HTTP_POST, NULL, "true", "resource=https%3A%2F%2Fvault.azure.net"),
                     IMDS_OK);
    assert_string_equal(f.r.resource, "https://vault.azure.net");
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_POST, NULL, "true", "resource=r&client_id=c"), IMDS_OK);
    assert_int_equal(f.r.sel, SEL_CLIENT_ID);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_POST, NULL, NULL, "resource=r"), IMDS_ERR_METADATA);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_POST, NULL, "true", ""), IMDS_ERR_RESOURCE);
    kv_free(&f.q);
    assert_int_equal(check(&f, HTTP_POST, NULL, "true", "resource=a&resource=b"), IMDS_ERR_QUERY);
    kv_free(&f.q);
}

/* ---- App Service 2019-08-01 ---- */

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static enum imds_outcome appsvc(struct fixture *f, enum http_method m, const char *hdr,
                                const char *query)
{
    memset(f, 0, sizeof *f);
    f->q_ok = 1;
    if (query)
        f->q_ok = kv_parse(query, strlen(query), &f->q) == MV_OK;
    struct appsvc_check_in in = {m, NULL, hdr, SECRET, query ? &f->q : NULL, f->q_ok};
    return appsvc_check_token(&in, &f->r);
}

static void test_appservice(void **state)
{
    (void)state;
    struct fixture f;
    const char *q = "api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net";
    assert_int_equal(appsvc(&f, HTTP_GET, NULL, q), IMDS_ERR_UNAUTHORIZED);
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET, "", q), IMDS_ERR_UNAUTHORIZED);
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET, SECRET "0", q), IMDS_ERR_UNAUTHORIZED);
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET,
                            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF", q),
                     IMDS_ERR_UNAUTHORIZED);
    kv_free(&f.q);
    struct imds_error e;
    imds_outcome_error(IMDS_ERR_UNAUTHORIZED, &e);
    assert_int_equal(e.status, 401);

    assert_int_equal(appsvc(&f, HTTP_GET, SECRET, q), IMDS_OK);
    assert_string_equal(f.r.resource, "https://vault.azure.net");
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_POST, SECRET, q), IMDS_ERR_METHOD);
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET, SECRET, "api-version=2018-02-01&resource=r"),
                     IMDS_ERR_API_VERSION);
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET, SECRET, NULL), IMDS_ERR_API_VERSION);
    assert_int_equal(appsvc(&f, HTTP_GET, SECRET, "api-version=2019-08-01"), IMDS_ERR_RESOURCE);
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET, SECRET, "api-version=2019-08-01&resource=r&principal_id=p"),
                     IMDS_OK);
    assert_int_equal(f.r.sel, SEL_OBJECT_ID);
    assert_string_equal(f.r.sel_value, "p");
    kv_free(&f.q);
    assert_int_equal(appsvc(&f, HTTP_GET, SECRET, "api-version=2019-08-01&resource=r&mi_res_id=m"),
                     IMDS_OK);
    assert_int_equal(f.r.sel, SEL_RES_ID);
    kv_free(&f.q);
    assert_int_equal(
        appsvc(&f, HTTP_GET, SECRET, "api-version=2019-08-01&resource=r&principal_id=p&client_id=c"),
        IMDS_ERR_SELECTOR);
    kv_free(&f.q);
}

/* ---- token cache ---- */

#define T0 1700000000

static struct agent_token tok(const char *value, int64_t exp)
{
    struct agent_token t = {0};
    t.access_token = (char *)value; /* tcache_put copies */
    t.exp = exp;
    t.nbf = T0;
    snprintf(t.client_id, sizeof t.client_id, "cid");
    return t;
}

static void test_cache_hit(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    tcache_init(&c, 8);
    struct agent_token t = tok("tok-a", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_CLIENT_ID, "AbC-Def", "https://vault.azure.net", &t, T0, &e),
                     MV_OK);
    assert_non_null(e);
    /* selector value compared case-insensitively */
    assert_int_equal(tcache_lookup(&c, SEL_CLIENT_ID, "abc-def", "https://vault.azure.net", T0 + 10, &e),
                     TCACHE_FRESH);
    assert_string_equal(e->tok.access_token, "tok-a");
    assert_int_equal(e->tok.exp, T0 + 86400);
    assert_string_equal(e->tok.client_id, "cid");
    assert_int_equal(tcache_lookup(&c, SEL_CLIENT_ID, "ABC-DEF", "https://vault.azure.net", T0 + 10, &e),
                     TCACHE_FRESH);
    /* the cache holds its own copy */
    assert_ptr_not_equal(e->tok.access_token, t.access_token);
    /* system-assigned (no selector) is a different key */
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "https://vault.azure.net", T0 + 10, &e),
                     TCACHE_MISS);
    assert_null(e);
    /* same value, other selector kind: different key */
    assert_int_equal(tcache_lookup(&c, SEL_OBJECT_ID, "abc-def", "https://vault.azure.net", T0, &e),
                     TCACHE_MISS);
    /* replacing the same key keeps one entry */
    struct agent_token t2 = tok("tok-b", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_CLIENT_ID, "abc-def", "https://vault.azure.net", &t2, T0, NULL),
                     MV_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(tcache_lookup(&c, SEL_CLIENT_ID, "abc-def", "https://vault.azure.net", T0, &e),
                     TCACHE_FRESH);
    assert_string_equal(e->tok.access_token, "tok-b");
    tcache_free(&c);
}

static void test_cache_resource_exact(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    tcache_init(&c, 8);
    struct agent_token t = tok("tok", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "https://vault.azure.net", &t, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "https://vault.azure.net/", T0, &e),
                     TCACHE_MISS);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "https://VAULT.azure.net", T0, &e),
                     TCACHE_MISS);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, "", "https://vault.azure.net", T0, &e),
                     TCACHE_FRESH);
    tcache_free(&c);
}

static void test_cache_refresh_ahead_and_expiry(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    tcache_init(&c, 8);
    /* 24 h token: fresh until its half-life (12 h), then stale (refresh, but servable) */
    struct agent_token t = tok("long", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "r", &t, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0 + 43199, &e), TCACHE_FRESH);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0 + 43200, &e), TCACHE_STALE);
    assert_non_null(e);
    assert_string_equal(e->tok.access_token, "long");
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0 + 86399, &e), TCACHE_STALE);
    /* at exp it is gone and dropped */
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0 + 86400, &e), TCACHE_MISS);
    assert_null(e);
    assert_int_equal(c.n, 0);

    /* 20 min token: half-life at 10 min, margin at 15 min: the earlier point decides. */
    struct agent_token s = tok("short", T0 + 1200);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "r", &s, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0 + 599, &e), TCACHE_FRESH);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0 + 600, &e), TCACHE_STALE);

    /* a token with only 8 min left when fetched: half-life at 4 min, but the 5-min margin
     * (exp - 300 = 3 min) comes first */
    struct agent_token u = tok("late", T0 + 480);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "late", &u, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "late", T0 + 179, &e), TCACHE_FRESH);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "late", T0 + 180, &e), TCACHE_STALE);

    /* an already expired token is never served */
    struct agent_token x = tok("dead", T0);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "dead", &x, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "dead", T0, &e), TCACHE_MISS);

    /* remove */
    tcache_remove(&c, SEL_NONE, NULL, "r");
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0, &e), TCACHE_MISS);
    tcache_free(&c);
}

/* A failed background refresh backs off 1, 2, 4 ... s up to the cap; a new token resets it. */
static void test_cache_refresh_backoff(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    struct agent_token t = tok("tok-b", T0 + 3600);
    tcache_init(&c, 4);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "r", &t, T0, NULL), MV_OK);
    int64_t now = T0 + 2000; /* past half-life: STALE */
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", now, &e), TCACHE_STALE);
    assert_false(tcache_entry_fresh(e, now));
    assert_int_equal(e->retry_at, 0);
    int64_t want[] = {1, 2, 4, 8, 16, 32, 60, 60};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        tcache_backoff(&c, SEL_NONE, NULL, "r", now, 60);
        assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", now, &e), TCACHE_STALE);
        assert_int_equal(e->retry_at - now, want[i]);
    }
    tcache_backoff(&c, SEL_NONE, NULL, "other", now, 60); /* no such entry: nothing */
    t = tok("tok-c", now + 3600);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "r", &t, now, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", now, &e), TCACHE_FRESH);
    assert_int_equal(e->retry_at, 0);
    assert_int_equal(e->fails, 0);
    tcache_free(&c);
}

static void test_cache_eviction_bound(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    char res[32];
    tcache_init(&c, 4);
    for (int i = 0; i < 4; i++) {
        snprintf(res, sizeof res, "res-%d", i);
        struct agent_token t = tok("t", T0 + 86400);
        assert_int_equal(tcache_put(&c, SEL_NONE, NULL, res, &t, T0, NULL), MV_OK);
    }
    assert_int_equal(c.n, 4);
    /* touch res-0, so res-1 is now the least recently used */
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "res-0", T0, &e), TCACHE_FRESH);
    struct agent_token t = tok("t", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "res-4", &t, T0, NULL), MV_OK);
    assert_int_equal(c.n, 4);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "res-1", T0, &e), TCACHE_MISS);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "res-0", T0, &e), TCACHE_FRESH);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "res-4", T0, &e), TCACHE_FRESH);

    /* many more inserts never grow past the bound */
    for (int i = 5; i < 300; i++) {
        snprintf(res, sizeof res, "res-%d", i);
        struct agent_token u = tok("t", T0 + 86400);
        assert_int_equal(tcache_put(&c, SEL_NONE, NULL, res, &u, T0, NULL), MV_OK);
        assert_true(c.n <= 4);
    }
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "res-299", T0, &e), TCACHE_FRESH);
    tcache_free(&c);

    /* expired entries go before the LRU one */
    tcache_init(&c, 2);
    struct agent_token a = tok("a", T0 + 100), b = tok("b", T0 + 86400), d = tok("d", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "b", &b, T0, NULL), MV_OK);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "a", &a, T0, NULL), MV_OK);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "d", &d, T0 + 200, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "b", T0 + 200, &e), TCACHE_FRESH);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "d", T0 + 200, &e), TCACHE_FRESH);
    tcache_free(&c);
}

/* ---- rate limit ---- */

static void test_ratelimit(void **state)
{
    (void)state;
    struct ratelimit r;
    ratelimit_init(&r, 3, 1000);
    assert_true(ratelimit_take(&r, 1000));
    assert_true(ratelimit_take(&r, 1000));
    assert_true(ratelimit_take(&r, 1000));
    assert_false(ratelimit_take(&r, 1000));
    assert_false(ratelimit_take(&r, 1300)); /* 0.9 token refilled */
    assert_true(ratelimit_take(&r, 1334));  /* 1.002 */
    assert_false(ratelimit_take(&r, 1334));
    /* a long idle period refills only up to the burst */
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += ratelimit_take(&r, 100000000);
    assert_int_equal(ok, 3);
    /* a clock that goes backwards refills nothing */
    assert_false(ratelimit_take(&r, 5));
}

/* imdsRateLimit 0: no limit at all. */
static void test_ratelimit_off(void **state)
{
    (void)state;
    struct ratelimit r;
    ratelimit_init(&r, 0, 1000);
    for (int i = 0; i < 100000; i++)
        assert_true(ratelimit_take(&r, 1000));
    ratelimit_init(&r, -5, 1000);
    assert_true(ratelimit_take(&r, 1000));
    ratelimit_init(&r, 1, 1000);
    assert_true(ratelimit_take(&r, 1000));
    assert_false(ratelimit_take(&r, 1000));
}

/* ---- rendering without jansson ---- */

/* What jansson's compact dump makes of s, without the quotes; NULL if jansson refuses s. */
static char *jansson_escaped(const char *s)
{
    json_t *j = json_string(s);
    if (!j)
        return NULL;
    char *d = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    assert_non_null(d);
    size_t n = strlen(d);
    assert_true(n >= 2 && d[0] == '"' && d[n - 1] == '"');
    memmove(d, d + 1, n - 2);
    d[n - 2] = '\0';
    return d;
}

static void expect_same_escape(const char *s)
{
    char *want = jansson_escaped(s);
    mv_buf b;
    mv_buf_init(&b, 1 << 20);
    mv_rc rc = agent_json_escape(s, &b);
    if (!want) {
        assert_int_not_equal(rc, MV_OK);
    } else {
        assert_int_equal(rc, MV_OK);
        assert_string_equal(b.p ? b.p : "", want);
    }
    free(want);
    mv_buf_free(&b);
}

static void test_json_escape_matches_jansson(void **state)
{
    (void)state;
    static const char *const fixed[] = {
        "", "plain", "https://vault.azure.net/", "a\"b\\c/d", "\b\f\n\r\t", "\x01\x1f\x7f x",
        "caf\xc3\xa9", "\xe2\x80\xa8 line sep", "\xf0\x9f\x94\x91 key", "\xef\xbf\xbf",
        /* not UTF-8: lone continuation, overlong, surrogate, > U+10FFFF, truncated, C0/F5 */
        "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "abc\xe2\x82", "\xc1\xbf", "\xf5\x80\x80\x80",
        "\xe0\x80\xaf", "\xf0\x80\x80\xaf",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        expect_same_escape(fixed[i]);
    /* Every byte value alone, and random strings, biased towards bytes that matter. */
    char one[2] = {0, 0};
    for (int c = 1; c < 256; c++) {
        one[0] = (char)c;
        expect_same_escape(one);
    }
    static const unsigned char pick[] = {'a', '"', '\\', '/', 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc2,
                                         0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0, 0x9f,
                                         0xf4, 0x8f, 0xff, '\n'};
    unsigned seed = 12345;
    char s[16];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % 15);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = (char)pick[(seed >> 16) % sizeof pick];
        }
        s[n] = '\0';
        expect_same_escape(s);
    }
}

/* The reply as reply_token built it with jansson before the renderer. */
static char *jansson_reply(const struct agent_token *t, const char *resource, int64_t fetched,
                           int64_t now)
{
    char exp_in[24], exp_on[24], nbf[24];
    int64_t left = t->exp - now;
    snprintf(exp_in, sizeof exp_in, "%lld", (long long)(left > 0 ? left : 0));
    snprintf(exp_on, sizeof exp_on, "%lld", (long long)t->exp);
    snprintf(nbf, sizeof nbf, "%lld", (long long)(t->nbf ? t->nbf : fetched));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "access_token",
                          t->access_token, "refresh_token", "", "expires_in", exp_in,
                          "expires_on", exp_on, "ext_expires_in", exp_in, "not_before", nbf,
                          "resource", resource, "token_type", "Bearer", "client_id", t->client_id);
    assert_non_null(o);
    char *d = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return d;
}

static void expect_same_reply(const struct agent_token *t, const char *resource, int64_t now)
{
    struct imds_body_tmpl b;
    assert_int_equal(imds_body_tmpl_make(resource, t, T0 - 7, &b), MV_OK);
    char *dst = malloc(imds_body_max(&b) + 1);
    assert_non_null(dst);
    size_t n = imds_body_render(&b, t->exp, now, dst);
    assert_true(n <= imds_body_max(&b));
    dst[n++] = '}';
    char *want = jansson_reply(t, resource, T0 - 7, now);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(dst, want, n);
    free(want);
    free(dst);
    imds_body_tmpl_free(&b);
    assert_null(b.p);
}

static void test_reply_render_matches_jansson(void **state)
{
    (void)state;
    struct agent_token t = tok("eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln-_", T0 + 86400);
    snprintf(t.client_id, sizeof t.client_id, "9a70e29b-d060-4c08-8465-bfa6f162293a");
    expect_same_reply(&t, "https://vault.azure.net", T0);
    expect_same_reply(&t, "https://vault.azure.net/", T0 + 1);
    expect_same_reply(&t, "https://vault.azure.net", T0 + 86399);
    expect_same_reply(&t, "https://vault.azure.net", T0 + 86400); /* expires_in "0" */
    expect_same_reply(&t, "https://vault.azure.net", T0 + 90000); /* never negative */
    expect_same_reply(&t, "https://x/\"quoted\"\\\x01" "caf\xc3\xa9", T0);
    t.nbf = 0; /* not_before falls back to the fetch time */
    expect_same_reply(&t, "api://a", T0);
    t.exp = 9223372036854775807LL; /* the widest numbers fit imds_body_max */
    t.nbf = -9223372036854775807LL - 1;
    expect_same_reply(&t, "api://a", 0);
    /* Not UTF-8: no template (jansson refused such a reply too). */
    struct imds_body_tmpl b;
    assert_int_not_equal(imds_body_tmpl_make("https://x/\xff", &t, T0, &b), MV_OK);
    assert_null(b.p);
}

/* tcache_put renders the body once; a resource that cannot be rendered is not cached. */
static void test_cache_entry_has_body(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    struct agent_token t = tok("tok.en.x", T0 + 3600);
    tcache_init(&c, 4);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "https://vault.azure.net", &t, T0, &e), MV_OK);
    assert_non_null(e);
    assert_non_null(e->body.p);
    char buf[1024];
    size_t n = imds_body_render(&e->body, e->tok.exp, T0 + 600, buf);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"expires_in\":\"3000\",\"expires_on\":\"1700003600\",\"ext_expires_in\":\"3000\""));
    assert_int_not_equal(tcache_put(&c, SEL_NONE, NULL, "https://vault.azure.net/\xc0", &t, T0, &e),
                         MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "https://vault.azure.net/\xc0", T0, &e),
                     TCACHE_MISS);
    assert_int_equal(c.n, 1);
    tcache_free(&c);
}

/* ---- the authority's token reply (authority.c) ---- */

/* tests/fuzz/fuzz_agent_reply.c under UBSan: now + expires_in overflowed int64_t. */
static void test_authority_reply_expires_in_overflow(void **state)
{
    (void)state;
    struct agent_token t;
    static const char huge[] = "{\"access_token\":\"t\",\"expires_in\":9223372036854775807}";
    assert_int_not_equal(agent_authority_reply(200, huge, sizeof huge - 1, &t), MV_OK);
    assert_null(t.access_token);
    static const char str[] = "{\"access_token\":\"t\",\"expires_in\":\"9223372036854775807\"}";
    assert_int_not_equal(agent_authority_reply(200, str, sizeof str - 1, &t), MV_OK);
    static const char ok[] = "{\"access_token\":\"t\",\"expires_in\":3600}";
    assert_int_equal(agent_authority_reply(200, ok, sizeof ok - 1, &t), MV_OK);
    assert_true(t.exp > 3600);
    assert_string_equal(t.access_token, "t");
    agent_token_free(&t);
}

/* Per-process identities: the authority's mi_bound and its refusal of another caller. */
static void test_authority_reply_bound(void **state)
{
    (void)state;
    struct agent_token t;
    static const char bound[] = "{\"access_token\":\"t\",\"expires_in\":3600,\"mi_bound\":true}";
    assert_int_equal(agent_authority_reply(200, bound, sizeof bound - 1, &t), MV_OK);
    assert_int_equal(t.bound, 1);
    agent_token_free(&t);
    static const char unbound[] = "{\"access_token\":\"t\",\"expires_in\":3600}";
    assert_int_equal(agent_authority_reply(200, unbound, sizeof unbound - 1, &t), MV_OK);
    assert_int_equal(t.bound, 0);
    agent_token_free(&t);
    static const char refused[] = "{\"error\":\"invalid_request\",\"error_description\":\""
                                  AGENT_BOUND_REFUSAL "\"}";
    assert_int_equal(agent_authority_reply(400, refused, sizeof refused - 1, &t), MV_ERR_FORBIDDEN);
    static const char missing[] =
        "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}";
    assert_int_equal(agent_authority_reply(400, missing, sizeof missing - 1, &t), MV_ERR_NOT_FOUND);
}

/* A bound identity's token is kept for its caller only; "" is every caller's. */
static void test_cache_owner(void **state)
{
    (void)state;
    struct tcache c;
    const struct tcache_entry *e = NULL;
    tcache_init(&c, 8);
    struct agent_token t = tok("alice-token", T0 + 86400);
    assert_int_equal(tcache_put_o(&c, SEL_NONE, NULL, "r", "1001:/a", &t, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup_o(&c, SEL_NONE, NULL, "r", "1001:/a", T0, &e), TCACHE_FRESH);
    assert_string_equal(e->tok.access_token, "alice-token");
    assert_int_equal(tcache_lookup_o(&c, SEL_NONE, NULL, "r", "1002:/a", T0, &e), TCACHE_MISS);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0, &e), TCACHE_MISS);
    struct agent_token u = tok("shared", T0 + 86400);
    assert_int_equal(tcache_put(&c, SEL_NONE, NULL, "r", &u, T0, NULL), MV_OK);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0, &e), TCACHE_FRESH);
    assert_string_equal(e->tok.access_token, "shared");
    assert_int_equal(tcache_lookup_o(&c, SEL_NONE, NULL, "r", "1001:/a", T0, &e), TCACHE_FRESH);
    assert_string_equal(e->tok.access_token, "alice-token"); /* two entries */
    tcache_remove_o(&c, SEL_NONE, NULL, "r", "1001:/a");
    assert_int_equal(tcache_lookup_o(&c, SEL_NONE, NULL, "r", "1001:/a", T0, &e), TCACHE_MISS);
    assert_int_equal(tcache_lookup(&c, SEL_NONE, NULL, "r", T0, &e), TCACHE_FRESH);
    tcache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_missing),
        cmocka_unit_test(test_metadata_false_or_odd),
        cmocka_unit_test(test_xff_rejected_first),
        cmocka_unit_test(test_duplicate_metadata_refused),
        cmocka_unit_test(test_host_must_name_the_agent),
        cmocka_unit_test(test_probe_without_query),
        cmocka_unit_test(test_api_version_missing_or_bad),
        cmocka_unit_test(test_resource_missing_or_empty),
        cmocka_unit_test(test_two_selectors),
        cmocka_unit_test(test_duplicate_and_malformed_query),
        cmocka_unit_test(test_unknown_params_ignored),
        cmocka_unit_test(test_resource_decoded_verbatim),
        cmocka_unit_test(test_res_id_spellings),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_cloud_shell_post),
        cmocka_unit_test(test_appservice),
        cmocka_unit_test(test_cache_hit),
        cmocka_unit_test(test_cache_resource_exact),
        cmocka_unit_test(test_cache_refresh_ahead_and_expiry),
        cmocka_unit_test(test_cache_eviction_bound),
        cmocka_unit_test(test_cache_refresh_backoff),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_ratelimit_off),
        cmocka_unit_test(test_json_escape_matches_jansson),
        cmocka_unit_test(test_reply_render_matches_jansson),
        cmocka_unit_test(test_cache_entry_has_body),
        cmocka_unit_test(test_authority_reply_expires_in_overflow),
        cmocka_unit_test(test_authority_reply_bound),
        cmocka_unit_test(test_cache_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
