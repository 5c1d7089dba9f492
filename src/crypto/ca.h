/* ca.h: the local CA made at `mivault init`, the server certificate it signs, and the
 * self-signed certificate wrapping a signing key for the JWKS x5c member. */
#ifndef MV_CRYPTO_CA_H
#define MV_CRYPTO_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/buf.h"

/* A new CA (EC P-256 key, 10 years): its certificate and private key as PEM. */
MV_MUST_CHECK mv_rc ca_create(mv_buf *cert_pem, mv_buf *key_pem);
/* A server certificate (EC P-256, 2 years) signed by the CA in dir/ca.pem + dir/ca.key, for
 * the SANs localhost, 127.0.0.1, ::1, public_host (a DNS name or an IP literal; NULL for none),
 * vault_suffix and *.vault_suffix; written as server.pem (chain: server then CA) and server.key
 * (0600). Each server of an installation makes its own, from the one shared CA. */
MV_MUST_CHECK mv_rc ca_server_cert(const char *dir, const char *vault_suffix,
                                   const char *public_host);
/* ca_create written as ca.pem / ca.key (0600) in dir, then ca_server_cert. */
MV_MUST_CHECK mv_rc ca_init(const char *dir, const char *vault_suffix, const char *public_host);
/* Self-signed cert (CN=mivault token signing) for key, DER base64 (padded) into out (for x5c). */
MV_MUST_CHECK mv_rc ca_self_signed_b64(EVP_PKEY *key, mv_buf *out);

/* SHA-256 of the DER SubjectPublicKeyInfo of the first certificate in pem (the join token's CA
 * pin, crypto/join_token.h). MV_ERR_BAD_REQUEST if pem holds no certificate. */
MV_MUST_CHECK mv_rc ca_spki_sha256(const char *pem, size_t len, unsigned char out[32]);
/* The same for a PEM file (at most 64 KiB). */
MV_MUST_CHECK mv_rc ca_file_spki_sha256(const char *path, unsigned char out[32]);

#endif
