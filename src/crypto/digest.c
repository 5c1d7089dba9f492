/* digest.c: SHA-256 fingerprints (see digest.h). */
#include "crypto/digest.h"

#include <openssl/evp.h>

#include "common/util.h"

mv_rc digest_sha256_hex(const void *p, size_t len, char out[65])
{
    mv_rc rc = MV_OK;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    ENSURE(EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32,
           MV_ERR_INTERNAL);
    mv_hex(out, md, mdlen);
out:
    return rc;
}
