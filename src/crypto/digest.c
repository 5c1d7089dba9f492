/* digest.c: SHA-256 fingerprints, HMAC-SHA256 and HKDF-SHA256 (see digest.h). */
#include "crypto/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <string.h>

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

mv_rc digest_hmac_sha256_hex(const unsigned char key[32], const void *p, size_t len, char out[65])
{
    mv_rc rc = MV_OK;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    ENSURE(HMAC(EVP_sha256(), key, 32, p, len, md, &mdlen) != NULL && mdlen == 32, MV_ERR_INTERNAL);
    mv_hex(out, md, mdlen);
out:
    OPENSSL_cleanse(md, sizeof md);
    return rc;
}

mv_rc digest_hkdf_sha256(const unsigned char *ikm, size_t ikm_len, const char *info,
                         unsigned char out[32])
{
    mv_rc rc = MV_OK;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = 32;
    ENSURE(ctx != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
               EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_len) > 0 &&
               EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)) > 0 &&
               EVP_PKEY_derive(ctx, out, &n) > 0 && n == 32,
           MV_ERR_INTERNAL);
out:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}
