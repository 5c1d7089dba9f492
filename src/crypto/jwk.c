/* jwk.c: public JWKs (RFC 7517, RFC 7518 §6) for RSA and EC P-256 keys, on OpenSSL 3
 * parameters (EVP_PKEY_get_bn_param / EVP_PKEY_fromdata), never the deprecated RSA / EC_KEY.
 *
 * Invariants: emitted members are base64url without padding; a parsed JWK yields only an RSA key
 * of 2048..8192 bits or a P-256 point that passed EVP_PKEY_public_check (on the curve, not the
 * point at infinity). A JWK carrying private members ("d") is refused, not silently trimmed. */
#include "crypto/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <string.h>

#include "common/b64.h"
#include "crypto/keys.h"

#define JWK_MIN_RSA_BITS 2048
#define JWK_MAX_RSA_BITS 8192
#define JWK_MAX_E_BYTES 8
#define JWK_P256_COORD 32
#define JWK_MAX_MEMBER 2048 /* base64url of an 8192-bit modulus is 1366 chars */

/* Sets key to the base64url of len bytes. */
static mv_rc put_b64url(json_t *o, const char *key, const unsigned char *p, size_t len)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, JWK_MAX_MEMBER);
    CHECK(b64url_encode(&b, p, len));
    ENSURE(json_object_set_new(o, key, json_string(b.p)) == 0, MV_ERR_INTERNAL);
out:
    mv_buf_free(&b);
    return rc;
}

/* RFC 7518 §6.3.1: n and e as unsigned big-endian, minimum number of octets. */
static mv_rc put_bn(json_t *o, EVP_PKEY *k, const char *param, const char *key)
{
    mv_rc rc = MV_OK;
    BIGNUM *bn = NULL;
    unsigned char *bin = NULL;
    ENSURE(EVP_PKEY_get_bn_param(k, param, &bn) == 1, MV_ERR_INTERNAL);
    int n = BN_num_bytes(bn);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    bin = OPENSSL_malloc((size_t)n);
    ENSURE(bin != NULL, MV_ERR_INTERNAL);
    ENSURE(BN_bn2bin(bn, bin) == n, MV_ERR_INTERNAL);
    CHECK(put_b64url(o, key, bin, (size_t)n));
out:
    OPENSSL_free(bin);
    BN_free(bn);
    return rc;
}

/* RFC 7518 §6.2.1.2: x and y are the full-length (32-byte) coordinates for P-256. */
static mv_rc put_coord(json_t *o, EVP_PKEY *k, const char *param, const char *key)
{
    mv_rc rc = MV_OK;
    BIGNUM *bn = NULL;
    unsigned char bin[JWK_P256_COORD];
    ENSURE(EVP_PKEY_get_bn_param(k, param, &bn) == 1, MV_ERR_INTERNAL);
    ENSURE(BN_bn2binpad(bn, bin, sizeof bin) == (int)sizeof bin, MV_ERR_INTERNAL);
    CHECK(put_b64url(o, key, bin, sizeof bin));
out:
    BN_free(bn);
    return rc;
}

static mv_rc set_str(json_t *o, const char *key, const char *val)
{
    mv_rc rc = MV_OK;
    ENSURE(json_object_set_new(o, key, json_string(val)) == 0, MV_ERR_INTERNAL);
out:
    return rc;
}

mv_rc jwk_from_public(EVP_PKEY *k, const char *kid, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *o = json_object();
    *out = NULL;
    ENSURE(o != NULL, MV_ERR_INTERNAL);
    if (keys_is_rsa(k)) {
        CHECK(set_str(o, "kty", "RSA"));
        CHECK(set_str(o, "use", "sig"));
        if (kid)
            CHECK(set_str(o, "kid", kid));
        CHECK(put_bn(o, k, OSSL_PKEY_PARAM_RSA_N, "n"));
        CHECK(put_bn(o, k, OSSL_PKEY_PARAM_RSA_E, "e"));
        CHECK(set_str(o, "alg", "RS256"));
    } else if (keys_is_ec_p256(k)) {
        CHECK(set_str(o, "kty", "EC"));
        CHECK(set_str(o, "use", "sig"));
        if (kid)
            CHECK(set_str(o, "kid", kid));
        CHECK(set_str(o, "crv", "P-256"));
        CHECK(put_coord(o, k, OSSL_PKEY_PARAM_EC_PUB_X, "x"));
        CHECK(put_coord(o, k, OSSL_PKEY_PARAM_EC_PUB_Y, "y"));
        CHECK(set_str(o, "alg", "ES256"));
    } else {
        ENSURE_MSG(0, MV_ERR_INTERNAL, "jwk: unsupported key type");
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    return rc;
}

/* Decodes a base64url member strictly: a string, no padding, canonical (RFC 7515 §2: "with all
 * trailing '=' characters omitted"), at most max decoded bytes. */
static mv_rc get_b64url(const json_t *jwk, const char *key, size_t max, mv_buf *out)
{
    mv_rc rc = MV_OK;
    const json_t *v = json_object_get(jwk, key);
    ENSURE_MSG(json_is_string(v), MV_ERR_BAD_REQUEST, "jwk: %s missing", key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    ENSURE_MSG(len > 0 && len <= JWK_MAX_MEMBER && !memchr(s, '=', len), MV_ERR_BAD_REQUEST,
               "jwk: %s malformed", key);
    mv_buf_init(out, max);
    ENSURE_MSG(b64url_decode(out, s, len) == MV_OK, MV_ERR_BAD_REQUEST, "jwk: %s bad base64url",
               key);
    /* Canonical form: re-encoding gives the same text (no stray low bits in the last char). */
    mv_buf again;
    mv_buf_init(&again, JWK_MAX_MEMBER);
    rc = b64url_encode(&again, out->p, out->len);
    int same = rc == MV_OK && again.len == len && memcmp(again.p, s, len) == 0;
    mv_buf_free(&again);
    ENSURE_MSG(same, MV_ERR_BAD_REQUEST, "jwk: %s not canonical base64url", key);
out:
    return rc;
}

/* Optional string member: absent, or equal to want. */
static int opt_is(const json_t *jwk, const char *key, const char *want)
{
    const json_t *v = json_object_get(jwk, key);
    return !v || (json_is_string(v) && strcmp(json_string_value(v), want) == 0);
}

/* Imports params as a public key of the given type and runs OpenSSL's public key check. */
static mv_rc from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY_CTX *chk = NULL;
    ENSURE(params != NULL && ctx != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_fromdata_init(ctx) == 1, MV_ERR_INTERNAL);
    ENSURE_MSG(EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1, MV_ERR_BAD_REQUEST,
               "jwk: key import failed");
    chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    ENSURE(chk != NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(EVP_PKEY_public_check(chk) == 1, MV_ERR_BAD_REQUEST, "jwk: public key check failed");
out:
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return rc;
}

static mv_rc rsa_from_jwk(const json_t *jwk, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    mv_buf nb = {0}, eb = {0};
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    ENSURE_MSG(opt_is(jwk, "alg", "RS256"), MV_ERR_BAD_REQUEST, "jwk: alg does not fit RSA");
    CHECK(get_b64url(jwk, "n", JWK_MAX_RSA_BITS / 8 + 1, &nb));
    CHECK(get_b64url(jwk, "e", JWK_MAX_E_BYTES, &eb));
    /* RFC 7518 §2 Base64urlUInt (n: §6.3.1.1, e: §6.3.1.2): "The octet sequence MUST utilize
     * the minimum number of octets needed to represent the value": no leading zero octet. */
    ENSURE_MSG(nb.p[0] != 0 && eb.p[0] != 0, MV_ERR_BAD_REQUEST,
               "jwk: n or e has a leading zero octet");
    n = BN_bin2bn((const unsigned char *)nb.p, (int)nb.len, NULL);
    e = BN_bin2bn((const unsigned char *)eb.p, (int)eb.len, NULL);
    ENSURE(n != NULL && e != NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(BN_num_bits(n) >= JWK_MIN_RSA_BITS && BN_num_bits(n) <= JWK_MAX_RSA_BITS,
               MV_ERR_BAD_REQUEST, "jwk: RSA modulus of %d bits", BN_num_bits(n));
    ENSURE_MSG(BN_is_odd(n) && BN_is_odd(e) && !BN_is_one(e), MV_ERR_BAD_REQUEST,
               "jwk: implausible RSA public key");
    bld = OSSL_PARAM_BLD_new();
    ENSURE(bld != NULL, MV_ERR_INTERNAL);
    ENSURE(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1, MV_ERR_INTERNAL);
    ENSURE(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1, MV_ERR_INTERNAL);
    CHECK(from_params("RSA", bld, out));
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    mv_buf_free(&nb);
    mv_buf_free(&eb);
    return rc;
}

static mv_rc ec_from_jwk(const json_t *jwk, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    mv_buf xb = {0}, yb = {0};
    OSSL_PARAM_BLD *bld = NULL;
    unsigned char pt[1 + 2 * JWK_P256_COORD];
    const json_t *crv = json_object_get(jwk, "crv");
    ENSURE_MSG(json_is_string(crv) && strcmp(json_string_value(crv), "P-256") == 0,
               MV_ERR_BAD_REQUEST, "jwk: only crv P-256 is accepted");
    ENSURE_MSG(opt_is(jwk, "alg", "ES256"), MV_ERR_BAD_REQUEST, "jwk: alg does not fit EC");
    CHECK(get_b64url(jwk, "x", JWK_P256_COORD, &xb));
    CHECK(get_b64url(jwk, "y", JWK_P256_COORD, &yb));
    /* RFC 7518 §6.2.1.2: "the length of this octet string MUST be the full size of a
     * coordinate for the curve" (32 octets for P-256). */
    ENSURE_MSG(xb.len == JWK_P256_COORD && yb.len == JWK_P256_COORD, MV_ERR_BAD_REQUEST,
               "jwk: EC coordinate is not 32 bytes");
    pt[0] = 0x04; /* SEC 1 §2.3.3 uncompressed point */
    memcpy(pt + 1, xb.p, JWK_P256_COORD);
    memcpy(pt + 1 + JWK_P256_COORD, yb.p, JWK_P256_COORD);
    bld = OSSL_PARAM_BLD_new();
    ENSURE(bld != NULL, MV_ERR_INTERNAL);
    ENSURE(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1,
           MV_ERR_INTERNAL);
    ENSURE(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt) == 1,
           MV_ERR_INTERNAL);
    CHECK(from_params("EC", bld, out));
out:
    OSSL_PARAM_BLD_free(bld);
    mv_buf_free(&xb);
    mv_buf_free(&yb);
    return rc;
}

mv_rc jwk_to_public(const json_t *jwk, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    *out = NULL;
    ENSURE_MSG(json_is_object(jwk), MV_ERR_BAD_REQUEST, "jwk: not an object");
    const json_t *kty = json_object_get(jwk, "kty");
    ENSURE_MSG(json_is_string(kty), MV_ERR_BAD_REQUEST, "jwk: kty missing");
    ENSURE_MSG(opt_is(jwk, "use", "sig"), MV_ERR_BAD_REQUEST, "jwk: use is not sig");
    /* A public JWK with private members means a key leaked on its way here: refuse it. */
    ENSURE_MSG(!json_object_get(jwk, "d"), MV_ERR_BAD_REQUEST, "jwk: private member present");
    if (strcmp(json_string_value(kty), "RSA") == 0)
        CHECK(rsa_from_jwk(jwk, out));
    else if (strcmp(json_string_value(kty), "EC") == 0)
        CHECK(ec_from_jwk(jwk, out));
    else
        ENSURE_MSG(0, MV_ERR_BAD_REQUEST, "jwk: unsupported kty");
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
        ERR_clear_error();
    }
    return rc;
}
