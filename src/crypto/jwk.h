/* jwk.h: public JWKs (RFC 7517/7518) for RSA and EC P-256 keys. n, e, x, y are base64url
 * without padding. Private members are never emitted. */
#ifndef MV_CRYPTO_JWK_H
#define MV_CRYPTO_JWK_H

#include <jansson.h>
#include <openssl/evp.h>

#include "common/result.h"

/* {"kty","use":"sig","kid", n/e or crv/x/y, "alg"}; kid may be NULL. New reference. */
MV_MUST_CHECK mv_rc jwk_from_public(EVP_PKEY *k, const char *kid, json_t **out);
/* Parses an RSA (kty RSA, n, e; n >= 2048 bits) or EC P-256 public JWK. */
MV_MUST_CHECK mv_rc jwk_to_public(const json_t *jwk, EVP_PKEY **out);

#endif
