/* keys.h: key generation, PEM (de)serialisation and thumbprints on OpenSSL 3 EVP_PKEYs.
 * Keys are parsed once at start-up and kept loaded (DESIGN §6); never per request. */
#ifndef MV_CRYPTO_KEYS_H
#define MV_CRYPTO_KEYS_H

#include <openssl/evp.h>

#include "common/buf.h"

MV_MUST_CHECK mv_rc keys_gen_rsa(int bits, EVP_PKEY **out);
MV_MUST_CHECK mv_rc keys_gen_ec_p256(EVP_PKEY **out);
/* PKCS#8 private PEM / SPKI public PEM into a buffer (private output is a secret: free_secret). */
MV_MUST_CHECK mv_rc keys_private_pem(EVP_PKEY *k, mv_buf *out);
MV_MUST_CHECK mv_rc keys_public_pem(EVP_PKEY *k, mv_buf *out);
MV_MUST_CHECK mv_rc keys_from_private_pem(const char *pem, size_t len, EVP_PKEY **out);
MV_MUST_CHECK mv_rc keys_from_public_pem(const char *pem, size_t len, EVP_PKEY **out);
/* base64url(SHA-1(DER SubjectPublicKeyInfo)), 27 chars: used as kid. out needs 32 bytes. */
MV_MUST_CHECK mv_rc keys_thumbprint(EVP_PKEY *k, char out[32]);
int keys_is_rsa(EVP_PKEY *k);
int keys_is_ec_p256(EVP_PKEY *k);

#endif
