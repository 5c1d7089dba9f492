/* test_validate.c: access-token validation (src/token/validate.c) and the shape of the
 * tokens the authority issues (src/authority/issue.c): an RSA signing key, a store in a
 * temporary directory holding its public half (where the key set loads from), a tenant and an
 * issuer.
 *
 * Every refusal is checked for the exact token_failure it must report: alg none, HS256 keyed
 * with the public key (the classic RS/HS confusion), ES256, unknown kid, a valid signature over
 * a tampered payload, expired, not yet valid, wrong issuer (incl. the missing trailing slash),
 * wrong tenant, wrong audience (incl. a trailing slash), missing kid, missing oid, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authority/authority.h"
#include "common/b64.h"
#include "common/limits.h"
#include "common/util.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "token/validate.h"

#define TID "6f1c2a43-4a5b-4c1d-9e2f-0123456789ab"
#define OTHER_TID "00000000-1111-4222-8333-444444444444"
#define ISSUER "https://127.0.0.1:8443/" TID "/"
#define VAULT "https://vault.azure.net"
#define OID "11111111-2222-4333-8444-555555555555"
#define APPID "99999999-8888-4777-8666-555555555555"
#define MIRID "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"

static const char *const AUDS[] = {"https://vault.localhost:8443", VAULT, NULL};

struct fixture {
    char dir[64];
    char db[128];
    struct store *st;
    struct authority_plane srv; /* the issuing side, for authority_issue */
    struct token_keyset keys;
    struct token_verifier tv;
    EVP_PKEY *other;       /* an RSA key that is not in the JWKS */
    char other_kid[32];
    EVP_PKEY *ec;          /* a P-256 key */
};

/* Stores the public half of key as a signing key (retired 0: still signing), as the authority
 * or another server sharing the store would. */
static void put_key(struct fixture *f, EVP_PKEY *key, const char *kid, int64_t retired)
{
    mv_buf pem;
    mv_buf_init(&pem, 4096);
    assert_int_equal(keys_public_pem(key, &pem), MV_OK);
    struct st_signing_key k = {.sealed_private_b64 = (char *)"unused", .public_pem = pem.p,
                               .x5c_b64 = (char *)"", .created = mv_now(), .retired = retired};
    assert_int_equal(mv_copy(k.kid, sizeof k.kid, kid), MV_OK);
    assert_int_equal(store_signing_key_put(f->st, &k), MV_OK);
    mv_buf_free(&pem);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(keys_gen_rsa(2048, &f->srv.sign_key), MV_OK);
    assert_int_equal(keys_thumbprint(f->srv.sign_key, f->srv.sign_kid), MV_OK);
    assert_int_equal(keys_gen_rsa(2048, &f->other), MV_OK);
    assert_int_equal(keys_thumbprint(f->other, f->other_kid), MV_OK);
    assert_int_equal(keys_gen_ec_p256(&f->ec), MV_OK);
    assert_int_equal(mv_copy(f->srv.tenant.tenant_id, sizeof f->srv.tenant.tenant_id, TID), MV_OK);
    f->srv.issuer = ISSUER;
    f->srv.server_url = "https://127.0.0.1:8443";
    f->srv.token_lifetime = 3600;
    snprintf(f->dir, sizeof f->dir, "/tmp/mv_test_validate_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/mivault.db", f->dir);
    assert_int_equal(store_open(f->db, &f->st), MV_OK);
    put_key(f, f->srv.sign_key, f->srv.sign_kid, 0);
    f->tv = (struct token_verifier){.issuer = ISSUER, .tenant_id = TID, .audiences = AUDS,
                                    .token_lifetime = 3600, .keys = &f->keys, .st = f->st};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    token_keyset_free(&f->keys);
    store_close(f->st);
    unlink(f->db);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", f->db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", f->db);
    unlink(side);
    rmdir(f->dir);
    EVP_PKEY_free(f->srv.sign_key);
    EVP_PKEY_free(f->other);
    EVP_PKEY_free(f->ec);
    free(f);
    return 0;
}

/* The claims authority_issue would put in a token, as a base to modify. */
static json_t *good_claims(void)
{
    int64_t now = mv_now();
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "aud", VAULT, "iss",
                     ISSUER, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                     (json_int_t)(now + 3600), "oid", OID, "sub", OID, "tid", TID, "appid", APPID,
                     "ver", "1.0");
}

static char *sign(EVP_PKEY *key, enum jws_alg alg, const char *kid, json_t *claims)
{
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
    assert_int_equal(jws_sign(key, alg, kid, claims, &b), MV_OK);
    json_decref(claims);
    return mv_buf_take(&b);
}

static char *b64url_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
    assert_int_equal(b64url_encode(&b, s, strlen(s)), MV_OK);
    free(s);
    return mv_buf_take(&b);
}

/* header.payload.signature from parts made by hand. */
static char *compact(const char *h, const char *p, const char *s)
{
    mv_buf b;
    mv_buf_init(&b, 3 * MV_MAX_TOKEN_BYTES);
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", h, p, s), MV_OK);
    return mv_buf_take(&b);
}

static enum token_failure check(struct fixture *f, const char *tok, size_t len,
                                struct token_info *info)
{
    enum token_failure why = TOKEN_OK;
    mv_rc rc = token_validate(&f->tv, tok, len, info, &why);
    if (why == TOKEN_OK)
        assert_int_equal(rc, MV_OK);
    else
        assert_int_not_equal(rc, MV_OK);
    return why;
}

static enum token_failure verdict(struct fixture *f, const char *tok)
{
    struct token_info info;
    return check(f, tok, strlen(tok), &info);
}

/* Signs the good claims after fn changed them. */
static enum token_failure verdict_claims(struct fixture *f, json_t *claims)
{
    char *tok = sign(f->srv.sign_key, JWS_RS256, f->srv.sign_kid, claims);
    enum token_failure why = verdict(f, tok);
    free(tok);
    return why;
}

static void test_valid_token_fills_info(void **state)
{
    struct fixture *f = *state;
    struct st_principal p = {.id = OID, .client_id = APPID, .kind = ST_PRINCIPAL_SYSTEM,
                             .resource_id = MIRID};
    mv_buf tok;
    int64_t exp = 0;
    struct token_info info;
    char hash[65];
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    assert_int_equal(authority_issue(&f->srv, &p, VAULT, &tok, &exp), MV_OK);
    assert_int_equal(check(f, tok.p, tok.len, &info), TOKEN_OK);
    assert_string_equal(info.oid, OID);
    assert_string_equal(info.appid, APPID);
    assert_string_equal(info.tid, TID);
    assert_string_equal(info.aud, VAULT);
    assert_string_equal(info.iss, ISSUER);
    assert_int_equal(info.exp, exp);
    /* hash: hex SHA-256 of the token text */
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(tok.p, tok.len, md, &mdlen, EVP_sha256(), NULL), 1);
    mv_hex(hash, md, 32);
    assert_string_equal(info.hash, hash);
    /* a second validation uses the loaded keys */
    assert_int_equal(f->keys.n, 1);
    assert_int_equal(check(f, tok.p, tok.len, &info), TOKEN_OK);
    mv_buf_free(&tok);
}

static void test_alg_none_refused(void **state)
{
    struct fixture *f = *state;
    json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "none", "typ", "JWT", "kid", f->srv.sign_kid);
    json_t *c = good_claims();
    char *hb = b64url_json(h), *pb = b64url_json(c);
    char *with_empty_sig = compact(hb, pb, "");
    /* also with a non-empty "signature", so the refusal is the alg, not the empty part */
    char *with_sig = compact(hb, pb, "c2lnbmF0dXJl");
    assert_int_equal(verdict(f, with_empty_sig), TOKEN_MALFORMED);
    assert_int_equal(verdict(f, with_sig), TOKEN_MALFORMED);
    /* "None" with different case too */
    json_decref(h);
    h = json_pack("{s:s, s:s, s:s}", "alg", "None", "typ", "JWT", "kid", f->srv.sign_kid);
    free(hb);
    hb = b64url_json(h);
    free(with_sig);
    with_sig = compact(hb, pb, "c2lnbmF0dXJl");
    assert_int_equal(verdict(f, with_sig), TOKEN_MALFORMED);
    free(hb), free(pb), free(with_empty_sig), free(with_sig);
    json_decref(h), json_decref(c);
}

/* The RS256 → HS256 confusion: an attacker "signs" with HMAC keyed by our public key (PEM and
 * DER), which a validator trusting the header's alg would accept. */
static void test_hs256_with_public_key_refused(void **state)
{
    struct fixture *f = *state;
    mv_buf pem;
    mv_buf_init(&pem, 16384);
    assert_int_equal(keys_public_pem(f->srv.sign_key, &pem), MV_OK);
    unsigned char *der = NULL;
    int derlen = i2d_PUBKEY(f->srv.sign_key, &der);
    assert_true(derlen > 0);

    json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "typ", "JWT", "kid", f->srv.sign_kid);
    json_t *c = good_claims();
    char *hb = b64url_json(h), *pb = b64url_json(c);
    mv_buf input;
    mv_buf_init(&input, MV_MAX_TOKEN_BYTES);
    assert_int_equal(mv_buf_addf(&input, "%s.%s", hb, pb), MV_OK);

    const struct {
        const void *key;
        size_t len;
    } secrets[] = {{pem.p, pem.len}, {der, (size_t)derlen}};
    for (size_t i = 0; i < 2; i++) {
        unsigned char mac[32];
        unsigned int maclen = 0;
        assert_non_null(HMAC(EVP_sha256(), secrets[i].key, (int)secrets[i].len,
                             (const unsigned char *)input.p, input.len, mac, &maclen));
        mv_buf sb;
        mv_buf_init(&sb, 128);
        assert_int_equal(b64url_encode(&sb, mac, maclen), MV_OK);
        char *tok = compact(hb, pb, sb.p);
        assert_int_equal(verdict(f, tok), TOKEN_MALFORMED);
        free(tok);
        mv_buf_free(&sb);
    }
    OPENSSL_free(der);
    mv_buf_free(&pem);
    mv_buf_free(&input);
    free(hb), free(pb);
    json_decref(h), json_decref(c);
}

static void test_es256_refused(void **state)
{
    struct fixture *f = *state;
    char *tok = sign(f->ec, JWS_ES256, f->srv.sign_kid, good_claims());
    assert_int_equal(verdict(f, tok), TOKEN_MALFORMED);
    free(tok);
}

static void test_unknown_kid_refused(void **state)
{
    struct fixture *f = *state;
    /* signed by a key not in the JWKS, under its own kid */
    char *tok = sign(f->other, JWS_RS256, f->other_kid, good_claims());
    assert_int_equal(verdict(f, tok), TOKEN_BAD_SIGNATURE);
    free(tok);
    /* ... or under our kid: the key found by kid does not verify it */
    tok = sign(f->other, JWS_RS256, f->srv.sign_kid, good_claims());
    assert_int_equal(verdict(f, tok), TOKEN_BAD_SIGNATURE);
    free(tok);
}

/* An unknown kid reloads the key set at most once per interval; a later reload picks up a
 * key added to the store (by another server sharing it, say). */
static void test_unknown_kid_reload_rate_limited(void **state)
{
    struct fixture *f = *state;
    char *tok = sign(f->other, JWS_RS256, f->other_kid, good_claims());
    assert_int_equal(verdict(f, tok), TOKEN_BAD_SIGNATURE);
    int64_t loaded = f->keys.loaded_ms;
    assert_true(loaded > 0);

    /* The store now has the other key, but within the interval nothing is reloaded. */
    put_key(f, f->other, f->other_kid, 0);
    assert_int_equal(verdict(f, tok), TOKEN_BAD_SIGNATURE);
    assert_int_equal(f->keys.loaded_ms, loaded);
    assert_int_equal(f->keys.n, 1);

    /* Once the interval has passed, the unknown kid triggers a reload and the token passes. */
    f->keys.loaded_ms -= 6000;
    assert_int_equal(verdict(f, tok), TOKEN_OK);
    assert_int_equal(f->keys.n, 2);
    free(tok);

    /* retired long ago: out of the set again for the tests that follow */
    put_key(f, f->other, f->other_kid, 1);
    token_keyset_free(&f->keys);
    assert_int_equal(f->keys.n, 0);
    assert_int_equal(f->keys.loaded_ms, 0);
}

/* The key set holds what the JWKS publishes: a retired key while tokens it signed may still be
 * valid, not after; keys that do not parse are skipped, the others kept. */
static void test_keyset_follows_retirement(void **state)
{
    struct fixture *f = *state;
    char *tok = sign(f->other, JWS_RS256, f->other_kid, good_claims());
    int64_t now = mv_now();
    put_key(f, f->other, f->other_kid, now - 3600 - MV_CLOCK_SKEW_SECS - 1);
    assert_int_equal(verdict(f, tok), TOKEN_BAD_SIGNATURE);
    assert_int_equal(f->keys.n, 1);

    put_key(f, f->other, f->other_kid, now - 60);
    assert_int_equal(token_keyset_reload(&f->keys, f->st, 3600), MV_OK);
    assert_int_equal(f->keys.n, 2);
    assert_int_equal(verdict(f, tok), TOKEN_OK);
    assert_true(token_key_published(0, now, 3600));
    assert_false(token_key_published(now - 3600 - MV_CLOCK_SKEW_SECS, now, 3600));

    struct st_signing_key bad = {.kid = "bad", .sealed_private_b64 = (char *)"unused",
                                 .public_pem = (char *)"not a key", .x5c_b64 = (char *)"",
                                 .created = now};
    assert_int_equal(store_signing_key_put(f->st, &bad), MV_OK);
    assert_int_equal(token_keyset_reload(&f->keys, f->st, 3600), MV_OK);
    assert_int_equal(f->keys.n, 2);
    assert_int_equal(verdict(f, tok), TOKEN_OK);
    free(tok);

    bad.retired = 1;
    assert_int_equal(store_signing_key_put(f->st, &bad), MV_OK);
    put_key(f, f->other, f->other_kid, 1);
    token_keyset_free(&f->keys);
}

static void test_tampered_payload_refused(void **state)
{
    struct fixture *f = *state;
    char *tok = sign(f->srv.sign_key, JWS_RS256, f->srv.sign_kid, good_claims());
    assert_int_equal(verdict(f, tok), TOKEN_OK);
    /* swap in a payload naming another principal, keep header and signature */
    json_t *c = good_claims();
    json_object_set_new(c, "oid", json_string("22222222-2222-4222-8222-222222222222"));
    char *pb = b64url_json(c);
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    *d1 = '\0';
    char *forged = compact(tok, pb, d2 + 1);
    assert_int_equal(verdict(f, forged), TOKEN_BAD_SIGNATURE);
    /* one flipped signature character */
    *d1 = '.';
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verdict(f, tok), TOKEN_BAD_SIGNATURE);
    free(tok), free(pb), free(forged);
    json_decref(c);
}

static void test_expired_refused(void **state)
{
    struct fixture *f = *state;
    int64_t now = mv_now();
    json_t *c = good_claims();
    json_object_set_new(c, "exp", json_integer(now - MV_CLOCK_SKEW_SECS - 5));
    assert_int_equal(verdict_claims(f, c), TOKEN_EXPIRED);
    /* within the skew: still accepted */
    c = good_claims();
    json_object_set_new(c, "exp", json_integer(now - 10));
    assert_int_equal(verdict_claims(f, c), TOKEN_OK);
    /* no exp at all, or a string exp */
    c = good_claims();
    json_object_del(c, "exp");
    assert_int_equal(verdict_claims(f, c), TOKEN_MALFORMED);
    c = good_claims();
    json_object_set_new(c, "exp", json_string("99999999999"));
    assert_int_equal(verdict_claims(f, c), TOKEN_MALFORMED);
}

static void test_not_yet_valid_refused(void **state)
{
    struct fixture *f = *state;
    int64_t now = mv_now();
    json_t *c = good_claims();
    json_object_set_new(c, "nbf", json_integer(now + MV_CLOCK_SKEW_SECS + 60));
    assert_int_equal(verdict_claims(f, c), TOKEN_NOT_YET_VALID);
    c = good_claims();
    json_object_set_new(c, "nbf", json_integer(now + 60));
    assert_int_equal(verdict_claims(f, c), TOKEN_OK);
}

static void test_wrong_issuer_refused(void **state)
{
    struct fixture *f = *state;
    struct token_info info;
    json_t *c = good_claims();
    json_object_set_new(c, "iss", json_string("https://sts.windows.net/" TID "/"));
    char *tok = sign(f->srv.sign_key, JWS_RS256, f->srv.sign_kid, c);
    assert_int_equal(check(f, tok, strlen(tok), &info), TOKEN_BAD_ISSUER);
    assert_string_equal(info.iss, "https://sts.windows.net/" TID "/"); /* for the message */
    assert_string_equal(info.aud, VAULT);
    free(tok);
    /* the trailing slash matters (reference §3.2) */
    c = good_claims();
    json_object_set_new(c, "iss", json_string("https://127.0.0.1:8443/" TID));
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_ISSUER);
    c = good_claims();
    json_object_del(c, "iss");
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_ISSUER);
}

static void test_wrong_tenant_refused(void **state)
{
    struct fixture *f = *state;
    json_t *c = good_claims();
    json_object_set_new(c, "tid", json_string(OTHER_TID));
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_TENANT);
    c = good_claims();
    json_object_del(c, "tid");
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_TENANT);
}

static void test_wrong_audience_refused(void **state)
{
    struct fixture *f = *state;
    struct token_info info;
    json_t *c = good_claims();
    json_object_set_new(c, "aud", json_string("https://management.azure.com"));
    char *tok = sign(f->srv.sign_key, JWS_RS256, f->srv.sign_kid, c);
    assert_int_equal(check(f, tok, strlen(tok), &info), TOKEN_BAD_AUDIENCE);
    assert_string_equal(info.aud, "https://management.azure.com");
    free(tok);
    /* exact string comparison: a trailing slash is another audience */
    c = good_claims();
    json_object_set_new(c, "aud", json_string(VAULT "/"));
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_AUDIENCE);
    c = good_claims();
    json_object_set_new(c, "aud", json_string("HTTPS://VAULT.AZURE.NET"));
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_AUDIENCE);
    /* the other accepted audience passes */
    c = good_claims();
    json_object_set_new(c, "aud", json_string("https://vault.localhost:8443"));
    assert_int_equal(verdict_claims(f, c), TOKEN_OK);
    /* an array aud is not what we issue */
    c = good_claims();
    json_object_set_new(c, "aud", json_pack("[s]", VAULT));
    assert_int_equal(verdict_claims(f, c), TOKEN_BAD_AUDIENCE);
}

static void test_missing_kid_refused(void **state)
{
    struct fixture *f = *state;
    char *tok = sign(f->srv.sign_key, JWS_RS256, NULL, good_claims());
    assert_int_equal(verdict(f, tok), TOKEN_MALFORMED);
    free(tok);
}

static void test_missing_oid_refused(void **state)
{
    struct fixture *f = *state;
    json_t *c = good_claims();
    json_object_del(c, "oid");
    assert_int_equal(verdict_claims(f, c), TOKEN_MALFORMED);
    c = good_claims();
    json_object_set_new(c, "oid", json_string(""));
    assert_int_equal(verdict_claims(f, c), TOKEN_MALFORMED);
}

static void test_garbage_refused(void **state)
{
    struct fixture *f = *state;
    struct token_info info;
    const char *bad[] = {"abc", "a.b.c", "..", "a.b", "a.b.c.d", "eyJhbGciOiJSUzI1NiJ9..",
                         "\xff\xfe.\x01.\x02", "Bearer x.y.z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(verdict(f, bad[i]), TOKEN_MALFORMED);
    assert_int_equal(check(f, "", 0, &info), TOKEN_MALFORMED);
    assert_int_equal(check(f, NULL, 0, &info), TOKEN_MALFORMED);
    /* header and payload that are JSON but not objects */
    char *tok = compact("WzFd", "WzFd", "c2ln"); /* [1] . [1] . sig */
    assert_int_equal(verdict(f, tok), TOKEN_MALFORMED);
    free(tok);
    /* oversized */
    size_t big = MV_MAX_TOKEN_BYTES + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[10] = '.', huge[20] = '.';
    huge[big] = '\0';
    assert_int_equal(check(f, huge, big, &info), TOKEN_MALFORMED);
    free(huge);
}

static void test_token_from_authorization(void **state)
{
    (void)state;
    size_t len = 0;
    const char *t = token_from_authorization("Bearer abc.def.ghi", &len);
    assert_non_null(t);
    assert_int_equal(len, 11);
    assert_memory_equal(t, "abc.def.ghi", 11);
    t = token_from_authorization("bearer abc.def.ghi", &len);
    assert_non_null(t);
    assert_int_equal(len, 11);
    t = token_from_authorization("BEARER  a-_~+/b==", &len);
    assert_non_null(t);
    assert_int_equal(len, 9);
    const char *bad[] = {NULL, "", "Bearer", "Bearer ", "Bearer   ", "Basic abc",
                         "Bearerabc", "Bearer a b", "Bearer abc ", "Bearer a\tb",
                         "Bearer ab=c", "Bearer ===", "Bearer a\r\nX: y", "Token abc"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(token_from_authorization(bad[i], &len));
    /* length cap */
    size_t n = 7 + MV_MAX_TOKEN_BYTES + 1;
    char *h = malloc(n + 1);
    memcpy(h, "Bearer ", 7);
    memset(h + 7, 'a', n - 7);
    h[n] = '\0';
    assert_null(token_from_authorization(h, &len));
    h[n - 1] = '\0'; /* exactly MV_MAX_TOKEN_BYTES */
    assert_non_null(token_from_authorization(h, &len));
    assert_int_equal(len, MV_MAX_TOKEN_BYTES);
    free(h);
}

/* authority_issue: the header and each claim of reference §3.1 / §3.2. */
static void test_issue_claims_shape(void **state)
{
    struct fixture *f = *state;
    struct st_principal p = {.id = OID, .client_id = APPID, .kind = ST_PRINCIPAL_USER,
                             .resource_id = MIRID};
    const char *resource = "https://management.core.windows.net/"; /* trailing slash kept */
    mv_buf tok;
    int64_t exp = 0;
    int64_t before = mv_now();
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    assert_int_equal(authority_issue(&f->srv, &p, resource, &tok, &exp), MV_OK);
    int64_t after = mv_now();

    jwt t;
    assert_int_equal(jwt_parse(tok.p, tok.len, JWS_ALLOW(JWS_RS256), &t), MV_OK);
    assert_int_equal(jwt_verify(&t, f->srv.sign_key), MV_OK);
    assert_string_equal(json_string_value(json_object_get(t.header, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(t.header, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(t.header, "kid")), f->srv.sign_kid);
    assert_string_equal(json_string_value(json_object_get(t.header, "x5t")), f->srv.sign_kid);

    assert_string_equal(jwt_claim_str(&t, "aud"), resource);
    assert_string_equal(jwt_claim_str(&t, "iss"), ISSUER);
    assert_int_equal(jwt_claim_str(&t, "iss")[strlen(ISSUER) - 1], '/');
    assert_string_equal(jwt_claim_str(&t, "idp"), ISSUER);
    long long iat = 0, nbf = 0, cexp = 0;
    assert_int_equal(jwt_claim_int(&t, "iat", &iat), MV_OK);
    assert_int_equal(jwt_claim_int(&t, "nbf", &nbf), MV_OK);
    assert_int_equal(jwt_claim_int(&t, "exp", &cexp), MV_OK);
    assert_true(iat >= before && iat <= after);
    assert_int_equal(nbf, iat);
    assert_int_equal(cexp, iat + 3600);
    assert_int_equal(cexp, exp);
    assert_string_equal(jwt_claim_str(&t, "appid"), APPID);
    assert_string_equal(jwt_claim_str(&t, "appidacr"), "2");
    assert_string_equal(jwt_claim_str(&t, "idtyp"), "app");
    assert_string_equal(jwt_claim_str(&t, "oid"), OID);
    assert_string_equal(jwt_claim_str(&t, "sub"), OID);
    assert_string_equal(jwt_claim_str(&t, "tid"), TID);
    assert_string_equal(jwt_claim_str(&t, "ver"), "1.0");
    assert_string_equal(jwt_claim_str(&t, "xms_mirid"), MIRID);
    const char *uti = jwt_claim_str(&t, "uti");
    assert_non_null(uti);
    assert_int_equal(strlen(uti), 22);
    assert_int_equal(strspn(uti, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     22);
    assert_true(jwt_claim_str(&t, "aio") && *jwt_claim_str(&t, "aio"));
    assert_true(jwt_claim_str(&t, "rh") && *jwt_claim_str(&t, "rh"));
    /* integers are JSON integers, nothing else is in the token */
    assert_true(json_is_integer(json_object_get(t.claims, "exp")));
    assert_int_equal(json_object_size(t.claims), 17);
    /* and it validates for exactly that audience */
    const char *const mgmt[] = {resource, NULL};
    struct token_info info;
    enum token_failure why;
    f->tv.audiences = mgmt;
    assert_int_equal(token_validate(&f->tv, tok.p, tok.len, &info, &why), MV_OK);
    assert_int_equal(why, TOKEN_OK);
    const char *const no_slash[] = {"https://management.core.windows.net", NULL};
    f->tv.audiences = no_slash;
    assert_int_not_equal(token_validate(&f->tv, tok.p, tok.len, &info, &why), MV_OK);
    assert_int_equal(why, TOKEN_BAD_AUDIENCE);
    f->tv.audiences = AUDS;
    jwt_free(&t);

    /* two tokens never share uti; an admin (no resource id) gets no xms_mirid */
    mv_buf tok2;
    mv_buf_init(&tok2, MV_MAX_TOKEN_BYTES);
    struct st_principal admin = {.id = OID, .client_id = APPID, .kind = ST_PRINCIPAL_ADMIN};
    assert_int_equal(authority_issue(&f->srv, &admin, VAULT, &tok2, NULL), MV_OK);
    jwt t2;
    assert_int_equal(jwt_parse(tok2.p, tok2.len, JWS_ALLOW(JWS_RS256), &t2), MV_OK);
    assert_null(json_object_get(t2.claims, "xms_mirid"));
    assert_int_equal(json_object_size(t2.claims), 16);
    assert_int_equal(jwt_parse(tok.p, tok.len, JWS_ALLOW(JWS_RS256), &t), MV_OK);
    assert_string_not_equal(jwt_claim_str(&t, "uti"), jwt_claim_str(&t2, "uti"));
    jwt_free(&t);
    jwt_free(&t2);
    mv_buf_free(&tok);
    mv_buf_free(&tok2);
}

static void test_issue_default_lifetime_and_no_key(void **state)
{
    struct fixture *f = *state;
    struct st_principal p = {.id = OID, .client_id = APPID, .kind = ST_PRINCIPAL_SYSTEM};
    mv_buf tok;
    int64_t exp = 0;
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    f->srv.token_lifetime = 0;
    int64_t now = mv_now();
    assert_int_equal(authority_issue(&f->srv, &p, VAULT, &tok, &exp), MV_OK);
    assert_true(exp >= now + MV_TOKEN_LIFETIME_SECS && exp <= now + MV_TOKEN_LIFETIME_SECS + 2);
    f->srv.token_lifetime = 3600;
    mv_buf_free(&tok);
    /* no signing key loaded: refused, nothing written */
    EVP_PKEY *k = f->srv.sign_key;
    f->srv.sign_key = NULL;
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    assert_int_not_equal(authority_issue(&f->srv, &p, VAULT, &tok, &exp), MV_OK);
    assert_int_equal(tok.len, 0);
    f->srv.sign_key = k;
    mv_buf_free(&tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_token_fills_info),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_hs256_with_public_key_refused),
        cmocka_unit_test(test_es256_refused),
        cmocka_unit_test(test_unknown_kid_refused),
        cmocka_unit_test(test_unknown_kid_reload_rate_limited),
        cmocka_unit_test(test_keyset_follows_retirement),
        cmocka_unit_test(test_tampered_payload_refused),
        cmocka_unit_test(test_expired_refused),
        cmocka_unit_test(test_not_yet_valid_refused),
        cmocka_unit_test(test_wrong_issuer_refused),
        cmocka_unit_test(test_wrong_tenant_refused),
        cmocka_unit_test(test_wrong_audience_refused),
        cmocka_unit_test(test_missing_kid_refused),
        cmocka_unit_test(test_missing_oid_refused),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_token_from_authorization),
        cmocka_unit_test(test_issue_claims_shape),
        cmocka_unit_test(test_issue_default_lifetime_and_no_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
