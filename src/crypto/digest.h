/* digest.h: SHA-256 fingerprints kept instead of secrets (DESIGN §8): join tokens are stored
 * only as their hash, and validated tokens are known to caches and the audit log only by theirs. */
#ifndef MV_CRYPTO_DIGEST_H
#define MV_CRYPTO_DIGEST_H

#include <stddef.h>

#include "common/result.h"

/* Lower-case hex SHA-256 of p[0..len). */
MV_MUST_CHECK mv_rc digest_sha256_hex(const void *p, size_t len, char out[65]);
/* Lower-case hex HMAC-SHA256 of p[0..len) under a 32-byte key (the audit trail's keyed hash). */
MV_MUST_CHECK mv_rc digest_hmac_sha256_hex(const unsigned char key[32], const void *p, size_t len,
                                           char out[65]);
/* HKDF-SHA256 (RFC 5869, no salt) of ikm with the label info: a 32-byte key derived for one
 * purpose (the audit key from the master key: "mivault-audit-hmac-1"). */
MV_MUST_CHECK mv_rc digest_hkdf_sha256(const unsigned char *ikm, size_t ikm_len, const char *info,
                                       unsigned char out[32]);

#endif
