/* jws.h: compact JWS / JWT (RFC 7515, 7519) with an algorithm allowlist.
 *
 * Parsing never trusts the header: the caller states which algorithms it accepts, and
 * verification uses the key the caller resolved (by kid) for that algorithm. "none" and HS*
 * are never accepted (DESIGN §8). */
#ifndef MV_CRYPTO_JWS_H
#define MV_CRYPTO_JWS_H

#include <jansson.h>
#include <openssl/evp.h>

#include "common/buf.h"

/* PS256 (RSASSA-PSS, RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash) is what
 * Node's MSAL signs certificate assertions with; RS384/RS512/PS384/PS512 are accepted from
 * external OIDC issuers (Entra takes every RSA algorithm there). These verify with jwt_verify
 * only; jws_sign and the reusable signer/verifier stay RS256/ES256. */
enum jws_alg {
    JWS_ALG_NONE_ACCEPTED = 0,
    JWS_RS256 = 1,
    JWS_ES256 = 2,
    JWS_PS256 = 3,
    JWS_RS384 = 4,
    JWS_RS512 = 5,
    JWS_PS384 = 6,
    JWS_PS512 = 7,
};
/* Every RSA algorithm above. */
#define JWS_ALLOW_RSA                                                                              \
    (JWS_ALLOW(JWS_RS256) | JWS_ALLOW(JWS_PS256) | JWS_ALLOW(JWS_RS384) | JWS_ALLOW(JWS_RS512) |  \
     JWS_ALLOW(JWS_PS384) | JWS_ALLOW(JWS_PS512))

/* The allowlist bitmask for jwt_parse: one bit per algorithm, bit (1u << alg). Always build it
 * with this macro, e.g. JWS_ALLOW(JWS_RS256) | JWS_ALLOW(JWS_ES256); a mask with bit 0 set (as
 * from OR-ing bare enum values) or unknown bits is refused as a programming error. */
#define JWS_ALLOW(alg) (1u << (unsigned)(alg))

typedef struct jwt {
    json_t *header;        /* decoded header object */
    json_t *claims;        /* decoded payload object */
    enum jws_alg alg;      /* from header, only if in the allowlist */
    const char *kid;       /* header kid (points into header), NULL if absent */
    mv_buf signing_input;  /* "b64(header).b64(payload)" */
    mv_buf signature;      /* raw signature bytes (for ES256: r||s, 64 bytes) */
} jwt;

/* Signs header+claims (compact serialisation into out). The header gets "alg" and "typ":"JWT"
 * and, if kid is non-NULL, "kid" (and "x5t" = kid for RS256, reference §3.1). */
MV_MUST_CHECK mv_rc jws_sign(EVP_PKEY *key, enum jws_alg alg, const char *kid, const json_t *claims,
                             mv_buf *out);
/* A signer for many tokens with one key, on one thread (not thread-safe): the protected header
 * is encoded once and the signing context set up once. OpenSSL 3 fetches the algorithm
 * implementations on every EVP_DigestSignInit; reusing one initialised context saves ~3 % of an
 * RSA-2048 signature (docs/benchmarks.md). It holds its own reference to key. */
typedef struct jws_signer jws_signer;
MV_MUST_CHECK mv_rc jws_signer_new(EVP_PKEY *key, enum jws_alg alg, const char *kid,
                                   jws_signer **out);
/* As jws_sign, for claims already serialised as a JSON object (claims_json[0..len), signed as
 * given: the caller guarantees it is a valid compact JSON object). */
MV_MUST_CHECK mv_rc jws_signer_sign(jws_signer *s, const char *claims_json, size_t len, mv_buf *out);
/* The key the signer signs with (not a new reference). */
EVP_PKEY *jws_signer_key(const jws_signer *s);
void jws_signer_free(jws_signer *s);

/* Splits and decodes a compact JWS of at most MV_MAX_TOKEN_BYTES. allowed is a bitmask built
 * with JWS_ALLOW(); any other alg (incl. "none", HS256) is MV_ERR_UNAUTHENTICATED, as is every
 * malformed token. kid is optional here (callers that need it check t->kid). On error *out is
 * left empty (jwt_free is harmless); on success the caller owns it and calls jwt_free. */
MV_MUST_CHECK mv_rc jwt_parse(const char *token, size_t len, unsigned allowed, jwt *out);
/* Verifies the signature with key; the key type must match the parsed alg (RS256: RSA of at
 * least 2048 bits and a signature of exactly the key size; ES256: EC P-256). Any mismatch or bad
 * signature is MV_ERR_UNAUTHENTICATED. */
MV_MUST_CHECK mv_rc jwt_verify(const jwt *t, EVP_PKEY *key);
/* A verifier for many tokens with one key, on one thread (not thread-safe): the verification
 * context is set up once (saves ~10 % of a P-256 verification, docs/benchmarks.md). The key
 * decides the one algorithm it accepts (RS256 for RSA of at least 2048 bits, ES256 for P-256;
 * any other key is refused here). It holds its own reference to key. */
typedef struct jws_verifier jws_verifier;
MV_MUST_CHECK mv_rc jws_verifier_new(EVP_PKEY *key, jws_verifier **out);
/* jwt_verify with v's key: the same checks, the same results. */
MV_MUST_CHECK mv_rc jwt_verify_with(const jwt *t, jws_verifier *v);
void jws_verifier_free(jws_verifier *v);

void jwt_free(jwt *t);

/* Claim helpers: string claim or NULL; integer claim (JSON integer only: a real, string or
 * absent claim is MV_ERR_UNAUTHENTICATED; test optional claims with json_object_get first). */
const char *jwt_claim_str(const jwt *t, const char *name);
MV_MUST_CHECK mv_rc jwt_claim_int(const jwt *t, const char *name, long long *out);

#endif
