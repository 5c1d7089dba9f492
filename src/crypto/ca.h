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

#endif
