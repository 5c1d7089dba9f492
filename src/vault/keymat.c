/* keymat.c: the key material of Key Vault keys on OpenSSL 3 EVP: generation (RSA 2048/3072/
 * 4096, EC P-256/P-384/P-521/P-256K), import from a private JWK, the public JWK, PKCS#8 DER
 * for sealing, and the operations (sign/verify RS*, PS*, ES*; encrypt/decrypt and wrap/unwrap
 * with RSA1_5, RSA-OAEP, RSA-OAEP-256).
 *
 * Pure functions of their arguments (tests/fuzz/fuzz_keyjwk.c drives the JWK import and the
 * operation bodies). Messages returned in *why / msg are fixed texts or texts built only from
 * validated values (algorithm names, lengths), safe to send. No private member is ever written
 * into a JWK here (reference pitfall 4). */
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/b64.h"
#include "common/util.h"
#include "vault/vault_internal.h"

static const struct {
    const char *jwk;   /* JWK crv */
    const char *group; /* OpenSSL group name */
    size_t coord;      /* coordinate length in bytes */
} CURVES[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
    {"P-256K", "secp256k1", 32},
};
#define N_CURVES (sizeof CURVES / sizeof CURVES[0])

static int curve_index_jwk(const char *crv)
{
    for (size_t i = 0; crv && i < N_CURVES; i++)
        if (strcmp(crv, CURVES[i].jwk) == 0)
            return (int)i;
    if (crv && strcmp(crv, "SECP256K1") == 0) /* legacy spelling (reference §2.2) */
        return 3;
    return -1;
}

static int curve_index_key(EVP_PKEY *k)
{
    char g[64];
    size_t n = 0;
    if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof g, &n) != 1)
        return -1;
    for (size_t i = 0; i < N_CURVES; i++)
        if (strcmp(g, CURVES[i].group) == 0)
            return (int)i;
    return -1;
}

int vkey_is_rsa(EVP_PKEY *k) { return EVP_PKEY_is_a(k, "RSA"); }

const char *vkey_curve(EVP_PKEY *k)
{
    int i = vkey_is_rsa(k) ? -1 : curve_index_key(k);
    return i < 0 ? NULL : CURVES[i].jwk;
}

/* A 400 text into msg (cut to "" rather than truncated). */
#define MSGF(...)                                                                                  \
    do {                                                                                           \
        if (mv_fmt(msg, msglen, __VA_ARGS__) != MV_OK)                                           \
            msg[0] = '\0';                                                                         \
    } while (0)

static mv_rc ossl_fail(const char *what)
{
    ERR_clear_error();
    mv_fail(MV_ERR_INTERNAL, "keys: %s failed", what);
    return MV_ERR_INTERNAL;
}

mv_rc vkey_generate(int rsa, int size, const char *crv, EVP_PKEY **out, const char **why)
{
    *out = NULL;
    if (rsa) {
        if (size == 0)
            size = 2048;
        if (size != 2048 && size != 3072 && size != 4096) {
            *why = "The key size is not supported. Supported RSA key sizes are 2048, 3072 and "
                   "4096.";
            return MV_ERR_BAD_REQUEST;
        }
        *out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)size);
    } else {
        int i = curve_index_jwk(crv ? crv : "P-256");
        if (i < 0) {
            *why = "The curve is not supported. Supported curves are P-256, P-384, P-521 and "
                   "P-256K.";
            return MV_ERR_BAD_REQUEST;
        }
        *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", CURVES[i].group);
    }
    return *out ? MV_OK : ossl_fail("key generation");
}

/* ---- JWK ---- */

static mv_rc set_b64(json_t *o, const char *name, const unsigned char *p, size_t n)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, n * 2 + 4);
    CHECK(b64url_encode(&b, p, n));
    ENSURE(json_object_set_new(o, name, json_string(b.p)) == 0, MV_ERR_INTERNAL);
out:
    mv_buf_free(&b);
    return rc;
}

static mv_rc set_bn(json_t *o, const char *name, const BIGNUM *bn)
{
    mv_rc rc = MV_OK;
    int n = BN_num_bytes(bn);
    unsigned char *p = OPENSSL_malloc(n > 0 ? (size_t)n : 1);
    ENSURE(p != NULL, MV_ERR_INTERNAL);
    BN_bn2bin(bn, p);
    CHECK(set_b64(o, name, p, (size_t)n));
out:
    OPENSSL_free(p);
    return rc;
}

mv_rc vkey_public_jwk(EVP_PKEY *k, const char *kty, const json_t *key_ops, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *o = json_object();
    BIGNUM *n = NULL, *e = NULL;
    unsigned char pub[1 + 2 * 66];
    size_t publen = 0;
    ENSURE(o != NULL, MV_ERR_INTERNAL);
    ENSURE(json_object_set_new(o, "kty", json_string(kty)) == 0, MV_ERR_INTERNAL);
    ENSURE(json_object_set_new(o, "key_ops", key_ops ? json_deep_copy(key_ops) : json_array()) == 0,
           MV_ERR_INTERNAL);
    if (vkey_is_rsa(k)) {
        ENSURE(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                   EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) == 1,
               MV_ERR_INTERNAL);
        CHECK(set_bn(o, "n", n));
        CHECK(set_bn(o, "e", e));
    } else {
        int i = curve_index_key(k);
        ENSURE(i >= 0, MV_ERR_INTERNAL);
        ENSURE(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub,
                                               &publen) == 1,
               MV_ERR_INTERNAL);
        ENSURE(publen == 1 + 2 * CURVES[i].coord && pub[0] == 4, MV_ERR_INTERNAL);
        ENSURE(json_object_set_new(o, "crv", json_string(CURVES[i].jwk)) == 0, MV_ERR_INTERNAL);
        CHECK(set_b64(o, "x", pub + 1, CURVES[i].coord));
        CHECK(set_b64(o, "y", pub + 1 + CURVES[i].coord, CURVES[i].coord));
    }
    *out = o;
    o = NULL;
out:
    if (rc != MV_OK)
        ERR_clear_error();
    BN_free(n);
    BN_free(e);
    json_decref(o);
    return rc;
}

/* base64url (padded or not) of a JWK member into out (a secret: free with free_secret). */
mv_rc vkey_b64_member(const json_t *jwk, const char *name, mv_buf *out)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    if (!s)
        return MV_ERR_NOT_FOUND;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n == 0 || n > 8192)
        return MV_ERR_BAD_REQUEST;
    mv_buf_init(out, n);
    return b64url_decode(out, s, n) == MV_OK ? MV_OK : MV_ERR_BAD_REQUEST;
}

static mv_rc bn_member(const json_t *jwk, const char *name, int required, BIGNUM **out)
{
    mv_buf b;
    *out = NULL;
    mv_buf_init(&b, 0);
    mv_rc rc = vkey_b64_member(jwk, name, &b);
    if (rc == MV_ERR_NOT_FOUND && !required)
        return MV_OK;
    if (rc == MV_OK) {
        *out = BN_bin2bn((const unsigned char *)b.p, (int)b.len, NULL);
        if (!*out)
            rc = MV_ERR_INTERNAL;
    }
    mv_buf_free_secret(&b);
    return rc == MV_ERR_NOT_FOUND ? MV_ERR_BAD_REQUEST : rc;
}

static mv_rc import_rsa(const json_t *jwk, EVP_PKEY **out, const char **why)
{
    mv_rc rc = MV_OK;
    const char *names[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
    const char *params[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
                            OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
                            OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
                            OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    BIGNUM *bn[8] = {0};
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *ps = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int crt = 1;
    *why = "The JSON web key is not a valid RSA private key.";
    for (int i = 0; i < 8; i++) {
        rc = bn_member(jwk, names[i], i < 3, &bn[i]);
        ENSURE(rc == MV_OK, MV_ERR_BAD_REQUEST);
        if (i >= 3 && !bn[i])
            crt = 0;
    }
    if (BN_num_bits(bn[0]) < 2048) {
        *why = "The key size is not supported: RSA keys must be at least 2048 bits.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    ENSURE(BN_num_bits(bn[0]) <= 4096 && BN_num_bits(bn[1]) <= 64 && !BN_is_zero(bn[2]),
           MV_ERR_BAD_REQUEST);
    bld = OSSL_PARAM_BLD_new();
    ENSURE(bld != NULL, MV_ERR_INTERNAL);
    for (int i = 0; i < (crt ? 8 : 3); i++)
        ENSURE(OSSL_PARAM_BLD_push_BN(bld, params[i], bn[i]) == 1, MV_ERR_INTERNAL);
    ps = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    ENSURE(ps && ctx && EVP_PKEY_fromdata_init(ctx) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, ps) == 1, MV_ERR_BAD_REQUEST);
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    ENSURE(ctx != NULL, MV_ERR_INTERNAL);
    /* the private parts must belong to n (a mismatched import would sign garbage) */
    ENSURE(EVP_PKEY_pairwise_check(ctx) == 1, MV_ERR_BAD_REQUEST);
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    return rc;
}

static mv_rc import_ec(const json_t *jwk, EVP_PKEY **out, const char **why)
{
    mv_rc rc = MV_OK;
    mv_buf x, y;
    BIGNUM *d = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *ps = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char pub[1 + 2 * 66];
    mv_buf_init(&x, 0);
    mv_buf_init(&y, 0);
    *why = "The JSON web key is not a valid EC private key.";
    int i = curve_index_jwk(json_string_value(json_object_get(jwk, "crv")));
    if (i < 0) {
        *why = "The curve is not supported. Supported curves are P-256, P-384, P-521 and P-256K.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    size_t cl = CURVES[i].coord;
    ENSURE(vkey_b64_member(jwk, "x", &x) == MV_OK && vkey_b64_member(jwk, "y", &y) == MV_OK,
           MV_ERR_BAD_REQUEST);
    ENSURE(x.len <= cl && y.len <= cl, MV_ERR_BAD_REQUEST);
    memset(pub, 0, sizeof pub);
    pub[0] = 4;
    memcpy(pub + 1 + (cl - x.len), x.p, x.len);
    memcpy(pub + 1 + cl + (cl - y.len), y.p, y.len);
    ENSURE(bn_member(jwk, "d", 1, &d) == MV_OK, MV_ERR_BAD_REQUEST);
    bld = OSSL_PARAM_BLD_new();
    ENSURE(bld != NULL, MV_ERR_INTERNAL);
    ENSURE(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, CURVES[i].group, 0) ==
                   1 &&
               OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * cl) ==
                   1 &&
               OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) == 1,
           MV_ERR_INTERNAL);
    ps = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    ENSURE(ps && ctx && EVP_PKEY_fromdata_init(ctx) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, ps) == 1, MV_ERR_BAD_REQUEST);
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    ENSURE(ctx != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_pairwise_check(ctx) == 1, MV_ERR_BAD_REQUEST);
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    mv_buf_free(&x);
    mv_buf_free(&y);
    return rc;
}

mv_rc vkey_import_jwk(const json_t *jwk, int *rsa, EVP_PKEY **out, const char **why)
{
    *out = NULL;
    *why = "The JSON web key is invalid.";
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!json_is_object(jwk) || !kty)
        return MV_ERR_BAD_REQUEST;
    if (strcasecmp(kty, "RSA") == 0 || strcasecmp(kty, "RSA-HSM") == 0) {
        *rsa = 1;
        return import_rsa(jwk, out, why);
    }
    if (strcasecmp(kty, "EC") == 0 || strcasecmp(kty, "EC-HSM") == 0) {
        *rsa = 0;
        return import_ec(jwk, out, why);
    }
    *why = "The key type is not supported: import RSA or EC keys.";
    return MV_ERR_BAD_REQUEST;
}

mv_rc vkey_to_der(EVP_PKEY *k, mv_buf *out)
{
    mv_rc rc = MV_OK;
    unsigned char *der = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
    ENSURE(p8 != NULL, MV_ERR_INTERNAL);
    int n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    mv_buf_init(out, (size_t)n);
    CHECK(mv_buf_add(out, der, (size_t)n));
out:
    if (der)
        OPENSSL_clear_free(der, (size_t)n);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (rc != MV_OK)
        ERR_clear_error();
    return rc;
}

mv_rc vkey_from_der(const void *p, size_t n, EVP_PKEY **out)
{
    const unsigned char *q = p;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, (long)n);
    *out = p8 ? EVP_PKCS82PKEY(p8) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (!*out)
        return ossl_fail("private key decode");
    return MV_OK;
}

/* ---- algorithms ---- */

struct alg {
    const char *name;
    int rsa;        /* 1 RSA, 0 EC */
    int pss;        /* sign: PSS; crypt: padding */
    const char *md; /* sign: digest; crypt: OAEP digest */
    size_t dlen;
    int curve;      /* EC: CURVES index */
};

static const struct alg SIGN_ALGS[] = {
    {"RS256", 1, 0, "SHA256", 32, -1}, {"RS384", 1, 0, "SHA384", 48, -1},
    {"RS512", 1, 0, "SHA512", 64, -1}, {"PS256", 1, 1, "SHA256", 32, -1},
    {"PS384", 1, 1, "SHA384", 48, -1}, {"PS512", 1, 1, "SHA512", 64, -1},
    {"ES256", 0, 0, "SHA256", 32, 0},  {"ES384", 0, 0, "SHA384", 48, 1},
    {"ES512", 0, 0, "SHA512", 64, 2},  {"ES256K", 0, 0, "SHA256", 32, 3},
};

static const struct alg *sign_alg(const char *name)
{
    for (size_t i = 0; name && i < sizeof SIGN_ALGS / sizeof SIGN_ALGS[0]; i++)
        if (strcmp(name, SIGN_ALGS[i].name) == 0)
            return &SIGN_ALGS[i];
    return NULL;
}

/* Checks alg against the key and the digest length; on failure msg holds the 400 text. */
static mv_rc check_sign(EVP_PKEY *k, const char *kid, const char *name, size_t dlen,
                        const struct alg **out, char *msg, size_t msglen)
{
    const struct alg *a = sign_alg(name);
    *out = a;
    if (!a) {
        MSGF("The algorithm is not supported for this operation.");
        return MV_ERR_BAD_REQUEST;
    }
    int rsa = vkey_is_rsa(k);
    if (a->rsa != rsa) {
        MSGF("Key and signing algorithm are incompatible. Key %s is of type '%s', "
                            "and algorithm '%s' cannot be used with it.",
               kid, rsa ? "RSA" : "EC", a->name);
        return MV_ERR_BAD_REQUEST;
    }
    if (!rsa) {
        int ci = curve_index_key(k);
        if (ci != a->curve) {
            MSGF("Key and signing algorithm are incompatible. Key %s uses curve "
                                "'%s', and algorithm '%s' can only be used with curve '%s'.",
                   kid, ci >= 0 ? CURVES[ci].jwk : "?", a->name, CURVES[a->curve].jwk);
            return MV_ERR_BAD_REQUEST;
        }
    }
    if (dlen != a->dlen) {
        MSGF("Invalid length of 'value': %zu bytes. %s requires %zu bytes, "
                            "encoded with base64url.",
               dlen, a->name, a->dlen);
        return MV_ERR_BAD_REQUEST;
    }
    return MV_OK;
}

static mv_rc sign_ctx(EVP_PKEY *k, const struct alg *a, int verify, EVP_PKEY_CTX **out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    /* ECDSA signs the digest as given (check_sign checked its length): no EVP_MD to fetch and
     * set per request (docs/benchmarks.md "Keys"). RSA needs it: PKCS#1 v1.5 encodes the
     * DigestInfo, PSS hashes with it. */
    EVP_MD *md = a->rsa ? EVP_MD_fetch(NULL, a->md, NULL) : NULL;
    int ok = ctx && (md || !a->rsa) &&
             (verify ? EVP_PKEY_verify_init(ctx) : EVP_PKEY_sign_init(ctx)) == 1 &&
             (!a->rsa || EVP_PKEY_CTX_set_signature_md(ctx, md) == 1);
    if (ok && a->rsa)
        ok = EVP_PKEY_CTX_set_rsa_padding(ctx, a->pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) ==
             1;
    if (ok && a->rsa && a->pss)
        ok = EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)a->dlen) == 1;
    EVP_MD_free(md);
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        return ossl_fail("signature setup");
    }
    *out = ctx;
    return MV_OK;
}

mv_rc vkey_sign(EVP_PKEY *k, const char *kid, const char *alg, const unsigned char *digest,
                size_t dlen, mv_buf *sig, char *msg, size_t msglen)
{
    mv_rc rc = MV_OK;
    const struct alg *a = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char *der = NULL;
    ECDSA_SIG *es = NULL;
    size_t n = 0;
    CHECK(check_sign(k, kid, alg, dlen, &a, msg, msglen));
    CHECK(sign_ctx(k, a, 0, &ctx));
    ENSURE(EVP_PKEY_sign(ctx, NULL, &n, digest, dlen) == 1, MV_ERR_INTERNAL);
    der = OPENSSL_malloc(n);
    ENSURE(der != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_sign(ctx, der, &n, digest, dlen) == 1, MV_ERR_INTERNAL);
    mv_buf_init(sig, 1024);
    if (a->rsa) {
        CHECK(mv_buf_add(sig, der, n));
    } else {
        /* JWS form: raw r || s, each zero-padded to the coordinate length (pitfall 6) */
        const unsigned char *q = der;
        unsigned char rs[2 * 66];
        size_t cl = CURVES[a->curve].coord;
        es = d2i_ECDSA_SIG(NULL, &q, (long)n);
        ENSURE(es != NULL, MV_ERR_INTERNAL);
        ENSURE(BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, (int)cl) == (int)cl &&
                   BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + cl, (int)cl) == (int)cl,
               MV_ERR_INTERNAL);
        CHECK(mv_buf_add(sig, rs, 2 * cl));
    }
out:
    if (rc == MV_ERR_INTERNAL)
        ERR_clear_error();
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

mv_rc vkey_verify(EVP_PKEY *k, const char *kid, const char *alg, const unsigned char *digest,
                  size_t dlen, const unsigned char *sig, size_t siglen, int *valid, char *msg,
                  size_t msglen)
{
    mv_rc rc = MV_OK;
    const struct alg *a = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    int derlen = 0;
    *valid = 0;
    CHECK(check_sign(k, kid, alg, dlen, &a, msg, msglen));
    CHECK(sign_ctx(k, a, 1, &ctx));
    if (a->rsa) {
        *valid = EVP_PKEY_verify(ctx, sig, siglen, digest, dlen) == 1;
    } else {
        size_t cl = CURVES[a->curve].coord;
        if (siglen != 2 * cl)
            goto out; /* a wrong signature is 200 false (pitfall 5) */
        r = BN_bin2bn(sig, (int)cl, NULL);
        s = BN_bin2bn(sig + cl, (int)cl, NULL);
        es = ECDSA_SIG_new();
        ENSURE(r && s && es && ECDSA_SIG_set0(es, r, s) == 1, MV_ERR_INTERNAL);
        r = s = NULL;
        derlen = i2d_ECDSA_SIG(es, &der);
        ENSURE(derlen > 0, MV_ERR_INTERNAL);
        *valid = EVP_PKEY_verify(ctx, der, (size_t)derlen, digest, dlen) == 1;
    }
out:
    ERR_clear_error();
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static const struct alg CRYPT_ALGS[] = {
    {"RSA1_5", 1, RSA_PKCS1_PADDING, NULL, 0, -1},
    {"RSA-OAEP", 1, RSA_PKCS1_OAEP_PADDING, "SHA1", 0, -1},
    {"RSA-OAEP-256", 1, RSA_PKCS1_OAEP_PADDING, "SHA256", 0, -1},
};

mv_rc vkey_crypt(EVP_PKEY *k, const char *alg, int decrypt, const unsigned char *in, size_t len,
                 mv_buf *out, char *msg, size_t msglen)
{
    mv_rc rc = MV_OK;
    const struct alg *a = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_MD *md = NULL;
    size_t n = 0;
    unsigned char buf[1024]; /* ≥ the modulus of a 4096-bit key */
    for (size_t i = 0; alg && i < sizeof CRYPT_ALGS / sizeof CRYPT_ALGS[0]; i++)
        if (strcmp(alg, CRYPT_ALGS[i].name) == 0)
            a = &CRYPT_ALGS[i];
    if (!a) {
        MSGF("The algorithm is not supported for this operation.");
        return MV_ERR_BAD_REQUEST;
    }
    if (!vkey_is_rsa(k)) {
        MSGF("Key and encryption algorithm are incompatible: '%s' requires an "
                            "RSA key.",
               a->name);
        return MV_ERR_BAD_REQUEST;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    ENSURE(ctx != NULL, MV_ERR_INTERNAL);
    ENSURE((decrypt ? EVP_PKEY_decrypt_init(ctx) : EVP_PKEY_encrypt_init(ctx)) == 1 &&
               EVP_PKEY_CTX_set_rsa_padding(ctx, a->pss) == 1,
           MV_ERR_INTERNAL);
    if (a->md) {
        md = EVP_MD_fetch(NULL, a->md, NULL);
        ENSURE(md && EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 &&
                   EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1,
               MV_ERR_INTERNAL);
    }
    mv_buf_init(out, sizeof buf);
    ENSURE((size_t)EVP_PKEY_get_size(k) <= sizeof buf, MV_ERR_INTERNAL);
    n = sizeof buf;
    int ok = decrypt ? EVP_PKEY_decrypt(ctx, buf, &n, in, len)
                     : EVP_PKEY_encrypt(ctx, buf, &n, in, len);
    if (ok != 1) {
        MSGF(decrypt ? "The ciphertext is invalid for this key and algorithm."
                                    : "The plaintext is too long for this key and algorithm.");
        rc = MV_ERR_BAD_REQUEST;
        goto out;
    }
    CHECK(mv_buf_add(out, buf, n));
out:
    OPENSSL_cleanse(buf, sizeof buf);
    ERR_clear_error();
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}
