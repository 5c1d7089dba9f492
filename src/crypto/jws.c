/* jws.c: compact JWS / JWT (RFC 7515, RFC 7519) with RS256 and ES256 only (RFC 7518 §3.3, §3.4).
 *
 * Invariants: the header never chooses the algorithm on its own. jwt_parse accepts only an
 * "alg" the caller allowed (so "none", HS256 and friends never get through, RFC 8725 §3.1), and
 * jwt_verify checks that the caller's key is of the type that alg needs: an RSA key for RS256
 * and a P-256 key for ES256, so a token "signed" HMAC-style with a public key, or an RS256 token
 * presented against an EC key, fails. Every refusal is MV_ERR_UNAUTHENTICATED with the reason
 * in the log detail; a misused allowlist is MV_ERR_INTERNAL. */
#include "crypto/jws.h"

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/limits.h"
#include "crypto/keys.h"

#define JWS_ES256_SIG 64      /* RFC 7518 §3.4: R and S, 32 octets each */
#define JWS_P256_SCALAR 32
#define JWS_MIN_RSA_BITS 2048
#define JWS_MAX_SIG 1024      /* RSA-8192; a P-256 DER signature is at most 72 */
#define JWS_KNOWN_ALGS (JWS_ALLOW_RSA | JWS_ALLOW(JWS_ES256))

static const char *alg_name(enum jws_alg alg)
{
    switch (alg) {
    case JWS_RS256: return "RS256";
    case JWS_ES256: return "ES256";
    case JWS_PS256: return "PS256";
    case JWS_RS384: return "RS384";
    case JWS_RS512: return "RS512";
    case JWS_PS384: return "PS384";
    case JWS_PS512: return "PS512";
    default: return NULL;
    }
}

static int alg_is_rsa(enum jws_alg alg)
{
    return alg != JWS_ALG_NONE_ACCEPTED && alg != JWS_ES256 && alg_name(alg) != NULL;
}

static int alg_is_pss(enum jws_alg alg)
{
    return alg == JWS_PS256 || alg == JWS_PS384 || alg == JWS_PS512;
}

static const EVP_MD *alg_md(enum jws_alg alg)
{
    switch (alg) {
    case JWS_RS384:
    case JWS_PS384: return EVP_sha384();
    case JWS_RS512:
    case JWS_PS512: return EVP_sha512();
    default: return EVP_sha256();
    }
}

/* The key type an algorithm needs (RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be
 * used with these algorithms"; §3.4: ES256 is ECDSA using P-256). */
static int key_fits(EVP_PKEY *k, enum jws_alg alg)
{
    if (alg_is_rsa(alg))
        return keys_is_rsa(k) && EVP_PKEY_get_bits(k) >= JWS_MIN_RSA_BITS;
    if (alg == JWS_ES256)
        return keys_is_ec_p256(k);
    return 0;
}

/* ---- signing ---- */

/* DER ECDSA-Sig-Value -> JOSE R || S, each left-padded to 32 octets (RFC 7518 §3.4). */
static mv_rc ecdsa_der_to_raw(const unsigned char *der, size_t len, mv_buf *sig)
{
    mv_rc rc = MV_OK;
    unsigned char raw[JWS_ES256_SIG];
    const unsigned char *p = der;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    ENSURE(es != NULL, MV_ERR_INTERNAL);
    ECDSA_SIG_get0(es, &r, &s);
    ENSURE(BN_bn2binpad(r, raw, JWS_P256_SCALAR) == JWS_P256_SCALAR, MV_ERR_INTERNAL);
    ENSURE(BN_bn2binpad(s, raw + JWS_P256_SCALAR, JWS_P256_SCALAR) == JWS_P256_SCALAR,
           MV_ERR_INTERNAL);
    CHECK(mv_buf_add(sig, raw, sizeof raw));
out:
    ECDSA_SIG_free(es);
    return rc;
}

static mv_rc sign_raw(EVP_PKEY *key, enum jws_alg alg, const mv_buf *input, mv_buf *sig)
{
    mv_rc rc = MV_OK;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    size_t n = 0;
    ENSURE(md != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) == 1, MV_ERR_INTERNAL);
    /* RFC 7518 §3.3: RS256 is RSASSA-PKCS1-v1_5 with SHA-256. */
    if (alg == JWS_RS256)
        ENSURE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_DigestSign(md, NULL, &n, (const unsigned char *)input->p, input->len) == 1,
           MV_ERR_INTERNAL);
    der = OPENSSL_malloc(n);
    ENSURE(der != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_DigestSign(md, der, &n, (const unsigned char *)input->p, input->len) == 1,
           MV_ERR_INTERNAL);
    if (alg == JWS_ES256)
        CHECK(ecdsa_der_to_raw(der, n, sig));
    else
        CHECK(mv_buf_add(sig, der, n));
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return rc;
}

/* base64url(compact JSON of v) appended to b. */
static mv_rc add_b64_json(mv_buf *b, const json_t *v)
{
    mv_rc rc = MV_OK;
    char *s = json_dumps(v, JSON_COMPACT);
    ENSURE(s != NULL, MV_ERR_INTERNAL);
    CHECK(b64url_encode(b, s, strlen(s)));
out:
    free(s);
    return rc;
}

mv_rc jws_sign(EVP_PKEY *key, enum jws_alg alg, const char *kid, const json_t *claims,
               mv_buf *out)
{
    mv_rc rc = MV_OK;
    json_t *hdr = NULL;
    mv_buf input, sig;
    mv_buf_init(&input, MV_MAX_TOKEN_BYTES);
    mv_buf_init(&sig, MV_MAX_TOKEN_BYTES);
    size_t start = out->len;
    ENSURE_MSG((alg == JWS_RS256 || alg == JWS_ES256) && key_fits(key, alg), MV_ERR_INTERNAL,
               "jws_sign: key does not fit alg");
    ENSURE(json_is_object(claims), MV_ERR_INTERNAL);
    /* RFC 7515 §4.1.1 alg; RFC 7519 §5.1 typ "JWT"; kid and, for our RS256 tokens, x5t equal to
     * it as Entra's v1 tokens carry (reference §3.1). */
    hdr = json_pack("{s:s, s:s}", "alg", alg_name(alg), "typ", "JWT");
    ENSURE(hdr != NULL, MV_ERR_INTERNAL);
    if (kid) {
        ENSURE(json_object_set_new(hdr, "kid", json_string(kid)) == 0, MV_ERR_INTERNAL);
        if (alg == JWS_RS256)
            ENSURE(json_object_set_new(hdr, "x5t", json_string(kid)) == 0, MV_ERR_INTERNAL);
    }
    /* RFC 7515 §7.1: BASE64URL(header) || '.' || BASE64URL(payload) || '.' || BASE64URL(sig). */
    CHECK(add_b64_json(&input, hdr));
    CHECK(mv_buf_add(&input, ".", 1));
    CHECK(add_b64_json(&input, claims));
    CHECK(sign_raw(key, alg, &input, &sig));
    CHECK(mv_buf_add(out, input.p, input.len));
    CHECK(mv_buf_add(out, ".", 1));
    CHECK(b64url_encode(out, sig.p, sig.len));
    /* Never issue a token that our own parser would refuse. */
    ENSURE_MSG(out->len - start <= MV_MAX_TOKEN_BYTES, MV_ERR_LIMIT, "jws_sign: token too long");
out:
    if (rc != MV_OK && out->p) {
        out->len = start;
        out->p[start] = '\0';
    }
    json_decref(hdr);
    mv_buf_free(&input);
    mv_buf_free(&sig);
    return rc;
}

/* ---- a reusable signer ---- */

struct jws_signer {
    EVP_PKEY *key;
    enum jws_alg alg;
    EVP_MD *sha256;      /* fetched once: no implicit fetch per digest */
    EVP_MD_CTX *md;      /* reused for the digest of each signing input */
    EVP_PKEY_CTX *pctx;  /* initialised once for signing a SHA-256 digest */
    mv_buf head;         /* "BASE64URL(header)." */
};

void jws_signer_free(jws_signer *s)
{
    if (!s)
        return;
    EVP_PKEY_CTX_free(s->pctx);
    EVP_MD_CTX_free(s->md);
    EVP_MD_free(s->sha256);
    EVP_PKEY_free(s->key);
    mv_buf_free(&s->head);
    free(s);
}

EVP_PKEY *jws_signer_key(const jws_signer *s)
{
    return s->key;
}

mv_rc jws_signer_new(EVP_PKEY *key, enum jws_alg alg, const char *kid, jws_signer **out)
{
    mv_rc rc = MV_OK;
    json_t *hdr = NULL;
    jws_signer *s = calloc(1, sizeof *s);
    *out = NULL;
    ENSURE(s != NULL, MV_ERR_INTERNAL);
    mv_buf_init(&s->head, MV_MAX_TOKEN_BYTES);
    ENSURE_MSG((alg == JWS_RS256 || alg == JWS_ES256) && key_fits(key, alg) &&
                   EVP_PKEY_get_size(key) <= JWS_MAX_SIG,
               MV_ERR_INTERNAL,
               "jws_signer: key does not fit alg");
    ENSURE(EVP_PKEY_up_ref(key) == 1, MV_ERR_INTERNAL);
    s->key = key;
    s->alg = alg;
    /* The same header as jws_sign (RFC 7515 §4.1.1, RFC 7519 §5.1, reference §3.1). */
    hdr = json_pack("{s:s, s:s}", "alg", alg_name(alg), "typ", "JWT");
    ENSURE(hdr != NULL, MV_ERR_INTERNAL);
    if (kid) {
        ENSURE(json_object_set_new(hdr, "kid", json_string(kid)) == 0, MV_ERR_INTERNAL);
        if (alg == JWS_RS256)
            ENSURE(json_object_set_new(hdr, "x5t", json_string(kid)) == 0, MV_ERR_INTERNAL);
    }
    CHECK(add_b64_json(&s->head, hdr));
    CHECK(mv_buf_add(&s->head, ".", 1));
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s->md = EVP_MD_CTX_new();
    s->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    ENSURE(s->sha256 && s->md && s->pctx, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_sign_init(s->pctx) == 1, MV_ERR_INTERNAL);
    /* RFC 7518 §3.3: RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (the md makes the provider wrap the
     * digest in its DigestInfo, as EVP_DigestSign does); §3.4: ES256 is ECDSA P-256 + SHA-256. */
    if (alg == JWS_RS256)
        ENSURE(EVP_PKEY_CTX_set_rsa_padding(s->pctx, RSA_PKCS1_PADDING) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_CTX_set_signature_md(s->pctx, s->sha256) == 1, MV_ERR_INTERNAL);
    *out = s;
    s = NULL;
out:
    json_decref(hdr);
    jws_signer_free(s);
    return rc;
}

mv_rc jws_signer_sign(jws_signer *s, const char *claims_json, size_t len, mv_buf *out)
{
    mv_rc rc = MV_OK;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    unsigned char sig[JWS_MAX_SIG];
    size_t siglen = sizeof sig;
    mv_buf raw;
    mv_buf_init(&raw, JWS_ES256_SIG);
    size_t start = out->len;
    /* RFC 7515 §7.1: BASE64URL(header) || '.' || BASE64URL(payload) || '.' || BASE64URL(sig). */
    CHECK(mv_buf_add(out, s->head.p, s->head.len));
    CHECK(b64url_encode(out, claims_json, len));
    ENSURE(EVP_DigestInit_ex2(s->md, s->sha256, NULL) == 1 &&
               EVP_DigestUpdate(s->md, out->p + start, out->len - start) == 1 &&
               EVP_DigestFinal_ex(s->md, digest, &dlen) == 1,
           MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_sign(s->pctx, sig, &siglen, digest, dlen) == 1, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, ".", 1));
    if (s->alg == JWS_ES256) {
        CHECK(ecdsa_der_to_raw(sig, siglen, &raw));
        CHECK(b64url_encode(out, raw.p, raw.len));
    } else {
        CHECK(b64url_encode(out, sig, siglen));
    }
    /* Never issue a token that our own parser would refuse. */
    ENSURE_MSG(out->len - start <= MV_MAX_TOKEN_BYTES, MV_ERR_LIMIT, "jws: token too long");
out:
    if (rc != MV_OK) {
        ERR_clear_error();
        if (out->p) {
            out->len = start;
            out->p[start] = '\0';
        }
    }
    mv_buf_free(&raw);
    return rc;
}

/* ---- parsing ---- */

static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Strict base64url of one compact part: non-empty, alphabet only (no '=': RFC 7515 §2 omits
 * padding), no impossible length, and canonical (unused low bits of the last char are zero), so
 * one token has exactly one encoding. */
static mv_rc part_decode(const char *s, size_t len, mv_buf *out)
{
    mv_rc rc = MV_OK;
    int last = 0;
    ENSURE_MSG(len > 0 && len % 4 != 1, MV_ERR_UNAUTHENTICATED, "jwt: bad part length");
    for (size_t i = 0; i < len; i++) {
        last = b64url_val(s[i]);
        ENSURE_MSG(last >= 0, MV_ERR_UNAUTHENTICATED, "jwt: bad base64url character");
    }
    ENSURE_MSG(len % 4 != 2 || (last & 0x0f) == 0, MV_ERR_UNAUTHENTICATED, "jwt: non-canonical");
    ENSURE_MSG(len % 4 != 3 || (last & 0x03) == 0, MV_ERR_UNAUTHENTICATED, "jwt: non-canonical");
    ENSURE_MSG(b64url_decode(out, s, len) == MV_OK, MV_ERR_UNAUTHENTICATED, "jwt: bad base64url");
out:
    return rc;
}

/* Containers nest at most MV_MAX_JSON_DEPTH deep (the root object counts as 1). */
static int depth_ok(json_t *v, int depth)
{
    const char *k;
    json_t *c;
    size_t i;
    if (!json_is_object(v) && !json_is_array(v))
        return 1;
    if (depth > MV_MAX_JSON_DEPTH)
        return 0;
    if (json_is_object(v)) {
        json_object_foreach(v, k, c) {
            if (!depth_ok(c, depth + 1))
                return 0;
        }
    } else {
        json_array_foreach(v, i, c) {
            if (!depth_ok(c, depth + 1))
                return 0;
        }
    }
    return 1;
}

/* RFC 7515 §4 / RFC 7519 §7.2: the header and the claims set are each a JSON object; duplicate
 * member names are refused (RFC 7515 §4: "MUST either reject JWSs with duplicate Header
 * Parameter Names or use a JSON parser that returns only the lexically last"). */
static mv_rc part_json(const char *s, size_t len, json_t **out)
{
    mv_rc rc = MV_OK;
    json_error_t err;
    mv_buf raw;
    mv_buf_init(&raw, MV_MAX_TOKEN_BYTES);
    CHECK(part_decode(s, len, &raw));
    *out = json_loadb(raw.p, raw.len, JSON_REJECT_DUPLICATES, &err);
    /* Position only: jansson's text quotes the input, and token bytes stay out of logs. */
    ENSURE_MSG(*out != NULL, MV_ERR_UNAUTHENTICATED, "jwt: bad JSON at byte %d", err.position);
    ENSURE_MSG(json_is_object(*out), MV_ERR_UNAUTHENTICATED, "jwt: part is not an object");
    ENSURE_MSG(depth_ok(*out, 1), MV_ERR_UNAUTHENTICATED, "jwt: JSON nested too deep");
out:
    mv_buf_free(&raw);
    return rc;
}

static enum jws_alg alg_from_name(const char *s)
{
    for (int a = JWS_RS256; a <= JWS_PS512; a++)
        if (strcmp(s, alg_name((enum jws_alg)a)) == 0)
            return (enum jws_alg)a;
    return JWS_ALG_NONE_ACCEPTED;
}

/* Header checks: alg in the allowlist, no "crit" (RFC 7515 §4.1.11: we understand no
 * extensions, so any critical one makes the JWS invalid), kid a string if present. */
static mv_rc check_header(jwt *t, unsigned allowed)
{
    mv_rc rc = MV_OK;
    const json_t *alg = json_object_get(t->header, "alg");
    ENSURE_MSG(json_is_string(alg), MV_ERR_UNAUTHENTICATED, "jwt: alg missing");
    t->alg = alg_from_name(json_string_value(alg));
    ENSURE_MSG(t->alg != JWS_ALG_NONE_ACCEPTED && (allowed & JWS_ALLOW(t->alg)),
               MV_ERR_UNAUTHENTICATED, "jwt: alg not allowed");
    ENSURE_MSG(!json_object_get(t->header, "crit"), MV_ERR_UNAUTHENTICATED, "jwt: crit header");
    const json_t *kid = json_object_get(t->header, "kid");
    ENSURE_MSG(!kid || json_is_string(kid), MV_ERR_UNAUTHENTICATED, "jwt: kid not a string");
    t->kid = kid ? json_string_value(kid) : NULL;
out:
    return rc;
}

mv_rc jwt_parse(const char *token, size_t len, unsigned allowed, jwt *out)
{
    mv_rc rc = MV_OK;
    memset(out, 0, sizeof *out);
    mv_buf_init(&out->signing_input, MV_MAX_TOKEN_BYTES);
    mv_buf_init(&out->signature, MV_MAX_TOKEN_BYTES);
    ENSURE_MSG(allowed != 0 && (allowed & ~JWS_KNOWN_ALGS) == 0, MV_ERR_INTERNAL,
               "jwt_parse: allowlist must be built with JWS_ALLOW()");
    ENSURE_MSG(token != NULL && len > 0 && len <= MV_MAX_TOKEN_BYTES, MV_ERR_UNAUTHENTICATED,
               "jwt: empty or oversized token");
    /* RFC 7515 §7.1 compact serialisation: exactly three parts separated by two periods. */
    const char *end = token + len;
    const char *d1 = memchr(token, '.', len);
    ENSURE_MSG(d1 != NULL, MV_ERR_UNAUTHENTICATED, "jwt: not three parts");
    const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    ENSURE_MSG(d2 != NULL, MV_ERR_UNAUTHENTICATED, "jwt: not three parts");
    ENSURE_MSG(memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) == NULL, MV_ERR_UNAUTHENTICATED,
               "jwt: not three parts");
    CHECK(part_json(token, (size_t)(d1 - token), &out->header));
    CHECK(check_header(out, allowed));
    CHECK(part_json(d1 + 1, (size_t)(d2 - d1 - 1), &out->claims));
    CHECK(part_decode(d2 + 1, (size_t)(end - d2 - 1), &out->signature));
    if (out->alg == JWS_ES256)
        ENSURE_MSG(out->signature.len == JWS_ES256_SIG, MV_ERR_UNAUTHENTICATED,
                   "jwt: ES256 signature is not 64 bytes");
    else
        ENSURE_MSG(out->signature.len >= JWS_MIN_RSA_BITS / 8, MV_ERR_UNAUTHENTICATED,
                   "jwt: RS256 signature too short");
    CHECK(mv_buf_add(&out->signing_input, token, (size_t)(d2 - token)));
out:
    if (rc != MV_OK)
        jwt_free(out);
    return rc;
}

/* ---- verification ---- */

/* JOSE R || S -> DER ECDSA-Sig-Value for EVP_DigestVerify. */
static mv_rc ecdsa_raw_to_der(const mv_buf *sig, unsigned char **der, int *derlen)
{
    mv_rc rc = MV_OK;
    const unsigned char *p = (const unsigned char *)sig->p;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(p, JWS_P256_SCALAR, NULL);
    BIGNUM *s = BN_bin2bn(p + JWS_P256_SCALAR, JWS_P256_SCALAR, NULL);
    ENSURE(es != NULL && r != NULL && s != NULL, MV_ERR_INTERNAL);
    ENSURE(ECDSA_SIG_set0(es, r, s) == 1, MV_ERR_INTERNAL);
    r = s = NULL; /* owned by es now */
    *derlen = i2d_ECDSA_SIG(es, der);
    ENSURE(*derlen > 0, MV_ERR_INTERNAL);
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return rc;
}

mv_rc jwt_verify(const jwt *t, EVP_PKEY *key)
{
    mv_rc rc = MV_OK;
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    const unsigned char *sig;
    size_t siglen;
    ENSURE(t != NULL && key != NULL && t->signing_input.p && t->signature.p,
           MV_ERR_UNAUTHENTICATED);
    /* The key decides what the signature must be, never the header alone (RFC 8725 §3.1). */
    ENSURE_MSG(key_fits(key, t->alg), MV_ERR_UNAUTHENTICATED, "jwt: key type does not match alg");
    if (t->alg == JWS_ES256) {
        int n = 0;
        ENSURE(t->signature.len == JWS_ES256_SIG, MV_ERR_UNAUTHENTICATED);
        CHECK(ecdsa_raw_to_der(&t->signature, &der, &n));
        sig = der;
        siglen = (size_t)n;
    } else {
        /* RFC 8017 §8.2.2 step 1: the signature is exactly k octets long. */
        ENSURE_MSG(t->signature.len == (size_t)EVP_PKEY_get_size(key), MV_ERR_UNAUTHENTICATED,
                   "jwt: RS256 signature length differs from key size");
        sig = (const unsigned char *)t->signature.p;
        siglen = t->signature.len;
    }
    md = EVP_MD_CTX_new();
    ENSURE(md != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_DigestVerifyInit(md, &pctx, alg_md(t->alg), NULL, key) == 1, MV_ERR_INTERNAL);
    if (alg_is_pss(t->alg)) {
        /* RFC 7518 §3.5: MGF1 with the same hash, salt length = hash length */
        ENSURE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                   EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                   EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_md(t->alg)) == 1,
               MV_ERR_INTERNAL);
    } else if (alg_is_rsa(t->alg)) {
        ENSURE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1, MV_ERR_INTERNAL);
    }
    ENSURE_MSG(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)t->signing_input.p,
                                t->signing_input.len) == 1,
               MV_ERR_UNAUTHENTICATED, "jwt: bad signature");
out:
    if (rc != MV_OK)
        ERR_clear_error();
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return rc;
}

/* ---- a reusable verifier ---- */

struct jws_verifier {
    EVP_PKEY *key;
    enum jws_alg alg;    /* the one algorithm key fits */
    size_t rsa_size;     /* RS256: the signature length, k octets */
    EVP_MD *sha256;
    EVP_MD_CTX *md;
    EVP_PKEY_CTX *pctx;  /* initialised once for verifying a SHA-256 digest */
};

void jws_verifier_free(jws_verifier *v)
{
    if (!v)
        return;
    EVP_PKEY_CTX_free(v->pctx);
    EVP_MD_CTX_free(v->md);
    EVP_MD_free(v->sha256);
    EVP_PKEY_free(v->key);
    free(v);
}

mv_rc jws_verifier_new(EVP_PKEY *key, jws_verifier **out)
{
    mv_rc rc = MV_OK;
    jws_verifier *v = calloc(1, sizeof *v);
    *out = NULL;
    ENSURE(v != NULL && key != NULL, MV_ERR_INTERNAL);
    v->alg = key_fits(key, JWS_RS256) ? JWS_RS256
             : key_fits(key, JWS_ES256) ? JWS_ES256
                                        : JWS_ALG_NONE_ACCEPTED;
    ENSURE_MSG(v->alg != JWS_ALG_NONE_ACCEPTED, MV_ERR_BAD_REQUEST,
               "jws_verifier: key is not RSA >= 2048 or P-256");
    ENSURE(EVP_PKEY_up_ref(key) == 1, MV_ERR_INTERNAL);
    v->key = key;
    v->rsa_size = v->alg == JWS_RS256 ? (size_t)EVP_PKEY_get_size(key) : 0;
    v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    v->md = EVP_MD_CTX_new();
    v->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    ENSURE(v->sha256 && v->md && v->pctx, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_verify_init(v->pctx) == 1, MV_ERR_INTERNAL);
    if (v->alg == JWS_RS256)
        ENSURE(EVP_PKEY_CTX_set_rsa_padding(v->pctx, RSA_PKCS1_PADDING) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_CTX_set_signature_md(v->pctx, v->sha256) == 1, MV_ERR_INTERNAL);
    *out = v;
    v = NULL;
out:
    if (rc != MV_OK)
        ERR_clear_error();
    jws_verifier_free(v);
    return rc;
}

mv_rc jwt_verify_with(const jwt *t, jws_verifier *v)
{
    mv_rc rc = MV_OK;
    unsigned char *der = NULL;
    const unsigned char *sig;
    size_t siglen;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    ENSURE(t != NULL && v != NULL && t->signing_input.p && t->signature.p,
           MV_ERR_UNAUTHENTICATED);
    /* As jwt_verify: the key decides what the signature must be (RFC 8725 §3.1). */
    ENSURE_MSG(t->alg == v->alg, MV_ERR_UNAUTHENTICATED, "jwt: key type does not match alg");
    if (t->alg == JWS_ES256) {
        int n = 0;
        ENSURE(t->signature.len == JWS_ES256_SIG, MV_ERR_UNAUTHENTICATED);
        CHECK(ecdsa_raw_to_der(&t->signature, &der, &n));
        sig = der;
        siglen = (size_t)n;
    } else {
        /* RFC 8017 §8.2.2 step 1: the signature is exactly k octets long. */
        ENSURE_MSG(t->signature.len == v->rsa_size, MV_ERR_UNAUTHENTICATED,
                   "jwt: RS256 signature length differs from key size");
        sig = (const unsigned char *)t->signature.p;
        siglen = t->signature.len;
    }
    ENSURE(EVP_DigestInit_ex2(v->md, v->sha256, NULL) == 1 &&
               EVP_DigestUpdate(v->md, t->signing_input.p, t->signing_input.len) == 1 &&
               EVP_DigestFinal_ex(v->md, digest, &dlen) == 1,
           MV_ERR_INTERNAL);
    ENSURE_MSG(EVP_PKEY_verify(v->pctx, sig, siglen, digest, dlen) == 1, MV_ERR_UNAUTHENTICATED,
               "jwt: bad signature");
out:
    if (rc != MV_OK)
        ERR_clear_error();
    OPENSSL_free(der);
    return rc;
}

void jwt_free(jwt *t)
{
    if (!t)
        return;
    json_decref(t->header);
    json_decref(t->claims);
    mv_buf_free(&t->signing_input);
    mv_buf_free(&t->signature);
    t->header = t->claims = NULL;
    t->kid = NULL;
    t->alg = JWS_ALG_NONE_ACCEPTED;
}

const char *jwt_claim_str(const jwt *t, const char *name)
{
    if (!t || !t->claims)
        return NULL;
    return json_string_value(json_object_get(t->claims, name));
}

mv_rc jwt_claim_int(const jwt *t, const char *name, long long *out)
{
    mv_rc rc = MV_OK;
    const json_t *v = t && t->claims ? json_object_get(t->claims, name) : NULL;
    /* RFC 7519 §2 NumericDate; we take integers only, so 1.5 or "1700000000" is refused. */
    ENSURE_MSG(json_is_integer(v), MV_ERR_UNAUTHENTICATED, "jwt: claim %s is not an integer",
               name);
    *out = (long long)json_integer_value(v);
out:
    return rc;
}
