/* join_token.h: the join token's text format (docs/internal-protocol.md "Join tokens").
 *
 *   mvj1.<secret>.sha256:<pin>
 *
 * "mvj1" names the format (version 1). <secret> is 32 random bytes, base64url without padding
 * (43 characters); the server stores only the SHA-256 of the *secret part* "mvj1.<secret>".
 * <pin> is the base64url SHA-256 (43 characters) of the DER SubjectPublicKeyInfo of the
 * server's CA certificate, as `kubeadm join --discovery-token-ca-cert-hash sha256:…` pins a
 * cluster CA: an agent on another machine fetches the CA untrusted and accepts it only if its
 * key hashes to the pin. Pure string code, unit-tested. */
#ifndef MV_CRYPTO_JOIN_TOKEN_H
#define MV_CRYPTO_JOIN_TOKEN_H

#include <stddef.h>

#include "common/result.h"

#define JOIN_TOKEN_PREFIX "mvj1."
#define JOIN_TOKEN_PIN_TAG ".sha256:"
#define JOIN_TOKEN_SECRET_BYTES 32
#define JOIN_TOKEN_B64_LEN 43 /* base64url of 32 bytes, unpadded */
#define JOIN_TOKEN_SECRET_LEN (sizeof JOIN_TOKEN_PREFIX - 1 + JOIN_TOKEN_B64_LEN)
#define JOIN_TOKEN_LEN (JOIN_TOKEN_SECRET_LEN + sizeof JOIN_TOKEN_PIN_TAG - 1 + JOIN_TOKEN_B64_LEN)
#define JOIN_TOKEN_MAX 128 /* buffer size that holds any token and its NUL */

struct join_token {
    char secret[JOIN_TOKEN_SECRET_LEN + 1]; /* "mvj1.<secret>": what the server hashes */
    unsigned char pin[32];                  /* SHA-256 of the CA's SubjectPublicKeyInfo */
    int has_pin;                            /* 0: only the secret part was given */
};

/* Formats "mvj1.<b64url(secret)>.sha256:<b64url(pin)>" into out (JOIN_TOKEN_MAX bytes). */
MV_MUST_CHECK mv_rc join_token_format(const unsigned char secret[JOIN_TOKEN_SECRET_BYTES],
                                      const unsigned char pin[32], char out[JOIN_TOKEN_MAX]);
/* Parses a full token, or (allow_bare) its secret part alone. Leading and trailing ASCII
 * whitespace is ignored (a token read from a file). MV_ERR_BAD_REQUEST if malformed. */
MV_MUST_CHECK mv_rc join_token_parse(const char *s, size_t len, int allow_bare,
                                     struct join_token *out);
void join_token_wipe(struct join_token *t);

#endif
