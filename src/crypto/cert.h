/* cert.h: X.509 certificates registered as client credentials (a service principal's
 * certificate; client assertions name it by thumbprint, x5t / x5t#S256 of RFC 7515 §4.1.7-8). */
#ifndef MV_CRYPTO_CERT_H
#define MV_CRYPTO_CERT_H

#include <openssl/evp.h>
#include <stdint.h>

#include "common/result.h"

#define CERT_MAX_PEM 16384

struct cert_info {
    char sha1_hex[41];    /* lower-case hex SHA-1 of the DER (x5t) */
    char sha256_hex[65];  /* lower-case hex SHA-256 of the DER (x5t#S256) */
    int64_t not_after;    /* Unix seconds */
};

/* Parses the first certificate of a PEM text (at most CERT_MAX_PEM bytes). Its key must be RSA
 * of at least 2048 bits (client assertions are RS256 or PS256). *pub (may be NULL) gets the
 * public key; MV_ERR_BAD_REQUEST (detail recorded) for anything else. */
MV_MUST_CHECK mv_rc cert_parse_pem(const char *pem, size_t len, EVP_PKEY **pub,
                                   struct cert_info *info);

/* A JOSE thumbprint (base64url of the raw digest) as lower-case hex; 0 if it is not base64url
 * of exactly want bytes (20: x5t, 32: x5t#S256). out has 2 * want + 1 bytes. */
int cert_thumb_hex(const char *b64url, size_t want, char *out);

#endif
