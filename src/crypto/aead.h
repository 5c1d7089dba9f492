/* aead.h: AES-256-GCM envelope encryption for values at rest (DESIGN §5).
 *
 * Sealed format: 1 byte version (1) || 12 bytes nonce || ciphertext || 16 bytes tag. The AAD
 * binds a value to where it is stored (e.g. "secret:vault/name/version") so rows cannot be
 * swapped. */
#ifndef MV_CRYPTO_AEAD_H
#define MV_CRYPTO_AEAD_H

#include <stddef.h>

#include "common/buf.h"

#define AEAD_KEY_LEN 32
#define AEAD_OVERHEAD (1 + 12 + 16)

MV_MUST_CHECK mv_rc aead_seal(const unsigned char key[AEAD_KEY_LEN], const char *aad,
                              const void *pt, size_t ptlen, mv_buf *out);
/* MV_ERR_INTERNAL on tag mismatch (tampered or wrong key). Output is secret: free_secret. */
MV_MUST_CHECK mv_rc aead_open(const unsigned char key[AEAD_KEY_LEN], const char *aad,
                              const void *ct, size_t ctlen, mv_buf *out);

#endif
