/* keys.c: key generation, PEM (de)serialisation and thumbprints (see keys.h).
 *
 * Only two key shapes exist in mivault: RSA (>= 2048 bits, token signing) and EC P-256 (nodes,
 * admin, CA). Loaders refuse anything else, so every EVP_PKEY handed to the rest of the code is
 * one of these. Private PEM goes through a secure-heap BIO and into a buffer the caller frees
 * with mv_buf_free_secret. Encrypted PEM is refused rather than prompting for a passphrase. */
#include "crypto/keys.h"

#include <limits.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "common/b64.h"

#define KEYS_MIN_RSA_BITS 2048
#define KEYS_MAX_RSA_BITS 8192
#define KEYS_MAX_PEM (64 * 1024)

int keys_is_rsa(EVP_PKEY *k) { return k && EVP_PKEY_is_a(k, "RSA"); }

int keys_is_ec_p256(EVP_PKEY *k)
{
    char name[64];
    size_t len = 0;
    if (!k || !EVP_PKEY_is_a(k, "EC"))
        return 0;
    if (EVP_PKEY_get_group_name(k, name, sizeof name, &len) != 1)
        return 0;
    return strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0;
}

/* The only keys mivault accepts from PEM (and from JWKs): RSA >= 2048 bits or EC P-256. */
static int acceptable(EVP_PKEY *k)
{
    if (keys_is_rsa(k))
        return EVP_PKEY_get_bits(k) >= KEYS_MIN_RSA_BITS &&
               EVP_PKEY_get_bits(k) <= KEYS_MAX_RSA_BITS;
    return keys_is_ec_p256(k);
}

mv_rc keys_gen_rsa(int bits, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    *out = NULL;
    ENSURE(bits >= KEYS_MIN_RSA_BITS && bits <= KEYS_MAX_RSA_BITS, MV_ERR_INTERNAL);
    *out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    return rc;
}

mv_rc keys_gen_ec_p256(EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    return rc;
}

/* Appends the whole content of a memory BIO to out. */
static mv_rc bio_drain(BIO *bio, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    ENSURE(n > 0 && p != NULL, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, p, (size_t)n));
out:
    return rc;
}

mv_rc keys_private_pem(EVP_PKEY *k, mv_buf *out)
{
    mv_rc rc = MV_OK;
    /* BIO_s_secmem keeps the PEM on the secure heap and clears it on free. */
    BIO *bio = BIO_new(BIO_s_secmem());
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    /* PKCS#8, unencrypted: encryption at rest is done by the caller (aead) where needed. */
    ENSURE(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1, MV_ERR_INTERNAL);
    CHECK(bio_drain(bio, out));
out:
    BIO_free(bio);
    return rc;
}

mv_rc keys_public_pem(EVP_PKEY *k, mv_buf *out)
{
    mv_rc rc = MV_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    ENSURE(PEM_write_bio_PUBKEY(bio, k) == 1, MV_ERR_INTERNAL);
    CHECK(bio_drain(bio, out));
out:
    BIO_free(bio);
    return rc;
}

/* Passphrase callback that refuses: an encrypted PEM fails instead of prompting on a tty. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

mv_rc keys_from_private_pem(const char *pem, size_t len, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    BIO *bio = NULL;
    *out = NULL;
    ENSURE(len > 0 && len <= KEYS_MAX_PEM, MV_ERR_BAD_REQUEST);
    bio = BIO_new_mem_buf(pem, (int)len);
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    *out = PEM_read_bio_PrivateKey_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    ENSURE_MSG(*out != NULL, MV_ERR_BAD_REQUEST, "not a private key PEM");
    ENSURE_MSG(acceptable(*out), MV_ERR_BAD_REQUEST, "private key is not RSA >= 2048 or P-256");
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
        ERR_clear_error();
    }
    BIO_free(bio);
    return rc;
}

mv_rc keys_from_public_pem(const char *pem, size_t len, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    BIO *bio = NULL;
    *out = NULL;
    ENSURE(len > 0 && len <= KEYS_MAX_PEM, MV_ERR_BAD_REQUEST);
    bio = BIO_new_mem_buf(pem, (int)len);
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    *out = PEM_read_bio_PUBKEY_ex(bio, NULL, no_passphrase, NULL, NULL, NULL);
    ENSURE_MSG(*out != NULL, MV_ERR_BAD_REQUEST, "not a public key PEM");
    ENSURE_MSG(acceptable(*out), MV_ERR_BAD_REQUEST, "public key is not RSA >= 2048 or P-256");
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
        ERR_clear_error();
    }
    BIO_free(bio);
    return rc;
}

mv_rc keys_thumbprint(EVP_PKEY *k, char out[32])
{
    mv_rc rc = MV_OK;
    unsigned char *der = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    mv_buf b;
    mv_buf_init(&b, 31);
    out[0] = '\0';
    int n = i2d_PUBKEY(k, &der);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    ENSURE(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20,
           MV_ERR_INTERNAL);
    CHECK(b64url_encode(&b, md, mdlen));
    CHECK(mv_copy(out, 32, b.p));
out:
    OPENSSL_free(der);
    mv_buf_free(&b);
    return rc;
}
