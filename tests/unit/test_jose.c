/* test_jose.c: base64/base64url, keys, JWK and JWS/JWT (src/common/b64.c, src/crypto/keys.c,
 * jwk.c, jws.c): round trips, a known-answer vector from RFC 7515 A.3, and every refusal a token
 * validator must make (alg none, HS256 key confusion, allowlist, tampering, wrong key or key
 * type, malformed compact forms, oversize, duplicate members, deep nesting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/limits.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/keys.h"

/* Keys shared by the tests (RSA generation is slow): made once in the group setup. */
static EVP_PKEY *rsa, *rsa2, *ec, *ec2;
static jws_verifier *verifiers[4]; /* of rsa, rsa2, ec, ec2: see verifier_of */

static const unsigned ALLOW_RS = JWS_ALLOW(JWS_RS256);
static const unsigned ALLOW_ES = JWS_ALLOW(JWS_ES256);
static const unsigned ALLOW_BOTH = JWS_ALLOW(JWS_RS256) | JWS_ALLOW(JWS_ES256);

static int setup(void **state)
{
    (void)state;
    if (keys_gen_rsa(2048, &rsa) != MV_OK || keys_gen_rsa(2048, &rsa2) != MV_OK ||
        keys_gen_ec_p256(&ec) != MV_OK || keys_gen_ec_p256(&ec2) != MV_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < 4; i++)
        jws_verifier_free(verifiers[i]);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec2);
    return 0;
}

/* ---- helpers ---- */

static json_t *claims_sample(void)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "iss", "https://sts.example/t/", "aud",
                     "https://vault.azure.net", "iat", (json_int_t)1700000000, "exp",
                     (json_int_t)1700086400);
}

/* A signed token as a malloc'd string. */
static char *sign_sample(EVP_PKEY *k, enum jws_alg alg, const char *kid)
{
    mv_buf out;
    mv_buf_init(&out, MV_MAX_TOKEN_BYTES);
    json_t *c = claims_sample();
    assert_int_equal(jws_sign(k, alg, kid, c, &out), MV_OK);
    json_decref(c);
    return mv_buf_take(&out);
}

static char *b64url_str(const void *p, size_t n)
{
    mv_buf b;
    mv_buf_init(&b, 1 << 20);
    assert_int_equal(b64url_encode(&b, p, n), MV_OK);
    return mv_buf_take(&b);
}

/* header_json . payload_json . sig_b64 (sig_b64 taken verbatim). */
static char *forge(const char *header_json, const char *payload_json, const char *sig_b64)
{
    char *h = b64url_str(header_json, strlen(header_json));
    char *p = b64url_str(payload_json, strlen(payload_json));
    mv_buf b;
    mv_buf_init(&b, 1 << 20);
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", h, p, sig_b64), MV_OK);
    free(h);
    free(p);
    return mv_buf_take(&b);
}

/* One jws_verifier per shared key, made once and reused by every check (as a worker reuses
 * its verifiers), so the verifier sees the same tokens as jwt_verify, failures included. */
static jws_verifier *verifier_of(EVP_PKEY *key)
{
    jws_verifier **v = verifiers;
    EVP_PKEY *keys[4] = {rsa, rsa2, ec, ec2};
    for (size_t i = 0; i < 4; i++) {
        if (keys[i] != key)
            continue;
        if (!v[i])
            assert_int_equal(jws_verifier_new(key, &v[i]), MV_OK);
        return v[i];
    }
    return NULL;
}

/* Parses with the allowlist and, if that succeeds, verifies with key, both with jwt_verify and
 * with a reused jws_verifier (for the shared keys), which must agree. */
static mv_rc parse_verify(const char *tok, size_t len, unsigned allowed, EVP_PKEY *key)
{
    jwt t;
    mv_rc rc = jwt_parse(tok, len, allowed, &t);
    if (rc == MV_OK) {
        rc = jwt_verify(&t, key);
        jws_verifier *v = verifier_of(key);
        if (v)
            assert_int_equal(jwt_verify_with(&t, v), rc);
        jwt_free(&t);
    }
    return rc;
}

static mv_rc parse_str(const char *tok, unsigned allowed)
{
    jwt t;
    mv_rc rc = jwt_parse(tok, strlen(tok), allowed, &t);
    jwt_free(&t);
    return rc;
}

/* The three parts of a token (pointers into a copy the caller frees through parts[0]). */
static void split3(const char *tok, char *parts[3])
{
    char *c = strdup(tok);
    parts[0] = c;
    parts[1] = strchr(c, '.');
    assert_non_null(parts[1]);
    *parts[1]++ = '\0';
    parts[2] = strchr(parts[1], '.');
    assert_non_null(parts[2]);
    *parts[2]++ = '\0';
}

/* ---- base64 ---- */

static void test_b64_round_trips(void **state)
{
    (void)state;
    unsigned char in[64];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 250);
    for (size_t n = 0; n <= sizeof in; n++) {
        mv_buf e, d;
        mv_buf_init(&e, 256);
        mv_buf_init(&d, 256);
        assert_int_equal(b64url_encode(&e, in, n), MV_OK);
        assert_null(memchr(e.p, '=', e.len));
        assert_null(memchr(e.p, '+', e.len));
        assert_null(memchr(e.p, '/', e.len));
        assert_int_equal(b64url_decode(&d, e.p, e.len), MV_OK);
        assert_int_equal(d.len, n);
        assert_memory_equal(d.p, in, n);
        mv_buf_reset(&e);
        mv_buf_reset(&d);
        assert_int_equal(b64_encode(&e, in, n), MV_OK);
        assert_int_equal(e.len % 4, 0);
        assert_int_equal(b64_decode(&d, e.p, e.len), MV_OK);
        assert_int_equal(d.len, n);
        assert_memory_equal(d.p, in, n);
        mv_buf_free(&e);
        mv_buf_free(&d);
    }
    /* RFC 4648 §10 vectors. */
    mv_buf e;
    mv_buf_init(&e, 64);
    assert_int_equal(b64_encode(&e, "foobar", 6), MV_OK);
    assert_string_equal(e.p, "Zm9vYmFy");
    mv_buf_reset(&e);
    assert_int_equal(b64_encode(&e, "fo", 2), MV_OK);
    assert_string_equal(e.p, "Zm8=");
    mv_buf_reset(&e);
    assert_int_equal(b64url_encode(&e, "\xfb\xff", 2), MV_OK);
    assert_string_equal(e.p, "-_8");
    mv_buf_free(&e);
}

static void test_b64_rejects(void **state)
{
    (void)state;
    static const char *bad_url[] = {"ab+c", "ab/c", "a b=", "abc*", "ab\ncd", "abcde", "a"};
    static const char *bad_std[] = {"ab-c", "ab_c", "Zm9v!mFy", "Zm9vY", "Z"};
    for (size_t i = 0; i < sizeof bad_url / sizeof *bad_url; i++) {
        mv_buf d;
        mv_buf_init(&d, 64);
        assert_int_equal(b64url_decode(&d, bad_url[i], strlen(bad_url[i])), MV_ERR_BAD_REQUEST);
        mv_buf_free(&d);
    }
    for (size_t i = 0; i < sizeof bad_std / sizeof *bad_std; i++) {
        mv_buf d;
        mv_buf_init(&d, 64);
        assert_int_equal(b64_decode(&d, bad_std[i], strlen(bad_std[i])), MV_ERR_BAD_REQUEST);
        mv_buf_free(&d);
    }
    /* The cap holds while decoding. */
    mv_buf d;
    mv_buf_init(&d, 2);
    assert_int_equal(b64url_decode(&d, "Zm9vYmFy", 8), MV_ERR_LIMIT);
    mv_buf_free(&d);
}

/* ---- keys ---- */

static void test_keys_pem_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *keys[] = {rsa, ec};
    for (size_t i = 0; i < 2; i++) {
        mv_buf priv, pub;
        mv_buf_init(&priv, 16384);
        mv_buf_init(&pub, 16384);
        EVP_PKEY *a = NULL, *b = NULL;
        assert_int_equal(keys_private_pem(keys[i], &priv), MV_OK);
        assert_non_null(strstr(priv.p, "-----BEGIN PRIVATE KEY-----"));
        assert_int_equal(keys_public_pem(keys[i], &pub), MV_OK);
        assert_non_null(strstr(pub.p, "-----BEGIN PUBLIC KEY-----"));
        assert_int_equal(keys_from_private_pem(priv.p, priv.len, &a), MV_OK);
        assert_int_equal(keys_from_public_pem(pub.p, pub.len, &b), MV_OK);
        assert_int_equal(EVP_PKEY_eq(a, keys[i]), 1);
        assert_int_equal(EVP_PKEY_eq(b, keys[i]), 1);
        /* A public PEM is not a private key, and garbage is nothing. */
        EVP_PKEY *c = NULL;
        assert_int_equal(keys_from_private_pem(pub.p, pub.len, &c), MV_ERR_BAD_REQUEST);
        assert_null(c);
        static const char junk[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n";
        assert_int_equal(keys_from_public_pem(junk, strlen(junk), &c), MV_ERR_BAD_REQUEST);
        assert_null(c);
        EVP_PKEY_free(a);
        EVP_PKEY_free(b);
        mv_buf_free_secret(&priv);
        mv_buf_free(&pub);
    }
}

static void test_keys_refuse_weak_rsa(void **state)
{
    (void)state;
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(weak);
    mv_buf pem;
    mv_buf_init(&pem, 16384);
    assert_int_equal(keys_public_pem(weak, &pem), MV_OK);
    EVP_PKEY *k = NULL;
    assert_int_equal(keys_from_public_pem(pem.p, pem.len, &k), MV_ERR_BAD_REQUEST);
    assert_null(k);
    EVP_PKEY *g = NULL;
    assert_int_not_equal(keys_gen_rsa(1024, &g), MV_OK);
    assert_null(g);
    mv_buf_free(&pem);
    EVP_PKEY_free(weak);
}

static void test_keys_thumbprint(void **state)
{
    (void)state;
    char a[32], b[32], c[32];
    assert_int_equal(keys_thumbprint(rsa, a), MV_OK);
    assert_int_equal(strlen(a), 27);
    assert_int_equal(keys_thumbprint(rsa, b), MV_OK);
    assert_string_equal(a, b);
    assert_int_equal(keys_thumbprint(rsa2, c), MV_OK);
    assert_string_not_equal(a, c);
    /* Independent computation: base64url(SHA-1(DER SPKI)). */
    unsigned char *der = NULL, md[20];
    int n = i2d_PUBKEY(rsa, &der);
    assert_true(n > 0);
    size_t mdlen = 0;
    assert_int_equal(EVP_Q_digest(NULL, "SHA1", NULL, der, (size_t)n, md, &mdlen), 1);
    assert_int_equal(mdlen, sizeof md);
    char *want = b64url_str(md, sizeof md);
    assert_string_equal(a, want);
    free(want);
    OPENSSL_free(der);
    /* The public half has the same thumbprint as the private key. */
    mv_buf pem;
    mv_buf_init(&pem, 4096);
    EVP_PKEY *pub = NULL;
    assert_int_equal(keys_public_pem(ec, &pem), MV_OK);
    assert_int_equal(keys_from_public_pem(pem.p, pem.len, &pub), MV_OK);
    assert_int_equal(keys_thumbprint(ec, a), MV_OK);
    assert_int_equal(keys_thumbprint(pub, b), MV_OK);
    assert_string_equal(a, b);
    EVP_PKEY_free(pub);
    mv_buf_free(&pem);
}

static void test_keys_types(void **state)
{
    (void)state;
    assert_true(keys_is_rsa(rsa));
    assert_false(keys_is_ec_p256(rsa));
    assert_true(keys_is_ec_p256(ec));
    assert_false(keys_is_rsa(ec));
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(p384);
    assert_false(keys_is_ec_p256(p384));
    EVP_PKEY_free(p384);
}

/* ---- JWS sign / parse / verify ---- */

static void check_round_trip(EVP_PKEY *k, enum jws_alg alg, const char *algname)
{
    char *tok = sign_sample(k, alg, "kid-1");
    jwt t;
    assert_int_equal(jwt_parse(tok, strlen(tok), ALLOW_BOTH, &t), MV_OK);
    assert_int_equal(t.alg, alg);
    assert_string_equal(t.kid, "kid-1");
    assert_string_equal(json_string_value(json_object_get(t.header, "alg")), algname);
    assert_string_equal(json_string_value(json_object_get(t.header, "typ")), "JWT");
    if (alg == JWS_RS256) {
        assert_string_equal(json_string_value(json_object_get(t.header, "x5t")), "kid-1");
        assert_int_equal(t.signature.len, 256);
    } else {
        assert_null(json_object_get(t.header, "x5t"));
        assert_int_equal(t.signature.len, 64);
    }
    assert_string_equal(jwt_claim_str(&t, "aud"), "https://vault.azure.net");
    long long exp = 0;
    assert_int_equal(jwt_claim_int(&t, "exp", &exp), MV_OK);
    assert_int_equal(exp, 1700086400LL);
    assert_int_equal(jwt_verify(&t, k), MV_OK);
    /* signing_input is the first two parts. */
    assert_int_equal(t.signing_input.len, (size_t)(strrchr(tok, '.') - tok));
    assert_memory_equal(t.signing_input.p, tok, t.signing_input.len);
    jwt_free(&t);
    free(tok);
}

static void test_rs256_round_trip(void **state)
{
    (void)state;
    check_round_trip(rsa, JWS_RS256, "RS256");
}

static void test_es256_round_trip(void **state)
{
    (void)state;
    check_round_trip(ec, JWS_ES256, "ES256");
}

static void test_header_is_compact_json(void **state)
{
    (void)state;
    char *tok = sign_sample(rsa, JWS_RS256, "abc");
    char *parts[3];
    split3(tok, parts);
    mv_buf h;
    mv_buf_init(&h, 1024);
    assert_int_equal(b64url_decode(&h, parts[0], strlen(parts[0])), MV_OK);
    assert_string_equal(h.p, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"abc\",\"x5t\":\"abc\"}");
    mv_buf_free(&h);
    free(parts[0]);
    free(tok);
    /* Without kid: no kid, no x5t, and parse reports kid NULL. */
    tok = sign_sample(ec, JWS_ES256, NULL);
    jwt t;
    assert_int_equal(jwt_parse(tok, strlen(tok), ALLOW_ES, &t), MV_OK);
    assert_null(t.kid);
    assert_null(json_object_get(t.header, "x5t"));
    jwt_free(&t);
    free(tok);
}

/* RFC 7515 Appendix A.3: the ES256 example verifies, proving the R || S form and byte order. */
static void test_es256_rfc7515_a3(void **state)
{
    (void)state;
    static const char tok[] =
        "eyJhbGciOiJFUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ"
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
                            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y",
                            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
    EVP_PKEY *k = NULL;
    assert_int_equal(jwk_to_public(jwk, &k), MV_OK);
    jwt t;
    assert_int_equal(jwt_parse(tok, strlen(tok), ALLOW_ES, &t), MV_OK);
    assert_string_equal(jwt_claim_str(&t, "iss"), "joe");
    long long exp = 0;
    assert_int_equal(jwt_claim_int(&t, "exp", &exp), MV_OK);
    assert_int_equal(exp, 1300819380LL);
    assert_int_equal(jwt_verify(&t, k), MV_OK);
    assert_int_equal(jwt_verify(&t, ec), MV_ERR_UNAUTHENTICATED);
    jwt_free(&t);
    EVP_PKEY_free(k);
    json_decref(jwk);
}

static void test_reject_alg_none(void **state)
{
    (void)state;
    static const char *hdrs[] = {"{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}",
                                 "{\"alg\":\"NONE\"}", "{\"typ\":\"JWT\"}", "{\"alg\":null}",
                                 "{\"alg\":\"\"}", "{\"alg\":\"rs256\"}", "{\"alg\":[\"RS256\"]}"};
    for (size_t i = 0; i < sizeof hdrs / sizeof *hdrs; i++) {
        /* With an empty signature (the classic form) and with some signature bytes. */
        char *a = forge(hdrs[i], "{\"sub\":\"x\"}", "");
        char *b = forge(hdrs[i], "{\"sub\":\"x\"}", "AAAA");
        assert_int_equal(parse_str(a, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
        assert_int_equal(parse_str(b, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
        free(a);
        free(b);
    }
}

/* The classic key-confusion attack: HMAC-SHA256 keyed with the RSA public key PEM. */
static void test_reject_hs256_with_public_key(void **state)
{
    (void)state;
    mv_buf pem;
    mv_buf_init(&pem, 4096);
    assert_int_equal(keys_public_pem(rsa, &pem), MV_OK);
    char *unsigned_tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}", "");
    size_t inlen = strlen(unsigned_tok) - 1; /* drop the trailing '.' */
    unsigned char mac[32];
    size_t maclen = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem.p, pem.len,
                              (unsigned char *)unsigned_tok, inlen, mac, sizeof mac, &maclen));
    char *sig = b64url_str(mac, maclen);
    char *tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}", sig);
    assert_int_equal(parse_str(tok, ALLOW_RS), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(tok, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
    /* HS384/HS512/PS256 are no better. */
    static const char *others[] = {"{\"alg\":\"HS384\"}", "{\"alg\":\"HS512\"}",
                                   "{\"alg\":\"PS256\"}", "{\"alg\":\"ES384\"}"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        char *o = forge(others[i], "{}", sig);
        assert_int_equal(parse_str(o, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
        free(o);
    }
    free(tok);
    free(sig);
    free(unsigned_tok);
    mv_buf_free(&pem);
}

static void test_reject_alg_not_allowed(void **state)
{
    (void)state;
    char *es = sign_sample(ec, JWS_ES256, "k");
    char *rs = sign_sample(rsa, JWS_RS256, "k");
    assert_int_equal(parse_str(es, ALLOW_RS), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(rs, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(es, ALLOW_ES), MV_OK);
    assert_int_equal(parse_str(rs, ALLOW_RS), MV_OK);
    /* A mask from OR-ed bare enum values (bit 0 set), zero, or unknown bits is a bug. */
    assert_int_equal(parse_str(rs, (unsigned)JWS_RS256 | (unsigned)JWS_ES256), MV_ERR_INTERNAL);
    assert_int_equal(parse_str(rs, 0), MV_ERR_INTERNAL);
    assert_int_equal(parse_str(rs, ALLOW_RS | 0x100u), MV_ERR_INTERNAL);
    free(es);
    free(rs);
}

static void check_tampered_payload(EVP_PKEY *k, enum jws_alg alg)
{
    char *tok = sign_sample(k, alg, "k");
    char *parts[3];
    split3(tok, parts);
    static const char evil_json[] = "{\"aud\":\"https://vault.azure.net\",\"exp\":9999999999}";
    char *evil = b64url_str(evil_json, strlen(evil_json));
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", parts[0], evil, parts[2]), MV_OK);
    assert_int_equal(parse_verify(b.p, b.len, ALLOW_BOTH, k), MV_ERR_UNAUTHENTICATED);
    /* Tampered header (alg kept, kid changed) fails too: the header is signed. */
    mv_buf_reset(&b);
    const char *h2_json = alg == JWS_RS256 ? "{\"alg\":\"RS256\",\"kid\":\"other\"}"
                                           : "{\"alg\":\"ES256\",\"kid\":\"other\"}";
    char *h2 = b64url_str(h2_json, strlen(h2_json));
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", h2, parts[1], parts[2]), MV_OK);
    assert_int_equal(parse_verify(b.p, b.len, ALLOW_BOTH, k), MV_ERR_UNAUTHENTICATED);
    free(h2);
    mv_buf_free(&b);
    free(evil);
    free(parts[0]);
    free(tok);
}

static void test_reject_tampered_payload(void **state)
{
    (void)state;
    check_tampered_payload(rsa, JWS_RS256);
    check_tampered_payload(ec, JWS_ES256);
}

static void check_tampered_signature(EVP_PKEY *k, enum jws_alg alg)
{
    char *tok = sign_sample(k, alg, "k");
    char *parts[3];
    split3(tok, parts);
    mv_buf sig;
    mv_buf_init(&sig, 1024);
    assert_int_equal(b64url_decode(&sig, parts[2], strlen(parts[2])), MV_OK);
    /* Flip each bit position class in a few bytes: first, middle, last. */
    size_t pos[] = {0, sig.len / 2, sig.len - 1};
    for (size_t i = 0; i < 3; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            sig.p[pos[i]] ^= (char)(1 << bit);
            char *s = b64url_str(sig.p, sig.len);
            mv_buf b;
            mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
            assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", parts[0], parts[1], s), MV_OK);
            assert_int_equal(parse_verify(b.p, b.len, ALLOW_BOTH, k), MV_ERR_UNAUTHENTICATED);
            mv_buf_free(&b);
            free(s);
            sig.p[pos[i]] ^= (char)(1 << bit);
        }
    }
    /* Untouched it still verifies (the loop restored every bit). */
    assert_int_equal(parse_verify(tok, strlen(tok), ALLOW_BOTH, k), MV_OK);
    mv_buf_free(&sig);
    free(parts[0]);
    free(tok);
}

static void test_reject_tampered_signature(void **state)
{
    (void)state;
    check_tampered_signature(rsa, JWS_RS256);
    check_tampered_signature(ec, JWS_ES256);
}

static void test_reject_wrong_key(void **state)
{
    (void)state;
    char *rs = sign_sample(rsa, JWS_RS256, "k");
    char *es = sign_sample(ec, JWS_ES256, "k");
    assert_int_equal(parse_verify(rs, strlen(rs), ALLOW_BOTH, rsa2), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_verify(es, strlen(es), ALLOW_BOTH, ec2), MV_ERR_UNAUTHENTICATED);
    free(rs);
    free(es);
}

static void test_reject_key_type_mismatch(void **state)
{
    (void)state;
    char *rs = sign_sample(rsa, JWS_RS256, "k");
    char *es = sign_sample(ec, JWS_ES256, "k");
    /* RS256 token against an EC key and ES256 token against an RSA key. */
    assert_int_equal(parse_verify(rs, strlen(rs), ALLOW_BOTH, ec), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_verify(es, strlen(es), ALLOW_BOTH, rsa), MV_ERR_UNAUTHENTICATED);
    /* Relabelled: an ES256 signature under an "RS256" header and the reverse. */
    char *ep[3], *rp[3];
    split3(es, ep);
    split3(rs, rp);
    char *h_rs = b64url_str("{\"alg\":\"RS256\"}", 15);
    char *h_es = b64url_str("{\"alg\":\"ES256\"}", 15);
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", h_rs, ep[1], ep[2]), MV_OK);
    assert_int_not_equal(parse_verify(b.p, b.len, ALLOW_BOTH, ec), MV_OK);
    assert_int_not_equal(parse_verify(b.p, b.len, ALLOW_BOTH, rsa), MV_OK);
    mv_buf_reset(&b);
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", h_es, rp[1], rp[2]), MV_OK);
    assert_int_equal(parse_str(b.p, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED); /* 256-byte sig */
    mv_buf_free(&b);
    free(h_rs);
    free(h_es);
    free(ep[0]);
    free(rp[0]);
    /* jws_sign refuses a key that does not fit the alg, and a weak RSA key. */
    mv_buf out;
    mv_buf_init(&out, MV_MAX_TOKEN_BYTES);
    json_t *c = claims_sample();
    assert_int_equal(jws_sign(ec, JWS_RS256, NULL, c, &out), MV_ERR_INTERNAL);
    assert_int_equal(jws_sign(rsa, JWS_ES256, NULL, c, &out), MV_ERR_INTERNAL);
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_int_equal(jws_sign(weak, JWS_RS256, NULL, c, &out), MV_ERR_INTERNAL);
    assert_int_equal(out.len, 0);
    EVP_PKEY_free(weak);
    json_decref(c);
    mv_buf_free(&out);
    free(rs);
    free(es);
}

/* Every strict prefix of a valid token is refused (by the parser or by verification). */
static void check_truncations(EVP_PKEY *k, enum jws_alg alg)
{
    char *tok = sign_sample(k, alg, "k");
    size_t n = strlen(tok);
    for (size_t len = 0; len < n; len++)
        assert_int_equal(parse_verify(tok, len, ALLOW_BOTH, k), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_verify(tok, n, ALLOW_BOTH, k), MV_OK);
    free(tok);
}

/* Signs header.payload with key using OpenSSL directly (RSASSA-PSS with salt = hash length, or
 * PKCS#1 v1.5), as an external issuer or msal-node would; returns the compact JWS. */
static char *sign_external(EVP_PKEY *key, const char *alg, const EVP_MD *md, int pss)
{
    char hdr[64];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    char *h = b64url_str(hdr, strlen(hdr));
    char *p = b64url_str("{\"sub\":\"x\"}", 11);
    mv_buf in;
    mv_buf_init(&in, 4096);
    assert_int_equal(mv_buf_addf(&in, "%s.%s", h, p), MV_OK);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    unsigned char sig[512];
    size_t sl = sizeof sig;
    assert_int_equal(EVP_DigestSignInit(m, &pc, md, NULL, key), 1);
    if (pss) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    assert_int_equal(EVP_DigestSign(m, sig, &sl, (const unsigned char *)in.p, in.len), 1);
    char *s = b64url_str(sig, sl);
    char *tok = malloc(in.len + strlen(s) + 2);
    memcpy(tok, in.p, in.len);
    tok[in.len] = '.';
    memcpy(tok + in.len + 1, s, strlen(s) + 1);
    EVP_MD_CTX_free(m);
    mv_buf_free(&in);
    free(h);
    free(p);
    free(s);
    return tok;
}

/* PS256 (msal-node's certificate assertions) and RS/PS 384/512 (external issuers) verify with
 * jwt_verify; each only under its own name and only when allowed; a PS256 signature relabelled
 * RS256 (or the reverse) fails; the reusable verifier stays RS256/ES256; signing stays too. */
static void test_rsa_pss_and_sha2_variants(void **state)
{
    (void)state;
    struct {
        const char *alg;
        const EVP_MD *(*md)(void);
        int pss;
        enum jws_alg id;
    } v[] = {{"PS256", EVP_sha256, 1, JWS_PS256}, {"PS384", EVP_sha384, 1, JWS_PS384},
             {"PS512", EVP_sha512, 1, JWS_PS512}, {"RS384", EVP_sha384, 0, JWS_RS384},
             {"RS512", EVP_sha512, 0, JWS_RS512}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *tok = sign_external(rsa, v[i].alg, v[i].md(), v[i].pss);
        jwt t;
        assert_int_equal(jwt_parse(tok, strlen(tok), ALLOW_BOTH, &t), MV_ERR_UNAUTHENTICATED);
        assert_int_equal(jwt_parse(tok, strlen(tok), JWS_ALLOW_RSA, &t), MV_OK);
        assert_int_equal(t.alg, v[i].id);
        assert_int_equal(jwt_verify(&t, rsa), MV_OK);
        assert_int_equal(jwt_verify(&t, rsa2), MV_ERR_UNAUTHENTICATED);
        assert_int_equal(jwt_verify(&t, ec), MV_ERR_UNAUTHENTICATED);
        assert_int_equal(jwt_verify_with(&t, verifier_of(rsa)), MV_ERR_UNAUTHENTICATED);
        jwt_free(&t);
        free(tok);
    }
    /* relabelled: a PKCS#1 v1.5 signature under "PS256" */
    char *rs = sign_external(rsa, "PS256", EVP_sha256(), 0);
    jwt t;
    assert_int_equal(jwt_parse(rs, strlen(rs), JWS_ALLOW_RSA, &t), MV_OK);
    assert_int_equal(jwt_verify(&t, rsa), MV_ERR_UNAUTHENTICATED);
    jwt_free(&t);
    free(rs);
    char *ps = sign_external(rsa, "RS256", EVP_sha256(), 1);
    assert_int_equal(jwt_parse(ps, strlen(ps), JWS_ALLOW_RSA, &t), MV_OK);
    assert_int_equal(jwt_verify(&t, rsa), MV_ERR_UNAUTHENTICATED);
    jwt_free(&t);
    free(ps);
    /* never signed with */
    json_t *c = claims_sample();
    mv_buf out;
    mv_buf_init(&out, 8192);
    assert_int_equal(jws_sign(rsa, JWS_PS256, NULL, c, &out), MV_ERR_INTERNAL);
    jws_signer *sg = NULL;
    assert_int_equal(jws_signer_new(rsa, JWS_PS256, NULL, &sg), MV_ERR_INTERNAL);
    mv_buf_free(&out);
    json_decref(c);
}

static void test_reject_truncated(void **state)
{
    (void)state;
    check_truncations(rsa, JWS_RS256);
    check_truncations(ec, JWS_ES256);
}

static void test_reject_bad_compact_forms(void **state)
{
    (void)state;
    char *tok = sign_sample(ec, JWS_ES256, "k");
    char *p[3];
    split3(tok, p);
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES * 2);
    const char *forms[] = {"%s.%s",    "%s.%s.%s.%s", "%s.%s.%s.", ".%s.%s",
                           "%s..%s",   "%s.%s.",      "%s.%s.%s=", "%s.%s=.%s",
                           " %s.%s.%s", "%s.%s.%s\n"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        mv_buf_reset(&b);
        /* Arguments beyond the format's conversions are evaluated and ignored (C11 7.21.6.1). */
        assert_int_equal(mv_buf_addf(&b, forms[i], p[0], p[1], p[2], p[2]), MV_OK);
        assert_int_equal(parse_verify(b.p, b.len, ALLOW_BOTH, ec), MV_ERR_UNAUTHENTICATED);
    }
    static const char *junk[] = {"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.AA",
                                 "e30.e30.e30"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
        assert_int_equal(parse_str(junk[i], ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
    /* A NUL inside the stated length is not a terminator. */
    mv_buf_reset(&b);
    assert_int_equal(mv_buf_add(&b, tok, strlen(tok)), MV_OK);
    b.p[3] = '\0';
    assert_int_equal(parse_verify(b.p, b.len, ALLOW_BOTH, ec), MV_ERR_UNAUTHENTICATED);
    mv_buf_free(&b);
    free(p[0]);
    free(tok);
}

static void test_reject_non_canonical_b64(void **state)
{
    (void)state;
    /* "e30" is "{}"; "e31" decodes to the same bytes with a stray low bit set. */
    char *sig = b64url_str("0123456789012345678901234567890123456789012345678901234567890123", 64);
    mv_buf b;
    mv_buf_init(&b, 4096);
    char *h = b64url_str("{\"alg\":\"ES256\"}", 15);
    assert_int_equal(mv_buf_addf(&b, "%s.e30.%s", h, sig), MV_OK);
    assert_int_equal(parse_str(b.p, ALLOW_ES), MV_OK);
    mv_buf_reset(&b);
    assert_int_equal(mv_buf_addf(&b, "%s.e31.%s", h, sig), MV_OK);
    assert_int_equal(parse_str(b.p, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    mv_buf_free(&b);
    free(h);
    free(sig);
}

static void test_reject_non_object_parts(void **state)
{
    (void)state;
    static const char *hdrs[] = {"[\"RS256\"]", "\"RS256\"", "1", "null", "true",
                                 "{\"alg\":\"RS256\"} x", "{\"alg\":\"RS256\"", ""};
    char *sig = b64url_str("x", 1);
    for (size_t i = 0; i < sizeof hdrs / sizeof *hdrs; i++) {
        char *t = forge(hdrs[i], "{\"sub\":\"x\"}", sig);
        assert_int_equal(parse_str(t, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
        free(t);
        /* Same shapes as the payload under a good header. */
        t = forge("{\"alg\":\"RS256\"}", hdrs[i], sig);
        assert_int_equal(parse_str(t, ALLOW_BOTH), MV_ERR_UNAUTHENTICATED);
        free(t);
    }
    free(sig);
}

static void test_reject_oversize(void **state)
{
    (void)state;
    /* A well-formed token one byte over the cap: built from a real signature plus padding
     * whitespace in the payload JSON, so only the length is wrong. */
    char *tok = sign_sample(ec, JWS_ES256, "k");
    char *p[3];
    split3(tok, p);
    size_t base = strlen(p[0]) + 1 + 1 + strlen(p[2]);
    /* payload b64 length for L bytes is ceil(4L/3); find L with total = MAX + 1 exactly. */
    size_t want = MV_MAX_TOKEN_BYTES + 1 - base;
    size_t L = want * 3 / 4;
    while ((4 * L + 2) / 3 < want)
        L++;
    char *json = malloc(L + 1);
    memset(json, ' ', L);
    json[0] = '{';
    json[L - 1] = '}';
    json[L] = '\0';
    char *pl = b64url_str(json, L);
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES * 2);
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", p[0], pl, p[2]), MV_OK);
    assert_true(b.len > MV_MAX_TOKEN_BYTES);
    assert_int_equal(parse_str(b.p, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    /* Any length above the cap is refused before decoding; an 8 KiB token is not. */
    mv_buf_reset(&b);
    json[L - 2] = '}';
    json[L - 1] = '\0';
    free(pl);
    pl = b64url_str(json, strlen(json));
    assert_int_equal(mv_buf_addf(&b, "%s.%s.%s", p[0], pl, p[2]), MV_OK);
    assert_true(b.len <= MV_MAX_TOKEN_BYTES);
    assert_int_equal(parse_str(b.p, ALLOW_ES), MV_OK);
    /* jws_sign never emits a token over the cap. */
    json_t *big = json_pack("{s:s%}", "blob", json, (size_t)L - 2);
    mv_buf out;
    mv_buf_init(&out, MV_MAX_TOKEN_BYTES * 2);
    assert_int_equal(jws_sign(ec, JWS_ES256, "k", big, &out), MV_ERR_LIMIT);
    assert_int_equal(out.len, 0);
    json_decref(big);
    mv_buf_free(&out);
    mv_buf_free(&b);
    free(pl);
    free(json);
    free(p[0]);
    free(tok);
}

static void test_reject_duplicate_members(void **state)
{
    (void)state;
    char *sig = b64url_str("0123456789012345678901234567890123456789012345678901234567890123", 64);
    char *a = forge("{\"alg\":\"ES256\",\"alg\":\"none\"}", "{}", sig);
    char *b = forge("{\"alg\":\"none\",\"alg\":\"ES256\"}", "{}", sig);
    char *c = forge("{\"alg\":\"ES256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", sig);
    char *d = forge("{\"alg\":\"ES256\"}", "{\"x\":{\"k\":1,\"k\":2}}", sig);
    char *ok = forge("{\"alg\":\"ES256\"}", "{\"sub\":\"a\",\"x\":{\"sub\":\"b\"}}", sig);
    assert_int_equal(parse_str(a, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(b, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(c, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(d, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(ok, ALLOW_ES), MV_OK);
    free(a), free(b), free(c), free(d), free(ok), free(sig);
}

static void test_reject_deep_nesting(void **state)
{
    (void)state;
    char *sig = b64url_str("0123456789012345678901234567890123456789012345678901234567890123", 64);
    char json[128];
    /* Root object plus n-1 nested arrays: depth n. */
    for (int n = MV_MAX_JSON_DEPTH; n <= MV_MAX_JSON_DEPTH + 1; n++) {
        size_t o = 0;
        json[o++] = '{';
        memcpy(json + o, "\"a\":", 4);
        o += 4;
        for (int i = 1; i < n; i++)
            json[o++] = '[';
        for (int i = 1; i < n; i++)
            json[o++] = ']';
        json[o++] = '}';
        json[o] = '\0';
        char *t = forge("{\"alg\":\"ES256\"}", json, sig);
        assert_int_equal(parse_str(t, ALLOW_ES),
                         n <= MV_MAX_JSON_DEPTH ? MV_OK : MV_ERR_UNAUTHENTICATED);
        free(t);
    }
    free(sig);
}

static void test_reject_bad_header_members(void **state)
{
    (void)state;
    char *sig = b64url_str("0123456789012345678901234567890123456789012345678901234567890123", 64);
    char *crit = forge("{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", sig);
    char *kidnum = forge("{\"alg\":\"ES256\",\"kid\":7}", "{}", sig);
    char *nul = forge("{\"alg\":\"ES256\",\"kid\":\"a\\u0000b\"}", "{}", sig);
    assert_int_equal(parse_str(crit, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(kidnum, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(nul, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    free(crit), free(kidnum), free(nul);
    /* ES256 signatures are exactly 64 bytes; RS256 ones at least 256. */
    char *s63 = b64url_str("012345678901234567890123456789012345678901234567890123456789012", 63);
    char *t63 = forge("{\"alg\":\"ES256\"}", "{}", s63);
    char *trs = forge("{\"alg\":\"RS256\"}", "{}", sig);
    assert_int_equal(parse_str(t63, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(parse_str(trs, ALLOW_RS), MV_ERR_UNAUTHENTICATED);
    free(s63), free(t63), free(trs), free(sig);
}

static void test_claim_helpers(void **state)
{
    (void)state;
    json_t *c = json_pack("{s:I, s:f, s:s, s:b, s:n, s:I}", "exp", (json_int_t)1700000000,
                          "nbf", 1.5, "iat", "1700000000", "t", 1, "z", "neg", (json_int_t)-5);
    mv_buf out;
    mv_buf_init(&out, MV_MAX_TOKEN_BYTES);
    assert_int_equal(jws_sign(ec, JWS_ES256, "k", c, &out), MV_OK);
    jwt t;
    assert_int_equal(jwt_parse(out.p, out.len, ALLOW_ES, &t), MV_OK);
    long long v = 0;
    assert_int_equal(jwt_claim_int(&t, "exp", &v), MV_OK);
    assert_int_equal(v, 1700000000LL);
    assert_int_equal(jwt_claim_int(&t, "neg", &v), MV_OK);
    assert_int_equal(v, -5);
    assert_int_equal(jwt_claim_int(&t, "nbf", &v), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(jwt_claim_int(&t, "iat", &v), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(jwt_claim_int(&t, "t", &v), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(jwt_claim_int(&t, "z", &v), MV_ERR_UNAUTHENTICATED);
    assert_int_equal(jwt_claim_int(&t, "missing", &v), MV_ERR_UNAUTHENTICATED);
    assert_string_equal(jwt_claim_str(&t, "iat"), "1700000000");
    assert_null(jwt_claim_str(&t, "exp"));
    assert_null(jwt_claim_str(&t, "missing"));
    jwt_free(&t);
    jwt_free(&t); /* idempotent */
    json_decref(c);
    mv_buf_free(&out);
    /* An integer too large for JSON parsing is refused at parse time. */
    char *sig = b64url_str("0123456789012345678901234567890123456789012345678901234567890123", 64);
    char *big = forge("{\"alg\":\"ES256\"}", "{\"exp\":99999999999999999999999}", sig);
    assert_int_equal(parse_str(big, ALLOW_ES), MV_ERR_UNAUTHENTICATED);
    free(big), free(sig);
}

/* ---- JWK ---- */

static int is_unpadded_b64url(const char *s)
{
    return s && *s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
                          strlen(s);
}

static void test_jwk_rsa_round_trip(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(jwk_from_public(rsa, "kid-r", &j), MV_OK);
    assert_string_equal(json_string_value(json_object_get(j, "kty")), "RSA");
    assert_string_equal(json_string_value(json_object_get(j, "use")), "sig");
    assert_string_equal(json_string_value(json_object_get(j, "kid")), "kid-r");
    assert_string_equal(json_string_value(json_object_get(j, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(j, "e")), "AQAB");
    const char *n = json_string_value(json_object_get(j, "n"));
    assert_true(is_unpadded_b64url(n));
    assert_int_equal(strlen(n), 342); /* 256 bytes, minimum octets */
    assert_null(json_object_get(j, "d"));
    assert_null(json_object_get(j, "p"));
    EVP_PKEY *k = NULL;
    assert_int_equal(jwk_to_public(j, &k), MV_OK);
    assert_int_equal(EVP_PKEY_eq(k, rsa), 1);
    /* n and e survive: re-exporting gives the same members. */
    json_t *j2 = NULL;
    assert_int_equal(jwk_from_public(k, NULL, &j2), MV_OK);
    assert_string_equal(json_string_value(json_object_get(j2, "n")), n);
    assert_string_equal(json_string_value(json_object_get(j2, "e")), "AQAB");
    assert_null(json_object_get(j2, "kid"));
    /* A token signed with the private key verifies with the key rebuilt from the JWK. */
    char *tok = sign_sample(rsa, JWS_RS256, "kid-r");
    assert_int_equal(parse_verify(tok, strlen(tok), ALLOW_RS, k), MV_OK);
    free(tok);
    json_decref(j2);
    json_decref(j);
    EVP_PKEY_free(k);
}

static void test_jwk_ec_round_trip(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(jwk_from_public(ec, "kid-e", &j), MV_OK);
    assert_string_equal(json_string_value(json_object_get(j, "kty")), "EC");
    assert_string_equal(json_string_value(json_object_get(j, "crv")), "P-256");
    assert_string_equal(json_string_value(json_object_get(j, "alg")), "ES256");
    const char *x = json_string_value(json_object_get(j, "x"));
    const char *y = json_string_value(json_object_get(j, "y"));
    assert_true(is_unpadded_b64url(x));
    assert_true(is_unpadded_b64url(y));
    assert_int_equal(strlen(x), 43);
    assert_int_equal(strlen(y), 43);
    assert_null(json_object_get(j, "d"));
    EVP_PKEY *k = NULL;
    assert_int_equal(jwk_to_public(j, &k), MV_OK);
    assert_int_equal(EVP_PKEY_eq(k, ec), 1);
    char *tok = sign_sample(ec, JWS_ES256, "kid-e");
    assert_int_equal(parse_verify(tok, strlen(tok), ALLOW_ES, k), MV_OK);
    free(tok);
    /* The enrollment shape (no use/alg/kid) is accepted too. */
    json_t *bare = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
    EVP_PKEY *k2 = NULL;
    assert_int_equal(jwk_to_public(bare, &k2), MV_OK);
    assert_int_equal(EVP_PKEY_eq(k2, ec), 1);
    EVP_PKEY_free(k2);
    json_decref(bare);
    json_decref(j);
    EVP_PKEY_free(k);
}

/* A 2048-bit odd modulus divisible by 3: plausible in size, impossible as an RSA modulus. */
static json_t *n_with_small_factor(EVP_PKEY *k)
{
    BIGNUM *n = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, "n", &n), 1);
    BN_ULONG r = BN_mod_word(n, 3);
    assert_int_equal(BN_sub_word(n, r), 1);
    if (!BN_is_odd(n))
        assert_int_equal(BN_sub_word(n, 3), 1);
    assert_int_equal(BN_num_bits(n), 2048);
    unsigned char bin[256];
    assert_int_equal(BN_bn2binpad(n, bin, sizeof bin), 256);
    char *s = b64url_str(bin, sizeof bin);
    json_t *v = json_string(s);
    free(s);
    BN_free(n);
    return v;
}

/* jwk_to_public on j with member key set to val (val NULL: deleted) must fail. */
static void refuse_with(const json_t *good, const char *key, json_t *val)
{
    json_t *j = json_deep_copy(good);
    if (val)
        json_object_set_new(j, key, val);
    else
        json_object_del(j, key);
    EVP_PKEY *k = NULL;
    assert_int_equal(jwk_to_public(j, &k), MV_ERR_BAD_REQUEST);
    assert_null(k);
    json_decref(j);
}

static void test_jwk_refusals(void **state)
{
    (void)state;
    json_t *r = NULL, *e = NULL;
    assert_int_equal(jwk_from_public(rsa, "k", &r), MV_OK);
    assert_int_equal(jwk_from_public(ec, "k", &e), MV_OK);
    const char *x = json_string_value(json_object_get(e, "x"));

    /* Short RSA modulus. */
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    json_t *w = NULL;
    assert_int_equal(jwk_from_public(weak, "w", &w), MV_OK);
    EVP_PKEY *k = NULL;
    assert_int_equal(jwk_to_public(w, &k), MV_ERR_BAD_REQUEST);
    assert_null(k);
    json_decref(w);
    EVP_PKEY_free(weak);

    refuse_with(r, "n", NULL);
    refuse_with(r, "e", NULL);
    refuse_with(r, "kty", NULL);
    refuse_with(r, "kty", json_string("oct"));
    refuse_with(r, "kty", json_integer(1));
    refuse_with(r, "e", json_string("AQAB="));        /* padded */
    refuse_with(r, "e", json_string("AQ+B"));         /* not base64url */
    refuse_with(r, "e", json_string("AQAC"));         /* even exponent */
    refuse_with(r, "e", json_string("AQ"));           /* e = 1 */
    refuse_with(r, "e", json_integer(65537));         /* not a string */
    refuse_with(r, "n", n_with_small_factor(rsa));    /* fails the public key check */
    refuse_with(r, "alg", json_string("ES256"));
    refuse_with(r, "alg", json_string("HS256"));
    refuse_with(r, "use", json_string("enc"));
    refuse_with(r, "d", json_string("AQAB"));         /* private member */
    refuse_with(e, "crv", json_string("P-384"));
    refuse_with(e, "crv", NULL);
    refuse_with(e, "y", NULL);
    refuse_with(e, "x", json_string("AAAA"));         /* not 32 bytes */
    refuse_with(e, "y", json_string(x));              /* not on the curve */
    refuse_with(e, "alg", json_string("RS256"));
    refuse_with(e, "d", json_string("AAAA"));

    json_t *arr = json_array();
    assert_int_equal(jwk_to_public(arr, &k), MV_ERR_BAD_REQUEST);
    assert_int_equal(jwk_to_public(NULL, &k), MV_ERR_BAD_REQUEST);
    json_decref(arr);
    json_decref(r);
    json_decref(e);
}

/* RFC 7518 §2: n and e in the fewest octets. tests/fuzz/fuzz_jwk.c found "e":"AKAB" (00 a0 01)
 * accepted, so one key had several JWKs. */
static void test_jwk_rsa_leading_zero_octet(void **state)
{
    (void)state;
    json_t *r = NULL;
    assert_int_equal(jwk_from_public(rsa, "k", &r), MV_OK);
    refuse_with(r, "e", json_string("AAEAAQ")); /* 00 01 00 01 */
    BIGNUM *n = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(rsa, "n", &n), 1);
    unsigned char bin[257];
    assert_int_equal(BN_bn2binpad(n, bin, sizeof bin), 257); /* 00 || the 256 octets */
    char *s = b64url_str(bin, sizeof bin);
    refuse_with(r, "n", json_string(s));
    free(s);
    BN_free(n);
    json_decref(r);
}

/* jws_signer: the same bytes as jws_sign for RS256 (PKCS#1 v1.5 is deterministic), valid
 * ES256 tokens, many tokens from one initialised context, and the key/alg checks. */
static void test_signer(void **state)
{
    (void)state;
    jws_signer *s = NULL;
    json_t *c = claims_sample();
    char *cj = json_dumps(c, JSON_COMPACT);
    mv_buf a, b;
    mv_buf_init(&a, MV_MAX_TOKEN_BYTES);
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
    assert_int_equal(jws_signer_new(rsa, JWS_RS256, "kid-1", &s), MV_OK);
    assert_ptr_equal(jws_signer_key(s), rsa);
    assert_int_equal(jws_sign(rsa, JWS_RS256, "kid-1", c, &a), MV_OK);
    for (int i = 0; i < 3; i++) {
        mv_buf_reset(&b);
        assert_int_equal(jws_signer_sign(s, cj, strlen(cj), &b), MV_OK);
        assert_string_equal(b.p, a.p);
        assert_int_equal(parse_verify(b.p, b.len, ALLOW_RS, rsa), MV_OK);
        assert_int_equal(parse_verify(b.p, b.len, ALLOW_RS, rsa2), MV_ERR_UNAUTHENTICATED);
    }
    /* appends to what out already holds */
    mv_buf_reset(&b);
    assert_int_equal(mv_buf_adds(&b, "x"), MV_OK);
    assert_int_equal(jws_signer_sign(s, cj, strlen(cj), &b), MV_OK);
    assert_string_equal(b.p + 1, a.p);
    jws_signer_free(s);

    /* ES256: randomised, so check that each token verifies, with the kid and no x5t */
    assert_int_equal(jws_signer_new(ec, JWS_ES256, "k2", &s), MV_OK);
    for (int i = 0; i < 3; i++) {
        mv_buf_reset(&b);
        assert_int_equal(jws_signer_sign(s, cj, strlen(cj), &b), MV_OK);
        jwt t;
        assert_int_equal(jwt_parse(b.p, b.len, ALLOW_ES, &t), MV_OK);
        assert_int_equal(jwt_verify(&t, ec), MV_OK);
        assert_int_equal(jwt_verify(&t, ec2), MV_ERR_UNAUTHENTICATED);
        assert_string_equal(t.kid, "k2");
        assert_null(json_object_get(t.header, "x5t"));
        assert_string_equal(jwt_claim_str(&t, "aud"), "https://vault.azure.net");
        jwt_free(&t);
    }
    jws_signer_free(s);

    /* a key that does not fit the algorithm */
    assert_int_equal(jws_signer_new(ec, JWS_RS256, NULL, &s), MV_ERR_INTERNAL);
    assert_null(s);
    assert_int_equal(jws_signer_new(rsa, JWS_ES256, NULL, &s), MV_ERR_INTERNAL);
    assert_null(s);
    /* the signer keeps the key alive on its own reference */
    EVP_PKEY *k = NULL;
    assert_int_equal(keys_gen_ec_p256(&k), MV_OK);
    assert_int_equal(jws_signer_new(k, JWS_ES256, NULL, &s), MV_OK);
    EVP_PKEY_free(k);
    mv_buf_reset(&b);
    assert_int_equal(jws_signer_sign(s, cj, strlen(cj), &b), MV_OK);
    assert_int_equal(parse_verify(b.p, b.len, ALLOW_ES, jws_signer_key(s)), MV_OK);
    jws_signer_free(s);
    jws_signer_free(NULL);

    mv_buf_free(&a);
    mv_buf_free(&b);
    free(cj);
    json_decref(c);
}

/* jws_verifier: keys it refuses, and a verifier still good after a failure. */
static void test_verifier(void **state)
{
    (void)state;
    jws_verifier *v = NULL;
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(weak);
    assert_non_null(p384);
    assert_int_equal(jws_verifier_new(weak, &v), MV_ERR_BAD_REQUEST);
    assert_null(v);
    assert_int_equal(jws_verifier_new(p384, &v), MV_ERR_BAD_REQUEST);
    assert_null(v);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(p384);

    char *good = sign_sample(ec, JWS_ES256, "k");
    char *other = sign_sample(ec2, JWS_ES256, "k");
    char *rs = sign_sample(rsa, JWS_RS256, "k");
    jwt tg, to, tr;
    assert_int_equal(jwt_parse(good, strlen(good), ALLOW_BOTH, &tg), MV_OK);
    assert_int_equal(jwt_parse(other, strlen(other), ALLOW_BOTH, &to), MV_OK);
    assert_int_equal(jwt_parse(rs, strlen(rs), ALLOW_BOTH, &tr), MV_OK);
    /* its own reference: the key may be freed by its owner */
    EVP_PKEY *k = NULL;
    mv_buf pem;
    mv_buf_init(&pem, 4096);
    assert_int_equal(keys_public_pem(ec, &pem), MV_OK);
    assert_int_equal(keys_from_public_pem(pem.p, pem.len, &k), MV_OK);
    assert_int_equal(jws_verifier_new(k, &v), MV_OK);
    EVP_PKEY_free(k);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(jwt_verify_with(&to, v), MV_ERR_UNAUTHENTICATED);
        assert_int_equal(jwt_verify_with(&tr, v), MV_ERR_UNAUTHENTICATED);
        assert_int_equal(jwt_verify_with(&tg, v), MV_OK);
    }
    jws_verifier_free(v);
    jws_verifier_free(NULL);
    mv_buf_free(&pem);
    jwt_free(&tg);
    jwt_free(&to);
    jwt_free(&tr);
    free(good);
    free(other);
    free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_round_trips),
        cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_keys_pem_round_trip),
        cmocka_unit_test(test_keys_refuse_weak_rsa),
        cmocka_unit_test(test_keys_thumbprint),
        cmocka_unit_test(test_keys_types),
        cmocka_unit_test(test_rs256_round_trip),
        cmocka_unit_test(test_es256_round_trip),
        cmocka_unit_test(test_header_is_compact_json),
        cmocka_unit_test(test_es256_rfc7515_a3),
        cmocka_unit_test(test_reject_alg_none),
        cmocka_unit_test(test_reject_hs256_with_public_key),
        cmocka_unit_test(test_reject_alg_not_allowed),
        cmocka_unit_test(test_reject_tampered_payload),
        cmocka_unit_test(test_reject_tampered_signature),
        cmocka_unit_test(test_reject_wrong_key),
        cmocka_unit_test(test_rsa_pss_and_sha2_variants),
        cmocka_unit_test(test_reject_key_type_mismatch),
        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_bad_compact_forms),
        cmocka_unit_test(test_reject_non_canonical_b64),
        cmocka_unit_test(test_reject_non_object_parts),
        cmocka_unit_test(test_reject_oversize),
        cmocka_unit_test(test_reject_duplicate_members),
        cmocka_unit_test(test_reject_deep_nesting),
        cmocka_unit_test(test_reject_bad_header_members),
        cmocka_unit_test(test_claim_helpers),
        cmocka_unit_test(test_jwk_rsa_round_trip),
        cmocka_unit_test(test_jwk_ec_round_trip),
        cmocka_unit_test(test_jwk_refusals),
        cmocka_unit_test(test_jwk_rsa_leading_zero_octet),
        cmocka_unit_test(test_signer),
        cmocka_unit_test(test_verifier),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
