/* digest.h: SHA-256 fingerprints kept instead of secrets (DESIGN §8): join tokens are stored
 * only as their hash, and validated tokens are known to caches and the audit log only by theirs. */
#ifndef MV_CRYPTO_DIGEST_H
#define MV_CRYPTO_DIGEST_H

#include <stddef.h>

#include "common/result.h"

/* Lower-case hex SHA-256 of p[0..len). */
MV_MUST_CHECK mv_rc digest_sha256_hex(const void *p, size_t len, char out[65]);

#endif
