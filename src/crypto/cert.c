/* cert.c: certificates registered as client credentials (cert.h). */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <time.h>

#include "common/b64.h"
#include "common/buf.h"
#include "common/util.h"
#include "crypto/cert.h"
#include "crypto/keys.h"

mv_rc cert_parse_pem(const char *pem, size_t len, EVP_PKEY **pub, struct cert_info *info)
{
    mv_rc rc = MV_OK;
    BIO *bio = NULL;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    unsigned char *der = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct tm tm;
    memset(info, 0, sizeof *info);
    if (pub)
        *pub = NULL;
    ENSURE_MSG(pem && len > 0 && len <= CERT_MAX_PEM, MV_ERR_BAD_REQUEST, "certificate: empty or too large");
    bio = BIO_new_mem_buf(pem, (int)len);
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    ENSURE_MSG(x != NULL, MV_ERR_BAD_REQUEST, "certificate: not a PEM X.509 certificate");
    key = X509_get_pubkey(x);
    ENSURE_MSG(key != NULL && keys_is_rsa(key) && EVP_PKEY_get_bits(key) >= 2048,
               MV_ERR_BAD_REQUEST, "certificate: the key must be RSA of at least 2048 bits");
    int dlen = i2d_X509(x, &der);
    ENSURE(dlen > 0, MV_ERR_INTERNAL);
    ENSURE(EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20,
           MV_ERR_INTERNAL);
    mv_hex(info->sha1_hex, md, 20);
    ENSURE(EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32,
           MV_ERR_INTERNAL);
    mv_hex(info->sha256_hex, md, 32);
    ENSURE(ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1, MV_ERR_BAD_REQUEST);
    info->not_after = (int64_t)timegm(&tm);
    if (pub) {
        *pub = key;
        key = NULL;
    }
out:
    if (rc != MV_OK)
        ERR_clear_error();
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    X509_free(x);
    BIO_free(bio);
    return rc;
}

int cert_thumb_hex(const char *b64url, size_t want, char *out)
{
    mv_buf raw;
    int ok = 0;
    mv_buf_init(&raw, 64);
    if (b64url && strlen(b64url) <= 64 && b64url_decode(&raw, b64url, strlen(b64url)) == MV_OK &&
        raw.len == want) {
        mv_hex(out, (const unsigned char *)raw.p, want);
        ok = 1;
    }
    mv_buf_free(&raw);
    return ok;
}
