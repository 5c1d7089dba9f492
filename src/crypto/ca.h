/* ca.h: the local CA made at `mivault init`, the server certificate it signs, and the
 * self-signed certificate wrapping a signing key for the JWKS x5c member. */
#ifndef MV_CRYPTO_CA_H
#define MV_CRYPTO_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/buf.h"

/* Creates a CA (EC P-256 key, 10 years) and writes ca.pem / ca.key (0600) in dir. Then a server
 * certificate (EC P-256, 2 years) for the SANs localhost, 127.0.0.1, ::1, vault_suffix and
 * *.vault_suffix, written as server.pem (chain: server then CA) and server.key (0600). */
MV_MUST_CHECK mv_rc ca_init(const char *dir, const char *vault_suffix);
/* Self-signed cert (CN=mivault token signing) for key, DER base64 (padded) into out (for x5c). */
MV_MUST_CHECK mv_rc ca_self_signed_b64(EVP_PKEY *key, mv_buf *out);

/* SHA-256 of the DER SubjectPublicKeyInfo of the first certificate in pem (the join token's CA
 * pin, crypto/join_token.h). MV_ERR_BAD_REQUEST if pem holds no certificate. */
MV_MUST_CHECK mv_rc ca_spki_sha256(const char *pem, size_t len, unsigned char out[32]);
/* The same for a PEM file (at most 64 KiB). */
MV_MUST_CHECK mv_rc ca_file_spki_sha256(const char *path, unsigned char out[32]);

#endif
